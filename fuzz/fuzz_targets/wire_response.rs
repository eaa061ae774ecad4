#![no_main]
//! Fuzz target `wire_response`: see `eid_fuzz_targets::wire_response`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| eid_fuzz_targets::wire_response(data));
