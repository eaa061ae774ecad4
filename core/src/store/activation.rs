//! The `pending_activation` table: an activation whose keys are made and
//! proof signed but whose answer has not arrived (at most one). The same
//! row layout serves the device enrolment's keys ([`super::enrolment`]).

use eid_protocol::PublicKey;
use rusqlite::{OptionalExtension, params};

use super::{Store, bad, fixed, to_i64, to_u64};
use crate::error::Result;
use crate::pin::WrappedPinKey;

/// An interrupted activation: keys made and proof signed, answer not received.
#[derive(Debug, Clone)]
pub(crate) struct PendingActivationRow {
    pub(crate) user_id: String,
    pub(crate) device_key_alias: String,
    pub(crate) pin_wrap_alias: String,
    pub(crate) device_public_key: PublicKey,
    pub(crate) pin_public_key: PublicKey,
    pub(crate) wrapped: WrappedPinKey,
    pub(crate) device_signature: Vec<u8>,
    pub(crate) pin_signature: Vec<u8>,
    pub(crate) created_at_ms: u64,
}

impl Store {
    pub(crate) fn put_pending_activation(&self, p: &PendingActivationRow) -> Result<()> {
        self.put_pending_keys("pending_activation", p)
    }

    pub(super) fn put_pending_keys(&self, table: &str, p: &PendingActivationRow) -> Result<()> {
        self.conn.execute(
            &format!(
                "INSERT OR REPLACE INTO {table} (id, user_id, device_key_alias, pin_wrap_alias, \
                 device_public_key, pin_public_key, wrapped, salt, nonce, iterations, device_signature, \
                 pin_signature, created_at_ms) VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
            ),
            params![
                p.user_id,
                p.device_key_alias,
                p.pin_wrap_alias,
                p.device_public_key.as_bytes().as_slice(),
                p.pin_public_key.as_bytes().as_slice(),
                p.wrapped.ciphertext,
                p.wrapped.salt.as_slice(),
                p.wrapped.nonce.as_slice(),
                i64::from(p.wrapped.iterations),
                p.device_signature,
                p.pin_signature,
                to_i64(p.created_at_ms),
            ],
        )?;
        Ok(())
    }

    pub(crate) fn pending_activation(&self) -> Result<Option<PendingActivationRow>> {
        self.pending_keys("pending_activation")
    }

    pub(super) fn pending_keys(&self, table: &str) -> Result<Option<PendingActivationRow>> {
        let row = self
            .conn
            .query_row(
                &format!(
                    "SELECT user_id, device_key_alias, pin_wrap_alias, device_public_key, pin_public_key,
                        wrapped, salt, nonce, iterations, device_signature, pin_signature, created_at_ms
                 FROM {table} WHERE id = 1"
                ),
                [],
                |r| {
                    Ok((
                        (
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, Vec<u8>>(3)?,
                            r.get::<_, Vec<u8>>(4)?,
                            r.get::<_, Vec<u8>>(5)?,
                        ),
                        (
                            r.get::<_, Vec<u8>>(6)?,
                            r.get::<_, Vec<u8>>(7)?,
                            r.get::<_, i64>(8)?,
                            r.get::<_, Vec<u8>>(9)?,
                            r.get::<_, Vec<u8>>(10)?,
                            r.get::<_, i64>(11)?,
                        ),
                    ))
                },
            )
            .optional()?;
        let Some(((user_id, dka, pwa, dpk, ppk, wrapped), (salt, nonce, it, ds, ps, created))) =
            row
        else {
            return Ok(None);
        };
        Ok(Some(PendingActivationRow {
            user_id,
            device_key_alias: dka,
            pin_wrap_alias: pwa,
            device_public_key: PublicKey::from_sec1(&dpk).map_err(|_| bad("key"))?,
            pin_public_key: PublicKey::from_sec1(&ppk).map_err(|_| bad("key"))?,
            wrapped: WrappedPinKey {
                salt: fixed(salt)?,
                nonce: fixed(nonce)?,
                ciphertext: wrapped,
                iterations: u32::try_from(it).map_err(|_| bad("iterations"))?,
            },
            device_signature: ds,
            pin_signature: ps,
            created_at_ms: to_u64(created),
        }))
    }

    pub(crate) fn clear_pending_activation(&self) -> Result<()> {
        self.conn.execute("DELETE FROM pending_activation", [])?;
        Ok(())
    }
}
