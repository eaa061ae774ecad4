//! Checks the rotating binding-code vectors in `testvectors/binding-v1.json`
//! (computed independently with Python's `hmac` module).

use eid_protocol::binding::{BindingSecret, ROTATING_DOMAIN, ROTATING_STEP_MS};

const VECTORS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../testvectors/binding-v1.json"
));

#[test]
fn rotating_codes_match_the_vectors() {
    let doc: serde_json::Value = serde_json::from_str(VECTORS).unwrap();
    assert_eq!(doc["domain"].as_str().unwrap().as_bytes(), ROTATING_DOMAIN);
    assert_eq!(doc["step_ms"].as_u64().unwrap(), ROTATING_STEP_MS);
    let vectors = doc["vectors"].as_array().unwrap();
    assert!(vectors.len() >= 5);
    for v in vectors {
        let secret = BindingSecret::from_hex(v["secret_hex"].as_str().unwrap()).unwrap();
        let ms = v["unix_ms"].as_u64().unwrap();
        let step = v["step"].as_u64().unwrap();
        assert_eq!(ms / ROTATING_STEP_MS, step);
        assert_eq!(secret.code_for_step(step), v["code"].as_str().unwrap());
        assert_eq!(secret.code_at(ms), v["code"].as_str().unwrap());
        assert_eq!(secret.qr_payload_at(ms), v["qr_payload"].as_str().unwrap());
    }
}
