//! The outgoing budget: a broker that reads but never acknowledges cannot make the client grow.
//! Publishes beyond the limits are refused (or wait, then are refused) with nothing queued, and
//! every publish that was accepted is delivered once the broker acknowledges again.
//!
//! The tests here run one at a time (see `serial`), so that a resident-memory reading is about
//! one client alone.
mod common;

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqttclient::codec::{Ack, MqttStr, Packet, QoS};
use mqttclient::engine::{Client, Error, Limits, Options, Token};

use common::fake::FakeConn;
use common::scripted::{collector, done, ok, options, start};

/// Memory readings need the process to themselves.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Resident memory of this process in KiB.
fn rss_kib() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

const PAYLOAD: usize = 1024;

fn payload(i: usize) -> Bytes {
    let mut p = format!("{i:08}").into_bytes();
    p.resize(PAYLOAD, b'.');
    Bytes::from(p)
}

fn publish(client: &Client, i: usize) -> Result<Token, Error> {
    client.publish(MqttStr::new("out").unwrap(), payload(i), QoS::AtLeastOnce, false)
}

/// Acknowledges PUBLISHes as they come until `n` distinct ones have; returns their payloads'
/// indexes in arrival order.
fn acknowledge(conn: &mut FakeConn, n: usize) -> Vec<usize> {
    let mut seen = Vec::new();
    let mut distinct = HashSet::new();
    while distinct.len() < n {
        let p = conn.expect_publish();
        conn.send(Packet::PubAck(Ack::new(p.pkid)));
        let i: usize = std::str::from_utf8(&p.payload[..8]).unwrap().parse().unwrap();
        if distinct.insert(i) {
            seen.push(i);
        }
    }
    seen
}

#[test]
fn a_broker_that_never_acknowledges_gets_queue_full_and_memory_stays_flat() {
    let _serial = serial();
    const LIMIT: usize = 2_000;
    let (_broker, client, mut conn) = start(Options {
        outgoing: Limits {
            messages: LIMIT,
            bytes: 64 << 20,
        },
        max_inflight: 20,
        ..options()
    });
    let mut tokens = Vec::new();
    let refused = loop {
        match publish(&client, tokens.len()) {
            Ok(t) => tokens.push(t),
            Err(e) => break e,
        }
        assert!(tokens.len() <= LIMIT, "more publishes accepted than the limit");
    };
    assert_eq!(tokens.len(), LIMIT);
    assert!(matches!(refused, Error::OutgoingFull(_)), "{refused}");
    // The broker reads the in-flight window and acknowledges nothing.
    for _ in 0..20 {
        conn.expect_publish();
    }
    conn.expect_silence(Duration::from_millis(100));

    // 100,000 more tries, 100 MiB of payload were they queued: each refused, memory flat.
    let before = rss_kib();
    for i in 0..100_000 {
        assert!(matches!(publish(&client, LIMIT + i), Err(Error::OutgoingFull(_))));
    }
    let grown = rss_kib().saturating_sub(before);
    assert!(grown < 8 << 10, "resident memory grew by {grown} KiB while refusing");

    // The broker resumes: every accepted publish arrives, in order, and its token succeeds.
    let window: Vec<usize> = (0..20).collect();
    let mut arrived = acknowledge_window(&mut conn, &window);
    arrived.extend(acknowledge(&mut conn, LIMIT - 20));
    assert_eq!(arrived, (0..LIMIT).collect::<Vec<_>>());
    for t in tokens {
        assert_eq!(done(&client, t), ok());
    }
    assert!(publish(&client, 0).is_ok(), "room again once acknowledged");
}

/// Acknowledges the PUBLISHes already read (the window's packet ids are 1..=n, in order).
fn acknowledge_window(conn: &mut FakeConn, indexes: &[usize]) -> Vec<usize> {
    for id in 1..=indexes.len() {
        conn.send(Packet::PubAck(Ack::new(id as u16)));
    }
    indexes.to_vec()
}

#[test]
fn the_byte_limit_counts_topic_and_payload_and_refuses_a_message_larger_than_it() {
    let _serial = serial();
    let bytes = 10 * (PAYLOAD + 3);
    let (_broker, client, _conn) = start(Options {
        outgoing: Limits { messages: 1_000, bytes },
        ..options()
    });
    let accepted = (0..).take_while(|&i| publish(&client, i).is_ok()).count();
    assert_eq!(accepted, 10);
    let huge = Bytes::from(vec![0u8; bytes + 1]);
    let (_broker2, fresh, _conn2) = start(Options {
        outgoing: Limits { messages: 1_000, bytes },
        ..options()
    });
    let err = fresh
        .publish(MqttStr::new("out").unwrap(), huge, QoS::AtLeastOnce, false)
        .unwrap_err();
    assert!(matches!(err, Error::OutgoingFull(_)), "{err}");
}

#[test]
fn with_a_wait_a_publish_blocks_until_room_is_made_or_its_time_is_up() {
    let _serial = serial();
    let wait = Duration::from_millis(300);
    let (_broker, client, mut conn) = start(Options {
        outgoing: Limits {
            messages: 4,
            bytes: 1 << 20,
        },
        outgoing_wait: wait,
        ..options()
    });
    let held: Vec<Token> = (0..4).map(|i| publish(&client, i).unwrap()).collect();
    let ids: Vec<u16> = (0..4).map(|_| conn.expect_publish().pkid).collect();

    let start_at = Instant::now();
    assert!(matches!(publish(&client, 4), Err(Error::OutgoingFull(_))));
    assert!(start_at.elapsed() >= wait, "refused before the wait was up");

    std::thread::scope(|s| {
        let blocked = s.spawn(|| {
            let t0 = Instant::now();
            (publish(&client, 5), t0.elapsed())
        });
        std::thread::sleep(Duration::from_millis(100));
        conn.send(Packet::PubAck(Ack::new(ids[0])));
        let (result, took) = blocked.join().unwrap();
        assert!(result.is_ok(), "{result:?}");
        assert!(took < wait, "it waited {took:?}, past the acknowledgement");
    });
    assert_eq!(done(&client, held[0]), ok());
    assert_eq!(conn.expect_publish().payload, payload(5));
}

#[test]
fn a_refused_subscribe_hands_its_handler_back_and_registers_nothing() {
    let _serial = serial();
    let (_broker, client, mut conn) = start(Options {
        outgoing: Limits {
            messages: 1,
            bytes: 1 << 20,
        },
        ..options()
    });
    let held = publish(&client, 0).unwrap();
    let (handler, rx) = collector();
    let rejected = client
        .subscribe(vec![(MqttStr::new("in/#").unwrap(), QoS::AtLeastOnce, handler)])
        .unwrap_err();
    assert!(matches!(rejected.error, Error::OutgoingFull(_)), "{}", rejected.error);
    assert_eq!(rejected.handlers.len(), 1, "the handler comes back to the caller");
    assert!(matches!(
        client.unsubscribe(vec![MqttStr::new("in/#").unwrap()]),
        Err(Error::OutgoingFull(_))
    ));
    // Nothing was registered: a message on the filter finds no handler.
    let p = conn.expect_publish();
    conn.send(Packet::PubAck(Ack::new(p.pkid)));
    assert_eq!(done(&client, held), ok());
    conn.send(Packet::Publish(mqttclient::codec::Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: MqttStr::new("in/x").unwrap(),
        pkid: 0,
        properties: Default::default(),
        payload: Bytes::from_static(b"x"),
    }));
    assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
}
