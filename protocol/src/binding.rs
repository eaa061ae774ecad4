//! Channel-binding codes: the code a login screen (or a new phone) shows and
//! the person types or scans into the app, so an approval is bound to the
//! screen in front of them.
//!
//! Codes are compared in one canonical form: ASCII letters and digits, upper
//! case, without the spaces and hyphens people add when typing. A scanned QR
//! code carries the same code behind the prefix [`QR_PREFIX`], so the app can
//! hand either a typed code or a scanned payload to the core.

/// Prefix of the QR payload of a binding code, versioned.
pub const QR_PREFIX: &str = "eid-bind:v1:";
/// Fewest characters in a canonical code.
pub const MIN_LEN: usize = 4;
/// Most characters in a canonical code.
pub const MAX_LEN: usize = 64;

/// Why a binding code (typed, scanned or set by a relying party) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BindingCodeError {
    /// Fewer than [`MIN_LEN`] or more than [`MAX_LEN`] letters and digits.
    #[error("a code has {MIN_LEN} to {MAX_LEN} letters and digits")]
    Length,
    /// A character other than ASCII letters, digits, spaces and hyphens.
    #[error("a code has only letters A-Z and digits (spaces and hyphens are ignored)")]
    Character,
    /// A scanned payload of another kind or version.
    #[error("this QR code is not an eID code")]
    UnknownPayload,
    /// A binding secret that is not 64 hex digits.
    #[error("a binding secret is 64 hex digits")]
    Secret,
}

/// The canonical form of a typed code or a scanned QR payload.
pub fn canonical_binding_code(input: &str) -> Result<String, BindingCodeError> {
    let input = input.trim();
    let code = match input.strip_prefix("eid-") {
        Some(_) => input
            .strip_prefix(QR_PREFIX)
            .ok_or(BindingCodeError::UnknownPayload)?,
        None => input,
    };
    if code.len() > 4 * MAX_LEN {
        return Err(BindingCodeError::Length);
    }
    let mut out = String::with_capacity(code.len());
    for c in code.chars() {
        match c {
            ' ' | '-' => {}
            c if c.is_ascii_alphanumeric() => out.push(c.to_ascii_uppercase()),
            _ => return Err(BindingCodeError::Character),
        }
    }
    if (MIN_LEN..=MAX_LEN).contains(&out.len()) {
        Ok(out)
    } else {
        Err(BindingCodeError::Length)
    }
}

/// The QR payload for a code (the code in canonical form behind [`QR_PREFIX`]).
pub fn qr_payload(code: &str) -> Result<String, BindingCodeError> {
    Ok(format!("{QR_PREFIX}{}", canonical_binding_code(code)?))
}

// ---------------------------------------------------------------- server-issued binding

/// Domain tag of the rotating code: `HMAC-SHA256(secret, ROTATING_DOMAIN || u64be(t))`.
pub const ROTATING_DOMAIN: &[u8] = b"eid-authenticator/v1/binding-rotating";
/// Length of a rotating code's time step (the QR changes every second).
pub const ROTATING_STEP_MS: u64 = 1_000;
/// Letters in a rotating (or server-issued short) code: 8 base32 letters, 40 bits.
pub const SHORT_CODE_LEN: usize = 8;
/// Bytes in a binding secret.
pub const SECRET_LEN: usize = 32;
/// How many steps before the server's current one a rotating code stays
/// valid: the time to scan and swipe (30 s). An older code (a photographed
/// QR replayed later) is refused.
pub const ACCEPT_PAST_STEPS: u64 = 30;
/// How many steps after the server's current one a rotating code is accepted
/// (clock skew between the login screen and the server).
pub const ACCEPT_FUTURE_STEPS: u64 = 3;
/// How the server stores a rotating binding in the request's binding-code
/// column: this prefix and the secret in hex. A canonical code has only
/// letters and digits, so it never contains the `:` and cannot be mistaken
/// for one.
pub const STORED_ROTATING_PREFIX: &str = "hmac-sha256-1s:";

/// RFC 4648 base32 alphabet (letters and 2-7: no 0/1/8/9 to misread).
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A per-request binding secret the server creates and hands to the relying
/// party (never to the phone). Serialized as 64 hex digits; `Debug` hides it;
/// zeroed on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct BindingSecret([u8; SECRET_LEN]);

impl std::fmt::Debug for BindingSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BindingSecret(<redacted>)")
    }
}

impl Drop for BindingSecret {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl BindingSecret {
    /// A fresh random secret.
    pub fn random() -> Self {
        Self(crate::crypto::random_array())
    }

    /// A secret from its bytes.
    pub fn from_bytes(bytes: [u8; SECRET_LEN]) -> Self {
        Self(bytes)
    }

    /// The secret's bytes.
    pub fn as_bytes(&self) -> &[u8; SECRET_LEN] {
        &self.0
    }

    /// The secret as 64 lower-case hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits (either case).
    pub fn from_hex(text: &str) -> Result<Self, BindingCodeError> {
        let mut out = [0u8; SECRET_LEN];
        hex::decode_to_slice(text.trim(), &mut out).map_err(|_| BindingCodeError::Secret)?;
        Ok(Self(out))
    }

    /// The code of time step `step` (`unix_ms / ROTATING_STEP_MS`): the first
    /// 40 bits of `HMAC-SHA256(secret, ROTATING_DOMAIN || u64be(step))` as 8
    /// base32 letters (canonical form).
    pub fn code_for_step(&self, step: u64) -> String {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.0);
        let mut ctx = ring::hmac::Context::with_key(&key);
        ctx.update(ROTATING_DOMAIN);
        ctx.update(&step.to_be_bytes());
        let tag = ctx.sign();
        base32_40(tag.as_ref())
    }

    /// The code a login screen shows at `unix_ms` (wall clock).
    pub fn code_at(&self, unix_ms: u64) -> String {
        self.code_for_step(unix_ms / ROTATING_STEP_MS)
    }

    /// The QR payload a login screen shows at `unix_ms`: `eid-bind:v1:<code>`.
    pub fn qr_payload_at(&self, unix_ms: u64) -> String {
        format!("{QR_PREFIX}{}", self.code_at(unix_ms))
    }

    /// Whether `presented` (canonical form) is the code of a step from
    /// [`ACCEPT_PAST_STEPS`] before to [`ACCEPT_FUTURE_STEPS`] after the step
    /// of `now_ms`. Every step of the window is compared in constant time and
    /// none ends the loop early.
    pub fn accepts(&self, presented: &str, now_ms: u64) -> bool {
        let now = now_ms / ROTATING_STEP_MS;
        let mut found = subtle::Choice::from(0);
        for step in now.saturating_sub(ACCEPT_PAST_STEPS)..=now.saturating_add(ACCEPT_FUTURE_STEPS)
        {
            let code = self.code_for_step(step);
            found |= subtle::ConstantTimeEq::ct_eq(code.as_bytes(), presented.as_bytes());
        }
        found.into()
    }
}

impl serde::Serialize for BindingSecret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for BindingSecret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::from_hex(&text)
            .map_err(|_| serde::de::Error::custom("a binding secret is 64 hex digits"))
    }
}

/// The first 40 bits of `bytes` as 8 base32 letters.
fn base32_40(bytes: &[u8]) -> String {
    let mut v = 0u64;
    for b in &bytes[..5] {
        v = (v << 8) | u64::from(*b);
    }
    (0..SHORT_CODE_LEN)
        .map(|i| char::from(BASE32[((v >> (35 - 5 * i)) & 31) as usize]))
        .collect()
}

/// A random short code to type (8 base32 letters, 40 bits), for a relying
/// party that asks the server for a typed code.
pub fn random_short_code() -> String {
    let bytes: [u8; 5] = crate::crypto::random_array();
    base32_40(&bytes)
}

/// What the server keeps for a request that needs a binding code.
#[derive(Clone, PartialEq, Eq)]
pub enum StoredBinding {
    /// One code for the request's lifetime (canonical form).
    Static(String),
    /// A code that changes every [`ROTATING_STEP_MS`], derived from the secret.
    Rotating(BindingSecret),
}

impl std::fmt::Debug for StoredBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoredBinding::Static(_) => f.write_str("Static(<redacted>)"),
            StoredBinding::Rotating(_) => f.write_str("Rotating(<redacted>)"),
        }
    }
}

impl StoredBinding {
    /// The stored text (the binding-code column).
    pub fn to_stored(&self) -> String {
        match self {
            StoredBinding::Static(code) => code.clone(),
            StoredBinding::Rotating(secret) => {
                format!("{STORED_ROTATING_PREFIX}{}", secret.to_hex())
            }
        }
    }

    /// Parses the stored text.
    pub fn from_stored(text: &str) -> Result<Self, BindingCodeError> {
        match text.strip_prefix(STORED_ROTATING_PREFIX) {
            Some(hex) => Ok(StoredBinding::Rotating(BindingSecret::from_hex(hex)?)),
            None => canonical_binding_code(text).map(StoredBinding::Static),
        }
    }

    /// Whether a presented code (canonical form) matches at `now_ms` (server
    /// clock). Constant time in the code.
    pub fn accepts(&self, presented: &str, now_ms: u64) -> bool {
        match self {
            StoredBinding::Static(expected) => {
                crate::crypto::constant_time_eq(presented.as_bytes(), expected.as_bytes())
            }
            StoredBinding::Rotating(secret) => secret.accepts(presented, now_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_and_scanned_codes_meet_in_one_form() {
        assert_eq!(canonical_binding_code("ab-12 cd").as_deref(), Ok("AB12CD"));
        assert_eq!(canonical_binding_code(" AB12CD\n").as_deref(), Ok("AB12CD"));
        assert_eq!(
            canonical_binding_code("eid-bind:v1:AB12CD").as_deref(),
            Ok("AB12CD")
        );
        assert_eq!(qr_payload("ab-12cd").as_deref(), Ok("eid-bind:v1:AB12CD"));
        assert_eq!(canonical_binding_code("ab1"), Err(BindingCodeError::Length));
        assert_eq!(
            canonical_binding_code(&"A".repeat(65)),
            Err(BindingCodeError::Length)
        );
        assert_eq!(
            canonical_binding_code("AB1Ø"),
            Err(BindingCodeError::Character)
        );
        assert_eq!(
            canonical_binding_code("AB\u{200b}12"),
            Err(BindingCodeError::Character)
        );
        assert_eq!(
            canonical_binding_code("eid-bind:v2:AB12CD"),
            Err(BindingCodeError::UnknownPayload)
        );
        assert_eq!(
            canonical_binding_code("----"),
            Err(BindingCodeError::Length)
        );
    }

    #[test]
    fn rotating_code_changes_every_second_and_is_canonical() {
        let secret = BindingSecret::from_bytes([7; SECRET_LEN]);
        let a = secret.code_at(1_000_000);
        assert_eq!(a, secret.code_at(1_000_999));
        assert_ne!(a, secret.code_at(1_001_000));
        assert_eq!(a.len(), SHORT_CODE_LEN);
        assert_eq!(canonical_binding_code(&a).as_deref(), Ok(a.as_str()));
        assert_eq!(
            canonical_binding_code(&secret.qr_payload_at(1_000_000)).as_deref(),
            Ok(a.as_str())
        );
        // Another secret, another code.
        assert_ne!(
            a,
            BindingSecret::from_bytes([8; SECRET_LEN]).code_at(1_000_000)
        );
    }

    #[test]
    fn rotating_code_window_is_thirty_seconds_back_and_three_ahead() {
        let secret = BindingSecret::from_bytes([7; SECRET_LEN]);
        let now = 1_764_133_200_500;
        for back in 0..=ACCEPT_PAST_STEPS {
            assert!(
                secret.accepts(&secret.code_at(now - back * 1000), now),
                "{back}"
            );
        }
        assert!(!secret.accepts(&secret.code_at(now - 31_000), now));
        assert!(!secret.accepts(&secret.code_at(now - 300_000), now));
        for ahead in 0..=ACCEPT_FUTURE_STEPS {
            assert!(secret.accepts(&secret.code_at(now + ahead * 1000), now));
        }
        assert!(!secret.accepts(&secret.code_at(now + 4_000), now));
        assert!(!secret.accepts("", now));
        assert!(!secret.accepts("AAAAAAAA", now));
        // Near zero the window does not underflow.
        assert!(secret.accepts(&secret.code_at(0), 500));
    }

    #[test]
    fn stored_binding_round_trips_and_never_confuses_a_code_with_a_secret() {
        let secret = BindingSecret::from_bytes([9; SECRET_LEN]);
        let stored = StoredBinding::Rotating(secret.clone()).to_stored();
        assert!(stored.starts_with(STORED_ROTATING_PREFIX));
        assert_eq!(
            StoredBinding::from_stored(&stored),
            Ok(StoredBinding::Rotating(secret))
        );
        assert_eq!(
            StoredBinding::from_stored("K742QX"),
            Ok(StoredBinding::Static("K742QX".into()))
        );
        assert_eq!(
            StoredBinding::from_stored("hmac-sha256-1s:zz"),
            Err(BindingCodeError::Secret)
        );
        // A static code can never carry the prefix (':' is not a code letter).
        assert!(canonical_binding_code(&stored).is_err());
    }

    #[test]
    fn secrets_stay_out_of_debug_and_serialize_as_hex() {
        let secret = BindingSecret::from_bytes([0xab; SECRET_LEN]);
        assert!(!format!("{secret:?}").contains("ab"));
        assert!(!format!("{:?}", StoredBinding::Rotating(secret.clone())).contains("ab"));
        assert!(!format!("{:?}", StoredBinding::Static("SECRET12".into())).contains("SECRET"));
        let json = serde_json::to_string(&secret).unwrap();
        assert_eq!(json, format!("\"{}\"", "ab".repeat(32)));
        assert_eq!(
            serde_json::from_str::<BindingSecret>(&json).unwrap(),
            secret
        );
        assert!(serde_json::from_str::<BindingSecret>("\"abcd\"").is_err());
        assert!(serde_json::from_str::<BindingSecret>(&format!("\"{}\"", "g".repeat(64))).is_err());
    }

    #[test]
    fn random_short_codes_are_canonical_and_differ() {
        let a = random_short_code();
        assert_eq!(a.len(), SHORT_CODE_LEN);
        assert_eq!(canonical_binding_code(&a).as_deref(), Ok(a.as_str()));
        assert_ne!(a, random_short_code());
    }
}
