//! The words people read: every Danish/English text of a notification or of
//! a security event's detail, so wording is reviewed (and translated) in one
//! file. Texts never carry a link (phishing hygiene, see `crate::notify`) and
//! show contact data only masked.

use eid_protocol::events::SecurityEventKind;
use eid_protocol::wire::ContactChannel;

/// A notification's headline for an event kind: (Danish, English).
pub(crate) fn event_headline(kind: SecurityEventKind) -> (&'static str, &'static str) {
    use SecurityEventKind as K;
    match kind {
        K::DeviceActivated => (
            "En ny enhed er aktiveret til dit eID",
            "A new device was activated for your eID",
        ),
        K::DeviceRemoved => (
            "En enhed er fjernet fra dit eID",
            "A device was removed from your eID",
        ),
        K::PinLockout => (
            "En eID-app er låst efter for mange forkerte PIN-koder",
            "An eID app was locked after too many wrong PINs",
        ),
        K::NewDeviceRequested => (
            "Nogen har bedt om at tilføje en ny enhed til dit eID",
            "Someone asked to add a new device to your eID",
        ),
        K::NewDeviceApproved => (
            "En ny enhed er godkendt til dit eID og virker efter ventetiden",
            "A new device was approved for your eID; it works after the waiting period",
        ),
        K::NewDeviceCancelled => (
            "Tilføjelsen af en ny enhed er annulleret",
            "Adding a new device was cancelled",
        ),
        K::ContactChangeStarted => (
            "En ændring af dit telefonnummer eller din e-mail er startet",
            "A change of your phone number or e-mail was started",
        ),
        K::ContactChangeCompleted => (
            "Dit telefonnummer eller din e-mail er ændret",
            "Your phone number or e-mail was changed",
        ),
        K::ContactChangeCancelled => (
            "Ændringen af dit telefonnummer eller din e-mail er annulleret",
            "The change of your phone number or e-mail was cancelled",
        ),
        K::UserIdChanged => ("Dit bruger-ID er ændret", "Your user ID was changed"),
        K::IdentityBlocked => ("Dit eID er spærret", "Your eID was blocked"),
        K::IdentityUnblocked => ("Spærringen af dit eID er ophævet", "Your eID was unblocked"),
        K::FraudReported => (
            "En anmodning er meldt som svindel",
            "A request was reported as fraud",
        ),
        K::Used => ("Dit eID er brugt", "Your eID was used"),
        K::RequestsHeld => (
            "Nye anmodninger fra en tjeneste, du meldte som svindel, er stoppet",
            "New requests from a service you reported as fraud were held",
        ),
        K::ActivationCodeVoided => (
            "Din aktiveringskode er ugyldig efter for mange forkerte forsøg; ring til eID-support for en ny",
            "Your activation code was voided after too many wrong tries; call eID support for a new one",
        ),
        K::NotifyEveryUseTurnedOff => (
            "Besked ved hver brug af dit eID er slået fra",
            "Notifications on every use of your eID were turned off",
        ),
        K::ApprovalStoppedOnCall => (
            "Vi stoppede en godkendelse, fordi du talte i telefon. Ingen fra banken, politiet eller support beder dig godkende noget",
            "We stopped an approval because you were on a call. Nobody from your bank, the police or support will ask you to approve",
        ),
        K::ChipAdded => (
            "En chip er registreret til dit eID og virker efter ventetiden",
            "A chip was registered for your eID; it works after the waiting period",
        ),
        K::ChipActivated => (
            "En chip er taget i brug til dit eID",
            "A chip was activated for your eID",
        ),
        K::ChipBlocked => ("Din eID-chip er spærret", "Your eID chip was blocked"),
        K::ChipUsed => ("Din eID-chip er brugt", "Your eID chip was used"),
        K::ChipDeactivated => (
            "En chip er fjernet fra dit eID",
            "A chip was removed from your eID",
        ),
        K::CodeDeviceAdded => (
            "En kodeviser eller kodeoplæser er taget i brug på dit eID",
            "A code display or audio code reader was added to your eID",
        ),
        K::CodeDeviceBlocked => (
            "Din kodeviser eller kodeoplæser er spærret efter for mange forkerte forsøg",
            "Your code display or audio code reader was blocked after too many wrong tries",
        ),
        K::CodeDeviceUsed => (
            "Din kodeviser eller kodeoplæser er brugt til at logge på",
            "Your code display or audio code reader was used to log in",
        ),
        K::CodeDeviceDeactivated => (
            "En kodeviser eller kodeoplæser er fjernet fra dit eID",
            "A code display or audio code reader was removed from your eID",
        ),
        _ => (
            "Der er sket en ændring på dit eID",
            "Something changed on your eID",
        ),
    }
}

/// What a contact change does, in the person's words (Danish, like the
/// reference texts), with the new value masked.
pub(crate) fn contact_change_text(channel: ContactChannel, masked: &str) -> String {
    match channel {
        ContactChannel::Phone => format!("Skift telefonnummer til {masked}"),
        _ => format!("Skift e-mailadresse til {masked}"),
    }
}

/// Why a contact-change event is recorded, shown before its
/// [`contact_change_text`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContactChangeNote {
    /// Someone asked for the second login before the earliest time.
    TooEarly,
    /// The change lapsed.
    Expired,
    /// The first self-service login was approved (the hour to object starts).
    FirstLoginApproved,
}

impl ContactChangeNote {
    /// The note's text.
    pub(crate) fn text(self) -> &'static str {
        match self {
            ContactChangeNote::TooEarly => "Forsøg på at fuldføre før tid",
            ContactChangeNote::Expired => "Udløbet",
            ContactChangeNote::FirstLoginApproved => "Første login godkendt / first login approved",
        }
    }
}

/// A contact-change event's detail: the note, if any, then the change.
pub(crate) fn contact_change_detail(
    channel: ContactChannel,
    masked: &str,
    note: Option<ContactChangeNote>,
) -> String {
    let text = contact_change_text(channel, masked);
    match note {
        Some(n) => format!("{}: {text}", n.text()),
        None => text,
    }
}

/// Why a user-ID change failed when a race took the new user ID between the
/// check and the approval (stored with the change, shown in the portal).
pub(crate) const USER_ID_TAKEN_MEANWHILE: &str = "this user ID was taken meanwhile; choose another";
