//! PUBACK, PUBREC, PUBREL, PUBCOMP and UNSUBACK (sections 3.4, 3.5, 3.6, 3.7, 3.11): in 3.1.1 each is a
//! fixed header and a packet id, so they share this file and differ only in their first byte.

use bytes::{BufMut, Bytes, BytesMut};

use super::fields::{check_pkid, expect_end, read_pkid};
use super::header::PacketType;
use super::{CodecError, Encode};

pub(crate) struct PacketIdOnly {
    packet_type: PacketType,
    pkid: u16,
}

impl PacketIdOnly {
    pub(crate) fn new(packet_type: PacketType, pkid: u16) -> Self {
        PacketIdOnly { packet_type, pkid }
    }
}

pub(crate) fn read(mut body: Bytes) -> Result<u16, CodecError> {
    let pkid = read_pkid(&mut body)?;
    expect_end(&body)?;
    Ok(pkid)
}

impl Encode for PacketIdOnly {
    fn first_byte(&self) -> u8 {
        self.packet_type.first_byte()
    }

    fn validate(&self) -> Result<(), CodecError> {
        check_pkid(self.pkid)
    }

    fn remaining_len(&self) -> usize {
        2
    }

    fn write_body(&self, buf: &mut BytesMut) {
        buf.put_u16(self.pkid);
    }
}

#[cfg(test)]
mod tests {
    use crate::codec::test_util::{decode_one, encode_err, frame, round_trip};
    use crate::codec::{CodecError, Packet};

    type MakePacket = fn(u16) -> Packet;

    /// Each packet-id-only variant with its constructor and its first byte.
    const KINDS: [(MakePacket, u8); 5] = [
        (Packet::PubAck, 0x40),
        (Packet::PubRec, 0x50),
        (Packet::PubRel, 0x62),
        (Packet::PubComp, 0x70),
        (Packet::UnsubAck, 0xB0),
    ];

    #[test]
    fn exact_bytes_and_round_trip() {
        for (make, first) in KINDS {
            assert_eq!(&round_trip(&make(10))[..], &[first, 0x02, 0x00, 0x0A]);
            assert_eq!(&round_trip(&make(0xFFFF))[..], &[first, 0x02, 0xFF, 0xFF]);
            assert_eq!(&round_trip(&make(1))[..], &[first, 0x02, 0x00, 0x01]);
        }
    }

    #[test]
    fn zero_packet_id_is_rejected_both_ways() {
        for (make, first) in KINDS {
            assert_eq!(decode_one(&frame(first, &[0, 0])), Err(CodecError::ZeroPacketId));
            assert_eq!(encode_err(&make(0)), CodecError::ZeroPacketId);
        }
    }

    #[test]
    fn wrong_remaining_length_is_rejected() {
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
}
