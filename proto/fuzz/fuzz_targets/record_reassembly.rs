//! Fuzz target `record_reassembly`: see `proto::fuzzing::record_reassembly` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| proto::fuzzing::record_reassembly(data));
