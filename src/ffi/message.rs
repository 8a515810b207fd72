//! Publish, subscribe, unsubscribe, and the message view handed to callbacks.
use std::cell::RefCell;
use std::ffi::{CString, c_char, c_int, c_void};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;

use super::client::{Callback, client_arg, mqttc_client, mqttc_token, qos_arg};
use super::{Failure, arg_bytes, arg_str, guard, mqttc_status, write_out};
use crate::codec::{MAX_REMAINING_LENGTH, MqttStr, Publish, QoS};
use crate::engine::Handler;
use crate::topic::{validate_topic_filter, validate_topic_name};

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
}

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
            let msg = message_view(p, buf.as_ptr().cast());
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

/// The C view of `p`, with `topic` a NUL-terminated copy of its topic; it borrows both.
pub(crate) fn message_view(p: &Publish, topic: *const c_char) -> mqttc_message {
    mqttc_message {
        topic,
        topic_len: p.topic.len(),
        payload: payload_ptr(&p.payload),
        payload_len: p.payload.len(),
        qos: p.qos as c_int,
        retain: p.retain,
        dup: p.dup,
    }
}

fn topic_failure(status: mqttc_status, what: &str, text: &str, err: impl std::fmt::Display) -> Failure {
    Failure::new(status, format!("{what} \"{text}\": {err}"))
}

/// Queues a publish (MQTTClient.jl's `publish_async`) and returns at once. The topic and payload are
/// copied. `*token` (if not NULL) completes when the message was written (QoS 0), acknowledged
/// (QoS 1: PUBACK) or fully handed over (QoS 2: PUBCOMP). `payload` may be NULL when `len` is 0.
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
    guard(|| {
        // SAFETY (all pointer reads): per the documented contract, borrowed for this call.
        let c = unsafe { client_arg(client) }?;
        let topic = unsafe { arg_str(topic, "topic") }?;
        validate_topic_name(topic)
            .map_err(|e| topic_failure(mqttc_status::MQTTC_ERR_INVALID_TOPIC, "topic", topic, e))?;
        let qos = qos_arg(qos, "qos")?;
        // 2 (topic length) + 2 (packet id) bytes of variable header share the remaining length.
        if len.saturating_add(topic.len() + 4) > MAX_REMAINING_LENGTH {
            return Err(Failure::new(
                mqttc_status::MQTTC_ERR_PAYLOAD_TOO_LARGE,
                format!("payload of {len} bytes exceeds MQTT's limit"),
            ));
        }
        let payload = unsafe { arg_bytes(payload.cast(), len, "payload") }?;
        let topic =
            MqttStr::new(topic).map_err(|e| topic_failure(mqttc_status::MQTTC_ERR_INVALID_TOPIC, "topic", topic, e))?;
        let t = c.inner.publish(topic, Bytes::copy_from_slice(payload), qos, retain)?;
        unsafe { write_out(token, t) };
        Ok(())
    })
}

/// Checks one subscription request and turns it into what the engine takes.
///
/// # Safety
/// `s.filter` is NULL or a NUL-terminated string borrowed for the call.
unsafe fn subscription_arg(
    client: *mut mqttc_client,
    s: &mqttc_subscription,
    event_mode: bool,
    owned: &Arc<AtomicBool>,
) -> Result<(MqttStr, QoS, Handler), Failure> {
    // SAFETY: per this function's contract.
    let filter = unsafe { arg_str(s.filter, "filter") }?;
    validate_topic_filter(filter)
        .map_err(|e| topic_failure(mqttc_status::MQTTC_ERR_INVALID_FILTER, "filter", filter, e))?;
    let qos = qos_arg(s.qos, "qos")?;
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
    Ok((filter, qos, handler(reg)))
}

fn subscribe_all(
    client: *mut mqttc_client,
    subs: &[mqttc_subscription],
    token: *mut mqttc_token,
) -> Result<(), Failure> {
    // SAFETY: per the exported functions' contracts.
    let c = unsafe { client_arg(client) }?;
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
    let disown = |handlers: Vec<(MqttStr, QoS, Handler)>| {
        owned.store(false, Ordering::Release);
        drop(handlers);
    };
    let mut checked = Vec::with_capacity(subs.len());
    for s in subs {
        match unsafe { subscription_arg(client, s, c.inner.event_mode(), &owned) } {
            Ok(v) => checked.push(v),
            Err(f) => {
                disown(checked);
                return Err(f);
            }
        }
    }
    match c.inner.subscribe(checked) {
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
        };
        subscribe_all(client, std::slice::from_ref(&sub), token)
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
    guard(|| {
        if subscriptions.is_null() {
            return Err(Failure::new(mqttc_status::MQTTC_ERR_NULL, "subscriptions is NULL"));
        }
        // SAFETY: `count` readable entries per the contract.
        let subs = unsafe { std::slice::from_raw_parts(subscriptions, count) };
        subscribe_all(client, subs, token)
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
        let mut checked = Vec::with_capacity(count);
        for &f in unsafe { std::slice::from_raw_parts(filters, count) } {
            let f = unsafe { arg_str(f, "filter") }?;
            validate_topic_filter(f)
                .map_err(|e| topic_failure(mqttc_status::MQTTC_ERR_INVALID_FILTER, "filter", f, e))?;
            checked.push(
                MqttStr::new(f).map_err(|e| topic_failure(mqttc_status::MQTTC_ERR_INVALID_FILTER, "filter", f, e))?,
            );
        }
        let t = c.inner.unsubscribe(checked)?;
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
            },
            topic,
            payload,
        });
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
