//! The security feed: what the app shows about events on an identity (a new
//! device, a block, a PIN lockout, a fraud report, every use if the person
//! opted in), in Danish or English.
//!
//! The server sends each event's kind, time and a short masked detail; the
//! texts are made here, like the request display models, so a server (or a
//! man in the middle) cannot put words in the app's mouth. A detail that
//! breaks the provider-name rules is not shown.

use eid_protocol::events::SecurityEventKind;
use eid_protocol::messages::SettingsChange;
use eid_protocol::text::validate_provider_name;
use eid_protocol::wire;
use eid_protocol::{AuthenticatorId, Nonce16};
use zeroize::Zeroizing;

use crate::display::Language;
use crate::store::AuthenticatorRow;
use crate::{App, Error, Result, blocking, lock};

/// One security event as the app shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventView {
    /// The server's event id (increasing).
    pub event_id: u64,
    /// What happened ([`SecurityEventKind::Unknown`] for a kind this build
    /// does not know; it still gets a generic text).
    pub kind: SecurityEventKind,
    /// When (server clock, Unix milliseconds).
    pub occurred_at_ms: u64,
    /// Whether it needs the person's attention (everything but a routine use).
    pub critical: bool,
    /// Whether the event was about the authenticator on this phone (this
    /// phone was activated, this phone approved, this phone locked).
    pub this_device: bool,
    /// A one-line title.
    pub title: String,
    /// What happened and what to do if it wasn't the person.
    pub body: String,
}

/// The localized title and body of an event. `detail` is shown only if it
/// passes the provider-name rules.
pub fn render(
    kind: SecurityEventKind,
    detail: Option<&str>,
    this_device: bool,
    lang: Language,
) -> (String, String) {
    use SecurityEventKind as K;
    let danish = lang == Language::Danish;
    let title: &str = match (kind, danish) {
        (K::DeviceActivated, true) => "Ny enhed aktiveret",
        (K::DeviceActivated, false) => "New device activated",
        (K::DeviceRemoved, true) => "Enhed fjernet",
        (K::DeviceRemoved, false) => "Device removed",
        (K::PinLockout, true) => "Låst efter forkerte PIN-koder",
        (K::PinLockout, false) => "Locked after wrong PINs",
        (K::NewDeviceRequested, true) => "Anmodning om ny enhed",
        (K::NewDeviceRequested, false) => "New device requested",
        (K::NewDeviceApproved, true) => "Ny enhed godkendt",
        (K::NewDeviceApproved, false) => "New device approved",
        (K::NewDeviceCancelled, true) => "Ny enhed annulleret",
        (K::NewDeviceCancelled, false) => "New device cancelled",
        (K::ContactChangeStarted, true) => "Ændring af kontaktoplysninger startet",
        (K::ContactChangeStarted, false) => "Contact change started",
        (K::ContactChangeCompleted, true) => "Kontaktoplysninger ændret",
        (K::ContactChangeCompleted, false) => "Contact details changed",
        (K::ContactChangeCancelled, true) => "Ændring af kontaktoplysninger annulleret",
        (K::ContactChangeCancelled, false) => "Contact change cancelled",
        (K::UserIdChanged, true) => "Bruger-ID ændret",
        (K::UserIdChanged, false) => "User ID changed",
        (K::IdentityBlocked, true) => "eID spærret",
        (K::IdentityBlocked, false) => "eID blocked",
        (K::IdentityUnblocked, true) => "Spærring ophævet",
        (K::IdentityUnblocked, false) => "eID unblocked",
        (K::FraudReported, true) => "Meldt som svindel",
        (K::FraudReported, false) => "Reported as fraud",
        (K::Used, true) => "eID brugt",
        (K::Used, false) => "eID used",
        (K::RequestsHeld, true) => "Anmodninger stoppet",
        (K::RequestsHeld, false) => "Requests held",
        (K::ActivationCodeVoided, true) => "Aktiveringskode ugyldig",
        (K::ActivationCodeVoided, false) => "Activation code voided",
        (K::NotifyEveryUseTurnedOff, true) => "Besked ved hver brug slået fra",
        (K::NotifyEveryUseTurnedOff, false) => "Notify on every use turned off",
        (K::ApprovalStoppedOnCall, true) => "Godkendelse stoppet under opkald",
        (K::ApprovalStoppedOnCall, false) => "Approval stopped during a call",
        (K::ChipAdded, true) => "Ny chip registreret",
        (K::ChipAdded, false) => "New chip registered",
        (K::ChipActivated, true) => "Chip taget i brug",
        (K::ChipActivated, false) => "Chip activated",
        (K::ChipBlocked, true) => "Chip spærret",
        (K::ChipBlocked, false) => "Chip blocked",
        (K::ChipUsed, true) => "Chip brugt",
        (K::ChipUsed, false) => "Chip used",
        (K::ChipDeactivated, true) => "Chip fjernet",
        (K::ChipDeactivated, false) => "Chip removed",
        (K::CodeDeviceAdded, true) => "Kodeviser tilføjet",
        (K::CodeDeviceAdded, false) => "Code device added",
        (K::CodeDeviceBlocked, true) => "Kodeviser spærret",
        (K::CodeDeviceBlocked, false) => "Code device blocked",
        (K::CodeDeviceUsed, true) => "Kodeviser brugt",
        (K::CodeDeviceUsed, false) => "Code device used",
        (K::CodeDeviceDeactivated, true) => "Kodeviser fjernet",
        (K::CodeDeviceDeactivated, false) => "Code device removed",
        (_, true) => "Sikkerhedshændelse",
        (_, false) => "Security event",
    };
    let what: &str = match (kind, danish) {
        (K::DeviceActivated, true) if this_device => "Denne telefon blev aktiveret til dit eID.",
        (K::DeviceActivated, false) if this_device => "This phone was activated for your eID.",
        (K::DeviceActivated, true) => "En ny enhed blev aktiveret til dit eID.",
        (K::DeviceActivated, false) => "A new device was activated for your eID.",
        (K::DeviceRemoved, true) => "En enhed blev fjernet fra dit eID.",
        (K::DeviceRemoved, false) => "A device was removed from your eID.",
        (K::PinLockout, true) => {
            "En eID-app blev låst efter for mange forkerte PIN-koder og skal aktiveres igen."
        }
        (K::PinLockout, false) => {
            "An eID app was locked after too many wrong PINs and must be activated again."
        }
        (K::NewDeviceRequested, true) => "Nogen bad om at tilføje en ny enhed til dit eID.",
        (K::NewDeviceRequested, false) => "Someone asked to add a new device to your eID.",
        (K::NewDeviceApproved, true) => {
            "En ny enhed blev godkendt. Den virker først efter ventetiden, og du kan annullere den indtil da."
        }
        (K::NewDeviceApproved, false) => {
            "A new device was approved. It works only after the waiting period, and you can cancel it until then."
        }
        (K::NewDeviceCancelled, true) => "Tilføjelsen af en ny enhed blev annulleret.",
        (K::NewDeviceCancelled, false) => "Adding a new device was cancelled.",
        (K::ContactChangeStarted, true) => {
            "En ændring af dit telefonnummer eller din e-mail blev startet."
        }
        (K::ContactChangeStarted, false) => "A change of your phone number or e-mail was started.",
        (K::ContactChangeCompleted, true) => "Dit telefonnummer eller din e-mail blev ændret.",
        (K::ContactChangeCompleted, false) => "Your phone number or e-mail was changed.",
        (K::ContactChangeCancelled, true) => {
            "Ændringen af dit telefonnummer eller din e-mail blev annulleret."
        }
        (K::ContactChangeCancelled, false) => {
            "The change of your phone number or e-mail was cancelled."
        }
        (K::UserIdChanged, true) => "Dit bruger-ID blev ændret.",
        (K::UserIdChanged, false) => "Your user ID was changed.",
        (K::IdentityBlocked, true) => {
            "Dit eID er spærret. Ingen kan bruge det, før support ophæver spærringen."
        }
        (K::IdentityBlocked, false) => {
            "Your eID is blocked. Nobody can use it until support unblocks it."
        }
        (K::IdentityUnblocked, true) => "Spærringen af dit eID blev ophævet.",
        (K::IdentityUnblocked, false) => "Your eID was unblocked.",
        (K::FraudReported, true) => "En anmodning blev meldt som svindel og afvist.",
        (K::FraudReported, false) => "A request was reported as fraud and refused.",
        (K::Used, true) => "Dit eID blev brugt til at godkende en anmodning.",
        (K::Used, false) => "Your eID was used to approve a request.",
        (K::RequestsHeld, true) => {
            "Tjenesten, du meldte som svindel, bad igen om at bruge dit eID. Vi har stoppet dens anmodninger i en periode, så du ikke skal tage stilling til dem."
        }
        (K::RequestsHeld, false) => {
            "The service you reported as fraud asked to use your eID again. We are holding its requests for a while, so you don't have to answer them."
        }
        (K::ActivationCodeVoided, true) => {
            "Din aktiveringskode blev gjort ugyldig efter for mange forkerte forsøg."
        }
        (K::ActivationCodeVoided, false) => {
            "Your activation code was voided after too many wrong tries."
        }
        (K::NotifyEveryUseTurnedOff, true) if this_device => {
            "Besked ved hver brug af dit eID blev slået fra på denne telefon."
        }
        (K::NotifyEveryUseTurnedOff, false) if this_device => {
            "Notifications on every use of your eID were turned off on this phone."
        }
        (K::NotifyEveryUseTurnedOff, true) => {
            "Besked ved hver brug af dit eID blev slået fra på en af dine enheder."
        }
        (K::NotifyEveryUseTurnedOff, false) => {
            "Notifications on every use of your eID were turned off on one of your devices."
        }
        (K::ApprovalStoppedOnCall, true) => {
            "Vi stoppede en godkendelse, fordi du talte i telefon eller delte din skærm. Ingen fra din bank, politiet eller support beder dig om at godkende noget."
        }
        (K::ApprovalStoppedOnCall, false) => {
            "We stopped an approval because you were on a call or sharing your screen. Nobody from your bank, the police or support will ask you to approve anything."
        }
        (K::ChipAdded, true) => {
            "En chip blev registreret til dit eID. Den virker først efter ventetiden, og du kan annullere den her i appen indtil da."
        }
        (K::ChipAdded, false) => {
            "A chip was registered for your eID. It works only after the waiting period, and you can cancel it here in the app until then."
        }
        (K::ChipActivated, true) => "En chip blev taget i brug til dit eID.",
        (K::ChipActivated, false) => "A chip was activated for your eID.",
        (K::ChipBlocked, true) => {
            "Din chip blev spærret, fordi den opførte sig som en kopi, eller efter for mange forkerte adgangskoder."
        }
        (K::ChipBlocked, false) => {
            "Your chip was blocked because it behaved like a copy, or after too many wrong access codes."
        }
        (K::ChipUsed, true) => "Din chip blev brugt til at logge ind.",
        (K::ChipUsed, false) => "Your chip was used to log in.",
        (K::ChipDeactivated, true) => "En chip blev fjernet fra dit eID.",
        (K::ChipDeactivated, false) => "A chip was removed from your eID.",
        (K::CodeDeviceAdded, true) => {
            "En kodeviser eller kodeoplæser blev taget i brug på dit eID."
        }
        (K::CodeDeviceAdded, false) => "A code display or audio code reader was added to your eID.",
        (K::CodeDeviceBlocked, true) => {
            "Din kodeviser eller kodeoplæser blev spærret efter tre forkerte koder eller adgangskoder. Spærringen ophører af sig selv."
        }
        (K::CodeDeviceBlocked, false) => {
            "Your code display or audio code reader was blocked after three wrong codes or access codes. The block ends by itself."
        }
        (K::CodeDeviceUsed, true) => "Din kodeviser eller kodeoplæser blev brugt til at logge på.",
        (K::CodeDeviceUsed, false) => "Your code display or audio code reader was used to log in.",
        (K::CodeDeviceDeactivated, true) => {
            "En kodeviser eller kodeoplæser blev fjernet fra dit eID."
        }
        (K::CodeDeviceDeactivated, false) => {
            "A code display or audio code reader was removed from your eID."
        }
        (_, true) => "Der skete en ændring på dit eID.",
        (_, false) => "Something changed on your eID.",
    };
    let advice: &str = match (kind, danish) {
        (K::IdentityBlocked, true) => "Ring til eID-support for at få ophævet spærringen.",
        (K::IdentityBlocked, false) => "Call eID support to have it unblocked.",
        (K::FraudReported, true) => {
            "Har du givet oplysninger videre til nogen, så ring til eID-support."
        }
        (K::FraudReported, false) => "If you gave anyone your details, call eID support.",
        (K::ActivationCodeVoided, true) => "Ring til eID-support for at få en ny kode.",
        (K::ActivationCodeVoided, false) => "Call eID support for a new code.",
        (K::ApprovalStoppedOnCall, true) => {
            "Læg på. Har du givet en opringer adgang til noget, så ring selv til eID-support."
        }
        (K::ApprovalStoppedOnCall, false) => {
            "Hang up. If you gave a caller access to anything, call eID support yourself."
        }
        (_, true) => "Var det ikke dig? Spær dit eID her i appen, eller ring til eID-support.",
        (_, false) => "Wasn't you? Block your eID here in the app, or call eID support.",
    };
    let detail = detail.filter(|d| validate_provider_name(d).is_ok());
    let label = match (kind, danish) {
        (K::Used | K::FraudReported | K::RequestsHeld, true) => "Tjenesteudbyder",
        (K::Used | K::FraudReported | K::RequestsHeld, false) => "Service provider",
        (_, true) => "Detalje",
        (_, false) => "Detail",
    };
    let body = match detail {
        Some(d) => format!("{what}\n{label}: {d}\n{advice}"),
        None => format!("{what} {advice}"),
    };
    (title.to_owned(), body)
}

/// A stored feed event turned into a display model.
pub(crate) fn build_view(
    authenticator: &AuthenticatorId,
    event: &StoredFeedEvent,
    lang: Language,
) -> EventView {
    let this_device = event.authenticator_id.as_ref() == Some(authenticator);
    let (title, body) = render(event.kind, event.detail.as_deref(), this_device, lang);
    EventView {
        event_id: event.event_id,
        kind: event.kind,
        occurred_at_ms: event.occurred_at_ms,
        critical: event.kind.is_critical(),
        this_device,
        title,
        body,
    }
}

/// A feed event as stored on the phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredFeedEvent {
    pub(crate) event_id: u64,
    pub(crate) kind: SecurityEventKind,
    pub(crate) occurred_at_ms: u64,
    pub(crate) authenticator_id: Option<AuthenticatorId>,
    pub(crate) detail: Option<String>,
}

impl App {
    /// The authenticator's security feed as last pulled (no network), newest
    /// first, with texts in `lang`. [`App::refresh`] brings new
    /// events.
    pub fn events(
        &self,
        authenticator: &AuthenticatorId,
        lang: Language,
    ) -> Result<Vec<EventView>> {
        let store = lock(&self.inner.store)?;
        store.authenticator(authenticator)?;
        Ok(store
            .feed(authenticator)?
            .iter()
            .map(|e| build_view(authenticator, e, lang))
            .collect())
    }

    /// The authenticator's "notify me on every use" setting as the server last
    /// reported it (no network).
    pub fn notify_every_use(&self, authenticator: &AuthenticatorId) -> Result<bool> {
        let store = lock(&self.inner.store)?;
        store.authenticator(authenticator)?;
        store.notify_every_use(authenticator)
    }

    /// Turns "notify me on every use" on for the authenticator's identity: with it
    /// on, every approval sends an SMS and an e-mail and appears in the feed.
    /// Signed by the device key; no PIN (it only adds notifications).
    pub async fn turn_on_notify_every_use(&self, authenticator: &AuthenticatorId) -> Result<()> {
        let acc = lock(&self.inner.store)?.authenticator(authenticator)?;
        self.post_settings(&acc, true, None).await
    }

    /// Turns "notify me on every use" off for the authenticator's identity. Needs
    /// the PIN (checked and counted like any PIN entry): the PIN key signs
    /// the change, so the device key alone (an unlocked phone in a thief's
    /// hand) cannot silence the notifications. The server records a
    /// `notify_every_use_turned_off` event and tells the person on every
    /// channel.
    pub async fn turn_off_notify_every_use(
        &self,
        authenticator: &AuthenticatorId,
        pin: &str,
    ) -> Result<()> {
        let acc = lock(&self.inner.store)?.authenticator(authenticator)?;
        let inner = self.inner.clone();
        let checked = acc.clone();
        let pin = Zeroizing::new(pin.to_owned());
        let pin_key = blocking(move || inner.check_pin(&checked, &pin)).await?;
        // A clock-skew answer teaches the server's time; the proof is then
        // signed again with the corrected time (once).
        let mut tries_left = 2;
        loop {
            tries_left -= 1;
            let change = SettingsChange {
                authenticator_id: *authenticator,
                notify_every_use: false,
                issued_at_ms: self.inner.request_timestamp()?,
                nonce: Nonce16::random(),
            };
            let proof = wire::PinProof {
                issued_at_ms: change.issued_at_ms,
                nonce: change.nonce,
                signature: pin_key.sign(&change.signing_bytes()),
            };
            match self.post_settings(&acc, false, Some(proof)).await {
                Err(Error::Rejected {
                    code: wire::ErrorCode::ClockSkew,
                    ..
                }) if tries_left > 0 => continue,
                other => return other,
            }
        }
    }

    async fn post_settings(
        &self,
        acc: &AuthenticatorRow,
        on: bool,
        pin_proof: Option<wire::PinProof>,
    ) -> Result<()> {
        let body = serde_json::to_vec(&wire::DeviceSettingsRequest {
            authenticator_id: acc.authenticator_id,
            notify_every_use: on,
            pin_proof,
        })?;
        let resp: wire::DeviceSettingsResponse = self
            .inner
            .device_post(std::slice::from_ref(acc), wire::PATH_DEVICE_SETTINGS, body)
            .await?;
        if resp.identity_id != acc.identity_id || resp.notify_every_use != on {
            return Err(Error::InvalidResponse(
                "the settings answer does not match".into(),
            ));
        }
        lock(&self.inner.store)?.set_notify_every_use(&acc.authenticator_id, on)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_kinds() -> Vec<SecurityEventKind> {
        let mut kinds = SecurityEventKind::ALL.to_vec();
        kinds.push(SecurityEventKind::Unknown);
        kinds
    }

    #[test]
    fn every_kind_has_distinct_texts_in_both_languages_and_advice() {
        for lang in [Language::Danish, Language::English] {
            let mut titles = std::collections::HashSet::new();
            for kind in all_kinds() {
                let (title, body) = render(kind, None, false, lang);
                assert!(
                    titles.insert(title.clone()),
                    "{kind:?} {lang:?} shares a title"
                );
                assert!(body.contains("support"), "{kind:?}: {body}");
                assert!(!body.contains("http") && !body.contains("www."));
            }
        }
        let (title, body) = render(SecurityEventKind::Used, None, false, Language::Danish);
        assert_eq!(title, "eID brugt");
        assert!(body.contains("Spær dit eID her i appen"));
        let (_, body) = render(
            SecurityEventKind::IdentityBlocked,
            None,
            false,
            Language::English,
        );
        assert!(body.contains("Call eID support") && !body.contains("in the app"));
    }

    #[test]
    fn details_are_shown_only_when_they_pass_the_rules() {
        let (_, body) = render(
            SecurityEventKind::Used,
            Some("Nordisk Bank A/S"),
            false,
            Language::English,
        );
        assert!(
            body.contains("\nService provider: Nordisk Bank A/S\n"),
            "{body}"
        );
        for masked in ["+45••••••34", "a•••@example.dk"] {
            let (_, body) = render(
                SecurityEventKind::ContactChangeStarted,
                Some(masked),
                false,
                Language::Danish,
            );
            assert!(body.contains(masked), "{body}");
        }
        for bad in ["evil\u{202e}txt", "line\nbreak", &"x".repeat(200)] {
            let (_, body) = render(SecurityEventKind::Used, Some(bad), false, Language::Danish);
            assert!(!body.contains(bad), "{body}");
        }
    }

    #[test]
    fn this_device_is_said() {
        let id = AuthenticatorId([7; 16]);
        let event = StoredFeedEvent {
            event_id: 3,
            kind: SecurityEventKind::DeviceActivated,
            occurred_at_ms: 5,
            authenticator_id: Some(id),
            detail: None,
        };
        let view = build_view(&id, &event, Language::English);
        assert!(view.this_device && view.critical);
        assert!(view.body.starts_with("This phone was activated"));
        let other = build_view(&AuthenticatorId([8; 16]), &event, Language::English);
        assert!(!other.this_device);
        assert!(other.body.starts_with("A new device was activated"));
    }
}
