//! Connections through a SOCKS5 proxy (microsocks, tests/common/socks.rs) to real brokers: plain
//! MQTT and TLS reach mosquitto from the proxy's address (which its log shows), with the broker's
//! host name resolved by the proxy, and WebSockets reach amqtt through it; a login the proxy wants
//! is given, and a wrong or missing one, a proxy that is down and a broker the proxy cannot reach
//! each fail the connect with what went wrong.
mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use mqttclient::codec::QoS;
use mqttclient::engine::{Address, Client, Error, Options, Proxy, TlsConnector, TlsOptions};

use common::Broker;
use common::engine::connect;
use common::pki::Pki;
use common::socks::{PROXY_SOURCE, Socks};

/// A broker that logs (to `broker.log` in its directory) where each connection comes from.
fn logging_broker(tls: &str) -> Broker {
    Broker::start_with(&format!("{tls}log_dest file {{dir}}/broker.log\nlog_type notice\n"))
}

/// Whether the broker logged a connection from `source` within a few seconds.
fn broker_saw_a_connection_from(broker: &Broker, source: &str) -> bool {
    let log = broker.dir.join("broker.log");
    let want = format!("New connection from {source}:");
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if std::fs::read_to_string(&log).is_ok_and(|text| text.contains(&want)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn client(uri: &str, proxy: &str, tls: Option<TlsOptions>) -> Client {
    let options = Options {
        connect_timeout: Duration::from_secs(5),
        auto_reconnect: false,
        proxy: Some(proxy.parse::<Proxy>().unwrap()),
        tls: tls.map(|t| TlsConnector::new(&t).unwrap()),
        ..Options::default()
    };
    Client::new(vec![uri.parse::<Address>().unwrap()], options).unwrap()
}

fn round_trip(c: &Client, topic: &str) {
    common::engine::round_trip(c, topic, QoS::AtLeastOnce, &[Bytes::from_static(b"via SOCKS5")]);
}

/// The I/O failure of a connect that must fail.
fn failure(c: &Client) -> String {
    match common::engine::connect_error(c) {
        Error::Io(why) => why,
        other => panic!("expected an I/O failure, got {other:?}"),
    }
}

#[test]
fn mqtt_and_tls_go_through_the_proxy_which_resolves_the_broker_name() {
    let socks = Socks::start(None);
    let broker = logging_broker("");
    // "localhost" is sent to the proxy as a name (SOCKS5 address type 3), for it to resolve.
    let c = client(&format!("mqtt://localhost:{}", broker.port), &socks.url(None), None);
    assert_eq!(connect(&c).map(|_| ()), Ok(()));
    round_trip(&c, "socks/mqtt");
    assert!(broker_saw_a_connection_from(&broker, PROXY_SOURCE));

    let pki = Pki::new();
    let tls_broker = logging_broker(&pki.mosquitto_tls(false));
    let trusting = TlsOptions {
        ca_file: Some(pki.ca.clone()),
        ..TlsOptions::default()
    };
    // The certificate is checked against the broker's name, not the proxy's.
    let c = client(
        &format!("mqtts://localhost:{}", tls_broker.port),
        &socks.url(None),
        Some(trusting),
    );
    assert_eq!(connect(&c).map(|_| ()), Ok(()));
    round_trip(&c, "socks/tls");
    assert!(broker_saw_a_connection_from(&tls_broker, PROXY_SOURCE));
}

#[test]
fn the_proxys_login_is_given_and_a_wrong_or_missing_one_is_refused_clearly() {
    let login = Some(("alice", "s3cret"));
    let socks = Socks::start(login);
    let broker = logging_broker("");
    let uri = format!("mqtt://localhost:{}", broker.port);
    let c = client(&uri, &socks.url(login), None);
    assert_eq!(connect(&c).map(|_| ()), Ok(()));
    round_trip(&c, "socks/login");
    assert!(broker_saw_a_connection_from(&broker, PROXY_SOURCE));

    let why = failure(&client(&uri, &socks.url(Some(("alice", "wrong"))), None));
    let proxy = format!("SOCKS5 proxy 127.0.0.1:{}", socks.port);
    assert!(
        why.contains(&proxy) && why.contains("refused the username \"alice\""),
        "{why}"
    );
    assert!(!why.contains("wrong"), "the password is not shown: {why}");
    let why = failure(&client(&uri, &socks.url(None), None));
    assert!(why.contains(&proxy) && why.contains("requires authentication"), "{why}");
}

#[test]
fn a_proxy_that_is_down_or_cannot_reach_the_broker_fails_the_connect_saying_so() {
    let nothing = common::free_port();
    let socks = Socks::start(None);
    let down = format!("socks5h://127.0.0.1:{}", common::free_port());
    let why = failure(&client(&format!("mqtt://localhost:{nothing}"), &down, None));
    assert!(
        why.contains(&down["socks5h://".len()..]) && why.contains("SOCKS5 proxy"),
        "{why}"
    );
    let why = failure(&client(&format!("mqtt://localhost:{nothing}"), &socks.url(None), None));
    assert!(
        why.contains(&format!("could not connect to localhost:{nothing}")),
        "{why}"
    );
}

/// WebSockets (amqtt's listener; Debian's mosquitto has none) go through the proxy too: with the
/// proxy's login they carry messages, with a wrong one the proxy stops them.
#[test]
fn websockets_go_through_the_proxy() {
    let login = Some(("carol", "pw"));
    let socks = Socks::start(login);
    let broker = common::amqtt::Amqtt::start_ws(None);
    let uri = format!("ws://localhost:{}/mqtt", broker.port);
    let why = failure(&client(&uri, &socks.url(Some(("carol", "bad"))), None));
    assert!(why.contains("refused the username \"carol\""), "{why}");
    let c = client(&uri, &socks.url(login), None);
    assert_eq!(connect(&c).map(|_| ()), Ok(()));
    round_trip(&c, "socks/ws");
}
