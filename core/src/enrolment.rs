//! A new device added from an existing one (`docs/protocol.md`, "A new
//! device from an existing one").
//!
//! On the **new phone**: [`App::start_device_enrolment`] makes the
//! device key and the PIN key exactly as an activation does, stores them (so
//! a restart can resume), and asks the server; the answer is a code (and QR
//! payload) to show. [`App::poll_device_enrolment`] then asks, signed
//! by the new device key, how it stands: awaiting approval, waiting (the hour
//! after approval), or activated, at which point the authenticator is stored like
//! an activated one. A refused, cancelled or expired enrolment deletes the
//! keys and is [`Error::EnrolmentRefused`].
//!
//! On the **existing phone**: the approval is an ordinary request of kind
//! `NewDevice` (strongest warning, PIN, swipe and the code). Each pull also
//! brings the new devices being added ([`App::pending_devices`]),
//! which the person can cancel without PIN until they are activated
//! ([`App::cancel_device_enrolment`]).

use eid_protocol::wire::{
    self, CancelEnrolmentRequest, EnrolmentCancelled, EnrolmentStarted, EnrolmentState,
    EnrolmentStatusRequest, EnrolmentStatusResponse, ErrorCode, PulledAccount,
    StartEnrolmentRequest,
};
use eid_protocol::{AuthenticatorId, EnrolmentProof, Signature};
use zeroize::Zeroizing;

use crate::error::InternalError;
use crate::store::{
    AuthenticatorRow, DeviceEnrolmentRow, EnrolmentAnswer, PendingEnrolmentRow, Store,
};
use crate::{App, AuthenticatorInfo, AuthenticatorState, Error, Inner, Result, blocking, lock};

/// A device enrolment of this phone, as the new phone shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceEnrolment {
    /// The user ID it was started with.
    pub user_id: String,
    /// The enrolment; also this phone's authenticator id once activated.
    pub enrolment_id: AuthenticatorId,
    /// The code to show; the person types it on the existing phone.
    pub code: String,
    /// The same code as a QR payload (`eid-bind:v1:<code>`).
    pub qr_payload: String,
    /// When the approval request on the existing phone expires (server clock, Unix ms).
    pub expires_at_ms: u64,
}

/// Where this phone's device enrolment stands.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnrolmentStatus {
    /// The existing phone has not approved yet (keep showing the code).
    AwaitingApproval,
    /// Approved; the new device works from `usable_at_ms` (server clock).
    Waiting {
        /// When it works (server clock, Unix ms).
        usable_at_ms: u64,
        /// Milliseconds left by the server's clock when it answered.
        remaining_ms: u64,
    },
    /// Activated: the authenticator is stored on this phone.
    Activated(AuthenticatorInfo),
}

/// How far a new device being added to an identity is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PendingDeviceState {
    /// Its new-device request waits for a decision.
    AwaitingApproval,
    /// Approved; it works after the waiting period unless cancelled.
    Waiting,
}

/// A new device being added to an authenticator's identity, as the existing phone
/// shows it (as of the last pull), with a cancel button.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDevice {
    /// The enrolment (pass it to [`App::cancel_device_enrolment`]).
    pub enrolment_id: AuthenticatorId,
    /// Awaiting approval or waiting.
    pub state: PendingDeviceState,
    /// When the new device asked (server clock, Unix ms).
    pub requested_at_ms: u64,
    /// When it will work, once approved (server clock, Unix ms).
    pub usable_at_ms: Option<u64>,
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>> {
    Ok(serde_json::to_vec(v)?)
}

fn view(user_id: &str, a: &EnrolmentAnswer) -> DeviceEnrolment {
    DeviceEnrolment {
        user_id: user_id.to_owned(),
        enrolment_id: a.enrolment_id,
        code: a.code.clone(),
        qr_payload: format!("{}{}", wire::ENROLMENT_QR_PREFIX, a.code),
        expires_at_ms: a.expires_at_ms,
    }
}

/// Stores the new devices each pulled authenticator's identity is getting (only
/// for active authenticators; the others' are cleared).
pub(crate) fn store_pulled(
    store: &mut Store,
    shown: &[(AuthenticatorId, AuthenticatorState)],
    pulled: &[PulledAccount],
) -> Result<()> {
    let rows: Vec<(AuthenticatorId, Vec<DeviceEnrolmentRow>)> = shown
        .iter()
        .map(|(id, state)| {
            let rows = pulled
                .iter()
                .find(|p| p.authenticator_id == *id)
                .filter(|_| *state == AuthenticatorState::Active)
                .map(|p| {
                    p.device_enrolments
                        .iter()
                        .map(|e| DeviceEnrolmentRow {
                            enrolment_id: e.enrolment_id,
                            waiting: e.state == EnrolmentState::Waiting,
                            requested_at_ms: e.requested_at_ms,
                            usable_at_ms: e.usable_at_ms,
                        })
                        .collect()
                })
                .unwrap_or_default();
            (*id, rows)
        })
        .collect();
    store.replace_device_enrolments(&rows)
}

impl Inner {
    fn discard_enrolment(&self) -> Result<()> {
        let store = lock(&self.store)?;
        if let Some(p) = store.pending_enrolment()? {
            store.clear_pending_enrolment()?;
            self.delete_keys(&p.keys.device_key_alias, &p.keys.pin_wrap_alias);
        }
        Ok(())
    }
}

impl App {
    /// New phone: starts adding this phone to an identity that already has a
    /// device. Checks the PIN policy, makes the device key (keystore) and the
    /// PIN key (sealed under `pin`) as an activation does, and asks the
    /// server. Show the returned code (or QR) to the person, who approves on
    /// the existing phone; then call [`App::poll_device_enrolment`].
    /// Replaces an earlier enrolment on this phone. If the answer is lost the
    /// enrolment is kept, and polling resumes it.
    pub async fn start_device_enrolment(
        &self,
        user_id: &str,
        pin: &str,
    ) -> Result<DeviceEnrolment> {
        self.inner.config.pin_policy.check(pin)?;
        let inner = self.inner.clone();
        let user_id = user_id.to_owned();
        let pin = Zeroizing::new(pin.to_owned());
        blocking(move || {
            inner.discard_enrolment()?;
            let row = inner.prepare_keys(&user_id, &pin, |p| {
                EnrolmentProof {
                    user_id: p.user_id,
                    device_public_key: p.device_public_key,
                    pin_public_key: p.pin_public_key,
                }
                .signing_bytes()
            })?;
            lock(&inner.store)?.put_pending_enrolment(&row)?;
            Ok(())
        })
        .await?;
        self.resume_device_enrolment().await
    }

    /// New phone: the device enrolment on this phone, once the server has
    /// answered (what to show: the code, the QR payload).
    pub fn pending_device_enrolment(&self) -> Result<Option<DeviceEnrolment>> {
        Ok(lock(&self.inner.store)?
            .pending_enrolment()?
            .and_then(|p| p.answer.as_ref().map(|a| view(&p.keys.user_id, a))))
    }

    /// New phone: sends the stored enrolment again (same keys and proofs, no
    /// PIN needed), for example after its answer was lost. The server answers
    /// a live enrolment of the same keys with the same id and code.
    pub async fn resume_device_enrolment(&self) -> Result<DeviceEnrolment> {
        let p = lock(&self.inner.store)?
            .pending_enrolment()?
            .ok_or(Error::NoPendingEnrolment)?;
        if let Some(a) = &p.answer {
            return Ok(view(&p.keys.user_id, a));
        }
        let k = &p.keys;
        let corrupt = |_| InternalError::Corrupt("enrolment");
        let req = StartEnrolmentRequest {
            user_id: k.user_id.clone(),
            device_public_key: k.device_public_key.clone(),
            pin_public_key: k.pin_public_key.clone(),
            device_signature: Signature::from_der(&k.device_signature).map_err(corrupt)?,
            pin_signature: Signature::from_der(&k.pin_signature).map_err(corrupt)?,
        };
        let result: Result<EnrolmentStarted> = self
            .inner
            .client
            .post(wire::PATH_ENROLMENTS, to_json(&req)?, &[])
            .await;
        let started = match result {
            Ok(s) => s,
            Err(e @ Error::Rejected { .. }) => {
                self.inner.discard_enrolment()?;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let code_ok = !started.code.is_empty()
            && started.code.len() <= 64
            && started.code.bytes().all(|b| b.is_ascii_alphanumeric());
        if !code_ok {
            return Err(Error::InvalidResponse("invalid enrolment code".into()));
        }
        let answer = EnrolmentAnswer {
            enrolment_id: started.enrolment_id,
            code: started.code,
            expires_at_ms: started.expires_at_ms,
            usable_at_ms: None,
        };
        lock(&self.inner.store)?.set_enrolment_answer(&answer)?;
        tracing::info!("device enrolment started");
        Ok(view(&k.user_id, &answer))
    }

    /// New phone: asks the server how the enrolment stands (signed by the new
    /// device key). Once approved and the waiting period is over, the server
    /// activates the device and the authenticator is stored here, as after an
    /// activation. A refused, cancelled or expired enrolment deletes the keys
    /// and returns [`Error::EnrolmentRefused`].
    pub async fn poll_device_enrolment(&self) -> Result<EnrolmentStatus> {
        let p: PendingEnrolmentRow = lock(&self.inner.store)?
            .pending_enrolment()?
            .ok_or(Error::NoPendingEnrolment)?;
        let answer = match p.answer.clone() {
            Some(a) => a,
            None => {
                self.resume_device_enrolment().await?;
                lock(&self.inner.store)?
                    .pending_enrolment()?
                    .and_then(|p| p.answer)
                    .ok_or(Error::NoPendingEnrolment)?
            }
        };
        let id = answer.enrolment_id;
        let body = to_json(&EnrolmentStatusRequest { enrolment_id: id })?;
        let headers = self.inner.signed_headers(
            &[(id, p.keys.device_key_alias.as_str())],
            wire::PATH_ENROLMENT_STATUS,
            &body,
        )?;
        let result: Result<EnrolmentStatusResponse> = self
            .inner
            .client
            .post(wire::PATH_ENROLMENT_STATUS, body, &headers)
            .await;
        let resp = match result {
            Ok(r) => r,
            Err(Error::Rejected {
                code: ErrorCode::EnrolmentClosed | ErrorCode::UnknownEnrolment,
                ..
            }) => {
                self.inner.discard_enrolment()?;
                tracing::info!("device enrolment refused; keys deleted");
                return Err(Error::EnrolmentRefused);
            }
            Err(e) => return Err(e),
        };
        if resp.enrolment_id != id {
            return Err(Error::InvalidResponse("status of another enrolment".into()));
        }
        match resp.state {
            EnrolmentState::AwaitingApproval => Ok(EnrolmentStatus::AwaitingApproval),
            EnrolmentState::Waiting => {
                let usable_at_ms = resp
                    .usable_at_ms
                    .ok_or_else(|| Error::InvalidResponse("waiting without a time".into()))?;
                lock(&self.inner.store)?.set_enrolment_answer(&EnrolmentAnswer {
                    usable_at_ms: Some(usable_at_ms),
                    ..answer
                })?;
                Ok(EnrolmentStatus::Waiting {
                    usable_at_ms,
                    remaining_ms: usable_at_ms.saturating_sub(resp.server_time_ms),
                })
            }
            EnrolmentState::Activated => {
                let a = resp
                    .activation
                    .ok_or_else(|| Error::InvalidResponse("activated without keys".into()))?;
                if a.authenticator_id != id || a.server_public_key.validate().is_err() {
                    return Err(Error::InvalidResponse("invalid activation".into()));
                }
                let mut store = lock(&self.inner.store)?;
                if store.authenticator(&a.authenticator_id).is_ok() {
                    return Err(Error::InvalidResponse(
                        "authenticator already on this phone".into(),
                    ));
                }
                let k = p.keys;
                let row = AuthenticatorRow {
                    authenticator_id: a.authenticator_id,
                    identity_id: a.identity_id,
                    user_id: k.user_id.clone(),
                    server_public_key: a.server_public_key,
                    device_key_alias: k.device_key_alias.clone(),
                    pin_wrap_alias: k.pin_wrap_alias.clone(),
                    pin_public_key: k.pin_public_key.clone(),
                    decision_counter: 0,
                    state: AuthenticatorState::Active,
                    created_at_ms: self.inner.clock.wall_ms(),
                };
                store.insert_enrolled_authenticator(&row, &k.wrapped)?;
                tracing::info!("new device activated");
                Ok(EnrolmentStatus::Activated(AuthenticatorInfo::from(&row)))
            }
            _ => Err(Error::InvalidResponse("unknown enrolment state".into())),
        }
    }

    /// New phone: abandons the device enrolment and deletes its keys (the
    /// server's enrolment then simply never completes).
    pub fn discard_device_enrolment(&self) -> Result<()> {
        self.inner.discard_enrolment()
    }

    /// Existing phone: the new devices being added to this authenticator's
    /// identity, as of the last pull (awaiting approval or in the waiting
    /// period). Show them with a cancel button.
    pub fn pending_devices(&self, authenticator: &AuthenticatorId) -> Result<Vec<PendingDevice>> {
        let store = lock(&self.inner.store)?;
        store.authenticator(authenticator)?;
        Ok(store
            .device_enrolments(authenticator)?
            .into_iter()
            .map(|r| PendingDevice {
                enrolment_id: r.enrolment_id,
                state: if r.waiting {
                    PendingDeviceState::Waiting
                } else {
                    PendingDeviceState::AwaitingApproval
                },
                requested_at_ms: r.requested_at_ms,
                usable_at_ms: r.usable_at_ms,
            })
            .collect())
    }

    /// Existing phone: cancels a new device being added to this authenticator's
    /// identity, until it is activated ("that is not my phone"). Signed by the
    /// device key; no PIN, so a person under pressure can always do it.
    pub async fn cancel_device_enrolment(
        &self,
        authenticator: &AuthenticatorId,
        enrolment_id: &AuthenticatorId,
    ) -> Result<()> {
        let acc = lock(&self.inner.store)?.authenticator(authenticator)?;
        let body = to_json(&CancelEnrolmentRequest {
            authenticator_id: *authenticator,
            enrolment_id: *enrolment_id,
        })?;
        let headers = self.inner.device_auth_headers(
            std::slice::from_ref(&acc),
            wire::PATH_ENROLMENT_CANCEL,
            &body,
        )?;
        let result: Result<EnrolmentCancelled> = self
            .inner
            .client
            .post(wire::PATH_ENROLMENT_CANCEL, body, &headers)
            .await;
        match result {
            Ok(r) if r.enrolment_id == *enrolment_id => {}
            Ok(_) => return Err(Error::InvalidResponse("cancelled another enrolment".into())),
            Err(
                e @ Error::Rejected {
                    code: ErrorCode::EnrolmentClosed | ErrorCode::UnknownEnrolment,
                    ..
                },
            ) => {
                lock(&self.inner.store)?.delete_device_enrolment(authenticator, enrolment_id)?;
                return Err(e);
            }
            Err(e) => return Err(e),
        }
        lock(&self.inner.store)?.delete_device_enrolment(authenticator, enrolment_id)?;
        tracing::info!("device enrolment cancelled from this phone");
        Ok(())
    }
}
