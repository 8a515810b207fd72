//! The seed's basic example (c_examples/basic.c) end to end against a real mosquitto.
mod common;

use std::process::Command;
use std::time::Duration;

use common::{Broker, compile_c, project_dir, run_program};

#[test]
fn basic_example_receives_its_retained_message_and_exits_cleanly() {
    let broker = Broker::start();
    let exe = compile_c("basic", &[project_dir().join("c_examples/basic.c")]);
    let (code, out, err) = run_program(
        Command::new(&exe).arg("127.0.0.1").arg(broker.port.to_string()),
        Duration::from_secs(30),
    );
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert_eq!(
        out.trim(),
        "Received message topic: [jlExample] payload: [Hello World!]"
    );
}

#[test]
fn basic_example_reports_a_refused_connection() {
    // Nothing listens on this port: connect must fail with a readable error, not hang or crash.
    let port = common::free_port();
    let exe = compile_c("basic", &[project_dir().join("c_examples/basic.c")]);
    let (code, _out, err) = run_program(
        Command::new(&exe).arg("127.0.0.1").arg(port.to_string()),
        Duration::from_secs(30),
    );
    assert_eq!(code, 1);
    assert!(err.contains("connect failed: network error"), "stderr: {err}");
}
