//! A failed command: one [`ErrorKind`] (scripts, the README and the app shells'
//! tests match on its snake_case name), a message for people, and a few
//! machine-readable details. The core's and the API client's errors become a
//! [`CliError`] here, in one place.

use eid_api_client::ApiFailure;
use eid_protocol::wire::ErrorCode;
use serde::Serialize;
use serde_json::Value;

use crate::output::serde_name;

/// What went wrong, as printed in `{"error": {"kind": ...}}` and in
/// `error (<kind>): ...`. The names are a stable interface: never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ErrorKind {
    // --- the command line and the local setup ---
    /// The arguments do not parse (clap's error, in JSON).
    Usage,
    /// An option the command needs is missing (server, pin, token, key, folder).
    MissingOption,
    /// An argument cannot be used (bad ID, unreadable file, broken text).
    InvalidArgument,
    /// No PIN on stdin or in `EID_PIN`.
    MissingPin,
    /// The server URL, SPKI pin or remembered settings are not valid.
    Config,
    /// A local file or database could not be read or written.
    Storage,
    /// The core failed inside (a poisoned lock, a failed task, serialization):
    /// a bug to report, not something the person can fix.
    Internal,
    /// The platform keystore failed.
    Keystore,
    /// The async runtime could not start.
    Runtime,
    /// Writing to stdout or waiting for Ctrl-C failed.
    Io,
    /// The system clock cannot give the time.
    Clock,
    /// The embedded server could not start.
    Server,

    // --- the PIN ---
    /// Wrong PIN; `attempts_left` and `retry_after_ms` say what is left.
    WrongPin,
    /// Too many wrong PINs recently; `retry_after_ms` says how long to wait.
    LockedOut,
    /// The PIN key is destroyed or the authenticator locked: activate again.
    ReactivationRequired,
    /// The new PIN breaks the PIN policy.
    PinPolicy,

    // --- the phone's requests and decisions ---
    /// The request expired.
    Expired,
    /// No such authenticator on this phone (the CLI's `--authenticator`).
    /// Spelled `unknown_account` in the output: a frozen spelling that
    /// scripts parse (docs/glossary.md).
    #[serde(rename = "unknown_account")]
    UnknownAuthenticator,
    /// No such pending request on this phone.
    UnknownRequest,
    /// The identity is blocked.
    Blocked,
    /// The request's text breaks the rules: only deny or report.
    TextRefused,
    /// The swipe was not confirmed.
    SwipeRequired,
    /// The request needs the code shown where it was started.
    BindingCodeRequired,
    /// A call or screen sharing is on and the person has not confirmed
    /// "I started this myself".
    StartedMyselfRequired,
    /// The PIN unlock is no longer valid.
    UnlockInvalid,
    /// A different decision was already made for the request.
    AlreadyDecided,
    /// No interrupted activation to resume.
    NoPendingActivation,
    /// No device enrolment on this phone.
    NoPendingEnrolment,
    /// The new device was refused, cancelled or expired.
    EnrolmentRefused,
    /// Any other core error (its own text says which).
    Core,

    // --- the server ---
    /// The server could not be reached.
    Network,
    /// The server refused the call; `code` is its stable error code.
    Rejected,
    /// The server answered something the CLI cannot use.
    InvalidResponse,
    /// A server signature did not verify, or signed data did not match.
    InvalidServerSignature,
    /// Any other API client error.
    Api,

    // --- the service provider's checks ---
    /// The server's hash of the reference text is not the text given.
    TextMismatch,
    /// A receipt does not verify, or does not match the status.
    InvalidReceipt,
    /// The demo: the server key served is not the server's.
    InvalidServerKey,
    /// The demo: a request did not end as the journey expects.
    UnexpectedStatus,
}

impl ErrorKind {
    /// Every kind, for the reference table in docs/cli.md (checked by a
    /// test). The match below stops the build when a kind is added without
    /// being listed here.
    #[cfg(test)]
    pub(crate) const ALL: [ErrorKind; 39] = [
        ErrorKind::Usage,
        ErrorKind::MissingOption,
        ErrorKind::InvalidArgument,
        ErrorKind::MissingPin,
        ErrorKind::Config,
        ErrorKind::Storage,
        ErrorKind::Internal,
        ErrorKind::Keystore,
        ErrorKind::Runtime,
        ErrorKind::Io,
        ErrorKind::Clock,
        ErrorKind::Server,
        ErrorKind::WrongPin,
        ErrorKind::LockedOut,
        ErrorKind::ReactivationRequired,
        ErrorKind::PinPolicy,
        ErrorKind::Expired,
        ErrorKind::UnknownAuthenticator,
        ErrorKind::UnknownRequest,
        ErrorKind::Blocked,
        ErrorKind::TextRefused,
        ErrorKind::SwipeRequired,
        ErrorKind::BindingCodeRequired,
        ErrorKind::StartedMyselfRequired,
        ErrorKind::UnlockInvalid,
        ErrorKind::AlreadyDecided,
        ErrorKind::NoPendingActivation,
        ErrorKind::NoPendingEnrolment,
        ErrorKind::EnrolmentRefused,
        ErrorKind::Core,
        ErrorKind::Network,
        ErrorKind::Rejected,
        ErrorKind::InvalidResponse,
        ErrorKind::InvalidServerSignature,
        ErrorKind::Api,
        ErrorKind::TextMismatch,
        ErrorKind::InvalidReceipt,
        ErrorKind::InvalidServerKey,
        ErrorKind::UnexpectedStatus,
    ];

    /// The kind's place in [`ErrorKind::ALL`].
    #[cfg(test)]
    fn index(self) -> usize {
        use ErrorKind as K;
        match self {
            K::Usage => 0,
            K::MissingOption => 1,
            K::InvalidArgument => 2,
            K::MissingPin => 3,
            K::Config => 4,
            K::Storage => 5,
            K::Internal => 6,
            K::Keystore => 7,
            K::Runtime => 8,
            K::Io => 9,
            K::Clock => 10,
            K::Server => 11,
            K::WrongPin => 12,
            K::LockedOut => 13,
            K::ReactivationRequired => 14,
            K::PinPolicy => 15,
            K::Expired => 16,
            K::UnknownAuthenticator => 17,
            K::UnknownRequest => 18,
            K::Blocked => 19,
            K::TextRefused => 20,
            K::SwipeRequired => 21,
            K::BindingCodeRequired => 22,
            K::StartedMyselfRequired => 23,
            K::UnlockInvalid => 24,
            K::AlreadyDecided => 25,
            K::NoPendingActivation => 26,
            K::NoPendingEnrolment => 27,
            K::EnrolmentRefused => 28,
            K::Core => 29,
            K::Network => 30,
            K::Rejected => 31,
            K::InvalidResponse => 32,
            K::InvalidServerSignature => 33,
            K::Api => 34,
            K::TextMismatch => 35,
            K::InvalidReceipt => 36,
            K::InvalidServerKey => 37,
            K::UnexpectedStatus => 38,
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The serde name, so text and JSON can never spell a kind differently.
        f.write_str(&serde_name(self))
    }
}

/// A failed command: the kind, a message for people, and the details that
/// apply. Never holds a PIN, key or token.
///
/// It serializes as the inside of `{"error": {...}}`: fields in alphabetical
/// order (the order the CLI has always printed), details only when set.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CliError {
    /// Wrong PINs left before the PIN key is destroyed.
    #[serde(skip_serializing_if = "Option::is_none")]
    attempts_left: Option<u32>,
    /// The authenticators to pick from, when a command needs one and the
    /// phone holds several.
    #[serde(skip_serializing_if = "Option::is_none")]
    authenticators: Option<Box<[AuthenticatorChoice]>>,
    /// The server's stable error code.
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<ErrorCode>,
    /// What went wrong.
    pub(crate) kind: ErrorKind,
    /// For people.
    pub(crate) message: String,
    /// Milliseconds to wait before the next PIN try.
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after_ms: Option<u64>,
    /// The server's explanation next to its code.
    #[serde(skip_serializing_if = "Option::is_none")]
    server_message: Option<String>,
    /// The HTTP status of a refused or unexpected answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    /// The demo step that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    step: Option<String>,
}

/// One authenticator to pick with `--authenticator`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct AuthenticatorChoice {
    /// Its id, for `--authenticator`.
    pub(crate) authenticator_id: String,
    /// Whose it is.
    pub(crate) user_id: String,
}

/// `{"error": {...}}`.
#[derive(Serialize)]
struct ErrorJson<'a> {
    error: &'a CliError,
}

impl CliError {
    /// An error without details.
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            attempts_left: None,
            authenticators: None,
            code: None,
            kind,
            message: message.into(),
            retry_after_ms: None,
            server_message: None,
            status: None,
            step: None,
        }
    }

    /// A command-line argument that cannot be used.
    pub(crate) fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }

    /// An option the command needs is missing.
    pub(crate) fn missing_option(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::MissingOption, message)
    }

    /// A command on one authenticator, on a phone with several and none
    /// chosen: the list to pick from (kind `unknown_account`, the kind this
    /// case has always had).
    pub(crate) fn pick_an_authenticator(choices: Vec<AuthenticatorChoice>) -> Self {
        let list: Vec<String> = choices
            .iter()
            .map(|c| format!("{} ({})", c.authenticator_id, c.user_id))
            .collect();
        let message = if choices.is_empty() {
            "no authenticator on this phone: activate one first (eid app activate)".to_owned()
        } else {
            format!(
                "this phone holds {} authenticators: pick one with --authenticator: {}",
                choices.len(),
                list.join(", ")
            )
        };
        Self {
            authenticators: Some(choices.into_boxed_slice()),
            ..Self::new(ErrorKind::UnknownAuthenticator, message)
        }
    }

    /// The same error, reported as the failure of a demo step.
    pub(crate) fn at_step(self, step: &str) -> Self {
        Self {
            message: format!("demo failed at step {step:?}: {}", self.message),
            step: Some(step.to_owned()),
            ..self
        }
    }

    /// The JSON form: `{"error": {"kind", "message", ...details}}`.
    pub(crate) fn to_json(&self) -> String {
        serde_json::to_string(&ErrorJson { error: self })
            .expect("an error is strings, numbers and a code enum")
    }

    /// Prints the error: JSON on stdout, or a line on stderr.
    pub(crate) fn print(&self, as_json: bool) {
        if as_json {
            println!("{}", self.to_json());
        } else {
            eprintln!("{}", self.text_line());
        }
    }

    /// `error (<kind>): <message>; <detail>=<value>...`, details in
    /// alphabetical order, skipping what the message already says (e.g. the
    /// server's code).
    fn text_line(&self) -> String {
        let mut line = format!("error ({}): {}", self.kind, self.message);
        if let Ok(Value::Object(fields)) = serde_json::to_value(self) {
            for (k, v) in &fields {
                // A list (the authenticators to pick from) is in the message.
                if k == "kind" || k == "message" || v.is_array() {
                    continue;
                }
                if v.as_str().is_some_and(|s| self.message.contains(s)) {
                    continue;
                }
                line.push_str(&format!("; {k}={v}"));
            }
        }
        line
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.kind)
    }
}

impl std::error::Error for CliError {}

impl From<eid_core::Error> for CliError {
    fn from(e: eid_core::Error) -> Self {
        use ErrorKind as K;
        use eid_core::Error as E;
        // The core's error is non-exhaustive: a variant without its own arm
        // is a `core` error with the core's text.
        match e {
            E::WrongPin {
                attempts_left,
                retry_after_ms,
            } => {
                let wait = if retry_after_ms > 0 {
                    format!(
                        "; wait {} s before the next try",
                        retry_after_ms.div_ceil(1000)
                    )
                } else {
                    String::new()
                };
                CliError {
                    attempts_left: Some(attempts_left),
                    retry_after_ms: Some(retry_after_ms),
                    ..CliError::new(
                        K::WrongPin,
                        format!(
                            "wrong PIN: {attempts_left} attempts left before the PIN key is destroyed{wait}"
                        ),
                    )
                }
            }
            E::LockedOut { retry_after_ms } => CliError {
                retry_after_ms: Some(retry_after_ms),
                ..CliError::new(
                    K::LockedOut,
                    format!(
                        "too many wrong PINs: wait {} s before trying again",
                        retry_after_ms.div_ceil(1000)
                    ),
                )
            },
            E::ReactivationRequired => CliError::new(
                K::ReactivationRequired,
                "this account must be activated again (PIN key destroyed or authenticator locked)",
            ),
            E::PinPolicy(p) => CliError::new(K::PinPolicy, format!("PIN refused: {p}")),
            E::Expired => CliError::new(K::Expired, "the request has expired"),
            E::Network(m) => network(&m),
            E::UnknownAuthenticator => {
                CliError::new(K::UnknownAuthenticator, "no such account on this phone")
            }
            E::UnknownRequest => CliError::new(
                K::UnknownRequest,
                "no such pending request on this phone (decided, expired or never sent here)",
            ),
            E::Blocked => CliError::new(K::Blocked, "the identity is blocked"),
            E::Rejected { code, message } => CliError {
                code: Some(code),
                // The core passes on the server's code and message; the
                // status is the one the server gives that code (the same
                // mapping), so that every `rejected` error has the same
                // three details.
                server_message: Some(message),
                status: Some(eid_server::error::ApiError::new(code, "").status().as_u16()),
                ..CliError::new(
                    K::Rejected,
                    format!("the server refused the call: {}", serde_name(&code)),
                )
            },
            E::InvalidServerSignature => CliError::new(
                K::InvalidServerSignature,
                "a server signature did not verify or signed data did not match",
            ),
            E::InvalidResponse(m) => {
                CliError::new(K::InvalidResponse, format!("invalid server answer: {m}"))
            }
            E::TextRefused(t) => CliError::new(
                K::TextRefused,
                format!(
                    "the request's text breaks the rules ({t}); only deny or report are possible"
                ),
            ),
            E::SwipeRequired => CliError::new(K::SwipeRequired, "the swipe was not confirmed"),
            E::BindingCodeRequired => CliError::new(
                K::BindingCodeRequired,
                "this request needs the code shown where it was started (--binding-code)",
            ),
            E::StartedMyselfRequired => CliError::new(
                K::StartedMyselfRequired,
                "a call, screen sharing or remote control is on: confirm that you started this yourself (--started-it-myself)",
            ),
            E::UnlockInvalid => CliError::new(
                K::UnlockInvalid,
                "the PIN unlock is no longer valid; enter the PIN again",
            ),
            E::AlreadyDecided => CliError::new(
                K::AlreadyDecided,
                "a different decision was already made for this request",
            ),
            E::Config(m) => CliError::new(K::Config, format!("invalid configuration: {m}")),
            E::NoPendingActivation => CliError::new(
                K::NoPendingActivation,
                "no interrupted activation to resume",
            ),
            E::NoPendingEnrolment => CliError::new(
                K::NoPendingEnrolment,
                "no device enrolment on this phone (eid app enrol)",
            ),
            E::EnrolmentRefused => CliError::new(
                K::EnrolmentRefused,
                "the new device was refused, cancelled or expired; its keys are deleted",
            ),
            E::Storage(m) => CliError::new(K::Storage, format!("local database error: {m}")),
            E::Internal(m) => CliError::new(K::Internal, format!("internal error: {m}")),
            E::KeyStore(k) => CliError::new(K::Keystore, format!("keystore error: {k}")),
            other => CliError::new(K::Core, other.to_string()),
        }
    }
}

impl From<ApiFailure> for CliError {
    fn from(e: ApiFailure) -> Self {
        use ErrorKind as K;
        match e {
            ApiFailure::Server { status, body } => CliError {
                code: Some(body.error.code),
                server_message: Some(body.error.message.clone()),
                status: Some(status),
                ..CliError::new(
                    K::Rejected,
                    format!(
                        "the server refused the call: {} ({})",
                        serde_name(&body.error.code),
                        body.error.message
                    ),
                )
            },
            ApiFailure::Unexpected { status, .. } => CliError {
                status: Some(status),
                ..CliError::new(
                    K::InvalidResponse,
                    format!("the server answered something unexpected (HTTP {status})"),
                )
            },
            ApiFailure::Network(e) => {
                // The classes the phone's core names (core/src/client.rs), so
                // that every command says the same of the same failure.
                let class = match find_rustls_error(&e) {
                    Some(rustls::Error::InvalidCertificate(_)) => PIN_MISMATCH,
                    Some(_) => "TLS handshake failed",
                    None if e.is_timeout() => "timeout",
                    None if e.is_connect() => "cannot connect",
                    None if e.is_body() || e.is_decode() => "connection broke while reading",
                    None => "request failed",
                };
                network(class)
            }
            ApiFailure::BadServerSignature => CliError::new(
                K::InvalidServerSignature,
                "the server's signature does not verify",
            ),
            other => CliError::new(K::Api, other.to_string()),
        }
    }
}

/// What the phone's core says of a server whose TLS key is not the pinned
/// one (core/src/client.rs); the admin and rp commands say it too.
const PIN_MISMATCH: &str = "TLS: the server key does not match the pin";

/// A `network` error for one class of failure, with what to do about it: a
/// wrong pin is not fixed by trying again.
fn network(class: &str) -> CliError {
    let hint = if class == PIN_MISMATCH {
        "check the server key pin (--spki-pin or EID_SPKI_PIN, or the one the phone \
         remembered at activation) against the pin the server prints at start"
    } else if class == "cannot connect" {
        "is the server running at that address? Try again later"
    } else {
        "try again later"
    };
    CliError::new(
        ErrorKind::Network,
        format!("the server could not be reached ({class}); {hint}"),
    )
}

/// The TLS error somewhere in an error's sources (also inside an I/O error).
fn find_rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cur: Option<&'a (dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(tls) = find_rustls_error(inner)
        {
            return Some(tls);
        }
        cur = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_kinds_print_their_snake_case_names() {
        assert_eq!(ErrorKind::WrongPin.to_string(), "wrong_pin");
        assert_eq!(ErrorKind::Keystore.to_string(), "keystore");
        assert_eq!(
            ErrorKind::InvalidServerSignature.to_string(),
            "invalid_server_signature"
        );
        assert_eq!(serde_name(&ErrorKind::Io), "io");
    }

    #[test]
    fn a_wrong_pin_prints_its_details_in_alphabetical_order() {
        let e = CliError::from(eid_core::Error::WrongPin {
            attempts_left: 8,
            retry_after_ms: 0,
        });
        assert_eq!(
            e.to_json(),
            r#"{"error":{"attempts_left":8,"kind":"wrong_pin","message":"wrong PIN: 8 attempts left before the PIN key is destroyed","retry_after_ms":0}}"#
        );
        assert_eq!(
            e.text_line(),
            "error (wrong_pin): wrong PIN: 8 attempts left before the PIN key is destroyed; attempts_left=8; retry_after_ms=0"
        );
    }

    #[test]
    fn a_server_code_already_in_the_message_is_not_repeated_in_text() {
        let e = CliError::from(eid_core::Error::Rejected {
            code: ErrorCode::TooEarly,
            message: "the second login may come at 14:05".into(),
        });
        assert_eq!(
            e.text_line(),
            "error (rejected): the server refused the call: too_early; \
             server_message=\"the second login may come at 14:05\"; status=409"
        );
    }

    #[test]
    fn every_rejected_error_has_code_server_message_and_status() {
        let from_core = CliError::from(eid_core::Error::Rejected {
            code: ErrorCode::TooEarly,
            message: "the second login may come at 14:05".into(),
        });
        let json: Value = serde_json::from_str(&from_core.to_json()).unwrap();
        assert_eq!(json["error"]["code"], "too_early");
        assert_eq!(json["error"]["status"], 409);
        assert_eq!(
            json["error"]["server_message"],
            "the second login may come at 14:05"
        );
    }

    /// The `kind` values of docs/cli.md's table of error kinds.
    fn documented_kinds() -> Vec<String> {
        let doc = include_str!("../../docs/cli.md");
        let table = doc
            .split("### Error kinds")
            .nth(1)
            .expect("docs/cli.md has an \"Error kinds\" section");
        table
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .filter_map(|l| {
                let cell = l.trim_start_matches('|').split('|').next()?.trim();
                Some(cell.strip_prefix('`')?.strip_suffix('`')?.to_owned())
            })
            .collect()
    }

    #[test]
    fn the_error_kinds_table_of_the_docs_lists_every_kind_and_no_other() {
        for (i, kind) in ErrorKind::ALL.iter().enumerate() {
            assert_eq!(kind.index(), i, "{kind} is out of place in ErrorKind::ALL");
        }
        let code: Vec<String> = ErrorKind::ALL.iter().map(ToString::to_string).collect();
        let documented = documented_kinds();
        let missing: Vec<&String> = code.iter().filter(|k| !documented.contains(k)).collect();
        let unknown: Vec<&String> = documented.iter().filter(|k| !code.contains(k)).collect();
        assert!(
            missing.is_empty(),
            "kinds missing from docs/cli.md: {missing:?}"
        );
        assert!(
            unknown.is_empty(),
            "docs/cli.md lists kinds the CLI has not: {unknown:?}"
        );
        assert_eq!(documented.len(), code.len(), "a kind is listed twice");
    }

    #[test]
    fn a_failed_demo_step_names_the_step() {
        let e = CliError::new(ErrorKind::Server, "boom").at_step("start_server");
        assert_eq!(
            e.to_json(),
            r#"{"error":{"kind":"server","message":"demo failed at step \"start_server\": boom","step":"start_server"}}"#
        );
    }
}
