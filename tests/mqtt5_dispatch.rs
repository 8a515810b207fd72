//! How inbound messages find their handlers under MQTT 5, against the scripted fake broker (which
//! chooses exactly what identifiers a message carries): Subscription Identifiers on SUBSCRIBE and
//! the routing they give, their absence when the broker takes none, and shared subscriptions.
mod common;

use std::sync::mpsc::Receiver;
use std::time::Duration;

use mqttclient::codec::{ConnAck, Packet, Properties, PropertyId, Publish, QoS, ReasonCode, SubAck, Version};
use mqttclient::engine::{Client, Options};

use common::fake::{FakeBroker, FakeConn, TIMEOUT, mqtt_str, publish};
use common::scripted::{collector, done, options};

fn with_version(version: Version) -> Options {
    Options {
        version,
        reconnect_min: Duration::from_millis(100),
        ..options()
    }
}

/// A v5 client connected to the fake broker, whose CONNACK carries `connack`.
fn connected(connack: Properties) -> (FakeBroker, Client, FakeConn) {
    let broker = FakeBroker::new();
    let client = Client::new(vec![broker.address()], with_version(Version::V5)).unwrap();
    let token = client.connect().unwrap();
    let mut conn = broker.accept();
    conn.expect_connect();
    conn.send(Packet::ConnAck(ConnAck {
        properties: connack,
        ..ConnAck::accepted(false)
    }));
    done(&client, token).unwrap();
    (broker, client, conn)
}

/// Subscribes to one filter, lets the fake grant it, and returns the handler's messages and the
/// Subscription Identifier the SUBSCRIBE carried (None without one).
fn subscribe(client: &Client, conn: &mut FakeConn, filter: &str) -> (Receiver<Publish>, Option<u32>) {
    let (handler, rx) = collector();
    let token = client
        .subscribe(vec![(mqtt_str(filter), QoS::AtMostOnce, handler)])
        .unwrap();
    let sub = conn.grant_subscribe();
    assert_eq!(
        sub.filters[0].0.as_str(),
        filter,
        "the SUBSCRIBE names the filter as given"
    );
    assert_eq!(done(client, token).map(|_| ()), Ok(()));
    (rx, sub.properties.int(PropertyId::SubscriptionIdentifier))
}

fn message(topic: &str, sub_ids: &[u32]) -> Packet {
    let mut p = publish(topic, QoS::AtMostOnce, 0, b"m");
    for &id in sub_ids {
        p.properties.push_int(PropertyId::SubscriptionIdentifier, id).unwrap();
    }
    Packet::Publish(p)
}

/// How many messages each receiver gets from one message, after giving it time to arrive.
fn deliveries(rxs: &[&Receiver<Publish>]) -> Vec<usize> {
    std::thread::sleep(Duration::from_millis(200));
    rxs.iter().map(|rx| rx.try_iter().count()).collect()
}

#[test]
fn subscription_identifiers_route_each_message_to_the_subscriptions_they_name() {
    let (_broker, client, mut conn) = connected(Properties::new());
    let (all, id_all) = subscribe(&client, &mut conn, "a/#");
    let (one, id_one) = subscribe(&client, &mut conn, "a/+");
    let (id_all, id_one) = (id_all.expect("an identifier"), id_one.expect("an identifier"));
    assert_ne!(id_all, id_one, "each SUBSCRIBE has its own identifier");

    conn.send(message("a/b", &[id_all]));
    assert_eq!(deliveries(&[&all, &one]), [1, 0], "the copy for a/# only");
    conn.send(message("a/b", &[id_one]));
    assert_eq!(deliveries(&[&all, &one]), [0, 1], "the copy for a/+ only");
    conn.send(message("a/b", &[id_all, id_one]));
    assert_eq!(deliveries(&[&all, &one]), [1, 1], "one copy naming both");
    conn.send(message("a/b", &[]));
    assert_eq!(
        deliveries(&[&all, &one]),
        [1, 1],
        "no identifier: every matching filter"
    );
    conn.send(message("a/b", &[id_all + 1000]));
    assert_eq!(
        deliveries(&[&all, &one]),
        [1, 1],
        "an identifier never given: matched instead"
    );
}

#[test]
fn a_new_session_subscribes_again_with_each_subscriptions_own_identifier() {
    let (broker, client, mut conn) = connected(Properties::new());
    let (_all, id_all) = subscribe(&client, &mut conn, "a/#");
    let (_one, id_one) = subscribe(&client, &mut conn, "b/+");
    drop(conn);
    let mut conn = broker.accept();
    conn.accept_connect(); // no session present: the client must subscribe again
    let mut again = Vec::new();
    for _ in 0..2 {
        let sub = conn.grant_subscribe();
        let filters: Vec<&str> = sub.filters.iter().map(|(f, _)| f.as_str()).collect();
        again.push((
            filters.join(","),
            sub.properties.int(PropertyId::SubscriptionIdentifier),
        ));
    }
    again.sort();
    assert_eq!(
        again,
        [("a/#".to_string(), id_all), ("b/+".to_string(), id_one)],
        "one SUBSCRIBE per original one, with its identifier"
    );
}

#[test]
fn a_broker_that_takes_no_identifiers_gets_none_and_messages_are_matched() {
    let mut connack = Properties::new();
    connack
        .push_int(PropertyId::SubscriptionIdentifierAvailable, 0)
        .unwrap();
    let (_broker, client, mut conn) = connected(connack);
    let (rx, id) = subscribe(&client, &mut conn, "x/+");
    assert_eq!(
        id, None,
        "no Subscription Identifier for a broker that said it takes none"
    );
    conn.send(message("x/y", &[]));
    assert_eq!(
        rx.recv_timeout(TIMEOUT).map(|p| p.topic.as_str().to_owned()),
        Ok("x/y".into())
    );
}

#[test]
fn a_shared_subscription_gets_messages_on_its_filter_in_both_versions() {
    for version in [Version::V311, Version::V5] {
        let broker = FakeBroker::new();
        let client = Client::new(vec![broker.address()], with_version(version)).unwrap();
        let token = client.connect().unwrap();
        let mut conn = broker.accept();
        conn.accept_connect();
        done(&client, token).unwrap();
        let (shared, _) = subscribe(&client, &mut conn, "$share/g/s/+");
        conn.send(message("s/x", &[]));
        let got = shared.recv_timeout(TIMEOUT).expect("the shared subscription's message");
        assert_eq!(got.topic.as_str(), "s/x", "{version:?}");
        conn.send(message("$share/g/s/x", &[]));
        assert_eq!(
            deliveries(&[&shared]),
            [0],
            "{version:?}: the share prefix is no topic level"
        );

        let token = client.unsubscribe(vec![mqtt_str("$share/g/s/+")]).unwrap();
        let unsub = conn.expect_unsubscribe();
        assert_eq!(unsub.filters[0].as_str(), "$share/g/s/+");
        let codes = match version {
            Version::V311 => Vec::new(),
            Version::V5 => vec![ReasonCode::SUCCESS],
        };
        conn.send(Packet::UnsubAck(SubAck::new(unsub.pkid, codes)));
        assert!(done(&client, token).is_ok(), "{version:?}: unsubscribe");
        conn.send(message("s/x", &[]));
        assert_eq!(deliveries(&[&shared]), [0], "{version:?}: unsubscribed");
    }
}
