//! A small read-mostly cache for records that rarely change once written
//! (API-key registrations, user-ID → identity mappings, authenticator keys).
//!
//! Only facts that are immutable or that change through one known path go
//! here: that path evicts with [`ImmutableCache::remove_where`] after its
//! commit (a user ID changed through self-service). Anything that changes
//! often (blocked, locked, counters) is always read from the store, inside
//! the transaction that depends on it.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::RwLock;

/// A bounded map of immutable records; when full it starts over, which keeps
/// it simple and is harmless because every miss falls back to the store.
pub(crate) struct ImmutableCache<K, V> {
    map: RwLock<HashMap<K, V>>,
    max_entries: usize,
    /// Bumped by every eviction, so a value read from the store before an
    /// eviction is not cached after it (see [`ImmutableCache::insert_unless_evicted`]).
    evictions: std::sync::atomic::AtomicU64,
}

impl<K: Eq + Hash, V: Clone> ImmutableCache<K, V> {
    /// An empty cache holding at most `max_entries`.
    pub(crate) fn new(max_entries: usize) -> Self {
        Self {
            map: RwLock::new(HashMap::new()),
            max_entries,
            evictions: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The cached value, if any.
    pub(crate) fn get(&self, key: &K) -> Option<V> {
        self.map.read().ok()?.get(key).cloned()
    }

    /// A stamp to take before reading the store, for
    /// [`ImmutableCache::insert_unless_evicted`].
    pub(crate) fn stamp(&self) -> u64 {
        self.evictions.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Remembers a value read from the store after `stamp` was taken, unless
    /// an eviction happened since (the value read may be the old one).
    pub(crate) fn insert_unless_evicted(&self, stamp: u64, key: K, value: V) {
        if let Ok(mut map) = self.map.write() {
            // Checked under the write lock, which evictions also take.
            if self.stamp() != stamp {
                return;
            }
            if map.len() >= self.max_entries {
                map.clear();
            }
            map.insert(key, value);
        }
    }

    /// Forgets every entry matching `predicate` (after the store changed).
    pub(crate) fn remove_where(&self, predicate: impl Fn(&K, &V) -> bool) {
        if let Ok(mut map) = self.map.write() {
            self.evictions
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            map.retain(|k, v| !predicate(k, v));
        }
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

    #[test]
    fn an_eviction_drops_matches_and_blocks_values_read_before_it() {
        let cache = ImmutableCache::new(10);
        cache.insert("old", 1);
        cache.insert("other", 2);
        let stamp = cache.stamp();
        cache.remove_where(|_, v| *v == 1);
        assert_eq!(cache.get(&"old"), None);
        assert_eq!(cache.get(&"other"), Some(2));
        // A value read before the eviction may be stale: not cached.
        cache.insert_unless_evicted(stamp, "old", 1);
        assert_eq!(cache.get(&"old"), None);
        cache.insert_unless_evicted(cache.stamp(), "new", 1);
        assert_eq!(cache.get(&"new"), Some(1));
    }
}
