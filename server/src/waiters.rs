//! Wake-ups for service providers long-polling a request's status.
//!
//! In one process a decision wakes the waiters of its request directly.
//! With several replicas on one database (PostgreSQL), the replica that
//! took the decision is rarely the one the service provider waits on: every
//! wake is then also published to the other replicas ([`Publish`], a
//! PostgreSQL `NOTIFY`), which wake their own waiters ([`Waiters::wake_local`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use eid_protocol::RequestId;
use tokio::sync::Notify;

/// Sends a message to the other replicas (none in one process). It must
/// not block: it queues.
pub(crate) type Publish = Arc<dyn Fn(String) + Send + Sync>;

/// The message that wakes a request's waiters on every replica.
pub(crate) fn wake_message(id: RequestId) -> String {
    format!("wake:{}", hex::encode(id.as_bytes()))
}

/// The request a [`wake_message`] names.
pub(crate) fn parse_wake(message: &str) -> Option<RequestId> {
    let hex_id = message.strip_prefix("wake:")?;
    let mut bytes = [0u8; 16];
    hex::decode_to_slice(hex_id, &mut bytes).ok()?;
    Some(RequestId(bytes))
}

/// One `Notify` per request someone is waiting on.
#[derive(Default)]
pub(crate) struct Waiters {
    map: Mutex<HashMap<RequestId, Arc<Notify>>>,
    peers: OnceLock<Publish>,
}

impl std::fmt::Debug for Waiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiters")
            .field("peers", &self.peers.get().is_some())
            .finish_non_exhaustive()
    }
}

impl Waiters {
    /// Publishes every wake to the other replicas from now on.
    pub(crate) fn attach_peers(&self, publish: Publish) {
        let _ = self.peers.set(publish);
    }

    /// The notifier for a request (created on first use).
    pub(crate) fn subscribe(&self, id: RequestId) -> Arc<Notify> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(id)
            .or_insert_with(|| Arc::new(Notify::new()))
            .clone()
    }

    /// Drops the notifier when nobody else holds it.
    pub(crate) fn release(&self, id: RequestId, notify: Arc<Notify>) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        drop(notify);
        if map.get(&id).is_some_and(|n| Arc::strong_count(n) == 1) {
            map.remove(&id);
        }
    }

    /// Wakes everyone waiting on the request, on this replica and the others.
    pub(crate) fn wake(&self, id: RequestId) {
        self.wake_local(id);
        if let Some(publish) = self.peers.get() {
            publish(wake_message(id));
        }
    }

    /// Wakes the waiters of this replica only (a peer's wake arrived).
    pub(crate) fn wake_local(&self, id: RequestId) {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get(&id) {
            n.notify_waiters();
        }
    }

    /// Wakes every waiter of this replica: after the connection to the
    /// other replicas was lost, a wake may have been missed, and each
    /// waiter simply reads its request's status again.
    pub(crate) fn wake_all_local(&self) {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        for n in map.values() {
            n.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wake_is_published_to_the_peers_and_reads_back_as_its_request() {
        let waiters = Waiters::default();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&sent);
        waiters.attach_peers(Arc::new(move |m| sink.lock().unwrap().push(m)));
        let id = RequestId::random();
        waiters.wake(id);
        let sent = sent.lock().unwrap().clone();
        assert_eq!(sent.len(), 1);
        assert_eq!(parse_wake(&sent[0]), Some(id));
        assert_eq!(parse_wake("wake:zz"), None);
        assert_eq!(parse_wake("evict:identity_ids"), None);
    }
}
