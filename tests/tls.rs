//! TLS (rustls) against real mosquitto TLS listeners configured with certificates made at test time
//! (tests/common/pki.rs), and ALPN against a scripted rustls server: trust by CA file, name
//! verification and its override, the insecure mode and its warning, the system store, client
//! certificates (also X.509 v1 ones made with the `openssl` CLI as mosquitto-tls(7) shows), and a
//! readable reason for each way a handshake fails.
mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mqttclient::codec::QoS;
use mqttclient::engine::{Address, Client, Error, LogLevel, Options, TlsConnector, TlsOptions};

use common::Broker;
use common::engine::{T, connect};
use common::pki::{Pki, openssl};

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
    match common::engine::connect_error(c) {
        Error::Tls(why) => why,
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

/// A CA, a broker certificate and a client certificate made with the commands of mosquitto-tls(7)
/// (plus `-subj` and `-nodes`, so that nothing asks questions). The client certificate is exactly
/// the guide's, hence X.509 v1. The broker's gets an extensions file naming `localhost`, which
/// makes it v3: a verified broker needs its name in subjectAltName, which v1 cannot carry.
struct GuidePki {
    dir: common::TempDir,
}

impl GuidePki {
    fn new() -> GuidePki {
        let dir = common::temp_dir("guide-pki");
        openssl(
            &dir,
            "req -new -x509 -days 2 -extensions v3_ca -keyout ca.key -out ca.crt -nodes -subj /CN=guide-ca",
        );
        std::fs::write(dir.join("server.ext"), "subjectAltName=DNS:localhost\n").unwrap();
        for (name, extensions) in [("server", " -extfile server.ext"), ("client", "")] {
            openssl(&dir, &format!("genrsa -out {name}.key 2048"));
            openssl(
                &dir,
                &format!("req -out {name}.csr -key {name}.key -new -subj /CN={name}"),
            );
            openssl(
                &dir,
                &format!(
                    "x509 -req -in {name}.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out {name}.crt -days 365{extensions}"
                ),
            );
        }
        // openssl writes keys for its user only; mosquitto started as root reads them as its own.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("server.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
        GuidePki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A TLS listener with the guide's files that requires a client certificate the CA signed.
    fn broker(&self) -> Broker {
        Broker::start_with(&format!(
            "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n",
            self.path("ca.crt").display(),
            self.path("server.crt").display(),
            self.path("server.key").display()
        ))
    }

    fn client_options(&self, cert: &str, key: &str) -> TlsOptions {
        TlsOptions {
            cert_file: Some(self.path(cert)),
            key_file: Some(self.path(key)),
            ..trusting(&self.path("ca.crt"))
        }
    }
}

#[test]
fn a_v1_client_certificate_made_as_mosquittos_guide_shows_is_accepted() {
    let pki = GuidePki::new();
    let version = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(pki.path("client.crt"))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&version.stdout).contains("Version: 1 (0x0)"),
        "the guide's recipe is expected to make a v1 certificate"
    );
    let broker = pki.broker();
    let c = tls_client(
        &format!("mqtts://localhost:{}", broker.port),
        pki.client_options("client.crt", "client.key"),
    );
    assert_eq!(connect(&c).map(|_| ()), Ok(()));
    round_trip(&c, "tls/v1/client/cert");
}

#[test]
fn a_certificate_with_another_key_is_refused_when_the_client_is_made() {
    let pki = GuidePki::new();
    // The v1 client certificate with the broker's key, and the v3 broker certificate with the
    // client's key: neither is a pair, whatever the certificate's version.
    for (cert, key) in [("client.crt", "server.key"), ("server.crt", "client.key")] {
        let e = TlsConnector::new(&pki.client_options(cert, key)).expect_err("a mismatched pair must be refused");
        println!("{e}");
        assert!(
            e.contains("tls_cert_file") && e.contains("tls_key_file") && e.contains("public key does not match"),
            "{cert} with {key}: {e}"
        );
    }
}

/// The log lines at warning level or above of one connect and round trip to `uri`.
fn warnings(uri: &str, tls: TlsOptions) -> Vec<String> {
    let c = tls_client(uri, tls);
    let lines = common::engine::log_lines(&c, LogLevel::Warning);
    assert_eq!(connect(&c).map(|_| ()), Ok(()));
    // Log lines reach the handler through the callback thread's queue, ahead of the messages of
    // the round trip: once they are back, every line of the connect has been logged.
    round_trip(&c, "tls/warnings");
    lines.lock().unwrap().clone()
}

#[test]
fn insecure_mode_warns_on_each_connect_and_names_a_ca_file_it_does_not_use() {
    let pki = Pki::new();
    let broker = Broker::start_with(&pki.mosquitto_tls(false));
    let by_ip = format!("mqtts://127.0.0.1:{}", broker.port);
    let insecure = TlsOptions {
        insecure: true,
        ..TlsOptions::default()
    };
    let lines = warnings(&by_ip, insecure.clone());
    assert!(
        lines.len() == 1 && lines[0].contains("tls_insecure") && !lines[0].contains("tls_ca_file"),
        "{lines:?}"
    );
    let ca = pki.other_ca.display().to_string();
    let lines = warnings(
        &by_ip,
        TlsOptions {
            ca_file: Some(pki.other_ca.clone()),
            ..insecure
        },
    );
    assert!(
        lines.len() == 1 && lines[0].contains("tls_insecure") && lines[0].contains(&format!("tls_ca_file \"{ca}\"")),
        "{lines:?}"
    );
    // Verified TLS has nothing to warn about.
    let lines = warnings(&format!("mqtts://localhost:{}", broker.port), trusting(&pki.ca));
    assert_eq!(lines, Vec::<String>::new());
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

#[test]
fn a_ca_directory_is_trusted_and_one_without_the_broker_ca_is_not() {
    let pki = Pki::new();
    let broker = Broker::start_with(&pki.mosquitto_tls(false));
    let uri = format!("mqtts://localhost:{}", broker.port);
    let good = common::pki::hashed_ca_dir("capath-good", &pki.ca);
    let c = tls_client(
        &uri,
        TlsOptions {
            ca_path: Some(good.to_path_buf()),
            ..TlsOptions::default()
        },
    );
    assert_eq!(connect(&c).map(|_| ()), Ok(()));
    round_trip(&c, "tls/capath");

    let wrong = common::pki::hashed_ca_dir("capath-wrong", &pki.other_ca);
    let why = tls_failure(&tls_client(
        &uri,
        TlsOptions {
            ca_path: Some(wrong.to_path_buf()),
            ..TlsOptions::default()
        },
    ));
    assert!(why.contains("UnknownIssuer"), "{why}");
}

/// The line the client logs once a TLS handshake is done: its version and cipher suite.
fn session_line(uri: &str, tls: TlsOptions) -> String {
    let c = tls_client(uri, tls);
    let lines = common::engine::log_lines(&c, LogLevel::Info);
    assert_eq!(connect(&c).map(|_| ()), Ok(()));
    round_trip(&c, "tls/session");
    let lines = lines.lock().unwrap();
    let session = lines.iter().find(|l| l.contains("TLS session: "));
    session
        .unwrap_or_else(|| panic!("no TLS session line in {lines:?}"))
        .clone()
}

fn offering(ca: &Path, versions: Option<&str>, ciphers: Option<&str>) -> TlsOptions {
    TlsOptions {
        versions: versions.map(str::to_owned),
        ciphers: ciphers.map(str::to_owned),
        ..trusting(ca)
    }
}

#[test]
fn the_tls_versions_offered_are_the_ones_a_handshake_may_settle_on() {
    let pki = Pki::new();
    let both = Broker::start_with(&pki.mosquitto_tls(false));
    let uri = format!("mqtts://localhost:{}", both.port);
    let line = session_line(&uri, offering(&pki.ca, None, None));
    assert!(line.contains("TLS session: tlsv1.3"), "{line}");
    let line = session_line(&uri, offering(&pki.ca, Some("tlsv1.2"), None));
    assert!(line.contains("TLS session: tlsv1.2"), "{line}");

    // mosquitto's tls_version is the lowest it allows: tlsv1.3 allows TLS 1.3 alone.
    let only13 = Broker::start_with(&format!("{}tls_version tlsv1.3\n", pki.mosquitto_tls(false)));
    let uri = format!("mqtts://localhost:{}", only13.port);
    let why = tls_failure(&tls_client(&uri, offering(&pki.ca, Some("tlsv1.2"), None)));
    assert!(why.contains("tls_version"), "{why}");
    let line = session_line(&uri, offering(&pki.ca, Some("tlsv1.3"), None));
    assert!(line.contains("TLS session: tlsv1.3"), "{line}");
}

#[test]
fn the_cipher_suites_offered_are_the_ones_a_handshake_may_settle_on() {
    let pki = Pki::new();
    let conf = format!(
        "{}ciphers ECDHE-ECDSA-AES256-GCM-SHA384\nciphers_tls1.3 TLS_AES_128_GCM_SHA256\n",
        pki.mosquitto_tls(false)
    );
    let broker = Broker::start_with(&conf);
    let uri = format!("mqtts://localhost:{}", broker.port);

    // TLS 1.2: the broker's one suite, among others offered, is the one used; without it, none.
    let line = session_line(
        &uri,
        offering(
            &pki.ca,
            Some("tlsv1.2"),
            Some("ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES256-GCM-SHA384"),
        ),
    );
    assert!(
        line.contains("tlsv1.2, cipher suite ECDHE-ECDSA-AES256-GCM-SHA384"),
        "{line}"
    );
    let why = tls_failure(&tls_client(
        &uri,
        offering(&pki.ca, Some("tlsv1.2"), Some("ECDHE-ECDSA-AES128-GCM-SHA256")),
    ));
    assert!(why.contains("tls_ciphers"), "{why}");

    // TLS 1.3 likewise, by its own suites' names.
    let line = session_line(
        &uri,
        offering(
            &pki.ca,
            None,
            Some("TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"),
        ),
    );
    assert!(line.contains("tlsv1.3, cipher suite TLS_AES_128_GCM_SHA256"), "{line}");
    let why = tls_failure(&tls_client(
        &uri,
        offering(&pki.ca, None, Some("TLS_AES_256_GCM_SHA384")),
    ));
    assert!(why.contains("tls_ciphers"), "{why}");
}
