//! The fuzz corpus as a regression suite: every file committed under `fuzz/corpus/<target>/` goes
//! through the same check its fuzz target runs (`fuzz/checks/`, included here), so CI needs no
//! cargo-fuzz. Also writes the seed files: `cargo test --test fuzz_corpus -- --ignored`.
#[path = "../fuzz/checks/mod.rs"]
mod checks;
#[path = "support/packets.rs"]
mod packets;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::BytesMut;
use mqttclient::codec::{Packet, Properties, Unsubscribe, Version, decode};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;

const VERSIONS: [Version; 2] = [Version::V311, Version::V5];

#[global_allocator]
static ALLOC: checks::alloc_meter::Meter = checks::alloc_meter::Meter;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target)
}

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir(target))
        .unwrap_or_else(|e| panic!("fuzz/corpus/{target}: {e}"))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let data = std::fs::read(&path).unwrap();
            (path, data)
        })
        .collect()
}

#[test]
fn every_corpus_file_passes_its_fuzz_check() {
    for (target, check) in checks::TARGETS {
        let files = corpus(target);
        assert!(files.len() >= 20, "fuzz/corpus/{target} has only {} files", files.len());
        for (path, data) in files {
            if std::panic::catch_unwind(|| check(&data)).is_err() {
                panic!("{} fails the {target} check (panic above)", path.display());
            }
        }
    }
}

#[test]
fn decode_corpus_has_dozens_of_every_packet_type() {
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for (_, data) in corpus("decode") {
        for version in VERSIONS {
            let mut buf = BytesMut::from(&data[..]);
            while let Ok(Some(packet)) = decode(&mut buf, usize::MAX, version) {
                *count.entry(format!("{version:?} {}", type_name(&packet))).or_default() += 1;
            }
        }
    }
    for version in VERSIONS {
        for (name, _) in packets::by_type(version) {
            // Types with few wire forms: one each for the pings and the 3.1.1 DISCONNECT, seven
            // for the 3.1.1 CONNACK.
            let want = match (version, name) {
                (_, "PingReq" | "PingResp") | (Version::V311, "Disconnect") => 1,
                (Version::V311, "ConnAck") => 7,
                _ => 24,
            };
            let key = format!("{version:?} {name}");
            let got = count.get(&key).copied().unwrap_or(0);
            assert!(
                got >= want,
                "{got} {key} packets in fuzz/corpus/decode, want {want}: {count:?}"
            );
        }
    }
}

/// The name of a packet's variant, as in `packets::by_type`.
fn type_name(packet: &Packet) -> String {
    let debug = format!("{packet:?}");
    debug.split(['(', ' ']).next().unwrap_or_default().to_owned()
}

/// Regenerates the `seed-*` files of every target (other files, e.g. crash regressions, stay).
/// Deterministic: proptest's deterministic runner, and a fixed xorshift.
#[test]
#[ignore = "writes fuzz/corpus; run by hand after changing the generators"]
fn write_seed_corpus() {
    for (target, _) in checks::TARGETS {
        let dir = corpus_dir(target);
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name().unwrap().to_string_lossy().starts_with("seed-") {
                std::fs::remove_file(path).unwrap();
            }
        }
        let write = |name: &str, data: &[u8]| std::fs::write(dir.join(format!("seed-{name}")), data).unwrap();
        match target {
            "decode" => decode_seeds(write),
            "topic" => topic_seeds(write),
            "trie" => trie_seeds(write),
            _ => panic!("no seeds for {target}"),
        }
    }
}

fn draw<T: std::fmt::Debug>(runner: &mut TestRunner, strategy: &impl Strategy<Value = T>) -> T {
    strategy.new_tree(runner).unwrap().current()
}

fn decode_seeds(write: impl Fn(&str, &[u8])) {
    let mut runner = TestRunner::deterministic();
    for version in VERSIONS {
        // 3.1.1 seeds keep the names they had before MQTT 5 existed.
        let prefix = if version == Version::V5 { "v5-" } else { "" };
        for (name, strategy) in packets::by_type(version) {
            let mut written = std::collections::HashSet::new();
            for i in 0..30 {
                let wire = packets::encode(&draw(&mut runner, &strategy), version);
                if written.insert(wire.clone()) {
                    write(&format!("{prefix}{}-{i:02}", name.to_lowercase()), &wire);
                }
            }
        }
        // Several packets in one read.
        let stream = proptest::collection::vec(packets::any_packet(version), 2..6);
        for i in 0..12 {
            let wire: Vec<u8> = draw(&mut runner, &stream)
                .iter()
                .flat_map(|p| packets::encode(p, version))
                .collect();
            write(&format!("{prefix}stream-{i:02}"), &wire);
        }
    }
    // The most heap per wire byte: as many one-character filters as fit the target's limit.
    let filters = (checks::decode::MAX_PACKET_SIZE - 5 - 2) / 3;
    let unsubscribe = Packet::Unsubscribe(Unsubscribe {
        pkid: 1,
        filters: vec![mqttclient::codec::MqttStr::new("a").unwrap(); filters],
        properties: Properties::new(),
    });
    write(
        "unsubscribe-most-filters",
        &packets::encode(&unsubscribe, Version::V311),
    );
}

fn topic_seeds(write: impl Fn(&str, &[u8])) {
    let mut runner = TestRunner::deterministic();
    for i in 0..30 {
        write(
            &format!("name-{i:02}"),
            draw(&mut runner, &packets::topic_name()).as_str().as_bytes(),
        );
        write(
            &format!("filter-{i:02}"),
            draw(&mut runner, &packets::topic_filter()).as_str().as_bytes(),
        );
    }
    // Each rule broken, and the edges of each (section 4.7).
    let edges = [
        "",
        "/",
        "//",
        "#",
        "+",
        "+/+",
        "/#",
        "$SYS/#",
        "a#",
        "#a",
        "##",
        "a/#/b",
        "#/",
        "a+",
        "+a/b",
        "a/+b/c",
        "+#",
        "a\0b",
        "$",
        "$SYS",
        "ü/€/😀",
    ];
    for (i, edge) in edges.iter().enumerate() {
        write(&format!("edge-{i:02}"), edge.as_bytes());
    }
}

fn trie_seeds(write: impl Fn(&str, &[u8])) {
    // Programs are any bytes; lengths from a few ops to a few hundred.
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    for i in 0..40 {
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let len = 8 + (next() % 600) as usize;
        let program: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        write(&format!("program-{i:02}"), &program);
    }
}
