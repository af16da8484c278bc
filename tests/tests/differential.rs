//! Differential tests: the same sequence of real-client invocations
//! (Debian's rpcinfo, rpc.statd, and the harness's rpcclient for calls
//! rpcinfo cannot make) against Debian's C rpcbind and against ours, each
//! in a fresh namespace; the normalised transcripts must be equal, step by
//! step. Normalisation: only the row order of `rpcinfo -m` call-statistics
//! tables (hash order in the C daemon). Skipped when either is missing.
//! `E2E_DIFFERENTIAL_SELF=1` runs the reference twice instead (checks that
//! each script is deterministic); `E2E_SHOW=1` prints the reference transcript.

use std::time::Duration;

use e2e::normalise::sort_stat_tables;
use e2e::services::Statd;
use e2e::{require_root, rpcclient, Impl, Namespace, Rpcbind, RunOutput};

const T: Duration = Duration::from_secs(10);

/// What each step printed, in order.
#[derive(Debug, Default)]
struct Transcript(Vec<(String, String)>);

impl Transcript {
    fn record(&mut self, step: String, out: &RunOutput) {
        // One hung step would make every later one wait too: stop here.
        assert!(
            !out.timed_out,
            "$ {step}: timed out (stderr: {})",
            out.stderr
        );
        let text = format!(
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            out.code(),
            out.stdout,
            out.stderr
        );
        self.0.push((step, text));
    }

    fn rpcinfo(&mut self, ns: &Namespace, args: &[&str]) {
        let out = ns.run("rpcinfo", args, T);
        self.record(format!("rpcinfo {}", args.join(" ")), &out);
    }

    fn rpcinfo_as_nobody(&mut self, ns: &Namespace, args: &[&str]) {
        let out = ns.run_as_nobody("rpcinfo", args, T);
        self.record(format!("(nobody) rpcinfo {}", args.join(" ")), &out);
    }

    fn stats(&mut self, ns: &Namespace) {
        let mut out = ns.run("rpcinfo", &["-m"], T);
        out.stdout = sort_stat_tables(&out.stdout);
        self.record("rpcinfo -m (stat rows sorted)".into(), &out);
    }

    fn client(&mut self, ns: &Namespace, nobody: bool, args: &[&str]) {
        let mut c = if nobody {
            ns.command_as_nobody(rpcclient())
        } else {
            ns.command(rpcclient())
        };
        c.args(args);
        let out = e2e::run_with_timeout(c, T);
        let who = if nobody { "(nobody) " } else { "" };
        self.record(format!("{who}rpcclient {}", args.join(" ")), &out);
    }
}

fn compare(test: &str, script: fn(&Namespace, &mut Transcript)) {
    compare_runs(test, |which| {
        let ns = Namespace::new();
        let _d = Rpcbind::start(&ns, which, &[]);
        let mut t = Transcript::default();
        script(&ns, &mut t);
        t
    });
}

/// Like `compare`, with a second namespace (the "remote" peer, 192.0.2.2)
/// joined to the daemon's (192.0.2.1) by a veth pair.
fn compare_remote(test: &str, script: fn(&Namespace, &Namespace, &mut Transcript)) {
    compare_runs(test, |which| {
        let server = Namespace::new();
        let peer = Namespace::new();
        Namespace::veth_pair(&server, &peer, "192.0.2.1/24", "192.0.2.2/24");
        for (ns, dev, addr) in [
            (&server, "veth-a", "2001:db8::1/64"),
            (&peer, "veth-b", "2001:db8::2/64"),
        ] {
            ns.run("ip", &["-6", "addr", "add", addr, "dev", dev, "nodad"], T)
                .assert_success("ip -6 addr add (veth)");
        }
        let _d = Rpcbind::start(&server, which, &[]);
        let mut t = Transcript::default();
        script(&server, &peer, &mut t);
        t
    });
}

fn compare_runs(test: &str, run: impl Fn(Impl) -> Transcript) {
    if !require_root(test) {
        return;
    }
    if !Impl::Reference.available() {
        e2e::skip_note(&format!(
            "skipping {test}: the C reference rpcbind is not installed"
        ));
        return;
    }
    // E2E_DIFFERENTIAL_SELF=1 compares the reference with itself: a check
    // that a script's transcript is deterministic.
    let second = match std::env::var_os("E2E_DIFFERENTIAL_SELF") {
        Some(_) => Impl::Reference,
        None => Impl::Ours,
    };
    let reference = run(Impl::Reference);
    let ours = run(second);
    if std::env::var_os("E2E_SHOW").is_some() {
        for (s, o) in &reference.0 {
            eprintln!("$ {s}\n{o}");
        }
    }
    assert_eq!(reference.0.len(), ours.0.len());
    let mut diffs = Vec::new();
    for ((step, want), (_, got)) in reference.0.iter().zip(&ours.0) {
        if want != got {
            diffs.push(format!("$ {step}\n[reference]\n{want}[ours]\n{got}"));
        }
    }
    assert!(
        diffs.is_empty(),
        "{test}: {} of {} steps differ:\n\n{}",
        diffs.len(),
        reference.0.len(),
        diffs.join("\n")
    );
}

const UNIX: &str = "unix:/run/rpcbind.sock";

/// The daemon alone: listings, pings over each netid, errors, statistics.
fn own_registrations(ns: &Namespace, t: &mut Transcript) {
    for args in [
        &[][..],
        &["-s"],
        &["-p"],
        &["127.0.0.1"],
        &["-s", "::1"],
        &["-p", "127.0.0.1"],
    ] {
        t.rpcinfo(ns, args);
    }
    for (netid, host) in [
        ("udp", "127.0.0.1"),
        ("tcp", "127.0.0.1"),
        ("udp6", "::1"),
        ("tcp6", "::1"),
    ] {
        t.rpcinfo(ns, &["-T", netid, host, "100000"]);
        for v in ["2", "3", "4", "5"] {
            t.rpcinfo(ns, &["-T", netid, host, "100000", v]);
        }
        t.rpcinfo(ns, &["-T", netid, host, "100003"]);
        t.rpcinfo(ns, &["-T", netid, host]);
        t.rpcinfo(ns, &["-T", netid, "-s", host]);
        t.rpcinfo(ns, &["-T", netid, "-m", host]);
    }
    for v in ["1", "2", "3", "4"] {
        t.rpcinfo(ns, &["-l", "127.0.0.1", "100000", v]);
        t.rpcinfo(ns, &["-l", "::1", "100000", v]);
    }
    for flag in ["-t", "-u"] {
        t.rpcinfo(ns, &[flag, "127.0.0.1", "100000"]);
        t.rpcinfo(ns, &[flag, "127.0.0.1", "100003"]);
        t.rpcinfo(ns, &[flag, "127.0.0.1", "100000", "7"]);
        t.rpcinfo(ns, &["-n", "111", flag, "127.0.0.1", "100000", "2"]);
    }
    t.rpcinfo(ns, &["-a", "127.0.0.1.0.111", "-T", "udp", "100000", "2"]);
    t.rpcinfo(ns, &["-a", "::1.0.111", "-T", "tcp6", "100000"]);
    t.rpcinfo(ns, &["-d", "100003", "1"]);
    // An unprivileged client: no reserved source port, another uid.
    for args in [
        &[][..],
        &["-s"],
        &["-p"],
        &["-p", "127.0.0.1"],
        &["-T", "udp", "127.0.0.1", "100000"],
    ] {
        t.rpcinfo_as_nobody(ns, args);
    }
    t.rpcinfo_as_nobody(ns, &["-d", "100000", "2"]);
    t.stats(ns);
}

/// Registrations by several callers over several transports, lookups,
/// and removals.
fn registrations(ns: &Namespace, t: &mut Transcript) {
    t.client(
        ns,
        false,
        &[UNIX, "set", "200000", "1", "udp", "0.0.0.0.4.1", "x"],
    );
    t.client(
        ns,
        false,
        &[UNIX, "set", "200000", "1", "udp", "0.0.0.0.4.2", "x"],
    );
    t.client(
        ns,
        false,
        &[UNIX, "set", "200000", "1", "tcp", "127.0.0.1.4.1", "x"],
    );
    t.client(
        ns,
        true,
        &[UNIX, "set", "200000", "2", "udp6", "::.4.3", "x"],
    );
    t.client(
        ns,
        true,
        &[UNIX, "set", "200001", "1", "tcp6", "::1.4.4", "x"],
    );
    t.client(
        ns,
        false,
        &[
            "udp:127.0.0.1:111",
            "set",
            "200002",
            "1",
            "udp",
            "0.0.0.0.4.5",
            "",
        ],
    );
    t.client(
        ns,
        false,
        &["tcp:[::1]:111", "set", "200002", "1", "tcp6", "::.4.5", ""],
    );
    t.client(
        ns,
        false,
        &["udp:127.0.0.1:111", "pmap-set", "200003", "1", "17", "1030"],
    );
    t.client(
        ns,
        false,
        &["udp:127.0.0.1:111", "pmap-set", "200003", "1", "6", "1031"],
    );
    t.client(
        ns,
        false,
        &["udp:127.0.0.1:111", "pmap-set", "200003", "1", "6", "1032"],
    );
    t.rpcinfo(ns, &[]);
    t.rpcinfo(ns, &["-s"]);
    t.rpcinfo(ns, &["-p"]);
    for target in [
        UNIX,
        "udp:127.0.0.1:111",
        "tcp:127.0.0.1:111",
        "udp:[::1]:111",
    ] {
        for vers in ["3", "4"] {
            for (prog, pv, netid) in [
                ("200000", "1", "udp"),
                ("200000", "1", "tcp"),
                ("200000", "2", "udp6"),
                ("200001", "1", "tcp6"),
                ("200003", "1", "tcp"),
                ("200000", "9", "udp"),
                ("200009", "1", "udp"),
            ] {
                t.client(ns, false, &[target, "getaddr", vers, prog, pv, netid]);
            }
        }
        t.client(ns, false, &[target, "pmap-getport", "200000", "1", "17"]);
        t.client(ns, false, &[target, "pmap-getport", "200001", "1", "6"]);
    }
    t.rpcinfo(ns, &["-l", "127.0.0.1", "200000", "1"]);
    t.rpcinfo(ns, &["-l", "::1", "200000", "2"]);
    t.rpcinfo_as_nobody(ns, &["-d", "200000", "1"]);
    t.client(ns, true, &[UNIX, "unset", "200000", "2", "udp6"]);
    t.client(ns, false, &[UNIX, "unset", "200009", "1", "udp"]);
    t.client(
        ns,
        false,
        &["udp:127.0.0.1:111", "pmap-unset", "200003", "1"],
    );
    t.rpcinfo(ns, &["-d", "200001", "1"]);
    t.rpcinfo(ns, &[]);
    t.rpcinfo(ns, &["-p"]);
    t.stats(ns);
}

/// rpc.statd registered: lookups of a real service in every client mode.
fn registered_service(ns: &Namespace, t: &mut Transcript) {
    let _statd = Statd::start(ns);
    for args in [
        &[][..],
        &["-s"],
        &["-p"],
        &["-p", "127.0.0.1"],
        &["-t", "127.0.0.1", "status"],
        &["-u", "127.0.0.1", "100024", "1"],
        &["-u", "127.0.0.1", "100024", "2"],
        &["-T", "tcp6", "::1", "100024"],
        &["-T", "udp6", "::1", "100024", "1"],
        &["-l", "127.0.0.1", "100024", "1"],
        &["-l", "::1", "100024", "1"],
        &["-a", "127.0.0.1.127.253", "-T", "udp", "100024", "1"],
        &["-n", "32765", "-t", "127.0.0.1", "100024", "1"],
        &["-d", "100024", "1"],
        &["-s"],
        &["-t", "127.0.0.1", "100024"],
    ] {
        t.rpcinfo(ns, args);
    }
}

#[test]
fn differential_own_registrations() {
    compare("differential_own_registrations", own_registrations);
}

#[test]
fn differential_registrations() {
    compare("differential_registrations", registrations);
}

#[test]
fn differential_registered_service() {
    compare("differential_registered_service", registered_service);
}

/// What another host sees: rpcinfo and raw calls from the veth peer.
fn remote_view(server: &Namespace, peer: &Namespace, t: &mut Transcript) {
    for (netid, uaddr) in [
        ("udp", "0.0.0.0.4.1"),
        ("tcp", "0.0.0.0.4.1"),
        ("udp6", "::.4.1"),
        ("tcp6", "::.4.1"),
    ] {
        t.client(
            server,
            false,
            &[UNIX, "set", "300000", "1", netid, uaddr, ""],
        );
    }
    t.client(
        server,
        false,
        &[UNIX, "set", "300001", "1", "udp", "127.0.0.1.4.2", ""],
    );
    t.client(
        server,
        false,
        &[UNIX, "set", "300002", "1", "tcp", "192.0.2.1.4.3", ""],
    );
    let host = "192.0.2.1";
    for args in [
        &[host][..],
        &["-s", host],
        &["-p", host],
        &["-T", "udp", host, "100000"],
        &["-T", "tcp", host, "100000"],
        &["-T", "tcp", "-s", host],
        &["-l", host, "100000", "2"],
        &["-l", host, "300000", "1"],
        &["-l", host, "300001", "1"],
        &["-l", host, "300002", "1"],
        &["-u", host, "100000", "2"],
        &["-t", host, "100000"],
        &["-a", "192.0.2.1.0.111", "-T", "udp", "100000", "2"],
        &["-u", host, "300000", "1"],
        &["-m", host],
    ] {
        t.rpcinfo(peer, args);
    }
    for target in ["udp:192.0.2.1:111", "tcp:192.0.2.1:111"] {
        for vers in ["3", "4"] {
            for (prog, netid) in [
                ("300000", "udp"),
                ("300000", "tcp"),
                ("300000", "udp6"),
                ("300001", "udp"),
                ("300002", "tcp"),
            ] {
                t.client(peer, false, &[target, "getaddr", vers, prog, "1", netid]);
            }
        }
        t.client(peer, false, &[target, "pmap-getport", "300001", "1", "17"]);
        t.client(
            peer,
            false,
            &[target, "set", "300009", "1", "udp", "0.0.0.0.4.9", ""],
        );
        t.client(peer, false, &[target, "unset", "300000", "1", "udp"]);
        t.client(peer, false, &[target, "pmap-set", "300009", "1", "17", "9"]);
        t.client(peer, false, &[target, "pmap-unset", "300000", "1"]);
    }
    for args in [
        &["2001:db8::1"][..],
        &["-T", "udp6", "2001:db8::1", "100000"],
        &["-T", "tcp6", "-s", "2001:db8::1"],
        &["-l", "2001:db8::1", "300000", "1"],
        &["-l", "2001:db8::1", "100000", "4"],
    ] {
        t.rpcinfo(peer, args);
    }
    for target in ["udp:[2001:db8::1]:111", "tcp:[2001:db8::1]:111"] {
        for (prog, netid) in [
            ("300000", "udp6"),
            ("300000", "tcp6"),
            ("300000", "udp"),
            ("300002", "tcp"),
        ] {
            t.client(peer, false, &[target, "getaddr", "4", prog, "1", netid]);
        }
        t.client(
            peer,
            false,
            &[target, "set", "300009", "1", "udp6", "::.4.9", ""],
        );
    }
    t.rpcinfo(server, &["-s"]);
}

#[test]
fn differential_remote_view() {
    compare_remote("differential_remote_view", remote_view);
}

/// /etc/services inside the namespace naming `sunrpc` on port 1111.
fn services_with_sunrpc_port(port: u16) -> String {
    let services = std::fs::read_to_string("/etc/services").expect("/etc/services");
    services
        .lines()
        .map(|l| {
            if l.starts_with("sunrpc") {
                l.replace("111/", &format!("{port}/"))
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The daemon takes its port from /etc/services (`sunrpc`).
#[test]
fn differential_port_from_etc_services() {
    compare_runs("differential_port_from_etc_services", |which| {
        let ns = Namespace::new();
        ns.overlay_file("/etc/services", &services_with_sunrpc_port(1111));
        let _d = Rpcbind::start_on(&ns, which, &[], 1111);
        let mut t = Transcript::default();
        let mut ss = ns.run("ss", &["-Hlntu"], T);
        ss.stdout = e2e::normalise::sort_body(&ss.stdout, 0);
        t.record("ss -Hlntu (sorted)".into(), &ss);
        // Not `rpcinfo -p`: C's PMAP list always says 111 (pmap_svc.c uses
        // PMAPPORT) whatever port it listens on; ours gives the real port
        // (`port_from_etc_services_in_the_pmap_list` below).
        for args in [
            &[][..],
            &["-T", "udp", "127.0.0.1", "100000"],
            &["-T", "tcp6", "::1", "100000", "4"],
            &["-n", "1111", "-u", "127.0.0.1", "100000", "2"],
        ] {
            t.rpcinfo(&ns, args);
        }
        t
    });
}

/// Ours lists the port it really listens on in the PMAP list (C says 111
/// whatever its port: a deliberate difference, rpcbind/README.md).
#[test]
fn port_from_etc_services_in_the_pmap_list() {
    let test = "port_from_etc_services_in_the_pmap_list";
    if !require_root(test) {
        return;
    }
    let ns = Namespace::new();
    ns.overlay_file("/etc/services", &services_with_sunrpc_port(1111));
    let _d = Rpcbind::start_on(&ns, Impl::Ours, &[], 1111);
    let out = ns.run("rpcinfo", &["-p", "127.0.0.1"], T);
    out.assert_success("rpcinfo -p");
    let ports: Vec<&str> = out
        .stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(3))
        .collect();
    assert_eq!(ports, ["1111"; 6], "{}", out.stdout);
}
