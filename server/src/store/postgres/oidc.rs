//! OpenID Connect clients and logins (see docs/oidc.md): every handle a
//! client or browser holds is stored only as its SHA-256.

use eid_protocol::{IdentityId, RequestId};
use tokio_postgres::Row;

use super::columns::{Col, col, get, i64_of, is_unique_violation, opt_col};
use super::connection::{Tx, exec, opt};
use crate::store::{
    BindLoginResult, LoginId, LoginMethod, OidcClient, OidcLogin, RedeemResult, StoreError,
    StoreResult,
};

/// Stores a client (in an admin action's transaction).
pub(super) async fn insert_oidc_client(t: &Tx<'_>, client: &OidcClient) -> StoreResult<()> {
    let redirect_uris = serde_json::to_string(&client.redirect_uris)?;
    let scopes = serde_json::to_string(&client.scopes)?;
    let st = t
        .prepare_cached(
            "INSERT INTO oidc_clients (client_id, service_provider_id, redirect_uris, \
             secret_sha256, jwk, scopes, sector, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .await?;
    t.execute(
        &st,
        &[
            &client.client_id,
            &Col(client.service_provider_id),
            &redirect_uris,
            &client.secret_sha256.as_ref().map(|h| h.as_slice()),
            &client.jwk,
            &scopes,
            &client.sector,
            &i64_of(client.created_at_ms),
        ],
    )
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::Conflict("client_id")
        } else {
            e
        }
    })?;
    Ok(())
}

fn json_strings(r: &Row, idx: usize) -> StoreResult<Vec<String>> {
    let text: &str = get(r, idx)?;
    Ok(serde_json::from_str(text)?)
}

fn client_row(r: &Row) -> StoreResult<OidcClient> {
    Ok(OidcClient {
        client_id: get(r, 0)?,
        service_provider_id: col(r, 1)?,
        redirect_uris: json_strings(r, 2)?,
        secret_sha256: opt_col(r, 3)?,
        jwk: get(r, 4)?,
        scopes: json_strings(r, 5)?,
        sector: get(r, 6)?,
        created_at_ms: col(r, 7)?,
    })
}

/// The read of [`Store::oidc_client`](crate::store::Store::oidc_client).
pub(super) async fn oidc_client(t: &Tx<'_>, client_id: &str) -> StoreResult<Option<OidcClient>> {
    opt(
        t,
        "SELECT client_id, service_provider_id, redirect_uris, secret_sha256, jwk, \
         scopes, sector, created_at_ms FROM oidc_clients WHERE client_id = $1",
        &[&client_id],
    )
    .await?
    .map(|r| client_row(&r))
    .transpose()
}

const LOGIN_COLUMNS: &str = "id, client_id, params, created_at_ms, request_uri_expires_at_ms, \
     expires_at_ms, browser_sha256, request_id, request_expires_at_ms, code_expires_at_ms, \
     redeemed_at_ms, access_expires_at_ms, revoked, method, hardware_identity_id, first_factor, \
     hardware_receipt";

fn login_row(r: &Row) -> StoreResult<OidcLogin> {
    let params: &str = get(r, 2)?;
    Ok(OidcLogin {
        id: LoginId(col(r, 0)?),
        client_id: get(r, 1)?,
        params: serde_json::from_str(params)?,
        created_at_ms: col(r, 3)?,
        request_uri_expires_at_ms: col(r, 4)?,
        expires_at_ms: col(r, 5)?,
        browser_sha256: opt_col(r, 6)?,
        request_id: opt_col(r, 7)?,
        request_expires_at_ms: opt_col(r, 8)?,
        code_expires_at_ms: opt_col(r, 9)?,
        redeemed_at_ms: opt_col(r, 10)?,
        access_expires_at_ms: opt_col(r, 11)?,
        revoked: get(r, 12)?,
        method: col(r, 13)?,
        hardware_identity_id: opt_col(r, 14)?,
        first_factor: get(r, 15)?,
        hardware_receipt: match get::<Option<&str>>(r, 16)? {
            Some(json) => Some(serde_json::from_str(json)?),
            None => None,
        },
    })
}

/// The login whose `column` (a unique hash or the id) is `key`; locked
/// when `lock`, for the writes that check and then change it.
async fn login_where(
    t: &Tx<'_>,
    column: &str,
    key: &[u8],
    lock: bool,
) -> StoreResult<Option<OidcLogin>> {
    let suffix = if lock { " FOR UPDATE" } else { "" };
    opt(
        t,
        &format!("SELECT {LOGIN_COLUMNS} FROM oidc_logins WHERE {column} = $1{suffix}"),
        &[&key],
    )
    .await?
    .map(|r| login_row(&r))
    .transpose()
}

/// The transaction of [`Store::create_oidc_login`](crate::store::Store::create_oidc_login).
/// One statement in its own transaction ([`PostgresStore::write_one`]):
/// the unique keys decide a clash.
///
/// [`PostgresStore::write_one`]: super::PostgresStore
pub(super) async fn create_oidc_login(
    t: &Tx<'_>,
    login: &OidcLogin,
    params_json: &str,
    request_uri_sha256: [u8; 32],
) -> StoreResult<()> {
    let st = t
        .prepare_cached(
            "INSERT INTO oidc_logins (id, client_id, request_uri_sha256, params, created_at_ms, \
             request_uri_expires_at_ms, expires_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .await?;
    t.execute(
        &st,
        &[
            &login.id.0.as_slice(),
            &login.client_id,
            &request_uri_sha256.as_slice(),
            &params_json,
            &i64_of(login.created_at_ms),
            &i64_of(login.request_uri_expires_at_ms),
            &i64_of(login.expires_at_ms),
        ],
    )
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::Conflict("oidc login")
        } else {
            e
        }
    })?;
    Ok(())
}

/// The transaction of [`Store::bind_oidc_login`](crate::store::Store::bind_oidc_login).
/// Runs at `READ COMMITTED` ([`PostgresStore::write_locked`]): the login's
/// row is read `FOR UPDATE` before its checks, so a concurrent bind of the
/// same `request_uri` (any replica) waits for this one's commit and then
/// reads the row it bound: one browser binds a login, the other is told
/// `AlreadyUsed`. It reads and writes nothing else.
///
/// [`PostgresStore::write_locked`]: super::PostgresStore
pub(super) async fn bind_oidc_login(
    t: &Tx<'_>,
    request_uri_sha256: [u8; 32],
    client_id: &str,
    browser_sha256: [u8; 32],
    now_ms: u64,
) -> StoreResult<BindLoginResult> {
    let Some(login) = login_where(t, "request_uri_sha256", &request_uri_sha256, true)
        .await?
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
    exec(
        t,
        "UPDATE oidc_logins SET browser_sha256 = $2 WHERE id = $1",
        &[&login.id.0.as_slice(), &browser_sha256.as_slice()],
    )
    .await?;
    Ok(BindLoginResult::Bound(Box::new(OidcLogin {
        browser_sha256: Some(browser_sha256),
        ..login
    })))
}

/// The read of [`Store::oidc_login`](crate::store::Store::oidc_login).
pub(super) async fn oidc_login(t: &Tx<'_>, id: LoginId) -> StoreResult<Option<OidcLogin>> {
    login_where(t, "id", &id.0, false).await
}

/// The transaction of [`Store::set_oidc_login_request`](crate::store::Store::set_oidc_login_request).
/// One statement in its own transaction ([`PostgresStore::write_one`]):
/// its `WHERE` is re-checked on the newest row a concurrent update left, so
/// of two such updates of one login one changes it and the other gets
/// `false`.
///
/// [`PostgresStore::write_one`]: super::PostgresStore
pub(super) async fn set_oidc_login_request(
    t: &Tx<'_>,
    id: LoginId,
    previous: Option<RequestId>,
    request_id: RequestId,
    request_expires_at_ms: u64,
) -> StoreResult<bool> {
    let n = exec(
        t,
        "UPDATE oidc_logins SET request_id = $3, request_expires_at_ms = $4 WHERE id = $1 \
         AND request_id IS NOT DISTINCT FROM $2 AND code_sha256 IS NULL",
        &[
            &id.0.as_slice(),
            &previous.map(Col),
            &Col(request_id),
            &i64_of(request_expires_at_ms),
        ],
    )
    .await?;
    Ok(n == 1)
}

/// The transaction of [`Store::issue_oidc_code`](crate::store::Store::issue_oidc_code).
/// One statement in its own transaction ([`PostgresStore::write_one`]):
/// its `WHERE` is re-checked on the newest row a concurrent update left, so
/// of two such updates of one login one changes it and the other gets
/// `false`.
///
/// [`PostgresStore::write_one`]: super::PostgresStore
pub(super) async fn issue_oidc_code(
    t: &Tx<'_>,
    id: LoginId,
    request_id: RequestId,
    code_sha256: [u8; 32],
    code_expires_at_ms: u64,
) -> StoreResult<bool> {
    let n = exec(
        t,
        "UPDATE oidc_logins SET code_sha256 = $3, code_expires_at_ms = $4 \
         WHERE id = $1 AND request_id = $2 AND code_sha256 IS NULL",
        &[
            &id.0.as_slice(),
            &Col(request_id),
            &code_sha256.as_slice(),
            &i64_of(code_expires_at_ms),
        ],
    )
    .await?;
    Ok(n == 1)
}

/// The read of [`Store::oidc_login_by_code`](crate::store::Store::oidc_login_by_code).
pub(super) async fn oidc_login_by_code(
    t: &Tx<'_>,
    code_sha256: [u8; 32],
) -> StoreResult<Option<OidcLogin>> {
    login_where(t, "code_sha256", &code_sha256, false).await
}

/// The transaction of [`Store::redeem_oidc_code`](crate::store::Store::redeem_oidc_code).
/// Runs at `READ COMMITTED` ([`PostgresStore::write_locked`]): the login's
/// row is read `FOR UPDATE` before its checks, so of two redemptions of
/// one code the second waits and then reads the first's `redeemed_at_ms`
/// (a reuse: the login is revoked). It reads and writes nothing else.
///
/// [`PostgresStore::write_locked`]: super::PostgresStore
pub(super) async fn redeem_oidc_code(
    t: &Tx<'_>,
    code_sha256: [u8; 32],
    access: Option<([u8; 32], u64)>,
    now_ms: u64,
) -> StoreResult<RedeemResult> {
    // Locked: two redemptions of one code (on two replicas) queue, and the
    // second sees the first.
    let Some(login) = login_where(t, "code_sha256", &code_sha256, true).await? else {
        return Ok(RedeemResult::Unknown);
    };
    if login.redeemed_at_ms.is_some() {
        exec(
            t,
            "UPDATE oidc_logins SET revoked = TRUE WHERE id = $1",
            &[&login.id.0.as_slice()],
        )
        .await?;
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
    exec(
        t,
        "UPDATE oidc_logins SET redeemed_at_ms = $2, access_sha256 = $3, \
         access_expires_at_ms = $4, expires_at_ms = $5 WHERE id = $1",
        &[
            &login.id.0.as_slice(),
            &i64_of(now_ms),
            &access_sha256.as_ref().map(|h| h.as_slice()),
            &access_expires_at_ms.map(i64_of),
            &i64_of(expires_at_ms),
        ],
    )
    .await?;
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
pub(super) async fn oidc_login_by_access_token(
    t: &Tx<'_>,
    access_sha256: [u8; 32],
) -> StoreResult<Option<OidcLogin>> {
    login_where(t, "access_sha256", &access_sha256, false).await
}

/// The transaction of [`Store::purge_oidc_logins`](crate::store::Store::purge_oidc_logins).
pub(super) async fn purge_oidc_logins(t: &Tx<'_>, now_ms: u64, limit: u32) -> StoreResult<u64> {
    exec(
        t,
        "DELETE FROM oidc_logins WHERE id IN \
         (SELECT id FROM oidc_logins WHERE expires_at_ms < $1 \
          AND hardware_receipt IS NULL LIMIT $2)",
        &[&i64_of(now_ms), &i64::from(limit)],
    )
    .await
}

/// The transaction of [`Store::choose_oidc_login_method`](crate::store::Store::choose_oidc_login_method).
/// One statement in its own transaction ([`PostgresStore::write_one`]):
/// its `WHERE` is re-checked on the newest row a concurrent update left, so
/// of two such updates of one login one changes it and the other gets
/// `false`.
///
/// [`PostgresStore::write_one`]: super::PostgresStore
pub(super) async fn choose_oidc_login_method(
    t: &Tx<'_>,
    id: LoginId,
    method: LoginMethod,
    hardware_identity_id: Option<IdentityId>,
) -> StoreResult<bool> {
    let n = exec(
        t,
        "UPDATE oidc_logins SET method = $2, hardware_identity_id = $3, request_id = NULL, \
         request_expires_at_ms = NULL, first_factor = NULL \
         WHERE id = $1 AND code_sha256 IS NULL",
        &[
            &id.0.as_slice(),
            &Col(method),
            &hardware_identity_id.map(Col),
        ],
    )
    .await?;
    Ok(n == 1)
}

/// The transaction of [`Store::pass_oidc_first_factor`](crate::store::Store::pass_oidc_first_factor).
/// One statement in its own transaction ([`PostgresStore::write_one`]):
/// its `WHERE` is re-checked on the newest row a concurrent update left, so
/// of two such updates of one login one changes it and the other gets
/// `false`.
///
/// [`PostgresStore::write_one`]: super::PostgresStore
pub(super) async fn pass_oidc_first_factor(
    t: &Tx<'_>,
    id: LoginId,
    method: LoginMethod,
    first_factor: &str,
) -> StoreResult<bool> {
    let n = exec(
        t,
        "UPDATE oidc_logins SET first_factor = $3 \
         WHERE id = $1 AND method = $2 AND code_sha256 IS NULL",
        &[&id.0.as_slice(), &Col(method), &first_factor],
    )
    .await?;
    Ok(n == 1)
}

/// The transaction of [`Store::complete_oidc_login_by_hardware`](crate::store::Store::complete_oidc_login_by_hardware):
/// one conditional update, so a login gets one code whichever replica
/// completes it first.
/// In its own transaction ([`PostgresStore::write_one`]): the `WHERE` is
/// re-checked on the newest row a concurrent update left.
///
/// [`PostgresStore::write_one`]: super::PostgresStore
pub(super) async fn complete_oidc_login_by_hardware(
    t: &Tx<'_>,
    id: LoginId,
    method: LoginMethod,
    receipt_json: &str,
    code_sha256: [u8; 32],
    code_expires_at_ms: u64,
) -> StoreResult<bool> {
    let n = exec(
        t,
        "UPDATE oidc_logins SET hardware_receipt = $3, code_sha256 = $4, \
         code_expires_at_ms = $5 WHERE id = $1 AND method = $2 AND code_sha256 IS NULL",
        &[
            &id.0.as_slice(),
            &Col(method),
            &receipt_json,
            &code_sha256.as_slice(),
            &i64_of(code_expires_at_ms),
        ],
    )
    .await?;
    Ok(n == 1)
}
