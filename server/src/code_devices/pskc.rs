//! The manufacturer's batch of code devices: a PSKC document (RFC 6030)
//! whose seeds are encrypted under a pre-shared key (section 6.1:
//! AES-128-CBC, with an HMAC over each encrypted value under a MAC key
//! that is itself encrypted under the pre-shared key).
//!
//! What is refused, and why:
//! - a seed in plain text, or encrypted any other way (PBKDF2, asymmetric):
//!   seeds travel encrypted under the key agreed with the manufacturer, or
//!   not at all;
//! - an encrypted seed without a `ValueMAC`, or with a wrong one: AES-CBC
//!   alone does not tell a tampered ciphertext from a good one, so a
//!   missing MAC would let anyone on the way swap seeds unnoticed (other OTP
//!   servers have accepted such batches). The MAC is checked before the
//!   seed is decrypted (encrypt-then-MAC);
//! - anything but TOTP with six decimal digits, a 30 or 60 s step from the
//!   Unix epoch, HMAC-SHA1 or HMAC-SHA256;
//! - a document type declaration (roxmltree refuses DTDs by default, so no
//!   entity is ever expanded), more than [`MAX_DOCUMENT_BYTES`] or
//!   [`MAX_DEVICES`], a device without a serial number, a serial twice.
//!
//! The XML is read with `roxmltree` (a maintained, dependency-free,
//! read-only tree; docs/authenticators.md says why). Seeds are held in
//! [`Zeroizing`] buffers and never appear in `Debug`.

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockModeDecrypt, KeyIvInit};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::hmac;
use zeroize::Zeroizing;

use super::totp::{Algorithm, DIGITS, Params};

/// The PSKC namespace.
const NS_PSKC: &str = "urn:ietf:params:xml:ns:keyprov:pskc";
/// XML Signature (key names, HMAC method names).
const NS_DS: &str = "http://www.w3.org/2000/09/xmldsig#";
/// XML Encryption (encrypted values).
const NS_XENC: &str = "http://www.w3.org/2001/04/xmlenc#";
/// The one encryption the server takes: AES-128-CBC under the pre-shared key.
const AES128_CBC: &str = "http://www.w3.org/2001/04/xmlenc#aes128-cbc";
/// HMAC-SHA1 for `ValueMAC` (RFC 6030's example).
const HMAC_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#hmac-sha1";
/// HMAC-SHA256 for `ValueMAC`.
const HMAC_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256";
/// The TOTP algorithm's URI.
const ALG_TOTP: &str = "urn:ietf:params:xml:ns:keyprov:pskc:totp";

/// The largest batch document taken, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 4 * 1024 * 1024;
/// The most devices one batch may hold.
pub const MAX_DEVICES: usize = 100_000;
/// The longest serial number, in bytes.
pub const MAX_SERIAL_LEN: usize = 64;

/// Why a batch was refused. Nothing of a refused batch is stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PskcError {
    /// Larger than [`MAX_DOCUMENT_BYTES`] or more than [`MAX_DEVICES`].
    #[error("the batch is too large")]
    TooLarge,
    /// Not well-formed XML, or it has a document type declaration.
    #[error("the batch is not well-formed XML without a DTD: {0}")]
    Xml(String),
    /// The root is not a PSKC `KeyContainer` of version 1.0.
    #[error("the document is not a PSKC 1.0 KeyContainer")]
    NotPskc,
    /// No `KeyPackage` with a key.
    #[error("the batch holds no device")]
    Empty,
    /// No `EncryptionKey`/`MACMethod` for pre-shared-key encryption.
    #[error("the batch is not encrypted with a pre-shared key and a MAC key")]
    NotPreSharedKey,
    /// An encryption or MAC algorithm other than AES-128-CBC and
    /// HMAC-SHA1/SHA256.
    #[error("unsupported encryption or MAC algorithm: {0}")]
    UnsupportedEncryption(String),
    /// The MAC key does not decrypt under the pre-shared key.
    #[error("the pre-shared key does not decrypt the MAC key")]
    WrongPreSharedKey,
    /// A seed is in plain text.
    #[error("device {serial}: the seed is not encrypted")]
    Unencrypted {
        /// The device.
        serial: String,
    },
    /// An encrypted seed without a `ValueMAC`.
    #[error("device {serial}: the encrypted seed has no ValueMAC")]
    MissingMac {
        /// The device.
        serial: String,
    },
    /// A `ValueMAC` that does not match its encrypted seed.
    #[error("device {serial}: the ValueMAC does not match the encrypted seed")]
    BadMac {
        /// The device.
        serial: String,
    },
    /// A seed whose ciphertext is malformed (base64, length, padding).
    #[error("device {serial}: the encrypted seed is malformed")]
    BadCiphertext {
        /// The device.
        serial: String,
    },
    /// Not TOTP with six decimal digits, a 30 or 60 s step from the epoch,
    /// HMAC-SHA1 or HMAC-SHA256.
    #[error("device {serial}: unsupported key ({what})")]
    UnsupportedKey {
        /// The device.
        serial: String,
        /// What is not supported.
        what: &'static str,
    },
    /// A key package without `DeviceInfo/SerialNo`, or a serial that is
    /// empty, too long or not printable ASCII.
    #[error("a device has no usable serial number")]
    BadSerial,
    /// The same serial twice in the batch.
    #[error("device {serial} appears twice")]
    DuplicateSerial {
        /// The device.
        serial: String,
    },
}

/// One key of a batch, decrypted and checked.
pub struct KeyEntry {
    /// The device's serial number (`DeviceInfo/SerialNo`).
    pub serial: String,
    /// The key's algorithm URI.
    pub algorithm_uri: String,
    /// `ResponseFormat/@Length` (digits).
    pub digits: u32,
    /// `ResponseFormat/@Encoding`.
    pub encoding: String,
    /// `Data/TimeInterval` in seconds (RFC 6030 default 30).
    pub time_interval: u64,
    /// `Data/Time` (T0), 0 when absent.
    pub time_origin: u64,
    /// `AlgorithmParameters/Suite`, when given.
    pub suite: Option<String>,
    /// The decrypted seed.
    pub seed: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for KeyEntry {
    // The seed is the device's secret: never in a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyEntry")
            .field("serial", &self.serial)
            .field("algorithm_uri", &self.algorithm_uri)
            .field("digits", &self.digits)
            .field("time_interval", &self.time_interval)
            .finish_non_exhaustive()
    }
}

/// One code device of a batch, ready to be sealed and stored.
pub struct BatchDevice {
    /// The serial number.
    pub serial: String,
    /// Its TOTP parameters.
    pub params: Params,
    /// Its seed.
    pub seed: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for BatchDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchDevice")
            .field("serial", &self.serial)
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

/// A parsed batch.
#[derive(Debug)]
pub struct Batch {
    /// The `KeyContainer`'s `Id`, when it has one.
    pub id: Option<String>,
    /// Its devices, in document order.
    pub devices: Vec<BatchDevice>,
}

/// Parses a batch and checks every device is a TOTP device the server
/// takes: [`parse_keys`], then the TOTP rules.
pub fn parse_batch(xml: &str, pre_shared_key: &[u8; 16]) -> Result<Batch, PskcError> {
    let (id, keys) = parse_keys(xml, pre_shared_key)?;
    let devices = keys
        .into_iter()
        .map(totp_device)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Batch { id, devices })
}

fn totp_device(key: KeyEntry) -> Result<BatchDevice, PskcError> {
    let unsupported = |what| PskcError::UnsupportedKey {
        serial: key.serial.clone(),
        what,
    };
    if key.algorithm_uri != ALG_TOTP {
        return Err(unsupported("not TOTP"));
    }
    if key.digits != DIGITS || key.encoding != "DECIMAL" {
        return Err(unsupported("not six decimal digits"));
    }
    if !matches!(key.time_interval, 30 | 60) {
        return Err(unsupported("time step not 30 or 60 s"));
    }
    if key.time_origin != 0 {
        return Err(unsupported("time origin not the Unix epoch"));
    }
    let algorithm = match key.suite.as_deref() {
        None | Some("HMAC-SHA1") => Algorithm::Sha1,
        Some("HMAC-SHA256") => Algorithm::Sha256,
        Some(_) => return Err(unsupported("HMAC not SHA1 or SHA256")),
    };
    if key.seed.len() < 16 {
        return Err(unsupported("seed shorter than 128 bits"));
    }
    Ok(BatchDevice {
        serial: key.serial,
        params: Params {
            algorithm,
            digits: key.digits,
            step_secs: key.time_interval,
        },
        seed: key.seed,
    })
}

fn pskc<'a, 'i>(node: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    node.children()
        .find(|c| c.is_element() && c.has_tag_name((NS_PSKC, name)))
}

fn in_ns<'a, 'i>(
    node: roxmltree::Node<'a, 'i>,
    ns: &str,
    name: &str,
) -> Option<roxmltree::Node<'a, 'i>> {
    node.children()
        .find(|c| c.is_element() && c.has_tag_name((ns, name)))
}

/// The base64 text of an element, whitespace removed (RFC 6030's examples
/// wrap it).
fn base64_of(node: roxmltree::Node<'_, '_>) -> Option<Vec<u8>> {
    let text: String = node
        .text()
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    STANDARD.decode(text).ok()
}

/// An `xenc` encrypted value's algorithm and IV-prefixed ciphertext.
fn encrypted(node: roxmltree::Node<'_, '_>) -> Option<(String, Vec<u8>)> {
    let method = in_ns(node, NS_XENC, "EncryptionMethod")?
        .attribute("Algorithm")?
        .to_owned();
    let value = in_ns(in_ns(node, NS_XENC, "CipherData")?, NS_XENC, "CipherValue")?;
    Some((method, base64_of(value)?))
}

/// AES-128-CBC with the IV in front and PKCS#7 padding (XML Encryption).
fn decrypt(key: &[u8; 16], iv_and_ciphertext: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if iv_and_ciphertext.len() < 32 || !iv_and_ciphertext.len().is_multiple_of(16) {
        return None;
    }
    let (iv, ciphertext) = iv_and_ciphertext.split_at(16);
    let iv: [u8; 16] = iv.try_into().ok()?;
    cbc::Decryptor::<aes::Aes128>::new(key.into(), &iv.into())
        .decrypt_padded_vec::<Pkcs7>(ciphertext)
        .ok()
        .map(Zeroizing::new)
}

fn serial_ok(serial: &str) -> bool {
    !serial.is_empty()
        && serial.len() <= MAX_SERIAL_LEN
        && serial.bytes().all(|b| b.is_ascii_graphic())
}

/// Parses a PSKC document encrypted with `pre_shared_key` and returns the
/// container's `Id` and every key, each seed's `ValueMAC` checked and the
/// seed decrypted. Any refusal refuses the whole batch.
pub fn parse_keys(
    xml: &str,
    pre_shared_key: &[u8; 16],
) -> Result<(Option<String>, Vec<KeyEntry>), PskcError> {
    if xml.len() > MAX_DOCUMENT_BYTES {
        return Err(PskcError::TooLarge);
    }
    let doc = roxmltree::Document::parse(xml).map_err(|e| PskcError::Xml(e.to_string()))?;
    let root = doc.root_element();
    if !root.has_tag_name((NS_PSKC, "KeyContainer")) || root.attribute("Version") != Some("1.0") {
        return Err(PskcError::NotPskc);
    }
    let packages: Vec<_> = root
        .children()
        .filter(|c| c.is_element() && c.has_tag_name((NS_PSKC, "KeyPackage")))
        .collect();
    if packages.is_empty() {
        return Err(PskcError::Empty);
    }
    if packages.len() > MAX_DEVICES {
        return Err(PskcError::TooLarge);
    }
    // Pre-shared-key encryption: a named key and a MAC key encrypted under it.
    let named = pskc(root, "EncryptionKey")
        .and_then(|k| in_ns(k, NS_DS, "KeyName"))
        .is_some();
    let mac_method = pskc(root, "MACMethod").ok_or(PskcError::NotPreSharedKey)?;
    if !named {
        return Err(PskcError::NotPreSharedKey);
    }
    let mac_algorithm = match mac_method.attribute("Algorithm") {
        Some(HMAC_SHA1) => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        Some(HMAC_SHA256) => hmac::HMAC_SHA256,
        other => {
            return Err(PskcError::UnsupportedEncryption(
                other.unwrap_or("none").to_owned(),
            ));
        }
    };
    let (mac_key_method, mac_key_ciphertext) = pskc(mac_method, "MACKey")
        .and_then(encrypted)
        .ok_or(PskcError::NotPreSharedKey)?;
    if mac_key_method != AES128_CBC {
        return Err(PskcError::UnsupportedEncryption(mac_key_method));
    }
    let mac_key =
        decrypt(pre_shared_key, &mac_key_ciphertext).ok_or(PskcError::WrongPreSharedKey)?;
    let mac_key = hmac::Key::new(mac_algorithm, &mac_key);

    let mut keys = Vec::with_capacity(packages.len());
    let mut seen = std::collections::HashSet::new();
    for package in packages {
        let serial = pskc(package, "DeviceInfo")
            .and_then(|d| pskc(d, "SerialNo"))
            .and_then(|s| s.text())
            .map(str::trim)
            .filter(|s| serial_ok(s))
            .ok_or(PskcError::BadSerial)?
            .to_owned();
        if !seen.insert(serial.clone()) {
            return Err(PskcError::DuplicateSerial { serial });
        }
        let key = pskc(package, "Key").ok_or_else(|| PskcError::UnsupportedKey {
            serial: serial.clone(),
            what: "no key",
        })?;
        let unsupported = |what| PskcError::UnsupportedKey {
            serial: serial.clone(),
            what,
        };
        let parameters = pskc(key, "AlgorithmParameters");
        let format = parameters.and_then(|p| pskc(p, "ResponseFormat"));
        let digits = format
            .and_then(|f| f.attribute("Length"))
            .and_then(|l| l.parse::<u32>().ok())
            .ok_or_else(|| unsupported("no response length"))?;
        let encoding = format
            .and_then(|f| f.attribute("Encoding"))
            .unwrap_or_default()
            .to_owned();
        let suite = parameters
            .and_then(|p| pskc(p, "Suite"))
            .and_then(|s| s.text())
            .map(|s| s.trim().to_owned());
        let data = pskc(key, "Data").ok_or_else(|| unsupported("no data"))?;
        let plain_number = |name: &str, default: u64| -> Result<u64, PskcError> {
            match pskc(data, name) {
                None => Ok(default),
                Some(node) => pskc(node, "PlainValue")
                    .and_then(|v| v.text())
                    .and_then(|t| t.trim().parse::<u64>().ok())
                    .ok_or_else(|| unsupported("a time parameter is not a plain number")),
            }
        };
        let time_interval = plain_number("TimeInterval", 30)?;
        let time_origin = plain_number("Time", 0)?;
        let secret = pskc(data, "Secret").ok_or_else(|| unsupported("no secret"))?;
        if pskc(secret, "PlainValue").is_some() {
            return Err(PskcError::Unencrypted { serial });
        }
        let value = pskc(secret, "EncryptedValue").ok_or_else(|| PskcError::Unencrypted {
            serial: serial.clone(),
        })?;
        let (method, ciphertext) = encrypted(value).ok_or_else(|| PskcError::BadCiphertext {
            serial: serial.clone(),
        })?;
        if method != AES128_CBC {
            return Err(PskcError::UnsupportedEncryption(method));
        }
        let Some(tag) = pskc(secret, "ValueMAC") else {
            return Err(PskcError::MissingMac { serial });
        };
        let tag = base64_of(tag).ok_or_else(|| PskcError::BadMac {
            serial: serial.clone(),
        })?;
        // RFC 6030 section 6.1.1: the MAC is over the IV and ciphertext.
        if hmac::verify(&mac_key, &ciphertext, &tag).is_err() {
            return Err(PskcError::BadMac { serial });
        }
        let seed =
            decrypt(pre_shared_key, &ciphertext).ok_or_else(|| PskcError::BadCiphertext {
                serial: serial.clone(),
            })?;
        keys.push(KeyEntry {
            serial,
            algorithm_uri: key.attribute("Algorithm").unwrap_or_default().to_owned(),
            digits,
            encoding,
            time_interval,
            time_origin,
            suite,
            seed,
        });
    }
    Ok((root.attribute("Id").map(str::to_owned), keys))
}

/// Test batches: the server's own tests, the CLI's and the demo build
/// PSKC documents with these.
pub mod build {
    use aes::cipher::block_padding::Pkcs7;
    use aes::cipher::{BlockModeEncrypt, KeyIvInit};
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use ring::hmac;

    use super::super::totp::{Algorithm, Params};

    fn encrypt(key: &[u8; 16], plaintext: &[u8]) -> Vec<u8> {
        let iv: [u8; 16] = eid_protocol::crypto::random_array();
        let ciphertext = cbc::Encryptor::<aes::Aes128>::new(key.into(), &iv.into())
            .encrypt_padded_vec::<Pkcs7>(plaintext);
        let mut out = iv.to_vec();
        out.extend_from_slice(&ciphertext);
        out
    }

    /// A PSKC document (RFC 6030 section 6.1) holding `devices` (serial,
    /// parameters, seed), encrypted under `pre_shared_key` with a fresh
    /// MAC key.
    pub fn batch_document(
        pre_shared_key: &[u8; 16],
        label: &str,
        devices: &[(&str, Params, &[u8])],
    ) -> String {
        let mac_key: [u8; 20] = eid_protocol::crypto::random_array();
        let hmac_key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &mac_key);
        let mut xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <KeyContainer Version=\"1.0\" Id=\"{label}\" \
             xmlns=\"urn:ietf:params:xml:ns:keyprov:pskc\" \
             xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" \
             xmlns:xenc=\"http://www.w3.org/2001/04/xmlenc#\">\n\
             <EncryptionKey><ds:KeyName>Pre-shared-key</ds:KeyName></EncryptionKey>\n\
             <MACMethod Algorithm=\"http://www.w3.org/2000/09/xmldsig#hmac-sha1\"><MACKey>\
             <xenc:EncryptionMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#aes128-cbc\"/>\
             <xenc:CipherData><xenc:CipherValue>{}</xenc:CipherValue></xenc:CipherData>\
             </MACKey></MACMethod>\n",
            STANDARD.encode(encrypt(pre_shared_key, &mac_key))
        );
        for (serial, params, seed) in devices {
            let ciphertext = encrypt(pre_shared_key, seed);
            let mac = hmac::sign(&hmac_key, &ciphertext);
            let suite = match params.algorithm {
                Algorithm::Sha1 => "HMAC-SHA1",
                Algorithm::Sha256 => "HMAC-SHA256",
            };
            xml.push_str(&format!(
                "<KeyPackage><DeviceInfo><Manufacturer>Demo</Manufacturer>\
                 <SerialNo>{serial}</SerialNo></DeviceInfo>\
                 <Key Id=\"{serial}\" Algorithm=\"urn:ietf:params:xml:ns:keyprov:pskc:totp\">\
                 <AlgorithmParameters><Suite>{suite}</Suite>\
                 <ResponseFormat Length=\"{}\" Encoding=\"DECIMAL\"/></AlgorithmParameters>\
                 <Data><Secret><EncryptedValue>\
                 <xenc:EncryptionMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#aes128-cbc\"/>\
                 <xenc:CipherData><xenc:CipherValue>{}</xenc:CipherValue></xenc:CipherData>\
                 </EncryptedValue><ValueMAC>{}</ValueMAC></Secret>\
                 <Time><PlainValue>0</PlainValue></Time>\
                 <TimeInterval><PlainValue>{}</PlainValue></TimeInterval></Data></Key>\
                 </KeyPackage>\n",
                params.digits,
                STANDARD.encode(&ciphertext),
                STANDARD.encode(mac.as_ref()),
                params.step_secs,
            ));
        }
        xml.push_str("</KeyContainer>\n");
        xml
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6030 section 6.1's pre-shared key.
    const RFC_KEY: [u8; 16] = [
        0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56, 0x78, 0x90,
        0x12,
    ];

    /// RFC 6030 figure 6 (section 6.1), as printed.
    const RFC_FIGURE_6: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<KeyContainer Version="1.0"
    xmlns="urn:ietf:params:xml:ns:keyprov:pskc"
    xmlns:ds="http://www.w3.org/2000/09/xmldsig#"
    xmlns:xenc="http://www.w3.org/2001/04/xmlenc#">
    <EncryptionKey>
        <ds:KeyName>Pre-shared-key</ds:KeyName>
    </EncryptionKey>
    <MACMethod Algorithm="http://www.w3.org/2000/09/xmldsig#hmac-sha1">
        <MACKey>
            <xenc:EncryptionMethod
            Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>
            <xenc:CipherData>
                <xenc:CipherValue>
    ESIzRFVmd4iZABEiM0RVZgKn6WjLaTC1sbeBMSvIhRejN9vJa2BOlSaMrR7I5wSX
                </xenc:CipherValue>
            </xenc:CipherData>
        </MACKey>
    </MACMethod>
    <KeyPackage>
        <DeviceInfo>
            <Manufacturer>Manufacturer</Manufacturer>
            <SerialNo>987654321</SerialNo>
        </DeviceInfo>
        <CryptoModuleInfo>
            <Id>CM_ID_001</Id>
        </CryptoModuleInfo>
        <Key Id="12345678"
            Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:hotp">
            <Issuer>Issuer</Issuer>
            <AlgorithmParameters>
                <ResponseFormat Length="8" Encoding="DECIMAL"/>
            </AlgorithmParameters>
            <Data>
                <Secret>
                    <EncryptedValue>
                        <xenc:EncryptionMethod
            Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>
                        <xenc:CipherData>
                            <xenc:CipherValue>
        AAECAwQFBgcICQoLDA0OD+cIHItlB3Wra1DUpxVvOx2lef1VmNPCMl8jwZqIUqGv
                            </xenc:CipherValue>
                        </xenc:CipherData>
                    </EncryptedValue>
                    <ValueMAC>Su+NvtQfmvfJzF6bmQiJqoLRExc=
                    </ValueMAC>
                </Secret>
                <Counter>
                    <PlainValue>0</PlainValue>
                </Counter>
            </Data>
        </Key>
    </KeyPackage>
</KeyContainer>
"#;

    /// RFC 6030 figure 2 (section 5): a seed in plain text.
    const RFC_FIGURE_2: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<KeyContainer Version="1.0"
    Id="exampleID1"
    xmlns="urn:ietf:params:xml:ns:keyprov:pskc">
    <KeyPackage>
        <DeviceInfo>
            <Manufacturer>Manufacturer</Manufacturer>
            <SerialNo>987654321</SerialNo>
            <UserId>DC=example-bank,DC=net</UserId>
        </DeviceInfo>
        <CryptoModuleInfo>
            <Id>CM_ID_001</Id>
        </CryptoModuleInfo>
        <Key Id="12345678"
            Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:hotp">
            <Issuer>Issuer</Issuer>
            <AlgorithmParameters>
                <ResponseFormat Length="8" Encoding="DECIMAL"/>
            </AlgorithmParameters>
            <Data>
                <Secret>
                    <PlainValue>MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=
                    </PlainValue>
                </Secret>
                <Counter>
                    <PlainValue>0</PlainValue>
                </Counter>
            </Data>
            <UserId>UID=jsmith,DC=example-bank,DC=net</UserId>
        </Key>
    </KeyPackage>
</KeyContainer>
"#;

    /// Figure 6 turned into a six-digit TOTP key, everything encrypted
    /// kept byte for byte (the MAC covers the encrypted seed only).
    fn rfc_as_totp() -> String {
        RFC_FIGURE_6
            .replace(
                "urn:ietf:params:xml:ns:keyprov:pskc:hotp",
                "urn:ietf:params:xml:ns:keyprov:pskc:totp",
            )
            .replace("Length=\"8\"", "Length=\"6\"")
            .replace(
                "<Counter>\n                    <PlainValue>0</PlainValue>\n                </Counter>",
                "<TimeInterval><PlainValue>30</PlainValue></TimeInterval>",
            )
    }

    #[test]
    fn the_rfc6030_pre_shared_key_example_decrypts_to_its_seed() {
        let (id, keys) = parse_keys(RFC_FIGURE_6, &RFC_KEY).unwrap();
        assert_eq!(id, None);
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].serial, "987654321");
        assert_eq!(keys[0].seed.as_slice(), b"12345678901234567890");
        assert_eq!(keys[0].digits, 8);
        assert_eq!(
            keys[0].algorithm_uri,
            "urn:ietf:params:xml:ns:keyprov:pskc:hotp"
        );
    }

    #[test]
    fn the_rfc6030_hotp_example_is_not_a_code_device_the_server_takes() {
        assert!(matches!(
            parse_batch(RFC_FIGURE_6, &RFC_KEY),
            Err(PskcError::UnsupportedKey {
                what: "not TOTP",
                ..
            })
        ));
    }

    #[test]
    fn the_rfc6030_example_as_totp_is_a_batch_of_one_device() {
        let batch = parse_batch(&rfc_as_totp(), &RFC_KEY).unwrap();
        assert_eq!(batch.devices.len(), 1);
        let device = &batch.devices[0];
        assert_eq!(device.serial, "987654321");
        assert_eq!(
            device.params,
            Params {
                algorithm: Algorithm::Sha1,
                digits: 6,
                step_secs: 30
            }
        );
        assert_eq!(device.seed.as_slice(), b"12345678901234567890");
        assert!(
            !format!("{batch:?}").contains("1234567890"),
            "no seed in Debug"
        );
    }

    #[test]
    fn a_plain_text_seed_is_refused() {
        assert!(matches!(
            parse_keys(RFC_FIGURE_2, &RFC_KEY),
            Err(PskcError::NotPreSharedKey)
        ));
        // Even inside an otherwise encrypted batch.
        let mixed = RFC_FIGURE_6.replace(
            "<Secret>",
            "<Secret><PlainValue>MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=</PlainValue>",
        );
        assert!(matches!(
            parse_keys(&mixed, &RFC_KEY),
            Err(PskcError::Unencrypted { .. })
        ));
    }

    #[test]
    fn a_batch_without_a_value_mac_is_refused() {
        let start = RFC_FIGURE_6.find("<ValueMAC>").unwrap();
        let end = RFC_FIGURE_6.find("</ValueMAC>").unwrap() + "</ValueMAC>".len();
        let without = format!("{}{}", &RFC_FIGURE_6[..start], &RFC_FIGURE_6[end..]);
        assert_eq!(
            parse_keys(&without, &RFC_KEY).unwrap_err(),
            PskcError::MissingMac {
                serial: "987654321".into()
            }
        );
    }

    #[test]
    fn a_batch_with_a_wrong_value_mac_is_refused() {
        let wrong = RFC_FIGURE_6.replace(
            "Su+NvtQfmvfJzF6bmQiJqoLRExc=",
            "Su+NvtQfmvfJzF6bmQiJqoLRExd=",
        );
        assert_eq!(
            parse_keys(&wrong, &RFC_KEY).unwrap_err(),
            PskcError::BadMac {
                serial: "987654321".into()
            }
        );
        // A tampered ciphertext with the original MAC.
        let tampered = RFC_FIGURE_6.replace(
            "AAECAwQFBgcICQoLDA0OD+cIHItlB3Wra1DUpxVvOx2lef1VmNPCMl8jwZqIUqGv",
            "AAECAwQFBgcICQoLDA0OD+cIHItlB3Wra1DUpxVvOx2lef1VmNPCMl8jwZqIUqGw",
        );
        assert!(matches!(
            parse_keys(&tampered, &RFC_KEY),
            Err(PskcError::BadMac { .. })
        ));
    }

    #[test]
    fn another_pre_shared_key_does_not_open_the_batch() {
        let result = parse_keys(RFC_FIGURE_6, &[0x42; 16]);
        assert!(
            matches!(
                result,
                Err(PskcError::WrongPreSharedKey | PskcError::BadMac { .. })
            ),
            "{result:?}"
        );
    }

    #[test]
    fn a_document_type_declaration_is_refused() {
        let dtd = RFC_FIGURE_6.replace(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
            "<?xml version=\"1.0\"?><!DOCTYPE KeyContainer [<!ENTITY x \"y\">]>",
        );
        assert!(matches!(parse_keys(&dtd, &RFC_KEY), Err(PskcError::Xml(_))));
    }

    #[test]
    fn a_serial_twice_or_missing_is_refused() {
        let package_start = RFC_FIGURE_6.find("<KeyPackage>").unwrap();
        let package_end = RFC_FIGURE_6.find("</KeyPackage>").unwrap() + "</KeyPackage>".len();
        let package = &RFC_FIGURE_6[package_start..package_end];
        let twice = RFC_FIGURE_6.replace(package, &format!("{package}{package}"));
        assert!(matches!(
            parse_keys(&twice, &RFC_KEY),
            Err(PskcError::DuplicateSerial { .. })
        ));
        let none = RFC_FIGURE_6.replace("<SerialNo>987654321</SerialNo>", "");
        assert_eq!(
            parse_keys(&none, &RFC_KEY).unwrap_err(),
            PskcError::BadSerial
        );
    }

    #[test]
    fn garbage_and_other_documents_are_refused() {
        assert!(matches!(parse_keys("", &RFC_KEY), Err(PskcError::Xml(_))));
        assert!(matches!(
            parse_keys("<a/>", &RFC_KEY),
            Err(PskcError::NotPskc)
        ));
        assert!(matches!(
            parse_keys(
                "<KeyContainer Version=\"1.0\" xmlns=\"urn:ietf:params:xml:ns:keyprov:pskc\"/>",
                &RFC_KEY
            ),
            Err(PskcError::Empty)
        ));
    }

    #[test]
    fn a_built_batch_parses_back_with_its_parameters() {
        let key = [7u8; 16];
        let p30 = Params {
            algorithm: Algorithm::Sha1,
            digits: 6,
            step_secs: 30,
        };
        let p60 = Params {
            algorithm: Algorithm::Sha256,
            digits: 6,
            step_secs: 60,
        };
        let doc = build::batch_document(
            &key,
            "batch-1",
            &[("CD0001", p30, &[1; 20]), ("CD0002", p60, &[2; 32])],
        );
        let batch = parse_batch(&doc, &key).unwrap();
        assert_eq!(batch.id.as_deref(), Some("batch-1"));
        assert_eq!(batch.devices.len(), 2);
        assert_eq!(batch.devices[1].params, p60);
        assert_eq!(batch.devices[1].seed.as_slice(), &[2; 32]);
    }
}
