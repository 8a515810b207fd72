//! Publishes made while there is no connection, kept in order until the next one. Bounded by
//! message count and by bytes; when full, the overflow policy decides which message fails, and
//! that message's token says so.
use std::collections::VecDeque;

use crate::codec::Publish;

use super::Error;
use super::tokens::{Token, TokenResult};

/// What happens to a publish that does not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// The new publish fails with [`Error::QueueFull`]; what is queued stays.
    RejectNew,
    /// The oldest queued publishes fail with [`Error::Dropped`] until the new one fits.
    DropOldest,
}

pub struct OfflineQueue {
    items: VecDeque<(Token, Publish)>,
    bytes: usize,
    max_messages: usize,
    max_bytes: usize,
    overflow: Overflow,
}

/// What a queued publish costs against the byte limit: what it will put on the wire, roughly.
fn cost(p: &Publish) -> usize {
    p.topic.as_str().len() + p.payload.len()
}

impl OfflineQueue {
    pub fn new(max_messages: usize, max_bytes: usize, overflow: Overflow) -> Self {
        OfflineQueue {
            items: VecDeque::new(),
            bytes: 0,
            max_messages,
            max_bytes,
            overflow,
        }
    }

    /// Queues `publish`, or fails it or older ones; returns the tokens to fail.
    pub fn push(&mut self, token: Token, publish: Publish) -> Vec<(Token, TokenResult)> {
        let size = cost(&publish);
        if self.max_messages == 0 || size > self.max_bytes {
            // Could never fit, whatever is dropped.
            return vec![(token, Err(Error::QueueFull))];
        }
        let mut failed = Vec::new();
        while self.items.len() >= self.max_messages || self.bytes + size > self.max_bytes {
            match self.overflow {
                Overflow::RejectNew => return vec![(token, Err(Error::QueueFull))],
                Overflow::DropOldest => {
                    let (old, p) = self
                        .items
                        .pop_front()
                        .expect("non-empty: the limits exceed one message");
                    self.bytes -= cost(&p);
                    failed.push((old, Err(Error::Dropped)));
                }
            }
        }
        self.bytes += size;
        self.items.push_back((token, publish));
        failed
    }

    /// Takes everything, oldest first.
    pub fn take(&mut self) -> VecDeque<(Token, Publish)> {
        self.bytes = 0;
        std::mem::take(&mut self.items)
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{MqttStr, Properties, QoS};
    use bytes::Bytes;

    fn publish(payload: usize) -> Publish {
        Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: MqttStr::new("t").unwrap(),
            pkid: 0,
            properties: Properties::new(),
            payload: Bytes::from(vec![0; payload]),
        }
    }

    fn tokens(q: &mut OfflineQueue) -> Vec<Token> {
        q.take().into_iter().map(|(t, _)| t).collect()
    }

    #[test]
    fn reject_new_fails_the_new_publish_when_the_count_is_reached() {
        let mut q = OfflineQueue::new(2, 1000, Overflow::RejectNew);
        assert!(q.push(1, publish(1)).is_empty());
        assert!(q.push(2, publish(1)).is_empty());
        assert_eq!(q.push(3, publish(1)), vec![(3, Err(Error::QueueFull))]);
        assert_eq!(tokens(&mut q), [1, 2]);
    }

    #[test]
    fn reject_new_counts_bytes_of_topic_and_payload() {
        let mut q = OfflineQueue::new(100, 10, Overflow::RejectNew);
        assert!(q.push(1, publish(4)).is_empty()); // 1 + 4
        assert!(q.push(2, publish(4)).is_empty()); // 10 in all
        assert_eq!(q.push(3, publish(0)), vec![(3, Err(Error::QueueFull))]);
        assert_eq!(tokens(&mut q), [1, 2]);
        assert!(q.push(4, publish(9)).is_empty(), "take() frees the bytes");
    }

    #[test]
    fn drop_oldest_fails_as_many_old_ones_as_needed_in_order() {
        let mut q = OfflineQueue::new(3, 12, Overflow::DropOldest);
        for t in 1..=3 {
            assert!(q.push(t, publish(2)).is_empty()); // 3 bytes each
        }
        assert_eq!(q.push(4, publish(1)), vec![(1, Err(Error::Dropped))], "count limit");
        assert_eq!(
            q.push(5, publish(7)),
            vec![(2, Err(Error::Dropped)), (3, Err(Error::Dropped))],
            "byte limit: 8 + 2 would exceed 12 until two are gone"
        );
        assert_eq!(tokens(&mut q), [4, 5]);
    }

    #[test]
    fn a_publish_larger_than_the_byte_limit_is_refused_under_either_policy() {
        for policy in [Overflow::RejectNew, Overflow::DropOldest] {
            let mut q = OfflineQueue::new(10, 5, policy);
            assert!(q.push(1, publish(1)).is_empty());
            assert_eq!(q.push(2, publish(5)), vec![(2, Err(Error::QueueFull))]);
            assert_eq!(q.len(), 1, "nothing was dropped for it");
        }
    }

    #[test]
    fn zero_messages_means_no_offline_buffering() {
        let mut q = OfflineQueue::new(0, 1000, Overflow::DropOldest);
        assert_eq!(q.push(1, publish(1)), vec![(1, Err(Error::QueueFull))]);
        assert!(q.is_empty());
    }
}
