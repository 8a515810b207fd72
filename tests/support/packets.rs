//! Proptest strategies for every packet type of MQTT 3.1.1 and 5, built on the public codec API only.
//! Which properties each MQTT 5 packet may carry is written out here from table 2-4 of the spec, a
//! second reading of it beside the codec's own.
//! Shared (via `#[path]`) by tests/codec_props.rs, and by tests/fuzz_corpus.rs, which draws the
//! decode target's seed corpus from them.

use bytes::Bytes;
use mqttclient::codec::{
    Ack, Auth, ConnAck, Connect, Disconnect, MqttStr, Packet, Properties, Property, PropertyId, PropertyKind,
    PropertyValue, Publish, QoS, ReasonCode, RetainHandling, SubAck, Subscribe, SubscribeOptions, Unsubscribe, Version,
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

/// A value of the identifier's type and range.
fn property_value(id: PropertyId) -> BoxedStrategy<PropertyValue> {
    match id.kind() {
        PropertyKind::Str => any_text().prop_map(PropertyValue::Str).boxed(),
        PropertyKind::Binary => binary(20).prop_map(PropertyValue::Binary).boxed(),
        PropertyKind::StrPair => (any_text(), any_text())
            .prop_map(|(k, v)| PropertyValue::Pair(k, v))
            .boxed(),
        _ => {
            let (min, max) = id.int_range().expect("an integer property");
            // The ends of the range, where encodings change width, as often as the middle.
            prop_oneof![Just(min), Just(max), min..=max]
                .prop_map(PropertyValue::Int)
                .boxed()
        }
    }
}

use PropertyId::*;

const CONNECT_PROPS: &[PropertyId] = &[
    SessionExpiryInterval,
    AuthenticationMethod,
    AuthenticationData,
    RequestProblemInformation,
    RequestResponseInformation,
    ReceiveMaximum,
    TopicAliasMaximum,
    MaximumPacketSize,
];
const WILL_PROPS: &[PropertyId] = &[
    PayloadFormatIndicator,
    MessageExpiryInterval,
    ContentType,
    ResponseTopic,
    CorrelationData,
    WillDelayInterval,
];
const CONNACK_PROPS: &[PropertyId] = &[
    SessionExpiryInterval,
    AssignedClientIdentifier,
    ServerKeepAlive,
    AuthenticationMethod,
    AuthenticationData,
    ResponseInformation,
    ServerReference,
    ReasonString,
    ReceiveMaximum,
    TopicAliasMaximum,
    MaximumQoS,
    RetainAvailable,
    MaximumPacketSize,
    WildcardSubscriptionAvailable,
    SubscriptionIdentifierAvailable,
    SharedSubscriptionAvailable,
];
const PUBLISH_PROPS: &[PropertyId] = &[
    PayloadFormatIndicator,
    MessageExpiryInterval,
    ContentType,
    ResponseTopic,
    CorrelationData,
    TopicAlias,
];
const REASON_STRING: &[PropertyId] = &[ReasonString];
const SUBSCRIBE_PROPS: &[PropertyId] = &[SubscriptionIdentifier];
const DISCONNECT_PROPS: &[PropertyId] = &[SessionExpiryInterval, ServerReference, ReasonString];
const AUTH_PROPS: &[PropertyId] = &[AuthenticationMethod, AuthenticationData, ReasonString];

/// No properties in 3.1.1; in MQTT 5 a subset of `allowed` (each once, in any order), with user
/// properties (which may repeat, also with the same key) among them.
fn properties(version: Version, allowed: &'static [PropertyId]) -> BoxedStrategy<Properties> {
    if version == Version::V311 {
        return Just(Properties::new()).boxed();
    }
    let single = proptest::sample::subsequence(allowed, 0..=allowed.len().min(4)).prop_flat_map(|ids| {
        ids.into_iter()
            .map(|id| (Just(id), property_value(id)))
            .collect::<Vec<_>>()
    });
    let users = proptest::collection::vec(property_value(UserProperty), 0..3);
    (single, users, any::<proptest::sample::Index>())
        .prop_map(|(single, users, at)| {
            let mut list: Vec<Property> = single
                .into_iter()
                .map(|(id, value)| Property::new(id, value).expect("generated in range"))
                .collect();
            let at = at.index(list.len() + 1);
            for value in users.into_iter().rev() {
                list.insert(at, Property::new(UserProperty, value).expect("a pair"));
            }
            let mut properties = Properties::new();
            for p in list {
                properties.push(p);
            }
            properties
        })
        .boxed()
}

/// A reason code the packet type may carry; success only in 3.1.1.
fn reason(version: Version, codes: &'static [u8]) -> BoxedStrategy<ReasonCode> {
    match version {
        Version::V311 => Just(ReasonCode::SUCCESS).boxed(),
        Version::V5 => select(codes).prop_map(ReasonCode).boxed(),
    }
}

const PUBACK_CODES: &[u8] = &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
const PUBREL_CODES: &[u8] = &[0x00, 0x92];
const SUBACK_CODES: &[u8] = &[0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2];
const MQTT311_SUBACK_CODES: &[u8] = &[0x00, 0x01, 0x02, 0x80];
const UNSUBACK_CODES: &[u8] = &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91];
const CONNACK_CODES: &[u8] = &[
    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B,
    0x9C, 0x9D, 0x9F,
];
/// 3.1.1's return codes 0 to 5, as the reason codes the codec reads them as.
const MQTT311_CONNACK_CODES: &[u8] = &[0x00, 0x84, 0x85, 0x88, 0x86, 0x87];
const DISCONNECT_CODES: &[u8] = &[
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98,
    0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
];
const AUTH_CODES: &[u8] = &[0x00, 0x18, 0x19];

fn connect(version: Version) -> impl Strategy<Value = Packet> {
    let will = (
        topic_name(),
        binary(40),
        qos(),
        any::<bool>(),
        properties(version, WILL_PROPS),
    )
        .prop_map(|(topic, payload, qos, retain, properties)| Will {
            topic,
            payload,
            qos,
            retain,
            properties,
        });
    // In 3.1.1 a password needs a user name (MQTT-3.1.2-22); MQTT 5 drops the rule.
    let credentials =
        (proptest::option::of(any_text()), proptest::option::of(binary(20))).prop_map(move |(user, password)| {
            match (version, user) {
                (Version::V311, None) => (None, None),
                (_, user) => (user, password),
            }
        });
    (
        any::<bool>(),
        any::<u16>(),
        any_text(),
        proptest::option::of(will),
        credentials,
        properties(version, CONNECT_PROPS),
    )
        .prop_map(
            move |(clean_session, keep_alive, client_id, will, (username, password), properties)| {
                Packet::Connect(Connect {
                    version,
                    clean_session,
                    keep_alive,
                    client_id,
                    will,
                    username,
                    password,
                    properties,
                })
            },
        )
}

fn connack(version: Version) -> impl Strategy<Value = Packet> {
    let codes = match version {
        Version::V311 => MQTT311_CONNACK_CODES,
        Version::V5 => CONNACK_CODES,
    };
    // Only an accepted connection can have a session (MQTT-3.2.2-4).
    (any::<bool>(), select(codes), properties(version, CONNACK_PROPS)).prop_map(|(present, code, properties)| {
        Packet::ConnAck(ConnAck {
            session_present: present && code == 0,
            code: ReasonCode(code),
            properties,
        })
    })
}

fn publish(version: Version) -> impl Strategy<Value = Packet> {
    // Payloads cross the 127-byte boundary of a one-byte remaining length.
    (
        (qos(), any::<bool>(), any::<bool>()),
        topic_name(),
        pkid(),
        properties(version, PUBLISH_PROPS),
        binary(300),
        any::<bool>(),
    )
        .prop_map(|((qos, dup, retain), topic, pkid, properties, payload, alias_only)| {
            let qos0 = qos == QoS::AtMostOnce;
            // With a topic alias, the topic may be left out (MQTT 5 section 3.3.2.3.4).
            let aliased = properties.int(TopicAlias).is_some();
            Packet::Publish(Publish {
                dup: dup && !qos0,
                qos,
                retain,
                topic: if aliased && alias_only {
                    mqtt_str(String::new())
                } else {
                    topic
                },
                pkid: if qos0 { 0 } else { pkid },
                properties,
                payload,
            })
        })
}

fn ack(version: Version, make: fn(Ack) -> Packet, codes: &'static [u8]) -> BoxedStrategy<Packet> {
    (pkid(), reason(version, codes), properties(version, REASON_STRING))
        .prop_map(move |(pkid, reason, properties)| {
            make(Ack {
                pkid,
                reason,
                properties,
            })
        })
        .boxed()
}

fn subscribe_options(version: Version) -> BoxedStrategy<SubscribeOptions> {
    match version {
        Version::V311 => qos().prop_map(SubscribeOptions::from).boxed(),
        Version::V5 => (
            qos(),
            any::<bool>(),
            any::<bool>(),
            select(
                &[
                    RetainHandling::SendAtSubscribe,
                    RetainHandling::SendIfNew,
                    RetainHandling::DontSend,
                ][..],
            ),
        )
            .prop_map(
                |(qos, no_local, retain_as_published, retain_handling)| SubscribeOptions {
                    qos,
                    no_local,
                    retain_as_published,
                    retain_handling,
                },
            )
            .boxed(),
    }
}

fn subscribe(version: Version) -> impl Strategy<Value = Packet> {
    (
        pkid(),
        proptest::collection::vec((topic_filter(), subscribe_options(version)), 1..8),
        properties(version, SUBSCRIBE_PROPS),
    )
        .prop_map(|(pkid, filters, properties)| {
            Packet::Subscribe(Subscribe {
                pkid,
                filters,
                properties,
            })
        })
}

fn code_list(
    version: Version,
    make: fn(SubAck) -> Packet,
    codes: &'static [u8],
    max: usize,
) -> impl Strategy<Value = Packet> {
    (
        pkid(),
        proptest::collection::vec(select(codes).prop_map(ReasonCode), 0..max),
        properties(version, REASON_STRING),
    )
        .prop_map(move |(pkid, codes, properties)| {
            make(SubAck {
                pkid,
                codes,
                properties,
            })
        })
}

fn unsubscribe(version: Version) -> impl Strategy<Value = Packet> {
    (
        pkid(),
        proptest::collection::vec(topic_filter(), 1..8),
        properties(version, &[]),
    )
        .prop_map(|(pkid, filters, properties)| {
            Packet::Unsubscribe(Unsubscribe {
                pkid,
                filters,
                properties,
            })
        })
}

/// One strategy per packet type of `version`, named as the `Packet` variant.
pub fn by_type(version: Version) -> Vec<(&'static str, BoxedStrategy<Packet>)> {
    let v = version;
    let (suback_codes, unsuback_max) = match v {
        Version::V311 => (MQTT311_SUBACK_CODES, 1),
        Version::V5 => (SUBACK_CODES, 8),
    };
    let mut types = vec![
        ("Connect", connect(v).boxed()),
        ("ConnAck", connack(v).boxed()),
        ("Publish", publish(v).boxed()),
        ("PubAck", ack(v, Packet::PubAck, PUBACK_CODES)),
        ("PubRec", ack(v, Packet::PubRec, PUBACK_CODES)),
        ("PubRel", ack(v, Packet::PubRel, PUBREL_CODES)),
        ("PubComp", ack(v, Packet::PubComp, PUBREL_CODES)),
        ("Subscribe", subscribe(v).boxed()),
        ("SubAck", code_list(v, Packet::SubAck, suback_codes, 8).boxed()),
        ("Unsubscribe", unsubscribe(v).boxed()),
        // A 3.1.1 UNSUBACK has no codes: 0..1 draws none.
        (
            "UnsubAck",
            code_list(v, Packet::UnsubAck, UNSUBACK_CODES, unsuback_max).boxed(),
        ),
        ("PingReq", Just(Packet::PingReq).boxed()),
        ("PingResp", Just(Packet::PingResp).boxed()),
        (
            "Disconnect",
            (reason(v, DISCONNECT_CODES), properties(v, DISCONNECT_PROPS))
                .prop_map(|(reason, properties)| Packet::Disconnect(Disconnect { reason, properties }))
                .boxed(),
        ),
    ];
    if v == Version::V5 {
        types.push((
            "Auth",
            (reason(v, AUTH_CODES), properties(v, AUTH_PROPS))
                .prop_map(|(reason, properties)| Packet::Auth(Auth { reason, properties }))
                .boxed(),
        ));
    }
    types
}

/// A packet of any type of `version`, each type equally likely.
pub fn any_packet(version: Version) -> impl Strategy<Value = Packet> {
    proptest::strategy::Union::new(by_type(version).into_iter().map(|(_, strategy)| strategy))
}

/// `packet`'s wire form in `version`.
pub fn encode(packet: &Packet, version: Version) -> Vec<u8> {
    let mut buf = bytes::BytesMut::new();
    packet.encode(&mut buf, version).expect("generated packets are valid");
    assert_eq!(buf.len(), packet.encoded_len(version), "encoded_len of {packet:?}");
    buf.to_vec()
}
