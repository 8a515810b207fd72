//! [`TimerFd`]: a timer finer than tokio's, which counts whole milliseconds.
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::task::Poll;
use std::time::Duration;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::fd;

/// A one-shot timer on the monotonic clock: a non-blocking timerfd, registered with the tokio
/// reactor of the runtime it was made on.
pub struct TimerFd {
    fd: AsyncFd<OwnedFd>,
}

impl TimerFd {
    /// A timer that is not running. Must be called on a tokio runtime.
    pub fn new() -> io::Result<TimerFd> {
        // SAFETY: a plain system call; a descriptor it returns is new and nobody else's.
        let fd = unsafe {
            fd::owned(libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            ))?
        };
        // SAFETY: the `OwnedFd` keeps the descriptor open and the same file for as long as the
        // `AsyncFd` holding it lives, and nothing else can close it.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE)? };
        Ok(TimerFd { fd })
    }

    /// Starts the timer to run out once, `delay` from now (a running one starts over).
    #[inline]
    pub fn arm(&self, delay: Duration) -> io::Result<()> {
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec {
                tv_sec: delay.as_secs() as libc::time_t,
                tv_nsec: delay.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: `fd` is an open timerfd; `spec` is valid for the call, and the old value is
        // not asked for.
        let r = unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        fd::errno_if(r < 0)
    }

    /// Waits for the timer to run out (forever if it is not running). An error: the reactor is
    /// gone with the runtime. Polled rather than an `async fn` on `readable()`, whose waiter would
    /// sit in the state of every connection's serve loop, idle or not.
    pub fn expired(&self) -> impl Future<Output = io::Result<()>> + '_ {
        std::future::poll_fn(move |cx| {
            loop {
                let mut ready = std::task::ready!(self.fd.poll_read_ready(cx))?;
                let read = ready.try_io(|fd| fd::read_u64(fd.get_ref().as_fd()));
                // Ok: read, the timerfd stays unreadable until it is armed and runs out again,
                // which the reactor reports anew, so no second read is needed to learn that. A
                // failure other than "not yet" (none is known for a timerfd) counts as the timer
                // having run out too, rather than spinning on a readiness that would never clear.
                if read.is_ok() {
                    ready.clear_ready();
                    return Poll::Ready(Ok(()));
                }
            }
        })
    }
}
