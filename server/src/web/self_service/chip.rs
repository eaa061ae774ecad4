//! The chip on the self-service pages (docs/self-service.md): step 1
//! registers a security key (WebAuthn create) with its access code; the
//! chip then waits `chip_wait_secs` (every channel told, cancellable from
//! the app); step 2 confirms it with the chip itself and the access code.
//! The rules are `crate::chip`'s; this file is the page around them.
//!
//! WebAuthn needs the browser's JavaScript (`/oidc/static/chip.js`, no
//! inline script under the CSP): the options travel in a `data-options`
//! attribute, the answer in a hidden field of an ordinary form post with
//! the CSRF token. The challenge state stays in the store; the form carries
//! only the ceremony's random id.

use axum::http::Uri;

use super::*;
use crate::chip::assertion::UseOutcome;
use crate::chip::confirm::{self, ConfirmOutcome, ConfirmStart};
use crate::chip::register::{self, RegisterOutcome};
use crate::chip::{ChipError, masked, parse_ceremony_id};
use crate::store::ChipState;

pub(crate) const PATH_CHIP: &str = "/self-service/chip";
pub(crate) const PATH_CHIP_REGISTER: &str = "/self-service/chip/register";
pub(crate) const PATH_CHIP_CONFIRM: &str = "/self-service/chip/confirm";

/// The longest browser answer taken (a security key's JSON is ~1 KiB).
const MAX_ANSWER_LEN: usize = 16 * 1024;

/// The chip page's words (Danish, English).
struct ChipWords {
    heading: &'static str,
    register_intro: &'static str,
    access_code: &'static str,
    access_code_again: &'static str,
    access_code_help: &'static str,
    register: &'static str,
    waiting: &'static str,
    confirm_intro: &'static str,
    confirm: &'static str,
    active: &'static str,
    blocked: &'static str,
    registered: &'static str,
    activated: &'static str,
    needs_script: &'static str,
    tried_again: &'static str,
    differ: &'static str,
    weak: &'static str,
    taken: &'static str,
    has_chip: &'static str,
    wrong_code: &'static str,
    locked: &'static str,
    clone: &'static str,
    back: &'static str,
}

const DA: ChipWords = ChipWords {
    heading: "Chip",
    register_intro: "Tilføj en chip (sikkerhedsnøgle) til dit eID. Vælg en adgangskode til chippen, og rør chippen, når browseren beder om det. Chippen virker først efter ventetiden; vi giver dig besked på alle kanaler, og du kan annullere den i appen.",
    access_code: "Adgangskode til chippen",
    access_code_again: "Gentag adgangskoden",
    access_code_help: "Mindst 8 tegn. Ikke dit bruger-ID og ikke en kendt adgangskode.",
    register: "Tilføj chip",
    waiting: "Din chip er registreret. Du kan tage den i brug fra",
    confirm_intro: "Ventetiden er slut. Tag chippen i brug: skriv adgangskoden, og rør chippen.",
    confirm: "Tag chippen i brug",
    active: "Din chip er i brug",
    blocked: "Din chip er spærret. Fjern den i appen, og tilføj en ny.",
    registered: "Chippen er registreret. Du har fået besked på alle kanaler.",
    activated: "Chippen er taget i brug.",
    needs_script: "Chippen kræver JavaScript i browseren.",
    tried_again: "Det lykkedes ikke. Prøv igen.",
    differ: "De to adgangskoder er forskellige.",
    weak: "Adgangskoden er for let at gætte eller for kort.",
    taken: "Denne chip er allerede registreret.",
    has_chip: "Du har allerede en chip. Fjern den i appen først.",
    wrong_code: "Forkert adgangskode.",
    locked: "For mange forkerte forsøg. Chippen er låst et stykke tid.",
    clone: "Chippen opførte sig som en kopi og er spærret. Du har fået besked.",
    back: "Til oversigten",
};

const EN: ChipWords = ChipWords {
    heading: "Chip",
    register_intro: "Add a chip (security key) to your eID. Choose an access code for the chip, and touch the chip when the browser asks. The chip works only after the waiting period; we tell you on every channel, and you can cancel it in the app.",
    access_code: "Access code for the chip",
    access_code_again: "Repeat the access code",
    access_code_help: "At least 8 characters. Not your user ID and not a well-known password.",
    register: "Add chip",
    waiting: "Your chip is registered. You can start using it from",
    confirm_intro: "The waiting period is over. Start using the chip: type its access code and touch the chip.",
    confirm: "Start using the chip",
    active: "Your chip is in use",
    blocked: "Your chip is blocked. Remove it in the app and add a new one.",
    registered: "The chip is registered. You were told on every channel.",
    activated: "The chip is in use now.",
    needs_script: "The chip needs JavaScript in the browser.",
    tried_again: "That did not work. Please try again.",
    differ: "The two access codes differ.",
    weak: "The access code is too easy to guess or too short.",
    taken: "This chip is registered already.",
    has_chip: "You already have a chip. Remove it in the app first.",
    wrong_code: "Wrong access code.",
    locked: "Too many wrong tries. The chip is locked for a while.",
    clone: "The chip behaved like a copy and is blocked. You were told.",
    back: "To the overview",
};

fn words(lang: Lang) -> &'static ChipWords {
    match lang {
        Lang::Da => &DA,
        _ => &EN,
    }
}

/// What the page shows below its heading.
enum Step {
    /// Step 1's form.
    Register { ceremony: String, options: String },
    /// Waiting until this (local) time.
    Waiting { from: String },
    /// Step 2's form.
    Confirm { ceremony: String, options: String },
    /// In use (masked id).
    Active { shown: String },
    /// Blocked for good.
    Blocked,
}

#[derive(Template)]
#[template(path = "self_service_chip.html")]
struct ChipPage<'a> {
    page: Frame,
    c: &'static ChipWords,
    csrf: String,
    message: Option<&'a str>,
    step: Step,
}

fn failed(lang: Lang) -> impl Fn(ChipError) -> Failure {
    move |e| {
        tracing::error!(error = %e, "self-service chip page failed");
        Failure(lang, Refusal::Internal)
    }
}

/// The page for the person's chip as it stands, with `message` on top.
async fn chip_page(
    state: &AppState,
    lang: Lang,
    (session, identity): (&Session, &Identity),
    origin: &str,
    status: StatusCode,
    message: Option<&str>,
) -> Result<Response, Failure> {
    let chips = state
        .store
        .chips_of(identity.id)
        .await
        .map_err(|e| Failure::from(e).with(lang))?;
    let live = chips.into_iter().find(|c| c.state.is_live());
    let step = match live {
        None => {
            let started = register::start(state, identity, origin)
                .await
                .map_err(failed(lang))?;
            Step::Register {
                ceremony: started.ceremony_id,
                options: started.options_json,
            }
        }
        Some(chip) if chip.state == ChipState::Active => Step::Active {
            shown: masked(&chip.credential_id_sha256),
        },
        Some(chip) if chip.state == ChipState::Blocked => Step::Blocked,
        Some(_) => match confirm::start(state, identity, origin)
            .await
            .map_err(failed(lang))?
        {
            ConfirmStart::Started(started) => Step::Confirm {
                ceremony: started.ceremony_id,
                options: started.options_json,
            },
            ConfirmStart::TooEarly { active_from_ms } => Step::Waiting {
                from: when::local_time(active_from_ms, lang),
            },
            ConfirmStart::NoPendingChip => Step::Blocked,
        },
    };
    Ok(html(
        status,
        ChipPage {
            page: Frame::new(lang, PATH_CHIP),
            c: words(lang),
            csrf: csrf_token(&session.cookie),
            message,
            step,
        },
    ))
}

/// The server's origin, the chip's relying party.
fn origin_of(
    state: &AppState,
    uri: &Uri,
    headers: &HeaderMap,
    lang: Lang,
) -> Result<String, Failure> {
    crate::api::oidc_issuer(state, uri, headers).map_err(|_| Failure(lang, Refusal::Internal))
}

/// `GET /self-service/chip`: the chip's step as it stands.
pub(crate) async fn chip(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let pairs = query_params(query.as_deref()).unwrap_or_default();
    let lang = lang_of(&pairs, &headers);
    let (session, identity) = session(&state, &headers, lang).await?;
    let origin = origin_of(&state, &uri, &headers, lang)?;
    let c = words(lang);
    let message = match param(&pairs, "done") {
        Some("registered") => Some(c.registered),
        Some("activated") => Some(c.activated),
        _ => None,
    };
    let response = chip_page(
        &state,
        lang,
        (&session, &identity),
        &origin,
        StatusCode::OK,
        message,
    )
    .await?;
    Ok(with_lang(response, &pairs))
}

/// The session, form, ceremony id and answer of a chip post; a missing or
/// wrong CSRF token refuses it before anything is done.
async fn chip_post(
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

/// The ceremony id and the browser's answer of a form, if both are there.
fn answer(form: &Form) -> Option<([u8; 16], &str)> {
    let ceremony = parse_ceremony_id(form.one("ceremony")?)?;
    let credential = form
        .one("credential")
        .filter(|c| !c.is_empty() && c.len() <= MAX_ANSWER_LEN)?;
    Some((ceremony, credential))
}

/// `POST /self-service/chip/register`: step 1.
pub(crate) async fn chip_register(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Failure> {
    let (lang, session, identity, form) = chip_post(&state, &headers, &body).await?;
    let origin = origin_of(&state, &uri, &headers, lang)?;
    let c = words(lang);
    let Some((ceremony, credential)) = answer(&form) else {
        let page = (&session, &identity);
        return chip_page(
            &state,
            lang,
            page,
            &origin,
            StatusCode::BAD_REQUEST,
            Some(c.needs_script),
        )
        .await;
    };
    let codes = (
        form.one("access_code").unwrap_or_default(),
        form.one("access_code_again").unwrap_or_default(),
    );
    let outcome = register::finish(&state, &identity, ceremony, credential, codes, &origin)
        .await
        .map_err(failed(lang))?;
    let (status, message) = match outcome {
        RegisterOutcome::Registered { .. } => {
            return Ok(see_other(&format!("{PATH_CHIP}?done=registered")));
        }
        RegisterOutcome::AccessCode(_) => (StatusCode::UNPROCESSABLE_ENTITY, c.weak),
        RegisterOutcome::AccessCodesDiffer => (StatusCode::UNPROCESSABLE_ENTITY, c.differ),
        RegisterOutcome::BadCeremony | RegisterOutcome::BadCredential => {
            (StatusCode::BAD_REQUEST, c.tried_again)
        }
        RegisterOutcome::AlreadyHasChip => (StatusCode::CONFLICT, c.has_chip),
        RegisterOutcome::CredentialTaken => (StatusCode::CONFLICT, c.taken),
        RegisterOutcome::IdentityBlocked => return Err(Failure(lang, Refusal::SessionOver)),
    };
    chip_page(
        &state,
        lang,
        (&session, &identity),
        &origin,
        status,
        Some(message),
    )
    .await
}

/// `POST /self-service/chip/confirm`: step 2.
pub(crate) async fn chip_confirm(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Failure> {
    let (lang, session, identity, form) = chip_post(&state, &headers, &body).await?;
    let origin = origin_of(&state, &uri, &headers, lang)?;
    let c = words(lang);
    let Some((ceremony, assertion)) = answer(&form) else {
        let page = (&session, &identity);
        return chip_page(
            &state,
            lang,
            page,
            &origin,
            StatusCode::BAD_REQUEST,
            Some(c.needs_script),
        )
        .await;
    };
    let code = form.one("access_code").unwrap_or_default();
    let outcome = confirm::finish(&state, &identity, ceremony, assertion, code, &origin)
        .await
        .map_err(failed(lang))?;
    let (status, message) = match outcome {
        ConfirmOutcome::Activated => {
            return Ok(see_other(&format!("{PATH_CHIP}?done=activated")));
        }
        ConfirmOutcome::BadCeremony
        | ConfirmOutcome::Refused(
            UseOutcome::BadAssertion | UseOutcome::Concurrent | UseOutcome::Accepted(_),
        ) => (StatusCode::BAD_REQUEST, c.tried_again),
        ConfirmOutcome::Refused(UseOutcome::WrongAccessCode {
            locked_until_ms: None,
        }) => (StatusCode::UNPROCESSABLE_ENTITY, c.wrong_code),
        ConfirmOutcome::Refused(
            UseOutcome::WrongAccessCode { .. } | UseOutcome::LockedOut { .. },
        ) => (StatusCode::TOO_MANY_REQUESTS, c.locked),
        ConfirmOutcome::Refused(UseOutcome::CloneSuspected) => (StatusCode::FORBIDDEN, c.clone),
    };
    chip_page(
        &state,
        lang,
        (&session, &identity),
        &origin,
        status,
        Some(message),
    )
    .await
}
