//! Subscribing and unsubscribing, and the registrations that route messages to callbacks.
use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_void};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::callbacks::Callback;
use super::client::{client_arg, mqttc_client, mqttc_token};
use super::message::{message_view, mqttc_message};
use super::properties::{mqttc_properties, properties_arg};
use super::{
    Failure, arg_str, count_arg, guard, mqttc_status, qos_arg, struct_size_arg, topic_failure, vec_for, write_out,
};
use crate::codec::{
    Holder, MAX_REMAINING_LENGTH, MqttStr, PacketType, PropertyId, Publish, QoS, RetainHandling, SubscribeOptions,
    Version,
};
use crate::engine::{FilterRequest, Handler};
use crate::topic::validate_subscription_filter;

/// Message callback: `message` is borrowed for the call. Runs on the client's callback thread.
/// With `ack_after_callback`, a QoS 1 or 2 message is acknowledged to the broker only after every
/// callback it matched has returned.
pub type mqttc_message_cb =
    Option<unsafe extern "C" fn(client: *mut mqttc_client, message: *const mqttc_message, userdata: *mut c_void)>;

/// Destructor for a subscription's userdata, called exactly once when the subscription ends
/// (unsubscribe, replacement by a new subscribe to the same filter, refusal by the broker, or
/// client free), after its last callback has returned. In event mode it also waits for every
/// MESSAGE event carrying the userdata to be freed: it then runs inside the `mqttc_event_free`
/// of the last one, on the thread that calls it.
pub type mqttc_drop_cb = Option<unsafe extern "C" fn(userdata: *mut c_void)>;

/// One filter for `mqttc_subscribe_many` and `mqttc_subscribe_v5`. Make each with
/// `MQTTC_SUBSCRIPTION_INIT(...)`, which sets `struct_size`, or set `struct_size` to
/// `sizeof(mqttc_subscription)` yourself: fields may be appended in later versions, and
/// `struct_size` tells the library which ones your program knows. The library walks an array
/// with the stride of its first entry's `struct_size`; every entry must carry the same.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct mqttc_subscription {
    /// sizeof(mqttc_subscription) as compiled into the caller.
    pub struct_size: u32,
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
    let shared = validate_subscription_filter(filter)
        .map_err(|e| topic_failure(mqttc_status::MQTTC_ERR_INVALID_FILTER, "filter", filter, e))?;
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

/// The shortest `mqttc_subscription` layout published, the first with `struct_size`; entries as
/// short are read with any later fields 0.
const SUBSCRIPTION_MIN_SIZE: usize = size_of::<mqttc_subscription>();

/// The most filters one SUBSCRIBE carries: each takes at least 4 bytes (a two-byte length, a
/// one-byte filter, its options) after the two-byte packet id.
const MAX_SUBSCRIBE_FILTERS: usize = (MAX_REMAINING_LENGTH - 2) / 4;

/// The most filters one UNSUBSCRIBE carries: each takes at least 3 bytes.
const MAX_UNSUBSCRIBE_FILTERS: usize = (MAX_REMAINING_LENGTH - 2) / 3;

/// Reads a C array of `count` subscriptions, with the stride of the first entry's `struct_size`.
///
/// # Safety
/// `subs` is non-NULL and points to `count` entries, each of the size the first one gives.
unsafe fn subscriptions_arg(subs: *const mqttc_subscription, count: usize) -> Result<Vec<mqttc_subscription>, Failure> {
    count_arg(count, MAX_SUBSCRIBE_FILTERS, "SUBSCRIBE")?;
    if count == 0 {
        return Ok(Vec::new());
    }
    // SAFETY: the first entry has at least its `struct_size` field, per the contract.
    let first = unsafe { subs.cast::<u32>().read_unaligned() };
    let hint = "make entries with MQTTC_SUBSCRIPTION_INIT";
    let stride = struct_size_arg::<mqttc_subscription>(first, SUBSCRIPTION_MIN_SIZE, "subscriptions[0]", hint)?;
    let mut all = vec_for(count, "subscriptions")?;
    for i in 0..count {
        // SAFETY: entry `i` starts `i * stride` bytes in, with at least its `struct_size`.
        let entry = unsafe { subs.cast::<u8>().add(i * stride) };
        let size = unsafe { entry.cast::<u32>().read_unaligned() };
        if size != first {
            return Err(Failure::new(
                mqttc_status::MQTTC_ERR_INVALID_ARGUMENT,
                format!(
                    "subscriptions[{i}] struct_size is {size} but subscriptions[0]'s is {first}; all must be equal"
                ),
            ));
        }
        // SAFETY: every field of the struct (pointers, integers, optional function pointers) is
        // valid as zero, and `stride` readable bytes, no more than the struct, start at `entry`.
        let mut s: mqttc_subscription = unsafe { std::mem::zeroed() };
        unsafe { std::ptr::copy_nonoverlapping(entry, (&raw mut s).cast::<u8>(), stride) };
        all.push(s);
    }
    Ok(all)
}

/// # Safety
/// `properties` is NULL or a live list; the rest per the exported functions' contracts.
unsafe fn subscribe_all(
    client: *mut mqttc_client,
    subs: &[mqttc_subscription],
    properties: *const mqttc_properties,
    token: *mut mqttc_token,
) -> Result<(), Failure> {
    // SAFETY: per the exported functions' contracts.
    let c = client_arg(client)?;
    let version = c.version();
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
    let mut checked = vec_for(subs.len(), "filters")?;
    for s in subs {
        match unsafe { subscription_arg(client, s, c.event_mode(), version, &owned) } {
            Ok(v) => checked.push(v),
            Err(f) => {
                disown(checked);
                return Err(f);
            }
        }
    }
    match c.subscribe_with(checked, properties) {
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
///
/// Errors: MQTTC_ERR_NULL (also `on_message` outside event mode), MQTTC_ERR_INVALID_HANDLE,
/// MQTTC_ERR_INVALID_UTF8, MQTTC_ERR_INVALID_FILTER, MQTTC_ERR_INVALID_QOS, MQTTC_ERR_RESOURCE,
/// MQTTC_ERR_NOT_CONNECTED (while disconnecting), MQTTC_ERR_QUEUE_FULL, MQTTC_ERR_CANCELLED,
/// MQTTC_ERR_PANIC.
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
            struct_size: size_of::<mqttc_subscription>() as u32,
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
/// Every entry's `struct_size` must be set (see `mqttc_subscription`) and equal:
/// MQTTC_ERR_STRUCT_SIZE for a size this library does not know, MQTTC_ERR_INVALID_ARGUMENT when
/// entries differ. A `count` over 67,108,863 (more filters than one SUBSCRIBE can hold) is
/// MQTTC_ERR_INVALID_ARGUMENT, before any entry is read.
///
/// Errors: MQTTC_ERR_NULL (also an `on_message` outside event mode), MQTTC_ERR_INVALID_HANDLE,
/// MQTTC_ERR_STRUCT_SIZE, MQTTC_ERR_INVALID_ARGUMENT (`count` 0 or too large, sizes differ, bad
/// `options`), MQTTC_ERR_INVALID_UTF8, MQTTC_ERR_INVALID_FILTER, MQTTC_ERR_INVALID_QOS,
/// MQTTC_ERR_NOT_SUPPORTED (`options` in 3.1.1), MQTTC_ERR_RESOURCE, MQTTC_ERR_NOT_CONNECTED (while
/// disconnecting), MQTTC_ERR_QUEUE_FULL, MQTTC_ERR_CANCELLED, MQTTC_ERR_PANIC.
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
///
/// Errors: MQTTC_ERR_NULL (also an `on_message` outside event mode), MQTTC_ERR_INVALID_HANDLE,
/// MQTTC_ERR_STRUCT_SIZE, MQTTC_ERR_INVALID_ARGUMENT (as `mqttc_subscribe_many`, or a bad
/// property), MQTTC_ERR_INVALID_UTF8, MQTTC_ERR_INVALID_FILTER, MQTTC_ERR_INVALID_QOS,
/// MQTTC_ERR_NOT_SUPPORTED (`options` or properties in 3.1.1), MQTTC_ERR_RESOURCE,
/// MQTTC_ERR_NOT_CONNECTED (while disconnecting), MQTTC_ERR_QUEUE_FULL, MQTTC_ERR_CANCELLED,
/// MQTTC_ERR_PANIC.
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
        let subs = unsafe { subscriptions_arg(subscriptions, count) }?;
        unsafe { subscribe_all(client, &subs, properties, token) }
    })
}

/// Unsubscribes `count` filters in one UNSUBSCRIBE packet (MQTTClient.jl's `unsubscribe_async`).
/// Their callbacks stop at once; `*token` completes on UNSUBACK. A `count` over 89,478,484 (more
/// filters than one UNSUBSCRIBE can hold) is MQTTC_ERR_INVALID_ARGUMENT, before any is read.
///
/// Errors: MQTTC_ERR_NULL, MQTTC_ERR_INVALID_HANDLE, MQTTC_ERR_INVALID_ARGUMENT (`count` 0 or too
/// large), MQTTC_ERR_INVALID_UTF8, MQTTC_ERR_INVALID_FILTER, MQTTC_ERR_RESOURCE,
/// MQTTC_ERR_NOT_CONNECTED (no session, or disconnecting), MQTTC_ERR_QUEUE_FULL,
/// MQTTC_ERR_CANCELLED, MQTTC_ERR_PANIC.
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

/// Unsubscribes one filter; see `mqttc_unsubscribe_many`.
///
/// Errors: MQTTC_ERR_NULL, MQTTC_ERR_INVALID_HANDLE, MQTTC_ERR_INVALID_UTF8,
/// MQTTC_ERR_INVALID_FILTER, MQTTC_ERR_RESOURCE, MQTTC_ERR_NOT_CONNECTED (no session, or
/// disconnecting), MQTTC_ERR_QUEUE_FULL, MQTTC_ERR_CANCELLED, MQTTC_ERR_PANIC.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_unsubscribe(
    client: *mut mqttc_client,
    filter: *const c_char,
    token: *mut mqttc_token,
) -> mqttc_status {
    // SAFETY: a one-element array view of the caller's argument.
    unsafe { mqttc_unsubscribe_many(client, &filter, 1, token) }
}

/// `mqttc_unsubscribe_many` with MQTT 5 UNSUBSCRIBE properties (NULL for none; user properties).
/// In MQTT 5 `mqttc_token_codes` gives each filter's UNSUBACK reason code.
///
/// Errors: MQTTC_ERR_NULL, MQTTC_ERR_INVALID_HANDLE, MQTTC_ERR_INVALID_ARGUMENT (`count` 0 or too
/// large, a bad property), MQTTC_ERR_NOT_SUPPORTED (properties in 3.1.1), MQTTC_ERR_INVALID_UTF8,
/// MQTTC_ERR_INVALID_FILTER, MQTTC_ERR_RESOURCE, MQTTC_ERR_NOT_CONNECTED (no session, or
/// disconnecting), MQTTC_ERR_QUEUE_FULL, MQTTC_ERR_CANCELLED, MQTTC_ERR_PANIC.
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
        let c = client_arg(client)?;
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
        let properties = unsafe { properties_arg(properties, c.version(), holder, "UNSUBSCRIBE", &[]) }?;
        count_arg(count, MAX_UNSUBSCRIBE_FILTERS, "UNSUBSCRIBE")?;
        let mut checked = vec_for(count, "filters")?;
        // SAFETY: `count` readable pointers per the contract; `count` fits in a packet, so the
        // slice is far below `isize::MAX` bytes.
        for &f in unsafe { std::slice::from_raw_parts(filters, count) } {
            let f = unsafe { arg_str(f, "filter") }?;
            validate_subscription_filter(f)
                .map_err(|e| topic_failure(mqttc_status::MQTTC_ERR_INVALID_FILTER, "filter", f, e))?;
            checked.push(
                MqttStr::new(f).map_err(|e| topic_failure(mqttc_status::MQTTC_ERR_INVALID_FILTER, "filter", f, e))?,
            );
        }
        let t = c.unsubscribe_with(checked, properties)?;
        unsafe { write_out(token, t) };
        Ok(())
    })
}
