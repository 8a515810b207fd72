//! Reason codes (MQTT 5 section 2.4): one byte saying how an operation went; below 0x80 is
//! success. 3.1.1's CONNACK return codes and SUBACK codes are mapped into the same space on
//! decode, so the engine reads one vocabulary whichever protocol a client speaks.

use std::fmt;

use std::ffi::CStr;

use super::header::PacketType;
use super::{CodecError, Version};

/// MQTT 3.1.1's CONNACK return codes 0 to 5 (section 3.2.2.3, table 3.1).
const MQTT311_CONNACK: [&CStr; 6] = [
    c"Connection Accepted",
    c"Connection Refused, unacceptable protocol version",
    c"Connection Refused, identifier rejected",
    c"Connection Refused, Server unavailable",
    c"Connection Refused, bad user name or password",
    c"Connection Refused, not authorized",
];

/// MQTT 3.1.1's SUBACK return codes 0 to 2 (section 3.9.3); 0x80 is "Failure".
const MQTT311_SUBACK: [&CStr; 3] = [
    c"Success - Maximum QoS 0",
    c"Success - Maximum QoS 1",
    c"Success - Maximum QoS 2",
];

/// The default is 0x00, success (normal disconnection in DISCONNECT).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReasonCode(pub u8);

impl ReasonCode {
    pub const SUCCESS: ReasonCode = ReasonCode(0x00);
    pub const GRANTED_QOS_1: ReasonCode = ReasonCode(0x01);
    pub const GRANTED_QOS_2: ReasonCode = ReasonCode(0x02);
    pub const DISCONNECT_WITH_WILL: ReasonCode = ReasonCode(0x04);
    pub const NO_MATCHING_SUBSCRIBERS: ReasonCode = ReasonCode(0x10);
    pub const NO_SUBSCRIPTION_EXISTED: ReasonCode = ReasonCode(0x11);
    pub const CONTINUE_AUTHENTICATION: ReasonCode = ReasonCode(0x18);
    pub const REAUTHENTICATE: ReasonCode = ReasonCode(0x19);
    pub const UNSPECIFIED_ERROR: ReasonCode = ReasonCode(0x80);
    pub const MALFORMED_PACKET: ReasonCode = ReasonCode(0x81);
    pub const PROTOCOL_ERROR: ReasonCode = ReasonCode(0x82);
    pub const IMPLEMENTATION_SPECIFIC_ERROR: ReasonCode = ReasonCode(0x83);
    pub const UNSUPPORTED_PROTOCOL_VERSION: ReasonCode = ReasonCode(0x84);
    pub const CLIENT_IDENTIFIER_NOT_VALID: ReasonCode = ReasonCode(0x85);
    pub const BAD_USER_NAME_OR_PASSWORD: ReasonCode = ReasonCode(0x86);
    pub const NOT_AUTHORIZED: ReasonCode = ReasonCode(0x87);
    pub const SERVER_UNAVAILABLE: ReasonCode = ReasonCode(0x88);
    pub const SERVER_BUSY: ReasonCode = ReasonCode(0x89);
    pub const BANNED: ReasonCode = ReasonCode(0x8A);
    pub const SERVER_SHUTTING_DOWN: ReasonCode = ReasonCode(0x8B);
    pub const BAD_AUTHENTICATION_METHOD: ReasonCode = ReasonCode(0x8C);
    pub const KEEP_ALIVE_TIMEOUT: ReasonCode = ReasonCode(0x8D);
    pub const SESSION_TAKEN_OVER: ReasonCode = ReasonCode(0x8E);
    pub const TOPIC_FILTER_INVALID: ReasonCode = ReasonCode(0x8F);
    pub const TOPIC_NAME_INVALID: ReasonCode = ReasonCode(0x90);
    pub const PACKET_IDENTIFIER_IN_USE: ReasonCode = ReasonCode(0x91);
    pub const PACKET_IDENTIFIER_NOT_FOUND: ReasonCode = ReasonCode(0x92);
    pub const RECEIVE_MAXIMUM_EXCEEDED: ReasonCode = ReasonCode(0x93);
    pub const TOPIC_ALIAS_INVALID: ReasonCode = ReasonCode(0x94);
    pub const PACKET_TOO_LARGE: ReasonCode = ReasonCode(0x95);
    pub const MESSAGE_RATE_TOO_HIGH: ReasonCode = ReasonCode(0x96);
    pub const QUOTA_EXCEEDED: ReasonCode = ReasonCode(0x97);
    pub const ADMINISTRATIVE_ACTION: ReasonCode = ReasonCode(0x98);
    pub const PAYLOAD_FORMAT_INVALID: ReasonCode = ReasonCode(0x99);
    pub const RETAIN_NOT_SUPPORTED: ReasonCode = ReasonCode(0x9A);
    pub const QOS_NOT_SUPPORTED: ReasonCode = ReasonCode(0x9B);
    pub const USE_ANOTHER_SERVER: ReasonCode = ReasonCode(0x9C);
    pub const SERVER_MOVED: ReasonCode = ReasonCode(0x9D);
    pub const SHARED_SUBSCRIPTIONS_NOT_SUPPORTED: ReasonCode = ReasonCode(0x9E);
    pub const CONNECTION_RATE_EXCEEDED: ReasonCode = ReasonCode(0x9F);
    pub const MAXIMUM_CONNECT_TIME: ReasonCode = ReasonCode(0xA0);
    pub const SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED: ReasonCode = ReasonCode(0xA1);
    pub const WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED: ReasonCode = ReasonCode(0xA2);

    /// Codes of 0x80 and above report failure (section 2.4).
    pub fn is_error(self) -> bool {
        self.0 >= 0x80
    }

    /// The name section 2.4 gives the code; 0x00 is named for the packet it is in by the caller.
    pub fn name(self) -> &'static str {
        self.spec_name()
            .and_then(|n| n.to_str().ok())
            .unwrap_or("unknown reason code")
    }

    /// The name section 2.4 gives the code, NUL-terminated for C; None for a code it does not
    /// define.
    fn spec_name(self) -> Option<&'static CStr> {
        Some(match self.0 {
            0x00 => c"Success",
            0x01 => c"Granted QoS 1",
            0x02 => c"Granted QoS 2",
            0x04 => c"Disconnect with Will Message",
            0x10 => c"No matching subscribers",
            0x11 => c"No subscription existed",
            0x18 => c"Continue authentication",
            0x19 => c"Re-authenticate",
            0x80 => c"Unspecified error",
            0x81 => c"Malformed Packet",
            0x82 => c"Protocol Error",
            0x83 => c"Implementation specific error",
            0x84 => c"Unsupported Protocol Version",
            0x85 => c"Client Identifier not valid",
            0x86 => c"Bad User Name or Password",
            0x87 => c"Not authorized",
            0x88 => c"Server unavailable",
            0x89 => c"Server busy",
            0x8A => c"Banned",
            0x8B => c"Server shutting down",
            0x8C => c"Bad authentication method",
            0x8D => c"Keep Alive timeout",
            0x8E => c"Session taken over",
            0x8F => c"Topic Filter invalid",
            0x90 => c"Topic Name invalid",
            0x91 => c"Packet Identifier in use",
            0x92 => c"Packet Identifier not found",
            0x93 => c"Receive Maximum exceeded",
            0x94 => c"Topic Alias invalid",
            0x95 => c"Packet too large",
            0x96 => c"Message rate too high",
            0x97 => c"Quota exceeded",
            0x98 => c"Administrative action",
            0x99 => c"Payload format invalid",
            0x9A => c"Retain not supported",
            0x9B => c"QoS not supported",
            0x9C => c"Use another server",
            0x9D => c"Server moved",
            0x9E => c"Shared Subscriptions not supported",
            0x9F => c"Connection rate exceeded",
            0xA0 => c"Maximum connect time",
            0xA1 => c"Subscription Identifiers not supported",
            0xA2 => c"Wildcard Subscriptions not supported",
            _ => return None,
        })
    }

    /// The name the specification gives the code as the wire carries it in `packet` of `version`:
    /// MQTT 5's table 2-6, where 0x00 is "Normal disconnection" in DISCONNECT and "Granted QoS 0"
    /// in SUBACK; 3.1.1's CONNACK return codes 0 to 5 (section 3.2.2.3) and SUBACK return codes
    /// (section 3.9.3), which are not mapped here. None when that packet cannot carry the code.
    pub(crate) fn name_in(self, version: Version, packet: PacketType) -> Option<&'static CStr> {
        match (version, packet, self.0) {
            (Version::V311, PacketType::ConnAck, code) => MQTT311_CONNACK.get(usize::from(code)).copied(),
            (Version::V311, PacketType::SubAck, code @ 0..=2) => Some(MQTT311_SUBACK[usize::from(code)]),
            (Version::V311, PacketType::SubAck, 0x80) => Some(c"Failure"),
            (Version::V311, ..) => None,
            (Version::V5, _, _) if self.check(packet).is_err() => None,
            (Version::V5, PacketType::Disconnect, 0x00) => Some(c"Normal disconnection"),
            (Version::V5, PacketType::SubAck, 0x00) => Some(c"Granted QoS 0"),
            (Version::V5, ..) => self.spec_name(),
        }
    }

    /// The codes each packet may carry (sections 3.2.2.2, 3.4.2.1, 3.5.2.1, 3.6.2.1, 3.7.2.1,
    /// 3.9.3, 3.11.3, 3.14.2.1, 3.15.2.1); any other is a protocol error. DISCONNECT also takes
    /// 0x8C, which table 2-6 lists for it although table 3-10 leaves it out.
    pub(crate) fn check(self, packet_type: PacketType) -> Result<ReasonCode, CodecError> {
        let valid: &[u8] = match packet_type {
            PacketType::ConnAck => &[
                0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99,
                0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
            ],
            PacketType::PubAck | PacketType::PubRec => &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99],
            PacketType::PubRel | PacketType::PubComp => &[0x00, 0x92],
            PacketType::SubAck => &[0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2],
            PacketType::UnsubAck => &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91],
            PacketType::Disconnect => &[
                0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8C, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95,
                0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
            ],
            PacketType::Auth => &[0x00, 0x18, 0x19],
            _ => &[],
        };
        if valid.contains(&self.0) {
            Ok(self)
        } else {
            Err(CodecError::InvalidReasonCode {
                packet_type: packet_type as u8,
                code: self.0,
            })
        }
    }
}

impl fmt::Debug for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#04x} ({})", self.0, self.name())
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:#04x})", self.name(), self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_start_at_0x80() {
        assert!(!ReasonCode::NO_MATCHING_SUBSCRIBERS.is_error());
        assert!(ReasonCode::UNSPECIFIED_ERROR.is_error());
        assert!(ReasonCode::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED.is_error());
    }

    #[test]
    fn each_packet_takes_only_its_own_codes() {
        assert!(ReasonCode::GRANTED_QOS_2.check(PacketType::SubAck).is_ok());
        assert!(ReasonCode::GRANTED_QOS_2.check(PacketType::UnsubAck).is_err());
        assert!(ReasonCode::NO_SUBSCRIPTION_EXISTED.check(PacketType::UnsubAck).is_ok());
        assert!(
            ReasonCode::PACKET_IDENTIFIER_NOT_FOUND
                .check(PacketType::PubRel)
                .is_ok()
        );
        assert_eq!(
            ReasonCode::NOT_AUTHORIZED.check(PacketType::PubComp),
            Err(CodecError::InvalidReasonCode {
                packet_type: 7,
                code: 0x87
            })
        );
        assert!(ReasonCode::SERVER_MOVED.check(PacketType::ConnAck).is_ok());
        assert!(ReasonCode::SERVER_SHUTTING_DOWN.check(PacketType::ConnAck).is_err());
        assert!(ReasonCode::SERVER_SHUTTING_DOWN.check(PacketType::Disconnect).is_ok());
    }

    #[test]
    fn names_depend_on_the_packet_and_the_protocol() {
        let name = |code: u8, version, packet| ReasonCode(code).name_in(version, packet).map(|n| n.to_str().unwrap());
        assert_eq!(name(0x00, Version::V5, PacketType::PubAck), Some("Success"));
        assert_eq!(
            name(0x00, Version::V5, PacketType::Disconnect),
            Some("Normal disconnection")
        );
        assert_eq!(name(0x00, Version::V5, PacketType::SubAck), Some("Granted QoS 0"));
        assert_eq!(
            name(0x04, Version::V5, PacketType::Disconnect),
            Some("Disconnect with Will Message")
        );
        assert_eq!(
            name(0x04, Version::V5, PacketType::ConnAck),
            None,
            "CONNACK cannot carry 0x04"
        );
        assert_eq!(name(0x80, Version::V5, PacketType::UnsubAck), Some("Unspecified error"));
        assert_eq!(name(0x80, Version::V5, PacketType::PubRel), None);
        assert_eq!(
            name(0x8C, Version::V5, PacketType::Disconnect),
            Some("Bad authentication method")
        );
        assert_eq!(
            name(0x05, Version::V311, PacketType::ConnAck),
            Some("Connection Refused, not authorized")
        );
        assert_eq!(name(0x06, Version::V311, PacketType::ConnAck), None);
        assert_eq!(
            name(0x86, Version::V311, PacketType::ConnAck),
            None,
            "3.1.1 codes are not mapped"
        );
        assert_eq!(name(0x80, Version::V311, PacketType::SubAck), Some("Failure"));
        assert_eq!(
            name(0x00, Version::V311, PacketType::PubAck),
            None,
            "a 3.1.1 PUBACK has no code"
        );
        assert_eq!(name(0x00, Version::V5, PacketType::Publish), None);
    }

    #[test]
    fn every_code_a_packet_takes_has_a_name_and_no_two_codes_share_one() {
        use std::collections::HashSet;
        let packets = [
            PacketType::ConnAck,
            PacketType::PubAck,
            PacketType::PubRec,
            PacketType::PubRel,
            PacketType::PubComp,
            PacketType::SubAck,
            PacketType::UnsubAck,
            PacketType::Disconnect,
            PacketType::Auth,
        ];
        for packet in packets {
            let valid: Vec<u8> = (0..=255).filter(|&c| ReasonCode(c).check(packet).is_ok()).collect();
            let names: HashSet<_> = valid
                .iter()
                .map(|&c| {
                    ReasonCode(c)
                        .name_in(Version::V5, packet)
                        .unwrap_or_else(|| panic!("{c:#04x} in {packet:?}"))
                })
                .collect();
            assert_eq!(names.len(), valid.len(), "{packet:?}");
        }
    }

    #[test]
    fn display_names_the_code() {
        assert_eq!(ReasonCode::NOT_AUTHORIZED.to_string(), "Not authorized (0x87)");
        assert_eq!(ReasonCode(0x7F).to_string(), "unknown reason code (0x7f)");
    }
}
