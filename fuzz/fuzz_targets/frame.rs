//! Fuzz target `frame`: see `nextdeploy_shared::fuzzing::frame` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nextdeploy_shared::fuzzing::frame(data));
