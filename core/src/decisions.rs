//! Decisions: approve (after the PIN unlock, the swipe, the minimum read
//! time and any login-screen code), deny and report fraud (no PIN). Each
//! decision takes the next counter, is signed and stored before it is sent,
//! and is re-sent byte for byte until the server's receipt verifies.

use eid_protocol::crypto::SoftwareSigningKey;
use eid_protocol::wire::{self, ErrorCode, SignedReceipt, SubmitDecisionRequest};
use eid_protocol::{
    AuthenticatorId, CallContext, Decision, Outcome, PublicKey, RequestId, Signature,
};

use crate::error::InternalError;
use crate::keystore::KeyStoreError;
use crate::store::{AuthenticatorRow, AuthenticatorState, DecisionStatus, PendingRow};
use crate::unlock::UnlockToken;
use crate::{App, Error, Inner, Result, crash, display, lock};

impl App {
    /// How long the person must still read the request before
    /// [`App::approve`] accepts it (monotonic ms, 0 = now). The
    /// read time counts from the first time the request's display model was
    /// built ([`App::refresh`], [`App::requests`],
    /// [`App::requests_for`]) in this process; a request never
    /// shown starts counting now. After a restart it counts again from the
    /// first display. No network.
    pub fn read_time_left(
        &self,
        authenticator: &AuthenticatorId,
        request: &RequestId,
    ) -> Result<u64> {
        self.inner.decidable(authenticator, request)?;
        self.inner.read_time_left(authenticator, request)
    }

    /// Approves the unlocked request after the swipe. Signs with the device key
    /// and the PIN key, submits, and verifies the server's receipt.
    /// Refused with [`Error::TooFast`] (nothing signed or counted, the unlock
    /// kept) if the request was shown less than [`Config::min_read_ms`](crate::Config::min_read_ms) ago.
    /// `binding_code` is the code from the login screen when the request needs one.
    pub async fn approve(
        &self,
        unlock: &UnlockToken,
        swipe_confirmed: bool,
        binding_code: Option<&str>,
    ) -> Result<SignedReceipt> {
        if !swipe_confirmed {
            return Err(Error::SwipeRequired);
        }
        if let Some(receipt) = self
            .inner
            .replay_stored(
                &unlock.authenticator_id,
                &unlock.request_id,
                Outcome::Approve,
            )
            .await?
        {
            return Ok(receipt);
        }
        let (_, pending) = self
            .inner
            .decidable(&unlock.authenticator_id, &unlock.request_id)?;
        if pending.envelope.envelope.binding_required
            && binding_code.is_none_or(|c| c.trim().is_empty())
        {
            return Err(Error::BindingCodeRequired);
        }
        // A typed code or a scanned QR payload, in the canonical form the
        // server compares; a malformed one is refused before anything is sent.
        let binding_code = binding_code
            .filter(|c| !c.trim().is_empty())
            .map(eid_protocol::binding::canonical_binding_code)
            .transpose()
            .map_err(|_| Error::WrongBindingCode)?;
        // Asked before any lock: the shell's provider is foreign code.
        let context = self.inner.call_signals()?;
        let confirmed = self
            .inner
            .started_myself(&unlock.authenticator_id, &unlock.request_id)?;
        let entry = {
            let mut unlocks = lock(&self.inner.unlocks)?;
            let now = self.inner.clock.monotonic_ms();
            let valid = unlocks.get(&unlock.id).is_some_and(|e| {
                e.expires_mono_ms > now
                    && e.authenticator_id == unlock.authenticator_id
                    && e.request_id == unlock.request_id
            });
            if !valid {
                unlocks.remove(&unlock.id);
                return Err(Error::UnlockInvalid);
            }
            // Minimum read time, before the unlock is used up: a refusal
            // signs nothing, counts nothing and keeps the unlock.
            let wait_ms = self
                .inner
                .read_time_left(&unlock.authenticator_id, &unlock.request_id)?;
            if wait_ms > 0 {
                return Err(Error::TooFast { wait_ms });
            }
            // The call context at the moment of approval: with a call or
            // screen sharing on, only after "I started this myself" (the
            // unlock is kept, nothing signed).
            if context.any_on() && !confirmed {
                return Err(Error::StartedMyselfRequired);
            }
            unlocks.remove(&unlock.id).ok_or(Error::UnlockInvalid)?
        };
        self.decide(
            &unlock.authenticator_id,
            &unlock.request_id,
            Outcome::Approve,
            Some(&entry.pin_key),
            binding_code,
            context.signed(confirmed),
        )
        .await
    }

    /// Denies a request. Needs no PIN: signed by the device key, and also by the
    /// PIN key if the request is currently unlocked.
    pub async fn deny(
        &self,
        authenticator: &AuthenticatorId,
        request: &RequestId,
    ) -> Result<SignedReceipt> {
        self.refuse(authenticator, request, Outcome::Deny).await
    }

    /// Denies a request and reports it as fraud ("this wasn't me"). Like [`App::deny`].
    pub async fn report_fraud(
        &self,
        authenticator: &AuthenticatorId,
        request: &RequestId,
    ) -> Result<SignedReceipt> {
        self.refuse(authenticator, request, Outcome::ReportFraud)
            .await
    }

    async fn refuse(
        &self,
        authenticator: &AuthenticatorId,
        request: &RequestId,
        outcome: Outcome,
    ) -> Result<SignedReceipt> {
        if let Some(receipt) = self
            .inner
            .replay_stored(authenticator, request, outcome)
            .await?
        {
            return Ok(receipt);
        }
        self.inner.decidable(authenticator, request)?;
        // A refusal is never held back by the call context, but it says
        // what the phone saw too.
        let context = self
            .inner
            .call_signals()?
            .signed(self.inner.started_myself(authenticator, request)?);
        let entry = {
            let mut unlocks = lock(&self.inner.unlocks)?;
            let now = self.inner.clock.monotonic_ms();
            let key = unlocks
                .iter()
                .find(|(_, u)| {
                    u.authenticator_id == *authenticator
                        && u.request_id == *request
                        && u.expires_mono_ms > now
                })
                .map(|(k, _)| *k);
            key.and_then(|k| unlocks.remove(&k))
        };
        self.decide(
            authenticator,
            request,
            outcome,
            entry.as_ref().map(|e| &e.pin_key),
            None,
            context,
        )
        .await
    }

    async fn decide(
        &self,
        authenticator: &AuthenticatorId,
        request: &RequestId,
        outcome: Outcome,
        pin_key: Option<&SoftwareSigningKey>,
        binding_code: Option<String>,
        call_context: CallContext,
    ) -> Result<SignedReceipt> {
        let submit = {
            let (acc, pending) = self.inner.decidable(authenticator, request)?;
            let envelope = &pending.envelope.envelope;
            if outcome == Outcome::Approve {
                display::check_texts(envelope).map_err(Error::TextRefused)?;
            }
            // The platform keystore may be slow (StrongBox, a user prompt), so
            // it signs without the store lock; the counter is then committed
            // with the signed decision only if no other decision took it
            // meanwhile (compare-and-set), else signed again with the next.
            let mut attempts = 0;
            loop {
                let counter = lock(&self.inner.store)?.next_counter(authenticator)?;
                let decision = Decision::for_envelope(
                    envelope,
                    *authenticator,
                    outcome,
                    binding_code.clone(),
                    counter,
                )
                .with_call_context(call_context);
                let bytes = decision.signing_bytes();
                let device_sig = self.inner.keystore.sign(&acc.device_key_alias, &bytes)?;
                let device_signature = Signature::from_der(&device_sig)
                    .map_err(|_| Error::KeyStore(KeyStoreError::Failure("bad signature".into())))?;
                let submit = SubmitDecisionRequest {
                    decision,
                    device_signature,
                    pin_signature: pin_key.map(|k| k.sign(&bytes)),
                };
                let stored = lock(&self.inner.store)?
                    .insert_decision(&submit, self.inner.clock.wall_ms())?;
                attempts += 1;
                if stored {
                    break submit;
                }
                if attempts == 3 {
                    return Err(InternalError::CounterRace.into());
                }
            }
        };
        crash::point("core.decision.signed");
        self.inner.submit(submit).await
    }

    /// Re-sends decisions that were signed but not confirmed (e.g. after a
    /// network error or a restart). Returns how many were confirmed; stops at
    /// the first network error.
    pub async fn retry_unsent_decisions(&self) -> Result<usize> {
        let unsent = lock(&self.inner.store)?.unsent_decisions()?;
        let mut confirmed = 0;
        for d in unsent {
            match self.inner.submit(d.submit).await {
                Ok(_) => confirmed += 1,
                Err(e @ Error::Network(_)) => return Err(e),
                Err(_) => {}
            }
        }
        Ok(confirmed)
    }
}

impl Inner {
    /// Read time still owed for a request (see [`App::read_time_left`]).
    fn read_time_left(&self, authenticator: &AuthenticatorId, request: &RequestId) -> Result<u64> {
        let min = self.config.min_read_ms;
        if min == 0 {
            return Ok(0);
        }
        let now = self.clock.monotonic_ms();
        let mut shown = lock(&self.shown)?;
        let at = *shown.entry((*authenticator, *request)).or_insert(now);
        Ok(min.saturating_sub(now.saturating_sub(at)))
    }

    /// The authenticator and pending request, if the authenticator may decide it now.
    pub(crate) fn decidable(
        &self,
        authenticator: &AuthenticatorId,
        request: &RequestId,
    ) -> Result<(AuthenticatorRow, PendingRow)> {
        let store = lock(&self.store)?;
        let acc = store.authenticator(authenticator)?;
        match acc.state {
            AuthenticatorState::NeedsReactivation => return Err(Error::ReactivationRequired),
            AuthenticatorState::Blocked => return Err(Error::Blocked),
            AuthenticatorState::Active => {}
        }
        let pending = store
            .pending_request(authenticator, request)?
            .ok_or(Error::UnknownRequest)?;
        drop(store);
        if self.remaining(&pending)? == 0 {
            return Err(Error::Expired);
        }
        Ok((acc, pending))
    }

    /// If a decision for this request is stored: resubmit it (same outcome,
    /// not yet confirmed), return its receipt (confirmed), or refuse (other outcome).
    async fn replay_stored(
        &self,
        authenticator: &AuthenticatorId,
        request: &RequestId,
        outcome: Outcome,
    ) -> Result<Option<SignedReceipt>> {
        let stored = lock(&self.store)?.decision(authenticator, request)?;
        let Some(d) = stored else { return Ok(None) };
        if d.submit.decision.outcome != outcome {
            return Err(Error::AlreadyDecided);
        }
        match d.status {
            DecisionStatus::ReceiptVerified => d
                .receipt
                .map(Some)
                .ok_or_else(|| InternalError::Corrupt("decision: receipt missing").into()),
            DecisionStatus::Rejected => Err(Error::AlreadyDecided),
            DecisionStatus::Signed => self.submit(d.submit).await.map(Some),
        }
    }

    /// Sends a stored signed decision and records the outcome.
    async fn submit(&self, submit: SubmitDecisionRequest) -> Result<SignedReceipt> {
        let d = submit.decision.clone();
        let acc = lock(&self.store)?.authenticator(&d.authenticator_id)?;
        let body = serde_json::to_vec(&submit)?;
        let result: Result<SignedReceipt> = self.client.post(wire::PATH_DECISIONS, body, &[]).await;
        match result {
            Ok(receipt) => {
                crash::point("core.decision.answered");
                verify_receipt(&acc.server_public_key, &d, &receipt)?;
                lock(&self.store)?.set_decision_receipt(
                    &d.authenticator_id,
                    &d.request_id,
                    &receipt,
                )?;
                crash::point("core.decision.receipt_stored");
                lock(&self.timers)?.remove(&(d.authenticator_id, d.request_id));
                Ok(receipt)
            }
            // Only an approval of a request that needs the login-screen code
            // can meet a wrong code; any other decision answered so is kept
            // as refused (a server cannot make the phone forget what it signed).
            Err(Error::Rejected {
                code: ErrorCode::BindingMismatch,
                ..
            }) if d.outcome == Outcome::Approve && d.binding_code.is_some() => {
                // The server recorded nothing and the request stays open: the
                // person may type the code again (a new decision is signed).
                lock(&self.store)?.delete_unsent_decision(&d.authenticator_id, &d.request_id)?;
                Err(Error::WrongBindingCode)
            }
            Err(Error::Rejected { code, message }) if is_final(code) => {
                lock(&self.store)?.set_decision_rejected(
                    &d.authenticator_id,
                    &d.request_id,
                    &format!("{code:?}"),
                )?;
                lock(&self.timers)?.remove(&(d.authenticator_id, d.request_id));
                Err(match code {
                    ErrorCode::RequestExpired => Error::Expired,
                    ErrorCode::IdentityBlocked => {
                        lock(&self.store)?
                            .set_state(&d.authenticator_id, AuthenticatorState::Blocked)?;
                        Error::Blocked
                    }
                    ErrorCode::AuthenticatorLocked => {
                        self.destroy_authenticator_keys(&acc)?;
                        Error::ReactivationRequired
                    }
                    code => Error::Rejected { code, message },
                })
            }
            Err(e) => Err(e),
        }
    }
}

/// Server refusals after which resending the same decision cannot succeed.
fn is_final(code: ErrorCode) -> bool {
    !matches!(
        code,
        ErrorCode::Internal
            | ErrorCode::PayloadTooLarge
            | ErrorCode::ClockSkew
            | ErrorCode::ReplayedNonce
    )
}

/// Checks a receipt's signature and that it is the receipt of exactly `decision`.
pub fn verify_receipt(
    server_key: &PublicKey,
    decision: &Decision,
    receipt: &SignedReceipt,
) -> Result<()> {
    server_key
        .verify(&receipt.receipt.signing_bytes(), &receipt.signature)
        .map_err(|_| Error::InvalidServerSignature)?;
    let r = &receipt.receipt;
    let matches = r.request_id == decision.request_id
        && r.identity_id == decision.identity_id
        && r.authenticator_id == decision.authenticator_id
        && r.outcome == decision.outcome
        && r.kind == decision.kind
        && r.reference_text_sha256 == decision.reference_text_sha256
        && r.service_provider_id == decision.service_provider_id
        && r.counter == decision.counter
        && r.call_context == decision.call_context
        && r.decision_sha256 == eid_protocol::sha256(&decision.signing_bytes());
    if matches {
        Ok(())
    } else {
        Err(Error::InvalidServerSignature)
    }
}

/// Verifies a DER ECDSA-P256-SHA256 signature the way the core does for
/// server envelopes and receipts.
pub fn verify_server_signature(key: &PublicKey, message: &[u8], signature: &Signature) -> bool {
    key.verify(message, signature).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{PIN, fixture};
    use crate::{Action, DEFAULT_MIN_READ_MS, DEFAULT_UNLOCK_TTL_MS, KeyStore, Language};
    use eid_protocol::crypto::SoftwareSigningKey;

    #[tokio::test]
    async fn approve_flow_keeps_signed_decision_for_retry() {
        let f = fixture();
        let a = f.open();
        let req = f.add_request(&a, "Log på Netbank");
        let views = a.requests(Language::English).unwrap();
        assert_eq!(views.len(), 1);
        assert_eq!(views[0].time_left_ms, eid_protocol::REQUEST_LIFETIME_MS);
        assert_eq!(
            a.unlock(&f.authenticator, &req, "000111").await,
            Err(Error::WrongPin {
                attempts_left: 9,
                retry_after_ms: 0
            })
        );
        let token = a.unlock(&f.authenticator, &req, PIN).await.unwrap();
        assert_eq!(
            a.approve(&token, false, None).await,
            Err(Error::SwipeRequired)
        );
        // Minimum read time: refused with the time still owed; nothing
        // signed, the unlock kept.
        f.clock.advance(400);
        assert_eq!(
            a.approve(&token, true, None).await,
            Err(Error::TooFast {
                wait_ms: DEFAULT_MIN_READ_MS - 400
            })
        );
        assert_eq!(
            a.read_time_left(&f.authenticator, &req),
            Ok(DEFAULT_MIN_READ_MS - 400)
        );
        assert!(
            a.inner
                .store
                .lock()
                .unwrap()
                .decision(&f.authenticator, &req)
                .unwrap()
                .is_none()
        );
        f.clock.advance(DEFAULT_MIN_READ_MS - 400);
        assert_eq!(a.read_time_left(&f.authenticator, &req), Ok(0));
        assert!(matches!(
            a.approve(&token, true, None).await,
            Err(Error::Network(_))
        ));
        let stored = a
            .inner
            .store
            .lock()
            .unwrap()
            .decision(&f.authenticator, &req)
            .unwrap()
            .unwrap();
        assert_eq!(stored.status, DecisionStatus::Signed);
        assert_eq!(stored.submit.decision.counter, 1);
        assert!(stored.submit.pin_signature.is_some());
        // Retrying re-sends the same stored decision (no new counter, no PIN).
        assert!(matches!(
            a.approve(&token, true, None).await,
            Err(Error::Network(_))
        ));
        assert!(matches!(
            a.retry_unsent_decisions().await,
            Err(Error::Network(_))
        ));
        let again = a
            .inner
            .store
            .lock()
            .unwrap()
            .decision(&f.authenticator, &req)
            .unwrap()
            .unwrap();
        assert_eq!(again.submit, stored.submit);
        assert_eq!(
            a.inner
                .store
                .lock()
                .unwrap()
                .authenticator(&f.authenticator)
                .unwrap()
                .decision_counter,
            1
        );
        assert_eq!(
            a.deny(&f.authenticator, &req).await,
            Err(Error::AlreadyDecided)
        );
        // Deny without PIN: device signature only.
        let req2 = f.add_request(&a, "Log på igen");
        assert!(matches!(
            a.deny(&f.authenticator, &req2).await,
            Err(Error::Network(_))
        ));
        let d2 = a
            .inner
            .store
            .lock()
            .unwrap()
            .decision(&f.authenticator, &req2)
            .unwrap()
            .unwrap();
        assert_eq!(d2.submit.decision.counter, 2);
        assert_eq!(d2.submit.pin_signature, None);
        let msg = d2.submit.decision.signing_bytes();
        let device =
            PublicKey::from_sec1(&f.keystore.public_key(&f.device_alias).unwrap()).unwrap();
        device.verify(&msg, &d2.submit.device_signature).unwrap();
    }

    #[tokio::test]
    async fn expiry_unlock_lifetime_and_refused_text() {
        let f = fixture();
        let a = f.open();
        let req = f.add_request(&a, "Log på Netbank");
        let token = a.unlock(&f.authenticator, &req, PIN).await.unwrap();
        f.clock.advance(DEFAULT_UNLOCK_TTL_MS + 1);
        assert_eq!(
            a.approve(&token, true, None).await,
            Err(Error::UnlockInvalid)
        );
        f.clock.advance(eid_protocol::REQUEST_LIFETIME_MS);
        assert_eq!(
            a.unlock(&f.authenticator, &req, PIN).await.err(),
            Some(Error::Expired)
        );
        assert!(a.requests(Language::Danish).unwrap().is_empty());
        let bad = f.add_request(&a, "Betal \u{202E}00.001\u{202C} kr");
        let views = a.requests(Language::Danish).unwrap();
        assert_eq!(views.len(), 1);
        assert_eq!(views[0].reference_text, None);
        assert_eq!(views[0].actions, vec![Action::Deny, Action::ReportFraud]);
        assert!(matches!(
            a.unlock(&f.authenticator, &bad, PIN).await,
            Err(Error::TextRefused(_))
        ));
        assert!(matches!(
            a.report_fraud(&f.authenticator, &bad).await,
            Err(Error::Network(_))
        ));
    }

    #[test]
    fn test_vectors_verify_with_core_path() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../testvectors/protocol-v1.json"
        ))
        .unwrap();
        let file: eid_protocol::vectors::VectorFile = serde_json::from_str(&text).unwrap();
        let n = eid_protocol::vectors::check_file(&file, verify_server_signature).unwrap();
        assert!(n >= 5);
        // And the core's receipt check refuses a receipt for another decision.
        let key = SoftwareSigningKey::generate();
        let mut decision = None;
        let mut receipt = None;
        for v in &file.vectors {
            match &v.message {
                eid_protocol::vectors::VectorMessage::Decision(d) => decision = Some(d.clone()),
                eid_protocol::vectors::VectorMessage::Receipt(r) => receipt = Some(r.clone()),
                _ => {}
            }
        }
        let (decision, mut body) = (decision.unwrap(), receipt.unwrap());
        body.decision_sha256 = eid_protocol::sha256(&decision.signing_bytes());
        body.request_id = decision.request_id;
        body.identity_id = decision.identity_id;
        body.authenticator_id = decision.authenticator_id;
        body.outcome = decision.outcome;
        body.kind = decision.kind;
        body.reference_text_sha256 = decision.reference_text_sha256;
        body.service_provider_id = decision.service_provider_id;
        body.counter = decision.counter;
        let signed = SignedReceipt {
            signature: key.sign(&body.signing_bytes()),
            receipt: body.clone(),
        };
        verify_receipt(key.public_key(), &decision, &signed).unwrap();
        let mut other = decision.clone();
        other.counter += 1;
        assert_eq!(
            verify_receipt(key.public_key(), &other, &signed),
            Err(Error::InvalidServerSignature)
        );
        let forged = SignedReceipt {
            signature: SoftwareSigningKey::generate().sign(&body.signing_bytes()),
            receipt: body,
        };
        assert_eq!(
            verify_receipt(key.public_key(), &decision, &forged),
            Err(Error::InvalidServerSignature)
        );
    }
}
