//! The fixed header (section 2.2): packet type, flags, remaining length.

use super::fields::var_int_len;
use super::{CodecError, Version};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum PacketType {
    Connect = 1,
    ConnAck = 2,
    Publish = 3,
    PubAck = 4,
    PubRec = 5,
    PubRel = 6,
    PubComp = 7,
    Subscribe = 8,
    SubAck = 9,
    Unsubscribe = 10,
    UnsubAck = 11,
    PingReq = 12,
    PingResp = 13,
    Disconnect = 14,
    /// MQTT 5 only (section 3.15).
    Auth = 15,
}

impl PacketType {
    fn from_u8(v: u8, version: Version) -> Result<PacketType, CodecError> {
        use PacketType::*;
        Ok(match v {
            1 => Connect,
            2 => ConnAck,
            3 => Publish,
            4 => PubAck,
            5 => PubRec,
            6 => PubRel,
            7 => PubComp,
            8 => Subscribe,
            9 => SubAck,
            10 => Unsubscribe,
            11 => UnsubAck,
            12 => PingReq,
            13 => PingResp,
            14 => Disconnect,
            15 if version == Version::V5 => Auth,
            _ => return Err(CodecError::InvalidPacketType(v)),
        })
    }

    /// Table 2.2: the flags every type but PUBLISH must carry; PUBLISH flags hold DUP/QoS/RETAIN instead.
    fn required_flags(self) -> u8 {
        match self {
            PacketType::PubRel | PacketType::Subscribe | PacketType::Unsubscribe => 0b0010,
            _ => 0,
        }
    }

    /// The remaining length of the types whose body has a fixed size; None for the others. In
    /// MQTT 5 only the pings are fixed: the acknowledgements and DISCONNECT may carry a reason
    /// code and properties.
    fn fixed_remaining_len(self, version: Version) -> Option<usize> {
        use PacketType::*;
        match (self, version) {
            (PingReq | PingResp, _) => Some(0),
            (Disconnect, Version::V311) => Some(0),
            (ConnAck | PubAck | PubRec | PubRel | PubComp | UnsubAck, Version::V311) => Some(2),
            _ => None,
        }
    }

    /// The first byte with the required flags; PUBLISH ORs its own flags into it.
    pub(crate) fn first_byte(self) -> u8 {
        (self as u8) << 4 | self.required_flags()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FixedHeader {
    pub packet_type: PacketType,
    pub flags: u8,
    /// 2 to 5 bytes.
    pub header_len: usize,
    pub remaining_len: usize,
}

impl FixedHeader {
    pub(crate) fn packet_len(&self) -> usize {
        self.header_len + self.remaining_len
    }
}

/// Parses the fixed header at the front of `buf`; `Ok(None)` while its length bytes are still arriving.
/// Type and flags are checked from the first byte alone so garbage is refused without waiting for more;
/// a remaining length the type cannot have is refused as soon as it is read, so a peer cannot make the
/// reader wait for (and make room for) the body of, say, a 100 MB PUBACK.
///
/// MQTT 5 also requires the shortest length encoding (MQTT-1.5.5-1); 3.1.1 does not.
pub(crate) fn parse(buf: &[u8], version: Version) -> Result<Option<FixedHeader>, CodecError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let packet_type = PacketType::from_u8(first >> 4, version)?;
    let flags = first & 0x0F;
    if packet_type != PacketType::Publish && flags != packet_type.required_flags() {
        return Err(CodecError::ReservedFlags {
            packet_type: packet_type as u8,
            flags,
        });
    }
    // Section 2.2.3: seven bits per byte, least significant first, at most four bytes.
    let mut remaining_len = 0;
    for (i, &byte) in buf[1..].iter().take(4).enumerate() {
        remaining_len |= usize::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            if version == Version::V5 && i > 0 && byte == 0 {
                return Err(CodecError::MalformedRemainingLength);
            }
            if let Some(expected) = packet_type.fixed_remaining_len(version).filter(|&n| n != remaining_len) {
                return Err(CodecError::InvalidRemainingLength {
                    packet_type: packet_type as u8,
                    remaining_len,
                    expected,
                });
            }
            return Ok(Some(FixedHeader {
                packet_type,
                flags,
                header_len: 2 + i,
                remaining_len,
            }));
        }
    }
    if buf.len() >= 5 {
        Err(CodecError::MalformedRemainingLength)
    } else {
        Ok(None)
    }
}

/// Bytes a whole packet takes, fixed header included.
pub(crate) fn packet_len(remaining_len: usize) -> usize {
    1 + var_int_len(remaining_len) + remaining_len
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::MAX_REMAINING_LENGTH;
    use crate::codec::fields::write_var_int;
    use bytes::{BufMut, BytesMut};

    const V3: Version = Version::V311;
    const V5: Version = Version::V5;

    const BOUNDARIES: &[(usize, &[u8])] = &[
        (0, &[0x00]),
        (127, &[0x7F]),
        (128, &[0x80, 0x01]),
        (16_383, &[0xFF, 0x7F]),
        (16_384, &[0x80, 0x80, 0x01]),
        (2_097_151, &[0xFF, 0xFF, 0x7F]),
        (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
        (MAX_REMAINING_LENGTH, &[0xFF, 0xFF, 0xFF, 0x7F]),
    ];

    #[test]
    fn remaining_length_boundaries_encode_and_parse() {
        for &(len, wire) in BOUNDARIES {
            let mut buf = BytesMut::new();
            buf.put_u8(0x30);
            write_var_int(len, &mut buf);
            assert_eq!(&buf[1..], wire, "length {len}");
            assert_eq!(var_int_len(len), wire.len());
            assert_eq!(packet_len(len), 1 + wire.len() + len);
            let header = parse(&buf, V3).unwrap().unwrap();
            assert_eq!(header.remaining_len, len);
            assert_eq!(header.header_len, 1 + wire.len());
            assert_eq!(header.packet_len(), packet_len(len));
        }
    }

    #[test]
    fn incomplete_length_waits() {
        assert_eq!(parse(&[], V3), Ok(None));
        assert_eq!(parse(&[0x30], V3), Ok(None));
        assert_eq!(parse(&[0x30, 0x80], V3), Ok(None));
        assert_eq!(parse(&[0x30, 0xFF, 0xFF, 0xFF], V3), Ok(None));
    }

    #[test]
    fn non_minimal_length_is_accepted() {
        // 3.1.1 does not require the shortest form (MQTT 5 does), so a peer's padded 0 is tolerated.
        let header = parse(&[0xC0, 0x80, 0x00], V3).unwrap().unwrap();
        assert_eq!((header.header_len, header.remaining_len), (3, 0));
    }

    #[test]
    fn mqtt5_requires_the_shortest_length() {
        assert_eq!(
            parse(&[0xC0, 0x80, 0x00], V5),
            Err(CodecError::MalformedRemainingLength)
        );
        assert_eq!(
            parse(&[0x30, 0x80, 0x80, 0x00], V5),
            Err(CodecError::MalformedRemainingLength)
        );
        assert_eq!(parse(&[0x30, 0x80, 0x01], V5).unwrap().unwrap().remaining_len, 128);
    }

    #[test]
    fn auth_exists_in_mqtt5_only() {
        assert_eq!(parse(&[0xF0, 0x00], V5).unwrap().unwrap().packet_type, PacketType::Auth);
        assert_eq!(parse(&[0xF0, 0x00], V3), Err(CodecError::InvalidPacketType(15)));
    }

    #[test]
    fn mqtt5_acknowledgements_and_disconnect_have_any_length() {
        for first in [0x20, 0x40, 0x50, 0x62, 0x70, 0xB0, 0xE0] {
            assert!(parse(&[first, 0x40], V5).unwrap().is_some(), "{first:#x}");
        }
        assert!(parse(&[0xC0, 0x01], V5).is_err());
    }

    #[test]
    fn continuation_on_fourth_length_byte_is_malformed() {
        assert_eq!(
            parse(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F], V3),
            Err(CodecError::MalformedRemainingLength)
        );
        // Known as soon as the 4th length byte is in, without the 5th.
        assert_eq!(
            parse(&[0x30, 0x80, 0x80, 0x80, 0x80], V3),
            Err(CodecError::MalformedRemainingLength)
        );
    }

    #[test]
    fn reserved_packet_types_are_rejected_from_the_first_byte() {
        assert_eq!(parse(&[0x00], V3), Err(CodecError::InvalidPacketType(0)));
        assert_eq!(parse(&[0xF0], V3), Err(CodecError::InvalidPacketType(15)));
    }

    #[test]
    fn every_wrong_flag_value_on_every_non_publish_type_is_rejected() {
        for t in 1..=15u8 {
            let packet_type = PacketType::from_u8(t, V5).unwrap();
            assert_eq!(packet_type as u8, t);
            // A length the type may have, so only the flags are wrong.
            let len = packet_type.fixed_remaining_len(V5).unwrap_or(0) as u8;
            for flags in 0..16u8 {
                let result = parse(&[t << 4 | flags, len], V5);
                if packet_type == PacketType::Publish || flags == packet_type.required_flags() {
                    assert!(result.unwrap().is_some(), "type {t} flags {flags}");
                } else {
                    assert_eq!(
                        result,
                        Err(CodecError::ReservedFlags { packet_type: t, flags }),
                        "type {t} flags {flags}"
                    );
                }
            }
        }
    }

    #[test]
    fn fixed_size_types_with_another_remaining_length_are_rejected_from_the_header() {
        // (first byte, the only remaining length that type may have)
        let fixed = [
            (0x20, 2),
            (0x40, 2),
            (0x50, 2),
            (0x62, 2),
            (0x70, 2),
            (0xB0, 2),
            (0xC0, 0),
            (0xD0, 0),
            (0xE0, 0),
        ];
        for (first, expected) in fixed {
            let t = first >> 4;
            assert!(parse(&[first, expected as u8], V3).unwrap().is_some(), "type {t}");
            // 1,000,000 as remaining length: refused with no byte of the body present.
            for (len, wire) in [
                (expected + 1, vec![expected as u8 + 1]),
                (1_000_000, vec![0xC0, 0x84, 0x3D]),
            ] {
                let mut header = vec![first];
                header.extend_from_slice(&wire);
                assert_eq!(
                    parse(&header, V3),
                    Err(CodecError::InvalidRemainingLength {
                        packet_type: t,
                        remaining_len: len,
                        expected
                    }),
                    "type {t}"
                );
            }
            if expected > 0 {
                assert!(parse(&[first, 0], V3).is_err(), "type {t} with remaining length 0");
            }
        }
        // The others take any length; a body too short for them is the body's problem.
        for first in [0x10, 0x30, 0x82, 0x90, 0xA2] {
            assert!(parse(&[first, 0xC0, 0x84, 0x3D], V3).unwrap().is_some());
        }
    }

    #[test]
    fn first_byte_carries_required_flags() {
        assert_eq!(PacketType::PubRel.first_byte(), 0x62);
        assert_eq!(PacketType::Subscribe.first_byte(), 0x82);
        assert_eq!(PacketType::Unsubscribe.first_byte(), 0xA2);
        assert_eq!(PacketType::PingReq.first_byte(), 0xC0);
        assert_eq!(PacketType::Publish.first_byte(), 0x30);
    }
}
