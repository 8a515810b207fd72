//! Connection options: `mqttc_options`, its defaults, and reading a caller's struct of any size.
use std::ffi::{c_char, c_int};
use std::mem::size_of;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::login::{WillArgs, credentials_arg, mqtt_text, will_arg};
use super::pool::{mqttc_pool, pool_arg};
use super::properties::{mqttc_properties, properties_arg};
use super::run_loop::{loop_arg, mqttc_loop};
use super::store::{lease, mqttc_store, store_arg};
use super::{Failure, mqttc_status, opt_str, struct_size_arg};
use crate::codec::{Holder, PacketType, PropertyId, Version};
use crate::engine::store::{Store, SyncPolicy};
use crate::engine::{self, Limits, Overflow, TlsOptions};

/// Connection options. Always initialise with `mqttc_options_init(&opts)`, which sets `struct_size`
/// and the defaults, then change what you need: fields may be appended in later versions, and
/// `struct_size` tells the library which ones your program knows.
///
/// Strings and buffers are borrowed for the duration of `mqttc_client_new*` only; the library
/// copies them.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct mqttc_options {
    /// sizeof(mqttc_options) as compiled into the caller; set by `mqttc_options_init`.
    pub struct_size: u32,
    /// Keep-alive interval in seconds; 0 turns keep-alive off. Default 60.
    pub keep_alive: u16,
    /// Start without a session (and discard any on the broker). Default true.
    pub clean_session: bool,
    /// Client identifier. NULL (the default) makes a random one ("mqttc-" + 16 hex digits); "" asks
    /// the broker to assign one (requires clean_session).
    pub client_id: *const c_char,
    /// User name, or NULL.
    pub username: *const c_char,
    /// Password bytes (need not be text), or NULL; requires a user name. At most 65,535 bytes (an
    /// MQTT binary field), like `will_payload`: a longer length is MQTTC_ERR_INVALID_ARGUMENT.
    pub password: *const u8,
    pub password_len: usize,
    /// Will topic, or NULL for no will.
    pub will_topic: *const c_char,
    pub will_payload: *const u8,
    pub will_payload_len: usize,
    pub will_qos: c_int,
    pub will_retain: bool,
    /// Milliseconds to wait for PINGRESP before the connection is declared lost. Default 30000.
    pub ping_timeout_ms: u32,
    /// Milliseconds for TCP connect plus CONNACK. Default 30000.
    pub connect_timeout_ms: u32,
    /// Milliseconds `mqttc_disconnect` waits for in-flight QoS 1/2 acknowledgements. Default 10000.
    pub disconnect_timeout_ms: u32,
    /// Outbound QoS 1/2 messages awaiting acknowledgement at once; later ones wait in order.
    /// Once the window has been full, waiting messages go out when a quarter of it is free (in
    /// larger writes, which costs less CPU than one per acknowledgement); QoS 2 PUBRELs likewise
    /// wait until a quarter of the window owes one, or no PUBREC is still to come. Default 20 (as
    /// libmosquitto, and mosquitto's max_inflight_messages).
    pub max_inflight: u32,
    /// Largest inbound packet in bytes, fixed header included; a larger one closes the connection
    /// (MQTT 5: after a DISCONNECT with reason 0x95, Packet too large), and MQTT 5 tells the broker
    /// in CONNECT. Default 268435460, MQTT's maximum, which libmosquitto and Paho C accept too: the
    /// library holds in memory only the bytes of a packet that have arrived, never its declared
    /// length, so the limit costs nothing until a broker sends that much; a lower one would make an
    /// MQTT 3.1.1 client (which cannot tell the broker) drop the connection on each larger message.
    pub max_packet_size: u32,
    /// How many completed token results are kept for polling. Default 65536. Each costs 40-75
    /// bytes once completed (2.5-5 MiB in all at the default): processes with thousands of
    /// clients should lower it.
    pub token_history: u32,
    /// Events queued for the callback thread before the library stops reading the socket.
    /// Default 4096.
    pub callback_queue: u32,
    /// Reconnect by itself when an established connection is lost, with exponential backoff and
    /// jitter between `reconnect_min_ms` and `reconnect_max_ms`. A failed first `mqttc_connect`
    /// is not retried (its token reports the failure). Default true.
    pub auto_reconnect: bool,
    /// Default 1000.
    pub reconnect_min_ms: u32,
    /// Default 30000.
    pub reconnect_max_ms: u32,
    /// Publishes made while there is no connection (after a loss, while reconnecting) wait in
    /// order in the offline queue, bounded by count and by bytes (topic + payload), and go out on
    /// the next connection. 0 messages turns offline queueing off: such publishes fail with
    /// MQTTC_ERR_QUEUE_FULL. Default 10000 messages, 16 MiB.
    pub offline_max_messages: u32,
    pub offline_max_bytes: usize,
    /// What happens when the offline queue is full: an `mqttc_overflow` value. Default
    /// MQTTC_OVERFLOW_REJECT_NEW.
    pub offline_overflow: c_int,
    /// Also queue publishes made before the first `mqttc_connect` (otherwise they fail with
    /// MQTTC_ERR_NOT_CONNECTED). Default false.
    pub queue_before_connect: bool,
    /// With several servers (`mqttc_client_new_uris`): start each reconnect at the server after
    /// the one last connected to, instead of at the first of the list. Default false.
    pub rotate_servers: bool,
    /// Event mode, for runtimes that must not be called from a library thread (Julia, Python,
    /// event loops): token completions, connection changes, and messages for subscriptions made
    /// with a NULL `on_message` wait in a queue drained with `mqttc_event_next`; see
    /// `mqttc_event_fd` and `mqttc_event_set_wakeup`. The queue holds up to `callback_queue`
    /// events; when it is full the library stops reading the socket until the application drains.
    /// Callbacks that are set still run as usual. Default false.
    pub event_mode: bool,
    /// Use TLS for every server: how a host-and-port client (`mqttc_client_new`) asks for it.
    /// Server URIs with `mqtts://`, `ssl://`, `tls://` or `wss://` use TLS whatever this says; with
    /// this set, `ws://` ones do too. Default false.
    pub tls: bool,
    /// PEM file of the CA certificates that may sign the broker's certificate. NULL (the default)
    /// trusts the system's CA store.
    pub tls_ca_file: *const c_char,
    /// PEM client certificate chain (X.509 v1 or v3) and its unencrypted private key (PKCS#8,
    /// PKCS#1 or SEC1), for brokers that require client certificates; both or neither. A key that
    /// is not the certificate's fails the constructor with MQTTC_ERR_TLS. Default NULL.
    pub tls_cert_file: *const c_char,
    pub tls_key_file: *const c_char,
    /// The name the broker's certificate must carry (also sent as SNI), when it differs from the
    /// host connected to, e.g. a broker reached by IP address. Default NULL: the host.
    pub tls_server_name: *const c_char,
    /// ALPN protocols to offer, comma-separated, most preferred first (e.g. "mqtt", or
    /// "x-amzn-mqtt-ca" for AWS IoT on port 443). Default NULL: none.
    pub tls_alpn: *const c_char,
    /// Accept any broker certificate without verification: not its chain, dates or name (more
    /// than libmosquitto's `mosquitto_tls_insecure_set`, which skips only the name; for a name
    /// mismatch set `tls_server_name` instead). A `tls_ca_file` given with it is accepted but not
    /// used. Each connect logs a warning (MQTTC_LOG_WARNING) saying so and naming that CA file.
    /// For tests with throwaway certificates only: anyone in the middle can then read and change
    /// the traffic. Default false.
    pub tls_insecure: bool,
    /// The MQTT protocol: 4 for 3.1.1 (the default), 5 for MQTT 5.
    pub protocol_version: u8,
    /// MQTT 5: seconds the broker keeps the session after the connection ends; 0 (the default)
    /// ends it with the connection, 0xFFFFFFFF never. Not 0 with 3.1.1, which has
    /// `clean_session` instead.
    pub session_expiry: u32,
    /// MQTT 5: how many topic aliases the broker may set up towards this client (0: none).
    /// Aliased messages reach callbacks with their whole topic. Default 16.
    pub topic_alias_maximum: u16,
    /// MQTT 5: properties to add to CONNECT (user properties, Receive Maximum, Request Response
    /// Information, Request Problem Information); copied when the client is made. Session expiry,
    /// maximum packet size and topic alias maximum come from the fields above. Default NULL.
    /// After connecting, `mqttc_token_properties` on the connect token gives the CONNACK's. An
    /// Authentication Method (with any Authentication Data) starts enhanced authentication: see
    /// `mqttc_client_set_on_auth`; not with `event_mode` (MQTTC_ERR_INVALID_ARGUMENT).
    pub connect_properties: *const mqttc_properties,
    /// MQTT 5: the will's properties (Will Delay Interval, Message Expiry Interval, Content Type,
    /// Response Topic, Correlation Data, Payload Format Indicator, user properties); copied.
    /// Default NULL.
    pub will_properties: *const mqttc_properties,
    /// Run callbacks on the library's network thread instead of a callback thread of their own,
    /// as libmosquitto and Paho C do. Saves a thread hand-off per message (lower latency and CPU),
    /// but while a callback runs the connection stands still: nothing is read or written and no
    /// keep-alive goes out, so callbacks must be quick. Everything else holds as with the callback
    /// thread: any function may be called from a callback, `mqttc_token_wait` there fails with
    /// MQTTC_ERR_IN_CALLBACK, free is deferred until the callback returns. Not with `event_mode`
    /// (MQTTC_ERR_INVALID_ARGUMENT). Default false.
    pub inline_callbacks: bool,
    /// Run the client on this loop (see `mqttc_loop`) instead of threads of its own: it advances,
    /// and its callbacks run, only inside `mqttc_loop_run` or `mqttc_token_wait`. Callbacks then
    /// run on the thread running the loop (`inline_callbacks` is implied), where `mqttc_token_wait`
    /// and `mqttc_loop_run` fail with MQTTC_ERR_IN_CALLBACK. Freeing such a client outside the loop
    /// drops its connection at once; inside one of its callbacks, when that callback returns. Not
    /// with `event_mode` (MQTTC_ERR_INVALID_ARGUMENT). Borrowed: the client holds its own
    /// reference, so the loop may be freed first. Default NULL.
    pub run_loop: *const mqttc_loop,
    /// The outgoing budget: how many publishes, subscribes and unsubscribes the client holds at
    /// once, and how many bytes of topic and payload (or filters) they hold, from the call that
    /// accepts one until its token completes: a QoS 0 publish until it is written, QoS 1/2 until
    /// acknowledged, wherever it waits meanwhile (queued for the network thread, beyond the
    /// in-flight window, in flight, or in the offline queue, whose own limits apply within these).
    /// A call that finds the budget spent fails with MQTTC_ERR_QUEUE_FULL and queues nothing, so a
    /// broker that stops acknowledging costs at most this much memory, and every publish accepted
    /// is still delivered once it resumes. Default 65536 messages and 64 MiB: far more than a
    /// healthy connection holds (the in-flight window and what the socket has not yet taken).
    /// At least 1 message.
    pub outgoing_max_messages: u32,
    pub outgoing_max_bytes: usize,
    /// How long a call that finds the outgoing budget spent waits for room before failing with
    /// MQTTC_ERR_QUEUE_FULL. 0 (the default) fails at once. Never waits inside this client's
    /// callbacks, or on a thread running its loop, which is where room is made; with a loop, the
    /// wait runs it.
    pub outgoing_wait_ms: u32,
    /// Acknowledge an inbound QoS 1 or 2 message (PUBACK, or PUBREC) only once the application is
    /// done with it: when its message callbacks have returned (on the callback thread; with
    /// `inline_callbacks` or `run_loop`, when the inline call returned), and for a MESSAGE event
    /// when `mqttc_event_free` releases it. The choice for at-least-once consumers: with a session
    /// the broker keeps (`clean_session` false, or MQTT 5 `session_expiry` above 0) and a fixed
    /// `client_id`, a message is never lost to a crash, an exit or `mqttc_client_free` while it
    /// waits in a queue or its callback runs; the broker sends it again on the next connection.
    ///
    /// Acknowledgements keep the order in which the messages arrived (MQTT 3.1.1 and 5, section
    /// 4.6): one whose message was handled early waits for those before it. When the connection
    /// is lost first, it is not sent on the next one: the broker resends the message, with DUP
    /// set, and it is delivered again, so a callback may see a message twice (QoS 2 included,
    /// when its PUBREC had not gone). `mqttc_disconnect` waits, within `disconnect_timeout_ms`,
    /// for the acknowledgements of messages being handled, as it does for outbound ones.
    ///
    /// Default false, because the broker counts a message being handled as in flight and sends
    /// only so many of those (mosquitto: `max_inflight_messages`, 20 by default; MQTT 5: the
    /// Receive Maximum in `connect_properties`): a callback that blocks, or a MESSAGE event kept
    /// and not freed, stops the QoS 1/2 messages of that connection (QoS 0 ones still flow), and
    /// each acknowledgement costs the network thread a wakeup. Without it, messages are
    /// acknowledged as soon as they are read, and those still queued when the client is freed
    /// are lost.
    pub ack_after_callback: bool,
    /// Keep every QoS 1 and 2 publish in a store in this directory (created if need be) from the
    /// moment its publish call returns MQTTC_OK until the broker acknowledges it, with its packet
    /// id and whether its PUBREC came, and the ids of inbound QoS 2 messages awaiting PUBREL; so
    /// that a process that crashed (or was killed, or freed the client with messages in flight)
    /// and starts again with the same `client_id` and `store_dir` sends them again. Messages are
    /// restored when `mqttc_connect` starts a session: each is reported to the restored callback
    /// (`mqttc_client_set_on_restored`) or as a RESTORED event, with a new token that completes
    /// when the broker acknowledges it. If the broker kept the session (`clean_session` false, or
    /// MQTT 5 `session_expiry` above 0), those sent before go again with DUP and their packet ids,
    /// or their PUBREL when the PUBREC came; otherwise they go as new messages (or, with
    /// `store_drop_on_clean`, are deleted).
    ///
    /// Each client id has its own subdirectory, which one client at a time may open (a second gets
    /// MQTTC_ERR_STORE). A damaged or cut-short record (a crash in mid-write, a corrupt disk) is
    /// skipped with a warning in the log, never read as a message. A publish the store cannot take
    /// (a full disk) fails with MQTTC_ERR_STORE; what was stored before stays. QoS 0 publishes are
    /// never stored. A cancelled token (disconnect, free) leaves its message in the store for the
    /// next session; any other completion, success or failure, removes it. Requires a `client_id`.
    /// Borrowed: copied when the client is made. Default NULL: messages are kept in memory only.
    pub store_dir: *const c_char,
    /// When the store makes its writes durable against a power loss (`fdatasync`, or the `sync`
    /// callback of a `store`): an `mqttc_store_sync` value. A record survives the process being
    /// killed as soon as it is written, whatever the policy. Default MQTTC_STORE_SYNC_BATCH.
    pub store_sync: c_int,
    /// MQTTC_STORE_SYNC_BATCH: sync once this many records were written since the last sync, or
    /// when a record is written `store_sync_ms` or more after it; while connected, also
    /// `store_sync_ms` after the first record a sync has not covered. Defaults 1000 and 100.
    pub store_sync_count: u32,
    pub store_sync_ms: u32,
    /// With `clean_session`, delete what an earlier session stored instead of sending it as new
    /// messages. Default false.
    pub store_drop_on_clean: bool,
    /// Run the client on this pool's threads (see `mqttc_pool`), shared with its other clients,
    /// instead of a network thread and a callback thread of its own. Not with `run_loop` or
    /// `inline_callbacks` (MQTTC_ERR_INVALID_ARGUMENT). Borrowed: the client holds its own
    /// reference, so the pool may be freed first. Default NULL.
    pub pool: *const mqttc_pool,
    /// The local IP address TCP connections are made from, as `mosquitto_pub -A` (its port is the
    /// system's choice), e.g. "127.0.0.2" to spread many connections over several loopback
    /// addresses. Only the broker addresses of its family are tried. Not used for Unix sockets.
    /// Borrowed: copied when the client is made. Default NULL: the system picks.
    pub bind_address: *const c_char,
    /// Keep QoS 1 and 2 publishes, as `store_dir` does, in a store the application supplies
    /// through callbacks (`mqttc_store_new`): in flash, a database. Everything `store_dir` says
    /// holds, but for the directory; the `store_sync` fields say when its `sync` is called. One
    /// client at a time may use a store (a second gets MQTTC_ERR_STORE); not with `store_dir`
    /// (MQTTC_ERR_INVALID_ARGUMENT). Unlike `store_dir` it needs no `client_id`, but the broker
    /// keeps a session only for a fixed one. Borrowed: the client holds its own reference, so the
    /// store may be freed first. Default NULL.
    pub store: *const mqttc_store,
    /// MQTT 5: how many topics the client replaces by a topic alias in the publishes it sends
    /// (MQTT 5 section 3.3.2.3.4), never more than the Topic Alias Maximum of the broker's CONNACK
    /// (mosquitto's default is 10). On each connection the first publish of a topic carries the
    /// topic and an alias, later ones the alias alone, which spares the topic's bytes in every
    /// message; once every alias is taken, a new topic takes the least recently used one. Aliases
    /// last as long as their connection: after a reconnect, new publishes start again with whole
    /// topics, and resends (DUP) always carry their whole topic and no alias. Topics of 3 bytes
    /// or fewer go whole (an alias takes 3). While aliases
    /// are in use, QoS 0 publishes are not written by the publishing thread itself (see
    /// `mqttc_publish`). Subscribers always receive whole topics. 0 (the default) sends every
    /// topic whole; not 0 with MQTT 3.1.1 (MQTTC_ERR_INVALID_ARGUMENT).
    pub topic_alias_max_out: u16,
    /// A directory of CA certificates that may sign the broker's certificate, as OpenSSL's
    /// `c_rehash` directories and `/etc/ssl/certs` are (mosquitto's `--capath`): every PEM
    /// certificate of every file in it is trusted, symbolic links followed; files with none (CRLs,
    /// a README) are skipped. With `tls_ca_file`, both are trusted. A directory that cannot be read
    /// or holds no certificate fails the constructor with MQTTC_ERR_TLS. Default NULL: the
    /// system's CA store, unless `tls_ca_file` is set.
    pub tls_ca_path: *const c_char,
    /// The TLS versions offered, comma-separated: "tlsv1.2", "tlsv1.3", or "tlsv1.2,tlsv1.3" (the
    /// default, NULL). A version the broker does not speak fails the handshake (MQTTC_ERR_TLS);
    /// so "tlsv1.3" refuses a broker limited to TLS 1.2. Note that mosquitto's `tls_version`
    /// names the lowest version allowed, so its "tlsv1.2" is "tlsv1.2,tlsv1.3" here. Any other
    /// name ("tlsv1.1": rustls speaks TLS 1.2 and 1.3 only) fails the constructor with
    /// MQTTC_ERR_TLS, saying so.
    pub tls_version: *const c_char,
    /// The cipher suites offered, most preferred first, separated by ':' or ',': OpenSSL's names
    /// (ECDHE-ECDSA-AES256-GCM-SHA384, ECDHE-ECDSA-AES128-GCM-SHA256,
    /// ECDHE-ECDSA-CHACHA20-POLY1305, ECDHE-RSA-AES256-GCM-SHA384, ECDHE-RSA-AES128-GCM-SHA256,
    /// ECDHE-RSA-CHACHA20-POLY1305 for TLS 1.2; TLS_AES_256_GCM_SHA384, TLS_AES_128_GCM_SHA256,
    /// TLS_CHACHA20_POLY1305_SHA256 for TLS 1.3) or IANA's (TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256),
    /// in any case. As with OpenSSL's cipher list, the TLS 1.2 suites named replace the TLS 1.2
    /// defaults and leave TLS 1.3's alone; TLS 1.3 suites named likewise replace TLS 1.3's only.
    /// A broker sharing none of them fails the handshake (MQTTC_ERR_TLS). A name rustls lacks,
    /// and OpenSSL's keywords and operators ("HIGH", "!aNULL"), fail the constructor with
    /// MQTTC_ERR_TLS and the list of names. Default NULL: every suite, rustls's order.
    pub tls_ciphers: *const c_char,
    /// A SOCKS5 proxy (RFC 1928) that every TCP connection goes through, TLS and WebSockets over
    /// it: "socks5h://[username[:password]@]host[:port]" (port 1080 by default; an IPv6 host in
    /// brackets), as `mosquitto_pub --proxy` takes it. The broker's host name is sent to the proxy,
    /// which resolves it; with a username (1 to 255 bytes) and password (at most 255; it may hold
    /// '@' and ':', nothing is percent-decoded) the client offers RFC 1929's authentication as well
    /// as none. A bad URL, or a proxy with a `unix:` server, is MQTTC_ERR_INVALID_ARGUMENT; a proxy
    /// that refuses the login or the connection to the broker fails the connect token with
    /// MQTTC_ERR_IO, saying so. `bind_address` is then the local address of the connection to the
    /// proxy. Borrowed: copied when the client is made. Default NULL: connect directly.
    pub proxy: *const c_char,
}

/// When the message store syncs (`store_sync`).
#[repr(C)]
pub enum mqttc_store_sync {
    /// Batched: see `store_sync_count` and `store_sync_ms`.
    MQTTC_STORE_SYNC_BATCH = 0,
    /// Before every publish call returns, and before any packet whose record it needs leaves:
    /// nothing acknowledged to the application is lost to a power failure; the slowest.
    MQTTC_STORE_SYNC_EVERY = 1,
    /// Never: the operating system writes back in its own time (as Paho C's file persistence).
    MQTTC_STORE_SYNC_NONE = 2,
}

/// What happens to a publish that does not fit in the offline queue (`offline_overflow`). Either
/// way the message that is not sent has its token fail, so nothing is dropped silently.
#[repr(C)]
pub enum mqttc_overflow {
    /// The new publish's token fails with MQTTC_ERR_QUEUE_FULL.
    MQTTC_OVERFLOW_REJECT_NEW = 0,
    /// The oldest queued publishes' tokens fail with MQTTC_ERR_DROPPED until the new one fits.
    MQTTC_OVERFLOW_DROP_OLDEST = 1,
}

/// Fills the first `size` bytes of `*opts` with the defaults and sets `struct_size` to `size` (or to
/// this library's size if `size` is larger). C and C++ call it through the `mqttc_options_init(opts)`
/// macro, which passes `sizeof *opts` as compiled into the caller: a program built against an older
/// header, with a shorter struct, then never has memory past its struct written. Bindings (Julia,
/// Python) pass the size of their own mirror. NULL, or a size too small to hold `struct_size`, is
/// ignored.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_options_init_size(opts: *mut mqttc_options, size: usize) {
    let size = size.min(size_of::<mqttc_options>());
    if opts.is_null() || size < size_of::<u32>() {
        return;
    }
    let mut d = defaults();
    d.struct_size = size as u32;
    // SAFETY: the caller's struct has `size` writable bytes per the contract, and `size` does not
    // exceed ours.
    unsafe { std::ptr::copy_nonoverlapping((&raw const d).cast::<u8>(), opts.cast::<u8>(), size) };
}

fn defaults() -> mqttc_options {
    let d = engine::Options::default();
    mqttc_options {
        struct_size: size_of::<mqttc_options>() as u32,
        keep_alive: d.keep_alive,
        clean_session: d.clean_session,
        client_id: std::ptr::null(),
        username: std::ptr::null(),
        password: std::ptr::null(),
        password_len: 0,
        will_topic: std::ptr::null(),
        will_payload: std::ptr::null(),
        will_payload_len: 0,
        will_qos: 0,
        will_retain: false,
        ping_timeout_ms: millis(d.ping_timeout),
        connect_timeout_ms: millis(d.connect_timeout),
        disconnect_timeout_ms: millis(d.disconnect_timeout),
        max_inflight: d.max_inflight as u32,
        max_packet_size: d.max_packet_size.min(u32::MAX as usize) as u32,
        token_history: d.token_history as u32,
        callback_queue: d.callback_queue as u32,
        auto_reconnect: d.auto_reconnect,
        reconnect_min_ms: millis(d.reconnect_min),
        reconnect_max_ms: millis(d.reconnect_max),
        offline_max_messages: d.offline_max_messages.min(u32::MAX as usize) as u32,
        offline_max_bytes: d.offline_max_bytes,
        offline_overflow: mqttc_overflow::MQTTC_OVERFLOW_REJECT_NEW as c_int,
        queue_before_connect: d.queue_before_connect,
        rotate_servers: d.rotate_servers,
        event_mode: d.event_mode,
        tls: false,
        tls_ca_file: std::ptr::null(),
        tls_cert_file: std::ptr::null(),
        tls_key_file: std::ptr::null(),
        tls_server_name: std::ptr::null(),
        tls_alpn: std::ptr::null(),
        tls_insecure: false,
        protocol_version: d.version as u8,
        session_expiry: d.session_expiry,
        topic_alias_maximum: d.topic_alias_maximum,
        connect_properties: std::ptr::null(),
        will_properties: std::ptr::null(),
        inline_callbacks: d.inline_callbacks,
        run_loop: std::ptr::null(),
        outgoing_max_messages: d.outgoing.messages.min(u32::MAX as usize) as u32,
        outgoing_max_bytes: d.outgoing.bytes,
        outgoing_wait_ms: millis(d.outgoing_wait),
        ack_after_callback: d.ack_after_callback,
        store_dir: std::ptr::null(),
        store_sync: mqttc_store_sync::MQTTC_STORE_SYNC_BATCH as c_int,
        store_sync_count: 1000,
        store_sync_ms: 100,
        store_drop_on_clean: d.store_drop_on_clean,
        pool: std::ptr::null(),
        bind_address: std::ptr::null(),
        store: std::ptr::null(),
        topic_alias_max_out: d.topic_alias_max_out,
        tls_ca_path: std::ptr::null(),
        tls_version: std::ptr::null(),
        tls_ciphers: std::ptr::null(),
        proxy: std::ptr::null(),
    }
}

fn millis(d: Duration) -> u32 {
    d.as_millis().min(u32::MAX as u128) as u32
}

fn random_client_id() -> String {
    use std::hash::{BuildHasher, RandomState};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = (
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now(),
    );
    format!("mqttc-{:016x}", RandomState::new().hash_one(seed))
}

/// The TLS part of the options, kept apart until the servers are known: only a client with a TLS
/// server builds a configuration (which may need the system's CA store).
pub(crate) struct TlsRequest {
    /// `tls`: every server uses TLS.
    pub(crate) all_servers: bool,
    pub(crate) options: TlsOptions,
    /// Whether any TLS field was set, which makes sense only with a TLS server.
    pub(crate) any_set: bool,
}

/// The TLS fields of the options.
///
/// # Safety
/// The strings `o` points to are NULL or NUL-terminated, borrowed for the call.
unsafe fn read_tls(o: &mqttc_options) -> Result<TlsRequest, Failure> {
    // SAFETY (all reads): borrowed for this call per the documented contract.
    let path = |p, name| unsafe { opt_str(p, name) }.map(|s| s.map(PathBuf::from));
    let options = TlsOptions {
        ca_file: path(o.tls_ca_file, "tls_ca_file")?,
        ca_path: path(o.tls_ca_path, "tls_ca_path")?,
        cert_file: path(o.tls_cert_file, "tls_cert_file")?,
        key_file: path(o.tls_key_file, "tls_key_file")?,
        server_name: unsafe { opt_str(o.tls_server_name, "tls_server_name") }?.map(str::to_owned),
        insecure: o.tls_insecure,
        alpn: unsafe { opt_str(o.tls_alpn, "tls_alpn") }?
            .map(|list| list.split(',').map(|p| p.trim().to_owned()).collect())
            .unwrap_or_default(),
        versions: unsafe { opt_str(o.tls_version, "tls_version") }?.map(str::to_owned),
        ciphers: unsafe { opt_str(o.tls_ciphers, "tls_ciphers") }?.map(str::to_owned),
    };
    let any_set = options.ca_file.is_some()
        || options.ca_path.is_some()
        || options.versions.is_some()
        || options.ciphers.is_some()
        || options.cert_file.is_some()
        || options.key_file.is_some()
        || options.server_name.is_some()
        || options.insecure
        || !options.alpn.is_empty();
    Ok(TlsRequest {
        all_servers: o.tls,
        options,
        any_set,
    })
}

/// Reads the caller's options (which may be an older, shorter struct) into engine options.
///
/// # Safety
/// `opts` is NULL or points to `opts->struct_size` readable bytes laid out as `mqttc_options`.
pub(crate) unsafe fn read_options(opts: *const mqttc_options) -> Result<(engine::Options, TlsRequest), Failure> {
    let mut o = defaults();
    if !opts.is_null() {
        // SAFETY: the caller's struct has at least its `struct_size` field.
        let size = unsafe { (*opts).struct_size };
        // Any prefix holding `struct_size`: fields the caller's version lacks keep their defaults.
        let size =
            struct_size_arg::<mqttc_options>(size, size_of::<u32>(), "options", "call mqttc_options_init first")?;
        // Copy only the prefix the caller's version has; the rest keeps its defaults.
        // SAFETY: `size` bytes are readable per the contract and fit in `o`.
        unsafe { std::ptr::copy_nonoverlapping(opts.cast::<u8>(), (&raw mut o).cast::<u8>(), size) };
    }
    let mut e = engine::Options {
        keep_alive: o.keep_alive,
        clean_session: o.clean_session,
        ping_timeout: Duration::from_millis(o.ping_timeout_ms.into()),
        connect_timeout: Duration::from_millis(o.connect_timeout_ms.into()),
        disconnect_timeout: Duration::from_millis(o.disconnect_timeout_ms.into()),
        max_inflight: (o.max_inflight as usize).clamp(1, 65535),
        max_packet_size: (o.max_packet_size as usize).max(2),
        token_history: (o.token_history as usize).max(1),
        callback_queue: (o.callback_queue as usize).max(1),
        auto_reconnect: o.auto_reconnect,
        reconnect_min: Duration::from_millis(o.reconnect_min_ms.into()),
        reconnect_max: Duration::from_millis(o.reconnect_max_ms.into()),
        outgoing: match o.outgoing_max_messages {
            0 => {
                return Err(Failure::new(
                    mqttc_status::MQTTC_ERR_INVALID_ARGUMENT,
                    "outgoing_max_messages is 0; at least one message must be allowed",
                ));
            }
            n => Limits {
                messages: n as usize,
                bytes: o.outgoing_max_bytes,
            },
        },
        outgoing_wait: Duration::from_millis(o.outgoing_wait_ms.into()),
        offline_max_messages: o.offline_max_messages as usize,
        offline_max_bytes: o.offline_max_bytes,
        offline_overflow: match o.offline_overflow {
            0 => Overflow::RejectNew,
            1 => Overflow::DropOldest,
            other => {
                return Err(Failure::new(
                    mqttc_status::MQTTC_ERR_INVALID_ARGUMENT,
                    format!("offline_overflow is {other}; it must be an mqttc_overflow value (0 or 1)"),
                ));
            }
        },
        queue_before_connect: o.queue_before_connect,
        rotate_servers: o.rotate_servers,
        event_mode: o.event_mode,
        inline_callbacks: o.inline_callbacks,
        run_loop: match o.run_loop.is_null() {
            true => None,
            false => Some(loop_arg(o.run_loop, "run_loop")?),
        },
        version: match o.protocol_version {
            4 => Version::V311,
            5 => Version::V5,
            other => {
                return Err(Failure::new(
                    mqttc_status::MQTTC_ERR_INVALID_ARGUMENT,
                    format!("protocol_version is {other}; it must be 4 (MQTT 3.1.1) or 5 (MQTT 5)"),
                ));
            }
        },
        session_expiry: o.session_expiry,
        topic_alias_maximum: o.topic_alias_maximum,
        topic_alias_max_out: o.topic_alias_max_out,
        ack_after_callback: o.ack_after_callback,
        store_drop_on_clean: o.store_drop_on_clean,
        pool: match o.pool.is_null() {
            true => None,
            false => Some(pool_arg(o.pool, "pool")?),
        },
        // SAFETY: NULL or a NUL-terminated string per the contract.
        bind_address: match unsafe { opt_str(o.bind_address, "bind_address") }? {
            None => None,
            Some(text) => Some(text.parse().map_err(|_| {
                Failure::new(
                    mqttc_status::MQTTC_ERR_INVALID_ARGUMENT,
                    format!("bind_address \"{text}\" is not an IP address (such as 127.0.0.2 or ::1)"),
                )
            })?),
        },
        // SAFETY: NULL or a NUL-terminated string per the contract.
        proxy: unsafe { opt_str(o.proxy, "proxy") }?
            .map(|url| {
                url.parse()
                    .map_err(|e| Failure::new(mqttc_status::MQTTC_ERR_INVALID_ARGUMENT, e))
            })
            .transpose()?,
        ..engine::Options::default()
    };
    if e.version == Version::V311 && e.session_expiry != 0 {
        return Err(Failure::new(
            mqttc_status::MQTTC_ERR_INVALID_ARGUMENT,
            "session_expiry needs protocol_version 5; MQTT 3.1.1 has clean_session instead",
        ));
    }
    if e.version == Version::V311 && e.topic_alias_max_out != 0 {
        return Err(Failure::new(
            mqttc_status::MQTTC_ERR_INVALID_ARGUMENT,
            "topic_alias_max_out needs protocol_version 5; MQTT 3.1.1 has no topic aliases",
        ));
    }
    if e.reconnect_min.is_zero() || e.reconnect_max < e.reconnect_min {
        return Err(Failure::new(
            mqttc_status::MQTTC_ERR_INVALID_ARGUMENT,
            format!(
                "reconnect delays must satisfy 0 < reconnect_min_ms ({}) <= reconnect_max_ms ({})",
                o.reconnect_min_ms, o.reconnect_max_ms
            ),
        ));
    }
    // SAFETY (all string/byte reads below): borrowed for this call per the documented contract.
    e.client_id = match unsafe { opt_str(o.client_id, "client_id") }? {
        Some(id) => mqtt_text(id, "client_id")?.as_str().to_owned(),
        None => random_client_id(),
    };
    if e.client_id.is_empty() && !e.clean_session {
        return Err(Failure::new(
            mqttc_status::MQTTC_ERR_INVALID_ARGUMENT,
            "an empty client_id requires clean_session",
        ));
    }
    (e.username, e.password) = unsafe { credentials_arg(o.username, o.password, o.password_len) }?;
    if !o.will_topic.is_null() {
        let will = WillArgs {
            topic: o.will_topic,
            payload: o.will_payload,
            payload_len: o.will_payload_len,
            qos: o.will_qos,
            retain: o.will_retain,
            properties: o.will_properties,
        };
        e.will = Some(unsafe { will_arg(&will, e.version, "will_") }?);
    } else if !o.will_properties.is_null() {
        return Err(Failure::new(
            mqttc_status::MQTTC_ERR_INVALID_ARGUMENT,
            "will_properties without a will_topic",
        ));
    }
    let owned = [
        (PropertyId::SessionExpiryInterval, "set session_expiry in the options"),
        (PropertyId::MaximumPacketSize, "set max_packet_size in the options"),
        (PropertyId::TopicAliasMaximum, "set topic_alias_maximum in the options"),
    ];
    let holder = Holder::Packet(PacketType::Connect);
    e.connect_properties = unsafe { properties_arg(o.connect_properties, e.version, holder, "CONNECT", &owned) }?;
    e.store = match unsafe { opt_str(o.store_dir, "store_dir") }? {
        Some(_) if !o.store.is_null() => {
            return Err(Failure::new(
                mqttc_status::MQTTC_ERR_INVALID_ARGUMENT,
                "store and store_dir are both set: give one",
            ));
        }
        Some(dir) => Some(Arc::new(open_store(&o, dir, &e.client_id)?)),
        None if !o.store.is_null() => {
            let table = lease(store_arg(o.store, "store")?)?;
            let store = Store::open_kv(table, sync_policy(&o)?).map_err(Failure::from)?;
            Some(Arc::new(store))
        }
        None => None,
    };
    Ok((e, unsafe { read_tls(&o) }?))
}

/// Opens the directory store the options ask for, for `client_id`.
fn open_store(o: &mqttc_options, dir: &str, client_id: &str) -> Result<Store, Failure> {
    let invalid = |why: &str| Failure::new(mqttc_status::MQTTC_ERR_INVALID_ARGUMENT, why);
    if dir.is_empty() {
        return Err(invalid("store_dir is empty"));
    }
    if o.client_id.is_null() || client_id.is_empty() {
        return Err(invalid(
            "store_dir needs a client_id: the broker keeps a session, and the store its messages, per client id",
        ));
    }
    let policy = sync_policy(o)?;
    Store::open_dir(Path::new(dir), client_id, policy).map_err(Failure::from)
}

/// The store's sync policy the options ask for.
fn sync_policy(o: &mqttc_options) -> Result<SyncPolicy, Failure> {
    Ok(match o.store_sync {
        0 => SyncPolicy::Batch {
            records: o.store_sync_count.max(1),
            interval: Duration::from_millis(o.store_sync_ms.into()),
        },
        1 => SyncPolicy::Every,
        2 => SyncPolicy::Never,
        other => {
            return Err(Failure::new(
                mqttc_status::MQTTC_ERR_INVALID_ARGUMENT,
                format!("store_sync is {other}; it must be an mqttc_store_sync value (0 to 2)"),
            ));
        }
    })
}
