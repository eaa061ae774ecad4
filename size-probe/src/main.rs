//! Size probe for `scripts/lib-size.sh`: calls every public operation of
//! [`eid_core::App`], so that with fat LTO the linked program holds
//! exactly the core code (and dependencies) an app would ship, and nothing
//! that is unreachable. It is a program rather than a `cdylib` because a
//! cdylib keeps only exported symbols, and exporting them needs
//! `#[unsafe(no_mangle)]`, which the workspace forbids; the uniffi bindings
//! crate will be the real cdylib later.
//!
//! Usage (never run by the script, only linked):
//! `eid-size-probe <db> <https://server> <sha256/pin> <command> [args...]`.
#![forbid(unsafe_code)]

use std::sync::Arc;

use eid_core::{App, Config, ServerConfig, SoftwareKeyStore};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    let mut config = Config::new(arg(1), ServerConfig::new(arg(2), arg(3)));
    // Non-interactive: no person reads the request, so no minimum read time.
    config.min_read_ms = 0;
    let keystore = Arc::new(SoftwareKeyStore::open(std::path::Path::new(&arg(1)))?);
    let core = App::open(config, keystore)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let first = core.authenticators()?.into_iter().next();
    let authenticator = first.map(|a| a.authenticator_id);
    let views = rt.block_on(core.refresh())?;
    let request = views.first().map(|v| v.request_id);
    match (arg(4).as_str(), authenticator, request) {
        ("activate", _, _) => println!(
            "{:?}",
            rt.block_on(core.activate(&arg(5), &arg(6), &arg(7)))?
        ),
        ("resume", _, _) => println!("{:?}", rt.block_on(core.resume_activation(&arg(5)))?),
        ("pending", _, _) => println!("{:?}", core.pending_activation()?),
        ("discard", _, _) => core.discard_activation()?,
        ("requests", _, _) => println!("{:?}", core.requests(eid_core::Language::English)?),
        ("approve", Some(a), Some(r)) => {
            let token = rt.block_on(core.unlock(&a, &r, &arg(5)))?;
            let code = args.get(6).map(String::as_str);
            println!("{:?}", rt.block_on(core.approve(&token, true, code))?);
        }
        ("deny", Some(a), Some(r)) => println!("{:?}", rt.block_on(core.deny(&a, &r))?),
        ("fraud", Some(a), Some(r)) => println!("{:?}", rt.block_on(core.report_fraud(&a, &r))?),
        ("retry", _, _) => println!("{}", rt.block_on(core.retry_unsent_decisions())?),
        ("change-pin", Some(a), _) => rt.block_on(core.change_pin(&a, &arg(5), &arg(6)))?,
        ("remove", Some(a), _) => core.remove_authenticator(&a)?,
        _ => println!("{views:?}"),
    }
    Ok(())
}
