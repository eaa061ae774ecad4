//! The page of a change login started on the self-service pages: its code
//! (the API's static binding code of that request) while it waits in the
//! app, its live status and QR.

use super::*;

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
