//! The call context: what the phone saw about phone calls, screen sharing and
//! remote control when the person decided (`docs/protocol.md`, "Call
//! context").
//!
//! The scam this answers: someone calls pretending to be the bank, the police
//! or support and talks the person through approving while staying on the
//! line, often watching the screen through screen sharing or a remote-control
//! app. The app cannot stop the person, but it can warn, and it signs what it
//! saw into the decision (protocol version 2), so the server's policy and the
//! service provider can act on it. Each signal is three-valued on purpose: a
//! platform that cannot tell (no API, no permission, an older phone) reports
//! [`Signal::Unknown`], never [`Signal::Off`], so "we could not see a call" is
//! never mistaken for "there was no call".

use serde::{Deserialize, Serialize};

use crate::encoding::CanonicalWriter;

/// One observed fact: on, off, or not known.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// The platform could not tell (no API, no permission, not asked).
    #[default]
    Unknown,
    /// Observed to be off.
    Off,
    /// Observed to be on.
    On,
}

impl Signal {
    /// The byte used in the canonical encoding: unknown 0, off 1, on 2.
    pub fn code(self) -> u8 {
        match self {
            Signal::Unknown => 0,
            Signal::Off => 1,
            Signal::On => 2,
        }
    }

    /// Parses an encoding byte.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Signal::Unknown),
            1 => Some(Signal::Off),
            2 => Some(Signal::On),
            _ => None,
        }
    }

    /// Whether the signal was observed on.
    pub fn is_on(self) -> bool {
        self == Signal::On
    }
}

/// What the phone saw at the moment of a decision. Signed into version-2
/// decisions and receipts; a version-1 decision (an older phone) has none,
/// which the server and the service provider read as all unknown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CallContext {
    /// A phone or VoIP call was active (Android audio mode in call or in
    /// communication; iOS CallKit's call observer).
    pub call: Signal,
    /// The screen was being shared, mirrored or recorded (iOS
    /// `UIScreen.isCaptured`; Android where the platform reports it).
    pub screen_shared: Signal,
    /// An accessibility service that is not part of the system was enabled
    /// (Android; remote-control apps use them). Unknown on iOS.
    pub remote_control: Signal,
    /// The person confirmed, after the read time and while a signal was on,
    /// that they started this themselves.
    pub confirmed_self_started: bool,
}

impl CallContext {
    /// Nothing known (what an older phone's decision is read as).
    pub const UNKNOWN: CallContext = CallContext {
        call: Signal::Unknown,
        screen_shared: Signal::Unknown,
        remote_control: Signal::Unknown,
        confirmed_self_started: false,
    };

    /// Whether any signal was observed on: the warning, the confirmation gate
    /// and the server's policy apply.
    pub fn any_on(&self) -> bool {
        self.call.is_on() || self.screen_shared.is_on() || self.remote_control.is_on()
    }

    /// Appends the context's canonical fields: `call u8, screen_shared u8,
    /// remote_control u8, confirmed_self_started bool`.
    pub fn write(&self, w: &mut CanonicalWriter) {
        w.u8(self.call.code())
            .u8(self.screen_shared.code())
            .u8(self.remote_control.code())
            .bool(self.confirmed_self_started);
    }
}

/// What the server's call policy did with a decision (`docs/relying-party.md`,
/// "Call context"): the service provider sees it in the request's status
/// and in the ID token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CallVerdict {
    /// No signal was seen on (all off or unknown, an older phone, or not
    /// decided yet).
    #[default]
    Clear,
    /// A signal was on and the policy allows this kind anyway.
    Allowed,
    /// A signal was on; the decision was accepted and is flagged to the
    /// service provider.
    Flagged,
    /// A signal was on and the policy refuses this kind: the approval was not
    /// accepted, the request was cancelled and the person notified.
    Stopped,
}

impl CallVerdict {
    /// The stable name (as stored and sent).
    pub fn as_str(self) -> &'static str {
        match self {
            CallVerdict::Clear => "clear",
            CallVerdict::Allowed => "allowed",
            CallVerdict::Flagged => "flagged",
            CallVerdict::Stopped => "stopped",
        }
    }

    /// Parses a stable name.
    pub fn parse(name: &str) -> Option<Self> {
        [
            CallVerdict::Clear,
            CallVerdict::Allowed,
            CallVerdict::Flagged,
            CallVerdict::Stopped,
        ]
        .into_iter()
        .find(|v| v.as_str() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_names_round_trip_and_match_serde() {
        for v in [
            CallVerdict::Clear,
            CallVerdict::Allowed,
            CallVerdict::Flagged,
            CallVerdict::Stopped,
        ] {
            assert_eq!(CallVerdict::parse(v.as_str()), Some(v));
            assert_eq!(
                serde_json::to_string(&v).unwrap(),
                format!("\"{}\"", v.as_str())
            );
        }
        assert_eq!(CallVerdict::parse("maybe"), None);
    }

    #[test]
    fn signal_codes_round_trip_and_nothing_else_parses() {
        for s in [Signal::Unknown, Signal::Off, Signal::On] {
            assert_eq!(Signal::from_code(s.code()), Some(s));
        }
        assert_eq!(Signal::from_code(3), None);
    }

    #[test]
    fn an_unknown_signal_is_not_on_and_the_default_is_unknown() {
        assert_eq!(CallContext::default(), CallContext::UNKNOWN);
        assert!(!CallContext::UNKNOWN.any_on());
        let on_call = CallContext {
            call: Signal::On,
            ..CallContext::UNKNOWN
        };
        assert!(on_call.any_on());
    }

    #[test]
    fn the_json_names_are_snake_case_and_unknown_fields_are_refused() {
        let c = CallContext {
            call: Signal::On,
            screen_shared: Signal::Off,
            remote_control: Signal::Unknown,
            confirmed_self_started: true,
        };
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(
            json,
            r#"{"call":"on","screen_shared":"off","remote_control":"unknown","confirmed_self_started":true}"#
        );
        assert!(
            serde_json::from_str::<CallContext>(
                r#"{"call":"on","screen_shared":"off","remote_control":"unknown","confirmed_self_started":true,"x":1}"#
            )
            .is_err()
        );
        assert!(serde_json::from_str::<Signal>(r#""maybe""#).is_err());
    }
}
