//! The `pending_requests` table: each authenticator's unexpired requests as the
//! last pull brought them (signed envelopes, verified before storing).

use eid_protocol::wire::SignedEnvelope;
use eid_protocol::{AuthenticatorId, RequestId};
use rusqlite::{OptionalExtension, params};

use super::{AuthenticatorState, Store, bad, parse_id, to_i64, to_u64};
use crate::error::Result;

/// A stored pending request.
#[derive(Debug, Clone)]
pub(crate) struct PendingRow {
    pub(crate) authenticator_id: AuthenticatorId,
    pub(crate) envelope: SignedEnvelope,
    pub(crate) server_time_ms: u64,
    pub(crate) received_wall_ms: u64,
}

/// A stored pending request with its envelope not yet decoded.
#[derive(Debug)]
pub(crate) struct PendingText {
    pub(crate) authenticator_id: AuthenticatorId,
    pub(crate) json: String,
    pub(crate) server_time_ms: u64,
    pub(crate) received_wall_ms: u64,
}

/// Decodes a stored envelope.
pub(crate) fn decode_envelope(json: &str) -> Result<SignedEnvelope> {
    serde_json::from_str(json).map_err(|_| bad("envelope"))
}

/// One authenticator's state and unexpired envelopes from a pull, each as
/// [`envelope_row`] made it.
pub(crate) type PulledRows = (AuthenticatorId, AuthenticatorState, Vec<(String, String)>);

/// An envelope as the store keeps it: its request id and its JSON.
pub(crate) fn envelope_row(e: &SignedEnvelope) -> Result<(String, String)> {
    Ok((e.envelope.request_id.to_string(), serde_json::to_string(e)?))
}

impl Store {
    /// Replaces an authenticator's pending requests (tests; pulls use [`Store::apply_pull`]).
    #[cfg(test)]
    pub(crate) fn replace_pending(
        &mut self,
        id: &AuthenticatorId,
        envelopes: &[SignedEnvelope],
        server_time_ms: u64,
        received_wall_ms: u64,
    ) -> Result<()> {
        let state = self.authenticator(id)?.state;
        self.apply_pull(&[(*id, state, envelopes)], server_time_ms, received_wall_ms)
    }

    /// Stores a pull in one transaction (one fsync): each authenticator's state
    /// and its unexpired requests. A state or request set equal to the stored
    /// one is not rewritten, so a pull that brings nothing new writes nothing
    /// (and the stored pull times of unchanged requests are kept).
    pub(crate) fn apply_pull(
        &mut self,
        pulled: &[(AuthenticatorId, AuthenticatorState, &[SignedEnvelope])],
        server_time_ms: u64,
        received_wall_ms: u64,
    ) -> Result<()> {
        let mut rows = Vec::with_capacity(pulled.len());
        for (id, state, envelopes) in pulled {
            let mut fresh = Vec::with_capacity(envelopes.len());
            for e in *envelopes {
                fresh.push(envelope_row(e)?);
            }
            rows.push((*id, *state, fresh));
        }
        self.apply_pull_rows(&rows, server_time_ms, received_wall_ms)
    }

    /// [`Store::apply_pull`] with the envelopes already serialized by
    /// [`envelope_row`] (the pull serializes each once, to compare and to
    /// store).
    pub(crate) fn apply_pull_rows(
        &mut self,
        pulled: &[PulledRows],
        server_time_ms: u64,
        received_wall_ms: u64,
    ) -> Result<()> {
        // A savepoint: a transaction of its own, or part of the caller's
        // (the pull stores everything in one, see `Store::in_transaction`).
        crate::store::in_savepoint(&self.conn, |tx| {
            for (id, state, rows) in pulled {
                let id = id.to_string();
                tx.prepare_cached(
                    "UPDATE accounts SET state = ?2 WHERE authenticator_id = ?1 AND state != ?2",
                )?
                .execute(params![id, state.as_str()])?;
                let mut fresh: Vec<&(String, String)> = rows.iter().collect();
                fresh.sort();
                // Compared where SQLite holds the stored rows, without
                // copying them: equal when every stored row is one of the
                // pulled ones and there are as many (the stored rows are
                // distinct, their request ids being a key).
                let same = {
                    let mut stmt = tx.prepare_cached(
                        "SELECT request_id, envelope_json FROM pending_requests WHERE authenticator_id = ?1",
                    )?;
                    let mut stored = stmt.query([&id])?;
                    let mut matched = 0usize;
                    let mut all_pulled = true;
                    while let Some(r) = stored.next()? {
                        let request_id = r.get_ref(0)?.as_str().map_err(|_| bad("request id"))?;
                        let json = r.get_ref(1)?.as_str().map_err(|_| bad("envelope"))?;
                        if fresh
                            .binary_search_by(|f| {
                                (f.0.as_str(), f.1.as_str()).cmp(&(request_id, json))
                            })
                            .is_err()
                        {
                            all_pulled = false;
                            break;
                        }
                        matched += 1;
                    }
                    all_pulled && matched == fresh.len()
                };
                if same {
                    continue;
                }
                tx.execute(
                    "DELETE FROM pending_requests WHERE authenticator_id = ?1",
                    [&id],
                )?;
                for (request_id, json) in fresh {
                    tx.execute(
                        "INSERT OR REPLACE INTO pending_requests VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![
                            id,
                            request_id,
                            json,
                            to_i64(server_time_ms),
                            to_i64(received_wall_ms)
                        ],
                    )?;
                }
            }
            Ok(())
        })
    }

    /// The stored envelopes as stored (not decoded), as (authenticator id,
    /// envelope JSON) pairs in order: what a pull compares its envelopes
    /// with ([`Self::is_stored`]). A sorted list, not a map of sets: a pull
    /// looks up a few dozen rows at most, and hashing every envelope's text
    /// cost more than comparing it.
    pub(crate) fn pending_json(&self) -> Result<Vec<(String, String)>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT authenticator_id, envelope_json FROM pending_requests")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = rows.collect::<rusqlite::Result<Vec<(String, String)>>>()?;
        out.sort_unstable();
        Ok(out)
    }

    /// Whether `json` is stored for `authenticator` in `known` (from
    /// [`Self::pending_json`]).
    pub(crate) fn is_stored(known: &[(String, String)], authenticator: &str, json: &str) -> bool {
        known
            .binary_search_by(|(a, j)| (a.as_str(), j.as_str()).cmp(&(authenticator, json)))
            .is_ok()
    }

    /// One stored pending request, by its key.
    pub(crate) fn pending_request(
        &self,
        id: &AuthenticatorId,
        request: &RequestId,
    ) -> Result<Option<PendingRow>> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT envelope_json, server_time_ms, received_wall_ms FROM pending_requests
                 WHERE authenticator_id = ?1 AND request_id = ?2",
            )?
            .query_row(params![id.to_string(), request.to_string()], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .optional()?;
        let Some((json, st, rw)) = row else {
            return Ok(None);
        };
        let envelope: SignedEnvelope = serde_json::from_str(&json).map_err(|_| bad("envelope"))?;
        if envelope.envelope.request_id != *request {
            return Err(bad("envelope"));
        }
        Ok(Some(PendingRow {
            authenticator_id: *id,
            envelope,
            server_time_ms: to_u64(st),
            received_wall_ms: to_u64(rw),
        }))
    }

    /// The stored pending requests in [`Store::pending`]'s order (by the
    /// server's time at the pull, then request id), their envelopes as
    /// stored (decode with [`decode_envelope`]).
    ///
    /// Sorted here, not by an `ORDER BY`: without an index on that order
    /// SQLite copies every row, envelope and all, through a sorter first.
    pub(crate) fn pending_texts(&self) -> Result<Vec<PendingText>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT authenticator_id, envelope_json, server_time_ms, received_wall_ms, request_id
             FROM pending_requests",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
            ))
        })?;
        let mut sorted = Vec::new();
        for row in rows {
            let (a, json, st, rw, request_id) = row?;
            let text = PendingText {
                authenticator_id: parse_id(&a)?,
                json,
                server_time_ms: to_u64(st),
                received_wall_ms: to_u64(rw),
            };
            sorted.push(((st, request_id), text));
        }
        // SQLite's order: integers by value, text by bytes (BINARY), as
        // `Ord` for `i64` and `String` compares them.
        sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(sorted.into_iter().map(|(_, text)| text).collect())
    }

    /// The stored pending requests in [`Store::pending`]'s order, decoded.
    pub(crate) fn pending(&self) -> Result<Vec<PendingRow>> {
        self.pending_texts()?
            .into_iter()
            .map(|t| {
                Ok(PendingRow {
                    authenticator_id: t.authenticator_id,
                    envelope: decode_envelope(&t.json)?,
                    server_time_ms: t.server_time_ms,
                    received_wall_ms: t.received_wall_ms,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::{sample_authenticator, sample_wrapped};
    use eid_protocol::crypto::SoftwareSigningKey;

    #[test]
    fn apply_pull_rewrites_only_changes() {
        use eid_protocol::{RequestEnvelopeBody, RequestId, RequestKind, ServiceProviderId};
        let mut s = Store::open_in_memory().unwrap();
        let a = sample_authenticator();
        s.insert_authenticator(&a, &sample_wrapped()).unwrap();
        let key = SoftwareSigningKey::generate();
        let envelope = RequestEnvelopeBody {
            request_id: RequestId::random(),
            identity_id: a.identity_id,
            kind: RequestKind::Login,
            service_provider_id: ServiceProviderId([3; 16]),
            service_provider_name: "Nordisk Bank A/S".into(),
            reference_text: "Log på".into(),
            created_at_ms: 1,
            expires_at_ms: 1_000,
            server_nonce: [4; 32],
            binding_required: false,
        };
        let signed = vec![SignedEnvelope {
            signature: key.sign(&envelope.signing_bytes()),
            envelope,
        }];
        let id = a.authenticator_id;
        s.apply_pull(&[(id, AuthenticatorState::Active, &signed)], 10, 20)
            .unwrap();
        let changes = s.conn.total_changes();
        // The same pull again writes nothing and keeps the first pull's times.
        s.apply_pull(&[(id, AuthenticatorState::Active, &signed)], 30, 40)
            .unwrap();
        assert_eq!(s.conn.total_changes(), changes);
        let rows = s.pending().unwrap();
        assert_eq!((rows.len(), rows[0].received_wall_ms), (1, 20));
        assert_eq!(rows[0].envelope, signed[0]);
        s.apply_pull(&[(id, AuthenticatorState::Blocked, &[])], 50, 60)
            .unwrap();
        assert!(s.pending().unwrap().is_empty());
        assert_eq!(
            s.authenticator(&id).unwrap().state,
            AuthenticatorState::Blocked
        );
    }

    #[test]
    fn apply_pull_rows_compares_the_stored_rows_as_a_whole() {
        let mut s = Store::open_in_memory().unwrap();
        let a = sample_authenticator();
        s.insert_authenticator(&a, &sample_wrapped()).unwrap();
        let id = a.authenticator_id;
        let pull = |s: &mut Store, rows: &[(&str, &str)]| {
            let rows = rows
                .iter()
                .map(|(r, j)| ((*r).to_owned(), (*j).to_owned()))
                .collect();
            s.apply_pull_rows(&[(id, AuthenticatorState::Active, rows)], 1, 1)
                .unwrap();
            let mut stmt = s
                .conn
                .prepare("SELECT request_id, envelope_json FROM pending_requests ORDER BY 1")
                .unwrap();
            stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .unwrap()
                .collect::<rusqlite::Result<Vec<_>>>()
                .unwrap()
        };
        let owned = |rows: &[(&str, &str)]| {
            rows.iter()
                .map(|(r, j)| ((*r).to_owned(), (*j).to_owned()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            pull(&mut s, &[("b", "2"), ("a", "1")]),
            owned(&[("a", "1"), ("b", "2")])
        );
        let changes = s.conn.total_changes();
        assert_eq!(
            pull(&mut s, &[("a", "1"), ("b", "2")]),
            owned(&[("a", "1"), ("b", "2")])
        );
        assert_eq!(s.conn.total_changes(), changes);
        // Same request id, another text: replaced.
        assert_eq!(
            pull(&mut s, &[("a", "1"), ("b", "3")]),
            owned(&[("a", "1"), ("b", "3")])
        );
        // One more, one fewer, a duplicate pulled row.
        assert_eq!(
            pull(&mut s, &[("a", "1"), ("b", "3"), ("c", "4")]),
            owned(&[("a", "1"), ("b", "3"), ("c", "4")])
        );
        assert_eq!(pull(&mut s, &[("c", "4")]), owned(&[("c", "4")]));
        assert_eq!(
            pull(&mut s, &[("c", "4"), ("c", "4")]),
            owned(&[("c", "4")])
        );
        assert_eq!(pull(&mut s, &[]), owned(&[]));
    }
}
