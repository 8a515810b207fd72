//! Reused buffers for the library's copies of large payloads.
//!
//! A publish copies its payload once, on the caller's thread, and the network thread frees that
//! copy once it is written. With payloads of tens of KiB, malloc serves each copy from fresh or
//! just-trimmed heap, so every one pays page faults (the kernel zeroing the pages) on top of the
//! copy: as much again as the copy itself. Buffers that come back here are handed out again, warm.
use std::collections::TryReserveError;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::write_queue::DETACH_PAYLOAD;

/// Idle buffers kept, in bytes of capacity: enough for the network thread's largest write to come
/// back and be refilled, small enough not to matter once large publishes stop.
const KEPT_BYTES: usize = 4 << 20;

#[derive(Default)]
pub(crate) struct PayloadPool {
    free: Arc<Mutex<Idle>>,
}

#[derive(Default)]
struct Idle {
    buffers: Vec<Vec<u8>>,
    bytes: usize,
}

impl PayloadPool {
    /// The library's copy of `data`: from a reused buffer when it is large. A large payload whose
    /// memory cannot be had is an error, not an abort: its size comes from the application.
    pub fn copy(&self, data: &[u8]) -> Result<Bytes, TryReserveError> {
        if data.len() < DETACH_PAYLOAD {
            return Ok(Bytes::copy_from_slice(data));
        }
        let reused = {
            let mut idle = self.lock();
            // A buffer at most twice as large as needed, so one small payload does not pin a huge one.
            let fit = idle
                .buffers
                .iter()
                .rposition(|b| (data.len()..=2 * data.len()).contains(&b.capacity()));
            fit.map(|i| {
                let b = idle.buffers.swap_remove(i);
                idle.bytes -= b.capacity();
                b
            })
        };
        let mut buf = match reused {
            Some(buf) => buf,
            None => {
                let mut buf = Vec::new();
                buf.try_reserve_exact(data.len())?;
                buf
            }
        };
        buf.clear();
        buf.extend_from_slice(data);
        Ok(Bytes::from_owner(Pooled {
            buf,
            home: self.free.clone(),
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Idle> {
        self.free.lock().unwrap_or_else(|p| p.into_inner())
    }

    #[cfg(test)]
    fn idle(&self) -> (usize, usize) {
        let idle = self.lock();
        (idle.buffers.len(), idle.bytes)
    }
}

/// A payload buffer that goes back to its pool (while the pool has room) when the last `Bytes`
/// referring to it is dropped.
struct Pooled {
    buf: Vec<u8>,
    home: Arc<Mutex<Idle>>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        let mut idle = self.home.lock().unwrap_or_else(|p| p.into_inner());
        if idle.bytes + buf.capacity() <= KEPT_BYTES {
            idle.bytes += buf.capacity();
            idle.buffers.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_payloads_are_plain_copies() {
        let pool = PayloadPool::default();
        let b = pool.copy(b"hello").unwrap();
        assert_eq!(&b[..], b"hello");
        drop(b);
        assert_eq!(pool.idle(), (0, 0));
    }

    #[test]
    fn a_large_payloads_buffer_comes_back_and_is_reused() {
        let pool = PayloadPool::default();
        let data = vec![7u8; 64 * 1024];
        let first = pool.copy(&data).unwrap();
        assert_eq!(first[..], data[..]);
        let addr = first.as_ptr();
        let clone = first.clone();
        drop(first);
        assert_eq!(pool.idle().0, 0, "still referenced by the clone");
        drop(clone);
        assert_eq!(pool.idle(), (1, 64 * 1024));
        let other = vec![9u8; 60 * 1024];
        let second = pool.copy(&other).unwrap();
        assert_eq!(second.as_ptr(), addr, "the same buffer, reused");
        assert_eq!(second[..], other[..]);
        assert_eq!(pool.idle(), (0, 0));
    }

    #[test]
    fn a_buffer_far_larger_than_needed_is_not_used() {
        let pool = PayloadPool::default();
        drop(pool.copy(&vec![1u8; 1 << 20]).unwrap());
        let small = pool.copy(&vec![2u8; DETACH_PAYLOAD]).unwrap();
        assert_eq!(small.len(), DETACH_PAYLOAD);
        assert_eq!(pool.idle(), (1, 1 << 20), "the 1 MiB buffer stays idle");
    }

    #[test]
    fn what_is_kept_idle_is_bounded() {
        let pool = PayloadPool::default();
        let live: Vec<Bytes> = (0..200).map(|_| pool.copy(&vec![3u8; 64 * 1024]).unwrap()).collect();
        drop(live);
        let (count, bytes) = pool.idle();
        assert!(bytes <= KEPT_BYTES, "{bytes}");
        assert_eq!(count, KEPT_BYTES / (64 * 1024));
    }
}
