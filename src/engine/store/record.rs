//! The record framing of the directory store's log: bytes in, records out, no I/O.
//!
//! A record is `magic (4) | body length (4, LE) | CRC-32 of length and body (4, LE) | body`.
//! The body is `op (1) | key tag (1) | key id (8, LE) | value` (the value only for a put). The ops
//! are put, delete, and delete of a message with its state (one record where a completed message
//! took two).
//!
//! A process killed in the middle of a write leaves a torn record at the end of a segment; a disk
//! or a person may corrupt bytes anywhere. The reader never trusts a length it has not checked:
//! a record counts only when its magic, its length (within the segment and the limit) and its CRC
//! agree. Anything else is skipped byte by byte up to the next magic whose record checks out, and
//! reported, so a damaged record costs that record only, never a crash or a wrong message.
use std::collections::BTreeMap;

use super::Key;

const MAGIC: [u8; 4] = *b"mqS1";
const HEADER: usize = 12;
const KEY_LEN: usize = 10;
/// The largest body read back: a PUBLISH of the largest size MQTT allows, with room for the key.
pub const MAX_BODY: usize = 268_435_455 + 64;

const OP_PUT: u8 = 1;
const OP_DEL: u8 = 2;
const OP_DEL_MESSAGE: u8 = 3;

/// One record of the log.
#[derive(Debug, PartialEq, Eq)]
pub enum Record<'a> {
    Put(Key, &'a [u8]),
    Del(Key),
    /// Deletes `Key::Message(n)` and `Key::State(n)`.
    DelMessage(u64),
}

impl Record<'_> {
    /// The keys the record puts or deletes.
    pub fn keys(&self) -> impl Iterator<Item = Key> {
        let (key, more) = match *self {
            Record::Put(key, _) | Record::Del(key) => (key, None),
            Record::DelMessage(n) => (Key::Message(n), Some(Key::State(n))),
        };
        std::iter::once(key).chain(more)
    }

    /// Applies the record to `values`.
    pub fn apply(&self, values: &mut BTreeMap<Key, Vec<u8>>) {
        match *self {
            Record::Put(key, value) => {
                values.insert(key, value.to_vec());
            }
            _ => {
                for key in self.keys() {
                    values.remove(&key);
                }
            }
        }
    }
}

/// Appends a put of `value` under `key` to `out`.
pub fn put(out: &mut Vec<u8>, key: Key, value: &[u8]) {
    write(out, OP_PUT, key, value);
}

/// Appends a delete of `key` to `out`.
pub fn del(out: &mut Vec<u8>, key: Key) {
    write(out, OP_DEL, key, &[]);
}

/// Appends a delete of message `n` and its state to `out`.
pub fn del_message(out: &mut Vec<u8>, n: u64) {
    write(out, OP_DEL_MESSAGE, Key::Message(n), &[]);
}

/// The bytes a put of a `value_len`-byte value takes.
pub fn put_len(value_len: usize) -> usize {
    HEADER + 2 + 8 + value_len
}

fn write(out: &mut Vec<u8>, op: u8, key: Key, value: &[u8]) {
    let body_len = 2 + 8 + value.len();
    let len = (body_len as u32).to_le_bytes();
    let (tag, id) = key.parts();
    let mut crc = crc32fast::Hasher::new();
    crc.update(&len);
    crc.update(&[op, tag]);
    crc.update(&id.to_le_bytes());
    crc.update(value);
    out.reserve(HEADER + body_len);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&len);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(&[op, tag]);
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(value);
}

/// What a scan met, in file order.
#[derive(Debug, PartialEq, Eq)]
pub enum Item<'a> {
    /// A record that checks out, at this offset, of this many bytes in all.
    Record(Record<'a>, usize, usize),
    /// Bytes skipped from this offset: a damaged record, or one cut short at the end.
    Skipped { offset: usize, len: usize },
}

/// Reads the records of a segment's bytes, skipping damage (see the module's notes).
pub struct Scan<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Scan<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Scan { data, pos: 0 }
    }

    /// The record at `at`, if one checks out there.
    fn record_at(&self, at: usize) -> Option<(Record<'a>, usize)> {
        let d = self.data.get(at..)?;
        if d.len() < HEADER + KEY_LEN || d[..4] != MAGIC {
            return None;
        }
        let len = u32::from_le_bytes(d[4..8].try_into().ok()?) as usize;
        if !(KEY_LEN..=MAX_BODY).contains(&len) || len > d.len() - HEADER {
            return None;
        }
        let crc = u32::from_le_bytes(d[8..12].try_into().ok()?);
        let body = &d[HEADER..HEADER + len];
        let mut h = crc32fast::Hasher::new();
        h.update(&d[4..8]);
        h.update(body);
        if h.finalize() != crc {
            return None;
        }
        let key = Key::from_parts(body[1], u64::from_le_bytes(body[2..10].try_into().ok()?))?;
        let record = match body[0] {
            OP_PUT => Record::Put(key, &body[KEY_LEN..]),
            OP_DEL if len == KEY_LEN => Record::Del(key),
            OP_DEL_MESSAGE if len == KEY_LEN => match key {
                Key::Message(n) => Record::DelMessage(n),
                _ => return None,
            },
            _ => return None,
        };
        Some((record, HEADER + len))
    }
}

impl<'a> Iterator for Scan<'a> {
    type Item = Item<'a>;

    fn next(&mut self) -> Option<Item<'a>> {
        let start = self.pos;
        if start >= self.data.len() {
            return None;
        }
        if let Some((record, len)) = self.record_at(start) {
            self.pos += len;
            return Some(Item::Record(record, start, len));
        }
        // Damage: on to the next magic that begins a good record, or the end.
        let mut at = start + 1;
        while at < self.data.len() {
            match self.data[at..].windows(4).position(|w| w == MAGIC) {
                Some(p) if self.record_at(at + p).is_some() => {
                    at += p;
                    break;
                }
                Some(p) => at += p + 1,
                None => at = self.data.len(),
            }
        }
        self.pos = at;
        Some(Item::Skipped {
            offset: start,
            len: at - start,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(data: &[u8]) -> Vec<Item<'_>> {
        Scan::new(data).collect()
    }

    fn log() -> Vec<u8> {
        let mut out = Vec::new();
        put(&mut out, Key::Message(1), b"first");
        del(&mut out, Key::State(1));
        del_message(&mut out, 9);
        put(&mut out, Key::Inbound(7), b"");
        put(&mut out, Key::Message(2), b"second, with mqS1 inside");
        out
    }

    #[test]
    fn records_read_back_as_written() {
        let data = log();
        let got: Vec<_> = records(&data)
            .into_iter()
            .map(|i| match i {
                Item::Record(r, ..) => r,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            got,
            [
                Record::Put(Key::Message(1), b"first"),
                Record::Del(Key::State(1)),
                Record::DelMessage(9),
                Record::Put(Key::Inbound(7), b""),
                Record::Put(Key::Message(2), b"second, with mqS1 inside"),
            ]
        );
        assert_eq!(put_len(5) + 3 * put_len(0) + put_len(24), data.len());
    }

    #[test]
    fn a_torn_tail_is_skipped_and_what_precedes_it_kept() {
        let data = log();
        let last = put_len(24);
        for cut in 1..last {
            let torn = &data[..data.len() - cut];
            let items = records(torn);
            assert_eq!(items.len(), 5, "cut {cut}");
            assert!(matches!(items[3], Item::Record(Record::Put(Key::Inbound(7), b""), ..)));
            assert_eq!(
                items[4],
                Item::Skipped {
                    offset: data.len() - last,
                    len: last - cut
                }
            );
        }
    }

    #[test]
    fn any_flipped_byte_costs_at_most_its_own_record() {
        let data = log();
        let good: Vec<usize> = records(&data)
            .iter()
            .map(|i| match i {
                Item::Record(_, at, _) => *at,
                _ => unreachable!(),
            })
            .collect();
        for at in 0..data.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = data.clone();
                bad[at] ^= flip;
                let items = records(&bad);
                let kept: Vec<usize> = items
                    .iter()
                    .filter_map(|i| match i {
                        Item::Record(_, at, _) => Some(*at),
                        Item::Skipped { .. } => None,
                    })
                    .collect();
                let hit = good.iter().rposition(|&g| g <= at).unwrap();
                let expected: Vec<usize> = good.iter().copied().filter(|&g| g != good[hit]).collect();
                assert_eq!(kept, expected, "byte {at} ^ {flip:#x}");
                assert_eq!(items.len(), 5, "one skip in place of the damaged record");
            }
        }
    }

    #[test]
    fn garbage_and_zeros_yield_no_record() {
        let zeros = vec![0u8; 4096];
        assert_eq!(records(&zeros), [Item::Skipped { offset: 0, len: 4096 }]);
        let mut fake = MAGIC.to_vec();
        fake.extend_from_slice(&u32::MAX.to_le_bytes());
        fake.extend_from_slice(&[0; 20]);
        assert_eq!(records(&fake).len(), 1);
        assert!(matches!(records(&fake)[0], Item::Skipped { .. }));
    }
}
