//! The trie target: a program of inserts, removals, lookups and matches, read from the fuzz input,
//! run on `mqttclient::trie::Trie` and on a plain map, with every match compared against a
//! brute-force matcher written from the rule (the crate has no public one-filter matcher).
//!
//! Input format: an op byte, a byte for the number of levels (1 to 8), then a byte per level
//! choosing from `LEVELS`; levels are joined with `/`. A truncated op, or `MAX_OPS`, ends the
//! program. Ops on a filter skip paths that are not valid filters (the trie expects valid ones);
//! topics to match are drawn from the levels without wildcards. Op byte % 8: 0-2 insert, 3 remove,
//! 4 remove_if (even values only), 5 get (exactly 5: drain), 6-7 match.

use std::cell::Cell;
use std::collections::BTreeMap;

use mqttclient::topic::validate_topic_filter;
use mqttclient::trie::Trie;

/// Few distinct levels, so filters and topics collide often: the empty level, `$` levels,
/// non-ASCII, and lengths on both sides of the trie's 22-byte inline key. Wildcards last.
const LEVELS: [&str; 14] = [
    "a",
    "b",
    "c",
    "",
    "$SYS",
    "$",
    "ab",
    "ü",
    "a$",
    "twenty-two-bytes-exact",
    "twenty-three-bytes-long",
    "a level well past the inline key length",
    "+",
    "#",
];
const WILDCARDS: usize = 2;

/// Programs stop after this many ops: enough for tries of dozens of filters, and short enough to
/// keep the brute-force comparison (every stored filter for every match) fast.
const MAX_OPS: usize = 200;

/// Reads a path of 1 to 8 levels; `wildcards` says whether `+` and `#` may be drawn.
fn read_path(bytes: &mut impl Iterator<Item = u8>, wildcards: bool) -> Option<String> {
    let choices = if wildcards {
        LEVELS.len()
    } else {
        LEVELS.len() - WILDCARDS
    };
    let depth = usize::from(bytes.next()? % 8) + 1;
    let mut levels = Vec::with_capacity(depth);
    for _ in 0..depth {
        levels.push(LEVELS[usize::from(bytes.next()?) % choices]);
    }
    Some(levels.join("/"))
}

/// The matching rule of MQTT 3.1.1 section 4.7, one filter at a time.
pub fn brute_force_match(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let (mut filter, mut topic) = (filter.split('/'), topic.split('/'));
    loop {
        match (filter.next(), topic.next()) {
            // `#` matches the parent level too: "a/#" matches "a".
            (Some("#"), _) => return true,
            (None, None) => return true,
            (Some(f), Some(t)) if f == "+" || f == t => {}
            _ => return false,
        }
    }
}

pub fn check(data: &[u8]) {
    let mut trie: Trie<u32> = Trie::new();
    let mut model: BTreeMap<String, u32> = BTreeMap::new();
    let mut next_value = 0u32;
    let mut bytes = data.iter().copied();
    for _ in 0..MAX_OPS {
        let Some(op) = bytes.next() else {
            break;
        };
        let is_match = op % 8 >= 6;
        let Some(path) = read_path(&mut bytes, !is_match) else {
            break;
        };
        if is_match {
            check_match(&trie, &model, &path);
            continue;
        }
        if validate_topic_filter(&path).is_err() {
            continue;
        }
        match op % 8 {
            0..=2 => {
                next_value += 1;
                assert_eq!(
                    trie.insert(&path, next_value),
                    model.insert(path.clone(), next_value),
                    "insert {path:?}"
                );
            }
            3 => assert_eq!(trie.remove(&path), model.remove(&path), "remove {path:?}"),
            4 => {
                let called = Cell::new(false);
                let removed = trie.remove_if(&path, |value| {
                    called.set(true);
                    value % 2 == 0
                });
                assert_eq!(
                    called.get(),
                    model.contains_key(&path),
                    "remove_if {path:?} called its predicate"
                );
                let expected = match model.get(&path) {
                    Some(value) if value % 2 == 0 => model.remove(&path),
                    _ => None,
                };
                assert_eq!(removed, expected, "remove_if {path:?}");
            }
            // Rare on purpose (one op byte in 256), or the trie would rarely grow.
            _ if op == 5 => {
                let mut drained = trie.drain();
                let mut expected: Vec<u32> = model.values().copied().collect();
                drained.sort_unstable();
                expected.sort_unstable();
                assert_eq!(drained, expected, "drain");
                model.clear();
            }
            _ => assert_eq!(trie.get(&path), model.get(&path), "get {path:?}"),
        }
        assert_eq!(trie.len(), model.len());
        assert_eq!(trie.is_empty(), model.is_empty());
    }

    let mut listed: Vec<(String, u32)> = trie.filters().into_iter().map(|(f, &v)| (f, v)).collect();
    listed.sort_unstable();
    assert_eq!(listed, model.clone().into_iter().collect::<Vec<_>>(), "filters()");
    for (filter, value) in &model {
        assert_eq!(trie.remove(filter), Some(*value), "final remove {filter:?}");
    }
    assert!(trie.is_empty());
    assert!(!trie.matches("a"));
}

fn check_match(trie: &Trie<u32>, model: &BTreeMap<String, u32>, topic: &str) {
    let mut expected: Vec<u32> = model
        .iter()
        .filter(|(filter, _)| brute_force_match(filter, topic))
        .map(|(_, &value)| value)
        .collect();
    let mut got = Vec::new();
    trie.for_each_match(topic, |&value| got.push(value));
    got.sort_unstable();
    expected.sort_unstable();
    assert_eq!(
        got, expected,
        "matches of {topic:?} (values are unique, so a repeat is a double visit)"
    );
    assert_eq!(trie.matches(topic), !expected.is_empty(), "matches({topic:?})");
}
