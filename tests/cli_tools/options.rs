//! The options mqttc_pub and mqttc_sub share with mosquitto's tools beyond the basics: -D (MQTT 5
//! properties of every packet), -x, -A, -M, --quiet, --repeat, and those the library cannot
//! honour, which are refused. What goes on the wire is compared with what mosquitto_pub and
//! mosquitto_sub send a fake broker (tests/common/fake.rs) for the same arguments.
use super::*;

use common::fake::FakeBroker;
use mqttclient::codec::{Ack, Packet, Properties, PropertyId, QoS, ReasonCode, SubAck};

/// What a tool sent a fake broker over its one connection, answering what needs an answer, until
/// its DISCONNECT (or it went away): the packets, the address it came from, and how it ended.
struct Session {
    packets: Vec<Packet>,
    peer: std::net::IpAddr,
    end: (i32, String, String),
}

fn session(cmd: &mut Command) -> Session {
    let broker = FakeBroker::new();
    let port = broker.port().to_string();
    let script = broker.spawn(|b| {
        let mut conn = b.accept();
        conn.set_auto_pingresp(true);
        let peer = conn.peer().ip();
        let mut packets = vec![Packet::Connect(conn.accept_connect())];
        while let Some(r) = conn.next_within(WAIT) {
            match &r.packet {
                Packet::Subscribe(s) => {
                    let codes = s.filters.iter().map(|(_, o)| ReasonCode(o.qos as u8)).collect();
                    conn.send(Packet::SubAck(SubAck::new(s.pkid, codes)));
                }
                Packet::Unsubscribe(u) => {
                    let codes = vec![ReasonCode::SUCCESS; u.filters.len()];
                    conn.send(Packet::UnsubAck(SubAck::new(u.pkid, codes)));
                }
                Packet::Publish(p) if p.qos == QoS::AtLeastOnce => conn.send(Packet::PubAck(Ack::new(p.pkid))),
                _ => {}
            }
            let last = matches!(r.packet, Packet::Disconnect(_));
            packets.push(r.packet);
            if last {
                break;
            }
        }
        (packets, peer)
    });
    let end = run(cmd.args(["-h", "127.0.0.1", "-p", &port]));
    let (packets, peer) = script.join().expect("the fake broker's script");
    Session { packets, peer, end }
}

/// Properties the library sets on its own (its defaults, and the subscription identifier it
/// routes with): in ours, they count only where mosquitto's tool sent the same property too.
const LIBRARY_OWN: [PropertyId; 3] = [
    PropertyId::SubscriptionIdentifier,
    PropertyId::TopicAliasMaximum,
    PropertyId::MaximumPacketSize,
];

/// A property list to compare: each property as text, ordered by identifier (the order of
/// different properties means nothing; user properties keep theirs), ours without the library's
/// own unless `theirs` has that property.
fn shown(props: &Properties, theirs: Option<&Properties>) -> Vec<String> {
    let mut kept: Vec<_> = props
        .iter()
        .filter(|p| theirs.is_none_or(|t| !LIBRARY_OWN.contains(&p.id()) || t.get(p.id()).is_some()))
        .collect();
    kept.sort_by_key(|p| p.id() as u8);
    kept.iter().map(|p| format!("{:?}={:?}", p.id(), p.value())).collect()
}

/// A packet, as much of it as the two tools must agree on: its kind, what it carries and its
/// properties (not packet ids, which each tool numbers its own way).
fn described(packet: &Packet, theirs: Option<&Packet>) -> String {
    let props = |p: &Properties, t: Option<&Properties>| shown(p, t).join(", ");
    match (packet, theirs) {
        (Packet::Connect(c), t) => {
            let t = match t {
                Some(Packet::Connect(t)) => Some(t),
                _ => None,
            };
            let will = c.will.as_ref().map(|w| {
                let tw = t.and_then(|t| t.will.as_ref()).map(|w| &w.properties);
                format!(
                    "will {} {:?} [{}]",
                    w.topic.as_str(),
                    w.payload,
                    props(&w.properties, tw)
                )
            });
            format!(
                "CONNECT clean={} keepalive={} [{}] {will:?}",
                c.clean_session,
                c.keep_alive,
                props(&c.properties, t.map(|t| &t.properties))
            )
        }
        (Packet::Publish(p), t) => {
            let t = match t {
                Some(Packet::Publish(t)) => Some(&t.properties),
                _ => None,
            };
            let (topic, qos) = (p.topic.as_str(), p.qos as u8);
            format!(
                "PUBLISH {topic} q{qos} r{} {:?} [{}]",
                p.retain,
                p.payload,
                props(&p.properties, t)
            )
        }
        (Packet::Subscribe(s), t) => {
            let t = match t {
                Some(Packet::Subscribe(t)) => Some(&t.properties),
                _ => None,
            };
            let filters: Vec<_> = s.filters.iter().map(|(f, o)| format!("{} {o:?}", f.as_str())).collect();
            format!("SUBSCRIBE {filters:?} [{}]", props(&s.properties, t))
        }
        (Packet::Unsubscribe(u), t) => {
            let t = match t {
                Some(Packet::Unsubscribe(t)) => Some(&t.properties),
                _ => None,
            };
            let filters: Vec<_> = u.filters.iter().map(|f| f.as_str()).collect();
            format!("UNSUBSCRIBE {filters:?} [{}]", props(&u.properties, t))
        }
        (Packet::Disconnect(d), t) => {
            let t = match t {
                Some(Packet::Disconnect(t)) => Some(&t.properties),
                _ => None,
            };
            format!("DISCONNECT {:?} [{}]", d.reason, props(&d.properties, t))
        }
        (p, _) => format!("{p:?}"),
    }
}

/// Runs `ours` and `theirs` against fake brokers and checks that they sent the same packets (as
/// `described` compares them) and ended alike. Returns our session.
fn same_packets(ours: &mut Command, theirs: &mut Command) -> Session {
    let ours = session(ours);
    let theirs = session(theirs);
    let real: Vec<String> = theirs.packets.iter().map(|p| described(p, None)).collect();
    let mine: Vec<String> = ours
        .packets
        .iter()
        .enumerate()
        .map(|(i, p)| described(p, theirs.packets.get(i)))
        .collect();
    assert_eq!(mine, real, "ours, then mosquitto's");
    assert_eq!(
        ours.end.0, theirs.end.0,
        "exit codes; ours {:?}, theirs {:?}",
        ours.end, theirs.end
    );
    ours
}

#[test]
fn d_puts_properties_in_every_packet_as_mosquitto_pub_does() {
    let args = [
        "-t",
        "cli/d",
        "-m",
        "with properties",
        "-q",
        "1",
        "--will-topic",
        "cli/d/will",
        "--will-payload",
        "gone",
        "-D",
        "connect",
        "user-property",
        "who",
        "pub",
        "-D",
        "connect",
        "receive-maximum",
        "7",
        "-D",
        "connect",
        "request-response-information",
        "1",
        "-D",
        "connect",
        "maximum-packet-size",
        "10000",
        "-D",
        "will",
        "will-delay-interval",
        "30",
        "-D",
        "will",
        "content-type",
        "text/plain",
        "-D",
        "will",
        "user-property",
        "last",
        "words",
        "-D",
        "publish",
        "content-type",
        "application/json",
        "-D",
        "publish",
        "correlation-data",
        "c0rr",
        "-D",
        "publish",
        "response-topic",
        "cli/d/reply",
        "-D",
        "publish",
        "message-expiry-interval",
        "60",
        "-D",
        "publish",
        "payload-format-indicator",
        "1",
        "-D",
        "publish",
        "user-property",
        "a",
        "1",
        "-D",
        "publish",
        "user-property",
        "a",
        "2",
        "-D",
        "disconnect",
        "reason-string",
        "done",
        "-D",
        "disconnect",
        "user-property",
        "bye",
        "now",
    ];
    let ours = same_packets(our_pub().args(args), Command::new(real("mosquitto_pub")).args(args));
    assert_eq!(ours.end.0, 0, "{:?}", ours.end);
    assert!(
        matches!(&ours.packets[1], Packet::Publish(p) if p.properties.len() == 7),
        "{:?}",
        ours.packets
    );
}

/// (-W rather than -E ends the run: with -E, mosquitto_sub may close the connection before the
/// fake broker's UNSUBACK, whose write then resets it and loses the DISCONNECT.)
#[test]
fn d_puts_properties_in_subscribe_unsubscribe_and_disconnect_as_mosquitto_sub_does() {
    let args = [
        "-t",
        "cli/d/a",
        "-t",
        "cli/d/b",
        "-U",
        "cli/d/old",
        "-W",
        "1",
        "-D",
        "subscribe",
        "user-property",
        "s",
        "1",
        "-D",
        "unsubscribe",
        "user-property",
        "u",
        "2",
        "-D",
        "disconnect",
        "user-property",
        "d",
        "3",
    ];
    let ours = same_packets(our_sub().args(args), Command::new(real("mosquitto_sub")).args(args));
    assert_eq!(ours.end.0, 27, "{:?}", ours.end);
    assert_eq!(ours.packets.len(), 4, "{:?}", ours.packets);
    let goodbye = described(&ours.packets[3], None);
    assert!(
        goodbye.starts_with("DISCONNECT") && goodbye.contains(r#"UserProperty=Pair("d", "3")"#),
        "{goodbye}"
    );
}

/// -x is CONNECT's session expiry; with MQTT 5, -c alone asks for one that never ends; with
/// MQTT 3.1.1 -x has no effect (mosquitto's tools ignore it too).
#[test]
fn x_sets_the_session_expiry_as_mosquitto_sub_does() {
    for args in [
        &["-V", "5", "-x", "120"][..],
        &["-V", "5", "-x", "-1", "-i", "x-id"],
        &["-V", "5", "-c", "-i", "x-id"],
        &["-V", "5", "-c", "-x", "0", "-i", "x-id"],
        &["-V", "311", "-x", "120"],
    ] {
        let common = ["-t", "cli/x", "-E"];
        let ours = same_packets(
            our_sub().args(common).args(args),
            Command::new(real("mosquitto_sub")).args(common).args(args),
        );
        assert_eq!(ours.end.0, 0, "{args:?}: {:?}", ours.end);
    }
}

/// -A makes the connection from that address; 127.0.0.2 is on the loopback interface too.
#[test]
fn a_binds_the_connection_to_the_address_as_mosquitto_pub_does() {
    let args = ["-A", "127.0.0.2", "-t", "cli/a", "-m", "from 127.0.0.2"];
    for mut cmd in [our_pub(), Command::new(real("mosquitto_pub"))] {
        let s = session(cmd.args(args));
        assert_eq!(
            (s.end.0, s.peer.to_string()),
            (0, "127.0.0.2".to_string()),
            "{:?}",
            s.end
        );
    }
}

/// -M 1: one QoS 1 message in flight at a time, the next only after the PUBACK. The fake broker
/// holds back the first PUBACK and watches for a second PUBLISH meanwhile.
#[test]
fn m_bounds_the_messages_in_flight_as_mosquitto_pub_does() {
    let in_flight = |mut cmd: Command, max: &str| {
        let broker = FakeBroker::new();
        let port = broker.port().to_string();
        let script = broker.spawn(|b| {
            let mut conn = b.accept();
            conn.accept_connect();
            let first = conn.expect_publish();
            // What comes before the first PUBACK.
            let early = conn.next_within(Duration::from_millis(500)).map(|r| r.packet);
            conn.send(Packet::PubAck(Ack::new(first.pkid)));
            if let Some(Packet::Publish(p)) = &early {
                conn.send(Packet::PubAck(Ack::new(p.pkid)));
            }
            while let Some(r) = conn.next_within(WAIT) {
                match r.packet {
                    Packet::Publish(p) => conn.send(Packet::PubAck(Ack::new(p.pkid))),
                    Packet::Disconnect(_) => break,
                    _ => {}
                }
            }
            early.is_some()
        });
        cmd.args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-t",
            "cli/m",
            "-q",
            "1",
            "-l",
            "-M",
            max,
        ]);
        let (code, _, err) = run_with_stdin(&mut cmd, b"one\ntwo\nthree\n", &common::temp_dir("m"));
        assert_eq!(code, 0, "{err}");
        script.join().unwrap()
    };
    for (max, second_early) in [("1", false), ("2", true)] {
        let ours = in_flight(our_pub(), max);
        let theirs = in_flight(Command::new(real("mosquitto_pub")), max);
        assert_eq!(
            (ours, theirs),
            (second_early, second_early),
            "-M {max}: a second PUBLISH before the PUBACK"
        );
    }
}

/// --quiet: nothing on stderr for what goes wrong after the options were read, as with
/// mosquitto's tools (the exit codes stay).
#[test]
fn quiet_silences_errors_as_mosquittos_tools_do() {
    let b = TestBroker::start();
    let gone = common::free_port().to_string();
    let port = b.port();
    // Our tool, the real one, and their arguments.
    type Case<'a> = (fn() -> Command, &'a str, Vec<&'a str>);
    let cases: [Case; 3] = [
        (our_sub, "mosquitto_sub", vec!["-p", &gone, "-t", "t", "--quiet"]),
        (
            our_pub,
            "mosquitto_pub",
            vec!["-p", &gone, "-t", "t", "-m", "x", "--quiet"],
        ),
        (
            our_sub,
            "mosquitto_sub",
            vec!["-p", &port, "-t", "t", "-W", "1", "--quiet"],
        ),
    ];
    for (ours, theirs, args) in cases {
        let (code, out, err) = run(ours().args(&args));
        let (real_code, real_out, real_err) = run(Command::new(real(theirs)).args(&args));
        assert_eq!((code, out, err), (real_code, real_out, real_err), "{args:?}");
    }
}

/// --repeat N publishes the message N times, --repeat-delay seconds apart.
#[test]
fn repeat_publishes_again_after_the_delay_as_mosquitto_pub_does() {
    let b = TestBroker::start();
    let mut outs = Vec::new();
    for (n, mut publisher) in [our_pub(), Command::new(real("mosquitto_pub"))].into_iter().enumerate() {
        let id = format!("repeat-{n}");
        let sub = start_sub(&b, &mut sub_cmd(&b, &["-t", "cli/rep", "-C", "3", "-v"]), &id, 1);
        let start = Instant::now();
        let args = ["-p", &b.port(), "-t", "cli/rep", "-m", "again", "-q", "1"];
        let (code, _, err) = run(publisher.args(args).args(["--repeat", "3", "--repeat-delay", "0.3"]));
        let elapsed = start.elapsed();
        assert_eq!(code, 0, "{err}");
        assert!(elapsed >= Duration::from_millis(600), "{elapsed:?}");
        outs.push(sub.finish(WAIT));
    }
    assert_eq!(outs[0], outs[1], "ours, then mosquitto_pub's");
    assert_eq!(outs[0].1.lines().count(), 3);
}

/// The options of mosquitto's tools that the library cannot honour are refused, each with the
/// reason, rather than ignored; --nodelay is taken (the library always sets TCP_NODELAY).
#[test]
fn options_the_library_cannot_honour_are_refused_with_the_reason() {
    for (option, reason) in [
        ("--psk", "TLS-PSK"),
        ("--psk-identity", "TLS-PSK"),
        ("--tls-engine", "engines"),
        ("--keyform", "PEM"),
        ("--tls-engine-kpass-sha1", "engines"),
    ] {
        for tool in [our_pub, our_sub] {
            let (code, out, err) = run(tool().args(["-t", "t", option, "arg"]));
            assert_eq!((code, out.as_str()), (1, ""), "{option}");
            assert!(err.starts_with(&format!("Error: {option} is not supported: ")), "{err}");
            assert!(err.contains(reason), "{err}");
        }
    }
    for args in [
        &["-t", "t", "-D", "subscribe", "subscription-identifier", "5"][..],
        &["-t", "t", "-D", "publish", "topic-alias", "5"],
        &["-t", "t", "-D", "connect", "authentication-method", "SCRAM"],
    ] {
        let (code, _, err) = run(our_sub().args(args));
        assert_eq!(code, 1, "{args:?}");
        assert!(
            err.contains("not supported for") && err.contains(": the library"),
            "{err}"
        );
    }
    let b = TestBroker::start();
    publish_ok(&b, &["-t", "cli/nodelay", "-m", "x", "--nodelay"]);
}

/// -D, -x, -M, --repeat and their kin refuse what mosquitto's tools refuse, with their words.
#[test]
fn bad_values_are_refused_as_by_mosquittos_tools() {
    for args in [
        &["-t", "a", "-D"][..],
        &["-t", "a", "-D", "connect"],
        &["-t", "a", "-D", "connect", "foo", "1"],
        &["-t", "a", "-D", "bogus", "user-property", "k", "v"],
        &["-t", "a", "-D", "publish", "session-expiry-interval", "3"],
        &["-t", "a", "-D", "connect", "receive-maximum", "70000"],
        &["-t", "a", "-D", "connect", "receive-maximum", "0"],
        &["-t", "a", "-D", "connect", "user-property", "k"],
        &["-t", "a", "-D", "puback", "user-property", "k", "v"],
        &["-t", "a", "-D", "subscribe", "content-type", "x"],
        &["-t", "a", "-D", "connect", "request-problem-information", "2"],
        &[
            "-t",
            "a",
            "-D",
            "connect",
            "receive-maximum",
            "5",
            "-D",
            "connect",
            "receive-maximum",
            "6",
        ],
        &["-t", "a", "-x", "10", "-D", "connect", "session-expiry-interval", "5"],
        &["-t", "a", "-x"],
        &["-t", "a", "-x", "abc"],
        &["-t", "a", "-x", "5000000000"],
        &["-t", "a", "-c", "-V", "5"],
        &["-t", "a", "-c", "-I", "prefix"],
        &["-t", "a", "-M"],
        &["-t", "a", "-M", "0"],
        &["-t", "a", "-A"],
        &["-t", "a", "--capath"],
        &["-t", "a", "--tls-version"],
        &["-t", "a", "--ciphers"],
        &["-t", "a", "--proxy"],
        &["-t", "a", "--proxy", "socks5://localhost"],
        &["-t", "a", "--proxy", "http://localhost"],
    ] {
        same_usage_error(our_sub, "mosquitto_sub", args);
    }
    for args in [
        &["-t", "a", "-m", "x", "--repeat"][..],
        &["-t", "a", "-m", "x", "--repeat", "0"],
        &["-t", "a", "-m", "x", "--repeat-delay", "-1"],
        &["-t", "a", "-m", "x", "-D", "publish", "subscription-identifier", "5"],
        &[
            "-t",
            "a",
            "-m",
            "x",
            "-D",
            "will",
            "reason-string",
            "x",
            "-D",
            "will",
            "reason-string",
            "y",
        ],
        &["-t", "a", "-m", "x", "-D", "connect", "maximum-packet-size", "0"],
    ] {
        same_usage_error(our_pub, "mosquitto_pub", args);
    }
}

/// --version prints the tool's and the library's version and exits as mosquitto's tools do (1).
#[test]
fn version_prints_the_version_and_exits_as_mosquittos_tools_do() {
    for (tool, real_tool) in [
        (our_pub as fn() -> Command, "mosquitto_pub"),
        (our_sub, "mosquitto_sub"),
    ] {
        let (code, out, _) = run(tool().arg("--version"));
        let (real_code, real_out, _) = run(Command::new(real(real_tool)).arg("--version"));
        assert_eq!(code, real_code);
        assert!(real_out.starts_with(&format!("{real_tool} version ")));
        let ours = real_tool.replace("mosquitto", "mqttc");
        let version = env!("CARGO_PKG_VERSION");
        assert_eq!(
            out,
            format!("{ours} version {version} running on libmqttclient {version}.\n")
        );
    }
}
