//! Outbound topic aliases (MQTT 5 section 3.3.2.3.4): on one connection, a topic the client
//! publishes to often is sent once with an alias, a number the broker then takes for it, and
//! after that as the alias alone, which spares the topic's bytes in every PUBLISH.
//!
//! Aliases are chosen as publishes are encoded, in wire order, so the broker always has the
//! mapping a PUBLISH relies on. They last as long as the connection: a new one starts with none.
//! A resend (DUP) always goes with its whole topic and no alias, as it first went on another
//! connection: it never depends on what the broker keeps of this one.
use std::collections::HashMap;

use crate::codec::{MqttStr, Properties, PropertyId, Publish, Version};

/// The bytes a Topic Alias property takes in a PUBLISH: a topic this short gains nothing from one.
const ALIAS_LEN: usize = 3;

/// The aliases of one connection, and what bounds them.
pub(super) struct OutboundAliases {
    table: AliasTable,
    /// The broker's Maximum Packet Size: the first PUBLISH with an alias, longer by it, must fit.
    max_packet_size: Option<usize>,
}

impl OutboundAliases {
    /// At most `wanted` aliases (the application's choice), never more than the Topic Alias
    /// Maximum of the broker's CONNACK (none without one, as in MQTT 3.1.1).
    pub(super) fn new(wanted: u16, connack: &Properties, max_packet_size: Option<usize>) -> OutboundAliases {
        let allowed = connack.int(PropertyId::TopicAliasMaximum).unwrap_or(0);
        OutboundAliases {
            table: AliasTable::new(wanted.min(allowed.try_into().unwrap_or(u16::MAX))),
            max_packet_size,
        }
    }

    /// Publishes on this connection use aliases.
    pub(super) fn active(&self) -> bool {
        self.table.capacity > 0
    }

    /// The PUBLISH to send in place of `publish`: its topic with an alias the first time, the
    /// alias and an empty topic once the broker knows it. None to send `publish` as it is: no
    /// aliases, a resend, a topic no longer than an alias, one the sender aliased itself, or a
    /// first use that would go over the broker's maximum packet size.
    pub(super) fn apply(&mut self, publish: &Publish, version: Version) -> Option<Publish> {
        if !self.active()
            || publish.dup
            || publish.topic.len() <= ALIAS_LEN
            || publish.properties.int(PropertyId::TopicAlias).is_some()
        {
            return None;
        }
        let found = self.table.lookup(&publish.topic);
        let (alias, topic) = match found {
            Use::Known(alias) => (alias, MqttStr::default()),
            Use::New(alias) => (alias, publish.topic.clone()),
        };
        let mut properties = publish.properties.clone();
        properties.push_int(PropertyId::TopicAlias, alias.into()).ok()?;
        let aliased = Publish {
            topic,
            properties,
            ..publish.clone()
        };
        if self
            .max_packet_size
            .is_some_and(|max| aliased.encoded_len(version) > max)
        {
            return None;
        }
        if let Use::New(alias) = found {
            self.table.assign(publish.topic.clone(), alias);
        }
        Some(aliased)
    }
}

/// Which alias a topic goes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    /// The broker has it for this topic.
    Known(u16),
    /// The one the topic would take: a free one, or the least recently used.
    New(u16),
}

/// Topics and their aliases, least-recently-used replacement once all are taken.
struct AliasTable {
    by_topic: HashMap<MqttStr, u16>,
    /// Alias n at index n - 1, in a list by recency of use.
    slots: Vec<Slot>,
    capacity: u16,
    /// The most and least recently used aliases; 0 for none.
    newest: u16,
    oldest: u16,
}

struct Slot {
    topic: MqttStr,
    /// The neighbours in recency order; 0 for none.
    newer: u16,
    older: u16,
}

impl AliasTable {
    fn new(capacity: u16) -> AliasTable {
        AliasTable {
            by_topic: HashMap::new(),
            slots: Vec::new(),
            capacity,
            newest: 0,
            oldest: 0,
        }
    }

    fn slot(&mut self, alias: u16) -> &mut Slot {
        &mut self.slots[usize::from(alias) - 1]
    }

    /// The alias for `topic`; a known one becomes the most recently used. Needs a capacity.
    fn lookup(&mut self, topic: &MqttStr) -> Use {
        if let Some(&alias) = self.by_topic.get(topic) {
            self.unlink(alias);
            self.push_newest(alias);
            return Use::Known(alias);
        }
        if self.slots.len() < usize::from(self.capacity) {
            Use::New(self.slots.len() as u16 + 1)
        } else {
            Use::New(self.oldest)
        }
    }

    /// Gives `topic` the alias [`lookup`](Self::lookup) offered it, taking it from the topic
    /// that had it.
    fn assign(&mut self, topic: MqttStr, alias: u16) {
        if usize::from(alias) == self.slots.len() + 1 {
            self.slots.push(Slot {
                topic: topic.clone(),
                newer: 0,
                older: 0,
            });
        } else {
            self.unlink(alias);
            let old = std::mem::replace(&mut self.slot(alias).topic, topic.clone());
            self.by_topic.remove(&old);
        }
        self.push_newest(alias);
        self.by_topic.insert(topic, alias);
    }

    /// Takes `alias` out of the recency list.
    fn unlink(&mut self, alias: u16) {
        let Slot { newer, older, .. } = *self.slot(alias);
        match newer {
            0 => self.newest = older,
            n => self.slot(n).older = older,
        }
        match older {
            0 => self.oldest = newer,
            o => self.slot(o).newer = newer,
        }
    }

    /// Puts `alias`, out of the list, at its most recent end.
    fn push_newest(&mut self, alias: u16) {
        let before = self.newest;
        let slot = self.slot(alias);
        slot.newer = 0;
        slot.older = before;
        match before {
            0 => self.oldest = alias,
            b => self.slot(b).newer = alias,
        }
        self.newest = alias;
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::codec::QoS;

    fn s(topic: &str) -> MqttStr {
        MqttStr::new(topic).unwrap()
    }

    /// What the table says for `topic`, taken as a sender would (a new alias is assigned).
    fn send(t: &mut AliasTable, topic: &str) -> Use {
        let found = t.lookup(&s(topic));
        if let Use::New(alias) = found {
            t.assign(s(topic), alias);
        }
        found
    }

    #[test]
    fn a_topic_takes_a_free_alias_once_and_keeps_it() {
        let mut t = AliasTable::new(3);
        assert_eq!(send(&mut t, "a/one"), Use::New(1));
        assert_eq!(send(&mut t, "a/two"), Use::New(2));
        assert_eq!(send(&mut t, "a/one"), Use::Known(1));
        assert_eq!(send(&mut t, "a/two"), Use::Known(2));
        assert_eq!(send(&mut t, "a/three"), Use::New(3));
    }

    #[test]
    fn once_all_are_taken_the_least_recently_used_alias_goes_to_the_new_topic() {
        let mut t = AliasTable::new(2);
        send(&mut t, "t/a");
        send(&mut t, "t/b");
        // "t/a" was used last: "t/b" is the one to give up.
        assert_eq!(send(&mut t, "t/a"), Use::Known(1));
        assert_eq!(send(&mut t, "t/c"), Use::New(2));
        assert_eq!(send(&mut t, "t/b"), Use::New(1), "t/a is now the oldest");
        assert_eq!(send(&mut t, "t/c"), Use::Known(2));
        assert_eq!(send(&mut t, "t/a"), Use::New(1));
        assert_eq!(t.by_topic.len(), 2);
    }

    #[test]
    fn a_lookup_alone_assigns_nothing() {
        let mut t = AliasTable::new(1);
        assert_eq!(t.lookup(&s("x/1")), Use::New(1));
        assert_eq!(t.lookup(&s("x/1")), Use::New(1));
        assert!(t.by_topic.is_empty());
    }

    /// A stream of publishes over more topics than aliases, some topics hot: the broker's view,
    /// rebuilt from what was sent, always resolves each publish to its own topic, and no alias
    /// is ever above the maximum.
    #[test]
    fn the_brokers_view_of_the_aliases_always_gives_back_the_topic() {
        for capacity in [1u16, 2, 5, 16] {
            let mut t = AliasTable::new(capacity);
            let mut broker: HashMap<u16, String> = HashMap::new();
            let mut state: u64 = 0x2545_F491_4F6C_DD1D;
            let (mut known, mut new) = (0, 0);
            for _ in 0..5000 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                // Half the publishes go to 3 hot topics, the rest to 40 others.
                let n = if state % 2 == 0 { state % 3 } else { 3 + state % 40 };
                let topic = format!("topic/{n}");
                match send(&mut t, &topic) {
                    Use::New(alias) => {
                        assert!((1..=capacity).contains(&alias));
                        broker.insert(alias, topic);
                        new += 1;
                    }
                    Use::Known(alias) => {
                        assert_eq!(broker.get(&alias), Some(&topic), "capacity {capacity}");
                        known += 1;
                    }
                }
                assert!(t.by_topic.len() <= usize::from(capacity));
            }
            assert!(known > 0 && new > 0, "capacity {capacity}: {known} known, {new} new");
        }
    }

    fn publish(topic: &str, payload: &'static [u8]) -> Publish {
        Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: s(topic),
            pkid: 1,
            properties: Properties::new(),
            payload: Bytes::from_static(payload),
        }
    }

    fn connack(topic_alias_maximum: Option<u32>) -> Properties {
        let mut p = Properties::new();
        if let Some(max) = topic_alias_maximum {
            p.push_int(PropertyId::TopicAliasMaximum, max).unwrap();
        }
        p
    }

    #[test]
    fn the_first_publish_carries_topic_and_alias_the_next_the_alias_alone() {
        let mut a = OutboundAliases::new(4, &connack(Some(10)), None);
        let p = publish("sensors/kitchen/temperature", b"21");
        let first = a.apply(&p, Version::V5).unwrap();
        assert_eq!(first.topic, p.topic);
        assert_eq!(first.properties.int(PropertyId::TopicAlias), Some(1));
        let second = a.apply(&p, Version::V5).unwrap();
        assert!(second.topic.is_empty());
        assert_eq!(second.properties.int(PropertyId::TopicAlias), Some(1));
        assert_eq!(second.payload, p.payload);
        assert!(second.encoded_len(Version::V5) < p.encoded_len(Version::V5));
    }

    #[test]
    fn the_broker_bounds_the_aliases_and_short_topics_go_as_they_are() {
        assert!(!OutboundAliases::new(4, &connack(None), None).active());
        assert!(!OutboundAliases::new(0, &connack(Some(10)), None).active());
        let mut a = OutboundAliases::new(100, &connack(Some(2)), None);
        assert_eq!(a.table.capacity, 2);
        assert_eq!(a.apply(&publish("a/b", b""), Version::V5), None);
        let mut own = publish("already/aliased", b"");
        own.properties.push_int(PropertyId::TopicAlias, 9).unwrap();
        assert_eq!(a.apply(&own, Version::V5), None);
        let resend = Publish {
            dup: true,
            ..publish("sent/before", b"")
        };
        assert_eq!(a.apply(&resend, Version::V5), None);
        assert!(a.table.by_topic.is_empty());
    }

    #[test]
    fn a_first_use_over_the_brokers_packet_size_goes_whole_without_an_alias() {
        let p = publish("long/enough/topic", b"payload");
        let exact = p.encoded_len(Version::V5);
        let mut a = OutboundAliases::new(4, &connack(Some(4)), Some(exact));
        assert_eq!(a.apply(&p, Version::V5), None);
        assert!(a.table.by_topic.is_empty(), "no alias was taken");
        let mut roomy = OutboundAliases::new(4, &connack(Some(4)), Some(exact + 3));
        assert!(roomy.apply(&p, Version::V5).is_some());
    }
}
