//! A bounded map that forgets the least recently used entry: the memory cap of every table.
//!
//! Entries live in a slab (`Vec`) linked into a recency list by index, so lookups, touches,
//! inserts and evictions are O(1) and no entry is ever allocated twice.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;

const NIL: usize = usize::MAX;

#[derive(Debug)]
struct Node<K, V> {
    key: K,
    value: V,
    /// Towards the most recently used end.
    newer: usize,
    /// Towards the least recently used end.
    older: usize,
}

/// A map of at most `cap` entries; inserting into a full map evicts the least recently used.
#[derive(Debug)]
pub(crate) struct Lru<K, V> {
    index: HashMap<K, usize>,
    nodes: Vec<Option<Node<K, V>>>,
    free: Vec<usize>,
    newest: usize,
    oldest: usize,
    cap: usize,
}

impl<K: Hash + Eq + Clone, V> Lru<K, V> {
    /// An empty map holding at most `cap` entries (at least one).
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            index: HashMap::new(),
            nodes: Vec::new(),
            free: Vec::new(),
            newest: NIL,
            oldest: NIL,
            cap: cap.max(1),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    pub(crate) fn is_full(&self) -> bool {
        self.len() >= self.cap
    }

    /// The value for `key` without changing its recency.
    pub(crate) fn peek<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let slot = *self.index.get(key)?;
        self.node(slot).map(|n| &n.value)
    }

    /// The value for `key`, marked as the most recently used.
    pub(crate) fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let slot = *self.index.get(key)?;
        self.touch(slot);
        self.node_mut(slot).map(|n| &mut n.value)
    }

    /// Whether `key` is present (recency unchanged).
    pub(crate) fn contains<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.index.contains_key(key)
    }

    /// Insert `key` as the most recently used entry (replacing any value it had). Returns the
    /// entry evicted to make room, if the map was full.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<(K, V)> {
        if let Some(&slot) = self.index.get(&key) {
            if let Some(node) = self.node_mut(slot) {
                node.value = value;
            }
            self.touch(slot);
            return None;
        }
        let evicted = if self.is_full() {
            self.pop_oldest()
        } else {
            None
        };
        let node = Node {
            key: key.clone(),
            value,
            newer: NIL,
            older: NIL,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                if let Some(cell) = self.nodes.get_mut(slot) {
                    *cell = Some(node);
                }
                slot
            }
            None => {
                self.nodes.push(Some(node));
                self.nodes.len() - 1
            }
        };
        self.index.insert(key, slot);
        self.link_newest(slot);
        evicted
    }

    /// Remove `key`, returning its value.
    pub(crate) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let slot = self.index.remove(key)?;
        self.unlink(slot);
        self.free.push(slot);
        self.nodes.get_mut(slot)?.take().map(|n| n.value)
    }

    /// Remove and return the least recently used entry.
    pub(crate) fn pop_oldest(&mut self) -> Option<(K, V)> {
        let slot = self.oldest;
        let key = self.node(slot)?.key.clone();
        let value = self.remove(&key)?;
        Some((key, value))
    }

    /// The entries from the most to the least recently used.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        let mut slot = self.newest;
        std::iter::from_fn(move || {
            let node = self.node(slot)?;
            slot = node.older;
            Some((&node.key, &node.value))
        })
    }

    fn node(&self, slot: usize) -> Option<&Node<K, V>> {
        self.nodes.get(slot).and_then(Option::as_ref)
    }

    fn node_mut(&mut self, slot: usize) -> Option<&mut Node<K, V>> {
        self.nodes.get_mut(slot).and_then(Option::as_mut)
    }

    fn touch(&mut self, slot: usize) {
        if self.newest != slot {
            self.unlink(slot);
            self.link_newest(slot);
        }
    }

    fn unlink(&mut self, slot: usize) {
        let Some((newer, older)) = self.node(slot).map(|n| (n.newer, n.older)) else {
            return;
        };
        match self.node_mut(newer) {
            Some(n) => n.older = older,
            None => self.newest = older,
        }
        match self.node_mut(older) {
            Some(n) => n.newer = newer,
            None => self.oldest = newer,
        }
    }

    fn link_newest(&mut self, slot: usize) {
        let previous = self.newest;
        if let Some(node) = self.node_mut(slot) {
            node.newer = NIL;
            node.older = previous;
        }
        match self.node_mut(previous) {
            Some(n) => n.newer = slot,
            None => self.oldest = slot,
        }
        self.newest = slot;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(lru: &Lru<u32, u32>) -> Vec<u32> {
        lru.iter().map(|(k, _)| *k).collect()
    }

    #[test]
    fn evicts_the_least_recently_used() {
        let mut lru = Lru::new(3);
        assert_eq!(lru.insert(1, 10), None);
        assert_eq!(lru.insert(2, 20), None);
        assert_eq!(lru.insert(3, 30), None);
        assert_eq!(lru.get_mut(&1), Some(&mut 10));
        assert_eq!(lru.insert(4, 40), Some((2, 20)));
        assert_eq!(keys(&lru), vec![4, 1, 3]);
        assert_eq!(lru.len(), 3);
    }

    #[test]
    fn peek_does_not_touch() {
        let mut lru = Lru::new(2);
        lru.insert(1, 1);
        lru.insert(2, 2);
        assert_eq!(lru.peek(&1), Some(&1));
        assert_eq!(lru.insert(3, 3), Some((1, 1)));
    }

    #[test]
    fn remove_and_reuse_slots() {
        let mut lru = Lru::new(3);
        for k in 0..3 {
            lru.insert(k, k);
        }
        assert_eq!(lru.remove(&1), Some(1));
        assert_eq!(lru.remove(&1), None);
        assert_eq!(keys(&lru), vec![2, 0]);
        lru.insert(7, 7);
        assert_eq!(keys(&lru), vec![7, 2, 0]);
        assert_eq!(lru.nodes.len(), 3, "the freed slot is reused");
        assert_eq!(lru.pop_oldest(), Some((0, 0)));
        assert_eq!(lru.pop_oldest(), Some((2, 2)));
        assert_eq!(lru.pop_oldest(), Some((7, 7)));
        assert_eq!(lru.pop_oldest(), None);
        assert_eq!(lru.len(), 0);
    }

    #[test]
    fn insert_existing_replaces_and_touches() {
        let mut lru = Lru::new(2);
        lru.insert(1, 1);
        lru.insert(2, 2);
        assert_eq!(lru.insert(1, 100), None);
        assert_eq!(keys(&lru), vec![1, 2]);
        assert_eq!(lru.peek(&1), Some(&100));
    }

    #[test]
    fn string_keys_look_up_by_str() {
        let mut lru: Lru<String, u8> = Lru::new(1);
        lru.insert("a".to_string(), 1);
        assert!(lru.contains("a"));
        assert_eq!(lru.get_mut("a"), Some(&mut 1));
        assert!(lru.insert("b".to_string(), 2).is_some());
        assert!(!lru.contains("a"));
    }
}
