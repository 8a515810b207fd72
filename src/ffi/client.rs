//! The client handle: create, free, state, connect, reconnect, disconnect.
use std::ffi::{c_char, c_int};
use std::path::PathBuf;
use std::sync::Arc;

use super::handles::Handles;
use super::options::{mqttc_options, read_options};
use super::properties::{mqttc_properties, properties_arg};
use super::{Failure, arg_str, guard, mqttc_status, write_out};
use crate::codec::{Disconnect, Holder, PacketType, PropertyId, ReasonCode, Version};
use crate::engine::{self, Address, Client, State, TlsConnector};

/// A client: one connection to one broker, with its subscriptions and tokens.
///
/// Opaque. Made by `mqttc_client_new*`, released by `mqttc_client_free`.
///
/// A `mqttc_client *` is a handle, not an address: never dereference it. Every function taking one
/// may be called from any thread, at the same time as any other, `mqttc_client_free` included. A
/// call racing a free either completes before it or fails (MQTTC_ERR_INVALID_HANDLE, or a token
/// completing with MQTTC_ERR_CANCELLED); a handle used after its free, even once a new client has
/// been made, gets MQTTC_ERR_INVALID_HANDLE. Nothing a stale handle does reads freed memory.
pub struct mqttc_client {
    _handle: [u8; 0],
}

/// Every live client, by handle (see [`super::handles`]).
static CLIENTS: Handles<Client> = Handles::new(1);

/// Identifies one asynchronous operation of a client: unique for the client's life, never 0.
pub type mqttc_token = u64;

fn make_client(servers: Vec<Address>, opts: *const mqttc_options, out: *mut *mut mqttc_client) -> Result<(), Failure> {
    if out.is_null() {
        return Err(Failure::new(mqttc_status::MQTTC_ERR_NULL, "out is NULL"));
    }
    // SAFETY: as documented on the exported constructors.
    let (mut options, tls) = unsafe { read_options(opts) }?;
    let servers: Vec<Address> = match tls.all_servers {
        true => servers.into_iter().map(Address::with_tls).collect(),
        false => servers,
    };
    if servers.iter().any(Address::uses_tls) {
        options.tls = Some(TlsConnector::new(&tls.options).map_err(|e| Failure::new(mqttc_status::MQTTC_ERR_TLS, e))?);
    } else if tls.any_set {
        return Err(Failure::new(
            mqttc_status::MQTTC_ERR_INVALID_ARGUMENT,
            "TLS options are set but no server uses TLS: use an mqtts:// address or set tls",
        ));
    }
    if let Some(proxy) = &options.proxy
        && servers.iter().any(|s| matches!(s, Address::Unix(_)))
    {
        return Err(Failure::new(
            mqttc_status::MQTTC_ERR_INVALID_ARGUMENT,
            format!("proxy: a {proxy} carries TCP connections; a unix: address cannot go through it"),
        ));
    }
    let inner = Client::new(servers, options).map_err(|e| match e.kind() {
        // Options the engine refuses as a combination (it is the one place that checks them).
        std::io::ErrorKind::InvalidInput => Failure::new(mqttc_status::MQTTC_ERR_INVALID_ARGUMENT, e.to_string()),
        _ => Failure::new(
            mqttc_status::MQTTC_ERR_RESOURCE,
            format!("cannot start the client: {e}"),
        ),
    })?;
    let handle = CLIENTS.insert(Arc::new(inner)).ok_or_else(|| {
        Failure::new(
            mqttc_status::MQTTC_ERR_RESOURCE,
            "too many clients: free some (about a million can be live at once)",
        )
    })?;
    // SAFETY: checked non-NULL above.
    unsafe { out.write(std::ptr::without_provenance_mut(handle)) };
    Ok(())
}

/// Makes a client for the broker at `host` (name or IP address) and `port` (MQTTClient.jl's
/// `MakeConnection` + `Client`). Nothing is sent until `mqttc_connect`; name resolution happens
/// then, on the library's thread.
///
/// `opts` may be NULL for the defaults. On success `*out` receives the client, which the caller
/// releases with `mqttc_client_free`; on failure `*out` is not written.
///
/// Errors: MQTTC_ERR_NULL, MQTTC_ERR_INVALID_UTF8, MQTTC_ERR_INVALID_ARGUMENT (empty `host`, zero
/// `port`, a bad option), MQTTC_ERR_STRUCT_SIZE, MQTTC_ERR_INVALID_TOPIC (`will_topic`),
/// MQTTC_ERR_INVALID_QOS (`will_qos`), MQTTC_ERR_NOT_SUPPORTED (properties in 3.1.1),
/// MQTTC_ERR_INVALID_HANDLE (`run_loop`, `pool`, `store`), MQTTC_ERR_TLS, MQTTC_ERR_STORE,
/// MQTTC_ERR_RESOURCE.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_client_new(
    host: *const c_char,
    port: u16,
    opts: *const mqttc_options,
    out: *mut *mut mqttc_client,
) -> mqttc_status {
    guard(|| {
        // SAFETY: borrowed for the call per the contract.
        let host = unsafe { arg_str(host, "host") }?;
        if host.is_empty() || port == 0 {
            return Err(Failure::new(
                mqttc_status::MQTTC_ERR_INVALID_ARGUMENT,
                "host must be non-empty and port non-zero",
            ));
        }
        make_client(vec![Address::tcp(host, port)], opts, out)
    })
}

/// Makes a client for a broker reachable at any of `count` server addresses (a broker cluster):
/// `mqtt://host:port` (or `tcp://`), `mqtts://host:port` (or `ssl://`, `tls://`; TLS, port 8883
/// by default), `ws://host:port/path` and `wss://host:port/path` (MQTT over WebSockets, ports 80 and
/// 443, path `/mqtt` by default), `host:port`, `host` (port 1883), `[v6addr]:port`, or
/// `unix:///path`. Each connect and each reconnect tries them in order (see `rotate_servers`) until
/// one accepts. Otherwise as `mqttc_client_new`; the strings are copied.
///
/// Errors: MQTTC_ERR_NULL, MQTTC_ERR_INVALID_UTF8, MQTTC_ERR_INVALID_ARGUMENT (`count` not 1 to
/// 1024, a bad address or option), MQTTC_ERR_STRUCT_SIZE, MQTTC_ERR_INVALID_TOPIC (`will_topic`),
/// MQTTC_ERR_INVALID_QOS (`will_qos`), MQTTC_ERR_NOT_SUPPORTED (properties in 3.1.1),
/// MQTTC_ERR_INVALID_HANDLE (`run_loop`, `pool`, `store`), MQTTC_ERR_TLS, MQTTC_ERR_STORE,
/// MQTTC_ERR_RESOURCE.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_client_new_uris(
    uris: *const *const c_char,
    count: usize,
    opts: *const mqttc_options,
    out: *mut *mut mqttc_client,
) -> mqttc_status {
    guard(|| {
        if uris.is_null() {
            return Err(Failure::new(mqttc_status::MQTTC_ERR_NULL, "uris is NULL"));
        }
        if count == 0 || count > 1024 {
            return Err(Failure::new(
                mqttc_status::MQTTC_ERR_INVALID_ARGUMENT,
                format!("count is {count}; give 1 to 1024 server addresses"),
            ));
        }
        // SAFETY: the caller passes `count` readable pointers.
        let uris = unsafe { std::slice::from_raw_parts(uris, count) };
        let servers = uris
            .iter()
            .enumerate()
            .map(|(i, uri)| {
                // SAFETY: each borrowed for the call per the contract.
                let uri = unsafe { arg_str(*uri, &format!("uris[{i}]")) }?;
                uri.parse::<Address>()
                    .map_err(|e| Failure::new(mqttc_status::MQTTC_ERR_INVALID_ARGUMENT, format!("uris[{i}]: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        make_client(servers, opts, out)
    })
}

/// Makes a client for a broker listening on the Unix-domain socket at `path`. As `mqttc_client_new`.
///
/// Errors: MQTTC_ERR_NULL, MQTTC_ERR_INVALID_UTF8, MQTTC_ERR_INVALID_ARGUMENT (empty `path`, TLS
/// options, a bad option), MQTTC_ERR_STRUCT_SIZE, MQTTC_ERR_INVALID_TOPIC (`will_topic`),
/// MQTTC_ERR_INVALID_QOS (`will_qos`), MQTTC_ERR_NOT_SUPPORTED (properties in 3.1.1),
/// MQTTC_ERR_INVALID_HANDLE (`run_loop`, `pool`, `store`), MQTTC_ERR_STORE, MQTTC_ERR_RESOURCE.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_client_new_unix(
    path: *const c_char,
    opts: *const mqttc_options,
    out: *mut *mut mqttc_client,
) -> mqttc_status {
    guard(|| {
        // SAFETY: borrowed for the call per the contract.
        let path = unsafe { arg_str(path, "path") }?;
        if path.is_empty() {
            return Err(Failure::new(mqttc_status::MQTTC_ERR_INVALID_ARGUMENT, "path is empty"));
        }
        make_client(vec![Address::Unix(PathBuf::from(path))], opts, out)
    })
}

/// The client a handle from C names, held until the caller drops it: a free racing the call
/// cannot release it meanwhile.
pub(crate) fn client_arg(p: *const mqttc_client) -> Result<Arc<Client>, Failure> {
    if p.is_null() {
        return Err(Failure::new(mqttc_status::MQTTC_ERR_NULL, "client is NULL"));
    }
    CLIENTS.get(p.addr()).ok_or_else(stale)
}

fn stale() -> Failure {
    Failure::new(
        mqttc_status::MQTTC_ERR_INVALID_HANDLE,
        "client was freed or is not a client",
    )
}

/// Releases the client: the connection is dropped at once (no DISCONNECT is sent, so the broker
/// publishes the will; call `mqttc_disconnect` and wait on its token first for a clean goodbye),
/// pending tokens are cancelled, every subscription's `drop_userdata` runs, and all memory is
/// released. NULL is a no-op; a handle already freed is refused (MQTTC_ERR_INVALID_HANDLE in
/// `mqttc_last_error`, nothing else happens).
///
/// Other threads inside calls on this client when it is freed return promptly: waits end with
/// MQTTC_ERR_CANCELLED, new operations fail. The last of them to return releases the memory.
///
/// May be called from any thread, including inside one of this client's callbacks: then the
/// callback in progress finishes normally and none runs after it. Otherwise, when this returns no
/// callback of this client is running or will run, and the log callback has had every line logged
/// before the call (message, completion and connection callbacks still pending are not run).
///
/// In event mode, events not yet taken with `mqttc_event_next` are discarded; events taken stay
/// valid until `mqttc_event_free`, and so does the userdata a MESSAGE event names: that
/// subscription's `drop_userdata` then runs in the `mqttc_event_free` of its last event.
///
/// Inbound messages the application has not seen (queued for a message callback, or a MESSAGE
/// event not yet taken) are dropped, and so is a message whose callback was still running when
/// another thread called this. What becomes of them depends on `ack_after_callback`:
/// - with it, none of them was acknowledged, and none will be: a broker that keeps the session
///   (`clean_session` false, or MQTT 5 `session_expiry`) sends their QoS 1 and 2 messages again
///   to the next client connecting with the same `client_id`. So are the messages of MESSAGE
///   events taken but not yet freed. A message whose callbacks returned just before the free
///   may be delivered again too, if its acknowledgement had not gone out yet.
/// - without it (the default), they were acknowledged when they were read, so the broker has
///   forgotten them: they are lost.
///
/// QoS 0 messages are lost either way.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_client_free(client: *mut mqttc_client) {
    let _ = guard(|| {
        if client.is_null() {
            return Ok(());
        }
        // Of several racing frees, one takes the client; the others find the handle dead.
        let c = CLIENTS.remove(client.addr()).ok_or_else(stale)?;
        c.close();
        Ok(())
    });
}

/// Connection states reported by `mqttc_client_state`.
#[repr(C)]
pub enum mqttc_state {
    MQTTC_STATE_DISCONNECTED = 0,
    MQTTC_STATE_CONNECTING = 1,
    MQTTC_STATE_CONNECTED = 2,
    MQTTC_STATE_DISCONNECTING = 3,
    /// The connection was lost; automatic reconnect is waiting or trying.
    MQTTC_STATE_RECONNECTING = 4,
}

/// The client's connection state (an `mqttc_state` value), or a negative `mqttc_status` when the
/// handle is invalid.
///
/// Errors: MQTTC_ERR_NULL, MQTTC_ERR_INVALID_HANDLE (the client was freed).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_client_state(client: *const mqttc_client) -> c_int {
    let mut state = 0;
    let status = guard(|| {
        state = match client_arg(client)?.state() {
            State::Disconnected => mqttc_state::MQTTC_STATE_DISCONNECTED,
            State::Connecting => mqttc_state::MQTTC_STATE_CONNECTING,
            State::Connected => mqttc_state::MQTTC_STATE_CONNECTED,
            State::Disconnecting => mqttc_state::MQTTC_STATE_DISCONNECTING,
            State::Reconnecting => mqttc_state::MQTTC_STATE_RECONNECTING,
        } as c_int;
        Ok(())
    });
    if status == mqttc_status::MQTTC_OK {
        state
    } else {
        status as c_int
    }
}

/// Runs one of the client's token-returning operations for C.
///
/// # Safety
/// `token` is NULL or writable.
unsafe fn start(
    client: *mut mqttc_client,
    token: *mut mqttc_token,
    op: fn(&Client) -> Result<engine::Token, engine::Error>,
) -> mqttc_status {
    guard(|| {
        let c = client_arg(client)?;
        let t = op(&c)?;
        // SAFETY: per the contract of `write_out`.
        unsafe { write_out(token, t) };
        Ok(())
    })
}

/// Starts connecting (MQTTClient.jl's `connect_async`). Returns at once; `*token` (if not NULL)
/// completes when the broker accepted (MQTTC_OK; `mqttc_token_codes` gives [session_present]) or
/// refused the connection (one MQTTC_ERR_REFUSED_* per CONNACK code), or it failed.
///
/// Errors: MQTTC_ERR_NULL, MQTTC_ERR_INVALID_HANDLE, MQTTC_ERR_ALREADY_CONNECTED (in any state but
/// DISCONNECTED), MQTTC_ERR_CANCELLED (the client is being freed), MQTTC_ERR_PANIC.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_connect(client: *mut mqttc_client, token: *mut mqttc_token) -> mqttc_status {
    // SAFETY: per this function's contract.
    unsafe { start(client, token, Client::connect) }
}

/// Starts a new connection now (libmosquitto's `mosquitto_reconnect`, MQTTClient.jl's
/// `reconnect_async`): a live connection is dropped as if it were lost (the session carries on:
/// unacknowledged messages are resent; the connection callback or event reports LOST with
/// MQTTC_ERR_CANCELLED), a wait before an automatic reconnect is cut short, and without a
/// session this is `mqttc_connect`. `*token` completes like `mqttc_connect`'s.
///
/// Errors: MQTTC_ERR_NULL, MQTTC_ERR_INVALID_HANDLE, MQTTC_ERR_NOT_CONNECTED (while disconnecting),
/// MQTTC_ERR_ALREADY_CONNECTED (a racing connect came first), MQTTC_ERR_CANCELLED, MQTTC_ERR_PANIC.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_reconnect(client: *mut mqttc_client, token: *mut mqttc_token) -> mqttc_status {
    // SAFETY: per this function's contract.
    unsafe { start(client, token, Client::reconnect) }
}

/// Starts a clean disconnect: what was queued before this call is sent first, in-flight QoS 1/2
/// messages get up to `disconnect_timeout_ms` to be acknowledged, then DISCONNECT is sent and the
/// socket closed. Operations still pending then complete with MQTTC_ERR_CANCELLED. Also ends a
/// session whose connection is lost (reconnecting, or waiting for `mqttc_reconnect`): the
/// offline queue and everything pending are cancelled at once. No automatic reconnect follows.
///
/// Errors: MQTTC_ERR_NULL, MQTTC_ERR_INVALID_HANDLE, MQTTC_ERR_NOT_CONNECTED (no session, or
/// disconnecting), MQTTC_ERR_CANCELLED, MQTTC_ERR_PANIC.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_disconnect(client: *mut mqttc_client, token: *mut mqttc_token) -> mqttc_status {
    // SAFETY: per this function's contract.
    unsafe { start(client, token, Client::disconnect) }
}

/// `mqttc_disconnect` with an MQTT 5 reason code and DISCONNECT properties (NULL for none): 0x00
/// (normal), 0x04 (disconnect with will message: the broker publishes the will), or another code
/// a client may send (MQTT 5 section 3.14.2.1). Properties may set a Session Expiry Interval
/// (not when the connect's was 0), a Reason String and user properties.
///
/// Errors: MQTTC_ERR_NULL, MQTTC_ERR_INVALID_HANDLE, MQTTC_ERR_INVALID_ARGUMENT (not a DISCONNECT
/// code, a bad property, an expiry after a CONNECT without one), MQTTC_ERR_NOT_SUPPORTED (a code or
/// properties in 3.1.1), MQTTC_ERR_NOT_CONNECTED (no session, or disconnecting),
/// MQTTC_ERR_CANCELLED, MQTTC_ERR_PANIC.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_disconnect_v5(
    client: *mut mqttc_client,
    reason_code: u8,
    properties: *const mqttc_properties,
    token: *mut mqttc_token,
) -> mqttc_status {
    guard(|| {
        // SAFETY (all pointer reads): per the documented contract.
        let c = client_arg(client)?;
        let version = c.version();
        let reason = ReasonCode(reason_code);
        if reason.check(PacketType::Disconnect).is_err() {
            return Err(Failure::new(
                mqttc_status::MQTTC_ERR_INVALID_ARGUMENT,
                format!("{reason_code:#04x} is not a DISCONNECT reason code"),
            ));
        }
        if version == Version::V311 && reason != ReasonCode::SUCCESS {
            return Err(Failure::new(
                mqttc_status::MQTTC_ERR_NOT_SUPPORTED,
                "a disconnect reason code needs MQTT 5: set protocol_version to 5",
            ));
        }
        let owned = [(PropertyId::ServerReference, "only a broker sends it")];
        let holder = Holder::Packet(PacketType::Disconnect);
        let properties = unsafe { properties_arg(properties, version, holder, "DISCONNECT", &owned) }?;
        let t = c.disconnect_with(Disconnect { reason, properties })?;
        unsafe { write_out(token, t) };
        Ok(())
    })
}
