//! Self-tests of the fault-injecting proxy (tests/common/proxy.rs), its packet record
//! (tests/common/record.rs), and of the persistent, killable `Broker`: the failure tests built on
//! them are only as trustworthy as these helpers.
mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::Broker;
use common::proxy::Proxy;
use common::record::{Decoder, Packet};

/// MQTT 3.1.1 CONNECT, clean session, empty client id, keepalive 60.
const CONNECT: [u8; 14] = [
    0x10, 0x0c, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00,
];
const CONNACK: [u8; 4] = [0x20, 0x02, 0x00, 0x00];

/// A loopback server that greets each connection with `greeting`, then echoes everything back.
struct EchoServer {
    port: u16,
    accepted: Arc<AtomicUsize>,
}

impl EchoServer {
    fn start(greeting: &'static [u8]) -> EchoServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        // The accept thread outlives the test (blocked in accept); harmless in a test binary.
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                count.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    if conn.write_all(greeting).is_err() {
                        return;
                    }
                    let mut buf = [0u8; 8192];
                    loop {
                        match conn.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if conn.write_all(&buf[..n]).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        EchoServer { port, accepted }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

#[derive(Debug, PartialEq)]
enum Read1 {
    Data(Vec<u8>),
    Eof,
    Timeout,
    Error(ErrorKind),
}

/// One read with a timeout.
fn read_once(s: &mut TcpStream, timeout: Duration) -> Read1 {
    s.set_read_timeout(Some(timeout)).unwrap();
    let mut buf = [0u8; 65536];
    match s.read(&mut buf) {
        Ok(0) => Read1::Eof,
        Ok(n) => Read1::Data(buf[..n].to_vec()),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Read1::Timeout,
        Err(e) => Read1::Error(e.kind()),
    }
}

/// Reads exactly `n` bytes, failing the test after `timeout`.
fn read_n(s: &mut TcpStream, n: usize, timeout: Duration) -> Vec<u8> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < n {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        match read_once(s, left) {
            Read1::Data(d) => out.extend(d),
            other => panic!("wanted {n} bytes, got {} then {other:?}", out.len()),
        }
    }
    assert_eq!(out.len(), n, "read more than asked for");
    out
}

/// Reads until EOF (or a reset), failing after `timeout`; returns everything read.
fn read_to_close(s: &mut TcpStream, timeout: Duration) -> Vec<u8> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    loop {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        match read_once(s, left) {
            Read1::Data(d) => out.extend(d),
            Read1::Eof | Read1::Error(_) => return out,
            Read1::Timeout => panic!("connection still open after {timeout:?} ({} bytes read)", out.len()),
        }
    }
}

fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

const T: Duration = Duration::from_secs(2);

fn echo_ok(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).unwrap();
    assert_eq!(read_n(s, msg.len(), T), msg);
}

#[test]
fn forwards_mqtt_both_ways_to_mosquitto() {
    let broker = Broker::start();
    let proxy = Proxy::start(broker.port);
    let mut c = connect(proxy.port());
    c.write_all(&CONNECT).unwrap();
    assert_eq!(read_n(&mut c, 4, T), CONNACK);
}

#[test]
fn forwards_a_megabyte_intact_in_both_directions() {
    let echo = EchoServer::start(b"");
    let proxy = Proxy::start(echo.port);
    let mut c = connect(proxy.port());
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    // Write on another thread: the echo comes back while we are still sending.
    let mut w = c.try_clone().unwrap();
    let sent = data.clone();
    let writer = std::thread::spawn(move || w.write_all(&sent).unwrap());
    assert!(
        read_n(&mut c, data.len(), Duration::from_secs(10)) == data,
        "data corrupted"
    );
    writer.join().unwrap();
}

#[test]
fn counts_connections_and_live_links() {
    let echo = EchoServer::start(b"");
    let proxy = Proxy::start(echo.port);
    assert_eq!((proxy.connections(), proxy.live()), (0, 0));
    let mut a = connect(proxy.port());
    let mut b = connect(proxy.port());
    echo_ok(&mut a, b"a");
    echo_ok(&mut b, b"b");
    assert_eq!((proxy.connections(), proxy.live()), (2, 2));
    drop(a);
    wait_until("live == 1 after a client closed", T, || proxy.live() == 1);
    assert_eq!(proxy.connections(), 2, "connections is a running total");
    echo_ok(&mut b, b"still fine");
}

#[test]
fn drop_all_closes_clients_promptly_and_keeps_accepting() {
    let echo = EchoServer::start(b"");
    let proxy = Proxy::start(echo.port);
    let mut a = connect(proxy.port());
    let mut b = connect(proxy.port());
    echo_ok(&mut a, b"a");
    echo_ok(&mut b, b"b");
    let t0 = Instant::now();
    proxy.drop_all();
    for s in [&mut a, &mut b] {
        let r = read_once(s, T);
        assert!(matches!(r, Read1::Eof | Read1::Error(_)), "got {r:?}");
    }
    assert!(t0.elapsed() < Duration::from_millis(500), "took {:?}", t0.elapsed());
    assert_eq!(proxy.live(), 0);
    let mut c = connect(proxy.port());
    echo_ok(&mut c, b"new link works");
    assert_eq!((proxy.connections(), proxy.live()), (3, 1));
}

#[test]
fn freeze_black_holes_without_closing_and_unfreeze_resumes() {
    let echo = EchoServer::start(b"");
    let proxy = Proxy::start(echo.port);
    let mut a = connect(proxy.port());
    echo_ok(&mut a, b"before");
    proxy.freeze();
    a.write_all(b"lost").unwrap();
    assert_eq!(read_once(&mut a, Duration::from_millis(300)), Read1::Timeout);
    // New links are accepted and connected upstream, but frozen too.
    let mut b = connect(proxy.port());
    b.write_all(b"lost too").unwrap();
    assert_eq!(read_once(&mut b, Duration::from_millis(300)), Read1::Timeout);
    assert_eq!(proxy.live(), 2, "freeze must not close links");
    assert_eq!(echo.accepted(), 2);
    proxy.unfreeze();
    // Frozen bytes were discarded, not delayed: only the new data comes back.
    echo_ok(&mut a, b"after");
    echo_ok(&mut b, b"after too");
    assert_eq!(read_once(&mut a, Duration::from_millis(100)), Read1::Timeout);
}

#[test]
fn freeze_also_stops_the_broker_to_client_direction() {
    // The echo server greets on accept: with the proxy frozen, that greeting must not arrive.
    let echo = EchoServer::start(b"hello");
    let proxy = Proxy::start(echo.port);
    proxy.freeze();
    let mut a = connect(proxy.port());
    wait_until("upstream accepted", T, || echo.accepted() == 1);
    assert_eq!(read_once(&mut a, Duration::from_millis(300)), Read1::Timeout);
    proxy.unfreeze();
    echo_ok(&mut a, b"x");
}

#[test]
fn delay_adds_latency_each_way_and_keeps_order() {
    let echo = EchoServer::start(b"");
    let proxy = Proxy::start(echo.port);
    let mut a = connect(proxy.port());
    echo_ok(&mut a, b"warm up");
    let d = Duration::from_millis(150);
    proxy.set_delay(d);
    let t0 = Instant::now();
    echo_ok(&mut a, b"ping");
    let rtt = t0.elapsed();
    assert!(rtt >= 2 * d, "round trip {rtt:?} < 2 x {d:?}");
    assert!(rtt < 2 * d + Duration::from_millis(500), "round trip {rtt:?}");
    // Chunks sent 30 ms apart pipeline (each delayed ~2d, not 2d per preceding chunk) in order.
    let t0 = Instant::now();
    let mut expected = Vec::new();
    for i in 0..5u8 {
        let chunk = [b'0' + i; 3];
        a.write_all(&chunk).unwrap();
        expected.extend(chunk);
        std::thread::sleep(Duration::from_millis(30));
    }
    assert_eq!(read_n(&mut a, expected.len(), T), expected);
    let took = t0.elapsed();
    assert!(took >= 2 * d + Duration::from_millis(120), "{took:?}");
    assert!(
        took < 2 * d + Duration::from_millis(700),
        "{took:?}: delays accumulated"
    );
    proxy.set_delay(Duration::ZERO);
    let t0 = Instant::now();
    echo_ok(&mut a, b"fast again");
    assert!(t0.elapsed() < 2 * d, "{:?}: delay still applied", t0.elapsed());
}

#[test]
fn cut_next_delivers_exactly_n_bytes_then_eof_once() {
    let echo = EchoServer::start(b"");
    let proxy = Proxy::start(echo.port);
    let mut a = connect(proxy.port());
    echo_ok(&mut a, b"before the cut");
    proxy.cut_next(10);
    let data: Vec<u8> = (0..100u8).collect();
    a.write_all(&data).unwrap();
    assert_eq!(read_to_close(&mut a, T), data[..10]);
    wait_until("live == 0", T, || proxy.live() == 0);
    // One-shot: the next link is whole.
    let mut b = connect(proxy.port());
    b.write_all(&data).unwrap();
    assert_eq!(read_n(&mut b, data.len(), T), data);
    assert_eq!(read_once(&mut b, Duration::from_millis(100)), Read1::Timeout);
}

#[test]
fn cut_next_splits_an_mqtt_packet() {
    let broker = Broker::start();
    let proxy = Proxy::start(broker.port);
    proxy.cut_next(2);
    let mut c = connect(proxy.port());
    c.write_all(&CONNECT).unwrap();
    assert_eq!(read_to_close(&mut c, T), CONNACK[..2]);
}

#[test]
fn cut_next_zero_closes_on_the_next_chunk() {
    let echo = EchoServer::start(b"");
    let proxy = Proxy::start(echo.port);
    let mut a = connect(proxy.port());
    echo_ok(&mut a, b"x");
    proxy.cut_next(0);
    a.write_all(b"y").unwrap();
    assert_eq!(read_to_close(&mut a, T), b"");
}

#[test]
fn refuse_accepts_then_closes_without_reaching_upstream() {
    let echo = EchoServer::start(b"");
    let proxy = Proxy::start(echo.port);
    proxy.refuse(true);
    for _ in 0..2 {
        let mut c = connect(proxy.port());
        assert_eq!(read_to_close(&mut c, T), b"");
    }
    assert_eq!((proxy.connections(), proxy.live(), echo.accepted()), (2, 0, 0));
    proxy.refuse(false);
    let mut c = connect(proxy.port());
    echo_ok(&mut c, b"back up");
    assert_eq!((proxy.connections(), proxy.live(), echo.accepted()), (3, 1, 1));
}

#[test]
fn set_upstream_redirects_only_new_connections() {
    let a_srv = EchoServer::start(b"A");
    let b_srv = EchoServer::start(b"B");
    let proxy = Proxy::start(a_srv.port);
    let mut a = connect(proxy.port());
    assert_eq!(read_n(&mut a, 1, T), b"A");
    proxy.set_upstream(b_srv.port);
    let mut b = connect(proxy.port());
    assert_eq!(read_n(&mut b, 1, T), b"B");
    echo_ok(&mut a, b"old link");
    echo_ok(&mut b, b"new link");
    assert_eq!((a_srv.accepted(), b_srv.accepted()), (1, 1));
}

#[test]
fn unreachable_upstream_closes_the_client() {
    let proxy = Proxy::start(common::free_port());
    let mut c = connect(proxy.port());
    assert_eq!(read_to_close(&mut c, T), b"");
    assert_eq!((proxy.connections(), proxy.live()), (1, 0));
}

#[test]
fn dropping_the_proxy_closes_links_and_the_listener() {
    let echo = EchoServer::start(b"");
    let proxy = Proxy::start(echo.port);
    let port = proxy.port();
    let mut a = connect(port);
    echo_ok(&mut a, b"x");
    proxy.freeze(); // even frozen links must go
    let t0 = Instant::now();
    drop(proxy);
    assert!(
        t0.elapsed() < Duration::from_millis(500),
        "drop took {:?}",
        t0.elapsed()
    );
    assert_eq!(read_to_close(&mut a, T), b"");
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "listener still open");
}

/// CONNECT with clean_session = 0 and client id "id".
const CONNECT_PERSISTENT: [u8; 16] = [
    0x10, 0x0e, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x00, 0x00, 0x3c, 0x00, 0x02, b'i', b'd',
];

/// Connects with CONNECT_PERSISTENT; the link and the CONNACK's bytes.
fn connect_persistent(port: u16) -> (TcpStream, Vec<u8>) {
    let mut c = connect(port);
    c.write_all(&CONNECT_PERSISTENT).unwrap();
    let connack = read_n(&mut c, 4, T);
    (c, connack)
}

#[test]
fn persistent_broker_keeps_sessions_across_sigkill() {
    let mut broker = Broker::start_persistent("");
    let (mut c, connack) = connect_persistent(broker.port);
    assert_eq!(connack, [0x20, 0x02, 0x00, 0x00], "fresh session");
    // SUBSCRIBE id 1 to "t" at QoS 1: a change, so autosave_on_changes writes the db.
    c.write_all(&[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b't', 0x01]).unwrap();
    assert_eq!(read_n(&mut c, 5, T), [0x90, 0x03, 0x00, 0x01, 0x01]);
    // The save happens in mosquitto's loop right after the SUBACK; mosquitto.db appears by rename.
    let db = broker.dir.join("mosquitto.db");
    wait_until("mosquitto.db", T, || db.exists());
    broker.kill();
    assert!(!broker.is_running());
    assert_eq!(read_to_close(&mut c, T), b"");
    broker.restart();
    assert!(broker.is_running());
    let (_, connack) = connect_persistent(broker.port);
    assert_eq!(
        connack,
        [0x20, 0x02, 0x01, 0x00],
        "session present after SIGKILL + restart"
    );
}

#[test]
fn terminate_saves_the_session_for_the_restart() {
    // Unlike SIGKILL, SIGTERM makes mosquitto save at exit: no wait for the database needed.
    let mut broker = Broker::start_persistent("");
    assert_eq!(
        connect_persistent(broker.port).1,
        [0x20, 0x02, 0x00, 0x00],
        "fresh session"
    );
    broker.terminate();
    assert!(!broker.is_running());
    broker.restart();
    assert_eq!(
        connect_persistent(broker.port).1,
        [0x20, 0x02, 0x01, 0x00],
        "session present after SIGTERM"
    );
}

#[test]
fn decoder_splits_packets_across_reads_and_reads_their_fields() {
    // PUBLISH DUP QoS 2 id 0x0102 to "a/b" with "hi", then PUBREL id 7, fed in three pieces.
    let bytes = [0x3c, 0x09, 0, 3, b'a', b'/', b'b', 1, 2, b'h', b'i', 0x62, 2, 0, 7];
    let mut d = Decoder::default();
    assert_eq!(d.feed(&bytes[..5]), []);
    let publish = Packet::Publish {
        dup: true,
        qos: 2,
        pkid: 0x0102,
        topic: "a/b".into(),
        payload: b"hi".to_vec(),
    };
    assert_eq!(d.feed(&bytes[5..12]), [publish]);
    assert_eq!(d.feed(&bytes[12..]), [Packet::PubRel(7)]);
}

#[test]
fn recording_keeps_every_packet_in_order_with_its_direction() {
    let broker = Broker::start();
    let proxy = Proxy::recording(broker.port);
    let mut c = connect(proxy.port());
    // CONNECT as "rec", written in two pieces: recorded once, whole.
    let connect = [
        0x10, 15, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60, 0, 3, b'r', b'e', b'c',
    ];
    c.write_all(&connect[..6]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    c.write_all(&connect[6..]).unwrap();
    assert_eq!(read_n(&mut c, 4, T), CONNACK);
    // SUBSCRIBE id 1 to "r/t" at QoS 2, so the broker sends our message back.
    c.write_all(&[0x82, 8, 0, 1, 0, 3, b'r', b'/', b't', 2]).unwrap();
    assert_eq!(read_n(&mut c, 5, T), [0x90, 3, 0, 1, 2]);
    proxy.mark("subscribed");
    // PUBLISH QoS 2 id 5 "hi"; PUBREC; PUBREL; then PUBCOMP and the message for us, each 4 + 11
    // bytes in some order.
    c.write_all(&[0x34, 9, 0, 3, b'r', b'/', b't', 0, 5, b'h', b'i'])
        .unwrap();
    assert_eq!(read_n(&mut c, 4, T), [0x50, 2, 0, 5]);
    c.write_all(&[0x62, 2, 0, 5]).unwrap();
    read_n(&mut c, 15, T);
    // A packet is recorded once its write returned, which may be just after the peer read it.
    let deadline = Instant::now() + T;
    while proxy.records().len() < 10 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let records = proxy.records();
    let got: Vec<(bool, &Packet)> = records.iter().map(|r| (r.to_broker, &r.packet)).collect();
    let publish = |pkid: u16| Packet::Publish {
        dup: false,
        qos: 2,
        pkid,
        topic: "r/t".into(),
        payload: b"hi".to_vec(),
    };
    let sent = publish(5);
    assert_eq!(
        got[..8],
        [
            (
                true,
                &Packet::Connect {
                    client_id: "rec".into()
                }
            ),
            (
                false,
                &Packet::ConnAck {
                    session_present: false,
                    code: 0
                }
            ),
            (true, &Packet::Other(8)),
            (false, &Packet::Other(9)),
            (false, &Packet::Mark("subscribed".into())),
            (true, &sent),
            (false, &Packet::PubRec(5)),
            (true, &Packet::PubRel(5)),
        ]
    );
    let mut last: Vec<String> = got[8..].iter().map(|(to, p)| format!("{to} {p}")).collect();
    last.sort();
    let forwarded = publish(1);
    assert_eq!(
        last,
        [format!("false {}", Packet::PubComp(5)), format!("false {forwarded}")]
    );
    assert!(records.windows(2).all(|w| w[0].seq < w[1].seq), "in order of seq");
    assert!(
        records
            .iter()
            .all(|r| matches!(r.packet, Packet::Mark(_)) || r.link == records[0].link)
    );
}
