//! `eid token`: the CLI playing a code device, for scripts and tests. It
//! reads the device's seed from the manufacturer's PSKC file (decrypted with
//! the pre-shared key from a file or the environment, never the command
//! line) and prints the code the device would show, or sends two
//! consecutive codes to ask the person's app to approve activating it.

use std::path::PathBuf;

use clap::Subcommand;
use eid_server::code_devices::{pskc, totp};

use crate::common::{ACCESS_CODE, Common, SecretInArgv, forget_secret, read_pskc_key};
use crate::error::CliError;
use crate::json;
use crate::output::Report;

/// A code device played from its PSKC file.
#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Print the device's current code (or the code at `--at-ms`).
    Code {
        /// The device's serial number.
        #[arg(long)]
        serial: String,
        /// The manufacturer's PSKC file holding the device.
        #[arg(long)]
        pskc: PathBuf,
        /// The moment (Unix milliseconds); default now.
        #[arg(long)]
        at_ms: Option<u64>,
        /// Refused: see `SecretSource::refused_in_argv`.
        #[arg(
            long = "pre-shared-key",
            hide = true,
            num_args = 0..=1,
            default_missing_value = "",
            value_parser = forget_secret
        )]
        pre_shared_key_in_argv: Option<SecretInArgv>,
        /// File holding the pre-shared key (32 hex digits). Or the key
        /// itself in EID_PSKC_KEY (never on the command line).
        #[arg(long, env = "EID_PSKC_KEY_FILE")]
        pre_shared_key_file: Option<PathBuf>,
    },
    /// Ask the person to approve, in the app, activating the device on
    /// their identity (two consecutive codes from the PSKC file are sent;
    /// this waits for the device's next code).
    RequestActivation {
        /// The person's user ID.
        #[arg(long)]
        user_id: String,
        /// The device's serial number.
        #[arg(long)]
        serial: String,
        /// The manufacturer's PSKC file holding the device.
        #[arg(long)]
        pskc: PathBuf,
        /// Refused: see `SecretSource::refused_in_argv`.
        #[arg(
            long = "pre-shared-key",
            hide = true,
            num_args = 0..=1,
            default_missing_value = "",
            value_parser = forget_secret
        )]
        pre_shared_key_in_argv: Option<SecretInArgv>,
        /// File holding the pre-shared key (32 hex digits). Or the key
        /// itself in EID_PSKC_KEY (never on the command line).
        #[arg(long, env = "EID_PSKC_KEY_FILE")]
        pre_shared_key_file: Option<PathBuf>,
        /// Refused: see `SecretSource::refused_in_argv`.
        #[arg(
            long = "access-code",
            hide = true,
            num_args = 0..=1,
            default_missing_value = "",
            value_parser = forget_secret
        )]
        access_code_in_argv: Option<SecretInArgv>,
        /// File holding the access code the person chooses. Or the code
        /// itself in EID_ACCESS_CODE (never on the command line).
        #[arg(long, env = "EID_ACCESS_CODE_FILE")]
        access_code_file: Option<PathBuf>,
    },
}

/// The device `serial` of the PSKC file `file`, opened with the key from
/// `key_file` (else `EID_PSKC_KEY`).
fn device_of(
    file: &std::path::Path,
    key_file: Option<&std::path::Path>,
    serial: &str,
) -> Result<pskc::BatchDevice, CliError> {
    let key = read_pskc_key(key_file)?;
    let text = std::fs::read_to_string(file)
        .map_err(|e| CliError::invalid_argument(format!("cannot read {}: {e}", file.display())))?;
    let batch = pskc::parse_batch(&text, &key)
        .map_err(|e| CliError::invalid_argument(format!("the PSKC file is refused: {e}")))?;
    batch
        .devices
        .into_iter()
        .find(|d| d.serial == serial)
        .ok_or_else(|| CliError::invalid_argument(format!("no device {serial} in the file")))
}

/// Runs a token command.
pub(crate) async fn run(common: &Common, cmd: TokenCommand) -> Result<Report, CliError> {
    let (serial, file, at_ms, pre_shared_key_file) = match cmd {
        TokenCommand::Code {
            serial,
            pskc,
            at_ms,
            pre_shared_key_file,
            ..
        } => (serial, pskc, at_ms, pre_shared_key_file),
        TokenCommand::RequestActivation {
            user_id,
            serial,
            pskc,
            pre_shared_key_file,
            access_code_file,
            ..
        } => {
            let device = device_of(&pskc, pre_shared_key_file.as_deref(), &serial)?;
            let access_code = ACCESS_CODE.read(access_code_file.as_deref())?;
            let endpoint = common.endpoint()?;
            // Two consecutive codes: the next step's, once it has begun, and
            // the one before it (which a login may have used already).
            let step_ms = device.params.step_secs * 1000;
            let now = crate::when::now_ms();
            let next = (now / step_ms + 1) * step_ms;
            tokio::time::sleep(std::time::Duration::from_millis(next - now + 200)).await;
            let step = totp::step_at(crate::when::now_ms() / 1000, device.params.step_secs);
            let requested = eid_api_client::SelfServiceClient::new(endpoint)
                .request_code_device_activation(&eid_protocol::wire::RequestCodeDeviceActivation {
                    user_id,
                    serial,
                    first_code: totp::code_for_step(device.params, &device.seed, step - 1),
                    second_code: totp::code_for_step(device.params, &device.seed, step),
                    access_code: access_code.to_string(),
                })
                .await?;
            return Ok(Report::new(
                &json::CodeDeviceActivationRequested {
                    request_id: requested.request_id.to_string(),
                    expires_at_ms: requested.expires_at_ms,
                },
                vec![format!(
                    "request {} waits for the approval in the app",
                    requested.request_id
                )],
            ));
        }
    };
    let device = device_of(&file, pre_shared_key_file.as_deref(), &serial)?;
    let at_ms = match at_ms {
        Some(ms) => ms,
        None => crate::when::now_ms(),
    };
    let step = totp::step_at(at_ms / 1000, device.params.step_secs);
    let code = totp::code_for_step(device.params, &device.seed, step);
    let next_code_at_ms = step
        .saturating_add(1)
        .saturating_mul(device.params.step_secs * 1000);
    Ok(Report::new(
        &json::TokenCode {
            at_ms,
            code: code.clone(),
            next_code_at_ms,
            serial,
            step,
        },
        vec![format!("code: {code}")],
    ))
}
