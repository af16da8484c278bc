//! Real RPC services and clients for the end-to-end tests: `rpc.statd`
//! from nfs-common as a registered service, and checks of `rpcinfo`
//! output. Does process I/O; the services speak RFC 1833 to the daemon.

use std::thread;
use std::time::{Duration, Instant};

use crate::namespace::{Background, Namespace, RunOutput};
use crate::Impl;

/// How long one client invocation may take.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// The port rpc.statd listens on (udp, tcp, udp6, tcp6) in these tests:
/// 32765 = 127 * 256 + 253, so its universal addresses end in `.127.253`.
pub const STATD_PORT: u16 = 32765;

/// rpc.statd (program 100024 "status") running in a namespace.
#[derive(Debug)]
pub struct Statd {
    pub process: Background,
}

impl Statd {
    /// Starts `rpc.statd -F --no-notify` with a state directory on the
    /// namespace's /run and fixed ports, and waits (bounded) until its
    /// four registrations are visible through `rpcinfo`.
    pub fn start(ns: &Namespace) -> Statd {
        ns.run(
            "mkdir",
            &["-p", "/run/statd/sm", "/run/statd/sm.bak"],
            CLIENT_TIMEOUT,
        )
        .assert_success("mkdir statd dir");
        // statd drops to the owner of its state directory.
        ns.run("chown", &["-R", "statd", "/run/statd"], CLIENT_TIMEOUT)
            .assert_success("chown statd dir");
        let port = STATD_PORT.to_string();
        let outgoing = (STATD_PORT + 1).to_string();
        let mut process = ns.spawn(
            "rpc.statd",
            &[
                "-F",
                "--no-notify",
                "-P",
                "/run/statd",
                "-p",
                &port,
                "-o",
                &outgoing,
            ],
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // All four netids (udp, tcp, udp6, tcp6), the last one included.
            let out = ns.run("rpcinfo", &[], CLIENT_TIMEOUT);
            let n = out
                .stdout
                .lines()
                .filter(|l| l.contains(" 100024 "))
                .count();
            if n >= 4 {
                return Statd { process };
            }
            if process.try_wait().is_some() || Instant::now() >= deadline {
                panic!("rpc.statd did not register: {}\n{out:?}", process.stderr());
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The uid rpc.statd runs as (owner of its registrations), as text.
pub fn statd_uid() -> String {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&"statd")).then(|| f.get(2).map(|s| s.to_string()))?
        })
        .expect("no statd user (is nfs-common installed?)")
}

/// Runs `rpcinfo args` in `ns`.
pub fn rpcinfo(ns: &Namespace, args: &[&str]) -> RunOutput {
    ns.run("rpcinfo", args, CLIENT_TIMEOUT)
}

/// Asserts that `rpcinfo args` exits with `code` and prints exactly
/// `stdout` and `stderr` (as Debian's rpcinfo prints them against the C
/// daemon).
pub fn expect_rpcinfo(
    ns: &Namespace,
    which: Impl,
    args: &[&str],
    code: i32,
    stdout: &str,
    stderr: &str,
) {
    let out = rpcinfo(ns, args);
    let ctx = format!("rpcinfo {} against {}", args.join(" "), which.name());
    assert!(!out.timed_out, "{ctx}: timed out");
    assert_eq!(
        out.stdout, stdout,
        "{ctx}: stdout differs (stderr: {})",
        out.stderr
    );
    assert_eq!(out.stderr, stderr, "{ctx}: stderr differs");
    assert_eq!(out.code(), code, "{ctx}: exit status");
}
