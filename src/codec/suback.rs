//! SUBACK and UNSUBACK (sections 3.9, 3.11): a packet id, MQTT 5 properties, and one code per
//! topic filter of the request. A 3.1.1 UNSUBACK has no codes at all; a 3.1.1 SUBACK's codes
//! (granted QoS 0 to 2, 0x80 failure) are the MQTT 5 reason codes with the same values.

use bytes::{BufMut, Bytes, BytesMut};

use super::fields::{check_pkid, read_pkid};
use super::header::PacketType;
use super::properties::Holder;
use super::{CodecError, Encode, Properties, ReasonCode, Typed, Version};

/// An empty `codes` list is accepted both ways: whether the count matches the request is for the session
/// that remembers the request to judge, not the codec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    pub pkid: u16,
    pub codes: Vec<ReasonCode>,
    pub properties: Properties,
}

impl SubAck {
    pub fn new(pkid: u16, codes: Vec<ReasonCode>) -> SubAck {
        SubAck {
            pkid,
            codes,
            properties: Properties::new(),
        }
    }

    pub(crate) fn read(mut body: Bytes, packet_type: PacketType, version: Version) -> Result<SubAck, CodecError> {
        let pkid = read_pkid(&mut body)?;
        let properties = Properties::read_in(&mut body, Holder::Packet(packet_type), version)?;
        let codes = body
            .iter()
            .map(|&byte| check_code(ReasonCode(byte), packet_type, version))
            .collect::<Result<_, _>>()?;
        Ok(SubAck {
            pkid,
            codes,
            properties,
        })
    }
}

fn check_code(code: ReasonCode, packet_type: PacketType, version: Version) -> Result<ReasonCode, CodecError> {
    match (version, packet_type) {
        (Version::V5, _) => code.check(packet_type),
        (Version::V311, PacketType::SubAck) if matches!(code.0, 0..=2 | 0x80) => Ok(code),
        // The header has already held a 3.1.1 UNSUBACK to its packet id alone.
        _ => Err(CodecError::InvalidReasonCode {
            packet_type: packet_type as u8,
            code: code.0,
        }),
    }
}

impl Encode for Typed<'_, SubAck> {
    fn first_byte(&self) -> u8 {
        self.0.first_byte()
    }

    fn validate(&self, version: Version) -> Result<(), CodecError> {
        check_pkid(self.1.pkid)?;
        if version == Version::V311 && self.0 == PacketType::UnsubAck && !self.1.codes.is_empty() {
            return Err(CodecError::NotInMqtt311("UNSUBACK reason codes"));
        }
        for &code in &self.1.codes {
            check_code(code, self.0, version)?;
        }
        self.1.properties.validate_in(Holder::Packet(self.0), version)
    }

    fn remaining_len(&self, version: Version) -> usize {
        2 + self.1.properties.len_in(version) + self.1.codes.len()
    }

    fn write_body(&self, buf: &mut BytesMut, version: Version) {
        buf.put_u16(self.1.pkid);
        self.1.properties.write_in(buf, version);
        for code in &self.1.codes {
            buf.put_u8(code.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_util::{V5, decode_in, decode_one, encode_err, frame, round_trip, round_trip_in};
    use crate::codec::{Packet, PropertyId};

    #[test]
    fn exact_bytes_spec_example() {
        // Section 3.9.3 of 3.1.1: every return code once.
        let codes = [0x00, 0x01, 0x02, 0x80].map(ReasonCode).to_vec();
        let p = Packet::SubAck(SubAck::new(10, codes));
        assert_eq!(&round_trip(&p)[..], &[0x90, 0x06, 0x00, 0x0A, 0x00, 0x01, 0x02, 0x80]);
    }

    #[test]
    fn single_and_empty_code_lists_round_trip() {
        round_trip(&Packet::SubAck(SubAck::new(1, vec![ReasonCode::UNSPECIFIED_ERROR])));
        round_trip(&Packet::SubAck(SubAck::new(2, vec![])));
    }

    #[test]
    fn unknown_codes_are_rejected() {
        for code in [0x03, 0x7F, 0x81, 0x87, 0xFF] {
            assert_eq!(
                decode_one(&frame(0x90, &[0, 1, 0, code])),
                Err(CodecError::InvalidReasonCode { packet_type: 9, code })
            );
        }
        assert_eq!(
            decode_in(&frame(0x90, &[0, 1, 0, 0x11]), V5),
            Err(CodecError::InvalidReasonCode {
                packet_type: 9,
                code: 0x11
            })
        );
    }

    #[test]
    fn mqtt5_suback_and_unsuback_carry_properties_and_codes() {
        let mut ack = SubAck::new(3, vec![ReasonCode::GRANTED_QOS_1, ReasonCode::NOT_AUTHORIZED]);
        ack.properties.push_str(PropertyId::ReasonString, "acl").unwrap();
        assert_eq!(
            &round_trip_in(&Packet::SubAck(ack), V5)[..],
            b"\x90\x0B\x00\x03\x06\x1F\x00\x03acl\x01\x87"
        );
        let unsub = SubAck::new(4, vec![ReasonCode::SUCCESS, ReasonCode::NO_SUBSCRIPTION_EXISTED]);
        assert_eq!(
            &round_trip_in(&Packet::UnsubAck(unsub.clone()), V5)[..],
            b"\xB0\x05\x00\x04\x00\x00\x11"
        );
        assert_eq!(
            encode_err(&Packet::UnsubAck(unsub)),
            CodecError::NotInMqtt311("UNSUBACK reason codes")
        );
        assert_eq!(
            &round_trip(&Packet::UnsubAck(SubAck::new(4, vec![])))[..],
            b"\xB0\x02\x00\x04"
        );
    }

    #[test]
    fn packet_id_0_is_rejected_both_ways() {
        assert_eq!(decode_one(&frame(0x90, &[0, 0, 0])), Err(CodecError::ZeroPacketId));
        let p = Packet::SubAck(SubAck::new(0, vec![ReasonCode::UNSPECIFIED_ERROR]));
        assert_eq!(encode_err(&p), CodecError::ZeroPacketId);
    }

    #[test]
    fn missing_packet_id_is_truncated() {
        assert_eq!(decode_one(&frame(0x90, &[0])), Err(CodecError::Truncated));
    }
}
