//! The chip's parsers of untrusted browser input, for the fuzz targets
//! (`fuzz-targets`): the ceremony id of a form, a registration answer run
//! through webauthn-rs' whole verification (JSON, base64url, the CBOR
//! attestation object and the COSE key) against a fresh challenge, and an
//! assertion answer's JSON. None may panic; none may accept an answer to a
//! challenge it cannot know.

use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential, Uuid};

/// Feeds `data` to every parser a chip page applies to a browser's post.
/// Panics only on a bug: an accepted registration (the fuzzer cannot sign
/// the fresh random challenge) or a parser panic.
pub fn browser_answers(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = super::parse_ceremony_id(text);
    let _ = serde_json::from_str::<PublicKeyCredential>(text);
    let Ok(answer) = serde_json::from_str::<RegisterPublicKeyCredential>(text) else {
        return;
    };
    let rp = super::relying_party("https://localhost:8443").expect("a valid origin");
    let (_, registration) = rp
        .start_securitykey_registration(Uuid::from_bytes([7; 16]), "fuzz", "fuzz", None, None, None)
        .expect("a registration starts");
    assert!(
        rp.finish_securitykey_registration(&answer, &registration)
            .is_err(),
        "an answer to an unknown random challenge was accepted"
    );
}
