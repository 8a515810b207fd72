//! Automatic reconnect through the C API: tests/c/resilience.c, compiled against the library, runs
//! a client with two server URIs (the first dead) while this test kills and restarts its broker on
//! cue. Requires `cargo build --lib` first (for libmqttclient.so).
mod common;

use std::process::{Child, Command, Stdio};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use common::{Broker, compile_c, free_port, line_reader, project_dir};

/// Kills the C program if the test fails before it exits.
struct Program(Child);

impl Drop for Program {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn c_client_fails_over_from_a_dead_uri_and_survives_a_broker_kill() {
    let mut broker = Broker::start();
    let live = broker.port;
    let dead = free_port(); // nothing listens there: connecting is refused at once
    let exe = compile_c("resilience", &[project_dir().join("tests/c/resilience.c")]);
    let mut program = Program(
        Command::new(&exe)
            .args([dead.to_string(), live.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the C program"),
    );
    let lines_rx = line_reader(program.0.stdout.take().unwrap());
    let stderr = program.0.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());

    let start = Instant::now();
    let deadline = start + Duration::from_secs(40);
    let mut lines: Vec<String> = Vec::new();
    loop {
        match lines_rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                match line.as_str() {
                    "kill me" | "kill me again" => broker.kill(),
                    "restart me" => {
                        // Leave the client a few failed reconnect attempts first.
                        std::thread::sleep(Duration::from_millis(300));
                        broker.restart();
                    }
                    _ => {}
                }
                lines.push(line);
            }
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => panic!("the C program hung; output so far:\n{}", lines.join("\n")),
        }
    }
    let status = program.0.wait().unwrap();
    let err = stderr.join().unwrap();
    let out = lines.join("\n");
    assert!(status.success(), "exit {status}\nstdout:\n{out}\nstderr:\n{err}");
    eprintln!("{out}\n(took {:?})", start.elapsed());

    let events: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("event "))
        .map(|l| l.as_str())
        .collect();
    let up = |present: u8| format!("event up server=mqtt://127.0.0.1:{live} session_present={present}");
    // SIGKILL closes the broker's sockets: the client sees EOF, or a reset.
    let lost = |e: &str| {
        let prefix = format!("event lost server=mqtt://127.0.0.1:{live} reason=");
        e.starts_with(&format!("{prefix}connection closed by the broker"))
            || e.starts_with(&format!("{prefix}network error"))
    };
    assert_eq!(events.len(), 7, "up, lost, up, lost, up, lost, closed:\n{out}");
    // The dead first URI is skipped.
    assert_eq!(events[0], up(0), "{out}");
    assert!(lost(events[1]), "{out}");
    // The restarted broker (no persistence) lost the session: the library subscribed again (the
    // summary below shows the messages came back).
    assert_eq!(events[2], up(0), "{out}");
    // mqttc_reconnect: the connection it dropped is lost, cancelled; the broker kept the session.
    assert_eq!(
        events[3],
        format!(
            "event lost server=mqtt://127.0.0.1:{live} reason=cancelled \
             detail=the operation was cancelled"
        ),
        "{out}"
    );
    assert_eq!(events[4], up(1), "{out}");
    assert!(lost(events[5]), "{out}");
    assert_eq!(events[6], "event closed server=null", "{out}");
    assert!(!out.contains(&format!(":{dead} ")), "never connected to the dead port");
    assert!(lines.iter().any(|l| l == "online received=10"), "{out}");
    assert!(lines.iter().any(|l| l.starts_with("queued 10 state=")), "{out}");
    let summary = lines
        .iter()
        .find(|l| l.starts_with("received total="))
        .unwrap_or_else(|| panic!("no summary:\n{out}"));
    assert!(
        summary.contains("missing=0") && summary.contains("strays=0"),
        "{summary}"
    );
    assert!(lines.iter().any(|l| l == "reconnected"), "{out}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("disconnected in ") && l.ends_with("stranded publishes cancelled")),
        "{out}"
    );
    assert_eq!(lines.last().map(String::as_str), Some("done"));
}
