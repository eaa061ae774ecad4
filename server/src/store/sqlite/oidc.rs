//! OpenID Connect clients of service providers: registration (inside an
//! admin action, see [`super::audit`]) and look-up by `client_id`.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::columns::{Col, blob32, col, i64_of, is_unique_violation, json_err, u64_at};
use crate::store::{OidcClient, StoreError, StoreResult};

/// Stores a client inside the caller's transaction; `Conflict` when the
/// `client_id` is taken (it is 128 random bits, so only by a bug).
///
/// The two JSON columns are short string arrays: encoding them here, on the
/// writer, costs less than a second copy of the action would.
pub(super) fn insert_oidc_client(c: &Connection, client: OidcClient) -> StoreResult<()> {
    let redirect_uris = serde_json::to_string(&client.redirect_uris)?;
    let scopes = serde_json::to_string(&client.scopes)?;
    c.prepare_cached(
        "INSERT INTO oidc_clients (client_id, service_provider_id, redirect_uris, \
         secret_sha256, jwk, scopes, sector, created_at_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        client.client_id,
        Col(client.service_provider_id),
        redirect_uris,
        client.secret_sha256.as_ref().map(|h| h.as_slice()),
        client.jwk,
        scopes,
        client.sector,
        i64_of(client.created_at_ms),
    ])
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::Conflict("client_id")
        } else {
            e.into()
        }
    })?;
    Ok(())
}

fn json_strings(r: &Row<'_>, idx: usize) -> rusqlite::Result<Vec<String>> {
    let text: String = r.get(idx)?;
    serde_json::from_str(&text).map_err(|e| json_err(idx, e))
}

fn client_row(r: &Row<'_>) -> rusqlite::Result<OidcClient> {
    let secret: Option<Vec<u8>> = r.get(3)?;
    Ok(OidcClient {
        client_id: r.get(0)?,
        service_provider_id: col(r, 1)?,
        redirect_uris: json_strings(r, 2)?,
        secret_sha256: match secret {
            Some(_) => Some(blob32(r, 3)?),
            None => None,
        },
        jwk: r.get(4)?,
        scopes: json_strings(r, 5)?,
        sector: r.get(6)?,
        created_at_ms: u64_at(r, 7)?,
    })
}

/// The read of [`Store::oidc_client`](crate::store::Store::oidc_client).
pub(super) fn oidc_client(c: &Connection, client_id: &str) -> StoreResult<Option<OidcClient>> {
    Ok(c.prepare_cached(
        "SELECT client_id, service_provider_id, redirect_uris, secret_sha256, jwk, \
             scopes, sector, created_at_ms FROM oidc_clients WHERE client_id = ?1",
    )?
    .query_row(params![client_id], client_row)
    .optional()?)
}
