//! What the phone sees about calls and screen sharing (the call context,
//! docs/protocol.md "Call context"; what each platform can tell:
//! docs/integration.md).
//!
//! The scam this meets: a caller posing as the bank, the police or support
//! talks the person through an approval while staying on the line. The
//! shells implement [`ContextProvider`] with the platform's own signals; the
//! core asks it when it builds a request's display model (to lead with the
//! warning and hold the swipe until the person confirms they started this
//! themselves) and again at the moment of the decision, whose signed bytes
//! carry what it saw. A shell that cannot tell a signal reports
//! [`Signal::Unknown`]: the core never turns "could not see" into "no".

use std::sync::Arc;

pub use eid_protocol::Signal;
use eid_protocol::{AuthenticatorId, CallContext, RequestId};

use crate::{App, Error, Inner, Result, lock};

/// The signals a shell observed, each on, off or unknown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CallSignals {
    /// A phone or VoIP call is active.
    pub call: Signal,
    /// The screen is being shared, mirrored or recorded.
    pub screen_shared: Signal,
    /// An accessibility service that is not from the system is enabled
    /// (remote-control apps use them).
    pub remote_control: Signal,
}

impl CallSignals {
    /// Nothing known: what the core uses without a provider.
    pub const UNKNOWN: CallSignals = CallSignals {
        call: Signal::Unknown,
        screen_shared: Signal::Unknown,
        remote_control: Signal::Unknown,
    };

    /// Whether any signal is on.
    pub fn any_on(&self) -> bool {
        self.call.is_on() || self.screen_shared.is_on() || self.remote_control.is_on()
    }

    /// The context to sign: these signals and whether the person confirmed
    /// they started the request themselves.
    pub fn signed(&self, confirmed_self_started: bool) -> CallContext {
        CallContext {
            call: self.call,
            screen_shared: self.screen_shared,
            remote_control: self.remote_control,
            confirmed_self_started,
        }
    }
}

/// The platform's view of calls and screen sharing, implemented by the
/// shells (Android: `AudioManager` mode, `AccessibilityManager`; iOS:
/// `CXCallObserver`, `UIScreen.isCaptured`). Called on the core's threads,
/// often: keep it cheap and never ask the person for a permission from it.
pub trait ContextProvider: Send + Sync {
    /// What the platform sees now.
    fn signals(&self) -> CallSignals;
}

/// A provider that always reports the same signals (tests and the CLI,
/// which plays the phone: `eid app approve --on-call`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FixedContext(pub CallSignals);

impl ContextProvider for FixedContext {
    fn signals(&self) -> CallSignals {
        self.0
    }
}

impl App {
    /// Installs the shell's [`ContextProvider`]. Without one every signal is
    /// unknown (and the decision says so).
    pub fn set_context_provider(&self, provider: Arc<dyn ContextProvider>) -> Result<()> {
        *lock(&self.inner.context)? = Some(provider);
        Ok(())
    }

    /// What the provider sees now (all unknown without one).
    pub fn call_signals(&self) -> Result<CallSignals> {
        self.inner.call_signals()
    }

    /// The person's "I started this myself" while a call or screen sharing
    /// is on: the gate before the swipe. Accepted only after the minimum
    /// read time (otherwise [`Error::TooFast`], nothing recorded), for a
    /// request this authenticator may still decide. Kept for this process
    /// only, and signed into the decision (`confirmed_self_started`).
    ///
    /// Recorded only while the provider sees a signal on, that is while the
    /// warning is on the screen: with nothing on there is no gate to pass,
    /// and a confirmation given then (a caller's "tap that button now, I'll
    /// call you back") must not open the gate of a call that starts later.
    pub fn confirm_started_myself(
        &self,
        authenticator: &AuthenticatorId,
        request: &RequestId,
    ) -> Result<()> {
        self.inner.decidable(authenticator, request)?;
        let wait_ms = self.read_time_left(authenticator, request)?;
        if wait_ms > 0 {
            return Err(Error::TooFast { wait_ms });
        }
        if self.inner.call_signals()?.any_on() {
            lock(&self.inner.started_myself)?.insert((*authenticator, *request));
        }
        Ok(())
    }
}

impl Inner {
    pub(crate) fn call_signals(&self) -> Result<CallSignals> {
        let provider = lock(&self.context)?.clone();
        Ok(provider.map_or(CallSignals::UNKNOWN, |p| p.signals()))
    }

    pub(crate) fn started_myself(
        &self,
        authenticator: &AuthenticatorId,
        request: &RequestId,
    ) -> Result<bool> {
        Ok(lock(&self.started_myself)?.contains(&(*authenticator, *request)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{PIN, fixture};
    use crate::{DEFAULT_MIN_READ_MS, Language, WarningKind};

    fn on_call() -> CallSignals {
        CallSignals {
            call: Signal::On,
            screen_shared: Signal::Off,
            remote_control: Signal::Unknown,
        }
    }

    /// The decision stored (signed) for a request, if any.
    fn signed_context(app: &App, auth: &AuthenticatorId, req: &RequestId) -> Option<CallContext> {
        app.inner
            .store
            .lock()
            .unwrap()
            .decision(auth, req)
            .unwrap()
            .and_then(|d| d.submit.decision.call_context)
    }

    #[tokio::test]
    async fn on_a_call_the_screen_leads_with_the_warning_and_the_swipe_waits_for_the_confirmation()
    {
        let f = fixture();
        let a = f.open();
        a.set_context_provider(Arc::new(FixedContext(on_call())))
            .unwrap();
        let req = f.add_request(&a, "Log på Netbank");
        let views = a.requests(Language::English).unwrap();
        let v = &views[0];
        assert_eq!(v.call_signals, on_call());
        assert_eq!(v.warnings[0].kind, WarningKind::OnCall);
        assert_eq!(
            v.warnings[0].text,
            "You are on a call. Nobody from your bank, the police or support will ask you to approve. Hang up before you continue."
        );
        assert_eq!(v.call_warning.as_ref().unwrap().warning, v.warnings[0]);
        assert!(v.needs_started_myself);
        let danish = &a.requests(Language::Danish).unwrap()[0];
        assert!(danish.warnings[0].text.starts_with("Du taler i telefon."));

        let token = a.unlock(&f.authenticator, &req, PIN).await.unwrap();
        // Before the read time the confirmation itself is too early.
        assert_eq!(
            a.confirm_started_myself(&f.authenticator, &req),
            Err(Error::TooFast {
                wait_ms: DEFAULT_MIN_READ_MS
            })
        );
        f.clock.advance(DEFAULT_MIN_READ_MS);
        // Without it the swipe is refused: nothing signed, the unlock kept.
        assert_eq!(
            a.approve(&token, true, None).await,
            Err(Error::StartedMyselfRequired)
        );
        assert_eq!(signed_context(&a, &f.authenticator, &req), None);
        a.confirm_started_myself(&f.authenticator, &req).unwrap();
        assert!(!a.requests(Language::English).unwrap()[0].needs_started_myself);
        // The server is unreachable here: the decision is signed and kept.
        assert!(matches!(
            a.approve(&token, true, None).await,
            Err(Error::Network(_))
        ));
        assert_eq!(
            signed_context(&a, &f.authenticator, &req),
            Some(on_call().signed(true))
        );
    }

    #[tokio::test]
    async fn without_a_provider_every_signal_is_unknown_and_nothing_is_held_back() {
        let f = fixture();
        let a = f.open();
        let req = f.add_request(&a, "Log på Netbank");
        let v = &a.requests(Language::English).unwrap()[0];
        assert_eq!(v.call_signals, CallSignals::UNKNOWN);
        assert_eq!(v.call_warning, None);
        assert!(!v.needs_started_myself);
        let token = a.unlock(&f.authenticator, &req, PIN).await.unwrap();
        f.clock.advance(DEFAULT_MIN_READ_MS);
        assert!(matches!(
            a.approve(&token, true, None).await,
            Err(Error::Network(_))
        ));
        // Signed as version 2 with "unknown", not as "no call".
        assert_eq!(
            signed_context(&a, &f.authenticator, &req),
            Some(CallContext::UNKNOWN)
        );
    }

    #[tokio::test]
    async fn signals_off_show_no_warning_and_a_denial_on_a_call_is_never_held_back() {
        let f = fixture();
        let a = f.open();
        let off = CallSignals {
            call: Signal::Off,
            screen_shared: Signal::Off,
            remote_control: Signal::Off,
        };
        a.set_context_provider(Arc::new(FixedContext(off))).unwrap();
        f.add_request(&a, "Log på Netbank");
        let v = &a.requests(Language::English).unwrap()[0];
        assert_eq!(v.call_warning, None);
        assert!(!v.needs_started_myself);

        a.set_context_provider(Arc::new(FixedContext(on_call())))
            .unwrap();
        let req = f.add_request(&a, "Overførsel 100 kr.");
        assert!(matches!(
            a.deny(&f.authenticator, &req).await,
            Err(Error::Network(_))
        ));
        assert_eq!(
            signed_context(&a, &f.authenticator, &req),
            Some(on_call().signed(false))
        );
    }

    #[tokio::test]
    async fn a_confirmation_given_before_any_warning_does_not_open_the_gate_of_a_later_call() {
        // "Tap 'I started this myself' now, I'll call you back": a
        // confirmation without a warning on the screen is not one.
        let f = fixture();
        let a = f.open();
        a.set_context_provider(Arc::new(FixedContext(CallSignals::UNKNOWN)))
            .unwrap();
        let req = f.add_request(&a, "Log på Netbank");
        assert!(!a.requests(Language::English).unwrap()[0].needs_started_myself);
        let token = a.unlock(&f.authenticator, &req, PIN).await.unwrap();
        f.clock.advance(DEFAULT_MIN_READ_MS);
        a.confirm_started_myself(&f.authenticator, &req).unwrap();
        a.set_context_provider(Arc::new(FixedContext(on_call())))
            .unwrap();
        assert!(a.requests(Language::English).unwrap()[0].needs_started_myself);
        assert_eq!(
            a.approve(&token, true, None).await,
            Err(Error::StartedMyselfRequired)
        );
        assert_eq!(signed_context(&a, &f.authenticator, &req), None);
        // Given with the warning shown, it counts.
        a.confirm_started_myself(&f.authenticator, &req).unwrap();
        assert!(!a.requests(Language::English).unwrap()[0].needs_started_myself);
    }

    #[test]
    fn the_strongest_signal_picks_the_warning() {
        let shared = CallSignals {
            screen_shared: Signal::On,
            ..CallSignals::UNKNOWN
        };
        let remote_and_shared = CallSignals {
            remote_control: Signal::On,
            ..shared
        };
        let all = CallSignals {
            call: Signal::On,
            ..remote_and_shared
        };
        let kind = |s: &CallSignals| {
            crate::display::call_warning(s, Language::English).map(|w| w.warning.kind)
        };
        assert_eq!(kind(&shared), Some(WarningKind::ScreenShared));
        assert_eq!(kind(&remote_and_shared), Some(WarningKind::RemoteControl));
        assert_eq!(kind(&all), Some(WarningKind::OnCall));
        assert_eq!(kind(&CallSignals::UNKNOWN), None);
    }

    #[test]
    fn only_a_signal_observed_on_counts_as_on() {
        assert!(!CallSignals::UNKNOWN.any_on());
        let off = CallSignals {
            call: Signal::Off,
            screen_shared: Signal::Off,
            remote_control: Signal::Off,
        };
        assert!(!off.any_on());
        for on in [
            CallSignals {
                call: Signal::On,
                ..off
            },
            CallSignals {
                screen_shared: Signal::On,
                ..off
            },
            CallSignals {
                remote_control: Signal::On,
                ..CallSignals::UNKNOWN
            },
        ] {
            assert!(on.any_on());
            assert_eq!(FixedContext(on).signals(), on);
        }
    }

    #[test]
    fn the_signed_context_carries_the_signals_and_the_confirmation() {
        let s = CallSignals {
            call: Signal::On,
            ..CallSignals::UNKNOWN
        };
        let c = s.signed(true);
        assert_eq!(c.call, Signal::On);
        assert_eq!(c.screen_shared, Signal::Unknown);
        assert!(c.confirmed_self_started);
    }
}
