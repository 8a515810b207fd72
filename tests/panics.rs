//! A panic on a client's network task or callback thread (injected through a test-only hook)
//! stops that client cleanly: its pending tokens fail with `Error::Panic`, the loss is reported,
//! the state is Disconnected, later calls fail at once, and freeing it does not hang. Other
//! clients on the same loop carry on.
mod common;

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqttclient::codec::{MqttStr, QoS};
use mqttclient::engine::{
    Address, Client, ClientEvent, ConnectionEvent, Error, Loop, Options, PanicSite, State, Token, TokenState,
};

use common::Broker;
use common::fake::{FakeBroker, TIMEOUT};

/// How long containing a panic may take, from the injection to the last token failed.
const PROMPT: Duration = Duration::from_secs(1);

/// Publishes the broker will never acknowledge.
const UNACKED: usize = 5;

/// A fake broker that accepts one connection, takes `UNACKED` QoS 1 publishes without
/// acknowledging any (saying so on `received`), then expects the connection to close; it returns
/// whether the client came back (it must not after a panic).
fn silent_broker(received: mpsc::Sender<()>) -> (Address, std::thread::JoinHandle<bool>) {
    let fake = FakeBroker::new();
    let address = fake.address();
    let script = fake.spawn(move |b| {
        let mut c = b.accept();
        c.accept_connect();
        for _ in 0..UNACKED {
            c.expect_publish();
        }
        received.send(()).unwrap();
        c.expect_eof(TIMEOUT);
        b.try_accept(Duration::from_millis(300)).is_some()
    });
    (address, script)
}

fn publish(c: &Client, qos: QoS) -> Result<Token, Error> {
    c.publish(MqttStr::new("panics/t").unwrap(), Bytes::from_static(b"x"), qos, false)
}

fn is_panic(r: &Result<impl std::fmt::Debug, Error>) -> bool {
    matches!(r, Err(Error::Panic(_)))
}

/// Connects `c` (to a broker made by [`silent_broker`]), leaves `UNACKED` QoS 1 publishes pending,
/// injects a panic at `site`, and checks the client stops as documented. `lost` receives the
/// client's connection events; `idle` lets time pass (running the loop for a loop client).
fn pending_tokens_fail_and_the_loss_is_reported(
    c: &Client,
    site: PanicSite,
    received: &mpsc::Receiver<()>,
    lost: &mpsc::Receiver<ConnectionEvent>,
    idle: &dyn Fn(Duration),
) {
    let wait = |c: &Client, t: Token, timeout: Duration| c.wait(t, timeout).expect("not in a callback");
    let connect = c.connect().unwrap();
    assert!(matches!(wait(c, connect, TIMEOUT), TokenState::Done(Ok(_))));
    assert!(matches!(
        lost.recv_timeout(TIMEOUT),
        Ok(ConnectionEvent::Connected { .. })
    ));
    let tokens: Vec<Token> = (0..UNACKED).map(|_| publish(c, QoS::AtLeastOnce).unwrap()).collect();
    let deadline = Instant::now() + TIMEOUT;
    while received.try_recv().is_err() {
        assert!(Instant::now() < deadline, "the broker did not get the publishes");
        idle(Duration::from_millis(5));
    }
    for &t in &tokens {
        assert_eq!(c.token_state(t), TokenState::Pending, "the broker acknowledges nothing");
    }

    let injected = Instant::now();
    c.inject_panic(site);
    for &t in &tokens {
        let state = wait(c, t, PROMPT);
        assert!(
            matches!(&state, TokenState::Done(r) if is_panic(r)),
            "token {t}: {state:?} after the panic"
        );
    }
    assert!(injected.elapsed() < PROMPT, "took {:?}", injected.elapsed());
    match lost.recv_timeout(PROMPT) {
        Ok(ConnectionEvent::Lost { reason, .. }) => assert!(is_panic(&Err::<(), _>(reason))),
        other => panic!("expected the loss to be reported, got {other:?}"),
    }
    assert_eq!(c.state(), State::Disconnected);
    assert!(is_panic(&publish(c, QoS::AtLeastOnce)), "a publish after the panic");
    assert!(
        is_panic(&publish(c, QoS::AtMostOnce)),
        "a QoS 0 publish after the panic"
    );
    assert!(is_panic(&c.connect()), "a connect after the panic");
    assert_eq!(
        c.state(),
        State::Disconnected,
        "a refused connect leaves the state alone"
    );
    assert!(is_panic(&c.disconnect()), "a disconnect after the panic");
}

/// A client for `address` whose connection events go to the returned receiver.
fn client(address: Address, options: Options) -> (Client, mpsc::Receiver<ConnectionEvent>) {
    let c = Client::new(vec![address], options).unwrap();
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    c.set_on_connection(Some(Arc::new(move |e: &ConnectionEvent| {
        let _ = tx.lock().unwrap().send(e.clone());
    })));
    (c, rx)
}

fn contained_on_threads(site: PanicSite, options: Options) {
    let (received_tx, received) = mpsc::channel();
    let (address, script) = silent_broker(received_tx);
    let (c, lost) = client(address, options);
    pending_tokens_fail_and_the_loss_is_reported(&c, site, &received, &lost, &std::thread::sleep);
    if c.event_mode() {
        // The connection callback runs just before the event is queued: give it that moment.
        let mut events = Vec::new();
        let deadline = Instant::now() + PROMPT;
        while !matches!(
            events.last(),
            Some(ClientEvent::Connection(ConnectionEvent::Lost { .. }))
        ) {
            match c.next_event().unwrap() {
                Some(e) => events.push(e),
                None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
                None => break,
            }
        }
        let failed = events
            .iter()
            .filter(|e| matches!(e, ClientEvent::Completed { result, .. } if is_panic(result)))
            .count();
        assert_eq!(failed, UNACKED, "completion events: {events:?}");
        assert!(
            matches!(
                events.last(),
                Some(ClientEvent::Connection(ConnectionEvent::Lost {
                    reason: Error::Panic(_),
                    ..
                }))
            ),
            "the last event reports the loss: {events:?}"
        );
    }
    let freed = Instant::now();
    drop(c);
    assert!(freed.elapsed() < PROMPT, "free took {:?}", freed.elapsed());
    assert!(!script.join().unwrap(), "the client reconnected after the panic");
}

#[test]
fn a_panic_on_the_network_task_fails_pending_tokens_and_stops_the_client() {
    contained_on_threads(PanicSite::Network, Options::default());
}

#[test]
fn a_panic_on_a_network_thread_running_the_callbacks_stops_the_client() {
    let options = Options {
        inline_callbacks: true,
        ..Options::default()
    };
    contained_on_threads(PanicSite::Network, options);
}

#[test]
fn a_panic_on_the_callback_thread_in_event_mode_queues_the_failures_and_the_loss() {
    let options = Options {
        event_mode: true,
        ..Options::default()
    };
    contained_on_threads(PanicSite::Callback, options);
}

#[test]
fn a_panic_on_the_callback_thread_fails_pending_tokens_and_stops_the_client() {
    contained_on_threads(PanicSite::Callback, Options::default());
}

#[test]
fn a_panic_in_one_client_on_a_loop_leaves_the_loop_and_its_other_clients_working() {
    let broker = Broker::start();
    let lp = Loop::new().unwrap();
    let on_loop = || Options {
        run_loop: Some(lp.clone()),
        ..Options::default()
    };
    let (received_tx, received) = mpsc::channel();
    let (address, script) = silent_broker(received_tx);
    let (stopped, lost) = client(address, on_loop());
    let (other, _) = client(Address::tcp("127.0.0.1", broker.port), on_loop());
    let connect = other.connect().unwrap();
    assert!(matches!(other.wait(connect, TIMEOUT), Some(TokenState::Done(Ok(_)))));

    let run = |d: Duration| lp.run(d).expect("outside the loop");
    pending_tokens_fail_and_the_loss_is_reported(&stopped, PanicSite::Network, &received, &lost, &run);
    let freed = Instant::now();
    drop(stopped);
    assert!(freed.elapsed() < PROMPT, "free took {:?}", freed.elapsed());
    assert!(!script.join().unwrap(), "the client reconnected after the panic");

    assert_eq!(other.state(), State::Connected);
    for _ in 0..3 {
        let t = publish(&other, QoS::AtLeastOnce).unwrap();
        assert_eq!(other.wait(t, TIMEOUT), Some(TokenState::Done(Ok(Default::default()))));
    }
    lp.run(Duration::ZERO).expect("the loop still runs");
}
