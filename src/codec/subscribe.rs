//! SUBSCRIBE (section 3.8).

use bytes::{BufMut, Bytes, BytesMut};

use super::fields::{check_pkid, field_len, read_pkid, read_str, read_u8, write_field};
use super::header::PacketType;
use super::{CodecError, Encode, MqttStr, QoS};
use crate::topic::validate_topic_filter;

/// Bits of the requested-QoS byte that 3.1.1 reserves (MQTT-3.8.3-4); MQTT 5 gives them meaning.
const RESERVED_OPTIONS: u8 = 0b1111_1100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    pub pkid: u16,
    pub filters: Vec<(MqttStr, QoS)>,
}

impl Subscribe {
    pub(crate) fn read(mut body: Bytes) -> Result<Subscribe, CodecError> {
        let pkid = read_pkid(&mut body)?;
        let mut filters = Vec::new();
        while !body.is_empty() {
            let filter = read_str(&mut body)?;
            validate_topic_filter(filter.as_str())?;
            let options = read_u8(&mut body)?;
            if options & RESERVED_OPTIONS != 0 {
                return Err(CodecError::InvalidSubscribeOptions(options));
            }
            filters.push((filter, QoS::from_u8(options)?));
        }
        if filters.is_empty() {
            return Err(CodecError::NoFilters);
        }
        Ok(Subscribe { pkid, filters })
    }
}

impl Encode for Subscribe {
    fn first_byte(&self) -> u8 {
        PacketType::Subscribe.first_byte()
    }

    fn validate(&self) -> Result<(), CodecError> {
        check_pkid(self.pkid)?;
        if self.filters.is_empty() {
            return Err(CodecError::NoFilters);
        }
        for (filter, _) in &self.filters {
            validate_topic_filter(filter.as_str())?;
        }
        Ok(())
    }

    fn remaining_len(&self) -> usize {
        2 + self
            .filters
            .iter()
            .map(|(filter, _)| field_len(filter.as_bytes()) + 1)
            .sum::<usize>()
    }

    fn write_body(&self, buf: &mut BytesMut) {
        buf.put_u16(self.pkid);
        for (filter, qos) in &self.filters {
            write_field(buf, filter.as_bytes());
            buf.put_u8(*qos as u8);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Packet;
    use crate::codec::test_util::{decode_one, encode_err, frame, round_trip};
    use crate::topic::TopicError;

    fn subscribe(pkid: u16, filters: &[(&str, QoS)]) -> Packet {
        Packet::Subscribe(Subscribe {
            pkid,
            filters: filters.iter().map(|&(f, q)| (MqttStr::new(f).unwrap(), q)).collect(),
        })
    }

    #[test]
    fn exact_bytes_spec_example() {
        // Section 3.8.3: packet id 10, "a/b" at QoS 1, "c/d" at QoS 2.
        let p = subscribe(10, &[("a/b", QoS::AtLeastOnce), ("c/d", QoS::ExactlyOnce)]);
        assert_eq!(&round_trip(&p)[..], b"\x82\x0E\x00\x0A\x00\x03a/b\x01\x00\x03c/d\x02");
    }

    #[test]
    fn single_and_many_filters_round_trip() {
        round_trip(&subscribe(1, &[("#", QoS::AtMostOnce)]));
        round_trip(&subscribe(
            65_535,
            &[
                ("sport/tennis/+", QoS::AtMostOnce),
                ("/", QoS::AtLeastOnce),
                ("a//b", QoS::ExactlyOnce),
                ("+/+", QoS::AtLeastOnce),
                ("$SYS/#", QoS::AtMostOnce),
            ],
        ));
    }

    #[test]
    fn no_filters_is_rejected_both_ways() {
        assert_eq!(decode_one(&frame(0x82, &[0, 1])), Err(CodecError::NoFilters));
        assert_eq!(encode_err(&subscribe(1, &[])), CodecError::NoFilters);
    }

    #[test]
    fn packet_id_0_is_rejected_both_ways() {
        assert_eq!(
            decode_one(&frame(0x82, b"\x00\x00\x00\x01a\x00")),
            Err(CodecError::ZeroPacketId)
        );
        assert_eq!(
            encode_err(&subscribe(0, &[("a", QoS::AtMostOnce)])),
            CodecError::ZeroPacketId
        );
    }

    #[test]
    fn invalid_filters_are_rejected_both_ways() {
        for (filter, error) in [
            ("a/#/b", TopicError::HashNotLast),
            ("a+", TopicError::WildcardNotWholeLevel),
            ("#a", TopicError::WildcardNotWholeLevel),
            ("", TopicError::Empty),
        ] {
            let mut body = vec![0, 1, 0, filter.len() as u8];
            body.extend_from_slice(filter.as_bytes());
            body.push(0);
            assert_eq!(
                decode_one(&frame(0x82, &body)),
                Err(CodecError::Topic(error)),
                "{filter:?}"
            );
            // The bad filter second, to show every filter is checked.
            let p = subscribe(1, &[("ok", QoS::AtMostOnce), (filter, QoS::AtMostOnce)]);
            assert_eq!(encode_err(&p), CodecError::Topic(error), "{filter:?}");
        }
    }

    #[test]
    fn reserved_option_bits_are_rejected() {
        for options in [0x04, 0x80, 0xFC, 0x05] {
            assert_eq!(
                decode_one(&frame(0x82, &[0, 1, 0, 1, b'a', options])),
                Err(CodecError::InvalidSubscribeOptions(options))
            );
        }
    }

    #[test]
    fn requested_qos_3_is_invalid_qos() {
        assert_eq!(
            decode_one(&frame(0x82, b"\x00\x01\x00\x01a\x03")),
            Err(CodecError::InvalidQoS(3))
        );
    }

    #[test]
    fn partial_entries_are_truncated() {
        for body in [
            &b"\x00"[..],
            b"\x00\x01\x00",
            b"\x00\x01\x00\x02a",
            b"\x00\x01\x00\x01a",
            b"\x00\x01\x00\x01a\x00\x00\x01b",
        ] {
            assert_eq!(decode_one(&frame(0x82, body)), Err(CodecError::Truncated), "{body:x?}");
        }
    }
}
