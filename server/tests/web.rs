//! What a web browser or a flood from one address can make the server do,
//! over real TLS on 127.0.0.1 (and 127.0.0.2 as a second address):
//!
//! - a JSON endpoint takes only a body declared `application/json`, so a
//!   page on another site cannot post to it with a form or `text/plain`
//!   (requests a browser sends cross-site without a CORS preflight);
//! - the public endpoints (self-service portal, activation, enrolment) refuse
//!   a request whose `Origin` is another site's;
//! - the unauthenticated endpoints are limited per client address (429 with
//!   `Retry-After`), and the authenticated ones are not.
//!
//! Error codes are compared as the JSON strings the server sends, so each
//! test reads exactly what a client sees. Every loop is bounded.

mod common;

use std::sync::Arc;

use common::Harness;
use eid_protocol::wire;
use eid_server::{Config, ManualClock, RunningServer, ServerOptions};

/// A user ID that passes the rules.
const USER: &str = "Grete#1950x";

/// Requests sent at most while waiting for the per-address limit: far above
/// any default burst, so a missing limit fails the test instead of hanging it.
const FLOOD_AT_MOST: usize = 400;

/// One answer: HTTP version, status, `Retry-After` if any, and the body as JSON (`Null` if
/// it is not JSON).
#[derive(Debug)]
struct Answer {
    version: reqwest::Version,
    status: u16,
    retry_after: Option<String>,
    body: serde_json::Value,
}

impl Answer {
    /// The `error.code` of an error body, if any.
    fn code(&self) -> Option<&str> {
        self.body["error"]["code"].as_str()
    }
}

/// Sends a POST with exactly these headers (`content_type` and `origin` only
/// when given).
async fn post(
    client: &reqwest::Client,
    url: &str,
    content_type: Option<&str>,
    origin: Option<&str>,
    bearer: Option<&str>,
    body: &str,
) -> Answer {
    let mut req = client.post(url).body(body.to_owned());
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let resp = req.send().await.unwrap();
    answer(resp).await
}

async fn answer(resp: reqwest::Response) -> Answer {
    let version = resp.version();
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = resp.bytes().await.unwrap();
    Answer {
        version,
        status,
        retry_after,
        body: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    }
}

fn url(h: &Harness, path: &str) -> String {
    format!("{}{path}", h.endpoint.base_url)
}

/// A self-service start for [`USER`], as a portal page would send it.
fn contact_change_body() -> String {
    serde_json::json!({"user_id": USER, "channel": "phone", "new_value": "+4520304050"}).to_string()
}

/// A made-up change id (32 hex digits).
const SOME_CHANGE: &str = "0123456789abcdef0123456789abcdef";

/// Every endpoint that reads a JSON body, with the credential it needs.
fn json_endpoints(h: &Harness) -> Vec<(String, Option<String>)> {
    let token = Some(h.server().admin_token.to_string());
    let key = Some(h.rp_api_key.clone());
    let mut out = vec![
        ("/v1/admin/identities".to_owned(), token.clone()),
        ("/v1/admin/service-providers".to_owned(), token),
        ("/v1/rp/requests".to_owned(), key),
    ];
    for path in [
        wire::PATH_ACTIVATE,
        wire::PATH_PULL,
        wire::PATH_DECISIONS,
        wire::PATH_BLOCK,
        wire::PATH_ENROLMENTS,
        wire::PATH_ENROLMENT_STATUS,
        wire::PATH_ENROLMENT_CANCEL,
        wire::PATH_DEVICE_SETTINGS,
        wire::PATH_CANCEL_CONTACT_CHANGE,
        wire::PATH_SELF_SERVICE_CONTACT_CHANGES,
        wire::PATH_SELF_SERVICE_USER_ID_CHANGES,
    ] {
        out.push((path.to_owned(), None));
    }
    for path in [
        format!("/v1/self-service/contact-changes/{SOME_CHANGE}/confirm"),
        format!("/v1/self-service/contact-changes/{SOME_CHANGE}/status"),
        format!("/v1/self-service/user-id-changes/{SOME_CHANGE}/status"),
    ] {
        out.push((path, None));
    }
    out
}

/// A server with `tweak` applied to the test configuration.
async fn server_with(dir: &std::path::Path, tweak: impl FnOnce(&mut Config)) -> RunningServer {
    let mut config = common::config(dir);
    tweak(&mut config);
    eid_server::start(ServerOptions {
        config,
        clock: Arc::new(ManualClock::starting_now()),
    })
    .await
    .unwrap()
}

/// A pinned client whose connections come from `local` (a loopback address).
fn client_from(pin: &str, local: [u8; 4]) -> reqwest::Client {
    let tls = eid_core::client::pinned_tls_config(pin).unwrap();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .local_address(std::net::IpAddr::from(local))
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap()
}

// ------------------------------------------------------------ content type

#[tokio::test]
async fn the_portal_refuses_a_form_a_text_plain_or_an_undeclared_body_as_unsupported_media_type() {
    let h = Harness::start().await;
    let c = &h.endpoint.client;
    let body = contact_change_body();
    let at = url(&h, wire::PATH_SELF_SERVICE_CONTACT_CHANGES);
    for content_type in [
        Some("text/plain"),
        Some("text/plain; charset=utf-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/jsonp"),
        Some("application/json; charset=utf-16"),
        None,
    ] {
        let a = post(c, &at, content_type, None, None, &body).await;
        assert_eq!(
            (a.status, a.code()),
            (415, Some("unsupported_media_type")),
            "{content_type:?}: {a:?}"
        );
    }
}

#[tokio::test]
async fn every_json_endpoint_refuses_a_body_not_declared_json_before_anything_else() {
    let h = Harness::start().await;
    let c = &h.endpoint.client;
    for (path, bearer) in json_endpoints(&h) {
        for content_type in [Some("text/plain"), None] {
            let a = post(
                c,
                &url(&h, &path),
                content_type,
                None,
                bearer.as_deref(),
                "{}",
            )
            .await;
            assert_eq!(
                (a.status, a.code()),
                (415, Some("unsupported_media_type")),
                "{path} {content_type:?}: {a:?}"
            );
        }
    }
}

#[tokio::test]
async fn json_with_a_charset_or_in_capitals_is_accepted() {
    let h = Harness::start().await;
    let c = &h.endpoint.client;
    let at = url(&h, wire::PATH_SELF_SERVICE_CONTACT_CHANGES);
    for content_type in [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON;charset=\"UTF-8\"",
    ] {
        let a = post(
            c,
            &at,
            Some(content_type),
            None,
            None,
            &contact_change_body(),
        )
        .await;
        assert_eq!(a.status, 201, "{content_type}: {a:?}");
    }
}

// ------------------------------------------------------------------ origin

#[tokio::test]
async fn a_public_endpoint_refuses_another_sites_origin_and_takes_its_own_or_none() {
    let h = Harness::start().await;
    let c = &h.endpoint.client;
    let json = Some("application/json");
    let public = [
        wire::PATH_SELF_SERVICE_CONTACT_CHANGES.to_owned(),
        wire::PATH_SELF_SERVICE_USER_ID_CHANGES.to_owned(),
        format!("/v1/self-service/contact-changes/{SOME_CHANGE}/confirm"),
        format!("/v1/self-service/contact-changes/{SOME_CHANGE}/status"),
        format!("/v1/self-service/user-id-changes/{SOME_CHANGE}/status"),
        wire::PATH_ACTIVATE.to_owned(),
        wire::PATH_ENROLMENTS.to_owned(),
        wire::PATH_ENROLMENT_STATUS.to_owned(),
    ];
    for path in &public {
        for origin in [
            "https://evil.example",
            "null",
            // Same host, another scheme or port: another origin.
            &h.endpoint.base_url.replace("https://", "http://"),
            "https://127.0.0.1:1",
        ] {
            let a = post(c, &url(&h, path), json, Some(origin), None, "{}").await;
            assert_eq!(
                (a.status, a.code()),
                (403, Some("origin_refused")),
                "{path} from {origin}: {a:?}"
            );
        }
    }
    // The server's own origin and no origin at all (the CLI, the apps) pass.
    let at = url(&h, wire::PATH_SELF_SERVICE_CONTACT_CHANGES);
    let own = h.endpoint.base_url.clone();
    for origin in [Some(own.as_str()), None] {
        let a = post(c, &at, json, origin, None, &contact_change_body()).await;
        assert_eq!(a.status, 201, "{origin:?}: {a:?}");
    }
    // Over HTTP/2 the host comes from `:authority`, not a Host header.
    let h2 = eid_api_client::Endpoint::new_http2(&own, &h.server().spki_pin).unwrap();
    let a = post(
        &h2.client,
        &at,
        json,
        Some(&own),
        None,
        &contact_change_body(),
    )
    .await;
    assert_eq!(
        (a.version, a.status),
        (reqwest::Version::HTTP_2, 201),
        "{a:?}"
    );
    let a = post(
        &h2.client,
        &at,
        json,
        Some("https://evil.example"),
        None,
        "{}",
    )
    .await;
    assert_eq!((a.status, a.code()), (403, Some("origin_refused")), "{a:?}");
}

#[tokio::test]
async fn a_configured_origin_is_allowed_and_others_still_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::from_toml_str(r#"allowed_origins = ["https://portal.eid.example"]"#)
        .expect("allowed_origins is a setting");
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.data_dir = dir.path().to_owned();
    let server = eid_server::start(ServerOptions::new(config)).await.unwrap();
    let c = client_from(&server.spki_pin, [127, 0, 0, 1]);
    let at = format!(
        "{}{}",
        server.base_url(),
        wire::PATH_SELF_SERVICE_CONTACT_CHANGES
    );
    let json = Some("application/json");
    let body = contact_change_body();
    let a = post(
        &c,
        &at,
        json,
        Some("https://portal.eid.example"),
        None,
        &body,
    )
    .await;
    assert_eq!(a.status, 201, "{a:?}");
    let a = post(&c, &at, json, Some("https://evil.example"), None, &body).await;
    assert_eq!((a.status, a.code()), (403, Some("origin_refused")), "{a:?}");
    server.shutdown().await;
}

#[test]
fn an_allowed_origin_that_is_not_an_origin_is_a_configuration_error() {
    for bad in [
        r#"allowed_origins = ["portal.eid.example"]"#,
        r#"allowed_origins = ["https://portal.eid.example/path"]"#,
        r#"allowed_origins = ["*"]"#,
    ] {
        assert!(Config::from_toml_str(bad).is_err(), "{bad}");
    }
}

// ------------------------------------------------------- per-address limits

/// Polls a self-service status from `client` until the server answers 429,
/// at most [`FLOOD_AT_MOST`] times; the 429 if it came.
async fn flood_until_limited(client: &reqwest::Client, base: &str) -> Option<Answer> {
    let at = format!("{base}/v1/self-service/contact-changes/{SOME_CHANGE}/status");
    let body = serde_json::json!({ "user_id": USER }).to_string();
    for _ in 0..FLOOD_AT_MOST {
        let a = post(client, &at, Some("application/json"), None, None, &body).await;
        match a.status {
            429 => return Some(a),
            404 => {}
            other => panic!("unexpected {other}: {a:?}"),
        }
    }
    None
}

#[tokio::test]
async fn a_flood_of_portal_calls_from_one_address_gets_429_with_retry_after() {
    let h = Harness::start().await;
    let limited = flood_until_limited(&h.endpoint.client, &h.endpoint.base_url)
        .await
        .expect("the portal is limited per address");
    assert_eq!(limited.code(), Some("rate_limited"), "{limited:?}");
    let secs: u64 = limited
        .retry_after
        .as_deref()
        .expect("a Retry-After header")
        .parse()
        .expect("Retry-After in whole seconds");
    assert!((1..=60).contains(&secs), "{secs}");
}

#[tokio::test]
async fn a_limited_address_is_held_on_every_public_endpoint_and_holds_back_no_one_else() {
    // Five at once, then one a minute: nothing refills during the test.
    let h = Harness::start_with(|c| {
        c.floods.per_address.per_minute = 1;
        c.floods.per_address.burst = 5;
    })
    .await;
    // The activation takes one call of the five.
    let (identity, phone) = h.person(USER).await;
    let limited = flood_until_limited(&h.endpoint.client, &h.endpoint.base_url)
        .await
        .expect("the portal is limited per address");
    assert_eq!(limited.code(), Some("rate_limited"), "{limited:?}");

    // The other public endpoints share the address's budget.
    let a = post(
        &h.endpoint.client,
        &url(&h, wire::PATH_ACTIVATE),
        Some("application/json"),
        None,
        None,
        "{}",
    )
    .await;
    assert_eq!((a.status, a.code()), (429, Some("rate_limited")), "{a:?}");
    let e = h.rp.server_key().await.unwrap_err();
    assert_eq!(e.code(), Some(wire::ErrorCode::RateLimited), "{e}");

    // Another address is not held back by this one's flood.
    let other = client_from(&h.server().spki_pin, [127, 0, 0, 2]);
    let a = post(
        &other,
        &url(
            &h,
            &format!("/v1/self-service/contact-changes/{SOME_CHANGE}/status"),
        ),
        Some("application/json"),
        None,
        None,
        &serde_json::json!({ "user_id": USER }).to_string(),
    )
    .await;
    assert_eq!(a.status, 404, "{a:?}");

    // Authenticated callers from the limited address are not limited: the
    // admin, a service provider and a phone's signed pull.
    h.admin.identity(identity).await.unwrap();
    h.rp.create_request(USER, eid_protocol::RequestKind::Login, "Log in", None)
        .await
        .unwrap();
    eid_api_client::SoftPhone::pull(&h.endpoint, &[&phone], h.now())
        .await
        .unwrap();
}

#[tokio::test]
async fn the_authenticated_apis_are_not_limited_per_address() {
    let h = Harness::start().await;
    let (identity, phone) = h.person(USER).await;
    for _ in 0..FLOOD_AT_MOST / 2 {
        h.admin.identity(identity).await.unwrap();
        eid_api_client::SoftPhone::pull(&h.endpoint, &[&phone], h.now())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn rate_limits_off_turns_the_per_address_limit_off_too() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with(dir.path(), |c| {
        c.floods = eid_server::config::FloodConfig::rate_limits_off();
    })
    .await;
    let c = client_from(&server.spki_pin, [127, 0, 0, 1]);
    assert!(
        flood_until_limited(&c, &server.base_url()).await.is_none(),
        "no 429 with the rate limits off"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn the_configured_burst_and_rate_are_the_ones_applied() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with(dir.path(), |c| {
        c.floods.per_address.per_minute = 1;
        c.floods.per_address.burst = 3;
    })
    .await;
    let c = client_from(&server.spki_pin, [127, 0, 0, 1]);
    let at = format!("{}/healthz", server.base_url());
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let a = answer(c.get(&at).send().await.unwrap()).await;
        statuses.push((a.status, a.retry_after));
    }
    // Three at once, then one a minute: the fourth waits about a minute
    // (less the time the first three took).
    assert_eq!(statuses[..3], [(200, None), (200, None), (200, None)]);
    assert_eq!(statuses[3].0, 429);
    let secs: u64 = statuses[3].1.as_deref().unwrap().parse().unwrap();
    assert!((50..=60).contains(&secs), "{secs}");
    server.shutdown().await;
}

#[test]
fn the_per_address_limit_reads_from_the_configuration_file() {
    let config =
        Config::from_toml_str("[floods.per_address]\nper_minute = 30\nburst = 5\n").unwrap();
    let p = &config.floods.per_address;
    assert_eq!((p.per_minute, p.burst), (30, 5));
    let defaults = Config::default().floods.per_address;
    assert_eq!((defaults.per_minute, defaults.burst), (120, 60));
    // Off is per_minute 0; a limit that is on needs a bucket of at least 1.
    assert!(Config::from_toml_str("[floods.per_address]\nper_minute = 0\nburst = 0\n").is_ok());
    assert!(Config::from_toml_str("[floods.per_address]\nburst = 0\n").is_err());
}
