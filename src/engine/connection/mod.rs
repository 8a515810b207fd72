//! The network task: connects, runs one connection's read/write loop and keep-alive, and hands
//! everything user-visible to the callback thread. It never runs user code, unless the application
//! chose `Options::inline_callbacks`.
//!
//! This file holds the task's life across connections: connecting to each server in turn,
//! reconnecting, and the commands met while there is no connection. One live connection is served
//! by [`serve`], over a [`writer::SocketWriter`].
mod aliases;
mod auth;
mod handshake;
mod input;
mod keep_alive;
mod outbox;
mod outgoing;
mod peer;
mod serve;
mod writer;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::backoff::Backoff;
use super::direct::Commands;
use super::dispatch::{Dispatcher, Event, LogLevel};
use super::events::ConnectionEvent;
use super::held_acks::HeldAcks;
use super::offline::OfflineQueue;
use super::queue::{Closed, Permit, Receiver, Sender};
use super::session::{Request, Session};
use super::store::Restoration;
use super::timer::{Sleep, timeout};
use super::tokens::{Limits, Outcome, Token};
use super::{Address, Command, Error, Options, Shared, State};
use auth::Authenticator;
use handshake::{Link, handshake};
use outbox::Outbox;
use peer::Peer;

pub(super) struct Ctx {
    pub shared: Arc<Shared>,
    /// The callback thread's queue; `None` with `Options::inline_callbacks`, where the network
    /// task runs the callbacks itself.
    pub events: Option<Sender<Event>>,
    pub options: Options,
    pub servers: Vec<Address>,
}

impl Ctx {
    /// Room for one event in the callback thread's queue. Never ready with inline callbacks, which
    /// hold nothing back.
    async fn room(&self) -> Result<Permit<'_, Event>, Closed> {
        match &self.events {
            Some(events) => events.reserve().await,
            None => std::future::pending().await,
        }
    }

    /// Hands `event` to the callbacks now, waiting for room in the callback thread's queue, or
    /// with inline callbacks running them here: for the handshake, which has no [`Outbox`].
    async fn hand(&self, event: Event) {
        match &self.events {
            // Closed only when the client is closing; the event's own drop says so.
            Some(events) => drop(events.send(event).await),
            None => {
                Dispatcher::new(self.shared.clone()).handle(event);
                self.shared.announce();
            }
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
    Up(Box<Link>, usize),
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
    /// With `Options::ack_after_callback`: the acknowledgements owed for inbound messages the
    /// application is handling.
    held: Option<Arc<HeldAcks>>,
    /// The live connection's re-authentication, if one is under way (MQTT 5).
    auth: Authenticator,
}

/// The network task: takes commands while offline, and makes and serves connections.
///
/// Not an `async fn`: one keeps its arguments, and `ctx` is large, twice in its state (the
/// argument, and the local the body borrows), for as long as the client lives.
#[allow(clippy::manual_async_fn)]
pub(super) fn run(ctx: Ctx, commands: Receiver<Command>) -> impl Future<Output = ()> {
    async move {
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
            held: o.ack_after_callback.then(Arc::default),
            auth: Authenticator::new(o),
        };
        // Not `while let`, whose command would stay in the state across the connection's life.
        loop {
            let Some(command) = net.commands.recv().await else {
                return;
            };
            match net.offline_command(command, false) {
                None => {}
                Some(Control::Connect(t) | Control::Reconnect(t)) => {
                    if !net.session_alive() {
                        net.restore();
                    }
                    if !net.connection(t).await {
                        return;
                    }
                }
                Some(Control::Disconnect(t)) => net.end_session(t),
            }
            net.out.drain().await;
        }
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
            // Authentication lasts as long as its connection.
            Command::Reauthenticate(t, _) => self.out.complete(t, Err(Error::NotConnected)),
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
                let mut pause = Sleep::after(d);
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
            // Boxed: the handshake's state (TLS, WebSocket) is large, and needed only while it runs;
            // inline, every idle client of a fleet would hold its room.
            let (link, server) = match Box::pin(self.attempt(&mut waiters)).await {
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
            // A connection the application drops with `reconnect` is lost too, as the application
            // sees it: while the client lives, each CONNECTED event is followed by a LOST or a
            // DISCONNECTED one, whatever the next attempt gives.
            let (reason, asked) = match self.serve(link).await {
                Ended::Disconnected(t) => {
                    self.out.log(LogLevel::Info, || "disconnected".into());
                    self.end_session(t);
                    return true;
                }
                Ended::Closed => return false,
                Ended::Reconnect(t) => {
                    waiters.push(t);
                    (Error::Cancelled, true)
                }
                Ended::Lost(e) => (e, false),
            };
            // The state first: whoever the event wakes must see it.
            let auto = self.ctx.options.auto_reconnect;
            self.set_state(match (asked, auto) {
                (true, _) => State::Connecting,
                (false, true) => State::Reconnecting,
                (false, false) => State::Disconnected,
            });
            if asked {
                self.out
                    .log(LogLevel::Info, || "reconnecting at the application's request".into());
            } else {
                self.out
                    .log(LogLevel::Warning, || format!("connection to {server} lost: {reason}"));
            }
            self.out.push(Event::Connection(ConnectionEvent::Lost {
                reason: reason.clone(),
                server: server.clone(),
            }));
            self.connection_lost(reason);
            if asked {
                continue;
            }
            if !auto {
                // The session waits for the application's `reconnect` (or `disconnect`).
                return true;
            }
            delay = Some(self.backoff.next_delay());
        }
    }

    /// Connect tokens still waiting when a disconnect ends the attempt.
    /// A session starts: what the store holds that this process has not in hand (all of it in a
    /// new process; after a disconnect, what it cancelled) goes back into the session, under new
    /// tokens, ahead of anything published since: in flight with its packet id when it was sent
    /// (resent with DUP if the broker kept the session, else as new), queued otherwise. The
    /// application is told of each. With a clean session and `store_drop_on_clean`, it is deleted.
    fn restore(&mut self) {
        let Some(store) = self.ctx.shared.store.clone() else {
            return;
        };
        let o = &self.ctx.options;
        let keep = !(o.clean_session && o.store_drop_on_clean);
        let tokens = &self.ctx.shared.tokens;
        // Counted like any publish, but never refused: they were accepted once already.
        let unlimited = Limits {
            messages: usize::MAX,
            bytes: usize::MAX,
        };
        let issue = |bytes| tokens.issue_counted(bytes, unlimited, None).expect("no limit");
        let Restoration {
            messages: restored,
            inbound,
            lines,
        } = match store.restore(keep, issue) {
            Ok(r) => r,
            Err(e) => {
                self.out.log(LogLevel::Error, || format!("cannot restore: {e}"));
                return;
            }
        };
        for line in lines {
            self.out.log(LogLevel::Warning, || line);
        }
        if !restored.is_empty() {
            self.out.log(LogLevel::Info, || {
                format!("{} message(s) restored from the store", restored.len())
            });
        }
        let mut told = Vec::with_capacity(restored.len());
        for r in restored {
            told.push((r.token, r.publish.clone()));
            self.session.restore(r.token, r.publish, r.stage);
        }
        self.session.inbound_qos2.extend(inbound);
        if !told.is_empty() {
            self.out.push(Event::Restored(told));
        }
    }

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
            if let Some(warning) = ctx
                .options
                .tls
                .as_ref()
                .and_then(|t| t.warning())
                .filter(|_| server.uses_tls())
            {
                self.out.log(LogLevel::Warning, || format!("{server}: {warning}"));
            }
            let handshake = std::pin::pin!(handshake(ctx, server));
            let mut handshake = std::pin::pin!(timeout(ctx.options.connect_timeout, handshake));
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
                    if let Some(session) = &link.tls_session {
                        self.out.log(LogLevel::Info, || format!("{server}: {session}"));
                    }
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
        for t in self.written.drain(..).chain(self.auth.end()) {
            self.out.complete(t, Err(reason.clone()));
        }
        let mut requests = self.session.on_lost();
        requests.append(&mut self.deferred);
        self.deferred = requests;
        self.forget_held_acks();
    }

    /// What the lost connection owed the broker is not sent on the next (see [`HeldAcks`]); the
    /// QoS 2 messages it had not answered are delivered again when the broker resends them.
    fn forget_held_acks(&mut self) {
        if let Some(held) = &self.held {
            for id in held.forget() {
                if self.session.inbound_qos2.remove(&id) {
                    self.note_inbound(id, false);
                }
            }
        }
    }

    /// Ends the session at the application's request: everything still waiting is cancelled.
    fn end_session(&mut self, token: Token) {
        let alive = self.ctx.shared.session_alive.swap(false, Ordering::AcqRel);
        self.forget_held_acks();
        if let Some(t) = self.auth.end() {
            self.out.complete(t, Err(Error::Cancelled));
        }
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
