//! The bodies of the fuzz targets, one function per decoder that reads
//! untrusted input. `fuzz/` (cargo-fuzz, nightly) calls them with libFuzzer's
//! inputs; `tests/corpus.rs` replays the committed corpora through them on
//! stable, so every crash ever found stays a regression test.
//!
//! Each body must not panic for any input, and checks a property where the
//! decoder has one (round trips, idempotence, agreement between checks).
#![forbid(unsafe_code)]

use eid_protocol::wire::{self, PullResponse, SignedEnvelope};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A target body: takes any bytes, panics only on a bug.
pub type Target = fn(&[u8]);

/// The targets, by name (the folder names under `fuzz/corpus/`).
pub const TARGETS: &[(&str, Target)] = &[
    ("wire_request", wire_request),
    ("wire_response", wire_response),
    ("device_auth", device_auth),
    ("text_rules", text_rules),
    ("binding_code", binding_code),
    ("server_config", server_config),
    ("webauthn_answer", webauthn_answer),
    ("pskc", pskc),
];

/// Parses `data` as `T`; if it parses, serializing and parsing again must give
/// the same value (no lossy or ambiguous field).
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(data: &[u8]) {
    if let Ok(value) = serde_json::from_slice::<T>(data) {
        let json = serde_json::to_vec(&value).expect("a parsed value serializes");
        let again: T = serde_json::from_slice(&json).expect("a serialized value parses");
        assert_eq!(again, value, "JSON round trip changed the value");
    }
}

/// Every request body the server parses from the network.
pub fn wire_request(data: &[u8]) {
    round_trip::<wire::CreateIdentityRequest>(data);
    round_trip::<wire::RegisterServiceProviderRequest>(data);
    round_trip::<wire::ActivateRequest>(data);
    round_trip::<wire::BlockRequest>(data);
    round_trip::<wire::PullRequest>(data);
    round_trip::<wire::SubmitDecisionRequest>(data);
    round_trip::<wire::CreateRequestRequest>(data);
}

/// Every response body the phone and service providers parse; envelopes in a
/// pull are hashed and verified as the core does (never accepted: the key is
/// fixed and the fuzzer can't sign).
pub fn wire_response(data: &[u8]) {
    round_trip::<wire::ActivateResponse>(data);
    round_trip::<wire::BlockResponse>(data);
    round_trip::<wire::RequestStatusResponse>(data);
    round_trip::<wire::ServerKeyResponse>(data);
    round_trip::<wire::ErrorBody>(data);
    round_trip::<SignedEnvelope>(data);
    round_trip::<PullResponse>(data);
    if let Ok(pull) = serde_json::from_slice::<PullResponse>(data) {
        let key = fixed_key();
        for authenticator in &pull.accounts {
            for signed in &authenticator.requests {
                let bytes = signed.envelope.signing_bytes();
                assert!(
                    key.verify(&bytes, &signed.signature).is_err(),
                    "a fuzzed envelope verified under the fixed key"
                );
                let _ =
                    eid_protocol::text::validate_reference_text(&signed.envelope.reference_text);
            }
        }
    }
}

fn fixed_key() -> eid_protocol::PublicKey {
    // The test-vector key from protocol/src/vectors.rs would do as well; any
    // valid point works because the fuzzer can't produce its signatures.
    static KEY: std::sync::OnceLock<eid_protocol::PublicKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        eid_protocol::crypto::SoftwareSigningKey::generate()
            .public_key()
            .clone()
    })
    .clone()
}

/// The device-signature header, DER signatures, SEC1 keys and ids.
pub fn device_auth(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(pairs) = wire::parse_signature_header(text) {
            assert!(!pairs.is_empty() && pairs.len() <= wire::MAX_PULL_AUTHENTICATORS);
            let again = wire::format_signature_header(&pairs);
            assert_eq!(wire::parse_signature_header(&again), Some(pairs));
        }
        if let Ok(id) = text.parse::<eid_protocol::AuthenticatorId>() {
            assert_eq!(id.to_string(), text, "ids have one spelling");
        }
    }
    if let Ok(sig) = eid_protocol::Signature::from_der(data) {
        let _ = fixed_key().verify(b"message", &sig);
    }
    if let Ok(key) = eid_protocol::PublicKey::from_sec1(data) {
        assert_eq!(key.as_bytes().as_slice(), data);
    }
}

/// The reference-text and provider-name rules: normalizing is idempotent and
/// its output always passes validation.
pub fn text_rules(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    use eid_protocol::text::*;
    if let Ok(t) = normalize_reference_text(text) {
        assert_eq!(validate_reference_text(&t), Ok(()));
        assert_eq!(normalize_reference_text(&t).as_deref(), Ok(t.as_str()));
    }
    if validate_reference_text(text).is_ok() {
        assert_eq!(normalize_reference_text(text).as_deref(), Ok(text));
    }
    if let Ok(n) = normalize_provider_name(text) {
        assert_eq!(validate_provider_name(&n), Ok(()));
        assert_eq!(normalize_provider_name(&n).as_deref(), Ok(n.as_str()));
    }
    let _ = eid_server::userid::check(text, eid_server::userid::PersonalData::default());
    let _ = eid_server::contact::check_email(text);
    let _ = eid_server::contact::check_phone(text);
}

/// Binding codes and their QR payloads: the canonical form is a fixed point,
/// and the QR payload of a code decodes to the same code.
pub fn binding_code(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    use eid_protocol::binding::*;
    if let Ok(code) = canonical_binding_code(text) {
        assert!((MIN_LEN..=MAX_LEN).contains(&code.len()));
        assert!(
            code.bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        );
        assert_eq!(canonical_binding_code(&code).as_deref(), Ok(code.as_str()));
        let qr = qr_payload(&code).expect("a canonical code has a payload");
        assert_eq!(canonical_binding_code(&qr).as_deref(), Ok(code.as_str()));
    }
}

/// The server's TOML configuration file.
pub fn server_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = eid_server::Config::from_toml_str(text);
}

/// The chip pages' browser input: a form's ceremony id, a WebAuthn
/// registration answer through webauthn-rs' whole verification (CBOR
/// attestation object, COSE key) and an assertion's JSON.
pub fn webauthn_answer(data: &[u8]) {
    eid_server::chip::fuzzing::browser_answers(data);
}
/// A manufacturer's PSKC batch (RFC 6030) as the admin API reads it: never
/// a panic, and whatever parses has only TOTP devices the server takes,
/// each with a unique serial. The key is fixed: documents built under it
/// (the corpus holds some) reach the MAC check and the decryption.
pub fn pskc(data: &[u8]) {
    use eid_server::code_devices::pskc::parse_batch;
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(batch) = parse_batch(text, &PSKC_FUZZ_KEY) {
        let mut serials = std::collections::HashSet::new();
        for device in &batch.devices {
            assert!(serials.insert(device.serial.clone()), "a serial twice");
            assert_eq!(device.params.digits, 6);
            assert!(matches!(device.params.step_secs, 30 | 60));
        }
    }
}

/// The pre-shared key of the `pskc` target's corpus documents.
pub const PSKC_FUZZ_KEY: [u8; 16] = [0x42; 16];
