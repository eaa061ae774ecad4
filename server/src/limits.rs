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
/// Wrong activation-code tries after which the code is void.
pub const ACTIVATION_CODE_MAX_TRIES: u32 = 3;
/// Wrong login-screen codes after which a request is cancelled.
pub const BINDING_CODE_MAX_TRIES: u32 = 3;
/// Longest long-poll wait, in seconds.
pub const MAX_WAIT_SECS: u64 = 60;

/// Self-service changes one identity may start per
/// [`CHANGE_START_WINDOW_MS`]; further starts are answered like an unknown
/// user ID (starts need no credentials).
pub const MAX_CHANGE_STARTS_PER_HOUR: u64 = 3;
/// The window [`MAX_CHANGE_STARTS_PER_HOUR`] counts in.
pub const CHANGE_START_WINDOW_MS: u64 = HOUR_MS;
/// Most enrolments one identity may ask for per [`ENROLMENT_WINDOW_MS`];
/// more are answered as decoys (they would only flood the person's phone,
/// SMS and e-mail).
pub const MAX_ENROLMENTS_PER_HOUR: u64 = 3;
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
    /// The person's (over all relying parties).
    Identity,
    /// The relying party's (over all persons).
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

/// The limits checked, atomically with the insert, when a relying party
/// creates a request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestLimits {
    /// Most pending unexpired requests of the identity.
    pub max_pending: u64,
    /// Windows over the identity's requests from all relying parties (the
    /// built-in self-service provider's not counted).
    pub per_identity: Vec<Window>,
    /// Windows over the relying party's requests for all identities.
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
        let per_minute = f
            .provider_per_minute_overrides
            .get(&sp.to_string())
            .copied()
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
