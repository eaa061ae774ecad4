//! The self-service pages' cookies: a sealed token (HMAC-SHA256) naming the
//! self-service login request the browser started, so the server keeps no
//! session table of its own. Where the sign-in stands lives in the store,
//! in the request and its decision (which survive a restart); the token
//! only says which request is this browser's, and nobody can make one up.
//!
//! The key is derived from the server's signing key (so it survives a
//! restart and changes with the key) under its own domain tag, and is never
//! used for anything else; a token is never the input of an ECDSA signature.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use eid_protocol::{ChangeId, RequestId};
use ring::hmac;
use zeroize::Zeroizing;

use crate::api::AppState;

/// Domain tag of the derived key.
const KEY_DOMAIN: &[u8] = b"eid-authenticator/v1/self-service-cookie-key";
/// The layout's version (the first byte).
const VERSION: u8 = 1;
/// version, purpose, request id, change id, issued at, nonce.
const BODY_LEN: usize = 1 + 1 + 16 + 16 + 8 + 16;
const MAC_LEN: usize = 32;

/// What a token is for; a token of one purpose is refused as the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// The sign-in: its request's approval opens the session.
    SignIn,
    /// The login of a change started on the pages (first or second).
    Change,
    /// A code device's activation waiting in the app.
    CodeDevice,
}

impl Purpose {
    fn byte(self) -> u8 {
        match self {
            Purpose::SignIn => 1,
            Purpose::Change => 2,
            Purpose::CodeDevice => 3,
        }
    }
}

/// The content of a sealed cookie.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub(crate) purpose: Purpose,
    /// The self-service login request this browser started.
    pub(crate) request_id: RequestId,
    /// The change it belongs to (zeros for a sign-in).
    pub(crate) change_id: ChangeId,
    /// When the server sealed it.
    pub(crate) issued_at_ms: u64,
    /// Makes every token unique (the CSRF token and the stand-in codes are
    /// derived from the sealed value).
    pub(crate) nonce: [u8; 16],
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// A fresh token.
    pub(crate) fn new(
        purpose: Purpose,
        request_id: RequestId,
        change_id: ChangeId,
        now_ms: u64,
    ) -> Self {
        Self {
            purpose,
            request_id,
            change_id,
            issued_at_ms: now_ms,
            nonce: eid_protocol::crypto::random_array(),
        }
    }

    fn body(&self) -> [u8; BODY_LEN] {
        let mut b = [0u8; BODY_LEN];
        b[0] = VERSION;
        b[1] = self.purpose.byte();
        b[2..18].copy_from_slice(self.request_id.as_bytes());
        b[18..34].copy_from_slice(self.change_id.as_bytes());
        b[34..42].copy_from_slice(&self.issued_at_ms.to_be_bytes());
        b[42..58].copy_from_slice(&self.nonce);
        b
    }
}

fn key_of(pkcs8: &[u8]) -> hmac::Key {
    let mut input = Zeroizing::new(KEY_DOMAIN.to_vec());
    input.extend_from_slice(pkcs8);
    let derived = Zeroizing::new(eid_protocol::sha256(&input));
    hmac::Key::new(hmac::HMAC_SHA256, &*derived)
}

fn seal_with(key: &hmac::Key, token: &Token) -> String {
    let body = token.body();
    let tag = hmac::sign(key, &body);
    let mut out = body.to_vec();
    out.extend_from_slice(tag.as_ref());
    URL_SAFE_NO_PAD.encode(out)
}

fn open_with(key: &hmac::Key, purpose: Purpose, sealed: &str) -> Option<Token> {
    // Base64 of BODY_LEN + MAC_LEN bytes; anything longer is not worth decoding.
    if sealed.len() > 2 * (BODY_LEN + MAC_LEN) {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
    if bytes.len() != BODY_LEN + MAC_LEN {
        return None;
    }
    let (body, tag) = bytes.split_at(BODY_LEN);
    hmac::verify(key, body, tag).ok()?;
    if body[0] != VERSION || body[1] != purpose.byte() {
        return None;
    }
    let id16 = |r: std::ops::Range<usize>| -> Option<[u8; 16]> { body[r].try_into().ok() };
    Some(Token {
        purpose,
        request_id: RequestId(id16(2..18)?),
        change_id: ChangeId(id16(18..34)?),
        issued_at_ms: u64::from_be_bytes(body[34..42].try_into().ok()?),
        nonce: id16(42..58)?,
    })
}

/// The cookie value of `token`, sealed with this server's key.
pub(crate) fn seal(state: &AppState, token: &Token) -> String {
    seal_with(&key_of(state.signing_key.pkcs8()), token)
}

/// The token of a cookie value, if this server sealed it for `purpose`.
pub(crate) fn open(state: &AppState, purpose: Purpose, sealed: &str) -> Option<Token> {
    open_with(&key_of(state.signing_key.pkcs8()), purpose, sealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> Token {
        Token::new(Purpose::SignIn, RequestId([1; 16]), ChangeId([0; 16]), 42)
    }

    #[test]
    fn a_sealed_token_opens_with_the_same_key_for_the_same_purpose_only() {
        let key = key_of(b"one");
        let t = token();
        let sealed = seal_with(&key, &t);
        assert_eq!(open_with(&key, Purpose::SignIn, &sealed), Some(t));
        assert_eq!(open_with(&key, Purpose::Change, &sealed), None);
        assert_eq!(open_with(&key_of(b"two"), Purpose::SignIn, &sealed), None);
    }

    #[test]
    fn a_changed_or_cut_token_does_not_open() {
        let key = key_of(b"one");
        let sealed = seal_with(&key, &token());
        let mut bytes = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        bytes[3] ^= 1;
        assert_eq!(
            open_with(&key, Purpose::SignIn, &URL_SAFE_NO_PAD.encode(&bytes)),
            None
        );
        assert_eq!(open_with(&key, Purpose::SignIn, &sealed[..40]), None);
        assert_eq!(open_with(&key, Purpose::SignIn, "not base64 !"), None);
        assert_eq!(open_with(&key, Purpose::SignIn, &"A".repeat(10_000)), None);
    }

    #[test]
    fn two_tokens_for_the_same_request_differ() {
        let key = key_of(b"one");
        assert_ne!(seal_with(&key, &token()), seal_with(&key, &token()));
    }
}
