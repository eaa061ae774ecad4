//! Time-based one-time codes (RFC 6238) over HOTP (RFC 4226), as a code
//! display shows them and an audio code reader reads them out: HMAC-SHA1 or
//! HMAC-SHA256 from `ring`, dynamic truncation, six digits, a 30 or 60 s
//! time step counted from the Unix epoch.
//!
//! Only the computation is here; which steps a check tries and the rule
//! that a step is accepted once live in [`super::check`].

use ring::hmac;
use subtle::ConstantTimeEq;

/// The HMAC a device computes its codes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// HMAC-SHA1 (RFC 4226's own; nearly every device on the market).
    Sha1,
    /// HMAC-SHA256 (RFC 6238 allows it).
    Sha256,
}

impl Algorithm {
    /// The stored name: `sha1`, `sha256`.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha256 => "sha256",
        }
    }

    /// The algorithm of a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "sha1" => Some(Algorithm::Sha1),
            "sha256" => Some(Algorithm::Sha256),
            _ => None,
        }
    }

    fn ring(self) -> hmac::Algorithm {
        match self {
            // SHA-1 is still sound inside HMAC; RFC 4226 devices use it.
            Algorithm::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Algorithm::Sha256 => hmac::HMAC_SHA256,
        }
    }
}

/// The only code length the server takes (the devices and the login page
/// both use six digits).
pub const DIGITS: u32 = 6;

/// A device's parameters: its HMAC, code length and time step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// The HMAC.
    pub algorithm: Algorithm,
    /// Digits per code (6 for every device the server takes; RFC test
    /// vectors also use 8).
    pub digits: u32,
    /// Seconds per time step (30 or 60).
    pub step_secs: u64,
}

/// The HOTP value (RFC 4226 section 5.3) of `counter` under `seed`, as a
/// zero-padded decimal string of `digits` digits.
pub fn hotp(algorithm: Algorithm, seed: &[u8], counter: u64, digits: u32) -> String {
    let key = hmac::Key::new(algorithm.ring(), seed);
    let tag = hmac::sign(&key, &counter.to_be_bytes());
    let mac = tag.as_ref();
    // Dynamic truncation: the low nibble of the last byte picks 4 bytes.
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let binary = u32::from_be_bytes([
        mac[offset] & 0x7f,
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]);
    let modulus = 10u64.pow(digits);
    format!(
        "{:0width$}",
        u64::from(binary) % modulus,
        width = digits as usize
    )
}

/// The time step of `unix_secs` for a `step_secs` step (RFC 6238 T, with
/// T0 = 0).
pub fn step_at(unix_secs: u64, step_secs: u64) -> u64 {
    unix_secs / step_secs.max(1)
}

/// The code of time step `step`.
pub fn code_for_step(params: Params, seed: &[u8], step: u64) -> String {
    hotp(params.algorithm, seed, step, params.digits)
}

/// Whether `typed` is the code of `step`, compared in constant time.
pub fn matches(params: Params, seed: &[u8], step: u64, typed: &str) -> bool {
    bool::from(
        code_for_step(params, seed, step)
            .as_bytes()
            .ct_eq(typed.as_bytes()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4226 appendix D: the seed "12345678901234567890", counters 0-9.
    #[test]
    fn the_rfc4226_test_values_come_out() {
        let seed = b"12345678901234567890";
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, code) in expected.iter().enumerate() {
            assert_eq!(hotp(Algorithm::Sha1, seed, counter as u64, 6), *code);
        }
    }

    /// RFC 6238 appendix B, SHA-1 and SHA-256, 8 digits, 30 s steps (the
    /// SHA-256 seed is the 32-byte repetition of the ASCII digits).
    #[test]
    fn the_rfc6238_test_values_come_out() {
        let sha1_seed = b"12345678901234567890";
        let sha256_seed = b"12345678901234567890123456789012";
        let cases: [(u64, &str, &str); 6] = [
            (59, "94287082", "46119246"),
            (1_111_111_109, "07081804", "68084774"),
            (1_111_111_111, "14050471", "67062674"),
            (1_234_567_890, "89005924", "91819424"),
            (2_000_000_000, "69279037", "90698825"),
            (20_000_000_000, "65353130", "77737706"),
        ];
        for (time, sha1, sha256) in cases {
            let step = step_at(time, 30);
            assert_eq!(hotp(Algorithm::Sha1, sha1_seed, step, 8), sha1, "{time}");
            assert_eq!(
                hotp(Algorithm::Sha256, sha256_seed, step, 8),
                sha256,
                "{time}"
            );
        }
    }

    #[test]
    fn six_digit_codes_are_the_last_six_of_the_eight_and_keep_leading_zeros() {
        let seed = b"12345678901234567890";
        let step = step_at(1_111_111_109, 30);
        assert_eq!(hotp(Algorithm::Sha1, seed, step, 6), "081804");
        let params = Params {
            algorithm: Algorithm::Sha1,
            digits: 6,
            step_secs: 30,
        };
        assert!(matches(params, seed, step, "081804"));
        assert!(!matches(params, seed, step, "81804"));
        assert!(!matches(params, seed, step + 1, "081804"));
    }

    #[test]
    fn a_sixty_second_step_spans_two_thirty_second_ones() {
        assert_eq!(step_at(59, 60), 0);
        assert_eq!(step_at(60, 60), 1);
        assert_eq!(step_at(119, 60), 1);
        assert_eq!(step_at(59, 30), 1);
    }

    #[test]
    fn algorithms_parse_back_from_their_names() {
        for a in [Algorithm::Sha1, Algorithm::Sha256] {
            assert_eq!(Algorithm::parse(a.as_str()), Some(a));
        }
        assert_eq!(Algorithm::parse("md5"), None);
    }
}
