//! The bytes a connection has yet to write, in wire order, without copying large payloads.
//!
//! Packets are encoded into one growing buffer (`tail`), so a burst of small packets goes out in
//! one write. A large PUBLISH payload is not copied behind its header: the bytes encoded so far
//! become a frame of their own, the payload (a reference to the application's copy) the next,
//! and the socket gets them together in one vectored write. That keeps a 1 MiB publish at the
//! one copy the library makes when the application hands it over.
use std::collections::VecDeque;
use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::AsyncWrite;

use crate::codec::{CodecError, Packet, Publish, Version};

/// Payloads at least this large are written from where they are. Below it, copying into the
/// write buffer is cheaper than an extra I/O vector entry (and frame bookkeeping) per packet.
pub(super) const DETACH_PAYLOAD: usize = 16 * 1024;

/// I/O vector entries per write; Linux accepts 1024, but a handful covers many large payloads.
const MAX_SLICES: usize = 32;

#[derive(Default)]
pub(super) struct WriteQueue {
    /// The protocol packets are encoded in.
    pub(super) version: Version,
    /// Whole frames, written before `tail`.
    frames: VecDeque<Bytes>,
    frames_len: usize,
    tail: BytesMut,
}

impl WriteQueue {
    pub(super) fn new(version: Version) -> Self {
        WriteQueue {
            version,
            ..WriteQueue::default()
        }
    }

    pub(super) fn len(&self) -> usize {
        self.frames_len + self.tail.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `packet`; nothing is appended on error.
    pub(super) fn encode(&mut self, packet: &Packet) -> Result<(), CodecError> {
        match packet {
            Packet::Publish(p) => self.publish(p),
            _ => packet.encode(&mut self.tail, self.version),
        }
    }

    /// Appends `publish` (borrowed: the session keeps its in-flight copy); nothing on error.
    pub(super) fn publish(&mut self, publish: &Publish) -> Result<(), CodecError> {
        if publish.payload.len() < DETACH_PAYLOAD {
            return publish.encode(&mut self.tail, self.version);
        }
        publish.encode_head(&mut self.tail, self.version)?;
        let head = self.tail.split().freeze();
        self.push_frame(head);
        self.push_frame(publish.payload.clone());
        Ok(())
    }

    fn push_frame(&mut self, frame: Bytes) {
        self.frames_len += frame.len();
        self.frames.push_back(frame);
    }

    /// One write of as much as the socket takes of the first `limit` bytes; ready with what it
    /// took (0: the peer is gone). A poll, not an `async fn`: the I/O vector is made again on
    /// each poll rather than kept across the wait, where every idle connection's state would
    /// hold its room.
    fn poll_write_to<W: AsyncWrite + Unpin + ?Sized>(
        &self,
        cx: &mut Context<'_>,
        writer: &mut W,
        limit: usize,
    ) -> Poll<std::io::Result<usize>> {
        let writer = Pin::new(writer);
        if self.frames.is_empty() {
            return writer.poll_write(cx, &self.tail[..self.tail.len().min(limit)]);
        }
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let n = self.slices(&mut slices, limit);
        writer.poll_write_vectored(cx, &slices[..n])
    }

    /// [`WriteQueue::poll_write_to`] on a caller's thread: one non-blocking write to the socket `fd`.
    pub(super) fn send_now(&self, fd: std::os::fd::RawFd, limit: usize) -> std::io::Result<usize> {
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let n = self.slices(&mut slices, limit);
        super::transport::send_now(fd, &slices[..n])
    }

    /// Fills `slices` with the first `limit` queued bytes in wire order, as many chunks as fit;
    /// returns how many.
    fn slices<'a>(&'a self, slices: &mut [IoSlice<'a>; MAX_SLICES], mut limit: usize) -> usize {
        let chunks = self.frames.iter().map(|f| &f[..]).chain(Some(&self.tail[..]));
        let mut n = 0;
        for (slot, chunk) in slices.iter_mut().zip(chunks.filter(|c| !c.is_empty())) {
            if limit == 0 {
                break;
            }
            let chunk = &chunk[..chunk.len().min(limit)];
            limit -= chunk.len();
            *slot = IoSlice::new(chunk);
            n += 1;
        }
        n
    }

    /// One write of the first `limit` bytes when any are queued (`Some(bytes taken)`), else a
    /// flush of the writer (`None`).
    pub(super) fn write_or_flush<'a, W: AsyncWrite + Unpin + ?Sized>(
        &'a self,
        writer: &'a mut W,
        limit: usize,
    ) -> impl Future<Output = std::io::Result<Option<usize>>> + 'a {
        std::future::poll_fn(move |cx| match self.is_empty() || limit == 0 {
            true => Pin::new(&mut *writer).poll_flush(cx).map_ok(|()| None),
            false => self.poll_write_to(cx, writer, limit).map_ok(Some),
        })
    }

    /// Drops what is queued past the first `len` bytes, which must end a packet.
    pub(super) fn truncate(&mut self, len: usize) {
        if len >= self.frames_len {
            self.tail.truncate(len - self.frames_len);
            return;
        }
        self.tail.clear();
        while let Some(back) = self.frames.back_mut() {
            let start = self.frames_len - back.len();
            if start < len {
                back.truncate(len - start);
                self.frames_len = len;
                return;
            }
            self.frames_len = start;
            self.frames.pop_back();
        }
    }

    /// Drops the first `n` bytes, which were written.
    pub(super) fn advance(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.frames.front_mut() else {
                self.tail.advance(n);
                return;
            };
            let step = n.min(front.len());
            front.advance(step);
            self.frames_len -= step;
            n -= step;
            if front.is_empty() {
                self.frames.pop_front();
            }
        }
    }

    /// Writes everything (the DISCONNECT path, and the CONNECT).
    pub(super) async fn write_all<W: AsyncWrite + Unpin + ?Sized>(&mut self, writer: &mut W) -> std::io::Result<()> {
        while !self.is_empty() {
            match std::future::poll_fn(|cx| self.poll_write_to(cx, writer, usize::MAX)).await? {
                0 => return Err(std::io::ErrorKind::WriteZero.into()),
                n => self.advance(n),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{MqttStr, Properties, QoS};

    fn publish(qos: QoS, pkid: u16, payload: Bytes) -> Publish {
        Publish {
            dup: false,
            qos,
            retain: false,
            topic: MqttStr::new("t/x").unwrap(),
            pkid,
            properties: Properties::new(),
            payload,
        }
    }

    /// A writer that takes at most `chunk` bytes per call, so frames are split mid-way.
    struct Trickle {
        out: Vec<u8>,
        chunk: usize,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            let n = buf.len().min(self.chunk);
            self.out.extend_from_slice(&buf[..n]);
            std::task::Poll::Ready(Ok(n))
        }

        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn large_payloads_are_referenced_and_the_wire_order_is_kept() {
        let big = Bytes::from(vec![0xB1; DETACH_PAYLOAD]);
        let packets = [
            Packet::PubAck(crate::codec::Ack::new(1)),
            Packet::Publish(publish(QoS::AtLeastOnce, 2, big.clone())),
            Packet::Publish(publish(QoS::AtMostOnce, 0, Bytes::from_static(b"small"))),
            Packet::Publish(publish(QoS::ExactlyOnce, 3, Bytes::from(vec![0xB2; 100_000]))),
            Packet::PingReq,
        ];
        let mut want = BytesMut::new();
        let mut queue = WriteQueue::default();
        for p in &packets {
            p.encode(&mut want, Version::V311).unwrap();
            queue.encode(p).unwrap();
        }
        assert_eq!(queue.len(), want.len());
        assert!(
            queue.frames.iter().any(|f| f.as_ptr() == big.as_ptr()),
            "the large payload is the caller's buffer, not a copy"
        );
        for chunk in [1, 7, 4096, usize::MAX] {
            let mut q = WriteQueue::default();
            packets.iter().for_each(|p| q.encode(p).unwrap());
            let mut w = Trickle { out: Vec::new(), chunk };
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            rt.block_on(q.write_all(&mut w)).unwrap();
            assert!(q.is_empty());
            assert_eq!(w.out, &want[..], "chunk {chunk}");
        }
    }

    /// Only the bytes before a limit leave, wherever it falls among frames and the tail; what is
    /// cut past a packet's end leaves the packets before it whole.
    #[test]
    fn writes_stop_at_the_limit_and_truncation_keeps_whole_packets() {
        let packets = [
            Packet::PubAck(crate::codec::Ack::new(1)),
            Packet::Publish(publish(QoS::AtLeastOnce, 2, Bytes::from(vec![0xB1; DETACH_PAYLOAD]))),
            Packet::PingReq,
            Packet::Publish(publish(
                QoS::ExactlyOnce,
                3,
                Bytes::from(vec![0xB2; 2 * DETACH_PAYLOAD]),
            )),
            Packet::PubAck(crate::codec::Ack::new(4)),
        ];
        let mut want = BytesMut::new();
        let mut ends = Vec::new();
        for p in &packets {
            p.encode(&mut want, Version::V311).unwrap();
            ends.push(want.len());
        }
        let queue = || {
            let mut q = WriteQueue::default();
            packets.iter().for_each(|p| q.encode(p).unwrap());
            q
        };
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        for limit in [1, ends[0], ends[1] - 1, ends[2], ends[3] + 1, want.len()] {
            let mut q = queue();
            let mut w = Trickle {
                out: Vec::new(),
                chunk: 3000,
            };
            let mut left = limit;
            while left > 0 {
                let taken = rt.block_on(q.write_or_flush(&mut w, left)).unwrap();
                let n = taken.expect("a write, not a flush, while bytes may go");
                q.advance(n);
                left -= n;
            }
            assert_eq!(w.out, &want[..limit], "limit {limit}");
            assert_eq!(
                rt.block_on(q.write_or_flush(&mut w, 0)).unwrap(),
                None,
                "nothing may go: a flush"
            );
        }
        for end in std::iter::once(0).chain(ends.iter().copied()) {
            let mut q = queue();
            q.truncate(end);
            assert_eq!(q.len(), end);
            let mut w = Trickle {
                out: Vec::new(),
                chunk: 5,
            };
            rt.block_on(q.write_all(&mut w)).unwrap();
            assert_eq!(w.out, &want[..end], "truncated at {end}");
        }
    }

    #[test]
    fn an_unencodable_packet_leaves_the_queue_as_it_was() {
        let mut queue = WriteQueue::default();
        queue.encode(&Packet::PingReq).unwrap();
        let bad = publish(QoS::AtLeastOnce, 0, Bytes::from(vec![0; DETACH_PAYLOAD]));
        assert!(queue.encode(&Packet::Publish(bad)).is_err());
        assert_eq!(queue.len(), 2);
        assert!(queue.frames.is_empty());
    }
}
