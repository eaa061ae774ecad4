//! Display models: what the app shows for a request, in Danish or English.
//!
//! The app renders these fields and nothing else from the request, so a text
//! that breaks the rules is never shown (a warning says why instead).
//!
//! # Bidirectional text
//!
//! The rules refuse every bidi control (overrides, embeddings, isolates,
//! marks: Trojan Source), so no text can reorder itself or escape into its
//! surroundings. Right-to-left letters (Hebrew, Arabic) are allowed in
//! names and texts, and under the Unicode Bidirectional Algorithm they still
//! pull neighbouring neutral characters (digits, punctuation) into their
//! run: "שלום 100 kr" in a left-to-right paragraph shows the amount on the
//! other side of the name. The safe rendering, which the shells must follow:
//!
//! - Show the reference text as [`RequestView::reference_lines`]: one
//!   paragraph per line, each with its own base [`TextDirection`] (its
//!   first strong letter, as the algorithm's rules P2–P3 would pick), so a
//!   line cannot reorder another line or the surrounding UI.
//! - Show [`RequestView::provider_name`] in its own text element with base
//!   direction [`RequestView::provider_name_direction`]; never concatenate it
//!   with other text. [`RequestView::title`], which does embed it, wraps it
//!   in FIRST STRONG ISOLATE … POP DIRECTIONAL ISOLATE when it has
//!   right-to-left letters (the isolate is ours, around a checked name that
//!   has no bidi controls of its own, so it cannot be closed from inside).
//!   A refused name is never shown, so it is never isolated either.
//! - Words that mix scripts ("Nоrdisk" with a Cyrillic о) are shown with a
//!   [`WarningKind::MixedScript`] warning.
//!
//! # Screen imitation
//!
//! A service provider's text must not pass for the app's own words
//! ("Godkend ikke dette", a blank line, "Afsender: eID Selvbetjening"). The
//! text rules refuse blank lines, indented lines, lines that start with the
//! app's headings, warnings or sender labels, and any mention of the eID's
//! own names, on the server and again here; a refused text is hidden
//! ([`WarningKind::TextRefused`]) and the request can only be denied. A
//! provider name of the eID itself from any provider but the built-in one is
//! hidden the same way. The shells must show [`RequestView::reference_lines`]
//! only inside a framed block under the provider's name, never as free text
//! on the screen (`docs/threat-model.md`).
//!
//! # Calls and screen sharing
//!
//! While the shell's [`crate::ContextProvider`] reports a call, screen
//! sharing or remote control, the model leads with the strongest of those
//! warnings ([`RequestView::call_warning`], also first in
//! [`RequestView::warnings`]) and [`RequestView::needs_started_myself`] holds
//! the swipe until the person confirms "I started this myself"
//! ([`crate::App::confirm_started_myself`], after the read time). The shells
//! must keep the swipe disabled while it is `true`.

pub use eid_protocol::confusables::Direction as TextDirection;
use eid_protocol::confusables::{
    has_rtl, is_mixed_script, is_reserved_provider_name, isolate, line_direction,
    mixed_script_words,
};
use eid_protocol::text::{TextError, validate_provider_name, validate_reference_text};
use eid_protocol::{AuthenticatorId, RequestEnvelopeBody, RequestId, RequestKind};

use crate::approval::{Action, allowed_actions};

/// Language of the texts in a display model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Language {
    /// Dansk.
    #[default]
    Danish,
    /// English.
    English,
}

impl Action {
    /// The button label.
    pub fn label(self, lang: Language) -> &'static str {
        match (self, lang) {
            (Action::Approve, Language::Danish) => "Godkend",
            (Action::Approve, Language::English) => "Approve",
            (Action::Deny, Language::Danish) => "Afvis",
            (Action::Deny, Language::English) => "Deny",
            (Action::ReportFraud, Language::Danish) => "Det var ikke mig",
            (Action::ReportFraud, Language::English) => "This wasn't me",
        }
    }
}

/// Why a warning is shown (stable for the app's styling; the text is in `Warning`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WarningKind {
    /// Always shown: approve only what you started yourself.
    OnlyApproveWhatYouStarted,
    /// The reference text broke the rules and is hidden.
    TextRefused,
    /// The service provider's name broke the rules and is hidden.
    ProviderNameRefused,
    /// The login screen shows a code that must be entered before approving.
    BindingCodeRequired,
    /// A self-service login: it can change the identity's contact data or user ID.
    SelfService,
    /// Approving adds another device that can approve everything: the
    /// strongest warning.
    NewDevice,
    /// Approving puts a code device on the identity, which logs in with its
    /// access code alone: the strongest warning.
    CodeDevice,
    /// The reference text has words that mix scripts (such as a Latin word
    /// with a Cyrillic look-alike letter), or the provider's name does: a
    /// sign of a look-alike. Shown, not refused (the text is still valid).
    MixedScript,
    /// A phone or VoIP call is on: the strongest warning, shown first.
    OnCall,
    /// An accessibility service that is not from the system is on (a
    /// remote-control app can use it to watch and press for the person).
    RemoteControl,
    /// The screen is being shared, mirrored or recorded.
    ScreenShared,
}

/// The call-context warning of a request's screen, with the words of the
/// gate before the swipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallWarning {
    /// The warning (kind [`WarningKind::OnCall`],
    /// [`WarningKind::RemoteControl`] or [`WarningKind::ScreenShared`]).
    pub warning: Warning,
    /// The label of the confirmation the person must give before the swipe
    /// works ("I started this myself").
    pub confirm_label: String,
}

/// One line of the reference text with the base direction to show it in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayLine {
    /// The line (no bidi controls, no line break).
    pub text: String,
    /// Base direction of its paragraph.
    pub direction: TextDirection,
}

/// One warning with its text in the model's language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// What it is about.
    pub kind: WarningKind,
    /// Text to show.
    pub text: String,
}

/// Everything the app shows for one pending request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestView {
    /// The authenticator (authenticator) the request is for.
    pub authenticator_id: AuthenticatorId,
    /// That authenticator's user ID (to tell household members apart).
    pub user_id: String,
    /// The request.
    pub request_id: RequestId,
    /// Login or signature.
    pub kind: RequestKind,
    /// Heading, e.g. "Log på hos Nordisk Bank A/S".
    pub title: String,
    /// The provider's registered name; `None` if it broke the rules. Show it
    /// in its own text element with [`RequestView::provider_name_direction`].
    pub provider_name: Option<String>,
    /// Base direction for showing `provider_name`.
    pub provider_name_direction: TextDirection,
    /// The reference text; `None` if it broke the rules.
    pub reference_text: Option<String>,
    /// The reference text line by line, each with its base direction: what
    /// the shells render (one paragraph per line). Empty if it broke the rules.
    pub reference_lines: Vec<DisplayLine>,
    /// Milliseconds left (server deadline on the monotonic clock).
    pub time_left_ms: u64,
    /// Warnings, most important first.
    pub warnings: Vec<Warning>,
    /// What the person may do.
    pub actions: Vec<Action>,
    /// Language of the texts.
    pub language: Language,
    /// What the shell's context provider saw when the model was built.
    pub call_signals: crate::CallSignals,
    /// The call or screen-sharing warning, when a signal is on (it is also
    /// the first of `warnings`).
    pub call_warning: Option<CallWarning>,
    /// The swipe must stay disabled: a signal is on and the person has not
    /// yet confirmed they started this themselves.
    pub needs_started_myself: bool,
}

fn kind_title(kind: RequestKind, provider: Option<&str>, lang: Language) -> String {
    let who = provider.unwrap_or(match lang {
        Language::Danish => "ukendt tjeneste",
        Language::English => "unknown service",
    });
    match (kind, lang) {
        (RequestKind::SelfService, Language::Danish) => "Log på selvbetjening".into(),
        (RequestKind::SelfService, Language::English) => "Log in to self-service".into(),
        (RequestKind::NewDevice, Language::Danish) => "TILFØJ NY ENHED".into(),
        (RequestKind::NewDevice, Language::English) => "ADD A NEW DEVICE".into(),
        (RequestKind::CodeDevice, Language::Danish) => "TILFØJ KODEVISER".into(),
        (RequestKind::CodeDevice, Language::English) => "ADD A CODE DEVICE".into(),
        (RequestKind::Signature, Language::Danish) => format!("Underskriv hos {who}"),
        (RequestKind::Signature, Language::English) => format!("Sign at {who}"),
        (_, Language::Danish) => format!("Log på hos {who}"),
        (_, Language::English) => format!("Log in at {who}"),
    }
}

fn reason(e: &TextError, lang: Language) -> &'static str {
    match (e, lang) {
        (TextError::BidiControl { .. }, Language::Danish) => {
            "den indeholder tegn, der kan vende rækkefølgen af det viste"
        }
        (TextError::BidiControl { .. }, Language::English) => {
            "it contains characters that can reorder what is shown"
        }
        (TextError::Invisible { .. }, Language::Danish) => "den indeholder usynlige tegn",
        (TextError::Invisible { .. }, Language::English) => "it contains invisible characters",
        (TextError::ControlCharacter { .. } | TextError::PrivateUse { .. }, Language::Danish) => {
            "den indeholder ugyldige tegn"
        }
        (TextError::ControlCharacter { .. } | TextError::PrivateUse { .. }, Language::English) => {
            "it contains invalid characters"
        }
        (TextError::Unassigned { .. }, Language::Danish) => "den indeholder ukendte tegn",
        (TextError::Unassigned { .. }, Language::English) => "it contains unknown characters",
        (TextError::CombiningMarks { .. }, Language::Danish) => {
            "den indeholder tegn med for mange accenter"
        }
        (TextError::CombiningMarks { .. }, Language::English) => {
            "it contains characters with too many accents"
        }
        (TextError::BlankLine { .. } | TextError::ImitatesApp { .. }, Language::Danish) => {
            "den kan ligne appens egen tekst"
        }
        (TextError::BlankLine { .. } | TextError::ImitatesApp { .. }, Language::English) => {
            "it could pass for the app's own text"
        }
        (TextError::Reserved, Language::Danish) => "det er forbeholdt eID selv",
        (TextError::Reserved, Language::English) => "it is reserved for the eID itself",
        (TextError::TooLong { .. } | TextError::TooManyLines { .. }, Language::Danish) => {
            "den er for lang"
        }
        (TextError::TooLong { .. } | TextError::TooManyLines { .. }, Language::English) => {
            "it is too long"
        }
        (_, Language::Danish) => "den er ikke gyldig",
        (_, Language::English) => "it is not valid",
    }
}

/// Builds the display model of an envelope with `time_left_ms` left.
pub(crate) fn build_view(
    authenticator_id: AuthenticatorId,
    user_id: &str,
    envelope: &RequestEnvelopeBody,
    time_left_ms: u64,
    lang: Language,
) -> RequestView {
    let text_check = validate_reference_text(&envelope.reference_text);
    let name_check = check_provider_name(envelope);
    let provider_name = name_check
        .is_ok()
        .then(|| envelope.service_provider_name.clone());
    let reference_text = text_check.is_ok().then(|| envelope.reference_text.clone());
    let reference_lines = reference_text
        .as_deref()
        .map(|t| {
            t.split('\n')
                .map(|line| DisplayLine {
                    text: line.to_owned(),
                    direction: line_direction(line),
                })
                .collect()
        })
        .unwrap_or_default();
    let provider_name_direction = provider_name
        .as_deref()
        .map_or(TextDirection::LeftToRight, line_direction);
    let mixed_words = reference_text
        .as_deref()
        .map_or(0, |t| mixed_script_words(t).len());
    let mixed_name = provider_name.as_deref().is_some_and(is_mixed_script);
    let mut warnings = Vec::new();
    // The first-party kinds may come only from the built-in provider; the
    // server refuses anything else, and the phone does not take it on trust.
    let first_party_ok = !envelope.kind.is_first_party()
        || envelope.service_provider_id == eid_protocol::SELF_SERVICE_PROVIDER_ID;
    match envelope.kind {
        RequestKind::NewDevice => warnings.push(Warning {
            kind: WarningKind::NewDevice,
            text: match lang {
                Language::Danish => "ADVARSEL: Godkender du, kan den nye enhed godkende alt i dit navn. Godkend KUN, hvis du selv står med den nye telefon i hånden. Har nogen bedt dig om det i telefonen, på sms eller mail, er det svindel: tryk \"Det var ikke mig\".".into(),
                Language::English => "WARNING: If you approve, the new device can approve everything in your name. Approve ONLY if you are holding the new phone yourself. If anyone asked you to do this by phone, text or e-mail, it is a scam: press \"This wasn't me\".".into(),
            },
        }),
        RequestKind::CodeDevice => warnings.push(Warning {
            kind: WarningKind::CodeDevice,
            text: match lang {
                Language::Danish => "ADVARSEL: Godkender du, kan kodeviseren eller kodeoplæseren med det viste serienummer logge på i dit navn, og en kodeviser, du har nu, holder op med at virke. Godkend KUN, hvis du selv står med den i hånden. Har nogen bedt dig om det i telefonen, på sms eller mail, er det svindel: tryk \"Det var ikke mig\".".into(),
                Language::English => "WARNING: If you approve, the code display or audio code reader with the serial number shown can log in in your name, and any code device you have now stops working. Approve ONLY if you are holding it yourself. If anyone asked you to do this by phone, text or e-mail, it is a scam: press \"This wasn't me\".".into(),
            },
        }),
        RequestKind::SelfService => warnings.push(Warning {
            kind: WarningKind::SelfService,
            text: match lang {
                Language::Danish => "Dette er et login til selvbetjening, hvor dit telefonnummer, din e-mail eller dit bruger-ID kan ændres. Ingen bank eller myndighed beder dig om det.".into(),
                Language::English => "This is a login to self-service, where your phone number, e-mail or user ID can be changed. No bank or authority will ever ask you to do this.".into(),
            },
        }),
        _ => {}
    }
    if let Err(e) = &text_check {
        let text = match lang {
            Language::Danish => format!(
                "Teksten vises ikke, fordi {}. Godkend ikke. Afvis, eller meld misbrug hvis du ikke selv startede dette.",
                reason(e, lang)
            ),
            Language::English => format!(
                "The text is not shown because {}. Do not approve. Deny, or report it if you did not start this yourself.",
                reason(e, lang)
            ),
        };
        warnings.push(Warning {
            kind: WarningKind::TextRefused,
            text,
        });
    }
    if let Err(e) = &name_check {
        let text = match lang {
            Language::Danish => format!("Tjenestens navn vises ikke, fordi {}.", reason(e, lang)),
            Language::English => {
                format!(
                    "The service's name is not shown because {}.",
                    reason(e, lang)
                )
            }
        };
        warnings.push(Warning {
            kind: WarningKind::ProviderNameRefused,
            text,
        });
    }
    if mixed_words > 0 || mixed_name {
        warnings.push(Warning {
            kind: WarningKind::MixedScript,
            text: match lang {
                Language::Danish => "Pas på: Teksten eller tjenestens navn blander bogstaver fra forskellige alfabeter (fx et russisk о i et dansk ord). Det bruges til at efterligne kendte navne. Godkend kun, hvis du er sikker på, hvem der spørger.".into(),
                Language::English => "Careful: the text or the service's name mixes letters from different alphabets (such as a Cyrillic о in a Danish word). This is used to imitate well-known names. Approve only if you are sure who is asking.".into(),
            },
        });
    }
    warnings.push(Warning {
        kind: WarningKind::OnlyApproveWhatYouStarted,
        text: match lang {
            Language::Danish => "Godkend kun, hvis du selv har startet handlingen. Banken, politiet, Digitaliseringsstyrelsen eller MitID-support beder dig aldrig om at godkende noget i telefonen.".into(),
            Language::English => "Only approve what you started yourself. Your bank, the police, the Agency for Digitisation or support will never ask you to approve anything on the phone.".into(),
        },
    });
    if envelope.binding_required {
        warnings.push(Warning {
            kind: WarningKind::BindingCodeRequired,
            text: match lang {
                Language::Danish => "Indtast koden, der vises på skærmen, hvor du startede.".into(),
                Language::English => "Enter the code shown on the screen where you started.".into(),
            },
        });
    }
    let text_ok = text_check.is_ok() && name_check.is_ok() && first_party_ok;
    RequestView {
        authenticator_id,
        user_id: user_id.to_owned(),
        request_id: envelope.request_id,
        kind: envelope.kind,
        title: kind_title(
            envelope.kind,
            provider_name
                .as_deref()
                .map(|n| if has_rtl(n) { isolate(n) } else { n.to_owned() })
                .as_deref(),
            lang,
        ),
        provider_name,
        provider_name_direction,
        reference_text,
        reference_lines,
        time_left_ms,
        warnings,
        actions: allowed_actions(text_ok, time_left_ms),
        language: lang,
        call_signals: crate::CallSignals::UNKNOWN,
        call_warning: None,
        needs_started_myself: false,
    }
}

/// The call-context warning for `signals`, the strongest first: a call (the
/// scam's own channel), then remote control, then screen sharing. `None`
/// when no signal is on.
pub fn call_warning(signals: &crate::CallSignals, lang: Language) -> Option<CallWarning> {
    let (kind, da, en) = if signals.call.is_on() {
        (
            WarningKind::OnCall,
            "Du taler i telefon. Ingen fra din bank, politiet eller support beder dig om at godkende. Læg på, før du fortsætter.",
            "You are on a call. Nobody from your bank, the police or support will ask you to approve. Hang up before you continue.",
        )
    } else if signals.remote_control.is_on() {
        (
            WarningKind::RemoteControl,
            "En app, der kan styre din telefon, er slået til. Ingen fra din bank, politiet eller support beder dig om at give nogen adgang til din telefon. Hjælper nogen dig på afstand, så stop nu.",
            "An app that can control your phone is switched on. Nobody from your bank, the police or support will ask you to give anyone access to your phone. If someone is helping you remotely, stop now.",
        )
    } else if signals.screen_shared.is_on() {
        (
            WarningKind::ScreenShared,
            "Din skærm bliver delt eller optaget. Ingen fra din bank, politiet eller support beder om at se din skærm. Stop delingen, før du fortsætter.",
            "Your screen is being shared or recorded. Nobody from your bank, the police or support will ask to see your screen. Stop the sharing before you continue.",
        )
    } else {
        return None;
    };
    let (text, confirm_label) = match lang {
        Language::Danish => (
            da,
            "Jeg har selv startet dette, og ingen har bedt mig om det",
        ),
        Language::English => (en, "I started this myself, and nobody asked me to"),
    };
    Some(CallWarning {
        warning: Warning {
            kind,
            text: text.to_owned(),
        },
        confirm_label: confirm_label.to_owned(),
    })
}

/// Adds what the context provider sees to a display model: the warning
/// first, and the gate before the swipe while the person has not confirmed.
pub(crate) fn with_call_context(
    mut view: RequestView,
    signals: crate::CallSignals,
    confirmed: bool,
) -> RequestView {
    view.call_signals = signals;
    view.call_warning = call_warning(&signals, view.language);
    if let Some(w) = &view.call_warning {
        view.warnings.insert(0, w.warning.clone());
        view.needs_started_myself = !confirmed && view.actions.contains(&Action::Approve);
    }
    view
}

/// A view [`build_view`] made for the same authenticator, user ID, envelope
/// and language, with `time_left_ms` left now: the time left is the only input
/// that changes, and of the rest only the actions depend on it.
pub(crate) fn with_time_left(
    mut view: RequestView,
    text_ok: bool,
    time_left_ms: u64,
) -> RequestView {
    view.time_left_ms = time_left_ms;
    view.actions = allowed_actions(text_ok, time_left_ms);
    view
}

/// Checks both texts of an envelope (approval is refused if either fails).
pub(crate) fn check_texts(envelope: &RequestEnvelopeBody) -> Result<(), TextError> {
    if envelope.kind.is_first_party()
        && envelope.service_provider_id != eid_protocol::SELF_SERVICE_PROVIDER_ID
    {
        return Err(TextError::Reserved);
    }
    validate_reference_text(&envelope.reference_text)?;
    check_provider_name(envelope)
}

/// Checks the provider's name of an envelope: the text rules, and that only
/// the built-in provider uses a name of the eID itself. The server refuses
/// such names at registration; the phone does not take that on trust.
fn check_provider_name(envelope: &RequestEnvelopeBody) -> Result<(), TextError> {
    validate_provider_name(&envelope.service_provider_name)?;
    if envelope.service_provider_id != eid_protocol::SELF_SERVICE_PROVIDER_ID
        && is_reserved_provider_name(&envelope.service_provider_name)
    {
        return Err(TextError::Reserved);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use eid_protocol::{IdentityId, ServiceProviderId};

    fn envelope(text: &str, name: &str) -> RequestEnvelopeBody {
        RequestEnvelopeBody {
            request_id: RequestId([1; 16]),
            identity_id: IdentityId([2; 16]),
            kind: RequestKind::Login,
            service_provider_id: ServiceProviderId([3; 16]),
            service_provider_name: name.into(),
            reference_text: text.into(),
            created_at_ms: 0,
            expires_at_ms: 300_000,
            server_nonce: [4; 32],
            binding_required: false,
        }
    }

    #[test]
    fn a_code_device_activation_has_the_loudest_warning_and_only_from_the_eid_itself() {
        let mut e = envelope(
            "Aktivér kodeviser ••••2345",
            eid_protocol::SELF_SERVICE_PROVIDER_NAME,
        );
        e.kind = RequestKind::CodeDevice;
        e.service_provider_id = eid_protocol::SELF_SERVICE_PROVIDER_ID;
        for lang in [Language::Danish, Language::English] {
            let v = build_view(AuthenticatorId([5; 16]), "Anna#1", &e, 1000, lang);
            assert_eq!(
                v.warnings[0].kind,
                WarningKind::CodeDevice,
                "first: the loudest"
            );
            assert!(
                v.warnings[0].text.starts_with("ADVARSEL")
                    || v.warnings[0].text.starts_with("WARNING")
            );
            assert!(v.title.contains("KODEVISER") || v.title.contains("CODE DEVICE"));
            assert!(v.actions.contains(&Action::Approve));
        }
        // From any other provider the kind is not taken on trust.
        e.service_provider_id = ServiceProviderId([3; 16]);
        let v = build_view(
            AuthenticatorId([5; 16]),
            "Anna#1",
            &e,
            1000,
            Language::English,
        );
        assert!(!v.actions.contains(&Action::Approve));
    }

    #[test]
    fn good_text_is_shown_with_all_actions() {
        let v = build_view(
            AuthenticatorId([5; 16]),
            "Anna#1",
            &envelope("Log på Netbank", "Nordisk Bank A/S"),
            1000,
            Language::Danish,
        );
        assert_eq!(v.reference_text.as_deref(), Some("Log på Netbank"));
        assert_eq!(v.title, "Log på hos Nordisk Bank A/S");
        assert_eq!(
            v.actions,
            vec![Action::Approve, Action::Deny, Action::ReportFraud]
        );
        assert_eq!(v.warnings.len(), 1);
        assert_eq!(v.warnings[0].kind, WarningKind::OnlyApproveWhatYouStarted);
        assert_eq!(
            v.reference_lines,
            vec![DisplayLine {
                text: "Log på Netbank".into(),
                direction: TextDirection::LeftToRight
            }]
        );
    }

    #[test]
    fn danish_text_gets_no_mixed_script_warning_and_a_homoglyph_word_does() {
        let ok = build_view(
            AuthenticatorId([5; 16]),
            "Anna#1",
            &envelope(
                "Overførsel 1.250,00 kr. til Ærø Købmand\nKonto 1234-567890",
                "Nordisk Bank A/S",
            ),
            1000,
            Language::Danish,
        );
        assert!(
            ok.warnings
                .iter()
                .all(|w| w.kind != WarningKind::MixedScript)
        );
        let spoof = build_view(
            AuthenticatorId([5; 16]),
            "Anna#1",
            &envelope("Log på N\u{43E}rdisk Netbank", "Nordisk Bank A/S"),
            1000,
            Language::English,
        );
        assert_eq!(
            spoof.reference_text.as_deref(),
            Some("Log på N\u{43E}rdisk Netbank")
        );
        assert!(
            spoof
                .warnings
                .iter()
                .any(|w| w.kind == WarningKind::MixedScript)
        );
        // Still valid text: the person may approve after reading the warning.
        assert!(spoof.actions.contains(&Action::Approve));
        let name = build_view(
            AuthenticatorId([5; 16]),
            "Anna#1",
            &envelope("Log på", "Nordisk B\u{430}nk"),
            1000,
            Language::English,
        );
        assert!(
            name.warnings
                .iter()
                .any(|w| w.kind == WarningKind::MixedScript)
        );
    }

    #[test]
    fn rtl_names_are_isolated_in_the_title_and_lines_carry_their_direction() {
        let v = build_view(
            AuthenticatorId([5; 16]),
            "Anna#1",
            &envelope("Betal 100 kr\nשלום 100 kr", "בנק 12"),
            1000,
            Language::Danish,
        );
        assert_eq!(v.title, "Log på hos \u{2068}בנק 12\u{2069}");
        assert_eq!(v.provider_name.as_deref(), Some("בנק 12"));
        assert_eq!(v.provider_name_direction, TextDirection::RightToLeft);
        let dirs: Vec<_> = v.reference_lines.iter().map(|l| l.direction).collect();
        assert_eq!(
            dirs,
            vec![TextDirection::LeftToRight, TextDirection::RightToLeft]
        );
        assert_eq!(v.reference_lines[1].text, "שלום 100 kr");
        // Hebrew and Latin in separate words is not mixed script.
        assert!(
            v.warnings
                .iter()
                .all(|w| w.kind != WarningKind::MixedScript)
        );
        // A refused name is never shown, so never isolated.
        let bad = build_view(
            AuthenticatorId([5; 16]),
            "Anna#1",
            &envelope("ok", "\u{2067}בנק"),
            1000,
            Language::Danish,
        );
        assert_eq!(bad.provider_name, None);
        assert!(!bad.title.contains('\u{2068}') && !bad.title.contains('\u{2067}'));
        assert!(bad.reference_lines.len() == 1);
    }

    #[test]
    fn bad_text_is_hidden_and_only_deny_allowed() {
        let v = build_view(
            AuthenticatorId([5; 16]),
            "Anna#1",
            &envelope("Pay \u{202E}00.001\u{202C} kr", "Bank\u{200B}"),
            1000,
            Language::English,
        );
        assert_eq!(v.reference_text, None);
        assert!(v.reference_lines.is_empty());
        assert_eq!(v.provider_name, None);
        assert_eq!(v.title, "Log in at unknown service");
        assert_eq!(v.actions, vec![Action::Deny, Action::ReportFraud]);
        let kinds: Vec<_> = v.warnings.iter().map(|w| w.kind).collect();
        assert_eq!(
            kinds,
            vec![
                WarningKind::TextRefused,
                WarningKind::ProviderNameRefused,
                WarningKind::OnlyApproveWhatYouStarted
            ]
        );
        assert!(v.warnings[0].text.contains("reorder"));
        assert!(!v.warnings[0].text.contains('\u{202E}'));
        let expired = build_view(
            AuthenticatorId([5; 16]),
            "Anna#1",
            &envelope("ok", "Bank"),
            0,
            Language::Danish,
        );
        assert!(expired.actions.is_empty());
    }

    /// The screen-imitation attack end to end on the phone: a service
    /// provider's text that fakes a blank-line break and a sender label
    /// naming the eID itself is never shown, and the request can only be
    /// denied or reported.
    #[test]
    fn a_text_imitating_the_app_screen_is_hidden_and_cannot_be_approved() {
        for text in [
            "Godkend ikke dette\n\nAfsender: eID Selvbetjening",
            "Log på Netbank\nAfsender: eID Selvbetjening",
            "Log på Netbank\n\nADVARSEL: Dit eID lukkes i dag",
            "Log på Netbank\nDette er et login til selvbetjening",
            "Log på\u{2800}Netbank",
            "Log på Netbank\u{13430}",
        ] {
            for lang in [Language::Danish, Language::English] {
                let v = build_view(
                    AuthenticatorId([5; 16]),
                    "Anna#1",
                    &envelope(text, "Nordisk Bank A/S"),
                    1000,
                    lang,
                );
                assert_eq!(v.reference_text, None, "{text:?}");
                assert!(v.reference_lines.is_empty(), "{text:?}");
                assert_eq!(v.actions, vec![Action::Deny, Action::ReportFraud]);
                assert_eq!(v.warnings[0].kind, WarningKind::TextRefused);
                assert!(check_texts(&envelope(text, "Nordisk Bank A/S")).is_err());
            }
        }
    }

    /// A name of the eID itself from any other service provider is hidden on
    /// the phone even if a server signed it.
    #[test]
    fn the_eids_own_name_from_another_provider_is_hidden() {
        for name in [
            "eID Selvbetjening Support",
            "eID-Selvbetjening",
            "eID Support",
        ] {
            let v = build_view(
                AuthenticatorId([5; 16]),
                "Anna#1",
                &envelope("Log på Netbank", name),
                1000,
                Language::Danish,
            );
            assert_eq!(v.provider_name, None, "{name:?}");
            assert_eq!(v.actions, vec![Action::Deny, Action::ReportFraud]);
            assert!(check_texts(&envelope("Log på Netbank", name)).is_err());
        }
        // The built-in provider keeps its name.
        let mut own = envelope("Skift bruger-ID til Grete#1950x", "eID Selvbetjening");
        own.kind = RequestKind::SelfService;
        own.service_provider_id = eid_protocol::SELF_SERVICE_PROVIDER_ID;
        let v = build_view(
            AuthenticatorId([5; 16]),
            "Anna#1",
            &own,
            1000,
            Language::Danish,
        );
        assert_eq!(v.provider_name.as_deref(), Some("eID Selvbetjening"));
        assert!(v.actions.contains(&Action::Approve));
    }
}
