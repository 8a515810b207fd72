//! The decoder target: any bytes, read as a stream of packets the way a connection reads them,
//! once as MQTT 3.1.1 and once as MQTT 5.
//!
//! Properties checked, under each version:
//! - the outcome (the packets, then how the stream stops) is the same whether the bytes arrive at
//!   once or in pieces (each fixed header one byte at a time), and `Ok(None)` consumes nothing;
//! - a decoded packet encodes back to the bytes it came from (up to a non-minimal remaining
//!   length, which 3.1.1 tolerates, and in MQTT 5 a trailing success reason code or empty
//!   property length, which the encoder leaves out), and decode(encode(p)) == p;
//! - under the small `MAX_PACKET_SIZE` the stream is what an unlimited decoder reads, up to the
//!   first packet over the limit, which is refused as `PacketTooLarge` from its fixed header;
//! - memory: a `decode` call that returns `Ok(None)` or a fixed-header error allocates nothing,
//!   whatever length the header claims; one that reads a packet holds at most `AMPLIFICATION`
//!   heap bytes per byte of that packet (plus `SLACK`), and so never more than
//!   `AMPLIFICATION * MAX_PACKET_SIZE + SLACK`. MQTT 5 property lists stay in their wire form, so
//!   they add nothing to this.

use bytes::BytesMut;
use mqttclient::codec::{CodecError, Packet, Version, decode};

use super::alloc_meter;

/// The limit the target decodes under: small, so that oversize packets are common.
pub const MAX_PACKET_SIZE: usize = 1024;
const NO_LIMIT: usize = usize::MAX;

/// Heap bytes a decoded packet may hold per byte of its wire form. The worst case is an
/// UNSUBSCRIBE of one-character filters: 3 wire bytes each become a 32-byte `MqttStr` in a `Vec`,
/// whose capacity can be twice its length, and which briefly holds its old buffer beside the new
/// one while growing.
pub const AMPLIFICATION: usize = 32;
/// Fixed costs of one call, e.g. the shared-buffer header `bytes` allocates on the first split.
pub const SLACK: usize = 256;

#[derive(Debug, PartialEq)]
enum Step {
    /// A packet and how many bytes it took (boxed: a CONNECT is large beside the other steps).
    Packet(Box<Packet>, usize),
    /// The stream ended inside a packet (or between packets): `Ok(None)`.
    Waiting,
    Failed(CodecError),
}

pub fn check(data: &[u8]) {
    assert!(alloc_meter::installed(), "the binary must install alloc_meter::Meter");
    for version in [Version::V311, Version::V5] {
        check_version(data, version);
    }
}

fn check_version(data: &[u8], version: Version) {
    let whole = read_stream(data, version, MAX_PACKET_SIZE, |_, _| usize::MAX);
    // Every fixed-header prefix one byte at a time (a header is at most 5 bytes), then pieces of
    // 1 to 61 bytes: all the partial states that differ, without a call per byte of payload.
    let pieces = read_stream(data, version, MAX_PACKET_SIZE, |buffered, fed| {
        if buffered < 6 { 1 } else { 1 + fed * 7919 % 61 }
    });
    assert_eq!(whole, pieces, "fed at once vs in pieces");

    let unlimited = read_stream(data, version, NO_LIMIT, |_, _| usize::MAX);
    let (last, packets) = whole.split_last().expect("a stream ends with a step");
    assert_eq!(
        &unlimited[..packets.len()],
        packets,
        "the limit changed a packet under it"
    );
    let unlimited_next = &unlimited[packets.len()];
    match last {
        Step::Failed(CodecError::PacketTooLarge { size, max }) => {
            assert!(*size > *max && *max == MAX_PACKET_SIZE);
            match unlimited_next {
                Step::Packet(_, len) => assert_eq!(len, size),
                Step::Waiting => {}
                Step::Failed(e) => assert!(!is_header_error(e), "{e:?} after {last:?}"),
            }
        }
        _ => assert_eq!(unlimited_next, last),
    }
}

/// Errors found in the fixed header, which leave the buffer untouched.
fn is_header_error(e: &CodecError) -> bool {
    matches!(
        e,
        CodecError::MalformedRemainingLength
            | CodecError::PacketTooLarge { .. }
            | CodecError::InvalidPacketType(_)
            | CodecError::ReservedFlags { .. }
            | CodecError::InvalidRemainingLength { .. }
    )
}

/// Feeds `data` in pieces, decoding after each as a read loop does, until an error or the end of
/// the data; `piece(bytes buffered, bytes fed so far)` sizes the next piece. Checks each call's
/// consumption and allocation.
fn read_stream(data: &[u8], version: Version, max: usize, piece: impl Fn(usize, usize) -> usize) -> Vec<Step> {
    let mut buf = BytesMut::new();
    let mut steps = Vec::new();
    // `data[pos..fed]` is what `buf` holds.
    let (mut pos, mut fed) = (0, 0);
    loop {
        let end = fed + piece(buf.len(), fed).max(1).min(data.len() - fed);
        buf.extend_from_slice(&data[fed..end]);
        fed = end;
        loop {
            let before = buf.len();
            let (result, held) = alloc_meter::measure(|| decode(&mut buf, max, version));
            let consumed = before - buf.len();
            match result {
                Ok(None) => {
                    assert_eq!(consumed, 0, "Ok(None) consumed bytes");
                    assert_eq!(held, 0, "allocated for a packet not wholly received");
                    break;
                }
                Ok(Some(packet)) => {
                    check_packet_memory(held, consumed, max);
                    check_reencode(&packet, version, &data[pos..pos + consumed]);
                    steps.push(Step::Packet(Box::new(packet), consumed));
                    pos += consumed;
                }
                Err(e) if is_header_error(&e) => {
                    assert_eq!(consumed, 0, "{e:?} consumed bytes");
                    assert_eq!(held, 0, "{e:?} allocated");
                    steps.push(Step::Failed(e));
                    return steps;
                }
                Err(e) => {
                    check_packet_memory(held, consumed, max);
                    steps.push(Step::Failed(e));
                    return steps;
                }
            }
        }
        if fed == data.len() {
            steps.push(Step::Waiting);
            return steps;
        }
    }
}

fn check_packet_memory(held: usize, packet_len: usize, max: usize) {
    assert!(
        (2..=max).contains(&packet_len),
        "consumed {packet_len} bytes under a limit of {max}"
    );
    assert!(
        held <= AMPLIFICATION * packet_len + SLACK,
        "decoding a {packet_len}-byte packet held {held} heap bytes"
    );
}

/// Fixed-header length of a well-formed packet.
fn header_len(wire: &[u8]) -> usize {
    2 + wire[1..].iter().take_while(|&&b| b & 0x80 != 0).count()
}

/// `raw` is exactly the bytes `packet` was decoded from.
fn check_reencode(packet: &Packet, version: Version, raw: &[u8]) {
    let mut wire = BytesMut::new();
    packet
        .encode(&mut wire, version)
        .unwrap_or_else(|e| panic!("decoded {packet:?} does not encode: {e}"));
    assert_eq!(wire.len(), packet.encoded_len(version), "encoded_len of {packet:?}");
    // Same type, flags and body; only the remaining length may have been written longer, and an
    // MQTT 5 acknowledgement, DISCONNECT or AUTH may have dropped a success code or an empty
    // property list from its end (its shortest form).
    assert_eq!(wire[0], raw[0], "first byte of {packet:?}");
    let body = &wire[header_len(&wire)..];
    let raw_body = &raw[header_len(raw)..];
    assert!(raw_body.starts_with(body), "body of {packet:?}");
    let dropped = &raw_body[body.len()..];
    assert!(
        dropped.is_empty() || (version == Version::V5 && dropped.len() <= 2 && dropped.iter().all(|&b| b == 0)),
        "{packet:?} re-encoded without {dropped:02x?}"
    );

    let mut again = BytesMut::from(&wire[..]);
    assert_eq!(
        decode(&mut again, wire.len(), version),
        Ok(Some(packet.clone())),
        "decode(encode(p))"
    );
    assert!(again.is_empty());
    let mut too_small = BytesMut::from(&wire[..]);
    assert_eq!(
        decode(&mut too_small, wire.len() - 1, version),
        Err(CodecError::PacketTooLarge {
            size: wire.len(),
            max: wire.len() - 1
        })
    );
}
