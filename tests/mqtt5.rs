//! MQTT 5 in the engine, against the scripted fake broker where a test must choose the broker's
//! packets (limits in CONNACK, reason codes, aliases, a server DISCONNECT), and against mosquitto
//! for the round trip.
mod common;

use std::time::Duration;

use bytes::Bytes;
use mqttclient::codec::{
    Ack, ConnAck, Disconnect, Packet, Properties, PropertyId, Publish, QoS, ReasonCode, SubAck, Version,
};
use mqttclient::engine::{Client, ConnectionEvent, Error, Options, Outcome, Token, TokenState};

use common::fake::{FakeBroker, FakeConn, TIMEOUT, mqtt_str, publish};
use common::scripted::{collector, connection_events, done, next_event, ok, options, publish_qos1};

fn v5() -> Options {
    Options {
        version: Version::V5,
        ..options()
    }
}

/// A client with `options` connected to a fake broker whose CONNACK carries `properties`.
fn start_with(options: Options, properties: Properties) -> (FakeBroker, Client, FakeConn) {
    let broker = FakeBroker::new();
    let client = Client::new(vec![broker.address()], options).unwrap();
    let token = client.connect().unwrap();
    let mut conn = broker.accept();
    conn.expect_connect();
    conn.send(Packet::ConnAck(ConnAck {
        properties: properties.clone(),
        ..ConnAck::accepted(false)
    }));
    // The CONNACK's properties reach the connect token.
    assert_eq!(
        done(&client, token),
        Ok(Outcome {
            codes: vec![0],
            properties
        })
    );
    (broker, client, conn)
}

fn props(list: &[(PropertyId, u32)]) -> Properties {
    let mut p = Properties::new();
    for &(id, value) in list {
        p.push_int(id, value).unwrap();
    }
    p
}

/// Why the connection was lost. The hook is set after connecting, so the Connected event may
/// still be on its way to it: that one is skipped.
fn next_loss(events: &common::scripted::Events) -> Error {
    loop {
        match next_event(events) {
            ConnectionEvent::Connected { .. } => continue,
            ConnectionEvent::Lost { reason, .. } => return reason,
            other => panic!("the connection must be lost: {other:?}"),
        }
    }
}

#[test]
fn connect_is_mqtt5_with_the_session_expiry_and_the_limits_this_client_holds_the_broker_to() {
    let broker = FakeBroker::new();
    let options = Options {
        session_expiry: 3600,
        topic_alias_maximum: 7,
        max_packet_size: 100_000,
        ..v5()
    };
    let client = Client::new(vec![broker.address()], options).unwrap();
    let token = client.connect().unwrap();
    let mut conn = broker.accept();
    let connect = conn.accept_connect();
    assert_eq!(connect.version, Version::V5);
    assert_eq!(connect.properties.int(PropertyId::SessionExpiryInterval), Some(3600));
    assert_eq!(connect.properties.int(PropertyId::TopicAliasMaximum), Some(7));
    assert_eq!(connect.properties.int(PropertyId::MaximumPacketSize), Some(100_000));
    assert!(done(&client, token).is_ok());
}

/// Plays a broker that acknowledges QoS 1 publishes one at a time: takes everything the client
/// sends until it pauses, acknowledges the oldest, and again, until `tokens` are all acknowledged;
/// each token must complete as its PUBACK arrives, the later ones still pending. Returns the
/// publishes in arrival order and the most that were ever unacknowledged at once.
fn acknowledge_one_by_one(client: &Client, conn: &mut FakeConn, tokens: &[Token]) -> (Vec<Publish>, usize) {
    let mut arrived = Vec::new();
    let mut unacked = Vec::new();
    let mut most = 0;
    for (i, &token) in tokens.iter().enumerate() {
        while let Some(r) = conn.next_within(Duration::from_millis(150)) {
            let Packet::Publish(p) = r.packet else {
                panic!("{:?}", r.packet)
            };
            unacked.push(p.pkid);
            most = most.max(unacked.len());
            arrived.push(p);
        }
        assert!(!unacked.is_empty(), "the client sent nothing while below the window");
        conn.send(Packet::PubAck(Ack::new(unacked.remove(0))));
        assert_eq!(done(client, token), ok(), "publish {i}");
        for &later in &tokens[i + 1..] {
            assert_eq!(
                client.token_state(later),
                TokenState::Pending,
                "completed before its PUBACK"
            );
        }
    }
    (arrived, most)
}

#[test]
fn the_brokers_receive_maximum_bounds_what_is_unacknowledged() {
    // The client's own window is 20; the broker takes 2 at a time.
    let (_broker, client, mut conn) = start_with(v5(), props(&[(PropertyId::ReceiveMaximum, 2)]));
    let tokens: Vec<_> = (0..6).map(|i| publish_qos1(&client, "rm/t", &i.to_string())).collect();
    let (_, most) = acknowledge_one_by_one(&client, &mut conn, &tokens);
    assert_eq!(most, 2, "at most Receive Maximum unacknowledged at the broker");
}

/// Options for a session the broker keeps across connections, reconnecting at once.
fn kept_session() -> Options {
    Options {
        clean_session: false,
        session_expiry: 600,
        reconnect_min: Duration::from_millis(10),
        ..v5()
    }
}

/// Drops `conn` and answers the client's next CONNECT with a CONNACK carrying `properties`.
fn reconnect(broker: &FakeBroker, conn: FakeConn, session_present: bool, properties: Properties) -> FakeConn {
    conn.close();
    let mut conn = broker.accept();
    conn.expect_connect();
    conn.send(Packet::ConnAck(ConnAck {
        properties,
        ..ConnAck::accepted(session_present)
    }));
    conn
}

#[test]
fn resends_after_a_reconnect_keep_to_the_new_connections_receive_maximum() {
    let (broker, client, mut conn) = start_with(kept_session(), props(&[(PropertyId::ReceiveMaximum, 10)]));
    let tokens: Vec<_> = (0..6)
        .map(|i| publish_qos1(&client, "rm/resend", &i.to_string()))
        .collect();
    let first: Vec<u16> = (0..6).map(|_| conn.expect_publish().pkid).collect();
    // None acknowledged; the broker comes back taking only 2 at a time.
    let mut conn = reconnect(&broker, conn, true, props(&[(PropertyId::ReceiveMaximum, 2)]));
    let (resent, most) = acknowledge_one_by_one(&client, &mut conn, &tokens);
    assert_eq!(most, 2, "at most the new Receive Maximum unacknowledged at the broker");
    let payloads: Vec<&[u8]> = resent.iter().map(|p| &p.payload[..]).collect();
    assert_eq!(
        payloads,
        [b"0", b"1", b"2", b"3", b"4", b"5"],
        "resent in their original order"
    );
    assert!(resent.iter().all(|p| p.dup), "each once, as a resend");
    assert_eq!(resent.iter().map(|p| p.pkid).collect::<Vec<_>>(), first);
}

#[test]
fn a_resend_over_the_new_brokers_maximum_packet_size_fails_its_token_instead() {
    for session_present in [true, false] {
        let (broker, client, mut conn) = start_with(kept_session(), Properties::new());
        let big = client
            .publish(mqtt_str("big"), Bytes::from(vec![0; 200]), QoS::AtLeastOnce, false)
            .unwrap();
        let small = publish_qos1(&client, "small", "fits");
        conn.expect_publish();
        conn.expect_publish();
        let mut conn = reconnect(
            &broker,
            conn,
            session_present,
            props(&[(PropertyId::MaximumPacketSize, 100)]),
        );
        let err = done(&client, big).unwrap_err();
        assert!(matches!(err, Error::PacketTooLarge { max: 100, .. }), "{err:?}");
        let p = conn.expect_publish();
        assert_eq!((p.topic.as_str(), p.dup), ("small", session_present));
        conn.send(Packet::PubAck(Ack::new(p.pkid)));
        assert_eq!(done(&client, small), ok());
        conn.expect_silence(Duration::from_millis(100));
    }
}

#[test]
fn ack_reason_codes_complete_the_tokens() {
    let (_broker, client, mut conn) = start_with(v5(), Properties::new());
    let nobody = publish_qos1(&client, "r/1", "a");
    let refused = publish_qos1(&client, "r/2", "b");
    let (a, b) = (conn.expect_publish(), conn.expect_publish());
    conn.send(Packet::PubAck(Ack {
        reason: ReasonCode::NO_MATCHING_SUBSCRIBERS,
        ..Ack::new(a.pkid)
    }));
    let mut no = Ack::new(b.pkid);
    no.reason = ReasonCode::NOT_AUTHORIZED;
    no.properties.push_str(PropertyId::ReasonString, "acl").unwrap();
    conn.send(Packet::PubAck(no.clone()));
    assert_eq!(
        done(&client, nobody),
        Ok(Outcome {
            codes: vec![0x10],
            ..Outcome::default()
        })
    );
    let err = done(&client, refused).unwrap_err();
    assert_eq!(
        err,
        Error::PublishRefused {
            code: 0x87,
            properties: no.properties
        }
    );
    assert!(
        err.to_string().ends_with(": acl"),
        "the reason string is in the text: {err}"
    );
    assert_eq!(err.reason_codes(), Some(vec![0x87]));

    let token = client.unsubscribe(vec![mqtt_str("x"), mqtt_str("y")]).unwrap();
    let u = conn.expect_unsubscribe();
    let codes = vec![ReasonCode::SUCCESS, ReasonCode::NO_SUBSCRIPTION_EXISTED];
    conn.send(Packet::UnsubAck(SubAck::new(u.pkid, codes)));
    assert_eq!(
        done(&client, token),
        Ok(Outcome {
            codes: vec![0, 0x11],
            ..Outcome::default()
        })
    );
}

#[test]
fn inbound_topic_aliases_are_resolved_before_dispatch() {
    let (_broker, client, mut conn) = start_with(v5(), Properties::new());
    let (handler, rx) = collector();
    let token = client
        .subscribe(vec![(mqtt_str("al/#"), QoS::AtMostOnce, handler)])
        .unwrap();
    conn.answer_subscribe(&[0]);
    assert!(done(&client, token).is_ok());
    let aliased = |topic: &str, alias: u32, payload: &'static [u8]| {
        let mut p = publish(topic, QoS::AtMostOnce, 0, payload);
        p.properties.push_int(PropertyId::TopicAlias, alias).unwrap();
        Packet::Publish(p)
    };
    conn.send(aliased("al/first", 1, b"sets 1"));
    conn.send(aliased("", 1, b"uses 1"));
    conn.send(aliased("al/second", 1, b"moves 1"));
    conn.send(aliased("", 1, b"uses 1 again"));
    let got: Vec<(String, Bytes)> = (0..4)
        .map(|_| {
            let p: Publish = rx.recv_timeout(TIMEOUT).expect("a message");
            (p.topic.as_str().to_owned(), p.payload)
        })
        .collect();
    let want = [
        ("al/first", "sets 1"),
        ("al/first", "uses 1"),
        ("al/second", "moves 1"),
        ("al/second", "uses 1 again"),
    ];
    for ((topic, payload), (want_topic, want_payload)) in got.iter().zip(want) {
        assert_eq!((topic.as_str(), &payload[..]), (want_topic, want_payload.as_bytes()));
    }
}

#[test]
fn an_alias_never_set_or_above_the_maximum_is_a_protocol_error() {
    // The client says why before closing: 0x82 Protocol Error for an alias never set, 0x94 Topic
    // Alias invalid for one above its maximum (MQTT 5 section 3.3.2.3.4).
    for (alias, what, code) in [
        (2, "never set", ReasonCode::PROTOCOL_ERROR),
        (17, "above our Topic Alias Maximum", ReasonCode::TOPIC_ALIAS_INVALID),
    ] {
        let (_broker, client, mut conn) = start_with(v5(), Properties::new());
        let events = connection_events(&client);
        let mut p = publish("", QoS::AtMostOnce, 0, b"x");
        p.properties.push_int(PropertyId::TopicAlias, alias).unwrap();
        conn.send(Packet::Publish(p));
        let reason = next_loss(&events);
        assert!(reason.to_string().contains(what), "{reason}");
        expect_goodbye(&mut conn, code);
    }
}

/// The client's last words on a connection it closes: DISCONNECT with `code`, then end of stream.
fn expect_goodbye(conn: &mut FakeConn, code: ReasonCode) {
    let r = conn.expect(
        &format!("DISCONNECT {code}"),
        |p| matches!(p, Packet::Disconnect(d) if d.reason == code),
    );
    assert_eq!(
        r.packet,
        Packet::Disconnect(Disconnect {
            reason: code,
            properties: Properties::new()
        })
    );
    conn.expect_eof(TIMEOUT);
}

#[test]
fn closing_on_the_brokers_protocol_error_sends_disconnect_with_the_reason_code_in_mqtt5_only() {
    let small = Options {
        max_packet_size: 1000,
        ..v5()
    };
    let cases: [(&str, &[u8], ReasonCode); 4] = [
        ("reserved packet type 0", &[0x00, 0x00], ReasonCode::MALFORMED_PACKET),
        (
            "PUBACK with remaining length 1",
            &[0x40, 0x01, 0],
            ReasonCode::MALFORMED_PACKET,
        ),
        (
            "PINGREQ, which only a client sends",
            &[0xC0, 0x00],
            ReasonCode::PROTOCOL_ERROR,
        ),
        // A PUBLISH header announcing 5,000 bytes, over the client's maximum of 1,000.
        (
            "packet larger than our maximum",
            &[0x30, 0x88, 0x27],
            ReasonCode::PACKET_TOO_LARGE,
        ),
    ];
    for (what, bytes, code) in cases {
        for version in [Version::V5, Version::V311] {
            let options = Options {
                version,
                ..small.clone()
            };
            let (_broker, client, mut conn) = start_with(options, Properties::new());
            let events = connection_events(&client);
            eprintln!("case: {what}, {version:?}");
            conn.send_raw(bytes);
            let reason = next_loss(&events);
            assert!(
                matches!(reason, Error::Protocol(_) | Error::UnexpectedPacket(_)),
                "{what}: {reason:?}"
            );
            if version == Version::V5 {
                expect_goodbye(&mut conn, code);
            } else {
                // MQTT 3.1.1 has no DISCONNECT from the client with a reason: it just closes.
                conn.expect_eof(TIMEOUT);
            }
        }
    }
}

#[test]
fn a_malformed_connack_gets_a_disconnect_too() {
    let broker = FakeBroker::new();
    let client = Client::new(vec![broker.address()], v5()).unwrap();
    let token = client.connect().unwrap();
    let mut conn = broker.accept();
    conn.expect_connect();
    // CONNACK with a reserved flag bit set.
    conn.send_raw(&[0x20, 0x03, 0x02, 0x00, 0x00]);
    assert!(matches!(done(&client, token), Err(Error::Protocol(_))));
    expect_goodbye(&mut conn, ReasonCode::MALFORMED_PACKET);
}

#[test]
fn a_keep_alive_timeout_closes_without_a_disconnect() {
    // Server Keep Alive 1 s: a PINGREQ after 1 s, and without its PINGRESP the link is dead after
    // half a second more. Nothing is sent on a dead link.
    let (_broker, client, mut conn) = start_with(v5(), props(&[(PropertyId::ServerKeepAlive, 1)]));
    let events = connection_events(&client);
    conn.expect_within(Duration::from_millis(2500), "PINGREQ", |p| *p == Packet::PingReq);
    assert_eq!(next_loss(&events), Error::KeepAliveTimeout);
    conn.expect_eof(TIMEOUT);
}

#[test]
fn a_server_disconnect_is_reported_with_its_reason_and_server_reference() {
    let (_broker, client, mut conn) = start_with(v5(), Properties::new());
    let events = connection_events(&client);
    let mut d = Disconnect {
        reason: ReasonCode::USE_ANOTHER_SERVER,
        properties: Properties::new(),
    };
    d.properties.push_str(PropertyId::ReasonString, "maintenance").unwrap();
    d.properties
        .push_str(PropertyId::ServerReference, "other.example:1883")
        .unwrap();
    conn.send(Packet::Disconnect(d));
    let reason = next_loss(&events);
    assert_eq!(
        reason,
        Error::ServerDisconnected {
            code: ReasonCode::USE_ANOTHER_SERVER,
            reason: Some("maintenance".into()),
            server_reference: Some("other.example:1883".into()),
        }
    );
    let text = reason.to_string();
    assert!(
        text.contains("Use another server") && text.contains("other.example:1883"),
        "{text}"
    );
}

/// How a connect fails when the broker answers `connack`.
fn connect_refused_with(connack: Packet) -> Error {
    let broker = FakeBroker::new();
    let client = Client::new(vec![broker.address()], v5()).unwrap();
    let token = client.connect().unwrap();
    let mut conn = broker.accept();
    conn.expect_connect();
    conn.send(connack);
    done(&client, token).unwrap_err()
}

#[test]
fn a_refused_mqtt5_connack_fails_the_connect_token_with_its_reason_code() {
    let err = connect_refused_with(Packet::ConnAck(ConnAck {
        code: ReasonCode::BANNED,
        ..ConnAck::accepted(false)
    }));
    assert_eq!(err, Error::refused(ReasonCode::BANNED));
    assert_eq!(
        mqttclient::ffi::mqttc_status::from(&err),
        mqttclient::ffi::mqttc_status::MQTTC_ERR_REFUSED
    );
}

/// A CONNACK refusal with a Reason String and a Server Reference.
fn refusal(code: ReasonCode, reason: &str, server: &str) -> Packet {
    let mut properties = Properties::new();
    properties.push_str(PropertyId::ReasonString, reason).unwrap();
    properties.push_str(PropertyId::ServerReference, server).unwrap();
    Packet::ConnAck(ConnAck {
        code,
        properties,
        ..ConnAck::accepted(false)
    })
}

#[test]
fn a_refused_connack_keeps_its_reason_string_and_server_reference() {
    let err = connect_refused_with(refusal(ReasonCode::SERVER_MOVED, "moved for good", "new.example:1883"));
    assert_eq!(
        err,
        Error::Refused {
            code: ReasonCode::SERVER_MOVED,
            reason: Some("moved for good".into()),
            server_reference: Some("new.example:1883".into()),
        }
    );
    assert_eq!(err.reason_codes(), Some(vec![0x9D]));
    let text = err.to_string();
    assert!(
        text.contains("Server moved") && text.contains("moved for good") && text.contains("new.example:1883"),
        "{text}"
    );
    assert_eq!(
        mqttclient::ffi::mqttc_status::from(&err),
        mqttclient::ffi::mqttc_status::MQTTC_ERR_REFUSED,
        "the status is the one any other MQTT 5 refusal gets"
    );
}

/// Through the C API: the connect token fails with the status the code always had, and
/// `mqttc_last_error` carries the reason string.
#[test]
fn a_refused_connacks_reason_string_reaches_mqttc_last_error() {
    use mqttclient::ffi::*;
    use std::ffi::CStr;
    for (code, status) in [
        (
            ReasonCode::NOT_AUTHORIZED,
            mqttc_status::MQTTC_ERR_REFUSED_NOT_AUTHORIZED,
        ),
        (ReasonCode::USE_ANOTHER_SERVER, mqttc_status::MQTTC_ERR_REFUSED),
    ] {
        let broker = FakeBroker::new();
        let mut opts = std::mem::MaybeUninit::uninit();
        unsafe { mqttc_options_init_size(opts.as_mut_ptr(), size_of::<mqttc_options>()) };
        let mut opts = unsafe { opts.assume_init() };
        opts.protocol_version = 5;
        let mut c = std::ptr::null_mut();
        let st = unsafe { mqttc_client_new(c"127.0.0.1".as_ptr(), broker.port(), &opts, &mut c) };
        assert_eq!(st, mqttc_status::MQTTC_OK);
        let mut t = 0;
        assert_eq!(unsafe { mqttc_connect(c, &mut t) }, mqttc_status::MQTTC_OK);
        let mut conn = broker.accept();
        conn.expect_connect();
        conn.send(refusal(code, "not from this network", "backup.example"));
        assert_eq!(unsafe { mqttc_token_wait(c, t, 5_000) }, status, "{code}");
        let detail = unsafe { CStr::from_ptr(mqttc_last_error()) }
            .to_string_lossy()
            .into_owned();
        assert!(
            detail.contains("not from this network") && detail.contains("backup.example"),
            "{detail}"
        );
        unsafe { mqttc_client_free(c) };
    }
}

#[test]
fn a_publish_over_the_brokers_maximum_packet_size_fails_its_token_and_the_connection_stays() {
    let (_broker, client, mut conn) = start_with(v5(), props(&[(PropertyId::MaximumPacketSize, 100)]));
    let big = client
        .publish(mqtt_str("big"), Bytes::from(vec![0; 200]), QoS::AtLeastOnce, false)
        .unwrap();
    let err = done(&client, big).unwrap_err();
    assert!(matches!(err, Error::PacketTooLarge { max: 100, .. }), "{err:?}");
    let small = publish_qos1(&client, "small", "fits");
    let p = conn.expect_publish();
    assert_eq!(p.topic.as_str(), "small");
    conn.send(Packet::PubAck(Ack::new(p.pkid)));
    assert_eq!(done(&client, small), ok());
}

#[test]
fn server_keep_alive_replaces_the_clients() {
    let options = Options { keep_alive: 60, ..v5() };
    let (_broker, _client, mut conn) = start_with(options, props(&[(PropertyId::ServerKeepAlive, 1)]));
    let r = conn
        .next_within(Duration::from_millis(2500))
        .expect("a PINGREQ within 1 s or so");
    assert_eq!(r.packet, Packet::PingReq);
}

#[test]
fn mqtt5_round_trip_through_mosquitto() {
    let broker = common::Broker::start();
    let client = Client::new(
        vec![mqttclient::engine::Address::tcp("127.0.0.1", broker.port)],
        Options {
            version: Version::V5,
            client_id: "v5-round-trip".into(),
            session_expiry: 30,
            ..Options::default()
        },
    )
    .unwrap();
    assert!(common::engine::connect(&client).is_ok());
    let payloads: Vec<Bytes> = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
        .iter()
        .map(|q| Bytes::from(format!("qos {}", *q as u8)))
        .collect();
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        common::engine::round_trip(&client, &format!("v5/{}", qos as u8), qos, &payloads);
    }
    // Nobody subscribes to this one: mosquitto says so with reason code 0x10 in the PUBACK.
    let token = client
        .publish(mqtt_str("v5/nobody"), Bytes::from_static(b"x"), QoS::AtLeastOnce, false)
        .unwrap();
    assert_eq!(
        common::engine::wait(&client, token),
        Ok(Outcome {
            codes: vec![0x10],
            ..Outcome::default()
        })
    );
}

/// MQTT 5 options with up to `n` outbound topic aliases.
fn aliasing(n: u16) -> Options {
    Options {
        topic_alias_max_out: n,
        ..v5()
    }
}

/// A QoS 1 publish to `topic`, as the broker receives it (acknowledged): its exact bytes.
fn sent_once(client: &Client, conn: &mut FakeConn, topic: &str, payload: &str) -> Bytes {
    let token = publish_qos1(client, topic, payload);
    let r = conn.expect("PUBLISH", |p| matches!(p, Packet::Publish(_)));
    let Packet::Publish(p) = &r.packet else { unreachable!() };
    conn.send(Packet::PubAck(Ack::new(p.pkid)));
    assert_eq!(done(client, token), ok());
    r.raw
}

/// The topic and alias of a PUBLISH's bytes.
fn topic_and_alias(raw: &[u8]) -> (String, Option<u32>) {
    let mut buf = bytes::BytesMut::from(raw);
    match mqttclient::codec::decode(&mut buf, usize::MAX, Version::V5) {
        Ok(Some(Packet::Publish(p))) => (p.topic.as_str().to_owned(), p.properties.int(PropertyId::TopicAlias)),
        other => panic!("not a PUBLISH: {other:?}"),
    }
}

#[test]
fn the_first_publish_of_a_topic_carries_an_alias_and_later_ones_the_alias_alone() {
    let (_broker, client, mut conn) = start_with(aliasing(4), props(&[(PropertyId::TopicAliasMaximum, 10)]));
    let topic = "sensors/kitchen/temperature";
    let first = sent_once(&client, &mut conn, topic, "21");
    let second = sent_once(&client, &mut conn, topic, "22");
    // PUBLISH QoS 1, remaining length, topic, packet id, properties (Topic Alias 1), payload.
    let mut want = vec![0x32, 37, 0, 27];
    want.extend_from_slice(topic.as_bytes());
    want.extend_from_slice(&[first[31], first[32], 3, 0x23, 0, 1]);
    want.extend_from_slice(b"21");
    assert_eq!(&first[..], &want[..]);
    // The same with an empty topic: ten bytes of body instead of 37.
    assert_eq!(&second[..2], [0x32, 10]);
    assert_eq!(&second[2..4], [0, 0], "an empty topic");
    assert_eq!(&second[6..], b"\x03\x23\x00\x0122");
    // An idle connection's QoS 0 publish is not written by the caller's thread, which would
    // bypass the aliases: it uses the alias too.
    std::thread::sleep(Duration::from_millis(50));
    client
        .publish(mqtt_str(topic), Bytes::from_static(b"23"), QoS::AtMostOnce, false)
        .unwrap();
    let r = conn.expect("PUBLISH", |p| matches!(p, Packet::Publish(_)));
    assert_eq!(&r.raw[..], b"\x30\x08\x00\x00\x03\x23\x00\x0123");
}

#[test]
fn the_brokers_maximum_bounds_the_aliases_and_the_least_recently_used_one_is_reused() {
    let (_broker, client, mut conn) = start_with(aliasing(8), props(&[(PropertyId::TopicAliasMaximum, 2)]));
    let mut sent = |topic: &str| topic_and_alias(&sent_once(&client, &mut conn, topic, "x"));
    let whole = |topic: &str, alias| (topic.to_owned(), Some(alias));
    let alone = |alias| (String::new(), Some(alias));
    assert_eq!(sent("room/one"), whole("room/one", 1));
    assert_eq!(sent("room/two"), whole("room/two", 2));
    assert_eq!(sent("room/one"), alone(1));
    assert_eq!(
        sent("room/three"),
        whole("room/three", 2),
        "room/two was used least recently"
    );
    assert_eq!(sent("room/two"), whole("room/two", 1));
    assert_eq!(sent("room/three"), alone(2));
    assert_eq!(sent("a/b"), ("a/b".to_owned(), None), "no shorter than an alias: whole");
}

#[test]
fn no_aliases_when_the_broker_allows_none() {
    let (_broker, client, mut conn) = start_with(aliasing(8), Properties::new());
    for _ in 0..2 {
        let raw = sent_once(&client, &mut conn, "no/alias/here", "x");
        assert_eq!(topic_and_alias(&raw), ("no/alias/here".to_owned(), None));
    }
}

#[test]
fn aliases_start_over_on_each_connection_and_resends_carry_the_whole_topic() {
    let options = Options {
        topic_alias_max_out: 4,
        ..kept_session()
    };
    let allowed = props(&[(PropertyId::TopicAliasMaximum, 4)]);
    let (broker, client, mut conn) = start_with(options, allowed.clone());
    let topic = "plant/line/1";
    let tokens: Vec<_> = ["a", "b"].iter().map(|p| publish_qos1(&client, topic, p)).collect();
    let wire = |conn: &mut FakeConn| topic_and_alias(&conn.expect("PUBLISH", |p| matches!(p, Packet::Publish(_))).raw);
    assert_eq!(wire(&mut conn), (topic.to_owned(), Some(1)));
    assert_eq!(wire(&mut conn), (String::new(), Some(1)));
    // Neither acknowledged when the connection drops: both go again, whole, without an alias.
    let mut conn = reconnect(&broker, conn, true, allowed);
    for _ in 0..2 {
        let p = conn.expect_publish();
        assert!(p.dup);
        assert_eq!(
            (p.topic.as_str(), p.properties.int(PropertyId::TopicAlias)),
            (topic, None)
        );
        conn.send(Packet::PubAck(Ack::new(p.pkid)));
    }
    for t in tokens {
        assert_eq!(done(&client, t), ok());
    }
    // The new connection sets its aliases up afresh.
    let first = sent_once(&client, &mut conn, topic, "c");
    assert_eq!(topic_and_alias(&first), (topic.to_owned(), Some(1)));
    let next = sent_once(&client, &mut conn, topic, "d");
    assert_eq!(topic_and_alias(&next), (String::new(), Some(1)));
}

/// A publisher through `port` with up to `aliases` outbound topic aliases and a session mosquitto
/// keeps, reconnecting at once.
fn alias_publisher(port: u16, aliases: u16) -> Client {
    let options = Options {
        client_id: "alias-publisher".into(),
        topic_alias_max_out: aliases,
        reconnect_max: Duration::from_millis(50),
        ..kept_session()
    };
    Client::new(vec![mqttclient::engine::Address::tcp("127.0.0.1", port)], options).unwrap()
}

/// Publishes round `round`: a QoS 1 message "`round`/`i`" to each of `topics`.
fn publish_round(client: &Client, topics: &[String], round: usize) -> Vec<Token> {
    topics
        .iter()
        .enumerate()
        .map(|(i, t)| publish_qos1(client, t, &format!("{round}/{i}")))
        .collect()
}

/// Takes `count` messages from `rx` and checks each came with the topic its payload names.
/// Returns the payloads seen.
fn arrived_with_their_topics(
    rx: &std::sync::mpsc::Receiver<Publish>,
    topics: &[String],
    count: usize,
) -> std::collections::HashSet<String> {
    let mut seen = std::collections::HashSet::new();
    while seen.len() < count {
        let p = rx.recv_timeout(TIMEOUT).expect("a message through mosquitto");
        let payload = String::from_utf8(p.payload.to_vec()).unwrap();
        let i: usize = payload.split('/').nth(1).unwrap().parse().unwrap();
        assert_eq!(p.topic.as_str(), topics[i], "message {payload}");
        seen.insert(payload);
    }
    seen
}

/// Losses of the connection reported so far.
fn losses(events: &common::scripted::Events) -> usize {
    events
        .try_iter()
        .filter(|(_, e)| matches!(e, ConnectionEvent::Lost { .. }))
        .count()
}

#[test]
fn through_mosquitto_messages_keep_their_topics_over_more_topics_than_aliases_and_a_reconnect() {
    let broker = common::Broker::start();
    let proxy = common::proxy::Proxy::start(broker.port);
    let subscriber = common::engine::client_for(&format!("127.0.0.1:{}", broker.port), None);
    assert!(common::engine::connect(&subscriber).is_ok());
    let rx = common::engine::subscribe(&subscriber, "alias/#", QoS::AtLeastOnce);
    let publisher = alias_publisher(proxy.port(), 4);
    let events = connection_events(&publisher);
    let connack = common::engine::connect(&publisher).unwrap().properties;
    assert_eq!(
        connack.int(PropertyId::TopicAliasMaximum),
        Some(10),
        "mosquitto takes aliases (its default maximum)"
    );
    // Three times as many topics as aliases, so aliases keep changing hands.
    let topics: Vec<String> = (0..12).map(|i| format!("alias/topic/{i}")).collect();
    for t in publish_round(&publisher, &topics, 0) {
        assert_eq!(common::engine::wait(&publisher, t), ok());
    }
    // Round 1 goes into a link that leads nowhere and is then cut: it is resent on the next.
    proxy.freeze();
    let tokens = publish_round(&publisher, &topics, 1);
    std::thread::sleep(Duration::from_millis(100));
    proxy.drop_all();
    proxy.unfreeze();
    for t in tokens.into_iter().chain(publish_round(&publisher, &topics, 2)) {
        assert_eq!(common::engine::wait(&publisher, t), ok());
    }
    let seen = arrived_with_their_topics(&rx, &topics, 3 * topics.len());
    assert!((0..3).all(|r| (0..12).all(|i| seen.contains(&format!("{r}/{i}")))));
    // Only the cut ended a connection: mosquitto never refused an alias.
    assert_eq!(losses(&events), 1);
}

#[test]
fn through_mosquitto_its_smaller_maximum_bounds_the_aliases() {
    let broker = common::Broker::start_with("max_topic_alias 2");
    let subscriber = common::engine::client_for(&format!("127.0.0.1:{}", broker.port), None);
    assert!(common::engine::connect(&subscriber).is_ok());
    let rx = common::engine::subscribe(&subscriber, "alias/#", QoS::AtLeastOnce);
    let publisher = alias_publisher(broker.port, 8);
    let events = connection_events(&publisher);
    let connack = common::engine::connect(&publisher).unwrap().properties;
    assert_eq!(connack.int(PropertyId::TopicAliasMaximum), Some(2));
    let topics: Vec<String> = (0..5).map(|i| format!("alias/bounded/{i}")).collect();
    for round in 0..3 {
        for t in publish_round(&publisher, &topics, round) {
            assert_eq!(common::engine::wait(&publisher, t), ok());
        }
    }
    arrived_with_their_topics(&rx, &topics, 3 * topics.len());
    // An alias above 2 would have made mosquitto close the connection (Topic Alias invalid).
    assert_eq!(losses(&events), 0);
}
