//! Pull: one device-signed round trip brings every authenticator's pending
//! requests, security feed, new devices, contact changes and the identity's
//! decisions (for the device journal). Everything is verified before
//! anything is stored; then the display models are built from the store.

use eid_protocol::wire::{
    self, AccountState as ServerAccountState, PullRequest, PullResponse, SignedEnvelope,
};
use eid_protocol::{AuthenticatorId, RequestId};

use crate::approval::{RequestTimer, remaining_after_restart, remaining_at_pull};
use crate::store::{AuthenticatorRow, AuthenticatorState, PendingRow};
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
        let ids: Vec<AuthenticatorId> = authenticators.iter().map(|a| a.authenticator_id).collect();
        // The feed pages like the decisions: the oldest events above the
        // cursor, so a flood between two pulls arrives over the next ones.
        let (events_after, decisions_after) = {
            let store = lock(&self.inner.store)?;
            (store.feed_cursors(&ids)?, store.decision_cursors(&ids)?)
        };
        let body = serde_json::to_vec(&PullRequest {
            authenticator_ids: ids.clone(),
            feed_after: Vec::new(),
            events_after,
            decisions_after,
        })?;
        let resp: PullResponse = self
            .inner
            .device_post(authenticators, wire::PATH_PULL, body)
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
        // so only new envelopes cost a signature check.
        let known = lock(&self.inner.store)?.pending()?;
        let mut accepted: Vec<(usize, Vec<SignedEnvelope>)> = Vec::new();
        for (i, (pulled, authenticator)) in resp.accounts.iter().zip(authenticators).enumerate() {
            let mut keep = Vec::new();
            for e in &pulled.requests {
                let verified_before = known.iter().any(|k| {
                    k.authenticator_id == authenticator.authenticator_id && k.envelope == *e
                });
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
                    keep.push(e.clone());
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
        let rows: Vec<(AuthenticatorId, AuthenticatorState, &[SignedEnvelope])> = kept
            .iter()
            .map(|(id, state, keep)| (*id, *state, keep.as_slice()))
            .collect();
        lock(&self.inner.store)?.apply_pull(&rows, resp.server_time_ms, wall)?;
        let shown: Vec<(AuthenticatorId, AuthenticatorState)> =
            kept.iter().map(|(id, state, _)| (*id, *state)).collect();
        enrolment::store_pulled(&self.inner, &shown, &resp.accounts)?;
        // The security feed, for every authenticator (a locked or blocked one
        // most of all): stored with its cursor in one transaction.
        let feeds: Vec<(AuthenticatorId, &[wire::FeedEvent], bool)> = resp
            .accounts
            .iter()
            .map(|p| (p.authenticator_id, p.events.as_slice(), p.notify_every_use))
            .collect();
        lock(&self.inner.store)?.apply_feed(&feeds)?;
        // The device journal against the server's decisions (every authenticator
        // pulled, whatever its state).
        let decisions: Vec<(AuthenticatorId, &[wire::PulledDecision])> = resp
            .accounts
            .iter()
            .map(|p| (p.authenticator_id, p.decisions.as_slice()))
            .collect();
        let raised = journal::reconcile(&mut lock(&self.inner.store)?.conn, &decisions, wall)?;
        if raised > 0 {
            tracing::warn!(raised, "the server holds decisions this phone never signed");
        }
        self.store_authenticator_details(&resp.accounts)?;
        let mut shown = lock(&self.inner.shown)?;
        for (id, _, keep) in &kept {
            shown.retain(|(a, r), _| a != id || keep.iter().any(|e| e.envelope.request_id == *r));
        }
        drop(shown);
        let mut timers = lock(&self.inner.timers)?;
        for (id, _, keep) in &kept {
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
        let mut out = Vec::new();
        for row in store.pending()? {
            if only.is_some_and(|id| *id != row.authenticator_id) {
                continue;
            }
            let Some(authenticator) = authenticators.iter().find(|a| {
                a.authenticator_id == row.authenticator_id && a.state == AuthenticatorState::Active
            }) else {
                continue;
            };
            let left = self.inner.remaining(&row)?;
            if left == 0 {
                continue;
            }
            self.inner
                .mark_shown(&row.authenticator_id, &row.envelope.envelope.request_id)?;
            let request = &row.envelope.envelope.request_id;
            let confirmed = self
                .inner
                .started_myself(&authenticator.authenticator_id, request)?;
            out.push(display::with_call_context(
                display::build_view(
                    authenticator.authenticator_id,
                    &authenticator.user_id,
                    &row.envelope.envelope,
                    left,
                    lang,
                ),
                signals,
                confirmed,
            ));
        }
        Ok(out)
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
        let key = (row.authenticator_id, row.envelope.envelope.request_id);
        if let Some(t) = lock(&self.timers)?.get(&key) {
            return Ok(t.remaining(self.clock.monotonic_ms()));
        }
        Ok(remaining_after_restart(
            remaining_at_pull(row.envelope.envelope.expires_at_ms, row.server_time_ms),
            row.received_wall_ms,
            self.clock.wall_ms(),
        ))
    }
}
