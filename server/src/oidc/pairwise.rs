//! Pairwise subject identifiers (OpenID Connect Core 1.0, section 8.1):
//! the `sub` a client receives is HMAC-SHA256 over its sector and the
//! person's identity id, under a server secret of its own.
//!
//! The secret is not the ID-token signing key, so that rotating that key
//! does not change anyone's `sub`; it lives in `oidc-pairwise.key` in the
//! data folder (0600, 32 random bytes, base64url), created once on first
//! start. Losing it changes every `sub` at every service provider: it is
//! backed up with the database.

use std::path::Path;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use eid_protocol::IdentityId;
use zeroize::Zeroizing;

/// The secret's file name in the data folder.
pub const PAIRWISE_KEY_FILE: &str = "oidc-pairwise.key";

/// The server secret pairwise subjects are derived under.
pub struct PairwiseKey(ring::hmac::Key);

impl std::fmt::Debug for PairwiseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PairwiseKey(..)")
    }
}

impl PairwiseKey {
    /// Loads the secret from `data_dir`, creating it (0600) on first start.
    pub fn load_or_create(data_dir: &Path) -> anyhow::Result<Self> {
        let path = data_dir.join(PAIRWISE_KEY_FILE);
        if path.exists() {
            let text = Zeroizing::new(
                std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?,
            );
            let bytes = Zeroizing::new(
                URL_SAFE_NO_PAD
                    .decode(text.trim())
                    .ok()
                    .filter(|b| b.len() == 32)
                    .with_context(|| format!("{} is not 32 bytes in base64url", path.display()))?,
            );
            return Ok(Self::from_bytes(&bytes));
        }
        let bytes: Zeroizing<[u8; 32]> = Zeroizing::new(eid_protocol::crypto::random_array());
        let text = Zeroizing::new(URL_SAFE_NO_PAD.encode(*bytes));
        crate::write_private_file(&path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(Self::from_bytes(&*bytes))
    }

    /// The key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, bytes))
    }

    /// The `sub` of the person with `identity` at `sector`: base64url of
    /// HMAC-SHA256 over the sector's length (4 bytes, big-endian), the
    /// sector and the identity id, so that no two (sector, identity) pairs
    /// share an input.
    pub fn subject(&self, sector: &str, identity: IdentityId) -> String {
        let mut input = Vec::with_capacity(4 + sector.len() + 16);
        input.extend_from_slice(&(sector.len() as u32).to_be_bytes());
        input.extend_from_slice(sector.as_bytes());
        input.extend_from_slice(&identity.0);
        URL_SAFE_NO_PAD.encode(ring::hmac::sign(&self.0, &input).as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_person_has_one_sub_per_sector_and_different_subs_across_sectors() {
        let key = PairwiseKey::from_bytes(&[7; 32]);
        let person = IdentityId([1; 16]);
        let other = IdentityId([2; 16]);
        let bank = key.subject("bank.example", person);
        assert_eq!(bank, key.subject("bank.example", person));
        assert_ne!(bank, key.subject("shop.example", person));
        assert_ne!(bank, key.subject("bank.example", other));
        // 32 bytes, base64url; the identity id does not appear in it.
        assert_eq!(bank.len(), 43);
        assert!(!bank.contains(&hex::encode(person.0)));
        // Another server secret gives other subs.
        assert_ne!(
            bank,
            PairwiseKey::from_bytes(&[8; 32]).subject("bank.example", person)
        );
    }

    #[test]
    fn the_sub_is_hmac_sha256_over_the_length_prefixed_sector_and_identity() {
        // Computed independently with Python's hmac module:
        // hmac.new(b"\x07"*32, len(s).to_bytes(4,"big") + s + b"\x01"*16, sha256)
        // for s = b"bank.example".
        let key = PairwiseKey::from_bytes(&[7; 32]);
        assert_eq!(
            key.subject("bank.example", IdentityId([1; 16])),
            EXPECTED_SUB
        );
    }

    const EXPECTED_SUB: &str = "lrywv7tir5xJle7jRIL0LA-_aK7sf_ejqoUAVGcEQIw";

    #[test]
    fn the_secret_file_is_created_private_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let first = PairwiseKey::load_or_create(dir.path()).unwrap();
        let again = PairwiseKey::load_or_create(dir.path()).unwrap();
        let person = IdentityId([3; 16]);
        assert_eq!(first.subject("a", person), again.subject("a", person));
        let path = dir.path().join(PAIRWISE_KEY_FILE);
        assert_eq!(std::fs::read_to_string(&path).unwrap().len(), 43);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "too short").unwrap();
        assert!(PairwiseKey::load_or_create(dir.path()).is_err());
    }
}
