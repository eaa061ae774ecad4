//! `eid rp`: a service provider's calls (create a request, read its status
//! with the signed receipt, cancel) and the rotating binding code of a
//! request's secret.

use std::path::{Path, PathBuf};

use clap::{Subcommand, ValueEnum};
use eid_api_client::{ProviderClient, verify_receipt};
use eid_protocol::binding::{BindingSecret, ROTATING_STEP_MS};
use eid_protocol::wire::{BindingMode, RequestStatus, RequestStatusResponse};
use eid_protocol::{PublicKey, RequestId, RequestKind};

use crate::common::{
    BINDING_SECRET, Common, SecretInArgv, forget_secret, parse_id, reference_text_sha256,
};
use crate::error::{CliError, ErrorKind};
use crate::json::{self, ProviderReceipt};
use crate::output::{Report, serde_name};
use crate::when;

/// Login or signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Kind {
    /// Log in.
    Login,
    /// Sign.
    Signature,
}

impl From<Kind> for RequestKind {
    fn from(k: Kind) -> Self {
        match k {
            Kind::Login => RequestKind::Login,
            Kind::Signature => RequestKind::Signature,
        }
    }
}

/// Channel binding the server creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Binding {
    /// A short code to type, fixed for the request.
    Code,
    /// A QR code that changes every second.
    Qr,
}

impl From<Binding> for BindingMode {
    fn from(b: Binding) -> Self {
        match b {
            Binding::Code => BindingMode::Code,
            Binding::Qr => BindingMode::Qr,
        }
    }
}

/// The code and QR payload at `at_ms` of the secret in `secret_file` (else
/// `EID_BINDING_SECRET`).
fn binding_code_report(secret_file: Option<&Path>, at_ms: Option<u64>) -> Result<Report, CliError> {
    let secret = BINDING_SECRET.read(secret_file)?;
    let secret =
        BindingSecret::from_hex(&secret).map_err(|e| CliError::invalid_argument(e.to_string()))?;
    let at_ms = match at_ms {
        Some(ms) => ms,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| CliError::new(ErrorKind::Clock, "the system clock is before 1970"))?
            .as_millis()
            .try_into()
            .map_err(|_| CliError::new(ErrorKind::Clock, "the system clock is out of range"))?,
    };
    let code = secret.code_at(at_ms);
    let payload = secret.qr_payload_at(at_ms);
    let valid_until_ms = (at_ms / ROTATING_STEP_MS)
        .saturating_add(1)
        .saturating_mul(ROTATING_STEP_MS);
    Ok(Report::new(
        &json::BindingCode {
            at_ms,
            code: code.clone(),
            next_code_at_ms: valid_until_ms,
            qr_payload: payload.clone(),
        },
        vec![format!("code: {code}"), format!("QR payload: {payload}")],
    ))
}

/// Service-provider operations (need the provider's API key).
#[derive(Debug, Subcommand)]
pub(crate) enum ProviderCommand {
    /// Ask a person to log in or sign.
    Request {
        /// The person's user ID.
        #[arg(long)]
        user_id: String,
        /// Login or signature.
        #[arg(long, value_enum, default_value = "login")]
        kind: Kind,
        /// The reference text the person reads before approving.
        #[arg(long)]
        text: String,
        /// A code shown on your screen that the person must enter in the app.
        #[arg(long, conflicts_with = "binding")]
        binding_code: Option<String>,
        /// Let the server create the channel binding: `code` (a short code to
        /// type, printed) or `qr` (a secret, printed, for a QR code that
        /// changes every second; see `eid rp binding-code`).
        #[arg(long, value_enum)]
        binding: Option<Binding>,
    },
    /// The rotating binding code (and QR payload) of a `--binding qr`
    /// request's secret at a moment: what the login screen shows. Offline.
    BindingCode {
        /// Refused: see `SecretSource::refused_in_argv`.
        #[arg(
            long = "secret",
            hide = true,
            num_args = 0..=1,
            default_missing_value = "",
            value_parser = forget_secret
        )]
        secret_in_argv: Option<SecretInArgv>,
        /// File holding the request's binding secret (64 hex digits). Or the
        /// secret itself in EID_BINDING_SECRET (never on the command line).
        #[arg(long, env = "EID_BINDING_SECRET_FILE")]
        secret_file: Option<PathBuf>,
        /// The moment (Unix milliseconds); default now.
        #[arg(long)]
        at_ms: Option<u64>,
    },
    /// Read a request's status; verifies the signed receipt when there is one.
    Status {
        /// The request.
        #[arg(long)]
        request: String,
        /// Long-poll up to this many seconds while the request is pending.
        #[arg(long, default_value_t = 0)]
        wait: u64,
        /// The reference text you sent (checked against the receipt's hash).
        #[arg(long)]
        text: Option<String>,
    },
    /// Cancel a pending request.
    Cancel {
        /// The request.
        #[arg(long)]
        request: String,
    },
}

/// Verifies the receipt of a status (if any) against the server key and the
/// reference-text hash, and that its outcome matches the status. `None`
/// without a receipt.
pub(crate) fn check_receipt(
    server_key: Option<&PublicKey>,
    status: &RequestStatusResponse,
    text_sha256: Option<&[u8; 32]>,
) -> Result<Option<ProviderReceipt>, CliError> {
    if let Some(expected) = text_sha256
        && expected != &status.reference_text_sha256
    {
        return Err(CliError::new(
            ErrorKind::TextMismatch,
            "the server's hash of the reference text is not the hash of the text you gave",
        ));
    }
    let Some(receipt) = &status.receipt else {
        return Ok(None);
    };
    let Some(server_key) = server_key else {
        return Err(CliError::new(
            ErrorKind::InvalidReceipt,
            "a receipt is present but no server key to verify it with",
        ));
    };
    let sha = text_sha256.unwrap_or(&status.reference_text_sha256);
    verify_receipt(server_key, receipt, status.request_id, sha).map_err(|_| {
        CliError::new(
            ErrorKind::InvalidReceipt,
            "the receipt's signature does not verify against the server key, or it is for another request or text",
        )
    })?;
    if RequestStatus::from_outcome(receipt.receipt.outcome) != status.status {
        return Err(CliError::new(
            ErrorKind::InvalidReceipt,
            "the receipt's outcome does not match the request's status",
        ));
    }
    Ok(Some(ProviderReceipt::from(receipt)))
}

fn status_report(
    status: &RequestStatusResponse,
    receipt: Option<ProviderReceipt>,
    text_checked: bool,
) -> Report {
    let mut lines = vec![
        format!("request: {}", status.request_id),
        format!("status:  {}", serde_name(&status.status)),
    ];
    match &receipt {
        Some(r) => lines.push(format!(
            "receipt: present, signature VERIFIED against the server key (outcome {}, authenticator {})",
            serde_name(&r.outcome),
            r.authenticator_id,
        )),
        None => lines.push("receipt: none yet".into()),
    }
    lines.push(format!("call:    {}", serde_name(&status.call_verdict)));
    lines.push(if text_checked {
        "text:    the server's hash is the hash of the text you sent".into()
    } else {
        "text:    not checked (give --text with the text you sent to check it)".into()
    });
    Report::new(&json::Status::new(status, receipt, text_checked), lines)
}

/// Runs a service-provider command.
pub(crate) async fn run(common: &Common, cmd: ProviderCommand) -> Result<Report, CliError> {
    if let ProviderCommand::BindingCode {
        secret_file, at_ms, ..
    } = &cmd
    {
        return binding_code_report(secret_file.as_deref(), *at_ms);
    }
    let endpoint = common.endpoint()?;
    let key = common.api_key()?;
    let rp = ProviderClient::new(endpoint, &key);
    match cmd {
        ProviderCommand::Request {
            user_id,
            kind,
            text,
            binding_code,
            binding,
        } => {
            let created = match binding {
                Some(b) => {
                    rp.create_bound_request(&user_id, kind.into(), &text, b.into())
                        .await?
                }
                None => {
                    rp.create_request(&user_id, kind.into(), &text, binding_code.as_deref())
                        .await?
                }
            };
            let mut lines = vec![
                format!("request created: {}", created.request_id),
                format!(
                    "expires at {}",
                    when::moment(created.expires_at_ms, created.created_at_ms)
                ),
            ];
            if let Some(code) = &created.binding_code {
                lines.push(format!("code to show on your screen: {code}"));
            }
            if created.binding_secret.is_some() {
                lines.push(
                    "binding secret (for `eid rp binding-code --secret-file`) in the JSON output"
                        .into(),
                );
            }
            Ok(Report::new(
                &json::RequestCreated {
                    binding_code: created.binding_code.clone(),
                    binding_secret: created.binding_secret.as_ref().map(BindingSecret::to_hex),
                    created_at_ms: created.created_at_ms,
                    expires_at_ms: created.expires_at_ms,
                    request_id: created.request_id.to_string(),
                },
                lines,
            ))
        }
        ProviderCommand::Status {
            request,
            wait,
            text,
        } => {
            let id: RequestId = parse_id("request ID", &request)?;
            let sha = text.as_deref().map(reference_text_sha256).transpose()?;
            let status = rp.status(id, wait).await?;
            let server_key = match status.receipt {
                Some(_) => Some(rp.server_key().await?),
                None => None,
            };
            let receipt = check_receipt(server_key.as_ref(), &status, sha.as_ref())?;
            Ok(status_report(&status, receipt, sha.is_some()))
        }
        ProviderCommand::BindingCode {
            secret_file, at_ms, ..
        } => binding_code_report(secret_file.as_deref(), at_ms),
        ProviderCommand::Cancel { request } => {
            let id: RequestId = parse_id("request ID", &request)?;
            let status = rp.cancel(id).await?;
            Ok(status_report(&status, None, false))
        }
    }
}
