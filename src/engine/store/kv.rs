//! A store the application supplies as a key-value table (in C, `mqttc_store`): each record
//! becomes a put or a remove of one key, so the table can live wherever the application keeps
//! data (flash, a database).
//!
//! Keys are short printable ASCII the library makes from a [`Key`]: `m.<n>` for a message,
//! `s.<n>` for its state, `i.<id>` for an inbound QoS 2 id, in decimal without leading zeros.
//! Listing ignores any other key, with a line in the log: the table may hold the application's
//! own data too.
//!
//! Calls into the table are made one at a time (under a lock): an application's callbacks need
//! no locking of their own.
use std::collections::BTreeMap;
use std::io;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::record::{Item, Record, Scan};
use super::{Backend, Key, Loaded, SyncClock, SyncPolicy};

/// The application's table. Each call either succeeds or fails as a whole, as far as the library
/// is concerned; a failure's text says which call failed and why.
pub trait KeyValue: Send + Sync {
    /// Stores `value` under `key`, replacing any value it had.
    fn put(&self, key: &str, value: &[u8]) -> io::Result<()>;
    /// The value under `key`, or `None` when it has none.
    fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>>;
    /// Removes `key`; removing a key that is not there succeeds.
    fn remove(&self, key: &str) -> io::Result<()>;
    /// Every key held.
    fn list(&self) -> io::Result<Vec<String>>;
    /// Removes every key.
    fn clear(&self) -> io::Result<()>;
    /// Makes what was stored durable against a power loss; called as the sync policy says.
    fn sync(&self) -> io::Result<()>;
}

/// The name of `key` in the table.
pub fn key_name(key: Key) -> String {
    match key {
        Key::Message(n) => format!("m.{n}"),
        Key::State(n) => format!("s.{n}"),
        Key::Inbound(id) => format!("i.{id}"),
    }
}

/// The key a name stands for, if [`key_name`] makes that name.
pub fn parse_key_name(name: &str) -> Option<Key> {
    let (kind, digits) = name.split_once('.')?;
    let canonical =
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && (digits == "0" || !digits.starts_with('0'));
    if !canonical {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    match kind {
        "m" => Some(Key::Message(n)),
        "s" => Some(Key::State(n)),
        "i" => u16::try_from(n).ok().map(Key::Inbound),
        _ => None,
    }
}

/// A [`Backend`] over the application's table.
pub struct KvStore {
    table: Mutex<Table>,
}

struct Table {
    kv: Box<dyn KeyValue>,
    clock: SyncClock,
}

impl Table {
    fn sync(&mut self) -> io::Result<()> {
        self.kv.sync()?;
        self.clock.synced();
        Ok(())
    }
}

impl KvStore {
    pub fn new(kv: Box<dyn KeyValue>, policy: SyncPolicy) -> KvStore {
        KvStore {
            table: Mutex::new(Table {
                kv,
                clock: SyncClock::new(policy),
            }),
        }
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        // The clock is the only state, and a count off by one costs at most one early sync.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What the table holds.
    pub fn keys(&self) -> io::Result<Listing> {
        list(&self.table())
    }
}

/// A table's keys: those the library made, with their names, and a line about each other one.
pub struct Listing {
    pub keys: Vec<(Key, String)>,
    pub foreign: Vec<String>,
}

fn list(table: &Table) -> io::Result<Listing> {
    let mut listing = Listing {
        keys: Vec::new(),
        foreign: Vec::new(),
    };
    for name in table.kv.list()? {
        match parse_key_name(&name) {
            Some(key) => listing.keys.push((key, name)),
            None => listing
                .foreign
                .push(format!("store: ignored key {name:?}, which the library did not make")),
        }
    }
    Ok(listing)
}

impl Backend for KvStore {
    fn write(&self, records: &[u8]) -> io::Result<()> {
        let mut table = self.table();
        for item in Scan::new(records) {
            let Item::Record(record, ..) = item else {
                unreachable!("records made by record::put/del")
            };
            match record {
                Record::Put(key, value) => table.kv.put(&key_name(key), value)?,
                _ => {
                    for key in record.keys() {
                        table.kv.remove(&key_name(key))?;
                    }
                }
            }
            table.clock.wrote(1);
        }
        if table.clock.due() {
            table.sync()?;
        }
        Ok(())
    }

    fn load(&self) -> io::Result<Loaded> {
        let table = self.table();
        let Listing {
            keys,
            foreign: mut damage,
        } = list(&table)?;
        let mut values = BTreeMap::new();
        for (key, name) in keys {
            match table.kv.get(&name)? {
                Some(value) => {
                    values.insert(key, value);
                }
                None => damage.push(format!("store: key {name} was listed but has no value; skipped")),
            }
        }
        Ok(Loaded { values, damage })
    }

    fn sync(&self) -> io::Result<()> {
        let mut table = self.table();
        if table.clock.owed() {
            table.sync()?;
        }
        Ok(())
    }

    fn sync_due(&self) -> Option<Duration> {
        self.table().clock.next_due()
    }

    fn clear(&self) -> io::Result<()> {
        let mut table = self.table();
        table.kv.clear()?;
        table.clock.wrote(1);
        if table.clock.due() {
            table.sync()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::tests::{counter, publish};
    use super::super::{Error, Restoration, Stage, Store};
    use super::*;
    use crate::codec::QoS;

    /// An application's table in memory, which counts its calls and fails puts on request.
    #[derive(Default)]
    struct Table {
        map: Mutex<BTreeMap<String, Vec<u8>>>,
        fail_puts: Mutex<bool>,
        syncs: Mutex<u32>,
        clears: Mutex<u32>,
    }

    /// The table as the store sees it, shared with the test.
    struct Shared(Arc<Table>);

    impl KeyValue for Shared {
        fn put(&self, key: &str, value: &[u8]) -> io::Result<()> {
            if *self.0.fail_puts.lock().unwrap() {
                return Err(io::Error::other(format!("put of {key} refused")));
            }
            self.0.map.lock().unwrap().insert(key.into(), value.into());
            Ok(())
        }
        fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
            Ok(self.0.map.lock().unwrap().get(key).cloned())
        }
        fn remove(&self, key: &str) -> io::Result<()> {
            self.0.map.lock().unwrap().remove(key);
            Ok(())
        }
        fn list(&self) -> io::Result<Vec<String>> {
            Ok(self.0.map.lock().unwrap().keys().cloned().collect())
        }
        fn clear(&self) -> io::Result<()> {
            *self.0.clears.lock().unwrap() += 1;
            self.0.map.lock().unwrap().clear();
            Ok(())
        }
        fn sync(&self) -> io::Result<()> {
            *self.0.syncs.lock().unwrap() += 1;
            Ok(())
        }
    }

    impl Table {
        fn keys(&self) -> Vec<String> {
            self.map.lock().unwrap().keys().cloned().collect()
        }
    }

    fn open(table: &Arc<Table>, policy: SyncPolicy) -> Store {
        Store::open_kv(Box::new(Shared(table.clone())), policy).unwrap()
    }

    /// `table` as the next process finds it: opened again, and restored.
    fn next_process(table: &Arc<Table>, keep: bool) -> (Store, Restoration) {
        let store = open(table, SyncPolicy::Never);
        let restoration = store.restore(keep, counter()).unwrap();
        (store, restoration)
    }

    fn topics(restoration: &Restoration) -> Vec<&str> {
        restoration.messages.iter().map(|r| r.publish.topic.as_str()).collect()
    }

    #[test]
    fn key_names_are_made_and_read_back_and_no_other_name_is_taken_for_one() {
        for key in [
            Key::Message(0),
            Key::Message(17),
            Key::State(u64::MAX),
            Key::Inbound(5),
            Key::Inbound(u16::MAX),
        ] {
            assert_eq!(parse_key_name(&key_name(key)), Some(key), "{}", key_name(key));
        }
        assert_eq!(key_name(Key::Message(17)), "m.17");
        assert_eq!(key_name(Key::State(17)), "s.17");
        assert_eq!(key_name(Key::Inbound(5)), "i.5");
        for foreign in [
            "",
            "m",
            "m.",
            "m.017",
            "m.+1",
            "m.-1",
            "m.1x",
            "x.1",
            "M.1",
            "i.65536",
            "s.18446744073709551616",
            "m.1.2",
            "settings",
        ] {
            assert_eq!(parse_key_name(foreign), None, "{foreign:?}");
        }
    }

    #[test]
    fn messages_and_states_go_to_their_keys_and_come_back_in_a_new_process() {
        let table = Arc::new(Table::default());
        let store = open(&table, SyncPolicy::Never);
        store.accept(1, &publish("one", QoS::AtLeastOnce)).unwrap();
        store.accept(2, &publish("two", QoS::ExactlyOnce)).unwrap();
        store.accept(3, &publish("three", QoS::ExactlyOnce)).unwrap();
        store.staged(2, Stage::Sent(7));
        store.staged(2, Stage::Released(7));
        store.staged(3, Stage::Sent(8));
        store.finished(&[(3, Ok(Default::default()))]);
        store.inbound(9, true);
        store.commit().unwrap();
        assert_eq!(table.keys(), ["i.9", "m.1", "m.2", "s.2"]);
        drop(store);

        let (again, restoration) = next_process(&table, true);
        assert!(restoration.lines.is_empty(), "{:?}", restoration.lines);
        assert_eq!(restoration.inbound, [9]);
        assert_eq!(topics(&restoration), ["one", "two"]);
        let stages: Vec<Stage> = restoration.messages.iter().map(|r| r.stage).collect();
        assert_eq!(stages, [Stage::Queued, Stage::Released(7)]);
        assert_eq!(restoration.messages[1].publish, publish("two", QoS::ExactlyOnce));
        again.accept(4, &publish("four", QoS::AtLeastOnce)).unwrap();
        assert!(
            table.keys().contains(&"m.3".to_string()),
            "numbers go on after the stored ones"
        );
    }

    #[test]
    fn keys_the_library_did_not_make_are_left_alone_and_reported() {
        let table = Arc::new(Table::default());
        table.map.lock().unwrap().insert("settings".into(), b"mine".to_vec());
        table.map.lock().unwrap().insert("m.07".into(), b"also mine".to_vec());
        let store = open(&table, SyncPolicy::Never);
        store.accept(1, &publish("one", QoS::AtLeastOnce)).unwrap();
        store.finished(&[(1, Err(Error::Cancelled))]);
        let (_, restoration) = next_process(&table, true);
        assert_eq!(topics(&restoration), ["one"]);
        let lines = &restoration.lines;
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines.iter().any(|l| l.contains("\"settings\"")), "{lines:?}");
        assert_eq!(table.keys(), ["m.07", "m.1", "settings"]);
    }

    #[test]
    fn a_failing_put_fails_the_publish_and_keeps_what_was_stored() {
        let table = Arc::new(Table::default());
        let store = open(&table, SyncPolicy::Never);
        store.accept(1, &publish("one", QoS::AtLeastOnce)).unwrap();
        *table.fail_puts.lock().unwrap() = true;
        let e = store.accept(2, &publish("two", QoS::AtLeastOnce)).unwrap_err();
        assert_eq!(e, Error::Store("put of m.2 refused".into()));
        *table.fail_puts.lock().unwrap() = false;
        store.finished(&[(1, Err(Error::Cancelled))]);
        // The refused one is not in hand: a later restore finds only the first.
        assert_eq!(topics(&store.restore(true, counter()).unwrap()), ["one"]);
        assert_eq!(table.keys(), ["m.1"]);
    }

    #[test]
    fn sync_follows_the_policy() {
        let syncs_after = |policy, writes: u32| {
            let table = Arc::new(Table::default());
            let store = open(&table, policy);
            for t in 0..writes {
                store.accept(t.into(), &publish("x", QoS::AtLeastOnce)).unwrap();
            }
            *table.syncs.lock().unwrap()
        };
        assert_eq!(syncs_after(SyncPolicy::Every, 5), 5);
        assert_eq!(syncs_after(SyncPolicy::Never, 5), 0);
        let batch = SyncPolicy::Batch {
            records: 2,
            interval: Duration::from_secs(3600),
        };
        assert_eq!(syncs_after(batch, 5), 2);

        // What a batch leaves unsynced is synced when due, or on request.
        let table = Arc::new(Table::default());
        let store = open(&table, batch);
        store.accept(1, &publish("x", QoS::AtLeastOnce)).unwrap();
        assert!(store.sync_due().is_some_and(|d| d > Duration::from_secs(3000)));
        store.sync().unwrap();
        assert_eq!(*table.syncs.lock().unwrap(), 1);
        assert_eq!(store.sync_due(), None);
        store.sync().unwrap();
        assert_eq!(*table.syncs.lock().unwrap(), 1, "nothing left to sync");
    }

    #[test]
    fn a_clean_session_with_nothing_in_hand_clears_the_table_at_once() {
        let table = Arc::new(Table::default());
        let store = open(&table, SyncPolicy::Never);
        store.accept(1, &publish("one", QoS::AtLeastOnce)).unwrap();
        store.accept(2, &publish("two", QoS::AtLeastOnce)).unwrap();
        store.inbound(3, true);
        store.commit().unwrap();
        drop(store);
        let (again, restoration) = next_process(&table, false);
        assert!(restoration.messages.is_empty() && restoration.inbound.is_empty());
        assert_eq!(
            restoration.lines,
            ["store: 2 message(s) of an earlier session dropped (clean session)"]
        );
        assert_eq!(*table.clears.lock().unwrap(), 1);
        assert!(table.keys().is_empty());

        // With a message in hand, only what is not is deleted, key by key.
        again.accept(4, &publish("four", QoS::AtLeastOnce)).unwrap();
        let in_hand = table.keys();
        let value = table.map.lock().unwrap()[&in_hand[0]].clone();
        table.map.lock().unwrap().insert("m.1".into(), value);
        again.restore(false, counter()).unwrap();
        assert_eq!(*table.clears.lock().unwrap(), 1);
        assert_eq!(table.keys(), in_hand);
    }
}
