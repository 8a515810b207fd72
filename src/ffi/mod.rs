//! The C ABI: the only module with `extern "C"` and raw pointers. Thin by design: check every
//! argument, convert, call the engine, map the result to a [`mqttc_status`].
//!
//! Habits kept throughout (after rustls-ffi): every exported function runs inside a panic boundary;
//! out-parameters are written only on success; integers from C that name an enum (QoS, log level)
//! are validated before they become Rust values; each failure leaves a readable detail for
//! `mqttc_last_error`.
#![allow(non_camel_case_types)]
// Exported functions are documented for their C callers (the header); each states which pointers
// it borrows and for how long, which is the whole of their safety contract.
#![allow(clippy::missing_safety_doc)]

// The header (cbindgen) lists the API in this order: making a client, then what it does.
mod options;

mod store;

mod client;

mod login;

mod handles;

mod callbacks;

mod auth;

mod publish;

mod subscribe;

mod message;

mod topics;

mod properties;

mod token;

mod events;

mod run_loop;

mod pool;

mod status;

mod reason;

mod version;

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::codec::QoS;

pub use auth::*;
pub use callbacks::*;
pub use client::*;
pub use events::*;
pub use login::*;
pub use message::*;
pub use options::*;
pub use pool::*;
pub use properties::*;
pub use publish::*;
pub use reason::*;
pub use run_loop::*;
pub use status::*;
pub use store::*;
pub use subscribe::*;
pub use token::*;
pub use topics::*;
pub use version::*;

/// Why a call failed: the status returned to C and the detail kept for `mqttc_last_error`.
pub(crate) struct Failure {
    status: mqttc_status,
    detail: String,
}

impl Failure {
    pub(crate) fn new(status: mqttc_status, detail: impl Into<String>) -> Self {
        Failure {
            status,
            detail: detail.into(),
        }
    }
}

impl From<crate::engine::Error> for Failure {
    fn from(e: crate::engine::Error) -> Self {
        Failure {
            status: mqttc_status::from(&e),
            detail: e.to_string(),
        }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

pub(crate) fn set_last_error(detail: &str) {
    // Interior NULs cannot occur in our messages, but a detail may quote user input.
    let c = CString::new(detail.replace('\0', "\\0")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// Runs an exported function's body: a panic becomes `MQTTC_ERR_PANIC`, a failure sets the
/// thread's last-error detail.
pub(crate) fn guard(body: impl FnOnce() -> Result<(), Failure>) -> mqttc_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => mqttc_status::MQTTC_OK,
        Ok(Err(f)) => {
            set_last_error(&f.detail);
            f.status
        }
        Err(_) => {
            set_last_error("internal error: a panic was caught at the API boundary");
            mqttc_status::MQTTC_ERR_PANIC
        }
    }
}

/// Borrows a C string argument as UTF-8.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that outlives the call.
pub(crate) unsafe fn arg_str<'a>(p: *const c_char, name: &str) -> Result<&'a str, Failure> {
    if p.is_null() {
        return Err(Failure::new(mqttc_status::MQTTC_ERR_NULL, format!("{name} is NULL")));
    }
    // SAFETY: non-NULL and NUL-terminated per the caller's contract.
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str().map_err(|e| {
        Failure::new(
            mqttc_status::MQTTC_ERR_INVALID_UTF8,
            format!("{name} is not valid UTF-8: {e}"),
        )
    })
}

/// Like [`arg_str`], but NULL means "not given".
///
/// # Safety
/// As for [`arg_str`].
pub(crate) unsafe fn opt_str<'a>(p: *const c_char, name: &str) -> Result<Option<&'a str>, Failure> {
    if p.is_null() {
        Ok(None)
    } else {
        unsafe { arg_str(p, name) }.map(Some)
    }
}

/// The most bytes an MQTT string or binary field holds: its length is a two-byte integer.
pub(crate) const MAX_FIELD: usize = u16::MAX as usize;

/// Borrows a (pointer, length) byte argument of at most `max` bytes; NULL is allowed only with
/// length 0. The length is checked before the bytes are touched: a length from C may be anything,
/// and a slice longer than the caller's buffer (or than `isize::MAX`) is undefined behaviour.
///
/// # Safety
/// `p` is NULL or points to `len` readable bytes that outlive the call.
pub(crate) unsafe fn arg_bytes<'a>(p: *const u8, len: usize, max: usize, name: &str) -> Result<&'a [u8], Failure> {
    if p.is_null() {
        return if len == 0 {
            Ok(&[])
        } else {
            Err(Failure::new(
                mqttc_status::MQTTC_ERR_NULL,
                format!("{name} is NULL but its length is {len}"),
            ))
        };
    }
    if len > max {
        return Err(Failure::new(
            mqttc_status::MQTTC_ERR_INVALID_ARGUMENT,
            format!("{name} is {len} bytes long; MQTT allows at most {max}"),
        ));
    }
    // SAFETY: non-NULL with `len` readable bytes per the caller's contract; `len` is at most
    // `max`, which no caller sets above MQTT's packet size (far below `isize::MAX`).
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// Checks a count of filters from C against the most one `packet` can carry, before any entry is
/// read.
pub(crate) fn count_arg(count: usize, max: usize, packet: &str) -> Result<(), Failure> {
    if count > max {
        return Err(Failure::new(
            mqttc_status::MQTTC_ERR_INVALID_ARGUMENT,
            format!("count is {count}; one {packet} carries at most {max} filters"),
        ));
    }
    Ok(())
}

/// An empty vector with room for `n` items: MQTTC_ERR_RESOURCE, not an abort, when the memory
/// cannot be had (`n` comes from C).
pub(crate) fn vec_for<T>(n: usize, what: &str) -> Result<Vec<T>, Failure> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|e| {
        Failure::new(
            mqttc_status::MQTTC_ERR_RESOURCE,
            format!("no memory for {n} {what}: {e}"),
        )
    })?;
    Ok(v)
}

/// Checks a QoS argument from C.
pub(crate) fn qos_arg(qos: c_int, name: &str) -> Result<QoS, Failure> {
    u8::try_from(qos)
        .ok()
        .and_then(|q| QoS::from_u8(q).ok())
        .ok_or_else(|| {
            Failure::new(
                mqttc_status::MQTTC_ERR_INVALID_QOS,
                format!("{name} is {qos}; it must be 0, 1 or 2"),
            )
        })
}

/// A failure about a topic name or filter, quoting it.
pub(crate) fn topic_failure(status: mqttc_status, what: &str, text: &str, err: impl std::fmt::Display) -> Failure {
    Failure::new(status, format!("{what} \"{text}\": {err}"))
}

/// Checks the `struct_size` C set in a struct the library reads or fills, and returns it: from
/// `min` (the shortest layout of `T` published) up to this library's `T`, else
/// MQTTC_ERR_STRUCT_SIZE saying what to do (`hint`).
pub(crate) fn struct_size_arg<T>(size: u32, min: usize, what: &str, hint: &str) -> Result<usize, Failure> {
    let size = size as usize;
    if size < min || size > std::mem::size_of::<T>() {
        return Err(Failure::new(
            mqttc_status::MQTTC_ERR_STRUCT_SIZE,
            format!("{what} struct_size is {size}; {hint}"),
        ));
    }
    Ok(size)
}

/// Writes an out-parameter when the caller gave one.
///
/// # Safety
/// `p` is NULL or valid for a write of `T`.
pub(crate) unsafe fn write_out<T>(p: *mut T, value: T) {
    if !p.is_null() {
        // SAFETY: non-NULL and writable per the caller's contract.
        unsafe { p.write(value) };
    }
}

/// A short description of the last failure on the calling thread (empty when none yet).
///
/// The string is owned by the library and valid until the next mqttclient call on this thread;
/// copy it to keep it. Successful calls do not clear it (like `errno`).
#[unsafe(no_mangle)]
pub extern "C" fn mqttc_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_and_counts_over_the_limit_are_refused_before_any_byte_is_read() {
        // A dangling pointer: reading through it would be caught by Miri and crash a sanitizer run.
        let p = std::ptr::NonNull::<u8>::dangling().as_ptr();
        for len in [MAX_FIELD + 1, isize::MAX as usize + 1, usize::MAX] {
            let f = unsafe { arg_bytes(p, len, MAX_FIELD, "data") }.err().unwrap();
            assert_eq!(f.status, mqttc_status::MQTTC_ERR_INVALID_ARGUMENT);
            assert!(f.detail.contains(&len.to_string()), "{}", f.detail);
        }
        assert_eq!(unsafe { arg_bytes(p, 0, MAX_FIELD, "data") }.ok(), Some(&[][..]));
        assert!(count_arg(5, 4, "SUBSCRIBE").is_err());
        assert!(count_arg(4, 4, "SUBSCRIBE").is_ok());
    }

    #[test]
    fn a_reservation_that_cannot_be_had_is_an_error_not_an_abort() {
        let f = vec_for::<[u8; 4096]>(usize::MAX / 4096, "pages").err().unwrap();
        assert_eq!(f.status, mqttc_status::MQTTC_ERR_RESOURCE);
        assert!(vec_for::<u8>(16, "bytes").is_ok_and(|v| v.capacity() >= 16));
    }
}
