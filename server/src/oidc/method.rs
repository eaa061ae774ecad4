//! The login methods of the hosted login page (see docs/login-page.md and
//! docs/authenticators.md): the app, a code display, an audio code reader,
//! a chip, or the app plus a chip; the NSIS level each one reaches and the
//! `amr` values its ID token carries.
//!
//! The user-ID step offers every method that reaches the level the client
//! asked for, whatever the person has: offering only the person's own
//! methods would tell anyone who types a user ID which authenticators that
//! person holds. A method the person lacks fails later like a wrong code.

use super::par::{ACR_HIGH, ACR_LOW, ACR_SUBSTANTIAL};

/// An NSIS level of assurance, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// NSIS Low.
    Low,
    /// NSIS Substantial.
    Substantial,
    /// NSIS High.
    High,
}

impl Level {
    /// The level's `acr` value.
    pub fn acr(self) -> &'static str {
        match self {
            Level::Low => ACR_LOW,
            Level::Substantial => ACR_SUBSTANTIAL,
            Level::High => ACR_HIGH,
        }
    }

    /// The level of an `acr` value; `None` for anything else.
    pub fn from_acr(acr: &str) -> Option<Self> {
        [Level::Low, Level::Substantial, Level::High]
            .into_iter()
            .find(|l| l.acr() == acr)
    }

    /// The level a login must reach for space-separated `acr_values`: the
    /// lowest level named (any of them satisfies the client), Substantial
    /// when none is given or none is known, since every method reaches it.
    pub fn requested(acr_values: Option<&str>) -> Self {
        acr_values
            .unwrap_or_default()
            .split(' ')
            .filter_map(Level::from_acr)
            .min()
            .map_or(Level::Substantial, |l| l.max(Level::Substantial))
    }
}

/// How the person logs in on the hosted login page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoginMethod {
    /// An approval in the app (the PIN on the phone).
    App,
    /// A code display: six digits read off the device, then the access code.
    CodeDisplay,
    /// An audio code reader: six digits heard from the device, then the
    /// access code.
    CodeReader,
    /// A chip (FIDO2/WebAuthn security key) with its access code.
    Chip,
    /// An approval in the app and a chip.
    AppAndChip,
}

impl LoginMethod {
    /// Every method, in the order the page offers them.
    pub const ALL: [LoginMethod; 5] = [
        LoginMethod::App,
        LoginMethod::CodeDisplay,
        LoginMethod::CodeReader,
        LoginMethod::Chip,
        LoginMethod::AppAndChip,
    ];

    /// The method's name: the `method` field of the user-ID form, the
    /// stored value and the receipt's `method`.
    pub fn as_str(self) -> &'static str {
        match self {
            LoginMethod::App => "app",
            LoginMethod::CodeDisplay => "code_display",
            LoginMethod::CodeReader => "code_reader",
            LoginMethod::Chip => "chip",
            LoginMethod::AppAndChip => "app_chip",
        }
    }

    /// The method of a name; `None` for anything else.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == name)
    }

    /// The ID token's `amr` values for a login by this method (RFC 8176
    /// names where one fits: `otp`, `pwd`, `hwk`, `mfa`; the others name
    /// the authenticator).
    pub fn amr(self) -> &'static [&'static str] {
        match self {
            LoginMethod::App => &["code_app"],
            LoginMethod::CodeDisplay => &["code_token", "otp", "pwd"],
            LoginMethod::CodeReader => &["code_reader", "otp", "pwd"],
            LoginMethod::Chip => &["chip", "hwk", "pwd"],
            LoginMethod::AppAndChip => &["code_app", "chip", "hwk", "mfa"],
        }
    }

    /// The NSIS level a login by this method reaches.
    pub fn level(self) -> Level {
        match self {
            LoginMethod::App | LoginMethod::CodeDisplay | LoginMethod::CodeReader => {
                Level::Substantial
            }
            LoginMethod::Chip | LoginMethod::AppAndChip => Level::High,
        }
    }

    /// Whether the method uses a hardware authenticator on the login page
    /// (everything but the app alone, whose step is the app's request).
    pub fn is_hardware(self) -> bool {
        self != LoginMethod::App
    }

    /// The login page's step after the user ID, below the login's path
    /// (`/oidc/login/{id}/...`); `None` for the app, whose step is the
    /// login's own page showing the binding code.
    pub fn step(self) -> Option<&'static str> {
        match self {
            LoginMethod::App => None,
            LoginMethod::CodeDisplay | LoginMethod::CodeReader => Some("code"),
            LoginMethod::Chip | LoginMethod::AppAndChip => Some("chip"),
        }
    }

    /// The methods the page offers for the space-separated `acr_values`:
    /// those whose level is exactly the band asked for (Low and
    /// Substantial: the app and the code devices; High: the chip and the
    /// app with the chip), whatever the person holds.
    pub fn offered_for(acr_values: Option<&str>) -> Vec<LoginMethod> {
        let level = Level::requested(acr_values);
        Self::ALL
            .into_iter()
            .filter(|m| m.level() == level)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_parses_back_from_its_name() {
        for m in LoginMethod::ALL {
            assert_eq!(LoginMethod::parse(m.as_str()), Some(m));
        }
        assert_eq!(LoginMethod::parse("APP"), None);
        assert_eq!(LoginMethod::parse(""), None);
    }

    #[test]
    fn substantial_and_low_offer_the_app_and_the_code_devices() {
        let substantial = vec![
            LoginMethod::App,
            LoginMethod::CodeDisplay,
            LoginMethod::CodeReader,
        ];
        assert_eq!(LoginMethod::offered_for(None), substantial);
        assert_eq!(LoginMethod::offered_for(Some(ACR_LOW)), substantial);
        assert_eq!(LoginMethod::offered_for(Some(ACR_SUBSTANTIAL)), substantial);
        assert_eq!(
            LoginMethod::offered_for(Some(&format!("{ACR_HIGH} {ACR_SUBSTANTIAL}"))),
            substantial
        );
    }

    #[test]
    fn high_offers_the_chip_and_the_app_with_the_chip() {
        assert_eq!(
            LoginMethod::offered_for(Some(ACR_HIGH)),
            vec![LoginMethod::Chip, LoginMethod::AppAndChip]
        );
    }

    #[test]
    fn the_amr_names_the_authenticator_and_its_factors() {
        assert_eq!(LoginMethod::App.amr(), ["code_app"]);
        assert_eq!(LoginMethod::CodeDisplay.amr(), ["code_token", "otp", "pwd"]);
        assert_eq!(LoginMethod::CodeReader.amr(), ["code_reader", "otp", "pwd"]);
        assert_eq!(LoginMethod::Chip.amr(), ["chip", "hwk", "pwd"]);
        assert_eq!(
            LoginMethod::AppAndChip.amr(),
            ["code_app", "chip", "hwk", "mfa"]
        );
    }

    #[test]
    fn each_level_has_its_acr_and_back() {
        for l in [Level::Low, Level::Substantial, Level::High] {
            assert_eq!(Level::from_acr(l.acr()), Some(l));
        }
        assert_eq!(Level::from_acr("urn:other"), None);
    }
}
