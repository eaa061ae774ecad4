//! The pages a person's browser sees: the hosted OpenID Connect login page
//! (see docs/oidc.md, "The login page") and the self-service pages (see
//! docs/self-service.md). Server-rendered HTML in Danish and
//! English that works without JavaScript.
//!
//! Every page is sent with a strict Content-Security-Policy (scripts, styles
//! and images from this origin only, no inline script, no framing), no
//! `Referer` to other origins (`same-origin`: `no-referrer` would make a
//! browser send `Origin: null` on the pages' own form posts, which the
//! origin check refuses), and `Cache-Control: no-store`. A login belongs to the browser
//! it was started in by a cookie set when the browser arrives from the
//! service provider; every form carries a CSRF token derived from it; URLs
//! carry the login's id and never a user ID.

pub(crate) mod chip;
pub(crate) mod code_activation;
pub(crate) mod code_login;
pub(crate) mod login;
mod qr;
pub(crate) mod self_service;
mod texts;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};

use crate::api::AppState;

/// The pages' Content-Security-Policy: nothing but this origin's own script,
/// style sheet, images and status fetches; no plugin, base or frame.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The login pages' routes: `(reads, posts)`, to be put behind the same
/// guards as the other endpoints without credentials (the per-address limit;
/// the origin check on the posts).
pub(crate) fn routes() -> (Router<AppState>, Router<AppState>) {
    let reads = Router::new()
        .route(login::PATH_AUTHORIZE, get(login::authorize))
        .route("/oidc/login/{login_id}", get(login::page))
        .route("/oidc/login/{login_id}/status", get(login::status))
        .route("/oidc/login/{login_id}/qr.svg", get(login::qr))
        .route("/oidc/login/{login_id}/continue", get(login::next))
        .route("/oidc/login/{login_id}/chip", get(chip::page))
        .route("/oidc/login/{login_id}/code", get(code_login::code_get))
        .route(
            "/oidc/login/{login_id}/access-code",
            get(code_login::access_code_get),
        )
        .route("/oidc/static/login.js", get(script))
        .route("/oidc/static/login.css", get(style))
        .route("/oidc/static/chip.js", get(chip_script))
        .route(code_activation::PATH, get(code_activation::form))
        .merge(self_service_reads())
        .route_layer(middleware::from_fn(protect));
    let posts = Router::new()
        .route("/oidc/login/{login_id}/user-id", post(login::user_id))
        .route("/oidc/login/{login_id}/chip", post(chip::post))
        .route("/oidc/login/{login_id}/code", post(code_login::code_post))
        .route(code_activation::PATH, post(code_activation::submit))
        .route(
            "/oidc/login/{login_id}/access-code",
            post(code_login::access_code_post),
        )
        .merge(self_service_posts())
        .route_layer(middleware::from_fn(protect));
    (reads, posts)
}

/// The self-service pages (docs/self-service.md) that only read.
fn self_service_reads() -> Router<AppState> {
    use self_service as s;
    Router::new()
        .route(s::PATH, get(s::page))
        .route(s::PATH_SIGN_IN_STATUS, get(s::sign_in_status))
        .route(s::PATH_SIGN_IN_QR, get(s::sign_in_qr))
        .route(s::PATH_ACCOUNT, get(s::account))
        .route(s::PATH_CHIP, get(s::chip))
        .route(s::PATH_CHANGE, get(s::change_page))
        .route(s::PATH_CHANGE_STATUS, get(s::change_status))
        .route(s::PATH_CHANGE_QR, get(s::change_qr))
        .route(s::PATH_CODE_DEVICE_APP, get(s::by_app_page))
        .route(s::PATH_CODE_DEVICE_APP_STATUS, get(s::by_app_status))
        .route(s::PATH_CODE_DEVICE_APP_QR, get(s::by_app_qr))
}

/// The self-service pages' forms.
fn self_service_posts() -> Router<AppState> {
    use self_service as s;
    Router::new()
        .route(s::PATH_SIGN_IN, post(s::sign_in))
        .route(s::PATH_PHONE, post(s::phone))
        .route(s::PATH_EMAIL, post(s::email))
        .route(s::PATH_USER_ID, post(s::user_id))
        .route(s::PATH_CONFIRM, post(s::confirm_change))
        .route(s::PATH_CANCEL, post(s::cancel))
        .route(s::PATH_CHIP_REGISTER, post(s::chip_register))
        .route(s::PATH_CHIP_CONFIRM, post(s::chip_confirm))
        .route(s::PATH_SIGN_OUT, post(s::sign_out))
        .route(s::PATH_CODE_DEVICE_APP, post(s::by_app_start))
}

/// How long a stand-in write's nonce is kept (the nonces' purge takes it
/// after that).
const STAND_IN_WRITE_MS: u64 = 60_000;

/// The durable write a step makes for a person's real code device or chip
/// (a failure counted, a ceremony stored), made for a user ID without one: a
/// random nonce nobody will present, kept a minute. A commit waits for its
/// fsync (milliseconds), so without it the answer's time would tell a user
/// ID with the device from one without.
pub(crate) async fn stand_in_write(
    state: &AppState,
    now_ms: u64,
) -> Result<(), crate::store::StoreError> {
    state
        .store
        .use_nonce(
            eid_protocol::Nonce16(eid_protocol::crypto::random_array()),
            now_ms.saturating_add(STAND_IN_WRITE_MS),
        )
        .await?;
    Ok(())
}

/// How long a browser keeps to HTTPS for this host once told (a year, the
/// usual; no `includeSubDomains`: the other hosts of the domain are not
/// this server's to decide).
const HSTS: &str = "max-age=31536000";

/// Whether the page was asked for by the name `localhost` (or a name under
/// it): a browser that kept HSTS for `localhost` would refuse plain HTTP to
/// every other local development server on every port for a year. Browsers
/// ignore HSTS from an IP address anyway (RFC 6797 section 8.1).
fn is_localhost(request: &Request) -> bool {
    let host = request.uri().host().map(str::to_owned).or_else(|| {
        let header = request.headers().get(header::HOST)?.to_str().ok()?;
        // `name:port` or `[v6]:port`; only names matter here.
        Some(
            header
                .rsplit_once(':')
                .map_or(header, |(name, _)| name)
                .to_owned(),
        )
    });
    host.is_some_and(|h| {
        let h = h.trim_end_matches('.').to_ascii_lowercase();
        h == "localhost" || h.ends_with(".localhost")
    })
}

/// Adds the security headers every page and asset of the login gets. The
/// server speaks only HTTPS, so the pages also tell the browser never to
/// try plain HTTP for this host (HSTS): a person who types the address
/// without `https://` on a hostile network is then never sent to an
/// attacker's look-alike.
async fn protect(request: Request, next: Next) -> Response {
    let hsts = !is_localhost(&request);
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    if hsts {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    response
}

async fn script() -> ([(header::HeaderName, &'static str); 1], &'static str) {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../../static/login.js"),
    )
}

async fn chip_script() -> ([(header::HeaderName, &'static str); 1], &'static str) {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../../static/chip.js"),
    )
}

async fn style() -> ([(header::HeaderName, &'static str); 1], &'static str) {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../static/login.css"),
    )
}

/// The value of cookie `name` in the request, if sent once or more (the
/// first wins, as browsers send the most specific path first).
pub(crate) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue, header};

    use super::cookie;

    #[test]
    fn a_cookie_is_found_by_exact_name_in_any_cookie_header() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; eid_x=2"));
        h.append(header::COOKIE, HeaderValue::from_static("eid=3"));
        assert_eq!(cookie(&h, "eid"), Some("3"));
        assert_eq!(cookie(&h, "eid_x"), Some("2"));
        assert_eq!(cookie(&h, "e"), None);
    }
}
