//! Support agents and the append-only audit of admin actions: each admin
//! action that writes runs here with its audit row, in one savepoint.

use eid_protocol::IdentityId;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::columns::{Col, blob32, col, i64_of, opt_col, opt_u64_at, u64_at};
use super::{identities, oidc, providers};
use crate::store::{
    ActivationCode, AdminAction, AdminActionResult, Agent, AuditEntry, NewAudit, RegisterResult,
    StoreError, StoreResult,
};

/// Appends an audit row inside the caller's transaction; returns its id.
pub(super) fn insert_audit(c: &Connection, audit: &NewAudit) -> StoreResult<u64> {
    let id: i64 = c
        .prepare_cached(
            "INSERT INTO audit (at_ms, agent_id, agent_name, action, identity_id, \
             service_provider_id, target_agent_id, reason, outcome) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING id",
        )?
        .query_row(
            params![
                i64_of(audit.at_ms),
                audit.agent_id.map(i64_of),
                audit.agent_name,
                audit.action.as_str(),
                audit.identity_id.as_ref().map(Col),
                audit.service_provider_id.as_ref().map(Col),
                audit.target_agent_id.map(i64_of),
                audit.reason,
                audit.outcome.as_str(),
            ],
            |r| r.get(0),
        )?;
    Ok(id as u64)
}

fn identity_exists(c: &Connection, id: &IdentityId) -> StoreResult<bool> {
    Ok(
        c.prepare_cached("SELECT EXISTS (SELECT 1 FROM identities WHERE id = ?1)")?
            .query_row(params![Col(id)], |r| r.get::<_, bool>(0))?,
    )
}

fn done(audit_id: u64) -> AdminActionResult {
    AdminActionResult::Done {
        audit_id,
        cancelled: Vec::new(),
        agent_id: None,
    }
}

/// The transaction of [`Store::admin_action`](crate::store::Store::admin_action):
/// the action first (a refusal returns before anything is written), then
/// its audit row.
pub(super) fn admin_action(
    c: &Connection,
    mut audit: NewAudit,
    action: AdminAction,
) -> StoreResult<AdminActionResult> {
    match action {
        AdminAction::CreateIdentity(identity) => {
            audit.identity_id = Some(identity.id);
            match identities::create_identity(c, identity) {
                Ok(()) => Ok(done(insert_audit(c, &audit)?)),
                Err(StoreError::Conflict(_)) => Ok(AdminActionResult::UserIdTaken),
                Err(e) => Err(e),
            }
        }
        AdminAction::IssueActivationCode(code) => {
            let ActivationCode { identity_id, .. } = code;
            if !identity_exists(c, &identity_id)? {
                return Ok(AdminActionResult::UnknownIdentity);
            }
            audit.identity_id = Some(identity_id);
            identities::put_activation_code(c, code)?;
            Ok(done(insert_audit(c, &audit)?))
        }
        AdminAction::SetBlocked {
            identity_id,
            blocked,
        } => {
            if !identity_exists(c, &identity_id)? {
                return Ok(AdminActionResult::UnknownIdentity);
            }
            audit.identity_id = Some(identity_id);
            // The audit row first, so the person's event can point to it.
            let audit_id = insert_audit(c, &audit)?;
            let cancelled =
                identities::set_blocked(c, identity_id, blocked, audit.at_ms, Some(audit_id))?
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
            match providers::register_service_provider(c, sp)? {
                RegisterResult::Registered => Ok(done(insert_audit(c, &audit)?)),
                RegisterResult::ConfusableWith(name) => Ok(AdminActionResult::ConfusableWith(name)),
            }
        }
        AdminAction::CreateAgent(agent) => {
            let id: i64 = c
                .prepare_cached(
                    "INSERT INTO agents (name, role, token_sha256, created_at_ms) \
                     VALUES (?1, ?2, ?3, ?4) RETURNING id",
                )?
                .query_row(
                    params![
                        agent.name,
                        Col(agent.role),
                        agent.token_sha256.as_slice(),
                        i64_of(agent.created_at_ms)
                    ],
                    |r| r.get(0),
                )?;
            audit.target_agent_id = Some(id as u64);
            Ok(AdminActionResult::Done {
                audit_id: insert_audit(c, &audit)?,
                cancelled: Vec::new(),
                agent_id: Some(id as u64),
            })
        }
        AdminAction::RotateApiKey {
            service_provider_id,
            key_sha256,
            grace_until_ms,
        } => {
            if !providers::provider_exists(c, &service_provider_id)? {
                return Ok(AdminActionResult::UnknownProvider);
            }
            audit.service_provider_id = Some(service_provider_id);
            providers::rotate_api_key(
                c,
                &service_provider_id,
                &key_sha256,
                grace_until_ms,
                audit.at_ms,
            )?;
            Ok(done(insert_audit(c, &audit)?))
        }
        AdminAction::RevokeApiKey {
            service_provider_id,
            key_id,
        } => {
            if !providers::provider_exists(c, &service_provider_id)? {
                return Ok(AdminActionResult::UnknownProvider);
            }
            if !providers::revoke_api_key(c, &service_provider_id, key_id, audit.at_ms)? {
                return Ok(AdminActionResult::UnknownApiKey);
            }
            audit.service_provider_id = Some(service_provider_id);
            Ok(done(insert_audit(c, &audit)?))
        }
        AdminAction::SetWebhook {
            service_provider_id,
            webhook,
        } => {
            if !providers::provider_exists(c, &service_provider_id)? {
                return Ok(AdminActionResult::UnknownProvider);
            }
            audit.service_provider_id = Some(service_provider_id);
            providers::set_webhook(c, &service_provider_id, webhook.as_ref())?;
            Ok(done(insert_audit(c, &audit)?))
        }
        AdminAction::RevokeAgent(id) => {
            let n = c
                .prepare_cached(
                    "UPDATE agents SET revoked_at_ms = ?2 WHERE id = ?1 AND revoked_at_ms IS NULL",
                )?
                .execute(params![i64_of(id), i64_of(audit.at_ms)])?;
            if n == 0 {
                return Ok(AdminActionResult::UnknownAgent);
            }
            audit.target_agent_id = Some(id);
            Ok(done(insert_audit(c, &audit)?))
        }
        AdminAction::RegisterOidcClient(client) => {
            audit.service_provider_id = Some(client.service_provider_id);
            if !providers::provider_exists(c, &client.service_provider_id)? {
                return Ok(AdminActionResult::UnknownProvider);
            }
            oidc::insert_oidc_client(c, client)?;
            Ok(done(insert_audit(c, &audit)?))
        }
    }
}

const AUDIT_COLUMNS: &str = "id, at_ms, agent_id, agent_name, action, identity_id, \
     service_provider_id, target_agent_id, reason, outcome";

fn audit_row(r: &Row<'_>) -> rusqlite::Result<AuditEntry> {
    Ok(AuditEntry {
        id: u64_at(r, 0)?,
        at_ms: u64_at(r, 1)?,
        agent_id: opt_u64_at(r, 2)?,
        agent_name: r.get(3)?,
        action: r.get(4)?,
        identity_id: opt_col(r, 5)?,
        service_provider_id: opt_col(r, 6)?,
        target_agent_id: opt_u64_at(r, 7)?,
        reason: r.get(8)?,
        outcome: r.get(9)?,
    })
}

/// The read of [`Store::audit_entries`](crate::store::Store::audit_entries).
pub(super) fn audit_entries(
    c: &Connection,
    identity_id: Option<IdentityId>,
    before: Option<u64>,
    limit: u32,
) -> StoreResult<Vec<AuditEntry>> {
    let before = before.map_or(i64::MAX, i64_of);
    let rows = match identity_id {
        Some(id) => c
            .prepare_cached(&format!(
                "SELECT {AUDIT_COLUMNS} FROM audit WHERE identity_id = ?1 AND id < ?2 \
                 ORDER BY id DESC LIMIT ?3"
            ))?
            .query_map(params![Col(id), before, limit], audit_row)?
            .collect::<Result<Vec<_>, _>>()?,
        None => c
            .prepare_cached(&format!(
                "SELECT {AUDIT_COLUMNS} FROM audit WHERE id < ?1 ORDER BY id DESC LIMIT ?2"
            ))?
            .query_map(params![before, limit], audit_row)?
            .collect::<Result<Vec<_>, _>>()?,
    };
    Ok(rows)
}

const AGENT_COLUMNS: &str = "id, name, role, token_sha256, created_at_ms, revoked_at_ms";

fn agent_row(r: &Row<'_>) -> rusqlite::Result<Agent> {
    Ok(Agent {
        id: u64_at(r, 0)?,
        name: r.get(1)?,
        role: col(r, 2)?,
        token_sha256: blob32(r, 3)?,
        created_at_ms: u64_at(r, 4)?,
        revoked_at_ms: opt_u64_at(r, 5)?,
    })
}

/// The read of [`Store::agent_by_token`](crate::store::Store::agent_by_token).
pub(super) fn agent_by_token(c: &Connection, token_sha256: [u8; 32]) -> StoreResult<Option<Agent>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {AGENT_COLUMNS} FROM agents WHERE token_sha256 = ?1"
    ))?
    .query_row(params![token_sha256.as_slice()], agent_row)
    .optional()?)
}

/// The read of [`Store::agents`](crate::store::Store::agents).
pub(super) fn agents(c: &Connection) -> StoreResult<Vec<Agent>> {
    Ok(
        c.prepare_cached(&format!("SELECT {AGENT_COLUMNS} FROM agents ORDER BY id"))?
            .query_map([], agent_row)?
            .collect::<Result<Vec<_>, _>>()?,
    )
}
