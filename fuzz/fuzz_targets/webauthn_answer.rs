#![no_main]
//! Fuzz target `webauthn_answer`: see `eid_fuzz_targets::webauthn_answer`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| eid_fuzz_targets::webauthn_answer(data));
