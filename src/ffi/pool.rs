//! A pool of threads shared by many clients (Paho C's model).
use std::sync::Arc;

use super::handles::Handles;
use super::{Failure, guard, mqttc_status};
use crate::engine::Pool;

/// Threads shared by many clients: a few network threads run all their connections, and as many
/// callback threads run their callbacks. 50,000 clients on a pool of 2 cost 2 network threads and
/// 2 callback threads, where clients made without one have two threads each.
///
/// Opaque. Made by `mqttc_pool_new`, released by `mqttc_pool_free`, and given to clients through
/// `mqttc_options.pool`. Clients keep their pool alive until they are freed, so the frees may come
/// in any order.
///
/// Callbacks on a pool: one client's callbacks run one at a time, in order, as on a client's own
/// callback thread; different clients' may run at the same time on different callback threads. A
/// callback that blocks holds up its own client, and for about 100 ms the other clients whose
/// callbacks wait for a thread: when every callback thread has been inside a callback that long
/// while others wait, the pool starts another (64 at most; the extra ones end after 5 s idle).
/// Keep callbacks short all the same: each blocked one holds a thread. `mqttc_token_wait` inside a
/// callback of the same client is refused with MQTTC_ERR_IN_CALLBACK, as without a pool.
///
/// A handle like `mqttc_client *`, with the same rules: never dereferenced, safe to use from any
/// thread at the same time as its free, refused with MQTTC_ERR_INVALID_HANDLE once freed.
pub struct mqttc_pool {
    _handle: [u8; 0],
}

/// Every live pool, by handle (see [`super::handles`]).
static POOLS: Handles<Pool> = Handles::new(3);

/// The pool a handle from C names, held until the caller drops it.
pub(crate) fn pool_arg(p: *const mqttc_pool, name: &str) -> Result<Arc<Pool>, Failure> {
    POOLS.arg(p, name, "pool")
}

/// Makes a pool of `threads` network threads and `threads` callback threads; 0 means one of each
/// per core. On success `*out` receives it, which the caller releases with `mqttc_pool_free`; on
/// failure `*out` is not written.
///
/// Errors: MQTTC_ERR_NULL (`out`), MQTTC_ERR_INVALID_ARGUMENT (over 1024 threads),
/// MQTTC_ERR_RESOURCE (no thread, or too many pools).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_pool_new(threads: u32, out: *mut *mut mqttc_pool) -> mqttc_status {
    guard(|| {
        if out.is_null() {
            return Err(Failure::new(mqttc_status::MQTTC_ERR_NULL, "out is NULL"));
        }
        if threads > 1024 {
            return Err(Failure::new(
                mqttc_status::MQTTC_ERR_INVALID_ARGUMENT,
                format!("threads is {threads}; a pool has at most 1024 (0: one per core)"),
            ));
        }
        let pool = Pool::new(threads as usize)
            .map_err(|e| Failure::new(mqttc_status::MQTTC_ERR_RESOURCE, format!("cannot make the pool: {e}")))?;
        let handle = POOLS.insert(pool).ok_or_else(|| {
            Failure::new(
                mqttc_status::MQTTC_ERR_RESOURCE,
                "too many pools: free some (about a million can be live at once)",
            )
        })?;
        // SAFETY: checked non-NULL above; writable per the contract.
        unsafe { out.write(std::ptr::without_provenance_mut(handle)) };
        Ok(())
    })
}

/// Releases the caller's handle. The pool's threads end once the clients made with it are freed
/// too. NULL is a no-op; a freed handle is refused (MQTTC_ERR_INVALID_HANDLE in
/// `mqttc_last_error`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_pool_free(pool: *mut mqttc_pool) {
    let _ = guard(|| {
        if !pool.is_null() && POOLS.remove(pool.addr()).is_none() {
            pool_arg(pool, "pool")?; // says why
        }
        Ok(())
    });
}
