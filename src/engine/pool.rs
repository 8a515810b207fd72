//! A pool of threads that many clients share (Paho C's model, where every client of the process
//! runs on the same two threads): a multi-threaded tokio runtime runs the clients' connection
//! tasks, and a set of callback threads runs their callbacks. A client on a pool has no thread of
//! its own, so 50,000 clients cost the pool's few threads, not 100,000.
//!
//! Callbacks: each client's run in order, one at a time, on whichever callback thread is free,
//! as a [`Job`] (the client's dispatch loop, polled as a future). A callback that blocks holds up
//! its own client, and the thread it runs on: when every callback thread has been busy for
//! [`STALL`] without finishing anything while other clients wait, the pool starts one more (up to
//! [`MAX_CALLBACK_THREADS`]), and the extra ones end after [`IDLE_EXIT`] without work. So a
//! blocked callback delays other clients' callbacks by about `STALL`, not for as long as it
//! blocks.
use std::cell::Cell;
use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use super::run_loop::Slot;

/// How long every callback thread may be busy, with work waiting and none finished, before the
/// pool adds a thread.
pub const STALL: Duration = Duration::from_millis(100);
/// How long an extra callback thread waits for work before it ends.
pub const IDLE_EXIT: Duration = Duration::from_secs(5);
/// Callback threads at most, the extra ones included.
pub const MAX_CALLBACK_THREADS: usize = 64;

use super::run_loop::Task;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

thread_local! {
    /// The job a callback thread is polling (its address), so that a client can tell that a call
    /// comes from inside one of its own callbacks.
    static CURRENT_JOB: Cell<usize> = const { Cell::new(0) };
}

#[derive(Debug)]
pub struct Pool {
    /// `None` only while being dropped.
    runtime: Option<tokio::runtime::Runtime>,
    callbacks: Arc<Callbacks>,
}

impl Pool {
    /// A pool of `threads` network threads and as many callback threads (0: one each per core).
    pub fn new(threads: usize) -> std::io::Result<Arc<Pool>> {
        let threads = match threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("mqttc-pool-net")
            .enable_all()
            .build()?;
        let callbacks = Callbacks::start(threads)?;
        Ok(Arc::new(Pool {
            runtime: Some(runtime),
            callbacks,
        }))
    }

    /// Starts a client's connection task on the network threads.
    pub(super) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) -> Slot {
        let slot = Slot::new(Box::pin(task));
        let polled = slot.clone();
        self.runtime
            .as_ref()
            .expect("taken only by drop")
            .spawn(std::future::poll_fn(move |cx| polled.poll(cx)));
        slot
    }

    /// Starts a client's dispatch loop on the callback threads.
    pub(super) fn spawn_callbacks(&self, task: impl Future<Output = ()> + Send + 'static) -> Arc<Job> {
        let job = Arc::new(Job {
            task: Mutex::new(Some(Box::pin(task))),
            state: AtomicU8::new(IDLE),
            pool: Arc::downgrade(&self.callbacks),
        });
        job.schedule();
        job
    }

    /// The callback threads running now (for tests).
    pub fn callback_threads(&self) -> usize {
        self.callbacks.threads.load(Ordering::Acquire)
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.callbacks.stop();
        // Not waiting for the blocking pool: a name lookup stuck there must not hold this up.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

const IDLE: u8 = 0;
/// In the ready queue.
const SCHEDULED: u8 = 1;
/// Being polled by a callback thread.
const RUNNING: u8 = 2;
/// Being polled, and woken meanwhile: polled again after.
const NOTIFIED: u8 = 3;

/// A client's dispatch loop on the callback threads: polled by one thread at a time.
pub(super) struct Job {
    task: Mutex<Option<Task>>,
    state: AtomicU8,
    pool: Weak<Callbacks>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job")
    }
}

impl Job {
    fn schedule(self: &Arc<Self>) {
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            let next = match state {
                IDLE => SCHEDULED,
                RUNNING => NOTIFIED,
                _ => return, // queued already, or will be polled again
            };
            match self
                .state
                .compare_exchange(state, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) if next == SCHEDULED => {
                    if let Some(pool) = self.pool.upgrade() {
                        pool.push(self.clone());
                    }
                    return;
                }
                Ok(_) => return,
                Err(now) => state = now,
            }
        }
    }

    /// True on a callback thread inside this job (a callback of its client).
    pub fn running_here(self: &Arc<Self>) -> bool {
        CURRENT_JOB.get() == Arc::as_ptr(self).addr()
    }

    /// Drops the dispatch loop, waiting for a callback in progress on another thread; inside one
    /// of its own callbacks, it ends by itself once that returns (the client is closed).
    pub fn close(self: &Arc<Self>) {
        if !self.running_here() {
            let task = lock(&self.task).take();
            drop(task); // outside the lock: it may release application data
        }
    }

    /// Polls the task once; returns whether it must be polled again.
    fn run(self: &Arc<Self>) -> bool {
        self.state.store(RUNNING, Ordering::Release);
        let waker = Waker::from(self.clone());
        let previous = CURRENT_JOB.replace(Arc::as_ptr(self).addr());
        let finished = {
            let mut task = lock(&self.task);
            match task.as_mut() {
                None => true,
                Some(t) => {
                    let done = t.as_mut().poll(&mut Context::from_waker(&waker)).is_ready();
                    if done {
                        *task = None;
                    }
                    done
                }
            }
        };
        CURRENT_JOB.set(previous);
        if finished {
            return false;
        }
        self.state
            .compare_exchange(RUNNING, IDLE, Ordering::AcqRel, Ordering::Acquire)
            .is_err_and(|_| {
                self.state.store(SCHEDULED, Ordering::Release);
                true
            })
    }
}

impl Wake for Job {
    fn wake(self: Arc<Self>) {
        self.schedule();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.schedule();
    }
}

/// The callback threads and their ready queue.
#[derive(Debug)]
struct Callbacks {
    queue: Mutex<VecDeque<Arc<Job>>>,
    ready: Condvar,
    /// Threads running, and how many of them wait for work.
    threads: AtomicUsize,
    idle: AtomicUsize,
    /// The threads kept even when idle.
    base: usize,
    /// Polls finished, which the watchdog compares from one look to the next.
    progress: AtomicU64,
    stopped: AtomicBool,
    /// Wakes the watchdog at once when the pool stops.
    watchdog: Condvar,
}

impl Callbacks {
    fn start(base: usize) -> std::io::Result<Arc<Callbacks>> {
        let c = Arc::new(Callbacks {
            queue: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
            threads: AtomicUsize::new(0),
            idle: AtomicUsize::new(0),
            base,
            progress: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
            watchdog: Condvar::new(),
        });
        for _ in 0..base {
            c.add_thread()?;
        }
        let watched = Arc::downgrade(&c);
        std::thread::Builder::new()
            .name("mqttc-pool-watch".into())
            .spawn(move || watch(watched))?;
        Ok(c)
    }

    fn add_thread(self: &Arc<Self>) -> std::io::Result<()> {
        self.threads.fetch_add(1, Ordering::AcqRel);
        let me = self.clone();
        std::thread::Builder::new()
            .name("mqttc-pool-cb".into())
            .spawn(move || me.work())
            .map(drop)
            .inspect_err(|_| {
                self.threads.fetch_sub(1, Ordering::AcqRel);
            })
    }

    fn push(&self, job: Arc<Job>) {
        lock(&self.queue).push_back(job);
        self.ready.notify_one();
    }

    fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        // Dropped outside the lock: a dispatch loop may hold application data.
        let queued: Vec<_> = lock(&self.queue).drain(..).collect();
        drop(queued);
        self.ready.notify_all();
        self.watchdog.notify_all();
    }

    /// A callback thread: polls ready jobs until the pool stops, or, beyond the base count, until
    /// it has waited `IDLE_EXIT` for one.
    fn work(self: Arc<Self>) {
        loop {
            let job = {
                let mut queue = lock(&self.queue);
                loop {
                    if self.stopped.load(Ordering::Acquire) {
                        self.threads.fetch_sub(1, Ordering::AcqRel);
                        return;
                    }
                    if let Some(job) = queue.pop_front() {
                        break job;
                    }
                    self.idle.fetch_add(1, Ordering::AcqRel);
                    let (q, timeout) = self
                        .ready
                        .wait_timeout(queue, IDLE_EXIT)
                        .unwrap_or_else(|p| p.into_inner());
                    queue = q;
                    self.idle.fetch_sub(1, Ordering::AcqRel);
                    let extra = self.threads.load(Ordering::Acquire) > self.base;
                    if timeout.timed_out() && queue.is_empty() && extra {
                        self.threads.fetch_sub(1, Ordering::AcqRel);
                        return;
                    }
                }
            };
            if job.run() {
                self.push(job);
            }
            self.progress.fetch_add(1, Ordering::Release);
        }
    }
}

/// Adds a callback thread whenever, over `STALL`, jobs waited, no thread was idle and none
/// finished a poll: every thread is then stuck in a callback.
fn watch(callbacks: Weak<Callbacks>) {
    let mut last = u64::MAX;
    let parked = Mutex::new(());
    loop {
        let Some(c) = callbacks.upgrade() else { return };
        if c.stopped.load(Ordering::Acquire) {
            return;
        }
        let progress = c.progress.load(Ordering::Acquire);
        let waiting = !lock(&c.queue).is_empty();
        let stuck = waiting && progress == last && c.idle.load(Ordering::Acquire) == 0;
        if stuck && c.threads.load(Ordering::Acquire) < MAX_CALLBACK_THREADS {
            let _ = c.add_thread();
        }
        last = progress;
        let guard = lock(&parked);
        let _ = c.watchdog.wait_timeout(guard, STALL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::mpsc;
    use std::time::Instant;

    /// A future that runs `f` at each poll and is done when it says so.
    fn job(mut f: impl FnMut(&Context<'_>) -> bool + Send + 'static) -> impl Future<Output = ()> + Send {
        std::future::poll_fn(move |cx| {
            if f(cx) {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
    }

    #[test]
    fn a_callback_that_blocks_holds_up_other_clients_for_about_the_stall_only() {
        let pool = Pool::new(1).unwrap();
        let (started, blocking) = mpsc::channel();
        let _stuck = pool.spawn_callbacks(job(move |_| {
            started.send(()).unwrap();
            std::thread::sleep(Duration::from_secs(2));
            true
        }));
        blocking.recv().unwrap();
        let (ran, other) = mpsc::channel();
        let queued = Instant::now();
        let _other = pool.spawn_callbacks(job(move |_| {
            ran.send(queued.elapsed()).unwrap();
            true
        }));
        let waited = other
            .recv_timeout(Duration::from_secs(1))
            .expect("held up as long as the blocked callback");
        assert!(waited >= STALL / 2, "ran after {waited:?}: the only thread was blocked");
        assert!(waited < STALL * 5, "ran after {waited:?}");
        assert_eq!(pool.callback_threads(), 2, "one thread added");
    }

    #[test]
    fn a_job_woken_from_many_threads_is_polled_by_one_at_a_time_and_misses_no_wake() {
        let pool = Pool::new(4).unwrap();
        let inside = Arc::new(AtomicBool::new(false));
        let polls = Arc::new(AtomicUsize::new(0));
        let overlaps = Arc::new(AtomicUsize::new(0));
        let (waker_tx, waker_rx) = mpsc::channel();
        let (i, p, o) = (inside.clone(), polls.clone(), overlaps.clone());
        let job_handle = pool.spawn_callbacks(job(move |cx| {
            if i.swap(true, Ordering::AcqRel) {
                o.fetch_add(1, Ordering::AcqRel);
            }
            let _ = waker_tx.send(cx.waker().clone());
            std::thread::yield_now();
            p.fetch_add(1, Ordering::AcqRel);
            i.store(false, Ordering::Release);
            false
        }));
        let waker = waker_rx.recv().unwrap();
        let wakers: Vec<_> = (0..4)
            .map(|_| {
                let w = waker.clone();
                std::thread::spawn(move || {
                    for _ in 0..2000 {
                        w.wake_by_ref();
                    }
                })
            })
            .collect();
        for w in wakers {
            w.join().unwrap();
        }
        // The last wake came after some poll began: one more poll follows it.
        let after = polls.load(Ordering::Acquire);
        waker.wake_by_ref();
        let deadline = Instant::now() + Duration::from_secs(5);
        while polls.load(Ordering::Acquire) <= after && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(polls.load(Ordering::Acquire) > after, "a wake was lost");
        assert_eq!(
            overlaps.load(Ordering::Acquire),
            0,
            "two threads polled the job at once"
        );
        job_handle.close();
    }

    #[test]
    fn close_waits_for_a_callback_in_progress_on_another_thread() {
        let pool = Pool::new(1).unwrap();
        let (started, in_callback) = mpsc::channel();
        let finished = Arc::new(AtomicBool::new(false));
        let f = finished.clone();
        let handle = pool.spawn_callbacks(job(move |_| {
            started.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(200));
            f.store(true, Ordering::Release);
            false
        }));
        in_callback.recv().unwrap();
        handle.close();
        assert!(
            finished.load(Ordering::Acquire),
            "close returned while the callback ran"
        );
    }
}
