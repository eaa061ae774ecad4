//! `eid admin` with agents and the audit: an administrator creates a
//! support agent, the agent blocks with a reason under its own token, and
//! `eid admin audit` shows who did it and why.

use serde_json::Value;

use crate::support::eid_json as eid;

#[track_caller]
fn ok((code, json): (i32, Value)) -> Value {
    assert_eq!(code, 0, "{json}");
    json
}

#[test]
fn eid_admin_audit_shows_which_support_agent_blocked_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let config = eid_server::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_owned(),
        ..eid_server::Config::default()
    };
    let server = runtime
        .block_on(eid_server::start(eid_server::ServerOptions::new(config)))
        .unwrap();
    let (url, pin) = (server.base_url(), server.spki_pin.clone());
    let bootstrap = server.admin_token.to_string();
    let admin_env = [
        ("EID_SERVER", url.as_str()),
        ("EID_SPKI_PIN", pin.as_str()),
        ("EID_ADMIN_TOKEN", bootstrap.as_str()),
    ];

    let identity = ok(eid(
        &["admin", "create-identity", "--user-id", "anna#2024x"],
        &admin_env,
    ));
    let identity = identity["identity_id"].as_str().unwrap().to_owned();
    let agent = ok(eid(
        &[
            "admin",
            "create-agent",
            "--name",
            "Bo Support",
            "--role",
            "support",
        ],
        &admin_env,
    ));
    assert_eq!(agent["role"], "support");
    let token = agent["token"].as_str().unwrap().to_owned();
    let agent_id = agent["agent_id"].as_u64().unwrap();
    let listed = ok(eid(&["admin", "list-agents"], &admin_env));
    assert_eq!(listed["agents"][0]["name"], "Bo Support");
    assert!(listed["agents"][0].get("token").is_none());

    let support_env = [
        ("EID_SERVER", url.as_str()),
        ("EID_SPKI_PIN", pin.as_str()),
        ("EID_ADMIN_TOKEN", token.as_str()),
    ];
    let blocked = ok(eid(
        &[
            "admin",
            "block",
            "--identity",
            &identity,
            "--reason",
            "case 4711: phone stolen",
        ],
        &support_env,
    ));
    assert_eq!(blocked["blocked"], true);
    // Support may not register providers; the CLI shows the server's code.
    let (code, refused) = eid(
        &["admin", "register-provider", "--name", "Fake Bank"],
        &support_env,
    );
    assert_ne!(code, 0);
    assert_eq!(refused["error"]["code"], "forbidden_role", "{refused}");

    let audit = ok(eid(
        &["admin", "audit", "--identity", &identity, "--limit", "10"],
        &support_env,
    ));
    let newest = &audit["entries"][0];
    assert_eq!(newest["action"], "block");
    assert_eq!(newest["agent_name"], "Bo Support");
    assert_eq!(newest["agent_id"], agent_id);
    assert_eq!(newest["reason"], "case 4711: phone stolen");
    assert_eq!(newest["outcome"], "done");

    // The administrator sees the refusal too, and revokes the agent.
    let all = ok(eid(&["admin", "audit"], &admin_env));
    assert!(
        all["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "register_provider" && e["outcome"] == "refused_role"),
        "{all}"
    );
    let revoked = ok(eid(
        &["admin", "revoke-agent", "--agent", &agent_id.to_string()],
        &admin_env,
    ));
    assert!(revoked["revoked_at_ms"].is_u64());
    let (code, refused) = eid(&["admin", "show", "--identity", &identity], &support_env);
    assert_ne!(code, 0);
    assert_eq!(refused["error"]["code"], "unauthorized", "{refused}");

    runtime.block_on(server.shutdown());
}
