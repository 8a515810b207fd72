//! c_examples/mqttc_bench.c, our program for shared/bench/compare.py, against a real mosquitto: every
//! mode at every QoS with small counts. Checks what compare.py relies on (exit status 0, one JSON
//! line with the documented fields, the count asked for) and that the numbers are consistent with
//! each other; never how fast anything is.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use common::{Broker, compile_c, compile_c_with, free_port, project_dir, run_program, temp_dir};

const TIMEOUT: Duration = Duration::from_secs(60);

/// Fields of the JSON line, in the order the peer programs print them.
const THROUGHPUT_FIELDS: [&str; 7] = ["lib", "mode", "qos", "size", "count", "secs", "msgs_per_s"];
const LATENCY_FIELDS: [&str; 9] = [
    "lib", "mode", "qos", "size", "count", "secs", "p50_us", "p99_us", "max_us",
];

/// The bench, compiled once per test binary.
fn bench() -> &'static PathBuf {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| compile_c("mqttc_bench", &[project_dir().join("c_examples/mqttc_bench.c")]))
}

/// A broker configured as compare.py configures its own: no limit on in-flight or queued messages,
/// so QoS 1/2 messages beyond mosquitto's defaults (20 in flight, 1000 queued) are not dropped.
fn bench_broker() -> Broker {
    Broker::start_with("max_inflight_messages 0\nmax_queued_messages 0\n")
}

/// A value of the flat JSON object the bench prints.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Str(String),
    Num(f64),
}

/// Parses `{"key":value,...}` where each value is a string without quotes or commas, or a number:
/// all the bench prints. Panics on anything else. Returns the pairs in order.
fn parse_flat_json(line: &str) -> Vec<(String, Value)> {
    let inner = line
        .strip_prefix('{')
        .and_then(|l| l.strip_suffix('}'))
        .unwrap_or_else(|| panic!("not a JSON object: {line}"));
    inner
        .split(',')
        .map(|pair| {
            let (key, value) = pair
                .split_once(':')
                .unwrap_or_else(|| panic!("no ':' in {pair:?} of {line}"));
            let key = key
                .strip_prefix('"')
                .and_then(|k| k.strip_suffix('"'))
                .unwrap_or_else(|| panic!("key {key:?} is not a string in {line}"));
            let value = match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
                Some(s) => Value::Str(s.to_string()),
                None => Value::Num(
                    value
                        .parse::<f64>()
                        .unwrap_or_else(|e| panic!("value {value:?} of {key} in {line}: {e}")),
                ),
            };
            (key.to_string(), value)
        })
        .collect()
}

/// One result line, checked for the documented fields.
struct Report {
    fields: Vec<(String, Value)>,
    line: String,
}

impl Report {
    fn num(&self, key: &str) -> f64 {
        match self.fields.iter().find(|(k, _)| k == key) {
            Some((_, Value::Num(n))) => *n,
            other => panic!("{key} is not a number ({other:?}) in {}", self.line),
        }
    }

    fn str(&self, key: &str) -> &str {
        match self.fields.iter().find(|(k, _)| k == key) {
            Some((_, Value::Str(s))) => s,
            other => panic!("{key} is not a string ({other:?}) in {}", self.line),
        }
    }
}

/// Runs the bench and checks everything compare.py relies on, plus that the numbers hang together.
fn run_bench(port: u16, mode: &str, qos: u8, count: u64, inflight: u32) -> Report {
    run_bench_with(port, mode, qos, count, inflight, 64, &[])
}

/// `run_bench` with payloads of `size` bytes and `extra` arguments.
fn run_bench_with(port: u16, mode: &str, qos: u8, count: u64, inflight: u32, size: u32, extra: &[&str]) -> Report {
    let run = Run {
        port,
        mode,
        qos,
        count,
        inflight,
        size,
    };
    run_checked(bench(), "mqttclient", &run, extra)
}

/// What one run of a compare.py-style program is asked for.
struct Run<'a> {
    port: u16,
    mode: &'a str,
    qos: u8,
    count: u64,
    inflight: u32,
    size: u32,
}

/// Runs `exe` with compare.py's arguments for `run` plus `extra`, and checks everything compare.py
/// relies on, with `lib` as the name it reports, plus that the numbers hang together.
fn run_checked(exe: &Path, lib: &str, run: &Run, extra: &[&str]) -> Report {
    let (port, mode, qos, count, inflight, size) = (run.port, run.mode, run.qos, run.count, run.inflight, run.size);
    let mut args = vec![
        "--port".to_string(),
        port.to_string(),
        "--mode".into(),
        mode.into(),
        "--qos".into(),
        qos.to_string(),
        "--count".into(),
        count.to_string(),
        "--size".into(),
        size.to_string(),
        "--inflight".into(),
        inflight.to_string(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    let (code, out, err) = run_program(Command::new(exe).args(&args), TIMEOUT);
    let what = format!("{} {}", exe.display(), args.join(" "));
    assert_eq!(code, 0, "{what} failed\nstdout:\n{out}\nstderr:\n{err}");
    assert!(err.is_empty(), "{what} wrote to stderr:\n{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: expected one line of output, got:\n{out}");
    let line = lines[0].to_string();
    let fields = parse_flat_json(&line);
    let keys: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    let expected: &[&str] = if mode == "latency" {
        &LATENCY_FIELDS
    } else {
        &THROUGHPUT_FIELDS
    };
    assert_eq!(keys, expected, "{what}: fields of {line}");
    let r = Report { fields, line };
    assert_eq!(r.str("lib"), lib, "{}", r.line);
    assert_eq!(r.str("mode"), mode, "{}", r.line);
    assert_eq!(r.num("qos"), f64::from(qos), "{}", r.line);
    assert_eq!(r.num("size"), f64::from(size), "{}", r.line);
    assert_eq!(r.num("count"), count as f64, "{}", r.line);
    let secs = r.num("secs");
    assert!(secs.is_finite() && secs > 0.0, "{}", r.line);
    if mode == "latency" {
        let (p50, p99, max) = (r.num("p50_us"), r.num("p99_us"), r.num("max_us"));
        assert!(
            p50 > 0.0 && p50 <= p99 && p99 <= max,
            "percentiles out of order: {}",
            r.line
        );
        // No round trip outlasts the whole run (the values are printed to 0.1 us, "secs" to 1 us).
        assert!(max <= secs * 1e6 + 1.0, "a sample longer than the run: {}", r.line);
        // The samples are disjoint parts of the run, and half of them are at least the median.
        assert!(
            p50 * (count as f64 / 2.0) <= secs * 1e6 + count as f64,
            "the median times half the count exceeds the run: {}",
            r.line
        );
    } else {
        let rate = r.num("msgs_per_s");
        assert!(rate.is_finite() && rate > 0.0, "{}", r.line);
        // msgs_per_s is count / secs, up to the rounding of both as printed.
        let tolerance = rate * 0.000_000_5 / secs + 1.0;
        assert!(
            (rate - count as f64 / secs).abs() <= tolerance,
            "msgs_per_s is not count / secs: {}",
            r.line
        );
    }
    r
}

#[test]
fn pub_mode_at_every_qos() {
    let broker = bench_broker();
    for qos in 0..=2 {
        run_bench(broker.port, "pub", qos, 500, 100);
    }
}

#[test]
fn e2e_mode_at_every_qos() {
    let broker = bench_broker();
    for qos in 0..=2 {
        run_bench(broker.port, "e2e", qos, 500, 100);
    }
}

#[test]
fn latency_mode_at_every_qos() {
    let broker = bench_broker();
    for qos in 0..=2 {
        run_bench(broker.port, "latency", qos, 50, 100);
    }
}

/// Every mode defaults to running its clients on one loop (the tests above); the other two
/// places the callbacks can run (each client's network thread, the library's callback thread)
/// still count every message in every mode.
#[test]
fn every_other_callbacks_choice_in_every_mode() {
    let broker = bench_broker();
    for callbacks in ["network", "thread"] {
        for (mode, count) in [("pub", 500), ("e2e", 500), ("latency", 50)] {
            for qos in 0..=1 {
                run_bench_with(broker.port, mode, qos, count, 100, 64, &["--callbacks", callbacks]);
            }
        }
    }
}

/// With a window much smaller than the count the bench stops handing publishes to the library
/// (it keeps about 1024 beyond the window) and waits for acknowledgements to make room: every
/// message still arrives and is acknowledged.
#[test]
fn a_small_window_and_more_messages_than_the_bench_queues_ahead() {
    let broker = bench_broker();
    for qos in 1..=2 {
        run_bench(broker.port, "pub", qos, 2500, 4);
        run_bench(broker.port, "e2e", qos, 2500, 4);
    }
}

/// Payloads from 16 KiB up are lent to the library (mqttc_publish_nocopy) unless `--nocopy off`:
/// both ways every message is acknowledged and received.
#[test]
fn large_payloads_lent_and_copied() {
    let broker = bench_broker();
    for nocopy in ["on", "off"] {
        for qos in 0..=1 {
            run_bench_with(broker.port, "e2e", qos, 200, 100, 64 * 1024, &["--nocopy", nocopy]);
        }
    }
}

/// benches/latency_floor.c, the raw-socket client whose CPU per round trip scripts/bench.py reports
/// as the least any client can spend in latency mode: both ways of waiting, at QoS 0 and 1, give
/// what compare.py reads; QoS 2, where no fixed order of packets is a floor, is refused.
#[test]
fn the_latency_floor_client_runs_both_ways_and_refuses_qos_2() {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    let floor = EXE.get_or_init(|| compile_c("latency_floor", &[project_dir().join("benches/latency_floor.c")]));
    let broker = bench_broker();
    for wait in ["block", "epoll"] {
        for qos in 0..=1 {
            let run = Run {
                port: broker.port,
                mode: "latency",
                qos,
                count: 50,
                inflight: 100,
                size: 64,
            };
            run_checked(floor, &format!("floor-{wait}"), &run, &["--wait", wait]);
        }
    }
    let (code, out, err) = run_program(
        Command::new(floor).args(["--port", &broker.port.to_string(), "--qos", "2", "--wait", "block"]),
        TIMEOUT,
    );
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.is_empty() && err.contains("--qos 2: 0 or 1"),
        "stdout:\n{out}\nstderr:\n{err}"
    );
}

/// benches/paho_store.c, Paho C's publisher beside ours in scripts/bench.py's store section: in
/// memory and with its file persistence, at QoS 1 and 2, with a window wide and narrow, it prints
/// what mqttc_bench prints in pub mode and leaves the persistence directory empty; a directory
/// Paho cannot create fails the run (so `--store` reaches its file persistence); QoS 0 and the
/// other modes are refused.
#[test]
fn the_paho_store_peer_publishes_with_and_without_file_persistence() {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    let paho = EXE.get_or_init(|| {
        compile_c_with(
            "paho_store",
            &[project_dir().join("benches/paho_store.c")],
            &["-lpaho-mqtt3a"],
        )
    });
    let broker = bench_broker();
    let dir = temp_dir("paho-store");
    let store = ["--store", dir.to_str().unwrap()];
    for qos in 1..=2 {
        for (inflight, extra) in [(100, &[][..]), (100, &store[..]), (4, &store[..])] {
            let run = Run {
                port: broker.port,
                mode: "pub",
                qos,
                count: 300,
                inflight,
                size: 64,
            };
            run_checked(paho, "paho-c", &run, extra);
            let left: Vec<_> = std::fs::read_dir(&*dir).unwrap().collect();
            assert!(left.is_empty(), "QoS {qos} {extra:?}: left in the directory: {left:?}");
        }
    }

    let file = dir.join("a-file");
    std::fs::write(&file, b"").unwrap();
    let under_a_file = file.join("store");
    let (code, out, err) = run_program(
        Command::new(paho)
            .args(["--port", &broker.port.to_string(), "--count", "5", "--store"])
            .arg(&under_a_file),
        TIMEOUT,
    );
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.is_empty() && err.contains("MQTTAsync_create: Persistence error"),
        "stdout:\n{out}\nstderr:\n{err}"
    );

    for args in [["--qos", "0"], ["--mode", "e2e"]] {
        let (code, out, err) = run_program(Command::new(paho).args(args), TIMEOUT);
        assert_eq!(code, 2, "{args:?}: stdout:\n{out}\nstderr:\n{err}");
        assert!(out.is_empty() && err.contains("usage: paho_store"), "{args:?}: {err}");
    }
}

/// Fields of the clients mode's JSON line (c_examples/fleet.h), after "lib", "mode" and "qos".
const FLEET_FIELDS: [&str; 9] = [
    "clients",
    "connected",
    "connect_s",
    "threads_peak",
    "rss_kb",
    "rss_kb_per_client",
    "expected",
    "delivered",
    "p99_ms",
];

/// A broker for fleets: no connection limit, nothing in flight or queued dropped.
fn fleet_broker() -> Broker {
    Broker::start_with("max_connections -1\nmax_inflight_messages 0\nmax_queued_messages 0\n")
}

/// Runs `exe` in clients mode at QoS 1 with `clients` clients publishing every 250 ms for 1 s, plus
/// `extra`, and checks its JSON line: every field, reported as `lib`, every client connected and
/// every message delivered. Returns the line.
fn run_fleet(exe: &Path, lib: &str, port: u16, clients: u32, extra: &[&str]) -> Report {
    let (interval_ms, hold_s) = (250, 1);
    let mut args: Vec<String> = [
        "--port",
        &port.to_string(),
        "--mode",
        "clients",
        "--qos",
        "1",
        "--clients",
        &clients.to_string(),
        "--interval-ms",
        &interval_ms.to_string(),
        "--hold-s",
        &hold_s.to_string(),
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    args.extend(extra.iter().map(|a| a.to_string()));
    let (code, out, err) = run_program(Command::new(exe).args(&args), TIMEOUT);
    assert_eq!(code, 0, "{lib}: stdout:\n{out}\nstderr:\n{err}");
    let line = out.lines().last().expect("a JSON line");
    let r = Report {
        fields: parse_flat_json(line),
        line: line.to_string(),
    };
    let keys: Vec<&str> = r.fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys[..3], ["lib", "mode", "qos"], "{line}");
    assert_eq!(keys[3..], FLEET_FIELDS, "{line}");
    assert_eq!(r.str("lib"), lib, "{line}");
    assert_eq!(r.str("mode"), "clients", "{line}");
    assert_eq!(r.num("clients"), f64::from(clients), "{line}");
    assert_eq!(r.num("connected"), f64::from(clients), "{line}");
    let rounds = hold_s * 1000 / interval_ms;
    assert_eq!(r.num("expected"), f64::from(clients * rounds), "{line}");
    assert_eq!(r.num("delivered"), r.num("expected"), "{line}");
    assert!(r.num("p99_ms") > 0.0 && r.num("connect_s") > 0.0, "{line}");
    assert!(r.num("rss_kb") > 0.0 && r.num("rss_kb_per_client") > 0.0, "{line}");
    r
}

#[test]
fn clients_mode_runs_a_fleet_on_a_pool_and_reports_it() {
    let broker = fleet_broker();
    let r = run_fleet(
        bench(),
        "mqttclient",
        broker.port,
        200,
        &["--threads", "2", "--sources", "3"],
    );
    // The pool's 2 network and 2 callback threads, its watchdog and main: not 2 per client.
    assert!(r.num("threads_peak") <= 6.0, "{}", r.line);
}

/// benches/fleet_mosquitto.c and benches/fleet_paho.c, the peers of the clients mode in
/// scripts/bench.py's fleet section: each runs a small fleet and reports it as ours does, with
/// the threads its library runs them on (libmosquitto: one a client beside main; Paho C: main and
/// its two shared threads). Their command line is ours but --threads; Paho C has no source
/// address to bind.
#[test]
fn the_fleet_peers_run_a_fleet_and_report_it_as_ours_does() {
    let mosquitto = compile_c_with(
        "fleet_mosquitto",
        &[project_dir().join("benches/fleet_mosquitto.c")],
        &["-lmosquitto"],
    );
    let paho = compile_c_with(
        "fleet_paho",
        &[project_dir().join("benches/fleet_paho.c")],
        &["-lpaho-mqtt3a"],
    );
    let broker = fleet_broker();
    let clients = 20;
    let r = run_fleet(&mosquitto, "libmosquitto", broker.port, clients, &["--sources", "2"]);
    assert_eq!(r.num("threads_peak"), f64::from(clients + 1), "{}", r.line);
    let r = run_fleet(&paho, "paho-c", broker.port, clients, &[]);
    assert!(r.num("threads_peak") <= 3.0, "{}", r.line);

    for (exe, name, args) in [
        (&mosquitto, "fleet_mosquitto", &["--threads", "2"][..]),
        (&paho, "fleet_paho", &["--sources", "2"][..]),
        (&paho, "fleet_paho", &["--mode", "pub"][..]),
    ] {
        let (code, out, err) = run_program(Command::new(exe).args(args), TIMEOUT);
        assert_eq!(code, 2, "{name} {args:?}: stdout:\n{out}\nstderr:\n{err}");
        assert!(
            out.is_empty() && err.contains(&format!("usage: {name}")),
            "{name} {args:?}: {err}"
        );
    }
}

/// A run against a port nobody listens on fails with exit status 1 and says why.
#[test]
fn no_broker_is_a_failure_not_a_hang() {
    let port = free_port();
    let (code, out, err) = run_program(
        Command::new(bench()).args(["--port", &port.to_string(), "--mode", "pub", "--count", "10"]),
        TIMEOUT,
    );
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.is_empty(), "{out}");
    assert!(err.contains(&format!("connect to 127.0.0.1 port {port}")), "{err}");
}

/// Bad command lines exit with status 2 and a usage message, before connecting anywhere.
#[test]
fn bad_arguments_are_rejected_with_usage() {
    let cases: &[&[&str]] = &[
        &["--mode", "flood"],
        &["--qos", "3"],
        &["--count", "0"],
        &["--count", "12x"],
        &["--inflight", "0"],
        &["--size", "-1"],
        &["--port", "70000"],
        &["--verbose", "1"],
        &["--nocopy", "yes"],
        &["--count"],
    ];
    for args in cases {
        let (code, out, err) = run_program(Command::new(bench()).args(*args), TIMEOUT);
        assert_eq!(code, 2, "{args:?}: stdout:\n{out}\nstderr:\n{err}");
        assert!(out.is_empty(), "{args:?}: {out}");
        assert!(err.contains("usage: mqttc_bench"), "{args:?}: {err}");
    }
}
