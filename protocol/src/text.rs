//! Rules for text shown to a person before they approve: the reference text and
//! the service provider's name.
//!
//! Reference text is untrusted input (docs/architecture.md §4.5). The server normalizes it to
//! NFC and refuses what could hide or reorder what the person reads; the core
//! re-checks the exact signed bytes with [`validate_reference_text`] and never
//! shows a text that fails. Both run the same code, so the phone's check is the
//! server's.
//!
//! Characters are judged by their Unicode properties (the `icu_properties`
//! tables, which the phone library already carries for URL handling), not by
//! a hand list: bidi controls (Bidi_Control), controls and line or paragraph
//! separators, invisible characters (Default_Ignorable_Code_Point, every
//! format character of General_Category Cf, and the Braille blank U+2800,
//! which is a symbol that draws nothing), private use (Co), surrogates (Cs),
//! noncharacters and unassigned code points (Cn). A letter may carry at most
//! [`MAX_COMBINING_MARKS`] nonspacing or enclosing marks.
//!
//! A reference text must also not pass for the app's own screen
//! (`docs/threat-model.md`): no blank lines, no line that starts or ends with
//! whitespace, no line that starts with one of the app's own headings,
//! warnings or labels ([`APP_LINE_STARTS`], [`APP_LABELS`]), and no mention of
//! a reserved name of the eID itself
//! ([`crate::confusables::RESERVED_PROVIDER_NAMES`]).

use icu_properties::props::{
    BidiControl, DefaultIgnorableCodePoint, GeneralCategory, NoncharacterCodePoint,
};
use std::sync::LazyLock;

use icu_properties::{CodePointMapData, CodePointSetData};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::is_nfc;

use crate::confusables::{RESERVED_PROVIDER_NAMES, fold_words};

/// Most Unicode scalar values a reference text may have.
pub const MAX_REFERENCE_TEXT_CHARS: usize = 400;
/// Most lines a reference text may have (lines are separated by `\n`).
pub const MAX_REFERENCE_TEXT_LINES: usize = 10;
/// Most Unicode scalar values a service provider's name may have.
pub const MAX_PROVIDER_NAME_CHARS: usize = 80;
/// Most nonspacing or enclosing marks (General_Category Mn, Me) one
/// character may carry, after NFC.
///
/// Four admits real text: NFC composes Danish æøå and almost all
/// Vietnamese letters to single characters (the rest keep one or two
/// marks); Arabic uses up to three (shadda, a vowel and a small high
/// letter); pointed Hebrew up to four (dagesh, vowel, shin dot or
/// cantillation, meteg); Thai, Devanagari and Tibetan stacks use two or
/// three. Five or more is "Zalgo" text, which draws over neighbouring lines
/// and can hide or fake what is written there.
pub const MAX_COMBINING_MARKS: usize = 4;

/// Lines of a reference text may not start with these words: the app's
/// own headings, warnings and instructions (`core/src/display.rs`), in
/// Danish and English. Compared by [`fold_words`] word by word, so case,
/// punctuation, spacing, accents, I/l and look-alike digits make no
/// difference (letters of another script are left to the mixed-script
/// warning, see [`crate::confusables::fold_words`]); a line only has to start with the same words, so "Godkend
/// overførsel" passes and "Godkend ikke dette" does not.
pub const APP_LINE_STARTS: &[&str] = &[
    "ADVARSEL",
    "WARNING",
    "Pas på",
    "Careful",
    "Godkend ikke",
    "Godkend kun",
    "Do not approve",
    "Don't approve",
    "Only approve",
    "Approve only",
    "Teksten vises ikke",
    "The text is not shown",
    "Tjenestens navn",
    "The service's name",
    "Det var ikke mig",
    "This wasn't me",
    "Indtast koden",
    "Enter the code",
    "Log på hos",
    "Log in at",
    "Underskriv hos",
    "Sign at",
    "Log på selvbetjening",
    "Log in to self-service",
    "Dette er et login til selvbetjening",
    "This is a login to self-service",
    "eID",
];

/// A reference text line may not begin with one of these labels followed by
/// a colon ("Afsender: eID Selvbetjening"): the words the app uses, or could
/// use, to say who is asking. Other labels ("Beløb: 100 kr") are fine.
pub const APP_LABELS: &[&str] = &[
    "Afsender",
    "Sender",
    "Fra",
    "From",
    "Tjeneste",
    "Service",
    "Tjenesteudbyder",
    "Service provider",
    "Udbyder",
    "Provider",
    "Bruger-ID",
    "User ID",
    "Advarsel",
    "Warning",
];

/// Why a text was refused. Each variant names the first offending character's
/// position (in Unicode scalar values) or line (counted from 1) where there
/// is one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TextError {
    /// The text is empty or only whitespace.
    #[error("the text is empty")]
    Empty,
    /// The name is the eID's own (or the kind is one only the eID may ask for).
    #[error("this name and kind of request are reserved for the eID itself")]
    Reserved,
    /// The text is longer than allowed.
    #[error("the text has {chars} characters; at most {max} are allowed")]
    TooLong {
        /// Characters in the text.
        chars: usize,
        /// The limit.
        max: usize,
    },
    /// The text has more lines than allowed.
    #[error("the text has {lines} lines; at most {max} are allowed")]
    TooManyLines {
        /// Lines in the text.
        lines: usize,
        /// The limit.
        max: usize,
    },
    /// A control character (other than a line feed where lines are allowed),
    /// or a line or paragraph separator.
    #[error("control character U+{code:04X} at position {position}")]
    ControlCharacter {
        /// Code point.
        code: u32,
        /// Position in characters.
        position: usize,
    },
    /// A bidirectional override, embedding, isolate or mark, which can reorder
    /// what is displayed (Trojan Source).
    #[error("bidirectional control character U+{code:04X} at position {position}")]
    BidiControl {
        /// Code point.
        code: u32,
        /// Position in characters.
        position: usize,
    },
    /// An invisible character (default-ignorable, a format character, or a
    /// blank symbol) that can hide or disguise text.
    #[error("invisible character U+{code:04X} at position {position}")]
    Invisible {
        /// Code point.
        code: u32,
        /// Position in characters.
        position: usize,
    },
    /// A private-use, surrogate or noncharacter code point.
    #[error("private-use or noncharacter U+{code:04X} at position {position}")]
    PrivateUse {
        /// Code point.
        code: u32,
        /// Position in characters.
        position: usize,
    },
    /// A code point Unicode has not assigned: nobody can know how a phone
    /// will draw it.
    #[error("unassigned code point U+{code:04X} at position {position}")]
    Unassigned {
        /// Code point.
        code: u32,
        /// Position in characters.
        position: usize,
    },
    /// More than [`MAX_COMBINING_MARKS`] combining marks on one character,
    /// or a combining mark with no character under it (at the start of the
    /// text or of a line).
    #[error("too many combining marks at position {position}")]
    CombiningMarks {
        /// Position in characters of the mark that broke the rule.
        position: usize,
    },
    /// The text is not in Unicode Normalization Form C (only the core reports
    /// this: the server normalizes before signing).
    #[error("the text is not in Unicode normalization form C")]
    NotNormalized,
    /// Leading or trailing whitespace of the text or of one of its lines,
    /// which can push content off screen or indent it to look like a
    /// separate block.
    #[error("the text or one of its lines starts or ends with whitespace")]
    SurroundingWhitespace,
    /// An empty line, which would split the text into blocks that can look
    /// like parts of the app's own screen.
    #[error("line {line} is empty")]
    BlankLine {
        /// Line number, from 1.
        line: usize,
    },
    /// A line that starts with the app's own heading, warning or label
    /// words, or names the eID itself: it could pass for the app's words.
    #[error("line {line} could pass for the app's own words")]
    ImitatesApp {
        /// Line number, from 1.
        line: usize,
    },
}

/// The refusal a code point earns by its properties, if any.
fn classify(c: char, allow_newline: bool) -> Option<fn(u32, usize) -> TextError> {
    // Before the format characters: the bidi controls are Cf too, and have
    // their own, more telling, error.
    if CodePointSetData::new::<BidiControl>().contains(c) {
        return Some(|code, position| TextError::BidiControl { code, position });
    }
    if c == '\n' && allow_newline {
        return None;
    }
    let category = CodePointMapData::<GeneralCategory>::new().get(c);
    if matches!(
        category,
        GeneralCategory::Control
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
    ) {
        return Some(|code, position| TextError::ControlCharacter { code, position });
    }
    // Default_Ignorable_Code_Point covers the joiners, fillers, variation
    // selectors and tags, assigned or not; Cf adds the visible-by-design
    // format characters (prepended concatenation marks such as U+0600, the
    // Egyptian hieroglyph controls) that a font may still draw as nothing.
    if CodePointSetData::new::<DefaultIgnorableCodePoint>().contains(c)
        || category == GeneralCategory::Format
        || c == BRAILLE_PATTERN_BLANK
    {
        return Some(|code, position| TextError::Invisible { code, position });
    }
    if matches!(
        category,
        GeneralCategory::PrivateUse | GeneralCategory::Surrogate
    ) || CodePointSetData::new::<NoncharacterCodePoint>().contains(c)
    {
        return Some(|code, position| TextError::PrivateUse { code, position });
    }
    if category == GeneralCategory::Unassigned {
        return Some(|code, position| TextError::Unassigned { code, position });
    }
    None
}

/// U+2800 BRAILLE PATTERN BLANK: a symbol (So), not whitespace and not
/// default-ignorable, yet it draws nothing; used to fake empty lines and
/// padding.
const BRAILLE_PATTERN_BLANK: char = '\u{2800}';

/// Whether `c` is a mark that stacks on the character before it.
fn is_stacking_mark(c: char) -> bool {
    matches!(
        CodePointMapData::<GeneralCategory>::new().get(c),
        GeneralCategory::NonspacingMark | GeneralCategory::EnclosingMark
    )
}

/// Which text the rules are checking.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    ReferenceText,
    ProviderName,
    /// The reason support gives for an admin action: the provider-name rules
    /// (one line), but longer.
    SupportReason,
}

fn check(text: &str, kind: Kind) -> Result<(), TextError> {
    let (max_chars, max_lines) = match kind {
        Kind::ReferenceText => (MAX_REFERENCE_TEXT_CHARS, Some(MAX_REFERENCE_TEXT_LINES)),
        Kind::ProviderName => (MAX_PROVIDER_NAME_CHARS, None),
        Kind::SupportReason => (MAX_SUPPORT_REASON_CHARS, None),
    };
    if text.trim().is_empty() {
        return Err(TextError::Empty);
    }
    if text.trim() != text {
        return Err(TextError::SurroundingWhitespace);
    }
    let chars = text.chars().count();
    if chars > max_chars {
        return Err(TextError::TooLong {
            chars,
            max: max_chars,
        });
    }
    // Marks since the last character they can stack on; `None` at the
    // start of the text or a line, where a mark has nothing under it.
    let mut marks: Option<usize> = None;
    for (position, c) in text.chars().enumerate() {
        if let Some(make) = classify(c, max_lines.is_some()) {
            return Err(make(c as u32, position));
        }
        marks = match (is_stacking_mark(c), marks) {
            (true, Some(n)) if n < MAX_COMBINING_MARKS => Some(n + 1),
            (true, _) => return Err(TextError::CombiningMarks { position }),
            (false, _) if c == '\n' => None,
            (false, _) => Some(0),
        };
    }
    if let Some(max) = max_lines {
        let lines = text.split('\n').count();
        if lines > max {
            return Err(TextError::TooManyLines { lines, max });
        }
    }
    if !is_nfc(text) {
        return Err(TextError::NotNormalized);
    }
    if kind == Kind::ReferenceText {
        check_lines(text)?;
    }
    Ok(())
}

/// [`APP_LINE_STARTS`], [`APP_LABELS`] and [`RESERVED_PROVIDER_NAMES`] in
/// [`fold_words`] form, which [`check_lines`] compares each line with.
struct AppWords {
    starts: Vec<Vec<String>>,
    labels: Vec<Vec<String>>,
    /// Each reserved name's words joined.
    reserved: Vec<String>,
}

/// Folded once per process: the lists are constants, and folding them for
/// every checked text was most of a phone's display-model work (about
/// 16 µs of the 20 µs per request).
static APP_WORDS: LazyLock<AppWords> = LazyLock::new(|| AppWords {
    starts: APP_LINE_STARTS.iter().map(|s| fold_words(s)).collect(),
    labels: APP_LABELS.iter().map(|s| fold_words(s)).collect(),
    reserved: RESERVED_PROVIDER_NAMES
        .iter()
        .map(|s| fold_words(s).concat())
        .collect(),
});

/// The rules that keep a reference text from passing for the app's screen.
fn check_lines(text: &str) -> Result<(), TextError> {
    let AppWords {
        starts,
        labels,
        reserved,
    } = &*APP_WORDS;
    for (index, line) in text.split('\n').enumerate() {
        let number = index + 1;
        if line.trim().is_empty() {
            return Err(TextError::BlankLine { line: number });
        }
        if line.trim() != line {
            return Err(TextError::SurroundingWhitespace);
        }
        let words = fold_words(line);
        let label = line
            .split_once(':')
            .map(|(before, _)| fold_words(before))
            .is_some_and(|before| labels.contains(&before));
        let joined = words.concat();
        if label
            || starts.iter().any(|s| words.starts_with(s))
            || reserved.iter().any(|r| joined.contains(r.as_str()))
        {
            return Err(TextError::ImitatesApp { line: number });
        }
    }
    Ok(())
}

/// Normalizes a reference text to NFC and checks it (server side, before signing).
pub fn normalize_reference_text(text: &str) -> Result<String, TextError> {
    let normalized: String = text.nfc().collect();
    check(&normalized, Kind::ReferenceText)?;
    Ok(normalized)
}

/// Checks the exact bytes of a received reference text (core side): it must
/// already be NFC and pass every rule.
pub fn validate_reference_text(text: &str) -> Result<(), TextError> {
    check(text, Kind::ReferenceText)
}

/// Normalizes and checks a service provider's name (one line).
pub fn normalize_provider_name(name: &str) -> Result<String, TextError> {
    let normalized: String = name.nfc().collect();
    check(&normalized, Kind::ProviderName)?;
    Ok(normalized)
}

/// Most characters in the reason support gives for an admin action.
pub const MAX_SUPPORT_REASON_CHARS: usize = 500;

/// Normalizes and checks the reason support gives for an admin action (a
/// block or unblock): the provider-name rules (one line, printable, no
/// invisible or bidirectional controls), up to [`MAX_SUPPORT_REASON_CHARS`].
pub fn normalize_support_reason(reason: &str) -> Result<String, TextError> {
    let normalized: String = reason.nfc().collect();
    check(&normalized, Kind::SupportReason)?;
    Ok(normalized)
}

/// Checks a received service provider's name (core side).
pub fn validate_provider_name(name: &str) -> Result<(), TextError> {
    check(name, Kind::ProviderName)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_danish_text() {
        let t = "Log på Netbank\nOverførsel 1.250,00 kr. til Ærø Købmand";
        assert_eq!(normalize_reference_text(t).as_deref(), Ok(t));
        assert_eq!(validate_reference_text(t), Ok(()));
    }

    #[test]
    fn normalizes_to_nfc_and_core_requires_nfc() {
        let decomposed = "Cafe\u{301}";
        assert_eq!(
            normalize_reference_text(decomposed).as_deref(),
            Ok("Caf\u{e9}")
        );
        assert_eq!(
            validate_reference_text(decomposed),
            Err(TextError::NotNormalized)
        );
    }

    #[test]
    fn refuses_trojan_source_and_invisibles() {
        assert!(matches!(
            normalize_reference_text("Pay \u{202E}00.001\u{202C} kr"),
            Err(TextError::BidiControl {
                code: 0x202E,
                position: 4
            })
        ));
        assert!(matches!(
            normalize_reference_text("a\u{2066}b"),
            Err(TextError::BidiControl { code: 0x2066, .. })
        ));
        assert!(matches!(
            normalize_reference_text("Net\u{200B}bank"),
            Err(TextError::Invisible { code: 0x200B, .. })
        ));
        assert!(matches!(
            normalize_reference_text("x\u{E0041}"),
            Err(TextError::Invisible { .. })
        ));
        assert!(matches!(
            normalize_reference_text("x\u{E000}"),
            Err(TextError::PrivateUse { .. })
        ));
        assert!(matches!(
            normalize_reference_text("a\u{7}b"),
            Err(TextError::ControlCharacter { code: 7, .. })
        ));
        assert!(matches!(
            normalize_reference_text("a\rb"),
            Err(TextError::ControlCharacter { code: 13, .. })
        ));
    }

    #[test]
    fn length_lines_and_whitespace() {
        assert_eq!(normalize_reference_text("   "), Err(TextError::Empty));
        assert_eq!(
            normalize_reference_text(" x"),
            Err(TextError::SurroundingWhitespace)
        );
        let long = "x".repeat(MAX_REFERENCE_TEXT_CHARS + 1);
        assert!(matches!(
            normalize_reference_text(&long),
            Err(TextError::TooLong { .. })
        ));
        let lines = ["a"; MAX_REFERENCE_TEXT_LINES + 1].join("\n");
        assert!(matches!(
            normalize_reference_text(&lines),
            Err(TextError::TooManyLines { .. })
        ));
        assert!(matches!(
            normalize_provider_name("Bank\nEvil"),
            Err(TextError::ControlCharacter { code: 10, .. })
        ));
    }

    /// The characters an outside attack got through: format characters
    /// (Cf), default-ignorables, an unassigned one and the Braille blank.
    const ATTACK_CHARACTERS: [char; 6] = [
        '\u{2065}',  // unassigned, Default_Ignorable_Code_Point
        '\u{13430}', // EGYPTIAN HIEROGLYPH VERTICAL JOINER (Cf)
        '\u{600}',   // ARABIC NUMBER SIGN (Cf, prepended concatenation mark)
        '\u{70F}',   // SYRIAC ABBREVIATION MARK (Cf)
        '\u{110BD}', // KAITHI NUMBER SIGN (Cf)
        '\u{2800}',  // BRAILLE PATTERN BLANK (So, but shows nothing)
    ];

    /// More characters of the same properties, found by property rather
    /// than by the earlier hand list.
    const MORE_INVISIBLES: [char; 10] = [
        '\u{180E}',  // MONGOLIAN VOWEL SEPARATOR (Cf)
        '\u{FFF9}',  // INTERLINEAR ANNOTATION ANCHOR (Cf)
        '\u{E0001}', // LANGUAGE TAG (Cf)
        '\u{E01F0}', // unassigned, Default_Ignorable_Code_Point
        '\u{1D173}', // MUSICAL SYMBOL BEGIN BEAM (Cf)
        '\u{3164}',  // HANGUL FILLER (Lo, but default-ignorable)
        '\u{FFA0}',  // HALFWIDTH HANGUL FILLER (Lo, default-ignorable)
        '\u{8E2}',   // ARABIC DISPUTED END OF AYAH (Cf)
        '\u{2064}',  // INVISIBLE PLUS (Cf)
        '\u{FFF0}',  // unassigned, Default_Ignorable_Code_Point
    ];

    fn at_start_middle_and_end(c: char) -> [String; 3] {
        [
            format!("{c}Log på Netbank"),
            format!("Log på{c} Netbank"),
            format!("Log på Netbank{c}"),
        ]
    }

    #[test]
    fn invisible_and_format_characters_are_refused_at_start_middle_and_end() {
        for c in ATTACK_CHARACTERS.into_iter().chain(MORE_INVISIBLES) {
            for t in at_start_middle_and_end(c) {
                let code = c as u32;
                assert!(
                    normalize_reference_text(&t).is_err(),
                    "server accepted U+{code:04X} in {t:?}"
                );
                assert!(
                    validate_reference_text(&t).is_err(),
                    "phone accepted U+{code:04X} in {t:?}"
                );
                assert!(
                    normalize_provider_name(&t).is_err(),
                    "name with U+{code:04X} accepted"
                );
                assert!(
                    validate_provider_name(&t).is_err(),
                    "phone accepted a name with U+{code:04X}"
                );
            }
        }
    }

    #[test]
    fn unassigned_private_use_and_noncharacters_are_refused() {
        for c in [
            '\u{378}',
            '\u{E000}',
            '\u{F0000}',
            '\u{10FFFD}',
            '\u{FDD0}',
            '\u{FFFE}',
            '\u{10FFFF}',
        ] {
            for t in at_start_middle_and_end(c) {
                assert!(normalize_reference_text(&t).is_err(), "{t:?}");
                assert!(validate_reference_text(&t).is_err(), "{t:?}");
            }
        }
    }

    #[test]
    fn a_flood_of_combining_marks_is_refused_on_both_sides() {
        // Six marks on one letter; NFC composes the first (à) and leaves
        // five: one more than allowed.
        let five = "Log pa\u{300}\u{301}\u{302}\u{303}\u{304}\u{305} Netbank";
        assert_eq!(
            normalize_reference_text(five),
            Err(TextError::CombiningMarks { position: 10 })
        );
        // Hundreds of strike-through marks on one letter.
        let flood = format!("Log pa{} Netbank", "\u{336}".repeat(300));
        assert!(matches!(
            normalize_reference_text(&flood),
            Err(TextError::CombiningMarks { .. })
        ));
        assert!(validate_reference_text(&flood).is_err());
        let at_end = "Netbank\u{301}\u{302}\u{303}\u{304}\u{305}\u{306}";
        assert!(normalize_reference_text(at_end).is_err(), "{at_end:?}");
        // A mark with no letter under it, at the start of the text or a line.
        assert_eq!(
            normalize_reference_text("\u{301}Netbank"),
            Err(TextError::CombiningMarks { position: 0 })
        );
        assert!(normalize_reference_text("Log på\n\u{301}Netbank").is_err());
        // One letter and 79 strike-through marks fit the name's length limit.
        let struck = format!("N{}", "\u{336}".repeat(79));
        assert!(normalize_provider_name(&struck).is_err());
        assert!(validate_provider_name(&struck).is_err());
    }

    #[test]
    fn real_language_texts_are_still_accepted() {
        for t in [
            "Overførsel 1.250,00 kr. til Ærø Købmand\nSøren Åberg, Næstved",
            "Chuyển khoản 1.000.000 đồng cho Nguyễn Thị Hường",
            "Thanh toán hoá đơn điện tháng 12",
            "تحويل 100 كرونة إلى مُحَمَّد",
            "بِسْمِ اللَّهِ",
            "העברה ליִצְחָק כֹּהֵן",
            "שָׁלוֹם",
            "Tak 👍🏽 🇩🇰",
            "Betaling til 東京タワー",
            "Перевод 100 крон",
            "नमस्ते क्षत्रिय",
            "ภาษาไทย ที่นี่",
        ] {
            assert_eq!(normalize_reference_text(t).as_deref(), Ok(t), "{t:?}");
            assert_eq!(validate_reference_text(t), Ok(()), "{t:?}");
        }
        // Decomposed Vietnamese (two marks on one letter) is composed.
        let decomposed = "Vie\u{323}\u{302}t Nam";
        assert_eq!(
            normalize_reference_text(decomposed).as_deref(),
            Ok("Vi\u{1EC7}t Nam")
        );
        // Four marks on one letter, as in pointed Hebrew with a cantillation
        // mark and a meteg: the most real text needs.
        let four = "\u{5D1}\u{5BC}\u{5B8}\u{591}\u{5BD}";
        assert!(normalize_reference_text(four).is_ok(), "{four:?}");
        // Emoji joined by ZWJ and with a variation selector stay refused:
        // both are invisible characters that change what is drawn.
        assert!(normalize_reference_text("Familie 👨\u{200D}👩\u{200D}👧").is_err());
        assert!(normalize_reference_text("Tak \u{2764}\u{FE0F}").is_err());
    }

    /// A text must not be able to pass for the app's own screen: blank lines
    /// that split it into blocks, lines that start like the app's warnings,
    /// headings and labels, and the eID's own name.
    #[test]
    fn a_text_that_imitates_the_app_screen_is_refused() {
        for t in [
            "Godkend ikke dette\n\nAfsender: eID Selvbetjening",
            "Log på Netbank\n\nOK",
            "Log på Netbank\n \nOK",
            "Log på Netbank\nAfsender: Nordisk Bank",
            "Log på Netbank\nAFSENDER : Nordisk Bank",
            "Log på Netbank\nSender: Nordisk Bank",
            "Log på Netbank\nADVARSEL: ring til support",
            "WARNING: call support",
            "Pas på: din konto er spærret",
            "Godkend kun, hvis du vil beholde dit eID",
            "Only approve if you want to keep your eID",
            "Log på hos eID Selvbetjening",
            "Log på Netbank\nFra eID-Selvbetjening",
            "Log på Netbank\n  Godkend for at fortsætte",
            "Log på Netbank \nOK",
            "Teksten vises ikke, fordi den er for lang",
            "Det var ikke mig",
            "Indtast koden 1234",
        ] {
            assert!(
                matches!(
                    normalize_reference_text(t),
                    Err(TextError::BlankLine { .. }
                        | TextError::ImitatesApp { .. }
                        | TextError::SurroundingWhitespace)
                ),
                "server took {t:?}"
            );
            assert!(validate_reference_text(t).is_err(), "phone took {t:?}");
        }
        // Ordinary texts with the same words elsewhere still pass, and so do
        // the eID's own texts.
        for t in [
            "Log på Netbank",
            "Godkend overførsel af 100 kr\nFra konto 1234-567890",
            "Beløb: 1.250,00 kr\nModtager: Ærø Købmand",
            "Tilføj ny enhed til dit eID, bestilt 2026-12-01 11:30 UTC. Godkend kun, hvis du selv står med den nye telefon.\nAdd a new device to your eID, requested 2026-12-01 11:30 UTC. Approve only if you are holding the new phone yourself.",
            "Skift bruger-ID til Grete#1950x",
            "Skift telefonnummer til +45 •• •• •• 78 (trin 1 af 2)",
        ] {
            assert_eq!(normalize_reference_text(t).as_deref(), Ok(t), "{t:?}");
        }
    }
}
