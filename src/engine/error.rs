//! Why an operation failed. One variant per cause the caller can act on; the C layer maps each to a
//! stable status code.
use std::fmt;

use super::Full;
use crate::codec::{CodecError, Properties, PropertyId, ReasonCode};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The client is not connected and the operation cannot be queued.
    NotConnected,
    /// `connect` was called while a connection exists or is being made.
    AlreadyConnected,
    /// The broker answered CONNACK with a refusal (a 3.1.1 return code as its MQTT 5 equivalent).
    /// An MQTT 5 CONNACK may say why (its Reason String) and, for 0x9C "use another server" or
    /// 0x9D "server moved", which server to use instead (its Server Reference).
    Refused {
        code: ReasonCode,
        reason: Option<String>,
        server_reference: Option<String>,
    },
    /// Name resolution, TCP/Unix connect or a socket read/write failed.
    Io(String),
    /// The TLS handshake failed or TLS broke the connection (the text says why and what to set).
    Tls(String),
    /// No CONNACK (or no connection) within the connect timeout.
    ConnectTimeout,
    /// No PINGRESP within the ping timeout: the link is considered dead.
    KeepAliveTimeout,
    /// The broker closed the connection.
    ConnectionClosed,
    /// The broker sent bytes that are not valid MQTT; the connection was closed.
    Protocol(CodecError),
    /// The broker sent a packet a client must never receive, or one out of place.
    UnexpectedPacket(&'static str),
    /// All 65535 packet ids are in use by unacknowledged operations.
    PacketIdsExhausted,
    /// The broker refused one or more filters of a SUBSCRIBE (return code 0x80); `codes` holds the
    /// SUBACK's return code for every filter, in request order; `properties` the SUBACK's (MQTT 5).
    SubscribeRefused { codes: Vec<u8>, properties: Properties },
    /// MQTT 5: the broker refused a publish (PUBACK or PUBREC reason code 0x80 or above).
    PublishRefused { code: u8, properties: Properties },
    /// MQTT 5: the broker refused one or more filters of an UNSUBSCRIBE; `codes` holds the
    /// UNSUBACK's reason code for every filter, in request order.
    UnsubscribeRefused { codes: Vec<u8>, properties: Properties },
    /// MQTT 5: the broker ended the connection with DISCONNECT, saying why, and perhaps which
    /// server to use instead (reason code 0x9C "use another server" or 0x9D "server moved").
    ServerDisconnected {
        code: ReasonCode,
        reason: Option<String>,
        server_reference: Option<String>,
    },
    /// MQTT 5: the packet is larger than the broker's Maximum Packet Size, so it was not sent.
    PacketTooLarge { size: usize, max: usize },
    /// The operation was abandoned: disconnect or client free while it was waiting.
    Cancelled,
    /// A publish made while offline did not fit in the offline queue (overflow policy "reject new").
    QueueFull,
    /// The outgoing budget is spent: publishes, subscribes and unsubscribes accepted and not yet
    /// completed hold as much as the options allow (see `Options::outgoing`).
    OutgoingFull(Full),
    /// A publish waiting in the offline queue was dropped to make room for a newer one (overflow
    /// policy "drop oldest").
    Dropped,
    /// The store (see `Options::store`) could not be opened, or could not take a record: a full
    /// disk, a failing application store. The text says which and why.
    Store(String),
    /// An event-mode call on a client made without `event_mode`.
    EventModeOff,
    /// MQTT 5 enhanced authentication: the client ended an AUTH exchange, because the
    /// application's handler failed it (or none was set); the text says which. The connection
    /// was closed after a DISCONNECT.
    AuthFailed(String),
    /// A request MQTT forbids, caught before it was sent.
    InvalidArgument(&'static str),
    /// A panic stopped the client's network task or callback thread (a bug: the text says where
    /// and why). Pending operations fail with it, and so does every later one that needs the
    /// network task.
    Panic(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotConnected => write!(f, "the client is not connected"),
            Error::AlreadyConnected => write!(f, "the client is already connected or connecting"),
            Error::Refused {
                code,
                reason,
                server_reference,
            } => {
                write!(f, "the broker refused the connection: {code}")?;
                explain(f, reason, server_reference)
            }
            Error::Io(e) | Error::Tls(e) => write!(f, "{e}"),
            Error::ConnectTimeout => write!(f, "connect timed out"),
            Error::KeepAliveTimeout => write!(f, "no PINGRESP from the broker within the ping timeout"),
            Error::ConnectionClosed => write!(f, "the broker closed the connection"),
            Error::Protocol(e) => write!(f, "protocol violation by the broker: {e}"),
            Error::UnexpectedPacket(what) => write!(f, "protocol violation by the broker: unexpected {what}"),
            Error::PacketIdsExhausted => write!(f, "all 65535 packet ids are in use"),
            Error::SubscribeRefused { properties, .. } => {
                write!(f, "the broker refused the subscription")?;
                explain(f, &reason_string(properties), &None)
            }
            Error::PublishRefused { code, properties } => {
                write!(f, "the broker refused the publish: {}", ReasonCode(*code))?;
                explain(f, &reason_string(properties), &None)
            }
            Error::UnsubscribeRefused { properties, .. } => {
                write!(f, "the broker refused the unsubscribe")?;
                explain(f, &reason_string(properties), &None)
            }
            Error::ServerDisconnected {
                code,
                reason,
                server_reference,
            } => {
                write!(f, "the broker disconnected: {code}")?;
                explain(f, reason, server_reference)
            }
            Error::PacketTooLarge { size, max } => write!(
                f,
                "the packet is {size} bytes, more than the broker's maximum packet size of {max}"
            ),
            Error::Cancelled => write!(f, "the operation was cancelled"),
            Error::QueueFull => write!(f, "the offline queue is full"),
            Error::OutgoingFull(Full { held, limits }) => write!(
                f,
                "the outgoing limit is reached: {} operations holding {} bytes await the broker \
                 (limits: {} messages, {} bytes); wait for some tokens to complete",
                held.messages, held.bytes, limits.messages, limits.bytes
            ),
            Error::Dropped => write!(f, "dropped from the full offline queue for a newer message"),
            Error::Store(why) => write!(f, "store: {why}"),
            Error::EventModeOff => write!(f, "the client was not made in event mode"),
            Error::AuthFailed(why) => write!(f, "authentication ended by the client: {why}"),
            Error::InvalidArgument(why) => write!(f, "{why}"),
            Error::Panic(what) => write!(f, "internal error, please report it: {what}"),
        }
    }
}

/// The rest of a refusal's or a DISCONNECT's text: the broker's reason string and the server it
/// names instead, when it gave them.
fn explain(f: &mut fmt::Formatter<'_>, reason: &Option<String>, server_reference: &Option<String>) -> fmt::Result {
    if let Some(reason) = reason {
        write!(f, ": {reason}")?;
    }
    if let Some(server) = server_reference {
        write!(f, " (use server {server})")?;
    }
    Ok(())
}

/// An acknowledgement's MQTT 5 Reason String, the broker's own words for a refusal.
fn reason_string(properties: &Properties) -> Option<String> {
    properties.str(PropertyId::ReasonString).map(|s| s.as_str().to_owned())
}

impl Error {
    /// A CONNACK refusal that says nothing more than its code (as every 3.1.1 one).
    pub fn refused(code: ReasonCode) -> Error {
        Error::Refused {
            code,
            reason: None,
            server_reference: None,
        }
    }

    /// The properties of the acknowledgement that refused an operation (MQTT 5): None for
    /// failures no acknowledgement described.
    pub fn properties(&self) -> Option<&Properties> {
        match self {
            Error::SubscribeRefused { properties, .. }
            | Error::UnsubscribeRefused { properties, .. }
            | Error::PublishRefused { properties, .. } => Some(properties),
            _ => None,
        }
    }

    /// The reason codes a failure from the broker carries: every filter's for a refused
    /// (un)subscribe, the one code of a refused connect or publish or of a server DISCONNECT;
    /// None for failures the broker did not describe with codes.
    pub fn reason_codes(&self) -> Option<Vec<u8>> {
        match self {
            Error::SubscribeRefused { codes, .. } | Error::UnsubscribeRefused { codes, .. } => Some(codes.clone()),
            Error::PublishRefused { code, .. } => Some(vec![*code]),
            Error::Refused { code, .. } | Error::ServerDisconnected { code, .. } => Some(vec![code.0]),
            _ => None,
        }
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        // tokio-rustls reports handshake failures and alerts as I/O errors wrapping rustls's own.
        match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
            Some(tls) => Error::Tls(super::tls::explain(tls)),
            None => Error::Io(e.to_string()),
        }
    }
}

impl From<CodecError> for Error {
    fn from(e: CodecError) -> Self {
        Error::Protocol(e)
    }
}
