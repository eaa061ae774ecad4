//! A software chip for tests (the server's unit tests include this file
//! too): a small hand-built WebAuthn authenticator on
//! ring (P-256, ES256), answering `navigator.credentials.create` and `.get`
//! options as a browser with a security key would, with attestation `none`
//! and a sign counter the test can set (to play a cloned key). Hand-built
//! rather than webauthn-authenticator-rs, whose software token pulls in a
//! second OpenSSL-based stack for what is a few dozen lines of CBOR.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::digest::{SHA256, digest};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};

/// A software security key with one credential.
pub(crate) struct SoftChip {
    pkcs8: Vec<u8>,
    /// The credential id it returns.
    pub(crate) credential_id: Vec<u8>,
    /// The sign counter of the next assertion (incremented before signing).
    pub(crate) counter: u32,
    origin: String,
}

impl Clone for SoftChip {
    fn clone(&self) -> Self {
        Self {
            pkcs8: self.pkcs8.clone(),
            credential_id: self.credential_id.clone(),
            counter: self.counter,
            origin: self.origin.clone(),
        }
    }
}

impl SoftChip {
    /// A fresh key answering for pages of `origin`.
    pub(crate) fn new(origin: &str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .expect("P-256 key generation")
            .as_ref()
            .to_vec();
        Self {
            pkcs8,
            credential_id: eid_protocol::crypto::random_array::<32>().to_vec(),
            counter: 0,
            origin: origin.to_owned(),
        }
    }

    fn pair(&self) -> EcdsaKeyPair {
        EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_ASN1_SIGNING,
            &self.pkcs8,
            &SystemRandom::new(),
        )
        .expect("own PKCS#8")
    }

    fn client_data(&self, kind: &str, options: &Value) -> Vec<u8> {
        let challenge = options["challenge"].as_str().expect("a challenge");
        serde_json::to_vec(&json!({
            "type": kind,
            "challenge": challenge,
            "origin": self.origin,
            "crossOrigin": false,
        }))
        .expect("JSON")
    }

    fn rp_id_hash(rp_id: &str) -> Vec<u8> {
        digest(&SHA256, rp_id.as_bytes()).as_ref().to_vec()
    }

    /// Answers creation options (the `publicKey` JSON) with the credential
    /// JSON a browser posts.
    pub(crate) fn register(&mut self, options_json: &str) -> String {
        let options: Value = serde_json::from_str(options_json).expect("options JSON");
        let rp_id = options["rp"]["id"].as_str().expect("rp.id");
        let public = self.pair().public_key().as_ref().to_vec();
        let mut cose = vec![0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21];
        cbor_bytes(&mut cose, &public[1..33]);
        cose.push(0x22);
        cbor_bytes(&mut cose, &public[33..65]);
        let mut auth_data = Self::rp_id_hash(rp_id);
        auth_data.push(0x41); // user present, attested credential data
        auth_data.extend_from_slice(&self.counter.to_be_bytes());
        auth_data.extend_from_slice(&[0u8; 16]); // AAGUID: none
        auth_data.extend_from_slice(&(self.credential_id.len() as u16).to_be_bytes());
        auth_data.extend_from_slice(&self.credential_id);
        auth_data.extend_from_slice(&cose);
        let mut attestation = vec![0xa3];
        cbor_text(&mut attestation, "fmt");
        cbor_text(&mut attestation, "none");
        cbor_text(&mut attestation, "attStmt");
        attestation.push(0xa0);
        cbor_text(&mut attestation, "authData");
        cbor_bytes(&mut attestation, &auth_data);
        let client_data = self.client_data("webauthn.create", &options);
        json!({
            "id": B64.encode(&self.credential_id),
            "rawId": B64.encode(&self.credential_id),
            "type": "public-key",
            "response": {
                "attestationObject": B64.encode(&attestation),
                "clientDataJSON": B64.encode(&client_data),
            },
            "extensions": {},
        })
        .to_string()
    }

    /// Answers request options (the `publicKey` JSON) with the assertion
    /// JSON a browser posts; the counter rises by one first.
    pub(crate) fn assert(&mut self, options_json: &str) -> String {
        let options: Value = serde_json::from_str(options_json).expect("options JSON");
        let rp_id = options["rpId"].as_str().expect("rpId");
        self.counter += 1;
        let mut auth_data = Self::rp_id_hash(rp_id);
        auth_data.push(0x01); // user present
        auth_data.extend_from_slice(&self.counter.to_be_bytes());
        let client_data = self.client_data("webauthn.get", &options);
        let mut signed = auth_data.clone();
        signed.extend_from_slice(digest(&SHA256, &client_data).as_ref());
        let signature = self
            .pair()
            .sign(&SystemRandom::new(), &signed)
            .expect("signing");
        json!({
            "id": B64.encode(&self.credential_id),
            "rawId": B64.encode(&self.credential_id),
            "type": "public-key",
            "response": {
                "authenticatorData": B64.encode(&auth_data),
                "clientDataJSON": B64.encode(&client_data),
                "signature": B64.encode(signature.as_ref()),
                "userHandle": null,
            },
            "extensions": {},
        })
        .to_string()
    }
}

fn cbor_head(out: &mut Vec<u8>, major: u8, len: usize) {
    match len {
        0..=23 => out.push(major << 5 | len as u8),
        24..=255 => out.extend_from_slice(&[major << 5 | 24, len as u8]),
        _ => {
            out.push(major << 5 | 25);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
    }
}

fn cbor_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    cbor_head(out, 2, bytes.len());
    out.extend_from_slice(bytes);
}

fn cbor_text(out: &mut Vec<u8>, text: &str) {
    cbor_head(out, 3, text.len());
    out.extend_from_slice(text.as_bytes());
}
