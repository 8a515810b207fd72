//! Helpers the packet files' tests share. The plain forms speak 3.1.1; the `_in` forms take a version.

use bytes::{BufMut, Bytes, BytesMut};

use super::{CodecError, Packet, Version, decode, fields};

/// For tests that are not about the size limit.
pub(crate) const NO_LIMIT: usize = usize::MAX;

pub(crate) const V3: Version = Version::V311;
pub(crate) const V5: Version = Version::V5;

/// A hand-made packet: `first` byte, correct remaining length, then `body` as given.
pub(crate) fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    buf.put_u8(first);
    fields::write_var_int(body.len(), &mut buf);
    buf.put_slice(body);
    buf.to_vec()
}

/// Decodes `wire`, which must hold exactly one whole packet.
pub(crate) fn decode_in(wire: &[u8], version: Version) -> Result<Packet, CodecError> {
    let mut buf = BytesMut::from(wire);
    let packet = decode(&mut buf, NO_LIMIT, version)?.expect("a whole packet is present");
    assert!(buf.is_empty(), "{} bytes left after one packet", buf.len());
    Ok(packet)
}

pub(crate) fn decode_one(wire: &[u8]) -> Result<Packet, CodecError> {
    decode_in(wire, V3)
}

/// Encodes `packet`, checks `encoded_len`, decodes it back to an equal packet; returns the wire bytes.
pub(crate) fn round_trip_in(packet: &Packet, version: Version) -> Bytes {
    let mut buf = BytesMut::new();
    packet.encode(&mut buf, version).expect("encodable");
    assert_eq!(buf.len(), packet.encoded_len(version), "encoded_len of {packet:?}");
    assert_eq!(decode_in(&buf, version).as_ref(), Ok(packet));
    buf.freeze()
}

pub(crate) fn round_trip(packet: &Packet) -> Bytes {
    round_trip_in(packet, V3)
}

/// Encodes a packet that must be refused and checks nothing was appended to a non-empty buffer.
pub(crate) fn encode_err_in(packet: &Packet, version: Version) -> CodecError {
    let mut buf = BytesMut::from(&b"earlier"[..]);
    let err = packet.encode(&mut buf, version).expect_err("must not encode");
    assert_eq!(&buf[..], b"earlier", "encode appended on error");
    err
}

pub(crate) fn encode_err(packet: &Packet) -> CodecError {
    encode_err_in(packet, V3)
}
