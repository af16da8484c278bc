//! Fuzz target `arg_decode`: see `proto::fuzzing::arg_decode` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| proto::fuzzing::arg_decode(data));
