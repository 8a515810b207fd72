//! What the broker sends on a live connection: messages to deliver, acknowledgements to match.
use bytes::BytesMut;

use super::Net;
use super::keep_alive::KeepAlive;
use super::writer::SocketWriter;
use crate::codec::{self, Ack, Packet, PropertyId, Publish, QoS, ReasonCode, Version};
use crate::engine::Error;
use crate::engine::dispatch::{Event, LogLevel};
use crate::engine::held_acks::Owed;
use crate::engine::session::{AckAction, Awaiting};
use crate::engine::store::Stage;
use crate::engine::tokens::Outcome;

/// What one read brought, for [`crate::engine::transport::DelayedAck`].
#[derive(Default)]
pub(super) struct Received {
    /// A SUBACK: the broker may follow it at once with retained messages.
    pub(super) answer: bool,
    /// PUBLISH packets: two or more in one read means a stream.
    pub(super) publishes: u32,
}

impl Net<'_> {
    /// Decodes and handles every whole packet in `rbuf`, queueing replies in `w`.
    pub(super) fn process_input(
        &mut self,
        rbuf: &mut BytesMut,
        w: &mut SocketWriter,
        ka: &mut KeepAlive,
    ) -> Result<Received, Error> {
        let max = self.ctx.options.max_packet_size;
        let version = self.ctx.options.version;
        let mut received = Received::default();
        while let Some(packet) = codec::decode(rbuf, max, version)? {
            match packet {
                Packet::Publish(mut p) => {
                    received.publishes += 1;
                    self.peer.resolve(&mut p)?;
                    match p.qos {
                        QoS::AtMostOnce => self.out.push(Event::Message(p, None)),
                        QoS::AtLeastOnce => self.deliver(p, Owed::Qos1, w)?,
                        QoS::ExactlyOnce => {
                            // Delivered on first receipt only; a resend before PUBREL just gets PUBREC again.
                            if self.session.inbound_qos2.insert(p.pkid) {
                                self.note_inbound(p.pkid, true);
                                self.deliver(p, Owed::Qos2, w)?;
                            } else {
                                self.acknowledge_again(p.pkid, w)?;
                            }
                        }
                    }
                }
                Packet::PubAck(ack) => self.acknowledge(Awaiting::PubAck, ack, w)?,
                Packet::PubRec(ack) => self.acknowledge(Awaiting::PubRec, ack, w)?,
                Packet::PubComp(ack) => self.acknowledge(Awaiting::PubComp, ack, w)?,
                Packet::PubRel(ack) => {
                    if self.session.inbound_qos2.remove(&ack.pkid) {
                        self.note_inbound(ack.pkid, false);
                    }
                    w.encode(&Packet::PubComp(Ack::new(ack.pkid)))?;
                }
                Packet::SubAck(ack) => {
                    received.answer = true;
                    let Some((token, result, refused)) =
                        self.session.on_suback(ack.pkid, &ack.codes, ack.properties)?
                    else {
                        self.ignored("SUBACK", ack.pkid, "no SUBSCRIBE awaits one");
                        continue;
                    };
                    if !refused.is_empty() {
                        self.out.log(LogLevel::Warning, || {
                            format!("broker refused subscription(s): {refused:?}")
                        });
                    }
                    self.out.unregister(refused);
                    if let Some(token) = token {
                        self.out.complete(token, result);
                    }
                }
                Packet::UnsubAck(ack) => match self.session.on_unsuback(ack.pkid, &ack.codes, ack.properties)? {
                    Some((token, result)) => self.out.complete(token, result),
                    None => self.ignored("UNSUBACK", ack.pkid, "no UNSUBSCRIBE awaits one"),
                },
                Packet::PingResp => ka.ping_sent = None,
                Packet::ConnAck(_) => return Err(Error::UnexpectedPacket("second CONNACK")),
                Packet::Connect(_) => return Err(Error::UnexpectedPacket("CONNECT, which only a client sends")),
                Packet::Subscribe(_) => return Err(Error::UnexpectedPacket("SUBSCRIBE, which only a client sends")),
                Packet::Unsubscribe(_) => {
                    return Err(Error::UnexpectedPacket("UNSUBSCRIBE, which only a client sends"));
                }
                Packet::PingReq => return Err(Error::UnexpectedPacket("PINGREQ, which only a client sends")),
                Packet::Disconnect(_) if version == Version::V311 => {
                    return Err(Error::UnexpectedPacket("DISCONNECT, which a 3.1.1 broker never sends"));
                }
                Packet::Disconnect(d) => {
                    let text = |id| d.properties.str(id).map(|s| s.as_str().to_owned());
                    return Err(Error::ServerDisconnected {
                        code: d.reason,
                        reason: text(PropertyId::ReasonString),
                        server_reference: text(PropertyId::ServerReference),
                    });
                }
                Packet::Auth(auth) if auth.reason == ReasonCode::SUCCESS => {
                    let (token, properties) = self.auth.success(auth)?;
                    self.out.log(LogLevel::Info, || "re-authenticated".into());
                    if let Some(token) = token {
                        let outcome = Outcome {
                            codes: Vec::new(),
                            properties,
                        };
                        self.out.complete(token, Ok(outcome));
                    }
                }
                Packet::Auth(auth) => {
                    let ask = self.auth.challenge(auth, false)?;
                    self.out.push(ask);
                }
            }
        }
        self.send_held_acks(w)?;
        for id in self.session.take_pubrels(!w.is_empty()) {
            w.encode(&Packet::PubRel(Ack::new(id)))?;
        }
        Ok(received)
    }

    /// Hands a QoS 1/2 message to the application and acknowledges it (`owed`): at once, or with
    /// `ack_after_callback` once the application has released it (see
    /// [`HeldAcks`](crate::engine::held_acks::HeldAcks)).
    fn deliver(&mut self, p: Publish, owed: Owed, w: &mut SocketWriter) -> Result<(), Error> {
        let id = p.pkid;
        match &self.held {
            None => {
                self.out.push(Event::Message(p, None));
                w.encode(&owed.packet(id))
            }
            Some(held) => {
                let ack = held.hold(owed, id);
                self.out.push(Event::Message(p, Some(ack)));
                Ok(())
            }
        }
    }

    /// The PUBREC of a QoS 2 message delivered before: at once, or in its turn after those held.
    fn acknowledge_again(&mut self, id: u16, w: &mut SocketWriter) -> Result<(), Error> {
        match &self.held {
            None => w.encode(&Owed::Qos2Again.packet(id)),
            Some(held) => {
                held.owe(Owed::Qos2Again, id);
                Ok(())
            }
        }
    }

    /// Notes in the store (if any) an inbound QoS 2 id awaiting its PUBREL, or released: stored
    /// before the PUBREC leaves, so that after a restart a resent PUBLISH is not delivered again.
    pub(super) fn note_inbound(&self, id: u16, awaiting_pubrel: bool) {
        if let Some(store) = &self.ctx.shared.store {
            store.inbound(id, awaiting_pubrel);
        }
    }

    /// Writes the held acknowledgements that may go now (see
    /// [`HeldAcks::take_ready`](crate::engine::held_acks::HeldAcks::take_ready)).
    pub(super) fn send_held_acks(&mut self, w: &mut SocketWriter) -> Result<(), Error> {
        match &self.held {
            Some(held) => held.take_ready(|ack| w.encode(&ack)),
            None => Ok(()),
        }
    }

    /// An acknowledgement for a packet id nothing awaits (or of the wrong kind for it) is ignored, as
    /// libmosquitto and Paho do: it carries no data, so there is nothing for it to corrupt, and a late
    /// duplicate after a resend is no fault of the broker's. It is logged, since it may also be a sign
    /// of a broken broker.
    fn ignored(&mut self, packet: &str, id: u16, why: &str) {
        self.out.log(LogLevel::Warning, || {
            format!("ignored {packet} for packet id {id}: {why}")
        });
    }

    fn acknowledge(&mut self, kind: Awaiting, ack: Ack, w: &mut SocketWriter) -> Result<(), Error> {
        let id = ack.pkid;
        match self.session.on_ack(kind, ack) {
            AckAction::Nothing => {
                let name = match kind {
                    Awaiting::PubAck => "PUBACK",
                    Awaiting::PubRec => "PUBREC",
                    Awaiting::PubComp => "PUBCOMP",
                };
                self.ignored(name, id, "no publish in flight awaits one");
            }
            AckAction::PubRelOwed => {
                if let Some(f) = self.session.inflight.get(&id) {
                    self.stage(f.token, Stage::Released(id));
                }
            }
            AckAction::Complete(token, result) => {
                self.out.complete(token, result);
                self.fill_window(w)?;
            }
        }
        Ok(())
    }
}
