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
