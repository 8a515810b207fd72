//! Per-client callbacks: log lines, token completions, connection changes, restored messages.
use std::ffi::{CString, c_char, c_int, c_void};
use std::sync::Arc;

use super::client::{client_arg, mqttc_client, mqttc_token};
use super::message::{mqttc_message, restored_view};
use super::properties::mqttc_properties;
use super::{Failure, guard, mqttc_status};
use crate::codec::Publish;
use crate::engine::{self, Client, ConnectionEvent, LogLevel};

/// Log levels for `mqttc_client_set_log`, most severe first.
#[repr(C)]
pub enum mqttc_log_level {
    MQTTC_LOG_OFF = 0,
    MQTTC_LOG_ERROR = 1,
    MQTTC_LOG_WARNING = 2,
    MQTTC_LOG_INFO = 3,
    MQTTC_LOG_DEBUG = 4,
}

/// Log callback: `line` is borrowed for the call. Runs on the client's callback thread.
pub type mqttc_log_cb =
    Option<unsafe extern "C" fn(client: *mut mqttc_client, level: c_int, line: *const c_char, userdata: *mut c_void)>;

/// Completion callback: called once for every token of this client as it completes, on the
/// client's callback thread, in completion order.
pub type mqttc_complete_cb = Option<
    unsafe extern "C" fn(client: *mut mqttc_client, token: mqttc_token, status: mqttc_status, userdata: *mut c_void),
>;

/// Restored-message callback: called once for each message restored from the store (see
/// `store_dir`) when a session starts, oldest first, before the CONNECT is sent, on the client's
/// callback thread. `token` now stands for the message: it completes when the broker
/// acknowledges it, like the token its publish call returned in the process that stored it.
/// `message` is borrowed for the call (`mqttc_message_copy` keeps it); its `dup` is false.
pub type mqttc_restored_cb = Option<
    unsafe extern "C" fn(
        client: *mut mqttc_client,
        token: mqttc_token,
        message: *const mqttc_message,
        userdata: *mut c_void,
    ),
>;

/// A C function pointer with its userdata, made sendable: the caller promised (in the header) that
/// the userdata may be used from the callback thread.
pub(crate) struct Callback<F> {
    pub f: F,
    pub client: *mut mqttc_client,
    pub userdata: *mut c_void,
}

// SAFETY: see the struct doc; the library only passes the pointers back to the caller's function.
unsafe impl<F: Send> Send for Callback<F> {}
// SAFETY: as above; the function is called from one thread at a time.
unsafe impl<F: Sync> Sync for Callback<F> {}

/// Checks the client of a callback setter and pairs the C callback (if any) with its userdata.
fn callback_arg<F>(
    client: *mut mqttc_client,
    cb: Option<F>,
    userdata: *mut c_void,
) -> Result<(Arc<Client>, Option<Callback<F>>), Failure> {
    let c = client_arg(client)?;
    Ok((c, cb.map(|f| Callback { f, client, userdata })))
}

/// Sets (or with NULL `cb`, removes) the log callback; messages at `level` (an `mqttc_log_level`)
/// and more severe are passed to it. Lines are produced only while a callback is set.
///
/// Errors: MQTTC_ERR_NULL, MQTTC_ERR_INVALID_HANDLE, MQTTC_ERR_INVALID_ARGUMENT (`level` not a log
/// level).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_client_set_log(
    client: *mut mqttc_client,
    level: c_int,
    cb: mqttc_log_cb,
    userdata: *mut c_void,
) -> mqttc_status {
    guard(|| {
        let (c, cb) = callback_arg(client, cb, userdata)?;
        let level = match level {
            0 => LogLevel::Off,
            1 => LogLevel::Error,
            2 => LogLevel::Warning,
            3 => LogLevel::Info,
            4 => LogLevel::Debug,
            _ => {
                return Err(Failure::new(
                    mqttc_status::MQTTC_ERR_INVALID_ARGUMENT,
                    format!("log level {level} is not 0..4"),
                ));
            }
        };
        let handler = cb.map(|cb| {
            Arc::new(move |level: LogLevel, line: &str| {
                let cb = &cb; // capture the whole (Send + Sync) struct, not its raw-pointer fields
                let line = std::ffi::CString::new(line.replace('\0', " ")).unwrap_or_default();
                // SAFETY: the caller's function, called with its own userdata and a borrowed line.
                unsafe { (cb.f)(cb.client, level as c_int, line.as_ptr(), cb.userdata) }
            }) as engine::LogHandler
        });
        c.set_log(level, handler);
        Ok(())
    })
}

/// Sets (or with NULL `cb`, removes) the completion callback. Tokens keep working with poll and
/// wait whether or not a callback is set.
///
/// Errors: MQTTC_ERR_NULL, MQTTC_ERR_INVALID_HANDLE.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_client_set_on_complete(
    client: *mut mqttc_client,
    cb: mqttc_complete_cb,
    userdata: *mut c_void,
) -> mqttc_status {
    guard(|| {
        let (c, cb) = callback_arg(client, cb, userdata)?;
        let handler = cb.map(|cb| {
            Arc::new(move |token, result: &engine::TokenResult| {
                let cb = &cb; // capture the whole (Send + Sync) struct, not its raw-pointer fields
                let status = match result {
                    Ok(_) => mqttc_status::MQTTC_OK,
                    Err(e) => mqttc_status::from(e),
                };
                // SAFETY: the caller's function, called with its own userdata.
                unsafe { (cb.f)(cb.client, token, status, cb.userdata) }
            }) as engine::CompletionHandler
        });
        c.set_on_complete(handler);
        Ok(())
    })
}

/// Sets (or with NULL `cb`, removes) the restored-message callback (see `mqttc_restored_cb`).
/// Set it before `mqttc_connect`: messages are restored when the connect starts a session. In
/// event mode they are RESTORED events instead (or as well).
///
/// Errors: MQTTC_ERR_NULL, MQTTC_ERR_INVALID_HANDLE.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_client_set_on_restored(
    client: *mut mqttc_client,
    cb: mqttc_restored_cb,
    userdata: *mut c_void,
) -> mqttc_status {
    guard(|| {
        let (c, cb) = callback_arg(client, cb, userdata)?;
        let handler = cb.map(|cb| {
            Arc::new(move |token, p: &Publish| {
                let cb = &cb; // capture the whole (Send + Sync) struct, not its raw-pointer fields
                // Topics are valid UTF-8 without NUL (the codec refuses others).
                let topic = CString::new(p.topic.as_str()).unwrap_or_default();
                let props = mqttc_properties::new(p.properties.clone());
                let msg = restored_view(p, topic.as_ptr(), &props);
                // SAFETY: the caller's function with its own userdata; `msg` lives for the call.
                unsafe { (cb.f)(cb.client, token, &msg, cb.userdata) }
            }) as engine::RestoredHandler
        });
        c.set_on_restored(handler);
        Ok(())
    })
}

/// What changed, in an `mqttc_connection_event`.
#[repr(C)]
#[derive(Clone, Copy)]
pub enum mqttc_connection_change {
    /// The broker accepted a connection (the first, or a reconnect).
    MQTTC_CONNECTION_UP = 0,
    /// An established connection was lost; automatic reconnect, when on, starts now.
    MQTTC_CONNECTION_LOST = 1,
    /// `mqttc_disconnect` finished: the session is over.
    MQTTC_CONNECTION_CLOSED = 2,
}

/// A connection-state change. Borrowed: valid only during the callback (or, inside an
/// `mqttc_event`, until `mqttc_event_free`).
#[repr(C)]
pub struct mqttc_connection_event {
    /// An `mqttc_connection_change` value.
    pub change: c_int,
    /// LOST: why (MQTTC_ERR_IO, MQTTC_ERR_KEEPALIVE_TIMEOUT, MQTTC_ERR_CONNECTION_CLOSED, ...;
    /// MQTTC_ERR_CANCELLED when `mqttc_reconnect` dropped it); MQTTC_OK otherwise.
    pub reason: mqttc_status,
    /// UP: the broker kept this client's session (CONNACK "session present"). When false, the
    /// library has already subscribed every registered filter again.
    pub session_present: bool,
    /// UP and LOST: the server, as "host:port" or "unix:/path"; NULL for CLOSED.
    pub server: *const c_char,
    /// LOST: a human-readable reason; NULL otherwise.
    pub detail: *const c_char,
}

/// An `mqttc_connection_event` with the strings it points to.
pub(crate) struct OwnedConnectionEvent {
    change: mqttc_connection_change,
    reason: mqttc_status,
    session_present: bool,
    server: Option<CString>,
    detail: Option<CString>,
}

impl OwnedConnectionEvent {
    pub(crate) fn new(change: &ConnectionEvent) -> Self {
        let text = |s: String| CString::new(s.replace('\0', " ")).unwrap_or_default();
        match change {
            ConnectionEvent::Connected {
                session_present,
                server,
            } => OwnedConnectionEvent {
                change: mqttc_connection_change::MQTTC_CONNECTION_UP,
                reason: mqttc_status::MQTTC_OK,
                session_present: *session_present,
                server: Some(text(server.to_string())),
                detail: None,
            },
            ConnectionEvent::Lost { reason, server } => OwnedConnectionEvent {
                change: mqttc_connection_change::MQTTC_CONNECTION_LOST,
                reason: mqttc_status::from(reason),
                session_present: false,
                server: Some(text(server.to_string())),
                detail: Some(text(reason.to_string())),
            },
            ConnectionEvent::Disconnected => OwnedConnectionEvent {
                change: mqttc_connection_change::MQTTC_CONNECTION_CLOSED,
                reason: mqttc_status::MQTTC_OK,
                session_present: false,
                server: None,
                detail: None,
            },
        }
    }

    /// The C view; it points into `self`.
    pub(crate) fn view(&self) -> mqttc_connection_event {
        mqttc_connection_event {
            change: self.change as c_int,
            reason: self.reason,
            session_present: self.session_present,
            server: self.server.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            detail: self.detail.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
        }
    }
}

/// Connection-state callback: runs on the client's callback thread, in order with the messages.
pub type mqttc_connection_cb = Option<
    unsafe extern "C" fn(client: *mut mqttc_client, event: *const mqttc_connection_event, userdata: *mut c_void),
>;

/// Sets (or with NULL `cb`, removes) the connection-state callback: called when a connection comes
/// up (with "session present"), when one is lost (with the reason), and when a disconnect ends
/// the session. A connection dropped by `mqttc_reconnect` reports only the new UP. Failed
/// attempts to connect are not events (the connect token and the log report them).
///
/// Errors: MQTTC_ERR_NULL, MQTTC_ERR_INVALID_HANDLE.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_client_set_on_connection(
    client: *mut mqttc_client,
    cb: mqttc_connection_cb,
    userdata: *mut c_void,
) -> mqttc_status {
    guard(|| {
        let (c, cb) = callback_arg(client, cb, userdata)?;
        let handler = cb.map(|cb| {
            Arc::new(move |change: &ConnectionEvent| {
                let cb = &cb; // capture the whole (Send + Sync) struct, not its raw-pointer fields
                let owned = OwnedConnectionEvent::new(change);
                let event = owned.view();
                // SAFETY: the caller's function, called with its own userdata and a borrowed event.
                unsafe { (cb.f)(cb.client, &event, cb.userdata) }
            }) as engine::ConnectionHandler
        });
        c.set_on_connection(handler);
        Ok(())
    })
}
