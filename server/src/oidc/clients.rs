//! OIDC clients: the rules a registration must follow, the client's
//! identifiers and its secret (see docs/oidc.md).
//!
//! The client secret is 32 random bytes, and only its SHA-256 is stored. A
//! slow password hash (Argon2id) protects low-entropy secrets a person chose;
//! a 256-bit random secret cannot be guessed from its hash, so a slow hash
//! would add only CPU cost to every token request (a lever for overload) and
//! nothing to the security. The comparison runs in constant time.

use eid_protocol::wire::ClientJwk;
use subtle::ConstantTimeEq;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Redirect URIs one client may register.
pub const MAX_REDIRECT_URIS: usize = 10;
/// The longest redirect URI, in bytes.
pub const MAX_REDIRECT_URI_LEN: usize = 512;
/// Scopes one client may register.
pub const MAX_SCOPES: usize = 10;
/// The longest scope, in bytes.
pub const MAX_SCOPE_LEN: usize = 64;

/// Why a client registration was refused; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientRuleError {
    /// A redirect URI breaks the rules.
    #[error("redirect_uris: {0}")]
    RedirectUri(String),
    /// A scope breaks the rules.
    #[error("scopes: {0}")]
    Scope(String),
    /// The JWK is not a public EC P-256 or RSA key.
    #[error("jwk: {0}")]
    Jwk(&'static str),
    /// Neither a secret nor a JWK: the client could never authenticate.
    #[error("a client needs client_secret_basic, a jwk, or both")]
    NoAuthMethod,
}

/// Checks the redirect URIs; returns the sector (their common host).
///
/// Each must be written in its normal form (as the URL parser writes it
/// back), because the authorization request's `redirect_uri` is later
/// compared byte for byte: `https` with a host, or `http` only on
/// `127.0.0.1` (tests); no user info, no fragment. All share one host, the
/// sector of the client's pairwise subject identifiers (a client with
/// several hosts would need a `sector_identifier_uri`, not supported).
pub fn check_redirect_uris(uris: &[String]) -> Result<String, ClientRuleError> {
    let bad = |m: String| ClientRuleError::RedirectUri(m);
    if uris.is_empty() || uris.len() > MAX_REDIRECT_URIS {
        return Err(bad(format!("give 1 to {MAX_REDIRECT_URIS} URIs")));
    }
    let mut sector: Option<String> = None;
    for (i, uri) in uris.iter().enumerate() {
        if uri.len() > MAX_REDIRECT_URI_LEN {
            return Err(bad(format!(
                "URI {i} is longer than {MAX_REDIRECT_URI_LEN} bytes"
            )));
        }
        let url = url::Url::parse(uri).map_err(|e| bad(format!("URI {i} is not a URL: {e}")))?;
        if url.as_str() != uri {
            return Err(bad(format!(
                "URI {i} is not in its normal form; write it as {}",
                url.as_str()
            )));
        }
        if url.fragment().is_some() {
            return Err(bad(format!("URI {i} has a fragment")));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad(format!("URI {i} has user info")));
        }
        let host = match (url.scheme(), url.host()) {
            ("https", Some(url::Host::Domain(d))) => d.to_owned(),
            ("https", Some(url::Host::Ipv4(ip))) => ip.to_string(),
            ("http", Some(url::Host::Ipv4(ip))) if ip == std::net::Ipv4Addr::LOCALHOST => {
                ip.to_string()
            }
            _ => {
                return Err(bad(format!("URI {i} must be https, or http on 127.0.0.1")));
            }
        };
        if uris[..i].contains(uri) {
            return Err(bad(format!("URI {i} is given twice")));
        }
        match &sector {
            None => sector = Some(host),
            Some(s) if *s == host => {}
            Some(_) => return Err(bad("all URIs must share one host".into())),
        }
    }
    Ok(sector.unwrap_or_default())
}

/// Checks the scopes (RFC 6749 scope-token syntax); `openid` is required.
pub fn check_scopes(scopes: &[String]) -> Result<(), ClientRuleError> {
    let bad = |m: String| ClientRuleError::Scope(m);
    if scopes.is_empty() || scopes.len() > MAX_SCOPES {
        return Err(bad(format!("give 1 to {MAX_SCOPES} scopes")));
    }
    for (i, scope) in scopes.iter().enumerate() {
        let token_char =
            |b: u8| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b);
        if scope.is_empty() || scope.len() > MAX_SCOPE_LEN || !scope.bytes().all(token_char) {
            return Err(bad(format!(
                "scope {i} must be 1 to {MAX_SCOPE_LEN} printable ASCII characters without space, \" or \\"
            )));
        }
        if scopes[..i].contains(scope) {
            return Err(bad(format!("scope {i} is given twice")));
        }
    }
    if !scopes.iter().any(|s| s == "openid") {
        return Err(bad("must contain openid".into()));
    }
    Ok(())
}

/// The smallest RSA modulus a client may register, in bits (NIST SP
/// 800-131A; RFC 7518 section 3.3 requires at least 2048 for RS256).
pub const MIN_RSA_BITS: usize = 2048;
/// The largest RSA modulus, in bits (what ring verifies).
pub const MAX_RSA_BITS: usize = 8192;

/// Checks that the JWK is a public EC P-256 key whose point is on the
/// curve, or a public RSA key of 2048 to 8192 bits; returns it in the RFC
/// 7638 form (required members only, in lexicographic order), which is
/// what the store keeps.
pub fn check_jwk(jwk: &ClientJwk) -> Result<String, ClientRuleError> {
    match jwk.kty.as_str() {
        "EC" => check_ec_jwk(jwk),
        "RSA" => check_rsa_jwk(jwk),
        _ => Err(ClientRuleError::Jwk("kty must be EC or RSA")),
    }
}

fn check_ec_jwk(jwk: &ClientJwk) -> Result<String, ClientRuleError> {
    if jwk.crv.as_deref() != Some("P-256") {
        return Err(ClientRuleError::Jwk("crv must be P-256"));
    }
    let coordinate = |c: Option<&str>| -> Option<Vec<u8>> {
        URL_SAFE_NO_PAD.decode(c?).ok().filter(|b| b.len() == 32)
    };
    let (Some(x), Some(y)) = (coordinate(jwk.x.as_deref()), coordinate(jwk.y.as_deref())) else {
        return Err(ClientRuleError::Jwk(
            "x and y must be 32 bytes each, base64url without padding",
        ));
    };
    let mut point = Vec::with_capacity(65);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    // ring checks a peer's point in a key agreement (on the curve, not the
    // identity): an agreement with a throw-away key is that check.
    let rng = ring::rand::SystemRandom::new();
    let ours = ring::agreement::EphemeralPrivateKey::generate(&ring::agreement::ECDH_P256, &rng)
        .map_err(|_| ClientRuleError::Jwk("could not check the point"))?;
    let theirs = ring::agreement::UnparsedPublicKey::new(&ring::agreement::ECDH_P256, &point);
    ring::agreement::agree_ephemeral(ours, &theirs, |_| ())
        .map_err(|_| ClientRuleError::Jwk("the point is not on the P-256 curve"))?;
    // Written back from the decoded bytes: one key has one stored form.
    Ok(format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(&x),
        URL_SAFE_NO_PAD.encode(&y)
    ))
}

fn check_rsa_jwk(jwk: &ClientJwk) -> Result<String, ClientRuleError> {
    // RFC 7518 section 6.3.1: unsigned big-endian in the fewest octets.
    let integer = |v: Option<&str>| -> Option<Vec<u8>> {
        URL_SAFE_NO_PAD
            .decode(v?)
            .ok()
            .filter(|b| b.first().is_some_and(|first| *first != 0))
    };
    let (Some(n), Some(e)) = (integer(jwk.n.as_deref()), integer(jwk.e.as_deref())) else {
        return Err(ClientRuleError::Jwk(
            "n and e must be unsigned integers, base64url without padding, without leading zero bytes",
        ));
    };
    let bits = n.len() * 8 - n[0].leading_zeros() as usize;
    if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        return Err(ClientRuleError::Jwk(
            "the RSA modulus must have 2048 to 8192 bits",
        ));
    }
    // An even modulus is no RSA key; ring verifies only odd exponents from 3
    // to 2^33 - 1 (a 4-byte exponent covers every key in use: 65537).
    let odd = |b: &[u8]| b.last().is_some_and(|l| l & 1 == 1);
    if !odd(&n) || !odd(&e) || e.len() > 4 || e == [1] {
        return Err(ClientRuleError::Jwk(
            "not an RSA public key: the modulus and the exponent must be odd, the exponent from 3 to 2^32 - 1",
        ));
    }
    Ok(format!(
        r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(&e),
        URL_SAFE_NO_PAD.encode(&n)
    ))
}

/// A fresh public `client_id`: `eidoc_` and 128 random bits.
pub fn new_client_id() -> String {
    format!(
        "eidoc_{}",
        URL_SAFE_NO_PAD.encode(eid_protocol::crypto::random_array::<16>())
    )
}

/// A fresh client secret: `eidcs_` and 256 random bits.
pub fn new_client_secret() -> String {
    format!(
        "eidcs_{}",
        URL_SAFE_NO_PAD.encode(eid_protocol::crypto::random_array::<32>())
    )
}

/// The stored form of a client secret.
pub fn secret_hash(secret: &str) -> [u8; 32] {
    eid_protocol::sha256(secret.as_bytes())
}

/// Whether `presented` is the secret behind `stored`, compared in constant
/// time (the time does not tell how many bytes of the hash matched).
pub fn secret_matches(stored: &[u8; 32], presented: &str) -> bool {
    secret_hash(presented).ct_eq(stored).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uris(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn https_uris_of_one_host_give_that_host_as_sector() {
        assert_eq!(
            check_redirect_uris(&uris(&[
                "https://bank.example/cb",
                "https://bank.example/cb2?x=1"
            ])),
            Ok("bank.example".to_owned())
        );
        assert_eq!(
            check_redirect_uris(&uris(&["http://127.0.0.1:8080/cb"])),
            Ok("127.0.0.1".to_owned())
        );
    }

    #[test]
    fn redirect_uris_that_are_not_exact_https_urls_are_refused() {
        for bad in [
            "http://bank.example/cb",
            "http://localhost/cb",
            "http://127.0.0.2/cb",
            "https://bank.example/cb#frag",
            "https://user@bank.example/cb",
            "https://Bank.example/cb",
            "https://bank.example",
            "bank.example/cb",
            "custom:/cb",
        ] {
            assert!(
                matches!(
                    check_redirect_uris(&uris(&[bad])),
                    Err(ClientRuleError::RedirectUri(_))
                ),
                "{bad}"
            );
        }
        assert!(check_redirect_uris(&[]).is_err());
        assert!(
            check_redirect_uris(&uris(&["https://a.example/cb", "https://b.example/cb"])).is_err()
        );
        assert!(
            check_redirect_uris(&uris(&["https://a.example/cb", "https://a.example/cb"])).is_err()
        );
    }

    #[test]
    fn scopes_need_openid_and_the_token_syntax() {
        let s = |l: &[&str]| check_scopes(&uris(l));
        assert_eq!(s(&["openid"]), Ok(()));
        assert_eq!(s(&["openid", "profile"]), Ok(()));
        assert!(s(&["profile"]).is_err());
        assert!(s(&["openid", "a b"]).is_err());
        assert!(s(&["openid", "a\"b"]).is_err());
        assert!(s(&["openid", ""]).is_err());
        assert!(s(&["openid", "openid"]).is_err());
        assert!(s(&[]).is_err());
    }

    /// A P-256 public key whose point is on the curve.
    fn on_curve_key() -> ClientJwk {
        ClientJwk {
            kty: "EC".into(),
            crv: Some("P-256".into()),
            x: Some("f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU".into()),
            y: Some("x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0".into()),
            n: None,
            e: None,
        }
    }

    /// The modulus of a 2048-bit RSA key made with OpenSSL.
    const RSA_2048_N: &str = "yFp9lgZZ_2Ds5YtZFwAo1stJfuplbKo0rQVWQqJBoX96LrVU3eKcgau5x2hMmAHAqcWnCv3714O3IFr4sPU9uE_B8GrpjJZC41J1G6cW3iO2fVtMpgm9XdXLotabBO0t2I0F7BnCZXA7FwwHaqKCO-qQgKP2UESul72CdJNb2DiuvV4LeP_frlaC4DzVp7K0OLr0S7IoEwjdga2rnZoZwvceTNeL7nlESUcSJFrxqNicRJQABurzG57Sg5tkZv3qOagMmjRvk3Uyvbcm9bP9hmfbaYSutXUCvUF6fs_ADtmzfMEm62uSDlqgzuMJNrQCms1XrzS7v7zicSEjBvBqjQ";
    /// The modulus of a 1024-bit RSA key made with OpenSSL.
    const RSA_1024_N: &str = "u0lmshVn1_MK9IOzhWTlw2qyo6wNIo3gvr8YUuh10Y0PDhsCNAR4SWW8Vi2O2AHB9HbxcAZz-cTqP-jG5Vjwy_A5WqGmgYGIT3-OxX2IaEusI-9MpQbWSGKULSUtGuGcsf_8zRQk2cXo8_1MemGygeF32DUzrCq3RdEomnHygqE";

    fn rsa_key(n: &str, e: &str) -> ClientJwk {
        ClientJwk {
            kty: "RSA".into(),
            crv: None,
            x: None,
            y: None,
            n: Some(n.into()),
            e: Some(e.into()),
        }
    }

    #[test]
    fn a_p256_jwk_is_kept_in_its_thumbprint_form() {
        assert_eq!(
            check_jwk(&on_curve_key()),
            Ok(r#"{"crv":"P-256","kty":"EC","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#.to_owned())
        );
    }

    #[test]
    fn a_jwk_off_the_curve_or_of_another_type_is_refused() {
        let mut off_curve = on_curve_key();
        off_curve.y = Some("y_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0".into());
        assert_eq!(
            check_jwk(&off_curve),
            Err(ClientRuleError::Jwk("the point is not on the P-256 curve"))
        );
        let mut oct = on_curve_key();
        oct.kty = "oct".into();
        assert_eq!(
            check_jwk(&oct),
            Err(ClientRuleError::Jwk("kty must be EC or RSA"))
        );
        let mut p384 = on_curve_key();
        p384.crv = Some("P-384".into());
        assert_eq!(
            check_jwk(&p384),
            Err(ClientRuleError::Jwk("crv must be P-256"))
        );
        let mut short = on_curve_key();
        short.x = Some("AAAA".into());
        assert!(check_jwk(&short).is_err());
        let mut missing = on_curve_key();
        missing.y = None;
        assert!(check_jwk(&missing).is_err());
    }

    #[test]
    fn an_rsa_jwk_of_2048_bits_is_kept_in_its_thumbprint_form() {
        assert_eq!(
            check_jwk(&rsa_key(RSA_2048_N, "AQAB")),
            Ok(format!(r#"{{"e":"AQAB","kty":"RSA","n":"{RSA_2048_N}"}}"#))
        );
    }

    #[test]
    fn an_rsa_jwk_that_is_short_or_not_minimal_or_even_is_refused() {
        assert_eq!(
            check_jwk(&rsa_key(RSA_1024_N, "AQAB")),
            Err(ClientRuleError::Jwk(
                "the RSA modulus must have 2048 to 8192 bits"
            ))
        );
        // A leading zero byte (not the fewest octets, RFC 7518 6.3.1.1).
        let mut padded = vec![0u8];
        padded.extend(URL_SAFE_NO_PAD.decode(RSA_2048_N).unwrap());
        assert!(check_jwk(&rsa_key(&URL_SAFE_NO_PAD.encode(&padded), "AQAB")).is_err());
        // An even modulus, an even exponent, an exponent of 1, a missing one.
        let mut even = URL_SAFE_NO_PAD.decode(RSA_2048_N).unwrap();
        *even.last_mut().unwrap() &= 0xfe;
        assert!(check_jwk(&rsa_key(&URL_SAFE_NO_PAD.encode(&even), "AQAB")).is_err());
        assert!(check_jwk(&rsa_key(RSA_2048_N, "AQAA")).is_err());
        assert!(check_jwk(&rsa_key(RSA_2048_N, "AQ")).is_err());
        let mut no_e = rsa_key(RSA_2048_N, "AQAB");
        no_e.e = None;
        assert!(check_jwk(&no_e).is_err());
        // Padding is not base64url without padding.
        assert!(check_jwk(&rsa_key(RSA_2048_N, "AQAB==")).is_err());
    }

    #[test]
    fn only_the_issued_secret_matches_its_hash() {
        let secret = new_client_secret();
        let stored = secret_hash(&secret);
        assert!(secret_matches(&stored, &secret));
        assert!(!secret_matches(&stored, &new_client_secret()));
        assert!(!secret_matches(&stored, ""));
        assert!(new_client_id().starts_with("eidoc_"));
        assert_eq!(new_client_id().len(), 6 + 22);
        assert_eq!(secret.len(), 6 + 43);
    }
}
