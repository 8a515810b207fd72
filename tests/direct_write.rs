//! QoS 0 publishes written on the caller's thread while the connection is idle (engine/direct.rs),
//! against a real mosquitto: a lone publish is on the wire before `publish` returns, and mixing
//! such writes with the network task's own keeps every caller's order and every byte.
mod common;

use std::time::Duration;

use bytes::Bytes;
use mqttclient::codec::{MqttStr, QoS};
use mqttclient::engine::{Client, Options, TokenState};

use common::Broker;
use common::engine::{T, connect, subscribe, wait};

fn connected(broker: &Broker) -> Client {
    let client = Client::new(
        vec![format!("mqtt://127.0.0.1:{}", broker.port).parse().unwrap()],
        Options {
            auto_reconnect: false,
            ..Options::default()
        },
    )
    .unwrap();
    connect(&client).unwrap();
    client
}

fn topic(t: &str) -> MqttStr {
    MqttStr::new(t).unwrap()
}

#[test]
fn a_lone_qos0_publish_is_written_before_publish_returns() {
    let broker = Broker::start();
    let client = connected(&broker);
    let inbox = subscribe(&client, "direct/lone", QoS::AtMostOnce);
    for i in 0..20 {
        // Idle long enough that this is no burst (see direct::BURST_GAP).
        std::thread::sleep(Duration::from_millis(5));
        let payload = Bytes::from(format!("m{i}"));
        let t = client
            .publish(topic("direct/lone"), payload.clone(), QoS::AtMostOnce, false)
            .unwrap();
        assert!(
            matches!(client.token_state(t), TokenState::Done(Ok(_))),
            "publish {i}: written by the caller, so complete at once"
        );
        assert_eq!(inbox.recv_timeout(T).unwrap().payload, payload);
    }
}

#[test]
fn publishes_keep_their_order_across_direct_and_queued_writes() {
    let broker = Broker::start();
    let client = connected(&broker);
    // Received at QoS 0, so the broker forwards every message as it arrives: at QoS 1 it would
    // hold QoS 1 messages back behind its in-flight window to a slow subscriber (a loaded
    // machine) while QoS 0 ones went on, and the order seen would be the broker's.
    let inbox = subscribe(&client, "direct/order", QoS::AtMostOnce);
    const N: usize = 300;
    let mut tokens = Vec::new();
    for i in 0..N {
        // A pause makes the next QoS 0 publish a lone one (written directly); QoS 1 always goes
        // through the network task, and so does a QoS 0 publish right behind another.
        let qos = match i % 3 {
            0 => {
                std::thread::sleep(Duration::from_micros(300));
                QoS::AtMostOnce
            }
            1 => QoS::AtLeastOnce,
            _ => QoS::AtMostOnce,
        };
        let t = client
            .publish(topic("direct/order"), Bytes::from(i.to_string()), qos, false)
            .unwrap();
        tokens.push(t);
    }
    for t in tokens {
        assert!(wait(&client, t).is_ok());
    }
    let got: Vec<String> = (0..N)
        .map(|_| String::from_utf8(inbox.recv_timeout(T).unwrap().payload.to_vec()).unwrap())
        .collect();
    let want: Vec<String> = (0..N).map(|i| i.to_string()).collect();
    assert_eq!(got, want);
}

#[test]
fn a_lone_publish_larger_than_the_socket_buffer_arrives_whole_and_first() {
    let broker = Broker::start();
    let subscriber = connected(&broker);
    let inbox = subscribe(&subscriber, "direct/big", QoS::AtMostOnce);
    let publisher = connected(&broker);
    std::thread::sleep(Duration::from_millis(20));
    // Far more than a loopback socket buffer takes at once: the caller writes part of it and the
    // network task the rest, before the small publish made right after.
    let big = Bytes::from((0..16 << 20).map(|i: u32| (i % 251) as u8).collect::<Vec<u8>>());
    let t_big = publisher
        .publish(topic("direct/big"), big.clone(), QoS::AtMostOnce, false)
        .unwrap();
    let t_small = publisher
        .publish(
            topic("direct/big"),
            Bytes::from_static(b"after"),
            QoS::AtMostOnce,
            false,
        )
        .unwrap();
    assert!(wait(&publisher, t_big).is_ok());
    assert!(wait(&publisher, t_small).is_ok());
    let first = inbox.recv_timeout(T).unwrap().payload;
    assert!(
        first == big,
        "the large payload arrives whole ({} of {} bytes)",
        first.len(),
        big.len()
    );
    assert_eq!(inbox.recv_timeout(T).unwrap().payload, Bytes::from_static(b"after"));
}
