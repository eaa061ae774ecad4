//! The app's signed device calls for its hardware authenticators (list and
//! PIN-proved deactivation), as a phone makes them, for the tests of chips
//! and code devices.

use eid_api_client::SoftPhone;

use super::Harness;

/// The signed device call of the app's hardware list.
pub async fn hardware_list(
    h: &Harness,
    phone: &SoftPhone,
) -> eid_protocol::wire::HardwareListResponse {
    let body = serde_json::to_vec(&eid_protocol::wire::HardwareListRequest {
        authenticator_id: phone.id(),
    })
    .unwrap();
    let answer = signed_post(h, phone, eid_protocol::wire::PATH_DEVICE_HARDWARE, body).await;
    assert_eq!(answer.0, 200, "{}", answer.1);
    serde_json::from_str(&answer.1).unwrap()
}

/// A device-signed POST; returns the status and the body.
pub async fn signed_post(
    h: &Harness,
    phone: &SoftPhone,
    path: &str,
    body: Vec<u8>,
) -> (u16, String) {
    use eid_protocol::wire;
    let headers = SoftPhone::sign_device_request(
        &[phone],
        path,
        &body,
        h.now(),
        eid_protocol::Nonce16::random(),
    );
    let resp = h
        .endpoint
        .client
        .post(format!(
            "{}{path}",
            h.endpoint.base_url.trim_end_matches('/')
        ))
        .header("content-type", "application/json")
        .header(wire::HEADER_TIMESTAMP, headers.timestamp)
        .header(wire::HEADER_NONCE, headers.nonce)
        .header(wire::HEADER_SIGNATURE, headers.signature)
        .body(body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// The app deactivates a hardware authenticator, proving the PIN with
/// `pin_key`.
pub async fn deactivate_hardware(
    h: &Harness,
    phone: &SoftPhone,
    pin_key: &eid_protocol::crypto::SoftwareSigningKey,
    hardware_id: &str,
) -> (u16, String) {
    let nonce = eid_protocol::Nonce16::random();
    let message = eid_protocol::messages::HardwareDeactivation {
        authenticator_id: phone.id(),
        hardware_id: hardware_id.to_owned(),
        issued_at_ms: h.now(),
        nonce,
    };
    let body = serde_json::to_vec(&eid_protocol::wire::DeactivateHardwareRequest {
        authenticator_id: phone.id(),
        hardware_id: hardware_id.to_owned(),
        pin_proof: eid_protocol::wire::PinProof {
            issued_at_ms: h.now(),
            nonce,
            signature: pin_key.sign(&message.signing_bytes()),
        },
    })
    .unwrap();
    signed_post(
        h,
        phone,
        eid_protocol::wire::PATH_DEVICE_HARDWARE_DEACTIVATE,
        body,
    )
    .await
}
