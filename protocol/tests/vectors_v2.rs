//! Checks the known-answer vectors of protocol version 2 in
//! `testvectors/protocol-v2.json`: the decision and the receipt with the call
//! context (docs/protocol.md, "Call context"). Version-1 messages keep their
//! own file (`protocol-v1.json`), unchanged, because a decision without a
//! context is still encoded as version 1.
//! `EID_REGENERATE_VECTORS=1 cargo test -p eid-protocol --test vectors_v2`
//! rewrites the file (only when the encoding is deliberately changed).

use eid_protocol::crypto::SoftwareSigningKey;
use eid_protocol::messages::{
    DOMAIN_DECISION, DOMAIN_DECISION_V2, DOMAIN_RECEIPT_V2, Decision, Outcome, ReceiptBody,
    RequestEnvelopeBody, RequestKind,
};
use eid_protocol::vectors::{Vector, VectorFile, VectorMessage, check_file};
use eid_protocol::wire::b64;
use eid_protocol::*;

const PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../testvectors/protocol-v2.json"
);

fn envelope() -> RequestEnvelopeBody {
    RequestEnvelopeBody {
        request_id: RequestId([0x11; 16]),
        identity_id: IdentityId([0x22; 16]),
        kind: RequestKind::SelfService,
        service_provider_id: SELF_SERVICE_PROVIDER_ID,
        service_provider_name: SELF_SERVICE_PROVIDER_NAME.into(),
        reference_text: "Log på selvbetjening".into(),
        created_at_ms: 1_790_000_000_000,
        expires_at_ms: 1_790_000_300_000,
        server_nonce: [0x44; 32],
        binding_required: false,
    }
}

fn on_call_confirmed() -> CallContext {
    CallContext {
        call: Signal::On,
        screen_shared: Signal::Off,
        remote_control: Signal::Unknown,
        confirmed_self_started: true,
    }
}

fn messages() -> Vec<(&'static str, VectorMessage)> {
    let e = envelope();
    let auth = AuthenticatorId([0x55; 16]);
    let approve = Decision::for_envelope(&e, auth, Outcome::Approve, None, 7)
        .with_call_context(on_call_confirmed());
    let unknown = Decision::for_envelope(&e, auth, Outcome::Approve, None, 8)
        .with_call_context(CallContext::UNKNOWN);
    let deny =
        Decision::for_envelope(&e, auth, Outcome::Deny, None, 9).with_call_context(CallContext {
            call: Signal::Off,
            screen_shared: Signal::On,
            remote_control: Signal::On,
            confirmed_self_started: false,
        });
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
        call_context: approve.call_context,
    };
    vec![
        (
            "decision/approve_on_call_confirmed",
            VectorMessage::Decision(approve),
        ),
        (
            "decision/approve_nothing_known",
            VectorMessage::Decision(unknown),
        ),
        (
            "decision/deny_screen_shared_remote_control",
            VectorMessage::Decision(deny),
        ),
        ("receipt/approve_on_call", VectorMessage::Receipt(receipt)),
    ]
}

fn load() -> VectorFile {
    if std::env::var_os("EID_REGENERATE_VECTORS").is_some() {
        // Signed by the same published test key as version 1.
        let v1: VectorFile = serde_json::from_str(
            &std::fs::read_to_string(PATH.replace("-v2.json", "-v1.json")).unwrap(),
        )
        .unwrap();
        let key =
            SoftwareSigningKey::from_pkcs8(&b64::decode(&v1.test_key_pkcs8).unwrap()).unwrap();
        let vectors = messages()
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
        let file = VectorFile {
            version: 2,
            test_key_pkcs8: v1.test_key_pkcs8,
            test_public_key: v1.test_public_key,
            vectors,
        };
        std::fs::write(PATH, serde_json::to_string_pretty(&file).unwrap() + "\n").unwrap();
    }
    serde_json::from_str(&std::fs::read_to_string(PATH).expect("vector file"))
        .expect("vector file parses")
}

#[test]
fn version_2_known_answer_vectors_hold() {
    let file = load();
    assert_eq!(file.version, 2);
    let n = check_file(&file, |k, m, s| k.verify(m, s).is_ok()).unwrap();
    assert_eq!(n, 4);
    for ((name, msg), v) in messages().iter().zip(&file.vectors) {
        assert_eq!(*name, v.name);
        assert_eq!(
            hex::encode(msg.signing_bytes()),
            v.signing_bytes_hex,
            "{name}"
        );
    }
}

#[test]
fn a_version_2_decision_is_the_version_1_bytes_under_its_own_domain_then_the_context() {
    let e = envelope();
    let v1 = Decision::for_envelope(&e, AuthenticatorId([0x55; 16]), Outcome::Approve, None, 7);
    let v2 = v1.clone().with_call_context(on_call_confirmed());
    let (b1, b2) = (v1.signing_bytes(), v2.signing_bytes());
    let fields_v1 = &b1[1 + DOMAIN_DECISION.len()..];
    let fields_v2 = &b2[1 + DOMAIN_DECISION_V2.len()..];
    assert_eq!(
        &b2[1..=DOMAIN_DECISION_V2.len()],
        DOMAIN_DECISION_V2.as_bytes()
    );
    assert_eq!(&fields_v2[..fields_v1.len()], fields_v1);
    // call on (2), screen off (1), remote control unknown (0), confirmed.
    assert_eq!(&fields_v2[fields_v1.len()..], &[2, 1, 0, 1]);
}

#[test]
fn an_all_unknown_context_still_signs_differently_from_none() {
    // A version-2 phone that could see nothing is not the same statement as
    // a version-1 phone that never looked: the domain differs.
    let e = envelope();
    let v1 = Decision::for_envelope(&e, AuthenticatorId([0x55; 16]), Outcome::Approve, None, 7);
    let v2 = v1.clone().with_call_context(CallContext::UNKNOWN);
    assert_ne!(v1.signing_bytes(), v2.signing_bytes());
    assert_eq!(v1.call_context_or_unknown(), v2.call_context_or_unknown());
}

#[test]
fn a_version_1_decision_json_without_the_field_parses_as_version_1() {
    let e = envelope();
    let v1 = Decision::for_envelope(&e, AuthenticatorId([0x55; 16]), Outcome::Deny, None, 3);
    let json = serde_json::to_string(&v1).unwrap();
    assert!(!json.contains("call_context"));
    let back: Decision = serde_json::from_str(&json).unwrap();
    assert_eq!(back.call_context, None);
    assert_eq!(back.signing_bytes(), v1.signing_bytes());
}

#[test]
fn the_receipt_domain_changes_with_the_context() {
    let file = load();
    let receipt = file
        .vectors
        .iter()
        .find(|v| v.name == "receipt/approve_on_call")
        .unwrap();
    let bytes = hex::decode(&receipt.signing_bytes_hex).unwrap();
    assert_eq!(
        &bytes[1..=DOMAIN_RECEIPT_V2.len()],
        DOMAIN_RECEIPT_V2.as_bytes()
    );
}
