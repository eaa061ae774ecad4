#![no_main]
//! Fuzz target `wire_request`: see `eid_fuzz_targets::wire_request`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| eid_fuzz_targets::wire_request(data));
