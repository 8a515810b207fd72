//! The descriptors of an [`EventFd`](super::EventFd) where there is no eventfd: a pipe, raised
//! while it holds bytes.
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use super::fd;

/// A new pipe's read and write ends, non-blocking and closed on exec.
pub(super) fn open_event_fd() -> io::Result<(OwnedFd, Option<OwnedFd>)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe writes.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the two new descriptors pipe made, which nobody else owns.
    let (read, write) = unsafe { (fd::owned(fds[0])?, fd::owned(fds[1])?) };
    for end in [&read, &write] {
        // SAFETY: flag changes on descriptors we own.
        unsafe {
            libc::fcntl(end.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK);
            libc::fcntl(end.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC);
        }
    }
    Ok((read, Some(write)))
}
