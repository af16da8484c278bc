//! Fuzz target `warmstart_decode`: see `proto::warmstart::fuzz_decode` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| proto::warmstart::fuzz_decode(data));
