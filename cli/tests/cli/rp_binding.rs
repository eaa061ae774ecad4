//! `eid rp binding-code`: the rotating code a login screen shows, offline,
//! checked against the known-answer vectors.

use serde_json::Value;

use crate::support::eid_command;

fn eid(args: &[&str], env: &[(&str, &str)]) -> (i32, Value) {
    let out = eid_command()
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_str(stdout.trim()).unwrap(),
    )
}

#[test]
fn binding_code_matches_the_vectors_and_refuses_a_bad_secret() {
    let vectors: Value = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testvectors/binding-v1.json"
    )))
    .unwrap();
    for v in vectors["vectors"].as_array().unwrap() {
        let at = v["unix_ms"].as_u64().unwrap().to_string();
        let (code, json) = eid(
            &["--json", "rp", "binding-code", "--at-ms", &at],
            &[("EID_BINDING_SECRET", v["secret_hex"].as_str().unwrap())],
        );
        assert_eq!(code, 0, "{json}");
        assert_eq!(json["code"], v["code"]);
        assert_eq!(json["qr_payload"], v["qr_payload"]);
    }
    // The secret may come from the environment (kept out of `ps`).
    let v = &vectors["vectors"][0];
    let (code, json) = eid(
        &["--json", "rp", "binding-code", "--at-ms", "0"],
        &[("EID_BINDING_SECRET", v["secret_hex"].as_str().unwrap())],
    );
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["code"], v["code"]);
    assert_eq!(json["next_code_at_ms"], 1000);
    // Not 64 hex digits: a typed error, and the input is not echoed.
    let (code, json) = eid(
        &["--json", "rp", "binding-code"],
        &[("EID_BINDING_SECRET", "not-a-secret")],
    );
    assert_ne!(code, 0);
    assert_eq!(json["error"]["kind"], "invalid_argument");
    assert!(!json.to_string().contains("not-a-secret"));
}
