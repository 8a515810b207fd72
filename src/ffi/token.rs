//! Polling and waiting on tokens, and reading the codes and properties a completed token carries.
use std::time::Duration;

use super::client::{client_arg, mqttc_client, mqttc_token};
use super::properties::mqttc_properties;
use super::{Failure, guard, mqttc_status, set_last_error, write_out};
use crate::engine::TokenState;

fn state_status(state: TokenState) -> mqttc_status {
    match state {
        TokenState::Pending => mqttc_status::MQTTC_PENDING,
        TokenState::Done(Ok(_)) => mqttc_status::MQTTC_OK,
        TokenState::Done(Err(e)) => {
            // The token's own failure is the detail a caller will want from mqttc_last_error.
            set_last_error(&e.to_string());
            mqttc_status::from(&e)
        }
        TokenState::Expired => mqttc_status::MQTTC_ERR_TOKEN_EXPIRED,
        TokenState::Unknown => mqttc_status::MQTTC_ERR_TOKEN_UNKNOWN,
    }
}

/// Polls a token without blocking: MQTTC_PENDING, MQTTC_OK, the operation's error status, or
/// MQTTC_ERR_TOKEN_UNKNOWN / MQTTC_ERR_TOKEN_EXPIRED (see `token_history` in `mqttc_options`).
///
/// Errors: MQTTC_PENDING, MQTTC_ERR_NULL, MQTTC_ERR_INVALID_HANDLE, MQTTC_ERR_TOKEN_UNKNOWN,
/// MQTTC_ERR_TOKEN_EXPIRED, and the status the operation failed with.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_token_poll(client: *const mqttc_client, token: mqttc_token) -> mqttc_status {
    let mut status = mqttc_status::MQTTC_OK;
    let call = guard(|| {
        status = state_status(client_arg(client)?.token_state(token));
        Ok(())
    });
    if call == mqttc_status::MQTTC_OK { status } else { call }
}

/// Waits up to `timeout_ms` milliseconds for a token to complete and returns what
/// `mqttc_token_poll` would then return, or MQTTC_ERR_TIMEOUT if it is still pending. Refused with
/// MQTTC_ERR_IN_CALLBACK on the client's callback thread (blocking there could deadlock: the library
/// may need that thread to make progress).
///
/// Errors: MQTTC_ERR_NULL, MQTTC_ERR_INVALID_HANDLE, MQTTC_ERR_IN_CALLBACK, MQTTC_ERR_TIMEOUT
/// (still pending), MQTTC_ERR_TOKEN_UNKNOWN, MQTTC_ERR_TOKEN_EXPIRED, and the status the operation
/// failed with.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_token_wait(
    client: *const mqttc_client,
    token: mqttc_token,
    timeout_ms: u32,
) -> mqttc_status {
    let mut status = mqttc_status::MQTTC_OK;
    let call = guard(|| {
        let c = client_arg(client)?;
        let state = c.wait(token, Duration::from_millis(timeout_ms.into())).ok_or_else(|| {
            Failure::new(
                mqttc_status::MQTTC_ERR_IN_CALLBACK,
                "mqttc_token_wait called on the client's callback thread",
            )
        })?;
        status = match state {
            TokenState::Pending => {
                set_last_error(&format!("token {token} still pending after {timeout_ms} ms"));
                mqttc_status::MQTTC_ERR_TIMEOUT
            }
            other => state_status(other),
        };
        Ok(())
    });
    if call == mqttc_status::MQTTC_OK { status } else { call }
}

/// Copies the codes a completed token carries into `codes` (up to `capacity`) and their number into
/// `*count`: for a connect, [session_present]; for a subscribe, the SUBACK return code of every
/// filter in order (granted QoS 0/1/2, or 0x80 for refused), also when the token failed with
/// MQTTC_ERR_SUBSCRIBE_REFUSED; for other operations, none. `codes` may be NULL when `capacity` is 0
/// (to learn the count). Returns the token's poll status when it has no codes to give.
///
/// Errors: MQTTC_ERR_NULL (`client`, `count`, or `codes` with a `capacity`),
/// MQTTC_ERR_INVALID_HANDLE, MQTTC_PENDING, MQTTC_ERR_TOKEN_UNKNOWN, MQTTC_ERR_TOKEN_EXPIRED, and
/// the status of a failure without codes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_token_codes(
    client: *const mqttc_client,
    token: mqttc_token,
    codes: *mut u8,
    capacity: usize,
    count: *mut usize,
) -> mqttc_status {
    guard(|| {
        let c = client_arg(client)?;
        if count.is_null() || (codes.is_null() && capacity > 0) {
            return Err(Failure::new(
                mqttc_status::MQTTC_ERR_NULL,
                "count is NULL, or codes is NULL with a capacity",
            ));
        }
        let got = match c.token_state(token) {
            TokenState::Done(Ok(outcome)) => outcome.codes,
            TokenState::Done(Err(e)) if e.reason_codes().is_some() => e.reason_codes().unwrap_or_default(),
            other => {
                let status = state_status(other);
                return Err(Failure::new(
                    status,
                    format!("token {token} has no codes: {:?}", status),
                ));
            }
        };
        let n = got.len().min(capacity);
        if n > 0 {
            // SAFETY: `codes` has room for `capacity` >= n bytes per the contract.
            unsafe { std::ptr::copy_nonoverlapping(got.as_ptr(), codes, n) };
        }
        // SAFETY: checked non-NULL above; writable per the contract.
        unsafe { write_out(count, got.len()) };
        Ok(())
    })
}

/// MQTT 5: copies the properties of the acknowledgement that completed a token into a list the
/// caller owns and releases with `mqttc_properties_free`: for a connect, the CONNACK's (the
/// broker's limits, an assigned client identifier, response information); for a publish, the
/// PUBACK's or PUBCOMP's; for a (un)subscribe, the SUBACK's or UNSUBACK's; in each case also when
/// the broker refused (a reason string says why). The list is empty in MQTT 3.1.1. Returns the
/// token's poll status when no acknowledgement completed it (pending, cancelled, lost, ...).
///
/// Errors: MQTTC_ERR_NULL, MQTTC_ERR_INVALID_HANDLE, MQTTC_PENDING, MQTTC_ERR_TOKEN_UNKNOWN,
/// MQTTC_ERR_TOKEN_EXPIRED, and the status of a failure without an acknowledgement.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_token_properties(
    client: *const mqttc_client,
    token: mqttc_token,
    out: *mut *mut mqttc_properties,
) -> mqttc_status {
    guard(|| {
        let c = client_arg(client)?;
        if out.is_null() {
            return Err(Failure::new(mqttc_status::MQTTC_ERR_NULL, "out is NULL"));
        }
        let list = match c.token_state(token) {
            TokenState::Done(Ok(outcome)) => outcome.properties,
            TokenState::Done(Err(e)) if e.properties().is_some() => e.properties().cloned().unwrap_or_default(),
            other => {
                let status = state_status(other);
                return Err(Failure::new(
                    status,
                    format!("no acknowledgement completed token {token}: {status:?}"),
                ));
            }
        };
        // SAFETY: checked non-NULL above; writable per the contract.
        unsafe { write_out(out, Box::into_raw(Box::new(mqttc_properties::new(list)))) };
        Ok(())
    })
}
