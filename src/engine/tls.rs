//! TLS with rustls (ring as the crypto provider, no OpenSSL). The configuration is built once, when
//! the client is made, so a bad CA file or key is reported by the constructor rather than by every
//! connect; each connection then only runs the handshake.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::version;
use rustls::{
    CipherSuite, ClientConfig, DigitallySignedStruct, ProtocolVersion, RootCertStore, SignatureScheme,
    SupportedCipherSuite, SupportedProtocolVersion,
};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// What the application asks of TLS. The default trusts the system's CA store and verifies the
/// server's name against the host it connects to.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// PEM file of the CAs to trust instead of the system's store.
    pub ca_file: Option<PathBuf>,
    /// A directory of CA certificates to trust instead of the system's store (with `ca_file`, as
    /// well as its): every PEM certificate of every file in it, as OpenSSL's hashed directories
    /// (`c_rehash`) and `/etc/ssl/certs` hold them. Files without a certificate are skipped.
    pub ca_path: Option<PathBuf>,
    /// PEM certificate chain and private key presented to brokers that ask for a client
    /// certificate; both or neither.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// The name the server's certificate must carry (and that SNI sends), instead of the host the
    /// address names: for brokers reached by IP address or through a tunnel.
    pub server_name: Option<String>,
    /// Skip verification of the broker's certificate entirely (chain, dates and name), so that
    /// `ca_file` is not used. For tests against throwaway certificates only: it lets anyone in the
    /// middle read and change the traffic, and each connect logs a warning saying so.
    pub insecure: bool,
    /// ALPN protocols offered, most preferred first (e.g. "mqtt", or "x-amzn-mqtt-ca" for AWS IoT
    /// on port 443).
    pub alpn: Vec<String>,
    /// The TLS versions offered, comma-separated: "tlsv1.2", "tlsv1.3" or both. None: both.
    pub versions: Option<String>,
    /// The cipher suites offered, OpenSSL's names or IANA's separated by ':' or ',' (see
    /// [`CIPHER_SUITES`]). The TLS 1.2 suites it names replace the TLS 1.2 defaults, as OpenSSL's
    /// cipher list does, and the TLS 1.3 suites it names replace the TLS 1.3 defaults: a list
    /// naming suites of one version leaves the other's as they are. None: every suite.
    pub ciphers: Option<String>,
}

/// The cipher suites rustls (with ring) has, by OpenSSL's name and IANA's (the same for TLS 1.3),
/// strongest first within each version, as rustls orders them.
pub const CIPHER_SUITES: [(&str, &str, CipherSuite); 9] = [
    (
        "TLS_AES_256_GCM_SHA384",
        "TLS_AES_256_GCM_SHA384",
        CipherSuite::TLS13_AES_256_GCM_SHA384,
    ),
    (
        "TLS_AES_128_GCM_SHA256",
        "TLS_AES_128_GCM_SHA256",
        CipherSuite::TLS13_AES_128_GCM_SHA256,
    ),
    (
        "TLS_CHACHA20_POLY1305_SHA256",
        "TLS_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

/// The TLS versions rustls speaks, by the names mosquitto's `tls_version` gives them.
const VERSIONS: [(&str, &SupportedProtocolVersion); 2] = [("tlsv1.2", &version::TLS12), ("tlsv1.3", &version::TLS13)];

/// The versions `list` names (see [`TlsOptions::versions`]).
fn versions(list: &str) -> Result<Vec<&'static SupportedProtocolVersion>, String> {
    let mut chosen = Vec::new();
    for name in list.split(',').map(str::trim) {
        let Some(&(_, v)) = VERSIONS.iter().find(|(n, _)| *n == name) else {
            let why = match name {
                "tlsv1.1" | "tlsv1" | "tlsv1.0" | "sslv3" => "the library (rustls) speaks TLS 1.2 and 1.3 only",
                _ => "the versions are tlsv1.2 and tlsv1.3",
            };
            return Err(format!("tls_version \"{name}\" is not supported: {why}"));
        };
        if !chosen.contains(&v) {
            chosen.push(v);
        }
    }
    Ok(chosen)
}

/// The suites of `all` that `list` leaves offered (see [`TlsOptions::ciphers`]).
fn cipher_suites(list: &str, all: &[SupportedCipherSuite]) -> Result<Vec<SupportedCipherSuite>, String> {
    let mut named: Vec<SupportedCipherSuite> = Vec::new();
    for name in list.split([':', ',']).map(str::trim).filter(|n| !n.is_empty()) {
        let suite = CIPHER_SUITES
            .iter()
            .find(|(openssl, iana, _)| name.eq_ignore_ascii_case(openssl) || name.eq_ignore_ascii_case(iana))
            .and_then(|&(_, _, id)| all.iter().find(|s| s.suite() == id));
        let Some(&suite) = suite else {
            let known: Vec<&str> = CIPHER_SUITES.iter().map(|(openssl, _, _)| *openssl).collect();
            return Err(format!(
                "tls_ciphers: \"{name}\" is not a cipher suite the library (rustls) has; name suites (OpenSSL's \
                 keywords and operators such as HIGH or !aNULL are not read) among: {}",
                known.join(":")
            ));
        };
        if !named.iter().any(|s| s.suite() == suite.suite()) {
            named.push(suite);
        }
    }
    if named.is_empty() {
        return Err("tls_ciphers names no cipher suite".into());
    }
    let is_tls13 = |s: &SupportedCipherSuite| s.tls13().is_some();
    let names_tls13 = named.iter().any(is_tls13);
    let names_tls12 = named.iter().any(|s| !is_tls13(s));
    // The named ones in the application's order of preference, then the defaults of the version
    // the list leaves alone.
    let defaults = all
        .iter()
        .filter(|s| if is_tls13(s) { !names_tls13 } else { !names_tls12 });
    named.extend(defaults);
    Ok(named)
}

/// What a handshake settled on, by the names `tls_version` and `tls_ciphers` take.
fn session_summary(version: Option<ProtocolVersion>, suite: Option<SupportedCipherSuite>) -> String {
    let version = VERSIONS
        .iter()
        .find(|(_, v)| Some(v.version) == version)
        .map_or_else(|| format!("{version:?}"), |(n, _)| n.to_string());
    let suite = suite.map(|s| s.suite());
    let suite = CIPHER_SUITES
        .iter()
        .find(|(_, _, c)| Some(*c) == suite)
        .map_or_else(|| format!("{suite:?}"), |(n, _, _)| n.to_string());
    format!("TLS session: {version}, cipher suite {suite}")
}

/// A ready client configuration, shared by every connection of one client.
#[derive(Debug, Clone)]
pub struct Connector {
    config: Arc<ClientConfig>,
    server_name: Option<ServerName<'static>>,
    /// Logged at each connect: what the configuration gives up.
    warning: Option<String>,
}

impl Connector {
    pub fn new(o: &TlsOptions) -> Result<Connector, String> {
        let mut provider = rustls::crypto::ring::default_provider();
        if let Some(list) = &o.ciphers {
            provider.cipher_suites = cipher_suites(list, &provider.cipher_suites)?;
        }
        let versions = match &o.versions {
            Some(list) => versions(list)?,
            None => rustls::DEFAULT_VERSIONS.to_vec(),
        };
        let provider = Arc::new(provider);
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|e| {
                format!("tls_version and tls_ciphers: {e} (each TLS version offered needs one of its cipher suites)")
            })?;
        let builder = if o.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification(provider.signature_verification_algorithms)))
        } else {
            builder.with_root_certificates(roots(o.ca_file.as_deref(), o.ca_path.as_deref())?)
        };
        let mut config = match (&o.cert_file, &o.key_file) {
            (Some(cert), Some(key)) => builder
                .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(client_identity(cert, key, &provider)?))),
            (None, None) => builder.with_no_client_auth(),
            _ => return Err("tls_cert_file and tls_key_file go together: give both or neither".into()),
        };
        config.alpn_protocols = o.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        if config.alpn_protocols.iter().any(|p| p.is_empty() || p.len() > 255) {
            return Err("tls_alpn: each protocol name must be 1 to 255 bytes".into());
        }
        let server_name = o
            .server_name
            .as_deref()
            .map(|n| server_name(n).map_err(|e| format!("tls_server_name: {e}")))
            .transpose()?;
        // CAs are accepted with insecure mode, as mosquitto_pub takes `--cafile` with
        // `--insecure`, but named in the warning: they do not protect this connection.
        let warning = o.insecure.then(|| {
            let unused: String = [("tls_ca_file", &o.ca_file), ("tls_ca_path", &o.ca_path)]
                .iter()
                .filter_map(|(name, path)| {
                    path.as_ref()
                        .map(|p| format!("; {name} \"{}\" is not used", p.display()))
                })
                .collect();
            format!(
                "TLS certificate verification is off (tls_insecure): anyone in the middle can read and change \
                 the traffic{unused}"
            )
        });
        Ok(Connector {
            config: Arc::new(config),
            server_name,
            warning,
        })
    }

    /// What this configuration gives up, for the log of each connection it makes (insecure mode).
    pub fn warning(&self) -> Option<&str> {
        self.warning.as_deref()
    }

    /// Runs the TLS handshake over an open TCP stream to `host`; with the stream, says what the
    /// handshake settled on (version and cipher suite), for the log.
    pub async fn connect(&self, host: &str, tcp: TcpStream) -> std::io::Result<(TlsStream<TcpStream>, String)> {
        let name = match &self.server_name {
            Some(n) => n.clone(),
            None => server_name(host).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
        };
        let stream = tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(name, tcp)
            .await?;
        let session = stream.get_ref().1;
        let summary = session_summary(session.protocol_version(), session.negotiated_cipher_suite());
        Ok((stream, summary))
    }
}

fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_owned()).map_err(|e| format!("\"{host}\" is not a DNS name or IP address: {e}"))
}

fn roots(ca_file: Option<&Path>, ca_path: Option<&Path>) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    if let Some(path) = ca_file {
        let (added, _) = store.add_parsable_certificates(certificates(path, "tls_ca_file")?);
        if added == 0 {
            return Err(format!("tls_ca_file \"{}\": no usable CA certificate", path.display()));
        }
    }
    if let Some(dir) = ca_path {
        let (added, _) = store.add_parsable_certificates(directory_certificates(dir)?);
        if added == 0 {
            return Err(format!("tls_ca_path \"{}\": no usable CA certificate", dir.display()));
        }
    }
    match ca_file.or(ca_path) {
        Some(_) => {}
        None => {
            // Unreadable entries of the system store are skipped: one bad file must not take TLS
            // down, and an empty result is reported below.
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                return Err(
                    "no CA certificates in the system store (install ca-certificates, or set tls_ca_file)".into(),
                );
            }
        }
    }
    Ok(store)
}

fn certificates(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{what} \"{}\": {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{what} \"{}\": no PEM certificate in it", path.display()));
    }
    Ok(certs)
}

/// Every PEM certificate of the files of the directory `dir` (symbolic links followed, as the
/// hash links of a `c_rehash` directory are), in the order of their names. A file with no PEM
/// certificate (a CRL, a README) or that cannot be read is skipped, as OpenSSL's lookup skips what
/// it cannot use; finding none at all is an error that counts what was skipped.
fn directory_certificates(dir: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let what = |e: std::io::Error| format!("tls_ca_path \"{}\": {e}", dir.display());
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(what)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut certs = Vec::new();
    let mut skipped = 0;
    for file in &files {
        match CertificateDer::pem_file_iter(file).and_then(|it| it.collect::<Result<Vec<_>, _>>()) {
            Ok(found) if !found.is_empty() => certs.extend(found),
            _ => skipped += 1,
        }
    }
    if certs.is_empty() {
        return Err(format!(
            "tls_ca_path \"{}\": no PEM certificate in it ({} files, {skipped} without a readable certificate)",
            dir.display(),
            files.len()
        ));
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        format!(
            "tls_key_file \"{}\": {e} (an unencrypted PKCS#8, PKCS#1 or SEC1 PEM key is needed)",
            path.display()
        )
    })
}

/// The client certificate chain and its key, checked to be a pair. rustls's own check parses the
/// certificate with webpki, which refuses X.509 v1: what `openssl x509 -req` makes without an
/// extensions file (mosquitto-tls(7)'s recipe), and what brokers accept as a client certificate.
/// So the certificate's SubjectPublicKeyInfo is compared with the key's here.
fn client_identity(cert_file: &Path, key_file: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, String> {
    let chain = certificates(cert_file, "tls_cert_file")?;
    let key = provider
        .key_provider
        .load_private_key(private_key(key_file)?)
        .map_err(|e| format!("tls_key_file \"{}\": {e}", key_file.display()))?;
    let cert_spki = subject_public_key_info(&chain[0]).ok_or_else(|| {
        format!(
            "tls_cert_file \"{}\": its first certificate is not a DER X.509 certificate",
            cert_file.display()
        )
    })?;
    // A key that cannot give its public key (ring's all can) leaves the proof to the handshake.
    if key.public_key().is_some_and(|spki| spki.as_ref() != cert_spki) {
        return Err(format!(
            "tls_cert_file \"{}\" and tls_key_file \"{}\" do not make a pair: the certificate's public key \
             does not match the private key",
            cert_file.display(),
            key_file.display()
        ));
    }
    Ok(CertifiedKey::new(chain, key))
}

/// The SubjectPublicKeyInfo (whole DER element) of a DER certificate, reached by skipping the
/// fields before it, any version from 1 to 3:
/// Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { version [0] EXPLICIT OPTIONAL,
/// serialNumber INTEGER, signature SEQUENCE, issuer SEQUENCE, validity SEQUENCE,
/// subject SEQUENCE, subjectPublicKeyInfo SEQUENCE, ... }, ... }.
fn subject_public_key_info(cert: &[u8]) -> Option<&[u8]> {
    const INTEGER: u8 = 0x02;
    const SEQUENCE: u8 = 0x30;
    const VERSION: u8 = 0xa0;
    let (_, certificate, _) = der_element(cert, SEQUENCE)?;
    let (_, mut tbs, _) = der_element(certificate, SEQUENCE)?;
    if tbs.first() == Some(&VERSION) {
        tbs = der_element(tbs, VERSION)?.2;
    }
    for tag in [INTEGER, SEQUENCE, SEQUENCE, SEQUENCE, SEQUENCE] {
        tbs = der_element(tbs, tag)?.2;
    }
    der_element(tbs, SEQUENCE).map(|(whole, _, _)| whole)
}

/// The DER element at the start of `input` if its tag is `tag` (single-byte tags only, all a
/// certificate's outer fields use): (the whole element, its content, what follows it).
fn der_element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8], &[u8])> {
    let (&found, rest) = input.split_first()?;
    let (&length, rest) = rest.split_first()?;
    if found != tag {
        return None;
    }
    let (len, rest) = match length {
        0..=0x7f => (usize::from(length), rest),
        // Long form: the next 1 to 4 bytes are the length, big-endian.
        0x81..=0x84 => {
            let n = usize::from(length & 0x7f);
            let bytes = rest.get(..n)?;
            let len = bytes.iter().fold(0usize, |len, &b| len << 8 | usize::from(b));
            (len, &rest[n..])
        }
        _ => return None,
    };
    let content = rest.get(..len)?;
    let header = input.len() - rest.len();
    Some((&input[..header + len], content, &rest[len..]))
}

/// Says what a TLS failure means for the user, beyond rustls's terse variant names.
pub fn explain(e: &rustls::Error) -> String {
    use rustls::{AlertDescription, CertificateError, Error};
    let hint = match e {
        Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            " (the broker's certificate is not signed by a trusted CA: set tls_ca_file or tls_ca_path to the CA that signed it)"
        }
        Error::InvalidCertificate(CertificateError::NotValidForName)
        | Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. }) => {
            " (the broker's certificate does not name the host connected to: set tls_server_name to a name it carries)"
        }
        Error::InvalidCertificate(CertificateError::Expired | CertificateError::ExpiredContext { .. }) => {
            " (the broker's certificate has expired)"
        }
        Error::AlertReceived(AlertDescription::CertificateRequired) => {
            " (the broker requires a client certificate: set tls_cert_file and tls_key_file)"
        }
        Error::AlertReceived(AlertDescription::HandshakeFailure) => {
            " (the broker may require a client certificate: set tls_cert_file and tls_key_file; or it shares \
             no cipher suite with those offered: see tls_ciphers)"
        }
        Error::AlertReceived(AlertDescription::ProtocolVersion) | Error::PeerIncompatible(_) => {
            " (the broker speaks none of the TLS versions offered, or shares no cipher suite with those offered: \
             see tls_version and tls_ciphers)"
        }
        Error::AlertReceived(AlertDescription::UnknownCA | AlertDescription::BadCertificate) => {
            " (the broker does not trust the client certificate)"
        }
        Error::NoApplicationProtocol | Error::AlertReceived(AlertDescription::NoApplicationProtocol) => {
            " (the broker accepts none of the ALPN protocols offered)"
        }
        _ => "",
    };
    format!("TLS: {e}{hint}")
}

/// The verifier of the explicit insecure mode: every certificate is accepted, but handshake
/// signatures are still checked so that the session keys are at least bound to the certificate.
#[derive(Debug)]
struct NoVerification(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mqttc-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn refused(o: TlsOptions) -> String {
        Connector::new(&o).expect_err("the configuration must be refused")
    }

    #[test]
    fn bad_files_and_values_are_refused_with_what_is_wrong() {
        let missing = PathBuf::from("/nonexistent/ca.pem");
        let e = refused(TlsOptions {
            ca_file: Some(missing),
            ..TlsOptions::default()
        });
        assert!(e.contains("tls_ca_file \"/nonexistent/ca.pem\""), "{e}");

        let e = refused(TlsOptions {
            ca_file: Some(file("empty.pem", "not a certificate\n")),
            ..TlsOptions::default()
        });
        assert!(e.contains("no PEM certificate"), "{e}");

        let e = refused(TlsOptions {
            insecure: true,
            cert_file: Some(file("lonely.pem", "")),
            ..TlsOptions::default()
        });
        assert!(e.contains("both or neither"), "{e}");

        let e = refused(TlsOptions {
            insecure: true,
            alpn: vec!["mqtt".into(), String::new()],
            ..TlsOptions::default()
        });
        assert!(e.contains("tls_alpn"), "{e}");

        let e = refused(TlsOptions {
            insecure: true,
            server_name: Some("not a name!".into()),
            ..TlsOptions::default()
        });
        assert!(e.contains("tls_server_name"), "{e}");
    }

    #[test]
    fn versions_and_cipher_suites_are_read_by_name_and_others_refused() {
        let insecure = |versions: Option<&str>, ciphers: Option<&str>| TlsOptions {
            insecure: true,
            versions: versions.map(str::to_owned),
            ciphers: ciphers.map(str::to_owned),
            ..TlsOptions::default()
        };
        let e = refused(insecure(Some("tlsv1.1"), None));
        assert!(e.contains("\"tlsv1.1\"") && e.contains("TLS 1.2 and 1.3 only"), "{e}");
        let e = refused(insecure(Some("tlsv1.2,tls13"), None));
        assert!(e.contains("\"tls13\"") && e.contains("tlsv1.2 and tlsv1.3"), "{e}");
        for bad in [
            "HIGH",
            "ECDHE-ECDSA-AES256-GCM-SHA384:!aNULL",
            "AES256-SHA",
            "DHE-RSA-AES256-GCM-SHA384",
        ] {
            let e = refused(insecure(None, Some(bad)));
            assert!(
                e.contains("tls_ciphers") && e.contains("ECDHE-RSA-AES128-GCM-SHA256"),
                "{bad}: {e}"
            );
        }
        assert!(refused(insecure(None, Some(" : , "))).contains("names no cipher suite"));

        let all = rustls::crypto::ring::default_provider().cipher_suites;
        let names =
            |list: &str| -> Vec<CipherSuite> { cipher_suites(list, &all).unwrap().iter().map(|s| s.suite()).collect() };
        let tls13: Vec<CipherSuite> = all.iter().filter(|s| s.tls13().is_some()).map(|s| s.suite()).collect();
        // TLS 1.2 suites named (by OpenSSL's name or IANA's, in any case) replace TLS 1.2's in the
        // order given and leave TLS 1.3's; and the other way round.
        let mut want = vec![
            CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ];
        want.extend(&tls13);
        assert_eq!(
            names(
                "ECDHE-RSA-AES128-GCM-SHA256:tls_ecdhe_ecdsa_with_chacha20_poly1305_sha256,ECDHE-RSA-AES128-GCM-SHA256"
            ),
            want
        );
        let only13 = names("TLS_AES_128_GCM_SHA256");
        assert_eq!(only13[0], CipherSuite::TLS13_AES_128_GCM_SHA256);
        assert_eq!(only13.len(), 1 + all.len() - tls13.len(), "{only13:?}");
        assert!(Connector::new(&insecure(Some("tlsv1.3"), Some("TLS_AES_128_GCM_SHA256"))).is_ok());
    }

    #[test]
    fn a_ca_directory_gives_the_certificates_of_its_files_and_must_hold_one() {
        let dir = std::env::temp_dir().join(format!("mqttc-tls-unit-capath-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let e = refused(TlsOptions {
            ca_path: Some(dir.clone()),
            ..TlsOptions::default()
        });
        assert!(e.contains("tls_ca_path") && e.contains("no PEM certificate"), "{e}");
        std::fs::write(dir.join("README"), "not a certificate\n").unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let ca = rcgen::CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        let certs = directory_certificates(&dir).unwrap();
        assert_eq!(certs, vec![ca.der().clone()]);
        let e = refused(TlsOptions {
            ca_path: Some(dir.join("missing")),
            ..TlsOptions::default()
        });
        assert!(e.contains("tls_ca_path") && e.contains("missing"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_public_key_is_found_in_a_certificate_and_a_cut_one_is_no_certificate() {
        use rcgen::PublicKeyData;
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = cert.der().as_ref();
        assert_eq!(subject_public_key_info(der), Some(&key.subject_public_key_info()[..]));
        for len in 0..der.len() {
            assert_eq!(subject_public_key_info(&der[..len]), None, "cut at {len}");
        }
    }

    #[test]
    fn insecure_mode_needs_no_ca_at_all() {
        let c = Connector::new(&TlsOptions {
            insecure: true,
            alpn: vec!["mqtt".into()],
            ..TlsOptions::default()
        })
        .unwrap();
        assert_eq!(c.config.alpn_protocols, vec![b"mqtt".to_vec()]);
    }
}
