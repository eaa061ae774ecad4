//! PIN policy, KDF calibration and the PIN-key wrap (why: `docs/threat-model.md`,
//! "Stolen phones, copied keys, guessing").
//!
//! Each authenticator has a *PIN key*: a software P-256 key whose PKCS#8 is sealed
//! with AES-256-GCM under
//! `HKDF-SHA256(salt, PBKDF2-HMAC-SHA256(PIN, salt, iterations) || keystore.hardware_secret(alias, salt))`.
//! The PIN itself is never stored; a GCM authentication failure is a wrong PIN.
//! Without the hardware secret the ciphertext cannot be attacked offline.

use std::time::{Duration, Instant};

use eid_protocol::crypto::{SoftwareSigningKey, random_array};
use ring::{aead, hkdf, pbkdf2};
use zeroize::Zeroizing;

use crate::keystore::{KeyStore, KeyStoreError};

/// Why a new PIN was refused. Each reason is distinct so the app can explain it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PinPolicyError {
    /// The PIN does not have the required number of digits.
    #[error("the PIN must have exactly {expected} digits")]
    WrongLength {
        /// Required length.
        expected: usize,
    },
    /// The PIN contains something other than the digits 0-9.
    #[error("the PIN may contain digits only")]
    NotDigits,
    /// All digits are the same (111111).
    #[error("all digits are the same")]
    AllSame,
    /// Ascending or descending sequence (123456, 654321, also wrapping 901234).
    #[error("the digits form a sequence")]
    Sequence,
    /// A short block repeated (121212, 123123).
    #[error("the PIN repeats a short pattern")]
    RepeatedPattern,
    /// The PIN reads as a date (DDMMYY, YYMMDD, MMDDYY; DDMMYYYY etc. for 8 digits).
    #[error("the PIN looks like a date")]
    Date,
    /// The PIN is on the list of commonly chosen PINs.
    #[error("the PIN is too common")]
    Common,
}

/// PINs people choose often that the other rules do not already catch.
const COMMON_PINS: &[&str] = &[
    "112233", "123321", "159753", "147258", "258369", "147852", "369258", "102030", "112211",
    "110011", "100200", "123654", "789456", "246810", "135790", "142536", "159357", "111222",
    "222333", "999000", "123789", "147369", "951753", "753951", "852456", "258456", "124578",
    "314159", "271828", "696900", "000123", "123000", "001122", "332211", "998877", "456123",
    "741852", "963852", "321654", "987456", "1379", "2580", "1470", "0852", "24682468", "13579135",
    "12344321", "11223344",
];

/// The PIN policy. `length` is 6 by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinPolicy {
    /// Exact number of digits.
    pub length: usize,
}

impl Default for PinPolicy {
    fn default() -> Self {
        Self { length: 6 }
    }
}

impl PinPolicy {
    /// Checks a new PIN against every rule, in a fixed order; the first broken
    /// rule is returned.
    pub fn check(&self, pin: &str) -> Result<(), PinPolicyError> {
        if !pin.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PinPolicyError::NotDigits);
        }
        if pin.len() != self.length {
            return Err(PinPolicyError::WrongLength {
                expected: self.length,
            });
        }
        let d: Vec<u8> = pin.bytes().map(|b| b - b'0').collect();
        if d.windows(2).all(|w| w[0] == w[1]) {
            return Err(PinPolicyError::AllSame);
        }
        let up = d.windows(2).all(|w| (w[0] + 1) % 10 == w[1]);
        let down = d.windows(2).all(|w| (w[1] + 1) % 10 == w[0]);
        if up || down {
            return Err(PinPolicyError::Sequence);
        }
        let n = d.len();
        if (2..n).any(|block| n.is_multiple_of(block) && d.chunks(block).all(|c| c == &d[..block]))
        {
            return Err(PinPolicyError::RepeatedPattern);
        }
        if looks_like_date(&d) {
            return Err(PinPolicyError::Date);
        }
        if COMMON_PINS.contains(&pin) {
            return Err(PinPolicyError::Common);
        }
        Ok(())
    }
}

fn num(d: &[u8]) -> u32 {
    d.iter().fold(0, |acc, &x| acc * 10 + u32::from(x))
}

fn valid_day_month(day: u32, month: u32) -> bool {
    let max = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 => 29,
        _ => return false,
    };
    (1..=max).contains(&day)
}

fn looks_like_date(d: &[u8]) -> bool {
    match d.len() {
        4 => {
            // DDMM, MMDD, or a year 1900-2099
            valid_day_month(num(&d[0..2]), num(&d[2..4]))
                || valid_day_month(num(&d[2..4]), num(&d[0..2]))
                || (1900..=2099).contains(&num(d))
        }
        6 => {
            let (a, b, c) = (num(&d[0..2]), num(&d[2..4]), num(&d[4..6]));
            valid_day_month(a, b) // DDMMYY
                || valid_day_month(c, b) // YYMMDD
                || valid_day_month(b, a) // MMDDYY
        }
        8 => {
            let year_last = (1900..=2099).contains(&num(&d[4..8]));
            let year_first = (1900..=2099).contains(&num(&d[0..4]));
            let ddmm = valid_day_month(num(&d[0..2]), num(&d[2..4])); // DDMMYYYY
            let mmdd = valid_day_month(num(&d[2..4]), num(&d[0..2])); // MMDDYYYY
            (year_last && (ddmm || mmdd))
                || (year_first && valid_day_month(num(&d[6..8]), num(&d[4..6]))) // YYYYMMDD
        }
        _ => false,
    }
}

/// Lowest PBKDF2 iteration count a calibration may choose.
pub const KDF_FLOOR_ITERATIONS: u32 = 100_000;
/// Highest PBKDF2 iteration count a calibration may choose.
pub const KDF_CEILING_ITERATIONS: u32 = 10_000_000;
/// Default calibration target (the design's ~150 ms; 100-250 ms is acceptable).
pub const KDF_DEFAULT_TARGET: Duration = Duration::from_millis(150);

/// How the PBKDF2 cost is chosen at activation (then stored per authenticator).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KdfCost {
    /// Measure this device and aim at the target time, never below
    /// [`KDF_FLOOR_ITERATIONS`]. The production setting.
    Calibrate {
        /// Target time of one PIN check.
        target: Duration,
    },
    /// A fixed iteration count. For tests only: no floor applies.
    Fixed(u32),
}

impl Default for KdfCost {
    fn default() -> Self {
        KdfCost::Calibrate {
            target: KDF_DEFAULT_TARGET,
        }
    }
}

impl KdfCost {
    /// The iteration count to use for a new PIN key.
    pub fn iterations(&self) -> u32 {
        match *self {
            KdfCost::Fixed(n) => n.max(1),
            KdfCost::Calibrate { target } => calibrate(target),
        }
    }
}

/// Measures PBKDF2-HMAC-SHA256 here and returns the iteration count that takes
/// about `target`, clamped to [`KDF_FLOOR_ITERATIONS`]..=[`KDF_CEILING_ITERATIONS`].
pub fn calibrate(target: Duration) -> u32 {
    const PROBE: u32 = 20_000;
    let mut out = [0u8; 32];
    let salt = [0u8; 32];
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            nonzero(PROBE),
            &salt,
            b"calibration",
            &mut out,
        );
        best = best.min(start.elapsed());
    }
    iterations_for(target, PROBE, best)
}

/// Scales a probe measurement to the target, clamped to the floor and ceiling.
pub fn iterations_for(target: Duration, probe_iterations: u32, probe_time: Duration) -> u32 {
    let per_iter_ns = (probe_time.as_nanos() / u128::from(probe_iterations.max(1))).max(1);
    let wanted = target.as_nanos() / per_iter_ns;
    u32::try_from(wanted)
        .unwrap_or(u32::MAX)
        .clamp(KDF_FLOOR_ITERATIONS, KDF_CEILING_ITERATIONS)
}

fn nonzero(n: u32) -> std::num::NonZeroU32 {
    std::num::NonZeroU32::new(n.max(1)).unwrap_or(std::num::NonZeroU32::MIN)
}

/// A PIN key sealed under the PIN (what the store keeps).
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedPinKey {
    /// Random salt for PBKDF2, HKDF and the hardware secret's input.
    pub salt: [u8; 32],
    /// AES-GCM nonce.
    pub nonce: [u8; 12],
    /// Sealed PKCS#8 plus tag.
    pub ciphertext: Vec<u8>,
    /// PBKDF2 iterations.
    pub iterations: u32,
}

impl std::fmt::Debug for WrappedPinKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WrappedPinKey")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// Why unwrapping failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnwrapError {
    /// Authentication failed: the PIN is wrong (or the hardware secret changed).
    #[error("wrong PIN")]
    WrongPin,
    /// The keystore failed.
    #[error(transparent)]
    KeyStore(#[from] KeyStoreError),
    /// The plaintext is not a usable key (corrupt store).
    #[error("the unwrapped PIN key is corrupt")]
    Corrupt,
}

const WRAP_INFO: &[u8] = b"eid-core/v1/pin-wrap-key";
const WRAP_AAD_DOMAIN: &[u8] = b"eid-core/v1/pin-key";

fn aad(pin_public_key: &[u8]) -> Vec<u8> {
    let mut v = WRAP_AAD_DOMAIN.to_vec();
    v.extend_from_slice(pin_public_key);
    v
}

fn wrapping_key(
    pin: &str,
    salt: &[u8; 32],
    iterations: u32,
    keystore: &dyn KeyStore,
    wrap_alias: &str,
) -> Result<aead::LessSafeKey, KeyStoreError> {
    let mut ikm = Zeroizing::new([0u8; 64]);
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        nonzero(iterations),
        salt,
        pin.as_bytes(),
        &mut ikm[..32],
    );
    let hw = Zeroizing::new(keystore.hardware_secret(wrap_alias, salt)?);
    if hw.len() != 32 {
        return Err(KeyStoreError::Failure(
            "hardware secret must be 32 bytes".into(),
        ));
    }
    ikm[32..].copy_from_slice(&hw);
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(&ikm[..]);
    let okm = prk
        .expand(&[WRAP_INFO], &aead::AES_256_GCM)
        .map_err(|_| KeyStoreError::Failure("hkdf".into()))?;
    Ok(aead::LessSafeKey::new(aead::UnboundKey::from(okm)))
}

/// Seals `key` under `pin` with fresh salt and nonce.
pub fn wrap_pin_key(
    key: &SoftwareSigningKey,
    pin: &str,
    iterations: u32,
    keystore: &dyn KeyStore,
    wrap_alias: &str,
) -> Result<WrappedPinKey, KeyStoreError> {
    let salt: [u8; 32] = random_array();
    let nonce: [u8; 12] = random_array();
    let sealing = wrapping_key(pin, &salt, iterations, keystore, wrap_alias)?;
    let mut buf = key.pkcs8().to_vec();
    let res = sealing.seal_in_place_append_tag(
        aead::Nonce::assume_unique_for_key(nonce),
        aead::Aad::from(aad(key.public_key().as_bytes())),
        &mut buf,
    );
    if res.is_err() {
        zeroize::Zeroize::zeroize(&mut buf);
        return Err(KeyStoreError::Failure("seal".into()));
    }
    Ok(WrappedPinKey {
        salt,
        nonce,
        ciphertext: buf,
        iterations,
    })
}

/// Opens a wrapped PIN key with `pin`; a wrong PIN is [`UnwrapError::WrongPin`].
pub fn unwrap_pin_key(
    wrapped: &WrappedPinKey,
    pin: &str,
    pin_public_key: &[u8],
    keystore: &dyn KeyStore,
    wrap_alias: &str,
) -> Result<SoftwareSigningKey, UnwrapError> {
    let opening = wrapping_key(pin, &wrapped.salt, wrapped.iterations, keystore, wrap_alias)?;
    let mut buf = Zeroizing::new(wrapped.ciphertext.clone());
    let plain = opening
        .open_in_place(
            aead::Nonce::assume_unique_for_key(wrapped.nonce),
            aead::Aad::from(aad(pin_public_key)),
            &mut buf,
        )
        .map_err(|_| UnwrapError::WrongPin)?;
    let key = SoftwareSigningKey::from_pkcs8(plain).map_err(|_| UnwrapError::Corrupt)?;
    if key.public_key().as_bytes().as_slice() != pin_public_key {
        return Err(UnwrapError::Corrupt);
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keystore::SoftwareKeyStore;

    #[test]
    fn policy_table() {
        let p = PinPolicy::default();
        let cases: &[(&str, Result<(), PinPolicyError>)] = &[
            ("483951", Ok(())),
            ("736194", Ok(())),
            ("12345", Err(PinPolicyError::WrongLength { expected: 6 })),
            ("1234567", Err(PinPolicyError::WrongLength { expected: 6 })),
            ("12a456", Err(PinPolicyError::NotDigits)),
            ("", Err(PinPolicyError::WrongLength { expected: 6 })),
            ("111111", Err(PinPolicyError::AllSame)),
            ("000000", Err(PinPolicyError::AllSame)),
            ("123456", Err(PinPolicyError::Sequence)),
            ("654321", Err(PinPolicyError::Sequence)),
            ("890123", Err(PinPolicyError::Sequence)),
            ("121212", Err(PinPolicyError::RepeatedPattern)),
            ("123123", Err(PinPolicyError::RepeatedPattern)),
            ("907907", Err(PinPolicyError::RepeatedPattern)),
            ("241299", Err(PinPolicyError::Date)), // DDMMYY
            ("991224", Err(PinPolicyError::Date)), // YYMMDD
            ("122499", Err(PinPolicyError::Date)), // MMDDYY
            ("290285", Err(PinPolicyError::Date)), // 29 Feb
            ("159753", Err(PinPolicyError::Common)),
            ("147258", Err(PinPolicyError::Common)),
            ("258369", Err(PinPolicyError::Common)),
        ];
        for (pin, want) in cases {
            assert_eq!(p.check(pin), *want, "pin {pin}");
        }
        let eight = PinPolicy { length: 8 };
        assert_eq!(eight.check("24121999"), Err(PinPolicyError::Date));
        assert_eq!(eight.check("19991224"), Err(PinPolicyError::Date));
        assert_eq!(eight.check("48091573"), Ok(()));
        assert_eq!(
            eight.check("12341234"),
            Err(PinPolicyError::RepeatedPattern)
        );
    }

    #[test]
    fn calibration_has_floor_and_ceiling() {
        // A very fast device still gets the floor.
        assert_eq!(
            iterations_for(Duration::from_millis(150), 20_000, Duration::from_secs(10)),
            KDF_FLOOR_ITERATIONS
        );
        assert_eq!(
            iterations_for(Duration::from_millis(150), 20_000, Duration::from_nanos(1)),
            KDF_CEILING_ITERATIONS
        );
        // 1 µs per iteration, 150 ms target: 150 000.
        assert_eq!(
            iterations_for(Duration::from_millis(150), 1000, Duration::from_millis(1)),
            150_000
        );
        let measured = calibrate(Duration::from_millis(1));
        assert_eq!(measured, KDF_FLOOR_ITERATIONS);
        assert_eq!(KdfCost::Fixed(0).iterations(), 1);
    }

    #[test]
    fn wrap_round_trip_and_wrong_pin() {
        let ks = SoftwareKeyStore::in_memory();
        let key = SoftwareSigningKey::generate();
        let wrapped = wrap_pin_key(&key, "480915", 10, &ks, "w").unwrap();
        assert!(!format!("{wrapped:?}").contains("ciphertext"));
        let pk = key.public_key().as_bytes();
        let back = unwrap_pin_key(&wrapped, "480915", pk, &ks, "w").unwrap();
        assert_eq!(back.public_key(), key.public_key());
        assert_eq!(
            unwrap_pin_key(&wrapped, "480916", pk, &ks, "w").err(),
            Some(UnwrapError::WrongPin)
        );
        // Another hardware secret (another phone) cannot open it even with the PIN.
        let other = SoftwareKeyStore::in_memory();
        assert_eq!(
            unwrap_pin_key(&wrapped, "480915", pk, &other, "w").err(),
            Some(UnwrapError::WrongPin)
        );
        // Bound to its public key.
        let other_key = SoftwareSigningKey::generate();
        assert_eq!(
            unwrap_pin_key(
                &wrapped,
                "480915",
                other_key.public_key().as_bytes(),
                &ks,
                "w"
            )
            .err(),
            Some(UnwrapError::WrongPin)
        );
    }
}
