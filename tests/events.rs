//! Event mode in the engine: what is queued, in what order, how the queue signals, and that a full
//! queue pauses reading from the socket instead of growing or dropping.
mod common;

use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use mqttclient::codec::{Packet, QoS, Version};
use mqttclient::engine::events::Subscriber;
use mqttclient::engine::{Address, Client, ClientEvent, ConnectionEvent, Error, Handler, Options, Token, TokenState};

use common::Broker;
use common::fake::{FakeBroker, TIMEOUT, mqtt_str, publish};
use common::proxy::Proxy;

const T: Duration = Duration::from_secs(10);

fn event_options(id: &str) -> Options {
    Options {
        client_id: id.into(),
        event_mode: true,
        reconnect_min: Duration::from_millis(50),
        reconnect_max: Duration::from_millis(200),
        ..Options::default()
    }
}

fn tcp(port: u16) -> Address {
    Address::tcp("127.0.0.1", port)
}

/// An event-mode subscription whose events carry `key`; the guard counts its drops.
fn queued(key: usize, drops: &Arc<AtomicUsize>) -> Handler {
    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    Handler::Queue {
        key,
        guard: Box::new(Counted(drops.clone())),
    }
}

/// The keys of a message event's subscribers, in order.
fn keys_of(subscribers: &[Subscriber]) -> Vec<usize> {
    subscribers.iter().map(|s| s.key).collect()
}

fn readable(fd: RawFd, timeout: Duration) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut p, 1, timeout.as_millis() as i32) == 1 }
}

/// Waits on the client's descriptor for the next event, as an application's loop would.
fn next(c: &Client) -> ClientEvent {
    let fd = c.event_fd().unwrap();
    let deadline = Instant::now() + T;
    loop {
        if let Some(e) = c.next_event().unwrap() {
            return e;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no event within {T:?}");
        readable(fd, left);
    }
}

fn next_completion(c: &Client, token: Token) -> Result<(), Error> {
    match next(c) {
        ClientEvent::Completed { token: t, result } => {
            assert_eq!(t, token, "completions arrive in order");
            assert_eq!(
                c.token_state(t),
                TokenState::Done(result.clone()),
                "the token is complete when its event is seen"
            );
            result.map(|_| ())
        }
        other => panic!("expected the completion of {token}, got {other:?}"),
    }
}

#[test]
fn messages_completions_and_connection_changes_arrive_as_events_in_order() {
    let broker = Broker::start();
    let c = Client::new(vec![tcp(broker.port)], event_options("ev-order")).unwrap();
    let fd = c.event_fd().unwrap();
    assert!(!readable(fd, Duration::ZERO), "nothing waits yet");
    let t = c.connect().unwrap();
    match next(&c) {
        ClientEvent::Connection(ConnectionEvent::Connected {
            session_present,
            server,
        }) => {
            assert!(!session_present);
            assert_eq!(server, tcp(broker.port));
        }
        other => panic!("expected UP first, got {other:?}"),
    }
    next_completion(&c, t).unwrap();
    let drops = Arc::new(AtomicUsize::new(0));
    // Overlapping filters: one event names both subscriptions.
    let t = c
        .subscribe(vec![
            (mqtt_str("ev/#"), QoS::AtLeastOnce, queued(1, &drops)),
            (mqtt_str("ev/+"), QoS::ExactlyOnce, queued(2, &drops)),
        ])
        .unwrap();
    next_completion(&c, t).unwrap();
    let t = c
        .publish(mqtt_str("ev/a"), Bytes::from_static(b"\0one"), QoS::ExactlyOnce, false)
        .unwrap();
    let mut saw_completion = false;
    let mut saw_message = false;
    while !(saw_completion && saw_message) {
        match next(&c) {
            ClientEvent::Completed { token, result } => {
                assert_eq!(token, t);
                assert!(result.is_ok());
                saw_completion = true;
            }
            ClientEvent::Message {
                publish, subscribers, ..
            } => {
                assert_eq!(publish.topic.as_str(), "ev/a");
                assert_eq!(&publish.payload[..], b"\0one");
                let mut keys = keys_of(&subscribers);
                keys.sort();
                assert_eq!(keys, [1, 2], "each matching subscription, once");
                saw_message = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(!readable(fd, Duration::ZERO), "drained");
    let t = c.unsubscribe(vec![mqtt_str("ev/+")]).unwrap();
    assert_eq!(drops.load(Ordering::SeqCst), 1, "the unsubscribed registration ended");
    next_completion(&c, t).unwrap();
    let t = c.disconnect().unwrap();
    // CLOSED first: the session is over by the time its token reports success.
    assert!(matches!(
        next(&c),
        ClientEvent::Connection(ConnectionEvent::Disconnected)
    ));
    next_completion(&c, t).unwrap();
    drop(c);
    assert_eq!(drops.load(Ordering::SeqCst), 2, "freeing the client ends the rest");
}

#[test]
fn callback_and_event_subscriptions_mix_on_one_client() {
    let broker = Broker::start();
    let c = Client::new(vec![tcp(broker.port)], event_options("ev-mix")).unwrap();
    let t = c.connect().unwrap();
    assert!(matches!(next(&c), ClientEvent::Connection(_)));
    next_completion(&c, t).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let callback = Handler::Call(Box::new(move |p| {
        let _ = tx.send(p.payload.clone());
    }));
    let drops = Arc::new(AtomicUsize::new(0));
    let t = c
        .subscribe(vec![
            (mqtt_str("mix/cb"), QoS::AtMostOnce, callback),
            (mqtt_str("mix/ev"), QoS::AtMostOnce, queued(7, &drops)),
        ])
        .unwrap();
    next_completion(&c, t).unwrap();
    let t = c
        .publish(mqtt_str("mix/cb"), Bytes::from("mix/cb"), QoS::AtLeastOnce, false)
        .unwrap();
    next_completion(&c, t).unwrap();
    assert_eq!(&rx.recv_timeout(T).unwrap()[..], b"mix/cb");
    let t = c
        .publish(mqtt_str("mix/ev"), Bytes::from("mix/ev"), QoS::AtLeastOnce, false)
        .unwrap();
    // The PUBACK and the broker's copy of the message race; either may come first.
    let mut message = None;
    for _ in 0..2 {
        match next(&c) {
            ClientEvent::Completed { token, result } => assert_eq!((token, result.is_ok()), (t, true)),
            ClientEvent::Message {
                publish, subscribers, ..
            } => message = Some((publish.payload, keys_of(&subscribers))),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(message, Some((Bytes::from("mix/ev"), vec![7])));
    assert!(rx.try_recv().is_err(), "the callback saw only its own topic");
}

#[test]
fn event_calls_are_refused_on_a_callback_mode_client() {
    let c = Client::new(vec![tcp(1)], Options::default()).unwrap();
    assert!(!c.event_mode());
    assert_eq!(c.event_fd(), Err(Error::EventModeOff));
    assert_eq!(c.next_event().map(|_| ()), Err(Error::EventModeOff));
    assert_eq!(c.pending_events(), Err(Error::EventModeOff));
    let drops = Arc::new(AtomicUsize::new(0));
    let rejected = c
        .subscribe(vec![(mqtt_str("x"), QoS::AtMostOnce, queued(1, &drops))])
        .unwrap_err();
    assert_eq!(rejected.error, Error::EventModeOff);
    assert_eq!(rejected.handlers.len(), 1, "the handler is handed back");
}

#[test]
fn a_lost_connection_and_the_reconnect_arrive_as_events() {
    let broker = Broker::start();
    let proxy = Proxy::start(broker.port);
    let c = Client::new(vec![tcp(proxy.port())], event_options("ev-lost")).unwrap();
    let t = c.connect().unwrap();
    assert!(matches!(
        next(&c),
        ClientEvent::Connection(ConnectionEvent::Connected { .. })
    ));
    next_completion(&c, t).unwrap();
    proxy.drop_all();
    match next(&c) {
        ClientEvent::Connection(ConnectionEvent::Lost { server, .. }) => assert_eq!(server, tcp(proxy.port())),
        other => panic!("expected LOST, got {other:?}"),
    }
    assert!(matches!(
        next(&c),
        ClientEvent::Connection(ConnectionEvent::Connected { .. })
    ));
}

#[test]
fn the_wakeup_hook_is_called_from_a_library_thread_when_events_arrive() {
    let broker = Broker::start();
    let c = Client::new(vec![tcp(broker.port)], event_options("ev-hook")).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let on_caller_thread = Arc::new(AtomicUsize::new(0));
    let me = std::thread::current().id();
    let (n, mine) = (calls.clone(), on_caller_thread.clone());
    c.set_wakeup(Some(Arc::new(move || {
        n.fetch_add(1, Ordering::SeqCst);
        if std::thread::current().id() == me {
            mine.fetch_add(1, Ordering::SeqCst);
        }
    })))
    .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 0, "nothing waits yet");
    let t = c.connect().unwrap();
    let deadline = Instant::now() + T;
    while c.pending_events().unwrap() < 2 {
        assert!(Instant::now() < deadline, "UP and the completion are queued");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "one call for the empty -> non-empty change"
    );
    assert!(matches!(next(&c), ClientEvent::Connection(_)));
    next_completion(&c, t).unwrap();
    assert_eq!(on_caller_thread.load(Ordering::SeqCst), 0);
}

#[test]
fn a_full_event_queue_stops_reading_the_socket_and_loses_nothing() {
    const BOUND: usize = 16;
    let broker = FakeBroker::new();
    let c = Client::new(
        vec![broker.address()],
        Options {
            keep_alive: 0,
            callback_queue: BOUND,
            ..event_options("ev-full")
        },
    )
    .unwrap();
    let t = c.connect().unwrap();
    let mut conn = broker.accept();
    conn.accept_connect();
    let drops = Arc::new(AtomicUsize::new(0));
    let s = c
        .subscribe(vec![(mqtt_str("bp"), QoS::AtMostOnce, queued(3, &drops))])
        .unwrap();
    conn.answer_subscribe(&[0]);
    // 1 KiB messages, numbered, until the client stops taking them.
    let mut packets = BytesMut::new();
    const BATCH: usize = 64;
    for k in 0..BATCH {
        Packet::Publish(publish("bp", QoS::AtMostOnce, 0, &[k as u8; 1024]))
            .encode(&mut packets, Version::V311)
            .unwrap();
    }
    let batches = conn.send_until_blocked(&packets, Duration::from_millis(500), 100_000 / BATCH);
    let sent = batches * BATCH;
    assert!(
        batches < 100_000 / BATCH,
        "the client kept reading: {sent} messages went out without a stall"
    );
    assert_eq!(c.pending_events().unwrap(), BOUND, "the queue holds exactly its bound");
    // Drain everything: the connect and subscribe completions, the UP, then every message whole.
    let mut messages = 0;
    let deadline = Instant::now() + TIMEOUT * 3;
    while messages < sent {
        assert!(Instant::now() < deadline, "only {messages} of {sent} messages arrived");
        match c.next_event().unwrap() {
            Some(ClientEvent::Message {
                publish, subscribers, ..
            }) => {
                assert_eq!(keys_of(&subscribers), [3]);
                assert_eq!(publish.payload[0], (messages % BATCH) as u8, "in order, none lost");
                messages += 1;
            }
            Some(ClientEvent::Completed { token, result }) => {
                assert!(token == t || token == s);
                assert!(result.is_ok());
            }
            Some(ClientEvent::Connection(_)) => {}
            Some(ClientEvent::Restored { .. }) => panic!("no store, so nothing to restore"),
            None => {
                let before = c.pending_events().unwrap();
                assert!(before <= BOUND);
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
    assert!(c.pending_events().unwrap() <= BOUND);
}

#[test]
fn freeing_a_client_whose_full_queue_nobody_drains_is_prompt() {
    let broker = Broker::start();
    let c = Client::new(
        vec![tcp(broker.port)],
        Options {
            callback_queue: 2,
            ..event_options("ev-free")
        },
    )
    .unwrap();
    let t = c.connect().unwrap();
    assert!(matches!(c.wait(t, T), Some(TokenState::Done(Ok(_)))));
    for k in 0..20 {
        c.publish(mqtt_str("ev/free"), Bytes::from(vec![k]), QoS::AtLeastOnce, false)
            .unwrap();
    }
    let deadline = Instant::now() + T;
    while c.pending_events().unwrap() < 2 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    let started = Instant::now();
    c.close();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "close took {:?}",
        started.elapsed()
    );
}
