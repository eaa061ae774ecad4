//! The household view: one phone holds several people's identities. The first
//! screen lists the people and how many requests wait for each, and nothing
//! else; a request's details are built only for the person chosen
//! ([`crate::App::requests_for`]). So a family member who picks up
//! the phone learns that someone has a request, not what it says.

use std::collections::HashMap;

use eid_protocol::AuthenticatorId;

use crate::display::Language;
use crate::store::AuthenticatorState;
use crate::{App, Result, lock};

/// One person on the phone, as the first screen shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonSummary {
    /// The person's authenticator (pass it to `requests_for`).
    pub authenticator_id: AuthenticatorId,
    /// Their user ID, to tell people apart (their own choice, not a secret).
    pub user_id: String,
    /// The authenticator's state.
    pub state: AuthenticatorState,
    /// Unexpired requests waiting (0 unless active).
    pub pending_requests: u32,
    /// One line for the list, e.g. "2 anmodninger venter".
    pub headline: String,
    /// What to do next when the authenticator can't be used; `None` when active.
    pub next_step: Option<String>,
}

pub(crate) fn summary(
    authenticator_id: AuthenticatorId,
    user_id: &str,
    state: AuthenticatorState,
    pending_requests: u32,
    lang: Language,
) -> PersonSummary {
    let (headline, next_step) = match (state, lang) {
        (AuthenticatorState::Active, Language::Danish) => (
            match pending_requests {
                0 => "Ingen anmodninger".to_owned(),
                1 => "1 anmodning venter".to_owned(),
                n => format!("{n} anmodninger venter"),
            },
            None,
        ),
        (AuthenticatorState::Active, Language::English) => (
            match pending_requests {
                0 => "No requests".to_owned(),
                1 => "1 request waiting".to_owned(),
                n => format!("{n} requests waiting"),
            },
            None,
        ),
        (AuthenticatorState::Blocked, Language::Danish) => (
            "Spærret".to_owned(),
            Some("Dit eID er spærret, og ingen kan bruge det. Kontakt support for at få det ophævet; du skal vise legitimation.".to_owned()),
        ),
        (AuthenticatorState::Blocked, Language::English) => (
            "Blocked".to_owned(),
            Some("Your eID is blocked and nobody can use it. Contact support to lift the block; you will need to show ID.".to_owned()),
        ),
        (_, Language::Danish) => (
            "Skal aktiveres igen".to_owned(),
            Some("Appen kan ikke længere godkende for dig. Aktivér den igen med dit bruger-ID og en ny aktiveringskode.".to_owned()),
        ),
        (_, Language::English) => (
            "Needs activating again".to_owned(),
            Some("The app can no longer approve for you. Activate it again with your user ID and a new activation code.".to_owned()),
        ),
    };
    PersonSummary {
        authenticator_id,
        user_id: user_id.to_owned(),
        state,
        pending_requests: if state == AuthenticatorState::Active {
            pending_requests
        } else {
            0
        },
        headline,
        next_step,
    }
}

impl App {
    /// The people on this phone, in activation order, with how many requests
    /// wait for each and nothing about what they say (no network).
    pub fn household(&self, lang: Language) -> Result<Vec<PersonSummary>> {
        let store = lock(&self.inner.store)?;
        let authenticators = store.authenticators()?;
        let mut waiting: HashMap<AuthenticatorId, u32> = HashMap::new();
        for row in store.pending()? {
            if self.inner.remaining(&row)? > 0 {
                *waiting.entry(row.authenticator_id).or_default() += 1;
            }
        }
        Ok(authenticators
            .iter()
            .map(|a| {
                summary(
                    a.authenticator_id,
                    &a.user_id,
                    a.state,
                    waiting.get(&a.authenticator_id).copied().unwrap_or(0),
                    lang,
                )
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_say_little_and_guide_when_unusable() {
        let id = AuthenticatorId([1; 16]);
        let s = summary(
            id,
            "Grete#1950x",
            AuthenticatorState::Active,
            2,
            Language::English,
        );
        assert_eq!(s.headline, "2 requests waiting");
        assert_eq!(s.next_step, None);
        let s = summary(
            id,
            "Grete#1950x",
            AuthenticatorState::Blocked,
            2,
            Language::Danish,
        );
        assert_eq!(s.pending_requests, 0);
        assert!(s.next_step.unwrap().contains("support"));
        let s = summary(
            id,
            "x",
            AuthenticatorState::NeedsReactivation,
            0,
            Language::English,
        );
        assert!(s.next_step.unwrap().contains("activation code"));
    }
}
