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
use super::login::{countdown, html, param, query_params, see_other, shown_code};
use super::texts::{Lang, SelfServiceWords, Words};
use super::{cookie, qr};
use crate::api::rp::{Created, create_for_provider};
use crate::api::self_service::{confirm, own_change, start_contact, start_user_id};
use crate::api::sources::StartKind;
use crate::api::{AppState, Source};
use crate::contact::{mask_email, mask_phone};
use crate::store::{AuthenticatorState, CancelChangeResult, ChangeKind, Identity, StoreError};
use crate::userid;

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

/// What every self-service page has around its content.
struct Frame {
    lang: &'static str,
    w: &'static Words,
    s: &'static SelfServiceWords,
    switch_href: String,
    other_lang: &'static str,
    other_name: &'static str,
}

impl Frame {
    fn new(lang: Lang, path: &str) -> Self {
        let other = lang.other();
        Self {
            lang: lang.tag(),
            w: lang.words(),
            s: lang.self_service(),
            switch_href: format!("{path}?lang={}", other.tag()),
            other_lang: other.tag(),
            other_name: other.words().language_name,
        }
    }
}

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

/// One authenticator as the overview shows it (no keys).
struct ShownAuthenticator {
    created: String,
    state: &'static str,
}

/// One open change as the overview shows it.
struct ShownChange {
    id: String,
    what: &'static str,
    value: String,
    state: &'static str,
    state_text: &'static str,
    earliest: Option<String>,
    can_confirm: bool,
}

#[derive(Template)]
#[template(path = "self_service_account.html")]
struct AccountPage<'a> {
    page: Frame,
    csrf: String,
    message: Option<&'a str>,
    user_id: &'a str,
    phone: String,
    email: String,
    session_left: String,
    authenticators: Vec<ShownAuthenticator>,
    changes: Vec<ShownChange>,
    new_phone: &'a str,
    new_email: &'a str,
    new_user_id: &'a str,
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
                if now >= until_ms {
                    SignIn::Over
                } else {
                    SignIn::Session(Session {
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

fn user_id_page(
    lang: Lang,
    status: StatusCode,
    secret: &str,
    typed: &str,
    error: Option<&str>,
    notice: Option<&str>,
) -> Response {
    html(
        status,
        UserIdPage {
            page: Frame::new(lang, PATH),
            csrf: csrf_token(secret),
            user_id: typed,
            error,
            notice,
        },
    )
}

/// The sign-in form, with a fresh form cookie when the browser has none.
fn sign_in_form(
    lang: Lang,
    headers: &HeaderMap,
    status: StatusCode,
    typed: &str,
    error: Option<&str>,
    notice: Option<&str>,
) -> Response {
    match cookie(headers, FORM_COOKIE).filter(|v| v.len() == 64) {
        Some(secret) => user_id_page(lang, status, secret, typed, error, notice),
        None => {
            let secret = hex::encode(eid_protocol::crypto::random_array::<32>());
            let mut response = user_id_page(lang, status, &secret, typed, error, notice);
            set_cookie(&mut response, FORM_COOKIE, &secret, None);
            response
        }
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
                if status_url == PATH_SIGN_IN_STATUS {
                    PATH
                } else {
                    PATH_CHANGE
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

/// `GET /self-service`: the sign-in for this browser's stage.
pub(crate) async fn page(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let pairs = query_params(query.as_deref()).unwrap_or_default();
    let lang = lang_of(&pairs, &headers);
    let (w, s) = (lang.words(), lang.self_service());
    let now = state.now_ms();
    let again = param(&pairs, "again") == Some("1");
    let stage = sign_in_of(&state, &headers, now)
        .await
        .map_err(|e| Failure::from(e).with(lang))?;
    let response = match stage {
        SignIn::Session(_) if !again => see_other(PATH_ACCOUNT),
        SignIn::Waiting {
            secret,
            expires_at_ms,
        } if !again => waiting_page(
            lang,
            s.sign_in_heading.to_owned(),
            (PATH_SIGN_IN_STATUS, PATH_SIGN_IN_QR),
            {
                let (step, code) = shown_code(&secret, now);
                (code, step)
            },
            countdown(now, expires_at_ms),
            ("/self-service?again=1", w.start_again),
        ),
        SignIn::Refused { fraud } if !again => html(
            StatusCode::OK,
            OutcomePage {
                page: Frame::new(lang, PATH),
                heading: w.refused_heading,
                message: if fraud { w.fraud } else { w.denied },
                link_href: "/self-service?again=1",
                link_label: w.retry,
            },
        ),
        SignIn::Over if !again => sign_in_form(
            lang,
            &headers,
            StatusCode::OK,
            "",
            None,
            Some(s.session_over),
        ),
        SignIn::Expired if !again => {
            sign_in_form(lang, &headers, StatusCode::OK, "", None, Some(w.expired))
        }
        _ => sign_in_form(lang, &headers, StatusCode::OK, "", None, None),
    };
    Ok(with_lang(response, &pairs))
}

/// `POST /self-service/sign-in`: the person's user ID. Starts the sign-in
/// request in the app (or its stand-in), then shows the code.
pub(crate) async fn sign_in(
    State(state): State<AppState>,
    Source(source): Source,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Failure> {
    let lang = lang_of(&[], &headers);
    let w = lang.words();
    let Some(secret) = cookie(&headers, FORM_COOKIE) else {
        return Err(Failure(lang, Refusal::OtherBrowser));
    };
    let form = Form::parse(&headers, &body).filter(|f| csrf_ok(f, secret));
    let Some(form) = form else {
        return Ok(sign_in_form(
            lang,
            &headers,
            StatusCode::BAD_REQUEST,
            "",
            Some(w.bad_form),
            None,
        ));
    };
    let typed = form.one("user_id").unwrap_or_default().trim();
    if typed.is_empty() || typed.len() > MAX_USER_ID_LEN || typed.chars().any(char::is_control) {
        let shown: String = typed.chars().take(MAX_USER_ID_LEN).collect();
        return Ok(sign_in_form(
            lang,
            &headers,
            StatusCode::UNPROCESSABLE_ENTITY,
            &shown,
            Some(w.bad_user_id),
            None,
        ));
    }
    let now = state.now_ms();
    // A sign-in is a self-service start like the API's: one source gets a
    // few per user ID an hour, known or not (docs/threat-model.md,
    // "Strangers who know a user ID"), so a stranger cannot fill the
    // person's app with sign-ins.
    if state
        .sources
        .start(StartKind::SelfService, source, &userid::fold(typed), now)
        .is_err()
    {
        return Ok(sign_in_form(
            lang,
            &headers,
            StatusCode::TOO_MANY_REQUESTS,
            typed,
            Some(w.busy),
            None,
        ));
    }
    // A sign-in still waiting is withdrawn first (the person starts again,
    // e.g. after a typo).
    if let Some(previous) = cookie(&headers, SESSION_COOKIE)
        .and_then(|sealed| token::open(&state, Purpose::SignIn, sealed))
    {
        let cancelled = state
            .store
            .cancel_request(previous.request_id, SELF_SERVICE_PROVIDER_ID, now)
            .await
            .map_err(|e| Failure::from(e).with(lang))?;
        if cancelled == crate::store::CancelResult::Cancelled {
            state.waiters.wake(previous.request_id);
        }
    }
    let text = eid_protocol::text::normalize_reference_text(SIGN_IN_TEXT)
        .map_err(|_| Failure(lang, Refusal::Internal))?;
    let created = create_for_provider(
        &state,
        (
            SELF_SERVICE_PROVIDER_ID,
            SELF_SERVICE_PROVIDER_NAME.to_owned(),
        ),
        RequestKind::SelfService,
        typed,
        text,
        Some(StoredBinding::Rotating(BindingSecret::random())),
        now,
    )
    .await;
    let request_id = match created {
        Ok(Created::Request(envelope)) => envelope.request_id,
        // The stand-in: a request id nobody has; the page waits and lapses.
        Ok(Created::UnknownIdentity) => RequestId::random(),
        Err(refused) if refused.error.code == ErrorCode::IdentityBlocked => RequestId::random(),
        Err(refused) if refused.error.code == ErrorCode::Internal => {
            return Err(Failure(lang, Refusal::Internal));
        }
        Err(_) => {
            return Ok(sign_in_form(
                lang,
                &headers,
                StatusCode::TOO_MANY_REQUESTS,
                typed,
                Some(w.busy),
                None,
            ));
        }
    };
    let sealed = token::seal(
        &state,
        &Token::new(Purpose::SignIn, request_id, ChangeId([0; 16]), now),
    );
    let mut response = see_other(PATH);
    let max_age = (state.config.request_lifetime_secs * 1000 + SESSION_MS) / 1000;
    set_cookie(&mut response, SESSION_COOKIE, &sealed, Some(max_age));
    clear(&mut response, CHANGE_COOKIE);
    Ok(response)
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

/// `GET /self-service/sign-in/status`.
pub(crate) async fn sign_in_status(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, StatusCode> {
    let lang = lang_of(&[], &headers);
    let (w, s) = (lang.words(), lang.self_service());
    let now = state.now_ms();
    let stage = sign_in_of(&state, &headers, now)
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    let status = match stage {
        SignIn::None => return Err(StatusCode::FORBIDDEN),
        SignIn::Waiting {
            secret,
            expires_at_ms,
        } => {
            let (step, code) = shown_code(&secret, now);
            Status {
                state: "waiting",
                message: w.waiting,
                code,
                step,
                countdown: countdown(now, expires_at_ms),
                next: None,
            }
        }
        SignIn::Session(_) => moving_on("approved", s.signing_in, PATH_ACCOUNT),
        SignIn::Refused { fraud } => {
            moving_on("refused", if fraud { w.fraud } else { w.denied }, PATH)
        }
        SignIn::Expired | SignIn::Over => moving_on("expired", w.expired, PATH),
    };
    Ok(Json(status).into_response())
}

fn svg(payload: &str) -> Result<Response, StatusCode> {
    let svg = qr::svg(payload).ok_or(StatusCode::INTERNAL_SERVER_ERROR)?;
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}

/// `GET /self-service/sign-in/qr.svg`: the QR of the code shown now.
pub(crate) async fn sign_in_qr(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, StatusCode> {
    let now = state.now_ms();
    let Ok(SignIn::Waiting { secret, .. }) = sign_in_of(&state, &headers, now).await else {
        return Err(StatusCode::NOT_FOUND);
    };
    let (step, _) = shown_code(&secret, now);
    svg(&format!("{QR_PREFIX}{}", secret.code_for_step(step)))
}

/// `POST /self-service/sign-out`: forgets this browser's session.
pub(crate) async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Failure> {
    let lang = lang_of(&[], &headers);
    let (session, _) = session(&state, &headers, lang).await?;
    let form = Form::parse(&headers, &body).filter(|f| csrf_ok(f, &session.cookie));
    if form.is_none() {
        return Err(Failure(lang, Refusal::BadForm));
    }
    let s = lang.self_service();
    let mut response = html(
        StatusCode::OK,
        OutcomePage {
            page: Frame::new(lang, PATH),
            heading: s.session_over_heading,
            message: s.signed_out,
            link_href: PATH,
            link_label: s.sign_in_again,
        },
    );
    clear(&mut response, SESSION_COOKIE);
    clear(&mut response, CHANGE_COOKIE);
    Ok(response)
}

// --------------------------------------------------------------- overview

/// What the overview says above everything after an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Notice {
    Cancelled,
}

fn change_rows(changes: Vec<crate::store::StoredChange>, now: u64, lang: Lang) -> Vec<ShownChange> {
    let s = lang.self_service();
    changes
        .into_iter()
        .filter_map(|c| {
            let state = c.state_at(now);
            if !state.is_open() {
                return None;
            }
            let (what, value) = match c.kind {
                ChangeKind::Contact(ContactChannel::Phone) => {
                    (s.new_phone, mask_phone(&c.new_value))
                }
                ChangeKind::Contact(_) => (s.new_email, mask_email(&c.new_value)),
                // The person's own new user ID, which they typed.
                ChangeKind::UserId => (s.new_user_id, c.new_value.clone()),
            };
            let (state_name, state_text) = match state {
                ChangeState::AwaitingFirstLogin => ("awaiting_first_login", s.awaiting_first_login),
                ChangeState::WaitingSecondLogin => ("waiting_second_login", s.waiting_second_login),
                _ => ("awaiting_second_login", s.awaiting_second_login),
            };
            let earliest = c.earliest_second_login_at_ms.map(|at| {
                format!(
                    "{} ({})",
                    when::local_time(at, lang),
                    when::time_until(now, at, s)
                )
            });
            let can_confirm = match state {
                ChangeState::WaitingSecondLogin => {
                    c.earliest_second_login_at_ms.is_some_and(|at| now >= at)
                }
                ChangeState::AwaitingSecondLogin => true,
                _ => false,
            };
            Some(ShownChange {
                id: c.id.to_string(),
                what,
                value,
                state: state_name,
                state_text,
                earliest,
                can_confirm,
            })
        })
        .collect()
}

/// The overview of a signed-in person, with `message` on top and the forms
/// keeping what was typed.
async fn overview(
    state: &AppState,
    lang: Lang,
    (session, identity): (&Session, &Identity),
    status: StatusCode,
    message: Option<&str>,
    typed: (&str, &str, &str),
) -> Result<Response, Failure> {
    let now = state.now_ms();
    let s = lang.self_service();
    let authenticators = state
        .store
        .authenticators_of(identity.id)
        .await
        .map_err(|e| Failure::from(e).with(lang))?
        .into_iter()
        .map(|a| ShownAuthenticator {
            created: when::local_date(a.activated_at_ms, lang),
            state: match a.state {
                AuthenticatorState::Active => s.active,
                AuthenticatorState::Locked => s.locked,
            },
        })
        .collect();
    let changes = state
        .store
        .open_changes(identity.id)
        .await
        .map_err(|e| Failure::from(e).with(lang))?;
    Ok(html(
        status,
        AccountPage {
            page: Frame::new(lang, PATH_ACCOUNT),
            csrf: csrf_token(&session.cookie),
            message,
            user_id: &identity.user_id,
            phone: identity
                .phone
                .as_deref()
                .map_or_else(|| s.not_given.to_owned(), mask_phone),
            email: identity
                .email
                .as_deref()
                .map_or_else(|| s.not_given.to_owned(), mask_email),
            session_left: when::time_until(now, session.until_ms, s),
            authenticators,
            changes: change_rows(changes, now, lang),
            new_phone: typed.0,
            new_email: typed.1,
            new_user_id: typed.2,
        },
    ))
}

/// `GET /self-service/account`: the signed-in overview.
pub(crate) async fn account(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let pairs = query_params(query.as_deref()).unwrap_or_default();
    let lang = lang_of(&pairs, &headers);
    let (session, identity) = session(&state, &headers, lang).await?;
    let notice = match param(&pairs, "done") {
        Some("cancelled") => Some(Notice::Cancelled),
        _ => None,
    };
    let message = notice.map(|n| match n {
        Notice::Cancelled => lang.self_service().cancelled,
    });
    let response = overview(
        &state,
        lang,
        (&session, &identity),
        StatusCode::OK,
        message,
        ("", "", ""),
    )
    .await?;
    Ok(with_lang(response, &pairs))
}

/// The session and the form of a post from the overview; a missing or
/// wrong CSRF token refuses it before anything is done.
async fn posted(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Lang, Session, Identity, Form), Failure> {
    let lang = lang_of(&[], headers);
    let (session, identity) = session(state, headers, lang).await?;
    let form = Form::parse(headers, body)
        .filter(|f| csrf_ok(f, &session.cookie))
        .ok_or(Failure(lang, Refusal::BadForm))?;
    Ok((lang, session, identity, form))
}

/// A started or asked-for change login: remembered by this browser, then
/// its code is shown.
fn to_change_page(state: &AppState, step: &SelfServiceStep) -> Response {
    let now = state.now_ms();
    let sealed = token::seal(
        state,
        &Token::new(Purpose::Change, step.request_id, step.change_id, now),
    );
    let mut response = see_other(PATH_CHANGE);
    set_cookie(
        &mut response,
        CHANGE_COOKIE,
        &sealed,
        Some(state.config.request_lifetime_secs),
    );
    response
}

/// The page's sentence and status for a refused start or confirm.
fn refusal_text(
    code: ErrorCode,
    s: &'static SelfServiceWords,
    w: &'static Words,
) -> (StatusCode, &'static str) {
    match code {
        ErrorCode::InvalidContact => (StatusCode::UNPROCESSABLE_ENTITY, s.invalid_phone),
        ErrorCode::InvalidUserId => (StatusCode::UNPROCESSABLE_ENTITY, s.invalid_user_id),
        ErrorCode::ChangePending => (StatusCode::CONFLICT, s.change_pending),
        ErrorCode::ChangeClosed | ErrorCode::UnknownChange => {
            (StatusCode::CONFLICT, s.change_closed)
        }
        _ => (StatusCode::TOO_MANY_REQUESTS, w.busy),
    }
}

/// Which change a form on the overview starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    Phone,
    Email,
    UserId,
}

async fn start_change(
    state: AppState,
    source: IpAddr,
    headers: HeaderMap,
    body: Bytes,
    what: Start,
) -> Result<Response, Failure> {
    let (lang, session, identity, form) = posted(&state, &headers, &body).await?;
    let (s, w) = (lang.self_service(), lang.words());
    let field = match what {
        Start::UserId => "new_user_id",
        _ => "new_value",
    };
    let typed = form.one(field).unwrap_or_default().trim();
    let shown: String = typed.chars().take(MAX_VALUE_LEN).collect();
    // The API's functions check the value (and refuse it with the reason).
    let started = match what {
        Start::Phone => {
            let channel = ContactChannel::Phone;
            start_contact(&state, source, &identity.user_id, channel, typed).await
        }
        Start::Email => {
            let channel = ContactChannel::Email;
            start_contact(&state, source, &identity.user_id, channel, typed).await
        }
        Start::UserId => start_user_id(&state, source, &identity.user_id, typed).await,
    };
    match started {
        Ok((_, Json(step))) => Ok(to_change_page(&state, &step)),
        Err(refused) => {
            if refused.error.code == ErrorCode::Internal {
                return Err(Failure(lang, Refusal::Internal));
            }
            let (status, mut message) = refusal_text(refused.error.code, s, w);
            if what == Start::Email && refused.error.code == ErrorCode::InvalidContact {
                message = s.invalid_email;
            }
            let typed = match what {
                Start::Phone => (shown.as_str(), "", ""),
                Start::Email => ("", shown.as_str(), ""),
                Start::UserId => ("", "", shown.as_str()),
            };
            overview(
                &state,
                lang,
                (&session, &identity),
                status,
                Some(message),
                typed,
            )
            .await
        }
    }
}

/// `POST /self-service/phone`: starts a phone-number change.
pub(crate) async fn phone(
    State(state): State<AppState>,
    Source(source): Source,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Failure> {
    start_change(state, source, headers, body, Start::Phone).await
}

/// `POST /self-service/email`: starts an e-mail change.
pub(crate) async fn email(
    State(state): State<AppState>,
    Source(source): Source,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Failure> {
    start_change(state, source, headers, body, Start::Email).await
}

/// `POST /self-service/user-id`: starts a user-ID change.
pub(crate) async fn user_id(
    State(state): State<AppState>,
    Source(source): Source,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Failure> {
    start_change(state, source, headers, body, Start::UserId).await
}

/// `POST /self-service/confirm`: asks for the second login of a phone or
/// e-mail change, under the API's rules (before the earliest time it is
/// refused, and the attempt told to the old and the new contact).
pub(crate) async fn confirm_change(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Failure> {
    let (lang, session, identity, form) = posted(&state, &headers, &body).await?;
    let (s, w) = (lang.self_service(), lang.words());
    let raw = form.one("change_id").unwrap_or_default();
    let change = match own_change(&state, raw, &identity.user_id, true).await {
        Ok(change) => change,
        Err(e) => {
            let (status, message) = refusal_text(e.code, s, w);
            return overview(
                &state,
                lang,
                (&session, &identity),
                status,
                Some(message),
                ("", "", ""),
            )
            .await;
        }
    };
    let earliest = change.earliest_second_login_at_ms;
    match confirm(&state, change).await {
        Ok((_, Json(step))) => Ok(to_change_page(&state, &step)),
        Err(e) if e.code == ErrorCode::TooEarly => {
            let now = state.now_ms();
            let at = earliest.unwrap_or(now);
            let message = s
                .too_early
                .replace("{when}", &when::local_time(at, lang))
                .replace("{in}", &when::time_until(now, at, s));
            overview(
                &state,
                lang,
                (&session, &identity),
                StatusCode::CONFLICT,
                Some(&message),
                ("", "", ""),
            )
            .await
        }
        Err(e) if e.code == ErrorCode::Internal => Err(Failure(lang, Refusal::Internal)),
        Err(e) => {
            let (status, message) = refusal_text(e.code, s, w);
            overview(
                &state,
                lang,
                (&session, &identity),
                status,
                Some(message),
                ("", "", ""),
            )
            .await
        }
    }
}

/// `POST /self-service/cancel`: cancels an open change of the signed-in
/// identity, with its pending login; the old and the new contact are told
/// (the store's cancel, as from the app, recorded as the act of the
/// authenticator that approved the sign-in).
pub(crate) async fn cancel(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Failure> {
    let (lang, session, identity, form) = posted(&state, &headers, &body).await?;
    let id = form
        .one("change_id")
        .and_then(|r| r.parse::<ChangeId>().ok());
    let result = match id {
        Some(id) => Some(
            state
                .store
                .cancel_change(id, identity.id, session.authenticator_id, state.now_ms())
                .await
                .map_err(|e| Failure::from(e).with(lang))?,
        ),
        None => None,
    };
    match result {
        Some(CancelChangeResult::Cancelled(request)) => {
            if let Some(r) = request {
                state.waiters.wake(r);
            }
            tracing::info!(identity = %identity.id, "self-service change cancelled on the web");
            Ok(see_other("/self-service/account?done=cancelled"))
        }
        _ => {
            let message = Some(lang.self_service().change_closed);
            let who = (&session, &identity);
            overview(
                &state,
                lang,
                who,
                StatusCode::CONFLICT,
                message,
                ("", "", ""),
            )
            .await
        }
    }
}

// ----------------------------------------------------------- change login

/// Where the change login this browser started stands.
enum ChangeLogin {
    Waiting { code: String, expires_at_ms: u64 },
    Approved,
    Refused { fraud: bool },
    Expired,
}

/// The change login named by this browser's change cookie, if it belongs to
/// the session's identity.
async fn change_login(
    state: &AppState,
    headers: &HeaderMap,
    session: &Session,
    now: u64,
) -> Result<Option<ChangeLogin>, StoreError> {
    let Some(token) = cookie(headers, CHANGE_COOKIE)
        .and_then(|sealed| token::open(state, Purpose::Change, sealed))
    else {
        return Ok(None);
    };
    let Some(request) = state.store.request(token.request_id).await? else {
        return Ok(Some(ChangeLogin::Expired));
    };
    if request.envelope.identity_id != session.identity_id
        || request.envelope.kind != RequestKind::SelfService
    {
        return Ok(None);
    }
    Ok(Some(match request.status_at(now) {
        RequestStatus::Pending => match fixed(request.binding_code.as_deref()) {
            Some(code) => ChangeLogin::Waiting {
                code,
                expires_at_ms: request.envelope.expires_at_ms,
            },
            None => ChangeLogin::Expired,
        },
        RequestStatus::Approved => ChangeLogin::Approved,
        RequestStatus::Denied => ChangeLogin::Refused { fraud: false },
        RequestStatus::FraudReported => ChangeLogin::Refused { fraud: true },
        _ => ChangeLogin::Expired,
    }))
}

/// `GET /self-service/change`: the code of the change login this browser
/// started, while it waits in the app.
pub(crate) async fn change_page(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let pairs = query_params(query.as_deref()).unwrap_or_default();
    let lang = lang_of(&pairs, &headers);
    let (session, _) = session(&state, &headers, lang).await?;
    let (w, s) = (lang.words(), lang.self_service());
    let now = state.now_ms();
    let login = change_login(&state, &headers, &session, now)
        .await
        .map_err(|e| Failure::from(e).with(lang))?;
    let outcome = |heading: &'static str, message: &'static str| {
        html(
            StatusCode::OK,
            OutcomePage {
                page: Frame::new(lang, PATH_CHANGE),
                heading,
                message,
                link_href: PATH_ACCOUNT,
                link_label: s.to_overview,
            },
        )
    };
    let response = match login {
        None | Some(ChangeLogin::Approved) => see_other(PATH_ACCOUNT),
        Some(ChangeLogin::Waiting {
            code,
            expires_at_ms,
        }) => waiting_page(
            lang,
            s.changes_heading.to_owned(),
            (PATH_CHANGE_STATUS, PATH_CHANGE_QR),
            (grouped(&code), 0),
            countdown(now, expires_at_ms),
            (PATH_ACCOUNT, s.to_overview),
        ),
        Some(ChangeLogin::Refused { fraud }) => outcome(
            w.refused_heading,
            if fraud { w.fraud } else { s.change_refused },
        ),
        Some(ChangeLogin::Expired) => outcome(w.expired_heading, s.change_expired),
    };
    Ok(with_lang(response, &pairs))
}

/// `GET /self-service/change/status`.
pub(crate) async fn change_status(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, StatusCode> {
    let lang = lang_of(&[], &headers);
    let (w, s) = (lang.words(), lang.self_service());
    let (session, _) = session(&state, &headers, lang)
        .await
        .map_err(|Failure(_, r)| match r {
            Refusal::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::FORBIDDEN,
        })?;
    let now = state.now_ms();
    let login = change_login(&state, &headers, &session, now)
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    let status = match login {
        Some(ChangeLogin::Waiting {
            code,
            expires_at_ms,
        }) => Status {
            state: "waiting",
            message: w.waiting,
            code: grouped(&code),
            step: 0,
            countdown: countdown(now, expires_at_ms),
            next: None,
        },
        None | Some(ChangeLogin::Approved) => {
            moving_on("approved", s.change_approved, PATH_ACCOUNT)
        }
        Some(ChangeLogin::Refused { fraud }) => moving_on(
            "refused",
            if fraud { w.fraud } else { s.change_refused },
            PATH_CHANGE,
        ),
        Some(ChangeLogin::Expired) => moving_on("expired", s.change_expired, PATH_CHANGE),
    };
    Ok(Json(status).into_response())
}

/// `GET /self-service/change/qr.svg`.
pub(crate) async fn change_qr(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, StatusCode> {
    let lang = lang_of(&[], &headers);
    let (session, _) = session(&state, &headers, lang)
        .await
        .map_err(|_| StatusCode::NOT_FOUND)?;
    let now = state.now_ms();
    let Ok(Some(ChangeLogin::Waiting { code, .. })) =
        change_login(&state, &headers, &session, now).await
    else {
        return Err(StatusCode::NOT_FOUND);
    };
    svg(&format!("{QR_PREFIX}{code}"))
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
