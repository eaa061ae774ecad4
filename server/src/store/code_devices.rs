//! The stored types of code devices (see docs/authenticators.md) and the
//! outcomes of their store operations. The rules (which step, how long a
//! block lasts) are [`crate::code_devices`]'s; the store only loads, saves
//! and applies them in one write.

use eid_protocol::IdentityId;

use crate::access_code::AccessCodeHash;
use crate::code_devices::totp::{Algorithm, Params};

/// How the person reads a code device's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodeDeviceKind {
    /// A code display: the code is shown on a small screen.
    CodeDisplay,
    /// An audio code reader: the code is read out (for blind people).
    CodeReader,
}

impl CodeDeviceKind {
    /// The stored and wire name: `code_display`, `code_reader`.
    pub fn as_str(self) -> &'static str {
        match self {
            CodeDeviceKind::CodeDisplay => "code_display",
            CodeDeviceKind::CodeReader => "code_reader",
        }
    }

    /// The kind of a name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "code_display" => Some(CodeDeviceKind::CodeDisplay),
            "code_reader" => Some(CodeDeviceKind::CodeReader),
            _ => None,
        }
    }
}

/// Where a code device stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodeDeviceState {
    /// Imported, nobody's yet.
    Unassigned,
    /// Activated on an identity.
    Active,
    /// Replaced or deactivated: never usable again.
    Deactivated,
}

/// A manufacturer's batch as recorded at import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBatch {
    /// Its id (random).
    pub id: [u8; 16],
    /// The PSKC document's `Id`, or the importer's label.
    pub label: String,
    /// When it was imported.
    pub imported_at_ms: u64,
    /// How many devices it holds.
    pub device_count: u32,
}

/// A code device as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct CodeDevice {
    /// The manufacturer's serial number.
    pub serial: String,
    /// The batch it came in.
    pub batch_id: [u8; 16],
    /// Display or reader.
    pub kind: CodeDeviceKind,
    /// Its HMAC.
    pub algorithm: Algorithm,
    /// Digits per code (6).
    pub digits: u32,
    /// Seconds per step (30 or 60).
    pub step_secs: u64,
    /// The seed sealed under the key-encryption key ([`crate::code_devices::seal`]).
    pub sealed_seed: Vec<u8>,
    /// Whose it is, once activated.
    pub identity_id: Option<IdentityId>,
    /// Its state.
    pub state: CodeDeviceState,
    /// The last time step accepted.
    pub last_step: Option<u64>,
    /// Wrong codes or access codes in a row.
    pub failures: u32,
    /// How often it was blocked.
    pub blocks: u32,
    /// Blocked until then.
    pub blocked_until_ms: Option<u64>,
    /// The access code's Argon2id hash, once activated.
    pub access_code_hash: Option<AccessCodeHash>,
    /// When it was imported.
    pub added_at_ms: u64,
    /// When it was activated.
    pub activated_at_ms: Option<u64>,
    /// When it was last used to log in.
    pub last_used_at_ms: Option<u64>,
}

impl std::fmt::Debug for CodeDevice {
    // The sealed seed and the access code's hash stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeDevice")
            .field("serial", &self.serial)
            .field("kind", &self.kind)
            .field("state", &self.state)
            .field("last_step", &self.last_step)
            .field("failures", &self.failures)
            .field("blocked_until_ms", &self.blocked_until_ms)
            .finish_non_exhaustive()
    }
}

impl CodeDevice {
    /// Its TOTP parameters.
    pub fn params(&self) -> Params {
        Params {
            algorithm: self.algorithm,
            digits: self.digits,
            step_secs: self.step_secs,
        }
    }

    /// Whether it is blocked at `now_ms`.
    pub fn blocked_at(&self, now_ms: u64) -> bool {
        self.blocked_until_ms.is_some_and(|until| now_ms < until)
    }
}

/// What [`super::Store::use_code_step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeStepResult {
    /// The step was above the last accepted one; it is the last now.
    Accepted,
    /// The step, or a later one, was accepted before: a replay.
    Replayed,
    /// The device is blocked, not active, or not this identity's.
    Unusable,
}

/// A login attempt's outcome on a code device, for
/// [`super::Store::record_code_device_attempt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeAttempt {
    /// A wrong (or replayed) code.
    WrongCode,
    /// A wrong access code.
    WrongAccessCode,
    /// The code and the access code were right: the login went through.
    LoggedIn,
}

/// What [`super::Store::record_code_device_attempt`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptRecorded {
    /// A failure counted (this many in a row now).
    Counted(u32),
    /// This failure blocked the device until then (the person is notified).
    Blocked {
        /// The block's end.
        until_ms: u64,
    },
    /// The login was recorded; the failures are reset.
    Used,
    /// No active device with that serial.
    Unknown,
}

/// An activation of a code device by the person with support's activation
/// code (docs/authenticators.md).
pub struct SupportActivation {
    /// The folded user ID typed.
    pub user_id_folded: String,
    /// SHA-256 of the activation code for an identity (the activation code
    /// is bound to its identity).
    pub code_sha256_for: Box<dyn Fn(IdentityId) -> [u8; 32] + Send>,
    /// Tries before the activation code is void.
    pub max_tries: u32,
    /// The device.
    pub serial: String,
    /// The second of the two consecutive codes' step (accepted, like a login).
    pub step: u64,
    /// The chosen access code's hash.
    pub access_code_hash: AccessCodeHash,
    /// Now.
    pub now_ms: u64,
}

/// What [`super::Store::activate_code_device_by_support`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SupportActivationResult {
    /// Active on the identity now (the person is notified).
    Activated(IdentityId),
    /// Unknown user ID, blocked identity, or no usable activation code
    /// (a wrong one counted a try).
    NoUsableCode,
    /// The device is not an unassigned one, or the codes' step was used.
    DeviceUnusable,
    /// The identity has an active code device: a second replaces it only
    /// through the app.
    AlreadyHasOne,
}

/// What [`super::Store::import_token_batch`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportResult {
    /// Stored, with the audit row's id.
    Imported {
        /// The audit row.
        audit_id: u64,
    },
    /// A serial is already stored: nothing of the batch was.
    SerialTaken(String),
}
