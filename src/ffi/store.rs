//! A message store the application supplies through callbacks (`mqttc_store`), for
//! `mqttc_options.store`: the engine's key-value table ([`KeyValue`]) over C functions.
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::io;
use std::mem::size_of;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::handles::Handles;
use super::{Failure, arg_bytes, guard, mqttc_status, struct_size_arg, vec_for};
use crate::engine::store::KeyValue;
use crate::engine::store::record::MAX_BODY;

/// Where a `get` callback puts the value it found, with `mqttc_store_value_set`. Borrowed: valid
/// only during that callback.
pub struct mqttc_store_value {
    value: Option<Vec<u8>>,
}

/// Where a `list` callback puts the keys it holds, with `mqttc_store_keys_add`. Borrowed: valid
/// only during that callback.
pub struct mqttc_store_keys {
    keys: Vec<String>,
}

/// The functions of a store the application supplies (`mqttc_store_new`), so that messages can be
/// kept wherever it keeps data: flash, a database. Set `struct_size` to
/// `sizeof(mqttc_store_callbacks)` (`MQTTC_STORE_CALLBACKS_INIT` does): fields may be appended in
/// later versions.
///
/// The store is a table of keys and values. Keys are short printable ASCII strings the library
/// makes (such as "m.17", "s.17", "i.5"): treat them as opaque, compare them as strings. A `list`
/// may return other keys too (the application's own data in the same table): the library leaves
/// them alone and logs a warning naming each. Values are bytes, up to the size of the largest
/// MQTT message, and may be empty.
///
/// Each function returns 0 on success; anything else is a failure, which the library reports as
/// MQTTC_ERR_STORE (a publish whose message `put` could not store fails, and is not sent), naming
/// the function, the key and the value returned. The functions are called one at a time for a
/// store, never two at once, but from several threads: each on the thread of the call that needs
/// it, `mqttc_client_new` (list), `mqttc_publish` (put of the message), the client's network
/// thread or loop (the state of messages in flight; list and get when a session starts),
/// `mqttc_client_free` (what was left to write). They must not call mqttclient functions other
/// than `mqttc_store_value_set` and `mqttc_store_keys_add`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct mqttc_store_callbacks {
    /// sizeof(mqttc_store_callbacks) as compiled into the caller.
    pub struct_size: u32,
    /// Passed to every function.
    pub userdata: *mut c_void,
    /// Stores the `len` bytes at `value` under `key`, replacing any value the key had. Both
    /// pointers are borrowed for the call.
    pub put:
        Option<unsafe extern "C" fn(userdata: *mut c_void, key: *const c_char, value: *const u8, len: usize) -> c_int>,
    /// Finds the value under `key` and hands it over with `mqttc_store_value_set(out, ...)`; not
    /// calling it (and returning 0) means the key has no value.
    pub get:
        Option<unsafe extern "C" fn(userdata: *mut c_void, key: *const c_char, out: *mut mqttc_store_value) -> c_int>,
    /// Removes `key`. Removing a key that is not there succeeds.
    pub remove: Option<unsafe extern "C" fn(userdata: *mut c_void, key: *const c_char) -> c_int>,
    /// Hands over every key held, each with `mqttc_store_keys_add(out, key)`.
    pub list: Option<unsafe extern "C" fn(userdata: *mut c_void, out: *mut mqttc_store_keys) -> c_int>,
    /// Removes every key (used when a clean session drops what an earlier one stored, see
    /// `store_drop_on_clean`).
    pub clear: Option<unsafe extern "C" fn(userdata: *mut c_void) -> c_int>,
    /// Makes what was stored durable against a power loss, as the `store_sync` policy of the
    /// client's options says when. May be NULL: what `put` and `remove` did is then taken as
    /// durable once they return.
    pub sync: Option<unsafe extern "C" fn(userdata: *mut c_void) -> c_int>,
    /// Releases `userdata`: called exactly once, when the store is no longer used (see
    /// `mqttc_store_free`). May be NULL.
    pub drop: Option<unsafe extern "C" fn(userdata: *mut c_void)>,
}

/// A message store the application supplies: its callbacks and userdata.
///
/// Opaque. Made by `mqttc_store_new`, released by `mqttc_store_free`, and given to a client
/// through `mqttc_options.store`; one client at a time may use it (a second gets MQTTC_ERR_STORE
/// until the first is freed), and a client made later with the same store restores what the
/// earlier one left. A handle like `mqttc_client *`, with the same rules: never dereferenced,
/// refused with MQTTC_ERR_INVALID_HANDLE once freed.
pub struct mqttc_store {
    _handle: [u8; 0],
}

/// The checked callbacks.
struct Callbacks {
    userdata: *mut c_void,
    put: unsafe extern "C" fn(*mut c_void, *const c_char, *const u8, usize) -> c_int,
    get: unsafe extern "C" fn(*mut c_void, *const c_char, *mut mqttc_store_value) -> c_int,
    remove: unsafe extern "C" fn(*mut c_void, *const c_char) -> c_int,
    list: unsafe extern "C" fn(*mut c_void, *mut mqttc_store_keys) -> c_int,
    clear: unsafe extern "C" fn(*mut c_void) -> c_int,
    sync: Option<unsafe extern "C" fn(*mut c_void) -> c_int>,
    drop: Option<unsafe extern "C" fn(*mut c_void)>,
}

/// The store behind a handle; `drop` runs when the last reference (the handle's, or a client's)
/// goes.
pub(crate) struct AppStore {
    cb: Callbacks,
    /// A client holds it (see [`lease`]).
    in_use: AtomicBool,
    /// Made by a successful `mqttc_store_new`: until then the userdata is still the caller's.
    owned: AtomicBool,
}

// SAFETY: the caller was told (in the header) that the callbacks run on library threads; they are
// called one at a time (the engine's `KvStore` holds a lock around each call), and the library
// only passes the userdata back to them.
unsafe impl Send for AppStore {}
// SAFETY: as above.
unsafe impl Sync for AppStore {}

impl Drop for AppStore {
    fn drop(&mut self) {
        if let Some(d) = self.cb.drop.filter(|_| self.owned.load(Ordering::Acquire)) {
            // SAFETY: the caller's destructor with its own userdata, called once (we drop once).
            unsafe { d(self.cb.userdata) }
        }
    }
}

/// Every live store, by handle (see [`super::handles`]).
static STORES: Handles<AppStore> = Handles::new(3);

/// The store a handle from C names.
pub(crate) fn store_arg(p: *const mqttc_store, name: &str) -> Result<Arc<AppStore>, Failure> {
    if p.is_null() {
        return Err(Failure::new(mqttc_status::MQTTC_ERR_NULL, format!("{name} is NULL")));
    }
    STORES.get(p.addr()).ok_or_else(|| stale(name))
}

fn stale(name: &str) -> Failure {
    Failure::new(
        mqttc_status::MQTTC_ERR_INVALID_HANDLE,
        format!("{name} was freed or is not a store"),
    )
}

/// The store for one client, the only one until the table is dropped with that client's store.
pub(crate) fn lease(store: Arc<AppStore>) -> Result<Box<dyn KeyValue>, Failure> {
    if store.in_use.swap(true, Ordering::AcqRel) {
        return Err(Failure::new(
            mqttc_status::MQTTC_ERR_STORE,
            "store is in use by another client: one client at a time may use a store",
        ));
    }
    Ok(Box::new(Lease(store)))
}

/// A client's use of a store: its calls go to the application's callbacks.
struct Lease(Arc<AppStore>);

impl Drop for Lease {
    fn drop(&mut self) {
        self.0.in_use.store(false, Ordering::Release);
    }
}

impl Lease {
    /// Runs one callback: 0 is success, anything else an error naming the call (and key).
    fn call(&self, what: &str, key: Option<&str>, f: impl FnOnce(&Callbacks) -> c_int) -> io::Result<()> {
        let about = || key.map_or_else(|| what.to_owned(), |k| format!("{what} of key {k}"));
        match catch_unwind(AssertUnwindSafe(|| f(&self.0.cb))) {
            Ok(0) => Ok(()),
            Ok(rc) => Err(io::Error::other(format!(
                "the application's store failed: {} returned {rc}",
                about()
            ))),
            Err(_) => Err(io::Error::other(format!(
                "internal error: a panic in the store's {}",
                about()
            ))),
        }
    }
}

/// A key the library made, for C: printable ASCII, never a NUL.
fn c_key(key: &str) -> CString {
    CString::new(key).expect("keys the library makes have no NUL")
}

impl KeyValue for Lease {
    fn put(&self, key: &str, value: &[u8]) -> io::Result<()> {
        let k = c_key(key);
        // SAFETY (each call below): the caller's function with its own userdata; the key and
        // value are borrowed for the call, `out` lives across it.
        self.call("put", Some(key), |cb| unsafe {
            (cb.put)(cb.userdata, k.as_ptr(), value.as_ptr(), value.len())
        })
    }

    fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        let k = c_key(key);
        let mut out = mqttc_store_value { value: None };
        self.call("get", Some(key), |cb| unsafe {
            (cb.get)(cb.userdata, k.as_ptr(), &mut out)
        })?;
        Ok(out.value)
    }

    fn remove(&self, key: &str) -> io::Result<()> {
        let k = c_key(key);
        self.call("remove", Some(key), |cb| unsafe {
            (cb.remove)(cb.userdata, k.as_ptr())
        })
    }

    fn list(&self) -> io::Result<Vec<String>> {
        let mut out = mqttc_store_keys { keys: Vec::new() };
        self.call("list", None, |cb| unsafe { (cb.list)(cb.userdata, &mut out) })?;
        Ok(out.keys)
    }

    fn clear(&self) -> io::Result<()> {
        self.call("clear", None, |cb| unsafe { (cb.clear)(cb.userdata) })
    }

    fn sync(&self) -> io::Result<()> {
        match self.0.cb.sync {
            Some(sync) => self.call("sync", None, |cb| unsafe { sync(cb.userdata) }),
            None => Ok(()),
        }
    }
}

/// Makes a store over the application's callbacks (copied from `*callbacks`). `put`, `get`,
/// `remove`, `list` and `clear` are required; `sync` and `drop` may be NULL. On success `*out`
/// receives the store, which the caller releases with `mqttc_store_free`; on failure `*out` is not
/// written and `drop` is not called.
///
/// Errors: MQTTC_ERR_NULL (`callbacks` or `out`), MQTTC_ERR_STRUCT_SIZE (`callbacks->struct_size`),
/// MQTTC_ERR_INVALID_ARGUMENT (a required function is NULL), MQTTC_ERR_RESOURCE (too many stores).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_store_new(
    callbacks: *const mqttc_store_callbacks,
    out: *mut *mut mqttc_store,
) -> mqttc_status {
    guard(|| {
        if callbacks.is_null() || out.is_null() {
            let name = if callbacks.is_null() { "callbacks" } else { "out" };
            return Err(Failure::new(mqttc_status::MQTTC_ERR_NULL, format!("{name} is NULL")));
        }
        // SAFETY: the caller's struct has at least its `struct_size` field.
        let size = unsafe { (*callbacks).struct_size };
        let full = size_of::<mqttc_store_callbacks>();
        struct_size_arg::<mqttc_store_callbacks>(
            size,
            full,
            "store callbacks",
            "set it to sizeof(mqttc_store_callbacks), or use MQTTC_STORE_CALLBACKS_INIT",
        )?;
        // SAFETY: its size checked just above, readable per the contract.
        let c = unsafe { *callbacks };
        let (Some(put), Some(get), Some(remove), Some(list), Some(clear)) = (c.put, c.get, c.remove, c.list, c.clear)
        else {
            let missing: Vec<&str> = [
                ("put", c.put.is_none()),
                ("get", c.get.is_none()),
                ("remove", c.remove.is_none()),
                ("list", c.list.is_none()),
                ("clear", c.clear.is_none()),
            ]
            .into_iter()
            .filter_map(|(name, null)| null.then_some(name))
            .collect();
            return Err(Failure::new(
                mqttc_status::MQTTC_ERR_INVALID_ARGUMENT,
                format!(
                    "store callbacks {} NULL: put, get, remove, list and clear are required (sync and drop may be NULL)",
                    missing.join(", ")
                ),
            ));
        };
        let store = Arc::new(AppStore {
            cb: Callbacks {
                userdata: c.userdata,
                put,
                get,
                remove,
                list,
                clear,
                sync: c.sync,
                drop: c.drop,
            },
            in_use: AtomicBool::new(false),
            owned: AtomicBool::new(false),
        });
        let handle = STORES.insert(store.clone()).ok_or_else(|| {
            Failure::new(
                mqttc_status::MQTTC_ERR_RESOURCE,
                "too many stores: free some (about a million can be live at once)",
            )
        })?;
        store.owned.store(true, Ordering::Release);
        // SAFETY: checked non-NULL above; writable per the contract.
        unsafe { out.write(std::ptr::without_provenance_mut(handle)) };
        Ok(())
    })
}

/// Releases the caller's handle. A client made with the store keeps it until the client is
/// freed, so the order of the frees does not matter: `drop` runs once both happened (inside
/// whichever of `mqttc_store_free` and `mqttc_client_free` comes last). The handle is refused
/// from now on: freeing it again does nothing but leave MQTTC_ERR_INVALID_HANDLE's detail in
/// `mqttc_last_error`. NULL is a no-op.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_store_free(store: *mut mqttc_store) {
    let _ = guard(|| {
        if store.is_null() {
            return Ok(());
        }
        STORES.remove(store.addr()).ok_or_else(|| stale("store"))?;
        Ok(())
    });
}

/// Inside a `get` callback: hands over the value found, `len` bytes at `bytes` (copied; NULL with
/// `len` 0 for an empty value). A second call replaces the first.
///
/// Errors: MQTTC_ERR_NULL (`out`, or `bytes` with a nonzero `len`), MQTTC_ERR_INVALID_ARGUMENT
/// (longer than any value the library stores), MQTTC_ERR_RESOURCE (no memory for the copy).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_store_value_set(
    out: *mut mqttc_store_value,
    bytes: *const u8,
    len: usize,
) -> mqttc_status {
    guard(|| {
        if out.is_null() {
            return Err(Failure::new(mqttc_status::MQTTC_ERR_NULL, "out is NULL"));
        }
        // SAFETY: `len` readable bytes per the contract, checked against the limit first.
        let bytes = unsafe { arg_bytes(bytes, len, MAX_BODY, "bytes") }?;
        let mut value = vec_for(len, "bytes of a stored value")?;
        value.extend_from_slice(bytes);
        // SAFETY: the `out` the library passed to the callback running now, per the contract.
        unsafe { (*out).value = Some(value) };
        Ok(())
    })
}

/// Inside a `list` callback: hands over one key (a NUL-terminated string, copied).
///
/// Errors: MQTTC_ERR_NULL (`out` or `key`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_store_keys_add(out: *mut mqttc_store_keys, key: *const c_char) -> mqttc_status {
    guard(|| {
        if out.is_null() || key.is_null() {
            let name = if out.is_null() { "out" } else { "key" };
            return Err(Failure::new(mqttc_status::MQTTC_ERR_NULL, format!("{name} is NULL")));
        }
        // SAFETY: NUL-terminated per the contract. A key that is not UTF-8 is not one the library
        // made: kept (lossily) so that the log can name it.
        let key = unsafe { CStr::from_ptr(key) }.to_string_lossy().into_owned();
        // SAFETY: the `out` the library passed to the callback running now, per the contract.
        unsafe { (*out).keys.push(key) };
        Ok(())
    })
}
