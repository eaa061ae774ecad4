//! Property tests of the text rules (`docs/protocol.md`, text rules): a
//! character that Unicode calls invisible, a format character, unassigned or
//! private use is refused wherever it is put in an otherwise good text, by
//! the server's check and the phone's alike.

use eid_protocol::text::{
    normalize_provider_name, normalize_reference_text, validate_provider_name,
    validate_reference_text,
};
use proptest::prelude::*;

/// Characters the rules refuse by property, with the ones an outside attack
/// used (U+2065, U+13430, U+0600, U+070F, U+110BD, U+2800) drawn often.
fn invisible() -> impl Strategy<Value = char> {
    prop_oneof![
        prop::sample::select(vec![
            '\u{2065}',
            '\u{13430}',
            '\u{600}',
            '\u{70F}',
            '\u{110BD}',
            '\u{2800}',
            '\u{200B}',
            '\u{200D}',
            '\u{2060}',
            '\u{FEFF}',
            '\u{AD}',
            '\u{34F}',
            '\u{180E}',
            '\u{3164}',
            '\u{FFA0}',
            '\u{FE0F}',
            '\u{E0041}',
            '\u{E01EF}',
            '\u{1D173}',
            '\u{FFF9}',
        ]),
        // Whole ranges that are Cf, default-ignorable, unassigned or private use.
        (0xE0000u32..=0xE0FFF).prop_map(|c| char::from_u32(c).unwrap()),
        (0x13430u32..=0x1343F).prop_map(|c| char::from_u32(c).unwrap()),
        (0x0600u32..=0x0605).prop_map(|c| char::from_u32(c).unwrap()),
        (0xF0000u32..=0xFFFFD).prop_map(|c| char::from_u32(c).unwrap()),
        (0xE000u32..=0xF8FF).prop_map(|c| char::from_u32(c).unwrap()),
        (0x2FA20u32..=0x2FFFD).prop_map(|c| char::from_u32(c).unwrap()),
    ]
}

const GOOD: &str = "Overførsel 1.250,00 kr. til Ærø Købmand";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn an_invisible_character_anywhere_is_refused(c in invisible(), at in 0usize..=40) {
        let mut chars: Vec<char> = GOOD.chars().collect();
        let at = at.min(chars.len());
        chars.insert(at, c);
        let t: String = chars.into_iter().collect();
        prop_assert!(normalize_reference_text(&t).is_err(), "server took {:?}", t);
        prop_assert!(validate_reference_text(&t).is_err(), "phone took {:?}", t);
        prop_assert!(normalize_provider_name(&t).is_err());
        prop_assert!(validate_provider_name(&t).is_err());
    }

    /// Whatever the server accepts, the phone accepts unchanged, and the
    /// phone accepts nothing the server would change.
    #[test]
    fn server_and_phone_agree_on_any_text(t in "\\PC{0,12}|[a\u{300}-\u{36F}\n ]{0,12}") {
        if let Ok(n) = normalize_reference_text(&t) {
            prop_assert_eq!(validate_reference_text(&n), Ok(()));
        }
        if validate_reference_text(&t).is_ok() {
            prop_assert_eq!(normalize_reference_text(&t), Ok(t.clone()));
        }
    }
}
