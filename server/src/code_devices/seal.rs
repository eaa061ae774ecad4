//! Code-device seeds at rest: AES-256-GCM (`ring`) under a key-encryption
//! key that lives in a file of the data folder, `code-device-kek.key`
//! (0600, 32 random bytes in base64url, created on first start), never in
//! the database. A copy of the database alone therefore yields no seed.
//!
//! Each sealed seed is `nonce (12) || ciphertext || tag (16)` with a fresh
//! random nonce, and the device's serial number (under a domain tag) as
//! associated data: a sealed seed copied onto another device's row does not
//! open there.

use std::path::Path;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroizing;

/// The key-encryption key's file name in the data folder.
pub const KEK_FILE: &str = "code-device-kek.key";
/// Domain tag in front of the serial in the associated data.
const AAD_DOMAIN: &[u8] = b"eid-authenticator/v1/code-device-seed/";

/// Why a sealed seed did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Wrong key, another device's seed, or a damaged value.
    #[error("the sealed seed does not open under this key for this serial")]
    DoesNotOpen,
}

/// The key-encryption key of code-device seeds.
pub struct Kek(LessSafeKey);

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kek(..)")
    }
}

fn aad(serial: &str) -> Vec<u8> {
    let mut out = AAD_DOMAIN.to_vec();
    out.extend_from_slice(serial.as_bytes());
    out
}

impl Kek {
    /// Loads the key from `data_dir`, creating it (0600) on first start.
    pub fn load_or_create(data_dir: &Path) -> anyhow::Result<Self> {
        let path = data_dir.join(KEK_FILE);
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
            let bytes: Zeroizing<[u8; 32]> =
                Zeroizing::new(bytes.as_slice().try_into().expect("checked length"));
            return Ok(Self::from_bytes(&bytes));
        }
        let bytes: Zeroizing<[u8; 32]> = Zeroizing::new(eid_protocol::crypto::random_array());
        let text = Zeroizing::new(URL_SAFE_NO_PAD.encode(*bytes));
        crate::write_private_file(&path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(Self::from_bytes(&bytes))
    }

    /// The key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self(LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, bytes).expect("32 bytes is an AES-256 key"),
        ))
    }

    /// Seals `seed` for the device `serial`.
    pub fn seal(&self, serial: &str, seed: &[u8]) -> Vec<u8> {
        let nonce: [u8; NONCE_LEN] = eid_protocol::crypto::random_array();
        let mut in_out = seed.to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(serial)),
                &mut in_out,
            )
            .expect("a seed is far below AES-GCM's length limit");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&in_out);
        zeroize::Zeroize::zeroize(&mut in_out);
        out
    }

    /// Opens the sealed seed of the device `serial`.
    pub fn open(&self, serial: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        if sealed.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(SealError::DoesNotOpen);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::DoesNotOpen)?;
        let mut in_out = Zeroizing::new(ciphertext.to_vec());
        let len = self
            .0
            .open_in_place(nonce, Aad::from(aad(serial)), &mut in_out)
            .map_err(|_| SealError::DoesNotOpen)?
            .len();
        in_out.truncate(len);
        Ok(in_out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_seed_opens_only_for_its_serial_under_its_key() {
        let kek = Kek::from_bytes(&[1; 32]);
        let sealed = kek.seal("CD0001", b"12345678901234567890");
        assert_eq!(sealed.len(), 12 + 20 + 16);
        assert!(!sealed.windows(20).any(|w| w == b"12345678901234567890"));
        assert_eq!(
            kek.open("CD0001", &sealed).unwrap().as_slice(),
            b"12345678901234567890"
        );
        assert_eq!(kek.open("CD0002", &sealed), Err(SealError::DoesNotOpen));
        assert_eq!(
            Kek::from_bytes(&[2; 32]).open("CD0001", &sealed),
            Err(SealError::DoesNotOpen)
        );
        let mut flipped = sealed.clone();
        flipped[20] ^= 1;
        assert_eq!(kek.open("CD0001", &flipped), Err(SealError::DoesNotOpen));
        assert_eq!(kek.open("CD0001", &[0; 10]), Err(SealError::DoesNotOpen));
    }

    #[test]
    fn two_seals_of_one_seed_differ() {
        let kek = Kek::from_bytes(&[1; 32]);
        assert_ne!(kek.seal("A", b"seed"), kek.seal("A", b"seed"));
    }

    #[test]
    fn the_key_file_is_created_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let first = Kek::load_or_create(dir.path()).unwrap();
        let sealed = first.seal("S", b"0123456789abcdef");
        let again = Kek::load_or_create(dir.path()).unwrap();
        assert_eq!(
            again.open("S", &sealed).unwrap().as_slice(),
            b"0123456789abcdef"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join(KEK_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
