//! UNSUBSCRIBE (section 3.10).

use bytes::{BufMut, Bytes, BytesMut};

use super::fields::{check_pkid, field_len, read_pkid, read_str, write_field};
use super::header::PacketType;
use super::{CodecError, Encode, MqttStr};
use crate::topic::validate_topic_filter;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    pub pkid: u16,
    pub filters: Vec<MqttStr>,
}

impl Unsubscribe {
    pub(crate) fn read(mut body: Bytes) -> Result<Unsubscribe, CodecError> {
        let pkid = read_pkid(&mut body)?;
        let mut filters = Vec::new();
        while !body.is_empty() {
            let filter = read_str(&mut body)?;
            validate_topic_filter(filter.as_str())?;
            filters.push(filter);
        }
        if filters.is_empty() {
            return Err(CodecError::NoFilters);
        }
        Ok(Unsubscribe { pkid, filters })
    }
}

impl Encode for Unsubscribe {
    fn first_byte(&self) -> u8 {
        PacketType::Unsubscribe.first_byte()
    }

    fn validate(&self) -> Result<(), CodecError> {
        check_pkid(self.pkid)?;
        if self.filters.is_empty() {
            return Err(CodecError::NoFilters);
        }
        for filter in &self.filters {
            validate_topic_filter(filter.as_str())?;
        }
        Ok(())
    }

    fn remaining_len(&self) -> usize {
        2 + self
            .filters
            .iter()
            .map(|filter| field_len(filter.as_bytes()))
            .sum::<usize>()
    }

    fn write_body(&self, buf: &mut BytesMut) {
        buf.put_u16(self.pkid);
        for filter in &self.filters {
            write_field(buf, filter.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Packet;
    use crate::codec::test_util::{decode_one, encode_err, frame, round_trip};
    use crate::topic::TopicError;

    fn unsubscribe(pkid: u16, filters: &[&str]) -> Packet {
        Packet::Unsubscribe(Unsubscribe {
            pkid,
            filters: filters.iter().map(|f| MqttStr::new(f).unwrap()).collect(),
        })
    }

    #[test]
    fn exact_bytes_spec_example() {
        // Section 3.10.3: packet id 10, "a/b" and "c/d".
        assert_eq!(
            &round_trip(&unsubscribe(10, &["a/b", "c/d"]))[..],
            b"\xA2\x0C\x00\x0A\x00\x03a/b\x00\x03c/d"
        );
    }

    #[test]
    fn single_and_many_filters_round_trip() {
        round_trip(&unsubscribe(1, &["#"]));
        round_trip(&unsubscribe(65_535, &["a/+/c", "/", "$SYS/#", "ünï"]));
    }

    #[test]
    fn no_filters_is_rejected_both_ways() {
        assert_eq!(decode_one(&frame(0xA2, &[0, 1])), Err(CodecError::NoFilters));
        assert_eq!(encode_err(&unsubscribe(1, &[])), CodecError::NoFilters);
    }

    #[test]
    fn packet_id_0_is_rejected_both_ways() {
        assert_eq!(
            decode_one(&frame(0xA2, b"\x00\x00\x00\x01a")),
            Err(CodecError::ZeroPacketId)
        );
        assert_eq!(encode_err(&unsubscribe(0, &["a"])), CodecError::ZeroPacketId);
    }

    #[test]
    fn invalid_filters_are_rejected_both_ways() {
        for (filter, error) in [
            ("a/#/b", TopicError::HashNotLast),
            ("a+", TopicError::WildcardNotWholeLevel),
            ("#a", TopicError::WildcardNotWholeLevel),
        ] {
            let mut body = vec![0, 1, 0, filter.len() as u8];
            body.extend_from_slice(filter.as_bytes());
            assert_eq!(
                decode_one(&frame(0xA2, &body)),
                Err(CodecError::Topic(error)),
                "{filter:?}"
            );
            assert_eq!(encode_err(&unsubscribe(1, &["ok", filter])), CodecError::Topic(error));
        }
    }

    #[test]
    fn partial_entries_are_truncated() {
        for body in [&b"\x00"[..], b"\x00\x01\x00", b"\x00\x01\x00\x02a"] {
            assert_eq!(decode_one(&frame(0xA2, body)), Err(CodecError::Truncated), "{body:x?}");
        }
    }
}
