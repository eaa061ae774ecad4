//! Household: one phone holds several people's identities. The first screen
//! shows each person and how many requests wait, and nothing about them; a
//! request's details are built only for the person chosen, and each person's
//! own PIN is the only one that unlocks their requests.

use eid_core::{AuthenticatorState, Error, Language};
use eid_e2e_tests::{PIN, World};
use eid_protocol::AuthenticatorId;

const USERS: [&str; 3] = ["grete#1950x", "hans#1948y", "ida!2011z"];

#[tokio::test]
async fn the_first_screen_lists_people_and_counts_and_details_come_after_choosing() {
    let w = World::start().await.unwrap();
    let phone = w.phone("household").unwrap();
    let mut authenticators = Vec::new();
    for user in USERS {
        let person = w.person(user).await.unwrap();
        authenticators.push(phone.app.activate(user, &person.code, PIN).await.unwrap());
    }
    let secret_text = "Overførsel 25.000 kr. til konto 1234-5678901";
    w.login(USERS[0], secret_text).await.unwrap();
    w.login(USERS[0], "Log på Netbank").await.unwrap();
    w.login(USERS[1], "Log på Borger.dk").await.unwrap();
    phone.app.refresh().await.unwrap();

    let people = phone.app.household(Language::English).unwrap();
    assert_eq!(
        people
            .iter()
            .map(|p| p.user_id.as_str())
            .collect::<Vec<_>>(),
        USERS
    );
    assert_eq!(
        people
            .iter()
            .map(|p| p.pending_requests)
            .collect::<Vec<_>>(),
        [2, 1, 0]
    );
    assert_eq!(people[0].headline, "2 requests waiting");
    assert_eq!(people[2].headline, "No requests");
    // Nothing of a request's content is on the first screen.
    let first_screen = format!("{people:?}");
    assert!(!first_screen.contains("25.000"));
    assert!(!first_screen.contains(eid_e2e_tests::PROVIDER_NAME));

    // Choosing Grete shows her two requests and nobody else's.
    let grete = phone
        .app
        .requests_for(&authenticators[0].authenticator_id, Language::English)
        .unwrap();
    assert_eq!(grete.len(), 2);
    assert!(
        grete
            .iter()
            .all(|v| v.authenticator_id == authenticators[0].authenticator_id)
    );
    assert!(
        grete
            .iter()
            .any(|v| v.reference_text.as_deref() == Some(secret_text))
    );
    let hans = phone
        .app
        .requests_for(&authenticators[1].authenticator_id, Language::English)
        .unwrap();
    assert_eq!(hans.len(), 1);
    assert!(
        phone
            .app
            .requests_for(&authenticators[2].authenticator_id, Language::Danish)
            .unwrap()
            .is_empty()
    );

    // An authenticator that is not on this phone is a typed error.
    assert!(matches!(
        phone
            .app
            .requests_for(&AuthenticatorId([9; 16]), Language::English),
        Err(Error::UnknownAuthenticator)
    ));

    // Hans's request can't be unlocked through Grete's authenticator.
    assert!(matches!(
        phone
            .app
            .unlock(
                &authenticators[0].authenticator_id,
                &hans[0].request_id,
                PIN
            )
            .await,
        Err(Error::UnknownRequest)
    ));
}

#[tokio::test]
async fn a_blocked_person_shows_what_to_do_next_and_no_requests() {
    let w = World::start().await.unwrap();
    let phone = w.phone("household").unwrap();
    let grete = w.person(USERS[0]).await.unwrap();
    let hans = w.person(USERS[1]).await.unwrap();
    phone
        .app
        .activate(USERS[0], &grete.code, PIN)
        .await
        .unwrap();
    phone.app.activate(USERS[1], &hans.code, PIN).await.unwrap();
    w.login(USERS[0], "Log på Netbank").await.unwrap();
    w.login(USERS[1], "Log på Netbank").await.unwrap();
    phone.app.refresh().await.unwrap();
    w.admin
        .block(hans.identity_id, "test: support case")
        .await
        .unwrap();
    phone.app.refresh().await.unwrap();

    let people = phone.app.household(Language::Danish).unwrap();
    assert_eq!(people[0].state, AuthenticatorState::Active);
    assert_eq!(people[0].pending_requests, 1);
    assert_eq!(people[0].next_step, None);
    assert_eq!(people[1].state, AuthenticatorState::Blocked);
    assert_eq!(people[1].pending_requests, 0);
    assert_eq!(people[1].headline, "Spærret");
    assert!(people[1].next_step.as_deref().unwrap().contains("support"));
}
