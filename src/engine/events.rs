//! Event mode: messages, token completions and connection changes wait in a bounded queue that the
//! application drains from a thread of its own choosing, instead of running user code on the
//! callback thread. Made for runtimes whose code must not be entered from a foreign thread (Julia,
//! Python, an event loop).
//!
//! The application learns that events wait through a file descriptor that is readable exactly
//! while the queue is non-empty (level-triggered, so it suits `select`, `poll`, epoll and libuv
//! alike), and/or through a wakeup hook called when the queue goes from empty to non-empty.
//!
//! The queue is bounded: a full queue blocks the callback thread, whose own queue then fills, and
//! the network task stops reading the socket (TCP back-pressure) rather than dropping or growing.
use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::codec::Publish;
use crate::sys::EventFd;

use super::held_acks::PendingAck;
use super::tokens::{Token, TokenResult};
use super::{Address, Error, Subscription};

/// A change of the connection, as the connection-state callback and the event queue see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionEvent {
    /// A CONNACK accepted the connection to `server`.
    Connected { session_present: bool, server: Address },
    /// The connection to `server` was lost; automatic reconnect (when on) starts after this.
    Lost { reason: Error, server: Address },
    /// `disconnect` finished: the session ended by the application's choice.
    Disconnected,
}

/// One queued event.
#[derive(Debug)]
pub enum ClientEvent {
    /// A message for the event-mode subscriptions listed (one or more, when filters overlap), in
    /// the trie's match order.
    Message {
        publish: Publish,
        subscribers: Vec<Subscriber>,
        /// With `Options::ack_after_callback` (QoS 1 and 2): the message's PUBACK or PUBREC waits
        /// for [`PendingAck::release`], to be called once the application is done with it.
        ack: Option<PendingAck>,
    },
    Completed {
        token: Token,
        result: TokenResult,
    },
    Connection(ConnectionEvent),
    /// A message restored from the store (see `Options::store`), and the token that now stands
    /// for it.
    Restored {
        token: Token,
        publish: Publish,
    },
}

/// An event-mode subscription a queued message is for: its key, and a hold on its registration.
/// The registration's guard, which may release what the key stands for (a C application's
/// userdata), is dropped only when the subscription has ended and no event names it any more:
/// an application may still be reading the key of a message taken before an unsubscribe.
pub struct Subscriber {
    pub key: usize,
    _registration: Arc<Subscription>,
}

impl Subscriber {
    pub(crate) fn new(key: usize, registration: Arc<Subscription>) -> Self {
        Subscriber {
            key,
            _registration: registration,
        }
    }
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Subscriber").field(&self.key).finish()
    }
}

/// Called from a library thread when the queue goes from empty to non-empty.
pub type Wakeup = Arc<dyn Fn() + Send + Sync>;

struct Queue {
    events: VecDeque<ClientEvent>,
    closed: bool,
    /// The producer waits for room: only then does a pop pay for a wakeup.
    full_wait: bool,
}

pub(crate) struct EventQueue {
    queue: Mutex<Queue>,
    /// Signalled when a pop makes room, or when the queue is closed.
    room: Condvar,
    capacity: usize,
    /// Readable exactly while the queue is non-empty.
    signal: EventFd,
    wakeup: Mutex<Option<Wakeup>>,
}

impl EventQueue {
    pub fn new(capacity: usize) -> io::Result<Self> {
        Ok(EventQueue {
            queue: Mutex::new(Queue {
                events: VecDeque::new(),
                closed: false,
                full_wait: false,
            }),
            room: Condvar::new(),
            capacity: capacity.max(1),
            signal: EventFd::new()?,
            wakeup: Mutex::new(None),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends an event, waiting while the queue is full. Returns false (dropping the event) only
    /// once the queue is closed, that is when the client is being freed.
    pub fn push(&self, event: ClientEvent) -> bool {
        let mut q = self.lock();
        while q.events.len() >= self.capacity && !q.closed {
            q.full_wait = true;
            q = self.room.wait(q).unwrap_or_else(|p| p.into_inner());
        }
        q.full_wait = false;
        if q.closed {
            return false;
        }
        let was_empty = q.events.is_empty();
        q.events.push_back(event);
        if was_empty {
            // Under the lock, so the descriptor's state always matches the queue's.
            self.signal.raise();
        }
        drop(q);
        if was_empty {
            self.wake();
        }
        true
    }

    /// Takes the oldest event without waiting.
    pub fn pop(&self) -> Option<ClientEvent> {
        let mut q = self.lock();
        let event = q.events.pop_front()?;
        if q.events.is_empty() {
            self.signal.clear();
        }
        let notify = q.full_wait;
        drop(q);
        if notify {
            self.room.notify_one();
        }
        Some(event)
    }

    pub fn len(&self) -> usize {
        self.lock().events.len()
    }

    pub fn fd(&self) -> RawFd {
        self.signal.fd()
    }

    /// Sets (or removes) the wakeup hook. When events already wait, the new hook is called at once,
    /// so an application that installs it late does not sleep on a non-empty queue.
    pub fn set_wakeup(&self, hook: Option<Wakeup>) {
        let old = std::mem::replace(&mut *self.wakeup.lock().unwrap_or_else(|p| p.into_inner()), hook);
        drop(old);
        if self.len() > 0 {
            self.wake();
        }
    }

    fn wake(&self) {
        let hook = self.wakeup.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(h) = hook {
            // A panicking hook (a Rust caller's) must not take the callback thread with it.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h()));
        }
    }

    /// Ends waiting: a blocked `push` returns, and later pushes are refused.
    pub fn close(&self) {
        self.lock().closed = true;
        self.room.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::readable_now;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn done(token: Token) -> ClientEvent {
        ClientEvent::Completed {
            token,
            result: Ok(Default::default()),
        }
    }

    fn token_of(e: ClientEvent) -> Token {
        match e {
            ClientEvent::Completed { token, .. } => token,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn the_descriptor_is_readable_exactly_while_events_wait() {
        let q = EventQueue::new(8).unwrap();
        assert!(!readable_now(q.fd()));
        assert!(q.push(done(1)));
        assert!(q.push(done(2)));
        assert!(readable_now(q.fd()));
        assert_eq!(token_of(q.pop().unwrap()), 1);
        assert!(readable_now(q.fd()), "one event still waits");
        assert_eq!(token_of(q.pop().unwrap()), 2);
        assert!(!readable_now(q.fd()));
        assert!(q.pop().is_none());
        assert!(q.push(done(3)));
        assert!(readable_now(q.fd()));
    }

    #[test]
    fn the_wakeup_hook_runs_on_each_empty_to_non_empty_transition_and_when_set_late() {
        let q = EventQueue::new(8).unwrap();
        assert!(q.push(done(1)));
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        q.set_wakeup(Some(Arc::new(move || {
            c.fetch_add(1, Ordering::SeqCst);
        })));
        assert_eq!(calls.load(Ordering::SeqCst), 1, "set while an event waited");
        assert!(q.push(done(2)));
        assert_eq!(calls.load(Ordering::SeqCst), 1, "the queue was not empty");
        q.pop();
        q.pop();
        assert!(q.push(done(3)));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_full_queue_blocks_the_producer_until_a_pop_makes_room() {
        let q = Arc::new(EventQueue::new(2).unwrap());
        assert!(q.push(done(1)));
        assert!(q.push(done(2)));
        let producer = {
            let q = q.clone();
            std::thread::spawn(move || q.push(done(3)))
        };
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(q.len(), 2, "the third event waits for room");
        assert_eq!(token_of(q.pop().unwrap()), 1);
        assert!(producer.join().unwrap());
        let rest: Vec<_> = std::iter::from_fn(|| q.pop()).map(token_of).collect();
        assert_eq!(rest, [2, 3]);
    }

    #[test]
    fn closing_releases_a_blocked_producer_and_refuses_later_events() {
        let q = Arc::new(EventQueue::new(1).unwrap());
        assert!(q.push(done(1)));
        let producer = {
            let q = q.clone();
            std::thread::spawn(move || q.push(done(2)))
        };
        std::thread::sleep(Duration::from_millis(50));
        q.close();
        assert!(!producer.join().unwrap());
        assert!(!q.push(done(3)));
    }
}
