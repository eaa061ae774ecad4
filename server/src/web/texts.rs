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

impl Lang {
    /// The self-service pages' words.
    pub(crate) fn self_service(self) -> &'static SelfServiceWords {
        match self {
            Lang::Da => &SELF_SERVICE_DA,
            Lang::En => &SELF_SERVICE_EN,
        }
    }
}

/// Every fixed text of the self-service pages (docs/self-service.md) that
/// the login pages' [`Words`] do not already have.
#[derive(Debug)]
pub(crate) struct SelfServiceWords {
    pub(crate) site: &'static str,
    pub(crate) sign_in_heading: &'static str,
    pub(crate) sign_in_help: &'static str,
    pub(crate) open_app_steps: &'static str,
    pub(crate) signing_in: &'static str,
    pub(crate) change_approved: &'static str,
    pub(crate) change_expired: &'static str,
    pub(crate) change_refused: &'static str,
    pub(crate) to_overview: &'static str,
    pub(crate) account_heading: &'static str,
    pub(crate) user_id: &'static str,
    pub(crate) phone: &'static str,
    pub(crate) email: &'static str,
    pub(crate) not_given: &'static str,
    pub(crate) authenticators_heading: &'static str,
    pub(crate) kind_app: &'static str,
    /// The link to the chip page (add or confirm a chip).
    pub(crate) kind_chip: &'static str,
    pub(crate) created: &'static str,
    pub(crate) active: &'static str,
    pub(crate) locked: &'static str,
    pub(crate) changes_heading: &'static str,
    pub(crate) no_changes: &'static str,
    pub(crate) new_phone: &'static str,
    pub(crate) new_email: &'static str,
    pub(crate) new_user_id: &'static str,
    pub(crate) awaiting_first_login: &'static str,
    pub(crate) waiting_second_login: &'static str,
    pub(crate) awaiting_second_login: &'static str,
    pub(crate) earliest: &'static str,
    pub(crate) second_login: &'static str,
    pub(crate) cancel: &'static str,
    pub(crate) change_phone_heading: &'static str,
    pub(crate) phone_help: &'static str,
    pub(crate) change_email_heading: &'static str,
    pub(crate) change_user_id_heading: &'static str,
    pub(crate) user_id_rules: &'static str,
    pub(crate) two_logins: &'static str,
    pub(crate) start_change: &'static str,
    pub(crate) sign_out: &'static str,
    pub(crate) session_left: &'static str,
    pub(crate) session_over_heading: &'static str,
    pub(crate) session_over: &'static str,
    pub(crate) sign_in_again: &'static str,
    pub(crate) signed_out: &'static str,
    pub(crate) other_browser: &'static str,
    pub(crate) invalid_phone: &'static str,
    pub(crate) invalid_email: &'static str,
    pub(crate) invalid_user_id: &'static str,
    pub(crate) change_pending: &'static str,
    pub(crate) too_early: &'static str,
    pub(crate) change_closed: &'static str,
    pub(crate) cancelled: &'static str,
    pub(crate) now: &'static str,
    pub(crate) in_minutes: &'static str,
    pub(crate) in_hours: &'static str,
    pub(crate) at: &'static str,
    pub(crate) months: [&'static str; 12],
}

static SELF_SERVICE_DA: SelfServiceWords = SelfServiceWords {
    site: "eID Selvbetjening",
    sign_in_heading: "Log på Selvbetjening",
    sign_in_help: "Her kan du se dine oplysninger og skifte telefonnummer, e-mailadresse og bruger-id. Du godkender i eID-appen. Du skal aldrig skrive din PIN-kode på en hjemmeside.",
    open_app_steps: "Åbn appen, læs teksten fra eID Selvbetjening, og skriv koden herunder, når appen beder om den. Godkend kun, hvis du selv har startet det her.",
    signing_in: "Godkendt. Du logges på …",
    change_approved: "Godkendt. Du sendes tilbage til oversigten …",
    change_expired: "Tiden er gået. Du kan prøve igen fra oversigten.",
    change_refused: "Du afviste i appen. Ændringen er stoppet.",
    to_overview: "Til oversigten",
    account_heading: "Din eID",
    user_id: "Bruger-id",
    phone: "Telefonnummer",
    email: "E-mailadresse",
    not_given: "Ikke angivet",
    authenticators_heading: "Dine godkendere",
    kind_app: "eID-app",
    kind_chip: "Chip (sikkerhedsnøgle)",
    created: "Oprettet",
    active: "Aktiv",
    locked: "Låst (forkert PIN-kode for mange gange)",
    changes_heading: "Igangværende ændringer",
    no_changes: "Ingen ændringer er i gang.",
    new_phone: "Nyt telefonnummer",
    new_email: "Ny e-mailadresse",
    new_user_id: "Nyt bruger-id",
    awaiting_first_login: "Venter på din første godkendelse i appen",
    waiting_second_login: "Første godkendelse er givet; venter på den anden",
    awaiting_second_login: "Anden godkendelse er sendt til appen",
    earliest: "Kan gennemføres tidligst",
    second_login: "Godkend ændringen i appen (trin 2 af 2)",
    cancel: "Annullér ændringen",
    change_phone_heading: "Skift telefonnummer",
    phone_help: "Med landekode, fx +45 20 30 40 50.",
    change_email_heading: "Skift e-mailadresse",
    change_user_id_heading: "Skift bruger-id",
    user_id_rules: "Mindst 8 tegn med bogstaver, tal og et specialtegn. Ikke dit navn, telefonnummer eller din e-mailadresse.",
    two_logins: "Et nyt telefonnummer eller en ny e-mailadresse kræver to godkendelser i appen med mindst en times mellemrum. Din gamle og din nye kontakt får besked hver gang.",
    start_change: "Start ændringen",
    sign_out: "Log af",
    session_left: "Du logges automatisk af",
    session_over_heading: "Du er logget af",
    session_over: "Din tid i Selvbetjening er udløbet. Log på igen for at fortsætte.",
    sign_in_again: "Log på igen",
    signed_out: "Du er logget af.",
    other_browser: "Denne side hører til en anden browser eller et udløbet login. Log på Selvbetjening i denne browser.",
    invalid_phone: "Skriv et gyldigt telefonnummer med landekode, fx +4520304050.",
    invalid_email: "Skriv en gyldig e-mailadresse.",
    invalid_user_id: "Det nye bruger-id følger ikke reglerne.",
    change_pending: "En ændring af samme slags er allerede i gang. Gennemfør eller annullér den først.",
    too_early: "For tidligt. Den anden godkendelse kan ske fra {when} ({in}). Forsøget er meddelt til både din gamle og din nye kontakt.",
    change_closed: "Ændringen er ikke længere åben.",
    cancelled: "Ændringen er annulleret. Din gamle og din nye kontakt får besked.",
    now: "nu",
    in_minutes: "om {m} min",
    in_hours: "om {h} t {m} min",
    at: "kl.",
    months: [
        "januar",
        "februar",
        "marts",
        "april",
        "maj",
        "juni",
        "juli",
        "august",
        "september",
        "oktober",
        "november",
        "december",
    ],
};

static SELF_SERVICE_EN: SelfServiceWords = SelfServiceWords {
    site: "eID self-service",
    sign_in_heading: "Sign in to self-service",
    sign_in_help: "Here you see your details and change your phone number, e-mail address and user ID. You approve in the eID app. Never type your PIN on a web page.",
    open_app_steps: "Open the app, read the text from eID Selvbetjening, and type the code below when the app asks for it. Approve only if you started this yourself.",
    signing_in: "Approved. Signing you in …",
    change_approved: "Approved. Taking you back to the overview …",
    change_expired: "Time is up. You can try again from the overview.",
    change_refused: "You refused in the app. The change is stopped.",
    to_overview: "To the overview",
    account_heading: "Your eID",
    user_id: "User ID",
    phone: "Phone number",
    email: "E-mail address",
    not_given: "Not given",
    authenticators_heading: "Your authenticators",
    kind_app: "eID app",
    kind_chip: "Chip (security key)",
    created: "Created",
    active: "Active",
    locked: "Locked (wrong PIN too many times)",
    changes_heading: "Changes under way",
    no_changes: "No change is under way.",
    new_phone: "New phone number",
    new_email: "New e-mail address",
    new_user_id: "New user ID",
    awaiting_first_login: "Waiting for your first approval in the app",
    waiting_second_login: "First approval given; waiting for the second",
    awaiting_second_login: "The second approval was sent to the app",
    earliest: "Can complete at the earliest",
    second_login: "Approve the change in the app (step 2 of 2)",
    cancel: "Cancel the change",
    change_phone_heading: "Change phone number",
    phone_help: "With the country code, e.g. +45 20 30 40 50.",
    change_email_heading: "Change e-mail address",
    change_user_id_heading: "Change user ID",
    user_id_rules: "At least 8 characters with letters, digits and a special character. Not your name, phone number or e-mail address.",
    two_logins: "A new phone number or e-mail address takes two approvals in the app at least an hour apart. Your old and your new contact are told each time.",
    start_change: "Start the change",
    sign_out: "Sign out",
    session_left: "You are signed out automatically",
    session_over_heading: "You are signed out",
    session_over: "Your self-service time is over. Sign in again to go on.",
    sign_in_again: "Sign in again",
    signed_out: "You are signed out.",
    other_browser: "This page belongs to another browser or an expired sign-in. Sign in to self-service in this browser.",
    invalid_phone: "Type a valid phone number with the country code, e.g. +4520304050.",
    invalid_email: "Type a valid e-mail address.",
    invalid_user_id: "The new user ID does not follow the rules.",
    change_pending: "A change of the same kind is already under way. Complete or cancel it first.",
    too_early: "Too early. The second approval can happen from {when} ({in}). This attempt was told to both your old and your new contact.",
    change_closed: "The change is no longer open.",
    cancelled: "The change is cancelled. Your old and your new contact are told.",
    now: "now",
    in_minutes: "in {m} min",
    in_hours: "in {h} h {m} min",
    at: "at",
    months: [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ],
};

impl Lang {
    /// The words of the login methods and the code-device steps.
    pub(crate) fn methods(self) -> &'static MethodWords {
        match self {
            Lang::Da => &METHODS_DA,
            Lang::En => &METHODS_EN,
        }
    }
}

/// The login page's words for the choice of login method on the user-ID
/// step and for the code-device steps (docs/login-page.md).
#[derive(Debug)]
pub(crate) struct MethodWords {
    pub(crate) legend: &'static str,
    pub(crate) app: &'static str,
    pub(crate) code_display: &'static str,
    pub(crate) code_reader: &'static str,
    pub(crate) chip: &'static str,
    pub(crate) app_chip: &'static str,
    pub(crate) not_offered: &'static str,
    pub(crate) code_heading: &'static str,
    pub(crate) code_label: &'static str,
    pub(crate) code_help_display: &'static str,
    pub(crate) code_help_reader: &'static str,
    pub(crate) access_code_heading: &'static str,
    pub(crate) access_code_label: &'static str,
    pub(crate) access_code_help: &'static str,
    pub(crate) refused: &'static str,
    pub(crate) done_heading: &'static str,
    pub(crate) done: &'static str,
    pub(crate) other_method: &'static str,
    pub(crate) activate_heading: &'static str,
    pub(crate) activate_help: &'static str,
    pub(crate) activation_code_label: &'static str,
    pub(crate) serial_label: &'static str,
    pub(crate) first_code_label: &'static str,
    pub(crate) second_code_label: &'static str,
    pub(crate) new_access_code_label: &'static str,
    pub(crate) access_code_again_label: &'static str,
    pub(crate) access_code_rules: &'static str,
    pub(crate) activate_button: &'static str,
    pub(crate) activated: &'static str,
    pub(crate) activation_refused: &'static str,
    pub(crate) already_has_one: &'static str,
    pub(crate) access_codes_differ: &'static str,
    pub(crate) weak_access_code: &'static str,
    pub(crate) by_app_link: &'static str,
    pub(crate) by_app_heading: &'static str,
    pub(crate) by_app_help: &'static str,
    pub(crate) by_app_button: &'static str,
    pub(crate) by_app_what: &'static str,
    pub(crate) by_app_refused: &'static str,
    pub(crate) by_app_mismatch: &'static str,
    pub(crate) by_app_again: &'static str,
}

static METHODS_DA: MethodWords = MethodWords {
    legend: "Hvordan vil du godkende?",
    app: "eID-appen",
    code_display: "Kodeviser",
    code_reader: "Kodeoplæser",
    chip: "Chip",
    app_chip: "eID-appen og chip",
    not_offered: "Vælg en af måderne herunder.",
    code_heading: "Indtast koden fra din kodeviser",
    code_label: "Sekscifret kode",
    code_help_display: "Tryk på knappen på kodeviseren, og skriv de seks cifre, den viser.",
    code_help_reader: "Tryk på knappen på kodeoplæseren, og skriv de seks cifre, den læser op.",
    access_code_heading: "Indtast din adgangskode",
    access_code_label: "Adgangskode",
    access_code_help: "Den adgangskode, du valgte, da du tog enheden i brug.",
    refused: "Det lykkedes ikke. Tjek bruger-id, kode og adgangskode, og prøv igen med en ny kode.",
    done_heading: "Du er logget på",
    done: "Du sendes tilbage til tjenesten.",
    other_method: "Brug en anden måde eller et andet bruger-id",
    activate_heading: "Tag din kodeviser eller kodeoplæser i brug",
    activate_help: "Du skal bruge den aktiveringskode, du har fået af eID-support, og enheden i hånden.",
    activation_code_label: "Aktiveringskode fra eID-support",
    serial_label: "Serienummer (står på bagsiden af enheden)",
    first_code_label: "Første kode fra enheden",
    second_code_label: "Næste kode fra enheden (vent, til den skifter)",
    new_access_code_label: "Vælg en adgangskode",
    access_code_again_label: "Gentag adgangskoden",
    access_code_rules: "8 til 64 tegn, ikke let at gætte, og ikke dit bruger-id.",
    activate_button: "Tag i brug",
    activated: "Enheden er taget i brug. Du kan logge på med den nu.",
    activation_refused: "Det lykkedes ikke. Tjek bruger-id, aktiveringskode, serienummer og koderne, og prøv igen med nye koder.",
    already_has_one: "Du har allerede en kodeviser eller kodeoplæser. En ny skal godkendes i eID-appen.",
    access_codes_differ: "De to adgangskoder er ikke ens.",
    weak_access_code: "Adgangskoden er for let at gætte, for kort eller for lang, eller den indeholder dit bruger-id.",
    by_app_link: "Har du eID-appen? Tag enheden i brug med en godkendelse i appen i stedet.",
    by_app_heading: "Tag en kodeviser eller kodeoplæser i brug med eID-appen",
    by_app_help: "Du skal have enheden i hånden og eID-appen på din telefon. Har du allerede en kodeviser eller kodeoplæser, holder den op med at virke, når du godkender.",
    by_app_button: "Fortsæt til appen",
    by_app_what: "Tilføj en kodeviser eller kodeoplæser",
    by_app_refused: "Du afviste i appen. Enheden er ikke taget i brug.",
    by_app_mismatch: "Det lykkedes ikke. Tjek serienummeret og koderne, og prøv igen med nye koder.",
    by_app_again: "Begynd forfra",
};

static METHODS_EN: MethodWords = MethodWords {
    legend: "How do you want to approve?",
    app: "The eID app",
    code_display: "Code display",
    code_reader: "Audio code reader",
    chip: "Chip",
    app_chip: "The eID app and a chip",
    not_offered: "Choose one of the ways below.",
    code_heading: "Enter the code from your code device",
    code_label: "Six-digit code",
    code_help_display: "Press the button on the code display and type the six digits it shows.",
    code_help_reader: "Press the button on the audio code reader and type the six digits it reads out.",
    access_code_heading: "Enter your access code",
    access_code_label: "Access code",
    access_code_help: "The access code you chose when you started using the device.",
    refused: "That did not work. Check your user ID, code and access code, and try again with a new code.",
    done_heading: "You are logged in",
    done: "Taking you back to the service.",
    other_method: "Use another way or another user ID",
    activate_heading: "Start using your code display or audio code reader",
    activate_help: "You need the activation code eID support gave you, and the device in your hand.",
    activation_code_label: "Activation code from eID support",
    serial_label: "Serial number (on the back of the device)",
    first_code_label: "First code from the device",
    second_code_label: "Next code from the device (wait until it changes)",
    new_access_code_label: "Choose an access code",
    access_code_again_label: "Repeat the access code",
    access_code_rules: "8 to 64 characters, not easy to guess, and not your user ID.",
    activate_button: "Start using it",
    activated: "The device is ready. You can log in with it now.",
    activation_refused: "That did not work. Check the user ID, activation code, serial number and codes, and try again with new codes.",
    already_has_one: "You already have a code display or audio code reader. A new one must be approved in the eID app.",
    access_codes_differ: "The two access codes are not the same.",
    weak_access_code: "The access code is too easy to guess, too short or too long, or it contains your user ID.",
    by_app_link: "Do you have the eID app? Start using the device with an approval in the app instead.",
    by_app_heading: "Start using a code display or audio code reader with the eID app",
    by_app_help: "You need the device in your hand and the eID app on your phone. If you already have a code display or audio code reader, it stops working when you approve.",
    by_app_button: "Continue in the app",
    by_app_what: "Add a code display or audio code reader",
    by_app_refused: "You refused in the app. The device was not taken into use.",
    by_app_mismatch: "That did not work. Check the serial number and codes, and try again with new codes.",
    by_app_again: "Start again",
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
