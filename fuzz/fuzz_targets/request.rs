//! Fuzz target `request`: see `nextdeploy_shared::fuzzing::request` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nextdeploy_shared::fuzzing::request(data));
