//! The outbound QoS 1/2 window once it has been full: it is refilled a quarter at a time (fewer,
//! larger writes), and the acknowledgements it waits for keep coming although the client, holding
//! its publishes back, has no data to carry its TCP ACKs.
mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqttclient::codec::{Ack, MqttStr, Packet, QoS};
use mqttclient::engine::{Client, Options, Token, TokenState};

use common::Broker;
use common::engine::{connect, wait};
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

/// mosquitto leaves Nagle's algorithm on (its `set_tcp_nodelay` is off by default), so it sends
/// one small segment of PUBACKs and holds the next until that one is ACKed; a client that
/// answers with no data lets its kernel delay that ACK up to 40 ms (more on some systems). With a
/// window of 8 refilled two at a time, 1,000 publishes took 5.5 s so (measured); the client asks
/// for the ACK at once instead, and they take about 0.1 s.
#[test]
fn a_held_back_window_does_not_wait_for_delayed_tcp_acks() {
    let broker = Broker::start();
    let client = Client::new(
        vec![format!("mqtt://127.0.0.1:{}", broker.port).parse().unwrap()],
        Options {
            max_inflight: 8,
            auto_reconnect: false,
            ..Options::default()
        },
    )
    .unwrap();
    connect(&client).unwrap();
    let start = Instant::now();
    let mut tokens: HashMap<Token, usize> = HashMap::new();
    for i in 0..1000 {
        let t = client
            .publish(
                MqttStr::new("flow/window").unwrap(),
                Bytes::from(format!("m{i}")),
                QoS::AtLeastOnce,
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
