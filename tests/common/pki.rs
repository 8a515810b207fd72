//! Certificates made at test time with rcgen: a CA, a broker certificate it signs, a client
//! certificate it signs, and a second CA nobody trusts. Written as PEM files into a temp dir that
//! both our client and mosquitto (which drops to its own user when started as root) can read.
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

use super::{TempDir, temp_dir};

/// The names the broker's certificate carries; deliberately no IP address, so that connecting to
/// 127.0.0.1 exercises name verification.
pub const SERVER_NAMES: [&str; 2] = ["localhost", "broker.test"];

pub struct Pki {
    pub dir: TempDir,
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A CA that signed nothing here: trusting only it must fail verification.
    pub other_ca: PathBuf,
}

fn new_ca(name: &str) -> (CertificateParams, KeyPair) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    (params, KeyPair::generate().unwrap())
}

fn leaf(
    names: &[&str],
    common_name: &str,
    usage: ExtendedKeyUsagePurpose,
    issuer: &Issuer<'_, KeyPair>,
) -> (String, String) {
    let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, common_name);
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

impl Pki {
    pub fn new() -> Pki {
        let dir = temp_dir("pki");
        let write = |name: &str, pem: &str| {
            let path = dir.join(name);
            std::fs::write(&path, pem).unwrap();
            path
        };
        let (ca_params, ca_key) = new_ca("mqttclient test CA");
        let ca = write("ca.pem", &ca_params.self_signed(&ca_key).unwrap().pem());
        let issuer = Issuer::new(ca_params, ca_key);
        let (cert, key) = leaf(&SERVER_NAMES, "localhost", ExtendedKeyUsagePurpose::ServerAuth, &issuer);
        let (server_cert, server_key) = (write("server.pem", &cert), write("server.key", &key));
        let (cert, key) = leaf(
            &[],
            "mqttclient test client",
            ExtendedKeyUsagePurpose::ClientAuth,
            &issuer,
        );
        let (client_cert, client_key) = (write("client.pem", &cert), write("client.key", &key));
        let (other_params, other_key) = new_ca("untrusted test CA");
        let other_ca = write("other-ca.pem", &other_params.self_signed(&other_key).unwrap().pem());
        Pki {
            dir,
            ca,
            server_cert,
            server_key,
            client_cert,
            client_key,
            other_ca,
        }
    }

    /// mosquitto listener settings that make the listener TLS with our broker certificate; with
    /// `require_client_cert`, clients must present a certificate our CA signed.
    pub fn mosquitto_tls(&self, require_client_cert: bool) -> String {
        format!(
            "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate {require_client_cert}\n",
            self.ca.display(),
            self.server_cert.display(),
            self.server_key.display()
        )
    }
}

/// Runs the `openssl` CLI in `dir` with the words of `command`; returns what it printed.
pub fn openssl(dir: &Path, command: &str) -> String {
    let out = std::process::Command::new("openssl")
        .args(command.split_whitespace())
        .current_dir(dir)
        .output()
        .expect("the openssl CLI (scripts/deps.sh installs it)");
    assert!(
        out.status.success(),
        "openssl {command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A CA directory as OpenSSL reads one (`--capath`, `c_rehash`): `ca` under its subject hash name
/// (`<hash>.0`) and a file that is no certificate.
pub fn hashed_ca_dir(tag: &str, ca: &Path) -> TempDir {
    let dir = temp_dir(tag);
    std::fs::copy(ca, dir.join("ca.pem")).unwrap();
    let hash = openssl(&dir, "x509 -hash -noout -in ca.pem");
    std::fs::rename(dir.join("ca.pem"), dir.join(format!("{}.0", hash.trim()))).unwrap();
    std::fs::write(dir.join("README"), "CA certificates, one per file\n").unwrap();
    dir
}
