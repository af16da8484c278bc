//! Fuzz target `rpc_call_decode`: see `proto::fuzzing::rpc_call_decode` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| proto::fuzzing::rpc_call_decode(data));
