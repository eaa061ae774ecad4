//! `eid admin api-keys`, `rotate-api-key`, `revoke-api-key` and
//! `set-webhook` against a server started in this process.

use serde_json::Value;

use crate::support::eid_json as eid;

#[track_caller]
fn ok((code, json): (i32, Value)) -> Value {
    assert_eq!(code, 0, "{json}");
    json
}

#[test]
fn eid_admin_rotates_lists_and_revokes_a_provider_s_api_keys() {
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
    let token = server.admin_token.to_string();
    let env = [
        ("EID_SERVER", url.as_str()),
        ("EID_SPKI_PIN", pin.as_str()),
        ("EID_ADMIN_TOKEN", token.as_str()),
    ];
    let sp = ok(eid(
        &["admin", "register-provider", "--name", "Sparekassen Vest"],
        &env,
    ));
    let id = sp["service_provider_id"].as_str().unwrap().to_owned();

    let rotated = ok(eid(&["admin", "rotate-api-key", "--provider", &id], &env));
    assert!(rotated["api_key"].as_str().unwrap().starts_with("eidsp_"));
    assert_eq!(rotated["key"]["state"], "active");
    let listed = ok(eid(&["admin", "api-keys", "--provider", &id], &env));
    let keys = listed["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0]["state"], "rotating_out");
    assert!(!listed.to_string().contains("eidsp_"), "never the key");

    let old = keys[0]["key_id"].as_u64().unwrap().to_string();
    let revoked = ok(eid(
        &["admin", "revoke-api-key", "--provider", &id, "--key", &old],
        &env,
    ));
    assert_eq!(revoked["keys"][0]["state"], "revoked");
    let (code, again) = eid(
        &["admin", "revoke-api-key", "--provider", &id, "--key", &old],
        &env,
    );
    assert_ne!(code, 0, "{again}");

    let set = ok(eid(
        &[
            "admin",
            "set-webhook",
            "--provider",
            &id,
            "--url",
            "https://bank.example/eid/events",
        ],
        &env,
    ));
    assert_eq!(set["secret"].as_str().unwrap().len(), 64);
    let removed = ok(eid(
        &["admin", "set-webhook", "--provider", &id, "--remove"],
        &env,
    ));
    assert!(removed["url"].is_null());
    runtime.block_on(server.shutdown());
}
