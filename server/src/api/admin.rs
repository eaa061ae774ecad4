//! Admin API (support): identities, activation codes, blocking, service
//! providers and their OpenID Connect clients, agents and the audit.
//!
//! Every caller is an agent with a role (the `admin-token` file is the
//! bootstrap administrator). Each action that writes is stored with its
//! audit row in one transaction ([`Store::admin_action`]); look-ups and role
//! refusals get an audit row of their own.
//!
//! [`Store::admin_action`]: crate::store::Store::admin_action

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Path, RawQuery, Request, State};
use axum::http::StatusCode;
use eid_protocol::wire::{
    AccountState, ActivationCodeIssued, AdminReason, AgentCreated, AgentInfo, AgentList, AgentRole,
    AuditEntryInfo, AuditList, AuthenticatorInfo, CreateAgentRequest, CreateIdentityRequest,
    ErrorBody, ErrorCode, IdentityCreated, IdentityInfo, OidcClientAuthMethod,
    OidcClientRegistered, RegisterOidcClientRequest, RegisterServiceProviderRequest,
    ServiceProviderRegistered,
};
use eid_protocol::wire::{
    ApiKeyInfo, ApiKeyList, ApiKeyRotated, ApiKeyStateInfo, SetWebhookRequest, WebhookSet,
};
use eid_protocol::{IdentityId, ServiceProviderId};

use super::{AdminAuth, ApiJson, AppState, guard, parse_id};
use crate::error::{ApiError, ApiResult};
use crate::store::{
    ActivationCode, AdminAction, AdminActionResult, Agent, ApiKey, ApiKeyState, AuditAction,
    AuditEntry, AuditOutcome, AuthenticatorState, Identity, NewAudit, OidcClient, ServiceProvider,
    Webhook,
};
use crate::{contact, oidc, userid};

/// Audit rows one `GET /v1/admin/audit` returns by default, and at most.
const AUDIT_PAGE_DEFAULT: u32 = 50;
const AUDIT_PAGE_MAX: u32 = 200;

impl AdminAuth {
    /// An audit row of this caller's `action`, done now (targets filled in
    /// by the caller or the store).
    fn audit(&self, state: &AppState, action: AuditAction) -> NewAudit {
        NewAudit {
            at_ms: state.now_ms(),
            agent_id: self.agent_id,
            agent_name: self.name.clone(),
            action,
            identity_id: None,
            service_provider_id: None,
            target_agent_id: None,
            reason: None,
            outcome: AuditOutcome::Done,
        }
    }

    /// Refuses a support agent an administrator-only `action` with
    /// `forbidden_role`, recording the refusal in the audit.
    async fn require_administrator(&self, state: &AppState, action: AuditAction) -> ApiResult<()> {
        if self.role == AgentRole::Administrator {
            return Ok(());
        }
        let mut refused = self.audit(state, action);
        refused.outcome = AuditOutcome::RefusedRole;
        state.store.record_audit(refused).await?;
        tracing::info!(agent = ?self.agent_id, action = action.as_str(), "admin action refused by role");
        Err(ApiError::new(
            ErrorCode::ForbiddenRole,
            "this needs the administrator role",
        ))
    }
}

/// The `{"reason": "..."}` body of a block or unblock: a missing body, field
/// or a reason that breaks the text rules is `reason_required`.
pub(crate) struct ReasonBody(pub(crate) String);

impl<S: Send + Sync> FromRequest<S> for ReasonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        /// Like [`AdminReason`], with the field optional so that its absence
        /// is `reason_required`, not a malformed body.
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Body {
            #[serde(default)]
            reason: Option<String>,
        }
        let required = |why: &str| {
            ApiError::new(
                ErrorCode::ReasonRequired,
                format!("a reason is required (1 to 500 printable characters on one line): {why}"),
            )
        };
        let headers = req.headers().clone();
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(ErrorCode::PayloadTooLarge, "request body too large")
            } else {
                ApiError::malformed("could not read the request body")
            }
        })?;
        if bytes.is_empty() {
            return Err(required("the body is empty"));
        }
        guard::require_json(&headers)?;
        let body: Body = serde_json::from_slice(&bytes).map_err(|_| {
            ApiError::malformed("invalid JSON body: expected {\"reason\": \"...\"}")
        })?;
        let reason = body.reason.ok_or_else(|| required("no reason given"))?;
        eid_protocol::text::normalize_support_reason(&reason)
            .map(ReasonBody)
            .map_err(|e| required(&e.to_string()))
    }
}

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
    caller: AdminAuth,
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
    let audit = caller.audit(&state, AuditAction::CreateIdentity);
    match state
        .store
        .admin_action(audit, AdminAction::CreateIdentity(identity))
        .await?
    {
        AdminActionResult::Done { .. } => {}
        AdminActionResult::UserIdTaken => {
            return Err(ApiError::new(
                ErrorCode::UserIdTaken,
                "this user ID is taken; choose another",
            ));
        }
        _ => return Err(inconsistent()),
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

/// A store answer the action cannot produce.
fn inconsistent() -> ApiError {
    ApiError::new(ErrorCode::Internal, "unexpected storage answer")
}

fn unknown_identity() -> ApiError {
    ApiError::new(ErrorCode::UnknownIdentity, "no such identity")
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
    caller: AdminAuth,
    State(state): State<AppState>,
    Path(identity_id): Path<String>,
) -> ApiResult<Json<IdentityInfo>> {
    let identity = load_identity(&state, &identity_id).await?;
    // A look-up reads personal data: it is audited too.
    let mut audit = caller.audit(&state, AuditAction::LookUpIdentity);
    audit.identity_id = Some(identity.id);
    state.store.record_audit(audit).await?;
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
    caller: AdminAuth,
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
    let audit = caller.audit(&state, AuditAction::IssueActivationCode);
    let code_row = ActivationCode {
        identity_id: identity.id,
        code_sha256: activation_code_hash(identity.id, &code),
        created_at_ms: now,
        expires_at_ms,
    };
    match state
        .store
        .admin_action(audit, AdminAction::IssueActivationCode(code_row))
        .await?
    {
        AdminActionResult::Done { .. } => {}
        AdminActionResult::UnknownIdentity => return Err(unknown_identity()),
        _ => return Err(inconsistent()),
    }
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
    caller: &AdminAuth,
    state: &AppState,
    identity_id: &str,
    blocked: bool,
    reason: String,
) -> ApiResult<Json<IdentityInfo>> {
    let id: IdentityId = parse_id(identity_id, "identity_id")?;
    let mut audit = caller.audit(
        state,
        if blocked {
            AuditAction::Block
        } else {
            AuditAction::Unblock
        },
    );
    audit.reason = Some(reason);
    let AdminActionResult::Done {
        audit_id,
        cancelled,
        ..
    } = state
        .store
        .admin_action(
            audit,
            AdminAction::SetBlocked {
                identity_id: id,
                blocked,
            },
        )
        .await?
    else {
        return Err(unknown_identity());
    };
    for request_id in &cancelled {
        state.waiters.wake(*request_id);
    }
    tracing::info!(identity = %id, blocked, audit_id, cancelled = cancelled.len(), "identity block state changed");
    let identity = load_identity(state, identity_id).await?;
    Ok(Json(identity_info(state, identity).await?))
}

/// Blocks an identity at once: pending requests are cancelled, new requests and
/// decisions refused, pulls report it. The reason is required and stored in
/// the audit; the person's `identity_blocked` event points to the audit row.
#[utoipa::path(post, path = "/v1/admin/identities/{identity_id}/block", tag = "admin",
    security(("admin_token" = [])),
    params(("identity_id" = String, Path, description = "32 hex digits")),
    request_body = AdminReason,
    responses((status = 200, body = IdentityInfo),
        (status = 400, description = "reason_required, malformed_request", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, description = "unsupported_media_type: the body is not declared application/json", body = ErrorBody)))]
pub(crate) async fn block_identity(
    caller: AdminAuth,
    State(state): State<AppState>,
    Path(identity_id): Path<String>,
    ReasonBody(reason): ReasonBody,
) -> ApiResult<Json<IdentityInfo>> {
    set_blocked(&caller, &state, &identity_id, true, reason).await
}

/// Unblocks an identity (reason required, as for a block).
#[utoipa::path(post, path = "/v1/admin/identities/{identity_id}/unblock", tag = "admin",
    security(("admin_token" = [])),
    params(("identity_id" = String, Path, description = "32 hex digits")),
    request_body = AdminReason,
    responses((status = 200, body = IdentityInfo),
        (status = 400, description = "reason_required, malformed_request", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, description = "unsupported_media_type: the body is not declared application/json", body = ErrorBody)))]
pub(crate) async fn unblock_identity(
    caller: AdminAuth,
    State(state): State<AppState>,
    Path(identity_id): Path<String>,
    ReasonBody(reason): ReasonBody,
) -> ApiResult<Json<IdentityInfo>> {
    set_blocked(&caller, &state, &identity_id, false, reason).await
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
        (status = 401, body = ErrorBody),
        (status = 403, description = "forbidden_role: a support agent may not register providers", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, description = "unsupported_media_type: the body is not declared application/json", body = ErrorBody),
        (status = 422, description = "invalid_provider_name", body = ErrorBody)))]
pub(crate) async fn register_service_provider(
    caller: AdminAuth,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RegisterServiceProviderRequest>,
) -> ApiResult<(StatusCode, Json<ServiceProviderRegistered>)> {
    caller
        .require_administrator(&state, AuditAction::RegisterProvider)
        .await?;
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
    let api_key = new_api_key();
    let sp = ServiceProvider {
        id: ServiceProviderId::random(),
        name: name.clone(),
        api_key_sha256: eid_protocol::sha256(api_key.as_bytes()),
        created_at_ms: state.now_ms(),
    };
    let id = sp.id;
    let audit = caller.audit(&state, AuditAction::RegisterProvider);
    let result = state
        .store
        .admin_action(audit, AdminAction::RegisterProvider(sp))
        .await?;
    if let AdminActionResult::ConfusableWith(existing) = result {
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

/// Registers an OpenID Connect client for a service provider
/// (administrator only); a client secret is returned once and stored as
/// its SHA-256 (see docs/oidc.md for the rules and why).
#[utoipa::path(post, path = "/v1/admin/oidc-clients", tag = "admin", security(("admin_token" = [])),
    request_body = RegisterOidcClientRequest,
    responses((status = 201, body = OidcClientRegistered),
        (status = 400, description = "malformed_request, or invalid_parameter: a redirect URI, scope or JWK breaks the rules, or no means of client authentication", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "forbidden_role: only an administrator registers clients", body = ErrorBody),
        (status = 404, description = "unknown_service_provider", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, description = "unsupported_media_type: the body is not declared application/json", body = ErrorBody)))]
pub(crate) async fn register_oidc_client(
    caller: AdminAuth,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RegisterOidcClientRequest>,
) -> ApiResult<(StatusCode, Json<OidcClientRegistered>)> {
    caller
        .require_administrator(&state, AuditAction::RegisterOidcClient)
        .await?;
    let rule = |e: oidc::ClientRuleError| ApiError::new(ErrorCode::InvalidParameter, e.to_string());
    let sector = oidc::check_redirect_uris(&req.redirect_uris).map_err(rule)?;
    oidc::check_scopes(&req.scopes).map_err(rule)?;
    let jwk = req
        .jwk
        .as_ref()
        .map(oidc::check_jwk)
        .transpose()
        .map_err(rule)?;
    if !req.client_secret_basic && jwk.is_none() {
        return Err(rule(oidc::ClientRuleError::NoAuthMethod));
    }
    let secret = req.client_secret_basic.then(oidc::new_client_secret);
    let mut methods = Vec::new();
    if secret.is_some() {
        methods.push(OidcClientAuthMethod::ClientSecretBasic);
    }
    if jwk.is_some() {
        methods.push(OidcClientAuthMethod::PrivateKeyJwt);
    }
    let client = OidcClient {
        client_id: oidc::new_client_id(),
        service_provider_id: req.service_provider_id,
        redirect_uris: req.redirect_uris,
        secret_sha256: secret.as_deref().map(oidc::secret_hash),
        jwk,
        scopes: req.scopes,
        sector,
        created_at_ms: state.now_ms(),
    };
    let registered = OidcClientRegistered {
        client_id: client.client_id.clone(),
        service_provider_id: client.service_provider_id,
        redirect_uris: client.redirect_uris.clone(),
        scopes: client.scopes.clone(),
        token_endpoint_auth_methods: methods,
        sector: client.sector.clone(),
        client_secret: secret,
    };
    let audit = caller.audit(&state, AuditAction::RegisterOidcClient);
    match state
        .store
        .admin_action(audit, AdminAction::RegisterOidcClient(client))
        .await?
    {
        AdminActionResult::Done { .. } => {}
        AdminActionResult::UnknownProvider => {
            return Err(ApiError::new(
                ErrorCode::UnknownServiceProvider,
                "no such service provider",
            ));
        }
        _ => return Err(inconsistent()),
    }
    tracing::info!(
        service_provider = %registered.service_provider_id,
        client_id = %registered.client_id,
        "OIDC client registered"
    );
    Ok((StatusCode::CREATED, Json(registered)))
}

fn agent_info(agent: &Agent) -> AgentInfo {
    AgentInfo {
        agent_id: agent.id,
        name: agent.name.clone(),
        role: agent.role,
        created_at_ms: agent.created_at_ms,
        revoked_at_ms: agent.revoked_at_ms,
    }
}

/// Creates a support agent with its own bearer token (administrator only).
/// The token is returned once; only its SHA-256 is stored. The name follows
/// the provider-name text rules.
#[utoipa::path(post, path = "/v1/admin/agents", tag = "admin", security(("admin_token" = [])),
    request_body = CreateAgentRequest,
    responses(
        (status = 201, body = AgentCreated),
        (status = 400, description = "malformed_request, or invalid_parameter: the name breaks the text rules", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "forbidden_role: only an administrator manages agents", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, description = "unsupported_media_type: the body is not declared application/json", body = ErrorBody)))]
pub(crate) async fn create_agent(
    caller: AdminAuth,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<CreateAgentRequest>,
) -> ApiResult<(StatusCode, Json<AgentCreated>)> {
    caller
        .require_administrator(&state, AuditAction::CreateAgent)
        .await?;
    let name = eid_protocol::text::normalize_provider_name(&req.name)
        .map_err(|e| ApiError::new(ErrorCode::InvalidParameter, format!("name: {e}")))?;
    let token = format!(
        "eidag_{}",
        eid_protocol::wire::b64::encode(&eid_protocol::crypto::random_array::<32>())
    );
    let mut agent = Agent {
        id: 0,
        name,
        role: req.role,
        token_sha256: eid_protocol::sha256(token.as_bytes()),
        created_at_ms: state.now_ms(),
        revoked_at_ms: None,
    };
    let audit = caller.audit(&state, AuditAction::CreateAgent);
    let AdminActionResult::Done {
        agent_id: Some(id), ..
    } = state
        .store
        .admin_action(audit, AdminAction::CreateAgent(agent.clone()))
        .await?
    else {
        return Err(inconsistent());
    };
    agent.id = id;
    tracing::info!(agent = id, role = ?agent.role, "agent created");
    Ok((
        StatusCode::CREATED,
        Json(AgentCreated {
            agent: agent_info(&agent),
            token,
        }),
    ))
}

/// Lists the agents, oldest first, revoked ones included (administrator only).
#[utoipa::path(get, path = "/v1/admin/agents", tag = "admin", security(("admin_token" = [])),
    responses(
        (status = 200, body = AgentList),
        (status = 401, body = ErrorBody),
        (status = 403, description = "forbidden_role: only an administrator manages agents", body = ErrorBody)))]
pub(crate) async fn list_agents(
    caller: AdminAuth,
    State(state): State<AppState>,
) -> ApiResult<Json<AgentList>> {
    caller
        .require_administrator(&state, AuditAction::ListAgents)
        .await?;
    let agents = state.store.agents().await?;
    // A listing reads who may act on people: audited like a look-up (after
    // the read, so a listing does not show its own row; before the answer,
    // so no listing leaves unrecorded).
    state
        .store
        .record_audit(caller.audit(&state, AuditAction::ListAgents))
        .await?;
    Ok(Json(AgentList {
        agents: agents.iter().map(agent_info).collect(),
    }))
}

/// Revokes an agent: its token is refused from now on (administrator only).
#[utoipa::path(post, path = "/v1/admin/agents/{agent_id}/revoke", tag = "admin",
    security(("admin_token" = [])),
    params(("agent_id" = u64, Path, description = "the agent's id")),
    responses(
        (status = 200, body = AgentInfo),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, description = "forbidden_role: only an administrator manages agents", body = ErrorBody),
        (status = 404, description = "unknown_agent: no such agent, or already revoked", body = ErrorBody)))]
pub(crate) async fn revoke_agent(
    caller: AdminAuth,
    State(state): State<AppState>,
    Path(agent_id): Path<String>,
) -> ApiResult<Json<AgentInfo>> {
    caller
        .require_administrator(&state, AuditAction::RevokeAgent)
        .await?;
    let id: u64 = agent_id
        .parse()
        .map_err(|_| ApiError::malformed("agent_id: a decimal number"))?;
    let audit = caller.audit(&state, AuditAction::RevokeAgent);
    match state
        .store
        .admin_action(audit, AdminAction::RevokeAgent(id))
        .await?
    {
        AdminActionResult::Done { .. } => {}
        AdminActionResult::UnknownAgent => {
            return Err(ApiError::new(
                ErrorCode::UnknownAgent,
                "no such agent, or already revoked",
            ));
        }
        _ => return Err(inconsistent()),
    }
    tracing::info!(agent = id, "agent revoked");
    let agents = state.store.agents().await?;
    let agent = agents
        .iter()
        .find(|a| a.id == id)
        .ok_or_else(inconsistent)?;
    Ok(Json(agent_info(agent)))
}

// ---------------------------------------------------------------- API keys

/// A new service-provider API key: `eidsp_` and 32 random bytes.
fn new_api_key() -> String {
    format!(
        "eidsp_{}",
        eid_protocol::wire::b64::encode(&eid_protocol::crypto::random_array::<32>())
    )
}

fn unknown_provider() -> ApiError {
    ApiError::new(
        ErrorCode::UnknownServiceProvider,
        "no such service provider",
    )
}

fn api_key_info(key: &ApiKey, now_ms: u64) -> ApiKeyInfo {
    ApiKeyInfo {
        key_id: key.id,
        created_at_ms: key.created_at_ms,
        state: match key.state_at(now_ms) {
            ApiKeyState::Active => ApiKeyStateInfo::Active,
            ApiKeyState::RotatingOut => ApiKeyStateInfo::RotatingOut,
            ApiKeyState::Expired => ApiKeyStateInfo::Expired,
            ApiKeyState::Revoked => ApiKeyStateInfo::Revoked,
        },
        expires_at_ms: key.expires_at_ms,
        revoked_at_ms: key.revoked_at_ms,
    }
}

/// Forgets the cached keys of a provider after a rotation or revocation
/// committed, so that the next call reads the key's new state.
fn evict_provider_keys(state: &AppState, id: ServiceProviderId) {
    state
        .service_providers
        .remove_where(|_, cached| cached.provider.id == id);
}

/// A service provider's API keys, oldest first: id, creation, state and
/// end, never the key (administrator only).
#[utoipa::path(get, path = "/v1/admin/service-providers/{service_provider_id}/api-keys", tag = "admin",
    security(("admin_token" = [])),
    params(("service_provider_id" = String, Path, description = "32 hex digits")),
    responses(
        (status = 200, body = ApiKeyList),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, description = "forbidden_role: only an administrator manages API keys", body = ErrorBody),
        (status = 404, description = "unknown_service_provider", body = ErrorBody)))]
pub(crate) async fn list_api_keys(
    caller: AdminAuth,
    State(state): State<AppState>,
    Path(service_provider_id): Path<String>,
) -> ApiResult<Json<ApiKeyList>> {
    caller
        .require_administrator(&state, AuditAction::ListApiKeys)
        .await?;
    let id: ServiceProviderId = parse_id(&service_provider_id, "service_provider_id")?;
    if state.store.service_provider(id).await?.is_none() {
        return Err(unknown_provider());
    }
    let mut audit = caller.audit(&state, AuditAction::ListApiKeys);
    audit.service_provider_id = Some(id);
    state.store.record_audit(audit).await?;
    let now = state.now_ms();
    let keys = state.store.api_keys(id).await?;
    Ok(Json(ApiKeyList {
        service_provider_id: id,
        keys: keys.iter().map(|k| api_key_info(k, now)).collect(),
    }))
}

/// Issues a new API key for a service provider (returned once; stored as
/// its SHA-256). The provider's older keys keep working for the grace
/// period (`api_key_grace_secs`, a day by default), then stop (administrator
/// only). See docs/api-keys.md.
#[utoipa::path(post, path = "/v1/admin/service-providers/{service_provider_id}/api-keys/rotate", tag = "admin",
    security(("admin_token" = [])),
    params(("service_provider_id" = String, Path, description = "32 hex digits")),
    responses(
        (status = 201, body = ApiKeyRotated),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, description = "forbidden_role: only an administrator manages API keys", body = ErrorBody),
        (status = 404, description = "unknown_service_provider", body = ErrorBody)))]
pub(crate) async fn rotate_api_key(
    caller: AdminAuth,
    State(state): State<AppState>,
    Path(service_provider_id): Path<String>,
) -> ApiResult<(StatusCode, Json<ApiKeyRotated>)> {
    caller
        .require_administrator(&state, AuditAction::RotateApiKey)
        .await?;
    let id: ServiceProviderId = parse_id(&service_provider_id, "service_provider_id")?;
    let api_key = new_api_key();
    let key_sha256 = eid_protocol::sha256(api_key.as_bytes());
    let audit = caller.audit(&state, AuditAction::RotateApiKey);
    let grace_until_ms = audit
        .at_ms
        .saturating_add(state.config.api_key_grace_secs.saturating_mul(1000));
    let now = audit.at_ms;
    match state
        .store
        .admin_action(
            audit,
            AdminAction::RotateApiKey {
                service_provider_id: id,
                key_sha256,
                grace_until_ms,
            },
        )
        .await?
    {
        AdminActionResult::Done { .. } => {}
        AdminActionResult::UnknownProvider => return Err(unknown_provider()),
        _ => return Err(inconsistent()),
    }
    evict_provider_keys(&state, id);
    let keys = state.store.api_keys(id).await?;
    let key = keys
        .iter()
        .find(|k| k.key_sha256 == key_sha256)
        .ok_or_else(inconsistent)?;
    tracing::info!(service_provider = %id, key_id = key.id, "API key rotated");
    Ok((
        StatusCode::CREATED,
        Json(ApiKeyRotated {
            key: api_key_info(key, now),
            api_key,
            old_keys_expire_at_ms: grace_until_ms,
        }),
    ))
}

/// Revokes one API key of a service provider: it is refused from this
/// moment (administrator only).
#[utoipa::path(post, path = "/v1/admin/service-providers/{service_provider_id}/api-keys/{key_id}/revoke", tag = "admin",
    security(("admin_token" = [])),
    params(("service_provider_id" = String, Path, description = "32 hex digits"),
        ("key_id" = u64, Path, description = "the key's id (from the list)")),
    responses(
        (status = 200, body = ApiKeyList),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, description = "forbidden_role: only an administrator manages API keys", body = ErrorBody),
        (status = 404, description = "unknown_service_provider, or unknown_api_key: no such key of this provider, or already revoked", body = ErrorBody)))]
pub(crate) async fn revoke_api_key(
    caller: AdminAuth,
    State(state): State<AppState>,
    Path((service_provider_id, key_id)): Path<(String, String)>,
) -> ApiResult<Json<ApiKeyList>> {
    caller
        .require_administrator(&state, AuditAction::RevokeApiKey)
        .await?;
    let id: ServiceProviderId = parse_id(&service_provider_id, "service_provider_id")?;
    let key_id: u64 = key_id
        .parse()
        .map_err(|_| ApiError::malformed("key_id: a decimal number"))?;
    let audit = caller.audit(&state, AuditAction::RevokeApiKey);
    let now = audit.at_ms;
    match state
        .store
        .admin_action(
            audit,
            AdminAction::RevokeApiKey {
                service_provider_id: id,
                key_id,
            },
        )
        .await?
    {
        AdminActionResult::Done { .. } => {}
        AdminActionResult::UnknownProvider => return Err(unknown_provider()),
        AdminActionResult::UnknownApiKey => {
            return Err(ApiError::new(
                ErrorCode::UnknownApiKey,
                "no such API key of this service provider, or already revoked",
            ));
        }
        _ => return Err(inconsistent()),
    }
    evict_provider_keys(&state, id);
    tracing::info!(service_provider = %id, key_id, "API key revoked");
    let keys = state.store.api_keys(id).await?;
    Ok(Json(ApiKeyList {
        service_provider_id: id,
        keys: keys.iter().map(|k| api_key_info(k, now)).collect(),
    }))
}

// ---------------------------------------------------------------- webhooks

/// Longest webhook URL accepted.
const WEBHOOK_URL_MAX: usize = 2048;

/// A webhook URL: `https://` with a host, or `http://127.0.0.1[:port]` (a
/// receiver on the same machine, for tests); no credentials, no fragment.
fn check_webhook_url(raw: &str) -> Result<String, &'static str> {
    if raw.len() > WEBHOOK_URL_MAX {
        return Err("the URL is longer than 2048 characters");
    }
    let url = url::Url::parse(raw).map_err(|_| "not an absolute URL")?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("the URL must not carry credentials");
    }
    if url.fragment().is_some() {
        return Err("the URL must not have a fragment");
    }
    match (url.scheme(), url.host_str()) {
        ("https", Some(host)) if !host.is_empty() => Ok(url.into()),
        ("http", Some("127.0.0.1")) => Ok(url.into()),
        _ => Err("the URL must be https:// (or http://127.0.0.1 for tests)"),
    }
}

/// Sets a service provider's webhook (a new signing secret is generated and
/// returned once) or, without `url`, removes it (administrator only). Each
/// of the provider's requests that is then decided or cancelled is POSTed
/// there, signed; see docs/webhooks.md.
#[utoipa::path(post, path = "/v1/admin/service-providers/{service_provider_id}/webhook", tag = "admin",
    security(("admin_token" = [])),
    params(("service_provider_id" = String, Path, description = "32 hex digits")),
    request_body = SetWebhookRequest,
    responses(
        (status = 200, body = WebhookSet),
        (status = 400, description = "malformed_request, or invalid_parameter: the URL breaks the rules", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "forbidden_role: only an administrator manages webhooks", body = ErrorBody),
        (status = 404, description = "unknown_service_provider", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, description = "unsupported_media_type: the body is not declared application/json", body = ErrorBody)))]
pub(crate) async fn set_webhook(
    caller: AdminAuth,
    State(state): State<AppState>,
    Path(service_provider_id): Path<String>,
    ApiJson(req): ApiJson<SetWebhookRequest>,
) -> ApiResult<Json<WebhookSet>> {
    caller
        .require_administrator(&state, AuditAction::SetWebhook)
        .await?;
    let id: ServiceProviderId = parse_id(&service_provider_id, "service_provider_id")?;
    let url = req
        .url
        .as_deref()
        .map(check_webhook_url)
        .transpose()
        .map_err(|e| ApiError::new(ErrorCode::InvalidParameter, format!("url: {e}")))?;
    let audit = caller.audit(&state, AuditAction::SetWebhook);
    let secret = url
        .as_ref()
        .map(|_| zeroize::Zeroizing::new(eid_protocol::crypto::random_array::<32>().to_vec()));
    let webhook = url
        .as_ref()
        .zip(secret.as_ref())
        .map(|(url, secret)| Webhook {
            service_provider_id: id,
            url: url.clone(),
            secret: secret.clone(),
            created_at_ms: audit.at_ms,
        });
    match state
        .store
        .admin_action(
            audit,
            AdminAction::SetWebhook {
                service_provider_id: id,
                webhook,
            },
        )
        .await?
    {
        AdminActionResult::Done { .. } => {}
        AdminActionResult::UnknownProvider => return Err(unknown_provider()),
        _ => return Err(inconsistent()),
    }
    tracing::info!(service_provider = %id, set = url.is_some(), "webhook changed");
    Ok(Json(WebhookSet {
        service_provider_id: id,
        url,
        secret: secret.map(|s| hex::encode(s.as_slice())),
    }))
}

/// The audit query: `identity_id`, `limit` (1 to 200, default 50), `before`
/// (an audit id: only older rows).
fn parse_audit_query(query: Option<&str>) -> ApiResult<(Option<IdentityId>, u32, Option<u64>)> {
    let bad = |what: &str| ApiError::new(ErrorCode::InvalidParameter, what.to_owned());
    let (mut identity, mut limit, mut before) = (None, AUDIT_PAGE_DEFAULT, None);
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("identity_id", v)) => identity = Some(parse_id(v, "identity_id")?),
            Some(("limit", v)) => {
                limit = v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=AUDIT_PAGE_MAX).contains(n))
                    .ok_or_else(|| bad("limit: 1 to 200"))?;
            }
            Some(("before", v)) => {
                // Audit ids are SQLite row ids: at most i64::MAX.
                before = Some(
                    v.parse::<u64>()
                        .ok()
                        .filter(|b| i64::try_from(*b).is_ok())
                        .ok_or_else(|| bad("before: an audit id (decimal)"))?,
                );
            }
            _ => return Err(bad("unknown query parameter")),
        }
    }
    Ok((identity, limit, before))
}

fn audit_info(e: AuditEntry) -> AuditEntryInfo {
    AuditEntryInfo {
        audit_id: e.id,
        at_ms: e.at_ms,
        agent_id: e.agent_id,
        agent_name: e.agent_name,
        action: e.action,
        identity_id: e.identity_id,
        service_provider_id: e.service_provider_id,
        target_agent_id: e.target_agent_id,
        reason: e.reason,
        outcome: e.outcome,
    }
}

/// The audit of admin actions, newest first. An administrator may read all
/// of it; a support agent only one identity's (`identity_id` required,
/// otherwise `forbidden_role`).
#[utoipa::path(get, path = "/v1/admin/audit", tag = "admin", security(("admin_token" = [])),
    params(
        ("identity_id" = Option<String>, Query, description = "only this identity's rows (32 hex digits)"),
        ("limit" = Option<u32>, Query, description = "rows, 1 to 200 (default 50)", minimum = 1, maximum = 200),
        ("before" = Option<u64>, Query, description = "only rows with a smaller audit id (paging)", minimum = 0, maximum = 9223372036854775807_i64)),
    responses(
        (status = 200, body = AuditList),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, description = "forbidden_role: support reads one identity's audit only", body = ErrorBody)))]
pub(crate) async fn audit(
    caller: AdminAuth,
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<AuditList>> {
    let (identity_id, limit, before) = parse_audit_query(query.as_deref())?;
    if identity_id.is_none() {
        caller
            .require_administrator(&state, AuditAction::ReadAudit)
            .await?;
    }
    let entries = state
        .store
        .audit_entries(identity_id, before, limit)
        .await?;
    // Reading the audit is audited too (who looked at whose case), after the
    // read so a page does not show its own row, before the answer so no page
    // leaves unrecorded.
    let mut read = caller.audit(&state, AuditAction::ReadAudit);
    read.identity_id = identity_id;
    state.store.record_audit(read).await?;
    Ok(Json(AuditList {
        entries: entries.into_iter().map(audit_info).collect(),
    }))
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

#[cfg(test)]
mod webhook_url_tests {
    use super::check_webhook_url;

    #[test]
    fn webhook_urls_must_be_https_or_the_local_test_address() {
        assert!(check_webhook_url("https://bank.example/eid/events").is_ok());
        assert!(check_webhook_url("http://127.0.0.1:8080/hook").is_ok());
        for bad in [
            "http://bank.example/hook",
            "http://localhost/hook",
            "ftp://bank.example/",
            "https://user:pw@bank.example/",
            "https://bank.example/#x",
            "/relative",
            "",
        ] {
            assert!(check_webhook_url(bad).is_err(), "{bad} accepted");
        }
        let long = format!("https://bank.example/{}", "a".repeat(2048));
        assert!(check_webhook_url(&long).is_err());
    }
}

/// The largest `POST /v1/admin/token-batches` body: a 4 MiB document,
/// escaped in JSON.
pub(crate) const TOKEN_BATCH_MAX_BODY: usize = 2 * crate::code_devices::pskc::MAX_DOCUMENT_BYTES;

/// Imports a manufacturer's batch of code devices (administrator only): a
/// PSKC document whose seeds are encrypted under the pre-shared key, each
/// with its `ValueMAC`. A batch with any seed unencrypted, a `ValueMAC`
/// missing or wrong, a device the server does not take, or a serial
/// already stored is refused whole. The seeds are sealed under the
/// key-encryption key and never leave the server again; see
/// docs/authenticators.md.
#[utoipa::path(post, path = "/v1/admin/token-batches", tag = "admin",
    security(("admin_token" = [])),
    request_body = eid_protocol::wire::ImportTokenBatchRequest,
    responses(
        (status = 201, body = eid_protocol::wire::TokenBatchImported),
        (status = 400, description = "malformed_request, or invalid_parameter: the batch was refused (the message says why) or the key or label is malformed", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "forbidden_role: only an administrator imports batches", body = ErrorBody),
        (status = 409, description = "serial_taken: a serial is already stored; nothing was", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, description = "unsupported_media_type: the body is not declared application/json", body = ErrorBody)))]
pub(crate) async fn import_token_batch(
    caller: AdminAuth,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<eid_protocol::wire::ImportTokenBatchRequest>,
) -> ApiResult<(StatusCode, Json<eid_protocol::wire::TokenBatchImported>)> {
    use crate::code_devices::pskc;
    use crate::store::{CodeDevice, CodeDeviceKind, CodeDeviceState, ImportResult, TokenBatch};
    caller
        .require_administrator(&state, AuditAction::ImportTokenBatch)
        .await?;
    let bad = |what: String| ApiError::new(ErrorCode::InvalidParameter, what);
    let mut key = zeroize::Zeroizing::new([0u8; 16]);
    if req.pre_shared_key.len() != 32
        || hex::decode_to_slice(&req.pre_shared_key, key.as_mut_slice()).is_err()
    {
        return Err(bad("pre_shared_key: 32 hex digits".into()));
    }
    if let Some(label) = &req.label
        && (label.is_empty() || label.len() > 100 || label.chars().any(char::is_control))
    {
        return Err(bad("label: 1 to 100 printable characters".into()));
    }
    let kind = match req.kind {
        eid_protocol::wire::CodeDeviceKind::CodeDisplay => CodeDeviceKind::CodeDisplay,
        eid_protocol::wire::CodeDeviceKind::CodeReader => CodeDeviceKind::CodeReader,
    };
    // Parsing, MAC checks, decryption and sealing are CPU work: off the
    // async workers.
    let kek = state.kek.clone();
    let now = state.now_ms();
    let pskc_text = req.pskc;
    let parsed = tokio::task::spawn_blocking(move || {
        let batch = pskc::parse_batch(&pskc_text, &key)?;
        let batch_id: [u8; 16] = eid_protocol::crypto::random_array();
        let devices: Vec<CodeDevice> = batch
            .devices
            .iter()
            .map(|d| CodeDevice {
                serial: d.serial.clone(),
                batch_id,
                kind,
                algorithm: d.params.algorithm,
                digits: d.params.digits,
                step_secs: d.params.step_secs,
                sealed_seed: kek.seal(&d.serial, &d.seed),
                identity_id: None,
                state: CodeDeviceState::Unassigned,
                last_step: None,
                failures: 0,
                blocks: 0,
                blocked_until_ms: None,
                access_code_hash: None,
                added_at_ms: now,
                activated_at_ms: None,
                last_used_at_ms: None,
            })
            .collect();
        Ok::<_, pskc::PskcError>((batch.id, batch_id, devices))
    })
    .await
    .map_err(|_| inconsistent())?;
    let (document_id, batch_id, devices) = parsed.map_err(|e| {
        tracing::info!(reason = %e, "token batch refused");
        bad(format!("pskc: {e}"))
    })?;
    let label = req
        .label
        .or(document_id)
        .unwrap_or_else(|| hex::encode(batch_id));
    let serials: Vec<String> = devices.iter().map(|d| d.serial.clone()).collect();
    let batch = TokenBatch {
        id: batch_id,
        label: label.clone(),
        imported_at_ms: now,
        device_count: devices.len() as u32,
    };
    let mut audit = caller.audit(&state, AuditAction::ImportTokenBatch);
    audit.reason = Some(format!("{} devices, batch {label}", devices.len()));
    match state
        .store
        .import_token_batch(audit, batch, devices)
        .await?
    {
        ImportResult::Imported { .. } => {}
        ImportResult::SerialTaken(serial) => {
            return Err(ApiError::new(
                ErrorCode::SerialTaken,
                format!("serial {serial} is already stored; nothing was imported"),
            ));
        }
    }
    tracing::info!(devices = serials.len(), "token batch imported");
    Ok((
        StatusCode::CREATED,
        Json(eid_protocol::wire::TokenBatchImported {
            batch_id: hex::encode(batch_id),
            label,
            serials,
        }),
    ))
}
