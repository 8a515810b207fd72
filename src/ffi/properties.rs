//! MQTT 5 property lists for C: the `mqttc_properties` type with typed setters and getters, and
//! the check that a list suits the packet it is to be sent in.
//!
//! A list keeps the codec's wire form, so a received message's properties reach C without being
//! copied or parsed; NUL-terminated copies of its strings are made the first time a getter asks.
use std::ffi::{CString, c_char, c_int, c_void};
use std::sync::OnceLock;

use bytes::Bytes;

use super::{Failure, MAX_FIELD, arg_bytes, arg_str, guard, mqttc_status, struct_size_arg, write_out};
use crate::codec::{CodecError, Holder, Properties, Property, PropertyId, PropertyKind, PropertyValue, Version};

/// The MQTT 5 property identifiers (MQTT 5 table 2-4), as the `id` of the `mqttc_properties_*`
/// functions.
#[repr(C)]
pub enum mqttc_property_id {
    /// Byte, 0 (unspecified bytes) or 1 (UTF-8): PUBLISH, will.
    MQTTC_PROP_PAYLOAD_FORMAT_INDICATOR = 0x01,
    /// Four-byte integer, seconds: PUBLISH, will.
    MQTTC_PROP_MESSAGE_EXPIRY_INTERVAL = 0x02,
    /// String (a MIME type, say): PUBLISH, will.
    MQTTC_PROP_CONTENT_TYPE = 0x03,
    /// String, a topic name: PUBLISH, will.
    MQTTC_PROP_RESPONSE_TOPIC = 0x08,
    /// Binary: PUBLISH, will.
    MQTTC_PROP_CORRELATION_DATA = 0x09,
    /// Variable byte integer; on received messages only (the library sets it on SUBSCRIBE).
    MQTTC_PROP_SUBSCRIPTION_IDENTIFIER = 0x0B,
    /// Four-byte integer: CONNECT (set `session_expiry` in the options), CONNACK, DISCONNECT.
    MQTTC_PROP_SESSION_EXPIRY_INTERVAL = 0x11,
    /// String: CONNACK, when the client connected with an empty client id.
    MQTTC_PROP_ASSIGNED_CLIENT_IDENTIFIER = 0x12,
    /// Two-byte integer: CONNACK.
    MQTTC_PROP_SERVER_KEEP_ALIVE = 0x13,
    /// String: CONNECT (in `connect_properties`, it starts enhanced authentication: see
    /// `mqttc_client_set_on_auth`), CONNACK, AUTH.
    MQTTC_PROP_AUTHENTICATION_METHOD = 0x15,
    /// Binary: as the method.
    MQTTC_PROP_AUTHENTICATION_DATA = 0x16,
    /// Byte, 0 or 1: CONNECT.
    MQTTC_PROP_REQUEST_PROBLEM_INFORMATION = 0x17,
    /// Four-byte integer, seconds: will.
    MQTTC_PROP_WILL_DELAY_INTERVAL = 0x18,
    /// Byte, 0 or 1: CONNECT.
    MQTTC_PROP_REQUEST_RESPONSE_INFORMATION = 0x19,
    /// String: CONNACK.
    MQTTC_PROP_RESPONSE_INFORMATION = 0x1A,
    /// String: CONNACK, DISCONNECT from the broker.
    MQTTC_PROP_SERVER_REFERENCE = 0x1C,
    /// String: every acknowledgement, DISCONNECT.
    MQTTC_PROP_REASON_STRING = 0x1F,
    /// Two-byte integer, at least 1: CONNECT, CONNACK.
    MQTTC_PROP_RECEIVE_MAXIMUM = 0x21,
    /// Two-byte integer: CONNACK (set `topic_alias_maximum` in the options for CONNECT).
    MQTTC_PROP_TOPIC_ALIAS_MAXIMUM = 0x22,
    /// Two-byte integer; resolved by the library, never seen by the application.
    MQTTC_PROP_TOPIC_ALIAS = 0x23,
    /// Byte: CONNACK.
    MQTTC_PROP_MAXIMUM_QOS = 0x24,
    /// Byte: CONNACK.
    MQTTC_PROP_RETAIN_AVAILABLE = 0x25,
    /// A name and value pair, repeatable: every packet with properties.
    MQTTC_PROP_USER_PROPERTY = 0x26,
    /// Four-byte integer: CONNACK (set `max_packet_size` in the options for CONNECT).
    MQTTC_PROP_MAXIMUM_PACKET_SIZE = 0x27,
    /// Byte: CONNACK.
    MQTTC_PROP_WILDCARD_SUBSCRIPTION_AVAILABLE = 0x28,
    /// Byte: CONNACK.
    MQTTC_PROP_SUBSCRIPTION_IDENTIFIER_AVAILABLE = 0x29,
    /// Byte: CONNACK.
    MQTTC_PROP_SHARED_SUBSCRIPTION_AVAILABLE = 0x2A,
}

/// A property list (MQTT 5). Lists the caller makes with `mqttc_properties_new` or
/// `mqttc_properties_copy` are the caller's, released with `mqttc_properties_free`; the library
/// copies what it sends. Lists the library hands out inside a message or an event are borrowed
/// like the message. Strings and bytes a getter returns point into the list and stay valid until
/// the list is changed or released.
pub struct mqttc_properties {
    list: Properties,
    /// NUL-terminated copies for the getters: made on the first read, dropped on any change.
    view: OnceLock<Vec<Entry>>,
}

/// One property as a getter hands it out.
struct Entry {
    id: PropertyId,
    integer: u32,
    name: Option<CString>,
    string: Option<CString>,
    binary: Bytes,
}

/// MQTT strings never hold U+0000 (the codec refuses them), so the conversion cannot fail.
fn c_string(s: &str) -> CString {
    CString::new(s).unwrap_or_default()
}

impl Entry {
    fn new(p: Property) -> Entry {
        let mut e = Entry {
            id: p.id(),
            integer: 0,
            name: None,
            string: None,
            binary: Bytes::new(),
        };
        match p.value() {
            PropertyValue::Int(v) => e.integer = *v,
            PropertyValue::Str(s) => e.string = Some(c_string(s.as_str())),
            PropertyValue::Binary(b) => e.binary = b.clone(),
            PropertyValue::Pair(k, v) => {
                e.name = Some(c_string(k.as_str()));
                e.string = Some(c_string(v.as_str()));
            }
        }
        e
    }
}

impl mqttc_properties {
    pub(crate) fn new(list: Properties) -> Self {
        mqttc_properties {
            list,
            view: OnceLock::new(),
        }
    }

    pub(crate) fn list(&self) -> &Properties {
        &self.list
    }

    fn entries(&self) -> &[Entry] {
        self.view.get_or_init(|| self.list.iter().map(Entry::new).collect())
    }

    fn change(&mut self, f: impl FnOnce(&mut Properties) -> Result<(), CodecError>) -> Result<(), Failure> {
        self.view = OnceLock::new();
        f(&mut self.list).map_err(|e| Failure::new(mqttc_status::MQTTC_ERR_INVALID_ARGUMENT, e.to_string()))
    }
}

/// One property, as `mqttc_properties_at` gives it. Borrowed from the list (see `mqttc_properties`).
/// Set `struct_size` before the call (`mqttc_property p; p.struct_size = sizeof p;`): fields may
/// be appended in later versions, and the library fills no more than `struct_size` bytes.
#[repr(C)]
pub struct mqttc_property {
    /// sizeof(mqttc_property) as compiled into the caller; set by the caller, kept by the library.
    pub struct_size: u32,
    /// An `mqttc_property_id` value.
    pub id: c_int,
    /// The value of an integer property (byte, two-byte, four-byte or variable byte integer).
    pub integer: u32,
    /// A user property's name, NUL-terminated; NULL for other properties.
    pub name: *const c_char,
    /// The value of a string property or of a user property, NUL-terminated; else NULL.
    pub string: *const c_char,
    /// The value of a binary property (correlation data, authentication data); else NULL.
    pub binary: *const u8,
    pub binary_len: usize,
}

/// The shortest `mqttc_property` layout published, the first with `struct_size`.
const PROPERTY_MIN_SIZE: usize = size_of::<mqttc_property>();

/// # Safety
/// `p` is NULL or a live list.
unsafe fn list_arg<'a>(p: *const mqttc_properties) -> Result<&'a mqttc_properties, Failure> {
    // SAFETY: per the contract.
    unsafe { p.as_ref() }.ok_or_else(|| Failure::new(mqttc_status::MQTTC_ERR_NULL, "properties is NULL"))
}

/// # Safety
/// `p` is NULL or a live list the caller owns.
unsafe fn list_mut<'a>(p: *mut mqttc_properties) -> Result<&'a mut mqttc_properties, Failure> {
    // SAFETY: per the contract.
    unsafe { p.as_mut() }.ok_or_else(|| Failure::new(mqttc_status::MQTTC_ERR_NULL, "properties is NULL"))
}

fn id_arg(id: c_int) -> Result<PropertyId, Failure> {
    u8::try_from(id).ok().and_then(PropertyId::from_u8).ok_or_else(|| {
        Failure::new(
            mqttc_status::MQTTC_ERR_INVALID_ARGUMENT,
            format!("{id} is not an MQTT 5 property identifier (an mqttc_property_id value)"),
        )
    })
}

/// The identifier, checked to take values of the kind a setter or getter handles.
fn typed_id(id: c_int, kinds: &[PropertyKind], what: &str) -> Result<PropertyId, Failure> {
    let id = id_arg(id)?;
    if !kinds.contains(&id.kind()) {
        return Err(Failure::new(
            mqttc_status::MQTTC_ERR_INVALID_ARGUMENT,
            format!("{id:?} is not {what} property; it holds a {:?}", id.kind()),
        ));
    }
    Ok(id)
}

const INTEGERS: &[PropertyKind] = &[
    PropertyKind::Byte,
    PropertyKind::TwoByteInt,
    PropertyKind::FourByteInt,
    PropertyKind::VarInt,
];

fn not_found(id: PropertyId) -> Failure {
    Failure::new(mqttc_status::MQTTC_ERR_NOT_FOUND, format!("no {id:?} in the list"))
}

/// The list a function is to send in `holder`, checked: NULL is the empty list; a non-empty one
/// needs MQTT 5, may hold only what the packet takes from a client, and none of `owned`, the
/// properties the library sets itself (each with what to do instead).
///
/// # Safety
/// `p` is NULL or a live list.
pub(crate) unsafe fn properties_arg(
    p: *const mqttc_properties,
    version: Version,
    holder: Holder,
    what: &str,
    owned: &[(PropertyId, &str)],
) -> Result<Properties, Failure> {
    // SAFETY: per the contract.
    let Some(p) = (unsafe { p.as_ref() }) else {
        return Ok(Properties::new());
    };
    if p.list.is_empty() {
        return Ok(Properties::new());
    }
    if version == Version::V311 {
        return Err(Failure::new(
            mqttc_status::MQTTC_ERR_NOT_SUPPORTED,
            format!("{what} properties need MQTT 5: set protocol_version to 5"),
        ));
    }
    let invalid = |detail: String| Failure::new(mqttc_status::MQTTC_ERR_INVALID_ARGUMENT, detail);
    p.list.validate(holder).map_err(|e| match e {
        CodecError::PropertyNotAllowed { id, .. } => {
            let name = PropertyId::from_u8(id).map_or(format!("{id:#04x}"), |i| format!("{i:?}"));
            invalid(format!("{what} cannot carry the property {name}"))
        }
        other => invalid(format!("{what} properties: {other}")),
    })?;
    for (id, instead) in owned {
        if p.list.get(*id).is_some() {
            return Err(invalid(format!(
                "{what} properties: {id:?} is set by the library; {instead}"
            )));
        }
    }
    Ok(p.list.clone())
}

/// Makes an empty property list; on success `*out` receives it, to release with
/// `mqttc_properties_free`.
///
/// Errors: MQTTC_ERR_NULL (`out`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_properties_new(out: *mut *mut mqttc_properties) -> mqttc_status {
    guard(|| {
        if out.is_null() {
            return Err(Failure::new(mqttc_status::MQTTC_ERR_NULL, "out is NULL"));
        }
        let list = Box::new(mqttc_properties::new(Properties::new()));
        // SAFETY: checked non-NULL.
        unsafe { write_out(out, Box::into_raw(list)) };
        Ok(())
    })
}

/// Copies a list (e.g. a received message's, to keep it past the callback) into one the caller
/// owns and releases with `mqttc_properties_free`.
///
/// Errors: MQTTC_ERR_NULL (`properties` or `out`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_properties_copy(
    properties: *const mqttc_properties,
    out: *mut *mut mqttc_properties,
) -> mqttc_status {
    guard(|| {
        // SAFETY: per the contract.
        let p = unsafe { list_arg(properties) }?;
        if out.is_null() {
            return Err(Failure::new(mqttc_status::MQTTC_ERR_NULL, "out is NULL"));
        }
        let copy = Box::new(mqttc_properties::new(p.list.clone()));
        unsafe { write_out(out, Box::into_raw(copy)) };
        Ok(())
    })
}

/// Releases a list made by `mqttc_properties_new` or `mqttc_properties_copy`. NULL is a no-op.
/// Never pass a list the library lent (a message's or an event's).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_properties_free(properties: *mut mqttc_properties) {
    if !properties.is_null() {
        // SAFETY: made by Box::into_raw in mqttc_properties_new/copy, per the contract.
        drop(unsafe { Box::from_raw(properties) });
    }
}

/// Sets an integer property (replacing any value it had), checking its range: 0 or 1 for the
/// byte-sized flags, at least 1 for Receive Maximum.
///
/// Errors: MQTTC_ERR_NULL (`properties`), MQTTC_ERR_INVALID_ARGUMENT (`id` not an integer property,
/// or `value` out of its range).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_properties_set_int(
    properties: *mut mqttc_properties,
    id: c_int,
    value: u32,
) -> mqttc_status {
    guard(|| {
        // SAFETY: per the contract.
        let p = unsafe { list_mut(properties) }?;
        let id = typed_id(id, INTEGERS, "an integer")?;
        p.change(|l| {
            let property = Property::new(id, PropertyValue::Int(value))?;
            l.remove(id);
            l.push(property);
            Ok(())
        })
    })
}

/// Sets a string property (replacing any value it had). `value` is NUL-terminated UTF-8, copied.
///
/// Errors: MQTTC_ERR_NULL (`properties` or `value`), MQTTC_ERR_INVALID_ARGUMENT (`id` not a string
/// property, or `value` over 65,535 bytes), MQTTC_ERR_INVALID_UTF8.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_properties_set_string(
    properties: *mut mqttc_properties,
    id: c_int,
    value: *const c_char,
) -> mqttc_status {
    guard(|| {
        // SAFETY: per the contract.
        let p = unsafe { list_mut(properties) }?;
        let id = typed_id(id, &[PropertyKind::Str], "a string")?;
        let value = unsafe { arg_str(value, "value") }?;
        p.change(|l| {
            l.remove(id);
            l.push_str(id, value)
        })
    })
}

/// Sets a binary property (replacing any value it had): `len` bytes at `data` (NULL when 0),
/// copied; at most 65,535.
///
/// Errors: MQTTC_ERR_NULL (`properties`, or `data` with a nonzero `len`),
/// MQTTC_ERR_INVALID_ARGUMENT (`id` not a binary property, or `len` over 65,535).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_properties_set_binary(
    properties: *mut mqttc_properties,
    id: c_int,
    data: *const c_void,
    len: usize,
) -> mqttc_status {
    guard(|| {
        // SAFETY: per the contract.
        let p = unsafe { list_mut(properties) }?;
        let id = typed_id(id, &[PropertyKind::Binary], "a binary")?;
        let data = unsafe { arg_bytes(data.cast(), len, MAX_FIELD, "data") }?;
        p.change(|l| {
            l.remove(id);
            l.push_binary(id, Bytes::copy_from_slice(data))
        })
    })
}

/// Appends a user property (a name and value pair; names may repeat, and order is kept).
///
/// Errors: MQTTC_ERR_NULL (`properties`, `name` or `value`), MQTTC_ERR_INVALID_UTF8,
/// MQTTC_ERR_INVALID_ARGUMENT (`name` or `value` over 65,535 bytes).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_properties_add_user(
    properties: *mut mqttc_properties,
    name: *const c_char,
    value: *const c_char,
) -> mqttc_status {
    guard(|| {
        // SAFETY: per the contract.
        let p = unsafe { list_mut(properties) }?;
        let name = unsafe { arg_str(name, "name") }?;
        let value = unsafe { arg_str(value, "value") }?;
        p.change(|l| l.push_user(name, value))
    })
}

/// Removes every property with this identifier (all user properties for
/// MQTTC_PROP_USER_PROPERTY). Removing one that is absent is not an error.
///
/// Errors: MQTTC_ERR_NULL (`properties`), MQTTC_ERR_INVALID_ARGUMENT (`id` not a property
/// identifier).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_properties_remove(properties: *mut mqttc_properties, id: c_int) -> mqttc_status {
    guard(|| {
        // SAFETY: per the contract.
        let p = unsafe { list_mut(properties) }?;
        let id = id_arg(id)?;
        p.change(|l| {
            l.remove(id);
            Ok(())
        })
    })
}

/// Stores in `*count` how many properties the list holds (each user property counts once).
///
/// Errors: MQTTC_ERR_NULL (`properties` or `count`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_properties_count(
    properties: *const mqttc_properties,
    count: *mut usize,
) -> mqttc_status {
    guard(|| {
        // SAFETY: per the contract.
        let p = unsafe { list_arg(properties) }?;
        if count.is_null() {
            return Err(Failure::new(mqttc_status::MQTTC_ERR_NULL, "count is NULL"));
        }
        unsafe { write_out(count, p.list.len()) };
        Ok(())
    })
}

/// Stores in `*out` the property at `index` (0 up to the count), in the order of the packet: the
/// way to read repeated properties (user properties, a message's subscription identifiers) and
/// properties of any kind.
///
/// Errors: MQTTC_ERR_NULL (`properties` or `out`), MQTTC_ERR_STRUCT_SIZE (`out->struct_size` not a
/// size this library knows), MQTTC_ERR_NOT_FOUND (`index` past the end).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_properties_at(
    properties: *const mqttc_properties,
    index: usize,
    out: *mut mqttc_property,
) -> mqttc_status {
    guard(|| {
        // SAFETY: per the contract.
        let p = unsafe { list_arg(properties) }?;
        if out.is_null() {
            return Err(Failure::new(mqttc_status::MQTTC_ERR_NULL, "out is NULL"));
        }
        // SAFETY: the caller's struct has at least its `struct_size` field, per the contract.
        let size = unsafe { out.cast::<u32>().read_unaligned() };
        let hint = "set it to sizeof(mqttc_property)";
        let size = struct_size_arg::<mqttc_property>(size, PROPERTY_MIN_SIZE, "out", hint)?;
        let entries = p.entries();
        let e = entries.get(index).ok_or_else(|| {
            Failure::new(
                mqttc_status::MQTTC_ERR_NOT_FOUND,
                format!("index {index} is past the list's {} properties", entries.len()),
            )
        })?;
        let cstr = |s: &Option<CString>| s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
        let view = mqttc_property {
            struct_size: size as u32,
            id: e.id as c_int,
            integer: e.integer,
            name: cstr(&e.name),
            string: cstr(&e.string),
            binary: if e.id.kind() == PropertyKind::Binary {
                e.binary.as_ptr()
            } else {
                std::ptr::null()
            },
            binary_len: e.binary.len(),
        };
        // SAFETY: the caller's struct has `size` writable bytes, no more than `view` has.
        unsafe { std::ptr::copy_nonoverlapping((&raw const view).cast::<u8>(), out.cast::<u8>(), size) };
        Ok(())
    })
}

/// Looks up the first property with identifier `id`: `f` turns it into the getter's result.
///
/// # Safety
/// `properties` is NULL or a live list.
unsafe fn first<T>(
    properties: *const mqttc_properties,
    id: c_int,
    kinds: &[PropertyKind],
    what: &str,
    f: impl FnOnce(&Entry) -> T,
) -> Result<T, Failure> {
    // SAFETY: per the contract.
    let p = unsafe { list_arg(properties) }?;
    let id = typed_id(id, kinds, what)?;
    p.entries()
        .iter()
        .find(|e| e.id == id)
        .map(f)
        .ok_or_else(|| not_found(id))
}

/// Stores an integer property's value in `*value` (the first one, for a message's repeated
/// subscription identifiers).
///
/// Errors: MQTTC_ERR_NULL (`properties` or `value`), MQTTC_ERR_INVALID_ARGUMENT (`id` not an
/// integer property), MQTTC_ERR_NOT_FOUND (not in the list).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_properties_get_int(
    properties: *const mqttc_properties,
    id: c_int,
    value: *mut u32,
) -> mqttc_status {
    guard(|| {
        if value.is_null() {
            return Err(Failure::new(mqttc_status::MQTTC_ERR_NULL, "value is NULL"));
        }
        // SAFETY: per the contract.
        let v = unsafe { first(properties, id, INTEGERS, "an integer", |e| e.integer) }?;
        unsafe { write_out(value, v) };
        Ok(())
    })
}

/// Stores a string property's value, NUL-terminated and borrowed from the list, in `*value`.
///
/// Errors: MQTTC_ERR_NULL (`properties` or `value`), MQTTC_ERR_INVALID_ARGUMENT (`id` not a string
/// property), MQTTC_ERR_NOT_FOUND (not in the list).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_properties_get_string(
    properties: *const mqttc_properties,
    id: c_int,
    value: *mut *const c_char,
) -> mqttc_status {
    guard(|| {
        if value.is_null() {
            return Err(Failure::new(mqttc_status::MQTTC_ERR_NULL, "value is NULL"));
        }
        // SAFETY: per the contract.
        let s = unsafe {
            first(properties, id, &[PropertyKind::Str], "a string", |e| {
                e.string.as_ref().map_or(std::ptr::null(), |s| s.as_ptr())
            })
        }?;
        unsafe { write_out(value, s) };
        Ok(())
    })
}

/// Stores a binary property's bytes (borrowed from the list) in `*data` and their number in
/// `*len`.
///
/// Errors: MQTTC_ERR_NULL (`properties`, `data` or `len`), MQTTC_ERR_INVALID_ARGUMENT (`id` not a
/// binary property), MQTTC_ERR_NOT_FOUND (not in the list).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_properties_get_binary(
    properties: *const mqttc_properties,
    id: c_int,
    data: *mut *const u8,
    len: *mut usize,
) -> mqttc_status {
    guard(|| {
        if data.is_null() || len.is_null() {
            return Err(Failure::new(mqttc_status::MQTTC_ERR_NULL, "data or len is NULL"));
        }
        // SAFETY: per the contract.
        let (p, n) = unsafe {
            first(properties, id, &[PropertyKind::Binary], "a binary", |e| {
                (e.binary.as_ptr(), e.binary.len())
            })
        }?;
        unsafe {
            write_out(data, p);
            write_out(len, n);
        }
        Ok(())
    })
}

/// Stores the value of the first user property named `name` (NUL-terminated, borrowed from the
/// list) in `*value`. `mqttc_properties_at` reads them all.
///
/// Errors: MQTTC_ERR_NULL (`properties`, `name` or `value`), MQTTC_ERR_INVALID_UTF8 (`name`),
/// MQTTC_ERR_NOT_FOUND (no user property of that name).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_properties_get_user(
    properties: *const mqttc_properties,
    name: *const c_char,
    value: *mut *const c_char,
) -> mqttc_status {
    guard(|| {
        // SAFETY: per the contract.
        let p = unsafe { list_arg(properties) }?;
        let name = unsafe { arg_str(name, "name") }?;
        if value.is_null() {
            return Err(Failure::new(mqttc_status::MQTTC_ERR_NULL, "value is NULL"));
        }
        let found = p
            .entries()
            .iter()
            .find(|e| e.name.as_ref().is_some_and(|n| n.as_bytes() == name.as_bytes()))
            .and_then(|e| e.string.as_ref())
            .ok_or_else(|| {
                Failure::new(
                    mqttc_status::MQTTC_ERR_NOT_FOUND,
                    format!("no user property named \"{name}\""),
                )
            })?;
        unsafe { write_out(value, found.as_ptr()) };
        Ok(())
    })
}
