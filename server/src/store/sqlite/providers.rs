//! Service providers: registration (refusing confusable names) and
//! look-up by API-key hash.

use eid_protocol::ServiceProviderId;
use rusqlite::{Connection, OptionalExtension, params};

use super::columns::{Col, blob32, col, i64_of, is_unique_violation, u64_at};
use crate::store::{RegisterResult, ServiceProvider, StoreError, StoreResult};

/// The transaction of [`Store::create_service_provider`](crate::store::Store::create_service_provider).
pub(super) fn create_service_provider(c: &Connection, sp: ServiceProvider) -> StoreResult<()> {
    c.prepare_cached(
        "INSERT INTO service_providers (id, name, api_key_sha256, created_at_ms) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![Col(sp.id), sp.name, sp.api_key_sha256.as_slice(), i64_of(sp.created_at_ms)])
    .map_err(|e| if is_unique_violation(&e) { StoreError::Conflict("api_key") } else { e.into() })?;
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
