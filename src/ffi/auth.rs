//! MQTT 5 enhanced authentication for C: the callback that answers the broker's AUTH challenges,
//! and re-authentication the client starts.
use std::ffi::{CString, c_char, c_void};
use std::sync::Arc;

use bytes::Bytes;

use super::callbacks::Callback;
use super::client::{client_arg, mqttc_client, mqttc_token};
use super::properties::{mqttc_properties, properties_arg};
use super::{Failure, MAX_FIELD, arg_bytes, guard, mqttc_status, write_out};
use crate::codec::{Holder, PacketType, Properties, PropertyId, Version};
use crate::engine::{self, AuthChallenge, Client};

/// One step of an MQTT 5 enhanced authentication exchange: the broker's AUTH with reason code
/// 0x18 (Continue authentication). Borrowed: valid only during the callback.
#[repr(C)]
pub struct mqttc_auth_challenge {
    /// The Authentication Method, the one set in `connect_properties`; NUL-terminated.
    pub method: *const c_char,
    /// The broker's Authentication Data; NULL when it sent none.
    pub data: *const u8,
    /// The length of `data` in bytes; 0 when it sent none.
    pub data_len: usize,
    /// True during `mqttc_connect` (before the broker's CONNACK); false when the broker asks to
    /// re-authenticate the live connection, after `mqttc_reauthenticate` or on its own.
    pub connecting: bool,
    /// Every property of the broker's AUTH (the method and data above, a reason string, user
    /// properties), to read with the `mqttc_properties_get_*` functions.
    pub properties: *const mqttc_properties,
}

/// Authentication callback: answers one challenge of the broker (MQTT 5 enhanced
/// authentication). `challenge` and what it points to are borrowed for the call. To go on, set the
/// next Authentication Data in `reply` (a list the library owns, empty at the start, valid during
/// the call; never free it) with `mqttc_properties_set_binary(reply, MQTTC_PROP_AUTHENTICATION_DATA, ...)`, which
/// copies it, optionally with a reason string and user properties, and return true: the library
/// sends it in an AUTH with reason code 0x18 and the Authentication Method. Return false to end
/// the exchange: the library sends DISCONNECT (reason code 0x80) and closes the connection; the
/// connect token, or the re-authentication's, fails with MQTTC_ERR_AUTH_FAILED.
///
/// Runs where the client's other callbacks run: its callback thread, the network thread with
/// `inline_callbacks`, a pool's callback thread, or the thread running its `run_loop`. The
/// connection waits for the answer (within `connect_timeout_ms` during the connect); messages keep
/// flowing meanwhile during a re-authentication.
pub type mqttc_auth_cb = Option<
    unsafe extern "C" fn(
        client: *mut mqttc_client,
        challenge: *const mqttc_auth_challenge,
        reply: *mut mqttc_properties,
        userdata: *mut c_void,
    ) -> bool,
>;

/// Properties the application may not set in its reply: the library's.
const AUTH_OWNED: &[(PropertyId, &str)] = &[(
    PropertyId::AuthenticationMethod,
    "it sends the one in connect_properties",
)];

/// Sets (or with NULL `cb`, removes) the callback that answers the broker's AUTH challenges (see
/// `mqttc_auth_cb`), for MQTT 5 enhanced authentication (MQTT 5 section 4.12). Enhanced
/// authentication starts when `connect_properties` holds an Authentication Method
/// (`MQTTC_PROP_AUTHENTICATION_METHOD`, with any initial `MQTTC_PROP_AUTHENTICATION_DATA`): the
/// broker may then answer the CONNECT with challenges before its CONNACK, and challenge the client
/// again later. Set the callback before `mqttc_connect`. A challenge that finds no callback ends
/// the exchange (MQTTC_ERR_AUTH_FAILED). `userdata` is passed to `cb` as is; the library never
/// reads it.
///
/// Not in event mode: the callback runs on a library thread, which event mode's runtimes must not
/// be entered from, so an event-mode client cannot be made with an Authentication Method.
///
/// Errors: MQTTC_ERR_NULL (`client` is NULL), MQTTC_ERR_INVALID_HANDLE (`client` was freed or is
/// not a client), MQTTC_ERR_NOT_SUPPORTED (an MQTT 3.1.1 client), MQTTC_ERR_INVALID_ARGUMENT (an
/// event-mode client), MQTTC_ERR_PANIC (an internal error).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_client_set_on_auth(
    client: *mut mqttc_client,
    cb: mqttc_auth_cb,
    userdata: *mut c_void,
) -> mqttc_status {
    guard(|| {
        let c = mqtt5_client(client, "enhanced authentication")?;
        let handler = cb.map(|f| {
            let cb = Callback { f, client, userdata };
            Arc::new(move |challenge: &AuthChallenge| {
                let cb = &cb; // capture the whole (Send + Sync) struct, not its raw-pointer fields
                answer(challenge, |view, reply| {
                    // SAFETY: the caller's function with its own userdata; `view` and `reply`
                    // live for the call.
                    unsafe { (cb.f)(cb.client, view, reply, cb.userdata) }
                })
            }) as engine::AuthHandler
        });
        c.set_on_auth(handler)?;
        Ok(())
    })
}

/// Runs `call` on the C view of `challenge` and an empty reply list, and gives what the reply
/// then holds, checked, or why the exchange ends.
fn answer(
    challenge: &AuthChallenge,
    call: impl FnOnce(&mqttc_auth_challenge, *mut mqttc_properties) -> bool,
) -> engine::AuthAnswer {
    // Strings from the codec hold no U+0000.
    let method = CString::new(challenge.method.as_str()).unwrap_or_default();
    let properties = mqttc_properties::new(challenge.properties.clone());
    let data = challenge.data.as_ref();
    let view = mqttc_auth_challenge {
        method: method.as_ptr(),
        data: data.map_or(std::ptr::null(), |d| d.as_ptr()),
        data_len: data.map_or(0, Bytes::len),
        connecting: challenge.connecting,
        properties: &properties,
    };
    let mut reply = mqttc_properties::new(Properties::new());
    if !call(&view, &mut reply) {
        return Err("the authentication callback returned false".into());
    }
    let holder = Holder::Packet(PacketType::Auth);
    // SAFETY: `reply` is a live list.
    unsafe { properties_arg(&reply, Version::V5, holder, "AUTH", AUTH_OWNED) }.map_err(|f| f.detail)
}

/// Starts a re-authentication of the live connection (MQTT 5 section 4.12.1): sends AUTH with
/// reason code 0x19, the Authentication Method of `connect_properties` and `data` (`len` bytes,
/// copied; NULL with `len` 0 for none) as its Authentication Data. The broker's challenges then go
/// to the authentication callback (`mqttc_client_set_on_auth`), while messages keep flowing.
/// `*token` (if not NULL) completes with MQTTC_OK when the broker's AUTH Success (0x00) ends the
/// exchange (`mqttc_token_properties` gives that AUTH's properties, its Authentication Data
/// included); it fails with the connection when the broker refuses (a DISCONNECT:
/// MQTTC_ERR_SERVER_DISCONNECTED, `mqttc_token_codes` gives its reason code), when the callback
/// ends the exchange (MQTTC_ERR_AUTH_FAILED), or when the connection is lost (its reason), and
/// with MQTTC_ERR_INVALID_ARGUMENT when another exchange was still under way.
///
/// Errors: MQTTC_ERR_NULL (`client` is NULL, or `data` is NULL with `len` above 0),
/// MQTTC_ERR_INVALID_HANDLE (`client` was freed or is not a client), MQTTC_ERR_NOT_SUPPORTED (an
/// MQTT 3.1.1 client), MQTTC_ERR_INVALID_ARGUMENT (`len` above 65,535, or no Authentication
/// Method in `connect_properties`), MQTTC_ERR_NOT_CONNECTED (no live connection),
/// MQTTC_ERR_CANCELLED (the client is being freed), MQTTC_ERR_PANIC (an internal error, or a
/// panic stopped the client).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_reauthenticate(
    client: *mut mqttc_client,
    data: *const u8,
    len: usize,
    token: *mut mqttc_token,
) -> mqttc_status {
    guard(|| {
        let c = mqtt5_client(client, "re-authentication")?;
        // SAFETY: borrowed for the call per the contract.
        let data = unsafe { arg_bytes(data, len, MAX_FIELD, "data") }?;
        let mut properties = Properties::new();
        if !data.is_empty() {
            properties
                .push_binary(PropertyId::AuthenticationData, Bytes::copy_from_slice(data))
                .map_err(|e| Failure::new(mqttc_status::MQTTC_ERR_INVALID_ARGUMENT, e.to_string()))?;
        }
        let t = c.reauthenticate(properties)?;
        // SAFETY: per the contract.
        unsafe { write_out(token, t) };
        Ok(())
    })
}

/// The client a handle names (see `client_arg`), which must speak MQTT 5 for `what`.
fn mqtt5_client(client: *mut mqttc_client, what: &str) -> Result<Arc<Client>, Failure> {
    let c = client_arg(client)?;
    match c.version() {
        Version::V5 => Ok(c),
        Version::V311 => Err(Failure::new(
            mqttc_status::MQTTC_ERR_NOT_SUPPORTED,
            format!("{what} needs MQTT 5: set protocol_version to 5"),
        )),
    }
}
