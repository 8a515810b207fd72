//! Property tests of the codec, in MQTT 3.1.1 and 5: for every packet type, decode(encode(p)) == p,
//! and however the wire bytes of a stream of packets are split into reads, the incremental decoder
//! yields the same packets, consuming nothing until a packet is whole.
#[path = "support/packets.rs"]
mod packets;

use bytes::BytesMut;
use mqttclient::codec::{Packet, Version, decode};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};

use packets::{any_packet, by_type, encode};

const NO_LIMIT: usize = usize::MAX;

/// Default case count; failures are saved beside this file (proptest's default looks for a lib.rs).
fn config() -> Config {
    Config {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..Config::default()
    }
}

const VERSIONS: [Version; 2] = [Version::V311, Version::V5];

#[test]
fn every_type_decodes_to_what_was_encoded() {
    for version in VERSIONS {
        for (name, strategy) in by_type(version) {
            let mut runner = TestRunner::new(config());
            let result = runner.run(&strategy, |packet| {
                let wire = encode(&packet, version);
                // Exactly its own size is within the limit.
                let mut buf = BytesMut::from(&wire[..]);
                prop_assert_eq!(decode(&mut buf, wire.len(), version), Ok(Some(packet.clone())));
                prop_assert!(buf.is_empty());
                // Every strict prefix is an incomplete packet: nothing decoded, nothing consumed.
                for end in 0..wire.len() {
                    let mut prefix = BytesMut::from(&wire[..end]);
                    prop_assert_eq!(
                        decode(&mut prefix, NO_LIMIT, version),
                        Ok(None),
                        "prefix of {} bytes",
                        end
                    );
                    prop_assert_eq!(prefix.len(), end);
                }
                Ok(())
            });
            if let Err(e) = result {
                panic!("{version:?} {name}: {e}");
            }
        }
    }
}

/// Feeds `wire` in the pieces that `cuts` (offsets, any order) make, decoding after each piece.
fn decode_in_pieces(wire: &[u8], version: Version, mut cuts: Vec<usize>) -> Result<Vec<Packet>, TestCaseError> {
    cuts.push(wire.len());
    cuts.sort_unstable();
    let mut buf = BytesMut::new();
    let mut packets = Vec::new();
    let mut fed = 0;
    for cut in cuts {
        buf.extend_from_slice(&wire[fed..cut]);
        fed = cut;
        loop {
            let before = buf.len();
            match decode(&mut buf, NO_LIMIT, version) {
                Ok(Some(packet)) => packets.push(packet),
                Ok(None) => {
                    prop_assert_eq!(buf.len(), before, "Ok(None) consumed bytes");
                    break;
                }
                Err(e) => return Err(TestCaseError::fail(format!("{e} after {} bytes", fed))),
            }
        }
    }
    prop_assert!(buf.is_empty(), "{} bytes left over", buf.len());
    Ok(packets)
}

/// A version, and packets of it.
fn stream(len: std::ops::Range<usize>) -> impl Strategy<Value = (Version, Vec<Packet>)> {
    proptest::sample::select(&VERSIONS[..])
        .prop_flat_map(move |v| (Just(v), proptest::collection::vec(any_packet(v), len.clone())))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_split_of_a_stream_decodes_to_the_same_packets(
        (version, stream) in stream(1..6),
        cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..10),
    ) {
        let wire: Vec<u8> = stream.iter().flat_map(|p| encode(p, version)).collect();
        let cuts = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        prop_assert_eq!(decode_in_pieces(&wire, version, cuts)?, stream);
    }

    #[test]
    fn one_byte_at_a_time_decodes_to_the_same_packets((version, stream) in stream(1..4)) {
        let wire: Vec<u8> = stream.iter().flat_map(|p| encode(p, version)).collect();
        prop_assert_eq!(decode_in_pieces(&wire, version, (0..wire.len()).collect())?, stream);
    }
}
