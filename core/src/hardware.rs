//! The person's hardware authenticators (code devices and chip) as the
//! server lists them, and their deactivation from the app with the PIN
//! (docs/integration.md, docs/authenticators.md).

use eid_protocol::messages::HardwareDeactivation;
use eid_protocol::wire::{self, HardwareAuthenticatorInfo};
use eid_protocol::{AuthenticatorId, Nonce16};
use zeroize::Zeroizing;

use crate::{App, Error, Result, blocking, lock};

impl App {
    /// The identity's hardware authenticators (kind, masked serial, state,
    /// added, last use, works from), asked from the server now. Signed by the
    /// device key; no PIN (it only reads).
    pub async fn hardware_authenticators(
        &self,
        authenticator: &AuthenticatorId,
    ) -> Result<Vec<HardwareAuthenticatorInfo>> {
        let acc = lock(&self.inner.store)?.authenticator(authenticator)?;
        let body = serde_json::to_vec(&wire::HardwareListRequest {
            authenticator_id: acc.authenticator_id,
        })?;
        let resp: wire::HardwareListResponse = self
            .inner
            .device_post(std::slice::from_ref(&acc), wire::PATH_DEVICE_HARDWARE, body)
            .await?;
        Ok(resp.hardware)
    }

    /// Deactivates one hardware authenticator (a chip in its waiting period:
    /// cancels it). Show it behind a swipe; it needs the PIN (checked and
    /// counted like any PIN entry), whose key signs the deactivation, so an
    /// unlocked phone in a thief's hand cannot remove the person's chip. The
    /// person is told on every channel. Returns the entry as it is now.
    /// Without `swipe_confirmed` nothing is done ([`Error::SwipeRequired`]).
    pub async fn deactivate_hardware(
        &self,
        authenticator: &AuthenticatorId,
        hardware_id: &str,
        pin: &str,
        swipe_confirmed: bool,
    ) -> Result<HardwareAuthenticatorInfo> {
        if !swipe_confirmed {
            return Err(Error::SwipeRequired);
        }
        let acc = lock(&self.inner.store)?.authenticator(authenticator)?;
        let inner = self.inner.clone();
        let checked = acc.clone();
        let pin = Zeroizing::new(pin.to_owned());
        let pin_key = blocking(move || inner.check_pin(&checked, &pin)).await?;
        // A clock-skew answer teaches the server's time; the proof is then
        // signed again with the corrected time (once).
        let mut tries_left = 2;
        loop {
            tries_left -= 1;
            let deactivation = HardwareDeactivation {
                authenticator_id: *authenticator,
                hardware_id: hardware_id.to_owned(),
                issued_at_ms: self.inner.request_timestamp()?,
                nonce: Nonce16::random(),
            };
            let body = serde_json::to_vec(&wire::DeactivateHardwareRequest {
                authenticator_id: acc.authenticator_id,
                hardware_id: hardware_id.to_owned(),
                pin_proof: wire::PinProof {
                    issued_at_ms: deactivation.issued_at_ms,
                    nonce: deactivation.nonce,
                    signature: pin_key.sign(&deactivation.signing_bytes()),
                },
            })?;
            let answer: Result<wire::DeactivateHardwareResponse> = self
                .inner
                .device_post(
                    std::slice::from_ref(&acc),
                    wire::PATH_DEVICE_HARDWARE_DEACTIVATE,
                    body,
                )
                .await;
            match answer {
                Err(Error::Rejected {
                    code: wire::ErrorCode::ClockSkew,
                    ..
                }) if tries_left > 0 => continue,
                Ok(resp) if resp.hardware.id != hardware_id => {
                    return Err(Error::InvalidResponse(
                        "the deactivation answer names another hardware authenticator".into(),
                    ));
                }
                other => return other.map(|resp| resp.hardware),
            }
        }
    }
}
