//! MQTT 3.1.1 packet codec: bytes in, packets out, and back. No I/O.
//!
//! Each packet type has its own file with its read (decode body), write (encode body) and size; this module
//! frames them with the fixed header. MQTT 5 will add properties to the packet structs and a protocol
//! version to `decode`; nothing here assumes there will never be one.

mod ack;
mod connack;
mod connect;
mod error;
mod fields;
mod header;
mod header_only;
mod mqtt_str;
mod publish;
mod suback;
mod subscribe;
mod unsubscribe;

#[cfg(test)]
mod test_util;

use bytes::{Buf, BufMut, BytesMut};

pub use connack::{ConnAck, ConnectReturnCode};
pub use connect::{Connect, Will};
pub use error::CodecError;
pub use mqtt_str::MqttStr;
pub use publish::Publish;
pub use suback::{SubAck, SubAckCode};
pub use subscribe::Subscribe;
pub use unsubscribe::Unsubscribe;

use ack::PacketIdOnly;
use header::PacketType;
use header_only::HeaderOnly;

/// The largest value four remaining-length bytes can hold (section 2.2.3).
pub const MAX_REMAINING_LENGTH: usize = 268_435_455;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum QoS {
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

impl QoS {
    pub fn from_u8(v: u8) -> Result<QoS, CodecError> {
        match v {
            0 => Ok(QoS::AtMostOnce),
            1 => Ok(QoS::AtLeastOnce),
            2 => Ok(QoS::ExactlyOnce),
            _ => Err(CodecError::InvalidQoS(v)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    Connect(Connect),
    ConnAck(ConnAck),
    Publish(Publish),
    PubAck(u16),
    PubRec(u16),
    PubRel(u16),
    PubComp(u16),
    Subscribe(Subscribe),
    SubAck(SubAck),
    Unsubscribe(Unsubscribe),
    UnsubAck(u16),
    PingReq,
    PingResp,
    Disconnect,
}

/// What each packet file supplies so that `Packet::encode` can frame it.
trait Encode {
    /// Packet type and fixed-header flags.
    fn first_byte(&self) -> u8;
    /// Everything that can make the packet unencodable, checked before a byte is written.
    fn validate(&self) -> Result<(), CodecError>;
    fn remaining_len(&self) -> usize;
    /// Writes exactly `remaining_len()` bytes; only called after `validate` passed.
    fn write_body(&self, buf: &mut BytesMut);
}

impl Packet {
    /// Appends the packet's wire form to `buf`. Validates what the client could get wrong: packet id 0 where one
    /// is required (and non-zero pkid on QoS 0 publish), wildcards/empty in a publish topic, invalid filters, empty
    /// SUBSCRIBE/UNSUBSCRIBE, remaining length over MAX_REMAINING_LENGTH. On error nothing is appended.
    pub fn encode(&self, buf: &mut BytesMut) -> Result<(), CodecError> {
        self.with_encoder(|packet| frame(packet, buf, 0, |buf| packet.write_body(buf)))
    }

    /// Exact number of bytes `encode` appends (fixed header included), when it succeeds.
    pub fn encoded_len(&self) -> usize {
        self.with_encoder(|packet| header::packet_len(packet.remaining_len()))
    }

    /// The one place that maps variants to their packet file, so encode and encoded_len cannot disagree.
    fn with_encoder<R>(&self, f: impl FnOnce(&dyn Encode) -> R) -> R {
        match self {
            Packet::Connect(p) => f(p),
            Packet::ConnAck(p) => f(p),
            Packet::Publish(p) => f(p),
            Packet::PubAck(pkid) => f(&PacketIdOnly::new(PacketType::PubAck, *pkid)),
            Packet::PubRec(pkid) => f(&PacketIdOnly::new(PacketType::PubRec, *pkid)),
            Packet::PubRel(pkid) => f(&PacketIdOnly::new(PacketType::PubRel, *pkid)),
            Packet::PubComp(pkid) => f(&PacketIdOnly::new(PacketType::PubComp, *pkid)),
            Packet::Subscribe(p) => f(p),
            Packet::SubAck(p) => f(p),
            Packet::Unsubscribe(p) => f(p),
            Packet::UnsubAck(pkid) => f(&PacketIdOnly::new(PacketType::UnsubAck, *pkid)),
            Packet::PingReq => f(&HeaderOnly(PacketType::PingReq)),
            Packet::PingResp => f(&HeaderOnly(PacketType::PingResp)),
            Packet::Disconnect => f(&HeaderOnly(PacketType::Disconnect)),
        }
    }
}

impl Publish {
    /// [`Packet::encode`] for a PUBLISH the caller keeps.
    pub fn encode(&self, buf: &mut BytesMut) -> Result<(), CodecError> {
        frame(self, buf, 0, |buf| self.write_body(buf))
    }

    /// Appends this PUBLISH without its payload, which must follow these bytes on the wire: a
    /// large payload can then be written from the buffer it already lives in (a vectored write)
    /// instead of being copied behind its header. Validates as [`Packet::encode`] does.
    pub fn encode_head(&self, buf: &mut BytesMut) -> Result<(), CodecError> {
        frame(self, buf, self.payload.len(), |buf| self.write_head(buf))
    }
}

/// Validates `packet` and appends its fixed header and the body `write` produces, which is all of
/// the body but its last `detached` bytes. Nothing is appended on error.
fn frame(
    packet: &dyn Encode,
    buf: &mut BytesMut,
    detached: usize,
    write: impl FnOnce(&mut BytesMut),
) -> Result<(), CodecError> {
    packet.validate()?;
    let remaining_len = packet.remaining_len();
    if remaining_len > MAX_REMAINING_LENGTH {
        return Err(CodecError::PayloadTooLarge(remaining_len));
    }
    let len = header::packet_len(remaining_len) - detached;
    buf.reserve(len);
    let start = buf.len();
    buf.put_u8(packet.first_byte());
    header::write_remaining_length(remaining_len, buf);
    write(buf);
    debug_assert_eq!(buf.len() - start, len);
    Ok(())
}

/// The whole size of the packet that starts `buf` (fixed header included), once its fixed
/// header has arrived: lets a reader make room for a large packet in one step rather than grow
/// its buffer (and copy what it holds) many times. `None` when the header is incomplete or bad;
/// [`decode`] reports the latter.
pub fn pending_packet_len(buf: &[u8]) -> Option<usize> {
    header::parse(buf).ok().flatten().map(|h| h.packet_len())
}

/// Incremental decoder: returns Ok(None) when `buf` does not yet hold a whole packet (nothing consumed);
/// otherwise consumes exactly one packet from the front of `buf`. Fields that carry data (topic, payload,
/// password) are zero-copy slices of the consumed bytes (split_to + freeze). Rejects a packet whose total
/// size (fixed header + remaining length) exceeds `max_packet_size` AS SOON AS THE FIXED HEADER IS READ,
/// before the body has arrived, so a hostile length never causes an allocation or a wait.
///
/// Errors in the fixed header leave `buf` untouched; errors in the body consume the packet. Either way the
/// connection should be closed (section 4.8).
pub fn decode(buf: &mut BytesMut, max_packet_size: usize) -> Result<Option<Packet>, CodecError> {
    let Some(header) = header::parse(buf)? else {
        return Ok(None);
    };
    let size = header.packet_len();
    if size > max_packet_size {
        return Err(CodecError::PacketTooLarge {
            size,
            max: max_packet_size,
        });
    }
    if buf.len() < size {
        // Not reserving here on purpose: the caller's read loop decides how its buffer grows.
        return Ok(None);
    }
    let mut body = buf.split_to(size).freeze();
    body.advance(header.header_len);
    Ok(Some(match header.packet_type {
        PacketType::Connect => Packet::Connect(Connect::read(body)?),
        PacketType::ConnAck => Packet::ConnAck(ConnAck::read(body)?),
        PacketType::Publish => Packet::Publish(Publish::read(header.flags, body)?),
        PacketType::PubAck => Packet::PubAck(ack::read(body)?),
        PacketType::PubRec => Packet::PubRec(ack::read(body)?),
        PacketType::PubRel => Packet::PubRel(ack::read(body)?),
        PacketType::PubComp => Packet::PubComp(ack::read(body)?),
        PacketType::Subscribe => Packet::Subscribe(Subscribe::read(body)?),
        PacketType::SubAck => Packet::SubAck(SubAck::read(body)?),
        PacketType::Unsubscribe => Packet::Unsubscribe(Unsubscribe::read(body)?),
        PacketType::UnsubAck => Packet::UnsubAck(ack::read(body)?),
        PacketType::PingReq => header_only::read(&body).map(|()| Packet::PingReq)?,
        PacketType::PingResp => header_only::read(&body).map(|()| Packet::PingResp)?,
        PacketType::Disconnect => header_only::read(&body).map(|()| Packet::Disconnect)?,
    }))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::test_util::{NO_LIMIT, decode_one, encode_err, frame};
    use super::*;
    use crate::topic::TopicError;

    fn s(text: &str) -> MqttStr {
        MqttStr::new(text).unwrap()
    }

    /// One packet of every type, some with data, in an order a session could not produce but a codec must take.
    fn every_type() -> Vec<Packet> {
        vec![
            Packet::Connect(Connect {
                protocol_level: 4,
                clean_session: false,
                keep_alive: 30,
                client_id: s("stream"),
                will: Some(Will {
                    topic: s("will/t"),
                    payload: Bytes::from_static(b"gone"),
                    qos: QoS::ExactlyOnce,
                    retain: true,
                }),
                username: Some(s("u")),
                password: Some(Bytes::from_static(b"p")),
            }),
            Packet::ConnAck(ConnAck {
                session_present: true,
                code: ConnectReturnCode::Accepted,
            }),
            Packet::Publish(Publish {
                dup: false,
                qos: QoS::AtMostOnce,
                retain: true,
                topic: s("a/b"),
                pkid: 0,
                payload: Bytes::from(vec![7; 300]),
            }),
            Packet::Publish(Publish {
                dup: true,
                qos: QoS::ExactlyOnce,
                retain: false,
                topic: s("c"),
                pkid: 9,
                payload: Bytes::new(),
            }),
            Packet::PubAck(1),
            Packet::PubRec(2),
            Packet::PubRel(3),
            Packet::PubComp(4),
            Packet::Subscribe(Subscribe {
                pkid: 5,
                filters: vec![(s("x/#"), QoS::AtLeastOnce), (s("+"), QoS::AtMostOnce)],
            }),
            Packet::SubAck(SubAck {
                pkid: 5,
                codes: vec![SubAckCode::Granted(QoS::AtLeastOnce), SubAckCode::Failure],
            }),
            Packet::Unsubscribe(Unsubscribe {
                pkid: 6,
                filters: vec![s("x/#")],
            }),
            Packet::UnsubAck(6),
            Packet::PingReq,
            Packet::PingResp,
            Packet::Disconnect,
        ]
    }

    fn encode_all(packets: &[Packet]) -> Vec<u8> {
        let mut buf = BytesMut::new();
        for p in packets {
            p.encode(&mut buf).unwrap();
        }
        let expected: usize = packets.iter().map(Packet::encoded_len).sum();
        assert_eq!(buf.len(), expected);
        buf.to_vec()
    }

    /// Feeds `wire` in the given chunk sizes, decoding after each chunk as a read loop would.
    fn decode_in_chunks(wire: &[u8], chunks: impl IntoIterator<Item = usize>) -> Vec<Packet> {
        let mut buf = BytesMut::new();
        let mut packets = Vec::new();
        let mut fed = 0;
        for chunk in chunks.into_iter().chain([usize::MAX]) {
            let end = fed + chunk.min(wire.len() - fed);
            buf.extend_from_slice(&wire[fed..end]);
            fed = end;
            loop {
                let before = buf.clone();
                match decode(&mut buf, NO_LIMIT).unwrap() {
                    Some(p) => packets.push(p),
                    None => {
                        assert_eq!(buf, before, "Ok(None) must consume nothing");
                        break;
                    }
                }
            }
            if fed == wire.len() {
                break;
            }
        }
        assert!(buf.is_empty());
        packets
    }

    #[test]
    fn several_packets_in_one_buffer() {
        let packets = every_type();
        let mut buf = BytesMut::from(&encode_all(&packets)[..]);
        for expected in &packets {
            assert_eq!(decode(&mut buf, NO_LIMIT).unwrap().as_ref(), Some(expected));
        }
        assert!(buf.is_empty());
        assert_eq!(decode(&mut buf, NO_LIMIT), Ok(None));
    }

    #[test]
    fn stream_fed_one_byte_at_a_time() {
        let packets = every_type();
        let wire = encode_all(&packets);
        assert_eq!(decode_in_chunks(&wire, std::iter::repeat(1)), packets);
    }

    #[test]
    fn stream_fed_at_random_split_points() {
        let packets = every_type();
        let wire = encode_all(&packets);
        // xorshift: reproducible without a dev-dependency.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..300 {
            let chunks = std::iter::from_fn(|| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                Some((state % 64) as usize)
            });
            assert_eq!(decode_in_chunks(&wire, chunks), packets);
        }
    }

    #[test]
    fn oversized_packet_is_refused_from_the_fixed_header_alone() {
        let mut buf = BytesMut::with_capacity(5);
        buf.extend_from_slice(&[0x30, 0xFF, 0xFF, 0xFF, 0x7F]);
        let capacity = buf.capacity();
        assert_eq!(
            decode(&mut buf, 1024),
            Err(CodecError::PacketTooLarge {
                size: 5 + MAX_REMAINING_LENGTH,
                max: 1024
            })
        );
        assert_eq!(&buf[..], &[0x30, 0xFF, 0xFF, 0xFF, 0x7F]);
        assert_eq!(buf.capacity(), capacity, "decode must not grow the buffer");
    }

    #[test]
    fn max_packet_size_counts_the_fixed_header() {
        let wire = Packet::PubAck(1).encode_to_vec();
        assert_eq!(wire.len(), 4);
        let mut buf = BytesMut::from(&wire[..]);
        assert_eq!(decode(&mut buf, 3), Err(CodecError::PacketTooLarge { size: 4, max: 3 }));
        assert_eq!(decode(&mut buf, 4), Ok(Some(Packet::PubAck(1))));
    }

    #[test]
    fn header_errors_leave_the_buffer_untouched() {
        for wire in [
            &[0x00, 0x00][..],
            &[0x80, 0x00],
            &[0x30, 0x80, 0x80, 0x80, 0x80],
            &[0x40, 0xC0, 0x84, 0x3D],
        ] {
            let mut buf = BytesMut::from(wire);
            assert!(decode(&mut buf, NO_LIMIT).is_err());
            assert_eq!(&buf[..], wire);
        }
    }

    #[test]
    fn encode_appends_after_existing_content() {
        let mut buf = BytesMut::from(&b"xy"[..]);
        Packet::PingReq.encode(&mut buf).unwrap();
        Packet::Disconnect.encode(&mut buf).unwrap();
        assert_eq!(&buf[..], b"xy\xC0\x00\xE0\x00");
    }

    #[test]
    fn qos_from_u8() {
        assert_eq!(QoS::from_u8(0), Ok(QoS::AtMostOnce));
        assert_eq!(QoS::from_u8(1), Ok(QoS::AtLeastOnce));
        assert_eq!(QoS::from_u8(2), Ok(QoS::ExactlyOnce));
        assert_eq!(QoS::from_u8(3), Err(CodecError::InvalidQoS(3)));
        assert_eq!(QoS::from_u8(255), Err(CodecError::InvalidQoS(255)));
    }

    impl Packet {
        fn encode_to_vec(&self) -> Vec<u8> {
            let mut buf = BytesMut::new();
            self.encode(&mut buf).unwrap();
            buf.to_vec()
        }
    }

    /// Exhaustive, so a new variant fails to compile here until it gets a trigger below.
    fn variant_name(e: &CodecError) -> &'static str {
        match e {
            CodecError::MalformedRemainingLength => "MalformedRemainingLength",
            CodecError::PacketTooLarge { .. } => "PacketTooLarge",
            CodecError::InvalidPacketType(_) => "InvalidPacketType",
            CodecError::InvalidRemainingLength { .. } => "InvalidRemainingLength",
            CodecError::ReservedFlags { .. } => "ReservedFlags",
            CodecError::InvalidQoS(_) => "InvalidQoS",
            CodecError::DupOnQoS0 => "DupOnQoS0",
            CodecError::PacketIdOnQoS0(_) => "PacketIdOnQoS0",
            CodecError::InvalidUtf8 => "InvalidUtf8",
            CodecError::NulInString => "NulInString",
            CodecError::StringTooLong(_) => "StringTooLong",
            CodecError::BinaryTooLong(_) => "BinaryTooLong",
            CodecError::ZeroPacketId => "ZeroPacketId",
            CodecError::Topic(_) => "Topic",
            CodecError::InvalidProtocolName => "InvalidProtocolName",
            CodecError::UnsupportedProtocolLevel(_) => "UnsupportedProtocolLevel",
            CodecError::InvalidConnectFlags(_) => "InvalidConnectFlags",
            CodecError::InvalidConnAckFlags(_) => "InvalidConnAckFlags",
            CodecError::InvalidConnectReturnCode(_) => "InvalidConnectReturnCode",
            CodecError::InvalidSubAckCode(_) => "InvalidSubAckCode",
            CodecError::NoFilters => "NoFilters",
            CodecError::InvalidSubscribeOptions(_) => "InvalidSubscribeOptions",
            CodecError::Truncated => "Truncated",
            CodecError::TrailingBytes => "TrailingBytes",
            CodecError::PayloadTooLarge(_) => "PayloadTooLarge",
        }
    }

    #[test]
    fn every_error_variant_has_a_hand_made_trigger() {
        const VARIANTS: usize = 25;
        let publish_to = |topic: &str, qos: QoS, pkid: u16, payload: Bytes| {
            Packet::Publish(Publish {
                dup: false,
                qos,
                retain: false,
                topic: s(topic),
                pkid,
                payload,
            })
        };
        let connect = |flags: u8, level: u8, name: &[u8], payload: &[u8]| {
            let mut body = vec![0, name.len() as u8];
            body.extend_from_slice(name);
            body.extend_from_slice(&[level, flags, 0, 60]);
            body.extend_from_slice(payload);
            decode_one(&frame(0x10, &body)).unwrap_err()
        };
        let decoded = |wire: &[u8]| decode_one(wire).unwrap_err();
        let mut no_limit_header = BytesMut::from(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F][..]);
        let mut small_limit = BytesMut::from(&[0x30, 0x0A][..]);
        let cases = [
            (
                decode(&mut no_limit_header, NO_LIMIT).unwrap_err(),
                CodecError::MalformedRemainingLength,
            ),
            (
                decode(&mut small_limit, 5).unwrap_err(),
                CodecError::PacketTooLarge { size: 12, max: 5 },
            ),
            (decoded(&[0xF0, 0x00]), CodecError::InvalidPacketType(15)),
            (
                decoded(&[0xC0, 0x01, 0x00]),
                CodecError::InvalidRemainingLength {
                    packet_type: 12,
                    remaining_len: 1,
                    expected: 0,
                },
            ),
            (
                decoded(&[0x41, 0x02, 0x00, 0x01]),
                CodecError::ReservedFlags {
                    packet_type: 4,
                    flags: 1,
                },
            ),
            (decoded(&frame(0x36, b"\x00\x01t\x00\x01")), CodecError::InvalidQoS(3)),
            (decoded(&frame(0x38, b"\x00\x01t")), CodecError::DupOnQoS0),
            (
                encode_err(&publish_to("t", QoS::AtMostOnce, 3, Bytes::new())),
                CodecError::PacketIdOnQoS0(3),
            ),
            (decoded(&frame(0x30, b"\x00\x02\xC0\x80")), CodecError::InvalidUtf8),
            (decoded(&frame(0x30, b"\x00\x01\x00")), CodecError::NulInString),
            (
                MqttStr::new(&"a".repeat(65_536)).unwrap_err(),
                CodecError::StringTooLong(65_536),
            ),
            (
                encode_err(&Packet::Connect(Connect {
                    protocol_level: 4,
                    clean_session: true,
                    keep_alive: 0,
                    client_id: s("c"),
                    will: None,
                    username: Some(s("u")),
                    password: Some(Bytes::from(vec![0; 65_536])),
                })),
                CodecError::BinaryTooLong(65_536),
            ),
            (decoded(&[0x40, 0x02, 0x00, 0x00]), CodecError::ZeroPacketId),
            (
                decoded(&frame(0x30, b"\x00\x03a/+")),
                CodecError::Topic(TopicError::WildcardInName),
            ),
            (connect(0x02, 4, b"MQTX", b"\x00\x01c"), CodecError::InvalidProtocolName),
            (
                connect(0x02, 5, b"MQTT", b"\x00\x01c"),
                CodecError::UnsupportedProtocolLevel(5),
            ),
            (
                connect(0x01, 4, b"MQTT", b"\x00\x01c"),
                CodecError::InvalidConnectFlags(0x01),
            ),
            (decoded(&[0x20, 0x02, 0x02, 0x00]), CodecError::InvalidConnAckFlags(2)),
            (
                decoded(&[0x20, 0x02, 0x00, 0x06]),
                CodecError::InvalidConnectReturnCode(6),
            ),
            (
                decoded(&[0x90, 0x03, 0x00, 0x01, 0x03]),
                CodecError::InvalidSubAckCode(3),
            ),
            (decoded(&[0x82, 0x02, 0x00, 0x01]), CodecError::NoFilters),
            (
                decoded(&frame(0x82, b"\x00\x01\x00\x01a\x04")),
                CodecError::InvalidSubscribeOptions(4),
            ),
            (decoded(&[0x90, 0x01, 0x00]), CodecError::Truncated),
            (connect(0x02, 4, b"MQTT", b"\x00\x01cX"), CodecError::TrailingBytes),
            (
                encode_err(&publish_to(
                    "t",
                    QoS::AtMostOnce,
                    0,
                    Bytes::from(vec![0; MAX_REMAINING_LENGTH]),
                )),
                CodecError::PayloadTooLarge(MAX_REMAINING_LENGTH + 3),
            ),
        ];
        for (got, expected) in &cases {
            assert_eq!(got, expected);
            assert!(!got.to_string().is_empty());
        }
        let covered: std::collections::HashSet<_> = cases.iter().map(|(e, _)| variant_name(e)).collect();
        assert_eq!(covered.len(), VARIANTS);
        assert_eq!(cases.len(), VARIANTS);
    }
}
