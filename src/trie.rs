//! Subscription trie: MQTT topic filter -> value, and the lookup of every filter that matches a
//! topic name.
//!
//! Pure data structure: no I/O, no `unsafe`, no dependencies beyond the crate's hasher. Filters are expected to be valid
//! (validated by the caller); the trie does not re-check them.
//!
//! # Matching rule
//!
//! Filters and topic names are split into levels on `/`. Empty levels are real levels, so `"a//b"`
//! has three levels and `"/a"` has two, the first of them empty. A filter matches a topic when
//! the levels pair up as follows:
//!
//! - a literal level matches exactly the same level (byte-for-byte, case-sensitive);
//! - `+` matches exactly one level, whatever it contains (including an empty one);
//! - `#`, which can only be the last level, matches the parent level and any number of deeper
//!   levels: `"a/#"` matches `"a"`, `"a/b"` and `"a/b/c"`; `"#"` alone matches every topic.
//!
//! Exception (MQTT-4.7.2-1): a topic whose first character is `$` is not matched by a filter whose
//! first level is `+` or `#`. `"#"` and `"+/x"` therefore do not match `"$SYS/x"`, while
//! `"$SYS/#"` and `"$SYS/+"` do.
//!
//! A `#` level that is not the last level makes an invalid filter; should one reach the trie, it
//! is stored as a literal level, which no topic name can match.
//!
//! # Values and delivery
//!
//! The trie stores one value per distinct filter string; inserting an existing filter replaces
//! its value. [`Trie::for_each_match`] calls its closure exactly once for each stored filter that
//! matches the topic, so overlapping filters (`"a/b"`, `"a/+"`, `"a/#"`, `"#"`, `"+/b"`) each see
//! a topic once, and no filter ever sees it twice.
//!
//! # Visit order
//!
//! Unspecified, but deterministic: it depends only on the set of stored filters and the topic,
//! never on insertion order or hash-map layout. Currently the walk is breadth-first over the
//! topic's levels, literal child before `+` child; at each node it reports the filter ending in
//! `#` there first, then (if the topic ends at that level) the filter ending exactly there. For
//! `"a/b"` that gives `"#"`, `"a/#"`, `"a/b"`, `"a/+"`, `"+/b"`.
//!
//! # Cost
//!
//! Every distinct literal level string is interned once, as a small integer id, and the literal
//! edges of the whole trie live in one hash table keyed by (parent node, level id). A match
//! therefore splits and hashes each level of the topic exactly once, however many wildcard
//! branches then walk through that level; each step of each branch is one integer-keyed probe.
//! The cost grows with the topic's depth and the number of wildcard branches on its path, not
//! with the number of stored filters. (Hashing the level string at every node, as a per-node map
//! of strings does, makes a match several times slower with many filters: see `benches/trie.rs`.)
//! Nothing recurses per level (matching keeps its own list of the nodes a level reaches), so even
//! a filter of 65,535 levels is safe on a small thread stack.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::ops::ControlFlow;

use crate::fxhash::FxBuildHasher;

/// Index of a node in [`Trie::nodes`]. 32 bits keep nodes and edge keys small; four billion
/// nodes would need far more memory than any subscriber has.
type NodeId = u32;

/// Id of an interned literal level; see [`Levels`].
type LevelId = u32;

/// What a topic level resolves to when no filter has it as a literal level.
const UNKNOWN_LEVEL: LevelId = LevelId::MAX;

/// The literal level strings in use, each under a small id. An id is shared by every edge with
/// that label and freed when the last such edge goes.
#[derive(Default)]
struct Levels {
    /// Levels of up to [`SHORT`] bytes, the usual case, under their [`short_key`].
    short: HashMap<u128, LevelId, FxBuildHasher>,
    long: HashMap<Box<[u8]>, LevelId, FxBuildHasher>,
    /// Edges labelled with each id; 0 marks a free id.
    uses: Vec<u32>,
    free: Vec<LevelId>,
}

/// The longest level kept as a [`short_key`]: the length takes the 16th byte.
const SHORT: usize = 15;

/// A level of up to [`SHORT`] bytes as one integer: its bytes, then its length in the top byte,
/// so that distinct levels have distinct keys. A lookup then compares integers; comparing the
/// bytes would call `memcmp` for every topic level, a visible share of a match's time in
/// `benches/trie.rs`.
#[inline]
fn short_key(level: &[u8]) -> Option<u128> {
    if level.len() > SHORT {
        return None;
    }
    let bytes = level.iter().enumerate();
    Some(bytes.fold((level.len() as u128) << 120, |key, (i, &b)| {
        key | u128::from(b) << (8 * i)
    }))
}

impl Levels {
    #[inline]
    fn get(&self, level: &[u8]) -> LevelId {
        let id = match short_key(level) {
            Some(key) => self.short.get(&key),
            None => self.long.get(level),
        };
        id.copied().unwrap_or(UNKNOWN_LEVEL)
    }

    /// The id of `level`, counting one more edge labelled with it.
    fn acquire(&mut self, level: &str) -> LevelId {
        let mut id = self.get(level.as_bytes());
        if id == UNKNOWN_LEVEL {
            id = match self.free.pop() {
                Some(id) => id,
                None => {
                    self.uses.push(0);
                    LevelId::try_from(self.uses.len() - 1)
                        .ok()
                        .filter(|&id| id != UNKNOWN_LEVEL)
                        .expect("fewer than 2^32 distinct levels")
                }
            };
            match short_key(level.as_bytes()) {
                Some(key) => self.short.insert(key, id),
                None => self.long.insert(level.as_bytes().into(), id),
            };
        }
        self.uses[id as usize] += 1;
        id
    }

    /// One edge labelled `level` is gone.
    fn release(&mut self, level: &str, id: LevelId) {
        let uses = &mut self.uses[id as usize];
        *uses -= 1;
        if *uses == 0 {
            match short_key(level.as_bytes()) {
                Some(key) => self.short.remove(&key),
                None => self.long.remove(level.as_bytes()),
            };
            self.free.push(id);
        }
    }

    /// Every level in use, indexed by id (free ids are empty).
    fn names(&self) -> Vec<String> {
        let mut names = vec![String::new(); self.uses.len()];
        for (&key, &id) in &self.short {
            let len = (key >> 120) as usize;
            let bytes = key.to_le_bytes()[..len].to_vec();
            names[id as usize] = String::from_utf8(bytes).expect("levels are made from &str");
        }
        for (level, &id) in &self.long {
            names[id as usize] = String::from_utf8(level.to_vec()).expect("levels are made from &str");
        }
        names
    }
}

#[inline]
fn edge_key(parent: NodeId, level: LevelId) -> u64 {
    (u64::from(level) << 32) | u64::from(parent)
}

/// One filter level, living in [`Trie::nodes`] and linked by index, so that no operation (drop
/// included) recurses once per level: a valid filter can have 65,535 levels.
///
/// Only what a match walk reads at every node is here, in 12 bytes; the values are apart, in
/// [`Trie::slots`], and read only where `filled` says there is one. With many filters the nodes
/// then take a fraction of the cache they would take with the values inline, which matters
/// because a match is cache-miss bound (see `benches/trie.rs`).
#[derive(Clone, Copy, Default)]
struct Node {
    /// The `+` child, or [`ROOT`] for none (the root is nobody's child).
    single: NodeId,
    /// How many literal children this node has in [`Trie::edges`]; a match skips the probe when
    /// there are none, and pruning needs to know when a node is empty.
    literals: u32,
    /// The [`Slot`]s of this node holding a value, one bit each.
    filled: u8,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.filled == 0 && self.literals == 0 && self.single == ROOT
    }

    #[inline]
    fn single(&self) -> Option<NodeId> {
        Some(self.single).filter(|&child| child != ROOT)
    }

    #[inline]
    fn has(&self, slot: Slot) -> bool {
        self.filled & slot as u8 != 0
    }
}

/// The values stored at one node, at the node's index in [`Trie::slots`].
struct Slots<V> {
    /// The filter that ends at this level.
    value: Option<V>,
    /// The filter that is this node's path followed by `/#` (`"#"` itself at the root). `#` is
    /// always the last level, so it needs only a value, not a node.
    multi: Option<V>,
}

// Manual so that `V` need not be `Default`.
impl<V> Default for Slots<V> {
    fn default() -> Self {
        Slots {
            value: None,
            multi: None,
        }
    }
}

impl<V> Slots<V> {
    fn get(&self, slot: Slot) -> &Option<V> {
        match slot {
            Slot::Value => &self.value,
            Slot::Multi => &self.multi,
        }
    }

    fn get_mut(&mut self, slot: Slot) -> &mut Option<V> {
        match slot {
            Slot::Value => &mut self.value,
            Slot::Multi => &mut self.multi,
        }
    }
}

/// The empty path; it never holds a `value`, since every filter has at least one level.
const ROOT: NodeId = 0;

/// The two values a node can hold; the discriminants are the bits of [`Node::filled`].
#[derive(Clone, Copy)]
enum Slot {
    Value = 1,
    Multi = 2,
}

/// Splits a filter into the levels leading to its node and the slot it occupies there.
fn parse_filter(filter: &str) -> (impl Iterator<Item = &str>, Slot) {
    let (path, slot) = if filter == "#" {
        (None, Slot::Multi)
    } else if let Some(path) = filter.strip_suffix("/#") {
        (Some(path), Slot::Multi)
    } else {
        (Some(filter), Slot::Value)
    };
    (path.into_iter().flat_map(|path| path.split('/')), slot)
}

/// A list kept on the call stack up to `N` items and spilled to the heap beyond, so that a
/// match of a topic of ordinary depth allocates nothing.
struct SmallList<T, const N: usize> {
    inline: [T; N],
    len: usize,
    spill: Vec<T>,
}

impl<T: Copy + Default, const N: usize> SmallList<T, N> {
    fn new() -> Self {
        SmallList {
            inline: [T::default(); N],
            len: 0,
            spill: Vec::new(),
        }
    }

    #[inline]
    fn push(&mut self, item: T) {
        match self.inline.get_mut(self.len) {
            Some(slot) => *slot = item,
            None => self.spill.push(item),
        }
        self.len += 1;
    }

    #[inline]
    fn extend(&mut self, item: Option<T>) {
        if let Some(item) = item {
            self.push(item);
        }
    }

    fn clear(&mut self) {
        self.len = 0;
        self.spill.clear();
    }

    #[inline]
    fn get(&self, i: usize) -> T {
        match self.inline.get(i) {
            Some(&item) => item,
            None => self.spill[i - N],
        }
    }
}

/// Receives what a match walk finds. Breaking stops the walk.
trait Sink<V> {
    fn visit(&mut self, value: &V) -> ControlFlow<()>;

    /// Called for each node the walk enters, so tests can measure the cost of a match.
    fn enter(&mut self) {}
}

impl<V, F: FnMut(&V) -> ControlFlow<()>> Sink<V> for F {
    #[inline]
    fn visit(&mut self, value: &V) -> ControlFlow<()> {
        self(value)
    }
}

/// MQTT topic filter -> value. See the [module documentation](self) for the matching rule.
pub struct Trie<V> {
    /// `nodes[ROOT]` is the root; unused entries are listed in `free` and hold empty nodes.
    nodes: Vec<Node>,
    /// The values of `nodes[i]` are in `slots[i]`; the two vectors always have the same length.
    slots: Vec<Slots<V>>,
    free: Vec<NodeId>,
    /// Literal edges: [`edge_key`]`(parent, level)` -> child.
    edges: HashMap<u64, NodeId, FxBuildHasher>,
    levels: Levels,
    len: usize,
}

impl<V> Default for Trie<V> {
    fn default() -> Self {
        Trie {
            nodes: vec![Node::default()],
            slots: vec![Slots::default()],
            free: Vec::new(),
            edges: HashMap::default(),
            levels: Levels::default(),
            len: 0,
        }
    }
}

impl<V> Trie<V> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores `value` under `filter`, returning the value it replaces.
    pub fn insert(&mut self, filter: &str, value: V) -> Option<V> {
        let (levels, slot) = parse_filter(filter);
        let mut node = ROOT;
        for level in levels {
            node = match self.child(node, level) {
                Some(child) => child,
                None => self.add_child(node, level),
            };
        }
        self.nodes[node as usize].filled |= slot as u8;
        let old = self.slots[node as usize].get_mut(slot).replace(value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// The value stored under exactly this filter (no wildcard matching).
    pub fn get(&self, filter: &str) -> Option<&V> {
        let (levels, slot) = parse_filter(filter);
        let mut node = ROOT;
        for level in levels {
            node = self.child(node, level)?;
        }
        self.slots[node as usize].get(slot).as_ref()
    }

    /// Removes `filter`, pruning the nodes this leaves empty.
    pub fn remove(&mut self, filter: &str) -> Option<V> {
        self.remove_if(filter, |_| true)
    }

    /// Removes `filter` only when `pred` accepts its value (e.g. "only if it is still the
    /// subscription I registered"), pruning the nodes this leaves empty. `pred` is not called
    /// when the filter is absent.
    pub fn remove_if(&mut self, filter: &str, pred: impl FnOnce(&V) -> bool) -> Option<V> {
        let (levels, slot) = parse_filter(filter);
        let mut edges = Vec::new();
        let mut node = ROOT;
        for level in levels {
            let child = self.child(node, level)?;
            edges.push((node, level));
            node = child;
        }
        let value = self.slots[node as usize].get_mut(slot).take_if(|value| pred(value))?;
        self.nodes[node as usize].filled &= !(slot as u8);
        self.len -= 1;
        while let Some((parent, level)) = edges.pop() {
            if !self.node(node).is_empty() {
                break;
            }
            if level == "+" {
                self.node_mut(parent).single = ROOT;
            } else {
                let id = self.levels.get(level.as_bytes());
                self.edges.remove(&edge_key(parent, id));
                self.levels.release(level, id);
                self.node_mut(parent).literals -= 1;
            }
            self.free.push(node);
            node = parent;
        }
        Some(value)
    }

    /// Number of stored filters.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Calls `f` once for each stored filter matching `topic`, a topic name (no wildcards), in
    /// the order described in the module documentation.
    pub fn for_each_match(&self, topic: &str, mut f: impl FnMut(&V)) {
        // The sink never breaks, so the walk always completes.
        let _ = self.walk(topic, &mut |value: &V| {
            f(value);
            ControlFlow::Continue(())
        });
    }

    /// Whether any stored filter matches `topic`; stops at the first match.
    pub fn matches(&self, topic: &str) -> bool {
        self.walk(topic, &mut |_: &V| ControlFlow::Break(())).is_break()
    }

    /// Every stored filter with its value, in unspecified order.
    pub fn filters(&self) -> Vec<(String, &V)> {
        let names = self.levels.names();
        let mut children: HashMap<NodeId, Vec<(&str, NodeId)>> = HashMap::new();
        for (&key, &child) in &self.edges {
            let (parent, level) = (key as NodeId, (key >> 32) as LevelId);
            children
                .entry(parent)
                .or_default()
                .push((&names[level as usize], child));
        }
        let push_children = |stack: &mut Vec<(String, NodeId)>, path: Option<&str>, index: NodeId| {
            let path_to = |level: &str| match path {
                None => level.to_owned(),
                Some(path) => format!("{path}/{level}"),
            };
            let literal = children.get(&index).into_iter().flatten();
            stack.extend(literal.map(|&(level, child)| (path_to(level), child)));
            stack.extend(self.node(index).single().map(|child| (path_to("+"), child)));
        };

        let mut out = Vec::with_capacity(self.len);
        out.extend(
            self.slots[ROOT as usize]
                .multi
                .as_ref()
                .map(|value| ("#".to_owned(), value)),
        );
        let mut stack = Vec::new();
        push_children(&mut stack, None, ROOT);
        while let Some((path, index)) = stack.pop() {
            let slots = &self.slots[index as usize];
            out.extend(slots.multi.as_ref().map(|value| (format!("{path}/#"), value)));
            push_children(&mut stack, Some(&path), index);
            out.extend(slots.value.as_ref().map(|value| (path, value)));
        }
        out
    }

    /// Removes every filter, returning their values.
    pub fn drain(&mut self) -> Vec<V> {
        let slots = std::mem::take(self).slots;
        slots
            .into_iter()
            .flat_map(|slots| slots.value.into_iter().chain(slots.multi))
            .collect()
    }

    #[inline]
    fn node(&self, index: NodeId) -> &Node {
        &self.nodes[index as usize]
    }

    fn node_mut(&mut self, index: NodeId) -> &mut Node {
        &mut self.nodes[index as usize]
    }

    /// The literal child of `node` labelled `level` (an id, possibly [`UNKNOWN_LEVEL`]).
    #[inline]
    fn literal_child(&self, node: NodeId, level: LevelId) -> Option<NodeId> {
        if level == UNKNOWN_LEVEL || self.node(node).literals == 0 {
            return None;
        }
        self.edges.get(&edge_key(node, level)).copied()
    }

    fn child(&self, node: NodeId, level: &str) -> Option<NodeId> {
        match level {
            "+" => self.node(node).single(),
            _ => self.literal_child(node, self.levels.get(level.as_bytes())),
        }
    }

    fn add_child(&mut self, node: NodeId, level: &str) -> NodeId {
        // A freed node was pruned because it was empty, values included, so it is reused as is.
        let child = match self.free.pop() {
            Some(child) => child,
            None => {
                self.nodes.push(Node::default());
                self.slots.push(Slots::default());
                NodeId::try_from(self.nodes.len() - 1).expect("fewer than 2^32 trie nodes")
            }
        };
        if level == "+" {
            self.node_mut(node).single = child;
        } else {
            let id = self.levels.acquire(level);
            match self.edges.entry(edge_key(node, id)) {
                Entry::Vacant(edge) => edge.insert(child),
                Entry::Occupied(_) => unreachable!("add_child is only called for a missing child"),
            };
            self.node_mut(node).literals += 1;
        }
        child
    }

    /// Breadth-first walk, one topic level at a time. The nodes one level reaches are independent
    /// of each other, so their lookups, each likely a cache miss in a large trie, overlap in the
    /// processor; depth-first, each lookup would wait for the one before (see `benches/trie.rs`).
    /// Entering each node at most once is what guarantees one visit per filter: the trie is a
    /// tree, and a topic level leads from a node to two distinct children, literal and `+`.
    fn walk(&self, topic: &str, sink: &mut impl Sink<V>) -> ControlFlow<()> {
        let mut frontier: SmallList<NodeId, 16> = SmallList::new();
        let mut reached: SmallList<NodeId, 16> = SmallList::new();
        frontier.push(ROOT);
        // MQTT-4.7.2-1: only a literal first level can match a `$` topic, so the root's `#` and
        // `+` are skipped.
        let mut wildcards = !topic.starts_with('$');
        for level in topic.as_bytes().split(|&b| b == b'/') {
            let id = self.levels.get(level);
            for i in 0..frontier.len {
                let index = frontier.get(i);
                let node = *self.node(index);
                sink.enter();
                if wildcards {
                    if node.has(Slot::Multi) {
                        self.visit(index, Slot::Multi, sink)?;
                    }
                    reached.extend(self.literal_child(index, id));
                    reached.extend(node.single());
                } else {
                    reached.extend(self.literal_child(index, id));
                }
            }
            if reached.len == 0 {
                return ControlFlow::Continue(());
            }
            wildcards = true;
            std::mem::swap(&mut frontier, &mut reached);
            reached.clear();
        }
        for i in 0..frontier.len {
            let index = frontier.get(i);
            let node = *self.node(index);
            sink.enter();
            for slot in [Slot::Multi, Slot::Value] {
                if node.has(slot) {
                    self.visit(index, slot, sink)?;
                }
            }
        }
        ControlFlow::Continue(())
    }

    #[inline]
    fn visit(&self, index: NodeId, slot: Slot, sink: &mut impl Sink<V>) -> ControlFlow<()> {
        match self.slots[index as usize].get(slot) {
            Some(value) => sink.visit(value),
            None => ControlFlow::Continue(()),
        }
    }
}

#[cfg(test)]
impl<V> Trie<V> {
    /// Live nodes below the root; 0 once every filter is removed.
    fn node_count(&self) -> usize {
        let live = self.nodes.len() - self.free.len() - 1;
        let reachable = self
            .nodes
            .iter()
            .map(|n| n.literals as usize + usize::from(n.single().is_some()));
        assert_eq!(reachable.sum::<usize>(), live, "every live node has exactly one parent");
        assert_eq!(
            self.edges.len(),
            self.nodes.iter().map(|n| n.literals as usize).sum::<usize>()
        );
        live
    }

    /// Nodes a match of `topic` enters, root included.
    fn match_visits(&self, topic: &str) -> usize {
        struct CountNodes(usize);
        impl<V> Sink<V> for CountNodes {
            fn visit(&mut self, _: &V) -> ControlFlow<()> {
                ControlFlow::Continue(())
            }
            fn enter(&mut self) {
                self.0 += 1;
            }
        }
        let mut counter = CountNodes(0);
        let _ = self.walk(topic, &mut counter);
        counter.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    fn matched<V: Clone>(trie: &Trie<V>, topic: &str) -> Vec<V> {
        let mut out = Vec::new();
        trie.for_each_match(topic, |value| out.push(value.clone()));
        out
    }

    /// Straight from the rule in the module doc, one filter at a time.
    fn naive_match(filter: &str, topic: &str) -> bool {
        let filter: Vec<&str> = filter.split('/').collect();
        let topic: Vec<&str> = topic.split('/').collect();
        if topic[0].starts_with('$') && (filter[0] == "+" || filter[0] == "#") {
            return false;
        }
        for (i, level) in filter.iter().enumerate() {
            if *level == "#" && i == filter.len() - 1 {
                return true;
            }
            match topic.get(i) {
                None => return false,
                Some(t) if *level != "+" && level != t => return false,
                Some(_) => {}
            }
        }
        filter.len() == topic.len()
    }

    const TABLE: &[(&str, &str, bool)] = &[
        // literal
        ("a", "a", true),
        ("a", "b", false),
        ("a", "A", false),
        ("a/b", "a/b", true),
        ("a/b", "a", false),
        ("a", "a/b", false),
        ("a/b/c", "a/b/c", true),
        ("a/b/c", "a/b/d", false),
        // '+'
        ("+", "a", true),
        ("+", "a/b", false),
        ("+", "", true),
        ("a/+", "a/b", true),
        ("a/+", "a", false),
        ("a/+", "a/b/c", false),
        ("a/+", "a/", true),
        ("+/b", "a/b", true),
        ("+/b", "/b", true),
        ("+/+", "a/b", true),
        ("+/+", "/", true),
        ("+/+", "a", false),
        ("a/+/c", "a/b/c", true),
        ("a/+/c", "a//c", true),
        ("a/+/c", "a/b/d", false),
        // '#', including the parent level
        ("#", "a", true),
        ("#", "a/b/c", true),
        ("#", "/", true),
        ("#", "", true),
        ("a/#", "a", true),
        ("a/#", "a/b", true),
        ("a/#", "a/b/c", true),
        ("a/#", "a/", true),
        ("a/#", "b", false),
        ("a/#", "ab", false),
        ("a/b/#", "a", false),
        ("+/#", "a", true),
        ("+/#", "a/b/c", true),
        ("a/+/#", "a", false),
        ("a/+/#", "a/b", true),
        // empty levels and leading '/'
        ("", "", true),
        ("", "a", false),
        ("/", "/", true),
        ("/", "", false),
        ("/a", "/a", true),
        ("/a", "a", false),
        ("a", "/a", false),
        ("a//b", "a//b", true),
        ("a//b", "a/b", false),
        ("a//b", "a/x/b", false),
        ("/#", "/a/b", true),
        ("/#", "a", false),
        ("+/a", "/a", true),
        ("a/", "a/", true),
        ("a/", "a", false),
        // '$' topics (MQTT-4.7.2-1)
        ("#", "$SYS", false),
        ("#", "$SYS/x", false),
        ("+", "$SYS", false),
        ("+/x", "$SYS/x", false),
        ("+/#", "$SYS/x", false),
        ("$SYS/#", "$SYS/x", true),
        ("$SYS/#", "$SYS", true),
        ("$SYS/#", "$SYS/x/y", true),
        ("$SYS/+", "$SYS/x", true),
        ("$SYS/+", "$SYS", false),
        ("$SYS", "$SYS", true),
        ("$SYS/x", "$SYS/x", true),
        ("$SYS/#", "$OTHER/x", false),
        ("#", "a/$SYS", true),
        ("a/+", "a/$x", true),
        ("#", "x$", true),
        // wildcard characters inside a level are literals
        ("a+", "a+", true),
        ("a+", "ab", false),
        // long levels
        (
            "x/a-level-of-28-bytes-long-xyz/+",
            "x/a-level-of-28-bytes-long-xyz/y",
            true,
        ),
        (
            "x/a-level-of-28-bytes-long-xyz/+",
            "x/a-level-of-28-bytes-long-xyZ/y",
            false,
        ),
        ("twenty-two-bytes-exact", "twenty-two-bytes-exact", true),
        ("a-level-of-23-bytes-xyz", "a-level-of-23-bytes-xyz", true),
        ("a-level-of-23-bytes-xyz", "a-level-of-23-bytes-xyZ", false),
    ];

    #[test]
    fn matching_table() {
        assert!(TABLE.len() >= 40);
        for &(filter, topic, expected) in TABLE {
            let mut trie = Trie::new();
            trie.insert(filter, ());
            assert_eq!(trie.matches(topic), expected, "filter {filter:?}, topic {topic:?}");
            let mut calls = 0;
            trie.for_each_match(topic, |_| calls += 1);
            assert_eq!(calls, usize::from(expected), "filter {filter:?}, topic {topic:?}");
            assert_eq!(
                naive_match(filter, topic),
                expected,
                "reference disagrees on {filter:?}"
            );
        }
    }

    #[test]
    fn whole_table_in_one_trie() {
        let mut trie = Trie::new();
        for &(filter, _, _) in TABLE {
            trie.insert(filter, filter);
        }
        for &(filter, topic, expected) in TABLE {
            assert_eq!(
                matched(&trie, topic).contains(&filter),
                expected,
                "{filter:?} {topic:?}"
            );
        }
    }

    #[test]
    fn overlapping_filters_each_called_exactly_once() {
        let filters = ["a/b", "a/+", "a/#", "#", "+/b", "+/#", "+/+", "a/b/#"];
        let mut trie = Trie::new();
        for (i, filter) in filters.iter().enumerate() {
            trie.insert(filter, i);
        }
        let mut counts = vec![0; filters.len()];
        trie.for_each_match("a/b", |&i| counts[i] += 1);
        assert_eq!(counts, vec![1; filters.len()]);

        // Only the parent-level reading of the '#' filters applies here.
        let mut counts = vec![0; filters.len()];
        trie.for_each_match("a", |&i| counts[i] += 1);
        assert_eq!(counts, [0, 0, 1, 1, 0, 1, 0, 0]);
    }

    #[test]
    fn visit_order_is_the_documented_one() {
        let mut trie = Trie::new();
        for filter in ["+/b", "a/+", "a/b", "a/#", "#"] {
            trie.insert(filter, filter);
        }
        assert_eq!(matched(&trie, "a/b"), ["#", "a/#", "a/b", "a/+", "+/b"]);

        let mut reversed = Trie::new();
        for filter in ["#", "a/#", "a/b", "a/+", "+/b"] {
            reversed.insert(filter, filter);
        }
        assert_eq!(matched(&reversed, "a/b"), matched(&trie, "a/b"));
    }

    #[test]
    fn replace_returns_old_value_and_only_new_is_visited() {
        let mut trie = Trie::new();
        assert_eq!(trie.insert("a/+", 1), None);
        assert_eq!(trie.insert("a/+", 2), Some(1));
        assert_eq!(trie.len(), 1);
        assert_eq!(trie.get("a/+"), Some(&2));
        assert_eq!(matched(&trie, "a/x"), [2]);

        assert_eq!(trie.insert("#", 3), None);
        assert_eq!(trie.insert("#", 4), Some(3));
        assert_eq!(trie.len(), 2);
        assert_eq!(matched(&trie, "a/x"), [4, 2]);
    }

    #[test]
    fn get_is_exact_not_matching() {
        let mut trie = Trie::new();
        trie.insert("a/+", 1);
        trie.insert("a/#", 2);
        trie.insert("a", 3);
        assert_eq!(trie.get("a/+"), Some(&1));
        assert_eq!(trie.get("a/#"), Some(&2));
        assert_eq!(trie.get("a"), Some(&3));
        assert_eq!(trie.get("a/b"), None);
        assert_eq!(trie.get("#"), None);
        assert_eq!(trie.get("+"), None);
        assert_eq!(trie.get(""), None);
    }

    #[test]
    fn remove_stops_matching_and_prunes_every_node() {
        let filters = ["a/b/c", "a/b", "a/+/c", "a/#", "#", "+", "", "/", "a//b", "$SYS/#"];
        let mut trie = Trie::new();
        for (i, filter) in filters.iter().enumerate() {
            trie.insert(filter, i);
        }
        assert!(trie.node_count() > 0);

        assert_eq!(trie.remove("a/b/c"), Some(0));
        assert!(!matched(&trie, "a/b/c").contains(&0));
        assert!(matched(&trie, "a/b/c").contains(&2), "sibling filter still matches");
        assert_eq!(trie.get("a/b"), Some(&1), "ancestor filter survives");

        for (i, filter) in filters.iter().enumerate().skip(1) {
            assert_eq!(trie.remove(filter), Some(i), "{filter:?}");
            assert_eq!(trie.get(filter), None);
        }
        assert!(trie.is_empty());
        assert_eq!(trie.len(), 0);
        assert_eq!(trie.node_count(), 0);
        assert!(trie.node(ROOT).is_empty());
        for topic in ["a/b/c", "a", "", "/", "$SYS/x"] {
            assert!(!trie.matches(topic));
        }
    }

    #[test]
    fn remove_prunes_only_what_it_empties() {
        let mut trie = Trie::new();
        trie.insert("a/b/c/d", ());
        trie.insert("a/x", ());
        assert_eq!(trie.node_count(), 5);
        trie.remove("a/b/c/d");
        assert_eq!(trie.node_count(), 2, "a and a/x remain");
        assert!(trie.matches("a/x"));
    }

    #[test]
    fn siblings_survive_growing_and_shrinking_the_children() {
        let mut trie = Trie::new();
        let siblings = ["p/a", "p/b", "p/c", "p/a-level-longer-than-twenty-two-bytes"];
        for (added, filter) in siblings.iter().enumerate() {
            trie.insert(filter, added);
            for (i, stored) in siblings.iter().enumerate().take(added + 1) {
                assert_eq!(matched(&trie, stored), [i], "{stored:?} after adding {filter:?}");
            }
        }
        for (removed, filter) in siblings.iter().enumerate() {
            assert_eq!(trie.remove(filter), Some(removed));
            assert!(!trie.matches(filter));
            for (i, stored) in siblings.iter().enumerate().skip(removed + 1) {
                assert_eq!(matched(&trie, stored), [i], "{stored:?} after removing {filter:?}");
                assert_eq!(trie.get(stored), Some(&i));
            }
        }
        assert_eq!(trie.node_count(), 0);
    }

    #[test]
    fn remove_if_false_keeps_the_filter() {
        let mut trie = Trie::new();
        trie.insert("a/+", 7);
        let nodes = trie.node_count();
        assert_eq!(trie.remove_if("a/+", |&v| v == 8), None);
        assert_eq!(trie.get("a/+"), Some(&7));
        assert_eq!(trie.len(), 1);
        assert_eq!(trie.node_count(), nodes);
        assert!(trie.matches("a/b"));

        assert_eq!(trie.remove_if("a/+", |&v| v == 7), Some(7));
        assert!(trie.is_empty());
        assert_eq!(trie.node_count(), 0);
    }

    #[test]
    fn remove_if_on_missing_filter_does_not_call_pred() {
        let mut trie = Trie::new();
        trie.insert("a/b", 1);
        assert_eq!(trie.remove_if("a/c", |_| panic!("no value to judge")), None);
        assert_eq!(trie.remove_if("a", |_| panic!("no value to judge")), None);
    }

    #[test]
    fn remove_missing_filter_returns_none_and_changes_nothing() {
        let mut trie = Trie::new();
        for filter in ["a/b", "a/#", "+/c"] {
            trie.insert(filter, filter);
        }
        let before = (trie.len(), trie.node_count(), sorted(trie.filters()));
        // Prefixes, extensions and wildcard look-alikes of stored filters.
        for missing in ["a", "a/b/c", "a/+", "#", "+", "+/c/d", "x", "", "a/b/#"] {
            assert_eq!(trie.remove(missing), None, "{missing:?}");
        }
        assert_eq!((trie.len(), trie.node_count(), sorted(trie.filters())), before);
        assert_eq!(matched(&trie, "a/b"), ["a/#", "a/b"]);
    }

    fn sorted<V: Clone + Ord>(filters: Vec<(String, &V)>) -> Vec<(String, V)> {
        let mut owned: Vec<_> = filters.into_iter().map(|(f, v)| (f, v.clone())).collect();
        owned.sort();
        owned
    }

    #[test]
    fn filters_round_trip_exactly() {
        let inserted = [
            "", "/", "//", "a//b", "#", "+", "+/+", "/#", "+/#", "a", "a/", "/a", "a/b", "a/+", "a/#", "a/+/#",
            "$SYS/#", "$SYS/+", "a+/b#",
        ];
        let mut trie = Trie::new();
        for filter in inserted {
            trie.insert(filter, filter.to_owned());
        }
        let listed = trie.filters();
        assert_eq!(listed.len(), inserted.len());
        for (filter, value) in &listed {
            assert_eq!(filter, *value, "each filter comes back with its own value");
        }
        let listed: BTreeSet<&str> = listed.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(listed, inserted.into_iter().collect());

        // Re-subscribing from the list rebuilds the same trie.
        let mut rebuilt = Trie::new();
        for (filter, value) in trie.filters() {
            rebuilt.insert(&filter, value.clone());
        }
        assert_eq!(sorted(rebuilt.filters()), sorted(trie.filters()));
        assert_eq!(rebuilt.node_count(), trie.node_count());
    }

    #[test]
    fn drain_returns_every_value_and_empties() {
        let mut trie = Trie::new();
        for (i, filter) in ["a", "a/b", "#", "+/x", "a/#", ""].iter().enumerate() {
            trie.insert(filter, i);
        }
        let mut drained = trie.drain();
        drained.sort();
        assert_eq!(drained, [0, 1, 2, 3, 4, 5]);
        assert!(trie.is_empty());
        assert_eq!(trie.node_count(), 0);
        assert!(!trie.matches("a"));
        assert!(trie.drain().is_empty());

        trie.insert("a", 9);
        assert_eq!(matched(&trie, "a"), [9], "usable after drain");
    }

    #[test]
    fn dropping_drops_every_value() {
        use std::rc::Rc;
        let token = Rc::new(());
        let mut trie = Trie::new();
        for filter in ["a", "a/b", "#", "+/x", "a/#"] {
            trie.insert(filter, Rc::clone(&token));
        }
        assert_eq!(Rc::strong_count(&token), 6);
        drop(trie);
        assert_eq!(Rc::strong_count(&token), 1);
    }

    #[test]
    fn deep_filter_inserts_matches_and_drops() {
        // A 64 KiB filter of empty levels: the deepest a valid MQTT filter can be.
        let filter = "/".repeat(u16::MAX as usize - 2) + "#";
        let topic = "/".repeat(u16::MAX as usize);
        // Far less stack than one frame per level would need, even in a debug build.
        std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(move || {
                let mut trie = Trie::new();
                trie.insert(&filter, 1);
                assert!(trie.matches(&topic));
                assert_eq!(trie.filters()[0].0, filter);
                assert_eq!(trie.remove(&filter), Some(1));
                trie.insert(&filter, 2);
                drop(trie);
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn match_cost_grows_with_depth_not_filter_count() {
        fn build(n: usize) -> Trie<usize> {
            let mut trie = Trie::new();
            trie.insert("site/1/dev/2/temp", 0);
            for i in 1..n {
                trie.insert(&format!("other{i}/dev/{i}/temp"), i);
            }
            trie
        }
        let small = build(10);
        let large = build(100_000);
        assert_eq!(large.len(), 100_000);
        let topic = "site/1/dev/2/temp";
        assert_eq!(matched(&small, topic), [0]);
        assert_eq!(matched(&large, topic), [0]);
        // Root plus one node per level, whatever the trie's size.
        assert_eq!(small.match_visits(topic), 6);
        assert_eq!(large.match_visits(topic), 6);
        assert_eq!(large.match_visits("nowhere/x/y"), 1);

        // Deeper topics cost more: the count follows the depth.
        let mut deep = Trie::new();
        deep.insert(&["l"; 50].join("/"), ());
        assert_eq!(deep.match_visits(&["l"; 10].join("/")), 11);
        assert_eq!(deep.match_visits(&["l"; 50].join("/")), 51);
    }

    #[test]
    fn wide_levels_spill_past_the_inline_lists() {
        // Every node on the path "a/a/…" has both a literal and a `+` child, so level k of the
        // walk reaches k + 1 nodes (the literal path and k paths with one `+`): up to 41, more
        // than the inline capacity.
        const DEPTH: usize = 40;
        let mut trie = Trie::new();
        for plus_at in 0..=DEPTH {
            let mut levels = vec!["a"; DEPTH];
            if plus_at < DEPTH {
                levels[plus_at] = "+";
            }
            trie.insert(&levels.join("/"), plus_at);
        }
        let mut got = matched(&trie, &["a"; DEPTH].join("/"));
        got.sort();
        assert_eq!(got, (0..=DEPTH).collect::<Vec<_>>());
        assert!(matched(&trie, &["b"; DEPTH].join("/")).is_empty());
    }

    #[test]
    fn dollar_topic_skips_only_root_wildcards() {
        let mut trie = Trie::new();
        for filter in ["#", "+", "+/x", "$SYS/#", "$SYS/+"] {
            trie.insert(filter, filter);
        }
        assert_eq!(matched(&trie, "$SYS/x"), ["$SYS/#", "$SYS/+"]);
        assert_eq!(matched(&trie, "$SYS"), ["$SYS/#"]);
        assert_eq!(matched(&trie, "$"), Vec::<&str>::new());
        assert_eq!(trie.match_visits("$SYS/x"), 3, "root, $SYS, and $SYS's '+'");
    }

    /// splitmix64: deterministic, so a failure reproduces.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len())]
        }
    }

    const TOPIC_LEVELS: &[&str] = &["a", "b", "c", "", "$SYS", "$"];

    fn random_filter(rng: &mut Rng) -> String {
        let depth = 1 + rng.below(4);
        let mut levels: Vec<&str> = (0..depth)
            .map(|_| rng.pick(&["a", "b", "c", "", "+", "+", "$SYS"]))
            .collect();
        if rng.below(4) == 0 {
            levels.push("#");
        }
        levels.join("/")
    }

    fn random_topic(rng: &mut Rng) -> String {
        let depth = 1 + rng.below(5);
        let levels: Vec<&str> = (0..depth).map(|_| rng.pick(TOPIC_LEVELS)).collect();
        levels.join("/")
    }

    #[test]
    fn randomized_against_naive_matcher() {
        let mut rng = Rng(0x5eed);
        let mut trie: Trie<String> = Trie::new();
        let mut reference: BTreeMap<String, u64> = BTreeMap::new();
        let mut nonempty_matches = 0;
        for round in 0..4000 {
            let filter = random_filter(&mut rng);
            // Mostly inserts, with removals (and replacements) mixed in.
            if rng.below(4) == 0 {
                let expected = reference.remove(&filter).map(|_| filter.clone());
                assert_eq!(trie.remove(&filter), expected);
            } else {
                let replaced = reference.insert(filter.clone(), round).map(|_| filter.clone());
                assert_eq!(trie.insert(&filter, filter.clone()), replaced);
            }
            assert_eq!(trie.len(), reference.len());

            for _ in 0..4 {
                let topic = random_topic(&mut rng);
                let expected: BTreeSet<&String> = reference.keys().filter(|f| naive_match(f, &topic)).collect();
                let mut got = Vec::new();
                trie.for_each_match(&topic, |f| got.push(f.clone()));
                let unique: BTreeSet<&String> = got.iter().collect();
                assert_eq!(unique.len(), got.len(), "a filter visited twice for {topic:?}");
                assert_eq!(unique, expected, "topic {topic:?}");
                assert_eq!(trie.matches(&topic), !expected.is_empty());
                nonempty_matches += usize::from(!expected.is_empty());
            }
        }
        assert!(nonempty_matches > 4000, "the generator must produce real matches");

        let listed: BTreeSet<String> = trie.filters().into_iter().map(|(f, _)| f).collect();
        assert_eq!(listed, reference.keys().cloned().collect());
        for filter in reference.keys() {
            assert_eq!(trie.remove(filter).as_ref(), Some(filter));
        }
        assert_eq!(trie.node_count(), 0);
    }
}
