//! The topic target: the topic-name and topic-filter validators against the rules of MQTT 3.1.1
//! section 4.7 written out independently, and against what the codec accepts on the wire.
//!
//! Properties checked, for any string:
//! - each validator accepts exactly what the rules accept, and when it refuses, the error it
//!   names is one of the rules the string breaks;
//! - a valid name is a valid filter (with no wildcard in it);
//! - a PUBLISH to the string, and a SUBSCRIBE / UNSUBSCRIBE of it, encode exactly when the
//!   validators accept, and when received, decode to it or fail with the validator's error.

use bytes::{Bytes, BytesMut};
use mqttclient::codec::{
    CodecError, MqttStr, Packet, Properties, Publish, QoS, Subscribe, Unsubscribe, Version, decode,
};
use mqttclient::topic::{TopicError, validate_topic_filter, validate_topic_name};

const MAX_LEN: usize = 65_535;

pub fn check(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    check_str(&s);
}

pub fn check_str(s: &str) {
    let name = validate_topic_name(s);
    let filter = validate_topic_filter(s);
    agree(name, &name_violations(s), "name", s);
    agree(filter, &filter_violations(s), "filter", s);
    if name.is_ok() {
        assert_eq!(filter, Ok(()), "a valid name is a valid filter: {s:?}");
    }
    if filter.is_ok() && !s.contains(['+', '#']) {
        assert_eq!(name, Ok(()), "a filter without wildcards is a valid name: {s:?}");
    }
    for e in [name, filter].into_iter().filter_map(Result::err) {
        assert!(!e.to_string().is_empty());
    }
    check_on_the_wire(s, name, filter);
}

fn agree(got: Result<(), TopicError>, broken: &[TopicError], what: &str, s: &str) {
    match got {
        Ok(()) => assert!(broken.is_empty(), "{what} {s:?} accepted, but it breaks {broken:?}"),
        Err(e) => assert!(
            broken.contains(&e),
            "{what} {s:?} refused with {e:?}, but it breaks {broken:?}"
        ),
    }
}

/// The rules both kinds share (MQTT-4.7.3-1, -2, -3).
fn common_violations(s: &str) -> Vec<TopicError> {
    let mut broken = Vec::new();
    if s.is_empty() {
        broken.push(TopicError::Empty);
    }
    if s.len() > MAX_LEN {
        broken.push(TopicError::TooLong);
    }
    if s.chars().any(|c| c == '\u{0}') {
        broken.push(TopicError::Nul);
    }
    broken
}

fn name_violations(s: &str) -> Vec<TopicError> {
    let mut broken = common_violations(s);
    if s.chars().any(|c| c == '+' || c == '#') {
        broken.push(TopicError::WildcardInName);
    }
    broken
}

fn filter_violations(s: &str) -> Vec<TopicError> {
    let mut broken = common_violations(s);
    let levels: Vec<&str> = s.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        let wild = level.chars().any(|c| c == '+' || c == '#');
        if wild && *level != "+" && *level != "#" {
            broken.push(TopicError::WildcardNotWholeLevel);
        }
        if level.contains('#') && i + 1 < levels.len() {
            broken.push(TopicError::HashNotLast);
        }
    }
    broken
}

fn check_on_the_wire(s: &str, name: Result<(), TopicError>, filter: Result<(), TopicError>) {
    let Ok(topic) = MqttStr::new(s) else {
        assert!(s.len() > MAX_LEN || s.contains('\0'), "MqttStr refused {s:?}");
        return;
    };
    // A placeholder of the same length, valid as both name and filter, so the packet encodes; then
    // the string goes in its place, as a peer could send it.
    let placeholder = MqttStr::new(&"x".repeat(s.len().max(1))).expect("same length, plain");
    let publish = |topic: MqttStr| {
        Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic,
            pkid: 1,
            properties: Properties::new(),
            payload: Bytes::from_static(b"p"),
        })
    };
    let subscribe = |filter: MqttStr| {
        Packet::Subscribe(Subscribe {
            pkid: 1,
            filters: vec![(filter, QoS::AtMostOnce.into())],
            properties: Properties::new(),
        })
    };
    let unsubscribe = |filter: MqttStr| {
        Packet::Unsubscribe(Unsubscribe {
            pkid: 1,
            filters: vec![filter],
            properties: Properties::new(),
        })
    };
    type Make<'a> = &'a dyn Fn(MqttStr) -> Packet;
    let cases: [(Make, Result<(), TopicError>); 3] = [(&publish, name), (&subscribe, filter), (&unsubscribe, filter)];
    for (make, verdict) in cases {
        let packet = make(topic.clone());
        let mut buf = BytesMut::new();
        let encoded = packet.encode(&mut buf, Version::V311);
        assert_eq!(encoded, verdict.map_err(CodecError::Topic), "encoding {packet:?}");
        if s.is_empty() {
            continue; // no same-length placeholder for the empty string
        }
        let mut wire = BytesMut::new();
        make(placeholder.clone())
            .encode(&mut wire, Version::V311)
            .expect("the placeholder encodes");
        let at = find(&wire, placeholder.as_str().as_bytes());
        wire[at..at + s.len()].copy_from_slice(s.as_bytes());
        let expected = verdict.map(|()| Some(packet)).map_err(CodecError::Topic);
        assert_eq!(decode(&mut wire, usize::MAX, Version::V311), expected, "decoding {s:?}");
    }
}

/// The last occurrence: no `x` follows the topic, while a length byte before it can be an `x`.
fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .rposition(|w| w == needle)
        .expect("the placeholder is in the packet")
}
