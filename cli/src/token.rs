//! `eid token`: the CLI playing a code device, for scripts and tests. It
//! reads the device's seed from the manufacturer's PSKC file (decrypted with
//! the pre-shared key from a file or the environment, never the command
//! line) and prints the code the device would show.

use std::path::PathBuf;

use clap::Subcommand;
use eid_server::code_devices::{pskc, totp};

use crate::common::{SecretInArgv, forget_secret, read_pskc_key};
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
}

/// Runs a token command.
pub(crate) fn run(cmd: TokenCommand) -> Result<Report, CliError> {
    let TokenCommand::Code {
        serial,
        pskc: file,
        at_ms,
        pre_shared_key_file,
        ..
    } = cmd;
    let key = read_pskc_key(pre_shared_key_file.as_deref())?;
    let text = std::fs::read_to_string(&file)
        .map_err(|e| CliError::invalid_argument(format!("cannot read {}: {e}", file.display())))?;
    let batch = pskc::parse_batch(&text, &key)
        .map_err(|e| CliError::invalid_argument(format!("the PSKC file is refused: {e}")))?;
    let device = batch
        .devices
        .iter()
        .find(|d| d.serial == serial)
        .ok_or_else(|| CliError::invalid_argument(format!("no device {serial} in the file")))?;
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
