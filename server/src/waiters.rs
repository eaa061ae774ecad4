//! Wake-ups for service providers long-polling a request's status.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use eid_protocol::RequestId;
use tokio::sync::Notify;

/// One `Notify` per request someone is waiting on.
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    map: Mutex<HashMap<RequestId, Arc<Notify>>>,
}

impl Waiters {
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

    /// Wakes everyone waiting on the request.
    pub(crate) fn wake(&self, id: RequestId) {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get(&id) {
            n.notify_waiters();
        }
    }
}
