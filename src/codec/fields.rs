//! Wire primitives shared by the packet files: integers, packet ids and length-prefixed fields.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::{CodecError, MqttStr};

/// The longest string or binary field its two-byte length prefix can describe (sections 1.5.3, 3.1.3.4).
pub(crate) const MAX_FIELD_LEN: usize = 65_535;

pub(crate) fn read_u8(body: &mut Bytes) -> Result<u8, CodecError> {
    if body.is_empty() {
        return Err(CodecError::Truncated);
    }
    Ok(body.get_u8())
}

pub(crate) fn read_u16(body: &mut Bytes) -> Result<u16, CodecError> {
    if body.len() < 2 {
        return Err(CodecError::Truncated);
    }
    Ok(body.get_u16())
}

pub(crate) fn read_u32(body: &mut Bytes) -> Result<u32, CodecError> {
    if body.len() < 4 {
        return Err(CodecError::Truncated);
    }
    Ok(body.get_u32())
}

/// The largest variable byte integer (section 1.5.5 of MQTT 5; 2.2.3 of 3.1.1 for the remaining length).
pub(crate) const MAX_VAR_INT: u32 = 268_435_455;

/// A variable byte integer inside a body (property lengths, subscription identifiers). Unlike the
/// remaining length, which 3.1.1 lets a peer pad, these exist only in MQTT 5, which requires the
/// shortest form (MQTT-1.5.5-1).
pub(crate) fn read_var_int(body: &mut Bytes) -> Result<u32, CodecError> {
    let mut value = 0;
    for i in 0..4 {
        let byte = read_u8(body)?;
        value |= u32::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            if i > 0 && byte == 0 {
                return Err(CodecError::MalformedVarInt);
            }
            return Ok(value);
        }
    }
    Err(CodecError::MalformedVarInt)
}

/// Bytes a variable byte integer takes; only meaningful up to MAX_VAR_INT.
pub(crate) fn var_int_len(value: usize) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// The caller has checked `value <= MAX_VAR_INT`.
pub(crate) fn write_var_int(mut value: usize, buf: &mut BytesMut) {
    debug_assert!(value <= MAX_VAR_INT as usize);
    loop {
        let byte = (value & 0x7F) as u8;
        value >>= 7;
        if value == 0 {
            buf.put_u8(byte);
            return;
        }
        buf.put_u8(byte | 0x80);
    }
}

pub(crate) fn read_pkid(body: &mut Bytes) -> Result<u16, CodecError> {
    let pkid = read_u16(body)?;
    check_pkid(pkid)?;
    Ok(pkid)
}

/// Packet ids are non-zero wherever they appear (section 2.3.1).
pub(crate) fn check_pkid(pkid: u16) -> Result<(), CodecError> {
    if pkid == 0 {
        Err(CodecError::ZeroPacketId)
    } else {
        Ok(())
    }
}

/// A two-byte length followed by that many bytes, split off without copying.
pub(crate) fn read_binary(body: &mut Bytes) -> Result<Bytes, CodecError> {
    let len = usize::from(read_u16(body)?);
    if body.len() < len {
        return Err(CodecError::Truncated);
    }
    Ok(body.split_to(len))
}

pub(crate) fn read_str(body: &mut Bytes) -> Result<MqttStr, CodecError> {
    MqttStr::from_bytes(read_binary(body)?)
}

pub(crate) fn expect_end(body: &Bytes) -> Result<(), CodecError> {
    if body.is_empty() {
        Ok(())
    } else {
        Err(CodecError::TrailingBytes)
    }
}

/// Binary data has no type to carry its limit, unlike `MqttStr`, so encoders check it here.
pub(crate) fn check_binary_len(data: &[u8]) -> Result<(), CodecError> {
    if data.len() > MAX_FIELD_LEN {
        Err(CodecError::BinaryTooLong(data.len()))
    } else {
        Ok(())
    }
}

/// Bytes a length-prefixed field takes on the wire.
pub(crate) fn field_len(data: &[u8]) -> usize {
    2 + data.len()
}

/// Callers have checked `data.len() <= MAX_FIELD_LEN` (via `MqttStr` or `check_binary_len`).
pub(crate) fn write_field(buf: &mut BytesMut, data: &[u8]) {
    debug_assert!(data.len() <= MAX_FIELD_LEN);
    buf.put_u16(data.len() as u16);
    buf.put_slice(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_big_endian_and_bounds_checked() {
        let mut b = Bytes::from_static(&[0x12, 0x34, 0x56]);
        assert_eq!(read_u16(&mut b), Ok(0x1234));
        assert_eq!(read_u16(&mut b), Err(CodecError::Truncated));
        assert_eq!(read_u8(&mut b), Ok(0x56));
        assert_eq!(read_u8(&mut b), Err(CodecError::Truncated));
    }

    #[test]
    fn var_int_takes_the_shortest_form_only() {
        for (value, wire) in [
            (0, &[0x00][..]),
            (127, &[0x7F]),
            (128, &[0x80, 0x01]),
            (16_383, &[0xFF, 0x7F]),
            (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
            (MAX_VAR_INT, &[0xFF, 0xFF, 0xFF, 0x7F]),
        ] {
            let mut buf = BytesMut::new();
            write_var_int(value as usize, &mut buf);
            assert_eq!(&buf[..], wire);
            assert_eq!(var_int_len(value as usize), wire.len());
            assert_eq!(read_var_int(&mut buf.freeze()), Ok(value));
        }
        for wire in [&[0x80, 0x00][..], &[0xFF, 0x80, 0x00], &[0x80, 0x80, 0x80, 0x80]] {
            assert_eq!(
                read_var_int(&mut Bytes::copy_from_slice(wire)),
                Err(CodecError::MalformedVarInt)
            );
        }
        assert_eq!(
            read_var_int(&mut Bytes::from_static(&[0x80])),
            Err(CodecError::Truncated)
        );
    }

    #[test]
    fn pkid_zero_is_rejected() {
        assert_eq!(
            read_pkid(&mut Bytes::from_static(&[0, 0])),
            Err(CodecError::ZeroPacketId)
        );
        assert_eq!(read_pkid(&mut Bytes::from_static(&[0xFF, 0xFF])), Ok(65_535));
    }

    #[test]
    fn length_prefixed_field_round_trips() {
        let mut buf = BytesMut::new();
        write_field(&mut buf, b"hello");
        write_field(&mut buf, b"");
        assert_eq!(&buf[..], b"\x00\x05hello\x00\x00");
        assert_eq!(field_len(b"hello"), 7);
        let mut body = buf.freeze();
        assert_eq!(read_binary(&mut body).unwrap(), &b"hello"[..]);
        assert_eq!(read_str(&mut body).unwrap().as_str(), "");
        assert_eq!(expect_end(&body), Ok(()));
    }

    #[test]
    fn field_cut_short_is_truncated() {
        assert_eq!(
            read_binary(&mut Bytes::from_static(&[0x00])),
            Err(CodecError::Truncated)
        );
        assert_eq!(
            read_binary(&mut Bytes::from_static(&[0x00, 0x03, b'a', b'b'])),
            Err(CodecError::Truncated)
        );
    }

    #[test]
    fn binary_limit_is_65535_bytes() {
        assert_eq!(check_binary_len(&[0; 65_535]), Ok(()));
        assert_eq!(check_binary_len(&[0; 65_536]), Err(CodecError::BinaryTooLong(65_536)));
    }

    #[test]
    fn trailing_bytes_are_reported() {
        assert_eq!(expect_end(&Bytes::from_static(&[0])), Err(CodecError::TrailingBytes));
    }
}
