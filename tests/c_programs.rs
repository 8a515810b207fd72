//! C test programs compiled with `cc` against the library and run against a real mosquitto (one
//! against the scripted fake broker).
mod common;

use std::process::Command;
use std::time::Duration;

use common::{Broker, compile_c, project_dir, run_program};

fn run_c_test(name: &str, broker: &Broker) -> String {
    run_c_test_with(name, broker, &[])
}

fn run_c_test_with(name: &str, broker: &Broker, args: &[&str]) -> String {
    let exe = compile_c(name, &[project_dir().join(format!("tests/c/{name}.c"))]);
    let (code, out, err) = run_program(
        Command::new(&exe).arg(broker.port.to_string()).args(args),
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "{name} {args:?} failed\nstdout:\n{out}\nstderr:\n{err}");
    out
}

#[test]
fn bad_input_through_the_c_api_gets_clear_errors_not_crashes() {
    let broker = Broker::start();
    let out = run_c_test("bad_input", &broker);
    assert!(out.contains("0 failure(s)"), "{out}");
    // The table really ran: one line per case.
    assert!(out.lines().filter(|l| l.contains(" ok ")).count() >= 50, "{out}");
}

#[test]
fn callbacks_can_call_the_api_and_free_their_own_client() {
    let broker = Broker::start();
    let out = run_c_test("callbacks", &broker);
    assert!(out.contains("callbacks: ok (mqttc-callbacks"), "{out}");
}

#[test]
fn inline_callbacks_run_on_the_network_thread_and_can_call_the_api_and_free_their_own_client() {
    let broker = Broker::start();
    let out = run_c_test_with("callbacks", &broker, &["inline"]);
    assert!(out.contains("callbacks: ok (mqttc-net"), "{out}");
}

#[test]
fn callbacks_on_a_loop_can_call_the_api_and_free_their_own_client() {
    let broker = Broker::start();
    let out = run_c_test_with("callbacks", &broker, &["loop"]);
    assert!(out.contains("callbacks: ok ("), "{out}");
}

#[test]
fn callbacks_on_a_pool_can_call_the_api_and_free_their_own_client() {
    let broker = Broker::start();
    let out = run_c_test_with("callbacks", &broker, &["pool"]);
    assert!(out.contains("callbacks: ok (mqttc-pool-cb"), "{out}");
}

/// Runs tests/c/`name`.c, a program that needs no broker; returns its output once it succeeded.
fn run_c_alone(name: &str) -> String {
    let exe = compile_c(name, &[project_dir().join(format!("tests/c/{name}.c"))]);
    let (code, out, err) = run_program(&mut Command::new(&exe), Duration::from_secs(60));
    assert_eq!(code, 0, "{name} failed\nstdout:\n{out}\nstderr:\n{err}");
    out
}

/// Runs a program that prints an `ok ...` line per step it passed, then a summary line.
fn run_c_steps(name: &str, summary: &str, steps: usize) {
    let broker = Broker::start();
    let out = run_c_test(name, &broker);
    assert!(out.contains(summary), "{out}");
    assert_eq!(out.lines().filter(|l| l.starts_with("ok ")).count(), steps, "{out}");
}

#[test]
fn clients_on_a_loop_run_on_the_application_thread() {
    run_c_steps("run_loop", "run_loop: ok", 8);
}

/// tests/c/loop_fd.c: loops driven from the program's own poll() on `mqttc_loop_fd`, for at most
/// `mqttc_loop_timeout_ms`, with `mqttc_loop_run(loop, 0)`: round trips, keep-alive pings and a
/// reconnect after its backoff on the loop's timers alone, a publish from another thread waking
/// an endless poll, and no run that waits. (scripts/test.sh runs it again under AddressSanitizer.)
#[test]
fn a_loop_runs_from_the_applications_own_poll_loop() {
    run_c_steps("loop_fd", "loop_fd: ok", 6);
}

#[test]
fn event_mode_through_the_c_api() {
    run_c_steps("events", "events: ok", 6);
}

/// tests/c/event_userdata.c: a subscription's `drop_userdata` waits for the last MESSAGE event
/// carrying its userdata to be freed, after an unsubscribe, a replacing subscribe, or a client free.
#[test]
fn event_mode_keeps_userdata_alive_until_its_last_message_event_is_freed() {
    run_c_steps("event_userdata", "event_userdata: ok", 3);
}

/// tests/c/ack_after_callback.c: with `ack_after_callback`, a message is acknowledged once its
/// callback returned or its event was freed, in arrival order; a freed client's unhandled
/// messages come back to the next client with its id, its handled ones do not.
#[test]
fn ack_after_callback_through_the_c_api_redelivers_exactly_the_unhandled_messages() {
    run_c_steps("ack_after_callback", "ack_after_callback: ok", 2);
}

/// tests/c/store_callbacks.c: a message store in the application's own table, through
/// `mqttc_store_new`: what a freed client left is restored by the next one with the same store
/// and delivered through mosquitto; a failing put fails the publish and keeps what was stored;
/// while puts of packet ids fail, the packets wait; `drop` runs once, after the last free.
#[test]
fn a_store_the_application_supplies_keeps_messages_across_clients() {
    run_c_steps("store_callbacks", "store_callbacks: ok", 7);
}

#[test]
fn tls_options_through_the_c_api() {
    let pki = common::pki::Pki::new();
    let broker = Broker::start_with(&pki.mosquitto_tls(false));
    let exe = compile_c("tls", &[project_dir().join("tests/c/tls.c")]);
    let (code, out, err) = run_program(
        Command::new(&exe)
            .arg(broker.port.to_string())
            .arg(&pki.ca)
            .arg(&pki.other_ca),
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "tls failed\nstdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("tls: ok"), "{out}");
    assert_eq!(out.lines().filter(|l| l.starts_with("ok ")).count(), 9, "{out}");
}

/// The packaging consumer (tests/packaging/consumer/main.c), which scripts/packaging.sh builds
/// against an install, here against cargo's library: the header's version macros agree with each
/// other and with `mqttc_version()` / `mqttc_version_number()` of the library loaded through its
/// SONAME link.
#[test]
fn header_version_macros_match_the_library() {
    let exe = compile_c("consumer", &[project_dir().join("tests/packaging/consumer/main.c")]);
    let (code, out, err) = run_program(&mut Command::new(&exe), Duration::from_secs(60));
    assert_eq!(code, 0, "consumer failed\nstdout:\n{out}\nstderr:\n{err}");
    assert_eq!(
        out.trim(),
        concat!("consumer ok: mqttclient ", env!("CARGO_PKG_VERSION"))
    );
}

/// Compiles a source with the given compiler and flags, checking for zero warnings.
fn compiles_cleanly(compiler: &str, flags: &[&str], source: &std::path::Path) {
    let out = Command::new(compiler)
        .args(flags)
        .args(["-Wall", "-Wextra", "-Werror", "-pedantic", "-fsyntax-only", "-I"])
        .arg(project_dir().join("include"))
        .arg(source)
        .output()
        .expect("run the compiler");
    assert!(
        out.status.success(),
        "{compiler} {flags:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn header_compiles_warning_free_as_c11_and_cxx17() {
    let dir = common::temp_dir("header");
    let c_file = dir.join("include_only.c");
    std::fs::write(
        &c_file,
        "#include <mqttclient.h>\nint main(void) { return mqttc_status_str(0) == 0; }\n",
    )
    .unwrap();
    compiles_cleanly("cc", &["-std=c11"], &c_file);
    compiles_cleanly(
        "c++",
        &["-std=c++17", "-x", "c++"],
        &project_dir().join("tests/c/header_cxx.cpp"),
    );
}

#[test]
fn free_right_after_connect_while_connecting_and_while_offline() {
    run_c_steps("free_paths", "free_paths: ok (24 destructors)", 4);
}

/// Under `MQTTC_SANITIZE=address`, proves the sanitizer run is not vacuous: a program that never
/// frees its client (memory the Rust library allocated) is reported by LeakSanitizer and fails.
#[test]
fn sanitizer_build_catches_a_client_never_freed() {
    common::assert_leak_reported(
        "leaks_a_client.c",
        "#include <mqttclient.h>\nint main(void) {\n    mqttc_client *c = 0;\n    \
         return mqttc_client_new(\"127.0.0.1\", 1, 0, &c) != MQTTC_OK;\n}\n",
        |source| compile_c("leaks_a_client", &[source]),
    );
}

/// Starts tests/c/`name`.c with the port of `broker` and `args`, on a thread that returns its
/// exit code and output, for the test to script the broker meanwhile.
fn spawn_against(
    name: &str,
    broker: &common::fake::FakeBroker,
    args: &[&str],
) -> std::thread::JoinHandle<(i32, String, String)> {
    let exe = compile_c(name, &[project_dir().join(format!("tests/c/{name}.c"))]);
    let mut cmd = Command::new(&exe);
    cmd.arg(broker.port().to_string()).args(args);
    std::thread::spawn(move || run_program(&mut cmd, Duration::from_secs(60)))
}

/// Runs tests/c/hostile.c with `args` against a scripted broker: `breaks` gets the first
/// connection once it is accepted and ends it; the client must come back by itself, and a QoS 1
/// publish then completes on the next connection. Returns the program's output.
fn run_hostile(args: &[&str], breaks: impl FnOnce(&mut common::fake::FakeConn)) -> String {
    use common::fake::FakeBroker;
    use mqttclient::codec::{Ack, Disconnect, Packet};
    let broker = FakeBroker::new();
    let program = spawn_against("hostile", &broker, args);
    let mut conn = broker.accept();
    breaks(&mut conn);
    let mut conn = broker.accept();
    conn.set_auto_pingresp(true);
    conn.accept_connect();
    let p = conn.expect_publish();
    assert_eq!(p.topic.as_str(), "after/hostile");
    conn.send(Packet::PubAck(Ack::new(p.pkid)));
    conn.expect_packet(&Packet::Disconnect(Disconnect::default()));
    let (code, out, err) = program.join().unwrap();
    assert_eq!(code, 0, "hostile {args:?} failed\nstdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("hostile: ok"), "{out}");
    out
}

/// tests/c/hostile.c against a scripted broker that breaks the first connection with a packet of
/// the reserved type 0: the C connection-state callback gets LOST with MQTTC_ERR_PROTOCOL and a
/// detail naming the problem, the client reconnects by itself and a QoS 1 publish completes.
#[test]
fn a_hostile_broker_is_reported_through_the_c_api_and_the_client_comes_back() {
    let out = run_hostile(&[], |conn| {
        conn.accept_connect();
        conn.send_raw(&[0x00, 0x00]);
        conn.expect_eof(common::fake::TIMEOUT);
    });
    assert!(
        out.contains(
            "reason=protocol violation by the broker detail=protocol violation by the broker: packet type 0 is reserved"
        ),
        "{out}"
    );
}

/// A broker declares a PUBLISH of 256 MiB (the largest remaining length MQTT can encode, within
/// the default maximum packet size) to a client whose address space is limited to 256 MiB, sends
/// a few KiB of it and stops. The client holds only what arrived: it does not abort on a
/// reservation of the declared size, notices the stall by its keep-alive, reports it through the
/// connection-state callback and reconnects. (Under AddressSanitizer the program cannot limit its
/// address space, so there only the error and the reconnect are checked.)
#[test]
fn a_header_declaring_256_mib_costs_only_the_bytes_sent_and_the_client_comes_back() {
    use mqttclient::codec::{Packet, PropertyId};
    let out = run_hostile(&["huge"], |conn| {
        let connect = conn.accept_connect();
        assert_eq!(
            connect.properties.int(PropertyId::MaximumPacketSize),
            Some(268_435_460),
            "CONNECT tells the broker the default limit, MQTT's maximum"
        );
        conn.send_raw(&[0x30, 0xFF, 0xFF, 0xFF, 0x7F, 0x00, 0x03, b'b', b'i', b'g']);
        for _ in 0..10 {
            conn.send_raw(&[b'x'; 1024]);
            std::thread::sleep(Duration::from_millis(50));
        }
        // The packet never ends, so the PINGRESP could never be read: none is sent.
        conn.expect_within(common::fake::TIMEOUT, "PINGREQ", |p| matches!(p, Packet::PingReq));
        conn.expect_eof(common::fake::TIMEOUT);
    });
    if common::sanitizer().is_none() {
        assert!(out.contains("address space limited to 256 MiB"), "{out}");
        assert!(out.contains("payload it could not copy: MQTTC_ERR_RESOURCE"), "{out}");
    }
    assert!(
        out.contains("detail=no PINGRESP from the broker within the ping timeout"),
        "{out}"
    );
}

#[test]
fn mqtt5_properties_options_identifiers_and_shared_subscriptions_through_the_c_api() {
    run_c_steps("mqtt5", "mqtt5: ok", 9);
}

#[test]
fn lent_payloads_arrive_intact_and_are_released_exactly_once() {
    run_c_steps("nocopy", "nocopy: ok", 4);
}

/// tests/c/free_race.c: threads waiting, polling and publishing on a client while another frees
/// it, round after round; each gets out with a clear status and the stale handle stays refused.
/// (scripts/test.sh runs it again under AddressSanitizer.)
#[test]
fn a_free_racing_calls_on_other_threads_is_refused_cleanly() {
    let broker = Broker::start();
    let out = run_c_test_with("free_race", &broker, &["300"]);
    assert!(out.contains("free_race: ok (300 rounds)"), "{out}");
}

/// The same under Valgrind's memcheck, which also sees the library's own reads and writes: a
/// call that touched the freed client would be an "Invalid read" and a non-zero exit. Fair
/// scheduling keeps the spinning threads from starving the others (10x faster here).
#[test]
fn a_free_racing_calls_on_other_threads_is_clean_under_memcheck() {
    if common::sanitizer().is_some() {
        return; // memcheck and AddressSanitizer do not mix; the plain run covers this test
    }
    let broker = Broker::start();
    let exe = compile_c("free_race", &[project_dir().join("tests/c/free_race.c")]);
    let (code, out, err) = run_program(
        Command::new("valgrind")
            .args([
                "--quiet",
                "--fair-sched=yes",
                "--error-exitcode=97",
                "--leak-check=full",
            ])
            .args(["--errors-for-leak-kinds=definite", "--show-leak-kinds=definite"])
            .arg(&exe)
            .arg(broker.port.to_string())
            .arg("300"),
        Duration::from_secs(300),
    );
    assert_eq!(
        code, 0,
        "free_race under memcheck failed (scripts/deps.sh installs valgrind)\nstdout:\n{out}\nstderr:\n{err}"
    );
    assert!(out.contains("free_race: ok (300 rounds)"), "{out}");
}

/// tests/c/topics.c: topic matching and the topic and filter checks, case by case.
#[test]
fn topic_matching_and_checks_follow_mqtt_through_the_c_api() {
    let out = run_c_alone("topics");
    assert!(out.contains("topics: ok (31 cases)"), "{out}");
    assert_eq!(out.lines().filter(|l| l.starts_with("ok ")).count(), 31, "{out}");
}

/// Runs tests/c/auth.c (with `mode`: "threads" or "loop") against the scripted broker of
/// `common::auth`, which plays the other side of its MQTT 5 enhanced authentication steps.
fn run_auth(mode: &str) {
    let broker = common::fake::FakeBroker::new();
    let program = spawn_against("auth", &broker, &[mode]);
    common::auth::play_broker(&broker);
    let (code, out, err) = program.join().unwrap();
    assert_eq!(code, 0, "auth {mode} failed\nstdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("auth: ok"), "{out}");
    assert_eq!(out.lines().filter(|l| l.starts_with("ok ")).count(), 6, "{out}");
}

/// tests/c/auth.c: MQTT 5 enhanced authentication through the C API, its callback on the
/// client's callback thread: a connect in several steps, re-authentications the broker and the
/// client start, an AUTH with another method (a protocol error, DISCONNECT 0x82), the broker's
/// refusals (CONNACK 0x87, 0x8C) and the callback's own (DISCONNECT 0x80, MQTTC_ERR_AUTH_FAILED).
#[test]
fn enhanced_authentication_through_the_c_api() {
    run_auth("threads");
}

/// The same with the clients on an `mqttc_loop`: the callback runs on the thread running it,
/// inside the token wait during the connect.
#[test]
fn enhanced_authentication_on_a_loop() {
    run_auth("loop");
}

/// tests/c/reason_str.c: `mqttc_reason_str` names each code of each packet kind as MQTT 5's table
/// 2-6 and 3.1.1's CONNACK and SUBACK tables do (written out in the program), and every other
/// code or kind "unknown reason code".
#[test]
fn reason_codes_are_named_per_packet_kind_as_the_specifications_do() {
    let out = run_c_alone("reason_str");
    // 22 + 9 + 9 + 2 + 2 + 12 + 7 + 30 + 3 codes in MQTT 5's packets, 6 + 4 in 3.1.1's.
    assert!(out.contains("reason_str: ok (106 names)"), "{out}");
}

/// tests/c/credentials.c against a mosquitto with a password file and an ACL that lets each user
/// talk only on users/<its name>/#: credentials given to a live client are the ones the broker
/// knows it by after `mqttc_reconnect` and after an automatic reconnect, including a password
/// set in the connection callback on LOST after the broker changed it; a will set later is the
/// one published when the connection dies, and a cleared one is not published.
#[test]
fn credentials_and_will_changed_on_a_live_client_are_what_the_broker_sees() {
    let auth = common::temp_dir("passwd");
    let file = auth.join("passwd");
    let broker = Broker::start_with_users(&file, &[("alice", "pw-a"), ("bob", "pw-b")]);
    let exe = compile_c("credentials", &[project_dir().join("tests/c/credentials.c")]);
    let (code, out, err) = run_program(
        Command::new(&exe)
            .arg(broker.port.to_string())
            .arg(&file)
            .arg(broker.pid().to_string()),
        Duration::from_secs(120),
    );
    assert_eq!(code, 0, "credentials failed\nstdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("credentials: ok"), "{out}");
    assert_eq!(out.lines().filter(|l| l.starts_with("ok ")).count(), 5, "{out}");
}
