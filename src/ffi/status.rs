//! The status enum every exported function returns, and its names.
use std::ffi::c_char;

use crate::codec::ReasonCode;
use crate::engine::Error;

/// Result of every mqttclient call and of every token. Values are stable and never reused:
/// 0 is success, 1 means "still pending", negative values are errors. MQTT return/reason codes
/// from the broker are reported separately (`mqttc_token_codes`). The comment of each function
/// that returns a status ends with an Errors paragraph: every status other than MQTTC_OK it can
/// return, each with the case that leads to it where the value's own comment does not say.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum mqttc_status {
    MQTTC_OK = 0,
    /// The token's operation has not completed yet.
    MQTTC_PENDING = 1,
    /// A required pointer argument was NULL.
    MQTTC_ERR_NULL = -1,
    /// A string argument is not valid UTF-8.
    MQTTC_ERR_INVALID_UTF8 = -2,
    /// A QoS outside 0..2.
    MQTTC_ERR_INVALID_QOS = -3,
    /// A topic name that is empty, too long, contains U+0000 or wildcards ('+', '#').
    MQTTC_ERR_INVALID_TOPIC = -4,
    /// A malformed topic filter ('#' not last, '+'/'#' not a whole level, empty, ...).
    MQTTC_ERR_INVALID_FILTER = -5,
    /// A payload or packet larger than MQTT allows (268,435,455 bytes of remaining length).
    MQTTC_ERR_PAYLOAD_TOO_LARGE = -6,
    /// Some other argument is out of range (see `mqttc_last_error`).
    MQTTC_ERR_INVALID_ARGUMENT = -7,
    /// The client, loop, pool or store handle is not a live one (freed, or never made by this
    /// library).
    MQTTC_ERR_INVALID_HANDLE = -8,
    /// The `struct_size` of a struct the caller passes (`mqttc_options`, `mqttc_subscription`,
    /// `mqttc_property`, `mqttc_store_callbacks`) is not one this library knows.
    MQTTC_ERR_STRUCT_SIZE = -9,
    /// An event-mode function on a client made without `event_mode` in its options.
    MQTTC_ERR_EVENT_MODE_OFF = -10,
    /// The property asked for is not in the list (or an index is past its end).
    MQTTC_ERR_NOT_FOUND = -11,
    /// An MQTT 5 feature (properties, subscription options, a disconnect reason) on a client made
    /// for MQTT 3.1.1: set `protocol_version` to 5.
    MQTTC_ERR_NOT_SUPPORTED = -12,
    /// The client is not connected (connect first, or it was disconnected).
    MQTTC_ERR_NOT_CONNECTED = -20,
    /// `mqttc_connect` while connected or connecting.
    MQTTC_ERR_ALREADY_CONNECTED = -21,
    /// A blocking wait was called on the client's callback thread, where it could deadlock.
    MQTTC_ERR_IN_CALLBACK = -22,
    /// `mqttc_token_wait` timed out; the operation is still pending.
    MQTTC_ERR_TIMEOUT = -23,
    /// The token was never issued by this client.
    MQTTC_ERR_TOKEN_UNKNOWN = -24,
    /// The token completed long ago and its result is no longer kept (see `token_history`).
    MQTTC_ERR_TOKEN_EXPIRED = -25,
    /// The operation was abandoned: disconnect or client free while it waited, or (for a QoS 0
    /// publish, or a connect superseded by `mqttc_reconnect`) the connection was lost.
    MQTTC_ERR_CANCELLED = -26,
    /// All 65535 packet ids are in use by unacknowledged operations.
    MQTTC_ERR_PACKET_IDS_EXHAUSTED = -27,
    /// The outgoing budget is spent (`outgoing_max_messages` / `outgoing_max_bytes`, after
    /// `outgoing_wait_ms`), or a publish made while offline did not fit in the offline queue
    /// (policy MQTTC_OVERFLOW_REJECT_NEW, or larger than `offline_max_bytes`). Nothing was queued.
    MQTTC_ERR_QUEUE_FULL = -28,
    /// A publish waiting in the offline queue was dropped to make room for a newer one (policy
    /// MQTTC_OVERFLOW_DROP_OLDEST).
    MQTTC_ERR_DROPPED = -29,
    /// The message store (`store_dir`) could not be opened (in use by another client, not
    /// writable) or could not take the message (a full disk): the publish was not accepted, and
    /// nothing stored before is lost. The message says why.
    MQTTC_ERR_STORE = -30,
    /// A network error: name resolution, connect, read or write failed.
    MQTTC_ERR_IO = -40,
    /// No connection or CONNACK within the connect timeout.
    MQTTC_ERR_CONNECT_TIMEOUT = -41,
    /// No PINGRESP within the ping timeout: the connection was dropped.
    MQTTC_ERR_KEEPALIVE_TIMEOUT = -42,
    /// The broker closed the connection.
    MQTTC_ERR_CONNECTION_CLOSED = -43,
    /// The broker violated the protocol; the connection was closed.
    MQTTC_ERR_PROTOCOL = -44,
    /// TLS failed: a bad CA, certificate or key file when the client is made; the handshake or a
    /// TLS alert when connecting. The message says why and which option to set.
    MQTTC_ERR_TLS = -45,
    /// MQTT 5: the broker ended the connection with DISCONNECT; the message gives its reason
    /// code, reason string and any server reference (another server to use).
    MQTTC_ERR_SERVER_DISCONNECTED = -46,
    /// MQTT 5 enhanced authentication: the client ended an AUTH exchange, during the connect or a
    /// re-authentication, because the authentication callback returned false (or none was set, or
    /// its reply properties were not ones an AUTH may carry); the connection was closed after a
    /// DISCONNECT with reason code 0x80. The message says why.
    MQTTC_ERR_AUTH_FAILED = -47,
    /// CONNACK 1: the broker does not support this protocol version.
    MQTTC_ERR_REFUSED_PROTOCOL_VERSION = -61,
    /// CONNACK 2: the client identifier was rejected.
    MQTTC_ERR_REFUSED_IDENTIFIER = -62,
    /// CONNACK 3: the server is unavailable.
    MQTTC_ERR_REFUSED_SERVER_UNAVAILABLE = -63,
    /// CONNACK 4: bad user name or password.
    MQTTC_ERR_REFUSED_BAD_CREDENTIALS = -64,
    /// CONNACK 5: not authorized.
    MQTTC_ERR_REFUSED_NOT_AUTHORIZED = -65,
    /// The broker refused at least one filter of a subscribe (SUBACK 0x80); see `mqttc_token_codes`.
    MQTTC_ERR_SUBSCRIBE_REFUSED = -66,
    /// MQTT 5: the broker refused the connection with a reason code other than those above
    /// (banned, server moved, quota exceeded, ...); see `mqttc_token_codes`.
    MQTTC_ERR_REFUSED = -67,
    /// MQTT 5: the broker refused a publish (PUBACK/PUBREC reason code 0x80 or above: not
    /// authorized, quota exceeded, ...); `mqttc_token_codes` gives the code.
    MQTTC_ERR_PUBLISH_REFUSED = -68,
    /// MQTT 5: the broker refused at least one filter of an unsubscribe; `mqttc_token_codes`
    /// gives every filter's UNSUBACK reason code.
    MQTTC_ERR_UNSUBSCRIBE_REFUSED = -69,
    /// A thread or runtime could not be created, or memory for what a call was asked to copy
    /// could not be had.
    MQTTC_ERR_RESOURCE = -98,
    /// An internal error (a caught panic); please report it. A panic on a client's network task
    /// or callback thread stops that client: its pending tokens fail with this status, the
    /// connection callback (or event) reports LOST with it, the state becomes
    /// MQTTC_STATE_DISCONNECTED, and later calls that need the connection (publish, subscribe,
    /// connect, ...) return it at once. Free the client; other clients are not affected. Any call
    /// may return it, so the Errors paragraphs name it only for those that return it for a
    /// stopped client.
    MQTTC_ERR_PANIC = -99,
}

impl From<&Error> for mqttc_status {
    fn from(e: &Error) -> Self {
        use mqttc_status::*;
        match e {
            Error::NotConnected => MQTTC_ERR_NOT_CONNECTED,
            Error::AlreadyConnected => MQTTC_ERR_ALREADY_CONNECTED,
            // The five 3.1.1 return codes keep their statuses; MQTT 5's other refusals share one,
            // and `mqttc_token_codes` gives the reason code itself.
            Error::Refused { code, .. } => match *code {
                ReasonCode::UNSUPPORTED_PROTOCOL_VERSION => MQTTC_ERR_REFUSED_PROTOCOL_VERSION,
                ReasonCode::CLIENT_IDENTIFIER_NOT_VALID => MQTTC_ERR_REFUSED_IDENTIFIER,
                ReasonCode::SERVER_UNAVAILABLE => MQTTC_ERR_REFUSED_SERVER_UNAVAILABLE,
                ReasonCode::BAD_USER_NAME_OR_PASSWORD => MQTTC_ERR_REFUSED_BAD_CREDENTIALS,
                ReasonCode::NOT_AUTHORIZED => MQTTC_ERR_REFUSED_NOT_AUTHORIZED,
                _ => MQTTC_ERR_REFUSED,
            },
            Error::Io(_) => MQTTC_ERR_IO,
            Error::Tls(_) => MQTTC_ERR_TLS,
            Error::ConnectTimeout => MQTTC_ERR_CONNECT_TIMEOUT,
            Error::KeepAliveTimeout => MQTTC_ERR_KEEPALIVE_TIMEOUT,
            Error::ConnectionClosed => MQTTC_ERR_CONNECTION_CLOSED,
            Error::Protocol(_) | Error::UnexpectedPacket(_) => MQTTC_ERR_PROTOCOL,
            Error::PacketIdsExhausted => MQTTC_ERR_PACKET_IDS_EXHAUSTED,
            Error::SubscribeRefused { .. } => MQTTC_ERR_SUBSCRIBE_REFUSED,
            Error::PublishRefused { .. } => MQTTC_ERR_PUBLISH_REFUSED,
            Error::UnsubscribeRefused { .. } => MQTTC_ERR_UNSUBSCRIBE_REFUSED,
            Error::ServerDisconnected { .. } => MQTTC_ERR_SERVER_DISCONNECTED,
            Error::PacketTooLarge { .. } => MQTTC_ERR_PAYLOAD_TOO_LARGE,
            Error::Cancelled => MQTTC_ERR_CANCELLED,
            Error::QueueFull | Error::OutgoingFull(_) => MQTTC_ERR_QUEUE_FULL,
            Error::Dropped => MQTTC_ERR_DROPPED,
            Error::Store(_) => MQTTC_ERR_STORE,
            Error::EventModeOff => MQTTC_ERR_EVENT_MODE_OFF,
            Error::AuthFailed(_) => MQTTC_ERR_AUTH_FAILED,
            Error::InvalidArgument(_) => MQTTC_ERR_INVALID_ARGUMENT,
            Error::Panic(_) => MQTTC_ERR_PANIC,
        }
    }
}

const ALL: &[(mqttc_status, &str)] = {
    use mqttc_status::*;
    &[
        (MQTTC_OK, "success\0"),
        (MQTTC_PENDING, "pending\0"),
        (MQTTC_ERR_NULL, "a required pointer argument is NULL\0"),
        (MQTTC_ERR_INVALID_UTF8, "a string argument is not valid UTF-8\0"),
        (MQTTC_ERR_INVALID_QOS, "QoS must be 0, 1 or 2\0"),
        (MQTTC_ERR_INVALID_TOPIC, "invalid topic name\0"),
        (MQTTC_ERR_INVALID_FILTER, "invalid topic filter\0"),
        (MQTTC_ERR_PAYLOAD_TOO_LARGE, "payload too large\0"),
        (MQTTC_ERR_INVALID_ARGUMENT, "invalid argument\0"),
        (MQTTC_ERR_INVALID_HANDLE, "not a live client, loop or store handle\0"),
        (MQTTC_ERR_STRUCT_SIZE, "unknown struct_size\0"),
        (MQTTC_ERR_EVENT_MODE_OFF, "the client was not made in event mode\0"),
        (MQTTC_ERR_NOT_FOUND, "not found\0"),
        (MQTTC_ERR_NOT_SUPPORTED, "needs MQTT 5 (protocol_version 5)\0"),
        (MQTTC_ERR_NOT_CONNECTED, "not connected\0"),
        (MQTTC_ERR_ALREADY_CONNECTED, "already connected or connecting\0"),
        (MQTTC_ERR_IN_CALLBACK, "blocking wait refused on the callback thread\0"),
        (MQTTC_ERR_TIMEOUT, "timed out\0"),
        (MQTTC_ERR_TOKEN_UNKNOWN, "unknown token\0"),
        (MQTTC_ERR_TOKEN_EXPIRED, "token result expired\0"),
        (MQTTC_ERR_CANCELLED, "cancelled\0"),
        (MQTTC_ERR_PACKET_IDS_EXHAUSTED, "all packet ids in use\0"),
        (MQTTC_ERR_QUEUE_FULL, "offline queue full\0"),
        (MQTTC_ERR_DROPPED, "dropped from the full offline queue\0"),
        (MQTTC_ERR_STORE, "message store error\0"),
        (MQTTC_ERR_IO, "network error\0"),
        (MQTTC_ERR_CONNECT_TIMEOUT, "connect timed out\0"),
        (MQTTC_ERR_KEEPALIVE_TIMEOUT, "keep-alive timeout\0"),
        (MQTTC_ERR_CONNECTION_CLOSED, "connection closed by the broker\0"),
        (MQTTC_ERR_PROTOCOL, "protocol violation by the broker\0"),
        (MQTTC_ERR_TLS, "TLS error\0"),
        (
            MQTTC_ERR_REFUSED_PROTOCOL_VERSION,
            "connection refused: unacceptable protocol version\0",
        ),
        (
            MQTTC_ERR_REFUSED_IDENTIFIER,
            "connection refused: identifier rejected\0",
        ),
        (
            MQTTC_ERR_REFUSED_SERVER_UNAVAILABLE,
            "connection refused: server unavailable\0",
        ),
        (
            MQTTC_ERR_REFUSED_BAD_CREDENTIALS,
            "connection refused: bad user name or password\0",
        ),
        (MQTTC_ERR_REFUSED_NOT_AUTHORIZED, "connection refused: not authorized\0"),
        (MQTTC_ERR_SUBSCRIBE_REFUSED, "subscription refused by the broker\0"),
        (MQTTC_ERR_REFUSED, "connection refused\0"),
        (MQTTC_ERR_PUBLISH_REFUSED, "publish refused by the broker\0"),
        (MQTTC_ERR_UNSUBSCRIBE_REFUSED, "unsubscribe refused by the broker\0"),
        (MQTTC_ERR_SERVER_DISCONNECTED, "the broker disconnected\0"),
        (MQTTC_ERR_AUTH_FAILED, "authentication ended by the client\0"),
        (
            MQTTC_ERR_RESOURCE,
            "out of memory, or could not create a thread or runtime\0",
        ),
        (MQTTC_ERR_PANIC, "internal error\0"),
    ]
};

/// A static, NUL-terminated English name for a status value. Takes a plain `int` so that any value
/// is safe to pass; unknown values give "unknown status".
#[unsafe(no_mangle)]
pub extern "C" fn mqttc_status_str(status: i32) -> *const c_char {
    let s = ALL
        .iter()
        .find(|(st, _)| *st as i32 == status)
        .map_or("unknown status\0", |(_, s)| s);
    s.as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::ffi::CStr;

    #[test]
    fn every_status_has_a_distinct_name_and_value() {
        let values: HashSet<i32> = ALL.iter().map(|(s, _)| *s as i32).collect();
        let names: HashSet<&str> = ALL.iter().map(|(_, n)| *n).collect();
        assert_eq!(values.len(), ALL.len());
        assert_eq!(names.len(), ALL.len());
        for (s, n) in ALL {
            assert!(n.ends_with('\0'));
            let got = unsafe { CStr::from_ptr(mqttc_status_str(*s as i32)) };
            assert_eq!(got.to_bytes(), n.trim_end_matches('\0').as_bytes());
        }
        let unknown = unsafe { CStr::from_ptr(mqttc_status_str(12345)) };
        assert_eq!(unknown.to_str().unwrap(), "unknown status");
    }
}
