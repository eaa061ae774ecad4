//! Code devices: code displays and audio code readers, the TOTP hardware
//! a person without a smartphone (or who is blind) logs in with (see
//! docs/authenticators.md). One server model for both kinds; they differ
//! in how the person reads the code, in the page's words and in the ID
//! token's `amr`.
//!
//! - [`totp`]: the codes (RFC 6238 over RFC 4226);
//! - [`pskc`]: the manufacturer's batches (RFC 6030, pre-shared key, MAC
//!   required);
//! - [`seal`]: seeds at rest, under a key-encryption key outside the
//!   database;
//! - [`check`]: the code check at login (±1 step, each step once, blocks);
//! - [`activation`]: putting a device on an identity with the owner's consent.

pub mod activation;
pub mod check;
pub mod pskc;
pub mod seal;
pub mod totp;

use eid_protocol::wire::{HardwareAuthenticatorInfo, HardwareKind, HardwareState};

use crate::store::{CodeDevice, CodeDeviceKind, CodeDeviceState};

/// The app's id of a code device: the first 16 bytes of its serial's
/// SHA-256, in hex. Opaque like a chip's id; the full serial stays on the
/// server (the app shows [`masked_serial`]).
pub fn hardware_id(serial: &str) -> String {
    hex::encode(&eid_protocol::sha256(serial.as_bytes())[..16])
}

/// One code device as the app lists it (docs/integration.md). A device
/// blocked for a while after wrong codes shows as blocked until then.
pub fn listed(device: &CodeDevice, now_ms: u64) -> HardwareAuthenticatorInfo {
    let blocked = device.blocked_until_ms.is_some_and(|until| until > now_ms);
    HardwareAuthenticatorInfo {
        id: hardware_id(&device.serial),
        kind: match device.kind {
            CodeDeviceKind::CodeDisplay => HardwareKind::CodeDisplay,
            CodeDeviceKind::CodeReader => HardwareKind::CodeReader,
        },
        masked_serial: masked_serial(&device.serial),
        state: match device.state {
            // Only an activation by approval in the app waits, and that
            // device is not the identity's until the approval.
            CodeDeviceState::Unassigned => HardwareState::Pending,
            CodeDeviceState::Active if blocked => HardwareState::Blocked,
            CodeDeviceState::Active => HardwareState::Active,
            CodeDeviceState::Deactivated => HardwareState::Deactivated,
        },
        added_at_ms: device.activated_at_ms.unwrap_or(device.added_at_ms),
        last_used_at_ms: device.last_used_at_ms,
        active_from_ms: device.activated_at_ms,
    }
}

/// A serial number as the person and the notifications see it: all but the
/// last four characters masked.
pub fn masked_serial(serial: &str) -> String {
    let chars: Vec<char> = serial.chars().collect();
    let keep = chars.len().min(4);
    let masked = chars.len() - keep;
    let mut out = "•".repeat(masked.min(8));
    out.extend(&chars[masked..]);
    out
}

#[cfg(test)]
mod tests {
    use super::masked_serial;

    #[test]
    fn a_masked_serial_shows_its_last_four_characters() {
        assert_eq!(masked_serial("CD12345678"), "••••••5678");
        assert_eq!(masked_serial("123"), "123");
        assert_eq!(masked_serial("ABCDEFGHIJKLMNOPQRST"), "••••••••QRST");
    }
}
