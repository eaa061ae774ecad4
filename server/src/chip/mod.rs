//! Chips: FIDO2/WebAuthn security keys, the authenticator that reaches
//! level High (docs/authenticators.md).
//!
//! The WebAuthn ceremonies are webauthn-rs' security-key flows (a maintained
//! library; its crypto backend is OpenSSL, which is fine on the server, while
//! the phone library stays ring-only). User verification is off: the chip
//! proves possession, and a chip-specific access code ([`crate::access_code`],
//! Argon2id, checked centrally) proves knowledge, as MitID does.
//!
//! Every challenge is a [`crate::store::ChipCeremony`] in the store:
//! server-side, bound to one identity (and a login or chip), single use
//! (`Store::take_chip_ceremony` deletes it) and void after five minutes. The
//! browser holds only the ceremony's random id, so a replayed answer finds
//! nothing to complete.
//!
//! Subjects: `register` (step 1 on the self-service pages), `confirm` (step 2
//! after the waiting period), `assertion` (one use of a chip: the signature,
//! its counter, the access code and the lockout), `list` (the app's list of
//! hardware authenticators, and deactivation), [`fuzzing`] (the parsers of
//! browser input, for the fuzz targets).

pub(crate) mod assertion;
pub(crate) mod confirm;
pub mod fuzzing;
pub(crate) mod list;
pub(crate) mod register;
#[cfg(test)]
mod scenarios;
// The software chip lives with the integration tests, which drive it over
// HTTP; the unit tests here share the one file.
#[cfg(test)]
#[path = "../../tests/common/soft_chip.rs"]
pub(crate) mod soft_key;

use std::time::Duration;

use webauthn_rs::prelude::{Url, Webauthn, WebauthnBuilder};

use crate::api::AppState;
use crate::store::{ChipCeremony, NewEvent, StoreError};
use eid_protocol::IdentityId;
use eid_protocol::events::SecurityEventKind;

/// How long a challenge may be answered (the browser's timeout too).
pub(crate) const CEREMONY_MS: u64 = 5 * 60 * 1000;

/// Wrong access codes in a row that block a chip for a while.
pub(crate) const FAILURES_BEFORE_LOCKOUT: u32 = 3;

/// The name the browser shows for the site asking for the chip.
const RP_NAME: &str = "eID";

/// A failure that is not a business outcome.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ChipError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The server's own origin cannot be a WebAuthn relying party (an IP
    /// address, no host): a configuration problem, not the person's.
    #[error("the origin cannot be a WebAuthn relying party")]
    Origin,
    /// A stored credential or ceremony state could not be read back.
    #[error("stored chip data is unreadable")]
    Stored,
    /// The hashing task failed.
    #[error("access-code hashing failed")]
    Hashing,
}

/// The WebAuthn relying party for `origin` (the issuer, `https://host[:port]`):
/// its id is the origin's host, so a chip registered on the self-service
/// pages works on the login page of the same server, and on no other site.
pub(crate) fn relying_party(origin: &str) -> Result<Webauthn, ChipError> {
    let url = Url::parse(origin).map_err(|_| ChipError::Origin)?;
    let host = url.host_str().ok_or(ChipError::Origin)?.to_owned();
    WebauthnBuilder::new(&host, &url)
        .map_err(|_| ChipError::Origin)?
        .rp_name(RP_NAME)
        .timeout(Duration::from_millis(CEREMONY_MS))
        // Presence only: the access code, not the chip's own PIN, is the
        // knowledge factor (MitID's chip has no PIN pad either).
        .danger_set_user_presence_only_security_keys(true)
        .build()
        .map_err(|_| ChipError::Origin)
}

/// Stores a ceremony's state and returns its id for the page.
pub(crate) async fn put_ceremony(
    state: &AppState,
    ceremony: ChipCeremony,
) -> Result<[u8; 16], ChipError> {
    let id = ceremony.id;
    state
        .store
        .put_chip_ceremony(ceremony, state.now_ms())
        .await?;
    Ok(id)
}

/// A chip event for `identity`, its detail the chip's masked id.
pub(crate) fn event(
    identity_id: IdentityId,
    kind: SecurityEventKind,
    masked: String,
    now_ms: u64,
) -> NewEvent {
    NewEvent {
        identity_id,
        kind,
        authenticator_id: None,
        detail: Some(masked),
        occurred_at_ms: now_ms,
        extra_recipients: Vec::new(),
    }
}

/// A chip as the person sees it: the last four hex digits of the SHA-256 of
/// its credential id (the raw id is never shown or logged).
pub(crate) fn masked(credential_id_sha256: &[u8; 32]) -> String {
    let hex = hex::encode(credential_id_sha256);
    format!("…{}", &hex[hex.len() - 4..])
}

/// How long the chip is locked after `failures` wrong access codes in a
/// row: none before [`FAILURES_BEFORE_LOCKOUT`], then 5 minutes doubling
/// with every further failure, at most a day.
pub(crate) fn lockout_ms(failures: u32) -> Option<u64> {
    let over = failures.checked_sub(FAILURES_BEFORE_LOCKOUT)?;
    let five_minutes = 5 * 60 * 1000u64;
    Some(
        five_minutes
            .saturating_mul(1u64 << over.min(20))
            .min(24 * 60 * 60 * 1000),
    )
}

/// Parses a ceremony id from the page (32 lower-case hex digits).
pub(crate) fn parse_ceremony_id(text: &str) -> Option<[u8; 16]> {
    crate::store::ChipId::parse(text).map(|id| id.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lockout_starts_at_the_third_failure_and_doubles_up_to_a_day() {
        assert_eq!(lockout_ms(0), None);
        assert_eq!(lockout_ms(2), None);
        assert_eq!(lockout_ms(3), Some(300_000));
        assert_eq!(lockout_ms(4), Some(600_000));
        assert_eq!(lockout_ms(40), Some(86_400_000));
    }

    #[test]
    fn an_ip_address_cannot_be_a_relying_party_but_a_host_name_can() {
        assert!(relying_party("https://localhost:8443").is_ok());
        assert!(relying_party("https://eid.example").is_ok());
        assert!(matches!(relying_party("not a url"), Err(ChipError::Origin)));
    }

    #[test]
    fn a_masked_chip_shows_four_hex_digits() {
        assert_eq!(masked(&[0xab; 32]), "…abab");
    }
}
