//! Output of one successful invocation: one JSON object (a shape from
//! `json.rs`) or readable lines on stdout. Failures print from `error.rs`.

use eid_core::{Language, RequestView};
use eid_protocol::RequestKind;
use serde::Serialize;
use serde_json::Value;

/// What a command produced: the machine-readable object and the readable lines.
#[derive(Debug)]
pub(crate) struct Report {
    /// Printed with `--json`: the serialized shape.
    json: String,
    /// Printed otherwise, one line each.
    lines: Vec<String>,
}

impl Report {
    /// A report from its JSON shape and readable lines.
    pub(crate) fn new(json: &impl Serialize, lines: Vec<String>) -> Self {
        Self {
            json: serde_json::to_string(json)
                .expect("the JSON shapes are structs of strings, numbers, booleans and lists"),
            lines,
        }
    }

    /// Prints the report in the chosen format.
    pub(crate) fn print(&self, as_json: bool) {
        if as_json {
            println!("{}", self.json);
        } else {
            for line in &self.lines {
                println!("{line}");
            }
        }
    }
}

/// The snake_case name serde gives a value (enum codes, states, kinds), for
/// the readable lines and messages.
pub(crate) fn serde_name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "unknown".into(),
    }
}

/// A display model as readable lines (a text rendering of the app's screen).
pub(crate) fn view_lines(v: &RequestView, indent: &str) -> Vec<String> {
    let (l_provider, l_kind, l_text, l_time, l_authenticator, l_hidden) = match v.language {
        Language::English => (
            "Provider",
            "Kind",
            "Text",
            "Time left",
            "Account",
            "(hidden)",
        ),
        _ => (
            "Tjeneste",
            "Type",
            "Tekst",
            "Tid tilbage",
            "Konto",
            "(skjult)",
        ),
    };
    let kind = kind_name(v.kind, v.language);
    let secs = v.time_left_ms / 1000;
    let mut out = vec![
        format!("{indent}┌ {}", v.title),
        format!(
            "{indent}│ {l_provider}: {}",
            v.provider_name.as_deref().unwrap_or(l_hidden)
        ),
        format!("{indent}│ {l_kind}: {kind}"),
    ];
    // A text of several lines stays inside the frame: every line behind the
    // bar, the later ones under the first (the core split it into lines and
    // took the line breaks out).
    let text_lines: Vec<&str> = if v.reference_text.is_none() {
        vec![l_hidden]
    } else if v.reference_lines.is_empty() {
        vec![""]
    } else {
        v.reference_lines.iter().map(|l| l.text.as_str()).collect()
    };
    let pad = " ".repeat(l_text.chars().count() + 2);
    for (i, line) in text_lines.iter().enumerate() {
        if i == 0 {
            out.push(format!("{indent}│ {l_text}: {line}").trim_end().to_owned());
        } else {
            out.push(format!("{indent}│ {pad}{line}").trim_end().to_owned());
        }
    }
    out.extend([
        format!("{indent}│ {l_time}: {}:{:02}", secs / 60, secs % 60),
        format!("{indent}│ {l_authenticator}: {}", v.user_id),
    ]);
    for w in &v.warnings {
        out.push(format!("{indent}│ ⚠ {}", w.text));
    }
    let actions: Vec<String> = v
        .actions
        .iter()
        .map(|a| format!("[{}]", a.label(v.language)))
        .collect();
    out.push(format!("{indent}└ {}", actions.join(" ")));
    out.push(format!("{indent}  request {}", v.request_id));
    out
}

/// The kind of a request in the screen's language: a new device or a
/// self-service login is never shown as a plain login.
fn kind_name(kind: RequestKind, language: Language) -> &'static str {
    let english = language == Language::English;
    match kind {
        RequestKind::Login if english => "login",
        RequestKind::Login => "log på",
        RequestKind::Signature if english => "signature",
        RequestKind::Signature => "underskrift",
        RequestKind::SelfService if english => "self-service login",
        RequestKind::SelfService => "log på selvbetjening",
        RequestKind::NewDevice if english => "new device (enrolment)",
        RequestKind::NewDevice => "ny enhed (tilmelding)",
        RequestKind::CodeDevice if english => "code device (activation)",
        RequestKind::CodeDevice => "kodeviser (aktivering)",
        // A kind added to the protocol later prints as "other" until it is
        // named here: never as a login.
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_kind_has_its_own_name_in_both_languages() {
        let kinds = [
            RequestKind::Login,
            RequestKind::Signature,
            RequestKind::SelfService,
            RequestKind::NewDevice,
            RequestKind::CodeDevice,
        ];
        for language in [Language::English, Language::Danish] {
            let names: Vec<&str> = kinds.iter().map(|k| kind_name(*k, language)).collect();
            let mut unique = names.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), kinds.len(), "{names:?}");
        }
        assert_eq!(
            kind_name(RequestKind::NewDevice, Language::English),
            "new device (enrolment)"
        );
    }
}
