//! Service providers, their API keys (rotation, revocation) and webhooks.

use eid_protocol::ServiceProviderId;
use tokio_postgres::Row;

use super::columns::{Col, col, get, i64_of, is_unique_violation, opt_col};
use super::connection::{Tx, all, exec, one, opt};
use crate::store::{
    ApiKey, ProviderKey, RegisterResult, ServiceProvider, StoreError, StoreResult, Webhook,
};

async fn insert_provider(t: &Tx<'_>, sp: &ServiceProvider) -> StoreResult<()> {
    let st = t
        .prepare_cached(
            "INSERT INTO service_providers (id, name, api_key_sha256, created_at_ms) \
             VALUES ($1, $2, $3, $4)",
        )
        .await?;
    t.execute(
        &st,
        &[
            &Col(sp.id),
            &sp.name,
            &sp.api_key_sha256.as_slice(),
            &i64_of(sp.created_at_ms),
        ],
    )
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::Conflict("api_key")
        } else {
            e
        }
    })?;
    insert_api_key(t, &sp.id, &sp.api_key_sha256, sp.created_at_ms).await?;
    Ok(())
}

/// The transaction of [`Store::create_service_provider`](crate::store::Store::create_service_provider).
pub(super) async fn create_service_provider(t: &Tx<'_>, sp: &ServiceProvider) -> StoreResult<()> {
    insert_provider(t, sp).await
}

/// The transaction of [`Store::register_service_provider`](crate::store::Store::register_service_provider).
pub(super) async fn register_service_provider(
    t: &Tx<'_>,
    sp: &ServiceProvider,
) -> StoreResult<RegisterResult> {
    // Serializable: two replicas registering confusable names at once
    // cannot both pass this read.
    let names = all(t, "SELECT name FROM service_providers", &[])
        .await?
        .iter()
        .map(|r| get::<String>(r, 0))
        .collect::<StoreResult<Vec<_>>>()?;
    let builtin = eid_protocol::SELF_SERVICE_PROVIDER_NAME;
    if let Some(existing) = std::iter::once(builtin)
        .chain(names.iter().map(String::as_str))
        .find(|n| eid_protocol::confusables::names_confusable(n, &sp.name))
    {
        return Ok(RegisterResult::ConfusableWith(existing.to_owned()));
    }
    insert_provider(t, sp).await?;
    Ok(RegisterResult::Registered)
}

fn provider_row(r: &Row) -> StoreResult<ServiceProvider> {
    Ok(ServiceProvider {
        id: col::<ServiceProviderId>(r, 0)?,
        name: get(r, 1)?,
        api_key_sha256: col(r, 2)?,
        created_at_ms: col(r, 3)?,
    })
}

/// The read of [`Store::service_provider_by_key`](crate::store::Store::service_provider_by_key).
pub(super) async fn service_provider_by_key(
    t: &Tx<'_>,
    api_key_sha256: [u8; 32],
) -> StoreResult<Option<ServiceProvider>> {
    opt(
        t,
        "SELECT id, name, api_key_sha256, created_at_ms FROM service_providers WHERE api_key_sha256 = $1",
        &[&api_key_sha256.as_slice()],
    )
    .await?
    .map(|r| provider_row(&r))
    .transpose()
}

pub(super) async fn provider_exists(t: &Tx<'_>, id: &ServiceProviderId) -> StoreResult<bool> {
    let row = one(
        t,
        "SELECT EXISTS (SELECT 1 FROM service_providers WHERE id = $1)",
        &[&Col(id)],
    )
    .await?;
    get(&row, 0)
}

/// The read of [`Store::service_provider`](crate::store::Store::service_provider).
pub(super) async fn service_provider(
    t: &Tx<'_>,
    id: ServiceProviderId,
) -> StoreResult<Option<ServiceProvider>> {
    opt(
        t,
        "SELECT id, name, api_key_sha256, created_at_ms FROM service_providers WHERE id = $1",
        &[&Col(id)],
    )
    .await?
    .map(|r| provider_row(&r))
    .transpose()
}

async fn insert_api_key(
    t: &Tx<'_>,
    provider: &ServiceProviderId,
    key_sha256: &[u8; 32],
    now_ms: u64,
) -> StoreResult<u64> {
    let st = t
        .prepare_cached(
            "INSERT INTO api_keys (service_provider_id, key_sha256, created_at_ms) \
             VALUES ($1, $2, $3) RETURNING id",
        )
        .await?;
    let row = t
        .query_one(
            &st,
            &[&Col(provider), &key_sha256.as_slice(), &i64_of(now_ms)],
        )
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict("api_key")
            } else {
                e
            }
        })?;
    col(&row, 0)
}

pub(super) async fn rotate_api_key(
    t: &Tx<'_>,
    provider: &ServiceProviderId,
    key_sha256: &[u8; 32],
    grace_until_ms: u64,
    now_ms: u64,
) -> StoreResult<u64> {
    exec(
        t,
        "UPDATE api_keys SET expires_at_ms = $2 WHERE service_provider_id = $1 \
         AND revoked_at_ms IS NULL AND (expires_at_ms IS NULL OR expires_at_ms > $2)",
        &[&Col(provider), &i64_of(grace_until_ms)],
    )
    .await?;
    insert_api_key(t, provider, key_sha256, now_ms).await
}

pub(super) async fn revoke_api_key(
    t: &Tx<'_>,
    provider: &ServiceProviderId,
    key_id: u64,
    now_ms: u64,
) -> StoreResult<bool> {
    let n = exec(
        t,
        "UPDATE api_keys SET revoked_at_ms = $3 WHERE id = $1 AND service_provider_id = $2 \
         AND revoked_at_ms IS NULL",
        &[
            &i64::try_from(key_id).unwrap_or(-1),
            &Col(provider),
            &i64_of(now_ms),
        ],
    )
    .await?;
    Ok(n == 1)
}

const API_KEY_COLUMNS: &str =
    "k.id, k.service_provider_id, k.key_sha256, k.created_at_ms, k.expires_at_ms, k.revoked_at_ms";

fn api_key_row(r: &Row) -> StoreResult<ApiKey> {
    Ok(ApiKey {
        id: col(r, 0)?,
        service_provider_id: col::<ServiceProviderId>(r, 1)?,
        key_sha256: col(r, 2)?,
        created_at_ms: col(r, 3)?,
        expires_at_ms: opt_col(r, 4)?,
        revoked_at_ms: opt_col(r, 5)?,
    })
}

/// The read of [`Store::provider_by_api_key`](crate::store::Store::provider_by_api_key).
pub(super) async fn provider_by_api_key(
    t: &Tx<'_>,
    key_sha256: [u8; 32],
) -> StoreResult<Option<ProviderKey>> {
    // Both reads in one flight (one snapshot): the provider by the key's
    // provider id, read in the same statement.
    let (key, provider) = futures_util::future::try_join(
        opt(
            t,
            &format!("SELECT {API_KEY_COLUMNS} FROM api_keys k WHERE k.key_sha256 = $1"),
            &[&key_sha256.as_slice()],
        ),
        opt(
            t,
            "SELECT id, name, api_key_sha256, created_at_ms FROM service_providers \
             WHERE id = (SELECT service_provider_id FROM api_keys WHERE key_sha256 = $1)",
            &[&key_sha256.as_slice()],
        ),
    )
    .await?;
    let Some(key) = key.map(|r| api_key_row(&r)).transpose()? else {
        return Ok(None);
    };
    let provider = provider
        .map(|r| provider_row(&r))
        .transpose()?
        .ok_or(StoreError::Inconsistent("API key without its provider"))?;
    Ok(Some(ProviderKey { provider, key }))
}

/// The read of [`Store::api_keys`](crate::store::Store::api_keys).
pub(super) async fn api_keys(t: &Tx<'_>, provider: ServiceProviderId) -> StoreResult<Vec<ApiKey>> {
    all(
        t,
        &format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys k WHERE k.service_provider_id = $1 ORDER BY k.id"
        ),
        &[&Col(provider)],
    )
    .await?
    .iter()
    .map(api_key_row)
    .collect()
}

pub(super) async fn set_webhook(
    t: &Tx<'_>,
    provider: &ServiceProviderId,
    webhook: Option<&Webhook>,
) -> StoreResult<()> {
    match webhook {
        Some(w) => {
            exec(
                t,
                "INSERT INTO webhooks (service_provider_id, url, secret, created_at_ms) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (service_provider_id) DO UPDATE SET \
                 url = excluded.url, secret = excluded.secret, created_at_ms = excluded.created_at_ms",
                &[
                    &Col(provider),
                    &w.url,
                    &w.secret.as_slice(),
                    &i64_of(w.created_at_ms),
                ],
            )
            .await?;
        }
        None => {
            exec(
                t,
                "DELETE FROM webhooks WHERE service_provider_id = $1",
                &[&Col(provider)],
            )
            .await?;
        }
    }
    Ok(())
}

/// The read of [`Store::webhook`](crate::store::Store::webhook).
pub(super) async fn webhook(
    t: &Tx<'_>,
    provider: ServiceProviderId,
) -> StoreResult<Option<Webhook>> {
    let Some(r) = opt(
        t,
        "SELECT service_provider_id, url, secret, created_at_ms FROM webhooks \
         WHERE service_provider_id = $1",
        &[&Col(provider)],
    )
    .await?
    else {
        return Ok(None);
    };
    Ok(Some(Webhook {
        service_provider_id: col::<ServiceProviderId>(&r, 0)?,
        url: get(&r, 1)?,
        secret: zeroize::Zeroizing::new(get::<Vec<u8>>(&r, 2)?),
        created_at_ms: col(&r, 3)?,
    }))
}
