//! The client side of scripted tests against the fake broker ([`super::fake`]): options suited to
//! scripts, bounded waits on tokens and connection events, and the usual connect / subscribe steps.
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqttclient::codec::{Publish, QoS};
use mqttclient::engine::{Client, ConnectionEvent, Handler, Options, Outcome, State, Token, TokenResult, TokenState};

use super::fake::{FakeBroker, FakeConn, TIMEOUT, mqtt_str};

/// Options for scripted tests: keep-alive off, so no PINGREQ interleaves with the script.
pub fn options() -> Options {
    Options {
        client_id: "fake-test".into(),
        keep_alive: 0,
        connect_timeout: TIMEOUT,
        ..Options::default()
    }
}

/// Waits (bounded) for the token to complete and returns its result.
pub fn done(client: &Client, token: Token) -> TokenResult {
    match client.wait(token, TIMEOUT) {
        Some(TokenState::Done(r)) => r,
        other => panic!("token {token} did not complete within {TIMEOUT:?}: {other:?}"),
    }
}

/// Connects `client` to the next connection of `broker` (CONNACK accepted).
pub fn connect(client: &Client, broker: &FakeBroker) -> FakeConn {
    let token = client.connect().unwrap();
    let mut conn = broker.accept();
    conn.accept_connect();
    // The outcome of a connect is [session present].
    assert_eq!(
        done(client, token),
        Ok(Outcome {
            codes: vec![0],
            ..Outcome::default()
        })
    );
    assert_eq!(client.state(), State::Connected);
    conn
}

/// A fake broker, a client with `options`, and the connection between them.
pub fn start(options: Options) -> (FakeBroker, Client, FakeConn) {
    let broker = FakeBroker::new();
    let client = Client::new(vec![broker.address()], options).unwrap();
    let conn = connect(&client, &broker);
    (broker, client, conn)
}

pub type Events = mpsc::Receiver<(Instant, ConnectionEvent)>;

/// As [`start`], with the client's connection-state changes after the first CONNACK.
pub fn start_watched(options: Options) -> (FakeBroker, Client, FakeConn, Events) {
    let broker = FakeBroker::new();
    let client = Client::new(vec![broker.address()], options).unwrap();
    let events = connection_events(&client);
    let conn = connect(&client, &broker);
    assert!(matches!(next_event(&events), ConnectionEvent::Connected { .. }));
    (broker, client, conn, events)
}

/// A message handler that forwards every message to the returned receiver.
pub fn collector() -> (Handler, mpsc::Receiver<Publish>) {
    let (tx, rx) = mpsc::channel();
    let handler = Handler::Call(Box::new(move |p: &Publish| {
        let _ = tx.send(p.clone());
    }));
    (handler, rx)
}

/// Subscribes to one filter (the fake grants it) and returns what its handler receives.
pub fn subscribe_one(client: &Client, conn: &mut FakeConn, filter: &str, qos: QoS) -> mpsc::Receiver<Publish> {
    let (handler, rx) = collector();
    let token = client.subscribe(vec![(mqtt_str(filter), qos, handler)]).unwrap();
    conn.answer_subscribe(&[qos as u8]);
    assert_eq!(
        done(client, token),
        Ok(Outcome {
            codes: vec![qos as u8],
            ..Outcome::default()
        })
    );
    rx
}

pub fn publish_qos1(client: &Client, topic: &str, payload: &str) -> Token {
    client
        .publish(
            mqtt_str(topic),
            Bytes::copy_from_slice(payload.as_bytes()),
            QoS::AtLeastOnce,
            false,
        )
        .unwrap()
}

pub fn ok() -> TokenResult {
    Ok(Default::default())
}

/// Reconnects quickly and says so: for tests where the connection is lost on purpose.
pub fn reconnecting() -> Options {
    Options {
        clean_session: false,
        auto_reconnect: true,
        reconnect_min: Duration::from_millis(20),
        reconnect_max: Duration::from_millis(40),
        ..options()
    }
}

/// Every connection-state change of `client` from now on, with when it was seen.
pub fn connection_events(client: &Client) -> Events {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    client.set_on_connection(Some(Arc::new(move |e: &ConnectionEvent| {
        let _ = tx.lock().unwrap().send((Instant::now(), e.clone()));
    })));
    rx
}

pub fn next_event(events: &Events) -> ConnectionEvent {
    events.recv_timeout(TIMEOUT).expect("a connection event").1
}
