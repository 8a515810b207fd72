//! Acknowledgements of inbound QoS 1/2 messages held until the application is done with them
//! (`Options::ack_after_callback`).
//!
//! Acknowledged on arrival, a message the broker then forgets is lost if the client is freed (or
//! the process ends) before its callback ran. Held, the PUBACK or PUBREC goes only once the
//! message's [`PendingAck`] is released: by the callback thread (or the network thread with inline
//! callbacks) once the callbacks returned, or by `mqttc_event_free` for a MESSAGE event. Until
//! then a broker that keeps the session sends the message again after a reconnect.
//!
//! The network task owes the acknowledgements of one connection in the order their PUBLISHes
//! arrived, which MQTT requires (3.1.1 section 4.6, 5 section 4.6): one released early waits for
//! those before it. A lost connection forgets what it owed: the broker resends those messages
//! (with DUP) on the next one, which owes their acknowledgements anew, so an old one never goes
//! out on a new connection (its packet id may name another message there).
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::codec::{Ack, Packet};

use super::signal::Signal;

/// Which acknowledgement is owed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owed {
    /// The PUBACK of a QoS 1 message.
    Qos1,
    /// The PUBREC of a QoS 2 message delivered on this connection: until it is sent, the broker
    /// has no answer for the message and resends it after a reconnect.
    Qos2,
    /// The PUBREC of a QoS 2 resend whose message was delivered before (the broker did not get
    /// the PUBREC sent then): owed at once, in its turn.
    Qos2Again,
}

impl Owed {
    pub(crate) fn packet(self, id: u16) -> Packet {
        match self {
            Owed::Qos1 => Packet::PubAck(Ack::new(id)),
            Owed::Qos2 | Owed::Qos2Again => Packet::PubRec(Ack::new(id)),
        }
    }
}

#[derive(Debug)]
struct Slot {
    /// Unique for the client's life, increasing in arrival order: what a [`PendingAck`] names.
    seq: u64,
    owed: Owed,
    id: u16,
    released: bool,
}

#[derive(Debug, Default)]
struct Slots {
    /// The current connection's acknowledgements not sent yet, in arrival order.
    owed: VecDeque<Slot>,
    next_seq: u64,
}

/// What the network task owes the broker for messages the application is handling.
#[derive(Debug, Default)]
pub(crate) struct HeldAcks {
    slots: Mutex<Slots>,
    /// Raised when the oldest acknowledgement owed may go: wakes the network task.
    ready: Signal,
}

impl HeldAcks {
    fn lock(&self) -> MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, owed: Owed, id: u16, released: bool) -> u64 {
        let mut slots = self.lock();
        slots.next_seq += 1;
        let seq = slots.next_seq;
        slots.owed.push_back(Slot {
            seq,
            owed,
            id,
            released,
        });
        seq
    }

    /// Owes the acknowledgement of a message being delivered: it goes once the returned
    /// [`PendingAck`] is released and those before it went.
    pub(crate) fn hold(self: &Arc<Self>, owed: Owed, id: u16) -> PendingAck {
        let seq = self.push(owed, id, false);
        PendingAck {
            acks: self.clone(),
            seq,
        }
    }

    /// Owes an acknowledgement with nothing to wait for but those before it.
    pub(crate) fn owe(&self, owed: Owed, id: u16) {
        self.push(owed, id, true);
    }

    /// Passes `send` each acknowledgement that may go now, oldest first, until one is still held.
    pub(crate) fn take_ready<E>(&self, mut send: impl FnMut(Packet) -> Result<(), E>) -> Result<(), E> {
        let mut slots = self.lock();
        while slots.owed.front().is_some_and(|s| s.released) {
            let slot = slots.owed.pop_front().expect("looked at just above");
            send(slot.owed.packet(slot.id))?;
        }
        Ok(())
    }

    /// Nothing is owed.
    pub(crate) fn is_empty(&self) -> bool {
        self.lock().owed.is_empty()
    }

    /// The connection is gone: nothing it owed will be sent. Returns the packet ids of the QoS 2
    /// messages delivered on it whose PUBREC did not go: the broker sends them again, and they
    /// are to be delivered again.
    pub(crate) fn forget(&self) -> Vec<u16> {
        self.lock()
            .owed
            .drain(..)
            .filter(|s| s.owed == Owed::Qos2)
            .map(|s| s.id)
            .collect()
    }

    /// Waits until an acknowledgement may go (or may have: the caller looks with `take_ready`).
    pub(crate) async fn ready(&self) {
        self.ready.wait().await
    }

    fn release(&self, seq: u64) {
        let mut slots = self.lock();
        // Slots are in `seq` order. A slot not found belonged to a connection since lost.
        if let Ok(i) = slots.owed.binary_search_by_key(&seq, |s| s.seq) {
            slots.owed[i].released = true;
            if i == 0 {
                drop(slots);
                self.ready.raise();
            }
        }
    }
}

/// The hold on one inbound message's acknowledgement (see [`HeldAcks`]). [`release`](Self::release)
/// says the application is done with the message; dropped without that (the client was freed
/// before the message was handled), the acknowledgement never goes, and a broker that keeps the
/// session delivers the message again.
#[derive(Debug)]
pub struct PendingAck {
    acks: Arc<HeldAcks>,
    seq: u64,
}

impl PendingAck {
    /// The application is done with the message: its acknowledgement goes, after those of the
    /// messages that arrived before it. Nothing is sent if its connection was lost meanwhile.
    pub fn release(self) {
        self.acks.release(self.seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(acks: &HeldAcks) -> Vec<Packet> {
        let mut out = Vec::new();
        acks.take_ready(|p| {
            out.push(p);
            Ok::<(), ()>(())
        })
        .unwrap();
        out
    }

    #[test]
    fn acknowledgements_go_in_arrival_order_once_released() {
        let acks = Arc::new(HeldAcks::default());
        let a = acks.hold(Owed::Qos1, 1);
        let b = acks.hold(Owed::Qos2, 2);
        acks.owe(Owed::Qos2Again, 3);
        let c = acks.hold(Owed::Qos1, 4);
        c.release();
        b.release();
        assert_eq!(ready(&acks), [], "the first message is still being handled");
        a.release();
        assert_eq!(
            ready(&acks),
            [
                Packet::PubAck(Ack::new(1)),
                Packet::PubRec(Ack::new(2)),
                Packet::PubRec(Ack::new(3)),
                Packet::PubAck(Ack::new(4)),
            ]
        );
        assert!(acks.is_empty());
    }

    #[test]
    fn a_lost_connection_forgets_what_it_owed_and_a_late_release_sends_nothing() {
        let acks = Arc::new(HeldAcks::default());
        let a = acks.hold(Owed::Qos2, 7);
        acks.owe(Owed::Qos2Again, 8);
        let b = acks.hold(Owed::Qos1, 9);
        assert_eq!(acks.forget(), [7], "only a PUBREC of a message delivered here");
        let c = acks.hold(Owed::Qos1, 9);
        a.release();
        b.release();
        assert_eq!(ready(&acks), [], "nothing of the old connection goes on the new one");
        c.release();
        assert_eq!(ready(&acks), [Packet::PubAck(Ack::new(9))]);
    }

    #[test]
    fn a_dropped_hold_keeps_its_acknowledgement_and_those_after_it() {
        let acks = Arc::new(HeldAcks::default());
        drop(acks.hold(Owed::Qos1, 1));
        acks.hold(Owed::Qos1, 2).release();
        assert_eq!(ready(&acks), []);
        assert!(!acks.is_empty());
    }
}
