//! The hostile broker: a scripted broker (tests/common/fake.rs) breaks MQTT 3.1.1 on
//! purpose. For each kind of hostility the client must close that connection with an error that
//! names the problem (and, for C, the status MQTTC_ERR_PROTOCOL or MQTTC_ERR_KEEPALIVE_TIMEOUT), hold
//! a bounded amount of memory, not crash, and keep working: it reconnects by itself to the same
//! broker, and a subscribe / publish / unsubscribe round trip then succeeds.
//!
//! tests/fake_broker.rs already covers a reserved packet type and a 5-byte remaining length in the
//! middle of a QoS 1 exchange, and a PUBLISH header over the maximum packet size; the cases here
//! are the rest.
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use mqttclient::codec::{
    Ack, CodecError, ConnAck, Connect, Disconnect, Packet, Properties, Publish, QoS, SubAck, Subscribe, Unsubscribe,
    Version,
};
use mqttclient::engine::{Client, ConnectionEvent, Error, Handler, LogLevel, Options, Outcome, State, TokenState};
use mqttclient::ffi::mqttc_status;
use mqttclient::topic::TopicError;

use common::engine::log_lines;
use common::fake::{FakeBroker, FakeConn, TIMEOUT, mqtt_str, publish};
use common::scripted::{
    Events, collector, connect, connection_events, done, next_event, ok, publish_qos1, reconnecting, subscribe_one,
};

/// A client connected to a fake broker, subscribed to "ok/#" (where the hostile PUBLISHes go, so
/// one delivered by mistake would show), and watching its connection changes.
struct Scene {
    broker: FakeBroker,
    client: Client,
    conn: FakeConn,
    events: Events,
    /// What the handler of "ok/#" receives.
    inbox: mpsc::Receiver<Publish>,
    /// Round trips so far: each uses a topic of its own.
    trips: usize,
}

impl Scene {
    /// A new client with `options` (in these tests: reconnecting within tens of milliseconds).
    fn new(options: Options) -> Scene {
        let broker = FakeBroker::new();
        let client = Client::new(vec![broker.address()], options).unwrap();
        Scene::connect(broker, client)
    }

    /// Connects `client`, which has no connection yet, and subscribes to "ok/#".
    fn connect(broker: FakeBroker, client: Client) -> Scene {
        let events = connection_events(&client);
        let mut conn = connect(&client, &broker);
        assert!(matches!(next_event(&events), ConnectionEvent::Connected { .. }));
        let inbox = subscribe_one(&client, &mut conn, "ok/#", QoS::AtLeastOnce);
        Scene {
            broker,
            client,
            conn,
            events,
            inbox,
            trips: 0,
        }
    }

    /// The broker sends `bytes`; the client must drop the connection for `reason`, then come back
    /// by itself and work.
    fn hostile(&mut self, bytes: &[u8], reason: &Error) {
        self.conn.send_raw(bytes);
        self.expect_lost(reason);
        self.recover(&[&["ok/#"]]);
    }

    /// The client reports the connection lost for `reason` and closes the socket without sending
    /// anything more (no acknowledgement of what broke the connection, in particular). Returns when
    /// the loss was reported.
    fn expect_lost(&mut self, reason: &Error) -> Instant {
        let (at, event) = self
            .events
            .recv_timeout(TIMEOUT)
            .unwrap_or_else(|_| panic!("the connection was not lost (expected: {reason})"));
        assert_eq!(
            event,
            ConnectionEvent::Lost {
                reason: reason.clone(),
                server: self.broker.address()
            }
        );
        self.conn.expect_eof(TIMEOUT);
        at
    }

    /// After a loss: the client reconnects by itself; the broker kept no session, so the client
    /// sends again the SUBSCRIBEs `subscribes` lists (the filters of each); then a round trip works.
    fn recover(&mut self, subscribes: &[&[&str]]) {
        self.conn = self.broker.accept();
        self.conn.set_auto_pingresp(true);
        self.conn.accept_connect();
        assert!(matches!(next_event(&self.events), ConnectionEvent::Connected { .. }));
        assert_eq!(self.client.state(), State::Connected);
        for filters in subscribes {
            let sub = self.conn.grant_subscribe();
            let got: Vec<&str> = sub.filters.iter().map(|(f, _)| f.as_str()).collect();
            assert_eq!(&got, filters);
        }
        self.round_trip();
    }

    /// The application works: a new subscription is granted, a QoS 1 publish is acknowledged, the
    /// broker's copy of it reaches both matching handlers before anything else does, and an
    /// unsubscribe is acknowledged.
    fn round_trip(&mut self) {
        self.trips += 1;
        let topic = format!("ok/trip{}", self.trips);
        let rx = subscribe_one(&self.client, &mut self.conn, &topic, QoS::AtLeastOnce);
        let token = publish_qos1(&self.client, &topic, "round trip");
        let p = self.conn.expect_publish();
        assert_eq!((p.topic.as_str(), &p.payload[..]), (topic.as_str(), &b"round trip"[..]));
        self.conn.send(Packet::PubAck(Ack::new(p.pkid)));
        assert_eq!(done(&self.client, token), ok());
        self.conn
            .send(Packet::Publish(publish(&topic, QoS::AtLeastOnce, 7, b"round trip")));
        self.conn.expect_packet(&Packet::PubAck(Ack::new(7)));
        for inbox in [&rx, &self.inbox] {
            let m = inbox.recv_timeout(TIMEOUT).expect("the round trip's message arrives");
            assert_eq!(m.topic.as_str(), topic, "only the round trip's message is delivered");
        }
        let token = self.client.unsubscribe(vec![mqtt_str(&topic)]).unwrap();
        let u = self.conn.expect_unsubscribe();
        self.conn.send(Packet::UnsubAck(SubAck::new(u.pkid, vec![])));
        assert_eq!(done(&self.client, token), ok());
    }
}

/// A packet with this first byte and body, and the right remaining length (a body under 128 bytes).
fn raw(first: u8, body: &[u8]) -> Vec<u8> {
    assert!(body.len() < 128);
    let mut wire = vec![first, body.len() as u8];
    wire.extend_from_slice(body);
    wire
}

/// The wire form of a packet the codec can encode.
fn wire(packet: Packet) -> Vec<u8> {
    let mut buf = BytesMut::new();
    packet.encode(&mut buf, Version::V311).unwrap();
    buf.to_vec()
}

/// A PUBLISH QoS 1 with packet id 9 to a topic given as raw bytes, which may be anything.
fn publish_to_raw_topic(topic: &[u8]) -> Vec<u8> {
    let mut body = BytesMut::new();
    body.put_u16(topic.len() as u16);
    body.put_slice(topic);
    body.put_u16(9);
    body.put_slice(b"payload");
    raw(0x32, &body)
}

/// A protocol error says so in words, with the detail `words`, and is MQTTC_ERR_PROTOCOL for C.
fn assert_protocol_error(reason: &Error, words: &str) {
    let text = reason.to_string();
    assert!(
        text.starts_with("protocol violation by the broker: ") && text.contains(words),
        "unclear error: {text:?} (expected it to name {words:?})"
    );
    assert_eq!(mqttc_status::from(reason), mqttc_status::MQTTC_ERR_PROTOCOL);
}

#[test]
fn malformed_packets_close_the_connection_with_a_protocol_error_and_the_client_comes_back() {
    use CodecError::*;
    let flags = |packet_type, flags| ReservedFlags { packet_type, flags };
    let mut scene = Scene::new(reconnecting());
    // (the packet, the error, words of its text)
    let cases: [(Vec<u8>, CodecError, &str); 12] = [
        // PUBLISHes: a topic length that runs past the packet, no room for the packet id of a QoS 1
        // PUBLISH, QoS 3, DUP on QoS 0, packet id 0.
        (
            raw(0x32, b"\x00\x10ok/x\x00\x01"),
            Truncated,
            "ends before its fields do",
        ),
        (raw(0x32, b"\x00\x04ok/x"), Truncated, "ends before its fields do"),
        (
            raw(0x36, b"\x00\x04ok/x\x00\x01p"),
            InvalidQoS(3),
            "3 is not a QoS level",
        ),
        (raw(0x38, b"\x00\x04ok/xp"), DupOnQoS0, "must not have DUP set"),
        (raw(0x32, b"\x00\x04ok/x\x00\x00p"), ZeroPacketId, "must not be 0"),
        // PUBACK with packet id 0.
        (raw(0x40, b"\x00\x00"), ZeroPacketId, "must not be 0"),
        // Reserved flag bits: set on a PUBACK and a PINGRESP, missing from a PUBREL (it needs 0b0010).
        (
            raw(0x42, b"\x00\x01"),
            flags(4, 2),
            "packet type 4 has invalid fixed-header flags 0b0010",
        ),
        (
            raw(0xD8, b""),
            flags(13, 8),
            "packet type 13 has invalid fixed-header flags 0b1000",
        ),
        (
            raw(0x60, b"\x00\x01"),
            flags(6, 0),
            "packet type 6 has invalid fixed-header flags 0b0000",
        ),
        // A reserved bit of the CONNACK flags byte (checked before "a second CONNACK").
        (raw(0x20, b"\x02\x00"), InvalidConnAckFlags(2), "invalid CONNACK flags"),
        // The reserved packet types.
        (raw(0x00, b""), InvalidPacketType(0), "packet type 0 is reserved"),
        (raw(0xF0, b""), InvalidPacketType(15), "packet type 15 is reserved"),
    ];
    for (bytes, error, words) in cases {
        let reason = Error::Protocol(error);
        assert_protocol_error(&reason, words);
        eprintln!("malformed: {bytes:02x?}");
        scene.hostile(&bytes, &reason);
    }
}

#[test]
fn a_suback_with_a_bad_return_code_or_the_wrong_number_of_them_is_a_protocol_error_and_the_subscribe_goes_again() {
    let mut scene = Scene::new(reconnecting());
    let wrong_count =
        Error::UnexpectedPacket("SUBACK whose number of return codes differs from the SUBSCRIBE's filters");
    // (the SUBACK's return codes for a SUBSCRIBE of two filters, the error, words of its text)
    let cases: [(&[u8], Error, &str); 3] = [
        (
            &[0x03],
            Error::Protocol(CodecError::InvalidReasonCode {
                packet_type: 9,
                code: 3,
            }),
            "0x03 is not a reason code packet type 9 may carry",
        ),
        // MQTT-3.8.4-5: one return code per filter, in order. Fewer is no refusal of the rest: the
        // client cannot tell which filter a code is for.
        (&[0x01], wrong_count.clone(), "number of return codes"),
        (&[0x01, 0x01, 0x01], wrong_count, "number of return codes"),
    ];
    for (codes, reason, words) in cases {
        assert_protocol_error(&reason, words);
        eprintln!("SUBACK with codes {codes:02x?}");
        let (h1, rx1) = collector();
        let (h2, rx2) = collector();
        let token = scene
            .client
            .subscribe(vec![
                (mqtt_str("pending/a"), QoS::AtLeastOnce, h1),
                (mqtt_str("pending/b"), QoS::AtMostOnce, h2),
            ])
            .unwrap();
        let id = scene.conn.expect_subscribe().pkid;
        scene
            .conn
            .send_raw(&raw(0x90, &[&id.to_be_bytes()[..], codes].concat()));
        scene.expect_lost(&reason);
        // The subscribe was not answered: it goes again on the next connection, after the filter
        // the client subscribes again by itself, and its token completes only then.
        assert_eq!(scene.client.token_state(token), TokenState::Pending);
        scene.recover(&[&["ok/#"], &["pending/a", "pending/b"]]);
        assert_eq!(
            done(&scene.client, token),
            Ok(Outcome {
                codes: vec![1, 0],
                ..Outcome::default()
            })
        );
        // Both handlers work, and are unsubscribed for the next case.
        scene
            .conn
            .send(Packet::Publish(publish("pending/a", QoS::AtMostOnce, 0, b"a")));
        scene
            .conn
            .send(Packet::Publish(publish("pending/b", QoS::AtMostOnce, 0, b"b")));
        assert_eq!(&rx1.recv_timeout(TIMEOUT).unwrap().payload[..], b"a");
        assert_eq!(&rx2.recv_timeout(TIMEOUT).unwrap().payload[..], b"b");
        let unsub = scene
            .client
            .unsubscribe(vec![mqtt_str("pending/a"), mqtt_str("pending/b")])
            .unwrap();
        let u = scene.conn.expect_unsubscribe();
        scene.conn.send(Packet::UnsubAck(SubAck::new(u.pkid, vec![])));
        assert_eq!(done(&scene.client, unsub), ok());
    }
}

/// Log lines of `client` at Warning and above, as they come.
/// Waits (bounded) for a log line containing all of `words`.
fn expect_log(lines: &Mutex<Vec<String>>, words: &[&str]) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| words.iter().all(|w| l.contains(w)))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no log line with {words:?}: {:?}",
            lines.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_malformed_connack_fails_that_connect_and_the_client_connects_again() {
    use CodecError::*;
    let cases: [(Vec<u8>, CodecError, &str); 5] = [
        (
            raw(0x20, b"\x00\x00\x00"),
            InvalidRemainingLength {
                packet_type: 2,
                remaining_len: 3,
                expected: 2,
            },
            "packet type 2 must have remaining length 2, not 3",
        ),
        (
            raw(0x20, b"\x00"),
            InvalidRemainingLength {
                packet_type: 2,
                remaining_len: 1,
                expected: 2,
            },
            "packet type 2 must have remaining length 2, not 1",
        ),
        (
            raw(0x20, b"\x00\x06"),
            InvalidReasonCode {
                packet_type: 2,
                code: 6,
            },
            "0x06 is not a reason code packet type 2 may carry",
        ),
        (
            raw(0x20, b"\x80\x00"),
            InvalidConnAckFlags(0x80),
            "invalid CONNACK flags",
        ),
        // Session present with a refusal (MQTT-3.2.2-4).
        (raw(0x20, b"\x01\x05"), InvalidConnAckFlags(1), "invalid CONNACK flags"),
    ];
    let broker = FakeBroker::new();
    let client = Client::new(vec![broker.address()], reconnecting()).unwrap();
    let log = log_lines(&client, LogLevel::Warning);
    // The first connect: a broken CONNACK fails its token with the reason (not retried, as any
    // failed first connect), and the application's next connect works.
    for (bytes, error, words) in &cases {
        let reason = Error::Protocol(error.clone());
        assert_protocol_error(&reason, words);
        let token = client.connect().unwrap();
        let mut conn = broker.accept();
        conn.expect_connect();
        conn.send_raw(bytes);
        assert_eq!(done(&client, token), Err(reason));
        conn.expect_eof(TIMEOUT);
        assert_eq!(client.state(), State::Disconnected);
    }
    let mut scene = Scene::connect(broker, client);
    scene.round_trip();
    // While reconnecting: each broken CONNACK fails that attempt, which the log reports, and the
    // client tries again by itself until a good one comes.
    for (bytes, error, _) in &cases {
        // Any protocol error breaks the connection.
        scene.conn.send_raw(&raw(0xF0, b""));
        scene.expect_lost(&Error::Protocol(CodecError::InvalidPacketType(15)));
        let mut conn = scene.broker.accept();
        conn.expect_connect();
        conn.send_raw(bytes);
        conn.expect_eof(TIMEOUT);
        expect_log(
            &log,
            &["connect to", "failed", &Error::Protocol(error.clone()).to_string()],
        );
        scene.recover(&[&["ok/#"]]);
    }
}

#[test]
fn packets_only_a_client_sends_and_a_second_connack_close_the_connection() {
    let mut scene = Scene::new(reconnecting());
    let connect = Connect {
        version: Version::V311,
        clean_session: true,
        keep_alive: 60,
        client_id: mqtt_str("evil"),
        will: None,
        username: None,
        password: None,
        properties: Properties::new(),
    };
    let cases = [
        (Packet::Connect(connect), "CONNECT"),
        (
            Packet::Subscribe(Subscribe {
                pkid: 3,
                filters: vec![(mqtt_str("ok/#"), QoS::AtLeastOnce.into())],
                properties: Properties::new(),
            }),
            "SUBSCRIBE",
        ),
        (
            Packet::Unsubscribe(Unsubscribe {
                pkid: 4,
                filters: vec![mqtt_str("ok/#")],
                properties: Properties::new(),
            }),
            "UNSUBSCRIBE",
        ),
        (Packet::PingReq, "PINGREQ"),
        // A 3.1.1 broker never sends DISCONNECT (MQTT 5's may).
        (Packet::Disconnect(Disconnect::default()), "DISCONNECT"),
        (Packet::ConnAck(ConnAck::accepted(false)), "second CONNACK"),
    ];
    for (packet, name) in cases {
        eprintln!("wrong packet: {name}");
        scene.conn.send(packet);
        let (_, event) = scene.events.recv_timeout(TIMEOUT).expect("the connection is lost");
        let ConnectionEvent::Lost {
            reason: reason @ Error::UnexpectedPacket(_),
            ..
        } = event
        else {
            panic!("{name}: {event:?}")
        };
        assert_protocol_error(&reason, &format!("unexpected {name}"));
        scene.conn.expect_eof(TIMEOUT);
        scene.recover(&[&["ok/#"]]);
    }
}

#[test]
fn a_packet_other_than_connack_first_fails_the_connect_from_its_fixed_header() {
    let broker = FakeBroker::new();
    let client = Client::new(vec![broker.address()], reconnecting()).unwrap();
    let cases: [(&[u8], &str); 3] = [
        // A PUBLISH header claiming 100,000 bytes; the body never comes.
        (&[0x30, 0xA0, 0x8D, 0x06], "unexpected PUBLISH before CONNACK"),
        (&[0x40, 0x02, 0x00, 0x01], "unexpected PUBACK before CONNACK"),
        (&[0x90], "unexpected SUBACK before CONNACK"),
    ];
    for (bytes, words) in cases {
        let token = client.connect().unwrap();
        let mut conn = broker.accept();
        conn.expect_connect();
        let sent = Instant::now();
        conn.send_raw(bytes);
        let Err(reason) = done(&client, token) else {
            panic!("connected after {bytes:02x?}")
        };
        assert!(
            sent.elapsed() < Duration::from_millis(500),
            "{words}: took {:?}",
            sent.elapsed()
        );
        assert_protocol_error(&reason, words);
        conn.expect_eof(TIMEOUT);
    }
    Scene::connect(broker, client).round_trip();
}

#[test]
fn impossible_remaining_lengths_close_the_connection_from_the_fixed_header_alone() {
    let mut scene = Scene::new(reconnecting());

    // A 5-byte remaining length, one byte at a time: refused at its 4th length byte, as soon as the
    // continuation bit shows a 5th would follow (MQTT allows 4).
    scene
        .conn
        .send_slowly(&[0x30, 0x80, 0x80, 0x80], Duration::from_millis(20));
    assert!(
        scene.events.try_recv().is_err(),
        "four length bytes are not too many yet"
    );
    scene.conn.send_raw(&[0x80]);
    scene.expect_lost(&Error::Protocol(CodecError::MalformedRemainingLength));
    scene.recover(&[&["ok/#"]]);

    // Packets whose size MQTT fixes, claiming another one, without their body: refused at once
    // rather than after waiting (and making room) for up to the maximum packet size.
    let cases: [(&[u8], u8, usize, usize); 5] = [
        (&[0x40, 0xC0, 0x84, 0x3D], 4, 1_000_000, 2),
        (&[0xD0, 0x01], 13, 1, 0),
        (&[0x20, 0xFF, 0x7F], 2, 16_383, 2),
        (&[0xB0, 0x03], 11, 3, 2),
        (&[0x70, 0x80, 0x80, 0x80, 0x01], 7, 2_097_152, 2),
    ];
    for (header, packet_type, remaining_len, expected) in cases {
        let reason = Error::Protocol(CodecError::InvalidRemainingLength {
            packet_type,
            remaining_len,
            expected,
        });
        assert_protocol_error(
            &reason,
            &format!("must have remaining length {expected}, not {remaining_len}"),
        );
        let sent = Instant::now();
        scene.conn.send_raw(header);
        let lost = scene.expect_lost(&reason);
        assert!(
            lost - sent < Duration::from_millis(500),
            "type {packet_type}: took {:?}",
            lost - sent
        );
        scene.recover(&[&["ok/#"]]);
    }
}

#[test]
fn a_publish_of_exactly_the_maximum_packet_size_is_taken_and_one_byte_more_is_refused_before_its_body() {
    const MAX: usize = 300;
    let mut scene = Scene::new(Options {
        max_packet_size: MAX,
        ..reconnecting()
    });
    // Fixed header 3 bytes (remaining length >= 128), topic 2 + 6, packet id 2: the rest is payload.
    let payload = vec![b'x'; MAX - 3 - 8 - 2];
    let fits = wire(Packet::Publish(publish("ok/max", QoS::AtLeastOnce, 5, &payload)));
    assert_eq!(fits.len(), MAX);
    scene.conn.send_raw(&fits);
    scene.conn.expect_packet(&Packet::PubAck(Ack::new(5)));
    let m = scene
        .inbox
        .recv_timeout(TIMEOUT)
        .expect("the largest allowed packet arrives");
    assert_eq!(m.payload.len(), payload.len());

    let mut too_big = wire(Packet::Publish(publish(
        "ok/max",
        QoS::AtLeastOnce,
        6,
        &[payload.clone(), vec![b'x']].concat(),
    )));
    assert_eq!(too_big.len(), MAX + 1);
    too_big.truncate(3);
    scene.hostile(
        &too_big,
        &Error::Protocol(CodecError::PacketTooLarge {
            size: MAX + 1,
            max: MAX,
        }),
    );
}

#[test]
fn invalid_topics_in_a_publish_close_the_connection_and_nothing_is_delivered_or_acknowledged() {
    use CodecError::*;
    let mut scene = Scene::new(reconnecting());
    let cases: [(&[u8], CodecError, &str); 10] = [
        (b"ok/\x80", InvalidUtf8, "not well-formed UTF-8"),
        (b"ok/\xC3\x28", InvalidUtf8, "not well-formed UTF-8"),
        // An overlong '/', an encoded surrogate, a code point above U+10FFFF.
        (b"ok/\xC0\xAF", InvalidUtf8, "not well-formed UTF-8"),
        (b"ok/\xED\xA0\x80", InvalidUtf8, "not well-formed UTF-8"),
        (b"ok/\xF4\x90\x80\x80", InvalidUtf8, "not well-formed UTF-8"),
        (b"ok/\xC3", InvalidUtf8, "not well-formed UTF-8"),
        (b"ok/a\x00b", NulInString, "U+0000"),
        (b"ok/+", Topic(TopicError::WildcardInName), "wildcards"),
        (b"ok/#", Topic(TopicError::WildcardInName), "wildcards"),
        (b"", Topic(TopicError::Empty), "the topic is empty"),
    ];
    for (topic, error, words) in cases {
        let reason = Error::Protocol(error);
        assert_protocol_error(&reason, words);
        eprintln!("topic {topic:02x?}");
        // `hostile` checks no PUBACK went out before the close, and the round trip that nothing
        // reached the "ok/#" handler before its own message.
        scene.hostile(&publish_to_raw_topic(topic), &reason);
    }
}

#[test]
fn acks_for_packet_ids_never_used_are_ignored_and_logged_and_the_connection_stays() {
    // libmosquitto and Paho ignore them too. An acknowledgement carries no data: one for an id not
    // in use has nothing to corrupt, and a late duplicate after a resend is not an attack. So the
    // client logs a warning and goes on; what matters is that it never completes the wrong message.
    let mut scene = Scene::new(reconnecting());
    let log = log_lines(&scene.client, LogLevel::Warning);
    let q1 = publish_qos1(&scene.client, "out/1", "one");
    let q2 = scene
        .client
        .publish(mqtt_str("out/2"), Bytes::from_static(b"two"), QoS::ExactlyOnce, false)
        .unwrap();
    let p1 = scene.conn.expect_publish().pkid;
    let p2 = scene.conn.expect_publish().pkid;
    let unused = (1..).find(|id| ![p1, p2].contains(id)).unwrap();
    let strays = [
        (Packet::PubAck(Ack::new(unused)), "PUBACK"),
        (Packet::PubRec(Ack::new(unused)), "PUBREC"),
        (Packet::PubComp(Ack::new(unused)), "PUBCOMP"),
        (Packet::UnsubAck(SubAck::new(unused, vec![])), "UNSUBACK"),
        // Acknowledgements of the wrong kind for ids that are in flight.
        (Packet::PubComp(Ack::new(p1)), "PUBCOMP"),
        (Packet::PubRec(Ack::new(p1)), "PUBREC"),
        (Packet::PubAck(Ack::new(p2)), "PUBACK"),
        (Packet::PubComp(Ack::new(p2)), "PUBCOMP"),
    ];
    for (packet, name) in strays {
        let id = match packet {
            Packet::PubAck(Ack { pkid, .. }) | Packet::PubRec(Ack { pkid, .. }) | Packet::PubComp(Ack { pkid, .. }) => {
                pkid
            }
            Packet::UnsubAck(SubAck { pkid, .. }) => pkid,
            _ => unreachable!(),
        };
        scene.conn.send(packet);
        expect_log(&log, &["ignored", name, &format!("packet id {id}")]);
    }
    scene
        .conn
        .send_raw(&raw(0x90, &[(unused >> 8) as u8, unused as u8, 0x00]));
    expect_log(&log, &["ignored", "SUBACK", &format!("packet id {unused}")]);
    // Nothing answered them (no PUBREL for the stray PUBREC), nothing completed.
    scene.conn.expect_silence(Duration::from_millis(100));
    assert!(scene.events.try_recv().is_err(), "the connection changed");
    assert_eq!(scene.client.token_state(q1), TokenState::Pending);
    assert_eq!(scene.client.token_state(q2), TokenState::Pending);
    // A PUBREL for an unknown id is answered with PUBCOMP: MQTT-4.3.3 has the receiver answer every
    // PUBREL, and it is how a broker that lost track finishes its side.
    scene.conn.send(Packet::PubRel(Ack::new(unused)));
    scene.conn.expect_packet(&Packet::PubComp(Ack::new(unused)));

    // The right acknowledgements still complete the right messages, and once.
    scene.conn.send(Packet::PubAck(Ack::new(p1)));
    assert_eq!(done(&scene.client, q1), ok());
    scene.conn.send(Packet::PubRec(Ack::new(p2)));
    scene.conn.expect_packet(&Packet::PubRel(Ack::new(p2)));
    scene.conn.send(Packet::PubComp(Ack::new(p2)));
    assert_eq!(done(&scene.client, q2), ok());
    log.lock().unwrap().clear();
    scene.conn.send(Packet::PubAck(Ack::new(p1)));
    expect_log(&log, &["ignored", "PUBACK", &format!("packet id {p1}")]);
    scene.round_trip();
    assert!(scene.events.try_recv().is_err(), "the connection changed");
}

#[test]
fn a_broker_that_stalls_or_trickles_mid_packet_is_dropped_by_keep_alive() {
    const KEEP_ALIVE: Duration = Duration::from_secs(1);
    let mut scene = Scene::new(Options {
        keep_alive: 1,
        // Capped at half the keep-alive: a silent link is noticed within 1.5 keep-alives.
        ping_timeout: Duration::from_secs(30),
        // The most the client buffers for the unfinished packet.
        max_packet_size: 4096,
        ..reconnecting()
    });
    let reason = Error::KeepAliveTimeout;
    assert_eq!(mqttc_status::from(&reason), mqttc_status::MQTTC_ERR_KEEPALIVE_TIMEOUT);
    assert!(reason.to_string().contains("no PINGRESP"), "{reason}");
    // A PUBLISH of 4000 bytes (within the maximum, so the client waits for it): its fixed header
    // and topic, then nothing, or one byte every 100 ms. The client cannot tell either from a slow
    // link, but it keeps pinging, and while it stands mid-packet no PINGRESP can arrive.
    for trickle in [false, true] {
        eprintln!("trickle: {trickle}");
        scene.conn.set_auto_pingresp(false);
        let start = Instant::now();
        scene
            .conn
            .send_raw(&[0x30, 0xA0, 0x1F, 0x00, 0x04, b'o', b'k', b'/', b's']);
        let mut pinged = false;
        while !scene.conn.is_eof() {
            assert!(start.elapsed() < TIMEOUT, "the client did not drop the connection");
            if trickle {
                scene.conn.send_raw(b"x");
            }
            for r in scene.conn.silence(Duration::from_millis(100)) {
                assert_eq!(r.packet, Packet::PingReq, "only pings while the packet is unfinished");
                pinged = true;
            }
        }
        assert!(pinged, "the client pinged before it gave up");
        let lost = scene.expect_lost(&reason);
        let took = lost - start;
        assert!(
            took <= KEEP_ALIVE * 3 / 2 + Duration::from_millis(400),
            "a stalled packet was noticed only after {took:?}"
        );
        scene.recover(&[&["ok/#"]]);
    }
}

#[test]
fn a_flood_while_the_message_callback_is_slow_pauses_reading_and_loses_or_reorders_nothing() {
    // Half QoS 0, half QoS 1, 1 KiB each: 16 MiB, far more than the socket buffers between the two
    // hold (a few MiB), so the flood must stall while the callback blocks.
    const COUNT: usize = 16_000;
    const BLOCKED: Duration = Duration::from_millis(2500);
    let broker = FakeBroker::new();
    let client = Client::new(
        vec![broker.address()],
        Options {
            // On, and shorter than the callback blocks: the pause must not look like a dead link.
            keep_alive: 1,
            callback_queue: 16,
            ..reconnecting()
        },
    )
    .unwrap();
    let mut scene = Scene::connect(broker, client);
    scene.conn.set_auto_pingresp(true);
    let open = Arc::new(AtomicBool::new(false));
    let (tx, seen) = mpsc::channel();
    let gate = open.clone();
    let handler = Handler::Call(Box::new(move |p: &Publish| {
        // Blocked until the test opens the gate, then slow.
        let deadline = Instant::now() + TIMEOUT;
        while !gate.load(Ordering::Acquire) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_micros(20));
        let seq = u64::from_be_bytes(p.payload[..8].try_into().unwrap());
        let _ = tx.send((seq, p.qos, p.payload.len()));
    }));
    let token = scene
        .client
        .subscribe(vec![(mqtt_str("flood"), QoS::AtLeastOnce, handler)])
        .unwrap();
    scene.conn.answer_subscribe(&[1]);
    assert!(done(&scene.client, token).is_ok());

    let opener = std::thread::spawn(move || {
        std::thread::sleep(BLOCKED);
        open.store(true, Ordering::Release);
    });
    let message = |i: usize| {
        let mut payload = vec![0u8; 1024];
        payload[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let (qos, pkid) = match i % 2 {
            0 => (QoS::AtMostOnce, 0),
            _ => (QoS::AtLeastOnce, (i % 65_535) as u16 + 1),
        };
        Packet::Publish(publish("flood", qos, pkid, &payload))
    };
    let flood = scene.conn.flood(COUNT, TIMEOUT * 3, message);
    opener.join().unwrap();
    // The client stopped taking bytes while its callback was blocked: it did not buffer the flood.
    assert!(
        flood.longest_stall >= BLOCKED / 2,
        "the client kept reading while its callback was blocked: longest stall {:?}",
        flood.longest_stall
    );
    // Keep-alive went on while the client was not reading: it pinged, and the PINGRESP waited
    // behind the flood, unread; the connection stayed all the same (checked below).
    assert!(flood.pongs >= 1, "no PINGREQ during the flood: {flood:?}");
    // Every message, once, in order, whole; and every QoS 1 one acknowledged, in order.
    for i in 0..COUNT {
        let (seq, qos, len) = seen
            .recv_timeout(TIMEOUT)
            .unwrap_or_else(|_| panic!("message {i} of {COUNT} not delivered"));
        assert_eq!(seq, i as u64, "delivered out of order");
        assert_eq!(qos, if i % 2 == 0 { QoS::AtMostOnce } else { QoS::AtLeastOnce });
        assert_eq!(len, 1024);
    }
    for i in (1..COUNT).step_by(2) {
        scene
            .conn
            .expect_packet(&Packet::PubAck(Ack::new((i % 65_535) as u16 + 1)));
    }
    assert!(
        scene.events.try_recv().is_err(),
        "the connection changed during the flood"
    );
    scene.round_trip();
}
