//! Fuzz target `token`: see `nextdeploy_shared::fuzzing::token` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nextdeploy_shared::fuzzing::token(data));
