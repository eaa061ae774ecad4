//! The platform keystore boundary (how an app implements it:
//! `docs/integration.md`, section 2) and a software implementation.
//!
//! [`KeyStore`] is what the Android and iOS shells implement (through uniffi,
//! later): byte vectors in, byte vectors out, private keys never cross it.
//! [`SoftwareKeyStore`] implements it on `ring` for host tests and the CLI
//! only: a copy of its file gives the device key and an offline PIN search.

use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use eid_protocol::crypto::{SoftwareSigningKey, random_array};
use zeroize::{Zeroize, Zeroizing};

/// Why a keystore call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyStoreError {
    /// No key under this alias.
    #[error("no key under this alias")]
    NotFound,
    /// The alias holds a key of another kind (signing vs. secret).
    #[error("the alias holds a key of another kind")]
    WrongKind,
    /// The keystore is unavailable or failed (text names the failure, no secrets).
    #[error("keystore failure: {0}")]
    Failure(String),
}

/// A hardware-backed (on phones) key store. Implementations must be thread-safe.
///
/// Aliases are chosen by the core, ASCII, at most 64 bytes.
pub trait KeyStore: Send + Sync {
    /// Creates a P-256 signing key under `alias` (replacing any key there) and
    /// returns its public key as a SEC1 uncompressed point (65 bytes).
    fn create_key(&self, alias: &str) -> Result<Vec<u8>, KeyStoreError>;
    /// Signs `message` with the key under `alias`: ECDSA P-256 over SHA-256 of
    /// `message` (the keystore hashes), DER-encoded.
    fn sign(&self, alias: &str, message: &[u8]) -> Result<Vec<u8>, KeyStoreError>;
    /// The public key under `alias`, SEC1 uncompressed.
    fn public_key(&self, alias: &str) -> Result<Vec<u8>, KeyStoreError>;
    /// Deletes whatever key is under `alias`. Deleting a missing key succeeds.
    fn delete_key(&self, alias: &str) -> Result<(), KeyStoreError>;
    /// HMAC-SHA256 of `input` under a non-exportable secret key held under
    /// `alias`, created on first use. Returns 32 bytes. (Android: a Keystore HMAC
    /// key; iOS: ECDH with a Secure Enclave key, hashed.)
    fn hardware_secret(&self, alias: &str, input: &[u8]) -> Result<Vec<u8>, KeyStoreError>;
}

enum Entry {
    Signing(Box<SoftwareSigningKey>),
    Secret(Zeroizing<[u8; 32]>),
}

/// A software [`KeyStore`] on `ring`, for host tests and the CLI. Not a
/// hardware keystore: its keys live in a file (mode 0600) or in memory only.
///
/// **Never in a release app.** The file holds the device key as plain PKCS#8
/// and the secret behind [`KeyStore::hardware_secret`] in the clear, in the
/// app folder. Whoever copies the folder (a backup, another local user when
/// the permissions are wrong, malware) signs as the device at once, and can
/// search the PIN offline without the attempt counter: at the calibrated
/// cost about 320 ms a guess on one core, about 81 hours for every PIN the
/// policy allows, less with more cores. A hardware keystore (the shells'
/// Android Keystore and Secure Enclave ones) keeps both non-exportable, so a
/// PIN guess needs the phone and counts. See `docs/threat-model.md`.
pub struct SoftwareKeyStore {
    path: Option<PathBuf>,
    entries: Mutex<HashMap<String, Entry>>,
}

impl fmt::Debug for SoftwareKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.entries.lock().map(|e| e.len()).unwrap_or(0);
        f.debug_struct("SoftwareKeyStore")
            .field("path", &self.path)
            .field("keys", &count)
            .finish()
    }
}

const FILE_NAME: &str = "software-keystore.v1";

impl SoftwareKeyStore {
    /// A keystore that forgets everything when dropped.
    pub fn in_memory() -> Self {
        Self {
            path: None,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Opens (or creates) a keystore persisted in `dir`, so keys survive restarts.
    pub fn open(dir: &Path) -> Result<Self, KeyStoreError> {
        std::fs::create_dir_all(dir).map_err(|e| io_failure("create dir", &e))?;
        let path = dir.join(FILE_NAME);
        let mut entries = HashMap::new();
        match std::fs::read(&path) {
            Ok(bytes) => {
                let bytes = Zeroizing::new(bytes);
                let text = std::str::from_utf8(&bytes)
                    .map_err(|_| KeyStoreError::Failure("corrupt keystore file".into()))?;
                for line in text.lines().filter(|l| !l.is_empty()) {
                    let (alias, entry) = parse_line(line)?;
                    entries.insert(alias, entry);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_failure("read", &e)),
        }
        Ok(Self {
            path: Some(path),
            entries: Mutex::new(entries),
        })
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, Entry>>, KeyStoreError> {
        self.entries
            .lock()
            .map_err(|_| KeyStoreError::Failure("keystore lock poisoned".into()))
    }

    /// Writes all entries atomically (temp file, fsync, rename).
    fn persist(&self, entries: &HashMap<String, Entry>) -> Result<(), KeyStoreError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let mut text = Zeroizing::new(String::new());
        for (alias, entry) in entries {
            let (kind, secret) = match entry {
                Entry::Signing(k) => ("sign", Zeroizing::new(STANDARD.encode(k.pkcs8()))),
                Entry::Secret(s) => ("hmac", Zeroizing::new(STANDARD.encode(s.as_slice()))),
            };
            text.push_str(kind);
            text.push(' ');
            text.push_str(&hex::encode(alias.as_bytes()));
            text.push(' ');
            text.push_str(&secret);
            text.push('\n');
        }
        let tmp = path.with_extension("tmp");
        {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options.open(&tmp).map_err(|e| io_failure("open", &e))?;
            file.write_all(text.as_bytes())
                .map_err(|e| io_failure("write", &e))?;
            file.sync_all().map_err(|e| io_failure("sync", &e))?;
        }
        std::fs::rename(&tmp, path).map_err(|e| io_failure("rename", &e))?;
        Ok(())
    }
}

fn io_failure(what: &str, e: &std::io::Error) -> KeyStoreError {
    KeyStoreError::Failure(format!("{what}: {}", e.kind()))
}

fn parse_line(line: &str) -> Result<(String, Entry), KeyStoreError> {
    let corrupt = || KeyStoreError::Failure("corrupt keystore file".into());
    let mut parts = line.split(' ');
    let (Some(kind), Some(alias), Some(secret), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(corrupt());
    };
    let alias =
        String::from_utf8(hex::decode(alias).map_err(|_| corrupt())?).map_err(|_| corrupt())?;
    let mut bytes = Zeroizing::new(STANDARD.decode(secret).map_err(|_| corrupt())?);
    let entry = match kind {
        "sign" => Entry::Signing(Box::new(
            SoftwareSigningKey::from_pkcs8(&bytes).map_err(|_| corrupt())?,
        )),
        "hmac" => {
            let mut arr = Zeroizing::new([0u8; 32]);
            if bytes.len() != 32 {
                return Err(corrupt());
            }
            arr.copy_from_slice(&bytes);
            bytes.zeroize();
            Entry::Secret(arr)
        }
        _ => return Err(corrupt()),
    };
    Ok((alias, entry))
}

fn check_alias(alias: &str) -> Result<(), KeyStoreError> {
    if alias.is_empty() || alias.len() > 64 || !alias.is_ascii() {
        return Err(KeyStoreError::Failure("invalid alias".into()));
    }
    Ok(())
}

impl KeyStore for SoftwareKeyStore {
    fn create_key(&self, alias: &str) -> Result<Vec<u8>, KeyStoreError> {
        check_alias(alias)?;
        let key = SoftwareSigningKey::generate();
        let public = key.public_key().as_bytes().to_vec();
        let mut entries = self.lock()?;
        let previous = entries.insert(alias.to_owned(), Entry::Signing(Box::new(key)));
        if let Err(e) = self.persist(&entries) {
            match previous {
                Some(p) => entries.insert(alias.to_owned(), p),
                None => entries.remove(alias),
            };
            return Err(e);
        }
        Ok(public)
    }

    fn sign(&self, alias: &str, message: &[u8]) -> Result<Vec<u8>, KeyStoreError> {
        match self.lock()?.get(alias) {
            Some(Entry::Signing(k)) => Ok(k.sign(message).0),
            Some(Entry::Secret(_)) => Err(KeyStoreError::WrongKind),
            None => Err(KeyStoreError::NotFound),
        }
    }

    fn public_key(&self, alias: &str) -> Result<Vec<u8>, KeyStoreError> {
        match self.lock()?.get(alias) {
            Some(Entry::Signing(k)) => Ok(k.public_key().as_bytes().to_vec()),
            Some(Entry::Secret(_)) => Err(KeyStoreError::WrongKind),
            None => Err(KeyStoreError::NotFound),
        }
    }

    fn delete_key(&self, alias: &str) -> Result<(), KeyStoreError> {
        let mut entries = self.lock()?;
        if entries.remove(alias).is_some() {
            self.persist(&entries)?;
        }
        Ok(())
    }

    fn hardware_secret(&self, alias: &str, input: &[u8]) -> Result<Vec<u8>, KeyStoreError> {
        check_alias(alias)?;
        let mut entries = self.lock()?;
        if !entries.contains_key(alias) {
            entries.insert(
                alias.to_owned(),
                Entry::Secret(Zeroizing::new(random_array::<32>())),
            );
            if let Err(e) = self.persist(&entries) {
                entries.remove(alias);
                return Err(e);
            }
        }
        match entries.get(alias) {
            Some(Entry::Secret(secret)) => {
                let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_slice());
                Ok(ring::hmac::sign(&key, input).as_ref().to_vec())
            }
            Some(Entry::Signing(_)) => Err(KeyStoreError::WrongKind),
            None => Err(KeyStoreError::NotFound),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eid_protocol::{PublicKey, Signature};

    #[test]
    fn sign_and_secret_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (public, secret) = {
            let ks = SoftwareKeyStore::open(dir.path()).unwrap();
            let public = ks.create_key("dev").unwrap();
            let secret = ks.hardware_secret("wrap", b"salt").unwrap();
            (public, secret)
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(FILE_NAME))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let ks = SoftwareKeyStore::open(dir.path()).unwrap();
        assert_eq!(ks.public_key("dev").unwrap(), public);
        assert_eq!(ks.hardware_secret("wrap", b"salt").unwrap(), secret);
        assert_ne!(ks.hardware_secret("wrap", b"other").unwrap(), secret);
        assert_eq!(secret.len(), 32);
        let sig = ks.sign("dev", b"msg").unwrap();
        let pk = PublicKey::from_sec1(&public).unwrap();
        pk.verify(b"msg", &Signature::from_der(&sig).unwrap())
            .unwrap();
        assert_eq!(ks.sign("wrap", b"x"), Err(KeyStoreError::WrongKind));
        ks.delete_key("dev").unwrap();
        ks.delete_key("dev").unwrap();
        let ks = SoftwareKeyStore::open(dir.path()).unwrap();
        assert_eq!(ks.sign("dev", b"x"), Err(KeyStoreError::NotFound));
        assert!(!format!("{ks:?}").contains(&STANDARD.encode(&secret)));
    }

    #[test]
    fn in_memory_is_independent() {
        let a = SoftwareKeyStore::in_memory();
        let b = SoftwareKeyStore::in_memory();
        assert_ne!(
            a.hardware_secret("w", b"s").unwrap(),
            b.hardware_secret("w", b"s").unwrap()
        );
        assert_eq!(b.public_key("x"), Err(KeyStoreError::NotFound));
    }
}
