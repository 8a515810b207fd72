//! [`EventFd`]: a descriptor that is readable exactly while raised.
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use super::fd;

/// A descriptor that is readable exactly while raised (level-triggered, for `select`, `poll`,
/// epoll and libuv alike): an eventfd, or a pipe where there is none (see the module `sys`).
pub struct EventFd {
    read: OwnedFd,
    /// The pipe's other end; `None` for an eventfd, which is written where it is read.
    write: Option<OwnedFd>,
}

impl EventFd {
    /// A cleared one, non-blocking and closed on exec.
    pub fn new() -> io::Result<EventFd> {
        let (read, write) = super::open_event_fd()?;
        Ok(EventFd { read, write })
    }

    /// The descriptor to wait on; never read from or write to it.
    pub fn fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    fn writer(&self) -> BorrowedFd<'_> {
        self.write.as_ref().unwrap_or(&self.read).as_fd()
    }

    /// Makes the descriptor readable. To be called only while it is clear, so neither the eventfd
    /// counter nor the pipe can fill up; a failure is then impossible and not reported.
    #[inline]
    pub fn raise(&self) {
        let _ = fd::write_u64(self.writer(), 1);
    }

    /// Makes the descriptor unreadable again (reads the eventfd counter, or the pipe's bytes).
    #[inline]
    pub fn clear(&self) {
        let _ = fd::read_u64(self.read.as_fd());
    }
}
