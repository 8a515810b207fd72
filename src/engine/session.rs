//! Session state: packet ids, outbound QoS 1/2 in flight, publishes waiting for a window slot,
//! pending SUBSCRIBE/UNSUBSCRIBE, and inbound QoS 2 ids awaiting PUBREL.
//!
//! Pure state (no I/O): the connection task feeds it packets and writes what it returns. It lives
//! outside any one connection so that a reconnect resumes it: [`Session::on_lost`] hands back the
//! requests still waiting for an answer, [`Session::resume`] says what to resend.
use std::collections::{HashSet, VecDeque};

use crate::codec::{Ack, MqttStr, Packet, Properties, Publish, QoS, ReasonCode, SubscribeOptions};
use crate::fxhash::FxHashMap;

use super::Error;
use super::store::Stage;
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
    /// When it was first sent, relative to the others: resends keep the original order.
    seq: u64,
}

/// One filter of a SUBSCRIBE: the filter, its options (QoS and the MQTT 5 flags), and the id of
/// the registration it made.
pub type SubscribeFilter = (MqttStr, SubscribeOptions, u64);

/// A SUBSCRIBE or UNSUBSCRIBE not yet answered, kept across reconnects, with the properties it is
/// sent with (MQTT 5). A subscribe carries each filter's registration id, so that a refused filter
/// removes exactly that registration (not a later replacement); its token is None for the
/// subscribes the client makes by itself after the broker lost the session.
#[derive(Debug)]
pub enum Request {
    Subscribe(Option<Token>, Vec<SubscribeFilter>, Properties),
    Unsubscribe(Token, Vec<MqttStr>, Properties),
}

/// A completed SUBSCRIBE: its token, its result, and the (filter, subscription id) pairs refused.
pub type SubAckOutcome = (Option<Token>, TokenResult, Vec<(String, u64)>);

/// Ids per page of [`PacketIds`]' bitmap.
const PAGE_IDS: usize = 4096;
const PAGES: usize = 65536 / PAGE_IDS;

/// Packet ids in use, as a bitmap: allocation never hands out 0 or an id still in use. The
/// bitmap is kept in pages, each allocated while it holds an id in use or is the one ids are
/// handed out from: a client with a few messages in flight holds one page (512 bytes), not the
/// 8 KiB of all 65,535 ids, which matters in a fleet of thousands of clients.
struct PacketIds {
    pages: [Option<Box<[u64; PAGE_IDS / 64]>>; PAGES],
    /// Ids in use per page.
    in_page: [u16; PAGES],
    last: u16,
    count: usize,
}

impl PacketIds {
    fn new() -> Self {
        PacketIds {
            pages: Default::default(),
            in_page: [0; PAGES],
            last: 0,
            count: 0,
        }
    }

    /// The page of `id`, and the word and bit of `id` in it.
    fn place(id: u16) -> (usize, usize, u64) {
        let id = id as usize;
        (id / PAGE_IDS, id % PAGE_IDS / 64, 1 << (id % 64))
    }

    /// Takes `id` itself (a restored publish's); false when it is 0 or in use.
    fn take(&mut self, id: u16) -> bool {
        if id == 0 || self.is_used(id) {
            return false;
        }
        self.mark(id);
        true
    }

    fn is_used(&self, id: u16) -> bool {
        let (page, word, bit) = Self::place(id);
        self.pages[page].as_ref().is_some_and(|p| p[word] & bit != 0)
    }

    fn mark(&mut self, id: u16) {
        let (page, word, bit) = Self::place(id);
        self.pages[page].get_or_insert_with(|| Box::new([0; PAGE_IDS / 64]))[word] |= bit;
        self.in_page[page] += 1;
        self.count += 1;
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
        let left = Self::place(self.last).0;
        self.mark(id);
        self.last = id;
        self.drop_if_unused(left);
        Some(id)
    }

    fn release(&mut self, id: u16) {
        if id != 0 && self.is_used(id) {
            let (page, word, bit) = Self::place(id);
            if let Some(p) = &mut self.pages[page] {
                p[word] &= !bit;
            }
            self.in_page[page] -= 1;
            self.count -= 1;
            self.drop_if_unused(page);
        }
    }

    /// Frees `page` when no id in it is in use and either none is in use at all (an idle client
    /// keeps no page) or ids are not handed out from it (which would only allocate it again with
    /// the next).
    fn drop_if_unused(&mut self, page: usize) {
        if self.in_page[page] == 0 && (self.count == 0 || page != Self::place(self.last).0) {
            self.pages[page] = None;
        }
    }
}

pub struct Session {
    ids: PacketIds,
    /// The window in force: `configured_inflight`, or the broker's smaller Receive Maximum.
    max_inflight: usize,
    configured_inflight: usize,
    pub(crate) inflight: FxHashMap<u16, InFlight>,
    /// QoS 1/2 publishes beyond the in-flight window, in submission order.
    pub queued: VecDeque<(Token, Publish)>,
    /// Ids of in-flight publishes a resumed session must send again and has not yet (the new
    /// connection's window was full), in their original order. They go before anything queued.
    resend: VecDeque<u16>,
    /// SUBSCRIBE/UNSUBSCRIBE sent and not yet answered, by packet id, with their send order.
    requests: FxHashMap<u16, (u64, Request)>,
    /// Inbound QoS 2 ids we sent PUBREC for: a duplicate PUBLISH with one of them is not delivered
    /// again, also after a reconnect that resumed the session. The broker picks these ids, so
    /// this set keeps the standard (flood-resistant) hasher.
    pub inbound_qos2: HashSet<u16>,
    /// PUBRELs owed for PUBRECs read and not yet written: they go out in batches, see `take_pubrels`.
    pubrels: Vec<u16>,
    /// In-flight QoS 2 publishes whose PUBREC has not been read: counted, not derived from
    /// `inflight`, because `take_pubrels` asks after every read.
    awaiting_pubrec: usize,
    next_seq: u64,
}

/// What the connection must do after the session handled an acknowledgement.
#[derive(Debug, PartialEq, Eq)]
pub enum AckAction {
    /// Nothing awaited it: the connection logs it.
    Nothing,
    /// A PUBREC: its PUBREL is owed, see `take_pubrels`.
    PubRelOwed,
    Complete(Token, TokenResult),
}

impl Session {
    pub fn new(max_inflight: usize) -> Self {
        Session {
            ids: PacketIds::new(),
            max_inflight: max_inflight.clamp(1, 65535),
            configured_inflight: max_inflight.clamp(1, 65535),
            inflight: FxHashMap::default(),
            queued: VecDeque::new(),
            resend: VecDeque::new(),
            requests: FxHashMap::default(),
            inbound_qos2: HashSet::new(),
            pubrels: Vec::new(),
            awaiting_pubrec: 0,
            next_seq: 0,
        }
    }

    fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// Gives a SUBSCRIBE/UNSUBSCRIBE its packet id and returns the packet to send; None when every
    /// id is in use (the request is handed back).
    pub fn start_request(&mut self, request: Request) -> Result<Packet, Request> {
        let Some(pkid) = self.ids.allocate() else {
            return Err(request);
        };
        let packet = match &request {
            Request::Subscribe(_, filters, properties) => Packet::Subscribe(crate::codec::Subscribe {
                pkid,
                filters: filters.iter().map(|(f, o, _)| (f.clone(), *o)).collect(),
                properties: properties.clone(),
            }),
            Request::Unsubscribe(_, filters, properties) => Packet::Unsubscribe(crate::codec::Unsubscribe {
                pkid,
                filters: filters.clone(),
                properties: properties.clone(),
            }),
        };
        let seq = self.seq();
        self.requests.insert(pkid, (seq, request));
        Ok(packet)
    }

    /// Takes back a publish restored from a store, before the session's first connection: in
    /// flight under its packet id when it was sent (`resume` then resends it, or its PUBREL), else
    /// queued, behind those restored before it.
    pub fn restore(&mut self, token: Token, mut publish: Publish, stage: Stage) {
        let sent = match stage {
            Stage::Sent(id) if publish.qos == QoS::ExactlyOnce => Some((id, Awaiting::PubRec)),
            Stage::Sent(id) => Some((id, Awaiting::PubAck)),
            Stage::Released(id) if publish.qos == QoS::ExactlyOnce => Some((id, Awaiting::PubComp)),
            Stage::Released(_) | Stage::Queued => None,
        };
        match sent {
            Some((id, awaiting)) if self.ids.take(id) => {
                self.fly(token, publish, id, awaiting);
            }
            _ => {
                publish.pkid = 0;
                self.queued.push_back((token, publish));
            }
        }
    }

    /// Takes a QoS 1/2 publish: returns it with its packet id when the window has room (the caller
    /// writes it), or queues it behind earlier ones. What is returned is the in-flight copy itself:
    /// the session keeps the one copy a publish has until it is acknowledged, and lends it out for
    /// writing rather than clone it (a clone of its buffers costs allocations of their own).
    pub fn submit(&mut self, token: Token, publish: Publish) -> Option<&Publish> {
        if self.queued.is_empty() && self.resend.is_empty() && self.has_room() {
            self.start(token, publish)
        } else {
            self.queued.push_back((token, publish));
            None
        }
    }

    fn start(&mut self, token: Token, publish: Publish) -> Option<&Publish> {
        let Some(id) = self.ids.allocate() else {
            self.queued.push_front((token, publish));
            return None;
        };
        let awaiting = match publish.qos {
            QoS::ExactlyOnce => Awaiting::PubRec,
            _ => Awaiting::PubAck,
        };
        Some(self.fly(token, publish, id, awaiting))
    }

    /// Puts a publish in flight under `id`, which the caller took.
    fn fly(&mut self, token: Token, mut publish: Publish, id: u16, awaiting: Awaiting) -> &Publish {
        publish.pkid = id;
        if awaiting == Awaiting::PubRec {
            self.awaiting_pubrec += 1;
        }
        let seq = self.seq();
        let flight = InFlight {
            token,
            publish,
            awaiting,
            seq,
        };
        &self.inflight.entry(id).insert_entry(flight).into_mut().publish
    }

    /// Whether the window takes one more publish: those in flight count, save the ones still
    /// waiting to be sent again (the broker has none of them on this connection). Those awaiting
    /// PUBCOMP count too, which is more than MQTT 5 asks (section 4.9) but never too many.
    fn has_room(&self) -> bool {
        self.inflight.len() - self.resend.len() < self.max_inflight
    }

    /// Whether queued publishes should go out now. Once the window has been full, they wait until a
    /// quarter of it is free (or a resend is owed): refilling it one slot per acknowledgement would
    /// write a packet or two per system call and wake the broker as often, which loopback
    /// measurements showed costs both sides most of their CPU time per message, while the three
    /// quarters still in flight keep the broker busy meanwhile. Like TCP's avoidance of silly
    /// window syndrome; a window never filled (a publisher slower than the broker) is not delayed.
    pub fn refill_due(&self) -> bool {
        let free = (self.max_inflight + self.resend.len()).saturating_sub(self.inflight.len());
        !self.resend.is_empty() || free >= (self.max_inflight / 4).max(1)
    }

    /// The next publish to write if the window has room: a resend the resumed session still owes
    /// (DUP set, its packet id kept), else the next queued publish, moved into the window. Called
    /// until it returns None after a connection is resumed and after each acknowledgement, which
    /// usually frees one slot.
    pub fn next_in_window(&mut self) -> Option<&Publish> {
        if !self.has_room() {
            return None;
        }
        if let Some(id) = self.resend.pop_front() {
            return Some(&self.inflight[&id].publish);
        }
        let (token, publish) = self.queued.pop_front()?;
        self.start(token, publish)
    }

    /// The PUBRELs to write now, if they are due: once they are a quarter of the window, or when no
    /// PUBREC may be on its way (none is awaited, or a resend is owed: nothing else would then
    /// release them), or with `anyway` (other bytes are being written, publishes among them
    /// perhaps, which they join for free). Holding them this way makes for larger writes, as
    /// `refill_due` does for publishes: a PUBREL written as each PUBREC is read means a system
    /// call, and a read by the broker, per packet or two.
    pub fn take_pubrels(&mut self, anyway: bool) -> std::vec::Drain<'_, u16> {
        let due = anyway
            || self.awaiting_pubrec == 0
            || !self.resend.is_empty()
            || self.pubrels.len() >= (self.max_inflight / 4).max(1);
        let n = if due { self.pubrels.len() } else { 0 };
        self.pubrels.drain(..n)
    }

    /// Whether publishes are in flight: the broker owes acknowledgements.
    pub fn awaits_acks(&self) -> bool {
        !self.inflight.is_empty()
    }

    /// Drops an in-flight publish that will not be sent (it is larger than the broker takes):
    /// returns its token, to be failed; its packet id is free again.
    pub fn abandon(&mut self, id: u16) -> Option<Token> {
        let f = self.land(id)?;
        if f.awaiting == Awaiting::PubRec {
            self.awaiting_pubrec -= 1;
        }
        self.resend.retain(|&r| r != id);
        Some(f.token)
    }

    /// The in-flight limit for the connection just made: the configured one, or less when an MQTT 5
    /// broker's Receive Maximum says it takes fewer unacknowledged QoS 1/2 publishes (MQTT-3.3.4-7).
    pub fn set_window(&mut self, receive_maximum: usize) {
        self.max_inflight = self.configured_inflight.min(receive_maximum).max(1);
    }

    /// PUBACK (QoS 1 done), PUBREC (QoS 2: send PUBREL), PUBCOMP (QoS 2 done), with the MQTT 5
    /// reason code (success in 3.1.1). The token's outcome carries a success code (0x10 "no
    /// matching subscribers" is one) and the ack's properties; a PUBACK or PUBREC with an error code
    /// ends the exchange and fails the token (MQTT 5 section 4.3.3: no PUBREL follows a failed
    /// PUBREC). An ack for an id we are not waiting on in that state is ignored: MQTT allows it
    /// after a resend.
    pub fn on_ack(&mut self, kind: Awaiting, ack: Ack) -> AckAction {
        let Ack {
            pkid: id,
            reason,
            properties,
        } = ack;
        let Some(f) = self.inflight.get_mut(&id) else {
            return AckAction::Nothing;
        };
        if f.awaiting != kind {
            return AckAction::Nothing;
        }
        if !self.resend.is_empty() {
            // Acknowledged before it went again (the broker had it): nothing left to resend.
            self.resend.retain(|&r| r != id);
        }
        if kind == Awaiting::PubRec {
            self.awaiting_pubrec -= 1;
            if !reason.is_error() {
                f.awaiting = Awaiting::PubComp;
                self.pubrels.push(id);
                return AckAction::PubRelOwed;
            }
        }
        let f = self.land(id).expect("present: looked up above");
        let result = if reason.is_error() {
            Err(Error::PublishRefused {
                code: reason.0,
                properties,
            })
        } else {
            let codes = if reason == ReasonCode::SUCCESS {
                Vec::new()
            } else {
                vec![reason.0]
            };
            Ok(Outcome { codes, properties })
        };
        AckAction::Complete(f.token, result)
    }

    /// SUBACK: the token's outcome carries one code per filter; filters the broker refused are
    /// returned so the caller can drop their registrations. None for an id no SUBSCRIBE awaits.
    ///
    /// A SUBACK must hold one return code per filter, in order (MQTT-3.8.4-5, MQTT-3.9.3-1). With
    /// any other number there is no telling which filter a code is for: that is a protocol error,
    /// and the request stays, to go again on the next connection.
    pub fn on_suback(
        &mut self,
        id: u16,
        codes: &[ReasonCode],
        properties: Properties,
    ) -> Result<Option<SubAckOutcome>, Error> {
        let Some((_, Request::Subscribe(_, filters, _))) = self.requests.get(&id) else {
            return Ok(None);
        };
        if codes.len() != filters.len() {
            return Err(Error::UnexpectedPacket(
                "SUBACK whose number of return codes differs from the SUBSCRIBE's filters",
            ));
        }
        let Some(Request::Subscribe(token, filters, _)) = self.answered(id) else {
            unreachable!("checked just above");
        };
        let raw: Vec<u8> = codes.iter().map(|c| c.0).collect();
        let refused: Vec<(String, u64)> = filters
            .into_iter()
            .zip(codes)
            .filter(|(_, c)| c.is_error())
            .map(|((f, _, id), _)| (f.as_str().to_owned(), id))
            .collect();
        let result = if refused.is_empty() {
            Ok(Outcome { codes: raw, properties })
        } else {
            Err(Error::SubscribeRefused { codes: raw, properties })
        };
        Ok(Some((token, result, refused)))
    }

    /// UNSUBACK: the token and its result, one reason code per filter in MQTT 5 (none in 3.1.1,
    /// which has no codes); None for an id no UNSUBSCRIBE awaits. A code count that differs from
    /// the filters is a protocol error, as for SUBACK.
    pub fn on_unsuback(
        &mut self,
        id: u16,
        codes: &[ReasonCode],
        properties: Properties,
    ) -> Result<Option<(Token, TokenResult)>, Error> {
        let Some((_, Request::Unsubscribe(_, filters, _))) = self.requests.get(&id) else {
            return Ok(None);
        };
        if !codes.is_empty() && codes.len() != filters.len() {
            return Err(Error::UnexpectedPacket(
                "UNSUBACK whose number of reason codes differs from the UNSUBSCRIBE's filters",
            ));
        }
        let Some(Request::Unsubscribe(token, ..)) = self.answered(id) else {
            unreachable!("checked just above");
        };
        let codes: Vec<u8> = codes.iter().map(|c| c.0).collect();
        let result = if codes.iter().any(|&c| ReasonCode(c).is_error()) {
            Err(Error::UnsubscribeRefused { codes, properties })
        } else {
            Ok(Outcome { codes, properties })
        };
        Ok(Some((token, result)))
    }

    /// Takes the in-flight publish `id` out of the window, and frees its packet id. The table goes
    /// with its last publish, as the request table does: an idle client of a fleet need not keep
    /// its room, and a busy one seldom empties it.
    fn land(&mut self, id: u16) -> Option<InFlight> {
        let f = self.inflight.remove(&id)?;
        self.ids.release(id);
        if self.inflight.is_empty() {
            self.inflight = FxHashMap::default();
        }
        Some(f)
    }

    /// Takes the request `id` the broker answered, and frees its packet id. The table goes with
    /// its last request: requests are few and far between, and an idle client of a fleet need not
    /// keep their room.
    fn answered(&mut self, id: u16) -> Option<Request> {
        let (_, request) = self.requests.remove(&id)?;
        self.ids.release(id);
        if self.requests.is_empty() {
            self.requests = FxHashMap::default();
        }
        Some(request)
    }

    /// The connection is gone: SUBSCRIBE/UNSUBSCRIBE requests still unanswered are handed back, in
    /// the order they were sent, to go out again on the next connection. Publishes stay, for
    /// [`Session::resume`].
    pub fn on_lost(&mut self) -> Vec<Request> {
        let mut requests: Vec<(u16, (u64, Request))> = self.requests.drain().collect();
        requests.sort_by_key(|(_, (seq, _))| *seq);
        requests
            .into_iter()
            .map(|(id, (_, request))| {
                self.ids.release(id);
                request
            })
            .collect()
    }

    /// A new connection is up (its window already set): returns what to send before anything
    /// new; then [`Session::next_in_window`] gives the publishes the window did not take yet.
    /// When the broker kept the session, every unacknowledged publish goes again with DUP set and
    /// its packet id, and those already PUBREC'd get their PUBREL (MQTT-4.4.0-1), in their
    /// original order, but no more publishes than the window takes: the rest follow, still in
    /// order and before anything queued, as acknowledgements free slots (a resumed PUBREL waits
    /// for no window slot, so it may overtake them). When the broker did not keep the session, it knows none of
    /// them: they start again as new messages, in order, ahead of what was queued, all through
    /// `next_in_window` (a QoS 2 message PUBREC'd by the lost session may then arrive twice;
    /// losing it instead would break QoS 2's promise worse), and inbound QoS 2 state is forgotten
    /// with the broker's.
    pub fn resume(&mut self, session_present: bool) -> Vec<Packet> {
        let mut flights: Vec<(u16, u64)> = self.inflight.iter().map(|(id, f)| (*id, f.seq)).collect();
        flights.sort_by_key(|(_, seq)| *seq);
        self.resend.clear();
        // Owed PUBRELs go again below, with those of every other publish awaiting PUBCOMP.
        self.pubrels.clear();
        if session_present {
            let mut out = Vec::new();
            for (id, _) in flights {
                let f = self.inflight.get_mut(&id).expect("listed just above");
                f.publish.dup = true;
                match f.awaiting {
                    // Each counts against the window, like those in flight (see `has_room`).
                    Awaiting::PubComp => out.push(Packet::PubRel(Ack::new(id))),
                    Awaiting::PubAck | Awaiting::PubRec if self.resend.is_empty() && out.len() < self.max_inflight => {
                        out.push(Packet::Publish(f.publish.clone()));
                    }
                    Awaiting::PubAck | Awaiting::PubRec => self.resend.push_back(id),
                }
            }
            return out;
        }
        self.inbound_qos2.clear();
        self.awaiting_pubrec = 0;
        for (id, _) in flights.into_iter().rev() {
            let f = self.land(id).expect("listed just above");
            self.queued.push_front((
                f.token,
                Publish {
                    dup: false,
                    pkid: 0,
                    ..f.publish
                },
            ));
        }
        Vec::new()
    }

    /// Ends the session (a disconnect, or the client closing): every operation still waiting
    /// completes with `error`, and packet ids are freed.
    pub fn fail_all(&mut self, error: &Error) -> Vec<(Token, TokenResult)> {
        let mut inflight: Vec<_> = self.inflight.drain().map(|(_, f)| f).collect();
        inflight.sort_by_key(|f| f.seq);
        let mut out: Vec<(Token, TokenResult)> = inflight.into_iter().map(|f| (f.token, Err(error.clone()))).collect();
        out.extend(self.queued.drain(..).map(|(t, _)| (t, Err(error.clone()))));
        out.extend(self.on_lost().into_iter().filter_map(|r| match r {
            Request::Subscribe(t, ..) => t.map(|t| (t, Err(error.clone()))),
            Request::Unsubscribe(t, ..) => Some((t, Err(error.clone()))),
        }));
        self.inbound_qos2.clear();
        self.resend.clear();
        self.pubrels.clear();
        self.awaiting_pubrec = 0;
        self.ids = PacketIds::new();
        out
    }

    pub fn is_idle(&self) -> bool {
        self.inflight.is_empty() && self.queued.is_empty() && self.requests.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::PropertyId;
    use bytes::Bytes;

    fn publish(qos: QoS) -> Publish {
        Publish {
            dup: false,
            qos,
            retain: false,
            topic: MqttStr::new("t").unwrap(),
            pkid: 0,
            properties: Properties::new(),
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

    /// A few ids in flight at a time hold one or two pages of the bitmap, as ids wrap around.
    #[test]
    fn packet_ids_hold_only_the_pages_in_use() {
        let mut ids = PacketIds::new();
        let mut live = std::collections::VecDeque::new();
        for _ in 0..200_000 {
            live.push_back(ids.allocate().unwrap());
            if live.len() > 10 {
                ids.release(live.pop_front().unwrap());
            }
            assert!(ids.pages.iter().flatten().count() <= 2);
        }
        let ended_at = ids.last;
        live.drain(..).for_each(|id| ids.release(id));
        assert_eq!(ids.count, 0);
        assert_eq!(
            ids.pages.iter().flatten().count(),
            0,
            "none in use: not even the page ids are handed out from"
        );
        assert_eq!(ids.allocate(), Some(ended_at.wrapping_add(1).max(1)));
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
            s.on_ack(Awaiting::PubAck, ack(first, ReasonCode::SUCCESS)),
            AckAction::Complete(1, Ok(Outcome::default()))
        );
        let next = s.next_in_window().unwrap().pkid;
        assert!(s.next_in_window().is_none(), "one slot was freed");
        assert_eq!(s.inflight[&next].token, 3, "queued publishes leave in submission order");
    }

    #[test]
    fn a_session_with_nothing_in_flight_holds_no_table_nor_id_page() {
        let mut s = Session::new(4);
        for token in 1..=2 {
            s.submit(token, publish(QoS::AtLeastOnce)).unwrap();
        }
        let ids: Vec<u16> = s.inflight.keys().copied().collect();
        s.on_ack(Awaiting::PubAck, ack(ids[0], ReasonCode::SUCCESS));
        assert!(s.inflight.capacity() > 0, "kept while a publish is in flight");
        s.on_ack(Awaiting::PubAck, ack(ids[1], ReasonCode::SUCCESS));
        assert_eq!(s.inflight.capacity(), 0);
        assert_eq!(s.ids.pages.iter().flatten().count(), 0);
        assert!(s.submit(3, publish(QoS::AtLeastOnce)).is_some(), "and makes them again");
    }

    #[test]
    fn a_full_window_is_refilled_once_a_quarter_of_it_is_free() {
        let mut s = Session::new(8);
        assert!(s.refill_due(), "an empty window");
        for t in 0..10 {
            s.submit(t, publish(QoS::AtLeastOnce));
        }
        assert_eq!((s.inflight.len(), s.queued.len()), (8, 2));
        let mut ids: Vec<u16> = s.inflight.keys().copied().collect();
        ids.sort_unstable();
        s.on_ack(Awaiting::PubAck, ack(ids[0], ReasonCode::SUCCESS));
        assert!(!s.refill_due(), "one free slot of eight");
        s.on_ack(Awaiting::PubAck, ack(ids[1], ReasonCode::SUCCESS));
        assert!(s.refill_due(), "two free slots of eight");
        assert!(s.next_in_window().is_some() && s.next_in_window().is_some());
        assert!(s.next_in_window().is_none(), "full again");

        let mut one = Session::new(1);
        let id = one.submit(0, publish(QoS::AtLeastOnce)).unwrap().pkid;
        one.submit(1, publish(QoS::AtLeastOnce));
        one.on_ack(Awaiting::PubAck, ack(id, ReasonCode::SUCCESS));
        assert!(one.refill_due(), "a window of one refills at every acknowledgement");
    }

    #[test]
    fn pubrels_wait_for_a_quarter_of_the_window_or_the_last_pubrec() {
        let mut s = Session::new(8);
        let ids: Vec<u16> = (0..5)
            .map(|t| s.submit(t, publish(QoS::ExactlyOnce)).unwrap().pkid)
            .collect();
        let rec = |s: &mut Session, id| {
            assert_eq!(
                s.on_ack(Awaiting::PubRec, ack(id, ReasonCode::SUCCESS)),
                AckAction::PubRelOwed
            )
        };
        rec(&mut s, ids[0]);
        assert_eq!(s.take_pubrels(false).count(), 0, "one of eight, four PUBRECs to come");
        assert_eq!(
            s.take_pubrels(true).collect::<Vec<_>>(),
            [ids[0]],
            "joining other bytes"
        );
        rec(&mut s, ids[1]);
        rec(&mut s, ids[2]);
        assert_eq!(
            s.take_pubrels(false).collect::<Vec<_>>(),
            [ids[1], ids[2]],
            "a quarter of eight"
        );
        rec(&mut s, ids[3]);
        assert_eq!(s.take_pubrels(false).count(), 0);
        // A refused PUBREC ends its exchange: no PUBREL for it, and no PUBREC is awaited any more.
        assert!(matches!(
            s.on_ack(Awaiting::PubRec, ack(ids[4], ReasonCode::QUOTA_EXCEEDED)),
            AckAction::Complete(4, Err(_))
        ));
        assert_eq!(s.take_pubrels(false).collect::<Vec<_>>(), [ids[3]], "no PUBREC to come");
        assert!(s.pubrels.is_empty());
    }

    #[test]
    fn qos2_handshake_needs_pubrec_then_pubcomp() {
        let mut s = Session::new(10);
        let p = s.submit(7, publish(QoS::ExactlyOnce)).unwrap().clone();
        assert_eq!(
            s.on_ack(Awaiting::PubComp, ack(p.pkid, ReasonCode::SUCCESS)),
            AckAction::Nothing,
            "PUBCOMP before PUBREC"
        );
        assert_eq!(
            s.on_ack(Awaiting::PubRec, ack(p.pkid, ReasonCode::SUCCESS)),
            AckAction::PubRelOwed
        );
        assert_eq!(
            s.take_pubrels(false).collect::<Vec<_>>(),
            [p.pkid],
            "no other PUBREC awaited"
        );
        assert_eq!(
            s.on_ack(Awaiting::PubComp, ack(p.pkid, ReasonCode::SUCCESS)),
            AckAction::Complete(7, Ok(Outcome::default()))
        );
        assert!(s.is_idle());
    }

    fn subscribe(filters: &[(&str, u64)]) -> Request {
        Request::Subscribe(
            Some(9),
            filters
                .iter()
                .map(|(f, id)| (MqttStr::new(f).unwrap(), QoS::AtLeastOnce.into(), *id))
                .collect(),
            Properties::new(),
        )
    }

    fn ack(pkid: u16, reason: ReasonCode) -> Ack {
        Ack {
            reason,
            ..Ack::new(pkid)
        }
    }

    fn pkid(packet: &Packet) -> u16 {
        match packet {
            Packet::Subscribe(s) => s.pkid,
            Packet::Unsubscribe(u) => u.pkid,
            Packet::Publish(p) => p.pkid,
            Packet::PubRel(ack) => ack.pkid,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn mqtt5_ack_reason_codes_reach_the_token() {
        let mut s = Session::new(10);
        let a = s.submit(1, publish(QoS::AtLeastOnce)).unwrap().pkid;
        let b = s.submit(2, publish(QoS::AtLeastOnce)).unwrap().pkid;
        let c = s.submit(3, publish(QoS::ExactlyOnce)).unwrap().pkid;
        assert_eq!(
            s.on_ack(Awaiting::PubAck, ack(a, ReasonCode::NO_MATCHING_SUBSCRIBERS)),
            AckAction::Complete(
                1,
                Ok(Outcome {
                    codes: vec![0x10],
                    ..Outcome::default()
                })
            )
        );
        assert_eq!(
            s.on_ack(Awaiting::PubAck, ack(b, ReasonCode::NOT_AUTHORIZED)),
            AckAction::Complete(
                2,
                Err(Error::PublishRefused {
                    code: 0x87,
                    properties: Properties::new()
                })
            )
        );
        // A refused PUBREC ends the QoS 2 exchange: no PUBREL, the id is free again.
        assert_eq!(
            s.on_ack(Awaiting::PubRec, ack(c, ReasonCode::QUOTA_EXCEEDED)),
            AckAction::Complete(
                3,
                Err(Error::PublishRefused {
                    code: 0x97,
                    properties: Properties::new()
                })
            )
        );
        assert!(s.is_idle());
    }

    #[test]
    fn an_acks_properties_reach_the_token_whether_it_succeeds_or_fails() {
        let mut s = Session::new(10);
        let a = s.submit(1, publish(QoS::AtLeastOnce)).unwrap().pkid;
        let b = s.submit(2, publish(QoS::AtLeastOnce)).unwrap().pkid;
        let mut props = Properties::new();
        props.push_str(PropertyId::ReasonString, "queued for later").unwrap();
        props.push_user("k", "v").unwrap();
        let ok = Ack {
            properties: props.clone(),
            ..Ack::new(a)
        };
        let AckAction::Complete(1, Ok(outcome)) = s.on_ack(Awaiting::PubAck, ok) else {
            panic!("PUBACK did not complete token 1")
        };
        assert_eq!(outcome.properties, props);
        let refused = Ack {
            reason: ReasonCode::NOT_AUTHORIZED,
            properties: props.clone(),
            ..Ack::new(b)
        };
        let AckAction::Complete(2, Err(e)) = s.on_ack(Awaiting::PubAck, refused) else {
            panic!("refused PUBACK did not fail token 2")
        };
        assert_eq!(e.properties(), Some(&props));
        assert!(e.to_string().ends_with(": queued for later"), "{e}");
    }

    #[test]
    fn receive_maximum_narrows_the_window_and_never_widens_it() {
        let mut s = Session::new(3);
        s.set_window(2);
        assert!(s.submit(1, publish(QoS::AtLeastOnce)).is_some());
        assert!(s.submit(2, publish(QoS::AtLeastOnce)).is_some());
        assert!(s.submit(3, publish(QoS::AtLeastOnce)).is_none(), "a third waits");
        s.set_window(65_535);
        assert!(s.next_in_window().is_some(), "back to the configured 3");
        assert!(s.submit(4, publish(QoS::AtLeastOnce)).is_none());
    }

    #[test]
    fn unsuback_codes_per_filter() {
        let mut s = Session::new(10);
        let filters = vec![MqttStr::new("a").unwrap(), MqttStr::new("b").unwrap()];
        let id = pkid(
            &s.start_request(Request::Unsubscribe(4, filters.clone(), Properties::new()))
                .unwrap(),
        );
        assert!(
            s.on_unsuback(id, &[ReasonCode::SUCCESS], Properties::new()).is_err(),
            "one code for two filters"
        );
        let codes = [ReasonCode::SUCCESS, ReasonCode::NO_SUBSCRIPTION_EXISTED];
        assert_eq!(
            s.on_unsuback(id, &codes, Properties::new()),
            Ok(Some((
                4,
                Ok(Outcome {
                    codes: vec![0, 0x11],
                    ..Outcome::default()
                })
            )))
        );
        let id = pkid(
            &s.start_request(Request::Unsubscribe(5, filters, Properties::new()))
                .unwrap(),
        );
        let codes = [ReasonCode::NOT_AUTHORIZED, ReasonCode::SUCCESS];
        assert_eq!(
            s.on_unsuback(id, &codes, Properties::new()),
            Ok(Some((
                5,
                Err(Error::UnsubscribeRefused {
                    codes: vec![0x87, 0],
                    properties: Properties::new()
                })
            )))
        );
    }

    #[test]
    fn suback_failure_reports_refused_filters() {
        let mut s = Session::new(10);
        let id = pkid(&s.start_request(subscribe(&[("a", 1), ("b", 2)])).unwrap());
        let (token, result, refused) = s
            .on_suback(
                id,
                &[ReasonCode::GRANTED_QOS_1, ReasonCode::UNSPECIFIED_ERROR],
                Properties::new(),
            )
            .unwrap()
            .unwrap();
        assert_eq!(token, Some(9));
        assert_eq!(
            result,
            Err(Error::SubscribeRefused {
                codes: vec![1, 0x80],
                properties: Properties::new()
            })
        );
        assert_eq!(refused, vec![("b".to_string(), 2)]);
        assert!(s.is_idle());
    }

    #[test]
    fn an_ack_of_the_wrong_kind_leaves_the_request_waiting() {
        let mut s = Session::new(10);
        let id = pkid(
            &s.start_request(Request::Unsubscribe(
                4,
                vec![MqttStr::new("a").unwrap()],
                Properties::new(),
            ))
            .unwrap(),
        );
        assert_eq!(
            s.on_suback(id, &[ReasonCode::UNSPECIFIED_ERROR], Properties::new()),
            Ok(None)
        );
        assert_eq!(
            s.on_unsuback(id, &[], Properties::new()),
            Ok(Some((4, Ok(Outcome::default()))))
        );
    }

    #[test]
    fn a_suback_with_another_number_of_codes_than_filters_is_an_error_and_the_request_waits() {
        let mut s = Session::new(10);
        let id = pkid(&s.start_request(subscribe(&[("a", 1), ("b", 2)])).unwrap());
        let granted = ReasonCode::GRANTED_QOS_1;
        for codes in [&[][..], &[granted], &[granted, granted, granted]] {
            assert!(matches!(
                s.on_suback(id, codes, Properties::new()),
                Err(Error::UnexpectedPacket(_))
            ));
        }
        // Still waiting: handed back on a loss, to go again.
        let back = s.on_lost();
        assert!(matches!(&back[..], [Request::Subscribe(Some(9), f, _)] if f.len() == 2));
    }

    #[test]
    fn lost_connection_hands_back_unanswered_requests_in_send_order() {
        let mut s = Session::new(10);
        s.start_request(subscribe(&[("b", 1)])).unwrap();
        s.start_request(Request::Unsubscribe(
            5,
            vec![MqttStr::new("c").unwrap()],
            Properties::new(),
        ))
        .unwrap();
        s.start_request(subscribe(&[("a", 2)])).unwrap();
        let back = s.on_lost();
        let order: Vec<String> = back
            .iter()
            .map(|r| match r {
                Request::Subscribe(_, f, _) => format!("sub {}", f[0].0.as_str()),
                Request::Unsubscribe(_, f, _) => format!("unsub {}", f[0].as_str()),
            })
            .collect();
        assert_eq!(order, ["sub b", "unsub c", "sub a"]);
        assert!(s.is_idle());
        assert_eq!(s.ids.count, 0, "their packet ids are free again");
    }

    /// Three publishes in flight, sent in this order: QoS 2 already PUBREC'd, QoS 1, QoS 2.
    fn session_with_three_in_flight() -> (Session, [u16; 3]) {
        let mut s = Session::new(10);
        // Allocate ids so that send order and id order differ.
        s.ids.last = 100;
        let a = s.submit(1, publish(QoS::ExactlyOnce)).unwrap().pkid;
        s.ids.last = 5;
        let b = s.submit(2, publish(QoS::AtLeastOnce)).unwrap().pkid;
        s.ids.last = 50;
        let c = s.submit(3, publish(QoS::ExactlyOnce)).unwrap().pkid;
        assert_eq!(
            s.on_ack(Awaiting::PubRec, ack(a, ReasonCode::SUCCESS)),
            AckAction::PubRelOwed
        );
        assert_eq!(s.pubrels, [a], "c's PUBREC is still to come");
        s.inbound_qos2.insert(77);
        (s, [a, b, c])
    }

    /// Everything the window lets out now, as after a resume or an acknowledgement.
    fn window(s: &mut Session) -> Vec<Publish> {
        std::iter::from_fn(|| s.next_in_window().cloned()).collect()
    }

    #[test]
    fn resume_with_session_resends_in_order_with_dup_and_pubrel() {
        let (mut s, [a, b, c]) = session_with_three_in_flight();
        let resent = s.resume(true);
        assert!(s.pubrels.is_empty(), "the held PUBREL is among those resent");
        assert_eq!(resent.len(), 3);
        assert_eq!(resent[0], Packet::PubRel(Ack::new(a)), "PUBREC'd: only PUBREL again");
        for (packet, id) in resent[1..].iter().zip([b, c]) {
            let Packet::Publish(p) = packet else {
                panic!("{packet:?}")
            };
            assert!(p.dup, "a resent PUBLISH has DUP set");
            assert_eq!(p.pkid, id, "with its original packet id");
        }
        assert!(window(&mut s).is_empty(), "all of them went at once");
        assert!(s.inbound_qos2.contains(&77), "inbound QoS 2 state survives");
        assert_eq!(
            s.on_ack(Awaiting::PubComp, ack(a, ReasonCode::SUCCESS)),
            AckAction::Complete(1, Ok(Outcome::default()))
        );
    }

    #[test]
    fn resume_without_session_starts_the_messages_again_in_order() {
        let (mut s, _) = session_with_three_in_flight();
        s.submit(4, publish(QoS::AtLeastOnce));
        assert_eq!(s.resume(false), [], "no PUBREL: the broker knows none of them");
        let resent = window(&mut s);
        let tokens: Vec<Token> = resent
            .iter()
            .map(|p| {
                assert!(!p.dup, "new messages to a new session");
                s.inflight[&p.pkid].token
            })
            .collect();
        assert_eq!(tokens, [1, 2, 3, 4]);
        assert!(s.inbound_qos2.is_empty(), "the broker forgot its QoS 2 state, so do we");
        assert_eq!(
            s.inflight[&resent[0].pkid].awaiting,
            Awaiting::PubRec,
            "QoS 2 restarts at PUBLISH"
        );
    }

    #[test]
    fn resends_of_a_resumed_session_keep_to_a_smaller_window_and_go_before_new_publishes() {
        let mut s = Session::new(10);
        let ids: Vec<u16> = (1..=6)
            .map(|t| s.submit(t, publish(QoS::AtLeastOnce)).unwrap().pkid)
            .collect();
        // The new connection's broker takes 2 at a time.
        s.set_window(2);
        let first: Vec<Publish> = s
            .resume(true)
            .into_iter()
            .map(|p| match p {
                Packet::Publish(p) => p,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(first.iter().map(|p| p.pkid).collect::<Vec<_>>(), ids[..2]);
        assert!(first.iter().all(|p| p.dup));
        assert!(window(&mut s).is_empty(), "the window is full");
        assert!(
            s.submit(7, publish(QoS::AtLeastOnce)).is_none(),
            "new ones wait behind the resends"
        );
        let mut sent = first.iter().map(|p| p.pkid).collect::<Vec<_>>();
        // Each acknowledgement lets exactly one more out, in the original order, then the new one.
        for i in 0..5 {
            let done = s.on_ack(Awaiting::PubAck, ack(sent[i], ReasonCode::SUCCESS));
            assert_eq!(done, AckAction::Complete(i as Token + 1, Ok(Outcome::default())));
            let next = window(&mut s);
            assert_eq!(next.len(), 1, "one slot freed, one publish out");
            assert_eq!(next[0].dup, i + 2 < 6, "resends have DUP, the new publish not");
            sent.push(next[0].pkid);
        }
        assert_eq!(sent[..6], ids[..]);
        assert_eq!(s.inflight[&sent[6]].token, 7);
        s.on_ack(Awaiting::PubAck, ack(sent[5], ReasonCode::SUCCESS));
        assert!(window(&mut s).is_empty(), "nothing left to send");
    }

    #[test]
    fn an_ack_for_a_publish_not_yet_resent_takes_it_off_the_resends() {
        let mut s = Session::new(10);
        let a = s.submit(1, publish(QoS::AtLeastOnce)).unwrap().pkid;
        let b = s.submit(2, publish(QoS::AtLeastOnce)).unwrap().pkid;
        let c = s.submit(3, publish(QoS::AtLeastOnce)).unwrap().pkid;
        s.set_window(1);
        assert!(matches!(&s.resume(true)[..], [Packet::Publish(p)] if p.pkid == a));
        // The broker acknowledges c, which it had, before it is sent again.
        assert_eq!(
            s.on_ack(Awaiting::PubAck, ack(c, ReasonCode::SUCCESS)),
            AckAction::Complete(3, Ok(Outcome::default()))
        );
        assert!(window(&mut s).is_empty(), "a still holds the one slot");
        s.on_ack(Awaiting::PubAck, ack(a, ReasonCode::SUCCESS));
        assert_eq!(window(&mut s).iter().map(|p| p.pkid).collect::<Vec<_>>(), [b]);
        // An abandoned publish frees its slot and its id too.
        assert_eq!(s.abandon(b), Some(2));
        assert!(s.is_idle());
        assert_eq!(s.ids.count, 0);
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
