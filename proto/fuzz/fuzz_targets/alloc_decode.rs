//! Fuzz target `alloc_decode`: see `proto::alloc::fuzz_decode` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| proto::alloc::fuzz_decode(data));
