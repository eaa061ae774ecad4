//! Service-provider names at registration, through the real admin API over
//! TLS: names close to the eID's own or to a registered provider's are
//! refused with `invalid_provider_name`, and nothing is stored.

mod common;

use common::{Harness, assert_code};
use eid_protocol::wire::ErrorCode;

#[tokio::test]
async fn names_of_the_eid_itself_are_refused_in_every_variation() {
    let h = Harness::start().await;
    for name in [
        "eID Selvbetjening",
        "eID Selvbetjening:",
        "eID-Selvbetjening",
        "eID Selvbetjening Support",
        "EID SELVBETJENING",
        "e1D Selvbetjening",
        "eID Selvbetjening\u{301}",
        "eIDSelvbetjening",
        "eID Support",
        // One letter under 79 strike-through marks: within the length limit.
        &format!("e{}", "\u{336}".repeat(79)),
        &format!("eID Selvbetjening{}", "\u{336}".repeat(20)),
    ] {
        assert_code(
            h.admin.register_service_provider(name).await,
            ErrorCode::InvalidProviderName,
        );
    }
}

#[tokio::test]
async fn names_close_to_a_registered_provider_are_refused() {
    let h = Harness::start().await;
    // The harness registered "Nordisk Bank A/S".
    for name in [
        "Nordisk Bank A/S:",
        "Nordisk-Bank A/S",
        "Nordisk Bank AS",
        "N0rdisk Bank A/S",
        "Nord1sk Bank A/S",
        "Nordisk Bank A/S\u{301}",
        "NordiskBank A/S",
    ] {
        assert_code(
            h.admin.register_service_provider(name).await,
            ErrorCode::InvalidProviderName,
        );
    }
    // Clearly different names still register.
    for name in ["Nordisk Forsikring", "Ærø Købmand ApS", "Eidsvoll Kommune"] {
        h.admin.register_service_provider(name).await.unwrap();
    }
}
