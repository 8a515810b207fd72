//! The byte stream under MQTT: TCP, TLS over TCP, WebSockets over either, or a Unix-domain socket,
//! behind one pair of boxed halves so the connection loop does not care which.
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpSocket, TcpStream};

use super::tls::Connector;
use crate::sys::{self, TcpOption, TimerFd};

mod socks;
mod websocket;

pub use socks::Proxy;

pub type Reader = Box<dyn AsyncRead + Send + Unpin>;
pub type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// An open stream to the broker.
pub struct Stream {
    pub reader: Reader,
    pub writer: Writer,
    /// The writer may keep bytes it accepted until it is flushed (TLS records, WebSocket frames),
    /// so the connection flushes it whenever its own queue runs empty.
    pub buffered: bool,
    /// The TCP socket under it, if any, for [`DelayedAck`].
    pub tcp: Option<RawFd>,
    /// The socket itself when the writer puts nothing of its own around what it is given (plain
    /// TCP, Unix): bytes written to it with [`send_now`] then go out as the writer would send
    /// them. Valid while `reader` and `writer` are.
    pub raw: Option<RawFd>,
    /// What the TLS handshake settled on (version, cipher suite), for the log; None without TLS.
    pub tls_session: Option<String>,
}

/// One non-blocking write of `slices` to the socket `fd`, from any thread: what it took, or
/// `WouldBlock` when its buffer is full. A peer that is gone is an error, never a SIGPIPE that
/// would end the application.
#[inline]
pub fn send_now(fd: RawFd, slices: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
    sys::send_vectored_nonblocking(fd, slices)
}

/// How long an ACK owed to the broker is held back (see [`DelayedAck`]): about a loopback round
/// trip, so a few more of the broker's acknowledgements join the segment it releases, and far
/// below the kernel's own 40 ms delayed ACK, which a broker with Nagle's algorithm on would wait
/// out.
pub const ACK_DELAY: Duration = Duration::from_micros(25);

/// How long the ACK is held back after a read of several messages with nothing to write back (a
/// subscriber in a stream): long enough for the broker to gather a few dozen messages into its
/// next segment, short against the time a stream's messages spend in the broker anyway.
pub const STREAM_ACK_DELAY: Duration = Duration::from_micros(100);

/// The TCP ACK owed to the broker after a read that wrote nothing back while more
/// acknowledgements are awaited (a window or PUBRELs held back, or a burst smaller than the
/// window). A broker with Nagle's algorithm on (mosquitto's default) sends its next small
/// segment only once the last one is ACKed, and the kernel, seeing a connection that writes,
/// would hold that ACK up to 40 ms. Asking for it at once (`TCP_QUICKACK`) after every such
/// read, or reading the next segment at once (a read that empties the socket's queue sends the
/// ACK too), makes a ping-pong of one tiny segment each way per acknowledgement or two. Sent
/// [`ACK_DELAY`] later, with the socket left unread until then, it lets the broker gather
/// several into one segment: higher throughput at less CPU per message, and fewer TCP segments
/// per message. A write before then carries the ACK itself. The timer is a timerfd, since
/// tokio's timers count whole milliseconds. It is made when the connection first meets a stream
/// (acknowledgements awaited, or several messages in a read), not with the connection, so an
/// idle client of a fleet of thousands holds one descriptor, its socket. Before that, and
/// without a descriptor left, the ACK is asked for at once.
///
/// Owed as well: after a SUBACK, which the broker may follow at once with retained messages
/// (held by its Nagle behind the unACKed SUBACK, the first of them would wait out the kernel's
/// delayed ACK, as it does with libmosquitto); and after a read of several messages that writes
/// nothing back (a QoS 0 stream), held [`STREAM_ACK_DELAY`] so the broker gathers them into
/// fewer, larger segments.
pub struct DelayedAck {
    /// None: not TCP (a Unix socket), where nothing is owed.
    socket: Option<RawFd>,
    timer: Option<TimerFd>,
    /// The timer runs; it is not stopped when a write carries the ACK (a system call either way).
    armed: bool,
    /// An ACK is owed and no write has carried it yet.
    owed: bool,
}

impl DelayedAck {
    /// For the TCP socket `socket`, which must stay open as long as this lives, if any.
    pub fn new(socket: Option<RawFd>) -> DelayedAck {
        DelayedAck {
            socket,
            timer: None,
            armed: false,
            owed: false,
        }
    }

    /// A read wrote nothing back: the ACK is owed, sent `delay` from now unless a write carries it
    /// first. A timer already running keeps its deadline, so an ACK owed meanwhile waits no longer
    /// than the one that armed it ([`STREAM_ACK_DELAY`] at most). `stream`: the read was part of
    /// a stream, where the timer is worth its descriptor (made now if there is none yet).
    pub fn owe(&mut self, delay: Duration, stream: bool) {
        let Some(socket) = self.socket else { return };
        self.owed = true;
        if self.armed {
            return;
        }
        if stream && self.timer.is_none() {
            self.timer = TimerFd::new().ok();
        }
        self.armed = self.timer.as_ref().is_some_and(|timer| timer.arm(delay).is_ok());
        if !self.armed {
            // No timer to wait for: the ACK goes now.
            quick_ack(socket);
            self.owed = false;
        }
    }

    /// Bytes were written on the socket: they carried the ACK.
    pub fn carried(&mut self) {
        self.owed = false;
    }

    /// Whether the timer runs, so that [`expired`](Self::expired) is worth awaiting.
    pub fn armed(&self) -> bool {
        self.armed
    }

    /// Whether the socket should not be read until the ACK is sent: a read empties the socket's
    /// queue, which has the kernel send the ACK itself, at once.
    pub fn holding(&self) -> bool {
        self.armed && self.owed
    }

    /// Waits for the timer (forever if it is not running), then sends the ACK if still owed.
    pub async fn expired(&mut self) {
        let (Some(socket), Some(timer)) = (self.socket, &self.timer) else {
            return std::future::pending().await;
        };
        if timer.expired().await.is_err() {
            // The reactor is gone with the runtime: nothing more runs on this connection.
            return std::future::pending().await;
        }
        self.armed = false;
        if std::mem::take(&mut self.owed) {
            quick_ack(socket);
        }
    }
}

/// Caps the kernel's delayed ACK on the socket `fd` at its smallest (two clock ticks: 2-8 ms)
/// instead of 40 ms, for the ACKs no [`DelayedAck`] rule sends: a client that has just written
/// something (a QoS 0 publish, a PINGREQ) holds the ACK of what it reads next, and the broker's
/// Nagle then holds every later message behind it. Older kernels refuse the option and keep
/// their 40 ms, so the failure is not reported. Below two ticks the kernel refuses the value;
/// it rounds 5 ms up to two ticks.
fn cap_delayed_ack(fd: RawFd) {
    let _ = sys::set_tcp_option(fd, TcpOption::DelayedAckMax, 5000);
}

/// Has the kernel send the TCP ACK it is holding back for the socket `fd` now. A failure only
/// leaves the ACK delayed, so it is not reported.
fn quick_ack(fd: RawFd) {
    let _ = sys::set_tcp_option(fd, TcpOption::QuickAck, 1);
}

/// Has the loopback connection on the socket `fd` use the `reno` congestion controller, which
/// does not pace. Loopback has no path whose bandwidth could be probed, but a controller that
/// paces (BBR, where it is the system's default) spaces the client's writes all the same, with
/// a kernel timer per burst, which with large payloads costs much of the throughput and CPU per
/// message (`mqttc_bench` shows it). Connections that leave the machine keep the system's
/// choice. Every kernel has reno built in, and lets any process pick it unless
/// `net.ipv4.tcp_allowed_congestion_control` says otherwise; a refusal only leaves the default,
/// so it is not reported.
fn unpaced(fd: RawFd) {
    let _ = sys::set_tcp_option_bytes(fd, TcpOption::Congestion, b"reno");
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// Host name or IP literal; names are resolved on the network thread, never on the caller's.
    Tcp {
        host: String,
        port: u16,
        /// TLS over the TCP stream (`mqtts://`, `wss://`).
        tls: bool,
        /// MQTT over WebSockets (`ws://`, `wss://`) with this request path.
        websocket: Option<String>,
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
            websocket: None,
        }
    }

    /// Whether connecting needs the TLS configuration.
    pub fn uses_tls(&self) -> bool {
        matches!(self, Address::Tcp { tls: true, .. })
    }

    /// The same server reached over TLS (the `tls` option of a host-and-port client).
    pub fn with_tls(self) -> Address {
        match self {
            Address::Tcp {
                host, port, websocket, ..
            } => Address::Tcp {
                host,
                port,
                tls: true,
                websocket,
            },
            other => other,
        }
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Tcp {
                host,
                port,
                tls,
                websocket,
            } => {
                let scheme = match (tls, websocket.is_some()) {
                    (false, false) => "mqtt",
                    (true, false) => "mqtts",
                    (false, true) => "ws",
                    (true, true) => "wss",
                };
                match host.contains(':') {
                    true => write!(f, "{scheme}://[{host}]:{port}"),
                    false => write!(f, "{scheme}://{host}:{port}"),
                }?;
                f.write_str(websocket.as_deref().unwrap_or(""))
            }
            Address::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// The ports used when a server address names none: MQTT over TCP and over TLS, and WebSockets
/// without and with TLS (HTTP's and HTTPS's).
pub const DEFAULT_PORT: u16 = 1883;
pub const DEFAULT_TLS_PORT: u16 = 8883;
const DEFAULT_WS_PORT: u16 = 80;
const DEFAULT_WSS_PORT: u16 = 443;
/// The WebSocket path when a `ws://` address gives none, as Paho's and most cloud brokers'.
const DEFAULT_WS_PATH: &str = "/mqtt";

impl std::str::FromStr for Address {
    type Err = String;

    /// Parses a server address: `mqtt://host[:port]` or `tcp://host[:port]` (port 1883 by
    /// default), `mqtts://`, `ssl://` or `tls://` for TLS (port 8883), `ws://host[:port][/path]`
    /// (port 80, path `/mqtt`) and `wss://` (port 443) for WebSockets, a bare `host[:port]` (plain
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
        let (rest, tls, ws) = match uri.split_once("://") {
            Some(("tcp" | "mqtt", rest)) => (rest, false, false),
            Some(("mqtts" | "ssl" | "tls", rest)) => (rest, true, false),
            Some(("ws", rest)) => (rest, false, true),
            Some(("wss", rest)) => (rest, true, true),
            Some((scheme, _)) => return Err(format!("\"{uri}\": unsupported scheme \"{scheme}\"")),
            None => (uri, false, false),
        };
        let (rest, websocket) = match (ws, rest.find('/')) {
            (true, Some(slash)) => (&rest[..slash], Some(rest[slash..].to_owned())),
            (true, None) => (rest, Some(DEFAULT_WS_PATH.to_owned())),
            (false, _) => (rest.strip_suffix('/').unwrap_or(rest), None),
        };
        if websocket.as_deref().is_some_and(|p| p.contains([' ', '#'])) {
            return Err(format!("\"{uri}\": bad WebSocket path"));
        }
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
            None => match (tls, ws) {
                (false, false) => DEFAULT_PORT,
                (true, false) => DEFAULT_TLS_PORT,
                (false, true) => DEFAULT_WS_PORT,
                (true, true) => DEFAULT_WSS_PORT,
            },
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err(format!("\"{uri}\": bad port \"{p}\"")),
            },
        };
        Ok(Address::Tcp {
            host: host.to_owned(),
            port,
            tls,
            websocket,
        })
    }
}

/// A TCP connection to `host`, from the local address `bind` when one is given (its port chosen
/// by the system), trying each of the host's addresses of `bind`'s family in turn.
async fn tcp_connect(host: &str, port: u16, bind: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let Some(local) = bind else {
        return TcpStream::connect((host, port)).await;
    };
    let mut last = None;
    for remote in tokio::net::lookup_host((host, port)).await? {
        if remote.is_ipv4() != local.is_ipv4() {
            continue;
        }
        let socket = match local {
            IpAddr::V4(_) => TcpSocket::new_v4()?,
            IpAddr::V6(_) => TcpSocket::new_v6()?,
        };
        socket
            .bind(SocketAddr::new(local, 0))
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot bind to {local}: {e}")))?;
        match socket.connect(remote).await {
            Ok(tcp) => return Ok(tcp),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            format!("{host} has no address of the family of the bind address {local}"),
        )
    }))
}

/// How TCP connections reach the broker: from which local address, through which proxy.
#[derive(Debug, Clone, Copy, Default)]
pub struct Route<'a> {
    /// The local address of the TCP connection (to the broker, or to the proxy).
    pub bind: Option<IpAddr>,
    /// A SOCKS5 proxy that connects to the broker (TCP, TLS and WebSocket addresses alike).
    pub proxy: Option<&'a Proxy>,
}

/// Opens the stream to `addr`; `tls` is the client's TLS configuration, needed by TLS addresses.
/// `max_packet_size` bounds what one WebSocket message may hold. `route` says how a TCP
/// connection is made (not used for a Unix socket).
pub async fn connect(
    addr: &Address,
    tls: Option<&Connector>,
    max_packet_size: usize,
    route: Route<'_>,
) -> std::io::Result<Stream> {
    match addr {
        Address::Tcp {
            host,
            port,
            tls: secure,
            websocket,
        } => {
            let tcp = match route.proxy {
                None => tcp_connect(host, *port, route.bind).await?,
                Some(proxy) => {
                    let mut tcp = tcp_connect(&proxy.host, proxy.port, route.bind)
                        .await
                        .map_err(|e| std::io::Error::new(e.kind(), format!("{proxy}: {e}")))?;
                    // Boxed, as the TLS and WebSocket handshakes below.
                    Box::pin(socks::connect(proxy, &mut tcp, host, *port)).await?;
                    tcp
                }
            };
            // MQTT packets are small and latency-sensitive; we batch writes ourselves.
            tcp.set_nodelay(true)?;
            let fd = AsRawFd::as_raw_fd(&tcp);
            cap_delayed_ack(fd);
            if tcp.peer_addr().is_ok_and(|a| a.ip().is_loopback()) {
                unpaced(fd);
            }
            // The TLS and WebSocket handshakes are boxed: their state is KiBs, which every plain
            // TCP connect (the future is as large as its largest branch) would carry otherwise.
            let mut stream = if !*secure {
                match websocket {
                    Some(_) => Box::pin(websocket::connect(addr, tcp, max_packet_size)).await?,
                    None => {
                        let (r, w) = tcp.into_split();
                        Stream {
                            reader: Box::new(r),
                            writer: Box::new(w),
                            buffered: false,
                            tcp: None,
                            raw: Some(fd),
                            tls_session: None,
                        }
                    }
                }
            } else {
                let connector = tls.ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        "a TLS address but no TLS configuration",
                    )
                })?;
                let (tls_stream, session) = Box::pin(connector.connect(host, tcp)).await?;
                let mut stream = match websocket {
                    Some(_) => Box::pin(websocket::connect(addr, tls_stream, max_packet_size)).await?,
                    None => split(tls_stream),
                };
                stream.tls_session = Some(session);
                stream
            };
            stream.tcp = Some(fd);
            Ok(stream)
        }
        Address::Unix(path) => {
            let unix = tokio::net::UnixStream::connect(path).await?;
            let fd = AsRawFd::as_raw_fd(&unix);
            let (r, w) = unix.into_split();
            Ok(Stream {
                reader: Box::new(r),
                writer: Box::new(w),
                buffered: false,
                tcp: None,
                raw: Some(fd),
                tls_session: None,
            })
        }
    }
}

/// The halves of a stream that buffers what it is given (TLS, WebSockets).
fn split<S: AsyncRead + AsyncWrite + Send + 'static>(stream: S) -> Stream {
    let (r, w) = tokio::io::split(stream);
    Stream {
        reader: Box::new(r),
        writer: Box::new(w),
        buffered: true,
        tcp: None,
        raw: None,
        tls_session: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on_a_runtime(test: impl std::future::Future<Output = ()>) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(test);
    }

    /// Waits for the timer, failing after `within` (generous: the timer is 25 us).
    async fn expires(ack: &mut DelayedAck, within: Duration) {
        tokio::time::timeout(within, ack.expired())
            .await
            .expect("the ACK timer runs out");
    }

    #[test]
    fn an_owed_ack_holds_reads_until_its_timer_runs_out_or_a_write_carries_it() {
        on_a_runtime(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let socket = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap();
            let mut ack = DelayedAck::new(Some(socket.as_raw_fd()));
            assert!(!ack.armed() && !ack.holding());

            // Not in a stream, without a timer yet: the ACK goes at once, and none is made.
            ack.owe(ACK_DELAY, false);
            assert!(!ack.armed() && !ack.holding() && ack.timer.is_none());

            ack.owe(ACK_DELAY, true);
            assert!(ack.armed() && ack.holding());
            let start = std::time::Instant::now();
            expires(&mut ack, Duration::from_secs(5)).await;
            // Far below the kernel's 40 ms delayed ACK, which is what the timer is there to beat.
            assert!(start.elapsed() < Duration::from_millis(30), "{:?}", start.elapsed());
            assert!(!ack.armed() && !ack.holding());

            // A write carries the ACK: reads go on at once; the timer still runs out, once.
            ack.owe(ACK_DELAY, true);
            ack.carried();
            assert!(ack.armed() && !ack.holding());
            expires(&mut ack, Duration::from_secs(5)).await;
            assert!(!ack.armed());
            assert!(
                tokio::time::timeout(Duration::from_millis(20), ack.expired())
                    .await
                    .is_err(),
                "an unarmed timer does not run out"
            );

            // Owed twice: one timer runs out, and it can be armed again after it.
            ack.owe(ACK_DELAY, true);
            ack.owe(ACK_DELAY, true);
            expires(&mut ack, Duration::from_secs(5)).await;
            assert!(!ack.holding());
            ack.owe(ACK_DELAY, true);
            assert!(ack.holding());
            expires(&mut ack, Duration::from_secs(5)).await;
        });
    }

    /// Where the kernel knows the option, the socket's delayed ACK is capped far below 40 ms.
    #[test]
    fn the_kernels_delayed_ack_is_capped_where_it_can_be() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let socket = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let fd = socket.as_raw_fd();
        let read = || sys::tcp_option(fd, TcpOption::DelayedAckMax).ok();
        let Some(before) = read() else {
            eprintln!("this kernel has no TCP_DELACK_MAX_US: nothing to cap");
            return;
        };
        cap_delayed_ack(fd);
        let after = read().unwrap();
        assert!(after <= 10_000 && after < before, "{before} us -> {after} us");
    }

    /// The congestion controller of the TCP socket `fd`, by name.
    fn congestion_control(fd: RawFd) -> String {
        let mut name = [0u8; 16];
        let len = sys::tcp_option_bytes(fd, TcpOption::Congestion, &mut name)
            .unwrap_or_else(|e| panic!("getsockopt(TCP_CONGESTION): {e}"));
        let name = &name[..len];
        String::from_utf8_lossy(name.split(|&b| b == 0).next().unwrap_or(name)).into_owned()
    }

    #[test]
    fn a_loopback_connection_does_not_pace() {
        let allowed = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_allowed_congestion_control").unwrap_or_default();
        if !allowed.split_whitespace().any(|cc| cc == "reno") {
            eprintln!("reno is not among the controllers this machine allows ({allowed:?}): nothing to check");
            return;
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let plain = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        eprintln!("the system's default: {}", congestion_control(plain.as_raw_fd()));
        on_a_runtime(async {
            let stream = connect(&Address::tcp("127.0.0.1", port), None, 1 << 20, Route::default())
                .await
                .unwrap();
            assert_eq!(congestion_control(stream.raw.unwrap()), "reno");
        });
    }

    #[test]
    fn a_bind_address_is_the_connections_source() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        on_a_runtime(async {
            let from: IpAddr = "127.0.0.2".parse().unwrap();
            let from_there = Route {
                bind: Some(from),
                proxy: None,
            };
            let _stream = connect(&Address::tcp("127.0.0.1", port), None, 1 << 20, from_there)
                .await
                .unwrap();
            assert_eq!(listener.accept().unwrap().1.ip(), from);
            // An address of another family has no broker address to go to; one not on this host
            // cannot be bound: both say so.
            let bind = |a: &str| Route {
                bind: a.parse().ok(),
                proxy: None,
            };
            let v6 = connect(&Address::tcp("127.0.0.1", port), None, 1 << 20, bind("::1")).await;
            assert!(v6.is_err_and(|e| e.to_string().contains("no address of the family")));
            let foreign = connect(&Address::tcp("127.0.0.1", port), None, 1 << 20, bind("192.0.2.1")).await;
            assert!(foreign.is_err_and(|e| e.to_string().contains("cannot bind to 192.0.2.1")));
        });
    }

    #[test]
    fn without_a_tcp_socket_no_ack_is_owed() {
        on_a_runtime(async {
            let mut ack = DelayedAck::new(None);
            ack.owe(ACK_DELAY, true);
            assert!(!ack.armed() && !ack.holding());
            assert!(
                tokio::time::timeout(Duration::from_millis(20), ack.expired())
                    .await
                    .is_err()
            );
        });
    }

    fn ws(tls: bool, host: &str, port: u16, path: &str) -> Result<Address, String> {
        Ok(Address::Tcp {
            host: host.into(),
            port,
            tls,
            websocket: Some(path.into()),
        })
    }

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
        assert_eq!("ws://broker.example".parse(), ws(false, "broker.example", 80, "/mqtt"));
        assert_eq!("ws://h:8080/".parse(), ws(false, "h", 8080, "/"));
        assert_eq!("wss://h/ws/mqtt?x=1".parse(), ws(true, "h", 443, "/ws/mqtt?x=1"));
        assert_eq!("wss://[::1]:8443/m".parse(), ws(true, "::1", 8443, "/m"));
    }

    #[test]
    fn displays_as_a_uri_that_parses_back() {
        for a in [
            tcp("h", 1),
            tls("::1", 8883),
            ws(false, "h", 80, "/mqtt"),
            ws(true, "::1", 1, "/"),
            Ok(Address::Unix("/run/m.sock".into())),
        ] {
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
            "http://host",
            "ws://host:1/a b",
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
