//! Limits counted per source, in memory: what one client address (IPv4
//! address or IPv6 /64, see [`super::guard::Source`]) did recently, so that a
//! stranger who knows a user ID runs into a limit of their own before they
//! can use up the person's (docs/threat-model.md, "Strangers who know a user
//! ID"). Also the unknown-user-ID refusals of a service provider, which are
//! not requests and so not in the store's flood windows.
//!
//! In memory on purpose: these counts guard against floods, they need no
//! durability (a restart forgives), and keeping them out of the store keeps
//! the unauthenticated paths from writing for every call. Bounded: each key
//! keeps only the times inside its window, and the map starts over when it
//! holds [`MAX_KEYS`] keys even after forgetting the stale ones.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;

use eid_protocol::ServiceProviderId;

use crate::limits::{
    CHANGE_STARTS_PER_SOURCE_PER_USER_ID, ENROLMENT_STARTS_PER_SOURCE_PER_USER_ID,
    STARTS_PER_SOURCE, STARTS_PER_SOURCE_AFTER_REFUSAL, WRONG_CODES_WINDOW_MS, Window,
};
use crate::policy;

/// Keys the map holds before it forgets stale ones, and starts over if that
/// is not enough.
const MAX_KEYS: usize = 100_000;

/// How long the per-source counts remember (their windows are an hour).
const HOUR_MS: u64 = 3_600_000;

/// What is counted, and for whom.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// Starts of `what` by a source, over all user IDs.
    Starts(StartKind, IpAddr),
    /// Starts of `what` by a source for one user ID (its SHA-256, folded:
    /// the map holds no user IDs).
    StartsFor(StartKind, IpAddr, [u8; 32]),
    /// New-device enrolments of a source that were refused.
    RefusedEnrolments(IpAddr),
    /// Wrong activation codes sent by a source.
    WrongCodes(IpAddr),
    /// Requests a service provider asked for unknown user IDs.
    UnknownUserIds(ServiceProviderId),
}

/// The start endpoints, counted apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum StartKind {
    /// A new-device enrolment.
    Enrolment,
    /// A self-service change.
    SelfService,
    /// A code device's activation by approval in the app.
    CodeDevice,
}

/// The in-memory counters, one per [`crate::api::AppState`].
#[derive(Debug, Default)]
pub(crate) struct SourceLimits {
    seen: Mutex<HashMap<Key, VecDeque<u64>>>,
}

impl SourceLimits {
    /// Counts a start of `kind` by `source` for `user_id_folded` if the
    /// source's windows leave room; else how many milliseconds until they do
    /// (nothing is counted then). Unknown and known user IDs count alike, so
    /// the refusal reveals nothing about the user ID. A source with a refused
    /// enrolment in the last hour has fewer enrolment starts per user ID.
    pub(crate) fn start(
        &self,
        kind: StartKind,
        source: IpAddr,
        user_id_folded: &str,
        now_ms: u64,
    ) -> Result<(), u64> {
        let per_user_id = Key::StartsFor(
            kind,
            source,
            eid_protocol::sha256(user_id_folded.as_bytes()),
        );
        let overall = Key::Starts(kind, source);
        let mut seen = self.lock(now_ms);
        let refused = count(
            &seen,
            &Key::RefusedEnrolments(source),
            STARTS_PER_SOURCE,
            now_ms,
        )
        .0;
        let tight = match kind {
            StartKind::Enrolment if refused > 0 => Window {
                limit: STARTS_PER_SOURCE_AFTER_REFUSAL,
                ..ENROLMENT_STARTS_PER_SOURCE_PER_USER_ID
            },
            StartKind::Enrolment => ENROLMENT_STARTS_PER_SOURCE_PER_USER_ID,
            StartKind::SelfService | StartKind::CodeDevice => CHANGE_STARTS_PER_SOURCE_PER_USER_ID,
        };
        let waits = [(&per_user_id, tight), (&overall, STARTS_PER_SOURCE)]
            .into_iter()
            .filter_map(|(key, window)| {
                let (n, oldest) = count(&seen, key, window, now_ms);
                policy::window_full(window, n).map(|_| policy::window_wait(window, oldest, now_ms))
            })
            .max();
        if let Some(wait) = waits {
            return Err(wait);
        }
        for key in [per_user_id, overall] {
            push(&mut seen, key, now_ms, HOUR_MS);
        }
        Ok(())
    }

    /// Records that a new-device enrolment started from `source` was refused
    /// by the person (its new device learnt so in its status poll).
    pub(crate) fn enrolment_refused(&self, source: IpAddr, now_ms: u64) {
        push(
            &mut self.lock(now_ms),
            Key::RefusedEnrolments(source),
            now_ms,
            HOUR_MS,
        );
    }

    /// Whether `source` may try an activation code now: `Err` with the
    /// milliseconds it must wait after too many wrong codes.
    pub(crate) fn may_try_code(&self, source: IpAddr, now_ms: u64) -> Result<(), u64> {
        let window = Window {
            window_ms: WRONG_CODES_WINDOW_MS,
            limit: 0,
        };
        let seen = self.lock(now_ms);
        let key = Key::WrongCodes(source);
        let (wrong, _) = count(&seen, &key, window, now_ms);
        let last = seen.get(&key).and_then(|t| t.back().copied());
        match policy::wrong_code_wait(wrong, last, now_ms) {
            0 => Ok(()),
            wait => Err(wait),
        }
    }

    /// Records a wrong activation code sent by `source`.
    pub(crate) fn wrong_code(&self, source: IpAddr, now_ms: u64) {
        push(
            &mut self.lock(now_ms),
            Key::WrongCodes(source),
            now_ms,
            WRONG_CODES_WINDOW_MS,
        );
    }

    /// Counts a request `provider` asked for an unknown user ID against its
    /// windows (those of its requests); `Err` with the wait when full.
    pub(crate) fn unknown_user_id(
        &self,
        provider: ServiceProviderId,
        windows: &[Window],
        now_ms: u64,
    ) -> Result<(), u64> {
        let key = Key::UnknownUserIds(provider);
        let mut seen = self.lock(now_ms);
        let longest = windows.iter().map(|w| w.window_ms).max().unwrap_or(0);
        let wait = windows
            .iter()
            .filter_map(|&window| {
                let (n, oldest) = count(&seen, &key, window, now_ms);
                policy::window_full(window, n).map(|_| policy::window_wait(window, oldest, now_ms))
            })
            .max();
        if let Some(wait) = wait {
            return Err(wait);
        }
        push(&mut seen, key, now_ms, longest);
        Ok(())
    }

    /// The map, forgetting stale keys when it is full (and everything if
    /// that does not help: a flood of fresh addresses must not grow memory).
    fn lock(&self, now_ms: u64) -> std::sync::MutexGuard<'_, HashMap<Key, VecDeque<u64>>> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= MAX_KEYS {
            let hour_ago = now_ms.saturating_sub(HOUR_MS);
            seen.retain(|_, times| times.back().is_some_and(|&t| t > hour_ago));
            if seen.len() >= MAX_KEYS {
                seen.clear();
            }
        }
        seen
    }
}

/// How many times of `key` fall in `window` at `now_ms`, and the one whose
/// leaving frees a slot (the offset [`policy::window_full`] names). Times
/// older than the window are ignored here and dropped by [`push`].
fn count(
    seen: &HashMap<Key, VecDeque<u64>>,
    key: &Key,
    window: Window,
    now_ms: u64,
) -> (u64, Option<u64>) {
    let Some(times) = seen.get(key) else {
        return (0, None);
    };
    let start = policy::window_start(window, now_ms);
    let inside: Vec<u64> = times.iter().copied().filter(|&t| t > start).collect();
    let n = inside.len() as u64;
    let leaving = policy::window_full(window, n).and_then(|offset| {
        inside
            .get(usize::try_from(offset).unwrap_or(usize::MAX))
            .copied()
    });
    (n, leaving)
}

/// Counts `now_ms` for `key`, forgetting its times older than `keep_ms`
/// (the longest window the key is counted in).
fn push(seen: &mut HashMap<Key, VecDeque<u64>>, key: Key, now_ms: u64, keep_ms: u64) {
    let times = seen.entry(key).or_default();
    times.push_back(now_ms);
    let start = now_ms.saturating_sub(keep_ms);
    while times.front().is_some_and(|&t| t <= start) {
        times.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn a_source_gets_three_enrolment_and_five_change_starts_per_user_id_and_others_are_not_affected()
     {
        let l = SourceLimits::default();
        for _ in 0..3 {
            l.start(StartKind::Enrolment, A, "grete#1950x", 1_000)
                .unwrap();
        }
        assert_eq!(
            l.start(StartKind::Enrolment, A, "grete#1950x", 2_000),
            Err(3_600_000 - 1_000)
        );
        l.start(StartKind::Enrolment, B, "grete#1950x", 2_000)
            .unwrap();
        l.start(StartKind::SelfService, A, "grete#1950x", 2_000)
            .unwrap();
        l.start(StartKind::Enrolment, A, "hans#1950x", 2_000)
            .unwrap();
        l.start(StartKind::Enrolment, A, "grete#1950x", 3_601_000)
            .unwrap();
    }

    #[test]
    fn a_source_whose_enrolment_was_refused_gets_one_start_per_user_id() {
        let l = SourceLimits::default();
        l.enrolment_refused(A, 1_000);
        l.start(StartKind::Enrolment, A, "grete#1950x", 2_000)
            .unwrap();
        assert!(
            l.start(StartKind::Enrolment, A, "grete#1950x", 3_000)
                .is_err()
        );
        l.start(StartKind::Enrolment, B, "grete#1950x", 3_000)
            .unwrap();
    }

    #[test]
    fn wrong_codes_make_only_their_source_wait() {
        let l = SourceLimits::default();
        for t in 1_000..1_005 {
            l.may_try_code(A, t).unwrap();
            l.wrong_code(A, t);
        }
        assert_eq!(l.may_try_code(A, 1_010), Err(60_000 - 6));
        l.may_try_code(B, 1_010).unwrap();
    }

    #[test]
    fn the_map_stays_bounded() {
        let l = SourceLimits::default();
        for i in 0..(MAX_KEYS as u32 + 10) {
            l.wrong_code(IpAddr::V4(i.into()), 0);
        }
        assert!(l.seen.lock().unwrap().len() <= MAX_KEYS);
    }
}
