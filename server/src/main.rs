//! `eid-server`: the reference identity broker.

/// mimalloc: the request path allocates many small short-lived buffers; it
/// measured faster than glibc malloc under the load generator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;

use clap::Parser;
use eid_server::config::Config;

/// The eID reference server (identity broker).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// TOML configuration file (environment variables EID_SERVER_* override it).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Print the OpenAPI document and exit.
    #[arg(long)]
    print_openapi: bool,
    /// Print the effective configuration (defaults, then the file, then the
    /// environment) as TOML, secrets redacted, and exit.
    #[arg(long)]
    print_config: bool,
    /// Write the next ID-token signing key into the data folder (unless
    /// there is one), print its kid and exit. The JWKS publishes it from the
    /// next start (docs/oidc.md, "Rotating the ID-token key").
    #[arg(long, conflicts_with = "rotate_id_token_key")]
    prepare_id_token_key: bool,
    /// Make the next ID-token key the signing key (the old one stays
    /// published as the previous key), print its kid and exit; restart
    /// the server after it. Refused without a next key.
    #[arg(long)]
    rotate_id_token_key: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Everything this process creates (database, -wal/-shm, keys, token,
    // certificate, log files) is its owner's alone. Process-wide, so here
    // and not in the library; `start` narrows the data folder on its own too.
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_bits_truncate(0o077));
    let args = Args::parse();
    if args.print_openapi {
        println!("{}", eid_server::api::openapi().to_pretty_json()?);
        return Ok(());
    }
    let config = Config::load(args.config.as_deref())?;
    if args.print_config {
        // The warning on stderr for the person, and as TOML comments in
        // the printed configuration for whoever reads it later.
        if let Some(warning) = config.development_warning() {
            eprint!("{warning}");
        }
        print!(
            "{}",
            eid_server::effective_config::to_redacted_toml(&config)?
        );
        return Ok(());
    }
    if args.prepare_id_token_key {
        let kid = eid_server::oidc::prepare_next_id_token_key(&config.data_dir)?;
        println!("next ID-token key: kid {kid}; published from the next start");
        return Ok(());
    }
    if args.rotate_id_token_key {
        let kid = eid_server::oidc::rotate_id_token_key(&config.data_dir)?;
        println!("ID-token key rotated: kid {kid} signs from the next start");
        return Ok(());
    }
    eid_server::init_logging(config.log_format);
    let server = eid_server::start(eid_server::ServerOptions::new(config.clone())).await?;
    let facts = eid_server::startup::StartupFacts::of(&server, &config, None);
    eid_server::startup::print_startup("eid-server", &facts, &config)?;
    tokio::signal::ctrl_c().await?;
    println!("shutting down");
    server.shutdown().await;
    Ok(())
}
