//! The byte stream under MQTT: TCP or a Unix-domain socket, behind one pair of boxed halves so the
//! connection loop does not care which (TLS and WebSockets will slot in here).
use std::path::PathBuf;

use tokio::io::{AsyncRead, AsyncWrite};

pub type Reader = Box<dyn AsyncRead + Send + Unpin>;
pub type Writer = Box<dyn AsyncWrite + Send + Unpin>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// Host name or IP literal; names are resolved on the network thread, never on the caller's.
    Tcp {
        host: String,
        port: u16,
    },
    Unix(PathBuf),
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Tcp { host, port } => write!(f, "{host}:{port}"),
            Address::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

pub async fn connect(addr: &Address) -> std::io::Result<(Reader, Writer)> {
    match addr {
        Address::Tcp { host, port } => {
            let s = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
            // MQTT packets are small and latency-sensitive; we batch writes ourselves.
            s.set_nodelay(true)?;
            let (r, w) = s.into_split();
            Ok((Box::new(r), Box::new(w)))
        }
        Address::Unix(path) => {
            let s = tokio::net::UnixStream::connect(path).await?;
            let (r, w) = s.into_split();
            Ok((Box::new(r), Box::new(w)))
        }
    }
}
