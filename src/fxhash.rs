//! FxHash (as used inside rustc): one multiply per 8 bytes, for the crate's internal tables.
//!
//! Every key hashed with it is chosen by the application or by ourselves, never by the network
//! peer: topic-filter levels (the application's own filters), tokens (sequential), our packet
//! ids (at most the in-flight window of them). For those SipHash's defence against chosen-key
//! flooding buys nothing, while its cost shows up in every message. A table keyed by what the broker chooses (inbound
//! QoS 2 ids) keeps the standard hasher.
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

#[derive(Default)]
pub(crate) struct FxHasher {
    hash: u64,
}

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(FX_SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().unwrap()));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // The multiply mixes upwards only, but the table picks buckets from the low bits: rotate
        // the well-mixed high bits down.
        self.hash.rotate_left(26)
    }
}

pub(crate) type FxBuildHasher = BuildHasherDefault<FxHasher>;

pub(crate) type FxHashMap<K, V> = HashMap<K, V, FxBuildHasher>;
