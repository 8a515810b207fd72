//! A loop the application runs itself (libmosquitto's `mosquitto_loop` model). Clients made with
//! one have no threads of their own: their connections advance, and their callbacks run, only
//! while some thread is inside [`Loop::run`] (or a wait on one of their tokens, which runs the
//! loop meanwhile). One thread can then serve several clients with no hand-off between threads:
//! a request/reply round trip costs one wakeup instead of three.
//!
//! Each client's connection task sits in a [`Slot`] rather than directly in the runtime, so that
//! closing a client from outside the loop drops its connection at once (socket closed, handlers
//! released), whether or not anyone runs the loop again.
//!
//! A task woken while no thread runs the loop (a command queued by `mqttc_publish` between runs)
//! is woken for real only when the next run starts: tokio would otherwise signal its eventfd,
//! and the run would spend a system call on each side of it (a `write`, and an `epoll_wait` that
//! finds only that) for a task it would have polled anyway.
//!
//! An application may instead drive the loop from its own poll loop (libmosquitto's
//! `mosquitto_socket` and `mosquitto_loop_misc`): it waits on the reactor's epoll descriptor
//! ([`Loop::fd`]) for as long as [`Loop::timeout`] allows, then runs what is ready
//! ([`Loop::run_ready`]). Wakes then go to tokio at once, so that its signal makes the
//! descriptor readable, and the timers of the connection tasks tell the loop their deadlines
//! (see [`timer`](super::timer)), which tokio keeps to itself.
use std::cell::Cell;
use std::future::Future;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Poll, Wake, Waker};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::timer::{self, Deadlines};

/// How many times a run that waits for nothing goes round the tasks and the reactor while they
/// still have work: a task that keeps waking itself must not hold the caller for ever (the loop
/// then has work at once, which `Loop::timeout` says).
const READY_PASSES: usize = 64;

/// Tokio fires a timer at the first tick of its millisecond clock at or after the deadline.
const TICK: Duration = Duration::from_millis(1);

#[derive(Debug)]
pub struct Loop {
    /// `None` only while being dropped.
    runtime: Option<tokio::runtime::Runtime>,
    /// Signalled when something reached the application (a callback ran, a token completed):
    /// what [`Loop::run`] returns for.
    activity: Arc<Notify>,
    gate: Arc<Gate>,
    /// The last run's timer, for the next run to move forward: tokio then only updates its
    /// deadline, where a new timer is added to its wheel and taken out again, each under the
    /// driver's lock, on every run (a latency test runs once per round trip).
    spare_timer: Mutex<Option<Pin<Box<tokio::time::Sleep>>>>,
    /// The deadlines of the timers its tasks wait on.
    deadlines: Arc<Deadlines>,
    /// A copy of the reactor's epoll descriptor, once the application asked for it.
    fd: OnceLock<OwnedFd>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Holds back the wakes of the loop's tasks while no thread runs it (see the module docs).
#[derive(Debug, Default)]
struct Gate {
    /// Threads inside `run_until` (the ones past the first each wait for the first). Raised only
    /// under `held`'s lock, so a wake that finds it 0 there is taken by the next run.
    runners: AtomicUsize,
    held: Mutex<Vec<Waker>>,
    /// Tasks woken and not polled since, held here or queued in tokio: the loop has work.
    woken: AtomicUsize,
    /// The application waits on the reactor's descriptor, which only tokio's own wake signals:
    /// nothing is held back any more.
    open: AtomicBool,
}

impl Gate {
    fn wake(&self, task: &Waker) {
        // While the loop runs (every wake from its own sockets and timers), no lock: a wake let
        // through just as the run ends only costs the eventfd signal it would have cost anyway.
        if self.runners.load(Ordering::SeqCst) == 0 && !self.open.load(Ordering::SeqCst) {
            let mut held = lock(&self.held);
            if self.runners.load(Ordering::SeqCst) == 0 {
                if !held.iter().any(|w| w.will_wake(task)) {
                    held.push(task.clone());
                }
                return;
            }
        }
        task.wake_by_ref();
    }

    /// A run starts: what was held back is its to wake.
    fn open(&self) -> Vec<Waker> {
        let mut held = lock(&self.held);
        self.runners.fetch_add(1, Ordering::SeqCst);
        std::mem::take(&mut held)
    }

    fn close(&self) {
        self.runners.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The waker a task in a [`Slot`] is polled with: it wakes the task's own (tokio's) waker
/// through the gate.
struct GatedWaker {
    gate: Arc<Gate>,
    task: Mutex<Option<Waker>>,
    /// IDLE, SCHEDULED (woken and not polled since: counted in `Gate::woken`) or ENDED.
    state: AtomicU8,
}

const IDLE: u8 = 0;
const SCHEDULED: u8 = 1;
/// The task ended: a waker it left behind (in a signal its client keeps) is not work.
const ENDED: u8 = 2;

impl GatedWaker {
    /// The task is about to be polled: what woke it is being handled.
    fn polling(&self) {
        if self
            .state
            .compare_exchange(SCHEDULED, IDLE, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            self.gate.woken.fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn ended(&self) {
        if self.state.swap(ENDED, Ordering::SeqCst) == SCHEDULED {
            self.gate.woken.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Wake for GatedWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        match self
            .state
            .compare_exchange(IDLE, SCHEDULED, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => self.gate.woken.fetch_add(1, Ordering::SeqCst),
            Err(ENDED) => return,
            Err(_) => 0,
        };
        if let Some(task) = lock(&self.task).as_ref() {
            self.gate.wake(task);
        }
    }
}

/// `Loop::run` was called where it cannot run: inside a callback, which the loop itself is running.
#[derive(Debug, PartialEq, Eq)]
pub struct Nested;

thread_local! {
    /// This thread is inside `Loop::run` (of any loop): tokio cannot nest one runtime in another,
    /// and blocking here would stall the very loop that must make progress.
    static RUNNING: Cell<bool> = const { Cell::new(false) };
}

pub(super) type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A client's connection task, polled by the loop through the slot's lock.
#[derive(Clone)]
pub(super) struct Slot(Arc<Mutex<Option<Task>>>);

impl Slot {
    pub(super) fn new(task: Task) -> Slot {
        Slot(Arc::new(Mutex::new(Some(task))))
    }

    /// Polls the task; ready once it ended or was closed.
    pub(super) fn poll(&self, cx: &mut std::task::Context<'_>) -> Poll<()> {
        let mut task = lock(&self.0);
        let Some(t) = task.as_mut() else {
            return Poll::Ready(()); // closed from outside
        };
        let done = t.as_mut().poll(cx);
        if done.is_ready() {
            *task = None;
        }
        done
    }

    /// Drops the task now, unless this thread is running a loop, which may be inside that very
    /// task (a callback closing its own client): then the task, already told to stop, ends at its
    /// next poll.
    pub fn close(&self) {
        if !RUNNING.get() {
            // Dropped after the lock is let go: what the task holds may run application code
            // (a lent payload's release), which may call the library.
            let task = lock(&self.0).take();
            drop(task);
        }
    }
}

/// This thread runs a loop; the timers its tasks poll count in the loop's deadlines.
struct Running {
    _timers: timer::Running,
}

impl Running {
    /// Refused inside this loop's callbacks, and inside any other runtime (a callback on a
    /// network thread of a client without a loop), which tokio would not nest.
    fn enter(deadlines: &Arc<Deadlines>) -> Result<Running, Nested> {
        if tokio::runtime::Handle::try_current().is_ok() || RUNNING.replace(true) {
            return Err(Nested);
        }
        Ok(Running {
            _timers: timer::Running::new(deadlines),
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.set(false);
    }
}

impl Loop {
    pub fn new() -> std::io::Result<Arc<Loop>> {
        Ok(Arc::new(Loop {
            runtime: Some(tokio::runtime::Builder::new_current_thread().enable_all().build()?),
            activity: Arc::new(Notify::new()),
            gate: Arc::default(),
            spare_timer: Mutex::new(None),
            deadlines: Arc::default(),
            fd: OnceLock::new(),
        }))
    }

    /// True on a thread inside `run` (any loop's) or inside another runtime: blocking waits are
    /// refused there.
    pub fn running_here() -> bool {
        RUNNING.get() || tokio::runtime::Handle::try_current().is_ok()
    }

    pub(super) fn activity(&self) -> Arc<Notify> {
        self.activity.clone()
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("the runtime is taken only by drop")
    }

    /// Starts a client's connection task; it makes progress only inside `run`.
    pub(super) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) -> Slot {
        let slot = Slot::new(Box::pin(task));
        let polled = slot.clone();
        let gated = Arc::new(GatedWaker {
            gate: self.gate.clone(),
            task: Mutex::new(None),
            // Tokio polls a new task once: until then the loop has work.
            state: AtomicU8::new(SCHEDULED),
        });
        self.gate.woken.fetch_add(1, Ordering::SeqCst);
        let waker = Waker::from(gated.clone());
        self.runtime().spawn(std::future::poll_fn(move |cx| {
            {
                let mut own = lock(&gated.task);
                if !own.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    *own = Some(cx.waker().clone());
                }
            }
            gated.polling();
            let done = polled.poll(&mut std::task::Context::from_waker(&waker));
            if done.is_ready() {
                gated.ended();
            }
            done
        }));
        slot
    }

    /// Runs the loop until something reaches the application (a callback ran, a token completed,
    /// an event was queued) or `timeout` passes. With a timeout of 0 it handles everything that
    /// is ready without waiting ([`Loop::run_ready`]).
    pub fn run(&self, timeout: Duration) -> Result<(), Nested> {
        if timeout.is_zero() {
            return self.run_ready();
        }
        // Done at the second look, which comes only after some activity (or the deadline).
        let looked = Cell::new(false);
        self.run_until(Instant::now() + timeout, || looked.replace(true))
            .map(drop)
    }

    /// Runs the loop until `done()` holds or `deadline` passes; returns `done()`. A deadline
    /// already past still gets one pass over what is ready.
    pub fn run_until(&self, deadline: Instant, done: impl Fn() -> bool) -> Result<bool, Nested> {
        let _running = Running::enter(&self.deadlines)?;
        let (_open, held) = Open::new(&self.gate);
        Ok(self.runtime().block_on(async {
            // On the loop's own thread now, so these wakes only queue their tasks.
            for task in held {
                task.wake();
            }
            if deadline <= Instant::now() {
                // One pass over what is ready, the sockets included, with no time to wait: tokio
                // polls a yielded future again only after it has polled for I/O. (With time to
                // wait, the wait itself polls for I/O; a yield would cost a system call per run.)
                tokio::task::yield_now().await;
            }
            let mut timer = SpareTimer::take(&self.spare_timer, deadline);
            let mut sleep = timer.sleep();
            loop {
                // Registered before `done` is checked: activity in between is not missed.
                let activity = self.activity.notified();
                tokio::pin!(activity);
                activity.as_mut().enable();
                if done() {
                    return true;
                }
                tokio::select! {
                    biased;
                    _ = activity => {}
                    _ = sleep.as_mut() => return done(),
                }
            }
        }))
    }

    /// Runs what is ready and returns without waiting: the tasks woken since the last run, what
    /// the sockets have, the timers due, and whatever that wakes in turn, until a pass over the
    /// tasks and the reactor finds nothing more (at most [`READY_PASSES`] passes).
    pub fn run_ready(&self) -> Result<(), Nested> {
        let _running = Running::enter(&self.deadlines)?;
        let (_open, held) = Open::new(&self.gate);
        self.runtime().block_on(async {
            for task in held {
                task.wake();
            }
            for _ in 0..READY_PASSES {
                // Tokio polls a yielded future again once it has run the tasks queued and polled
                // the reactor (sockets and timers) without waiting: what that woke is queued, and
                // counted, by then.
                tokio::task::yield_now().await;
                if self.gate.woken.load(Ordering::SeqCst) == 0 {
                    break;
                }
            }
        });
        Ok(())
    }

    /// The reactor's epoll descriptor, readable while the loop has I/O to handle or a task was
    /// woken from another thread (through tokio's own wake-up eventfd, watched there too): for
    /// the application to wait on, with [`Loop::timeout`], before [`Loop::run_ready`]. Owned by
    /// the loop. From the first call on, wakes are no longer held back between runs.
    pub fn fd(&self) -> std::io::Result<RawFd> {
        if let Some(fd) = self.fd.get() {
            return Ok(fd.as_raw_fd());
        }
        let found = {
            let _inside = self.runtime().enter();
            // A socket registered with the reactor, which no other epoll instance watches.
            let (probe, _) = std::os::unix::net::UnixDatagram::pair()?;
            probe.set_nonblocking(true)?;
            let probe = tokio::net::UnixDatagram::from_std(probe)?;
            crate::sys::epoll_watching(probe.as_fd())?
        };
        self.gate.open.store(true, Ordering::SeqCst);
        // Of two racing first calls, one copy stays; the other is closed here.
        let _ = self.fd.set(found);
        Ok(self.fd.get().expect("set above").as_raw_fd())
    }

    /// How long the application may wait on [`Loop::fd`] before it must run the loop for a timer
    /// (a keep-alive, a reconnect's backoff, a timeout): zero when it has work already, None when
    /// no timer is running.
    pub fn timeout(&self) -> Option<Duration> {
        if self.gate.woken.load(Ordering::SeqCst) > 0 {
            return Some(Duration::ZERO);
        }
        let first = self.deadlines.first()?;
        Some((first + TICK).saturating_duration_since(tokio::time::Instant::now()))
    }
}

/// A run's timer, taken from [`Loop::spare_timer`] (or new when another run holds it) and put
/// back when the run ends. Made inside the runtime, which a new timer needs.
struct SpareTimer<'a> {
    slot: &'a Mutex<Option<Pin<Box<tokio::time::Sleep>>>>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<'a> SpareTimer<'a> {
    fn take(slot: &'a Mutex<Option<Pin<Box<tokio::time::Sleep>>>>, deadline: Instant) -> SpareTimer<'a> {
        let deadline = deadline.into();
        let sleep = match lock(slot).take() {
            Some(mut sleep) => {
                sleep.as_mut().reset(deadline);
                sleep
            }
            None => Box::pin(tokio::time::sleep_until(deadline)),
        };
        SpareTimer {
            slot,
            sleep: Some(sleep),
        }
    }

    fn sleep(&mut self) -> Pin<&mut tokio::time::Sleep> {
        self.sleep.as_mut().expect("taken only by drop").as_mut()
    }
}

impl Drop for SpareTimer<'_> {
    fn drop(&mut self) {
        *lock(self.slot) = self.sleep.take();
    }
}

/// The gate held open for the length of a run.
struct Open<'a>(&'a Gate);

impl<'a> Open<'a> {
    /// Also returns the wakes held back until now.
    fn new(gate: &'a Gate) -> (Open<'a>, Vec<Waker>) {
        (Open(gate), gate.open())
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        // Not waiting for the blocking pool: a name lookup stuck there must not hold this up.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_returns_when_a_task_signals_activity() {
        let lp = Loop::new().unwrap();
        let activity = lp.activity();
        let polls = Arc::new(AtomicUsize::new(0));
        let p = polls.clone();
        let _slot = lp.spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            p.fetch_add(1, Ordering::SeqCst);
            activity.notify_waiters();
            std::future::pending::<()>().await;
        });
        let start = Instant::now();
        lp.run(Duration::from_secs(5)).unwrap();
        assert_eq!(polls.load(Ordering::SeqCst), 1);
        assert!(start.elapsed() < Duration::from_secs(4), "run waited for its timeout");
    }

    #[test]
    fn run_waits_out_its_timeout_when_nothing_happens() {
        let lp = Loop::new().unwrap();
        let start = Instant::now();
        lp.run(Duration::from_millis(30)).unwrap();
        assert!(start.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn run_until_stops_once_done_holds() {
        let lp = Loop::new().unwrap();
        let activity = lp.activity();
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        let _slot = lp.spawn(async move {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_millis(5)).await;
                c.fetch_add(1, Ordering::SeqCst);
                activity.notify_waiters();
            }
            std::future::pending::<()>().await;
        });
        let reached = lp
            .run_until(Instant::now() + Duration::from_secs(5), || {
                count.load(Ordering::SeqCst) == 3
            })
            .unwrap();
        assert!(reached);
        assert!(!lp.run_until(Instant::now(), || false).unwrap());
    }

    #[test]
    fn a_run_inside_a_run_is_refused() {
        let lp = Loop::new().unwrap();
        let inner = lp.clone();
        let nested = Arc::new(Mutex::new(None));
        let seen = nested.clone();
        let activity = lp.activity();
        let _slot = lp.spawn(async move {
            *seen.lock().unwrap() = Some(inner.run(Duration::ZERO));
            activity.notify_waiters();
        });
        lp.run(Duration::from_secs(5)).unwrap();
        assert_eq!(*nested.lock().unwrap(), Some(Err(Nested)));
        assert!(!Loop::running_here(), "the flag is cleared when run returns");
    }

    #[test]
    fn a_run_inside_another_runtime_is_refused_not_a_panic() {
        let lp = Loop::new().unwrap();
        let other = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let inside = other.block_on(async { (Loop::running_here(), lp.run(Duration::ZERO)) });
        assert_eq!(inside, (true, Err(Nested)));
        assert!(!Loop::running_here());
    }

    /// A task that takes numbers from a channel, keeping the last, and reports each as activity.
    fn receiver(lp: &Loop) -> (tokio::sync::mpsc::UnboundedSender<usize>, Arc<AtomicUsize>, Slot) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let last = Arc::new(AtomicUsize::new(0));
        let (l, activity) = (last.clone(), lp.activity());
        let slot = lp.spawn(async move {
            while let Some(n) = rx.recv().await {
                l.store(n, Ordering::SeqCst);
                activity.notify_waiters();
            }
        });
        (tx, last, slot)
    }

    #[test]
    fn a_wake_between_runs_is_held_until_the_next_run_starts() {
        let lp = Loop::new().unwrap();
        let (tx, last, _slot) = receiver(&lp);
        lp.run(Duration::ZERO).unwrap(); // the task now waits on its channel
        tx.send(7).unwrap();
        assert_eq!(
            lock(&lp.gate.held).len(),
            1,
            "no thread runs the loop: the wake is held"
        );
        lp.run(Duration::ZERO).unwrap();
        assert_eq!(last.load(Ordering::SeqCst), 7, "the held wake was delivered by the run");
        assert!(lock(&lp.gate.held).is_empty());
    }

    #[test]
    fn a_wake_from_another_thread_during_a_run_goes_through_at_once() {
        let lp = Loop::new().unwrap();
        let (tx, last, _slot) = receiver(&lp);
        lp.run(Duration::ZERO).unwrap();
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            tx.send(9).unwrap();
            tx // kept open, so the task does not end
        });
        let start = Instant::now();
        lp.run(Duration::from_secs(5)).unwrap();
        assert_eq!(last.load(Ordering::SeqCst), 9);
        assert!(
            start.elapsed() < Duration::from_secs(4),
            "the run slept through the wake"
        );
        drop(sender.join().unwrap());
    }

    #[test]
    fn a_run_without_waiting_follows_a_chain_of_wakes_and_never_waits_for_a_timer() {
        let lp = Loop::new().unwrap();
        let (tx, last, _slot) = receiver(&lp);
        // A relay: what it takes, it passes on to the receiver; meanwhile it waits on a timer due
        // in 30 s, which a run that waits for nothing must not wait for.
        let (relay_tx, mut relay_rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
        let _relay = lp.spawn(async move {
            let mut later = timer::Sleep::after(Duration::from_secs(30));
            loop {
                tokio::select! {
                    n = relay_rx.recv() => match n {
                        Some(n) => tx.send(n).unwrap(),
                        None => return,
                    },
                    () = &mut later => unreachable!("the run waited for a timer"),
                }
            }
        });
        lp.run_ready().unwrap();
        relay_tx.send(5).unwrap();
        let start = Instant::now();
        lp.run_ready().unwrap();
        assert_eq!(
            last.load(Ordering::SeqCst),
            5,
            "the relay's wake of the receiver ran too"
        );
        assert!(start.elapsed() < Duration::from_millis(500), "{:?}", start.elapsed());
        assert_eq!(lp.gate.woken.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_waker_an_ended_task_left_behind_is_no_work() {
        let lp = Loop::new().unwrap();
        let left = Arc::new(Mutex::new(None::<Waker>));
        let l = left.clone();
        let _slot = lp.spawn(std::future::poll_fn(move |cx| {
            *l.lock().unwrap() = Some(cx.waker().clone());
            Poll::Ready(())
        }));
        lp.run_ready().unwrap();
        assert_eq!(lp.timeout(), None);
        left.lock().unwrap().take().unwrap().wake();
        assert_eq!(lp.timeout(), None, "a wake after the end counts for nothing");
    }

    #[test]
    fn the_timeout_is_zero_with_work_then_the_earliest_timer_then_none() {
        let lp = Loop::new().unwrap();
        let activity = lp.activity();
        let _slot = lp.spawn(async move {
            timer::Sleep::after(Duration::from_millis(200)).await;
            activity.notify_waiters();
        });
        assert_eq!(lp.timeout(), Some(Duration::ZERO), "a new task is yet to run");
        lp.run_ready().unwrap();
        let t = lp.timeout().unwrap();
        assert!(
            t > Duration::from_millis(150) && t <= Duration::from_millis(201),
            "{t:?}"
        );
        std::thread::sleep(t);
        assert_eq!(lp.timeout(), Some(Duration::ZERO), "the timer is due");
        lp.run_ready().unwrap();
        assert_eq!(lp.timeout(), None, "the task ended: no timer, no work");
    }

    #[test]
    fn the_descriptor_is_readable_when_a_socket_is_and_when_another_thread_gives_work() {
        let lp = Loop::new().unwrap();
        let fd = lp.fd().unwrap();
        assert_eq!(lp.fd().unwrap(), fd, "the same descriptor every time");
        let (mine, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        theirs.set_nonblocking(true).unwrap();
        let got = Arc::new(AtomicUsize::new(0));
        let g = got.clone();
        let _reader = lp.spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut s = tokio::net::UnixStream::from_std(theirs).unwrap();
            let mut buf = [0u8; 16];
            while let Ok(n @ 1..) = s.read(&mut buf).await {
                g.fetch_add(n, Ordering::SeqCst);
            }
        });
        let (tx, last, _slot) = receiver(&lp);
        lp.run_ready().unwrap();
        let wait_readable = || {
            let until = Instant::now() + Duration::from_secs(5);
            while !crate::sys::readable_now(fd) {
                assert!(Instant::now() < until, "the descriptor stayed quiet");
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        assert!(!crate::sys::readable_now(fd), "nothing to do yet");
        std::io::Write::write_all(&mut &mine, b"abc").unwrap();
        wait_readable();
        lp.run_ready().unwrap();
        assert_eq!(got.load(Ordering::SeqCst), 3);
        assert!(!crate::sys::readable_now(fd), "handled");
        std::thread::spawn(move || tx.send(11).unwrap()).join().unwrap();
        wait_readable();
        lp.run_ready().unwrap();
        assert_eq!(last.load(Ordering::SeqCst), 11);
        assert!(!crate::sys::readable_now(fd), "handled");
    }

    #[test]
    fn closing_a_slot_outside_the_loop_drops_its_task_at_once() {
        let lp = Loop::new().unwrap();
        let held = Arc::new(());
        let in_task = held.clone();
        let slot = lp.spawn(async move {
            let _keep = in_task;
            std::future::pending::<()>().await;
        });
        assert_eq!(Arc::strong_count(&held), 2);
        slot.close();
        assert_eq!(Arc::strong_count(&held), 1, "the task's future was dropped by close");
        lp.run(Duration::ZERO).unwrap(); // the emptied slot's task ends quietly
    }
}
