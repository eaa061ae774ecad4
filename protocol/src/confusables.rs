//! Spoof checks on text that has already passed the rules of [`crate::text`]:
//! Unicode confusables (UTS #39 skeletons), mixed scripts (UTS #39 §5) and the
//! direction of a line (for bidi-safe display).
//!
//! Built on the `unicode-security` crate (unicode-rs, the tables rustc's
//! `confusable_idents` and `mixed_script_confusables` lints use).
//!
//! - The server refuses a service provider's name whose [`name_skeletons`]
//!   or [`name_key`] equals a registered provider's (or the built-in
//!   [`crate::SELF_SERVICE_PROVIDER_NAME`]'s), any name that is not
//!   single-script ([`is_mixed_script`]): "Nordisk Bаnk" with a Cyrillic а
//!   is both, and any name that is or contains a name of the eID itself in
//!   any spelling ([`reserved_name_clash`]).
//! - The core warns about reference-text words that mix scripts
//!   ([`mixed_script_words`]); ordinary Danish text (Latin letters with
//!   digits and punctuation, which are script-neutral) is single-script.
//! - [`line_direction`] gives the base direction a line must be displayed
//!   with, so right-to-left letters (allowed) cannot pull neighbouring
//!   digits and punctuation of another line or of the surrounding UI.

use std::sync::LazyLock;

use icu_properties::CodePointMapData;
use icu_properties::props::GeneralCategory;
use unicode_normalization::UnicodeNormalization;
use unicode_security::MixedScript;
use unicode_security::confusable_detection::skeleton;

/// Names of the eID itself that no service provider may use, in any
/// spelling that [`name_key`] folds together, nor as part of a longer name
/// ("eID Selvbetjening Support"): the built-in provider's name, its English
/// form, and the support that the app's own warnings tell people to call.
pub const RESERVED_PROVIDER_NAMES: &[&str] = &[
    crate::SELF_SERVICE_PROVIDER_NAME,
    "eID Self-service",
    "eID Support",
];

/// The first word no provider's name may start with: the eID's own.
const RESERVED_FIRST_WORD: &str = "eID";

/// Whether `c` is a combining mark (General_Category Mn, Mc or Me).
fn is_mark(c: char) -> bool {
    matches!(
        CodePointMapData::<GeneralCategory>::new().get(c),
        GeneralCategory::NonspacingMark
            | GeneralCategory::SpacingMark
            | GeneralCategory::EnclosingMark
    )
}

/// Digits drawn like letters, folded to the letter (after the skeleton,
/// which leaves most digits alone).
fn fold_digit(c: char) -> char {
    match c {
        '0' => 'o',
        '1' => 'l',
        '5' => 's',
        '8' => 'b',
        other => other,
    }
}

/// One word's plain comparison form: lower-cased, look-alike digits as
/// letters, and `i` as `l` (a capital I and a small l are drawn alike in many
/// fonts, and the form ignores case). Marks are already gone.
fn plain_word(word: &str) -> String {
    word.chars()
        .flat_map(char::to_lowercase)
        .map(fold_digit)
        .map(|c| if c == 'i' { 'l' } else { c })
        .filter(|c| c.is_alphanumeric())
        .collect()
}

/// One word's confusable comparison form: its UTS #39 skeleton, case-folded
/// (the skeleton of the word as written, lower-cased, and skeleton again, so
/// a capital Greek Ν and a Latin N meet), without marks, then
/// [`plain_word`].
fn skeleton_word(word: &str) -> String {
    let lowered: String = skeleton(word).flat_map(char::to_lowercase).collect();
    let folded: String = skeleton(&lowered).filter(|c| !is_mark(*c)).collect();
    plain_word(&folded)
}

/// Splits `text` at anything that is not a letter, digit or mark (spaces,
/// punctuation, symbols), drops combining marks (after NFD, so "é" is "e")
/// and folds each word with `fold`; empty words are dropped.
fn split_words(text: &str, fold: fn(&str) -> String) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    for c in text.nfd() {
        if is_mark(c) {
            continue;
        }
        if c.is_alphanumeric() {
            word.push(c);
        } else if !word.is_empty() {
            words.push(fold(&word));
            word.clear();
        }
    }
    if !word.is_empty() {
        words.push(fold(&word));
    }
    words.retain(|w| !w.is_empty());
    words
}

/// The words of `text` in plain comparison form: split at spaces,
/// punctuation and symbols, without combining marks, lower-cased, with
/// look-alike digits as letters and `i` as `l`. "eID-Selvbetjening:",
/// "EID  selvbetjening" and "e1D Selvbetjening\u{301}" all fold to the same
/// words. The text rules use this form on both sides; it leaves out the
/// UTS #39 skeleton, whose table would add about 350 KB to the
/// phone library (a look-alike letter from another script in a reference
/// text is flagged by the mixed-script warning instead).
pub fn fold_words(text: &str) -> Vec<String> {
    split_words(text, plain_word)
}

/// The words of `text` in confusable comparison form: [`fold_words`] on the
/// UTS #39 skeleton of each word, so look-alike letters of other scripts
/// fold too ("еID" with a Cyrillic е). Used for provider names on the server.
pub fn skeleton_words(text: &str) -> Vec<String> {
    split_words(text, skeleton_word)
}

/// The normalised comparison key of a provider's name: its
/// [`skeleton_words`] joined without spaces, so punctuation, spacing, case,
/// combining marks and look-alike letters or digits make no difference.
pub fn name_key(name: &str) -> String {
    skeleton_words(name).concat()
}

/// The reserved name of the eID itself that `name` could pass for, if any
/// (server side, at registration): its [`name_key`] contains a
/// [`RESERVED_PROVIDER_NAMES`] key ("eID Selvbetjening Support",
/// "eID-Selvbetjening:", "еID Selvbetjening" with a Cyrillic е), or its first
/// word folds to "eID" ("eID Hjælp"; a provider whose name really starts
/// with "Eid" must register another form of it).
pub fn reserved_name_clash(name: &str) -> Option<&'static str> {
    static KEYS: LazyLock<ReservedKeys> = LazyLock::new(|| ReservedKeys::of(skeleton_words));
    reserved_clash(name, skeleton_words, &KEYS)
}

/// Whether `name` is reserved for the eID itself, by the plain
/// [`fold_words`] form (phone side, which does without the skeleton table;
/// the server refused the look-alike spellings at registration with
/// [`reserved_name_clash`]).
pub fn is_reserved_provider_name(name: &str) -> bool {
    static KEYS: LazyLock<ReservedKeys> = LazyLock::new(|| ReservedKeys::of(fold_words));
    reserved_clash(name, fold_words, &KEYS).is_some()
}

/// [`RESERVED_PROVIDER_NAMES`] and [`RESERVED_FIRST_WORD`] in one folded
/// form, computed once per process (they are constants; the phone checks
/// every request's provider name).
struct ReservedKeys {
    /// Each reserved name's words joined, in [`RESERVED_PROVIDER_NAMES`] order.
    names: Vec<String>,
    first_word: Option<String>,
}

impl ReservedKeys {
    fn of(words_of: fn(&str) -> Vec<String>) -> Self {
        Self {
            names: RESERVED_PROVIDER_NAMES
                .iter()
                .map(|r| words_of(r).concat())
                .collect(),
            first_word: words_of(RESERVED_FIRST_WORD).into_iter().next(),
        }
    }
}

fn reserved_clash(
    name: &str,
    words_of: fn(&str) -> Vec<String>,
    keys: &ReservedKeys,
) -> Option<&'static str> {
    let words = words_of(name);
    let key = words.concat();
    if let Some((reserved, _)) = RESERVED_PROVIDER_NAMES
        .iter()
        .zip(&keys.names)
        .find(|(_, k)| key.contains(k.as_str()))
    {
        return Some(reserved);
    }
    (words.first() == keys.first_word.as_ref()).then_some(crate::SELF_SERVICE_PROVIDER_NAME)
}

/// The comparison keys of a provider's name: the UTS #39 skeleton of its
/// NFC form as written, and the skeleton of its lower-cased form, each with
/// runs of whitespace folded to one space. Two names are confusable when
/// either key matches ([`names_confusable`]): "Nordisk Bank", "NORDISK BANK",
/// "nordisk  bank", "Nordisk Bаnk" with a Cyrillic а and "Νordisk Bank" with
/// a Greek Ν all collide. Both keys are needed: lower-casing first turns a
/// Greek Ν into ν (whose prototype is v), and case alone is not covered by
/// the skeleton.
pub fn name_skeletons(name: &str) -> [String; 2] {
    let nfc: String = name.nfc().collect();
    let lowered: String = nfc.chars().flat_map(char::to_lowercase).collect();
    [fold_spaces(skeleton(&nfc)), fold_spaces(skeleton(&lowered))]
}

fn fold_spaces(chars: impl Iterator<Item = char>) -> String {
    let mut out = String::new();
    let mut in_space = false;
    for c in chars {
        if c.is_whitespace() {
            in_space = true;
        } else {
            if in_space && !out.is_empty() {
                out.push(' ');
            }
            out.push(c);
            in_space = false;
        }
    }
    out
}

/// Whether two names are confusable: one of their [`name_skeletons`] keys
/// is equal, or their [`name_key`]s are ("Nordisk Bank:", "Nordisk-Bank",
/// "N0rdisk Bank" and "Nordisk Bank" with a stray accent all are).
pub fn names_confusable(a: &str, b: &str) -> bool {
    let (ka, kb) = (name_skeletons(a), name_skeletons(b));
    if ka[0] == kb[0] || ka[1] == kb[1] {
        return true;
    }
    let (na, nb) = (name_key(a), name_key(b));
    !na.is_empty() && na == nb
}

/// Whether `text` mixes scripts (is not single-script by UTS #39's augmented
/// script sets). Common and Inherited characters (digits, punctuation, spaces,
/// combining marks) fit any script; Han with Hiragana/Katakana or Hangul
/// counts as one script (Japanese, Korean).
pub fn is_mixed_script(text: &str) -> bool {
    !text.is_single_script()
}

/// The whitespace-separated words of `text` that mix scripts, in order
/// (for example "Nоrdisk" with a Cyrillic о). A text in one script per word,
/// such as "Betal 100 kr til Москва", has none.
pub fn mixed_script_words(text: &str) -> Vec<&str> {
    text.split_whitespace()
        .filter(|w| is_mixed_script(w))
        .collect()
}

/// The base direction a line of text is displayed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Direction {
    /// Left to right (also the default for a line with no strong letter).
    LeftToRight,
    /// Right to left: the first strong letter is Hebrew, Arabic or another
    /// right-to-left script.
    RightToLeft,
}

/// Whether `c` is a strong right-to-left letter (Bidi_Class R or AL),
/// approximated by the letters of the right-to-left blocks.
pub fn is_rtl_letter(c: char) -> bool {
    let cp = c as u32;
    let rtl_block = matches!(cp,
        0x0590..=0x08FF      // Hebrew, Arabic, Syriac, Thaana, NKo, Samaritan, Mandaic, Arabic ext.
        | 0xFB1D..=0xFDFF    // Hebrew and Arabic presentation forms A
        | 0xFE70..=0xFEFF    // Arabic presentation forms B
        | 0x10800..=0x10FFF  // ancient right-to-left scripts, Hanifi Rohingya, ...
        | 0x1E800..=0x1EFFF  // Mende Kikakui, Adlam, Arabic mathematical
    );
    rtl_block && c.is_alphabetic()
}

/// Whether `c` is a strong left-to-right letter (a letter outside the
/// right-to-left blocks).
fn is_ltr_letter(c: char) -> bool {
    c.is_alphabetic() && !is_rtl_letter(c)
}

/// The base direction of one line by its first strong letter (the Unicode
/// Bidirectional Algorithm's rules P2 and P3); left to right if it has none.
pub fn line_direction(line: &str) -> Direction {
    for c in line.chars() {
        if is_rtl_letter(c) {
            return Direction::RightToLeft;
        }
        if is_ltr_letter(c) {
            return Direction::LeftToRight;
        }
    }
    Direction::LeftToRight
}

/// Whether `text` has any right-to-left letter (and so needs isolating where
/// it is placed inside other text).
pub fn has_rtl(text: &str) -> bool {
    text.chars().any(is_rtl_letter)
}

/// FIRST STRONG ISOLATE: starts a bidi isolate whose direction is that of
/// its first strong letter.
pub const FSI: char = '\u{2068}';
/// POP DIRECTIONAL ISOLATE: ends an isolate.
pub const PDI: char = '\u{2069}';

/// `text` wrapped in FSI … PDI, so that, placed inside other text, neither
/// can reorder the other. Only for text that passed the rules (which refuse
/// bidi controls, so the isolate cannot be closed early from inside).
pub fn isolate(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 6);
    out.push(FSI);
    out.push_str(text);
    out.push(PDI);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::{TextError, normalize_provider_name, normalize_reference_text};

    #[test]
    fn homoglyph_provider_names_share_a_skeleton() {
        let real = "Nordisk Bank";
        for spoof in [
            "Nordisk B\u{430}nk",       // Cyrillic а
            "N\u{43E}rdisk Bank",       // Cyrillic о
            "NORDISK BANK",             // case
            "nordisk  bank",            // double space
            "Nordisk Ba\u{578}k",       // Armenian ո for n
            "\u{39D}ordisk Bank",       // Greek Ν
            "Nordisk Bank",             // identical
            "Nordisk \u{1D401}ank",     // mathematical bold B
            "Nordisk B\u{251}nk",       // Latin alpha
            "N\u{3BF}rdisk B\u{3B1}nk", // Greek ο and α
        ] {
            assert!(
                names_confusable(real, spoof),
                "{spoof:?} ~ {real:?}: {:?} vs {:?}",
                name_skeletons(spoof),
                name_skeletons(real)
            );
        }
        assert!(names_confusable("eID Selvbetjening", "elD Selvbetjening"));
        for other in ["Nordisk Bank A/S", "Nordea", "Danske Bank", "Ærø Købmand"] {
            assert!(!names_confusable(real, other), "{other:?}");
        }
    }

    #[test]
    fn mixed_script_is_detected_and_danish_is_not() {
        assert!(is_mixed_script("Nordisk B\u{430}nk"));
        assert!(is_mixed_script("Paypa\u{406}"));
        for ok in [
            "Nordisk Bank A/S",
            "Ærø Købmand ApS",
            "Overførsel 1.250,00 kr. til Søren Åberg",
            "Москва",
            "שלום",
            "東京タワー",
            "1234 - 5678",
        ] {
            assert!(!is_mixed_script(ok), "{ok:?}");
        }
        assert_eq!(
            mixed_script_words("Log på N\u{43E}rdisk Netbank\nBetal 100 kr til Москва"),
            vec!["N\u{43E}rdisk"]
        );
        assert!(mixed_script_words("Log på Netbank\nOverførsel 1.250,00 kr. til Ærø").is_empty());
    }

    #[test]
    fn direction_is_by_first_strong_letter() {
        assert_eq!(line_direction("Betal 100 kr"), Direction::LeftToRight);
        assert_eq!(line_direction("123 שלום"), Direction::RightToLeft);
        assert_eq!(line_direction("مرحبا Bank"), Direction::RightToLeft);
        assert_eq!(line_direction("100,00 - 5"), Direction::LeftToRight);
        // Arabic-Indic digits are not letters: they do not set the direction.
        assert_eq!(line_direction("\u{661}\u{662} kr"), Direction::LeftToRight);
        assert!(has_rtl("Bank שלום") && !has_rtl("Ærø 12"));
        assert_eq!(isolate("שלום"), "\u{2068}שלום\u{2069}");
    }

    /// Trojan Source (CVE-2021-42574, CVE-2021-42694) cases: every bidi
    /// control and invisible joiner is refused in both texts, so an isolate
    /// we add around a checked text cannot be closed or overridden from inside.
    #[test]
    fn trojan_source_set_is_refused() {
        let bidi = [
            ("RLO", "Betal \u{202E}00.001\u{202C} kr"),
            ("LRO", "Betal \u{202D}100\u{202C} kr"),
            ("RLE", "a\u{202B}b\u{202C}"),
            ("LRE", "a\u{202A}b\u{202C}"),
            ("RLI", "Betal \u{2067}100 kr\u{2069} til Bank"),
            ("LRI", "x\u{2066}y\u{2069}"),
            ("FSI", "x\u{2068}y\u{2069}"),
            ("PDI alone", "Bank\u{2069} 100"),
            ("early PDI", "Nordisk\u{2069}\u{2067}knaB"),
            ("RLM", "100\u{200F}kr"),
            ("LRM", "100\u{200E}kr"),
            ("ALM", "100\u{61C}kr"),
        ];
        for (name, t) in bidi {
            assert!(
                matches!(
                    normalize_reference_text(t),
                    Err(TextError::BidiControl { .. })
                ),
                "{name}"
            );
            assert!(
                matches!(
                    normalize_provider_name(t),
                    Err(TextError::BidiControl { .. })
                ),
                "{name}"
            );
        }
        for (name, t) in [
            ("ZWJ", "Nordisk\u{200D}Bank"),
            ("ZWNJ", "Nord\u{200C}isk"),
            ("ZWSP", "Net\u{200B}bank"),
            ("word joiner", "Net\u{2060}bank"),
            ("BOM", "\u{FEFF}Bank x"),
            ("tag", "Bank\u{E0041}"),
            ("variation selector", "Bank\u{FE0F}"),
            ("soft hyphen", "Ban\u{AD}k"),
        ] {
            assert!(
                matches!(normalize_provider_name(t), Err(TextError::Invisible { .. })),
                "{name}"
            );
        }
        // Homoglyphs pass the character rules but not the spoof checks.
        let homoglyph = normalize_provider_name("Nordisk B\u{430}nk").unwrap();
        assert!(is_mixed_script(&homoglyph));
        assert!(names_confusable(&homoglyph, "Nordisk Bank"));
        // A whole-Cyrillic look-alike is single-script but still confusable.
        let whole = "\u{420}\u{430}\u{443}\u{440}\u{430}\u{43B}";
        assert!(!is_mixed_script(whole));
        assert!(names_confusable("Nordea", "N\u{43E}rdea"));
    }

    #[test]
    fn near_names_are_confusable_without_punctuation_spacing_marks_or_digit_look_alikes() {
        let real = "Nordisk Bank";
        for near in [
            "Nordisk Bank:",
            "Nordisk-Bank",
            "Nordisk.Bank",
            "NordiskBank",
            "Nordisk Bank\u{301}",
            "N\u{336}ordisk Bank",
            "N0rdisk Bank",
            "Nord1sk Bank",
            "Nordisk 8ank",
            "nordisk_bank",
            "Nordisk Bank!",
        ] {
            assert!(names_confusable(real, near), "{near:?}");
            assert!(names_confusable(near, real), "{near:?}");
        }
        assert!(names_confusable("Sparekassen", "5parekassen"));
        for other in ["Nordisk Bank A/S", "Nordisk Forsikring", "Nordea"] {
            assert!(!names_confusable(real, other), "{other:?}");
        }
    }

    #[test]
    fn the_eids_own_names_are_reserved_in_every_variation() {
        for name in [
            "eID Selvbetjening",
            "eID Selvbetjening:",
            "eID-Selvbetjening",
            "eID Selvbetjening Support",
            "EID SELVBETJENING",
            "eid selvbetjening",
            "e1D Selvbetjening",
            "eID Selvbetjening\u{301}",
            "eIDSelvbetjening",
            "e I D Selvbetjening",
            "Support: eID Selvbetjening",
            "eID Support",
            "eID",
            "eID Self-service",
            "eID-support",
        ] {
            assert!(
                crate::confusables::is_reserved_provider_name(name),
                "{name:?}"
            );
        }
        for name in [
            "Nordisk Bank A/S",
            "Eidsvoll Kommune",
            "Selvbetjening ApS",
            "Ærø Købmand",
        ] {
            assert!(
                !crate::confusables::is_reserved_provider_name(name),
                "{name:?}"
            );
        }
    }
}
