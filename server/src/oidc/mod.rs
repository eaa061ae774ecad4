//! OpenID Connect provider (see docs/oidc.md): what exists so far is the
//! registration of clients and the ID-token signing key published at the
//! JWKS endpoint; the HTTP handlers are in `api::oidc`.

mod clients;
mod keys;

pub use clients::*;
pub use keys::{ID_TOKEN_KEY_FILE, IdTokenKey, PublicJwk};

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
