//! The command line as a user sees it: `--help`, `--version` and usage
//! errors of the real binary. Needs no root: none of these start the
//! daemon.

use std::process::{Command, Output};

fn rpcbind(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rpcbind"))
        .args(args)
        .output()
        .expect("cannot run the rpcbind binary")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_prints_usage_and_every_flag_then_exits_0() {
    let out = rpcbind(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("Usage: rpcbind [-adfil") && stdout.contains("] [-h ADDR]..."),
        "{stdout}"
    );
    for flag in [
        "-a",
        "-d",
        "-f",
        "-h <ADDR>",
        "-i",
        "-l",
        "-r",
        "-w",
        "--udp-reply-factor <N>",
        "--help",
        "--version",
    ] {
        assert!(stdout.contains(flag), "help lacks {flag}:\n{stdout}");
    }
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
}

#[test]
fn version_prints_the_package_version() {
    let out = rpcbind(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout).trim(),
        format!("rpcbind {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn unknown_option_prints_usage_on_stderr_and_exits_1() {
    for args in [&["-x"][..], &["--frobnicate"], &["-f", "-L"]] {
        let out = rpcbind(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("Usage: rpcbind [-adfil") && stderr.contains("] [-h ADDR]..."),
            "{args:?}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn h_without_an_address_is_a_usage_error() {
    let out = rpcbind(&["-h"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("Usage: rpcbind"));
}

#[test]
fn stray_operand_is_a_usage_error() {
    let out = rpcbind(&["-f", "extra"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("Usage: rpcbind"));
}
