//! The `feed_events` and `account_feed` tables: each authenticator's security
//! feed with its cursor, the "notify me on every use" setting, and the
//! device journal's cursor into the server's decisions.

use eid_protocol::AuthenticatorId;
use eid_protocol::events::SecurityEventKind;
use eid_protocol::wire::FeedEvent;
use rusqlite::{OptionalExtension, params};

use super::{Store, parse_id, to_i64, to_u64};
use crate::error::Result;
use crate::events::StoredFeedEvent;

/// Most feed events kept per authenticator (the oldest go first).
const MAX_STORED_FEED_EVENTS: i64 = 200;

impl Store {
    /// The feed cursor of each authenticator (0 when none yet).
    #[cfg(test)]
    pub(crate) fn feed_cursors(&self, ids: &[AuthenticatorId]) -> Result<Vec<u64>> {
        Ok(self.cursors(ids)?.0)
    }

    /// Per authenticator, the feed cursor and the highest server decision
    /// `seq` already reconciled with the journal (0 when none), in one
    /// statement: each statement run outside a transaction is a read
    /// transaction of its own (the WAL read lock taken and released, the
    /// file size read), and the table holds one row per authenticator on
    /// this phone.
    pub(crate) fn cursors(&self, ids: &[AuthenticatorId]) -> Result<(Vec<u64>, Vec<u64>)> {
        let stored = self.feed_rows()?;
        let mut events = Vec::with_capacity(ids.len());
        let mut decisions = Vec::with_capacity(ids.len());
        for id in ids {
            let id = id.to_string();
            let row = stored.iter().find(|r| r.0 == id);
            events.push(row.map_or(0, |r| to_u64(r.1)));
            decisions.push(row.map_or(0, |r| to_u64(r.2)));
        }
        Ok((events, decisions))
    }

    /// Every authenticator's feed row: id, feed cursor, decisions cursor
    /// and the "notify me on every use" setting.
    fn feed_rows(&self) -> Result<Vec<(String, i64, i64, bool)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT authenticator_id, cursor, decisions_cursor, notify_every_use FROM account_feed",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Stores pulled feed events and settings in one transaction, advancing
    /// each authenticator's cursor to its newest event. Writes nothing when nothing
    /// changed (no new events, same setting).
    pub(crate) fn apply_feed(
        &mut self,
        pulled: &[(AuthenticatorId, &[FeedEvent], bool)],
    ) -> Result<()> {
        let mut changed = Vec::new();
        // All rows in one statement (one read transaction, not one per
        // authenticator).
        let rows = self.feed_rows()?;
        for (id, events, notify) in pulled {
            let key = id.to_string();
            let stored: Option<(i64, bool)> = rows.iter().find(|r| r.0 == key).map(|r| (r.1, r.3));
            let (cursor, stored_notify) = stored.map_or((0, false), |(c, n)| (to_u64(c), n));
            let fresh: Vec<&FeedEvent> = events.iter().filter(|e| e.event_id > cursor).collect();
            if fresh.is_empty() && stored.is_some() && stored_notify == *notify {
                continue;
            }
            changed.push((id, fresh, *notify, cursor));
        }
        if changed.is_empty() {
            return Ok(());
        }
        // A savepoint: part of the pull's transaction.
        crate::store::in_savepoint(&self.conn, |tx| {
            for (id, fresh, notify, cursor) in changed {
                let id = id.to_string();
                for e in &fresh {
                    tx.prepare_cached(
                        "INSERT OR IGNORE INTO feed_events (authenticator_id, event_id, kind, occurred_at_ms, \
                         event_authenticator_id, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )?
                    .execute(params![
                        id,
                        to_i64(e.event_id),
                        e.kind.as_str(),
                        to_i64(e.occurred_at_ms),
                        e.authenticator_id.map(|a| a.to_string()),
                        e.detail
                    ])?;
                }
                let newest = fresh
                    .iter()
                    .map(|e| e.event_id)
                    .max()
                    .unwrap_or(0)
                    .max(cursor);
                tx.prepare_cached(
                    "INSERT INTO account_feed (authenticator_id, cursor, notify_every_use) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (authenticator_id) DO UPDATE SET cursor = ?2, notify_every_use = ?3",
                )?
                .execute(params![id, to_i64(newest), notify])?;
                // The limit is written into the statement: SQLite plans with a
                // bound LIMIT's value, so binding one makes the statement
                // prepared again on every run.
                tx.prepare_cached(&format!(
                    "DELETE FROM feed_events WHERE authenticator_id = ?1 AND event_id NOT IN \
                     (SELECT event_id FROM feed_events WHERE authenticator_id = ?1 \
                      ORDER BY event_id DESC LIMIT {MAX_STORED_FEED_EVENTS})",
                ))?
                .execute(params![id])?;
            }
            Ok(())
        })
    }

    /// The authenticator's stored feed, newest first.
    pub(crate) fn feed(&self, id: &AuthenticatorId) -> Result<Vec<StoredFeedEvent>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT event_id, kind, occurred_at_ms, event_authenticator_id, detail FROM feed_events \
             WHERE authenticator_id = ?1 ORDER BY event_id DESC",
        )?;
        let rows = stmt.query_map([id.to_string()], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (event_id, kind, at, auth, detail) = row?;
            out.push(StoredFeedEvent {
                event_id: to_u64(event_id),
                kind: SecurityEventKind::parse(&kind).unwrap_or(SecurityEventKind::Unknown),
                occurred_at_ms: to_u64(at),
                authenticator_id: auth.map(|a| parse_id(&a)).transpose()?,
                detail,
            });
        }
        Ok(out)
    }

    /// The "notify me on every use" setting as last known.
    pub(crate) fn notify_every_use(&self, id: &AuthenticatorId) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT notify_every_use FROM account_feed WHERE authenticator_id = ?1",
            )?
            .query_row([id.to_string()], |r| r.get::<_, bool>(0))
            .optional()?
            .unwrap_or(false))
    }

    /// Records the setting the server confirmed.
    pub(crate) fn set_notify_every_use(&self, id: &AuthenticatorId, on: bool) -> Result<()> {
        self.conn.execute(
            "INSERT INTO account_feed (authenticator_id, cursor, notify_every_use) VALUES (?1, 0, ?2) \
             ON CONFLICT (authenticator_id) DO UPDATE SET notify_every_use = ?2",
            params![id.to_string(), on],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::{sample_authenticator, sample_wrapped};

    #[test]
    fn the_feed_advances_its_cursor_and_writes_nothing_when_nothing_is_new() {
        let mut store = Store::open_in_memory().unwrap();
        let a = sample_authenticator();
        store.insert_authenticator(&a, &sample_wrapped()).unwrap();
        let id = a.authenticator_id;
        assert_eq!(store.feed_cursors(&[id]).unwrap(), vec![0]);
        let event = |event_id, kind| FeedEvent {
            event_id,
            kind,
            occurred_at_ms: event_id * 10,
            authenticator_id: Some(id),
            detail: Some("Nordisk Bank A/S".into()),
        };
        let first = [
            event(3, SecurityEventKind::DeviceActivated),
            event(5, SecurityEventKind::Unknown),
        ];
        store.apply_feed(&[(id, &first, false)]).unwrap();
        assert_eq!(store.feed_cursors(&[id]).unwrap(), vec![5]);
        let feed = store.feed(&id).unwrap();
        assert_eq!(
            feed.iter().map(|e| e.event_id).collect::<Vec<_>>(),
            vec![5, 3]
        );
        assert_eq!(feed[0].kind, SecurityEventKind::Unknown);
        assert_eq!(feed[1].authenticator_id, Some(id));
        // A repeat of old events (an old server ignoring the cursor) is ignored.
        let changes = store.conn.total_changes();
        store.apply_feed(&[(id, &first, false)]).unwrap();
        assert_eq!(
            store.conn.total_changes(),
            changes,
            "nothing new, nothing written"
        );
        // The setting alone is a change.
        store.apply_feed(&[(id, &[], true)]).unwrap();
        assert!(store.notify_every_use(&id).unwrap());
        assert_eq!(store.feed_cursors(&[id]).unwrap(), vec![5]);
        // The oldest go beyond the cap.
        let many: Vec<FeedEvent> = (6..(6 + MAX_STORED_FEED_EVENTS as u64 + 10))
            .map(|i| event(i, SecurityEventKind::Used))
            .collect();
        store.apply_feed(&[(id, &many, true)]).unwrap();
        let feed = store.feed(&id).unwrap();
        assert_eq!(feed.len() as i64, MAX_STORED_FEED_EVENTS);
        assert_eq!(feed[0].event_id, 5 + MAX_STORED_FEED_EVENTS as u64 + 10);
        // Removing the authenticator removes its feed.
        store.delete_authenticator(&id).unwrap();
        assert!(store.feed(&id).unwrap().is_empty());
    }
}
