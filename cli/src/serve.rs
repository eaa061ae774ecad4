//! `eid serve`: the reference server in the foreground on a data folder, for
//! scripts and the crash harness (cli/tests/cli/crash.rs), which needs a server it
//! can kill with SIGKILL and restart on the same folder. The production server
//! is the `eid-server` binary (configuration file); this one takes four flags
//! and, of the environment, only `EID_SERVER_PROFILE`,
//! `EID_SERVER_DATABASE_URL` and `EID_SERVER_DATABASE_POOL_SIZE` (the flags'
//! variables).
//! Both log the same way to stderr (`EID_LOG`, see `eid_server::init_logging`).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use crate::common::Common;
use crate::error::{CliError, ErrorKind};
use crate::json;
use crate::output::Report;

/// Options of `eid serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The server's data folder (database, keys, certificate, admin token file).
    #[arg(long)]
    data_dir: PathBuf,
    /// Address to listen on; port 0 picks a free port (printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The PostgreSQL database shared by several servers
    /// (postgres://user:password@host:port/db); unset, SQLite in the data
    /// folder. It may hold a password: prefer the variable to the flag,
    /// whose value other local users can see in the process list.
    #[arg(long, env = "EID_SERVER_DATABASE_URL", hide_env_values = true, value_parser = database_url)]
    database_url: Option<eid_server::config::DatabaseUrl>,
    /// Connections to the PostgreSQL database at most (with --database-url;
    /// default: the server's `database_pool_size`).
    #[arg(long, env = "EID_SERVER_DATABASE_POOL_SIZE", value_parser = clap::value_parser!(u16).range(1..=256))]
    database_pool_size: Option<u16>,
}

/// Wraps the URL at once, so no `Debug` of the arguments shows a password.
fn database_url(text: &str) -> Result<eid_server::config::DatabaseUrl, String> {
    Ok(eid_server::config::DatabaseUrl::new(text))
}

/// Starts the server, prints where it listens (one line: JSON with `--json`;
/// else the banner `eid-server` prints, with `export` lines that include the
/// phone's folder when `--app-dir`/`EID_APP_DIR` is given), and serves until
/// Ctrl-C. `EID_SERVER_PROFILE=development` turns on the development profile
/// (docs/configuration.md), as for `eid-server`; no other `EID_SERVER_*`
/// setting is read.
pub(crate) async fn run(common: &Common, args: &ServeArgs) -> Result<Report, CliError> {
    let profile = eid_server::config::Profile::from_environment().map_err(|e| {
        CliError::new(
            ErrorKind::InvalidArgument,
            format!("EID_SERVER_PROFILE: {e}"),
        )
    })?;
    let defaults = eid_server::Config::defaults_for(profile);
    let config = eid_server::Config {
        listen: args.listen,
        data_dir: args.data_dir.clone(),
        database_url: args.database_url.clone(),
        database_pool_size: args
            .database_pool_size
            .map_or(defaults.database_pool_size, usize::from),
        ..defaults
    };
    eid_server::init_logging(config.log_format);
    let server = eid_server::start(eid_server::ServerOptions::new(config.clone()))
        .await
        .map_err(|e| CliError::new(ErrorKind::Server, format!("cannot start the server: {e:#}")))?;
    let facts = eid_server::startup::StartupFacts::of(&server, &config, common.app_dir.as_deref());
    let printed = if common.json {
        // The same facts, absolute paths included, as one JSON line for
        // scripts; the development warning still goes to stderr.
        let ready = json::Listening {
            // `eid serve` sets no admin_token, so the file is always there.
            admin_token_file: facts
                .admin_token_file
                .clone()
                .unwrap_or_else(|| args.data_dir.join("admin-token"))
                .display()
                .to_string(),
            database: facts.database.display().to_string(),
            listening: facts.base_url.clone(),
            pid: std::process::id(),
            spki_pin: facts.spki_pin.clone(),
        };
        let line = serde_json::to_string(&ready).expect("the shape is strings and a number");
        if let Some(warning) = config.development_warning() {
            eprint!("{warning}");
        }
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}").and_then(|()| out.flush())
    } else {
        eid_server::startup::print_startup("eid serve", &facts, &config)
    };
    printed.map_err(|e| CliError::new(ErrorKind::Io, e.to_string()))?;
    let waited = tokio::signal::ctrl_c().await;
    server.shutdown().await;
    waited.map_err(|e| CliError::new(ErrorKind::Io, format!("cannot wait for Ctrl-C: {e}")))?;
    Ok(Report::new(
        &json::Stopped { stopped: true },
        vec!["eid serve: stopped".to_owned()],
    ))
}
