//! Clients for the eID server's HTTP APIs:
//! - [`AdminClient`] for support tooling (identities, codes, blocking, providers);
//! - [`ProviderClient`] for service providers (requests, results, receipts);
//! - [`SelfServiceClient`] for the self-service portal (a person's browser:
//!   phone, e-mail and user-ID changes);
//! - [`SoftPhone`], a protocol-level phone used by QA tests and the load
//!   generator. It holds its keys in memory and has no PIN handling: the product's
//!   phone logic is `eid-core`.
//!
//! Every connection pins the server's TLS key ([`pinning`]).
//!
//! The soft phone's and the service provider's calls go through a
//! [`Transport`]: the pinned reqwest client of an [`Endpoint`] (the CLI, the
//! tests), or one bare pinned [`Http2Connection`] (the load generator).
#![forbid(unsafe_code)]

mod http2;
mod phone;
pub mod pinning;
mod transport;

use eid_protocol::wire::{
    self, ActivationCodeIssued, AdminReason, AgentCreated, AgentInfo, AgentList, AgentRole,
    AuditList, BindingMode, ChangeStatus, ContactChannel, CreateAgentRequest,
    CreateIdentityRequest, CreateRequestRequest, ErrorBody, IdentityCreated, IdentityInfo,
    OidcClientRegistered, RegisterOidcClientRequest, RegisterServiceProviderRequest,
    RequestCreated, RequestStatusResponse, SelfServiceCaller, SelfServiceStep, ServerKeyResponse,
    ServiceProviderRegistered, StartContactChangeRequest, StartUserIdChangeRequest,
};
use eid_protocol::{ChangeId, IdentityId, RequestId, RequestKind, ServiceProviderId};
use serde::de::DeserializeOwned;

pub use http2::{Http2Connection, TransportError};
pub use phone::{SignedHeaders, SoftPhone};
pub use transport::{Answer, Call, Transport, bearer};

/// A failed API call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiFailure {
    /// The server answered with an error body.
    #[error("server answered {status}: {body:?}")]
    Server {
        /// HTTP status.
        status: u16,
        /// The typed error.
        body: ErrorBody,
    },
    /// The server answered something that is not the expected JSON.
    #[error("unexpected answer {status}: {text}")]
    Unexpected {
        /// HTTP status.
        status: u16,
        /// The first part of the body.
        text: String,
    },
    /// The connection failed.
    #[error("network: {0}")]
    Network(#[from] reqwest::Error),
    /// A signature from the server did not verify.
    #[error("the server's signature does not verify")]
    BadServerSignature,
    /// The lean HTTP/2 transport failed below HTTP ([`Http2Connection`]),
    /// or a call could not be sent (an API key a header cannot carry).
    #[error("transport: {0}")]
    Transport(#[from] TransportError),
}

impl ApiFailure {
    /// The stable error code, when the server sent one.
    pub fn code(&self) -> Option<eid_protocol::wire::ErrorCode> {
        match self {
            ApiFailure::Server { body, .. } => Some(body.error.code),
            _ => None,
        }
    }
}

/// Turns a response into `T` or a typed failure.
pub async fn decode<T: DeserializeOwned>(response: reqwest::Response) -> Result<T, ApiFailure> {
    let status = response.status();
    let bytes = response.bytes().await?;
    decode_bytes(status, &bytes)
}

/// Turns a [`Transport`]'s answer into `T` or a typed failure, as [`decode`].
pub fn decode_answer<T: DeserializeOwned>(answer: &Answer) -> Result<T, ApiFailure> {
    let status =
        reqwest::StatusCode::from_u16(answer.status).map_err(|_| ApiFailure::Unexpected {
            status: answer.status,
            text: String::new(),
        })?;
    decode_bytes(status, &answer.body)
}

fn decode_bytes<T: DeserializeOwned>(
    status: reqwest::StatusCode,
    bytes: &[u8],
) -> Result<T, ApiFailure> {
    if status.is_success() {
        return serde_json::from_slice(bytes).map_err(|_| ApiFailure::Unexpected {
            status: status.as_u16(),
            text: String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned(),
        });
    }
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(body) => Err(ApiFailure::Server {
            status: status.as_u16(),
            body,
        }),
        Err(_) => Err(ApiFailure::Unexpected {
            status: status.as_u16(),
            text: String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned(),
        }),
    }
}

/// Where the server is and how to trust it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `https://127.0.0.1:PORT`.
    pub base_url: String,
    /// The pinned client.
    pub client: reqwest::Client,
}

impl Endpoint {
    /// A pinned client for `base_url` with the server's `sha256/...` SPKI pin.
    pub fn new(base_url: &str, spki_pin: &str) -> Result<Self, pinning::PinError> {
        Ok(Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            client: pinning::pinned_client(spki_pin, false)?,
        })
    }

    /// Like [`Endpoint::new`], but offering HTTP/2: one connection carries
    /// many concurrent requests (as a busy service provider's would).
    pub fn new_http2(base_url: &str, spki_pin: &str) -> Result<Self, pinning::PinError> {
        Ok(Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            client: pinning::pinned_client(spki_pin, true)?,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }
}

/// The admin API.
#[derive(Debug, Clone)]
pub struct AdminClient {
    endpoint: Endpoint,
    token: String,
}

impl AdminClient {
    /// A client with the admin token.
    pub fn new(endpoint: Endpoint, token: &str) -> Self {
        Self {
            endpoint,
            token: token.to_owned(),
        }
    }

    async fn post<B: serde::Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ApiFailure> {
        let mut req = self
            .endpoint
            .client
            .post(self.endpoint.url(path))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        decode(req.send().await?).await
    }

    /// Creates an identity.
    pub async fn create_identity(
        &self,
        user_id: &str,
        display_name: Option<&str>,
    ) -> Result<IdentityCreated, ApiFailure> {
        let body = CreateIdentityRequest {
            user_id: user_id.into(),
            display_name: display_name.map(Into::into),
            phone: None,
            email: None,
        };
        self.create_identity_with(&body).await
    }

    /// Creates an identity with every field (contact data included).
    pub async fn create_identity_with(
        &self,
        body: &CreateIdentityRequest,
    ) -> Result<IdentityCreated, ApiFailure> {
        self.post("/v1/admin/identities", Some(body)).await
    }

    /// Issues an activation code.
    pub async fn issue_activation_code(
        &self,
        identity: IdentityId,
    ) -> Result<ActivationCodeIssued, ApiFailure> {
        self.post::<(), _>(
            &format!("/v1/admin/identities/{identity}/activation-codes"),
            None,
        )
        .await
    }

    /// Reads an identity.
    pub async fn identity(&self, identity: IdentityId) -> Result<IdentityInfo, ApiFailure> {
        let req = self.endpoint.client.get(
            self.endpoint
                .url(&format!("/v1/admin/identities/{identity}")),
        );
        decode(req.bearer_auth(&self.token).send().await?).await
    }

    /// Blocks an identity; the reason is required and stored in the audit.
    pub async fn block(
        &self,
        identity: IdentityId,
        reason: &str,
    ) -> Result<IdentityInfo, ApiFailure> {
        self.post(
            &format!("/v1/admin/identities/{identity}/block"),
            Some(&AdminReason {
                reason: reason.into(),
            }),
        )
        .await
    }

    /// Unblocks an identity; the reason is required and stored in the audit.
    pub async fn unblock(
        &self,
        identity: IdentityId,
        reason: &str,
    ) -> Result<IdentityInfo, ApiFailure> {
        self.post(
            &format!("/v1/admin/identities/{identity}/unblock"),
            Some(&AdminReason {
                reason: reason.into(),
            }),
        )
        .await
    }

    /// Creates an agent with its own token (administrator only); the token
    /// is in the answer only this once.
    pub async fn create_agent(
        &self,
        name: &str,
        role: AgentRole,
    ) -> Result<AgentCreated, ApiFailure> {
        self.post(
            "/v1/admin/agents",
            Some(&CreateAgentRequest {
                name: name.into(),
                role,
            }),
        )
        .await
    }

    /// Lists the agents (administrator only).
    pub async fn agents(&self) -> Result<AgentList, ApiFailure> {
        let req = self
            .endpoint
            .client
            .get(self.endpoint.url("/v1/admin/agents"));
        decode(req.bearer_auth(&self.token).send().await?).await
    }

    /// Revokes an agent (administrator only).
    pub async fn revoke_agent(&self, agent_id: u64) -> Result<AgentInfo, ApiFailure> {
        self.post::<(), _>(&format!("/v1/admin/agents/{agent_id}/revoke"), None)
            .await
    }

    /// Reads the audit, newest first: one identity's rows or (administrator
    /// only) all, at most `limit`, older than the audit id `before`.
    pub async fn audit(
        &self,
        identity: Option<IdentityId>,
        limit: Option<u32>,
        before: Option<u64>,
    ) -> Result<AuditList, ApiFailure> {
        let mut query = Vec::new();
        if let Some(id) = identity {
            query.push(format!("identity_id={id}"));
        }
        if let Some(n) = limit {
            query.push(format!("limit={n}"));
        }
        if let Some(b) = before {
            query.push(format!("before={b}"));
        }
        let path = if query.is_empty() {
            "/v1/admin/audit".to_owned()
        } else {
            format!("/v1/admin/audit?{}", query.join("&"))
        };
        let req = self.endpoint.client.get(self.endpoint.url(&path));
        decode(req.bearer_auth(&self.token).send().await?).await
    }

    /// Registers a service provider.
    pub async fn register_service_provider(
        &self,
        name: &str,
    ) -> Result<ServiceProviderRegistered, ApiFailure> {
        self.post(
            "/v1/admin/service-providers",
            Some(&RegisterServiceProviderRequest { name: name.into() }),
        )
        .await
    }

    /// A service provider's API keys, oldest first (administrator only).
    pub async fn api_keys(
        &self,
        provider: ServiceProviderId,
    ) -> Result<eid_protocol::wire::ApiKeyList, ApiFailure> {
        let req = self.endpoint.client.get(
            self.endpoint
                .url(&format!("/v1/admin/service-providers/{provider}/api-keys")),
        );
        decode(req.bearer_auth(&self.token).send().await?).await
    }

    /// Issues a new API key for a service provider (in this answer only);
    /// its older keys stop after the grace period (administrator only).
    pub async fn rotate_api_key(
        &self,
        provider: ServiceProviderId,
    ) -> Result<eid_protocol::wire::ApiKeyRotated, ApiFailure> {
        self.post::<(), _>(
            &format!("/v1/admin/service-providers/{provider}/api-keys/rotate"),
            None,
        )
        .await
    }

    /// Revokes one of a service provider's API keys at once (administrator only).
    pub async fn revoke_api_key(
        &self,
        provider: ServiceProviderId,
        key_id: u64,
    ) -> Result<eid_protocol::wire::ApiKeyList, ApiFailure> {
        self.post::<(), _>(
            &format!("/v1/admin/service-providers/{provider}/api-keys/{key_id}/revoke"),
            None,
        )
        .await
    }

    /// Sets a service provider's webhook (`Some(url)`; its new signing
    /// secret is in this answer only) or removes it (`None`); administrator only.
    pub async fn set_webhook(
        &self,
        provider: ServiceProviderId,
        url: Option<&str>,
    ) -> Result<eid_protocol::wire::WebhookSet, ApiFailure> {
        self.post(
            &format!("/v1/admin/service-providers/{provider}/webhook"),
            Some(&eid_protocol::wire::SetWebhookRequest {
                url: url.map(str::to_owned),
            }),
        )
        .await
    }

    /// Registers an OpenID Connect client for a service provider (its
    /// secret, if asked for, is in this answer only).
    pub async fn register_oidc_client(
        &self,
        request: &RegisterOidcClientRequest,
    ) -> Result<OidcClientRegistered, ApiFailure> {
        self.post("/v1/admin/oidc-clients", Some(request)).await
    }

    /// Imports a manufacturer's batch of code devices (PSKC).
    pub async fn import_token_batch(
        &self,
        request: &eid_protocol::wire::ImportTokenBatchRequest,
    ) -> Result<eid_protocol::wire::TokenBatchImported, ApiFailure> {
        self.post("/v1/admin/token-batches", Some(request)).await
    }
}

/// The service-provider API, over the pinned reqwest client of an
/// [`Endpoint`] or any other [`Transport`].
#[derive(Debug, Clone)]
pub struct ProviderClient<T = Endpoint> {
    endpoint: T,
    /// `Bearer {api_key}`, built once (`None`: not a header value).
    authorization: Option<reqwest::header::HeaderValue>,
}

impl<T: Transport> ProviderClient<T> {
    /// A client with the provider's API key.
    pub fn new(endpoint: T, api_key: &str) -> Self {
        Self {
            endpoint,
            authorization: transport::bearer(api_key),
        }
    }

    /// The transport it calls through.
    pub fn transport(&self) -> &T {
        &self.endpoint
    }

    async fn call<R: DeserializeOwned>(
        &self,
        mut call: Call<'_>,
        authorized: bool,
    ) -> Result<R, ApiFailure> {
        if authorized {
            let value = self.authorization.as_ref().ok_or_else(|| {
                TransportError::Unsendable("an API key a header cannot carry".into())
            })?;
            call = call.authorized(value);
        }
        decode_answer(&self.endpoint.call(call).await?)
    }

    /// Asks a person to log in or sign.
    pub async fn create_request(
        &self,
        user_id: &str,
        kind: RequestKind,
        reference_text: &str,
        binding_code: Option<&str>,
    ) -> Result<RequestCreated, ApiFailure> {
        let body = CreateRequestRequest {
            user_id: user_id.into(),
            kind,
            reference_text: reference_text.into(),
            binding_code: binding_code.map(Into::into),
            binding: None,
        };
        self.create_request_with(&body).await
    }

    /// Asks a person to log in or sign, with the server creating the
    /// channel binding: a short code to type ([`BindingMode::Code`], in
    /// `RequestCreated::binding_code`) or a rotating-QR secret
    /// ([`BindingMode::Qr`], in `RequestCreated::binding_secret`; render it
    /// with `eid_protocol::binding::BindingSecret::qr_payload_at`).
    pub async fn create_bound_request(
        &self,
        user_id: &str,
        kind: RequestKind,
        reference_text: &str,
        binding: BindingMode,
    ) -> Result<RequestCreated, ApiFailure> {
        let body = CreateRequestRequest {
            user_id: user_id.into(),
            kind,
            reference_text: reference_text.into(),
            binding_code: None,
            binding: Some(binding),
        };
        self.create_request_with(&body).await
    }

    /// Sends a request body as given (every field of the wire type).
    pub async fn create_request_with(
        &self,
        body: &CreateRequestRequest,
    ) -> Result<RequestCreated, ApiFailure> {
        let json = serde_json::to_vec(body).expect("serializable");
        self.call(Call::post("/v1/rp/requests", json), true).await
    }

    /// Reads a request's status, long-polling up to `wait_secs` while pending.
    pub async fn status(
        &self,
        request: RequestId,
        wait_secs: u64,
    ) -> Result<RequestStatusResponse, ApiFailure> {
        let path = format!("/v1/rp/requests/{request}?wait={wait_secs}");
        self.call(Call::get(&path), true).await
    }

    /// Cancels a pending request.
    pub async fn cancel(&self, request: RequestId) -> Result<RequestStatusResponse, ApiFailure> {
        let path = format!("/v1/rp/requests/{request}/cancel");
        let call = Call {
            method: reqwest::Method::POST,
            ..Call::get(&path)
        };
        self.call(call, true).await
    }

    /// The server's receipt-signing key.
    pub async fn server_key(&self) -> Result<eid_protocol::PublicKey, ApiFailure> {
        let r: ServerKeyResponse = self.call(Call::get("/v1/server-key"), false).await?;
        Ok(r.server_public_key)
    }
}

/// The self-service portal's calls, as a person's browser makes them (no
/// credentials: the person approves self-service logins in the app).
#[derive(Debug, Clone)]
pub struct SelfServiceClient {
    endpoint: Endpoint,
}

impl SelfServiceClient {
    /// A client for the portal API.
    pub fn new(endpoint: Endpoint) -> Self {
        Self { endpoint }
    }

    /// POSTs any JSON body (tests send malformed ones) to a path.
    pub async fn post_raw<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Vec<u8>,
    ) -> Result<T, ApiFailure> {
        let req = self
            .endpoint
            .client
            .post(self.endpoint.url(path))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        decode(req.send().await?).await
    }

    async fn post<B: serde::Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiFailure> {
        let req = self.endpoint.client.post(self.endpoint.url(path));
        decode(req.json(body).send().await?).await
    }

    /// Activates a code device with support's activation code, two
    /// consecutive codes and a new access code.
    pub async fn activate_code_device(
        &self,
        request: &eid_protocol::wire::ActivateCodeDeviceRequest,
    ) -> Result<eid_protocol::wire::CodeDeviceActivated, ApiFailure> {
        self.post("/v1/code-devices/activate", request).await
    }

    /// Asks the person to approve activating a code device in the app.
    pub async fn request_code_device_activation(
        &self,
        request: &eid_protocol::wire::RequestCodeDeviceActivation,
    ) -> Result<eid_protocol::wire::CodeDeviceActivationRequested, ApiFailure> {
        self.post("/v1/code-devices/activation-requests", request)
            .await
    }

    /// Starts a change of phone number or e-mail address.
    pub async fn start_contact_change(
        &self,
        user_id: &str,
        channel: ContactChannel,
        new_value: &str,
    ) -> Result<SelfServiceStep, ApiFailure> {
        let body = StartContactChangeRequest {
            user_id: user_id.into(),
            channel,
            new_value: new_value.into(),
        };
        self.post(wire::PATH_SELF_SERVICE_CONTACT_CHANGES, &body)
            .await
    }

    /// Asks for the second login of a contact change.
    pub async fn confirm_contact_change(
        &self,
        user_id: &str,
        change: ChangeId,
    ) -> Result<SelfServiceStep, ApiFailure> {
        let path = format!("/v1/self-service/contact-changes/{change}/confirm");
        self.post(
            &path,
            &SelfServiceCaller {
                user_id: user_id.into(),
            },
        )
        .await
    }

    /// Where a contact change stands.
    pub async fn contact_change_status(
        &self,
        user_id: &str,
        change: ChangeId,
    ) -> Result<ChangeStatus, ApiFailure> {
        let path = format!("/v1/self-service/contact-changes/{change}/status");
        self.post(
            &path,
            &SelfServiceCaller {
                user_id: user_id.into(),
            },
        )
        .await
    }

    /// Starts a change of user ID.
    pub async fn start_user_id_change(
        &self,
        user_id: &str,
        new_user_id: &str,
    ) -> Result<SelfServiceStep, ApiFailure> {
        let body = StartUserIdChangeRequest {
            user_id: user_id.into(),
            new_user_id: new_user_id.into(),
        };
        self.post(wire::PATH_SELF_SERVICE_USER_ID_CHANGES, &body)
            .await
    }

    /// Where a user-ID change stands.
    pub async fn user_id_change_status(
        &self,
        user_id: &str,
        change: ChangeId,
    ) -> Result<ChangeStatus, ApiFailure> {
        let path = format!("/v1/self-service/user-id-changes/{change}/status");
        self.post(
            &path,
            &SelfServiceCaller {
                user_id: user_id.into(),
            },
        )
        .await
    }
}

/// Verifies a receipt's signature and that it is for `request` with the
/// reference text whose hash the service provider knows.
pub fn verify_receipt(
    server_key: &eid_protocol::PublicKey,
    receipt: &eid_protocol::wire::SignedReceipt,
    request: RequestId,
    reference_text_sha256: &[u8; 32],
) -> Result<(), ApiFailure> {
    server_key
        .verify(&receipt.receipt.signing_bytes(), &receipt.signature)
        .map_err(|_| ApiFailure::BadServerSignature)?;
    if receipt.receipt.request_id != request
        || &receipt.receipt.reference_text_sha256 != reference_text_sha256
    {
        return Err(ApiFailure::BadServerSignature);
    }
    Ok(())
}
