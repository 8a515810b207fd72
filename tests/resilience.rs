//! Resilience of the engine against a real mosquitto, with faults injected by killing the
//! broker or through the loopback proxy (tests/common/proxy.rs): automatic reconnect with backoff,
//! connection events, session continuity (resends, re-subscribe), the offline queue and its
//! overflow policies, half-open detection by keep-alive, several servers, and disconnect/free in
//! every link state. Every wait is bounded.
mod common;

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqttclient::codec::{MqttStr, Publish, QoS};
use mqttclient::engine::{
    Address, Client, ConnectionEvent, Error, Handler, Options, Overflow, State, Token, TokenResult, TokenState,
};

use common::Broker;
use common::proxy::Proxy;

/// Default bound for a wait that normally takes milliseconds.
const T: Duration = Duration::from_secs(10);

fn addr(port: u16) -> Address {
    Address::tcp("127.0.0.1", port)
}

fn topic(s: &str) -> MqttStr {
    MqttStr::new(s).unwrap()
}

/// Options for these tests: fast reconnects and short timeouts, so that every failure is noticed
/// and repaired within a test's time budget.
fn options(id: &str, clean_session: bool) -> Options {
    Options {
        client_id: id.into(),
        clean_session,
        keep_alive: 30,
        connect_timeout: Duration::from_secs(2),
        reconnect_min: Duration::from_millis(50),
        reconnect_max: Duration::from_millis(400),
        ..Options::default()
    }
}

/// Connection events a client reported, with the instant each arrived.
#[derive(Default)]
struct Events {
    log: Mutex<Vec<(Instant, ConnectionEvent)>>,
    changed: Condvar,
}

impl Events {
    fn attach(client: &Client) -> Arc<Events> {
        let events = Arc::new(Events::default());
        let e = events.clone();
        client.set_on_connection(Some(Arc::new(move |c: &ConnectionEvent| {
            e.log.lock().unwrap().push((Instant::now(), c.clone()));
            e.changed.notify_all();
        })));
        events
    }

    fn all(&self) -> Vec<(Instant, ConnectionEvent)> {
        self.log.lock().unwrap().clone()
    }

    /// Waits until `pred` holds for the events so far; panics (listing them) after `timeout`.
    fn wait(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&[(Instant, ConnectionEvent)]) -> bool,
    ) -> Vec<(Instant, ConnectionEvent)> {
        let deadline = Instant::now() + timeout;
        let mut log = self.log.lock().unwrap();
        while !pred(&log) {
            let now = Instant::now();
            assert!(
                now < deadline,
                "no {what} within {timeout:?}; events: {:?}",
                log.iter().map(|(_, e)| e).collect::<Vec<_>>()
            );
            log = self.changed.wait_timeout(log, deadline - now).unwrap().0;
        }
        log.clone()
    }

    fn count(log: &[(Instant, ConnectionEvent)], kind: fn(&ConnectionEvent) -> bool) -> usize {
        log.iter().filter(|(_, e)| kind(e)).count()
    }

    /// Waits for the n-th Connected event and returns it with its instant.
    fn wait_connected(&self, n: usize, timeout: Duration) -> (Instant, bool, Address) {
        let log = self.wait(&format!("Connected event #{n}"), timeout, |l| {
            Events::count(l, is_connected) >= n
        });
        match log.into_iter().filter(|(_, e)| is_connected(e)).nth(n - 1) {
            Some((
                at,
                ConnectionEvent::Connected {
                    session_present,
                    server,
                },
            )) => (at, session_present, server),
            _ => unreachable!(),
        }
    }

    /// Waits for the n-th Lost event and returns it with its instant.
    fn wait_lost(&self, n: usize, timeout: Duration) -> (Instant, Error, Address) {
        let log = self.wait(&format!("Lost event #{n}"), timeout, |l| Events::count(l, is_lost) >= n);
        match log.into_iter().filter(|(_, e)| is_lost(e)).nth(n - 1) {
            Some((at, ConnectionEvent::Lost { reason, server })) => (at, reason, server),
            _ => unreachable!(),
        }
    }

    /// The events as a string of kinds: C(onnected), L(ost), D(isconnected).
    fn kinds(&self) -> String {
        self.all()
            .iter()
            .map(|(_, e)| match e {
                ConnectionEvent::Connected { .. } => 'C',
                ConnectionEvent::Lost { .. } => 'L',
                ConnectionEvent::Disconnected => 'D',
            })
            .collect()
    }
}

fn is_connected(e: &ConnectionEvent) -> bool {
    matches!(e, ConnectionEvent::Connected { .. })
}

fn is_lost(e: &ConnectionEvent) -> bool {
    matches!(e, ConnectionEvent::Lost { .. })
}

/// Messages a subscription received.
#[derive(Default)]
struct Inbox {
    messages: Mutex<Vec<Publish>>,
    arrived: Condvar,
}

impl Inbox {
    fn handler(self: &Arc<Self>) -> Handler {
        let inbox = self.clone();
        Handler::Call(Box::new(move |p: &Publish| {
            inbox.messages.lock().unwrap().push(p.clone());
            inbox.arrived.notify_all();
        }))
    }

    /// Waits until `pred` holds for the messages so far (or `timeout` passes); returns whether it
    /// held, and the messages.
    fn wait_until(&self, timeout: Duration, pred: impl Fn(&[Publish]) -> bool) -> (bool, Vec<Publish>) {
        let deadline = Instant::now() + timeout;
        let mut m = self.messages.lock().unwrap();
        loop {
            if pred(&m) {
                return (true, m.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                return (false, m.clone());
            }
            m = self.arrived.wait_timeout(m, deadline - now).unwrap().0;
        }
    }

    fn payloads(&self) -> Vec<String> {
        self.messages.lock().unwrap().iter().map(text).collect()
    }

    /// Waits until a message with this payload arrived.
    fn expect(&self, payload: &str, timeout: Duration) {
        let (ok, _) = self.wait_until(timeout, |m| m.iter().any(|p| text(p) == payload));
        assert!(
            ok,
            "\"{payload}\" did not arrive within {timeout:?}; got {:?}",
            self.payloads()
        );
    }
}

fn text(p: &Publish) -> String {
    String::from_utf8_lossy(&p.payload).into_owned()
}

/// Waits for a token; panics if it is still pending after `timeout`.
fn done(client: &Client, token: Token, timeout: Duration) -> TokenResult {
    match client.wait(token, timeout) {
        Some(TokenState::Done(r)) => r,
        other => panic!("token {token} did not complete within {timeout:?}: {other:?}"),
    }
}

fn ok(r: &TokenResult) -> bool {
    r.is_ok()
}

/// A client for `ports` (tried in order) with its connection events recorded; not yet connected.
fn client(ports: &[u16], o: Options) -> (Client, Arc<Events>) {
    let c = Client::new(ports.iter().map(|p| addr(*p)).collect(), o).unwrap();
    let events = Events::attach(&c);
    (c, events)
}

/// A client connected to `ports`, whose first Connected event was seen.
fn connected(ports: &[u16], o: Options) -> (Client, Arc<Events>) {
    let (c, events) = client(ports, o);
    let t = c.connect().unwrap();
    let r = done(&c, t, T);
    assert!(ok(&r), "connect: {r:?}");
    events.wait_connected(1, T);
    (c, events)
}

/// Subscribes and waits for the SUBACK granting `qos`.
fn subscribe(c: &Client, filter: &str, qos: QoS) -> Arc<Inbox> {
    let inbox = Arc::new(Inbox::default());
    let t = c.subscribe(vec![(topic(filter), qos, inbox.handler())]).unwrap();
    let r = done(c, t, T);
    assert_eq!(r.map(|o| o.codes), Ok(vec![qos as u8]), "subscribe {filter}");
    inbox
}

fn publish(c: &Client, t: &str, payload: impl Into<Vec<u8>>, qos: QoS) -> Token {
    c.publish(topic(t), Bytes::from(payload.into()), qos, false)
        .expect("publish accepted")
}

/// Waits (bounded) until `cond` holds.
fn wait_for(what: &str, timeout: Duration, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// How many times each number arrived, for payloads "<prefix><number>".
fn tally(messages: &[Publish], prefix: &str) -> BTreeMap<usize, usize> {
    let mut counts = BTreeMap::new();
    for p in messages {
        if let Some(n) = text(p).strip_prefix(prefix).and_then(|n| n.parse().ok()) {
            *counts.entry(n).or_insert(0) += 1;
        }
    }
    counts
}

fn missing(counts: &BTreeMap<usize, usize>, n: usize) -> Vec<usize> {
    (0..n).filter(|i| !counts.contains_key(i)).collect()
}

fn duplicates(counts: &BTreeMap<usize, usize>) -> usize {
    counts.values().map(|c| c - 1).sum()
}

// 1. A dropped link while a QoS 1 stream flows.
#[test]
fn dropped_link_during_a_qos1_stream_reconnects_and_loses_nothing() {
    let broker = Broker::start();
    let proxy = Proxy::start(broker.port);
    let (sub, _) = connected(&[broker.port], options("res-drop-sub", true));
    let inbox = subscribe(&sub, "res/drop", QoS::AtLeastOnce);
    let (publisher, events) = connected(&[proxy.port()], options("res-drop-pub", false));

    const N: usize = 300;
    let start = Instant::now();
    let mut tokens = Vec::new();
    for i in 0..N {
        if i == 100 || i == 200 {
            if i == 200 {
                // Drop an established connection, not a reconnect in progress.
                events.wait_connected(2, T);
            }
            proxy.drop_all();
        }
        tokens.push(publish(&publisher, "res/drop", format!("m{i}"), QoS::AtLeastOnce));
        std::thread::sleep(Duration::from_millis(3));
    }
    for (i, t) in tokens.into_iter().enumerate() {
        let r = done(&publisher, t, T);
        assert!(ok(&r), "publish {i}: {r:?}");
    }
    let (all, messages) = inbox.wait_until(T, |m| missing(&tally(m, "m"), N).is_empty());
    let counts = tally(&messages, "m");
    assert!(all, "missing: {:?}", missing(&counts, N));
    // What reached the broker before a drop is a prefix of the stream; the rest is resent in order
    // ahead of newer publishes: first arrivals are in publish order.
    let mut seen = HashSet::new();
    let first: Vec<usize> = messages
        .iter()
        .filter_map(|p| text(p)[1..].parse::<usize>().ok())
        .filter(|n| seen.insert(*n))
        .collect();
    assert!(first.windows(2).all(|w| w[0] < w[1]), "out of order: {first:?}");

    let (lost_at, reason, server) = events.wait_lost(2, T);
    let (up_at, session_present, _) = events.wait_connected(3, T);
    assert!(up_at > lost_at);
    assert!(session_present, "the broker kept the publisher's session");
    assert_eq!(server, addr(proxy.port()));
    assert!(
        matches!(reason, Error::ConnectionClosed | Error::Io(_)),
        "lost because {reason:?}"
    );
    assert_eq!(events.kinds(), "CLCLC");
    assert_eq!(publisher.state(), State::Connected);
    eprintln!(
        "drop: {N} QoS 1 messages, 2 drops, {} duplicate(s), {} proxy connections, {:?}",
        duplicates(&counts),
        proxy.connections(),
        start.elapsed()
    );
}

// 2. A half-open link: keep-alive notices it within 1.5 keep-alive intervals, even while the
// client keeps sending.
#[test]
fn frozen_link_is_detected_by_keep_alive_and_replaced() {
    let broker = Broker::start();
    let proxy = Proxy::start(broker.port);
    let (c, events) = connected(
        &[proxy.port()],
        Options {
            keep_alive: 2,
            connect_timeout: Duration::from_secs(1),
            ..options("res-freeze", false)
        },
    );
    // A round trip: the client last heard from the broker at `heard`.
    let inbox = subscribe(&c, "res/freeze/rt", QoS::AtLeastOnce);
    let heard = Instant::now();
    // Something sent just before the freeze, so mosquitto (which allows 1.5 keep-alive intervals
    // of silence from the client) gives up on the link well after the client does, and the
    // client's loss is its own keep-alive's doing, not a close by the broker.
    std::thread::sleep(Duration::from_millis(1200));
    let t = publish(&c, "res/freeze/nobody", "x", QoS::AtMostOnce);
    assert!(ok(&done(&c, t, T)));
    let before = proxy.connections();
    proxy.freeze();
    let frozen = Instant::now();

    // Keep publishing into the black hole: outgoing traffic must not hide the silence.
    while Events::count(&events.all(), is_lost) == 0 && frozen.elapsed() < Duration::from_secs(6) {
        publish(&c, "res/freeze/nobody", "tick", QoS::AtMostOnce);
        std::thread::sleep(Duration::from_millis(100));
    }
    let (lost_at, reason, _) = events.wait_lost(1, Duration::from_secs(1));
    let after_freeze = lost_at - frozen;
    let after_heard = lost_at - heard;
    eprintln!(
        "freeze: lost {after_freeze:?} after the freeze, {after_heard:?} after the last packet received ({reason})"
    );
    assert_eq!(reason, Error::KeepAliveTimeout);
    // keep_alive 2 s: PINGREQ after 2 s of silence, PINGRESP awaited min(ping_timeout, 1 s).
    let limit = Duration::from_millis(3000 + 400);
    assert!(after_freeze <= limit, "lost {after_freeze:?} after the freeze");
    assert!(
        after_heard <= limit,
        "lost {after_heard:?} after the last packet received"
    );
    assert!(
        after_heard >= Duration::from_millis(2900),
        "lost only {after_heard:?} after the last packet"
    );

    proxy.unfreeze();
    let (up_at, _, _) = events.wait_connected(2, T);
    eprintln!("freeze: reconnected {:?} after the loss", up_at - lost_at);
    assert!(proxy.connections() > before, "a fresh connection was made");
    assert_eq!(c.state(), State::Connected);
    let t = publish(&c, "res/freeze/rt", "after", QoS::AtLeastOnce);
    assert!(ok(&done(&c, t, T)));
    inbox.expect("after", T);
    let sub2 = subscribe(&c, "res/freeze/rt2", QoS::ExactlyOnce);
    let t = publish(&c, "res/freeze/rt2", "after2", QoS::ExactlyOnce);
    assert!(ok(&done(&c, t, T)));
    sub2.expect("after2", T);
    assert_eq!(events.kinds(), "CLC");
}

// 3. A connection cut in the middle of a PUBLISH from the broker.
#[test]
fn link_cut_mid_packet_to_a_subscriber_redelivers_after_reconnect() {
    let broker = Broker::start();
    let proxy = Proxy::start(broker.port);
    let (sub, events) = connected(&[proxy.port()], options("res-cut-sub", false));
    let inbox = subscribe(&sub, "res/cut", QoS::AtLeastOnce);
    let (publisher, _) = connected(&[broker.port], options("res-cut-pub", true));
    let t = publish(&publisher, "res/cut", "warm-up", QoS::AtLeastOnce);
    assert!(ok(&done(&publisher, t, T)));
    inbox.expect("warm-up", T);
    std::thread::sleep(Duration::from_millis(100)); // the warm-up's PUBACK reaches the broker

    // Each PUBLISH below is 2 (header) + 2 + 7 (topic) + 2 (id) + 100 (payload) = 113 bytes:
    // 250 bytes end 24 bytes into the third.
    const N: usize = 20;
    proxy.cut_next(250);
    for i in 0..N {
        let t = publish(&publisher, "res/cut", format!("c{i:<99}"), QoS::AtLeastOnce);
        assert!(ok(&done(&publisher, t, T)));
    }
    let (lost_at, reason, _) = events.wait_lost(1, T);
    assert!(
        matches!(reason, Error::ConnectionClosed | Error::Io(_)),
        "lost because {reason:?}"
    );
    let (up_at, session_present, _) = events.wait_connected(2, T);
    assert!(up_at > lost_at);
    assert!(session_present, "the broker kept the subscriber's session");
    let prefix_tally = |m: &[Publish]| {
        let mut counts = BTreeMap::new();
        for p in m {
            if let Some(n) = text(p)
                .strip_prefix('c')
                .and_then(|n| n.trim_end().parse::<usize>().ok())
            {
                *counts.entry(n).or_insert(0) += 1;
            }
        }
        counts
    };
    let (all, messages) = inbox.wait_until(T, |m| missing(&prefix_tally(m), N).is_empty());
    let counts = prefix_tally(&messages);
    assert!(all, "missing: {:?}", missing(&counts, N));
    assert!(messages.iter().all(|p| p.payload.len() == 100 || text(p) == "warm-up"));
    eprintln!(
        "cut: {N} messages, {} duplicate(s), reason {reason:?}",
        duplicates(&counts)
    );
    assert_eq!(events.kinds(), "CLC");
}

// 4. Latency: 100 ms each way is not a failure.
#[test]
fn delayed_link_still_works_without_spurious_loss() {
    let broker = Broker::start();
    let proxy = Proxy::start(broker.port);
    proxy.set_delay(Duration::from_millis(100));
    let begin = Instant::now();
    let (c, events) = connected(
        &[proxy.port()],
        Options {
            keep_alive: 2,
            ..options("res-delay", false)
        },
    );
    let connect_time = begin.elapsed();
    assert!(
        connect_time >= Duration::from_millis(200),
        "the delay applies: connect took {connect_time:?}"
    );
    let inbox = subscribe(&c, "res/delay", QoS::ExactlyOnce);
    const N: usize = 20;
    let start = Instant::now();
    let tokens: Vec<_> = (0..N)
        .map(|i| publish(&c, "res/delay", format!("d{i}"), QoS::ExactlyOnce))
        .collect();
    for t in tokens {
        assert!(ok(&done(&c, t, T)));
    }
    let (all, messages) = inbox.wait_until(T, |m| m.len() >= N);
    assert!(all, "got {:?}", inbox.payloads());
    let round_trip = start.elapsed();
    // Past two keep-alive intervals, so PINGREQ/PINGRESP went through the delay too.
    std::thread::sleep(Duration::from_millis(4500).saturating_sub(begin.elapsed()));
    let messages2 = inbox.payloads();
    assert_eq!(messages2.len(), N, "each QoS 2 message exactly once: {messages2:?}");
    let expected: Vec<String> = (0..N).map(|i| format!("d{i}")).collect();
    assert_eq!(messages.iter().map(text).collect::<Vec<_>>(), expected, "in order");
    assert_eq!(events.kinds(), "C", "no loss");
    assert_eq!(proxy.connections(), 1);
    assert_eq!(c.state(), State::Connected);
    eprintln!("delay: connect {connect_time:?}, {N} QoS 2 round trips {round_trip:?}");
}

// 5. SIGKILL of a persistent broker while QoS 1 and QoS 2 streams flow.
//
// mosquitto 2.0.11 sends acknowledgements and releases (PUBACK, PUBREC, PUBREL, forwarded PUBLISH)
// before its next database save, and a SIGKILL during a save leaves the previous database, so a
// restarted broker can be a step behind what its clients saw. Seen in practice, all with QoS 2:
// a PUBREC'd message missing from the database (lost); a PUBLISH resent after its PUBREL (the
// subscriber must take it as new: duplicate); a message released twice because the publisher
// rightly repeats an unanswered PUBREL (duplicate); a packet id reused while the subscriber still
// holds it open (the subscriber must drop the new message: lost). A client following MQTT cannot
// prevent or detect these. The test does not hide them: it keeps the broker's log (one "life" per
// start) and a copy of the database each kill left, and accepts a lost or duplicated message only
// when these prove one of those broker failures for that very message (see `Witness`); anything
// else fails. A QoS 1 loss is held to the same proof. Seen once: the broker logged the forward to
// the subscriber and the PUBACK to the publisher, was killed before it wrote the forward (its
// writes are queued, and the PUBACK's socket happened to go first), and restarted from a database
// without the message.

/// What the broker did, for attributing an anomaly: its log split at each start (one life per
/// broker process) and its database as each kill left it (what the next life started from).
struct Witness {
    lives: Vec<String>,
    snapshots: Vec<Vec<u8>>,
}

fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

impl Witness {
    fn read(log: &std::path::Path, snapshots: Vec<Vec<u8>>) -> Witness {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let mut lives: Vec<String> = Vec::new();
        for line in text.lines() {
            if line.contains("mosquitto version") && line.ends_with(" starting") {
                lives.push(String::new());
            } else if let Some(life) = lives.last_mut() {
                life.push_str(line);
                life.push('\n');
            }
        }
        Witness { lives, snapshots }
    }

    /// For the last QoS 2 PUBLISH the broker sent the subscriber with packet id `s` in `life`:
    /// whether it went on to send the PUBREL for it. None if it sent none with that id.
    fn released(life: &str, s: u16) -> Option<bool> {
        let sent = format!("r0, m{s}, 'kill/q2'");
        let release = format!("Sending PUBREL to res-kill-sub (m{s})");
        let lines: Vec<&str> = life.lines().collect();
        let last = lines
            .iter()
            .rposition(|l| l.contains("Sending PUBLISH to res-kill-sub") && l.contains(&sent))?;
        Some(lines[last..].iter().any(|l| l.contains(&release)))
    }

    /// A message the subscriber never got. The publisher numbers its packets 1, 2, 3, ... in
    /// publish order (a0, b0, a1, b1, ...), so a_i has packet id 2i+1 and b_i 2i+2. Explained when
    /// the broker acknowledged it (PUBACK or PUBREC) in life `e` without passing it on there (QoS 1:
    /// not forwarded to the subscriber at once, or the forward not acknowledged there; QoS 2: no PUBCOMP for it in that life, nor a
    /// forward right after the publisher's PUBREL),
    /// and then either
    /// - the database kill `e` left did not hold it (acknowledged, then lost unsaved), or
    /// - (QoS 2) when the publisher's PUBREL released it in a later life, the broker sent it to the
    ///   subscriber under a packet id `s` whose previous exchange there was still open (the
    ///   broker's last PUBLISH with id `s` in the life before never got its PUBREL): its stale
    ///   database had forgotten that exchange. MQTT 3.1.1 section 4.3.3 has the receiver
    ///   acknowledge such a PUBLISH but not deliver it again until the PUBREL, so it is dropped.
    fn lost(&self, payload: &str, qos: u8, mid: usize) -> Option<String> {
        let received = format!("q{qos}, r0, m{mid}, 'kill/q{qos}'");
        let ack = match qos {
            1 => format!("Sending PUBACK to res-kill-pub (m{mid}, rc0)"),
            _ => format!("Sending PUBREC to res-kill-pub (m{mid}, rc0)"),
        };
        let release = format!("Received PUBREL from res-kill-pub (Mid: {mid})");
        let forward = format!("Sending PUBLISH to res-kill-sub (d0, q{qos}, r0, m");
        let complete = format!("Sending PUBCOMP to res-kill-pub (m{mid})");
        (0..self.snapshots.len()).find_map(|e| {
            let life: Vec<&str> = self.lives[e].lines().collect();
            let at = life
                .iter()
                .position(|l| l.contains("Received PUBLISH from res-kill-pub") && l.contains(&received))?;
            if !life.iter().any(|l| l.contains(&ack)) {
                return None;
            }
            let passed_on = match qos {
                // Forwarded at once, and the subscriber acknowledged the forward in that life: a
                // forward logged just before a kill may never have been written.
                1 => life
                    .get(at + 1)
                    .and_then(|l| l.split(forward.as_str()).nth(1)?.split(',').next())
                    .is_some_and(|s| {
                        let acked = format!("Received PUBACK from res-kill-sub (Mid: {s},");
                        life[at + 1..].iter().any(|l| l.contains(&acked))
                    }),
                // Released only where the broker acted on the PUBREL (answered it, or passed the
                // message on at once): a broker killed right after logging it may have done neither.
                _ => {
                    life.iter().any(|l| l.contains(&complete))
                        || life
                            .iter()
                            .position(|l| l.contains(&release))
                            .is_some_and(|r| life.get(r + 1).is_some_and(|l| l.contains(&forward)))
                }
            };
            if passed_on {
                return None;
            }
            let released_later = self.lives[e + 1..].iter().any(|l| l.contains(&release));
            if !holds(&self.snapshots[e], payload) && (qos == 1 || released_later) {
                return Some(format!(
                    "{payload} (publisher mid {mid}): acknowledged in broker life {e}, \
                     absent from the database kill #{e} left"
                ));
            }
            if qos != 2 {
                return None;
            }
            self.reused_open_id(e, &release).map(|(life, s)| {
                format!(
                    "{payload} (publisher mid {mid}): acknowledged in broker life {e}, released in life \
                     {life} to the subscriber as a new message with id {s}, whose exchange from life {} \
                     was still open",
                    life - 1
                )
            })
        })
    }

    /// After life `e`: the life in which the publisher's PUBREL (`release`) made the broker send
    /// the message to the subscriber under an id `s` left open by the life before; (life, s).
    /// The send is the line right after the PUBREL when the subscriber is connected. When it has
    /// not yet connected in that life, the broker sends the messages released meanwhile in order
    /// right after its CONNACK (resends with DUP aside), so the send is the k-th new QoS 2 PUBLISH
    /// there, k counting the earlier releases of that life whose message the broker had (its
    /// starting database held it).
    fn reused_open_id(&self, e: usize, release: &str) -> Option<(usize, u16)> {
        const SEND: &str = "Sending PUBLISH to res-kill-sub (d0, q2, r0, m";
        let id_of = |line: &str| -> Option<u16> { line.split(SEND).nth(1)?.split(',').next()?.parse().ok() };
        (e + 1..self.lives.len()).find_map(|n| {
            let lines: Vec<&str> = self.lives[n].lines().collect();
            let at = lines.iter().position(|l| l.contains(release))?;
            let s = match lines.get(at + 1).and_then(|l| id_of(l)) {
                Some(s) => s,
                None if !lines[..at].iter().any(|l| l.contains(" as res-kill-sub ")) => {
                    let held = |l: &&&str| {
                        let mid: usize = l
                            .split("Received PUBREL from res-kill-pub (Mid: ")
                            .nth(1)
                            .and_then(|r| r.split(')').next()?.parse().ok())
                            .unwrap_or(0);
                        mid >= 2 && holds(&self.snapshots[n - 1], &format!("b{:05}", (mid - 2) / 2))
                    };
                    let k = lines[..at].iter().filter(held).count();
                    let connack = at
                        + lines[at..]
                            .iter()
                            .position(|l| l.contains("Sending CONNACK to res-kill-sub"))?;
                    lines[connack..].iter().filter_map(|l| id_of(l)).nth(k)?
                }
                None => return None,
            };
            (Witness::released(&self.lives[n - 1], s) == Some(false)).then_some((n, s))
        })
    }

    /// A QoS 2 message the subscriber got twice: explained if a copy came as a DUP resend with
    /// packet id `s` in life e+1, while in life `e` the broker had already sent the PUBREL for its
    /// last PUBLISH with id `s` (so MQTT forbids resending the PUBLISH; the subscriber, which had
    /// the PUBREL and forgot the id, must take it as new), and the database kill `e` left still
    /// held the message.
    fn resent_after_release(&self, payload: &str, s: u16) -> Option<String> {
        let resent = format!("Sending PUBLISH to res-kill-sub (d1, q2, r0, m{s}, 'kill/q2'");
        (0..self.snapshots.len()).find_map(|e| {
            (Witness::released(&self.lives[e], s) == Some(true)
                && self.lives[e + 1].contains(&resent)
                && holds(&self.snapshots[e], payload))
            .then(|| {
                format!(
                    "{payload} (subscriber mid {s}): PUBREL sent in broker life {e}, PUBLISH resent with DUP \
                     in life {} from the stale database kill #{e} left",
                    e + 1
                )
            })
        })
    }

    /// A QoS 2 message the subscriber got twice, as two different messages: explained if the
    /// broker released it (the publisher's PUBREL for `mid`, passed on to the subscriber at once)
    /// in life `e`, the publisher, which had no PUBCOMP for it when that life ended, rightly sent
    /// the PUBREL again in life e+1 (MQTT-4.4.0-1), and the database kill `e` left still held the
    /// message as not yet released: the broker released it a second time.
    fn released_twice(&self, payload: &str, mid: usize) -> Option<String> {
        let release = format!("Received PUBREL from res-kill-pub (Mid: {mid})");
        (0..self.snapshots.len()).find_map(|e| {
            let lines: Vec<&str> = self.lives[e].lines().collect();
            let at = lines.iter().position(|l| l.contains(&release))?;
            let passed_on = lines
                .get(at + 1)
                .is_some_and(|l| l.contains("Sending PUBLISH to res-kill-sub (d0, q2, r0, m"));
            (passed_on && self.lives[e + 1].contains(&release) && holds(&self.snapshots[e], payload)).then(|| {
                format!(
                    "{payload} (publisher mid {mid}): released in broker life {e}; the publisher's repeated \
                     PUBREL released it again in life {} from the stale database kill #{e} left",
                    e + 1
                )
            })
        })
    }
}

fn sigkill_run(kills: usize, min_each: usize) {
    let logs = common::temp_dir("kill-log");
    let log = logs.join("mosquitto.log");
    let mut broker = Broker::start_persistent(&format!("log_dest file {}\nlog_type all\n", log.display()));
    let o = |id: &str| Options {
        keep_alive: 10,
        ..options(id, false)
    };
    // The publisher connects first, so the save the subscriptions trigger has its session too.
    let (publisher, pub_events) = connected(&[broker.port], o("res-kill-pub"));
    let (sub, sub_events) = connected(&[broker.port], o("res-kill-sub"));
    let q1 = subscribe(&sub, "kill/q1", QoS::AtLeastOnce);
    let q2 = subscribe(&sub, "kill/q2", QoS::ExactlyOnce);
    let db = broker.dir.join("mosquitto.db");
    // The first kill must find both subscriptions saved: the first save (made when the publisher
    // connected) holds neither, and a kill during a later save leaves the one before it.
    wait_for("the subscriptions saved", Duration::from_secs(10), || {
        std::fs::read(&db).is_ok_and(|d| holds(&d, "res-kill-subkill/q1") && holds(&d, "res-kill-subkill/q2"))
    });

    let start = Instant::now();
    let stop = AtomicBool::new(false);
    let mut snapshots = Vec::new();
    let mut back = Vec::new(); // from each restart until both clients were connected again
    let tokens = std::thread::scope(|s| {
        let producer = s.spawn(|| {
            let mut tokens = Vec::new();
            let mut i = 0;
            while i < min_each || !stop.load(Ordering::SeqCst) {
                tokens.push((
                    1,
                    i,
                    publish(&publisher, "kill/q1", format!("a{i:05}"), QoS::AtLeastOnce),
                ));
                tokens.push((
                    2,
                    i,
                    publish(&publisher, "kill/q2", format!("b{i:05}"), QoS::ExactlyOnce),
                ));
                i += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            tokens
        });
        for k in 0..kills {
            std::thread::sleep(Duration::from_millis(200 + 37 * (k as u64 % 5)));
            broker.kill();
            snapshots.push(std::fs::read(&db).unwrap_or_default());
            std::thread::sleep(Duration::from_millis(100));
            broker.restart();
            let restarted = Instant::now();
            // Both sessions are back before the next kill.
            let (p_at, _, _) = pub_events.wait_connected(k + 2, T);
            let (s_at, _, _) = sub_events.wait_connected(k + 2, T);
            back.push(p_at.max(s_at).saturating_duration_since(restarted));
        }
        stop.store(true, Ordering::SeqCst);
        producer.join().unwrap()
    });
    let published = tokens.len() / 2;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut failed = Vec::new();
    for (qos, i, t) in &tokens {
        let r = done(&publisher, *t, deadline.saturating_duration_since(Instant::now()));
        if !ok(&r) {
            failed.push((qos, i, r));
        }
    }
    assert!(failed.is_empty(), "publishes failed: {failed:?}");
    let rest = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_secs(3));
    q1.wait_until(rest, |m| missing(&tally(m, "a"), published).is_empty());
    q2.wait_until(Duration::from_secs(3), |m| {
        missing(&tally(m, "b"), published).is_empty()
    });
    std::thread::sleep(Duration::from_millis(300)); // late duplicates
    let elapsed = start.elapsed();
    let got1 = q1.messages.lock().unwrap().clone();
    let got2 = q2.messages.lock().unwrap().clone();
    let (c1, c2) = (tally(&got1, "a"), tally(&got2, "b"));
    let (m1, m2) = (missing(&c1, published), missing(&c2, published));
    let twice: Vec<usize> = c2.iter().filter(|(_, n)| **n > 1).map(|(i, _)| *i).collect();

    let witness = Witness::read(&log, snapshots);
    let mut explained = Vec::new();
    let mut unexplained = Vec::new();
    for (qos, lost) in [(1u8, &m1), (2, &m2)] {
        for &i in lost {
            let payload = format!("{}{i:05}", if qos == 1 { 'a' } else { 'b' });
            match witness.lost(&payload, qos, 2 * i + qos as usize) {
                Some(why) => explained.push(format!("lost by the broker: {why}")),
                None => unexplained.push(format!("QoS {qos} message {payload} lost")),
            }
        }
    }
    for &i in &twice {
        let payload = format!("b{i:05}");
        let copies: Vec<&Publish> = got2.iter().filter(|p| text(p) == payload).collect();
        let why = copies
            .iter()
            .filter(|p| p.dup)
            .find_map(|p| witness.resent_after_release(&payload, p.pkid))
            .or_else(|| witness.released_twice(&payload, 2 * i + 2));
        match why {
            Some(why) => explained.push(format!("duplicated by the broker: {why}")),
            None => unexplained.push(format!(
                "QoS 2 message {payload} delivered {} times (dup/pkid: {:?})",
                copies.len(),
                copies.iter().map(|p| (p.dup, p.pkid)).collect::<Vec<_>>()
            )),
        }
    }
    let session_flags = |e: &Events| -> Vec<bool> {
        e.all()
            .iter()
            .filter_map(|(_, e)| match e {
                ConnectionEvent::Connected { session_present, .. } => Some(*session_present),
                _ => None,
            })
            .collect()
    };
    eprintln!(
        "sigkill x{kills}: {published} QoS 1 + {published} QoS 2 published, all acknowledged; run {elapsed:?}; \
         reconnected after each restart within {:?}; \
         QoS 1 duplicates: {}; QoS 1 lost: {}; QoS 2 lost: {}; QoS 2 duplicated: {}; \
         session present (publisher): {:?}, (subscriber): {:?}",
        back.iter().max().copied().unwrap_or_default(),
        duplicates(&c1),
        m1.len(),
        m2.len(),
        twice.len(),
        session_flags(&pub_events),
        session_flags(&sub_events)
    );
    for line in &explained {
        eprintln!("  {line}");
    }
    if !unexplained.is_empty() {
        // Evidence for whoever investigates: keep the broker's log and databases.
        let keep = std::env::temp_dir().join(format!("mqttc-sigkill{kills}-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&keep);
        let _ = std::fs::copy(&log, keep.join("mosquitto.log"));
        for (k, s) in witness.snapshots.iter().enumerate() {
            let _ = std::fs::write(keep.join(format!("mosquitto.db.after-kill-{k}")), s);
        }
        eprintln!("broker log and databases kept in {}", keep.display());
    }
    assert!(unexplained.is_empty(), "not explained by the broker: {unexplained:?}");
    assert!(
        session_flags(&pub_events)[1..].iter().all(|p| *p) && session_flags(&sub_events)[1..].iter().all(|p| *p),
        "the persistent broker kept both sessions"
    );
    assert!(!sub_events.kinds().contains('D') && !pub_events.kinds().contains('D'));
}

#[test]
fn sigkill_of_a_persistent_broker_3_times_breaks_no_qos_promise_but_proven_broker_failures() {
    sigkill_run(3, 200);
}

#[test]
#[ignore = "long: run with --ignored"]
fn sigkill_of_a_persistent_broker_20_times_breaks_no_qos_promise_but_proven_broker_failures() {
    sigkill_run(20, 1000);
}

// 6. Several servers: the client fails over to the next one.
#[test]
fn failover_to_the_second_server_resubscribes_there() {
    let mut a = Broker::start();
    let b = Broker::start();
    let (c, events) = connected(&[a.port, b.port], options("res-failover", false));
    let (_, session_present, server) = events.wait_connected(1, T);
    assert_eq!(server, addr(a.port), "the first server of the list first");
    assert!(!session_present);
    let inbox = subscribe(&c, "fo/t", QoS::AtLeastOnce);
    let (on_a, _) = connected(&[a.port], options("res-failover-a", true));
    let t = publish(&on_a, "fo/t", "on-a", QoS::AtLeastOnce);
    assert!(ok(&done(&on_a, t, T)));
    inbox.expect("on-a", T);
    // B holds a retained message on the filter: receiving it proves the client subscribed there.
    let (on_b, _) = connected(&[b.port], options("res-failover-b", true));
    let t = on_b
        .publish(topic("fo/t"), Bytes::from_static(b"retained-b"), QoS::AtLeastOnce, true)
        .unwrap();
    assert!(ok(&done(&on_b, t, T)));

    a.kill();
    let (_, reason, lost_server) = events.wait_lost(1, T);
    assert_eq!(lost_server, addr(a.port));
    eprintln!("failover: lost A because {reason:?}");
    let (_, session_present, server) = events.wait_connected(2, T);
    assert_eq!(server, addr(b.port), "continues on B");
    assert!(!session_present, "B never saw this client");
    inbox.expect("retained-b", T);
    let t = publish(&on_b, "fo/t", "live-b", QoS::AtLeastOnce);
    assert!(ok(&done(&on_b, t, T)));
    inbox.expect("live-b", T);
    assert_eq!(inbox.payloads(), ["on-a", "retained-b", "live-b"]);
    assert_eq!(c.state(), State::Connected);
    assert_eq!(events.kinds(), "CLC");
}

// 7. The offline queue through a real broker.
struct OfflineCase {
    overflow: Overflow,
    max_messages: usize,
    max_bytes: usize,
    count: usize,
}

/// Connects through a proxy, cuts the link and refuses reconnects, publishes `count` QoS 1
/// messages "o00".."oNN" while reconnecting, checks which tokens failed at once, lets the client
/// back in, and returns every token's result and what a subscriber received (after "pre").
fn offline_case(tag: &str, case: OfflineCase) -> (Vec<TokenResult>, Vec<String>) {
    let broker = Broker::start();
    let proxy = Proxy::start(broker.port);
    let t_name = format!("res/off/{tag}");
    let (sub, _) = connected(&[broker.port], options(&format!("res-off-sub-{tag}"), true));
    let inbox = subscribe(&sub, &t_name, QoS::AtLeastOnce);
    let (c, events) = connected(
        &[proxy.port()],
        Options {
            offline_max_messages: case.max_messages,
            offline_max_bytes: case.max_bytes,
            offline_overflow: case.overflow,
            reconnect_max: Duration::from_millis(200),
            ..options(&format!("res-off-{tag}"), false)
        },
    );
    let t = publish(&c, &t_name, "pre", QoS::AtLeastOnce);
    assert!(ok(&done(&c, t, T)));
    inbox.expect("pre", T);

    proxy.refuse(true);
    proxy.drop_all();
    events.wait_lost(1, T);
    let tokens: Vec<Token> = (0..case.count)
        .map(|i| publish(&c, &t_name, format!("o{i:02}"), QoS::AtLeastOnce))
        .collect();
    // Overflow verdicts come at once, without a connection; the rest wait.
    std::thread::sleep(Duration::from_millis(300));
    let early: Vec<TokenState> = tokens.iter().map(|t| c.token_state(*t)).collect();
    assert!(
        matches!(c.state(), State::Reconnecting | State::Connecting),
        "{:?}",
        c.state()
    );
    assert_eq!(inbox.payloads(), ["pre"], "nothing leaked out while offline");
    proxy.refuse(false);
    events.wait_connected(2, T);
    let results: Vec<TokenResult> = tokens.iter().map(|t| done(&c, *t, T)).collect();
    for (i, (e, r)) in early.iter().zip(&results).enumerate() {
        match r {
            Ok(_) => assert_eq!(*e, TokenState::Pending, "token {i} waited for the connection"),
            Err(_) => assert_eq!(*e, TokenState::Done(r.clone()), "token {i} failed at once"),
        }
    }
    let survivors = results.iter().filter(|r| r.is_ok()).count();
    let (all, _) = inbox.wait_until(T, |m| m.len() > survivors);
    assert!(all, "got {:?}", inbox.payloads());
    std::thread::sleep(Duration::from_millis(200)); // nothing more comes
    let received = inbox.payloads()[1..].to_vec();
    (results, received)
}

fn names(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("o{i:02}")).collect()
}

/// Runs [`offline_case`] where the queue holds `fits` of the `count` messages, and checks the
/// policy's outcome: reject-new keeps the first `fits` and fails the rest with QueueFull;
/// drop-oldest fails the first ones with Dropped and keeps the last `fits`. The kept ones must
/// succeed and arrive, in order.
fn check_overflow(tag: &str, case: OfflineCase, fits: usize) {
    let count = case.count;
    let (kept, failure) = match case.overflow {
        Overflow::RejectNew => (0..fits, Error::QueueFull),
        Overflow::DropOldest => (count - fits..count, Error::Dropped),
    };
    let (results, received) = offline_case(tag, case);
    let expected: Vec<TokenResult> = (0..count)
        .map(|i| {
            if kept.contains(&i) {
                Ok(Default::default())
            } else {
                Err(failure.clone())
            }
        })
        .collect();
    assert_eq!(results, expected);
    assert_eq!(received, names(kept));
}

#[test]
fn offline_queue_reject_new_fails_the_newest_and_sends_the_rest_in_order() {
    let case = OfflineCase {
        overflow: Overflow::RejectNew,
        max_messages: 5,
        max_bytes: 1 << 20,
        count: 8,
    };
    check_overflow("reject", case, 5);
}

#[test]
fn offline_queue_drop_oldest_fails_the_oldest_and_sends_the_rest_in_order() {
    let case = OfflineCase {
        overflow: Overflow::DropOldest,
        max_messages: 5,
        max_bytes: 1 << 20,
        count: 8,
    };
    check_overflow("drop", case, 5);
}

#[test]
fn offline_queue_byte_limit_applies_under_both_policies() {
    // Each message costs topic + payload = "res/off/bytes-r".len() (15) + 3 = 18 bytes; 60 bytes
    // hold three.
    for (tag, overflow) in [("bytes-r", Overflow::RejectNew), ("bytes-d", Overflow::DropOldest)] {
        let case = OfflineCase {
            overflow,
            max_messages: 100,
            max_bytes: 60,
            count: 6,
        };
        check_overflow(tag, case, 3);
    }
}

// 8. disconnect and free never hang.
#[test]
fn disconnect_while_reconnecting_to_a_dead_broker_is_prompt_and_cancels_everything() {
    let mut broker = Broker::start();
    let (c, events) = connected(
        &[broker.port],
        Options {
            reconnect_min: Duration::from_millis(300),
            reconnect_max: Duration::from_secs(2),
            ..options("res-disc-dead", false)
        },
    );
    let _inbox = subscribe(&c, "res/disc", QoS::AtLeastOnce);
    broker.kill();
    events.wait_lost(1, T);
    let publishes: Vec<Token> = (0..3)
        .map(|i| publish(&c, "res/disc", format!("p{i}"), QoS::AtLeastOnce))
        .collect();
    let extra = Arc::new(Inbox::default());
    let sub_token = c
        .subscribe(vec![(topic("res/disc2"), QoS::AtLeastOnce, extra.handler())])
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert!(matches!(c.state(), State::Reconnecting | State::Connecting));
    let start = Instant::now();
    let t = c.disconnect().unwrap();
    assert_eq!(done(&c, t, Duration::from_secs(2)), Ok(Default::default()));
    let took = start.elapsed();
    assert!(took < Duration::from_secs(1), "disconnect took {took:?}");
    for p in &publishes {
        assert_eq!(c.token_state(*p), TokenState::Done(Err(Error::Cancelled)));
    }
    assert_eq!(c.token_state(sub_token), TokenState::Done(Err(Error::Cancelled)));
    assert_eq!(c.state(), State::Disconnected);
    events.wait("Disconnected event", T, |l| {
        l.iter().any(|(_, e)| *e == ConnectionEvent::Disconnected)
    });
    // No automatic reconnect after the application ended the session.
    broker.restart();
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(c.state(), State::Disconnected);
    assert_eq!(events.kinds(), "CLD");
    eprintln!("disconnect while reconnecting: {took:?}");
}

#[test]
fn disconnect_while_reconnecting_cancels_unacknowledged_and_offline_publishes() {
    let broker = Broker::start();
    let proxy = Proxy::start(broker.port);
    let (c, events) = connected(&[proxy.port()], options("res-disc-inflight", false));
    proxy.freeze();
    // In flight: written to the black hole, never acknowledged.
    let inflight: Vec<Token> = (0..3)
        .map(|i| publish(&c, "res/disc", format!("f{i}"), QoS::ExactlyOnce))
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    proxy.refuse(true);
    proxy.drop_all();
    events.wait_lost(1, T);
    let offline: Vec<Token> = (0..2)
        .map(|i| publish(&c, "res/disc", format!("q{i}"), QoS::AtLeastOnce))
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    for t in inflight.iter().chain(&offline) {
        assert_eq!(c.token_state(*t), TokenState::Pending);
    }
    let start = Instant::now();
    let t = c.disconnect().unwrap();
    assert_eq!(done(&c, t, Duration::from_secs(2)), Ok(Default::default()));
    let took = start.elapsed();
    assert!(took < Duration::from_secs(1), "disconnect took {took:?}");
    for t in inflight.iter().chain(&offline) {
        assert_eq!(c.token_state(*t), TokenState::Done(Err(Error::Cancelled)));
    }
    assert_eq!(c.state(), State::Disconnected);
    events.wait("Disconnected event", T, |l| {
        l.iter().any(|(_, e)| *e == ConnectionEvent::Disconnected)
    });
    assert_eq!(events.kinds(), "CLD");
}

#[test]
fn disconnect_and_free_with_a_frozen_broker_are_prompt() {
    let broker = Broker::start();
    let proxy = Proxy::start(broker.port);
    // disconnect with a frozen broker: waits the disconnect timeout for acknowledgements, no more.
    let (c, events) = connected(
        &[proxy.port()],
        Options {
            disconnect_timeout: Duration::from_millis(500),
            ..options("res-frozen-disc", false)
        },
    );
    proxy.freeze();
    let p = publish(&c, "res/frozen", "x", QoS::AtLeastOnce);
    let start = Instant::now();
    let t = c.disconnect().unwrap();
    assert_eq!(done(&c, t, Duration::from_secs(3)), Ok(Default::default()));
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_millis(1500),
        "disconnect took {took:?}"
    );
    assert_eq!(c.token_state(p), TokenState::Done(Err(Error::Cancelled)));
    events.wait("Disconnected event", T, |l| {
        l.iter().any(|(_, e)| *e == ConnectionEvent::Disconnected)
    });
    drop(c);
    proxy.unfreeze();

    // free with a frozen broker, even in the middle of a disconnect that would wait 10 s.
    let (c, _) = connected(&[proxy.port()], options("res-frozen-free", false));
    proxy.freeze();
    let p = publish(&c, "res/frozen", "y", QoS::ExactlyOnce);
    let d = c.disconnect().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let start = Instant::now();
    c.close();
    let took = start.elapsed();
    assert!(took < Duration::from_secs(2), "free took {took:?}");
    assert_eq!(c.token_state(p), TokenState::Done(Err(Error::Cancelled)));
    assert_eq!(c.token_state(d), TokenState::Done(Err(Error::Cancelled)));
    drop(c);
    proxy.unfreeze();

    // free while reconnect attempts hang in the handshake (CONNECT black-holed).
    let (c, events) = connected(
        &[proxy.port()],
        Options {
            keep_alive: 1,
            connect_timeout: Duration::from_secs(30),
            ..options("res-frozen-free2", false)
        },
    );
    proxy.freeze();
    events.wait_lost(1, Duration::from_secs(4));
    let before = proxy.connections();
    wait_for("a reconnect attempt", Duration::from_secs(3), || {
        proxy.connections() > before
    });
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(c.state(), State::Connecting);
    let start = Instant::now();
    c.close();
    let took = start.elapsed();
    assert!(took < Duration::from_secs(2), "free took {took:?}");
    eprintln!("free during a hanging handshake: {took:?}");
}

/// A "broker" that accepts one connection, answers CONNACK, then never reads again: the client's
/// writes fill the socket buffers and block (a broker stopped with SIGSTOP looks the same).
fn stalled_broker() -> (u16, std::sync::mpsc::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = listener.accept() else { return };
        let mut buf = [0u8; 256];
        let _ = s.read(&mut buf); // the CONNECT (small: one read)
        let _ = s.write_all(&[0x20, 0x02, 0x00, 0x00]);
        // Hold the socket, unread, until the test ends.
        let _ = stop_rx.recv_timeout(Duration::from_secs(30));
    });
    (port, stop_tx)
}

/// Queues 16 MiB (more than the socket buffers hold, and more than the engine's 1 MiB write
/// high-water mark) to a broker that does not read.
fn stalled_client(tag: &str, disconnect_timeout: Duration) -> (Client, std::sync::mpsc::Sender<()>, Vec<Token>) {
    let (port, stop) = stalled_broker();
    let (c, _) = connected(
        &[port],
        Options {
            keep_alive: 0,
            disconnect_timeout,
            ..options(tag, true)
        },
    );
    let big = vec![7u8; 4 << 20];
    let tokens: Vec<Token> = (0..4)
        .map(|_| publish(&c, "res/stalled", big.clone(), QoS::AtLeastOnce))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(c.token_state(tokens[0]), TokenState::Pending);
    (c, stop, tokens)
}

#[test]
fn free_with_a_broker_that_stopped_reading_is_prompt() {
    let (c, stop, tokens) = stalled_client("res-stalled-free", Duration::from_secs(10));
    let start = Instant::now();
    c.close();
    let took = start.elapsed();
    assert!(took < Duration::from_secs(2), "free took {took:?}");
    for t in tokens {
        assert_eq!(c.token_state(t), TokenState::Done(Err(Error::Cancelled)));
    }
    drop(stop);
}

/// The network task takes no other command while its write buffer is above the high-water mark,
/// and that buffer never drains when the broker stops reading: a disconnect must still be taken,
/// and end the link after the disconnect timeout.
#[test]
fn disconnect_with_a_broker_that_stopped_reading_completes_after_the_disconnect_timeout() {
    let (c, stop, tokens) = stalled_client("res-stalled-disc", Duration::from_millis(500));
    let start = Instant::now();
    let t = c.disconnect().unwrap();
    let r = c.wait(t, Duration::from_secs(5));
    let took = start.elapsed();
    assert!(
        matches!(r, Some(TokenState::Done(_))),
        "disconnect still pending after {took:?} (state {:?})",
        c.state()
    );
    for t in tokens {
        assert_eq!(c.token_state(t), TokenState::Done(Err(Error::Cancelled)));
    }
    assert_eq!(c.state(), State::Disconnected);
    drop(stop);
}

// 9. More of the reconnect semantics: server order, first connect, backoff, resumed QoS 2 state on
// both sides, queue_before_connect, reconnect (also cut short by disconnect), auto_reconnect off.

/// rotate_servers=false (the default): every (re)connect starts again at the head of the list.
#[test]
fn reconnect_returns_to_the_first_server_of_the_list() {
    let a = Broker::start();
    let b = Broker::start();
    let proxy = Proxy::start(a.port);
    let (c, events) = connected(&[proxy.port(), b.port], options("res-order", true));
    assert_eq!(events.wait_connected(1, T).2, addr(proxy.port()));
    // A refuses for a moment: the client goes to B.
    proxy.refuse(true);
    proxy.drop_all();
    assert_eq!(events.wait_connected(2, T).2, addr(b.port));
    // A new connection (here asked for by the application, while B works) tries the list from
    // the top again: A, back by now, first.
    proxy.refuse(false);
    let t = c.reconnect().unwrap();
    assert!(ok(&done(&c, t, T)));
    assert_eq!(events.wait_connected(3, T).2, addr(proxy.port()));
    let seen: HashSet<String> = events
        .all()
        .iter()
        .filter_map(|(_, e)| match e {
            ConnectionEvent::Connected { server, .. } => Some(server.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(seen.len(), 2);
}

#[test]
fn a_failed_first_connect_is_not_retried() {
    let broker = Broker::start();
    let proxy = Proxy::start(broker.port);
    proxy.refuse(true);
    let (c, events) = client(&[proxy.port()], options("res-first", false));
    let t = c.connect().unwrap();
    let r = done(&c, t, T);
    assert!(r.is_err(), "connect through a refusing link: {r:?}");
    assert_eq!(c.state(), State::Disconnected);
    assert_eq!(
        c.publish(topic("res/first"), Bytes::from_static(b"x"), QoS::AtLeastOnce, false),
        Err(Error::NotConnected),
        "no session: nothing is queued"
    );
    std::thread::sleep(Duration::from_millis(800)); // several reconnect_min intervals
    assert_eq!(proxy.connections(), 1, "no automatic retry of a first connect");
    assert_eq!(c.state(), State::Disconnected);
    assert_eq!(events.kinds(), "", "no connection, so no event");
    // The application may try again.
    proxy.refuse(false);
    let t = c.connect().unwrap();
    assert!(ok(&done(&c, t, T)));
    events.wait_connected(1, T);
}

#[test]
fn reconnect_attempts_back_off_exponentially_with_jitter_and_reset_after_success() {
    let broker = Broker::start();
    let proxy = Proxy::start(broker.port);
    let (min, max) = (Duration::from_millis(100), Duration::from_millis(400));
    let (c, events) = connected(
        &[proxy.port()],
        Options {
            reconnect_min: min,
            reconnect_max: max,
            ..options("res-backoff", false)
        },
    );
    // Attempt instants, as the proxy accepts them (polled every 2 ms).
    let attempts = |from: Instant, until: Instant| {
        let mut seen = proxy.connections();
        let mut at = vec![from];
        while Instant::now() < until {
            let n = proxy.connections();
            if n > seen {
                at.extend(std::iter::repeat_n(Instant::now(), n - seen));
                seen = n;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        at.windows(2).map(|w| w[1] - w[0]).collect::<Vec<_>>()
    };
    proxy.refuse(true);
    let cut = Instant::now();
    proxy.drop_all();
    let gaps = attempts(cut, cut + Duration::from_millis(2200));
    eprintln!("backoff: gaps between attempts {gaps:?}");
    assert!(gaps.len() >= 5, "{gaps:?}");
    for (k, gap) in gaps.iter().enumerate() {
        let nominal = (min * 2u32.pow(k as u32)).min(max);
        assert!(
            *gap + Duration::from_millis(10) >= nominal / 2 && *gap <= nominal + Duration::from_millis(60),
            "attempt {k}: {gap:?} not within [{:?}, {nominal:?}] (+ slack); all: {gaps:?}",
            nominal / 2
        );
    }
    let capped: Vec<_> = gaps[3..].iter().map(|g| g.as_millis()).collect();
    assert!(
        capped.iter().max().unwrap() - capped.iter().min().unwrap() > 2,
        "jitter: {capped:?}"
    );
    assert_eq!(events.kinds(), "CL", "failed attempts make no events");
    proxy.refuse(false);
    events.wait_connected(2, max + Duration::from_secs(1));
    // A success resets the backoff: the next loss is retried after at most reconnect_min.
    let before = proxy.connections();
    let cut = Instant::now();
    proxy.drop_all();
    wait_for("a reconnect attempt", T, || proxy.connections() > before);
    let first = cut.elapsed();
    assert!(first <= min + Duration::from_millis(60), "first retry after {first:?}");
    events.wait_connected(3, T);
    assert_eq!(c.state(), State::Connected);
}

#[test]
fn inbound_qos2_state_survives_a_reconnect_so_a_resent_publish_is_not_delivered_twice() {
    let logs = common::temp_dir("q2in-log");
    let log = logs.join("mosquitto.log");
    let broker = Broker::start_with(&format!("log_dest file {}\nlog_type all\n", log.display()));
    let proxy = Proxy::start(broker.port);
    let (sub, events) = connected(&[proxy.port()], options("res-q2in-sub", false));
    let inbox = subscribe(&sub, "res/q2in", QoS::ExactlyOnce);
    let (publisher, _) = connected(&[broker.port], options("res-q2in-pub", true));
    let t = publish(&publisher, "res/q2in", "warm-up", QoS::ExactlyOnce);
    assert!(ok(&done(&publisher, t, T)));
    inbox.expect("warm-up", T);
    std::thread::sleep(Duration::from_millis(200)); // the warm-up's PUBREL/PUBCOMP are through
    // PUBLISH = 2 (header) + 2 + 8 (topic) + 2 (id) + 20 (payload) = 34 bytes: the link closes
    // right after it reaches the subscriber, before its PUBREC can reach the broker, which must
    // then resend it (DUP, same id) on the resumed session. The subscriber still holds the id.
    const ROUNDS: usize = 3;
    for k in 0..ROUNDS {
        proxy.cut_next(34);
        let t = publish(&publisher, "res/q2in", format!("exactly-once-{k:07}"), QoS::ExactlyOnce);
        assert!(ok(&done(&publisher, t, T)));
        let (_, present, _) = events.wait_connected(k + 2, T);
        assert!(present, "the broker resumed the session");
        inbox.expect(&format!("exactly-once-{k:07}"), T);
        std::thread::sleep(Duration::from_millis(200)); // its QoS 2 exchange finishes
    }
    std::thread::sleep(Duration::from_millis(300));
    let got = inbox.payloads();
    let expected: Vec<String> = std::iter::once("warm-up".to_string())
        .chain((0..ROUNDS).map(|k| format!("exactly-once-{k:07}")))
        .collect();
    assert_eq!(got, expected, "each QoS 2 message exactly once");
    assert_eq!(events.kinds(), "CLCLCLC");
    // The scenario really happened: the broker resent each message (DUP) after the cut.
    let resent = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("Sending PUBLISH to res-q2in-sub (d1, q2"))
        .count();
    assert_eq!(resent, ROUNDS, "DUP resends in the broker's log");
}

#[test]
fn rotate_servers_starts_each_reconnect_after_the_last_server_used() {
    let a = Broker::start();
    let b = Broker::start();
    let (c, events) = connected(
        &[a.port, b.port],
        Options {
            rotate_servers: true,
            ..options("res-rotate", true)
        },
    );
    assert_eq!(events.wait_connected(1, T).2, addr(a.port));
    for (n, expected) in [(2, b.port), (3, a.port), (4, b.port)] {
        let t = c.reconnect().unwrap();
        assert!(ok(&done(&c, t, T)));
        assert_eq!(events.wait_connected(n, T).2, addr(expected), "connection #{n}");
    }
}

#[test]
fn publishes_made_before_the_first_connect_wait_when_queue_before_connect_is_set() {
    let broker = Broker::start();
    let (sub, _) = connected(&[broker.port], options("res-early-sub", true));
    let inbox = subscribe(&sub, "res/early", QoS::AtLeastOnce);
    let (c, events) = client(
        &[broker.port],
        Options {
            queue_before_connect: true,
            ..options("res-early", true)
        },
    );
    let tokens: Vec<Token> = (0..3)
        .map(|i| publish(&c, "res/early", format!("e{i}"), QoS::AtLeastOnce))
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    for t in &tokens {
        assert_eq!(c.token_state(*t), TokenState::Pending);
    }
    let t = c.connect().unwrap();
    assert!(ok(&done(&c, t, T)));
    for t in tokens {
        assert!(ok(&done(&c, t, T)));
    }
    let (all, _) = inbox.wait_until(T, |m| m.len() >= 3);
    assert!(all);
    assert_eq!(inbox.payloads(), ["e0", "e1", "e2"]);
    events.wait_connected(1, T);
}

#[test]
fn reconnect_cuts_the_backoff_wait_short() {
    let mut broker = Broker::start();
    let (c, events) = connected(
        &[broker.port],
        Options {
            reconnect_min: Duration::from_secs(8),
            reconnect_max: Duration::from_secs(8),
            ..options("res-skip-wait", false)
        },
    );
    broker.kill();
    events.wait_lost(1, T);
    broker.restart();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        c.state(),
        State::Reconnecting,
        "waiting 4 to 8 s before the next attempt"
    );
    let start = Instant::now();
    let t = c.reconnect().unwrap();
    assert!(ok(&done(&c, t, T)));
    let took = start.elapsed();
    assert!(took < Duration::from_secs(1), "reconnect took {took:?}");
    events.wait_connected(2, T);
    assert_eq!(c.state(), State::Connected);
}

#[test]
fn disconnect_during_a_hanging_connect_completes_every_token() {
    let broker = Broker::start();
    let proxy = Proxy::start(broker.port);
    proxy.freeze(); // the CONNECT goes into a black hole: no CONNACK
    let (c, events) = client(&[proxy.port()], options("res-hang-connect", false));
    let connect = c.connect().unwrap();
    wait_for("the TCP connection", T, || proxy.connections() == 1);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(c.state(), State::Connecting);
    let start = Instant::now();
    let d = c.disconnect().unwrap();
    assert_eq!(done(&c, d, Duration::from_secs(2)), Ok(Default::default()));
    assert!(start.elapsed() < Duration::from_secs(1));
    assert_eq!(c.state(), State::Disconnected);
    let r = c.wait(connect, Duration::from_secs(2));
    assert!(
        matches!(r, Some(TokenState::Done(Err(_)))),
        "the connect token of the abandoned attempt: {r:?}"
    );
    assert_eq!(events.kinds(), "", "no connection, so no event");
}

#[test]
fn disconnect_during_a_hanging_reconnect_completes_every_token() {
    let broker = Broker::start();
    let proxy = Proxy::start(broker.port);
    let (c, events) = connected(&[proxy.port()], options("res-hang-reconnect", false));
    proxy.freeze();
    // An application reconnect: the new CONNECT goes into the black hole.
    let reconnect = c.reconnect().unwrap();
    wait_for("the new TCP connection", T, || proxy.connections() == 2);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(c.state(), State::Connecting);
    let d = c.disconnect().unwrap();
    assert_eq!(done(&c, d, Duration::from_secs(2)), Ok(Default::default()));
    assert_eq!(c.state(), State::Disconnected);
    let r = c.wait(reconnect, Duration::from_secs(2));
    assert!(
        matches!(r, Some(TokenState::Done(Err(_)))),
        "the reconnect token of the abandoned attempt: {r:?}"
    );
    events.wait("Disconnected event", T, |l| {
        l.iter().any(|(_, e)| *e == ConnectionEvent::Disconnected)
    });
}

#[test]
fn pubrec_d_qos2_publish_gets_its_pubrel_not_a_resend_after_reconnect() {
    let logs = common::temp_dir("q2out-log");
    let log = logs.join("mosquitto.log");
    let broker = Broker::start_with(&format!("log_dest file {}\nlog_type all\n", log.display()));
    let proxy = Proxy::start(broker.port);
    let (sub, _) = connected(&[broker.port], options("res-q2out-sub", true));
    let inbox = subscribe(&sub, "res/q2out", QoS::ExactlyOnce);
    let (publisher, events) = connected(&[proxy.port()], options("res-q2out-pub", false));
    // The PUBREC (4 bytes) reaches the publisher, then the link closes: its PUBREL is lost.
    proxy.cut_next(4);
    let t = publish(&publisher, "res/q2out", "once", QoS::ExactlyOnce);
    let (_, reason, _) = events.wait_lost(1, T);
    let (_, present, _) = events.wait_connected(2, T);
    assert!(present, "the broker resumed the publisher's session ({reason:?})");
    assert!(ok(&done(&publisher, t, T)));
    inbox.expect("once", T);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(inbox.payloads(), ["once"]);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let count = |what: &str| text.lines().filter(|l| l.contains(what)).count();
    assert_eq!(
        count("Received PUBLISH from res-q2out-pub"),
        1,
        "no PUBLISH resend:\n{text}"
    );
    assert_eq!(
        count("Received PUBREL from res-q2out-pub"),
        1,
        "the PUBREL, after the reconnect"
    );
}

#[test]
fn without_auto_reconnect_the_session_waits_for_the_application() {
    let broker = Broker::start();
    let proxy = Proxy::start(broker.port);
    let (sub, _) = connected(&[broker.port], options("res-manual-sub", true));
    let inbox = subscribe(&sub, "res/manual", QoS::AtLeastOnce);
    let (c, events) = connected(
        &[proxy.port()],
        Options {
            auto_reconnect: false,
            ..options("res-manual", false)
        },
    );
    proxy.drop_all();
    events.wait_lost(1, T);
    let t = publish(&c, "res/manual", "kept", QoS::AtLeastOnce);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(c.state(), State::Disconnected);
    assert_eq!(proxy.connections(), 1, "no automatic attempt");
    assert_eq!(c.token_state(t), TokenState::Pending, "kept in the offline queue");
    let r = c.reconnect().unwrap();
    assert!(ok(&done(&c, r, T)));
    assert!(ok(&done(&c, t, T)));
    inbox.expect("kept", T);
    let (_, present, _) = events.wait_connected(2, T);
    assert!(present);
    assert_eq!(events.kinds(), "CLC");
}
