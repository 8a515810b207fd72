//! MQTT over WebSockets (`ws://`, `wss://`) against amqtt, a real broker with WebSocket listeners
//! (tests/common/amqtt.rs), and against a scripted tungstenite server where the exact handshake
//! and messages matter: the `mqtt` subprotocol offered, packets in binary messages, and a text
//! message or a refused subprotocol ending the connection with a clear error.
mod common;

use std::net::TcpListener;
use std::time::Duration;

use bytes::Bytes;
use mqttclient::codec::QoS;
use mqttclient::engine::{Error, TlsOptions};
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};

use common::amqtt::Amqtt;
use common::engine::{client_for, connect, round_trip};
use common::pki::Pki;

/// Small messages in a burst (several packets per write, so per WebSocket message), then payloads
/// larger than a socket buffer (one packet over many reads), at every QoS.
fn traffic(c: &mqttclient::engine::Client, prefix: &str) {
    let small: Vec<Bytes> = (0..200).map(|i| Bytes::from(format!("message {i}"))).collect();
    let large: Vec<Bytes> = (0..3).map(|i| Bytes::from(vec![b'a' + i as u8; 300_000])).collect();
    for (qos, name) in [
        (QoS::AtMostOnce, "q0"),
        (QoS::AtLeastOnce, "q1"),
        (QoS::ExactlyOnce, "q2"),
    ] {
        round_trip(c, &format!("{prefix}/{name}/small"), qos, &small);
        round_trip(c, &format!("{prefix}/{name}/large"), qos, &large);
    }
}

#[test]
fn ws_to_a_real_broker_carries_every_qos_and_large_payloads() {
    let broker = Amqtt::start_ws(None);
    let c = client_for(&format!("ws://127.0.0.1:{}/mqtt", broker.port), None);
    assert_eq!(connect(&c).map(|_| ()), Ok(()));
    traffic(&c, "ws");
}

#[test]
fn wss_to_a_real_broker_verifies_its_certificate_and_carries_messages() {
    let pki = Pki::new();
    let broker = Amqtt::start_ws(Some((&pki.server_cert, &pki.server_key)));
    let uri = format!("wss://localhost:{}/mqtt", broker.port);
    let untrusted = client_for(
        &uri,
        Some(TlsOptions {
            ca_file: Some(pki.other_ca.clone()),
            ..TlsOptions::default()
        }),
    );
    assert!(matches!(connect(&untrusted), Err(Error::Tls(why)) if why.contains("UnknownIssuer")));
    let c = client_for(
        &uri,
        Some(TlsOptions {
            ca_file: Some(pki.ca.clone()),
            ..TlsOptions::default()
        }),
    );
    assert_eq!(connect(&c).map(|_| ()), Ok(()));
    traffic(&c, "wss");
}

/// What the scripted server saw of the client's handshake.
struct Seen {
    path: String,
    protocols: Option<String>,
    first_message_binary: bool,
}

/// A one-connection WebSocket server. It answers the handshake choosing `subprotocol` (or none),
/// then, if the handshake went through, answers the CONNECT with a binary CONNACK and sends
/// `then`.
// The handshake callback's error type is tungstenite's, large by its design.
#[allow(clippy::result_large_err)]
fn scripted_server(subprotocol: Option<&'static str>, then: Message) -> (u16, std::thread::JoinHandle<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut seen = Seen {
            path: String::new(),
            protocols: None,
            first_message_binary: false,
        };
        let accepted = tungstenite::accept_hdr(tcp, |req: &Request, mut resp: Response| {
            seen.path = req.uri().to_string();
            seen.protocols = req
                .headers()
                .get("Sec-WebSocket-Protocol")
                .map(|v| v.to_str().unwrap().to_owned());
            if let Some(p) = subprotocol {
                resp.headers_mut()
                    .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(p));
            }
            Ok(resp)
        });
        let Ok(mut ws) = accepted else { return seen };
        if let Ok(Message::Binary(connect)) = ws.read() {
            seen.first_message_binary = connect.first() == Some(&0x10);
            ws.send(Message::Binary(Bytes::from_static(&[0x20, 2, 0, 0]))).unwrap();
            let _ = ws.send(then);
            // Hold the connection until the client closes it.
            while ws.read().is_ok() {}
        }
        seen
    });
    (port, server)
}

#[test]
fn the_handshake_offers_mqtt_on_the_given_path_and_packets_travel_as_binary_messages() {
    let (port, server) = scripted_server(Some("mqtt"), Message::Ping(Bytes::from_static(b"still there?")));
    let c = client_for(&format!("ws://127.0.0.1:{port}/custom/path"), None);
    assert_eq!(connect(&c).map(|_| ()), Ok(()));
    drop(c);
    let seen = server.join().unwrap();
    assert_eq!(seen.path, "/custom/path");
    assert_eq!(seen.protocols.as_deref(), Some("mqtt"));
    assert!(seen.first_message_binary, "the CONNECT came in a binary message");
}

#[test]
fn a_server_that_does_not_choose_mqtt_fails_the_connect_with_the_reason() {
    let (port, server) = scripted_server(None, Message::Close(None));
    let c = client_for(&format!("ws://127.0.0.1:{port}"), None);
    match connect(&c) {
        Err(Error::Io(why)) => assert!(why.contains("WebSocket") && why.contains("ubprotocol"), "{why}"),
        other => panic!("expected a WebSocket handshake failure, got {other:?}"),
    }
    // The default path, when the URI gives none.
    assert_eq!(server.join().unwrap().path, "/mqtt");
}

#[test]
fn a_text_message_from_the_broker_closes_the_connection_as_a_protocol_violation() {
    let (port, server) = scripted_server(Some("mqtt"), Message::text("not MQTT"));
    let options = mqttclient::engine::Options {
        auto_reconnect: false,
        ..mqttclient::engine::Options::default()
    };
    let c = mqttclient::engine::Client::new(vec![format!("ws://127.0.0.1:{port}").parse().unwrap()], options).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    c.set_on_connection(Some(std::sync::Arc::new(
        move |e: &mqttclient::engine::ConnectionEvent| {
            let _ = tx.send(format!("{e:?}"));
        },
    )));
    assert_eq!(connect(&c).map(|_| ()), Ok(()));
    let lost = (0..2)
        .filter_map(|_| rx.recv_timeout(Duration::from_secs(10)).ok())
        .find(|e| e.starts_with("Lost"))
        .expect("the connection was reported lost");
    assert!(lost.contains("text message"), "{lost}");
    drop(c);
    server.join().unwrap();
}
