//! `eid serve`: the reference server in the foreground on a data folder, for
//! scripts and the crash harness (cli/tests/cli/crash.rs), which needs a server it
//! can kill with SIGKILL and restart on the same folder. The production server
//! is the `eid-server` binary (configuration file); this one takes two flags.
//! Both log the same way to stderr (`EID_LOG`, see `eid_server::init_logging`).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

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
}

/// Starts the server, prints where it listens (one line: JSON with `--json`),
/// and serves until Ctrl-C.
pub(crate) async fn run(as_json: bool, args: &ServeArgs) -> Result<Report, CliError> {
    let config = eid_server::Config {
        listen: args.listen,
        data_dir: args.data_dir.clone(),
        ..eid_server::Config::default()
    };
    eid_server::init_logging(config.log_format);
    let server = eid_server::start(eid_server::ServerOptions::new(config))
        .await
        .map_err(|e| CliError::new(ErrorKind::Server, format!("cannot start the server: {e:#}")))?;
    let token_file = args.data_dir.join("admin-token");
    let line = if as_json {
        let ready = json::Listening {
            admin_token_file: token_file.display().to_string(),
            database: server.database_path.display().to_string(),
            listening: server.base_url(),
            pid: std::process::id(),
            spki_pin: server.spki_pin.clone(),
        };
        serde_json::to_string(&ready).expect("the shape is strings and a number")
    } else {
        format!(
            "eid serve: listening on {} (pin {}, admin token in {})",
            server.base_url(),
            server.spki_pin,
            token_file.display()
        )
    };
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .map_err(|e| CliError::new(ErrorKind::Io, e.to_string()))?;
    }
    let waited = tokio::signal::ctrl_c().await;
    server.shutdown().await;
    waited.map_err(|e| CliError::new(ErrorKind::Io, format!("cannot wait for Ctrl-C: {e}")))?;
    Ok(Report::new(
        &json::Stopped { stopped: true },
        vec!["eid serve: stopped".to_owned()],
    ))
}
