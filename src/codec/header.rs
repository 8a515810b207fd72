//! The fixed header (section 2.2): packet type, flags, remaining length.

use bytes::{BufMut, BytesMut};

use super::CodecError;

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
}

impl PacketType {
    fn from_u8(v: u8) -> Result<PacketType, CodecError> {
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

    /// The remaining length of the types whose body has a fixed size; None for the others.
    fn fixed_remaining_len(self) -> Option<usize> {
        use PacketType::*;
        match self {
            ConnAck | PubAck | PubRec | PubRel | PubComp | UnsubAck => Some(2),
            PingReq | PingResp | Disconnect => Some(0),
            Connect | Publish | Subscribe | SubAck | Unsubscribe => None,
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
pub(crate) fn parse(buf: &[u8]) -> Result<Option<FixedHeader>, CodecError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let packet_type = PacketType::from_u8(first >> 4)?;
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
            if let Some(expected) = packet_type.fixed_remaining_len().filter(|&n| n != remaining_len) {
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

/// Bytes the remaining length takes; only meaningful up to MAX_REMAINING_LENGTH.
fn remaining_length_len(len: usize) -> usize {
    match len {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Bytes a whole packet takes, fixed header included.
pub(crate) fn packet_len(remaining_len: usize) -> usize {
    1 + remaining_length_len(remaining_len) + remaining_len
}

/// The caller has checked `len <= MAX_REMAINING_LENGTH`.
pub(crate) fn write_remaining_length(mut len: usize, buf: &mut BytesMut) {
    debug_assert!(len <= super::MAX_REMAINING_LENGTH);
    loop {
        let byte = (len & 0x7F) as u8;
        len >>= 7;
        if len == 0 {
            buf.put_u8(byte);
            return;
        }
        buf.put_u8(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::MAX_REMAINING_LENGTH;

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
            write_remaining_length(len, &mut buf);
            assert_eq!(&buf[1..], wire, "length {len}");
            assert_eq!(remaining_length_len(len), wire.len());
            assert_eq!(packet_len(len), 1 + wire.len() + len);
            let header = parse(&buf).unwrap().unwrap();
            assert_eq!(header.remaining_len, len);
            assert_eq!(header.header_len, 1 + wire.len());
            assert_eq!(header.packet_len(), packet_len(len));
        }
    }

    #[test]
    fn incomplete_length_waits() {
        assert_eq!(parse(&[]), Ok(None));
        assert_eq!(parse(&[0x30]), Ok(None));
        assert_eq!(parse(&[0x30, 0x80]), Ok(None));
        assert_eq!(parse(&[0x30, 0xFF, 0xFF, 0xFF]), Ok(None));
    }

    #[test]
    fn non_minimal_length_is_accepted() {
        // 3.1.1 does not require the shortest form (MQTT 5 does), so a peer's padded 0 is tolerated.
        let header = parse(&[0xC0, 0x80, 0x00]).unwrap().unwrap();
        assert_eq!((header.header_len, header.remaining_len), (3, 0));
    }

    #[test]
    fn continuation_on_fourth_length_byte_is_malformed() {
        assert_eq!(
            parse(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]),
            Err(CodecError::MalformedRemainingLength)
        );
        // Known as soon as the 4th length byte is in, without the 5th.
        assert_eq!(
            parse(&[0x30, 0x80, 0x80, 0x80, 0x80]),
            Err(CodecError::MalformedRemainingLength)
        );
    }

    #[test]
    fn reserved_packet_types_are_rejected_from_the_first_byte() {
        assert_eq!(parse(&[0x00]), Err(CodecError::InvalidPacketType(0)));
        assert_eq!(parse(&[0xF0]), Err(CodecError::InvalidPacketType(15)));
    }

    #[test]
    fn every_wrong_flag_value_on_every_non_publish_type_is_rejected() {
        for t in 1..=14u8 {
            let packet_type = PacketType::from_u8(t).unwrap();
            assert_eq!(packet_type as u8, t);
            // A length the type may have, so only the flags are wrong.
            let len = packet_type.fixed_remaining_len().unwrap_or(0) as u8;
            for flags in 0..16u8 {
                let result = parse(&[t << 4 | flags, len]);
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
            assert!(parse(&[first, expected as u8]).unwrap().is_some(), "type {t}");
            // 1,000,000 as remaining length: refused with no byte of the body present.
            for (len, wire) in [
                (expected + 1, vec![expected as u8 + 1]),
                (1_000_000, vec![0xC0, 0x84, 0x3D]),
            ] {
                let mut header = vec![first];
                header.extend_from_slice(&wire);
                assert_eq!(
                    parse(&header),
                    Err(CodecError::InvalidRemainingLength {
                        packet_type: t,
                        remaining_len: len,
                        expected
                    }),
                    "type {t}"
                );
            }
            if expected > 0 {
                assert!(parse(&[first, 0]).is_err(), "type {t} with remaining length 0");
            }
        }
        // The others take any length; a body too short for them is the body's problem.
        for first in [0x10, 0x30, 0x82, 0x90, 0xA2] {
            assert!(parse(&[first, 0xC0, 0x84, 0x3D]).unwrap().is_some());
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
