//! The self-service pages (docs/self-service.md): the person signs in with
//! their user ID and an approval in the app, sees their identity (user ID,
//! masked contact data, authenticators, open changes), and changes their
//! phone number, e-mail address or user ID, each change through the
//! self-service API's own functions (`crate::api::self_service`), so the
//! rules and the notifications are exactly the API's: a fresh self-service
//! login per change, two for a phone or e-mail change at least
//! `self_service_gap_secs` apart, the old and the new contact told of every
//! attempt.
//!
//! Sign-in: the user ID (never a PIN), then a self-service login request
//! (kind `self_service`, provider "eID Selvbetjening") bound to this page by
//! a rotating channel-binding code, shown with its QR like the OIDC login
//! page. An unknown or blocked user ID gets a stand-in code that no app
//! will ask for, so the page is no user-ID oracle. The approval opens a
//! session of [`SESSION_MS`] from the time of the decision.
//!
//! The session lives in the store, not in a table of its own: the browser
//! holds a sealed cookie ([`token`]) naming its sign-in request, and the
//! request's decision (stored, so it survives a restart) says who approved
//! and when. Signing out forgets the cookie; a copied cookie stays usable
//! until the session's end, as any session cookie would.
//!
//! Every page has the login pages' headers (strict CSP, no framing, no
//! referrer, no caching); every form carries a CSRF token derived from the
//! cookie; cookies are `__Host-`, `Secure`, `HttpOnly`, `SameSite=Strict`;
//! URLs carry no user data; the pages work without JavaScript.

mod account;
mod change_login;
mod chip;
pub(crate) mod code_device;
mod entry;
mod token;
mod when;

use std::net::IpAddr;

use askama::Template;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use eid_protocol::binding::{BindingSecret, QR_PREFIX, StoredBinding};
use eid_protocol::wire::{ChangeState, ContactChannel, ErrorCode, RequestStatus, SelfServiceStep};
use eid_protocol::{
    AuthenticatorId, ChangeId, IdentityId, RequestId, RequestKind, SELF_SERVICE_PROVIDER_ID,
    SELF_SERVICE_PROVIDER_NAME,
};
use serde::Serialize;
use subtle::ConstantTimeEq;

use self::token::{Purpose, Token};
use super::login::{Frame, countdown, html, param, query_params, see_other, shown_code};
use super::texts::{Lang, SelfServiceWords, Words};
use super::{cookie, qr};
use crate::api::rp::{Created, create_for_provider};
use crate::api::self_service::{confirm, own_change, start_contact, start_user_id};
use crate::api::sources::StartKind;
use crate::api::{AppState, Source};
use crate::contact::{mask_email, mask_phone};
use crate::store::{AuthenticatorState, CancelChangeResult, ChangeKind, Identity, StoreError};
use crate::userid;

pub(crate) use account::{account, cancel, confirm_change, email, phone, user_id};
pub(crate) use change_login::{change_page, change_qr, change_status};
pub(crate) use chip::{
    PATH_CHIP, PATH_CHIP_CONFIRM, PATH_CHIP_REGISTER, chip, chip_confirm, chip_register,
};
pub(crate) use code_device::{
    PATH_CODE_DEVICE_APP, PATH_CODE_DEVICE_APP_QR, PATH_CODE_DEVICE_APP_STATUS, by_app_page,
    by_app_qr, by_app_start, by_app_status,
};
pub(crate) use entry::{page, sign_in, sign_in_qr, sign_in_status, sign_out};

/// How long a session lasts after the sign-in's approval.
pub(crate) const SESSION_MS: u64 = 15 * 60 * 1000;

/// The pages' paths.
pub(crate) const PATH: &str = "/self-service";
pub(crate) const PATH_SIGN_IN: &str = "/self-service/sign-in";
pub(crate) const PATH_SIGN_IN_STATUS: &str = "/self-service/sign-in/status";
pub(crate) const PATH_SIGN_IN_QR: &str = "/self-service/sign-in/qr.svg";
pub(crate) const PATH_ACCOUNT: &str = "/self-service/account";
pub(crate) const PATH_CHANGE: &str = "/self-service/change";
pub(crate) const PATH_CHANGE_STATUS: &str = "/self-service/change/status";
pub(crate) const PATH_CHANGE_QR: &str = "/self-service/change/qr.svg";
pub(crate) const PATH_PHONE: &str = "/self-service/phone";
pub(crate) const PATH_EMAIL: &str = "/self-service/email";
pub(crate) const PATH_USER_ID: &str = "/self-service/user-id";
pub(crate) const PATH_CONFIRM: &str = "/self-service/confirm";
pub(crate) const PATH_CANCEL: &str = "/self-service/cancel";
pub(crate) const PATH_SIGN_OUT: &str = "/self-service/sign-out";

/// The random value behind the sign-in form's CSRF token (before any
/// request exists).
const FORM_COOKIE: &str = "__Host-eid_ss_form";
/// The sealed sign-in (and so the session).
const SESSION_COOKIE: &str = "__Host-eid_ss";
/// The sealed login of the change started on the pages.
const CHANGE_COOKIE: &str = "__Host-eid_ss_change";
/// A language picked with the switch link.
const LANG_COOKIE: &str = "__Host-eid_ss_lang";
/// The longest user ID the form takes (as the login page).
const MAX_USER_ID_LEN: usize = 64;
/// The most of a refused value the form shows again.
const MAX_VALUE_LEN: usize = 254;
/// Domain tags of the values derived from a cookie.
const CSRF_DOMAIN: &[u8] = b"eid-authenticator/v1/self-service-csrf";
const STAND_IN_DOMAIN: &[u8] = b"eid-authenticator/v1/self-service-stand-in";
/// The sign-in request's text in the app, under the app's own heading for a
/// self-service login (a text may neither name the eID nor repeat the app's
/// words, `eid_protocol::text`).
const SIGN_IN_TEXT: &str = "Se og ret dine oplysninger på nettet";

// ------------------------------------------------------------------ frame

#[derive(Template)]
#[template(path = "self_service_user_id.html")]
struct UserIdPage<'a> {
    page: Frame,
    csrf: String,
    user_id: &'a str,
    error: Option<&'a str>,
    notice: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "self_service_waiting.html")]
struct WaitingPage {
    page: Frame,
    what: String,
    status_url: &'static str,
    qr_url: &'static str,
    code: String,
    step: u64,
    countdown: String,
    again_href: &'static str,
    again_label: &'static str,
}

#[derive(Template)]
#[template(path = "self_service_outcome.html")]
struct OutcomePage<'a> {
    page: Frame,
    heading: &'a str,
    message: &'a str,
    link_href: &'static str,
    link_label: &'a str,
}

// --------------------------------------------------------------- refusals

/// Why a page cannot be shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No session or sign-in of this browser (another browser, or cookies
    /// lost): 403.
    OtherBrowser,
    /// The session's time is over, or its identity was blocked: sign in again.
    SessionOver,
    /// A form without its CSRF token, or not a form: nothing was done.
    BadForm,
    /// The store failed.
    Internal,
}

/// An error page in a language.
pub(crate) struct Failure(Lang, Refusal);

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "self-service page: store failed");
        Failure(Lang::Da, Refusal::Internal)
    }
}

impl Failure {
    fn with(self, lang: Lang) -> Self {
        Failure(lang, self.1)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let Failure(lang, refusal) = self;
        let (w, s) = (lang.words(), lang.self_service());
        let (status, heading, message, link) = match refusal {
            Refusal::OtherBrowser => (
                StatusCode::FORBIDDEN,
                w.error_heading,
                s.other_browser,
                s.sign_in_again,
            ),
            Refusal::SessionOver => (
                StatusCode::UNAUTHORIZED,
                s.session_over_heading,
                s.session_over,
                s.sign_in_again,
            ),
            Refusal::BadForm => (
                StatusCode::BAD_REQUEST,
                w.error_heading,
                w.bad_form,
                s.to_overview,
            ),
            Refusal::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                w.error_heading,
                w.busy,
                s.sign_in_again,
            ),
        };
        let href = if refusal == Refusal::BadForm {
            PATH_ACCOUNT
        } else {
            PATH
        };
        let mut response = html(
            status,
            OutcomePage {
                page: Frame::new(lang, PATH),
                heading,
                message,
                link_href: href,
                link_label: link,
            },
        );
        if refusal == Refusal::SessionOver {
            clear(&mut response, SESSION_COOKIE);
            clear(&mut response, CHANGE_COOKIE);
        }
        response
    }
}

// ---------------------------------------------------------------- helpers

/// The page's language: `?lang=`, then the one picked earlier on this
/// browser, then the browser's `Accept-Language`, then Danish.
fn lang_of(query: &[(String, String)], headers: &HeaderMap) -> Lang {
    param(query, "lang")
        .and_then(Lang::parse)
        .or_else(|| cookie(headers, LANG_COOKIE).and_then(Lang::parse))
        .or_else(|| {
            headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .and_then(Lang::from_accept_language)
        })
        .unwrap_or(Lang::Da)
}

fn set_cookie(response: &mut Response, name: &str, value: &str, max_age_secs: Option<u64>) {
    let age = max_age_secs
        .map(|s| format!("; Max-Age={s}"))
        .unwrap_or_default();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Secure; HttpOnly; SameSite=Strict{age}"
    )) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
}

fn clear(response: &mut Response, name: &str) {
    set_cookie(response, name, "", Some(0));
}

/// Remembers a language picked with the switch link.
fn with_lang(mut response: Response, query: &[(String, String)]) -> Response {
    if let Some(lang) = param(query, "lang").and_then(Lang::parse) {
        set_cookie(
            &mut response,
            LANG_COOKIE,
            lang.tag(),
            Some(365 * 24 * 3600),
        );
    }
    response
}

/// The CSRF token of the forms of a browser holding cookie value `secret`.
fn csrf_token(secret: &str) -> String {
    let mut input = CSRF_DOMAIN.to_vec();
    input.extend_from_slice(secret.as_bytes());
    hex::encode(eid_protocol::sha256(&input))
}

fn csrf_ok(form: &Form, secret: &str) -> bool {
    form.one("csrf")
        .is_some_and(|c| bool::from(c.as_bytes().ct_eq(csrf_token(secret).as_bytes())))
}

/// A posted form: each field at most once, or it is not a form at all.
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(headers: &HeaderMap, body: &[u8]) -> Option<Form> {
        let declared = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if !declared {
            return None;
        }
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        for (i, (k, _)) in pairs.iter().enumerate() {
            if pairs[..i].iter().any(|(seen, _)| seen == k) {
                return None;
            }
        }
        Some(Form(pairs))
    }

    fn one(&self, name: &str) -> Option<&str> {
        param(&self.0, name)
    }
}

/// The rotating binding secret of a stored request, if it has one.
fn rotating(binding: Option<&str>) -> Option<BindingSecret> {
    match StoredBinding::from_stored(binding?).ok()? {
        StoredBinding::Rotating(secret) => Some(secret),
        StoredBinding::Static(_) => None,
    }
}

/// The static binding code of a stored request (a change's login), if any.
fn fixed(binding: Option<&str>) -> Option<String> {
    match StoredBinding::from_stored(binding?).ok()? {
        StoredBinding::Static(code) => Some(code),
        StoredBinding::Rotating(_) => None,
    }
}

/// The secret whose codes stand in for an unknown user ID's sign-in: fixed
/// per token, so the page shows steady codes like a real one.
fn stand_in_secret(token: &Token) -> BindingSecret {
    let mut input = STAND_IN_DOMAIN.to_vec();
    input.extend_from_slice(&token.nonce);
    input.extend_from_slice(token.request_id.as_bytes());
    BindingSecret::from_bytes(eid_protocol::sha256(&input))
}

/// A static code as the page shows it ("ABCD EFGH" for eight letters).
fn grouped(code: &str) -> String {
    if code.len() == 8 && code.is_ascii() {
        let (a, b) = code.split_at(4);
        format!("{a} {b}")
    } else {
        code.to_owned()
    }
}

// ---------------------------------------------------------------- sign-in

/// Where this browser's sign-in stands.
enum SignIn {
    /// No sign-in (or one this server did not seal).
    None,
    /// Waiting in the app; shows this secret's codes until `expires_at_ms`.
    Waiting {
        secret: BindingSecret,
        expires_at_ms: u64,
    },
    /// Signed in until `until_ms`.
    Session(Session),
    /// The person refused in the app.
    Refused { fraud: bool },
    /// The request lapsed or was replaced: sign in again.
    Expired,
    /// The session's time is over.
    Over,
}

/// A live session.
struct Session {
    /// The sign-in request whose approval opened it.
    request_id: RequestId,
    identity_id: IdentityId,
    /// The authenticator that approved the sign-in (a cancel is recorded
    /// as its act, as a cancel from the app is).
    authenticator_id: AuthenticatorId,
    until_ms: u64,
    /// The cookie value (the forms' CSRF token is derived from it).
    cookie: String,
}

async fn sign_in_of(state: &AppState, headers: &HeaderMap, now: u64) -> Result<SignIn, StoreError> {
    let Some(sealed) = cookie(headers, SESSION_COOKIE) else {
        return Ok(SignIn::None);
    };
    let Some(token) = token::open(state, Purpose::SignIn, sealed) else {
        return Ok(SignIn::None);
    };
    let lifetime = state.config.request_lifetime_secs.saturating_mul(1000);
    let Some(request) = state.store.request(token.request_id).await? else {
        // The stand-in of an unknown or blocked user ID: waits, then lapses.
        let expires_at_ms = token.issued_at_ms.saturating_add(lifetime);
        if now >= expires_at_ms {
            return Ok(SignIn::Expired);
        }
        return Ok(SignIn::Waiting {
            secret: stand_in_secret(&token),
            expires_at_ms,
        });
    };
    let e = &request.envelope;
    if e.kind != RequestKind::SelfService || e.service_provider_id != SELF_SERVICE_PROVIDER_ID {
        return Ok(SignIn::None);
    }
    Ok(match request.status_at(now) {
        RequestStatus::Pending => match rotating(request.binding_code.as_deref()) {
            Some(secret) => SignIn::Waiting {
                secret,
                expires_at_ms: e.expires_at_ms,
            },
            None => SignIn::Expired,
        },
        RequestStatus::Approved => match &request.decision {
            Some(d) => {
                let until_ms = d.decided_at_ms.saturating_add(SESSION_MS);
                if now >= until_ms
                    || state
                        .store
                        .nonce_seen(signed_out_marker(token.request_id))
                        .await?
                {
                    SignIn::Over
                } else {
                    SignIn::Session(Session {
                        request_id: token.request_id,
                        identity_id: e.identity_id,
                        authenticator_id: d.authenticator_id,
                        until_ms,
                        cookie: sealed.to_owned(),
                    })
                }
            }
            None => SignIn::Expired,
        },
        RequestStatus::Denied => SignIn::Refused { fraud: false },
        RequestStatus::FraudReported => SignIn::Refused { fraud: true },
        _ => SignIn::Expired,
    })
}

/// Domain tag of the mark a sign-out leaves.
const SIGNED_OUT_DOMAIN: &[u8] = b"eid-authenticator/v1/self-service-signed-out";

/// The nonce a sign-out records for the sign-in request `request_id`, kept
/// until the session would have ended: the cookie is sealed, not stored, so
/// a copy of it would otherwise open the session again until its end.
fn signed_out_marker(request_id: RequestId) -> eid_protocol::Nonce16 {
    let mut input = SIGNED_OUT_DOMAIN.to_vec();
    input.extend_from_slice(request_id.as_bytes());
    let digest = eid_protocol::sha256(&input);
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    eid_protocol::Nonce16(out)
}

/// Ends the session `session` for every copy of its cookie.
async fn end_session(state: &AppState, session: &Session) -> Result<(), StoreError> {
    state
        .store
        .use_nonce(signed_out_marker(session.request_id), session.until_ms)
        .await?;
    Ok(())
}

/// The live session of this browser with its identity, or why not.
async fn session(
    state: &AppState,
    headers: &HeaderMap,
    lang: Lang,
) -> Result<(Session, Identity), Failure> {
    let now = state.now_ms();
    let signed = sign_in_of(state, headers, now)
        .await
        .map_err(|e| Failure::from(e).with(lang))?;
    let session = match signed {
        SignIn::Session(s) => s,
        SignIn::Over => return Err(Failure(lang, Refusal::SessionOver)),
        _ => return Err(Failure(lang, Refusal::OtherBrowser)),
    };
    let identity = state
        .store
        .identity(session.identity_id)
        .await
        .map_err(|e| Failure::from(e).with(lang))?;
    match identity {
        // A block ends the session at once.
        Some(identity) if !identity.blocked => Ok((session, identity)),
        _ => Err(Failure(lang, Refusal::SessionOver)),
    }
}

fn waiting_page(
    lang: Lang,
    what: String,
    (status_url, qr_url): (&'static str, &'static str),
    (code, step): (String, u64),
    countdown: String,
    (again_href, again_label): (&'static str, &'static str),
) -> Response {
    html(
        StatusCode::OK,
        WaitingPage {
            page: Frame::new(
                lang,
                match status_url {
                    PATH_SIGN_IN_STATUS => PATH,
                    PATH_CODE_DEVICE_APP_STATUS => PATH_CODE_DEVICE_APP,
                    _ => PATH_CHANGE,
                },
            ),
            what,
            status_url,
            qr_url,
            code,
            step,
            countdown,
            again_href,
            again_label,
        },
    )
}

/// The status the page's script (`login.js`, shared with the login page)
/// reads every second.
#[derive(Debug, Serialize)]
struct Status {
    /// `waiting`, `approved`, `refused`, `expired`.
    state: &'static str,
    /// The sentence for the `aria-live` status line.
    message: &'static str,
    /// The code shown now (empty unless waiting).
    code: String,
    /// Its step, so the script fetches a new QR only when it changed.
    step: u64,
    /// Time left, `m:ss`.
    countdown: String,
    /// Where to go now, when the page must change.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<&'static str>,
}

/// The status while a rotating code is shown: the code of this moment.
fn waiting(w: &'static Words, secret: &BindingSecret, now: u64, expires_at_ms: u64) -> Status {
    let (step, code) = shown_code(secret, now);
    Status {
        state: "waiting",
        message: w.waiting,
        code,
        step,
        countdown: countdown(now, expires_at_ms),
        next: None,
    }
}

fn moving_on(state: &'static str, message: &'static str, next: &'static str) -> Status {
    Status {
        state,
        message,
        code: String::new(),
        step: 0,
        countdown: "0:00".into(),
        next: Some(next),
    }
}

fn svg(payload: &str) -> Result<Response, StatusCode> {
    let svg = qr::svg(payload).ok_or(StatusCode::INTERNAL_SERVER_ERROR)?;
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_static_code_reads_in_fours() {
        assert_eq!(grouped("ABCDEFGH"), "ABCD EFGH");
        assert_eq!(grouped("ABC"), "ABC");
    }

    #[test]
    fn the_csrf_token_depends_on_the_cookie() {
        assert_ne!(csrf_token("a"), csrf_token("b"));
        assert_eq!(csrf_token("a"), csrf_token("a"));
    }

    #[test]
    fn a_form_takes_each_field_once_and_only_as_a_form() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        let f = Form::parse(&h, b"csrf=x&new_value=%2B45").unwrap();
        assert_eq!(f.one("new_value"), Some("+45"));
        assert!(Form::parse(&h, b"csrf=x&csrf=y").is_none());
        assert!(Form::parse(&HeaderMap::new(), b"csrf=x").is_none());
    }
}
