//! Output of one invocation: a JSON object or readable lines on stdout, and
//! errors with a stable `kind` string.

use eid_api_client::ApiFailure;
use eid_core::{Action, Language, RequestView, WarningKind};
use serde_json::{Map, Value, json};

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

/// A failed command: a stable `kind`, a message for people, and details
/// (for example `attempts_left`). Never holds a PIN, key or token.
#[derive(Debug, Clone)]
pub(crate) struct CliError {
    /// Stable, snake_case.
    pub(crate) kind: &'static str,
    /// For people.
    pub(crate) message: String,
    /// Extra machine-readable fields.
    pub(crate) details: Map<String, Value>,
}

impl CliError {
    /// An error without details.
    pub(crate) fn new(kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            details: Map::new(),
        }
    }

    /// Adds a detail field.
    pub(crate) fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    /// A command-line argument that cannot be used.
    pub(crate) fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new("invalid_argument", message)
    }

    /// The JSON form: `{"error": {"kind", "message", ...details}}`.
    pub(crate) fn to_json(&self) -> Value {
        let mut error = Map::new();
        error.insert("kind".into(), self.kind.into());
        error.insert("message".into(), self.message.clone().into());
        for (k, v) in &self.details {
            error.insert(k.clone(), v.clone());
        }
        json!({ "error": error })
    }

    /// Prints the error: JSON on stdout, or a line on stderr.
    pub(crate) fn print(&self, as_json: bool) {
        if as_json {
            println!("{}", self.to_json());
        } else {
            let mut line = format!("error ({}): {}", self.kind, self.message);
            for (k, v) in &self.details {
                // Skip what the message already says (e.g. the server's code).
                if v.as_str().is_some_and(|s| self.message.contains(s)) {
                    continue;
                }
                line.push_str(&format!("; {k}={v}"));
            }
            eprintln!("{line}");
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.kind)
    }
}

impl std::error::Error for CliError {}

/// The snake_case name serde gives a value (enum codes, states, kinds).
pub(crate) fn serde_name<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "unknown".into(),
    }
}

impl From<eid_core::Error> for CliError {
    fn from(e: eid_core::Error) -> Self {
        use eid_core::Error as E;
        match e {
            E::WrongPin {
                attempts_left,
                retry_after_ms,
            } => CliError::new(
                "wrong_pin",
                format!(
                    "wrong PIN: {attempts_left} attempts left before the PIN key is destroyed{}",
                    if retry_after_ms > 0 {
                        format!(
                            "; wait {} s before the next try",
                            retry_after_ms.div_ceil(1000)
                        )
                    } else {
                        String::new()
                    }
                ),
            )
            .with("attempts_left", attempts_left)
            .with("retry_after_ms", retry_after_ms),
            E::LockedOut { retry_after_ms } => CliError::new(
                "locked_out",
                format!(
                    "too many wrong PINs: wait {} s before trying again",
                    retry_after_ms.div_ceil(1000)
                ),
            )
            .with("retry_after_ms", retry_after_ms),
            E::ReactivationRequired => CliError::new(
                "reactivation_required",
                "this account must be activated again (PIN key destroyed or authenticator locked)",
            ),
            E::PinPolicy(p) => CliError::new("pin_policy", format!("PIN refused: {p}")),
            E::Expired => CliError::new("expired", "the request has expired"),
            E::Network(m) => CliError::new(
                "network",
                format!("the server could not be reached ({m}); try again later"),
            ),
            E::UnknownAccount => CliError::new("unknown_account", "no such account on this phone"),
            E::UnknownRequest => CliError::new(
                "unknown_request",
                "no such pending request on this phone (decided, expired or never sent here)",
            ),
            E::Blocked => CliError::new("blocked", "the identity is blocked"),
            E::Rejected { code } => CliError::new(
                "rejected",
                format!("the server refused the call: {}", serde_name(&code)),
            )
            .with("code", serde_name(&code)),
            E::InvalidServerSignature => CliError::new(
                "invalid_server_signature",
                "a server signature did not verify or signed data did not match",
            ),
            E::InvalidResponse(m) => {
                CliError::new("invalid_response", format!("invalid server answer: {m}"))
            }
            E::TextRefused(t) => CliError::new(
                "text_refused",
                format!(
                    "the request's text breaks the rules ({t}); only deny or report are possible"
                ),
            ),
            E::SwipeRequired => CliError::new("swipe_required", "the swipe was not confirmed"),
            E::BindingCodeRequired => CliError::new(
                "binding_code_required",
                "this request needs the code shown where it was started (--binding-code)",
            ),
            E::UnlockInvalid => CliError::new(
                "unlock_invalid",
                "the PIN unlock is no longer valid; enter the PIN again",
            ),
            E::AlreadyDecided => CliError::new(
                "already_decided",
                "a different decision was already made for this request",
            ),
            E::Config(m) => CliError::new("config", format!("invalid configuration: {m}")),
            E::NoPendingActivation => CliError::new(
                "no_pending_activation",
                "no interrupted activation to resume",
            ),
            E::NoPendingEnrolment => CliError::new(
                "no_pending_enrolment",
                "no device enrolment on this phone (eid app enrol)",
            ),
            E::EnrolmentRefused => CliError::new(
                "enrolment_refused",
                "the new device was refused, cancelled or expired; its keys are deleted",
            ),
            E::Storage(m) | E::Internal(m) => {
                CliError::new("storage", format!("local database error: {m}"))
            }
            E::KeyStore(k) => CliError::new("keystore", format!("keystore error: {k}")),
            other => CliError::new("core", other.to_string()),
        }
    }
}

impl From<ApiFailure> for CliError {
    fn from(e: ApiFailure) -> Self {
        match e {
            ApiFailure::Server { status, body } => CliError::new(
                "rejected",
                format!(
                    "the server refused the call: {} ({})",
                    serde_name(&body.error.code),
                    body.error.message
                ),
            )
            .with("code", serde_name(&body.error.code))
            .with("server_message", body.error.message.clone())
            .with("status", status),
            ApiFailure::Unexpected { status, .. } => CliError::new(
                "invalid_response",
                format!("the server answered something unexpected (HTTP {status})"),
            )
            .with("status", status),
            ApiFailure::Network(e) => {
                let class = if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connection failed (is the server running, and is the SPKI pin right?)"
                } else {
                    "request failed"
                };
                CliError::new(
                    "network",
                    format!("the server could not be reached: {class}"),
                )
            }
            ApiFailure::BadServerSignature => CliError::new(
                "invalid_server_signature",
                "the server's signature does not verify",
            ),
            other => CliError::new("api", other.to_string()),
        }
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
