//! QoS 0 publishes written on the caller's thread while the connection is idle.
//!
//! A publish is normally a command to the network task, which wakes up to write it. On a quiet
//! connection that wakeup is most of what a lone publish costs. So while the network task has
//! nothing of its own to write and no command waiting, it *offers* its socket here (plain TCP and
//! Unix sockets only: TLS and WebSocket writers keep state of their own). A QoS 0 publish made
//! then is written at once with one non-blocking `sendmsg`, unless it comes within [`BURST_GAP`]
//! of the offer or of the last publish written this way: a burst still goes to the network task,
//! which batches it into a few large writes. What the socket does not take stays here, and the
//! network task, woken, writes it before anything else.
//!
//! Order: every command is counted before it is sent, and withdraws the offer if there is one;
//! the network task keeps an offer only while it has taken as many commands as were counted, and
//! withdraws it before writing anything itself. So a caller's publish never overtakes its own
//! earlier call, and no two threads ever write to the socket at once. A command made while
//! nothing is on offer (a burst, say) takes no lock.
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::queue::{Receiver, Sender, TryRecvError, TrySendError};
use super::signal::Signal;
use super::write_queue::WriteQueue;
use super::{Command, Outcome, Token, tokens::Tokens};
use crate::codec::{Publish, QoS, Version};

/// A QoS 0 publish made sooner than this after the previous one is taken for part of a burst and
/// left to the network task. Longer than one write system call takes, so that a steady stream
/// (hundreds of thousands a second) is batched, and shorter than any round trip through a broker,
/// so that request/response traffic is written directly.
pub(crate) const BURST_GAP: Duration = Duration::from_micros(20);

pub(crate) struct Direct {
    inner: Mutex<Inner>,
    /// Whether `inner.fd` is set, read without the lock (see `send` for why that is enough), so
    /// that a publish or command made while nothing is on offer costs no lock and no clock read.
    offered: AtomicBool,
    /// Commands counted for sending.
    sent: AtomicU64,
    /// [`BURST_GAP`], but for tests.
    burst_gap: Duration,
    /// Raised after each command is queued: what the connection's loop waits on (see
    /// [`Commands::ready`]).
    queued: Signal,
}

struct Inner {
    /// The socket on offer; `None` while the network task writes, or a command waits for it.
    fd: Option<RawFd>,
    /// The broker's Maximum Packet Size on the offered connection (MQTT 5).
    max_packet_size: Option<usize>,
    /// When the socket was offered, and when a publish was last written here.
    offered_at: Option<Instant>,
    last_written: Option<Instant>,
    /// Bytes a caller could not write whole (the socket's buffer was full): the network task
    /// writes them first. Empty while the socket is on offer.
    rest: WriteQueue,
    /// The publishes in `rest`: they complete once it is written.
    rest_tokens: Vec<Token>,
}

impl Direct {
    pub(crate) fn new(version: Version) -> Direct {
        Direct::with_burst_gap(version, BURST_GAP)
    }

    fn with_burst_gap(version: Version, burst_gap: Duration) -> Direct {
        Direct {
            inner: Mutex::new(Inner {
                fd: None,
                max_packet_size: None,
                offered_at: None,
                last_written: None,
                rest: WriteQueue::new(version),
                rest_tokens: Vec::new(),
            }),
            offered: AtomicBool::new(false),
            sent: AtomicU64::new(0),
            burst_gap,
            queued: Signal::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends `command` to the network task, withdrawing the offer first so that no later publish
    /// overtakes it.
    ///
    /// Without a lock, the count and the offer follow Dekker's pattern: here `sent` is raised and
    /// then `offered` read, and [`Direct::offer`] sets `offered` and then reads `sent`, all
    /// sequentially consistent. So either this sees the offer and withdraws it, or the offer sees
    /// this command and is not made.
    pub(crate) fn send(&self, commands: &Sender<Command>, command: Command) -> Result<(), Command> {
        self.sent.fetch_add(1, Ordering::SeqCst);
        if self.offered.load(Ordering::SeqCst) {
            self.lock().fd = None;
            self.offered.store(false, Ordering::SeqCst);
        }
        commands.try_send(command).map_err(TrySendError::into_inner)?;
        self.queued.raise();
        Ok(())
    }

    /// Writes the QoS 0 `publish` now when the socket is on offer and this is not part of a burst,
    /// returning its token (complete unless the socket took only part of it; the network task
    /// then writes the rest and completes it). Otherwise hands `publish` back for the network task.
    pub(crate) fn publish(&self, publish: Publish, tokens: &Tokens, wake: &Signal) -> Result<Token, Publish> {
        debug_assert_eq!(publish.qos, QoS::AtMostOnce);
        if !self.offered.load(Ordering::Relaxed) {
            return Err(publish);
        }
        let mut inner = self.lock();
        let now = Instant::now();
        let recent = |t: Option<Instant>| t.is_some_and(|t| now.duration_since(t) < self.burst_gap);
        let Some(fd) = inner
            .fd
            .filter(|_| !recent(inner.offered_at) && !recent(inner.last_written))
        else {
            // The command the caller sends instead withdraws the offer.
            return Err(publish);
        };
        let version = inner.rest.version;
        // Too large for this broker, or not encodable: the network task fails it as usual.
        if inner
            .max_packet_size
            .is_some_and(|max| publish.encoded_len(version) > max)
            || inner.rest.publish(&publish).is_err()
        {
            return Err(publish);
        }
        let token = tokens.issue();
        inner.last_written = Some(now);
        // A broken socket takes nothing; the network task then meets the error itself, and the
        // publish fails with the connection like any other it has yet to write.
        if let Ok(n) = inner.rest.send_now(fd, usize::MAX) {
            inner.rest.advance(n);
        }
        if inner.rest.is_empty() {
            tokens.complete(token, Ok(Outcome::default()));
        } else {
            inner.rest_tokens.push(token);
            inner.fd = None;
            self.offered.store(false, Ordering::SeqCst);
            wake.raise();
        }
        Ok(token)
    }

    /// Puts the socket `fd` on offer, unless a command counted for sending is not among those
    /// `commands` has taken yet. Returns whether it did.
    pub(crate) fn offer(&self, fd: RawFd, max_packet_size: Option<usize>, commands: &Commands) -> bool {
        let mut inner = self.lock();
        debug_assert!(inner.rest.is_empty());
        self.offered.store(true, Ordering::SeqCst);
        if self.sent.load(Ordering::SeqCst) != commands.taken {
            self.offered.store(false, Ordering::SeqCst);
            return false;
        }
        inner.fd = Some(fd);
        inner.max_packet_size = max_packet_size;
        inner.offered_at = Some(Instant::now());
        true
    }

    /// Takes the socket back before the network task writes: what a caller left half written goes
    /// into `wbuf` (empty while the socket was on offer), its tokens into `written`.
    pub(crate) fn withdraw(&self, wbuf: &mut WriteQueue, written: &mut Vec<Token>) {
        let mut inner = self.lock();
        inner.fd = None;
        self.offered.store(false, Ordering::SeqCst);
        if !inner.rest.is_empty() {
            debug_assert!(wbuf.is_empty());
            std::mem::swap(wbuf, &mut inner.rest);
            written.append(&mut inner.rest_tokens);
        }
    }
}

/// The network task's end of the command channel, counting what it takes (see [`Direct::offer`]).
pub(crate) struct Commands {
    rx: Receiver<Command>,
    taken: u64,
    /// The last take found a command, so more may wait without a raise of [`Direct::queued`] to
    /// say so (it was taken by the wait before).
    left: bool,
}

impl Commands {
    pub(crate) fn new(rx: Receiver<Command>) -> Commands {
        Commands {
            rx,
            taken: 0,
            left: true,
        }
    }

    /// Waits until commands may be waiting: one was queued since the last wait, or the last take
    /// found one (then [`try_recv`](Self::try_recv) says whether more are left). A connection's
    /// loop waits here on every turn rather than in [`recv`](Self::recv), whose every poll of the
    /// channel costs far more than a look at the signal, and comes several times a round trip. A
    /// wait can end with nothing to take (a command already taken by `recv` between connections
    /// raised it too).
    pub(crate) async fn ready(&self, direct: &Direct) {
        if !self.left {
            direct.queued.wait().await;
        }
    }

    pub(crate) async fn recv(&mut self) -> Option<Command> {
        let command = self.rx.recv().await;
        self.taken += u64::from(command.is_some());
        command
    }

    pub(crate) fn try_recv(&mut self) -> Result<Command, TryRecvError> {
        let command = self.rx.try_recv();
        self.taken += u64::from(command.is_ok());
        self.left = !matches!(command, Err(TryRecvError::Empty));
        command
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{MqttStr, Packet, Properties};
    use bytes::{Bytes, BytesMut};
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    fn publish(topic: &str, payload: Vec<u8>) -> Publish {
        Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: MqttStr::new(topic).unwrap(),
            pkid: 0,
            properties: Properties::new(),
            payload: Bytes::from(payload),
        }
    }

    fn wire(p: &Publish) -> Vec<u8> {
        let mut buf = BytesMut::new();
        Packet::Publish(p.clone()).encode(&mut buf, Version::V311).unwrap();
        buf.to_vec()
    }

    /// Tests other than the burst one treat every publish as a lone one.
    fn direct() -> (Direct, Tokens, Signal) {
        (
            Direct::with_burst_gap(Version::V311, Duration::ZERO),
            Tokens::new(16),
            Signal::default(),
        )
    }

    /// A command channel with nothing sent yet.
    fn commands() -> (Sender<Command>, Commands) {
        let (tx, rx) = crate::engine::queue::unbounded();
        (tx, Commands::new(rx))
    }

    #[test]
    fn nothing_is_written_until_the_socket_is_offered_nor_after_a_command() {
        let (ours, mut broker) = UnixStream::pair().unwrap();
        let (tx, mut rx) = commands();
        let (direct, tokens, wake) = direct();
        let p = publish("t", b"x".to_vec());
        assert!(direct.publish(p.clone(), &tokens, &wake).is_err(), "not offered yet");

        direct.send(&tx, Command::Connect(0)).unwrap();
        assert!(!direct.offer(ours.as_raw_fd(), None, &rx), "a command waits");
        rx.try_recv().unwrap();
        assert!(direct.offer(ours.as_raw_fd(), None, &rx));
        let token = direct.publish(p.clone(), &tokens, &wake).unwrap();
        assert!(matches!(tokens.state(token), super::super::TokenState::Done(Ok(_))));
        let mut got = vec![0; wire(&p).len()];
        broker.read_exact(&mut got).unwrap();
        assert_eq!(got, wire(&p));

        direct.send(&tx, Command::Disconnect(0)).unwrap();
        assert!(
            direct.publish(p, &tokens, &wake).is_err(),
            "a command withdrew the offer"
        );
    }

    #[test]
    fn a_burst_is_left_to_the_network_task() {
        let (ours, _broker) = UnixStream::pair().unwrap();
        let gap = Duration::from_millis(200);
        let (direct, tokens, wake) = (
            Direct::with_burst_gap(Version::V311, gap),
            Tokens::new(16),
            Signal::default(),
        );
        assert!(direct.offer(ours.as_raw_fd(), None, &commands().1));
        assert!(
            direct.publish(publish("t", vec![0]), &tokens, &wake).is_err(),
            "right after the offer"
        );
        std::thread::sleep(gap);
        assert!(direct.publish(publish("t", vec![1]), &tokens, &wake).is_ok());
        assert!(
            direct.publish(publish("t", vec![2]), &tokens, &wake).is_err(),
            "right after the first"
        );
        std::thread::sleep(gap);
        assert!(
            direct.publish(publish("t", vec![3]), &tokens, &wake).is_ok(),
            "after a pause"
        );
    }

    #[test]
    fn too_large_for_the_broker_is_left_to_the_network_task() {
        let (ours, _broker) = UnixStream::pair().unwrap();
        let (direct, tokens, wake) = direct();
        assert!(direct.offer(ours.as_raw_fd(), Some(10), &commands().1));
        assert!(direct.publish(publish("t", vec![0; 20]), &tokens, &wake).is_err());
    }

    #[test]
    fn what_the_socket_does_not_take_goes_to_the_network_task_first() {
        let (ours, mut broker) = UnixStream::pair().unwrap();
        let (direct, tokens, wake) = direct();
        assert!(direct.offer(ours.as_raw_fd(), None, &commands().1));
        // Larger than a socket buffer: only part of it goes out now.
        let big = publish("t", (0..4 << 20).map(|i| i as u8).collect());
        let token = direct.publish(big.clone(), &tokens, &wake).unwrap();
        assert!(matches!(tokens.state(token), super::super::TokenState::Pending));
        assert!(
            direct.publish(publish("t", vec![1]), &tokens, &wake).is_err(),
            "offer withdrawn"
        );

        let mut wbuf = WriteQueue::new(Version::V311);
        let mut written = Vec::new();
        direct.withdraw(&mut wbuf, &mut written);
        assert_eq!(written, [token]);
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            broker.read_to_end(&mut got).unwrap();
            got
        });
        ours.set_nonblocking(false).unwrap();
        let mut ours = ours;
        while !wbuf.is_empty() {
            let n = wbuf.send_now(ours.as_raw_fd(), usize::MAX).or_else(|e| match e.kind() {
                std::io::ErrorKind::WouldBlock => Ok(0),
                _ => Err(e),
            });
            wbuf.advance(n.unwrap());
        }
        std::io::Write::flush(&mut ours).unwrap();
        drop(ours);
        assert!(
            reader.join().unwrap() == wire(&big),
            "the packet arrives whole and in order"
        );
    }

    #[test]
    fn ready_ends_once_a_command_is_queued_and_again_while_any_may_be_left() {
        use futures_util::FutureExt;
        let (direct, _, _) = direct();
        let (tx, mut rx) = commands();
        assert!(
            rx.ready(&direct).now_or_never().is_some(),
            "nothing taken yet: look first"
        );
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
        assert!(rx.ready(&direct).now_or_never().is_none(), "nothing queued since");

        direct.send(&tx, Command::Connect(1)).unwrap();
        direct.send(&tx, Command::Connect(2)).unwrap();
        assert!(rx.ready(&direct).now_or_never().is_some());
        assert!(matches!(rx.try_recv(), Ok(Command::Connect(1))));
        // The raise was taken by the wait, but a take that found one says more may be left.
        assert!(rx.ready(&direct).now_or_never().is_some());
        assert!(matches!(rx.try_recv(), Ok(Command::Connect(2))));
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
        assert!(rx.ready(&direct).now_or_never().is_none());

        drop(tx);
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Disconnected)));
        assert!(
            rx.ready(&direct).now_or_never().is_some(),
            "a closed channel is looked at"
        );
    }
}
