//! Session state: packet ids, outbound QoS 1/2 in flight, publishes waiting for a window slot,
//! pending SUBSCRIBE/UNSUBSCRIBE, and inbound QoS 2 ids awaiting PUBREL.
//!
//! Pure state (no I/O): the connection task feeds it packets and writes what it returns. It lives
//! outside any one connection so that a later reconnect can resume it.
use std::collections::{HashMap, HashSet, VecDeque};

use crate::codec::{Publish, QoS, SubAckCode};

use super::Error;
use super::tokens::{Outcome, Token, TokenResult};

/// Which acknowledgement an outbound publish is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Awaiting {
    PubAck,
    PubRec,
    PubComp,
}

#[derive(Debug)]
pub struct InFlight {
    pub token: Token,
    pub publish: Publish,
    pub awaiting: Awaiting,
}

/// A SUBSCRIBE waiting for its SUBACK: the ids of the subscriptions it registered, so that a refused
/// filter removes exactly the registration this request made (not a later replacement).
#[derive(Debug)]
pub struct PendingSubscribe {
    pub token: Token,
    pub filters: Vec<(String, u64)>,
}

/// A completed SUBSCRIBE: its token, its result, and the (filter, subscription id) pairs refused.
pub type SubAckOutcome = (Token, TokenResult, Vec<(String, u64)>);

/// Packet ids in use, as a bitmap: allocation never hands out 0 or an id still in use.
struct PacketIds {
    used: Box<[u64; 1024]>,
    last: u16,
    count: usize,
}

impl PacketIds {
    fn new() -> Self {
        PacketIds {
            used: Box::new([0; 1024]),
            last: 0,
            count: 0,
        }
    }

    fn is_used(&self, id: u16) -> bool {
        self.used[id as usize / 64] & (1 << (id % 64)) != 0
    }

    fn allocate(&mut self) -> Option<u16> {
        if self.count >= 65535 {
            return None;
        }
        let mut id = self.last;
        loop {
            id = id.wrapping_add(1);
            if id != 0 && !self.is_used(id) {
                break;
            }
        }
        self.used[id as usize / 64] |= 1 << (id % 64);
        self.count += 1;
        self.last = id;
        Some(id)
    }

    fn release(&mut self, id: u16) {
        if id != 0 && self.is_used(id) {
            self.used[id as usize / 64] &= !(1 << (id % 64));
            self.count -= 1;
        }
    }
}

pub struct Session {
    ids: PacketIds,
    max_inflight: usize,
    pub inflight: HashMap<u16, InFlight>,
    /// QoS 1/2 publishes beyond the in-flight window, in submission order.
    pub queued: VecDeque<(Token, Publish)>,
    pub subscribes: HashMap<u16, PendingSubscribe>,
    pub unsubscribes: HashMap<u16, Token>,
    /// Inbound QoS 2 ids we sent PUBREC for: a duplicate PUBLISH with one of them is not delivered again.
    pub inbound_qos2: HashSet<u16>,
}

/// What the connection must do after the session handled an acknowledgement.
#[derive(Debug, PartialEq, Eq)]
pub enum AckAction {
    Nothing,
    SendPubRel(u16),
    Complete(Token, TokenResult),
}

impl Session {
    pub fn new(max_inflight: usize) -> Self {
        Session {
            ids: PacketIds::new(),
            max_inflight: max_inflight.clamp(1, 65535),
            inflight: HashMap::new(),
            queued: VecDeque::new(),
            subscribes: HashMap::new(),
            unsubscribes: HashMap::new(),
            inbound_qos2: HashSet::new(),
        }
    }

    pub fn allocate_id(&mut self) -> Option<u16> {
        self.ids.allocate()
    }

    /// Takes a QoS 1/2 publish: returns it with its packet id when the window has room (the caller
    /// writes it), or queues it behind earlier ones.
    pub fn submit(&mut self, token: Token, publish: Publish) -> Option<Publish> {
        if self.queued.is_empty() && self.inflight.len() < self.max_inflight {
            self.start(token, publish)
        } else {
            self.queued.push_back((token, publish));
            None
        }
    }

    fn start(&mut self, token: Token, mut publish: Publish) -> Option<Publish> {
        let Some(id) = self.ids.allocate() else {
            self.queued.push_front((token, publish));
            return None;
        };
        publish.pkid = id;
        let awaiting = if publish.qos == QoS::ExactlyOnce {
            Awaiting::PubRec
        } else {
            Awaiting::PubAck
        };
        self.inflight.insert(
            id,
            InFlight {
                token,
                publish: publish.clone(),
                awaiting,
            },
        );
        Some(publish)
    }

    /// Moves queued publishes into the window while it has room; returns those to write.
    pub fn fill_window(&mut self) -> Vec<Publish> {
        let mut out = Vec::new();
        while self.inflight.len() < self.max_inflight {
            let Some((token, publish)) = self.queued.pop_front() else {
                break;
            };
            match self.start(token, publish) {
                Some(p) => out.push(p),
                None => break,
            }
        }
        out
    }

    /// PUBACK (QoS 1 done), PUBREC (QoS 2: send PUBREL), PUBCOMP (QoS 2 done). An ack for an id we
    /// are not waiting on in that state is ignored: MQTT allows it after a resend.
    pub fn on_ack(&mut self, kind: Awaiting, id: u16) -> AckAction {
        let Some(f) = self.inflight.get_mut(&id) else {
            return AckAction::Nothing;
        };
        if f.awaiting != kind {
            return AckAction::Nothing;
        }
        match kind {
            Awaiting::PubRec => {
                f.awaiting = Awaiting::PubComp;
                AckAction::SendPubRel(id)
            }
            Awaiting::PubAck | Awaiting::PubComp => {
                let f = self.inflight.remove(&id).expect("present: looked up above");
                self.ids.release(id);
                AckAction::Complete(f.token, Ok(Outcome::default()))
            }
        }
    }

    /// SUBACK: the token's outcome carries one code per filter; filters the broker refused are
    /// returned so the caller can drop their registrations.
    pub fn on_suback(&mut self, id: u16, codes: &[SubAckCode]) -> Option<SubAckOutcome> {
        let pending = self.subscribes.remove(&id)?;
        self.ids.release(id);
        let raw: Vec<u8> = codes
            .iter()
            .map(|c| match c {
                SubAckCode::Granted(q) => *q as u8,
                SubAckCode::Failure => 0x80,
            })
            .collect();
        let refused: Vec<(String, u64)> = pending
            .filters
            .into_iter()
            .zip(codes.iter().map(Some).chain(std::iter::repeat(None)))
            .filter(|(_, c)| !matches!(c, Some(SubAckCode::Granted(_))))
            .map(|(f, _)| f)
            .collect();
        let result = if refused.is_empty() {
            Ok(Outcome { codes: raw })
        } else {
            Err(Error::SubscribeRefused { codes: raw })
        };
        Some((pending.token, result, refused))
    }

    pub fn on_unsuback(&mut self, id: u16) -> Option<Token> {
        let token = self.unsubscribes.remove(&id)?;
        self.ids.release(id);
        Some(token)
    }

    /// Ends the session (clean session, or a connection that will not resume): every operation still
    /// waiting completes with `error`, and packet ids are freed.
    pub fn fail_all(&mut self, error: &Error) -> Vec<(Token, TokenResult)> {
        let mut inflight: Vec<_> = self.inflight.drain().map(|(_, f)| f).collect();
        inflight.sort_by_key(|f| f.token);
        let mut out: Vec<(Token, TokenResult)> = inflight.into_iter().map(|f| (f.token, Err(error.clone()))).collect();
        out.extend(self.queued.drain(..).map(|(t, _)| (t, Err(error.clone()))));
        out.extend(self.subscribes.drain().map(|(_, s)| (s.token, Err(error.clone()))));
        out.extend(self.unsubscribes.drain().map(|(_, t)| (t, Err(error.clone()))));
        self.inbound_qos2.clear();
        self.ids = PacketIds::new();
        out
    }

    pub fn is_idle(&self) -> bool {
        self.inflight.is_empty() && self.queued.is_empty() && self.subscribes.is_empty() && self.unsubscribes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::MqttStr;
    use bytes::Bytes;

    fn publish(qos: QoS) -> Publish {
        Publish {
            dup: false,
            qos,
            retain: false,
            topic: MqttStr::new("t").unwrap(),
            pkid: 0,
            payload: Bytes::from_static(b"x"),
        }
    }

    #[test]
    fn packet_ids_skip_zero_and_ids_in_use() {
        let mut ids = PacketIds::new();
        ids.last = 65534;
        assert_eq!(ids.allocate(), Some(65535));
        assert_eq!(ids.allocate(), Some(1), "wraps past 0");
        ids.last = 0;
        assert_eq!(ids.allocate(), Some(2), "1 is still in use");
        ids.release(1);
        ids.last = 0;
        assert_eq!(ids.allocate(), Some(1));
    }

    #[test]
    fn packet_ids_run_out_only_when_all_are_used() {
        let mut ids = PacketIds::new();
        let all: HashSet<u16> = (0..65535).map(|_| ids.allocate().unwrap()).collect();
        assert_eq!(all.len(), 65535);
        assert!(!all.contains(&0));
        assert_eq!(ids.allocate(), None);
        ids.release(777);
        assert_eq!(ids.allocate(), Some(777));
    }

    #[test]
    fn window_limits_inflight_and_queues_in_order() {
        let mut s = Session::new(2);
        assert!(s.submit(1, publish(QoS::AtLeastOnce)).is_some());
        assert!(s.submit(2, publish(QoS::AtLeastOnce)).is_some());
        assert!(s.submit(3, publish(QoS::AtLeastOnce)).is_none());
        assert!(s.submit(4, publish(QoS::AtLeastOnce)).is_none());
        let first = *s.inflight.keys().min().unwrap();
        assert_eq!(
            s.on_ack(Awaiting::PubAck, first),
            AckAction::Complete(1, Ok(Outcome::default()))
        );
        let next = s.fill_window();
        assert_eq!(next.len(), 1);
        assert_eq!(
            s.inflight[&next[0].pkid].token, 3,
            "queued publishes leave in submission order"
        );
    }

    #[test]
    fn qos2_handshake_needs_pubrec_then_pubcomp() {
        let mut s = Session::new(10);
        let p = s.submit(7, publish(QoS::ExactlyOnce)).unwrap();
        assert_eq!(
            s.on_ack(Awaiting::PubComp, p.pkid),
            AckAction::Nothing,
            "PUBCOMP before PUBREC"
        );
        assert_eq!(s.on_ack(Awaiting::PubRec, p.pkid), AckAction::SendPubRel(p.pkid));
        assert_eq!(
            s.on_ack(Awaiting::PubComp, p.pkid),
            AckAction::Complete(7, Ok(Outcome::default()))
        );
        assert!(s.is_idle());
    }

    #[test]
    fn suback_failure_reports_refused_filters() {
        let mut s = Session::new(10);
        let id = s.allocate_id().unwrap();
        s.subscribes.insert(
            id,
            PendingSubscribe {
                token: 9,
                filters: vec![("a".into(), 1), ("b".into(), 2)],
            },
        );
        let (token, result, refused) = s
            .on_suback(id, &[SubAckCode::Granted(QoS::AtLeastOnce), SubAckCode::Failure])
            .unwrap();
        assert_eq!(token, 9);
        assert_eq!(result, Err(Error::SubscribeRefused { codes: vec![1, 0x80] }));
        assert_eq!(refused, vec![("b".to_string(), 2)]);
    }

    #[test]
    fn fail_all_completes_everything_with_the_error() {
        let mut s = Session::new(1);
        s.submit(1, publish(QoS::AtLeastOnce));
        s.submit(2, publish(QoS::ExactlyOnce));
        let done = s.fail_all(&Error::Cancelled);
        assert_eq!(done, vec![(1, Err(Error::Cancelled)), (2, Err(Error::Cancelled))]);
        assert!(s.is_idle());
    }
}
