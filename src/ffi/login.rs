//! What the next CONNECT says of who connects, and its will: set in the options, changed later
//! without a new client (libmosquitto's `mosquitto_username_pw_set` and `mosquitto_will_set`,
//! which also act at the next connect).
use std::ffi::{c_char, c_int};

use bytes::Bytes;

use super::client::{client_arg, mqttc_client};
use super::properties::{mqttc_properties, properties_arg};
use super::{Failure, MAX_FIELD, arg_bytes, arg_str, guard, mqttc_status, opt_str, qos_arg};
use crate::codec::{Holder, MqttStr, Version, Will};
use crate::topic::validate_topic_name;

/// An MQTT string from a C argument already known to be UTF-8: at most 65,535 bytes, no U+0000.
pub(crate) fn mqtt_text(s: &str, name: &str) -> Result<MqttStr, Failure> {
    MqttStr::new(s).map_err(|err| Failure::new(mqttc_status::MQTTC_ERR_INVALID_ARGUMENT, format!("{name}: {err}")))
}

/// A user name and password from C, each NULL for none (a NULL password with a length is
/// refused). Whether the protocol takes a password without a user name is the engine's to say.
///
/// # Safety
/// `username` is NULL or NUL-terminated; `password` is NULL or has `password_len` readable bytes;
/// both borrowed for the call.
pub(crate) unsafe fn credentials_arg(
    username: *const c_char,
    password: *const u8,
    password_len: usize,
) -> Result<(Option<MqttStr>, Option<Bytes>), Failure> {
    // SAFETY: per the contract.
    let username = unsafe { opt_str(username, "username") }?
        .map(|u| mqtt_text(u, "username"))
        .transpose()?;
    let password = match password.is_null() && password_len == 0 {
        true => None,
        // SAFETY: per the contract; a NULL pointer with a length is refused there.
        false => Some(Bytes::copy_from_slice(unsafe {
            arg_bytes(password, password_len, MAX_FIELD, "password")
        }?)),
    };
    Ok((username, password))
}

/// The parts of a will as C passes them (in the options, or to `mqttc_client_set_will`).
pub(crate) struct WillArgs {
    pub(crate) topic: *const c_char,
    pub(crate) payload: *const u8,
    pub(crate) payload_len: usize,
    pub(crate) qos: c_int,
    pub(crate) retain: bool,
    pub(crate) properties: *const mqttc_properties,
}

/// A will from C, checked as a publish would be: a topic name (no wildcards), a payload of at
/// most 65,535 bytes (a binary field in CONNECT), a QoS, will properties (MQTT 5). `prefix` starts
/// the names errors give the arguments ("will_" in the options).
///
/// # Safety
/// The pointers in `w` are NULL or valid as their fields say, borrowed for the call.
pub(crate) unsafe fn will_arg(w: &WillArgs, version: Version, prefix: &str) -> Result<Will, Failure> {
    let name = |part: &str| format!("{prefix}{part}");
    // SAFETY (all reads): per the contract.
    let topic = unsafe { arg_str(w.topic, &name("topic")) }?;
    validate_topic_name(topic).map_err(|err| {
        Failure::new(
            mqttc_status::MQTTC_ERR_INVALID_TOPIC,
            format!("{} \"{topic}\": {err}", name("topic")),
        )
    })?;
    Ok(Will {
        topic: mqtt_text(topic, &name("topic"))?,
        payload: Bytes::copy_from_slice(unsafe { arg_bytes(w.payload, w.payload_len, MAX_FIELD, &name("payload")) }?),
        qos: qos_arg(w.qos, &name("qos"))?,
        retain: w.retain,
        properties: unsafe { properties_arg(w.properties, version, Holder::Will, "will", &[]) }?,
    })
}

/// Sets the user name and password the client gives from its next connection attempt on: the
/// next `mqttc_connect` or `mqttc_reconnect`, or the next automatic reconnect. The current
/// connection, and an attempt already under way, keep what they were made with: to renew an
/// expiring token, call this and then `mqttc_reconnect`, or call it from the connection callback
/// when it reports LOST (an attempt that starts before the call returns, after a backoff shorter
/// than the callback, is refused and retried with the new ones). Replaces what the options (or an
/// earlier call) gave; NULL `username` and NULL `password` (length 0) send none.
///
/// `username` (UTF-8, NUL-terminated) and `password` (`password_len` bytes, need not be text, at
/// most 65,535) are borrowed for the call; the library copies them. May be called from any
/// thread, and from inside any callback of this client.
///
/// Errors: MQTTC_ERR_NULL (`client` is NULL, or `password` is NULL with a non-zero length),
/// MQTTC_ERR_INVALID_UTF8 (`username` is not UTF-8), MQTTC_ERR_INVALID_ARGUMENT (`username`
/// holds U+0000 or is over 65,535 bytes, `password_len` is over 65,535, or a password without a
/// user name in MQTT 3.1.1), MQTTC_ERR_INVALID_HANDLE (`client` was freed or is not a client),
/// MQTTC_ERR_PANIC (an internal error).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_client_set_credentials(
    client: *mut mqttc_client,
    username: *const c_char,
    password: *const u8,
    password_len: usize,
) -> mqttc_status {
    guard(|| {
        let c = client_arg(client)?;
        // SAFETY: per this function's contract.
        let (username, password) = unsafe { credentials_arg(username, password, password_len) }?;
        c.set_credentials(username, password)?;
        Ok(())
    })
}

/// Sets the will (Last Will and Testament) the client gives from its next connection attempt on,
/// as `mqttc_client_set_credentials` does for the credentials: the broker publishes it when a
/// connection made from then on ends without a DISCONNECT (a lost link, `mqttc_client_free`), or
/// with MQTT 5's reason 0x04. The current connection's will stays the one it was made with until
/// `mqttc_reconnect` or a reconnect. Replaces what the options (or an earlier call) gave.
///
/// `topic` is a topic name (UTF-8, no wildcards), `payload` `len` bytes (at most 65,535; NULL
/// when `len` is 0), `qos` 0 to 2; `properties` (MQTT 5: Will Delay Interval, Message Expiry
/// Interval, Content Type, Response Topic, Correlation Data, Payload Format Indicator, user
/// properties) may be NULL for none. All are borrowed for the call; the library copies them. May
/// be called from any thread, and from inside any callback of this client.
///
/// Errors: MQTTC_ERR_NULL (`client` or `topic` is NULL, or `payload` is NULL with a non-zero
/// `len`), MQTTC_ERR_INVALID_UTF8 (`topic` is not UTF-8), MQTTC_ERR_INVALID_TOPIC (`topic` is
/// empty or holds a wildcard or U+0000), MQTTC_ERR_INVALID_QOS (`qos` is not 0, 1 or 2),
/// MQTTC_ERR_INVALID_ARGUMENT (`topic` or `len` over 65,535 bytes, or a property a will cannot
/// carry), MQTTC_ERR_NOT_SUPPORTED (properties on an MQTT 3.1.1 client),
/// MQTTC_ERR_INVALID_HANDLE (`client` was freed or is not a client), MQTTC_ERR_PANIC (an internal
/// error).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_client_set_will(
    client: *mut mqttc_client,
    topic: *const c_char,
    payload: *const u8,
    len: usize,
    qos: c_int,
    retain: bool,
    properties: *const mqttc_properties,
) -> mqttc_status {
    guard(|| {
        let c = client_arg(client)?;
        let args = WillArgs {
            topic,
            payload,
            payload_len: len,
            qos,
            retain,
            properties,
        };
        // SAFETY: per this function's contract.
        let will = unsafe { will_arg(&args, c.version(), "") }?;
        c.set_will(Some(will));
        Ok(())
    })
}

/// Removes the will from the client's next connection attempt on (libmosquitto's
/// `mosquitto_will_clear`), as `mqttc_client_set_will` sets one: the current connection keeps its
/// will until `mqttc_reconnect` or a reconnect. May be called from any thread, and from inside
/// any callback of this client.
///
/// Errors: MQTTC_ERR_NULL (`client` is NULL), MQTTC_ERR_INVALID_HANDLE (`client` was freed or is
/// not a client), MQTTC_ERR_PANIC (an internal error).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_client_clear_will(client: *mut mqttc_client) -> mqttc_status {
    guard(|| {
        client_arg(client)?.set_will(None);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn will(topic: &std::ffi::CStr, qos: c_int) -> WillArgs {
        WillArgs {
            topic: topic.as_ptr(),
            payload: b"bye".as_ptr(),
            payload_len: 3,
            qos,
            retain: true,
            properties: std::ptr::null(),
        }
    }

    #[test]
    fn null_means_none_and_a_null_password_with_a_length_is_refused() {
        let none = unsafe { credentials_arg(std::ptr::null(), std::ptr::null(), 0) }
            .ok()
            .unwrap();
        assert_eq!(none, (None, None));
        let (user, password) = unsafe { credentials_arg(c"alice".as_ptr(), b"".as_ptr(), 0) }
            .ok()
            .unwrap();
        assert_eq!(user.as_ref().map(MqttStr::as_str), Some("alice"));
        assert_eq!(password.as_deref(), Some(&b""[..]), "an empty password is a password");
        let f = unsafe { credentials_arg(c"alice".as_ptr(), std::ptr::null(), 3) }
            .err()
            .unwrap();
        assert_eq!(f.status, mqttc_status::MQTTC_ERR_NULL);
    }

    #[test]
    fn a_will_is_checked_as_a_publish_and_errors_name_the_argument_as_the_caller_knows_it() {
        let ok = unsafe { will_arg(&will(c"status/gone", 1), Version::V311, "") }
            .ok()
            .unwrap();
        assert_eq!(
            (ok.topic.as_str(), &ok.payload[..], ok.retain),
            ("status/gone", &b"bye"[..], true)
        );
        let f = unsafe { will_arg(&will(c"status/+", 1), Version::V311, "will_") }
            .err()
            .unwrap();
        assert_eq!(f.status, mqttc_status::MQTTC_ERR_INVALID_TOPIC);
        assert!(f.detail.starts_with("will_topic \"status/+\""), "{}", f.detail);
        let f = unsafe { will_arg(&will(c"status", 3), Version::V5, "") }.err().unwrap();
        assert_eq!(f.status, mqttc_status::MQTTC_ERR_INVALID_QOS);
        assert!(f.detail.starts_with("qos is 3"), "{}", f.detail);
    }
}
