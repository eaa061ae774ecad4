//! The chip's step of the hosted login page (docs/login-page.md): after the
//! user ID with the method "chip", the page asks the browser for the chip
//! (`navigator.credentials.get` in `/oidc/static/chip.js`) and for the
//! chip's access code, and posts both. A right answer completes the login
//! in one store write with a server-signed hardware receipt
//! ([`crate::store::Store::complete_oidc_login_by_hardware`]), from which
//! the ID token's `acr` (NSIS High) and `amr` come.
//!
//! The page looks the same whatever the user ID: for an unknown or blocked
//! identity, or one without an active chip, it shows a stand-in challenge
//! that no ceremony backs, and the post fails like a wrong access code.
//! With the method "app and chip" the login page first waits for the app's
//! approval (the binding code, as for the app alone); only then does this
//! step open, for the same identity, and the login completes as
//! `app_chip` (`amr` `code_app chip hwk mfa`).

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use eid_protocol::messages::HardwareReceiptBody;
use eid_protocol::wire::SignedHardwareReceipt;
use subtle::ConstantTimeEq;

use super::login::{
    Failure, Frame, PageRefusals, Refusal, bound, csrf_token, html, login_path, see_other,
};
use super::texts::Lang;
use crate::api::AppState;
use crate::chip::assertion::{OnSuccess, UseOutcome, use_chip};
use crate::chip::confirm::start_assertion;
use crate::chip::{CEREMONY_MS, ChipError, parse_ceremony_id, relying_party};
use crate::oidc::method::LoginMethod;
use crate::oidc::{CODE_LIFETIME_MS, handle_sha256, new_handle};
use crate::store::{CeremonyPurpose, Chip, ChipState, Identity, OidcLogin};
use eid_protocol::events::SecurityEventKind;
use eid_protocol::wire::RequestStatus;

/// The longest browser answer taken (a security key's JSON is ~1 KiB).
const MAX_ANSWER_LEN: usize = 16 * 1024;

struct Words {
    heading: &'static str,
    intro: &'static str,
    access_code: &'static str,
    submit: &'static str,
    wrong: &'static str,
    locked: &'static str,
    blocked: &'static str,
    needs_script: &'static str,
    other_method: &'static str,
}

const DA: Words = Words {
    heading: "Log ind med chip",
    intro: "Skriv chippens adgangskode, tryk på knappen, og rør chippen, når browseren beder om det.",
    access_code: "Adgangskode til chippen",
    submit: "Log ind",
    wrong: "Chippen eller adgangskoden blev ikke godkendt. Prøv igen.",
    locked: "For mange forkerte forsøg. Chippen er låst et stykke tid.",
    blocked: "Chippen er spærret. Du har fået besked.",
    needs_script: "Chippen kræver JavaScript i browseren.",
    other_method: "Vælg en anden måde at logge ind på",
};

const EN: Words = Words {
    heading: "Log in with a chip",
    intro: "Type the chip's access code, press the button, and touch the chip when the browser asks.",
    access_code: "Access code for the chip",
    submit: "Log in",
    wrong: "The chip or the access code was not accepted. Please try again.",
    locked: "Too many wrong tries. The chip is locked for a while.",
    blocked: "The chip is blocked. You were told.",
    needs_script: "The chip needs JavaScript in the browser.",
    other_method: "Choose another way to log in",
};

fn words(lang: Lang) -> &'static Words {
    match lang {
        Lang::Da => &DA,
        _ => &EN,
    }
}

#[derive(Template)]
#[template(path = "login_chip.html")]
struct ChipLoginPage<'a> {
    page: Frame,
    c: &'static Words,
    csrf: String,
    ceremony: String,
    options: String,
    message: Option<&'a str>,
    again_href: String,
}

fn failed(lang: Lang) -> impl Fn(ChipError) -> Failure {
    move |e| {
        tracing::error!(error = %e, "login page: chip step failed");
        Failure(lang, Refusal::Internal)
    }
}

/// The identity of the user ID typed and its active chip, if both are
/// usable.
async fn usable_chip(
    state: &AppState,
    login: &OidcLogin,
) -> Result<Option<(Identity, Chip)>, ChipError> {
    let Some(identity_id) = login.hardware_identity_id else {
        return Ok(None);
    };
    let Some(identity) = state.store.identity(identity_id).await? else {
        return Ok(None);
    };
    if identity.blocked {
        return Ok(None);
    }
    let chip = state
        .store
        .chips_of(identity.id)
        .await?
        .into_iter()
        .find(|c| c.state == ChipState::Active);
    Ok(chip.map(|c| (identity, c)))
}

/// Domain tag of the key the stand-in's made-up credential ids are derived
/// under.
const STAND_IN_KEY_DOMAIN: &[u8] = b"eid-authenticator/v1/oidc-chip-stand-in-key";

/// The made-up credential id a stand-in challenge names for `identity` (the
/// user ID's, or the stand-in identity of an unknown user ID, see
/// `super::login`): the same every time, as a real chip's is, so that two
/// page loads do not tell a user ID with a chip from one without. 32 bytes,
/// HMAC-SHA256 under a key derived from the server's signing key with its
/// own domain tag (as the self-service cookies' key).
fn stand_in_credential_id(state: &AppState, identity: eid_protocol::IdentityId) -> String {
    let mut keyed = zeroize::Zeroizing::new(STAND_IN_KEY_DOMAIN.to_vec());
    keyed.extend_from_slice(state.signing_key.pkcs8());
    let derived = zeroize::Zeroizing::new(eid_protocol::sha256(&keyed));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &*derived);
    B64.encode(ring::hmac::sign(&key, &identity.0))
}

/// A challenge for the login: the chip's own, or a stand-in that looks the
/// same and that no ceremony backs.
async fn challenge(
    state: &AppState,
    login: &OidcLogin,
    origin: &str,
) -> Result<(String, String), ChipError> {
    if let Some((_, chip)) = usable_chip(state, login).await? {
        let started =
            start_assertion(state, &chip, CeremonyPurpose::Login, login.id.0, origin).await?;
        return Ok((started.ceremony_id, started.options_json));
    }
    // The same origin check and durable write as a real challenge's.
    relying_party(origin)?;
    super::stand_in_write(state, state.now_ms()).await?;
    let host = webauthn_rs::prelude::Url::parse(origin)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .ok_or(ChipError::Origin)?;
    let options = serde_json::json!({
        "challenge": B64.encode(eid_protocol::crypto::random_array::<32>()),
        "timeout": CEREMONY_MS,
        "rpId": host,
        "allowCredentials": [{
            "type": "public-key",
            "id": match login.hardware_identity_id {
                Some(identity) => stand_in_credential_id(state, identity),
                None => B64.encode(eid_protocol::crypto::random_array::<32>()),
            },
        }],
        "userVerification": "discouraged",
        "hints": ["security-key"],
    });
    Ok((
        hex::encode(eid_protocol::crypto::random_array::<16>()),
        options.to_string(),
    ))
}

async fn chip_page(
    state: &AppState,
    login: &OidcLogin,
    secret: &str,
    lang: Lang,
    origin: &str,
    status: StatusCode,
    message: Option<&str>,
) -> Result<Response, Failure> {
    let (ceremony, options) = challenge(state, login, origin)
        .await
        .map_err(failed(lang))?;
    let path = login_path(login.id);
    Ok(html(
        status,
        ChipLoginPage {
            page: Frame::new(lang, &format!("{path}/chip")),
            c: words(lang),
            csrf: csrf_token(secret),
            ceremony,
            options,
            message,
            again_href: format!("{path}?again=1"),
        },
    ))
}

/// The check every request of this step makes: the chip's step is for
/// logins whose chosen method is the chip, or the app and the chip once the
/// app approved for the same identity; anything else goes back to the
/// login's page (which shows where it stands).
async fn not_chip_step(state: &AppState, login: &OidcLogin) -> Result<Option<Response>, ChipError> {
    let open = match login.method {
        LoginMethod::Chip => true,
        LoginMethod::AppAndChip => app_approved(state, login).await?,
        _ => false,
    };
    Ok((!open).then(|| see_other(&login_path(login.id))))
}

/// Whether the login's app request is approved, by the identity whose chip
/// the step asks for.
async fn app_approved(state: &AppState, login: &OidcLogin) -> Result<bool, ChipError> {
    let (Some(request_id), Some(identity_id)) = (login.request_id, login.hardware_identity_id)
    else {
        return Ok(false);
    };
    let Some(request) = state.store.request(request_id).await? else {
        return Ok(false);
    };
    Ok(request.status_at(state.now_ms()) == RequestStatus::Approved
        && request.envelope.identity_id == identity_id)
}

/// `GET /oidc/login/{login_id}/chip`: the chip's challenge and the access
/// code field.
#[utoipa::path(get, path = "/oidc/login/{login_id}/chip", tag = "oidc login page",
    params(("login_id" = String, Path, description = "32 hex digits")),
    responses(
        (status = 200, description = "the chip step: a WebAuthn challenge (in data-options) and the access-code field", content_type = "text/html"),
        (status = 303, description = "back to the login page when the login's method is not the chip (or the app and the chip's app step is not approved)", headers(("Location" = String))),
        PageRefusals))]
pub(crate) async fn page(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let (login, secret, lang) = bound(&state, &raw_id, &[], &headers).await?;
    if let Some(back) = not_chip_step(&state, &login).await.map_err(failed(lang))? {
        return Ok(back);
    }
    let origin = crate::api::oidc_issuer(&state, &uri, &headers)
        .map_err(|_| Failure(lang, Refusal::BadLink))?;
    chip_page(&state, &login, &secret, lang, &origin, StatusCode::OK, None).await
}

/// The chip step's form, for the OpenAPI document.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Read by the document only.
pub(crate) struct ChipFormDoc {
    /// The page's CSRF token.
    csrf: String,
    /// The ceremony id from the page (32 hex digits).
    ceremony: String,
    /// The browser's WebAuthn assertion as JSON (binary fields base64url).
    credential: String,
    /// The chip's access code.
    access_code: String,
}

/// The posted form's fields, each at most once.
fn form(body: &[u8]) -> Option<Vec<(String, String)>> {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    for (i, (k, _)) in pairs.iter().enumerate() {
        if pairs[..i].iter().any(|(seen, _)| seen == k) {
            return None;
        }
    }
    Some(pairs)
}

fn one<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `POST /oidc/login/{login_id}/chip`: the assertion and the access code;
/// right, back to the service provider with the code.
#[utoipa::path(post, path = "/oidc/login/{login_id}/chip", tag = "oidc login page",
    params(("login_id" = String, Path, description = "32 hex digits")),
    request_body(content = ChipFormDoc, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "logged in: a page that takes the browser back to the redirect URI with code, state and iss", content_type = "text/html"),
        (status = 303, description = "back to the login page when the login's method is not the chip", headers(("Location" = String))),
        (status = 403, description = "the chip is blocked (a possible clone), or the form's CSRF token is wrong", content_type = "text/html"),
        (status = 422, description = "the chip or the access code was not accepted; a fresh challenge", content_type = "text/html"),
        (status = 413, description = "payload_too_large", body = eid_protocol::wire::ErrorBody),
        (status = 429, description = "the chip is locked after wrong access codes, or rate_limited"),
        PageRefusals))]
pub(crate) async fn post(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Failure> {
    let (login, secret, lang) = bound(&state, &raw_id, &[], &headers).await?;
    let c = words(lang);
    let origin = crate::api::oidc_issuer(&state, &uri, &headers)
        .map_err(|_| Failure(lang, Refusal::BadLink))?;
    let pairs = form(&body).unwrap_or_default();
    let csrf_ok = one(&pairs, "csrf")
        .is_some_and(|t| bool::from(t.as_bytes().ct_eq(csrf_token(&secret).as_bytes())));
    if !csrf_ok {
        return chip_page(
            &state,
            &login,
            &secret,
            lang,
            &origin,
            StatusCode::FORBIDDEN,
            Some(c.wrong),
        )
        .await;
    }
    if let Some(back) = not_chip_step(&state, &login).await.map_err(failed(lang))? {
        return Ok(back);
    }
    let refuse = |status: StatusCode, message: &'static str| {
        chip_page(
            &state,
            &login,
            &secret,
            lang,
            &origin,
            status,
            Some(message),
        )
    };
    let ceremony_id = one(&pairs, "ceremony").and_then(parse_ceremony_id);
    let answer = one(&pairs, "credential").filter(|a| !a.is_empty() && a.len() <= MAX_ANSWER_LEN);
    let (Some(ceremony_id), Some(answer)) = (ceremony_id, answer) else {
        return refuse(StatusCode::UNPROCESSABLE_ENTITY, c.needs_script).await;
    };
    let access_code = one(&pairs, "access_code").unwrap_or_default();
    let now = state.now_ms();
    let ceremony = state
        .store
        .take_chip_ceremony(ceremony_id, now)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "login page: store failed");
            Failure(lang, Refusal::Internal)
        })?;
    let usable = usable_chip(&state, &login).await.map_err(failed(lang))?;
    let (Some(ceremony), Some((identity, chip))) = (ceremony, usable) else {
        return refuse(StatusCode::UNPROCESSABLE_ENTITY, c.wrong).await;
    };
    if ceremony.purpose != CeremonyPurpose::Login
        || ceremony.subject != Some(login.id.0)
        || ceremony.identity_id != identity.id
    {
        return refuse(StatusCode::UNPROCESSABLE_ENTITY, c.wrong).await;
    }
    let on_success = OnSuccess {
        state: ChipState::Active,
        kind: SecurityEventKind::ChipUsed,
    };
    let used = use_chip(
        &state,
        chip,
        &ceremony,
        answer,
        access_code,
        &origin,
        on_success,
    )
    .await
    .map_err(failed(lang))?;
    let chip = match used {
        UseOutcome::Accepted(chip) => chip,
        UseOutcome::LockedOut { .. }
        | UseOutcome::WrongAccessCode {
            locked_until_ms: Some(_),
        } => {
            return refuse(StatusCode::TOO_MANY_REQUESTS, c.locked).await;
        }
        UseOutcome::CloneSuspected => return refuse(StatusCode::FORBIDDEN, c.blocked).await,
        UseOutcome::WrongAccessCode { .. } | UseOutcome::BadAssertion | UseOutcome::Concurrent => {
            return refuse(StatusCode::UNPROCESSABLE_ENTITY, c.wrong).await;
        }
    };
    complete(&state, &login, &identity, &chip, &uri, &headers, lang).await
}

/// Completes the login: the receipt names the method, the chip (SHA-256 of
/// its credential id) and the login; the code goes back by the page that
/// ends a login (a redirect of this form's post would break the pages'
/// `form-action 'self'` in a browser).
async fn complete(
    state: &AppState,
    login: &OidcLogin,
    identity: &Identity,
    chip: &Chip,
    uri: &Uri,
    headers: &HeaderMap,
    lang: Lang,
) -> Result<Response, Failure> {
    let now = state.now_ms();
    // Read before the login completes: a failed read after it would leave
    // the person a completed login with no way back to the provider.
    let provider = super::login::provider_name(state, login)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "login page: store failed");
            Failure(lang, Refusal::Internal)
        })?;
    let client = crate::api::oidc_client_of(state, &login.client_id)
        .await
        .map_err(|_| Failure(lang, Refusal::Internal))?
        .ok_or(Failure(lang, Refusal::BadLink))?;
    let receipt = HardwareReceiptBody {
        login_id: login.id.0,
        identity_id: identity.id,
        // `Chip`, or `AppAndChip` (whose app approval the step checked).
        method: login.method.as_str().to_owned(),
        authenticator_sha256: chip.credential_id_sha256,
        service_provider_id: client.service_provider_id,
        completed_at_ms: now,
    };
    let signature = state.signing_key.sign(&receipt.signing_bytes());
    let signed = SignedHardwareReceipt { receipt, signature };
    let code = new_handle();
    let done = state
        .store
        .complete_oidc_login_by_hardware(
            login.id,
            signed,
            handle_sha256(&code),
            now.saturating_add(CODE_LIFETIME_MS),
        )
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "login page: store failed");
            Failure(lang, Refusal::Internal)
        })?;
    if !done {
        return Err(Failure(lang, Refusal::AlreadyDone));
    }
    super::code_login::back_to_provider(state, login, (uri, headers), lang, &code, &provider)
}
