//! Pull on app open: 0, 1 and many requests across several authenticators on one
//! phone, in one round trip; blocked identities; one person's PIN never
//! unlocks another's request.

use std::collections::HashSet;

use eid_core::{AuthenticatorState, Error};
use eid_e2e_tests::{PIN, World};
use eid_protocol::RequestKind;

#[tokio::test]
async fn pulls_zero_one_and_many_requests_across_authenticators() {
    let w = World::start().await.unwrap();
    let users = ["grete#1950x", "hans#1948y", "ida!2011z"];
    let phone = w.phone("household").unwrap();
    let mut authenticators = Vec::new();
    for user in users {
        let person = w.person(user).await.unwrap();
        authenticators.push(phone.app.activate(user, &person.code, PIN).await.unwrap());
    }

    // Nothing pending.
    assert!(phone.app.refresh().await.unwrap().is_empty());

    // One.
    let first = w.login(users[0], "Log på Netbank").await.unwrap();
    let views = phone.app.refresh().await.unwrap();
    assert_eq!(views.len(), 1);
    assert_eq!(views[0].request_id, first);
    assert_eq!(
        views[0].authenticator_id,
        authenticators[0].authenticator_id
    );
    assert_eq!(views[0].user_id, users[0]);

    // Many: 5 for the first person (including the one above), 3 signatures
    // for the second, none for the third.
    let mut expected = HashSet::from([(first, authenticators[0].authenticator_id)]);
    for i in 1..5 {
        let r = w
            .login(users[0], &format!("Log på Netbank #{i}"))
            .await
            .unwrap();
        expected.insert((r, authenticators[0].authenticator_id));
    }
    for i in 0..3 {
        let r =
            w.rp.create_request(
                users[1],
                RequestKind::Signature,
                &format!("Underskriv lånedokument {i}"),
                None,
            )
            .await
            .unwrap()
            .request_id;
        expected.insert((r, authenticators[1].authenticator_id));
    }
    let views = phone.app.refresh().await.unwrap();
    let got: HashSet<_> = views
        .iter()
        .map(|v| (v.request_id, v.authenticator_id))
        .collect();
    assert_eq!(got, expected);
    assert!(
        views
            .iter()
            .filter(|v| v.authenticator_id == authenticators[1].authenticator_id)
            .all(|v| v.kind == RequestKind::Signature)
    );
    // The stored list is served without the network, too.
    assert_eq!(
        phone
            .app
            .requests(eid_core::Language::English)
            .unwrap()
            .len(),
        8
    );

    // One person's PIN never unlocks another's request.
    let hans_request = views
        .iter()
        .find(|v| v.authenticator_id == authenticators[1].authenticator_id)
        .unwrap()
        .request_id;
    let hans = authenticators[1].authenticator_id;
    phone.app.change_pin(&hans, PIN, "502817").await.unwrap();
    assert!(matches!(
        phone.app.unlock(&hans, &hans_request, PIN).await,
        Err(Error::WrongPin { .. })
    ));
    // Nor can an unlock for one authenticator decide another authenticator's request.
    assert_eq!(
        phone
            .app
            .unlock(&authenticators[0].authenticator_id, &hans_request, PIN)
            .await
            .unwrap_err(),
        Error::UnknownRequest
    );
    let unlock = phone
        .app
        .unlock(&hans, &hans_request, "502817")
        .await
        .unwrap();
    phone.app.approve(&unlock, true, None).await.unwrap();
    assert_eq!(phone.app.refresh().await.unwrap().len(), 7);
}

#[tokio::test]
async fn a_blocked_identity_shows_blocked_and_gets_no_requests() {
    let w = World::start().await.unwrap();
    let user = "grete#1950x";
    let person = w.person(user).await.unwrap();
    let phone = w.phone("grete").unwrap();
    let authenticator = phone.app.activate(user, &person.code, PIN).await.unwrap();
    let request = w.login(user, "Log på Netbank").await.unwrap();
    assert_eq!(phone.app.refresh().await.unwrap().len(), 1);

    w.admin
        .block(person.identity_id, "test: support case")
        .await
        .unwrap();
    assert!(phone.app.refresh().await.unwrap().is_empty());
    assert_eq!(
        phone.app.authenticators().unwrap()[0].state,
        AuthenticatorState::Blocked
    );
    assert!(
        phone
            .app
            .unlock(&authenticator.authenticator_id, &request, PIN)
            .await
            .is_err()
    );
    assert!(w.login(user, "Log på Netbank").await.is_err());

    w.admin
        .unblock(person.identity_id, "test: support case")
        .await
        .unwrap();
    let request = w.login(user, "Log på Netbank igen").await.unwrap();
    let views = phone.app.refresh().await.unwrap();
    assert_eq!(
        phone.app.authenticators().unwrap()[0].state,
        AuthenticatorState::Active
    );
    assert_eq!(views.len(), 1);
    assert_eq!(views[0].request_id, request);
}
