//! The ID token's claims (see docs/oidc.md): the standard ones of OpenID
//! Connect Core section 2, and the evidence behind the login: for the app,
//! the request's id, the SHA-256 of the reference text the person saw and
//! the SHA-256 of the decision's server-signed receipt; for a hardware
//! authenticator (a code device or a chip), the SHA-256 of the server-signed
//! hardware receipt. `acr` and `amr` say which method was used
//! ([`crate::oidc::method`]).
//!
//! The receipt itself is not in the token: it names the broker's identity
//! and authenticator ids, the same at every service provider, so two
//! providers could link their pairwise subjects through it. Its hash binds
//! the token to it without revealing them; the provider that also holds an
//! API key reads the receipt at `GET /v1/rp/requests/{id}`, and the broker
//! keeps it for disputes. The token is signed ES256 by
//! [`super::IdTokenKey`].
//!
//! The call context (docs/protocol.md, "Call context") is in the token too:
//! what the phone saw about calls and screen sharing when the person
//! approved, as the receipt signs it, and what the server's call policy made
//! of it, so a client that only reads ID tokens can act on a flagged login.

use eid_protocol::wire::{RequestStatus, SignedHardwareReceipt};
use eid_protocol::{CallContext, CallVerdict, IdentityId, Outcome, ServiceProviderId};
use serde::Serialize;

use super::TOKEN_LIFETIME_MS;
use super::method::LoginMethod;
use crate::store::StoredRequest;

/// The authentication method of a login in the app: a code (the PIN) in
/// the app (`amr` values are not registered for this; the name says what
/// happened).
pub const AMR_CODE_APP: &str = "code_app";

/// What a login's ID token vouches for.
#[derive(Debug, Clone, Copy)]
pub enum Evidence<'a> {
    /// The person approved the login's request in the app.
    App(&'a StoredRequest),
    /// The login was completed with a hardware authenticator.
    Hardware(&'a SignedHardwareReceipt),
}

impl Evidence<'_> {
    /// The identity that logged in.
    pub fn identity_id(&self) -> IdentityId {
        match self {
            Evidence::App(request) => request.envelope.identity_id,
            Evidence::Hardware(receipt) => receipt.receipt.identity_id,
        }
    }

    /// The service provider the evidence was made for.
    pub fn service_provider_id(&self) -> ServiceProviderId {
        match self {
            Evidence::App(request) => request.envelope.service_provider_id,
            Evidence::Hardware(receipt) => receipt.receipt.service_provider_id,
        }
    }
}

/// The claims of one ID token, in the order they are written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct IdTokenClaims {
    /// The issuer.
    pub iss: String,
    /// The client's id.
    pub aud: String,
    /// `iat` + 300 s.
    pub exp: u64,
    /// Issue time, s.
    pub iat: u64,
    /// When the person approved, s.
    pub auth_time: u64,
    /// The client's `nonce`, if it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The pairwise subject.
    pub sub: String,
    /// The NSIS level of assurance the method reached.
    pub acr: String,
    /// The method's values (`["code_app"]` for the app, see docs/oidc.md).
    pub amr: Vec<String>,
    /// The request in the app (32 hex digits); absent for a hardware login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eid_request_id: Option<String>,
    /// SHA-256 of the receipt's signed bytes (its canonical encoding,
    /// docs/protocol.md: the decision's receipt, or the hardware receipt),
    /// hex.
    pub eid_receipt_sha256: String,
    /// SHA-256 of the reference text the person saw in the app, hex;
    /// absent for a hardware login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eid_reference_text_sha256: Option<String>,
    /// What the phone saw about calls, screen sharing and remote control
    /// when the person approved (from a version-2 receipt); absent for an
    /// older phone's decision, which means all unknown, and for a hardware
    /// login, where no phone took part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eid_call_context: Option<CallContext>,
    /// What the call policy made of it: `clear`, `allowed` or `flagged` (a
    /// stopped login gets no token); absent for a hardware login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eid_call_verdict: Option<CallVerdict>,
}

/// What the ID token is built from, besides the approved request.
#[derive(Debug, Clone, Copy)]
pub struct IdTokenContext<'a> {
    /// The issuer.
    pub issuer: &'a str,
    /// The client's id.
    pub client_id: &'a str,
    /// The pairwise subject.
    pub sub: &'a str,
    /// The client's `nonce`.
    pub nonce: Option<&'a str>,
    /// The server's time, ms.
    pub now_ms: u64,
}

/// Why no ID token can be made for a login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotApproved {
    /// The request is not approved, or has no decision.
    #[error("the login's request is not approved")]
    NotApproved,
    /// The hardware receipt names no known method.
    #[error("the hardware receipt names no known method")]
    UnknownMethod,
}

/// The claims for a login with its evidence.
pub fn claims(
    ctx: IdTokenContext<'_>,
    evidence: Evidence<'_>,
) -> Result<IdTokenClaims, NotApproved> {
    match evidence {
        Evidence::App(request) => app_claims(ctx, request),
        Evidence::Hardware(receipt) => hardware_claims(ctx, receipt),
    }
}

fn hardware_claims(
    ctx: IdTokenContext<'_>,
    signed: &SignedHardwareReceipt,
) -> Result<IdTokenClaims, NotApproved> {
    let receipt = &signed.receipt;
    let method = LoginMethod::parse(&receipt.method).ok_or(NotApproved::UnknownMethod)?;
    let iat = ctx.now_ms / 1000;
    Ok(IdTokenClaims {
        iss: ctx.issuer.to_owned(),
        aud: ctx.client_id.to_owned(),
        exp: iat + TOKEN_LIFETIME_MS / 1000,
        iat,
        auth_time: receipt.completed_at_ms / 1000,
        nonce: ctx.nonce.map(str::to_owned),
        sub: ctx.sub.to_owned(),
        acr: method.level().acr().to_owned(),
        amr: method.amr().iter().map(|a| (*a).to_owned()).collect(),
        eid_request_id: None,
        eid_receipt_sha256: hex::encode(eid_protocol::sha256(&receipt.signing_bytes())),
        eid_reference_text_sha256: None,
        eid_call_context: None,
        eid_call_verdict: None,
    })
}

/// The claims for the login whose request `request` was approved.
fn app_claims(
    ctx: IdTokenContext<'_>,
    request: &StoredRequest,
) -> Result<IdTokenClaims, NotApproved> {
    let decision = request
        .decision
        .as_ref()
        .filter(|d| d.outcome == Outcome::Approve && request.status == RequestStatus::Approved)
        .ok_or(NotApproved::NotApproved)?;
    let iat = ctx.now_ms / 1000;
    Ok(IdTokenClaims {
        iss: ctx.issuer.to_owned(),
        aud: ctx.client_id.to_owned(),
        exp: iat + TOKEN_LIFETIME_MS / 1000,
        iat,
        auth_time: decision.decided_at_ms / 1000,
        nonce: ctx.nonce.map(str::to_owned),
        sub: ctx.sub.to_owned(),
        acr: LoginMethod::App.level().acr().to_owned(),
        amr: vec![AMR_CODE_APP.to_owned()],
        eid_request_id: Some(request.envelope.request_id.to_string()),
        eid_receipt_sha256: hex::encode(eid_protocol::sha256(
            &decision.receipt.receipt.signing_bytes(),
        )),
        eid_reference_text_sha256: Some(hex::encode(request.envelope.reference_text_sha256())),
        eid_call_context: decision.receipt.receipt.call_context,
        eid_call_verdict: Some(decision.call_verdict),
    })
}

#[cfg(test)]
mod tests {
    use eid_protocol::crypto::SoftwareSigningKey;
    use eid_protocol::wire::SignedReceipt;
    use eid_protocol::{
        AuthenticatorId, IdentityId, ReceiptBody, RequestEnvelopeBody, RequestId, RequestKind,
        ServiceProviderId, Signal,
    };

    use super::*;
    use crate::store::DecisionRecord;

    fn approved(call_context: Option<CallContext>, call_verdict: CallVerdict) -> StoredRequest {
        let key = SoftwareSigningKey::generate();
        let envelope = RequestEnvelopeBody {
            request_id: RequestId([1; 16]),
            identity_id: IdentityId([2; 16]),
            kind: RequestKind::Login,
            service_provider_id: ServiceProviderId([3; 16]),
            service_provider_name: "Nordisk Bank A/S".into(),
            reference_text: "Log på".into(),
            created_at_ms: 1_000,
            expires_at_ms: 301_000,
            server_nonce: [4; 32],
            binding_required: true,
        };
        let receipt = ReceiptBody {
            request_id: envelope.request_id,
            identity_id: envelope.identity_id,
            authenticator_id: AuthenticatorId([5; 16]),
            outcome: Outcome::Approve,
            kind: envelope.kind,
            reference_text_sha256: envelope.reference_text_sha256(),
            service_provider_id: envelope.service_provider_id,
            decided_at_ms: 42_000,
            decision_sha256: [6; 32],
            counter: 1,
            call_context,
        };
        let signature = key.sign(&receipt.signing_bytes());
        StoredRequest {
            envelope_signature: key.sign(&envelope.signing_bytes()),
            envelope,
            binding_code: None,
            status: RequestStatus::Approved,
            decision: Some(DecisionRecord {
                authenticator_id: AuthenticatorId([5; 16]),
                outcome: Outcome::Approve,
                counter: 1,
                decision_sha256: [6; 32],
                receipt: SignedReceipt { receipt, signature },
                decided_at_ms: 42_000,
                call_verdict,
            }),
        }
    }

    fn ctx() -> IdTokenContext<'static> {
        IdTokenContext {
            issuer: "https://eid.example",
            client_id: "client",
            sub: "sub",
            nonce: None,
            now_ms: 50_000,
        }
    }

    #[test]
    fn a_login_approved_on_a_call_carries_the_signed_context_and_the_verdict() {
        let on_call = CallContext {
            call: Signal::On,
            confirmed_self_started: true,
            ..CallContext::UNKNOWN
        };
        let claims = claims(
            ctx(),
            Evidence::App(&approved(Some(on_call), CallVerdict::Flagged)),
        )
        .unwrap();
        assert_eq!(claims.eid_call_context, Some(on_call));
        assert_eq!(claims.eid_call_verdict, Some(CallVerdict::Flagged));
        let json = serde_json::to_value(&claims).unwrap();
        assert_eq!(json["eid_call_context"]["call"], "on");
        assert_eq!(json["eid_call_verdict"], "flagged");
    }

    #[test]
    fn an_older_phone_s_login_has_no_context_claim_and_a_clear_verdict() {
        let claims = claims(ctx(), Evidence::App(&approved(None, CallVerdict::Clear))).unwrap();
        let json = serde_json::to_value(&claims).unwrap();
        assert!(json.get("eid_call_context").is_none());
        assert_eq!(json["eid_call_verdict"], "clear");
    }
}
