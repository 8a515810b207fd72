//! The built-in directory store: a log of records (see [`record`]) in segment files.
//!
//! Why a log, not a file per message as Paho C keeps: a put is one `write` to a file already open,
//! where a file per message costs an open, a write, a close and later an unlink, each touching the
//! directory. A record is in the page cache once `write` returns, so it survives the process
//! being killed; surviving the machine's power loss is the sync policy's business.
//!
//! Layout: `<dir>/lock` (held by the open store, so two clients never share one) and segments
//! `<16 hex digits>.log`, replayed in order; a later record for a key replaces an earlier one.
//! Opening never appends to an old segment (its tail may be torn): it copies the live records to
//! a new one and deletes the old ones, oldest first, so a crash half way leaves a log that replays
//! to the same contents. While running, a segment is deleted once no live record is in it and it
//! is the oldest (a newer one may hold deletes of records in older ones); when the segments hold
//! more than twice the live bytes, the oldest one's live records are copied forward first.
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::record::{self, Item, Record, Scan};
use super::{Backend, Key, Loaded, SyncClock, SyncPolicy};
use crate::fxhash::FxHashMap;

/// A segment is closed for appends past this size.
const SEGMENT_BYTES: u64 = 8 << 20;

pub struct DirStore {
    dir: PathBuf,
    policy: SyncPolicy,
    log: Mutex<Log>,
    /// Holds the lock on `<dir>/lock` while the store is open.
    lock: File,
}

impl Drop for DirStore {
    fn drop(&mut self) {
        // Closing the file is not enough: a process forked meanwhile (an application's child
        // between fork and exec, or one that never execs) holds a copy of the descriptor, and
        // with it the lock, which would refuse the next client this store.
        let _ = crate::sys::unlock(&self.lock);
    }
}

/// Where a key's live record is.
#[derive(Clone, Copy)]
struct Loc {
    seg: u64,
    offset: u64,
    len: u32,
}

#[derive(Default)]
struct Segment {
    /// Live records in it.
    live: usize,
    /// Its size in bytes.
    bytes: u64,
}

struct Log {
    file: File,
    current: u64,
    segments: BTreeMap<u64, Segment>,
    index: FxHashMap<Key, Loc>,
    live_bytes: u64,
    clock: SyncClock,
}

fn segment_path(dir: &Path, seg: u64) -> PathBuf {
    dir.join(format!("{seg:016x}.log"))
}

/// The segments in `dir`, in order.
fn list_segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut segs = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(hex) = name.strip_suffix(".log").filter(|h| h.len() == 16)
            && let Ok(seg) = u64::from_str_radix(hex, 16)
        {
            segs.push(seg);
        }
    }
    segs.sort_unstable();
    Ok(segs)
}

/// Replays the segments: the live values, and a line for each damaged or cut-short stretch.
fn replay(dir: &Path, segs: &[u64]) -> io::Result<Loaded> {
    let mut loaded = Loaded::default();
    for &seg in segs {
        let data = fs::read(segment_path(dir, seg))?;
        for item in Scan::new(&data) {
            match item {
                Item::Record(record, ..) => record.apply(&mut loaded.values),
                Item::Skipped { offset, len } => loaded.damage.push(format!(
                    "store: skipped {len} damaged byte(s) at offset {offset} of {}",
                    segment_path(dir, seg).display()
                )),
            }
        }
    }
    Ok(loaded)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl DirStore {
    /// Opens (creating it if need be) the store in `dir`, and returns what it holds.
    pub fn open(dir: &Path, policy: SyncPolicy) -> io::Result<(DirStore, Loaded)> {
        fs::create_dir_all(dir)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))?;
        if !crate::sys::try_lock_exclusive(&lock)? {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("store {} is in use by another client", dir.display()),
            ));
        }
        let old = list_segments(dir)?;
        let loaded = replay(dir, &old)?;
        let current = old.last().map_or(1, |s| s + 1);
        let file = create_segment(dir, current)?;
        let mut log = Log {
            file,
            current,
            segments: BTreeMap::from([(current, Segment::default())]),
            index: FxHashMap::default(),
            live_bytes: 0,
            clock: SyncClock::new(policy),
        };
        let mut checkpoint = Vec::new();
        for (key, value) in &loaded.values {
            record::put(&mut checkpoint, *key, value);
        }
        log.append(&checkpoint)?;
        if policy != SyncPolicy::Never {
            log.file.sync_data()?;
            sync_dir(dir)?;
        }
        // Oldest first: a newer segment may hold the delete of a record in an older one.
        for seg in old {
            fs::remove_file(segment_path(dir, seg))?;
        }
        let store = DirStore {
            dir: dir.to_owned(),
            policy,
            log: Mutex::new(log),
            lock,
        };
        Ok((store, loaded))
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        // Every change to the log state is made after the write it describes succeeded, so a
        // panic in between leaves it describing what is on disk.
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The segment files now, for tests.
    #[cfg(test)]
    fn segment_count(&self) -> usize {
        self.log().segments.len()
    }
}

fn create_segment(dir: &Path, seg: u64) -> io::Result<File> {
    OpenOptions::new()
        .create_new(true)
        .append(true)
        .read(true)
        .mode(0o600)
        .open(segment_path(dir, seg))
}

impl Log {
    /// Appends well-formed records to the current segment and indexes them.
    fn append(&mut self, records: &[u8]) -> io::Result<()> {
        let base = self.segments[&self.current].bytes;
        if let Err(e) = self.file.write_all(records) {
            // Part of it may be in the file: a torn record, which replay skips. Later records go
            // after it, so the size must be the file's.
            let len = self.file.metadata().map_or(base, |m| m.len());
            self.segments.entry(self.current).or_default().bytes = len;
            return Err(e);
        }
        for item in Scan::new(records) {
            let Item::Record(record, offset, len) = item else {
                unreachable!("records made by record::put/del")
            };
            let new = matches!(record, Record::Put(..)).then_some(Loc {
                seg: self.current,
                offset: base + offset as u64,
                len: len as u32,
            });
            for key in record.keys() {
                let old = match new {
                    Some(loc) => self.index.insert(key, loc),
                    None => self.index.remove(&key),
                };
                if let Some(old) = old {
                    self.segments.entry(old.seg).or_default().live -= 1;
                    self.live_bytes -= u64::from(old.len);
                }
            }
            if let Some(loc) = new {
                self.segments.entry(loc.seg).or_default().live += 1;
                self.live_bytes += u64::from(loc.len);
            }
            self.clock.wrote(1);
        }
        self.segments.entry(self.current).or_default().bytes = base + records.len() as u64;
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()?;
        self.clock.synced();
        Ok(())
    }

    fn sync_if_due(&mut self) -> io::Result<()> {
        if self.clock.due() { self.sync() } else { Ok(()) }
    }

    /// Starts a new segment once the current one is full, then deletes or compacts old ones.
    fn rotate_if_full(&mut self, dir: &Path, policy: SyncPolicy) -> io::Result<()> {
        if self.segments[&self.current].bytes < SEGMENT_BYTES {
            return Ok(());
        }
        if policy != SyncPolicy::Never {
            // Later syncs are of the new segment only.
            self.sync()?;
        }
        let next = self.current + 1;
        self.file = create_segment(dir, next)?;
        self.current = next;
        self.segments.insert(next, Segment::default());
        if policy != SyncPolicy::Never {
            sync_dir(dir)?;
        }
        self.collect(dir, policy)
    }

    /// Deletes dead segments from the oldest on, copying the oldest one's live records forward
    /// while the segments hold more than twice the live bytes (and a segment).
    fn collect(&mut self, dir: &Path, policy: SyncPolicy) -> io::Result<()> {
        loop {
            let Some((&oldest, seg)) = self.segments.first_key_value() else {
                return Ok(());
            };
            if oldest == self.current {
                return Ok(());
            }
            if seg.live > 0 {
                let on_disk: u64 = self.segments.values().map(|s| s.bytes).sum();
                if on_disk <= 2 * self.live_bytes + SEGMENT_BYTES {
                    return Ok(());
                }
                self.copy_forward(dir, oldest)?;
                if policy != SyncPolicy::Never {
                    self.sync()?;
                }
            }
            fs::remove_file(segment_path(dir, oldest))?;
            self.segments.remove(&oldest);
        }
    }

    fn copy_forward(&mut self, dir: &Path, seg: u64) -> io::Result<()> {
        let file = File::open(segment_path(dir, seg))?;
        let mut locs: Vec<Loc> = self.index.values().filter(|l| l.seg == seg).copied().collect();
        locs.sort_by_key(|l| l.offset);
        let mut copied = Vec::new();
        for loc in locs {
            let mut buf = vec![0; loc.len as usize];
            file.read_exact_at(&mut buf, loc.offset)?;
            copied.extend_from_slice(&buf);
        }
        // Read back from a file someone else may have changed: only records that check out move.
        let checked: Vec<u8> = Scan::new(&copied)
            .filter_map(|i| match i {
                Item::Record(_, at, len) => Some(&copied[at..at + len]),
                Item::Skipped { .. } => None,
            })
            .flatten()
            .copied()
            .collect();
        self.append(&checked)?;
        // What did not check out is lost with the segment; the index must not point into it.
        let lost: Vec<Key> = self
            .index
            .iter()
            .filter(|(_, l)| l.seg == seg)
            .map(|(k, _)| *k)
            .collect();
        for key in lost {
            let loc = self.index.remove(&key).expect("listed just above");
            self.live_bytes -= u64::from(loc.len);
        }
        if let Some(s) = self.segments.get_mut(&seg) {
            s.live = 0;
        }
        Ok(())
    }
}

impl Backend for DirStore {
    fn write(&self, records: &[u8]) -> io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut log = self.log();
        log.append(records)
            .and_then(|()| log.sync_if_due())
            .and_then(|()| log.rotate_if_full(&self.dir, self.policy))
            // Which store, as `Store::open_dir` says: a full disk is then easy to find.
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.dir.display())))
    }

    fn load(&self) -> io::Result<Loaded> {
        let log = self.log();
        let segs: Vec<u64> = log.segments.keys().copied().collect();
        replay(&self.dir, &segs)
    }

    fn sync(&self) -> io::Result<()> {
        let mut log = self.log();
        if log.clock.owed() {
            log.sync()?;
        }
        Ok(())
    }

    fn sync_due(&self) -> Option<Duration> {
        self.log().clock.next_due()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mqttc-store-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn put(key: Key, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        record::put(&mut out, key, value);
        out
    }

    fn del(key: Key) -> Vec<u8> {
        let mut out = Vec::new();
        record::del(&mut out, key);
        out
    }

    #[test]
    fn reopening_gives_back_the_live_records_only() {
        let dir = temp_dir("reopen");
        let (s, loaded) = DirStore::open(&dir, SyncPolicy::Every).unwrap();
        assert!(loaded.values.is_empty() && loaded.damage.is_empty());
        s.write(&put(Key::Message(1), b"one")).unwrap();
        s.write(&put(Key::Message(2), b"two")).unwrap();
        s.write(&[put(Key::State(2), b"s"), del(Key::Message(1))].concat())
            .unwrap();
        s.write(&put(Key::Inbound(9), b"")).unwrap();
        s.write(&[put(Key::Message(3), b"three"), put(Key::State(3), b"s")].concat())
            .unwrap();
        let mut gone = Vec::new();
        record::del_message(&mut gone, 3);
        s.write(&gone).unwrap();
        assert!(
            DirStore::open(&dir, SyncPolicy::Every).is_err(),
            "a second client may not open it"
        );
        // As a child process forked meanwhile would hold it.
        let copy = s.lock.try_clone().unwrap();
        drop(s);
        let (s, loaded) = DirStore::open(&dir, SyncPolicy::Never).unwrap();
        let expected = BTreeMap::from([
            (Key::Message(2), b"two".to_vec()),
            (Key::State(2), b"s".to_vec()),
            (Key::Inbound(9), Vec::new()),
        ]);
        assert_eq!(loaded.values, expected);
        assert_eq!(s.load().unwrap().values, expected, "as written again on open");
        assert_eq!(list_segments(&dir).unwrap().len(), 1, "old segments are deleted");
        drop(copy);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn damage_between_runs_costs_only_the_damaged_records() {
        let dir = temp_dir("damage");
        let (s, _) = DirStore::open(&dir, SyncPolicy::Never).unwrap();
        for i in 0..10 {
            s.write(&put(Key::Message(i), format!("message {i}").as_bytes()))
                .unwrap();
        }
        drop(s);
        let seg = segment_path(&dir, list_segments(&dir).unwrap()[0]);
        let mut data = fs::read(&seg).unwrap();
        let one = put(Key::Message(0), b"message 0").len();
        data[3 * one + 20] ^= 0x40; // inside the fourth record
        data.truncate(data.len() - 5); // the last one torn
        fs::write(&seg, &data).unwrap();
        let (_, loaded) = DirStore::open(&dir, SyncPolicy::Never).unwrap();
        let keys: Vec<Key> = loaded.values.keys().copied().collect();
        assert_eq!(keys, [0, 1, 2, 4, 5, 6, 7, 8].map(Key::Message));
        assert_eq!(loaded.values[&Key::Message(4)], b"message 4");
        assert_eq!(loaded.damage.len(), 2, "{:?}", loaded.damage);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn segments_are_deleted_and_compacted_as_records_die() {
        let dir = temp_dir("rotate");
        let (s, _) = DirStore::open(&dir, SyncPolicy::Never).unwrap();
        let value = vec![7u8; 64 << 10];
        // One record that stays live in the first segment, then a stream put and deleted.
        s.write(&put(Key::Message(0), b"kept")).unwrap();
        for i in 1..1000u64 {
            s.write(&put(Key::Message(i), &value)).unwrap();
            s.write(&del(Key::Message(i))).unwrap();
        }
        assert!(
            s.segment_count() <= 3,
            "{} segments for one live record",
            s.segment_count()
        );
        let on_disk: u64 = list_segments(&dir)
            .unwrap()
            .iter()
            .map(|&g| fs::metadata(segment_path(&dir, g)).unwrap().len())
            .sum();
        assert!(on_disk <= 3 * SEGMENT_BYTES, "{on_disk} bytes on disk");
        assert_eq!(
            s.load().unwrap().values,
            BTreeMap::from([(Key::Message(0), b"kept".to_vec())])
        );
        drop(s);
        fs::remove_dir_all(&dir).unwrap();
    }
}
