//! Output of one successful invocation: one JSON object (a shape from
//! `json.rs`) or readable lines on stdout. Failures print from `error.rs`.

use eid_core::{Language, RequestView};
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
    let kind = match (v.kind, v.language) {
        (eid_protocol::RequestKind::Signature, Language::English) => "signature",
        (eid_protocol::RequestKind::Signature, _) => "underskrift",
        (_, Language::English) => "login",
        (_, _) => "log på",
    };
    let secs = v.time_left_ms / 1000;
    let mut out = vec![
        format!("{indent}┌ {}", v.title),
        format!(
            "{indent}│ {l_provider}: {}",
            v.provider_name.as_deref().unwrap_or(l_hidden)
        ),
        format!("{indent}│ {l_kind}: {kind}"),
        format!(
            "{indent}│ {l_text}: {}",
            v.reference_text.as_deref().unwrap_or(l_hidden)
        ),
        format!("{indent}│ {l_time}: {}:{:02}", secs / 60, secs % 60),
        format!("{indent}│ {l_authenticator}: {}", v.user_id),
    ];
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
