//! c_examples/mqttc_rr.c against mosquitto_rr: the same request to the same responder, the same
//! response printed, the same exit codes and errors.
use super::*;

fn our_rr() -> Command {
    Command::new(&cli_tools().2)
}

/// A responder made of mosquitto's own tools: mosquitto_sub prints each request's response topic,
/// correlation data and payload, and mosquitto_pub answers on that topic with "re: <payload>" and
/// the same correlation data. Killed when dropped.
struct Responder {
    child: Child,
    answering: Option<JoinHandle<()>>,
}

impl Responder {
    fn start(b: &TestBroker, requests: &str) -> Responder {
        let mut child = Command::new(real("mosquitto_sub"))
            .args(["-p", &b.port(), "-V", "5", "-i", "responder", "-t", requests])
            .args(["-F", "%R\t%D\t%p"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn mosquitto_sub");
        let lines = common::line_reader(child.stdout.take().unwrap());
        let port = b.port();
        let answering = std::thread::spawn(move || {
            for line in lines {
                let mut fields = line.splitn(3, '\t');
                let (topic, correlation, payload) = (
                    fields.next().unwrap(),
                    fields.next().unwrap_or(""),
                    fields.next().unwrap_or(""),
                );
                let mut answer = Command::new(real("mosquitto_pub"));
                answer.args(["-p", &port, "-V", "5", "-t", topic, "-m", &format!("re: {payload}")]);
                if !correlation.is_empty() {
                    answer.args(["-D", "publish", "correlation-data", correlation]);
                }
                let (code, _, err) = run(&mut answer);
                assert_eq!(code, 0, "the responder's mosquitto_pub: {err}");
            }
        });
        b.wait_subscribed("responder", 1);
        Responder {
            child,
            answering: Some(answering),
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(t) = self.answering.take() {
            let _ = t.join();
        }
    }
}

/// Runs mqttc_rr and mosquitto_rr with the same arguments, one after the other, and checks that
/// they end alike: exit code, output, errors (in each tool's name). Returns ours.
fn same_as_mosquitto_rr(b: &TestBroker, args: &[&str]) -> (i32, String, String) {
    let ours = run(our_rr().args(["-p", &b.port()]).args(args));
    let (code, out, err) = run(Command::new(real("mosquitto_rr")).args(["-p", &b.port()]).args(args));
    let theirs = (code, out, err.replace("mosquitto_rr", "mqttc_rr"));
    assert_eq!(ours, theirs, "{args:?}: ours, then mosquitto_rr's");
    ours
}

#[test]
fn rr_prints_the_response_as_mosquitto_rr_does() {
    let b = TestBroker::start();
    let _responder = Responder::start(&b, "cli/rr/req");
    let request = ["-t", "cli/rr/req", "-e", "cli/rr/resp", "-m", "question"];
    for output in [
        &[][..],
        &["-v"],
        &["-N"],
        &["-F", "%t|%p|%l|%D|%C|%R"],
        &["-F", "%D:%p", "-D", "publish", "correlation-data", "c0rr"],
        &["-F", "%p", "-q", "1", "-D", "publish", "user-property", "k", "v"],
    ] {
        let (code, out, _) = same_as_mosquitto_rr(&b, &[&request[..], output].concat());
        assert_eq!(code, 0, "{output:?}");
        assert!(out.contains("re: question"), "{output:?}: {out}");
    }
}

/// -n sends an empty request, as mosquitto_rr does; -f and -s send the file or standard input,
/// as mqttc_pub does (mosquitto_rr 2.0 takes them but never reads them: it sends an empty payload).
#[test]
fn rr_sends_nothing_a_file_or_stdin() {
    let b = TestBroker::start();
    let _responder = Responder::start(&b, "cli/rr/req");
    let request = ["-t", "cli/rr/req", "-e", "cli/rr/resp", "-v"];
    let (code, out, _) = same_as_mosquitto_rr(&b, &[&request[..], &["-n"]].concat());
    assert_eq!((code, out.as_str()), (0, "cli/rr/resp re: \n"));
    let file = b.dir.join("request");
    std::fs::write(&file, "from a file").unwrap();
    let (code, out, err) = run(our_rr()
        .args(["-p", &b.port()])
        .args(request)
        .args(["-f", file.to_str().unwrap()]));
    assert_eq!((code, out.as_str()), (0, "cli/rr/resp re: from a file\n"), "{err}");
    let (code, out, err) = run_with_stdin(
        our_rr().args(["-p", &b.port()]).args(request).arg("-s"),
        b"typed",
        &b.dir,
    );
    assert_eq!((code, out.as_str()), (0, "cli/rr/resp re: typed\n"), "{err}");
}

#[test]
fn rr_times_out_without_a_response_as_mosquitto_rr_does() {
    let b = TestBroker::start();
    let (code, out, err) =
        same_as_mosquitto_rr(&b, &["-t", "cli/rr/nobody", "-e", "cli/rr/resp", "-m", "?", "-W", "1"]);
    assert_eq!((code, out.as_str(), err.as_str()), (27, "", "Timed out\n"));
}

/// A retained message on the response topic is printed as the response, by both; with -R, mqttc_rr
/// waits for the real one (mosquitto_rr 2.0 takes -R but does not honour it).
#[test]
fn rr_takes_a_retained_message_as_the_response_unless_r() {
    let b = TestBroker::start();
    real_pub(&b, &["-t", "cli/rr/resp", "-r", "-m", "stale"]);
    let request = [
        "-t",
        "cli/rr/req",
        "-e",
        "cli/rr/resp",
        "-m",
        "question",
        "-v",
        "-W",
        "5",
    ];
    let (code, out, _) = same_as_mosquitto_rr(&b, &request);
    assert_eq!((code, out.as_str()), (0, "cli/rr/resp stale\n"));
    let _responder = Responder::start(&b, "cli/rr/req");
    let (code, out, err) = run(our_rr().args(["-p", &b.port()]).args(request).arg("-R"));
    assert_eq!((code, out.as_str()), (0, "cli/rr/resp re: question\n"), "{err}");
}

#[test]
fn rr_usage_errors_match_mosquitto_rr() {
    for args in [
        &["-t", "a", "-m", "x"][..],
        &["-e", "b", "-m", "x"],
        &["-t", "a", "-e", "b"],
        &["-t", "a", "-e", "b/#", "-m", "x"],
        &["-t", "a", "-e"],
        &["-t", "a", "-e", "b", "-m", "x", "-D", "publish", "response-topic", "c"],
        &["-t", "a", "-e", "b", "-m", "x", "-l"],
        &["-t", "a", "-e", "b", "-m", "x", "-F", "%z"],
    ] {
        same_usage_error(our_rr, "mosquitto_rr", args);
    }
}
