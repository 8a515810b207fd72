//! A TCP connection through a SOCKS5 proxy (RFC 1928), with the username and password
//! authentication of RFC 1929: the broker's host name goes to the proxy as it is, for the proxy to
//! resolve (curl's and mosquitto's `socks5h`), so that a client whose network reaches only the
//! proxy needs no resolver of its own.
use std::io::{Error, ErrorKind};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const VERSION: u8 = 5;
const NO_AUTH: u8 = 0;
const USERNAME_PASSWORD: u8 = 2;
const NO_ACCEPTABLE_METHOD: u8 = 0xff;
const CONNECT: u8 = 1;
const IPV4: u8 = 1;
const DOMAIN: u8 = 3;
const IPV6: u8 = 4;
/// The version of RFC 1929's subnegotiation.
const AUTH_VERSION: u8 = 1;

/// Where the proxy is and how to log in to it.
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    pub host: String,
    pub port: u16,
    /// Username and password (RFC 1929: 1 to 255 bytes, and 0 to 255), offered along with no
    /// authentication for the proxy to choose.
    pub login: Option<(String, String)>,
}

/// The port of a proxy address that names none: SOCKS's.
const DEFAULT_PORT: u16 = 1080;

impl std::fmt::Debug for Proxy {
    /// Without the password, which must not reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.login.as_ref().map(|(user, _)| user))
            .finish()
    }
}

impl std::fmt::Display for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.host.contains(':') {
            true => write!(f, "SOCKS5 proxy [{}]:{}", self.host, self.port),
            false => write!(f, "SOCKS5 proxy {}:{}", self.host, self.port),
        }
    }
}

impl std::str::FromStr for Proxy {
    type Err = String;

    /// Parses `socks5h://[username[:password]@]host[:port]` (mosquitto's `--proxy`); an IPv6
    /// host goes in brackets. The password may hold '@' and ':' (the last '@' ends it); nothing
    /// is percent-decoded.
    fn from_str(url: &str) -> Result<Proxy, String> {
        // Errors show the URL without its password, which must not reach a log.
        let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
        let shown = match rest
            .rsplit_once('@')
            .and_then(|(login, host)| Some((login.split_once(':')?.0, host)))
        {
            Some((user, host)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_owned(),
        };
        let bad = |why: &str| format!("proxy \"{shown}\": {why}");
        let rest = url
            .strip_prefix("socks5h://")
            .ok_or_else(|| bad("only socks5h://[username[:password]@]host[:port] is supported"))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (login, address) = match rest.rsplit_once('@') {
            Some((login, address)) => {
                let (user, password) = login.split_once(':').unwrap_or((login, ""));
                if user.is_empty() || user.len() > 255 || password.len() > 255 {
                    return Err(bad("the username must have 1 to 255 bytes, the password at most 255"));
                }
                (Some((user.to_owned(), password.to_owned())), address)
            }
            None => (None, rest),
        };
        let (host, port) = match address.strip_prefix('[') {
            Some(v6) => match v6.split_once(']') {
                Some((host, "")) => (host, None),
                Some((host, port)) => (host, Some(port.strip_prefix(':').ok_or_else(|| bad("junk after ']'"))?)),
                None => return Err(bad("unclosed '['")),
            },
            None => match address.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (address, None),
            },
        };
        if host.is_empty() || host.contains(['/', ' ', '?', '#', '[', ']']) {
            return Err(bad("no host, or a bad one"));
        }
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err(bad(&format!("bad port \"{p}\""))),
            },
        };
        Ok(Proxy {
            host: host.to_owned(),
            port,
            login,
        })
    }
}

/// Has the proxy at the other end of `stream` connect it to `host:port`: on success, what is
/// written to `stream` goes to the broker.
pub async fn connect<S: AsyncRead + AsyncWrite + Unpin>(
    proxy: &Proxy,
    stream: &mut S,
    host: &str,
    port: u16,
) -> std::io::Result<()> {
    let fail = |kind: ErrorKind, why: String| Error::new(kind, format!("{proxy}: {why}"));
    let closed = |e: Error| match e.kind() {
        ErrorKind::UnexpectedEof => fail(
            ErrorKind::ConnectionAborted,
            "closed the connection in the handshake".into(),
        ),
        _ => fail(e.kind(), e.to_string()),
    };
    let methods: &[u8] = match proxy.login {
        Some(_) => &[NO_AUTH, USERNAME_PASSWORD],
        None => &[NO_AUTH],
    };
    let mut hello = vec![VERSION, methods.len() as u8];
    hello.extend_from_slice(methods);
    stream.write_all(&hello).await.map_err(closed)?;
    let mut choice = [0u8; 2];
    stream.read_exact(&mut choice).await.map_err(closed)?;
    if choice[0] != VERSION {
        return Err(fail(
            ErrorKind::InvalidData,
            format!("not a SOCKS5 server (version {})", choice[0]),
        ));
    }
    match (choice[1], &proxy.login) {
        (NO_AUTH, _) => {}
        (USERNAME_PASSWORD, Some((user, password))) => {
            let mut auth = vec![AUTH_VERSION, user.len() as u8];
            auth.extend_from_slice(user.as_bytes());
            auth.push(password.len() as u8);
            auth.extend_from_slice(password.as_bytes());
            stream.write_all(&auth).await.map_err(closed)?;
            let mut status = [0u8; 2];
            stream.read_exact(&mut status).await.map_err(closed)?;
            if status[1] != 0 {
                return Err(fail(
                    ErrorKind::PermissionDenied,
                    format!(
                        "refused the username \"{user}\" and its password (RFC 1929 status {})",
                        status[1]
                    ),
                ));
            }
        }
        (NO_ACCEPTABLE_METHOD, None) => {
            return Err(fail(
                ErrorKind::PermissionDenied,
                "requires authentication: give a username and password in the proxy URL".into(),
            ));
        }
        (NO_ACCEPTABLE_METHOD, Some(_)) => {
            return Err(fail(
                ErrorKind::PermissionDenied,
                "accepts neither no authentication nor a username and password".into(),
            ));
        }
        (other, _) => {
            return Err(fail(
                ErrorKind::InvalidData,
                format!("chose authentication method {other}, which was not offered"),
            ));
        }
    }
    let mut request = vec![VERSION, CONNECT, 0];
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => {
            request.push(IPV4);
            request.extend_from_slice(&ip.octets());
        }
        Ok(std::net::IpAddr::V6(ip)) => {
            request.push(IPV6);
            request.extend_from_slice(&ip.octets());
        }
        Err(_) => {
            let name = u8::try_from(host.len()).map_err(|_| {
                fail(
                    ErrorKind::InvalidInput,
                    format!("the host name \"{host}\" is over 255 bytes"),
                )
            })?;
            request.extend_from_slice(&[DOMAIN, name]);
            request.extend_from_slice(host.as_bytes());
        }
    }
    request.extend_from_slice(&port.to_be_bytes());
    stream.write_all(&request).await.map_err(closed)?;
    // VER REP RSV ATYP, then the address the proxy bound, whose length ATYP gives, and its port.
    let mut reply = [0u8; 4];
    stream.read_exact(&mut reply).await.map_err(closed)?;
    if reply[0] != VERSION {
        return Err(fail(
            ErrorKind::InvalidData,
            format!("not a SOCKS5 reply (version {})", reply[0]),
        ));
    }
    if reply[1] != 0 {
        let (kind, why) = match reply[1] {
            2 => (ErrorKind::PermissionDenied, "its rules do not allow the connection"),
            3 => (ErrorKind::NetworkUnreachable, "network unreachable"),
            4 => (ErrorKind::HostUnreachable, "host unreachable"),
            5 => (ErrorKind::ConnectionRefused, "connection refused by the broker"),
            6 => (ErrorKind::TimedOut, "TTL expired"),
            7 => (ErrorKind::Unsupported, "CONNECT not supported"),
            8 => (ErrorKind::Unsupported, "address type not supported"),
            _ => (ErrorKind::Other, "general failure"),
        };
        return Err(fail(
            kind,
            format!("could not connect to {host}:{port}: {why} (SOCKS5 reply {})", reply[1]),
        ));
    }
    let address = match reply[3] {
        IPV4 => 4,
        IPV6 => 16,
        DOMAIN => {
            let mut len = [0u8; 1];
            stream.read_exact(&mut len).await.map_err(closed)?;
            usize::from(len[0])
        }
        other => {
            return Err(fail(
                ErrorKind::InvalidData,
                format!("replied with address type {other}"),
            ));
        }
    };
    let mut bound = vec![0u8; address + 2];
    stream.read_exact(&mut bound).await.map_err(closed)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxy(host: &str, port: u16, login: Option<(&str, &str)>) -> Result<Proxy, String> {
        Ok(Proxy {
            host: host.into(),
            port,
            login: login.map(|(u, p)| (u.into(), p.into())),
        })
    }

    #[test]
    fn parses_mosquittos_proxy_urls() {
        assert_eq!("socks5h://localhost".parse(), proxy("localhost", 1080, None));
        assert_eq!("socks5h://p.example:9050/".parse(), proxy("p.example", 9050, None));
        assert_eq!("socks5h://[::1]:1081".parse(), proxy("::1", 1081, None));
        assert_eq!("socks5h://u@h".parse(), proxy("h", 1080, Some(("u", ""))));
        assert_eq!(
            "socks5h://u:p@ss:w@rd@h:2".parse(),
            proxy("h", 2, Some(("u", "p@ss:w@rd")))
        );
        let long = "x".repeat(256);
        for bad in [
            "socks5://h",
            "http://h",
            "h:1080",
            "socks5h://",
            "socks5h://h:0",
            "socks5h://h:x",
            "socks5h://[::1",
            "socks5h://@h",
            "socks5h://:p@h",
            &format!("socks5h://{long}:p@h"),
            &format!("socks5h://u:{long}@h"),
        ] {
            let e = bad.parse::<Proxy>().expect_err(bad);
            assert!(e.contains(bad) || e.contains(":***@h"), "{e}");
        }
        let e = "socks5h://u:secret@h:0".parse::<Proxy>().expect_err("port 0");
        assert!(e.contains("\"socks5h://u:***@h:0\"") && !e.contains("secret"), "{e}");
        // The password stays out of what is shown.
        let p: Proxy = "socks5h://u:secret@h".parse().unwrap();
        assert!(!format!("{p:?} {p}").contains("secret"));
    }

    /// Runs the client's side against `script`, a scripted proxy given the other end.
    fn handshake(
        login: Option<(&str, &str)>,
        host: &str,
        script: impl AsyncFnOnce(tokio::io::DuplexStream),
    ) -> std::io::Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (mut ours, theirs) = tokio::io::duplex(1024);
            let p = proxy("proxy.test", 1080, login).unwrap();
            // The script ends by dropping its end, which a client still reading sees as EOF.
            let (r, ()) = tokio::join!(connect(&p, &mut ours, host, 1883), script(theirs));
            r
        })
    }

    async fn expect(s: &mut tokio::io::DuplexStream, want: &[u8]) {
        let mut got = vec![0u8; want.len()];
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(got, want);
    }

    #[test]
    fn logs_in_and_sends_the_host_name_for_the_proxy_to_resolve() {
        let r = handshake(Some(("user", "pw")), "broker.test", async |mut s| {
            expect(&mut s, &[5, 2, 0, 2]).await;
            s.write_all(&[5, 2]).await.unwrap();
            expect(&mut s, b"\x01\x04user\x02pw").await;
            s.write_all(&[1, 0]).await.unwrap();
            expect(&mut s, b"\x05\x01\x00\x03\x0bbroker.test\x07\x5b").await;
            s.write_all(&[5, 0, 0, 3, 4, b'h', b'o', b's', b't', 0x12, 0x34])
                .await
                .unwrap();
        });
        assert!(r.is_ok(), "{r:?}");
        let r = handshake(None, "::1", async |mut s| {
            expect(&mut s, &[5, 1, 0]).await;
            s.write_all(&[5, 0]).await.unwrap();
            let mut request = vec![5, 1, 0, 4];
            request.extend_from_slice(&"::1".parse::<std::net::Ipv6Addr>().unwrap().octets());
            request.extend_from_slice(&[7, 0x5b]);
            expect(&mut s, &request).await;
            s.write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0, 1]).await.unwrap();
        });
        assert!(r.is_ok(), "{r:?}");
    }

    fn refusal(r: std::io::Result<()>) -> String {
        let e = r.expect_err("the handshake must fail");
        e.to_string()
    }

    #[test]
    fn each_refusal_and_broken_reply_says_what_went_wrong() {
        let e = refusal(handshake(Some(("user", "bad")), "h", async |mut s| {
            expect(&mut s, &[5, 2, 0, 2]).await;
            s.write_all(&[5, 2]).await.unwrap();
            expect(&mut s, b"\x01\x04user\x03bad").await;
            s.write_all(&[1, 1]).await.unwrap();
        }));
        assert!(
            e.contains("SOCKS5 proxy proxy.test:1080: refused the username \"user\""),
            "{e}"
        );
        let e = refusal(handshake(None, "h", async |mut s| {
            expect(&mut s, &[5, 1, 0]).await;
            s.write_all(&[5, 0xff]).await.unwrap();
        }));
        assert!(e.contains("requires authentication"), "{e}");
        let e = refusal(handshake(None, "h", async |mut s| {
            expect(&mut s, &[5, 1, 0]).await;
            s.write_all(&[5, 0]).await.unwrap();
            expect(&mut s, b"\x05\x01\x00\x03\x01h\x07\x5b").await;
            s.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]).await.unwrap();
        }));
        assert!(e.contains("could not connect to h:1883: connection refused"), "{e}");
        let e = refusal(handshake(None, "h", async |mut s| {
            expect(&mut s, &[5, 1, 0]).await;
            s.write_all(b"HTTP/1.1 400").await.unwrap();
        }));
        assert!(e.contains("not a SOCKS5 server"), "{e}");
        let e = refusal(handshake(None, "h", async |mut s| {
            expect(&mut s, &[5, 1, 0]).await;
            s.write_all(&[5]).await.unwrap();
        }));
        assert!(e.contains("closed the connection in the handshake"), "{e}");
        let e = refusal(handshake(None, "h", async |mut s| {
            expect(&mut s, &[5, 1, 0]).await;
            s.write_all(&[5, 2]).await.unwrap();
        }));
        assert!(e.contains("method 2, which was not offered"), "{e}");
        let e = refusal(handshake(None, &"n".repeat(256), async |mut s| {
            expect(&mut s, &[5, 1, 0]).await;
            s.write_all(&[5, 0]).await.unwrap();
        }));
        assert!(e.contains("over 255 bytes"), "{e}");
    }
}
