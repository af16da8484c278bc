//! Compiling the C test programs in `tests/c/` (libtirpc clients and
//! servers) with gcc into `<target>/c-progs/`, once per test process.
//! Does process and file I/O (runs gcc); implements no RFC.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// libtirpc's headers, as Debian's libtirpc-dev installs them.
const TIRPC_INCLUDE: &str = "/usr/include/tirpc";

/// The compiled program `tests/c/NAME.c`, or `None` (with a printed reason)
/// when gcc or libtirpc-dev is missing. A program that exists but does not
/// compile is a bug in it: that panics with gcc's output.
pub fn build(name: &str) -> Option<PathBuf> {
    static BUILT: OnceLock<Mutex<HashMap<String, Option<PathBuf>>>> = OnceLock::new();
    let map = BUILT.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    map.entry(name.to_string())
        .or_insert_with(|| compile(name))
        .clone()
}

fn compile(name: &str) -> Option<PathBuf> {
    if let Some(reason) = missing_toolchain() {
        eprintln!("skipping: gcc or libtirpc-dev missing ({reason})");
        return None;
    }
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("c")
        .join(format!("{name}.c"));
    let dir = target_dir().join("c-progs");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    let out = dir.join(name);
    // Test binaries run in parallel: compile to a private name, then rename
    // atomically so nobody executes a half-written file.
    let tmp = dir.join(format!(".{name}.{}", std::process::id()));
    let result = Command::new("gcc")
        .args(["-Wall", "-O1", "-I", TIRPC_INCLUDE, "-o"])
        .arg(&tmp)
        .arg(&source)
        .arg("-ltirpc")
        .output()
        .unwrap_or_else(|e| panic!("running gcc: {e}"));
    assert!(
        result.status.success(),
        "gcc failed on {}:\n{}",
        source.display(),
        String::from_utf8_lossy(&result.stderr)
    );
    std::fs::rename(&tmp, &out).unwrap_or_else(|e| panic!("rename to {}: {e}", out.display()));
    Some(out)
}

/// Why the C programs cannot be built here, if they cannot.
fn missing_toolchain() -> Option<String> {
    let gcc = Command::new("gcc").arg("--version").output();
    if !gcc.map(|o| o.status.success()).unwrap_or(false) {
        return Some("gcc not runnable".into());
    }
    if !Path::new(TIRPC_INCLUDE).join("rpc/rpc.h").exists() {
        return Some(format!("{TIRPC_INCLUDE}/rpc/rpc.h absent"));
    }
    let lib = Command::new("gcc")
        .arg("-print-file-name=libtirpc.so")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    if !Path::new(&lib).is_absolute() {
        return Some("libtirpc.so not found by gcc".into());
    }
    None
}

/// `CARGO_TARGET_DIR`, or the directory holding this test binary's
/// profile directory (`target/<profile>/deps/<binary>`).
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().ok();
    let profile = exe.as_deref().and_then(Path::parent).map(|d| {
        if d.ends_with("deps") {
            d.parent().unwrap_or(d)
        } else {
            d
        }
    });
    match profile.and_then(Path::parent) {
        Some(t) => t.to_path_buf(),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
    }
}
