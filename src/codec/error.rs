use std::fmt;

use crate::topic::TopicError;

/// Why a packet could not be decoded or encoded; one variant per rule broken.
/// After a decode error the stream is out of step: section 4.8 of 3.1.1 and 4.13 of MQTT 5 say to
/// close the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecError {
    /// The 4th remaining-length byte has its continuation bit set (section 2.2.3).
    MalformedRemainingLength,
    /// Fixed header plus remaining length exceed the limit the caller set.
    PacketTooLarge { size: usize, max: usize },
    /// Packet type 0 or 15, both reserved (section 2.2.1).
    InvalidPacketType(u8),
    /// A remaining length a packet of this type cannot have: CONNACK, PUBACK, PUBREC, PUBREL,
    /// PUBCOMP and UNSUBACK always have 2, PINGREQ, PINGRESP and DISCONNECT 0 (chapter 3).
    InvalidRemainingLength {
        packet_type: u8,
        remaining_len: usize,
        expected: usize,
    },
    /// Fixed-header flags differ from the ones the packet type requires (section 2.2.2).
    ReservedFlags { packet_type: u8, flags: u8 },
    /// A QoS of 3 (PUBLISH flags, will QoS, requested QoS).
    InvalidQoS(u8),
    /// A QoS 0 PUBLISH with DUP set (MQTT-3.3.1-2).
    DupOnQoS0,
    /// A QoS 0 PUBLISH given a packet id, which has no place on the wire (section 3.3.2.2). Encode only.
    PacketIdOnQoS0(u16),
    /// A string that is not well-formed UTF-8 (MQTT-1.5.3-1).
    InvalidUtf8,
    /// A string containing U+0000 (MQTT-1.5.3-2).
    NulInString,
    /// A string longer than 65535 bytes (section 1.5.3).
    StringTooLong(usize),
    /// Binary data (will payload, password) longer than 65535 bytes. Encode only.
    BinaryTooLong(usize),
    /// Packet id 0 where one is required (section 2.3.1).
    ZeroPacketId,
    /// Invalid topic name in PUBLISH or will, or invalid filter in SUBSCRIBE/UNSUBSCRIBE.
    Topic(TopicError),
    /// CONNECT protocol name other than "MQTT" (MQTT-3.1.2-1).
    InvalidProtocolName,
    /// CONNECT protocol level other than 4 (3.1.1) or 5 (section 3.1.2.2).
    UnsupportedProtocolLevel(u8),
    /// CONNECT flags that contradict each other or set the reserved bit (section 3.1.2.3).
    InvalidConnectFlags(u8),
    /// CONNACK flags with reserved bits, or session present with a refusal (MQTT-3.2.2-4).
    InvalidConnAckFlags(u8),
    /// A reason code (return code in 3.1.1) the packet type cannot carry (MQTT 5 section 2.4 and
    /// the packet's section; 3.1.1 sections 3.2.2.3 and 3.9.3).
    InvalidReasonCode { packet_type: u8, code: u8 },
    /// SUBSCRIBE or UNSUBSCRIBE without a topic filter (MQTT-3.8.3-3, MQTT-3.10.3-2).
    NoFilters,
    /// Reserved bits set in a SUBSCRIBE options byte (MQTT-3.8.3-4 of 3.1.1, MQTT-3.8.3-5 of 5),
    /// or retain handling 3.
    InvalidSubscribeOptions(u8),
    /// The body ends before its fields do.
    Truncated,
    /// The body goes on after its last field.
    TrailingBytes,
    /// Encode: the remaining length would exceed MAX_REMAINING_LENGTH.
    PayloadTooLarge(usize),
    /// A variable byte integer in a body (property length, subscription identifier) longer than
    /// 4 bytes or not in its shortest form (MQTT 5 section 1.5.5).
    MalformedVarInt,
    /// A property identifier MQTT 5 does not define.
    InvalidPropertyId(u8),
    /// A property value outside what its identifier allows (0 for Receive Maximum, 2 for a flag, ...).
    InvalidPropertyValue { id: u8, value: u32 },
    /// A property given a value of another type (a string for Topic Alias). Encode only.
    PropertyTypeMismatch(u8),
    /// A property the packet cannot carry (table 2-4); `packet_type` 0 means will properties.
    PropertyNotAllowed { id: u8, packet_type: u8 },
    /// A property other than User Property (or Subscription Identifier in PUBLISH) given twice.
    DuplicateProperty(u8),
    /// Encode: an MQTT 5 feature in a packet for a 3.1.1 connection, which has no way to send it.
    NotInMqtt311(&'static str),
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::MalformedRemainingLength => f.write_str("the remaining length is longer than 4 bytes"),
            CodecError::PacketTooLarge { size, max } => {
                write!(f, "the packet is {size} bytes, more than the maximum of {max}")
            }
            CodecError::InvalidPacketType(t) => write!(f, "packet type {t} is reserved"),
            CodecError::InvalidRemainingLength {
                packet_type,
                remaining_len,
                expected,
            } => write!(
                f,
                "packet type {packet_type} must have remaining length {expected}, not {remaining_len}"
            ),
            CodecError::ReservedFlags { packet_type, flags } => write!(
                f,
                "packet type {packet_type} has invalid fixed-header flags {flags:#06b}"
            ),
            CodecError::InvalidQoS(q) => write!(f, "{q} is not a QoS level"),
            CodecError::DupOnQoS0 => f.write_str("a QoS 0 PUBLISH must not have DUP set"),
            CodecError::PacketIdOnQoS0(id) => {
                write!(f, "a QoS 0 PUBLISH has no packet id, but {id} was given")
            }
            CodecError::InvalidUtf8 => f.write_str("a string is not well-formed UTF-8"),
            CodecError::NulInString => f.write_str("a string contains the character U+0000"),
            CodecError::StringTooLong(n) => {
                write!(f, "a string of {n} bytes is longer than 65535 bytes")
            }
            CodecError::BinaryTooLong(n) => {
                write!(f, "binary data of {n} bytes is longer than 65535 bytes")
            }
            CodecError::ZeroPacketId => f.write_str("the packet id must not be 0"),
            CodecError::Topic(e) => write!(f, "invalid topic: {e}"),
            CodecError::InvalidProtocolName => f.write_str("the protocol name is not \"MQTT\""),
            CodecError::UnsupportedProtocolLevel(l) => {
                write!(f, "protocol level {l} is not supported (only 4, MQTT 3.1.1, and 5)")
            }
            CodecError::InvalidConnectFlags(b) => write!(f, "invalid CONNECT flags {b:#010b}"),
            CodecError::InvalidConnAckFlags(b) => write!(f, "invalid CONNACK flags {b:#010b}"),
            CodecError::InvalidReasonCode { packet_type, code } => {
                write!(
                    f,
                    "{code:#04x} is not a reason code packet type {packet_type} may carry"
                )
            }
            CodecError::NoFilters => f.write_str("a SUBSCRIBE or UNSUBSCRIBE must carry at least one topic filter"),
            CodecError::InvalidSubscribeOptions(b) => {
                write!(f, "subscription options {b:#010b} have reserved bits or values set")
            }
            CodecError::Truncated => f.write_str("the packet ends before its fields do"),
            CodecError::TrailingBytes => f.write_str("the packet has bytes after its last field"),
            CodecError::PayloadTooLarge(n) => write!(
                f,
                "the remaining length {n} exceeds the maximum of {}",
                super::MAX_REMAINING_LENGTH
            ),
            CodecError::MalformedVarInt => {
                f.write_str("a variable byte integer is longer than 4 bytes or not in its shortest form")
            }
            CodecError::InvalidPropertyId(id) => write!(f, "{id:#04x} is not a property identifier"),
            CodecError::InvalidPropertyValue { id, value } => {
                write!(f, "property {id:#04x} cannot have the value {value}")
            }
            CodecError::PropertyTypeMismatch(id) => write!(f, "property {id:#04x} was given a value of the wrong type"),
            CodecError::PropertyNotAllowed { id, packet_type: 0 } => {
                write!(f, "property {id:#04x} is not allowed in will properties")
            }
            CodecError::PropertyNotAllowed { id, packet_type } => {
                write!(f, "property {id:#04x} is not allowed in packet type {packet_type}")
            }
            CodecError::DuplicateProperty(id) => write!(f, "property {id:#04x} appears more than once"),
            CodecError::NotInMqtt311(what) => write!(f, "{what} need MQTT 5; this connection speaks 3.1.1"),
        }
    }
}

impl std::error::Error for CodecError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CodecError::Topic(e) => Some(e),
            _ => None,
        }
    }
}

impl From<TopicError> for CodecError {
    fn from(e: TopicError) -> Self {
        CodecError::Topic(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error;

    #[test]
    fn topic_error_converts_and_is_the_source() {
        let e = CodecError::from(TopicError::HashNotLast);
        assert_eq!(e, CodecError::Topic(TopicError::HashNotLast));
        assert_eq!(
            e.source().map(|s| s.to_string()),
            Some(TopicError::HashNotLast.to_string())
        );
        assert!(CodecError::Truncated.source().is_none());
    }

    #[test]
    fn display_includes_the_values() {
        let e = CodecError::PacketTooLarge { size: 300, max: 200 };
        assert_eq!(e.to_string(), "the packet is 300 bytes, more than the maximum of 200");
        let e = CodecError::ReservedFlags {
            packet_type: 8,
            flags: 0,
        };
        assert_eq!(e.to_string(), "packet type 8 has invalid fixed-header flags 0b0000");
        assert_eq!(
            CodecError::InvalidReasonCode {
                packet_type: 9,
                code: 0x81
            }
            .to_string(),
            "0x81 is not a reason code packet type 9 may carry"
        );
    }
}
