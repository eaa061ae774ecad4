//! User-ID rules: chosen by the person, hard to guess, unique regardless of case.

use unicode_normalization::UnicodeNormalization;

/// Shortest user ID.
pub const MIN_LEN: usize = 8;
/// Longest user ID.
pub const MAX_LEN: usize = 40;
/// The special characters a user ID may contain.
pub const SPECIALS: &str = "!#$%&()*+,-./:;<=>?@[]^_{|}~";

/// Why a user ID was refused. Messages are shown to the person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UserIdError {
    /// Too short or too long.
    #[error("a user ID has {MIN_LEN} to {MAX_LEN} characters")]
    Length,
    /// A character outside letters, digits and the allowed specials.
    #[error("a user ID may contain letters, digits and these special characters: {SPECIALS}")]
    Character,
    /// Missing a letter, a digit or a special character.
    #[error("a user ID needs at least one letter, one digit and one special character")]
    Mix,
    /// Equal to (or contains) the person's name.
    #[error("a user ID must not be your name")]
    LooksLikeName,
    /// Looks like a CPR number (national identity number).
    #[error("a user ID must not look like a CPR number")]
    LooksLikeCpr,
}

/// Folds a user ID for the uniqueness check (NFC, then lower case).
pub fn fold(user_id: &str) -> String {
    user_id.nfc().collect::<String>().to_lowercase()
}

/// Checks the rules; returns the user ID in NFC.
pub fn check(user_id: &str, display_name: Option<&str>) -> Result<String, UserIdError> {
    let nfc: String = user_id.nfc().collect();
    let len = nfc.chars().count();
    if !(MIN_LEN..=MAX_LEN).contains(&len) {
        return Err(UserIdError::Length);
    }
    let (mut letter, mut digit, mut special) = (false, false, false);
    for c in nfc.chars() {
        if c.is_alphabetic() && !c.is_control() {
            letter = true;
        } else if c.is_ascii_digit() {
            digit = true;
        } else if SPECIALS.contains(c) {
            special = true;
        } else {
            return Err(UserIdError::Character);
        }
    }
    if !(letter && digit && special) {
        return Err(UserIdError::Mix);
    }
    let digits: String = nfc.chars().filter(|c| c.is_ascii_digit()).collect();
    if digits.len() == 10 && looks_like_cpr_date(&digits) {
        return Err(UserIdError::LooksLikeCpr);
    }
    if let Some(name) = display_name {
        let folded_id = fold(&nfc);
        let letters_only: String = folded_id.chars().filter(|c| c.is_alphabetic()).collect();
        for part in fold(name)
            .split_whitespace()
            .filter(|p| p.chars().count() >= 3)
        {
            if letters_only
                == part
                    .chars()
                    .filter(|c| c.is_alphabetic())
                    .collect::<String>()
            {
                return Err(UserIdError::LooksLikeName);
            }
        }
        let whole: String = fold(name).chars().filter(|c| c.is_alphabetic()).collect();
        if !whole.is_empty() && letters_only == whole {
            return Err(UserIdError::LooksLikeName);
        }
    }
    Ok(nfc)
}

fn looks_like_cpr_date(digits: &str) -> bool {
    let b = digits.as_bytes();
    let day = (b[0] - b'0') * 10 + (b[1] - b'0');
    let month = (b[2] - b'0') * 10 + (b[3] - b'0');
    (1..=31).contains(&day) && (1..=12).contains(&month)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert_eq!(check("Grete#1950x", None).as_deref(), Ok("Grete#1950x"));
        assert_eq!(check("a#1", None), Err(UserIdError::Length));
        assert_eq!(check("grete hansen#1", None), Err(UserIdError::Character));
        assert_eq!(check("gretehansen1", None), Err(UserIdError::Mix));
        assert_eq!(check("gretehansen#", None), Err(UserIdError::Mix));
        assert_eq!(check("0101501234-x", None), Err(UserIdError::LooksLikeCpr));
        assert_eq!(
            check("Grete#1950", Some("Grete Hansen")),
            Err(UserIdError::LooksLikeName)
        );
        assert_eq!(
            check("GreteHansen#1", Some("Grete Hansen")),
            Err(UserIdError::LooksLikeName)
        );
        assert!(check("Ærø-Købmand7", None).is_ok());
        assert_eq!(fold("Grete#1950X"), fold("gRETE#1950x"));
    }
}
