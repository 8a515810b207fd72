//! The loop that serves one live connection: reads, writes, commands, keep-alive, disconnect.
use std::time::Duration;

use bytes::BytesMut;
use tokio::time::Instant;

use super::aliases::OutboundAliases;
use super::handshake::{Link, QUIET, ReadRoom, disconnect_reason, read};
use super::keep_alive::{Due, KeepAlive};
use super::peer::Peer;
use super::writer::SocketWriter;
use super::{Ended, Net};
use crate::codec::{Packet, PropertyId};
use crate::engine::dispatch::LogLevel;
use crate::engine::held_acks::HeldAcks;
use crate::engine::queue::TryRecvError;
use crate::engine::session::Request;
use crate::engine::timer::{self, Sleep};
use crate::engine::tokens::Outcome;
use crate::engine::transport::Reader;
use crate::engine::{Command, Error, State, Token};

/// The least time a disconnect gives its last write (DISCONNECT included) when its deadline passed.
const LAST_WRITE: Duration = Duration::from_millis(200);

/// How often a failing store is tried again while packets wait for it and nothing else happens.
const STORE_RETRY: Duration = Duration::from_millis(100);

/// What taking the queued commands asks of the loop.
enum Taken {
    /// Carry on.
    More,
    /// Disconnect once what is queued has gone (or the disconnect deadline passed).
    Disconnect(Token),
    /// End the connection.
    End(Ended),
}

/// Ready when a held acknowledgement may go (see [`HeldAcks`]); never without them.
async fn acks_ready(held: Option<&HeldAcks>) {
    match held {
        Some(held) => held.ready().await,
        None => std::future::pending().await,
    }
}

impl<'a> Net<'a> {
    pub(super) async fn serve(&mut self, link: Box<Link>) -> Ended {
        let ctx = self.ctx;
        let (mut reader, mut rbuf, mut w, mut ka, session_present) = self.open(link);
        let now = Instant::now();
        let mut disconnecting: Option<(Token, Instant)> = None;
        let far = now + timer::NEVER;
        let timer = Sleep::until(ka.deadline().unwrap_or(far));
        tokio::pin!(timer);
        // The store's batched sync, due a while after the first record it has not covered.
        let store_sync = Sleep::until(far);
        tokio::pin!(store_sync);
        let mut sync_armed = false;
        let store_retry = Sleep::until(far);
        tokio::pin!(store_retry);
        let mut retry_armed = false;
        let mut room = ReadRoom::new();
        // Runs out once nothing was read for a while, to let go of the read buffer.
        let quiet = Sleep::until(far);
        tokio::pin!(quiet);
        let mut quiet_armed = false;
        // Its own reference, for a wait in the select below, which borrows `self` elsewhere.
        let held = self.held.clone();

        if let Err(e) = self.resume(&mut w, session_present) {
            return Ended::Lost(e);
        }
        // Packets already received with the CONNACK.
        if let Err(e) = self.process_input(&mut rbuf, &mut w, &mut ka) {
            return self.close_on(&mut w, e).await;
        }
        // Nothing says whether the broker has more to send soon.
        ReadRoom::release(&mut rbuf);
        // What the broker sent ends the connection: not closed inside the select below, whose
        // output would then be kept across that wait, in every connection's state.
        let fault = loop {
            // Packet ids and PUBRECs noted in the store are written before the packets they
            // describe can leave.
            let stored = self.out.commit_store();
            w.stored(stored);
            if !stored && !retry_armed {
                store_retry.as_mut().reset(Instant::now() + STORE_RETRY);
                retry_armed = true;
            }
            if !sync_armed && let Some(due) = ctx.shared.store.as_ref().and_then(|s| s.sync_due()) {
                store_sync.as_mut().reset(Instant::now() + due);
                sync_armed = true;
            }
            // Before the flush, so that what this completes goes out with the rest.
            if let Err(e) = self.took(w.send_now(), &mut w, &mut ka) {
                return Ended::Lost(e);
            }
            self.out.flush();
            if let Some((token, deadline)) = disconnecting {
                // Acknowledgements held for messages being handled count as in flight too.
                let idle = self.session.is_idle() && held.as_deref().is_none_or(HeldAcks::is_empty);
                if idle || Instant::now() >= deadline {
                    // Boxed: a connection ends once, and inline this wait would enlarge every
                    // connection's state for all of its life.
                    return Box::pin(self.finish_disconnect(w, token, deadline)).await;
                }
            }
            if ka.set_reading(self.out.backlog.is_empty(), Instant::now) {
                timer.as_mut().reset(ka.next_wakeup(disconnecting, far));
            }
            room.reserve(&mut rbuf, ctx.options.version);
            if disconnecting.is_none() {
                w.offer_if_idle(self.peer.max_packet_size, &self.commands);
            }
            // Every branch that may write or end the connection first takes the socket back.
            let reading = self.out.backlog.is_empty() && !w.holding_ack();
            let writing = w.wants_write();
            // A disconnect is taken even when the socket is stuck: it is what ends that.
            let taking = disconnecting.is_none() && (w.has_room() || ctx.shared.state() == State::Disconnecting);
            let ack_armed = w.ack_armed();
            let (write, ack_due) = w.waits();
            tokio::select! {
                r = read(&mut reader, &mut rbuf), if reading => {
                    w.withdraw(&mut self.written);
                    match r {
                        Ok(0) => return Ended::Lost(Error::ConnectionClosed),
                        Ok(n) => {
                            room.read(n);
                            let pinging = ka.ping_sent.is_some();
                            if let Err(e) = self.on_read(&mut rbuf, &mut w, &mut ka) {
                                break e;
                            }
                            if !quiet_armed {
                                quiet.as_mut().reset(ka.last_received + QUIET);
                                quiet_armed = true;
                            }
                            if pinging && ka.ping_sent.is_none() {
                                // PINGRESP: the timer still points at the ping deadline; the next PINGREQ is due earlier.
                                timer.as_mut().reset(ka.next_wakeup(disconnecting, far));
                            }
                        }
                        Err(e) => return Ended::Lost(e.into()),
                    }
                }
                permit = ctx.room(), if !self.out.backlog.is_empty() => self.out.deliver(permit),
                r = write, if writing => {
                    if let Err(e) = self.took(w.after_write(r), &mut w, &mut ka) {
                        return Ended::Lost(e);
                    }
                }
                () = ctx.shared.wake.wait() => w.withdraw(&mut self.written),
                () = acks_ready(held.as_deref()), if held.is_some() => {
                    w.withdraw(&mut self.written);
                    if let Err(e) = self.send_held_acks(&mut w) {
                        return Ended::Lost(e);
                    }
                }
                () = self.commands.ready(&ctx.shared.direct), if taking => {
                    w.withdraw(&mut self.written);
                    match self.take_commands(&mut w) {
                        Taken::More => {}
                        Taken::Disconnect(t) => {
                            disconnecting = Some((t, Instant::now() + ctx.options.disconnect_timeout));
                            timer.as_mut().reset(ka.next_wakeup(disconnecting, far));
                        }
                        Taken::End(ended) => return ended,
                    }
                }
                reply = self.auth.answered() => {
                    w.withdraw(&mut self.written);
                    if let Err(e) = reply.and_then(|auth| w.encode(&auth)) {
                        break e;
                    }
                }
                () = ack_due, if ack_armed => {}
                () = &mut quiet, if quiet_armed => {
                    // Reads since it was armed put the release off.
                    let at = ka.last_received + QUIET;
                    quiet_armed = at > Instant::now();
                    match quiet_armed {
                        true => quiet.as_mut().reset(at),
                        false => ReadRoom::release(&mut rbuf),
                    }
                }
                () = &mut store_retry, if retry_armed => retry_armed = false,
                () = &mut store_sync, if sync_armed => {
                    sync_armed = false;
                    if let Some(Err(e)) = ctx.shared.store.as_ref().map(|s| s.sync()) {
                        self.out.log(LogLevel::Error, || format!("{e}"));
                    }
                }
                () = &mut timer => {
                    w.withdraw(&mut self.written);
                    if let Err(e) = self.ping_if_due(&mut w, &mut ka) {
                        return Ended::Lost(e);
                    }
                    timer.as_mut().reset(ka.next_wakeup(disconnecting, far));
                },
            }
        };
        self.close_on(&mut w, fault).await
    }

    /// Takes the connection the handshake made: the broker's limits and keep-alive for it, and
    /// the parts the serve loop keeps. Apart from [`serve`](Self::serve), so that neither the
    /// link nor its CONNACK properties stay in that loop's state.
    fn open(&mut self, link: Box<Link>) -> (Reader, BytesMut, SocketWriter<'a>, KeepAlive, bool) {
        let ctx = self.ctx;
        let Link {
            reader,
            writer,
            kind,
            rbuf,
            wbuf,
            session_present,
            properties,
            tls_session: _,
        } = *link;
        self.peer = Peer::new(&properties, ctx.options.topic_alias_maximum);
        // Receive Maximum absent means 65,535 (MQTT 5 section 3.2.2.3.3).
        let receive_maximum = properties.int(PropertyId::ReceiveMaximum).unwrap_or(65_535);
        self.session.set_window(receive_maximum as usize);
        // A Server Keep Alive replaces the client's (MQTT-3.2.2-21).
        let keep_alive = properties
            .int(PropertyId::ServerKeepAlive)
            .map_or(ctx.options.keep_alive, |k| k as u16);
        let interval = (keep_alive > 0).then(|| Duration::from_secs(keep_alive.into()));
        let ka = KeepAlive::new(interval, ctx.options.ping_timeout, Instant::now());
        // Returned after the reading half, so that it is dropped (its offer withdrawn) first.
        let aliases = OutboundAliases::new(ctx.options.topic_alias_max_out, &properties, self.peer.max_packet_size);
        let w = SocketWriter::new(writer, wbuf, kind, &ctx.shared.direct, aliases);
        (reader, rbuf, w, ka, session_present)
    }

    /// The socket took `taken` bytes of what was queued (0: none): they count as sent for the
    /// keep-alive, and once the queue is empty the QoS 0 publishes in it are done.
    fn took(&mut self, taken: Result<usize, Error>, w: &mut SocketWriter, ka: &mut KeepAlive) -> Result<(), Error> {
        let n = taken?;
        if n > 0 {
            ka.last_sent = Instant::now();
            if w.wrote(n) {
                for t in self.written.drain(..) {
                    self.out.complete(t, Ok(Outcome::default()));
                }
            }
        }
        Ok(())
    }

    /// Handles what a read brought, and owes the broker its ACK when nothing goes back at once.
    fn on_read(&mut self, rbuf: &mut BytesMut, w: &mut SocketWriter, ka: &mut KeepAlive) -> Result<(), Error> {
        ka.last_received = Instant::now();
        let received = self.process_input(rbuf, w, ka)?;
        w.owe_ack(&received, || self.session.awaits_acks());
        Ok(())
    }

    /// Takes every command queued, so that one socket write carries the whole batch, until the
    /// write queue reaches its high-water mark.
    fn take_commands(&mut self, w: &mut SocketWriter) -> Taken {
        loop {
            let command = match self.commands.try_recv() {
                Ok(command) => command,
                Err(TryRecvError::Empty) => return Taken::More,
                Err(TryRecvError::Disconnected) => return Taken::End(Ended::Closed),
            };
            let handled = match command {
                Command::Disconnect(t) => return Taken::Disconnect(t),
                Command::Reconnect(t) => return Taken::End(Ended::Reconnect(t)),
                Command::Connect(t) => {
                    self.out.complete(t, Err(Error::AlreadyConnected));
                    Ok(())
                }
                Command::Publish(t, p) => self.publish(w, t, p),
                Command::Subscribe(t, f, props) => {
                    self.known_subs.extend(f.iter().map(|(_, _, id)| *id));
                    self.request(w, Request::Subscribe(Some(t), f, props))
                }
                Command::Unsubscribe(t, f, props) => self.request(w, Request::Unsubscribe(t, f, props)),
                Command::Reauthenticate(t, props) => match self.auth.start(t, props) {
                    Ok(auth) => w.encode(&auth),
                    Err(e) => {
                        self.out.complete(t, Err(e));
                        Ok(())
                    }
                },
            };
            if let Err(e) = handled {
                return Taken::End(Ended::Lost(e));
            }
            if !w.has_room() {
                return Taken::More;
            }
        }
    }

    /// The keep-alive timer fired: a PINGREQ may be due, or the last one's answer overdue.
    fn ping_if_due(&mut self, w: &mut SocketWriter, ka: &mut KeepAlive) -> Result<(), Error> {
        let now = Instant::now();
        match ka.due(now) {
            Due::TimedOut => return Err(Error::KeepAliveTimeout),
            Due::Ping => {
                w.encode(&Packet::PingReq)?;
                self.out.log(LogLevel::Debug, || "sending PINGREQ".into());
                ka.ping_sent = Some(now);
            }
            Due::Nothing => {}
        }
        Ok(())
    }

    /// Sends DISCONNECT after everything queued and closes the socket. A broker that stops reading
    /// gets until the disconnect deadline (and at least `LAST_WRITE`), then the socket is closed.
    async fn finish_disconnect(&mut self, mut w: SocketWriter<'_>, token: Token, deadline: Instant) -> Ended {
        let goodbye = std::mem::take(&mut *self.ctx.shared.goodbye.lock().unwrap_or_else(|p| p.into_inner()));
        w.stored(self.out.commit_store());
        // The QoS 0 publishes among packets dropped did not go; those before them are not told
        // apart, and are reported not sent either.
        let dropped = w.drop_held();
        // Boxed, as the goodbye in `close_on`: a connection ends once, and inline these writes'
        // state would enlarge every connection's task for all of its life.
        let sent = Box::pin(w.finish(goodbye, deadline.max(Instant::now() + LAST_WRITE))).await;
        let result = if sent.is_ok() && !dropped {
            Ok(Outcome::default())
        } else {
            Err(Error::Cancelled)
        };
        for t in self.written.drain(..) {
            self.out.complete(t, result.clone());
        }
        match sent {
            Ok(()) => Ended::Disconnected(token),
            Err(e) => {
                // The socket failed on the way out; the session ends all the same.
                self.out.log(LogLevel::Warning, || format!("disconnect: {e}"));
                Ended::Disconnected(token)
            }
        }
    }

    /// Ends the connection on `error`, met in what the broker sent. An MQTT 5 broker is told why
    /// first (see [`SocketWriter::goodbye`]); when that write took everything queued, the QoS 0
    /// publishes in it left too.
    async fn close_on(&mut self, w: &mut SocketWriter<'_>, error: Error) -> Ended {
        let reason = disconnect_reason(self.ctx.options.version, &error);
        if let Some(reason) = reason {
            w.stored(self.out.commit_store());
            // Packets waiting for a failing store stay behind, with the QoS 0 publishes among them.
            let dropped = w.drop_held();
            self.out
                .log(LogLevel::Debug, || format!("sending DISCONNECT ({reason}) on: {error}"));
            if Box::pin(w.goodbye(reason)).await && !dropped {
                for t in self.written.drain(..) {
                    self.out.complete(t, Ok(Outcome::default()));
                }
            }
        }
        Ended::Lost(error)
    }
}
