#![no_main]
//! Fuzz target `binding_code`: see `eid_fuzz_targets::binding_code`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| eid_fuzz_targets::binding_code(data));
