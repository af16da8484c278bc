//! Checks that a held reservation keeps its port out of everyone's reach:
//! every kind of bind (the `binder` test program) and libtirpc's
//! `bindresvport()` over its whole range (`tests/c/bindresv.c`). Shared by
//! the allocation service's tests and the descriptor-store tests (the
//! same checks while the daemon holds the port and while systemd does).
//! Does process I/O inside a namespace.

use std::time::Duration;

use crate::{binary, Namespace, RunOutput};

/// Runs the `binder` test program in `ns` (10 s at most).
pub fn binder(ns: &Namespace, args: &[&str]) -> RunOutput {
    ns.run(
        &binary("binder").display().to_string(),
        args,
        Duration::from_secs(10),
    )
}

/// Every kind of bind of `port` (TCP and UDP, IPv4 and IPv6, plain,
/// SO_REUSEADDR, SO_REUSEPORT) fails with EADDRINUSE; `when` ends each
/// failure message.
pub fn assert_cannot_bind(ns: &Namespace, port: u16, when: &str) {
    let port = port.to_string();
    for proto in ["tcp", "udp"] {
        for fam in ["4", "6"] {
            for reuse in ["plain", "reuseaddr", "reuseport"] {
                let out = binder(ns, &["try", proto, fam, &port, reuse]);
                assert_eq!(
                    out.stdout.trim(),
                    "error EADDRINUSE",
                    "{proto}/{fam} {reuse} bound the reserved port{when}"
                );
            }
        }
    }
}

/// `bindresvport()` 430 times over TCP and UDP (every port of its range
/// taken in turn) gets over 300 ports and never `port`; `when` ends each
/// failure message. Skipped (with a note) where the C program cannot be
/// built.
pub fn assert_bindresvport_avoids(ns: &Namespace, port: u16, when: &str) {
    let Some(prog) = crate::cprog::build("bindresv") else {
        return;
    };
    let prog = prog.display().to_string();
    let port = port.to_string();
    for proto in ["tcp", "udp"] {
        let out = ns.run(&prog, &["resv", "430", proto, "4"], Duration::from_secs(60));
        let ports: Vec<&str> = out
            .stdout
            .lines()
            .filter_map(|l| l.split_whitespace().find_map(|f| f.strip_prefix("port=")))
            .collect();
        assert!(
            ports.len() > 300,
            "{proto}: bindresvport got few ports{when}: {}",
            out.stdout
        );
        assert!(
            !ports.contains(&port.as_str()),
            "{proto}: bindresvport got the reserved port{when}"
        );
    }
}
