#![no_main]
//! Fuzz target `pskc`: see `eid_fuzz_targets::pskc`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| eid_fuzz_targets::pskc(data));
