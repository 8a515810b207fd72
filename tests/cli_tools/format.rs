//! `mqttc_sub -F` (with `--pretty`, `-N` and `-v`) against mosquitto_sub: both subscribe to the
//! same broker, receive the same messages, and must print the same bytes, directive by directive.
//! What depends on the clock is compared by its shape.
use super::*;

/// How two outputs are compared: as they are, with the digits of `%j`'s "tst" made alike, or with
/// every digit made alike (for the time directives).
#[derive(Clone, Copy, Debug)]
enum Clock {
    Exact,
    TstMasked,
    DigitsMasked,
}

impl Clock {
    fn apply(self, mut out: Vec<u8>) -> Vec<u8> {
        match self {
            Clock::Exact => {}
            Clock::DigitsMasked => out.iter_mut().filter(|b| b.is_ascii_digit()).for_each(|b| *b = b'0'),
            Clock::TstMasked => {
                let key = b"\"tst\":";
                let mut i = 0;
                while let Some(at) = out[i..].windows(key.len()).position(|w| w == key) {
                    i += at + key.len();
                    // The value, after the tab of --pretty, up to its closing quote.
                    i += usize::from(out.get(i) == Some(&b'\t')) + 1;
                    while i < out.len() && out[i] != b'"' {
                        if out[i].is_ascii_digit() {
                            out[i] = b'0';
                        }
                        i += 1;
                    }
                }
            }
        }
        out
    }
}

/// How many messages `publish_messages` makes each subscriber receive.
const MESSAGES: usize = 7;

/// Publishes, with mosquitto_pub, the messages the subscribers print: a retained one first (before
/// they subscribe), then, once they are subscribed, one with every MQTT 5 property a PUBLISH may
/// carry, an empty one, JSON in many forms, JSON after a byte order mark on a long topic, text
/// that is not JSON, and bytes that are no text at all (last: QoS 2, which libmosquitto hands over
/// only on PUBREL, so that nothing overtakes it).
fn publish_messages(b: &TestBroker, subscribed: impl FnOnce()) {
    let publish = |args: &[&str]| real_pub(b, args);
    publish(&["-t", "cli/f/retained", "-r", "-q", "1", "-m", "kept"]);
    subscribed();
    let props = [
        ["content-type", "text/plain"].as_slice(),
        &["user-property", "k1", "v1"],
        &["correlation-data", "corr"],
        &["user-property", "k2", "v 2"],
        &["response-topic", "cli/f/reply"],
        &["message-expiry-interval", "3600"],
        &["payload-format-indicator", "1"],
    ];
    let mut args = vec!["-V", "5", "-t", "cli/f/props", "-q", "1", "-m", "hello world"];
    for p in props {
        args.push("-D");
        args.push("publish");
        args.extend_from_slice(p);
    }
    publish(&args);
    publish(&["-t", "cli/f/empty", "-n"]);
    let json = concat!(
        " \n{ \"a\" : [1, 2.50, -0.0, 1e400, 12345678901234567890, 0.1, 1E-7, 3.14159265358979323],\n",
        "\t\"s\": \"tab\\t \\u00e9 \\ud83d\\ude00 \\/ \\\"q\\\" \\\\ \\u0001\",",
        " \"e\": {}, \"l\": [], \"n\": null, \"t\": true, \"f\": false, \"d\": 1, \"d\": 2,",
        " \"deep\": [{\"x\": [{}, [[]]]}, {\"y\": {\"z\": \"\"}}] } \r\n"
    );
    publish(&["-t", "cli/f/json", "-q", "1", "-m", json]);
    publish(&["-t", "cli/f/a/rather/long/topic/name", "-m", "\u{feff} [1, 2] "]);
    publish(&["-t", "cli/f/text", "-m", "[1,2] trailing"]);
    let binary = b.dir.join("binary");
    std::fs::write(&binary, b"a\0b\"\\\n\t\x01\x7f\xff\xc3\xa9 end").unwrap();
    publish(&["-t", "cli/f/binary", "-q", "2", "-f", binary.to_str().unwrap()]);
}

/// Runs mqttc_sub and mosquitto_sub with each case's arguments on the same messages, and checks
/// that they print the same (as `clock` compares) and exit alike.
fn same_as_mosquitto_sub(cases: &[&[&str]], clock: Clock) {
    let b = TestBroker::start();
    let port = b.port();
    let count = MESSAGES.to_string();
    let common = ["-p", port.as_str(), "-t", "cli/f/#", "-C", count.as_str()];
    let mut running = Vec::new();
    publish_messages(&b, || {
        for (n, case) in cases.iter().enumerate() {
            let ours = start_sub(&b, our_sub().args(common).args(*case), &format!("ours-{n}"), 1);
            let mut theirs = Command::new(real("mosquitto_sub"));
            let theirs = start_sub(&b, theirs.args(common).args(*case), &format!("theirs-{n}"), 1);
            running.push((case, ours, theirs));
        }
    });
    for (case, ours, theirs) in running {
        let (code, out, err) = ours.finish_bytes(WAIT);
        let (real_code, real_out, real_err) = theirs.finish_bytes(WAIT);
        let show = |b: &[u8]| b.escape_ascii().to_string();
        assert_eq!(
            (code, real_code),
            (0, 0),
            "{case:?}: stderr {} / {}",
            show(&err),
            show(&real_err)
        );
        let (out, real_out) = (clock.apply(out), clock.apply(real_out));
        assert!(
            out == real_out,
            "{case:?} ({clock:?}):\n  ours:   {}\n  theirs: {}",
            show(&out),
            show(&real_out)
        );
        assert!(!out.is_empty(), "{case:?}");
        let real_err = String::from_utf8(real_err)
            .unwrap()
            .replace("mosquitto_sub", "mqttc_sub");
        assert_eq!(String::from_utf8(err).unwrap(), real_err, "{case:?}: stderr");
    }
}

#[test]
fn f_message_fields_and_escapes_match_mosquitto_sub() {
    same_as_mosquitto_sub(
        &[
            &["-F", "%t|%p|%l|%q|%r|%%|%m"],
            &["-F", "%q %r %t", "-q", "2"],
            &["-F", "%x|%X|%10x|%-10X|%3x|%010x"],
            &["-F", "%10p|%-10p|%010p|%3p|%-p|%-05p|%.2p"],
            &["-F", "%-40t|%40t|%.5t|%8.3t|%-8.3t|%05l|%-5l|%5q|%5m|%-5m|%05m|%5r"],
            &["-F", "\\t\\\\\\e\\a\\v\\r\\0|\\n@@%%"],
            &["-F", "%t:%p", "-N"],
            &["-F", "%t", "-v"],
            &["-F", "%m|%5m|%-5m|%05m|%q %t", "-q", "1"],
            &["-F", "%q %m", "-q", "2"],
        ],
        Clock::Exact,
    );
}

/// MQTT 5 properties as mosquitto_sub prints them; with MQTT 3.1.1 there are none, and the
/// directives print their blanks. %S stays blank although the library gives every MQTT 5
/// subscription an identifier (for its own routing): mosquitto_sub's subscription has none.
#[test]
fn f_mqtt5_properties_match_mosquitto_sub() {
    same_as_mosquitto_sub(
        &[
            &["-V", "5", "-F", "%C|%D|%E|%F|%P|%R|%S|%A"],
            &["-V", "5", "-F", "%6C|%-6C|%6.2C|%6R|%.2R|%010E|%-6F|%06S|%-6A|%3S"],
            &["-F", "%C|%D|%E|%F|%P|%R|%S|%A|%6C|%06E|%-4F|%3S|%6R"],
        ],
        Clock::Exact,
    );
}

/// %j (the payload as a JSON string) and %J (the payload is JSON, printed as cJSON prints what it
/// parsed; a payload that is not JSON is an error on stderr), minimised and with --pretty.
#[test]
fn f_json_matches_mosquitto_sub() {
    same_as_mosquitto_sub(
        &[
            &["-F", "%j"],
            &["-V", "5", "-F", "%j"],
            &["-F", "%J"],
            &["-V", "5", "-F", "%J|%t"],
            &["-F", "%j", "--pretty"],
            &["-V", "5", "-F", "%J", "--pretty", "-N"],
            &["-F", "%j", "-q", "1"],
            &["-V", "5", "-F", "%J|%m", "-q", "2", "--pretty"],
        ],
        Clock::TstMasked,
    );
}

#[test]
fn f_time_directives_have_mosquitto_subs_shape() {
    same_as_mosquitto_sub(
        &[&["-F", "%I|%-30I|%30.10I|%.4I|%U|@Y-@m-@dT@H:@M:@S.@N @z @s|@@|%l"]],
        Clock::DigitsMasked,
    );
}

/// A bad -F is refused before connecting, with mosquitto_sub's words and exit code.
#[test]
fn f_format_errors_match_mosquitto_sub() {
    let port = common::free_port().to_string();
    for format in [
        "%",
        "%-",
        "%0",
        "%5",
        "%.",
        "%5.",
        "%.5",
        "%-0-5t",
        "%z",
        "%e",
        "%.3.t",
        "@",
        "\\",
        "\\q",
        "ok %t %%%",
    ] {
        same_usage_error(our_sub, "mosquitto_sub", &["-p", &port, "-t", "t", "-F", format]);
    }
    same_usage_error(our_sub, "mosquitto_sub", &["-t", "t", "-F"]);
}
