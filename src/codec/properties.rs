//! MQTT 5 properties (section 2.2.2): a length-prefixed list of (identifier, value) pairs that
//! most packets carry after their variable header. In 3.1.1 no packet has any.
//!
//! One table, [`PropertyId::spec`], says each identifier's value type, the packets it may appear
//! in and whether it may repeat; reading, validating and writing all consult it, so they cannot
//! disagree about a property.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use super::fields::{
    MAX_VAR_INT, check_binary_len, field_len, read_binary, read_str, read_u8, read_u16, read_u32, read_var_int,
    var_int_len, write_field, write_var_int,
};
use super::header::PacketType;
use super::{CodecError, MqttStr, Version};

/// How a property's value is encoded (section 2.2.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropertyKind {
    Byte,
    TwoByteInt,
    FourByteInt,
    VarInt,
    Str,
    Binary,
    /// A UTF-8 string pair: only User Property.
    StrPair,
}

/// Every property identifier MQTT 5 defines (table 2-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum PropertyId {
    PayloadFormatIndicator = 0x01,
    MessageExpiryInterval = 0x02,
    ContentType = 0x03,
    ResponseTopic = 0x08,
    CorrelationData = 0x09,
    SubscriptionIdentifier = 0x0B,
    SessionExpiryInterval = 0x11,
    AssignedClientIdentifier = 0x12,
    ServerKeepAlive = 0x13,
    AuthenticationMethod = 0x15,
    AuthenticationData = 0x16,
    RequestProblemInformation = 0x17,
    WillDelayInterval = 0x18,
    RequestResponseInformation = 0x19,
    ResponseInformation = 0x1A,
    ServerReference = 0x1C,
    ReasonString = 0x1F,
    ReceiveMaximum = 0x21,
    TopicAliasMaximum = 0x22,
    TopicAlias = 0x23,
    MaximumQoS = 0x24,
    RetainAvailable = 0x25,
    UserProperty = 0x26,
    MaximumPacketSize = 0x27,
    WildcardSubscriptionAvailable = 0x28,
    SubscriptionIdentifierAvailable = 0x29,
    SharedSubscriptionAvailable = 0x2A,
}

/// Where a property list sits: a packet, or the will properties of a CONNECT (section 3.1.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Holder {
    Packet(PacketType),
    Will,
}

impl Holder {
    /// Bit in [`Spec::holders`]: the packet type's number, and 0 (a reserved type) for the will.
    fn bit(self) -> u16 {
        match self {
            Holder::Packet(t) => 1 << (t as u8),
            Holder::Will => 1,
        }
    }

    /// How errors name the holder: the packet type, 0 for will properties.
    pub(crate) fn code(self) -> u8 {
        match self {
            Holder::Packet(t) => t as u8,
            Holder::Will => 0,
        }
    }
}

/// What table 2-4 and the packet sections say of one identifier.
struct Spec {
    kind: PropertyKind,
    /// Set of [`Holder::bit`]s.
    holders: u16,
    /// User Property anywhere, Subscription Identifier in PUBLISH (several when a message matches
    /// several subscriptions, section 3.3.2.3.8); every other property at most once (the packet
    /// sections call a repeat a protocol error).
    repeats_in: u16,
    /// Values outside this range are a protocol error: 0 for Receive Maximum, Maximum Packet Size,
    /// Topic Alias and Subscription Identifier (sections 3.1.2.11.3, 3.1.2.11.4, 3.3.2.3.4,
    /// 3.3.2.3.8), anything but 0 or 1 for the byte-sized booleans (3.2.2.3.4 and its neighbours;
    /// the spec defines no other value of Payload Format Indicator either).
    min: u32,
    max: u32,
}

const fn bits(holders: &[Holder]) -> u16 {
    let mut mask = 0;
    let mut i = 0;
    while i < holders.len() {
        mask |= match holders[i] {
            Holder::Packet(t) => 1 << (t as u8),
            Holder::Will => 1,
        };
        i += 1;
    }
    mask
}

use Holder::{Packet as P, Will as W};
use PacketType::*;

const ACKS: [Holder; 4] = [P(PubAck), P(PubRec), P(PubRel), P(PubComp)];
const PUBLISH_AND_WILL: u16 = bits(&[P(Publish), W]);
const EVERY_HOLDER_BUT_PINGS: u16 = bits(&[
    P(Connect),
    P(ConnAck),
    P(Publish),
    W,
    ACKS[0],
    ACKS[1],
    ACKS[2],
    ACKS[3],
    P(Subscribe),
    P(SubAck),
    P(Unsubscribe),
    P(UnsubAck),
    P(Disconnect),
    P(Auth),
]);

impl PropertyId {
    pub fn from_u8(v: u8) -> Option<PropertyId> {
        use PropertyId::*;
        Some(match v {
            0x01 => PayloadFormatIndicator,
            0x02 => MessageExpiryInterval,
            0x03 => ContentType,
            0x08 => ResponseTopic,
            0x09 => CorrelationData,
            0x0B => SubscriptionIdentifier,
            0x11 => SessionExpiryInterval,
            0x12 => AssignedClientIdentifier,
            0x13 => ServerKeepAlive,
            0x15 => AuthenticationMethod,
            0x16 => AuthenticationData,
            0x17 => RequestProblemInformation,
            0x18 => WillDelayInterval,
            0x19 => RequestResponseInformation,
            0x1A => ResponseInformation,
            0x1C => ServerReference,
            0x1F => ReasonString,
            0x21 => ReceiveMaximum,
            0x22 => TopicAliasMaximum,
            0x23 => TopicAlias,
            0x24 => MaximumQoS,
            0x25 => RetainAvailable,
            0x26 => UserProperty,
            0x27 => MaximumPacketSize,
            0x28 => WildcardSubscriptionAvailable,
            0x29 => SubscriptionIdentifierAvailable,
            0x2A => SharedSubscriptionAvailable,
            _ => return None,
        })
    }

    /// Every identifier, in numeric order.
    pub const ALL: [PropertyId; 27] = {
        use PropertyId::*;
        [
            PayloadFormatIndicator,
            MessageExpiryInterval,
            ContentType,
            ResponseTopic,
            CorrelationData,
            SubscriptionIdentifier,
            SessionExpiryInterval,
            AssignedClientIdentifier,
            ServerKeepAlive,
            AuthenticationMethod,
            AuthenticationData,
            RequestProblemInformation,
            WillDelayInterval,
            RequestResponseInformation,
            ResponseInformation,
            ServerReference,
            ReasonString,
            ReceiveMaximum,
            TopicAliasMaximum,
            TopicAlias,
            MaximumQoS,
            RetainAvailable,
            UserProperty,
            MaximumPacketSize,
            WildcardSubscriptionAvailable,
            SubscriptionIdentifierAvailable,
            SharedSubscriptionAvailable,
        ]
    };

    fn spec(self) -> Spec {
        use PropertyId::*;
        use PropertyKind::*;
        let spec = |kind, holders: u16| {
            let max = match kind {
                Byte => u32::from(u8::MAX),
                TwoByteInt => u32::from(u16::MAX),
                VarInt => MAX_VAR_INT,
                _ => u32::MAX,
            };
            Spec {
                kind,
                holders,
                repeats_in: 0,
                min: 0,
                max,
            }
        };
        // Booleans sent as a byte: any other value is a protocol error.
        let flag = |holders| Spec {
            max: 1,
            ..spec(Byte, holders)
        };
        // Counts and sizes whose 0 would mean "nothing is allowed", which the spec forbids.
        let nonzero = |kind, holders| Spec {
            min: 1,
            ..spec(kind, holders)
        };
        match self {
            PayloadFormatIndicator => flag(PUBLISH_AND_WILL),
            MessageExpiryInterval => spec(FourByteInt, PUBLISH_AND_WILL),
            ContentType | ResponseTopic => spec(Str, PUBLISH_AND_WILL),
            CorrelationData => spec(Binary, PUBLISH_AND_WILL),
            SubscriptionIdentifier => Spec {
                repeats_in: bits(&[P(Publish)]),
                ..nonzero(VarInt, bits(&[P(Publish), P(Subscribe)]))
            },
            SessionExpiryInterval => spec(FourByteInt, bits(&[P(Connect), P(ConnAck), P(Disconnect)])),
            AssignedClientIdentifier | ResponseInformation => spec(Str, bits(&[P(ConnAck)])),
            ServerKeepAlive => spec(TwoByteInt, bits(&[P(ConnAck)])),
            AuthenticationMethod => spec(Str, bits(&[P(Connect), P(ConnAck), P(Auth)])),
            AuthenticationData => spec(Binary, bits(&[P(Connect), P(ConnAck), P(Auth)])),
            RequestProblemInformation | RequestResponseInformation => flag(bits(&[P(Connect)])),
            WillDelayInterval => spec(FourByteInt, bits(&[W])),
            ServerReference => spec(Str, bits(&[P(ConnAck), P(Disconnect)])),
            ReasonString => spec(
                Str,
                bits(&[
                    P(ConnAck),
                    ACKS[0],
                    ACKS[1],
                    ACKS[2],
                    ACKS[3],
                    P(SubAck),
                    P(UnsubAck),
                    P(Disconnect),
                    P(Auth),
                ]),
            ),
            ReceiveMaximum => nonzero(TwoByteInt, bits(&[P(Connect), P(ConnAck)])),
            TopicAliasMaximum => spec(TwoByteInt, bits(&[P(Connect), P(ConnAck)])),
            TopicAlias => nonzero(TwoByteInt, bits(&[P(Publish)])),
            MaximumQoS
            | RetainAvailable
            | WildcardSubscriptionAvailable
            | SubscriptionIdentifierAvailable
            | SharedSubscriptionAvailable => flag(bits(&[P(ConnAck)])),
            UserProperty => Spec {
                repeats_in: EVERY_HOLDER_BUT_PINGS,
                ..spec(StrPair, EVERY_HOLDER_BUT_PINGS)
            },
            MaximumPacketSize => nonzero(FourByteInt, bits(&[P(Connect), P(ConnAck)])),
        }
    }

    pub fn kind(self) -> PropertyKind {
        self.spec().kind
    }

    /// The range an integer property's value must lie in; `None` for the others.
    pub fn int_range(self) -> Option<(u32, u32)> {
        let spec = self.spec();
        match spec.kind {
            PropertyKind::Byte | PropertyKind::TwoByteInt | PropertyKind::FourByteInt | PropertyKind::VarInt => {
                Some((spec.min, spec.max))
            }
            _ => None,
        }
    }
}

/// A property's value; which variant an identifier takes is its [`PropertyKind`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropertyValue {
    /// Byte, Two Byte Integer, Four Byte Integer and Variable Byte Integer alike.
    Int(u32),
    Str(MqttStr),
    Binary(Bytes),
    Pair(MqttStr, MqttStr),
}

/// One property. Fields are private so that a value always fits its identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    id: PropertyId,
    value: PropertyValue,
}

impl Property {
    /// Checks that `value` has the identifier's type and range.
    pub fn new(id: PropertyId, value: PropertyValue) -> Result<Property, CodecError> {
        let spec = id.spec();
        let fits = match (&value, spec.kind) {
            (PropertyValue::Int(v), PropertyKind::Byte)
            | (PropertyValue::Int(v), PropertyKind::TwoByteInt)
            | (PropertyValue::Int(v), PropertyKind::FourByteInt)
            | (PropertyValue::Int(v), PropertyKind::VarInt) => {
                if !(spec.min..=spec.max).contains(v) {
                    return Err(CodecError::InvalidPropertyValue {
                        id: id as u8,
                        value: *v,
                    });
                }
                true
            }
            (PropertyValue::Str(_), PropertyKind::Str) | (PropertyValue::Pair(..), PropertyKind::StrPair) => true,
            (PropertyValue::Binary(b), PropertyKind::Binary) => {
                check_binary_len(b)?;
                true
            }
            _ => false,
        };
        if !fits {
            return Err(CodecError::PropertyTypeMismatch(id as u8));
        }
        Ok(Property { id, value })
    }

    pub fn id(&self) -> PropertyId {
        self.id
    }

    pub fn value(&self) -> &PropertyValue {
        &self.value
    }

    fn wire_len(&self) -> usize {
        1 + match (&self.value, self.id.kind()) {
            (PropertyValue::Int(_), PropertyKind::Byte) => 1,
            (PropertyValue::Int(_), PropertyKind::TwoByteInt) => 2,
            (PropertyValue::Int(_), PropertyKind::FourByteInt) => 4,
            (PropertyValue::Int(v), _) => var_int_len(*v as usize),
            (PropertyValue::Str(s), _) => field_len(s.as_bytes()),
            (PropertyValue::Binary(b), _) => field_len(b),
            (PropertyValue::Pair(k, v), _) => field_len(k.as_bytes()) + field_len(v.as_bytes()),
        }
    }

    fn write(&self, buf: &mut BytesMut) {
        buf.put_u8(self.id as u8);
        match (&self.value, self.id.kind()) {
            (PropertyValue::Int(v), PropertyKind::Byte) => buf.put_u8(*v as u8),
            (PropertyValue::Int(v), PropertyKind::TwoByteInt) => buf.put_u16(*v as u16),
            (PropertyValue::Int(v), PropertyKind::FourByteInt) => buf.put_u32(*v),
            (PropertyValue::Int(v), _) => write_var_int(*v as usize, buf),
            (PropertyValue::Str(s), _) => write_field(buf, s.as_bytes()),
            (PropertyValue::Binary(b), _) => write_field(buf, b),
            (PropertyValue::Pair(k, v), _) => {
                write_field(buf, k.as_bytes());
                write_field(buf, v.as_bytes());
            }
        }
    }

    fn read(body: &mut Bytes) -> Result<Property, CodecError> {
        // The identifier is a variable byte integer (section 2.2.2.2), but every defined one
        // fits in its first byte, and a continuation bit would make it undefined anyway.
        let byte = read_u8(body)?;
        let id = PropertyId::from_u8(byte).ok_or(CodecError::InvalidPropertyId(byte))?;
        let value = match id.kind() {
            PropertyKind::Byte => PropertyValue::Int(u32::from(read_u8(body)?)),
            PropertyKind::TwoByteInt => PropertyValue::Int(u32::from(read_u16(body)?)),
            PropertyKind::FourByteInt => PropertyValue::Int(read_u32(body)?),
            PropertyKind::VarInt => PropertyValue::Int(read_var_int(body)?),
            PropertyKind::Str => PropertyValue::Str(read_str(body)?),
            PropertyKind::Binary => PropertyValue::Binary(read_binary(body)?),
            PropertyKind::StrPair => PropertyValue::Pair(read_str(body)?, read_str(body)?),
        };
        Property::new(id, value)
    }
}

/// A packet's property list, kept in its wire form (without the length in front) and read on
/// access. Decoding a packet therefore allocates nothing for its properties, however many a peer
/// packs in (a PUBLISH may repeat Subscription Identifier and User Property without limit), and
/// an empty list, what most packets have, is an empty `Bytes`. Building a list re-encodes it
/// once per property added; lists are short.
///
/// Equal lists are equal bytes: the encoding of each value is canonical (MQTT 5 requires the
/// shortest variable byte integers, which decode enforces).
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Properties(Bytes);

impl Properties {
    pub fn new() -> Properties {
        Properties(Bytes::new())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The number of properties.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    pub fn iter(&self) -> Iter {
        Iter(self.0.clone())
    }

    /// Appends a property; which packets may carry it is checked when the packet is encoded.
    pub fn push(&mut self, property: Property) {
        let mut buf = BytesMut::with_capacity(self.0.len() + property.wire_len());
        buf.extend_from_slice(&self.0);
        property.write(&mut buf);
        self.0 = buf.freeze();
    }

    /// [`Properties::push`] of an integer property.
    pub fn push_int(&mut self, id: PropertyId, value: u32) -> Result<(), CodecError> {
        self.push(Property::new(id, PropertyValue::Int(value))?);
        Ok(())
    }

    /// [`Properties::push`] of a string property.
    pub fn push_str(&mut self, id: PropertyId, value: &str) -> Result<(), CodecError> {
        self.push(Property::new(id, PropertyValue::Str(MqttStr::new(value)?))?);
        Ok(())
    }

    /// [`Properties::push`] of a binary property.
    pub fn push_binary(&mut self, id: PropertyId, value: Bytes) -> Result<(), CodecError> {
        self.push(Property::new(id, PropertyValue::Binary(value))?);
        Ok(())
    }

    pub fn push_user(&mut self, key: &str, value: &str) -> Result<(), CodecError> {
        let pair = PropertyValue::Pair(MqttStr::new(key)?, MqttStr::new(value)?);
        self.push(Property::new(PropertyId::UserProperty, pair)?);
        Ok(())
    }

    /// Removes every property with this identifier.
    pub fn remove(&mut self, id: PropertyId) {
        if self.iter().any(|p| p.id == id) {
            let mut kept = Properties::new();
            for p in self.iter().filter(|p| p.id != id) {
                kept.push(p);
            }
            *self = kept;
        }
    }

    pub fn get(&self, id: PropertyId) -> Option<PropertyValue> {
        self.iter().find(|p| p.id == id).map(|p| p.value)
    }

    pub fn int(&self, id: PropertyId) -> Option<u32> {
        match self.get(id)? {
            PropertyValue::Int(v) => Some(v),
            _ => None,
        }
    }

    /// A string property; shares the list's memory.
    pub fn str(&self, id: PropertyId) -> Option<MqttStr> {
        match self.get(id)? {
            PropertyValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A binary property; shares the list's memory.
    pub fn binary(&self, id: PropertyId) -> Option<Bytes> {
        match self.get(id)? {
            PropertyValue::Binary(b) => Some(b),
            _ => None,
        }
    }

    /// Every integer value with this identifier (several Subscription Identifiers in a PUBLISH).
    pub fn ints(&self, id: PropertyId) -> impl Iterator<Item = u32> + '_ {
        self.iter().filter(move |p| p.id == id).filter_map(|p| match p.value {
            PropertyValue::Int(v) => Some(v),
            _ => None,
        })
    }

    /// User properties in wire order; a key may appear more than once (section 3.3.2.3.7).
    pub fn user_properties(&self) -> impl Iterator<Item = (MqttStr, MqttStr)> + '_ {
        self.iter().filter_map(|p| match p.value {
            PropertyValue::Pair(k, v) => Some((k, v)),
            _ => None,
        })
    }

    /// Checks that every property may appear in `holder`, and only as often as it may.
    pub(crate) fn validate(&self, holder: Holder) -> Result<(), CodecError> {
        let mut seen: u64 = 0;
        for p in self.iter() {
            let spec = p.id.spec();
            if spec.holders & holder.bit() == 0 {
                return Err(CodecError::PropertyNotAllowed {
                    id: p.id as u8,
                    packet_type: holder.code(),
                });
            }
            let bit = 1u64 << (p.id as u8);
            if seen & bit != 0 && spec.repeats_in & holder.bit() == 0 {
                return Err(CodecError::DuplicateProperty(p.id as u8));
            }
            seen |= bit;
        }
        Ok(())
    }

    /// Bytes on the wire: the property length, then the properties.
    pub(crate) fn wire_len(&self) -> usize {
        var_int_len(self.0.len()) + self.0.len()
    }

    pub(crate) fn write(&self, buf: &mut BytesMut) {
        write_var_int(self.0.len(), buf);
        buf.put_slice(&self.0);
    }

    /// Reads a property length and that many bytes of properties, then validates them for
    /// `holder`: each property must parse, fit its identifier, and be allowed there.
    pub(crate) fn read(body: &mut Bytes, holder: Holder) -> Result<Properties, CodecError> {
        let len = read_var_int(body)? as usize;
        if body.len() < len {
            return Err(CodecError::Truncated);
        }
        let mut list = body.split_to(len);
        let properties = Properties(list.clone());
        while !list.is_empty() {
            Property::read(&mut list)?;
        }
        properties.validate(holder)?;
        Ok(properties)
    }
}

/// The properties of a list, in order. The list was validated when it was built or decoded, so
/// each property parses.
pub struct Iter(Bytes);

impl Iterator for Iter {
    type Item = Property;

    fn next(&mut self) -> Option<Property> {
        if self.0.is_empty() {
            return None;
        }
        Some(Property::read(&mut self.0).expect("a property list is validated when it is made"))
    }
}

impl IntoIterator for &Properties {
    type Item = Property;
    type IntoIter = Iter;

    fn into_iter(self) -> Iter {
        self.iter()
    }
}

impl fmt::Debug for Properties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The list as a packet carries it in a given version: 3.1.1 packets have none, so there it
/// reads as empty, must be empty to encode, and takes no bytes.
impl Properties {
    pub(crate) fn read_in(body: &mut Bytes, holder: Holder, version: Version) -> Result<Properties, CodecError> {
        match version {
            Version::V311 => Ok(Properties::new()),
            Version::V5 => Properties::read(body, holder),
        }
    }

    pub(crate) fn validate_in(&self, holder: Holder, version: Version) -> Result<(), CodecError> {
        match version {
            Version::V311 if self.is_empty() => Ok(()),
            Version::V311 => Err(CodecError::NotInMqtt311("properties")),
            Version::V5 => self.validate(holder),
        }
    }

    pub(crate) fn len_in(&self, version: Version) -> usize {
        match version {
            Version::V311 => 0,
            Version::V5 => self.wire_len(),
        }
    }

    pub(crate) fn write_in(&self, buf: &mut BytesMut, version: Version) {
        if version == Version::V5 {
            self.write(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(list: &[(PropertyId, PropertyValue)]) -> Properties {
        let mut p = Properties::new();
        for (id, value) in list {
            p.push(Property::new(*id, value.clone()).unwrap());
        }
        p
    }

    fn round_trip(p: &Properties, holder: Holder) -> Vec<u8> {
        let mut buf = BytesMut::new();
        p.write(&mut buf);
        assert_eq!(buf.len(), p.wire_len());
        let mut bytes = buf.clone().freeze();
        assert_eq!(Properties::read(&mut bytes, holder).as_ref(), Ok(p));
        assert!(bytes.is_empty());
        buf.to_vec()
    }

    #[test]
    fn every_kind_has_its_wire_form() {
        let s = |t: &str| MqttStr::new(t).unwrap();
        let p = props(&[
            (PropertyId::PayloadFormatIndicator, PropertyValue::Int(1)),
            (PropertyId::TopicAlias, PropertyValue::Int(0x0102)),
            (PropertyId::MessageExpiryInterval, PropertyValue::Int(0x01020304)),
            (PropertyId::SubscriptionIdentifier, PropertyValue::Int(200)),
            (PropertyId::ContentType, PropertyValue::Str(s("ab"))),
            (
                PropertyId::CorrelationData,
                PropertyValue::Binary(Bytes::from_static(b"\0\xFF")),
            ),
            (PropertyId::UserProperty, PropertyValue::Pair(s("k"), s("v"))),
            (PropertyId::UserProperty, PropertyValue::Pair(s("k"), s("w"))),
        ]);
        let wire = round_trip(&p, Holder::Packet(PacketType::Publish));
        assert_eq!(
            wire,
            b"\x25\x01\x01\x23\x01\x02\x02\x01\x02\x03\x04\x0B\xC8\x01\x03\x00\x02ab\x09\x00\x02\x00\xFF\
              \x26\x00\x01k\x00\x01v\x26\x00\x01k\x00\x01w"
        );
        assert_eq!(p.int(PropertyId::TopicAlias), Some(0x0102));
        assert_eq!(p.str(PropertyId::ContentType).unwrap().as_str(), "ab");
        assert_eq!(p.user_properties().count(), 2);
        assert_eq!(p.len(), 8);
        let mut without = p.clone();
        without.remove(PropertyId::UserProperty);
        assert_eq!(without.len(), 6);
        assert_eq!(without.int(PropertyId::SubscriptionIdentifier), Some(200));
    }

    #[test]
    fn a_decoded_list_shares_the_packet_bytes() {
        let wire = Bytes::from_static(b"\x09\x26\x00\x01k\x00\x03val");
        let p = Properties::read(&mut wire.clone(), Holder::Packet(PacketType::Publish)).unwrap();
        let (_, value) = p.user_properties().next().unwrap();
        assert_eq!(value.as_bytes().as_ptr(), wire[7..].as_ptr());
    }

    #[test]
    fn empty_list_is_one_zero_byte() {
        assert_eq!(round_trip(&Properties::new(), Holder::Packet(PacketType::Connect)), [0]);
    }

    #[test]
    fn values_must_fit_their_identifier() {
        use PropertyId::*;
        for (id, value) in [
            (ReceiveMaximum, 0),
            (TopicAlias, 0),
            (MaximumPacketSize, 0),
            (SubscriptionIdentifier, 0),
        ] {
            assert_eq!(
                Property::new(id, PropertyValue::Int(value)),
                Err(CodecError::InvalidPropertyValue { id: id as u8, value })
            );
        }
        for id in [PayloadFormatIndicator, MaximumQoS, RequestProblemInformation] {
            assert!(Property::new(id, PropertyValue::Int(2)).is_err());
        }
        assert!(Property::new(ServerKeepAlive, PropertyValue::Int(65_536)).is_err());
        assert!(Property::new(SubscriptionIdentifier, PropertyValue::Int(MAX_VAR_INT + 1)).is_err());
        assert_eq!(
            Property::new(ContentType, PropertyValue::Int(1)),
            Err(CodecError::PropertyTypeMismatch(0x03))
        );
    }

    #[test]
    fn holders_and_repeats_are_enforced() {
        let publish = Holder::Packet(PacketType::Publish);
        let subscribe = Holder::Packet(PacketType::Subscribe);
        let sub_id = |v| (PropertyId::SubscriptionIdentifier, PropertyValue::Int(v));
        assert_eq!(props(&[sub_id(1), sub_id(2)]).validate(publish), Ok(()));
        assert_eq!(
            props(&[sub_id(1), sub_id(2)]).validate(subscribe),
            Err(CodecError::DuplicateProperty(0x0B))
        );
        let alias = (PropertyId::TopicAlias, PropertyValue::Int(1));
        assert_eq!(
            props(&[alias.clone(), alias.clone()]).validate(publish),
            Err(CodecError::DuplicateProperty(0x23))
        );
        assert_eq!(
            props(&[alias]).validate(Holder::Will),
            Err(CodecError::PropertyNotAllowed {
                id: 0x23,
                packet_type: 0
            })
        );
        let delay = (PropertyId::WillDelayInterval, PropertyValue::Int(5));
        assert_eq!(props(std::slice::from_ref(&delay)).validate(Holder::Will), Ok(()));
        assert!(props(&[delay]).validate(publish).is_err());
    }

    #[test]
    fn malformed_lists_are_refused() {
        let read =
            |wire: &'static [u8]| Properties::read(&mut Bytes::from_static(wire), Holder::Packet(PacketType::Publish));
        assert_eq!(read(b"\x02\x01"), Err(CodecError::Truncated));
        assert_eq!(read(b"\x02\x05\x00"), Err(CodecError::InvalidPropertyId(0x05)));
        assert_eq!(
            read(b"\x02\x01\x02"),
            Err(CodecError::InvalidPropertyValue { id: 1, value: 2 })
        );
        // The length covers part of a property: the property is cut short, not read past the list.
        assert_eq!(read(b"\x02\x02\x00\x00\x00\x07"), Err(CodecError::Truncated));
        assert_eq!(read(b"\x80\x00"), Err(CodecError::MalformedVarInt));
    }

    #[test]
    fn every_identifier_round_trips_through_from_u8_and_has_a_holder() {
        for id in PropertyId::ALL {
            assert_eq!(PropertyId::from_u8(id as u8), Some(id));
            assert_ne!(id.spec().holders, 0);
        }
        let known = (0..=255u8).filter(|&b| PropertyId::from_u8(b).is_some()).count();
        assert_eq!(known, PropertyId::ALL.len());
    }
}
