//! Checks the known-answer vectors in `testvectors/protocol-v1.json`.
//! `EID_REGENERATE_VECTORS=1 cargo test -p eid-protocol --test vectors` rewrites
//! the file (only when the encoding is deliberately changed, with a new version).

use eid_protocol::crypto::SoftwareSigningKey;
use eid_protocol::messages::{Decision, Outcome, ReceiptBody, RequestEnvelopeBody, RequestKind};
use eid_protocol::vectors::{Vector, VectorFile, VectorMessage, check_file};
use eid_protocol::wire::b64;
use eid_protocol::*;

const PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../testvectors/protocol-v1.json"
);

fn id<T: From16>(byte: u8) -> T {
    T::from16([byte; 16])
}

trait From16 {
    fn from16(b: [u8; 16]) -> Self;
}
macro_rules! from16 {
    ($($t:ty),*) => {$(impl From16 for $t { fn from16(b: [u8; 16]) -> Self { Self(b) } })*};
}
from16!(
    RequestId,
    IdentityId,
    AuthenticatorId,
    ServiceProviderId,
    Nonce16
);

fn messages(key: &SoftwareSigningKey) -> Vec<(&'static str, VectorMessage)> {
    let envelope_login = RequestEnvelopeBody {
        request_id: id(0x11),
        identity_id: id(0x22),
        kind: RequestKind::Login,
        service_provider_id: id(0x33),
        service_provider_name: "Nordisk Bank A/S".into(),
        reference_text: "Log på Netbank".into(),
        created_at_ms: 1_790_000_000_000,
        expires_at_ms: 1_790_000_300_000,
        server_nonce: [0x44; 32],
        binding_required: true,
    };
    let envelope_signature = RequestEnvelopeBody {
        request_id: id(0x12),
        kind: RequestKind::Signature,
        reference_text: "Overførsel 1.250,00 kr.\ntil Ærø Købmand".into(),
        binding_required: false,
        ..envelope_login.clone()
    };
    let approve = Decision::for_envelope(
        &envelope_login,
        id(0x55),
        Outcome::Approve,
        Some("K7Q2-94".into()),
        7,
    );
    let deny = Decision::for_envelope(&envelope_signature, id(0x55), Outcome::Deny, None, 8);
    let fraud =
        Decision::for_envelope(&envelope_signature, id(0x55), Outcome::ReportFraud, None, 9);
    let receipt = ReceiptBody {
        request_id: approve.request_id,
        identity_id: approve.identity_id,
        authenticator_id: approve.authenticator_id,
        outcome: approve.outcome,
        kind: approve.kind,
        reference_text_sha256: approve.reference_text_sha256,
        service_provider_id: approve.service_provider_id,
        decided_at_ms: 1_790_000_042_000,
        decision_sha256: sha256(&approve.signing_bytes()),
        counter: approve.counter,
        call_context: None,
    };
    let pull = VectorMessage::DeviceRequest {
        authenticator_id: id(0x55),
        method: "POST".into(),
        path: wire::PATH_PULL.into(),
        body_sha256: sha256(br#"{"authenticator_ids":["55555555555555555555555555555555"]}"#),
        timestamp_ms: 1_790_000_010_000,
        nonce: id(0x66),
    };
    let activation = VectorMessage::Activation {
        user_id: "Grete#1950x".into(),
        device_public_key: key.public_key().clone(),
        pin_public_key: key.public_key().clone(),
    };
    let enrolment = VectorMessage::DeviceEnrolment {
        user_id: "Grete#1950x".into(),
        device_public_key: key.public_key().clone(),
        pin_public_key: key.public_key().clone(),
    };
    let settings_off = VectorMessage::SettingsChange {
        authenticator_id: id(0x55),
        notify_every_use: false,
        issued_at_ms: 1_790_000_020_000,
        nonce: id(0x77),
    };
    vec![
        (
            "request_envelope/login_with_binding",
            VectorMessage::RequestEnvelope(envelope_login),
        ),
        (
            "request_envelope/signature_multiline",
            VectorMessage::RequestEnvelope(envelope_signature),
        ),
        (
            "decision/approve_with_binding_code",
            VectorMessage::Decision(approve),
        ),
        ("decision/deny", VectorMessage::Decision(deny)),
        ("decision/report_fraud", VectorMessage::Decision(fraud)),
        ("receipt/approve", VectorMessage::Receipt(receipt)),
        ("device_request/pull", pull),
        ("activation/proof", activation),
        ("device_enrolment/proof", enrolment),
        ("settings_change/notify_every_use_off", settings_off),
        (
            "hardware_receipt/code_display",
            VectorMessage::HardwareReceipt(eid_protocol::messages::HardwareReceiptBody {
                login_id: [0x88; 16],
                identity_id: id(0x22),
                method: "code_display".into(),
                authenticator_sha256: sha256(b"CD00012345"),
                service_provider_id: id(0x33),
                completed_at_ms: 1_790_000_030_000,
            }),
        ),
    ]
}

fn generate() -> VectorFile {
    let key = SoftwareSigningKey::generate();
    let vectors = messages(&key)
        .into_iter()
        .map(|(name, message)| {
            let bytes = message.signing_bytes();
            Vector {
                name: name.into(),
                signing_bytes_hex: hex::encode(&bytes),
                signing_bytes_sha256_hex: hex::encode(sha256(&bytes)),
                signature: key.sign(&bytes),
                message,
            }
        })
        .collect();
    VectorFile {
        version: 1,
        test_key_pkcs8: b64::encode(key.pkcs8()),
        test_public_key: key.public_key().clone(),
        vectors,
    }
}

fn load() -> VectorFile {
    if std::env::var_os("EID_REGENERATE_VECTORS").is_some() {
        let file = generate();
        std::fs::write(PATH, serde_json::to_string_pretty(&file).unwrap() + "\n").unwrap();
    }
    if std::env::var_os("EID_APPEND_VECTORS").is_some() {
        // Adds the vectors of new message types, signed by the published test
        // key, and leaves every existing vector byte for byte as it was.
        let mut file: VectorFile =
            serde_json::from_str(&std::fs::read_to_string(PATH).unwrap()).unwrap();
        let key =
            SoftwareSigningKey::from_pkcs8(&b64::decode(&file.test_key_pkcs8).unwrap()).unwrap();
        for (name, message) in messages(&key) {
            if file.vectors.iter().any(|v| v.name == name) {
                continue;
            }
            let bytes = message.signing_bytes();
            file.vectors.push(Vector {
                name: name.into(),
                signing_bytes_hex: hex::encode(&bytes),
                signing_bytes_sha256_hex: hex::encode(sha256(&bytes)),
                signature: key.sign(&bytes),
                message,
            });
        }
        std::fs::write(PATH, serde_json::to_string_pretty(&file).unwrap() + "\n").unwrap();
    }
    serde_json::from_str(&std::fs::read_to_string(PATH).expect("vector file"))
        .expect("vector file parses")
}

#[test]
fn known_answer_vectors_hold() {
    let file = load();
    let n = check_file(&file, |k, m, s| k.verify(m, s).is_ok()).unwrap();
    assert_eq!(n, 11);
    // The file's own field values regenerate the same messages: nothing in the
    // file is unused or stale.
    let key = SoftwareSigningKey::from_pkcs8(&b64::decode(&file.test_key_pkcs8).unwrap()).unwrap();
    let expected = messages(&key);
    for ((name, msg), v) in expected.iter().zip(&file.vectors) {
        assert_eq!(*name, v.name);
        assert_eq!(
            hex::encode(msg.signing_bytes()),
            v.signing_bytes_hex,
            "{name}"
        );
    }
}

#[test]
fn a_changed_byte_breaks_every_vector() {
    let file = load();
    for v in &file.vectors {
        let mut bytes = hex::decode(&v.signing_bytes_hex).unwrap();
        for i in [0, bytes.len() / 2, bytes.len() - 1] {
            bytes[i] ^= 0x01;
            assert!(
                file.test_public_key.verify(&bytes, &v.signature).is_err(),
                "{}",
                v.name
            );
            bytes[i] ^= 0x01;
        }
    }
}

#[test]
fn domains_are_distinct_prefixes() {
    use eid_protocol::messages::*;
    let tags = [
        DOMAIN_REQUEST_ENVELOPE,
        DOMAIN_DEVICE_REQUEST,
        DOMAIN_DECISION,
        DOMAIN_RECEIPT,
        DOMAIN_ACTIVATION,
        DOMAIN_DEVICE_ENROLMENT,
        DOMAIN_SETTINGS_CHANGE,
        DOMAIN_HARDWARE_RECEIPT,
    ];
    for (i, a) in tags.iter().enumerate() {
        for b in &tags[i + 1..] {
            assert_ne!(a, b);
        }
    }
}
