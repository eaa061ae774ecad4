//! OpenID Connect: clients of service providers (registered inside an admin
//! action, see [`super::audit`], and looked up by `client_id`), and logins,
//! one row each from the pushed authorization request to the access token.

use rusqlite::{Connection, OptionalExtension, Row, params};

use eid_protocol::RequestId;

use super::columns::{
    Col, blob16, blob32, col, i64_of, is_unique_violation, json_err, opt_col, opt_u64_at, u64_at,
};
use crate::store::{
    BindLoginResult, LoginId, LoginMethod, OidcClient, OidcLogin, RedeemResult, StoreError,
    StoreResult,
};
use eid_protocol::IdentityId;

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

const LOGIN_COLUMNS: &str = "id, client_id, params, created_at_ms, request_uri_expires_at_ms, \
     expires_at_ms, browser_sha256, request_id, request_expires_at_ms, code_expires_at_ms, \
     redeemed_at_ms, access_expires_at_ms, revoked, method, hardware_identity_id, first_factor, \
     hardware_receipt";

fn login_row(r: &Row<'_>) -> rusqlite::Result<OidcLogin> {
    let params: String = r.get(2)?;
    Ok(OidcLogin {
        id: LoginId(blob16(r, 0)?),
        client_id: r.get(1)?,
        params: serde_json::from_str(&params).map_err(|e| json_err(2, e))?,
        created_at_ms: u64_at(r, 3)?,
        request_uri_expires_at_ms: u64_at(r, 4)?,
        expires_at_ms: u64_at(r, 5)?,
        browser_sha256: match r.get::<_, Option<Vec<u8>>>(6)? {
            Some(_) => Some(blob32(r, 6)?),
            None => None,
        },
        request_id: opt_col(r, 7)?,
        request_expires_at_ms: opt_u64_at(r, 8)?,
        code_expires_at_ms: opt_u64_at(r, 9)?,
        redeemed_at_ms: opt_u64_at(r, 10)?,
        access_expires_at_ms: opt_u64_at(r, 11)?,
        revoked: r.get(12)?,
        method: r.get(13)?,
        hardware_identity_id: opt_col(r, 14)?,
        first_factor: r.get(15)?,
        hardware_receipt: match r.get::<_, Option<String>>(16)? {
            Some(json) => Some(serde_json::from_str(&json).map_err(|e| json_err(16, e))?),
            None => None,
        },
    })
}

fn login_where(c: &Connection, condition: &str, key: &[u8]) -> StoreResult<Option<OidcLogin>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {LOGIN_COLUMNS} FROM oidc_logins WHERE {condition} = ?1"
    ))?
    .query_row(params![key], login_row)
    .optional()?)
}

/// The transaction of [`Store::create_oidc_login`](crate::store::Store::create_oidc_login).
/// The parameters arrive encoded: JSON is made off the writer thread.
pub(super) fn create_oidc_login(
    c: &Connection,
    login: OidcLogin,
    params_json: String,
    request_uri_sha256: [u8; 32],
) -> StoreResult<()> {
    c.prepare_cached(
        "INSERT INTO oidc_logins (id, client_id, request_uri_sha256, params, created_at_ms, \
         request_uri_expires_at_ms, expires_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        login.id.0.as_slice(),
        login.client_id,
        request_uri_sha256.as_slice(),
        params_json,
        i64_of(login.created_at_ms),
        i64_of(login.request_uri_expires_at_ms),
        i64_of(login.expires_at_ms),
    ])
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::Conflict("oidc login")
        } else {
            e.into()
        }
    })?;
    Ok(())
}

/// The transaction of [`Store::bind_oidc_login`](crate::store::Store::bind_oidc_login).
pub(super) fn bind_oidc_login(
    c: &Connection,
    request_uri_sha256: [u8; 32],
    client_id: &str,
    browser_sha256: [u8; 32],
    now_ms: u64,
) -> StoreResult<BindLoginResult> {
    let Some(login) = login_where(c, "request_uri_sha256", &request_uri_sha256)?
        .filter(|l| l.client_id == client_id)
    else {
        return Ok(BindLoginResult::Unknown);
    };
    if login.browser_sha256.is_some() {
        return Ok(BindLoginResult::AlreadyUsed);
    }
    if now_ms >= login.request_uri_expires_at_ms {
        return Ok(BindLoginResult::Expired);
    }
    c.prepare_cached("UPDATE oidc_logins SET browser_sha256 = ?2 WHERE id = ?1")?
        .execute(params![login.id.0.as_slice(), browser_sha256.as_slice()])?;
    Ok(BindLoginResult::Bound(Box::new(OidcLogin {
        browser_sha256: Some(browser_sha256),
        ..login
    })))
}

/// The read of [`Store::oidc_login`](crate::store::Store::oidc_login).
pub(super) fn oidc_login(c: &Connection, id: LoginId) -> StoreResult<Option<OidcLogin>> {
    login_where(c, "id", &id.0)
}

/// The transaction of [`Store::set_oidc_login_request`](crate::store::Store::set_oidc_login_request).
pub(super) fn set_oidc_login_request(
    c: &Connection,
    id: LoginId,
    previous: Option<RequestId>,
    request_id: RequestId,
    request_expires_at_ms: u64,
) -> StoreResult<bool> {
    let n = c
        .prepare_cached(
            "UPDATE oidc_logins SET request_id = ?3, request_expires_at_ms = ?4 WHERE id = ?1 \
             AND request_id IS ?2 AND code_sha256 IS NULL",
        )?
        .execute(params![
            id.0.as_slice(),
            previous.map(Col),
            Col(request_id),
            i64_of(request_expires_at_ms)
        ])?;
    Ok(n == 1)
}

/// The transaction of [`Store::issue_oidc_code`](crate::store::Store::issue_oidc_code).
pub(super) fn issue_oidc_code(
    c: &Connection,
    id: LoginId,
    request_id: RequestId,
    code_sha256: [u8; 32],
    code_expires_at_ms: u64,
) -> StoreResult<bool> {
    let n = c
        .prepare_cached(
            "UPDATE oidc_logins SET code_sha256 = ?3, code_expires_at_ms = ?4 \
             WHERE id = ?1 AND request_id = ?2 AND code_sha256 IS NULL",
        )?
        .execute(params![
            id.0.as_slice(),
            Col(request_id),
            code_sha256.as_slice(),
            i64_of(code_expires_at_ms)
        ])?;
    Ok(n == 1)
}

/// The read of [`Store::oidc_login_by_code`](crate::store::Store::oidc_login_by_code).
pub(super) fn oidc_login_by_code(
    c: &Connection,
    code_sha256: [u8; 32],
) -> StoreResult<Option<OidcLogin>> {
    login_where(c, "code_sha256", &code_sha256)
}

/// The transaction of [`Store::redeem_oidc_code`](crate::store::Store::redeem_oidc_code).
pub(super) fn redeem_oidc_code(
    c: &Connection,
    code_sha256: [u8; 32],
    access: Option<([u8; 32], u64)>,
    now_ms: u64,
) -> StoreResult<RedeemResult> {
    let Some(login) = login_where(c, "code_sha256", &code_sha256)? else {
        return Ok(RedeemResult::Unknown);
    };
    if login.redeemed_at_ms.is_some() {
        c.prepare_cached("UPDATE oidc_logins SET revoked = 1 WHERE id = ?1")?
            .execute(params![login.id.0.as_slice()])?;
        return Ok(RedeemResult::Reused);
    }
    let expired = login.code_expires_at_ms.is_none_or(|e| now_ms >= e);
    let access = access.filter(|_| !expired);
    let (access_sha256, access_expires_at_ms) = match access {
        Some((hash, expires)) => (Some(hash), Some(expires)),
        None => (None, None),
    };
    let expires_at_ms = login
        .expires_at_ms
        .max(access_expires_at_ms.unwrap_or_default());
    c.prepare_cached(
        "UPDATE oidc_logins SET redeemed_at_ms = ?2, access_sha256 = ?3, \
         access_expires_at_ms = ?4, expires_at_ms = ?5 WHERE id = ?1",
    )?
    .execute(params![
        login.id.0.as_slice(),
        i64_of(now_ms),
        access_sha256.as_ref().map(|h| h.as_slice()),
        access_expires_at_ms.map(i64_of),
        i64_of(expires_at_ms),
    ])?;
    if expired {
        return Ok(RedeemResult::Expired);
    }
    Ok(RedeemResult::Redeemed(Box::new(OidcLogin {
        redeemed_at_ms: Some(now_ms),
        access_expires_at_ms,
        expires_at_ms,
        ..login
    })))
}

/// The read of [`Store::oidc_login_by_access_token`](crate::store::Store::oidc_login_by_access_token).
pub(super) fn oidc_login_by_access_token(
    c: &Connection,
    access_sha256: [u8; 32],
) -> StoreResult<Option<OidcLogin>> {
    login_where(c, "access_sha256", &access_sha256)
}

/// The transaction of [`Store::purge_oidc_logins`](crate::store::Store::purge_oidc_logins).
pub(super) fn purge_oidc_logins(c: &Connection, now_ms: u64, limit: u32) -> StoreResult<u64> {
    let n = c
        .prepare_cached(
            "DELETE FROM oidc_logins WHERE id IN \
             (SELECT id FROM oidc_logins WHERE expires_at_ms < ?1 \
              AND hardware_receipt IS NULL LIMIT ?2)",
        )?
        .execute(params![i64_of(now_ms), i64::from(limit)])?;
    Ok(n as u64)
}

/// The transaction of [`Store::choose_oidc_login_method`](crate::store::Store::choose_oidc_login_method).
pub(super) fn choose_oidc_login_method(
    c: &Connection,
    id: LoginId,
    method: LoginMethod,
    hardware_identity_id: Option<IdentityId>,
) -> StoreResult<bool> {
    let n = c
        .prepare_cached(
            "UPDATE oidc_logins SET method = ?2, hardware_identity_id = ?3, request_id = NULL, \
             request_expires_at_ms = NULL, first_factor = NULL \
             WHERE id = ?1 AND code_sha256 IS NULL",
        )?
        .execute(params![
            id.0.as_slice(),
            method,
            hardware_identity_id.map(Col)
        ])?;
    Ok(n == 1)
}

/// The transaction of [`Store::pass_oidc_first_factor`](crate::store::Store::pass_oidc_first_factor).
pub(super) fn pass_oidc_first_factor(
    c: &Connection,
    id: LoginId,
    method: LoginMethod,
    first_factor: String,
) -> StoreResult<bool> {
    let n = c
        .prepare_cached(
            "UPDATE oidc_logins SET first_factor = ?3 \
             WHERE id = ?1 AND method = ?2 AND code_sha256 IS NULL",
        )?
        .execute(params![id.0.as_slice(), method, first_factor])?;
    Ok(n == 1)
}

/// The transaction of [`Store::complete_oidc_login_by_hardware`](crate::store::Store::complete_oidc_login_by_hardware).
/// The receipt arrives encoded: JSON is made off the writer thread.
pub(super) fn complete_oidc_login_by_hardware(
    c: &Connection,
    id: LoginId,
    method: LoginMethod,
    receipt_json: String,
    code_sha256: [u8; 32],
    code_expires_at_ms: u64,
) -> StoreResult<bool> {
    let n = c
        .prepare_cached(
            "UPDATE oidc_logins SET hardware_receipt = ?3, code_sha256 = ?4, \
             code_expires_at_ms = ?5 WHERE id = ?1 AND method = ?2 AND code_sha256 IS NULL",
        )?
        .execute(params![
            id.0.as_slice(),
            method,
            receipt_json,
            code_sha256.as_slice(),
            i64_of(code_expires_at_ms)
        ])?;
    Ok(n == 1)
}
