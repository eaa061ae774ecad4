//! A protocol-level phone with in-memory keys, for QA tests and load generation.

use eid_protocol::crypto::SoftwareSigningKey;
use eid_protocol::messages::{ActivationProof, DeviceRequestAuth};
use eid_protocol::wire::{
    self, ActivateRequest, ActivateResponse, PullRequest, PullResponse, SignedReceipt,
    SubmitDecisionRequest,
};
use eid_protocol::{
    AuthenticatorId, Decision, IdentityId, Nonce16, Outcome, PublicKey, RequestEnvelopeBody,
};

use crate::transport::{Call, Transport};
use crate::{ApiFailure, decode_answer};

/// An activated (or not yet activated) soft phone account.
pub struct SoftPhone {
    /// Device key.
    pub device_key: SoftwareSigningKey,
    /// PIN key (a real phone unwraps it with the PIN; here it is always at hand).
    pub pin_key: SoftwareSigningKey,
    /// Set by activation.
    pub authenticator_id: Option<AuthenticatorId>,
    /// Set by activation.
    pub identity_id: Option<IdentityId>,
    /// Set by activation.
    pub server_key: Option<PublicKey>,
    /// Last decision counter used.
    pub counter: u64,
    /// The highest decision `seq` pulled (the journal cursor a real phone keeps).
    pub decisions_seen: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for SoftPhone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftPhone")
            .field("authenticator_id", &self.authenticator_id)
            .finish_non_exhaustive()
    }
}

impl Default for SoftPhone {
    fn default() -> Self {
        Self::new()
    }
}

/// The headers of a signed device request.
#[derive(Debug, Clone)]
pub struct SignedHeaders {
    /// `eid-timestamp`.
    pub timestamp: String,
    /// `eid-nonce`.
    pub nonce: String,
    /// `eid-signature`.
    pub signature: String,
}

impl SoftPhone {
    /// Fresh keys, not activated.
    pub fn new() -> Self {
        Self {
            device_key: SoftwareSigningKey::generate(),
            pin_key: SoftwareSigningKey::generate(),
            authenticator_id: None,
            identity_id: None,
            server_key: None,
            counter: 0,
            decisions_seen: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The authenticator id (panics before activation: a test bug).
    pub fn id(&self) -> AuthenticatorId {
        self.authenticator_id.expect("soft phone not activated")
    }

    /// The activation request this phone would send.
    pub fn activation_request(&self, user_id: &str, code: &str) -> ActivateRequest {
        let proof = ActivationProof {
            user_id,
            device_public_key: self.device_key.public_key(),
            pin_public_key: self.pin_key.public_key(),
        }
        .signing_bytes();
        ActivateRequest {
            user_id: user_id.into(),
            activation_code: code.into(),
            device_public_key: self.device_key.public_key().clone(),
            pin_public_key: self.pin_key.public_key().clone(),
            device_signature: self.device_key.sign(&proof),
            pin_signature: self.pin_key.sign(&proof),
        }
    }

    /// Activates with a user ID and activation code.
    pub async fn activate(
        &mut self,
        endpoint: &impl Transport,
        user_id: &str,
        code: &str,
    ) -> Result<ActivateResponse, ApiFailure> {
        let body =
            serde_json::to_vec(&self.activation_request(user_id, code)).expect("serializable");
        let response: ActivateResponse =
            decode_answer(&endpoint.call(Call::post(wire::PATH_ACTIVATE, body)).await?)?;
        self.authenticator_id = Some(response.authenticator_id);
        self.identity_id = Some(response.identity_id);
        self.server_key = Some(response.server_public_key.clone());
        Ok(response)
    }

    /// Signs a device request for several phones (one signature each).
    pub fn sign_device_request(
        phones: &[&SoftPhone],
        path: &str,
        body: &[u8],
        timestamp_ms: u64,
        nonce: Nonce16,
    ) -> SignedHeaders {
        let body_sha256 = eid_protocol::sha256(body);
        let pairs: Vec<_> = phones
            .iter()
            .map(|p| {
                let msg = DeviceRequestAuth {
                    authenticator_id: p.id(),
                    method: "POST",
                    path,
                    body_sha256,
                    timestamp_ms,
                    nonce,
                }
                .signing_bytes();
                (p.id(), p.device_key.sign(&msg))
            })
            .collect();
        SignedHeaders {
            timestamp: timestamp_ms.to_string(),
            nonce: nonce.to_string(),
            signature: wire::format_signature_header(&pairs),
        }
    }

    /// Pulls for several phones in one signed call and verifies every envelope
    /// with the server key learned at activation.
    pub async fn pull(
        endpoint: &impl Transport,
        phones: &[&SoftPhone],
        timestamp_ms: u64,
    ) -> Result<PullResponse, ApiFailure> {
        let body = serde_json::to_vec(&PullRequest {
            authenticator_ids: phones.iter().map(|p| p.id()).collect(),
            feed_after: Vec::new(),
            events_after: Vec::new(),
            decisions_after: phones
                .iter()
                .map(|p| p.decisions_seen.load(std::sync::atomic::Ordering::Relaxed))
                .collect(),
        })
        .expect("serializable");
        let headers = Self::sign_device_request(
            phones,
            wire::PATH_PULL,
            &body,
            timestamp_ms,
            Nonce16::random(),
        );
        let signed = [
            (wire::HEADER_TIMESTAMP, headers.timestamp.as_str()),
            (wire::HEADER_NONCE, headers.nonce.as_str()),
            (wire::HEADER_SIGNATURE, headers.signature.as_str()),
        ];
        let call = Call {
            headers: &signed,
            ..Call::post(wire::PATH_PULL, body)
        };
        let response: PullResponse = decode_answer(&endpoint.call(call).await?)?;
        for (account, phone) in response.accounts.iter().zip(phones) {
            let key = phone.server_key.as_ref().expect("activated");
            for signed in &account.requests {
                key.verify(&signed.envelope.signing_bytes(), &signed.signature)
                    .map_err(|_| ApiFailure::BadServerSignature)?;
            }
            if let Some(seq) = account.decisions.iter().map(|d| d.seq).max() {
                phone
                    .decisions_seen
                    .fetch_max(seq, std::sync::atomic::Ordering::Relaxed);
            }
        }
        Ok(response)
    }

    /// A signed decision on an envelope (device key and, if `with_pin`, PIN key).
    pub fn decide(
        &mut self,
        envelope: &RequestEnvelopeBody,
        outcome: Outcome,
        binding_code: Option<String>,
        with_pin: bool,
    ) -> SubmitDecisionRequest {
        self.counter += 1;
        let decision =
            Decision::for_envelope(envelope, self.id(), outcome, binding_code, self.counter);
        Self::sign_decision(
            &self.device_key,
            with_pin.then_some(&self.pin_key),
            decision,
        )
    }

    /// Signs an arbitrary decision (tests use it to tamper).
    pub fn sign_decision(
        device_key: &SoftwareSigningKey,
        pin_key: Option<&SoftwareSigningKey>,
        decision: Decision,
    ) -> SubmitDecisionRequest {
        let bytes = decision.signing_bytes();
        SubmitDecisionRequest {
            device_signature: device_key.sign(&bytes),
            pin_signature: pin_key.map(|k| k.sign(&bytes)),
            decision,
        }
    }

    /// Submits a signed decision and verifies the receipt.
    pub async fn submit(
        &self,
        endpoint: &impl Transport,
        request: &SubmitDecisionRequest,
    ) -> Result<SignedReceipt, ApiFailure> {
        let body = serde_json::to_vec(request).expect("serializable");
        let receipt: SignedReceipt = decode_answer(
            &endpoint
                .call(Call::post(wire::PATH_DECISIONS, body))
                .await?,
        )?;
        let key = self.server_key.as_ref().expect("activated");
        key.verify(&receipt.receipt.signing_bytes(), &receipt.signature)
            .map_err(|_| ApiFailure::BadServerSignature)?;
        if receipt.receipt.decision_sha256
            != eid_protocol::sha256(&request.decision.signing_bytes())
        {
            return Err(ApiFailure::BadServerSignature);
        }
        Ok(receipt)
    }
}
