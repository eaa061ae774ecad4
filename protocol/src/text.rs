//! Rules for text shown to a person before they approve: the reference text and
//! the service provider's name.
//!
//! Reference text is untrusted input (DESIGN §4.5). The server normalizes it to
//! NFC and refuses what could hide or reorder what the person reads; the core
//! re-checks the exact signed bytes with [`validate_reference_text`] and never
//! shows a text that fails.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::is_nfc;

/// Most Unicode scalar values a reference text may have.
pub const MAX_REFERENCE_TEXT_CHARS: usize = 400;
/// Most lines a reference text may have (lines are separated by `\n`).
pub const MAX_REFERENCE_TEXT_LINES: usize = 10;
/// Most Unicode scalar values a service provider's name may have.
pub const MAX_PROVIDER_NAME_CHARS: usize = 80;

/// Why a text was refused. Each variant names the first offending character's
/// position (in Unicode scalar values) where there is one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TextError {
    /// The text is empty or only whitespace.
    #[error("the text is empty")]
    Empty,
    /// The name is the eID's own (or the kind is one only the eID may ask for).
    #[error("this name and kind of request are reserved for the eID itself")]
    Reserved,
    /// The text is longer than allowed.
    #[error("the text has {chars} characters; at most {max} are allowed")]
    TooLong {
        /// Characters in the text.
        chars: usize,
        /// The limit.
        max: usize,
    },
    /// The text has more lines than allowed.
    #[error("the text has {lines} lines; at most {max} are allowed")]
    TooManyLines {
        /// Lines in the text.
        lines: usize,
        /// The limit.
        max: usize,
    },
    /// A control character (other than a line feed where lines are allowed).
    #[error("control character U+{code:04X} at position {position}")]
    ControlCharacter {
        /// Code point.
        code: u32,
        /// Position in characters.
        position: usize,
    },
    /// A bidirectional override, embedding, isolate or mark, which can reorder
    /// what is displayed (Trojan Source).
    #[error("bidirectional control character U+{code:04X} at position {position}")]
    BidiControl {
        /// Code point.
        code: u32,
        /// Position in characters.
        position: usize,
    },
    /// An invisible character (zero-width, joiner, tag, variation selector, other
    /// format characters) that can hide or disguise text.
    #[error("invisible character U+{code:04X} at position {position}")]
    Invisible {
        /// Code point.
        code: u32,
        /// Position in characters.
        position: usize,
    },
    /// A private-use or unassigned-by-design (noncharacter) code point.
    #[error("private-use or noncharacter U+{code:04X} at position {position}")]
    PrivateUse {
        /// Code point.
        code: u32,
        /// Position in characters.
        position: usize,
    },
    /// The text is not in Unicode Normalization Form C (only the core reports
    /// this: the server normalizes before signing).
    #[error("the text is not in Unicode normalization form C")]
    NotNormalized,
    /// Leading or trailing whitespace, which can push content off screen.
    #[error("the text starts or ends with whitespace")]
    SurroundingWhitespace,
}

/// Which character class a code point belongs to, for the rules.
fn classify(c: char, allow_newline: bool) -> Option<fn(u32, usize) -> TextError> {
    let cp = c as u32;
    let bidi = matches!(cp, 0x061C | 0x200E | 0x200F | 0x202A..=0x202E | 0x2066..=0x2069);
    if bidi {
        return Some(|code, position| TextError::BidiControl { code, position });
    }
    if c == '\n' && allow_newline {
        return None;
    }
    if c.is_control() || matches!(cp, 0x2028 | 0x2029) {
        return Some(|code, position| TextError::ControlCharacter { code, position });
    }
    let invisible = matches!(cp,
        0x00AD            // soft hyphen
        | 0x034F          // combining grapheme joiner
        | 0x115F | 0x1160 // Hangul fillers
        | 0x17B4 | 0x17B5
        | 0x180B..=0x180F // Mongolian variation selectors and vowel separator
        | 0x200B..=0x200D // zero width space, non-joiner, joiner
        | 0x2060..=0x2064 // word joiner, invisible operators
        | 0x206A..=0x206F // deprecated format characters
        | 0x3164          // Hangul filler
        | 0xFE00..=0xFE0F // variation selectors
        | 0xFEFF          // zero width no-break space / BOM
        | 0xFFA0          // halfwidth Hangul filler
        | 0xFFF0..=0xFFFB // specials and interlinear annotation
        | 0x1BCA0..=0x1BCA3
        | 0x1D173..=0x1D17A
        | 0xE0000..=0xE007F // tags
        | 0xE0100..=0xE01EF // variation selectors supplement
    );
    if invisible {
        return Some(|code, position| TextError::Invisible { code, position });
    }
    let private = matches!(cp, 0xE000..=0xF8FF | 0xF0000..=0xFFFFD | 0x100000..=0x10FFFD)
        || (0xFDD0..=0xFDEF).contains(&cp)
        || (cp & 0xFFFE) == 0xFFFE;
    if private {
        return Some(|code, position| TextError::PrivateUse { code, position });
    }
    None
}

fn check(text: &str, max_chars: usize, max_lines: Option<usize>) -> Result<(), TextError> {
    if text.trim().is_empty() {
        return Err(TextError::Empty);
    }
    if text.trim() != text {
        return Err(TextError::SurroundingWhitespace);
    }
    let chars = text.chars().count();
    if chars > max_chars {
        return Err(TextError::TooLong {
            chars,
            max: max_chars,
        });
    }
    for (position, c) in text.chars().enumerate() {
        if let Some(make) = classify(c, max_lines.is_some()) {
            return Err(make(c as u32, position));
        }
    }
    if let Some(max) = max_lines {
        let lines = text.split('\n').count();
        if lines > max {
            return Err(TextError::TooManyLines { lines, max });
        }
    }
    if !is_nfc(text) {
        return Err(TextError::NotNormalized);
    }
    Ok(())
}

/// Normalizes a reference text to NFC and checks it (server side, before signing).
pub fn normalize_reference_text(text: &str) -> Result<String, TextError> {
    let normalized: String = text.nfc().collect();
    check(
        &normalized,
        MAX_REFERENCE_TEXT_CHARS,
        Some(MAX_REFERENCE_TEXT_LINES),
    )?;
    Ok(normalized)
}

/// Checks the exact bytes of a received reference text (core side): it must
/// already be NFC and pass every rule.
pub fn validate_reference_text(text: &str) -> Result<(), TextError> {
    check(
        text,
        MAX_REFERENCE_TEXT_CHARS,
        Some(MAX_REFERENCE_TEXT_LINES),
    )
}

/// Normalizes and checks a service provider's name (one line).
pub fn normalize_provider_name(name: &str) -> Result<String, TextError> {
    let normalized: String = name.nfc().collect();
    check(&normalized, MAX_PROVIDER_NAME_CHARS, None)?;
    Ok(normalized)
}

/// Most characters in the reason support gives for an admin action.
pub const MAX_SUPPORT_REASON_CHARS: usize = 500;

/// Normalizes and checks the reason support gives for an admin action (a
/// block or unblock): the provider-name rules (one line, printable, no
/// invisible or bidirectional controls), up to [`MAX_SUPPORT_REASON_CHARS`].
pub fn normalize_support_reason(reason: &str) -> Result<String, TextError> {
    let normalized: String = reason.nfc().collect();
    check(&normalized, MAX_SUPPORT_REASON_CHARS, None)?;
    Ok(normalized)
}

/// Checks a received service provider's name (core side).
pub fn validate_provider_name(name: &str) -> Result<(), TextError> {
    check(name, MAX_PROVIDER_NAME_CHARS, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_danish_text() {
        let t = "Log på Netbank\nOverførsel 1.250,00 kr. til Ærø Købmand";
        assert_eq!(normalize_reference_text(t).as_deref(), Ok(t));
        assert_eq!(validate_reference_text(t), Ok(()));
    }

    #[test]
    fn normalizes_to_nfc_and_core_requires_nfc() {
        let decomposed = "Cafe\u{301}";
        assert_eq!(
            normalize_reference_text(decomposed).as_deref(),
            Ok("Caf\u{e9}")
        );
        assert_eq!(
            validate_reference_text(decomposed),
            Err(TextError::NotNormalized)
        );
    }

    #[test]
    fn refuses_trojan_source_and_invisibles() {
        assert!(matches!(
            normalize_reference_text("Pay \u{202E}00.001\u{202C} kr"),
            Err(TextError::BidiControl {
                code: 0x202E,
                position: 4
            })
        ));
        assert!(matches!(
            normalize_reference_text("a\u{2066}b"),
            Err(TextError::BidiControl { code: 0x2066, .. })
        ));
        assert!(matches!(
            normalize_reference_text("Net\u{200B}bank"),
            Err(TextError::Invisible { code: 0x200B, .. })
        ));
        assert!(matches!(
            normalize_reference_text("x\u{E0041}"),
            Err(TextError::Invisible { .. })
        ));
        assert!(matches!(
            normalize_reference_text("x\u{E000}"),
            Err(TextError::PrivateUse { .. })
        ));
        assert!(matches!(
            normalize_reference_text("a\u{7}b"),
            Err(TextError::ControlCharacter { code: 7, .. })
        ));
        assert!(matches!(
            normalize_reference_text("a\rb"),
            Err(TextError::ControlCharacter { code: 13, .. })
        ));
    }

    #[test]
    fn length_lines_and_whitespace() {
        assert_eq!(normalize_reference_text("   "), Err(TextError::Empty));
        assert_eq!(
            normalize_reference_text(" x"),
            Err(TextError::SurroundingWhitespace)
        );
        let long = "x".repeat(MAX_REFERENCE_TEXT_CHARS + 1);
        assert!(matches!(
            normalize_reference_text(&long),
            Err(TextError::TooLong { .. })
        ));
        let lines = ["a"; MAX_REFERENCE_TEXT_LINES + 1].join("\n");
        assert!(matches!(
            normalize_reference_text(&lines),
            Err(TextError::TooManyLines { .. })
        ));
        assert!(matches!(
            normalize_provider_name("Bank\nEvil"),
            Err(TextError::ControlCharacter { code: 10, .. })
        ));
    }
}
