//! DISCONNECT and AUTH (sections 3.14, 3.15): in MQTT 5 a reason code and properties, both left
//! out when they say "success, nothing more". A 3.1.1 DISCONNECT is a bare fixed header, and
//! 3.1.1 has no AUTH.

use bytes::{Bytes, BytesMut};

use super::ack::{
    read_reason_and_properties, reason_and_properties_len, validate_reason_and_properties, write_reason_and_properties,
};
use super::fields::expect_end;
use super::header::PacketType;
use super::{CodecError, Encode, Properties, ReasonCode, Typed, Version};

/// Sent by either side; from a server it says why the connection ends, and may name another server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Disconnect {
    pub reason: ReasonCode,
    pub properties: Properties,
}

/// Enhanced authentication (section 4.12), MQTT 5 only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Auth {
    pub reason: ReasonCode,
    pub properties: Properties,
}

fn read(mut body: Bytes, packet_type: PacketType, version: Version) -> Result<(ReasonCode, Properties), CodecError> {
    let tail = read_reason_and_properties(&mut body, packet_type, version)?;
    expect_end(&body)?;
    Ok(tail)
}

impl Disconnect {
    pub(crate) fn read(body: Bytes, packet_type: PacketType, version: Version) -> Result<Disconnect, CodecError> {
        let (reason, properties) = read(body, packet_type, version)?;
        Ok(Disconnect { reason, properties })
    }
}

impl Auth {
    pub(crate) fn read(body: Bytes, packet_type: PacketType, version: Version) -> Result<Auth, CodecError> {
        let (reason, properties) = read(body, packet_type, version)?;
        Ok(Auth { reason, properties })
    }
}

/// Both packets' fields, borrowed, so one encoder serves them.
macro_rules! encode_reason_body {
    ($t:ty) => {
        impl Encode for Typed<'_, $t> {
            fn first_byte(&self) -> u8 {
                self.0.first_byte()
            }

            fn validate(&self, version: Version) -> Result<(), CodecError> {
                if self.0 == PacketType::Auth && version == Version::V311 {
                    return Err(CodecError::NotInMqtt311("AUTH"));
                }
                validate_reason_and_properties(self.1.reason, &self.1.properties, self.0, version)
            }

            fn remaining_len(&self, version: Version) -> usize {
                reason_and_properties_len(self.1.reason, &self.1.properties, version)
            }

            fn write_body(&self, buf: &mut BytesMut, version: Version) {
                write_reason_and_properties(buf, self.1.reason, &self.1.properties, version);
            }
        }
    };
}

encode_reason_body!(Disconnect);
encode_reason_body!(Auth);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Packet;
    use crate::codec::PropertyId;
    use crate::codec::test_util::{V5, decode_in, decode_one, encode_err, round_trip, round_trip_in};

    #[test]
    fn mqtt311_disconnect_is_a_bare_header() {
        assert_eq!(&round_trip(&Packet::Disconnect(Disconnect::default()))[..], b"\xE0\x00");
        let with_reason = Disconnect {
            reason: ReasonCode::DISCONNECT_WITH_WILL,
            properties: Properties::new(),
        };
        assert_eq!(
            encode_err(&Packet::Disconnect(with_reason)),
            CodecError::NotInMqtt311("reason codes")
        );
        assert_eq!(
            encode_err(&Packet::Auth(Auth::default())),
            CodecError::NotInMqtt311("AUTH")
        );
        assert!(decode_one(b"\xE0\x01\x00").is_err());
    }

    #[test]
    fn mqtt5_disconnect_forms() {
        assert_eq!(
            &round_trip_in(&Packet::Disconnect(Disconnect::default()), V5)[..],
            b"\xE0\x00"
        );
        let mut d = Disconnect {
            reason: ReasonCode::SERVER_MOVED,
            properties: Properties::new(),
        };
        assert_eq!(&round_trip_in(&Packet::Disconnect(d.clone()), V5)[..], b"\xE0\x01\x9D");
        d.properties.push_str(PropertyId::ServerReference, "b:1883").unwrap();
        assert_eq!(
            &round_trip_in(&Packet::Disconnect(d), V5)[..],
            b"\xE0\x0B\x9D\x09\x1C\x00\x06b:1883"
        );
        assert_eq!(
            decode_in(b"\xE0\x01\x10", V5),
            Err(CodecError::InvalidReasonCode {
                packet_type: 14,
                code: 0x10
            })
        );
        assert_eq!(decode_in(b"\xE0\x04\x00\x02\x23\x01", V5), Err(CodecError::Truncated));
    }

    #[test]
    fn auth_round_trips() {
        let mut a = Auth {
            reason: ReasonCode::CONTINUE_AUTHENTICATION,
            properties: Properties::new(),
        };
        a.properties
            .push_str(PropertyId::AuthenticationMethod, "SCRAM")
            .unwrap();
        a.properties
            .push_binary(PropertyId::AuthenticationData, Bytes::from_static(b"\x01\x02"))
            .unwrap();
        let wire = round_trip_in(&Packet::Auth(a), V5);
        assert_eq!(&wire[..3], b"\xF0\x0F\x18");
    }

    #[test]
    fn auth_success_is_a_bare_header_and_auth_takes_only_its_own_codes() {
        assert_eq!(&round_trip_in(&Packet::Auth(Auth::default()), V5)[..], b"\xF0\x00");
        let reauthenticate = Auth {
            reason: ReasonCode::REAUTHENTICATE,
            properties: Properties::new(),
        };
        assert_eq!(
            &round_trip_in(&Packet::Auth(reauthenticate.clone()), V5)[..],
            b"\xF0\x01\x19"
        );
        assert_eq!(decode_in(b"\xF0\x02\x19\x00", V5), Ok(Packet::Auth(reauthenticate)));
        for code in [0x01, 0x80, 0x87] {
            assert_eq!(
                decode_in(&[0xF0, 0x01, code], V5),
                Err(CodecError::InvalidReasonCode { packet_type: 15, code })
            );
        }
        // Properties only AUTH may carry, and no others.
        assert_eq!(
            decode_in(b"\xF0\x05\x18\x03\x21\x00\x01", V5),
            Err(CodecError::PropertyNotAllowed {
                id: 0x21,
                packet_type: 15
            })
        );
    }
}
