//! An advisory lock on a whole file, held until unlocked or the file is closed.
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// Takes an exclusive lock on `file` without waiting: Ok(false) when another open file (in this
/// process or another) holds it. The lock goes with the last descriptor of that open file.
pub fn try_lock_exclusive(file: &File) -> io::Result<bool> {
    // SAFETY: flock only reads the descriptor, which `file` keeps open for the call.
    let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EWOULDBLOCK) => Ok(false),
        _ => Err(e),
    }
}

/// Releases the lock `file` holds, now: also for any copy of its descriptor, such as one a child
/// process forked meanwhile has not closed yet (which would otherwise keep the lock).
pub fn unlock(file: &File) -> io::Result<()> {
    // SAFETY: as above.
    let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
