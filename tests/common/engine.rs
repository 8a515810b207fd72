//! Small helpers for tests that drive the engine's `Client` directly.
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use bytes::Bytes;
use mqttclient::codec::{MqttStr, Publish, QoS};
use mqttclient::engine::{
    Address, Client, Error, Handler, LogLevel, Options, TlsConnector, TlsOptions, Token, TokenResult, TokenState,
};

pub const T: Duration = Duration::from_secs(10);

/// Waits for a token; panics if it is still pending after [`T`].
pub fn wait(c: &Client, token: Token) -> TokenResult {
    match c.wait(token, T) {
        Some(TokenState::Done(r)) => r,
        other => panic!("token did not complete within {T:?}: {other:?}"),
    }
}

/// Collects the client's log lines at `level` and more severe, from now on.
pub fn log_lines(c: &Client, level: LogLevel) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    c.set_log(
        level,
        Some(Arc::new(move |_, line: &str| {
            sink.lock().unwrap().push(line.to_owned())
        })),
    );
    lines
}

/// Connects and returns the connect token's result.
pub fn connect(c: &Client) -> TokenResult {
    wait(c, c.connect().unwrap())
}

/// The error of a connect that must fail (printed, for the test's output).
pub fn connect_error(c: &Client) -> Error {
    let e = connect(c).map(|_| ()).expect_err("the connect must fail");
    println!("{e}");
    e
}

/// Subscribes to `topic` at `qos`; the returned receiver gets every message of the subscription.
pub fn subscribe(c: &Client, topic: &str, qos: QoS) -> mpsc::Receiver<Publish> {
    let (tx, rx) = mpsc::channel::<Publish>();
    let handler = Handler::Call(Box::new(move |p: &Publish| {
        let _ = tx.send(p.clone());
    }));
    let t = c.subscribe(vec![(MqttStr::new(topic).unwrap(), qos, handler)]).unwrap();
    assert_eq!(wait(c, t).map(|o| o.codes), Ok(vec![qos as u8]), "subscribe {topic}");
    rx
}

/// Subscribes, publishes `payloads` at `qos` through the same connection, and checks they all
/// come back, in order, unchanged.
pub fn round_trip(c: &Client, topic: &str, qos: QoS, payloads: &[Bytes]) {
    let rx = subscribe(c, topic, qos);
    let tokens: Vec<Token> = payloads
        .iter()
        .map(|p| c.publish(MqttStr::new(topic).unwrap(), p.clone(), qos, false).unwrap())
        .collect();
    for t in tokens {
        assert_eq!(wait(c, t).map(|_| ()), Ok(()), "publish on {topic}");
    }
    for (i, sent) in payloads.iter().enumerate() {
        let p = rx
            .recv_timeout(T)
            .unwrap_or_else(|_| panic!("message {i} of {} on {topic} did not come back", payloads.len()));
        assert_eq!(p.topic.as_str(), topic);
        assert!(
            p.payload == *sent,
            "message {i}: {} bytes came back, {} sent",
            p.payload.len(),
            sent.len()
        );
    }
}

/// A client for one server URI, without automatic reconnect (a failure ends the test's connect),
/// with the TLS configuration `tls` when given.
pub fn client_for(uri: &str, tls: Option<TlsOptions>) -> Client {
    let options = Options {
        connect_timeout: Duration::from_secs(5),
        auto_reconnect: false,
        tls: tls.map(|t| TlsConnector::new(&t).expect("TLS configuration")),
        ..Options::default()
    };
    Client::new(vec![uri.parse::<Address>().unwrap()], options).unwrap()
}
