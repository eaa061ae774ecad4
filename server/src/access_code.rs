//! Access codes: the password a person chooses for a code device or a chip,
//! typed on the login page after the device's own proof (MitID's order).
//!
//! An access code is checked centrally, so the server keeps only an Argon2id
//! hash of it (the `argon2` crate, RustCrypto; a maintained implementation of
//! RFC 9106 rather than our own). The hash is a PHC string, so the
//! parameters travel with it and can be raised later without a migration:
//! [`verify`] reads them from the stored string and [`needs_rehash`] says when
//! a stored hash is weaker than today's.
//!
//! The code itself is held in [`Zeroizing`] buffers, is never logged and has
//! no `Debug` or `Display` of its own.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use unicode_normalization::UnicodeNormalization;
use zeroize::Zeroizing;

/// Shortest access code, in characters.
pub const MIN_LEN: usize = 8;
/// Longest access code, in characters (bounds the hashing work per attempt).
pub const MAX_LEN: usize = 64;

/// Argon2id memory cost in KiB (19 MiB, the OWASP minimum for Argon2id).
const MEMORY_KIB: u32 = 19 * 1024;
/// Argon2id passes.
const PASSES: u32 = 2;
/// Argon2id lanes.
const LANES: u32 = 1;

/// Access codes too common to allow (compared after NFC and lower-casing).
const COMMON: &[&str] = &[
    "12345678",
    "123456789",
    "1234567890",
    "87654321",
    "password",
    "password1",
    "adgangskode",
    "qwertyui",
    "qwerty123",
    "11111111",
    "00000000",
    "abcdefgh",
    "abcd1234",
    "mitid123",
];

/// Why a chosen access code was refused. Messages are shown to the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccessCodeError {
    /// Too short or too long.
    #[error("an access code has {MIN_LEN} to {MAX_LEN} characters")]
    Length,
    /// A control or other invisible character.
    #[error("an access code may not contain control characters")]
    Character,
    /// One character repeated, a run like 12345678, or a well-known password.
    #[error("this access code is too easy to guess")]
    Common,
    /// Contains the person's user ID.
    #[error("an access code must not contain your user ID")]
    ContainsUserId,
}

/// An Argon2id hash of an access code, as a PHC string (algorithm, version,
/// parameters, salt and hash). Not secret, but shown nowhere.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessCodeHash(String);

impl AccessCodeHash {
    /// Wraps a PHC string read from the store.
    pub fn from_stored(phc: String) -> Self {
        Self(phc)
    }

    /// The PHC string, to store.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for AccessCodeHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessCodeHash(..)")
    }
}

/// Checks a newly chosen access code against the rules; returns it in NFC.
/// `user_id` is the person's user ID, which the code must not contain.
pub fn check(code: &str, user_id: &str) -> Result<Zeroizing<String>, AccessCodeError> {
    let nfc = Zeroizing::new(code.nfc().collect::<String>());
    let len = nfc.chars().count();
    if !(MIN_LEN..=MAX_LEN).contains(&len) {
        return Err(AccessCodeError::Length);
    }
    if nfc.chars().any(char::is_control) {
        return Err(AccessCodeError::Character);
    }
    let folded = Zeroizing::new(nfc.to_lowercase());
    if COMMON.contains(&folded.as_str()) || one_repeated(&folded) || one_run(&folded) {
        return Err(AccessCodeError::Common);
    }
    let user_id = crate::userid::fold(user_id);
    if !user_id.is_empty() && folded.contains(&user_id) {
        return Err(AccessCodeError::ContainsUserId);
    }
    Ok(nfc)
}

/// Hashes an access code (already [`check`]ed) with a fresh salt.
pub fn hash(code: &str) -> AccessCodeHash {
    let nfc = Zeroizing::new(code.nfc().collect::<String>());
    let salt = fresh_salt();
    let phc = hasher()
        .hash_password(nfc.as_bytes(), &salt)
        .expect("Argon2id with fixed valid parameters cannot fail")
        .to_string();
    AccessCodeHash(phc)
}

/// Whether `code` matches `stored`. The comparison inside `argon2` is in
/// constant time; a malformed stored hash matches nothing.
pub fn verify(stored: &AccessCodeHash, code: &str) -> bool {
    if code.chars().count() > MAX_LEN {
        return false;
    }
    let nfc = Zeroizing::new(code.nfc().collect::<String>());
    let Ok(parsed) = PasswordHash::new(&stored.0) else {
        return false;
    };
    // The stored string's own algorithm and parameters are used, so hashes
    // made under older parameters still verify.
    Argon2::default()
        .verify_password(nfc.as_bytes(), &parsed)
        .is_ok()
}

/// Whether `stored` was made with weaker parameters than [`hash`] uses
/// today, so that the caller re-hashes after a successful [`verify`].
pub fn needs_rehash(stored: &AccessCodeHash) -> bool {
    let Ok(parsed) = PasswordHash::new(&stored.0) else {
        return true;
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return true;
    };
    parsed.algorithm.as_str() != "argon2id"
        || params.m_cost() < MEMORY_KIB
        || params.t_cost() < PASSES
}

/// 16 random bytes from the system's generator (ring's), as a PHC salt.
fn fresh_salt() -> SaltString {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .expect("the system's random generator is available");
    SaltString::encode_b64(&bytes).expect("16 bytes make a valid salt")
}

fn hasher() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None)
        .expect("the Argon2id parameters are valid constants");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn one_repeated(s: &str) -> bool {
    let mut chars = s.chars();
    let first = chars.next();
    first.is_some_and(|f| chars.all(|c| c == f))
}

/// A run of consecutive characters up or down (12345678, hgfedcba).
fn one_run(s: &str) -> bool {
    let codes: Vec<u32> = s.chars().map(u32::from).collect();
    let step = |d: i64| {
        codes
            .windows(2)
            .all(|w| i64::from(w[1]) - i64::from(w[0]) == d)
    };
    codes.len() > 1 && (step(1) || step(-1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_good_access_code_hashes_and_verifies_and_a_wrong_one_does_not() {
        let code = check("Blue-kettle 42", "anna.2024!").expect("allowed");
        let stored = hash(&code);
        assert!(
            stored
                .as_str()
                .starts_with("$argon2id$v=19$m=19456,t=2,p=1$")
        );
        assert!(verify(&stored, "Blue-kettle 42"));
        assert!(!verify(&stored, "Blue-kettle 43"));
        assert!(!verify(&stored, ""));
        assert!(!needs_rehash(&stored));
    }

    #[test]
    fn two_hashes_of_one_code_differ_by_their_salt() {
        assert_ne!(hash("Blue-kettle 42"), hash("Blue-kettle 42"));
    }

    #[test]
    fn the_code_is_compared_in_nfc_so_both_spellings_of_an_accent_match() {
        let stored = hash("Smørrebrød caf\u{e9}");
        assert!(verify(&stored, "Smørrebrød cafe\u{301}"));
    }

    #[test]
    fn short_long_control_common_and_user_id_codes_are_refused() {
        assert_eq!(check("short", "u").unwrap_err(), AccessCodeError::Length);
        assert_eq!(
            check(&"x".repeat(MAX_LEN + 1), "u").unwrap_err(),
            AccessCodeError::Length
        );
        assert_eq!(
            check("abc\u{7}defgh", "u").unwrap_err(),
            AccessCodeError::Character
        );
        assert_eq!(check("Password", "u").unwrap_err(), AccessCodeError::Common);
        assert_eq!(check("77777777", "u").unwrap_err(), AccessCodeError::Common);
        assert_eq!(check("23456789", "u").unwrap_err(), AccessCodeError::Common);
        assert_eq!(check("hgfedcba", "u").unwrap_err(), AccessCodeError::Common);
        assert_eq!(
            check("my Anna.2024! code", "anna.2024!").unwrap_err(),
            AccessCodeError::ContainsUserId
        );
    }

    #[test]
    fn a_malformed_or_weaker_stored_hash_never_verifies_or_asks_for_a_rehash() {
        let junk = AccessCodeHash::from_stored("not a phc string".into());
        assert!(!verify(&junk, "anything at all"));
        assert!(needs_rehash(&junk));
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8 * 1024, 1, 1, None).expect("valid"),
        )
        .hash_password(b"Blue-kettle 42", &fresh_salt())
        .expect("hashes")
        .to_string();
        let weak = AccessCodeHash::from_stored(weak);
        assert!(verify(&weak, "Blue-kettle 42"));
        assert!(needs_rehash(&weak));
    }

    #[test]
    fn the_debug_form_shows_no_hash() {
        assert_eq!(
            format!("{:?}", hash("Blue-kettle 42")),
            "AccessCodeHash(..)"
        );
    }
}
