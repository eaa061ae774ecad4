//! The login pages' words in Danish and English, and how a page picks its
//! language: `?lang=` on the page, else the service provider's `ui_locales`,
//! else the browser's `Accept-Language`, else Danish.

/// A page language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lang {
    /// Danish, the default.
    Da,
    /// English.
    En,
}

impl Lang {
    /// The BCP 47 tag (`da`, `en`).
    pub(crate) fn tag(self) -> &'static str {
        match self {
            Lang::Da => "da",
            Lang::En => "en",
        }
    }

    /// The other language (the page's switch link).
    pub(crate) fn other(self) -> Lang {
        match self {
            Lang::Da => Lang::En,
            Lang::En => Lang::Da,
        }
    }

    /// `da` or `en`, exactly.
    pub(crate) fn parse(tag: &str) -> Option<Lang> {
        match tag {
            "da" => Some(Lang::Da),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The first of `da`/`en` in an `Accept-Language` header, by order of
    /// appearance (browsers list the preferred first).
    pub(crate) fn from_accept_language(header: &str) -> Option<Lang> {
        header.split(',').find_map(|item| {
            let tag = item.split(';').next().unwrap_or_default().trim();
            let primary = tag.split('-').next().unwrap_or_default();
            Lang::parse(&primary.to_ascii_lowercase())
        })
    }

    /// The page's words.
    pub(crate) fn words(self) -> &'static Words {
        match self {
            Lang::Da => &DA,
            Lang::En => &EN,
        }
    }
}

/// Every fixed text of the login pages.
#[derive(Debug)]
pub(crate) struct Words {
    pub(crate) site: &'static str,
    pub(crate) language_name: &'static str,
    pub(crate) login_at: &'static str,
    pub(crate) user_id_heading: &'static str,
    pub(crate) user_id_label: &'static str,
    pub(crate) user_id_help: &'static str,
    pub(crate) remember: &'static str,
    pub(crate) next: &'static str,
    pub(crate) open_app_heading: &'static str,
    pub(crate) open_app_steps: &'static str,
    pub(crate) code_label: &'static str,
    pub(crate) qr_alt: &'static str,
    pub(crate) time_left: &'static str,
    pub(crate) not_you: &'static str,
    pub(crate) start_again: &'static str,
    pub(crate) waiting: &'static str,
    pub(crate) approved: &'static str,
    pub(crate) denied: &'static str,
    pub(crate) fraud: &'static str,
    pub(crate) expired: &'static str,
    pub(crate) retry: &'static str,
    pub(crate) back: &'static str,
    pub(crate) refused_heading: &'static str,
    pub(crate) expired_heading: &'static str,
    pub(crate) busy: &'static str,
    pub(crate) error_heading: &'static str,
    pub(crate) bad_link: &'static str,
    pub(crate) other_browser: &'static str,
    pub(crate) login_over: &'static str,
    pub(crate) already_done: &'static str,
    pub(crate) bad_form: &'static str,
    pub(crate) bad_user_id: &'static str,
}

static DA: Words = Words {
    site: "eID log på",
    language_name: "Dansk",
    login_at: "Log på hos",
    user_id_heading: "Indtast dit bruger-id",
    user_id_label: "Bruger-id",
    user_id_help: "Du godkender bagefter i eID-appen. Du skal aldrig skrive din PIN-kode på en hjemmeside.",
    remember: "Husk mit bruger-id på denne browser",
    next: "Fortsæt",
    open_app_heading: "Åbn eID-appen",
    open_app_steps: "Åbn appen, læs teksten, og skriv koden herunder, når appen beder om den. Godkend kun, hvis du selv har startet dette login.",
    code_label: "Kode",
    qr_alt: "QR-kode med samme kode til at scanne med appen",
    time_left: "Tid tilbage",
    not_you: "Dukker der intet op i appen? Tjek dit bruger-id.",
    start_again: "Start forfra",
    waiting: "Venter på din godkendelse i appen …",
    approved: "Godkendt. Du sendes tilbage …",
    denied: "Du afviste login i appen.",
    fraud: "Du meldte dette login som svindel. Det er stoppet.",
    expired: "Tiden er gået. Start igen, hvis du vil logge på.",
    retry: "Prøv igen",
    back: "Tilbage til",
    refused_heading: "Login afvist",
    expired_heading: "Tiden er gået",
    busy: "Der er for mange login-forsøg lige nu. Prøv igen om lidt.",
    error_heading: "Login kan ikke fortsætte",
    bad_link: "Linket er ugyldigt, brugt eller for gammelt. Gå tilbage til tjenesten, og start login igen.",
    other_browser: "Dette login blev startet i en anden browser. Start login fra tjenesten i denne browser.",
    login_over: "Dette login er udløbet. Gå tilbage til tjenesten, og start igen.",
    already_done: "Dette login er allerede afsluttet.",
    bad_form: "Siden var for gammel. Prøv igen.",
    bad_user_id: "Skriv dit bruger-id (højst 64 tegn).",
};

static EN: Words = Words {
    site: "eID log in",
    language_name: "English",
    login_at: "Log in to",
    user_id_heading: "Enter your user ID",
    user_id_label: "User ID",
    user_id_help: "You approve afterwards in the eID app. Never type your PIN on a web page.",
    remember: "Remember my user ID on this browser",
    next: "Continue",
    open_app_heading: "Open the eID app",
    open_app_steps: "Open the app, read the text, and type the code below when the app asks for it. Approve only if you started this login yourself.",
    code_label: "Code",
    qr_alt: "QR code with the same code, to scan with the app",
    time_left: "Time left",
    not_you: "Nothing in the app? Check your user ID.",
    start_again: "Start again",
    waiting: "Waiting for your approval in the app …",
    approved: "Approved. Taking you back …",
    denied: "You refused the login in the app.",
    fraud: "You reported this login as fraud. It has been stopped.",
    expired: "Time is up. Start again if you want to log in.",
    retry: "Try again",
    back: "Back to",
    refused_heading: "Login refused",
    expired_heading: "Time is up",
    busy: "There are too many login attempts right now. Try again shortly.",
    error_heading: "The login cannot continue",
    bad_link: "The link is invalid, used or too old. Go back to the service and start the login again.",
    other_browser: "This login was started in another browser. Start the login from the service in this browser.",
    login_over: "This login has expired. Go back to the service and start again.",
    already_done: "This login is already finished.",
    bad_form: "The page was too old. Try again.",
    bad_user_id: "Type your user ID (at most 64 characters).",
};

#[cfg(test)]
mod tests {
    use super::Lang;

    #[test]
    fn accept_language_picks_the_first_supported_language() {
        assert_eq!(
            Lang::from_accept_language("en-GB,en;q=0.9,da;q=0.8"),
            Some(Lang::En)
        );
        assert_eq!(
            Lang::from_accept_language("de-DE, DA;q=0.5"),
            Some(Lang::Da)
        );
        assert_eq!(Lang::from_accept_language("de, fr"), None);
        assert_eq!(Lang::from_accept_language(""), None);
    }

    #[test]
    fn only_the_exact_tags_parse() {
        assert_eq!(Lang::parse("da"), Some(Lang::Da));
        assert_eq!(Lang::parse("en"), Some(Lang::En));
        assert_eq!(Lang::parse("EN"), None);
        assert_eq!(Lang::parse("en-GB"), None);
    }
}
