//! Socket calls: the non-blocking vectored send and the TCP options.
//!
//! They take the caller's `RawFd`: a stream the caller holds keeps it open and the same socket.
//! They stay memory-safe whatever the number: the kernel checks the descriptor, and what they
//! pass it is valid for the call.
use std::io::{self, IoSlice};
use std::os::fd::RawFd;

use super::fd;

/// One non-blocking write of `slices` to the socket `fd`, from any thread: what it took, or
/// `WouldBlock` when its buffer is full. A peer that is gone is an error, never a SIGPIPE that
/// would end the application.
#[inline]
pub fn send_vectored_nonblocking(fd: RawFd, slices: &[IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: an all-zero msghdr is valid (no address, no control data); `IoSlice` is ABI
    // compatible with `iovec` on Unix, and `slices` outlives the call.
    let sent = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = slices.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = slices.len() as _;
        libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
    };
    usize::try_from(sent).map_err(|_| io::Error::last_os_error())
}

/// The TCP-level (`IPPROTO_TCP`) socket options the library uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpOption {
    /// `TCP_QUICKACK`: send the ACK held back now.
    QuickAck,
    /// `TCP_DELACK_MAX_US` (Linux 6.15 and later): the longest the kernel delays an ACK, in us.
    DelayedAckMax,
    /// `TCP_CONGESTION`: the congestion controller, by name.
    Congestion,
}

impl TcpOption {
    fn code(self) -> libc::c_int {
        match self {
            TcpOption::QuickAck => libc::TCP_QUICKACK,
            // `libc` does not name it yet.
            TcpOption::DelayedAckMax => 46,
            TcpOption::Congestion => libc::TCP_CONGESTION,
        }
    }
}

/// Sets an integer TCP option on the socket `fd`.
#[inline]
pub fn set_tcp_option(fd: RawFd, option: TcpOption, value: libc::c_int) -> io::Result<()> {
    set_tcp_option_bytes(fd, option, &value.to_ne_bytes())
}

/// Sets a TCP option whose value is a byte string (a name) on the socket `fd`.
#[inline]
pub fn set_tcp_option_bytes(fd: RawFd, option: TcpOption, value: &[u8]) -> io::Result<()> {
    // SAFETY: the option value and its length are valid for the call.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            option.code(),
            value.as_ptr().cast(),
            value.len() as libc::socklen_t,
        )
    };
    fd::errno_if(r < 0)
}

/// An integer TCP option of the socket `fd`.
#[cfg(test)]
pub fn tcp_option(fd: RawFd, option: TcpOption) -> io::Result<libc::c_int> {
    let mut value = [0u8; size_of::<libc::c_int>()];
    tcp_option_bytes(fd, option, &mut value)?;
    Ok(libc::c_int::from_ne_bytes(value))
}

/// Reads a TCP option of the socket `fd` into `value`: how many bytes it took.
#[cfg(test)]
pub fn tcp_option_bytes(fd: RawFd, option: TcpOption, value: &mut [u8]) -> io::Result<usize> {
    let mut len = value.len() as libc::socklen_t;
    // SAFETY: `value` and `len` are valid for the call, and `len` is `value`'s size.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            option.code(),
            value.as_mut_ptr().cast(),
            &mut len,
        )
    };
    fd::errno_if(r < 0)?;
    Ok(len as usize)
}

/// Whether the descriptor `fd` is readable now (a `poll` that does not wait).
#[cfg(test)]
pub fn readable_now(fd: RawFd) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    unsafe { libc::poll(&mut p, 1, 0) == 1 }
}
