//! Pull: one device-signed round trip brings every authenticator's pending
//! requests, security feed, new devices, contact changes and the identity's
//! decisions (for the device journal). Everything is verified before
//! anything is stored; then the display models are built from the store.

use eid_protocol::wire::{
    self, AccountState as ServerAccountState, PullRequest, PullResponse, SignedEnvelope,
};
use eid_protocol::{AuthenticatorId, RequestEnvelopeBody, RequestId};

use crate::approval::{RequestTimer, remaining_after_restart, remaining_at_pull};
use crate::store::{
    AuthenticatorRow, AuthenticatorState, PendingRow, PulledRows, Store, decode_envelope,
    envelope_row,
};
use crate::{App, Error, Inner, Language, RequestView, Result, display, enrolment, journal, lock};

impl App {
    /// Pulls pending requests for all authenticators in one signed round trip,
    /// verifies every envelope with that authenticator's server key, stores them and
    /// returns the display models. A bad envelope signature fails the whole
    /// refresh and changes nothing.
    pub async fn refresh(&self) -> Result<Vec<RequestView>> {
        let authenticators: Vec<AuthenticatorRow> = lock(&self.inner.store)?
            .authenticators()?
            .into_iter()
            .filter(|a| a.state != AuthenticatorState::NeedsReactivation)
            .collect();
        for chunk in authenticators.chunks(wire::MAX_PULL_AUTHENTICATORS) {
            self.pull(chunk).await?;
        }
        self.requests(self.inner.config.language)
    }

    async fn pull(&self, authenticators: &[AuthenticatorRow]) -> Result<()> {
        // The connection (on a cold open, TCP and a TLS handshake) is made
        // on the runtime while the cursors are read and the pull is signed.
        let warm = self.inner.client.warm_up();
        let ids: Vec<AuthenticatorId> = authenticators.iter().map(|a| a.authenticator_id).collect();
        // The feed pages like the decisions: the oldest events above the
        // cursor, so a flood between two pulls arrives over the next ones.
        let (events_after, decisions_after) = {
            let store = lock(&self.inner.store)?;
            store.cursors(&ids)?
        };
        let body = serde_json::to_vec(&PullRequest {
            authenticator_ids: ids.clone(),
            feed_after: Vec::new(),
            events_after,
            decisions_after,
        })?;
        let resp: PullResponse = self
            .inner
            .device_post_on(warm, authenticators, wire::PATH_PULL, body)
            .await?;
        let mono = self.inner.clock.monotonic_ms();
        self.inner.learn_server_time(resp.server_time_ms)?;
        let wall = self.inner.clock.wall_ms();
        if resp.accounts.len() != authenticators.len()
            || resp
                .accounts
                .iter()
                .zip(&ids)
                .any(|(p, id)| p.authenticator_id != *id)
        {
            return Err(Error::InvalidResponse(
                "pull answer does not match the accounts asked for".into(),
            ));
        }
        // Verify everything first (fail closed), then store. An envelope equal
        // to one stored for the same authenticator was verified with the same key
        // before it was stored (and the stored rows are what approvals sign),
        // so only new envelopes cost a signature check. Equal means the same
        // stored JSON: each pulled envelope is serialized once, compared with
        // the stored text and stored as it is (nothing stored is decoded).
        let known = lock(&self.inner.store)?.pending_json()?;
        let mut accepted: Vec<(usize, Vec<Verified<'_>>)> = Vec::new();
        for (i, (pulled, authenticator)) in resp.accounts.iter().zip(authenticators).enumerate() {
            let mut keep = Vec::new();
            let stored = authenticator.authenticator_id.to_string();
            for e in &pulled.requests {
                let row = envelope_row(e)?;
                let verified_before = Store::is_stored(&known, &stored, &row.1);
                if !verified_before {
                    authenticator
                        .server_public_key
                        .verify(&e.envelope.signing_bytes(), &e.signature)
                        .map_err(|_| Error::InvalidServerSignature)?;
                }
                if e.envelope.identity_id != authenticator.identity_id {
                    return Err(Error::InvalidServerSignature);
                }
                if e.envelope.expires_at_ms > resp.server_time_ms {
                    keep.push((e, row));
                }
            }
            accepted.push((i, keep));
        }
        // Locked authenticators lose their keys; the rest are stored in one
        // transaction that rewrites only what changed.
        let mut kept = Vec::with_capacity(accepted.len());
        for (i, keep) in accepted {
            let authenticator = &authenticators[i];
            let state = match resp.accounts[i].state {
                ServerAccountState::Locked => {
                    self.inner.destroy_authenticator_keys(authenticator)?;
                    continue;
                }
                ServerAccountState::Blocked => AuthenticatorState::Blocked,
                _ => AuthenticatorState::Active,
            };
            kept.push((authenticator.authenticator_id, state, keep));
        }
        let mut rows: Vec<PulledRows> = Vec::with_capacity(kept.len());
        let mut kept_envelopes: Vec<(AuthenticatorId, Vec<&SignedEnvelope>)> =
            Vec::with_capacity(kept.len());
        for (id, state, keep) in kept {
            let (envelopes, stored): (Vec<&SignedEnvelope>, Vec<(String, String)>) =
                keep.into_iter().unzip();
            rows.push((id, state, stored));
            kept_envelopes.push((id, envelopes));
        }
        let shown: Vec<(AuthenticatorId, AuthenticatorState)> =
            rows.iter().map(|(id, state, _)| (*id, *state)).collect();
        // The security feed, for every authenticator (a locked or blocked one
        // most of all).
        let feeds: Vec<(AuthenticatorId, &[wire::FeedEvent], bool)> = resp
            .accounts
            .iter()
            .map(|p| (p.authenticator_id, p.events.as_slice(), p.notify_every_use))
            .collect();
        // The device journal against the server's decisions (every authenticator
        // pulled, whatever its state).
        let decisions: Vec<(AuthenticatorId, &[wire::PulledDecision])> = resp
            .accounts
            .iter()
            .map(|p| (p.authenticator_id, p.decisions.as_slice()))
            .collect();
        // Everything the pull brought is stored in one transaction: the
        // requests, the new devices, the feed with its cursor, the journal's
        // alarms with the decisions cursor and the user IDs and contact
        // changes; all or, if any step fails, none (the next pull brings it
        // again). One write lock and one commit instead of one per step.
        let raised = lock(&self.inner.store)?.in_transaction(|store| {
            store.apply_pull_rows(&rows, resp.server_time_ms, wall)?;
            enrolment::store_pulled(store, &shown, &resp.accounts)?;
            store.apply_feed(&feeds)?;
            let raised = journal::reconcile(&mut store.conn, &decisions, wall)?;
            App::store_authenticator_details(store, &resp.accounts)?;
            Ok(raised)
        })?;
        if raised > 0 {
            tracing::warn!(raised, "the server holds decisions this phone never signed");
        }
        // The first refresh of a process (the app's cold start) has no views
        // yet: the envelopes it just compared with the stored ones (or
        // stored) are decoded already, so its views are built from them
        // instead of decoding the same stored text again. Keyed as
        // `request_views` looks them up: the stored text is this JSON.
        {
            let mut views = lock(&self.inner.views)?;
            if views.is_empty() {
                for ((id, _, stored), (_, envelopes)) in rows.iter().zip(&kept_envelopes) {
                    for ((_, json), e) in stored.iter().zip(envelopes) {
                        views.insert(
                            (*id, json.clone()),
                            CachedView {
                                envelope: e.envelope.clone(),
                                built_once: false,
                                built: None,
                            },
                        );
                    }
                }
            }
        }
        let mut shown = lock(&self.inner.shown)?;
        for (id, keep) in &kept_envelopes {
            shown.retain(|(a, r), _| a != id || keep.iter().any(|e| e.envelope.request_id == *r));
        }
        drop(shown);
        let mut timers = lock(&self.inner.timers)?;
        for (id, keep) in &kept_envelopes {
            let id = *id;
            timers.retain(|(a, _), _| *a != id);
            for e in keep {
                timers.insert(
                    (id, e.envelope.request_id),
                    RequestTimer {
                        pulled_at_mono_ms: mono,
                        remaining_at_pull_ms: remaining_at_pull(
                            e.envelope.expires_at_ms,
                            resp.server_time_ms,
                        ),
                    },
                );
            }
        }
        Ok(())
    }

    /// Display models of the stored, unexpired requests of every active
    /// authenticator (no network). Countdowns are recomputed on every call. For a
    /// phone several people share, the app shows [`App::household`]
    /// first and then [`App::requests_for`] the person chosen.
    pub fn requests(&self, lang: Language) -> Result<Vec<RequestView>> {
        self.request_views(None, lang)
    }

    /// Display models of one person's stored, unexpired requests (no
    /// network): what the app shows once that person has been chosen.
    /// `UnknownAuthenticator` if the authenticator is not on this phone.
    pub fn requests_for(
        &self,
        authenticator: &AuthenticatorId,
        lang: Language,
    ) -> Result<Vec<RequestView>> {
        lock(&self.inner.store)?.authenticator(authenticator)?;
        self.request_views(Some(authenticator), lang)
    }

    fn request_views(
        &self,
        only: Option<&AuthenticatorId>,
        lang: Language,
    ) -> Result<Vec<RequestView>> {
        // Asked before the store lock: the shell's provider is foreign code.
        let signals = self.inner.call_signals()?;
        let store = lock(&self.inner.store)?;
        let authenticators = store.authenticators()?;
        let rows = store.pending_texts()?;
        // Views built before for the same stored envelope, user ID and
        // language are taken again with the new time left (a refresh that
        // brings the same requests decodes and checks nothing again); the
        // cache keeps exactly the stored requests.
        let mut cache = lock(&self.inner.views)?;
        let mut kept = std::collections::HashMap::with_capacity(rows.len());
        let mut out = Vec::new();
        for row in rows {
            let key = (row.authenticator_id, row.json);
            let mut entry = match cache.remove(&key) {
                Some(entry) => entry,
                None => CachedView {
                    envelope: decode_envelope(&key.1)?.envelope,
                    built_once: false,
                    built: None,
                },
            };
            let view = self.view_of(
                &row.authenticator_id,
                &mut entry,
                &authenticators,
                only,
                lang,
                (row.server_time_ms, row.received_wall_ms),
            )?;
            kept.insert(key, entry);
            let Some(view) = view else { continue };
            let confirmed = self
                .inner
                .started_myself(&view.authenticator_id, &view.request_id)?;
            out.push(display::with_call_context(view, signals, confirmed));
        }
        *cache = kept;
        Ok(out)
    }

    /// The view of one stored request, or `None` if it is not shown (another
    /// person's, an authenticator not active, no time left).
    fn view_of(
        &self,
        authenticator_id: &AuthenticatorId,
        entry: &mut CachedView,
        authenticators: &[AuthenticatorRow],
        only: Option<&AuthenticatorId>,
        lang: Language,
        (server_time_ms, received_wall_ms): (u64, u64),
    ) -> Result<Option<RequestView>> {
        if only.is_some_and(|id| id != authenticator_id) {
            return Ok(None);
        }
        let Some(authenticator) = authenticators.iter().find(|a| {
            a.authenticator_id == *authenticator_id && a.state == AuthenticatorState::Active
        }) else {
            return Ok(None);
        };
        let request = entry.envelope.request_id;
        let left = self.inner.remaining_of(
            authenticator_id,
            &request,
            entry.envelope.expires_at_ms,
            server_time_ms,
            received_wall_ms,
        )?;
        if left == 0 {
            return Ok(None);
        }
        self.inner.mark_shown(authenticator_id, &request)?;
        if let Some(built) = &entry.built
            && built.user_id == authenticator.user_id
            && built.lang == lang
        {
            return Ok(Some(display::with_time_left(
                built.view.clone(),
                built.text_ok,
                left,
            )));
        }
        let view = display::build_view(
            authenticator.authenticator_id,
            &authenticator.user_id,
            &entry.envelope,
            left,
            lang,
        );
        // Kept from the second build on: a core opened for one refresh (the
        // app's cold start) does not pay for a copy it never uses.
        if !std::mem::replace(&mut entry.built_once, true) {
            return Ok(Some(view));
        }
        entry.built = Some(BuiltView {
            user_id: authenticator.user_id.clone(),
            lang,
            // Built with time left, so Approve is there exactly when the
            // texts passed.
            text_ok: view.actions.contains(&crate::Action::Approve),
            view: view.clone(),
        });
        Ok(Some(view))
    }
}

impl Inner {
    /// Records the first time a request's display model was built.
    pub(crate) fn mark_shown(
        &self,
        authenticator: &AuthenticatorId,
        request: &RequestId,
    ) -> Result<()> {
        let now = self.clock.monotonic_ms();
        lock(&self.shown)?
            .entry((*authenticator, *request))
            .or_insert(now);
        Ok(())
    }

    pub(crate) fn remaining(&self, row: &PendingRow) -> Result<u64> {
        self.remaining_of(
            &row.authenticator_id,
            &row.envelope.envelope.request_id,
            row.envelope.envelope.expires_at_ms,
            row.server_time_ms,
            row.received_wall_ms,
        )
    }

    /// [`Inner::remaining`] of a request known by its parts.
    pub(crate) fn remaining_of(
        &self,
        authenticator: &AuthenticatorId,
        request: &RequestId,
        expires_at_ms: u64,
        server_time_ms: u64,
        received_wall_ms: u64,
    ) -> Result<u64> {
        if let Some(t) = lock(&self.timers)?.get(&(*authenticator, *request)) {
            return Ok(t.remaining(self.clock.monotonic_ms()));
        }
        Ok(remaining_after_restart(
            remaining_at_pull(expires_at_ms, server_time_ms),
            received_wall_ms,
            self.clock.wall_ms(),
        ))
    }
}

/// A pulled envelope that passed, with its row as the store keeps it.
type Verified<'a> = (&'a SignedEnvelope, (String, String));

/// A stored request's decoded envelope and the view last built of it
/// ([`App::requests`] keeps one per stored request, keyed by the
/// authenticator and the envelope as stored).
#[derive(Debug)]
pub(crate) struct CachedView {
    envelope: RequestEnvelopeBody,
    /// A view was built once (not kept then).
    built_once: bool,
    built: Option<BuiltView>,
}

#[derive(Debug)]
struct BuiltView {
    user_id: String,
    lang: Language,
    text_ok: bool,
    view: RequestView,
}

#[cfg(test)]
mod tests {
    use crate::Language;
    use crate::testing::fixture;

    #[test]
    fn a_view_taken_again_is_the_view_built_anew_with_the_time_left() {
        let f = fixture();
        let a = f.open();
        f.add_request(&a, "Log på Netbank");
        f.add_request(&a, "Overfør 100 kr");
        // Built, built again and kept, then taken from the cache.
        let first = a.requests(Language::English).unwrap();
        let second = a.requests(Language::English).unwrap();
        f.clock.advance(1_000);
        let third = a.requests(Language::English).unwrap();
        assert_eq!(first, second);
        assert_eq!(third.len(), 2);
        for (kept, now) in second.iter().zip(&third) {
            assert_eq!(now.time_left_ms, kept.time_left_ms - 1_000);
            let mut same = now.clone();
            same.time_left_ms = kept.time_left_ms;
            assert_eq!(&same, kept);
        }
        // Another language builds anew.
        let danish = a.requests(Language::Danish).unwrap();
        assert_eq!(danish[0].language, Language::Danish);
        assert_ne!(danish[0].title, third[0].title);
        // Once the time is up, nothing is shown, cached or not.
        f.clock.advance(eid_protocol::REQUEST_LIFETIME_MS);
        assert!(a.requests(Language::English).unwrap().is_empty());
    }
}
