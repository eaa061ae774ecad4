#![no_main]
//! Fuzz target `text_rules`: see `eid_fuzz_targets::text_rules`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| eid_fuzz_targets::text_rules(data));
