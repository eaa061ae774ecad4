//! `eid`: the eID authenticator on the command line.
//!
//! - `eid demo` runs the whole journey (admin, phone, service provider) against an
//!   embedded server in a temporary folder and prints every step; `eid demo
//!   --web` serves a demo bank whose web login goes through the broker's
//!   OpenID Connect provider, for a real browser;
//! - `eid admin`, `eid rp` and `eid app` are scriptable commands against a
//!   running `eid-server`, each printing one JSON object with `--json`;
//! - `eid self-service` makes the public self-service portal's calls.
//! - `eid serve` runs the reference server in the foreground on a data folder.
//!
//! PINs are read from stdin (`--pin-stdin`) or `EID_PIN`, and the admin
//! token, API keys and binding secrets from a file or the environment: never
//! from argv, which every user of the machine can read with `ps`.
#![forbid(unsafe_code)]

mod admin;
mod app;
mod bank;
mod common;
mod demo;
mod demo_web;
mod error;
mod json;
mod output;
mod phone;
mod rp;
mod self_service;
mod serve;
mod token;
mod when;

use clap::{Parser, Subcommand};

use common::Common;
use error::{CliError, ErrorKind as CliErrorKind};

/// The eID authenticator: demo, admin, service-provider and phone commands.
#[derive(Debug, Parser)]
#[command(name = "eid", version, about)]
struct Cli {
    /// Options shared by every command.
    #[command(flatten)]
    common: Common,
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole journey on an embedded server in a temporary folder.
    Demo(demo::DemoArgs),
    /// Support operations (needs the admin token).
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Service-provider operations (needs the provider's API key).
    #[command(subcommand)]
    Rp(rp::ProviderCommand),
    /// The phone: activation, pending requests, approve, deny, report fraud.
    #[command(subcommand)]
    App(app::AppCommand),
    /// The public self-service portal: change phone, e-mail or user ID
    /// (each step is a self-service login approved in the app).
    #[command(subcommand)]
    SelfService(self_service::SelfServiceCommand),
    /// Play a code device from its PSKC file (scripts and tests).
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Run the reference server in the foreground on a data folder (scripts,
    /// crash tests); prints where it listens. Production: `eid-server`.
    Serve(serve::ServeArgs),
}

fn wants_json() -> bool {
    std::env::args_os().skip(1).any(|a| a == "--json")
}

impl Cli {
    /// The secret flag given on the command line, if any (refused).
    fn secret_in_argv(&self) -> Option<&'static common::SecretSource> {
        match &self.command {
            Command::Rp(rp::ProviderCommand::BindingCode {
                secret_in_argv: Some(_),
                ..
            }) => Some(&common::BINDING_SECRET),
            Command::Admin(admin::AdminCommand::ImportTokens {
                pre_shared_key_in_argv: Some(_),
                ..
            })
            | Command::Token(token::TokenCommand::Code {
                pre_shared_key_in_argv: Some(_),
                ..
            })
            | Command::Token(token::TokenCommand::RequestActivation {
                pre_shared_key_in_argv: Some(_),
                ..
            }) => Some(&common::PSKC_KEY),
            Command::Token(token::TokenCommand::RequestActivation {
                access_code_in_argv: Some(_),
                ..
            }) => Some(&common::ACCESS_CODE),
            _ => self.common.secret_in_argv(),
        }
    }
}

fn main() -> std::process::ExitCode {
    // Everything `eid` creates (the phone's folder, database and keystore,
    // `eid serve`'s data folder) is its owner's alone. Process-wide, so here
    // and not in the libraries, which narrow their own files as well.
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_bits_truncate(0o077));
    if common::old_pin_flag_used(std::env::args_os()) {
        common::renamed_pin_flag().print(wants_json());
        return std::process::ExitCode::from(2);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if wants_json()
                && !matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
            {
                // The lines before the usage block, joined (clap puts the
                // missing arguments on the lines after the first).
                let msg = e.to_string();
                let text: Vec<&str> = msg
                    .lines()
                    .map(str::trim)
                    .take_while(|l| !l.is_empty() && !l.starts_with("Usage:"))
                    .collect();
                let text = text.join(" ");
                let text = text.trim_start_matches("error: ");
                let text = if text.is_empty() {
                    "invalid arguments"
                } else {
                    text
                };
                CliError::new(CliErrorKind::Usage, text).print(true);
                return std::process::ExitCode::from(2);
            }
            e.exit();
        }
    };
    let as_json = cli.common.json;
    if let Some(secret) = cli.secret_in_argv() {
        secret.refused_in_argv().print(as_json);
        return std::process::ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            CliError::new(
                CliErrorKind::Runtime,
                format!("cannot start the async runtime: {e}"),
            )
            .print(as_json);
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Demo(args) => demo::run(&cli.common, &args).await,
            Command::Admin(cmd) => admin::run(&cli.common, cmd).await,
            Command::Rp(cmd) => rp::run(&cli.common, cmd).await,
            Command::App(cmd) => app::run(&cli.common, cmd).await,
            Command::SelfService(cmd) => self_service::run(&cli.common, cmd).await,
            Command::Token(cmd) => token::run(&cli.common, cmd).await,
            Command::Serve(args) => serve::run(&cli.common, &args).await,
        }
    });
    match result {
        Ok(report) => {
            report.print(as_json);
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            e.print(as_json);
            std::process::ExitCode::FAILURE
        }
    }
}
