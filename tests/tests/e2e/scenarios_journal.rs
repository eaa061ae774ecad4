//! Tamper-evident device journal (docs/threat-model.md): every decision the phone
//! signs is chained on the phone; the server lists the identity's decisions
//! on each pull; one by this phone's authenticator that the phone never signed
//! raises an alarm. Editing the chain is detected.

use eid_core::{Error, JournalHead};
use eid_e2e_tests::{PIN, World};
use eid_protocol::Outcome;
use eid_protocol::wire::RequestStatus;

#[tokio::test]
async fn a_decision_the_device_never_made_raises_an_alarm() {
    let w = World::start().await.unwrap();
    let person = w.person("gro#1981v").await.unwrap();
    let (phone, id) = w.activated_for(&person, "victim").await.unwrap();

    // The phone's own decisions: journalled, no alarm.
    let own = w.login(&person.user_id, "Log på Netbank").await.unwrap();
    phone.app.refresh().await.unwrap();
    let token = phone.app.unlock(&id, &own, PIN).await.unwrap();
    let own_receipt = phone.app.approve(&token, true, None).await.unwrap();
    let denied = w.login(&person.user_id, "Log på igen").await.unwrap();
    phone.app.refresh().await.unwrap();
    phone.app.deny(&id, &denied).await.unwrap();
    assert!(phone.app.refresh().await.unwrap().is_empty());
    assert_eq!(phone.app.journal_alarms(&id).unwrap(), vec![]);
    assert_eq!(phone.app.journal_verify().unwrap().entries, 2);

    // The person's other phone decides too: listed by the server, not an alarm.
    let other = w.another_phone(&person, "second").await.unwrap();
    let other_id = other.app.authenticators().unwrap()[0].authenticator_id;
    let by_other = w.login(&person.user_id, "Log på fra tablet").await.unwrap();
    other.app.refresh().await.unwrap();
    other.app.deny(&other_id, &by_other).await.unwrap();
    phone.app.refresh().await.unwrap();
    assert_eq!(phone.app.journal_alarms(&id).unwrap(), vec![]);

    // A thief copies the phone's files (device key included) and, with the
    // PIN shoulder-surfed, approves a login from a copy of the phone.
    let thief = phone.cloned("thief").unwrap();
    let stolen = w.login(&person.user_id, "Log på Netbank").await.unwrap();
    thief.app.refresh().await.unwrap();
    let token = thief.app.unlock(&id, &stolen, PIN).await.unwrap();
    let forged = thief.app.approve(&token, true, None).await.unwrap();
    assert_eq!(
        w.rp_status(stolen, "Log på Netbank").await.unwrap().status,
        RequestStatus::Approved
    );

    // The real phone never signed it: its next pull raises the alarm, once.
    phone.app.refresh().await.unwrap();
    phone.app.refresh().await.unwrap();
    let alarms = phone.app.journal_alarms(&id).unwrap();
    assert_eq!(alarms.len(), 1);
    let alarm = &alarms[0];
    assert_eq!(alarm.request_id, stolen);
    assert_eq!(alarm.outcome, Outcome::Approve);
    assert_eq!(alarm.counter, forged.receipt.counter);
    assert_eq!(alarm.decision_sha256, forged.receipt.decision_sha256);
    assert_ne!(alarm.decision_sha256, own_receipt.receipt.decision_sha256);
    // The phone's own chain is intact and does not hold it.
    assert_eq!(phone.app.journal_verify().unwrap().entries, 2);
    // It survives a restart.
    let mut phone = phone;
    phone.restart().unwrap();
    assert_eq!(phone.app.journal_alarms(&id).unwrap(), alarms);
    // Another authenticator's alarms are another authenticator's: the second phone has none.
    other.app.refresh().await.unwrap();
    assert_eq!(other.app.journal_alarms(&other_id).unwrap(), vec![]);
}

#[tokio::test]
async fn editing_the_device_journal_is_detected() {
    let w = World::start().await.unwrap();
    let person = w.person("hal#1972w").await.unwrap();
    let (mut phone, id) = w.activated_for(&person, "edited").await.unwrap();
    for text in ["Log på 1", "Log på 2", "Log på 3"] {
        let r = w.login(&person.user_id, text).await.unwrap();
        phone.app.refresh().await.unwrap();
        phone.app.deny(&id, &r).await.unwrap();
    }
    let JournalHead { entries, .. } = phone.app.journal_verify().unwrap();
    assert_eq!(entries, 3);
    let db = phone.dir.join("core.sqlite3");
    let sql = |q: &str| {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(q).unwrap();
    };

    // An entry's outcome rewritten (a deny made to look like an approval).
    sql("UPDATE journal SET outcome = 1 WHERE seq = 2");
    phone.restart().unwrap();
    assert_eq!(
        phone.app.journal_verify(),
        Err(Error::JournalBroken { entry: 1 })
    );
    sql("UPDATE journal SET outcome = 2 WHERE seq = 2");
    phone.restart().unwrap();
    assert_eq!(phone.app.journal_verify().unwrap().entries, 3);

    // An entry removed: the next one no longer follows.
    sql("DELETE FROM journal WHERE seq = 1");
    phone.restart().unwrap();
    assert_eq!(
        phone.app.journal_verify(),
        Err(Error::JournalBroken { entry: 0 })
    );
}
