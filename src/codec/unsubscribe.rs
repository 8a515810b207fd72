//! UNSUBSCRIBE (section 3.10).

use bytes::{BufMut, Bytes, BytesMut};

use super::fields::{check_pkid, field_len, read_pkid, read_str, write_field};
use super::header::PacketType;
use super::properties::Holder;
use super::{CodecError, Encode, MqttStr, Properties, Version};
use crate::topic::validate_topic_filter;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    pub pkid: u16,
    pub filters: Vec<MqttStr>,
    pub properties: Properties,
}

impl Unsubscribe {
    pub(crate) fn read(mut body: Bytes, version: Version) -> Result<Unsubscribe, CodecError> {
        let pkid = read_pkid(&mut body)?;
        let properties = Properties::read_in(&mut body, Holder::Packet(PacketType::Unsubscribe), version)?;
        let mut filters = Vec::new();
        while !body.is_empty() {
            let filter = read_str(&mut body)?;
            validate_topic_filter(filter.as_str())?;
            filters.push(filter);
        }
        if filters.is_empty() {
            return Err(CodecError::NoFilters);
        }
        Ok(Unsubscribe {
            pkid,
            filters,
            properties,
        })
    }
}

impl Encode for Unsubscribe {
    fn first_byte(&self) -> u8 {
        PacketType::Unsubscribe.first_byte()
    }

    fn validate(&self, version: Version) -> Result<(), CodecError> {
        check_pkid(self.pkid)?;
        if self.filters.is_empty() {
            return Err(CodecError::NoFilters);
        }
        for filter in &self.filters {
            validate_topic_filter(filter.as_str())?;
        }
        self.properties
            .validate_in(Holder::Packet(PacketType::Unsubscribe), version)
    }

    fn remaining_len(&self, version: Version) -> usize {
        2 + self.properties.len_in(version)
            + self
                .filters
                .iter()
                .map(|filter| field_len(filter.as_bytes()))
                .sum::<usize>()
    }

    fn write_body(&self, buf: &mut BytesMut, version: Version) {
        buf.put_u16(self.pkid);
        self.properties.write_in(buf, version);
        for filter in &self.filters {
            write_field(buf, filter.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Packet;
    use crate::codec::test_util::{V5, decode_one, encode_err, frame, round_trip, round_trip_in};
    use crate::topic::TopicError;

    fn unsubscribe(pkid: u16, filters: &[&str]) -> Packet {
        Packet::Unsubscribe(Unsubscribe {
            pkid,
            filters: filters.iter().map(|f| MqttStr::new(f).unwrap()).collect(),
            properties: Properties::new(),
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
    fn mqtt5_has_a_property_list_before_the_filters() {
        let mut p = Unsubscribe {
            pkid: 10,
            filters: vec![MqttStr::new("a").unwrap()],
            properties: Properties::new(),
        };
        assert_eq!(
            &round_trip_in(&Packet::Unsubscribe(p.clone()), V5)[..],
            b"\xA2\x06\x00\x0A\x00\x00\x01a"
        );
        p.properties.push_user("k", "v").unwrap();
        round_trip_in(&Packet::Unsubscribe(p), V5);
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
