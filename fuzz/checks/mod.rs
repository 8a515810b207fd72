//! The checks behind the fuzz targets, one module per target. Each `check` takes the raw fuzz input
//! and panics when a property fails.
//!
//! Shared without copies: this directory is the library of the `fuzz/` crate, whose targets are
//! one-line wrappers, and `tests/fuzz_corpus.rs` includes it with `#[path]` to run every committed
//! corpus file through the same checks under plain `cargo test`.

pub mod alloc_meter;
pub mod decode;
pub mod topic;
pub mod trie;

/// A target's check: panics when the input breaks a property.
pub type Check = fn(&[u8]);

/// The fuzz targets, by name: the directory under `fuzz/corpus/` and the `fuzz_targets/` file.
pub const TARGETS: [(&str, Check); 3] = [
    ("decode", decode::check),
    ("topic", topic::check),
    ("trie", trie::check),
];

/// The whole of a `fuzz_targets/` file after `#![no_main]`: installs the allocation meter and runs
/// the given check on each input. Only used by the fuzz crate (which depends on libfuzzer-sys).
#[macro_export]
macro_rules! fuzz_check {
    ($check:path) => {
        #[global_allocator]
        static ALLOC: $crate::alloc_meter::Meter = $crate::alloc_meter::Meter;

        libfuzzer_sys::fuzz_target!(|data: &[u8]| $check(data));
    };
}
