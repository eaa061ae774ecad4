//! Output of one successful invocation: one JSON object or readable lines on
//! stdout. Failures print from `error.rs`.

use eid_core::{Action, Language, RequestView, WarningKind};
use serde_json::{Value, json};

/// What a command produced: the machine-readable object and the readable lines.
#[derive(Debug)]
pub(crate) struct Report {
    /// Printed with `--json`.
    pub(crate) json: Value,
    /// Printed otherwise, one line each.
    pub(crate) lines: Vec<String>,
}

impl Report {
    /// A report from its JSON object and readable lines.
    pub(crate) fn new(json: Value, lines: Vec<String>) -> Self {
        Self { json, lines }
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

/// The snake_case name serde gives a value (enum codes, states, kinds).
pub(crate) fn serde_name<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "unknown".into(),
    }
}

/// The stable name of a warning kind.
pub(crate) fn warning_kind_name(kind: WarningKind) -> &'static str {
    match kind {
        WarningKind::OnlyApproveWhatYouStarted => "only_approve_what_you_started",
        WarningKind::TextRefused => "text_refused",
        WarningKind::ProviderNameRefused => "provider_name_refused",
        WarningKind::BindingCodeRequired => "binding_code_required",
        _ => "other",
    }
}

/// The stable name of an action.
pub(crate) fn action_name(action: Action) -> &'static str {
    match action {
        Action::Approve => "approve",
        Action::Deny => "deny",
        Action::ReportFraud => "report_fraud",
        _ => "other",
    }
}

fn language_code(lang: Language) -> &'static str {
    match lang {
        Language::English => "en",
        _ => "da",
    }
}

/// A display model as JSON.
pub(crate) fn view_json(v: &RequestView) -> Value {
    json!({
        "request_id": v.request_id.to_string(),
        "authenticator_id": v.authenticator_id.to_string(),
        "user_id": v.user_id,
        "kind": serde_name(&v.kind),
        "title": v.title,
        "provider_name": v.provider_name,
        "reference_text": v.reference_text,
        "time_left_ms": v.time_left_ms,
        "warnings": v.warnings.iter().map(|w| json!({
            "kind": warning_kind_name(w.kind),
            "text": w.text,
        })).collect::<Vec<_>>(),
        "actions": v.actions.iter().map(|a| json!({
            "action": action_name(*a),
            "label": a.label(v.language),
        })).collect::<Vec<_>>(),
        "language": language_code(v.language),
    })
}

/// A display model as readable lines (a text rendering of the app's screen).
pub(crate) fn view_lines(v: &RequestView, indent: &str) -> Vec<String> {
    let (l_provider, l_kind, l_text, l_time, l_account, l_hidden) = match v.language {
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
        format!("{indent}│ {l_account}: {}", v.user_id),
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
