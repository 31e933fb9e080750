//! Fuzz target `hello`: see `nextdeploy_shared::fuzzing::hello` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nextdeploy_shared::fuzzing::hello(data));
