//! The SQLite backend of [`Store`].
//!
//! [`SqliteStore`] answers each trait method by running one subject file's
//! transaction function on the right connection: writes on the one writer
//! connection (one savepoint of a group-committed batch, see
//! [`connection`]), reads on a pooled reader, multi-statement reads in one
//! read transaction. The subject
//! files hold the SQL; the business rules they apply come from
//! [`crate::policy`], so another backend applies the same ones.
//!
//! JSON columns are serialized here, before the job is queued: the writer
//! connection is the one serialized resource, and keeping work off it keeps
//! every other write moving.

mod audit;
mod changes;
mod chips;
mod code_devices;
mod columns;
mod connection;
mod enrolments;
mod identities;
mod oidc;
mod outbox;
mod providers;
mod requests;
mod webhooks;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use eid_protocol::{AuthenticatorId, ChangeId, IdentityId, Nonce16, RequestId, ServiceProviderId};
use rusqlite::Connection;

use super::*;

/// The SQLite store.
pub struct SqliteStore {
    writer: connection::Writer,
    readers: Arc<Mutex<Vec<Connection>>>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_identity(&self, identity: Identity) -> StoreResult<()> {
        self.write(move |c| identities::create_identity(c, identity))
            .await
    }

    async fn identity(&self, id: IdentityId) -> StoreResult<Option<Identity>> {
        self.read(move |c| identities::load_identity(c, &id)).await
    }

    async fn identity_by_user_id(&self, user_id_folded: &str) -> StoreResult<Option<Identity>> {
        let folded = user_id_folded.to_owned();
        self.read(move |c| identities::identity_by_user_id(c, folded))
            .await
    }

    async fn set_blocked(
        &self,
        id: IdentityId,
        blocked: bool,
        now_ms: u64,
    ) -> StoreResult<Option<Vec<RequestId>>> {
        self.write(move |c| identities::set_blocked(c, id, blocked, now_ms, None))
            .await
    }

    async fn set_notify_every_use(
        &self,
        id: IdentityId,
        on: bool,
        by: AuthenticatorId,
        now_ms: u64,
    ) -> StoreResult<bool> {
        self.write(move |c| identities::set_notify_every_use(c, id, on, by, now_ms))
            .await
    }

    async fn claim_deliveries(
        &self,
        channels: Vec<Channel>,
        now_ms: u64,
        limit: u32,
        lease_ms: u64,
        max_attempts: u32,
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        if channels.is_empty() {
            return Ok(Vec::new());
        }
        // Most polls find nothing: ask a reader first, so an idle dispatcher
        // never queues behind (or delays) the writer.
        if !self.read(move |c| outbox::any_due(c, now_ms)).await? {
            return Ok(Vec::new());
        }
        self.write(move |c| {
            outbox::claim_deliveries(c, channels, now_ms, limit, lease_ms, max_attempts)
        })
        .await
    }

    async fn finish_delivery(
        &self,
        id: u64,
        outcome: DeliveryOutcome,
        now_ms: u64,
    ) -> StoreResult<()> {
        self.write(move |c| outbox::finish_delivery(c, id, outcome, now_ms))
            .await
    }

    async fn put_activation_code(&self, code: ActivationCode) -> StoreResult<()> {
        self.write(move |c| identities::put_activation_code(c, code))
            .await
    }

    async fn activate(
        &self,
        user_id_folded: &str,
        code_sha256_for: Box<dyn Fn(IdentityId) -> [u8; 32] + Send>,
        max_tries: u32,
        now_ms: u64,
        authenticator: Authenticator,
    ) -> StoreResult<ActivationResult> {
        let folded = user_id_folded.to_owned();
        self.write(move |c| {
            identities::activate(c, folded, code_sha256_for, max_tries, now_ms, authenticator)
        })
        .await
    }

    async fn authenticators(
        &self,
        ids: Vec<AuthenticatorId>,
    ) -> StoreResult<Vec<Option<Authenticator>>> {
        self.read_consistent(move |c| {
            ids.iter()
                .map(|id| identities::load_authenticator(c, id))
                .collect()
        })
        .await
    }

    async fn authenticators_of(&self, identity_id: IdentityId) -> StoreResult<Vec<Authenticator>> {
        self.read(move |c| identities::authenticators_of(c, identity_id))
            .await
    }

    async fn pull_snapshot(
        &self,
        authenticator_ids: Vec<AuthenticatorId>,
        feed: FeedCursors,
        decisions_after: Vec<u64>,
        now_ms: u64,
    ) -> StoreResult<PullSnapshot> {
        self.read_consistent(move |c| {
            requests::pull_snapshot(c, authenticator_ids, feed, decisions_after, now_ms)
        })
        .await
    }

    /// A phone with one account (the common case) has its nonce and its read
    /// in one job on the writer connection, as PostgreSQL has them in one
    /// statement: the pull made a writer trip for its nonce anyway, and the
    /// writer's connection keeps its page cache (no other connection
    /// writes), where a reader's starts empty after every commit and reads
    /// each page again. The read sees what the batch's earlier jobs wrote and
    /// nothing a failed job wrote (each job has its own savepoint), and is
    /// answered only after the batch commits, as every job is: a batch with a
    /// durable write in it commits with its fsync, and a batch without one
    /// holds only pull nonces, so the pull never shows a write that a crash
    /// could still undo. A failed read rolls its nonce back with it (the pull
    /// was refused; nothing was shown). A pull of several accounts (up to
    /// [`eid_protocol::wire::MAX_PULL_AUTHENTICATORS`], each with its own feed
    /// and decisions) reads on a reader after its nonce, so that no single
    /// pull holds the one writer, which every approval waits for, for long.
    async fn pull_with_nonce(
        &self,
        nonce: Nonce16,
        keep_until_ms: u64,
        authenticator_ids: Vec<AuthenticatorId>,
        feed: FeedCursors,
        decisions_after: Vec<u64>,
        now_ms: u64,
    ) -> StoreResult<Option<PullSnapshot>> {
        if authenticator_ids.len() != 1 {
            if !self.use_pull_nonce(nonce, keep_until_ms).await? {
                return Ok(None);
            }
            return self
                .pull_snapshot(authenticator_ids, feed, decisions_after, now_ms)
                .await
                .map(Some);
        }
        self.write_unsynced(move |c| {
            if !requests::use_nonce(c, nonce, keep_until_ms)? {
                return Ok(None);
            }
            requests::pull_snapshot(c, authenticator_ids, feed, decisions_after, now_ms).map(Some)
        })
        .await
    }

    async fn decision_context(
        &self,
        request_id: RequestId,
        authenticator_id: AuthenticatorId,
    ) -> StoreResult<DecisionContext> {
        self.read_consistent(move |c| requests::decision_context(c, request_id, authenticator_id))
            .await
    }

    async fn use_nonce(&self, nonce: Nonce16, keep_until_ms: u64) -> StoreResult<bool> {
        self.write(move |c| requests::use_nonce(c, nonce, keep_until_ms))
            .await
    }

    async fn use_pull_nonce(&self, nonce: Nonce16, keep_until_ms: u64) -> StoreResult<bool> {
        self.write_unsynced(move |c| requests::use_nonce(c, nonce, keep_until_ms))
            .await
    }

    async fn nonce_seen(&self, nonce: Nonce16) -> StoreResult<bool> {
        self.read(move |c| requests::nonce_seen(c, nonce)).await
    }

    async fn purge_nonces(&self, now_ms: u64) -> StoreResult<u64> {
        self.write(move |c| requests::purge_nonces(c, now_ms)).await
    }

    async fn create_service_provider(&self, sp: ServiceProvider) -> StoreResult<()> {
        self.write(move |c| providers::create_service_provider(c, sp))
            .await
    }

    async fn register_service_provider(&self, sp: ServiceProvider) -> StoreResult<RegisterResult> {
        self.write(move |c| providers::register_service_provider(c, sp))
            .await
    }

    async fn service_provider_by_key(
        &self,
        api_key_sha256: [u8; 32],
    ) -> StoreResult<Option<ServiceProvider>> {
        self.read(move |c| providers::service_provider_by_key(c, api_key_sha256))
            .await
    }

    async fn service_provider(
        &self,
        id: ServiceProviderId,
    ) -> StoreResult<Option<ServiceProvider>> {
        self.read(move |c| providers::service_provider(c, id)).await
    }

    async fn provider_by_api_key(&self, key_sha256: [u8; 32]) -> StoreResult<Option<ProviderKey>> {
        self.read(move |c| providers::provider_by_api_key(c, key_sha256))
            .await
    }

    async fn api_keys(&self, service_provider_id: ServiceProviderId) -> StoreResult<Vec<ApiKey>> {
        self.read(move |c| providers::api_keys(c, service_provider_id))
            .await
    }

    async fn webhook(
        &self,
        service_provider_id: ServiceProviderId,
    ) -> StoreResult<Option<Webhook>> {
        self.read(move |c| providers::webhook(c, service_provider_id))
            .await
    }

    async fn claim_webhook_deliveries(
        &self,
        now_ms: u64,
        limit: u32,
        lease_ms: u64,
        max_attempts: u32,
    ) -> StoreResult<Vec<ClaimedWebhookDelivery>> {
        // As for the security events: an idle dispatcher asks a reader, and
        // never queues behind (or delays) the writer.
        if !self.read(move |c| webhooks::any_due(c, now_ms)).await? {
            return Ok(Vec::new());
        }
        self.write(move |c| webhooks::claim(c, now_ms, limit, lease_ms, max_attempts))
            .await
    }

    async fn finish_webhook_delivery(
        &self,
        id: u64,
        outcome: DeliveryOutcome,
        now_ms: u64,
    ) -> StoreResult<()> {
        self.write(move |c| webhooks::finish(c, id, outcome, now_ms))
            .await
    }

    async fn create_request_limited(
        &self,
        request: StoredRequest,
        limits: RequestLimits,
        now_ms: u64,
    ) -> StoreResult<CreateResult> {
        let envelope_json = serde_json::to_string(&request.envelope)?;
        self.write(move |c| {
            requests::create_request_limited(c, request, envelope_json, limits, now_ms)
        })
        .await
    }

    async fn request(&self, id: RequestId) -> StoreResult<Option<StoredRequest>> {
        self.read(move |c| requests::load_request(c, &id)).await
    }

    async fn decide(
        &self,
        request_id: RequestId,
        record: DecisionRecord,
        pin_verified: bool,
        now_ms: u64,
    ) -> StoreResult<DecideResult> {
        let receipt_json = serde_json::to_string(&record.receipt)?;
        self.write(move |c| {
            requests::decide(c, request_id, receipt_json, record, pin_verified, now_ms)
        })
        .await
    }

    async fn record_binding_mismatch(
        &self,
        request_id: RequestId,
        cancel_at: u32,
        now_ms: u64,
    ) -> StoreResult<u32> {
        self.write(move |c| requests::record_binding_mismatch(c, request_id, cancel_at, now_ms))
            .await
    }

    async fn record_wrong_pin(
        &self,
        id: AuthenticatorId,
        lock_at: u32,
        now_ms: u64,
    ) -> StoreResult<u32> {
        self.write(move |c| identities::record_wrong_pin(c, id, lock_at, now_ms))
            .await
    }

    async fn stop_on_call(
        &self,
        request_id: RequestId,
        authenticator_id: AuthenticatorId,
        call_context: eid_protocol::CallContext,
        now_ms: u64,
    ) -> StoreResult<StopResult> {
        let context_json = serde_json::to_string(&call_context)?;
        self.write(move |c| {
            requests::stop_on_call(c, request_id, authenticator_id, context_json, now_ms)
        })
        .await
    }

    async fn call_stop(&self, request_id: RequestId) -> StoreResult<Option<CallStop>> {
        self.read(move |c| requests::call_stop(c, request_id)).await
    }

    async fn cancel_request(
        &self,
        id: RequestId,
        service_provider_id: ServiceProviderId,
        now_ms: u64,
    ) -> StoreResult<CancelResult> {
        self.write(move |c| requests::cancel_request(c, id, service_provider_id, now_ms))
            .await
    }

    async fn count_pending(&self, identity_id: IdentityId, now_ms: u64) -> StoreResult<u64> {
        self.read(move |c| requests::count_pending(c, identity_id, now_ms))
            .await
    }

    async fn start_enrolment(
        &self,
        enrolment: Enrolment,
        request: Option<StoredRequest>,
        max_devices: u64,
        max_per_hour: u64,
        now_ms: u64,
    ) -> StoreResult<StartEnrolmentResult> {
        let envelope_json = request
            .as_ref()
            .map(|r| serde_json::to_string(&r.envelope))
            .transpose()?;
        self.write(move |c| {
            enrolments::start_enrolment(
                c,
                enrolment,
                envelope_json,
                request,
                max_devices,
                max_per_hour,
                now_ms,
            )
        })
        .await
    }

    async fn enrolment(&self, id: AuthenticatorId) -> StoreResult<Option<Enrolment>> {
        self.read(move |c| enrolments::load_enrolment(c, &id)).await
    }

    async fn poll_enrolment(
        &self,
        id: AuthenticatorId,
        max_devices: u64,
        now_ms: u64,
    ) -> StoreResult<EnrolmentPoll> {
        self.write(move |c| enrolments::poll_enrolment(c, id, max_devices, now_ms))
            .await
    }

    async fn cancel_enrolment(
        &self,
        authenticator_id: AuthenticatorId,
        enrolment_id: AuthenticatorId,
        now_ms: u64,
    ) -> StoreResult<CancelEnrolmentResult> {
        self.write(move |c| enrolments::cancel_enrolment(c, authenticator_id, enrolment_id, now_ms))
            .await
    }

    async fn start_change(
        &self,
        change: StoredChange,
        request: StoredRequest,
        max_pending: u64,
        now_ms: u64,
    ) -> StoreResult<StartChangeResult> {
        let envelope_json = serde_json::to_string(&request.envelope)?;
        self.write(move |c| {
            changes::start_change(c, change, envelope_json, request, max_pending, now_ms)
        })
        .await
    }

    async fn change(&self, id: ChangeId) -> StoreResult<Option<(StoredChange, Identity)>> {
        self.read_consistent(move |c| changes::change(c, id)).await
    }

    async fn open_changes(&self, identity_id: IdentityId) -> StoreResult<Vec<StoredChange>> {
        self.read(move |c| changes::open_changes_of(c, &identity_id))
            .await
    }

    async fn confirm_change(
        &self,
        id: ChangeId,
        request: StoredRequest,
        max_pending: u64,
        now_ms: u64,
    ) -> StoreResult<ConfirmChangeResult> {
        let envelope_json = serde_json::to_string(&request.envelope)?;
        self.write(move |c| {
            changes::confirm_change(c, id, envelope_json, request, max_pending, now_ms)
        })
        .await
    }

    async fn expire_changes(&self, now_ms: u64, limit: u32) -> StoreResult<u64> {
        self.write(move |c| changes::expire_changes(c, now_ms, limit))
            .await
    }

    async fn purge_decoy_enrolments(&self, now_ms: u64, limit: u32) -> StoreResult<u64> {
        self.write(move |c| enrolments::purge_decoy_enrolments(c, now_ms, u64::from(limit)))
            .await
    }

    async fn cancel_change(
        &self,
        id: ChangeId,
        identity_id: IdentityId,
        authenticator_id: AuthenticatorId,
        now_ms: u64,
    ) -> StoreResult<CancelChangeResult> {
        self.write(move |c| changes::cancel_change(c, id, identity_id, authenticator_id, now_ms))
            .await
    }

    async fn admin_action(
        &self,
        audit: NewAudit,
        action: AdminAction,
    ) -> StoreResult<AdminActionResult> {
        self.write(move |c| audit::admin_action(c, audit, action))
            .await
    }

    async fn record_audit(&self, entry: NewAudit) -> StoreResult<u64> {
        self.write(move |c| audit::insert_audit(c, &entry)).await
    }

    async fn audit_entries(
        &self,
        identity_id: Option<IdentityId>,
        before: Option<u64>,
        limit: u32,
    ) -> StoreResult<Vec<AuditEntry>> {
        self.read(move |c| audit::audit_entries(c, identity_id, before, limit))
            .await
    }

    async fn agent_by_token(&self, token_sha256: [u8; 32]) -> StoreResult<Option<Agent>> {
        self.read(move |c| audit::agent_by_token(c, token_sha256))
            .await
    }

    async fn agents(&self) -> StoreResult<Vec<Agent>> {
        self.read(audit::agents).await
    }

    async fn oidc_client(&self, client_id: &str) -> StoreResult<Option<OidcClient>> {
        let client_id = client_id.to_owned();
        self.read(move |c| oidc::oidc_client(c, &client_id)).await
    }

    async fn create_oidc_login(
        &self,
        login: OidcLogin,
        request_uri_sha256: [u8; 32],
    ) -> StoreResult<()> {
        let params_json = serde_json::to_string(&login.params)?;
        self.write(move |c| oidc::create_oidc_login(c, login, params_json, request_uri_sha256))
            .await
    }

    async fn bind_oidc_login(
        &self,
        request_uri_sha256: [u8; 32],
        client_id: &str,
        browser_sha256: [u8; 32],
        now_ms: u64,
    ) -> StoreResult<BindLoginResult> {
        let client_id = client_id.to_owned();
        self.write(move |c| {
            oidc::bind_oidc_login(c, request_uri_sha256, &client_id, browser_sha256, now_ms)
        })
        .await
    }

    async fn oidc_login(&self, id: LoginId) -> StoreResult<Option<OidcLogin>> {
        self.read(move |c| oidc::oidc_login(c, id)).await
    }

    async fn set_oidc_login_request(
        &self,
        id: LoginId,
        previous: Option<RequestId>,
        request_id: RequestId,
        request_expires_at_ms: u64,
    ) -> StoreResult<bool> {
        self.write(move |c| {
            oidc::set_oidc_login_request(c, id, previous, request_id, request_expires_at_ms)
        })
        .await
    }

    async fn issue_oidc_code(
        &self,
        id: LoginId,
        request_id: RequestId,
        code_sha256: [u8; 32],
        code_expires_at_ms: u64,
    ) -> StoreResult<bool> {
        self.write(move |c| {
            oidc::issue_oidc_code(c, id, request_id, code_sha256, code_expires_at_ms)
        })
        .await
    }

    async fn oidc_login_by_code(&self, code_sha256: [u8; 32]) -> StoreResult<Option<OidcLogin>> {
        self.read(move |c| oidc::oidc_login_by_code(c, code_sha256))
            .await
    }

    async fn redeem_oidc_code(
        &self,
        code_sha256: [u8; 32],
        access: Option<([u8; 32], u64)>,
        now_ms: u64,
    ) -> StoreResult<RedeemResult> {
        self.write(move |c| oidc::redeem_oidc_code(c, code_sha256, access, now_ms))
            .await
    }

    async fn oidc_login_by_access_token(
        &self,
        access_sha256: [u8; 32],
    ) -> StoreResult<Option<OidcLogin>> {
        self.read(move |c| oidc::oidc_login_by_access_token(c, access_sha256))
            .await
    }

    async fn purge_oidc_logins(&self, now_ms: u64, limit: u32) -> StoreResult<u64> {
        self.write(move |c| oidc::purge_oidc_logins(c, now_ms, limit))
            .await
    }

    async fn choose_oidc_login_method(
        &self,
        id: LoginId,
        method: LoginMethod,
        hardware_identity_id: Option<IdentityId>,
    ) -> StoreResult<bool> {
        self.write(move |c| oidc::choose_oidc_login_method(c, id, method, hardware_identity_id))
            .await
    }

    async fn pass_oidc_first_factor(
        &self,
        id: LoginId,
        method: LoginMethod,
        first_factor: String,
    ) -> StoreResult<bool> {
        self.write(move |c| oidc::pass_oidc_first_factor(c, id, method, first_factor))
            .await
    }

    async fn import_token_batch(
        &self,
        audit: NewAudit,
        batch: TokenBatch,
        devices: Vec<CodeDevice>,
    ) -> StoreResult<ImportResult> {
        self.write(move |c| code_devices::import_token_batch(c, audit, batch, devices))
            .await
    }

    async fn code_device(&self, serial: &str) -> StoreResult<Option<CodeDevice>> {
        let serial = serial.to_owned();
        self.read(move |c| code_devices::code_device(c, &serial))
            .await
    }

    async fn code_devices_of(&self, identity_id: IdentityId) -> StoreResult<Vec<CodeDevice>> {
        self.read(move |c| code_devices::code_devices_of(c, identity_id))
            .await
    }

    async fn use_code_step(
        &self,
        serial: &str,
        identity_id: IdentityId,
        step: u64,
        now_ms: u64,
    ) -> StoreResult<CodeStepResult> {
        let serial = serial.to_owned();
        self.write(move |c| code_devices::use_code_step(c, &serial, identity_id, step, now_ms))
            .await
    }

    async fn record_code_device_attempt(
        &self,
        serial: &str,
        attempt: CodeAttempt,
        now_ms: u64,
    ) -> StoreResult<AttemptRecorded> {
        let serial = serial.to_owned();
        self.write(move |c| code_devices::record_code_device_attempt(c, &serial, attempt, now_ms))
            .await
    }

    async fn activate_code_device_by_support(
        &self,
        activation: SupportActivation,
    ) -> StoreResult<SupportActivationResult> {
        self.write(move |c| code_devices::activate_code_device_by_support(c, activation))
            .await
    }

    async fn deactivate_code_device(
        &self,
        identity_id: IdentityId,
        serial: &str,
        now_ms: u64,
    ) -> StoreResult<bool> {
        let serial = serial.to_owned();
        self.write(move |c| code_devices::deactivate_code_device(c, identity_id, &serial, now_ms))
            .await
    }

    async fn use_unassigned_code_step(&self, serial: &str, step: u64) -> StoreResult<bool> {
        let serial = serial.to_owned();
        self.write(move |c| code_devices::use_unassigned_code_step(c, &serial, step))
            .await
    }

    async fn request_code_device_activation(
        &self,
        serial: &str,
        identity_id: IdentityId,
        request_id: RequestId,
        step: u64,
        access_code_hash: crate::access_code::AccessCodeHash,
    ) -> StoreResult<bool> {
        let serial = serial.to_owned();
        self.write(move |c| {
            code_devices::request_code_device_activation(
                c,
                &serial,
                identity_id,
                request_id,
                step,
                &access_code_hash,
            )
        })
        .await
    }

    async fn complete_oidc_login_by_hardware(
        &self,
        id: LoginId,
        receipt: SignedHardwareReceipt,
        code_sha256: [u8; 32],
        code_expires_at_ms: u64,
    ) -> StoreResult<bool> {
        let method = LoginMethod::parse(&receipt.receipt.method)
            .ok_or(StoreError::Conflict("hardware receipt method"))?;
        let receipt_json = serde_json::to_string(&receipt)?;
        self.write(move |c| {
            oidc::complete_oidc_login_by_hardware(
                c,
                id,
                method,
                receipt_json,
                code_sha256,
                code_expires_at_ms,
            )
        })
        .await
    }

    async fn put_chip_ceremony(&self, ceremony: ChipCeremony, now_ms: u64) -> StoreResult<()> {
        self.write(move |c| chips::put_ceremony(c, ceremony, now_ms))
            .await
    }

    async fn take_chip_ceremony(
        &self,
        id: [u8; 16],
        now_ms: u64,
    ) -> StoreResult<Option<ChipCeremony>> {
        self.write(move |c| chips::take_ceremony(c, id, now_ms))
            .await
    }

    async fn add_chip(&self, chip: Chip, event: NewEvent) -> StoreResult<AddChipResult> {
        self.write(move |c| chips::add_chip(c, chip, event)).await
    }

    async fn chips_of(&self, identity_id: IdentityId) -> StoreResult<Vec<Chip>> {
        self.read(move |c| chips::chips_of(c, identity_id)).await
    }

    async fn save_chip(&self, chip: Chip, events: Vec<NewEvent>) -> StoreResult<bool> {
        self.write(move |c| chips::save_chip(c, chip, events)).await
    }
}
