//! The signed-in overview of the self-service pages and its forms: start a
//! phone, e-mail or user-ID change, ask for a change's second login, cancel
//! a change. Each form goes through the self-service API's own functions.

use super::*;

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
