//! A wakeup for the one task that waits for it, cheap enough to wait for on every turn of a loop.
//!
//! A `tokio::sync::Notify` would need a fresh `notified()` on each turn of the network task's
//! select, taking the `Notify`'s lock twice a turn (to enqueue the waiter and dequeue it again),
//! a cost that shows in a latency run. Here a wait is a flag check and an `AtomicWaker`
//! registration, and stays registered between turns.
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;

#[derive(Debug, Default)]
pub(crate) struct Signal {
    raised: AtomicBool,
    waiter: AtomicWaker,
}

impl Signal {
    /// Wakes the waiting task, or, when none waits, lets its next wait end at once (as
    /// `Notify::notify_one` does). Raising it twice before the wait takes it counts once.
    pub(crate) fn raise(&self) {
        self.raised.store(true, Ordering::SeqCst);
        self.waiter.wake();
    }

    /// Ready once the signal was raised since the last wait that ended, taking it.
    pub(crate) fn poll_wait(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.raised.swap(false, Ordering::SeqCst) {
            return Poll::Ready(());
        }
        self.waiter.register(cx.waker());
        // Checked again after registering: a raise in between found no waker to wake.
        match self.raised.swap(false, Ordering::SeqCst) {
            true => Poll::Ready(()),
            false => Poll::Pending,
        }
    }

    pub(crate) async fn wait(&self) {
        std::future::poll_fn(|cx| self.poll_wait(cx)).await
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::task::{Wake, Waker};

    /// Counts the wakes it gets.
    #[derive(Default)]
    pub(crate) struct Count(pub(crate) AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    pub(crate) fn waker() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count::default());
        (count.clone(), Waker::from(count))
    }

    #[test]
    fn a_raise_before_the_wait_is_kept_for_it_once() {
        let signal = Signal::default();
        let (_, w) = waker();
        let mut cx = Context::from_waker(&w);
        signal.raise();
        signal.raise();
        assert!(signal.poll_wait(&mut cx).is_ready());
        assert!(
            signal.poll_wait(&mut cx).is_pending(),
            "two raises before a wait count once"
        );
    }

    #[test]
    fn a_raise_wakes_the_registered_waiter_and_ends_its_wait() {
        let signal = Signal::default();
        let (count, w) = waker();
        let mut cx = Context::from_waker(&w);
        assert!(signal.poll_wait(&mut cx).is_pending());
        assert!(signal.poll_wait(&mut cx).is_pending(), "still nothing raised");
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        signal.raise();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(signal.poll_wait(&mut cx).is_ready());
        assert!(signal.poll_wait(&mut cx).is_pending());
    }

    #[test]
    fn a_raise_from_another_thread_ends_an_async_wait() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let signal = Arc::new(Signal::default());
        let raiser = signal.clone();
        rt.block_on(async move {
            let t = std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(20));
                raiser.raise();
            });
            tokio::time::timeout(std::time::Duration::from_secs(5), signal.wait())
                .await
                .expect("the raise ended the wait");
            t.join().unwrap();
        });
    }
}
