//! HTTP API: router, shared state, extractors and the OpenAPI document.

pub(crate) mod admin;
pub(crate) mod code_devices;
mod device;
mod enrolment;
pub(crate) mod guard;
mod hardware;
pub(crate) mod oidc;
pub(crate) mod rp;
pub(crate) mod self_service;
mod signed;
pub(crate) mod sources;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use eid_protocol::crypto::SoftwareSigningKey;
use eid_protocol::wire::{self, ErrorBody, ErrorCode};
use eid_protocol::{AuthenticatorId, IdentityId};
use serde::de::DeserializeOwned;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::cache::ImmutableCache;
use crate::clock::Clock;
use crate::config::Config;
use crate::error::{ApiError, ApiResult};
use crate::limits::CACHE_MAX_ENTRIES;
use crate::store::{ProviderKey, ServiceProvider, Store};
use crate::waiters::Waiters;

pub(crate) use guard::{Source, WebOrigin};
pub(crate) use oidc::issuer as oidc_issuer;

// The limits moved to `crate::limits`; kept here for the old paths.
pub use crate::limits::{ACTIVATION_CODE_MAX_TRIES, CENTRAL_PIN_LOCK_AT, MAX_WAIT_SECS};

/// Shared state of every handler.
#[derive(Clone)]
pub(crate) struct AppState(Arc<Inner>);

pub(crate) struct Inner {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) signing_key: Arc<SoftwareSigningKey>,
    /// The key ID tokens are signed with (its own, see `crate::oidc`).
    pub(crate) id_token_key: Arc<crate::oidc::IdTokenKey>,
    /// The secret pairwise subjects are derived under (see `crate::oidc`).
    pub(crate) pairwise_key: Arc<crate::oidc::PairwiseKey>,
    /// The key-encryption key of code-device seeds (`crate::code_devices::seal`).
    pub(crate) kek: Arc<crate::code_devices::seal::Kek>,
    admin_token_sha256: [u8; 32],
    pub(crate) config: Config,
    pub(crate) waiters: Waiters,
    /// Service providers with the presented key, by API-key hash. The entry
    /// holds the key's expiry and revocation, checked on every hit (so a
    /// rotated-out key stops at its end without an eviction); a rotation or
    /// revocation evicts the provider's entries after its commit
    /// (`admin::evict_provider_keys`), here and, with several replicas, on
    /// every other one (`ImmutableCache::attach_peers`; sent until it goes
    /// out, `store::postgres::notify`).
    pub(crate) service_providers: ImmutableCache<[u8; 32], ProviderKey>,
    /// Identity ids by folded user ID. Identities are never deleted; a user ID
    /// changes only through a self-service approval, which evicts the
    /// identity's entries after its commit (see `device::submit_decision`).
    pub(crate) identity_ids: ImmutableCache<String, IdentityId>,
    /// OIDC clients by `client_id`, and service providers' names by id:
    /// neither a client's registration nor a provider's name can change
    /// (no API changes or deletes them; one that did must evict here).
    pub(crate) oidc_clients: ImmutableCache<String, crate::store::OidcClient>,
    pub(crate) provider_names: ImmutableCache<eid_protocol::ServiceProviderId, String>,
    /// The immutable part of each authenticator: its device key.
    pub(crate) device_keys: ImmutableCache<AuthenticatorId, DeviceKey>,
    /// What each source did recently (starts, wrong codes), and the unknown
    /// user IDs each provider asked for.
    pub(crate) sources: sources::SourceLimits,
    /// The code devices being checked now (one check per device at a time).
    pub(crate) code_device_turns: crate::code_devices::check::Turns,
}

/// The part of an authenticator that never changes, enough to check a device
/// signature without a database read.
#[derive(Debug, Clone)]
pub(crate) struct DeviceKey {
    pub(crate) authenticator_id: AuthenticatorId,
    pub(crate) device_public_key: eid_protocol::PublicKey,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Builds the state.
    // One argument per long-lived key and service; a builder for the one
    // caller (`crate::start`) would only move the list elsewhere.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        signing_key: Arc<SoftwareSigningKey>,
        id_token_key: Arc<crate::oidc::IdTokenKey>,
        pairwise_key: Arc<crate::oidc::PairwiseKey>,
        kek: Arc<crate::code_devices::seal::Kek>,
        admin_token: &str,
        config: Config,
    ) -> Self {
        Self(Arc::new(Inner {
            store,
            clock,
            signing_key,
            id_token_key,
            pairwise_key,
            kek,
            admin_token_sha256: eid_protocol::sha256(admin_token.as_bytes()),
            config,
            waiters: Waiters::default(),
            service_providers: ImmutableCache::new(CACHE_MAX_ENTRIES),
            identity_ids: ImmutableCache::new(CACHE_MAX_ENTRIES),
            oidc_clients: ImmutableCache::new(CACHE_MAX_ENTRIES),
            provider_names: ImmutableCache::new(CACHE_MAX_ENTRIES),
            device_keys: ImmutableCache::new(CACHE_MAX_ENTRIES),
            sources: sources::SourceLimits::default(),
            code_device_turns: crate::code_devices::check::Turns::default(),
        }))
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }
}

/// The full router. The endpoints that need no credentials are grouped so
/// that `guard` can put the per-address limit (all of them) and the origin
/// check (those a browser can post to) in front of them.
pub(crate) fn router(state: AppState) -> Router {
    let public_reads = Router::new()
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(openapi_json))
        .route("/v1/server-key", get(server_key))
        .route(oidc::PATH_DISCOVERY, get(oidc::discovery))
        .route(oidc::PATH_JWKS, get(oidc::jwks));
    let public_posts = Router::new()
        .route(wire::PATH_ACTIVATE, post(device::activate))
        .route(
            code_devices::PATH_ACTIVATE_CODE_DEVICE,
            post(code_devices::activate),
        )
        .route(
            code_devices::PATH_CODE_DEVICE_ACTIVATION_REQUESTS,
            post(code_devices::request_activation),
        )
        .route(wire::PATH_ENROLMENTS, post(enrolment::start))
        .route(wire::PATH_ENROLMENT_STATUS, post(enrolment::status))
        .route(
            wire::PATH_SELF_SERVICE_CONTACT_CHANGES,
            post(self_service::start_contact_change),
        )
        .route(
            "/v1/self-service/contact-changes/{change_id}/confirm",
            post(self_service::confirm_contact_change),
        )
        .route(
            "/v1/self-service/contact-changes/{change_id}/status",
            post(self_service::contact_change_status),
        )
        .route(
            wire::PATH_SELF_SERVICE_USER_ID_CHANGES,
            post(self_service::start_user_id_change),
        )
        .route(
            "/v1/self-service/user-id-changes/{change_id}/status",
            post(self_service::user_id_change_status),
        );
    let (web_reads, web_posts) = crate::web::routes();
    let public_reads = public_reads.merge(web_reads);
    let public_posts = public_posts.merge(web_posts);
    let (public_reads, public_posts) = guard::guarded(public_reads, public_posts, &state.config);
    Router::new()
        .merge(public_reads)
        .merge(public_posts)
        .route("/v1/admin/identities", post(admin::create_identity))
        .route(
            "/v1/admin/identities/{identity_id}",
            get(admin::get_identity),
        )
        .route(
            "/v1/admin/identities/{identity_id}/activation-codes",
            post(admin::issue_activation_code),
        )
        .route(
            "/v1/admin/identities/{identity_id}/block",
            post(admin::block_identity),
        )
        .route(
            "/v1/admin/identities/{identity_id}/unblock",
            post(admin::unblock_identity),
        )
        .route(
            "/v1/admin/service-providers",
            post(admin::register_service_provider),
        )
        .route(
            "/v1/admin/service-providers/{service_provider_id}/api-keys",
            get(admin::list_api_keys),
        )
        .route(
            "/v1/admin/service-providers/{service_provider_id}/api-keys/rotate",
            post(admin::rotate_api_key),
        )
        .route(
            "/v1/admin/service-providers/{service_provider_id}/api-keys/{key_id}/revoke",
            post(admin::revoke_api_key),
        )
        .route(
            "/v1/admin/service-providers/{service_provider_id}/webhook",
            post(admin::set_webhook),
        )
        .route("/v1/admin/oidc-clients", post(admin::register_oidc_client))
        .route(
            "/v1/admin/agents",
            post(admin::create_agent).get(admin::list_agents),
        )
        .route(
            "/v1/admin/agents/{agent_id}/revoke",
            post(admin::revoke_agent),
        )
        .route("/v1/admin/audit", get(admin::audit))
        .route(
            "/v1/admin/token-batches",
            post(admin::import_token_batch).layer(axum::extract::DefaultBodyLimit::max(
                admin::TOKEN_BATCH_MAX_BODY,
            )),
        )
        .route(wire::PATH_PULL, post(device::pull))
        .route(wire::PATH_DECISIONS, post(device::submit_decision))
        .route(wire::PATH_BLOCK, post(device::block))
        .route(wire::PATH_ENROLMENT_CANCEL, post(enrolment::cancel))
        .route(wire::PATH_DEVICE_SETTINGS, post(device::settings))
        .route(wire::PATH_DEVICE_HARDWARE, post(hardware::list))
        .route(
            wire::PATH_DEVICE_HARDWARE_DEACTIVATE,
            post(hardware::deactivate_one),
        )
        .route(
            wire::PATH_CANCEL_CONTACT_CHANGE,
            post(device::cancel_contact_change),
        )
        .route(oidc::PATH_PAR, post(crate::oidc::par::par))
        .route(oidc::PATH_TOKEN, post(crate::oidc::token::token))
        .route(
            oidc::PATH_USERINFO,
            get(crate::oidc::userinfo::userinfo_get).post(crate::oidc::userinfo::userinfo_post),
        )
        .route("/v1/rp/requests", post(rp::create_request))
        .route("/v1/rp/requests/{request_id}", get(rp::get_request))
        .route(
            "/v1/rp/requests/{request_id}/cancel",
            post(rp::cancel_request),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// The API as the connections serve it: [`router`] behind the two body-size
/// checks, which run once per request around the whole router. As router
/// layers they wrapped every route, and axum clones and boxes a layered
/// route's service and future once per layer on every request. Every
/// request passes both, as before: the routes, the 404 and the 405 answers.
pub(crate) fn app(state: AppState) -> Api {
    let limit = state.config.max_body_bytes;
    Api {
        routes: tower::Layer::layer(&axum::extract::DefaultBodyLimit::max(limit), router(state)),
        limit,
    }
}

/// The router with its body limit (axum's `DefaultBodyLimit`, which the
/// extractors read; the token-batch route's own larger limit is set inside
/// it and wins) and the declared-size check ([`refuse_declared_oversize`]).
#[derive(Clone)]
pub(crate) struct Api {
    routes: <axum::extract::DefaultBodyLimit as tower::Layer<Router>>::Service,
    limit: usize,
}

type RoutesFuture =
    <<axum::extract::DefaultBodyLimit as tower::Layer<Router>>::Service as tower::Service<
        Request,
    >>::Future;

impl tower::Service<Request> for Api {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = futures_util::future::Either<
        RoutesFuture,
        futures_util::future::BoxFuture<'static, Result<Self::Response, Self::Error>>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        tower::Service::<Request>::poll_ready(&mut self.routes, cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        use futures_util::future::Either;
        match declared_oversize(self.limit, &req) {
            None => Either::Left(tower::Service::call(&mut self.routes, req)),
            Some(length) => Either::Right(Box::pin(async move {
                Ok(refuse_declared_oversize(length, req).await)
            })),
        }
    }
}

/// Most bytes of a declared-oversized body read and thrown away before the
/// 413 answer.
const DRAIN_MAX_BYTES: u64 = 1024 * 1024;

/// The declared length of a body whose `Content-Length` is over the limit,
/// which is refused (413, `payload_too_large`) before any handler runs, by
/// [`refuse_declared_oversize`]. The token-batch import has a larger limit
/// of its own.
fn declared_oversize(limit: usize, req: &Request) -> Option<u64> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse::<u64>()
        .ok()?;
    let allowed = if req.uri().path() == "/v1/admin/token-batches" {
        admin::TOKEN_BATCH_MAX_BODY.max(limit)
    } else {
        limit
    };
    (declared > allowed as u64).then_some(declared)
}

/// The 413 answer to a body declared `length` bytes long, over the limit.
/// Up to [`DRAIN_MAX_BYTES`] of it is read first ("lingering close"):
/// answering while the client is still sending and then closing the
/// connection makes its TCP stack reset it, and the client sees a broken
/// connection instead of the 413. A larger body is refused at once (reading
/// it would only serve an attacker).
async fn refuse_declared_oversize(length: u64, req: Request) -> axum::response::Response {
    if length <= DRAIN_MAX_BYTES {
        use http_body_util::BodyExt;
        let _ = http_body_util::Limited::new(req.into_body(), DRAIN_MAX_BYTES as usize)
            .collect()
            .await;
    }
    ApiError::new(ErrorCode::PayloadTooLarge, "request body too large").into_response()
}

async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such endpoint")
}

async fn method_not_allowed() -> impl IntoResponse {
    let e = ApiError::new(ErrorCode::NotFound, "method not allowed on this endpoint");
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(ErrorBody {
            error: eid_protocol::wire::ErrorDetail {
                code: e.code,
                message: e.message,
            },
        }),
    )
}

/// Liveness: answers when the server runs and its database answers.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "healthy", body = String), (status = 500, body = ErrorBody),
        (status = 429, description = "rate_limited: too many calls from this address; see the Retry-After header",
            body = ErrorBody,
            headers(("Retry-After" = u64, description = "seconds until this address may call again")))))]
async fn healthz(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> ApiResult<&'static str> {
    state
        .store
        .count_pending(eid_protocol::IdentityId([0; 16]), 0)
        .await?;
    Ok("ok")
}

/// The OpenAPI 3 document of this API, generated from the code.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI document", content_type = "application/json", body = Object),
        (status = 429, description = "rate_limited: too many calls from this address; see the Retry-After header",
            body = ErrorBody,
            headers(("Retry-After" = u64, description = "seconds until this address may call again")))))]
async fn openapi_json() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        openapi().to_json().unwrap_or_else(|_| "{}".into()),
    )
}

/// The server's signing key, for service providers verifying receipts.
#[utoipa::path(get, path = "/v1/server-key", tag = "relying party",
    responses((status = 200, body = wire::ServerKeyResponse),
        (status = 429, description = "rate_limited: too many calls from this address; see the Retry-After header",
            body = ErrorBody,
            headers(("Retry-After" = u64, description = "seconds until this address may call again")))))]
async fn server_key(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Json<wire::ServerKeyResponse> {
    Json(wire::ServerKeyResponse {
        server_public_key: state.signing_key.public_key().clone(),
    })
}

#[derive(OpenApi)]
#[openapi(
    info(title = "eID reference server", description = "Identity broker for the eID authenticator: admin, device and relying-party APIs. Errors are JSON ErrorBody objects with stable codes."),
    paths(
        healthz, openapi_json, server_key, oidc::discovery, oidc::jwks,
        crate::oidc::par::par, crate::oidc::token::token,
        crate::oidc::userinfo::userinfo_get, crate::oidc::userinfo::userinfo_post,
        admin::create_identity, admin::get_identity, admin::issue_activation_code,
        admin::block_identity, admin::unblock_identity, admin::register_service_provider,
        admin::register_oidc_client,
        admin::list_api_keys, admin::rotate_api_key, admin::revoke_api_key, admin::set_webhook,
        admin::create_agent, admin::list_agents, admin::revoke_agent, admin::audit,
        admin::import_token_batch,
        device::activate, code_devices::activate, code_devices::request_activation,
        device::pull, device::submit_decision, device::block,
        enrolment::start, enrolment::status, enrolment::cancel,
        device::settings,
        device::cancel_contact_change,
        hardware::list, hardware::deactivate_one,
        self_service::start_contact_change, self_service::confirm_contact_change,
        self_service::contact_change_status, self_service::start_user_id_change,
        self_service::user_id_change_status,
        rp::create_request, rp::get_request, rp::cancel_request,
        crate::web::login::authorize, crate::web::login::page, crate::web::login::user_id,
        crate::web::login::status, crate::web::login::qr, crate::web::login::next,
        crate::web::chip::page, crate::web::chip::post,
        crate::web::code_login::code_get, crate::web::code_login::code_post,
        crate::web::code_login::access_code_get, crate::web::code_login::access_code_post,
        crate::web::code_activation::form, crate::web::code_activation::submit,
        crate::web::self_service::code_device::by_app_page,
        crate::web::self_service::code_device::by_app_start,
        crate::web::self_service::code_device::by_app_status,
        crate::web::self_service::code_device::by_app_qr,
    ),
    // Not the body of any endpoint here: what the server POSTs to a
    // service provider's webhook (docs/webhooks.md).
    components(schemas(wire::WebhookEvent)),
    modifiers(&SecurityAddon),
)]
struct ApiDoc;

struct SecurityAddon;

impl utoipa::Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        // OAuth client authentication at PAR and token (the other method,
        // private_key_jwt, travels in the form).
        components.add_security_scheme(
            "client_secret_basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
        components.add_security_scheme(
            "access_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

// ---------------------------------------------------------------- extractors

/// A JSON body whose every failure is a typed [`ApiError`].
pub(crate) struct ApiJson<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = RawBody::from_request(req, state).await?.0;
        // Every request body of this API is a JSON object. serde also reads
        // a struct from an array (`[]` with every field optional), which
        // would accept a body that is not what the schema says.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::malformed(
                "invalid JSON body: a JSON object is expected",
            ));
        }
        serde_json::from_slice(&bytes).map(ApiJson).map_err(|e| {
            ApiError::malformed(format!("invalid JSON body: {}", json_error_summary(&e)))
        })
    }
}

/// The raw body bytes of a JSON request: a body not declared
/// `application/json` is refused unread (`unsupported_media_type`, see
/// `guard::require_json`), and the size limit is mapped to
/// `payload_too_large`.
pub(crate) struct RawBody(pub(crate) Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        guard::require_json(req.headers())?;
        Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(ErrorCode::PayloadTooLarge, "request body too large")
                } else {
                    ApiError::malformed("could not read the request body")
                }
            })
    }
}

/// serde's message without echoing input values back.
fn json_error_summary(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            format!("syntax error at line {} column {}", e.line(), e.column())
        }
        Category::Data => {
            // Data errors name the field and the expectation, not the value.
            let text = e.to_string();
            text.split(" at line")
                .next()
                .unwrap_or("invalid field")
                .chars()
                .take(200)
                .collect()
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// The name the audit gives the bootstrap administrator (the `admin-token`
/// file the server creates in its data directory).
pub(crate) const BOOTSTRAP_AGENT_NAME: &str = "bootstrap administrator";

/// The admin caller: the bootstrap administrator token or an agent's own
/// token (looked up by its SHA-256 on every call, so a revocation takes
/// effect at once).
#[derive(Debug, Clone)]
pub(crate) struct AdminAuth {
    /// The agent (`None` for the bootstrap administrator).
    pub(crate) agent_id: Option<u64>,
    /// Its name, as the audit records it.
    pub(crate) name: String,
    /// What it may do.
    pub(crate) role: wire::AgentRole,
}

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(&parts.headers)
            .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "admin token required"))?;
        let presented = eid_protocol::sha256(token.as_bytes());
        if eid_protocol::crypto::constant_time_eq(&presented, &state.admin_token_sha256) {
            return Ok(AdminAuth {
                agent_id: None,
                name: BOOTSTRAP_AGENT_NAME.into(),
                role: wire::AgentRole::Administrator,
            });
        }
        // Agent tokens are 256-bit random values: their SHA-256 is a safe
        // index; the found hash is still compared in constant time.
        match state.store.agent_by_token(presented).await? {
            Some(agent)
                if agent.revoked_at_ms.is_none()
                    && eid_protocol::crypto::constant_time_eq(&presented, &agent.token_sha256) =>
            {
                Ok(AdminAuth {
                    agent_id: Some(agent.id),
                    name: agent.name,
                    role: agent.role,
                })
            }
            _ => Err(ApiError::new(ErrorCode::Unauthorized, "wrong admin token")),
        }
    }
}

/// The calling service provider, identified by its API key.
pub(crate) struct Provider(pub(crate) ServiceProvider);

impl FromRequestParts<AppState> for Provider {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let key = bearer(&parts.headers)
            .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "API key required"))?;
        // API keys are 256-bit random values, so a plain SHA-256 is a safe index.
        let hash = eid_protocol::sha256(key.as_bytes());
        let found = match state.service_providers.get(&hash) {
            Some(found) => found,
            None => {
                let stamp = state.service_providers.stamp();
                let Some(found) = state.store.provider_by_api_key(hash).await? else {
                    return Err(ApiError::new(ErrorCode::Unauthorized, "wrong API key"));
                };
                state
                    .service_providers
                    .insert_unless_evicted(stamp, hash, found.clone());
                found
            }
        };
        // Checked on every call, cached or not: a key past its grace period
        // or revoked is refused at once.
        if !found.key.usable_at(state.now_ms()) {
            return Err(ApiError::new(
                ErrorCode::Unauthorized,
                "this API key is revoked or expired",
            ));
        }
        Ok(Provider(found.provider))
    }
}

/// The identity id of a folded user ID, from the cache or else the store.
pub(crate) async fn identity_id_of(
    state: &AppState,
    folded: &str,
) -> ApiResult<Option<IdentityId>> {
    if let Some(id) = state.identity_ids.get(&folded.to_owned()) {
        return Ok(Some(id));
    }
    let stamp = state.identity_ids.stamp();
    let Some(identity) = state.store.identity_by_user_id(folded).await? else {
        return Ok(None);
    };
    state
        .identity_ids
        .insert_unless_evicted(stamp, folded.to_owned(), identity.id);
    Ok(Some(identity.id))
}

/// The OIDC client `client_id`, from the cache when it was read before
/// (unknown ids are never cached, so made-up ones cannot fill it).
pub(crate) async fn oidc_client_of(
    state: &AppState,
    client_id: &str,
) -> crate::store::StoreResult<Option<crate::store::OidcClient>> {
    let key = client_id.to_owned();
    if let Some(client) = state.oidc_clients.get(&key) {
        return Ok(Some(client));
    }
    let stamp = state.oidc_clients.stamp();
    let client = state.store.oidc_client(client_id).await?;
    if let Some(client) = &client {
        state
            .oidc_clients
            .insert_unless_evicted(stamp, key, client.clone());
    }
    Ok(client)
}

/// A service provider's registered name, from the cache when read before.
pub(crate) async fn provider_name_of(
    state: &AppState,
    id: eid_protocol::ServiceProviderId,
) -> crate::store::StoreResult<Option<String>> {
    if let Some(name) = state.provider_names.get(&id) {
        return Ok(Some(name));
    }
    let stamp = state.provider_names.stamp();
    let name = state.store.service_provider(id).await?.map(|sp| sp.name);
    if let Some(name) = &name {
        state
            .provider_names
            .insert_unless_evicted(stamp, id, name.clone());
    }
    Ok(name)
}

/// Parses an id from a path segment.
pub(crate) fn parse_id<T: std::str::FromStr>(raw: &str, what: &str) -> ApiResult<T> {
    raw.parse()
        .map_err(|_| ApiError::malformed(format!("{what} must be 32 lowercase hex digits")))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::{Method, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;
    use crate::clock::ManualClock;
    use crate::store::SqliteStore;

    /// The API of a fresh server with the default 64 KiB body limit.
    fn api(dir: &std::path::Path) -> Api {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.join("db.sqlite3")).unwrap());
        app(AppState::new(
            store,
            Arc::new(ManualClock::new(1_800_000_000_000)),
            Arc::new(SoftwareSigningKey::generate()),
            Arc::new(crate::oidc::IdTokenKey::load_or_create(dir).unwrap()),
            Arc::new(crate::oidc::PairwiseKey::load_or_create(dir).unwrap()),
            Arc::new(crate::code_devices::seal::Kek::load_or_create(dir).unwrap()),
            "admin-token-for-tests",
            Config::default(),
        ))
    }

    async fn call(api: &Api, request: Request) -> (StatusCode, String) {
        let response = api.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    fn post(path: &str, declared: Option<usize>, body: Vec<u8>) -> Request {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(length) = declared {
            request = request.header(header::CONTENT_LENGTH, length);
        }
        request.body(Body::from(body)).unwrap()
    }

    #[tokio::test]
    async fn a_declared_oversize_body_is_refused_on_every_path_before_any_handler() {
        let dir = tempfile::tempdir().unwrap();
        let api = api(dir.path());
        let limit = Config::default().max_body_bytes;
        // A route, an unknown path (the 404 fallback) and a wrong method (the
        // 405 fallback): each answers 413 for a body declared too long.
        for (method, path) in [
            (Method::POST, wire::PATH_PULL),
            (Method::POST, "/v1/no-such-endpoint"),
            (Method::PUT, "/v1/rp/requests"),
        ] {
            let mut request = post(path, Some(limit + 1), vec![b' '; limit + 1]);
            *request.method_mut() = method;
            let (status, body) = call(&api, request).await;
            assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{path}: {body}");
            assert!(body.contains("payload_too_large"), "{path}: {body}");
        }
        // At the limit the declared length passes the check (the pull then
        // refuses the unsigned call, not its size).
        let (status, body) =
            call(&api, post(wire::PATH_PULL, Some(limit), vec![b' '; limit])).await;
        assert_ne!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    }

    #[tokio::test]
    async fn an_undeclared_oversize_body_meets_the_body_limit_in_the_extractor() {
        let dir = tempfile::tempdir().unwrap();
        let api = api(dir.path());
        let limit = Config::default().max_body_bytes;
        let big = format!("{{\"user_id\":\"{}\"}}", "a".repeat(limit));
        let mut request = post("/v1/admin/identities", None, big.into_bytes());
        request.headers_mut().insert(
            header::AUTHORIZATION,
            "Bearer admin-token-for-tests".parse().unwrap(),
        );
        let (status, body) = call(&api, request).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    }

    #[tokio::test]
    async fn the_token_batch_import_keeps_its_larger_limit() {
        let dir = tempfile::tempdir().unwrap();
        let api = api(dir.path());
        let limit = Config::default().max_body_bytes;
        assert!(admin::TOKEN_BATCH_MAX_BODY > limit + 1);
        // Over the general limit, within the import's: the declared-size
        // check lets it through (and the missing admin token refuses it).
        let length = limit + 1;
        let (status, body) = call(
            &api,
            post("/v1/admin/token-batches", Some(length), vec![b' '; length]),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        // Over the import's own limit it is refused by its declared size.
        let length = admin::TOKEN_BATCH_MAX_BODY + 1;
        let (status, body) = call(
            &api,
            post("/v1/admin/token-batches", Some(length), vec![b' '; length]),
        )
        .await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    }
}
