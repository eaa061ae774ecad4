#![no_main]
//! Fuzz target `device_auth`: see `eid_fuzz_targets::device_auth`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| eid_fuzz_targets::device_auth(data));
