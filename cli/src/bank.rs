//! The demo bank of `eid demo --web`: a small service-provider web site on
//! 127.0.0.1 (plain HTTP) that logs people in with the broker's OpenID
//! Connect provider the way a real bank integrates it.
//!
//! - `/` shows "Log på Netbank";
//! - `POST /login` pushes the authorization request (PAR, RFC 9126) with PKCE
//!   S256, `state` and `nonce`, authenticating with `private_key_jwt` (an
//!   ES256 assertion of the P-256 key the bank generated), and sends the
//!   browser to the broker's authorization endpoint;
//! - `/callback` checks `state` (single use) and `iss` (RFC 9207), redeems
//!   the code, verifies the ID token with the `openidconnect` crate (keys from
//!   discovery and the JWKS, issuer, audience, expiry, nonce, ES256 only),
//!   asks the userinfo endpoint for the same subject, and shows the result;
//!   `error=access_denied` shows "Login afvist".
//!
//! The broker's self-signed certificate is trusted the way the bank's
//! back end would pin it: every call to the broker goes through the
//! api-client's SPKI-pinned client. Nothing secret is logged or shown: the
//! code, the PKCE verifier and the tokens stay in this process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use eid_api_client::Endpoint;
use eid_protocol::wire::ClientJwk;
use openidconnect::core::{
    CoreGenderClaim, CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreProviderMetadata,
};
use openidconnect::{AdditionalClaims, ClientId, IdToken, IdTokenVerifier, IssuerUrl, Nonce};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use zeroize::Zeroizing;

use crate::error::{CliError, ErrorKind};

/// The bank's name on its pages.
const BANK: &str = "Danske Eksempel Bank";
/// The level of assurance the bank asks for by default (NSIS Substantial).
pub(crate) const ACR_SUBSTANTIAL: &str = "https://data.gov.dk/concept/core/nsis/loa/Substantial";
/// The level the bank asks for before a payment to a new recipient (NSIS
/// High: a chip, or the app and a chip).
pub(crate) const ACR_HIGH: &str = "https://data.gov.dk/concept/core/nsis/loa/High";

/// The level of assurance a login at the bank asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    /// NSIS Substantial: the app, a code display or an audio code reader.
    Substantial,
    /// NSIS High: a chip, or the app and a chip.
    High,
}

impl Level {
    fn acr(self) -> &'static str {
        match self {
            Level::Substantial => ACR_SUBSTANTIAL,
            Level::High => ACR_HIGH,
        }
    }

    /// Whether an ID token's `acr` reaches this level (High reaches
    /// Substantial; anything unknown reaches nothing).
    fn reached_by(self, acr: &str) -> bool {
        match self {
            Level::Substantial => acr == ACR_SUBSTANTIAL || acr == ACR_HIGH,
            Level::High => acr == ACR_HIGH,
        }
    }
}
/// How long a started login may take before the bank forgets it (longer
/// than the broker's request lifetime, so the broker's expiry shows first).
const PENDING_TTL: Duration = Duration::from_secs(15 * 60);
/// Most logins the bank remembers at once (a page reloaded in a loop
/// cannot grow the map without bound).
const MAX_PENDING: usize = 1000;

/// The client key the bank authenticates with (`private_key_jwt`).
pub(crate) struct ClientKey {
    pair: EcdsaKeyPair,
}

impl ClientKey {
    /// A fresh P-256 key (in memory only: the demo's bank lives as long as
    /// the process).
    pub(crate) fn generate() -> Result<Self, CliError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| crypto_error("cannot generate the bank's client key"))?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| crypto_error("cannot load the bank's client key"))?;
        Ok(Self { pair })
    }

    /// The public key as the JWK the client is registered with.
    pub(crate) fn public_jwk(&self) -> ClientJwk {
        // Uncompressed SEC1 point: 0x04 || x (32) || y (32).
        let point = self.pair.public_key().as_ref();
        ClientJwk {
            kty: "EC".into(),
            crv: Some("P-256".into()),
            x: Some(B64URL.encode(&point[1..33])),
            y: Some(B64URL.encode(&point[33..65])),
            n: None,
            e: None,
        }
    }

    /// A single-use client assertion (RFC 7523) for `audience`.
    fn assertion(&self, client_id: &str, audience: &str) -> Result<String, CliError> {
        let rng = SystemRandom::new();
        let now = unix_now();
        let header = serde_json::json!({"alg": "ES256", "typ": "JWT"});
        let claims = serde_json::json!({
            "iss": client_id,
            "sub": client_id,
            "aud": audience,
            "iat": now,
            "exp": now + 60,
            "jti": random_token(&rng)?,
        });
        let input = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(claims.to_string())
        );
        let signature = self
            .pair
            .sign(&rng, input.as_bytes())
            .map_err(|_| crypto_error("cannot sign the client assertion"))?;
        Ok(format!("{input}.{}", B64URL.encode(signature.as_ref())))
    }
}

/// What the bank is registered as at the broker.
pub(crate) struct BankSettings {
    /// The broker, with the pinned client.
    pub(crate) broker: Endpoint,
    /// The bank's OIDC client.
    pub(crate) client_id: String,
    /// Its key.
    pub(crate) key: ClientKey,
    /// `http://127.0.0.1:<port>/callback`.
    pub(crate) redirect_uri: String,
    /// The text the app shows with the login.
    pub(crate) reference_text: String,
}

/// The endpoints and keys read from the broker's discovery document.
struct Broker {
    issuer: String,
    par_endpoint: String,
    authorization_endpoint: String,
    token_endpoint: String,
    userinfo_endpoint: String,
    jwks: CoreJsonWebKeySet,
}

/// The members of the discovery document that `CoreProviderMetadata` does
/// not carry (PAR) or that the bank reads as plain strings.
#[derive(Deserialize)]
struct DiscoveryExtras {
    pushed_authorization_request_endpoint: String,
    #[serde(default)]
    userinfo_endpoint: Option<String>,
}

/// A login the bank started and has not seen come back.
struct PendingLogin {
    verifier: Zeroizing<String>,
    nonce: String,
    level: Level,
    started: Instant,
}

struct Bank {
    settings: BankSettings,
    broker: Broker,
    pending: Mutex<HashMap<String, PendingLogin>>,
    rng: SystemRandom,
}

/// The bank's claims beyond the standard ones.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct EidClaims {
    /// The broker's request the person approved (absent when the login was
    /// completed with a code device or chip instead of the app).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    eid_request_id: Option<String>,
    /// SHA-256 of the receipt (the decision's or the hardware receipt).
    eid_receipt_sha256: String,
}

impl AdditionalClaims for EidClaims {}

type EidIdToken =
    IdToken<EidClaims, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>;

/// A bank web site serving in the background.
pub(crate) struct RunningBank {
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningBank {
    /// Stops serving.
    pub(crate) async fn shutdown(self) {
        let _ = self.shutdown.send(());
        let _ = self.task.await;
    }
}

/// Binds the bank's port first: its redirect URI is registered before the
/// site starts.
pub(crate) async fn bind() -> Result<(TcpListener, String), CliError> {
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|e| CliError::new(ErrorKind::Io, format!("cannot bind the bank's port: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| CliError::new(ErrorKind::Io, e.to_string()))?;
    Ok((listener, format!("http://{addr}")))
}

/// Reads the broker's discovery document and JWKS, then serves the bank on
/// `listener`.
pub(crate) async fn start(
    listener: TcpListener,
    settings: BankSettings,
) -> Result<RunningBank, CliError> {
    let broker = discover(&settings.broker).await?;
    let bank = Arc::new(Bank {
        settings,
        broker,
        pending: Mutex::new(HashMap::new()),
        rng: SystemRandom::new(),
    });
    let app = Router::new()
        .route("/", get(home))
        .route("/login", post(start_login))
        .route("/callback", get(callback))
        .with_state(bank);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
        if let Err(e) = served {
            eprintln!("the demo bank stopped: {e}");
        }
    });
    Ok(RunningBank { shutdown: tx, task })
}

/// An `openidconnect` HTTP client over the pinned client.
fn oidc_http(
    client: &reqwest::Client,
) -> impl Fn(
    openidconnect::HttpRequest,
) -> std::pin::Pin<
    Box<
        dyn std::future::Future<Output = Result<openidconnect::HttpResponse, reqwest::Error>>
            + Send,
    >,
> + use<> {
    let client = client.clone();
    move |req: openidconnect::HttpRequest| {
        let client = client.clone();
        Box::pin(async move {
            let resp = client
                .request(req.method().clone(), req.uri().to_string())
                .headers(req.headers().clone())
                .body(req.into_body())
                .send()
                .await?;
            let mut answer = openidconnect::http::Response::builder().status(resp.status());
            for (name, value) in resp.headers() {
                answer = answer.header(name, value);
            }
            let body = resp.bytes().await?.to_vec();
            Ok(answer
                .body(body)
                .expect("status and headers come from a valid response"))
        })
    }
}

async fn discover(broker: &Endpoint) -> Result<Broker, CliError> {
    let issuer = IssuerUrl::new(broker.base_url.clone())
        .map_err(|e| CliError::new(ErrorKind::Config, format!("bad issuer URL: {e}")))?;
    let http = oidc_http(&broker.client);
    // The library checks that the document names the issuer it was fetched
    // for, and fetches the keys from its jwks_uri.
    let metadata = CoreProviderMetadata::discover_async(issuer, &http)
        .await
        .map_err(|e| {
            CliError::new(
                ErrorKind::Server,
                format!("the broker's OpenID Connect discovery failed: {e}"),
            )
        })?;
    let extras: DiscoveryExtras = broker
        .client
        .get(format!(
            "{}/.well-known/openid-configuration",
            broker.base_url
        ))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| CliError::new(ErrorKind::Server, format!("discovery: {e}")))?
        .json()
        .await
        .map_err(|e| CliError::new(ErrorKind::Server, format!("discovery: {e}")))?;
    let issuer = metadata.issuer().as_str().to_owned();
    Ok(Broker {
        userinfo_endpoint: extras
            .userinfo_endpoint
            .unwrap_or_else(|| format!("{issuer}/oidc/userinfo")),
        par_endpoint: extras.pushed_authorization_request_endpoint,
        authorization_endpoint: metadata.authorization_endpoint().as_str().to_owned(),
        token_endpoint: metadata
            .token_endpoint()
            .map(|t| t.as_str().to_owned())
            .unwrap_or_else(|| format!("{issuer}/oidc/token")),
        jwks: metadata.jwks().clone(),
        issuer,
    })
}

async fn home() -> Html<String> {
    Html(page(
        "Netbank",
        &format!(
            "<h1>{BANK}</h1>\n<p>Velkommen til Netbank. Log på med dit eID.</p>\n\
             <form method=\"post\" action=\"/login\">\
             <button id=\"login\" type=\"submit\">Log på Netbank</button></form>\n\
             <p>Betaling til en ny modtager kræver sikringsniveau Høj (chip).</p>\n\
             <form method=\"post\" action=\"/login\">\
             <input type=\"hidden\" name=\"level\" value=\"high\">\
             <button id=\"login-high\" type=\"submit\">Log på med chip (niveau Høj)</button></form>"
        ),
    ))
}

/// `POST /login`: PAR, then the browser to the authorization endpoint.
async fn start_login(State(bank): State<Arc<Bank>>, body: axum::body::Bytes) -> Response {
    // `level=high` asks for NSIS High; nothing (or anything else) for
    // Substantial.
    let high = url::form_urlencoded::parse(&body).any(|(k, v)| k == "level" && v == "high");
    let level = if high {
        Level::High
    } else {
        Level::Substantial
    };
    match bank.push_authorization_request(level).await {
        Ok((location, state)) => {
            let mut response = Redirect::to(&location).into_response();
            // The login belongs to this browser: the callback needs this
            // cookie to hold its `state` (else anyone could send a victim's
            // browser to the callback with the attacker's own login).
            // `SameSite=Lax` is sent on the broker's top-level way back.
            if let Ok(v) = header::HeaderValue::from_str(&format!(
                "{LOGIN_COOKIE}={state}; Path=/callback; HttpOnly; SameSite=Lax; Max-Age={}",
                PENDING_TTL.as_secs()
            )) {
                response.headers_mut().append(header::SET_COOKIE, v);
            }
            response
        }
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            Html(page(
                "Login kunne ikke starte",
                &format!(
                    "<h1 id=\"failed\">Login kunne ikke starte</h1>\n<p>{}</p>\n{}",
                    escape(&e),
                    BACK_HOME
                ),
            )),
        )
            .into_response(),
    }
}

impl Bank {
    /// Pushes the request; returns where the browser goes and the `state`.
    async fn push_authorization_request(&self, level: Level) -> Result<(String, String), String> {
        let state = random_token(&self.rng).map_err(|e| e.to_string())?;
        let nonce = random_token(&self.rng).map_err(|e| e.to_string())?;
        let verifier = Zeroizing::new(random_token(&self.rng).map_err(|e| e.to_string())?);
        let challenge = B64URL.encode(eid_protocol::sha256(verifier.as_bytes()));
        let s = &self.settings;
        let assertion = s
            .key
            .assertion(&s.client_id, &self.broker.issuer)
            .map_err(|e| e.to_string())?;
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", &s.client_id)
            .append_pair("redirect_uri", &s.redirect_uri)
            .append_pair("scope", "openid")
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("acr_values", level.acr())
            .append_pair("ui_locales", "da")
            .append_pair(
                "reference_text",
                &B64URL.encode(s.reference_text.as_bytes()),
            )
            .append_pair("client_assertion_type", ASSERTION_TYPE)
            .append_pair("client_assertion", &assertion)
            .finish();
        let resp = s
            .broker
            .client
            .post(&self.broker.par_endpoint)
            .header(header::CONTENT_TYPE, FORM)
            .body(body)
            .send()
            .await
            .map_err(|e| format!("PAR: {e}"))?;
        let status = resp.status();
        let answer: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| format!("PAR answered {status} without JSON: {e}"))?;
        let Some(request_uri) = answer["request_uri"].as_str().filter(|_| status == 201) else {
            return Err(format!(
                "PAR answered {status}: {} {}",
                answer["error"].as_str().unwrap_or("-"),
                answer["error_description"].as_str().unwrap_or("")
            ));
        };
        {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            pending.retain(|_, p| p.started.elapsed() < PENDING_TTL);
            if pending.len() >= MAX_PENDING {
                return Err("too many logins in progress; try again later".into());
            }
            pending.insert(
                state.clone(),
                PendingLogin {
                    verifier,
                    nonce,
                    level,
                    started: Instant::now(),
                },
            );
        }
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", &s.client_id)
            .append_pair("request_uri", request_uri)
            .finish();
        Ok((
            format!("{}?{query}", self.broker.authorization_endpoint),
            state,
        ))
    }

    /// The login `state` names, forgotten at once (single use).
    fn take_pending(&self, state: Option<&str>) -> Option<PendingLogin> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending
            .remove(state?)
            .filter(|p| p.started.elapsed() < PENDING_TTL)
    }

    /// Redeems the code, verifies the ID token and asks userinfo.
    async fn finish(&self, code: &str, login: &PendingLogin) -> Result<LoggedIn, String> {
        let s = &self.settings;
        let assertion = s
            .key
            .assertion(&s.client_id, &self.broker.issuer)
            .map_err(|e| e.to_string())?;
        let body = Zeroizing::new(
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "authorization_code")
                .append_pair("code", code)
                .append_pair("redirect_uri", &s.redirect_uri)
                .append_pair("code_verifier", &login.verifier)
                .append_pair("client_assertion_type", ASSERTION_TYPE)
                .append_pair("client_assertion", &assertion)
                .finish(),
        );
        let resp = s
            .broker
            .client
            .post(&self.broker.token_endpoint)
            .header(header::CONTENT_TYPE, FORM)
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| format!("token endpoint: {e}"))?;
        let status = resp.status();
        let answer: Zeroizing<String> = Zeroizing::new(
            resp.text()
                .await
                .map_err(|e| format!("token endpoint: {e}"))?,
        );
        let tokens: TokenAnswer = serde_json::from_str(&answer).map_err(|_| {
            let err: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
            format!(
                "the token endpoint answered {status}: {}",
                err["error"].as_str().unwrap_or("no token")
            )
        })?;
        let id_token: EidIdToken = tokens
            .id_token
            .parse()
            .map_err(|e| format!("the ID token is not a JWT: {e}"))?;
        let issuer = IssuerUrl::new(self.broker.issuer.clone()).map_err(|e| e.to_string())?;
        let verifier: IdTokenVerifier<'_, openidconnect::core::CoreJsonWebKey> =
            IdTokenVerifier::new_public_client(
                ClientId::new(s.client_id.clone()),
                issuer,
                self.broker.jwks.clone(),
            )
            .set_allowed_algs([CoreJwsSigningAlgorithm::EcdsaP256Sha256]);
        let claims = id_token
            .claims(&verifier, &Nonce::new(login.nonce.clone()))
            .map_err(|e| format!("the ID token does not verify: {e}"))?;
        let sub = claims.subject().as_str().to_owned();
        let acr = claims
            .auth_context_ref()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_default();
        // The level asked for in the pushed request, not whatever came back.
        if !login.level.reached_by(&acr) {
            return Err(format!(
                "the ID token's acr is {acr:?}, below the level asked for ({})",
                login.level.acr()
            ));
        }
        let amr = claims
            .auth_method_refs()
            .map(|v| {
                v.iter()
                    .map(|a| a.as_str().to_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        // A hardware login has no request in the app: its receipt's hash
        // stands for it.
        let extra = claims.additional_claims();
        let request_id = extra
            .eid_request_id
            .clone()
            .unwrap_or_else(|| format!("receipt {}", extra.eid_receipt_sha256));

        // The access token gives the same subject at userinfo.
        let info: serde_json::Value = s
            .broker
            .client
            .get(&self.broker.userinfo_endpoint)
            .bearer_auth(&tokens.access_token)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("userinfo: {e}"))?
            .json()
            .await
            .map_err(|e| format!("userinfo: {e}"))?;
        if info["sub"].as_str() != Some(sub.as_str()) {
            return Err("userinfo names another subject than the ID token".into());
        }
        Ok(LoggedIn {
            sub,
            acr,
            amr,
            request_id,
        })
    }
}

/// The token endpoint's answer (the parts the bank uses), wiped when dropped.
#[derive(Deserialize, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
struct TokenAnswer {
    access_token: String,
    id_token: String,
}

/// A verified login.
struct LoggedIn {
    sub: String,
    acr: String,
    amr: String,
    request_id: String,
}

/// How a login came back to the bank.
enum Outcome {
    /// Verified: the person is logged in.
    LoggedIn(LoggedIn),
    /// The person refused (denied, or "this wasn't me").
    Refused,
    /// Unknown, used or missing `state`: not a login this browser started.
    UnknownState,
    /// The answer names another issuer (mix-up, RFC 9207).
    WrongIssuer,
    /// The broker answered an error, or the code did not give a verified login.
    Failed(String),
}

/// `GET /callback`: the broker's answer.
async fn callback(
    State(bank): State<Arc<Bank>>,
    Query(params): Query<HashMap<String, String>>,
    headers: header::HeaderMap,
) -> Response {
    let state = params.get("state").map(String::as_str);
    // Only the browser that started the login may finish it.
    let own = state.is_some_and(|s| login_cookie(&headers) == Some(s));
    let outcome = match bank.take_pending(state.filter(|_| own)) {
        None => Outcome::UnknownState,
        Some(_) if params.get("iss") != Some(&bank.broker.issuer) => Outcome::WrongIssuer,
        Some(login) => match (params.get("code"), params.get("error")) {
            (_, Some(e)) if e == "access_denied" => Outcome::Refused,
            (_, Some(e)) => Outcome::Failed(format!("the broker answered {e}")),
            (Some(code), None) => match bank.finish(code, &login).await {
                Ok(done) => Outcome::LoggedIn(done),
                Err(e) => Outcome::Failed(e),
            },
            (None, None) => Outcome::Failed("the answer has neither code nor error".into()),
        },
    };
    let mut response = outcome_page(outcome);
    response.headers_mut().append(
        header::SET_COOKIE,
        header::HeaderValue::from_static("eid_bank_login=; Path=/callback; Max-Age=0"),
    );
    response
}

/// The cookie that ties a login to the browser that started it.
const LOGIN_COOKIE: &str = "eid_bank_login";

/// The login cookie's value in `headers`, if sent.
fn login_cookie(headers: &header::HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == LOGIN_COOKIE)
        .map(|(_, v)| v)
}

fn outcome_page(outcome: Outcome) -> Response {
    match outcome {
        Outcome::LoggedIn(l) => Html(page(
            "Du er logget ind",
            &format!(
                "<h1 id=\"logged-in\">Du er logget ind</h1>\n\
                 <p>{BANK} har modtaget et bekræftet login fra eID.</p>\n<dl>\n\
                 <dt>Dit id hos banken (sub)</dt><dd id=\"sub\">{}</dd>\n\
                 <dt>Sikringsniveau (acr)</dt><dd id=\"acr\">{}</dd>\n\
                 <dt>Metode (amr)</dt><dd id=\"amr\">{}</dd>\n\
                 <dt>Kvitteringens anmodning</dt><dd id=\"request-id\">{}</dd>\n</dl>\n{}",
                escape(&l.sub),
                escape(&l.acr),
                escape(&l.amr),
                escape(&l.request_id),
                BACK_HOME
            ),
        ))
        .into_response(),
        Outcome::Refused => Html(page(
            "Login afvist",
            &format!(
                "<h1 id=\"denied\">Login afvist</h1>\n\
                 <p>Du afviste login i appen. Du er ikke logget ind.</p>\n{BACK_HOME}"
            ),
        ))
        .into_response(),
        Outcome::UnknownState => failure(
            StatusCode::BAD_REQUEST,
            "bad-state",
            "Ukendt login: svaret hører ikke til et login, denne bank har startet (state).",
        ),
        Outcome::WrongIssuer => failure(
            StatusCode::BAD_REQUEST,
            "wrong-issuer",
            "Svaret kommer ikke fra bankens eID-udbyder (iss).",
        ),
        Outcome::Failed(why) => failure(StatusCode::BAD_GATEWAY, "failed", &why),
    }
}

fn failure(status: StatusCode, id: &str, why: &str) -> Response {
    (
        status,
        Html(page(
            "Login mislykkedes",
            &format!(
                "<h1 id=\"{id}\">Login mislykkedes</h1>\n<p>{}</p>\n{BACK_HOME}",
                escape(why)
            ),
        )),
    )
        .into_response()
}

const BACK_HOME: &str = "<p><a id=\"home\" href=\"/\">Til forsiden</a></p>";
const FORM: &str = "application/x-www-form-urlencoded";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"da\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} – {BANK}</title>\
         <style>body{{font-family:sans-serif;max-width:40rem;margin:1rem auto;padding:0 1rem}}\
         dd{{overflow-wrap:anywhere;margin:0 0 .5rem}}button{{font-size:1.1rem;padding:.5rem 1rem}}</style>\
         </head><body>\n{body}\n</body></html>\n",
        escape(title)
    )
}

/// HTML-escapes text for element content and quoted attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// 32 random bytes, base64url (43 characters: also a valid PKCE verifier).
fn random_token(rng: &SystemRandom) -> Result<String, CliError> {
    let mut bytes = [0u8; 32];
    rng.fill(&mut bytes)
        .map_err(|_| crypto_error("no randomness"))?;
    Ok(B64URL.encode(bytes))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn crypto_error(what: &str) -> CliError {
    CliError::new(ErrorKind::Runtime, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_asked_at_high_accepts_only_high_and_substantial_accepts_both() {
        assert!(Level::High.reached_by(ACR_HIGH));
        assert!(!Level::High.reached_by(ACR_SUBSTANTIAL));
        assert!(Level::Substantial.reached_by(ACR_SUBSTANTIAL));
        assert!(Level::Substantial.reached_by(ACR_HIGH));
        for level in [Level::Substantial, Level::High] {
            assert!(!level.reached_by(""));
            assert!(!level.reached_by("https://data.gov.dk/concept/core/nsis/loa/Low"));
        }
    }

    #[test]
    fn escape_leaves_no_markup() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn a_client_assertion_verifies_with_the_registered_public_key() {
        use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
        let key = ClientKey::generate().unwrap();
        let jwt = key.assertion("eidoc_x", "https://127.0.0.1:1").unwrap();
        let (input, sig) = jwt.rsplit_once('.').unwrap();
        let jwk = key.public_jwk();
        let mut point = vec![4u8];
        point.extend(B64URL.decode(jwk.x.unwrap()).unwrap());
        point.extend(B64URL.decode(jwk.y.unwrap()).unwrap());
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
            .verify(input.as_bytes(), &B64URL.decode(sig).unwrap())
            .unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&B64URL.decode(input.split('.').nth(1).unwrap()).unwrap())
                .unwrap();
        assert_eq!(claims["iss"], "eidoc_x");
        assert_eq!(claims["sub"], "eidoc_x");
        assert_eq!(claims["aud"], "https://127.0.0.1:1");
        assert_eq!(claims["jti"].as_str().unwrap().len(), 43);
    }
}
