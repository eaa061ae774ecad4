//! `eid admin api-keys`, `rotate-api-key`, `revoke-api-key` and
//! `set-webhook` against a server started in this process.

use crate::commands::{Server, eid, ok};

#[test]
fn eid_admin_rotates_lists_and_revokes_a_provider_s_api_keys() {
    let s = Server::start();
    let env = s.env();
    let sp = ok(eid(
        &[
            "--json",
            "admin",
            "register-provider",
            "--name",
            "Sparekassen Vest",
        ],
        &env,
        None,
    ));
    let id = sp["service_provider_id"].as_str().unwrap().to_owned();

    let rotated = ok(eid(
        &["--json", "admin", "rotate-api-key", "--provider", &id],
        &env,
        None,
    ));
    assert!(rotated["api_key"].as_str().unwrap().starts_with("eidsp_"));
    assert_eq!(rotated["key"]["state"], "active");
    let listed = ok(eid(
        &["--json", "admin", "api-keys", "--provider", &id],
        &env,
        None,
    ));
    let keys = listed["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0]["state"], "rotating_out");
    assert!(!listed.to_string().contains("eidsp_"), "never the key");

    let old = keys[0]["key_id"].as_u64().unwrap().to_string();
    let revoked = ok(eid(
        &[
            "--json",
            "admin",
            "revoke-api-key",
            "--provider",
            &id,
            "--key",
            &old,
        ],
        &env,
        None,
    ));
    assert_eq!(revoked["keys"][0]["state"], "revoked");
    let again = eid(
        &[
            "--json",
            "admin",
            "revoke-api-key",
            "--provider",
            &id,
            "--key",
            &old,
        ],
        &env,
        None,
    );
    assert_ne!(again.code, 0, "{}", again.json);

    let set = ok(eid(
        &[
            "--json",
            "admin",
            "set-webhook",
            "--provider",
            &id,
            "--url",
            "https://bank.example/eid/events",
        ],
        &env,
        None,
    ));
    assert_eq!(set["secret"].as_str().unwrap().len(), 64);
    let removed = ok(eid(
        &[
            "--json",
            "admin",
            "set-webhook",
            "--provider",
            &id,
            "--remove",
        ],
        &env,
        None,
    ));
    assert!(removed["url"].is_null());
}
