//! Everything leaving the network task for the user: events in order, token completions in batches.
use std::collections::VecDeque;

use super::Ctx;
use crate::engine::dispatch::{Dispatcher, Event, LogLevel};
use crate::engine::queue::{Closed, Permit, TrySendError};
use crate::engine::tokens::{Token, TokenResult};

/// Everything leaving the network task for the user: events for the callback thread (kept in order,
/// held back in `backlog` when the callback queue is full) and token completions (batched so a burst
/// of acknowledgements takes the token lock once).
pub(super) struct Outbox<'a> {
    ctx: &'a Ctx,
    pub(super) backlog: VecDeque<Event>,
    done: Vec<(Token, TokenResult)>,
    /// With `Options::inline_callbacks`: runs each event's callbacks at once, on this thread.
    inline: Option<Dispatcher>,
    /// The last store commit failed (its records wait for the next).
    store_failing: bool,
}

impl<'a> Outbox<'a> {
    pub(super) fn new(ctx: &'a Ctx) -> Self {
        Outbox {
            ctx,
            backlog: VecDeque::new(),
            done: Vec::new(),
            inline: ctx.events.is_none().then(|| Dispatcher::new(ctx.shared.clone())),
            store_failing: false,
        }
    }

    pub(super) fn push(&mut self, event: Event) {
        let Some(events) = &self.ctx.events else {
            if let Some(dispatcher) = &mut self.inline {
                dispatcher.handle(event);
                self.ctx.shared.announce();
            }
            return;
        };
        if !self.backlog.is_empty() {
            self.backlog.push_back(event);
            return;
        }
        match events.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(event)) => self.backlog.push_back(event),
            // The callback thread is gone only when the client is closing.
            Err(TrySendError::Closed(_)) => {}
        }
    }

    pub(super) fn log(&mut self, level: LogLevel, line: impl FnOnce() -> String) {
        if self.ctx.shared.wants_log(level) {
            self.push(Event::Log(level, line()));
        }
    }

    pub(super) fn complete(&mut self, token: Token, result: TokenResult) {
        self.done.push((token, result));
    }

    pub(super) fn flush(&mut self) {
        if self.done.is_empty() {
            return;
        }
        if let Some(store) = &self.ctx.shared.store {
            store.finished(&self.done);
            // The records deleting completed messages describe no packet: a failure only keeps
            // them for the next commit, which the serve loop makes before it writes.
            self.commit_store();
        }
        // Recorded before the event goes out, so a handler (or an event-mode consumer) that asks
        // about a token finds it complete.
        if self.ctx.shared.wants_completions() {
            self.ctx.shared.tokens.complete_all(self.done.iter().cloned());
            // One event for the lot: the callback thread is woken once per batch, not once per
            // token (which cost a futex wake and a context switch per acknowledged publish).
            let done = std::mem::take(&mut self.done);
            self.push(Event::Completed(done));
        } else {
            // Taken, not drained: the batch's room goes with it, as a client idles between them.
            self.ctx.shared.tokens.complete_all(std::mem::take(&mut self.done));
        }
        self.ctx.shared.announce();
    }

    /// Writes what the store was told since the last commit (see [`Store::commit`]); returns
    /// whether every record is written. A failure is logged, once until a commit succeeds again:
    /// the messages stay in memory, the records wait for the next commit, and the packets they
    /// describe wait for it too (see [`SocketWriter::stored`]).
    ///
    /// [`Store::commit`]: crate::engine::store::Store::commit
    /// [`SocketWriter::stored`]: super::writer::SocketWriter::stored
    pub(super) fn commit_store(&mut self) -> bool {
        let Some(result) = self.ctx.shared.store.as_ref().map(|s| s.commit()) else {
            return true;
        };
        let ok = result.is_ok();
        match result {
            Err(e) if !self.store_failing => {
                self.store_failing = true;
                self.log(LogLevel::Error, || {
                    format!("{e}; its records are kept and written with the next ones")
                });
            }
            Ok(()) if self.store_failing => {
                self.store_failing = false;
                self.log(LogLevel::Info, || "store: the records kept were written".into());
            }
            _ => {}
        }
        ok
    }

    /// Delivers the backlog, waiting for the callback thread: used between connections, where
    /// there is no socket to pause.
    pub(super) async fn drain(&mut self) {
        self.flush();
        while let Some(event) = self.backlog.pop_front() {
            if self.ctx.room().await.map(|permit| permit.send(event)).is_err() {
                self.backlog.clear();
            }
        }
    }

    /// Hands the oldest held-back event to the callback thread once the queue has room.
    pub(super) fn deliver(&mut self, permit: Result<Permit<'_, Event>, Closed>) {
        match (permit, self.backlog.pop_front()) {
            (Ok(permit), Some(event)) => permit.send(event),
            // The callback thread is gone only when the client is closing.
            _ => self.backlog.clear(),
        }
    }

    /// Drops registrations made by a SUBSCRIBE that did not succeed. Done on the callback thread,
    /// because dropping a registration may run the user's userdata destructor.
    pub(super) fn unregister(&mut self, filters: Vec<(String, u64)>) {
        if !filters.is_empty() {
            self.push(Event::Unregister(filters));
        }
    }
}
