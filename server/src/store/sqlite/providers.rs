//! Service providers: registration (refusing confusable names), their API
//! keys (look-up by hash, rotation, revocation) and their webhooks.

use eid_protocol::ServiceProviderId;
use rusqlite::{Connection, OptionalExtension, params};

use super::columns::opt_u64_at;
use super::columns::{Col, blob32, col, i64_of, is_unique_violation, u64_at};
use crate::store::{
    ApiKey, ProviderKey, RegisterResult, ServiceProvider, StoreError, StoreResult, Webhook,
};

/// The transaction of [`Store::create_service_provider`](crate::store::Store::create_service_provider).
pub(super) fn create_service_provider(c: &Connection, sp: ServiceProvider) -> StoreResult<()> {
    c.prepare_cached(
        "INSERT INTO service_providers (id, name, api_key_sha256, created_at_ms) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![Col(sp.id), sp.name, sp.api_key_sha256.as_slice(), i64_of(sp.created_at_ms)])
    .map_err(|e| if is_unique_violation(&e) { StoreError::Conflict("api_key") } else { e.into() })?;
    insert_api_key(c, &sp.id, &sp.api_key_sha256, sp.created_at_ms)?;
    Ok(())
}

/// The transaction of [`Store::register_service_provider`](crate::store::Store::register_service_provider).
pub(super) fn register_service_provider(
    c: &Connection,
    sp: ServiceProvider,
) -> StoreResult<RegisterResult> {
    // Registrations are rare: a scan of the names is cheap, and in
    // the write job it cannot race another registration.
    let names = c
        .prepare_cached("SELECT name FROM service_providers")?
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    let builtin = eid_protocol::SELF_SERVICE_PROVIDER_NAME;
    if let Some(existing) = std::iter::once(builtin)
        .chain(names.iter().map(String::as_str))
        .find(|n| eid_protocol::confusables::names_confusable(n, &sp.name))
    {
        return Ok(RegisterResult::ConfusableWith(existing.to_owned()));
    }
    c.prepare_cached(
        "INSERT INTO service_providers (id, name, api_key_sha256, created_at_ms) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![Col(sp.id), sp.name, sp.api_key_sha256.as_slice(), i64_of(sp.created_at_ms)])
    .map_err(|e| if is_unique_violation(&e) { StoreError::Conflict("api_key") } else { e.into() })?;
    insert_api_key(c, &sp.id, &sp.api_key_sha256, sp.created_at_ms)?;
    Ok(RegisterResult::Registered)
}

/// The transaction of [`Store::service_provider_by_key`](crate::store::Store::service_provider_by_key).
pub(super) fn service_provider_by_key(
    c: &Connection,
    api_key_sha256: [u8; 32],
) -> StoreResult<Option<ServiceProvider>> {
    let mut stmt = c.prepare_cached(
        "SELECT id, name, api_key_sha256, created_at_ms FROM service_providers WHERE api_key_sha256 = ?1",
    )?;
    Ok(stmt
        .query_row(params![api_key_sha256.as_slice()], |r| {
            Ok(ServiceProvider {
                id: col::<ServiceProviderId>(r, 0)?,
                name: r.get(1)?,
                api_key_sha256: blob32(r, 2)?,
                created_at_ms: u64_at(r, 3)?,
            })
        })
        .optional()?)
}

/// Whether a service provider with this id is registered.
pub(super) fn provider_exists(c: &Connection, id: &ServiceProviderId) -> StoreResult<bool> {
    Ok(
        c.prepare_cached("SELECT EXISTS (SELECT 1 FROM service_providers WHERE id = ?1)")?
            .query_row(params![Col(id)], |r| r.get::<_, bool>(0))?,
    )
}

/// The read of [`Store::service_provider`](crate::store::Store::service_provider).
pub(super) fn service_provider(
    c: &Connection,
    id: ServiceProviderId,
) -> StoreResult<Option<ServiceProvider>> {
    let mut stmt = c.prepare_cached(
        "SELECT id, name, api_key_sha256, created_at_ms FROM service_providers WHERE id = ?1",
    )?;
    Ok(stmt
        .query_row(params![Col(id)], |r| {
            Ok(ServiceProvider {
                id: col::<ServiceProviderId>(r, 0)?,
                name: r.get(1)?,
                api_key_sha256: blob32(r, 2)?,
                created_at_ms: u64_at(r, 3)?,
            })
        })
        .optional()?)
}

/// Adds an API key to a provider; `Conflict` on a key-hash collision.
/// Returns the key's id.
pub(super) fn insert_api_key(
    c: &Connection,
    provider: &ServiceProviderId,
    key_sha256: &[u8; 32],
    now_ms: u64,
) -> StoreResult<u64> {
    let id: i64 = c
        .prepare_cached(
            "INSERT INTO api_keys (service_provider_id, key_sha256, created_at_ms) \
             VALUES (?1, ?2, ?3) RETURNING id",
        )?
        .query_row(
            params![Col(provider), key_sha256.as_slice(), i64_of(now_ms)],
            |r| r.get(0),
        )
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict("api_key")
            } else {
                e.into()
            }
        })?;
    Ok(id as u64)
}

/// A rotation: every usable key of the provider without an end (or with a
/// later one) ends at `grace_until_ms`; then the new key is added.
pub(super) fn rotate_api_key(
    c: &Connection,
    provider: &ServiceProviderId,
    key_sha256: &[u8; 32],
    grace_until_ms: u64,
    now_ms: u64,
) -> StoreResult<u64> {
    c.prepare_cached(
        "UPDATE api_keys SET expires_at_ms = ?2 WHERE service_provider_id = ?1 \
         AND revoked_at_ms IS NULL AND (expires_at_ms IS NULL OR expires_at_ms > ?2)",
    )?
    .execute(params![Col(provider), i64_of(grace_until_ms)])?;
    insert_api_key(c, provider, key_sha256, now_ms)
}

/// Revokes one key of the provider; `false` if it has no such unrevoked key.
pub(super) fn revoke_api_key(
    c: &Connection,
    provider: &ServiceProviderId,
    key_id: u64,
    now_ms: u64,
) -> StoreResult<bool> {
    let n = c
        .prepare_cached(
            "UPDATE api_keys SET revoked_at_ms = ?3 WHERE id = ?1 AND service_provider_id = ?2 \
             AND revoked_at_ms IS NULL",
        )?
        .execute(params![
            i64::try_from(key_id).unwrap_or(-1),
            Col(provider),
            i64_of(now_ms)
        ])?;
    Ok(n == 1)
}

const API_KEY_COLUMNS: &str =
    "k.id, k.service_provider_id, k.key_sha256, k.created_at_ms, k.expires_at_ms, k.revoked_at_ms";

fn api_key_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApiKey> {
    Ok(ApiKey {
        id: u64_at(r, 0)?,
        service_provider_id: col::<ServiceProviderId>(r, 1)?,
        key_sha256: blob32(r, 2)?,
        created_at_ms: u64_at(r, 3)?,
        expires_at_ms: opt_u64_at(r, 4)?,
        revoked_at_ms: opt_u64_at(r, 5)?,
    })
}

/// The read of [`Store::provider_by_api_key`](crate::store::Store::provider_by_api_key).
pub(super) fn provider_by_api_key(
    c: &Connection,
    key_sha256: [u8; 32],
) -> StoreResult<Option<ProviderKey>> {
    let key = c
        .prepare_cached(&format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys k WHERE k.key_sha256 = ?1"
        ))?
        .query_row(params![key_sha256.as_slice()], api_key_row)
        .optional()?;
    let Some(key) = key else {
        return Ok(None);
    };
    let provider = service_provider(c, key.service_provider_id)?
        .ok_or(StoreError::Inconsistent("API key without its provider"))?;
    Ok(Some(ProviderKey { provider, key }))
}

/// The read of [`Store::api_keys`](crate::store::Store::api_keys).
pub(super) fn api_keys(c: &Connection, provider: ServiceProviderId) -> StoreResult<Vec<ApiKey>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {API_KEY_COLUMNS} FROM api_keys k WHERE k.service_provider_id = ?1 ORDER BY k.id"
    ))?
    .query_map(params![Col(provider)], api_key_row)?
    .collect::<Result<Vec<_>, _>>()?)
}

/// Sets or removes a provider's webhook.
pub(super) fn set_webhook(
    c: &Connection,
    provider: &ServiceProviderId,
    webhook: Option<&Webhook>,
) -> StoreResult<()> {
    match webhook {
        Some(w) => {
            c.prepare_cached(
                "INSERT INTO webhooks (service_provider_id, url, secret, created_at_ms) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (service_provider_id) DO UPDATE SET \
                 url = excluded.url, secret = excluded.secret, created_at_ms = excluded.created_at_ms",
            )?
            .execute(params![
                Col(provider),
                w.url,
                w.secret.as_slice(),
                i64_of(w.created_at_ms)
            ])?;
        }
        None => {
            c.prepare_cached("DELETE FROM webhooks WHERE service_provider_id = ?1")?
                .execute(params![Col(provider)])?;
        }
    }
    Ok(())
}

/// The read of [`Store::webhook`](crate::store::Store::webhook).
pub(super) fn webhook(c: &Connection, provider: ServiceProviderId) -> StoreResult<Option<Webhook>> {
    Ok(c.prepare_cached(
        "SELECT service_provider_id, url, secret, created_at_ms FROM webhooks \
             WHERE service_provider_id = ?1",
    )?
    .query_row(params![Col(provider)], |r| {
        Ok(Webhook {
            service_provider_id: col::<ServiceProviderId>(r, 0)?,
            url: r.get(1)?,
            secret: zeroize::Zeroizing::new(r.get::<_, Vec<u8>>(2)?),
            created_at_ms: u64_at(r, 3)?,
        })
    })
    .optional()?)
}
