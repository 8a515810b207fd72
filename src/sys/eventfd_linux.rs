//! The descriptor of an [`EventFd`](super::EventFd) on Linux: an eventfd.
use std::io;
use std::os::fd::OwnedFd;

use super::fd;

/// A new eventfd, cleared, non-blocking and closed on exec; it has no separate write end.
pub(super) fn open_event_fd() -> io::Result<(OwnedFd, Option<OwnedFd>)> {
    // SAFETY: a plain system call; a descriptor it returns is new and nobody else's.
    let fd = unsafe { fd::owned(libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK))? };
    Ok((fd, None))
}
