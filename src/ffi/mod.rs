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

mod client;
mod events;
mod message;
mod properties;
mod run_loop;
mod status;
mod token;
mod version;

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

pub use client::*;
pub use events::*;
pub use message::*;
pub use properties::*;
pub use run_loop::*;
pub use status::*;
pub use token::*;
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

/// Borrows a (pointer, length) byte argument; NULL is allowed only with length 0.
///
/// # Safety
/// `p` is NULL or points to `len` readable bytes that outlive the call.
pub(crate) unsafe fn arg_bytes<'a>(p: *const u8, len: usize, name: &str) -> Result<&'a [u8], Failure> {
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
    // SAFETY: non-NULL with `len` readable bytes per the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
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
