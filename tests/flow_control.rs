//! The outbound QoS 1/2 window once it has been full: it is refilled a quarter at a time (fewer,
//! larger writes), QoS 2 PUBRELs go out in batches too, and the acknowledgements the client waits
//! for keep coming although, holding its packets back, it has no data to carry its TCP ACKs.
mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqttclient::codec::{Ack, MqttStr, Packet, QoS};
use mqttclient::engine::{Client, Options, Token, TokenState};

use common::Broker;
use common::engine::{connect, subscribe, wait};
use common::scripted::{done, ok, options, publish_qos1, start};

#[test]
fn a_full_window_is_refilled_once_a_quarter_of_it_is_free() {
    const WINDOW: usize = 8;
    let (_broker, client, mut conn) = start(Options {
        max_inflight: WINDOW,
        ..options()
    });
    let tokens: Vec<Token> = (0..WINDOW + 4)
        .map(|i| publish_qos1(&client, "win", &format!("m{i}")))
        .collect();
    let mut ids: Vec<u16> = (0..WINDOW).map(|_| conn.expect_publish().pkid).collect();
    conn.expect_silence(Duration::from_millis(100));

    conn.send(Packet::PubAck(Ack::new(ids.remove(0))));
    assert_eq!(done(&client, tokens[0]), ok());
    conn.expect_silence(Duration::from_millis(100));

    // The second free slot of eight is a quarter: two publishes go, in submission order.
    conn.send(Packet::PubAck(Ack::new(ids.remove(0))));
    let refill: Vec<Bytes> = (0..2).map(|_| conn.expect_publish().payload).collect();
    assert_eq!(refill, [Bytes::from("m8"), Bytes::from("m9")]);
    conn.expect_silence(Duration::from_millis(100));
}

#[test]
fn pubrels_go_out_a_quarter_of_the_window_at_a_time_or_after_the_last_pubrec() {
    let (_broker, client, mut conn) = start(Options {
        max_inflight: 8,
        ..options()
    });
    let tokens: Vec<Token> = (0..4)
        .map(|i| {
            let payload = Bytes::from(format!("m{i}"));
            client
                .publish(MqttStr::new("rel").unwrap(), payload, QoS::ExactlyOnce, false)
                .unwrap()
        })
        .collect();
    let ids: Vec<u16> = (0..4).map(|_| conn.expect_publish().pkid).collect();
    let expect_pubrels = |conn: &mut common::fake::FakeConn, ids: &[u16]| {
        for &id in ids {
            conn.expect_packet(&Packet::PubRel(Ack::new(id)));
        }
    };

    conn.send(Packet::PubRec(Ack::new(ids[0])));
    conn.expect_silence(Duration::from_millis(100));
    // Two of a window of eight are a quarter.
    conn.send(Packet::PubRec(Ack::new(ids[1])));
    expect_pubrels(&mut conn, &ids[..2]);
    conn.send(Packet::PubRec(Ack::new(ids[2])));
    conn.expect_silence(Duration::from_millis(100));
    // No PUBREC is awaited any more: nothing else would release the one held.
    conn.send(Packet::PubRec(Ack::new(ids[3])));
    expect_pubrels(&mut conn, &ids[2..]);

    for (&id, &t) in ids.iter().zip(&tokens) {
        conn.send(Packet::PubComp(Ack::new(id)));
        assert_eq!(done(&client, t), ok());
    }
}

/// mosquitto leaves Nagle's algorithm on (its `set_tcp_nodelay` is off by default), so it sends
/// one small segment of PUBACKs and holds the next until that one is ACKed; a client that
/// answers with no data lets its kernel delay that ACK up to 40 ms (more on some systems). With a
/// window of 8 refilled two at a time, 1,000 publishes would take seconds so; the client asks for
/// the ACK at once instead, and they take a fraction of a second.
#[test]
fn a_held_back_qos1_window_does_not_wait_for_delayed_tcp_acks() {
    publish_1000_through_a_window_of_8(QoS::AtLeastOnce);
}

/// The same with PUBRELs held back as well.
#[test]
fn a_held_back_qos2_window_does_not_wait_for_delayed_tcp_acks() {
    publish_1000_through_a_window_of_8(QoS::ExactlyOnce);
}

/// Acknowledgements awaited with nothing to write back happen without a full window too: a burst
/// of 8 publishes gets its first PUBACK or PUBREC (or PUBCOMP) in a segment of its own, and
/// mosquitto sends the others once that one is ACKed. Without an ACK at once, each burst of 8
/// took 44 ms at QoS 1 (88 ms at QoS 2 with its PUBRELs held back).
#[test]
fn qos1_bursts_do_not_wait_for_delayed_tcp_acks() {
    bursts_of_8(QoS::AtLeastOnce);
}

#[test]
fn qos2_bursts_do_not_wait_for_delayed_tcp_acks() {
    bursts_of_8(QoS::ExactlyOnce);
}

fn bursts_of_8(qos: QoS) {
    let (_broker, client) = connected_to_mosquitto(window_of_8());
    let start = Instant::now();
    for burst in 0..50 {
        let tokens: Vec<Token> = (0..8)
            .map(|i| {
                let payload = Bytes::from(format!("b{burst} m{i}"));
                client
                    .publish(MqttStr::new("flow/burst").unwrap(), payload, qos, false)
                    .unwrap()
            })
            .collect();
        for t in tokens {
            assert!(wait(&client, t).is_ok(), "burst {burst}");
        }
    }
    let took = start.elapsed();
    assert!(
        took < Duration::from_millis(1000),
        "50 bursts of 8 took {took:?}: delayed ACKs were waited for"
    );
}

/// A client with `options` (no automatic reconnect), connected to a mosquitto of its own.
fn connected_to_mosquitto(options: Options) -> (Broker, Client) {
    let broker = Broker::start();
    let client = client_of(&broker, options);
    (broker, client)
}

/// A window of 8.
fn window_of_8() -> Options {
    Options {
        max_inflight: 8,
        ..Options::default()
    }
}

/// A client with `options` (no automatic reconnect), connected to `broker`.
fn client_of(broker: &Broker, options: Options) -> Client {
    let client = Client::new(
        vec![format!("mqtt://127.0.0.1:{}", broker.port).parse().unwrap()],
        Options {
            auto_reconnect: false,
            ..options
        },
    )
    .unwrap();
    connect(&client).unwrap();
    client
}

fn publish_1000_through_a_window_of_8(qos: QoS) {
    let (_broker, client) = connected_to_mosquitto(window_of_8());
    let start = Instant::now();
    let mut tokens: HashMap<Token, usize> = HashMap::new();
    for i in 0..1000 {
        let t = client
            .publish(
                MqttStr::new("flow/window").unwrap(),
                Bytes::from(format!("m{i}")),
                qos,
                false,
            )
            .unwrap();
        tokens.insert(t, i);
    }
    for (&t, &i) in &tokens {
        assert!(wait(&client, t).is_ok(), "publish {i}");
    }
    let took = start.elapsed();
    assert!(
        took < Duration::from_millis(2500),
        "1,000 publishes through a window of 8 took {took:?}: delayed ACKs were waited for"
    );
    assert!(
        tokens
            .keys()
            .all(|&t| matches!(client.token_state(t), TokenState::Done(Ok(_))))
    );
}

/// mosquitto sends a retained message right behind the SUBACK, and its Nagle holds it until the
/// SUBACK is ACKed. The subscriber has just written its SUBSCRIBE, so its kernel would hold that
/// ACK up to 40 ms (as libmosquitto's subscribers wait); the client sends it 25 us after the
/// SUBACK instead. Timed from the subscribe call to the message, median of 5 fresh subscriptions.
#[test]
fn a_retained_message_arrives_within_milliseconds_of_subscribing() {
    let (_broker, client) = connected_to_mosquitto(Options::default());
    let mut took = Vec::new();
    for i in 0..5 {
        let topic = format!("flow/retained/{i}");
        let t = client
            .publish(
                MqttStr::new(&topic).unwrap(),
                Bytes::from("state"),
                QoS::AtLeastOnce,
                true,
            )
            .unwrap();
        assert!(wait(&client, t).is_ok());
        let start = Instant::now();
        let rx = subscribe(&client, &topic, QoS::AtMostOnce);
        let p = rx.recv_timeout(Duration::from_secs(5)).expect("the retained message");
        took.push(start.elapsed());
        assert_eq!(&p.payload[..], b"state");
    }
    took.sort();
    assert!(
        took[2] < Duration::from_millis(5),
        "retained messages took {took:?} after the subscribe: a delayed TCP ACK was waited for"
    );
}

/// A resumed session's queued messages come right behind the CONNACK, which mosquitto's Nagle
/// would hold them behind until it is ACKed. Unlike a SUBACK, no ACK needs asking for: CONNECT is
/// the first data on the connection, so the kernel is not yet holding ACKs back and ACKs the
/// CONNACK when it is read. This guards that path: timed from the connect call to the queued
/// message, median of 5 reconnections.
#[test]
fn a_resumed_sessions_queued_message_arrives_within_milliseconds_of_connecting() {
    let (broker, client) = connected_to_mosquitto(Options {
        client_id: "flow-resumed".into(),
        clean_session: false,
        ..Options::default()
    });
    let rx = subscribe(&client, "flow/queued", QoS::AtLeastOnce);
    let publisher = client_of(&broker, Options::default());
    let mut took = Vec::new();
    for i in 0..5 {
        assert!(wait(&client, client.disconnect().unwrap()).is_ok());
        let payload = Bytes::from(format!("queued {i}"));
        let t = publisher
            .publish(
                MqttStr::new("flow/queued").unwrap(),
                payload.clone(),
                QoS::AtLeastOnce,
                false,
            )
            .unwrap();
        assert!(wait(&publisher, t).is_ok());
        let start = Instant::now();
        connect(&client).unwrap();
        let p = rx.recv_timeout(Duration::from_secs(5)).expect("the queued message");
        took.push(start.elapsed());
        assert_eq!(p.payload, payload);
    }
    took.sort();
    assert!(
        took[2] < Duration::from_millis(5),
        "queued messages took {took:?} after the connect: a delayed TCP ACK was waited for"
    );
}
