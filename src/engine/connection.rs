//! The network task: connects, runs one connection's read/write loop and keep-alive, and hands
//! everything user-visible to the callback thread. It never runs user code, unless the application
//! chose `Options::inline_callbacks`.
use std::collections::{HashSet, VecDeque};
use std::io::ErrorKind;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc::{
    self,
    error::{TryRecvError, TrySendError},
};
use tokio::time::{Instant, sleep_until, timeout};

use crate::codec::{
    self, Ack, CodecError, Disconnect, MqttStr, Packet, Properties, PropertyId, Publish, QoS, ReasonCode, Version,
};

use super::backoff::Backoff;
use super::direct::{Commands, Direct};
use super::dispatch::{ConnectionEvent, Dispatcher, Event, LogLevel};
use super::offline::OfflineQueue;
use super::session::{AckAction, Awaiting, Request, Session, SubscribeFilter};
use super::tokens::{Outcome, Token, TokenResult};
use super::transport::{self, ACK_DELAY, DelayedAck, Reader, STREAM_ACK_DELAY, Writer};
use super::write_queue::WriteQueue;
use super::{Address, Command, Error, Options, Shared, State};

/// Stop taking commands while this much is waiting to be written: the socket is the bottleneck and
/// encoding more would only grow memory.
const WRITE_HIGH_WATER: usize = 1 << 20;
/// Keep at least this much free space for each socket read, so small reads don't reallocate.
const READ_CHUNK: usize = 64 * 1024;
/// The least time a disconnect gives its last write (DISCONNECT included) when its deadline passed.
const LAST_WRITE: Duration = Duration::from_millis(200);
/// How long the DISCONNECT that tells an MQTT 5 broker why the client closes on its protocol error
/// may take to go out (with what was queued before it). A courtesy: the connection closes anyway.
const GOODBYE_WRITE: Duration = Duration::from_millis(200);
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

/// Everything leaving the network task for the user: events for the callback thread (kept in order,
/// held back in `backlog` when the callback queue is full) and token completions (batched so a burst
/// of acknowledgements takes the token lock once).
struct Outbox<'a> {
    ctx: &'a Ctx,
    backlog: VecDeque<Event>,
    done: Vec<(Token, TokenResult)>,
    /// With `Options::inline_callbacks`: runs each event's callbacks at once, on this thread.
    inline: Option<Dispatcher>,
}

impl<'a> Outbox<'a> {
    fn new(ctx: &'a Ctx) -> Self {
        Outbox {
            ctx,
            backlog: VecDeque::new(),
            done: Vec::new(),
            inline: ctx.events.is_none().then(|| Dispatcher::new(ctx.shared.clone())),
        }
    }

    fn push(&mut self, event: Event) {
        let Some(events) = &self.ctx.events else {
            if let Some(dispatcher) = &mut self.inline {
                dispatcher.handle(event);
                self.ctx.shared.announce();
            }
            return;
        };
        if !self.backlog.is_empty() {
            self.backlog.push_back(event);
            return;
        }
        match events.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(event)) => self.backlog.push_back(event),
            // The callback thread is gone only when the client is closing.
            Err(TrySendError::Closed(_)) => {}
        }
    }

    fn log(&mut self, level: LogLevel, line: impl FnOnce() -> String) {
        if self.ctx.shared.wants_log(level) {
            self.push(Event::Log(level, line()));
        }
    }

    fn complete(&mut self, token: Token, result: TokenResult) {
        self.done.push((token, result));
    }

    fn flush(&mut self) {
        if self.done.is_empty() {
            return;
        }
        // Recorded before the event goes out, so a handler (or an event-mode consumer) that asks
        // about a token finds it complete.
        if self.ctx.shared.wants_completions() {
            self.ctx.shared.tokens.complete_all(self.done.iter().cloned());
            // One event for the lot: the callback thread is woken once per batch, not once per
            // token (which cost a futex wake and a context switch per acknowledged publish).
            let done = std::mem::take(&mut self.done);
            self.push(Event::Completed(done));
        } else {
            self.ctx.shared.tokens.complete_all(self.done.drain(..));
        }
        self.ctx.shared.announce();
    }

    /// Delivers the backlog, waiting for the callback thread: used between connections, where
    /// there is no socket to pause.
    async fn drain(&mut self) {
        self.flush();
        while let Some(event) = self.backlog.pop_front() {
            if self.ctx.room().await.map(|permit| permit.send(event)).is_err() {
                self.backlog.clear();
            }
        }
    }

    /// Hands the oldest held-back event to the callback thread once the queue has room.
    fn deliver(&mut self, permit: Result<mpsc::Permit<'_, Event>, mpsc::error::SendError<()>>) {
        match (permit, self.backlog.pop_front()) {
            (Ok(permit), Some(event)) => permit.send(event),
            // The callback thread is gone only when the client is closing.
            _ => self.backlog.clear(),
        }
    }

    /// Drops registrations made by a SUBSCRIBE that did not succeed. Done on the callback thread,
    /// because dropping a registration may run the user's userdata destructor.
    fn unregister(&mut self, filters: Vec<(String, u64)>) {
        if !filters.is_empty() {
            self.push(Event::Unregister(filters));
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

/// MQTT 5 state of one connection, from the CONNACK on; all of it lapses with the connection.
#[derive(Default)]
struct Peer {
    /// The broker's Maximum Packet Size: larger packets must not be sent (MQTT-3.2.2-15).
    max_packet_size: Option<usize>,
    /// Inbound topic aliases the broker has set: index alias - 1, up to our Topic Alias Maximum.
    aliases: Vec<Option<MqttStr>>,
    /// The broker takes Subscription Identifiers (its CONNACK says so unless it says 0).
    subscription_ids: bool,
}

/// What an inbound alias of 0 or above our Topic Alias Maximum is (MQTT 5 section 3.3.2.3.4 names
/// its own reason code for it, 0x94 Topic Alias invalid).
const ALIAS_ABOVE_MAXIMUM: &str = "PUBLISH with a topic alias above our Topic Alias Maximum";

impl Peer {
    fn new(connack: &Properties, topic_alias_maximum: u16) -> Peer {
        Peer {
            max_packet_size: connack.int(PropertyId::MaximumPacketSize).map(|n| n as usize),
            aliases: vec![None; topic_alias_maximum.into()],
            subscription_ids: connack.int(PropertyId::SubscriptionIdentifierAvailable) != Some(0),
        }
    }

    /// A publish larger than the broker's Maximum Packet Size must not be sent: the error that
    /// fails its token instead.
    fn check_size(&self, publish: &Publish, version: Version) -> Result<(), Error> {
        match self.max_packet_size {
            Some(max) if publish.encoded_len(version) > max => Err(Error::PacketTooLarge {
                size: publish.encoded_len(version),
                max,
            }),
            _ => Ok(()),
        }
    }

    /// Gives an inbound PUBLISH its whole topic: a topic with an alias sets the alias, an empty
    /// topic with one is replaced by what the alias stands for (MQTT 5 section 3.3.2.3.4). An
    /// alias of 0 or above our maximum, or one never set, is a protocol error (0x94, 0x82).
    fn resolve(&mut self, publish: &mut Publish) -> Result<(), Error> {
        let Some(alias) = publish.properties.int(PropertyId::TopicAlias) else {
            return Ok(());
        };
        let slot = (alias as usize)
            .checked_sub(1)
            .and_then(|i| self.aliases.get_mut(i))
            .ok_or(Error::UnexpectedPacket(ALIAS_ABOVE_MAXIMUM))?;
        if publish.topic.is_empty() {
            publish.topic = slot
                .clone()
                .ok_or(Error::UnexpectedPacket("PUBLISH with a topic alias that was never set"))?;
        } else {
            *slot = Some(publish.topic.clone());
        }
        Ok(())
    }
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

struct Link {
    reader: Reader,
    writer: Writer,
    /// See [`transport::Stream::buffered`].
    buffered: bool,
    /// See [`transport::Stream::tcp`]: valid while `reader` and `writer` are.
    tcp: Option<std::os::fd::RawFd>,
    /// See [`transport::Stream::raw`].
    raw: Option<std::os::fd::RawFd>,
    rbuf: BytesMut,
    wbuf: WriteQueue,
    session_present: bool,
    /// The CONNACK's properties (MQTT 5): the broker's limits for this connection.
    properties: Properties,
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

/// Opens the stream, sends CONNECT and waits for CONNACK. Bytes after the CONNACK stay in `rbuf`.
async fn handshake(ctx: &Ctx, server: &Address) -> Result<Link, Error> {
    let stream = transport::connect(server, ctx.options.tls.as_ref(), ctx.options.max_packet_size).await?;
    let mut link = Link {
        reader: stream.reader,
        writer: stream.writer,
        buffered: stream.buffered,
        tcp: stream.tcp,
        raw: stream.raw,
        rbuf: BytesMut::with_capacity(READ_CHUNK),
        wbuf: WriteQueue::new(ctx.options.version),
        session_present: false,
        properties: Properties::new(),
    };
    let o = &ctx.options;
    let connect = codec::Connect {
        version: o.version,
        clean_session: o.clean_session,
        keep_alive: o.keep_alive,
        client_id: codec::MqttStr::new(&o.client_id)?,
        will: o.will.clone(),
        username: o.username.clone(),
        password: o.password.clone(),
        properties: connect_properties(o)?,
    };
    link.wbuf.encode(&Packet::Connect(connect))?;
    link.wbuf.write_all(&mut link.writer).await?;
    link.writer.flush().await?;
    match await_connack(&mut link, o).await {
        Ok(()) => Ok(link),
        Err(e) => {
            if let Some(reason) = disconnect_reason(o.version, &e) {
                goodbye(&mut link.writer, &mut link.wbuf, reason).await;
            }
            Err(e)
        }
    }
}

/// Reads up to the CONNACK; a refusal is an error.
async fn await_connack(link: &mut Link, o: &Options) -> Result<(), Error> {
    loop {
        if let Some(what) = link.rbuf.first().and_then(|&b| before_connack(b)) {
            return Err(Error::UnexpectedPacket(what));
        }
        match codec::decode(&mut link.rbuf, o.max_packet_size, o.version)? {
            Some(Packet::ConnAck(ack)) if !ack.code.is_error() => {
                link.session_present = ack.session_present;
                link.properties = ack.properties;
                return Ok(());
            }
            Some(Packet::ConnAck(ack)) => {
                let text = |id| ack.properties.str(id).map(|s| s.as_str().to_owned());
                return Err(Error::Refused {
                    code: ack.code,
                    reason: text(PropertyId::ReasonString),
                    server_reference: text(PropertyId::ServerReference),
                });
            }
            Some(_) => return Err(Error::UnexpectedPacket("packet before CONNACK")),
            None => {}
        }
        if link.reader.read_buf(&mut link.rbuf).await? == 0 {
            return Err(Error::ConnectionClosed);
        }
    }
}

/// The reason code of the DISCONNECT an MQTT 5 client sends before it closes the connection on
/// `error` (MQTT 5 sections 4.13 and 3.14): for what the broker sent, a packet larger than our
/// maximum (0x95), bytes that are not a valid packet (0x81), a topic alias out of range (0x94) or
/// any other protocol error (0x82). None for 3.1.1, which has no such DISCONNECT, and for every
/// other end: a dead link (nothing would arrive), a refusal or the broker's own DISCONNECT (the
/// broker closes).
fn disconnect_reason(version: Version, error: &Error) -> Option<ReasonCode> {
    if version == Version::V311 {
        return None;
    }
    match error {
        Error::Protocol(CodecError::PacketTooLarge { .. }) => Some(ReasonCode::PACKET_TOO_LARGE),
        Error::Protocol(_) => Some(ReasonCode::MALFORMED_PACKET),
        Error::UnexpectedPacket(what) if *what == ALIAS_ABOVE_MAXIMUM => Some(ReasonCode::TOPIC_ALIAS_INVALID),
        Error::UnexpectedPacket(_) => Some(ReasonCode::PROTOCOL_ERROR),
        _ => None,
    }
}

/// Writes a DISCONNECT with `reason` after whatever is queued (the broker must get whole packets)
/// and shuts the stream down, for at most [`GOODBYE_WRITE`]: best effort, since the connection is
/// closed whatever happens. Returns whether everything went out.
async fn goodbye(writer: &mut Writer, wbuf: &mut WriteQueue, reason: ReasonCode) -> bool {
    let disconnect = Packet::Disconnect(Disconnect {
        reason,
        properties: Properties::new(),
    });
    if wbuf.encode(&disconnect).is_err() {
        return false;
    }
    let write = async {
        wbuf.write_all(writer).await?;
        writer.flush().await?;
        writer.shutdown().await
    };
    matches!(timeout(GOODBYE_WRITE, write).await, Ok(Ok(())))
}

/// An MQTT 5 CONNECT's properties: what the options ask of the session, and the limits this
/// client holds the broker to (the largest packet it reads, the aliases it resolves).
fn connect_properties(o: &super::Options) -> Result<Properties, Error> {
    if o.version == Version::V311 {
        return Ok(Properties::new());
    }
    let mut p = o.connect_properties.clone();
    if o.session_expiry > 0 {
        p.push_int(PropertyId::SessionExpiryInterval, o.session_expiry)?;
    }
    let max_packet = o.max_packet_size.min(u32::MAX as usize) as u32;
    p.push_int(PropertyId::MaximumPacketSize, max_packet.max(1))?;
    if o.topic_alias_maximum > 0 {
        p.push_int(PropertyId::TopicAliasMaximum, o.topic_alias_maximum.into())?;
    }
    Ok(p)
}

/// What a broker sent instead of CONNACK, named from the packet's first byte: CONNACK must come
/// first (MQTT-3.2.0-1), and a broker that sends anything else is refused at once rather than after
/// a body that may be as large as the maximum packet size. None for CONNACK, and for the reserved
/// types, which the decoder reports.
fn before_connack(first_byte: u8) -> Option<&'static str> {
    Some(match first_byte >> 4 {
        1 => "CONNECT before CONNACK",
        3 => "PUBLISH before CONNACK",
        4 => "PUBACK before CONNACK",
        5 => "PUBREC before CONNACK",
        6 => "PUBREL before CONNACK",
        7 => "PUBCOMP before CONNACK",
        8 => "SUBSCRIBE before CONNACK",
        9 => "SUBACK before CONNACK",
        10 => "UNSUBSCRIBE before CONNACK",
        11 => "UNSUBACK before CONNACK",
        12 => "PINGREQ before CONNACK",
        13 => "PINGRESP before CONNACK",
        14 => "DISCONNECT before CONNACK",
        _ => return None,
    })
}

/// Keep-alive bookkeeping (MQTT-3.1.2-24): a PINGREQ goes out when nothing was sent or nothing was
/// received for a keep-alive interval, so a silent (half-open) link is noticed even while we publish.
struct KeepAlive {
    interval: Option<Duration>,
    ping_timeout: Duration,
    last_sent: Instant,
    last_received: Instant,
    ping_sent: Option<Instant>,
    /// False while reading is paused because the callback queue is full (the application is slow):
    /// the PINGRESP may then be waiting unread behind the messages the pause left in the socket, so
    /// the ping timeout does not run.
    reading: bool,
}

/// What the keep-alive asks for when its timer fires.
#[derive(Debug, PartialEq, Eq)]
enum Due {
    Nothing,
    Ping,
    TimedOut,
}

impl KeepAlive {
    fn new(interval: Option<Duration>, ping_timeout: Duration, now: Instant) -> Self {
        KeepAlive {
            interval,
            // At most half the interval, so a silent link is noticed within 1.5 keep-alive intervals.
            ping_timeout: interval.map_or(ping_timeout, |i| ping_timeout.min(i / 2)),
            last_sent: now,
            last_received: now,
            ping_sent: None,
            reading: true,
        }
    }

    fn deadline(&self) -> Option<Instant> {
        let interval = self.interval?;
        match self.ping_sent {
            Some(_) if !self.reading => None,
            Some(t) => Some(t + self.ping_timeout),
            None => Some(self.last_sent.min(self.last_received) + interval),
        }
    }

    fn due(&self, now: Instant) -> Due {
        match self.deadline() {
            Some(d) if now >= d && self.ping_sent.is_some() => Due::TimedOut,
            Some(d) if now >= d => Due::Ping,
            _ => Due::Nothing,
        }
    }

    /// Reading pauses while the callback queue is full and resumes when it has room; returns whether
    /// that changed. The ping timeout counts only time spent reading: on resuming, a PINGREQ still
    /// unanswered gets the whole timeout again, since its answer may be anywhere in what the pause
    /// left unread. (A dead link is still noticed: once reading resumes, nothing comes.)
    /// Takes the clock as `now`, read only on a change: this runs on every turn of the loop.
    fn set_reading(&mut self, reading: bool, now: impl FnOnce() -> Instant) -> bool {
        if reading == self.reading {
            return false;
        }
        self.reading = reading;
        if reading && self.ping_sent.is_some() {
            self.ping_sent = Some(now());
        }
        true
    }

    /// When the loop's timer must next fire: the keep-alive deadline or the disconnect deadline.
    fn next_wakeup(&self, disconnecting: Option<(Token, Instant)>, far: Instant) -> Instant {
        let next = self.deadline().unwrap_or(far);
        disconnecting.map_or(next, |(_, d)| next.min(d))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn keep_alive_pings_after_an_idle_interval_and_times_out_half_an_interval_later() {
        let start = Instant::now();
        let mut ka = KeepAlive::new(Some(SECOND), Duration::from_secs(30), start);
        assert_eq!(ka.ping_timeout, SECOND / 2, "capped at half the interval");
        assert_eq!(ka.due(start + SECOND / 2), Due::Nothing);
        assert_eq!(ka.due(start + SECOND), Due::Ping);
        ka.ping_sent = Some(start + SECOND);
        assert_eq!(ka.due(start + SECOND * 3 / 2 - Duration::from_millis(1)), Due::Nothing);
        assert_eq!(ka.due(start + SECOND * 3 / 2), Due::TimedOut);
    }

    #[test]
    fn keep_alive_does_not_time_out_while_reading_is_paused_and_gives_the_whole_timeout_after() {
        let start = Instant::now();
        let mut ka = KeepAlive::new(Some(SECOND), SECOND / 2, start);
        // Paused before the ping is due: the ping still goes out.
        assert!(ka.set_reading(false, || start));
        assert!(!ka.set_reading(false, || start), "no change");
        assert_eq!(ka.due(start + SECOND), Due::Ping);
        ka.ping_sent = Some(start + SECOND);
        // Its answer may be waiting unread: however long the pause, no timeout.
        assert_eq!(ka.deadline(), None);
        assert_eq!(ka.due(start + SECOND * 60), Due::Nothing);
        // Reading again: the whole timeout from now.
        let resumed = start + SECOND * 60;
        assert!(ka.set_reading(true, || resumed));
        assert_eq!(ka.deadline(), Some(resumed + SECOND / 2));
        assert_eq!(ka.due(resumed + SECOND / 4), Due::Nothing);
        assert_eq!(ka.due(resumed + SECOND / 2), Due::TimedOut);
    }

    #[test]
    fn keep_alive_off_never_asks_for_anything() {
        let start = Instant::now();
        let mut ka = KeepAlive::new(None, SECOND, start);
        ka.set_reading(false, || start);
        ka.set_reading(true, || start);
        assert_eq!(ka.deadline(), None);
        assert_eq!(ka.due(start + SECOND * 3600), Due::Nothing);
    }

    #[test]
    fn the_clients_disconnect_reason_follows_the_brokers_fault_in_mqtt5_only() {
        let too_large = Error::Protocol(CodecError::PacketTooLarge { size: 9, max: 8 });
        let cases = [
            (too_large, Some(ReasonCode::PACKET_TOO_LARGE)),
            (
                Error::Protocol(CodecError::Truncated),
                Some(ReasonCode::MALFORMED_PACKET),
            ),
            (
                Error::UnexpectedPacket(ALIAS_ABOVE_MAXIMUM),
                Some(ReasonCode::TOPIC_ALIAS_INVALID),
            ),
            (
                Error::UnexpectedPacket("second CONNACK"),
                Some(ReasonCode::PROTOCOL_ERROR),
            ),
            (Error::KeepAliveTimeout, None),
            (Error::ConnectionClosed, None),
            (Error::Io("reset".into()), None),
            (Error::refused(ReasonCode::BANNED), None),
            (
                Error::ServerDisconnected {
                    code: ReasonCode::PROTOCOL_ERROR,
                    reason: None,
                    server_reference: None,
                },
                None,
            ),
        ];
        for (error, want) in cases {
            assert_eq!(disconnect_reason(Version::V5, &error), want, "{error:?}");
            assert_eq!(disconnect_reason(Version::V311, &error), None, "{error:?}");
        }
    }

    #[test]
    fn before_connack_names_any_other_packet_from_its_first_byte() {
        assert_eq!(before_connack(0x20), None);
        assert_eq!(before_connack(0x30), Some("PUBLISH before CONNACK"));
        assert_eq!(
            before_connack(0x3D),
            Some("PUBLISH before CONNACK"),
            "flags do not matter"
        );
        assert_eq!(before_connack(0x62), Some("PUBREL before CONNACK"));
        assert_eq!(before_connack(0xE0), Some("DISCONNECT before CONNACK"));
        // Reserved types are the decoder's to report.
        assert_eq!(before_connack(0x00), None);
        assert_eq!(before_connack(0xF0), None);
        for t in 1..=14u8 {
            assert_eq!(before_connack(t << 4).is_none(), t == 2, "type {t}");
        }
    }
}
