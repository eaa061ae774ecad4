//! The chip's rules end to end below HTTP, with the software chip
//! ([`super::soft_key::SoftChip`]) against a real SQLite store.

use std::sync::Arc;

use eid_protocol::IdentityId;
use eid_protocol::crypto::SoftwareSigningKey;
use eid_protocol::events::SecurityEventKind;
use eid_protocol::wire::HardwareState;

use super::assertion::UseOutcome;
use super::confirm::{ConfirmOutcome, ConfirmStart};
use super::list::{DeactivateOutcome, deactivate, hardware_list};
use super::register::{RegisterOutcome, Started};
use super::soft_key::SoftChip;
use super::{confirm, parse_ceremony_id, register};
use crate::api::AppState;
use crate::clock::ManualClock;
use crate::config::Config;
use crate::store::{Channel, ChipState, Identity, SqliteStore, Store};

const ORIGIN: &str = "https://localhost:8443";
const CODE: &str = "blue-kettle-morning";

struct World {
    state: AppState,
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("db.sqlite3")).unwrap());
    let clock = Arc::new(ManualClock::new(1_800_000_000_000));
    let state = AppState::new(
        store,
        clock.clone(),
        Arc::new(SoftwareSigningKey::generate()),
        Arc::new(crate::oidc::IdTokenKey::load_or_create(dir.path()).unwrap()),
        Arc::new(crate::oidc::PairwiseKey::load_or_create(dir.path()).unwrap()),
        Arc::new(crate::code_devices::seal::Kek::load_or_create(dir.path()).unwrap()),
        "admin-token",
        Config::default(),
    );
    World {
        state,
        clock,
        _dir: dir,
    }
}

async fn person(w: &World, user_id: &str) -> Identity {
    let identity = Identity {
        id: IdentityId::random(),
        user_id: user_id.to_owned(),
        user_id_folded: user_id.to_lowercase(),
        display_name: None,
        blocked: false,
        created_at_ms: w.clock_now(),
        phone: Some("+4512345678".to_owned()),
        email: None,
        notify_every_use: false,
    };
    w.state
        .store
        .create_identity(identity.clone())
        .await
        .unwrap();
    identity
}

impl World {
    fn clock_now(&self) -> u64 {
        self.state.now_ms()
    }

    async fn register(&self, who: &Identity, key: &mut SoftChip) -> RegisterOutcome {
        let started = register::start(&self.state, who, ORIGIN).await.unwrap();
        let answer = key.register(&started.options_json);
        register::finish(
            &self.state,
            who,
            id_of(&started),
            &answer,
            (CODE, CODE),
            ORIGIN,
        )
        .await
        .unwrap()
    }

    async fn confirm(&self, who: &Identity, key: &mut SoftChip, code: &str) -> ConfirmOutcome {
        let ConfirmStart::Started(started) =
            confirm::start(&self.state, who, ORIGIN).await.unwrap()
        else {
            panic!("step 2 could not start");
        };
        let answer = key.assert(&started.options_json);
        confirm::finish(&self.state, who, id_of(&started), &answer, code, ORIGIN)
            .await
            .unwrap()
    }

    /// The kinds of the SMS deliveries due now (each event reaches every
    /// channel; the person here has a phone number only).
    async fn sms_kinds(&self) -> Vec<SecurityEventKind> {
        self.state
            .store
            .claim_deliveries(vec![Channel::Sms], self.clock_now(), 100, 1, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.event.kind)
            .collect()
    }

    fn past_the_wait(&self) {
        self.clock
            .advance_ms(self.state.config.chip_wait_secs * 1000 + 1);
    }
}

fn id_of(started: &Started) -> [u8; 16] {
    parse_ceremony_id(&started.ceremony_id).unwrap()
}

#[tokio::test]
async fn a_registered_chip_is_pending_until_the_wait_is_over_and_then_confirmed_active() {
    let w = world().await;
    let who = person(&w, "alice").await;
    let mut key = SoftChip::new(ORIGIN);
    let RegisterOutcome::Registered { active_from_ms, .. } = w.register(&who, &mut key).await
    else {
        panic!("not registered");
    };
    assert_eq!(active_from_ms, w.clock_now() + 86_400_000);
    let list = hardware_list(&w.state, who.id).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].state, HardwareState::Pending);
    assert!(matches!(
        confirm::start(&w.state, &who, ORIGIN).await.unwrap(),
        ConfirmStart::TooEarly { .. }
    ));
    w.past_the_wait();
    assert_eq!(
        w.confirm(&who, &mut key, CODE).await,
        ConfirmOutcome::Activated
    );
    let list = hardware_list(&w.state, who.id).await.unwrap();
    assert_eq!(list[0].state, HardwareState::Active);
    assert!(list[0].last_used_at_ms.is_some());
    assert_eq!(
        w.sms_kinds().await,
        vec![
            SecurityEventKind::ChipAdded,
            SecurityEventKind::ChipActivated
        ]
    );
}

#[tokio::test]
async fn a_ceremony_is_single_use() {
    let w = world().await;
    let who = person(&w, "bob").await;
    let mut key = SoftChip::new(ORIGIN);
    let started = register::start(&w.state, &who, ORIGIN).await.unwrap();
    let answer = key.register(&started.options_json);
    let first = register::finish(
        &w.state,
        &who,
        id_of(&started),
        &answer,
        (CODE, CODE),
        ORIGIN,
    )
    .await
    .unwrap();
    assert!(matches!(first, RegisterOutcome::Registered { .. }));
    let again = register::finish(
        &w.state,
        &who,
        id_of(&started),
        &answer,
        (CODE, CODE),
        ORIGIN,
    )
    .await
    .unwrap();
    assert_eq!(again, RegisterOutcome::BadCeremony);
}

#[tokio::test]
async fn a_ceremony_expires_after_five_minutes() {
    let w = world().await;
    let who = person(&w, "carol").await;
    let mut key = SoftChip::new(ORIGIN);
    let started = register::start(&w.state, &who, ORIGIN).await.unwrap();
    let answer = key.register(&started.options_json);
    w.clock.advance_ms(super::CEREMONY_MS);
    let late = register::finish(
        &w.state,
        &who,
        id_of(&started),
        &answer,
        (CODE, CODE),
        ORIGIN,
    )
    .await
    .unwrap();
    assert_eq!(late, RegisterOutcome::BadCeremony);
}

#[tokio::test]
async fn another_persons_ceremony_is_refused_and_changes_nothing() {
    let w = world().await;
    let alice = person(&w, "alice2").await;
    let mallory = person(&w, "mallory").await;
    let mut key = SoftChip::new(ORIGIN);
    let started = register::start(&w.state, &alice, ORIGIN).await.unwrap();
    let answer = key.register(&started.options_json);
    let stolen = register::finish(
        &w.state,
        &mallory,
        id_of(&started),
        &answer,
        (CODE, CODE),
        ORIGIN,
    )
    .await
    .unwrap();
    assert_eq!(stolen, RegisterOutcome::BadCeremony);
    assert!(w.state.store.chips_of(mallory.id).await.unwrap().is_empty());
    assert!(w.state.store.chips_of(alice.id).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_weak_or_mistyped_access_code_is_refused_before_the_ceremony_is_used() {
    let w = world().await;
    let who = person(&w, "dave").await;
    let mut key = SoftChip::new(ORIGIN);
    let started = register::start(&w.state, &who, ORIGIN).await.unwrap();
    let answer = key.register(&started.options_json);
    let weak = register::finish(
        &w.state,
        &who,
        id_of(&started),
        &answer,
        ("12345678", "12345678"),
        ORIGIN,
    )
    .await
    .unwrap();
    assert!(matches!(weak, RegisterOutcome::AccessCode(_)));
    let differ = register::finish(
        &w.state,
        &who,
        id_of(&started),
        &answer,
        (CODE, "blue-kettle-evening"),
        ORIGIN,
    )
    .await
    .unwrap();
    assert_eq!(differ, RegisterOutcome::AccessCodesDiffer);
    let right = register::finish(
        &w.state,
        &who,
        id_of(&started),
        &answer,
        (CODE, CODE),
        ORIGIN,
    )
    .await
    .unwrap();
    assert!(matches!(right, RegisterOutcome::Registered { .. }));
}

#[tokio::test]
async fn an_answer_from_another_origin_is_refused() {
    let w = world().await;
    let who = person(&w, "erin").await;
    let mut phishing = SoftChip::new("https://eid-login.example");
    assert_eq!(
        w.register(&who, &mut phishing).await,
        RegisterOutcome::BadCredential
    );
}

#[tokio::test]
async fn one_chip_cannot_be_registered_to_two_people() {
    let w = world().await;
    let alice = person(&w, "alice3").await;
    let bob = person(&w, "bob3").await;
    let mut key = SoftChip::new(ORIGIN);
    assert!(matches!(
        w.register(&alice, &mut key).await,
        RegisterOutcome::Registered { .. }
    ));
    assert_eq!(
        w.register(&bob, &mut key).await,
        RegisterOutcome::CredentialTaken
    );
}

#[tokio::test]
async fn a_second_chip_waits_until_the_first_is_deactivated() {
    let w = world().await;
    let who = person(&w, "frank").await;
    let mut first = SoftChip::new(ORIGIN);
    let mut second = SoftChip::new(ORIGIN);
    assert!(matches!(
        w.register(&who, &mut first).await,
        RegisterOutcome::Registered { .. }
    ));
    assert_eq!(
        w.register(&who, &mut second).await,
        RegisterOutcome::AlreadyHasChip
    );
    let chip = w.state.store.chips_of(who.id).await.unwrap()[0].clone();
    assert_eq!(
        deactivate(&w.state, who.id, chip.id).await.unwrap(),
        DeactivateOutcome::Deactivated
    );
    assert_eq!(
        deactivate(&w.state, who.id, chip.id).await.unwrap(),
        DeactivateOutcome::AlreadyDeactivated
    );
    assert!(matches!(
        w.register(&who, &mut second).await,
        RegisterOutcome::Registered { .. }
    ));
    assert_eq!(
        w.sms_kinds().await,
        vec![
            SecurityEventKind::ChipAdded,
            SecurityEventKind::ChipDeactivated,
            SecurityEventKind::ChipAdded
        ]
    );
}

#[tokio::test]
async fn a_cancelled_pending_chip_cannot_be_confirmed() {
    let w = world().await;
    let who = person(&w, "grace").await;
    let mut key = SoftChip::new(ORIGIN);
    assert!(matches!(
        w.register(&who, &mut key).await,
        RegisterOutcome::Registered { .. }
    ));
    let chip = w.state.store.chips_of(who.id).await.unwrap()[0].clone();
    deactivate(&w.state, who.id, chip.id).await.unwrap();
    w.past_the_wait();
    assert!(matches!(
        confirm::start(&w.state, &who, ORIGIN).await.unwrap(),
        ConfirmStart::NoPendingChip
    ));
}

#[tokio::test]
async fn another_person_cannot_deactivate_a_chip() {
    let w = world().await;
    let alice = person(&w, "alice4").await;
    let bob = person(&w, "bob4").await;
    let mut key = SoftChip::new(ORIGIN);
    w.register(&alice, &mut key).await;
    let chip = w.state.store.chips_of(alice.id).await.unwrap()[0].clone();
    assert_eq!(
        deactivate(&w.state, bob.id, chip.id).await.unwrap(),
        DeactivateOutcome::Unknown
    );
    assert_eq!(
        w.state.store.chips_of(alice.id).await.unwrap()[0].state,
        ChipState::Pending
    );
}

#[tokio::test]
async fn a_sign_counter_that_goes_back_blocks_the_chip_as_a_clone() {
    let w = world().await;
    let who = person(&w, "heidi").await;
    let mut key = SoftChip::new(ORIGIN);
    assert!(matches!(
        w.register(&who, &mut key).await,
        RegisterOutcome::Registered { .. }
    ));
    let mut clone = key.clone();
    w.past_the_wait();
    // The original signs with counter 1 and then 2 (two tries, the first
    // with a wrong access code); the clone still at 0 signs 1.
    assert!(matches!(
        w.confirm(&who, &mut key, "wrong-access-code").await,
        ConfirmOutcome::Refused(UseOutcome::WrongAccessCode { .. })
    ));
    assert!(matches!(
        w.confirm(&who, &mut clone, CODE).await,
        ConfirmOutcome::Refused(UseOutcome::CloneSuspected)
    ));
    let chip = w.state.store.chips_of(who.id).await.unwrap()[0].clone();
    assert_eq!(chip.state, ChipState::Blocked);
    let list = hardware_list(&w.state, who.id).await.unwrap();
    assert_eq!(list[0].state, HardwareState::Blocked);
    assert!(
        w.sms_kinds()
            .await
            .contains(&SecurityEventKind::ChipBlocked)
    );
}

#[tokio::test]
async fn a_credential_of_another_person_is_refused() {
    let w = world().await;
    let alice = person(&w, "alice5").await;
    let bob = person(&w, "bob5").await;
    let mut alices = SoftChip::new(ORIGIN);
    let mut bobs = SoftChip::new(ORIGIN);
    assert!(matches!(
        w.register(&alice, &mut alices).await,
        RegisterOutcome::Registered { .. }
    ));
    assert!(matches!(
        w.register(&bob, &mut bobs).await,
        RegisterOutcome::Registered { .. }
    ));
    w.past_the_wait();
    // Bob answers Alice's challenge with his own chip.
    assert!(matches!(
        w.confirm(&alice, &mut bobs, CODE).await,
        ConfirmOutcome::Refused(UseOutcome::BadAssertion)
    ));
    assert_eq!(
        w.state.store.chips_of(alice.id).await.unwrap()[0].state,
        ChipState::Pending
    );
}

#[tokio::test]
async fn three_wrong_access_codes_lock_the_chip_for_a_while() {
    let w = world().await;
    let who = person(&w, "ivan").await;
    let mut key = SoftChip::new(ORIGIN);
    w.register(&who, &mut key).await;
    w.past_the_wait();
    for _ in 0..2 {
        assert_eq!(
            w.confirm(&who, &mut key, "not-the-code-1").await,
            ConfirmOutcome::Refused(UseOutcome::WrongAccessCode {
                locked_until_ms: None
            })
        );
    }
    let ConfirmOutcome::Refused(UseOutcome::WrongAccessCode {
        locked_until_ms: Some(until),
    }) = w.confirm(&who, &mut key, "not-the-code-1").await
    else {
        panic!("the third failure must lock");
    };
    assert_eq!(until, w.clock_now() + 300_000);
    // Locked: even the right code is refused without being checked.
    assert!(matches!(
        w.confirm(&who, &mut key, CODE).await,
        ConfirmOutcome::Refused(UseOutcome::LockedOut { .. })
    ));
    // Someone without the chip is not told that it is locked.
    let mut stranger = SoftChip::new(ORIGIN);
    assert_eq!(
        w.confirm(&who, &mut stranger, CODE).await,
        ConfirmOutcome::Refused(UseOutcome::BadAssertion)
    );
    w.clock.advance_ms(300_000);
    assert_eq!(
        w.confirm(&who, &mut key, CODE).await,
        ConfirmOutcome::Activated
    );
}

#[tokio::test]
async fn a_replayed_confirmation_finds_no_ceremony_and_changes_nothing() {
    let w = world().await;
    let who = person(&w, "judy").await;
    let mut key = SoftChip::new(ORIGIN);
    w.register(&who, &mut key).await;
    w.past_the_wait();
    let ConfirmStart::Started(started) = confirm::start(&w.state, &who, ORIGIN).await.unwrap()
    else {
        panic!("step 2 could not start");
    };
    let answer = key.assert(&started.options_json);
    let first = confirm::finish(&w.state, &who, id_of(&started), &answer, CODE, ORIGIN).await;
    assert_eq!(first.unwrap(), ConfirmOutcome::Activated);
    let before = w.state.store.chips_of(who.id).await.unwrap();
    let replay = confirm::finish(&w.state, &who, id_of(&started), &answer, CODE, ORIGIN).await;
    assert_eq!(replay.unwrap(), ConfirmOutcome::BadCeremony);
    assert_eq!(w.state.store.chips_of(who.id).await.unwrap(), before);
}
