#![no_main]
//! See checks/trie.rs.

mqttclient_fuzz::fuzz_check!(mqttclient_fuzz::trie::check);
