//! PUBLISH (section 3.3).

use bytes::{BufMut, Bytes, BytesMut};

use super::fields::{check_pkid, field_len, read_pkid, read_str, write_field};
use super::header::PacketType;
use super::properties::Holder;
use super::{CodecError, Encode, MAX_REMAINING_LENGTH, MqttStr, Properties, PropertyId, QoS, Version};
use crate::topic::validate_topic_name;

// Fixed-header flag bits (section 3.3.1).
const DUP: u8 = 0b1000;
const QOS_SHIFT: u8 = 1;
const QOS_MASK: u8 = 0b0110;
const RETAIN: u8 = 0b0001;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    /// Empty only in MQTT 5, when a Topic Alias property stands for the topic (section 3.3.2.3.4).
    pub topic: MqttStr,
    /// 0 when qos is AtMostOnce (not on the wire then); never 0 otherwise.
    pub pkid: u16,
    pub properties: Properties,
    pub payload: Bytes,
}

impl Publish {
    /// Allocates nothing beyond the property list: topic and payload are slices of `body`.
    pub(crate) fn read(flags: u8, mut body: Bytes, version: Version) -> Result<Publish, CodecError> {
        let qos = QoS::from_u8((flags & QOS_MASK) >> QOS_SHIFT)?;
        let dup = flags & DUP != 0;
        if dup && qos == QoS::AtMostOnce {
            return Err(CodecError::DupOnQoS0);
        }
        let topic = read_str(&mut body)?;
        let pkid = match qos {
            QoS::AtMostOnce => 0,
            QoS::AtLeastOnce | QoS::ExactlyOnce => read_pkid(&mut body)?,
        };
        let properties = Properties::read_in(&mut body, Holder::Packet(PacketType::Publish), version)?;
        check_topic(&topic, &properties)?;
        Ok(Publish {
            dup,
            qos,
            retain: flags & RETAIN != 0,
            topic,
            pkid,
            properties,
            // Section 3.3.3: the payload is whatever the remaining length leaves, possibly nothing.
            payload: body,
        })
    }
}

/// A topic name, or nothing beside a Topic Alias; which alias is known is for the session.
fn check_topic(topic: &MqttStr, properties: &Properties) -> Result<(), CodecError> {
    if topic.is_empty() && properties.int(PropertyId::TopicAlias).is_some() {
        return Ok(());
    }
    validate_topic_name(topic.as_str())?;
    Ok(())
}

impl Encode for Publish {
    fn first_byte(&self) -> u8 {
        let mut byte = PacketType::Publish.first_byte() | (self.qos as u8) << QOS_SHIFT;
        if self.dup {
            byte |= DUP;
        }
        if self.retain {
            byte |= RETAIN;
        }
        byte
    }

    fn validate(&self, version: Version) -> Result<(), CodecError> {
        self.properties
            .validate_in(Holder::Packet(PacketType::Publish), version)?;
        check_topic(&self.topic, &self.properties)?;
        match self.qos {
            QoS::AtMostOnce if self.dup => Err(CodecError::DupOnQoS0),
            // A caller's non-zero id on QoS 0 would be silently dropped; better to say so.
            QoS::AtMostOnce if self.pkid != 0 => Err(CodecError::PacketIdOnQoS0(self.pkid)),
            QoS::AtMostOnce => Ok(()),
            QoS::AtLeastOnce | QoS::ExactlyOnce => check_pkid(self.pkid),
        }
    }

    fn remaining_len(&self, version: Version) -> usize {
        Publish::remaining_len_of(
            self.topic.as_str(),
            self.qos,
            &self.properties,
            self.payload.len(),
            version,
        )
    }

    fn write_body(&self, buf: &mut BytesMut, version: Version) {
        self.write_head(buf, version);
        buf.put_slice(&self.payload);
    }
}

impl Publish {
    /// The remaining length of a PUBLISH made of these parts (saturating, for a payload length a
    /// caller has not checked yet).
    fn remaining_len_of(topic: &str, qos: QoS, properties: &Properties, payload_len: usize, version: Version) -> usize {
        let pkid_len = if qos == QoS::AtMostOnce { 0 } else { 2 };
        (field_len(topic.as_bytes()) + pkid_len + properties.len_in(version)).saturating_add(payload_len)
    }

    /// Checks that a PUBLISH made of these parts fits MQTT's remaining length, before its payload
    /// is read or copied.
    pub fn check_size(
        topic: &str,
        qos: QoS,
        properties: &Properties,
        payload_len: usize,
        version: Version,
    ) -> Result<(), CodecError> {
        match Publish::remaining_len_of(topic, qos, properties, payload_len, version) {
            len if len > MAX_REMAINING_LENGTH => Err(CodecError::PayloadTooLarge(len)),
            _ => Ok(()),
        }
    }

    /// The body up to the payload.
    pub(super) fn write_head(&self, buf: &mut BytesMut, version: Version) {
        write_field(buf, self.topic.as_bytes());
        if self.qos != QoS::AtMostOnce {
            buf.put_u16(self.pkid);
        }
        self.properties.write_in(buf, version);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_util::{
        NO_LIMIT, V3, V5, decode_in, decode_one, encode_err, encode_err_in, frame, round_trip, round_trip_in,
    };
    use crate::codec::{MAX_REMAINING_LENGTH, Packet, decode};
    use crate::topic::TopicError;

    fn publish(qos: QoS, pkid: u16, topic: &str, payload: &[u8]) -> Publish {
        Publish {
            dup: false,
            qos,
            retain: false,
            topic: MqttStr::new(topic).unwrap(),
            pkid,
            properties: Properties::new(),
            payload: Bytes::copy_from_slice(payload),
        }
    }

    #[test]
    fn mqtt5_properties_sit_between_packet_id_and_payload() {
        let mut p = publish(QoS::AtLeastOnce, 10, "a/b", b"hi");
        assert_eq!(
            &round_trip_in(&Packet::Publish(p.clone()), V5)[..],
            b"\x32\x0A\x00\x03a/b\x00\x0A\x00hi"
        );
        p.properties.push_int(PropertyId::MessageExpiryInterval, 60).unwrap();
        p.properties.push_str(PropertyId::ResponseTopic, "r").unwrap();
        assert_eq!(
            &round_trip_in(&Packet::Publish(p.clone()), V5)[..],
            b"\x32\x13\x00\x03a/b\x00\x0A\x09\x02\x00\x00\x00\x3C\x08\x00\x01rhi"
        );
        assert_eq!(encode_err(&Packet::Publish(p)), CodecError::NotInMqtt311("properties"));
    }

    #[test]
    fn mqtt5_topic_alias_may_stand_for_the_topic() {
        let mut p = publish(QoS::AtMostOnce, 0, "", b"x");
        assert_eq!(
            encode_err_in(&Packet::Publish(p.clone()), V5),
            CodecError::Topic(TopicError::Empty)
        );
        p.properties.push_int(PropertyId::TopicAlias, 3).unwrap();
        assert_eq!(
            &round_trip_in(&Packet::Publish(p), V5)[..],
            b"\x30\x07\x00\x00\x03\x23\x00\x03x"
        );
        assert_eq!(
            decode_in(b"\x30\x07\x00\x00\x03\x23\x00\x00x", V5),
            Err(CodecError::InvalidPropertyValue { id: 0x23, value: 0 })
        );
        // The subscription identifiers a broker adds may repeat; nothing else may.
        assert!(decode_in(b"\x30\x08\x00\x01t\x04\x0B\x01\x0B\x02", V5).is_ok());
        assert_eq!(
            decode_in(b"\x30\x0A\x00\x01t\x06\x23\x00\x01\x23\x00\x02", V5),
            Err(CodecError::DuplicateProperty(0x23))
        );
    }

    #[test]
    fn exact_bytes_qos1_spec_example() {
        // Section 3.3.2.3: topic "a/b", packet id 10.
        let p = publish(QoS::AtLeastOnce, 10, "a/b", b"hi");
        assert_eq!(&round_trip(&Packet::Publish(p))[..], b"\x32\x09\x00\x03a/b\x00\x0Ahi");
    }

    #[test]
    fn exact_bytes_qos0_retain_and_qos2_dup() {
        let mut p = publish(QoS::AtMostOnce, 0, "t", b"x");
        p.retain = true;
        assert_eq!(&round_trip(&Packet::Publish(p))[..], b"\x31\x04\x00\x01tx");
        let mut p = publish(QoS::ExactlyOnce, 0x1234, "t", b"");
        p.dup = true;
        assert_eq!(&round_trip(&Packet::Publish(p))[..], b"\x3C\x05\x00\x01t\x12\x34");
    }

    #[test]
    fn round_trips_every_qos_dup_retain_combination() {
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            for dup in [false, true] {
                for retain in [false, true] {
                    if dup && qos == QoS::AtMostOnce {
                        continue;
                    }
                    let pkid = if qos == QoS::AtMostOnce { 0 } else { 65_535 };
                    round_trip(&Packet::Publish(Publish {
                        dup,
                        retain,
                        ..publish(qos, pkid, "$SYS/ünï/code", b"payload")
                    }));
                }
            }
        }
    }

    #[test]
    fn empty_and_64_kib_payloads_round_trip() {
        round_trip(&Packet::Publish(publish(QoS::AtLeastOnce, 1, "e", b"")));
        let big: Vec<u8> = (0..65_536u32).map(|i| i as u8).collect();
        round_trip(&Packet::Publish(publish(QoS::ExactlyOnce, 7, "big", &big)));
    }

    #[test]
    fn head_then_payload_is_the_whole_encoding() {
        for (qos, pkid, len) in [
            (QoS::AtMostOnce, 0, 0),
            (QoS::AtLeastOnce, 9, 200),
            (QoS::ExactlyOnce, 3, 70_000),
        ] {
            let p = publish(qos, pkid, "a/b", &vec![0x5A; len]);
            let mut whole = BytesMut::new();
            Packet::Publish(p.clone()).encode(&mut whole, V3).unwrap();
            let mut head = BytesMut::new();
            p.encode_head(&mut head, V3).unwrap();
            assert_eq!(head.len(), whole.len() - len);
            head.extend_from_slice(&p.payload);
            assert_eq!(head, whole);
            assert_eq!(
                crate::codec::pending_packet_len(&whole[..head.len() - len], V3),
                Some(whole.len())
            );
        }
        let bad = publish(QoS::AtMostOnce, 0, "a/+", b"x");
        let mut buf = BytesMut::new();
        assert!(bad.encode_head(&mut buf, V3).is_err());
        assert!(buf.is_empty(), "nothing appended on error");
        assert_eq!(
            crate::codec::pending_packet_len(&[0x30], V3),
            None,
            "remaining length not there yet"
        );
    }

    #[test]
    fn remaining_length_boundaries_round_trip() {
        // Topic "t" takes 3 bytes, so a QoS 0 publish with payload n has remaining length n + 3.
        for (remaining, length_bytes) in [
            (127, &[0x7F][..]),
            (128, &[0x80, 0x01]),
            (16_383, &[0xFF, 0x7F]),
            (16_384, &[0x80, 0x80, 0x01]),
            (2_097_151, &[0xFF, 0xFF, 0x7F]),
            (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
        ] {
            let p = publish(QoS::AtMostOnce, 0, "t", &vec![0xA5; remaining - 3]);
            let wire = round_trip(&Packet::Publish(p));
            assert_eq!(&wire[1..1 + length_bytes.len()], length_bytes, "{remaining}");
            assert_eq!(wire.len(), 1 + length_bytes.len() + remaining);
        }
    }

    #[test]
    fn topic_and_payload_are_slices_of_the_read_buffer() {
        let wire = frame(0x32, b"\x00\x03a/b\x00\x0Ahello");
        let mut buf = BytesMut::from(&wire[..]);
        let start = buf.as_ptr() as usize;
        let Some(Packet::Publish(p)) = decode(&mut buf, NO_LIMIT, V3).unwrap() else {
            panic!("not a publish");
        };
        assert_eq!(p.topic.as_bytes().as_ptr() as usize, start + 4);
        assert_eq!(p.payload.as_ptr() as usize, start + 9);
        assert_eq!(&p.payload[..], b"hello");
    }

    #[test]
    fn qos_3_flags_are_invalid_qos() {
        assert_eq!(
            decode_one(&frame(0x36, b"\x00\x01t\x00\x01")),
            Err(CodecError::InvalidQoS(3))
        );
    }

    #[test]
    fn dup_on_qos0_is_rejected_both_ways() {
        assert_eq!(decode_one(&frame(0x38, b"\x00\x01t")), Err(CodecError::DupOnQoS0));
        let p = Publish {
            dup: true,
            ..publish(QoS::AtMostOnce, 0, "t", b"")
        };
        assert_eq!(encode_err(&Packet::Publish(p)), CodecError::DupOnQoS0);
    }

    #[test]
    fn packet_id_0_on_qos1_and_qos2_is_rejected_both_ways() {
        for (first, qos) in [(0x32, QoS::AtLeastOnce), (0x34, QoS::ExactlyOnce)] {
            assert_eq!(
                decode_one(&frame(first, b"\x00\x01t\x00\x00data")),
                Err(CodecError::ZeroPacketId)
            );
            assert_eq!(
                encode_err(&Packet::Publish(publish(qos, 0, "t", b""))),
                CodecError::ZeroPacketId
            );
        }
    }

    #[test]
    fn packet_id_on_qos0_is_not_encoded() {
        assert_eq!(
            encode_err(&Packet::Publish(publish(QoS::AtMostOnce, 5, "t", b""))),
            CodecError::PacketIdOnQoS0(5)
        );
    }

    #[test]
    fn qos0_body_has_no_packet_id() {
        // The two bytes after the topic are payload, not an id, at QoS 0.
        let Packet::Publish(p) = decode_one(&frame(0x30, b"\x00\x01t\x00\x00")).unwrap() else {
            panic!("not a publish");
        };
        assert_eq!((p.pkid, &p.payload[..]), (0, &b"\x00\x00"[..]));
    }

    #[test]
    fn invalid_topic_names_are_rejected_both_ways() {
        for (topic, error) in [
            ("a/+", TopicError::WildcardInName),
            ("#", TopicError::WildcardInName),
            ("", TopicError::Empty),
        ] {
            let mut body = vec![0, topic.len() as u8];
            body.extend_from_slice(topic.as_bytes());
            assert_eq!(
                decode_one(&frame(0x30, &body)),
                Err(CodecError::Topic(error)),
                "{topic:?}"
            );
            assert_eq!(
                encode_err(&Packet::Publish(publish(QoS::AtMostOnce, 0, topic, b""))),
                CodecError::Topic(error)
            );
        }
    }

    #[test]
    fn ill_formed_topics_are_rejected() {
        for (topic, error) in [
            (&b"\xC0\xAF"[..], CodecError::InvalidUtf8),
            (b"\xED\xA0\x80", CodecError::InvalidUtf8),
            (b"a\xFF", CodecError::InvalidUtf8),
            (b"a\x00b", CodecError::NulInString),
        ] {
            let mut body = vec![0, topic.len() as u8];
            body.extend_from_slice(topic);
            assert_eq!(decode_one(&frame(0x30, &body)), Err(error), "{topic:x?}");
        }
    }

    #[test]
    fn body_shorter_than_topic_or_packet_id_is_truncated() {
        for (first, body) in [
            (0x30, &b""[..]),
            (0x30, b"\x00"),
            (0x30, b"\x00\x05abc"),
            (0x32, b"\x00\x01t"),
            (0x32, b"\x00\x01t\x00"),
        ] {
            assert_eq!(decode_one(&frame(first, body)), Err(CodecError::Truncated), "{body:x?}");
        }
    }

    #[test]
    fn remaining_length_over_the_maximum_is_not_encoded() {
        // A zeroed Vec is backed by untouched pages, and encode refuses before reading the payload.
        let payload = Bytes::from(vec![0u8; MAX_REMAINING_LENGTH - 2]);
        let p = Publish {
            payload,
            ..publish(QoS::AtMostOnce, 0, "t", b"")
        };
        assert_eq!(
            encode_err(&Packet::Publish(p)),
            CodecError::PayloadTooLarge(MAX_REMAINING_LENGTH + 1)
        );
    }

    #[test]
    fn check_size_follows_the_encoded_remaining_length() {
        let fits = MAX_REMAINING_LENGTH - 3;
        let props = Properties::new();
        assert_eq!(Publish::check_size("t", QoS::AtMostOnce, &props, fits, V3), Ok(()));
        assert_eq!(
            Publish::check_size("t", QoS::AtLeastOnce, &props, fits, V3),
            Err(CodecError::PayloadTooLarge(MAX_REMAINING_LENGTH + 2))
        );
        assert_eq!(
            Publish::check_size("t", QoS::AtMostOnce, &props, usize::MAX, V3),
            Err(CodecError::PayloadTooLarge(usize::MAX))
        );
    }
}
