//! The C++ API (include/mqttclient.hpp): the programs in tests/cpp/ and the C++ examples, compiled
//! as C++17 with `-Wall -Wextra -Werror` and stricter warnings (`STRICT`) against the library and
//! run against a real mosquitto. scripts/test.sh runs them again under AddressSanitizer
//! (`MQTTC_SANITIZE=address`).
mod common;

use std::process::Command;
use std::time::Duration;

use common::{Broker, compile_cxx, free_port, project_dir, run_program};

/// Warnings the header must not raise in its users' builds, beyond `-Wall -Wextra`.
const STRICT: [&str; 4] = ["-pedantic", "-Wshadow", "-Wconversion", "-Wsign-conversion"];

/// Compiles `source` with `STRICT` and `flags` and runs it with `args`; it must exit 0. Returns
/// its stdout and stderr.
fn run_cpp(name: &str, source: &str, flags: &[&str], args: &[String]) -> (String, String) {
    let exe = compile_cxx(name, &[project_dir().join(source)], &[&STRICT[..], flags].concat());
    let (code, out, err) = run_program(Command::new(&exe).args(args), Duration::from_secs(120));
    assert_eq!(code, 0, "{name} {args:?} failed\nstdout:\n{out}\nstderr:\n{err}");
    (out, err)
}

/// A program that prints an `ok ...` line per step it passed, then a summary line.
fn assert_steps(out: &str, summary: &str, steps: usize) {
    assert!(out.contains(summary), "{out}");
    assert_eq!(out.lines().filter(|l| l.starts_with("ok ")).count(), steps, "{out}");
}

/// tests/cpp/client.cpp: moves and destruction, a client destroyed inside its own callbacks,
/// throwing callbacks, tokens, and views copied out of callbacks. The exceptions the client could
/// not keep are on stderr, each once.
#[test]
fn cpp_ownership_throwing_callbacks_tokens_and_views() {
    let broker = Broker::start();
    let args = [broker.port.to_string(), free_port().to_string()];
    let (out, err) = run_cpp("cpp_client", "tests/cpp/client.cpp", &[], &args);
    assert_steps(&out, "client: ok", 5);
    for line in [
        "mqttclient: a callback threw (while an earlier one was not yet taken): boom 3\n",
        "mqttclient: a callback threw (was never taken): boom last\n",
    ] {
        assert_eq!(err.matches(line).count(), 1, "{line:?} once in stderr:\n{err}");
    }
    assert_eq!(err.matches("mqttclient: ").count(), 2, "{err}");
}

/// tests/cpp/features.cpp: the options, MQTT 5, a loop, event mode, logs, inline callbacks,
/// server lists, topic checks and errors, and TLS against a second broker that requires a client
/// certificate.
#[test]
fn cpp_options_mqtt5_loop_events_logs_servers_and_tls() {
    let broker = Broker::start();
    let pki = common::pki::Pki::new();
    let tls = Broker::start_with(&pki.mosquitto_tls(true));
    let mut args = vec![broker.port.to_string(), free_port().to_string(), tls.port.to_string()];
    args.extend([&pki.ca, &pki.client_cert, &pki.client_key, &pki.other_ca].map(|p| p.display().to_string()));
    let (out, _) = run_cpp("cpp_features", "tests/cpp/features.cpp", &[], &args);
    assert_steps(&out, "features: ok", 8);
}

/// tests/cpp/noexcept.cpp, built with `-fno-exceptions`: the error_code overloads alone, and a
/// `Store` that fails through `fail(code)`.
#[test]
fn cpp_without_exceptions_reports_through_error_codes() {
    let broker = Broker::start();
    let args = [broker.port.to_string()];
    let (out, _) = run_cpp("cpp_noexcept", "tests/cpp/noexcept.cpp", &["-fno-exceptions"], &args);
    assert_steps(&out, "noexcept: ok", 4);
}

/// tests/cpp/store.cpp: QoS 1 messages published while the broker was down stay in a directory
/// store (`Options::store_dir`) or in the program's own `mqttc::Store` (a std::map that sees the
/// puts and removes), and a new client with the same store restores them (`on_restored`) and
/// delivers them, each once; one client at a time uses a Store, which the library releases with
/// its last client; a clean session with `store_drop_on_clean` clears it; a Store that throws
/// fails the publish (or the client) with MQTTC_ERR_STORE.
#[test]
fn cpp_message_stores_keep_messages_for_the_next_client() {
    let broker = Broker::start();
    let dir = common::temp_dir("cpp-store");
    let args = [
        broker.port.to_string(),
        free_port().to_string(),
        dir.display().to_string(),
    ];
    let (out, _) = run_cpp("cpp_store", "tests/cpp/store.cpp", &[], &args);
    assert_steps(&out, "store: ok", 7);
}

/// tests/cpp/login.cpp against a mosquitto with a password file and a per-user ACL: credentials
/// and wills set on a live client are what the broker sees at the next reconnect and when the
/// connection dies (a cleared will is not published); refusals carry the broker's reason code
/// and its name (a wrong password's CONNACK, an ACL's SUBACK 0x87), and `reason_str` names codes
/// per packet kind.
#[test]
fn cpp_credentials_wills_and_reason_codes() {
    let auth = common::temp_dir("cpp-passwd");
    let broker = Broker::start_with_users(&auth.join("passwd"), &[("alice", "pw-a"), ("bob", "pw-b")]);
    let (out, _) = run_cpp("cpp_login", "tests/cpp/login.cpp", &[], &[broker.port.to_string()]);
    assert_steps(&out, "login: ok", 5);
}

/// tests/cpp/auth.cpp against the scripted broker of `common::auth` (as tests/c/auth.c): MQTT 5
/// enhanced authentication through `on_auth` and `reauthenticate`, the broker's refusals named
/// in `mqttc::error`, and a handler that throws ending the exchange.
#[test]
fn cpp_enhanced_authentication() {
    let broker = common::fake::FakeBroker::new();
    let exe = compile_cxx("cpp_auth", &[project_dir().join("tests/cpp/auth.cpp")], &STRICT);
    let mut cmd = Command::new(&exe);
    cmd.arg(broker.port().to_string());
    let program = std::thread::spawn(move || run_program(&mut cmd, Duration::from_secs(60)));
    common::auth::play_broker(&broker);
    let (code, out, err) = program.join().unwrap();
    assert_eq!(code, 0, "cpp_auth failed\nstdout:\n{out}\nstderr:\n{err}");
    assert_steps(&out, "auth: ok", 6);
}

/// tests/cpp/loop_fd.cpp: a `Loop` driven from the program's own poll() on `Loop::fd`, for at
/// most `Loop::timeout_ms`, with `run(0ms)`.
#[test]
fn cpp_loop_driven_from_the_applications_poll() {
    let broker = Broker::start();
    let (out, _) = run_cpp("cpp_loop_fd", "tests/cpp/loop_fd.cpp", &[], &[broker.port.to_string()]);
    assert_steps(&out, "loop_fd: ok", 3);
}

#[test]
fn cpp_basic_example_receives_its_retained_message() {
    let broker = Broker::start();
    let args = ["127.0.0.1".to_string(), broker.port.to_string()];
    let (out, _) = run_cpp("basic_cpp", "c_examples/basic.cpp", &[], &args);
    assert_eq!(
        out.trim(),
        "Received message topic: [jlExample] payload: [Hello World!]"
    );
}

#[test]
fn cpp_basic_example_reports_a_refused_connection() {
    let exe = compile_cxx("basic_cpp", &[project_dir().join("c_examples/basic.cpp")], &STRICT);
    let (code, _, err) = run_program(
        Command::new(&exe).arg("127.0.0.1").arg(free_port().to_string()),
        Duration::from_secs(30),
    );
    assert_eq!(code, 1);
    assert!(
        err.starts_with("basic_cpp: ") && err.contains("network error"),
        "stderr: {err}"
    );
}

#[test]
fn cpp_request_response_example_matches_each_response_to_its_request() {
    let broker = Broker::start();
    let args = ["127.0.0.1".to_string(), broker.port.to_string()];
    let (out, _) = run_cpp("request_response", "c_examples/request_response.cpp", &[], &args);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["req-1: hello -> HELLO", "req-2: mqtt -> MQTT", "req-3: five -> FIVE"]
    );
}

/// Under `MQTTC_SANITIZE=address`, proves the C++ sanitizer run is not vacuous: a Client never
/// destroyed (its state, and the client the library made for it) is reported, and fails.
#[test]
fn cpp_sanitizer_build_catches_a_client_never_destroyed() {
    common::assert_leak_reported(
        "leaks_a_client.cpp",
        "#include <mqttclient.hpp>\nint main() {\n    new mqttc::Client(\"127.0.0.1\", 1);\n}\n",
        |source| compile_cxx("leaks_a_cpp_client", &[source], &[]),
    );
}
