//! Admin API (support): identities, activation codes, blocking, service providers.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use eid_protocol::wire::{
    AccountState, ActivationCodeIssued, AuthenticatorInfo, CreateIdentityRequest, ErrorBody,
    ErrorCode, IdentityCreated, IdentityInfo, RegisterServiceProviderRequest,
    ServiceProviderRegistered,
};
use eid_protocol::{IdentityId, ServiceProviderId};

use super::{AdminAuth, ApiJson, AppState, parse_id};
use crate::error::{ApiError, ApiResult};
use crate::store::{
    ActivationCode, AuthenticatorState, Identity, RegisterResult, ServiceProvider, StoreError,
};
use crate::{contact, userid};

/// Crockford base32 without I, L, O, U: unambiguous when read from a letter.
const CODE_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Characters in an activation code: 10 × 5 bits = 50 bits.
const CODE_CHARS: usize = 10;

/// Creates a fresh activation code: `XXXXX-XXXXX`, 50 bits.
pub(crate) fn new_activation_code() -> String {
    let random: [u8; CODE_CHARS] = eid_protocol::crypto::random_array();
    let chars: String = random
        .iter()
        .map(|b| CODE_ALPHABET[(b & 31) as usize] as char)
        .collect();
    format!("{}-{}", &chars[..5], &chars[5..])
}

/// Normalizes a typed activation code: upper case, no separators or spaces,
/// and the Crockford confusables I/L → 1, O → 0.
pub(crate) fn normalize_activation_code(code: &str) -> String {
    code.chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| match c.to_ascii_uppercase() {
            'I' | 'L' => '1',
            'O' => '0',
            other => other,
        })
        .collect()
}

/// The stored hash of a code: SHA-256 over the identity id and the normalized code.
pub(crate) fn activation_code_hash(identity_id: IdentityId, code: &str) -> [u8; 32] {
    let mut input = Vec::with_capacity(16 + CODE_CHARS);
    input.extend_from_slice(identity_id.as_bytes());
    input.extend_from_slice(normalize_activation_code(code).as_bytes());
    eid_protocol::sha256(&input)
}

pub(crate) async fn identity_info(state: &AppState, identity: Identity) -> ApiResult<IdentityInfo> {
    let authenticators = state.store.authenticators_of(identity.id).await?;
    Ok(IdentityInfo {
        phone_masked: identity.phone.as_deref().map(contact::mask_phone),
        email_masked: identity.email.as_deref().map(contact::mask_email),
        identity_id: identity.id,
        user_id: identity.user_id,
        blocked: identity.blocked,
        authenticators: authenticators
            .into_iter()
            .map(|a| AuthenticatorInfo {
                authenticator_id: a.id,
                state: match (identity.blocked, a.state) {
                    (_, AuthenticatorState::Locked) => AccountState::Locked,
                    (true, _) => AccountState::Blocked,
                    (false, AuthenticatorState::Active) => AccountState::Active,
                },
                failed_pin_count: a.failed_pin_count,
                activated_at_ms: a.activated_at_ms,
            })
            .collect(),
    })
}

/// Creates an identity with a user ID that follows the rules.
#[utoipa::path(post, path = "/v1/admin/identities", tag = "admin", security(("admin_token" = [])),
    request_body = CreateIdentityRequest,
    responses(
        (status = 201, body = IdentityCreated),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 409, description = "user_id_taken", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, description = "unsupported_media_type: the body is not declared application/json", body = ErrorBody),
        (status = 422, description = "invalid_user_id or invalid_contact", body = ErrorBody)))]
pub(crate) async fn create_identity(
    _: AdminAuth,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<CreateIdentityRequest>,
) -> ApiResult<(StatusCode, Json<IdentityCreated>)> {
    let phone = req
        .phone
        .as_deref()
        .map(contact::check_phone)
        .transpose()
        .map_err(|e| ApiError::new(ErrorCode::InvalidContact, e.to_string()))?;
    let email = req
        .email
        .as_deref()
        .map(contact::check_email)
        .transpose()
        .map_err(|e| ApiError::new(ErrorCode::InvalidContact, e.to_string()))?;
    let person = userid::PersonalData {
        name: req.display_name.as_deref(),
        phone: phone.as_deref(),
        email: email.as_deref(),
    };
    let user_id = userid::check(&req.user_id, person)
        .map_err(|e| ApiError::new(ErrorCode::InvalidUserId, e.to_string()))?;
    let identity = Identity {
        id: IdentityId::random(),
        user_id_folded: userid::fold(&user_id),
        user_id: user_id.clone(),
        display_name: req.display_name,
        blocked: false,
        created_at_ms: state.now_ms(),
        phone,
        email,
        notify_every_use: false,
    };
    let id = identity.id;
    match state.store.create_identity(identity).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::new(
                ErrorCode::UserIdTaken,
                "this user ID is taken; choose another",
            ));
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(identity = %id, "identity created");
    Ok((
        StatusCode::CREATED,
        Json(IdentityCreated {
            identity_id: id,
            user_id,
        }),
    ))
}

async fn load_identity(state: &AppState, raw_id: &str) -> ApiResult<Identity> {
    let id: IdentityId = parse_id(raw_id, "identity_id")?;
    state
        .store
        .identity(id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::UnknownIdentity, "no such identity"))
}

/// An identity's state and authenticators.
#[utoipa::path(get, path = "/v1/admin/identities/{identity_id}", tag = "admin", security(("admin_token" = [])),
    params(("identity_id" = String, Path, description = "32 hex digits")),
    responses((status = 200, body = IdentityInfo), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn get_identity(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(identity_id): Path<String>,
) -> ApiResult<Json<IdentityInfo>> {
    let identity = load_identity(&state, &identity_id).await?;
    Ok(Json(identity_info(&state, identity).await?))
}

/// Issues a single-use activation code (replacing any earlier one): 50 bits,
/// valid 10 minutes by default, void after 3 wrong tries.
#[utoipa::path(post, path = "/v1/admin/identities/{identity_id}/activation-codes", tag = "admin",
    security(("admin_token" = [])),
    params(("identity_id" = String, Path, description = "32 hex digits")),
    responses((status = 201, body = ActivationCodeIssued), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, description = "identity_blocked", body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub(crate) async fn issue_activation_code(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(identity_id): Path<String>,
) -> ApiResult<(StatusCode, Json<ActivationCodeIssued>)> {
    let identity = load_identity(&state, &identity_id).await?;
    if identity.blocked {
        return Err(ApiError::new(
            ErrorCode::IdentityBlocked,
            "the identity is blocked; unblock it first",
        ));
    }
    let code = new_activation_code();
    let now = state.now_ms();
    let expires_at_ms = now + state.config.activation_code_ttl_secs * 1000;
    state
        .store
        .put_activation_code(ActivationCode {
            identity_id: identity.id,
            code_sha256: activation_code_hash(identity.id, &code),
            created_at_ms: now,
            expires_at_ms,
        })
        .await?;
    tracing::info!(identity = %identity.id, "activation code issued");
    Ok((
        StatusCode::CREATED,
        Json(ActivationCodeIssued {
            activation_code: code,
            expires_at_ms,
        }),
    ))
}

async fn set_blocked(
    state: &AppState,
    identity_id: &str,
    blocked: bool,
) -> ApiResult<Json<IdentityInfo>> {
    let id: IdentityId = parse_id(identity_id, "identity_id")?;
    let cancelled = state
        .store
        .set_blocked(id, blocked, state.now_ms())
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::UnknownIdentity, "no such identity"))?;
    for request_id in &cancelled {
        state.waiters.wake(*request_id);
    }
    tracing::info!(identity = %id, blocked, cancelled = cancelled.len(), "identity block state changed");
    let identity = load_identity(state, identity_id).await?;
    Ok(Json(identity_info(state, identity).await?))
}

/// Blocks an identity at once: pending requests are cancelled, new requests and
/// decisions refused, pulls report it.
#[utoipa::path(post, path = "/v1/admin/identities/{identity_id}/block", tag = "admin",
    security(("admin_token" = [])),
    params(("identity_id" = String, Path, description = "32 hex digits")),
    responses((status = 200, body = IdentityInfo), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn block_identity(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(identity_id): Path<String>,
) -> ApiResult<Json<IdentityInfo>> {
    set_blocked(&state, &identity_id, true).await
}

/// Unblocks an identity.
#[utoipa::path(post, path = "/v1/admin/identities/{identity_id}/unblock", tag = "admin",
    security(("admin_token" = [])),
    params(("identity_id" = String, Path, description = "32 hex digits")),
    responses((status = 200, body = IdentityInfo), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn unblock_identity(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(identity_id): Path<String>,
) -> ApiResult<Json<IdentityInfo>> {
    set_blocked(&state, &identity_id, false).await
}

/// Registers a service provider; the API key is returned once and stored hashed.
///
/// The name must pass the text rules, be in one script (UTS #39: no Latin
/// mixed with Cyrillic or Greek look-alikes), not be or contain a name of the
/// eID itself in any spelling (`eid_protocol::confusables::reserved_name_clash`)
/// and not be confusable with a registered provider's name (equal UTS #39
/// skeletons, compared with and without case, or equal keys without
/// punctuation, spacing, marks and look-alike digits): otherwise
/// `invalid_provider_name`.
#[utoipa::path(post, path = "/v1/admin/service-providers", tag = "admin", security(("admin_token" = [])),
    request_body = RegisterServiceProviderRequest,
    responses((status = 201, body = ServiceProviderRegistered), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, description = "unsupported_media_type: the body is not declared application/json", body = ErrorBody),
        (status = 422, description = "invalid_provider_name", body = ErrorBody)))]
pub(crate) async fn register_service_provider(
    _: AdminAuth,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RegisterServiceProviderRequest>,
) -> ApiResult<(StatusCode, Json<ServiceProviderRegistered>)> {
    let name = eid_protocol::text::normalize_provider_name(&req.name)
        .map_err(|e| ApiError::new(ErrorCode::InvalidProviderName, e.to_string()))?;
    // The eID's own names in any spelling, also inside a longer name; the
    // store then compares the name with every registered one, atomically.
    if let Some(reserved) = eid_protocol::confusables::reserved_name_clash(&name) {
        let message = if reserved == eid_protocol::SELF_SERVICE_PROVIDER_NAME {
            format!(
                "the name can be confused with the registered name \"{reserved}\", \
                 which is reserved for the eID itself; choose a clearly different name"
            )
        } else {
            format!(
                "the name can be confused with \"{reserved}\", which is reserved for the \
                 eID itself; choose a clearly different name"
            )
        };
        return Err(ApiError::new(ErrorCode::InvalidProviderName, message));
    }
    if eid_protocol::confusables::is_mixed_script(&name) {
        return Err(ApiError::new(
            ErrorCode::InvalidProviderName,
            "the name mixes scripts (for example Latin with Cyrillic or Greek letters); \
             write it in one script",
        ));
    }
    let api_key = format!(
        "eidsp_{}",
        eid_protocol::wire::b64::encode(&eid_protocol::crypto::random_array::<32>())
    );
    let sp = ServiceProvider {
        id: ServiceProviderId::random(),
        name: name.clone(),
        api_key_sha256: eid_protocol::sha256(api_key.as_bytes()),
        created_at_ms: state.now_ms(),
    };
    let id = sp.id;
    if let RegisterResult::ConfusableWith(existing) =
        state.store.register_service_provider(sp).await?
    {
        // The registered name is not secret (it is shown to every person
        // who gets a request): the admin needs it to see the clash.
        return Err(ApiError::new(
            ErrorCode::InvalidProviderName,
            format!(
                "the name can be confused with the registered name \"{existing}\" \
                 (same Unicode confusable skeleton); choose a clearly different name"
            ),
        ));
    }
    tracing::info!(service_provider = %id, "service provider registered");
    Ok((
        StatusCode::CREATED,
        Json(ServiceProviderRegistered {
            service_provider_id: id,
            name,
            api_key,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_codes_have_50_bits_and_normalize() {
        let code = new_activation_code();
        assert_eq!(code.len(), 11);
        assert_eq!(&code[5..6], "-");
        assert!(
            code.chars()
                .filter(|c| *c != '-')
                .all(|c| CODE_ALPHABET.contains(&(c as u8)))
        );
        let id = IdentityId([1; 16]);
        assert_eq!(
            activation_code_hash(id, "abcde-fghjk"),
            activation_code_hash(id, "ABCDEFGHJK")
        );
        assert_eq!(
            activation_code_hash(id, "0OIL1"),
            activation_code_hash(id, "00111")
        );
        assert_ne!(
            activation_code_hash(id, "ABCDEFGHJK"),
            activation_code_hash(IdentityId([2; 16]), "ABCDEFGHJK")
        );
    }
}
