//! Security events: what the server records in its outbox, delivers by SMS and
//! e-mail, and shows in the app's feed.

use serde::{Deserialize, Serialize};

/// What happened. The stable snake_case name is stored and sent on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SecurityEventKind {
    /// An authenticator was activated (first device or a new device).
    DeviceActivated,
    /// An authenticator was removed.
    DeviceRemoved,
    /// An authenticator was locked centrally after too many wrong PINs.
    PinLockout,
    /// A new device asked to be added; an existing device must approve.
    NewDeviceRequested,
    /// A new device was approved; it works after the waiting period.
    NewDeviceApproved,
    /// A new device's addition was cancelled or refused.
    NewDeviceCancelled,
    /// A change of phone number or e-mail was started.
    ContactChangeStarted,
    /// A change of phone number or e-mail was completed.
    ContactChangeCompleted,
    /// A change of phone number or e-mail was cancelled or refused.
    ContactChangeCancelled,
    /// The user ID was changed.
    UserIdChanged,
    /// The identity was blocked.
    IdentityBlocked,
    /// The identity was unblocked.
    IdentityUnblocked,
    /// A request was reported as fraud ("this wasn't me").
    FraudReported,
    /// The identity was used (an approval); recorded only if the person opted in.
    Used,
    /// A relying party asked again during the cool-down after the person
    /// reported one of its requests as fraud; the request was refused
    /// (recorded once per cool-down). The detail is the provider's name.
    RequestsHeld,
    /// The identity's activation code was voided after too many wrong tries
    /// (from anyone who knows the user ID); a new one comes from support.
    ActivationCodeVoided,
    /// "Notify me on every use" was turned off from an app (with the PIN);
    /// critical, so the person hears of it on every channel.
    NotifyEveryUseTurnedOff,
    /// An approval was stopped because the phone saw a call, screen sharing
    /// or remote control and the server's call policy refuses that kind then
    /// ("we stopped this because you were on a call"). The detail is the
    /// provider's name.
    ApprovalStoppedOnCall,
    /// A chip (security key) was registered; it works after the waiting
    /// period and a confirming use, and can be cancelled from the app.
    ChipAdded,
    /// A chip was confirmed after the waiting period and logs in now.
    ChipActivated,
    /// A chip was blocked: a sign counter went back (a possible clone) or
    /// too many wrong access codes.
    ChipBlocked,
    /// A chip was used to log in (every use: a chip reaches level High).
    ChipUsed,
    /// A chip was deactivated or its registration cancelled.
    ChipDeactivated,
    /// A code device (code display or audio code reader) was activated on
    /// the identity. The detail is its masked serial number.
    CodeDeviceAdded,
    /// A code device was blocked after too many wrong codes or access
    /// codes. The detail is its masked serial number.
    CodeDeviceBlocked,
    /// A code device was used to log in. The detail is its masked serial
    /// number.
    CodeDeviceUsed,
    /// A code device was deactivated or replaced. The detail is its masked
    /// serial number.
    CodeDeviceDeactivated,
    /// A kind this build does not know (sent by a newer server). Never sent
    /// by this build; it lets an older app keep parsing a newer feed.
    #[serde(other)]
    Unknown,
}

impl SecurityEventKind {
    /// Every known kind, in declaration order (not [`SecurityEventKind::Unknown`]).
    pub const ALL: [SecurityEventKind; 27] = [
        SecurityEventKind::DeviceActivated,
        SecurityEventKind::DeviceRemoved,
        SecurityEventKind::PinLockout,
        SecurityEventKind::NewDeviceRequested,
        SecurityEventKind::NewDeviceApproved,
        SecurityEventKind::NewDeviceCancelled,
        SecurityEventKind::ContactChangeStarted,
        SecurityEventKind::ContactChangeCompleted,
        SecurityEventKind::ContactChangeCancelled,
        SecurityEventKind::UserIdChanged,
        SecurityEventKind::IdentityBlocked,
        SecurityEventKind::IdentityUnblocked,
        SecurityEventKind::FraudReported,
        SecurityEventKind::Used,
        SecurityEventKind::RequestsHeld,
        SecurityEventKind::ActivationCodeVoided,
        SecurityEventKind::NotifyEveryUseTurnedOff,
        SecurityEventKind::ApprovalStoppedOnCall,
        SecurityEventKind::ChipAdded,
        SecurityEventKind::ChipActivated,
        SecurityEventKind::ChipBlocked,
        SecurityEventKind::ChipUsed,
        SecurityEventKind::ChipDeactivated,
        SecurityEventKind::CodeDeviceAdded,
        SecurityEventKind::CodeDeviceBlocked,
        SecurityEventKind::CodeDeviceUsed,
        SecurityEventKind::CodeDeviceDeactivated,
    ];

    /// The stable name (as stored and sent).
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityEventKind::DeviceActivated => "device_activated",
            SecurityEventKind::DeviceRemoved => "device_removed",
            SecurityEventKind::PinLockout => "pin_lockout",
            SecurityEventKind::NewDeviceRequested => "new_device_requested",
            SecurityEventKind::NewDeviceApproved => "new_device_approved",
            SecurityEventKind::NewDeviceCancelled => "new_device_cancelled",
            SecurityEventKind::ContactChangeStarted => "contact_change_started",
            SecurityEventKind::ContactChangeCompleted => "contact_change_completed",
            SecurityEventKind::ContactChangeCancelled => "contact_change_cancelled",
            SecurityEventKind::UserIdChanged => "user_id_changed",
            SecurityEventKind::IdentityBlocked => "identity_blocked",
            SecurityEventKind::IdentityUnblocked => "identity_unblocked",
            SecurityEventKind::FraudReported => "fraud_reported",
            SecurityEventKind::Used => "used",
            SecurityEventKind::RequestsHeld => "requests_held",
            SecurityEventKind::ActivationCodeVoided => "activation_code_voided",
            SecurityEventKind::NotifyEveryUseTurnedOff => "notify_every_use_turned_off",
            SecurityEventKind::ApprovalStoppedOnCall => "approval_stopped_on_call",
            SecurityEventKind::ChipAdded => "chip_added",
            SecurityEventKind::ChipActivated => "chip_activated",
            SecurityEventKind::ChipBlocked => "chip_blocked",
            SecurityEventKind::ChipUsed => "chip_used",
            SecurityEventKind::ChipDeactivated => "chip_deactivated",
            SecurityEventKind::CodeDeviceAdded => "code_device_added",
            SecurityEventKind::CodeDeviceBlocked => "code_device_blocked",
            SecurityEventKind::CodeDeviceUsed => "code_device_used",
            SecurityEventKind::CodeDeviceDeactivated => "code_device_deactivated",
            SecurityEventKind::Unknown => "unknown",
        }
    }

    /// Parses a stable name of a known kind.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Whether the event is critical (delivered on every channel at once).
    /// Only the uses ([`SecurityEventKind::Used`],
    /// [`SecurityEventKind::ChipUsed`], [`SecurityEventKind::CodeDeviceUsed`])
    /// are not.
    pub fn is_critical(self) -> bool {
        !matches!(
            self,
            SecurityEventKind::Used
                | SecurityEventKind::ChipUsed
                | SecurityEventKind::CodeDeviceUsed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for kind in SecurityEventKind::ALL {
            assert_eq!(SecurityEventKind::parse(kind.as_str()), Some(kind));
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
        assert_eq!(SecurityEventKind::parse("nope"), None);
    }

    #[test]
    fn turning_notify_every_use_off_has_a_stable_critical_name() {
        let kind = SecurityEventKind::NotifyEveryUseTurnedOff;
        assert_eq!(
            serde_json::to_string(&kind).unwrap(),
            "\"notify_every_use_turned_off\""
        );
        let parsed: SecurityEventKind =
            serde_json::from_str("\"notify_every_use_turned_off\"").unwrap();
        assert_eq!(parsed, kind);
        assert!(kind.is_critical());
    }

    #[test]
    fn an_unknown_name_parses_as_unknown_on_the_wire() {
        let kind: SecurityEventKind = serde_json::from_str("\"device_teleported\"").unwrap();
        assert_eq!(kind, SecurityEventKind::Unknown);
        assert!(kind.is_critical());
        assert!(!SecurityEventKind::ALL.contains(&SecurityEventKind::Unknown));
    }
}
