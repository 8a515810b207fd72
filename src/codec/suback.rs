//! SUBACK (section 3.9).

use bytes::{BufMut, Bytes, BytesMut};

use super::fields::{check_pkid, read_pkid};
use super::header::PacketType;
use super::{CodecError, Encode, QoS};

const FAILURE: u8 = 0x80;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubAckCode {
    Granted(QoS),
    Failure,
}

impl SubAckCode {
    pub fn from_u8(v: u8) -> Result<SubAckCode, CodecError> {
        match v {
            FAILURE => Ok(SubAckCode::Failure),
            0..=2 => QoS::from_u8(v).map(SubAckCode::Granted),
            _ => Err(CodecError::InvalidSubAckCode(v)),
        }
    }

    pub fn to_u8(self) -> u8 {
        match self {
            SubAckCode::Granted(qos) => qos as u8,
            SubAckCode::Failure => FAILURE,
        }
    }
}

/// An empty `codes` list is accepted both ways: whether the count matches the SUBSCRIBE is for the session
/// that remembers the SUBSCRIBE to judge, not the codec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    pub pkid: u16,
    pub codes: Vec<SubAckCode>,
}

impl SubAck {
    pub(crate) fn read(mut body: Bytes) -> Result<SubAck, CodecError> {
        let pkid = read_pkid(&mut body)?;
        let codes = body
            .iter()
            .map(|&byte| SubAckCode::from_u8(byte))
            .collect::<Result<_, _>>()?;
        Ok(SubAck { pkid, codes })
    }
}

impl Encode for SubAck {
    fn first_byte(&self) -> u8 {
        PacketType::SubAck.first_byte()
    }

    fn validate(&self) -> Result<(), CodecError> {
        check_pkid(self.pkid)
    }

    fn remaining_len(&self) -> usize {
        2 + self.codes.len()
    }

    fn write_body(&self, buf: &mut BytesMut) {
        buf.put_u16(self.pkid);
        for code in &self.codes {
            buf.put_u8(code.to_u8());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Packet;
    use crate::codec::test_util::{decode_one, encode_err, frame, round_trip};

    #[test]
    fn exact_bytes_spec_example() {
        // Section 3.9.3: every return code once.
        let p = Packet::SubAck(SubAck {
            pkid: 10,
            codes: vec![
                SubAckCode::Granted(QoS::AtMostOnce),
                SubAckCode::Granted(QoS::AtLeastOnce),
                SubAckCode::Granted(QoS::ExactlyOnce),
                SubAckCode::Failure,
            ],
        });
        assert_eq!(&round_trip(&p)[..], &[0x90, 0x06, 0x00, 0x0A, 0x00, 0x01, 0x02, 0x80]);
    }

    #[test]
    fn single_and_empty_code_lists_round_trip() {
        round_trip(&Packet::SubAck(SubAck {
            pkid: 1,
            codes: vec![SubAckCode::Failure],
        }));
        round_trip(&Packet::SubAck(SubAck { pkid: 2, codes: vec![] }));
    }

    #[test]
    fn unknown_codes_are_rejected() {
        for code in [0x03, 0x7F, 0x81, 0xFF] {
            assert_eq!(
                decode_one(&frame(0x90, &[0, 1, 0, code])),
                Err(CodecError::InvalidSubAckCode(code))
            );
        }
    }

    #[test]
    fn packet_id_0_is_rejected_both_ways() {
        assert_eq!(decode_one(&frame(0x90, &[0, 0, 0])), Err(CodecError::ZeroPacketId));
        let p = Packet::SubAck(SubAck {
            pkid: 0,
            codes: vec![SubAckCode::Failure],
        });
        assert_eq!(encode_err(&p), CodecError::ZeroPacketId);
    }

    #[test]
    fn missing_packet_id_is_truncated() {
        assert_eq!(decode_one(&frame(0x90, &[0])), Err(CodecError::Truncated));
    }
}
