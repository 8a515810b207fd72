//! TLS (rustls) against real mosquitto TLS listeners configured with certificates made at test time
//! (tests/common/pki.rs), and ALPN against a scripted rustls server: trust by CA file, name
//! verification and its override, the insecure mode, the system store, client certificates, and a
//! readable reason for each way a handshake fails.
mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mqttclient::codec::QoS;
use mqttclient::engine::{Address, Client, Error, Options, TlsOptions};

use common::Broker;
use common::engine::{T, connect};
use common::pki::Pki;

fn tls_client(uri: &str, tls: TlsOptions) -> Client {
    common::engine::client_for(uri, Some(tls))
}

fn trusting(ca: &std::path::Path) -> TlsOptions {
    TlsOptions {
        ca_file: Some(ca.to_owned()),
        ..TlsOptions::default()
    }
}

/// The TLS failure text of a connect that must fail for a TLS reason.
fn tls_failure(c: &Client) -> String {
    match connect(c) {
        Err(Error::Tls(why)) => {
            println!("{why}");
            why
        }
        other => panic!("expected a TLS failure, got {other:?}"),
    }
}

/// A QoS 1 message through the broker and back over this connection.
fn round_trip(c: &Client, topic: &str) {
    common::engine::round_trip(c, topic, QoS::AtLeastOnce, &[Bytes::from_static(b"over TLS")]);
}

#[test]
fn mqtts_with_the_ca_file_connects_verifies_the_name_and_carries_messages() {
    let pki = Pki::new();
    let broker = Broker::start_with(&pki.mosquitto_tls(false));
    let c = tls_client(&format!("mqtts://localhost:{}", broker.port), trusting(&pki.ca));
    assert_eq!(connect(&c).map(|_| ()), Ok(()));
    round_trip(&c, "tls/round/trip");
}

#[test]
fn a_certificate_from_an_untrusted_ca_fails_the_connect_with_the_reason() {
    let pki = Pki::new();
    let broker = Broker::start_with(&pki.mosquitto_tls(false));
    let c = tls_client(&format!("mqtts://localhost:{}", broker.port), trusting(&pki.other_ca));
    let why = tls_failure(&c);
    assert!(why.contains("UnknownIssuer") && why.contains("tls_ca_file"), "{why}");
}

#[test]
fn the_system_store_does_not_trust_a_private_ca() {
    let pki = Pki::new();
    let broker = Broker::start_with(&pki.mosquitto_tls(false));
    // No CA file: the system's store (ca-certificates) is what is trusted, and our CA is not in it.
    let c = tls_client(&format!("mqtts://localhost:{}", broker.port), TlsOptions::default());
    let why = tls_failure(&c);
    assert!(why.contains("UnknownIssuer"), "{why}");
}

#[test]
fn a_name_the_certificate_lacks_fails_and_tls_server_name_overrides_it() {
    let pki = Pki::new();
    let broker = Broker::start_with(&pki.mosquitto_tls(false));
    // The certificate names localhost and broker.test, not the IP address connected to.
    let by_ip = format!("mqtts://127.0.0.1:{}", broker.port);
    let why = tls_failure(&tls_client(&by_ip, trusting(&pki.ca)));
    assert!(
        why.contains("not valid for name") && why.contains("tls_server_name"),
        "{why}"
    );
    let named = TlsOptions {
        server_name: Some("broker.test".into()),
        ..trusting(&pki.ca)
    };
    let c = tls_client(&by_ip, named);
    assert_eq!(connect(&c).map(|_| ()), Ok(()));
    round_trip(&c, "tls/server/name");
}

#[test]
fn insecure_mode_accepts_a_certificate_nobody_trusts() {
    let pki = Pki::new();
    let broker = Broker::start_with(&pki.mosquitto_tls(false));
    let insecure = TlsOptions {
        insecure: true,
        ..trusting(&pki.other_ca)
    };
    let c = tls_client(&format!("mqtts://127.0.0.1:{}", broker.port), insecure);
    assert_eq!(connect(&c).map(|_| ()), Ok(()));
    round_trip(&c, "tls/insecure");
}

#[test]
fn a_broker_requiring_a_client_certificate_refuses_none_and_accepts_ours() {
    let pki = Pki::new();
    let broker = Broker::start_with(&pki.mosquitto_tls(true));
    let uri = format!("mqtts://localhost:{}", broker.port);
    // With TLS 1.3 the refusal arrives as an alert after our side of the handshake finished, so
    // it is the CONNACK read that fails; either way the reason must be TLS's.
    let why = tls_failure(&tls_client(&uri, trusting(&pki.ca)));
    assert!(why.contains("client certificate"), "{why}");
    let with_cert = TlsOptions {
        cert_file: Some(pki.client_cert.clone()),
        key_file: Some(pki.client_key.clone()),
        ..trusting(&pki.ca)
    };
    let c = tls_client(&uri, with_cert);
    assert_eq!(connect(&c).map(|_| ()), Ok(()));
    round_trip(&c, "tls/client/cert");
}

#[test]
fn plain_mqtt_to_a_tls_listener_fails_instead_of_hanging() {
    let pki = Pki::new();
    let broker = Broker::start_with(&pki.mosquitto_tls(false));
    let c = Client::new(
        vec![Address::tcp("127.0.0.1", broker.port)],
        Options {
            connect_timeout: Duration::from_secs(5),
            auto_reconnect: false,
            ..Options::default()
        },
    )
    .unwrap();
    let r = connect(&c);
    assert!(
        matches!(r, Err(Error::ConnectionClosed | Error::Io(_) | Error::Protocol(_))),
        "{r:?}"
    );
}

/// A one-connection TLS server (rustls, the broker certificate of `pki`) that offers `alpn`,
/// answers the CONNECT with CONNACK 0 and reports the protocol the handshake settled on.
fn alpn_server(pki: &Pki, alpn: &[&str]) -> (u16, std::thread::JoinHandle<Option<Vec<u8>>>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(&pki.server_cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&pki.server_key).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(T)).unwrap();
        let conn = rustls::ServerConnection::new(Arc::new(config)).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let mut first = [0u8; 2];
        // A failed handshake (no common protocol) ends here with an error: report no protocol.
        tls.read_exact(&mut first).ok()?;
        let protocol = tls.conn.alpn_protocol().map(<[u8]>::to_vec);
        let mut rest = vec![0u8; first[1] as usize];
        tls.read_exact(&mut rest).unwrap();
        assert_eq!(first[0], 0x10, "CONNECT first");
        tls.write_all(&[0x20, 2, 0, 0]).unwrap();
        tls.flush().unwrap();
        protocol
    });
    (port, server)
}

#[test]
fn alpn_offers_our_protocols_and_a_broker_accepting_none_is_explained() {
    let pki = Pki::new();
    let offering = |alpn: &[&str]| TlsOptions {
        alpn: alpn.iter().map(|p| p.to_string()).collect(),
        ..trusting(&pki.ca)
    };
    let (port, server) = alpn_server(&pki, &["x-other", "mqtt"]);
    let c = tls_client(
        &format!("mqtts://localhost:{port}"),
        offering(&["mqtt", "x-amzn-mqtt-ca"]),
    );
    assert_eq!(connect(&c).map(|_| ()), Ok(()));
    assert_eq!(server.join().unwrap().as_deref(), Some(&b"mqtt"[..]));

    let (port, server) = alpn_server(&pki, &["h2"]);
    let c = tls_client(&format!("mqtts://localhost:{port}"), offering(&["mqtt"]));
    let why = tls_failure(&c);
    assert!(why.contains("ALPN"), "{why}");
    assert_eq!(server.join().unwrap(), None);
}
