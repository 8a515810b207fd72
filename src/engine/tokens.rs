//! The token table: every asynchronous operation gets a 64-bit token, unique for the client's life,
//! that can be polled or waited on.
//!
//! Memory stays bounded when the application never looks at its tokens: pending tokens are bounded by
//! what is queued, and only the most recent `history` completed results are kept. An older completed
//! token reports [`TokenState::Expired`]: it is known to have finished, its result is no longer kept.
use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::Error;
use crate::codec::Properties;
use crate::fxhash::FxHashMap;

pub type Token = u64;

/// What a successful operation returned besides "done".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// CONNACK: `[session_present]`; SUBACK: one return code per filter (0, 1, 2 or 0x80).
    pub codes: Vec<u8>,
    /// MQTT 5: the acknowledgement's properties (CONNACK: the broker's limits and assignments;
    /// others: a reason string, user properties). Empty in 3.1.1.
    pub properties: Properties,
}

pub type TokenResult = Result<Outcome, Error>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenState {
    Pending,
    Done(TokenResult),
    /// Completed so long ago that its result was dropped (see the module doc).
    Expired,
    /// Never issued by this client.
    Unknown,
}

pub struct Tokens {
    table: Mutex<Table>,
    done: Condvar,
    history: usize,
}

/// One token's entry, small because the table holds up to `history` of them (and, churned by
/// removals, twice as many buckets): a result (64 bytes) is boxed, and only when it says more than
/// plain success, which most do not.
enum Slot {
    Pending,
    Succeeded,
    Done(Box<TokenResult>),
}

impl Slot {
    fn done(result: TokenResult) -> Slot {
        match result {
            Ok(o) if o.codes.is_empty() && o.properties.is_empty() => Slot::Succeeded,
            other => Slot::Done(Box::new(other)),
        }
    }
}

struct Table {
    next: Token,
    slots: FxHashMap<Token, Slot>,
    completed: VecDeque<Token>,
    /// Threads blocked in `wait`; completions skip the (syscall-costly) notify when there are none.
    waiters: usize,
}

impl Tokens {
    pub fn new(history: usize) -> Self {
        Tokens {
            table: Mutex::new(Table {
                next: 1,
                slots: FxHashMap::default(),
                completed: VecDeque::new(),
                waiters: 0,
            }),
            done: Condvar::new(),
            history: history.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // A panic elsewhere while holding the lock leaves the table consistent (every mutation is
        // a single insert/remove), so a poisoned lock is still usable.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Issues a new pending token.
    pub fn issue(&self) -> Token {
        let mut t = self.lock();
        let token = t.next;
        t.next += 1;
        t.slots.insert(token, Slot::Pending);
        token
    }

    /// Completes `token` (once; later completions of the same token are ignored).
    pub fn complete(&self, token: Token, result: TokenResult) {
        self.complete_all(std::iter::once((token, result)));
    }

    /// Completes several tokens under one lock.
    pub fn complete_all(&self, results: impl IntoIterator<Item = (Token, TokenResult)>) {
        let mut t = self.lock();
        for (token, result) in results {
            match t.slots.get_mut(&token) {
                Some(slot @ Slot::Pending) => *slot = Slot::done(result),
                _ => continue,
            }
            t.completed.push_back(token);
            while t.completed.len() > self.history {
                if let Some(old) = t.completed.pop_front() {
                    t.slots.remove(&old);
                }
            }
        }
        if t.waiters > 0 {
            self.done.notify_all();
        }
    }

    pub fn state(&self, token: Token) -> TokenState {
        Self::state_in(&self.lock(), token)
    }

    fn state_in(t: &Table, token: Token) -> TokenState {
        match t.slots.get(&token) {
            Some(Slot::Pending) => TokenState::Pending,
            Some(Slot::Succeeded) => TokenState::Done(Ok(Outcome::default())),
            Some(Slot::Done(r)) => TokenState::Done((**r).clone()),
            None if token != 0 && token < t.next => TokenState::Expired,
            None => TokenState::Unknown,
        }
    }

    /// Waits until `token` is no longer pending or `timeout` passes (then returns `Pending`).
    pub fn wait(&self, token: Token, timeout: Duration) -> TokenState {
        let deadline = Instant::now() + timeout;
        let mut t = self.lock();
        loop {
            let state = Self::state_in(&t, token);
            let now = Instant::now();
            if state != TokenState::Pending || now >= deadline {
                return state;
            }
            t.waiters += 1;
            t = self
                .done
                .wait_timeout(t, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            t.waiters -= 1;
        }
    }

    /// Tokens still pending, oldest first.
    pub fn pending(&self) -> Vec<Token> {
        let t = self.lock();
        let mut v: Vec<Token> = t
            .slots
            .iter()
            .filter(|(_, s)| matches!(s, Slot::Pending))
            .map(|(k, _)| *k)
            .collect();
        v.sort_unstable();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn tokens_are_unique_and_never_zero() {
        let t = Tokens::new(8);
        let a = t.issue();
        let b = t.issue();
        assert_ne!(a, 0);
        assert!(b > a);
        assert_eq!(t.state(a), TokenState::Pending);
        assert_eq!(t.state(0), TokenState::Unknown);
        assert_eq!(t.state(b + 1), TokenState::Unknown);
    }

    #[test]
    fn a_slot_is_two_words() {
        assert!(std::mem::size_of::<Slot>() <= 16);
    }

    #[test]
    fn plain_success_and_fuller_results_read_back_as_completed() {
        let t = Tokens::new(8);
        let (a, b, c) = (t.issue(), t.issue(), t.issue());
        let granted = Outcome {
            codes: vec![1, 0x80],
            ..Outcome::default()
        };
        t.complete(a, Ok(Outcome::default()));
        t.complete(b, Ok(granted.clone()));
        t.complete(c, Err(Error::Cancelled));
        assert_eq!(t.state(a), TokenState::Done(Ok(Outcome::default())));
        assert_eq!(t.state(b), TokenState::Done(Ok(granted)));
        assert_eq!(t.state(c), TokenState::Done(Err(Error::Cancelled)));
    }

    #[test]
    fn completion_is_recorded_once() {
        let t = Tokens::new(8);
        let a = t.issue();
        t.complete(a, Err(Error::Cancelled));
        t.complete(a, Ok(Outcome::default()));
        assert_eq!(t.state(a), TokenState::Done(Err(Error::Cancelled)));
    }

    #[test]
    fn history_is_bounded_and_old_results_expire() {
        let t = Tokens::new(4);
        let ids: Vec<_> = (0..100).map(|_| t.issue()).collect();
        for &id in &ids {
            t.complete(id, Ok(Outcome::default()));
        }
        assert!(t.lock().slots.len() <= 4);
        assert_eq!(t.state(ids[0]), TokenState::Expired);
        assert_eq!(t.state(ids[99]), TokenState::Done(Ok(Outcome::default())));
    }

    #[test]
    fn wait_times_out_while_pending_and_wakes_on_completion() {
        let t = Arc::new(Tokens::new(8));
        let a = t.issue();
        assert_eq!(t.wait(a, Duration::from_millis(20)), TokenState::Pending);
        let t2 = t.clone();
        let h = std::thread::spawn(move || t2.wait(a, Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(20));
        t.complete(
            a,
            Ok(Outcome {
                codes: vec![1],
                ..Outcome::default()
            }),
        );
        assert_eq!(
            h.join().unwrap(),
            TokenState::Done(Ok(Outcome {
                codes: vec![1],
                ..Outcome::default()
            }))
        );
    }
}
