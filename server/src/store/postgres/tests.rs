//! The store conformance suite on PostgreSQL, each check on a scratch
//! database of its own; and the checks only this backend needs.

use super::testing::{ScratchDatabase, scratch};
use crate::store::conformance::FreshStore;

async fn fresh() -> FreshStore {
    let Some(db) = scratch().await else {
        return FreshStore::skipped();
    };
    let store = db.store().await;
    FreshStore::keeping(store, db)
}

crate::store_conformance_suite!(fresh());

/// The suite again, every decision through [`Store::decide_judged`] with
/// the facts of its context read just before (the API's way): the
/// one-statement decision of migration 0015 must answer as the longer path.
///
/// [`Store::decide_judged`]: crate::store::Store::decide_judged
mod judged {
    use super::scratch;
    use crate::store::conformance::FreshStore;

    async fn fresh() -> FreshStore {
        let Some(db) = scratch().await else {
            return FreshStore::skipped();
        };
        let mut store = db.store().await;
        store.judging = true;
        FreshStore::keeping(store, db)
    }

    crate::store_conformance_suite!(fresh());
}

#[test]
fn the_postgres_migrations_have_the_same_numbers_and_names_as_the_sqlite_ones() {
    let dir = |d: &str| -> Vec<String> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(d);
        let mut names: Vec<String> = std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .map(|n| n.trim_end_matches(".sql").to_owned())
            .collect();
        names.sort();
        names
    };
    let sqlite = dir("sqlite");
    let postgres = dir("postgres");
    assert_eq!(
        sqlite, postgres,
        "every SQLite migration has its PostgreSQL twin"
    );
    // And the store applies them all, in order.
    assert_eq!(super::migration_names(), postgres);
}

#[tokio::test]
async fn an_unreachable_database_answers_unavailable_as_a_503_and_shows_no_password() {
    use eid_protocol::IdentityId;

    use crate::error::ApiError;
    use crate::store::Store;

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://eid:hunter2-secret@127.0.0.1:{port}/eiddb");
    let config = super::parse_database_url(&url).unwrap();
    // A store whose database went away after it started.
    let store = super::PostgresStore {
        pool: super::connection::pool(config.clone(), None, 2).unwrap(),
        target: super::DatabaseTarget::of(&config),
        config,
        tls: None,
        judging: false,
    };
    assert_eq!(
        store.target().to_string(),
        format!("127.0.0.1:{port}/eiddb")
    );
    let err = store.identity(IdentityId::random()).await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    let shown = format!("{err} {err:?} {store:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    let api = ApiError::from(err);
    assert_eq!(api.status(), axum::http::StatusCode::SERVICE_UNAVAILABLE);
    // A statement error is no outage: it stays a 500.
    let other = crate::store::StoreError::Inconsistent("test");
    assert!(!other.is_unavailable());
    // The configured URL is shown without its password.
    let configured = crate::config::DatabaseUrl::new(url);
    assert!(!format!("{configured:?}").contains("hunter2"));
    assert!(
        configured
            .redacted()
            .contains(&format!("127.0.0.1:{port}/eiddb"))
    );
}

/// Two replicas: two stores, each with its own pool, on one scratch
/// database, and an identity with an active code device `S1` on it.
async fn two_replicas_with_a_code_device() -> Option<(
    ScratchDatabase,
    std::sync::Arc<super::PostgresStore>,
    std::sync::Arc<super::PostgresStore>,
    eid_protocol::IdentityId,
)> {
    use crate::access_code::AccessCodeHash;
    use crate::store::*;

    const T0: u64 = 1_795_000_000_000;
    let db = scratch().await?;
    let a = std::sync::Arc::new(db.store().await);
    let b = std::sync::Arc::new(db.store().await);
    let anna = Identity {
        id: IdentityId::random(),
        user_id: "anna".into(),
        user_id_folded: "anna".into(),
        display_name: None,
        blocked: false,
        created_at_ms: T0,
        phone: Some("+4520304050".into()),
        email: None,
        notify_every_use: false,
    };
    a.create_identity(anna.clone()).await.unwrap();
    let batch = TokenBatch {
        id: [1; 16],
        label: "b".into(),
        imported_at_ms: T0,
        device_count: 1,
    };
    let device = CodeDevice {
        serial: "S1".into(),
        batch_id: batch.id,
        kind: CodeDeviceKind::CodeDisplay,
        algorithm: crate::code_devices::totp::Algorithm::Sha1,
        digits: 6,
        step_secs: 30,
        sealed_seed: vec![1; 40],
        identity_id: None,
        state: CodeDeviceState::Unassigned,
        last_step: None,
        failures: 0,
        blocks: 0,
        blocked_until_ms: None,
        access_code_hash: None,
        added_at_ms: T0,
        activated_at_ms: None,
        last_used_at_ms: None,
    };
    let audit = NewAudit {
        at_ms: T0,
        agent_id: None,
        agent_name: "bootstrap".into(),
        action: AuditAction::ImportTokenBatch,
        identity_id: None,
        service_provider_id: None,
        target_agent_id: None,
        reason: None,
        outcome: AuditOutcome::Done,
    };
    a.import_token_batch(audit, batch, vec![device])
        .await
        .unwrap();
    a.put_activation_code(ActivationCode {
        identity_id: anna.id,
        code_sha256: [5; 32],
        created_at_ms: T0,
        expires_at_ms: T0 + 3_600_000,
    })
    .await
    .unwrap();
    let activated = b
        .activate_code_device_by_support(SupportActivation {
            user_id_folded: "anna".into(),
            code_sha256_for: Box::new(|_| [5; 32]),
            max_tries: 3,
            serial: "S1".into(),
            step: 10,
            access_code_hash: AccessCodeHash::from_stored("$argon2id$x".into()),
            now_ms: T0,
        })
        .await
        .unwrap();
    assert_eq!(activated, SupportActivationResult::Activated(anna.id));
    Some((db, a, b, anna.id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_50_tries_of_one_code_step_split_over_two_replicas_exactly_one_is_accepted() {
    use crate::store::{CodeStepResult, Store};

    let Some((_db, a, b, anna)) = two_replicas_with_a_code_device().await else {
        return;
    };
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(50));
    let mut tasks = Vec::new();
    for i in 0..50 {
        let replica = if i % 2 == 0 { a.clone() } else { b.clone() };
        let start = start.clone();
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            replica
                .use_code_step("S1", anna, 11, 1_795_000_000_000)
                .await
                .unwrap()
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    let accepted = results
        .iter()
        .filter(|r| **r == CodeStepResult::Accepted)
        .count();
    let replayed = results
        .iter()
        .filter(|r| **r == CodeStepResult::Replayed)
        .count();
    assert_eq!((accepted, replayed), (1, 49), "{results:?}");
    let device = b.code_device("S1").await.unwrap().unwrap();
    assert_eq!(device.last_step, Some(11));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_chip_ceremony_taken_on_two_replicas_at_once_is_given_out_once() {
    use crate::store::{CeremonyPurpose, ChipCeremony, Store};

    let Some((_db, a, b, anna)) = two_replicas_with_a_code_device().await else {
        return;
    };
    const NOW: u64 = 1_795_000_000_000;
    let ceremony = ChipCeremony {
        id: [7; 16],
        identity_id: anna,
        purpose: CeremonyPurpose::Login,
        subject: Some([9; 16]),
        state: "{}".into(),
        expires_at_ms: NOW + 300_000,
    };
    a.put_chip_ceremony(ceremony.clone(), NOW).await.unwrap();
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(20));
    let mut tasks = Vec::new();
    for i in 0..20 {
        let replica = if i % 2 == 0 { a.clone() } else { b.clone() };
        let start = start.clone();
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            replica.take_chip_ceremony([7; 16], NOW + 1).await.unwrap()
        }));
    }
    let mut taken = Vec::new();
    for task in tasks {
        taken.extend(task.await.unwrap());
    }
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].subject, Some([9; 16]));
    assert_eq!(taken[0].purpose, CeremonyPurpose::Login);
}

/// Creates at `READ COMMITTED` (no per-provider window) and `SERIALIZABLE`
/// ones (a per-provider window on, too wide to refuse) for one person, all
/// at once, from two stores (two replicas' pools): the identity's row,
/// updated by each, keeps the pending cap exact across the two isolations.
#[tokio::test]
async fn creates_at_both_isolations_at_once_never_exceed_the_pending_cap() {
    use std::sync::Arc;

    use eid_protocol::wire::RequestStatus;
    use eid_protocol::{
        IdentityId, RequestEnvelopeBody, RequestId, RequestKind, ServiceProviderId, Signature,
    };

    use crate::store::{
        CreateResult, Identity, RequestLimits, ServiceProvider, Store, StoredRequest,
    };

    let Some(db) = scratch().await else {
        return;
    };
    let stores: [Arc<dyn Store>; 2] = [Arc::new(db.store().await), Arc::new(db.store().await)];
    const NOW: u64 = 1_795_000_000_000;
    let anna = Identity {
        id: IdentityId::random(),
        user_id: "Anna#1980x".into(),
        user_id_folded: "anna#1980x".into(),
        display_name: None,
        blocked: false,
        created_at_ms: NOW,
        phone: None,
        email: None,
        notify_every_use: false,
    };
    stores[0].create_identity(anna.clone()).await.unwrap();
    let bank = ServiceProvider {
        id: ServiceProviderId::random(),
        name: "Danske Bank".into(),
        api_key_sha256: eid_protocol::crypto::random_array(),
        created_at_ms: NOW,
    };
    stores[0]
        .create_service_provider(bank.clone())
        .await
        .unwrap();
    let results = create_at_once_on_two(&stores, 60, NOW, |_| {
        let request = StoredRequest {
            envelope: RequestEnvelopeBody {
                request_id: RequestId::random(),
                identity_id: anna.id,
                kind: RequestKind::Login,
                service_provider_id: bank.id,
                service_provider_name: bank.name.clone(),
                reference_text: "Log på Netbank".into(),
                created_at_ms: NOW,
                expires_at_ms: NOW + 300_000,
                server_nonce: eid_protocol::crypto::random_array(),
                binding_required: false,
            },
            envelope_signature: Signature(vec![0x30; 70]),
            binding_code: None,
            status: RequestStatus::Pending,
            decision: None,
        };
        (request, RequestLimits::pending_only(5))
    })
    .await;
    let mut created = 0;
    for result in results {
        match result {
            CreateResult::Created => created += 1,
            other => assert_eq!(other, CreateResult::TooManyPending),
        }
    }
    assert_eq!(created, 5);
    assert_eq!(stores[1].count_pending(anna.id, NOW).await.unwrap(), 5);
}

/// One identity with an active phone, a provider and a pending login of
/// it, for the one-statement decision's checks below.
struct DecisionScene {
    anna: crate::store::Identity,
    phone: crate::store::Authenticator,
    request: crate::store::StoredRequest,
}

const SCENE_T0: u64 = 1_795_000_000_000;

async fn decision_scene(s: &dyn crate::store::Store) -> DecisionScene {
    use eid_protocol::wire::RequestStatus;
    use eid_protocol::{
        IdentityId, RequestEnvelopeBody, RequestId, RequestKind, ServiceProviderId, Signature,
    };

    use crate::store::{CreateResult, Identity, ServiceProvider, StoredRequest};
    let anna = Identity {
        id: IdentityId::random(),
        user_id: "Anna#1980x".into(),
        user_id_folded: "anna#1980x".into(),
        display_name: None,
        blocked: false,
        created_at_ms: SCENE_T0,
        phone: None,
        email: None,
        notify_every_use: false,
    };
    s.create_identity(anna.clone()).await.unwrap();
    let phone = crate::store::conformance::activated(s, &anna, SCENE_T0).await;
    let bank = ServiceProvider {
        id: ServiceProviderId::random(),
        name: "Danske Bank".into(),
        api_key_sha256: eid_protocol::crypto::random_array(),
        created_at_ms: SCENE_T0,
    };
    s.create_service_provider(bank.clone()).await.unwrap();
    let request = StoredRequest {
        envelope: RequestEnvelopeBody {
            request_id: RequestId::random(),
            identity_id: anna.id,
            kind: RequestKind::Login,
            service_provider_id: bank.id,
            service_provider_name: bank.name.clone(),
            reference_text: "Log på Netbank".into(),
            created_at_ms: SCENE_T0,
            expires_at_ms: SCENE_T0 + 300_000,
            server_nonce: eid_protocol::crypto::random_array(),
            binding_required: false,
        },
        envelope_signature: Signature(vec![0x30; 70]),
        binding_code: None,
        status: RequestStatus::Pending,
        decision: None,
    };
    assert_eq!(
        s.create_request(request.clone(), 10, SCENE_T0)
            .await
            .unwrap(),
        CreateResult::Created
    );
    DecisionScene {
        anna,
        phone,
        request,
    }
}

fn scene_decision(
    scene: &DecisionScene,
    outcome: eid_protocol::Outcome,
    counter: u64,
) -> crate::store::DecisionRecord {
    use eid_protocol::messages::ReceiptBody;
    use eid_protocol::wire::SignedReceipt;
    let e = &scene.request.envelope;
    let decision_sha256 = eid_protocol::crypto::random_array();
    let now = SCENE_T0 + 1;
    crate::store::DecisionRecord {
        authenticator_id: scene.phone.id,
        outcome,
        counter,
        decision_sha256,
        receipt: SignedReceipt {
            receipt: ReceiptBody {
                request_id: e.request_id,
                identity_id: e.identity_id,
                authenticator_id: scene.phone.id,
                outcome,
                kind: e.kind,
                reference_text_sha256: e.reference_text_sha256(),
                service_provider_id: e.service_provider_id,
                decided_at_ms: now,
                decision_sha256,
                counter,
                call_context: None,
            },
            signature: eid_protocol::Signature(vec![0x30; 70]),
        },
        decided_at_ms: now,
        call_verdict: eid_protocol::CallVerdict::Clear,
    }
}

/// The facts the API would have judged from the scene as it was created.
fn scene_facts(scene: &DecisionScene) -> crate::store::DecisionFacts {
    crate::store::DecisionFacts::of(&scene.request, &scene.phone, Some(&scene.anna)).unwrap()
}

/// Facts older than the rows: `eid_decide` writes nothing on them and
/// returns the fresh ones, which are judged again here (the rules in
/// `policy.rs`): a counter still above the fresh last one is accepted, one
/// no longer above it is a replay, and a person who opted in to notices
/// since takes the longer path, which records the `used` event in the
/// decision's transaction.
#[tokio::test]
async fn a_decision_on_stale_facts_is_judged_again_on_the_fresh_ones() {
    use eid_protocol::Outcome;

    use crate::store::{DecideResult, Store};

    let Some(db) = scratch().await else {
        return;
    };
    let store = db.store().await;
    let now = SCENE_T0 + 1;
    // The phone's counter moved to 5 (another request) after the judging.
    let scene = decision_scene(&store).await;
    let stale = scene_facts(&scene);
    let other = decision_scene_request(&store, &scene).await;
    let mut first = scene_decision(&scene, Outcome::Approve, 5);
    first.receipt.receipt.request_id = other;
    assert!(matches!(
        store.decide(other, first, true, now).await.unwrap(),
        DecideResult::Accepted(_)
    ));
    let id = scene.request.envelope.request_id;
    let replay = scene_decision(&scene, Outcome::Approve, 4);
    assert_eq!(
        store
            .decide_judged(id, replay, true, now, Some(stale.clone()))
            .await
            .unwrap(),
        DecideResult::CounterReplay
    );
    let fine = scene_decision(&scene, Outcome::Approve, 6);
    assert_eq!(
        store
            .decide_judged(id, fine.clone(), true, now, Some(stale.clone()))
            .await
            .unwrap(),
        DecideResult::Accepted(fine.clone())
    );
    // A second decision on the same stale facts finds the first.
    let late = scene_decision(&scene, Outcome::Deny, 7);
    assert_eq!(
        store
            .decide_judged(id, late, true, now, Some(stale))
            .await
            .unwrap(),
        DecideResult::AlreadyDecided(fine)
    );

    // Opted in to a notice on every use after the judging: the `used`
    // event is written with the decision.
    let scene = decision_scene_for(&store, &scene).await;
    let judged = crate::store::DecisionFacts {
        last_counter: 6,
        ..scene_facts(&scene)
    };
    assert!(
        store
            .set_notify_every_use(scene.anna.id, true, scene.phone.id, now)
            .await
            .unwrap()
    );
    let approve = scene_decision(&scene, Outcome::Approve, 8);
    assert_eq!(
        store
            .decide_judged(
                scene.request.envelope.request_id,
                approve.clone(),
                true,
                now,
                Some(judged)
            )
            .await
            .unwrap(),
        DecideResult::Accepted(approve)
    );
    let client = tokio_postgres_client(&db).await;
    let used: i64 = client
        .query_one(
            "SELECT count(*) FROM security_events WHERE identity_id = $1 AND kind = 'used'",
            &[&scene.anna.id.0.as_slice()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(used, 1);
}

/// Another pending login of the scene's person and provider.
async fn decision_scene_request(
    s: &dyn crate::store::Store,
    scene: &DecisionScene,
) -> eid_protocol::RequestId {
    let mut request = scene.request.clone();
    request.envelope.request_id = eid_protocol::RequestId::random();
    request.envelope.server_nonce = eid_protocol::crypto::random_array();
    assert_eq!(
        s.create_request(request.clone(), 10, SCENE_T0)
            .await
            .unwrap(),
        crate::store::CreateResult::Created
    );
    request.envelope.request_id
}

/// The scene with another pending login in place of its request.
async fn decision_scene_for(s: &dyn crate::store::Store, scene: &DecisionScene) -> DecisionScene {
    let id = decision_scene_request(s, scene).await;
    let mut request = scene.request.clone();
    request.envelope.request_id = id;
    DecisionScene {
        anna: scene.anna.clone(),
        phone: scene.phone.clone(),
        request: s.request(id).await.unwrap().unwrap(),
    }
}

async fn tokio_postgres_client(db: &ScratchDatabase) -> tokio_postgres::Client {
    let (client, connection) = db.config().connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// Of many decisions judged on the same facts, sent at once through two
/// replicas' stores, exactly one is written; each other one waits on the
/// request's lock, finds the decision and answers it as already decided.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_decisions_judged_on_the_same_facts_on_two_replicas_exactly_one_wins() {
    use std::sync::Arc;

    use eid_protocol::Outcome;

    use crate::store::{DecideResult, Store};

    let Some(db) = scratch().await else {
        return;
    };
    let stores: [Arc<dyn Store>; 2] = [Arc::new(db.store().await), Arc::new(db.store().await)];
    let scene = decision_scene(&*stores[0]).await;
    let facts = scene_facts(&scene);
    let id = scene.request.envelope.request_id;
    let start = Arc::new(tokio::sync::Barrier::new(40));
    let mut tasks = Vec::new();
    for i in 0..40u64 {
        let outcome = [Outcome::Approve, Outcome::Deny][i as usize % 2];
        let record = scene_decision(&scene, outcome, i + 1);
        let (store, start, facts) = (
            Arc::clone(&stores[i as usize % 2]),
            Arc::clone(&start),
            facts.clone(),
        );
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let result = store
                .decide_judged(id, record.clone(), false, SCENE_T0 + 1, Some(facts))
                .await
                .unwrap();
            (record, result)
        }));
    }
    let mut winners = Vec::new();
    let mut results = Vec::new();
    for task in tasks {
        let (record, result) = task.await.unwrap();
        if result == DecideResult::Accepted(record.clone()) {
            winners.push(record);
        } else {
            results.push(result);
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    for result in results {
        assert_eq!(result, DecideResult::AlreadyDecided(winners[0].clone()));
    }
    let read = stores[1].request(id).await.unwrap().unwrap();
    assert_eq!(read.decision.as_ref(), Some(&winners[0]));
    assert_eq!(
        stores[1]
            .authenticators(vec![scene.phone.id])
            .await
            .unwrap()[0]
            .as_ref()
            .unwrap()
            .last_counter,
        winners[0].counter
    );
}

/// A statement after a transaction's in-flight `COMMIT` is refused (it
/// would run on its own, in autocommit) and nothing of it is written.
#[tokio::test]
async fn a_statement_after_an_in_flight_commit_is_an_error_and_writes_nothing() {
    use crate::store::{Store, StoreError};

    let Some(db) = scratch().await else {
        return;
    };
    let store = db.store().await;
    let (kept, late) = ([1u8; 16], [2u8; 16]);
    let outcome = store
        .write_locked(move |t| {
            Box::pin(async move {
                let insert = "INSERT INTO nonces (nonce, keep_until_ms) VALUES ($1, 1)";
                super::connection::exec(t, insert, &[&kept.as_slice()]).await?;
                t.commit_in_flight().await?;
                super::connection::exec(t, insert, &[&late.as_slice()]).await
            })
        })
        .await;
    assert!(
        matches!(outcome, Err(StoreError::Inconsistent(_))),
        "{outcome:?}"
    );
    assert!(store.nonce_seen(eid_protocol::Nonce16(kept)).await.unwrap());
    assert!(!store.nonce_seen(eid_protocol::Nonce16(late)).await.unwrap());
}

/// Facts naming another provider than the request's (a caller's mistake:
/// the provider decides whether a self-service change follows) write
/// nothing and send the decision to the longer path, as a follow-up does.
#[tokio::test]
async fn eid_decide_leaves_a_request_of_another_provider_than_judged_to_the_longer_path() {
    use eid_protocol::Outcome;

    use crate::store::Store;

    let Some(db) = scratch().await else {
        return;
    };
    let store = db.store().await;
    let scene = decision_scene(&store).await;
    let judged = crate::store::DecisionFacts {
        service_provider_id: eid_protocol::SELF_SERVICE_PROVIDER_ID,
        ..scene_facts(&scene)
    };
    let id = scene.request.envelope.request_id;
    let record = scene_decision(&scene, Outcome::Approve, 1);
    let json = serde_json::to_string(&record.receipt).unwrap();
    let done = store
        .write_one(move |t| {
            let (json, record, judged) = (json.clone(), record.clone(), judged.clone());
            Box::pin(async move {
                super::requests::decide_at_once(t, id, &json, &record, true, &judged).await
            })
        })
        .await
        .unwrap();
    assert!(matches!(done, super::requests::AtOnce::Longer));
    let read = store.request(id).await.unwrap().unwrap();
    assert_eq!(read.decision, None);
    assert_eq!(read.status, eid_protocol::wire::RequestStatus::Pending);
}

/// A block and a decision of the same person at once wait on each other
/// at most one way: a decision locks the request and then the identity
/// (as `eid_decide` and the longer path do), so a block locks the person's
/// pending requests before the identity too. Before, the block held the
/// identity and waited on the request the decision held, the decision
/// waited on the identity, and PostgreSQL broke the deadlock only after its
/// `deadlock_timeout` (a second by default) by aborting one of them.
#[tokio::test]
async fn a_block_waits_on_a_deciding_request_without_holding_the_identity() {
    use crate::store::Store;

    let Some(db) = scratch().await else {
        return;
    };
    let store = std::sync::Arc::new(db.store().await);
    let scene = decision_scene(&*store).await;
    let id = scene.request.envelope.request_id;
    // A decision under way: it holds the request's lock.
    let mut decision = tokio_postgres_client(&db).await;
    let t = decision.transaction().await.unwrap();
    t.execute(
        "SELECT 1 FROM requests WHERE id = $1 FOR UPDATE",
        &[&id.0.as_slice()],
    )
    .await
    .unwrap();
    let block = {
        let (store, anna) = (std::sync::Arc::clone(&store), scene.anna.id);
        tokio::spawn(async move { store.set_blocked(anna, true, SCENE_T0 + 2).await })
    };
    // The block now waits on a lock.
    let watcher = tokio_postgres_client(&db).await;
    for _ in 0..500 {
        let waiting: i64 = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if waiting > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // The decision's next lock, the phone and its identity, is free: the
    // block waits without holding the identity.
    t.batch_execute("SET LOCAL lock_timeout = '500ms'")
        .await
        .unwrap();
    let locked = t
        .query_opt(
            "SELECT a.last_counter FROM authenticators a JOIN identities i \
             ON i.id = a.identity_id WHERE a.id = $1 FOR UPDATE OF a, i",
            &[&scene.phone.id.0.as_slice()],
        )
        .await;
    assert!(
        locked.is_ok(),
        "the decision waited on the block: {locked:?}"
    );
    t.rollback().await.unwrap();
    // The block then goes on and cancels the pending request.
    let cancelled = block.await.unwrap().unwrap();
    assert_eq!(cancelled, Some(vec![id]));
}

/// Anna, a bank and a login request of hers at `at`, for the checks of a
/// request's creation in one flight below.
struct CreateScene {
    anna: crate::store::Identity,
    bank: crate::store::ServiceProvider,
}

async fn create_scene(s: &dyn crate::store::Store) -> CreateScene {
    use crate::store::{Identity, ServiceProvider};

    let anna = Identity {
        id: eid_protocol::IdentityId::random(),
        user_id: "Anna#1980x".into(),
        user_id_folded: "anna#1980x".into(),
        display_name: None,
        blocked: false,
        created_at_ms: SCENE_T0,
        phone: None,
        email: None,
        notify_every_use: false,
    };
    s.create_identity(anna.clone()).await.unwrap();
    let bank = ServiceProvider {
        id: eid_protocol::ServiceProviderId::random(),
        name: "Danske Bank".into(),
        api_key_sha256: eid_protocol::crypto::random_array(),
        created_at_ms: SCENE_T0,
    };
    s.create_service_provider(bank.clone()).await.unwrap();
    CreateScene { anna, bank }
}

fn scene_login(
    identity: eid_protocol::IdentityId,
    bank: &crate::store::ServiceProvider,
    at: u64,
) -> crate::store::StoredRequest {
    use eid_protocol::{RequestEnvelopeBody, RequestId, RequestKind, Signature};

    crate::store::StoredRequest {
        envelope: RequestEnvelopeBody {
            request_id: RequestId::random(),
            identity_id: identity,
            kind: RequestKind::Login,
            service_provider_id: bank.id,
            service_provider_name: bank.name.clone(),
            reference_text: "Log på Netbank".into(),
            created_at_ms: at,
            expires_at_ms: at + 300_000,
            server_nonce: eid_protocol::crypto::random_array(),
            binding_required: false,
        },
        envelope_signature: Signature(vec![0x30; 70]),
        binding_code: None,
        status: eid_protocol::wire::RequestStatus::Pending,
        decision: None,
    }
}

/// Runs [`super::requests::create_at_once`] alone (its own transaction at
/// `READ COMMITTED`) and answers what it did, and whether the request is
/// stored afterwards.
async fn at_once(
    store: &super::PostgresStore,
    request: &crate::store::StoredRequest,
    limits: &crate::store::RequestLimits,
    now_ms: u64,
) -> (Option<crate::store::CreateResult>, bool) {
    use crate::store::Store;

    let json = serde_json::to_string(&request.envelope).unwrap();
    let (r, l) = (request.clone(), limits.clone());
    let done = store
        .write_locked(move |t| {
            let (r, json, l) = (r.clone(), json.clone(), l.clone());
            Box::pin(async move { super::requests::create_at_once(t, &r, &json, &l, now_ms).await })
        })
        .await
        .unwrap();
    let stored = store
        .request(request.envelope.request_id)
        .await
        .unwrap()
        .is_some();
    match done.0 {
        super::requests::CreateAtOnce::Done(result) => (Some(result), stored),
        super::requests::CreateAtOnce::Longer => (None, stored),
        super::requests::CreateAtOnce::AgainstTheRules => panic!("inserted against the rules"),
    }
}

/// A request's creation in one flight inserts only what the rules allow
/// and answers at once only what needs nothing more: the pending cap at
/// its boundary, a full window (left to the longer path, nothing
/// inserted), a blocked and an unknown identity, a fraud hold on and one
/// that is over (both left to the longer path, nothing inserted; the
/// longer path then holds, or creates).
#[tokio::test]
async fn a_create_in_one_flight_inserts_only_what_the_rules_allow() {
    use crate::store::{CreateResult, RequestLimits, Store, Window};

    let Some(db) = scratch().await else {
        return;
    };
    let store = db.store().await;
    let scene = create_scene(&store).await;
    let (anna, bank) = (scene.anna.id, &scene.bank);
    let t = SCENE_T0;
    // The cap: the second request fits, the third does not.
    let capped = RequestLimits::pending_only(2);
    for n in 0..2 {
        let (done, stored) = at_once(&store, &scene_login(anna, bank, t + n), &capped, t + n).await;
        assert_eq!((done, stored), (Some(CreateResult::Created), true));
    }
    let (done, stored) = at_once(&store, &scene_login(anna, bank, t + 2), &capped, t + 2).await;
    assert_eq!((done, stored), (Some(CreateResult::TooManyPending), false));
    assert_eq!(store.count_pending(anna, t + 2).await.unwrap(), 2);
    // A per-identity window of 3: the third fits, the fourth goes the
    // longer way (which says when a slot frees) with nothing inserted.
    let windowed = RequestLimits {
        max_pending: 1_000,
        per_identity: vec![Window {
            window_ms: 60_000,
            limit: 3,
        }],
        ..RequestLimits::default()
    };
    let (done, stored) = at_once(&store, &scene_login(anna, bank, t + 3), &windowed, t + 3).await;
    assert_eq!((done, stored), (Some(CreateResult::Created), true));
    let fourth = scene_login(anna, bank, t + 4);
    assert_eq!(
        at_once(&store, &fourth, &windowed, t + 4).await,
        (None, false)
    );
    assert!(matches!(
        store
            .create_request_limited(fourth, windowed.clone(), t + 4)
            .await
            .unwrap(),
        CreateResult::RateLimited { .. }
    ));
    assert_eq!(store.count_pending(anna, t + 4).await.unwrap(), 3);
    // A fraud hold: on, then over; both left to the longer path.
    let held = RequestLimits {
        max_pending: 1_000,
        fraud_hold_ms: 60_000,
        ..RequestLimits::default()
    };
    let client = tokio_postgres_client(&db).await;
    client
        .execute(
            "INSERT INTO fraud_holds (identity_id, service_provider_id, reported_at_ms, notified) \
             VALUES ($1, $2, $3, FALSE)",
            &[
                &anna.as_bytes().as_slice(),
                &bank.id.as_bytes().as_slice(),
                &i64::try_from(t + 5).unwrap(),
            ],
        )
        .await
        .unwrap();
    let during = scene_login(anna, bank, t + 6);
    assert_eq!(at_once(&store, &during, &held, t + 6).await, (None, false));
    assert_eq!(
        store
            .create_request_limited(during, held.clone(), t + 6)
            .await
            .unwrap(),
        CreateResult::CoolingDown {
            retry_after_ms: 59_999,
            told: true
        }
    );
    let after = scene_login(anna, bank, t + 60_005);
    assert_eq!(
        at_once(&store, &after, &held, t + 60_005).await,
        (None, false)
    );
    assert_eq!(
        store
            .create_request_limited(after.clone(), held.clone(), t + 60_005)
            .await
            .unwrap(),
        CreateResult::Created
    );
    assert!(
        store
            .request(after.envelope.request_id)
            .await
            .unwrap()
            .is_some()
    );
    // Holds off: the hold's row does not matter.
    let (done, stored) = at_once(
        &store,
        &scene_login(anna, bank, t + 60_006),
        &RequestLimits::pending_only(1_000),
        t + 60_006,
    )
    .await;
    assert_eq!((done, stored), (Some(CreateResult::Created), true));
    // Blocked, and unknown.
    store.set_blocked(anna, true, t + 60_007).await.unwrap();
    let (done, stored) = at_once(
        &store,
        &scene_login(anna, bank, t + 60_008),
        &capped,
        t + 60_008,
    )
    .await;
    assert_eq!((done, stored), (Some(CreateResult::Blocked), false));
    let stranger = eid_protocol::IdentityId::random();
    let (done, stored) = at_once(
        &store,
        &scene_login(stranger, bank, t + 60_009),
        &capped,
        t + 60_009,
    )
    .await;
    assert_eq!((done, stored), (Some(CreateResult::UnknownIdentity), false));
}

/// Concurrent creates for one person on two replicas, with a per-identity
/// window and fraud holds on (half of them also with a per-provider window,
/// so `SERIALIZABLE`): exactly the window's limit is created, in one flight
/// or not, and the rest are refused with a wait.
#[tokio::test]
async fn concurrent_creates_in_one_flight_never_exceed_a_window() {
    use std::sync::Arc;

    use crate::store::{CreateResult, RequestLimits, Store, Window};

    let Some(db) = scratch().await else {
        return;
    };
    let stores: [Arc<super::PostgresStore>; 2] =
        [Arc::new(db.store().await), Arc::new(db.store().await)];
    let scene = create_scene(&*stores[0]).await;
    let results = create_at_once_on_two(&stores, 40, SCENE_T0, |_| {
        let limits = RequestLimits {
            max_pending: 1_000,
            per_identity: vec![Window {
                window_ms: 60_000,
                limit: 4,
            }],
            fraud_hold_ms: 60_000,
            ..RequestLimits::default()
        };
        (scene_login(scene.anna.id, &scene.bank, SCENE_T0), limits)
    })
    .await;
    let mut created = 0;
    for result in results {
        match result {
            CreateResult::Created => created += 1,
            other => assert!(
                matches!(other, CreateResult::RateLimited { .. }),
                "{other:?}"
            ),
        }
    }
    assert_eq!(created, 4);
    assert_eq!(
        stores[1]
            .count_pending(scene.anna.id, SCENE_T0)
            .await
            .unwrap(),
        4
    );
}

/// A pull with its nonce answers the snapshot once; the same nonce again,
/// from either of two replicas' stores, and even all at once, is answered
/// `None` every time but one; the nonce is recorded as any other (durable,
/// seen by `use_nonce`); and a phone with two accounts (the two-flight
/// pull) gets the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pull_with_its_nonce_answers_once_even_when_sent_at_once_to_two_replicas() {
    use std::sync::Arc;

    use crate::store::{FeedCursors, Store};

    let Some(db) = scratch().await else {
        return;
    };
    let stores: [Arc<super::PostgresStore>; 2] =
        [Arc::new(db.store().await), Arc::new(db.store().await)];
    let scene = decision_scene(&*stores[0]).await;
    let pull = |store: Arc<super::PostgresStore>, nonce: eid_protocol::Nonce16, ids: Vec<_>| async move {
        let n = ids.len();
        store
            .pull_with_nonce(
                nonce,
                SCENE_T0 + 600_000,
                ids,
                FeedCursors::NewestAbove(vec![0; n]),
                vec![0; n],
                SCENE_T0 + 1,
            )
            .await
            .unwrap()
    };
    let nonce = eid_protocol::Nonce16(eid_protocol::crypto::random_array());
    let first = pull(Arc::clone(&stores[0]), nonce, vec![scene.phone.id])
        .await
        .expect("a fresh nonce answers");
    assert_eq!(first.pending.len(), 1);
    assert_eq!(
        first.pending[0].envelope.request_id,
        scene.request.envelope.request_id
    );
    for store in &stores {
        assert!(
            pull(Arc::clone(store), nonce, vec![scene.phone.id])
                .await
                .is_none()
        );
    }
    assert!(
        !stores[1]
            .use_nonce(nonce, SCENE_T0 + 600_000)
            .await
            .unwrap()
    );
    // All at once, on both replicas, with one and with two accounts.
    let bo = crate::store::Identity {
        id: eid_protocol::IdentityId::random(),
        user_id: "Bo#1975yz".into(),
        user_id_folded: "bo#1975yz".into(),
        ..scene.anna.clone()
    };
    stores[0].create_identity(bo.clone()).await.unwrap();
    let second = crate::store::conformance::activated(&*stores[0], &bo, SCENE_T0).await;
    for ids in [vec![scene.phone.id], vec![scene.phone.id, second.id]] {
        let nonce = eid_protocol::Nonce16(eid_protocol::crypto::random_array());
        let tasks: Vec<_> = (0..16)
            .map(|i| tokio::spawn(pull(Arc::clone(&stores[i % 2]), nonce, ids.clone())))
            .collect();
        let mut answered = 0;
        for task in tasks {
            if let Some(snapshot) = task.await.unwrap() {
                answered += 1;
                assert_eq!(snapshot.authenticators.len(), ids.len());
                assert_eq!(snapshot.pending.len(), 1);
            }
        }
        assert_eq!(answered, 1, "{} account(s)", ids.len());
        assert!(stores[0].nonce_seen(nonce).await.unwrap());
    }
}

/// `n` creates at once (behind one barrier), in turn on the two replicas'
/// stores, each request and its limits from `make`; every second one also
/// has a per-provider window (1,000 a minute), which runs it
/// `SERIALIZABLE` instead of under the identity's row lock. Their answers.
async fn create_at_once_on_two<S: crate::store::Store + ?Sized + 'static>(
    stores: &[std::sync::Arc<S>; 2],
    n: usize,
    now_ms: u64,
    mut make: impl FnMut(usize) -> (crate::store::StoredRequest, crate::store::RequestLimits),
) -> Vec<crate::store::CreateResult> {
    use std::sync::Arc;

    use crate::store::Window;

    let start = Arc::new(tokio::sync::Barrier::new(n));
    let mut tasks = Vec::new();
    for i in 0..n {
        let (request, mut limits) = make(i);
        if i % 2 == 1 {
            limits.per_provider = vec![Window {
                window_ms: 60_000,
                limit: 1_000,
            }];
        }
        let (store, start) = (Arc::clone(&stores[i % 4 / 2]), Arc::clone(&start));
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            store
                .create_request_limited(request, limits, now_ms)
                .await
                .unwrap()
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

/// The durable commits (transactions given an id that committed: each
/// waits for its WAL flush, milliseconds) that `op` makes, after `setup`:
/// the committed transaction ids between two markers, the least of up to
/// 16 tries, since the scratch databases share one cluster whose other
/// tests draw ids too (others only add, so the least is the op's own; four
/// tries were not enough on a loaded 2-core CI machine, where a path that
/// makes one commit read two in every try). `setup` puts the facts back
/// before each try.
async fn durable_commits<S, O>(
    client: &tokio_postgres::Client,
    mut setup: impl FnMut() -> S,
    mut op: impl FnMut() -> O,
) -> i64
where
    S: std::future::Future<Output = ()>,
    O: std::future::Future<Output = ()>,
{
    const MARK: &str = "SELECT pg_current_xact_id()::text::bigint";
    let mut least = i64::MAX;
    for _ in 0..16 {
        setup().await;
        let before: i64 = client.query_one(MARK, &[]).await.unwrap().get(0);
        op().await;
        let after: i64 = client.query_one(MARK, &[]).await.unwrap().get(0);
        let committed: i64 = client
            .query_one(
                "SELECT COUNT(*) FROM generate_series($1::bigint + 1, $2::bigint - 1) x \
                 WHERE pg_xact_status(x::text::xid8) = 'committed'",
                &[&before, &after],
            )
            .await
            .unwrap()
            .get(0);
        least = least.min(committed);
        if least == 0 {
            break;
        }
    }
    least
}

/// A refused creation makes no durable commit (what an unknown user ID's
/// creation makes: none, the store is not even asked), but the first
/// refusal of a fraud hold, which records its event; a real request makes
/// one. So the login page's stand-in (one durable write) makes each path
/// of a user ID typed there wait for the same number of flushes: blocked,
/// at the pending cap, in a full window, held, unknown, or a real request
/// (docs/threat-model.md, "Learning whether a user ID exists").
#[tokio::test]
async fn a_refused_creation_makes_no_durable_commit_but_a_holds_first() {
    use crate::store::{CreateResult, RequestLimits, Store, Window};

    let Some(db) = scratch().await else {
        return;
    };
    let store = db.store().await;
    let scene = create_scene(&store).await;
    let (anna, bank) = (scene.anna.id, scene.bank.clone());
    let client = tokio_postgres_client(&db).await;
    let t = SCENE_T0;
    let nothing = || async {};
    let create = |limits: RequestLimits, want: fn(&CreateResult) -> bool| {
        let (store, bank) = (&store, bank.clone());
        move || {
            let (limits, bank) = (limits.clone(), bank.clone());
            async move {
                let result = store
                    .create_request_limited(scene_login(anna, &bank, t), limits, t)
                    .await
                    .unwrap();
                assert!(want(&result), "{result:?}");
            }
        }
    };
    let mut commits = Vec::new();
    // A real request, and the stand-in's write (a nonce).
    let open = RequestLimits::pending_only(1_000);
    commits.push((
        "real",
        durable_commits(
            &client,
            nothing,
            create(open, |r| *r == CreateResult::Created),
        )
        .await,
    ));
    commits.push((
        "stand-in",
        durable_commits(&client, nothing, || async {
            store
                .use_nonce(
                    eid_protocol::Nonce16(eid_protocol::crypto::random_array()),
                    t + 60_000,
                )
                .await
                .unwrap();
        })
        .await,
    ));
    let stranger = eid_protocol::IdentityId::random();
    commits.push((
        "unknown",
        durable_commits(&client, nothing, || async {
            let result = store
                .create_request_limited(
                    scene_login(stranger, &bank, t),
                    RequestLimits::pending_only(1_000),
                    t,
                )
                .await
                .unwrap();
            assert_eq!(result, CreateResult::UnknownIdentity);
        })
        .await,
    ));
    // Anna has 4 pending (the real ones above): a cap of 4 is full.
    commits.push((
        "pending cap",
        durable_commits(
            &client,
            nothing,
            create(RequestLimits::pending_only(4), |r| {
                *r == CreateResult::TooManyPending
            }),
        )
        .await,
    ));
    // The same with a per-provider window on (the `SERIALIZABLE` write).
    let serializable = RequestLimits {
        per_provider: vec![Window {
            window_ms: 60_000,
            limit: 1_000,
        }],
        ..RequestLimits::pending_only(4)
    };
    commits.push((
        "pending cap, serializable",
        durable_commits(
            &client,
            nothing,
            create(serializable, |r| *r == CreateResult::TooManyPending),
        )
        .await,
    ));
    let window = RequestLimits {
        max_pending: 1_000,
        per_identity: vec![Window {
            window_ms: 60_000,
            limit: 4,
        }],
        ..RequestLimits::default()
    };
    commits.push((
        "full window",
        durable_commits(
            &client,
            nothing,
            create(window, |r| matches!(r, CreateResult::RateLimited { .. })),
        )
        .await,
    ));
    // A full per-provider window is answered "busy" (whoever the user ID
    // names: no stand-in), so its refusal may lock: the lock's guard leaves
    // it to the insert's, rather than count a provider's requests twice.
    let provider_window = RequestLimits {
        per_provider: vec![Window {
            window_ms: 60_000,
            limit: 4,
        }],
        ..RequestLimits::pending_only(1_000)
    };
    commits.push((
        "full provider window (busy)",
        durable_commits(
            &client,
            nothing,
            create(provider_window, |r| {
                matches!(
                    r,
                    CreateResult::RateLimited {
                        scope: crate::store::LimitScope::Provider,
                        ..
                    }
                )
            }),
        )
        .await,
    ));
    // A fraud hold, already told to the person, then its first refusal
    // (which records the event: one durable commit).
    let held = RequestLimits {
        max_pending: 1_000,
        fraud_hold_ms: 60_000,
        ..RequestLimits::default()
    };
    let hold = |notified: bool| {
        let client = &client;
        let bank = bank.id;
        move || async move {
            client
                .execute(
                    "INSERT INTO fraud_holds (identity_id, service_provider_id, reported_at_ms, \
                     notified) VALUES ($1, $2, $3, $4) ON CONFLICT (identity_id, \
                     service_provider_id) DO UPDATE SET notified = EXCLUDED.notified",
                    &[
                        &anna.as_bytes().as_slice(),
                        &bank.as_bytes().as_slice(),
                        &i64::try_from(t).unwrap(),
                        &notified,
                    ],
                )
                .await
                .unwrap();
        }
    };
    commits.push((
        "hold, told before",
        durable_commits(
            &client,
            hold(true),
            create(held.clone(), |r| {
                matches!(r, CreateResult::CoolingDown { told: false, .. })
            }),
        )
        .await,
    ));
    commits.push((
        "hold, told now",
        durable_commits(
            &client,
            hold(false),
            create(held, |r| {
                matches!(r, CreateResult::CoolingDown { told: true, .. })
            }),
        )
        .await,
    ));
    client
        .execute("DELETE FROM fraud_holds", &[])
        .await
        .unwrap();
    // Blocked (Anna's pending requests are cancelled with the block).
    store.set_blocked(anna, true, t).await.unwrap();
    commits.push((
        "blocked",
        durable_commits(
            &client,
            nothing,
            create(RequestLimits::pending_only(1_000), |r| {
                *r == CreateResult::Blocked
            }),
        )
        .await,
    ));
    assert_eq!(
        commits,
        vec![
            ("real", 1),
            ("stand-in", 1),
            ("unknown", 0),
            ("pending cap", 0),
            ("pending cap, serializable", 0),
            ("full window", 0),
            ("full provider window (busy)", 1),
            ("hold, told before", 0),
            ("hold, told now", 1),
            ("blocked", 0),
        ]
    );
}

/// The general pull (`requests::pull_snapshot`, a `REPEATABLE READ`
/// transaction of one statement per read) of `ids`, for comparing.
async fn general_pull(
    store: &super::PostgresStore,
    ids: Vec<eid_protocol::AuthenticatorId>,
    feed: crate::store::FeedCursors,
    after: Vec<u64>,
    now_ms: u64,
) -> crate::store::PullSnapshot {
    store
        .read(move |t| {
            let (ids, feed, after) = (ids.clone(), feed.clone(), after.clone());
            Box::pin(async move {
                super::requests::pull_snapshot(t, None, &ids, &feed, &after, now_ms).await
            })
        })
        .await
        .unwrap()
        .unwrap()
}

/// A phone with one account pulls in one statement (`requests::pull_one`);
/// it answers what the general pull reads, row for row and in the same
/// order, on a scene with more events and decisions than a pull carries,
/// expired, decided and pending requests, for both feed cursors at several
/// places, and for a blocked identity and an unknown authenticator.
#[tokio::test]
async fn a_pull_of_one_account_in_one_statement_answers_what_the_general_pull_reads() {
    use crate::store::{FeedCursors, Store};

    let Some(db) = scratch().await else {
        return;
    };
    let store = db.store().await;
    let scene = decision_scene(&store).await;
    // Three more requests (one soon expired), the scene's decided.
    for k in 1..=3u64 {
        let mut r = scene.request.clone();
        r.envelope.request_id = eid_protocol::RequestId::random();
        r.envelope.created_at_ms = SCENE_T0 + k;
        r.envelope.expires_at_ms = if k == 2 {
            SCENE_T0 + 50
        } else {
            SCENE_T0 + 300_000
        };
        assert_eq!(
            store.create_request(r, 10, SCENE_T0 + k).await.unwrap(),
            crate::store::CreateResult::Created
        );
    }
    let record = scene_decision(&scene, eid_protocol::Outcome::Approve, 1);
    assert!(matches!(
        store
            .decide(
                scene.request.envelope.request_id,
                record,
                false,
                SCENE_T0 + 5
            )
            .await
            .unwrap(),
        crate::store::DecideResult::Accepted(_)
    ));
    // More events than a pull carries, some with ties in time.
    let client = tokio_postgres_client(&db).await;
    let anna = scene.anna.id.as_bytes().to_vec();
    for k in 0..(eid_protocol::wire::MAX_FEED_EVENTS as i64 + 12) {
        client
            .execute(
                "INSERT INTO security_events (identity_id, kind, detail, occurred_at_ms) \
                 VALUES ($1, 'new_device_approved', $2, $3)",
                &[&anna, &format!("event {k}"), &(SCENE_T0 as i64 + k / 3)],
            )
            .await
            .unwrap();
    }
    let now = SCENE_T0 + 100;
    let compare =
        |label: String, one: crate::store::PullSnapshot, general: crate::store::PullSnapshot| {
            assert_eq!(format!("{one:?}"), format!("{general:?}"), "{label}");
        };
    for blocked in [false, true] {
        if blocked {
            store
                .set_blocked(scene.anna.id, true, SCENE_T0 + 90)
                .await
                .unwrap();
        }
        for cursor in [0, 1, 7, 40, 10_000] {
            for after in [0, 1, 2] {
                for feed in [
                    FeedCursors::NewestAbove(vec![cursor]),
                    FeedCursors::OldestAbove(vec![cursor]),
                ] {
                    let one = store
                        .pull_snapshot(vec![scene.phone.id], feed.clone(), vec![after], now)
                        .await
                        .unwrap();
                    if !blocked {
                        assert!(!one.events[0].is_empty() || cursor == 10_000);
                        assert_eq!(one.pending.len(), 2, "the unexpired, undecided ones");
                    } else {
                        assert!(one.pending.is_empty());
                    }
                    assert!(one.events[0].len() <= eid_protocol::wire::MAX_FEED_EVENTS);
                    let general =
                        general_pull(&store, vec![scene.phone.id], feed.clone(), vec![after], now)
                            .await;
                    compare(format!("{blocked} {cursor} {after} {feed:?}"), one, general);
                    // With a nonce: the same, once.
                    let nonce = eid_protocol::Nonce16::random();
                    let one = store
                        .pull_with_nonce(
                            nonce,
                            now + 600_000,
                            vec![scene.phone.id],
                            feed.clone(),
                            vec![after],
                            now,
                        )
                        .await
                        .unwrap()
                        .expect("a fresh nonce answers");
                    let general =
                        general_pull(&store, vec![scene.phone.id], feed.clone(), vec![after], now)
                            .await;
                    compare(format!("nonce {blocked} {cursor} {feed:?}"), one, general);
                }
            }
        }
    }
    let unknown = eid_protocol::AuthenticatorId::random();
    let feed = FeedCursors::NewestAbove(vec![0]);
    let one = store
        .pull_snapshot(vec![unknown], feed.clone(), vec![0], now)
        .await
        .unwrap();
    assert!(one.authenticators[0].is_none() && one.identities[0].is_none());
    compare(
        "unknown".into(),
        one,
        general_pull(&store, vec![unknown], feed, vec![0], now).await,
    );
}

/// A pull of one account whose nonce was seen before answers `None` and its
/// statement returns no row (nothing is read); the nonce of a fresh pull is
/// recorded (seen by `use_nonce` and `nonce_seen`) and kept until its time;
/// a nonce first used elsewhere (`use_nonce`) makes the pull answer `None`.
#[tokio::test]
async fn a_pull_of_one_account_with_a_seen_nonce_reads_nothing() {
    use crate::store::{FeedCursors, Store};

    let Some(db) = scratch().await else {
        return;
    };
    let store = db.store().await;
    let scene = decision_scene(&store).await;
    let pull = |nonce| {
        store.pull_with_nonce(
            nonce,
            SCENE_T0 + 600_000,
            vec![scene.phone.id],
            FeedCursors::OldestAbove(vec![0]),
            vec![0],
            SCENE_T0 + 1,
        )
    };
    let nonce = eid_protocol::Nonce16::random();
    assert!(pull(nonce).await.unwrap().is_some());
    assert!(pull(nonce).await.unwrap().is_none());
    assert!(store.nonce_seen(nonce).await.unwrap());
    assert!(!store.use_nonce(nonce, SCENE_T0 + 600_000).await.unwrap());
    let client = tokio_postgres_client(&db).await;
    let keep: i64 = client
        .query_one(
            "SELECT keep_until_ms FROM nonces WHERE nonce = $1",
            &[&nonce.as_bytes().as_slice()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(keep, (SCENE_T0 + 600_000) as i64);
    // The statement itself: no row at all for the seen nonce.
    let rows = client
        .query(
            super::requests::pull_one_sql(true, false),
            &[
                &scene.phone.id.as_bytes().as_slice(),
                &((SCENE_T0 + 1) as i64),
                &0i64,
                &50i64,
                &0i64,
                &50i64,
                &nonce.as_bytes().as_slice(),
                &((SCENE_T0 + 600_000) as i64),
            ],
        )
        .await
        .unwrap();
    assert!(rows.is_empty());
    // A nonce used first by another call.
    let other = eid_protocol::Nonce16::random();
    assert!(store.use_nonce(other, SCENE_T0 + 600_000).await.unwrap());
    assert!(pull(other).await.unwrap().is_none());
}

/// The one-flight creation's insert runs only under the identity's lock
/// that its first statement took, not merely in a transaction that has an
/// id: at `READ COMMITTED` a lock that waited for a concurrent writer of
/// the row (a block), then found the row no longer matching on
/// re-checking, leaves an id and no lock, and if the row matched again by
/// the insert's snapshot (unblocked meanwhile), an insert without the lock
/// could pass the pending cap beside a create that held it. Here the id
/// comes from another write (a nonce), the facts allow the request, and
/// the insert must still insert nothing; after the lock, it inserts.
#[tokio::test]
async fn the_one_flight_insert_needs_the_identitys_lock_not_just_a_transaction_id() {
    use crate::store::Store;

    let Some(db) = scratch().await else {
        return;
    };
    let store = db.store().await;
    let scene = create_scene(&store).await;
    let insert = |lock_first: bool| {
        let request = scene_login(scene.anna.id, &scene.bank, SCENE_T0);
        let json = serde_json::to_string(&request.envelope).unwrap();
        let id = request.envelope.request_id;
        let store = &store;
        async move {
            let inserted = store
                .write_locked(move |t| {
                    let (request, json) = (request.clone(), json.clone());
                    Box::pin(async move {
                        let e = &request.envelope;
                        super::connection::exec(
                            t,
                            "INSERT INTO nonces (nonce, keep_until_ms) VALUES ($1, 1)",
                            &[&eid_protocol::Nonce16::random().as_bytes().as_slice()],
                        )
                        .await?;
                        if lock_first {
                            super::connection::exec(
                                t,
                                "UPDATE identities SET blocked = blocked WHERE id = $1",
                                &[&e.identity_id.as_bytes().as_slice()],
                            )
                            .await?;
                        }
                        let sql = super::requests::create_at_once_sql(&[], false);
                        let row = super::connection::one(
                            t,
                            &sql,
                            &[
                                &e.request_id.as_bytes().as_slice(),
                                &e.identity_id.as_bytes().as_slice(),
                                &e.service_provider_id.as_bytes().as_slice(),
                                &json,
                                &request.envelope_signature.0,
                                &request.binding_code,
                                &(e.created_at_ms as i64),
                                &(e.expires_at_ms as i64),
                                &(SCENE_T0 as i64),
                                &10_i64,
                            ],
                        )
                        .await?;
                        Ok(row.get::<_, i64>(4))
                    })
                })
                .await
                .unwrap();
            let stored = store.request(id).await.unwrap().is_some();
            (inserted, stored)
        }
    };
    assert_eq!(insert(false).await, (0, false), "inserted without the lock");
    assert_eq!(insert(true).await, (1, true));
}

/// A creation whose lock waited for a concurrent create of the same
/// person, and which then finds the pending cap reached under the lock
/// (its lock's guard read the facts before that create committed), has
/// committed the lock durably: the store says so, so that the login page
/// adds no stand-in write and the refusal waits for one flush, as an
/// unknown user ID's answer (docs/threat-model.md, "Learning whether a
/// user ID exists").
#[tokio::test]
async fn a_refusal_whose_lock_waited_for_a_concurrent_create_says_it_committed_durably() {
    use crate::store::{CreateResult, RequestLimits, Store};

    let Some(db) = scratch().await else {
        return;
    };
    let store = db.store().await;
    let scene = create_scene(&store).await;
    let (anna, bank) = (scene.anna.id, scene.bank.clone());
    let t = SCENE_T0;
    let cap = RequestLimits::pending_only(2);
    let first = store
        .create_request_durable(scene_login(anna, &bank, t), cap.clone(), t)
        .await
        .unwrap();
    assert_eq!(first, (CreateResult::Created, true));
    // A concurrent create holds the person's lock and inserts the second.
    let mut other = tokio_postgres_client(&db).await;
    let a = other.transaction().await.unwrap();
    a.execute(
        "UPDATE identities SET blocked = blocked WHERE id = $1",
        &[&anna.as_bytes().as_slice()],
    )
    .await
    .unwrap();
    a.execute(
        "INSERT INTO requests (id, identity_id, service_provider_id, envelope, \
         envelope_signature, binding_code, status, created_at_ms, expires_at_ms) \
         VALUES ($1, $2, $3, '{}', $4, NULL, 'pending', $5, $6)",
        &[
            &eid_protocol::RequestId::random().as_bytes().as_slice(),
            &anna.as_bytes().as_slice(),
            &bank.id.as_bytes().as_slice(),
            &vec![0x30_u8; 70],
            &(t as i64),
            &((t + 300_000) as i64),
        ],
    )
    .await
    .unwrap();
    let watcher = tokio_postgres_client(&db).await;
    let refused = store.create_request_durable(scene_login(anna, &bank, t), cap, t);
    let commit_when_waited_for = async {
        // Until the creation's lock waits for this transaction's.
        loop {
            let waiting: i64 = watcher
                .query_one(
                    "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
                     AND datname = current_database() AND query LIKE 'UPDATE identities%'",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if waiting > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        a.commit().await.unwrap();
    };
    let (refused, ()) = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        tokio::join!(refused, commit_when_waited_for)
    })
    .await
    .expect("the creation waited for the other's lock");
    assert_eq!(refused.unwrap(), (CreateResult::TooManyPending, true));
}
