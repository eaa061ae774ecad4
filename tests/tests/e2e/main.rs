//! The end-to-end suite: the device core (`eid_core::App`) against
//! the real `eid-server` over TLS on 127.0.0.1, one module a subject.
//!
//! One test binary rather than one per file: each binary links the whole
//! server and core, so twenty of them cost twenty links after every change to
//! either and a gigabyte of disk. Run one subject with its module path, e.g.
//! `cargo test -p eid-e2e-tests --test e2e scenarios_clock::`.
//!
//! The fixtures (`World`, `Phone`, `Mitm`, the SMTP and SMS receivers) live in
//! the `eid-e2e-tests` library (`tests/src/`); what several modules here share
//! beyond them is in [`support`].

mod support;

mod activation;
mod attacks;
mod block;
mod decisions;
mod events;
mod household;
mod network;
mod new_device;
mod pin;
mod pin_properties;
mod pull;
mod resend_order;
mod scenarios_binding;
mod scenarios_call;
mod scenarios_clock;
mod scenarios_flood;
mod scenarios_journal;
mod scenarios_pinning;
mod scenarios_readtime;
mod scenarios_text;
mod self_service;
