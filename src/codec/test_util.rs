//! Helpers the packet files' tests share.

use bytes::{BufMut, Bytes, BytesMut};

use super::{CodecError, Packet, decode, header};

/// For tests that are not about the size limit.
pub(crate) const NO_LIMIT: usize = usize::MAX;

/// A hand-made packet: `first` byte, correct remaining length, then `body` as given.
pub(crate) fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    buf.put_u8(first);
    header::write_remaining_length(body.len(), &mut buf);
    buf.put_slice(body);
    buf.to_vec()
}

/// Decodes `wire`, which must hold exactly one whole packet.
pub(crate) fn decode_one(wire: &[u8]) -> Result<Packet, CodecError> {
    let mut buf = BytesMut::from(wire);
    let packet = decode(&mut buf, NO_LIMIT)?.expect("a whole packet is present");
    assert!(buf.is_empty(), "{} bytes left after one packet", buf.len());
    Ok(packet)
}

/// Encodes `packet`, checks `encoded_len`, decodes it back to an equal packet; returns the wire bytes.
pub(crate) fn round_trip(packet: &Packet) -> Bytes {
    let mut buf = BytesMut::new();
    packet.encode(&mut buf).expect("encodable");
    assert_eq!(buf.len(), packet.encoded_len(), "encoded_len of {packet:?}");
    assert_eq!(decode_one(&buf).as_ref(), Ok(packet));
    buf.freeze()
}

/// Encodes a packet that must be refused and checks nothing was appended to a non-empty buffer.
pub(crate) fn encode_err(packet: &Packet) -> CodecError {
    let mut buf = BytesMut::from(&b"earlier"[..]);
    let err = packet.encode(&mut buf).expect_err("must not encode");
    assert_eq!(&buf[..], b"earlier", "encode appended on error");
    err
}
