//! Spoof-proof text, attack by attack, against the real server over TLS:
//! look-alike provider names are refused at registration (UTS #39
//! skeletons, mixed scripts), Trojan Source reference texts are refused at
//! creation, and a look-alike word in a valid text is flagged on the phone.

use eid_core::{TextDirection, WarningKind};
use eid_e2e_tests::{PIN, PROVIDER_NAME, World};
use eid_protocol::RequestKind;
use eid_protocol::wire::ErrorCode;

use crate::support::{Refusal, refusal};

fn provider_rows(w: &World) -> i64 {
    w.count_rows("service_providers").unwrap()
}

#[tokio::test]
async fn homoglyph_provider_name_is_refused_at_registration() {
    let w = World::start().await.unwrap();
    assert_eq!(PROVIDER_NAME, "Nordisk Bank A/S");
    let before = provider_rows(&w);
    let confusable = [
        // Cyrillic а in a Latin name: mixed script (and confusable).
        ("Nordisk B\u{430}nk A/S", "mixes scripts"),
        // Greek Ν: mixed script.
        ("\u{39D}ordisk Bank A/S", "mixes scripts"),
        // Same letters, other case or spacing: same skeleton.
        (
            "NORDISK BANK A/S",
            "can be confused with the registered name \"Nordisk Bank A/S\"",
        ),
        ("nordisk  bank a/s", "can be confused"),
        // "rn" drawn like "m", "I" like "l": the eID's own name.
        (
            "eID SeIvbetjening",
            "can be confused with the registered name \"eID Selvbetjening\"",
        ),
        // Fullwidth letters normalize to the same skeleton.
        ("\u{FF2E}ordisk Bank A/S", "can be confused"),
    ];
    for (name, why) in confusable {
        let e = w.admin.register_service_provider(name).await.unwrap_err();
        let Refusal {
            code,
            status,
            message,
        } = refusal(&e);
        assert_eq!(code, Some(ErrorCode::InvalidProviderName), "{name:?}");
        assert_eq!(status, 422);
        assert!(message.contains(why), "{name:?}: {message}");
    }
    // A whole-Cyrillic look-alike of a Latin name is single-script but has
    // the same skeleton.
    w.admin.register_service_provider("Coop").await.unwrap();
    let e = w
        .admin
        .register_service_provider("\u{421}\u{43E}\u{43E}\u{440}")
        .await
        .unwrap_err();
    assert_eq!(refusal(&e).code, Some(ErrorCode::InvalidProviderName));
    // Trojan Source and invisible characters in a name.
    for name in [
        "Nordisk\u{200D}Bank",
        "Bank \u{202E}S/A",
        "Nordisk \u{2067}Bank\u{2069}",
    ] {
        let e = w.admin.register_service_provider(name).await.unwrap_err();
        assert_eq!(
            refusal(&e).code,
            Some(ErrorCode::InvalidProviderName),
            "{name:?}"
        );
    }
    // Nothing was stored but Coop.
    assert_eq!(provider_rows(&w), before + 1);
    // Ordinary, clearly different names are accepted, in any one script.
    for name in [
        "Ærø Købmand ApS",
        "Nordisk Forsikring",
        "Сбербанк",
        "בנק הפועלים",
    ] {
        w.admin.register_service_provider(name).await.unwrap();
    }
}

#[tokio::test]
async fn trojan_source_reference_text_is_refused_and_a_homoglyph_word_is_flagged() {
    let w = World::start().await.unwrap();
    let phone = w.activated_phone("anna", "anna#2024x").await.unwrap();
    for text in [
        "Overfør \u{202E}00.001\u{202C} kr",
        "Overfør \u{2067}100 kr\u{2069} til Bank",
        "Log\u{200D}på",
        "Netbank\u{2069}",
    ] {
        let e =
            w.rp.create_request("anna#2024x", RequestKind::Login, text, None)
                .await
                .unwrap_err();
        assert_eq!(
            refusal(&e).code,
            Some(ErrorCode::InvalidReferenceText),
            "{text:?}"
        );
    }
    assert!(phone.app.refresh().await.unwrap().is_empty());

    // Valid but suspicious: a Cyrillic о in "Nordisk"; an RTL line.
    let text = "Log på N\u{43E}rdisk Netbank\nשלום 100 kr";
    w.login("anna#2024x", text).await.unwrap();
    // Ordinary Danish: no warning.
    w.login("anna#2024x", "Overførsel 1.250,00 kr. til Ærø Købmand")
        .await
        .unwrap();
    let views = phone.app.refresh().await.unwrap();
    let spoof = views
        .iter()
        .find(|v| v.reference_text.as_deref() == Some(text))
        .unwrap();
    assert!(
        spoof
            .warnings
            .iter()
            .any(|w| w.kind == WarningKind::MixedScript)
    );
    let dirs: Vec<_> = spoof.reference_lines.iter().map(|l| l.direction).collect();
    assert_eq!(
        dirs,
        vec![TextDirection::LeftToRight, TextDirection::RightToLeft]
    );
    let plain = views
        .iter()
        .find(|v| v.reference_text.as_deref() != Some(text))
        .unwrap();
    assert!(
        plain
            .warnings
            .iter()
            .all(|w| w.kind != WarningKind::MixedScript)
    );
    // The warning does not stop a person who knows what they started.
    let acc = phone.app.authenticators().unwrap()[0].authenticator_id;
    let unlock = phone
        .app
        .unlock(&acc, &spoof.request_id, PIN)
        .await
        .unwrap();
    phone.app.approve(&unlock, true, None).await.unwrap();
}
