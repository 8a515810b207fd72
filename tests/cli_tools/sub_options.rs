//! mqttc_sub's -T, -U, -E, --retained-only, --remove-retained, --retain-as-published, -R with
//! MQTT 5, overlapping filters and the will on SIGINT, each against mosquitto_sub doing the same.
use super::*;

/// Starts mqttc_sub and mosquitto_sub with the same arguments (client ids `ours-<tag>` and
/// `theirs-<tag>`); both have made `topics` subscriptions (and unsubscriptions) when this returns.
fn both_subs(b: &TestBroker, args: &[&str], tag: &str, topics: usize) -> (Background, Background) {
    let ours = start_sub(b, &mut sub_cmd(b, args), &format!("ours-{tag}"), topics);
    let mut theirs = Command::new(real("mosquitto_sub"));
    theirs.args(["-p", &b.port()]).args(args);
    let theirs = start_sub(b, &mut theirs, &format!("theirs-{tag}"), topics);
    (ours, theirs)
}

/// A tool, named: how to make its command.
type Tool = (&'static str, fn() -> Command);

/// mqttc_sub and mosquitto_sub, for tests that run one and then the other.
fn sub_tools() -> [Tool; 2] {
    [("ours", our_sub), ("theirs", || Command::new(real("mosquitto_sub")))]
}

/// Both end alike: the same exit code, output and errors (in each tool's name). Returns the exit
/// code and the output.
fn same_end(ours: Background, theirs: Background) -> (i32, String) {
    let (code, out, err) = ours.finish(WAIT);
    let (real_code, real_out, real_err) = theirs.finish(WAIT);
    let real_err = real_err.replace("mosquitto_sub", "mqttc_sub");
    assert_eq!(
        (code, &out, &err),
        (real_code, &real_out, &real_err),
        "ours, then mosquitto_sub's"
    );
    (code, out)
}

#[test]
fn t_filters_topics_out_as_mosquitto_sub_does() {
    let b = TestBroker::start();
    let args = [
        "-t",
        "cli/t/#",
        "-T",
        "cli/t/skip/#",
        "-T",
        "cli/t/+/x",
        "-v",
        "-C",
        "3",
    ];
    let (ours, theirs) = both_subs(&b, &args, "t", 1);
    for topic in [
        "cli/t/a",
        "cli/t/skip/1",
        "cli/t/b/x",
        "cli/t/skip",
        "cli/t/c",
        "cli/t/d",
    ] {
        real_pub(&b, &["-t", topic, "-m", "m"]);
    }
    let (code, out) = same_end(ours, theirs);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(!out.contains("skip") && !out.contains("/x"), "{out}");
}

/// -U removes a filter after the SUBSCRIBE: one of the same run's -t filters, or one a persistent
/// session kept from an earlier run (with -E, which leaves once subscribed).
#[test]
fn u_unsubscribes_after_subscribing_as_mosquitto_sub_does() {
    let b = TestBroker::start();
    let args = ["-t", "cli/u/a", "-t", "cli/u/b", "-U", "cli/u/a", "-v", "-C", "1"];
    let (ours, theirs) = both_subs(&b, &args, "u", 3);
    real_pub(&b, &["-t", "cli/u/a", "-m", "unsubscribed"]);
    real_pub(&b, &["-t", "cli/u/b", "-m", "subscribed"]);
    let (code, out) = same_end(ours, theirs);
    assert_eq!((code, out.as_str()), (0, "cli/u/b subscribed\n"));

    // A session's subscription, made by one run and removed by the next.
    let mut ends = Vec::new();
    for (tag, tool) in sub_tools() {
        let session = |args: &[&str]| {
            let id = format!("session-{tag}");
            let mut cmd = tool();
            cmd.args(["-p", &b.port(), "-c", "-i", &id, "-q", "1", "-v"]).args(args);
            let (code, out, err) = run(&mut cmd);
            (code, out, err.replace("mosquitto_sub", "mqttc_sub"))
        };
        let subscribed = session(&["-t", "cli/u/session", "-E"]);
        let unsubscribed = session(&["-t", "cli/u/other", "-U", "cli/u/session", "-E"]);
        real_pub(&b, &["-t", "cli/u/session", "-q", "1", "-m", "not queued"]);
        let later = session(&["-t", "cli/u/other", "-W", "1"]);
        ends.push((subscribed, unsubscribed, later));
    }
    assert_eq!(ends[0], ends[1], "ours, then mosquitto_sub's");
    assert_eq!(ends[0].2.0, 27, "nothing was queued: {:?}", ends[0]);
}

/// -E leaves once the SUBACK came, and the session keeps the subscription: what is published
/// meanwhile is there for the next run.
#[test]
fn e_exits_once_subscribed_as_mosquitto_sub_does() {
    let b = TestBroker::start();
    let mut ends = Vec::new();
    for (tag, tool) in sub_tools() {
        let id = format!("e-{tag}");
        let session = |args: &[&str]| {
            let mut cmd = tool();
            run(cmd
                .args(["-p", &b.port(), "-c", "-i", &id, "-q", "1", "-t", "cli/e", "-v"])
                .args(args))
        };
        let first = session(&["-E"]);
        real_pub(&b, &["-t", "cli/e", "-q", "1", "-m", "queued"]);
        let (code, out, _) = session(&["-C", "1", "-W", "5"]);
        ends.push((first, code, out));
    }
    assert_eq!(ends[0], ends[1], "ours, then mosquitto_sub's");
    assert_eq!(ends[0].0, (0, String::new(), String::new()));
    assert_eq!((ends[0].1, ends[0].2.as_str()), (0, "cli/e queued\n"));
}

#[test]
fn retained_only_prints_retained_messages_and_ends_at_the_first_live_one() {
    let b = TestBroker::start();
    real_pub(&b, &["-t", "cli/ro/1", "-r", "-m", "one"]);
    real_pub(&b, &["-t", "cli/ro/2", "-r", "-m", "two"]);
    let (ours, theirs) = both_subs(&b, &["-t", "cli/ro/#", "--retained-only", "-v", "-W", "10"], "ro", 1);
    real_pub(&b, &["-t", "cli/ro/3", "-m", "live"]);
    let (code, out) = same_end(ours, theirs);
    assert_eq!(code, 0);
    assert!(out.contains("cli/ro/1 one") && !out.contains("live"), "{out}");
}

/// --remove-retained clears each retained message it prints (-T spares one). mosquitto_sub 2.0
/// does not end at -C once it cleared something (it waits for a PUBACK it never looks for), so
/// both run until -W; mqttc_sub also ends at -C, after the broker acknowledged the clearing.
#[test]
fn remove_retained_clears_the_retained_messages_it_prints() {
    let b = TestBroker::start();
    let retained_left =
        || run(Command::new(real("mosquitto_sub")).args(["-p", &b.port(), "-t", "cli/rm/#", "-v", "-W", "1"]));
    let args = [
        "-p",
        &b.port(),
        "-t",
        "cli/rm/#",
        "--remove-retained",
        "-T",
        "cli/rm/keep",
        "-v",
    ];
    let mut ends = Vec::new();
    for (_, tool) in sub_tools() {
        real_pub(&b, &["-t", "cli/rm/a", "-r", "-m", "A"]);
        real_pub(&b, &["-t", "cli/rm/keep", "-r", "-m", "K"]);
        let (code, out, err) = run(tool().args(args).args(["-W", "1"]));
        ends.push((code, out, err, retained_left()));
    }
    assert_eq!(ends[0], ends[1], "ours, then mosquitto_sub's");
    // The clearing message comes back (unretained): "cli/rm/a (null)".
    assert!(ends[0].1.starts_with("cli/rm/a A\n"), "{:?}", ends[0]);
    assert_eq!(ends[0].3.1, "cli/rm/keep K\n", "only the filtered-out one is left");

    real_pub(&b, &["-t", "cli/rm/a", "-r", "-m", "A"]);
    let (code, out, err) = run(our_sub().args(args).args(["-C", "1"]));
    assert_eq!((code, out.as_str()), (0, "cli/rm/a A\n"), "{err}");
    assert_eq!(retained_left().1, "cli/rm/keep K\n");
}

/// With MQTT 5, -R asks the broker for no retained messages, and --retain-as-published keeps the
/// retain flag of live messages (%r), which the broker clears otherwise. Both together print
/// nothing: the live message keeps its flag, and -R skips it.
#[test]
fn mqtt5_subscription_options_work_as_with_mosquitto_sub() {
    let b = TestBroker::start();
    real_pub(&b, &["-t", "cli/so", "-r", "-m", "stale"]);
    // The extra arguments, what they should print, and a check that they did.
    type Case = (&'static [&'static str], &'static str, fn(&str) -> bool);
    let cases: [Case; 3] = [
        (
            &["-R", "-C", "1"],
            "no retained message, the live one unflagged",
            |out| out == "0 cli/so live\n",
        ),
        (&["--retain-as-published", "-C", "2"], "the live one flagged", |out| {
            out.ends_with("\n1 cli/so live\n")
        }),
        (&["-R", "--retain-as-published", "-W", "2"], "nothing", str::is_empty),
    ];
    for (n, (extra, what, expected)) in cases.into_iter().enumerate() {
        let mut args = vec!["-V", "5", "-t", "cli/so", "-F", "%r %t %p"];
        args.extend_from_slice(extra);
        let (ours, theirs) = both_subs(&b, &args, &n.to_string(), 1);
        real_pub(&b, &["-t", "cli/so", "-r", "-m", "live"]);
        let (_, out) = same_end(ours, theirs);
        assert!(expected(&out), "{extra:?} should print {what}: {out:?}");
    }
}

/// Overlapping filters: the broker sends a message once (MQTT 3.1.1) or once per matching filter
/// (MQTT 5), and each copy is printed once, as mosquitto_sub prints it.
#[test]
fn overlapping_filters_print_what_mosquitto_sub_prints() {
    let b = TestBroker::start();
    for version in ["311", "5"] {
        let args = [
            "-V", version, "-t", "cli/o/#", "-t", "cli/o/a", "-t", "cli/o/+", "-t", "cli/o/a", "-v", "-W", "2",
        ];
        let (ours, theirs) = both_subs(&b, &args, version, 4);
        real_pub(&b, &["-t", "cli/o/a", "-m", "one"]);
        real_pub(&b, &["-t", "cli/o/b/c", "-m", "two"]);
        let (code, out) = same_end(ours, theirs);
        assert_eq!(code, 27);
        assert!(
            out.contains("cli/o/a one\n") && out.contains("cli/o/b/c two\n"),
            "{out}"
        );
    }
}

/// mosquitto_sub ends on SIGINT with DISCONNECT reason "with will" (MQTT 5): the broker publishes
/// the will. (With MQTT 3.1.1 a DISCONNECT has no reason, and there is no will: see
/// will_is_published_after_sigkill_but_not_after_sigint.)
#[test]
fn sigint_with_mqtt5_has_the_will_published_as_with_mosquitto_sub() {
    let b = TestBroker::start();
    let mut ends = Vec::new();
    for (tag, tool) in sub_tools() {
        let mut watch = sub_cmd(&b, &["-t", "cli/will5", "-C", "1", "-v", "-W", "10"]);
        let watcher = start_sub(&b, &mut watch, &format!("watch-{tag}"), 1);
        let mut victim = tool();
        victim.args([
            "-p",
            &b.port(),
            "-V",
            "5",
            "-t",
            "cli/other",
            "--will-topic",
            "cli/will5",
        ]);
        let victim = start_sub(&b, victim.args(["--will-payload", "gone"]), &format!("victim-{tag}"), 1);
        victim.signal(libc::SIGINT);
        let (code, out, err) = victim.finish(WAIT);
        ends.push(((code, out, err), watcher.finish(WAIT)));
    }
    assert_eq!(ends[0], ends[1], "ours, then mosquitto_sub's");
    assert_eq!(ends[0].1.0, 0, "the will came: {:?}", ends[0]);
}

#[test]
fn bad_sub_options_are_refused_as_by_mosquitto_sub() {
    for args in [
        &["-t", "a", "-T", "a/#/b"][..],
        &["-t", "a", "-U", "a+"],
        &["-t", "a", "-T"],
        &["-t", "a", "-U"],
        &["-t", "a", "-R", "--retained-only"],
    ] {
        same_usage_error(our_sub, "mosquitto_sub", args);
    }
}
