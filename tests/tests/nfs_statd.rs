//! End-to-end: the static-port way for NFS daemons (issue 7). In a private
//! namespace with our rpcbind, `portpolicy apply` (under `--root` on the
//! namespace's /run) writes the reservations as the nfs.conf drop-in,
//! which is bind-mounted over /etc/nfs.conf.d inside the namespace only
//! (with the managed bindresvport.blacklist); Debian's unmodified
//! `rpc.statd` is then started and stopped ten times and must show only
//! reserved or pool ports, none that /etc/services names. A control run
//! without the drop-in shows what statd takes otherwise. Does namespace
//! and process I/O.

mod preload_common;

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use e2e::{require_root, run_with_timeout, skip_note, Namespace};
use preload_common::*;

/// The reservations under test; `/etc/services` names none of 4042-4045.
const NFS_POLICY: &str = r#"
[[reservation]]
name = "statd"
port = 4042
protocol = "both"
nfs_conf = "statd.port"

[[reservation]]
name = "statd-outgoing"
port = 4043
protocol = "udp"
nfs_conf = "statd.outgoing-port"

[[reservation]]
name = "mountd"
port = 4044
protocol = "both"
nfs_conf = "mountd.port"
"#;
const STATD_PORT: u16 = 4042;
/// `portpolicy apply --root` writes here (the namespace's tmpfs).
const ROOT: &str = "/run/pproot";
const STARTS: usize = 10;

/// One run of statd: its pid, its registrations (`rpcinfo -p` lines of
/// program 100024: proto, port) and its sockets (`ss`: proto, local port).
#[derive(Debug)]
struct Run {
    pid: u32,
    registered: Vec<(String, u16)>,
    sockets: Vec<(String, u16)>,
}

fn skip_without_statd(test: &str) -> bool {
    if !require_root(test) {
        return true;
    }
    for needed in ["/usr/sbin/rpc.statd", "/etc/nfs.conf.d"] {
        if !Path::new(needed).exists() {
            skip_note(&format!("skipping {test}: no {needed} (nfs-common)"));
            return true;
        }
    }
    false
}

fn portpolicy(ns: &Namespace, args: &[&str]) -> e2e::RunOutput {
    let mut c = ns.command(e2e::binary("portpolicy"));
    c.args(["--root", ROOT, "--config", CONFIG]).args(args);
    run_with_timeout(c, RUN_TIMEOUT)
}

/// Copies the host's sources into the apply root, runs `apply` twice
/// (the second must change nothing), and bind-mounts the results over
/// /etc inside the namespace. Returns the dry run's output.
fn apply_in(ns: &Namespace) -> String {
    for f in ["services", "bindresvport.blacklist", "nfs.conf"] {
        let to = ns.host_path(&format!("{ROOT}/etc/{f}"));
        std::fs::create_dir_all(to.parent().expect("dir")).expect("mkdir root");
        std::fs::copy(format!("/etc/{f}"), &to).expect("copy source");
    }
    let dry = portpolicy(ns, &["apply", "--dry-run"]);
    dry.assert_success("apply --dry-run");
    assert!(
        !ns.host_path(&format!("{ROOT}/etc/nfs.conf.d/portpolicy.conf"))
            .exists(),
        "dry run wrote the drop-in"
    );
    portpolicy(ns, &["apply"]).assert_success("apply");
    let again = portpolicy(ns, &["apply"]);
    again.assert_success("apply again");
    assert!(again.stdout.contains("nothing to change"), "{again:?}");
    for (from, to) in [
        ("etc/nfs.conf.d", "/etc/nfs.conf.d"),
        ("etc/bindresvport.blacklist", "/etc/bindresvport.blacklist"),
    ] {
        ns.run(
            "mount",
            &["--bind", &format!("{ROOT}/{from}"), to],
            RUN_TIMEOUT,
        )
        .assert_success("bind-mount apply's output");
    }
    dry.stdout
}

/// Starts statd, waits (bounded) for its udp and tcp registrations, reads
/// them and its sockets, then stops it with SIGTERM.
fn run_statd(ns: &Namespace) -> Run {
    let mut statd = ns.spawn("rpc.statd", &["-F", "--no-notify", "-P", "/run/statd"]);
    let registered = statd_registrations(ns, &mut statd);
    // Every socket, in any state: the outgoing one too.
    let sockets = sockets_of(ns, "rpc.statd", &["-Hanp", "-t", "-u"]);
    let pid = statd.pid();
    assert!(
        statd
            .signal_and_wait(libc::SIGTERM, Duration::from_secs(10))
            .is_some(),
        "rpc.statd did not stop on SIGTERM"
    );
    // statd unregisters on SIGTERM; wait so the next run starts clean.
    let deadline = Instant::now() + Duration::from_secs(5);
    while ns
        .run("rpcinfo", &["-p"], RUN_TIMEOUT)
        .stdout
        .contains(" 100024 ")
    {
        assert!(Instant::now() < deadline, "status still registered");
        std::thread::sleep(Duration::from_millis(50));
    }
    Run {
        pid,
        registered,
        sockets,
    }
}

#[test]
fn rpc_statd_takes_its_reserved_port_from_the_nfs_conf_dropin() {
    let test = "rpc_statd_takes_its_reserved_port_from_the_nfs_conf_dropin";
    if skip_without_statd(test) {
        return;
    }
    let ns = Namespace::new();
    std::fs::write(ns.host_path(CONFIG), NFS_POLICY).expect("write policy");
    let dry = apply_in(&ns);
    assert!(
        dry.contains("+[statd]\n+port = 4042\t# reservation statd\n"),
        "{dry}"
    );
    // The drop-in's ports are reservations, not the admin's nfs.conf pins.
    let why = portpolicy(&ns, &["why", "4042/tcp"]);
    why.assert_success("why");
    assert!(why.stdout.contains("reservation: statd"), "{}", why.stdout);
    assert!(!why.stdout.contains("nfs.conf"), "{}", why.stdout);
    let _daemon = start_with(&ns, NFS_POLICY);
    let pool = Pool::read_config(&ns, CONFIG);
    let services = services_ports();
    assert!(!services.contains(&STATD_PORT));
    statd_state_dir(&ns);
    let mut pids = HashSet::new();
    for i in 0..STARTS {
        let run = run_statd(&ns);
        eprintln!("run {i}: {run:?}");
        assert!(pids.insert(run.pid), "pid {} reused", run.pid);
        for (proto, port) in &run.registered {
            assert_eq!(*port, STATD_PORT, "run {i}: status on {port}/{proto}");
        }
        let listeners = run.sockets.iter().filter(|s| s.1 == STATD_PORT).count();
        assert_eq!(listeners, 4, "run {i}: udp, tcp, udp6, tcp6: {run:?}");
        for (proto, port) in &run.sockets {
            assert!(!services.contains(port), "run {i}: {port}/{proto} is named");
            let in_pool = if proto == "tcp" { &pool.tcp } else { &pool.udp };
            // Not a listener: statd's socket to lockd on 127.0.0.1, from
            // bindresvport() under the managed blacklist: a pool port.
            assert!(
                *port == STATD_PORT || in_pool.contains(port),
                "run {i}: {port}/{proto} is neither reserved nor in the pool"
            );
        }
    }
}

#[test]
fn without_the_dropin_statd_listens_on_ephemeral_ports() {
    let test = "without_the_dropin_statd_listens_on_ephemeral_ports";
    if skip_without_statd(test) {
        return;
    }
    let ns = Namespace::new();
    let _daemon = start_with(&ns, "");
    statd_state_dir(&ns);
    let range = ns
        .run(
            "cat",
            &["/proc/sys/net/ipv4/ip_local_port_range"],
            RUN_TIMEOUT,
        )
        .stdout;
    let bounds: Vec<u16> = range
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    let ephemeral = bounds[0]..=bounds[1];
    let run = run_statd(&ns);
    eprintln!("control run (no nfs.conf ports): {run:?}");
    for (proto, port) in &run.registered {
        assert!(
            ephemeral.contains(port),
            "status {port}/{proto} outside the ephemeral range {range}"
        );
    }
    let high = run.sockets.iter().filter(|s| ephemeral.contains(&s.1));
    assert_eq!(high.count(), 4, "four ephemeral listeners: {run:?}");
}
