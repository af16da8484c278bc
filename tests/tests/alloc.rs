//! End-to-end: the allocation service of our rpcbind (PORTALLOC on the
//! local socket), driven by the real `portpolicy exec` / `leases` /
//! `release` commands and the `binder` helper, in private namespaces.
//! Each test writes its own policy to the namespace's /run and points the
//! daemon's state there (`--policy-config`, `--alloc-state`).

use e2e::reserved::{assert_bindresvport_avoids, assert_cannot_bind, binder};
use e2e::{binary, require_root, Impl, Namespace, Rpcbind};
use std::collections::BTreeSet;
use std::thread;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);
const STATE: &str = "/run/portalloc/pa.state";
const CONFIG: &str = "/run/alloc-policy.toml";

/// Our daemon with `config` as its policy.
fn start<'ns>(ns: &'ns Namespace, config: &str) -> Rpcbind<'ns> {
    std::fs::write(ns.host_path(CONFIG), config).expect("write policy");
    Rpcbind::start(
        ns,
        Impl::Ours,
        &["--policy-config", CONFIG, "--alloc-state", STATE],
    )
}

fn portpolicy() -> String {
    binary("portpolicy").display().to_string()
}

fn leases(ns: &Namespace) -> String {
    let out = ns.run(&portpolicy(), &["leases"], T);
    out.assert_success("portpolicy leases");
    out.stdout
}

/// `ss` lines of listening TCP sockets, with their processes.
fn listening(ns: &Namespace) -> String {
    ns.run("ss", &["-Hltnp"], T).stdout
}

/// The port `pid` holds as descriptor 3 in listening state, if any.
fn fd3_port(ss: &str, pid: u32) -> Option<u16> {
    let needle = format!("pid={pid},fd=3)");
    ss.lines().filter(|l| l.contains(&needle)).find_map(|l| {
        let local = l.split_whitespace().nth(3)?;
        local.rsplit(':').next()?.parse().ok()
    })
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(50));
    }
}

/// 24000-24039 names no /etc/services entry: a pool of exactly 40.
const POOL40: &str = "mode = \"high\"\nhigh_range = \"24000-24039\"\n";

#[test]
fn forty_concurrent_execs_get_forty_listening_pool_ports_and_sigkill_returns_one() {
    if !require_root("alloc forty") {
        return;
    }
    let ns = Namespace::new();
    let _d = start(&ns, POOL40);
    let pool: Vec<u16> = ns
        .run(
            &portpolicy(),
            &[
                "--config",
                &ns.host_path(CONFIG).display().to_string(),
                "pool",
            ],
            T,
        )
        .stdout
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    assert_eq!(pool.len(), 40, "the test's pool: {pool:?}");
    let pp = portpolicy();
    let mut procs: Vec<_> = (0..40)
        .map(|_| ns.spawn(&pp, &["exec", "--pool", "--tcp", "--", "sleep", "60"]))
        .collect();
    let mut ports = BTreeSet::new();
    wait_until("40 listeners at fd 3", T, || {
        let ss = listening(&ns);
        ports = procs
            .iter()
            .filter_map(|p| fd3_port(&ss, p.pid()))
            .collect();
        ports.len() == 40
    });
    assert!(ports.iter().all(|p| pool.contains(p)), "{ports:?}");
    // The pool is empty now: a clear refusal.
    let full = ns.run(&pp, &["exec", "--pool", "--tcp", "--", "true"], T);
    assert_ne!(full.code(), 0);
    assert!(full.stderr.contains("exhausted"), "{}", full.stderr);
    // SIGKILL one holder: its port goes back and is the one handed next.
    let victim = procs.remove(7);
    let freed = fd3_port(&listening(&ns), victim.pid()).expect("victim port");
    let mut victim = victim;
    victim
        .signal_and_wait(libc::SIGKILL, T)
        .expect("victim dies");
    wait_until("the lease to end", T, || {
        !leases(&ns)
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some(&freed.to_string()))
    });
    let again = ns.spawn(&pp, &["exec", "--pool", "--tcp", "--", "sleep", "60"]);
    wait_until("the freed port handed again", T, || {
        fd3_port(&listening(&ns), again.pid()) == Some(freed)
    });
}

/// A reservation of 900 (tcp and udp) that only root may claim.
const RESERVED: &str = "mode = \"privileged\"\n\n[allocation]\nquota = 2\n\n\
    [[reservation]]\nname = \"svc\"\nport = 900\nprotocol = \"both\"\n";

#[test]
fn a_held_reservation_blocks_every_kind_of_bind() {
    if !require_root("alloc reservation blocks") {
        return;
    }
    let ns = Namespace::new();
    let _d = start(&ns, RESERVED);
    assert_cannot_bind(&ns, 900, "");
    // The kernel NFS client's way, starting right at the reserved port.
    let nfs = binder(&ns, &["nfs", "900"]);
    assert_eq!(nfs.stdout.trim(), "bound 899", "{nfs:?}");
    // bindresvport(): every port of its range taken in turn, never 900.
    assert_bindresvport_avoids(&ns, 900, "");
}

#[test]
fn a_restarted_service_claims_the_same_port_while_a_binder_races() {
    if !require_root("alloc restart race") {
        return;
    }
    let ns = Namespace::new();
    let _d = start(&ns, RESERVED);
    let mut racer = ns.spawn(binary("binder"), &["race", "900", "6000"]);
    let pp = portpolicy();
    for round in 0..10 {
        let script = "ss -Hltnp 'sport = :900' | grep -q \"pid=$$,fd=3\"";
        let out = ns.run(
            &pp,
            &["exec", "--name", "svc", "--tcp", "--", "sh", "-c", script],
            T,
        );
        out.assert_success(&format!(
            "round {round}: claimed socket listening on 900 at fd 3"
        ));
    }
    racer.wait_timeout(T).expect("racer ends");
    let report = racer.stdout();
    let mut words = report.split_whitespace();
    let attempts: u64 = words.nth(1).and_then(|w| w.parse().ok()).expect("attempts");
    assert!(attempts > 100, "{report}");
    assert!(
        report.trim().ends_with("bound 0"),
        "the racer got the port: {report}"
    );
}

#[test]
fn unauthorised_claim_quota_and_privileged_ports_are_refused_clearly() {
    if !require_root("alloc refusals") {
        return;
    }
    let ns = Namespace::new();
    let _d = start(
        &ns,
        &format!(
            "{POOL40}\n[allocation]\nquota = 2\n\n[[reservation]]\nname = \"svc\"\nport = 900\n"
        ),
    );
    let pp = portpolicy();
    let claim = ns.run_as_nobody(&pp, &["exec", "--name", "svc", "--tcp", "--", "true"], T);
    assert_ne!(claim.code(), 0);
    assert!(
        claim.stderr.contains("permission denied") && claim.stderr.contains("svc"),
        "{}",
        claim.stderr
    );
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = ns.command_as_nobody(&pp);
        c.args(["exec", "--pool", "--tcp", "--", "sleep", "30"]);
        held.push(ns.spawn_command(c));
    }
    wait_until("two leases of nobody", T, || {
        leases(&ns)
            .lines()
            .filter(|l| l.contains(" 65534 "))
            .count()
            == 2
    });
    let third = ns.run_as_nobody(&pp, &["exec", "--pool", "--tcp", "--", "true"], T);
    assert_ne!(third.code(), 0);
    assert!(third.stderr.contains("quota"), "{}", third.stderr);
    let low = ns.run_as_nobody(&pp, &["exec", "--port", "700", "--tcp", "--", "true"], T);
    assert_ne!(low.code(), 0, "{low:?}");
}

#[test]
fn leases_and_reservations_survive_kill_9_of_the_daemon() {
    if !require_root("alloc kill -9") {
        return;
    }
    let ns = Namespace::new();
    let config = format!("{POOL40}\n[[reservation]]\nname = \"svc\"\nport = 900\n");
    let mut d = start(&ns, &config);
    let pp = portpolicy();
    let holder = ns.spawn(
        &pp,
        &[
            "exec",
            "--pool",
            "--tcp",
            "--register",
            "400100:1",
            "--",
            "sleep",
            "60",
        ],
    );
    let mut port = None;
    wait_until("the lease", T, || {
        port = fd3_port(&listening(&ns), holder.pid());
        port.is_some()
    });
    let port = port.expect("port").to_string();
    let lease_rows = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| {
                l.split_whitespace()
                    .next()
                    .is_some_and(|w| w.parse::<u64>().is_ok())
            })
            .map(str::to_owned)
            .collect()
    };
    let before = lease_rows(&leases(&ns));
    assert_eq!(before.len(), 1, "{before:?}");
    d.process
        .signal_and_wait(libc::SIGKILL, T)
        .expect("daemon killed");
    // Our leftovers (socket file, lock) do not stop a restart.
    let _ = std::fs::remove_file(ns.host_path("/run/rpcbind.sock"));
    let _d2 = start(&ns, &config);
    let after = leases(&ns);
    assert_eq!(
        lease_rows(&after),
        before,
        "the lease, before and after the restart"
    );
    assert!(before[0].contains(&port), "{before:?}");
    assert!(
        after
            .lines()
            .any(|l| l.contains("svc") && l.contains(" yes ")),
        "reservation held: {after}"
    );
    let rpcinfo = ns.run("rpcinfo", &["-p"], T).stdout;
    assert!(
        rpcinfo
            .lines()
            .any(|l| l.contains("400100") && l.contains(&port)),
        "registration restored: {rpcinfo}"
    );
    let ss = ns.run("ss", &["-Hltnp", "sport = :900"], T).stdout;
    assert!(ss.contains("rpcbind"), "reservation held again: {ss}");
}

#[test]
fn the_service_is_not_on_the_network_and_not_in_the_table() {
    if !require_root("alloc not on network") {
        return;
    }
    let outputs = |which: Impl| {
        let ns = Namespace::new();
        let _d = Rpcbind::start(&ns, which, &[]);
        let mut v = Vec::new();
        for t in ["udp", "tcp"] {
            let out = ns.run("rpcinfo", &["-T", t, "127.0.0.1", "536871185", "1"], T);
            v.push((out.code(), out.stdout, out.stderr));
        }
        v.push((0, ns.run("rpcinfo", &["-p"], T).stdout, String::new()));
        v
    };
    if !Impl::Reference.available() {
        e2e::skip_note("skipping: the C rpcbind is not installed");
        return;
    }
    assert_eq!(outputs(Impl::Ours), outputs(Impl::Reference));
}

#[test]
fn a_lease_outlives_its_owner_while_a_child_still_has_the_socket() {
    if !require_root("alloc orphan") {
        return;
    }
    let ns = Namespace::new();
    let _d = start(&ns, POOL40);
    // The exec'd shell leaves a child holding fd 3 and exits.
    let out = ns.run(
        &portpolicy(),
        &[
            "exec",
            "--pool",
            "--tcp",
            "--register",
            "400200:1",
            "--",
            "sh",
            "-c",
            "sleep 30 & echo $!",
        ],
        T,
    );
    out.assert_success("exec");
    let child: i32 = out.stdout.trim().parse().expect("child pid");
    let row = |text: &str| {
        text.lines()
            .find(|l| l.contains(" tcp "))
            .map(str::to_owned)
    };
    thread::sleep(Duration::from_secs(3));
    let orphan = row(&leases(&ns)).expect("the lease is kept while its port is bound");
    assert_eq!(
        orphan.split_whitespace().nth(4),
        Some("-"),
        "owner gone: {orphan}"
    );
    let registered = || {
        let out = ns.run("rpcinfo", &["-p"], T).stdout;
        out.lines().any(|l| l.contains("400200"))
    };
    assert!(registered(), "registered while the lease lasts");
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child),
        nix::sys::signal::Signal::SIGKILL,
    );
    wait_until("the orphan lease to end", T, || row(&leases(&ns)).is_none());
    assert!(!registered(), "registration removed with the lease");
}

#[test]
fn release_name_lets_go_of_a_reservation_for_good() {
    if !require_root("alloc release name") {
        return;
    }
    let ns = Namespace::new();
    let mut d = start(&ns, RESERVED);
    let pp = portpolicy();
    let nobody = ns.run_as_nobody(&pp, &["release", "svc"], T);
    assert_ne!(nobody.code(), 0, "{nobody:?}");
    assert_eq!(
        binder(&ns, &["try", "tcp", "4", "900", "plain"])
            .stdout
            .trim(),
        "error EADDRINUSE"
    );
    ns.run(&pp, &["release", "svc"], T)
        .assert_success("release svc");
    assert_eq!(
        binder(&ns, &["try", "tcp", "4", "900", "plain"])
            .stdout
            .trim(),
        "bound 900"
    );
    assert_eq!(
        binder(&ns, &["try", "udp", "6", "900", "plain"])
            .stdout
            .trim(),
        "bound 900"
    );
    // Still released after a restart: the daemon does not take it back.
    d.terminate().expect("daemon exits");
    let _d2 = start(&ns, RESERVED);
    assert_eq!(
        binder(&ns, &["try", "tcp", "4", "900", "plain"])
            .stdout
            .trim(),
        "bound 900"
    );
}

#[test]
fn a_live_owner_that_closed_its_sockets_gives_its_ports_back() {
    if !require_root("alloc live sweep") {
        return;
    }
    let ns = Namespace::new();
    std::fs::write(ns.host_path(CONFIG), POOL40).expect("write policy");
    let _d = Rpcbind::start(
        &ns,
        Impl::Ours,
        &[
            "--policy-config",
            CONFIG,
            "--alloc-state",
            STATE,
            "--alloc-sweep",
            "300",
        ],
    );
    let pp = portpolicy();
    let exec = |proto: &str, reg: &str, script: &str| {
        let args = [
            "exec",
            "--pool",
            proto,
            "--register",
            reg,
            "--",
            "sh",
            "-c",
            script,
        ];
        ns.spawn(&pp, &args)
    };
    // Same process (exec keeps the pid) before and after the close.
    let closer_udp = exec("--udp", "400300:1", "exec 3>&-; exec sleep 60");
    let closer_tcp = exec("--tcp", "400301:1", "exec 3>&-; exec sleep 60");
    let keeper = exec("--udp", "400302:1", "exec sleep 60");
    let pids = [closer_udp.pid(), closer_tcp.pid(), keeper.pid()];
    let owned_by = |text: &str, pid: u32| {
        text.lines()
            .any(|l| l.split_whitespace().nth(4) == Some(&pid.to_string()))
    };
    wait_until("three leases", T, || {
        let l = leases(&ns);
        pids.iter().all(|p| owned_by(&l, *p))
    });
    let registered = |prog: &str| {
        let out = ns.run("rpcinfo", &["-p"], T).stdout;
        out.lines().any(|l| l.contains(prog))
    };
    assert!(registered("400300") && registered("400302"));
    // The owners are alive throughout: only their sockets are gone.
    wait_until("the closed sockets' leases to end", T, || {
        let l = leases(&ns);
        !owned_by(&l, pids[0]) && !owned_by(&l, pids[1])
    });
    for p in pids {
        assert!(
            std::path::Path::new(&format!("/proc/{p}")).exists(),
            "owner {p} still alive"
        );
    }
    assert!(
        !registered("400300") && !registered("400301"),
        "registrations go with them"
    );
    // Several sweeps later, the lease whose socket is open stands.
    thread::sleep(Duration::from_millis(1500));
    assert!(
        owned_by(&leases(&ns), pids[2]),
        "a bound port keeps its lease"
    );
    assert!(registered("400302"));
}

#[test]
fn kill_9_during_allocations_loses_no_acknowledged_lease() {
    if !require_root("alloc kill -9 mid-run") {
        return;
    }
    let ns = Namespace::new();
    let config = "mode = \"high\"\nhigh_range = \"24000-29999\"\n";
    let mut d = start(&ns, config);
    let daemon = d.process.pid() as i32;
    let killer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(400));
        // SAFETY: a signal to the daemon this test started.
        unsafe { libc::kill(daemon, libc::SIGKILL) };
    });
    // Allocate until the daemon dies; the sockets stay open, so every
    // lease stays bound by its (live) owner.
    let (acked, _fds) = ns.in_netns(|| {
        use portalloc::{AllocRequest, Client, Family, Socktype};
        let mut client = Client::connect().expect("connect");
        client
            .set_timeout(Duration::from_secs(10))
            .expect("timeout");
        let req = AllocRequest::pool(Family::Inet, Socktype::Dgram);
        let (mut acked, mut fds) = (Vec::new(), Vec::new());
        for _ in 0..5000 {
            match client.alloc(&req) {
                Ok(grant) => {
                    acked.push(grant.lease_id);
                    fds.push(grant.fd);
                }
                Err(_) => break,
            }
        }
        (acked, fds)
    });
    killer.join().expect("killer");
    assert!(
        !acked.is_empty() && acked.len() < 5000,
        "killed mid-run after {} grants",
        acked.len()
    );
    d.process
        .signal_and_wait(libc::SIGKILL, T)
        .expect("daemon killed");
    let _ = std::fs::remove_file(ns.host_path("/run/rpcbind.sock"));
    let _d2 = start(&ns, config);
    let listed: BTreeSet<u64> = leases(&ns)
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    let lost: Vec<u64> = acked
        .iter()
        .filter(|id| !listed.contains(id))
        .copied()
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged leases lost: {lost:?}",
        lost.len(),
        acked.len()
    );
}
