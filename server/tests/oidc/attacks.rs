//! Attacks on the login pages and the client-facing endpoints (see
//! docs/threat-model.md, "The web: OpenID Connect and the login pages"):
//! what a stranger with a browser, or a client's key holder, tries, and
//! that each gets nothing and changes nothing.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};

use super::common::Harness;
use super::support::*;

const USER: &str = "bo.jensen-42";

/// A browser at the login page of a freshly pushed login: the page's path,
/// the login cookie and the form's CSRF token.
struct Browser {
    path: String,
    cookie: String,
    csrf: String,
}

/// Pushes a login for `client` and arrives with a browser.
async fn arrive(h: &Harness, client: &TestClient) -> Browser {
    arrive_with(h, client, &[]).await
}

/// The same, with more parameters pushed.
async fn arrive_with(h: &Harness, client: &TestClient, extra: &[(&str, &str)]) -> Browser {
    let http = &h.endpoint.client;
    let base = &h.endpoint.base_url;
    let mut params = par_params(client);
    params.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let answer = post_form(h, "/oidc/par", &auth_of(h, client), &pairs(&params)).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let request_uri = answer.body["request_uri"].as_str().unwrap().to_owned();
    let mut authorize = url::Url::parse(&format!("{base}/oidc/authorize")).unwrap();
    authorize
        .query_pairs_mut()
        .append_pair("client_id", &client.id)
        .append_pair("request_uri", &request_uri);
    let arrived = http.get(authorize).send().await.unwrap();
    assert_eq!(arrived.status().as_u16(), 303);
    let path = arrived.headers()["location"].to_str().unwrap().to_owned();
    let cookie = arrived.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = http
        .get(format!("{base}{path}"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let at = page.find("name=\"csrf\" value=\"").expect("the csrf field") + 19;
    let csrf = page[at..at + page[at..].find('"').unwrap()].to_owned();
    Browser { path, cookie, csrf }
}

/// Posts `user_id` on the browser's page; the status and the page it then
/// shows.
async fn type_user_id(h: &Harness, b: &Browser, user_id: &str) -> (u16, String) {
    let http = &h.endpoint.client;
    let base = &h.endpoint.base_url;
    let posted = http
        .post(format!("{base}{}/user-id", b.path))
        .header("cookie", &b.cookie)
        .header("origin", base.as_str())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("csrf", b.csrf.as_str()), ("user_id", user_id)]))
        .send()
        .await
        .unwrap();
    let status = posted.status().as_u16();
    let page = http
        .get(format!("{base}{}", b.path))
        .header("cookie", &b.cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    (status, page)
}

#[tokio::test]
async fn a_persons_own_limits_do_not_tell_a_stranger_that_their_user_id_exists() {
    // One pending request per person: the second login for a known user ID
    // meets the person's cap, which an unknown user ID never does.
    let h = Harness::start_with(|c| c.max_pending_per_identity = 1).await;
    let sp = harness_provider(&h).await;
    let _person = person(&h, USER).await;
    let client = register(&h, sp, KeyKind::Secret, "https://bank.example/cb").await;

    for user_id in [USER, "nobody-at-all"] {
        for attempt in 0..2 {
            let browser = arrive(&h, &client).await;
            let (status, page) = type_user_id(&h, &browser, user_id).await;
            assert_eq!(status, 303, "{user_id}, attempt {attempt}: {page}");
            assert!(
                page.contains("id=\"binding-code\""),
                "{user_id}, attempt {attempt}: the waiting page, with a code"
            );
        }
    }
}

/// A commit waits for its fsync (milliseconds): typing a known user ID
/// stored its request durably, while an unknown one, or one held by the
/// person's own limits, got its stand-in without any durable write, so the
/// answer's time told them apart. Each now makes one durable write of one
/// row (the request, or a nonce nobody will present).
#[tokio::test]
async fn typing_a_user_id_writes_as_much_whether_or_not_a_request_is_made() {
    let h = Harness::start_with(|c| c.max_pending_per_identity = 1).await;
    let sp = harness_provider(&h).await;
    let _person = person(&h, USER).await;
    let client = register(&h, sp, KeyKind::Secret, "https://bank.example/cb").await;
    let rows = |h: &Harness| -> i64 {
        h.count("SELECT (SELECT COUNT(*) FROM requests) + (SELECT COUNT(*) FROM nonces)")
    };
    let mut written = Vec::new();
    // A real request, then the same person at their pending cap, then a
    // user ID nobody has.
    for user_id in [USER, USER, "nobody-at-all"] {
        let browser = arrive(&h, &client).await;
        let before = rows(&h);
        let (status, _) = type_user_id(&h, &browser, user_id).await;
        assert_eq!(status, 303);
        written.push(rows(&h) - before);
    }
    assert_eq!(written, vec![1, 1, 1], "rows written");
}

/// A fraud hold's first refusal records its event (a durable write, as a
/// real request's): the page then makes no stand-in write of its own, and
/// the answer waits for one commit's fsync like every other; the next
/// refusal writes nothing and gets the stand-in's nonce.
#[tokio::test]
async fn a_holds_first_refusal_writes_its_event_instead_of_the_stand_ins_nonce() {
    let h = Harness::start().await;
    let sp = harness_provider(&h).await;
    let (anna, _) = person(&h, USER).await;
    let client = register(&h, sp, KeyKind::Secret, "https://bank.example/cb").await;
    h.database()
        .execute(
            "INSERT INTO fraud_holds (identity_id, service_provider_id, reported_at_ms, notified) \
             VALUES (?1, ?2, ?3, 0)",
            rusqlite::params![
                anna.as_bytes().as_slice(),
                sp.as_bytes().as_slice(),
                i64::try_from(h.now()).unwrap()
            ],
        )
        .unwrap();
    let count = |table: &str| -> i64 { h.count(&format!("SELECT COUNT(*) FROM {table}")) };
    let mut written = Vec::new();
    for _ in 0..2 {
        let browser = arrive(&h, &client).await;
        let before = (count("requests"), count("nonces"), count("security_events"));
        let (status, page) = type_user_id(&h, &browser, USER).await;
        assert_eq!(status, 303, "{page}");
        written.push((
            count("requests") - before.0,
            count("nonces") - before.1,
            count("security_events") - before.2,
        ));
    }
    // (requests, nonces, events): the event, then the stand-in's nonce.
    assert_eq!(written, vec![(0, 0, 1), (0, 1, 0)]);
}

/// Signs `claims` under a hand-made `header` with the client's P-256 key.
fn sign_with_header(
    pkcs8: &[u8],
    header: &serde_json::Value,
    claims: &serde_json::Value,
) -> String {
    let rng = ring::rand::SystemRandom::new();
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng).unwrap();
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).unwrap()),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap())
    );
    let signature = key.sign(&rng, input.as_bytes()).unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
}

#[tokio::test]
async fn a_client_assertion_with_critical_header_parameters_is_refused() {
    let h = Harness::start().await;
    let sp = harness_provider(&h).await;
    let client = register(&h, sp, KeyKind::Ec, "https://bank.example/cb").await;
    let aud = issuer(&h);
    let params = par_params(&client);
    let pkcs8 = client.ec_pkcs8().to_vec();

    // RFC 7515 section 4.1.11: a `crit` this server does not understand
    // (it understands none) makes the JWS invalid.
    let crit = serde_json::json!({ "alg": "ES256", "crit": ["exp"], "exp": 1 });
    let jwt = sign_with_header(&pkcs8, &crit, &claims(&h, &client, &aud));
    post_form(&h, "/oidc/par", &Auth::Assertion(jwt), &pairs(&params))
        .await
        .assert_error(401, "invalid_client");
    assert_eq!(logins(&h), 0, "nothing stored");

    // The same without `crit` passes: it was the header alone.
    let plain = serde_json::json!({ "alg": "ES256" });
    let jwt = sign_with_header(&pkcs8, &plain, &claims(&h, &client, &aud));
    let answer = post_form(&h, "/oidc/par", &Auth::Assertion(jwt), &pairs(&params)).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
}

/// A GET by the browser `b` (or by a browser without its cookie).
async fn get(h: &Harness, path: &str, cookie: Option<&str>) -> (u16, String, String) {
    let mut req = h
        .endpoint
        .client
        .get(format!("{}{path}", h.endpoint.base_url));
    if let Some(cookie) = cookie {
        req = req.header("cookie", cookie);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, location, resp.text().await.unwrap())
}

/// How many requests the store holds.
fn requests(h: &Harness) -> i64 {
    h.count("SELECT COUNT(*) FROM requests")
}

#[tokio::test]
async fn a_request_uri_starts_one_login_in_one_browser_and_anything_else_gets_an_error_page_not_a_redirect()
 {
    let h = Harness::start().await;
    let sp = harness_provider(&h).await;
    let client = register(&h, sp, KeyKind::Secret, "https://bank.example/cb").await;
    let other = register(&h, sp, KeyKind::Secret, "https://shop.example/cb").await;
    let authorize = |client_id: &str, request_uri: &str| {
        let mut url = url::Url::parse("https://x/oidc/authorize").unwrap();
        url.query_pairs_mut()
            .append_pair("client_id", client_id)
            .append_pair("request_uri", request_uri);
        format!("/oidc/authorize?{}", url.query().unwrap())
    };

    // Named with another client's id: refused, and the request_uri stays
    // usable by its own client's browser.
    let request_uri = push(&h, &client).await;
    let (status, location, page) = get(&h, &authorize(&other.id, &request_uri), None).await;
    assert_eq!((status, location.as_str()), (400, ""), "{page}");
    let (status, location, _) = get(&h, &authorize(&client.id, &request_uri), None).await;
    assert_eq!(status, 303);
    assert!(location.starts_with("/oidc/login/"), "{location}");
    // A second browser with the same link gets an error page, no cookie
    // and no redirect to the client.
    let (status, location, page) = get(&h, &authorize(&client.id, &request_uri), None).await;
    assert_eq!((status, location.as_str()), (400, ""), "{page}");

    // A request_uri past its 60 s, a repeated parameter, or a made-up one:
    // the same.
    let late = push(&h, &client).await;
    h.clock.advance_ms(60_000);
    let repeated = format!("{}&client_id={}", authorize(&client.id, &late), client.id);
    for path in [
        authorize(&client.id, &late),
        repeated,
        authorize(
            &client.id,
            "urn:ietf:params:oauth:request_uri:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ),
        "/oidc/authorize".to_owned(),
    ] {
        let (status, location, page) = get(&h, &path, None).await;
        assert_eq!((status, location.as_str()), (400, ""), "{path}: {page}");
        assert!(page.contains("<h1>"), "an HTML error page: {page}");
    }
}

#[tokio::test]
async fn another_browser_or_a_form_without_its_csrf_token_gets_nothing_and_changes_nothing() {
    let h = Harness::start().await;
    let sp = harness_provider(&h).await;
    let _person = person(&h, USER).await;
    let client = register(&h, sp, KeyKind::Secret, "https://bank.example/cb").await;
    let b = arrive(&h, &client).await;
    let http = &h.endpoint.client;
    let base = &h.endpoint.base_url;
    let post = |cookie: Option<String>, csrf: &str| {
        let mut req = http
            .post(format!("{base}{}/user-id", b.path))
            .header("origin", base.as_str())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[("csrf", csrf), ("user_id", USER)]));
        if let Some(cookie) = cookie {
            req = req.header("cookie", cookie);
        }
        req.send()
    };
    let before = requests(&h);

    // Without the login's cookie: refused as another browser's login.
    let resp = post(None, &b.csrf).await.unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    // A made-up cookie of the same name, or another login's cookie.
    let stranger = arrive(&h, &client).await;
    let forged = b.cookie.split('=').next().unwrap().to_owned() + "=forged";
    for cookie in [forged, stranger.cookie.clone()] {
        let resp = post(Some(cookie), &b.csrf).await.unwrap();
        assert_eq!(resp.status().as_u16(), 403);
    }
    // The right cookie with another login's (or no) CSRF token.
    for csrf in [stranger.csrf.as_str(), ""] {
        let resp = post(Some(b.cookie.clone()), csrf).await.unwrap();
        assert_eq!(resp.status().as_u16(), 400);
    }
    assert_eq!(requests(&h), before, "no request in anyone's app");

    // The page, its status, its QR and continue are no one else's either.
    for (suffix, expected) in [
        ("", 403),
        ("/status", 403),
        ("/qr.svg", 404),
        ("/continue", 403),
    ] {
        let (status, location, _) = get(&h, &format!("{}{suffix}", b.path), None).await;
        assert_eq!((status, location.as_str()), (expected, ""), "{suffix}");
    }
}

/// A page with what differs between any two logins blanked out: the
/// login's path, the code and the time left.
fn shape(page: &str, path: &str) -> String {
    let mut page = page.replace(path, "/oidc/login/ID");
    for id in ["binding-code", "countdown"] {
        let marker = format!("id=\"{id}\">");
        if let Some(start) = page.find(&marker).map(|i| i + marker.len()) {
            let end = start + page[start..].find('<').unwrap();
            page.replace_range(start..end, "");
        }
    }
    page
}

#[tokio::test]
async fn an_unknown_user_id_gets_the_same_waiting_page_status_and_qr_as_a_known_one() {
    let h = Harness::start().await;
    let sp = harness_provider(&h).await;
    let _person = person(&h, USER).await;
    let client = register(&h, sp, KeyKind::Secret, "https://bank.example/cb").await;
    let known = arrive(&h, &client).await;
    let unknown = arrive(&h, &client).await;
    let (a_status, a_page) = type_user_id(&h, &known, USER).await;
    let (b_status, b_page) = type_user_id(&h, &unknown, "nobody-at-all").await;
    assert_eq!((a_status, b_status), (303, 303));
    assert_eq!(shape(&a_page, &known.path), shape(&b_page, &unknown.path));

    let (_, _, a) = get(&h, &format!("{}/status", known.path), Some(&known.cookie)).await;
    let (_, _, b) = get(
        &h,
        &format!("{}/status", unknown.path),
        Some(&unknown.cookie),
    )
    .await;
    let (a, b): (serde_json::Value, serde_json::Value) = (
        serde_json::from_str(&a).unwrap(),
        serde_json::from_str(&b).unwrap(),
    );
    assert_eq!(a["state"], "waiting");
    for key in ["state", "message", "step", "countdown", "next"] {
        assert_eq!(a[key], b[key], "{key}");
    }
    assert_eq!(
        a["code"].as_str().unwrap().len(),
        b["code"].as_str().unwrap().len()
    );
    let (a_qr, _, a_svg) = get(&h, &format!("{}/qr.svg", known.path), Some(&known.cookie)).await;
    let (b_qr, _, b_svg) = get(
        &h,
        &format!("{}/qr.svg", unknown.path),
        Some(&unknown.cookie),
    )
    .await;
    assert_eq!((a_qr, b_qr), (200, 200));
    // The same symbol size (the modules differ with the code, as between
    // any two real logins).
    let opening = |svg: &str| {
        svg[svg.find("<svg").unwrap()..][..svg[svg.find("<svg").unwrap()..].find('>').unwrap()]
            .to_owned()
    };
    assert_eq!(opening(&a_svg), opening(&b_svg));

    // Both lapse at the same moment, to the same page.
    h.clock.advance_ms(300_000);
    let (_, _, a) = get(&h, &known.path, Some(&known.cookie)).await;
    let (_, _, b) = get(&h, &unknown.path, Some(&unknown.cookie)).await;
    assert_eq!(shape(&a, &known.path), shape(&b, &unknown.path));
    assert!(a.contains("id=\"retry\""), "{a}");
}

#[tokio::test]
async fn markup_in_a_login_hint_or_a_typed_user_id_is_shown_as_text() {
    let h = Harness::start().await;
    let sp = harness_provider(&h).await;
    let client = register(&h, sp, KeyKind::Secret, "https://bank.example/cb").await;
    let hint = "\"><script>alert(1)</script>";
    let b = arrive_with(&h, &client, &[("login_hint", hint)]).await;
    let (_, _, page) = get(&h, &b.path, Some(&b.cookie)).await;
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(
        page.contains("value=\"&#34;&#62;&#60;script&#62;alert(1)&#60;/script&#62;\""),
        "{page}"
    );

    // A typed user ID the form refuses is shown back as text too.
    let (status, page) = type_user_id(&h, &b, "<img src=x onerror=alert(1)>\u{7}").await;
    assert_eq!(status, 422);
    assert!(!page.contains("<img src=x"), "{page}");
}

#[tokio::test]
async fn continue_gives_one_code_with_state_and_iss_and_a_second_continue_gives_none() {
    let h = Harness::start().await;
    let sp = harness_provider(&h).await;
    let (_, mut phone) = person(&h, USER).await;
    let client = register(&h, sp, KeyKind::Secret, "https://bank.example/cb").await;
    let b = arrive(&h, &client).await;
    // Before the person answered, continue only goes back to the page.
    let (status, location, _) = get(&h, &format!("{}/continue", b.path), Some(&b.cookie)).await;
    assert_eq!((status, location.as_str()), (303, b.path.as_str()));
    let (status, page) = type_user_id(&h, &b, USER).await;
    assert_eq!(status, 303);
    let marker = "id=\"binding-code\">";
    let at = page.find(marker).unwrap() + marker.len();
    let code: String = page[at..at + page[at..].find('<').unwrap()].replace(' ', "");
    let pulled = eid_api_client::SoftPhone::pull(&h.endpoint, &[&phone], h.now())
        .await
        .unwrap();
    let envelope = pulled.accounts[0].requests[0].envelope.clone();
    let decision = phone.decide(&envelope, eid_protocol::Outcome::Approve, Some(code), true);
    phone.submit(&h.endpoint, &decision).await.unwrap();

    let (status, back, _) = get(&h, &format!("{}/continue", b.path), Some(&b.cookie)).await;
    assert_eq!(status, 303);
    let back = url::Url::parse(&back).unwrap();
    assert_eq!(back.host_str(), Some("bank.example"));
    let query: std::collections::HashMap<_, _> = back.query_pairs().into_owned().collect();
    assert_eq!(query["state"], "af0ifjsldkj");
    assert_eq!(query["iss"], issuer(&h));
    assert!(query.contains_key("code"));
    // Again (a double click, or someone else later): no second code.
    let (status, location, _) = get(&h, &format!("{}/continue", b.path), Some(&b.cookie)).await;
    assert_eq!((status, location.as_str()), (409, ""));
    // Nor may the same user ID start a new request in this login.
    let (status, _) = type_user_id(&h, &b, USER).await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn user_ids_posted_at_once_in_one_login_leave_one_request_in_the_app() {
    let h = Harness::start().await;
    let sp = harness_provider(&h).await;
    let _person = person(&h, USER).await;
    let client = register(&h, sp, KeyKind::Secret, "https://bank.example/cb").await;
    let b = arrive(&h, &client).await;
    let http = &h.endpoint.client;
    let base = &h.endpoint.base_url;
    // Four, within the person's window of five a minute (past it, the
    // stand-in would stand for the person's limits).
    let posts = (0..4).map(|_| {
        http.post(format!("{base}{}/user-id", b.path))
            .header("cookie", &b.cookie)
            .header("origin", base.as_str())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[("csrf", b.csrf.as_str()), ("user_id", USER)]))
            .send()
    });
    for resp in futures::future::join_all(posts).await {
        assert_eq!(resp.unwrap().status().as_u16(), 303);
    }
    let pending: u32 = h
        .database()
        .query_row(
            "SELECT COUNT(*) FROM requests WHERE status = 'pending'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        pending, 1,
        "the page shows one code; no other request waits"
    );
}

#[tokio::test]
async fn a_state_with_a_line_break_or_a_redirect_uri_off_by_a_byte_is_refused_at_par() {
    let h = Harness::start().await;
    let sp = harness_provider(&h).await;
    let client = register(&h, sp, KeyKind::Secret, "https://bank.example/cb").await;
    for (name, value) in [
        ("state", "x\r\nSet-Cookie: a=b"),
        ("state", "x\u{0}"),
        ("nonce", "x\ny"),
        ("redirect_uri", "https://bank.example/cb/"),
        ("redirect_uri", "https://BANK.example/cb"),
        (
            "redirect_uri",
            "https://bank.example/cb?next=https://evil.example",
        ),
        ("redirect_uri", "https://bank.example/cb#x"),
        ("redirect_uri", "https://bank.example.evil.example/cb"),
    ] {
        let mut params = par_params(&client);
        params.retain(|(k, _)| k != name);
        params.push((name.to_owned(), value.to_owned()));
        let answer = post_form(&h, "/oidc/par", &auth_of(&h, &client), &pairs(&params)).await;
        answer.assert_error(400, "invalid_request");
    }
    assert_eq!(logins(&h), 0, "nothing stored");
}

/// The cookie that binds a login to its browser is the only thing that
/// tells the person's browser from a scammer's. A `__Secure-` cookie can be
/// planted by any other host under the same registrable domain (`Domain=`):
/// a scammer who starts a login in their own browser could plant their
/// login's cookie in the person's browser, send the person to the login's
/// page, where the person sees the real code and approves, and then fetch
/// the code with the same cookie. `__Host-` cookies can only come from this
/// host (no `Domain`, `Path=/`, `Secure`).
#[tokio::test]
async fn the_login_cookie_can_only_be_set_by_this_host() {
    let h = Harness::start().await;
    let sp = harness_provider(&h).await;
    let client = register(&h, sp, KeyKind::Secret, "https://bank.example/cb").await;
    let request_uri = push(&h, &client).await;
    let mut url = url::Url::parse(&format!("{}/oidc/authorize", h.endpoint.base_url)).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", &client.id)
        .append_pair("request_uri", &request_uri);
    let arrived = h.endpoint.client.get(url).send().await.unwrap();
    assert_eq!(arrived.status().as_u16(), 303);
    let set = arrived.headers()["set-cookie"].to_str().unwrap().to_owned();
    let attributes: Vec<&str> = set.split(';').map(str::trim).collect();
    assert!(attributes[0].starts_with("__Host-"), "{set}");
    assert!(attributes.contains(&"Path=/"), "{set}");
    assert!(attributes.contains(&"Secure"), "{set}");
    assert!(attributes.contains(&"HttpOnly"), "{set}");
    assert!(
        !attributes
            .iter()
            .any(|a| a.to_ascii_lowercase().starts_with("domain")),
        "{set}"
    );
    // And the page opens with it.
    let path = arrived.headers()["location"].to_str().unwrap().to_owned();
    let (status, _, _) = get(&h, &path, Some(attributes[0])).await;
    assert_eq!(status, 200);
}
