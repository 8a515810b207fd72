//! The message view handed to callbacks and events, and owned copies of it.
use std::ffi::{CString, c_char, c_int};

use super::properties::mqttc_properties;
use super::{Failure, MAX_FIELD, arg_bytes, guard, mqttc_status, vec_for};
use crate::codec::{MAX_REMAINING_LENGTH, Publish};

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
    /// The packet identifier of the PUBLISH that brought the message (what mosquitto calls its
    /// "mid"): 1 to 65535 at QoS 1 and 2, 0 at QoS 0, which has none. The broker chooses it per
    /// connection, so it tells apart the messages in flight on one connection and nothing more.
    /// 0 in a RESTORED event, whose message is one of ours that the store gave back.
    pub packet_id: u16,
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

/// The C view of a message of ours that the store gave back: its packet id, if it had one, was
/// the one of an earlier connection, so it has none (see `packet_id`).
pub(crate) fn restored_view(p: &Publish, topic: *const c_char, props: &mqttc_properties) -> mqttc_message {
    mqttc_message {
        packet_id: 0,
        ..message_view(p, topic, props)
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
        packet_id: p.pkid,
    }
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
///
/// Errors: MQTTC_ERR_NULL (`message`, `out`, or its topic or payload with a length),
/// MQTTC_ERR_INVALID_ARGUMENT (a topic over 65,535 bytes or with a NUL, a payload over
/// 268,435,455), MQTTC_ERR_RESOURCE (no memory for the copy).
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
        // Lengths within what a received message can have: the payload's decides an allocation.
        let topic = unsafe { arg_bytes(m.topic.cast(), m.topic_len, MAX_FIELD, "topic") }?;
        let payload = unsafe { arg_bytes(m.payload, m.payload_len, MAX_REMAINING_LENGTH, "payload") }?;
        let mut copy = vec_for(payload.len(), "payload bytes")?;
        copy.extend_from_slice(payload);
        let payload = copy.into_boxed_slice();
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
                packet_id: m.packet_id,
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
