//! Memory over WebSockets follows the bytes a broker sends, not the lengths it declares: this
//! binary's allocator records the largest allocation asked for, while a scripted server declares a
//! 200 MiB frame holding a 200 MiB PUBLISH and sends only a few KiB of it.
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use mqttclient::engine::{Client, ConnectionEvent, Error, Options};
use tokio_tungstenite::tungstenite::{self, Message};

/// The system allocator, recording the largest size asked for.
struct Recording;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Recording {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc`, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: the caller's contract for `realloc`, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Recording = Recording;

const DECLARED: u64 = 200 << 20;

#[test]
// The handshake callback's error type is tungstenite's, large by its design.
#[allow(clippy::result_large_err)]
fn a_websocket_frame_declaring_200_mib_costs_only_the_bytes_sent() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut ws = tungstenite::accept_hdr(tcp, |_: &_, mut resp: tungstenite::handshake::server::Response| {
            resp.headers_mut()
                .insert("Sec-WebSocket-Protocol", "mqtt".parse().unwrap());
            Ok(resp)
        })
        .unwrap();
        assert!(matches!(ws.read(), Ok(Message::Binary(c)) if c.first() == Some(&0x10)));
        ws.send(Message::Binary(Bytes::from_static(&[0x20, 2, 0, 0]))).unwrap();
        // A binary frame of 200 MiB, holding a PUBLISH that fills it, whose bytes stop after a few KiB.
        let mut head = vec![0x82, 127];
        head.extend_from_slice(&DECLARED.to_be_bytes());
        let remaining = DECLARED - 5;
        head.push(0x30);
        head.extend((0..4).map(|i| (remaining >> (7 * i)) as u8 & 0x7F | if i < 3 { 0x80 } else { 0 }));
        head.extend_from_slice(&[0, 3, b'b', b'i', b'g']);
        let tcp = ws.get_mut();
        tcp.write_all(&head).unwrap();
        for _ in 0..10 {
            tcp.write_all(&[b'x'; 1024]).unwrap();
            std::thread::sleep(Duration::from_millis(50));
        }
        // Hold the connection until the client closes it.
        while ws.read().is_ok() {}
    });

    let options = Options {
        keep_alive: 1,
        auto_reconnect: false,
        ..Options::default()
    };
    let c = Client::new(vec![format!("ws://127.0.0.1:{port}").parse().unwrap()], options).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    c.set_on_connection(Some(std::sync::Arc::new(move |e: &ConnectionEvent| {
        if let ConnectionEvent::Lost { reason, .. } = e {
            let _ = tx.send(reason.clone());
        }
    })));
    assert_eq!(common::engine::connect(&c).map(|_| ()), Ok(()));
    let reason = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the stalled connection was reported lost");
    // The packet never ends, so the PINGRESP could never be read.
    assert_eq!(reason, Error::KeepAliveTimeout);
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(
        largest < 8 << 20,
        "an allocation of {largest} bytes for a packet of which a few KiB arrived"
    );
    drop(c);
    server.join().unwrap();
}
