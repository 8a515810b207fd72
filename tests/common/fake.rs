//! A scripted fake MQTT broker for tests that need exact bytes or faults a real broker won't make.
//!
//! Plain blocking std sockets on 127.0.0.1:0; the crate's own codec decodes what the client sends
//! and encodes the answers. A script is straight-line code, either inline in the test (the client
//! API never blocks, so the test thread can drive both sides) or on a thread of its own
//! ([`FakeBroker::spawn`]).
//!
//! ```ignore
//! let broker = FakeBroker::new();
//! let client = Client::new(broker.address(), options)?;
//! let token = client.connect()?;
//! let mut conn = broker.accept();
//! let connect = conn.accept_connect(); // expects CONNECT, answers CONNACK 0
//! conn.expect("PUBLISH", |p| matches!(p, Packet::Publish(_)));
//! conn.send(Packet::PubAck(Ack::new(1)));
//! conn.send_raw(&[0xF0, 0x00]);
//! conn.expect_eof(Duration::from_secs(1));
//! ```
//!
//! Every wait is bounded (by [`TIMEOUT`] unless a method takes its own); a failed expectation
//! panics with what arrived instead, and [`FakeConn::log`] keeps every packet with its arrival time.
use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use mqttclient::codec::{
    self, ConnAck, Connect, MqttStr, Packet, Properties, Publish, QoS, ReasonCode, SubAck, Subscribe, Unsubscribe,
    Version,
};
use mqttclient::engine::Address;

/// The default bound on every wait of the fake.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// A listening socket; each client connection is accepted as a [`FakeConn`].
pub struct FakeBroker {
    listener: TcpListener,
    port: u16,
}

impl Default for FakeBroker {
    fn default() -> Self {
        FakeBroker::new()
    }
}

impl FakeBroker {
    pub fn new() -> FakeBroker {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake broker");
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        FakeBroker { listener, port }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where a client should connect.
    pub fn address(&self) -> Address {
        Address::tcp("127.0.0.1", self.port)
    }

    /// Accepts the next connection within [`TIMEOUT`]; panics otherwise.
    pub fn accept(&self) -> FakeConn {
        self.accept_within(TIMEOUT)
    }

    pub fn accept_within(&self, timeout: Duration) -> FakeConn {
        self.try_accept(timeout)
            .unwrap_or_else(|| panic!("fake broker: no connection within {timeout:?}"))
    }

    /// The next connection, or None if none comes within `timeout`.
    pub fn try_accept(&self, timeout: Duration) -> Option<FakeConn> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => return Some(FakeConn::new(stream)),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return None;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => panic!("fake broker: accept failed: {e}"),
            }
        }
    }

    /// Runs `script` on a thread of its own; `join()` the handle to get its result (and its panic).
    pub fn spawn<T: Send + 'static>(self, script: impl FnOnce(FakeBroker) -> T + Send + 'static) -> JoinHandle<T> {
        std::thread::Builder::new()
            .name(format!("fake-broker-{}", self.port))
            .spawn(move || script(self))
            .expect("spawn the fake broker thread")
    }
}

/// One packet the client sent, when it was decoded, and its exact bytes.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub packet: Packet,
    pub raw: Bytes,
}

/// One accepted client connection.
pub struct FakeConn {
    stream: TcpStream,
    rbuf: BytesMut,
    /// Every packet received, in order (PINGREQs answered automatically included).
    log: Vec<Received>,
    /// Received packets the script has not taken yet.
    unread: VecDeque<Received>,
    eof: bool,
    auto_pingresp: bool,
    /// The protocol spoken: the one the client's CONNECT names, 3.1.1 until it arrives.
    pub version: Version,
    /// When the connection was accepted.
    pub accepted_at: Instant,
}

/// The outcome of one bounded read.
enum Fill {
    Data,
    TimedOut,
    Eof,
}

impl FakeConn {
    fn new(stream: TcpStream) -> FakeConn {
        stream.set_nonblocking(false).unwrap();
        stream.set_nodelay(true).unwrap();
        FakeConn {
            stream,
            rbuf: BytesMut::new(),
            log: Vec::new(),
            unread: VecDeque::new(),
            eof: false,
            auto_pingresp: false,
            version: Version::V311,
            accepted_at: Instant::now(),
        }
    }

    /// Every packet received so far, in arrival order, with arrival times.
    pub fn log(&self) -> &[Received] {
        &self.log
    }

    /// When on, PINGREQ is answered with PINGRESP as soon as it is read and never handed to the
    /// script (it is still in the log). Off by default: scripts see every packet.
    pub fn set_auto_pingresp(&mut self, on: bool) {
        self.auto_pingresp = on;
    }

    /// The client's address: where its connection came from.
    pub fn peer(&self) -> std::net::SocketAddr {
        self.stream.peer_addr().expect("fake broker: peer address")
    }

    /// True once the client closed its side (or reset the connection).
    pub fn is_eof(&self) -> bool {
        self.eof
    }

    /// One read, bounded by `deadline`; decodes every whole packet it completes.
    fn fill(&mut self, deadline: Instant) -> Fill {
        if self.eof {
            return Fill::Eof;
        }
        let now = Instant::now();
        if now >= deadline {
            return Fill::TimedOut;
        }
        self.stream
            .set_read_timeout(Some((deadline - now).max(Duration::from_millis(1))))
            .unwrap();
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => {
                self.eof = true;
                Fill::Eof
            }
            Ok(n) => {
                self.rbuf.extend_from_slice(&chunk[..n]);
                self.decode_all();
                Fill::Data
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Fill::TimedOut,
            Err(e) if e.kind() == ErrorKind::Interrupted => Fill::Data,
            Err(_) => {
                // Connection reset: the client is gone.
                self.eof = true;
                Fill::Eof
            }
        }
    }

    fn decode_all(&mut self) {
        loop {
            let before = self.rbuf.clone();
            match codec::decode(&mut self.rbuf, usize::MAX, self.version) {
                Ok(Some(packet)) => {
                    if let Packet::Connect(c) = &packet {
                        self.version = c.version;
                    }
                    let used = before.len() - self.rbuf.len();
                    let received = Received {
                        at: Instant::now(),
                        packet,
                        raw: Bytes::copy_from_slice(&before[..used]),
                    };
                    self.log.push(received.clone());
                    if self.auto_pingresp && received.packet == Packet::PingReq {
                        self.send(Packet::PingResp);
                    } else {
                        self.unread.push_back(received);
                    }
                }
                Ok(None) => return,
                Err(e) => panic!(
                    "fake broker: the client sent bytes that do not decode ({e}): {:02x?}",
                    &before[..before.len().min(64)]
                ),
            }
        }
    }

    /// The next packet (with time and bytes), or None on timeout or end of stream.
    pub fn next_within(&mut self, timeout: Duration) -> Option<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(r) = self.unread.pop_front() {
                return Some(r);
            }
            match self.fill(deadline) {
                Fill::Data => {}
                Fill::TimedOut | Fill::Eof => return None,
            }
        }
    }

    /// The next packet within [`TIMEOUT`]; panics on timeout or end of stream.
    pub fn next(&mut self) -> Received {
        match self.next_within(TIMEOUT) {
            Some(r) => r,
            None if self.eof => panic!(
                "fake broker: the client closed the connection; log: {:?}",
                self.summary()
            ),
            None => panic!(
                "fake broker: nothing received within {TIMEOUT:?}; log: {:?}",
                self.summary()
            ),
        }
    }

    /// Takes the next packet and asserts it satisfies `pred` (`what` names it in the panic).
    pub fn expect(&mut self, what: &str, pred: impl FnOnce(&Packet) -> bool) -> Received {
        self.expect_within(TIMEOUT, what, pred)
    }

    pub fn expect_within(&mut self, timeout: Duration, what: &str, pred: impl FnOnce(&Packet) -> bool) -> Received {
        let r = match self.next_within(timeout) {
            Some(r) => r,
            None => panic!(
                "fake broker: expected {what}, got {} within {timeout:?}; log: {:?}",
                if self.eof { "end of stream" } else { "nothing" },
                self.summary()
            ),
        };
        assert!(pred(&r.packet), "fake broker: expected {what}, got {:?}", r.packet);
        r
    }

    /// Takes the next packet and asserts it equals `packet`.
    pub fn expect_packet(&mut self, packet: &Packet) -> Received {
        self.expect(&format!("{packet:?}"), |p| p == packet)
    }

    pub fn expect_connect(&mut self) -> Connect {
        match self.expect("CONNECT", |p| matches!(p, Packet::Connect(_))).packet {
            Packet::Connect(c) => c,
            _ => unreachable!(),
        }
    }

    pub fn expect_publish(&mut self) -> Publish {
        match self.expect("PUBLISH", |p| matches!(p, Packet::Publish(_))).packet {
            Packet::Publish(p) => p,
            _ => unreachable!(),
        }
    }

    pub fn expect_subscribe(&mut self) -> Subscribe {
        match self.expect("SUBSCRIBE", |p| matches!(p, Packet::Subscribe(_))).packet {
            Packet::Subscribe(s) => s,
            _ => unreachable!(),
        }
    }

    pub fn expect_unsubscribe(&mut self) -> Unsubscribe {
        match self
            .expect("UNSUBSCRIBE", |p| matches!(p, Packet::Unsubscribe(_)))
            .packet
        {
            Packet::Unsubscribe(u) => u,
            _ => unreachable!(),
        }
    }

    /// The handshake: expects CONNECT, answers CONNACK accepted (no session present).
    pub fn accept_connect(&mut self) -> Connect {
        let connect = self.expect_connect();
        self.connack(ReasonCode::SUCCESS);
        connect
    }

    /// The handshake of a client coming back: expects CONNECT, answers CONNACK accepted with
    /// "session present".
    pub fn resume_connect(&mut self) -> Connect {
        let connect = self.expect_connect();
        self.send(Packet::ConnAck(ConnAck::accepted(true)));
        connect
    }

    pub fn connack(&mut self, code: ReasonCode) {
        self.send(Packet::ConnAck(ConnAck {
            code,
            ..ConnAck::accepted(false)
        }));
    }

    /// Expects a SUBSCRIBE and answers SUBACK with `codes` (raw: 0, 1, 2 or 0x80; in MQTT 5 any
    /// SUBACK reason code).
    pub fn answer_subscribe(&mut self, codes: &[u8]) -> Subscribe {
        let sub = self.expect_subscribe();
        let codes = codes.iter().map(|&c| ReasonCode(c)).collect();
        self.send(Packet::SubAck(SubAck::new(sub.pkid, codes)));
        sub
    }

    /// Expects a SUBSCRIBE and grants every filter the QoS it asked for.
    pub fn grant_subscribe(&mut self) -> Subscribe {
        let sub = self.expect_subscribe();
        let codes = sub.filters.iter().map(|(_, o)| ReasonCode(o.qos as u8)).collect();
        self.send(Packet::SubAck(SubAck::new(sub.pkid, codes)));
        sub
    }

    /// Encodes and writes one packet, in the version the client's CONNECT asked for.
    pub fn send(&mut self, packet: Packet) {
        let mut buf = BytesMut::new();
        packet
            .encode(&mut buf, self.version)
            .expect("the fake broker's packet encodes");
        self.send_raw(&buf);
    }

    /// Writes exactly these bytes in one write.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("fake broker: write failed");
    }

    /// Writes `bytes` again and again until a write makes no progress for `stall` (the client
    /// stopped reading and the socket buffers are full) or `max` copies went out; returns how many
    /// whole copies were written. The connection is unusable for packets afterwards when it stalled
    /// mid-copy, so callers close it or only drain it.
    pub fn send_until_blocked(&mut self, bytes: &[u8], stall: Duration, max: usize) -> usize {
        self.stream.set_write_timeout(Some(stall)).unwrap();
        let mut copies = 0;
        'copies: while copies < max {
            let mut rest = bytes;
            while !rest.is_empty() {
                match self.stream.write(rest) {
                    Ok(n) => rest = &rest[n..],
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break 'copies,
                    Err(e) => panic!("fake broker: write failed: {e}"),
                }
            }
            copies += 1;
        }
        self.stream.set_write_timeout(None).unwrap();
        copies
    }

    /// Writes `count` packets, `make(0)` to `make(count - 1)`, as fast as the client takes them, the
    /// way a broker with a queue for this client would: meanwhile every PINGREQ is answered (its
    /// PINGRESP queued behind what is already on its way) and every other packet received is kept for
    /// the script. Panics unless all of them are written within `timeout`, or if the client closes
    /// the connection.
    pub fn flood(&mut self, count: usize, timeout: Duration, mut make: impl FnMut(usize) -> Packet) -> Flood {
        /// What is encoded ahead of the socket: enough for large writes, and a PINGRESP waits at most
        /// this much.
        const AHEAD: usize = 64 * 1024;
        let deadline = Instant::now() + timeout;
        self.stream.set_nonblocking(true).unwrap();
        // PINGREQs are answered here, in the flow of the flood.
        let auto_pingresp = std::mem::replace(&mut self.auto_pingresp, false);
        let mut out = BytesMut::new();
        let mut next = 0;
        let mut pings = 0;
        let mut pongs = 0;
        let mut last_progress = Instant::now();
        let mut longest_stall = Duration::ZERO;
        while next < count || !out.is_empty() || pings > 0 {
            let now = Instant::now();
            assert!(
                now < deadline,
                "fake broker: flood: {next} of {count} packets encoded within {timeout:?}"
            );
            // Nonblocking, so this reads what is there and returns.
            if let Fill::Eof = self.fill(now + Duration::from_millis(1)) {
                panic!("fake broker: the client closed the connection during a flood ({next} of {count} packets)");
            }
            let before = self.unread.len();
            self.unread.retain(|r| r.packet != Packet::PingReq);
            pings += before - self.unread.len();
            if out.is_empty() {
                for _ in 0..std::mem::take(&mut pings) {
                    Packet::PingResp.encode(&mut out, self.version).unwrap();
                    pongs += 1;
                }
                while out.len() < AHEAD && next < count {
                    make(next)
                        .encode(&mut out, self.version)
                        .expect("a flood packet encodes");
                    next += 1;
                }
            }
            match self.stream.write(&out) {
                Ok(n) => {
                    let _ = out.split_to(n);
                    last_progress = Instant::now();
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    longest_stall = longest_stall.max(last_progress.elapsed());
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => panic!("fake broker: write failed during a flood: {e}"),
            }
        }
        self.stream.set_nonblocking(false).unwrap();
        self.auto_pingresp = auto_pingresp;
        Flood { longest_stall, pongs }
    }

    /// Writes `bytes` one byte per write, sleeping `gap` between writes.
    pub fn send_slowly(&mut self, bytes: &[u8], gap: Duration) {
        for b in bytes {
            self.send_raw(std::slice::from_ref(b));
            std::thread::sleep(gap);
        }
    }

    /// Answers nothing for `duration`; returns what the client sent meanwhile (taken, and logged).
    pub fn silence(&mut self, duration: Duration) -> Vec<Received> {
        let deadline = Instant::now() + duration;
        while let Fill::Data = self.fill(deadline) {}
        let remaining = deadline.saturating_duration_since(Instant::now());
        std::thread::sleep(remaining);
        self.unread.drain(..).collect()
    }

    /// Asserts the client sends nothing for `duration`.
    pub fn expect_silence(&mut self, duration: Duration) {
        let got = self.silence(duration);
        assert!(
            got.is_empty(),
            "fake broker: expected silence for {duration:?}, got {:?}",
            got.iter().map(|r| &r.packet).collect::<Vec<_>>()
        );
    }

    /// Asserts the client closes the connection within `timeout` without sending anything more.
    pub fn expect_eof(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(r) = self.unread.pop_front() {
                panic!("fake broker: expected end of stream, got {:?}", r.packet);
            }
            match self.fill(deadline) {
                Fill::Data => {}
                Fill::Eof => return,
                Fill::TimedOut => panic!("fake broker: the client did not close the connection within {timeout:?}"),
            }
        }
    }

    /// Closes the connection (both directions).
    pub fn close(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    fn summary(&self) -> Vec<String> {
        self.log
            .iter()
            .map(|r| format!("+{:?} {:?}", r.at - self.accepted_at, r.packet))
            .collect()
    }
}

/// What [`FakeConn::flood`] saw.
#[derive(Debug)]
pub struct Flood {
    /// The longest time the socket took nothing: the client did not read meanwhile.
    pub longest_stall: Duration,
    /// PINGREQs answered during the flood.
    pub pongs: usize,
}

/// Shorthand for a valid MQTT string.
pub fn mqtt_str(s: &str) -> MqttStr {
    MqttStr::new(s).unwrap()
}

/// A PUBLISH as a broker would send it.
pub fn publish(topic: &str, qos: QoS, pkid: u16, payload: &[u8]) -> Publish {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic: mqtt_str(topic),
        pkid,
        properties: Properties::new(),
        payload: Bytes::copy_from_slice(payload),
    }
}
