//! OpenID Connect provider (see docs/oidc.md): the registration of clients,
//! the ID-token signing key published at the JWKS endpoint, and the rules
//! every login follows (its handles and lifetimes); the client-facing
//! endpoints (PAR, token, userinfo, with client authentication, the ID
//! token and pairwise subjects) in their own modules here; discovery and
//! JWKS in `api::oidc`, the person's browser in `web`.

pub mod client_auth;
mod clients;
pub mod form;
pub mod id_token;
mod keys;
pub mod method;
pub mod pairwise;
pub mod par;
pub mod token;
pub mod userinfo;

pub use clients::*;
pub use keys::{
    ID_TOKEN_KEY_FILE, IdTokenKey, NEXT_ID_TOKEN_KEY_FILE, PREVIOUS_ID_TOKEN_KEY_FILE, PublicJwk,
    prepare_next_id_token_key, rotate_id_token_key,
};
pub use pairwise::{PAIRWISE_KEY_FILE, PairwiseKey};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// How long a pushed authorization request's `request_uri` may start a
/// login in a browser (RFC 9126 suggests a short time; 60 s).
pub const REQUEST_URI_LIFETIME_MS: u64 = 60_000;
/// How long a login may take in the browser, from PAR to the code: the
/// user ID, a request's 5 minutes and a retry.
pub const LOGIN_LIFETIME_MS: u64 = 15 * 60_000;
/// How long an authorization code lives (at most 60 s).
pub const CODE_LIFETIME_MS: u64 = 60_000;
/// How long an access token (for userinfo) and an ID token live.
pub const TOKEN_LIFETIME_MS: u64 = 300_000;
/// The prefix of every `request_uri` (RFC 9126, section 2.2).
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// A fresh bearer handle (`request_uri` suffix, code, access token, cookie
/// secret): 32 random bytes, base64url without padding.
pub fn new_handle() -> zeroize::Zeroizing<String> {
    let bytes: zeroize::Zeroizing<[u8; 32]> =
        zeroize::Zeroizing::new(eid_protocol::crypto::random_array());
    zeroize::Zeroizing::new(URL_SAFE_NO_PAD.encode(*bytes))
}

/// The stored form of a handle: SHA-256 of its text exactly as the client
/// or browser presents it (a full `request_uri` including its prefix).
pub fn handle_sha256(handle: &str) -> [u8; 32] {
    eid_protocol::sha256(handle.as_bytes())
}

/// Whether `issuer` is usable as the OpenID Connect issuer: an `https`
/// origin (no user info, path, query or fragment) written without a
/// trailing slash, as it must appear byte for byte in every `iss`.
pub fn is_issuer(issuer: &str) -> bool {
    let Ok(url) = url::Url::parse(issuer) else {
        return false;
    };
    url.scheme() == "https"
        && url.host().is_some()
        && url.username().is_empty()
        && url.password().is_none()
        && url.query().is_none()
        && url.fragment().is_none()
        && url.path() == "/"
        && format!("{issuer}/") == url.as_str()
}

#[cfg(test)]
mod tests {
    use super::is_issuer;

    #[test]
    fn an_issuer_is_an_https_origin_without_trailing_slash() {
        assert!(is_issuer("https://eid.example"));
        assert!(is_issuer("https://127.0.0.1:8443"));
        for bad in [
            "https://eid.example/",
            "https://eid.example/tenant",
            "http://eid.example",
            "https://eid.example?x=1",
            "https://EID.example",
            "https://user@eid.example",
            "eid.example",
        ] {
            assert!(!is_issuer(bad), "{bad}");
        }
    }
}
