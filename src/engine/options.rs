//! [`Options`]: everything about a connection that is fixed when the client is made.
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{Limits, Loop, Overflow, Pool, store, tls, transport};
use crate::codec::{MAX_REMAINING_LENGTH, MqttStr, Properties, PropertyId, Version, Will};

/// MQTT's own maximum packet size: a remaining length of 268,435,455 bytes after a 5-byte fixed
/// header.
const MAX_PACKET_SIZE: usize = MAX_REMAINING_LENGTH + 5;

/// Everything about a connection that is fixed when the client is made (MQTTClient.jl's
/// `MakeConnection` arguments plus the knobs C users expect).
#[derive(Debug, Clone)]
pub struct Options {
    /// MQTT 3.1.1 (the default) or 5.
    pub version: Version,
    /// MQTT 5: how long, in seconds, the broker keeps the session after the connection ends (0:
    /// it ends with the connection; 0xFFFFFFFF: never). 3.1.1 has `clean_session` only.
    pub session_expiry: u32,
    /// MQTT 5: how many topic aliases the broker may use towards this client (0: none). Inbound
    /// aliases are resolved by the library; handlers always see the whole topic.
    pub topic_alias_maximum: u16,
    /// MQTT 5: how many topics this client's publishes may replace by an alias (0: none, the
    /// default), within the broker's Topic Alias Maximum; least recently used aliases are reused.
    pub topic_alias_max_out: u16,
    /// MQTT 5: properties the application adds to CONNECT (user properties, Receive Maximum,
    /// request/response and problem information, and the Authentication Method and Data that
    /// start enhanced authentication). Those the options above set are the engine's.
    pub connect_properties: Properties,
    pub client_id: String,
    pub clean_session: bool,
    /// Seconds; 0 turns keep-alive off.
    pub keep_alive: u16,
    /// How long to wait for PINGRESP before declaring the link dead.
    pub ping_timeout: Duration,
    pub connect_timeout: Duration,
    /// How long `disconnect` waits for in-flight QoS 1/2 publishes to be acknowledged.
    pub disconnect_timeout: Duration,
    /// The first connection's credentials and will; `Client::set_credentials` and
    /// `Client::set_will` change them for later ones.
    pub username: Option<MqttStr>,
    pub password: Option<Bytes>,
    pub will: Option<Will>,
    /// Outbound QoS 1/2 publishes awaiting acknowledgement at once; the rest wait in order.
    pub max_inflight: usize,
    /// Largest inbound packet accepted, fixed header included. A larger one closes the connection
    /// as soon as its fixed header arrives (MQTT 5: after a DISCONNECT with reason 0x95, Packet too
    /// large); an MQTT 5 CONNECT tells the broker, which then drops larger messages for this
    /// client. Default: MQTT's maximum, 268,435,460 bytes, which is what libmosquitto and Paho C
    /// accept, so whatever the broker took from a publisher reaches this client. A large limit
    /// costs no memory of its own: the read buffer grows with the bytes that arrive, not with the
    /// length a header declares. A lower default would make an MQTT 3.1.1 client, which cannot tell
    /// the broker its limit, drop the connection on every larger message, and meet a retained or
    /// queued one again on each reconnect.
    pub max_packet_size: usize,
    /// Completed token results kept for polling (older ones report `Expired`).
    pub token_history: usize,
    /// Events (messages, completions) queued for the callback thread before reading pauses; in
    /// event mode, also the bound of the application's event queue.
    pub callback_queue: usize,
    /// Event mode (see [`events`](super::events)): completions, connection changes, and messages for subscriptions
    /// made with [`Handler::Queue`](super::Handler::Queue), wait in a queue the application drains.
    pub event_mode: bool,
    /// Run the callbacks on the network thread instead of a callback thread of their own, as
    /// libmosquitto and Paho C do: a thread hand-off less per message (lower latency, less CPU),
    /// but while a callback runs the connection stands still (no reading, writing or keep-alive).
    /// Not with `event_mode`, whose full queue would then stall the connection too.
    pub inline_callbacks: bool,
    /// Run the connection on this loop instead of a network thread: it advances, and callbacks
    /// run, only inside [`Loop::run`] or a wait on one of the client's tokens. Implies
    /// `inline_callbacks`; not with `event_mode`.
    pub run_loop: Option<Arc<Loop>>,
    /// Run the connection and the callbacks on this pool's threads, shared with its other clients,
    /// instead of two threads of the client's own. Not with `run_loop` or `inline_callbacks`.
    pub pool: Option<Arc<Pool>>,
    /// The local address of TCP connections (`mosquitto_pub -A`), its port chosen by the system;
    /// `None`: the system picks.
    pub bind_address: Option<IpAddr>,
    /// A SOCKS5 proxy every TCP connection goes through (TLS and WebSockets over it), which
    /// resolves the broker's host name itself; `bind_address` is then the local address of the
    /// connection to the proxy.
    pub proxy: Option<transport::Proxy>,
    /// Reconnect by itself after a connection is lost (not after a failed first connect).
    pub auto_reconnect: bool,
    /// Bounds of the exponential backoff between reconnect attempts.
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// The outgoing budget: what publishes, subscribes and unsubscribes accepted and not yet
    /// completed may hold in all, wherever they wait (the command queue, the queue beyond the
    /// in-flight window, in flight awaiting their acknowledgement, or the offline queue). A QoS 0
    /// publish counts until it is written, a QoS 1/2 one until acknowledged. A broker that stops
    /// acknowledging thus costs at most this much memory. Default 65,536 messages and 64 MiB: far
    /// more than a healthy connection holds (its in-flight window and what the socket has not yet
    /// taken), and four times the offline queue's bytes, which it contains.
    pub outgoing: Limits,
    /// How long a call that finds the budget spent waits for room before it fails with
    /// [`Error::OutgoingFull`]; zero (the default) fails at once.
    pub outgoing_wait: Duration,
    /// Limits of the offline queue (publishes made while there is no connection), within the
    /// outgoing budget.
    pub offline_max_messages: usize,
    pub offline_max_bytes: usize,
    pub offline_overflow: Overflow,
    /// Also queue publishes made before the first `connect` (otherwise they fail NotConnected).
    pub queue_before_connect: bool,
    /// With several servers: start each reconnect at the server after the last one used, rather
    /// than at the first of the list.
    pub rotate_servers: bool,
    /// The TLS configuration, needed when any server address uses TLS.
    pub tls: Option<tls::Connector>,
    /// Send the PUBACK (QoS 1) or PUBREC (QoS 2) of an inbound message only once the application
    /// is done with it: its callbacks returned, or (event mode) its event's
    /// [`PendingAck`](super::PendingAck) was released; in arrival order, and never on a later
    /// connection than the message's. Off by default (see `mqttc_options.ack_after_callback`).
    pub ack_after_callback: bool,
    /// Where accepted QoS 1/2 publishes are kept until acknowledged, and inbound QoS 2 ids until
    /// released, so that a client started again after a crash resends them (see [`store`]).
    /// None (the default): in memory only.
    pub store: Option<Arc<store::Store>>,
    /// With a clean session (`clean_session`), messages an earlier session stored are deleted
    /// rather than sent as new messages.
    pub store_drop_on_clean: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            version: Version::V311,
            session_expiry: 0,
            topic_alias_maximum: 16,
            topic_alias_max_out: 0,
            connect_properties: Properties::new(),
            client_id: String::new(),
            clean_session: true,
            keep_alive: 60,
            ping_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(30),
            disconnect_timeout: Duration::from_secs(10),
            username: None,
            password: None,
            will: None,
            // libmosquitto's default, and mosquitto's own max_inflight_messages: with more QoS 2
            // messages in flight than that, mosquitto 2.0 accepts them but forwards only some.
            max_inflight: 20,
            max_packet_size: MAX_PACKET_SIZE,
            token_history: 65536,
            callback_queue: 4096,
            event_mode: false,
            inline_callbacks: false,
            run_loop: None,
            pool: None,
            bind_address: None,
            proxy: None,
            auto_reconnect: true,
            reconnect_min: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(30),
            outgoing: Limits {
                messages: 65_536,
                bytes: 64 << 20,
            },
            outgoing_wait: Duration::ZERO,
            offline_max_messages: 10_000,
            offline_max_bytes: 16 << 20,
            offline_overflow: Overflow::RejectNew,
            queue_before_connect: false,
            rotate_servers: false,
            tls: None,
            ack_after_callback: false,
            store: None,
            store_drop_on_clean: false,
        }
    }
}

/// Why enhanced authentication and event mode do not mix.
pub(super) const AUTH_NEEDS_CALLBACKS: &str = "enhanced authentication (an Authentication Method in the CONNECT \
     properties) needs callbacks: the broker's AUTH challenges are answered by the auth handler, which a library \
     thread runs, and event mode is for runtimes that must not be entered from one; make the client without \
     event_mode";

impl Options {
    /// The CONNECT's Authentication Method: set, it starts MQTT 5 enhanced authentication.
    pub fn authentication_method(&self) -> Option<MqttStr> {
        self.connect_properties.str(PropertyId::AuthenticationMethod)
    }

    /// Enhanced authentication asks a handler for each step, which event mode cannot run; and
    /// Authentication Data without a method is a protocol error (MQTT 5 section 3.1.2.11.10).
    pub(super) fn check_authentication(&self) -> std::io::Result<()> {
        let invalid = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, why.to_owned());
        let method = self.authentication_method().is_some();
        if method && self.event_mode {
            return Err(invalid(AUTH_NEEDS_CALLBACKS));
        }
        if !method && self.connect_properties.get(PropertyId::AuthenticationData).is_some() {
            return Err(invalid(
                "Authentication Data in the CONNECT properties needs an Authentication Method (MQTT 5 section 3.1.2.11.10)",
            ));
        }
        Ok(())
    }
}
