//! Names for MQTT reason codes (`mqttc_reason_str`), which mean different things in different
//! packets.
use std::ffi::{c_char, c_int};
use std::panic::catch_unwind;

use crate::codec::{PacketType, ReasonCode, Version};

/// The kind of packet a reason code came in, for `mqttc_reason_str`. MQTT 5's are the packet's
/// type number (2 for CONNACK ... 15 for AUTH); MQTT 3.1.1's are 0x400 (protocol level 4 in the
/// second byte) plus the type number, for the two 3.1.1 packets that carry a return code.
#[repr(C)]
pub enum mqttc_packet_kind {
    MQTTC_PACKET_CONNACK = 2,
    MQTTC_PACKET_PUBACK = 4,
    MQTTC_PACKET_PUBREC = 5,
    MQTTC_PACKET_PUBREL = 6,
    MQTTC_PACKET_PUBCOMP = 7,
    MQTTC_PACKET_SUBACK = 9,
    MQTTC_PACKET_UNSUBACK = 11,
    MQTTC_PACKET_DISCONNECT = 14,
    MQTTC_PACKET_AUTH = 15,
    /// MQTT 3.1.1 CONNACK return codes 0 to 5.
    MQTTC_PACKET_CONNACK_V311 = 0x402,
    /// MQTT 3.1.1 SUBACK return codes (0, 1, 2 granted, 0x80 failure).
    MQTTC_PACKET_SUBACK_V311 = 0x409,
}

const UNKNOWN: &std::ffi::CStr = c"unknown reason code";

/// The protocol and packet an `mqttc_packet_kind` value from C names.
fn packet_kind(kind: c_int) -> Option<(Version, PacketType)> {
    use mqttc_packet_kind::*;
    const KINDS: [(c_int, Version, PacketType); 11] = [
        (MQTTC_PACKET_CONNACK as c_int, Version::V5, PacketType::ConnAck),
        (MQTTC_PACKET_PUBACK as c_int, Version::V5, PacketType::PubAck),
        (MQTTC_PACKET_PUBREC as c_int, Version::V5, PacketType::PubRec),
        (MQTTC_PACKET_PUBREL as c_int, Version::V5, PacketType::PubRel),
        (MQTTC_PACKET_PUBCOMP as c_int, Version::V5, PacketType::PubComp),
        (MQTTC_PACKET_SUBACK as c_int, Version::V5, PacketType::SubAck),
        (MQTTC_PACKET_UNSUBACK as c_int, Version::V5, PacketType::UnsubAck),
        (MQTTC_PACKET_DISCONNECT as c_int, Version::V5, PacketType::Disconnect),
        (MQTTC_PACKET_AUTH as c_int, Version::V5, PacketType::Auth),
        (MQTTC_PACKET_CONNACK_V311 as c_int, Version::V311, PacketType::ConnAck),
        (MQTTC_PACKET_SUBACK_V311 as c_int, Version::V311, PacketType::SubAck),
    ];
    KINDS
        .into_iter()
        .find(|(k, ..)| *k == kind)
        .map(|(_, version, packet)| (version, packet))
}

/// A static, NUL-terminated English name for the reason code `code` as the MQTT specification
/// names it in the packet `kind` (an `mqttc_packet_kind` value): MQTT 5's reason codes (0x00 is
/// "Success" in a PUBACK, "Normal disconnection" in a DISCONNECT, "Granted QoS 0" in a SUBACK),
/// MQTT 3.1.1's CONNACK and SUBACK return codes as they arrive on the wire (0 to 5, and 0, 1, 2,
/// 0x80). A code that packet cannot carry, or a kind that is not an `mqttc_packet_kind`, gives
/// "unknown reason code". Like libmosquitto's `mosquitto_reason_string` and
/// `mosquitto_connack_string`.
///
/// Takes a plain `int` for the kind so that any value is safe to pass. The string is owned by
/// the library and valid for the life of the process: never free it. Never NULL.
///
/// Errors: none: every code and kind gives a string.
#[unsafe(no_mangle)]
pub extern "C" fn mqttc_reason_str(code: u8, kind: c_int) -> *const c_char {
    catch_unwind(|| {
        packet_kind(kind)
            .and_then(|(version, packet)| ReasonCode(code).name_in(version, packet))
            .unwrap_or(UNKNOWN)
    })
    .unwrap_or(UNKNOWN)
    .as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::ffi::CStr;

    fn name(code: u8, kind: mqttc_packet_kind) -> &'static str {
        // SAFETY: the function returns a static NUL-terminated string.
        unsafe { CStr::from_ptr(mqttc_reason_str(code, kind as c_int)) }
            .to_str()
            .unwrap()
    }

    #[test]
    fn zero_and_other_codes_are_named_for_their_packet() {
        use mqttc_packet_kind::*;
        assert_eq!(name(0x00, MQTTC_PACKET_CONNACK), "Success");
        assert_eq!(name(0x00, MQTTC_PACKET_DISCONNECT), "Normal disconnection");
        assert_eq!(name(0x00, MQTTC_PACKET_SUBACK), "Granted QoS 0");
        assert_eq!(name(0x04, MQTTC_PACKET_DISCONNECT), "Disconnect with Will Message");
        assert_eq!(name(0x80, MQTTC_PACKET_PUBACK), "Unspecified error");
        assert_eq!(
            name(0x04, MQTTC_PACKET_CONNACK_V311),
            "Connection Refused, bad user name or password"
        );
        assert_eq!(name(0x80, MQTTC_PACKET_SUBACK_V311), "Failure");
        assert_eq!(name(0x04, MQTTC_PACKET_PUBACK), "unknown reason code");
        assert_eq!(name(0x86, MQTTC_PACKET_CONNACK_V311), "unknown reason code");
    }

    #[test]
    fn kinds_that_are_not_packet_kinds_give_the_unknown_name() {
        for kind in [-1, 0, 1, 3, 8, 16, 0x400, 0x404, c_int::MAX, c_int::MIN] {
            // SAFETY: as above.
            let got = unsafe { CStr::from_ptr(mqttc_reason_str(0, kind)) };
            assert_eq!(got, UNKNOWN, "kind {kind}");
        }
    }

    #[test]
    fn every_kind_names_each_of_its_codes_differently() {
        for kind in [2, 4, 5, 6, 7, 9, 11, 14, 15, 0x402, 0x409] {
            let named: Vec<&CStr> = (0..=255u8)
                // SAFETY: as above.
                .map(|code| unsafe { CStr::from_ptr(mqttc_reason_str(code, kind)) })
                .filter(|n| *n != UNKNOWN)
                .collect();
            assert!(!named.is_empty(), "kind {kind:#x}");
            assert_eq!(
                named.iter().collect::<HashSet<_>>().len(),
                named.len(),
                "kind {kind:#x}"
            );
        }
    }
}
