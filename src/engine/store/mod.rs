//! Persistence: outbound QoS 1/2 messages from the moment their publish call succeeds until they
//! are acknowledged, with their packet id and stage, and the ids of inbound QoS 2 messages
//! awaiting PUBREL; so that a client started again after a crash resends what the broker may not
//! have, with DUP and the same ids.
//!
//! A [`Backend`] keeps keyed values (the directory store of [`dir`], or a table the application
//! supplies, [`kv`]); [`Store`] maps the session's events onto them:
//! - `Message(n)`: the PUBLISH (topic, payload, properties), put by the publishing thread before
//!   the call returns, so a publish that succeeded is in the store whatever happens next;
//! - `State(n)`: its packet id once sent, and whether its PUBREC came; put by the network task
//!   before the packets that depend on it are written (see [`Store::commit`]);
//! - `Inbound(id)`: an inbound QoS 2 message delivered and awaiting its PUBREL.
//!
//! `n` is the store's own number for a message; tokens are the process's, and restored messages
//! get new ones.
mod dir;
pub mod kv;
pub mod record;

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::BytesMut;

use crate::codec::{self, Packet, Publish, QoS, Version};
use crate::fxhash::FxHashMap;

use super::Error;
use super::tokens::{Token, TokenResult};
pub use dir::DirStore;
pub use kv::{KeyValue, KvStore};

/// What a value is, and whose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    Message(u64),
    State(u64),
    Inbound(u16),
}

impl Key {
    fn parts(self) -> (u8, u64) {
        match self {
            Key::Message(n) => (1, n),
            Key::State(n) => (2, n),
            Key::Inbound(id) => (3, id.into()),
        }
    }

    fn from_parts(tag: u8, id: u64) -> Option<Key> {
        match tag {
            1 => Some(Key::Message(id)),
            2 => Some(Key::State(id)),
            3 => u16::try_from(id).ok().map(Key::Inbound),
            _ => None,
        }
    }
}

/// When a backend makes what it wrote durable against a power loss (the directory store's
/// `fdatasync`, the application's `sync`); a write survives the process being killed in any case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    Never,
    /// Before the publish call returns, and before a packet that depends on a record is written.
    Every,
    /// Once `records` records were written since the last sync, or `interval` after it (checked
    /// at each write and by the network task's timer).
    Batch {
        records: u32,
        interval: Duration,
    },
}

/// The bookkeeping of a [`SyncPolicy`], shared by the backends (each knows how to sync): the
/// records written since the last sync, and when that was.
#[derive(Debug)]
struct SyncClock {
    policy: SyncPolicy,
    unsynced: u32,
    last: Instant,
}

impl SyncClock {
    fn new(policy: SyncPolicy) -> SyncClock {
        SyncClock {
            policy,
            unsynced: 0,
            last: Instant::now(),
        }
    }

    fn wrote(&mut self, records: u32) {
        self.unsynced = self.unsynced.saturating_add(records);
    }

    /// Whether the policy wants a sync now, after a write.
    fn due(&self) -> bool {
        match self.policy {
            SyncPolicy::Never => false,
            SyncPolicy::Every => self.unsynced > 0,
            SyncPolicy::Batch { records, interval } => {
                self.unsynced >= records || (self.unsynced > 0 && self.last.elapsed() >= interval)
            }
        }
    }

    /// Whether an explicit sync has anything to do: a write not yet synced, under a policy that
    /// syncs at all.
    fn owed(&self) -> bool {
        self.policy != SyncPolicy::Never && self.unsynced > 0
    }

    fn synced(&mut self) {
        self.unsynced = 0;
        self.last = Instant::now();
    }

    /// How long until a batched sync is due, if one will be.
    fn next_due(&self) -> Option<Duration> {
        match self.policy {
            SyncPolicy::Batch { interval, .. } if self.unsynced > 0 => {
                Some(interval.saturating_sub(self.last.elapsed()))
            }
            _ => None,
        }
    }
}

/// What a backend holds, and lines about damage it skipped on the way.
#[derive(Debug, Default)]
pub struct Loaded {
    pub values: BTreeMap<Key, Vec<u8>>,
    pub damage: Vec<String>,
}

/// Where the records go.
pub trait Backend: Send + Sync {
    /// Applies records made by [`record::put`] and [`record::del`], in order. An error means
    /// some may not have been applied; none that were applied before is lost.
    fn write(&self, records: &[u8]) -> io::Result<()>;
    /// What is stored now.
    fn load(&self) -> io::Result<Loaded>;
    /// Makes what was written durable (as the sync policy would, now).
    fn sync(&self) -> io::Result<()>;
    /// How long until a sync is due, if one will be.
    fn sync_due(&self) -> Option<Duration>;
    /// Deletes everything stored. By default, a delete of each key [`Backend::load`] finds.
    fn clear(&self) -> io::Result<()> {
        let mut dels = Vec::new();
        for key in self.load()?.values.keys() {
            record::del(&mut dels, *key);
        }
        self.write(&dels)
    }
}

/// How far a stored message got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Not sent yet (or sent in a session the broker no longer has).
    Queued,
    /// Sent with this packet id; its PUBACK or PUBREC not received.
    Sent(u16),
    /// QoS 2: its PUBREC received, so its PUBREL is owed.
    Released(u16),
}

/// A message given back by [`Store::restore`].
#[derive(Debug)]
pub struct Restored {
    pub token: Token,
    pub publish: Publish,
    pub stage: Stage,
}

/// What [`Store::restore`] found.
#[derive(Debug, Default)]
pub struct Restoration {
    /// The messages, oldest first, under their new tokens.
    pub messages: Vec<Restored>,
    /// Inbound QoS 2 ids awaiting PUBREL.
    pub inbound: Vec<u16>,
    /// Lines to log: damage the store skipped, records that did not decode, messages dropped.
    pub lines: Vec<String>,
}

pub struct Store {
    backend: Box<dyn Backend>,
    inner: Mutex<Inner>,
}

struct Inner {
    next: u64,
    /// The messages this process has in hand, by token.
    by_token: FxHashMap<Token, u64>,
    /// Records of the network task, written by `commit`; those of a failed commit stay, ahead.
    pending: Vec<u8>,
    /// The length `pending` had when last coalesced, while commits fail (see `commit`).
    coalesced: usize,
    /// What damage the backend skipped when opened, to log at the first restore (the client has
    /// no log handler before).
    damage: Vec<String>,
}

fn stage_value(stage: Stage) -> [u8; 3] {
    let (tag, id) = match stage {
        Stage::Queued => (0, 0u16),
        Stage::Sent(id) => (1, id),
        Stage::Released(id) => (2, id),
    };
    let [lo, hi] = id.to_le_bytes();
    [tag, lo, hi]
}

fn parse_stage(value: &[u8]) -> Stage {
    match value {
        [1, lo, hi] => Stage::Sent(u16::from_le_bytes([*lo, *hi])),
        [2, lo, hi] => Stage::Released(u16::from_le_bytes([*lo, *hi])),
        _ => Stage::Queued,
    }
}

/// A message's value: its PUBLISH as MQTT 5 encodes it (every field a publish call may set).
fn encode_message(publish: &Publish) -> BytesMut {
    let p = Publish {
        dup: false,
        pkid: if publish.qos == QoS::AtMostOnce { 0 } else { 1 },
        ..publish.clone()
    };
    let mut buf = BytesMut::with_capacity(p.encoded_len(Version::V5));
    p.encode(&mut buf, Version::V5)
        .expect("a publish accepted by the API encodes");
    buf
}

fn decode_message(value: &[u8]) -> Option<Publish> {
    let mut buf = BytesMut::from(value);
    match codec::decode(&mut buf, usize::MAX, Version::V5) {
        Ok(Some(Packet::Publish(p))) if buf.is_empty() && p.qos != QoS::AtMostOnce => Some(Publish { pkid: 0, ..p }),
        _ => None,
    }
}

/// How many bytes of records a failing backend leaves before they are first coalesced.
const COALESCE_FROM: usize = 64 << 10;

/// `records` (well-formed) with only those that are the last for one of their keys, in their
/// order: applied, they leave the same values as all of them.
fn coalesce(records: &[u8]) -> Vec<u8> {
    let spans: Vec<(record::Record<'_>, usize, usize)> = record::Scan::new(records)
        .map(|item| match item {
            record::Item::Record(record, at, len) => (record, at, len),
            record::Item::Skipped { .. } => unreachable!("records made by record::put/del"),
        })
        .collect();
    let mut last: FxHashMap<Key, usize> = FxHashMap::default();
    for (i, (record, ..)) in spans.iter().enumerate() {
        last.extend(record.keys().map(|key| (key, i)));
    }
    let mut out = Vec::new();
    for (i, (record, at, len)) in spans.iter().enumerate() {
        if record.keys().any(|key| last[&key] == i) {
            out.extend_from_slice(&records[*at..at + len]);
        }
    }
    out
}

/// The directory for `client_id`'s records under `base`: one per client id, which is what a
/// broker keeps a session for. Characters that are not safe in a file name are escaped.
fn client_dir(base: &Path, client_id: &str) -> PathBuf {
    let mut name = String::with_capacity(client_id.len() + 2);
    name.push('c');
    for b in client_id.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => name.push(b as char),
            _ => name.push_str(&format!("%{b:02X}")),
        }
    }
    base.join(name)
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // The client is closing: what the network task noted last, made as durable as the policy
        // asks. Nothing can report a failure any more; the records already written stand.
        let _ = self.commit();
        let _ = self.sync();
    }
}

impl Store {
    /// Opens the built-in directory store of `client_id` under `base` (created if need be).
    pub fn open_dir(base: &Path, client_id: &str, policy: SyncPolicy) -> Result<Store, Error> {
        let dir = client_dir(base, client_id);
        let (backend, loaded) =
            DirStore::open(&dir, policy).map_err(|e| Error::Store(format!("{}: {e}", dir.display())))?;
        Ok(Store::new(Box::new(backend), loaded))
    }

    /// Opens a store over the application's key-value table (see [`kv`]). Only its keys are read
    /// now; the values, and lines about keys the library did not make, come at the first restore.
    pub fn open_kv(table: Box<dyn KeyValue>, policy: SyncPolicy) -> Result<Store, Error> {
        let backend = KvStore::new(table, policy);
        let listing = backend.keys().map_err(|e| Error::Store(e.to_string()))?;
        Ok(Store::over(
            Box::new(backend),
            listing.keys.into_iter().map(|(key, _)| key),
            Vec::new(),
        ))
    }

    /// A store over `backend`, which held `loaded` when opened (only its keys and damage are
    /// used: values are loaded again by `restore`).
    pub fn new(backend: Box<dyn Backend>, loaded: Loaded) -> Store {
        Store::over(backend, loaded.values.into_keys(), loaded.damage)
    }

    /// A store over `backend`, which holds `keys`; `damage` is logged at the first restore.
    fn over(backend: Box<dyn Backend>, keys: impl IntoIterator<Item = Key>, damage: Vec<String>) -> Store {
        let next = keys
            .into_iter()
            .filter_map(|k| match k {
                Key::Message(n) => Some(n + 1),
                _ => None,
            })
            .max()
            .unwrap_or(1);
        Store {
            backend,
            inner: Mutex::new(Inner {
                next,
                by_token: FxHashMap::default(),
                pending: Vec::new(),
                coalesced: 0,
                damage,
            }),
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        // Each change is one insert or remove: a panic elsewhere leaves it consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores a QoS 1/2 message accepted under `token`, before the publish call returns.
    pub fn accept(&self, token: Token, publish: &Publish) -> Result<(), Error> {
        let value = encode_message(publish);
        // In hand before it is written: a restore running meanwhile (a connect on the network
        // task) must not take the message for an earlier process's and send it twice, nor clear
        // the store under it.
        let n = {
            let mut inner = self.inner();
            let n = inner.next;
            inner.next += 1;
            inner.by_token.insert(token, n);
            n
        };
        let mut records = Vec::with_capacity(record::put_len(value.len()));
        record::put(&mut records, Key::Message(n), &value);
        if let Err(e) = self.backend.write(&records) {
            self.inner().by_token.remove(&token);
            return Err(Error::Store(e.to_string()));
        }
        Ok(())
    }

    fn note(&self, token: Token, make: impl FnOnce(&mut Vec<u8>, u64)) {
        let mut inner = self.inner();
        if let Some(&n) = inner.by_token.get(&token) {
            make(&mut inner.pending, n);
        }
    }

    /// The message went out with packet id `id` (or its PUBREC came: `Stage::Released`).
    pub fn staged(&self, token: Token, stage: Stage) {
        self.note(token, |out, n| match stage {
            Stage::Queued => record::del(out, Key::State(n)),
            _ => record::put(out, Key::State(n), &stage_value(stage)),
        });
    }

    /// Tokens completed (a batch, under one lock): their messages leave the store, but for those
    /// only cancelled (the client closed, or the application disconnected), which stay for the
    /// next session.
    pub fn finished<'a>(&self, done: impl IntoIterator<Item = &'a (Token, TokenResult)>) {
        let mut inner = self.inner();
        if inner.by_token.is_empty() {
            return;
        }
        for (token, result) in done {
            let Some(n) = inner.by_token.remove(token) else {
                continue;
            };
            if !matches!(result, Err(Error::Cancelled)) {
                record::del_message(&mut inner.pending, n);
            }
        }
    }

    /// An inbound QoS 2 message with packet id `id` was delivered (`true`) or released.
    pub fn inbound(&self, id: u16, awaiting_pubrel: bool) {
        let mut inner = self.inner();
        match awaiting_pubrel {
            true => record::put(&mut inner.pending, Key::Inbound(id), &[]),
            false => record::del(&mut inner.pending, Key::Inbound(id)),
        }
    }

    /// Writes what the network task noted. Called before it writes packets to the socket, so that
    /// a packet id is stored before the PUBLISH that uses it leaves.
    ///
    /// When the write fails (a full disk), its records stay for the next commit, ahead of those
    /// noted meanwhile: each puts or deletes a whole value, so writing again those that were
    /// written before the failure changes nothing. While commits keep failing, the records are
    /// coalesced to the last of each key whenever they have doubled, which keeps them within the
    /// keys in use.
    pub fn commit(&self) -> Result<(), Error> {
        let pending = {
            let mut inner = self.inner();
            if inner.pending.is_empty() {
                return Ok(());
            }
            std::mem::take(&mut inner.pending)
        };
        let r = self.backend.write(&pending).map_err(|e| Error::Store(e.to_string()));
        let mut inner = self.inner();
        if r.is_err() {
            let mut kept = pending;
            kept.extend_from_slice(&inner.pending);
            if kept.len() >= 2 * inner.coalesced.max(COALESCE_FROM) {
                kept = coalesce(&kept);
                inner.coalesced = kept.len();
            }
            inner.pending = kept;
        } else {
            inner.coalesced = 0;
            if inner.pending.is_empty() {
                // Its buffer, for the next records.
                inner.pending = pending;
                inner.pending.clear();
            }
        }
        r
    }

    pub fn sync(&self) -> Result<(), Error> {
        self.backend.sync().map_err(|e| Error::Store(e.to_string()))
    }

    pub fn sync_due(&self) -> Option<Duration> {
        self.backend.sync_due()
    }

    /// The stored messages no token of this process stands for, oldest first, each under a new
    /// token from `issue` (given the bytes of topic and payload); with `keep` false they are
    /// deleted instead. Also the inbound QoS 2 ids awaiting PUBREL, and lines to log about damage
    /// the store skipped and records that do not decode.
    pub fn restore(&self, keep: bool, mut issue: impl FnMut(usize) -> Token) -> Result<Restoration, Error> {
        self.commit()?;
        let loaded = self.backend.load().map_err(|e| Error::Store(e.to_string()))?;
        let mut lines = std::mem::take(&mut self.inner().damage);
        lines.extend(loaded.damage);
        let mut restored = Vec::new();
        let mut inbound = Vec::new();
        let mut dropped = Vec::new();
        let mut inner = self.inner();
        // Dropping with nothing in hand: all the store holds is an earlier session's, which the
        // broker no longer has (a clean session), its inbound QoS 2 ids included. One clear, under
        // the lock, so that no publish is stored meanwhile (see `accept`).
        let clear = !keep && inner.by_token.is_empty();
        let in_hand: HashSet<u64> = inner.by_token.values().copied().collect();
        for (key, value) in &loaded.values {
            match *key {
                Key::Message(n) if in_hand.contains(&n) => {}
                Key::Message(n) => match decode_message(value) {
                    Some(publish) if keep => {
                        let stage = loaded
                            .values
                            .get(&Key::State(n))
                            .map_or(Stage::Queued, |v| parse_stage(v));
                        let token = issue(publish.topic.as_str().len() + publish.payload.len());
                        inner.by_token.insert(token, n);
                        restored.push(Restored { token, publish, stage });
                    }
                    Some(_) => dropped.push(n),
                    None => {
                        lines.push(format!("store: message {n} does not decode; deleted"));
                        dropped.push(n);
                    }
                },
                Key::Inbound(id) if !clear => inbound.push(id),
                Key::Inbound(_) | Key::State(_) => {}
            }
        }
        if !keep && !dropped.is_empty() {
            lines.push(format!(
                "store: {} message(s) of an earlier session dropped (clean session)",
                dropped.len()
            ));
        }
        if clear && !loaded.values.is_empty() {
            self.backend.clear().map_err(|e| Error::Store(e.to_string()))?;
        } else {
            for n in dropped {
                record::del_message(&mut inner.pending, n);
            }
        }
        drop(inner);
        self.commit()?;
        Ok(Restoration {
            messages: restored,
            inbound,
            lines,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{MqttStr, Properties, PropertyId};
    use bytes::Bytes;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, mpsc};

    /// A backend in memory that replays records the way the directory store does.
    #[derive(Default)]
    struct Memory(Mutex<BTreeMap<Key, Vec<u8>>>);

    impl Backend for Memory {
        fn write(&self, records: &[u8]) -> io::Result<()> {
            let mut m = self.0.lock().unwrap();
            for item in record::Scan::new(records) {
                match item {
                    record::Item::Record(record, ..) => record.apply(&mut m),
                    record::Item::Skipped { .. } => unreachable!(),
                }
            }
            Ok(())
        }
        fn load(&self) -> io::Result<Loaded> {
            Ok(Loaded {
                values: self.0.lock().unwrap().clone(),
                damage: Vec::new(),
            })
        }
        fn sync(&self) -> io::Result<()> {
            Ok(())
        }
        fn sync_due(&self) -> Option<Duration> {
            None
        }
    }

    /// [`Memory`] whose writes `write` makes: it may hold them up, or fail them.
    struct Hooked<F>(Memory, F);

    impl<F: Fn(&Memory, &[u8]) -> io::Result<()> + Send + Sync> Backend for Hooked<F> {
        fn write(&self, records: &[u8]) -> io::Result<()> {
            (self.1)(&self.0, records)
        }
        fn load(&self) -> io::Result<Loaded> {
            self.0.load()
        }
        fn sync(&self) -> io::Result<()> {
            Ok(())
        }
        fn sync_due(&self) -> Option<Duration> {
            None
        }
    }

    /// A store whose backend's writes fail, once the switch returned is on, after applying their
    /// first record only (as a full disk cuts a write short).
    fn failing_store() -> (Store, Arc<AtomicBool>) {
        let failing = Arc::new(AtomicBool::new(false));
        let switch = failing.clone();
        let backend = Hooked(Memory::default(), move |m: &Memory, records: &[u8]| {
            if !switch.load(Ordering::SeqCst) {
                return m.write(records);
            }
            let Some(record::Item::Record(_, _, first)) = record::Scan::new(records).next() else {
                unreachable!("records made by record::put/del")
            };
            m.write(&records[..first])?;
            Err(io::Error::other("No space left on device"))
        });
        (Store::new(Box::new(backend), Loaded::default()), failing)
    }

    pub(super) fn publish(topic: &str, qos: QoS) -> Publish {
        let mut properties = Properties::new();
        properties.push_str(PropertyId::ContentType, "text/plain").unwrap();
        Publish {
            dup: false,
            qos,
            retain: true,
            topic: MqttStr::new(topic).unwrap(),
            pkid: 0,
            properties,
            payload: Bytes::from(format!("payload of {topic}")),
        }
    }

    pub(super) fn counter() -> impl FnMut(usize) -> Token {
        let mut next = 100;
        move |_| {
            next += 1;
            next
        }
    }

    #[test]
    fn messages_come_back_with_their_stage_until_acknowledged() {
        let store = Store::new(Box::new(Memory::default()), Loaded::default());
        for (t, topic) in [(1, "a"), (2, "b"), (3, "c"), (4, "d")] {
            store
                .accept(
                    t,
                    &publish(topic, if t == 1 { QoS::AtLeastOnce } else { QoS::ExactlyOnce }),
                )
                .unwrap();
        }
        store.staged(1, Stage::Sent(10));
        store.staged(2, Stage::Sent(11));
        store.staged(2, Stage::Released(11));
        store.staged(3, Stage::Sent(12));
        store.finished(&[(3, Ok(Default::default()))]);
        store.finished(&[(4, Err(Error::Cancelled))]);
        store.inbound(5, true);
        store.inbound(6, true);
        store.inbound(5, false);
        store.commit().unwrap();

        // Another process: the same backend, no token in hand.
        let loaded = store.backend.load().unwrap();
        let again = Store::new(Box::new(Memory(Mutex::new(loaded.values.clone()))), loaded);
        let Restoration {
            messages: restored,
            inbound,
            lines,
        } = again.restore(true, counter()).unwrap();
        assert!(lines.is_empty());
        assert_eq!(inbound, [6]);
        let got: Vec<(Token, &str, Stage)> = restored
            .iter()
            .map(|r| (r.token, r.publish.topic.as_str(), r.stage))
            .collect();
        assert_eq!(
            got,
            [
                (101, "a", Stage::Sent(10)),
                (102, "b", Stage::Released(11)),
                (103, "d", Stage::Queued)
            ],
            "acknowledged ones are gone; a cancelled one stays"
        );
        let original = publish("b", QoS::ExactlyOnce);
        assert_eq!(
            restored[1].publish, original,
            "topic, payload, QoS, retain and properties"
        );
        assert_eq!(again.inner().next, 5, "new messages do not reuse a number");

        // Restored again in the same process: only what no token stands for.
        again.finished(&[(101, Ok(Default::default()))]);
        again.finished(&[(103, Err(Error::Cancelled))]);
        let restored = again.restore(true, counter()).unwrap().messages;
        let topics: Vec<&str> = restored.iter().map(|r| r.publish.topic.as_str()).collect();
        assert_eq!(topics, ["d"]);
    }

    #[test]
    fn a_restore_while_a_publish_is_being_stored_leaves_that_message_alone() {
        let (applied_tx, applied) = mpsc::channel();
        let (go, go_rx) = mpsc::channel();
        let (applied_tx, go_rx) = (Mutex::new(applied_tx), Mutex::new(go_rx));
        let gated = Hooked(Memory::default(), move |m: &Memory, records: &[u8]| {
            m.write(records)?;
            applied_tx.lock().unwrap().send(()).unwrap();
            go_rx.lock().unwrap().recv().unwrap();
            Ok(())
        });
        let store = Arc::new(Store::new(Box::new(gated), Loaded::default()));
        let publisher = {
            let store = store.clone();
            std::thread::spawn(move || store.accept(1, &publish("a", QoS::AtLeastOnce)))
        };
        // The message is written, its publish call not yet returned: a connect restores now.
        applied.recv().unwrap();
        let restored = store.restore(true, counter()).unwrap().messages;
        assert!(restored.is_empty(), "it would go twice: {restored:?}");
        assert!(store.restore(false, counter()).unwrap().lines.is_empty());
        go.send(()).unwrap();
        publisher.join().unwrap().unwrap();
        assert!(
            store.backend.load().unwrap().values.contains_key(&Key::Message(1)),
            "a clean session's restore left it stored"
        );
    }

    #[test]
    fn a_failed_commit_keeps_its_records_for_the_next() {
        let (store, failing) = failing_store();
        for t in 1..=3 {
            store.accept(t, &publish("a", QoS::ExactlyOnce)).unwrap();
        }
        failing.store(true, Ordering::SeqCst);
        store.staged(1, Stage::Sent(11));
        store.staged(2, Stage::Sent(12));
        assert!(store.commit().is_err());
        // Noted after the failure: goes after the records kept.
        store.finished(&[(1, Ok(Default::default()))]);
        store.staged(3, Stage::Sent(13));
        assert!(store.commit().is_err(), "still failing");
        failing.store(false, Ordering::SeqCst);
        store.commit().unwrap();
        let values = store.backend.load().unwrap().values;
        let keys: Vec<Key> = values.keys().copied().collect();
        assert_eq!(
            keys,
            [Key::Message(2), Key::Message(3), Key::State(2), Key::State(3)],
            "message 1 acknowledged, the others sent"
        );
        assert_eq!(values[&Key::State(2)], stage_value(Stage::Sent(12)));
    }

    #[test]
    fn coalesced_records_leave_the_values_all_of_them_leave() {
        let mut records = Vec::new();
        record::put(&mut records, Key::State(1), b"sent");
        // The delete of message 1 is the last record for its state, though not for the message.
        record::del_message(&mut records, 1);
        record::put(&mut records, Key::Message(1), b"again");
        record::put(&mut records, Key::Inbound(2), b"");
        record::del(&mut records, Key::Inbound(2));
        record::put(&mut records, Key::Inbound(3), b"");
        let apply = |records: &[u8]| {
            let mut values = BTreeMap::from([(Key::State(1), b"earlier".to_vec()), (Key::Inbound(2), Vec::new())]);
            for item in record::Scan::new(records) {
                let record::Item::Record(record, ..) = item else {
                    unreachable!()
                };
                record.apply(&mut values);
            }
            values
        };
        let fewer = coalesce(&records);
        assert!(fewer.len() < records.len());
        assert_eq!(apply(&fewer), apply(&records));
        assert_eq!(
            apply(&records).into_keys().collect::<Vec<_>>(),
            [Key::Message(1), Key::Inbound(3)]
        );
    }

    #[test]
    fn records_kept_while_commits_fail_stay_within_the_keys_in_use() {
        let (store, failing) = failing_store();
        failing.store(true, Ordering::SeqCst);
        let mut most = 0;
        for round in 0..20_000u32 {
            let id = (round % 100) as u16;
            store.inbound(id, round % 3 != 2);
            let _ = store.commit();
            most = most.max(store.inner().pending.len());
        }
        // 100 keys of 22-byte records, doubled before each coalescing.
        assert!(most < 4 * COALESCE_FROM, "{most} bytes kept");
        failing.store(false, Ordering::SeqCst);
        store.commit().unwrap();
        let kept: Vec<Key> = store.backend.load().unwrap().values.into_keys().collect();
        let expected: Vec<Key> = (0..100u32)
            .filter(|id| (19_900 + id) % 3 != 2)
            .map(|id| Key::Inbound(id as u16))
            .collect();
        assert_eq!(kept, expected, "the last record of each key");
    }

    #[test]
    fn a_clean_session_drops_what_an_earlier_one_stored() {
        let store = Store::new(Box::new(Memory::default()), Loaded::default());
        store.accept(1, &publish("a", QoS::AtLeastOnce)).unwrap();
        store.finished(&[(1, Err(Error::Cancelled))]);
        let Restoration {
            messages: restored,
            lines,
            ..
        } = store.restore(false, counter()).unwrap();
        assert!(restored.is_empty());
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(store.backend.load().unwrap().values.is_empty());
    }

    #[test]
    fn an_undecodable_message_is_reported_and_deleted() {
        let mut values = BTreeMap::new();
        values.insert(Key::Message(1), b"not a publish".to_vec());
        values.insert(
            Key::Message(2),
            encode_message(&publish("ok", QoS::AtLeastOnce)).to_vec(),
        );
        let loaded = Loaded {
            values: values.clone(),
            damage: vec!["skipped".into()],
        };
        let store = Store::new(Box::new(Memory(Mutex::new(values))), loaded);
        let Restoration {
            messages: restored,
            lines,
            ..
        } = store.restore(true, counter()).unwrap();
        assert_eq!(restored.len(), 1);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(!store.backend.load().unwrap().values.contains_key(&Key::Message(1)));
    }
}
