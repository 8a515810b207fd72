//! Finding the epoll instance that watches a descriptor: tokio keeps its reactor's to itself, and
//! an application that runs a loop from its own poll loop needs it (see `Loop::fd`).
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

/// A copy (closed on exec) of the one epoll instance of this process that watches `socket`: a
/// socket registered with it for the purpose, so that no other instance watches the same file.
/// Read from /proc/self/fdinfo, where an epoll descriptor lists each file it watches ("tfd:")
/// with its inode. An error when none does, or /proc is not mounted.
pub fn epoll_watching(socket: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let target = socket.as_raw_fd();
    let ino = socket_inode(target)?;
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let Some(fd) = entry?.file_name().to_str().and_then(|n| n.parse::<RawFd>().ok()) else {
            continue;
        };
        if !watches(fd, target, ino) {
            continue;
        }
        // SAFETY: borrowed only for the `dup` below, which fails cleanly (EBADF) if another
        // thread closed `fd` meanwhile.
        let Ok(copy) = unsafe { BorrowedFd::borrow_raw(fd) }.try_clone_to_owned() else {
            continue;
        };
        // The number may have been closed and reused between the look and the copy: the copy
        // is the instance only if it still watches the socket.
        if watches(copy.as_raw_fd(), target, ino) {
            return Ok(copy);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        "no epoll instance of this process watches the probe (is /proc mounted?)",
    ))
}

/// The inode of the socket `fd`, from its /proc link ("socket:[12345]").
fn socket_inode(fd: RawFd) -> io::Result<u64> {
    let link = std::fs::read_link(format!("/proc/self/fd/{fd}"))?;
    link.to_str()
        .and_then(|l| l.strip_prefix("socket:["))
        .and_then(|l| l.strip_suffix(']'))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a socket", link.display()),
            )
        })
}

/// Whether `epoll` is an epoll descriptor watching the file `target` with the inode `ino`. Its
/// fdinfo has a line "tfd: <fd> events: ... ino:<hex> ..." per file it watches; other files have
/// no "tfd:" lines.
fn watches(epoll: RawFd, target: RawFd, ino: u64) -> bool {
    let Ok(info) = std::fs::read_to_string(format!("/proc/self/fdinfo/{epoll}")) else {
        return false;
    };
    info.lines().filter_map(|l| l.strip_prefix("tfd:")).any(|rest| {
        let mut words = rest.split_whitespace();
        let same_fd = words.next().and_then(|n| n.parse::<RawFd>().ok()) == Some(target);
        let same_file = words
            .find_map(|w| w.strip_prefix("ino:"))
            .and_then(|i| u64::from_str_radix(i, 16).ok())
            == Some(ino);
        same_fd && same_file
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixDatagram;

    /// A new epoll instance watching `fd`.
    fn epoll_with(fd: RawFd) -> OwnedFd {
        // SAFETY: plain system calls on descriptors this test owns; the new one is owned here.
        unsafe {
            let ep = super::super::fd::owned(libc::epoll_create1(libc::EPOLL_CLOEXEC)).unwrap();
            let mut ev = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: 7,
            };
            assert_eq!(libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev), 0);
            ep
        }
    }

    #[test]
    fn finds_the_one_instance_watching_the_socket_among_others() {
        let (probe, _) = UnixDatagram::pair().unwrap();
        let (other, _) = UnixDatagram::pair().unwrap();
        let _decoy = epoll_with(other.as_raw_fd());
        let ep = epoll_with(probe.as_raw_fd());
        let found = epoll_watching(probe.as_fd()).unwrap();
        assert_ne!(found.as_raw_fd(), ep.as_raw_fd(), "a copy");
        assert!(watches(
            found.as_raw_fd(),
            probe.as_raw_fd(),
            socket_inode(probe.as_raw_fd()).unwrap()
        ));
        assert!(!watches(
            found.as_raw_fd(),
            other.as_raw_fd(),
            socket_inode(other.as_raw_fd()).unwrap()
        ));
    }

    #[test]
    fn a_socket_no_instance_watches_is_an_error() {
        let (lonely, _) = UnixDatagram::pair().unwrap();
        assert_eq!(
            epoll_watching(lonely.as_fd()).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }
}
