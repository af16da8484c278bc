//! Ours only: the privilege drop. After binding, the daemon runs as
//! `_rpc` (`daemon` with `-s`) keeping CAP_NET_BIND_SERVICE alone while
//! the port-allocation service is on (it binds privileged ports for its
//! clients) and no capability at all when it is off; it still accepts
//! SET/UNSET, and leaves neither `/run/rpcbind.sock` nor
//! `/run/rpcbind.lock` behind, after SIGTERM and after `kill -9` alike
//! (the C daemon leaves both). The allocation state goes to /run.

#![allow(clippy::unwrap_used)] // tests may unwrap (house rules)

use std::time::{Duration, Instant};

use e2e::services::rpcinfo;
use e2e::{Impl, Namespace, Rpcbind};

const T: Duration = Duration::from_secs(10);
/// CAP_NET_BIND_SERVICE (bit 10) alone, as /proc/PID/status prints it.
const BIND_SERVICE_ONLY: &str = "0000000000000400";
const NONE: &str = "0000000000000000";
/// Keeps the allocation service's state inside the namespace.
const STATE: [&str; 2] = ["--alloc-state", e2e::TEST_ALLOC_STATE];

/// Starts ours with the allocation service off (a policy file saying so).
fn start_without_allocation<'ns>(ns: &'ns Namespace, extra: &[&str]) -> Rpcbind<'ns> {
    std::fs::write(
        ns.host_path("/run/policy.toml"),
        "[allocation]\nenabled = false\n",
    )
    .unwrap();
    let mut args = vec!["--policy-config", "/run/policy.toml", STATE[0], STATE[1]];
    args.extend_from_slice(extra);
    Rpcbind::start(ns, Impl::Ours, &args)
}

/// uid and gid of `user` from `getent passwd`.
fn account(user: &str) -> Option<(u32, u32)> {
    let out = std::process::Command::new("getent")
        .args(["passwd", user])
        .output()
        .ok()?;
    let line = String::from_utf8(out.stdout).ok()?;
    let f: Vec<&str> = line.trim().split(':').collect();
    Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?))
}

fn usable(test: &str, user: &str) -> Option<(u32, u32)> {
    if !e2e::require_root(test) {
        return None;
    }
    let ids = account(user);
    if ids.is_none() {
        e2e::skip_note(&format!(
            "skipping {test}: no user {user} (Debian's rpcbind package creates _rpc)"
        ));
    }
    ids
}

/// The `Key:` lines of /proc/PID/status.
fn status(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status")
}

fn field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(str::trim)
        .unwrap_or_else(|| panic!("{key} missing in\n{status}"))
}

fn assert_ids(status: &str, uid: u32, gid: u32) {
    let uids: Vec<&str> = field(status, "Uid").split_whitespace().collect();
    let gids: Vec<&str> = field(status, "Gid").split_whitespace().collect();
    assert_eq!(
        uids,
        [uid.to_string().as_str(); 4],
        "real, effective, saved, fs"
    );
    assert_eq!(
        gids,
        [gid.to_string().as_str(); 4],
        "real, effective, saved, fs"
    );
    assert_eq!(field(status, "Groups"), "", "supplementary groups");
}

/// Permitted, effective and bounding sets are exactly `kept`; inheritable
/// and ambient are empty.
fn assert_capabilities(status: &str, kept: &str) {
    for set in ["CapPrm", "CapEff", "CapBnd"] {
        assert_eq!(field(status, set), kept, "{set}:\n{status}");
    }
    for set in ["CapInh", "CapAmb"] {
        assert_eq!(field(status, set), NONE, "{set}:\n{status}");
    }
    assert_eq!(field(status, "NoNewPrivs"), "1");
}

fn assert_no_capability(status: &str) {
    assert_capabilities(status, NONE);
}

/// Children of `pid` (the cleanup keeper).
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn client(ns: &Namespace, args: &[&str]) -> String {
    let mut c = ns.command(e2e::rpcclient());
    c.args(args);
    let out = e2e::run_with_timeout(c, T);
    out.assert_success(&format!("rpcclient {args:?}"));
    out.stdout.trim().to_owned()
}

fn files_gone(ns: &Namespace) -> bool {
    let deadline = Instant::now() + T;
    loop {
        let gone = ["/run/rpcbind.sock", "/run/rpcbind.lock"]
            .iter()
            .all(|f| !ns.host_path(f).exists());
        if gone || Instant::now() > deadline {
            return gone;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn allocation_on_keeps_only_cap_net_bind_service() {
    let test = "allocation_on_keeps_only_cap_net_bind_service";
    let Some((uid, gid)) = usable(test, "_rpc") else {
        return;
    };
    let ns = Namespace::new();
    let mut d = Rpcbind::start(&ns, Impl::Ours, &STATE);
    let st = status(d.process.pid());
    assert_ids(&st, uid, gid);
    assert_capabilities(&st, BIND_SERVICE_ONLY);
    assert!(d.terminate().is_some_and(|s| s.success()));
    assert!(files_gone(&ns));
}

#[test]
fn runs_as_rpc_without_capabilities_and_cleans_up() {
    let test = "runs_as_rpc_without_capabilities_and_cleans_up";
    let Some((uid, gid)) = usable(test, "_rpc") else {
        return;
    };
    let ns = Namespace::new();
    let mut d = start_without_allocation(&ns, &[]);
    let pid = d.process.pid();
    let st = status(pid);
    assert_ids(&st, uid, gid);
    assert_no_capability(&st);

    // Registrations still work as the unprivileged user, over the local
    // socket (owner from SO_PEERCRED) and over UDP from loopback.
    let unix = "unix:/run/rpcbind.sock";
    assert_eq!(
        client(
            &ns,
            &[unix, "set", "200100", "1", "tcp", "0.0.0.0.4.1", "x"]
        ),
        "true"
    );
    assert_eq!(
        client(
            &ns,
            &[
                "udp:127.0.0.1:111",
                "set",
                "200101",
                "1",
                "udp",
                "0.0.0.0.4.2",
                ""
            ]
        ),
        "true"
    );
    let dump = rpcinfo(&ns, &[]).stdout;
    assert!(dump.contains("200100") && dump.contains("200101"), "{dump}");
    assert_eq!(client(&ns, &[unix, "unset", "200100", "1", "tcp"]), "true");
    assert!(!rpcinfo(&ns, &[]).stdout.contains("200100"));

    // The cleanup keeper: root but without any capability, holding no
    // socket of the daemon.
    let kids = children(pid);
    assert_eq!(kids.len(), 1, "{kids:?}");
    let keeper = status(kids[0]);
    assert_eq!(field(&keeper, "Name"), "rpcbind-cleanup");
    assert_no_capability(&keeper);
    let fds = std::fs::read_dir(format!("/proc/{}/fd", kids[0])).unwrap();
    for fd in fds.flatten() {
        let target = std::fs::read_link(fd.path()).unwrap_or_default();
        assert!(
            !target.to_string_lossy().starts_with("socket:"),
            "keeper holds {}",
            target.display()
        );
    }

    assert!(d.terminate().is_some_and(|s| s.success()));
    // Gone by the time the daemon has exited: it waits for the keeper.
    for f in ["/run/rpcbind.sock", "/run/rpcbind.lock"] {
        assert!(!ns.host_path(f).exists(), "{f} left behind");
    }
    assert!(!std::path::Path::new(&format!("/proc/{}", kids[0])).exists());
}

#[test]
fn dash_s_runs_as_daemon() {
    let Some((uid, gid)) = usable("dash_s_runs_as_daemon", "daemon") else {
        return;
    };
    let ns = Namespace::new();
    let mut d = start_without_allocation(&ns, &["-s"]);
    let st = status(d.process.pid());
    assert_ids(&st, uid, gid);
    assert_no_capability(&st);
    rpcinfo(&ns, &["-p"]).assert_success("rpcinfo -p");
    assert!(d.terminate().is_some_and(|s| s.success()));
    assert!(files_gone(&ns));
}

#[test]
fn kill_9_leaves_nothing_stale_and_a_restart_works() {
    if usable("kill_9_leaves_nothing_stale_and_a_restart_works", "_rpc").is_none() {
        return;
    }
    let ns = Namespace::new();
    let mut d = Rpcbind::start(&ns, Impl::Ours, &STATE);
    assert!(d.process.signal_and_wait(libc::SIGKILL, T).is_some());
    assert!(files_gone(&ns), "socket or lock left after kill -9");
    let mut again = Rpcbind::start(&ns, Impl::Ours, &STATE);
    rpcinfo(&ns, &["-p"]).assert_success("rpcinfo -p after restart");
    assert!(again.terminate().is_some_and(|s| s.success()));
}

#[test]
fn missing_user_is_reported() {
    if !e2e::require_root("missing_user_is_reported") {
        return;
    }
    let ns = Namespace::new();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let without: String = passwd
        .lines()
        .filter(|l| !l.starts_with("_rpc:"))
        .map(|l| format!("{l}\n"))
        .collect();
    ns.overlay_file("/etc/passwd", &without);
    let out = ns.run(
        Impl::Ours.program().to_str().unwrap(),
        &["-f", STATE[0], STATE[1]],
        T,
    );
    assert_eq!(out.code(), 1);
    assert!(
        out.stderr
            .contains("cannot get uid of '_rpc': no such user")
            && out.stderr.contains("useradd --system"),
        "{}",
        out.stderr
    );
    assert!(!ns.host_path("/run/rpcbind.sock").exists());
}
