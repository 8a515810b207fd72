//! Event mode for C: the queue's descriptor and wakeup hook, and draining events one at a time.
use std::ffi::{CString, c_char, c_int, c_void};
use std::sync::Arc;

use super::callbacks::{Callback, OwnedConnectionEvent, mqttc_connection_event};
use super::client::{client_arg, mqttc_client, mqttc_token};
use super::message::{message_view, restored_view};
use super::properties::mqttc_properties;
use super::{Failure, guard, mqttc_message, mqttc_status, write_out};
use crate::codec::{Properties, Publish};
use crate::engine::events::Subscriber;
use crate::engine::{Client, ClientEvent, Error, PendingAck};

/// What an `mqttc_event` reports.
#[repr(C)]
pub enum mqttc_event_kind {
    /// A message for one or more event-mode subscriptions: `message`, `subscriptions`.
    MQTTC_EVENT_MESSAGE = 1,
    /// A token completed: `token`, `status`.
    MQTTC_EVENT_COMPLETE = 2,
    /// The connection changed: `connection`.
    MQTTC_EVENT_CONNECTION = 3,
    /// A message restored from the store when a session started (see `store_dir`): `message`,
    /// and `token`, which now stands for it and completes when the broker acknowledges it.
    MQTTC_EVENT_RESTORED = 4,
}

/// One event from `mqttc_event_next`. The caller owns it and releases it with `mqttc_event_free`;
/// everything it points to stays valid until then (also after the client is freed). A MESSAGE
/// event keeps the userdata it names alive too: a subscription's `drop_userdata` waits until the
/// last MESSAGE event carrying its userdata is freed, even when the subscription ended before
/// (see `mqttc_drop_cb`). Fields that do not belong to the event's `kind` are zero / NULL.
#[repr(C)]
pub struct mqttc_event {
    /// An `mqttc_event_kind` value.
    pub kind: c_int,
    /// COMPLETE: the token that completed; RESTORED: the restored message's token.
    pub token: mqttc_token,
    /// COMPLETE: its status, as `mqttc_token_poll` reports it (`mqttc_token_codes` gives its codes).
    pub status: mqttc_status,
    /// MESSAGE, RESTORED: the message.
    pub message: mqttc_message,
    /// MESSAGE: the `userdata` of every event-mode subscription whose filter matched (one entry per
    /// subscription when filters overlap), `subscription_count` of them; each stays valid (its
    /// `drop_userdata` has not run) until this event is freed.
    pub subscriptions: *const *mut c_void,
    pub subscription_count: usize,
    /// CONNECTION: the change.
    pub connection: mqttc_connection_event,
    /// COMPLETE with a failure: what went wrong, as `mqttc_last_error` would say it; else NULL.
    pub detail: *const c_char,
    /// COMPLETE: the codes `mqttc_token_codes` would give (connect: [session_present]; subscribe:
    /// the granted QoS or 0x80 per filter, also when refused), `code_count` of them; else NULL.
    pub codes: *const u8,
    pub code_count: usize,
    /// COMPLETE: the acknowledgement's properties, as `mqttc_token_properties` would give them
    /// (empty when none completed it); MESSAGE: the message's, as `message.properties`; else NULL.
    pub properties: *const mqttc_properties,
}

/// An event with what it points to: the view first, so a pointer to it is a pointer to the whole.
#[repr(C)]
struct OwnedEvent {
    view: mqttc_event,
    topic: CString,
    /// Kept alive for `view.message.payload`.
    _publish: Option<Publish>,
    /// The userdata array `view.subscriptions` points to: `one` for the usual single subscription
    /// (no allocation), `many` for more.
    one: *mut c_void,
    many: Box<[*mut c_void]>,
    /// Holds each subscription's registration, so its `drop_userdata` waits for this event's free.
    _subscribers: Vec<Subscriber>,
    /// With `ack_after_callback`: the message's acknowledgement, released by `mqttc_event_free`.
    ack: Option<PendingAck>,
    _connection: Option<OwnedConnectionEvent>,
    detail: Option<CString>,
    codes: Vec<u8>,
    properties: mqttc_properties,
}

fn empty_view(kind: mqttc_event_kind) -> mqttc_event {
    mqttc_event {
        kind: kind as c_int,
        token: 0,
        status: mqttc_status::MQTTC_OK,
        message: mqttc_message {
            topic: std::ptr::null(),
            topic_len: 0,
            payload: std::ptr::null(),
            payload_len: 0,
            qos: 0,
            retain: false,
            dup: false,
            properties: std::ptr::null(),
            packet_id: 0,
        },
        subscriptions: std::ptr::null(),
        subscription_count: 0,
        connection: mqttc_connection_event {
            change: 0,
            reason: mqttc_status::MQTTC_OK,
            session_present: false,
            server: std::ptr::null(),
            detail: std::ptr::null(),
        },
        detail: std::ptr::null(),
        codes: std::ptr::null(),
        code_count: 0,
        properties: std::ptr::null(),
    }
}

fn owned_event(event: ClientEvent) -> Box<OwnedEvent> {
    match event {
        ClientEvent::Message {
            publish,
            subscribers,
            ack,
        } => message_event(mqttc_event_kind::MQTTC_EVENT_MESSAGE, publish, subscribers, ack),
        ClientEvent::Restored { token, publish } => {
            let mut event = message_event(mqttc_event_kind::MQTTC_EVENT_RESTORED, publish, Vec::new(), None);
            event.view.token = token;
            event
        }
        ClientEvent::Completed { token, result } => {
            let mut view = empty_view(mqttc_event_kind::MQTTC_EVENT_COMPLETE);
            view.token = token;
            let (detail, codes, properties) = match result {
                Ok(outcome) => (None, outcome.codes, outcome.properties),
                Err(e) => {
                    view.status = mqttc_status::from(&e);
                    let detail = CString::new(e.to_string().replace('\0', " ")).unwrap_or_default();
                    let codes = e.reason_codes().unwrap_or_default();
                    (Some(detail), codes, e.properties().cloned().unwrap_or_default())
                }
            };
            let mut event = boxed(view, None);
            event.properties = mqttc_properties::new(properties);
            event.view.properties = &event.properties;
            // Pointers into the box's own heap buffers, which stay put from here on.
            event.view.detail = detail.as_ref().map_or(std::ptr::null(), |d| d.as_ptr());
            if !codes.is_empty() {
                event.view.codes = codes.as_ptr();
                event.view.code_count = codes.len();
            }
            event.detail = detail;
            event.codes = codes;
            event
        }
        ClientEvent::Connection(change) => {
            let connection = OwnedConnectionEvent::new(&change);
            let mut view = empty_view(mqttc_event_kind::MQTTC_EVENT_CONNECTION);
            view.connection = connection.view();
            boxed(view, Some(connection))
        }
    }
}

/// A MESSAGE event (or RESTORED, which has no subscribers) owning its message.
fn message_event(
    kind: mqttc_event_kind,
    publish: Publish,
    subscribers: Vec<Subscriber>,
    ack: Option<PendingAck>,
) -> Box<OwnedEvent> {
    // Topics are valid UTF-8 without NUL (the codec refuses others).
    let topic = CString::new(publish.topic.as_str()).unwrap_or_default();
    let userdata = |s: &Subscriber| s.key as *mut c_void;
    let one = subscribers.first().map_or(std::ptr::null_mut(), userdata);
    let many: Box<[*mut c_void]> = match subscribers.len() {
        0 | 1 => Box::new([]),
        _ => subscribers.iter().map(userdata).collect(),
    };
    let properties = mqttc_properties::new(publish.properties.clone());
    let message = match kind {
        mqttc_event_kind::MQTTC_EVENT_RESTORED => restored_view,
        _ => message_view,
    };
    let mut view = empty_view(kind);
    view.message = message(&publish, topic.as_ptr(), &properties);
    view.subscriptions = many.as_ptr();
    view.subscription_count = subscribers.len();
    // The pointers above stay valid when the CString, the boxed slice and the Bytes inside
    // `publish` move into the box: their heap buffers do not move. The properties and
    // `one` do move: they are pointed at once in the box.
    let mut event = Box::new(OwnedEvent {
        view,
        topic,
        _publish: Some(publish),
        one,
        many,
        _subscribers: subscribers,
        ack,
        _connection: None,
        detail: None,
        codes: Vec::new(),
        properties,
    });
    if event.view.subscription_count == 1 {
        event.view.subscriptions = &raw const event.one;
    }
    event.view.message.properties = &event.properties;
    event.view.properties = &event.properties;
    event
}

fn boxed(view: mqttc_event, connection: Option<OwnedConnectionEvent>) -> Box<OwnedEvent> {
    Box::new(OwnedEvent {
        view,
        topic: CString::default(),
        _publish: None,
        one: std::ptr::null_mut(),
        many: Box::new([]),
        _subscribers: Vec::new(),
        ack: None,
        _connection: connection,
        detail: None,
        codes: Vec::new(),
        properties: mqttc_properties::new(Properties::new()),
    })
}

/// Takes the oldest waiting event without blocking. On MQTTC_OK, `*out` is the event (which the
/// caller releases with `mqttc_event_free`), or NULL when none waits. Drain until NULL after each
/// wakeup: the descriptor and the hook signal only that the queue became non-empty.
///
/// Errors: MQTTC_ERR_NULL (`client` or `out`), MQTTC_ERR_INVALID_HANDLE, MQTTC_ERR_EVENT_MODE_OFF
/// (the client was made without `event_mode`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_event_next(client: *mut mqttc_client, out: *mut *mut mqttc_event) -> mqttc_status {
    guard(|| {
        let c = client_arg(client)?;
        if out.is_null() {
            return Err(Failure::new(mqttc_status::MQTTC_ERR_NULL, "out is NULL"));
        }
        let event = c
            .next_event()?
            .map_or(std::ptr::null_mut(), |e| Box::into_raw(owned_event(e)).cast());
        // SAFETY: checked non-NULL above.
        unsafe { out.write(event) };
        Ok(())
    })
}

/// Releases an event from `mqttc_event_next`. NULL is a no-op. With `ack_after_callback`, freeing
/// a MESSAGE event of QoS 1 or 2 is what lets its PUBACK or PUBREC go (after those of the messages
/// that arrived before it): free it once the message is handled.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_event_free(event: *mut mqttc_event) {
    if !event.is_null() {
        // SAFETY: made by Box::into_raw in mqttc_event_next; its first field is the view.
        let mut event = unsafe { Box::from_raw(event.cast::<OwnedEvent>()) };
        if let Some(ack) = event.ack.take() {
            ack.release();
        }
    }
}

/// Writes what `get` reads from the client into the out-parameter `out`.
///
/// # Safety
/// As `client_arg` for `client`; `out` is NULL or writable.
unsafe fn read_into<T>(
    client: *mut mqttc_client,
    out: *mut T,
    name: &str,
    get: fn(&Client) -> Result<T, Error>,
) -> mqttc_status {
    guard(|| {
        let c = client_arg(client)?;
        if out.is_null() {
            return Err(Failure::new(mqttc_status::MQTTC_ERR_NULL, format!("{name} is NULL")));
        }
        let value = get(&c)?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, value) };
        Ok(())
    })
}

/// Stores in `*fd` a file descriptor that is readable exactly while events wait (an eventfd on
/// Linux): wait on it with select/poll/epoll or an event loop (Julia: `FileWatching.poll_fd`),
/// then drain with `mqttc_event_next`. The library owns it and closes it in `mqttc_client_free`;
/// never read, write or close it.
///
/// Errors: MQTTC_ERR_NULL (`client` or `fd`), MQTTC_ERR_INVALID_HANDLE, MQTTC_ERR_EVENT_MODE_OFF
/// (the client was made without `event_mode`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_event_fd(client: *mut mqttc_client, fd: *mut c_int) -> mqttc_status {
    // SAFETY: per this function's contract.
    unsafe { read_into(client, fd, "fd", Client::event_fd) }
}

/// Stores in `*count` how many events wait.
///
/// Errors: MQTTC_ERR_NULL (`client` or `count`), MQTTC_ERR_INVALID_HANDLE, MQTTC_ERR_EVENT_MODE_OFF
/// (the client was made without `event_mode`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_event_pending(client: *mut mqttc_client, count: *mut usize) -> mqttc_status {
    // SAFETY: per this function's contract.
    unsafe { read_into(client, count, "count", Client::pending_events) }
}

/// A wakeup hook: called with its `arg` from a library thread. It must be quick and thread-safe,
/// and must not call into a runtime that forbids foreign threads: Julia passes `uv_async_send`
/// with its `AsyncCondition`'s handle.
pub type mqttc_wakeup_cb = Option<unsafe extern "C" fn(arg: *mut c_void)>;

/// Sets (or with NULL `wake`, removes) the wakeup hook: called when the event queue goes from
/// empty to non-empty, and at once when events already wait as it is set.
///
/// Errors: MQTTC_ERR_NULL (`client`), MQTTC_ERR_INVALID_HANDLE, MQTTC_ERR_EVENT_MODE_OFF (the
/// client was made without `event_mode`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_event_set_wakeup(
    client: *mut mqttc_client,
    wake: mqttc_wakeup_cb,
    arg: *mut c_void,
) -> mqttc_status {
    guard(|| {
        let c = client_arg(client)?;
        let hook = wake.map(|f| {
            let cb = Callback {
                f,
                client,
                userdata: arg,
            };
            Arc::new(move || {
                let cb = &cb; // capture the whole (Send + Sync) struct, not its raw-pointer fields
                // SAFETY: the caller's function with its own argument.
                unsafe { (cb.f)(cb.userdata) }
            }) as crate::engine::Wakeup
        });
        c.set_wakeup(hook)?;
        Ok(())
    })
}
