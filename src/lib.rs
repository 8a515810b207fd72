//! mqttclient: an MQTT client library with a C ABI.
//!
//! Layers, each importing only those above it in this list:
//! - [`topic`] and [`codec`]: pure validation and packet encoding/decoding (bytes in, packets out);
//! - [`trie`]: the pure subscription trie (topic filter -> subscription);
//! - [`engine`]: the tokio network task, session state, tokens, and the per-client callback thread
//!   (`engine::dispatch`; user code never runs on the network thread). Knows nothing of C;
//! - [`ffi`]: the C ABI, the only module with `extern "C"` and raw pointers.
//!
//! Beside them, `sys` holds the system calls the engine makes itself, behind safe functions.
//! `unsafe` is denied everywhere but in `ffi` and `sys`, and forbidden in the pure layers.
#![deny(unsafe_code)]

pub mod codec;
pub mod engine;
#[allow(unsafe_code)]
pub mod ffi;
mod fxhash;
#[allow(unsafe_code)]
mod sys;
pub mod topic;
pub mod trie;
