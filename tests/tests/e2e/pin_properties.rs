//! Property test of the PIN lockout through the real core (docs/reliability.md): random
//! right and wrong PINs, app restarts and wall-clock jumps of up to ±24 h,
//! against real SQLite files. The count of wrong PINs never rolls back (not by
//! a restart, not by the clock), a right PIN is accepted whenever no wait
//! runs, and the tenth wrong PIN in a row destroys the PIN key for good.

use eid_core::Error;
use eid_e2e_tests::{DAY_MS, PIN, World};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

/// A second PIN that passes the policy; right PINs alternate between the two.
const OTHER_PIN: &str = "739154";
const WRONG_PIN: &str = "615283";

#[derive(Debug, Clone)]
enum Step {
    Attempt {
        right: bool,
    },
    Restart,
    /// Real time passes (wall and monotonic).
    Wait(u64),
    /// The person waits out the last wait the app announced.
    WaitOut,
    /// The person sets the wall clock by this much (±24 h).
    SetClock(i64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => proptest::bool::weighted(0.2).prop_map(|right| Step::Attempt { right }),
        1 => Just(Step::Restart),
        4 => Just(Step::WaitOut),
        4 => prop_oneof![0u64..5_000, 0u64..2 * 60 * 60 * 1000].prop_map(Step::Wait),
        1 => (-(DAY_MS as i64)..=DAY_MS as i64).prop_map(Step::SetClock),
    ]
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

fn world() -> &'static World {
    static WORLD: std::sync::OnceLock<World> = std::sync::OnceLock::new();
    WORLD.get_or_init(|| runtime().block_on(World::start()).unwrap())
}

async fn run(w: &World, steps: Vec<Step>, case: u64) -> Result<(), TestCaseError> {
    let user = format!("prop#{case:04}x");
    let mut phone = w
        .activated_phone(&format!("prop-{case}"), &user)
        .await
        .unwrap();
    let authenticator = phone.app.authenticators().unwrap()[0].authenticator_id;
    let mut current = PIN;
    let mut wrong_in_a_row = 0u32;
    let mut announced_wait = 0u64;
    for step in steps {
        match step {
            Step::Restart => phone.restart().unwrap(),
            Step::Wait(ms) => phone.clock.advance(ms),
            Step::WaitOut => phone.clock.advance(announced_wait),
            Step::SetClock(delta) => {
                let now = eid_core::Clock::wall_ms(phone.clock.as_ref());
                phone.clock.set_wall(now.saturating_add_signed(delta));
            }
            Step::Attempt { right } => {
                let next = if current == PIN { OTHER_PIN } else { PIN };
                let typed = if right { current } else { WRONG_PIN };
                match phone.app.change_pin(&authenticator, typed, next).await {
                    Ok(()) => {
                        prop_assert!(right, "a wrong PIN was accepted");
                        prop_assert!(wrong_in_a_row < 10, "accepted after destruction");
                        current = next;
                        wrong_in_a_row = 0;
                    }
                    Err(Error::WrongPin {
                        attempts_left,
                        retry_after_ms,
                    }) => {
                        announced_wait = retry_after_ms;
                        prop_assert!(!right, "the right PIN was called wrong");
                        wrong_in_a_row += 1;
                        prop_assert_eq!(
                            attempts_left,
                            10 - wrong_in_a_row,
                            "the count of wrong PINs rolled back"
                        );
                    }
                    Err(Error::LockedOut { retry_after_ms }) => {
                        announced_wait = retry_after_ms;
                        prop_assert!(retry_after_ms > 0);
                        prop_assert!(
                            (3..10).contains(&wrong_in_a_row),
                            "locked out after {} wrong PINs",
                            wrong_in_a_row
                        );
                    }
                    Err(Error::ReactivationRequired) => {
                        if wrong_in_a_row == 9 && !right {
                            wrong_in_a_row = 10;
                        }
                        prop_assert_eq!(wrong_in_a_row, 10, "key destroyed too early");
                    }
                    Err(other) => prop_assert!(false, "unexpected error {other:?}"),
                }
            }
        }
    }
    Ok(())
}

proptest! {
    // Seeds of past failures are read from and saved to the file beside this
    // one (`pin_properties.proptest-regressions`); proptest's default would
    // be a `proptest-regressions/` folder beside the binary's `main.rs`.
    #![proptest_config(ProptestConfig {
        cases: 32,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn pin_counter_never_rolls_back(steps in proptest::collection::vec(step(), 1..60)) {
        static CASE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let case = CASE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let w = world();
        runtime().block_on(run(w, steps, case))?;
    }
}
