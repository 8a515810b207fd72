//! `ack_after_callback`: an inbound QoS 1/2 message is acknowledged only once the application is
//! done with it, in arrival order, and never on a later connection than its own. Exact packets
//! against the scripted fake broker; against a real mosquitto, what a persistent-session
//! subscriber freed with messages still queued for its callback gets back, with the option and
//! without it.
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqttclient::codec::{Ack, Packet, Publish, QoS};
use mqttclient::engine::{Address, Client, ClientEvent, Handler, Loop, Options, PendingAck};

use common::Broker;
use common::engine::{connect, wait};
use common::fake::{FakeBroker, FakeConn, TIMEOUT, mqtt_str, publish};
use common::scripted;

/// How long the fake broker listens to be sure nothing is sent.
const QUIET: Duration = Duration::from_millis(300);

fn text(p: &Publish) -> String {
    String::from_utf8_lossy(&p.payload).into_owned()
}

/// A message callback that says which message it started on, then returns only when the test
/// lets it (or after [`TIMEOUT`], so that a failing test still ends), noting when it returned.
struct Gate {
    entered: Receiver<Publish>,
    go: Sender<()>,
    returned: Arc<Mutex<Vec<(String, Instant)>>>,
}

impl Gate {
    fn new() -> (Gate, Handler) {
        let (entered_tx, entered) = mpsc::channel();
        let (go, go_rx) = mpsc::channel::<()>();
        let go_rx = Mutex::new(go_rx);
        let returned = Arc::new(Mutex::new(Vec::new()));
        let log = returned.clone();
        let handler = Handler::Call(Box::new(move |p: &Publish| {
            let _ = entered_tx.send(p.clone());
            let _ = go_rx.lock().unwrap().recv_timeout(TIMEOUT);
            log.lock().unwrap().push((text(p), Instant::now()));
        }));
        (Gate { entered, go, returned }, handler)
    }

    /// Waits for the callback to start on the message `payload`.
    fn entered(&self, payload: &str) -> Publish {
        let p = self
            .entered
            .recv_timeout(TIMEOUT)
            .unwrap_or_else(|_| panic!("the callback did not start on \"{payload}\""));
        assert_eq!(text(&p), payload, "messages reach the callback in arrival order");
        p
    }

    /// Lets the running callback return.
    fn open(&self) {
        self.go.send(()).unwrap();
    }

    /// Frees `client` while its callback is held here: the free waits for the callback, which
    /// is let go while the free is under way.
    fn free_during_callback(&self, client: Client) {
        let go = self.go.clone();
        let opener = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            let _ = go.send(());
        });
        drop(client);
        opener.join().unwrap();
    }

    fn returned_at(&self, payload: &str) -> Instant {
        let returned = self.returned.lock().unwrap();
        returned
            .iter()
            .find(|(p, _)| p == payload)
            .unwrap_or_else(|| panic!("the callback of \"{payload}\" did not return"))
            .1
    }
}

fn options(inline_callbacks: bool) -> Options {
    Options {
        ack_after_callback: true,
        inline_callbacks,
        ..scripted::reconnecting()
    }
}

/// A PUBLISH the broker sends again after a reconnect.
fn resent(topic: &str, qos: QoS, pkid: u16, payload: &[u8]) -> Packet {
    Packet::Publish(Publish {
        dup: true,
        ..publish(topic, qos, pkid, payload)
    })
}

/// Subscribes `handler` to "t/#" at QoS 2 on the scripted connection.
fn subscribe_all(client: &Client, conn: &mut FakeConn, handler: Handler) {
    let token = client
        .subscribe(vec![(mqtt_str("t/#"), QoS::ExactlyOnce, handler)])
        .unwrap();
    conn.grant_subscribe();
    assert_eq!(scripted::done(client, token).map(|o| o.codes), Ok(vec![2]));
}

/// A fake broker and a client on it with `options`, subscribed to "t/#" through a [`Gate`].
fn gated(options: Options) -> (FakeBroker, Client, FakeConn, Gate) {
    let (broker, client, mut conn) = scripted::start(options);
    let (gate, handler) = Gate::new();
    subscribe_all(&client, &mut conn, handler);
    (broker, client, conn, gate)
}

/// Three messages, QoS 1, 2, 1, by name (also their payload, under "t/") and packet id.
const ABC: [(&str, QoS, u16); 3] = [
    ("a", QoS::AtLeastOnce, 1),
    ("b", QoS::ExactlyOnce, 2),
    ("c", QoS::AtLeastOnce, 3),
];

/// The broker sends `messages` (see [`ABC`]).
fn send_messages(conn: &mut FakeConn, messages: &[(&str, QoS, u16)]) {
    for (name, qos, id) in messages {
        conn.send(Packet::Publish(publish(
            &format!("t/{name}"),
            *qos,
            *id,
            name.as_bytes(),
        )));
    }
}

/// Three messages, QoS 1, 2, 1, each held in its callback for a while: no acknowledgement goes
/// before its callback returned, and they go in arrival order. On the callback thread, and inline
/// on the network thread.
fn acks_wait_for_the_callbacks(inline: bool) {
    let (_broker, _client, mut conn, gate) = gated(options(inline));
    send_messages(&mut conn, &ABC);
    gate.entered("a");
    conn.expect_silence(QUIET);
    gate.open();
    gate.entered("b");
    std::thread::sleep(Duration::from_millis(50));
    gate.open();
    gate.entered("c");
    std::thread::sleep(Duration::from_millis(50));
    gate.open();
    let expected = [
        (Packet::PubAck(Ack::new(1)), "a"),
        (Packet::PubRec(Ack::new(2)), "b"),
        (Packet::PubAck(Ack::new(3)), "c"),
    ];
    for (ack, payload) in expected {
        let got = conn.expect_packet(&ack);
        assert!(
            got.at >= gate.returned_at(payload),
            "{ack:?} arrived before the callback of \"{payload}\" returned"
        );
    }
    conn.send(Packet::PubRel(Ack::new(2)));
    conn.expect_packet(&Packet::PubComp(Ack::new(2)));
    conn.expect_silence(QUIET);
}

#[test]
fn no_ack_goes_before_the_callback_returns_and_acks_keep_arrival_order() {
    acks_wait_for_the_callbacks(false);
}

#[test]
fn with_inline_callbacks_no_ack_goes_before_the_callback_returns_and_acks_keep_arrival_order() {
    acks_wait_for_the_callbacks(true);
}

/// The client is freed while the callback of a QoS 1 message runs and a QoS 2 one waits behind
/// it: neither is acknowledged, so a broker keeping the session delivers both again.
fn freed_in_the_callback_sends_no_ack(options: Options) {
    // A loop's client advances only where the loop runs: on a thread of its own here.
    let stop = Arc::new(AtomicBool::new(false));
    let runner = options.run_loop.clone().map(|lp| {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Acquire) {
                lp.run(Duration::from_millis(10)).unwrap();
            }
        })
    });
    let (_broker, client, mut conn, gate) = gated(options);
    send_messages(&mut conn, &ABC[..2]);
    gate.entered("a");
    gate.free_during_callback(client);
    stop.store(true, Ordering::Release);
    if let Some(runner) = runner {
        runner.join().unwrap();
    }
    conn.expect_eof(TIMEOUT);
}

#[test]
fn freeing_the_client_while_the_callback_runs_sends_no_ack() {
    freed_in_the_callback_sends_no_ack(options(false));
}

#[test]
fn with_inline_callbacks_freeing_the_client_while_the_callback_runs_sends_no_ack() {
    freed_in_the_callback_sends_no_ack(options(true));
}

#[test]
fn on_a_loop_freeing_the_client_while_the_callback_runs_sends_no_ack() {
    freed_in_the_callback_sends_no_ack(Options {
        run_loop: Some(Loop::new().unwrap()),
        ..options(false)
    });
}

/// A disconnect waits (within the disconnect timeout) for the acknowledgement of a message being
/// handled, as it does for outbound ones: the PUBACK goes, then DISCONNECT.
#[test]
fn a_disconnect_waits_for_the_ack_of_a_message_being_handled() {
    let (_broker, client, mut conn, gate) = gated(options(false));
    send_messages(&mut conn, &ABC[..1]);
    gate.entered("a");
    let token = client.disconnect().unwrap();
    conn.expect_silence(QUIET);
    gate.open();
    conn.expect_packet(&Packet::PubAck(Ack::new(1)));
    conn.expect("DISCONNECT", |p| matches!(p, Packet::Disconnect(_)));
    assert_eq!(scripted::done(&client, token), scripted::ok());
}

/// The connection is lost while a QoS 1 and a QoS 2 message are being handled: their
/// acknowledgements are not sent on the next connection, where the broker resends both (DUP),
/// and both are delivered and acknowledged again.
#[test]
fn an_ack_owed_by_a_lost_connection_is_not_sent_on_the_next() {
    let (broker, _client, mut conn, gate) = gated(options(false));
    send_messages(&mut conn, &[("x", QoS::AtLeastOnce, 5), ("y", QoS::ExactlyOnce, 6)]);
    gate.entered("x");
    conn.close();
    let mut conn = broker.accept();
    conn.resume_connect();
    // Both callbacks return on the new connection.
    gate.open();
    gate.entered("y");
    gate.open();
    conn.expect_silence(QUIET);
    conn.send(resent("t/x", QoS::AtLeastOnce, 5, b"x"));
    conn.send(resent("t/y", QoS::ExactlyOnce, 6, b"y"));
    assert!(gate.entered("x").dup);
    gate.open();
    assert!(
        gate.entered("y").dup,
        "a QoS 2 message whose PUBREC never went is delivered again"
    );
    gate.open();
    conn.expect_packet(&Packet::PubAck(Ack::new(5)));
    conn.expect_packet(&Packet::PubRec(Ack::new(6)));
    conn.send(Packet::PubRel(Ack::new(6)));
    conn.expect_packet(&Packet::PubComp(Ack::new(6)));
    conn.expect_silence(QUIET);
}

/// Event mode: the next message event within [`TIMEOUT`], skipping completions and connection
/// changes; its payload and the hold on its acknowledgement.
fn next_message(client: &Client) -> (String, PendingAck) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match client.next_event().unwrap() {
            Some(ClientEvent::Message { publish, ack, .. }) => {
                return (
                    text(&publish),
                    ack.expect("a QoS 1/2 message's acknowledgement is held"),
                );
            }
            Some(_) => {}
            None => {
                assert!(Instant::now() < deadline, "no message event within {TIMEOUT:?}");
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// Event mode: an acknowledgement goes when the application releases its message's event (what
/// `mqttc_event_free` does), and only after those of the messages that arrived before it.
#[test]
fn in_event_mode_the_ack_goes_when_its_event_is_released_after_those_before_it() {
    let (_broker, client, mut conn) = scripted::start(Options {
        event_mode: true,
        ..options(false)
    });
    let queued = Handler::Queue {
        key: 1,
        guard: Box::new(()),
    };
    subscribe_all(&client, &mut conn, queued);
    send_messages(&mut conn, &ABC);
    let held: Vec<_> = (0..3).map(|_| next_message(&client)).collect();
    assert_eq!(
        held.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
    conn.expect_silence(QUIET);
    let mut held = held.into_iter().map(|(_, ack)| ack);
    let (a, b, c) = (held.next().unwrap(), held.next().unwrap(), held.next().unwrap());
    c.release();
    b.release();
    conn.expect_silence(QUIET);
    a.release();
    conn.expect_packet(&Packet::PubAck(Ack::new(1)));
    conn.expect_packet(&Packet::PubRec(Ack::new(2)));
    conn.expect_packet(&Packet::PubAck(Ack::new(3)));
}

/// Against mosquitto: a persistent-session subscriber gets ten messages, QoS 1 and 2 in turn, and
/// is freed while its callback still holds the first one (the other nine wait behind it). Then a
/// new client with the same id connects. Returns what the first client's callback started on,
/// and what the second one received.
fn freed_with_messages_queued(tag: &str, ack_after_callback: bool) -> (Vec<String>, Vec<String>) {
    const N: usize = 10;
    let broker = Broker::start();
    let id = format!("ack-{tag}");
    let filter = format!("ack/{tag}/#");
    let subscriber_options = || Options {
        client_id: id.clone(),
        clean_session: false,
        ack_after_callback,
        ..Options::default()
    };
    let address = || vec![Address::tcp("127.0.0.1", broker.port)];
    let first = Client::new(address(), subscriber_options()).unwrap();
    connect(&first).unwrap();
    let (gate, handler) = Gate::new();
    let token = first
        .subscribe(vec![(mqtt_str(&filter), QoS::ExactlyOnce, handler)])
        .unwrap();
    assert_eq!(wait(&first, token).map(|o| o.codes), Ok(vec![2]));

    let publisher = Client::new(address(), Options::default()).unwrap();
    connect(&publisher).unwrap();
    let tokens: Vec<_> = (0..N)
        .map(|i| {
            let qos = [QoS::AtLeastOnce, QoS::ExactlyOnce][i % 2];
            let topic = mqtt_str(&format!("ack/{tag}/{i}"));
            publisher
                .publish(topic, Bytes::from(format!("m{i}")), qos, false)
                .unwrap()
        })
        .collect();
    for t in tokens {
        wait(&publisher, t).unwrap();
    }
    let seen = vec![text(&gate.entered("m0"))];
    // Time for the other nine to reach the client, which without the option acknowledges them.
    std::thread::sleep(QUIET);
    gate.free_during_callback(first);

    let second = Client::new(address(), subscriber_options()).unwrap();
    // Registered before the connect, so the messages the session delivers at once find it.
    let (tx, rx) = mpsc::channel();
    let collect = Handler::Call(Box::new(move |p: &Publish| {
        let _ = tx.send(text(p));
    }));
    let token = second
        .subscribe(vec![(mqtt_str(&filter), QoS::ExactlyOnce, collect)])
        .unwrap();
    assert_eq!(connect(&second).map(|o| o.codes), Ok(vec![1]), "session present");
    wait(&second, token).unwrap();
    // Until each has come (duplicates allowed), or for a while when they do not.
    let mut received = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    while distinct(&received) < N {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(p) => received.push(p),
            Err(_) => break,
        }
    }
    (seen, received)
}

fn distinct(payloads: &[String]) -> usize {
    payloads.iter().collect::<std::collections::HashSet<_>>().len()
}

#[test]
fn with_ack_after_callback_a_freed_subscriber_s_unhandled_messages_reach_the_next_client() {
    let (seen, mut received) = freed_with_messages_queued("on", true);
    assert_eq!(seen, ["m0"]);
    received.sort_by_key(|p| p[1..].parse::<usize>().unwrap());
    received.dedup();
    let all: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
    assert_eq!(
        received, all,
        "every message whose callback did not return before the free comes back"
    );
}

#[test]
fn without_ack_after_callback_messages_queued_for_the_callback_are_lost_when_the_client_is_freed() {
    let (seen, received) = freed_with_messages_queued("off", false);
    assert_eq!(seen, ["m0"]);
    assert_eq!(
        received,
        Vec::<String>::new(),
        "acknowledged on arrival: the broker forgot them"
    );
}

/// The option off, the same scripted exchange acknowledges each message as soon as it is read,
/// while its callback is still running: what the option changes.
#[test]
fn without_ack_after_callback_the_ack_goes_while_the_callback_runs() {
    let (_broker, _client, mut conn, gate) = gated(scripted::reconnecting());
    send_messages(&mut conn, &ABC[..1]);
    gate.entered("a");
    conn.expect_packet(&Packet::PubAck(Ack::new(1)));
    gate.open();
}
