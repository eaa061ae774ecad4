//! Code devices end to end over the real API and pages (see
//! docs/authenticators.md): a PSKC batch imported by the administrator
//! (and a bad one refused), the activation with support's activation code
//! and two consecutive codes, then logins through the hosted pages by code
//! display: user ID with `method=code_display`, six digits, access code,
//! back to the client with a code whose ID token says `code_token`.

use eid_api_client::SelfServiceClient;
use eid_protocol::wire::{
    ActivateCodeDeviceRequest, CodeDeviceKind, ErrorCode, ImportTokenBatchRequest,
};
use eid_server::code_devices::pskc::build::batch_document;
use eid_server::code_devices::totp::{self, Algorithm, Params};

use super::common::{Harness, assert_code};
use super::support::*;

const USER: &str = "grete.holm-7";
const SERIAL: &str = "CD00012345";
const SEED: &[u8] = b"an-example-seed-of-32-bytes-long";
const PSK: [u8; 16] = [0x5a; 16];
const ACCESS_CODE: &str = "blue-kettle-orbit";
const P: Params = Params {
    algorithm: Algorithm::Sha256,
    digits: 6,
    step_secs: 30,
};

/// The device's code at the server's time plus `offset_steps`.
fn device_code(h: &Harness, offset_steps: i64) -> String {
    let step = totp::step_at(h.now() / 1000, 30) as i64 + offset_steps;
    totp::code_for_step(P, SEED, step as u64)
}

fn import_request(document: String) -> ImportTokenBatchRequest {
    ImportTokenBatchRequest {
        pskc: document,
        pre_shared_key: hex::encode(PSK),
        kind: CodeDeviceKind::CodeDisplay,
        label: None,
    }
}

/// Imports a batch with `SERIAL` and `CD00099999`, and activates `SERIAL`
/// on a new person `USER`.
async fn person_with_code_display(h: &Harness) -> eid_api_client::SoftPhone {
    let document = batch_document(
        &PSK,
        "batch-2026-12",
        &[(SERIAL, P, SEED), ("CD00099999", P, &[7; 20])],
    );
    let imported = h
        .admin
        .import_token_batch(&import_request(document))
        .await
        .unwrap();
    assert_eq!(imported.serials, vec![SERIAL, "CD00099999"]);
    assert_eq!(imported.label, "batch-2026-12");
    let (identity, phone) = h.person(USER).await;
    let code = h.admin.issue_activation_code(identity).await.unwrap();
    let portal = SelfServiceClient::new(h.endpoint.clone());
    let activated = portal
        .activate_code_device(&ActivateCodeDeviceRequest {
            user_id: USER.into(),
            activation_code: code.activation_code,
            serial: SERIAL.into(),
            first_code: device_code(h, -1),
            second_code: device_code(h, 0),
            access_code: ACCESS_CODE.into(),
        })
        .await
        .unwrap();
    assert_eq!(activated.masked_serial, "••••••2345");
    phone
}

#[tokio::test]
async fn a_batch_with_a_missing_or_wrong_value_mac_or_a_taken_serial_is_refused_whole() {
    let h = Harness::start().await;
    let good = batch_document(&PSK, "b1", &[("S-1", P, SEED)]);
    let start = good.find("<ValueMAC>").unwrap();
    let end = good.find("</ValueMAC>").unwrap() + "</ValueMAC>".len();
    let without_mac = format!("{}{}", &good[..start], &good[end..]);
    assert_code(
        h.admin
            .import_token_batch(&import_request(without_mac))
            .await,
        ErrorCode::InvalidParameter,
    );
    let mac_start = start + "<ValueMAC>".len();
    let mut wrong_mac = good.clone();
    let flipped = if &good[mac_start..mac_start + 1] == "A" {
        "B"
    } else {
        "A"
    };
    wrong_mac.replace_range(mac_start..mac_start + 1, flipped);
    assert_code(
        h.admin.import_token_batch(&import_request(wrong_mac)).await,
        ErrorCode::InvalidParameter,
    );
    let mut wrong_key = import_request(good.clone());
    wrong_key.pre_shared_key = hex::encode([1u8; 16]);
    assert_code(
        h.admin.import_token_batch(&wrong_key).await,
        ErrorCode::InvalidParameter,
    );
    h.admin
        .import_token_batch(&import_request(good.clone()))
        .await
        .unwrap();
    let again = batch_document(&PSK, "b2", &[("S-2", P, SEED), ("S-1", P, SEED)]);
    assert_code(
        h.admin.import_token_batch(&import_request(again)).await,
        ErrorCode::SerialTaken,
    );
    // Nothing of the refused batch was stored: S-2 cannot be activated.
    let (identity, _) = h.person(USER).await;
    let code = h.admin.issue_activation_code(identity).await.unwrap();
    let portal = SelfServiceClient::new(h.endpoint.clone());
    assert_code(
        portal
            .activate_code_device(&ActivateCodeDeviceRequest {
                user_id: USER.into(),
                activation_code: code.activation_code,
                serial: "S-2".into(),
                first_code: device_code(&h, -1),
                second_code: device_code(&h, 0),
                access_code: ACCESS_CODE.into(),
            })
            .await,
        ErrorCode::InvalidActivationCode,
    );
}

#[tokio::test]
async fn a_second_code_device_is_refused_and_a_weak_access_code_is_told() {
    let h = Harness::start().await;
    person_with_code_display(&h).await;
    let identity = h.admin.create_identity("ole.berg-33", None).await.unwrap();
    let code = h
        .admin
        .issue_activation_code(identity.identity_id)
        .await
        .unwrap();
    let portal = SelfServiceClient::new(h.endpoint.clone());
    let request = |access_code: &str, serial: &str| ActivateCodeDeviceRequest {
        user_id: "ole.berg-33".into(),
        activation_code: code.activation_code.clone(),
        serial: serial.into(),
        first_code: totp::code_for_step(P, &[7; 20], totp::step_at(h.now() / 1000, 30) - 1),
        second_code: totp::code_for_step(P, &[7; 20], totp::step_at(h.now() / 1000, 30)),
        access_code: access_code.into(),
    };
    assert_code(
        portal
            .activate_code_device(&request("12345678", "CD00099999"))
            .await,
        ErrorCode::InvalidParameter,
    );
    assert_code(
        portal
            .activate_code_device(&request(ACCESS_CODE, SERIAL))
            .await,
        ErrorCode::InvalidActivationCode,
    );
}

/// A browser on the login pages: the login's path and cookie.
struct Browser<'h> {
    h: &'h Harness,
    path: String,
    cookie: String,
}

fn location(resp: &reqwest::Response) -> String {
    assert_eq!(resp.status().as_u16(), 303, "expected a redirect");
    resp.headers()
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned()
}

fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[at..at + html[at..].find('"').unwrap()].to_owned()
}

impl<'h> Browser<'h> {
    async fn start(h: &'h Harness, client: &TestClient) -> Self {
        let base = &h.endpoint.base_url;
        let request_uri = push(h, client).await;
        let mut authorize = url::Url::parse(&format!("{base}/oidc/authorize")).unwrap();
        authorize
            .query_pairs_mut()
            .append_pair("client_id", &client.id)
            .append_pair("request_uri", &request_uri);
        let arrived = h.endpoint.client.get(authorize).send().await.unwrap();
        let path = location(&arrived);
        let cookie = arrived.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        Self { h, path, cookie }
    }

    async fn get(&self, suffix: &str) -> reqwest::Response {
        self.h
            .endpoint
            .client
            .get(format!("{}{}{suffix}", self.h.endpoint.base_url, self.path))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap()
    }

    async fn post(&self, suffix: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        self.post_from(suffix, suffix, fields).await
    }

    /// Posts `fields` to `suffix` with the CSRF token of the page at `page`.
    async fn post_from(
        &self,
        page: &str,
        suffix: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let page = self.get(page).await.text().await.unwrap();
        let csrf = csrf_of(&page);
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.h
            .endpoint
            .client
            .post(format!("{}{}{suffix}", self.h.endpoint.base_url, self.path))
            .header("cookie", &self.cookie)
            .header("origin", self.h.endpoint.base_url.trim_end_matches('/'))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&all))
            .send()
            .await
            .unwrap()
    }

    /// The user-ID step with `method`; returns where it sends the browser.
    async fn user_id(&self, user_id: &str, method: &str) -> String {
        let answer = self
            .post_from("", "/user-id", &[("user_id", user_id), ("method", method)])
            .await;
        location(&answer)
    }
}

/// The redirect back to the client from the page a right access code gets.
fn back_href(html: &str) -> String {
    let at = html.find("id=\"back\"").expect("the way back");
    let tag = &html[at..];
    let href = &tag[tag.find("href=\"").unwrap() + 6..];
    href[..href.find('"').unwrap()].replace("&amp;", "&")
}

#[tokio::test]
async fn a_person_logs_in_with_a_code_display_and_the_id_token_says_so() {
    let h = Harness::start().await;
    person_with_code_display(&h).await;
    let sp = harness_provider(&h).await;
    let bank = register(&h, sp, KeyKind::Ec, "https://bank.example/cb").await;

    let browser = Browser::start(&h, &bank).await;
    let page = browser.get("").await.text().await.unwrap();
    for method in ["app", "code_display", "code_reader"] {
        assert!(page.contains(&format!("value=\"{method}\"")), "{method}");
    }
    let next = browser.user_id(USER, "code_display").await;
    assert_eq!(next, format!("{}/code", browser.path));
    // The code the activation used is spent: a replay fails.
    let replay = browser
        .post("/code", &[("code", &device_code(&h, 0))])
        .await;
    assert_eq!(replay.status().as_u16(), 422);
    h.clock.advance_ms(30_000);
    let passed = browser
        .post("/code", &[("code", &device_code(&h, 0))])
        .await;
    assert_eq!(location(&passed), format!("{}/access-code", browser.path));
    let wrong = browser
        .post("/access-code", &[("access_code", "not-the-one-123")])
        .await;
    assert_eq!(wrong.status().as_u16(), 422);
    let done = browser
        .post("/access-code", &[("access_code", ACCESS_CODE)])
        .await;
    assert_eq!(done.status().as_u16(), 200);
    let back = back_href(&done.text().await.unwrap());
    assert!(back.starts_with("https://bank.example/cb?"), "{back}");
    let url = url::Url::parse(&back).unwrap();
    let code = url
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code");
    let tokens = redeem(&h, &bank, &code, VERIFIER).await;
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    let id_token = tokens.body["id_token"].as_str().unwrap();
    let payload = id_token.split('.').nth(1).unwrap();
    use base64::Engine as _;
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        claims["amr"],
        serde_json::json!(["code_token", "otp", "pwd"])
    );
    assert_eq!(
        claims["acr"],
        "https://data.gov.dk/concept/core/nsis/loa/Substantial"
    );
    assert_eq!(claims["eid_receipt_sha256"].as_str().unwrap().len(), 64);
    assert!(claims.get("eid_request_id").is_none());
    let info = userinfo(&h, tokens.body["access_token"].as_str(), false).await;
    assert_eq!(info.body["sub"], claims["sub"]);

    // The same code in a new login: used up.
    let again = Browser::start(&h, &bank).await;
    again.user_id(USER, "code_display").await;
    let replay = again.post("/code", &[("code", &device_code(&h, 0))]).await;
    assert_eq!(replay.status().as_u16(), 422);
}

#[tokio::test]
async fn unknown_user_ids_old_codes_wrong_kinds_and_blocked_devices_get_one_answer() {
    let (h, bank) = bank_and_code_display().await;

    let refused_text = |html: &str| {
        let at = html.find("id=\"code-error\"").expect("an error");
        html[at..at + html[at..].find("</p>").unwrap()].to_owned()
    };
    // An unknown user ID gets a code page and the same refusal.
    let stranger = Browser::start(&h, &bank).await;
    assert_eq!(
        stranger.user_id("nobody.here", "code_display").await,
        format!("{}/code", stranger.path)
    );
    let answer = stranger.post("/code", &[("code", "123456")]).await;
    assert_eq!(answer.status().as_u16(), 422);
    let unknown = refused_text(&answer.text().await.unwrap());

    let browser = Browser::start(&h, &bank).await;
    browser.user_id(USER, "code_display").await;
    // Ten minutes ago, and two steps off: refused alike.
    for offset in [-20, -2, 2] {
        let answer = browser
            .post("/code", &[("code", &device_code(&h, offset))])
            .await;
        assert_eq!(answer.status().as_u16(), 422, "{offset}");
        assert_eq!(refused_text(&answer.text().await.unwrap()), unknown);
        if offset == -2 {
            break; // The third failure would block the device.
        }
    }
    // The wrong kind (a code reader), with a right code: refused, not counted.
    let reader = Browser::start(&h, &bank).await;
    reader.user_id(USER, "code_reader").await;
    let answer = reader.post("/code", &[("code", &device_code(&h, 0))]).await;
    assert_eq!(answer.status().as_u16(), 422);
    // The third wrong code blocks: then even the right one fails.
    let answer = browser.post("/code", &[("code", "000000")]).await;
    assert_eq!(answer.status().as_u16(), 422);
    let answer = browser
        .post("/code", &[("code", &device_code(&h, 1))])
        .await;
    assert_eq!(answer.status().as_u16(), 422);
    assert_eq!(refused_text(&answer.text().await.unwrap()), unknown);
    // After the block, a fresh code passes.
    h.clock.advance_ms(15 * 60_000);
    let later = Browser::start(&h, &bank).await;
    later.user_id(USER, "code_display").await;
    let passed = later.post("/code", &[("code", &device_code(&h, 0))]).await;
    assert_eq!(location(&passed), format!("{}/access-code", later.path));
}

#[tokio::test]
async fn an_approval_in_the_app_activates_a_code_device_and_replaces_the_one_before() {
    let h = Harness::start().await;
    let mut phone = person_with_code_display(&h).await;
    let other_seed: &[u8] = &[7; 20];
    let code_at = |offset: i64| {
        let step = totp::step_at(h.now() / 1000, 30) as i64 + offset;
        totp::code_for_step(P, other_seed, step as u64)
    };
    let portal = SelfServiceClient::new(h.endpoint.clone());
    let request = |first: String, second: String| eid_protocol::wire::RequestCodeDeviceActivation {
        user_id: USER.into(),
        serial: "CD00099999".into(),
        first_code: first,
        second_code: second,
        access_code: "green-harbour-77".into(),
    };
    // Wrong codes: refused before anything reaches the app.
    assert_code(
        portal
            .request_code_device_activation(&request("000000".into(), "111111".into()))
            .await,
        ErrorCode::InvalidParameter,
    );
    let requested = portal
        .request_code_device_activation(&request(code_at(-1), code_at(0)))
        .await
        .unwrap();
    // The person's phone shows it with the loudest warning; they approve.
    let envelope = h.envelope(&phone, requested.request_id).await;
    assert_eq!(envelope.kind, eid_protocol::RequestKind::CodeDevice);
    assert_eq!(
        envelope.service_provider_id,
        eid_protocol::SELF_SERVICE_PROVIDER_ID
    );
    let decision = phone.decide(&envelope, eid_protocol::Outcome::Approve, None, true);
    phone.submit(&h.endpoint, &decision).await.unwrap();

    // The new device logs in; the old one no longer does.
    let sp = harness_provider(&h).await;
    let bank = register(&h, sp, KeyKind::Ec, "https://bank.example/cb").await;
    h.clock.advance_ms(30_000);
    let old = Browser::start(&h, &bank).await;
    old.user_id(USER, "code_display").await;
    let answer = old.post("/code", &[("code", &device_code(&h, 0))]).await;
    assert_eq!(answer.status().as_u16(), 422, "the replaced device");
    let new = Browser::start(&h, &bank).await;
    new.user_id(USER, "code_display").await;
    let passed = new.post("/code", &[("code", &code_at(0))]).await;
    assert_eq!(location(&passed), format!("{}/access-code", new.path));
    let done = new
        .post("/access-code", &[("access_code", "green-harbour-77")])
        .await;
    assert_eq!(done.status().as_u16(), 200);
}

#[tokio::test]
async fn the_self_service_page_activates_with_support_s_code_and_refuses_a_stale_form() {
    let h = Harness::start().await;
    let document = batch_document(&PSK, "b", &[(SERIAL, P, SEED)]);
    h.admin
        .import_token_batch(&import_request(document))
        .await
        .unwrap();
    let (identity, _phone) = h.person(USER).await;
    let code = h.admin.issue_activation_code(identity).await.unwrap();
    let base = &h.endpoint.base_url;
    let url = format!("{base}/self-service/code-device?lang=en");
    let got = h.endpoint.client.get(&url).send().await.unwrap();
    assert_eq!(got.status().as_u16(), 200);
    let cookie = got.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let csrf = csrf_of(&got.text().await.unwrap());
    let post = |csrf: String, cookie: String, first: String, second: String| {
        let fields = [
            ("csrf", csrf),
            ("user_id", USER.to_owned()),
            ("activation_code", code.activation_code.clone()),
            ("serial", SERIAL.to_owned()),
            ("first_code", first),
            ("second_code", second),
            ("access_code", ACCESS_CODE.to_owned()),
            ("access_code_again", ACCESS_CODE.to_owned()),
        ];
        let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        h.endpoint
            .client
            .post(&url)
            .header("cookie", cookie)
            .header("origin", base.trim_end_matches('/'))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&pairs))
            .send()
    };
    // Without the page's cookie: a stale form, nothing done.
    let stale = post(
        csrf.clone(),
        "x=y".into(),
        device_code(&h, -1),
        device_code(&h, 0),
    )
    .await
    .unwrap();
    assert_eq!(stale.status().as_u16(), 400);
    // The same code twice is no pair.
    let same = post(
        csrf.clone(),
        cookie.clone(),
        device_code(&h, 0),
        device_code(&h, 0),
    )
    .await
    .unwrap();
    assert_eq!(same.status().as_u16(), 422);
    let done = post(csrf, cookie, device_code(&h, -1), device_code(&h, 0))
        .await
        .unwrap();
    assert_eq!(done.status().as_u16(), 200);
    assert!(done.text().await.unwrap().contains("The device is ready"));
}

#[tokio::test]
async fn the_app_lists_the_code_display_and_deactivates_it_with_the_pin_and_it_logs_in_no_more() {
    use super::common::hardware::{deactivate_hardware, hardware_list};
    use eid_protocol::wire::{HardwareKind, HardwareState};

    let h = Harness::start().await;
    let phone = person_with_code_display(&h).await;
    let listed = hardware_list(&h, &phone).await.hardware;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let device = &listed[0];
    assert_eq!(device.kind, HardwareKind::CodeDisplay);
    assert_eq!(device.state, HardwareState::Active);
    assert_eq!(device.masked_serial, "••••••2345");
    assert!(
        !device.id.contains("2345") && device.id.len() == 32,
        "the id is opaque, not the serial: {}",
        device.id
    );

    // A wrong PIN changes nothing; the right one deactivates it, once.
    let wrong = eid_protocol::crypto::SoftwareSigningKey::generate();
    let refused = deactivate_hardware(&h, &phone, &wrong, &device.id).await;
    assert_eq!(refused.0, 403, "{}", refused.1);
    assert_eq!(
        hardware_list(&h, &phone).await.hardware[0].state,
        HardwareState::Active
    );
    let done = deactivate_hardware(&h, &phone, &phone.pin_key, &device.id).await;
    assert_eq!(done.0, 200, "{}", done.1);
    assert!(done.1.contains("\"deactivated\""), "{}", done.1);
    assert_eq!(
        hardware_list(&h, &phone).await.hardware[0].state,
        HardwareState::Deactivated
    );
    let again = deactivate_hardware(&h, &phone, &phone.pin_key, &device.id).await;
    assert_eq!(
        again.0, 200,
        "a resent deactivation is answered: {}",
        again.1
    );

    // Another person's phone cannot touch it.
    let (_, stranger) = h.person("bo.stranger-9").await;
    let theirs = deactivate_hardware(&h, &stranger, &stranger.pin_key, &device.id).await;
    assert_eq!(theirs.0, 404, "{}", theirs.1);

    // The device logs in no more.
    let sp = harness_provider(&h).await;
    let bank = register(&h, sp, KeyKind::Ec, "https://bank.example/cb").await;
    let browser = Browser::start(&h, &bank).await;
    browser.user_id(USER, "code_display").await;
    h.clock.advance_ms(30_000);
    let refused = browser
        .post("/code", &[("code", &device_code(&h, 0))])
        .await;
    assert_eq!(refused.status().as_u16(), 422);
}

impl Browser<'_> {
    /// Posts `fields` to `suffix` `times` times at once, all with the
    /// CSRF token of the page at `suffix` read once before.
    async fn burst(&self, suffix: &str, fields: &[Vec<(&str, String)>]) -> Vec<u16> {
        let page = self.get(suffix).await.text().await.unwrap();
        let csrf = csrf_of(&page);
        let posts = fields.iter().map(|f| {
            let mut all = vec![("csrf", csrf.as_str())];
            all.extend(f.iter().map(|(k, v)| (*k, v.as_str())));
            let body = form(&all);
            async move {
                self.h
                    .endpoint
                    .client
                    .post(format!("{}{}{suffix}", self.h.endpoint.base_url, self.path))
                    .header("cookie", &self.cookie)
                    .header("origin", self.h.endpoint.base_url.trim_end_matches('/'))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        });
        futures::future::join_all(posts).await
    }
}

/// Twenty-four wrong tries sent at once would be eight blocks in a row (the
/// last one a day long) if each were looked at; three in a row is the rule,
/// so at most one block of fifteen minutes may follow. An hour later (when
/// the address's own wait for its wrong codes is over too) a fresh code
/// passes again.
async fn only_one_block_follows(h: &Harness, bank: &TestClient) {
    h.clock.advance_ms(61 * 60_000 + 30_000);
    let later = Browser::start(h, bank).await;
    later.user_id(USER, "code_display").await;
    let passed = later.post("/code", &[("code", &device_code(h, 0))]).await;
    assert_eq!(
        passed.status().as_u16(),
        303,
        "the device is still blocked: more than three tries were counted"
    );
}

/// A server with a person holding a code display, a bank's client, and a
/// minute gone by (so a code of the device's current step is fresh).
async fn bank_and_code_display() -> (Harness, TestClient) {
    let h = Harness::start().await;
    person_with_code_display(&h).await;
    let sp = harness_provider(&h).await;
    let bank = register(&h, sp, KeyKind::Ec, "https://bank.example/cb").await;
    h.clock.advance_ms(60_000);
    (h, bank)
}

#[tokio::test]
async fn wrong_codes_sent_at_once_are_not_all_tried() {
    let (h, bank) = bank_and_code_display().await;

    // A stranger who knows the user ID but has no device guesses codes in
    // parallel: each guess looked at is a chance of 3 in a million.
    let stranger = Browser::start(&h, &bank).await;
    stranger.user_id(USER, "code_display").await;
    let guesses: Vec<Vec<(&str, String)>> = (0..24)
        .map(|i| vec![("code", format!("{:06}", 100_000 + i))])
        .collect();
    for status in stranger.burst("/code", &guesses).await {
        assert_eq!(status, 422);
    }
    only_one_block_follows(&h, &bank).await;
}

#[tokio::test]
async fn wrong_access_codes_sent_at_once_are_not_all_tried() {
    let (h, bank) = bank_and_code_display().await;

    // A thief with the device passes the code step once, then tries a
    // list of access codes in parallel.
    let thief = Browser::start(&h, &bank).await;
    thief.user_id(USER, "code_display").await;
    let passed = thief.post("/code", &[("code", &device_code(&h, 0))]).await;
    assert_eq!(location(&passed), format!("{}/access-code", thief.path));
    let guesses: Vec<Vec<(&str, String)>> = (0..24)
        .map(|i| vec![("access_code", format!("guess-number-{i}"))])
        .collect();
    for status in thief.burst("/access-code", &guesses).await {
        assert_eq!(status, 422);
    }
    only_one_block_follows(&h, &bank).await;
}

/// The code step of a person's device counts a wrong code in a durable
/// write (its commit waits for the fsync: milliseconds); an unknown user ID
/// or one without a device of the chosen kind makes a write too, or the
/// answer's time would tell them apart.
#[tokio::test]
async fn a_wrong_code_costs_one_durable_write_whether_or_not_the_user_id_has_the_device() {
    let (h, bank) = bank_and_code_display().await;
    let rows = || -> i64 {
        h.count(
            "SELECT (SELECT COUNT(*) FROM nonces) \
                 + (SELECT COALESCE(SUM(failures), 0) FROM code_devices)",
        )
    };
    let mut written = Vec::new();
    for (user_id, method) in [
        (USER, "code_display"),
        ("nobody.here", "code_display"),
        (USER, "code_reader"),
    ] {
        let browser = Browser::start(&h, &bank).await;
        browser.user_id(user_id, method).await;
        let before = rows();
        let answer = browser.post("/code", &[("code", "000000")]).await;
        assert_eq!(answer.status().as_u16(), 422);
        written.push(rows() - before);
    }
    assert_eq!(written, [1, 1, 1], "a counted failure or a stand-in nonce");
}

/// A start of an activation in the app makes two durable writes for a
/// person (the request, then the device's pending activation), each waiting
/// for an fsync; a stand-in for a user ID nobody has makes as many, or the
/// answer's time would tell that the user ID has an app.
#[tokio::test]
async fn an_activation_in_the_app_writes_as_much_for_an_unknown_user_id_as_for_a_person() {
    let h = Harness::start().await;
    let _phone = person_with_code_display(&h).await;
    let other_seed: &[u8] = &[7; 20];
    let portal = SelfServiceClient::new(h.endpoint.clone());
    let rows = || -> i64 {
        h.count(
            "SELECT (SELECT COUNT(*) FROM requests) + (SELECT COUNT(*) FROM nonces) \
                 + (SELECT COUNT(*) FROM code_devices WHERE pending_request_id IS NOT NULL)",
        )
    };
    let mut written = Vec::new();
    for user_id in ["nobody.here", USER] {
        // Each start uses two fresh codes of the unassigned device.
        h.clock.advance_ms(60_000);
        let code_at = |offset: i64| {
            let step = totp::step_at(h.now() / 1000, 30) as i64 + offset;
            totp::code_for_step(P, other_seed, step as u64)
        };
        let before = rows();
        portal
            .request_code_device_activation(&eid_protocol::wire::RequestCodeDeviceActivation {
                user_id: user_id.into(),
                serial: "CD00099999".into(),
                first_code: code_at(-1),
                second_code: code_at(0),
                access_code: "green-harbour-77".into(),
            })
            .await
            .unwrap();
        written.push(rows() - before);
    }
    assert_eq!(
        written,
        [2, 2],
        "a stand-in's nonces, or the request and the pending activation"
    );
}
