//! Keep-alive: when a PINGREQ is due, and when an unanswered one means the link is dead.
use std::time::Duration;

use tokio::time::Instant;

use crate::engine::Token;

/// Keep-alive bookkeeping (MQTT-3.1.2-24): a PINGREQ goes out when nothing was sent or nothing was
/// received for a keep-alive interval, so a silent (half-open) link is noticed even while we publish.
pub(super) struct KeepAlive {
    interval: Option<Duration>,
    ping_timeout: Duration,
    pub(super) last_sent: Instant,
    pub(super) last_received: Instant,
    pub(super) ping_sent: Option<Instant>,
    /// False while reading is paused because the callback queue is full (the application is slow):
    /// the PINGRESP may then be waiting unread behind the messages the pause left in the socket, so
    /// the ping timeout does not run.
    reading: bool,
}

/// What the keep-alive asks for when its timer fires.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Due {
    Nothing,
    Ping,
    TimedOut,
}

impl KeepAlive {
    pub(super) fn new(interval: Option<Duration>, ping_timeout: Duration, now: Instant) -> Self {
        KeepAlive {
            interval,
            // At most half the interval, so a silent link is noticed within 1.5 keep-alive intervals.
            ping_timeout: interval.map_or(ping_timeout, |i| ping_timeout.min(i / 2)),
            last_sent: now,
            last_received: now,
            ping_sent: None,
            reading: true,
        }
    }

    pub(super) fn deadline(&self) -> Option<Instant> {
        let interval = self.interval?;
        match self.ping_sent {
            Some(_) if !self.reading => None,
            Some(t) => Some(t + self.ping_timeout),
            None => Some(self.last_sent.min(self.last_received) + interval),
        }
    }

    pub(super) fn due(&self, now: Instant) -> Due {
        match self.deadline() {
            Some(d) if now >= d && self.ping_sent.is_some() => Due::TimedOut,
            Some(d) if now >= d => Due::Ping,
            _ => Due::Nothing,
        }
    }

    /// Reading pauses while the callback queue is full and resumes when it has room; returns whether
    /// that changed. The ping timeout counts only time spent reading: on resuming, a PINGREQ still
    /// unanswered gets the whole timeout again, since its answer may be anywhere in what the pause
    /// left unread. (A dead link is still noticed: once reading resumes, nothing comes.)
    /// Takes the clock as `now`, read only on a change: this runs on every turn of the loop.
    pub(super) fn set_reading(&mut self, reading: bool, now: impl FnOnce() -> Instant) -> bool {
        if reading == self.reading {
            return false;
        }
        self.reading = reading;
        if reading && self.ping_sent.is_some() {
            self.ping_sent = Some(now());
        }
        true
    }

    /// When the loop's timer must next fire: the keep-alive deadline or the disconnect deadline.
    pub(super) fn next_wakeup(&self, disconnecting: Option<(Token, Instant)>, far: Instant) -> Instant {
        let next = self.deadline().unwrap_or(far);
        disconnecting.map_or(next, |(_, d)| next.min(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn keep_alive_pings_after_an_idle_interval_and_times_out_half_an_interval_later() {
        let start = Instant::now();
        let mut ka = KeepAlive::new(Some(SECOND), Duration::from_secs(30), start);
        assert_eq!(ka.ping_timeout, SECOND / 2, "capped at half the interval");
        assert_eq!(ka.due(start + SECOND / 2), Due::Nothing);
        assert_eq!(ka.due(start + SECOND), Due::Ping);
        ka.ping_sent = Some(start + SECOND);
        assert_eq!(ka.due(start + SECOND * 3 / 2 - Duration::from_millis(1)), Due::Nothing);
        assert_eq!(ka.due(start + SECOND * 3 / 2), Due::TimedOut);
    }

    #[test]
    fn keep_alive_does_not_time_out_while_reading_is_paused_and_gives_the_whole_timeout_after() {
        let start = Instant::now();
        let mut ka = KeepAlive::new(Some(SECOND), SECOND / 2, start);
        // Paused before the ping is due: the ping still goes out.
        assert!(ka.set_reading(false, || start));
        assert!(!ka.set_reading(false, || start), "no change");
        assert_eq!(ka.due(start + SECOND), Due::Ping);
        ka.ping_sent = Some(start + SECOND);
        // Its answer may be waiting unread: however long the pause, no timeout.
        assert_eq!(ka.deadline(), None);
        assert_eq!(ka.due(start + SECOND * 60), Due::Nothing);
        // Reading again: the whole timeout from now.
        let resumed = start + SECOND * 60;
        assert!(ka.set_reading(true, || resumed));
        assert_eq!(ka.deadline(), Some(resumed + SECOND / 2));
        assert_eq!(ka.due(resumed + SECOND / 4), Due::Nothing);
        assert_eq!(ka.due(resumed + SECOND / 2), Due::TimedOut);
    }

    #[test]
    fn keep_alive_off_never_asks_for_anything() {
        let start = Instant::now();
        let mut ka = KeepAlive::new(None, SECOND, start);
        ka.set_reading(false, || start);
        ka.set_reading(true, || start);
        assert_eq!(ka.deadline(), None);
        assert_eq!(ka.due(start + SECOND * 3600), Due::Nothing);
    }
}
