//! SUBSCRIBE (section 3.8).

use bytes::{BufMut, Bytes, BytesMut};

use super::fields::{check_pkid, field_len, read_pkid, read_str, read_u8, write_field};
use super::header::PacketType;
use super::properties::Holder;
use super::{CodecError, Encode, MqttStr, Properties, QoS, Version};
use crate::topic::validate_topic_filter;

// Subscription options bits (section 3.8.3.1 of MQTT 5); 3.1.1 has only the QoS and reserves the
// rest (MQTT-3.8.3-4 of 3.1.1).
const QOS_MASK: u8 = 0b0000_0011;
const NO_LOCAL: u8 = 0b0000_0100;
const RETAIN_AS_PUBLISHED: u8 = 0b0000_1000;
const RETAIN_HANDLING_SHIFT: u8 = 4;
const MQTT5_RESERVED: u8 = 0b1100_0000;

/// When the broker sends retained messages for a new subscription (MQTT 5).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RetainHandling {
    #[default]
    SendAtSubscribe = 0,
    /// Only if the subscription did not exist yet.
    SendIfNew = 1,
    DontSend = 2,
}

/// What a SUBSCRIBE asks for one filter. Only `qos` exists in 3.1.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubscribeOptions {
    pub qos: QoS,
    /// Do not send this client the messages it publishes itself.
    pub no_local: bool,
    /// Keep the RETAIN flag messages were published with, rather than clearing it.
    pub retain_as_published: bool,
    pub retain_handling: RetainHandling,
}

impl From<QoS> for SubscribeOptions {
    fn from(qos: QoS) -> Self {
        SubscribeOptions {
            qos,
            no_local: false,
            retain_as_published: false,
            retain_handling: RetainHandling::SendAtSubscribe,
        }
    }
}

impl SubscribeOptions {
    fn to_u8(self) -> u8 {
        let mut byte = self.qos as u8 | (self.retain_handling as u8) << RETAIN_HANDLING_SHIFT;
        if self.no_local {
            byte |= NO_LOCAL;
        }
        if self.retain_as_published {
            byte |= RETAIN_AS_PUBLISHED;
        }
        byte
    }

    fn from_u8(byte: u8, version: Version) -> Result<SubscribeOptions, CodecError> {
        let reserved = match version {
            Version::V311 => !QOS_MASK,
            Version::V5 => MQTT5_RESERVED,
        };
        if byte & reserved != 0 {
            return Err(CodecError::InvalidSubscribeOptions(byte));
        }
        let retain_handling = match byte >> RETAIN_HANDLING_SHIFT & 0b11 {
            0 => RetainHandling::SendAtSubscribe,
            1 => RetainHandling::SendIfNew,
            2 => RetainHandling::DontSend,
            _ => return Err(CodecError::InvalidSubscribeOptions(byte)),
        };
        Ok(SubscribeOptions {
            qos: QoS::from_u8(byte & QOS_MASK)?,
            no_local: byte & NO_LOCAL != 0,
            retain_as_published: byte & RETAIN_AS_PUBLISHED != 0,
            retain_handling,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    pub pkid: u16,
    pub filters: Vec<(MqttStr, SubscribeOptions)>,
    pub properties: Properties,
}

impl Subscribe {
    pub(crate) fn read(mut body: Bytes, version: Version) -> Result<Subscribe, CodecError> {
        let pkid = read_pkid(&mut body)?;
        let properties = Properties::read_in(&mut body, Holder::Packet(PacketType::Subscribe), version)?;
        let mut filters = Vec::new();
        while !body.is_empty() {
            let filter = read_str(&mut body)?;
            validate_topic_filter(filter.as_str())?;
            let options = SubscribeOptions::from_u8(read_u8(&mut body)?, version)?;
            filters.push((filter, options));
        }
        if filters.is_empty() {
            return Err(CodecError::NoFilters);
        }
        Ok(Subscribe {
            pkid,
            filters,
            properties,
        })
    }
}

impl Encode for Subscribe {
    fn first_byte(&self) -> u8 {
        PacketType::Subscribe.first_byte()
    }

    fn validate(&self, version: Version) -> Result<(), CodecError> {
        check_pkid(self.pkid)?;
        if self.filters.is_empty() {
            return Err(CodecError::NoFilters);
        }
        for (filter, options) in &self.filters {
            validate_topic_filter(filter.as_str())?;
            if version == Version::V311 && *options != SubscribeOptions::from(options.qos) {
                return Err(CodecError::NotInMqtt311("subscription options"));
            }
        }
        self.properties
            .validate_in(Holder::Packet(PacketType::Subscribe), version)
    }

    fn remaining_len(&self, version: Version) -> usize {
        2 + self.properties.len_in(version)
            + self
                .filters
                .iter()
                .map(|(filter, _)| field_len(filter.as_bytes()) + 1)
                .sum::<usize>()
    }

    fn write_body(&self, buf: &mut BytesMut, version: Version) {
        buf.put_u16(self.pkid);
        self.properties.write_in(buf, version);
        for (filter, options) in &self.filters {
            write_field(buf, filter.as_bytes());
            buf.put_u8(options.to_u8());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Packet;
    use crate::codec::PropertyId;
    use crate::codec::test_util::{V5, decode_in, decode_one, encode_err, frame, round_trip, round_trip_in};
    use crate::topic::TopicError;

    fn subscribe(pkid: u16, filters: &[(&str, QoS)]) -> Packet {
        Packet::Subscribe(Subscribe {
            pkid,
            filters: filters
                .iter()
                .map(|&(f, q)| (MqttStr::new(f).unwrap(), q.into()))
                .collect(),
            properties: Properties::new(),
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
    fn mqtt5_options_and_properties_round_trip() {
        let options = SubscribeOptions {
            qos: QoS::AtLeastOnce,
            no_local: true,
            retain_as_published: true,
            retain_handling: RetainHandling::DontSend,
        };
        let mut properties = Properties::new();
        properties.push_int(PropertyId::SubscriptionIdentifier, 300).unwrap();
        let p = Packet::Subscribe(Subscribe {
            pkid: 2,
            filters: vec![(MqttStr::new("a/+").unwrap(), options)],
            properties,
        });
        assert_eq!(
            &round_trip_in(&p, V5)[..],
            b"\x82\x0C\x00\x02\x03\x0B\xAC\x02\x00\x03a/+\x2D"
        );
        assert_eq!(encode_err(&p), CodecError::NotInMqtt311("subscription options"));
        for options in [0x40, 0x80, 0x30] {
            assert_eq!(
                decode_in(&frame(0x82, &[0, 1, 0, 0, 1, b'a', options]), V5),
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
