//! A small read-mostly cache for records that never change once written
//! (API-key registrations, user-ID → identity mappings, authenticator keys).
//!
//! Only immutable facts go here: anything that can change (blocked, locked,
//! counters) is always read from the store, inside the transaction that
//! depends on it.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::RwLock;

/// A bounded map of immutable records; when full it starts over, which keeps
/// it simple and is harmless because every miss falls back to the store.
pub(crate) struct ImmutableCache<K, V> {
    map: RwLock<HashMap<K, V>>,
    max_entries: usize,
}

impl<K: Eq + Hash, V: Clone> ImmutableCache<K, V> {
    /// An empty cache holding at most `max_entries`.
    pub(crate) fn new(max_entries: usize) -> Self {
        Self {
            map: RwLock::new(HashMap::new()),
            max_entries,
        }
    }

    /// The cached value, if any.
    pub(crate) fn get(&self, key: &K) -> Option<V> {
        self.map.read().ok()?.get(key).cloned()
    }

    /// Remembers a value read from the store.
    pub(crate) fn insert(&self, key: K, value: V) {
        if let Ok(mut map) = self.map.write() {
            if map.len() >= self.max_entries {
                map.clear();
            }
            map.insert(key, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_over_when_full() {
        let cache = ImmutableCache::new(2);
        cache.insert(1, "a");
        cache.insert(2, "b");
        assert_eq!(cache.get(&1), Some("a"));
        cache.insert(3, "c");
        assert_eq!(cache.get(&1), None);
        assert_eq!(cache.get(&3), Some("c"));
    }
}
