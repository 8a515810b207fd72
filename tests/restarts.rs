//! QoS 2 through a persistent mosquitto that is restarted with SIGTERM about every half second,
//! between a persistent line-mode publisher (`-c -q 2 -l`) and a persistent subscriber (`-c -q 2`):
//! our command-line tools (c_examples/mqttc_pub.c, mqttc_sub.c) and mosquitto's. Nothing may be
//! lost. Duplicates do occur, with mosquitto's own tools too: each one is attributed from a record
//! of every packet on both clients' links (a recording proxy stands between the clients and the
//! broker), and the test fails on any that is not proven to be the broker's.
//!
//! The attribution replays the subscriber's side of the record as MQTT 3.1.1 (section 4.3.3) has a
//! receiver work: a QoS 2 PUBLISH is a new message unless its packet id is still open (PUBLISH
//! received, its PUBREL not yet). A receiver may deliver at the PUBLISH or at the PUBREL; either
//! way it delivers a payload at most as often as the replay finds it new. Each copy the subscriber
//! printed after the first is then
//! - `Rule::ResentAfterRelease`: the replay finds it new because it came with DUP under the packet
//!   id of an earlier copy that the broker had since released (sent its PUBREL for): the broker
//!   resent a PUBLISH already acknowledged and released, which MQTT forbids (a sender resends a
//!   PUBLISH only until its PUBREC);
//! - `Rule::SentAgainAsNew`: it came under a packet id none of the earlier copies had, or without
//!   DUP, while the publisher's side of the record shows the message published once (one packet
//!   id, resent only with DUP and only before its PUBREC): the broker sent a message it had
//!   already forwarded as a new one;
//! - or the clients' fault, which fails the test when it is one of our tools: `Rule::Subscriber`, a
//!   subscriber that printed it more often than the replay allows (it took a resend of an id it
//!   held open as new); `Rule::Publisher`, a publisher that published it twice; `Rule::Unexplained`,
//!   a copy neither broker rule covers.
//!
//! `scripts/restart_dups.py` runs the long version (5,000 messages, all four pairings of the tools)
//! and prints the figures that docs/reliability.md quotes.
mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::proxy::Proxy;
use common::record::{Packet, Record};
use common::{Broker, cli_tools, program};

const TOPIC: &str = "restarts/q2";
const PUB_ID: &str = "restarts-pub";
const SUB_ID: &str = "restarts-sub";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tool {
    /// c_examples/mqttc_pub.c, mqttc_sub.c
    Ours,
    /// mosquitto_pub, mosquitto_sub
    Mosquitto,
}

impl Tool {
    fn name(self, role: &str) -> String {
        match self {
            Tool::Ours => format!("mqttc_{role}"),
            Tool::Mosquitto => format!("mosquitto_{role}"),
        }
    }

    fn command(self, role: &str) -> Command {
        match (self, role) {
            (Tool::Ours, "pub") => Command::new(&cli_tools().0),
            (Tool::Ours, _) => Command::new(&cli_tools().1),
            (Tool::Mosquitto, _) => {
                let name = self.name(role);
                Command::new(
                    program(&name).unwrap_or_else(|| panic!("{name} not found: apt-get install mosquitto-clients")),
                )
            }
        }
    }
}

/// What made a copy of a message after its first; see the module comment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Rule {
    ResentAfterRelease,
    SentAgainAsNew,
    Subscriber,
    Publisher,
    Unexplained,
}

impl Rule {
    const ALL: [Rule; 5] = [
        Rule::ResentAfterRelease,
        Rule::SentAgainAsNew,
        Rule::Subscriber,
        Rule::Publisher,
        Rule::Unexplained,
    ];

    fn key(self) -> &'static str {
        match self {
            Rule::ResentAfterRelease => "resent_after_release",
            Rule::SentAgainAsNew => "sent_again_as_new",
            Rule::Subscriber => "subscriber",
            Rule::Publisher => "publisher",
            Rule::Unexplained => "unexplained",
        }
    }
}

/// One run's settings.
struct Setup {
    publisher: Tool,
    subscriber: Tool,
    messages: usize,
    /// Restarts at most; they stop earlier when the publisher is done.
    max_restarts: usize,
    /// Bound on the publisher's run.
    timeout: Duration,
}

/// What a run showed.
#[derive(Default)]
struct Outcome {
    restarts: usize,
    elapsed: Duration,
    publisher_exit: i32,
    lost: Vec<String>,
    /// How many were lost how (see `lost_causes`).
    lost_causes: BTreeMap<&'static str, usize>,
    duplicates: usize,
    by_rule: BTreeMap<Rule, usize>,
    /// One example per rule: the packets that show it.
    examples: BTreeMap<Rule, String>,
    /// CONNACKs without the session, after each client's first connection.
    sessions_lost: usize,
}

/// A child whose stdout is collected line by line, and stderr as a whole, on threads.
struct Running {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
}

impl Running {
    fn spawn(cmd: &mut Command, stdin: Stdio) -> Running {
        let mut child = cmd
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn a client tool");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let into = lines.clone();
        let rx = common::line_reader(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in rx {
                into.lock().unwrap().push(line);
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let err_into = stderr.clone();
        let mut err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut err, &mut s);
            *err_into.lock().unwrap() = s;
        });
        Running { child, lines, stderr }
    }

    fn exited(&mut self) -> Option<i32> {
        self.child.try_wait().unwrap().map(|s| s.code().unwrap_or(-1))
    }

    /// SIGTERM (both tools then disconnect and exit), bounded wait; the exit code.
    fn stop(&mut self) -> i32 {
        // SAFETY: kill(2) on our own child's pid, not yet reaped.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(code) = self.exited() {
                return code;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        self.child.wait().unwrap().code().unwrap_or(-1)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn payload(i: usize) -> String {
    format!("m{i:05}")
}

fn run(setup: &Setup) -> Outcome {
    // No limit on the messages mosquitto queues for a client: by default it keeps 1,000 and drops
    // what comes beyond while the subscriber is away, a policy, not a fault (one long run lost
    // 1,762 messages while the subscriber was away for some 2,000). Its notices say if it drops.
    let mut broker =
        Broker::start_persistent("max_queued_messages 0\nlog_dest file {dir}/mosquitto.log\nlog_type notice");
    let proxy = Proxy::recording(broker.port);
    let port = proxy.port().to_string();
    let args = ["-h", "127.0.0.1", "-p", &port, "-c", "-q", "2", "-t", TOPIC];
    let mut sub = Running::spawn(
        setup.subscriber.command("sub").args(args).args(["-i", SUB_ID]),
        Stdio::null(),
    );
    // Restarts must find the subscription saved, or the broker forgets it (and the messages).
    let db = broker.dir.join("mosquitto.db");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read(&db).is_ok_and(|d| holds(&d, &format!("{SUB_ID}{TOPIC}"))) {
        assert!(Instant::now() < deadline, "the subscription was not saved");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut publisher = Running::spawn(
        setup.publisher.command("pub").args(args).args(["-i", PUB_ID, "-l"]),
        Stdio::piped(),
    );
    let input: String = (0..setup.messages).map(|i| payload(i) + "\n").collect();
    let mut stdin = publisher.child.stdin.take().unwrap();
    // All lines at once, as from a file; closing stdin ends the stream.
    std::thread::spawn(move || stdin.write_all(input.as_bytes()));

    let start = Instant::now();
    let mut restarts = 0;
    let publisher_exit = loop {
        if let Some(code) = publisher.exited() {
            break code;
        }
        if start.elapsed() > setup.timeout {
            break publisher.stop();
        }
        if restarts == setup.max_restarts {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        // About every half second, not in step with the clients' reconnect delays.
        std::thread::sleep(Duration::from_millis(400 + 50 * (restarts as u64 % 5)));
        restarts += 1;
        proxy.mark(&format!("SIGTERM to the broker (restart {restarts})"));
        broker.terminate();
        broker.restart();
        proxy.mark("broker up again");
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let printed: HashSet<String> = sub.lines.lock().unwrap().iter().cloned().collect();
        if (0..setup.messages).all(|i| printed.contains(&payload(i))) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Late copies: the broker resends what it holds for the subscriber right after a reconnect,
    // and both clients are connected by now.
    std::thread::sleep(Duration::from_secs(2));
    let sub_exit = sub.stop();
    assert_eq!(
        sub_exit,
        0,
        "{} failed: {}",
        setup.subscriber.name("sub"),
        sub.stderr.lock().unwrap()
    );
    if publisher_exit != 0 {
        eprintln!(
            "{} stderr: {}",
            setup.publisher.name("pub"),
            publisher.stderr.lock().unwrap()
        );
    }
    let printed = sub.lines.lock().unwrap().clone();
    let elapsed = start.elapsed();
    let records = proxy.records();
    let mut o = attribute(&records, &printed, setup.messages);
    // The database mosquitto saves at SIGTERM holds what it still had for the subscriber.
    broker.terminate();
    let saved = std::fs::read(&db).unwrap_or_default();
    let log = std::fs::read_to_string(broker.dir.join("mosquitto.log")).unwrap_or_default();
    o.lost_causes = lost_causes(&records, &o.lost, &saved, &log);
    Outcome {
        restarts,
        elapsed,
        publisher_exit,
        ..o
    }
}

/// What became of each lost message, as far as the record, the broker's last database and its log
/// tell: never published; published but never released (no PUBREL from the publisher); sent to
/// the subscriber, which did not print it; still held by the broker; dropped by the broker, which
/// logged dropping messages for the subscriber (its queue was full); or none of these.
fn lost_causes(records: &[Record], lost: &[String], saved: &[u8], log: &str) -> BTreeMap<&'static str, usize> {
    let sides = Sides::new(records);
    let sent = sides.replay();
    let dropping = log.contains(&format!("Outgoing messages are being dropped for client {SUB_ID}"));
    let released = |(first, id): (usize, u16)| {
        sides
            .publisher
            .iter()
            .any(|r| r.to_broker && r.seq > first && r.packet == Packet::PubRel(id))
    };
    let mut causes = BTreeMap::new();
    for p in lost {
        let first = sides.publishes.get(p.as_bytes()).map(|sends| (sends[0].0, sends[0].1));
        let cause = if first.is_none() {
            "unpublished"
        } else if !first.is_some_and(released) {
            "unreleased"
        } else if sent.contains_key(p.as_bytes()) {
            "not_printed"
        } else if holds(saved, p) {
            "held_by_broker"
        } else if dropping {
            "dropped_by_broker"
        } else {
            "vanished"
        };
        *causes.entry(cause).or_default() += 1;
    }
    causes
}

/// A copy of a payload sent to the subscriber, as the replay of its side of the record sees it.
struct Sent<'a> {
    record: &'a Record,
    pkid: u16,
    dup: bool,
    /// Whether a receiver following MQTT takes it as a new message.
    new: bool,
}

/// The record split by client (by the client id of each link's CONNECT), with what the
/// attribution looks up.
struct Sides<'a> {
    /// The subscriber's packets (and the test's marks), in order.
    sub: Vec<&'a Record>,
    /// The publisher's packets (and the test's marks), in order.
    publisher: Vec<&'a Record>,
    /// Where the broker sent the subscriber a PUBREL, by packet id.
    releases: HashMap<u16, Vec<usize>>,
    /// The publisher's PUBLISHes by payload: (seq, packet id, DUP).
    publishes: HashMap<&'a [u8], Vec<(usize, u16, bool)>>,
    /// Where the broker sent the publisher a PUBREC, by packet id.
    pubrecs: HashMap<u16, Vec<usize>>,
}

impl<'a> Sides<'a> {
    fn new(records: &'a [Record]) -> Sides<'a> {
        let clients: HashMap<u64, &str> = records
            .iter()
            .filter_map(|r| match &r.packet {
                Packet::Connect { client_id } => Some((r.link, client_id.as_str())),
                _ => None,
            })
            .collect();
        let side = |id: &str| -> Vec<&'a Record> {
            records
                .iter()
                .filter(|r| matches!(r.packet, Packet::Mark(_)) || clients.get(&r.link) == Some(&id))
                .collect()
        };
        let (sub, publisher) = (side(SUB_ID), side(PUB_ID));
        let mut s = Sides {
            releases: HashMap::new(),
            publishes: HashMap::new(),
            pubrecs: HashMap::new(),
            sub,
            publisher,
        };
        for r in &s.sub {
            if let (Packet::PubRel(id), false) = (&r.packet, r.to_broker) {
                s.releases.entry(*id).or_default().push(r.seq);
            }
        }
        for r in &s.publisher {
            match (&r.packet, r.to_broker) {
                (Packet::Publish { dup, pkid, payload, .. }, true) => {
                    s.publishes.entry(payload).or_default().push((r.seq, *pkid, *dup))
                }
                (Packet::PubRec(id), false) => s.pubrecs.entry(*id).or_default().push(r.seq),
                _ => {}
            }
        }
        s
    }

    /// Whether the broker sent the subscriber a PUBREL for `id` between `from` and `to`.
    fn released(&self, id: u16, from: usize, to: usize) -> bool {
        self.releases
            .get(&id)
            .is_some_and(|at| at.iter().any(|&s| s > from && s < to))
    }

    /// Whether the publisher published `payload` twice: under two packet ids, twice without DUP,
    /// or again after the broker's PUBREC for it.
    fn published_twice(&self, payload: &[u8]) -> bool {
        let Some(sends) = self.publishes.get(payload) else {
            return false;
        };
        let (first, id, _) = sends[0];
        let pubrec = self
            .pubrecs
            .get(&id)
            .and_then(|at| at.iter().copied().find(|&s| s > first));
        sends.iter().any(|&(_, pkid, _)| pkid != id)
            || sends.iter().filter(|(_, _, dup)| !dup).count() > 1
            || sends.iter().any(|&(seq, _, _)| pubrec.is_some_and(|at| seq > at))
    }

    /// The copies of each payload the broker sent the subscriber, each marked new or not by the
    /// replay (see the module comment). A CONNACK without the session clears what is open.
    fn replay(&self) -> HashMap<&'a [u8], Vec<Sent<'a>>> {
        let mut copies: HashMap<&[u8], Vec<Sent>> = HashMap::new();
        let mut open: HashSet<u16> = HashSet::new();
        for r in self.sub.iter().filter(|r| !r.to_broker) {
            match &r.packet {
                Packet::Publish {
                    dup,
                    qos: 2,
                    pkid,
                    payload,
                    ..
                } => copies.entry(payload).or_default().push(Sent {
                    record: r,
                    pkid: *pkid,
                    dup: *dup,
                    new: open.insert(*pkid),
                }),
                Packet::PubRel(id) => {
                    open.remove(id);
                }
                Packet::ConnAck {
                    session_present: false, ..
                } => open.clear(),
                _ => {}
            }
        }
        copies
    }

    /// The rule for the `k`th new copy in `new` (k >= 1).
    fn rule(&self, new: &[&Sent], k: usize, payload: &[u8]) -> Rule {
        let later = new[k];
        let earlier = &new[..k];
        if self.published_twice(payload) {
            Rule::Publisher
        } else if later.dup
            && earlier
                .iter()
                .any(|e| e.pkid == later.pkid && self.released(e.pkid, e.record.seq, later.record.seq))
        {
            Rule::ResentAfterRelease
        } else if !later.dup || earlier.iter().all(|e| e.pkid != later.pkid) {
            Rule::SentAgainAsNew
        } else {
            Rule::Unexplained
        }
    }

    /// CONNACKs that did not resume the session, after each client's first connection.
    fn sessions_lost(&self) -> usize {
        [&self.sub, &self.publisher]
            .iter()
            .map(|side| {
                side.iter()
                    .filter_map(|r| match r.packet {
                        Packet::ConnAck { session_present, .. } => Some(session_present),
                        _ => None,
                    })
                    .skip(1)
                    .filter(|present| !present)
                    .count()
            })
            .sum()
    }

    /// The packets that tell a duplicated payload's story: the subscriber's copies of it and the
    /// acknowledgements of their packet ids, from its first copy to the PUBCOMP of its last, with
    /// its client's (re)connections there; the publisher's PUBLISHes of it and their
    /// acknowledgements; the test's marks from the first of these on. Each line says whose link it
    /// is on.
    fn evidence(&self, payload: &[u8], copies: &[Sent]) -> String {
        let (from, last) = (copies[0].record.seq, &copies[copies.len() - 1]);
        // Up to the subscriber's PUBCOMP for the last copy: a receiver may deliver at the PUBREL.
        let to = self
            .sub
            .iter()
            .find(|r| r.to_broker && r.seq > last.record.seq && r.packet == Packet::PubComp(last.pkid))
            .map_or(last.record.seq, |r| r.seq);
        let sub_ids: HashSet<u16> = copies.iter().map(|c| c.pkid).collect();
        let sends = self.publishes.get(payload).map(Vec::as_slice).unwrap_or_default();
        let pub_ids: HashSet<u16> = sends.iter().map(|s| s.1).collect();
        let pub_from = sends.first().map_or(from, |s| s.0).min(from);
        let concerns = |r: &Record, ids: &HashSet<u16>| match &r.packet {
            Packet::Publish { payload: p, .. } => *p == payload,
            Packet::PubRec(id) | Packet::PubRel(id) | Packet::PubComp(id) => ids.contains(id),
            _ => false,
        };
        let mut lines: Vec<(usize, String)> = Vec::new();
        for r in self.sub.iter().filter(|r| r.seq >= pub_from && r.seq <= to) {
            match r.packet {
                Packet::Mark(_) => lines.push((r.seq, format!("{r}"))),
                _ if r.seq < from => {}
                Packet::Connect { .. } | Packet::ConnAck { .. } => lines.push((r.seq, format!("subscriber {r}"))),
                _ if concerns(r, &sub_ids) => lines.push((r.seq, format!("subscriber {r}"))),
                _ => {}
            }
        }
        for r in self.publisher.iter().filter(|r| r.seq >= pub_from && r.seq <= to) {
            if concerns(r, &pub_ids) {
                lines.push((r.seq, format!("publisher  {r}")));
            }
        }
        lines.sort();
        lines.into_iter().map(|(_, l)| l + "\n").collect()
    }
}

/// Attributes every copy after the first of each payload the subscriber printed (see the module
/// comment). `printed`: the subscriber's output, one payload a line; the payloads published are
/// `payload(0..messages)`.
fn attribute(records: &[Record], printed: &[String], messages: usize) -> Outcome {
    let sides = Sides::new(records);
    let copies = sides.replay();
    let mut count: HashMap<&str, usize> = HashMap::new();
    for line in printed {
        *count.entry(line.as_str()).or_default() += 1;
    }
    let mut o = Outcome {
        lost: (0..messages)
            .map(payload)
            .filter(|p| !count.contains_key(p.as_str()))
            .collect(),
        sessions_lost: sides.sessions_lost(),
        ..Outcome::default()
    };
    for (text, &n) in count.iter().filter(|(_, n)| **n > 1) {
        o.duplicates += n - 1;
        let key = text.as_bytes();
        let copies = copies.get(key).map(Vec::as_slice).unwrap_or_default();
        let new: Vec<&Sent> = copies.iter().filter(|c| c.new).collect();
        for k in 1..n {
            let rule = if k < new.len() {
                sides.rule(&new, k, key)
            } else {
                Rule::Subscriber
            };
            *o.by_rule.entry(rule).or_default() += 1;
            if !copies.is_empty() {
                o.examples.entry(rule).or_insert_with(|| sides.evidence(key, copies));
            }
        }
    }
    o
}

fn report(setup: &Setup, o: &Outcome) {
    let rules: Vec<String> = Rule::ALL
        .iter()
        .map(|r| format!("{}={}", r.key(), o.by_rule.get(r).copied().unwrap_or(0)))
        .collect();
    eprintln!(
        "restart-dups: pub={} sub={} messages={} restarts={} seconds={:.1} publisher_exit={} lost={} \
         sessions_lost={} duplicates={} {}",
        setup.publisher.name("pub"),
        setup.subscriber.name("sub"),
        setup.messages,
        o.restarts,
        o.elapsed.as_secs_f64(),
        o.publisher_exit,
        o.lost.len(),
        o.sessions_lost,
        o.duplicates,
        rules.join(" ")
    );
    if !o.lost.is_empty() {
        let causes: Vec<String> = o.lost_causes.iter().map(|(c, n)| format!("{c}={n}")).collect();
        eprintln!("restart-dups lost: {}", causes.join(" "));
    }
    for (rule, example) in &o.examples {
        eprintln!("example {}:\n{example}", rule.key());
    }
}

/// Nothing lost, both sessions kept, and no duplicate that is our tools' fault or unexplained
/// (those of mosquitto's tools are reported, not held against ours).
fn check(setup: &Setup, o: &Outcome) {
    assert_eq!(o.publisher_exit, 0, "the publisher failed");
    assert!(o.lost.is_empty(), "lost ({:?}): {:?}", o.lost_causes, o.lost);
    assert_eq!(o.sessions_lost, 0, "the persistent broker kept both sessions");
    let ours = |rule: &Rule| match rule {
        Rule::ResentAfterRelease | Rule::SentAgainAsNew => false,
        Rule::Subscriber => setup.subscriber == Tool::Ours,
        Rule::Publisher => setup.publisher == Tool::Ours,
        Rule::Unexplained => true,
    };
    let faults: Vec<_> = o.by_rule.iter().filter(|(r, _)| ours(r)).collect();
    assert!(faults.is_empty(), "duplicates not the broker's: {faults:?}");
}

fn run_and_check(setup: Setup) {
    let o = run(&setup);
    report(&setup, &o);
    check(&setup, &o);
}

/// The CI version: 1,000 messages, restarts until the publisher is done (typically 20 to 40).
fn short(publisher: Tool, subscriber: Tool) {
    run_and_check(Setup {
        publisher,
        subscriber,
        messages: 1000,
        max_restarts: 60,
        timeout: Duration::from_secs(45),
    });
}

#[test]
fn qos2_through_sigterm_restarts_loses_nothing_and_every_duplicate_is_the_brokers() {
    short(Tool::Ours, Tool::Ours);
}

#[test]
fn qos2_from_mosquitto_pub_through_sigterm_restarts_to_our_sub_likewise() {
    short(Tool::Mosquitto, Tool::Ours);
}

/// The full run of scripts/restart_dups.py. Settings from the environment: MQTTC_RESTARTS_PUB and
/// MQTTC_RESTARTS_SUB (`ours` or `mosquitto`), MQTTC_RESTARTS_MESSAGES (5,000 if unset).
#[test]
#[ignore = "long: scripts/restart_dups.py runs it"]
fn qos2_through_sigterm_restarts_all_along_a_long_stream() {
    let tool = |var: &str| match std::env::var(var).as_deref() {
        Ok("mosquitto") => Tool::Mosquitto,
        Ok("ours") | Err(_) => Tool::Ours,
        Ok(other) => panic!("{var}={other}: `ours` or `mosquitto`"),
    };
    run_and_check(Setup {
        publisher: tool("MQTTC_RESTARTS_PUB"),
        subscriber: tool("MQTTC_RESTARTS_SUB"),
        messages: std::env::var("MQTTC_RESTARTS_MESSAGES").map_or(5000, |v| v.parse().expect("a number")),
        max_restarts: usize::MAX,
        timeout: Duration::from_secs(1800),
    });
}

// The attribution itself, on made-up records: each rule is told from the others.

fn publish(seq: usize, link: u64, to_broker: bool, pkid: u16, dup: bool) -> Record {
    let packet = Packet::Publish {
        dup,
        qos: 2,
        pkid,
        topic: TOPIC.into(),
        payload: payload(0).into_bytes(),
    };
    Record {
        seq,
        link,
        to_broker,
        packet,
    }
}

fn ack(seq: usize, link: u64, to_broker: bool, packet: Packet) -> Record {
    Record {
        seq,
        link,
        to_broker,
        packet,
    }
}

/// Links 0 (publisher) and 1 (subscriber), and the publisher's one clean QoS 2 exchange with
/// packet id 1, followed by `sub`: the subscriber's packets (link 1, or 2 after a reconnect).
fn story(sub: Vec<Record>) -> Vec<Record> {
    let mut r = vec![
        ack(
            0,
            0,
            true,
            Packet::Connect {
                client_id: PUB_ID.into(),
            },
        ),
        ack(
            1,
            1,
            true,
            Packet::Connect {
                client_id: SUB_ID.into(),
            },
        ),
        ack(
            2,
            2,
            true,
            Packet::Connect {
                client_id: SUB_ID.into(),
            },
        ),
        publish(3, 0, true, 1, false),
        ack(4, 0, false, Packet::PubRec(1)),
        ack(5, 0, true, Packet::PubRel(1)),
        ack(6, 0, false, Packet::PubComp(1)),
    ];
    r.extend(sub);
    r
}

fn rules_of(records: &[Record], printed: usize) -> Vec<(Rule, usize)> {
    let printed = vec![payload(0); printed];
    attribute(records, &printed, 1).by_rule.into_iter().collect()
}

#[test]
fn attribution_tells_the_brokers_duplicates_from_the_clients() {
    // Released (PUBREL), then the same PUBLISH again with DUP: the broker's.
    let resent = story(vec![
        publish(10, 1, false, 7, false),
        ack(11, 1, true, Packet::PubRec(7)),
        ack(12, 1, false, Packet::PubRel(7)),
        ack(13, 1, true, Packet::PubComp(7)),
        publish(14, 2, false, 7, true),
    ]);
    assert_eq!(rules_of(&resent, 2), [(Rule::ResentAfterRelease, 1)]);
    // The same message under a new packet id: the broker's.
    let again = story(vec![
        publish(10, 1, false, 7, false),
        ack(11, 1, true, Packet::PubRec(7)),
        publish(12, 2, false, 8, true),
    ]);
    assert_eq!(rules_of(&again, 2), [(Rule::SentAgainAsNew, 1)]);
    // A resend of an id the subscriber holds open (no PUBREL yet), printed again: the subscriber's.
    let held = story(vec![
        publish(10, 1, false, 7, false),
        ack(11, 1, true, Packet::PubRec(7)),
        publish(12, 2, false, 7, true),
    ]);
    assert_eq!(rules_of(&held, 2), [(Rule::Subscriber, 1)]);
    assert_eq!(rules_of(&held, 1), []);
    // The publisher sent it again under a new packet id: the publisher's.
    let mut twice = again.clone();
    twice.push(publish(20, 0, true, 2, false));
    assert_eq!(rules_of(&twice, 2), [(Rule::Publisher, 1)]);
    // Nothing printed: lost, and how.
    assert_eq!(attribute(&resent, &[], 1).lost, [payload(0)]);
    let causes = |records: &[Record], saved: &str, log: &str| -> Vec<&str> {
        lost_causes(records, &[payload(0)], saved.as_bytes(), log)
            .into_keys()
            .collect()
    };
    assert_eq!(causes(&resent, "", ""), ["not_printed"]);
    let never_sent = story(vec![]);
    assert_eq!(causes(&never_sent, &payload(0), ""), ["held_by_broker"]);
    let dropping = format!("Outgoing messages are being dropped for client {SUB_ID}.");
    assert_eq!(causes(&never_sent, "", &dropping), ["dropped_by_broker"]);
    assert_eq!(causes(&never_sent, "", ""), ["vanished"]);
    assert_eq!(causes(&never_sent[..5], "", ""), ["unreleased"]);
    assert_eq!(causes(&never_sent[..3], "", ""), ["unpublished"]);
}
