//! What the client sends on a live connection: publishes, subscribe requests, and what a new
//! connection must send first.
use std::collections::HashSet;

use super::Net;
use super::writer::SocketWriter;
use crate::codec::{MqttStr, Packet, Properties, PropertyId, Publish, QoS};
use crate::engine::dispatch::LogLevel;
use crate::engine::session::{Request, SubscribeFilter};
use crate::engine::store::Stage;
use crate::engine::{Error, Token};

/// Filters per SUBSCRIBE when subscribing again after the broker lost the session: keeps each
/// packet well within brokers' size limits.
const RESUBSCRIBE_CHUNK: usize = 256;

impl Net<'_> {
    /// Queues a publish on the live connection: QoS 0 straight into the write buffer, QoS 1/2
    /// through the session's in-flight window.
    pub(super) fn publish(&mut self, w: &mut SocketWriter, token: Token, publish: Publish) -> Result<(), Error> {
        // The packet id is not chosen yet, but it takes the same two bytes whichever it is.
        if let Err(e) = self.peer.check_size(&publish, w.version()) {
            self.out.complete(token, Err(e));
            return Ok(());
        }
        if publish.qos == QoS::AtMostOnce {
            w.publish(&publish)?;
            self.written.push(token);
        } else if let Some(p) = self.session.submit(token, publish) {
            let id = p.pkid;
            w.publish(p)?;
            self.stage(token, Stage::Sent(id));
        }
        Ok(())
    }

    /// Writes the publishes the session's window has room for: resends first, then those queued.
    /// One larger than the broker's Maximum Packet Size fails its token instead of going out: it
    /// was checked when submitted, but a new connection's broker may take less.
    pub(super) fn fill_window(&mut self, w: &mut SocketWriter) -> Result<(), Error> {
        if !self.session.refill_due() {
            return Ok(());
        }
        while let Some(p) = self.session.next_in_window() {
            // A resend (DUP) keeps the packet id the store has for it.
            let (id, first) = (p.pkid, !p.dup);
            match self.peer.check_size(p, w.version()) {
                Ok(()) => w.publish(p)?,
                Err(e) => {
                    self.abandon(id, e);
                    continue;
                }
            }
            if let Some(token) = self.session.inflight.get(&id).map(|f| f.token).filter(|_| first) {
                self.stage(token, Stage::Sent(id));
            }
        }
        Ok(())
    }

    /// Notes in the store (if any) how far a publish got: written by `commit` before the packets
    /// queued with it leave.
    pub(super) fn stage(&self, token: Token, stage: Stage) {
        if let Some(store) = &self.ctx.shared.store {
            store.staged(token, stage);
        }
    }

    /// Fails the token of the in-flight publish `id`, which will not be sent, with `error`.
    fn abandon(&mut self, id: u16, error: Error) {
        if let Some(token) = self.session.abandon(id) {
            self.out.complete(token, Err(error));
        }
    }

    pub(super) fn request(&mut self, w: &mut SocketWriter, mut request: Request) -> Result<(), Error> {
        if let Request::Subscribe(_, _, properties) = &mut request
            && !self.peer.subscription_ids
        {
            // The broker said it does not take them (its CONNACK); messages are matched instead.
            properties.remove(PropertyId::SubscriptionIdentifier);
        }
        match self.session.start_request(request) {
            Ok(packet) => w.encode(&packet),
            Err(Request::Subscribe(t, filters, _)) => {
                self.out.unregister(
                    filters
                        .into_iter()
                        .map(|(f, _, id)| (f.as_str().to_owned(), id))
                        .collect(),
                );
                t.into_iter()
                    .for_each(|t| self.out.complete(t, Err(Error::PacketIdsExhausted)));
                Ok(())
            }
            Err(Request::Unsubscribe(t, ..)) => {
                self.out.complete(t, Err(Error::PacketIdsExhausted));
                Ok(())
            }
        }
    }

    /// What a new connection sends before anything new: the session's resends, the subscriptions
    /// a broker without our session must be told again, the requests that waited for a
    /// connection, and the publishes of the offline queue, in that order.
    pub(super) fn resume(&mut self, w: &mut SocketWriter, session_present: bool) -> Result<(), Error> {
        if let Some(store) = self.ctx.shared.store.as_ref().filter(|_| !session_present) {
            // The broker has none of them: what was sent goes again as new, under new ids.
            for f in self.session.inflight.values() {
                store.staged(f.token, Stage::Queued);
            }
            for &id in &self.session.inbound_qos2 {
                store.inbound(id, false);
            }
        }
        for packet in self.session.resume(session_present) {
            match packet {
                Packet::Publish(p) => match self.peer.check_size(&p, w.version()) {
                    Ok(()) => w.publish(&p)?,
                    Err(e) => self.abandon(p.pkid, e),
                },
                other => w.encode(&other)?,
            }
        }
        self.fill_window(w)?;
        let deferred = std::mem::take(&mut self.deferred);
        if !session_present {
            // Every registration in the trie, except those a request of their own subscribes
            // anyway (subscribing twice would deliver retained messages twice).
            let pending: HashSet<u64> = deferred
                .iter()
                .flat_map(|r| match r {
                    Request::Subscribe(_, filters, _) => filters.iter().map(|(_, _, id)| *id).collect(),
                    Request::Unsubscribe(..) => Vec::new(),
                })
                .collect();
            // With the Subscription Identifier of the SUBSCRIBE that made them (MQTT 5).
            let mut filters: Vec<(SubscribeFilter, u32)> = {
                let subs = self.ctx.shared.subs();
                let filters = subs.filters();
                // Forget registrations that are gone, so the set stays as small as the trie.
                let live: HashSet<u64> = filters.iter().map(|(_, s)| s.id).collect();
                self.known_subs.retain(|id| live.contains(id));
                filters
                    .into_iter()
                    .filter(|(_, s)| self.known_subs.contains(&s.id) && !pending.contains(&s.id))
                    .filter_map(|(f, s)| Some(((MqttStr::new(&f).ok()?, s.options, s.id), s.sub_id)))
                    .collect()
            };
            filters.sort_by_key(|((_, _, id), _)| *id);
            if !filters.is_empty() {
                self.out.log(LogLevel::Info, || {
                    format!("subscribing again to {} filter(s)", filters.len())
                });
            }
            // A SUBSCRIBE has one identifier: the filters of one original SUBSCRIBE (consecutive
            // registration ids) go together again, so messages keep naming their subscriptions.
            for group in filters.chunk_by(|a, b| a.1 == b.1) {
                let mut properties = Properties::new();
                if group[0].1 != 0 {
                    properties.push_int(PropertyId::SubscriptionIdentifier, group[0].1)?;
                }
                for chunk in group.chunks(RESUBSCRIBE_CHUNK) {
                    let chunk = chunk.iter().map(|(f, _)| f.clone()).collect();
                    self.request(w, Request::Subscribe(None, chunk, properties.clone()))?;
                }
            }
        }
        for request in deferred {
            self.request(w, request)?;
        }
        for (t, p) in self.offline.take() {
            self.publish(w, t, p)?;
        }
        Ok(())
    }
}
