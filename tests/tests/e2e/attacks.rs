//! A man in the middle: one who holds a certificate the phone does not pin
//! is refused at TLS; one who controls the pinned TLS front end (modelled by
//! pinning the proxy) still cannot change what the person sees, because every
//! request is signed by the server's key learned at activation.

use eid_core::Error;
use eid_e2e_tests::{Mitm, PIN, TAMPERED_TEXT, Tamper, World};
use eid_protocol::wire::RequestStatus;

const USER: &str = "grete#1950x";
const TEXT: &str = "Overfør 2.500,00 kr. til konto 1234-567890";

#[tokio::test]
async fn a_changed_reference_text_or_forged_signature_is_refused_and_nothing_is_stored() {
    let w = World::start().await.unwrap();
    let person = w.person(USER).await.unwrap();
    let mitm = Mitm::start(&w, Tamper::Nothing).await.unwrap();
    // Activated through the proxy while it behaved: the phone learned the
    // real server key.
    let phone = w
        .phone_via("grete", &mitm.base_url, &mitm.spki_pin)
        .unwrap();
    let authenticator = phone.app.activate(USER, &person.code, PIN).await.unwrap();
    let request = w.login(USER, TEXT).await.unwrap();

    for tamper in [Tamper::ChangeReferenceText, Tamper::ForgeSignature] {
        mitm.set(tamper);
        assert_eq!(
            phone.app.refresh().await.unwrap_err(),
            Error::InvalidServerSignature,
            "{tamper:?}"
        );
        assert!(
            phone
                .app
                .requests(eid_core::Language::English)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            phone
                .app
                .unlock(&authenticator.authenticator_id, &request, PIN)
                .await
                .unwrap_err(),
            Error::UnknownRequest
        );
    }
    // Honest again: the real text is stored. A tampered pull after that must
    // still fail and leave the stored request as it was (stored envelopes are
    // not re-verified, so the comparison must be byte for byte).
    mitm.set(Tamper::Nothing);
    let views = phone.app.refresh().await.unwrap();
    assert_eq!(views[0].reference_text.as_deref(), Some(TEXT));
    for tamper in [Tamper::ChangeReferenceText, Tamper::ForgeSignature] {
        mitm.set(tamper);
        assert_eq!(
            phone.app.refresh().await.unwrap_err(),
            Error::InvalidServerSignature,
            "{tamper:?} after an honest pull"
        );
        let stored = phone.app.requests(eid_core::Language::English).unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].reference_text.as_deref(), Some(TEXT));
    }
    mitm.set(Tamper::Nothing);
    let views = phone.app.refresh().await.unwrap();
    assert_eq!(views[0].reference_text.as_deref(), Some(TEXT));
    assert_ne!(views[0].reference_text.as_deref(), Some(TAMPERED_TEXT));
    let unlock = phone
        .app
        .unlock(&authenticator.authenticator_id, &request, PIN)
        .await
        .unwrap();
    phone.app.approve(&unlock, true, None).await.unwrap();
    assert_eq!(
        w.rp_status(request, TEXT).await.unwrap().status,
        RequestStatus::Approved
    );
}

#[tokio::test]
async fn a_man_in_the_middle_without_the_pinned_key_is_refused_at_tls() {
    let w = World::start().await.unwrap();
    let phone = w.activated_phone("grete", USER).await.unwrap();
    let request = w.login(USER, TEXT).await.unwrap();
    let mitm = Mitm::start(&w, Tamper::Nothing).await.unwrap();
    // The same phone, routed to the proxy (DNS spoofing, say), still pins
    // the real server's key.
    drop(phone);
    let phone = w.phone_via("grete", &mitm.base_url, &w.spki_pin).unwrap();
    let err = phone.app.refresh().await.unwrap_err();
    assert_eq!(
        err,
        Error::Network("TLS: the server key does not match the pin".into())
    );
    assert!(
        phone
            .app
            .requests(eid_core::Language::English)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        w.rp_status(request, TEXT).await.unwrap().status,
        RequestStatus::Pending
    );
}
