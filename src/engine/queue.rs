//! The queues inside a client: commands from the caller's threads to the network task, and events
//! from the network task to the callback thread.
//!
//! tokio's `mpsc` allocates a block of 32 slots when a channel is made; with commands and events
//! of 112 and 128 bytes that was 8.7 KiB per client before it sent anything, the largest part of
//! what an idle client of a fleet held. These queues hold nothing while empty: the room the items
//! took is given back once the last is taken. That costs an allocation each time a queue that ran
//! dry gets an item (tens of nanoseconds, against the microseconds a message takes through the
//! network task), and nothing while items keep coming.
//!
//! Each is a `VecDeque` under a mutex: every operation is a few instructions inside the lock, so
//! it is rarely contended, and a waiting receiver or sender is woken only when it registered.
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

/// A queue with no bound: the caller is never blocked (commands; see `Options::outgoing` for the
/// limit on what they may queue).
pub(crate) fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    bounded(usize::MAX)
}

/// A queue holding at most `capacity` items, counting the room senders have reserved.
pub(crate) fn bounded<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        capacity: capacity.max(1),
        state: Mutex::new(State {
            items: VecDeque::new(),
            reserved: 0,
            senders: 1,
            closed: false,
            receiver: None,
            waiting: Vec::new(),
        }),
    });
    (Sender(shared.clone()), Receiver(shared))
}

struct Shared<T> {
    capacity: usize,
    state: Mutex<State<T>>,
}

struct State<T> {
    items: VecDeque<T>,
    /// Room taken by [`Permit`]s not yet used.
    reserved: usize,
    senders: usize,
    /// The receiver is gone: nothing more is taken.
    closed: bool,
    /// The receiver's task (or thread), when it found the queue empty.
    receiver: Option<Waker>,
    /// Senders waiting for room.
    waiting: Vec<Waker>,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Nothing inside the lock can panic half way (pushes and pops only).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T> State<T> {
    fn has_room(&self, capacity: usize) -> bool {
        self.items.len() + self.reserved < capacity
    }

    /// Queues `item` and returns the receiver's waker, to wake once the lock is released.
    fn push(&mut self, item: T) -> Option<Waker> {
        self.items.push_back(item);
        self.receiver.take()
    }

    /// Takes the oldest item, with the senders waiting for the room it frees (to wake once the
    /// lock is released).
    fn take(&mut self) -> Result<(T, Vec<Waker>), TryRecvError> {
        let Some(item) = self.items.pop_front() else {
            return Err(match self.senders {
                0 => TryRecvError::Disconnected,
                _ => TryRecvError::Empty,
            });
        };
        if self.items.is_empty() {
            self.items = VecDeque::new();
        }
        Ok((item, std::mem::take(&mut self.waiting)))
    }
}

/// Why a send failed, with the item back.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TrySendError<T> {
    Full(T),
    /// The receiver is gone.
    Closed(T),
}

impl<T> TrySendError<T> {
    pub(crate) fn into_inner(self) -> T {
        match self {
            TrySendError::Full(item) | TrySendError::Closed(item) => item,
        }
    }
}

/// The receiver is gone.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Closed;

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TryRecvError {
    Empty,
    /// Every sender is gone and nothing is left.
    Disconnected,
}

pub(crate) struct Sender<T>(Arc<Shared<T>>);

impl<T> Sender<T> {
    /// Queues `item` unless the queue is full or its receiver gone.
    pub(crate) fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        let mut state = self.0.lock();
        if state.closed {
            return Err(TrySendError::Closed(item));
        }
        if !state.has_room(self.0.capacity) {
            return Err(TrySendError::Full(item));
        }
        let receiver = state.push(item);
        drop(state);
        notify(receiver);
        Ok(())
    }

    /// Waits for room for one item, and holds it until the permit is used or dropped.
    pub(crate) async fn reserve(&self) -> Result<Permit<'_, T>, Closed> {
        std::future::poll_fn(|cx| self.poll_reserve(cx)).await
    }

    fn poll_reserve(&self, cx: &mut Context<'_>) -> Poll<Result<Permit<'_, T>, Closed>> {
        let mut state = self.0.lock();
        if state.closed {
            return Poll::Ready(Err(Closed));
        }
        if state.has_room(self.0.capacity) {
            state.reserved += 1;
            return Poll::Ready(Ok(Permit(self)));
        }
        // A wait polled again (each turn of a select makes a new one) registers once.
        if !state.waiting.iter().any(|w| w.will_wake(cx.waker())) {
            state.waiting.push(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Queues `item` once there is room; gives it back if the receiver is gone.
    pub(crate) async fn send(&self, item: T) -> Result<(), T> {
        match self.reserve().await {
            Ok(permit) => {
                permit.send(item);
                Ok(())
            }
            Err(Closed) => Err(item),
        }
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.0.lock().senders += 1;
        Sender(self.0.clone())
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.senders -= 1;
        let receiver = match state.senders {
            0 => state.receiver.take(),
            _ => None,
        };
        drop(state);
        notify(receiver);
    }
}

/// Room for one item, reserved by [`Sender::reserve`].
pub(crate) struct Permit<'a, T>(&'a Sender<T>);

impl<T> Permit<'_, T> {
    pub(crate) fn send(self, item: T) {
        let shared = &self.0.0;
        let mut state = shared.lock();
        state.reserved -= 1;
        let receiver = match state.closed {
            false => state.push(item),
            // Dropped below, outside the lock, as the receiver drops what it leaves.
            true => None,
        };
        drop(state);
        std::mem::forget(self);
        notify(receiver);
    }
}

impl<T> Drop for Permit<'_, T> {
    fn drop(&mut self) {
        let mut state = self.0.0.lock();
        state.reserved -= 1;
        let waiting = std::mem::take(&mut state.waiting);
        drop(state);
        waiting.into_iter().for_each(Waker::wake);
    }
}

pub(crate) struct Receiver<T>(Arc<Shared<T>>);

impl<T> Receiver<T> {
    /// The next item, or `None` once every sender is gone and nothing is left.
    pub(crate) async fn recv(&mut self) -> Option<T> {
        std::future::poll_fn(|cx| {
            // As tokio's own channels do: a task taking a long run of items yields now and then,
            // so a flood on one client cannot starve the others sharing its thread.
            let coop = std::task::ready!(tokio::task::coop::poll_proceed(cx));
            let item = self.poll_recv(cx);
            if item.is_ready() {
                coop.made_progress();
            }
            item
        })
        .await
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut state = self.0.lock();
        match state.take() {
            Err(TryRecvError::Empty) => {
                // Registered under the lock a sender takes to push: no send can slip in between.
                if !state.receiver.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    state.receiver = Some(cx.waker().clone());
                }
                Poll::Pending
            }
            taken => {
                drop(state);
                Poll::Ready(Self::taken(taken).ok())
            }
        }
    }

    pub(crate) fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let taken = self.0.lock().take();
        Self::taken(taken)
    }

    /// Wakes the senders a take freed room for, now that the lock is released.
    fn taken(taken: Result<(T, Vec<Waker>), TryRecvError>) -> Result<T, TryRecvError> {
        taken.map(|(item, waiting)| {
            waiting.into_iter().for_each(Waker::wake);
            item
        })
    }

    /// As [`recv`](Self::recv), parking this thread while the queue is empty.
    pub(crate) fn blocking_recv(&mut self) -> Option<T> {
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        loop {
            match self.poll_recv(&mut cx) {
                Poll::Ready(item) => return item,
                Poll::Pending => std::thread::park(),
            }
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.closed = true;
        let items = std::mem::take(&mut state.items);
        let waiting = std::mem::take(&mut state.waiting);
        drop(state);
        // Outside the lock: an item's drop may run the application's code (a userdata destructor).
        drop(items);
        waiting.into_iter().for_each(Waker::wake);
    }
}

fn notify(waker: Option<Waker>) {
    if let Some(waker) = waker {
        waker.wake();
    }
}

/// Wakes a thread parked in [`Receiver::blocking_recv`].
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::signal::tests::waker;
    use futures_util::FutureExt;
    use std::sync::atomic::Ordering;

    fn room<T>(rx: &Receiver<T>) -> usize {
        rx.0.lock().items.capacity()
    }

    #[test]
    fn holds_nothing_while_empty() {
        let (tx, mut rx) = unbounded();
        assert_eq!(room(&rx), 0, "made empty");
        tx.try_send(1).unwrap();
        tx.try_send(2).unwrap();
        assert!(room(&rx) >= 2);
        assert_eq!(rx.try_recv(), Ok(1));
        assert!(room(&rx) >= 1, "kept while items are left");
        assert_eq!(rx.try_recv(), Ok(2));
        assert_eq!(room(&rx), 0, "given back with the last");
        for i in 0..1000 {
            tx.try_send(i).unwrap();
        }
        assert!(room(&rx) >= 1000);
        for i in 0..1000 {
            assert_eq!(rx.try_recv(), Ok(i), "in order");
        }
        assert_eq!(room(&rx), 0, "a burst's room is given back once taken");
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    }

    #[test]
    fn the_receiver_sees_the_end_once_every_sender_is_gone_and_the_rest_taken() {
        let (tx, mut rx) = unbounded();
        let tx2 = tx.clone();
        tx.try_send(1).unwrap();
        drop(tx);
        assert_eq!(rx.try_recv(), Ok(1));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty), "a sender is left");
        tx2.try_send(2).unwrap();
        drop(tx2);
        assert_eq!(rx.recv().now_or_never(), Some(Some(2)), "what was sent is taken first");
        assert_eq!(rx.recv().now_or_never(), Some(None));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    }

    #[test]
    fn a_waiting_receiver_is_woken_by_a_send_and_by_the_last_sender_leaving() {
        let (tx, mut rx) = unbounded::<u8>();
        let (count, w) = waker();
        let mut cx = Context::from_waker(&w);
        assert!(rx.poll_recv(&mut cx).is_pending());
        assert!(rx.poll_recv(&mut cx).is_pending(), "polled again, registered once");
        tx.try_send(7).unwrap();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(7)));
        tx.try_send(8).unwrap();
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "not waiting: not woken");
        assert_eq!(rx.try_recv(), Ok(8));
        assert!(rx.poll_recv(&mut cx).is_pending());
        drop(tx);
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(None));
    }

    #[test]
    fn sends_fail_with_the_item_back_once_the_receiver_is_gone_which_drops_the_rest() {
        let (tx, rx) = unbounded();
        let left = Arc::new(());
        tx.try_send(left.clone()).unwrap();
        drop(rx);
        assert_eq!(
            Arc::strong_count(&left),
            1,
            "what was queued is dropped with the receiver"
        );
        let back = tx.try_send(left.clone()).unwrap_err();
        assert!(matches!(back, TrySendError::Closed(_)));
        assert!(Arc::ptr_eq(&back.into_inner(), &left));
        assert_eq!(tx.reserve().now_or_never().map(|r| r.err()), Some(Some(Closed)));
        assert_eq!(tx.send(left.clone()).now_or_never().map(|r| r.is_err()), Some(true));
    }

    #[test]
    fn a_bounded_queue_counts_reserved_room_and_wakes_a_waiting_sender_when_room_frees() {
        let (tx, mut rx) = bounded(2);
        tx.try_send(1).unwrap();
        let permit = tx.reserve().now_or_never().unwrap().unwrap();
        assert_eq!(
            tx.try_send(3),
            Err(TrySendError::Full(3)),
            "the permit holds the second place"
        );

        let (count, w) = waker();
        let mut cx = Context::from_waker(&w);
        assert!(tx.poll_reserve(&mut cx).is_pending());
        assert!(tx.poll_reserve(&mut cx).is_pending());
        assert_eq!(tx.0.lock().waiting.len(), 1, "one waiter registered once");
        permit.send(2);
        assert_eq!(count.0.load(Ordering::SeqCst), 0, "using a permit frees no room");
        assert_eq!(rx.try_recv(), Ok(1));
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "a take wakes the waiting sender");

        let permit = match tx.poll_reserve(&mut cx) {
            Poll::Ready(Ok(p)) => p,
            _ => panic!("room was freed"),
        };
        assert!(tx.poll_reserve(&mut cx).is_pending());
        drop(permit);
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            2,
            "an unused permit gives its room back"
        );
        assert!(tx.try_send(3).is_ok());
        assert_eq!((rx.try_recv(), rx.try_recv()), (Ok(2), Ok(3)));
    }

    #[test]
    fn blocking_recv_waits_for_other_threads_and_keeps_each_senders_order() {
        let (tx, mut rx) = bounded::<(usize, usize)>(8);
        let senders: Vec<_> = (0..3)
            .map(|s| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for i in 0..2000 {
                        let mut item = (s, i);
                        loop {
                            match tx.try_send(item) {
                                Ok(()) => break,
                                Err(e) => item = e.into_inner(),
                            }
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        drop(tx);
        let mut next = [0; 3];
        while let Some((s, i)) = rx.blocking_recv() {
            assert_eq!(i, next[s], "sender {s} in order");
            next[s] += 1;
        }
        assert_eq!(next, [2000; 3], "everything arrives, then the end");
        senders.into_iter().for_each(|t| t.join().unwrap());
    }
}
