//! Fuzz target `flat_object`: see `nextdeploy_shared::fuzzing::flat_object` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nextdeploy_shared::fuzzing::flat_object(data));
