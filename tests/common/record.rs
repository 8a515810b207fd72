//! What a recording `Proxy` (tests/common/proxy.rs) saw: every MQTT 3.1.1 packet it passed on, in
//! both directions of every link, in the order it passed them on, so a test can say which side
//! of a connection sent what, and when, without trusting either side's own account.

use std::fmt;

/// One packet the proxy passed on in full (a packet cut short by a closed link is not recorded).
#[derive(Clone, Debug)]
pub struct Record {
    /// Position among all the proxy's records: packets of every link and direction are ordered by
    /// when the proxy began to pass them on (numbers of packets a closing link cut off are unused).
    pub seq: usize,
    /// The proxy's link (one client connection) it travelled on.
    pub link: u64,
    /// From the client to the broker (else from the broker to the client).
    pub to_broker: bool,
    pub packet: Packet,
}

/// The fields of a packet the tests look at; other packets are kept by type only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Packet {
    Connect {
        client_id: String,
    },
    ConnAck {
        session_present: bool,
        code: u8,
    },
    Publish {
        dup: bool,
        qos: u8,
        pkid: u16,
        topic: String,
        payload: Vec<u8>,
    },
    PubAck(u16),
    PubRec(u16),
    PubRel(u16),
    PubComp(u16),
    /// Any other packet: its type (the high nibble of the first byte).
    Other(u8),
    /// Not a packet: a note the test put in the record (`Proxy::mark`), e.g. "broker restarted".
    Mark(String),
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let arrow = if self.to_broker {
            "client -> broker"
        } else {
            "broker -> client"
        };
        match &self.packet {
            Packet::Mark(note) => write!(f, "#{} ---- {note}", self.seq),
            p => write!(f, "#{} link {} {arrow}: {p}", self.seq, self.link),
        }
    }
}

impl fmt::Display for Packet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Packet::Connect { client_id } => write!(f, "CONNECT {client_id}"),
            Packet::ConnAck { session_present, code } => {
                write!(f, "CONNACK session_present={} rc={code}", u8::from(*session_present))
            }
            Packet::Publish {
                dup,
                qos,
                pkid,
                topic,
                payload,
            } => write!(
                f,
                "PUBLISH id {pkid} dup={} qos={qos} {topic} '{}'",
                u8::from(*dup),
                String::from_utf8_lossy(payload)
            ),
            Packet::PubAck(id) => write!(f, "PUBACK id {id}"),
            Packet::PubRec(id) => write!(f, "PUBREC id {id}"),
            Packet::PubRel(id) => write!(f, "PUBREL id {id}"),
            Packet::PubComp(id) => write!(f, "PUBCOMP id {id}"),
            Packet::Other(t) => write!(f, "packet type {t}"),
            Packet::Mark(note) => write!(f, "{note}"),
        }
    }
}

/// Splits one direction of one link into packets; bytes of an incomplete packet wait for more.
#[derive(Default)]
pub struct Decoder {
    pending: Vec<u8>,
}

impl Decoder {
    /// Adds `bytes` and returns every packet now complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Packet> {
        self.pending.extend_from_slice(bytes);
        let mut out = Vec::new();
        let mut at = 0;
        while let Some((header, len)) = frame(&self.pending[at..]) {
            let body = &self.pending[at + header..at + header + len];
            out.push(decode(self.pending[at], body));
            at += header + len;
        }
        self.pending.drain(..at);
        out
    }
}

/// (fixed header length, remaining length) of the packet `buf` starts with, once all of it is
/// there.
fn frame(buf: &[u8]) -> Option<(usize, usize)> {
    let mut len = 0usize;
    for i in 1..5 {
        let b = *buf.get(i)?;
        len |= usize::from(b & 0x7f) << (7 * (i - 1));
        if b & 0x80 == 0 {
            return (buf.len() >= i + 1 + len).then_some((i + 1, len));
        }
    }
    panic!("recorder: a remaining length longer than 4 bytes");
}

fn u16_at(body: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([body[at], body[at + 1]])
}

/// A length-prefixed string at `at`, and where what follows it starts.
fn string_at(body: &[u8], at: usize) -> (String, usize) {
    let len = usize::from(u16_at(body, at));
    let end = at + 2 + len;
    (String::from_utf8_lossy(&body[at + 2..end]).into_owned(), end)
}

fn decode(first: u8, body: &[u8]) -> Packet {
    match first >> 4 {
        1 => {
            // Protocol name, level, flags, keep-alive, then the client id.
            let (_, at) = string_at(body, 0);
            Packet::Connect {
                client_id: string_at(body, at + 4).0,
            }
        }
        2 => Packet::ConnAck {
            session_present: body[0] & 1 == 1,
            code: body[1],
        },
        3 => {
            let qos = (first >> 1) & 3;
            let (topic, mut at) = string_at(body, 0);
            let pkid = if qos > 0 {
                at += 2;
                u16_at(body, at - 2)
            } else {
                0
            };
            Packet::Publish {
                dup: first & 0x08 != 0,
                qos,
                pkid,
                topic,
                payload: body[at..].to_vec(),
            }
        }
        4 => Packet::PubAck(u16_at(body, 0)),
        5 => Packet::PubRec(u16_at(body, 0)),
        6 => Packet::PubRel(u16_at(body, 0)),
        7 => Packet::PubComp(u16_at(body, 0)),
        t => Packet::Other(t),
    }
}
