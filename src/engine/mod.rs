//! The async engine: one client = one network thread (a current-thread tokio runtime) plus one
//! callback thread ([`dispatch`]), or no thread at all with a [`Loop`] the application runs.
//! Nothing here knows about C.
//!
//! Flow: API calls validate, issue a token and send a [`Command`] to the network task, returning at
//! once. The network task owns the socket and the [`session::Session`]; it completes tokens in the
//! shared [`tokens::Tokens`] table (so waits never depend on the callback thread) and hands messages,
//! completions and log lines to the callback thread as [`dispatch::Event`]s through a bounded queue.
//! When that queue is full the network task stops reading the socket (TCP back-pressure) but keeps
//! writing and pinging.
mod backoff;
mod connection;
mod direct;
pub mod dispatch;
mod error;
pub mod events;
mod held_acks;
pub mod offline;
mod options;
mod panics;
mod payload_pool;
mod pool;
mod queue;
mod registry;
mod run_loop;
pub mod session;
mod signal;
pub mod store;
mod subscription;
mod timer;
pub mod tls;
pub mod tokens;
pub mod transport;
mod write_queue;

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::{JoinHandle, ThreadId};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;

use crate::codec::{Disconnect, MqttStr, Properties, PropertyId, Publish, QoS, SubscribeOptions, Version, Will};

pub use dispatch::{
    AuthAnswer, AuthChallenge, AuthHandler, CompletionHandler, ConnectionHandler, LogHandler, LogLevel, MessageHandler,
    RestoredHandler,
};
pub use error::Error;
pub use events::{ClientEvent, ConnectionEvent, Wakeup};
pub use held_acks::PendingAck;
pub use offline::Overflow;
pub use options::Options;
#[doc(hidden)]
pub use panics::PanicSite;
pub use pool::Pool;
pub use run_loop::{Loop, Nested};
pub use subscription::{FilterRequest, Handler, Rejected, Subscription};
pub use tls::{Connector as TlsConnector, TlsOptions};
pub use tokens::{Full, Limits, Outcome, Token, TokenResult, TokenState};
pub use transport::{Address, Proxy};

/// The largest Subscription Identifier (a variable byte integer of at most four bytes).
const MAX_SUBSCRIPTION_ID: u32 = 268_435_455;

#[derive(Debug)]
pub(crate) enum Command {
    Connect(Token),
    Reconnect(Token),
    Publish(Token, Publish),
    Subscribe(Token, Vec<session::SubscribeFilter>, Properties),
    Unsubscribe(Token, Vec<MqttStr>, Properties),
    Disconnect(Token),
    /// MQTT 5: starts a re-authentication (AUTH 0x19) with these properties (Authentication
    /// Data); the engine adds the Authentication Method.
    Reauthenticate(Token, Properties),
}

/// Connection state as API calls see it (the network task is the only writer after `connect`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    Disconnected = 0,
    Connecting = 1,
    Connected = 2,
    Disconnecting = 3,
    /// The connection was lost; the client is waiting to reconnect, or reconnecting.
    Reconnecting = 4,
}

/// What a CONNECT says of who connects and of the message the broker publishes if the
/// connection dies: what tokens and passwords expire, or a device's status, change between
/// connections.
#[derive(Debug, Clone, Default)]
pub(crate) struct Login {
    pub username: Option<MqttStr>,
    pub password: Option<Bytes>,
    pub will: Option<Will>,
}

/// MQTT 3.1.1 sends a password only with a user name (section 3.1.2.9); MQTT 5 allows one alone.
fn check_credentials(version: Version, username: &Option<MqttStr>, password: &Option<Bytes>) -> Result<(), Error> {
    if password.is_some() && username.is_none() && version == Version::V311 {
        return Err(Error::InvalidArgument(
            "a password requires a username in MQTT 3.1.1 (MQTT 5 allows one alone)",
        ));
    }
    Ok(())
}

/// State shared by the API, the network task and the callback thread. Locks here are held only for
/// short, callback-free sections.
pub(crate) struct Shared {
    pub tokens: tokens::Tokens,
    pub subs: Mutex<registry::Registry>,
    /// The DISCONNECT a clean disconnect ends with (MQTT 5: the application's reason code and
    /// properties).
    pub goodbye: Mutex<Disconnect>,
    /// Who the next CONNECT says connects, and its will: from the options, changed by
    /// `Client::set_credentials` and `Client::set_will`. Read once per connection attempt.
    pub login: Mutex<Login>,
    state: AtomicU8,
    /// A session is under way: set by the first CONNACK, cleared when `disconnect` ends it. While
    /// set, publishes made without a connection wait in the offline queue.
    pub session_alive: AtomicBool,
    /// Publishes made before the first connect are queued too (see `Options::queue_before_connect`).
    queue_before_connect: bool,
    /// Wakes the network task to look at `state` again: a disconnect must be taken even while the
    /// write buffer is too full to take other commands.
    pub wake: signal::Signal,
    /// Set by `Client::close`: the callback thread runs no further callback, but for log lines
    /// while `flush_logs` is set.
    pub closed: AtomicBool,
    /// Set by a `Client::close` made outside the callbacks, which waits for the callback thread:
    /// the log lines produced before (a connection's last words) are still delivered, so a
    /// program that logs and exits sees them all.
    flush_logs: AtomicBool,
    pub callback_thread: OnceLock<ThreadId>,
    pub on_complete: Mutex<Option<CompletionHandler>>,
    pub has_on_complete: AtomicBool,
    pub on_connection: Mutex<Option<ConnectionHandler>>,
    pub on_restored: Mutex<Option<RestoredHandler>>,
    /// Answers the broker's authentication challenges (MQTT 5 enhanced authentication).
    pub on_auth: Mutex<Option<AuthHandler>>,
    pub log: Mutex<Option<LogHandler>>,
    /// The most verbose level wanted; `LogLevel::Off` when no log handler is set.
    pub log_level: AtomicU8,
    next_sub_id: AtomicU64,
    /// Event mode's queue; `None` in callback mode.
    pub events: Option<events::EventQueue>,
    /// The socket while the network task lets callers write QoS 0 publishes themselves; every
    /// command goes through it too, to keep the order of calls.
    direct: direct::Direct,
    /// With a [`Loop`]: signalled when something reaches the application, which is what
    /// `Loop::run` returns for.
    loop_activity: Option<Arc<Notify>>,
    /// Why the client stopped: a panic on its network task or callback thread (see [`panics`]).
    /// Once set, calls that need the network task fail with it.
    pub panic: OnceLock<Error>,
    /// Where accepted QoS 1/2 publishes are kept until acknowledged (see [`store`]).
    pub store: Option<Arc<store::Store>>,
    /// A [`PanicSite`] asked for by `Client::inject_panic`, taken by the network task when
    /// `shutdown` wakes it; 0 for none.
    inject: AtomicU8,
}

impl Shared {
    pub fn state(&self) -> State {
        match self.state.load(Ordering::Acquire) {
            1 => State::Connecting,
            2 => State::Connected,
            3 => State::Disconnecting,
            4 => State::Reconnecting,
            _ => State::Disconnected,
        }
    }

    pub fn set_state(&self, s: State) {
        self.state.store(s as u8, Ordering::Release);
    }

    pub fn login(&self) -> MutexGuard<'_, Login> {
        self.login.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn subs(&self) -> MutexGuard<'_, registry::Registry> {
        self.subs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Log lines still reach the log handler: the client is open, or closing from outside its
    /// callbacks (see `flush_logs`).
    pub fn logs_open(&self) -> bool {
        !self.closed.load(Ordering::Acquire) || self.flush_logs.load(Ordering::Acquire)
    }

    pub fn wants_log(&self, level: LogLevel) -> bool {
        level as u8 <= self.log_level.load(Ordering::Relaxed)
    }

    /// Token completions must reach the callback thread: a completion callback is set, or they are
    /// events.
    pub fn wants_completions(&self) -> bool {
        self.events.is_some() || self.has_on_complete.load(Ordering::Acquire)
    }

    /// Something reached the application: a thread running the loop may return to it.
    pub fn announce(&self) {
        if let Some(a) = &self.loop_activity {
            a.notify_waiters();
        }
    }
}

/// The client handle. Dropping it (or calling [`Client::close`]) stops both threads; after that no
/// callback runs.
pub struct Client {
    shared: Arc<Shared>,
    version: Version,
    /// The CONNECT's Session Expiry Interval: a DISCONNECT may not raise it from 0 (MQTT-3.14.2-2).
    session_expiry: u32,
    /// The CONNECT carries an Authentication Method: the client may re-authenticate (MQTT 5).
    enhanced_auth: bool,
    commands: queue::Sender<Command>,
    shutdown: Arc<Notify>,
    network: Network,
    /// The outgoing budget (see `Options::outgoing`) and how long a call may wait for room in it.
    outgoing: Limits,
    outgoing_wait: Duration,
    /// Taken by `close`; a lock because `close` takes `&self` (other threads may be inside calls).
    callbacks: Mutex<Option<JoinHandle<()>>>,
    /// Set by the first `close`: only that one stops the threads and releases the subscriptions
    /// (a later one, e.g. the drop by the last call out after a free, must not undo its choices).
    closing: AtomicBool,
    payloads: payload_pool::PayloadPool,
}

/// Where a client's connection task runs.
enum Network {
    /// The thread's handle, taken by `close`.
    Thread(Mutex<Option<JoinHandle<()>>>),
    Loop(Arc<Loop>, run_loop::Slot),
    /// On a [`Pool`] (held for as long as the client is): the connection task, and the dispatch
    /// loop that runs the client's callbacks.
    Pool {
        _pool: Arc<Pool>,
        net: run_loop::Slot,
        callbacks: Arc<pool::Job>,
    },
}

impl Client {
    /// A client for the broker at one of `servers` (tried in order; at least one).
    pub fn new(servers: Vec<Address>, mut options: Options) -> std::io::Result<Client> {
        if servers.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "no server address",
            ));
        }
        if options.inline_callbacks && options.event_mode {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "inline_callbacks cannot be combined with event_mode: a full event queue would stall the connection",
            ));
        }
        if options.run_loop.is_some() {
            if options.event_mode {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "a loop cannot be combined with event_mode: a full event queue would stall the loop",
                ));
            }
            // The loop's thread is the only one there is.
            options.inline_callbacks = true;
        }
        options.check_authentication()?;
        check_credentials(options.version, &options.username, &options.password)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        if options.pool.is_some() && (options.run_loop.is_some() || options.inline_callbacks) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a pool cannot be combined with a loop or inline_callbacks: its callback threads run the callbacks",
            ));
        }
        let shared = Arc::new(Shared {
            tokens: tokens::Tokens::new(options.token_history),
            subs: Mutex::new(registry::Registry::default()),
            goodbye: Mutex::new(Disconnect::default()),
            login: Mutex::new(Login {
                username: options.username.take(),
                password: options.password.take(),
                will: options.will.take(),
            }),
            state: AtomicU8::new(State::Disconnected as u8),
            session_alive: AtomicBool::new(false),
            wake: signal::Signal::default(),
            queue_before_connect: options.queue_before_connect,
            closed: AtomicBool::new(false),
            flush_logs: AtomicBool::new(false),
            callback_thread: OnceLock::new(),
            on_complete: Mutex::new(None),
            has_on_complete: AtomicBool::new(false),
            on_connection: Mutex::new(None),
            on_restored: Mutex::new(None),
            on_auth: Mutex::new(None),
            log: Mutex::new(None),
            log_level: AtomicU8::new(LogLevel::Off as u8),
            next_sub_id: AtomicU64::new(1),
            events: match options.event_mode {
                true => Some(events::EventQueue::new(options.callback_queue)?),
                false => None,
            },
            direct: direct::Direct::new(options.version),
            loop_activity: options.run_loop.as_ref().map(|l| l.activity()),
            panic: OnceLock::new(),
            store: options.store.clone(),
            inject: AtomicU8::new(0),
        });
        let (version, session_expiry) = (options.version, options.session_expiry);
        let enhanced_auth = options.authentication_method().is_some();
        let (outgoing, outgoing_wait) = (options.outgoing, options.outgoing_wait);
        let (cmd_tx, cmd_rx) = queue::unbounded();
        let shutdown = Arc::new(Notify::new());
        // Out of the options the task keeps: the loop holds the task, which must not hold the loop.
        let run_loop = options.run_loop.take();
        let pool = options.pool.take();
        let (ev_tx, callbacks, job) = if options.inline_callbacks {
            (None, None, None)
        } else {
            let (ev_tx, ev_rx) = queue::bounded(options.callback_queue);
            match &pool {
                Some(p) => {
                    let serve = dispatch::serve_pooled(shared.clone(), ev_rx, shutdown.clone());
                    (Some(ev_tx), None, Some(p.spawn_callbacks(serve)))
                }
                None => (
                    Some(ev_tx),
                    Some(dispatch::spawn(shared.clone(), ev_rx, shutdown.clone())?),
                    None,
                ),
            }
        };
        let inline = ev_tx.is_none();
        let (report_to, first_server) = (ev_tx.clone(), servers[0].clone());
        let ctx = connection::Ctx {
            shared: shared.clone(),
            events: ev_tx,
            options,
            servers,
        };
        // Boxed: `supervise` and the future inside it would each hold a copy of it otherwise.
        let task = panics::supervise(
            shared.clone(),
            report_to,
            first_server,
            shutdown.clone(),
            Box::pin(connection::run(ctx, cmd_rx)),
        );
        let network = match (run_loop, pool, job) {
            (_, Some(pool), Some(job)) => {
                let net = pool.spawn(task);
                Network::Pool {
                    _pool: pool,
                    net,
                    callbacks: job,
                }
            }
            (Some(lp), ..) => {
                let slot = lp.spawn(task);
                Network::Loop(lp, slot)
            }
            _ => {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                let net_shared = shared.clone();
                Network::Thread(Mutex::new(Some(
                    std::thread::Builder::new().name("mqttc-net".into()).spawn(move || {
                        if inline {
                            // Callbacks run here: blocking waits are refused on this thread, as on a
                            // callback thread, and a free made inside a callback does not wait for it.
                            let _ = net_shared.callback_thread.set(std::thread::current().id());
                        }
                        runtime.block_on(task);
                        // A name lookup stuck in the blocking pool must not hold up `close`.
                        runtime.shutdown_background();
                    })?,
                )))
            }
        };
        Ok(Client {
            shared,
            version,
            session_expiry,
            enhanced_auth,
            commands: cmd_tx,
            shutdown,
            network,
            outgoing,
            outgoing_wait,
            callbacks: Mutex::new(callbacks),
            closing: AtomicBool::new(false),
            payloads: payload_pool::PayloadPool::default(),
        })
    }

    fn send(&self, make: impl FnOnce(Token) -> Command) -> Result<Token, Error> {
        self.hand_over(self.shared.tokens.issue(), make)
    }

    /// Counts an operation holding `bytes` (topic and payload, or filters) against the outgoing
    /// budget until its token completes. When the budget is spent it fails at once with
    /// [`Error::OutgoingFull`], or waits up to `outgoing_wait` for room first; never on a thread
    /// that runs this client's callbacks or loop, whose work is what makes room.
    fn admit(&self, bytes: usize) -> Result<Token, Error> {
        let tokens = &self.shared.tokens;
        if self.outgoing_wait.is_zero() || self.on_callback_thread() {
            return tokens
                .issue_counted(bytes, self.outgoing, None)
                .map_err(Error::OutgoingFull);
        }
        let deadline = std::time::Instant::now() + self.outgoing_wait;
        match &self.network {
            Network::Loop(lp, _) => {
                // Room is made by the loop, so the wait runs it.
                let (lp, shared, limits) = (lp.clone(), self.shared.clone(), self.outgoing);
                let _ = lp.run_until(deadline, || shared.tokens.has_room(bytes, limits));
                tokens
                    .issue_counted(bytes, self.outgoing, None)
                    .map_err(Error::OutgoingFull)
            }
            Network::Thread(_) | Network::Pool { .. } => tokens
                .issue_counted(bytes, self.outgoing, Some(deadline))
                .map_err(Error::OutgoingFull),
        }
    }

    /// Sends the command made for `token`, or completes the token with the reason it cannot go.
    fn hand_over(&self, token: Token, make: impl FnOnce(Token) -> Command) -> Result<Token, Error> {
        if self.shared.direct.send(&self.commands, make(token)).is_err() {
            // The network task is gone (after close, or a panic): nothing can run this operation.
            let error = self.stopped().unwrap_or(Error::Cancelled);
            self.shared.tokens.complete(token, Err(error.clone()));
            return Err(error);
        }
        Ok(token)
    }

    /// The panic that stopped the client, if one did: what calls return instead of "not
    /// connected" or "cancelled". Looked at only once a call has failed.
    fn stopped(&self) -> Option<Error> {
        self.shared.panic.get().cloned()
    }

    /// Operations that need a session: one is connected, being made, being re-made, or was lost
    /// and waits for the application's `reconnect` (automatic reconnect off).
    fn require_session(&self) -> Result<(), Error> {
        match self.shared.state() {
            State::Disconnecting => Err(Error::NotConnected),
            State::Disconnected if !self.shared.session_alive.load(Ordering::Acquire) => {
                Err(self.stopped().unwrap_or(Error::NotConnected))
            }
            _ => Ok(()),
        }
    }

    pub fn state(&self) -> State {
        self.shared.state()
    }

    /// The protocol version the client speaks.
    pub fn version(&self) -> Version {
        self.version
    }

    pub fn connect(&self) -> Result<Token, Error> {
        self.shared
            .state
            .compare_exchange(
                State::Disconnected as u8,
                State::Connecting as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .map_err(|_| Error::AlreadyConnected)?;
        // Refused only when the network task is gone, which leaves the client disconnected.
        self.send(Command::Connect)
            .inspect_err(|_| self.shared.set_state(State::Disconnected))
    }

    /// Starts a new connection at once: drops the current one if any (as if it were lost: the
    /// session carries on) or skips the wait before the next automatic attempt. When there is no
    /// session this is `connect`. The token completes with the outcome of that connection attempt.
    pub fn reconnect(&self) -> Result<Token, Error> {
        match self.shared.state() {
            State::Disconnecting => Err(Error::NotConnected),
            State::Disconnected => self.connect(),
            _ => self.send(Command::Reconnect),
        }
    }

    /// The library's copy of a payload to publish. Large ones go into reused buffers, which spares
    /// the page faults of fresh memory for each. Memory that cannot be had is an error.
    pub fn payload(&self, data: &[u8]) -> Result<Bytes, std::collections::TryReserveError> {
        self.payloads.copy(data)
    }

    /// Queues a publish; `topic` must already be a valid topic name. Without a connection it waits
    /// in the offline queue (while a session is under way, or before the first connect when
    /// `queue_before_connect` is set).
    pub fn publish(&self, topic: MqttStr, payload: Bytes, qos: QoS, retain: bool) -> Result<Token, Error> {
        self.publish_with(topic, payload, qos, retain, Properties::new())
    }

    /// [`Client::publish`] with MQTT 5 properties, ones a client may send in PUBLISH.
    pub fn publish_with(
        &self,
        topic: MqttStr,
        payload: Bytes,
        qos: QoS,
        retain: bool,
        properties: Properties,
    ) -> Result<Token, Error> {
        if !self.shared.queue_before_connect {
            self.require_session()?;
        } else if self.shared.state() == State::Disconnecting {
            return Err(Error::NotConnected);
        }
        let bytes = topic.as_str().len() + payload.len();
        let mut publish = Publish {
            dup: false,
            qos,
            retain,
            topic,
            pkid: 0,
            properties,
            payload,
        };
        // Written here when the connection is idle, unless the token's completion is to be
        // reported (by a callback or an event), which is the network task's to send.
        if qos == QoS::AtMostOnce && self.shared.state() == State::Connected && !self.shared.wants_completions() {
            match self
                .shared
                .direct
                .publish(publish, &self.shared.tokens, &self.shared.wake)
            {
                Ok(token) => return Ok(token),
                Err(p) => publish = p,
            }
        }
        let token = self.admit(bytes)?;
        if let Some(store) = self.shared.store.as_ref().filter(|_| qos != QoS::AtMostOnce) {
            // Stored before the call returns: a publish that succeeded survives a crash.
            if let Err(e) = store.accept(token, &publish) {
                self.shared.tokens.complete(token, Err(e.clone()));
                return Err(e);
            }
        }
        self.hand_over(token, |t| Command::Publish(t, publish))
    }

    /// Registers the handlers (replacing any for the same filter) and sends one SUBSCRIBE for all
    /// filters. Messages matching a filter reach its handler from the moment this returns. Before
    /// `connect` (or between connections) the SUBSCRIBE waits and goes out right after the next
    /// CONNACK, so messages a persistent session delivers at once find their handler. While a
    /// disconnect is under way the handlers are handed back untouched, so the caller decides what
    /// dropping them means.
    pub fn subscribe<O: Into<SubscribeOptions>>(&self, filters: Vec<(MqttStr, O, Handler)>) -> Result<Token, Rejected> {
        let filters = filters.into_iter().map(|(f, o, h)| (f, o.into(), h)).collect();
        self.subscribe_with(filters, Properties::new())
    }

    /// [`Client::subscribe`] with MQTT 5 subscription options and SUBSCRIBE properties (user
    /// properties; the engine adds the Subscription Identifier).
    pub fn subscribe_with(&self, filters: Vec<FilterRequest>, mut properties: Properties) -> Result<Token, Rejected> {
        let queued = filters.iter().any(|(_, _, h)| matches!(h, Handler::Queue { .. }));
        let refused = if self.shared.state() == State::Disconnecting {
            Some(Error::NotConnected)
        } else if queued && self.shared.events.is_none() {
            Some(Error::EventModeOff)
        } else {
            None
        };
        let bytes = filters.iter().map(|(f, _, _)| f.as_str().len()).sum();
        let token = match refused.map_or_else(|| self.admit(bytes), Err) {
            Ok(token) => token,
            Err(error) => {
                return Err(Rejected {
                    error,
                    handlers: filters,
                });
            }
        };
        let mut request = Vec::with_capacity(filters.len());
        let mut replaced = Vec::new();
        {
            let mut subs = self.shared.subs();
            let mut sub_id = 0;
            for (filter, options, handler) in filters {
                let id = self.shared.next_sub_id.fetch_add(1, Ordering::Relaxed);
                if sub_id == 0 && self.version == Version::V5 {
                    // The SUBSCRIBE's identifier is its first registration's id, while ids fit the
                    // identifier's range; a client that made 268 million subscriptions goes on
                    // without (its messages are then matched).
                    sub_id = u32::try_from(id)
                        .ok()
                        .filter(|&i| i <= MAX_SUBSCRIPTION_ID)
                        .unwrap_or(0);
                    if sub_id != 0 {
                        properties.remove(PropertyId::SubscriptionIdentifier);
                        properties
                            .push_int(PropertyId::SubscriptionIdentifier, sub_id)
                            .expect("in range: checked above");
                    }
                }
                let sub = Subscription::new(id, filter.as_str(), options, sub_id, handler);
                replaced.extend(subs.insert(filter.as_str(), Arc::new(sub)));
                request.push((filter, options, id));
            }
        }
        // Replaced handlers are dropped here, outside the lock: their drop may run user code.
        drop(replaced);
        self.hand_over(token, |t| Command::Subscribe(t, request, properties))
            .map_err(|error| Rejected {
                error,
                handlers: Vec::new(),
            })
    }

    /// Removes the handlers at once (no further delivery to them) and sends one UNSUBSCRIBE.
    pub fn unsubscribe(&self, filters: Vec<MqttStr>) -> Result<Token, Error> {
        self.unsubscribe_with(filters, Properties::new())
    }

    /// [`Client::unsubscribe`] with MQTT 5 UNSUBSCRIBE properties (user properties).
    pub fn unsubscribe_with(&self, filters: Vec<MqttStr>, properties: Properties) -> Result<Token, Error> {
        self.require_session()?;
        let token = self.admit(filters.iter().map(|f| f.as_str().len()).sum())?;
        let removed: Vec<_> = {
            let mut subs = self.shared.subs();
            filters.iter().filter_map(|f| subs.remove(f.as_str())).collect()
        };
        drop(removed);
        self.hand_over(token, |t| Command::Unsubscribe(t, filters, properties))
    }

    /// Sends what was queued before it, waits (up to the disconnect timeout) for in-flight QoS 1/2
    /// acknowledgements, then sends DISCONNECT and closes the socket.
    pub fn disconnect(&self) -> Result<Token, Error> {
        self.disconnect_with(Disconnect::default())
    }

    /// [`Client::disconnect`] ending with `goodbye`: in MQTT 5 the application's reason code and
    /// properties (0x04 "disconnect with will message" asks the broker to publish the will).
    pub fn disconnect_with(&self, goodbye: Disconnect) -> Result<Token, Error> {
        self.require_session()?;
        let raises_expiry = goodbye
            .properties
            .int(PropertyId::SessionExpiryInterval)
            .is_some_and(|e| e > 0);
        if self.session_expiry == 0 && raises_expiry {
            return Err(Error::InvalidArgument(
                "a DISCONNECT cannot set a session expiry when the CONNECT's was 0 (MQTT-3.14.2-2)",
            ));
        }
        *self.shared.goodbye.lock().unwrap_or_else(|p| p.into_inner()) = goodbye;
        self.shared.set_state(State::Disconnecting);
        let token = self.send(Command::Disconnect);
        self.shared.wake.raise();
        token
    }

    /// The user name and password of the next CONNECT, from the next connection attempt on
    /// (an automatic reconnect, `connect`, `reconnect`); the current connection keeps its own.
    /// An attempt already under way is not changed. MQTT 3.1.1 wants a user name with a password.
    pub fn set_credentials(&self, username: Option<MqttStr>, password: Option<Bytes>) -> Result<(), Error> {
        check_credentials(self.version, &username, &password)?;
        let mut login = self.shared.login();
        login.username = username;
        login.password = password;
        Ok(())
    }

    /// The will of the next CONNECT (None: no will), from the next connection attempt on, as
    /// for [`Client::set_credentials`]; the broker keeps the current connection's until it ends.
    pub fn set_will(&self, will: Option<Will>) {
        self.shared.login().will = will;
    }

    pub fn token_state(&self, token: Token) -> TokenState {
        self.shared.tokens.state(token)
    }

    /// True on this client's callback thread, where blocking waits are refused; with a loop, on a
    /// thread running one.
    pub fn on_callback_thread(&self) -> bool {
        match self.network {
            Network::Loop(..) => Loop::running_here(),
            Network::Pool { ref callbacks, .. } => callbacks.running_here(),
            _ => self.shared.callback_thread.get() == Some(&std::thread::current().id()),
        }
    }

    /// Blocks until the token completes or `timeout` passes. Refused on the callback thread: the
    /// network task may be waiting for that very thread to drain the event queue. With a loop, the
    /// wait runs the loop (other clients' callbacks on it may run meanwhile).
    pub fn wait(&self, token: Token, timeout: Duration) -> Option<TokenState> {
        if self.on_callback_thread() {
            return None;
        }
        match &self.network {
            Network::Loop(lp, _) => {
                // Our own references: a callback the loop runs may free this client meanwhile.
                let (lp, shared) = (lp.clone(), self.shared.clone());
                let state = || shared.tokens.state(token);
                lp.run_until(std::time::Instant::now() + timeout, || state() != TokenState::Pending)
                    .ok()?;
                Some(state())
            }
            _ => Some(self.shared.tokens.wait(token, timeout)),
        }
    }

    /// Test hook: makes the network task (or the callback thread's own code) panic, to check that
    /// the client contains it. Takes the same path as `close`'s wake-up, so it costs nothing per
    /// message. Not part of the API.
    #[doc(hidden)]
    pub fn inject_panic(&self, site: PanicSite) {
        self.shared.inject.store(site as u8, Ordering::Release);
        self.shutdown.notify_one();
    }

    pub fn set_on_complete(&self, handler: Option<CompletionHandler>) {
        self.shared.has_on_complete.store(handler.is_some(), Ordering::Release);
        let old = std::mem::replace(
            &mut *self.shared.on_complete.lock().unwrap_or_else(|p| p.into_inner()),
            handler,
        );
        drop(old);
    }

    pub fn set_on_connection(&self, handler: Option<ConnectionHandler>) {
        let old = std::mem::replace(
            &mut *self.shared.on_connection.lock().unwrap_or_else(|p| p.into_inner()),
            handler,
        );
        drop(old);
    }

    pub fn set_on_restored(&self, handler: Option<RestoredHandler>) {
        let old = std::mem::replace(
            &mut *self.shared.on_restored.lock().unwrap_or_else(|p| p.into_inner()),
            handler,
        );
        drop(old);
    }

    /// Sets (or removes) the handler that answers the broker's authentication challenges (MQTT 5
    /// enhanced authentication), on the thread that runs the other callbacks. Not in event mode,
    /// whose runtimes must not be entered from a library thread.
    pub fn set_on_auth(&self, handler: Option<AuthHandler>) -> Result<(), Error> {
        if self.event_mode() {
            return Err(Error::InvalidArgument(options::AUTH_NEEDS_CALLBACKS));
        }
        let old = std::mem::replace(
            &mut *self.shared.on_auth.lock().unwrap_or_else(|p| p.into_inner()),
            handler,
        );
        drop(old);
        Ok(())
    }

    /// MQTT 5: starts a re-authentication of the live connection (AUTH 0x19, with `properties`:
    /// its Authentication Data). The broker's challenges go to the auth handler; the token
    /// completes with the broker's AUTH Success (its properties in the outcome), or fails with
    /// the connection when the broker refuses (a DISCONNECT) or the handler ends the exchange.
    pub fn reauthenticate(&self, properties: Properties) -> Result<Token, Error> {
        if !self.enhanced_auth {
            return Err(Error::InvalidArgument(
                "re-authentication needs an Authentication Method in the CONNECT properties",
            ));
        }
        if self.shared.state() != State::Connected {
            return Err(self.stopped().unwrap_or(Error::NotConnected));
        }
        self.send(|t| Command::Reauthenticate(t, properties))
    }

    pub fn event_mode(&self) -> bool {
        self.shared.events.is_some()
    }

    /// Event mode: takes the oldest queued event without waiting.
    pub fn next_event(&self) -> Result<Option<ClientEvent>, Error> {
        Ok(self.event_queue()?.pop())
    }

    /// Event mode: how many events wait.
    pub fn pending_events(&self) -> Result<usize, Error> {
        Ok(self.event_queue()?.len())
    }

    /// Event mode: a descriptor that is readable exactly while events wait. Owned by the client
    /// (closed when it is dropped); never read from or write to it.
    pub fn event_fd(&self) -> Result<std::os::fd::RawFd, Error> {
        Ok(self.event_queue()?.fd())
    }

    /// Event mode: sets (or removes) the hook called when the queue goes from empty to non-empty.
    pub fn set_wakeup(&self, hook: Option<Wakeup>) -> Result<(), Error> {
        self.event_queue()?.set_wakeup(hook);
        Ok(())
    }

    fn event_queue(&self) -> Result<&events::EventQueue, Error> {
        self.shared.events.as_ref().ok_or(Error::EventModeOff)
    }

    pub fn set_log(&self, level: LogLevel, handler: Option<LogHandler>) {
        let level = if handler.is_some() { level } else { LogLevel::Off };
        let old = std::mem::replace(&mut *self.shared.log.lock().unwrap_or_else(|p| p.into_inner()), handler);
        self.shared.log_level.store(level as u8, Ordering::Release);
        drop(old);
    }

    /// Stops the client: the socket is closed without DISCONNECT (like a crash, so the will is sent),
    /// both threads end, and no callback runs after this returns. Called on the callback thread, the
    /// callback in progress finishes and the thread ends right after it. Only the first call acts;
    /// calls other threads make meanwhile or after fail (their tokens complete with
    /// `Error::Cancelled`).
    pub fn close(&self) {
        if self.closing.swap(true, Ordering::AcqRel) {
            return;
        }
        let inside = self.on_callback_thread();
        // Before `closed`, so the callback thread never sees it closed without the flush.
        self.shared.flush_logs.store(!inside, Ordering::Release);
        self.shared.closed.store(true, Ordering::Release);
        if let Some(q) = &self.shared.events {
            q.close(); // the callback thread may be waiting for room there
        }
        self.shutdown.notify_one();
        let network = match &self.network {
            Network::Thread(h) => h.lock().unwrap_or_else(|p| p.into_inner()).take(),
            Network::Loop(_, slot) => {
                slot.close();
                None
            }
            Network::Pool { net, callbacks, .. } => {
                net.close();
                callbacks.close();
                None
            }
        };
        let callbacks = self.callbacks.lock().unwrap_or_else(|p| p.into_inner()).take();
        for h in [network, callbacks].into_iter().flatten() {
            if h.thread().id() == std::thread::current().id() {
                drop(h); // detach: it exits when the current callback returns
            } else {
                let _ = h.join();
            }
        }
        let pending = self.shared.tokens.pending();
        self.shared
            .tokens
            .complete_all(pending.into_iter().map(|t| (t, Err(Error::Cancelled))));
        self.shared.announce();
        if !inside {
            // The threads are gone, so no callback uses them: each subscription's userdata is
            // released now, not when the last call still holding this client returns.
            let subs = std::mem::take(&mut *self.shared.subs());
            drop(subs); // outside the lock: a `drop_userdata` may call the library
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.close();
    }
}
