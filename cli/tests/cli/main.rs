//! Tests of the `eid` binary, each running the real executable as a child
//! process: [`commands`] against a server started in this process, [`crash`]
//! killing `eid app ...` and `eid serve` at every fail point, [`rp_binding`]
//! offline against the known-answer vectors, [`hardening`] what another
//! local user can see of `eid` (file modes, argv, logs), [`audit`] support
//! agents and the audit of admin actions, [`first_hour`] what a newcomer reads
//! (times, hints in errors, the JSON that mirrors the API), [`web_demo`] `eid
//! demo --web`'s bank and broker without a browser.
//!
//! One test binary rather than one per file, so a change to the core or the
//! server is linked once. The tests share no state: each has its own
//! temporary folders, server and phone, and sets the child's environment, never
//! this process's. Run one group with its module path, e.g.
//! `cargo test -p eid-cli --test cli crash::`.
#![allow(missing_docs, clippy::unwrap_used)]

mod support;

mod api_keys;
mod audit;
mod call_context;
mod code_devices;
mod commands;
mod crash;
mod first_hour;
#[cfg(unix)]
mod hardening;
mod oidc;
mod rp_binding;
#[cfg(unix)]
mod web_demo;
