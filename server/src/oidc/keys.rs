//! The ID-token signing key: ES256 (ECDSA P-256, SHA-256), a key of its own
//! in `oidc-id-token-key.pk8` in the data folder (0600), never the TLS key or
//! the key that signs requests and receipts. A service provider trusts it
//! through the JWKS endpoint, so rotating it does not touch the app's pinned
//! server key. Its `kid` is its RFC 7638 thumbprint.
//!
//! Rotation (docs/oidc.md, "Rotating the ID-token key") without a token a
//! client cannot verify: `eid-server --prepare-id-token-key` writes the next
//! key beside the current one, and the JWKS publishes both from the next
//! start; once clients have had time to fetch it (the JWKS may be cached for
//! 5 minutes), `eid-server --rotate-id-token-key` makes the next key the
//! current one and keeps the old one published as the previous key, so the
//! tokens it signed in their last 5 minutes still verify.

use std::path::Path;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use zeroize::Zeroizing;

/// The key file's name in the data folder.
pub const ID_TOKEN_KEY_FILE: &str = "oidc-id-token-key.pk8";
/// The next key, published before it signs (optional).
pub const NEXT_ID_TOKEN_KEY_FILE: &str = "oidc-id-token-key.next.pk8";
/// The key that signed until the last rotation, still published (optional).
pub const PREVIOUS_ID_TOKEN_KEY_FILE: &str = "oidc-id-token-key.previous.pk8";

/// A public signing key as the JWKS endpoint publishes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct PublicJwk {
    /// `EC`.
    pub kty: String,
    /// `P-256`.
    pub crv: String,
    /// The x coordinate, base64url (32 bytes).
    pub x: String,
    /// The y coordinate, base64url (32 bytes).
    pub y: String,
    /// The RFC 7638 thumbprint, base64url: the `kid` of every ID token it signs.
    pub kid: String,
    /// `ES256`.
    pub alg: String,
    /// `sig`.
    #[serde(rename = "use")]
    pub use_: String,
}

/// The ID-token signing key pair, and the other keys the JWKS publishes
/// beside it (the next and the previous one, when there are).
pub struct IdTokenKey {
    pair: EcdsaKeyPair,
    public: PublicJwk,
    others: Vec<PublicJwk>,
}

impl std::fmt::Debug for IdTokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdTokenKey")
            .field("kid", &self.public.kid)
            .finish_non_exhaustive()
    }
}

impl IdTokenKey {
    /// Loads the key from `data_dir`, creating it (0600) on first start,
    /// with the next and previous keys found there to publish beside it.
    pub fn load_or_create(data_dir: &Path) -> anyhow::Result<Self> {
        let path = data_dir.join(ID_TOKEN_KEY_FILE);
        let mut key = match read_key(&path)? {
            Some(key) => key,
            None => {
                create_key(&path)?;
                read_key(&path)?.context("the new ID-token key is gone")?
            }
        };
        for other in [NEXT_ID_TOKEN_KEY_FILE, PREVIOUS_ID_TOKEN_KEY_FILE] {
            if let Some(other) = read_key(&data_dir.join(other))? {
                key.others.push(other.public);
            }
        }
        Ok(key)
    }

    /// Every key the JWKS publishes: the signing key first.
    pub fn published(&self) -> Vec<PublicJwk> {
        std::iter::once(self.public.clone())
            .chain(self.others.iter().cloned())
            .collect()
    }

    /// The key from its PKCS#8 document.
    pub fn from_pkcs8(pkcs8: &[u8]) -> anyhow::Result<Self> {
        let pair = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8,
            &SystemRandom::new(),
        )
        .map_err(|_| anyhow::anyhow!("not a P-256 PKCS#8 key"))?;
        // Uncompressed SEC1: 0x04, x, y.
        let point = pair.public_key().as_ref();
        let x = URL_SAFE_NO_PAD.encode(&point[1..33]);
        let y = URL_SAFE_NO_PAD.encode(&point[33..65]);
        let kid = URL_SAFE_NO_PAD.encode(eid_protocol::sha256(thumbprint_input(&x, &y).as_bytes()));
        let public = PublicJwk {
            kty: "EC".into(),
            crv: "P-256".into(),
            x,
            y,
            kid,
            alg: "ES256".into(),
            use_: "sig".into(),
        };
        Ok(Self {
            pair,
            public,
            others: Vec::new(),
        })
    }

    /// The public key as a JWK.
    pub fn public_jwk(&self) -> &PublicJwk {
        &self.public
    }

    /// The key's `kid`.
    pub fn kid(&self) -> &str {
        &self.public.kid
    }

    /// A compact JWS (RFC 7515) over `claims` with the header
    /// `{"alg":"ES256","typ":"JWT","kid":...}`; the signature is R ‖ S, 64
    /// bytes (RFC 7518 section 3.4), which is ring's "fixed" format.
    pub fn sign_jwt(&self, claims: &serde_json::Value) -> anyhow::Result<String> {
        let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": self.public.kid});
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims)?)
        );
        let signature = self
            .pair
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .map_err(|_| anyhow::anyhow!("ID-token signing failed"))?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        ))
    }
}

/// The key in `path`, if the file exists.
fn read_key(path: &Path) -> anyhow::Result<Option<IdTokenKey>> {
    if !path.exists() {
        return Ok(None);
    }
    let bytes =
        Zeroizing::new(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?);
    IdTokenKey::from_pkcs8(&bytes)
        .map(Some)
        .with_context(|| format!("{} is not a P-256 PKCS#8 key", path.display()))
}

/// Writes a new P-256 key to `path` (0600).
fn create_key(path: &Path) -> anyhow::Result<()> {
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .map_err(|_| anyhow::anyhow!("could not generate the ID-token key"))?;
    crate::write_private_file(path, pkcs8.as_ref())
        .with_context(|| format!("writing {}", path.display()))
}

/// Writes the next ID-token key into `data_dir` unless there is one; returns
/// its `kid`. The JWKS publishes it from the next start; it signs nothing
/// until [`rotate_id_token_key`].
pub fn prepare_next_id_token_key(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join(NEXT_ID_TOKEN_KEY_FILE);
    if !path.exists() {
        create_key(&path)?;
    }
    Ok(read_key(&path)?
        .context("the next ID-token key is gone")?
        .kid()
        .to_owned())
}

/// Makes the next key the signing key and the signing key the previous one
/// (replacing an older previous key); returns the new signing key's `kid`.
/// Refused without a next key: a key that was never published would sign
/// tokens no client could verify until it fetched the JWKS again.
pub fn rotate_id_token_key(data_dir: &Path) -> anyhow::Result<String> {
    let next = data_dir.join(NEXT_ID_TOKEN_KEY_FILE);
    let current = data_dir.join(ID_TOKEN_KEY_FILE);
    let kid = read_key(&next)?
        .context("there is no next ID-token key: run --prepare-id-token-key, restart, and wait until clients have fetched the JWKS (5 minutes) first")?
        .kid()
        .to_owned();
    if current.exists() {
        std::fs::rename(&current, data_dir.join(PREVIOUS_ID_TOKEN_KEY_FILE))
            .context("moving the signing key to the previous key")?;
    }
    std::fs::rename(&next, &current).context("making the next key the signing key")?;
    Ok(kid)
}

/// The RFC 7638 thumbprint input of a P-256 key: its required members in
/// lexicographic order, no white space.
fn thumbprint_input(x: &str, y: &str) -> String {
    format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed P-256 key as PKCS#8, written by another implementation
    /// (Python's `cryptography`), whose public half and thumbprint were
    /// computed there too.
    fn fixed_pkcs8() -> Vec<u8> {
        hex::decode(
            "308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b0201010420\
             8e9b109e719098bf980487df1f5d77e9c2cd71f9fbf95a7b6c3dd5e6ed1342ac\
             a144034200\
             04d9b9eae2ac42f558640965feaec175d0d78403f06b0901eb0a0962921b7afadb\
             e125678bda44c8c2bdc69dcb328200c482d19e2d846b1a78934c99845840abbb",
        )
        .unwrap()
    }

    #[test]
    fn the_kid_is_the_rfc7638_thumbprint_of_the_public_key() {
        let key = IdTokenKey::from_pkcs8(&fixed_pkcs8()).unwrap();
        assert_eq!(
            key.public_jwk().x,
            "2bnq4qxC9VhkCWX-rsF10NeEA_BrCQHrCglikht6-ts"
        );
        assert_eq!(
            key.public_jwk().y,
            "4SVni9pEyMK9xp3LMoIAxILRni2Eaxp4k0yZhFhAq7s"
        );
        // SHA-256 over {"crv":"P-256","kty":"EC","x":"2bnq…","y":"4SVn…"},
        // computed with another implementation (Python's hashlib).
        assert_eq!(key.kid(), FIXED_KID);
    }

    const FIXED_KID: &str = "P9IT-OEPXO_eiKLivisjSX0fEKdXQKJ2RAch0-qPA8E";

    #[test]
    fn a_signed_jwt_verifies_with_the_published_key_and_names_its_kid() {
        let key = IdTokenKey::from_pkcs8(&fixed_pkcs8()).unwrap();
        let jwt = key
            .sign_jwt(&serde_json::json!({"iss": "https://eid.example", "sub": "x"}))
            .unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(
            header,
            serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": FIXED_KID})
        );
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        assert_eq!(signature.len(), 64);
        let mut point = vec![0x04];
        point.extend(URL_SAFE_NO_PAD.decode(&key.public_jwk().x).unwrap());
        point.extend(URL_SAFE_NO_PAD.decode(&key.public_jwk().y).unwrap());
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_FIXED,
            point,
        );
        let input = format!("{}.{}", parts[0], parts[1]);
        assert!(public.verify(input.as_bytes(), &signature).is_ok());
        assert!(public.verify(b"other", &signature).is_err());
    }

    #[test]
    fn the_next_key_is_published_before_it_signs_and_the_previous_after_a_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let first = IdTokenKey::load_or_create(dir.path()).unwrap();
        assert_eq!(first.published(), vec![first.public_jwk().clone()]);
        assert!(
            rotate_id_token_key(dir.path()).is_err(),
            "no rotation to an unpublished key"
        );
        let next_kid = prepare_next_id_token_key(dir.path()).unwrap();
        assert_eq!(
            prepare_next_id_token_key(dir.path()).unwrap(),
            next_kid,
            "once"
        );
        let before = IdTokenKey::load_or_create(dir.path()).unwrap();
        assert_eq!(before.kid(), first.kid(), "the current key still signs");
        let kids: Vec<String> = before.published().into_iter().map(|k| k.kid).collect();
        assert_eq!(kids, vec![first.kid().to_owned(), next_kid.clone()]);

        assert_eq!(rotate_id_token_key(dir.path()).unwrap(), next_kid);
        let after = IdTokenKey::load_or_create(dir.path()).unwrap();
        assert_eq!(after.kid(), next_kid, "the next key signs now");
        let kids: Vec<String> = after.published().into_iter().map(|k| k.kid).collect();
        assert_eq!(
            kids,
            vec![next_kid, first.kid().to_owned()],
            "the old key stays published"
        );
        #[cfg(unix)]
        for file in [ID_TOKEN_KEY_FILE, PREVIOUS_ID_TOKEN_KEY_FILE] {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
    }

    #[test]
    fn the_key_file_is_created_private_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let first = IdTokenKey::load_or_create(dir.path()).unwrap();
        let again = IdTokenKey::load_or_create(dir.path()).unwrap();
        assert_eq!(first.public_jwk(), again.public_jwk());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(ID_TOKEN_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
