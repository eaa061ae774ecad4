//! Device-signed requests: the extractor [`DeviceSigned`] for every endpoint
//! a phone signs with its device key (pull, block, settings, cancelling a
//! contact change or an enrolment, a new device's status poll).
//!
//! The phone signs method, path, body hash, timestamp and nonce
//! ([`DeviceRequestAuth`]) with the device key of each authenticator it
//! names, and sends headers `eid-timestamp`, `eid-nonce` and
//! `eid-signature`. The extractor reads the body, lets the body type check
//! itself, checks the clock, verifies every signature and only then uses up
//! the nonce, so a handler sees only a request that passed, and each signed
//! endpoint checks in the same order.

use axum::extract::{FromRequest, Request};
use axum::http::HeaderMap;
use eid_protocol::messages::DeviceRequestAuth;
use eid_protocol::wire::{
    self, BlockRequest, CancelContactChangeRequest, CancelEnrolmentRequest, DeviceSettingsRequest,
    EnrolmentStatusRequest, ErrorCode, PullRequest,
};
use eid_protocol::{AuthenticatorId, MAX_DEVICE_CLOCK_SKEW_MS, Nonce16};
use serde::de::DeserializeOwned;

use super::{AppState, DeviceKey, RawBody};
use crate::error::{ApiError, ApiResult};

/// The error for a signature that does not verify (`what` names which).
pub(super) fn bad_signature(what: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidSignature,
        format!("{what} does not verify"),
    )
}

/// Whose device keys must have signed a request.
pub(super) enum Signers {
    /// These authenticators, each once (their keys from the cache or store).
    Authenticators(Vec<AuthenticatorId>),
    /// A new device not activated yet: its enrolment's new device key.
    Enrolment(AuthenticatorId),
}

/// A request body a device signs.
pub(super) trait SignedBody: DeserializeOwned + Send {
    /// The route path the device signs.
    const PATH: &'static str;
    /// The message for a body that does not parse as this type.
    const MALFORMED: &'static str;
    /// Who must have signed.
    fn signers(&self) -> Signers;
    /// Checks of the body alone, made before any signature is verified.
    fn check(&self) -> ApiResult<()> {
        Ok(())
    }
    /// Whether the answer must wait until the nonce is on the disk. Only a
    /// pull, which changes nothing, need not (docs/threat-model.md, "A
    /// pull's nonce"): its nonce is not used by the extractor but handed to
    /// the handler ([`DeviceSigned::pull_nonce`]), which uses it with its
    /// read ([`crate::store::Store::pull_with_nonce`]; one round trip on
    /// PostgreSQL).
    const DURABLE_NONCE: bool = true;
}

/// A pull's verified nonce, not used yet: the handler must use it with its
/// read ([`crate::store::Store::pull_with_nonce`]) and answer nothing read
/// when it was seen before.
#[must_use]
pub(super) struct PullNonce {
    /// The nonce.
    pub(super) nonce: Nonce16,
    /// Until when it is kept.
    pub(super) keep_until_ms: u64,
}

/// A device-signed request that passed: its body, and the verified device
/// keys in the order the body names them.
pub(super) struct DeviceSigned<T> {
    /// The parsed body.
    pub(super) body: T,
    /// The keys that signed, in the order of [`SignedBody::signers`].
    pub(super) keys: Vec<DeviceKey>,
    /// A pull's nonce ([`SignedBody::DURABLE_NONCE`] false), for the
    /// handler to use; `None` for every other call, whose nonce the
    /// extractor used.
    pub(super) pull_nonce: Option<PullNonce>,
}

impl<T: SignedBody> FromRequest<AppState> for DeviceSigned<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let method = req.method().as_str().to_owned();
        // Only the three signature headers are kept (their values share the
        // request's buffers), not a copy of the whole map.
        let mut headers = HeaderMap::with_capacity(3);
        for name in [
            wire::HEADER_TIMESTAMP,
            wire::HEADER_NONCE,
            wire::HEADER_SIGNATURE,
        ] {
            if let Some(value) = req.headers().get(name) {
                headers.insert(name, value.clone());
            }
        }
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        let body: T =
            serde_json::from_slice(&bytes).map_err(|_| ApiError::malformed(T::MALFORMED))?;
        body.check()?;
        let signers = body.signers();
        let ids = match &signers {
            Signers::Authenticators(ids) => ids.clone(),
            Signers::Enrolment(id) => vec![*id],
        };
        // The headers (clock, who signed) before any store read.
        let auth = parse_device_auth(state, &headers, &ids)?;
        let keys = match signers {
            Signers::Authenticators(ids) => device_keys(state, &ids).await?,
            Signers::Enrolment(id) => {
                let enrolment = state.store.enrolment(id).await?.ok_or_else(|| {
                    ApiError::new(ErrorCode::UnknownEnrolment, "no such enrolment")
                })?;
                vec![DeviceKey {
                    authenticator_id: id,
                    device_public_key: enrolment.device_public_key,
                }]
            }
        };
        let pull_nonce = verify_device_auth(
            state,
            &auth,
            &method,
            T::PATH,
            &bytes,
            &keys,
            T::DURABLE_NONCE,
        )
        .await?;
        Ok(DeviceSigned {
            body,
            keys,
            pull_nonce,
        })
    }
}

/// The parsed, not yet verified, signature headers of a device request.
struct DeviceAuthHeaders {
    timestamp_ms: u64,
    nonce: Nonce16,
    signatures: Vec<(AuthenticatorId, eid_protocol::Signature)>,
}

/// Parses the device-request headers and checks the clock and that exactly
/// `ids` signed, once each.
fn parse_device_auth(
    state: &AppState,
    headers: &HeaderMap,
    ids: &[AuthenticatorId],
) -> ApiResult<DeviceAuthHeaders> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let timestamp_ms: u64 = header(wire::HEADER_TIMESTAMP)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidSignature,
                "missing or malformed eid-timestamp header",
            )
        })?;
    let nonce: Nonce16 = header(wire::HEADER_NONCE)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidSignature,
                "missing or malformed eid-nonce header",
            )
        })?;
    let signatures = header(wire::HEADER_SIGNATURE)
        .and_then(wire::parse_signature_header)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidSignature,
                "missing or malformed eid-signature header",
            )
        })?;

    let now = state.now_ms();
    if now.abs_diff(timestamp_ms) > MAX_DEVICE_CLOCK_SKEW_MS {
        return Err(ApiError::new(
            ErrorCode::ClockSkew,
            "the device clock is more than 5 minutes off",
        )
        .with_server_time(now));
    }
    if signatures.len() != ids.len()
        || !ids.iter().all(|id| signatures.iter().any(|(s, _)| s == id))
    {
        return Err(ApiError::new(
            ErrorCode::InvalidSignature,
            "every authenticator named must sign, once",
        ));
    }
    Ok(DeviceAuthHeaders {
        timestamp_ms,
        nonce,
        signatures,
    })
}

/// Verifies each key's signature over the request, then uses up the nonce;
/// a pull's (`durable_nonce` false) is only returned, for the handler to
/// use with its read.
async fn verify_device_auth(
    state: &AppState,
    auth: &DeviceAuthHeaders,
    method: &str,
    path: &str,
    body: &[u8],
    keys: &[DeviceKey],
    durable_nonce: bool,
) -> ApiResult<Option<PullNonce>> {
    let body_sha256 = eid_protocol::sha256(body);
    for key in keys {
        let signature = &auth
            .signatures
            .iter()
            .find(|(s, _)| *s == key.authenticator_id)
            .ok_or_else(|| bad_signature("device signature"))?
            .1;
        let message = DeviceRequestAuth {
            authenticator_id: key.authenticator_id,
            method,
            path,
            body_sha256,
            timestamp_ms: auth.timestamp_ms,
            nonce: auth.nonce,
        }
        .signing_bytes();
        key.device_public_key
            .verify(&message, signature)
            .map_err(|_| bad_signature("device signature"))?;
    }
    // Only after every signature verified, so nobody can burn a nonce.
    let keep_until = auth.timestamp_ms.max(state.now_ms()) + MAX_DEVICE_CLOCK_SKEW_MS;
    if !durable_nonce {
        return Ok(Some(PullNonce {
            nonce: auth.nonce,
            keep_until_ms: keep_until,
        }));
    }
    if !state.store.use_nonce(auth.nonce, keep_until).await? {
        return Err(replayed_nonce());
    }
    Ok(None)
}

/// The answer to a device call whose nonce was used before.
pub(super) fn replayed_nonce() -> ApiError {
    ApiError::new(ErrorCode::ReplayedNonce, "this nonce was already used")
}

/// The device keys of `ids`, from the cache or else the store; an unknown id
/// is an error. The keys never change, so the cache needs no eviction.
async fn device_keys(state: &AppState, ids: &[AuthenticatorId]) -> ApiResult<Vec<DeviceKey>> {
    let cached: Vec<Option<DeviceKey>> = ids.iter().map(|id| state.device_keys.get(id)).collect();
    if cached.iter().all(Option::is_some) {
        return Ok(cached.into_iter().flatten().collect());
    }
    let loaded = state.store.authenticators(ids.to_vec()).await?;
    ids.iter()
        .zip(loaded)
        .map(|(id, auth)| {
            let auth = auth.ok_or_else(|| {
                ApiError::new(
                    ErrorCode::UnknownAuthenticator,
                    format!("unknown authenticator {id}"),
                )
            })?;
            let key = DeviceKey {
                authenticator_id: auth.id,
                device_public_key: auth.device_public_key,
            };
            state.device_keys.insert(auth.id, key.clone());
            Ok(key)
        })
        .collect()
}

// ---------------------------------------------------------------- signed bodies

impl SignedBody for PullRequest {
    const PATH: &'static str = wire::PATH_PULL;
    const MALFORMED: &'static str = "invalid pull body";
    const DURABLE_NONCE: bool = false;

    fn signers(&self) -> Signers {
        Signers::Authenticators(self.authenticator_ids.clone())
    }

    fn check(&self) -> ApiResult<()> {
        let n = self.authenticator_ids.len();
        if !self.feed_after.is_empty() && self.feed_after.len() != n {
            return Err(ApiError::new(
                ErrorCode::InvalidParameter,
                "feed_after must have one cursor per authenticator, or none",
            ));
        }
        if !self.events_after.is_empty() && self.events_after.len() != n {
            return Err(ApiError::new(
                ErrorCode::InvalidParameter,
                "events_after must have one cursor per authenticator, or none",
            ));
        }
        if !self.events_after.is_empty() && !self.feed_after.is_empty() {
            return Err(ApiError::new(
                ErrorCode::InvalidParameter,
                "send events_after or feed_after, not both",
            ));
        }
        if !self.decisions_after.is_empty() && self.decisions_after.len() != n {
            return Err(ApiError::new(
                ErrorCode::InvalidParameter,
                "decisions_after must have one cursor per authenticator, or none",
            ));
        }
        if n == 0 || n > wire::MAX_PULL_AUTHENTICATORS {
            return Err(ApiError::new(
                ErrorCode::InvalidParameter,
                "name 1 to 16 authenticators",
            ));
        }
        let mut unique = self.authenticator_ids.clone();
        unique.sort();
        unique.dedup();
        if unique.len() != n {
            return Err(ApiError::new(
                ErrorCode::InvalidParameter,
                "an authenticator is named twice",
            ));
        }
        Ok(())
    }
}

impl SignedBody for BlockRequest {
    const PATH: &'static str = wire::PATH_BLOCK;
    const MALFORMED: &'static str = "invalid block body";

    fn signers(&self) -> Signers {
        Signers::Authenticators(vec![self.authenticator_id])
    }
}

impl SignedBody for DeviceSettingsRequest {
    const PATH: &'static str = wire::PATH_DEVICE_SETTINGS;
    const MALFORMED: &'static str = "invalid settings body";

    fn signers(&self) -> Signers {
        Signers::Authenticators(vec![self.authenticator_id])
    }
}

impl SignedBody for CancelContactChangeRequest {
    const PATH: &'static str = wire::PATH_CANCEL_CONTACT_CHANGE;
    const MALFORMED: &'static str = "invalid cancel body";

    fn signers(&self) -> Signers {
        Signers::Authenticators(vec![self.authenticator_id])
    }
}

impl SignedBody for CancelEnrolmentRequest {
    const PATH: &'static str = wire::PATH_ENROLMENT_CANCEL;
    const MALFORMED: &'static str = "invalid cancel body";

    fn signers(&self) -> Signers {
        Signers::Authenticators(vec![self.authenticator_id])
    }
}

impl SignedBody for EnrolmentStatusRequest {
    const PATH: &'static str = wire::PATH_ENROLMENT_STATUS;
    const MALFORMED: &'static str = "invalid enrolment status body";

    fn signers(&self) -> Signers {
        Signers::Enrolment(self.enrolment_id)
    }
}
