//! PUBACK, PUBREC, PUBREL and PUBCOMP (sections 3.4 to 3.7): a packet id and, in MQTT 5, a reason
//! code and properties. The four differ only in their first byte and the codes they may carry,
//! so they share this file.

use bytes::{BufMut, Bytes, BytesMut};

use super::fields::{check_pkid, expect_end, read_pkid, read_u8};
use super::header::PacketType;
use super::properties::Holder;
use super::{CodecError, Encode, Properties, ReasonCode, Typed, Version};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub pkid: u16,
    /// Always success in 3.1.1, which has no reason codes.
    pub reason: ReasonCode,
    pub properties: Properties,
}

impl Ack {
    /// A success acknowledgement without properties: all 3.1.1 has, and most of what MQTT 5 sends.
    pub fn new(pkid: u16) -> Ack {
        Ack {
            pkid,
            reason: ReasonCode::SUCCESS,
            properties: Properties::new(),
        }
    }

    pub(crate) fn read(mut body: Bytes, packet_type: PacketType, version: Version) -> Result<Ack, CodecError> {
        let pkid = read_pkid(&mut body)?;
        let (reason, properties) = read_reason_and_properties(&mut body, packet_type, version)?;
        expect_end(&body)?;
        Ok(Ack {
            pkid,
            reason,
            properties,
        })
    }
}

/// The tail MQTT 5 adds to acknowledgements and DISCONNECT/AUTH: a reason code, then properties,
/// each of which may be left out when the body ends (a short form meaning success, no properties;
/// sections 3.4.2.1, 3.14.2.1, 3.15.2.1). Nothing in 3.1.1.
pub(crate) fn read_reason_and_properties(
    body: &mut Bytes,
    packet_type: PacketType,
    version: Version,
) -> Result<(ReasonCode, Properties), CodecError> {
    if version == Version::V311 || body.is_empty() {
        return Ok((ReasonCode::SUCCESS, Properties::new()));
    }
    let reason = ReasonCode(read_u8(body)?).check(packet_type)?;
    if body.is_empty() {
        return Ok((reason, Properties::new()));
    }
    Ok((reason, Properties::read(body, Holder::Packet(packet_type))?))
}

/// Checks the tail `read_reason_and_properties` reads; 3.1.1 can only say success.
pub(crate) fn validate_reason_and_properties(
    reason: ReasonCode,
    properties: &Properties,
    packet_type: PacketType,
    version: Version,
) -> Result<(), CodecError> {
    if version == Version::V311 && reason != ReasonCode::SUCCESS {
        return Err(CodecError::NotInMqtt311("reason codes"));
    }
    if version == Version::V5 {
        reason.check(packet_type)?;
    }
    properties.validate_in(Holder::Packet(packet_type), version)
}

/// Bytes of that tail in its shortest form.
pub(crate) fn reason_and_properties_len(reason: ReasonCode, properties: &Properties, version: Version) -> usize {
    match version {
        Version::V311 => 0,
        Version::V5 if !properties.is_empty() => 1 + properties.wire_len(),
        Version::V5 if reason != ReasonCode::SUCCESS => 1,
        Version::V5 => 0,
    }
}

pub(crate) fn write_reason_and_properties(
    buf: &mut BytesMut,
    reason: ReasonCode,
    properties: &Properties,
    version: Version,
) {
    match reason_and_properties_len(reason, properties, version) {
        0 => {}
        1 => buf.put_u8(reason.0),
        _ => {
            buf.put_u8(reason.0);
            properties.write(buf);
        }
    }
}

impl Encode for Typed<'_, Ack> {
    fn first_byte(&self) -> u8 {
        self.0.first_byte()
    }

    fn validate(&self, version: Version) -> Result<(), CodecError> {
        check_pkid(self.1.pkid)?;
        validate_reason_and_properties(self.1.reason, &self.1.properties, self.0, version)
    }

    fn remaining_len(&self, version: Version) -> usize {
        2 + reason_and_properties_len(self.1.reason, &self.1.properties, version)
    }

    fn write_body(&self, buf: &mut BytesMut, version: Version) {
        buf.put_u16(self.1.pkid);
        write_reason_and_properties(buf, self.1.reason, &self.1.properties, version);
    }
}

#[cfg(test)]
mod tests {
    use crate::codec::test_util::{
        V5, decode_in, decode_one, encode_err, encode_err_in, frame, round_trip, round_trip_in,
    };
    use crate::codec::{Ack, CodecError, Packet, PropertyId, ReasonCode};

    type MakePacket = fn(Ack) -> Packet;

    /// Each acknowledgement variant with its constructor and its first byte.
    const KINDS: [(MakePacket, u8); 4] = [
        (Packet::PubAck, 0x40),
        (Packet::PubRec, 0x50),
        (Packet::PubRel, 0x62),
        (Packet::PubComp, 0x70),
    ];

    #[test]
    fn exact_bytes_and_round_trip() {
        for (make, first) in KINDS {
            assert_eq!(&round_trip(&make(Ack::new(10)))[..], &[first, 0x02, 0x00, 0x0A]);
            assert_eq!(&round_trip(&make(Ack::new(0xFFFF)))[..], &[first, 0x02, 0xFF, 0xFF]);
            // MQTT 5 sends success without properties in the same short form.
            assert_eq!(&round_trip_in(&make(Ack::new(1)), V5)[..], &[first, 0x02, 0x00, 0x01]);
        }
    }

    #[test]
    fn zero_packet_id_is_rejected_both_ways() {
        for (make, first) in KINDS {
            assert_eq!(decode_one(&frame(first, &[0, 0])), Err(CodecError::ZeroPacketId));
            assert_eq!(encode_err(&make(Ack::new(0))), CodecError::ZeroPacketId);
        }
    }

    #[test]
    fn wrong_remaining_length_is_rejected_in_mqtt311() {
        for (_, first) in KINDS {
            for body in [&[0, 1, 0][..], &[0], &[]] {
                assert_eq!(
                    decode_one(&frame(first, body)),
                    Err(CodecError::InvalidRemainingLength {
                        packet_type: first >> 4,
                        remaining_len: body.len(),
                        expected: 2
                    })
                );
            }
        }
    }

    #[test]
    fn mqtt5_reason_code_and_properties_take_their_shortest_form() {
        let mut ack = Ack::new(7);
        ack.reason = ReasonCode::NO_MATCHING_SUBSCRIBERS;
        assert_eq!(
            &round_trip_in(&Packet::PubAck(ack.clone()), V5)[..],
            b"\x40\x03\x00\x07\x10"
        );
        ack.properties.push_str(PropertyId::ReasonString, "none").unwrap();
        assert_eq!(
            &round_trip_in(&Packet::PubAck(ack.clone()), V5)[..],
            b"\x40\x0B\x00\x07\x10\x07\x1F\x00\x04none"
        );
        // A reason code followed by an empty property list is the same acknowledgement.
        assert_eq!(
            decode_in(b"\x50\x04\x00\x07\x10\x00", V5),
            Ok(Packet::PubRec(Ack {
                reason: ReasonCode::NO_MATCHING_SUBSCRIBERS,
                ..Ack::new(7)
            }))
        );
    }

    #[test]
    fn codes_and_properties_are_checked_per_packet() {
        assert_eq!(
            decode_in(b"\x62\x03\x00\x07\x10", V5),
            Err(CodecError::InvalidReasonCode {
                packet_type: 6,
                code: 0x10
            })
        );
        assert_eq!(
            decode_in(b"\x40\x06\x00\x07\x00\x02\x23\x01", V5),
            Err(CodecError::Truncated)
        );
        assert_eq!(
            decode_in(b"\x40\x07\x00\x07\x00\x03\x23\x00\x01", V5),
            Err(CodecError::PropertyNotAllowed {
                id: 0x23,
                packet_type: 4
            })
        );
        let mut ack = Ack::new(1);
        ack.reason = ReasonCode::NOT_AUTHORIZED;
        assert_eq!(
            encode_err(&Packet::PubAck(ack.clone())),
            CodecError::NotInMqtt311("reason codes")
        );
        assert_eq!(
            encode_err_in(&Packet::PubComp(ack), V5),
            CodecError::InvalidReasonCode {
                packet_type: 7,
                code: 0x87
            }
        );
    }
}
