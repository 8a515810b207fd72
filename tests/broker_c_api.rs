//! The C API (called from Rust through its `extern "C"` functions) against a real mosquitto:
//! QoS 0/1/2 both ways with counts, retained messages, the will, wildcard and overlapping
//! subscriptions, unsubscribe, Unix sockets.
mod common;

use std::ffi::{CStr, CString, c_void};
use std::ptr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use common::Broker;
use mqttclient::ffi::*;

/// One received message: (topic, payload, qos, retain).
type Received = (String, Vec<u8>, i32, bool);

/// Messages one subscription received.
#[derive(Default)]
struct Inbox {
    messages: Mutex<Vec<Received>>,
    arrived: Condvar,
}

impl Inbox {
    fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        let mut m = self.messages.lock().unwrap();
        while m.len() < n && Instant::now() < deadline {
            m = self.arrived.wait_timeout(m, deadline - Instant::now()).unwrap().0;
        }
        m.clone()
    }

    fn count(&self) -> usize {
        self.messages.lock().unwrap().len()
    }
}

unsafe extern "C" fn record(_c: *mut mqttc_client, m: *const mqttc_message, userdata: *mut c_void) {
    let inbox = unsafe { &*(userdata as *const Inbox) };
    let m = unsafe { &*m };
    let topic = unsafe { CStr::from_ptr(m.topic) }.to_str().unwrap().to_owned();
    assert_eq!(topic.len(), m.topic_len);
    let payload = unsafe { std::slice::from_raw_parts(m.payload, m.payload_len) }.to_vec();
    inbox.messages.lock().unwrap().push((topic, payload, m.qos, m.retain));
    inbox.arrived.notify_all();
}

unsafe extern "C" fn release_inbox(userdata: *mut c_void) {
    drop(unsafe { Arc::from_raw(userdata as *const Inbox) });
}

struct Client(*mut mqttc_client);

fn check(st: mqttc_status, what: &str) {
    assert_eq!(
        st,
        mqttc_status::MQTTC_OK,
        "{what}: {}",
        unsafe { CStr::from_ptr(mqttc_last_error()) }.to_string_lossy()
    );
}

impl Client {
    fn new(port: u16, configure: impl FnOnce(&mut mqttc_options)) -> Client {
        let mut opts = std::mem::MaybeUninit::uninit();
        unsafe { mqttc_options_init_size(opts.as_mut_ptr(), size_of::<mqttc_options>()) };
        let mut opts = unsafe { opts.assume_init() };
        configure(&mut opts);
        let mut c = ptr::null_mut();
        check(
            unsafe { mqttc_client_new(c"127.0.0.1".as_ptr(), port, &opts, &mut c) },
            "client_new",
        );
        Client(c)
    }

    fn connected(port: u16) -> Client {
        let c = Client::new(port, |_| {});
        c.connect();
        c
    }

    fn connect(&self) {
        let mut t = 0;
        check(unsafe { mqttc_connect(self.0, &mut t) }, "connect");
        self.wait(t);
    }

    fn wait(&self, t: mqttc_token) {
        check(unsafe { mqttc_token_wait(self.0, t, 10_000) }, "token wait");
    }

    fn publish(&self, topic: &str, payload: &[u8], qos: i32, retain: bool) -> mqttc_token {
        let topic = CString::new(topic).unwrap();
        let mut t = 0;
        check(
            unsafe {
                mqttc_publish(
                    self.0,
                    topic.as_ptr(),
                    payload.as_ptr().cast(),
                    payload.len(),
                    qos,
                    retain,
                    &mut t,
                )
            },
            "publish",
        );
        t
    }

    /// Subscribes and waits for the SUBACK; the inbox lives as long as the subscription.
    fn subscribe(&self, filter: &str, qos: i32) -> Arc<Inbox> {
        let inbox = Arc::new(Inbox::default());
        let filter = CString::new(filter).unwrap();
        let sub = mqttc_subscription {
            struct_size: std::mem::size_of::<mqttc_subscription>() as u32,
            filter: filter.as_ptr(),
            qos,
            on_message: Some(record),
            userdata: Arc::into_raw(inbox.clone()) as *mut c_void,
            drop_userdata: Some(release_inbox),
            options: 0,
        };
        let mut t = 0;
        check(unsafe { mqttc_subscribe_many(self.0, &sub, 1, &mut t) }, "subscribe");
        self.wait(t);
        inbox
    }

    fn unsubscribe(&self, filter: &str) {
        let filter = CString::new(filter).unwrap();
        let mut t = 0;
        check(
            unsafe { mqttc_unsubscribe(self.0, filter.as_ptr(), &mut t) },
            "unsubscribe",
        );
        self.wait(t);
    }

    fn disconnect(&self) {
        let mut t = 0;
        check(unsafe { mqttc_disconnect(self.0, &mut t) }, "disconnect");
        self.wait(t);
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        unsafe { mqttc_client_free(self.0) };
    }
}

fn qos_round_trip(qos: i32) {
    let broker = Broker::start();
    let sub = Client::connected(broker.port);
    let inbox = sub.subscribe("qos/test", qos);
    let publisher = Client::connected(broker.port);
    let n = 500;
    let tokens: Vec<_> = (0..n)
        .map(|i| publisher.publish("qos/test", format!("m{i}").as_bytes(), qos, false))
        .collect();
    for t in tokens {
        publisher.wait(t);
    }
    let got = inbox.wait_for(n, Duration::from_secs(20));
    // Give a duplicate (which QoS 1 may and QoS 2 must not produce) a moment to show up.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(inbox.count(), n, "exactly {n} messages at QoS {qos}");
    for (i, (topic, payload, q, retain)) in got.iter().enumerate() {
        assert_eq!(topic, "qos/test");
        assert_eq!(payload, format!("m{i}").as_bytes(), "in order");
        assert_eq!(*q, qos);
        assert!(!retain);
    }
    publisher.disconnect();
    sub.disconnect();
}

#[test]
fn qos0_messages_round_trip_in_order() {
    qos_round_trip(0);
}

#[test]
fn qos1_messages_round_trip_in_order_with_acks() {
    qos_round_trip(1);
}

#[test]
fn qos2_messages_round_trip_exactly_once() {
    qos_round_trip(2);
}

/// Large payloads go to the socket from the library's own copy, beside their header (a vectored
/// write); small ones are copied into the write buffer. Mixed, at every QoS, they must all
/// arrive whole and in order.
#[test]
fn large_and_small_payloads_mixed_arrive_whole_and_in_order() {
    let broker = Broker::start();
    let sub = Client::connected(broker.port);
    let inbox = sub.subscribe("big/#", 2);
    let publisher = Client::connected(broker.port);
    let sizes = [0, 1 << 20, 10, 64 * 1024, 16 * 1024 - 1, 16 * 1024, 300_000, 5];
    let payloads: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| (0..n).map(|b| (b * 31 + i * 7) as u8).collect())
        .collect();
    let mut tokens = Vec::new();
    for qos in 0..=2 {
        for p in &payloads {
            tokens.push(publisher.publish(&format!("big/{qos}"), p, qos, false));
        }
    }
    for t in tokens {
        publisher.wait(t);
    }
    let want = 3 * payloads.len();
    let got = inbox.wait_for(want, Duration::from_secs(20));
    assert_eq!(got.len(), want);
    // One publisher, one connection: the broker forwards them in the order they were sent.
    for (i, (topic, payload, _, _)) in got.iter().enumerate() {
        let (qos, k) = (i / payloads.len(), i % payloads.len());
        assert_eq!(topic, &format!("big/{qos}"));
        assert!(
            payload == &payloads[k],
            "message {i}: {} bytes, want {}",
            payload.len(),
            sizes[k]
        );
    }
    publisher.disconnect();
    sub.disconnect();
}

#[test]
fn retained_message_is_delivered_to_a_later_subscriber_with_the_retain_flag() {
    let broker = Broker::start();
    let c = Client::connected(broker.port);
    let t = c.publish("keep/this", b"retained!", 1, true);
    c.wait(t);
    let inbox = c.subscribe("keep/#", 1);
    let got = inbox.wait_for(1, Duration::from_secs(10));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0], ("keep/this".into(), b"retained!".to_vec(), 1, true));
}

#[test]
fn will_is_published_after_an_abnormal_disconnect_but_not_after_a_clean_one() {
    let broker = Broker::start();
    let watcher = Client::connected(broker.port);
    let wills = watcher.subscribe("wills/#", 1);
    let with_will = |topic: &'static CStr| {
        Client::new(broker.port, |o| {
            o.will_topic = topic.as_ptr();
            o.will_payload = b"gone".as_ptr();
            o.will_payload_len = 4;
            o.will_qos = 1;
        })
    };
    // Clean goodbye: no will.
    let polite = with_will(c"wills/polite");
    polite.connect();
    polite.disconnect();
    drop(polite);
    // Free without DISCONNECT: the broker sees the socket close and publishes the will.
    let rude = with_will(c"wills/rude");
    rude.connect();
    drop(rude);
    let got = wills.wait_for(1, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(300));
    let got_now = wills.wait_for(2, Duration::from_millis(10));
    assert_eq!(got.first().map(|m| m.0.as_str()), Some("wills/rude"));
    assert_eq!(got_now.len(), 1, "no will for the clean disconnect: {got_now:?}");
    assert_eq!(got[0].1, b"gone");
}

#[test]
fn overlapping_and_wildcard_subscriptions_each_get_a_message_once() {
    let broker = Broker::start();
    let c = Client::connected(broker.port);
    let exact = c.subscribe("home/kitchen/temp", 0);
    let plus = c.subscribe("home/+/temp", 0);
    let hash = c.subscribe("home/#", 0);
    let other = c.subscribe("office/#", 0);
    let t = c.publish("home/kitchen/temp", b"21", 0, false);
    c.wait(t);
    let t = c.publish("home/hall/temp", b"19", 0, false);
    c.wait(t);
    let t = c.publish("home/hall", b"x", 0, false);
    c.wait(t);
    hash.wait_for(3, Duration::from_secs(10));
    plus.wait_for(2, Duration::from_secs(10));
    exact.wait_for(1, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(200));
    let topics = |i: &Inbox| {
        i.messages
            .lock()
            .unwrap()
            .iter()
            .map(|m| m.0.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(topics(&exact), ["home/kitchen/temp"]);
    assert_eq!(topics(&plus), ["home/kitchen/temp", "home/hall/temp"]);
    assert_eq!(topics(&hash), ["home/kitchen/temp", "home/hall/temp", "home/hall"]);
    assert!(topics(&other).is_empty());
}

#[test]
fn unsubscribe_stops_delivery_and_releases_the_userdata() {
    let broker = Broker::start();
    let c = Client::connected(broker.port);
    let inbox = c.subscribe("u/t", 1);
    let t = c.publish("u/t", b"before", 1, false);
    c.wait(t);
    assert_eq!(inbox.wait_for(1, Duration::from_secs(10)).len(), 1);
    c.unsubscribe("u/t");
    let t = c.publish("u/t", b"after", 1, false);
    c.wait(t);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(inbox.count(), 1, "no delivery after unsubscribe");
    // The library's reference (the subscription's userdata) was released by drop_userdata.
    assert_eq!(Arc::strong_count(&inbox), 1);
}

#[test]
fn resubscribing_a_filter_replaces_its_callback() {
    let broker = Broker::start();
    let c = Client::connected(broker.port);
    let first = c.subscribe("r/t", 0);
    let second = c.subscribe("r/t", 0);
    assert_eq!(Arc::strong_count(&first), 1, "replaced registration released");
    let t = c.publish("r/t", b"x", 0, false);
    c.wait(t);
    assert_eq!(second.wait_for(1, Duration::from_secs(10)).len(), 1);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(first.count(), 0);
}

#[test]
fn unix_domain_socket_connection_works() {
    let dir = common::temp_dir("unix");
    let sock = dir.join("mqtt.sock");
    let broker = Broker::start_with(&format!("listener 0 {}\nallow_anonymous true", sock.display()));
    let mut c = ptr::null_mut();
    let path = CString::new(sock.to_str().unwrap()).unwrap();
    check(
        unsafe { mqttc_client_new_unix(path.as_ptr(), ptr::null(), &mut c) },
        "client_new_unix",
    );
    let c = Client(c);
    c.connect();
    let inbox = c.subscribe("unix/t", 1);
    let t = c.publish("unix/t", b"over a unix socket", 1, false);
    c.wait(t);
    assert_eq!(inbox.wait_for(1, Duration::from_secs(10))[0].1, b"over a unix socket");
    drop(broker);
}

#[test]
fn connect_token_reports_session_present() {
    let broker = Broker::start();
    let persistent = |clean: bool| {
        Client::new(broker.port, |o| {
            o.client_id = c"persistent-one".as_ptr();
            o.clean_session = clean;
        })
    };
    let codes_after_connect = |c: &Client| {
        let mut t = 0;
        check(unsafe { mqttc_connect(c.0, &mut t) }, "connect");
        c.wait(t);
        let mut codes = [9u8; 4];
        let mut n = 0;
        check(
            unsafe { mqttc_token_codes(c.0, t, codes.as_mut_ptr(), codes.len(), &mut n) },
            "codes",
        );
        codes[..n].to_vec()
    };
    let first = persistent(false);
    assert_eq!(codes_after_connect(&first), [0]);
    first.disconnect();
    drop(first);
    let second = persistent(false);
    assert_eq!(codes_after_connect(&second), [1], "the broker kept the session");
}
