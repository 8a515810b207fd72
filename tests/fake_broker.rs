//! The engine against a scripted fake broker (tests/common/fake.rs): exact packets on the wire,
//! and faults a real broker would not produce.
mod common;

use std::collections::{HashMap, HashSet};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqttclient::codec::{
    Ack, CodecError, Disconnect, Packet, Properties, Publish, QoS, ReasonCode, SubAck, SubscribeOptions, Version, Will,
};
use mqttclient::engine::{
    Client, ConnectionEvent, Error, Handler, LogLevel, Options, Outcome, Overflow, State, Token, TokenState,
};
use mqttclient::ffi::mqttc_status;

use common::fake::{FakeBroker, FakeConn, TIMEOUT, mqtt_str, publish};
use common::scripted::{
    collector, connect, connection_events, done, next_event, ok, options, publish_qos1, reconnecting, start,
    start_watched, subscribe_one,
};

#[test]
fn connect_carries_client_id_clean_session_keep_alive_credentials_and_will() {
    let broker = FakeBroker::new();
    let client = Client::new(
        vec![broker.address()],
        Options {
            client_id: "id-ünï-42".into(),
            clean_session: false,
            keep_alive: 17,
            username: Some(mqtt_str("alice")),
            password: Some(Bytes::from_static(b"s3cr\0t\xff")),
            will: Some(Will {
                topic: mqtt_str("clients/gone"),
                payload: Bytes::from_static(b"bye \x00\x01"),
                qos: QoS::ExactlyOnce,
                retain: true,
                properties: Properties::new(),
            }),
            ..options()
        },
    )
    .unwrap();
    let token = client.connect().unwrap();
    let mut conn = broker.accept();
    let c = conn.accept_connect();
    assert_eq!(c.version, Version::V311);
    assert_eq!(c.client_id.as_str(), "id-ünï-42");
    assert!(!c.clean_session);
    assert_eq!(c.keep_alive, 17);
    assert_eq!(c.username.as_ref().map(|u| u.as_str()), Some("alice"));
    assert_eq!(c.password.as_deref(), Some(&b"s3cr\0t\xff"[..]));
    let will = c.will.expect("the CONNECT carries the will");
    assert_eq!(will.topic.as_str(), "clients/gone");
    assert_eq!(&will.payload[..], b"bye \x00\x01");
    assert_eq!(will.qos, QoS::ExactlyOnce);
    assert!(will.retain);
    assert!(done(&client, token).is_ok());

    // And the opposite settings: clean session, no keep-alive, no credentials, no will.
    let broker = FakeBroker::new();
    let client = Client::new(
        vec![broker.address()],
        Options {
            client_id: "plain".into(),
            clean_session: true,
            keep_alive: 0,
            ..options()
        },
    )
    .unwrap();
    let token = client.connect().unwrap();
    let mut conn = broker.accept();
    let c = conn.accept_connect();
    assert_eq!(c.client_id.as_str(), "plain");
    assert!(c.clean_session);
    assert_eq!(c.keep_alive, 0);
    assert!(c.username.is_none() && c.password.is_none() && c.will.is_none());
    assert!(done(&client, token).is_ok());
}

/// Credentials and the will changed after the client is made go into the next CONNECT (one made
/// by `reconnect`, and one made by an automatic reconnect after a loss), not into the one under
/// way; a cleared will and cleared credentials leave the CONNECT without them.
#[test]
fn credentials_and_will_changed_later_go_into_the_next_connect() {
    let will = |topic: &str, payload: &'static [u8]| Will {
        topic: mqtt_str(topic),
        payload: Bytes::from_static(payload),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: Properties::new(),
    };
    let broker = FakeBroker::new();
    let client = Client::new(
        vec![broker.address()],
        Options {
            username: Some(mqtt_str("alice")),
            password: Some(Bytes::from_static(b"token-1")),
            will: Some(will("status/alice", b"gone")),
            ..reconnecting()
        },
    )
    .unwrap();
    let token = client.connect().unwrap();
    let mut conn = broker.accept();
    let first = conn.accept_connect();
    assert_eq!(first.username.as_ref().map(|u| u.as_str()), Some("alice"));
    assert_eq!(
        done(&client, token),
        Ok(Outcome {
            codes: vec![0],
            ..Outcome::default()
        })
    );

    client
        .set_credentials(Some(mqtt_str("bob")), Some(Bytes::from_static(b"token-2")))
        .unwrap();
    client.set_will(Some(will("status/bob", b"lost")));
    let again = client.reconnect().unwrap();
    conn.expect_eof(TIMEOUT);
    let mut conn = broker.accept();
    let second = conn.resume_connect();
    assert_eq!(second.username.as_ref().map(|u| u.as_str()), Some("bob"));
    assert_eq!(second.password.as_deref(), Some(&b"token-2"[..]));
    assert_eq!(second.will, Some(will("status/bob", b"lost")));
    assert!(done(&client, again).is_ok());

    // Changed while connected, applied by the automatic reconnect after a loss.
    client.set_credentials(None, None).unwrap();
    client.set_will(None);
    conn.close();
    let mut conn = broker.accept();
    let third = conn.resume_connect();
    assert!(third.username.is_none() && third.password.is_none() && third.will.is_none());

    assert_eq!(
        client.set_credentials(None, Some(Bytes::from_static(b"x"))),
        Err(Error::InvalidArgument(
            "a password requires a username in MQTT 3.1.1 (MQTT 5 allows one alone)"
        ))
    );
    drop(conn);
}

fn conn_ack_wire(code: ReasonCode) -> Vec<u8> {
    let mut wire = bytes::BytesMut::new();
    let ack = mqttclient::codec::ConnAck {
        code,
        ..mqttclient::codec::ConnAck::accepted(false)
    };
    Packet::ConnAck(ack).encode(&mut wire, Version::V311).unwrap();
    wire.to_vec()
}

#[test]
fn refused_connack_codes_1_to_5_fail_the_connect_token_with_distinct_statuses() {
    use mqttc_status::*;
    let broker = FakeBroker::new();
    let client = Client::new(vec![broker.address()], options()).unwrap();
    let cases = [
        (
            ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
            MQTTC_ERR_REFUSED_PROTOCOL_VERSION,
        ),
        (ReasonCode::CLIENT_IDENTIFIER_NOT_VALID, MQTTC_ERR_REFUSED_IDENTIFIER),
        (ReasonCode::SERVER_UNAVAILABLE, MQTTC_ERR_REFUSED_SERVER_UNAVAILABLE),
        (ReasonCode::BAD_USER_NAME_OR_PASSWORD, MQTTC_ERR_REFUSED_BAD_CREDENTIALS),
        (ReasonCode::NOT_AUTHORIZED, MQTTC_ERR_REFUSED_NOT_AUTHORIZED),
    ];
    let mut statuses = HashSet::new();
    for (i, (code, status)) in cases.into_iter().enumerate() {
        // On the wire these are 3.1.1's return codes 1 to 5.
        let wire = conn_ack_wire(code);
        assert_eq!(wire[3], i as u8 + 1);
        // The same client tries again after each refusal.
        let token = client.connect().unwrap();
        let mut conn = broker.accept();
        conn.expect_connect();
        conn.connack(code);
        let err = done(&client, token).expect_err("a refused CONNACK fails the connect token");
        assert_eq!(err, Error::refused(code));
        assert_eq!(mqttc_status::from(&err), status);
        statuses.insert(mqttc_status::from(&err) as i32);
        assert_eq!(client.state(), State::Disconnected);
        conn.expect_eof(TIMEOUT);
    }
    assert_eq!(statuses.len(), 5);
}

#[test]
fn connect_times_out_when_the_broker_accepts_and_stays_silent() {
    let connect_timeout = Duration::from_millis(500);
    let broker = FakeBroker::new();
    let client = Client::new(
        vec![broker.address()],
        Options {
            connect_timeout,
            ..options()
        },
    )
    .unwrap();
    let fake = broker.spawn(|broker| {
        let mut conn = broker.accept();
        conn.expect_connect();
        // No CONNACK: the client must give up and close the socket.
        conn.expect_eof(TIMEOUT);
    });
    let started = Instant::now();
    let token = client.connect().unwrap();
    let result = done(&client, token);
    let elapsed = started.elapsed();
    assert_eq!(result, Err(Error::ConnectTimeout));
    assert!(
        elapsed >= connect_timeout - Duration::from_millis(20),
        "gave up too early: {elapsed:?}"
    );
    assert!(
        elapsed < connect_timeout + Duration::from_millis(500),
        "gave up too late: {elapsed:?}"
    );
    assert_eq!(client.state(), State::Disconnected);
    fake.join().unwrap();
}

/// Answers three PINGREQs and checks they come about once a second on an idle link, whatever
/// the ping timeout; then checks the link still carries a publish.
fn pings_every_second_on_an_idle_link(ping_timeout: Duration) {
    let (_broker, client, mut conn) = start(Options {
        keep_alive: 1,
        ping_timeout,
        ..options()
    });
    let mut pings = Vec::new();
    for _ in 0..3 {
        let r = conn.expect_within(Duration::from_millis(2500), "PINGREQ", |p| *p == Packet::PingReq);
        pings.push(r.at);
        conn.send(Packet::PingResp);
    }
    let first = pings[0] - conn.accepted_at;
    assert!(
        first > Duration::from_millis(700) && first < Duration::from_millis(1600),
        "first PINGREQ after {first:?}"
    );
    for pair in pings.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap > Duration::from_millis(700) && gap < Duration::from_millis(1600),
            "PINGREQ spacing {gap:?}"
        );
    }
    assert_eq!(client.state(), State::Connected);
    let token = publish_qos1(&client, "still/up", "x");
    let p = conn.expect_publish();
    conn.send(Packet::PubAck(Ack::new(p.pkid)));
    assert_eq!(done(&client, token), ok());
    assert_eq!(client.state(), State::Connected);
}

#[test]
fn keep_alive_sends_pingreq_every_second_when_ping_timeout_is_longer() {
    // As with keep_alive < 30 s and the default 30 s ping_timeout: after a PINGRESP the next
    // PINGREQ is due one interval later, not at the old ping deadline.
    pings_every_second_on_an_idle_link(Duration::from_secs(5));
}

#[test]
fn keep_alive_sends_pingreq_every_second_when_ping_timeout_is_shorter() {
    pings_every_second_on_an_idle_link(Duration::from_millis(500));
}

#[test]
fn no_pingresp_is_noticed_within_1_5_keep_alive_and_reconnect_resends_with_dup() {
    let keep_alive = Duration::from_secs(1);
    let (broker, client, mut conn, events) = start_watched(Options {
        keep_alive: 1,
        // Longer than half the keep-alive: the library caps it there.
        ping_timeout: Duration::from_secs(30),
        auto_reconnect: false,
        ..options()
    });
    let connected = Instant::now();
    let token = publish_qos1(&client, "never/acked", "x");
    let first = conn.expect_publish();
    conn.expect_within(Duration::from_millis(2000), "PINGREQ", |p| *p == Packet::PingReq);
    // No PINGRESP, no PUBACK.
    let (at, event) = events.recv_timeout(TIMEOUT).expect("a connection event");
    let ConnectionEvent::Lost { reason, .. } = event else {
        panic!("{event:?}")
    };
    assert_eq!(reason, Error::KeepAliveTimeout);
    let elapsed = at - connected;
    assert!(
        elapsed <= keep_alive * 3 / 2 + Duration::from_millis(300),
        "a silent link was noticed only after {elapsed:?}"
    );
    assert!(
        elapsed >= keep_alive * 3 / 2 - Duration::from_millis(100),
        "too early: {elapsed:?}"
    );
    assert_eq!(client.state(), State::Disconnected, "automatic reconnect is off");
    conn.expect_eof(TIMEOUT);
    assert_eq!(client.token_state(token), TokenState::Pending, "kept for the session");

    // The application reconnects; the broker kept the session.
    let again = client.reconnect().unwrap();
    let mut conn = broker.accept();
    conn.resume_connect();
    assert_eq!(
        done(&client, again),
        Ok(Outcome {
            codes: vec![1],
            ..Outcome::default()
        })
    );
    let resent = conn.expect_publish();
    assert!(resent.dup, "a resent PUBLISH has DUP set");
    assert_eq!(resent.pkid, first.pkid, "and its original packet id");
    conn.send(Packet::PubAck(Ack::new(resent.pkid)));
    assert_eq!(done(&client, token), ok());
}

#[test]
fn after_a_loss_the_session_is_resumed_in_order_with_dup_and_pubrel() {
    // A window of 3: its quarter is one, so each PUBREL goes as soon as its PUBREC is read.
    let (broker, client, mut conn, events) = start_watched(Options {
        max_inflight: 3,
        ..reconnecting()
    });
    let q1 = publish_qos1(&client, "a", "1");
    let q2_recd = client
        .publish(mqtt_str("b"), Bytes::from_static(b"2"), QoS::ExactlyOnce, false)
        .unwrap();
    let q2 = client
        .publish(mqtt_str("c"), Bytes::from_static(b"3"), QoS::ExactlyOnce, false)
        .unwrap();
    let sent: Vec<Publish> = (0..3).map(|_| conn.expect_publish()).collect();
    conn.send(Packet::PubRec(Ack::new(sent[1].pkid)));
    conn.expect_packet(&Packet::PubRel(Ack::new(sent[1].pkid)));
    conn.close();
    assert!(matches!(
        next_event(&events),
        ConnectionEvent::Lost {
            reason: Error::ConnectionClosed,
            ..
        }
    ));

    let mut conn = broker.accept();
    let connect = conn.resume_connect();
    assert!(!connect.clean_session);
    assert!(matches!(
        next_event(&events),
        ConnectionEvent::Connected {
            session_present: true,
            ..
        }
    ));
    // MQTT-4.4.0-1: unacknowledged PUBLISH and PUBREL again, original ids, original order.
    let p = conn.expect_publish();
    assert!(p.dup && p.pkid == sent[0].pkid && &p.payload[..] == b"1", "{p:?}");
    conn.expect_packet(&Packet::PubRel(Ack::new(sent[1].pkid)));
    let p = conn.expect_publish();
    assert!(p.dup && p.pkid == sent[2].pkid && &p.payload[..] == b"3", "{p:?}");
    conn.send(Packet::PubAck(Ack::new(sent[0].pkid)));
    conn.send(Packet::PubComp(Ack::new(sent[1].pkid)));
    conn.send(Packet::PubRec(Ack::new(sent[2].pkid)));
    conn.expect_packet(&Packet::PubRel(Ack::new(sent[2].pkid)));
    conn.send(Packet::PubComp(Ack::new(sent[2].pkid)));
    for t in [q1, q2_recd, q2] {
        assert_eq!(done(&client, t), ok());
    }
    conn.expect_silence(Duration::from_millis(50));
}

#[test]
fn a_broker_without_our_session_gets_every_filter_again_and_the_callbacks_stay() {
    let (broker, client, mut conn) = start(reconnecting());
    let a = subscribe_one(&client, &mut conn, "a/#", QoS::AtLeastOnce);
    let b = subscribe_one(&client, &mut conn, "b", QoS::ExactlyOnce);
    conn.close();

    // Session present: nothing to subscribe again.
    let mut conn = broker.accept();
    conn.resume_connect();
    conn.expect_silence(Duration::from_millis(100));
    conn.close();

    // No session: one SUBSCRIBE with every filter, in the order they were made.
    let mut conn = broker.accept();
    conn.accept_connect();
    let sub = conn.answer_subscribe(&[1, 2]);
    let filters: Vec<(&str, QoS)> = sub.filters.iter().map(|(f, o)| (f.as_str(), o.qos)).collect();
    assert_eq!(filters, [("a/#", QoS::AtLeastOnce), ("b", QoS::ExactlyOnce)]);
    conn.send(Packet::Publish(publish("a/x", QoS::AtMostOnce, 0, b"to a")));
    conn.send(Packet::Publish(publish("b", QoS::AtMostOnce, 0, b"to b")));
    assert_eq!(&a.recv_timeout(TIMEOUT).unwrap().payload[..], b"to a");
    assert_eq!(&b.recv_timeout(TIMEOUT).unwrap().payload[..], b"to b");
}

#[test]
fn unanswered_subscribe_and_unsubscribe_go_again_on_the_next_connection() {
    let (broker, client, mut conn) = start(reconnecting());
    let (handler, _rx) = collector();
    let sub = client
        .subscribe(vec![(mqtt_str("s"), QoS::AtLeastOnce, handler)])
        .unwrap();
    let unsub = client.unsubscribe(vec![mqtt_str("u")]).unwrap();
    conn.expect_subscribe();
    conn.expect_unsubscribe();
    conn.close();
    let mut conn = broker.accept();
    conn.resume_connect();
    let s = conn.answer_subscribe(&[1]);
    assert_eq!(s.filters[0].0.as_str(), "s");
    let u = conn.expect_unsubscribe();
    assert_eq!(u.filters[0].as_str(), "u");
    conn.send(Packet::UnsubAck(SubAck::new(u.pkid, vec![])));
    assert_eq!(
        done(&client, sub),
        Ok(Outcome {
            codes: vec![1],
            ..Outcome::default()
        })
    );
    assert_eq!(done(&client, unsub), ok());
}

#[test]
fn inbound_qos2_state_survives_a_reconnect_so_nothing_is_delivered_twice() {
    let (broker, client, mut conn) = start(reconnecting());
    let rx = subscribe_one(&client, &mut conn, "q2", QoS::ExactlyOnce);
    let m = publish("q2", QoS::ExactlyOnce, 5, b"once");
    conn.send(Packet::Publish(m.clone()));
    conn.expect_packet(&Packet::PubRec(Ack::new(5)));
    conn.close(); // before PUBREL
    let mut conn = broker.accept();
    conn.resume_connect();
    // The broker did not see our PUBREC: it sends the PUBLISH again.
    conn.send(Packet::Publish(Publish { dup: true, ..m }));
    conn.expect_packet(&Packet::PubRec(Ack::new(5)));
    conn.send(Packet::PubRel(Ack::new(5)));
    conn.expect_packet(&Packet::PubComp(Ack::new(5)));
    assert_eq!(&rx.recv_timeout(TIMEOUT).unwrap().payload[..], b"once");
    assert!(rx.recv_timeout(Duration::from_millis(200)).is_err(), "delivered twice");
}

/// Loses the connection and publishes `count` QoS 1 messages while the client waits to
/// reconnect; returns the new connection (not yet answered) and the tokens.
fn publish_while_offline(options: Options, count: usize) -> (FakeBroker, Client, FakeConn, Vec<Token>) {
    let (broker, client, conn, events) = start_watched(Options {
        reconnect_min: Duration::from_millis(300),
        reconnect_max: Duration::from_millis(300),
        ..options
    });
    conn.close();
    assert!(matches!(next_event(&events), ConnectionEvent::Lost { .. }));
    assert_eq!(client.state(), State::Reconnecting);
    let tokens = (0..count)
        .map(|i| publish_qos1(&client, "off", &i.to_string()))
        .collect();
    let conn = broker.accept();
    (broker, client, conn, tokens)
}

/// The payloads of the next `n` PUBLISHes, each acknowledged.
fn take_acked(conn: &mut FakeConn, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let p = conn.expect_publish();
            conn.send(Packet::PubAck(Ack::new(p.pkid)));
            String::from_utf8(p.payload.to_vec()).unwrap()
        })
        .collect()
}

#[test]
fn offline_queue_rejects_new_publishes_beyond_its_count_limit() {
    let opts = Options {
        offline_max_messages: 3,
        ..reconnecting()
    };
    let (_broker, client, mut conn, tokens) = publish_while_offline(opts, 5);
    for t in &tokens[3..] {
        assert_eq!(done(&client, *t), Err(Error::QueueFull));
    }
    conn.resume_connect();
    assert_eq!(take_acked(&mut conn, 3), ["0", "1", "2"]);
    for t in &tokens[..3] {
        assert_eq!(done(&client, *t), ok());
    }
}

#[test]
fn offline_queue_drops_the_oldest_when_told_to_and_their_tokens_say_so() {
    let opts = Options {
        offline_max_messages: 10,
        offline_max_bytes: 3 * ("off".len() + 1),
        offline_overflow: Overflow::DropOldest,
        ..reconnecting()
    };
    let (_broker, client, mut conn, tokens) = publish_while_offline(opts, 5);
    for t in &tokens[..2] {
        assert_eq!(done(&client, *t), Err(Error::Dropped));
    }
    conn.resume_connect();
    assert_eq!(take_acked(&mut conn, 3), ["2", "3", "4"]);
    for t in &tokens[2..] {
        assert_eq!(done(&client, *t), ok());
    }
}

#[test]
fn disconnect_while_reconnecting_cancels_what_waits_and_stops_reconnecting() {
    let (broker, client, conn, events) = start_watched(Options {
        reconnect_min: Duration::from_secs(10),
        reconnect_max: Duration::from_secs(10),
        ..reconnecting()
    });
    let inflight = publish_qos1(&client, "a", "in flight");
    drop(conn);
    assert!(matches!(next_event(&events), ConnectionEvent::Lost { .. }));
    let offline = publish_qos1(&client, "a", "offline");
    let started = Instant::now();
    let bye = client.disconnect().unwrap();
    assert_eq!(done(&client, bye), ok());
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(done(&client, inflight), Err(Error::Cancelled));
    assert_eq!(done(&client, offline), Err(Error::Cancelled));
    assert_eq!(next_event(&events), ConnectionEvent::Disconnected);
    assert_eq!(client.state(), State::Disconnected);
    assert!(
        broker.try_accept(Duration::from_millis(300)).is_none(),
        "it reconnected"
    );
    assert_eq!(
        client.publish(mqtt_str("a"), Bytes::new(), QoS::AtMostOnce, false),
        Err(Error::NotConnected),
        "the session is over"
    );
}

#[test]
fn servers_are_tried_in_order_and_the_first_that_answers_wins() {
    let dead = FakeBroker::new().address(); // dropped at once: nothing listens there
    let live = FakeBroker::new();
    let client = Client::new(vec![dead, live.address()], reconnecting()).unwrap();
    let events = connection_events(&client);
    let token = client.connect().unwrap();
    live.accept().accept_connect();
    assert_eq!(
        done(&client, token),
        Ok(Outcome {
            codes: vec![0],
            ..Outcome::default()
        })
    );
    let ConnectionEvent::Connected { server, .. } = next_event(&events) else {
        panic!()
    };
    assert_eq!(server, live.address());
}

#[test]
fn reconnect_replaces_a_live_connection_and_completes_on_the_new_connack() {
    let (broker, client, mut old) = start(reconnecting());
    let token = client.reconnect().unwrap();
    old.expect_eof(TIMEOUT);
    let mut conn = broker.accept();
    assert_eq!(client.token_state(token), TokenState::Pending);
    conn.resume_connect();
    assert_eq!(
        done(&client, token),
        Ok(Outcome {
            codes: vec![1],
            ..Outcome::default()
        })
    );
    assert_eq!(client.state(), State::Connected);
}

#[test]
fn a_failed_first_connect_is_not_retried() {
    let broker = FakeBroker::new();
    let client = Client::new(vec![broker.address()], reconnecting()).unwrap();
    let token = client.connect().unwrap();
    broker.accept().connack(ReasonCode::NOT_AUTHORIZED);
    assert_eq!(done(&client, token), Err(Error::refused(ReasonCode::NOT_AUTHORIZED)));
    assert_eq!(client.state(), State::Disconnected);
    assert!(broker.try_accept(Duration::from_millis(300)).is_none());
}

#[test]
fn inbound_qos1_is_delivered_and_acknowledged() {
    let (_broker, client, mut conn) = start(options());
    let rx = subscribe_one(&client, &mut conn, "in/#", QoS::AtLeastOnce);
    conn.send(Packet::Publish(publish("in/one", QoS::AtLeastOnce, 7, b"hello")));
    conn.expect_packet(&Packet::PubAck(Ack::new(7)));
    let m = rx.recv_timeout(TIMEOUT).expect("the handler gets the message");
    assert_eq!(m.topic.as_str(), "in/one");
    assert_eq!(&m.payload[..], b"hello");
    assert_eq!(m.qos, QoS::AtLeastOnce);
    assert_eq!(m.pkid, 7);
}

#[test]
fn inbound_qos2_is_delivered_exactly_once() {
    let (_broker, client, mut conn) = start(options());
    let rx = subscribe_one(&client, &mut conn, "q2", QoS::ExactlyOnce);
    let first = publish("q2", QoS::ExactlyOnce, 9, b"first");
    conn.send(Packet::Publish(first.clone()));
    conn.expect_packet(&Packet::PubRec(Ack::new(9)));
    // The broker resends before it got our PUBREC: same id, DUP set.
    conn.send(Packet::Publish(Publish { dup: true, ..first }));
    conn.expect_packet(&Packet::PubRec(Ack::new(9)));
    conn.send(Packet::PubRel(Ack::new(9)));
    conn.expect_packet(&Packet::PubComp(Ack::new(9)));
    // After PUBCOMP, id 9 is free: a new PUBLISH with it is a new message.
    conn.send(Packet::Publish(publish("q2", QoS::ExactlyOnce, 9, b"second")));
    conn.expect_packet(&Packet::PubRec(Ack::new(9)));
    conn.send(Packet::PubRel(Ack::new(9)));
    conn.expect_packet(&Packet::PubComp(Ack::new(9)));
    // Handlers run in arrival order, so "second" arriving right after "first" proves the resend
    // was not delivered.
    let got: Vec<_> = (0..2)
        .map(|_| rx.recv_timeout(TIMEOUT).expect("a message").payload)
        .collect();
    assert_eq!(got, vec![Bytes::from_static(b"first"), Bytes::from_static(b"second")]);
    assert!(rx.recv_timeout(Duration::from_millis(100)).is_err(), "a third delivery");
    conn.expect_silence(Duration::from_millis(50));
}

/// Takes the next PUBLISH of the window test: it must carry message `next` and an id not in use.
fn take_publish(conn: &mut FakeConn, outstanding: &mut HashMap<u16, usize>, next: &mut usize) {
    let p = conn.expect_publish();
    assert_eq!(p.qos, QoS::AtLeastOnce);
    assert_ne!(p.pkid, 0);
    assert!(!p.dup);
    assert_eq!(
        p.payload,
        Bytes::from(format!("m{next}")),
        "publishes leave in submission order"
    );
    assert!(
        outstanding.insert(p.pkid, *next).is_none(),
        "id {} reused while still unacknowledged",
        p.pkid
    );
    *next += 1;
}

#[test]
fn outbound_window_holds_max_inflight_and_releases_one_per_ack_in_order() {
    const TOTAL: usize = 20;
    const WINDOW: usize = 5;
    let (_broker, client, mut conn) = start(Options {
        max_inflight: WINDOW,
        ..options()
    });
    let tokens: Vec<Token> = (0..TOTAL)
        .map(|i| publish_qos1(&client, "win", &format!("m{i}")))
        .collect();
    // pkid -> index of the message it carries, for every PUBLISH not yet acknowledged.
    let mut outstanding: HashMap<u16, usize> = HashMap::new();
    let mut next = 0;
    for _ in 0..WINDOW {
        take_publish(&mut conn, &mut outstanding, &mut next);
    }
    conn.expect_silence(Duration::from_millis(200));
    for &t in &tokens {
        assert_eq!(client.token_state(t), TokenState::Pending);
    }
    // Acknowledge in a scrambled order (newest outstanding id on odd rounds, oldest on even ones):
    // each ack frees exactly one slot, filled by the next queued message.
    let mut round = 0;
    while !outstanding.is_empty() {
        let mut ids: Vec<u16> = outstanding.keys().copied().collect();
        ids.sort_by_key(|id| outstanding[id]);
        let id = if round % 2 == 1 { ids[ids.len() - 1] } else { ids[0] };
        let index = outstanding.remove(&id).unwrap();
        conn.send(Packet::PubAck(Ack::new(id)));
        assert_eq!(done(&client, tokens[index]), ok(), "message {index} acked");
        if next < TOTAL {
            take_publish(&mut conn, &mut outstanding, &mut next);
        }
        conn.expect_silence(Duration::from_millis(30));
        assert!(outstanding.len() <= WINDOW);
        round += 1;
    }
    assert_eq!(next, TOTAL);
    for &t in &tokens {
        assert_eq!(done(&client, t), ok());
    }
}

#[test]
fn outbound_qos2_completes_only_after_pubcomp() {
    let (_broker, client, mut conn) = start(options());
    let token = client
        .publish(mqtt_str("q2/out"), Bytes::from_static(b"x"), QoS::ExactlyOnce, false)
        .unwrap();
    let p = conn.expect_publish();
    assert_eq!(p.qos, QoS::ExactlyOnce);
    assert_ne!(p.pkid, 0);
    assert_eq!(client.token_state(token), TokenState::Pending);
    conn.send(Packet::PubRec(Ack::new(p.pkid)));
    let pubrel = conn.expect_packet(&Packet::PubRel(Ack::new(p.pkid)));
    assert_eq!(pubrel.raw[0], 0x62, "PUBREL fixed header: type 6, flags 0b0010");
    assert_eq!(&pubrel.raw[1..], &[2, (p.pkid >> 8) as u8, p.pkid as u8]);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(client.token_state(token), TokenState::Pending, "pending until PUBCOMP");
    conn.send(Packet::PubComp(Ack::new(p.pkid)));
    assert_eq!(done(&client, token), ok());
}

#[test]
fn subscribe_sends_one_packet_and_a_refused_filter_gets_no_messages() {
    let (_broker, client, mut conn) = start(options());
    let (granted_handler, granted_rx) = collector();
    let (refused_handler, refused_rx) = collector();
    let token = client
        .subscribe(vec![
            (mqtt_str("granted/+"), QoS::AtLeastOnce, granted_handler),
            (mqtt_str("refused/#"), QoS::ExactlyOnce, refused_handler),
        ])
        .unwrap();
    let sub = conn.answer_subscribe(&[1, 0x80]);
    assert_ne!(sub.pkid, 0);
    assert_eq!(
        sub.filters,
        vec![
            (mqtt_str("granted/+"), QoS::AtLeastOnce.into()),
            (mqtt_str("refused/#"), QoS::ExactlyOnce.into())
        ]
    );
    assert_eq!(
        done(&client, token),
        Err(Error::SubscribeRefused {
            codes: vec![1, 0x80],
            properties: Default::default()
        })
    );
    // Only one SUBSCRIBE went out.
    conn.expect_silence(Duration::from_millis(50));
    conn.send(Packet::Publish(publish("refused/x", QoS::AtMostOnce, 0, b"no")));
    conn.send(Packet::Publish(publish("granted/x", QoS::AtMostOnce, 0, b"yes")));
    let m = granted_rx
        .recv_timeout(TIMEOUT)
        .expect("the granted filter still delivers");
    assert_eq!(&m.payload[..], b"yes");
    // Messages are handled in order: "no" was handled (or dropped) before "yes".
    assert!(
        refused_rx.try_recv().is_err(),
        "a message reached the handler of a refused filter"
    );
}

#[test]
fn garbage_from_the_broker_is_a_protocol_error_and_the_client_reconnects_by_itself() {
    let (broker, client, mut conn, events) = start_watched(reconnecting());
    let cases: [(&[u8], CodecError); 2] = [
        (&[0xF0, 0x00], CodecError::InvalidPacketType(15)),
        (
            &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],
            CodecError::MalformedRemainingLength,
        ),
    ];
    for (garbage, expected) in cases {
        let token = publish_qos1(&client, "in/flight", "x");
        conn.expect_publish();
        conn.send_raw(garbage);
        assert_eq!(
            next_event(&events),
            ConnectionEvent::Lost {
                reason: Error::Protocol(expected),
                server: broker.address()
            }
        );
        conn.expect_eof(TIMEOUT);
        // Back by itself; the broker lost the session, so the message goes again as a new one.
        conn = broker.accept();
        conn.accept_connect();
        assert!(matches!(next_event(&events), ConnectionEvent::Connected { .. }));
        let p = conn.expect_publish();
        assert!(!p.dup);
        assert_eq!(&p.payload[..], b"x");
        conn.send(Packet::PubAck(Ack::new(p.pkid)));
        assert_eq!(done(&client, token), ok());
    }
}

#[test]
fn oversize_packet_header_closes_the_connection_before_the_body_arrives() {
    let (_broker, client, mut conn, events) = start_watched(Options {
        max_packet_size: 1024,
        auto_reconnect: false,
        ..options()
    });
    conn.expect_silence(Duration::from_millis(10));
    // PUBLISH, remaining length 1,000,000 (0xC0 0x84 0x3D); the body never comes.
    conn.send_raw(&[0x30, 0xC0, 0x84, 0x3D]);
    let sent = Instant::now();
    let (at, event) = events
        .recv_timeout(Duration::from_secs(1))
        .expect("the connection is lost");
    assert_eq!(
        event,
        ConnectionEvent::Lost {
            reason: Error::Protocol(CodecError::PacketTooLarge {
                size: 1 + 3 + 1_000_000,
                max: 1024
            }),
            server: _broker.address()
        }
    );
    assert!(at - sent < Duration::from_millis(500), "took {:?}", at - sent);
    assert_eq!(client.state(), State::Disconnected);
    conn.expect_eof(Duration::from_secs(1));
}

#[test]
fn disconnect_sends_everything_queued_before_it() {
    let (_broker, client, mut conn) = start(options());
    let tokens: Vec<Token> = (0..50)
        .map(|i| {
            client
                .publish(mqtt_str("burst"), Bytes::from(format!("{i}")), QoS::AtMostOnce, false)
                .unwrap()
        })
        .collect();
    let disconnect = client.disconnect().unwrap();
    for i in 0..50 {
        let p = conn.expect_publish();
        assert_eq!(p.qos, QoS::AtMostOnce);
        assert_eq!(p.payload, Bytes::from(format!("{i}")), "publish {i} in order");
    }
    conn.expect_packet(&Packet::Disconnect(Disconnect::default()));
    conn.expect_eof(TIMEOUT);
    assert_eq!(done(&client, disconnect), ok());
    for t in tokens {
        assert_eq!(done(&client, t), ok());
    }
    assert_eq!(client.state(), State::Disconnected);
}

#[test]
fn packets_split_across_writes_and_packed_into_one_write_are_both_decoded() {
    let (_broker, client, mut conn) = start(options());
    let rx = subscribe_one(&client, &mut conn, "s/#", QoS::ExactlyOnce);

    // One PUBLISH, one byte per write.
    let mut wire = bytes::BytesMut::new();
    Packet::Publish(publish("s/slow", QoS::AtLeastOnce, 300, b"dribbled in, byte by byte"))
        .encode(&mut wire, Version::V311)
        .unwrap();
    conn.send_slowly(&wire, Duration::from_millis(2));
    conn.expect_packet(&Packet::PubAck(Ack::new(300)));
    let m = rx.recv_timeout(TIMEOUT).unwrap();
    assert_eq!(m.topic.as_str(), "s/slow");
    assert_eq!(&m.payload[..], b"dribbled in, byte by byte");

    // Four packets in one write, the last one a QoS 2 PUBLISH with its PUBREL right behind it.
    let mut wire = bytes::BytesMut::new();
    for p in [
        Packet::Publish(publish("s/a", QoS::AtMostOnce, 0, b"a")),
        Packet::Publish(publish("s/b", QoS::AtLeastOnce, 11, b"b")),
        Packet::Publish(publish("s/c", QoS::ExactlyOnce, 12, b"c")),
        Packet::PubRel(Ack::new(12)),
    ] {
        p.encode(&mut wire, Version::V311).unwrap();
    }
    conn.send_raw(&wire);
    conn.expect_packet(&Packet::PubAck(Ack::new(11)));
    conn.expect_packet(&Packet::PubRec(Ack::new(12)));
    conn.expect_packet(&Packet::PubComp(Ack::new(12)));
    let got: Vec<_> = (0..3)
        .map(|_| {
            let m = rx.recv_timeout(TIMEOUT).unwrap();
            (m.topic.as_str().to_owned(), m.payload)
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("s/a".to_owned(), Bytes::from_static(b"a")),
            ("s/b".to_owned(), Bytes::from_static(b"b")),
            ("s/c".to_owned(), Bytes::from_static(b"c")),
        ]
    );
}

#[test]
fn message_handlers_may_publish_and_subscribe_but_wait_is_refused() {
    let (_broker, client, mut conn) = start(options());
    let client = Arc::new(client);
    // Weak: a handler owning its client would keep it alive forever.
    let weak = Arc::downgrade(&client);
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let handler = Handler::Call(Box::new(move |m: &Publish| {
        let Some(client) = weak.upgrade() else { return };
        let published = client.publish(mqtt_str("out/reply"), m.payload.clone(), QoS::AtLeastOnce, false);
        let (noop, _) = collector();
        let subscribed = client.subscribe(vec![(mqtt_str("new/filter"), QoS::AtMostOnce, noop)]);
        let started = Instant::now();
        let waited = published.as_ref().ok().map(|&t| client.wait(t, Duration::from_secs(2)));
        let _ = tx
            .lock()
            .unwrap()
            .send((published, subscribed, waited, started.elapsed()));
    }));
    let token = client
        .subscribe(vec![(mqtt_str("in"), QoS::AtMostOnce, handler)])
        .unwrap();
    conn.answer_subscribe(&[0]);
    assert!(done(&client, token).is_ok());

    conn.send(Packet::Publish(publish("in", QoS::AtMostOnce, 0, b"ping")));
    let (published, subscribed, waited, wait_took) = rx.recv_timeout(TIMEOUT).expect("the handler ran");
    let published = published.expect("publish from a handler is accepted");
    let subscribed = subscribed.expect("subscribe from a handler is accepted");
    assert_eq!(waited, Some(None), "wait on the callback thread is refused");
    assert!(wait_took < Duration::from_millis(500), "wait blocked for {wait_took:?}");
    assert!(!client.on_callback_thread());

    let p = conn.expect_publish();
    assert_eq!(p.topic.as_str(), "out/reply");
    assert_eq!(&p.payload[..], b"ping");
    let sub = conn.expect_subscribe();
    assert_eq!(
        sub.filters,
        vec![(mqtt_str("new/filter"), SubscribeOptions::from(QoS::AtMostOnce))]
    );
    conn.send(Packet::PubAck(Ack::new(p.pkid)));
    conn.send(Packet::SubAck(SubAck::new(sub.pkid, vec![ReasonCode::SUCCESS])));
    assert_eq!(done(&client, published), ok());
    assert!(done(&client, subscribed).is_ok());
}

#[test]
fn subscribe_before_connect_is_sent_after_connack_and_catches_messages_sent_at_once() {
    // A persistent session: the broker delivers queued messages right behind the CONNACK, before
    // it could have seen any SUBSCRIBE. A handler registered before connect must get them.
    let broker = FakeBroker::new();
    let client = Client::new(vec![broker.address()], options()).unwrap();
    let (handler, rx) = collector();
    let sub = client
        .subscribe(vec![(mqtt_str("queued/#"), QoS::AtLeastOnce, handler)])
        .unwrap();
    assert_eq!(client.token_state(sub), TokenState::Pending);
    let token = client.connect().unwrap();
    let mut conn = broker.accept();
    conn.expect_connect();
    let mut burst = bytes::BytesMut::new();
    Packet::ConnAck(mqttclient::codec::ConnAck::accepted(true))
        .encode(&mut burst, Version::V311)
        .unwrap();
    Packet::Publish(publish("queued/1", QoS::AtLeastOnce, 3, b"while you were out"))
        .encode(&mut burst, Version::V311)
        .unwrap();
    conn.send_raw(&burst);
    assert_eq!(
        done(&client, token),
        Ok(Outcome {
            codes: vec![1],
            ..Outcome::default()
        })
    );
    let got = rx
        .recv_timeout(TIMEOUT)
        .expect("the queued message reached the handler");
    assert_eq!(got.payload, Bytes::from_static(b"while you were out"));
    // The deferred SUBSCRIBE goes out once connected, and its token completes on SUBACK.
    let s = conn.expect_subscribe();
    assert_eq!(
        s.filters,
        vec![(mqtt_str("queued/#"), SubscribeOptions::from(QoS::AtLeastOnce))]
    );
    conn.send(Packet::SubAck(SubAck::new(s.pkid, vec![ReasonCode::GRANTED_QOS_1])));
    assert_eq!(
        done(&client, sub),
        Ok(Outcome {
            codes: vec![1],
            ..Outcome::default()
        })
    );
}

/// A program that logs, connects and frees its client at once (as `mqttc_pub -d` does) must still
/// see every line logged before the free, however far behind the callback thread is.
#[test]
fn free_delivers_the_log_lines_produced_before_it() {
    let broker = FakeBroker::new();
    let client = Client::new(vec![broker.address()], options()).unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    client.set_log(
        LogLevel::Debug,
        Some(Arc::new(move |_, line: &str| {
            // A slow handler: the callback thread falls behind the network thread.
            std::thread::sleep(Duration::from_millis(100));
            sink.lock().unwrap().push(line.to_owned());
        })),
    );
    let _conn = connect(&client, &broker);
    drop(client);
    let lines = lines.lock().unwrap();
    assert!(
        lines.iter().any(|l| l.starts_with("connected to")),
        "the connection's log line was lost: {lines:?}"
    );
}
