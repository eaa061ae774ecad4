//! The way in and out of the self-service pages: the user-ID form, the
//! sign-in request's code while it waits in the app, its live status and
//! QR, and signing out.

use super::*;

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
    let state_ref = &state;
    let stand_in = |wrote: bool| async move {
        // The durable write a real request makes (its commit waits for the
        // fsync, milliseconds): without it the answer's time told a
        // stand-in from a real request. A refusal that made one says so
        // (`RetryLater::wrote`; docs/threat-model.md).
        if !wrote {
            crate::web::stand_in_write(state_ref, now)
                .await
                .map_err(|e| Failure::from(e).with(lang))?;
        }
        Ok::<_, Failure>(crate::ids::request_id(now))
    };
    let request_id = match created {
        Ok(Created::Request(envelope)) => envelope.request_id,
        // The stand-in: a request id nobody has; the page waits and lapses.
        Ok(Created::UnknownIdentity) => stand_in(false).await?,
        // Blocked, or held by one of the person's own limits: the stand-in
        // too, as "busy" would be said of known user IDs only.
        Err(refused) if refused.about_the_person => stand_in(refused.wrote).await?,
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
        } => waiting(w, &secret, now, expires_at_ms),
        SignIn::Session(_) => moving_on("approved", s.signing_in, PATH_ACCOUNT),
        SignIn::Refused { fraud } => {
            moving_on("refused", if fraud { w.fraud } else { w.denied }, PATH)
        }
        SignIn::Expired | SignIn::Over => moving_on("expired", w.expired, PATH),
    };
    Ok(Json(status).into_response())
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
    end_session(&state, &session)
        .await
        .map_err(|e| Failure::from(e).with(lang))?;
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
