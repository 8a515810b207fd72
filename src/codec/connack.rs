//! CONNACK (section 3.2).

use bytes::{BufMut, Bytes, BytesMut};

use super::fields::{expect_end, read_u8};
use super::header::PacketType;
use super::{CodecError, Encode};

const SESSION_PRESENT: u8 = 0b0000_0001;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ConnectReturnCode {
    Accepted = 0,
    UnacceptableProtocolVersion = 1,
    IdentifierRejected = 2,
    ServerUnavailable = 3,
    BadUserNameOrPassword = 4,
    NotAuthorized = 5,
}

impl ConnectReturnCode {
    pub fn from_u8(v: u8) -> Result<ConnectReturnCode, CodecError> {
        use ConnectReturnCode::*;
        Ok(match v {
            0 => Accepted,
            1 => UnacceptableProtocolVersion,
            2 => IdentifierRejected,
            3 => ServerUnavailable,
            4 => BadUserNameOrPassword,
            5 => NotAuthorized,
            _ => return Err(CodecError::InvalidConnectReturnCode(v)),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnAck {
    pub session_present: bool,
    pub code: ConnectReturnCode,
}

impl ConnAck {
    pub(crate) fn read(mut body: Bytes) -> Result<ConnAck, CodecError> {
        let flags = read_u8(&mut body)?;
        if flags & !SESSION_PRESENT != 0 {
            return Err(CodecError::InvalidConnAckFlags(flags));
        }
        let connack = ConnAck {
            session_present: flags & SESSION_PRESENT != 0,
            code: ConnectReturnCode::from_u8(read_u8(&mut body)?)?,
        };
        connack.validate()?;
        expect_end(&body)?;
        Ok(connack)
    }

    fn flags(&self) -> u8 {
        if self.session_present { SESSION_PRESENT } else { 0 }
    }
}

impl Encode for ConnAck {
    fn first_byte(&self) -> u8 {
        PacketType::ConnAck.first_byte()
    }

    /// A refused connection has no session (MQTT-3.2.2-4).
    fn validate(&self) -> Result<(), CodecError> {
        if self.session_present && self.code != ConnectReturnCode::Accepted {
            return Err(CodecError::InvalidConnAckFlags(self.flags()));
        }
        Ok(())
    }

    fn remaining_len(&self) -> usize {
        2
    }

    fn write_body(&self, buf: &mut BytesMut) {
        buf.put_u8(self.flags());
        buf.put_u8(self.code as u8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Packet;
    use crate::codec::test_util::{decode_one, encode_err, frame, round_trip};

    const CODES: [ConnectReturnCode; 6] = [
        ConnectReturnCode::Accepted,
        ConnectReturnCode::UnacceptableProtocolVersion,
        ConnectReturnCode::IdentifierRejected,
        ConnectReturnCode::ServerUnavailable,
        ConnectReturnCode::BadUserNameOrPassword,
        ConnectReturnCode::NotAuthorized,
    ];

    #[test]
    fn every_code_round_trips_with_its_byte() {
        for (i, code) in CODES.into_iter().enumerate() {
            let wire = round_trip(&Packet::ConnAck(ConnAck {
                session_present: false,
                code,
            }));
            assert_eq!(&wire[..], &[0x20, 0x02, 0x00, i as u8]);
            assert_eq!(ConnectReturnCode::from_u8(i as u8), Ok(code));
        }
        let wire = round_trip(&Packet::ConnAck(ConnAck {
            session_present: true,
            code: ConnectReturnCode::Accepted,
        }));
        assert_eq!(&wire[..], &[0x20, 0x02, 0x01, 0x00]);
    }

    #[test]
    fn unknown_return_code_is_rejected() {
        assert_eq!(
            decode_one(&frame(0x20, &[0, 6])),
            Err(CodecError::InvalidConnectReturnCode(6))
        );
        assert_eq!(
            ConnectReturnCode::from_u8(0x80),
            Err(CodecError::InvalidConnectReturnCode(0x80))
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
            code: ConnectReturnCode::NotAuthorized,
        };
        assert_eq!(
            encode_err(&Packet::ConnAck(refused)),
            CodecError::InvalidConnAckFlags(1)
        );
    }

    #[test]
    fn wrong_remaining_length_is_rejected() {
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
    }
}
