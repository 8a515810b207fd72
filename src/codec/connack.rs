//! CONNACK (section 3.2).

use bytes::{BufMut, Bytes, BytesMut};

use super::fields::{expect_end, read_u8};
use super::header::PacketType;
use super::properties::Holder;
use super::{CodecError, Encode, Properties, ReasonCode, Version};

const SESSION_PRESENT: u8 = 0b0000_0001;

/// 3.1.1's return codes 0 to 5 (section 3.2.2.3), as the MQTT 5 reason codes that mean the same.
const MQTT311_CODES: [ReasonCode; 6] = [
    ReasonCode::SUCCESS,
    ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
    ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
    ReasonCode::SERVER_UNAVAILABLE,
    ReasonCode::BAD_USER_NAME_OR_PASSWORD,
    ReasonCode::NOT_AUTHORIZED,
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnAck {
    pub session_present: bool,
    /// In 3.1.1, the return code mapped to its MQTT 5 equivalent (1 is Unsupported Protocol
    /// Version, 5 is Not authorized, ...).
    pub code: ReasonCode,
    pub properties: Properties,
}

impl ConnAck {
    /// Acceptance without properties.
    pub fn accepted(session_present: bool) -> ConnAck {
        ConnAck {
            session_present,
            code: ReasonCode::SUCCESS,
            properties: Properties::new(),
        }
    }

    pub(crate) fn read(mut body: Bytes, version: Version) -> Result<ConnAck, CodecError> {
        let flags = read_u8(&mut body)?;
        if flags & !SESSION_PRESENT != 0 {
            return Err(CodecError::InvalidConnAckFlags(flags));
        }
        let byte = read_u8(&mut body)?;
        let code = match version {
            Version::V311 => *MQTT311_CODES
                .get(usize::from(byte))
                .ok_or(CodecError::InvalidReasonCode {
                    packet_type: PacketType::ConnAck as u8,
                    code: byte,
                })?,
            Version::V5 => ReasonCode(byte).check(PacketType::ConnAck)?,
        };
        let connack = ConnAck {
            session_present: flags & SESSION_PRESENT != 0,
            code,
            properties: Properties::read_in(&mut body, Holder::Packet(PacketType::ConnAck), version)?,
        };
        connack.check_session_present()?;
        expect_end(&body)?;
        Ok(connack)
    }

    fn flags(&self) -> u8 {
        if self.session_present { SESSION_PRESENT } else { 0 }
    }

    /// A refused connection has no session (MQTT-3.2.2-4 in 3.1.1, MQTT-3.2.2-6 in 5).
    fn check_session_present(&self) -> Result<(), CodecError> {
        if self.session_present && self.code != ReasonCode::SUCCESS {
            return Err(CodecError::InvalidConnAckFlags(self.flags()));
        }
        Ok(())
    }

    fn code_byte(&self, version: Version) -> Option<u8> {
        match version {
            Version::V311 => MQTT311_CODES.iter().position(|&c| c == self.code).map(|i| i as u8),
            Version::V5 => Some(self.code.0),
        }
    }
}

impl Encode for ConnAck {
    fn first_byte(&self) -> u8 {
        PacketType::ConnAck.first_byte()
    }

    fn validate(&self, version: Version) -> Result<(), CodecError> {
        self.check_session_present()?;
        if version == Version::V5 {
            self.code.check(PacketType::ConnAck)?;
        } else if self.code_byte(version).is_none() {
            return Err(CodecError::NotInMqtt311("this CONNACK reason code"));
        }
        self.properties
            .validate_in(Holder::Packet(PacketType::ConnAck), version)
    }

    fn remaining_len(&self, version: Version) -> usize {
        2 + self.properties.len_in(version)
    }

    fn write_body(&self, buf: &mut BytesMut, version: Version) {
        buf.put_u8(self.flags());
        buf.put_u8(self.code_byte(version).expect("validated"));
        self.properties.write_in(buf, version);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_util::{
        V5, decode_in, decode_one, encode_err, encode_err_in, frame, round_trip, round_trip_in,
    };
    use crate::codec::{Packet, PropertyId};

    fn connack(code: ReasonCode) -> Packet {
        Packet::ConnAck(ConnAck {
            code,
            ..ConnAck::accepted(false)
        })
    }

    #[test]
    fn every_mqtt311_code_round_trips_with_its_byte() {
        for (i, code) in MQTT311_CODES.into_iter().enumerate() {
            assert_eq!(&round_trip(&connack(code))[..], &[0x20, 0x02, 0x00, i as u8]);
        }
        let wire = round_trip(&Packet::ConnAck(ConnAck::accepted(true)));
        assert_eq!(&wire[..], &[0x20, 0x02, 0x01, 0x00]);
    }

    #[test]
    fn unknown_return_code_is_rejected() {
        assert_eq!(
            decode_one(&frame(0x20, &[0, 6])),
            Err(CodecError::InvalidReasonCode {
                packet_type: 2,
                code: 6
            })
        );
        assert_eq!(
            decode_in(&frame(0x20, &[0, 0x05, 0]), V5),
            Err(CodecError::InvalidReasonCode {
                packet_type: 2,
                code: 5
            })
        );
        assert_eq!(
            encode_err(&connack(ReasonCode::BANNED)),
            CodecError::NotInMqtt311("this CONNACK reason code")
        );
    }

    #[test]
    fn mqtt5_carries_reason_code_and_properties() {
        let mut ack = ConnAck::accepted(true);
        ack.properties.push_int(PropertyId::ReceiveMaximum, 20).unwrap();
        ack.properties.push_int(PropertyId::TopicAliasMaximum, 10).unwrap();
        ack.properties
            .push_str(PropertyId::AssignedClientIdentifier, "auto-1")
            .unwrap();
        let wire = round_trip_in(&Packet::ConnAck(ack.clone()), V5);
        assert_eq!(
            &wire[..],
            b"\x20\x12\x01\x00\x0F\x21\x00\x14\x22\x00\x0A\x12\x00\x06auto-1"
        );
        assert_eq!(
            &round_trip_in(&connack(ReasonCode::SERVER_MOVED), V5)[..],
            b"\x20\x03\x00\x9D\x00"
        );
        assert_eq!(
            encode_err(&Packet::ConnAck(ack)),
            CodecError::NotInMqtt311("properties")
        );
        let mut bad = ConnAck::accepted(false);
        bad.properties.push_int(PropertyId::TopicAlias, 1).unwrap();
        assert_eq!(
            encode_err_in(&Packet::ConnAck(bad), V5),
            CodecError::PropertyNotAllowed {
                id: 0x23,
                packet_type: 2
            }
        );
    }

    #[test]
    fn reserved_ack_flags_are_rejected() {
        for flags in [0x02, 0x80, 0xFF] {
            assert_eq!(
                decode_one(&frame(0x20, &[flags, 0])),
                Err(CodecError::InvalidConnAckFlags(flags))
            );
        }
    }

    #[test]
    fn session_present_with_a_refusal_is_rejected_both_ways() {
        assert_eq!(
            decode_one(&frame(0x20, &[1, 5])),
            Err(CodecError::InvalidConnAckFlags(1))
        );
        let refused = ConnAck {
            session_present: true,
            ..ConnAck::accepted(false)
        };
        let refused = ConnAck {
            code: ReasonCode::NOT_AUTHORIZED,
            ..refused
        };
        assert_eq!(
            encode_err(&Packet::ConnAck(refused)),
            CodecError::InvalidConnAckFlags(1)
        );
    }

    #[test]
    fn wrong_remaining_length_is_rejected_in_mqtt311() {
        for body in [&[0][..], &[], &[0, 0, 0]] {
            assert_eq!(
                decode_one(&frame(0x20, body)),
                Err(CodecError::InvalidRemainingLength {
                    packet_type: 2,
                    remaining_len: body.len(),
                    expected: 2
                })
            );
        }
        // MQTT 5 has a property length after the code, even when there are none.
        assert_eq!(decode_in(&frame(0x20, &[0, 0]), V5), Err(CodecError::Truncated));
    }
}
