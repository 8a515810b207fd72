//! Publish, subscribe, unsubscribe, and the message view handed to callbacks.
use std::cell::RefCell;
use std::ffi::{CString, c_char, c_int, c_void};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;

use super::client::{Callback, client_arg, mqttc_client, mqttc_token, qos_arg};
use super::properties::{mqttc_properties, properties_arg};
use super::{Failure, arg_bytes, arg_str, guard, mqttc_status, write_out};
use crate::codec::{
    Disconnect, Holder, MAX_REMAINING_LENGTH, MqttStr, PacketType, PropertyId, Publish, QoS, ReasonCode,
    RetainHandling, SubscribeOptions, Version,
};
use crate::engine::{FilterRequest, Handler};
use crate::topic::{split_shared, validate_topic_filter, validate_topic_name};

/// A message as seen by a callback. Everything it points to is borrowed and valid only until the
/// callback returns; use `mqttc_message_copy` to keep one.
#[repr(C)]
pub struct mqttc_message {
    /// The topic, NUL-terminated UTF-8.
    pub topic: *const c_char,
    pub topic_len: usize,
    /// The payload bytes (not NUL-terminated; never NULL, even when empty).
    pub payload: *const u8,
    pub payload_len: usize,
    pub qos: c_int,
    pub retain: bool,
    pub dup: bool,
    /// The message's MQTT 5 properties (content type, response topic, correlation data, user
    /// properties, subscription identifiers, ...), borrowed like the rest; never NULL (an empty
    /// list in MQTT 3.1.1).
    pub properties: *const mqttc_properties,
}

/// Message callback: `message` is borrowed for the call. Runs on the client's callback thread.
pub type mqttc_message_cb =
    Option<unsafe extern "C" fn(client: *mut mqttc_client, message: *const mqttc_message, userdata: *mut c_void)>;

/// Destructor for a subscription's userdata, called exactly once when the subscription ends
/// (unsubscribe, replacement by a new subscribe to the same filter, refusal by the broker, or
/// client free), after its last callback has returned.
pub type mqttc_drop_cb = Option<unsafe extern "C" fn(userdata: *mut c_void)>;

/// One filter for `mqttc_subscribe_many`.
#[repr(C)]
pub struct mqttc_subscription {
    /// Topic filter, NUL-terminated UTF-8; '+' and '#' wildcards allowed.
    pub filter: *const c_char,
    /// Maximum QoS requested: 0, 1 or 2.
    pub qos: c_int,
    /// Called for each message matching `filter`. NULL on a client made with `event_mode`: the
    /// messages then arrive as MQTTC_EVENT_MESSAGE events carrying `userdata`.
    pub on_message: mqttc_message_cb,
    pub userdata: *mut c_void,
    /// May be NULL.
    pub drop_userdata: mqttc_drop_cb,
    /// MQTT 5 subscription options, 0 or more `mqttc_sub_option` flags ORed (0 for 3.1.1).
    pub options: c_int,
}

/// Flags for `mqttc_subscription.options` (MQTT 5 section 3.8.3.1; the bits of the wire format).
#[repr(C)]
pub enum mqttc_sub_option {
    /// Do not send this client the messages it publishes itself. Not on a shared subscription.
    MQTTC_SUB_NO_LOCAL = 0x04,
    /// Keep the RETAIN flag of forwarded messages as published (otherwise the broker clears it).
    MQTTC_SUB_RETAIN_AS_PUBLISHED = 0x08,
    /// Send retained messages only if the subscription is new (default: at every subscribe).
    MQTTC_SUB_RETAIN_IF_NEW = 0x10,
    /// Never send retained messages for this subscribe.
    MQTTC_SUB_RETAIN_NEVER = 0x20,
}

const NO_LOCAL: c_int = mqttc_sub_option::MQTTC_SUB_NO_LOCAL as c_int;
const RETAIN_AS_PUBLISHED: c_int = mqttc_sub_option::MQTTC_SUB_RETAIN_AS_PUBLISHED as c_int;
const RETAIN_IF_NEW: c_int = mqttc_sub_option::MQTTC_SUB_RETAIN_IF_NEW as c_int;
const RETAIN_NEVER: c_int = mqttc_sub_option::MQTTC_SUB_RETAIN_NEVER as c_int;

thread_local! {
    /// The callback thread's NUL-terminated copy of the current topic (reused: no allocation per
    /// message once it has grown).
    static TOPIC: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Owns a subscription's userdata: `drop_userdata` runs when the registration is dropped, unless
/// the call that made it failed (`owned` false: the userdata is still the caller's).
struct Registration {
    /// The callback; NULL for an event-mode subscription.
    cb: Callback<mqttc_message_cb>,
    drop_userdata: mqttc_drop_cb,
    owned: Arc<AtomicBool>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(d) = self.drop_userdata.filter(|_| self.owned.load(Ordering::Acquire)) {
            // SAFETY: the caller's destructor with its own userdata, called once (we are dropped once).
            unsafe { d(self.cb.userdata) }
        }
    }
}

/// A callback subscription's handler, or for a NULL callback an event-mode one whose events carry
/// the userdata.
fn handler(reg: Registration) -> Handler {
    let Some(f) = reg.cb.f else {
        return Handler::Queue {
            key: reg.cb.userdata as usize,
            guard: Box::new(reg),
        };
    };
    Handler::Call(Box::new(move |p: &Publish| {
        let reg = &reg; // capture the whole (Send + Sync) registration, not its raw-pointer fields
        TOPIC.with(|buf| {
            let mut buf = buf.borrow_mut();
            buf.clear();
            buf.extend_from_slice(p.topic.as_str().as_bytes());
            buf.push(0);
            // Shares the message's bytes; strings are copied only if the callback reads them.
            let props = mqttc_properties::new(p.properties.clone());
            let msg = message_view(p, buf.as_ptr().cast(), &props);
            // SAFETY: the caller's function with its own userdata; `msg` lives for the call.
            unsafe { f(reg.cb.client, &msg, reg.cb.userdata) }
        })
    }))
}

/// Where an empty payload points: `mqttc_message` promises a non-NULL payload pointer.
static NO_PAYLOAD: [u8; 1] = [0];

fn payload_ptr(payload: &[u8]) -> *const u8 {
    if payload.is_empty() {
        NO_PAYLOAD.as_ptr()
    } else {
        payload.as_ptr()
    }
}

/// The C view of `p`, with `topic` a NUL-terminated copy of its topic and `props` its properties;
/// it borrows all three.
pub(crate) fn message_view(p: &Publish, topic: *const c_char, props: &mqttc_properties) -> mqttc_message {
    mqttc_message {
        topic,
        topic_len: p.topic.len(),
        payload: payload_ptr(&p.payload),
        payload_len: p.payload.len(),
        qos: p.qos as c_int,
        retain: p.retain,
        dup: p.dup,
        properties: props,
    }
}

fn topic_failure(status: mqttc_status, what: &str, text: &str, err: impl std::fmt::Display) -> Failure {
    Failure::new(status, format!("{what} \"{text}\": {err}"))
}

/// PUBLISH properties a client may not set: what the library or only a broker sets.
const PUBLISH_OWNED: &[(PropertyId, &str)] = &[
    (PropertyId::TopicAlias, "it manages topic aliases"),
    (
        PropertyId::SubscriptionIdentifier,
        "only a broker sends it in PUBLISH (MQTT-3.3.4-6)",
    ),
];

/// Queues a publish (MQTTClient.jl's `publish_async`) and returns at once. The topic and payload are
/// copied. `*token` (if not NULL) completes when the message was written (QoS 0), acknowledged
/// (QoS 1: PUBACK) or fully handed over (QoS 2: PUBCOMP). `payload` may be NULL when `len` is 0.
///
/// A QoS 0 publish made while a plain TCP or Unix-socket connection is idle, and not part of a
/// burst, is written by this call itself (one non-blocking send; what the socket does not take
/// goes to the network thread), which spares a thread wakeup: its token is then already
/// complete. Not when a completion callback is set or in event mode, whose completion reports
/// come from the network thread. Calls keep their order either way.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_publish(
    client: *mut mqttc_client,
    topic: *const c_char,
    payload: *const c_void,
    len: usize,
    qos: c_int,
    retain: bool,
    token: *mut mqttc_token,
) -> mqttc_status {
    // SAFETY: per the documented contract.
    unsafe { mqttc_publish_v5(client, topic, payload, len, qos, retain, std::ptr::null(), token) }
}

/// `mqttc_publish` with MQTT 5 properties (NULL for none), copied: message expiry, content type,
/// payload format, response topic, correlation data, user properties. Topic alias and subscription
/// identifier are refused (the library manages aliases; only brokers send identifiers), and so is
/// any property on an MQTT 3.1.1 client (MQTTC_ERR_NOT_SUPPORTED).
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn mqttc_publish_v5(
    client: *mut mqttc_client,
    topic: *const c_char,
    payload: *const c_void,
    len: usize,
    qos: c_int,
    retain: bool,
    properties: *const mqttc_properties,
    token: *mut mqttc_token,
) -> mqttc_status {
    guard(|| {
        // SAFETY (all pointer reads): per the documented contract, borrowed for this call.
        unsafe {
            publish_checked(client, topic, len, qos, retain, properties, token, |c| {
                Ok(c.inner.payload(arg_bytes(payload.cast(), len, "payload")?))
            })
        }
    })
}

/// `mqttc_publish_v5` without copying the payload: the library reads `payload` where it is, from
/// its own threads, until it calls `release(release_userdata)`. That spares the copy
/// `mqttc_publish` makes, and the memory the copy holds while the message is in flight: for
/// payloads of hundreds of KiB and more, the copy is a large part of what a publish costs.
///
/// Ownership: from this call on, the bytes belong to the library until `release` runs, **whatever
/// the call returns**: the application must not change or free them before. `release` runs exactly
/// once: when the message has been written (QoS 0) or acknowledged (QoS 1/2), or when the publish
/// fails, is discarded or the client is freed, and also when this call returns an error (then
/// before it returns). It may run on any thread: the client's network or callback thread, the
/// thread running its `mqttc_loop`, or the caller's own thread (inside this call or
/// `mqttc_client_free`), so it must be thread-safe, and short. It may queue work (publish,
/// subscribe, ...), but must not wait on or free the client. `free` fits when
/// `release_userdata` is the malloc'd payload itself. NULL `release`: nothing to do, for bytes
/// that stay valid and unchanged for the client's whole life (static data).
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn mqttc_publish_nocopy(
    client: *mut mqttc_client,
    topic: *const c_char,
    payload: *const c_void,
    len: usize,
    qos: c_int,
    retain: bool,
    properties: *const mqttc_properties,
    release: mqttc_drop_cb,
    release_userdata: *mut c_void,
    token: *mut mqttc_token,
) -> mqttc_status {
    // Made first, so that every way out of this call, an early error or a panic included, drops it
    // (and runs `release`) unless the library took it.
    let lent = Lent {
        payload: payload.cast(),
        len,
        release,
        userdata: release_userdata,
    };
    guard(move || {
        // SAFETY (all pointer reads): per the documented contract, borrowed for this call.
        unsafe {
            publish_checked(client, topic, len, qos, retain, properties, token, move |_| {
                arg_bytes(lent.payload, len, "payload")?;
                Ok(Bytes::from_owner(lent))
            })
        }
    })
}

/// The checks and the queueing shared by the publish functions; `payload` makes the library's
/// reference to the payload, once the rest of the arguments are known to be good.
///
/// # Safety
/// The pointers are valid per the documented contract of the exported functions.
#[allow(clippy::too_many_arguments)]
unsafe fn publish_checked(
    client: *mut mqttc_client,
    topic: *const c_char,
    len: usize,
    qos: c_int,
    retain: bool,
    properties: *const mqttc_properties,
    token: *mut mqttc_token,
    payload: impl FnOnce(&mqttc_client) -> Result<Bytes, Failure>,
) -> Result<(), Failure> {
    // SAFETY (all pointer reads): per the caller's contract.
    let c = unsafe { client_arg(client) }?;
    let topic = unsafe { arg_str(topic, "topic") }?;
    validate_topic_name(topic).map_err(|e| topic_failure(mqttc_status::MQTTC_ERR_INVALID_TOPIC, "topic", topic, e))?;
    let qos = qos_arg(qos, "qos")?;
    let version = c.inner.version();
    let properties = unsafe {
        properties_arg(
            properties,
            version,
            Holder::Packet(PacketType::Publish),
            "PUBLISH",
            PUBLISH_OWNED,
        )
    }?;
    // 2 (topic length) + 2 (packet id) bytes of variable header, and the properties with their
    // length, share the remaining length.
    if len.saturating_add(topic.len() + 4 + properties.len_in(version)) > MAX_REMAINING_LENGTH {
        return Err(Failure::new(
            mqttc_status::MQTTC_ERR_PAYLOAD_TOO_LARGE,
            format!("payload of {len} bytes exceeds MQTT's limit"),
        ));
    }
    let payload = payload(c)?;
    let topic =
        MqttStr::new(topic).map_err(|e| topic_failure(mqttc_status::MQTTC_ERR_INVALID_TOPIC, "topic", topic, e))?;
    let t = c.inner.publish_with(topic, payload, qos, retain, properties)?;
    unsafe { write_out(token, t) };
    Ok(())
}

/// A payload lent by `mqttc_publish_nocopy`: `release` runs when the last reference the library
/// holds is dropped.
struct Lent {
    payload: *const u8,
    len: usize,
    release: mqttc_drop_cb,
    userdata: *mut c_void,
}

// SAFETY: by `mqttc_publish_nocopy`'s contract the bytes stay valid and unchanged until `release`,
// which any thread may call; the library only reads them.
unsafe impl Send for Lent {}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        if self.payload.is_null() {
            return &[]; // only made into `Bytes` when `len` is 0 then (checked by arg_bytes)
        }
        // SAFETY: non-NULL with `len` readable bytes, per the contract.
        unsafe { std::slice::from_raw_parts(self.payload, self.len) }
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        if let Some(release) = self.release {
            // SAFETY: the application's function and pointer, per the contract.
            unsafe { release(self.userdata) }
        }
    }
}

/// Publishes `payload` as the answer to `request`, a message received in a callback or an event
/// (MQTT 5 request/response, section 4.10): to its Response Topic, with its Correlation Data, and
/// with `properties` (NULL for none) added. MQTTC_ERR_NOT_FOUND when the request has no response
/// topic. Otherwise as `mqttc_publish_v5`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_respond(
    client: *mut mqttc_client,
    request: *const mqttc_message,
    payload: *const c_void,
    len: usize,
    qos: c_int,
    properties: *const mqttc_properties,
    token: *mut mqttc_token,
) -> mqttc_status {
    let mut reply = None;
    let status = guard(|| {
        // SAFETY: a message view handed out by the library, and the caller's list, per the contract.
        let request =
            unsafe { request.as_ref() }.ok_or_else(|| Failure::new(mqttc_status::MQTTC_ERR_NULL, "request is NULL"))?;
        let asked = unsafe { request.properties.as_ref() }
            .map(|p| p.list().clone())
            .unwrap_or_default();
        let topic = asked
            .str(PropertyId::ResponseTopic)
            .ok_or_else(|| Failure::new(mqttc_status::MQTTC_ERR_NOT_FOUND, "the request has no response topic"))?;
        let mut list = unsafe { properties.as_ref() }
            .map(|p| p.list().clone())
            .unwrap_or_default();
        if let Some(correlation) = asked.binary(PropertyId::CorrelationData) {
            list.remove(PropertyId::CorrelationData);
            list.push_binary(PropertyId::CorrelationData, correlation)
                .map_err(|e| Failure::new(mqttc_status::MQTTC_ERR_INVALID_ARGUMENT, e.to_string()))?;
        }
        let topic = std::ffi::CString::new(topic.as_str())
            .map_err(|_| Failure::new(mqttc_status::MQTTC_ERR_INVALID_TOPIC, "response topic contains NUL"))?;
        reply = Some((topic, mqttc_properties::new(list)));
        Ok(())
    });
    match reply {
        // SAFETY: the caller's arguments, and our own topic and list, live through the call.
        Some((topic, props)) => unsafe {
            mqttc_publish_v5(client, topic.as_ptr(), payload, len, qos, false, &props, token)
        },
        None => status,
    }
}

/// Checks one subscription request and turns it into what the engine takes.
///
/// # Safety
/// `s.filter` is NULL or a NUL-terminated string borrowed for the call.
unsafe fn subscription_arg(
    client: *mut mqttc_client,
    s: &mqttc_subscription,
    event_mode: bool,
    version: Version,
    owned: &Arc<AtomicBool>,
) -> Result<FilterRequest, Failure> {
    // SAFETY: per this function's contract.
    let filter = unsafe { arg_str(s.filter, "filter") }?;
    let bad_filter = |e| topic_failure(mqttc_status::MQTTC_ERR_INVALID_FILTER, "filter", filter, e);
    validate_topic_filter(filter).map_err(bad_filter)?;
    let shared = split_shared(filter).transpose().map_err(bad_filter)?.is_some();
    let options = sub_options(s.options, qos_arg(s.qos, "qos")?, version, shared)?;
    if s.on_message.is_none() && !event_mode {
        return Err(Failure::new(
            mqttc_status::MQTTC_ERR_NULL,
            "on_message is NULL (allowed only on a client made with event_mode)",
        ));
    }
    let filter =
        MqttStr::new(filter).map_err(|e| topic_failure(mqttc_status::MQTTC_ERR_INVALID_FILTER, "filter", filter, e))?;
    let reg = Registration {
        cb: Callback {
            f: s.on_message,
            client,
            userdata: s.userdata,
        },
        drop_userdata: s.drop_userdata,
        owned: owned.clone(),
    };
    Ok((filter, options, handler(reg)))
}

/// Subscription options from `mqttc_sub_option` flags.
fn sub_options(bits: c_int, qos: QoS, version: Version, shared: bool) -> Result<SubscribeOptions, Failure> {
    if bits == 0 {
        return Ok(qos.into());
    }
    let invalid = |detail: &str| Failure::new(mqttc_status::MQTTC_ERR_INVALID_ARGUMENT, detail);
    if version == Version::V311 {
        return Err(Failure::new(
            mqttc_status::MQTTC_ERR_NOT_SUPPORTED,
            "subscription options need MQTT 5: set protocol_version to 5",
        ));
    }
    if bits & !(NO_LOCAL | RETAIN_AS_PUBLISHED | RETAIN_IF_NEW | RETAIN_NEVER) != 0 {
        return Err(invalid(&format!(
            "options {bits:#x} hold bits that are no mqttc_sub_option flag"
        )));
    }
    if shared && bits & NO_LOCAL != 0 {
        return Err(invalid(
            "MQTTC_SUB_NO_LOCAL on a shared subscription is a protocol error (MQTT-3.8.3-4)",
        ));
    }
    let retain_handling = match (bits & RETAIN_IF_NEW != 0, bits & RETAIN_NEVER != 0) {
        (false, false) => RetainHandling::SendAtSubscribe,
        (true, false) => RetainHandling::SendIfNew,
        (false, true) => RetainHandling::DontSend,
        (true, true) => {
            return Err(invalid(
                "MQTTC_SUB_RETAIN_IF_NEW and MQTTC_SUB_RETAIN_NEVER exclude each other",
            ));
        }
    };
    Ok(SubscribeOptions {
        qos,
        no_local: bits & NO_LOCAL != 0,
        retain_as_published: bits & RETAIN_AS_PUBLISHED != 0,
        retain_handling,
    })
}

/// SUBSCRIBE properties a client may not set.
const SUBSCRIBE_OWNED: &[(PropertyId, &str)] = &[(
    PropertyId::SubscriptionIdentifier,
    "it gives every SUBSCRIBE one, to route messages to their callbacks",
)];

/// # Safety
/// `properties` is NULL or a live list; the rest per the exported functions' contracts.
unsafe fn subscribe_all(
    client: *mut mqttc_client,
    subs: &[mqttc_subscription],
    properties: *const mqttc_properties,
    token: *mut mqttc_token,
) -> Result<(), Failure> {
    // SAFETY: per the exported functions' contracts.
    let c = unsafe { client_arg(client) }?;
    let version = c.inner.version();
    let what = "SUBSCRIBE";
    let properties = unsafe {
        properties_arg(
            properties,
            version,
            Holder::Packet(PacketType::Subscribe),
            what,
            SUBSCRIBE_OWNED,
        )
    }?;
    if subs.is_empty() {
        return Err(Failure::new(
            mqttc_status::MQTTC_ERR_INVALID_ARGUMENT,
            "no filters given",
        ));
    }
    // Validate everything before registering anything, so a bad entry leaves no trace. Until the
    // engine has taken the handlers, the userdata stays the caller's: `owned` is cleared when the
    // call fails, so dropping the handlers then runs no destructor.
    let owned = Arc::new(AtomicBool::new(true));
    let disown = |handlers: Vec<FilterRequest>| {
        owned.store(false, Ordering::Release);
        drop(handlers);
    };
    let mut checked = Vec::with_capacity(subs.len());
    for s in subs {
        match unsafe { subscription_arg(client, s, c.inner.event_mode(), version, &owned) } {
            Ok(v) => checked.push(v),
            Err(f) => {
                disown(checked);
                return Err(f);
            }
        }
    }
    match c.inner.subscribe_with(checked, properties) {
        Ok(t) => {
            unsafe { write_out(token, t) };
            Ok(())
        }
        Err(rejected) => {
            disown(rejected.handlers);
            Err(rejected.error.into())
        }
    }
}

/// Subscribes to one filter (MQTTClient.jl's `subscribe_async`): `on_message(client, message,
/// userdata)` is called for every message matching `filter` from the moment this returns. A new
/// subscribe to the same filter replaces the callback. When several subscriptions match a message
/// (overlapping filters), each one's callback is called once for it.
///
/// May be called before `mqttc_connect` or between connections: the callback is registered at
/// once and the SUBSCRIBE goes out right after the next CONNACK (so messages a persistent session
/// delivers immediately find their callback). Refused with MQTTC_ERR_NOT_CONNECTED only while a
/// disconnect is under way.
///
/// `*token` completes with MQTTC_OK when the broker granted it (`mqttc_token_codes` gives the
/// granted QoS), or MQTTC_ERR_SUBSCRIBE_REFUSED (the callback is then removed). On failure of this
/// call, `drop_userdata` is not called and `userdata` remains the caller's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_subscribe(
    client: *mut mqttc_client,
    filter: *const c_char,
    qos: c_int,
    on_message: mqttc_message_cb,
    userdata: *mut c_void,
    token: *mut mqttc_token,
) -> mqttc_status {
    guard(|| {
        let sub = mqttc_subscription {
            filter,
            qos,
            on_message,
            userdata,
            drop_userdata: None,
            options: 0,
        };
        // SAFETY: per the documented contract.
        unsafe { subscribe_all(client, std::slice::from_ref(&sub), std::ptr::null(), token) }
    })
}

/// Subscribes to `count` filters in one SUBSCRIBE packet, each with its own callback, userdata and
/// userdata destructor. `*token` completes once for all; `mqttc_token_codes` gives one granted QoS
/// (or 0x80 for a refused filter) per entry, in order. Nothing is registered if any entry is invalid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_subscribe_many(
    client: *mut mqttc_client,
    subscriptions: *const mqttc_subscription,
    count: usize,
    token: *mut mqttc_token,
) -> mqttc_status {
    // SAFETY: per the documented contract.
    unsafe { mqttc_subscribe_v5(client, subscriptions, count, std::ptr::null(), token) }
}

/// `mqttc_subscribe_many` with MQTT 5 SUBSCRIBE properties (NULL for none; user properties). Each
/// entry's `options` may ask for No Local, Retain As Published and a retain handling; a filter
/// `$share/<name>/<filter>` is a shared subscription, whose callback gets the messages on
/// `<filter>` the broker hands this member of the group. The library gives each SUBSCRIBE a
/// Subscription Identifier (when the broker takes them) and routes a message that carries one to
/// exactly the callbacks of the subscriptions it names: with overlapping filters, each copy the
/// broker sends reaches its own subscription's callback once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_subscribe_v5(
    client: *mut mqttc_client,
    subscriptions: *const mqttc_subscription,
    count: usize,
    properties: *const mqttc_properties,
    token: *mut mqttc_token,
) -> mqttc_status {
    guard(|| {
        if subscriptions.is_null() {
            return Err(Failure::new(mqttc_status::MQTTC_ERR_NULL, "subscriptions is NULL"));
        }
        // SAFETY: `count` readable entries per the contract.
        let subs = unsafe { std::slice::from_raw_parts(subscriptions, count) };
        unsafe { subscribe_all(client, subs, properties, token) }
    })
}

/// Unsubscribes `count` filters in one UNSUBSCRIBE packet (MQTTClient.jl's `unsubscribe_async`).
/// Their callbacks stop at once; `*token` completes on UNSUBACK.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_unsubscribe_many(
    client: *mut mqttc_client,
    filters: *const *const c_char,
    count: usize,
    token: *mut mqttc_token,
) -> mqttc_status {
    // SAFETY: per the documented contract.
    unsafe { mqttc_unsubscribe_v5(client, filters, count, std::ptr::null(), token) }
}

/// `mqttc_unsubscribe_many` with MQTT 5 UNSUBSCRIBE properties (NULL for none; user properties).
/// In MQTT 5 `mqttc_token_codes` gives each filter's UNSUBACK reason code.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_unsubscribe_v5(
    client: *mut mqttc_client,
    filters: *const *const c_char,
    count: usize,
    properties: *const mqttc_properties,
    token: *mut mqttc_token,
) -> mqttc_status {
    guard(|| {
        // SAFETY (all pointer reads): per the documented contract.
        let c = unsafe { client_arg(client) }?;
        if filters.is_null() {
            return Err(Failure::new(mqttc_status::MQTTC_ERR_NULL, "filters is NULL"));
        }
        if count == 0 {
            return Err(Failure::new(
                mqttc_status::MQTTC_ERR_INVALID_ARGUMENT,
                "no filters given",
            ));
        }
        let holder = Holder::Packet(PacketType::Unsubscribe);
        let properties = unsafe { properties_arg(properties, c.inner.version(), holder, "UNSUBSCRIBE", &[]) }?;
        let mut checked = Vec::with_capacity(count);
        for &f in unsafe { std::slice::from_raw_parts(filters, count) } {
            let f = unsafe { arg_str(f, "filter") }?;
            let bad_filter = |e| topic_failure(mqttc_status::MQTTC_ERR_INVALID_FILTER, "filter", f, e);
            validate_topic_filter(f).map_err(bad_filter)?;
            split_shared(f).transpose().map_err(bad_filter)?;
            checked.push(
                MqttStr::new(f).map_err(|e| topic_failure(mqttc_status::MQTTC_ERR_INVALID_FILTER, "filter", f, e))?,
            );
        }
        let t = c.inner.unsubscribe_with(checked, properties)?;
        unsafe { write_out(token, t) };
        Ok(())
    })
}

/// `mqttc_disconnect` with an MQTT 5 reason code and DISCONNECT properties (NULL for none): 0x00
/// (normal), 0x04 (disconnect with will message: the broker publishes the will), or another code
/// a client may send (MQTT 5 section 3.14.2.1). Properties may set a Session Expiry Interval
/// (not when the connect's was 0), a Reason String and user properties.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_disconnect_v5(
    client: *mut mqttc_client,
    reason_code: u8,
    properties: *const mqttc_properties,
    token: *mut mqttc_token,
) -> mqttc_status {
    guard(|| {
        // SAFETY (all pointer reads): per the documented contract.
        let c = unsafe { client_arg(client) }?;
        let version = c.inner.version();
        let reason = ReasonCode(reason_code);
        if reason.check(PacketType::Disconnect).is_err() {
            return Err(Failure::new(
                mqttc_status::MQTTC_ERR_INVALID_ARGUMENT,
                format!("{reason_code:#04x} is not a DISCONNECT reason code"),
            ));
        }
        if version == Version::V311 && reason != ReasonCode::SUCCESS {
            return Err(Failure::new(
                mqttc_status::MQTTC_ERR_NOT_SUPPORTED,
                "a disconnect reason code needs MQTT 5: set protocol_version to 5",
            ));
        }
        let owned = [(PropertyId::ServerReference, "only a broker sends it")];
        let holder = Holder::Packet(PacketType::Disconnect);
        let properties = unsafe { properties_arg(properties, version, holder, "DISCONNECT", &owned) }?;
        let t = c.inner.disconnect_with(Disconnect { reason, properties })?;
        unsafe { write_out(token, t) };
        Ok(())
    })
}

/// Unsubscribes one filter; see `mqttc_unsubscribe_many`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_unsubscribe(
    client: *mut mqttc_client,
    filter: *const c_char,
    token: *mut mqttc_token,
) -> mqttc_status {
    // SAFETY: a one-element array view of the caller's argument.
    unsafe { mqttc_unsubscribe_many(client, &filter, 1, token) }
}

/// An owned copy of a message: the view first, so a pointer to it is a pointer to the whole.
#[repr(C)]
struct OwnedMessage {
    view: mqttc_message,
    topic: CString,
    payload: Box<[u8]>,
    properties: mqttc_properties,
}

/// Copies a borrowed message (inside a callback) into one the caller owns and must release with
/// `mqttc_message_free`. On success `*out` receives the copy.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_message_copy(
    message: *const mqttc_message,
    out: *mut *mut mqttc_message,
) -> mqttc_status {
    guard(|| {
        if message.is_null() || out.is_null() {
            return Err(Failure::new(mqttc_status::MQTTC_ERR_NULL, "message or out is NULL"));
        }
        // SAFETY: a message view handed to a callback (or one of our copies), per the contract.
        let m = unsafe { &*message };
        let topic = unsafe { arg_bytes(m.topic.cast(), m.topic_len, "topic") }?;
        let payload: Box<[u8]> = unsafe { arg_bytes(m.payload, m.payload_len, "payload") }?.into();
        let list = unsafe { m.properties.as_ref() }
            .map(|p| p.list().clone())
            .unwrap_or_default();
        let topic = CString::new(topic)
            .map_err(|_| Failure::new(mqttc_status::MQTTC_ERR_INVALID_ARGUMENT, "topic contains NUL"))?;
        let mut owned = Box::new(OwnedMessage {
            view: mqttc_message {
                topic: std::ptr::null(),
                topic_len: m.topic_len,
                payload: std::ptr::null(),
                payload_len: m.payload_len,
                qos: m.qos,
                retain: m.retain,
                dup: m.dup,
                properties: std::ptr::null(),
            },
            topic,
            payload,
            properties: mqttc_properties::new(list),
        });
        owned.view.properties = &owned.properties;
        owned.view.topic = owned.topic.as_ptr();
        owned.view.payload = payload_ptr(&owned.payload);
        // SAFETY: checked non-NULL above.
        unsafe { out.write(Box::into_raw(owned).cast()) };
        Ok(())
    })
}

/// Releases a message made by `mqttc_message_copy`. NULL is a no-op. Never pass a message that a
/// callback received: that one is borrowed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_message_free(message: *mut mqttc_message) {
    if !message.is_null() {
        // SAFETY: made by Box::into_raw in mqttc_message_copy, whose first field is the view.
        drop(unsafe { Box::from_raw(message.cast::<OwnedMessage>()) });
    }
}
