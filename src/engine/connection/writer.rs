//! The connection's socket writer: what is queued for the broker, and every trick of getting it out.
//!
//! The serve loop only encodes packets here, lets the writer flush, and says when a read owes the
//! broker an ACK. Behind that: the socket offered to callers' threads while the connection is idle
//! (see [`Direct`]), the write made at once, without a turn of the loop, on a plain socket, the
//! delayed TCP ACK (see [`DelayedAck`]), the flush a TLS or WebSocket writer needs once the queue
//! is empty, and the high-water mark that stops taking commands while the socket is the bottleneck.
use std::future::Future;
use std::io::ErrorKind;
use std::os::fd::RawFd;

use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use super::aliases::OutboundAliases;
use super::handshake::{self, StreamKind};
use super::input::Received;
use crate::codec::{Disconnect, Packet, Publish, ReasonCode, Version};
use crate::engine::direct::{Commands, Direct};
use crate::engine::timer::timeout_at;
use crate::engine::transport::{ACK_DELAY, DelayedAck, STREAM_ACK_DELAY, Writer};
use crate::engine::write_queue::WriteQueue;
use crate::engine::{Error, Token};

/// Stop taking commands while this much is waiting to be written: the socket is the bottleneck and
/// encoding more would only grow memory.
const WRITE_HIGH_WATER: usize = 1 << 20;

/// The network task's side of [`Direct`]: whether its socket is on offer to callers.
struct Offer<'a> {
    direct: &'a Direct,
    offered: bool,
}

impl Offer<'_> {
    /// Offers `fd` unless it already is (see [`Direct::offer`]).
    fn make(&mut self, fd: RawFd, max_packet_size: Option<usize>, commands: &Commands) {
        if !self.offered {
            self.offered = self.direct.offer(fd, max_packet_size, commands);
        }
    }

    /// Takes the socket back (see [`Direct::withdraw`]) before anything is written, or the
    /// connection ends with publishes a caller left half written.
    fn withdraw(&mut self, wbuf: &mut WriteQueue, written: &mut Vec<Token>) {
        if std::mem::take(&mut self.offered) {
            self.direct.withdraw(wbuf, written);
        }
    }
}

impl Drop for Offer<'_> {
    /// However the connection ends, callers stop writing before its socket is closed (and its
    /// number perhaps reused). Every branch that ends it has withdrawn the offer already, taking
    /// over what callers left; this only makes the socket's life independent of that.
    fn drop(&mut self) {
        let mut rest = WriteQueue::default();
        let mut tokens = Vec::new();
        self.withdraw(&mut rest, &mut tokens);
        // Unwinding from a caught panic may leave a publish half written; asserting then would
        // turn a contained panic into an abort.
        debug_assert!(
            tokens.is_empty() || std::thread::panicking(),
            "publishes left half written when the connection ended"
        );
    }
}

/// The writing half of a live connection and the bytes queued for it.
pub(super) struct SocketWriter<'a> {
    // Fields drop in order: the offer and the ACK timer go before the socket they use.
    offer: Offer<'a>,
    ack: DelayedAck,
    wbuf: WriteQueue,
    writer: Writer,
    /// See [`crate::engine::transport::Stream::raw`].
    raw: Option<RawFd>,
    /// See [`crate::engine::transport::Stream::buffered`].
    buffered: bool,
    /// Bytes the writer accepted may wait in it for a flush.
    unflushed: bool,
    /// The store failed to write records that packets queued since its last successful commit
    /// depend on (a packet id, a PUBREC received): those packets wait, so that a crash meanwhile
    /// cannot leave the broker with a state the store does not know (a QoS 2 message delivered
    /// twice). Only the first `cleared` bytes, queued before that commit, may leave.
    holding: bool,
    cleared: usize,
    /// The topic aliases of this connection's publishes (MQTT 5).
    aliases: OutboundAliases,
}

impl<'a> SocketWriter<'a> {
    /// The writing half of a new connection (see [`handshake::Link`] for the rest), with what it
    /// has queued and the topic aliases its publishes may use.
    pub(super) fn new(
        writer: Writer,
        wbuf: WriteQueue,
        kind: StreamKind,
        direct: &'a Direct,
        aliases: OutboundAliases,
    ) -> Self {
        SocketWriter {
            offer: Offer { direct, offered: false },
            ack: DelayedAck::new(kind.tcp),
            wbuf,
            writer,
            raw: kind.raw,
            buffered: kind.buffered,
            unflushed: false,
            holding: false,
            cleared: 0,
            aliases,
        }
    }

    /// Whether the store's last commit wrote every record noted (see [`holding`](Self::holding)).
    pub(super) fn stored(&mut self, ok: bool) {
        self.holding = !ok;
        if ok {
            self.cleared = self.wbuf.len();
        }
    }

    /// The bytes at the head of the queue that may be written.
    fn sendable(&self) -> usize {
        match self.holding {
            true => self.cleared,
            false => self.wbuf.len(),
        }
    }

    pub(super) fn version(&self) -> Version {
        self.wbuf.version
    }

    /// Nothing is queued.
    pub(super) fn is_empty(&self) -> bool {
        self.wbuf.is_empty()
    }

    pub(super) fn encode(&mut self, packet: &Packet) -> Result<(), Error> {
        self.wbuf.encode(packet).map_err(Error::Protocol)
    }

    /// Queues `publish`, with a topic alias when this connection uses them.
    pub(super) fn publish(&mut self, publish: &Publish) -> Result<(), Error> {
        let aliased = self.aliases.apply(publish, self.wbuf.version);
        self.wbuf
            .publish(aliased.as_ref().unwrap_or(publish))
            .map_err(Error::Protocol)
    }

    /// Whether the socket may take more: below the high-water mark, commands are taken.
    pub(super) fn has_room(&self) -> bool {
        self.wbuf.len() < WRITE_HIGH_WATER
    }

    /// A plain socket takes what is queued now, in one non-blocking system call, rather than after
    /// another turn of the serve loop for the write branch: a turn costs more than the write. What
    /// the socket does not take is left to that branch. Returns the bytes taken (0 for none).
    pub(super) fn send_now(&mut self) -> Result<usize, Error> {
        let Some(fd) = self.raw else { return Ok(0) };
        let limit = self.sendable();
        if limit == 0 {
            return Ok(0);
        }
        debug_assert!(!self.offer.offered, "the socket is offered only with nothing queued");
        match self.wbuf.send_now(fd, limit) {
            Ok(0) => Err(Error::ConnectionClosed),
            Ok(n) => Ok(n),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    /// The socket took the first `n` bytes queued: they carried any ACK owed. Returns whether the
    /// queue is empty, so that the publishes written whole are done.
    pub(super) fn wrote(&mut self, n: usize) -> bool {
        self.wbuf.advance(n);
        self.cleared = self.cleared.saturating_sub(n);
        self.ack.carried();
        self.wbuf.is_empty()
    }

    /// Whether [`waits`](Self::waits)' write is worth awaiting: bytes are queued, or a TLS or
    /// WebSocket writer holds some that wait for a flush, which is due once our own queue is empty
    /// (nothing else would push them out).
    pub(super) fn wants_write(&self) -> bool {
        self.sendable() > 0 || self.unflushed
    }

    /// Whether [`waits`](Self::waits)' ACK timer is worth awaiting.
    pub(super) fn ack_armed(&self) -> bool {
        self.ack.armed()
    }

    /// Whether the socket should not be read until the owed ACK is sent (see
    /// [`DelayedAck::holding`]).
    pub(super) fn holding_ack(&self) -> bool {
        self.ack.holding()
    }

    /// The writer's two waits, apart so that the serve loop selects on both: one write (or flush,
    /// see [`WriteQueue::write_or_flush`]), to be passed to [`after_write`](Self::after_write), and
    /// the delayed ACK's timer, which sends the ACK if still owed.
    pub(super) fn waits(
        &mut self,
    ) -> (
        impl Future<Output = std::io::Result<Option<usize>>> + '_,
        impl Future<Output = ()> + '_,
    ) {
        let limit = self.sendable();
        (self.wbuf.write_or_flush(&mut self.writer, limit), self.ack.expired())
    }

    /// What the write of [`waits`](Self::waits) did: the bytes the socket took (0 for a flush).
    pub(super) fn after_write(&mut self, r: std::io::Result<Option<usize>>) -> Result<usize, Error> {
        match r {
            Ok(Some(0)) => Err(Error::ConnectionClosed),
            Ok(Some(n)) => {
                self.unflushed = self.buffered;
                Ok(n)
            }
            Ok(None) => {
                self.unflushed = false;
                Ok(0)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A read brought `received` and queued nothing to write back: the ACK is owed while more
    /// acknowledgements are awaited (`awaits_acks`), after a SUBACK (retained messages may follow
    /// it), or in a stream of messages: see [`DelayedAck`]. Bytes queued carry the ACK
    /// themselves, and an ACK sent ahead of them would be a segment of its own.
    pub(super) fn owe_ack(&mut self, received: &Received, awaits_acks: impl FnOnce() -> bool) {
        if self.wbuf.is_empty() {
            let awaiting = awaits_acks();
            if awaiting || received.answer {
                self.ack.owe(ACK_DELAY, awaiting);
            } else if received.publishes >= 2 {
                self.ack.owe(STREAM_ACK_DELAY, true);
            }
        }
    }

    /// Nothing of our own to write and no command waiting: callers may write (see [`Direct`]).
    /// Whatever may write or end the connection first takes the socket back with
    /// [`withdraw`](Self::withdraw). Not while publishes use topic aliases, which are chosen
    /// here, in wire order.
    pub(super) fn offer_if_idle(&mut self, max_packet_size: Option<usize>, commands: &Commands) {
        if !self.aliases.active()
            && let Some(fd) = self.raw
            && self.wbuf.is_empty()
            && !self.unflushed
            && !self.holding
        {
            self.offer.make(fd, max_packet_size, commands);
        }
    }

    /// Takes the socket back from callers; the publishes they left half written join `written`.
    pub(super) fn withdraw(&mut self, written: &mut Vec<Token>) {
        let before = self.wbuf.len();
        self.offer.withdraw(&mut self.wbuf, written);
        // The rest of callers' QoS 0 publishes, which no record describes.
        self.cleared += self.wbuf.len() - before;
    }

    /// While the store fails: drops the packets that wait for it (see
    /// [`holding`](Self::holding)), so that a last write can go without them. Returns whether any
    /// were dropped.
    pub(super) fn drop_held(&mut self) -> bool {
        let dropping = self.holding && self.cleared < self.wbuf.len();
        if dropping {
            self.wbuf.truncate(self.cleared);
        }
        dropping
    }

    /// Tells the broker why the connection closes (see [`handshake::goodbye`]). Returns whether
    /// everything queued went out.
    pub(super) async fn goodbye(&mut self, reason: ReasonCode) -> bool {
        handshake::goodbye(&mut self.writer, &mut self.wbuf, reason).await
    }

    /// Writes everything queued, then `disconnect`, and shuts the stream down, giving up at
    /// `deadline`.
    pub(super) async fn finish(mut self, disconnect: Disconnect, deadline: Instant) -> Result<(), Error> {
        let write = async {
            self.encode(&Packet::Disconnect(disconnect))?;
            self.wbuf.write_all(&mut self.writer).await?;
            self.writer.shutdown().await?;
            Ok::<(), Error>(())
        };
        timeout_at(deadline, std::pin::pin!(write))
            .await
            .unwrap_or(Err(Error::Io("the broker stopped reading".into())))
    }
}
