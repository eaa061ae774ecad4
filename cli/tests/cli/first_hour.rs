//! What someone new to `eid` reads in the first hour: readable times and
//! request kinds, errors that say what to do, and JSON that mirrors the API
//! (docs/cli.md).

use std::process::Stdio;

use serde_json::Value;

use crate::commands::{Server, eid, err, ok, person, setup};
use crate::support::{PIN, eid_command};

/// `eid` in text mode with the machine's time zone fixed: exit code, stdout
/// and stderr.
fn eid_text(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> (i32, String, String) {
    use std::io::Write;
    let mut child = eid_command()
        .args(args)
        .env("TZ", "UTC")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Fails on a number that looks like Unix milliseconds (12 digits or more
/// standing alone); hex ids, which mix in letters, do not count.
#[track_caller]
fn assert_no_epoch_ms(text: &str) {
    for token in text.split(|c: char| !c.is_ascii_alphanumeric()) {
        assert!(
            !(token.len() >= 12 && token.chars().all(|c| c.is_ascii_digit())),
            "raw Unix milliseconds {token} in {text:?}"
        );
    }
}

#[test]
fn readable_output_shows_local_times_and_keeps_a_multi_line_text_inside_the_box() {
    let s = Server::start();
    let phone = tempfile::tempdir().unwrap();
    let key = setup(&s, "grete#1950x", phone.path());
    let mut env = s.env();
    env.push(("EID_API_KEY", key.as_str()));
    env.push(("EID_APP_DIR", phone.path().to_str().unwrap()));

    let (code, out, stderr) = eid_text(
        &[
            "rp",
            "request",
            "--user-id",
            "grete#1950x",
            "--text",
            "Transfer 500 DKK\nto account 1234",
        ],
        &env,
        None,
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(out.contains("expires at "), "{out}");
    assert!(out.contains(", in 5 min"), "{out}");
    assert_no_epoch_ms(&out);

    let (code, out, stderr) = eid_text(&["app", "open"], &env, None);
    assert_eq!(code, 0, "{stderr}");
    assert_no_epoch_ms(&out);
    let lines: Vec<&str> = out.lines().collect();
    let top = lines.iter().position(|l| l.contains('┌')).unwrap();
    let bottom = lines.iter().position(|l| l.contains('└')).unwrap();
    for line in &lines[top + 1..bottom] {
        assert!(
            line.starts_with("  │ "),
            "a line outside the frame: {line:?}"
        );
    }
    let first = lines
        .iter()
        .position(|l| l.contains("Text: Transfer 500 DKK"))
        .unwrap();
    assert_eq!(lines[first + 1], "  │       to account 1234", "{out}");
    assert!(out.contains("Kind: login"), "{out}");

    // The admin's and the portal's moments too.
    let (_, shown, _) = eid_text(&["--json", "app", "authenticators"], &env, None);
    let identity = serde_json::from_str::<Value>(&shown).unwrap()["accounts"][0]["identity_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (code, out, stderr) = eid_text(
        &["admin", "activation-code", "--identity", &identity],
        &env,
        None,
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(out.contains("expires at "), "{out}");
    assert_no_epoch_ms(&out);
    let (code, out, stderr) = eid_text(
        &[
            "self-service",
            "change-contact",
            "--user-id",
            "grete#1950x",
            "--email",
            "grete@example.org",
        ],
        &env,
        None,
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(out.contains("it expires at "), "{out}");
    assert_no_epoch_ms(&out);
    let (code, out, stderr) = eid_text(&["admin", "audit"], &env, None);
    assert_eq!(code, 0, "{stderr}");
    assert_no_epoch_ms(&out);
}

#[test]
fn a_new_device_request_shows_its_kind_and_asks_for_the_code_before_the_pin() {
    let s = Server::start_with(|c| c.new_device_wait_secs = 0);
    let old = tempfile::tempdir().unwrap();
    setup(&s, "bo#2024xy", old.path());
    let old_env = [("EID_APP_DIR", old.path().to_str().unwrap())];
    let new = tempfile::tempdir().unwrap();
    let mut new_env = s.env();
    new_env.push(("EID_APP_DIR", new.path().to_str().unwrap()));
    ok(eid(
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

    let (code, out, stderr) = eid_text(&["app", "open"], &old_env, None);
    assert_eq!(code, 0, "{stderr}");
    assert!(out.contains("Kind: new device (enrolment)"), "{out}");
    assert!(!out.contains("Kind: login"), "{out}");
    let opened = ok(eid(&["--json", "app", "open"], &old_env, None));
    let request = opened["requests"][0]["request_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Without the code, even a wrong PIN is not tried (the error is the
    // missing code, not the PIN), and nothing waits for the minimum read time.
    let started = std::time::Instant::now();
    let r = eid(
        &[
            "--json",
            "app",
            "approve",
            "--request",
            &request,
            "--pin-stdin",
        ],
        &old_env,
        Some("999999\n"),
    );
    assert!(!r.stderr.contains("waiting"), "{}", r.stderr);
    let e = err(r, "binding_code_required");
    assert!(
        e["message"].as_str().unwrap().contains("--binding-code"),
        "{e}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    // The request still waits for the person.
    let shown = ok(eid(&["--json", "app", "open"], &old_env, None));
    assert_eq!(shown["requests"][0]["request_id"], request.as_str());
}

#[test]
fn errors_say_what_to_do() {
    let s = Server::start();
    let phone = tempfile::tempdir().unwrap();
    person(&s, "anna#1961x", phone.path(), &[]);
    person(&s, "karl#1959x", phone.path(), &[]);
    let app_env = [("EID_APP_DIR", phone.path().to_str().unwrap())];

    // Several authenticators and none chosen: the list to pick from.
    let e = err(
        eid(&["--json", "app", "events"], &app_env, None),
        "unknown_account",
    );
    let message = e["message"].as_str().unwrap();
    assert!(
        message.contains("pick one with --authenticator"),
        "{message}"
    );
    let choices = e["authenticators"].as_array().unwrap();
    assert_eq!(choices.len(), 2, "{e}");
    let users: Vec<&str> = choices
        .iter()
        .map(|c| c["user_id"].as_str().unwrap())
        .collect();
    assert!(
        users.contains(&"anna#1961x") && users.contains(&"karl#1959x"),
        "{e}"
    );
    for c in choices {
        assert!(
            message.contains(c["authenticator_id"].as_str().unwrap()),
            "{message}"
        );
    }
    let (code, _, stderr) = eid_text(&["app", "events"], &app_env, None);
    assert_ne!(code, 0);
    assert!(stderr.contains("pick one with --authenticator"), "{stderr}");
    assert!(stderr.contains("karl#1959x"), "{stderr}");

    // A wrong server key pin: the same hint from the phone, the admin and
    // the service-provider commands.
    let wrong_pin = "sha256/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let mut wrong = s.env();
    wrong.retain(|(k, _)| *k != "EID_SPKI_PIN");
    wrong.push(("EID_SPKI_PIN", wrong_pin));
    wrong.push(("EID_API_KEY", "not-a-real-key"));
    wrong.push(("EID_APP_DIR", phone.path().to_str().unwrap()));
    let from_phone = err(
        eid(
            &[
                "--json",
                "app",
                "open",
                "--authenticator",
                "00000000000000000000000000000000",
            ],
            &wrong,
            None,
        ),
        "network",
    );
    let from_admin = err(
        eid(&["--json", "admin", "list-agents"], &wrong, None),
        "network",
    );
    let from_rp = err(
        eid(
            &[
                "--json",
                "rp",
                "status",
                "--request",
                "00000000000000000000000000000000",
            ],
            &wrong,
            None,
        ),
        "network",
    );
    assert!(
        from_phone["message"]
            .as_str()
            .unwrap()
            .contains("check the server key pin"),
        "{from_phone}"
    );
    assert_eq!(from_admin["message"], from_phone["message"]);
    assert_eq!(from_rp["message"], from_phone["message"]);
}

#[test]
fn every_rejected_error_carries_code_server_message_and_status() {
    let s = Server::start();
    let phone = tempfile::tempdir().unwrap();
    person(&s, "anna#1961x", phone.path(), &[]);
    let mut env = s.env();
    env.push(("EID_API_KEY", "not-a-real-key"));
    env.push(("EID_APP_DIR", phone.path().to_str().unwrap()));
    // From the API client (admin, rp) and from the phone's core.
    let unknown = "00000000000000000000000000000000";
    let runs = [
        eid(
            &["--json", "admin", "show", "--identity", unknown],
            &env,
            None,
        ),
        eid(
            &["--json", "rp", "status", "--request", unknown],
            &env,
            None,
        ),
        eid(
            &[
                "--json",
                "app",
                "activate",
                "--user-id",
                "anna#1961x",
                "--code",
                "WRONGCODE1",
                "--pin-stdin",
            ],
            &env,
            Some(&format!("{PIN}\n")),
        ),
    ];
    for r in runs {
        let e = err(r, "rejected");
        assert!(e["code"].is_string(), "{e}");
        // The server's own words, also through the phone's core.
        let said = e["server_message"].as_str().unwrap_or_default();
        assert!(!said.is_empty() && !said.contains("not kept"), "{e}");
        assert!(
            e["status"]
                .as_u64()
                .is_some_and(|s| (400..600).contains(&s)),
            "{e}"
        );
    }
}

#[test]
fn rp_status_carries_the_whole_receipt_and_whether_the_text_was_checked() {
    let s = Server::start();
    let phone = tempfile::tempdir().unwrap();
    let key = setup(&s, "grete#1950x", phone.path());
    let mut env = s.env();
    env.push(("EID_API_KEY", key.as_str()));
    env.push(("EID_APP_DIR", phone.path().to_str().unwrap()));
    let text = "Log in to Nordisk Bank";
    let created = ok(eid(
        &[
            "--json",
            "rp",
            "request",
            "--user-id",
            "grete#1950x",
            "--text",
            text,
        ],
        &env,
        None,
    ));
    // No binding asked for: the API leaves the binding fields out, so does eid.
    assert!(created.get("binding_code").is_none(), "{created}");
    assert!(created.get("binding_secret").is_none(), "{created}");
    let request = created["request_id"].as_str().unwrap().to_owned();
    let pending = ok(eid(
        &["--json", "rp", "status", "--request", &request],
        &env,
        None,
    ));
    assert_eq!(pending["receipt"], Value::Null);
    assert_eq!(pending["text_checked"], false);
    ok(eid(
        &[
            "--json",
            "app",
            "approve",
            "--request",
            &request,
            "--pin-stdin",
        ],
        &env,
        Some(&format!("{PIN}\n")),
    ));

    let checked = ok(eid(
        &[
            "--json",
            "rp",
            "status",
            "--request",
            &request,
            "--text",
            text,
        ],
        &env,
        None,
    ));
    assert_eq!(checked["status"], "approved");
    assert_eq!(checked["text_checked"], true);
    let receipt = &checked["receipt"];
    for field in [
        "authenticator_id",
        "decision_sha256",
        "identity_id",
        "reference_text_sha256",
        "request_id",
        "service_provider_id",
        "signature",
    ] {
        assert!(
            receipt[field].as_str().is_some_and(|v| !v.is_empty()),
            "{field} missing in {receipt}"
        );
    }
    assert_eq!(receipt["kind"], "login");
    assert_eq!(receipt["outcome"], "approve");
    assert_eq!(receipt["verified"], true);
    assert_eq!(
        receipt["reference_text_sha256"],
        checked["reference_text_sha256"]
    );

    let unchecked = ok(eid(
        &["--json", "rp", "status", "--request", &request],
        &env,
        None,
    ));
    assert_eq!(unchecked["text_checked"], false);
    assert_eq!(unchecked["receipt"]["signature"], receipt["signature"]);
    let (code, out, _) = eid_text(&["rp", "status", "--request", &request], &env, None);
    assert_eq!(code, 0);
    assert!(out.contains("text:    not checked"), "{out}");
}

#[test]
fn app_authenticators_shows_an_unblock_at_once_and_says_when_it_is_offline() {
    let s = Server::start();
    let phone = tempfile::tempdir().unwrap();
    let (identity, _) = person(&s, "anna#1961x", phone.path(), &[]);
    let env = s.env();
    let app_env = [("EID_APP_DIR", phone.path().to_str().unwrap())];
    let state = || -> Value { ok(eid(&["--json", "app", "authenticators"], &app_env, None)) };
    ok(eid(
        &[
            "--json",
            "admin",
            "block",
            "--identity",
            &identity,
            "--reason",
            "case 1",
        ],
        &env,
        None,
    ));
    assert_eq!(state()["accounts"][0]["state"], "blocked");
    ok(eid(
        &[
            "--json",
            "admin",
            "unblock",
            "--identity",
            &identity,
            "--reason",
            "case 1",
        ],
        &env,
        None,
    ));
    let fresh = state();
    assert_eq!(fresh["accounts"][0]["state"], "active", "{fresh}");
    assert_eq!(fresh["refreshed"], true);
    let seen = fresh["seen_at_ms"].as_u64().unwrap();

    // The server cannot be reached: the last known state, and when.
    let offline = [
        ("EID_APP_DIR", phone.path().to_str().unwrap()),
        ("EID_SERVER", "https://127.0.0.1:1"),
    ];
    let stale = ok(eid(&["--json", "app", "accounts"], &offline, None));
    assert_eq!(stale["refreshed"], false);
    assert_eq!(stale["seen_at_ms"], seen);
    assert_eq!(stale["accounts"][0]["state"], "active");
    let (code, out, stderr) = eid_text(&["app", "accounts"], &offline, None);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        out.contains("not refreshed (the server could not be reached"),
        "{out}"
    );
    assert!(out.contains("last known states, seen at "), "{out}");
    assert_no_epoch_ms(&out);
}
