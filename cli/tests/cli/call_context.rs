//! `eid app` told about a call (`--on-call`, `--screen-shared`,
//! `--remote-control`, `--others-off`, `--started-it-myself`): the screen
//! leads with the warning, the approval waits for the confirmation, and the
//! service provider reads the signed context and the call policy's verdict
//! (docs/cli.md, docs/protocol.md "Call context").

use crate::commands::{Server, eid, err, ok, setup};
use crate::support::PIN;

fn request(rp_env: &[(&str, &str)], text: &str) -> String {
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
            text,
        ],
        rp_env,
        None,
    ));
    created["request_id"].as_str().unwrap().to_owned()
}

#[test]
fn a_phone_told_of_a_call_warns_waits_for_the_confirmation_and_the_provider_sees_it_flagged() {
    let s = Server::start();
    let app = tempfile::tempdir().unwrap();
    let app_dir = app.path().to_str().unwrap();
    let api_key = setup(&s, "anna#2024x", app.path());
    let mut rp_env = s.env();
    rp_env.push(("EID_API_KEY", api_key.as_str()));
    let app_env = [("EID_APP_DIR", app_dir)];
    let id = request(&rp_env, "Log på Netbank");

    let opened = ok(eid(
        &["--json", "app", "open", "--on-call", "--others-off"],
        &app_env,
        None,
    ));
    let screen = &opened["requests"][0];
    assert_eq!(screen["warnings"][0]["kind"], "on_call");
    assert_eq!(screen["needs_started_myself"], true);
    assert_eq!(screen["call_signals"]["call"], "on");
    assert_eq!(screen["call_signals"]["screen_shared"], "off");

    // Without the confirmation: refused, nothing signed, the request waits.
    err(
        eid(
            &[
                "--json",
                "app",
                "approve",
                "--request",
                &id,
                "--pin-stdin",
                "--on-call",
            ],
            &app_env,
            Some(PIN),
        ),
        "started_myself_required",
    );
    let approved = ok(eid(
        &[
            "--json",
            "app",
            "approve",
            "--request",
            &id,
            "--pin-stdin",
            "--on-call",
            "--started-it-myself",
        ],
        &app_env,
        Some(PIN),
    ));
    assert_eq!(approved["receipt"]["call_context"]["call"], "on");
    assert_eq!(
        approved["receipt"]["call_context"]["confirmed_self_started"],
        true
    );
    let status = ok(eid(
        &["--json", "rp", "status", "--request", &id],
        &rp_env,
        None,
    ));
    assert_eq!(status["status"], "approved");
    assert_eq!(status["call_verdict"], "flagged");
    assert_eq!(status["receipt"]["call_context"]["call"], "on");
    assert_eq!(status["receipt"]["verified"], true);

    // Without a flag the phone knows nothing: unknown, and clear.
    let id = request(&rp_env, "Log på igen");
    ok(eid(
        &["--json", "app", "approve", "--request", &id, "--pin-stdin"],
        &app_env,
        Some(PIN),
    ));
    let status = ok(eid(
        &["--json", "rp", "status", "--request", &id],
        &rp_env,
        None,
    ));
    assert_eq!(status["call_verdict"], "clear");
    assert_eq!(status["call_context"]["call"], "unknown");
}
