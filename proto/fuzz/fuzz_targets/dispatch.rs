//! Fuzz target `dispatch`: see `proto::fuzzing::dispatch` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| proto::fuzzing::dispatch(data));
