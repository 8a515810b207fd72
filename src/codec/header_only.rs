//! PINGREQ, PINGRESP and DISCONNECT (sections 3.12, 3.13, 3.14): a fixed header with remaining length 0.

use bytes::{Bytes, BytesMut};

use super::fields::expect_end;
use super::header::PacketType;
use super::{CodecError, Encode};

pub(crate) struct HeaderOnly(pub(crate) PacketType);

pub(crate) fn read(body: &Bytes) -> Result<(), CodecError> {
    expect_end(body)
}

impl Encode for HeaderOnly {
    fn first_byte(&self) -> u8 {
        self.0.first_byte()
    }

    fn validate(&self) -> Result<(), CodecError> {
        Ok(())
    }

    fn remaining_len(&self) -> usize {
        0
    }

    fn write_body(&self, _: &mut BytesMut) {}
}

#[cfg(test)]
mod tests {
    use crate::codec::test_util::{decode_one, frame, round_trip};
    use crate::codec::{CodecError, Packet};

    #[test]
    fn exact_bytes_and_round_trip() {
        assert_eq!(&round_trip(&Packet::PingReq)[..], &[0xC0, 0x00]);
        assert_eq!(&round_trip(&Packet::PingResp)[..], &[0xD0, 0x00]);
        assert_eq!(&round_trip(&Packet::Disconnect)[..], &[0xE0, 0x00]);
    }

    #[test]
    fn non_empty_body_is_rejected() {
        for first in [0xC0, 0xD0, 0xE0] {
            assert_eq!(
                decode_one(&frame(first, &[0])),
                Err(CodecError::InvalidRemainingLength {
                    packet_type: first >> 4,
                    remaining_len: 1,
                    expected: 0
                })
            );
        }
    }
}
