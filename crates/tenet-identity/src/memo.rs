//! Bounded memos of verification work that depends only on the bytes verified.
//!
//! A workload presents the same SVID on every connection until it rotates it, so the gateway
//! sees the same leaf, the same intermediate and the same signatures again and again. What is
//! a pure function of those bytes (whether a signature verifies under a key, whether a leaf
//! passes the SVID shape rules, and the facts read from it) is remembered here, keyed by the
//! SHA-256 of the exact bytes. Everything that depends on anything else (the time, the trust
//! bundle, the path to an authority of the ID's own trust domain, the key usage asked for) is
//! still checked on every verification.
//!
//! Only the results of verifications that succeeded as a whole are stored, so an entry can
//! only be created by a peer that holds a valid SVID. Each memo holds two generations of at
//! most `capacity` entries: when the current generation is full it becomes the previous one
//! and the older one is dropped; a hit in the previous generation moves the entry back into
//! the current one. Memory stays bounded whatever peers present, and the SVIDs in use stay.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};

use sha2::{Digest, Sha256};

/// The SHA-256 of the bytes a memo entry stands for.
pub(crate) type MemoKey = [u8; 32];

/// A bounded map from [`MemoKey`] to `V`.
pub(crate) struct Memo<V> {
    capacity: usize,
    generations: Mutex<Generations<V>>,
}

struct Generations<V> {
    current: HashMap<MemoKey, V>,
    previous: HashMap<MemoKey, V>,
}

impl<V: Clone> Memo<V> {
    /// A memo keeping at most `capacity` entries per generation (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            generations: Mutex::new(Generations {
                current: HashMap::new(),
                previous: HashMap::new(),
            }),
        }
    }

    /// The remembered value for `key`.
    pub(crate) fn get(&self, key: &MemoKey) -> Option<V> {
        let mut generations = self.lock();
        if let Some(value) = generations.current.get(key) {
            return Some(value.clone());
        }
        let value = generations.previous.remove(key)?;
        Self::insert_into(&mut generations, self.capacity, *key, value.clone());
        Some(value)
    }

    /// Remembers `value` for `key`.
    pub(crate) fn insert(&self, key: MemoKey, value: V) {
        let mut generations = self.lock();
        Self::insert_into(&mut generations, self.capacity, key, value);
    }

    /// Remembers `value` for each of `keys`.
    pub(crate) fn insert_all(&self, keys: impl IntoIterator<Item = MemoKey>, value: V) {
        let mut generations = self.lock();
        for key in keys {
            Self::insert_into(&mut generations, self.capacity, key, value.clone());
        }
    }

    fn insert_into(generations: &mut Generations<V>, capacity: usize, key: MemoKey, value: V) {
        if generations.current.len() >= capacity && !generations.current.contains_key(&key) {
            generations.previous = std::mem::take(&mut generations.current);
        }
        generations.current.insert(key, value);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations<V>> {
        // The maps are consistent between statements; a panic elsewhere cannot leave a
        // half-written entry behind.
        self.generations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Entries held in both generations.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        let generations = self.lock();
        generations.current.len() + generations.previous.len()
    }
}

impl<V> fmt::Debug for Memo<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Memo")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

/// The key of a certificate: the SHA-256 of its DER.
pub(crate) fn der_key(der: &[u8]) -> MemoKey {
    Sha256::digest(der).into()
}

/// The key of one signature check: algorithm, public key, message and signature, each
/// length-prefixed so that no two different checks share an encoding.
pub(crate) fn signature_key(
    algorithm: usize,
    public_key: &[u8],
    message: &[u8],
    signature: &[u8],
) -> MemoKey {
    let mut hash = Sha256::new();
    hash.update(b"tenet signature check\0");
    hash.update((algorithm as u64).to_le_bytes());
    for part in [public_key, message, signature] {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part);
    }
    hash.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> MemoKey {
        [n; 32]
    }

    #[test]
    fn bounded_and_keeps_what_is_used() {
        let memo = Memo::new(2);
        memo.insert(key(1), 1);
        memo.insert(key(2), 2);
        assert_eq!(memo.len(), 2);
        // A third entry starts a new generation; the first two become the previous one.
        memo.insert(key(3), 3);
        assert_eq!(memo.len(), 3);
        // A hit in the previous generation moves the entry forward.
        assert_eq!(memo.get(&key(1)), Some(1));
        // The current generation (3, 1) is full: the next entry drops 2 for good.
        memo.insert(key(4), 4);
        assert_eq!(memo.get(&key(2)), None);
        assert_eq!(memo.get(&key(1)), Some(1));
        assert_eq!(memo.get(&key(3)), Some(3));
        assert_eq!(memo.get(&key(4)), Some(4));
        assert!(memo.len() <= 4);
        // Re-inserting a present key does not start a generation.
        let memo = Memo::new(1);
        memo.insert(key(1), 1);
        memo.insert(key(1), 10);
        assert_eq!(memo.get(&key(1)), Some(10));
        assert_eq!(memo.len(), 1);
    }

    #[test]
    fn signature_keys_separate_their_parts() {
        let a = signature_key(0, b"ab", b"c", b"d");
        assert_ne!(a, signature_key(0, b"a", b"bc", b"d"));
        assert_ne!(a, signature_key(1, b"ab", b"c", b"d"));
        assert_ne!(a, signature_key(0, b"ab", b"c", b"e"));
        assert_eq!(a, signature_key(0, b"ab", b"c", b"d"));
    }
}
