//! Contact data for notifications: phone numbers (E.164) and e-mail addresses,
//! checked before they are stored and masked before they are shown.

/// Why a phone number or e-mail address was refused. Messages are shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContactError {
    /// Not `+` and 8 to 15 digits.
    #[error("a phone number is '+', the country code and the number: 8 to 15 digits, no spaces")]
    Phone,
    /// Not a plain `local@domain.tld` address.
    #[error("an e-mail address looks like name@example.dk (at most 254 characters)")]
    Email,
}

/// Checks an E.164 phone number (`+4512345678`); spaces are removed first.
pub fn check_phone(phone: &str) -> Result<String, ContactError> {
    let compact: String = phone.chars().filter(|c| *c != ' ').collect();
    let digits = compact.strip_prefix('+').ok_or(ContactError::Phone)?;
    if (8..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
    {
        Ok(compact)
    } else {
        Err(ContactError::Phone)
    }
}

/// Checks an e-mail address: ASCII, one `@`, a dotted domain of letters,
/// digits and hyphens. The domain is lower-cased. (Deliberately narrower than
/// RFC 5322: it is an address we will send security notices to.)
pub fn check_email(email: &str) -> Result<String, ContactError> {
    let email = email.trim();
    if email.len() > 254 || !email.is_ascii() {
        return Err(ContactError::Email);
    }
    let (local, domain) = email.split_once('@').ok_or(ContactError::Email)?;
    let local_ok = (1..=64).contains(&local.len())
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b))
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..");
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if local_ok && domain_ok {
        Ok(format!("{local}@{}", domain.to_ascii_lowercase()))
    } else {
        Err(ContactError::Email)
    }
}

/// A phone number as shown in notices: country code and the last two digits.
pub fn mask_phone(phone: &str) -> String {
    let digits: Vec<char> = phone.chars().filter(|c| c.is_ascii_digit()).collect();
    let keep_head = digits.len().min(2);
    let keep_tail = 2.min(digits.len().saturating_sub(keep_head));
    let hidden = digits.len() - keep_head - keep_tail;
    format!(
        "+{}{}{}",
        digits[..keep_head].iter().collect::<String>(),
        "•".repeat(hidden),
        digits[digits.len() - keep_tail..]
            .iter()
            .collect::<String>()
    )
}

/// An e-mail address as shown in notices: the first character of the name
/// and of the domain, and the top-level domain. The domain is masked too: an
/// address typed by someone else must not put a readable (and, in SMS apps,
/// clickable) domain into an official eID message.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            let (name, tld) = domain.rsplit_once('.').unwrap_or((domain, ""));
            let domain_first: String = name.chars().take(1).collect();
            let tld: String = tld.chars().take(6).collect();
            format!("{first}•••@{domain_first}•••.{tld}")
        }
        None => "•••".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones() {
        assert_eq!(check_phone("+45 12 34 56 78").as_deref(), Ok("+4512345678"));
        for bad in [
            "12345678",
            "+45",
            "+4512a45678",
            "+0451234567",
            "+1234567890123456",
            "",
        ] {
            assert_eq!(check_phone(bad), Err(ContactError::Phone), "{bad}");
        }
        assert_eq!(mask_phone("+4512345678"), "+45••••••78");
    }

    #[test]
    fn emails() {
        assert_eq!(
            check_email("Grete.H@Example.DK").as_deref(),
            Ok("Grete.H@example.dk")
        );
        for bad in [
            "grete",
            "grete@dk",
            "@example.dk",
            "grete@@example.dk",
            "gr ete@example.dk",
            "grete@exa_mple.dk",
            ".g@example.dk",
            "g..h@example.dk",
            "grete@-example.dk",
            "grøde@example.dk",
            "g\r\nBcc: x@example.dk",
        ] {
            assert_eq!(check_email(bad), Err(ContactError::Email), "{bad:?}");
        }
        assert_eq!(mask_email("grete@example.dk"), "g•••@e•••.dk");
        assert_eq!(
            mask_email("x@ring-eid-support-70203040-straks.dk"),
            "x•••@r•••.dk"
        );
    }
}
