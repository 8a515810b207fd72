//! The subscriptions a client has registered, and how an inbound message finds its handlers.
//!
//! Ordinary filters live in the trie, keyed by the filter as subscribed. Shared subscriptions
//! (`$share/<name>/<filter>`) are kept beside it: the broker sends them messages published to
//! `<filter>`, so that is what they are matched against, while the whole filter stays their key
//! (to unsubscribe, or to replace one). A client has few of them, so a list does.
//!
//! MQTT 5 lets a SUBSCRIBE carry a Subscription Identifier, which the broker copies into every
//! message it sends for that subscription. The engine gives each SUBSCRIBE one (its first
//! registration's id) and keeps the registrations each identifier stands for, so a message that
//! carries identifiers reaches exactly the subscriptions it was sent for without walking the trie.
//! That also makes overlapping filters exact: mosquitto sends one copy per matching subscription,
//! and each copy reaches only its own handler.
use std::sync::Arc;

use crate::fxhash::FxHashMap;
use crate::topic::{filter_matches, split_shared};
use crate::trie::Trie;

use super::Subscription;

#[derive(Default)]
pub(crate) struct Registry {
    trie: Trie<Arc<Subscription>>,
    /// Shared subscriptions: (whole filter, registration).
    shared: Vec<(Box<str>, Arc<Subscription>)>,
    /// The registrations each Subscription Identifier in use stands for.
    by_sub_id: FxHashMap<u32, Vec<Arc<Subscription>>>,
}

impl Registry {
    /// Registers `sub` under `filter` (already validated); returns the registration it replaces.
    pub fn insert(&mut self, filter: &str, sub: Arc<Subscription>) -> Option<Arc<Subscription>> {
        if sub.sub_id != 0 {
            self.by_sub_id.entry(sub.sub_id).or_default().push(sub.clone());
        }
        let old = match split_shared(filter) {
            None => self.trie.insert(filter, sub),
            Some(_) => match self.shared.iter_mut().find(|(f, _)| &**f == filter) {
                Some((_, slot)) => Some(std::mem::replace(slot, sub)),
                None => {
                    self.shared.push((filter.into(), sub));
                    None
                }
            },
        };
        old.inspect(|o| self.forget_sub_id(o))
    }

    pub fn remove(&mut self, filter: &str) -> Option<Arc<Subscription>> {
        self.remove_if(filter, |_| true)
    }

    /// Removes the registration under `filter` if `pred` accepts it.
    pub fn remove_if(&mut self, filter: &str, pred: impl FnOnce(&Subscription) -> bool) -> Option<Arc<Subscription>> {
        let old = match split_shared(filter) {
            None => self.trie.remove_if(filter, |s| pred(s)),
            Some(_) => {
                let i = self.shared.iter().position(|(f, _)| &**f == filter)?;
                pred(&self.shared[i].1).then(|| self.shared.swap_remove(i).1)
            }
        };
        old.inspect(|o| self.forget_sub_id(o))
    }

    fn forget_sub_id(&mut self, old: &Arc<Subscription>) {
        if let Some(subs) = self.by_sub_id.get_mut(&old.sub_id) {
            subs.retain(|s| !Arc::ptr_eq(s, old));
            if subs.is_empty() {
                self.by_sub_id.remove(&old.sub_id);
            }
        }
    }

    /// Calls `f` for every registration a message on `topic` is for. With the message's
    /// Subscription Identifiers, those are the registrations the identifiers stand for whose
    /// filter matches (one per identifier but for multi-filter SUBSCRIBEs, and a check that also
    /// keeps a stale identifier from a resumed session from misdelivering); without any that
    /// names a matching registration, every registration whose filter matches.
    pub fn for_each_match(
        &self,
        topic: &str,
        sub_ids: impl Iterator<Item = u32>,
        mut f: impl FnMut(&Arc<Subscription>),
    ) {
        let mut found = false;
        for id in sub_ids {
            for s in self.by_sub_id.get(&id).into_iter().flatten() {
                if filter_matches(&s.filter, topic) {
                    found = true;
                    f(s);
                }
            }
        }
        if !found {
            self.trie.for_each_match(topic, &mut f);
            self.shared
                .iter()
                .filter(|(_, s)| filter_matches(&s.filter, topic))
                .for_each(|(_, s)| f(s));
        }
    }

    /// Every registration with its whole filter.
    pub fn filters(&self) -> Vec<(String, &Arc<Subscription>)> {
        let mut all = self.trie.filters();
        all.extend(self.shared.iter().map(|(f, s)| (f.to_string(), s)));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::QoS;
    use crate::engine::Handler;

    fn sub(id: u64, filter: &str, sub_id: u32) -> Arc<Subscription> {
        Arc::new(Subscription::new(
            id,
            filter,
            QoS::AtMostOnce.into(),
            sub_id,
            Handler::Queue {
                key: id as usize,
                guard: Box::new(()),
            },
        ))
    }

    fn matched(r: &Registry, topic: &str, sub_ids: &[u32]) -> Vec<u64> {
        let mut ids = Vec::new();
        r.for_each_match(topic, sub_ids.iter().copied(), |s| ids.push(s.id));
        ids.sort();
        ids
    }

    #[test]
    fn subscription_ids_pick_exactly_their_subscriptions() {
        let mut r = Registry::default();
        r.insert("a/#", sub(1, "a/#", 1));
        r.insert("a/+", sub(2, "a/+", 2));
        assert_eq!(matched(&r, "a/b", &[]), [1, 2], "no identifiers: every match");
        assert_eq!(matched(&r, "a/b", &[1]), [1], "the copy for subscription 1 only");
        assert_eq!(matched(&r, "a/b", &[2]), [2]);
        assert_eq!(matched(&r, "a/b", &[1, 2]), [1, 2], "one copy for both");
    }

    #[test]
    fn a_multi_filter_subscribe_shares_its_identifier_and_matching_sorts_it_out() {
        let mut r = Registry::default();
        r.insert("x/1", sub(5, "x/1", 5));
        r.insert("x/2", sub(6, "x/2", 5));
        assert_eq!(matched(&r, "x/2", &[5]), [6]);
    }

    #[test]
    fn unknown_or_stale_identifiers_fall_back_to_matching() {
        let mut r = Registry::default();
        r.insert("a", sub(1, "a", 1));
        r.insert("b", sub(2, "b", 2));
        assert_eq!(matched(&r, "a", &[99]), [1], "an identifier we never gave");
        // A resumed session may hold an old subscription whose identifier we now use elsewhere.
        assert_eq!(matched(&r, "a", &[2]), [1]);
    }

    #[test]
    fn replaced_and_removed_registrations_leave_the_identifier_table() {
        let mut r = Registry::default();
        r.insert("a", sub(1, "a", 1));
        let old = r.insert("a", sub(2, "a", 2)).unwrap();
        assert_eq!(old.id, 1);
        assert_eq!(matched(&r, "a", &[1]), [2], "identifier 1 is gone: matched instead");
        assert!(!r.by_sub_id.contains_key(&1));
        r.remove("a");
        assert!(r.by_sub_id.is_empty());
        assert_eq!(matched(&r, "a", &[2]), Vec::<u64>::new());
    }

    #[test]
    fn shared_subscriptions_match_on_their_filter_and_are_keyed_by_the_whole() {
        let mut r = Registry::default();
        r.insert("$share/g/t/+", sub(1, "t/+", 0));
        r.insert("$share/h/t/+", sub(2, "t/+", 0));
        r.insert("t/x", sub(3, "t/x", 0));
        assert_eq!(matched(&r, "t/x", &[]), [1, 2, 3]);
        assert_eq!(matched(&r, "$share/g/t/x", &[]), Vec::<u64>::new());
        assert_eq!(r.insert("$share/g/t/+", sub(4, "t/+", 0)).map(|s| s.id), Some(1));
        assert!(
            r.remove_if("$share/h/t/+", |s| s.id == 9).is_none(),
            "a newer registration stays"
        );
        assert_eq!(r.remove("$share/h/t/+").map(|s| s.id), Some(2));
        let mut all: Vec<String> = r.filters().into_iter().map(|(f, _)| f).collect();
        all.sort();
        assert_eq!(all, ["$share/g/t/+", "t/x"]);
    }
}
