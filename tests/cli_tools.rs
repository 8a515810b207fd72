//! c_examples/mqttc_pub.c, mqttc_sub.c and mqttc_rr.c against a real mosquitto: the options they
//! share with mosquitto_pub, mosquitto_sub and mosquitto_rr, their output, their exit codes
//! (compared with the real tools', which scripts/deps.sh installs), and interoperation with them.
mod common;
#[path = "cli_tools/format.rs"]
mod format;
#[path = "cli_tools/help.rs"]
mod help;
#[path = "cli_tools/options.rs"]
mod options;
#[path = "cli_tools/rr.rs"]
mod rr;
#[path = "cli_tools/sub_options.rs"]
mod sub_options;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{Broker, cli_tools, program, run_program};

const WAIT: Duration = Duration::from_secs(20);

fn our_pub() -> Command {
    Command::new(&cli_tools().0)
}

fn our_sub() -> Command {
    Command::new(&cli_tools().1)
}

/// A mosquitto that logs every SUBSCRIBE and UNSUBSCRIBE to a file, so a test can wait until a
/// subscriber is really subscribed (or unsubscribed) before publishing. `dir` (world-writable, see `common::temp_dir`) holds that log and
/// whatever else a test needs; fields drop in order, so the broker stops before it is removed.
struct TestBroker {
    broker: Broker,
    dir: common::TempDir,
    log: PathBuf,
}

impl TestBroker {
    fn start() -> TestBroker {
        TestBroker::start_with(|_| String::new())
    }

    /// `extra(dir)` gives more config lines; `dir` is the test's directory for sockets and files.
    fn start_with(extra: impl Fn(&Path) -> String) -> TestBroker {
        let dir = common::temp_dir("cli");
        let log = dir.join("subscriptions.log");
        let conf = format!(
            "log_dest file {}\nlog_type subscribe\nlog_type unsubscribe\n{}",
            log.display(),
            extra(&dir)
        );
        let broker = Broker::start_with(&conf);
        TestBroker { broker, dir, log }
    }

    fn port(&self) -> String {
        self.broker.port.to_string()
    }

    /// Waits until the broker has logged `topics` subscriptions (and unsubscriptions) of client `id`.
    fn wait_subscribed(&self, id: &str, topics: usize) {
        let deadline = Instant::now() + WAIT;
        loop {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let n = log.lines().filter(|l| l.split_whitespace().nth(1) == Some(id)).count();
            if n >= topics {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "client {id} did not subscribe; broker log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A subscriber running in the background; killed if still running when dropped.
struct Background {
    child: Child,
    out: Option<JoinHandle<Vec<u8>>>,
    err: Option<JoinHandle<Vec<u8>>>,
}

/// Reads all of a child's pipe on a thread, as bytes: -F output need not be text.
fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

fn spawn(cmd: &mut Command) -> Background {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let out = drain(child.stdout.take().unwrap());
    let err = drain(child.stderr.take().unwrap());
    Background {
        child,
        out: Some(out),
        err: Some(err),
    }
}

impl Background {
    /// Waits (bounded) for the exit; returns (exit code, stdout, stderr); -999 if it had to be killed.
    fn finish(self, timeout: Duration) -> (i32, String, String) {
        let (code, out, err) = self.finish_bytes(timeout);
        let text = |b: Vec<u8>| String::from_utf8(b).expect("output is UTF-8");
        (code, text(out), text(err))
    }

    /// `finish`, with the output as bytes.
    fn finish_bytes(mut self, timeout: Duration) -> (i32, Vec<u8>, Vec<u8>) {
        let deadline = Instant::now() + timeout;
        let code = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break -999;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let out = self.out.take().unwrap().join().unwrap();
        let err = self.err.take().unwrap().join().unwrap();
        (code, out, err)
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(self.child.id() as libc::pid_t, sig) }, 0);
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `sub` (with `-i id` added) and waits until the broker has its `topics` subscriptions.
fn start_sub(b: &TestBroker, sub: &mut Command, id: &str, topics: usize) -> Background {
    let bg = spawn(sub.args(["-i", id]));
    b.wait_subscribed(id, topics);
    bg
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    run_program(cmd.stdin(Stdio::null()), WAIT)
}

/// Runs `cmd` with `input` as its standard input.
fn run_with_stdin(cmd: &mut Command, input: &[u8], dir: &Path) -> (i32, String, String) {
    let path = dir.join(format!("stdin-{}", input.len()));
    std::fs::write(&path, input).unwrap();
    run_program(cmd.stdin(std::fs::File::open(&path).unwrap()), WAIT)
}

fn publish_ok(b: &TestBroker, args: &[&str]) {
    let (code, out, err) = run(our_pub().args(["-h", "127.0.0.1", "-p", &b.port()]).args(args));
    assert_eq!(code, 0, "mqttc_pub {args:?}: stdout {out:?} stderr {err:?}");
}

fn sub_cmd(b: &TestBroker, args: &[&str]) -> Command {
    let mut c = our_sub();
    c.args(["-h", "127.0.0.1", "-p", &b.port()]).args(args);
    c
}

/// The real mosquitto tool `name`, which the tests compare against (scripts/deps.sh installs it).
fn real(name: &str) -> PathBuf {
    program(name).unwrap_or_else(|| panic!("{name} not installed: run scripts/deps.sh"))
}

/// Publishes with mosquitto_pub, so that what a test compares does not depend on mqttc_pub.
fn real_pub(b: &TestBroker, args: &[&str]) {
    let (code, out, err) = run(Command::new(real("mosquitto_pub")).args(["-p", &b.port()]).args(args));
    assert_eq!(code, 0, "mosquitto_pub {args:?}: {out} {err}");
}

/// `args` are a usage error for both tools: ours exits as the real one and prints its message on
/// stderr, in its own name, and nothing on stdout.
fn same_usage_error(ours: fn() -> Command, real_tool: &str, args: &[&str]) {
    let (real_code, _, real_err) = run(Command::new(real(real_tool)).args(args));
    let (code, out, err) = run(ours().args(args));
    assert_ne!(real_code, 0, "{real_tool} {args:?} is no error");
    assert_eq!((code, out.as_str()), (real_code, ""), "{args:?}: {err}");
    let ours_name = real_tool.replace("mosquitto", "mqttc");
    assert_eq!(err, real_err.replace(real_tool, &ours_name), "{args:?}");
}

#[test]
fn pub_m_to_sub_v_prints_exactly_topic_space_payload() {
    let b = TestBroker::start();
    let sub = start_sub(&b, &mut sub_cmd(&b, &["-t", "cli/v", "-C", "1", "-v"]), "sub-v", 1);
    publish_ok(&b, &["-t", "cli/v", "-m", "hello world"]);
    let (code, out, err) = sub.finish(WAIT);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out, "cli/v hello world\n");
    assert_eq!(err, "");
}

#[test]
fn v_mqttv5_speaks_mqtt_5_both_ways_and_other_versions_are_refused() {
    let b = TestBroker::start();
    let sub = start_sub(
        &b,
        &mut sub_cmd(&b, &["-V", "mqttv5", "-t", "cli/v5", "-q", "1", "-C", "1", "-v"]),
        "sub-v5",
        1,
    );
    publish_ok(&b, &["-V", "5", "-t", "cli/v5", "-q", "1", "-m", "over MQTT 5"]);
    let (code, out, err) = sub.finish(WAIT);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out, "cli/v5 over MQTT 5\n");
    let (code, _, err) = run(our_pub().args(["-V", "mqttv31", "-t", "t", "-m", "x"]));
    assert_ne!(code, 0);
    assert!(err.contains("use mqttv311 or mqttv5"), "stderr: {err}");
}

#[test]
fn sub_without_v_prints_the_payload_only() {
    let b = TestBroker::start();
    let sub = start_sub(&b, &mut sub_cmd(&b, &["-t", "cli/plain", "-C", "1"]), "sub-plain", 1);
    publish_ok(&b, &["-t", "cli/plain", "-m", "just this"]);
    let (code, out, err) = sub.finish(WAIT);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out, "just this\n");
}

#[test]
fn qos_1_and_2_deliver() {
    let b = TestBroker::start();
    for qos in ["1", "2"] {
        let id = format!("sub-q{qos}");
        let sub = start_sub(
            &b,
            &mut sub_cmd(&b, &["-t", "cli/qos", "-q", qos, "-C", "1", "-v"]),
            &id,
            1,
        );
        publish_ok(&b, &["-t", "cli/qos", "-q", qos, "-m", &format!("at qos {qos}")]);
        let (code, out, err) = sub.finish(WAIT);
        assert_eq!(code, 0, "qos {qos}: stderr: {err}");
        assert_eq!(out, format!("cli/qos at qos {qos}\n"));
    }
}

#[test]
fn retained_message_reaches_a_later_subscriber_and_r_flag_hides_it() {
    let b = TestBroker::start();
    publish_ok(&b, &["-t", "cli/retained", "-r", "-q", "1", "-m", "kept"]);
    // A subscriber started afterwards gets it...
    let (code, out, err) = run(&mut sub_cmd(&b, &["-t", "cli/retained", "-C", "1", "-v", "-W", "10"]));
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out, "cli/retained kept\n");
    // ...unless it asks not to see stale (retained) messages with -R.
    let (code, out, err) = run(&mut sub_cmd(&b, &["-t", "cli/retained", "-R", "-W", "1"]));
    assert_eq!(code, 27, "stderr: {err}");
    assert_eq!(out, "");
}

#[test]
fn n_sends_an_empty_message() {
    let b = TestBroker::start();
    let sub = start_sub(
        &b,
        &mut sub_cmd(&b, &["-t", "cli/null", "-C", "2", "-v"]),
        "sub-null",
        1,
    );
    publish_ok(&b, &["-t", "cli/null", "-n"]);
    publish_ok(&b, &["-t", "cli/null", "-m", "after"]);
    let (code, out, err) = sub.finish(WAIT);
    assert_eq!(code, 0, "stderr: {err}");
    // mosquitto_sub -v prints an empty payload as "(null)".
    assert_eq!(out, "cli/null (null)\ncli/null after\n");

    // Without -v an empty payload prints nothing at all, as with mosquitto_sub.
    let sub = start_sub(
        &b,
        &mut sub_cmd(&b, &["-t", "cli/null", "-C", "2"]),
        "sub-null-plain",
        1,
    );
    publish_ok(&b, &["-t", "cli/null", "-n"]);
    publish_ok(&b, &["-t", "cli/null", "-m", "after"]);
    let (code, out, err) = sub.finish(WAIT);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out, "after\n");
}

#[test]
fn l_sends_one_message_per_stdin_line_in_order() {
    let b = TestBroker::start();
    // Blank lines are empty messages; a last line without '\n' is sent too.
    let sub = start_sub(
        &b,
        &mut sub_cmd(&b, &["-t", "cli/lines", "-C", "4", "-v"]),
        "sub-lines",
        1,
    );
    let (code, out, err) = run_with_stdin(
        our_pub().args(["-h", "127.0.0.1", "-p", &b.port(), "-t", "cli/lines", "-l"]),
        b"one\ntwo\n\nfour",
        &b.dir,
    );
    assert_eq!(code, 0, "stdout {out:?} stderr {err:?}");
    let (code, out, err) = sub.finish(WAIT);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out, "cli/lines one\ncli/lines two\ncli/lines (null)\ncli/lines four\n");

    // Many lines at QoS 1 (more than mqttc_pub keeps in flight at once), all delivered in order.
    let n = 1000;
    let input: String = (0..n).map(|i| format!("line {i}\n")).collect();
    let sub = start_sub(
        &b,
        &mut sub_cmd(&b, &["-t", "cli/many", "-q", "1", "-C", &n.to_string()]),
        "sub-many",
        1,
    );
    let (code, out, err) = run_with_stdin(
        our_pub().args(["-h", "127.0.0.1", "-p", &b.port(), "-t", "cli/many", "-q", "1", "-l"]),
        input.as_bytes(),
        &b.dir,
    );
    assert_eq!(code, 0, "stdout {out:?} stderr {err:?}");
    let (code, out, err) = sub.finish(WAIT);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out.lines().count(), n);
    assert_eq!(out, input);
}

#[test]
fn s_sends_all_of_stdin_as_one_message() {
    let b = TestBroker::start();
    let sub = start_sub(&b, &mut sub_cmd(&b, &["-t", "cli/stdin", "-C", "1"]), "sub-stdin", 1);
    let (code, out, err) = run_with_stdin(
        our_pub().args(["-h", "127.0.0.1", "-p", &b.port(), "-t", "cli/stdin", "-s"]),
        b"first\nsecond\n",
        &b.dir,
    );
    assert_eq!(code, 0, "stdout {out:?} stderr {err:?}");
    let (code, out, err) = sub.finish(WAIT);
    assert_eq!(code, 0, "stderr: {err}");
    // The payload keeps its newlines; mosquitto_sub adds one more after it.
    assert_eq!(out, "first\nsecond\n\n");
}

#[test]
fn f_sends_a_file_as_one_message() {
    let b = TestBroker::start();
    let file = b.dir.join("payload.bin");
    std::fs::write(&file, b"from a file").unwrap();
    let sub = start_sub(
        &b,
        &mut sub_cmd(&b, &["-t", "cli/file", "-C", "1", "-v"]),
        "sub-file",
        1,
    );
    publish_ok(&b, &["-t", "cli/file", "-f", file.to_str().unwrap()]);
    let (code, out, err) = sub.finish(WAIT);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out, "cli/file from a file\n");
}

#[test]
fn sub_accepts_several_t_options() {
    let b = TestBroker::start();
    let sub = start_sub(
        &b,
        &mut sub_cmd(&b, &["-t", "cli/a", "-t", "cli/b/#", "-C", "2", "-v"]),
        "sub-multi",
        2,
    );
    publish_ok(&b, &["-t", "cli/a", "-m", "to a"]);
    publish_ok(&b, &["-t", "cli/b/deep", "-m", "to b"]);
    let (code, out, err) = sub.finish(WAIT);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out, "cli/a to a\ncli/b/deep to b\n");
}

#[test]
fn c_keeps_the_session_so_a_later_run_gets_what_was_queued() {
    keeps_the_session_with(&[]);
}

/// MQTT 5 ends a session at disconnect unless CONNECT says otherwise: `-c` sets the session
/// expiry to "never", as mosquitto_sub and mosquitto_pub do.
#[test]
fn c_keeps_the_session_with_mqtt5_too() {
    keeps_the_session_with(&["-V", "mqttv5"]);
}

fn keeps_the_session_with(version: &[&str]) {
    let b = TestBroker::start();
    let mut args = vec!["-t", "cli/session", "-q", "1", "-c", "-i", "persistent", "-v"];
    args.extend_from_slice(version);
    // First run: subscribe with a persistent session, then leave (the -W timeout).
    let (code, out, err) = run(sub_cmd(&b, &args).args(["-W", "1"]));
    assert_eq!((code, out.as_str()), (27, ""), "stderr: {err}");
    b.wait_subscribed("persistent", 1);
    // Published while the subscriber is away: the broker queues it in the session...
    publish_ok(&b, &["-t", "cli/session", "-q", "1", "-m", "while you were out"]);
    // ...and hands it over when the same client id comes back with -c.
    let (code, out, err) = run(sub_cmd(&b, &args).args(["-C", "1", "-W", "10"]));
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out, "cli/session while you were out\n");
}

#[test]
fn sub_reconnects_and_subscribes_again_when_the_broker_restarts_like_mosquitto_sub() {
    let mut b = TestBroker::start();
    let sub = start_sub(
        &b,
        &mut sub_cmd(&b, &["-t", "cli/back", "-C", "1", "-W", "20"]),
        "sub-back",
        1,
    );
    // A restarted broker without persistence has forgotten the subscription: the library makes it
    // again by itself once it is back.
    b.broker.restart();
    b.wait_subscribed("sub-back", 2);
    publish_ok(&b, &["-t", "cli/back", "-m", "after the restart"]);
    let (code, out, err) = sub.finish(WAIT);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out, "after the restart\n");
}

#[test]
fn w_timeout_exit_code_matches_mosquitto_sub() {
    let b = TestBroker::start();
    // mosquitto_sub exits with MOSQ_ERR_TIMEOUT (27) and "Timed out" on stderr.
    let expected = match program("mosquitto_sub") {
        Some(real) => {
            let (code, _, err) = run(Command::new(real).args(["-p", &b.port(), "-t", "cli/quiet", "-W", "1"]));
            assert_eq!(err.trim(), "Timed out");
            code
        }
        None => {
            println!("note: mosquitto_sub not installed; using its documented -W exit code 27");
            27
        }
    };
    let start = Instant::now();
    let (code, out, err) = run(&mut sub_cmd(&b, &["-t", "cli/quiet", "-W", "1"]));
    let elapsed = start.elapsed();
    assert_eq!(code, expected, "stderr: {err}");
    assert_eq!(err.trim(), "Timed out");
    assert_eq!(out, "");
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(10),
        "{elapsed:?}"
    );
}

#[test]
fn our_pub_to_real_mosquitto_sub() {
    let Some(real) = program("mosquitto_sub") else {
        println!("note: mosquitto_sub not installed; skipping");
        return;
    };
    let b = TestBroker::start();
    let mut cmd = Command::new(real);
    cmd.args(["-p", &b.port(), "-t", "cli/x", "-C", "3", "-v", "-q", "2"]);
    let sub = start_sub(&b, &mut cmd, "real-sub", 1);
    publish_ok(&b, &["-t", "cli/x", "-m", "plain", "-q", "1"]);
    publish_ok(&b, &["-t", "cli/x", "-n", "-q", "2"]);
    // libmosquitto hands a QoS 2 message to mosquitto_sub only on PUBREL, so a later QoS 0 one could
    // overtake it: keep the last two at QoS 2. (No -h: the default host, localhost, is used.)
    let (code, out, err) = run_with_stdin(
        our_pub().args(["-p", &b.port(), "-t", "cli/x", "-q", "2", "-s"]),
        b"multi\nline",
        &b.dir,
    );
    assert_eq!(code, 0, "stdout {out:?} stderr {err:?}");
    let (code, out, err) = sub.finish(WAIT);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out, "cli/x plain\ncli/x (null)\ncli/x multi\nline\n");
}

#[test]
fn real_mosquitto_pub_to_our_sub_prints_what_mosquitto_sub_prints() {
    let (Some(real_pub), Some(real_sub)) = (program("mosquitto_pub"), program("mosquitto_sub")) else {
        println!("note: mosquitto_pub/mosquitto_sub not installed; skipping");
        return;
    };
    let b = TestBroker::start();
    for args in [&["-v"][..], &[][..], &["-v", "-N"][..], &["-N"][..]] {
        let tag = args.join("");
        let mut ours = sub_cmd(&b, &["-t", "cli/y/#", "-C", "4"]);
        ours.args(args);
        let mut theirs = Command::new(&real_sub);
        theirs.args(["-p", &b.port(), "-t", "cli/y/#", "-C", "4"]).args(args);
        let ours = start_sub(&b, &mut ours, &format!("ours{tag}"), 1);
        let theirs = start_sub(&b, &mut theirs, &format!("theirs{tag}"), 1);
        let port = b.port();
        for extra in [
            &["-m", "text"][..],
            &["-n"][..],
            &["-m", "two words", "-q", "1"][..],
            &["-m", "x", "-q", "2"][..],
        ] {
            let (code, out, err) = run(Command::new(&real_pub).args(["-p", &port, "-t", "cli/y/z"]).args(extra));
            assert_eq!(code, 0, "mosquitto_pub: {out} {err}");
        }
        let (c1, ours_out, e1) = ours.finish(WAIT);
        let (c2, theirs_out, e2) = theirs.finish(WAIT);
        assert_eq!((c1, c2), (0, 0), "ours: {e1}; theirs: {e2}");
        assert_eq!(ours_out, theirs_out, "output differs with {args:?}");
        assert!(!ours_out.is_empty());
    }
}

#[test]
fn will_is_published_after_sigkill_but_not_after_sigint() {
    let b = TestBroker::start();
    let will = ["--will-topic", "cli/will", "--will-payload", "gone", "--will-qos", "1"];

    // Killed without a chance to disconnect: the broker publishes the will.
    let watcher = start_sub(
        &b,
        &mut sub_cmd(&b, &["-t", "cli/will", "-C", "1", "-v", "-W", "15"]),
        "watch-1",
        1,
    );
    let victim = start_sub(&b, sub_cmd(&b, &["-t", "cli/other"]).args(will), "victim-1", 1);
    victim.signal(libc::SIGKILL);
    let (code, out, err) = watcher.finish(WAIT);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out, "cli/will gone\n");
    drop(victim);

    // SIGINT makes mqttc_sub disconnect cleanly (exit 0), so there is no will.
    let watcher = start_sub(&b, &mut sub_cmd(&b, &["-t", "cli/will", "-v", "-W", "2"]), "watch-2", 1);
    let victim = start_sub(&b, sub_cmd(&b, &["-t", "cli/other"]).args(will), "victim-2", 1);
    victim.signal(libc::SIGINT);
    let (code, out, err) = victim.finish(WAIT);
    assert_eq!(code, 0, "SIGINT exit: stdout {out:?} stderr {err:?}");
    let (code, out, err) = watcher.finish(WAIT);
    assert_eq!(code, 27, "the watcher should time out: stderr {err}");
    assert_eq!(out, "", "no will after a clean disconnect");
}

#[test]
fn username_and_password_against_a_password_file() {
    if program("mosquitto_passwd").is_none() {
        println!("note: mosquitto_passwd not installed; skipping");
        return;
    }
    let b = TestBroker::start_with(|dir| {
        let file = dir.join("passwords");
        assert!(common::password_file(&file, &[("alice", "s3cret")]));
        format!("allow_anonymous false\npassword_file {}\n", file.display())
    });
    let creds = ["-u", "alice", "-P", "s3cret"];
    let sub = start_sub(
        &b,
        sub_cmd(&b, &["-t", "cli/auth", "-C", "1", "-v"]).args(creds),
        "auth-sub",
        1,
    );
    publish_ok(&b, &["-t", "cli/auth", "-m", "let in", "-u", "alice", "-P", "s3cret"]);
    let (code, out, err) = sub.finish(WAIT);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out, "cli/auth let in\n");

    // A wrong password: the same exit code as mosquitto_pub/mosquitto_sub (5, connection refused).
    let bad = ["-p", &b.port(), "-u", "alice", "-P", "wrong", "-t", "cli/auth"];
    let (expected_pub, expected_sub) = match (program("mosquitto_pub"), program("mosquitto_sub")) {
        (Some(p), Some(s)) => (
            run(Command::new(p).args(bad).args(["-m", "x"])).0,
            run(Command::new(s).args(bad)).0,
        ),
        _ => {
            println!("note: mosquitto_pub/sub not installed; using the documented exit code 5");
            (5, 5)
        }
    };
    let (code, _, err) = run(our_pub().args(bad).args(["-m", "x"]));
    assert_eq!(code, expected_pub, "stderr: {err}");
    assert!(err.contains("Connection error: Connection Refused"), "stderr: {err}");
    let (code, _, err) = run(our_sub().args(bad));
    assert_eq!(code, expected_sub, "stderr: {err}");
    assert!(err.contains("Connection error: Connection Refused"), "stderr: {err}");
}

#[test]
fn unix_socket_listener() {
    // mosquitto 2.0 listens on a unix socket with "listener 0 <path>".
    let b = TestBroker::start_with(|dir| format!("listener 0 {}\n", dir.join("mqtt.sock").display()));
    let sock = b.dir.join("mqtt.sock");
    let sock = sock.to_str().unwrap();
    let mut sub = our_sub();
    sub.args(["--unix", sock, "-t", "cli/unix", "-C", "1", "-v"]);
    let sub = start_sub(&b, &mut sub, "unix-sub", 1);
    let (code, out, err) = run(our_pub().args(["--unix", sock, "-t", "cli/unix", "-m", "over a socket"]));
    assert_eq!(code, 0, "stdout {out:?} stderr {err:?}");
    let (code, out, err) = sub.finish(WAIT);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out, "cli/unix over a socket\n");
}

#[test]
fn bad_usage_prints_usage_and_exits_like_mosquitto() {
    // (our tool, its args, the real tool) — each is a usage error for both.
    type Case = (fn() -> Command, &'static [&'static str], &'static str);
    let cases: [Case; 6] = [
        (our_sub, &[], "mosquitto_sub"),
        (our_sub, &["-t", "a", "-c"], "mosquitto_sub"),
        (our_sub, &["-t", "a", "-q", "3"], "mosquitto_sub"),
        (our_sub, &["-t", "a", "--bogus"], "mosquitto_sub"),
        (our_pub, &["-m", "no topic"], "mosquitto_pub"),
        (our_pub, &["-t", "a", "-m", "x", "-n"], "mosquitto_pub"),
    ];
    for (ours, args, real) in cases {
        let expected = match program(real) {
            Some(p) => run(Command::new(p).args(args)).0,
            None => 1,
        };
        let (code, out, err) = run(ours().args(args));
        assert_ne!(code, 0, "{args:?}");
        assert_eq!(code, expected, "{args:?}: stdout {out:?} stderr {err:?}");
        assert!(err.starts_with("Error: "), "{args:?}: stderr {err:?}");
    }
    // No -t: mosquitto_sub's message and pointer to --help.
    let (_, out, err) = run(&mut our_sub());
    assert_eq!(out, "");
    assert!(
        err.contains("Error: You must specify a topic to subscribe to."),
        "{err}"
    );
    assert!(err.contains("Use 'mqttc_sub --help' to see usage."), "{err}");
    // mosquitto_pub without a topic prints the whole usage on stdout.
    let (_, out, err) = run(our_pub().args(["-m", "x"]));
    assert!(err.contains("Error: Both topic and message must be supplied."), "{err}");
    assert!(out.contains("Usage: mqttc_pub"), "{out}");
    // --help prints the usage on stdout and, like mosquitto's tools, exits with 1.
    for tool in [our_pub, our_sub] {
        let (code, out, _) = run(tool().arg("--help"));
        assert_eq!(code, 1);
        assert!(out.contains("Usage: mqttc_"), "{out}");
    }
}

#[test]
fn unreachable_broker_exits_with_mosquittos_code() {
    let port = common::free_port().to_string();
    let expected = program("mosquitto_sub").map_or(1, |p| run(Command::new(p).args(["-p", &port, "-t", "a"])).0);
    let (code, _, err) = run(our_sub().args(["-h", "127.0.0.1", "-p", &port, "-t", "a"]));
    assert_eq!(code, expected, "stderr: {err}");
    assert!(err.contains("Connection refused"), "stderr: {err}");
    let (code, _, err) = run(our_pub().args(["-h", "127.0.0.1", "-p", &port, "-t", "a", "-m", "x"]));
    assert_eq!(code, expected, "stderr: {err}");
}

#[test]
fn d_logs_the_connection_on_stdout() {
    let b = TestBroker::start();
    let (code, out, err) = run(our_sub().args(["-h", "127.0.0.1", "-p", &b.port(), "-t", "cli/d", "-W", "1", "-d"]));
    assert_eq!(code, 27, "stderr: {err}");
    assert!(out.contains("connected to mqtt://127.0.0.1"), "stdout: {out}");
    assert!(out.contains("Subscribed"), "stdout: {out}");
    let (code, out, err) = run(our_pub().args(["-h", "127.0.0.1", "-p", &b.port(), "-t", "cli/d", "-m", "x", "-d"]));
    assert_eq!(code, 0, "stderr: {err}");
    assert!(out.contains("connected to mqtt://127.0.0.1"), "stdout: {out}");
    // Without -d nothing is logged.
    let (code, out, _) = run(our_pub().args(["-h", "127.0.0.1", "-p", &b.port(), "-t", "cli/d", "-m", "x"]));
    assert_eq!(code, 0);
    assert_eq!(out, "");
}

/// A TLS broker for the CLI tests: `require_client_cert` as mosquitto's `require_certificate`.
fn tls_broker(pki: &common::pki::Pki, require_client_cert: bool) -> TestBroker {
    TestBroker::start_with(|_| pki.mosquitto_tls(require_client_cert))
}

#[test]
fn l_mqtts_url_with_cafile_carries_user_host_port_and_topic() {
    let pki = common::pki::Pki::new();
    let b = tls_broker(&pki, false);
    let ca = pki.ca.to_str().unwrap();
    let url = format!("mqtts://alice:pw@localhost:{}/cli/tls", b.port());
    let sub = start_sub(
        &b,
        our_sub().args(["-L", &url, "--cafile", ca, "-C", "2", "-v"]),
        "tls-sub",
        1,
    );
    let (code, out, err) = run(our_pub().args(["-L", &url, "--cafile", ca, "-m", "ours"]));
    assert_eq!(code, 0, "stdout {out:?} stderr {err:?}");
    // The real tool with the same URL and CA, when installed; else ours again.
    let real = program("mosquitto_pub").map(Command::new);
    let (code, out, err) = run(real
        .unwrap_or_else(our_pub)
        .args(["-L", &url, "--cafile", ca, "-m", "second"]));
    assert_eq!(code, 0, "stdout {out:?} stderr {err:?}");
    let (code, out, err) = sub.finish(WAIT);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out, "cli/tls ours\ncli/tls second\n");
}

#[test]
fn cafile_with_h_and_p_speaks_tls_and_an_untrusted_ca_fails_with_the_reason() {
    let pki = common::pki::Pki::new();
    let b = tls_broker(&pki, false);
    let sub = start_sub(
        &b,
        our_sub()
            .args(["-h", "localhost", "-p", &b.port(), "--cafile", pki.ca.to_str().unwrap()])
            .args(["-t", "cli/tls/hp", "-C", "1"]),
        "tls-hp-sub",
        1,
    );
    let other = pki.other_ca.to_str().unwrap();
    let args = [
        "-h",
        "localhost",
        "-p",
        &b.port(),
        "-t",
        "cli/tls/hp",
        "-m",
        "insecure but through",
    ];
    let (code, _, err) = run(our_pub().args(args).args(["--cafile", other]));
    assert_eq!(code, 1, "stderr: {err}");
    assert!(err.contains("UnknownIssuer"), "stderr: {err}");
    let (code, out, err) = run(our_pub().args(args).args(["--cafile", other, "--insecure"]));
    assert_eq!(code, 0, "stdout {out:?} stderr {err:?}");
    let (code, out, err) = sub.finish(WAIT);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out, "insecure but through\n");
}

#[test]
fn cert_and_key_satisfy_a_broker_that_requires_client_certificates() {
    let pki = common::pki::Pki::new();
    let b = tls_broker(&pki, true);
    let url = format!("mqtts://localhost:{}/cli/tls/cert", b.port());
    let ca = pki.ca.to_str().unwrap();
    let (cert, key) = (pki.client_cert.to_str().unwrap(), pki.client_key.to_str().unwrap());
    let sub = start_sub(
        &b,
        our_sub().args(["-L", &url, "--cafile", ca, "--cert", cert, "--key", key, "-C", "1"]),
        "tls-cert-sub",
        1,
    );
    let (code, _, err) = run(our_pub().args(["-L", &url, "--cafile", ca, "-m", "no cert"]));
    assert_eq!(code, 1, "stderr: {err}");
    assert!(err.contains("client certificate"), "stderr: {err}");
    let (code, _, err) = run(our_pub().args(["-L", &url, "--cafile", ca, "--cert", cert, "-m", "x"]));
    assert_eq!(code, 1, "stderr: {err}");
    assert!(err.contains("Both certfile and keyfile"), "stderr: {err}");
    let (code, out, err) = run(our_pub().args([
        "-L",
        &url,
        "--cafile",
        ca,
        "--cert",
        cert,
        "--key",
        key,
        "-m",
        "with cert",
    ]));
    assert_eq!(code, 0, "stdout {out:?} stderr {err:?}");
    let (code, out, err) = sub.finish(WAIT);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out, "with cert\n");
}

/// --capath: a CA directory as OpenSSL's c_rehash makes it is read by mqttc_pub as by
/// mosquitto_pub; one without the broker's CA fails for both.
#[test]
fn capath_trusts_a_hashed_ca_directory_as_mosquitto_pub_does() {
    let pki = common::pki::Pki::new();
    let b = tls_broker(&pki, false);
    let good = common::pki::hashed_ca_dir("cli-capath", &pki.ca);
    let wrong = common::pki::hashed_ca_dir("cli-capath-wrong", &pki.other_ca);
    let (good, wrong) = (good.to_str().unwrap(), wrong.to_str().unwrap());
    let url = format!("mqtts://localhost:{}/cli/tls/capath", b.port());
    let sub = start_sub(
        &b,
        our_sub().args(["-L", &url, "--capath", good, "-C", "2"]),
        "capath-sub",
        1,
    );
    for (tool, message) in [
        (our_pub as fn() -> Command, "ours"),
        (|| Command::new(real("mosquitto_pub")), "theirs"),
    ] {
        let (code, _, err) = run(tool().args(["-L", &url, "--capath", wrong, "-m", "untrusted"]));
        assert_ne!(code, 0, "{message}: the wrong directory is trusted");
        println!("{message}, wrong --capath: {err}");
        let (code, out, err) = run(tool().args(["-L", &url, "--capath", good, "-m", message]));
        assert_eq!(code, 0, "{message}: stdout {out:?} stderr {err:?}");
    }
    let (code, out, err) = sub.finish(WAIT);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out, "ours\ntheirs\n");
    let (_, _, err) = run(our_pub().args(["-L", &url, "--capath", wrong, "-m", "x"]));
    assert!(err.contains("UnknownIssuer"), "{err}");
}

/// --tls-version is the lowest version allowed, as with mosquitto_pub: against a listener held to
/// TLS 1.3 both tools connect with tlsv1.2 and tlsv1.3 (over TLS 1.3, as -d shows); tlsv1.1,
/// which rustls lacks, is refused with the reason.
#[test]
fn tls_version_is_the_lowest_version_allowed_as_with_mosquitto_pub() {
    let pki = common::pki::Pki::new();
    let b = TestBroker::start_with(|_| format!("{}tls_version tlsv1.3\n", pki.mosquitto_tls(false)));
    let url = format!("mqtts://localhost:{}/cli/tls/version", b.port());
    let ca = pki.ca.to_str().unwrap();
    for version in ["tlsv1.2", "tlsv1.3"] {
        let args = ["-L", &url, "--cafile", ca, "--tls-version", version, "-m", "x"];
        let (code, out, err) = run(our_pub().args(args).arg("-d"));
        assert_eq!(code, 0, "{version}: stderr {err:?}");
        assert!(
            out.contains("TLS session: tlsv1.3, cipher suite TLS_"),
            "{version}: {out}"
        );
        let (code, _, err) = run(Command::new(real("mosquitto_pub")).args(args));
        assert_eq!(code, 0, "mosquitto_pub {version}: stderr {err:?}");
    }
    let (code, _, err) = run(our_pub().args(["-L", &url, "--cafile", ca, "--tls-version", "tlsv1.1", "-m", "x"]));
    assert_eq!(code, 1);
    assert!(
        err.contains("tls_version \"tlsv1.1\" is not supported") && err.contains("TLS 1.2 and 1.3 only"),
        "{err}"
    );
}

/// --ciphers are the suites offered: a listener with one TLS 1.3 suite takes a list that has it
/// and refuses one that does not; TLS 1.2 names leave TLS 1.3's suites alone, for mqttc_pub as for
/// mosquitto_pub; a name rustls lacks is refused with the list.
#[test]
fn ciphers_are_the_suites_offered() {
    let pki = common::pki::Pki::new();
    let b = TestBroker::start_with(|_| format!("{}ciphers_tls1.3 TLS_AES_128_GCM_SHA256\n", pki.mosquitto_tls(false)));
    let url = format!("mqtts://localhost:{}/cli/tls/ciphers", b.port());
    let ca = pki.ca.to_str().unwrap();
    let with = |ciphers: &str| ["-L", &url, "--cafile", ca, "--ciphers", ciphers, "-m", "x", "-d"].map(str::to_owned);
    let (code, out, err) = run(our_pub().args(with("TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256")));
    assert_eq!(code, 0, "stderr {err:?}");
    assert!(
        out.contains("TLS session: tlsv1.3, cipher suite TLS_AES_128_GCM_SHA256"),
        "{out}"
    );
    let (code, _, err) = run(our_pub().args(with("TLS_AES_256_GCM_SHA384")));
    assert_eq!(code, 1);
    assert!(err.contains("HandshakeFailure") && err.contains("tls_ciphers"), "{err}");
    let tls12 = with("ECDHE-ECDSA-AES256-GCM-SHA384");
    let (code, out, err) = run(our_pub().args(&tls12));
    assert_eq!(code, 0, "stderr {err:?}");
    assert!(out.contains("cipher suite TLS_AES_128_GCM_SHA256"), "{out}");
    let (code, _, err) = run(Command::new(real("mosquitto_pub")).args(&tls12[..8]));
    assert_eq!(code, 0, "mosquitto_pub: stderr {err:?}");
    let (code, _, err) = run(our_pub().args(with("HIGH:!aNULL")));
    assert_eq!(code, 1);
    assert!(
        err.contains("\"HIGH\"") && err.contains("ECDHE-RSA-AES128-GCM-SHA256"),
        "{err}"
    );
}

/// --proxy: mqttc_pub and mosquitto_pub publish through the same SOCKS5 proxy, logging in to it;
/// the broker sees both come from the proxy's address. A wrong password fails with the proxy's
/// refusal.
#[test]
fn proxy_carries_the_connection_as_with_mosquitto_pub() {
    let b = TestBroker::start_with(|_| "log_type notice\n".into());
    let login = Some(("bob", "pw"));
    let socks = common::socks::Socks::start(login);
    let sub = start_sub(&b, &mut sub_cmd(&b, &["-t", "cli/proxy", "-C", "2"]), "proxy-sub", 1);
    let url = socks.url(login);
    let port = b.port();
    let args =
        |message: &'static str| ["-h", "localhost", "-p", &port, "-t", "cli/proxy", "-m", message].map(str::to_owned);
    for (tool, message) in [
        (our_pub as fn() -> Command, "ours"),
        (|| Command::new(real("mosquitto_pub")), "theirs"),
    ] {
        let (code, out, err) = run(tool().args(args(message)).args(["--proxy", &url]));
        assert_eq!(code, 0, "{message}: stdout {out:?} stderr {err:?}");
    }
    let (code, out, err) = sub.finish(WAIT);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out, "ours\ntheirs\n");
    let log = std::fs::read_to_string(&b.log).unwrap();
    let source = format!("New connection from {}:", common::socks::PROXY_SOURCE);
    assert_eq!(log.matches(&source).count(), 2, "{log}");

    let (code, _, err) = run(our_pub()
        .args(args("x"))
        .args(["--proxy", &socks.url(Some(("bob", "nope")))]));
    assert_eq!(code, 1);
    assert!(err.contains("refused the username \"bob\""), "{err}");
}

#[test]
fn bad_l_urls_are_usage_errors() {
    for url in [
        "http://localhost/t",
        "mqtt://localhost",
        "mqtt://localhost:99999/t",
        "mqtt://localhost/",
    ] {
        let (code, _, err) = run(our_pub().args(["-L", url, "-m", "x"]));
        assert_eq!(code, 1, "{url}: stderr {err:?}");
        assert!(err.starts_with("Error: "), "{url}: stderr {err:?}");
    }
}

#[test]
fn l_ws_url_reaches_a_websocket_broker() {
    // amqtt: Debian's mosquitto has no WebSocket listener. A retained message, so the subscriber
    // needs no signal that it is subscribed.
    let broker = common::amqtt::Amqtt::start_ws(None);
    let url = format!("ws://127.0.0.1:{}/cli/ws", broker.port);
    let (code, out, err) = run(our_pub().args(["-L", &url, "-r", "-q", "1", "-m", "over WebSockets"]));
    assert_eq!(code, 0, "stdout {out:?} stderr {err:?}");
    let (code, out, err) = run(our_sub().args(["-L", &url, "--ws-path", "/mqtt", "-C", "1", "-v"]));
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out, "cli/ws over WebSockets\n");
}

/// `--store` (ours only): the publish goes through the library's message store, which the tool
/// creates under the directory and empties once the broker acknowledged; it needs a client id.
#[test]
fn store_keeps_messages_in_a_directory_until_acknowledged() {
    let b = TestBroker::start();
    let store = b.dir.join("store");
    let store_arg = store.display().to_string();
    let (code, _, err) = run(our_pub().args(["-p", &b.port(), "-t", "cli/store", "-m", "x", "--store", &store_arg]));
    assert_eq!(code, 1);
    assert!(err.contains("client id if you are using --store"), "{err}");

    let mut sub = sub_cmd(&b, &["-t", "cli/store", "-q", "2", "-C", "2"]);
    let sub = start_sub(&b, &mut sub, "store-sub", 1);
    for qos in ["1", "2"] {
        let args = [
            "-t",
            "cli/store",
            "-q",
            qos,
            "-m",
            qos,
            "-i",
            "store-pub",
            "--store",
            &store_arg,
        ];
        publish_ok(&b, &args);
    }
    let (code, out, err) = sub.finish(WAIT);
    assert_eq!((code, out.as_str()), (0, "1\n2\n"), "stderr: {err}");
    let client_dir = store.join("cstore-pub");
    let segments: Vec<_> = std::fs::read_dir(&client_dir)
        .unwrap_or_else(|e| panic!("{}: {e}", client_dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    assert_eq!(segments.len(), 1, "{segments:?}");
    // Both messages were acknowledged: the next run's opening compacts the log to nothing.
    publish_ok(
        &b,
        &[
            "-t",
            "cli/other",
            "-q",
            "0",
            "-m",
            "-",
            "-i",
            "store-pub",
            "--store",
            &store_arg,
        ],
    );
    let live: u64 = std::fs::read_dir(&client_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(live, 0, "nothing left stored");
}
