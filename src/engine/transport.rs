//! The byte stream under MQTT: TCP, TLS over TCP, or a Unix-domain socket, behind one pair of boxed
//! halves so the connection loop does not care which.
use std::path::PathBuf;

use tokio::io::{AsyncRead, AsyncWrite};

use super::tls::Connector;

pub type Reader = Box<dyn AsyncRead + Send + Unpin>;
pub type Writer = Box<dyn AsyncWrite + Send + Unpin>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// Host name or IP literal; names are resolved on the network thread, never on the caller's.
    Tcp {
        host: String,
        port: u16,
        /// TLS over the TCP stream (`mqtts://`).
        tls: bool,
    },
    Unix(PathBuf),
}

impl Address {
    /// Plain TCP to `host:port`.
    pub fn tcp(host: impl Into<String>, port: u16) -> Address {
        Address::Tcp {
            host: host.into(),
            port,
            tls: false,
        }
    }

    /// Whether connecting needs the TLS configuration.
    pub fn uses_tls(&self) -> bool {
        matches!(self, Address::Tcp { tls: true, .. })
    }

    /// The same server reached over TLS (the `tls` option of a host-and-port client).
    pub fn with_tls(self) -> Address {
        match self {
            Address::Tcp { host, port, .. } => Address::Tcp { host, port, tls: true },
            other => other,
        }
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Tcp { host, port, tls } => {
                let scheme = if *tls { "mqtts" } else { "mqtt" };
                match host.contains(':') {
                    true => write!(f, "{scheme}://[{host}]:{port}"),
                    false => write!(f, "{scheme}://{host}:{port}"),
                }
            }
            Address::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// The ports MQTT over plain TCP and over TLS use when a server address names none.
pub const DEFAULT_PORT: u16 = 1883;
pub const DEFAULT_TLS_PORT: u16 = 8883;

impl std::str::FromStr for Address {
    type Err = String;

    /// Parses a server address: `mqtt://host[:port]` or `tcp://host[:port]` (port 1883 by
    /// default), `mqtts://`, `ssl://` or `tls://` for TLS (port 8883), a bare `host[:port]` (plain
    /// TCP; IPv6 literals in brackets, `[::1]:1883`), or `unix:/path` / `unix:///path` for a
    /// Unix-domain socket.
    fn from_str(uri: &str) -> Result<Address, String> {
        if let Some(path) = uri.strip_prefix("unix:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if !path.starts_with('/') {
                return Err(format!("\"{uri}\": a unix: address needs an absolute path"));
            }
            return Ok(Address::Unix(PathBuf::from(path)));
        }
        let (rest, tls) = match uri.split_once("://") {
            Some(("tcp" | "mqtt", rest)) => (rest, false),
            Some(("mqtts" | "ssl" | "tls", rest)) => (rest, true),
            Some((scheme, _)) => return Err(format!("\"{uri}\": unsupported scheme \"{scheme}\"")),
            None => (uri, false),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("\"{uri}\": unclosed '[' in the host"))?;
            match after {
                "" => (host, None),
                _ => (
                    host,
                    Some(
                        after
                            .strip_prefix(':')
                            .ok_or_else(|| format!("\"{uri}\": junk after ']'"))?,
                    ),
                ),
            }
        } else {
            match rest.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            }
        };
        if host.is_empty() || host.contains(['/', ' ', '@', '?', '#']) {
            return Err(format!("\"{uri}\": bad host \"{host}\""));
        }
        let port = match port {
            None if tls => DEFAULT_TLS_PORT,
            None => DEFAULT_PORT,
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err(format!("\"{uri}\": bad port \"{p}\"")),
            },
        };
        Ok(Address::Tcp {
            host: host.to_owned(),
            port,
            tls,
        })
    }
}

/// Opens the stream to `addr`; `tls` is the client's TLS configuration, needed by TLS addresses.
pub async fn connect(addr: &Address, tls: Option<&Connector>) -> std::io::Result<(Reader, Writer)> {
    match addr {
        Address::Tcp {
            host,
            port,
            tls: secure,
        } => {
            let s = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
            // MQTT packets are small and latency-sensitive; we batch writes ourselves.
            s.set_nodelay(true)?;
            if !*secure {
                let (r, w) = s.into_split();
                return Ok((Box::new(r), Box::new(w)));
            }
            let connector = tls.ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "a TLS address but no TLS configuration",
                )
            })?;
            let (r, w) = tokio::io::split(connector.connect(host, s).await?);
            Ok((Box::new(r), Box::new(w)))
        }
        Address::Unix(path) => {
            let s = tokio::net::UnixStream::connect(path).await?;
            let (r, w) = s.into_split();
            Ok((Box::new(r), Box::new(w)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> Result<Address, String> {
        Ok(Address::tcp(host, port))
    }

    fn tls(host: &str, port: u16) -> Result<Address, String> {
        Ok(Address::tcp(host, port).with_tls())
    }

    #[test]
    fn parses_the_address_forms() {
        assert_eq!("tcp://broker.example:1884".parse(), tcp("broker.example", 1884));
        assert_eq!("mqtt://10.0.0.1".parse(), tcp("10.0.0.1", 1883));
        assert_eq!("localhost:1999".parse(), tcp("localhost", 1999));
        assert_eq!("localhost".parse(), tcp("localhost", 1883));
        assert_eq!("tcp://[::1]:1885/".parse(), tcp("::1", 1885));
        assert_eq!("[fe80::1]".parse(), tcp("fe80::1", 1883));
        assert_eq!(
            "unix:///run/mqtt.sock".parse(),
            Ok(Address::Unix("/run/mqtt.sock".into()))
        );
        assert_eq!("unix:/tmp/s".parse(), Ok(Address::Unix("/tmp/s".into())));
        assert_eq!("mqtts://broker.example".parse(), tls("broker.example", 8883));
        assert_eq!("ssl://broker.example:18883".parse(), tls("broker.example", 18883));
        assert_eq!("tls://[::1]".parse(), tls("::1", 8883));
    }

    #[test]
    fn displays_as_a_uri_that_parses_back() {
        for a in [tcp("h", 1), tls("::1", 8883), Ok(Address::Unix("/run/m.sock".into()))] {
            let a = a.unwrap();
            assert_eq!(a.to_string().parse(), Ok(a.clone()), "{a}");
        }
    }

    #[test]
    fn rejects_bad_addresses_with_a_reason() {
        for bad in [
            "",
            "tcp://",
            ":1883",
            "host:0",
            "host:65536",
            "host:x",
            "ws://host",
            "unix:rel/path",
            "[::1",
            "[::1]x",
            "a b:1",
        ] {
            let e = bad.parse::<Address>().expect_err(bad);
            assert!(e.contains(bad), "{e} names the input");
        }
    }
}
