#![no_main]
//! Fuzz target `server_config`: see `eid_fuzz_targets::server_config`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| eid_fuzz_targets::server_config(data));
