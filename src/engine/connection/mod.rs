//! The network task: connects, runs one connection's read/write loop and keep-alive, and hands
//! everything user-visible to the callback thread. It never runs user code, unless the application
//! chose `Options::inline_callbacks`.
mod handshake;
mod keep_alive;
mod outbox;
mod peer;

use std::collections::HashSet;
use std::io::ErrorKind;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc::{self, error::TryRecvError};
use tokio::time::{Instant, sleep_until, timeout};

use crate::codec::{self, Ack, MqttStr, Packet, Properties, PropertyId, Publish, QoS, Version};

use super::backoff::Backoff;
use super::direct::{Commands, Direct};
use super::dispatch::{ConnectionEvent, Event, LogLevel};
use super::offline::OfflineQueue;
use super::session::{AckAction, Awaiting, Request, Session, SubscribeFilter};
use super::tokens::{Outcome, Token};
use super::transport::{ACK_DELAY, DelayedAck, STREAM_ACK_DELAY, Writer};
use super::write_queue::WriteQueue;
use super::{Address, Command, Error, Options, Shared, State};
use handshake::{Link, READ_CHUNK, disconnect_reason, goodbye, handshake};
use keep_alive::{Due, KeepAlive};
use outbox::Outbox;
use peer::Peer;

/// Stop taking commands while this much is waiting to be written: the socket is the bottleneck and
/// encoding more would only grow memory.
const WRITE_HIGH_WATER: usize = 1 << 20;
/// The least time a disconnect gives its last write (DISCONNECT included) when its deadline passed.
const LAST_WRITE: Duration = Duration::from_millis(200);
/// Filters per SUBSCRIBE when subscribing again after the broker lost the session: keeps each
/// packet well within brokers' size limits.
const RESUBSCRIBE_CHUNK: usize = 256;

pub(super) struct Ctx {
    pub shared: Arc<Shared>,
    /// The callback thread's queue; `None` with `Options::inline_callbacks`, where the network
    /// task runs the callbacks itself.
    pub events: Option<mpsc::Sender<Event>>,
    pub options: Options,
    pub servers: Vec<Address>,
}

impl Ctx {
    /// Room for one event in the callback thread's queue. Never ready with inline callbacks, which
    /// hold nothing back.
    async fn room(&self) -> Result<mpsc::Permit<'_, Event>, mpsc::error::SendError<()>> {
        match &self.events {
            Some(events) => events.reserve().await,
            None => std::future::pending().await,
        }
    }
}

/// How a connection ended.
enum Ended {
    /// `disconnect` finished (its token is completed by the caller).
    Disconnected(Token),
    Lost(Error),
    /// The application asked for a new connection.
    Reconnect(Token),
    /// The client is being dropped.
    Closed,
}

/// A command that changes the connection, met while there is none.
enum Control {
    Connect(Token),
    Reconnect(Token),
    Disconnect(Token),
}

/// How a wait without a connection ended.
enum Waited<T> {
    Done(T),
    Control(Control),
    Closed,
}

/// How an attempt to connect (every server once) ended.
enum Attempt {
    Up(Link, usize),
    Failed(Error),
    Disconnect(Token),
    Closed,
}

/// The network task's state, across connections.
struct Net<'a> {
    ctx: &'a Ctx,
    out: Outbox<'a>,
    commands: Commands,
    session: Session,
    /// Subscribes and unsubscribes to send right after the next CONNACK: those made without a
    /// connection, and those left unanswered by the last one.
    deferred: Vec<Request>,
    offline: OfflineQueue,
    /// QoS 0 publishes in the write buffer: they complete once their bytes reach the socket.
    written: Vec<Token>,
    /// Ids of the registrations whose Subscribe command this task has taken. After a loss only
    /// these are subscribed again: a registration whose command is still in the channel will be
    /// subscribed by that command, with its own token.
    known_subs: HashSet<u64>,
    /// Index in `ctx.servers` of the server after the last one connected to.
    next_server: usize,
    backoff: Backoff,
    /// What the broker of the current connection allows and has set up (MQTT 5).
    peer: Peer,
}

pub(super) async fn run(ctx: Ctx, commands: mpsc::UnboundedReceiver<Command>) {
    let o = &ctx.options;
    let mut net = Net {
        ctx: &ctx,
        out: Outbox::new(&ctx),
        commands: Commands::new(commands),
        session: Session::new(o.max_inflight),
        deferred: Vec::new(),
        offline: OfflineQueue::new(o.offline_max_messages, o.offline_max_bytes, o.offline_overflow),
        written: Vec::new(),
        known_subs: HashSet::new(),
        next_server: 0,
        backoff: Backoff::new(o.reconnect_min, o.reconnect_max),
        peer: Peer::default(),
    };
    while let Some(command) = net.commands.recv().await {
        match net.offline_command(command, false) {
            None => {}
            Some(Control::Connect(t) | Control::Reconnect(t)) if !net.connection(t).await => return,
            Some(Control::Connect(_) | Control::Reconnect(_)) => {}
            Some(Control::Disconnect(t)) => net.end_session(t),
        }
        net.out.drain().await;
    }
}

impl<'a> Net<'a> {
    fn session_alive(&self) -> bool {
        self.ctx.shared.session_alive.load(Ordering::Acquire)
    }

    /// Sets the state unless a `disconnect` the network task has not reached yet set it to
    /// Disconnecting: that call's outcome must not be hidden.
    fn set_state(&self, state: State) {
        let shared = &self.ctx.shared;
        let _ = shared.state.fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
            (s != State::Disconnecting as u8).then_some(state as u8)
        });
    }

    /// Handles a command while there is no connection; returns those that change the connection.
    /// `connecting`: a connection is being made (or re-made), so publishes wait for it.
    fn offline_command(&mut self, command: Command, connecting: bool) -> Option<Control> {
        match command {
            Command::Connect(t) => return Some(Control::Connect(t)),
            Command::Reconnect(t) => return Some(Control::Reconnect(t)),
            Command::Disconnect(t) => return Some(Control::Disconnect(t)),
            Command::Publish(t, p) => {
                if connecting || self.session_alive() || self.ctx.options.queue_before_connect {
                    for (t, r) in self.offline.push(t, p) {
                        self.out
                            .log(LogLevel::Warning, || format!("offline queue: token {t}: {r:?}"));
                        self.out.complete(t, r);
                    }
                } else {
                    self.out.complete(t, Err(Error::NotConnected));
                }
            }
            Command::Subscribe(t, filters, props) => {
                self.known_subs.extend(filters.iter().map(|(_, _, id)| *id));
                self.deferred.push(Request::Subscribe(Some(t), filters, props));
            }
            Command::Unsubscribe(t, filters, props) => self.deferred.push(Request::Unsubscribe(t, filters, props)),
        }
        None
    }

    /// Waits for `fut` while taking commands (and delivering held-back events): there is no
    /// connection to pause, so nothing else holds them back.
    async fn offline_wait<F: std::future::Future + Unpin>(&mut self, fut: &mut F) -> Waited<F::Output> {
        loop {
            self.out.flush();
            tokio::select! {
                r = &mut *fut => return Waited::Done(r),
                command = self.commands.recv() => match command {
                    None => return Waited::Closed,
                    Some(c) => {
                        if let Some(control) = self.offline_command(c, true) {
                            return Waited::Control(control);
                        }
                    }
                },
                permit = self.ctx.room(), if !self.out.backlog.is_empty() => self.out.deliver(permit),
            }
        }
    }

    /// Connects (trying every server), serves the connection, and while automatic reconnect is on
    /// re-makes it after each loss, until the session ends. `token` completes with the first
    /// attempt's outcome. Returns false when the client is being dropped.
    async fn connection(&mut self, token: Token) -> bool {
        let mut waiters = vec![token];
        let mut delay: Option<Duration> = None;
        loop {
            if let Some(d) = delay.take() {
                self.set_state(State::Reconnecting);
                self.out
                    .log(LogLevel::Info, || format!("reconnecting in {} ms", d.as_millis()));
                let mut pause = std::pin::pin!(tokio::time::sleep(d));
                match self.offline_wait(&mut pause).await {
                    Waited::Done(()) => {}
                    // Skip the rest of the wait.
                    Waited::Control(Control::Connect(t) | Control::Reconnect(t)) => waiters.push(t),
                    Waited::Control(Control::Disconnect(t)) => {
                        self.cancel_waiters(&mut waiters);
                        self.end_session(t);
                        return true;
                    }
                    Waited::Closed => return false,
                }
            }
            self.set_state(State::Connecting);
            let (link, server) = match self.attempt(&mut waiters).await {
                Attempt::Up(link, server) => (link, server),
                Attempt::Failed(e) => {
                    for t in waiters.drain(..) {
                        self.out.complete(t, Err(e.clone()));
                    }
                    if !self.session_alive() || !self.ctx.options.auto_reconnect {
                        // A first connect that fails ends here, like the libraries users know;
                        // automatic reconnect is for sessions that were up.
                        if !self.session_alive() && !self.ctx.options.queue_before_connect {
                            for (t, _) in self.offline.take() {
                                self.out.complete(t, Err(e.clone()));
                            }
                        }
                        self.set_state(State::Disconnected);
                        return true;
                    }
                    delay = Some(self.backoff.next_delay());
                    continue;
                }
                Attempt::Disconnect(t) => {
                    self.cancel_waiters(&mut waiters);
                    self.end_session(t);
                    return true;
                }
                Attempt::Closed => return false,
            };
            self.backoff.reset();
            let server = &self.ctx.servers[server];
            let session_present = link.session_present;
            for t in waiters.drain(..) {
                self.out.complete(
                    t,
                    Ok(Outcome {
                        codes: vec![session_present as u8],
                        properties: link.properties.clone(),
                    }),
                );
            }
            self.ctx.shared.session_alive.store(true, Ordering::Release);
            self.set_state(State::Connected);
            self.out.log(LogLevel::Info, || {
                format!("connected to {server} (session present: {session_present})")
            });
            self.out.push(Event::Connection(ConnectionEvent::Connected {
                session_present,
                server: server.clone(),
            }));
            self.out.flush();
            let reason = match self.serve(link).await {
                Ended::Disconnected(t) => {
                    self.out.log(LogLevel::Info, || "disconnected".into());
                    self.end_session(t);
                    return true;
                }
                Ended::Closed => return false,
                Ended::Reconnect(t) => {
                    waiters.push(t);
                    self.out
                        .log(LogLevel::Info, || "reconnecting at the application's request".into());
                    self.connection_lost(Error::Cancelled);
                    continue;
                }
                Ended::Lost(e) => e,
            };
            // The state first: whoever the event wakes must see it.
            let auto = self.ctx.options.auto_reconnect;
            self.set_state(if auto { State::Reconnecting } else { State::Disconnected });
            self.out
                .log(LogLevel::Warning, || format!("connection to {server} lost: {reason}"));
            self.out.push(Event::Connection(ConnectionEvent::Lost {
                reason: reason.clone(),
                server: server.clone(),
            }));
            self.connection_lost(reason);
            if !auto {
                // The session waits for the application's `reconnect` (or `disconnect`).
                return true;
            }
            delay = Some(self.backoff.next_delay());
        }
    }

    /// Connect tokens still waiting when a disconnect ends the attempt.
    fn cancel_waiters(&mut self, waiters: &mut Vec<Token>) {
        for t in waiters.drain(..) {
            self.out.complete(t, Err(Error::Cancelled));
        }
    }

    /// Tries each server once, from the first (or, rotating, from the one after the last used).
    async fn attempt(&mut self, waiters: &mut Vec<Token>) -> Attempt {
        let ctx = self.ctx;
        let n = ctx.servers.len();
        let first = if ctx.options.rotate_servers {
            self.next_server
        } else {
            0
        };
        let mut error = Error::ConnectTimeout;
        for index in (first..first + n).map(|i| i % n) {
            let server = &ctx.servers[index];
            self.out.log(LogLevel::Info, || format!("connecting to {server}"));
            let mut handshake = std::pin::pin!(timeout(ctx.options.connect_timeout, handshake(ctx, server)));
            let result = loop {
                match self.offline_wait(&mut handshake).await {
                    Waited::Done(r) => break r,
                    // Already connecting: the caller's token completes with this attempt.
                    Waited::Control(Control::Connect(t) | Control::Reconnect(t)) => waiters.push(t),
                    Waited::Control(Control::Disconnect(t)) => return Attempt::Disconnect(t),
                    Waited::Closed => return Attempt::Closed,
                }
            };
            match result.unwrap_or(Err(Error::ConnectTimeout)) {
                Ok(link) => {
                    self.next_server = (index + 1) % n;
                    return Attempt::Up(link, index);
                }
                Err(e) => {
                    self.out
                        .log(LogLevel::Error, || format!("connect to {server} failed: {e}"));
                    error = e;
                }
            }
        }
        Attempt::Failed(error)
    }

    /// After a lost connection: QoS 0 publishes not known to have left fail; unanswered requests
    /// go out again on the next connection, ahead of newer ones.
    fn connection_lost(&mut self, reason: Error) {
        for t in self.written.drain(..) {
            self.out.complete(t, Err(reason.clone()));
        }
        let mut requests = self.session.on_lost();
        requests.append(&mut self.deferred);
        self.deferred = requests;
    }

    /// Ends the session at the application's request: everything still waiting is cancelled.
    fn end_session(&mut self, token: Token) {
        let alive = self.ctx.shared.session_alive.swap(false, Ordering::AcqRel);
        for (t, r) in self.session.fail_all(&Error::Cancelled) {
            self.out.complete(t, r);
        }
        for request in std::mem::take(&mut self.deferred) {
            match request {
                // The registration stays in the trie: it is subscribed again on the next connect.
                Request::Subscribe(t, ..) => t.into_iter().for_each(|t| self.out.complete(t, Err(Error::Cancelled))),
                Request::Unsubscribe(t, ..) => self.out.complete(t, Err(Error::Cancelled)),
            }
        }
        for (t, _) in self.offline.take() {
            self.out.complete(t, Err(Error::Cancelled));
        }
        self.ctx.shared.set_state(State::Disconnected);
        self.out.complete(token, Ok(Outcome::default()));
        if alive {
            self.out.push(Event::Connection(ConnectionEvent::Disconnected));
        }
    }
}

/// The network task's side of [`Direct`]: whether its socket is on offer to callers.
struct Offer<'a> {
    direct: &'a Direct,
    offered: bool,
}

impl Offer<'_> {
    /// Offers `fd` unless it already is (see [`Direct::offer`]).
    fn make(&mut self, fd: std::os::fd::RawFd, max_packet_size: Option<usize>, commands: &Commands) {
        if !self.offered {
            self.offered = self.direct.offer(fd, max_packet_size, commands);
        }
    }

    /// Takes the socket back (see [`Direct::withdraw`]) before anything is written, or the
    /// connection ends with publishes a caller left half written.
    fn withdraw(&mut self, wbuf: &mut WriteQueue, written: &mut Vec<Token>) {
        if std::mem::take(&mut self.offered) {
            self.direct.withdraw(wbuf, written);
        }
    }
}

impl Drop for Offer<'_> {
    /// However the connection ends, callers stop writing before its socket is closed (and its
    /// number perhaps reused). Every branch that ends it has withdrawn the offer already, taking
    /// over what callers left; this only makes the socket's life independent of that.
    fn drop(&mut self) {
        let mut rest = WriteQueue::default();
        let mut tokens = Vec::new();
        self.withdraw(&mut rest, &mut tokens);
        debug_assert!(
            tokens.is_empty(),
            "publishes left half written when the connection ended"
        );
    }
}

/// What one read brought, for [`DelayedAck`].
#[derive(Default)]
struct Received {
    /// A SUBACK: the broker may follow it at once with retained messages.
    answer: bool,
    /// PUBLISH packets: two or more in one read means a stream.
    publishes: u32,
}

fn encode(wbuf: &mut WriteQueue, packet: &Packet) -> Result<(), Error> {
    wbuf.encode(packet).map_err(Error::Protocol)
}

impl Net<'_> {
    /// Queues a publish on the live connection: QoS 0 straight into the write buffer, QoS 1/2
    /// through the session's in-flight window.
    fn publish(&mut self, wbuf: &mut WriteQueue, token: Token, publish: Publish) -> Result<(), Error> {
        // The packet id is not chosen yet, but it takes the same two bytes whichever it is.
        if let Err(e) = self.peer.check_size(&publish, wbuf.version) {
            self.out.complete(token, Err(e));
            return Ok(());
        }
        if publish.qos == QoS::AtMostOnce {
            wbuf.publish(&publish).map_err(Error::Protocol)?;
            self.written.push(token);
        } else if let Some(p) = self.session.submit(token, publish) {
            wbuf.publish(p).map_err(Error::Protocol)?;
        }
        Ok(())
    }

    /// Writes the publishes the session's window has room for: resends first, then those queued.
    /// One larger than the broker's Maximum Packet Size fails its token instead of going out: it
    /// was checked when submitted, but a new connection's broker may take less.
    fn fill_window(&mut self, wbuf: &mut WriteQueue) -> Result<(), Error> {
        if !self.session.refill_due() {
            return Ok(());
        }
        while let Some(p) = self.session.next_in_window() {
            match self.peer.check_size(p, wbuf.version) {
                Ok(()) => wbuf.publish(p).map_err(Error::Protocol)?,
                Err(e) => {
                    let id = p.pkid;
                    self.abandon(id, e);
                }
            }
        }
        Ok(())
    }

    /// Fails the token of the in-flight publish `id`, which will not be sent, with `error`.
    fn abandon(&mut self, id: u16, error: Error) {
        if let Some(token) = self.session.abandon(id) {
            self.out.complete(token, Err(error));
        }
    }

    fn request(&mut self, wbuf: &mut WriteQueue, mut request: Request) -> Result<(), Error> {
        if let Request::Subscribe(_, _, properties) = &mut request
            && !self.peer.subscription_ids
        {
            // The broker said it does not take them (its CONNACK); messages are matched instead.
            properties.remove(PropertyId::SubscriptionIdentifier);
        }
        match self.session.start_request(request) {
            Ok(packet) => encode(wbuf, &packet),
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
    fn resume(&mut self, wbuf: &mut WriteQueue, session_present: bool) -> Result<(), Error> {
        for packet in self.session.resume(session_present) {
            match packet {
                Packet::Publish(p) => match self.peer.check_size(&p, wbuf.version) {
                    Ok(()) => wbuf.publish(&p).map_err(Error::Protocol)?,
                    Err(e) => self.abandon(p.pkid, e),
                },
                other => encode(wbuf, &other)?,
            }
        }
        self.fill_window(wbuf)?;
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
                    self.request(wbuf, Request::Subscribe(None, chunk, properties.clone()))?;
                }
            }
        }
        for request in deferred {
            self.request(wbuf, request)?;
        }
        for (t, p) in self.offline.take() {
            self.publish(wbuf, t, p)?;
        }
        Ok(())
    }

    async fn serve(&mut self, link: Link) -> Ended {
        let ctx = self.ctx;
        let Link {
            mut reader,
            mut writer,
            buffered,
            tcp,
            raw,
            mut rbuf,
            mut wbuf,
            session_present,
            properties,
        } = link;
        self.peer = Peer::new(&properties, ctx.options.topic_alias_maximum);
        // Receive Maximum absent means 65,535 (MQTT 5 section 3.2.2.3.3).
        let receive_maximum = properties.int(PropertyId::ReceiveMaximum).unwrap_or(65_535);
        self.session.set_window(receive_maximum as usize);
        // A Server Keep Alive replaces the client's (MQTT-3.2.2-21).
        let keep_alive = properties
            .int(PropertyId::ServerKeepAlive)
            .map_or(ctx.options.keep_alive, |k| k as u16);
        let now = Instant::now();
        let interval = (keep_alive > 0).then(|| Duration::from_secs(keep_alive.into()));
        let mut ka = KeepAlive::new(interval, ctx.options.ping_timeout, now);
        let mut disconnecting: Option<(Token, Instant)> = None;
        let mut unflushed = false;
        let far = now + Duration::from_secs(86400 * 365);
        let timer = sleep_until(ka.deadline().unwrap_or(far));
        tokio::pin!(timer);
        let mut ack = DelayedAck::new(tcp);
        // Declared after the stream's halves, so that it is dropped (withdrawn) before them.
        let mut offer = Offer {
            direct: &ctx.shared.direct,
            offered: false,
        };

        if let Err(e) = self.resume(&mut wbuf, session_present) {
            return Ended::Lost(e);
        }
        // Packets already received with the CONNACK.
        if let Err(e) = self.process_input(&mut rbuf, &mut wbuf, &mut ka) {
            return self.close_on(&mut writer, &mut wbuf, e).await;
        }
        loop {
            // A plain socket takes what is queued now, in one non-blocking system call, rather than
            // after another turn of the select below for the write branch: a turn costs more than
            // the write (6-9% of a QoS 1 or 2 latency round trip's instructions). What the
            // socket does not take is left to that branch. Before the flush, so that what this
            // completes goes out with the rest.
            if let Some(fd) = raw
                && !wbuf.is_empty()
            {
                debug_assert!(!offer.offered, "the socket is offered only with nothing queued");
                match wbuf.send_now(fd) {
                    Ok(0) => return Ended::Lost(Error::ConnectionClosed),
                    Ok(n) => self.wrote(n, &mut wbuf, &mut ack, &mut ka),
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                    Err(e) => return Ended::Lost(e.into()),
                }
            }
            self.out.flush();
            if let Some((token, deadline)) = disconnecting {
                if self.session.is_idle() || Instant::now() >= deadline {
                    return self.finish_disconnect(writer, wbuf, token, deadline).await;
                }
            }
            if ka.set_reading(self.out.backlog.is_empty(), Instant::now) {
                timer.as_mut().reset(ka.next_wakeup(disconnecting, far));
            }
            // Room for the rest of a large packet in one step (its size was checked against
            // max_packet_size when its header arrived), so the buffer is not regrown and copied
            // once per read.
            let want =
                codec::pending_packet_len(&rbuf, self.ctx.options.version).map_or(0, |n| n.saturating_sub(rbuf.len()));
            if rbuf.capacity() - rbuf.len() < want.max(READ_CHUNK / 4) {
                rbuf.reserve(want.max(READ_CHUNK));
            }
            // Nothing of our own to write and no command waiting: callers may write (see Direct).
            // Every branch below that may write or end the connection first takes the socket back.
            if let Some(fd) = raw
                && wbuf.is_empty()
                && !unflushed
                && disconnecting.is_none()
            {
                offer.make(fd, self.peer.max_packet_size, &self.commands);
            }
            tokio::select! {
                r = reader.read_buf(&mut rbuf), if self.out.backlog.is_empty() && !ack.holding() => {
                    offer.withdraw(&mut wbuf, &mut self.written);
                    match r {
                        Ok(0) => return Ended::Lost(Error::ConnectionClosed),
                        Ok(_) => {
                            ka.last_received = Instant::now();
                            let pinging = ka.ping_sent.is_some();
                            let received = match self.process_input(&mut rbuf, &mut wbuf, &mut ka) {
                                Ok(received) => received,
                                Err(e) => return self.close_on(&mut writer, &mut wbuf, e).await,
                            };
                            // Read with nothing to write back while more acknowledgements are awaited,
                            // after a SUBACK (retained messages may follow it), or in a stream of
                            // messages: see DelayedAck. Bytes waiting in `wbuf` carry the ACK
                            // themselves, and an ACK sent ahead of them would be a segment of its own.
                            if wbuf.is_empty() {
                                if self.session.awaits_acks() || received.answer {
                                    ack.owe(ACK_DELAY);
                                } else if received.publishes >= 2 {
                                    ack.owe(STREAM_ACK_DELAY);
                                }
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
                // Bytes a TLS or WebSocket writer accepted may wait in it for a flush, which is
                // due once our own queue is empty (nothing else would push them out).
                r = wbuf.write_or_flush(&mut writer), if !wbuf.is_empty() || unflushed => match r {
                    Ok(Some(0)) => return Ended::Lost(Error::ConnectionClosed),
                    Ok(Some(n)) => {
                        self.wrote(n, &mut wbuf, &mut ack, &mut ka);
                        unflushed = buffered;
                    }
                    Ok(None) => unflushed = false,
                    Err(e) => return Ended::Lost(e.into()),
                },
                // A disconnect is taken even when the socket is stuck: it is what ends that.
                () = ctx.shared.wake.wait() => offer.withdraw(&mut wbuf, &mut self.written),
                () = self.commands.ready(&ctx.shared.direct),
                    if disconnecting.is_none()
                        && (wbuf.len() < WRITE_HIGH_WATER || ctx.shared.state() == State::Disconnecting) =>
                {
                    offer.withdraw(&mut wbuf, &mut self.written);
                    // Take everything queued, so one socket write carries the whole batch.
                    loop {
                        let command = match self.commands.try_recv() {
                            Ok(command) => command,
                            Err(TryRecvError::Empty) => break,
                            Err(TryRecvError::Disconnected) => return Ended::Closed,
                        };
                        let handled = match command {
                            Command::Disconnect(t) => {
                                disconnecting = Some((t, Instant::now() + ctx.options.disconnect_timeout));
                                timer.as_mut().reset(ka.next_wakeup(disconnecting, far));
                                break;
                            }
                            Command::Reconnect(t) => return Ended::Reconnect(t),
                            Command::Connect(t) => {
                                self.out.complete(t, Err(Error::AlreadyConnected));
                                Ok(())
                            }
                            Command::Publish(t, p) => self.publish(&mut wbuf, t, p),
                            Command::Subscribe(t, f, props) => {
                                self.known_subs.extend(f.iter().map(|(_, _, id)| *id));
                                self.request(&mut wbuf, Request::Subscribe(Some(t), f, props))
                            }
                            Command::Unsubscribe(t, f, props) => {
                                self.request(&mut wbuf, Request::Unsubscribe(t, f, props))
                            }
                        };
                        if let Err(e) = handled {
                            return Ended::Lost(e);
                        }
                        if wbuf.len() >= WRITE_HIGH_WATER {
                            break;
                        }
                    }
                },
                () = ack.expired(), if ack.armed() => {}
                () = &mut timer => {
                    offer.withdraw(&mut wbuf, &mut self.written);
                    let now = Instant::now();
                    match ka.due(now) {
                        Due::TimedOut => return Ended::Lost(Error::KeepAliveTimeout),
                        Due::Ping => {
                            if let Err(e) = encode(&mut wbuf, &Packet::PingReq) {
                                return Ended::Lost(e);
                            }
                            self.out.log(LogLevel::Debug, || "sending PINGREQ".into());
                            ka.ping_sent = Some(now);
                        }
                        Due::Nothing => {}
                    }
                    timer.as_mut().reset(ka.next_wakeup(disconnecting, far));
                },
            }
        }
    }

    /// The socket took the first `n` bytes queued: they carried any ACK owed, and the publishes
    /// written whole are done.
    fn wrote(&mut self, n: usize, wbuf: &mut WriteQueue, ack: &mut DelayedAck, ka: &mut KeepAlive) {
        wbuf.advance(n);
        ack.carried();
        ka.last_sent = Instant::now();
        if wbuf.is_empty() {
            for t in self.written.drain(..) {
                self.out.complete(t, Ok(Outcome::default()));
            }
        }
    }

    /// Sends DISCONNECT after everything queued and closes the socket. A broker that stops reading
    /// gets until the disconnect deadline (and at least `LAST_WRITE`), then the socket is closed.
    async fn finish_disconnect(
        &mut self,
        mut writer: Writer,
        mut wbuf: WriteQueue,
        token: Token,
        deadline: Instant,
    ) -> Ended {
        let goodbye = std::mem::take(&mut *self.ctx.shared.goodbye.lock().unwrap_or_else(|p| p.into_inner()));
        let write = async {
            encode(&mut wbuf, &Packet::Disconnect(goodbye))?;
            wbuf.write_all(&mut writer).await?;
            writer.shutdown().await?;
            Ok::<(), Error>(())
        };
        let sent = tokio::time::timeout_at(deadline.max(Instant::now() + LAST_WRITE), write)
            .await
            .unwrap_or(Err(Error::Io("the broker stopped reading".into())));
        let result = if sent.is_ok() {
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
    /// first (see [`goodbye`]); when that write took everything queued, the QoS 0 publishes in it
    /// left too.
    async fn close_on(&mut self, writer: &mut Writer, wbuf: &mut WriteQueue, error: Error) -> Ended {
        let reason = disconnect_reason(self.ctx.options.version, &error);
        if let Some(reason) = reason {
            self.out
                .log(LogLevel::Debug, || format!("sending DISCONNECT ({reason}) on: {error}"));
            if goodbye(writer, wbuf, reason).await {
                for t in self.written.drain(..) {
                    self.out.complete(t, Ok(Outcome::default()));
                }
            }
        }
        Ended::Lost(error)
    }

    /// Decodes and handles every whole packet in `rbuf`, queueing replies in `wbuf`.
    fn process_input(
        &mut self,
        rbuf: &mut BytesMut,
        wbuf: &mut WriteQueue,
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
                    let id = p.pkid;
                    match p.qos {
                        QoS::AtMostOnce => self.out.push(Event::Message(p)),
                        QoS::AtLeastOnce => {
                            self.out.push(Event::Message(p));
                            encode(wbuf, &Packet::PubAck(Ack::new(id)))?;
                        }
                        QoS::ExactlyOnce => {
                            // Delivered on first receipt only; a resend before PUBREL just gets PUBREC again.
                            if self.session.inbound_qos2.insert(id) {
                                self.out.push(Event::Message(p));
                            }
                            encode(wbuf, &Packet::PubRec(Ack::new(id)))?;
                        }
                    }
                }
                Packet::PubAck(ack) => self.acknowledge(Awaiting::PubAck, ack, wbuf)?,
                Packet::PubRec(ack) => self.acknowledge(Awaiting::PubRec, ack, wbuf)?,
                Packet::PubComp(ack) => self.acknowledge(Awaiting::PubComp, ack, wbuf)?,
                Packet::PubRel(ack) => {
                    self.session.inbound_qos2.remove(&ack.pkid);
                    encode(wbuf, &Packet::PubComp(Ack::new(ack.pkid)))?;
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
                Packet::Auth(_) => {
                    return Err(Error::UnexpectedPacket("AUTH, though no authentication method was set"));
                }
            }
        }
        for id in self.session.take_pubrels(!wbuf.is_empty()) {
            encode(wbuf, &Packet::PubRel(Ack::new(id)))?;
        }
        Ok(received)
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

    fn acknowledge(&mut self, kind: Awaiting, ack: Ack, wbuf: &mut WriteQueue) -> Result<(), Error> {
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
            AckAction::PubRelOwed => {}
            AckAction::Complete(token, result) => {
                self.out.complete(token, result);
                self.fill_window(wbuf)?;
            }
        }
        Ok(())
    }
}
