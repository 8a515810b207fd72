//! Publishing: copied, lent (nocopy) and with MQTT 5 properties; responding to a request.
use std::ffi::{c_char, c_int, c_void};

use bytes::Bytes;

use super::client::{client_arg, mqttc_client, mqttc_token};
use super::message::mqttc_message;
use super::properties::{mqttc_properties, properties_arg};
use super::subscribe::mqttc_drop_cb;
use super::{Failure, arg_bytes, arg_str, guard, mqttc_status, qos_arg, topic_failure, write_out};
use crate::codec::{Holder, MAX_REMAINING_LENGTH, MqttStr, PacketType, PropertyId, Publish};
use crate::engine::Client;
use crate::topic::validate_topic_name;

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
/// come from the network thread, nor while the connection uses outbound topic aliases
/// (`topic_alias_max_out`). Calls keep their order either way.
///
/// Errors: MQTTC_ERR_NULL, MQTTC_ERR_INVALID_HANDLE, MQTTC_ERR_INVALID_UTF8,
/// MQTTC_ERR_INVALID_TOPIC, MQTTC_ERR_INVALID_QOS, MQTTC_ERR_PAYLOAD_TOO_LARGE, MQTTC_ERR_RESOURCE,
/// MQTTC_ERR_NOT_CONNECTED (no session and no `queue_before_connect`, or disconnecting),
/// MQTTC_ERR_QUEUE_FULL, MQTTC_ERR_STORE, MQTTC_ERR_CANCELLED, MQTTC_ERR_PANIC.
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
///
/// Errors: MQTTC_ERR_NULL, MQTTC_ERR_INVALID_HANDLE, MQTTC_ERR_INVALID_UTF8,
/// MQTTC_ERR_INVALID_TOPIC, MQTTC_ERR_INVALID_QOS, MQTTC_ERR_NOT_SUPPORTED,
/// MQTTC_ERR_INVALID_ARGUMENT (a property PUBLISH may not carry), MQTTC_ERR_PAYLOAD_TOO_LARGE,
/// MQTTC_ERR_RESOURCE, MQTTC_ERR_NOT_CONNECTED (as `mqttc_publish`), MQTTC_ERR_QUEUE_FULL,
/// MQTTC_ERR_STORE, MQTTC_ERR_CANCELLED, MQTTC_ERR_PANIC.
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
                let data = arg_bytes(payload.cast(), len, MAX_REMAINING_LENGTH, "payload")?;
                c.payload(data).map_err(|e| {
                    Failure::new(
                        mqttc_status::MQTTC_ERR_RESOURCE,
                        format!("no memory for a copy of the {len}-byte payload: {e}"),
                    )
                })
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
///
/// Errors: MQTTC_ERR_NULL, MQTTC_ERR_INVALID_HANDLE, MQTTC_ERR_INVALID_UTF8,
/// MQTTC_ERR_INVALID_TOPIC, MQTTC_ERR_INVALID_QOS, MQTTC_ERR_NOT_SUPPORTED,
/// MQTTC_ERR_INVALID_ARGUMENT (a property PUBLISH may not carry), MQTTC_ERR_PAYLOAD_TOO_LARGE,
/// MQTTC_ERR_NOT_CONNECTED (as `mqttc_publish`), MQTTC_ERR_QUEUE_FULL, MQTTC_ERR_STORE,
/// MQTTC_ERR_CANCELLED, MQTTC_ERR_PANIC.
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
                arg_bytes(lent.payload, len, MAX_REMAINING_LENGTH, "payload")?;
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
    payload: impl FnOnce(&Client) -> Result<Bytes, Failure>,
) -> Result<(), Failure> {
    // SAFETY (all pointer reads): per the caller's contract.
    let c = client_arg(client)?;
    let topic = unsafe { arg_str(topic, "topic") }?;
    validate_topic_name(topic).map_err(|e| topic_failure(mqttc_status::MQTTC_ERR_INVALID_TOPIC, "topic", topic, e))?;
    let qos = qos_arg(qos, "qos")?;
    let version = c.version();
    let properties = unsafe {
        properties_arg(
            properties,
            version,
            Holder::Packet(PacketType::Publish),
            "PUBLISH",
            PUBLISH_OWNED,
        )
    }?;
    // Checked before the payload is read: a length from C may be anything.
    Publish::check_size(topic, qos, &properties, len, version).map_err(|_| {
        Failure::new(
            mqttc_status::MQTTC_ERR_PAYLOAD_TOO_LARGE,
            format!("payload of {len} bytes exceeds MQTT's limit"),
        )
    })?;
    let payload = payload(&c)?;
    let topic =
        MqttStr::new(topic).map_err(|e| topic_failure(mqttc_status::MQTTC_ERR_INVALID_TOPIC, "topic", topic, e))?;
    let t = c.publish_with(topic, payload, qos, retain, properties)?;
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
///
/// Errors: MQTTC_ERR_NULL, MQTTC_ERR_INVALID_HANDLE, MQTTC_ERR_NOT_FOUND, MQTTC_ERR_INVALID_TOPIC
/// (the response topic), MQTTC_ERR_INVALID_QOS, MQTTC_ERR_NOT_SUPPORTED, MQTTC_ERR_INVALID_ARGUMENT
/// (a property PUBLISH may not carry), MQTTC_ERR_PAYLOAD_TOO_LARGE, MQTTC_ERR_RESOURCE,
/// MQTTC_ERR_NOT_CONNECTED (as `mqttc_publish`), MQTTC_ERR_QUEUE_FULL, MQTTC_ERR_STORE,
/// MQTTC_ERR_CANCELLED, MQTTC_ERR_PANIC.
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
