//! Channel-binding codes: the code a login screen (or a new phone) shows and
//! the person types or scans into the app, so an approval is bound to the
//! screen in front of them.
//!
//! Codes are compared in one canonical form: ASCII letters and digits, upper
//! case, without the spaces and hyphens people add when typing. A scanned QR
//! code carries the same code behind the prefix [`QR_PREFIX`], so the app can
//! hand either a typed code or a scanned payload to the core.

/// Prefix of the QR payload of a binding code, versioned.
pub const QR_PREFIX: &str = "eid-bind:v1:";
/// Fewest characters in a canonical code.
pub const MIN_LEN: usize = 4;
/// Most characters in a canonical code.
pub const MAX_LEN: usize = 64;

/// Why a binding code (typed, scanned or set by a relying party) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BindingCodeError {
    /// Fewer than [`MIN_LEN`] or more than [`MAX_LEN`] letters and digits.
    #[error("a code has {MIN_LEN} to {MAX_LEN} letters and digits")]
    Length,
    /// A character other than ASCII letters, digits, spaces and hyphens.
    #[error("a code has only letters A-Z and digits (spaces and hyphens are ignored)")]
    Character,
    /// A scanned payload of another kind or version.
    #[error("this QR code is not an eID code")]
    UnknownPayload,
}

/// The canonical form of a typed code or a scanned QR payload.
pub fn canonical_binding_code(input: &str) -> Result<String, BindingCodeError> {
    let input = input.trim();
    let code = match input.strip_prefix("eid-") {
        Some(_) => input
            .strip_prefix(QR_PREFIX)
            .ok_or(BindingCodeError::UnknownPayload)?,
        None => input,
    };
    if code.len() > 4 * MAX_LEN {
        return Err(BindingCodeError::Length);
    }
    let mut out = String::with_capacity(code.len());
    for c in code.chars() {
        match c {
            ' ' | '-' => {}
            c if c.is_ascii_alphanumeric() => out.push(c.to_ascii_uppercase()),
            _ => return Err(BindingCodeError::Character),
        }
    }
    if (MIN_LEN..=MAX_LEN).contains(&out.len()) {
        Ok(out)
    } else {
        Err(BindingCodeError::Length)
    }
}

/// The QR payload for a code (the code in canonical form behind [`QR_PREFIX`]).
pub fn qr_payload(code: &str) -> Result<String, BindingCodeError> {
    Ok(format!("{QR_PREFIX}{}", canonical_binding_code(code)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_and_scanned_codes_meet_in_one_form() {
        assert_eq!(canonical_binding_code("ab-12 cd").as_deref(), Ok("AB12CD"));
        assert_eq!(canonical_binding_code(" AB12CD\n").as_deref(), Ok("AB12CD"));
        assert_eq!(
            canonical_binding_code("eid-bind:v1:AB12CD").as_deref(),
            Ok("AB12CD")
        );
        assert_eq!(qr_payload("ab-12cd").as_deref(), Ok("eid-bind:v1:AB12CD"));
        assert_eq!(canonical_binding_code("ab1"), Err(BindingCodeError::Length));
        assert_eq!(
            canonical_binding_code(&"A".repeat(65)),
            Err(BindingCodeError::Length)
        );
        assert_eq!(
            canonical_binding_code("AB1Ø"),
            Err(BindingCodeError::Character)
        );
        assert_eq!(
            canonical_binding_code("AB\u{200b}12"),
            Err(BindingCodeError::Character)
        );
        assert_eq!(
            canonical_binding_code("eid-bind:v2:AB12CD"),
            Err(BindingCodeError::UnknownPayload)
        );
        assert_eq!(
            canonical_binding_code("----"),
            Err(BindingCodeError::Length)
        );
    }
}
