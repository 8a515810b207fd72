//! The application-run loop: clients with no threads of their own (libmosquitto's `mosquitto_loop`).
use std::ffi::c_int;
use std::sync::Arc;
use std::time::Duration;

use super::handles::Handles;
use super::{Failure, guard, mqttc_status};
use crate::engine::Loop;

/// A loop that runs clients on the application's own thread, with no thread of the library's.
///
/// Opaque. Made by `mqttc_loop_new`, released by `mqttc_loop_free`, and given to clients through
/// `mqttc_options.run_loop`. A client made with a loop has no network or callback thread: its
/// connection advances (reads, writes, keep-alive, reconnects) and its callbacks run only while
/// some thread is inside `mqttc_loop_run`, or inside `mqttc_token_wait` on one of its tokens, which
/// runs the loop meanwhile. One thread can thus serve several clients; a request/reply round trip
/// then wakes one thread instead of three.
///
/// A handle like `mqttc_client *`, with the same rules: never dereferenced, safe to use from any
/// thread at the same time as its free, refused with MQTTC_ERR_INVALID_HANDLE once freed.
pub struct mqttc_loop {
    _handle: [u8; 0],
}

/// Every live loop, by handle (see [`super::handles`]).
static LOOPS: Handles<Loop> = Handles::new(2);

/// The loop a handle from C names, held until the caller drops it.
pub(crate) fn loop_arg(p: *const mqttc_loop, name: &str) -> Result<Arc<Loop>, Failure> {
    LOOPS.arg(p, name, "loop")
}

/// Makes a loop. On success `*out` receives it, which the caller releases with `mqttc_loop_free`;
/// on failure `*out` is not written.
///
/// Errors: MQTTC_ERR_NULL (`out`), MQTTC_ERR_RESOURCE (no runtime, or too many loops).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_loop_new(out: *mut *mut mqttc_loop) -> mqttc_status {
    guard(|| {
        if out.is_null() {
            return Err(Failure::new(mqttc_status::MQTTC_ERR_NULL, "out is NULL"));
        }
        let inner = Loop::new()
            .map_err(|e| Failure::new(mqttc_status::MQTTC_ERR_RESOURCE, format!("cannot make the loop: {e}")))?;
        let handle = LOOPS.insert(inner).ok_or_else(|| {
            Failure::new(
                mqttc_status::MQTTC_ERR_RESOURCE,
                "too many loops: free some (about a million can be live at once)",
            )
        })?;
        // SAFETY: checked non-NULL above; writable per the contract.
        unsafe { out.write(std::ptr::without_provenance_mut(handle)) };
        Ok(())
    })
}

/// Runs the loop's clients on the calling thread: reads and writes what their connections have,
/// runs their callbacks, and returns once something has reached the application (a message or
/// connection callback ran, a token completed) or after `timeout_ms` milliseconds. 0 handles what
/// is ready without waiting. Call it again and again, as with `mosquitto_loop`: between calls the
/// clients stand still, keep-alive included (a QoS 0 publish made while a connection is idle is
/// still written at once, by `mqttc_publish` itself).
///
/// Not inside a callback the loop runs, nor one running on a client's network thread
/// (`inline_callbacks`): those threads already run an event loop. Several threads may call it at
/// once; one of them at a time does the work.
///
/// Errors: MQTTC_ERR_NULL, MQTTC_ERR_INVALID_HANDLE (the loop was freed), MQTTC_ERR_IN_CALLBACK
/// (inside a callback the loop runs, or on a client's network thread).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_loop_run(run_loop: *const mqttc_loop, timeout_ms: u32) -> mqttc_status {
    guard(|| {
        // Held for the run: a callback may free the handle meanwhile.
        let lp = loop_arg(run_loop, "run_loop")?;
        lp.run(Duration::from_millis(timeout_ms.into())).map_err(|_| {
            Failure::new(
                mqttc_status::MQTTC_ERR_IN_CALLBACK,
                "mqttc_loop_run called inside a callback, on a thread already running an event loop",
            )
        })
    })
}

/// Releases the caller's handle. Clients made with the loop keep it alive until they are freed
/// (so the order of the frees does not matter); the handle itself is refused from now on
/// (MQTTC_ERR_INVALID_HANDLE). NULL is a no-op.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_loop_free(run_loop: *mut mqttc_loop) {
    let _ = guard(|| {
        if run_loop.is_null() {
            return Ok(());
        }
        if LOOPS.remove(run_loop.addr()).is_none() {
            loop_arg(run_loop, "run_loop")?; // says why
        }
        Ok(())
    });
}

/// A descriptor for the application's own event loop (poll, epoll, libuv's `uv_poll`), as
/// libmosquitto's `mosquitto_socket`: it is readable while the loop has something to handle (a
/// socket of one of its clients is ready, or a call on another thread gave it work). Wait on it
/// for reading, for at most `mqttc_loop_timeout_ms`, then call `mqttc_loop_run(run_loop, 0)`,
/// which handles everything ready and returns without waiting; in between the library blocks
/// nowhere. Only wait for readability; never read it, write it or close it.
///
/// `*fd` is owned by the loop and stays the same for every call; it is valid as long as the loop
/// handle, or a client made with it, is alive. Once this has been called, calls on other threads
/// that give the loop work (a publish, a subscribe) signal the descriptor, as tokio does for its
/// own threads.
///
/// Errors: MQTTC_ERR_NULL (`run_loop` or `fd` is NULL), MQTTC_ERR_INVALID_HANDLE (`run_loop`
/// was freed or is not a loop), MQTTC_ERR_RESOURCE (the descriptor could not be found or copied:
/// /proc not mounted, or no descriptors left), MQTTC_ERR_PANIC (an internal error).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_loop_fd(run_loop: *const mqttc_loop, fd: *mut c_int) -> mqttc_status {
    // SAFETY: per this function's contract.
    unsafe {
        loop_query(run_loop, fd, "fd", |lp| {
            lp.fd().map_err(|e| {
                Failure::new(
                    mqttc_status::MQTTC_ERR_RESOURCE,
                    format!("cannot find the loop's epoll descriptor: {e}"),
                )
            })
        })
    }
}

/// Writes what `answer` says of the loop a handle from C names into `out` (`name` in errors).
///
/// # Safety
/// `out` is NULL or writable.
unsafe fn loop_query<T>(
    run_loop: *const mqttc_loop,
    out: *mut T,
    name: &str,
    answer: impl FnOnce(&Loop) -> Result<T, Failure>,
) -> mqttc_status {
    guard(|| {
        let lp = loop_arg(run_loop, "run_loop")?;
        if out.is_null() {
            return Err(Failure::new(mqttc_status::MQTTC_ERR_NULL, format!("{name} is NULL")));
        }
        let value = answer(&lp)?;
        // SAFETY: checked non-NULL above; writable per the contract.
        unsafe { out.write(value) };
        Ok(())
    })
}

/// How long, in milliseconds, the application may wait on `mqttc_loop_fd` before it must call
/// `mqttc_loop_run(run_loop, 0)` even if the descriptor stays quiet, for the loop's timers: a
/// keep-alive ping, a reconnect after its backoff, a connect or disconnect timeout, the release
/// of a connection's read buffer 10 ms after its last read (as libmosquitto's
/// `mosquitto_loop_misc`, but saying when). 0 when the loop has work now; -1 when no timer runs,
/// so the wait may be endless, as poll() takes it. Ask again after each run: every call may
/// change it.
///
/// `*timeout_ms` is written on success; nothing is retained.
///
/// Errors: MQTTC_ERR_NULL (`run_loop` or `timeout_ms` is NULL), MQTTC_ERR_INVALID_HANDLE
/// (`run_loop` was freed or is not a loop), MQTTC_ERR_PANIC (an internal error).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mqttc_loop_timeout_ms(run_loop: *const mqttc_loop, timeout_ms: *mut c_int) -> mqttc_status {
    // SAFETY: per this function's contract.
    unsafe {
        loop_query(run_loop, timeout_ms, "timeout_ms", |lp| {
            Ok(lp.timeout().map_or(-1, |t| {
                // Rounded up: woken earlier, the application would find the timer not yet due.
                c_int::try_from(t.as_nanos().div_ceil(1_000_000)).unwrap_or(c_int::MAX)
            }))
        })
    }
}
