//! Harness for the end-to-end tests: private network namespaces, the real
//! daemons (ours and Debian's C rpcbind) started inside them, a small
//! independent RPC client, and output normalisation for differential
//! comparison. Does process, namespace and socket I/O.

pub mod cprog;
pub mod daemon;
pub mod exchange;
pub mod namespace;
pub mod normalise;
pub mod reserved;
pub mod rpcwire;
pub mod services;
mod sys;

use std::path::PathBuf;

pub use daemon::{Impl, Rpcbind, TEST_ALLOC_STATE};
pub use namespace::{run_with_timeout, Background, Namespace, RunOutput};

/// True when this process may create namespaces (root and a working
/// `unshare`); otherwise prints why `test_name` is skipped.
pub fn require_root(test_name: &str) -> bool {
    let usable = sys::euid() == 0
        && std::process::Command::new("unshare")
            .args(["-n", "-m", "true"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
    if !usable {
        skip_note(&format!(
            "skipping {test_name}: needs root for network namespaces"
        ));
    }
    usable
}

/// Prints why a test is skipped, past libtest's output capture (a direct
/// write to stderr, not `eprintln!`), so a passing skip is still visible.
pub fn skip_note(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The workspace's built binary `name` (target/<profile>/<name>).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test-binary> (or examples/<example>): the
    // profile dir is two up.
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") || dir.ends_with("examples") {
        dir.pop();
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} missing: build the workspace first (cargo build --workspace)",
        path.display()
    );
    path
}

/// The harness's own RPC client binary (`tests/src/bin/rpcclient.rs`).
pub fn rpcclient() -> PathBuf {
    binary("rpcclient")
}

/// Runs one case against `which` when root and installed; otherwise prints
/// why it is skipped.
pub fn run_case(test: &str, which: Impl, f: impl FnOnce(Impl)) {
    if !require_root(test) {
        return;
    }
    if !which.available() {
        skip_note(&format!("skipping {test}: {} not installed", which.name()));
        return;
    }
    f(which)
}

/// Declares each case once per implementation: `name::reference` and
/// `name::ours`, so a failure says which daemon failed.
#[macro_export]
macro_rules! cases {
    ($(fn $name:ident($which:ident) $body:block)*) => {$(
        // cfg(test) marks the module as test code (for clippy's test rules).
        #[cfg(test)]
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            fn case($which: $crate::Impl) $body
            #[test]
            fn reference() {
                $crate::run_case(concat!(stringify!($name), "::reference"), $crate::Impl::Reference, case)
            }
            #[test]
            fn ours() {
                $crate::run_case(concat!(stringify!($name), "::ours"), $crate::Impl::Ours, case)
            }
        }
    )*};
}
