//! Every limit the server enforces, in one place: wrong-PIN, activation-code
//! and login-screen-code tries, long-poll length, the request-creation limits
//! against MFA-fatigue floods (pending cap, sliding windows, fraud hold),
//! the enrolment and self-service change limits, and the cache bound.
//!
//! The numbers an operator tunes live in [`crate::config::Config`]
//! (`max_pending_per_identity`, `max_devices_per_identity`,
//! [`FloodConfig`]); the fixed ones are constants here. The rules that apply
//! them are in [`crate::policy`].

use eid_protocol::ServiceProviderId;

use crate::config::{Config, FloodConfig};

/// Wrong PIN signatures in a row that lock an authenticator centrally.
pub const CENTRAL_PIN_LOCK_AT: u32 = 10;
/// Wrong activation-code tries, from all sources together, after which the
/// code is void (and the person told). High, because anyone who knows the
/// user ID can try: the tight limit is the per-source one,
/// [`WRONG_CODES_FREE_PER_SOURCE`], so a stranger needs many addresses and
/// hours to reach it (see docs/threat-model.md).
pub const ACTIVATION_CODE_MAX_TRIES: u32 = 20;
/// Wrong activation codes one source (client address) may send in
/// [`WRONG_CODES_WINDOW_MS`] before it must wait; each further wrong code
/// doubles the wait ([`crate::policy::wrong_code_wait`]).
pub const WRONG_CODES_FREE_PER_SOURCE: u64 = 5;
/// The window wrong activation codes of one source are counted in.
pub const WRONG_CODES_WINDOW_MS: u64 = HOUR_MS;
/// The first wait of a source past its free wrong codes; it doubles with
/// each further wrong code, up to [`WRONG_CODE_MAX_WAIT_MS`].
pub const WRONG_CODE_FIRST_WAIT_MS: u64 = MINUTE_MS;
/// The longest wait of a source that keeps sending wrong codes.
pub const WRONG_CODE_MAX_WAIT_MS: u64 = HOUR_MS;
/// Wrong login-screen codes after which a request is cancelled.
pub const BINDING_CODE_MAX_TRIES: u32 = 3;
/// Longest long-poll wait, in seconds.
pub const MAX_WAIT_SECS: u64 = 60;

/// Self-service changes one identity may start per
/// [`CHANGE_START_WINDOW_MS`], from all sources together; further starts are
/// answered like an unknown user ID (starts need no credentials). A backstop
/// only, so high that strangers cannot cheaply use it up: the tight limits
/// are per source ([`CHANGE_STARTS_PER_SOURCE_PER_USER_ID`],
/// [`STARTS_PER_SOURCE`]).
pub const MAX_CHANGE_STARTS_PER_HOUR: u64 = 20;
/// New-device enrolments one identity may ask for per
/// [`ENROLMENT_WINDOW_MS`], from all sources together; more are answered as
/// decoys. A backstop like [`MAX_CHANGE_STARTS_PER_HOUR`].
pub const MAX_ENROLMENTS_PER_HOUR: u64 = 20;
/// New-device enrolments of one identity awaiting approval at once. Each
/// shows on the person's phones as its own request with its own code, so a
/// stranger's enrolment cannot hide the person's own.
pub const MAX_AWAITING_ENROLMENTS: u64 = 5;
/// New-device enrolments one source may start for one user ID, known or
/// not, in an hour; more are refused 429 to that source only. Below
/// [`MAX_AWAITING_ENROLMENTS`], so one source cannot fill the person's
/// phone with requests that hide their own.
pub const ENROLMENT_STARTS_PER_SOURCE_PER_USER_ID: Window = Window {
    window_ms: HOUR_MS,
    limit: 3,
};
/// Self-service changes one source may start for one user ID, known or not,
/// in an hour; more are refused 429 to that source only. A few more than
/// enrolments: a person at the portal may start, replace and start a change
/// of another kind within the hour.
pub const CHANGE_STARTS_PER_SOURCE_PER_USER_ID: Window = Window {
    window_ms: HOUR_MS,
    limit: 5,
};
/// Starts one source may make over all user IDs in an hour (against one
/// address walking many user IDs).
pub const STARTS_PER_SOURCE: Window = Window {
    window_ms: HOUR_MS,
    limit: 30,
};
/// Starts per user ID left to a source after one of its new-device
/// enrolments was refused (denied, reported, cancelled or voided by wrong
/// codes) in the last hour.
pub const STARTS_PER_SOURCE_AFTER_REFUSAL: u64 = 1;
/// The window [`MAX_CHANGE_STARTS_PER_HOUR`] counts in.
pub const CHANGE_START_WINDOW_MS: u64 = HOUR_MS;
/// The window [`MAX_ENROLMENTS_PER_HOUR`] counts in.
pub const ENROLMENT_WINDOW_MS: u64 = HOUR_MS;

/// Entries each in-memory cache of immutable records (service providers,
/// identity ids, device keys) holds before it starts over: bounds the
/// memory a flood of distinct ids can take.
pub const CACHE_MAX_ENTRIES: usize = 100_000;

const MINUTE_MS: u64 = 60_000;
const HOUR_MS: u64 = 3_600_000;

/// Whose rate limit a refused request ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitScope {
    /// The person's (over all service providers).
    Identity,
    /// The service provider's (over all persons).
    Provider,
}

/// One sliding window: at most `limit` requests in any `window_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Window length in milliseconds.
    pub window_ms: u64,
    /// Most requests in it; 0 turns the window off.
    pub limit: u64,
}

/// The limits checked, atomically with the insert, when a service provider
/// creates a request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestLimits {
    /// Most pending unexpired requests of the identity.
    pub max_pending: u64,
    /// Windows over the identity's requests from all service providers (the
    /// built-in self-service provider's not counted).
    pub per_identity: Vec<Window>,
    /// Windows over the service provider's requests for all identities.
    pub per_provider: Vec<Window>,
    /// After a fraud report on one of the provider's requests for this
    /// identity, refuse its new requests for this many milliseconds; 0: off.
    pub fraud_hold_ms: u64,
}

impl RequestLimits {
    /// Only the pending cap.
    pub fn pending_only(max_pending: u64) -> Self {
        Self {
            max_pending,
            ..Self::default()
        }
    }
}

/// How long a self-service change stays open after its first login: a
/// change not completed within a day lapses.
pub const CHANGE_MAX_AGE_MS: u64 = 24 * 60 * 60 * 1000;

impl RequestLimits {
    /// The creation limits from the configuration, for provider `sp` (its
    /// per-minute override, if any).
    pub fn from_config(config: &Config, sp: ServiceProviderId) -> Self {
        let f: &FloodConfig = &config.floods;
        // The override map is keyed by the id's text: formatted only when
        // there are overrides (every request creation comes here).
        let per_minute = if f.provider_per_minute_overrides.is_empty() {
            None
        } else {
            f.provider_per_minute_overrides
                .get(&sp.to_string())
                .copied()
        }
        .unwrap_or(f.per_provider_per_minute);
        RequestLimits {
            max_pending: config.max_pending_per_identity,
            per_identity: vec![
                Window {
                    window_ms: MINUTE_MS,
                    limit: f.per_identity_per_minute,
                },
                Window {
                    window_ms: HOUR_MS,
                    limit: f.per_identity_per_hour,
                },
            ],
            per_provider: vec![
                Window {
                    window_ms: MINUTE_MS,
                    limit: per_minute,
                },
                Window {
                    window_ms: HOUR_MS,
                    limit: f.per_provider_per_hour,
                },
            ],
            fraud_hold_ms: f.fraud_hold_secs.saturating_mul(1000),
        }
    }
}
