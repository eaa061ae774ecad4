//! The business rules the store applies inside its transactions, as pure
//! functions of plain values: a backend loads the inputs (counts, stored
//! times, the change row), asks here, and saves what the answer says, all in
//! one transaction. So every backend applies the same rule, and each decision
//! stays atomic with the writes it causes.
//!
//! The limits themselves are in [`crate::limits`].

use eid_protocol::events::SecurityEventKind;
use eid_protocol::wire::{ChangeState, ContactChannel, RequestStatus};
use eid_protocol::{CallContext, CallVerdict, Outcome, RequestId};
use serde::{Deserialize, Serialize};

use crate::limits::{
    LimitScope, MAX_AWAITING_ENROLMENTS, MAX_CHANGE_STARTS_PER_HOUR, WRONG_CODE_FIRST_WAIT_MS,
    WRONG_CODE_MAX_WAIT_MS, WRONG_CODES_FREE_PER_SOURCE, Window,
};
use crate::store::{
    ChangeKind, DecideResult, Enrolment, EnrolmentStoredState, Recipient, StoredChange,
};

/// A fraud hold as stored for one (identity, service provider).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FraudHold {
    /// When the person last reported one of the provider's requests as fraud.
    pub reported_at_ms: u64,
    /// Whether the person was already told of a refusal in this hold.
    pub notified: bool,
}

/// What the fraud hold says about a new request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldCheck {
    /// No hold (none, over, or holds off).
    Clear,
    /// Refused: cooling down.
    Held {
        /// Milliseconds until the hold ends.
        retry_after_ms: u64,
        /// The first refusal of this hold: record a `requests_held` event and
        /// mark the hold notified (a flood during a hold notifies once).
        notify: bool,
    },
}

/// The cool-down after a fraud report: holds the provider's new requests for
/// the person for `hold_ms` (0: off) after the last report.
pub fn fraud_hold(hold: Option<FraudHold>, hold_ms: u64, now_ms: u64) -> HoldCheck {
    let Some(hold) = hold.filter(|_| hold_ms > 0) else {
        return HoldCheck::Clear;
    };
    let until_ms = hold.reported_at_ms.saturating_add(hold_ms);
    if now_ms >= until_ms {
        return HoldCheck::Clear;
    }
    HoldCheck::Held {
        retry_after_ms: until_ms - now_ms,
        notify: !hold.notified,
    }
}

/// Where a sliding window starts at `now_ms`: requests created after it count.
pub fn window_start(window: Window, now_ms: u64) -> u64 {
    now_ms.saturating_sub(window.window_ms)
}

/// Whether `count` requests in the window leave room for one more: `None`
/// when one fits (or the window is off), else how many of the oldest must
/// leave first, minus one (the offset of the request whose leaving frees a
/// slot, oldest first).
pub fn window_full(window: Window, count: u64) -> Option<u64> {
    (window.limit > 0 && count >= window.limit).then(|| count - window.limit)
}

/// How long until a full window frees a slot: when the request created at
/// `leaving_created_at_ms` (the one [`window_full`] names) leaves it; at
/// least 1 ms, so "full" never reads as "retry now".
pub fn window_wait(window: Window, leaving_created_at_ms: Option<u64>, now_ms: u64) -> u64 {
    let leaves_at = leaving_created_at_ms.map_or(now_ms, |t| t.saturating_add(window.window_ms));
    leaves_at.saturating_sub(now_ms).max(1)
}

/// Of all full windows, the one that frees last decides the answer.
pub fn longest_wait(
    waits: impl IntoIterator<Item = (LimitScope, u64)>,
) -> Option<(LimitScope, u64)> {
    let mut worst: Option<(LimitScope, u64)> = None;
    for (scope, wait) in waits {
        if worst.is_none_or(|(_, w)| wait > w) {
            worst = Some((scope, wait));
        }
    }
    worst
}

/// Whether an identity that started `recent_starts` changes in the last
/// window may start another.
pub fn change_start_allowed(recent_starts: u64) -> bool {
    recent_starts < MAX_CHANGE_STARTS_PER_HOUR
}

/// What starting a change does to the open changes of the same family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeStart {
    /// One of them is past its first login: refuse the new start.
    Pending,
    /// Start; cancel these (never approved, so the new start supersedes
    /// them, whoever started them) with their first requests.
    Supersede(Vec<StoredChange>),
}

/// Decides a new change of `kind` against the identity's open changes
/// (`open`, as stored, any family) by the clock `now_ms`.
pub fn change_start(kind: ChangeKind, open: Vec<StoredChange>, now_ms: u64) -> ChangeStart {
    let same: Vec<StoredChange> = open
        .into_iter()
        .filter(|o| o.kind.same_family(kind) && o.state_at(now_ms).is_open())
        .collect();
    if same.iter().any(|o| o.first_login_at_ms.is_some()) {
        ChangeStart::Pending
    } else {
        ChangeStart::Supersede(same)
    }
}

/// What a decision on one of a change's self-service login requests does to
/// the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeStep {
    /// Nothing: the request is not the change's current step (a stale
    /// request of a change that moved on).
    Stale,
    /// Deny or report-fraud: cancel the change.
    Cancel,
    /// The first login of a contact change approved: the wait starts, the
    /// second login is possible from `earliest_second_login_at_ms`.
    StartWait {
        /// First login + the change's gap.
        earliest_second_login_at_ms: u64,
    },
    /// The second login of a contact change approved: apply the new contact.
    Complete(ContactChannel),
    /// The second login came before the earliest time (never: the second
    /// request is only created after it); the store refuses the decision.
    TooEarly,
    /// A user-ID change approved: check and apply the new user ID.
    ApplyUserId,
}

/// The step a decision with `outcome` on `request_id` makes for `change`, by
/// the clock `now_ms`.
pub fn change_step(
    change: &StoredChange,
    request_id: RequestId,
    outcome: Outcome,
    now_ms: u64,
) -> ChangeStep {
    let is_first = change.first_request_id == request_id;
    let step_matches = match change.state_at(now_ms) {
        ChangeState::AwaitingFirstLogin => is_first,
        ChangeState::AwaitingSecondLogin => change.second_request_id == Some(request_id),
        _ => false,
    };
    if !step_matches {
        return ChangeStep::Stale;
    }
    if outcome != Outcome::Approve {
        return ChangeStep::Cancel;
    }
    match (change.kind, is_first) {
        (ChangeKind::Contact(_), true) => ChangeStep::StartWait {
            earliest_second_login_at_ms: now_ms.saturating_add(change.gap_ms),
        },
        (ChangeKind::Contact(channel), false) => {
            if change
                .earliest_second_login_at_ms
                .is_none_or(|t| now_ms < t)
            {
                ChangeStep::TooEarly
            } else {
                ChangeStep::Complete(channel)
            }
        }
        (ChangeKind::UserId, _) => ChangeStep::ApplyUserId,
    }
}

/// The new address a contact-change event also goes to, besides the
/// identity's stored contact. Only once the identity's owner approved the
/// first self-service login: before that anyone who knows a user ID could
/// start a change, and notifying the address they typed would tell them the
/// user ID exists and how the person reacted, and would let them send
/// official eID messages to any number or address.
pub fn new_contact_recipient(change: &StoredChange) -> Option<Recipient> {
    match change.kind {
        _ if change.first_login_at_ms.is_none() => None,
        ChangeKind::Contact(ContactChannel::Phone) => {
            Some(Recipient::Sms(change.new_value.clone()))
        }
        ChangeKind::Contact(_) => Some(Recipient::Email(change.new_value.clone())),
        ChangeKind::UserId => None,
    }
}

/// How long a source that sent `wrong` activation codes in the last window,
/// the last at `last_wrong_at_ms`, must wait before it may try again: none
/// for the first [`WRONG_CODES_FREE_PER_SOURCE`], then
/// [`WRONG_CODE_FIRST_WAIT_MS`] doubling with each further wrong code, up to
/// [`WRONG_CODE_MAX_WAIT_MS`], counted from the last wrong code. 0: may try.
pub fn wrong_code_wait(wrong: u64, last_wrong_at_ms: Option<u64>, now_ms: u64) -> u64 {
    let Some(over) = wrong.checked_sub(WRONG_CODES_FREE_PER_SOURCE) else {
        return 0;
    };
    // 2^over times the first wait; past 2^20 the cap has long been reached.
    let wait = if over >= 20 {
        WRONG_CODE_MAX_WAIT_MS
    } else {
        (WRONG_CODE_FIRST_WAIT_MS << over).min(WRONG_CODE_MAX_WAIT_MS)
    };
    last_wrong_at_ms
        .map_or(0, |t| t.saturating_add(wait))
        .saturating_sub(now_ms)
}

/// Whether a new device may be asked for now, from any source, before the
/// device cap is counted: fewer than [`MAX_AWAITING_ENROLMENTS`] awaiting
/// approval, and fewer than `max_per_hour` in the last hour. A backstop: the
/// tight limits are per source (`crate::api` counts them before the store).
/// Several may await approval at once, each its own request with its own
/// code, so that a stranger's enrolment cannot hide the person's own.
pub fn enrolment_allowed_from_any_source(
    awaiting_live: u64,
    started_last_hour: u64,
    max_per_hour: u64,
) -> bool {
    awaiting_live < MAX_AWAITING_ENROLMENTS && started_last_hour < max_per_hour
}

/// Whether a closed enrolment, seen at `now_ms`, was refused by the person
/// rather than left to lapse: cancelled during its waiting period (it was
/// approved, then cancelled), or before its request expired (denied,
/// reported, three wrong codes, cancelled from a phone). Decoys never count.
pub fn enrolment_refused(e: &Enrolment, now_ms: u64) -> bool {
    e.identity_id.is_some()
        && e.state == EnrolmentStoredState::Cancelled
        && (e.usable_at_ms.is_some() || now_ms < e.expires_at_ms)
}

/// Whether an identity with `devices` (active authenticators plus live
/// enrolments) has reached the cap.
pub fn device_cap_reached(devices: u64, max_devices: u64) -> bool {
    devices >= max_devices
}

/// An activation code as stored, for [`activation_code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredCode {
    /// Used up by an activation.
    pub used: bool,
    /// Wrong tries so far.
    pub tries: u32,
    /// Expiry (server clock).
    pub expires_at_ms: u64,
}

/// What a presented activation code is worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeCheck {
    /// The right code, already used, within its lifetime: a retry after a
    /// lost answer (the same keys get the same authenticator back). After
    /// its lifetime a spent code is simply unusable, so a captured
    /// activation cannot be replayed for ever.
    RetryOfUsed,
    /// Used, void after too many wrong tries, or expired.
    Unusable,
    /// Wrong: count the try.
    Wrong,
    /// Right and usable: activate (if the identity is not blocked).
    Right,
}

/// Checks a presented code (`matches`: it equals the stored one, compared in
/// constant time by the caller) against the stored code's state.
pub fn activation_code(code: StoredCode, matches: bool, max_tries: u32, now_ms: u64) -> CodeCheck {
    let live = now_ms < code.expires_at_ms;
    if code.used && live && matches {
        CodeCheck::RetryOfUsed
    } else if code.used || code.tries >= max_tries || !live {
        CodeCheck::Unusable
    } else if !matches {
        CodeCheck::Wrong
    } else {
        CodeCheck::Right
    }
}

/// Whether a request in stored `status` expiring at `expires_at_ms` can still
/// be decided at `now_ms`: `None` if so, else the answer (an already decided
/// request is answered with its decision before this is asked).
pub fn request_decidable(
    status: RequestStatus,
    expires_at_ms: u64,
    now_ms: u64,
) -> Option<DecideResult> {
    match status {
        RequestStatus::Pending if now_ms >= expires_at_ms => Some(DecideResult::Expired),
        RequestStatus::Pending => None,
        _ => Some(DecideResult::Cancelled),
    }
}

/// Whether an authenticator may decide: active, its identity unblocked, and
/// the decision's counter above the last accepted one. `None` if so, else
/// the refusal.
pub fn decider_allowed(
    active: bool,
    blocked: bool,
    counter: u64,
    last_counter: u64,
) -> Option<DecideResult> {
    if !active || blocked {
        Some(DecideResult::NotAllowed)
    } else if counter <= last_counter {
        Some(DecideResult::CounterReplay)
    } else {
        None
    }
}

/// The security event a decision records besides its own rows: a fraud
/// report always; an approval when the person opted in to a notice on every
/// use.
pub fn decision_event(outcome: Outcome, notify_every_use: bool) -> Option<SecurityEventKind> {
    match outcome {
        Outcome::ReportFraud => Some(SecurityEventKind::FraudReported),
        Outcome::Approve if notify_every_use => Some(SecurityEventKind::Used),
        _ => None,
    }
}

/// What the call policy does with an approval made while the phone saw a
/// call, screen sharing or remote control (docs/protocol.md, "Call
/// context"). Chosen per request kind and, for logins and signatures, per
/// service provider ([`crate::config::CallPolicyConfig`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallDisposition {
    /// Accept it; the service provider sees the context and `allowed`.
    Allow,
    /// Accept it and flag it: the service provider sees `flagged` in the
    /// status and in the ID token and decides itself.
    Flag,
    /// Refuse it: nothing is approved, the request is cancelled and the
    /// person is told "we stopped this because you were on a call".
    Refuse,
}

/// The call policy's verdict on a decision: only an approval with a signal
/// observed on is judged (a refusal is always welcome, and "unknown" is not
/// "on": an older phone or a platform that cannot tell is not punished, and
/// the person's "I started this myself" does not lift it, because the caller
/// tells them to say so).
pub fn call_verdict(
    outcome: Outcome,
    context: &CallContext,
    disposition: CallDisposition,
) -> CallVerdict {
    if outcome != Outcome::Approve || !context.any_on() {
        return CallVerdict::Clear;
    }
    match disposition {
        CallDisposition::Allow => CallVerdict::Allowed,
        CallDisposition::Flag => CallVerdict::Flagged,
        CallDisposition::Refuse => CallVerdict::Stopped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eid_protocol::Signal;

    #[test]
    fn only_an_approval_with_a_signal_on_is_judged_by_the_call_policy() {
        let on_call = CallContext {
            call: Signal::On,
            ..CallContext::UNKNOWN
        };
        let screen = CallContext {
            screen_shared: Signal::On,
            confirmed_self_started: true,
            ..CallContext::UNKNOWN
        };
        let remote = CallContext {
            remote_control: Signal::On,
            ..CallContext::UNKNOWN
        };
        let all_off = CallContext {
            call: Signal::Off,
            screen_shared: Signal::Off,
            remote_control: Signal::Off,
            confirmed_self_started: false,
        };
        for c in [on_call, screen, remote] {
            assert_eq!(
                call_verdict(Outcome::Approve, &c, CallDisposition::Refuse),
                CallVerdict::Stopped
            );
            assert_eq!(
                call_verdict(Outcome::Approve, &c, CallDisposition::Flag),
                CallVerdict::Flagged
            );
            assert_eq!(
                call_verdict(Outcome::Approve, &c, CallDisposition::Allow),
                CallVerdict::Allowed
            );
            for refusal in [Outcome::Deny, Outcome::ReportFraud] {
                assert_eq!(
                    call_verdict(refusal, &c, CallDisposition::Refuse),
                    CallVerdict::Clear
                );
            }
        }
        for c in [all_off, CallContext::UNKNOWN] {
            assert_eq!(
                call_verdict(Outcome::Approve, &c, CallDisposition::Refuse),
                CallVerdict::Clear
            );
        }
    }

    const HOLD: u64 = 60_000;

    #[test]
    fn a_fraud_hold_refuses_until_it_ends_and_notifies_once() {
        let hold = |notified| {
            Some(FraudHold {
                reported_at_ms: 1_000,
                notified,
            })
        };
        assert_eq!(
            fraud_hold(hold(false), HOLD, 1_000),
            HoldCheck::Held {
                retry_after_ms: HOLD,
                notify: true
            }
        );
        assert_eq!(
            fraud_hold(hold(true), HOLD, 2_000),
            HoldCheck::Held {
                retry_after_ms: HOLD - 1_000,
                notify: false
            }
        );
        assert_eq!(fraud_hold(hold(true), HOLD, 1_000 + HOLD), HoldCheck::Clear);
        assert_eq!(fraud_hold(hold(false), 0, 1_000), HoldCheck::Clear);
        assert_eq!(fraud_hold(None, HOLD, 1_000), HoldCheck::Clear);
    }

    #[test]
    fn a_full_window_waits_for_its_oldest_counted_request_to_leave() {
        let w = Window {
            window_ms: 60_000,
            limit: 3,
        };
        assert_eq!(window_full(w, 2), None);
        assert_eq!(window_full(w, 3), Some(0));
        assert_eq!(window_full(w, 5), Some(2));
        let off = Window { limit: 0, ..w };
        assert_eq!(window_full(off, 1_000), None);
        assert_eq!(window_wait(w, Some(10_000), 30_000), 40_000);
        assert_eq!(window_wait(w, None, 30_000), 1, "never zero");
        assert_eq!(
            longest_wait([(LimitScope::Identity, 5), (LimitScope::Provider, 9)]),
            Some((LimitScope::Provider, 9))
        );
        assert_eq!(
            longest_wait([(LimitScope::Identity, 9), (LimitScope::Provider, 9)]),
            Some((LimitScope::Identity, 9)),
            "the first of equal waits"
        );
    }

    #[test]
    fn change_starts_and_enrolments_are_capped() {
        assert!(change_start_allowed(MAX_CHANGE_STARTS_PER_HOUR - 1));
        assert!(!change_start_allowed(MAX_CHANGE_STARTS_PER_HOUR));
        assert!(enrolment_allowed_from_any_source(0, 2, 3));
        assert!(enrolment_allowed_from_any_source(
            MAX_AWAITING_ENROLMENTS - 1,
            0,
            3
        ));
        assert!(!enrolment_allowed_from_any_source(
            MAX_AWAITING_ENROLMENTS,
            0,
            3
        ));
        assert!(!enrolment_allowed_from_any_source(0, 3, 3));
        assert!(device_cap_reached(5, 5));
        assert!(!device_cap_reached(4, 5));
    }

    #[test]
    fn wrong_codes_of_a_source_double_its_wait_up_to_an_hour() {
        let free = WRONG_CODES_FREE_PER_SOURCE;
        assert_eq!(wrong_code_wait(free - 1, Some(0), 0), 0);
        assert_eq!(wrong_code_wait(free, Some(0), 0), 60_000);
        assert_eq!(wrong_code_wait(free + 1, Some(0), 0), 120_000);
        assert_eq!(wrong_code_wait(free + 1, Some(0), 120_000), 0);
        assert_eq!(wrong_code_wait(free + 60, Some(0), 0), 3_600_000);
    }

    #[test]
    fn only_an_enrolment_the_person_refused_counts_against_its_source() {
        let key = || {
            eid_protocol::crypto::SoftwareSigningKey::generate()
                .public_key()
                .clone()
        };
        let e = Enrolment {
            id: eid_protocol::AuthenticatorId::random(),
            identity_id: Some(eid_protocol::IdentityId([1; 16])),
            request_id: None,
            device_public_key: key(),
            pin_public_key: key(),
            code: "12345678".into(),
            state: EnrolmentStoredState::Cancelled,
            requested_at_ms: 0,
            expires_at_ms: 300_000,
            wait_ms: 3_600_000,
            usable_at_ms: None,
        };
        assert!(enrolment_refused(&e, 299_999), "denied before it lapsed");
        assert!(!enrolment_refused(&e, 300_000), "lapsed undecided");
        let waiting_cancelled = Enrolment {
            usable_at_ms: Some(3_700_000),
            ..e.clone()
        };
        assert!(enrolment_refused(&waiting_cancelled, 1_000_000));
        let decoy = Enrolment {
            identity_id: None,
            ..e.clone()
        };
        assert!(!enrolment_refused(&decoy, 0));
        let live = Enrolment {
            state: EnrolmentStoredState::AwaitingApproval,
            ..e
        };
        assert!(!enrolment_refused(&live, 0));
    }

    #[test]
    fn a_used_code_is_only_a_retry_while_it_lives() {
        let code = |used, tries| StoredCode {
            used,
            tries,
            expires_at_ms: 1_000,
        };
        assert_eq!(
            activation_code(code(false, 0), true, 3, 999),
            CodeCheck::Right
        );
        assert_eq!(
            activation_code(code(false, 0), false, 3, 999),
            CodeCheck::Wrong
        );
        assert_eq!(
            activation_code(code(false, 3), true, 3, 999),
            CodeCheck::Unusable
        );
        assert_eq!(
            activation_code(code(false, 0), true, 3, 1_000),
            CodeCheck::Unusable
        );
        assert_eq!(
            activation_code(code(true, 0), true, 3, 999),
            CodeCheck::RetryOfUsed
        );
        assert_eq!(
            activation_code(code(true, 0), false, 3, 999),
            CodeCheck::Unusable
        );
        assert_eq!(
            activation_code(code(true, 0), true, 3, 1_000),
            CodeCheck::Unusable
        );
    }

    #[test]
    fn only_a_pending_live_request_and_an_allowed_fresh_counter_decide() {
        assert_eq!(request_decidable(RequestStatus::Pending, 10, 9), None);
        assert_eq!(
            request_decidable(RequestStatus::Pending, 10, 10),
            Some(DecideResult::Expired)
        );
        assert_eq!(
            request_decidable(RequestStatus::Approved, 10, 9),
            Some(DecideResult::Cancelled)
        );
        assert_eq!(decider_allowed(true, false, 5, 4), None);
        assert_eq!(
            decider_allowed(true, false, 4, 4),
            Some(DecideResult::CounterReplay)
        );
        assert_eq!(
            decider_allowed(false, false, 5, 4),
            Some(DecideResult::NotAllowed)
        );
        assert_eq!(
            decider_allowed(true, true, 5, 4),
            Some(DecideResult::NotAllowed)
        );
    }

    #[test]
    fn only_fraud_reports_and_opted_in_approvals_are_events() {
        assert_eq!(
            decision_event(Outcome::ReportFraud, false),
            Some(SecurityEventKind::FraudReported)
        );
        assert_eq!(decision_event(Outcome::Approve, false), None);
        assert_eq!(
            decision_event(Outcome::Approve, true),
            Some(SecurityEventKind::Used)
        );
        assert_eq!(decision_event(Outcome::Deny, true), None);
    }
}
