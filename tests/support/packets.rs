//! Proptest strategies for every MQTT 3.1.1 packet type, built on the public codec API only.
//! Shared (via `#[path]`) by tests/codec_props.rs, and by tests/fuzz_corpus.rs, which draws the
//! decode target's seed corpus from them.

use bytes::Bytes;
use mqttclient::codec::{
    ConnAck, Connect, ConnectReturnCode, MqttStr, Packet, Publish, QoS, SubAck, SubAckCode, Subscribe, Unsubscribe,
    Will,
};
use proptest::prelude::*;
use proptest::sample::select;

fn text(chars: &'static [char], len: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    proptest::collection::vec(select(chars), len).prop_map(String::from_iter)
}

fn mqtt_str(s: String) -> MqttStr {
    MqttStr::new(&s).expect("generated strings are short and NUL-free")
}

/// Any string an MQTT string may hold, for client ids and user names.
fn any_text() -> impl Strategy<Value = MqttStr> {
    text(
        &['a', 'Z', '0', '-', ' ', '/', '+', '#', 'é', '€', '😀', '\u{7f}'],
        0..24,
    )
    .prop_map(mqtt_str)
}

pub fn topic_name() -> impl Strategy<Value = MqttStr> {
    text(&['a', 'b', '/', '$', ' ', 'é', '€', '😀'], 1..24).prop_map(mqtt_str)
}

pub fn topic_filter() -> impl Strategy<Value = MqttStr> {
    let level = select(&["a", "b", "", "+", "$SYS", "ü", "sensor-42"][..]);
    (proptest::collection::vec(level, 1..6), any::<bool>()).prop_map(|(levels, hash)| {
        let mut filter = levels.join("/");
        match (hash, filter.is_empty()) {
            (true, true) => filter.push('#'),
            (true, false) => filter.push_str("/#"),
            // A single empty level is no filter: two of them are.
            (false, true) => filter.push('/'),
            (false, false) => {}
        }
        mqtt_str(filter)
    })
}

fn binary(max: usize) -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn qos() -> impl Strategy<Value = QoS> {
    select(&[QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce][..])
}

fn pkid() -> impl Strategy<Value = u16> {
    1..=u16::MAX
}

fn connect() -> impl Strategy<Value = Packet> {
    let will = (topic_name(), binary(40), qos(), any::<bool>()).prop_map(|(topic, payload, qos, retain)| Will {
        topic,
        payload,
        qos,
        retain,
    });
    // A password needs a user name (MQTT-3.1.2-22).
    let credentials = proptest::option::of((any_text(), proptest::option::of(binary(20))));
    (
        any::<bool>(),
        any::<u16>(),
        any_text(),
        proptest::option::of(will),
        credentials,
    )
        .prop_map(|(clean_session, keep_alive, client_id, will, credentials)| {
            let (username, password) = match credentials {
                Some((user, password)) => (Some(user), password),
                None => (None, None),
            };
            Packet::Connect(Connect {
                protocol_level: 4,
                clean_session,
                keep_alive,
                client_id,
                will,
                username,
                password,
            })
        })
}

fn connack() -> impl Strategy<Value = Packet> {
    use ConnectReturnCode::*;
    let code = select(
        &[
            Accepted,
            UnacceptableProtocolVersion,
            IdentifierRejected,
            ServerUnavailable,
            BadUserNameOrPassword,
            NotAuthorized,
        ][..],
    );
    // Only an accepted connection can have a session (MQTT-3.2.2-4).
    (any::<bool>(), code).prop_map(|(present, code)| {
        Packet::ConnAck(ConnAck {
            session_present: present && code == Accepted,
            code,
        })
    })
}

fn publish() -> impl Strategy<Value = Packet> {
    // Payloads cross the 127-byte boundary of a one-byte remaining length.
    (qos(), any::<bool>(), any::<bool>(), topic_name(), pkid(), binary(300)).prop_map(
        |(qos, dup, retain, topic, pkid, payload)| {
            let qos0 = qos == QoS::AtMostOnce;
            Packet::Publish(Publish {
                dup: dup && !qos0,
                qos,
                retain,
                topic,
                pkid: if qos0 { 0 } else { pkid },
                payload,
            })
        },
    )
}

fn subscribe() -> impl Strategy<Value = Packet> {
    (pkid(), proptest::collection::vec((topic_filter(), qos()), 1..8))
        .prop_map(|(pkid, filters)| Packet::Subscribe(Subscribe { pkid, filters }))
}

fn suback() -> impl Strategy<Value = Packet> {
    let code = prop_oneof![qos().prop_map(SubAckCode::Granted), Just(SubAckCode::Failure)];
    (pkid(), proptest::collection::vec(code, 0..8)).prop_map(|(pkid, codes)| Packet::SubAck(SubAck { pkid, codes }))
}

fn unsubscribe() -> impl Strategy<Value = Packet> {
    (pkid(), proptest::collection::vec(topic_filter(), 1..8))
        .prop_map(|(pkid, filters)| Packet::Unsubscribe(Unsubscribe { pkid, filters }))
}

/// One strategy per packet type, named as the `Packet` variant.
pub fn by_type() -> Vec<(&'static str, BoxedStrategy<Packet>)> {
    vec![
        ("Connect", connect().boxed()),
        ("ConnAck", connack().boxed()),
        ("Publish", publish().boxed()),
        ("PubAck", pkid().prop_map(Packet::PubAck).boxed()),
        ("PubRec", pkid().prop_map(Packet::PubRec).boxed()),
        ("PubRel", pkid().prop_map(Packet::PubRel).boxed()),
        ("PubComp", pkid().prop_map(Packet::PubComp).boxed()),
        ("Subscribe", subscribe().boxed()),
        ("SubAck", suback().boxed()),
        ("Unsubscribe", unsubscribe().boxed()),
        ("UnsubAck", pkid().prop_map(Packet::UnsubAck).boxed()),
        ("PingReq", Just(Packet::PingReq).boxed()),
        ("PingResp", Just(Packet::PingResp).boxed()),
        ("Disconnect", Just(Packet::Disconnect).boxed()),
    ]
}

/// A packet of any type, each type equally likely.
pub fn any_packet() -> impl Strategy<Value = Packet> {
    proptest::strategy::Union::new(by_type().into_iter().map(|(_, strategy)| strategy))
}

/// `packet`'s wire form.
pub fn encode(packet: &Packet) -> Vec<u8> {
    let mut buf = bytes::BytesMut::new();
    packet.encode(&mut buf).expect("generated packets are valid");
    assert_eq!(buf.len(), packet.encoded_len(), "encoded_len of {packet:?}");
    buf.to_vec()
}
