#![no_main]
//! See checks/decode.rs.

mqttclient_fuzz::fuzz_check!(mqttclient_fuzz::decode::check);
