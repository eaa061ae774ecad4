//! The conformance suite every [`Store`] backend must pass unchanged.
//!
//! Each check is a public `async fn` taking a [`FreshStore`] (a new, empty
//! store of the backend under test) and panicking on the first difference
//! from the behaviour the trait documents.
//! [`store_conformance_suite!`](crate::store_conformance_suite) turns the
//! whole list into `#[tokio::test]` functions for one backend:
//!
//! ```text
//! async fn fresh() -> eid_server::store::conformance::FreshStore { /* ... */ }
//! eid_server::store_conformance_suite!(fresh());
//! ```
//!
//! The suite speaks only through the trait and the public store types, so a
//! second backend (PostgreSQL) runs it as it is. Outside this crate it needs
//! the cargo feature `conformance` and a `tokio` dependency with the
//! `macros` and `rt-multi-thread` features.
//!
//! Events are read back the way the server reads them: through the pull's
//! feed, or by claiming the outbox's deliveries.

use std::collections::BTreeSet;
use std::sync::Arc;

use eid_protocol::crypto::random_array;
use eid_protocol::events::SecurityEventKind;
use eid_protocol::messages::ReceiptBody;
use eid_protocol::wire::{
    AgentRole, ChangeState, ContactChannel, ErrorCode, RequestStatus, SignedReceipt,
};
use eid_protocol::{
    AuthenticatorId, ChangeId, IdentityId, Nonce16, Outcome, PublicKey, RequestEnvelopeBody,
    RequestId, RequestKind, SELF_SERVICE_PROVIDER_ID, SELF_SERVICE_PROVIDER_NAME,
    ServiceProviderId, Signature,
};

use super::*;

/// A new, empty store for one check, with whatever keeps it alive (for
/// example the temporary directory of a SQLite file, or a scratch schema).
pub struct FreshStore {
    // Declared before the guard: the store is dropped before what it lives in.
    // `None` for a backend that is not available here (see
    // [`FreshStore::skipped`]).
    store: Option<Arc<dyn Store>>,
    _guard: Box<dyn std::any::Any + Send + Sync>,
}

impl FreshStore {
    /// A store that needs nothing else kept alive.
    pub fn new(store: impl Store) -> Self {
        Self::keeping(store, ())
    }

    /// A store and a guard dropped after it (a temporary directory, say).
    pub fn keeping(store: impl Store, guard: impl Send + Sync + 'static) -> Self {
        Self {
            store: Some(Arc::new(store)),
            _guard: Box::new(guard),
        }
    }

    /// No store: the backend under test is not available on this machine
    /// (no database server configured), and the check passes without
    /// running. The backend's `fresh` function says so loudly, and refuses
    /// (panics) where the backend is required, as in CI.
    pub fn skipped() -> Self {
        Self {
            store: None,
            _guard: Box::new(()),
        }
    }

    /// The store, unless skipped.
    pub fn available(self) -> Option<Self> {
        self.store.is_some().then_some(self)
    }

    /// A shared handle, for checks that write from many tasks at once.
    pub fn shared(&self) -> Arc<dyn Store> {
        Arc::clone(
            self.store
                .as_ref()
                .expect("a skipped FreshStore has no store"),
        )
    }
}

impl std::ops::Deref for FreshStore {
    type Target = dyn Store;
    fn deref(&self) -> &Self::Target {
        &**self
            .store
            .as_ref()
            .expect("a skipped FreshStore has no store")
    }
}

impl std::fmt::Debug for FreshStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FreshStore")
    }
}

/// Expands to one `#[tokio::test]` per conformance check, each on a store
/// made fresh by `$fresh` (an expression evaluated per test whose `.await`
/// yields a [`FreshStore`]). Checks of concurrent writers run on a
/// multi-threaded runtime.
#[macro_export]
macro_rules! store_conformance_suite {
    ($fresh:expr) => {
        $crate::store_conformance_suite!(@serial $fresh;
            an_identity_is_found_by_id_and_by_its_folded_user_id,
            a_taken_folded_user_id_is_a_conflict,
            blocking_cancels_pending_requests_enrolments_and_changes,
            only_a_change_of_block_state_is_an_event,
            notify_every_use_is_set_for_known_identities_only,
            a_service_provider_is_found_by_the_hash_of_its_key,
            a_second_provider_with_the_same_key_hash_is_a_conflict,
            a_provider_name_confusable_with_a_registered_one_is_refused,
            a_rotation_ends_the_older_keys_at_the_grace_time_and_a_revocation_is_once,
            a_webhook_is_set_replaced_and_removed_with_its_audit_row,
            decisions_and_cancels_queue_a_webhook_delivery_only_with_a_webhook,
            webhook_deliveries_are_leased_retried_and_bounded_like_notifications,
            the_right_activation_code_activates_once_and_a_retry_gets_the_same_authenticator,
            wrong_activation_codes_count_until_the_code_is_void_and_the_void_is_told,
            a_new_activation_code_resets_the_tries,
            an_expired_missing_or_unknown_activation_code_is_not_usable,
            a_blocked_identity_cannot_activate,
            authenticators_load_in_the_order_asked_with_none_for_unknown_ids,
            a_nonce_is_accepted_once,
            purging_forgets_only_nonces_past_their_keep_time,
            a_created_request_reads_back_pending_and_expires_by_the_clock,
            a_request_for_an_unknown_or_blocked_identity_is_refused_and_not_stored,
            the_pending_cap_refuses_one_request_too_many_and_expired_ones_do_not_count,
            a_provider_cancels_only_its_own_pending_requests,
            the_first_decision_is_accepted_and_stored_with_its_request,
            a_second_decision_gets_the_first_one_back_as_already_decided,
            a_decision_after_expiry_is_refused_as_expired,
            a_decision_on_a_cancelled_request_is_refused_as_cancelled,
            a_refused_decision_answers_for_its_request_first_and_writes_nothing,
            a_counter_not_above_the_last_accepted_is_a_replay,
            a_locked_or_unknown_authenticator_may_not_decide,
            a_verified_pin_resets_the_wrong_pin_count,
            wrong_pins_lock_the_authenticator_at_the_limit_with_one_event,
            binding_mismatches_cancel_the_request_at_the_limit,
            a_fraud_report_is_an_event_and_approvals_notify_only_when_opted_in,
            the_per_identity_window_refuses_and_says_when_a_slot_frees,
            self_service_requests_do_not_count_toward_the_person_s_window,
            the_per_provider_window_counts_requests_for_every_identity,
            the_longest_wait_of_the_full_windows_is_reported,
            after_a_fraud_report_the_provider_is_held_for_that_person_only,
            a_hold_is_announced_once_and_ends_after_its_time,
            a_claimed_delivery_is_claimed_again_only_after_its_lease,
            failed_deliveries_wait_their_retry_time_and_attempts_are_bounded,
            claims_take_at_most_the_limit_and_no_channel_claims_nothing,
            a_pull_shows_unexpired_pending_requests_oldest_first_and_feed_events_after_the_cursor,
            a_pull_lists_the_identity_s_decisions_after_the_cursor,
            a_pull_with_its_nonce_answers_the_snapshot_once_and_a_replay_nothing,
            a_paging_pull_brings_the_oldest_events_above_the_cursor_and_older_phones_the_newest,
            an_enrolment_with_a_request_awaits_approval_and_is_announced,
            an_enrolment_for_an_unknown_or_blocked_identity_is_a_decoy,
            the_same_new_keys_get_the_live_enrolment_back,
            enrolments_await_approval_side_by_side_up_to_a_cap_then_are_decoys,
            only_active_and_approved_devices_fill_the_cap_at_a_start,
            expired_decoy_enrolments_are_purged_within_the_limit,
            the_device_cap_refuses_an_enrolment,
            an_approved_enrolment_activates_only_after_its_wait,
            the_device_cap_is_checked_again_when_the_wait_ends,
            a_refused_or_expired_enrolment_is_closed,
            an_existing_device_cancels_a_live_enrolment_of_its_own_identity_only,
            a_contact_change_starts_with_its_first_login_and_tells_only_the_old_contact,
            an_identity_s_open_changes_are_listed_oldest_first_without_closed_ones,
            a_change_is_refused_for_unknown_blocked_or_busy_identities,
            a_new_start_supersedes_a_change_awaiting_its_first_login,
            a_change_past_its_first_login_blocks_a_new_start,
            the_second_login_is_too_early_before_the_gap_and_completes_the_change_after_it,
            confirming_refuses_unknown_unapproved_foreign_blocked_and_closed_changes,
            denying_a_change_s_login_cancels_the_change,
            an_approval_stopped_on_a_call_cancels_the_request_keeps_the_context_and_tells_the_person,
            a_stop_on_a_request_no_longer_pending_changes_nothing,
            a_stopped_self_service_login_cancels_its_change_and_a_stopped_new_device_its_enrolment,
            a_flagged_decision_keeps_its_verdict_and_its_signed_context,
            a_change_is_cancelled_from_the_app_only_by_its_own_identity,
            expiry_marks_only_changes_past_their_deadline_within_the_limit,
            a_user_id_change_is_applied_by_its_approval_unless_taken_meanwhile,
            agents_are_created_found_by_token_listed_and_revoked_once,
            an_admin_block_is_audited_with_its_reason_and_the_event_points_to_it,
            audited_writes_refusals_and_paging_read_back_newest_first,
            an_oidc_client_is_registered_with_its_audit_row_and_found_by_client_id,
            an_oidc_login_is_bound_to_one_browser_once_and_only_before_its_request_uri_expires,
            an_oidc_login_s_request_is_replaced_only_from_the_expected_one_and_never_after_its_code,
            an_oidc_code_is_redeemed_once_and_presenting_it_again_revokes_the_access_token,
            an_oidc_code_past_its_expiry_or_burnt_issues_no_access_token,
            expired_oidc_logins_are_purged_within_the_limit,
            a_hardware_method_is_recorded_and_completes_its_login_once_with_its_code,
            a_chip_is_stored_with_its_event_once_per_identity_and_credential,
            a_chip_save_names_the_revision_it_read,
            a_chip_ceremony_is_taken_once_and_not_after_it_expires,
            a_token_batch_is_stored_whole_or_not_at_all,
            a_code_step_is_accepted_once_and_never_below_the_last,
            exactly_one_of_50_concurrent_uses_of_a_code_step_wins,
            a_code_device_serves_only_its_active_unblocked_identity,
            three_failures_in_a_row_block_a_code_device_for_a_growing_time,
            a_login_resets_the_failures_but_a_right_code_alone_does_not,
            support_activates_an_unassigned_code_device_once_per_identity,
            an_approved_code_device_request_activates_and_replaces_in_the_decision_s_write,
            a_code_device_activation_is_not_recorded_for_an_already_decided_request,
            only_the_owner_s_active_code_device_is_deactivated_and_it_stays_so,
        );
        $crate::store_conformance_suite!(@concurrent $fresh;
            exactly_one_of_100_concurrent_decisions_wins,
            of_concurrent_decisions_on_a_webhooked_request_one_wins_and_queues_one_delivery,
            concurrent_creates_never_exceed_the_pending_cap,
            a_nonce_used_by_many_at_once_is_accepted_once,
            of_many_concurrent_saves_of_one_chip_revision_one_wins,
        );
    };
    (@serial $fresh:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                if let Some(store) = $crate::store::conformance::FreshStore::available($fresh.await) {
                    $crate::store::conformance::$name(store).await;
                }
            }
        )*
    };
    (@concurrent $fresh:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                if let Some(store) = $crate::store::conformance::FreshStore::available($fresh.await) {
                    $crate::store::conformance::$name(store).await;
                }
            }
        )*
    };
}

// ---------------------------------------------------------------- fixtures

/// The suite's clock starts here (November 2026).
const T0: u64 = 1_795_000_000_000;
/// A request's lifetime.
const LIFETIME: u64 = 300_000;
const HOUR: u64 = 3_600_000;
const LEASE: u64 = 300_000;
const ANNA: &str = "Anna#1980x";
const BO: &str = "Bo#1975yz";
const ANNA_PHONE: &str = "+4520304050";
const ANNA_EMAIL: &str = "anna@example.dk";
const NEW_PHONE: &str = "+4560708090";
const BIG: u64 = 1_000;

fn person(user_id: &str) -> Identity {
    Identity {
        id: IdentityId::random(),
        user_id: user_id.to_owned(),
        user_id_folded: user_id.to_lowercase(),
        display_name: Some("Anna Jensen".into()),
        blocked: false,
        created_at_ms: T0,
        phone: Some(ANNA_PHONE.into()),
        email: Some(ANNA_EMAIL.into()),
        notify_every_use: false,
    }
}

pub(crate) async fn identity(s: &dyn Store, user_id: &str) -> Identity {
    let identity = person(user_id);
    s.create_identity(identity.clone()).await.unwrap();
    identity
}

/// A public key of the right form (the store never verifies with it).
fn key() -> PublicKey {
    let mut bytes = [4u8; 65];
    bytes[1..].copy_from_slice(&random_array::<64>());
    PublicKey::from_sec1(&bytes).unwrap()
}

fn signature() -> Signature {
    Signature(vec![0x30; 70])
}

fn new_authenticator(now: u64) -> Authenticator {
    Authenticator {
        id: AuthenticatorId::random(),
        // Set by the store from the user ID.
        identity_id: IdentityId([0; 16]),
        device_public_key: key(),
        pin_public_key: key(),
        state: AuthenticatorState::Active,
        failed_pin_count: 0,
        last_counter: 0,
        activated_at_ms: now,
    }
}

fn code_for(identity: &Identity, code: [u8; 32], now: u64) -> ActivationCode {
    ActivationCode {
        identity_id: identity.id,
        code_sha256: code,
        created_at_ms: now,
        expires_at_ms: now + HOUR,
    }
}

async fn activate_with(
    s: &dyn Store,
    identity: &Identity,
    code: [u8; 32],
    now: u64,
    authenticator: Authenticator,
) -> ActivationResult {
    s.activate(
        &identity.user_id_folded,
        Box::new(move |_| code),
        3,
        now,
        authenticator,
    )
    .await
    .unwrap()
}

/// An active authenticator of `identity`, through an activation code.
pub(crate) async fn activated(s: &dyn Store, identity: &Identity, now: u64) -> Authenticator {
    let code = random_array();
    s.put_activation_code(code_for(identity, code, now))
        .await
        .unwrap();
    match activate_with(s, identity, code, now, new_authenticator(now)).await {
        ActivationResult::Activated(a) => a,
        other => panic!("activation failed: {other:?}"),
    }
}

fn provider(name: &str) -> ServiceProvider {
    ServiceProvider {
        id: ServiceProviderId::random(),
        name: name.to_owned(),
        api_key_sha256: random_array(),
        created_at_ms: T0,
    }
}

async fn registered(s: &dyn Store, name: &str) -> ServiceProvider {
    let sp = provider(name);
    s.create_service_provider(sp.clone()).await.unwrap();
    sp
}

fn envelope(
    identity_id: IdentityId,
    kind: RequestKind,
    provider: (ServiceProviderId, &str),
    created_at_ms: u64,
) -> RequestEnvelopeBody {
    RequestEnvelopeBody {
        request_id: RequestId::random(),
        identity_id,
        kind,
        service_provider_id: provider.0,
        service_provider_name: provider.1.to_owned(),
        reference_text: "Log på Netbank".into(),
        created_at_ms,
        expires_at_ms: created_at_ms + LIFETIME,
        server_nonce: random_array(),
        binding_required: false,
    }
}

fn stored(envelope: RequestEnvelopeBody, binding_code: Option<String>) -> StoredRequest {
    StoredRequest {
        envelope,
        envelope_signature: signature(),
        binding_code,
        status: RequestStatus::Pending,
        decision: None,
    }
}

/// A login request of `sp` for `identity_id`, created at `created_at_ms`.
fn login(identity_id: IdentityId, sp: &ServiceProvider, created_at_ms: u64) -> StoredRequest {
    stored(
        envelope(
            identity_id,
            RequestKind::Login,
            (sp.id, &sp.name),
            created_at_ms,
        ),
        None,
    )
}

/// A self-service login request (the built-in provider's).
/// A self-service login, bound to its portal session by a code (as the API
/// makes them).
fn self_service_login(identity_id: IdentityId, created_at_ms: u64) -> StoredRequest {
    let mut envelope = envelope(
        identity_id,
        RequestKind::SelfService,
        (SELF_SERVICE_PROVIDER_ID, SELF_SERVICE_PROVIDER_NAME),
        created_at_ms,
    );
    envelope.binding_required = true;
    stored(envelope, Some(eid_protocol::binding::random_short_code()))
}

/// Stores `request` (created at its own time) and returns it.
async fn created(s: &dyn Store, request: StoredRequest) -> StoredRequest {
    let now = request.envelope.created_at_ms;
    assert_eq!(
        s.create_request(request.clone(), BIG, now).await.unwrap(),
        CreateResult::Created
    );
    request
}

fn decision(
    request: &StoredRequest,
    by: &Authenticator,
    outcome: Outcome,
    counter: u64,
    now: u64,
) -> DecisionRecord {
    let e = &request.envelope;
    let decision_sha256 = random_array();
    DecisionRecord {
        authenticator_id: by.id,
        outcome,
        counter,
        decision_sha256,
        receipt: SignedReceipt {
            receipt: ReceiptBody {
                request_id: e.request_id,
                identity_id: e.identity_id,
                authenticator_id: by.id,
                outcome,
                kind: e.kind,
                reference_text_sha256: e.reference_text_sha256(),
                service_provider_id: e.service_provider_id,
                decided_at_ms: now,
                decision_sha256,
                counter,
                call_context: None,
            },
            signature: signature(),
        },
        decided_at_ms: now,
        call_verdict: eid_protocol::CallVerdict::Clear,
    }
}

/// Decides `request` and expects the decision to win.
async fn decided(
    s: &dyn Store,
    request: &StoredRequest,
    by: &Authenticator,
    outcome: Outcome,
    counter: u64,
    now: u64,
) -> DecisionRecord {
    let record = decision(request, by, outcome, counter, now);
    assert_eq!(
        s.decide(request.envelope.request_id, record.clone(), true, now)
            .await
            .unwrap(),
        DecideResult::Accepted(record.clone())
    );
    record
}

async fn status(s: &dyn Store, id: RequestId) -> RequestStatus {
    s.request(id).await.unwrap().expect("request stored").status
}

async fn authenticator(s: &dyn Store, id: AuthenticatorId) -> Authenticator {
    s.authenticators(vec![id])
        .await
        .unwrap()
        .pop()
        .flatten()
        .expect("authenticator stored")
}

/// The identity's feed as `by`'s pull reads it: (kind, detail), oldest first.
async fn feed(
    s: &dyn Store,
    by: &Authenticator,
    now: u64,
) -> Vec<(SecurityEventKind, Option<String>)> {
    let snapshot = s
        .pull_snapshot(
            vec![by.id],
            FeedCursors::NewestAbove(Vec::new()),
            Vec::new(),
            now,
        )
        .await
        .unwrap();
    snapshot.events[0]
        .iter()
        .map(|e| (e.kind, e.detail.clone()))
        .collect()
}

async fn feed_kinds(s: &dyn Store, by: &Authenticator, now: u64) -> Vec<SecurityEventKind> {
    feed(s, by, now).await.into_iter().map(|(k, _)| k).collect()
}

/// Claims every due delivery (SMS and e-mail).
async fn claim_all(s: &dyn Store, now: u64) -> Vec<ClaimedDelivery> {
    s.claim_deliveries(vec![Channel::Sms, Channel::Email], now, 1_000, LEASE, 5)
        .await
        .unwrap()
}

/// The addresses notified of each event of `kind`, one set per event.
fn addresses_of(deliveries: &[ClaimedDelivery], kind: SecurityEventKind) -> Vec<BTreeSet<String>> {
    let mut by_event: Vec<(u64, BTreeSet<String>)> = Vec::new();
    for d in deliveries.iter().filter(|d| d.event.kind == kind) {
        match by_event.iter_mut().find(|(id, _)| *id == d.event.id) {
            Some((_, set)) => {
                set.insert(d.address.clone());
            }
            None => by_event.push((d.event.id, BTreeSet::from([d.address.clone()]))),
        }
    }
    by_event.into_iter().map(|(_, set)| set).collect()
}

fn set(addresses: &[&str]) -> BTreeSet<String> {
    addresses.iter().map(|a| (*a).to_owned()).collect()
}

fn window(window_ms: u64, limit: u64) -> Window {
    Window { window_ms, limit }
}

// ---------------------------------------------------------------- identities

/// An identity is found by its id and by its folded user ID, and nothing is
/// found for unknown ones.
pub async fn an_identity_is_found_by_id_and_by_its_folded_user_id(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    assert_eq!(s.identity(anna.id).await.unwrap(), Some(anna.clone()));
    assert_eq!(
        s.identity_by_user_id("anna#1980x").await.unwrap(),
        Some(anna)
    );
    assert_eq!(s.identity(IdentityId::random()).await.unwrap(), None);
    assert_eq!(s.identity_by_user_id("nobody#1x").await.unwrap(), None);
}

/// A second identity with a taken folded user ID is a conflict and not stored.
pub async fn a_taken_folded_user_id_is_a_conflict(store: FreshStore) {
    let s = &*store;
    identity(s, ANNA).await;
    let twin = Identity {
        user_id: "ANNA#1980X".into(),
        ..person(ANNA)
    };
    assert!(matches!(
        s.create_identity(twin.clone()).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.identity(twin.id).await.unwrap(), None);
}

/// Blocking cancels the identity's pending requests (returned), its live
/// enrolments and its open changes; an unknown identity is `None`.
pub async fn blocking_cancels_pending_requests_enrolments_and_changes(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let bank = registered(s, "Danske Bank").await;
    let r1 = created(s, login(anna.id, &bank, T0)).await;
    let r2 = created(s, login(anna.id, &bank, T0 + 1)).await;
    let enrolment = start_real_enrolment(s, &anna, T0 + 2).await;
    let (change, first) = phone_change(&anna, T0 + 3, HOUR);
    assert_eq!(
        s.start_change(change.clone(), first, BIG, T0 + 3)
            .await
            .unwrap(),
        StartChangeResult::Created
    );

    let cancelled = s.set_blocked(anna.id, true, T0 + 4).await.unwrap().unwrap();
    let cancelled: BTreeSet<RequestId> = cancelled.into_iter().collect();
    assert!(cancelled.contains(&r1.envelope.request_id));
    assert!(cancelled.contains(&r2.envelope.request_id));
    assert_eq!(
        status(s, r1.envelope.request_id).await,
        RequestStatus::Cancelled
    );
    assert!(s.identity(anna.id).await.unwrap().unwrap().blocked);
    assert_eq!(
        s.enrolment(enrolment.id).await.unwrap().unwrap().state,
        EnrolmentStoredState::Cancelled
    );
    assert_eq!(
        s.change(change.id).await.unwrap().unwrap().0.state,
        ChangeState::Cancelled
    );
    assert_eq!(
        s.set_blocked(IdentityId::random(), true, T0).await.unwrap(),
        None
    );
    // Unblocking brings nothing back.
    assert_eq!(
        s.set_blocked(anna.id, false, T0 + 5).await.unwrap(),
        Some(Vec::new())
    );
    assert_eq!(
        status(s, r2.envelope.request_id).await,
        RequestStatus::Cancelled
    );
    assert_eq!(
        s.poll_enrolment(enrolment.id, 5, T0 + 6).await.unwrap(),
        EnrolmentPoll::Closed
    );
}

/// Blocking a blocked identity records no second event; each change of
/// state records one, at its time.
pub async fn only_a_change_of_block_state_is_an_event(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    s.set_blocked(anna.id, true, T0 + 1).await.unwrap().unwrap();
    s.set_blocked(anna.id, true, T0 + 2).await.unwrap().unwrap();
    s.set_blocked(anna.id, false, T0 + 3)
        .await
        .unwrap()
        .unwrap();
    s.set_blocked(anna.id, false, T0 + 4)
        .await
        .unwrap()
        .unwrap();
    let sms = s
        .claim_deliveries(vec![Channel::Sms], T0 + 10, 10, LEASE, 5)
        .await
        .unwrap();
    let kinds: Vec<_> = sms
        .iter()
        .map(|d| (d.event.kind, d.event.occurred_at_ms, d.address.as_str()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (SecurityEventKind::IdentityBlocked, T0 + 1, ANNA_PHONE),
            (SecurityEventKind::IdentityUnblocked, T0 + 3, ANNA_PHONE),
        ]
    );
}

/// The `notify_every_use_turned_off` events in an authenticator's feed:
/// (the authenticator named, when).
async fn turned_off(s: &dyn Store, by: AuthenticatorId) -> Vec<(Option<AuthenticatorId>, u64)> {
    s.pull_snapshot(
        vec![by],
        FeedCursors::OldestAbove(Vec::new()),
        Vec::new(),
        T0 + 10,
    )
    .await
    .unwrap()
    .events[0]
        .iter()
        .filter(|e| e.kind == SecurityEventKind::NotifyEveryUseTurnedOff)
        .map(|e| (e.authenticator_id, e.occurred_at_ms))
        .collect()
}

/// "Notify me on every use" is set for a known identity and refused (false)
/// for an unknown one; turning it off (only when it was on) is a critical
/// `notify_every_use_turned_off` event naming the authenticator, delivered
/// on every channel.
pub async fn notify_every_use_is_set_for_known_identities_only(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let phone = activated(s, &anna, T0).await;
    // Off while off: no change, no event.
    assert!(
        s.set_notify_every_use(anna.id, false, phone.id, T0 + 1)
            .await
            .unwrap()
    );
    assert!(turned_off(s, phone.id).await.is_empty());
    assert!(
        s.set_notify_every_use(anna.id, true, phone.id, T0 + 2)
            .await
            .unwrap()
    );
    assert!(s.identity(anna.id).await.unwrap().unwrap().notify_every_use);
    assert!(
        turned_off(s, phone.id).await.is_empty(),
        "turning on is no event"
    );
    assert!(
        s.set_notify_every_use(anna.id, false, phone.id, T0 + 3)
            .await
            .unwrap()
    );
    assert!(!s.identity(anna.id).await.unwrap().unwrap().notify_every_use);
    assert_eq!(
        turned_off(s, phone.id).await,
        vec![(Some(phone.id), T0 + 3)]
    );
    let mut channels: Vec<_> = s
        .claim_deliveries(vec![Channel::Sms, Channel::Email], T0 + 4, 100, 60_000, 10)
        .await
        .unwrap()
        .into_iter()
        .filter(|d| d.event.kind == SecurityEventKind::NotifyEveryUseTurnedOff)
        .map(|d| d.channel)
        .collect();
    channels.sort_by_key(|c| *c == Channel::Email);
    assert_eq!(channels, vec![Channel::Sms, Channel::Email]);
    assert!(
        !s.set_notify_every_use(IdentityId::random(), true, phone.id, T0 + 5)
            .await
            .unwrap()
    );
}

// ---------------------------------------------------------------- service providers

/// A registered provider is found by the hash of its API key only.
pub async fn a_service_provider_is_found_by_the_hash_of_its_key(store: FreshStore) {
    let s = &*store;
    let bank = provider("Danske Bank");
    assert_eq!(
        s.register_service_provider(bank.clone()).await.unwrap(),
        RegisterResult::Registered
    );
    assert_eq!(
        s.service_provider_by_key(bank.api_key_sha256)
            .await
            .unwrap(),
        Some(bank)
    );
    assert_eq!(
        s.service_provider_by_key(random_array()).await.unwrap(),
        None
    );
}

/// A second provider with a taken key hash is a conflict, by either way of
/// storing it.
pub async fn a_second_provider_with_the_same_key_hash_is_a_conflict(store: FreshStore) {
    let s = &*store;
    let bank = registered(s, "Danske Bank").await;
    let clash = ServiceProvider {
        id: ServiceProviderId::random(),
        name: "Nordea".into(),
        ..bank.clone()
    };
    assert!(matches!(
        s.create_service_provider(clash.clone()).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.register_service_provider(clash).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        s.service_provider_by_key(bank.api_key_sha256)
            .await
            .unwrap(),
        Some(bank)
    );
}

/// A name confusable with a registered provider's, or with the built-in
/// self-service provider's, is refused with the name it resembles.
pub async fn a_provider_name_confusable_with_a_registered_one_is_refused(store: FreshStore) {
    let s = &*store;
    assert_eq!(
        s.register_service_provider(provider("Danske Bank"))
            .await
            .unwrap(),
        RegisterResult::Registered
    );
    let copycat = provider("Danske Bank");
    assert_eq!(
        s.register_service_provider(copycat.clone()).await.unwrap(),
        RegisterResult::ConfusableWith("Danske Bank".into())
    );
    assert_eq!(
        s.service_provider_by_key(copycat.api_key_sha256)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.register_service_provider(provider(SELF_SERVICE_PROVIDER_NAME))
            .await
            .unwrap(),
        RegisterResult::ConfusableWith(SELF_SERVICE_PROVIDER_NAME.into())
    );
}

// ---------------------------------------------------------------- activation

/// The right code activates (identity set by the store, event recorded); a
/// retry with the same code and keys gets the same authenticator; other keys
/// get nothing.
pub async fn the_right_activation_code_activates_once_and_a_retry_gets_the_same_authenticator(
    store: FreshStore,
) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let code = random_array();
    s.put_activation_code(code_for(&anna, code, T0))
        .await
        .unwrap();
    let asked = new_authenticator(T0);
    let ActivationResult::Activated(first) =
        activate_with(s, &anna, code, T0 + 1, asked.clone()).await
    else {
        panic!("not activated");
    };
    assert_eq!(
        first,
        Authenticator {
            identity_id: anna.id,
            ..asked.clone()
        }
    );
    assert_eq!(
        activate_with(s, &anna, code, T0 + 2, asked.clone()).await,
        ActivationResult::AlreadyActivated(first.clone())
    );
    assert_eq!(
        activate_with(s, &anna, code, T0 + 3, new_authenticator(T0 + 3)).await,
        ActivationResult::NoUsableCode
    );
    assert_eq!(
        s.authenticators_of(anna.id).await.unwrap(),
        vec![first.clone()]
    );
    assert_eq!(
        feed_kinds(s, &first, T0 + 4).await,
        vec![SecurityEventKind::DeviceActivated]
    );
}

/// Each wrong code counts a try; after the last try even the right code is
/// not usable.
pub async fn wrong_activation_codes_count_until_the_code_is_void_and_the_void_is_told(
    store: FreshStore,
) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let code = random_array();
    s.put_activation_code(code_for(&anna, code, T0))
        .await
        .unwrap();
    for _ in 0..3 {
        assert!(
            addresses_of(
                &claim_all(s, T0).await,
                SecurityEventKind::ActivationCodeVoided
            )
            .is_empty()
        );
        assert_eq!(
            activate_with(s, &anna, random_array(), T0, new_authenticator(T0)).await,
            ActivationResult::WrongCode
        );
    }
    // The try that voided it told the person, once, on every channel.
    let told = addresses_of(
        &claim_all(s, T0).await,
        SecurityEventKind::ActivationCodeVoided,
    );
    assert_eq!(told.len(), 1);
    assert_eq!(
        activate_with(s, &anna, code, T0, new_authenticator(T0)).await,
        ActivationResult::NoUsableCode
    );
    activate_with(s, &anna, random_array(), T0, new_authenticator(T0)).await;
    assert!(
        addresses_of(
            &claim_all(s, T0).await,
            SecurityEventKind::ActivationCodeVoided
        )
        .is_empty()
    );
    assert!(s.authenticators_of(anna.id).await.unwrap().is_empty());
}

/// A new code replaces the old one and starts with no tries counted.
pub async fn a_new_activation_code_resets_the_tries(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let old = random_array();
    s.put_activation_code(code_for(&anna, old, T0))
        .await
        .unwrap();
    for _ in 0..3 {
        activate_with(s, &anna, random_array(), T0, new_authenticator(T0)).await;
    }
    let new = random_array();
    s.put_activation_code(code_for(&anna, new, T0 + 1))
        .await
        .unwrap();
    assert_eq!(
        activate_with(s, &anna, old, T0 + 1, new_authenticator(T0)).await,
        ActivationResult::WrongCode
    );
    assert!(matches!(
        activate_with(s, &anna, new, T0 + 1, new_authenticator(T0)).await,
        ActivationResult::Activated(_)
    ));
}

/// An expired code, an identity without a code and an unknown user ID all
/// answer `NoUsableCode`.
pub async fn an_expired_missing_or_unknown_activation_code_is_not_usable(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let bo = identity(s, BO).await;
    let code = random_array();
    s.put_activation_code(code_for(&anna, code, T0))
        .await
        .unwrap();
    assert_eq!(
        activate_with(s, &anna, code, T0 + HOUR, new_authenticator(T0)).await,
        ActivationResult::NoUsableCode
    );
    assert_eq!(
        activate_with(s, &bo, code, T0, new_authenticator(T0)).await,
        ActivationResult::NoUsableCode
    );
    let stranger = person("Nobody#1999q");
    assert_eq!(
        activate_with(s, &stranger, code, T0, new_authenticator(T0)).await,
        ActivationResult::NoUsableCode
    );
}

/// The right code of a blocked identity answers `Blocked` and stores nothing.
pub async fn a_blocked_identity_cannot_activate(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let code = random_array();
    s.put_activation_code(code_for(&anna, code, T0))
        .await
        .unwrap();
    s.set_blocked(anna.id, true, T0).await.unwrap().unwrap();
    assert_eq!(
        activate_with(s, &anna, code, T0, new_authenticator(T0)).await,
        ActivationResult::Blocked
    );
    assert!(s.authenticators_of(anna.id).await.unwrap().is_empty());
}

/// Authenticators load in the order asked, `None` standing for unknown ids.
pub async fn authenticators_load_in_the_order_asked_with_none_for_unknown_ids(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let a = activated(s, &anna, T0).await;
    let b = activated(s, &anna, T0 + 1).await;
    let unknown = AuthenticatorId::random();
    assert_eq!(
        s.authenticators(vec![b.id, unknown, a.id]).await.unwrap(),
        vec![Some(b.clone()), None, Some(a.clone())]
    );
    assert_eq!(s.authenticators_of(anna.id).await.unwrap(), vec![a, b]);
    assert!(
        s.authenticators_of(IdentityId::random())
            .await
            .unwrap()
            .is_empty()
    );
}

// ---------------------------------------------------------------- nonces

/// A nonce is accepted once; the same nonce again is a replay.
pub async fn a_nonce_is_accepted_once(store: FreshStore) {
    let s = &*store;
    let nonce = Nonce16::random();
    assert!(s.use_nonce(nonce, T0).await.unwrap());
    assert!(!s.use_nonce(nonce, T0 + LIFETIME).await.unwrap());
    assert!(s.use_nonce(Nonce16::random(), T0).await.unwrap());
}

/// Purging forgets the nonces kept until before now, never one that could
/// still be replayed.
pub async fn purging_forgets_only_nonces_past_their_keep_time(store: FreshStore) {
    let s = &*store;
    let (old, young) = (Nonce16::random(), Nonce16::random());
    assert!(s.use_nonce(old, T0).await.unwrap());
    assert!(s.use_nonce(young, T0 + LIFETIME).await.unwrap());
    assert_eq!(s.purge_nonces(T0).await.unwrap(), 0);
    assert!(!s.use_nonce(old, T0).await.unwrap());
    assert_eq!(s.purge_nonces(T0 + 1).await.unwrap(), 1);
    assert!(!s.use_nonce(young, T0 + LIFETIME).await.unwrap());
    assert!(s.use_nonce(old, T0 + 1).await.unwrap());
}

// ---------------------------------------------------------------- requests

/// A created request reads back as stored; its status turns expired by the
/// clock, not by a write.
pub async fn a_created_request_reads_back_pending_and_expires_by_the_clock(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let bank = registered(s, "Danske Bank").await;
    let request = stored(
        envelope(anna.id, RequestKind::Signature, (bank.id, &bank.name), T0),
        Some("ABCD-1234".into()),
    );
    let request = created(s, request).await;
    let read = s.request(request.envelope.request_id).await.unwrap();
    assert_eq!(read.as_ref(), Some(&request));
    let read = read.unwrap();
    assert_eq!(read.status_at(T0 + LIFETIME - 1), RequestStatus::Pending);
    assert_eq!(read.status_at(T0 + LIFETIME), RequestStatus::Expired);
    assert_eq!(s.request(RequestId::random()).await.unwrap(), None);
}

/// A request for an unknown or a blocked identity is refused with the
/// reason, and not stored.
pub async fn a_request_for_an_unknown_or_blocked_identity_is_refused_and_not_stored(
    store: FreshStore,
) {
    let s = &*store;
    let bank = registered(s, "Danske Bank").await;
    let ghost = login(IdentityId::random(), &bank, T0);
    assert_eq!(
        s.create_request(ghost.clone(), BIG, T0).await.unwrap(),
        CreateResult::UnknownIdentity
    );
    assert_eq!(s.request(ghost.envelope.request_id).await.unwrap(), None);
    let anna = identity(s, ANNA).await;
    s.set_blocked(anna.id, true, T0).await.unwrap().unwrap();
    let blocked = login(anna.id, &bank, T0);
    assert_eq!(
        s.create_request(blocked.clone(), BIG, T0).await.unwrap(),
        CreateResult::Blocked
    );
    assert_eq!(s.request(blocked.envelope.request_id).await.unwrap(), None);
}

/// At the pending cap one more request is refused; an expired or decided
/// one frees its place.
pub async fn the_pending_cap_refuses_one_request_too_many_and_expired_ones_do_not_count(
    store: FreshStore,
) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let phone = activated(s, &anna, T0).await;
    let bank = registered(s, "Danske Bank").await;
    let old = created(s, login(anna.id, &bank, T0)).await;
    let mid = created(s, login(anna.id, &bank, T0 + 1_000)).await;
    assert_eq!(s.count_pending(anna.id, T0 + 1_000).await.unwrap(), 2);
    let now = T0 + 2_000;
    let third = login(anna.id, &bank, now);
    assert_eq!(
        s.create_request(third.clone(), 2, now).await.unwrap(),
        CreateResult::TooManyPending
    );
    assert_eq!(s.request(third.envelope.request_id).await.unwrap(), None);
    decided(s, &mid, &phone, Outcome::Deny, 1, now).await;
    assert_eq!(s.count_pending(anna.id, now).await.unwrap(), 1);
    assert_eq!(
        s.create_request(third, 2, now).await.unwrap(),
        CreateResult::Created
    );
    // The oldest expires by the clock and no longer counts.
    let later = old.envelope.expires_at_ms;
    assert_eq!(s.count_pending(anna.id, later).await.unwrap(), 1);
    assert_eq!(
        s.create_request(login(anna.id, &bank, later), 2, later)
            .await
            .unwrap(),
        CreateResult::Created
    );
}

/// A provider cancels its own pending request once; another provider's, an
/// unknown id, a cancelled or an expired request is refused with the reason.
pub async fn a_provider_cancels_only_its_own_pending_requests(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let bank = registered(s, "Danske Bank").await;
    let other = registered(s, "Nordea").await;
    let request = created(s, login(anna.id, &bank, T0)).await;
    let id = request.envelope.request_id;
    assert_eq!(
        s.cancel_request(id, other.id, T0).await.unwrap(),
        CancelResult::Unknown
    );
    assert_eq!(
        s.cancel_request(RequestId::random(), bank.id, T0)
            .await
            .unwrap(),
        CancelResult::Unknown
    );
    assert_eq!(
        s.cancel_request(id, bank.id, T0 + 1).await.unwrap(),
        CancelResult::Cancelled
    );
    let again = s.cancel_request(id, bank.id, T0 + 2).await.unwrap();
    let CancelResult::NotPending(now) = again else {
        panic!("cancelled twice: {again:?}");
    };
    assert_eq!(now.status, RequestStatus::Cancelled);
    let expiring = created(s, login(anna.id, &bank, T0)).await;
    let late = s
        .cancel_request(expiring.envelope.request_id, bank.id, T0 + LIFETIME)
        .await
        .unwrap();
    assert_eq!(late, CancelResult::NotPending(Box::new(expiring)));
}

// ---------------------------------------------------------------- decisions

/// The first decision is accepted and stored with its request; the request's
/// status follows the outcome, the authenticator's counter moves up, and the
/// decision context reads all three.
pub async fn the_first_decision_is_accepted_and_stored_with_its_request(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let phone = activated(s, &anna, T0).await;
    let bank = registered(s, "Danske Bank").await;
    let request = created(s, login(anna.id, &bank, T0)).await;
    let id = request.envelope.request_id;
    let record = decided(s, &request, &phone, Outcome::Approve, 7, T0 + 1).await;
    let read = s.request(id).await.unwrap().unwrap();
    assert_eq!(read.status, RequestStatus::Approved);
    assert_eq!(read.decision, Some(record));
    assert_eq!(authenticator(s, phone.id).await.last_counter, 7);
    let context = s.decision_context(id, phone.id).await.unwrap();
    assert_eq!(context.request, Some(read));
    assert_eq!(context.authenticator.map(|a| a.id), Some(phone.id));
    assert_eq!(context.identity, Some(anna));
    let empty = s
        .decision_context(RequestId::random(), AuthenticatorId::random())
        .await
        .unwrap();
    assert!(empty.request.is_none() && empty.authenticator.is_none() && empty.identity.is_none());
}

/// A later decision (another outcome, another device, a higher counter) gets
/// the first decision back and changes nothing.
pub async fn a_second_decision_gets_the_first_one_back_as_already_decided(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let phone = activated(s, &anna, T0).await;
    let tablet = activated(s, &anna, T0).await;
    let bank = registered(s, "Danske Bank").await;
    let request = created(s, login(anna.id, &bank, T0)).await;
    let id = request.envelope.request_id;
    let first = decided(s, &request, &phone, Outcome::Deny, 1, T0 + 1).await;
    let second = decision(&request, &tablet, Outcome::Approve, 9, T0 + 2);
    assert_eq!(
        s.decide(id, second, true, T0 + 2).await.unwrap(),
        DecideResult::AlreadyDecided(first.clone())
    );
    // The same decision resubmitted (a retry after a lost answer) too.
    assert_eq!(
        s.decide(id, first.clone(), true, T0 + 3).await.unwrap(),
        DecideResult::AlreadyDecided(first)
    );
    assert_eq!(status(s, id).await, RequestStatus::Denied);
    assert_eq!(authenticator(s, tablet.id).await.last_counter, 0);
}

/// A decision at or after the deadline is refused as expired and stores
/// nothing.
pub async fn a_decision_after_expiry_is_refused_as_expired(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let phone = activated(s, &anna, T0).await;
    let bank = registered(s, "Danske Bank").await;
    let request = created(s, login(anna.id, &bank, T0)).await;
    let late = T0 + LIFETIME;
    let record = decision(&request, &phone, Outcome::Approve, 1, late);
    assert_eq!(
        s.decide(request.envelope.request_id, record, true, late)
            .await
            .unwrap(),
        DecideResult::Expired
    );
    let read = s
        .request(request.envelope.request_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.decision, None);
    assert_eq!(read.status_at(late), RequestStatus::Expired);
    assert_eq!(authenticator(s, phone.id).await.last_counter, 0);
}

/// A decision on a cancelled request is refused as cancelled.
pub async fn a_decision_on_a_cancelled_request_is_refused_as_cancelled(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let phone = activated(s, &anna, T0).await;
    let bank = registered(s, "Danske Bank").await;
    let request = created(s, login(anna.id, &bank, T0)).await;
    let id = request.envelope.request_id;
    s.cancel_request(id, bank.id, T0).await.unwrap();
    let record = decision(&request, &phone, Outcome::Approve, 1, T0 + 1);
    assert_eq!(
        s.decide(id, record, true, T0 + 1).await.unwrap(),
        DecideResult::Cancelled
    );
    assert_eq!(s.request(id).await.unwrap().unwrap().decision, None);
}

/// A counter equal to or below the authenticator's last accepted one is a
/// replay and leaves the request pending; a higher one is accepted.
pub async fn a_counter_not_above_the_last_accepted_is_a_replay(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let phone = activated(s, &anna, T0).await;
    let bank = registered(s, "Danske Bank").await;
    let first = created(s, login(anna.id, &bank, T0)).await;
    decided(s, &first, &phone, Outcome::Approve, 5, T0 + 1).await;
    let next = created(s, login(anna.id, &bank, T0 + 2)).await;
    let id = next.envelope.request_id;
    for counter in [5, 4, 0] {
        let replay = decision(&next, &phone, Outcome::Approve, counter, T0 + 3);
        assert_eq!(
            s.decide(id, replay, true, T0 + 3).await.unwrap(),
            DecideResult::CounterReplay,
            "counter {counter}"
        );
    }
    assert_eq!(status(s, id).await, RequestStatus::Pending);
    assert_eq!(authenticator(s, phone.id).await.last_counter, 5);
    decided(s, &next, &phone, Outcome::Approve, 6, T0 + 4).await;
    assert_eq!(authenticator(s, phone.id).await.last_counter, 6);
}

/// A locked authenticator, or one the store does not know, may not decide.
pub async fn a_locked_or_unknown_authenticator_may_not_decide(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let phone = activated(s, &anna, T0).await;
    let bank = registered(s, "Danske Bank").await;
    let request = created(s, login(anna.id, &bank, T0)).await;
    let id = request.envelope.request_id;
    let stranger = new_authenticator(T0);
    let record = decision(&request, &stranger, Outcome::Approve, 1, T0 + 1);
    assert_eq!(
        s.decide(id, record, true, T0 + 1).await.unwrap(),
        DecideResult::NotAllowed
    );
    assert_eq!(s.record_wrong_pin(phone.id, 1, T0 + 1).await.unwrap(), 1);
    assert_eq!(
        authenticator(s, phone.id).await.state,
        AuthenticatorState::Locked
    );
    let record = decision(&request, &phone, Outcome::Deny, 1, T0 + 2);
    assert_eq!(
        s.decide(id, record, false, T0 + 2).await.unwrap(),
        DecideResult::NotAllowed
    );
    assert_eq!(status(s, id).await, RequestStatus::Pending);
}

/// When both the request and the decider refuse, the answer is the
/// request's (decided, closed, expired), and a refused decision writes
/// nothing: the request stays as it was, the counter too. The deadline is
/// exclusive: the last millisecond before it is still in time.
pub async fn a_refused_decision_answers_for_its_request_first_and_writes_nothing(
    store: FreshStore,
) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let phone = activated(s, &anna, T0).await;
    let tablet = activated(s, &anna, T0).await;
    let bank = registered(s, "Danske Bank").await;
    let stranger = new_authenticator(T0);

    // Expired, and an authenticator nobody knows: expired.
    let late = created(s, login(anna.id, &bank, T0)).await;
    let at = T0 + LIFETIME;
    let record = decision(&late, &stranger, Outcome::Approve, 1, at);
    assert_eq!(
        s.decide(late.envelope.request_id, record, true, at)
            .await
            .unwrap(),
        DecideResult::Expired
    );
    // Cancelled, and a replayed counter: cancelled.
    decided(
        s,
        &created(s, login(anna.id, &bank, T0)).await,
        &tablet,
        Outcome::Deny,
        7,
        T0 + 1,
    )
    .await;
    let cancelled = created(s, login(anna.id, &bank, T0)).await;
    let id = cancelled.envelope.request_id;
    s.cancel_request(id, bank.id, T0 + 2).await.unwrap();
    let record = decision(&cancelled, &tablet, Outcome::Approve, 7, T0 + 3);
    assert_eq!(
        s.decide(id, record, true, T0 + 3).await.unwrap(),
        DecideResult::Cancelled
    );
    assert_eq!(status(s, id).await, RequestStatus::Cancelled);
    // Decided, and a locked authenticator: the first decision back.
    let request = created(s, login(anna.id, &bank, T0)).await;
    let id = request.envelope.request_id;
    let first = decided(s, &request, &phone, Outcome::Approve, 1, T0 + 4).await;
    assert_eq!(s.record_wrong_pin(tablet.id, 1, T0 + 5).await.unwrap(), 1);
    let record = decision(&request, &tablet, Outcome::Deny, 8, T0 + 6);
    assert_eq!(
        s.decide(id, record, false, T0 + 6).await.unwrap(),
        DecideResult::AlreadyDecided(first)
    );
    assert_eq!(status(s, id).await, RequestStatus::Approved);
    // A decidable request and a refusing decider: the decider's answer, and
    // the request stays pending for a decider that may.
    let open = created(s, login(anna.id, &bank, T0)).await;
    let id = open.envelope.request_id;
    let record = decision(&open, &tablet, Outcome::Deny, 9, T0 + 7);
    assert_eq!(
        s.decide(id, record, false, T0 + 7).await.unwrap(),
        DecideResult::NotAllowed
    );
    assert_eq!(status(s, id).await, RequestStatus::Pending);
    assert_eq!(authenticator(s, tablet.id).await.last_counter, 7);
    let last = T0 + LIFETIME - 1;
    let record = decision(&open, &phone, Outcome::Approve, 2, last);
    assert!(matches!(
        s.decide(id, record, true, last).await.unwrap(),
        DecideResult::Accepted(_)
    ));
    assert_eq!(status(s, id).await, RequestStatus::Approved);
    assert_eq!(authenticator(s, phone.id).await.last_counter, 2);
}

/// A decision whose PIN signature verified resets the wrong-PIN count; one
/// without a PIN signature leaves it.
pub async fn a_verified_pin_resets_the_wrong_pin_count(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let phone = activated(s, &anna, T0).await;
    let bank = registered(s, "Danske Bank").await;
    assert_eq!(s.record_wrong_pin(phone.id, 10, T0).await.unwrap(), 1);
    assert_eq!(s.record_wrong_pin(phone.id, 10, T0).await.unwrap(), 2);
    let denied = created(s, login(anna.id, &bank, T0)).await;
    let record = decision(&denied, &phone, Outcome::Deny, 1, T0 + 1);
    s.decide(denied.envelope.request_id, record, false, T0 + 1)
        .await
        .unwrap();
    assert_eq!(authenticator(s, phone.id).await.failed_pin_count, 2);
    let approved = created(s, login(anna.id, &bank, T0 + 2)).await;
    decided(s, &approved, &phone, Outcome::Approve, 2, T0 + 3).await;
    assert_eq!(authenticator(s, phone.id).await.failed_pin_count, 0);
}

/// Wrong PINs count up; the authenticator locks at the limit, and the lock
/// is one event however many wrong PINs follow.
pub async fn wrong_pins_lock_the_authenticator_at_the_limit_with_one_event(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let phone = activated(s, &anna, T0).await;
    let other = activated(s, &anna, T0).await;
    for n in 1..=2 {
        assert_eq!(
            s.record_wrong_pin(phone.id, 3, T0 + n).await.unwrap(),
            n as u32
        );
        assert_eq!(
            authenticator(s, phone.id).await.state,
            AuthenticatorState::Active
        );
    }
    assert_eq!(s.record_wrong_pin(phone.id, 3, T0 + 3).await.unwrap(), 3);
    assert_eq!(s.record_wrong_pin(phone.id, 3, T0 + 4).await.unwrap(), 4);
    assert_eq!(
        authenticator(s, phone.id).await.state,
        AuthenticatorState::Locked
    );
    assert_eq!(
        authenticator(s, other.id).await.state,
        AuthenticatorState::Active
    );
    let lockouts = feed_kinds(s, &other, T0 + 5)
        .await
        .into_iter()
        .filter(|k| *k == SecurityEventKind::PinLockout)
        .count();
    assert_eq!(lockouts, 1);
}

/// Wrong login-screen codes count up; at the limit the request is cancelled.
pub async fn binding_mismatches_cancel_the_request_at_the_limit(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let bank = registered(s, "Danske Bank").await;
    let request = stored(
        envelope(anna.id, RequestKind::Login, (bank.id, &bank.name), T0),
        Some("ABCD-1234".into()),
    );
    let id = created(s, request).await.envelope.request_id;
    assert_eq!(s.record_binding_mismatch(id, 3, T0).await.unwrap(), 1);
    assert_eq!(s.record_binding_mismatch(id, 3, T0).await.unwrap(), 2);
    assert_eq!(status(s, id).await, RequestStatus::Pending);
    assert_eq!(s.record_binding_mismatch(id, 3, T0).await.unwrap(), 3);
    assert_eq!(status(s, id).await, RequestStatus::Cancelled);
}

/// A fraud report records `fraud_reported` naming the provider; an approval
/// records `used` only when the person opted in.
pub async fn a_fraud_report_is_an_event_and_approvals_notify_only_when_opted_in(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let phone = activated(s, &anna, T0).await;
    let bank = registered(s, "Danske Bank").await;
    let quiet = created(s, login(anna.id, &bank, T0)).await;
    decided(s, &quiet, &phone, Outcome::Approve, 1, T0 + 1).await;
    s.set_notify_every_use(anna.id, true, phone.id, T0 + 1)
        .await
        .unwrap();
    let noisy = created(s, login(anna.id, &bank, T0 + 2)).await;
    decided(s, &noisy, &phone, Outcome::Approve, 2, T0 + 3).await;
    let scam = created(s, login(anna.id, &bank, T0 + 4)).await;
    decided(s, &scam, &phone, Outcome::ReportFraud, 3, T0 + 5).await;
    assert_eq!(
        status(s, scam.envelope.request_id).await,
        RequestStatus::FraudReported
    );
    let bank_name = Some(bank.name.clone());
    assert_eq!(
        feed(s, &phone, T0 + 6).await,
        vec![
            (SecurityEventKind::DeviceActivated, None),
            (SecurityEventKind::Used, bank_name.clone()),
            (SecurityEventKind::FraudReported, bank_name),
        ]
    );
}

/// Exactly one of 100 concurrent decisions on one request wins; the other 99
/// get the winner back as already decided.
pub async fn exactly_one_of_100_concurrent_decisions_wins(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let mut devices = Vec::new();
    for _ in 0..4 {
        devices.push(activated(s, &anna, T0).await);
    }
    let bank = registered(s, "Danske Bank").await;
    let request = created(s, login(anna.id, &bank, T0)).await;
    let id = request.envelope.request_id;
    let now = T0 + 1;
    let outcomes = [Outcome::Approve, Outcome::Deny, Outcome::ReportFraud];
    let start = Arc::new(tokio::sync::Barrier::new(100));
    let mut tasks = Vec::new();
    for i in 0..100usize {
        let record = decision(
            &request,
            &devices[i % 4],
            outcomes[i % 3],
            i as u64 + 1,
            now,
        );
        let (shared, start) = (store.shared(), Arc::clone(&start));
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let result = shared.decide(id, record.clone(), true, now).await.unwrap();
            (record, result)
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    let winners: Vec<DecisionRecord> = results
        .iter()
        .filter(|(_, r)| matches!(r, DecideResult::Accepted(_)))
        .map(|(record, _)| record.clone())
        .collect();
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let winner = &winners[0];
    for (record, result) in &results {
        if record != winner {
            assert_eq!(result, &DecideResult::AlreadyDecided(winner.clone()));
        }
    }
    let read = s.request(id).await.unwrap().unwrap();
    assert_eq!(read.decision.as_ref(), Some(winner));
    assert_eq!(read.status, RequestStatus::from_outcome(winner.outcome));
}

/// Concurrent decisions on one request of a provider with a webhook, and
/// on one of a provider without (whose decisions may commit with their
/// writes): one wins each, and exactly the webhooked one queues exactly one
/// delivery, with the winner's status.
pub async fn of_concurrent_decisions_on_a_webhooked_request_one_wins_and_queues_one_delivery(
    store: FreshStore,
) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let mut devices = Vec::new();
    for _ in 0..4 {
        devices.push(activated(s, &anna, T0).await);
    }
    let bank = registered(s, "Danske Bank").await;
    let quiet = registered(s, "Nordea").await;
    set_webhook(
        s,
        &bank,
        Some(webhook_of(&bank, "https://bank.example/hook", T0)),
        T0,
    )
    .await;
    let hooked = created(s, login(anna.id, &bank, T0)).await;
    let plain = created(s, login(anna.id, &quiet, T0)).await;
    let now = T0 + 1;
    let outcomes = [Outcome::Approve, Outcome::Deny];
    let start = Arc::new(tokio::sync::Barrier::new(80));
    let mut tasks = Vec::new();
    for i in 0..80usize {
        let request = if i % 2 == 0 { &hooked } else { &plain };
        let id = request.envelope.request_id;
        let record = decision(
            request,
            &devices[i % 4],
            outcomes[(i / 2) % 2],
            i as u64 + 1,
            now,
        );
        let (shared, start) = (store.shared(), Arc::clone(&start));
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let result = shared.decide(id, record.clone(), true, now).await.unwrap();
            (id, record, result)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (id, record, result) = task.await.unwrap();
        if matches!(result, DecideResult::Accepted(_)) {
            winners.push((id, record));
        }
    }
    assert_eq!(winners.len(), 2, "one winner a request: {winners:?}");
    let hooked_winner = winners
        .iter()
        .find(|(id, _)| *id == hooked.envelope.request_id)
        .expect("the webhooked request has a winner");
    let claimed = s
        .claim_webhook_deliveries(T0 + 10, 10, LEASE, 5)
        .await
        .unwrap();
    let got: Vec<(RequestId, RequestStatus)> =
        claimed.iter().map(|d| (d.request_id, d.status)).collect();
    assert_eq!(
        got,
        vec![(
            hooked.envelope.request_id,
            RequestStatus::from_outcome(hooked_winner.1.outcome)
        )]
    );
}

/// Many concurrent creates for one identity store exactly as many requests
/// as the pending cap allows.
pub async fn concurrent_creates_never_exceed_the_pending_cap(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let bank = registered(s, "Danske Bank").await;
    let start = Arc::new(tokio::sync::Barrier::new(50));
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let request = login(anna.id, &bank, T0);
        let (shared, start) = (store.shared(), Arc::clone(&start));
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            shared.create_request(request, 5, T0).await.unwrap()
        }));
    }
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap() {
            CreateResult::Created => created += 1,
            other => assert_eq!(other, CreateResult::TooManyPending),
        }
    }
    assert_eq!(created, 5);
    assert_eq!(s.count_pending(anna.id, T0).await.unwrap(), 5);
}

/// One nonce used by 100 writers at once is accepted exactly once.
pub async fn a_nonce_used_by_many_at_once_is_accepted_once(store: FreshStore) {
    let nonce = Nonce16::random();
    let start = Arc::new(tokio::sync::Barrier::new(100));
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (shared, start) = (store.shared(), Arc::clone(&start));
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            shared.use_nonce(nonce, T0).await.unwrap()
        }));
    }
    let mut accepted = 0;
    for task in tasks {
        accepted += usize::from(task.await.unwrap());
    }
    assert_eq!(accepted, 1);
}

// ---------------------------------------------------------------- flood limits

/// A full per-identity window refuses (nothing stored) and says how long
/// until its oldest request leaves it; then one more fits.
pub async fn the_per_identity_window_refuses_and_says_when_a_slot_frees(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let bank = registered(s, "Danske Bank").await;
    let other = registered(s, "Nordea").await;
    let limits = RequestLimits {
        max_pending: BIG,
        per_identity: vec![window(60_000, 2)],
        ..RequestLimits::default()
    };
    let create = |request: StoredRequest, now: u64| {
        let limits = limits.clone();
        async move {
            s.create_request_limited(request, limits, now)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        create(login(anna.id, &bank, T0), T0).await,
        CreateResult::Created
    );
    assert_eq!(
        create(login(anna.id, &other, T0 + 10_000), T0 + 10_000).await,
        CreateResult::Created
    );
    let refused = login(anna.id, &bank, T0 + 20_000);
    assert_eq!(
        create(refused.clone(), T0 + 20_000).await,
        CreateResult::RateLimited {
            scope: LimitScope::Identity,
            retry_after_ms: 40_000
        }
    );
    assert_eq!(s.request(refused.envelope.request_id).await.unwrap(), None);
    // Another person is not limited by Anna's window.
    let bo = identity(s, BO).await;
    assert_eq!(
        create(login(bo.id, &bank, T0 + 20_000), T0 + 20_000).await,
        CreateResult::Created
    );
    assert_eq!(
        create(login(anna.id, &bank, T0 + 60_000), T0 + 60_000).await,
        CreateResult::Created
    );
}

/// The built-in self-service provider's requests do not fill the person's
/// window.
pub async fn self_service_requests_do_not_count_toward_the_person_s_window(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let bank = registered(s, "Danske Bank").await;
    let limits = RequestLimits {
        max_pending: BIG,
        per_identity: vec![window(60_000, 1)],
        ..RequestLimits::default()
    };
    created(s, self_service_login(anna.id, T0)).await;
    assert_eq!(
        s.create_request_limited(login(anna.id, &bank, T0 + 1), limits, T0 + 1)
            .await
            .unwrap(),
        CreateResult::Created
    );
}

/// The per-provider window counts the provider's requests for every person;
/// another provider is not limited by it.
pub async fn the_per_provider_window_counts_requests_for_every_identity(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let bo = identity(s, BO).await;
    let bank = registered(s, "Danske Bank").await;
    let other = registered(s, "Nordea").await;
    let limits = RequestLimits {
        max_pending: BIG,
        per_provider: vec![window(60_000, 2)],
        ..RequestLimits::default()
    };
    let create = |request: StoredRequest, now: u64| {
        let limits = limits.clone();
        async move {
            s.create_request_limited(request, limits, now)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        create(login(anna.id, &bank, T0), T0).await,
        CreateResult::Created
    );
    assert_eq!(
        create(login(bo.id, &bank, T0 + 5_000), T0 + 5_000).await,
        CreateResult::Created
    );
    assert_eq!(
        create(login(anna.id, &bank, T0 + 6_000), T0 + 6_000).await,
        CreateResult::RateLimited {
            scope: LimitScope::Provider,
            retry_after_ms: 54_000
        }
    );
    assert_eq!(
        create(login(anna.id, &other, T0 + 6_000), T0 + 6_000).await,
        CreateResult::Created
    );
    // A limit of 0 turns a window off.
    let off = RequestLimits {
        max_pending: BIG,
        per_provider: vec![window(60_000, 0)],
        ..RequestLimits::default()
    };
    assert_eq!(
        s.create_request_limited(login(bo.id, &bank, T0 + 7_000), off, T0 + 7_000)
            .await
            .unwrap(),
        CreateResult::Created
    );
}

/// When several windows are full, the refusal names the one with the
/// longest wait.
pub async fn the_longest_wait_of_the_full_windows_is_reported(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let bank = registered(s, "Danske Bank").await;
    let limits = RequestLimits {
        max_pending: BIG,
        per_identity: vec![window(60_000, 1)],
        per_provider: vec![window(HOUR, 1)],
        fraud_hold_ms: 0,
    };
    assert_eq!(
        s.create_request_limited(login(anna.id, &bank, T0), limits.clone(), T0)
            .await
            .unwrap(),
        CreateResult::Created
    );
    assert_eq!(
        s.create_request_limited(login(anna.id, &bank, T0 + 1_000), limits, T0 + 1_000)
            .await
            .unwrap(),
        CreateResult::RateLimited {
            scope: LimitScope::Provider,
            retry_after_ms: HOUR - 1_000
        }
    );
}

// ---------------------------------------------------------------- fraud hold

/// After a fraud report the provider's new requests for that person are
/// held for the hold time; other providers and other persons are not.
pub async fn after_a_fraud_report_the_provider_is_held_for_that_person_only(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let bo = identity(s, BO).await;
    let phone = activated(s, &anna, T0).await;
    let bank = registered(s, "Danske Bank").await;
    let other = registered(s, "Nordea").await;
    let scam = created(s, login(anna.id, &bank, T0)).await;
    decided(s, &scam, &phone, Outcome::ReportFraud, 1, T0 + 1_000).await;
    let held = RequestLimits {
        max_pending: BIG,
        fraud_hold_ms: HOUR,
        ..RequestLimits::default()
    };
    let now = T0 + 2_000;
    let create = |request: StoredRequest| {
        let held = held.clone();
        async move { s.create_request_limited(request, held, now).await.unwrap() }
    };
    let refused = login(anna.id, &bank, now);
    assert_eq!(
        create(refused.clone()).await,
        CreateResult::CoolingDown {
            retry_after_ms: HOUR - 1_000,
            told: true
        }
    );
    assert_eq!(s.request(refused.envelope.request_id).await.unwrap(), None);
    assert_eq!(
        create(login(anna.id, &other, now)).await,
        CreateResult::Created
    );
    assert_eq!(
        create(login(bo.id, &bank, now)).await,
        CreateResult::Created
    );
    // A hold of 0 is off.
    assert_eq!(
        s.create_request_limited(
            login(anna.id, &bank, now),
            RequestLimits::pending_only(BIG),
            now
        )
        .await
        .unwrap(),
        CreateResult::Created
    );
}

/// The first refusal of a hold records one `requests_held` event naming the
/// provider, however many follow; after the hold requests pass again, and a
/// new report restarts the hold and its notice.
pub async fn a_hold_is_announced_once_and_ends_after_its_time(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let phone = activated(s, &anna, T0).await;
    let bank = registered(s, "Danske Bank").await;
    let held = RequestLimits {
        max_pending: BIG,
        fraud_hold_ms: HOUR,
        ..RequestLimits::default()
    };
    let scam = created(s, login(anna.id, &bank, T0)).await;
    decided(s, &scam, &phone, Outcome::ReportFraud, 1, T0).await;
    // Only the first refusal is told (it wrote the event: the login pages
    // make no stand-in write for it).
    for n in 1..=3 {
        let result = s
            .create_request_limited(login(anna.id, &bank, T0 + n), held.clone(), T0 + n)
            .await
            .unwrap();
        assert_eq!(
            result,
            CreateResult::CoolingDown {
                retry_after_ms: HOUR - n,
                told: n == 1
            }
        );
    }
    let held_events = |events: Vec<(SecurityEventKind, Option<String>)>| {
        events
            .into_iter()
            .filter(|(k, _)| *k == SecurityEventKind::RequestsHeld)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        held_events(feed(s, &phone, T0 + 4).await),
        vec![(SecurityEventKind::RequestsHeld, Some(bank.name.clone()))]
    );
    let after = login(anna.id, &bank, T0 + HOUR);
    assert_eq!(
        s.create_request_limited(after.clone(), held.clone(), T0 + HOUR)
            .await
            .unwrap(),
        CreateResult::Created
    );
    decided(s, &after, &phone, Outcome::ReportFraud, 2, T0 + HOUR + 1).await;
    let again = s
        .create_request_limited(login(anna.id, &bank, T0 + HOUR + 2), held, T0 + HOUR + 2)
        .await
        .unwrap();
    assert_eq!(
        again,
        CreateResult::CoolingDown {
            retry_after_ms: HOUR - 1,
            told: true
        }
    );
    assert_eq!(held_events(feed(s, &phone, T0 + HOUR + 3).await).len(), 2);
}

// ---------------------------------------------------------------- outbox

/// An event goes to the identity's phone and e-mail; a claimed delivery is
/// leased (not claimed again) until the lease ends, then claimed again with
/// the attempt counted; once delivered it is never claimed again.
pub async fn a_claimed_delivery_is_claimed_again_only_after_its_lease(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    s.set_blocked(anna.id, true, T0).await.unwrap().unwrap();
    let claim = |now: u64| s.claim_deliveries(vec![Channel::Sms], now, 10, LEASE, 5);
    let first = claim(T0).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].channel, Channel::Sms);
    assert_eq!(first[0].attempts, 1);
    assert_eq!(first[0].address, ANNA_PHONE);
    assert_eq!(first[0].event.kind, SecurityEventKind::IdentityBlocked);
    assert_eq!(first[0].event.occurred_at_ms, T0);
    assert!(claim(T0).await.unwrap().is_empty());
    assert!(claim(T0 + LEASE - 1).await.unwrap().is_empty());
    let again = claim(T0 + LEASE).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].id, again[0].attempts), (first[0].id, 2));
    s.finish_delivery(again[0].id, DeliveryOutcome::Delivered, T0 + LEASE)
        .await
        .unwrap();
    assert!(claim(T0 + 100 * LEASE).await.unwrap().is_empty());
    // The e-mail delivery of the same event was untouched by SMS claims.
    let email = s
        .claim_deliveries(vec![Channel::Email], T0, 10, LEASE, 5)
        .await
        .unwrap();
    assert_eq!(email.len(), 1);
    assert_eq!(email[0].address, ANNA_EMAIL);
    assert_eq!(email[0].event.id, first[0].event.id);
}

/// A failed delivery waits for its retry time; attempts stop at the
/// dispatcher's maximum, and a delivery given up is never claimed again.
pub async fn failed_deliveries_wait_their_retry_time_and_attempts_are_bounded(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    s.set_blocked(anna.id, true, T0).await.unwrap().unwrap();
    let claim = |now: u64| s.claim_deliveries(vec![Channel::Email], now, 10, LEASE, 2);
    let failed = |retry_at_ms| DeliveryOutcome::Failed {
        error: "transient: SMTP 421".into(),
        retry_at_ms,
    };
    let d = claim(T0).await.unwrap().remove(0);
    s.finish_delivery(d.id, failed(Some(T0 + 30_000)), T0)
        .await
        .unwrap();
    assert!(claim(T0 + 29_999).await.unwrap().is_empty());
    let d = claim(T0 + 30_000).await.unwrap().remove(0);
    assert_eq!(d.attempts, 2);
    s.finish_delivery(d.id, failed(Some(T0 + 90_000)), T0 + 30_000)
        .await
        .unwrap();
    // Two attempts were the maximum.
    assert!(claim(T0 + 100 * LEASE).await.unwrap().is_empty());
    // Given up: parked even for a dispatcher that allows more attempts.
    s.finish_delivery(d.id, failed(None), T0 + 30_000)
        .await
        .unwrap();
    assert!(
        s.claim_deliveries(vec![Channel::Email], T0 + 100 * LEASE, 10, LEASE, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A claim takes at most `limit` deliveries, oldest first; the rest come
/// with the next claim; claiming no channel claims nothing.
pub async fn claims_take_at_most_the_limit_and_no_channel_claims_nothing(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    for n in 0..3 {
        s.set_blocked(anna.id, n % 2 == 0, T0 + n)
            .await
            .unwrap()
            .unwrap();
    }
    assert!(
        s.claim_deliveries(Vec::new(), T0 + 10, 10, LEASE, 5)
            .await
            .unwrap()
            .is_empty()
    );
    let claim = || s.claim_deliveries(vec![Channel::Sms], T0 + 10, 2, LEASE, 5);
    let first = claim().await.unwrap();
    let times: Vec<u64> = first.iter().map(|d| d.event.occurred_at_ms).collect();
    assert_eq!(times, vec![T0, T0 + 1]);
    let rest = claim().await.unwrap();
    let times: Vec<u64> = rest.iter().map(|d| d.event.occurred_at_ms).collect();
    assert_eq!(times, vec![T0 + 2]);
    assert!(claim().await.unwrap().is_empty());
}

// ---------------------------------------------------------------- pull

/// A pull reads the authenticators and identities in order (`None` for
/// unknown ids), the pending unexpired requests of unblocked identities
/// oldest first, and each authenticator's feed after its cursor.
pub async fn a_pull_shows_unexpired_pending_requests_oldest_first_and_feed_events_after_the_cursor(
    store: FreshStore,
) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let bo = identity(s, BO).await;
    let phone = activated(s, &anna, T0).await;
    let bos_phone = activated(s, &bo, T0).await;
    let bank = registered(s, "Danske Bank").await;
    let expired = created(s, login(anna.id, &bank, T0 - LIFETIME)).await;
    let older = created(s, login(anna.id, &bank, T0)).await;
    let newer = created(s, login(anna.id, &bank, T0 + 1_000)).await;
    let cancelled = created(s, login(anna.id, &bank, T0 + 1_500)).await;
    s.cancel_request(cancelled.envelope.request_id, bank.id, T0 + 1_500)
        .await
        .unwrap();
    created(s, login(bo.id, &bank, T0)).await;
    s.set_blocked(bo.id, true, T0 + 1_600).await.unwrap();
    let unknown = AuthenticatorId::random();
    let now = T0 + 2_000;
    let snapshot = s
        .pull_snapshot(
            vec![phone.id, unknown, bos_phone.id],
            FeedCursors::NewestAbove(Vec::new()),
            Vec::new(),
            now,
        )
        .await
        .unwrap();
    assert_eq!(
        snapshot.authenticators,
        vec![Some(phone.clone()), None, Some(bos_phone.clone())]
    );
    let identity_ids: Vec<_> = snapshot
        .identities
        .iter()
        .map(|i| i.as_ref().map(|i| i.id))
        .collect();
    assert_eq!(identity_ids, vec![Some(anna.id), None, Some(bo.id)]);
    let pending: Vec<_> = snapshot
        .pending
        .iter()
        .map(|r| r.envelope.request_id)
        .collect();
    assert_eq!(
        pending,
        vec![older.envelope.request_id, newer.envelope.request_id]
    );
    assert!(!pending.contains(&expired.envelope.request_id));
    assert_eq!(snapshot.events.len(), 3);
    assert!(snapshot.events[1].is_empty());
    let kinds: Vec<_> = snapshot.events[2].iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![
            SecurityEventKind::DeviceActivated,
            SecurityEventKind::IdentityBlocked
        ]
    );
    // After the cursor: only what is newer.
    let cursor = snapshot.events[2][0].id;
    let after = s
        .pull_snapshot(
            vec![bos_phone.id],
            FeedCursors::NewestAbove(vec![cursor]),
            Vec::new(),
            now,
        )
        .await
        .unwrap();
    let kinds: Vec<_> = after.events[0].iter().map(|e| e.kind).collect();
    assert_eq!(kinds, vec![SecurityEventKind::IdentityBlocked]);
    // A phone with one account reads the same (a backend may read it
    // another way): the blocked identity's request is not pulled.
    assert!(after.pending.is_empty());
    assert_eq!(
        after.identities,
        vec![Some(snapshot.identities[2].clone().unwrap())]
    );
    let alone = s
        .pull_snapshot(
            vec![phone.id],
            FeedCursors::NewestAbove(Vec::new()),
            Vec::new(),
            now,
        )
        .await
        .unwrap();
    assert_eq!(alone.authenticators, vec![Some(phone.clone())]);
    let pending_alone: Vec<_> = alone
        .pending
        .iter()
        .map(|r| r.envelope.request_id)
        .collect();
    assert_eq!(pending_alone, pending);
    assert_eq!(alone.events[0], snapshot.events[0]);
}

/// A pull with its nonce answers what the read alone answers, once: the
/// same nonce again gets nothing, whoever sends it, and the nonce is then
/// used for every other check too; a write committed just before the pull is
/// in it. One account and several alike (a backend may read a one-account
/// pull another way: on its writer, in the nonce's statement).
pub async fn a_pull_with_its_nonce_answers_the_snapshot_once_and_a_replay_nothing(
    store: FreshStore,
) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let phone = activated(s, &anna, T0).await;
    let bank = registered(s, "Danske Bank").await;
    let first = created(s, login(anna.id, &bank, T0)).await;
    let now = T0 + 1_000;
    let unknown = AuthenticatorId::random();
    let pull = |nonce: Nonce16, ids: Vec<AuthenticatorId>| {
        let n = ids.len();
        s.pull_with_nonce(
            nonce,
            now + 600_000,
            ids,
            FeedCursors::NewestAbove(vec![0; n]),
            vec![0; n],
            now,
        )
    };
    let ids = |p: &PullSnapshot| -> Vec<RequestId> {
        p.pending.iter().map(|r| r.envelope.request_id).collect()
    };
    for accounts in [vec![phone.id], vec![phone.id, unknown]] {
        let nonce = Nonce16(random_array());
        let answered = pull(nonce, accounts.clone())
            .await
            .unwrap()
            .expect("a fresh nonce is answered");
        let n = accounts.len();
        let alone = s
            .pull_snapshot(
                accounts.clone(),
                FeedCursors::NewestAbove(vec![0; n]),
                vec![0; n],
                now,
            )
            .await
            .unwrap();
        assert_eq!(answered.authenticators, alone.authenticators);
        assert_eq!(answered.identities, alone.identities);
        assert_eq!(answered.events, alone.events);
        assert_eq!(answered.decisions, alone.decisions);
        assert_eq!(ids(&answered), vec![first.envelope.request_id]);
        assert_eq!(ids(&answered), ids(&alone));
        assert!(
            pull(nonce, accounts.clone()).await.unwrap().is_none(),
            "a replay gets nothing"
        );
        assert!(
            pull(nonce, vec![phone.id]).await.unwrap().is_none(),
            "nor with other accounts"
        );
        assert!(!s.use_nonce(nonce, now + 600_000).await.unwrap());
    }
    // The next write is in the next pull.
    let second = created(s, login(anna.id, &bank, T0 + 500)).await;
    let again = pull(Nonce16(random_array()), vec![phone.id])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        ids(&again),
        vec![first.envelope.request_id, second.envelope.request_id]
    );
}

/// A flood of more events than one pull returns: paging cursors bring the
/// oldest above the cursor, so successive pulls bring every event once;
/// older phones' cursors bring the newest.
pub async fn a_paging_pull_brings_the_oldest_events_above_the_cursor_and_older_phones_the_newest(
    store: FreshStore,
) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let phone = activated(s, &anna, T0).await;
    let bo = identity(s, BO).await;
    // Interleaved with another identity's events: the ids have gaps.
    for i in 0..120 {
        s.set_blocked(anna.id, i % 2 == 0, T0 + i).await.unwrap();
        s.set_blocked(bo.id, i % 2 == 0, T0 + i).await.unwrap();
    }
    let max = eid_protocol::wire::MAX_FEED_EVENTS;
    let all = 1 + 120;
    let mut seen = Vec::new();
    let mut cursor = 0;
    loop {
        let page = s
            .pull_snapshot(
                vec![phone.id],
                FeedCursors::OldestAbove(vec![cursor]),
                Vec::new(),
                T0 + 200,
            )
            .await
            .unwrap();
        let events = &page.events[0];
        assert!(events.len() <= max);
        let Some(last) = events.last() else { break };
        assert!(events.windows(2).all(|w| w[0].id < w[1].id), "oldest first");
        cursor = last.id;
        seen.extend(events.iter().map(|e| e.id));
    }
    assert_eq!(seen.len(), all, "every event once");
    assert_eq!(
        s.pull_snapshot(
            vec![phone.id],
            FeedCursors::OldestAbove(Vec::new()),
            Vec::new(),
            T0 + 200
        )
        .await
        .unwrap()
        .events[0]
            .first()
            .map(|e| e.kind),
        Some(SecurityEventKind::DeviceActivated),
        "no cursor: from the start"
    );
    let newest = s
        .pull_snapshot(
            vec![phone.id],
            FeedCursors::NewestAbove(vec![0]),
            Vec::new(),
            T0 + 200,
        )
        .await
        .unwrap();
    let ids: Vec<_> = newest.events[0].iter().map(|e| e.id).collect();
    assert_eq!(
        ids,
        seen[all - max..],
        "older phones: the newest, oldest first"
    );
}

/// A pull lists the identity's decisions (any of its authenticators) after
/// the cursor, oldest first, with increasing sequence numbers.
pub async fn a_pull_lists_the_identity_s_decisions_after_the_cursor(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let phone = activated(s, &anna, T0).await;
    let tablet = activated(s, &anna, T0).await;
    let bank = registered(s, "Danske Bank").await;
    let first = created(s, login(anna.id, &bank, T0)).await;
    let second = created(s, login(anna.id, &bank, T0 + 1)).await;
    let d1 = decided(s, &first, &phone, Outcome::Approve, 1, T0 + 2).await;
    let d2 = decided(s, &second, &tablet, Outcome::Deny, 1, T0 + 3).await;
    let snapshot = s
        .pull_snapshot(
            vec![phone.id],
            FeedCursors::NewestAbove(Vec::new()),
            Vec::new(),
            T0 + 4,
        )
        .await
        .unwrap();
    let pulled = &snapshot.decisions[0];
    let seen: Vec<_> = pulled
        .iter()
        .map(|d| {
            (
                d.request_id,
                d.authenticator_id,
                d.outcome,
                d.counter,
                d.decision_sha256,
                d.decided_at_ms,
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                first.envelope.request_id,
                phone.id,
                Outcome::Approve,
                1,
                d1.decision_sha256,
                T0 + 2
            ),
            (
                second.envelope.request_id,
                tablet.id,
                Outcome::Deny,
                1,
                d2.decision_sha256,
                T0 + 3
            ),
        ]
    );
    assert!(pulled[0].seq < pulled[1].seq);
    let after = s
        .pull_snapshot(
            vec![tablet.id],
            FeedCursors::NewestAbove(Vec::new()),
            vec![pulled[0].seq],
            T0 + 4,
        )
        .await
        .unwrap();
    let ids: Vec<_> = after.decisions[0].iter().map(|d| d.request_id).collect();
    assert_eq!(ids, vec![second.envelope.request_id]);
    let none = s
        .pull_snapshot(
            vec![tablet.id],
            FeedCursors::NewestAbove(Vec::new()),
            vec![pulled[1].seq],
            T0 + 4,
        )
        .await
        .unwrap();
    assert!(none.decisions[0].is_empty());
}

// ---------------------------------------------------------------- enrolments

fn new_device(now: u64) -> Enrolment {
    Enrolment {
        id: AuthenticatorId::random(),
        identity_id: None,
        request_id: None,
        device_public_key: key(),
        pin_public_key: key(),
        code: "12345678".into(),
        state: EnrolmentStoredState::AwaitingApproval,
        requested_at_ms: now,
        expires_at_ms: now + LIFETIME,
        wait_ms: HOUR,
        usable_at_ms: None,
    }
}

fn new_device_request(identity_id: IdentityId, e: &Enrolment) -> StoredRequest {
    let mut envelope = envelope(
        identity_id,
        RequestKind::NewDevice,
        (SELF_SERVICE_PROVIDER_ID, SELF_SERVICE_PROVIDER_NAME),
        e.requested_at_ms,
    );
    envelope.binding_required = true;
    stored(envelope, Some(e.code.clone()))
}

/// Asks for a real enrolment of `identity` (cap 5, 3 an hour); returns it.
async fn start_real_enrolment(s: &dyn Store, identity: &Identity, now: u64) -> Enrolment {
    let asked = new_device(now);
    let request = new_device_request(identity.id, &asked);
    match s
        .start_enrolment(asked, Some(request), 5, 3, now)
        .await
        .unwrap()
    {
        StartEnrolmentResult::Started(e) if e.identity_id.is_some() => e,
        other => panic!("no real enrolment: {other:?}"),
    }
}

fn request_of(e: &Enrolment, identity_id: IdentityId) -> StoredRequest {
    StoredRequest {
        envelope: RequestEnvelopeBody {
            request_id: e.request_id.expect("a real enrolment has a request"),
            ..new_device_request(identity_id, e).envelope
        },
        ..new_device_request(identity_id, e)
    }
}

/// A real enrolment is stored with its identity and new-device request,
/// announced as `new_device_requested`, and polls as awaiting approval.
pub async fn an_enrolment_with_a_request_awaits_approval_and_is_announced(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let phone = activated(s, &anna, T0).await;
    let asked = new_device(T0 + 1);
    let request = new_device_request(anna.id, &asked);
    let expected = Enrolment {
        identity_id: Some(anna.id),
        request_id: Some(request.envelope.request_id),
        ..asked.clone()
    };
    assert_eq!(
        s.start_enrolment(asked, Some(request.clone()), 5, 3, T0 + 1)
            .await
            .unwrap(),
        StartEnrolmentResult::Started(expected.clone())
    );
    assert_eq!(
        s.enrolment(expected.id).await.unwrap(),
        Some(expected.clone())
    );
    assert_eq!(
        s.request(request.envelope.request_id).await.unwrap(),
        Some(request)
    );
    assert_eq!(
        s.poll_enrolment(expected.id, 5, T0 + 2).await.unwrap(),
        EnrolmentPoll::AwaitingApproval(expected.clone())
    );
    let snapshot = s
        .pull_snapshot(
            vec![phone.id],
            FeedCursors::NewestAbove(Vec::new()),
            Vec::new(),
            T0 + 2,
        )
        .await
        .unwrap();
    assert_eq!(snapshot.enrolments, vec![expected]);
    assert_eq!(
        feed_kinds(s, &phone, T0 + 2).await,
        vec![
            SecurityEventKind::DeviceActivated,
            SecurityEventKind::NewDeviceRequested
        ]
    );
    assert_eq!(s.enrolment(AuthenticatorId::random()).await.unwrap(), None);
    assert_eq!(
        s.poll_enrolment(AuthenticatorId::random(), 5, T0)
            .await
            .unwrap(),
        EnrolmentPoll::Closed
    );
}

/// Without a request (unknown user ID), or for a blocked identity, the
/// enrolment is stored as a decoy: no identity, no request, never
/// approvable; it polls as awaiting approval until it expires.
pub async fn an_enrolment_for_an_unknown_or_blocked_identity_is_a_decoy(store: FreshStore) {
    let s = &*store;
    let asked = new_device(T0);
    assert_eq!(
        s.start_enrolment(asked.clone(), None, 5, 3, T0)
            .await
            .unwrap(),
        StartEnrolmentResult::Started(asked.clone())
    );
    assert_eq!(
        s.poll_enrolment(asked.id, 5, T0 + LIFETIME - 1)
            .await
            .unwrap(),
        EnrolmentPoll::AwaitingApproval(asked.clone())
    );
    assert_eq!(
        s.poll_enrolment(asked.id, 5, T0 + LIFETIME).await.unwrap(),
        EnrolmentPoll::Closed
    );
    let anna = identity(s, ANNA).await;
    s.set_blocked(anna.id, true, T0).await.unwrap();
    let asked = new_device(T0);
    let request = new_device_request(anna.id, &asked);
    assert_eq!(
        s.start_enrolment(asked.clone(), Some(request.clone()), 5, 3, T0)
            .await
            .unwrap(),
        StartEnrolmentResult::Started(asked)
    );
    assert_eq!(s.request(request.envelope.request_id).await.unwrap(), None);
}

/// The same new keys asked again while the enrolment is live get it back,
/// real or decoy alike.
pub async fn the_same_new_keys_get_the_live_enrolment_back(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let real = start_real_enrolment(s, &anna, T0).await;
    let retry = Enrolment {
        id: AuthenticatorId::random(),
        ..new_device(T0 + 1)
    };
    let retry = Enrolment {
        device_public_key: real.device_public_key.clone(),
        pin_public_key: real.pin_public_key.clone(),
        ..retry
    };
    let request = new_device_request(anna.id, &retry);
    assert_eq!(
        s.start_enrolment(retry, Some(request), 5, 3, T0 + 1)
            .await
            .unwrap(),
        StartEnrolmentResult::Existing(real)
    );
    let decoy = new_device(T0);
    s.start_enrolment(decoy.clone(), None, 5, 3, T0)
        .await
        .unwrap();
    let again = Enrolment {
        id: AuthenticatorId::random(),
        ..decoy.clone()
    };
    assert_eq!(
        s.start_enrolment(again, None, 5, 3, T0 + 1).await.unwrap(),
        StartEnrolmentResult::Existing(decoy)
    );
}

/// Several enrolments may await approval at once (each its own request, so a
/// stranger's cannot hide the person's own), up to
/// [`crate::limits::MAX_AWAITING_ENROLMENTS`]; one more, or one past the
/// hourly limit, is answered as a decoy and stores no request.
pub async fn enrolments_await_approval_side_by_side_up_to_a_cap_then_are_decoys(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let phone = activated(s, &anna, T0).await;
    let awaiting = crate::limits::MAX_AWAITING_ENROLMENTS;
    let mut started = Vec::new();
    for i in 0..awaiting {
        let asked = new_device(T0 + i);
        let request = new_device_request(anna.id, &asked);
        match s
            .start_enrolment(asked, Some(request.clone()), 3, 20, T0 + i)
            .await
            .unwrap()
        {
            StartEnrolmentResult::Started(e) if e.identity_id.is_some() => started.push(e),
            other => panic!("enrolment {i} is not real: {other:?}"),
        }
        assert!(
            s.request(request.envelope.request_id)
                .await
                .unwrap()
                .is_some()
        );
    }
    let asked = new_device(T0 + awaiting);
    let request = new_device_request(anna.id, &asked);
    assert_eq!(
        s.start_enrolment(asked.clone(), Some(request.clone()), 3, 20, T0 + awaiting)
            .await
            .unwrap(),
        StartEnrolmentResult::Started(asked)
    );
    assert_eq!(s.request(request.envelope.request_id).await.unwrap(), None);
    // Over the hourly limit (here the number started), even with none
    // awaiting approval.
    for e in &started {
        s.cancel_enrolment(phone.id, e.id, T0 + 10).await.unwrap();
    }
    let asked = new_device(T0 + 11);
    let request = new_device_request(anna.id, &asked);
    assert_eq!(
        s.start_enrolment(asked.clone(), Some(request), 3, awaiting, T0 + 11)
            .await
            .unwrap(),
        StartEnrolmentResult::Started(asked)
    );
    // An hour later it is real again.
    let later = start_real_enrolment(s, &anna, T0 + HOUR + 20).await;
    assert_eq!(later.identity_id, Some(anna.id));
}

/// Enrolments nobody approved yet do not count toward the device cap when
/// a new one starts (anyone who knows the user ID could otherwise fill it);
/// approved ones in their wait do.
pub async fn only_active_and_approved_devices_fill_the_cap_at_a_start(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let phone = activated(s, &anna, T0).await;
    let first = start_real_enrolment(s, &anna, T0).await;
    // Cap 2: one phone and one unapproved enrolment leave room.
    let asked = new_device(T0 + 1);
    let request = new_device_request(anna.id, &asked);
    let second = match s
        .start_enrolment(asked, Some(request), 2, 20, T0 + 1)
        .await
        .unwrap()
    {
        StartEnrolmentResult::Started(e) if e.identity_id.is_some() => e,
        other => panic!("not real: {other:?}"),
    };
    decided(
        s,
        &request_of(&first, anna.id),
        &phone,
        Outcome::Approve,
        1,
        T0 + 2,
    )
    .await;
    let asked = new_device(T0 + 3);
    let request = new_device_request(anna.id, &asked);
    assert_eq!(
        s.start_enrolment(asked, Some(request), 2, 20, T0 + 3)
            .await
            .unwrap(),
        StartEnrolmentResult::DeviceLimitReached
    );
    assert_eq!(
        s.enrolment(second.id).await.unwrap().map(|e| e.state),
        Some(EnrolmentStoredState::AwaitingApproval)
    );
}

/// Expired decoy enrolments are deleted, at most `limit` a call; live decoys
/// and real enrolments stay; a deleted decoy polls as closed, as before.
pub async fn expired_decoy_enrolments_are_purged_within_the_limit(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let real = start_real_enrolment(s, &anna, T0).await;
    let decoys: Vec<Enrolment> = (0..3).map(|_| new_device(T0)).collect();
    for d in &decoys {
        s.start_enrolment(d.clone(), None, 5, 3, T0).await.unwrap();
    }
    let live = new_device(T0 + 1);
    s.start_enrolment(live.clone(), None, 5, 3, T0 + 1)
        .await
        .unwrap();
    assert_eq!(
        s.purge_decoy_enrolments(T0 + LIFETIME - 1, 10)
            .await
            .unwrap(),
        0
    );
    assert_eq!(s.purge_decoy_enrolments(T0 + LIFETIME, 2).await.unwrap(), 2);
    assert_eq!(
        s.purge_decoy_enrolments(T0 + LIFETIME, 10).await.unwrap(),
        1
    );
    assert_eq!(
        s.purge_decoy_enrolments(T0 + LIFETIME, 10).await.unwrap(),
        0
    );
    for d in &decoys {
        assert_eq!(s.enrolment(d.id).await.unwrap(), None);
        assert_eq!(
            s.poll_enrolment(d.id, 5, T0 + LIFETIME).await.unwrap(),
            EnrolmentPoll::Closed
        );
    }
    assert!(s.enrolment(live.id).await.unwrap().is_some());
    assert!(s.enrolment(real.id).await.unwrap().is_some());
}

/// At the device cap (active authenticators plus approved enrolments) a new
/// enrolment is refused.
pub async fn the_device_cap_refuses_an_enrolment(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    activated(s, &anna, T0).await;
    activated(s, &anna, T0).await;
    let asked = new_device(T0);
    let request = new_device_request(anna.id, &asked);
    assert_eq!(
        s.start_enrolment(asked.clone(), Some(request.clone()), 2, 3, T0)
            .await
            .unwrap(),
        StartEnrolmentResult::DeviceLimitReached
    );
    assert_eq!(s.enrolment(asked.id).await.unwrap(), None);
    assert_eq!(s.request(request.envelope.request_id).await.unwrap(), None);
}

/// Approving the new-device request starts the wait (announced); the new
/// device polls as waiting until the wait ends, then is activated with the
/// enrolment's id and keys, once.
pub async fn an_approved_enrolment_activates_only_after_its_wait(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let phone = activated(s, &anna, T0).await;
    let enrolment = start_real_enrolment(s, &anna, T0).await;
    let approved_at = T0 + 1_000;
    decided(
        s,
        &request_of(&enrolment, anna.id),
        &phone,
        Outcome::Approve,
        1,
        approved_at,
    )
    .await;
    let waiting = Enrolment {
        state: EnrolmentStoredState::Waiting,
        usable_at_ms: Some(approved_at + HOUR),
        ..enrolment.clone()
    };
    assert_eq!(
        s.enrolment(enrolment.id).await.unwrap(),
        Some(waiting.clone())
    );
    assert_eq!(
        s.poll_enrolment(enrolment.id, 5, approved_at + HOUR - 1)
            .await
            .unwrap(),
        EnrolmentPoll::Waiting(waiting)
    );
    let usable = approved_at + HOUR;
    let new = Authenticator {
        id: enrolment.id,
        identity_id: anna.id,
        device_public_key: enrolment.device_public_key.clone(),
        pin_public_key: enrolment.pin_public_key.clone(),
        state: AuthenticatorState::Active,
        failed_pin_count: 0,
        last_counter: 0,
        activated_at_ms: usable,
    };
    assert_eq!(
        s.poll_enrolment(enrolment.id, 5, usable).await.unwrap(),
        EnrolmentPoll::Activated(new.clone())
    );
    assert_eq!(
        s.poll_enrolment(enrolment.id, 5, usable + 1).await.unwrap(),
        EnrolmentPoll::Activated(new.clone())
    );
    assert_eq!(
        s.authenticators_of(anna.id).await.unwrap(),
        vec![authenticator(s, phone.id).await, new]
    );
    assert_eq!(
        feed_kinds(s, &phone, usable + 1).await,
        vec![
            SecurityEventKind::DeviceActivated,
            SecurityEventKind::NewDeviceRequested,
            SecurityEventKind::NewDeviceApproved,
            SecurityEventKind::DeviceActivated,
        ]
    );
}

/// A device activated meanwhile that fills the cap closes a waiting
/// enrolment when its wait ends.
pub async fn the_device_cap_is_checked_again_when_the_wait_ends(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let phone = activated(s, &anna, T0).await;
    let enrolment = start_real_enrolment(s, &anna, T0).await;
    decided(
        s,
        &request_of(&enrolment, anna.id),
        &phone,
        Outcome::Approve,
        1,
        T0,
    )
    .await;
    activated(s, &anna, T0 + 1).await;
    assert_eq!(
        s.poll_enrolment(enrolment.id, 2, T0 + HOUR).await.unwrap(),
        EnrolmentPoll::Closed
    );
    assert_eq!(
        s.enrolment(enrolment.id).await.unwrap().unwrap().state,
        EnrolmentStoredState::Cancelled
    );
    assert_eq!(s.authenticators_of(anna.id).await.unwrap().len(), 2);
}

/// A denied enrolment, and one whose request expired undecided, is closed.
pub async fn a_refused_or_expired_enrolment_is_closed(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let phone = activated(s, &anna, T0).await;
    let denied = start_real_enrolment(s, &anna, T0).await;
    decided(
        s,
        &request_of(&denied, anna.id),
        &phone,
        Outcome::Deny,
        1,
        T0 + 1,
    )
    .await;
    assert_eq!(
        s.enrolment(denied.id).await.unwrap().unwrap().state,
        EnrolmentStoredState::Cancelled
    );
    assert_eq!(
        s.poll_enrolment(denied.id, 5, T0 + 2).await.unwrap(),
        EnrolmentPoll::Closed
    );
    assert!(
        feed_kinds(s, &phone, T0 + 2)
            .await
            .contains(&SecurityEventKind::NewDeviceCancelled)
    );
    let lapsed = start_real_enrolment(s, &anna, T0 + 3).await;
    assert_eq!(
        s.poll_enrolment(lapsed.id, 5, lapsed.expires_at_ms)
            .await
            .unwrap(),
        EnrolmentPoll::Closed
    );
    assert_eq!(
        s.enrolment(lapsed.id).await.unwrap().unwrap().state,
        EnrolmentStoredState::Cancelled
    );
}

/// An existing device cancels a live enrolment of its own identity (and its
/// pending request), announced; another identity's device, an unknown
/// device or enrolment gets `Unknown`, an enrolment over gets `Closed`.
pub async fn an_existing_device_cancels_a_live_enrolment_of_its_own_identity_only(
    store: FreshStore,
) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let bo = identity(s, BO).await;
    let phone = activated(s, &anna, T0).await;
    let bos_phone = activated(s, &bo, T0).await;
    let enrolment = start_real_enrolment(s, &anna, T0).await;
    let request_id = enrolment.request_id.unwrap();
    assert_eq!(
        s.cancel_enrolment(bos_phone.id, enrolment.id, T0 + 1)
            .await
            .unwrap(),
        CancelEnrolmentResult::Unknown
    );
    assert_eq!(
        s.cancel_enrolment(AuthenticatorId::random(), enrolment.id, T0 + 1)
            .await
            .unwrap(),
        CancelEnrolmentResult::Unknown
    );
    assert_eq!(
        s.cancel_enrolment(phone.id, AuthenticatorId::random(), T0 + 1)
            .await
            .unwrap(),
        CancelEnrolmentResult::Unknown
    );
    assert_eq!(
        s.cancel_enrolment(phone.id, enrolment.id, T0 + 1)
            .await
            .unwrap(),
        CancelEnrolmentResult::Cancelled(Some(request_id))
    );
    assert_eq!(status(s, request_id).await, RequestStatus::Cancelled);
    assert_eq!(
        s.cancel_enrolment(phone.id, enrolment.id, T0 + 2)
            .await
            .unwrap(),
        CancelEnrolmentResult::Closed
    );
    assert_eq!(
        s.poll_enrolment(enrolment.id, 5, T0 + 2).await.unwrap(),
        EnrolmentPoll::Closed
    );
    // During the wait the request is decided already: nothing else to cancel.
    let waiting = start_real_enrolment(s, &anna, T0 + 3).await;
    decided(
        s,
        &request_of(&waiting, anna.id),
        &phone,
        Outcome::Approve,
        1,
        T0 + 4,
    )
    .await;
    assert_eq!(
        s.cancel_enrolment(phone.id, waiting.id, T0 + 5)
            .await
            .unwrap(),
        CancelEnrolmentResult::Cancelled(None)
    );
    assert_eq!(
        s.poll_enrolment(waiting.id, 5, T0 + 5 + HOUR)
            .await
            .unwrap(),
        EnrolmentPoll::Closed
    );
    let cancels = feed_kinds(s, &phone, T0 + 6)
        .await
        .into_iter()
        .filter(|k| *k == SecurityEventKind::NewDeviceCancelled)
        .count();
    assert_eq!(cancels, 2);
}

// ---------------------------------------------------------------- self-service changes

/// A phone change of `identity` to [`NEW_PHONE`] and its first login request.
fn phone_change(identity: &Identity, now: u64, gap_ms: u64) -> (StoredChange, StoredRequest) {
    change_of(
        identity,
        ChangeKind::Contact(ContactChannel::Phone),
        NEW_PHONE,
        now,
        gap_ms,
    )
}

fn change_of(
    identity: &Identity,
    kind: ChangeKind,
    new_value: &str,
    now: u64,
    gap_ms: u64,
) -> (StoredChange, StoredRequest) {
    let request = self_service_login(identity.id, now);
    let change = StoredChange {
        id: ChangeId::random(),
        identity_id: identity.id,
        kind,
        new_value: new_value.to_owned(),
        state: ChangeState::AwaitingFirstLogin,
        gap_ms,
        created_at_ms: now,
        first_request_id: request.envelope.request_id,
        first_expires_at_ms: request.envelope.expires_at_ms,
        first_login_at_ms: None,
        earliest_second_login_at_ms: None,
        second_request_id: None,
        second_expires_at_ms: None,
        failure: None,
    };
    (change, request)
}

async fn started_change(
    s: &dyn Store,
    identity: &Identity,
    now: u64,
) -> (StoredChange, StoredRequest) {
    let (change, first) = phone_change(identity, now, HOUR);
    assert_eq!(
        s.start_change(change.clone(), first.clone(), BIG, now)
            .await
            .unwrap(),
        StartChangeResult::Created
    );
    (change, first)
}

async fn change_state(s: &dyn Store, id: ChangeId) -> ChangeState {
    s.change(id).await.unwrap().expect("change stored").0.state
}

/// A contact change is stored with its first login request, and announced
/// to the old contact only: the new one is told after the first login.
pub async fn a_contact_change_starts_with_its_first_login_and_tells_only_the_old_contact(
    store: FreshStore,
) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let (change, first) = started_change(s, &anna, T0).await;
    assert_eq!(s.change(change.id).await.unwrap(), Some((change, anna)));
    assert_eq!(
        s.request(first.envelope.request_id).await.unwrap(),
        Some(first)
    );
    let deliveries = claim_all(s, T0).await;
    assert_eq!(
        addresses_of(&deliveries, SecurityEventKind::ContactChangeStarted),
        vec![set(&[ANNA_PHONE, ANNA_EMAIL])]
    );
    assert_eq!(s.change(ChangeId::random()).await.unwrap(), None);
}

/// The open changes of an identity are listed oldest first, of every kind;
/// a replaced one and another identity's are not.
pub async fn an_identity_s_open_changes_are_listed_oldest_first_without_closed_ones(
    store: FreshStore,
) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let bo = identity(s, BO).await;
    let (replaced, _) = started_change(s, &anna, T0).await;
    let (user_id, first) = change_of(&anna, ChangeKind::UserId, "Anna#1980new", T0 + 1, HOUR);
    assert_eq!(
        s.start_change(user_id.clone(), first, BIG, T0 + 1)
            .await
            .unwrap(),
        StartChangeResult::Created
    );
    let (phone, _) = started_change(s, &anna, T0 + 2).await;
    started_change(s, &bo, T0 + 3).await;
    assert_eq!(change_state(s, replaced.id).await, ChangeState::Cancelled);
    let listed: Vec<ChangeId> = s
        .open_changes(anna.id)
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(listed, vec![user_id.id, phone.id]);
    assert!(
        s.open_changes(IdentityId([9; 16]))
            .await
            .unwrap()
            .is_empty()
    );
}

/// A change for an unknown or blocked identity, or one at the pending cap,
/// is refused with the reason and stores nothing.
pub async fn a_change_is_refused_for_unknown_blocked_or_busy_identities(store: FreshStore) {
    let s = &*store;
    let ghost = person("Ghost#1900z");
    let (change, first) = phone_change(&ghost, T0, HOUR);
    assert_eq!(
        s.start_change(change.clone(), first, BIG, T0)
            .await
            .unwrap(),
        StartChangeResult::UnknownIdentity
    );
    assert_eq!(s.change(change.id).await.unwrap(), None);
    let anna = identity(s, ANNA).await;
    let bank = registered(s, "Danske Bank").await;
    created(s, login(anna.id, &bank, T0)).await;
    let (change, first) = phone_change(&anna, T0, HOUR);
    assert_eq!(
        s.start_change(change.clone(), first.clone(), 1, T0)
            .await
            .unwrap(),
        StartChangeResult::TooManyPending
    );
    assert_eq!(s.change(change.id).await.unwrap(), None);
    assert_eq!(s.request(first.envelope.request_id).await.unwrap(), None);
    s.set_blocked(anna.id, true, T0).await.unwrap();
    assert_eq!(
        s.start_change(change, first, BIG, T0).await.unwrap(),
        StartChangeResult::Blocked
    );
}

/// A new start supersedes an open change of the same family still waiting
/// for its first login (cancelled with its request); another family is
/// left alone.
pub async fn a_new_start_supersedes_a_change_awaiting_its_first_login(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let (old, old_first) = started_change(s, &anna, T0).await;
    let (user_id, user_id_first) = change_of(&anna, ChangeKind::UserId, "Bente#1960y", T0 + 1, 0);
    assert_eq!(
        s.start_change(user_id.clone(), user_id_first, BIG, T0 + 1)
            .await
            .unwrap(),
        StartChangeResult::Created
    );
    let (email, email_first) = change_of(
        &anna,
        ChangeKind::Contact(ContactChannel::Email),
        "anna.new@example.dk",
        T0 + 2,
        HOUR,
    );
    assert_eq!(
        s.start_change(email.clone(), email_first, BIG, T0 + 2)
            .await
            .unwrap(),
        StartChangeResult::Created
    );
    assert_eq!(change_state(s, old.id).await, ChangeState::Cancelled);
    assert_eq!(
        status(s, old_first.envelope.request_id).await,
        RequestStatus::Cancelled
    );
    assert_eq!(
        change_state(s, email.id).await,
        ChangeState::AwaitingFirstLogin
    );
    assert_eq!(
        change_state(s, user_id.id).await,
        ChangeState::AwaitingFirstLogin
    );
}

/// Once a change's first login was approved, a new start of the same
/// family is refused while it is open.
pub async fn a_change_past_its_first_login_blocks_a_new_start(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let phone = activated(s, &anna, T0).await;
    let (change, first) = started_change(s, &anna, T0).await;
    decided(s, &first, &phone, Outcome::Approve, 1, T0 + 1).await;
    let (next, next_first) = phone_change(&anna, T0 + 2, HOUR);
    assert_eq!(
        s.start_change(next.clone(), next_first, BIG, T0 + 2)
            .await
            .unwrap(),
        StartChangeResult::ChangePending
    );
    assert_eq!(s.change(next.id).await.unwrap(), None);
    assert_eq!(
        change_state(s, change.id).await,
        ChangeState::WaitingSecondLogin
    );
}

/// After the first login the second may be asked for only once the gap has
/// passed: earlier is `TooEarly` (and notified); then the second login
/// request is stored, asked again it is `Existing`, and its approval
/// completes the change, telling the old and the new contact.
pub async fn the_second_login_is_too_early_before_the_gap_and_completes_the_change_after_it(
    store: FreshStore,
) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let phone = activated(s, &anna, T0).await;
    let (change, first) = started_change(s, &anna, T0).await;
    let t1 = T0 + 10_000;
    decided(s, &first, &phone, Outcome::Approve, 1, t1).await;
    let (moved, _) = s.change(change.id).await.unwrap().unwrap();
    assert_eq!(moved.state, ChangeState::WaitingSecondLogin);
    assert_eq!(moved.first_login_at_ms, Some(t1));
    let earliest = t1 + HOUR;
    assert_eq!(moved.earliest_second_login_at_ms, Some(earliest));
    let early = self_service_login(anna.id, earliest - 1);
    assert_eq!(
        s.confirm_change(change.id, early.clone(), BIG, earliest - 1)
            .await
            .unwrap(),
        ConfirmChangeResult::TooEarly(earliest)
    );
    assert_eq!(s.request(early.envelope.request_id).await.unwrap(), None);
    let second = self_service_login(anna.id, earliest);
    assert_eq!(
        s.confirm_change(change.id, second.clone(), BIG, earliest)
            .await
            .unwrap(),
        ConfirmChangeResult::Created
    );
    let (asked, _) = s.change(change.id).await.unwrap().unwrap();
    assert_eq!(asked.state, ChangeState::AwaitingSecondLogin);
    assert_eq!(asked.second_request_id, Some(second.envelope.request_id));
    assert_eq!(
        s.confirm_change(
            change.id,
            self_service_login(anna.id, earliest + 1),
            BIG,
            earliest + 1
        )
        .await
        .unwrap(),
        ConfirmChangeResult::Existing {
            request_id: second.envelope.request_id,
            expires_at_ms: second.envelope.expires_at_ms,
            binding_code: second.binding_code.clone(),
        }
    );
    assert!(
        second.binding_code.is_some(),
        "the portal can show it again"
    );
    decided(s, &second, &phone, Outcome::Approve, 2, earliest + 2).await;
    let (done, anna_now) = s.change(change.id).await.unwrap().unwrap();
    assert_eq!(done.state, ChangeState::Completed);
    assert_eq!(anna_now.phone.as_deref(), Some(NEW_PHONE));
    let deliveries = claim_all(s, earliest + 3).await;
    assert_eq!(
        addresses_of(&deliveries, SecurityEventKind::ContactChangeCompleted),
        vec![set(&[ANNA_PHONE, ANNA_EMAIL, NEW_PHONE])]
    );
    // Start, first login approved, the early attempt: each told.
    assert_eq!(
        addresses_of(&deliveries, SecurityEventKind::ContactChangeStarted).len(),
        3
    );
}

/// Confirming answers `Unknown` for an unknown change, one whose first login
/// is not approved, or a request of another identity; `Blocked` for a
/// blocked identity; `Closed` with the state for a change that is over.
pub async fn confirming_refuses_unknown_unapproved_foreign_blocked_and_closed_changes(
    store: FreshStore,
) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let bo = identity(s, BO).await;
    let phone = activated(s, &anna, T0).await;
    let late = T0 + 2 * HOUR;
    let confirm = |id: ChangeId, who: IdentityId| {
        s.confirm_change(id, self_service_login(who, late), BIG, late)
    };
    assert_eq!(
        confirm(ChangeId::random(), anna.id).await.unwrap(),
        ConfirmChangeResult::Unknown
    );
    let (unapproved, _) = started_change(s, &anna, T0).await;
    assert_eq!(
        confirm(unapproved.id, anna.id).await.unwrap(),
        ConfirmChangeResult::Unknown
    );
    let (change, first) = started_change(s, &anna, T0 + 1).await;
    decided(s, &first, &phone, Outcome::Approve, 1, T0 + 2).await;
    assert_eq!(
        confirm(change.id, bo.id).await.unwrap(),
        ConfirmChangeResult::Unknown
    );
    assert_eq!(
        s.cancel_change(change.id, anna.id, phone.id, T0 + 3)
            .await
            .unwrap(),
        CancelChangeResult::Cancelled(None)
    );
    assert_eq!(
        confirm(change.id, anna.id).await.unwrap(),
        ConfirmChangeResult::Closed(ChangeState::Cancelled)
    );
    s.set_blocked(anna.id, true, T0 + 4).await.unwrap();
    assert_eq!(
        confirm(change.id, anna.id).await.unwrap(),
        ConfirmChangeResult::Blocked
    );
}

/// Denying or reporting a change's login as fraud cancels the change.
pub async fn denying_a_change_s_login_cancels_the_change(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let phone = activated(s, &anna, T0).await;
    let (denied, first) = started_change(s, &anna, T0).await;
    decided(s, &first, &phone, Outcome::Deny, 1, T0 + 1).await;
    assert_eq!(change_state(s, denied.id).await, ChangeState::Cancelled);
    let (reported, first) = started_change(s, &anna, T0 + 2).await;
    decided(s, &first, &phone, Outcome::ReportFraud, 2, T0 + 3).await;
    assert_eq!(change_state(s, reported.id).await, ChangeState::Cancelled);
    assert_eq!(
        s.identity(anna.id).await.unwrap().unwrap().phone.as_deref(),
        Some(ANNA_PHONE)
    );
}

fn on_call() -> eid_protocol::CallContext {
    eid_protocol::CallContext {
        call: eid_protocol::Signal::On,
        ..eid_protocol::CallContext::UNKNOWN
    }
}

/// The call policy's stop (docs/protocol.md, "Call context"): the request is
/// cancelled instead of approved, the phone's context is kept for the service
/// provider, and the person is told on every channel.
pub async fn an_approval_stopped_on_a_call_cancels_the_request_keeps_the_context_and_tells_the_person(
    store: FreshStore,
) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let phone = activated(s, &anna, T0).await;
    let bank = registered(s, "Danske Bank").await;
    let request = created(s, login(anna.id, &bank, T0)).await;
    let id = request.envelope.request_id;
    assert_eq!(s.call_stop(id).await.unwrap(), None);
    assert_eq!(
        s.stop_on_call(id, phone.id, on_call(), T0 + 1)
            .await
            .unwrap(),
        StopResult::Stopped
    );
    assert_eq!(status(s, id).await, RequestStatus::Cancelled);
    assert_eq!(s.request(id).await.unwrap().unwrap().decision, None);
    assert_eq!(
        s.call_stop(id).await.unwrap(),
        Some(CallStop {
            authenticator_id: phone.id,
            call_context: on_call(),
            stopped_at_ms: T0 + 1,
        })
    );
    let events = feed(s, &phone, T0 + 2).await;
    assert!(events.contains(&(
        SecurityEventKind::ApprovalStoppedOnCall,
        Some("Danske Bank".to_owned())
    )));
    // Critical: told by SMS and e-mail too.
    let deliveries = claim_all(s, T0 + 2).await;
    assert!(
        deliveries
            .iter()
            .any(|d| d.event.kind == SecurityEventKind::ApprovalStoppedOnCall)
    );
    // The same approval again cannot win afterwards.
    let record = decision(&request, &phone, Outcome::Approve, 1, T0 + 3);
    assert_eq!(
        s.decide(id, record, true, T0 + 3).await.unwrap(),
        DecideResult::Cancelled
    );
}

/// A stop on a decided, cancelled or expired request changes nothing and
/// tells nobody.
pub async fn a_stop_on_a_request_no_longer_pending_changes_nothing(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let phone = activated(s, &anna, T0).await;
    let bank = registered(s, "Danske Bank").await;
    let decided_one = created(s, login(anna.id, &bank, T0)).await;
    decided(s, &decided_one, &phone, Outcome::Deny, 1, T0 + 1).await;
    let expired = created(s, login(anna.id, &bank, T0)).await;
    for (r, at) in [
        (&decided_one, T0 + 2),
        (&expired, expired.envelope.expires_at_ms),
    ] {
        let id = r.envelope.request_id;
        assert_eq!(
            s.stop_on_call(id, phone.id, on_call(), at).await.unwrap(),
            StopResult::NotPending
        );
        assert_eq!(s.call_stop(id).await.unwrap(), None);
    }
    assert_eq!(
        status(s, decided_one.envelope.request_id).await,
        RequestStatus::Denied
    );
    assert!(
        !feed_kinds(s, &phone, T0 + 3)
            .await
            .contains(&SecurityEventKind::ApprovalStoppedOnCall)
    );
}

/// What hangs on a stopped request moves as on a refusal: the contact
/// change of a self-service login is cancelled, a new device is not added.
pub async fn a_stopped_self_service_login_cancels_its_change_and_a_stopped_new_device_its_enrolment(
    store: FreshStore,
) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let phone = activated(s, &anna, T0).await;
    let (change, first) = started_change(s, &anna, T0).await;
    assert_eq!(
        s.stop_on_call(first.envelope.request_id, phone.id, on_call(), T0 + 1)
            .await
            .unwrap(),
        StopResult::Stopped
    );
    assert_eq!(change_state(s, change.id).await, ChangeState::Cancelled);
    let enrolment = start_real_enrolment(s, &anna, T0 + 2).await;
    let request = request_of(&enrolment, anna.id);
    assert_eq!(
        s.stop_on_call(request.envelope.request_id, phone.id, on_call(), T0 + 3)
            .await
            .unwrap(),
        StopResult::Stopped
    );
    assert_eq!(
        s.enrolment(enrolment.id).await.unwrap().unwrap().state,
        EnrolmentStoredState::Cancelled
    );
}

/// An accepted decision keeps the call policy's verdict beside its receipt.
pub async fn a_flagged_decision_keeps_its_verdict_and_its_signed_context(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let phone = activated(s, &anna, T0).await;
    let bank = registered(s, "Danske Bank").await;
    let request = created(s, login(anna.id, &bank, T0)).await;
    let mut record = decision(&request, &phone, Outcome::Approve, 1, T0 + 1);
    record.call_verdict = eid_protocol::CallVerdict::Flagged;
    record.receipt.receipt.call_context = Some(on_call());
    assert_eq!(
        s.decide(request.envelope.request_id, record.clone(), true, T0 + 1)
            .await
            .unwrap(),
        DecideResult::Accepted(record.clone())
    );
    let stored = s
        .request(request.envelope.request_id)
        .await
        .unwrap()
        .unwrap()
        .decision
        .unwrap();
    assert_eq!(stored, record);
}

/// The app cancels an open change of its own identity with the pending
/// login request; another identity's or an unknown change is `Unknown`, a
/// change over is `Closed`.
pub async fn a_change_is_cancelled_from_the_app_only_by_its_own_identity(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let bo = identity(s, BO).await;
    let phone = activated(s, &anna, T0).await;
    let bos_phone = activated(s, &bo, T0).await;
    let (change, first) = started_change(s, &anna, T0).await;
    assert_eq!(
        s.cancel_change(change.id, bo.id, bos_phone.id, T0 + 1)
            .await
            .unwrap(),
        CancelChangeResult::Unknown
    );
    assert_eq!(
        s.cancel_change(ChangeId::random(), anna.id, phone.id, T0 + 1)
            .await
            .unwrap(),
        CancelChangeResult::Unknown
    );
    assert_eq!(
        s.cancel_change(change.id, anna.id, phone.id, T0 + 1)
            .await
            .unwrap(),
        CancelChangeResult::Cancelled(Some(first.envelope.request_id))
    );
    assert_eq!(
        status(s, first.envelope.request_id).await,
        RequestStatus::Cancelled
    );
    assert_eq!(
        s.cancel_change(change.id, anna.id, phone.id, T0 + 2)
            .await
            .unwrap(),
        CancelChangeResult::Closed(ChangeState::Cancelled)
    );
    let cancelled = feed(s, &phone, T0 + 3)
        .await
        .into_iter()
        .filter(|(k, _)| *k == SecurityEventKind::ContactChangeCancelled)
        .count();
    assert_eq!(cancelled, 1);
}

/// Expiry marks the changes whose first login lapsed or that were not
/// completed within a day of it, at most `limit` per call, each once.
pub async fn expiry_marks_only_changes_past_their_deadline_within_the_limit(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let bo = identity(s, BO).await;
    let phone = activated(s, &anna, T0).await;
    let (lapsed, _) = started_change(s, &anna, T0).await;
    let (fresh, _) = started_change(s, &bo, T0 + LIFETIME - 1).await;
    assert_eq!(s.expire_changes(T0 + LIFETIME - 1, 10).await.unwrap(), 0);
    assert_eq!(s.expire_changes(T0 + LIFETIME, 10).await.unwrap(), 1);
    assert_eq!(change_state(s, lapsed.id).await, ChangeState::Expired);
    assert_eq!(
        change_state(s, fresh.id).await,
        ChangeState::AwaitingFirstLogin
    );
    assert_eq!(s.expire_changes(T0 + LIFETIME, 10).await.unwrap(), 0);
    // Approved at t1 but never completed: expired a day later.
    let t1 = T0 + 2 * LIFETIME;
    let (slow, first) = started_change(s, &anna, t1 - 1).await;
    decided(s, &first, &phone, Outcome::Approve, 1, t1).await;
    let day_later = t1 + CHANGE_MAX_AGE_MS;
    // Only Bo's unapproved change is due by then.
    assert_eq!(s.expire_changes(day_later - 1, 10).await.unwrap(), 1);
    assert_eq!(change_state(s, fresh.id).await, ChangeState::Expired);
    assert_eq!(
        change_state(s, slow.id).await,
        ChangeState::WaitingSecondLogin
    );
    assert_eq!(s.expire_changes(day_later, 10).await.unwrap(), 1);
    assert_eq!(change_state(s, slow.id).await, ChangeState::Expired);
    // The limit bounds one call.
    let (a, _) = started_change(s, &anna, day_later).await;
    let (b, _) = started_change(s, &bo, day_later).await;
    let after = day_later + LIFETIME;
    assert_eq!(s.expire_changes(after, 1).await.unwrap(), 1);
    assert_eq!(s.expire_changes(after, 1).await.unwrap(), 1);
    assert_eq!(s.expire_changes(after, 1).await.unwrap(), 0);
    assert_eq!(change_state(s, a.id).await, ChangeState::Expired);
    assert_eq!(change_state(s, b.id).await, ChangeState::Expired);
    let expired_events = feed_kinds(s, &phone, after)
        .await
        .into_iter()
        .filter(|k| *k == SecurityEventKind::ContactChangeCancelled)
        .count();
    assert_eq!(expired_events, 3);
}

/// Approving a user-ID change's login applies the new user ID; a user ID
/// taken meanwhile fails the change with `user_id_taken` and changes nothing.
pub async fn a_user_id_change_is_applied_by_its_approval_unless_taken_meanwhile(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let phone = activated(s, &anna, T0).await;
    let (change, first) = change_of(&anna, ChangeKind::UserId, "Bente#1960y", T0, 0);
    assert_eq!(
        s.start_change(change.clone(), first.clone(), BIG, T0)
            .await
            .unwrap(),
        StartChangeResult::Created
    );
    decided(s, &first, &phone, Outcome::Approve, 1, T0 + 1).await;
    let (done, renamed) = s.change(change.id).await.unwrap().unwrap();
    assert_eq!(done.state, ChangeState::Completed);
    assert_eq!(renamed.user_id, "Bente#1960y");
    assert_eq!(renamed.user_id_folded, "bente#1960y");
    assert_eq!(s.identity_by_user_id("anna#1980x").await.unwrap(), None);
    assert!(
        feed_kinds(s, &phone, T0 + 2)
            .await
            .contains(&SecurityEventKind::UserIdChanged)
    );

    let (taken, first) = change_of(&anna, ChangeKind::UserId, "Carla#1970w", T0 + 3, 0);
    s.start_change(taken.clone(), first.clone(), BIG, T0 + 3)
        .await
        .unwrap();
    identity(s, "Carla#1970w").await;
    decided(s, &first, &phone, Outcome::Approve, 2, T0 + 4).await;
    let (failed, unchanged) = s.change(taken.id).await.unwrap().unwrap();
    assert_eq!(failed.state, ChangeState::Failed);
    assert_eq!(
        failed.failure.map(|(code, _)| code),
        Some(ErrorCode::UserIdTaken)
    );
    assert_eq!(unchanged.user_id, "Bente#1960y");
}

// ---------------------------------------------------------------- API keys and webhooks

/// A registered provider's key is found with its provider; a rotation adds
/// a key and ends the older usable ones at the grace time (an earlier end
/// is kept); a revocation ends one key at once, and only once.
pub async fn a_rotation_ends_the_older_keys_at_the_grace_time_and_a_revocation_is_once(
    store: FreshStore,
) {
    let s = &*store;
    let bank = registered(s, "Danske Bank").await;
    let first = s
        .provider_by_api_key(bank.api_key_sha256)
        .await
        .unwrap()
        .expect("the registration's key");
    assert_eq!(first.provider, bank);
    assert_eq!(first.key.state_at(T0), ApiKeyState::Active);
    assert_eq!(s.provider_by_api_key(random_array()).await.unwrap(), None);

    let rotate = |hash: [u8; 32], grace: u64| AdminAction::RotateApiKey {
        service_provider_id: bank.id,
        key_sha256: hash,
        grace_until_ms: grace,
    };
    let second: [u8; 32] = random_array();
    assert!(matches!(
        s.admin_action(
            audit_by(None, AuditAction::RotateApiKey, T0),
            rotate(second, T0 + HOUR)
        )
        .await
        .unwrap(),
        AdminActionResult::Done { .. }
    ));
    let third: [u8; 32] = random_array();
    assert!(matches!(
        s.admin_action(
            audit_by(None, AuditAction::RotateApiKey, T0 + 1),
            rotate(third, T0 + 2 * HOUR)
        )
        .await
        .unwrap(),
        AdminActionResult::Done { .. }
    ));
    let keys = s.api_keys(bank.id).await.unwrap();
    assert_eq!(keys.len(), 3);
    assert!(
        keys[0].id < keys[1].id && keys[1].id < keys[2].id,
        "oldest first"
    );
    assert_eq!(
        keys[0].expires_at_ms,
        Some(T0 + HOUR),
        "the earlier end kept"
    );
    assert_eq!(keys[1].expires_at_ms, Some(T0 + 2 * HOUR));
    assert_eq!(keys[2].expires_at_ms, None);
    assert!(keys[0].usable_at(T0 + HOUR - 1) && !keys[0].usable_at(T0 + HOUR));
    assert_eq!(keys[0].state_at(T0 + HOUR), ApiKeyState::Expired);
    assert_eq!(keys[1].state_at(T0 + HOUR), ApiKeyState::RotatingOut);
    let found = s.provider_by_api_key(third).await.unwrap().unwrap();
    assert_eq!((found.provider.id, found.key.id), (bank.id, keys[2].id));

    let revoke = |key_id| AdminAction::RevokeApiKey {
        service_provider_id: bank.id,
        key_id,
    };
    let audit = audit_by(None, AuditAction::RevokeApiKey, T0 + 5);
    assert!(matches!(
        s.admin_action(audit.clone(), revoke(keys[1].id))
            .await
            .unwrap(),
        AdminActionResult::Done { .. }
    ));
    assert_eq!(
        s.admin_action(audit.clone(), revoke(keys[1].id))
            .await
            .unwrap(),
        AdminActionResult::UnknownApiKey
    );
    assert_eq!(
        s.admin_action(audit.clone(), revoke(u64::MAX))
            .await
            .unwrap(),
        AdminActionResult::UnknownApiKey
    );
    let other = registered(s, "Nordea").await;
    assert_eq!(
        s.admin_action(
            audit.clone(),
            AdminAction::RevokeApiKey {
                service_provider_id: other.id,
                key_id: keys[2].id
            }
        )
        .await
        .unwrap(),
        AdminActionResult::UnknownApiKey,
        "another provider's key"
    );
    let revoked = s.provider_by_api_key(second).await.unwrap().unwrap().key;
    assert_eq!(revoked.revoked_at_ms, Some(T0 + 5));
    assert_eq!(revoked.state_at(T0 + 5), ApiKeyState::Revoked);
    assert_eq!(
        s.admin_action(
            audit_by(None, AuditAction::RotateApiKey, T0 + 6),
            AdminAction::RotateApiKey {
                service_provider_id: ServiceProviderId::random(),
                key_sha256: random_array(),
                grace_until_ms: T0 + HOUR,
            }
        )
        .await
        .unwrap(),
        AdminActionResult::UnknownProvider
    );
    assert_eq!(s.api_keys(bank.id).await.unwrap().len(), 3);
    let audited: Vec<String> = s
        .audit_entries(None, None, 50)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.service_provider_id == Some(bank.id))
        .map(|e| e.action)
        .collect();
    assert_eq!(
        audited,
        vec!["revoke_api_key", "rotate_api_key", "rotate_api_key"]
    );
}

fn webhook_of(sp: &ServiceProvider, url: &str, now: u64) -> Webhook {
    Webhook {
        service_provider_id: sp.id,
        url: url.to_owned(),
        secret: zeroize::Zeroizing::new(random_array::<32>().to_vec()),
        created_at_ms: now,
    }
}

async fn set_webhook(s: &dyn Store, sp: &ServiceProvider, webhook: Option<Webhook>, now: u64) {
    assert!(matches!(
        s.admin_action(
            audit_by(None, AuditAction::SetWebhook, now),
            AdminAction::SetWebhook {
                service_provider_id: sp.id,
                webhook
            }
        )
        .await
        .unwrap(),
        AdminActionResult::Done { .. }
    ));
}

/// A webhook is set, replaced (new URL and secret) and removed, each with
/// its audit row; an unknown provider gets none.
pub async fn a_webhook_is_set_replaced_and_removed_with_its_audit_row(store: FreshStore) {
    let s = &*store;
    let bank = registered(s, "Danske Bank").await;
    assert_eq!(s.webhook(bank.id).await.unwrap(), None);
    let first = webhook_of(&bank, "https://bank.example/a", T0);
    set_webhook(s, &bank, Some(first.clone()), T0).await;
    assert_eq!(s.webhook(bank.id).await.unwrap(), Some(first));
    let second = webhook_of(&bank, "https://bank.example/b", T0 + 1);
    set_webhook(s, &bank, Some(second.clone()), T0 + 1).await;
    assert_eq!(s.webhook(bank.id).await.unwrap(), Some(second));
    set_webhook(s, &bank, None, T0 + 2).await;
    assert_eq!(s.webhook(bank.id).await.unwrap(), None);
    let nobody = ServiceProvider {
        id: ServiceProviderId::random(),
        ..bank.clone()
    };
    assert_eq!(
        s.admin_action(
            audit_by(None, AuditAction::SetWebhook, T0 + 3),
            AdminAction::SetWebhook {
                service_provider_id: nobody.id,
                webhook: Some(webhook_of(&nobody, "https://x.example/", T0 + 3)),
            }
        )
        .await
        .unwrap(),
        AdminActionResult::UnknownProvider
    );
    let audited = s
        .audit_entries(None, None, 50)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "set_webhook")
        .count();
    assert_eq!(audited, 3);
}

/// A decision, a provider's cancel, a cancel after wrong binding codes (the
/// extra wrong code after it queues nothing) and a block's cancel each
/// queue one delivery for a provider with a webhook, in their own transaction; a
/// provider without one gets none.
pub async fn decisions_and_cancels_queue_a_webhook_delivery_only_with_a_webhook(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let phone = activated(s, &anna, T0).await;
    let bank = registered(s, "Danske Bank").await;
    let quiet = registered(s, "Nordea").await;
    let hook = webhook_of(&bank, "https://bank.example/hook", T0);
    set_webhook(s, &bank, Some(hook.clone()), T0).await;

    let silent = created(s, login(anna.id, &quiet, T0)).await;
    decided(s, &silent, &phone, Outcome::Approve, 1, T0 + 1).await;
    assert!(
        s.claim_webhook_deliveries(T0 + 10, 10, LEASE, 5)
            .await
            .unwrap()
            .is_empty(),
        "no webhook, no delivery"
    );

    let approved = created(s, login(anna.id, &bank, T0)).await;
    decided(s, &approved, &phone, Outcome::ReportFraud, 2, T0 + 2).await;
    let mine = created(s, login(anna.id, &bank, T0 + 3)).await;
    assert_eq!(
        s.cancel_request(mine.envelope.request_id, bank.id, T0 + 3)
            .await
            .unwrap(),
        CancelResult::Cancelled
    );
    // The fraud report holds Danske Bank's new requests for Anna: the
    // other cancels are seen through another provider with a webhook.
    let third = registered(s, "Jyske Bank").await;
    set_webhook(
        s,
        &third,
        Some(webhook_of(&third, "https://jyske.example/", T0)),
        T0,
    )
    .await;
    let guessed = created(s, login(anna.id, &third, T0 + 4)).await;
    for _ in 0..4 {
        s.record_binding_mismatch(guessed.envelope.request_id, 3, T0 + 4)
            .await
            .unwrap();
    }
    let blocked = created(s, login(anna.id, &third, T0 + 4)).await;
    s.set_blocked(anna.id, true, T0 + 5).await.unwrap().unwrap();

    let claimed = s
        .claim_webhook_deliveries(T0 + 10, 10, LEASE, 5)
        .await
        .unwrap();
    let mut got: Vec<(RequestId, RequestStatus, u64, String)> = claimed
        .iter()
        .map(|d| {
            (
                d.request_id,
                d.status,
                d.decided_at_ms,
                d.webhook.url.clone(),
            )
        })
        .collect();
    got.sort_by_key(|g| g.2);
    assert_eq!(
        got,
        vec![
            (
                approved.envelope.request_id,
                RequestStatus::FraudReported,
                T0 + 2,
                hook.url.clone()
            ),
            (
                mine.envelope.request_id,
                RequestStatus::Cancelled,
                T0 + 3,
                hook.url.clone()
            ),
            (
                guessed.envelope.request_id,
                RequestStatus::Cancelled,
                T0 + 4,
                "https://jyske.example/".to_owned()
            ),
            (
                blocked.envelope.request_id,
                RequestStatus::Cancelled,
                T0 + 5,
                "https://jyske.example/".to_owned()
            ),
        ]
    );
    assert!(claimed.iter().all(|d| d.attempts == 1));
    assert_eq!(claimed[0].webhook.secret, hook.secret);
}

/// Webhook deliveries are leased, retried at their time, bounded in
/// attempts, delivered once; a removed webhook's rows are dropped.
pub async fn webhook_deliveries_are_leased_retried_and_bounded_like_notifications(
    store: FreshStore,
) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let phone = activated(s, &anna, T0).await;
    let bank = registered(s, "Danske Bank").await;
    set_webhook(
        s,
        &bank,
        Some(webhook_of(&bank, "https://bank.example/", T0)),
        T0,
    )
    .await;
    let request = created(s, login(anna.id, &bank, T0)).await;
    decided(s, &request, &phone, Outcome::Approve, 1, T0 + 1).await;
    let claim = |now| s.claim_webhook_deliveries(now, 10, LEASE, 2);
    let d = claim(T0 + 1).await.unwrap().remove(0);
    assert!(claim(T0 + 1).await.unwrap().is_empty(), "leased");
    s.finish_webhook_delivery(
        d.id,
        DeliveryOutcome::Failed {
            error: "the receiver answered HTTP 500".into(),
            retry_at_ms: Some(T0 + 1_001),
        },
        T0 + 1,
    )
    .await
    .unwrap();
    assert!(claim(T0 + 1_000).await.unwrap().is_empty());
    let d = claim(T0 + 1_001).await.unwrap().remove(0);
    assert_eq!(d.attempts, 2);
    s.finish_webhook_delivery(
        d.id,
        DeliveryOutcome::Failed {
            error: "again".into(),
            retry_at_ms: Some(T0 + 2_000),
        },
        T0 + 1_001,
    )
    .await
    .unwrap();
    assert!(
        claim(T0 + HOUR).await.unwrap().is_empty(),
        "two attempts at most"
    );
    assert_eq!(
        s.claim_webhook_deliveries(T0 + HOUR, 10, LEASE, 3)
            .await
            .unwrap()
            .len(),
        1,
        "a dispatcher allowing more tries again"
    );

    // Delivered once; then a removed webhook drops what is queued.
    let next = created(s, login(anna.id, &bank, T0)).await;
    decided(s, &next, &phone, Outcome::Deny, 2, T0 + 2).await;
    let delivered = s
        .claim_webhook_deliveries(T0 + 2 * HOUR + 2 * LEASE, 10, LEASE, 10)
        .await
        .unwrap();
    assert_eq!(delivered.len(), 2);
    for d in &delivered {
        s.finish_webhook_delivery(d.id, DeliveryOutcome::Delivered, T0 + 3 * HOUR)
            .await
            .unwrap();
    }
    let last = created(s, login(anna.id, &bank, T0 + 3 * HOUR)).await;
    decided(s, &last, &phone, Outcome::Approve, 3, T0 + 3 * HOUR).await;
    set_webhook(s, &bank, None, T0 + 3 * HOUR).await;
    assert!(
        s.claim_webhook_deliveries(T0 + 4 * HOUR, 10, LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    set_webhook(
        s,
        &bank,
        Some(webhook_of(&bank, "https://bank.example/", T0)),
        T0,
    )
    .await;
    assert!(
        s.claim_webhook_deliveries(T0 + 5 * HOUR, 10, LEASE, 10)
            .await
            .unwrap()
            .is_empty(),
        "dropped rows stay dropped; delivered ones are not sent again"
    );
}

// ---------------------------------------------------------------- agents and audit

fn audit_by(agent: Option<&Agent>, action: AuditAction, now: u64) -> NewAudit {
    NewAudit {
        at_ms: now,
        agent_id: agent.map(|a| a.id),
        agent_name: agent.map_or_else(|| "bootstrap".to_owned(), |a| a.name.clone()),
        action,
        identity_id: None,
        service_provider_id: None,
        target_agent_id: None,
        reason: None,
        outcome: AuditOutcome::Done,
    }
}

fn new_agent(name: &str, role: AgentRole, now: u64) -> Agent {
    Agent {
        id: 0,
        name: name.to_owned(),
        role,
        token_sha256: random_array(),
        created_at_ms: now,
        revoked_at_ms: None,
    }
}

/// Creates an agent through [`Store::admin_action`]; the stored agent.
async fn agent(s: &dyn Store, name: &str, role: AgentRole, now: u64) -> Agent {
    let mut agent = new_agent(name, role, now);
    match s
        .admin_action(
            audit_by(None, AuditAction::CreateAgent, now),
            AdminAction::CreateAgent(agent.clone()),
        )
        .await
        .unwrap()
    {
        AdminActionResult::Done {
            agent_id: Some(id), ..
        } => agent.id = id,
        other => panic!("agent not created: {other:?}"),
    }
    agent
}

/// Agents are created, found by their token hash, listed oldest first and
/// revoked once; each change has its audit row.
pub async fn agents_are_created_found_by_token_listed_and_revoked_once(store: FreshStore) {
    let s = &*store;
    let bo = agent(s, "Bo Support", AgentRole::Support, T0).await;
    let cai = agent(s, "Cai Admin", AgentRole::Administrator, T0 + 1).await;
    assert_ne!(bo.id, cai.id);
    assert_eq!(
        s.agent_by_token(bo.token_sha256).await.unwrap(),
        Some(bo.clone())
    );
    assert_eq!(s.agent_by_token(random_array()).await.unwrap(), None);
    assert_eq!(s.agents().await.unwrap(), vec![bo.clone(), cai.clone()]);

    let revoke = |now| audit_by(Some(&cai), AuditAction::RevokeAgent, now);
    assert!(matches!(
        s.admin_action(revoke(T0 + 2), AdminAction::RevokeAgent(bo.id))
            .await
            .unwrap(),
        AdminActionResult::Done { .. }
    ));
    assert_eq!(
        s.admin_action(revoke(T0 + 3), AdminAction::RevokeAgent(bo.id))
            .await
            .unwrap(),
        AdminActionResult::UnknownAgent
    );
    assert_eq!(
        s.admin_action(revoke(T0 + 3), AdminAction::RevokeAgent(bo.id + 1000))
            .await
            .unwrap(),
        AdminActionResult::UnknownAgent
    );
    let found = s.agent_by_token(bo.token_sha256).await.unwrap().unwrap();
    assert_eq!(found.revoked_at_ms, Some(T0 + 2));

    let rows = s.audit_entries(None, None, 10).await.unwrap();
    let summary: Vec<(&str, Option<u64>, Option<u64>)> = rows
        .iter()
        .map(|r| (r.action.as_str(), r.agent_id, r.target_agent_id))
        .collect();
    assert_eq!(
        summary,
        [
            ("revoke_agent", Some(cai.id), Some(bo.id)),
            ("create_agent", None, Some(cai.id)),
            ("create_agent", None, Some(bo.id)),
        ],
        "the refused revocations wrote nothing"
    );
}

/// A block by an agent stores its audit row with the reason in the same
/// write, and the person's event points to that row; an unknown identity
/// writes nothing.
pub async fn an_admin_block_is_audited_with_its_reason_and_the_event_points_to_it(
    store: FreshStore,
) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let phone = activated(s, &anna, T0).await;
    let bo = agent(s, "Bo Support", AgentRole::Support, T0).await;
    let mut audit = audit_by(Some(&bo), AuditAction::Block, T0 + 1);
    audit.reason = Some("case 1: stolen phone".into());
    let AdminActionResult::Done { audit_id, .. } = s
        .admin_action(
            audit.clone(),
            AdminAction::SetBlocked {
                identity_id: anna.id,
                blocked: true,
            },
        )
        .await
        .unwrap()
    else {
        panic!("block refused");
    };
    assert!(s.identity(anna.id).await.unwrap().unwrap().blocked);
    assert_eq!(
        s.admin_action(
            audit,
            AdminAction::SetBlocked {
                identity_id: IdentityId::random(),
                blocked: true,
            },
        )
        .await
        .unwrap(),
        AdminActionResult::UnknownIdentity
    );

    let rows = s.audit_entries(Some(anna.id), None, 10).await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row.id, audit_id);
    assert_eq!(row.at_ms, T0 + 1);
    assert_eq!(row.agent_id, Some(bo.id));
    assert_eq!(row.agent_name, "Bo Support");
    assert_eq!(row.action, "block");
    assert_eq!(row.identity_id, Some(anna.id));
    assert_eq!(row.reason.as_deref(), Some("case 1: stolen phone"));
    assert_eq!(row.outcome, "done");

    let snapshot = s
        .pull_snapshot(
            vec![phone.id],
            FeedCursors::OldestAbove(Vec::new()),
            Vec::new(),
            T0 + 2,
        )
        .await
        .unwrap();
    let events = &snapshot.events[0];
    let blocked = events
        .iter()
        .find(|e| e.kind == SecurityEventKind::IdentityBlocked)
        .expect("block event");
    assert_eq!(blocked.audit_id, Some(audit_id));
    assert!(
        events
            .iter()
            .filter(|e| e.kind != SecurityEventKind::IdentityBlocked)
            .all(|e| e.audit_id.is_none())
    );
    // The person's own block points to no audit row.
    s.set_blocked(anna.id, false, T0 + 3).await.unwrap();
    let snapshot = s
        .pull_snapshot(
            vec![phone.id],
            FeedCursors::OldestAbove(Vec::new()),
            Vec::new(),
            T0 + 4,
        )
        .await
        .unwrap();
    let unblocked = snapshot.events[0]
        .iter()
        .find(|e| e.kind == SecurityEventKind::IdentityUnblocked)
        .expect("unblock event");
    assert_eq!(unblocked.audit_id, None);
}

/// Audited writes store their action and row together, a refused one
/// neither; refusals and look-ups are recorded alone; reads page newest
/// first by id and filter by identity.
pub async fn audited_writes_refusals_and_paging_read_back_newest_first(store: FreshStore) {
    let s = &*store;
    let bo = agent(s, "Bo Support", AgentRole::Support, T0).await;
    let anna = person(ANNA);
    let create = |now| audit_by(None, AuditAction::CreateIdentity, now);
    assert!(matches!(
        s.admin_action(create(T0 + 1), AdminAction::CreateIdentity(anna.clone()))
            .await
            .unwrap(),
        AdminActionResult::Done { .. }
    ));
    let mut twin = person(ANNA);
    twin.id = IdentityId::random();
    assert_eq!(
        s.admin_action(create(T0 + 2), AdminAction::CreateIdentity(twin))
            .await
            .unwrap(),
        AdminActionResult::UserIdTaken
    );
    let code = code_for(&anna, random_array(), T0 + 3);
    assert!(matches!(
        s.admin_action(
            audit_by(Some(&bo), AuditAction::IssueActivationCode, T0 + 3),
            AdminAction::IssueActivationCode(code),
        )
        .await
        .unwrap(),
        AdminActionResult::Done { .. }
    ));
    let sp = provider("Nordisk Bank");
    assert!(matches!(
        s.admin_action(
            audit_by(None, AuditAction::RegisterProvider, T0 + 4),
            AdminAction::RegisterProvider(sp.clone()),
        )
        .await
        .unwrap(),
        AdminActionResult::Done { .. }
    ));
    assert_eq!(
        s.admin_action(
            audit_by(None, AuditAction::RegisterProvider, T0 + 5),
            AdminAction::RegisterProvider(provider("Nordisk  Bank")),
        )
        .await
        .unwrap(),
        AdminActionResult::ConfusableWith("Nordisk Bank".into())
    );
    let mut refused = audit_by(Some(&bo), AuditAction::RegisterProvider, T0 + 6);
    refused.outcome = AuditOutcome::RefusedRole;
    let refused_id = s.record_audit(refused).await.unwrap();

    let all = s.audit_entries(None, None, 100).await.unwrap();
    let summary: Vec<(&str, &str)> = all
        .iter()
        .map(|r| (r.action.as_str(), r.outcome.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            ("register_provider", "refused_role"),
            ("register_provider", "done"),
            ("issue_activation_code", "done"),
            ("create_identity", "done"),
            ("create_agent", "done"),
        ]
    );
    assert_eq!(all[0].id, refused_id);
    assert_eq!(all[1].service_provider_id, Some(sp.id));
    assert_eq!(all[2].identity_id, Some(anna.id));
    assert!(all.windows(2).all(|w| w[0].id > w[1].id));
    // The stored identity is the one created.
    assert_eq!(s.identity(anna.id).await.unwrap(), Some(anna.clone()));

    let page = s.audit_entries(None, Some(all[1].id), 2).await.unwrap();
    assert_eq!(page, all[2..4].to_vec());
    let annas = s.audit_entries(Some(anna.id), None, 100).await.unwrap();
    assert_eq!(annas, vec![all[2].clone(), all[3].clone()]);
    assert!(
        s.audit_entries(Some(anna.id), Some(all[3].id), 100)
            .await
            .unwrap()
            .is_empty()
    );
}

/// An OIDC client is stored with its audit row and read back as stored;
/// one for an unknown provider writes neither.
pub async fn an_oidc_client_is_registered_with_its_audit_row_and_found_by_client_id(
    store: FreshStore,
) {
    let s = &*store;
    let sp = registered(s, "Nordisk Bank").await;
    let client = OidcClient {
        client_id: "eidoc_conformance".into(),
        service_provider_id: sp.id,
        redirect_uris: vec![
            "https://bank.example/cb".into(),
            "https://bank.example/cb?second=1".into(),
        ],
        secret_sha256: Some([7; 32]),
        jwk: Some(r#"{"crv":"P-256","kty":"EC","x":"x","y":"y"}"#.into()),
        scopes: vec!["openid".into(), "profile".into()],
        sector: "bank.example".into(),
        created_at_ms: T0,
    };
    assert!(matches!(
        s.admin_action(
            audit_by(None, AuditAction::RegisterOidcClient, T0),
            AdminAction::RegisterOidcClient(client.clone()),
        )
        .await
        .unwrap(),
        AdminActionResult::Done { .. }
    ));
    assert_eq!(
        s.oidc_client("eidoc_conformance").await.unwrap(),
        Some(client.clone())
    );
    // Without a secret (private_key_jwt only) it reads back the same way.
    let mut jwt_only = client.clone();
    jwt_only.client_id = "eidoc_jwt_only".into();
    jwt_only.secret_sha256 = None;
    assert!(matches!(
        s.admin_action(
            audit_by(None, AuditAction::RegisterOidcClient, T0 + 1),
            AdminAction::RegisterOidcClient(jwt_only.clone()),
        )
        .await
        .unwrap(),
        AdminActionResult::Done { .. }
    ));
    assert_eq!(
        s.oidc_client("eidoc_jwt_only").await.unwrap(),
        Some(jwt_only)
    );

    let mut orphan = client.clone();
    orphan.client_id = "eidoc_orphan".into();
    orphan.service_provider_id = ServiceProviderId::random();
    assert_eq!(
        s.admin_action(
            audit_by(None, AuditAction::RegisterOidcClient, T0 + 2),
            AdminAction::RegisterOidcClient(orphan),
        )
        .await
        .unwrap(),
        AdminActionResult::UnknownProvider
    );
    assert_eq!(s.oidc_client("eidoc_orphan").await.unwrap(), None);
    assert_eq!(s.oidc_client("eidoc_unknown").await.unwrap(), None);

    let audit = s.audit_entries(None, None, 10).await.unwrap();
    let summary: Vec<(&str, Option<ServiceProviderId>)> = audit
        .iter()
        .map(|r| (r.action.as_str(), r.service_provider_id))
        .collect();
    assert_eq!(
        summary,
        [
            ("register_oidc_client", Some(sp.id)),
            ("register_oidc_client", Some(sp.id)),
        ]
    );
}

/// A registered OIDC client and a pushed login of it (not yet in a browser).
async fn pushed_login(s: &dyn Store, request_uri_sha256: [u8; 32]) -> OidcLogin {
    let sp = registered(s, "Nordisk Bank").await;
    let client_id = format!("eidoc_{}", hex::encode(&request_uri_sha256[..4]));
    let client = OidcClient {
        client_id: client_id.clone(),
        service_provider_id: sp.id,
        redirect_uris: vec!["https://bank.example/cb".into()],
        secret_sha256: Some([7; 32]),
        jwk: None,
        scopes: vec!["openid".into()],
        sector: "bank.example".into(),
        created_at_ms: T0,
    };
    s.admin_action(
        audit_by(None, AuditAction::RegisterOidcClient, T0),
        AdminAction::RegisterOidcClient(client),
    )
    .await
    .unwrap();
    assert_eq!(s.service_provider(sp.id).await.unwrap(), Some(sp.clone()));
    assert_eq!(
        s.service_provider(ServiceProviderId::random())
            .await
            .unwrap(),
        None
    );
    let login = OidcLogin {
        id: LoginId::random(),
        client_id,
        params: AuthParams {
            redirect_uri: "https://bank.example/cb".into(),
            scope: "openid".into(),
            state: Some("st".into()),
            nonce: Some("no".into()),
            code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
            reference_text: "Login at Nordisk Bank".into(),
            login_hint: Some("grete#1950x".into()),
            acr: "https://data.gov.dk/concept/core/nsis/loa/Substantial".into(),
            lang: Some("en".into()),
        },
        created_at_ms: T0,
        request_uri_expires_at_ms: T0 + 60_000,
        expires_at_ms: T0 + 900_000,
        browser_sha256: None,
        request_id: None,
        request_expires_at_ms: None,
        code_expires_at_ms: None,
        redeemed_at_ms: None,
        access_expires_at_ms: None,
        revoked: false,
        method: LoginMethod::App,
        hardware_identity_id: None,
        first_factor: None,
        hardware_receipt: None,
    };
    s.create_oidc_login(login.clone(), request_uri_sha256)
        .await
        .unwrap();
    assert_eq!(s.oidc_login(login.id).await.unwrap(), Some(login.clone()));
    login
}

/// A `request_uri` starts its login in one browser, once, before it
/// expires, and only for the client that pushed it.
pub async fn an_oidc_login_is_bound_to_one_browser_once_and_only_before_its_request_uri_expires(
    store: FreshStore,
) {
    let s = &*store;
    let login = pushed_login(s, [1; 32]).await;
    let other = pushed_login(s, [2; 32]).await;
    assert_eq!(
        s.bind_oidc_login([1; 32], &other.client_id, [9; 32], T0)
            .await
            .unwrap(),
        BindLoginResult::Unknown,
        "another client's request_uri"
    );
    assert_eq!(
        s.bind_oidc_login([3; 32], &login.client_id, [9; 32], T0)
            .await
            .unwrap(),
        BindLoginResult::Unknown
    );
    assert_eq!(
        s.bind_oidc_login([2; 32], &other.client_id, [9; 32], T0 + 60_000)
            .await
            .unwrap(),
        BindLoginResult::Expired
    );
    let BindLoginResult::Bound(bound) = s
        .bind_oidc_login([1; 32], &login.client_id, [9; 32], T0 + 59_999)
        .await
        .unwrap()
    else {
        panic!("a fresh request_uri binds");
    };
    assert_eq!(bound.browser_sha256, Some([9; 32]));
    assert_eq!(s.oidc_login(login.id).await.unwrap(), Some(*bound));
    assert_eq!(
        s.bind_oidc_login([1; 32], &login.client_id, [8; 32], T0 + 1)
            .await
            .unwrap(),
        BindLoginResult::AlreadyUsed
    );
    let stored = s.oidc_login(login.id).await.unwrap().unwrap();
    assert_eq!(
        stored.browser_sha256,
        Some([9; 32]),
        "the first browser keeps it"
    );
}

/// A login's request moves only from the one its caller saw, and is fixed
/// once a code was issued for it.
pub async fn an_oidc_login_s_request_is_replaced_only_from_the_expected_one_and_never_after_its_code(
    store: FreshStore,
) {
    let s = &*store;
    let login = pushed_login(s, [4; 32]).await;
    let (first, second, third) = (
        RequestId::random(),
        RequestId::random(),
        RequestId::random(),
    );
    assert!(
        !s.set_oidc_login_request(login.id, Some(first), second, T0 + 300_000)
            .await
            .unwrap()
    );
    assert!(
        s.set_oidc_login_request(login.id, None, first, T0 + 300_000)
            .await
            .unwrap()
    );
    assert!(
        !s.set_oidc_login_request(login.id, None, second, T0 + 300_000)
            .await
            .unwrap()
    );
    assert!(
        s.set_oidc_login_request(login.id, Some(first), second, T0 + 300_000)
            .await
            .unwrap()
    );
    assert!(
        !s.issue_oidc_code(login.id, first, [5; 32], T0 + 60_000)
            .await
            .unwrap()
    );
    assert!(
        s.issue_oidc_code(login.id, second, [5; 32], T0 + 60_000)
            .await
            .unwrap()
    );
    assert!(
        !s.issue_oidc_code(login.id, second, [6; 32], T0 + 60_000)
            .await
            .unwrap()
    );
    assert!(
        !s.set_oidc_login_request(login.id, Some(second), third, T0 + 300_000)
            .await
            .unwrap()
    );
    let stored = s.oidc_login(login.id).await.unwrap().unwrap();
    assert_eq!(stored.request_id, Some(second));
    assert_eq!(stored.request_expires_at_ms, Some(T0 + 300_000));
    assert_eq!(stored.code_expires_at_ms, Some(T0 + 60_000));
    assert_eq!(s.oidc_login_by_code([5; 32]).await.unwrap(), Some(stored));
    assert_eq!(s.oidc_login_by_code([6; 32]).await.unwrap(), None);
}

/// The first redemption gets the login and stores the access token; the
/// same code again fails and revokes that token.
pub async fn an_oidc_code_is_redeemed_once_and_presenting_it_again_revokes_the_access_token(
    store: FreshStore,
) {
    let s = &*store;
    let login = pushed_login(s, [7; 32]).await;
    let request = RequestId::random();
    assert!(
        s.set_oidc_login_request(login.id, None, request, T0 + 300_000)
            .await
            .unwrap()
    );
    assert!(
        s.issue_oidc_code(login.id, request, [8; 32], T0 + 60_000)
            .await
            .unwrap()
    );
    assert_eq!(
        s.redeem_oidc_code([9; 32], Some(([1; 32], T0 + 300_000)), T0)
            .await
            .unwrap(),
        RedeemResult::Unknown
    );
    let RedeemResult::Redeemed(redeemed) = s
        .redeem_oidc_code([8; 32], Some(([1; 32], T0 + 1_000_000)), T0 + 1_000)
        .await
        .unwrap()
    else {
        panic!("a fresh code is redeemed");
    };
    assert_eq!(redeemed.redeemed_at_ms, Some(T0 + 1_000));
    assert_eq!(redeemed.access_expires_at_ms, Some(T0 + 1_000_000));
    assert_eq!(
        redeemed.expires_at_ms,
        T0 + 1_000_000,
        "the row outlives its token"
    );
    assert!(!redeemed.revoked);
    assert_eq!(
        s.oidc_login_by_access_token([1; 32]).await.unwrap(),
        Some(*redeemed)
    );
    assert_eq!(
        s.redeem_oidc_code([8; 32], Some(([2; 32], T0 + 300_000)), T0 + 2_000)
            .await
            .unwrap(),
        RedeemResult::Reused
    );
    let after = s
        .oidc_login_by_access_token([1; 32])
        .await
        .unwrap()
        .unwrap();
    assert!(after.revoked, "presenting the code again revokes its token");
    assert_eq!(s.oidc_login_by_access_token([2; 32]).await.unwrap(), None);
}

/// A code past its 60 s, or burnt by a failed redemption, gives no token
/// and cannot be redeemed later.
pub async fn an_oidc_code_past_its_expiry_or_burnt_issues_no_access_token(store: FreshStore) {
    let s = &*store;
    for (n, burn) in [(10u8, false), (11, true)] {
        let login = pushed_login(s, [n; 32]).await;
        let request = RequestId::random();
        assert!(
            s.set_oidc_login_request(login.id, None, request, T0 + 300_000)
                .await
                .unwrap()
        );
        assert!(
            s.issue_oidc_code(login.id, request, [n; 32], T0 + 60_000)
                .await
                .unwrap()
        );
        let first = if burn {
            s.redeem_oidc_code([n; 32], None, T0 + 1).await.unwrap()
        } else {
            s.redeem_oidc_code([n; 32], Some(([n; 32], T0 + 400_000)), T0 + 60_000)
                .await
                .unwrap()
        };
        if burn {
            assert!(
                matches!(first, RedeemResult::Redeemed(ref l) if l.access_expires_at_ms.is_none())
            );
        } else {
            assert_eq!(first, RedeemResult::Expired);
        }
        assert_eq!(s.oidc_login_by_access_token([n; 32]).await.unwrap(), None);
        assert_eq!(
            s.redeem_oidc_code([n; 32], Some(([n; 32], T0 + 400_000)), T0 + 2)
                .await
                .unwrap(),
            RedeemResult::Reused
        );
        assert_eq!(s.oidc_login_by_access_token([n; 32]).await.unwrap(), None);
    }
}

/// Logins past their end go; others stay; at most `limit` per call.
pub async fn expired_oidc_logins_are_purged_within_the_limit(store: FreshStore) {
    let s = &*store;
    let a = pushed_login(s, [12; 32]).await;
    let b = pushed_login(s, [13; 32]).await;
    let end = a.expires_at_ms;
    assert_eq!(s.purge_oidc_logins(end, 10).await.unwrap(), 0);
    assert_eq!(s.purge_oidc_logins(end + 1, 1).await.unwrap(), 1);
    assert_eq!(s.purge_oidc_logins(end + 1, 10).await.unwrap(), 1);
    assert_eq!(s.oidc_login(a.id).await.unwrap(), None);
    assert_eq!(s.oidc_login(b.id).await.unwrap(), None);
}

/// A hardware method chosen on the user-ID step is stored with the typed
/// user ID's identity; its first factor passes only under that method, and
/// the completion stores the receipt and issues the code in one write, once.
pub async fn a_hardware_method_is_recorded_and_completes_its_login_once_with_its_code(
    store: FreshStore,
) {
    let s = &*store;
    let login = pushed_login(s, [11; 32]).await;
    let person = identity(s, "grete").await;
    let request = RequestId::random();
    assert!(
        s.set_oidc_login_request(login.id, None, request, T0 + 300_000)
            .await
            .unwrap()
    );
    assert!(
        !s.pass_oidc_first_factor(login.id, LoginMethod::CodeDisplay, "S1".into())
            .await
            .unwrap(),
        "not the login's method yet"
    );
    assert!(
        s.choose_oidc_login_method(login.id, LoginMethod::CodeDisplay, Some(person.id))
            .await
            .unwrap()
    );
    let stored = s.oidc_login(login.id).await.unwrap().unwrap();
    assert_eq!(stored.method, LoginMethod::CodeDisplay);
    assert_eq!(stored.hardware_identity_id, Some(person.id));
    assert_eq!(stored.request_id, None, "the app's request is forgotten");
    assert!(
        s.pass_oidc_first_factor(login.id, LoginMethod::CodeDisplay, "S1".into())
            .await
            .unwrap()
    );
    assert_eq!(
        s.oidc_login(login.id).await.unwrap().unwrap().first_factor,
        Some("S1".into())
    );
    let provider = ServiceProviderId::random();
    let receipt = |method: LoginMethod| SignedHardwareReceipt {
        receipt: eid_protocol::messages::HardwareReceiptBody {
            login_id: login.id.0,
            identity_id: person.id,
            method: method.as_str().into(),
            authenticator_sha256: [3; 32],
            service_provider_id: provider,
            completed_at_ms: T0 + 5_000,
        },
        signature: signature(),
    };
    assert!(
        !s.complete_oidc_login_by_hardware(
            login.id,
            receipt(LoginMethod::Chip),
            [12; 32],
            T0 + 60_000
        )
        .await
        .unwrap(),
        "a receipt of another method"
    );
    assert!(
        s.complete_oidc_login_by_hardware(
            login.id,
            receipt(LoginMethod::CodeDisplay),
            [12; 32],
            T0 + 60_000
        )
        .await
        .unwrap()
    );
    assert!(
        !s.complete_oidc_login_by_hardware(
            login.id,
            receipt(LoginMethod::CodeDisplay),
            [13; 32],
            T0 + 60_000
        )
        .await
        .unwrap(),
        "completed once"
    );
    assert!(
        !s.choose_oidc_login_method(login.id, LoginMethod::App, None)
            .await
            .unwrap(),
        "no new choice after the code"
    );
    let done = s.oidc_login_by_code([12; 32]).await.unwrap().unwrap();
    assert_eq!(
        done.hardware_receipt,
        Some(receipt(LoginMethod::CodeDisplay))
    );
    assert_eq!(done.code_expires_at_ms, Some(T0 + 60_000));
    assert_eq!(done.method, LoginMethod::CodeDisplay);
    // The hardware receipt is the only record of this login (no decision
    // holds it, as for the app): purging expired logins keeps it.
    s.purge_oidc_logins(done.expires_at_ms + 1, 10)
        .await
        .unwrap();
    assert_eq!(
        s.oidc_login(login.id)
            .await
            .unwrap()
            .and_then(|l| l.hardware_receipt),
        Some(receipt(LoginMethod::CodeDisplay)),
        "kept for disputes past the login's end"
    );
}

// ------------------------------------------------------------------ chips

fn chip(identity: &Identity, credential: u8, now: u64) -> Chip {
    Chip {
        id: ChipId::random(),
        identity_id: identity.id,
        credential_id_sha256: [credential; 32],
        credential: format!("{{\"credential\":{credential}}}"),
        counter: 0,
        state: ChipState::Pending,
        access_code: crate::access_code::AccessCodeHash::from_stored("$argon2id$stand-in".into()),
        registered_at_ms: now,
        active_from_ms: now + 24 * HOUR,
        last_used_at_ms: None,
        failures: 0,
        blocked_until_ms: None,
        ended_at_ms: None,
        revision: 0,
    }
}

fn chip_event(identity: &Identity, kind: SecurityEventKind, now: u64) -> NewEvent {
    NewEvent {
        identity_id: identity.id,
        kind,
        authenticator_id: None,
        detail: Some("…abcd".into()),
        occurred_at_ms: now,
        extra_recipients: Vec::new(),
    }
}

/// A chip is stored pending with its `chip_added` event (delivered to the
/// person's contacts); a second live chip of the identity, the same
/// credential for anyone, and a blocked or unknown identity are refused and
/// store nothing; after a deactivation a new chip is taken.
pub async fn a_chip_is_stored_with_its_event_once_per_identity_and_credential(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let bo = identity(s, BO).await;
    let first = chip(&anna, 1, T0);
    let added = chip_event(&anna, SecurityEventKind::ChipAdded, T0);
    assert_eq!(
        s.add_chip(first.clone(), added.clone()).await.unwrap(),
        AddChipResult::Added
    );
    assert_eq!(
        s.add_chip(chip(&anna, 2, T0), added.clone()).await.unwrap(),
        AddChipResult::AlreadyHasChip
    );
    assert_eq!(
        s.add_chip(
            chip(&bo, 1, T0),
            chip_event(&bo, SecurityEventKind::ChipAdded, T0)
        )
        .await
        .unwrap(),
        AddChipResult::CredentialTaken
    );
    let stranger = person("Nobody#1");
    assert_eq!(
        s.add_chip(
            chip(&stranger, 3, T0),
            chip_event(&stranger, SecurityEventKind::ChipAdded, T0)
        )
        .await
        .unwrap(),
        AddChipResult::IdentityUnusable
    );
    s.set_blocked(bo.id, true, T0).await.unwrap();
    assert_eq!(
        s.add_chip(
            chip(&bo, 4, T0),
            chip_event(&bo, SecurityEventKind::ChipAdded, T0)
        )
        .await
        .unwrap(),
        AddChipResult::IdentityUnusable
    );
    assert!(s.chips_of(bo.id).await.unwrap().is_empty());
    let stored = s.chips_of(anna.id).await.unwrap();
    assert_eq!(stored, vec![first.clone()]);
    let delivered = claim_all(s, T0).await;
    assert_eq!(
        addresses_of(&delivered, SecurityEventKind::ChipAdded),
        vec![set(&[ANNA_PHONE, ANNA_EMAIL])]
    );

    let mut ended = first;
    ended.state = ChipState::Deactivated;
    ended.ended_at_ms = Some(T0 + 1);
    assert!(s.save_chip(ended, vec![]).await.unwrap());
    assert_eq!(
        s.add_chip(
            chip(&anna, 5, T0 + 2),
            chip_event(&anna, SecurityEventKind::ChipAdded, T0 + 2)
        )
        .await
        .unwrap(),
        AddChipResult::Added
    );
    assert_eq!(s.chips_of(anna.id).await.unwrap().len(), 2);
}

/// A save writes every changed field and its events only when the stored
/// revision is the one read, and bumps it.
pub async fn a_chip_save_names_the_revision_it_read(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let stored = chip(&anna, 7, T0);
    s.add_chip(
        stored.clone(),
        chip_event(&anna, SecurityEventKind::ChipAdded, T0),
    )
    .await
    .unwrap();
    let mut used = stored.clone();
    used.state = ChipState::Active;
    used.counter = 9;
    used.credential = "{\"credential\":\"updated\"}".into();
    used.last_used_at_ms = Some(T0 + 5);
    used.failures = 2;
    used.blocked_until_ms = Some(T0 + 6);
    let used_event = chip_event(&anna, SecurityEventKind::ChipActivated, T0 + 5);
    assert!(s.save_chip(used.clone(), vec![used_event]).await.unwrap());
    let now = s.chips_of(anna.id).await.unwrap().remove(0);
    assert_eq!(now.revision, 1);
    assert_eq!(
        Chip {
            revision: 0,
            ..now.clone()
        },
        used
    );
    // A save from the stale revision 0 changes nothing and records nothing.
    let mut stale = stored;
    stale.state = ChipState::Deactivated;
    let stale_event = chip_event(&anna, SecurityEventKind::ChipDeactivated, T0 + 7);
    assert!(!s.save_chip(stale, vec![stale_event]).await.unwrap());
    assert_eq!(s.chips_of(anna.id).await.unwrap().remove(0), now);
    let kinds: Vec<_> = claim_all(s, T0 + 10)
        .await
        .into_iter()
        .map(|d| d.event.kind)
        .collect();
    assert!(kinds.contains(&SecurityEventKind::ChipActivated));
    assert!(!kinds.contains(&SecurityEventKind::ChipDeactivated));
}

/// Of many saves of one revision at once, exactly one is written.
pub async fn of_many_concurrent_saves_of_one_chip_revision_one_wins(store: FreshStore) {
    let anna = identity(&*store, ANNA).await;
    let stored = chip(&anna, 8, T0);
    store
        .add_chip(
            stored.clone(),
            chip_event(&anna, SecurityEventKind::ChipAdded, T0),
        )
        .await
        .unwrap();
    let tasks: Vec<_> = (0..20u32)
        .map(|i| {
            let s = store.shared();
            let mut mine = stored.clone();
            mine.counter = i + 1;
            tokio::spawn(async move { s.save_chip(mine, vec![]).await.unwrap() })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        won += usize::from(task.await.unwrap());
    }
    assert_eq!(won, 1);
    assert_eq!(store.chips_of(anna.id).await.unwrap()[0].revision, 1);
}

/// A ceremony is returned once (a second take finds nothing), and not at
/// all once its time is over; expired ones are swept by the next put.
pub async fn a_chip_ceremony_is_taken_once_and_not_after_it_expires(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let ceremony = |id: u8, expires_at_ms: u64| ChipCeremony {
        id: [id; 16],
        identity_id: anna.id,
        purpose: CeremonyPurpose::Login,
        subject: Some([id; 16]),
        state: format!("{{\"state\":{id}}}"),
        expires_at_ms,
    };
    s.put_chip_ceremony(ceremony(1, T0 + 1_000), T0)
        .await
        .unwrap();
    s.put_chip_ceremony(ceremony(2, T0 + 1_000), T0)
        .await
        .unwrap();
    assert_eq!(
        s.take_chip_ceremony([1; 16], T0 + 999).await.unwrap(),
        Some(ceremony(1, T0 + 1_000))
    );
    assert_eq!(s.take_chip_ceremony([1; 16], T0 + 999).await.unwrap(), None);
    assert_eq!(
        s.take_chip_ceremony([2; 16], T0 + 1_000).await.unwrap(),
        None
    );
    assert_eq!(s.take_chip_ceremony([3; 16], T0).await.unwrap(), None);
}

/// An unassigned code device of batch `batch` (the seed is opaque here).
fn unassigned_device(serial: &str, batch: [u8; 16]) -> CodeDevice {
    CodeDevice {
        serial: serial.to_owned(),
        batch_id: batch,
        kind: CodeDeviceKind::CodeDisplay,
        algorithm: crate::code_devices::totp::Algorithm::Sha1,
        digits: 6,
        step_secs: 30,
        sealed_seed: vec![9; 48],
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
    }
}

/// A pending request to take a code device into use, as the self-service
/// pages create it for `identity_id` at `T0`.
async fn code_device_request(s: &dyn Store, identity_id: IdentityId) -> StoredRequest {
    created(
        s,
        stored(
            envelope(
                identity_id,
                RequestKind::CodeDevice,
                (SELF_SERVICE_PROVIDER_ID, SELF_SERVICE_PROVIDER_NAME),
                T0,
            ),
            None,
        ),
    )
    .await
}

async fn imported(s: &dyn Store, serials: &[&str]) -> ImportResult {
    let batch = TokenBatch {
        id: random_array(),
        label: "batch".into(),
        imported_at_ms: T0,
        device_count: serials.len() as u32,
    };
    let devices = serials
        .iter()
        .map(|serial| unassigned_device(serial, batch.id))
        .collect();
    s.import_token_batch(
        audit_by(None, AuditAction::ImportTokenBatch, T0),
        batch,
        devices,
    )
    .await
    .unwrap()
}

/// Activates code device `serial` on `identity` with a fresh activation
/// code, at step `step`.
async fn support_activation(
    s: &dyn Store,
    identity: &Identity,
    serial: &str,
    step: u64,
    presented: [u8; 32],
) -> SupportActivationResult {
    s.activate_code_device_by_support(SupportActivation {
        user_id_folded: identity.user_id_folded.clone(),
        code_sha256_for: Box::new(move |_| presented),
        max_tries: 3,
        serial: serial.to_owned(),
        step,
        access_code_hash: crate::access_code::AccessCodeHash::from_stored("$argon2id$x".into()),
        now_ms: T0,
    })
    .await
    .unwrap()
}

/// An identity with an active code device `serial` (last step 100).
async fn with_code_device(s: &dyn Store, user_id: &str, serial: &str) -> Identity {
    let person = identity(s, user_id).await;
    assert!(matches!(
        imported(s, &[serial]).await,
        ImportResult::Imported { .. }
    ));
    let code = random_array();
    s.put_activation_code(code_for(&person, code, T0))
        .await
        .unwrap();
    assert_eq!(
        support_activation(s, &person, serial, 100, code).await,
        SupportActivationResult::Activated(person.id)
    );
    person
}

/// A batch is stored whole; one whose serial is taken stores nothing.
pub async fn a_token_batch_is_stored_whole_or_not_at_all(store: FreshStore) {
    let s = &*store;
    assert!(matches!(
        imported(s, &["A1", "A2"]).await,
        ImportResult::Imported { .. }
    ));
    assert_eq!(
        imported(s, &["B1", "A2"]).await,
        ImportResult::SerialTaken("A2".into())
    );
    assert_eq!(s.code_device("B1").await.unwrap(), None);
    let stored = s.code_device("A1").await.unwrap().unwrap();
    assert_eq!(stored, unassigned_device("A1", stored.batch_id));
    let audit = s.audit_entries(None, None, 100).await.unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|a| a.action == AuditAction::ImportTokenBatch.as_str())
            .count(),
        1,
        "only the stored batch is audited"
    );
}

/// Sequential replay: a step passes once; it and every step below the
/// last accepted one are replays.
pub async fn a_code_step_is_accepted_once_and_never_below_the_last(store: FreshStore) {
    let s = &*store;
    let anna = with_code_device(s, ANNA, "S1").await;
    assert_eq!(
        s.use_code_step("S1", anna.id, 100, T0).await.unwrap(),
        CodeStepResult::Replayed,
        "the activation's step is used"
    );
    assert_eq!(
        s.use_code_step("S1", anna.id, 102, T0).await.unwrap(),
        CodeStepResult::Accepted
    );
    assert_eq!(
        s.use_code_step("S1", anna.id, 102, T0).await.unwrap(),
        CodeStepResult::Replayed
    );
    assert_eq!(
        s.use_code_step("S1", anna.id, 101, T0).await.unwrap(),
        CodeStepResult::Replayed,
        "an older unused step never passes after a newer one"
    );
    assert_eq!(
        s.code_device("S1").await.unwrap().unwrap().last_step,
        Some(102)
    );
}

/// 50 logins with the same code at once: one passes.
pub async fn exactly_one_of_50_concurrent_uses_of_a_code_step_wins(store: FreshStore) {
    let anna = with_code_device(&*store, ANNA, "S1").await;
    let start = Arc::new(tokio::sync::Barrier::new(50));
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (shared, start) = (store.shared(), Arc::clone(&start));
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            shared.use_code_step("S1", anna.id, 101, T0).await.unwrap()
        }));
    }
    let mut accepted = 0;
    for task in tasks {
        if task.await.unwrap() == CodeStepResult::Accepted {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 1);
}

/// Another person's device, an unassigned one, and any device of a blocked
/// identity are unusable.
pub async fn a_code_device_serves_only_its_active_unblocked_identity(store: FreshStore) {
    let s = &*store;
    let anna = with_code_device(s, ANNA, "S1").await;
    let bo = identity(s, BO).await;
    assert_eq!(
        s.use_code_step("S1", bo.id, 101, T0).await.unwrap(),
        CodeStepResult::Unusable,
        "another person's token"
    );
    imported(s, &["S2"]).await;
    assert_eq!(
        s.use_code_step("S2", bo.id, 101, T0).await.unwrap(),
        CodeStepResult::Unusable,
        "not yet activated"
    );
    assert_eq!(
        s.use_code_step("nope", anna.id, 101, T0).await.unwrap(),
        CodeStepResult::Unusable
    );
    s.set_blocked(anna.id, true, T0).await.unwrap();
    assert_eq!(
        s.use_code_step("S1", anna.id, 101, T0).await.unwrap(),
        CodeStepResult::Unusable,
        "a blocked identity"
    );
    s.set_blocked(anna.id, false, T0).await.unwrap();
    assert_eq!(
        s.use_code_step("S1", anna.id, 101, T0).await.unwrap(),
        CodeStepResult::Accepted
    );
}

/// Three failures block for 15 minutes with a notified event; the next
/// block lasts longer; a blocked device takes no code.
pub async fn three_failures_in_a_row_block_a_code_device_for_a_growing_time(store: FreshStore) {
    let s = &*store;
    let anna = with_code_device(s, ANNA, "S1").await;
    assert_eq!(
        s.record_code_device_attempt("S1", CodeAttempt::WrongCode, T0)
            .await
            .unwrap(),
        AttemptRecorded::Counted(1)
    );
    assert_eq!(
        s.record_code_device_attempt("S1", CodeAttempt::WrongAccessCode, T0)
            .await
            .unwrap(),
        AttemptRecorded::Counted(2)
    );
    let first = crate::code_devices::check::block_ms(0);
    assert_eq!(
        s.record_code_device_attempt("S1", CodeAttempt::WrongCode, T0)
            .await
            .unwrap(),
        AttemptRecorded::Blocked {
            until_ms: T0 + first
        }
    );
    assert_eq!(
        s.use_code_step("S1", anna.id, 101, T0 + first - 1)
            .await
            .unwrap(),
        CodeStepResult::Unusable
    );
    let blocked_events = claim_all(s, T0)
        .await
        .into_iter()
        .filter(|d| d.event.kind == SecurityEventKind::CodeDeviceBlocked)
        .count();
    assert_eq!(blocked_events, 2, "on both channels");
    for _ in 0..2 {
        s.record_code_device_attempt("S1", CodeAttempt::WrongCode, T0 + first)
            .await
            .unwrap();
    }
    assert_eq!(
        s.record_code_device_attempt("S1", CodeAttempt::WrongCode, T0 + first)
            .await
            .unwrap(),
        AttemptRecorded::Blocked {
            until_ms: T0 + first + crate::code_devices::check::block_ms(1)
        },
        "the second block is longer"
    );
}

/// Only a whole login resets the count: a right code between wrong access
/// codes does not.
pub async fn a_login_resets_the_failures_but_a_right_code_alone_does_not(store: FreshStore) {
    let s = &*store;
    let anna = with_code_device(s, ANNA, "S1").await;
    s.record_code_device_attempt("S1", CodeAttempt::WrongAccessCode, T0)
        .await
        .unwrap();
    assert_eq!(
        s.use_code_step("S1", anna.id, 101, T0).await.unwrap(),
        CodeStepResult::Accepted
    );
    assert_eq!(
        s.record_code_device_attempt("S1", CodeAttempt::WrongAccessCode, T0)
            .await
            .unwrap(),
        AttemptRecorded::Counted(2)
    );
    assert_eq!(
        s.record_code_device_attempt("S1", CodeAttempt::LoggedIn, T0 + 5)
            .await
            .unwrap(),
        AttemptRecorded::Used
    );
    let device = s.code_device("S1").await.unwrap().unwrap();
    assert_eq!((device.failures, device.last_used_at_ms), (0, Some(T0 + 5)));
    assert_eq!(
        s.record_code_device_attempt("nope", CodeAttempt::WrongCode, T0)
            .await
            .unwrap(),
        AttemptRecorded::Unknown
    );
}

/// Support's activation: a wrong activation code counts a try and changes
/// nothing; the right one activates an unassigned device once; a second
/// device for the same identity is refused (only the app replaces).
pub async fn support_activates_an_unassigned_code_device_once_per_identity(store: FreshStore) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    imported(s, &["S1", "S2"]).await;
    let code = random_array();
    s.put_activation_code(code_for(&anna, code, T0))
        .await
        .unwrap();
    assert_eq!(
        support_activation(s, &anna, "S1", 100, [0; 32]).await,
        SupportActivationResult::NoUsableCode
    );
    assert_eq!(
        s.code_device("S1").await.unwrap().unwrap().state,
        CodeDeviceState::Unassigned
    );
    assert_eq!(
        support_activation(s, &anna, "S1", 100, code).await,
        SupportActivationResult::Activated(anna.id)
    );
    let device = s.code_device("S1").await.unwrap().unwrap();
    assert_eq!(device.state, CodeDeviceState::Active);
    assert_eq!(device.identity_id, Some(anna.id));
    assert_eq!(device.last_step, Some(100));
    assert_eq!(s.code_devices_of(anna.id).await.unwrap(), vec![device]);
    let again = random_array();
    s.put_activation_code(code_for(&anna, again, T0))
        .await
        .unwrap();
    assert_eq!(
        support_activation(s, &anna, "S2", 100, again).await,
        SupportActivationResult::AlreadyHasOne
    );
    let bo = identity(s, BO).await;
    let bos = random_array();
    s.put_activation_code(code_for(&bo, bos, T0)).await.unwrap();
    assert_eq!(
        support_activation(s, &bo, "S1", 200, bos).await,
        SupportActivationResult::DeviceUnusable,
        "another person's device"
    );
    assert!(
        claim_all(s, T0)
            .await
            .iter()
            .any(|d| d.event.kind == SecurityEventKind::CodeDeviceAdded)
    );
}

/// An activation waiting for the app: the approval's write activates the
/// device and deactivates the identity's active one (both notified); a
/// refusal forgets it and the device stays unassigned.
pub async fn an_approved_code_device_request_activates_and_replaces_in_the_decision_s_write(
    store: FreshStore,
) {
    let s = &*store;
    let anna = with_code_device(s, ANNA, "S1").await;
    let phone = activated(s, &anna, T0).await;
    imported(s, &["S2", "S3"]).await;
    let ask = |serial: &'static str| async move {
        let request = code_device_request(s, anna.id).await;
        assert!(s.use_unassigned_code_step(serial, 50).await.unwrap());
        assert!(
            s.request_code_device_activation(
                serial,
                anna.id,
                request.envelope.request_id,
                50,
                crate::access_code::AccessCodeHash::from_stored("$argon2id$y".into()),
            )
            .await
            .unwrap()
        );
        request
    };
    let approve = ask("S2").await;
    assert!(
        !s.use_unassigned_code_step("S2", 50).await.unwrap(),
        "the step is used"
    );
    assert!(
        !s.use_unassigned_code_step("S2", 49).await.unwrap(),
        "so is every step before it"
    );
    assert!(
        !s.use_unassigned_code_step("S1", 60).await.unwrap(),
        "an active device is nobody's to start"
    );
    assert!(
        !s.request_code_device_activation(
            "S2",
            anna.id,
            RequestId::random(),
            49,
            crate::access_code::AccessCodeHash::from_stored("$argon2id$z".into()),
        )
        .await
        .unwrap(),
        "only with the step its start used"
    );
    assert_eq!(
        s.code_device("S2").await.unwrap().unwrap().state,
        CodeDeviceState::Unassigned,
        "nothing before the approval"
    );
    decided(s, &approve, &phone, Outcome::Approve, 1, T0 + 1).await;
    let new = s.code_device("S2").await.unwrap().unwrap();
    assert_eq!(
        (new.state, new.identity_id),
        (CodeDeviceState::Active, Some(anna.id))
    );
    assert_eq!(
        s.code_device("S1").await.unwrap().unwrap().state,
        CodeDeviceState::Deactivated
    );
    let kinds: Vec<SecurityEventKind> = claim_all(s, T0 + 1)
        .await
        .into_iter()
        .map(|d| d.event.kind)
        .collect();
    assert!(kinds.contains(&SecurityEventKind::CodeDeviceDeactivated));
    assert!(kinds.contains(&SecurityEventKind::CodeDeviceAdded));
    let refuse = ask("S3").await;
    decided(s, &refuse, &phone, Outcome::Deny, 2, T0 + 2).await;
    assert_eq!(
        s.code_device("S3").await.unwrap().unwrap().state,
        CodeDeviceState::Unassigned
    );
    assert_eq!(
        s.code_device("S2").await.unwrap().unwrap().state,
        CodeDeviceState::Active,
        "a refusal changes nothing else"
    );
}

/// The API creates a code device's request and then, in a write of its
/// own, records the activation waiting for it
/// ([`Store::request_code_device_activation`]). A phone that decides the
/// request in between (it is in the pull from its creation's commit on)
/// finds no activation to apply; the activation recorded after it must
/// then be refused (the request no longer waits), not left pointing at a
/// decided request: else the approval is stored and the device is never
/// activated.
pub async fn a_code_device_activation_is_not_recorded_for_an_already_decided_request(
    store: FreshStore,
) {
    let s = &*store;
    let anna = identity(s, ANNA).await;
    let phone = activated(s, &anna, T0).await;
    imported(s, &["S2"]).await;
    let request = code_device_request(s, anna.id).await;
    assert!(s.use_unassigned_code_step("S2", 50).await.unwrap());
    // The phone approves before the activation is recorded.
    decided(s, &request, &phone, Outcome::Approve, 1, T0 + 1).await;
    let recorded = s
        .request_code_device_activation(
            "S2",
            anna.id,
            request.envelope.request_id,
            50,
            crate::access_code::AccessCodeHash::from_stored("$argon2id$y".into()),
        )
        .await
        .unwrap();
    let device = s.code_device("S2").await.unwrap().unwrap();
    assert!(
        !recorded,
        "an activation recorded for a request already approved is never applied \
         (device state {:?}, request approved)",
        device.state
    );
}

/// A deactivation takes only the identity's own active device, once, with
/// a notified event; the device takes no code after it.
pub async fn only_the_owner_s_active_code_device_is_deactivated_and_it_stays_so(store: FreshStore) {
    let s = &*store;
    let anna = with_code_device(s, ANNA, "S1").await;
    let bo = identity(s, BO).await;
    assert!(
        !s.deactivate_code_device(bo.id, "S1", T0).await.unwrap(),
        "another person's"
    );
    assert!(!s.deactivate_code_device(anna.id, "nope", T0).await.unwrap());
    assert!(s.deactivate_code_device(anna.id, "S1", T0).await.unwrap());
    assert!(
        !s.deactivate_code_device(anna.id, "S1", T0).await.unwrap(),
        "once"
    );
    assert_eq!(
        s.code_device("S1").await.unwrap().unwrap().state,
        CodeDeviceState::Deactivated
    );
    assert_eq!(
        s.use_code_step("S1", anna.id, 101, T0).await.unwrap(),
        CodeStepResult::Unusable
    );
    assert!(
        claim_all(s, T0)
            .await
            .iter()
            .any(|d| d.event.kind == SecurityEventKind::CodeDeviceDeactivated)
    );
}

#[cfg(test)]
mod sqlite {
    //! The suite on today's backend, each check on a new database file.

    use super::FreshStore;
    use crate::store::SqliteStore;

    async fn fresh() -> FreshStore {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("conformance.sqlite3")).unwrap();
        FreshStore::keeping(store, dir)
    }

    crate::store_conformance_suite!(fresh());
}
