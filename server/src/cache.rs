//! A small read-mostly cache for records that rarely change once written
//! (API-key registrations, user-ID → identity mappings, authenticator keys).
//!
//! Only facts that are immutable or that change through one known path go
//! here: that path evicts with [`ImmutableCache::remove_where`] after its
//! commit (a user ID changed through self-service). With several replicas
//! on one database, an eviction is also published to the other replicas
//! (a PostgreSQL `NOTIFY`, see [`ImmutableCache::attach_peers`]), which
//! empty their copy of that cache ([`ImmutableCache::clear_local`]): such
//! changes are rare, and emptying is always correct (a miss reads the store). Anything that changes
//! often (blocked, locked, counters) is always read from the store, inside
//! the transaction that depends on it.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{OnceLock, RwLock};

use crate::waiters::Publish;

/// The message that empties the cache `name` on every other replica.
pub(crate) fn evict_message(name: &str) -> String {
    format!("evict:{name}")
}

/// A bounded map of immutable records; when full it starts over, which keeps
/// it simple and is harmless because every miss falls back to the store.
pub(crate) struct ImmutableCache<K, V> {
    map: RwLock<HashMap<K, V>>,
    max_entries: usize,
    /// Bumped by every eviction, so a value read from the store before an
    /// eviction is not cached after it (see [`ImmutableCache::insert_unless_evicted`]).
    evictions: std::sync::atomic::AtomicU64,
    /// The cache's name and where its evictions are published, with
    /// several replicas.
    peers: OnceLock<(&'static str, Publish)>,
}

impl<K: Eq + Hash, V: Clone> ImmutableCache<K, V> {
    /// An empty cache holding at most `max_entries`.
    pub(crate) fn new(max_entries: usize) -> Self {
        Self {
            map: RwLock::new(HashMap::new()),
            max_entries,
            evictions: std::sync::atomic::AtomicU64::new(0),
            peers: OnceLock::new(),
        }
    }

    /// Publishes every eviction, as [`evict_message`]`(name)`, to the other
    /// replicas from now on.
    pub(crate) fn attach_peers(&self, name: &'static str, publish: Publish) {
        let _ = self.peers.set((name, publish));
    }

    /// Forgets everything on this replica only (another replica evicted,
    /// or the link to the other replicas was lost and an eviction may have
    /// been missed). Values read before are not cached after it.
    pub(crate) fn clear_local(&self) {
        if let Ok(mut map) = self.map.write() {
            self.evictions
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            map.clear();
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
        if let Some((name, publish)) = self.peers.get() {
            publish(evict_message(name));
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

/// Reference texts the memo keeps at most (it starts over when full).
const REFERENCE_TEXT_MEMO_ENTRIES: usize = 1024;
/// Longest reference text (bytes, as received) the memo keeps: login texts
/// are short and repeat; a long payment text is checked every time.
const REFERENCE_TEXT_MEMO_MAX_BYTES: usize = 256;

/// [`eid_protocol::text::normalize_reference_text`], remembered for short
/// texts that passed. The result depends on the text alone (NFC and the
/// text rules, from tables compiled in), so a remembered answer never goes
/// stale and needs no eviction. The rules cost about 10 µs a text (Unicode
/// decomposition and word folding), on every request a service provider
/// creates, while most providers send the same few login texts. A text
/// that fails is checked anew each time, so its error is always fresh.
pub(crate) fn normalize_reference_text(
    text: &str,
) -> Result<String, eid_protocol::text::TextError> {
    static MEMO: OnceLock<ImmutableCache<String, String>> = OnceLock::new();
    if text.len() > REFERENCE_TEXT_MEMO_MAX_BYTES {
        return eid_protocol::text::normalize_reference_text(text);
    }
    let memo = MEMO.get_or_init(|| ImmutableCache::new(REFERENCE_TEXT_MEMO_ENTRIES));
    let key = text.to_owned();
    if let Some(normalized) = memo.get(&key) {
        return Ok(normalized);
    }
    let normalized = eid_protocol::text::normalize_reference_text(text)?;
    memo.insert(key, normalized.clone());
    Ok(normalized)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_eviction_is_published_and_a_peer_s_clear_forgets_everything() {
        let cache = ImmutableCache::new(10);
        let sent = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = std::sync::Arc::clone(&sent);
        cache.attach_peers(
            "identity_ids",
            std::sync::Arc::new(move |m| sink.lock().unwrap().push(m)),
        );
        cache.insert("a", 1);
        cache.insert("b", 2);
        cache.remove_where(|_, v| *v == 1);
        assert_eq!(*sent.lock().unwrap(), vec!["evict:identity_ids".to_owned()]);
        let stamp = cache.stamp();
        cache.clear_local();
        assert_eq!(cache.get(&"b"), None);
        cache.insert_unless_evicted(stamp, "b", 2);
        assert_eq!(cache.get(&"b"), None, "read before the clear: not cached");
        assert_eq!(
            sent.lock().unwrap().len(),
            1,
            "a local clear is not published"
        );
    }

    #[test]
    fn the_reference_text_memo_answers_as_the_rules_do() {
        let long = format!("Log på {}", "x".repeat(REFERENCE_TEXT_MEMO_MAX_BYTES));
        let samples = [
            "Log på Netbank",
            "Cafe\u{301}",
            "Log på hos Nordisk Bank",
            "",
            "a\u{202e}b",
            long.as_str(),
        ];
        for _ in 0..2 {
            for text in samples {
                assert_eq!(
                    normalize_reference_text(text),
                    eid_protocol::text::normalize_reference_text(text),
                    "{text:?}"
                );
            }
        }
    }

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
