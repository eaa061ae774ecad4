//! End-to-end tests of the `eid` binary: the demo, a scripted journey against a
//! server started in this process, and bad input.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::support::{PIN, eid_command};

pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) json: Value,
    pub(crate) stderr: String,
}

pub(crate) fn eid(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Run {
    let mut cmd = eid_command();
    cmd.args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "one JSON object expected on stdout, got {stdout:?} (stderr {stderr:?})"
    );
    Run {
        code: out.status.code().unwrap_or(-1),
        json: serde_json::from_str(lines[0]).unwrap(),
        stderr,
    }
}

#[track_caller]
pub(crate) fn ok(r: Run) -> Value {
    assert_eq!(r.code, 0, "{} / {}", r.json, r.stderr);
    assert!(r.json.get("error").is_none(), "{}", r.json);
    r.json
}

#[track_caller]
pub(crate) fn err(r: Run, kind: &str) -> Value {
    assert_ne!(r.code, 0, "expected failure: {}", r.json);
    let e = r.json["error"].clone();
    assert_eq!(e["kind"], kind, "{}", r.json);
    assert!(!e["message"].as_str().unwrap().is_empty());
    e
}

/// A real server on 127.0.0.1 in a runtime owned by the test.
pub(crate) struct Server {
    runtime: tokio::runtime::Runtime,
    server: Option<eid_server::RunningServer>,
    _dir: tempfile::TempDir,
    pub(crate) url: String,
    pub(crate) pin: String,
    pub(crate) token: String,
}

impl Server {
    pub(crate) fn start() -> Self {
        Self::start_with(|_| {})
    }

    pub(crate) fn start_with(tweak: impl FnOnce(&mut eid_server::Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut config = eid_server::Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().to_owned(),
            ..eid_server::Config::default()
        };
        tweak(&mut config);
        let server = runtime
            .block_on(eid_server::start(eid_server::ServerOptions::new(config)))
            .unwrap();
        Self {
            url: server.base_url(),
            pin: server.spki_pin.clone(),
            token: server.admin_token.to_string(),
            server: Some(server),
            runtime,
            _dir: dir,
        }
    }

    /// Server, pin and admin token, plus the fast test-only KDF.
    pub(crate) fn env(&self) -> Vec<(&str, &str)> {
        vec![
            ("EID_SERVER", self.url.as_str()),
            ("EID_SPKI_PIN", self.pin.as_str()),
            ("EID_ADMIN_TOKEN", self.token.as_str()),
            ("EID_KDF_ITERATIONS", "1000"),
        ]
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            self.runtime.block_on(s.shutdown());
        }
    }
}

/// Creates an identity, activates a phone in `app_dir` and registers a provider.
/// Returns the provider's API key.
pub(crate) fn setup(s: &Server, user_id: &str, app_dir: &Path) -> String {
    let env = s.env();
    let created = ok(eid(
        &[
            "--json",
            "admin",
            "create-identity",
            "--user-id",
            user_id,
            "--name",
            "Grete Jensen",
        ],
        &env,
        None,
    ));
    let identity = created["identity_id"].as_str().unwrap().to_owned();
    assert_eq!(created["user_id"], user_id);
    let code = ok(eid(
        &[
            "--json",
            "admin",
            "activation-code",
            "--identity",
            &identity,
        ],
        &env,
        None,
    ));
    let code = code["activation_code"].as_str().unwrap().to_owned();
    let app_dir = app_dir.to_str().unwrap();
    let activated = ok(eid(
        &[
            "--json",
            "app",
            "activate",
            "--app-dir",
            app_dir,
            "--user-id",
            user_id,
            "--code",
            &code,
            "--pin-stdin",
        ],
        &env,
        Some(&format!("{PIN}\n")),
    ));
    assert_eq!(activated["account"]["state"], "active");
    assert_eq!(activated["account"]["identity_id"], identity.as_str());
    let shown = ok(eid(
        &["--json", "admin", "show", "--identity", &identity],
        &env,
        None,
    ));
    assert_eq!(shown["authenticators"].as_array().unwrap().len(), 1);
    let sp = ok(eid(
        &[
            "--json",
            "admin",
            "register-provider",
            "--name",
            "Nordisk Bank A/S",
        ],
        &env,
        None,
    ));
    sp["api_key"].as_str().unwrap().to_owned()
}

#[test]
fn demo_json_approves_with_verified_receipt_and_reports_fraud() {
    let r = ok(eid(&["demo", "--json"], &[], None));
    assert_eq!(r["ok"], true);
    assert_eq!(r["login"]["status"], "approved");
    assert_eq!(r["login"]["receipt_verified"], true);
    assert_eq!(r["login"]["rp"]["receipt"]["verified"], true);
    assert_eq!(r["login"]["rp"]["receipt"]["outcome"], "approve");
    assert_eq!(
        r["login"]["request"]["reference_text"],
        "Log på Netbank – Danske Eksempel Bank"
    );
    assert_eq!(r["login"]["request"]["language"], "en");
    assert_eq!(r["refusal"]["status"], "fraud_reported");
    assert_eq!(r["refusal"]["receipt_verified"], true);
    assert_eq!(r["refusal"]["rp"]["receipt"]["outcome"], "report_fraud");
    let steps = r["steps"].as_array().unwrap();
    assert!(steps.len() >= 10);
    assert!(steps.iter().all(|s| s["ms"].is_u64()));
    // No PIN in the output.
    assert!(!r.to_string().contains(PIN));
}

#[test]
fn demo_text_in_danish() {
    let out = Command::new(env!("CARGO_BIN_EXE_eid"))
        .args(["demo", "--lang", "da"])
        .env("EID_KDF_ITERATIONS", "1000")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("Log på hos Danske Eksempel Bank"), "{text}");
    assert!(text.contains("[Godkend]"));
    assert!(text.contains("VERIFIED"));
    assert!(!text.contains(PIN));
}

#[test]
fn scripted_journey_against_a_running_server() {
    let s = Server::start();
    let app = tempfile::tempdir().unwrap();
    let app_dir = app.path().to_str().unwrap();
    let api_key = setup(&s, "anna#2024x", app.path());
    let mut rp_env = s.env();
    rp_env.push(("EID_API_KEY", api_key.as_str()));

    let created = ok(eid(
        &[
            "--json",
            "rp",
            "request",
            "--user-id",
            "anna#2024x",
            "--kind",
            "login",
            "--text",
            "Log på Netbank",
        ],
        &rp_env,
        None,
    ));
    let request = created["request_id"].as_str().unwrap().to_owned();

    // Later app calls need only the app folder: the server is remembered.
    let app_env = [("EID_APP_DIR", app_dir)];
    let opened = ok(eid(&["--json", "app", "open"], &app_env, None));
    let list = opened["requests"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["request_id"], request.as_str());
    assert_eq!(list[0]["reference_text"], "Log på Netbank");
    assert_eq!(list[0]["provider_name"], "Nordisk Bank A/S");
    assert_eq!(list[0]["title"], "Log in at Nordisk Bank A/S");
    assert_eq!(list[0]["actions"][0]["action"], "approve");

    let pending = ok(eid(
        &["--json", "rp", "status", "--request", &request],
        &rp_env,
        None,
    ));
    assert_eq!(pending["status"], "pending");
    assert_eq!(pending["receipt"], Value::Null);

    let approved = ok(eid(
        &[
            "--json",
            "app",
            "approve",
            "--request",
            &request,
            "--pin-stdin",
        ],
        &app_env,
        Some(PIN),
    ));
    assert_eq!(approved["result"], "approved");
    assert_eq!(approved["receipt"]["outcome"], "approve");

    let status = ok(eid(
        &[
            "--json",
            "rp",
            "status",
            "--request",
            &request,
            "--wait",
            "2",
            "--text",
            "Log på Netbank",
        ],
        &rp_env,
        None,
    ));
    assert_eq!(status["status"], "approved");
    assert_eq!(status["receipt"]["verified"], true);
    assert_eq!(status["receipt"]["outcome"], "approve");
    assert_eq!(
        status["receipt"]["authenticator_id"],
        approved["authenticator_id"]
    );

    // A second one denied, a third cancelled by the provider.
    let second = ok(eid(
        &[
            "--json",
            "rp",
            "request",
            "--user-id",
            "anna#2024x",
            "--kind",
            "signature",
            "--text",
            "Underskriv lån",
        ],
        &rp_env,
        None,
    ));
    let second = second["request_id"].as_str().unwrap().to_owned();
    let denied = ok(eid(
        &["--json", "app", "deny", "--request", &second],
        &app_env,
        None,
    ));
    assert_eq!(denied["result"], "denied");
    let st = ok(eid(
        &["--json", "rp", "status", "--request", &second],
        &rp_env,
        None,
    ));
    assert_eq!(st["status"], "denied");
    assert_eq!(st["receipt"]["verified"], true);

    let third = ok(eid(
        &[
            "--json",
            "rp",
            "request",
            "--user-id",
            "anna#2024x",
            "--text",
            "Log på igen",
        ],
        &rp_env,
        None,
    ));
    let third = third["request_id"].as_str().unwrap().to_owned();
    let cancelled = ok(eid(
        &["--json", "rp", "cancel", "--request", &third],
        &rp_env,
        None,
    ));
    assert_eq!(cancelled["status"], "cancelled");

    let authenticators = ok(eid(&["--json", "app", "accounts"], &app_env, None));
    assert_eq!(authenticators["accounts"][0]["user_id"], "anna#2024x");
    let opened = ok(eid(&["--json", "app", "open"], &app_env, None));
    assert!(opened["requests"].as_array().unwrap().is_empty());

    // Support blocks the identity: the phone sees it on the next open.
    let identity = authenticators["accounts"][0]["identity_id"]
        .as_str()
        .unwrap();
    let blocked = ok(eid(
        &[
            "--json",
            "admin",
            "block",
            "--identity",
            identity,
            "--reason",
            "case 17: phone stolen",
        ],
        &s.env(),
        None,
    ));
    assert_eq!(blocked["blocked"], true);
    let opened = ok(eid(&["--json", "app", "open"], &app_env, None));
    assert_eq!(opened["accounts"][0]["state"], "blocked");
    let e = err(
        eid(
            &[
                "--json",
                "rp",
                "request",
                "--user-id",
                "anna#2024x",
                "--text",
                "Log på",
            ],
            &rp_env,
            None,
        ),
        "rejected",
    );
    assert_eq!(e["code"], "identity_blocked");
    let unblocked = ok(eid(
        &[
            "--json",
            "admin",
            "unblock",
            "--identity",
            identity,
            "--reason",
            "case 17: person identified",
        ],
        &s.env(),
        None,
    ));
    assert_eq!(unblocked["blocked"], false);

    // The person blocks from the app (no PIN); support sees it.
    let blocked = ok(eid(&["--json", "app", "block"], &app_env, None));
    assert_eq!(blocked["state"], "blocked");
    let shown = ok(eid(
        &["--json", "admin", "show", "--identity", identity],
        &s.env(),
        None,
    ));
    assert_eq!(shown["blocked"], true);
}

#[test]
fn bad_input_is_refused_clearly_and_changes_nothing() {
    let s = Server::start();
    let app = tempfile::tempdir().unwrap();
    let app_dir = app.path().to_str().unwrap();
    let api_key = setup(&s, "bent#1960y", app.path());
    let mut rp_env = s.env();
    rp_env.push(("EID_API_KEY", api_key.as_str()));
    let app_env = [("EID_APP_DIR", app_dir)];

    let created = ok(eid(
        &[
            "--json",
            "rp",
            "request",
            "--user-id",
            "bent#1960y",
            "--text",
            "Log på Netbank",
        ],
        &rp_env,
        None,
    ));
    let request = created["request_id"].as_str().unwrap().to_owned();

    // Wrong PIN: counted, reported with attempts left, nothing decided.
    let e = err(
        eid(
            &[
                "--json",
                "app",
                "approve",
                "--request",
                &request,
                "--pin-stdin",
            ],
            &app_env,
            Some("907153\n"),
        ),
        "wrong_pin",
    );
    assert_eq!(e["attempts_left"], 9);
    assert_eq!(e["retry_after_ms"], 0);
    let st = ok(eid(
        &["--json", "rp", "status", "--request", &request],
        &rp_env,
        None,
    ));
    assert_eq!(st["status"], "pending");
    let opened = ok(eid(&["--json", "app", "open"], &app_env, None));
    assert_eq!(opened["requests"][0]["request_id"], request.as_str());
    // The PIN comes from EID_PIN too; the right one still works.
    let approved = ok(eid(
        &["--json", "app", "approve", "--request", &request],
        &[("EID_APP_DIR", app_dir), ("EID_PIN", PIN)],
        None,
    ));
    assert_eq!(approved["result"], "approved");

    // No PIN at all.
    err(
        eid(
            &["--json", "app", "approve", "--request", &request],
            &app_env,
            None,
        ),
        "missing_pin",
    );

    // Invalid user IDs are refused by the server with its code.
    let e = err(
        eid(
            &["--json", "admin", "create-identity", "--user-id", "short"],
            &s.env(),
            None,
        ),
        "rejected",
    );
    assert_eq!(e["code"], "invalid_user_id");
    let e = err(
        eid(
            &[
                "--json",
                "admin",
                "create-identity",
                "--user-id",
                "bent#1960y",
            ],
            &s.env(),
            None,
        ),
        "rejected",
    );
    assert_eq!(e["code"], "user_id_taken");

    // Malformed SPKI pins and URLs.
    for bad in ["sha256/not-base64!!", "sha256/AAAA", "md5/abc"] {
        let e = err(
            eid(
                &[
                    "--json",
                    "--spki-pin",
                    bad,
                    "admin",
                    "show",
                    "--identity",
                    &"0".repeat(32),
                ],
                &s.env(),
                None,
            ),
            "config",
        );
        assert!(e["message"].as_str().unwrap().contains("server key pin"));
    }
    err(
        eid(
            &[
                "--json",
                "--server",
                "http://127.0.0.1:1",
                "admin",
                "show",
                "--identity",
                &"0".repeat(32),
            ],
            &s.env(),
            None,
        ),
        "config",
    );
    // A pin of another key: the TLS handshake is refused.
    let other_pin = format!("sha256/{}=", "A".repeat(43));
    err(
        eid(
            &[
                "--json",
                "--spki-pin",
                &other_pin,
                "admin",
                "show",
                "--identity",
                &"0".repeat(32),
            ],
            &s.env(),
            None,
        ),
        "network",
    );

    // Unknown and malformed request IDs.
    let unknown = "0123456789abcdef0123456789abcdef";
    let e = err(
        eid(
            &["--json", "rp", "status", "--request", unknown],
            &rp_env,
            None,
        ),
        "rejected",
    );
    assert_eq!(e["code"], "unknown_request");
    err(
        eid(
            &[
                "--json",
                "app",
                "approve",
                "--request",
                unknown,
                "--pin-stdin",
            ],
            &app_env,
            Some(PIN),
        ),
        "unknown_request",
    );
    err(
        eid(
            &["--json", "app", "deny", "--request", "xyz"],
            &app_env,
            None,
        ),
        "invalid_argument",
    );
    // Usage errors are JSON too with --json.
    err(eid(&["--json", "rp", "status"], &rp_env, None), "usage");
    // The app folder must exist or be given.
    err(eid(&["--json", "app", "open"], &[], None), "missing_option");

    // Three wrong PINs in a row: a wait, then locked out even with the right one.
    let created = ok(eid(
        &[
            "--json",
            "rp",
            "request",
            "--user-id",
            "bent#1960y",
            "--text",
            "Log på igen",
        ],
        &rp_env,
        None,
    ));
    let request = created["request_id"].as_str().unwrap().to_owned();
    let approve = [
        "--json",
        "app",
        "approve",
        "--request",
        &request,
        "--pin-stdin",
    ];
    let mut last = Value::Null;
    for _ in 0..3 {
        last = err(eid(&approve, &app_env, Some("907153")), "wrong_pin");
    }
    assert_eq!(last["attempts_left"], 7);
    assert!(last["retry_after_ms"].as_u64().unwrap() > 0);
    let e = err(eid(&approve, &app_env, Some(PIN)), "locked_out");
    assert!(e["retry_after_ms"].as_u64().unwrap() > 0);
    let st = ok(eid(
        &["--json", "rp", "status", "--request", &request],
        &rp_env,
        None,
    ));
    assert_eq!(st["status"], "pending");
}

#[test]
fn new_device_from_an_existing_phone() {
    // No waiting period here (a real-clock server); the e2e tests cross the
    // hour with a manual clock.
    let s = Server::start_with(|c| c.new_device_wait_secs = 0);
    let old = tempfile::tempdir().unwrap();
    setup(&s, "bo#2024xy", old.path());
    let old_env = [("EID_APP_DIR", old.path().to_str().unwrap())];
    let new = tempfile::tempdir().unwrap();
    let mut new_env = s.env();
    new_env.push(("EID_APP_DIR", new.path().to_str().unwrap()));

    let enrol = ok(eid(
        &[
            "--json",
            "app",
            "enrol",
            "--user-id",
            "bo#2024xy",
            "--pin-stdin",
        ],
        &new_env,
        Some(PIN),
    ));
    let code = enrol["code"].as_str().unwrap().to_owned();
    assert_eq!(enrol["qr_payload"], format!("eid-bind:v1:{code}"));
    let status = ok(eid(&["--json", "app", "enrol-status"], &new_env, None));
    assert_eq!(status["state"], "awaiting_approval");

    let opened = ok(eid(&["--json", "app", "open"], &old_env, None));
    let request = opened["requests"][0]["request_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(opened["requests"][0]["kind"], "new_device");
    let devices = ok(eid(&["--json", "app", "devices"], &old_env, None));
    assert_eq!(devices["devices"][0]["state"], "awaiting_approval");
    ok(eid(
        &[
            "--json",
            "app",
            "approve",
            "--request",
            &request,
            "--pin-stdin",
            "--binding-code",
            &code,
        ],
        &old_env,
        Some(PIN),
    ));
    let status = ok(eid(&["--json", "app", "enrol-status"], &new_env, None));
    assert_eq!(status["state"], "activated");
    let authenticators = ok(eid(&["--json", "app", "accounts"], &new_env, None));
    assert_eq!(authenticators["accounts"].as_array().unwrap().len(), 1);

    // A third phone asks; the person cancels it from the old phone.
    let third = tempfile::tempdir().unwrap();
    let mut third_env = s.env();
    third_env.push(("EID_APP_DIR", third.path().to_str().unwrap()));
    let enrol = ok(eid(
        &[
            "--json",
            "app",
            "enrol",
            "--user-id",
            "bo#2024xy",
            "--pin-stdin",
        ],
        &third_env,
        Some(PIN),
    ));
    let enrolment = enrol["enrolment_id"].as_str().unwrap().to_owned();
    ok(eid(&["--json", "app", "open"], &old_env, None));
    let devices = ok(eid(&["--json", "app", "devices"], &old_env, None));
    assert_eq!(devices["devices"][0]["enrolment_id"], enrolment.as_str());
    ok(eid(
        &["--json", "app", "cancel-device", "--enrolment", &enrolment],
        &old_env,
        None,
    ));
    err(
        eid(&["--json", "app", "enrol-status"], &third_env, None),
        "enrolment_refused",
    );
    err(
        eid(&["--json", "app", "enrol-status"], &third_env, None),
        "no_pending_enrolment",
    );
}

/// Creates an identity (with extra `create-identity` arguments) and activates
/// it in `app_dir`. Returns (identity ID, authenticator ID).
pub(crate) fn person(
    s: &Server,
    user_id: &str,
    app_dir: &Path,
    extra: &[&str],
) -> (String, String) {
    let env = s.env();
    let mut args = vec!["--json", "admin", "create-identity", "--user-id", user_id];
    args.extend_from_slice(extra);
    let created = ok(eid(&args, &env, None));
    let identity = created["identity_id"].as_str().unwrap().to_owned();
    let code = ok(eid(
        &[
            "--json",
            "admin",
            "activation-code",
            "--identity",
            &identity,
        ],
        &env,
        None,
    ));
    let code = code["activation_code"].as_str().unwrap().to_owned();
    let activated = ok(eid(
        &[
            "--json",
            "app",
            "activate",
            "--app-dir",
            app_dir.to_str().unwrap(),
            "--user-id",
            user_id,
            "--code",
            &code,
            "--pin-stdin",
        ],
        &env,
        Some(&format!("{PIN}\n")),
    ));
    let authenticator = activated["account"]["authenticator_id"]
        .as_str()
        .unwrap()
        .to_owned();
    (identity, authenticator)
}

fn event_kinds(events: &Value) -> Vec<String> {
    events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

fn now_ms() -> u64 {
    u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

#[test]
fn contact_change_end_to_end_through_the_cli() {
    // A short gap on a real-clock server: long enough to be too early right
    // after the first login, short enough to wait out.
    let s = Server::start_with(|c| c.self_service_gap_secs = 4);
    let app = tempfile::tempdir().unwrap();
    let (identity, authenticator) = person(
        &s,
        "karl#2024q",
        app.path(),
        &["--phone", "+4512345678", "--email", "karl@example.dk"],
    );
    let env = s.env();
    let app_env = [("EID_APP_DIR", app.path().to_str().unwrap())];
    // The portal needs only the server and its pin.
    let portal_env = [
        ("EID_SERVER", s.url.as_str()),
        ("EID_SPKI_PIN", s.pin.as_str()),
    ];
    let shown = ok(eid(
        &["--json", "admin", "show", "--identity", &identity],
        &env,
        None,
    ));
    assert_eq!(shown["phone_masked"], "+45••••••78");
    let email_before = shown["email_masked"].clone();
    assert!(
        email_before.as_str().unwrap().ends_with("@e•••.dk"),
        "{email_before}"
    );

    let step1 = ok(eid(
        &[
            "--json",
            "self-service",
            "change-contact",
            "--user-id",
            "karl#2024q",
            "--phone",
            "+4598765466",
        ],
        &portal_env,
        None,
    ));
    let change = step1["change_id"].as_str().unwrap().to_owned();
    assert!(step1["expires_at_ms"].is_u64());

    // The app shows the change and the strongly warned self-service login.
    let changes = ok(eid(&["--json", "app", "changes"], &app_env, None));
    assert_eq!(changes["authenticator_id"], authenticator.as_str());
    let c = &changes["changes"][0];
    assert_eq!(c["change_id"], change.as_str());
    assert_eq!(c["channel"], "phone");
    assert_eq!(c["new_value_masked"], "+45••••••66");
    assert_eq!(c["state"], "awaiting_first_login");
    assert_eq!(c["earliest_completion_at_ms"], Value::Null);
    let opened = ok(eid(&["--json", "app", "open"], &app_env, None));
    assert_eq!(opened["requests"][0]["request_id"], step1["request_id"]);
    assert_eq!(opened["requests"][0]["kind"], "self_service");

    // Not visible on the portal before the first login is approved.
    let hidden = err(
        eid(
            &[
                "--json",
                "self-service",
                "status",
                "--change",
                &change,
                "--user-id",
                "karl#2024q",
            ],
            &portal_env,
            None,
        ),
        "rejected",
    );
    assert_eq!(hidden["code"], "unknown_change");

    // The login is bound to this portal session: the app wants the code the
    // portal printed.
    let code1 = step1["binding_code"].as_str().unwrap().to_owned();
    assert!(!code1.is_empty());
    err(
        eid(
            &[
                "--json",
                "app",
                "approve",
                "--request",
                step1["request_id"].as_str().unwrap(),
                "--pin-stdin",
            ],
            &app_env,
            Some(PIN),
        ),
        "binding_code_required",
    );
    ok(eid(
        &[
            "--json",
            "app",
            "approve",
            "--request",
            step1["request_id"].as_str().unwrap(),
            "--pin-stdin",
            "--binding-code",
            &code1,
        ],
        &app_env,
        Some(PIN),
    ));
    let status = ok(eid(
        &[
            "--json",
            "self-service",
            "status",
            "--change",
            &change,
            "--user-id",
            "karl#2024q",
        ],
        &portal_env,
        None,
    ));
    assert_eq!(status["state"], "waiting_second_login");
    assert_eq!(status["channel"], "phone");
    assert_eq!(status["failure"], Value::Null);
    let earliest = status["earliest_second_login_at_ms"].as_u64().unwrap();

    // Too early: a typed rejection with the server's code and message.
    let confirm = [
        "--json",
        "self-service",
        "confirm",
        "--change",
        &change,
        "--user-id",
        "karl#2024q",
    ];
    let early = err(eid(&confirm, &portal_env, None), "rejected");
    assert_eq!(early["code"], "too_early");
    assert_eq!(early["status"], 409);
    assert!(
        early["server_message"]
            .as_str()
            .unwrap()
            .contains(&earliest.to_string())
    );
    // Someone else's user ID cannot ask for it either.
    let other = err(
        eid(
            &[
                "--json",
                "self-service",
                "confirm",
                "--change",
                &change,
                "--user-id",
                "someone#99x",
            ],
            &portal_env,
            None,
        ),
        "rejected",
    );
    assert_eq!(other["code"], "unknown_change");

    // The app's feed and change list say so.
    let events = ok(eid(&["--json", "app", "events"], &app_env, None));
    assert!(
        event_kinds(&events).contains(&"contact_change_started".to_owned()),
        "{events}"
    );
    let first = &events["events"][0];
    assert!(first["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(first["body"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(first["critical"].is_boolean() && first["this_device"].is_boolean());
    let times: Vec<u64> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["occurred_at_ms"].as_u64().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );
    let changes = ok(eid(&["--json", "app", "changes"], &app_env, None));
    assert_eq!(changes["changes"][0]["state"], "waiting_second_login");
    assert_eq!(changes["changes"][0]["earliest_completion_at_ms"], earliest);

    // After the gap: the second login, approved, completes the change.
    while now_ms() <= earliest + 50 {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let step2 = ok(eid(&confirm, &portal_env, None));
    assert_eq!(step2["change_id"], change.as_str());
    ok(eid(
        &[
            "--json",
            "app",
            "approve",
            "--request",
            step2["request_id"].as_str().unwrap(),
            "--pin-stdin",
            "--binding-code",
            step2["binding_code"].as_str().unwrap(),
        ],
        &app_env,
        Some(PIN),
    ));
    let done = ok(eid(
        &[
            "--json",
            "self-service",
            "status",
            "--change",
            &change,
            "--user-id",
            "karl#2024q",
        ],
        &portal_env,
        None,
    ));
    assert_eq!(done["state"], "completed");
    let shown = ok(eid(
        &["--json", "admin", "show", "--identity", &identity],
        &env,
        None,
    ));
    assert_eq!(shown["phone_masked"], "+45••••••66");
    let changes = ok(eid(&["--json", "app", "changes"], &app_env, None));
    assert_eq!(changes["changes"].as_array().unwrap().len(), 0);
    let events = ok(eid(&["--json", "app", "events"], &app_env, None));
    assert_eq!(events["events"][0]["kind"], "contact_change_completed");

    // A second change, cancelled from the app with no PIN.
    let step = ok(eid(
        &[
            "--json",
            "self-service",
            "change-contact",
            "--user-id",
            "karl#2024q",
            "--email",
            "karl@evil.example",
        ],
        &portal_env,
        None,
    ));
    let change2 = step["change_id"].as_str().unwrap().to_owned();
    ok(eid(&["--json", "app", "open"], &app_env, None));
    let cancelled = ok(eid(
        &["--json", "app", "cancel-change", "--change", &change2],
        &app_env,
        None,
    ));
    assert_eq!(cancelled["state"], "cancelled");
    let changes = ok(eid(&["--json", "app", "changes"], &app_env, None));
    assert_eq!(changes["changes"].as_array().unwrap().len(), 0);
    // Cancelling again: the change is closed.
    let again = err(
        eid(
            &["--json", "app", "cancel-change", "--change", &change2],
            &app_env,
            None,
        ),
        "rejected",
    );
    assert_eq!(again["code"], "change_closed");
    let shown = ok(eid(
        &["--json", "admin", "show", "--identity", &identity],
        &env,
        None,
    ));
    // The e-mail is still the original one.
    assert_eq!(shown["email_masked"], email_before);
}

#[test]
fn user_id_change_through_the_cli() {
    let s = Server::start();
    let app = tempfile::tempdir().unwrap();
    let (identity, _) = person(&s, "lise#2024p", app.path(), &[]);
    let app_env = [("EID_APP_DIR", app.path().to_str().unwrap())];
    let portal_env = [
        ("EID_SERVER", s.url.as_str()),
        ("EID_SPKI_PIN", s.pin.as_str()),
    ];
    // A weak new user ID is refused with a reason, and nothing starts.
    let weak = err(
        eid(
            &[
                "--json",
                "self-service",
                "change-user-id",
                "--user-id",
                "lise#2024p",
                "--new-user-id",
                "short",
            ],
            &portal_env,
            None,
        ),
        "rejected",
    );
    assert_eq!(weak["code"], "invalid_user_id");
    assert!(!weak["server_message"].as_str().unwrap().is_empty());
    let opened = ok(eid(&["--json", "app", "open"], &app_env, None));
    assert_eq!(opened["requests"].as_array().unwrap().len(), 0);

    let step = ok(eid(
        &[
            "--json",
            "self-service",
            "change-user-id",
            "--user-id",
            "lise#2024p",
            "--new-user-id",
            "lise.Ny#77",
        ],
        &portal_env,
        None,
    ));
    let change = step["change_id"].as_str().unwrap().to_owned();
    ok(eid(
        &[
            "--json",
            "app",
            "approve",
            "--request",
            step["request_id"].as_str().unwrap(),
            "--pin-stdin",
            "--binding-code",
            step["binding_code"].as_str().unwrap(),
        ],
        &app_env,
        Some(PIN),
    ));
    // Done at once: the status answers to the current (new) user ID only.
    let status_as = |user: &str| {
        eid(
            &[
                "--json",
                "self-service",
                "user-id-status",
                "--change",
                &change,
                "--user-id",
                user,
            ],
            &portal_env,
            None,
        )
    };
    let old = err(status_as("lise#2024p"), "rejected");
    assert_eq!(old["code"], "unknown_change");
    let status = ok(status_as("LISE.ny#77"));
    assert_eq!(status["state"], "completed");
    assert_eq!(status["channel"], Value::Null);
    let shown = ok(eid(
        &["--json", "admin", "show", "--identity", &identity],
        &s.env(),
        None,
    ));
    assert_eq!(shown["user_id"], "lise.Ny#77");
}

#[test]
fn notify_on_every_use_and_household_counts() {
    let s = Server::start();
    let app = tempfile::tempdir().unwrap();
    let api_key = setup(&s, "mor#2024zz", app.path());
    let (_, child) = person(&s, "barn#2024zz", app.path(), &[]);
    let app_env = [("EID_APP_DIR", app.path().to_str().unwrap())];
    let mut rp_env = s.env();
    rp_env.push(("EID_API_KEY", api_key.as_str()));
    let authenticators = ok(eid(&["--json", "app", "accounts"], &app_env, None));
    let parent = authenticators["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["user_id"] == "mor#2024zz")
        .unwrap()["authenticator_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        authenticators["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["notify_every_use"] == false)
    );
    // Several authenticators: commands on one need --authenticator.
    err(
        eid(&["--json", "app", "events"], &app_env, None),
        "unknown_account",
    );

    let login = |user: &str, text: &str| -> String {
        let created = ok(eid(
            &[
                "--json",
                "rp",
                "request",
                "--user-id",
                user,
                "--kind",
                "login",
                "--text",
                text,
            ],
            &rp_env,
            None,
        ));
        created["request_id"].as_str().unwrap().to_owned()
    };
    let approve = |request: &str| {
        ok(eid(
            &[
                "--json",
                "app",
                "approve",
                "--request",
                request,
                "--account",
                &parent,
                "--pin-stdin",
            ],
            &app_env,
            Some(PIN),
        ));
    };

    // Off: an approval is not an event.
    let r1 = login("mor#2024zz", "Log på Netbank");
    approve(&r1);
    let events = ok(eid(
        &["--json", "app", "events", "--account", &parent],
        &app_env,
        None,
    ));
    assert!(
        !event_kinds(&events).contains(&"used".to_owned()),
        "{events}"
    );

    let set = ok(eid(
        &["--json", "app", "notify", "--on", "--account", &parent],
        &app_env,
        None,
    ));
    assert_eq!(set["notify_every_use"], true);
    let authenticators = ok(eid(&["--json", "app", "accounts"], &app_env, None));
    for a in authenticators["accounts"].as_array().unwrap() {
        let expected = a["authenticator_id"] == parent.as_str();
        assert_eq!(a["notify_every_use"], expected, "{a}");
    }
    let r2 = login("mor#2024zz", "Log på Netbank igen");
    approve(&r2);
    let events = ok(eid(
        &["--json", "app", "events", "--account", &parent],
        &app_env,
        None,
    ));
    assert_eq!(events["events"][0]["kind"], "used", "{events}");
    assert_eq!(events["events"][0]["this_device"], true);
    assert_eq!(events["events"][0]["critical"], false);
    // The child's feed has no use of the parent's.
    let child_events = ok(eid(
        &["--json", "app", "events", "--account", &child],
        &app_env,
        None,
    ));
    assert!(!event_kinds(&child_events).contains(&"used".to_owned()));

    // Turning it off needs the PIN: none given is refused, a wrong one too.
    err(
        eid(
            &["--json", "app", "notify", "--off", "--account", &parent],
            &app_env,
            None,
        ),
        "missing_pin",
    );
    err(
        eid(
            &[
                "--json",
                "app",
                "notify",
                "--off",
                "--account",
                &parent,
                "--pin-stdin",
            ],
            &app_env,
            Some("999999"),
        ),
        "wrong_pin",
    );
    ok(eid(
        &[
            "--json",
            "app",
            "notify",
            "--off",
            "--account",
            &parent,
            "--pin-stdin",
        ],
        &app_env,
        Some(PIN),
    ));
    let authenticators = ok(eid(&["--json", "app", "accounts"], &app_env, None));
    assert!(
        authenticators["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["notify_every_use"] == false)
    );

    // Household: two requests for the child, none for the parent; counts only.
    login("barn#2024zz", "Log på Skolen");
    login("barn#2024zz", "Log på Biblioteket");
    let house = ok(eid(&["--json", "app", "household"], &app_env, None));
    let people = house["people"].as_array().unwrap();
    assert_eq!(people.len(), 2);
    let count = |id: &str| {
        people.iter().find(|p| p["authenticator_id"] == id).unwrap()["pending_requests"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(count(&child), 2);
    assert_eq!(count(&parent), 0);
    assert!(!house.to_string().contains("Skolen"), "{house}");
    assert!(people.iter().all(|p| p["state"] == "active"));
    assert!(people.iter().all(|p| p["next_step"].is_null()));
    // One person's requests only.
    let mine = ok(eid(
        &["--json", "app", "open", "--account", &child],
        &app_env,
        None,
    ));
    assert_eq!(mine["account"]["user_id"], "barn#2024zz");
    let reqs = mine["requests"].as_array().unwrap();
    assert_eq!(reqs.len(), 2);
    assert!(reqs.iter().all(|r| r["authenticator_id"] == child.as_str()));
    let theirs = ok(eid(
        &["--json", "app", "open", "--account", &parent],
        &app_env,
        None,
    ));
    assert_eq!(theirs["requests"].as_array().unwrap().len(), 0);
    // No authenticator: everything, as before.
    let all = ok(eid(&["--json", "app", "open"], &app_env, None));
    assert_eq!(all["requests"].as_array().unwrap().len(), 2);
    assert_eq!(all["accounts"].as_array().unwrap().len(), 2);
}

#[test]
fn new_commands_refuse_bad_input_with_typed_errors() {
    let s = Server::start();
    let app = tempfile::tempdir().unwrap();
    let (identity, _) = person(&s, "ove#2024rr", app.path(), &["--phone", "+4511223344"]);
    let app_env = [("EID_APP_DIR", app.path().to_str().unwrap())];
    let portal_env = [
        ("EID_SERVER", s.url.as_str()),
        ("EID_SPKI_PIN", s.pin.as_str()),
    ];
    let unknown = "0123456789abcdef0123456789abcdef";
    let ss = |args: &[&str]| {
        let mut all = vec!["--json", "self-service"];
        all.extend_from_slice(args);
        eid(&all, &portal_env, None)
    };

    // Neither or both of --phone and --email.
    let missing = err(ss(&["change-contact", "--user-id", "ove#2024rr"]), "usage");
    assert!(
        missing["message"].as_str().unwrap().contains("--phone"),
        "{missing}"
    );
    err(
        ss(&[
            "change-contact",
            "--user-id",
            "ove#2024rr",
            "--phone",
            "+4511111111",
            "--email",
            "a@example.dk",
        ]),
        "usage",
    );
    // A bad phone number, an unknown user: typed rejections.
    let bad = err(
        ss(&["change-contact", "--user-id", "ove#2024rr", "--phone", "12"]),
        "rejected",
    );
    assert_eq!(bad["code"], "invalid_contact");
    // Unknown or malformed change IDs.
    for cmd in ["confirm", "status", "user-id-status"] {
        let e = err(
            ss(&[cmd, "--change", unknown, "--user-id", "ove#2024rr"]),
            "rejected",
        );
        assert_eq!(e["code"], "unknown_change", "{cmd}");
        err(
            ss(&[cmd, "--change", "not-an-id", "--user-id", "ove#2024rr"]),
            "invalid_argument",
        );
    }
    // No server: a missing option, before any call.
    err(
        eid(
            &[
                "--json",
                "self-service",
                "status",
                "--change",
                unknown,
                "--user-id",
                "x",
            ],
            &[],
            None,
        ),
        "missing_option",
    );
    // The app side.
    let e = err(
        eid(
            &["--json", "app", "cancel-change", "--change", unknown],
            &app_env,
            None,
        ),
        "rejected",
    );
    assert_eq!(e["code"], "unknown_change");
    err(
        eid(
            &["--json", "app", "cancel-change", "--change", "nope"],
            &app_env,
            None,
        ),
        "invalid_argument",
    );
    err(eid(&["--json", "app", "notify"], &app_env, None), "usage");
    err(
        eid(
            &["--json", "app", "notify", "--on", "--off"],
            &app_env,
            None,
        ),
        "usage",
    );
    err(
        eid(
            &["--json", "app", "events", "--account", unknown],
            &app_env,
            None,
        ),
        "unknown_account",
    );
    err(
        eid(
            &["--json", "app", "open", "--account", unknown],
            &app_env,
            None,
        ),
        "unknown_account",
    );
    // admin create-identity with a bad phone: refused, nothing created.
    let e = err(
        eid(
            &[
                "--json",
                "admin",
                "create-identity",
                "--user-id",
                "per#2024rr",
                "--phone",
                "abc",
            ],
            &s.env(),
            None,
        ),
        "rejected",
    );
    assert_eq!(e["code"], "invalid_contact");
    // Nothing changed for the person.
    let changes = ok(eid(&["--json", "app", "changes"], &app_env, None));
    assert_eq!(changes["changes"].as_array().unwrap().len(), 0);
    let shown = ok(eid(
        &["--json", "admin", "show", "--identity", &identity],
        &s.env(),
        None,
    ));
    assert_eq!(shown["phone_masked"], "+45••••••44");
}
