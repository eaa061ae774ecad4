//! Pure rules of the approval flow: time left on a request, and which actions
//! a request allows.

use eid_protocol::REQUEST_LIFETIME_MS;

/// When a request was pulled, by the monotonic clock, and how long it had left
/// by the server's clock at that moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RequestTimer {
    pub(crate) pulled_at_mono_ms: u64,
    pub(crate) remaining_at_pull_ms: u64,
}

/// Time the server gave a request at pull: `expires - server_time`, capped at
/// the protocol's request lifetime (a far-future expiry is not trusted).
pub(crate) fn remaining_at_pull(expires_at_ms: u64, server_time_ms: u64) -> u64 {
    expires_at_ms
        .saturating_sub(server_time_ms)
        .min(REQUEST_LIFETIME_MS)
}

impl RequestTimer {
    /// Time left now, by the monotonic clock.
    pub(crate) fn remaining(&self, now_mono_ms: u64) -> u64 {
        let elapsed = now_mono_ms.saturating_sub(self.pulled_at_mono_ms);
        self.remaining_at_pull_ms.saturating_sub(elapsed)
    }
}

/// Time left for a request stored before a restart (no monotonic reference):
/// measured on the wall clock since it was received; a wall clock behind the
/// receive time counts as expired.
pub(crate) fn remaining_after_restart(
    remaining_at_pull_ms: u64,
    received_wall_ms: u64,
    now_wall_ms: u64,
) -> u64 {
    if now_wall_ms < received_wall_ms {
        return 0;
    }
    remaining_at_pull_ms.saturating_sub(now_wall_ms - received_wall_ms)
}

/// What the person can do with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Action {
    /// Approve (PIN, then swipe).
    Approve,
    /// Deny.
    Deny,
    /// Deny and report "this wasn't me".
    ReportFraud,
}

/// Actions allowed: nothing once expired; deny and report-fraud only when the
/// text was refused; all three otherwise.
pub(crate) fn allowed_actions(text_ok: bool, remaining_ms: u64) -> Vec<Action> {
    if remaining_ms == 0 {
        Vec::new()
    } else if text_ok {
        vec![Action::Approve, Action::Deny, Action::ReportFraud]
    } else {
        vec![Action::Deny, Action::ReportFraud]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers() {
        assert_eq!(remaining_at_pull(1_300_000, 1_000_000), 300_000);
        assert_eq!(remaining_at_pull(u64::MAX, 0), REQUEST_LIFETIME_MS);
        assert_eq!(remaining_at_pull(5, 10), 0);
        let t = RequestTimer {
            pulled_at_mono_ms: 1000,
            remaining_at_pull_ms: 60_000,
        };
        assert_eq!(t.remaining(31_000), 30_000);
        assert_eq!(t.remaining(100_000), 0);
        assert_eq!(remaining_after_restart(60_000, 10_000, 20_000), 50_000);
        assert_eq!(remaining_after_restart(60_000, 10_000, 9_000), 0);
        assert!(allowed_actions(true, 0).is_empty());
        assert_eq!(
            allowed_actions(false, 1),
            vec![Action::Deny, Action::ReportFraud]
        );
    }
}
