//! The callback thread: the only place user code runs (unless `Options::inline_callbacks` moves it
//! to the network thread). One per client, so a slow callback in one client never stalls another;
//! events are handled one at a time in arrival order.
//!
//! No lock is held while a handler runs: the trie lock is taken only to collect the matching
//! subscriptions, so handlers may subscribe, unsubscribe, publish or even free the client.
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use tokio::sync::{Notify, oneshot};

use crate::codec::{MqttStr, Properties, PropertyId, Publish};

// Events flow from here into the event queue, so the types both know live there.
use super::events::{ClientEvent, ConnectionEvent, Subscriber};
use super::held_acks::PendingAck;
use super::queue::Receiver;
use super::tokens::{Token, TokenResult};
use super::{Handler, Shared, Subscription, panics};

pub type MessageHandler = Box<dyn Fn(&Publish) + Send + Sync>;
pub type CompletionHandler = Arc<dyn Fn(Token, &TokenResult) + Send + Sync>;
/// Told of each message restored from the store, with the token that now stands for it.
pub type RestoredHandler = Arc<dyn Fn(Token, &Publish) + Send + Sync>;
pub type LogHandler = Arc<dyn Fn(LogLevel, &str) + Send + Sync>;
pub type ConnectionHandler = Arc<dyn Fn(&ConnectionEvent) + Send + Sync>;
/// Answers a broker's authentication challenge: the properties of the AUTH that goes back (its
/// Authentication Data, user properties; the engine adds the Authentication Method), or why the
/// exchange ends.
pub type AuthHandler = Arc<dyn Fn(&AuthChallenge) -> AuthAnswer + Send + Sync>;
pub type AuthAnswer = Result<Properties, String>;

/// One step of an enhanced authentication exchange (MQTT 5 section 4.12): an AUTH with reason
/// code 0x18 (Continue authentication) from the broker, which the application answers.
#[derive(Debug, Clone)]
pub struct AuthChallenge {
    /// The CONNECT's Authentication Method, which the broker's AUTH repeats.
    pub method: MqttStr,
    /// The AUTH's Authentication Data, if it had any.
    pub data: Option<Bytes>,
    /// All of the AUTH's properties (reason string and user properties included).
    pub properties: Properties,
    /// The exchange is part of the connect (before CONNACK); otherwise it re-authenticates a
    /// live connection.
    pub connecting: bool,
}

/// Log levels, most severe first; a handler receives its level and every more severe one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum LogLevel {
    Off = 0,
    Error = 1,
    Warning = 2,
    Info = 3,
    Debug = 4,
}

#[derive(Debug)]
pub(crate) enum Event {
    /// A message, with the hold on its acknowledgement under `Options::ack_after_callback`.
    Message(Publish, Option<PendingAck>),
    /// Tokens completed together, in completion order.
    Completed(Vec<(Token, TokenResult)>),
    Log(LogLevel, String),
    Connection(ConnectionEvent),
    /// Messages restored from the store when a session started, oldest first, with their tokens.
    Restored(Vec<(Token, Publish)>),
    /// Registrations to drop (filter, subscription id): a SUBSCRIBE the broker refused or that never
    /// went out. Only that registration goes; a newer one for the same filter stays.
    Unregister(Vec<(String, u64)>),
    /// A broker's authentication challenge, and where the network task waits for its answer.
    Auth(AuthChallenge, oneshot::Sender<AuthAnswer>),
    /// From `Client::inject_panic`: a panic in this module's own code, outside user callbacks.
    InjectedPanic,
}

/// Starts the callback thread; `network` is the network task's shutdown signal, which a panic
/// here raises (see [`run`]).
pub(crate) fn spawn(
    shared: Arc<Shared>,
    events: Receiver<Event>,
    network: Arc<Notify>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("mqttc-callbacks".into())
        .spawn(move || run(shared, events, network))
}

/// Handles events until the network task ends or the client closes. A panic in this thread's own
/// code (user callbacks are guarded one by one) stops the client: it is recorded, the network task
/// is told to end, and the thread carries on, to deliver the loss the network task then reports,
/// so that task never waits on a queue nobody reads.
fn run(shared: Arc<Shared>, mut events: Receiver<Event>, network: Arc<Notify>) {
    let _ = shared.callback_thread.set(std::thread::current().id());
    loop {
        let mut dispatcher = Dispatcher::new(shared.clone());
        match catch_unwind(AssertUnwindSafe(|| serve(&mut dispatcher, &mut events))) {
            Ok(()) => return,
            Err(payload) => {
                let _ = shared.panic.set(panics::caught("the callback thread", &*payload));
                network.notify_one();
            }
        }
    }
}

/// How many events a pooled client handles before letting the callback thread serve others.
const POOLED_BATCH: usize = 64;

/// The dispatch loop of a client on a [`Pool`](super::Pool): as [`run`], as a future the pool's
/// callback threads poll.
pub(crate) async fn serve_pooled(shared: Arc<Shared>, mut events: Receiver<Event>, network: Arc<Notify>) {
    let mut dispatcher = Dispatcher::new(shared.clone());
    let mut handled = 0;
    while let Some(event) = events.recv().await {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| dispatcher.handle(event))) {
            let _ = shared.panic.set(panics::caught("the callback thread", &*payload));
            network.notify_one();
            dispatcher = Dispatcher::new(shared.clone());
        }
        if !shared.logs_open() {
            return;
        }
        handled += 1;
        if handled % POOLED_BATCH == 0 {
            yield_once().await;
        }
    }
}

/// Pending once, with the task woken: it goes to the back of the pool's queue.
async fn yield_once() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if std::mem::replace(&mut yielded, true) {
            return std::task::Poll::Ready(());
        }
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await
}

fn serve(dispatcher: &mut Dispatcher, events: &mut Receiver<Event>) {
    // `blocking_recv` sets up a parker every call; a non-blocking look first makes a burst cost
    // one of those, not one per event.
    while let Some(event) = events.try_recv().ok().or_else(|| events.blocking_recv()) {
        dispatcher.handle(event);
        if !dispatcher.shared.logs_open() {
            break;
        }
    }
}

/// Runs the user's code for events, one at a time: on the callback thread, or with
/// `Options::inline_callbacks` on the network thread itself.
pub(crate) struct Dispatcher {
    shared: Arc<Shared>,
    /// The subscriptions matching the message at hand (kept to reuse its allocation).
    matched: Vec<Arc<Subscription>>,
}

impl Dispatcher {
    pub fn new(shared: Arc<Shared>) -> Self {
        Dispatcher {
            shared,
            matched: Vec::new(),
        }
    }

    pub fn handle(&mut self, event: Event) {
        let shared = &*self.shared;
        match event {
            Event::Message(publish, ack) => {
                let sub_ids = publish.properties.ints(PropertyId::SubscriptionIdentifier);
                shared
                    .subs()
                    .for_each_match(publish.topic.as_str(), sub_ids, |s| self.matched.push(s.clone()));
                let mut subscribers = Vec::new();
                for sub in self.matched.drain(..) {
                    if shared.closed.load(Ordering::Acquire) {
                        break;
                    }
                    let key = match &sub.handler {
                        Handler::Call(h) => {
                            guarded(|| h(&publish));
                            continue;
                        }
                        Handler::Queue { key, .. } => *key,
                    };
                    // The event holds the registration until the application frees it.
                    subscribers.push(Subscriber::new(key, sub));
                }
                if !subscribers.is_empty() {
                    // The application releases the acknowledgement when it frees the event.
                    queue(
                        shared,
                        ClientEvent::Message {
                            publish,
                            subscribers,
                            ack,
                        },
                    );
                } else if let Some(ack) = ack {
                    // Closed during the loop, a callback may have been skipped: then the
                    // acknowledgement is dropped unsent, and the broker delivers the message again.
                    if !shared.closed.load(Ordering::Acquire) {
                        ack.release();
                    }
                }
            }
            Event::Completed(done) => {
                // Looked up per token: a handler may set another for the tokens after its own.
                for (token, result) in done {
                    let handler = shared.on_complete.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    if let Some(h) = handler.filter(|_| !shared.closed.load(Ordering::Acquire)) {
                        guarded(|| h(token, &result));
                    }
                    queue(shared, ClientEvent::Completed { token, result });
                }
            }
            Event::Unregister(filters) => {
                let removed: Vec<_> = {
                    let mut subs = shared.subs();
                    filters
                        .iter()
                        .filter_map(|(f, id)| subs.remove_if(f, |s| s.id == *id))
                        .collect()
                };
                drop(removed);
            }
            Event::Connection(change) => {
                let handler = shared.on_connection.lock().unwrap_or_else(|p| p.into_inner()).clone();
                if let Some(h) = handler.filter(|_| !shared.closed.load(Ordering::Acquire)) {
                    guarded(|| h(&change));
                }
                queue(shared, ClientEvent::Connection(change));
            }
            Event::Restored(messages) => {
                for (token, publish) in messages {
                    let handler = shared.on_restored.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    if let Some(h) = handler.filter(|_| !shared.closed.load(Ordering::Acquire)) {
                        guarded(|| h(token, &publish));
                    }
                    queue(shared, ClientEvent::Restored { token, publish });
                }
            }
            Event::Log(level, line) => {
                let handler = shared.log.lock().unwrap_or_else(|p| p.into_inner()).clone();
                if let Some(h) = handler.filter(|_| shared.wants_log(level) && shared.logs_open()) {
                    guarded(|| h(level, &line));
                }
            }
            Event::Auth(challenge, reply) => {
                let handler = shared.on_auth.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let answer = match handler.filter(|_| !shared.closed.load(Ordering::Acquire)) {
                    None => Err("no authentication handler is set to answer the broker's challenge".into()),
                    Some(h) => catch_unwind(AssertUnwindSafe(|| h(&challenge)))
                        .unwrap_or_else(|_| Err("the authentication handler panicked".into())),
                };
                // The network task stopped waiting only when the connection is gone.
                let _ = reply.send(answer);
            }
            Event::InjectedPanic => panic!("injected on the callback thread"),
        }
    }
}

/// Hands an event to the application's queue in event mode (waiting while it is full, which in
/// turn pauses the network task's reading); nothing to do in callback mode.
fn queue(shared: &Shared, event: ClientEvent) {
    if let Some(q) = &shared.events {
        q.push(event);
    }
}

/// A panicking handler must not take the callback thread (and every later callback) with it.
fn guarded(f: impl FnOnce()) {
    let _ = catch_unwind(AssertUnwindSafe(f));
}
