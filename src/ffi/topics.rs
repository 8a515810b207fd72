//! Topic names and filters checked and matched as the library does (libmosquitto's
//! `mosquitto_topic_matches_sub`, `mosquitto_pub_topic_check`, `mosquitto_sub_topic_check`).
use std::ffi::c_char;

use super::{Failure, arg_str, guard, mqttc_status, topic_failure, write_out};
use crate::topic::{filter_matches, split_shared, validate_subscription_filter, validate_topic_name};

/// Checks a topic name as `mqttc_publish` would: MQTTC_OK when it is valid; otherwise
/// `mqttc_last_error` says why.
///
/// Errors: MQTTC_ERR_NULL, MQTTC_ERR_INVALID_UTF8, MQTTC_ERR_INVALID_TOPIC (empty, longer than
/// 65535 bytes, U+0000, or a wildcard).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_topic_check(topic: *const c_char) -> mqttc_status {
    guard(|| {
        // SAFETY: borrowed for the call per the contract.
        let topic = unsafe { arg_str(topic, "topic") }?;
        validate_topic_name(topic).map_err(|e| topic_failure(mqttc_status::MQTTC_ERR_INVALID_TOPIC, "topic", topic, e))
    })
}

/// Checks a filter as `mqttc_subscribe` would: MQTTC_OK when it is valid; otherwise
/// `mqttc_last_error` says why.
///
/// Errors: MQTTC_ERR_NULL, MQTTC_ERR_INVALID_UTF8, MQTTC_ERR_INVALID_FILTER (empty, too long,
/// U+0000, `+` or `#` not a whole level, `#` not last, a malformed `$share/name/filter`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_filter_check(filter: *const c_char) -> mqttc_status {
    guard(|| {
        // SAFETY: borrowed for the call per the contract.
        let filter = unsafe { arg_str(filter, "filter") }?;
        check_filter(filter)
    })
}

fn check_filter(filter: &str) -> Result<(), Failure> {
    validate_subscription_filter(filter)
        .map(|_| ())
        .map_err(|e| topic_failure(mqttc_status::MQTTC_ERR_INVALID_FILTER, "filter", filter, e))
}

/// Whether the topic name `topic` matches `filter` (MQTT section 4.7), as the broker decides what
/// a subscription receives: `+` is one level, `#` the rest including the parent level, and a topic
/// starting with `$` is matched by no filter starting with a wildcard. A shared subscription's
/// filter (`$share/name/filter`) matches as its `filter` part. On MQTTC_OK `*result` says whether
/// it matches; both are checked first, and when one is not valid `*result` is not written.
///
/// Errors: MQTTC_ERR_NULL (`filter`, `topic` or `result`), MQTTC_ERR_INVALID_UTF8,
/// MQTTC_ERR_INVALID_FILTER, MQTTC_ERR_INVALID_TOPIC.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_topic_matches(
    filter: *const c_char,
    topic: *const c_char,
    result: *mut bool,
) -> mqttc_status {
    guard(|| {
        // SAFETY (all pointer reads): borrowed for the call per the contract.
        let filter = unsafe { arg_str(filter, "filter") }?;
        let topic = unsafe { arg_str(topic, "topic") }?;
        if result.is_null() {
            return Err(Failure::new(mqttc_status::MQTTC_ERR_NULL, "result is NULL"));
        }
        check_filter(filter)?;
        validate_topic_name(topic)
            .map_err(|e| topic_failure(mqttc_status::MQTTC_ERR_INVALID_TOPIC, "topic", topic, e))?;
        let matched = match split_shared(filter) {
            Some(Ok((_, inner))) => filter_matches(inner, topic),
            _ => filter_matches(filter, topic),
        };
        // SAFETY: checked non-NULL above; writable per the contract.
        unsafe { write_out(result, matched) };
        Ok(())
    })
}
