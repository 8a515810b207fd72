//! Reads and writes of the 8-byte counters of descriptors the library owns.
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Takes ownership of `fd`, the result of a call that opens a descriptor, or reports its error.
///
/// # Safety
/// `fd`, when not negative, is a descriptor that nothing else owns or closes.
pub(super) unsafe fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: open, and owned by no one else (the caller's promise).
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The outcome of a system call that reports a failure in `errno`.
#[inline]
pub(super) fn errno_if(failed: bool) -> io::Result<()> {
    if failed {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Writes the counter value `value` (8 bytes) to `fd`.
#[inline]
pub(super) fn write_u64(fd: BorrowedFd<'_>, value: u64) -> io::Result<()> {
    // SAFETY: writes 8 bytes from a live local to a descriptor the borrow keeps open.
    let n = unsafe { libc::write(fd.as_raw_fd(), (&raw const value).cast(), size_of::<u64>()) };
    errno_if(n < 0)
}

/// Reads at most 8 bytes (an eventfd's or timerfd's counter, a pipe's byte) from `fd` and drops
/// them; `WouldBlock` when there are none and `fd` is non-blocking.
#[inline]
pub(super) fn read_u64(fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut buf = [0u8; 8];
    // SAFETY: reads at most 8 bytes into a live local, from a descriptor the borrow keeps open.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    errno_if(n < 0)
}
