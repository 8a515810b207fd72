//! What a subscribe registers: a [`Subscription`] with its [`Handler`], and the request and
//! rejection types of `Client::subscribe`.
use super::{Error, MessageHandler};
use crate::codec::{MqttStr, SubscribeOptions};
use crate::topic::split_shared;

/// How a subscription's messages reach the application.
pub enum Handler {
    /// Called on the callback thread.
    Call(MessageHandler),
    /// Event mode: each message is queued as a [`ClientEvent::Message`](super::ClientEvent::Message) carrying `key`. `guard` is
    /// dropped when the subscription has ended and no event carrying `key` is left (its `Drop`
    /// may release what `key` stands for).
    Queue { key: usize, guard: Box<dyn Send + Sync> },
}

/// One registration in the subscription registry.
pub struct Subscription {
    /// Unique for the client's life: tells a registration from a later one for the same filter.
    pub id: u64,
    /// What messages are matched against: the filter, or for `$share/<name>/<filter>` the
    /// `<filter>` part.
    pub filter: Box<str>,
    pub options: SubscribeOptions,
    /// The MQTT 5 Subscription Identifier its SUBSCRIBE carries; 0 for none.
    pub sub_id: u32,
    pub handler: Handler,
}

impl Subscription {
    /// A registration for `filter` as subscribed (valid, shared or not).
    pub fn new(id: u64, filter: &str, options: SubscribeOptions, sub_id: u32, handler: Handler) -> Subscription {
        let matched = match split_shared(filter) {
            Some(Ok((_, f))) => f,
            _ => filter,
        };
        Subscription {
            id,
            filter: matched.into(),
            options,
            sub_id,
            handler,
        }
    }
}

/// One filter to subscribe to: the filter, its options and its handler.
pub type FilterRequest = (MqttStr, SubscribeOptions, Handler);

/// A subscribe that was not accepted: why, and the handlers it did not register.
pub struct Rejected {
    pub error: Error,
    pub handlers: Vec<FilterRequest>,
}

impl std::fmt::Debug for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Rejected({:?}, {} handler(s))", self.error, self.handlers.len())
    }
}
