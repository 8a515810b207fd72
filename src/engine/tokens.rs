//! The token table: every asynchronous operation gets a 64-bit token, unique for the client's life,
//! that can be polled or waited on.
//!
//! Memory stays bounded when the application never looks at its tokens: pending tokens are bounded by
//! what is queued, and only the most recent `history` completed results are kept. An older completed
//! token reports [`TokenState::Expired`]: it is known to have finished, its result is no longer kept.
//!
//! The table also keeps the outgoing budget (see [`Limits`]): a publish, subscribe or unsubscribe
//! is counted from the call that accepts it until its token completes, wherever it waits
//! meanwhile, so the count cannot drift from what is really held.
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
    /// Signalled when a counted token completes while a caller waits for room.
    room: Condvar,
    history: usize,
}

/// How much the operations accepted but not yet completed may hold: messages, and bytes of
/// topic and payload (MQTT's own framing aside).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub messages: usize,
    pub bytes: usize,
}

/// What [`Tokens::issue_counted`] could not admit: what is held now, and the limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full {
    pub held: Limits,
    pub limits: Limits,
}

/// One token's entry, small because the table holds up to `history` of them (and, churned by
/// removals, twice as many buckets): a result (64 bytes) is boxed, and only when it says more than
/// plain success, which most do not.
enum Slot {
    Pending,
    /// Pending, and counted against the outgoing budget with this many bytes.
    Counted(u32),
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

    fn pending(&self) -> bool {
        matches!(self, Slot::Pending | Slot::Counted(_))
    }
}

struct Table {
    next: Token,
    slots: FxHashMap<Token, Slot>,
    completed: VecDeque<Token>,
    /// Threads blocked in `wait`; completions skip the (syscall-costly) notify when there are none.
    waiters: usize,
    /// What the `Counted` slots hold in all.
    held: Limits,
    /// Threads blocked in `issue_counted`, as `waiters`.
    room_waiters: usize,
}

impl Table {
    fn fits(&self, bytes: usize, limits: Limits) -> bool {
        self.held.messages < limits.messages && self.held.bytes.saturating_add(bytes) <= limits.bytes
    }
}

impl Tokens {
    pub fn new(history: usize) -> Self {
        Tokens {
            table: Mutex::new(Table {
                next: 1,
                slots: FxHashMap::default(),
                completed: VecDeque::new(),
                waiters: 0,
                held: Limits { messages: 0, bytes: 0 },
                room_waiters: 0,
            }),
            done: Condvar::new(),
            room: Condvar::new(),
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
        Self::insert(&mut self.lock(), Slot::Pending)
    }

    fn insert(t: &mut Table, slot: Slot) -> Token {
        let token = t.next;
        t.next += 1;
        t.slots.insert(token, slot);
        token
    }

    /// Issues a pending token for an operation holding `bytes`, counted against `limits` until it
    /// completes. When that would exceed them, waits for room until `deadline` (not at all for
    /// `None`); then fails, having counted nothing. An operation larger than `limits.bytes` alone
    /// fails at once.
    pub fn issue_counted(&self, bytes: usize, limits: Limits, deadline: Option<Instant>) -> Result<Token, Full> {
        let mut t = self.lock();
        loop {
            if t.fits(bytes, limits) {
                // What the slot records is what completion gives back, so the two always agree.
                // An MQTT packet holds at most 256 MiB; only an operation the codec will refuse
                // anyway could be larger, and then counts as 4 GiB.
                let counted = u32::try_from(bytes).unwrap_or(u32::MAX);
                t.held.messages += 1;
                t.held.bytes += counted as usize;
                return Ok(Self::insert(&mut t, Slot::Counted(counted)));
            }
            let now = Instant::now();
            let wait = match deadline {
                Some(d) if d > now && bytes <= limits.bytes => d - now,
                _ => return Err(Full { held: t.held, limits }),
            };
            t.room_waiters += 1;
            t = self.room.wait_timeout(t, wait).unwrap_or_else(|p| p.into_inner()).0;
            t.room_waiters -= 1;
        }
    }

    /// Whether an operation holding `bytes` would be admitted now (for a caller that waits by
    /// running a loop rather than on the table).
    pub fn has_room(&self, bytes: usize, limits: Limits) -> bool {
        self.lock().fits(bytes, limits)
    }

    /// What counted operations hold now.
    pub fn held(&self) -> Limits {
        self.lock().held
    }

    /// Completes `token` (once; later completions of the same token are ignored).
    pub fn complete(&self, token: Token, result: TokenResult) {
        self.complete_all(std::iter::once((token, result)));
    }

    /// Completes several tokens under one lock.
    pub fn complete_all(&self, results: impl IntoIterator<Item = (Token, TokenResult)>) {
        let mut t = self.lock();
        let mut room = false;
        for (token, result) in results {
            let freed = match t.slots.get_mut(&token) {
                Some(slot) if slot.pending() => std::mem::replace(slot, Slot::done(result)),
                _ => continue,
            };
            if let Slot::Counted(bytes) = freed {
                t.held.messages -= 1;
                t.held.bytes -= bytes as usize;
                room = true;
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
        if room && t.room_waiters > 0 {
            self.room.notify_all();
        }
    }

    pub fn state(&self, token: Token) -> TokenState {
        Self::state_in(&self.lock(), token)
    }

    fn state_in(t: &Table, token: Token) -> TokenState {
        match t.slots.get(&token) {
            Some(Slot::Pending | Slot::Counted(_)) => TokenState::Pending,
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
        let mut v: Vec<Token> = t.slots.iter().filter(|(_, s)| s.pending()).map(|(k, _)| *k).collect();
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

    const LIMITS: Limits = Limits {
        messages: 3,
        bytes: 100,
    };

    #[test]
    fn counted_tokens_are_refused_beyond_either_limit_and_free_their_share_on_completion() {
        let t = Tokens::new(8);
        let a = t.issue_counted(60, LIMITS, None).unwrap();
        let full = t.issue_counted(41, LIMITS, None).unwrap_err();
        assert_eq!(full.held, Limits { messages: 1, bytes: 60 });
        let b = t.issue_counted(40, LIMITS, None).unwrap();
        let _c = t.issue_counted(0, LIMITS, None).unwrap();
        assert!(
            t.issue_counted(0, LIMITS, None).is_err(),
            "three messages are the limit"
        );
        assert!(
            t.issue_counted(101, LIMITS, Some(Instant::now() + Duration::from_secs(60)))
                .is_err()
        );
        assert_eq!(t.state(a), TokenState::Pending);
        t.complete(a, Err(Error::Cancelled));
        t.complete(a, Ok(Outcome::default()));
        assert_eq!(t.held(), Limits { messages: 2, bytes: 40 }, "freed once");
        t.complete(b, Ok(Outcome::default()));
        assert!(t.has_room(60, LIMITS));
        assert_eq!(t.pending().len(), 1);
    }

    #[test]
    fn a_counted_issue_waits_for_room_until_its_deadline() {
        let t = Arc::new(Tokens::new(8));
        let held: Vec<_> = (0..3).map(|_| t.issue_counted(1, LIMITS, None).unwrap()).collect();
        let start = Instant::now();
        assert!(
            t.issue_counted(1, LIMITS, Some(start + Duration::from_millis(50)))
                .is_err()
        );
        assert!(start.elapsed() >= Duration::from_millis(50));
        let t2 = t.clone();
        let h = std::thread::spawn(move || t2.issue_counted(1, LIMITS, Some(Instant::now() + Duration::from_secs(10))));
        std::thread::sleep(Duration::from_millis(20));
        t.complete(held[0], Ok(Outcome::default()));
        assert!(h.join().unwrap().is_ok());
        assert_eq!(t.held().messages, 3);
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
