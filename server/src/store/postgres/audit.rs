//! Admin actions with their append-only audit rows, and support agents.

use eid_protocol::IdentityId;
use eid_protocol::wire::AgentRole;
use tokio_postgres::Row;

use super::columns::{Col, col, get, i64_of, opt_col};
use super::connection::{Tx, all, exec, one, opt};
use super::{identities, oidc, providers};
use crate::store::{
    AdminAction, AdminActionResult, Agent, AuditEntry, NewAudit, RegisterResult, StoreError,
    StoreResult,
};

/// Appends an audit row; returns its id.
pub(super) async fn insert_audit(t: &Tx<'_>, audit: &NewAudit) -> StoreResult<u64> {
    let row = one(
        t,
        "INSERT INTO audit (at_ms, agent_id, agent_name, action, identity_id, \
         service_provider_id, target_agent_id, reason, outcome) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        &[
            &i64_of(audit.at_ms),
            &audit.agent_id.map(i64_of),
            &audit.agent_name,
            &audit.action.as_str(),
            &audit.identity_id.as_ref().map(Col),
            &audit.service_provider_id.as_ref().map(Col),
            &audit.target_agent_id.map(i64_of),
            &audit.reason,
            &audit.outcome.as_str(),
        ],
    )
    .await?;
    col(&row, 0)
}

async fn identity_exists(t: &Tx<'_>, id: &IdentityId) -> StoreResult<bool> {
    let row = one(
        t,
        "SELECT EXISTS (SELECT 1 FROM identities WHERE id = $1)",
        &[&Col(id)],
    )
    .await?;
    get(&row, 0)
}

fn done(audit_id: u64) -> AdminActionResult {
    AdminActionResult::Done {
        audit_id,
        cancelled: Vec::new(),
        agent_id: None,
    }
}

/// The transaction of [`Store::admin_action`](crate::store::Store::admin_action).
pub(super) async fn admin_action(
    t: &Tx<'_>,
    mut audit: NewAudit,
    action: AdminAction,
) -> StoreResult<AdminActionResult> {
    match action {
        AdminAction::CreateIdentity(identity) => {
            audit.identity_id = Some(identity.id);
            // A taken user ID: checked first, because a failed INSERT would
            // abort the whole transaction (the unique constraint stays the
            // last word between replicas).
            let taken = one(
                t,
                "SELECT EXISTS (SELECT 1 FROM identities WHERE user_id_folded = $1)",
                &[&identity.user_id_folded],
            )
            .await?;
            if get::<bool>(&taken, 0)? {
                return Ok(AdminActionResult::UserIdTaken);
            }
            identities::create_identity(t, identity).await?;
            Ok(done(insert_audit(t, &audit).await?))
        }
        AdminAction::IssueActivationCode(code) => {
            if !identity_exists(t, &code.identity_id).await? {
                return Ok(AdminActionResult::UnknownIdentity);
            }
            audit.identity_id = Some(code.identity_id);
            identities::put_activation_code(t, &code).await?;
            Ok(done(insert_audit(t, &audit).await?))
        }
        AdminAction::SetBlocked {
            identity_id,
            blocked,
        } => {
            if !identity_exists(t, &identity_id).await? {
                return Ok(AdminActionResult::UnknownIdentity);
            }
            audit.identity_id = Some(identity_id);
            let audit_id = insert_audit(t, &audit).await?;
            let cancelled =
                identities::set_blocked(t, identity_id, blocked, audit.at_ms, Some(audit_id))
                    .await?
                    .ok_or(StoreError::Inconsistent(
                        "identity vanished in its own write",
                    ))?;
            Ok(AdminActionResult::Done {
                audit_id,
                cancelled,
                agent_id: None,
            })
        }
        AdminAction::RegisterProvider(sp) => {
            audit.service_provider_id = Some(sp.id);
            match providers::register_service_provider(t, &sp).await? {
                RegisterResult::Registered => Ok(done(insert_audit(t, &audit).await?)),
                RegisterResult::ConfusableWith(name) => Ok(AdminActionResult::ConfusableWith(name)),
            }
        }
        AdminAction::CreateAgent(agent) => {
            let row = one(
                t,
                "INSERT INTO agents (name, role, token_sha256, created_at_ms) \
                 VALUES ($1, $2, $3, $4) RETURNING id",
                &[
                    &agent.name,
                    &Col(agent.role),
                    &agent.token_sha256.as_slice(),
                    &i64_of(agent.created_at_ms),
                ],
            )
            .await?;
            let id: u64 = col(&row, 0)?;
            audit.target_agent_id = Some(id);
            Ok(AdminActionResult::Done {
                audit_id: insert_audit(t, &audit).await?,
                cancelled: Vec::new(),
                agent_id: Some(id),
            })
        }
        AdminAction::RotateApiKey {
            service_provider_id,
            key_sha256,
            grace_until_ms,
        } => {
            if !providers::provider_exists(t, &service_provider_id).await? {
                return Ok(AdminActionResult::UnknownProvider);
            }
            audit.service_provider_id = Some(service_provider_id);
            providers::rotate_api_key(
                t,
                &service_provider_id,
                &key_sha256,
                grace_until_ms,
                audit.at_ms,
            )
            .await?;
            Ok(done(insert_audit(t, &audit).await?))
        }
        AdminAction::RevokeApiKey {
            service_provider_id,
            key_id,
        } => {
            if !providers::provider_exists(t, &service_provider_id).await? {
                return Ok(AdminActionResult::UnknownProvider);
            }
            if !providers::revoke_api_key(t, &service_provider_id, key_id, audit.at_ms).await? {
                return Ok(AdminActionResult::UnknownApiKey);
            }
            audit.service_provider_id = Some(service_provider_id);
            Ok(done(insert_audit(t, &audit).await?))
        }
        AdminAction::SetWebhook {
            service_provider_id,
            webhook,
        } => {
            if !providers::provider_exists(t, &service_provider_id).await? {
                return Ok(AdminActionResult::UnknownProvider);
            }
            audit.service_provider_id = Some(service_provider_id);
            providers::set_webhook(t, &service_provider_id, webhook.as_ref()).await?;
            Ok(done(insert_audit(t, &audit).await?))
        }
        AdminAction::RevokeAgent(id) => {
            let n = exec(
                t,
                "UPDATE agents SET revoked_at_ms = $2 WHERE id = $1 AND revoked_at_ms IS NULL",
                &[&i64_of(id), &i64_of(audit.at_ms)],
            )
            .await?;
            if n == 0 {
                return Ok(AdminActionResult::UnknownAgent);
            }
            audit.target_agent_id = Some(id);
            Ok(done(insert_audit(t, &audit).await?))
        }
        AdminAction::RegisterOidcClient(client) => {
            audit.service_provider_id = Some(client.service_provider_id);
            if !providers::provider_exists(t, &client.service_provider_id).await? {
                return Ok(AdminActionResult::UnknownProvider);
            }
            oidc::insert_oidc_client(t, &client).await?;
            Ok(done(insert_audit(t, &audit).await?))
        }
    }
}

const AUDIT_COLUMNS: &str = "id, at_ms, agent_id, agent_name, action, identity_id, \
     service_provider_id, target_agent_id, reason, outcome";

fn audit_row(r: &Row) -> StoreResult<AuditEntry> {
    Ok(AuditEntry {
        id: col(r, 0)?,
        at_ms: col(r, 1)?,
        agent_id: opt_col(r, 2)?,
        agent_name: get(r, 3)?,
        action: get(r, 4)?,
        identity_id: opt_col(r, 5)?,
        service_provider_id: opt_col(r, 6)?,
        target_agent_id: opt_col(r, 7)?,
        reason: get(r, 8)?,
        outcome: get(r, 9)?,
    })
}

/// The read of [`Store::audit_entries`](crate::store::Store::audit_entries).
pub(super) async fn audit_entries(
    t: &Tx<'_>,
    identity_id: Option<IdentityId>,
    before: Option<u64>,
    limit: u32,
) -> StoreResult<Vec<AuditEntry>> {
    let before = before.map_or(i64::MAX, i64_of);
    let limit = i64::from(limit);
    let rows = match identity_id {
        Some(id) => {
            all(
                t,
                &format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit WHERE identity_id = $1 AND id < $2 \
                     ORDER BY id DESC LIMIT $3"
                ),
                &[&Col(id), &before, &limit],
            )
            .await?
        }
        None => {
            all(
                t,
                &format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit WHERE id < $1 ORDER BY id DESC LIMIT $2"
                ),
                &[&before, &limit],
            )
            .await?
        }
    };
    rows.iter().map(audit_row).collect()
}

const AGENT_COLUMNS: &str = "id, name, role, token_sha256, created_at_ms, revoked_at_ms";

fn agent_row(r: &Row) -> StoreResult<Agent> {
    Ok(Agent {
        id: col(r, 0)?,
        name: get(r, 1)?,
        role: col::<AgentRole>(r, 2)?,
        token_sha256: col(r, 3)?,
        created_at_ms: col(r, 4)?,
        revoked_at_ms: opt_col(r, 5)?,
    })
}

/// The read of [`Store::agent_by_token`](crate::store::Store::agent_by_token).
pub(super) async fn agent_by_token(
    t: &Tx<'_>,
    token_sha256: [u8; 32],
) -> StoreResult<Option<Agent>> {
    opt(
        t,
        &format!("SELECT {AGENT_COLUMNS} FROM agents WHERE token_sha256 = $1"),
        &[&token_sha256.as_slice()],
    )
    .await?
    .map(|r| agent_row(&r))
    .transpose()
}

/// The read of [`Store::agents`](crate::store::Store::agents).
pub(super) async fn agents(t: &Tx<'_>) -> StoreResult<Vec<Agent>> {
    all(
        t,
        &format!("SELECT {AGENT_COLUMNS} FROM agents ORDER BY id"),
        &[],
    )
    .await?
    .iter()
    .map(agent_row)
    .collect()
}
