//! Replays every file of the committed fuzz corpora (`fuzz/corpus/<target>`)
//! through the same entry points the cargo-fuzz targets call, so that
//! `cargo test` catches a regression on any input the fuzzers once found
//! interesting, without needing cargo-fuzz or a nightly toolchain.

use std::path::Path;

fn replay(target: &str, entry: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut count = 0;
    for file in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = file.map(|f| f.path()).unwrap_or_else(|e| panic!("{e}"));
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        entry(&data);
        count += 1;
    }
    assert!(count >= 5, "{target}: only {count} corpus files");
}

#[test]
fn rpc_call_decode_corpus() {
    replay("rpc_call_decode", proto::fuzzing::rpc_call_decode);
}

#[test]
fn record_reassembly_corpus() {
    replay("record_reassembly", proto::fuzzing::record_reassembly);
}

#[test]
fn arg_decode_corpus() {
    replay("arg_decode", proto::fuzzing::arg_decode);
}

#[test]
fn warmstart_decode_corpus() {
    replay("warmstart_decode", proto::warmstart::fuzz_decode);
}
