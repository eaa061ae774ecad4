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
    /// Equal to (or contains) the person's phone number.
    #[error("a user ID must not be your phone number")]
    LooksLikePhone,
    /// Equal to the person's e-mail address or its name part.
    #[error("a user ID must not be your e-mail address")]
    LooksLikeEmail,
    /// Looks like a CPR number (national identity number).
    #[error("a user ID must not look like a CPR number")]
    LooksLikeCpr,
}

/// Folds a user ID for the uniqueness check (NFC, then lower case).
pub fn fold(user_id: &str) -> String {
    user_id.nfc().collect::<String>().to_lowercase()
}

/// What is known about the person, which a user ID must not resemble.
#[derive(Debug, Clone, Copy, Default)]
pub struct PersonalData<'a> {
    /// The person's name.
    pub name: Option<&'a str>,
    /// The phone number (E.164).
    pub phone: Option<&'a str>,
    /// The e-mail address.
    pub email: Option<&'a str>,
}

/// Checks the rules; returns the user ID in NFC.
pub fn check(user_id: &str, person: PersonalData<'_>) -> Result<String, UserIdError> {
    let display_name = person.name;
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
    if let Some(phone) = person.phone {
        // The national part (the last 8 digits) is what people type.
        let phone_digits: String = phone.chars().filter(|c| c.is_ascii_digit()).collect();
        let national = &phone_digits[phone_digits.len().saturating_sub(8)..];
        if national.len() >= 6 && digits.contains(national) {
            return Err(UserIdError::LooksLikePhone);
        }
    }
    if let Some(email) = person.email {
        let alnum =
            |s: &str| -> String { fold(s).chars().filter(|c| c.is_alphanumeric()).collect() };
        let id = alnum(&nfc);
        let local = email.split_once('@').map_or(email, |(l, _)| l);
        if id == alnum(email) || (alnum(local).chars().count() >= 3 && id == alnum(local)) {
            return Err(UserIdError::LooksLikeEmail);
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

    fn named(name: &str) -> PersonalData<'_> {
        PersonalData {
            name: Some(name),
            ..PersonalData::default()
        }
    }

    #[test]
    fn contact_data_is_refused() {
        let person = PersonalData {
            name: None,
            phone: Some("+4512345678"),
            email: Some("grete.h1@example.dk"),
        };
        assert_eq!(
            check("Tlf#12345678", person),
            Err(UserIdError::LooksLikePhone)
        );
        assert_eq!(
            check("grete.h1@example.dk", person),
            Err(UserIdError::LooksLikeEmail)
        );
        assert_eq!(check("Grete.H1!", person), Err(UserIdError::LooksLikeEmail));
        assert!(check("Grete#1950x", person).is_ok());
    }

    #[test]
    fn rules() {
        assert_eq!(
            check("Grete#1950x", PersonalData::default()).as_deref(),
            Ok("Grete#1950x")
        );
        assert_eq!(
            check("a#1", PersonalData::default()),
            Err(UserIdError::Length)
        );
        assert_eq!(
            check("grete hansen#1", PersonalData::default()),
            Err(UserIdError::Character)
        );
        assert_eq!(
            check("gretehansen1", PersonalData::default()),
            Err(UserIdError::Mix)
        );
        assert_eq!(
            check("gretehansen#", PersonalData::default()),
            Err(UserIdError::Mix)
        );
        assert_eq!(
            check("0101501234-x", PersonalData::default()),
            Err(UserIdError::LooksLikeCpr)
        );
        assert_eq!(
            check("Grete#1950", named("Grete Hansen")),
            Err(UserIdError::LooksLikeName)
        );
        assert_eq!(
            check("GreteHansen#1", named("Grete Hansen")),
            Err(UserIdError::LooksLikeName)
        );
        assert!(check("Ærø-Købmand7", PersonalData::default()).is_ok());
        assert_eq!(fold("Grete#1950X"), fold("gRETE#1950x"));
    }
}
