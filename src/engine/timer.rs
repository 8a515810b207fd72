//! The network tasks' timers: tokio's, which also tell the [`Loop`](super::Loop) running them
//! when they are due. A loop driven from the application's own poll loop (`Loop::timeout`) has
//! to say how long it may sleep, and tokio keeps its timers to itself: every timer a connection
//! task waits on is made here, so none is missed. Off a loop they are tokio's alone.
//!
//! A timer counts from its first poll to its last (ready, or dropped), as in tokio's wheel: one
//! made and never polled wakes nobody, so it must not keep the loop awake either. Nor does one
//! set [`NEVER`] away, which stands for none.
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

/// How far away the deadline of a timer is that stands for none (the keep-alive off, a sync not
/// armed), as `select!` wants a timer in every branch.
pub(crate) const NEVER: Duration = Duration::from_secs(86_400 * 365);

/// Deadlines further away than this are placeholders ([`NEVER`]): the timers the options can
/// set run out within 50 days (the longest, a `u32` of milliseconds).
const HORIZON: Duration = Duration::from_secs(86_400 * 100);

/// The deadlines of the timers a loop's tasks wait on.
#[derive(Debug, Default)]
pub(super) struct Deadlines {
    due: Mutex<BTreeSet<(Instant, u64)>>,
    next_id: AtomicU64,
}

impl Deadlines {
    fn set(&self) -> std::sync::MutexGuard<'_, BTreeSet<(Instant, u64)>> {
        self.due.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The earliest deadline of a timer being waited on.
    pub(super) fn first(&self) -> Option<Instant> {
        self.set().first().map(|(at, _)| *at)
    }
}

thread_local! {
    /// The deadlines of the loop this thread is running, while it runs one.
    static RUNNING: RefCell<Option<Arc<Deadlines>>> = const { RefCell::new(None) };
}

/// While held, timers first polled on this thread count in `deadlines`.
pub(super) struct Running(());

impl Running {
    pub(super) fn new(deadlines: &Arc<Deadlines>) -> Running {
        RUNNING.set(Some(deadlines.clone()));
        Running(())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.set(None);
    }
}

/// A timer's entry in its loop's deadlines; removed when dropped.
struct Due {
    deadlines: Arc<Deadlines>,
    key: (Instant, u64),
}

impl Due {
    /// An entry in the deadlines of the loop this thread runs, if it runs one and `at` is not a
    /// placeholder.
    fn register(at: Instant) -> Option<Due> {
        let deadlines = RUNNING.with_borrow(|r| r.clone())?;
        if at > Instant::now() + HORIZON {
            return None;
        }
        let key = (at, deadlines.next_id.fetch_add(1, Ordering::Relaxed));
        deadlines.set().insert(key);
        Some(Due { deadlines, key })
    }

    fn move_to(&mut self, at: Instant) {
        let mut set = self.deadlines.set();
        set.remove(&self.key);
        self.key.0 = at;
        set.insert(self.key);
    }
}

impl Drop for Due {
    fn drop(&mut self) {
        self.deadlines.set().remove(&self.key);
    }
}

/// `tokio::time::Sleep`, known to the loop that runs it.
pub(crate) struct Sleep {
    sleep: Timer,
    due: Option<Due>,
}

/// Tokio's timer, made at the first poll: one a connection never waits on (the store's, without
/// a store) costs every client of a fleet no allocation.
enum Timer {
    Unpolled(Instant),
    Made(Pin<Box<tokio::time::Sleep>>),
}

impl Timer {
    fn deadline(&self) -> Instant {
        match self {
            Timer::Unpolled(at) => *at,
            Timer::Made(sleep) => sleep.deadline(),
        }
    }

    fn made(&mut self) -> Pin<&mut tokio::time::Sleep> {
        if let Timer::Unpolled(at) = *self {
            *self = Timer::Made(Box::pin(tokio::time::sleep_until(at)));
        }
        match self {
            Timer::Made(sleep) => sleep.as_mut(),
            Timer::Unpolled(_) => unreachable!("made above"),
        }
    }
}

impl Sleep {
    pub(crate) fn until(at: Instant) -> Sleep {
        Sleep {
            sleep: Timer::Unpolled(at),
            due: None,
        }
    }

    pub(crate) fn after(delay: Duration) -> Sleep {
        Sleep::until(Instant::now() + delay)
    }

    pub(crate) fn reset(&mut self, at: Instant) {
        match &mut self.sleep {
            Timer::Unpolled(deadline) => *deadline = at,
            Timer::Made(sleep) => sleep.as_mut().reset(at),
        }
        match &mut self.due {
            Some(due) if at <= Instant::now() + HORIZON => due.move_to(at),
            // Counted again, if it counts, at its next poll.
            _ => self.due = None,
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let done = this.sleep.made().poll(cx);
        match done {
            Poll::Ready(()) => this.due = None,
            Poll::Pending if this.due.is_none() => this.due = Due::register(this.sleep.deadline()),
            Poll::Pending => {}
        }
        done
    }
}

/// `fut`'s output, or None once `at` passed first (`tokio::time::timeout_at`).
///
/// `fut` is taken pinned where the caller holds it (`Unpin`, as `Pin<&mut _>` is): an async
/// fn's argument sits in its state, and `select!` moves it again, so a large future given by
/// value (the handshake's) was held three times.
pub(crate) async fn timeout_at<F: Future + Unpin>(at: Instant, fut: F) -> Option<F::Output> {
    let mut timer = Sleep::until(at);
    tokio::select! {
        biased;
        out = fut => Some(out),
        () = &mut timer => None,
    }
}

/// `fut`'s output, or None once `delay` passed first (`tokio::time::timeout`).
pub(crate) async fn timeout<F: Future + Unpin>(delay: Duration, fut: F) -> Option<F::Output> {
    timeout_at(Instant::now() + delay, fut).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Polls `sleep` once, whatever it gives.
    async fn poll_once(sleep: &mut Sleep) {
        std::future::poll_fn(|cx| {
            let _ = Pin::new(&mut *sleep).poll(cx);
            Poll::Ready(())
        })
        .await
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn a_timer_counts_from_its_first_poll_until_it_fires_or_is_dropped() {
        let deadlines = Arc::new(Deadlines::default());
        let rt = runtime();
        let _running = Running::new(&deadlines);
        rt.block_on(async {
            let start = Instant::now();
            let mut late = Sleep::after(Duration::from_secs(60));
            let soon = Sleep::after(Duration::from_millis(20));
            assert_eq!(deadlines.first(), None, "not yet polled");
            tokio::select! {
                biased;
                () = &mut late => unreachable!(),
                () = soon => {}
            }
            assert_eq!(
                deadlines.first(),
                Some(late.sleep.deadline()),
                "the fired timer left, the waiting one stays"
            );
            late.reset(start + Duration::from_secs(5));
            assert_eq!(
                deadlines.first(),
                Some(start + Duration::from_secs(5)),
                "moved by reset"
            );
            late.reset(start + NEVER);
            assert_eq!(deadlines.first(), None, "a placeholder does not count");
            poll_once(&mut late).await;
            assert_eq!(deadlines.first(), None, "nor once polled");
            late.reset(start + Duration::from_secs(5));
            poll_once(&mut late).await;
            assert_eq!(
                deadlines.first(),
                Some(start + Duration::from_secs(5)),
                "counted at its poll"
            );
            drop(late);
            assert_eq!(deadlines.first(), None);
        });
    }

    #[test]
    fn off_a_loop_timers_count_nowhere_and_timeouts_still_run_out() {
        let rt = runtime();
        rt.block_on(async {
            let never = std::future::pending::<()>();
            assert_eq!(timeout(Duration::from_millis(10), never).await, None);
            assert_eq!(
                timeout(Duration::from_secs(10), std::pin::pin!(async { 7 })).await,
                Some(7)
            );
        });
    }
}
