//! The local PIN attempt counter: a pure state machine (persisted by the store).
//!
//! Protocol for one PIN attempt:
//! 1. [`LockoutState::gate`] refuses while a wait is running, or returns the
//!    state *as if the attempt failed*; the caller commits that state to SQLite
//!    (synchronous=FULL) **before** trying the PIN, so killing the app during the
//!    attempt still counts it.
//! 2. On success the caller commits [`LockoutState::reset`].
//! 3. On failure the pre-committed state stands; [`LockoutState::failure_outcome`]
//!    says what to tell the person, or that the PIN key must now be destroyed.
//!
//! Delays (consecutive wrong PINs → wait before the next try):
//!
//! | wrong PINs | wait    |
//! |-----------:|---------|
//! | 1–2        | none    |
//! | 3          | 1 min   |
//! | 4          | 5 min   |
//! | 5          | 15 min  |
//! | 6–9        | 60 min  |
//! | 10         | PIN key destroyed, re-activation needed |
//!
//! Clock: the deadline is wall time (it must survive restarts, where no
//! monotonic clock does). To stop the person gaining tries by moving the clock:
//! every deadline is based on the latest wall time ever seen
//! (`max(now, last_seen)`), and while a wait tier applies, a wall clock that is
//! *behind* the last recorded check counts as "still locked" (the wait is then
//! measured from the rolled-back time, so it only gets longer). A clock moved
//! *forward* can shorten a wait across restarts (the core also tracks waits on
//! the monotonic clock within one process), but never adds tries: after 10
//! wrong PINs in a row the key is gone whatever the clock says.

/// Consecutive wrong PINs after which the PIN key is destroyed.
pub const MAX_FAILURES: u32 = 10;

const MINUTE_MS: u64 = 60_000;

/// The wait imposed after `failures` consecutive wrong PINs (the table above).
pub fn delay_after(failures: u32) -> u64 {
    match failures {
        0..=2 => 0,
        3 => MINUTE_MS,
        4 => 5 * MINUTE_MS,
        5 => 15 * MINUTE_MS,
        _ => 60 * MINUTE_MS,
    }
}

/// Persisted attempt state of one authenticator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LockoutState {
    /// Consecutive wrong PINs (including an attempt in progress).
    pub failures: u32,
    /// No attempt before this wall time (Unix ms); 0 = none.
    pub locked_until_ms: u64,
    /// Latest wall time seen at a check (Unix ms).
    pub last_seen_ms: u64,
}

/// What [`LockoutState::gate`] decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Try the PIN; persist this state first (it counts the attempt as failed).
    Proceed(LockoutState),
    /// Wait this long before trying.
    Locked {
        /// Milliseconds to wait.
        retry_after_ms: u64,
    },
    /// The limit was reached: destroy the PIN key.
    Exhausted,
}

/// What a failed attempt means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureOutcome {
    /// Tell the person: this many tries left, and the wait before the next.
    WrongPin {
        /// Wrong PINs left before destruction.
        attempts_left: u32,
        /// Wait before the next try (0 = none).
        retry_after_ms: u64,
    },
    /// Destroy the PIN key now.
    Destroy,
}

impl LockoutState {
    /// Decides whether a PIN attempt may start at wall time `now_ms`.
    pub fn gate(&self, now_ms: u64) -> Gate {
        if self.failures >= MAX_FAILURES {
            return Gate::Exhausted;
        }
        let rolled_back = now_ms < self.last_seen_ms;
        if delay_after(self.failures) > 0 {
            if rolled_back {
                // Clock moved back: still locked, measured from the earlier time.
                let retry_after_ms = self
                    .locked_until_ms
                    .saturating_sub(now_ms)
                    .max(delay_after(self.failures));
                return Gate::Locked { retry_after_ms };
            }
            if now_ms < self.locked_until_ms {
                return Gate::Locked {
                    retry_after_ms: self.locked_until_ms - now_ms,
                };
            }
        }
        let base = now_ms.max(self.last_seen_ms);
        let failures = self.failures + 1;
        let delay = delay_after(failures);
        Gate::Proceed(LockoutState {
            failures,
            locked_until_ms: if delay > 0 { base + delay } else { 0 },
            last_seen_ms: base,
        })
    }

    /// The state after a correct PIN at `now_ms`.
    pub fn reset(&self, now_ms: u64) -> LockoutState {
        LockoutState {
            failures: 0,
            locked_until_ms: 0,
            last_seen_ms: now_ms.max(self.last_seen_ms),
        }
    }

    /// Interprets this (pre-committed) state after the attempt failed.
    pub fn failure_outcome(&self) -> FailureOutcome {
        if self.failures >= MAX_FAILURES {
            FailureOutcome::Destroy
        } else {
            FailureOutcome::WrongPin {
                attempts_left: MAX_FAILURES - self.failures,
                retry_after_ms: delay_after(self.failures),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_800_000_000_000;

    fn fail(s: LockoutState, now: u64) -> (LockoutState, FailureOutcome) {
        match s.gate(now) {
            Gate::Proceed(next) => (next, next.failure_outcome()),
            other => panic!("expected to proceed, got {other:?}"),
        }
    }

    #[test]
    fn escalates_then_destroys() {
        let mut s = LockoutState::default();
        let mut now = T0;
        let expected = [
            (9, 0),
            (8, 0),
            (7, MINUTE_MS),
            (6, 5 * MINUTE_MS),
            (5, 15 * MINUTE_MS),
            (4, 60 * MINUTE_MS),
            (3, 60 * MINUTE_MS),
            (2, 60 * MINUTE_MS),
            (1, 60 * MINUTE_MS),
        ];
        for (left, wait) in expected {
            let (next, outcome) = fail(s, now);
            assert_eq!(
                outcome,
                FailureOutcome::WrongPin {
                    attempts_left: left,
                    retry_after_ms: wait
                }
            );
            s = next;
            if wait > 0 {
                assert_eq!(s.gate(now + wait - 1), Gate::Locked { retry_after_ms: 1 });
            }
            now += wait;
        }
        let (s, outcome) = fail(s, now);
        assert_eq!(outcome, FailureOutcome::Destroy);
        assert_eq!(s.gate(now + 100 * 60 * MINUTE_MS), Gate::Exhausted);
    }

    #[test]
    fn success_resets_and_clock_rollback_stays_locked() {
        let mut s = LockoutState::default();
        for _ in 0..3 {
            s = fail(s, T0).0;
        }
        assert_eq!(
            s.gate(T0 + 10),
            Gate::Locked {
                retry_after_ms: MINUTE_MS - 10
            }
        );
        // Rolling the clock back a day does not unlock (and not forever either).
        assert_eq!(
            s.gate(T0 - 86_400_000),
            Gate::Locked {
                retry_after_ms: 86_400_000 + MINUTE_MS
            }
        );
        // A failure made with a rolled-back clock still bases its wait on the latest time.
        let mut s2 = LockoutState::default();
        for _ in 0..2 {
            s2 = fail(s2, T0).0;
        }
        let (s3, _) = fail(s2, T0 - 86_400_000);
        assert_eq!(s3.locked_until_ms, T0 + MINUTE_MS);
        // After the wait a correct PIN resets.
        let Gate::Proceed(trial) = s.gate(T0 + MINUTE_MS) else {
            panic!("should proceed")
        };
        assert_eq!(trial.failures, 4);
        let ok = trial.reset(T0 + MINUTE_MS);
        assert_eq!(ok.failures, 0);
        assert!(matches!(ok.gate(T0 + MINUTE_MS), Gate::Proceed(_)));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// One step of the person (or the phone) against the state machine.
        #[derive(Debug, Clone)]
        enum Step {
            /// A PIN attempt; `right` says whether the PIN is right.
            Attempt { right: bool },
            /// The app is killed during an attempt: the pre-committed state
            /// stands even if the PIN was right.
            KilledDuringAttempt,
            /// Real time passes.
            Wait(u64),
            /// Real time passes up to `k` ms before the current wait ends
            /// (probes the boundary).
            WaitNearDeadline(u64),
            /// The wall clock is set back (never forward here: a clock set
            /// forward may shorten a wait across restarts, as documented).
            ClockBack(u64),
        }

        fn step() -> impl Strategy<Value = Step> {
            prop_oneof![
                4 => any::<bool>().prop_map(|right| Step::Attempt { right }),
                1 => Just(Step::KilledDuringAttempt),
                2 => (0u64..2 * 60 * MINUTE_MS).prop_map(Step::Wait),
                2 => (0u64..2_000).prop_map(Step::WaitNearDeadline),
                1 => (0u64..48 * 60 * MINUTE_MS).prop_map(Step::ClockBack),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            /// Whatever the order of right and wrong PINs, kills and clocks
            /// set back: the count of wrong PINs never goes down except on a
            /// right PIN, no attempt starts before its wait has really passed,
            /// and the tenth wrong PIN in a row is final.
            #[test]
            fn lockout_invariants(steps in proptest::collection::vec(step(), 1..80)) {
                let mut state = LockoutState::default();
                let mut real = T0; // true time
                let mut offset: i64 = 0; // wall = real + offset; only decreases
                let mut wrong_in_a_row = 0u32;
                let mut earliest_next_try = 0u64; // in true time
                let mut destroyed = false;
                for step in steps {
                    let wall = (real as i64 + offset) as u64;
                    match step {
                        Step::Wait(ms) => real += ms,
                        Step::WaitNearDeadline(k) => {
                            real = real.max(earliest_next_try.saturating_sub(k));
                        }
                        Step::ClockBack(ms) => offset -= ms as i64,
                        Step::Attempt { .. } | Step::KilledDuringAttempt => {
                            match state.gate(wall) {
                                Gate::Exhausted => {
                                    prop_assert!(destroyed || wrong_in_a_row >= MAX_FAILURES);
                                    destroyed = true;
                                }
                                Gate::Locked { retry_after_ms } => {
                                    prop_assert!(retry_after_ms > 0);
                                    prop_assert!(!destroyed);
                                }
                                Gate::Proceed(trial) => {
                                    prop_assert!(!destroyed, "an attempt after destruction");
                                    prop_assert!(real >= earliest_next_try,
                                        "attempt at {real} before the wait ended at {earliest_next_try}");
                                    // The pre-committed state counts this attempt.
                                    prop_assert_eq!(trial.failures, wrong_in_a_row + 1);
                                    let right = matches!(step, Step::Attempt { right: true });
                                    if right {
                                        state = trial.reset(wall);
                                        wrong_in_a_row = 0;
                                        earliest_next_try = 0;
                                    } else {
                                        state = trial;
                                        wrong_in_a_row += 1;
                                        earliest_next_try = real + delay_after(wrong_in_a_row);
                                        if trial.failure_outcome() == FailureOutcome::Destroy {
                                            prop_assert_eq!(wrong_in_a_row, MAX_FAILURES);
                                            destroyed = true;
                                        }
                                    }
                                }
                            }
                        }
                    }
                    prop_assert_eq!(state.failures, wrong_in_a_row.min(MAX_FAILURES));
                    prop_assert!(wrong_in_a_row <= MAX_FAILURES);
                }
            }
        }
    }
}
