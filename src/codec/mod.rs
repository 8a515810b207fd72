//! MQTT 3.1.1 and 5 packet codec: bytes in, packets out, and back. No I/O.
//!
//! Each packet type has its own file with its read (decode body), write (encode body) and size; this module
//! frames them with the fixed header. One set of packet structs serves both versions: MQTT 5's
//! additions (properties, reason codes, subscription options) are fields that 3.1.1 leaves empty or
//! at success, and encoding them as 3.1.1 is refused rather than silently dropped.
#![forbid(unsafe_code)]

mod ack;
mod connack;
mod connect;
mod disconnect;
mod error;
mod fields;
mod header;
mod mqtt_str;
mod properties;
mod publish;
mod reason;
mod suback;
mod subscribe;
mod unsubscribe;

#[cfg(test)]
mod test_util;

use bytes::{Buf, BufMut, BytesMut};

pub use ack::Ack;
pub use connack::ConnAck;
pub use connect::{Connect, Will};
pub use disconnect::{Auth, Disconnect};
pub use error::CodecError;
pub use mqtt_str::MqttStr;
pub use properties::{Properties, Property, PropertyId, PropertyKind, PropertyValue};
pub use publish::Publish;
pub use reason::ReasonCode;
pub use suback::SubAck;
pub use subscribe::{RetainHandling, Subscribe, SubscribeOptions};
pub use unsubscribe::Unsubscribe;

pub(crate) use header::PacketType;
pub(crate) use properties::Holder;

/// The largest value four remaining-length bytes can hold (section 2.2.3).
pub const MAX_REMAINING_LENGTH: usize = 268_435_455;

/// The protocol a connection speaks, chosen by the client in CONNECT. Named by its protocol
/// level byte (section 3.1.2.2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Version {
    #[default]
    V311 = 4,
    V5 = 5,
}

impl Version {
    pub fn from_level(level: u8) -> Result<Version, CodecError> {
        match level {
            4 => Ok(Version::V311),
            5 => Ok(Version::V5),
            _ => Err(CodecError::UnsupportedProtocolLevel(level)),
        }
    }
}

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
    PubAck(Ack),
    PubRec(Ack),
    PubRel(Ack),
    PubComp(Ack),
    Subscribe(Subscribe),
    SubAck(SubAck),
    Unsubscribe(Unsubscribe),
    /// In 3.1.1 an UNSUBACK carries no codes: `codes` is empty.
    UnsubAck(SubAck),
    PingReq,
    PingResp,
    Disconnect(Disconnect),
    /// MQTT 5 only.
    Auth(Auth),
}

/// What each packet file supplies so that `Packet::encode` can frame it.
trait Encode {
    /// Packet type and fixed-header flags.
    fn first_byte(&self) -> u8;
    /// Everything that can make the packet unencodable in `version`, checked before a byte is written.
    fn validate(&self, version: Version) -> Result<(), CodecError>;
    fn remaining_len(&self, version: Version) -> usize;
    /// Writes exactly `remaining_len(version)` bytes; only called after `validate` passed.
    fn write_body(&self, buf: &mut BytesMut, version: Version);
}

/// A body that several packet types share, with the type it is written as.
struct Typed<'a, T>(PacketType, &'a T);

/// The pings: a fixed header with remaining length 0 (sections 3.12, 3.13).
struct HeaderOnly(PacketType);

impl Encode for HeaderOnly {
    fn first_byte(&self) -> u8 {
        self.0.first_byte()
    }

    fn validate(&self, _: Version) -> Result<(), CodecError> {
        Ok(())
    }

    fn remaining_len(&self, _: Version) -> usize {
        0
    }

    fn write_body(&self, _: &mut BytesMut, _: Version) {}
}

impl Packet {
    /// Appends the packet's wire form in `version` to `buf`. Validates what the client could get wrong: packet
    /// id 0 where one is required (and non-zero pkid on QoS 0 publish), wildcards/empty in a publish topic,
    /// invalid filters, empty SUBSCRIBE/UNSUBSCRIBE, properties a packet may not carry, MQTT 5 fields in a
    /// 3.1.1 packet, remaining length over MAX_REMAINING_LENGTH. On error nothing is appended.
    pub fn encode(&self, buf: &mut BytesMut, version: Version) -> Result<(), CodecError> {
        self.with_encoder(|packet| frame(packet, buf, version, 0, |buf| packet.write_body(buf, version)))
    }

    /// Exact number of bytes `encode` appends (fixed header included), when it succeeds.
    pub fn encoded_len(&self, version: Version) -> usize {
        self.with_encoder(|packet| header::packet_len(packet.remaining_len(version)))
    }

    /// The one place that maps variants to their packet file, so encode and encoded_len cannot disagree.
    fn with_encoder<R>(&self, f: impl FnOnce(&dyn Encode) -> R) -> R {
        match self {
            Packet::Connect(p) => f(p),
            Packet::ConnAck(p) => f(p),
            Packet::Publish(p) => f(p),
            Packet::PubAck(p) => f(&Typed(PacketType::PubAck, p)),
            Packet::PubRec(p) => f(&Typed(PacketType::PubRec, p)),
            Packet::PubRel(p) => f(&Typed(PacketType::PubRel, p)),
            Packet::PubComp(p) => f(&Typed(PacketType::PubComp, p)),
            Packet::Subscribe(p) => f(p),
            Packet::SubAck(p) => f(&Typed(PacketType::SubAck, p)),
            Packet::Unsubscribe(p) => f(p),
            Packet::UnsubAck(p) => f(&Typed(PacketType::UnsubAck, p)),
            Packet::PingReq => f(&HeaderOnly(PacketType::PingReq)),
            Packet::PingResp => f(&HeaderOnly(PacketType::PingResp)),
            Packet::Disconnect(p) => f(&Typed(PacketType::Disconnect, p)),
            Packet::Auth(p) => f(&Typed(PacketType::Auth, p)),
        }
    }
}

impl Publish {
    /// [`Packet::encoded_len`] of this PUBLISH.
    pub fn encoded_len(&self, version: Version) -> usize {
        header::packet_len(self.remaining_len(version))
    }

    /// [`Packet::encode`] for a PUBLISH the caller keeps.
    pub fn encode(&self, buf: &mut BytesMut, version: Version) -> Result<(), CodecError> {
        frame(self, buf, version, 0, |buf| self.write_body(buf, version))
    }

    /// Appends this PUBLISH without its payload, which must follow these bytes on the wire: a
    /// large payload can then be written from the buffer it already lives in (a vectored write)
    /// instead of being copied behind its header. Validates as [`Packet::encode`] does.
    pub fn encode_head(&self, buf: &mut BytesMut, version: Version) -> Result<(), CodecError> {
        frame(self, buf, version, self.payload.len(), |buf| {
            self.write_head(buf, version)
        })
    }
}

/// Validates `packet` and appends its fixed header and the body `write` produces, which is all of
/// the body but its last `detached` bytes. Nothing is appended on error.
fn frame(
    packet: &dyn Encode,
    buf: &mut BytesMut,
    version: Version,
    detached: usize,
    write: impl FnOnce(&mut BytesMut),
) -> Result<(), CodecError> {
    packet.validate(version)?;
    let remaining_len = packet.remaining_len(version);
    if remaining_len > MAX_REMAINING_LENGTH {
        return Err(CodecError::PayloadTooLarge(remaining_len));
    }
    let len = header::packet_len(remaining_len) - detached;
    buf.reserve(len);
    let start = buf.len();
    buf.put_u8(packet.first_byte());
    fields::write_var_int(remaining_len, buf);
    write(buf);
    debug_assert_eq!(buf.len() - start, len);
    Ok(())
}

/// The whole size of the packet that starts `buf` (fixed header included), once its fixed
/// header has arrived: lets a reader make room for a large packet in one step rather than grow
/// its buffer (and copy what it holds) many times. `None` when the header is incomplete or bad;
/// [`decode`] reports the latter.
pub fn pending_packet_len(buf: &[u8], version: Version) -> Option<usize> {
    header::parse(buf, version).ok().flatten().map(|h| h.packet_len())
}

/// Incremental decoder for a connection speaking `version` (a CONNECT is read whatever its level,
/// so a server can learn the version from it): returns Ok(None) when `buf` does not yet hold a whole packet (nothing consumed);
/// otherwise consumes exactly one packet from the front of `buf`. Fields that carry data (topic, payload,
/// password) are zero-copy slices of the consumed bytes (split_to + freeze). Rejects a packet whose total
/// size (fixed header + remaining length) exceeds `max_packet_size` AS SOON AS THE FIXED HEADER IS READ,
/// before the body has arrived, so a hostile length never causes an allocation or a wait.
///
/// Errors in the fixed header leave `buf` untouched; errors in the body consume the packet. Either way the
/// connection should be closed (section 4.8).
pub fn decode(buf: &mut BytesMut, max_packet_size: usize, version: Version) -> Result<Option<Packet>, CodecError> {
    let Some(header) = header::parse(buf, version)? else {
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
    let v = version;
    let t = header.packet_type;
    Ok(Some(match t {
        PacketType::Connect => Packet::Connect(Connect::read(body)?),
        PacketType::ConnAck => Packet::ConnAck(ConnAck::read(body, v)?),
        PacketType::Publish => Packet::Publish(Publish::read(header.flags, body, v)?),
        PacketType::PubAck => Packet::PubAck(Ack::read(body, t, v)?),
        PacketType::PubRec => Packet::PubRec(Ack::read(body, t, v)?),
        PacketType::PubRel => Packet::PubRel(Ack::read(body, t, v)?),
        PacketType::PubComp => Packet::PubComp(Ack::read(body, t, v)?),
        PacketType::Subscribe => Packet::Subscribe(Subscribe::read(body, v)?),
        PacketType::SubAck => Packet::SubAck(SubAck::read(body, t, v)?),
        PacketType::Unsubscribe => Packet::Unsubscribe(Unsubscribe::read(body, v)?),
        PacketType::UnsubAck => Packet::UnsubAck(SubAck::read(body, t, v)?),
        // The header has checked that the pings' remaining length is 0.
        PacketType::PingReq => Packet::PingReq,
        PacketType::PingResp => Packet::PingResp,
        PacketType::Disconnect => Packet::Disconnect(Disconnect::read(body, t, v)?),
        PacketType::Auth => Packet::Auth(Auth::read(body, t, v)?),
    }))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::test_util::{NO_LIMIT, decode_in, decode_one, encode_err, frame};
    use super::*;
    use crate::topic::TopicError;

    fn s(text: &str) -> MqttStr {
        MqttStr::new(text).unwrap()
    }

    /// One packet of every type, some with data, in an order a session could not produce but a codec must
    /// take; in MQTT 5, with properties and reason codes.
    fn every_type(version: Version) -> Vec<Packet> {
        let v5 = version == Version::V5;
        let props = |list: &[(PropertyId, u32)]| {
            let mut p = Properties::new();
            if v5 {
                for &(id, value) in list {
                    p.push_int(id, value).unwrap();
                }
                p.push_user("k", "v").unwrap();
            }
            p
        };
        let reason = |code: ReasonCode| if v5 { code } else { ReasonCode::SUCCESS };
        let ack = |pkid, code| Ack {
            pkid,
            reason: reason(code),
            properties: props(&[]),
        };
        let mut packets = vec![
            Packet::Connect(Connect {
                version,
                clean_session: false,
                keep_alive: 30,
                client_id: s("stream"),
                will: Some(Will {
                    topic: s("will/t"),
                    payload: Bytes::from_static(b"gone"),
                    qos: QoS::ExactlyOnce,
                    retain: true,
                    properties: props(&[(PropertyId::WillDelayInterval, 10)]),
                }),
                username: Some(s("u")),
                password: Some(Bytes::from_static(b"p")),
                properties: props(&[(PropertyId::SessionExpiryInterval, 60), (PropertyId::ReceiveMaximum, 5)]),
            }),
            Packet::ConnAck(ConnAck {
                session_present: true,
                code: ReasonCode::SUCCESS,
                properties: props(&[(PropertyId::TopicAliasMaximum, 8)]),
            }),
            Packet::Publish(Publish {
                dup: false,
                qos: QoS::AtMostOnce,
                retain: true,
                topic: s("a/b"),
                pkid: 0,
                properties: props(&[(PropertyId::TopicAlias, 2), (PropertyId::SubscriptionIdentifier, 9)]),
                payload: Bytes::from(vec![7; 300]),
            }),
            Packet::Publish(Publish {
                dup: true,
                qos: QoS::ExactlyOnce,
                retain: false,
                topic: s("c"),
                pkid: 9,
                properties: Properties::new(),
                payload: Bytes::new(),
            }),
            Packet::PubAck(ack(1, ReasonCode::NO_MATCHING_SUBSCRIBERS)),
            Packet::PubRec(ack(2, ReasonCode::QUOTA_EXCEEDED)),
            Packet::PubRel(ack(3, ReasonCode::PACKET_IDENTIFIER_NOT_FOUND)),
            Packet::PubComp(Ack::new(4)),
            Packet::Subscribe(Subscribe {
                pkid: 5,
                filters: vec![(s("x/#"), QoS::AtLeastOnce.into()), (s("+"), QoS::AtMostOnce.into())],
                properties: props(&[(PropertyId::SubscriptionIdentifier, 1_000_000)]),
            }),
            Packet::SubAck(SubAck {
                pkid: 5,
                codes: vec![ReasonCode::GRANTED_QOS_1, ReasonCode::UNSPECIFIED_ERROR],
                properties: props(&[]),
            }),
            Packet::Unsubscribe(Unsubscribe {
                pkid: 6,
                filters: vec![s("x/#")],
                properties: props(&[]),
            }),
            Packet::UnsubAck(SubAck {
                pkid: 6,
                codes: if v5 {
                    vec![ReasonCode::NO_SUBSCRIPTION_EXISTED]
                } else {
                    vec![]
                },
                properties: props(&[]),
            }),
            Packet::PingReq,
            Packet::PingResp,
            Packet::Disconnect(Disconnect {
                reason: reason(ReasonCode::SERVER_SHUTTING_DOWN),
                properties: props(&[(PropertyId::SessionExpiryInterval, 0)]),
            }),
        ];
        if v5 {
            packets.push(Packet::Auth(Auth {
                reason: ReasonCode::CONTINUE_AUTHENTICATION,
                properties: props(&[]),
            }));
        }
        packets
    }

    const VERSIONS: [Version; 2] = [Version::V311, Version::V5];

    fn encode_all(packets: &[Packet], version: Version) -> Vec<u8> {
        let mut buf = BytesMut::new();
        for p in packets {
            p.encode(&mut buf, version).unwrap();
        }
        let expected: usize = packets.iter().map(|p| p.encoded_len(version)).sum();
        assert_eq!(buf.len(), expected);
        buf.to_vec()
    }

    /// Feeds `wire` in the given chunk sizes, decoding after each chunk as a read loop would.
    fn decode_in_chunks(wire: &[u8], version: Version, chunks: impl IntoIterator<Item = usize>) -> Vec<Packet> {
        let mut buf = BytesMut::new();
        let mut packets = Vec::new();
        let mut fed = 0;
        for chunk in chunks.into_iter().chain([usize::MAX]) {
            let end = fed + chunk.min(wire.len() - fed);
            buf.extend_from_slice(&wire[fed..end]);
            fed = end;
            loop {
                let before = buf.clone();
                match decode(&mut buf, NO_LIMIT, version).unwrap() {
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
        for version in VERSIONS {
            let packets = every_type(version);
            let mut buf = BytesMut::from(&encode_all(&packets, version)[..]);
            for expected in &packets {
                assert_eq!(decode(&mut buf, NO_LIMIT, version).unwrap().as_ref(), Some(expected));
            }
            assert!(buf.is_empty());
            assert_eq!(decode(&mut buf, NO_LIMIT, version), Ok(None));
        }
    }

    #[test]
    fn stream_fed_one_byte_at_a_time() {
        for version in VERSIONS {
            let packets = every_type(version);
            let wire = encode_all(&packets, version);
            assert_eq!(decode_in_chunks(&wire, version, std::iter::repeat(1)), packets);
        }
    }

    #[test]
    fn stream_fed_at_random_split_points() {
        for version in VERSIONS {
            let packets = every_type(version);
            let wire = encode_all(&packets, version);
            // xorshift: reproducible without a dev-dependency.
            let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
            for _ in 0..300 {
                let chunks = std::iter::from_fn(|| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    Some((state % 64) as usize)
                });
                assert_eq!(decode_in_chunks(&wire, version, chunks), packets);
            }
        }
    }

    #[test]
    fn mqtt5_packets_are_refused_or_misread_as_mqtt311() {
        // The versions do not agree on the wire: what a 3.1.1 reader makes of an MQTT 5 packet is
        // an error, or at best another packet, never the same one. (A CONNECT names its version,
        // and the pings, and success without properties, are the same in both.)
        let packets = every_type(Version::V5);
        for p in &packets {
            let mut buf = BytesMut::new();
            p.encode(&mut buf, Version::V5).unwrap();
            let mut as_311 = BytesMut::new();
            if matches!(p, Packet::Connect(_)) || p.encode(&mut as_311, Version::V311).is_ok_and(|()| as_311 == buf) {
                continue;
            }
            let read = decode(&mut buf, NO_LIMIT, Version::V311);
            assert_ne!(read.as_ref().ok().and_then(|p| p.as_ref()), Some(p), "{p:?}");
        }
    }

    #[test]
    fn oversized_packet_is_refused_from_the_fixed_header_alone() {
        let mut buf = BytesMut::with_capacity(5);
        buf.extend_from_slice(&[0x30, 0xFF, 0xFF, 0xFF, 0x7F]);
        let capacity = buf.capacity();
        assert_eq!(
            decode(&mut buf, 1024, Version::V311),
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
        let wire = Packet::PubAck(Ack::new(1)).encode_to_vec();
        assert_eq!(wire.len(), 4);
        let mut buf = BytesMut::from(&wire[..]);
        assert_eq!(
            decode(&mut buf, 3, Version::V311),
            Err(CodecError::PacketTooLarge { size: 4, max: 3 })
        );
        assert_eq!(
            decode(&mut buf, 4, Version::V311),
            Ok(Some(Packet::PubAck(Ack::new(1))))
        );
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
            assert!(decode(&mut buf, NO_LIMIT, Version::V311).is_err());
            assert_eq!(&buf[..], wire);
        }
    }

    #[test]
    fn encode_appends_after_existing_content() {
        let mut buf = BytesMut::from(&b"xy"[..]);
        Packet::PingReq.encode(&mut buf, Version::V311).unwrap();
        Packet::Disconnect(Disconnect::default())
            .encode(&mut buf, Version::V5)
            .unwrap();
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
            self.encode(&mut buf, Version::V311).unwrap();
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
            CodecError::InvalidReasonCode { .. } => "InvalidReasonCode",
            CodecError::NoFilters => "NoFilters",
            CodecError::InvalidSubscribeOptions(_) => "InvalidSubscribeOptions",
            CodecError::Truncated => "Truncated",
            CodecError::TrailingBytes => "TrailingBytes",
            CodecError::PayloadTooLarge(_) => "PayloadTooLarge",
            CodecError::MalformedVarInt => "MalformedVarInt",
            CodecError::InvalidPropertyId(_) => "InvalidPropertyId",
            CodecError::InvalidPropertyValue { .. } => "InvalidPropertyValue",
            CodecError::PropertyTypeMismatch(_) => "PropertyTypeMismatch",
            CodecError::PropertyNotAllowed { .. } => "PropertyNotAllowed",
            CodecError::DuplicateProperty(_) => "DuplicateProperty",
            CodecError::NotInMqtt311(_) => "NotInMqtt311",
        }
    }

    #[test]
    fn every_error_variant_has_a_hand_made_trigger() {
        const VARIANTS: usize = 31;
        let publish_to = |topic: &str, qos: QoS, pkid: u16, payload: Bytes| {
            Packet::Publish(Publish {
                dup: false,
                qos,
                retain: false,
                topic: s(topic),
                pkid,
                properties: Properties::new(),
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
        let decoded_v5 = |wire: &[u8]| decode_in(wire, Version::V5).unwrap_err();
        let mut no_limit_header = BytesMut::from(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F][..]);
        let mut small_limit = BytesMut::from(&[0x30, 0x0A][..]);
        let cases = [
            (
                decode(&mut no_limit_header, NO_LIMIT, Version::V311).unwrap_err(),
                CodecError::MalformedRemainingLength,
            ),
            (
                decode(&mut small_limit, 5, Version::V311).unwrap_err(),
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
                    version: Version::V311,
                    clean_session: true,
                    keep_alive: 0,
                    client_id: s("c"),
                    will: None,
                    username: Some(s("u")),
                    password: Some(Bytes::from(vec![0; 65_536])),
                    properties: Properties::new(),
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
                connect(0x02, 6, b"MQTT", b"\x00\x01c"),
                CodecError::UnsupportedProtocolLevel(6),
            ),
            (
                connect(0x01, 4, b"MQTT", b"\x00\x01c"),
                CodecError::InvalidConnectFlags(0x01),
            ),
            (decoded(&[0x20, 0x02, 0x02, 0x00]), CodecError::InvalidConnAckFlags(2)),
            (
                decoded(&[0x90, 0x03, 0x00, 0x01, 0x03]),
                CodecError::InvalidReasonCode {
                    packet_type: 9,
                    code: 3,
                },
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
            (decoded_v5(&[0xE0, 0x03, 0x00, 0x80, 0x00]), CodecError::MalformedVarInt),
            (
                decoded_v5(&[0xE0, 0x03, 0x00, 0x01, 0x7F]),
                CodecError::InvalidPropertyId(0x7F),
            ),
            (
                Properties::new().push_str(PropertyId::ReceiveMaximum, "x").unwrap_err(),
                CodecError::PropertyTypeMismatch(0x21),
            ),
            (
                decoded_v5(&[0xE0, 0x05, 0x00, 0x03, 0x21, 0x00, 0x00]),
                CodecError::InvalidPropertyValue { id: 0x21, value: 0 },
            ),
            (
                decoded_v5(&[0xE0, 0x05, 0x00, 0x03, 0x21, 0x00, 0x01]),
                CodecError::PropertyNotAllowed {
                    id: 0x21,
                    packet_type: 14,
                },
            ),
            (
                decoded_v5(&[0xE0, 0x08, 0x00, 0x06, 0x1C, 0x00, 0x00, 0x1C, 0x00, 0x00]),
                CodecError::DuplicateProperty(0x1C),
            ),
            (
                encode_err(&Packet::Auth(Auth::default())),
                CodecError::NotInMqtt311("AUTH"),
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
