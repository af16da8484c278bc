//! Replays the committed corpus of the `dispatch` fuzz target
//! (`fuzz/corpus/dispatch`: requests from the golden sessions, plus
//! whatever the fuzzer found interesting) through `proto::fuzzing::dispatch`,
//! so that plain `cargo test` catches a regression on any of them.

use std::path::Path;

#[test]
fn dispatch_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/dispatch");
    let mut count = 0;
    for file in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = file.map(|f| f.path()).unwrap_or_else(|e| panic!("{e}"));
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        proto::fuzzing::dispatch(&data);
        count += 1;
    }
    assert!(count >= 20, "only {count} corpus files");
}
