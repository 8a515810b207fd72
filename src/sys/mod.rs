//! The system calls the library makes itself, beyond what std and tokio wrap, each behind a safe
//! function or type. With `ffi`, the only module where `unsafe` is allowed.
//!
//! Targets: the library is made for Linux. Only [`EventFd`] has a fallback elsewhere, chosen
//! here: a non-blocking pipe instead of an eventfd. The rest is Linux's own and has none: the
//! delayed-ACK timer is a timerfd, `TCP_QUICKACK`, `TCP_CONGESTION` and `TCP_DELACK_MAX_US` are
//! Linux TCP options, a send asks for `MSG_NOSIGNAL`, and a loop's epoll instance is found in
//! /proc/self/fdinfo.
mod epoll;
mod eventfd;
mod fd;
mod lock;
mod socket;
mod timer;

// The one choice between targets.
#[cfg(target_os = "linux")]
#[path = "eventfd_linux.rs"]
mod open_event_fd;
#[cfg(not(target_os = "linux"))]
#[path = "eventfd_pipe.rs"]
mod open_event_fd;

use open_event_fd::open_event_fd;

pub use epoll::epoll_watching;
pub use eventfd::EventFd;
pub use lock::{try_lock_exclusive, unlock};
pub use socket::{TcpOption, send_vectored_nonblocking, set_tcp_option, set_tcp_option_bytes};
#[cfg(test)]
pub use socket::{readable_now, tcp_option, tcp_option_bytes};
pub use timer::TimerFd;
