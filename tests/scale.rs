//! Scale and churn through the C API (tests/c/scale.c): 1,000 clients in one process, 10,000
//! create/connect/free cycles, 8 threads publishing on one client. Each scenario runs the program
//! against its own mosquitto and prints what it measured (run with `--nocapture` to see it).
//!
//! The sizes are the same everywhere, also under `MQTTC_SANITIZE=address` (scripts/test.sh's
//! second run), where the three take about 20 s together on a 2-core machine.
mod common;

use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use common::{Broker, compile_c, figure, project_dir, run_program};

/// Each scenario is sized to keep the machine busy on its own; run side by side (cargo runs a
/// binary's tests in parallel) they would measure each other instead.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Churn: the most resident memory may grow from the first checkpoint (a tenth of the cycles in)
/// to the end. A leak of 500 bytes a cycle over 9,000 cycles exceeds it; the allocator's noise
/// (about 100 KiB measured) does not. Not checked under AddressSanitizer, whose quarantine of freed
/// memory grows it by design (about 100 MiB over 10,000 cycles); LeakSanitizer checks there.
fn churn_rss_limit_kib() -> i64 {
    if common::sanitizer().is_some() { 0 } else { 4096 }
}

/// Pool: the most resident memory a client on the pool may add, connected, subscribed and after
/// its traffic. About 12.5 KiB in a debug build and 9.5 KiB in a release one (BENCHMARKS.md's
/// fleet table); the limit catches a return of per-client room held while idle, such as the
/// queues' first blocks (about 8 KiB a client: with them, a debug build measured 25 KiB) or a
/// kept read buffer. Not checked under AddressSanitizer, whose redzones and quarantine multiply
/// every allocation.
fn pool_rss_limit_kib() -> Option<i64> {
    if common::sanitizer().is_some() { None } else { Some(20) }
}

/// Many clients need many descriptors, here and in mosquitto (which inherits this process's
/// limit): raise the soft limit to the hard one before the broker starts.
fn raise_fd_limit() {
    // SAFETY: plain libc calls on a struct owned here.
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

/// Runs one scenario of scale.c against a fresh broker; it must end with "<mode>: ok" (the pool
/// scenario reports as "clients"). Returns its output.
fn run_scale(mode: &str, numbers: &[i64]) -> String {
    let args: Vec<String> = std::iter::once(mode.to_string())
        .chain(numbers.iter().map(|n| n.to_string()))
        .collect();
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    raise_fd_limit();
    // No limit on connections, nor on the messages mosquitto keeps in flight or queued for one
    // subscriber (defaults 20 and 1000: beyond them it drops messages, which would look like loss).
    let broker = Broker::start_with("max_connections -1\nmax_inflight_messages 0\nmax_queued_messages 0\n");
    let exe = compile_c("scale", &[project_dir().join("tests/c/scale.c")]);
    let started = std::time::Instant::now();
    let (code, out, err) = run_program(
        Command::new(&exe).arg(broker.port.to_string()).args(&args),
        Duration::from_secs(180),
    );
    println!(
        "scale {}: {:.1} s\n{out}",
        args.join(" "),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(code, 0, "scale {args:?} failed\nstdout:\n{out}\nstderr:\n{err}");
    let reported = if mode == "pool" { "clients" } else { mode };
    assert!(out.contains(&format!("{reported}: ok")), "{out}");
    out
}

#[test]
fn a_thousand_clients_in_one_process_each_publish_and_receive() {
    let (clients, rounds) = (1000, 3);
    let out = run_scale("clients", &[clients, rounds]);
    assert_eq!(figure(&out, "clients: n=", "messages"), clients * rounds);
    // They really were all alive at once: two threads and at least one descriptor per client.
    let base = figure(&out, "clients: threads", "baseline");
    assert!(figure(&out, "clients: threads", "peak") >= base + 2 * clients, "{out}");
    assert!(figure(&out, "clients: fds", "peak") >= figure(&out, "clients: fds", "baseline") + clients);
}

#[test]
fn two_thousand_clients_on_a_pool_of_two_share_its_threads() {
    let (clients, rounds, threads) = (2000, 3, 2);
    let out = run_scale("pool", &[clients, rounds, threads]);
    assert_eq!(figure(&out, "clients: n=", "messages"), clients * rounds);
    // The pool's network and callback threads, and its watchdog: nothing per client.
    let base = figure(&out, "clients: threads", "baseline");
    let peak = figure(&out, "clients: threads", "peak");
    assert!(
        peak <= base + 2 * threads + 1,
        "{peak} threads at the peak, {base} before\n{out}"
    );
    assert!(figure(&out, "clients: fds", "peak") >= figure(&out, "clients: fds", "baseline") + clients);
    if let Some(limit) = pool_rss_limit_kib() {
        let grown = figure(&out, "clients: rss_kib", "peak") - figure(&out, "clients: rss_kib", "baseline");
        assert!(
            grown <= limit * clients,
            "{:.1} KiB per client (limit {limit})\n{out}",
            grown as f64 / clients as f64
        );
    }
}

#[test]
fn ten_thousand_create_connect_free_cycles_leak_nothing() {
    let cycles = 10_000;
    let out = run_scale("churn", &[cycles, churn_rss_limit_kib()]);
    assert_eq!(figure(&out, "churn: cycles", "cycles"), cycles);
}

#[test]
fn eight_threads_publish_on_one_client_at_once() {
    let (threads, per_thread) = (8, 5000);
    let out = run_scale("threads", &[threads, per_thread]);
    assert_eq!(figure(&out, "threads: threads=", "messages"), threads * per_thread);
}
