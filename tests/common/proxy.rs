//! A fault-injecting TCP proxy for integration tests: it sits on loopback between a client and a
//! real broker and can drop, freeze, delay, cut or refuse connections on command, so tests can
//! reproduce network failures deterministically without root or `tc`.
//!
//! std only: one acceptor thread plus one thread per direction of each link. Every thread polls
//! its socket with a short timeout so that commands (and dropping the `Proxy`) take effect within
//! a few tens of milliseconds. Socket errors never panic; they just close the link concerned.
//!
//! A proxy started with `Proxy::recording` also keeps every MQTT packet it passes on (see
//! tests/common/record.rs).

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::record::{Decoder, Packet, Record};

/// How long a pump blocks in one read or write before rechecking the proxy's state: bounds how
/// late freeze/drop/stop take effect.
const POLL: Duration = Duration::from_millis(20);
/// How long the acceptor sleeps when no connection is pending.
const ACCEPT_POLL: Duration = Duration::from_millis(5);
/// Upper bound for connecting to the upstream port (loopback: normally immediate).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// A loopback TCP proxy in front of `127.0.0.1:<upstream>`. Dropping it stops the listener,
/// closes every link and joins all of its threads.
pub struct Proxy {
    port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

/// State shared by the `Proxy` handle, the acceptor and the pumps.
struct Shared {
    upstream: AtomicU16,
    stop: AtomicBool,
    frozen: AtomicBool,
    refuse: AtomicBool,
    /// Added latency in microseconds.
    delay_us: AtomicU64,
    /// Pending one-shot cut of the broker->client direction, if any.
    cut: Mutex<Option<Cut>>,
    connections: AtomicUsize,
    next_id: AtomicU64,
    links: Mutex<Vec<Arc<Link>>>,
    pumps: Mutex<Vec<JoinHandle<()>>>,
    /// Every packet passed on, when recording (`Proxy::recording`).
    record: Option<Mutex<Vec<Record>>>,
    /// The next record's `seq`.
    next_seq: AtomicUsize,
}

struct Cut {
    /// Bytes still to forward before closing.
    remaining: usize,
    /// The link that claimed the cut with its first broker->client chunk.
    link: Option<u64>,
}

/// One proxied connection: the accepted client socket and its upstream socket.
struct Link {
    id: u64,
    client: TcpStream,
    server: TcpStream,
    closed: AtomicBool,
}

impl Link {
    /// Closes both sockets in both directions (the peers see EOF or a reset); idempotent.
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.server.shutdown(Shutdown::Both);
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dir {
    ClientToServer,
    ServerToClient,
}

/// Locks ignoring poisoning: a panicking test thread must not wedge the proxy.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Proxy {
    /// Listens on `127.0.0.1:0` and forwards each accepted connection to
    /// `127.0.0.1:upstream_port` (if that connect fails, the client connection is closed).
    pub fn start(upstream_port: u16) -> Proxy {
        Proxy::launch(upstream_port, false)
    }

    /// Like `start`, and keeps a record of every MQTT 3.1.1 packet passed on in either direction
    /// (`records`). A packet is recorded once all of it was handed to the receiving socket (what
    /// a link's closing cut short is not), in the order in which the proxy began to write it: so
    /// an answer comes after what it answers.
    pub fn recording(upstream_port: u16) -> Proxy {
        Proxy::launch(upstream_port, true)
    }

    fn launch(upstream_port: u16, record: bool) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy: bind 127.0.0.1:0");
        let port = listener.local_addr().expect("proxy: local_addr").port();
        // Non-blocking accept so the acceptor can notice `stop` without a wake-up connection.
        listener.set_nonblocking(true).expect("proxy: set_nonblocking");
        let shared = Arc::new(Shared {
            upstream: AtomicU16::new(upstream_port),
            stop: AtomicBool::new(false),
            frozen: AtomicBool::new(false),
            refuse: AtomicBool::new(false),
            delay_us: AtomicU64::new(0),
            cut: Mutex::new(None),
            connections: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            links: Mutex::new(Vec::new()),
            pumps: Mutex::new(Vec::new()),
            record: record.then(|| Mutex::new(Vec::new())),
            next_seq: AtomicUsize::new(0),
        });
        let s = shared.clone();
        let acceptor = std::thread::Builder::new()
            .name(format!("proxy-{port}-accept"))
            .spawn(move || accept_loop(listener, s))
            .expect("proxy: spawn acceptor");
        Proxy {
            port,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// The loopback port clients should connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Sends connections accepted from now on to `127.0.0.1:port`; existing links keep their
    /// upstream (models a broker failover).
    pub fn set_upstream(&self, port: u16) {
        self.shared.upstream.store(port, Ordering::SeqCst);
    }

    /// Closes every current link abruptly: both sockets are `shutdown(Both)`, so the client sees
    /// EOF (or a reset) at once. New connections are still accepted and forwarded.
    pub fn drop_all(&self) {
        for link in lock(&self.shared.links).drain(..) {
            link.close();
        }
    }

    /// Black-holes traffic in both directions on current and new links without closing anything:
    /// the proxy keeps reading from both sides (so senders never block) and DISCARDS what it reads
    /// while frozen, including delayed chunks that come due while frozen. Nothing is replayed on
    /// `unfreeze`, so a link that carried traffic during the freeze may be desynchronised
    /// mid-packet; tests should expect the endpoints to give up on it (e.g. keepalive timeout).
    pub fn freeze(&self) {
        self.shared.frozen.store(true, Ordering::SeqCst);
    }

    /// Resumes forwarding of data read from now on (see `freeze`: frozen bytes are lost).
    pub fn unfreeze(&self) {
        self.shared.frozen.store(false, Ordering::SeqCst);
    }

    /// Adds latency `d` to every chunk in both directions: each chunk is written `d` after it was
    /// read, in order; chunks pipeline rather than queue behind each other's delays. Applies to
    /// chunks read after the call. `Duration::ZERO` turns it off.
    pub fn set_delay(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.shared.delay_us.store(us, Ordering::SeqCst);
    }

    /// One-shot: the first link to carry broker->client data after this call forwards only
    /// `after_bytes` more bytes in that direction, then is closed in both directions (cutting a
    /// packet in the middle if the boundary falls inside one). `cut_next(0)` closes the link on
    /// its next broker->client chunk without forwarding any of it. A later call replaces a
    /// pending cut that has not been claimed yet.
    pub fn cut_next(&self, after_bytes: usize) {
        *lock(&self.shared.cut) = Some(Cut {
            remaining: after_bytes,
            link: None,
        });
    }

    /// While on, new connections are accepted (the kernel completes the TCP handshake) and then
    /// immediately closed without contacting upstream, like a broker that is down. Existing links
    /// are unaffected.
    pub fn refuse(&self, on: bool) {
        self.shared.refuse.store(on, Ordering::SeqCst);
    }

    /// Client connections accepted so far, including refused ones and ones whose upstream
    /// connect failed. Accepting is asynchronous: poll rather than expect it to change at once.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// The packets recorded so far, in the order they were passed on (empty unless `recording`).
    pub fn records(&self) -> Vec<Record> {
        let mut records = self.shared.record.as_ref().map(|r| lock(r).clone()).unwrap_or_default();
        records.sort_by_key(|r| r.seq);
        records
    }

    /// Puts a note (`Packet::Mark`) into the record at this point, e.g. when the broker restarts.
    pub fn mark(&self, note: &str) {
        let seq = self.shared.next_seq.fetch_add(1, Ordering::SeqCst);
        keep(&self.shared, seq, u64::MAX, false, vec![Packet::Mark(note.to_string())]);
    }

    /// Links currently open (upstream connected, not yet closed by either side or the proxy).
    pub fn live(&self) -> usize {
        let mut links = lock(&self.shared.links);
        links.retain(|l| !l.is_closed());
        links.len()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Stop the acceptor first so no link is created after drop_all.
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        self.drop_all();
        // Every pump sees `stop` (or its closed sockets) within one POLL.
        let pumps: Vec<_> = lock(&self.shared.pumps).drain(..).collect();
        for p in pumps {
            let _ = p.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                shared.connections.fetch_add(1, Ordering::SeqCst);
                handle_client(client, &shared);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // WouldBlock, or a transient error (e.g. out of fds): wait and retry.
            Err(_) => std::thread::sleep(ACCEPT_POLL),
        }
    }
}

fn handle_client(client: TcpStream, shared: &Arc<Shared>) {
    // Accepted sockets do not inherit O_NONBLOCK on Linux, but be explicit: pumps rely on timeouts.
    if shared.refuse.load(Ordering::SeqCst) || client.set_nonblocking(false).is_err() {
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], shared.upstream.load(Ordering::SeqCst)));
    let server = match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
        Ok(s) => s,
        Err(_) => {
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let clones = (|| {
        Some((
            client.try_clone().ok()?,
            server.try_clone().ok()?,
            client.try_clone().ok()?,
            server.try_clone().ok()?,
        ))
    })();
    let Some((c_read, s_write, c_write, s_read)) = clones else {
        let _ = client.shutdown(Shutdown::Both);
        let _ = server.shutdown(Shutdown::Both);
        return;
    };
    let link = Arc::new(Link {
        id: shared.next_id.fetch_add(1, Ordering::SeqCst),
        client,
        server,
        closed: AtomicBool::new(false),
    });
    {
        let mut links = lock(&shared.links);
        links.retain(|l| !l.is_closed());
        links.push(link.clone());
    }
    let mut pumps = lock(&shared.pumps);
    pumps.retain(|p| !p.is_finished());
    for (dir, src, dst) in [
        (Dir::ClientToServer, c_read, s_write),
        (Dir::ServerToClient, s_read, c_write),
    ] {
        let (s, l) = (shared.clone(), link.clone());
        match std::thread::Builder::new()
            .name(format!("proxy-link{}", link.id))
            .spawn(move || pump(dir, src, dst, &l, &s))
        {
            Ok(h) => pumps.push(h),
            Err(_) => link.close(),
        }
    }
}

/// Copies `src` to `dst` for one direction of `link`, applying freeze, delay and cut. Ends (and
/// closes the whole link) on EOF or error from either socket, on a cut, or when the proxy stops.
fn pump(dir: Dir, mut src: TcpStream, mut dst: TcpStream, link: &Link, shared: &Shared) {
    if dst.set_write_timeout(Some(POLL)).is_err() {
        link.close();
        return;
    }
    // Chunks read but not yet written, each with the instant it is due.
    let mut queue: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    let mut eof = false;
    let mut decoder = Decoder::default();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if shared.stop.load(Ordering::SeqCst) || link.is_closed() {
            break;
        }
        // Write whatever is due.
        let now = Instant::now();
        while queue.front().is_some_and(|(due, _)| *due <= now) {
            let (_, chunk) = queue.pop_front().unwrap();
            if shared.frozen.load(Ordering::SeqCst) {
                continue; // black hole
            }
            match forward(dir, &chunk, &mut dst, link, shared, &mut decoder) {
                Forwarded::All => {}
                Forwarded::Closed => {
                    link.close();
                    return;
                }
            }
        }
        if eof && queue.is_empty() {
            break;
        }
        // Wait for more input, or until the next chunk is due.
        let wait = match queue.front() {
            Some((due, _)) => due
                .saturating_duration_since(Instant::now())
                .clamp(Duration::from_millis(1), POLL),
            None => POLL,
        };
        if eof {
            std::thread::sleep(wait);
            continue;
        }
        if src.set_read_timeout(Some(wait)).is_err() {
            break;
        }
        match src.read(&mut buf) {
            Ok(0) => eof = true, // flush what is queued, then close the link
            Ok(n) => {
                if !shared.frozen.load(Ordering::SeqCst) {
                    let delay = Duration::from_micros(shared.delay_us.load(Ordering::SeqCst));
                    queue.push_back((Instant::now() + delay, buf[..n].to_vec()));
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => break,
        }
    }
    link.close();
}

enum Forwarded {
    All,
    /// The link must close: write error, stop, or a cut reached its limit.
    Closed,
}

/// Writes one chunk, honouring a pending cut on the broker->client direction.
fn forward(
    dir: Dir,
    chunk: &[u8],
    dst: &mut TcpStream,
    link: &Link,
    shared: &Shared,
    decoder: &mut Decoder,
) -> Forwarded {
    let mut data = chunk;
    let mut close_after = false;
    if dir == Dir::ServerToClient {
        let mut cut = lock(&shared.cut);
        let claim = cut.as_ref().is_some_and(|c| c.link.is_none_or(|id| id == link.id));
        if let Some(c) = cut.as_mut().filter(|_| claim) {
            c.link = Some(link.id);
            if data.len() >= c.remaining {
                data = &data[..c.remaining];
                close_after = true;
                *cut = None;
            } else {
                c.remaining -= data.len();
            }
        }
    }
    if close_after {
        // Sever the broker side first, so nothing the client answers to these last bytes (a
        // PUBACK or PUBREC racing our close) can still reach the broker.
        let _ = link.server.shutdown(Shutdown::Both);
    }
    // Numbered before the write: the peer may answer before the write call returns.
    let packets = if shared.record.is_some() {
        decoder.feed(data)
    } else {
        Vec::new()
    };
    let seq = shared.next_seq.fetch_add(packets.len(), Ordering::SeqCst);
    let written = write_all(dst, data, link, shared);
    if written {
        keep(shared, seq, link.id, dir == Dir::ClientToServer, packets);
    }
    if !written || close_after {
        Forwarded::Closed
    } else {
        Forwarded::All
    }
}

/// Appends `packets`, numbered from `seq` on, to the record, if the proxy keeps one.
fn keep(shared: &Shared, seq: usize, link: u64, to_broker: bool, packets: Vec<Packet>) {
    if let Some(r) = &shared.record {
        let mut r = lock(r);
        for (i, packet) in packets.into_iter().enumerate() {
            r.push(Record {
                seq: seq + i,
                link,
                to_broker,
                packet,
            });
        }
    }
}

/// `write_all` with short write timeouts so a stalled reader cannot block stop/drop for long.
fn write_all(dst: &mut TcpStream, mut data: &[u8], link: &Link, shared: &Shared) -> bool {
    while !data.is_empty() {
        if shared.stop.load(Ordering::SeqCst) || link.is_closed() {
            return false;
        }
        match dst.write(data) {
            Ok(0) => return false,
            Ok(n) => data = &data[n..],
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => return false,
        }
    }
    true
}
