#![no_main]
//! See checks/topic.rs.

mqttclient_fuzz::fuzz_check!(mqttclient_fuzz::topic::check);
