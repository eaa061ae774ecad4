//! The self-service pages (docs/self-service.md) driven like a browser
//! without JavaScript, over real TLS: the test keeps the cookies, reads the
//! CSRF token and the binding code out of the HTML, follows the redirects,
//! and approves in the app with a soft phone that types the code shown.
//! Time moves with the server's manual clock.

mod common;
// The OIDC tests' client fixtures, for the chip's login at level High.
#[allow(dead_code)]
#[path = "oidc/support.rs"]
mod support;

use std::collections::BTreeMap;

use common::Harness;
use common::hardware::{deactivate_hardware, hardware_list};
use eid_api_client::SoftPhone;
use eid_protocol::wire::CreateIdentityRequest;
use eid_protocol::{Outcome, RequestKind};
use eid_server::config::PerAddressConfig;
use eid_server::contact::{mask_email, mask_phone};

const USER: &str = "Grete#1950x";
const PHONE: &str = "+4520304050";
const EMAIL: &str = "grete@example.dk";
const NEW_PHONE: &str = "+4560708090";
const HOUR_MS: u64 = 3_600_000;
const SESSION_MS: u64 = 15 * 60 * 1000;

/// One answer as a browser sees it.
#[derive(Debug)]
struct Page {
    status: u16,
    location: Option<String>,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Page {
    /// The text of the element with this id (up to its first tag).
    fn text(&self, id: &str) -> Option<String> {
        let start = self.body.find(&format!("id=\"{id}\""))?;
        let rest = &self.body[start..];
        let open = rest.find('>')? + 1;
        let close = rest[open..].find('<')?;
        Some(rest[open..open + close].to_owned())
    }

    /// The value of the first hidden field with this name.
    fn field(&self, name: &str) -> Option<String> {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self.body.find(&marker)? + marker.len();
        let end = self.body[start..].find('"')?;
        Some(self.body[start..start + end].to_owned())
    }

    /// The binding code as the person types it (without the space).
    fn code(&self) -> String {
        self.text("binding-code")
            .expect("a binding code on the page")
            .replace(' ', "")
    }
}

/// A browser: its own cookies, no automatic redirects.
struct Browser {
    client: reqwest::Client,
    base: String,
    jar: BTreeMap<String, String>,
    /// The `Host` it names (a WebAuthn relying party must be a domain, not
    /// the IP address the test connects to): `None` for the address's own.
    host: Option<String>,
}

impl Browser {
    fn new(h: &Harness) -> Self {
        let tls = eid_core::client::pinned_tls_config(&h.server().spki_pin).unwrap();
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .unwrap();
        Self {
            client,
            base: h.endpoint.base_url.trim_end_matches('/').to_owned(),
            jar: BTreeMap::new(),
            host: None,
        }
    }

    /// The same browser calling the server by the name `localhost`.
    fn on_localhost(mut self) -> Self {
        let port = self.base.rsplit(':').next().unwrap().to_owned();
        self.host = Some(format!("localhost:{port}"));
        self
    }

    fn with_host(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.host {
            Some(host) => request.header("host", host),
            None => request,
        }
    }

    fn cookie_header(&self) -> String {
        self.jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn answer(&mut self, resp: reqwest::Response) -> Page {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        for set in headers.get_all("set-cookie") {
            let set = set.to_str().unwrap();
            let (pair, attributes) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if attributes.contains("Max-Age=0") {
                self.jar.remove(name);
            } else {
                self.jar.insert(name.to_owned(), value.to_owned());
            }
        }
        let location = headers
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        Page {
            status,
            location,
            headers,
            body: resp.text().await.unwrap(),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let resp = self
            .with_host(self.client.get(format!("{}{path}", self.base)))
            .header("cookie", self.cookie_header())
            .header("accept-language", "da")
            .send()
            .await
            .unwrap();
        self.answer(resp).await
    }

    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let resp = self
            .with_host(self.client.post(format!("{}{path}", self.base)))
            .header("cookie", self.cookie_header())
            .header("accept-language", "da")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        self.answer(resp).await
    }

    /// Follows `page`'s redirects (at most five).
    async fn follow(&mut self, mut page: Page) -> Page {
        for _ in 0..5 {
            match (page.status, page.location.clone()) {
                (303, Some(to)) => page = self.get(&to).await,
                _ => return page,
            }
        }
        panic!("too many redirects");
    }

    /// Types the user ID on the sign-in page; returns the page that follows.
    async fn type_user_id(&mut self, user_id: &str) -> Page {
        let form = self.get("/self-service?again=1").await;
        assert_eq!(form.status, 200, "{}", form.body);
        let csrf = form.field("csrf").expect("csrf on the sign-in form");
        let sent = self
            .post(
                "/self-service/sign-in",
                &[("csrf", &csrf), ("user_id", user_id)],
            )
            .await;
        assert_eq!(sent.status, 303, "{}", sent.body);
        self.follow(sent).await
    }
}

/// A server without the per-address limit (these tests load many pages).
async fn server() -> Harness {
    Harness::start_with(|c| c.floods.per_address = PerAddressConfig::off()).await
}

/// A person with a phone number, an e-mail address and an activated app.
async fn person(h: &Harness) -> SoftPhone {
    let created = h
        .admin
        .create_identity_with(&CreateIdentityRequest {
            user_id: USER.into(),
            display_name: None,
            phone: Some(PHONE.into()),
            email: Some(EMAIL.into()),
        })
        .await
        .unwrap();
    h.add_phone(created.identity_id, USER).await
}

/// The phone approves the one pending self-service request, typing `code`.
async fn approve(h: &Harness, phone: &mut SoftPhone, code: &str) {
    decide(h, phone, code, Outcome::Approve).await;
}

async fn decide(h: &Harness, phone: &mut SoftPhone, code: &str, outcome: Outcome) {
    let pulled = SoftPhone::pull(&h.endpoint, &[&*phone], h.now())
        .await
        .unwrap();
    let pending: Vec<_> = pulled.accounts[0]
        .requests
        .iter()
        .filter(|r| r.envelope.kind == RequestKind::SelfService)
        .map(|r| r.envelope.clone())
        .collect();
    assert_eq!(pending.len(), 1, "one self-service request in the app");
    let decision = phone.decide(&pending[0], outcome, Some(code.to_owned()), true);
    phone.submit(&h.endpoint, &decision).await.unwrap();
}

/// Signs in through the pages; returns the overview.
async fn sign_in(h: &Harness, browser: &mut Browser, phone: &mut SoftPhone) -> Page {
    let waiting = browser.type_user_id(USER).await;
    assert_eq!(waiting.status, 200, "{}", waiting.body);
    approve(h, phone, &waiting.code()).await;
    // Without JavaScript the page reloads itself, and moves on.
    let overview = browser.get("/self-service").await;
    assert_eq!(overview.location.as_deref(), Some("/self-service/account"));
    let overview = browser.follow(overview).await;
    assert_eq!(overview.status, 200, "{}", overview.body);
    overview
}

/// Deliveries of events of `kind` to `address`.
fn deliveries_to(h: &Harness, kind: &str, address: &str) -> i64 {
    h.database()
        .query_row(
            "SELECT COUNT(*) FROM event_deliveries d JOIN security_events e ON e.id = d.event_id \
             WHERE e.kind = ?1 AND d.address = ?2",
            rusqlite::params![kind, address],
            |r| r.get(0),
        )
        .unwrap()
}

fn open_changes(h: &Harness) -> i64 {
    h.count(
        "SELECT COUNT(*) FROM self_service_changes WHERE state IN \
             ('awaiting_first_login', 'waiting_second_login', 'awaiting_second_login')",
    )
}

/// Starts a phone change from the overview and approves its first login.
async fn start_phone_change(
    h: &Harness,
    browser: &mut Browser,
    phone: &mut SoftPhone,
    overview: &Page,
) -> Page {
    let csrf = overview.field("csrf").unwrap();
    let started = browser
        .post(
            "/self-service/phone",
            &[("csrf", &csrf), ("new_value", NEW_PHONE)],
        )
        .await;
    assert_eq!(started.location.as_deref(), Some("/self-service/change"));
    let waiting = browser.follow(started).await;
    assert_eq!(waiting.status, 200, "{}", waiting.body);
    approve(h, phone, &waiting.code()).await;
    let back = browser.get("/self-service/change").await;
    assert_eq!(back.location.as_deref(), Some("/self-service/account"));
    browser.follow(back).await
}

#[tokio::test]
async fn a_person_signs_in_with_the_app_and_sees_their_user_id_masked_contact_data_and_app() {
    let h = server().await;
    let mut phone = person(&h).await;
    let mut browser = Browser::new(&h);
    let waiting = browser.type_user_id(USER).await;
    assert!(
        waiting
            .body
            .contains("<noscript><meta http-equiv=\"refresh\" content=\"3\"></noscript>")
    );
    assert!(waiting.body.contains("aria-live=\"polite\""));
    let csp = waiting.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
    // The script's status says the same as the page.
    let status: serde_json::Value =
        serde_json::from_str(&browser.get("/self-service/sign-in/status").await.body).unwrap();
    assert_eq!(status["state"], "waiting");
    assert_eq!(
        status["code"].as_str().unwrap().replace(' ', ""),
        waiting.code()
    );
    let qr = browser.get("/self-service/sign-in/qr.svg").await;
    assert_eq!(qr.status, 200);
    assert!(qr.body.contains("<svg"));

    approve(&h, &mut phone, &waiting.code()).await;
    let session = browser
        .jar
        .get("__Host-eid_ss")
        .cloned()
        .expect("session cookie");
    let overview = browser.get("/self-service").await;
    let overview = browser.follow(overview).await;
    assert_eq!(overview.text("user-id-value").as_deref(), Some(USER));
    assert_eq!(overview.text("phone-value"), Some(mask_phone(PHONE)));
    assert_eq!(overview.text("email-value"), Some(mask_email(EMAIL)));
    assert!(!overview.body.contains(PHONE) && !overview.body.contains(EMAIL));
    assert_eq!(overview.body.matches("class=\"authenticator\"").count(), 1);
    assert!(overview.text("no-changes").is_some());
    assert_eq!(overview.text("session-left").as_deref(), Some("om 15 min"));
    // The session is the one cookie set at the sign-in, for this site only.
    assert_eq!(browser.jar.get("__Host-eid_ss"), Some(&session));

    // Signing out forgets it.
    let csrf = overview.field("csrf").unwrap();
    let out = browser
        .post("/self-service/sign-out", &[("csrf", &csrf)])
        .await;
    assert_eq!(out.status, 200);
    assert!(!browser.jar.contains_key("__Host-eid_ss"));
    assert_eq!(browser.get("/self-service/account").await.status, 403);
}

#[tokio::test]
async fn the_pages_tell_browsers_to_keep_to_https_except_by_the_name_localhost() {
    let h = server().await;
    let mut browser = Browser::new(&h);
    let page = browser.get("/self-service").await;
    assert_eq!(
        page.headers
            .get("strict-transport-security")
            .map(|v| v.to_str().unwrap()),
        Some("max-age=31536000"),
        "a real host's pages"
    );
    let mut local = Browser::new(&h).on_localhost();
    let page = local.get("/self-service").await;
    assert!(
        page.headers.get("strict-transport-security").is_none(),
        "no year of HTTPS-only for every local development server"
    );
    assert!(
        page.headers.get("content-security-policy").is_some(),
        "the other headers stay"
    );
}

#[tokio::test]
async fn the_session_cookie_is_host_only_secure_http_only_and_strict() {
    let h = server().await;
    person(&h).await;
    let mut browser = Browser::new(&h);
    let form = browser.get("/self-service").await;
    let csrf = form.field("csrf").unwrap();
    let sent = browser
        .post(
            "/self-service/sign-in",
            &[("csrf", &csrf), ("user_id", USER)],
        )
        .await;
    let set: Vec<&str> = sent
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    let session = set
        .iter()
        .find(|c| c.starts_with("__Host-eid_ss="))
        .unwrap();
    for attribute in ["Path=/", "Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(session.contains(attribute), "{session}");
    }
    assert!(!sent.location.unwrap().contains("Grete"));
}

#[tokio::test]
async fn a_phone_change_needs_a_second_login_after_the_gap_refused_before_it_and_told_to_both_contacts()
 {
    let h = server().await;
    let mut phone = person(&h).await;
    let mut browser = Browser::new(&h);
    let overview = sign_in(&h, &mut browser, &mut phone).await;
    let overview = start_phone_change(&h, &mut browser, &mut phone, &overview).await;
    assert!(
        overview
            .body
            .contains("data-state=\"waiting_second_login\""),
        "{}",
        overview.body
    );
    assert!(overview.body.contains(&mask_phone(NEW_PHONE)));
    assert!(overview.body.contains("(om 60 min)"), "{}", overview.body);
    assert!(
        !overview.body.contains("class=\"confirm-form\""),
        "no second login before its time"
    );

    // Asked for anyway before the gap: refused under the API's rule, and
    // the attempt told to the old and the new number.
    let told_before = deliveries_to(&h, "contact_change_started", NEW_PHONE);
    h.clock.advance_ms(10 * 60 * 1000);
    let change_id = overview.field("change_id").unwrap();
    let csrf = overview.field("csrf").unwrap();
    let early = browser
        .post(
            "/self-service/confirm",
            &[("csrf", &csrf), ("change_id", &change_id)],
        )
        .await;
    assert_eq!(early.status, 409, "{}", early.body);
    assert!(early.text("message").unwrap().contains("om 50 min"));
    assert_eq!(
        deliveries_to(&h, "contact_change_started", NEW_PHONE),
        told_before + 1
    );
    assert!(deliveries_to(&h, "contact_change_started", PHONE) >= 2);

    // After the gap (and a new sign-in: the session is over by then) the
    // second login completes the change.
    h.clock.advance_ms(HOUR_MS);
    assert_eq!(browser.get("/self-service/account").await.status, 401);
    let overview = sign_in(&h, &mut browser, &mut phone).await;
    assert!(
        overview.body.contains("class=\"confirm-form\""),
        "{}",
        overview.body
    );
    let csrf = overview.field("csrf").unwrap();
    let asked = browser
        .post(
            "/self-service/confirm",
            &[("csrf", &csrf), ("change_id", &change_id)],
        )
        .await;
    assert_eq!(asked.location.as_deref(), Some("/self-service/change"));
    let waiting = browser.follow(asked).await;
    approve(&h, &mut phone, &waiting.code()).await;
    let done = browser.get("/self-service/change").await;
    let done = browser.follow(done).await;
    assert_eq!(done.text("phone-value"), Some(mask_phone(NEW_PHONE)));
    assert!(done.text("no-changes").is_some());
    assert_eq!(open_changes(&h), 0);
}

#[tokio::test]
async fn an_open_change_is_cancelled_from_the_page_and_both_contacts_are_told() {
    let h = server().await;
    let mut phone = person(&h).await;
    let mut browser = Browser::new(&h);
    let overview = sign_in(&h, &mut browser, &mut phone).await;
    let overview = start_phone_change(&h, &mut browser, &mut phone, &overview).await;
    assert_eq!(open_changes(&h), 1);
    let csrf = overview.field("csrf").unwrap();
    let change_id = overview.field("change_id").unwrap();
    let cancelled = browser
        .post(
            "/self-service/cancel",
            &[("csrf", &csrf), ("change_id", &change_id)],
        )
        .await;
    let after = browser.follow(cancelled).await;
    assert_eq!(after.status, 200);
    assert!(after.text("message").is_some());
    assert!(after.text("no-changes").is_some());
    assert_eq!(open_changes(&h), 0);
    assert_eq!(deliveries_to(&h, "contact_change_cancelled", PHONE), 1);
    assert_eq!(deliveries_to(&h, "contact_change_cancelled", NEW_PHONE), 1);
    // Cancelling it again finds nothing open.
    let again = browser
        .post(
            "/self-service/cancel",
            &[("csrf", &csrf), ("change_id", &change_id)],
        )
        .await;
    assert_eq!(again.status, 409);
}

#[tokio::test]
async fn a_form_without_its_csrf_token_is_refused_and_changes_nothing() {
    let h = server().await;
    let mut phone = person(&h).await;
    let mut browser = Browser::new(&h);
    let overview = sign_in(&h, &mut browser, &mut phone).await;
    let csrf = overview.field("csrf").unwrap();
    let wrong = "0".repeat(64);
    for fields in [
        vec![("new_value", NEW_PHONE)],
        vec![("csrf", wrong.as_str()), ("new_value", NEW_PHONE)],
    ] {
        let refused = browser.post("/self-service/phone", &fields).await;
        assert_eq!(refused.status, 400, "{}", refused.body);
    }
    assert_eq!(open_changes(&h), 0);
    // The sign-in form needs its token too.
    let mut other = Browser::new(&h);
    other.get("/self-service").await;
    let refused = other
        .post("/self-service/sign-in", &[("user_id", USER)])
        .await;
    assert_eq!(refused.status, 400);
    assert!(!other.jar.contains_key("__Host-eid_ss"));
    // With the token it goes through.
    let started = browser
        .post(
            "/self-service/phone",
            &[("csrf", &csrf), ("new_value", NEW_PHONE)],
        )
        .await;
    assert_eq!(started.status, 303);
    assert_eq!(open_changes(&h), 1);
}

#[tokio::test]
async fn another_browser_without_the_cookie_is_refused_403_and_can_do_nothing() {
    let h = server().await;
    let mut phone = person(&h).await;
    let mut browser = Browser::new(&h);
    let overview = sign_in(&h, &mut browser, &mut phone).await;
    let csrf = overview.field("csrf").unwrap();
    let mut stranger = Browser::new(&h);
    for path in ["/self-service/account", "/self-service/change"] {
        assert_eq!(stranger.get(path).await.status, 403, "{path}");
    }
    assert_eq!(
        stranger.get("/self-service/sign-in/status").await.status,
        403
    );
    let refused = stranger
        .post(
            "/self-service/phone",
            &[("csrf", &csrf), ("new_value", NEW_PHONE)],
        )
        .await;
    assert_eq!(refused.status, 403);
    // A made-up session cookie is no better.
    stranger.jar.insert("__Host-eid_ss".into(), "AAAA".into());
    assert_eq!(stranger.get("/self-service/account").await.status, 403);
    assert_eq!(open_changes(&h), 0);
}

/// The page with the parts that differ between any two sign-ins (the code,
/// the time left, the form's token) taken out.
fn shape(page: &Page) -> String {
    let mut body = page.body.clone();
    for id in ["binding-code", "countdown"] {
        if let Some(text) = page.text(id) {
            body = body.replace(&format!("id=\"{id}\">{text}<"), &format!("id=\"{id}\"><"));
        }
    }
    body
}

#[tokio::test]
async fn an_unknown_user_id_gets_the_same_pages_as_a_known_one_and_never_signs_in() {
    let h = server().await;
    let _phone = person(&h).await;
    let mut known = Browser::new(&h);
    let mut unknown = Browser::new(&h);
    let a = known.type_user_id(USER).await;
    let b = unknown.type_user_id("Nobody#1900z").await;
    assert_eq!((a.status, b.status), (200, 200));
    assert_eq!(shape(&a), shape(&b));
    assert_eq!(b.code().len(), 8);
    // The stand-in's status looks like a real one's.
    let status: serde_json::Value =
        serde_json::from_str(&unknown.get("/self-service/sign-in/status").await.body).unwrap();
    assert_eq!(status["state"], "waiting");
    // It lapses like a real one.
    h.clock.advance_ms(300_000);
    let lapsed = unknown.get("/self-service").await;
    assert!(lapsed.text("user-id-form").is_some() || lapsed.body.contains("id=\"user-id-form\""));
    assert_eq!(unknown.get("/self-service/account").await.status, 403);
}

/// A commit waits for its fsync (milliseconds): a sign-in for a known user
/// ID stored its request durably, while an unknown one got its stand-in
/// without any durable write, so the answer's time told them apart. Each
/// now makes one durable write of one row (the request, or a nonce nobody
/// will present).
#[tokio::test]
async fn a_sign_in_writes_as_much_for_an_unknown_user_id_as_for_a_known_one() {
    let h = server().await;
    let _phone = person(&h).await;
    let rows = |h: &Harness| -> i64 {
        h.count("SELECT (SELECT COUNT(*) FROM requests) + (SELECT COUNT(*) FROM nonces)")
    };
    let mut written = Vec::new();
    for user_id in [USER, "Nobody#1900z"] {
        let mut browser = Browser::new(&h);
        let before = rows(&h);
        assert_eq!(browser.type_user_id(user_id).await.status, 200);
        written.push(rows(&h) - before);
    }
    assert_eq!(written, vec![1, 1], "rows written");
}

#[tokio::test]
async fn a_session_ends_fifteen_minutes_after_the_approval() {
    let h = server().await;
    let mut phone = person(&h).await;
    let mut browser = Browser::new(&h);
    sign_in(&h, &mut browser, &mut phone).await;
    h.clock.advance_ms(SESSION_MS - 1_000);
    assert_eq!(browser.get("/self-service/account").await.status, 200);
    h.clock.advance_ms(1_000);
    let over = browser.get("/self-service/account").await;
    assert_eq!(over.status, 401);
    assert!(over.text("outcome").is_some());
    assert!(
        !browser.jar.contains_key("__Host-eid_ss"),
        "the cookie is cleared"
    );
    // The sign-in page offers a new sign-in.
    let again = browser.get("/self-service").await;
    assert!(again.body.contains("id=\"user-id-form\""));
}

#[tokio::test]
async fn a_refused_sign_in_opens_no_session_and_offers_to_try_again() {
    let h = server().await;
    let mut phone = person(&h).await;
    let mut browser = Browser::new(&h);
    let waiting = browser.type_user_id(USER).await;
    decide(&h, &mut phone, &waiting.code(), Outcome::Deny).await;
    let refused = browser.get("/self-service").await;
    assert_eq!(refused.status, 200);
    assert!(refused.text("outcome").is_some());
    assert_eq!(browser.get("/self-service/account").await.status, 403);
}

#[tokio::test]
async fn a_user_id_change_started_on_the_page_applies_with_its_one_approval() {
    let h = server().await;
    let mut phone = person(&h).await;
    let mut browser = Browser::new(&h);
    let overview = sign_in(&h, &mut browser, &mut phone).await;
    let csrf = overview.field("csrf").unwrap();
    let bad = browser
        .post(
            "/self-service/user-id",
            &[("csrf", &csrf), ("new_user_id", "short")],
        )
        .await;
    assert_eq!(bad.status, 422);
    assert!(bad.body.contains("value=\"short\""));
    let started = browser
        .post(
            "/self-service/user-id",
            &[("csrf", &csrf), ("new_user_id", "Grete#2026new")],
        )
        .await;
    let waiting = browser.follow(started).await;
    approve(&h, &mut phone, &waiting.code()).await;
    let done = browser.get("/self-service/change").await;
    let done = browser.follow(done).await;
    assert_eq!(done.text("user-id-value").as_deref(), Some("Grete#2026new"));
}

#[tokio::test]
async fn one_address_gets_a_few_sign_ins_per_user_id_an_hour_known_or_not() {
    let h = server().await;
    person(&h).await;
    for user_id in [USER, "Nobody#1900z"] {
        let mut browser = Browser::new(&h);
        for _ in 0..5 {
            assert_eq!(browser.type_user_id(user_id).await.status, 200);
        }
        let form = browser.get("/self-service?again=1").await;
        let csrf = form.field("csrf").unwrap();
        let refused = browser
            .post(
                "/self-service/sign-in",
                &[("csrf", &csrf), ("user_id", user_id)],
            )
            .await;
        assert_eq!(refused.status, 429, "{user_id}");
        assert!(refused.text("user-id-error").is_some());
    }
    h.clock.advance_ms(HOUR_MS);
    let mut browser = Browser::new(&h);
    assert_eq!(browser.type_user_id(USER).await.status, 200);
}

#[tokio::test]
async fn a_session_survives_a_server_restart_until_its_end() {
    let mut h = server().await;
    let mut phone = person(&h).await;
    let mut browser = Browser::new(&h);
    sign_in(&h, &mut browser, &mut phone).await;
    let server = h.server.take().unwrap();
    server.shutdown().await;
    let restarted = eid_server::start(eid_server::ServerOptions {
        config: common::config(h.dir.path()),
        clock: h.clock.clone(),
    })
    .await
    .unwrap();
    browser.base = restarted.base_url().trim_end_matches('/').to_owned();
    let overview = browser.get("/self-service/account").await;
    assert_eq!(overview.status, 200, "{}", overview.body);
    assert_eq!(overview.text("user-id-value").as_deref(), Some(USER));
    h.clock.advance_ms(SESSION_MS);
    assert_eq!(browser.get("/self-service/account").await.status, 401);
    restarted.shutdown().await;
}

#[tokio::test]
async fn a_bad_phone_number_or_e_mail_address_is_refused_with_the_reason_and_changes_nothing() {
    let h = server().await;
    let mut phone = person(&h).await;
    let mut browser = Browser::new(&h);
    let overview = sign_in(&h, &mut browser, &mut phone).await;
    let csrf = overview.field("csrf").unwrap();
    for (path, value) in [
        ("/self-service/phone", "call me"),
        ("/self-service/email", "not-an-address"),
    ] {
        let refused = browser
            .post(path, &[("csrf", &csrf), ("new_value", value)])
            .await;
        assert_eq!(refused.status, 422, "{path}");
        assert!(refused.text("message").is_some());
        assert!(refused.body.contains(&format!("value=\"{value}\"")));
    }
    assert_eq!(open_changes(&h), 0);
}

#[tokio::test]
async fn a_persons_pending_cap_does_not_tell_a_stranger_that_their_user_id_exists() {
    // One pending request per person: a second sign-in for the known user
    // ID meets the person's cap, which an unknown user ID never does.
    let h = Harness::start_with(|c| {
        c.floods.per_address = PerAddressConfig::off();
        c.max_pending_per_identity = 1;
    })
    .await;
    let _phone = person(&h).await;
    for user_id in [USER, "Nobody#1900z"] {
        let first = Browser::new(&h).type_user_id(user_id).await;
        let second = Browser::new(&h).type_user_id(user_id).await;
        assert_eq!((first.status, second.status), (200, 200), "{user_id}");
        assert_eq!(shape(&first), shape(&second), "{user_id}");
        assert_eq!(second.code().len(), 8);
    }
}

#[tokio::test]
async fn a_copy_of_the_session_cookie_opens_nothing_after_sign_out() {
    let h = server().await;
    let mut phone = person(&h).await;
    let mut browser = Browser::new(&h);
    let overview = sign_in(&h, &mut browser, &mut phone).await;
    // Someone copies the cookies (a shared computer, a proxy log).
    let copied = browser.cookie_header();
    let csrf = overview.field("csrf").expect("the sign-out form's csrf");
    let out = browser
        .post("/self-service/sign-out", &[("csrf", &csrf)])
        .await;
    assert_eq!(out.status, 200, "{}", out.body);
    let mut other = Browser::new(&h);
    for pair in copied.split("; ") {
        let (k, v) = pair.split_once('=').unwrap();
        other.jar.insert(k.to_owned(), v.to_owned());
    }
    let account = other.get("/self-service/account").await;
    assert_ne!(account.status, 200, "{}", account.body);
    assert!(!account.body.contains(USER), "no account data");
    // Nor does the signed-out browser get back in by the same request.
    assert_ne!(browser.get("/self-service/account").await.status, 200);
}

// ------------------------------------------------------------------ chip

/// The WebAuthn options a chip page put into its form's `data-options`.
fn chip_options(page: &Page) -> String {
    let marker = "data-options=\"";
    let start = page.body.find(marker).expect("a chip form") + marker.len();
    let end = page.body[start..].find('"').unwrap();
    // Askama escapes the attribute; undo the few escapes JSON can contain.
    page.body[start..start + end]
        .replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

const CHIP_CODE: &str = "violet-harbour-42";

/// Registers a chip on the pages (step 1); returns the software chip.
async fn register_chip(
    h: &Harness,
    browser: &mut Browser,
    phone: &mut SoftPhone,
) -> common::soft_chip::SoftChip {
    sign_in(h, browser, phone).await;
    let page = browser.get("/self-service/chip").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let origin = format!("https://{}", browser.host.clone().unwrap());
    let mut chip = common::soft_chip::SoftChip::new(&origin);
    let credential = chip.register(&chip_options(&page));
    let sent = browser
        .post(
            "/self-service/chip/register",
            &[
                ("csrf", &page.field("csrf").unwrap()),
                ("ceremony", &page.field("ceremony").unwrap()),
                ("credential", &credential),
                ("access_code", CHIP_CODE),
                ("access_code_again", CHIP_CODE),
            ],
        )
        .await;
    assert_eq!(sent.status, 303, "{}", sent.body);
    assert_eq!(
        sent.location.as_deref(),
        Some("/self-service/chip?done=registered")
    );
    chip
}

#[tokio::test]
async fn a_chip_registered_on_the_pages_waits_a_day_is_confirmed_with_the_chip_and_the_app_lists_and_deactivates_it()
 {
    let h = server().await;
    let mut phone = person(&h).await;
    let mut browser = Browser::new(&h).on_localhost();
    let mut chip = register_chip(&h, &mut browser, &mut phone).await;
    let waiting = browser.get("/self-service/chip").await;
    assert!(
        waiting.text("chip-active-from").is_some(),
        "{}",
        waiting.body
    );
    assert_eq!(deliveries_to(&h, "chip_added", PHONE), 1);
    assert_eq!(deliveries_to(&h, "chip_added", EMAIL), 1);
    let listed = hardware_list(&h, &phone).await.hardware;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, eid_protocol::wire::HardwareState::Pending);
    assert_eq!(listed[0].kind, eid_protocol::wire::HardwareKind::Chip);

    // A day later (a new session: the first one ended), step 2.
    h.clock.advance_ms(24 * HOUR_MS + 1);
    sign_in(&h, &mut browser, &mut phone).await;
    let page = browser.get("/self-service/chip").await;
    let assertion = chip.assert(&chip_options(&page));
    let confirmed = browser
        .post(
            "/self-service/chip/confirm",
            &[
                ("csrf", &page.field("csrf").unwrap()),
                ("ceremony", &page.field("ceremony").unwrap()),
                ("credential", &assertion),
                ("access_code", CHIP_CODE),
            ],
        )
        .await;
    assert_eq!(confirmed.status, 303, "{}", confirmed.body);
    let active = browser.follow(confirmed).await;
    assert!(active.text("chip-active").is_some(), "{}", active.body);
    assert_eq!(deliveries_to(&h, "chip_activated", PHONE), 1);
    let listed = hardware_list(&h, &phone).await.hardware;
    assert_eq!(listed[0].state, eid_protocol::wire::HardwareState::Active);
    assert!(listed[0].last_used_at_ms.is_some());

    // The app deactivates it: a wrong PIN changes nothing, the right one
    // deactivates it and every channel is told.
    let id = listed[0].id.clone();
    let wrong = eid_protocol::crypto::SoftwareSigningKey::generate();
    let refused = deactivate_hardware(&h, &phone, &wrong, &id).await;
    assert_eq!(refused.0, 403, "{}", refused.1);
    assert!(refused.1.contains("wrong_pin"), "{}", refused.1);
    let unknown = deactivate_hardware(&h, &phone, &phone.pin_key, &"0".repeat(32)).await;
    assert_eq!(unknown.0, 404, "{}", unknown.1);
    assert!(unknown.1.contains("unknown_hardware"), "{}", unknown.1);
    let done = deactivate_hardware(&h, &phone, &phone.pin_key, &id).await;
    assert_eq!(done.0, 200, "{}", done.1);
    let listed = hardware_list(&h, &phone).await.hardware;
    assert_eq!(
        listed[0].state,
        eid_protocol::wire::HardwareState::Deactivated
    );
    assert_eq!(deliveries_to(&h, "chip_deactivated", EMAIL), 1);
}

#[tokio::test]
async fn a_chip_registration_replayed_from_the_pages_finds_no_ceremony_and_adds_nothing() {
    let h = server().await;
    let mut phone = person(&h).await;
    let mut browser = Browser::new(&h).on_localhost();
    sign_in(&h, &mut browser, &mut phone).await;
    let page = browser.get("/self-service/chip").await;
    let origin = format!("https://{}", browser.host.clone().unwrap());
    let mut chip = common::soft_chip::SoftChip::new(&origin);
    let credential = chip.register(&chip_options(&page));
    let fields = [
        ("csrf", page.field("csrf").unwrap()),
        ("ceremony", page.field("ceremony").unwrap()),
        ("credential", credential),
        ("access_code", CHIP_CODE.to_owned()),
        ("access_code_again", CHIP_CODE.to_owned()),
    ];
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let first = browser.post("/self-service/chip/register", &fields).await;
    assert_eq!(first.status, 303, "{}", first.body);
    let again = browser.post("/self-service/chip/register", &fields).await;
    assert_eq!(again.status, 400, "{}", again.body);
    assert_eq!(deliveries_to(&h, "chip_added", PHONE), 1);
}

#[tokio::test]
async fn a_chip_form_without_its_csrf_token_is_refused_and_adds_nothing() {
    let h = server().await;
    let mut phone = person(&h).await;
    let mut browser = Browser::new(&h).on_localhost();
    sign_in(&h, &mut browser, &mut phone).await;
    let page = browser.get("/self-service/chip").await;
    let origin = format!("https://{}", browser.host.clone().unwrap());
    let mut chip = common::soft_chip::SoftChip::new(&origin);
    let credential = chip.register(&chip_options(&page));
    let sent = browser
        .post(
            "/self-service/chip/register",
            &[
                ("ceremony", &page.field("ceremony").unwrap()),
                ("credential", &credential),
                ("access_code", CHIP_CODE),
                ("access_code_again", CHIP_CODE),
            ],
        )
        .await;
    assert_eq!(sent.status, 400, "{}", sent.body);
    assert_eq!(deliveries_to(&h, "chip_added", PHONE), 0);
}

// --------------------------------------------------- chip on the login page

const ACR_HIGH: &str = "https://data.gov.dk/concept/core/nsis/loa/High";

/// A server with a person whose chip is active, their phone, their
/// browser (by the name `localhost`, a WebAuthn relying party's), and a
/// bank's OpenID Connect client.
struct WithChip {
    h: Harness,
    phone: SoftPhone,
    browser: Browser,
    chip: common::soft_chip::SoftChip,
    bank: support::TestClient,
}

async fn with_active_chip() -> WithChip {
    let h = server().await;
    let mut phone = person(&h).await;
    let mut browser = Browser::new(&h).on_localhost();
    let chip = person_with_active_chip(&h, &mut browser, &mut phone).await;
    let sp = support::harness_provider(&h).await;
    let bank = support::register(&h, sp, support::KeyKind::Ec, "https://bank.example/cb").await;
    WithChip {
        h,
        phone,
        browser,
        chip,
        bank,
    }
}

/// A person whose chip is active (registered, a day, confirmed).
async fn person_with_active_chip(
    h: &Harness,
    browser: &mut Browser,
    phone: &mut SoftPhone,
) -> common::soft_chip::SoftChip {
    let mut chip = register_chip(h, browser, phone).await;
    h.clock.advance_ms(24 * HOUR_MS + 1);
    sign_in(h, browser, phone).await;
    let page = browser.get("/self-service/chip").await;
    let assertion = chip.assert(&chip_options(&page));
    let confirmed = browser
        .post(
            "/self-service/chip/confirm",
            &[
                ("csrf", &page.field("csrf").unwrap()),
                ("ceremony", &page.field("ceremony").unwrap()),
                ("credential", &assertion),
                ("access_code", CHIP_CODE),
            ],
        )
        .await;
    assert_eq!(confirmed.status, 303, "{}", confirmed.body);
    chip
}

/// A login at level High pushed by `client`, arrived in `browser`, the user
/// ID typed with the method "chip"; returns the chip page's path and page.
async fn chip_login(
    h: &Harness,
    browser: &mut Browser,
    client: &support::TestClient,
) -> (String, Page) {
    chip_login_as(h, browser, client, USER).await
}

/// The same with `user_id` typed.
async fn chip_login_as(
    h: &Harness,
    browser: &mut Browser,
    client: &support::TestClient,
    user_id: &str,
) -> (String, Page) {
    let mut params = support::par_params(client);
    params.push(("acr_values".into(), ACR_HIGH.into()));
    let answer = support::post_form(
        h,
        "/oidc/par",
        &support::auth_of(h, client),
        &support::pairs(&params),
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let request_uri = answer.body["request_uri"].as_str().unwrap().to_owned();
    let authorize: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", &client.id)
        .append_pair("request_uri", &request_uri)
        .finish();
    let arrived = browser.get(&format!("/oidc/authorize?{authorize}")).await;
    assert_eq!(arrived.status, 303, "{}", arrived.body);
    let login_path = arrived.location.clone().unwrap();
    let page = browser.get(&login_path).await;
    assert!(
        page.body.contains("value=\"chip\""),
        "High offers the chip: {}",
        page.body
    );
    assert!(
        !page.body.contains("value=\"app\""),
        "High does not offer the app alone"
    );
    let typed = browser
        .post(
            &format!("{login_path}/user-id"),
            &[
                ("csrf", &page.field("csrf").unwrap()),
                ("user_id", user_id),
                ("method", "chip"),
            ],
        )
        .await;
    assert_eq!(typed.status, 303, "{}", typed.body);
    let chip_path = typed.location.clone().unwrap();
    assert_eq!(chip_path, format!("{login_path}/chip"));
    let page = browser.get(&chip_path).await;
    assert_eq!(page.status, 200, "{}", page.body);
    (chip_path, page)
}

async fn post_chip(
    browser: &mut Browser,
    chip_path: &str,
    page: &Page,
    credential: &str,
    code: &str,
) -> Page {
    browser
        .post(
            chip_path,
            &[
                ("csrf", &page.field("csrf").unwrap()),
                ("ceremony", &page.field("ceremony").unwrap()),
                ("credential", credential),
                ("access_code", code),
            ],
        )
        .await
}

/// Where the page that ends a login sends the browser: its link back to the
/// service provider, which its refresh follows too (not a redirect of the
/// form's post, which the pages' `form-action 'self'` would stop).
fn way_back(page: &Page) -> String {
    assert!(page.location.is_none(), "no redirect of a form's post");
    let marker = "id=\"back\" class=\"button\" href=\"";
    let start = page.body.find(marker).expect("a link back") + marker.len();
    let end = page.body[start..].find('"').unwrap();
    let href = page.body[start..start + end].replace("&amp;", "&");
    let refresh = format!("content=\"0;url={}", &page.body[start..start + end]);
    assert!(page.body.contains(&refresh), "the refresh goes there too");
    href
}

/// The claims of an ID token (its signature is checked by the OIDC tests).
fn id_token_claims(id_token: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = id_token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn a_person_logs_in_at_level_high_with_the_chip_and_its_access_code_and_the_id_token_says_so()
{
    let WithChip {
        h,
        phone: _,
        mut browser,
        mut chip,
        bank,
    } = with_active_chip().await;

    let (chip_path, page) = chip_login(&h, &mut browser, &bank).await;
    // A wrong access code: refused with a fresh challenge, counted.
    let wrong = chip.assert(&chip_options(&page));
    let refused = post_chip(&mut browser, &chip_path, &page, &wrong, "not-the-code").await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    let right = chip.assert(&chip_options(&refused));
    let back = post_chip(&mut browser, &chip_path, &refused, &right, CHIP_CODE).await;
    assert_eq!(back.status, 200, "{}", back.body);
    let to = way_back(&back);
    assert!(to.starts_with("https://bank.example/cb?"), "{to}");
    let code = url::Url::parse(&to)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code");
    let tokens = support::redeem(&h, &bank, &code, support::VERIFIER).await;
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    let claims = id_token_claims(tokens.body["id_token"].as_str().unwrap());
    assert_eq!(claims["acr"], ACR_HIGH);
    assert_eq!(claims["amr"], serde_json::json!(["chip", "hwk", "pwd"]));
    assert_eq!(deliveries_to(&h, "chip_used", PHONE), 1);
}

#[tokio::test]
async fn a_cloned_chip_whose_counter_goes_back_is_refused_at_login_and_blocked() {
    let WithChip {
        h,
        phone,
        mut browser,
        mut chip,
        bank,
    } = with_active_chip().await;
    let mut clone = chip.clone();
    clone.counter = 0;
    let (chip_path, page) = chip_login(&h, &mut browser, &bank).await;
    let copied = clone.assert(&chip_options(&page));
    let refused = post_chip(&mut browser, &chip_path, &page, &copied, CHIP_CODE).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(deliveries_to(&h, "chip_blocked", PHONE), 1);
    // The real chip is refused too from now on (blocked for good).
    let real = chip.assert(&chip_options(&refused));
    let after = post_chip(&mut browser, &chip_path, &refused, &real, CHIP_CODE).await;
    assert_eq!(after.status, 422, "{}", after.body);
    let listed = hardware_list(&h, &phone).await.hardware;
    assert_eq!(listed[0].state, eid_protocol::wire::HardwareState::Blocked);
}

#[tokio::test]
async fn another_persons_chip_cannot_log_in_for_this_user_id() {
    let WithChip {
        h,
        phone: _,
        mut browser,
        chip: _,
        bank,
    } = with_active_chip().await;
    let (chip_path, page) = chip_login(&h, &mut browser, &bank).await;
    let origin = format!("https://{}", browser.host.clone().unwrap());
    let mut strangers = common::soft_chip::SoftChip::new(&origin);
    let answer = strangers.assert(&chip_options(&page));
    let refused = post_chip(&mut browser, &chip_path, &page, &answer, CHIP_CODE).await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(deliveries_to(&h, "chip_used", PHONE), 0);
}

#[tokio::test]
async fn a_person_without_a_chip_still_gets_a_challenge_and_never_logs_in() {
    let h = server().await;
    let _phone = person(&h).await;
    let mut browser = Browser::new(&h).on_localhost();
    let sp = support::harness_provider(&h).await;
    let bank = support::register(&h, sp, support::KeyKind::Ec, "https://bank.example/cb").await;
    // Nobody has a chip here: the page still carries a challenge.
    let (chip_path, page) = chip_login(&h, &mut browser, &bank).await;
    let origin = format!("https://{}", browser.host.clone().unwrap());
    let mut any = common::soft_chip::SoftChip::new(&origin);
    let answer = any.assert(&chip_options(&page));
    let refused = post_chip(&mut browser, &chip_path, &page, &answer, CHIP_CODE).await;
    assert_eq!(refused.status, 422, "{}", refused.body);
}

#[tokio::test]
async fn app_and_chip_waits_for_the_app_then_asks_for_the_chip_and_the_id_token_names_both() {
    let WithChip {
        h,
        mut phone,
        mut browser,
        mut chip,
        bank,
    } = with_active_chip().await;
    let mut params = support::par_params(&bank);
    params.push(("acr_values".into(), ACR_HIGH.into()));
    let answer = support::post_form(
        &h,
        "/oidc/par",
        &support::auth_of(&h, &bank),
        &support::pairs(&params),
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let authorize: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", &bank.id)
        .append_pair("request_uri", answer.body["request_uri"].as_str().unwrap())
        .finish();
    let arrived = browser.get(&format!("/oidc/authorize?{authorize}")).await;
    let login_path = arrived.location.clone().unwrap();
    let page = browser.get(&login_path).await;
    let typed = browser
        .post(
            &format!("{login_path}/user-id"),
            &[
                ("csrf", &page.field("csrf").unwrap()),
                ("user_id", USER),
                ("method", "app_chip"),
            ],
        )
        .await;
    assert_eq!(typed.status, 303, "{}", typed.body);
    // The app first: the login's page shows the binding code.
    assert_eq!(typed.location.as_deref(), Some(login_path.as_str()));
    let waiting = browser.get(&login_path).await;
    let code = waiting.code();
    // The chip's step is closed until the app approved.
    let early = browser.get(&format!("{login_path}/chip")).await;
    assert_eq!(early.status, 303, "{}", early.body);
    assert_eq!(early.location.as_deref(), Some(login_path.as_str()));

    let pulled = SoftPhone::pull(&h.endpoint, &[&phone], h.now())
        .await
        .unwrap();
    let envelope = pulled.accounts[0]
        .requests
        .iter()
        .find(|r| r.envelope.kind == RequestKind::Login)
        .expect("the login's request in the app")
        .envelope
        .clone();
    let decision = phone.decide(&envelope, Outcome::Approve, Some(code), true);
    phone.submit(&h.endpoint, &decision).await.unwrap();

    // Approved: the login's page sends the browser on to the chip.
    let next = browser.get(&login_path).await;
    assert_eq!(next.status, 303, "{}", next.body);
    let chip_path = format!("{login_path}/chip");
    assert_eq!(next.location.as_deref(), Some(chip_path.as_str()));
    let page = browser.get(&chip_path).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let assertion = chip.assert(&chip_options(&page));
    let back = post_chip(&mut browser, &chip_path, &page, &assertion, CHIP_CODE).await;
    assert_eq!(back.status, 200, "{}", back.body);
    let to = way_back(&back);
    let code = url::Url::parse(&to)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code");
    let tokens = support::redeem(&h, &bank, &code, support::VERIFIER).await;
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    let claims = id_token_claims(tokens.body["id_token"].as_str().unwrap());
    assert_eq!(claims["acr"], ACR_HIGH);
    assert_eq!(
        claims["amr"],
        serde_json::json!(["code_app", "chip", "hwk", "mfa"])
    );
}

// ------------------------------------------------ code device by the app

const DEVICE_SERIAL: &str = "CR00070001";
const DEVICE_SEED: &[u8] = b"a-seed-for-the-audio-code-reader";
const DEVICE_ACCESS_CODE: &str = "amber-lantern-63";
const DEVICE_PARAMS: eid_server::code_devices::totp::Params =
    eid_server::code_devices::totp::Params {
        algorithm: eid_server::code_devices::totp::Algorithm::Sha1,
        digits: 6,
        step_secs: 30,
    };

/// Imports an unassigned audio code reader `DEVICE_SERIAL`.
async fn import_reader(h: &Harness) {
    let psk = [0x21; 16];
    let document = eid_server::code_devices::pskc::build::batch_document(
        &psk,
        "readers",
        &[(DEVICE_SERIAL, DEVICE_PARAMS, DEVICE_SEED)],
    );
    h.admin
        .import_token_batch(&eid_protocol::wire::ImportTokenBatchRequest {
            pskc: document,
            pre_shared_key: hex::encode(psk),
            kind: eid_protocol::wire::CodeDeviceKind::CodeReader,
            label: None,
        })
        .await
        .unwrap();
}

/// The reader's code at the server's time plus `offset_steps`.
fn reader_code(h: &Harness, offset_steps: i64) -> String {
    use eid_server::code_devices::totp;
    let step = totp::step_at(h.now() / 1000, 30) as i64 + offset_steps;
    totp::code_for_step(DEVICE_PARAMS, DEVICE_SEED, step as u64)
}

/// Fills the page's form for `user_id`; returns the answer, not followed.
async fn start_by_app(
    h: &Harness,
    browser: &mut Browser,
    user_id: &str,
    codes: (String, String),
) -> Page {
    let form = browser.get("/self-service/code-device/app?again=1").await;
    assert_eq!(form.status, 200, "{}", form.body);
    let csrf = form.field("csrf").expect("csrf on the form");
    let _ = h;
    browser
        .post(
            "/self-service/code-device/app",
            &[
                ("csrf", &csrf),
                ("user_id", user_id),
                ("serial", DEVICE_SERIAL),
                ("first_code", &codes.0),
                ("second_code", &codes.1),
                ("access_code", DEVICE_ACCESS_CODE),
                ("access_code_again", DEVICE_ACCESS_CODE),
            ],
        )
        .await
}

/// Posts the device page's form as given.
async fn post(browser: &mut Browser, fields: Vec<(String, String)>) -> Page {
    let refs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    browser.post("/self-service/code-device/app", &refs).await
}

/// The pending code-device request on the phone.
async fn code_device_request(h: &Harness, phone: &SoftPhone) -> eid_protocol::RequestEnvelopeBody {
    let pulled = SoftPhone::pull(&h.endpoint, &[phone], h.now())
        .await
        .unwrap();
    let pending: Vec<_> = pulled.accounts[0]
        .requests
        .iter()
        .filter(|r| r.envelope.kind == RequestKind::CodeDevice)
        .map(|r| r.envelope.clone())
        .collect();
    assert_eq!(pending.len(), 1, "one code-device request in the app");
    pending[0].clone()
}

#[tokio::test]
async fn a_code_device_is_taken_into_use_on_the_page_by_an_approval_that_types_the_page_s_code() {
    let h = server().await;
    let mut phone = person(&h).await;
    import_reader(&h).await;
    let mut browser = Browser::new(&h);

    // Wrong codes are refused on the page and reach no app.
    let wrong = start_by_app(&h, &mut browser, USER, ("000000".into(), "111111".into())).await;
    assert_eq!(wrong.status, 422, "{}", wrong.body);
    assert!(wrong.text("by-app-error").is_some(), "{}", wrong.body);
    let nothing = SoftPhone::pull(&h.endpoint, &[&phone], h.now())
        .await
        .unwrap();
    assert!(nothing.accounts[0].requests.is_empty());

    let started = start_by_app(
        &h,
        &mut browser,
        USER,
        (reader_code(&h, -1), reader_code(&h, 0)),
    )
    .await;
    assert_eq!(started.status, 303, "{}", started.body);
    let waiting = browser.follow(started).await;
    assert_eq!(waiting.status, 200, "{}", waiting.body);
    let shown = waiting.code();
    let envelope = code_device_request(&h, &phone).await;
    assert!(
        envelope.binding_required,
        "the app asks for the page's code"
    );

    // The approval must carry the code this page shows: another code fails
    // and activates nothing.
    let bad = phone.decide(&envelope, Outcome::Approve, Some("AAAAAAAA".into()), true);
    let refused = phone.submit(&h.endpoint, &bad).await.unwrap_err();
    assert!(
        format!("{refused:?}").contains("BindingMismatch"),
        "{refused:?}"
    );
    assert!(hardware_list(&h, &phone).await.hardware.is_empty());
    let good = phone.decide(&envelope, Outcome::Approve, Some(shown), true);
    phone.submit(&h.endpoint, &good).await.unwrap();

    let status = browser.get("/self-service/code-device/app/status").await;
    assert!(status.body.contains("\"approved\""), "{}", status.body);
    let done = browser.get("/self-service/code-device/app").await;
    assert!(
        done.body.contains("Enheden er taget i brug"),
        "{}",
        done.body
    );
    let listed = hardware_list(&h, &phone).await.hardware;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].kind, eid_protocol::wire::HardwareKind::CodeReader);
    assert_eq!(listed[0].state, eid_protocol::wire::HardwareState::Active);
    assert_eq!(deliveries_to(&h, "code_device_added", PHONE), 1);
    assert_eq!(deliveries_to(&h, "code_device_added", EMAIL), 1);
}

#[tokio::test]
async fn an_unknown_user_id_gets_a_code_on_the_device_page_too_and_the_device_stays_unassigned() {
    let h = server().await;
    let phone = person(&h).await;
    import_reader(&h).await;
    let mut browser = Browser::new(&h);
    let started = start_by_app(
        &h,
        &mut browser,
        "nobody-has-this-1",
        (reader_code(&h, -1), reader_code(&h, 0)),
    )
    .await;
    assert_eq!(started.status, 303, "{}", started.body);
    let waiting = browser.follow(started).await;
    assert_eq!(waiting.status, 200, "{}", waiting.body);
    assert_eq!(waiting.code().len(), 8, "{}", waiting.body);
    let status = browser.get("/self-service/code-device/app/status").await;
    assert!(status.body.contains("\"waiting\""), "{}", status.body);
    // It lapses like a real one, and nobody's device was touched.
    h.clock.advance_ms(10 * 60 * 1000);
    let lapsed = browser.get("/self-service/code-device/app").await;
    assert!(lapsed.text("message").is_some(), "{}", lapsed.body);
    assert!(hardware_list(&h, &phone).await.hardware.is_empty());
}

#[tokio::test]
async fn the_device_page_refuses_a_form_without_its_token_and_access_codes_that_differ() {
    let h = server().await;
    let phone = person(&h).await;
    import_reader(&h).await;
    let mut browser = Browser::new(&h);
    let form = browser.get("/self-service/code-device/app").await;
    assert_eq!(form.status, 200, "{}", form.body);
    let fields = |csrf: &str, again: &str| {
        vec![
            ("csrf".to_owned(), csrf.to_owned()),
            ("user_id".to_owned(), USER.to_owned()),
            ("serial".to_owned(), DEVICE_SERIAL.to_owned()),
            ("first_code".to_owned(), reader_code(&h, -1)),
            ("second_code".to_owned(), reader_code(&h, 0)),
            ("access_code".to_owned(), DEVICE_ACCESS_CODE.to_owned()),
            ("access_code_again".to_owned(), again.to_owned()),
        ]
    };
    let stale = post(
        &mut browser,
        fields("0".repeat(64).as_str(), DEVICE_ACCESS_CODE),
    )
    .await;
    assert_eq!(stale.status, 400, "{}", stale.body);
    let csrf = form.field("csrf").unwrap();
    let differ = post(&mut browser, fields(&csrf, "amber-lantern-64")).await;
    assert_eq!(differ.status, 422, "{}", differ.body);
    let nothing = SoftPhone::pull(&h.endpoint, &[&phone], h.now())
        .await
        .unwrap();
    assert!(
        nothing.accounts[0].requests.is_empty(),
        "nothing reached the app"
    );
    // Another browser, without the form's cookie, is refused outright.
    let mut other = Browser::new(&h);
    let refused = post(&mut other, fields(&csrf, DEVICE_ACCESS_CODE)).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
}

/// Code-device requests the server ever created, whatever became of them.
fn code_device_requests_created(h: &Harness) -> i64 {
    h.database()
        .query_row(
            r#"SELECT COUNT(*) FROM requests WHERE envelope LIKE '%"kind":"code_device"%'"#,
            [],
            |r| r.get(0),
        )
        .unwrap()
}

#[tokio::test]
async fn the_same_codes_sent_twice_get_the_same_answers_for_a_known_and_an_unknown_user_id() {
    // A stranger with any unassigned device sends one user ID twice with
    // the same two codes: if only a real request used up the codes' step,
    // the second answer would tell whether the user ID exists.
    let h = server().await;
    let _phone = person(&h).await;
    import_reader(&h).await;
    let mut answers = Vec::new();
    for user_id in [USER, "Nobody#1900z"] {
        let codes = (reader_code(&h, -1), reader_code(&h, 0));
        let first = start_by_app(&h, &mut Browser::new(&h), user_id, codes.clone()).await;
        let again = start_by_app(&h, &mut Browser::new(&h), user_id, codes).await;
        answers.push((user_id, first.status, again.status));
        // The next user ID's codes are of a later step.
        h.clock.advance_ms(5 * 30_000);
    }
    assert_eq!(
        (answers[0].1, answers[0].2),
        (answers[1].1, answers[1].2),
        "{answers:?}"
    );
    assert_eq!((answers[0].1, answers[0].2), (303, 422), "{answers:?}");
}

#[tokio::test]
async fn codes_sent_again_for_a_known_user_id_never_reach_the_persons_app() {
    let h = server().await;
    let phone = person(&h).await;
    import_reader(&h).await;
    let codes = (reader_code(&h, -1), reader_code(&h, 0));
    let first = start_by_app(&h, &mut Browser::new(&h), USER, codes.clone()).await;
    assert_eq!(first.status, 303, "{}", first.body);
    for _ in 0..3 {
        let again = start_by_app(&h, &mut Browser::new(&h), USER, codes.clone()).await;
        assert_eq!(again.status, 422, "{}", again.body);
    }
    assert_eq!(
        code_device_requests_created(&h),
        1,
        "a replay made no request (none in the app, none against the person's limits)"
    );
    code_device_request(&h, &phone).await;
}

#[tokio::test]
async fn one_address_gets_a_few_device_activations_per_user_id_an_hour_known_or_not() {
    // Each start asks the person in the app: a stranger with a device must
    // not fill the person's app (and the person's request limits) with them.
    let h = server().await;
    let _phone = person(&h).await;
    import_reader(&h).await;
    for user_id in [USER, "Nobody#1900z"] {
        let mut browser = Browser::new(&h);
        for i in 0..5 {
            h.clock.advance_ms(30_000);
            let codes = (reader_code(&h, -1), reader_code(&h, 0));
            let started = start_by_app(&h, &mut browser, user_id, codes).await;
            assert_eq!(started.status, 303, "{user_id} {i}: {}", started.body);
        }
        h.clock.advance_ms(30_000);
        let codes = (reader_code(&h, -1), reader_code(&h, 0));
        let refused = start_by_app(&h, &mut browser, user_id, codes).await;
        assert_eq!(refused.status, 429, "{user_id}: {}", refused.body);
        assert!(refused.text("by-app-error").is_some());
    }
    assert_eq!(code_device_requests_created(&h), 5);
    h.clock.advance_ms(HOUR_MS);
    let codes = (reader_code(&h, -1), reader_code(&h, 0));
    let later = start_by_app(&h, &mut Browser::new(&h), USER, codes).await;
    assert_eq!(later.status, 303, "{}", later.body);
}

/// The chip step's challenge of a user ID, as a stranger reads it twice
/// (two logins): what stays the same between the two, and the shape.
async fn challenge_seen_twice(
    h: &Harness,
    browser: &mut Browser,
    client: &support::TestClient,
    user_id: &str,
) -> (bool, String) {
    let options =
        |page: &Page| -> serde_json::Value { serde_json::from_str(&chip_options(page)).unwrap() };
    let (_, first) = chip_login_as(h, browser, client, user_id).await;
    let (_, second) = chip_login_as(h, browser, client, user_id).await;
    let (first, second) = (options(&first), options(&second));
    let same_credential = first["allowCredentials"] == second["allowCredentials"];
    // The shape: every member's name, and for strings their length.
    fn shape(v: &serde_json::Value) -> String {
        match v {
            serde_json::Value::Object(m) => {
                let mut parts: Vec<String> =
                    m.iter().map(|(k, v)| format!("{k}:{}", shape(v))).collect();
                parts.sort();
                format!("{{{}}}", parts.join(","))
            }
            serde_json::Value::Array(a) => {
                format!("[{}]", a.iter().map(shape).collect::<Vec<_>>().join(","))
            }
            serde_json::Value::String(s) => format!("s{}", s.len()),
            other => other.to_string(),
        }
    }
    (same_credential, shape(&first))
}

/// The chip step must not tell a stranger who holds a chip
/// (docs/login-page.md: "Every user ID gets a challenge, so the page tells
/// nobody who has a chip"). A real challenge names the person's chip, the
/// same one every time; so must the stand-in, or two page loads tell a user
/// ID with a chip from one without.
#[tokio::test]
async fn the_chip_step_looks_the_same_twice_for_a_user_id_with_and_without_a_chip() {
    let WithChip {
        h,
        phone: _,
        mut browser,
        chip: _,
        bank,
    } = with_active_chip().await;
    let with_chip = challenge_seen_twice(&h, &mut browser, &bank, USER).await;
    let without = challenge_seen_twice(&h, &mut browser, &bank, "nobody.here").await;
    assert_eq!(with_chip, without);
}

/// Rows in the tables a chip step writes to: its ceremony, or the stand-in's
/// nonce (the client's assertion `jti`s land in the nonces too, alike for
/// both).
fn chip_step_rows(h: &Harness) -> i64 {
    h.count("SELECT (SELECT COUNT(*) FROM chip_ceremonies) + (SELECT COUNT(*) FROM nonces)")
}

/// A commit waits for its fsync, which takes milliseconds: a chip step that
/// stored a ceremony only for a user ID with a chip answered measurably
/// later than the stand-in of one without. Both now make one durable write.
#[tokio::test]
async fn the_chip_step_writes_as_much_for_a_user_id_without_a_chip_as_for_one_with() {
    let WithChip {
        h,
        phone: _,
        mut browser,
        chip: _,
        bank,
    } = with_active_chip().await;
    let mut written = Vec::new();
    for user_id in [USER, "nobody.here"] {
        let before = chip_step_rows(&h);
        chip_login_as(&h, &mut browser, &bank, user_id).await;
        written.push(chip_step_rows(&h) - before);
    }
    assert_eq!(written[0], written[1], "rows written: {written:?}");
    assert!(written[0] > 0);
}
