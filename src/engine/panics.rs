//! Panics on a client's network task or callback thread: caught, and turned into a lost connection
//! whose pending tokens fail, so that no waiter hangs and later calls get a clear error.
use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;

use tokio::sync::Notify;

use super::dispatch::{Dispatcher, Event, LogLevel};
use super::events::ConnectionEvent;
use super::queue::Sender;
use super::{Address, Error, Shared, State};

/// Where [`super::Client::inject_panic`] makes a client panic.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum PanicSite {
    /// The network task (with a loop: the client's task on it).
    Network = 1,
    /// The callback thread's own code, outside any user callback (nothing happens without one).
    Callback = 2,
}

/// The error a panic leaves behind; `site` names the thread or task it stopped.
pub(super) fn caught(site: &str, payload: &(dyn Any + Send)) -> Error {
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message");
    Error::Panic(format!("{site} panicked: {message}"))
}

/// Runs the connection task `run` until it ends or `shutdown` is notified. A panic in it, or one
/// the callback thread reported (see [`super::dispatch`]), then stops the client: see [`contain`].
/// The panic is caught around each poll, which costs nothing while none happens; uncaught, it
/// would end the network thread, or be swallowed by a loop's runtime, leaving every token pending.
pub(super) async fn supervise(
    shared: Arc<Shared>,
    events: Option<Sender<Event>>,
    server: Address,
    shutdown: Arc<Notify>,
    run: impl Future<Output = ()>,
) {
    let reason = {
        let mut task = pin!(serve(&shared, &events, &shutdown, run));
        let ended = std::future::poll_fn(|cx| match catch_unwind(AssertUnwindSafe(|| task.as_mut().poll(cx))) {
            Ok(poll) => poll.map(|()| None),
            Err(payload) => Poll::Ready(Some(caught("the network task", &*payload))),
        })
        .await;
        let Some(reason) = ended.or_else(|| shared.panic.get().cloned()) else {
            return;
        };
        // Before the task (and the command channel's receiver) goes: a call that finds the channel
        // closed then reports the panic, not a close.
        let _ = shared.panic.set(reason.clone());
        reason
    };
    // Boxed: it runs only after a panic, and inline its state would be room every client's task
    // keeps for its whole life.
    Box::pin(contain(&shared, events, server, reason)).await;
}

/// The connection task, ended early by `shutdown`, which also carries [`PanicSite`] injections.
async fn serve(shared: &Shared, events: &Option<Sender<Event>>, shutdown: &Notify, run: impl Future<Output = ()>) {
    let mut run = pin!(run);
    loop {
        tokio::select! {
            _ = &mut run => return,
            _ = shutdown.notified() => match shared.inject.swap(0, Ordering::AcqRel) {
                1 => panic!("injected on the network task"),
                2 if !shared.closed.load(Ordering::Acquire) => {
                    if let Some(events) = events {
                        // Boxed, as `contain`: test-only, and inline it would be room in every task.
                        let _ = Box::pin(events.send(Event::InjectedPanic)).await;
                    }
                }
                _ => return,
            },
        }
    }
}

/// Stops the client after a panic: the state becomes Disconnected, every pending token fails with
/// `reason`, and the loss is reported like a lost connection (to `server`, the first one: which
/// one was in use went with the task). Nothing to do when the client is being closed, which
/// cancels the tokens itself.
async fn contain(shared: &Arc<Shared>, events: Option<Sender<Event>>, server: Address, reason: Error) {
    if shared.closed.load(Ordering::Acquire) {
        return;
    }
    shared.session_alive.store(false, Ordering::Release);
    shared.set_state(State::Disconnected);
    let failed: Vec<_> = shared
        .tokens
        .pending()
        .into_iter()
        .map(|t| (t, Err(reason.clone())))
        .collect();
    shared.tokens.complete_all(failed.iter().cloned());
    let mut report = Vec::with_capacity(3);
    if shared.wants_log(LogLevel::Error) {
        report.push(Event::Log(LogLevel::Error, format!("{reason}; the client is stopped")));
    }
    if shared.wants_completions() && !failed.is_empty() {
        report.push(Event::Completed(failed));
    }
    report.push(Event::Connection(ConnectionEvent::Lost { reason, server }));
    match events {
        Some(events) => {
            for event in report {
                if events.send(event).await.is_err() {
                    break;
                }
            }
        }
        None => {
            let mut dispatcher = Dispatcher::new(shared.clone());
            report.into_iter().for_each(|event| dispatcher.handle(event));
        }
    }
    shared.announce();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_names_the_site_and_carries_the_panic_message() {
        let text = std::panic::catch_unwind(|| panic!("bad {}", 1)).unwrap_err();
        assert_eq!(
            caught("the network task", &*text),
            Error::Panic("the network task panicked: bad 1".into())
        );
        let literal = std::panic::catch_unwind(|| panic!("plain")).unwrap_err();
        assert_eq!(
            caught("the callback thread", &*literal),
            Error::Panic("the callback thread panicked: plain".into())
        );
        let other = std::panic::catch_unwind(|| std::panic::panic_any(7u8)).unwrap_err();
        assert_eq!(caught("x", &*other), Error::Panic("x panicked: no message".into()));
    }
}
