//! Step 1 of a chip's activation, on the self-service pages: the person,
//! signed in with the app, registers the chip (WebAuthn create) and chooses
//! its access code. The chip is stored as pending until the waiting period
//! ends, and every channel is told at once (`chip_added`), so a stranger who
//! got hold of a session has the waiting period against them.

use ring::digest::{SHA256, digest};
use webauthn_rs::prelude::{RegisterPublicKeyCredential, SecurityKeyRegistration, Uuid};
use zeroize::Zeroizing;

use super::{CEREMONY_MS, ChipError, event, masked, put_ceremony, relying_party};
use crate::access_code::{self, AccessCodeError};
use crate::api::AppState;
use crate::store::{
    AddChipResult, CeremonyPurpose, Chip, ChipCeremony, ChipId, ChipState, Identity,
};
use eid_protocol::events::SecurityEventKind;

/// A started ceremony: its id (posted back) and the options for
/// `navigator.credentials.create` / `.get` as JSON (binary fields base64url).
#[derive(Debug, Clone)]
pub(crate) struct Started {
    /// The ceremony's id, 32 hex digits.
    pub(crate) ceremony_id: String,
    /// The `publicKey` options' JSON.
    pub(crate) options_json: String,
}

/// How a registration ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RegisterOutcome {
    /// Stored as pending; it can be confirmed from `active_from_ms`.
    Registered {
        /// The new chip.
        id: ChipId,
        /// The end of the waiting period.
        active_from_ms: u64,
    },
    /// The access code breaks a rule (nothing was used up).
    AccessCode(AccessCodeError),
    /// The two access codes typed differ (nothing was used up).
    AccessCodesDiffer,
    /// No such ceremony for this person (unknown, used, expired, another's).
    BadCeremony,
    /// The browser's answer was malformed or did not verify.
    BadCredential,
    /// The person already has a chip (deactivate it from the app first).
    AlreadyHasChip,
    /// This chip is registered already.
    CredentialTaken,
    /// The identity is blocked.
    IdentityBlocked,
}

/// Starts a registration for `identity`: a challenge excluding nothing (the
/// store refuses a credential registered before, to anyone).
pub(crate) async fn start(
    state: &AppState,
    identity: &Identity,
    origin: &str,
) -> Result<Started, ChipError> {
    let rp = relying_party(origin)?;
    // A random user handle: security keys keep no account, and the identity
    // id stays on the server.
    let handle = Uuid::from_bytes(eid_protocol::crypto::random_array());
    let (options, registration) = rp
        .start_securitykey_registration(
            handle,
            &identity.user_id,
            &identity.user_id,
            None,
            None,
            None,
        )
        .map_err(|_| ChipError::Origin)?;
    let ceremony = ChipCeremony {
        id: eid_protocol::crypto::random_array(),
        identity_id: identity.id,
        purpose: CeremonyPurpose::Register,
        subject: None,
        state: serde_json::to_string(&registration).map_err(|_| ChipError::Stored)?,
        expires_at_ms: state.now_ms().saturating_add(CEREMONY_MS),
    };
    let id = put_ceremony(state, ceremony).await?;
    Ok(Started {
        ceremony_id: hex::encode(id),
        options_json: serde_json::to_string(&options.public_key).map_err(|_| ChipError::Stored)?,
    })
}

/// Finishes a registration: checks the access code's rules, takes the
/// ceremony (once), verifies the browser's answer and stores the pending
/// chip with its `chip_added` event.
pub(crate) async fn finish(
    state: &AppState,
    identity: &Identity,
    ceremony_id: [u8; 16],
    credential_json: &str,
    access_code: (&str, &str),
    origin: &str,
) -> Result<RegisterOutcome, ChipError> {
    if identity.blocked {
        return Ok(RegisterOutcome::IdentityBlocked);
    }
    let code = match access_code::check(access_code.0, &identity.user_id) {
        Ok(code) => code,
        Err(e) => return Ok(RegisterOutcome::AccessCode(e)),
    };
    if access_code.0 != access_code.1 {
        return Ok(RegisterOutcome::AccessCodesDiffer);
    }
    let now = state.now_ms();
    let Some(ceremony) = state.store.take_chip_ceremony(ceremony_id, now).await? else {
        return Ok(RegisterOutcome::BadCeremony);
    };
    if ceremony.identity_id != identity.id || ceremony.purpose != CeremonyPurpose::Register {
        return Ok(RegisterOutcome::BadCeremony);
    }
    let registration: SecurityKeyRegistration =
        serde_json::from_str(&ceremony.state).map_err(|_| ChipError::Stored)?;
    let Ok(answer) = serde_json::from_str::<RegisterPublicKeyCredential>(credential_json) else {
        return Ok(RegisterOutcome::BadCredential);
    };
    let rp = relying_party(origin)?;
    let Ok(key) = rp.finish_securitykey_registration(&answer, &registration) else {
        return Ok(RegisterOutcome::BadCredential);
    };
    let credential_id: &[u8] = key.cred_id().as_ref();
    let credential_id_sha256: [u8; 32] = digest(&SHA256, credential_id)
        .as_ref()
        .try_into()
        .expect("SHA-256 has 32 bytes");
    let hash = hash_off_thread(code).await?;
    let active_from_ms = now.saturating_add(state.config.chip_wait_secs.saturating_mul(1000));
    let chip = Chip {
        id: ChipId::random(),
        identity_id: identity.id,
        credential_id_sha256,
        credential: serde_json::to_string(&key).map_err(|_| ChipError::Stored)?,
        counter: 0,
        state: ChipState::Pending,
        access_code: hash,
        registered_at_ms: now,
        active_from_ms,
        last_used_at_ms: None,
        failures: 0,
        blocked_until_ms: None,
        ended_at_ms: None,
        revision: 0,
    };
    let id = chip.id;
    let added = event(
        identity.id,
        SecurityEventKind::ChipAdded,
        masked(&credential_id_sha256),
        now,
    );
    Ok(match state.store.add_chip(chip, added).await? {
        AddChipResult::Added => RegisterOutcome::Registered { id, active_from_ms },
        AddChipResult::AlreadyHasChip => RegisterOutcome::AlreadyHasChip,
        AddChipResult::CredentialTaken => RegisterOutcome::CredentialTaken,
        AddChipResult::IdentityUnusable => RegisterOutcome::IdentityBlocked,
    })
}

/// Argon2id takes tens of milliseconds and 19 MiB: off the async workers.
pub(crate) async fn hash_off_thread(
    code: Zeroizing<String>,
) -> Result<access_code::AccessCodeHash, ChipError> {
    tokio::task::spawn_blocking(move || access_code::hash(&code))
        .await
        .map_err(|_| ChipError::Hashing)
}
