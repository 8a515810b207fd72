//! The message store (`Options::store`): what a client stored is restored by the next one with
//! the same store, resent with DUP and its packet ids (or its PUBREL) when the broker kept the
//! session, as new messages when it did not, and damage to the store between runs costs only the
//! damaged records. Packet-exact checks use the scripted broker; delivery uses a real mosquitto.
mod common;
#[path = "support/rng.rs"]
mod rng;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::engine::{log_lines, subscribe};
use common::fake::{FakeBroker, FakeConn, mqtt_str};
use common::scripted::{done, ok, options};
use common::{Broker, compile_c, line_reader, project_dir, run_program, temp_dir};
use mqttclient::codec::{Ack, Packet, Publish, QoS};
use mqttclient::engine::store::{Store, SyncPolicy};
use mqttclient::engine::{Address, Client, LogLevel, Options, Token};
use rng::Rng;

/// The messages a client restored, with their tokens.
type Restored = Arc<Mutex<Vec<(Token, Publish)>>>;

/// A client of `server` with the store in `dir`, reporting restored messages to the returned list.
fn stored_client(server: Address, dir: &std::path::Path, base: Options) -> (Client, Restored) {
    let store = Store::open_dir(dir, &base.client_id, SyncPolicy::Never).unwrap();
    let options = Options {
        clean_session: false,
        store: Some(Arc::new(store)),
        ..base
    };
    let client = Client::new(vec![server], options).unwrap();
    let restored = Arc::new(Mutex::new(Vec::new()));
    let sink = restored.clone();
    client.set_on_restored(Some(Arc::new(move |t, p: &Publish| {
        sink.lock().unwrap().push((t, p.clone()))
    })));
    (client, restored)
}

fn publish(client: &Client, payload: &str, qos: QoS) -> Token {
    client
        .publish(mqtt_str("store/t"), Bytes::from(payload.to_owned()), qos, false)
        .unwrap()
}

/// What a first life leaves in the store: three QoS 1 and three QoS 2 publishes sent, the first
/// QoS 2 one PUBREC'd, none acknowledged further; the ids they went with.
fn first_life(dir: &std::path::Path) -> Vec<(String, u16)> {
    let broker = FakeBroker::new();
    let (client, _) = stored_client(broker.address(), dir, options());
    let token = client.connect().unwrap();
    let mut conn = broker.accept();
    conn.accept_connect();
    assert_eq!(done(&client, token).map(|_| ()), Ok(()));
    for i in 0..6 {
        let qos = if i < 3 { QoS::AtLeastOnce } else { QoS::ExactlyOnce };
        publish(&client, &format!("m{i}"), qos);
    }
    let sent: Vec<(String, u16)> = (0..6)
        .map(|_| {
            let p = conn.expect_publish();
            (String::from_utf8(p.payload.to_vec()).unwrap(), p.pkid)
        })
        .collect();
    conn.send(Packet::PubRec(Ack::new(sent[3].1)));
    // Its PUBREL waits to go with others (two more PUBRECs are due); its stage is stored at once.
    conn.expect_silence(Duration::from_millis(200));
    // The process ends without a word to the broker.
    drop(client);
    sent
}

/// The next life: a client with the store in `dir` connected to a scripted broker that says
/// whether it kept the session.
fn next_life(dir: &std::path::Path, session_present: bool) -> (FakeBroker, Client, Restored, FakeConn) {
    let broker = FakeBroker::new();
    let (client, restored) = stored_client(broker.address(), dir, options());
    let token = client.connect().unwrap();
    let mut conn = broker.accept();
    match session_present {
        true => conn.resume_connect(),
        false => conn.accept_connect(),
    };
    assert_eq!(done(&client, token).map(|o| o.codes), Ok(vec![session_present as u8]));
    (broker, client, restored, conn)
}

#[test]
fn a_kept_session_gets_dup_resends_with_the_same_ids_and_the_pubrel() {
    let dir = temp_dir("store-resume");
    let sent = first_life(&dir);

    let (_broker, client, restored, mut conn) = next_life(&dir, true);
    // In the original order: the PUBREC'd one is released, the others published again.
    for (i, (payload, id)) in sent.iter().enumerate() {
        if i == 3 {
            conn.expect_packet(&Packet::PubRel(Ack::new(*id)));
            continue;
        }
        let p = conn.expect_publish();
        assert_eq!(
            (p.dup, p.pkid, p.payload.as_ref()),
            (true, *id, payload.as_bytes()),
            "message {i}"
        );
    }
    let restored: Vec<(Token, Publish)> = std::mem::take(&mut *restored.lock().unwrap());
    let payloads: Vec<&[u8]> = restored.iter().map(|(_, p)| p.payload.as_ref()).collect();
    assert_eq!(payloads, sent.iter().map(|(p, _)| p.as_bytes()).collect::<Vec<_>>());
    // Their tokens complete with the broker's acknowledgements.
    let id = |i: usize| sent[i].1;
    for i in 0..3 {
        conn.send(Packet::PubAck(Ack::new(id(i))));
    }
    conn.send(Packet::PubComp(Ack::new(id(3))));
    conn.send(Packet::PubRec(Ack::new(id(4))));
    conn.send(Packet::PubRec(Ack::new(id(5))));
    conn.expect_packet(&Packet::PubRel(Ack::new(id(4))));
    conn.expect_packet(&Packet::PubRel(Ack::new(id(5))));
    conn.send(Packet::PubComp(Ack::new(id(4))));
    conn.send(Packet::PubComp(Ack::new(id(5))));
    for (token, _) in &restored {
        assert_eq!(done(&client, *token), ok());
    }
    drop(client);

    // Acknowledged, so gone: a third life restores nothing.
    let (_broker, _client, restored, mut conn) = next_life(&dir, true);
    conn.expect_silence(Duration::from_millis(200));
    assert!(restored.lock().unwrap().is_empty());
}

#[test]
fn without_the_session_restored_messages_go_as_new_ones() {
    let dir = temp_dir("store-new");
    let sent = first_life(&dir);

    let (_broker, _client, restored, mut conn) = next_life(&dir, false);
    // All six, the PUBREC'd one included (losing it would break QoS 2 worse), none a DUP.
    let again: Vec<(String, bool)> = (0..6)
        .map(|_| {
            let p = conn.expect_publish();
            (String::from_utf8(p.payload.to_vec()).unwrap(), p.dup)
        })
        .collect();
    let expected: Vec<(String, bool)> = sent.iter().map(|(p, _)| (p.clone(), false)).collect();
    assert_eq!(again, expected);
    assert_eq!(restored.lock().unwrap().len(), 6);
}

#[test]
fn a_clean_session_can_drop_what_an_earlier_one_stored() {
    let dir = temp_dir("store-drop");
    first_life(&dir);
    let broker = FakeBroker::new();
    let store = Store::open_dir(&dir, &options().client_id, SyncPolicy::Never).unwrap();
    let client = Client::new(
        vec![broker.address()],
        Options {
            clean_session: true,
            store_drop_on_clean: true,
            store: Some(Arc::new(store)),
            ..options()
        },
    )
    .unwrap();
    let lines = log_lines(&client, LogLevel::Warning);
    let token = client.connect().unwrap();
    let mut conn = broker.accept();
    conn.accept_connect();
    done(&client, token).unwrap();
    conn.expect_silence(Duration::from_millis(200));
    assert!(
        lines.lock().unwrap().iter().any(|l| l.contains("6 message(s)")),
        "{:?}",
        lines.lock().unwrap()
    );
}

#[test]
fn damaged_records_are_skipped_with_a_log_line_and_the_rest_delivered() {
    let dir = temp_dir("store-damage");
    // Twenty QoS 1 publishes a broker never acknowledges, then the process ends.
    {
        let broker = FakeBroker::new();
        let (client, _) = stored_client(broker.address(), &dir, options());
        let token = client.connect().unwrap();
        broker.accept().accept_connect();
        done(&client, token).unwrap();
        let tokens: Vec<Token> = (0..20)
            .map(|i| publish(&client, &format!("{i:02}"), QoS::AtLeastOnce))
            .collect();
        assert_eq!(tokens.len(), 20);
    }
    // One record corrupted in the middle, the last cut short.
    let client_dir = std::fs::read_dir(&*dir).unwrap().next().unwrap().unwrap().path();
    let segment = std::fs::read_dir(&client_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "log"))
        .unwrap();
    let mut data = std::fs::read(&segment).unwrap();
    let at = data.windows(2).position(|w| w == b"07").expect("message 07's payload");
    data[at] = b'x';
    let cut = data.len() - data.windows(2).rposition(|w| w == b"19").unwrap() + 1;
    data.truncate(data.len() - cut);
    std::fs::write(&segment, &data).unwrap();

    let broker = Broker::start();
    let watcher = common::engine::client_for(&format!("mqtt://127.0.0.1:{}", broker.port), None);
    common::engine::connect(&watcher).unwrap();
    let rx = subscribe(&watcher, "store/t", QoS::AtLeastOnce);
    let (client, restored) = stored_client(
        format!("mqtt://127.0.0.1:{}", broker.port).parse().unwrap(),
        &dir,
        options(),
    );
    let lines = log_lines(&client, LogLevel::Warning);
    common::engine::connect(&client).unwrap();
    let mut got = BTreeSet::new();
    while got.len() < 18 {
        let p = rx.recv_timeout(Duration::from_secs(10)).expect("the restored messages");
        got.insert(String::from_utf8(p.payload.to_vec()).unwrap());
    }
    let expected: BTreeSet<String> = (0..19).filter(|&i| i != 7).map(|i| format!("{i:02}")).collect();
    assert_eq!(got, expected);
    // Reported on the callback thread, which may lag the broker's delivery under load; the log
    // lines come the same way.
    let deadline = Instant::now() + Duration::from_secs(10);
    while restored.lock().unwrap().len() < 18 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(restored.lock().unwrap().len(), 18);
    let lines = lines.lock().unwrap();
    assert_eq!(lines.iter().filter(|l| l.contains("skipped")).count(), 2, "{lines:?}");
}

/// The numbers on the lines of `out` that begin with `prefix`, up to a ':' or the end.
fn numbered(out: &str, prefix: &str) -> BTreeSet<u64> {
    out.lines()
        .filter_map(|l| l.strip_prefix(prefix)?.split(':').next()?.parse().ok())
        .collect()
}

/// A full disk: tests/c/store_full.c publishes, before any connect, with its files limited to
/// 64 KiB (RLIMIT_FSIZE, SIGXFSZ ignored: a write past the limit fails with EFBIG, as one on a
/// full disk fails with ENOSPC, and may have written part of its record) until a publish fails
/// with MQTTC_ERR_STORE. The next run (tests/c/store_publisher.c, publishing nothing of its own),
/// without the limit, restores exactly the messages whose publish returned MQTTC_OK, and a
/// subscriber on mosquitto gets every one.
#[test]
fn a_full_disk_fails_the_publish_and_loses_nothing_stored_before() {
    let dir = temp_dir("store-full");
    let store = dir.display().to_string();
    let run = |name: &str, args: &[&str]| {
        let exe = compile_c(name, &[project_dir().join(format!("tests/c/{name}.c"))]);
        let (code, out, err) = run_program(Command::new(&exe).args(args), Duration::from_secs(60));
        assert_eq!(code, 0, "{name} {args:?}\n{out}\n{err}");
        out
    };
    let out = run("store_full", &[&store, &(64 << 10).to_string()]);
    let accepted = numbered(&out, "ok ");
    let error = out
        .lines()
        .find_map(|l| l.strip_prefix("store error: "))
        .unwrap_or_else(|| panic!("no store error:\n{out}"));
    assert!(error.contains("File too large") && error.contains(&store), "{error}");
    // About 64 KiB of records of 150 to 250 bytes, in publish order.
    assert!((200..500).contains(&accepted.len()), "{} accepted", accepted.len());
    assert_eq!(accepted, (0..accepted.len() as u64).collect());

    let broker = Broker::start();
    let watcher = common::engine::client_for(&format!("mqtt://127.0.0.1:{}", broker.port), None);
    common::engine::connect(&watcher).unwrap();
    let rx = subscribe(&watcher, "store/kill", QoS::ExactlyOnce);
    let out = run(
        "store_publisher",
        &[&broker.port.to_string(), &store, "1", "1", "0", "0"],
    );
    assert_eq!(numbered(&out, "restored "), accepted, "{out}");
    assert!(out.contains(&format!("done restored={}", accepted.len())), "{out}");
    let mut received = BTreeSet::new();
    while received.len() < accepted.len() {
        let p = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("{} of {} received", received.len(), accepted.len()));
        let text = String::from_utf8(p.payload.to_vec()).unwrap();
        let n = text.split_once(':').and_then(|(n, _)| n.parse().ok());
        received.insert(n.unwrap_or_else(|| panic!("not a message of the test: {text}")));
    }
    assert_eq!(received, accepted);
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The C publisher of tests/c/store_publisher.c, killed with SIGKILL at random moments while it
/// streams `MQTTC_STORE_MESSAGES` messages (3,000 here, 10,000 in scripts/store_kill.sh), then
/// started again on the same store, `MQTTC_STORE_KILLS` times (20), against mosquitto and a
/// subscriber whose session stays up. Every message whose publish returned MQTTC_OK (printed
/// "ok") must arrive; at QoS 2 none twice. The broker is not restarted, so no duplicate can be
/// the broker's own: at QoS 2 the store's order of writes (a packet id stored before its PUBLISH
/// leaves, a PUBREC's stage before its PUBREL) must make a resend after a kill harmless.
fn kill_loop(qos: QoS) {
    let messages = env_or("MQTTC_STORE_MESSAGES", 3000);
    let kills = env_or("MQTTC_STORE_KILLS", 20);
    let seed = env_or("MQTTC_STORE_SEED", 0x9e37_79b9_7f4a_7c15 ^ qos as u64);
    let mut rng = Rng(seed.max(1));
    let broker = Broker::start();
    let server: Address = format!("mqtt://127.0.0.1:{}", broker.port).parse().unwrap();
    let dir = temp_dir("store-kill");
    let exe = compile_c("store_publisher", &[project_dir().join("tests/c/store_publisher.c")]);
    let subscriber = Client::new(
        vec![server],
        Options {
            client_id: "store-subscriber".into(),
            clean_session: false,
            ..Options::default()
        },
    )
    .unwrap();
    common::engine::connect(&subscriber).unwrap();
    let rx = subscribe(&subscriber, "store/kill", qos);

    let mut accepted: BTreeSet<(u64, u64)> = BTreeSet::new();
    let mut last_ok: Vec<Option<u64>> = Vec::new();
    let mut next = 0;
    let mut restored = 0;
    for life in 0..=kills {
        let mut child = Command::new(&exe)
            .args([broker.port.to_string(), dir.display().to_string()])
            .args([
                (qos as u8).to_string(),
                life.to_string(),
                next.to_string(),
                messages.to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the C publisher");
        let lines = line_reader(child.stdout.take().unwrap());
        let mut out = Vec::new();
        if life < kills {
            // Once it publishes (or has nothing left to publish), at a random moment.
            let started = Instant::now();
            while !out
                .iter()
                .any(|l: &String| l.starts_with("ok ") || l.starts_with("done"))
            {
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "life {life} never published: {out:?}"
                );
                if let Ok(l) = lines.recv_timeout(Duration::from_millis(10)) {
                    out.push(l);
                }
            }
            std::thread::sleep(Duration::from_micros(rng.below(40_000)));
            child.kill().unwrap();
        }
        let status = child.wait().unwrap();
        out.extend(lines.iter());
        if life == kills {
            let err = std::io::read_to_string(child.stderr.take().unwrap()).unwrap_or_default();
            assert!(status.success(), "last life: {status}\n{}\n{err}", out.join("\n"));
            assert!(out.iter().any(|l| l.starts_with("done")), "{out:?}");
        }
        let mut last = None;
        for line in &out {
            if let Some(i) = line.strip_prefix("ok ") {
                let i: u64 = i.parse().unwrap();
                accepted.insert((life, i));
                last = Some(i);
                next = next.max(i + 1);
            } else if line.starts_with("restored ") {
                restored += 1;
            }
        }
        last_ok.push(last);
    }
    assert!(next >= messages, "only {next} of {messages} published");

    // Every accepted message, and at QoS 2 none twice.
    let mut received: std::collections::BTreeMap<(u64, u64), u32> = Default::default();
    let mut missing = accepted.len();
    while missing > 0 {
        let p = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("{missing} accepted message(s) never arrived (seed {seed:#x})"));
        let text = String::from_utf8(p.payload.to_vec()).unwrap();
        let (life, i) = text.split_once(':').unwrap();
        let key = (life.parse().unwrap(), i.parse().unwrap());
        let n = received.entry(key).or_default();
        *n += 1;
        if *n == 1 && accepted.contains(&key) {
            missing -= 1;
        }
    }
    // Late arrivals, duplicates among them, get a moment to show up.
    while let Ok(p) = rx.recv_timeout(Duration::from_millis(500)) {
        let text = String::from_utf8(p.payload.to_vec()).unwrap();
        let (life, i) = text.split_once(':').unwrap();
        *received.entry((life.parse().unwrap(), i.parse().unwrap())).or_default() += 1;
    }
    // A message may arrive that was never reported "ok": the one whose call returned just before
    // the kill, before its line was printed. Nothing else.
    for &(life, i) in received.keys().filter(|k| !accepted.contains(k)) {
        let expected = last_ok[life as usize].map_or(0, |l| l + 1);
        assert!(
            life < kills && i <= expected.max(next),
            "message {life}:{i} was never published"
        );
    }
    let twice: Vec<_> = received.iter().filter(|(_, n)| **n > 1).collect();
    if qos == QoS::ExactlyOnce {
        assert!(twice.is_empty(), "QoS 2 duplicates (seed {seed:#x}): {twice:?}");
    }
    eprintln!(
        "{qos:?}: {} accepted over {} lives, {restored} restored, {} delivered twice",
        accepted.len(),
        kills + 1,
        twice.len()
    );
}

#[test]
fn qos1_publishes_survive_sigkill_of_the_publisher() {
    kill_loop(QoS::AtLeastOnce);
}

#[test]
fn qos2_publishes_survive_sigkill_of_the_publisher_exactly_once() {
    kill_loop(QoS::ExactlyOnce);
}
