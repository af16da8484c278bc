//! libtirpc servers and clients (the C programs in `tests/c/`) against
//! both daemons: `svc_create`/`svc_tp_create` registration and
//! `svc_unreg`, `rpcb_getaddr`, `rpcb_getmaps`, `rpcb_gettime`,
//! `rpcb_uaddr2taddr`/`rpcb_taddr2uaddr`, `clnt_create` by netid and by
//! nettype, `rpcb_set`/`rpcb_unset` and the `pmap_*` calls. Each case runs
//! once per daemon (`name::reference`, `name::ours`); the `differential_*`
//! tests run the same client script against both and compare outputs.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use e2e::{
    cases, cprog, normalise, run_with_timeout, Background, Impl, Namespace, Rpcbind, RunOutput,
};

const T: Duration = Duration::from_secs(10);
/// The test program served by `rpcserver` (its default).
const PROG: &str = "536871065"; // 0x20000099
const NETIDS: [&str; 4] = ["udp", "tcp", "udp6", "tcp6"];

/// The two C programs, or `None` when they cannot be built (reason printed).
fn progs() -> Option<(PathBuf, PathBuf)> {
    Some((cprog::build("rpcserver")?, cprog::build("rpcbclient")?))
}

fn client(ns: &Namespace, bin: &PathBuf, args: &[&str]) -> RunOutput {
    let mut c = ns.command(bin);
    c.args(args);
    run_with_timeout(c, T)
}

/// The `key` lines of an output, without the key.
fn values<'a>(out: &'a RunOutput, key: &str) -> Vec<&'a str> {
    out.stdout
        .lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
        .collect()
}

/// A running `rpcserver`, with the transports it printed.
struct Server {
    process: Background,
    /// (netid, uaddr) per transport it listens on.
    transports: Vec<(String, String)>,
}

impl Server {
    fn start(ns: &Namespace, cmd: Command) -> Server {
        let mut process = ns.spawn_command(cmd);
        let deadline = Instant::now() + T;
        while !process.stdout().lines().any(|l| l == "ready") {
            if let Some(status) = process.try_wait() {
                panic!(
                    "rpcserver exited ({status}):\n{}\n{}",
                    process.stdout(),
                    process.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "rpcserver not ready: {}",
                process.stdout()
            );
            thread::sleep(Duration::from_millis(20));
        }
        let transports = process
            .stdout()
            .lines()
            .filter_map(|l| {
                let mut w = l.strip_prefix("transport ")?.split(' ');
                Some((w.next()?.to_string(), w.next()?.to_string()))
            })
            .collect();
        Server {
            process,
            transports,
        }
    }

    fn uaddr(&self, netid: &str) -> &str {
        self.transports
            .iter()
            .find(|(n, _)| n == netid)
            .map(|(_, u)| u.as_str())
            .unwrap_or_else(|| panic!("server has no {netid} transport: {:?}", self.transports))
    }

    /// SIGTERM: the server unregisters and must exit 0.
    fn stop(&mut self) {
        let status = self
            .process
            .signal_and_wait(libc::SIGTERM, T)
            .expect("rpcserver did not exit on SIGTERM");
        assert!(
            status.success(),
            "rpcserver: {status}\n{}",
            self.process.stderr()
        );
        assert!(self.process.stdout().contains("unregistered"));
    }
}

fn server_cmd(ns: &Namespace, bin: &PathBuf, args: &[&str]) -> Command {
    let mut c = ns.command(bin);
    c.args(args);
    c
}

/// The rows of plain `rpcinfo` (local socket) for `prog`:
/// (version, netid, address, owner).
fn rpcinfo_rows(ns: &Namespace, prog: &str) -> BTreeSet<(String, String, String, String)> {
    let out = ns.run("rpcinfo", &[], T);
    out.assert_success("rpcinfo");
    out.stdout
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() == 6 && w[0] == prog)
                .then(|| (w[1].into(), w[2].into(), w[3].into(), w[5].into()))
        })
        .collect()
}

/// What `svc_create(.., "netpath")` of versions 1..=2 must have registered.
fn expected_rows(srv: &Server, owner: &str) -> BTreeSet<(String, String, String, String)> {
    let mut rows = BTreeSet::new();
    for vers in ["1", "2"] {
        for (netid, uaddr) in &srv.transports {
            rows.insert((vers.into(), netid.clone(), uaddr.clone(), owner.into()));
        }
    }
    rows
}

/// The uaddr `uaddr` (wildcard host) as a client reaching `host` sees it.
fn merged(uaddr: &str, host: &str) -> String {
    let port: Vec<&str> = uaddr.rsplitn(3, '.').take(2).collect();
    format!("{host}.{}.{}", port[1], port[0])
}

fn loopback(netid: &str) -> &'static str {
    if netid.ends_with('6') {
        "::1"
    } else {
        "127.0.0.1"
    }
}

cases! {
    fn svc_create_registers_every_netid_and_svc_unreg_removes(which) {
        let Some((server, _)) = progs() else { return };
        let ns = Namespace::new();
        let _d = Rpcbind::start(&ns, which, &[]);
        let mut srv = Server::start(&ns, server_cmd(&ns, &server, &["create", "netpath", PROG, "2"]));
        let netids: BTreeSet<&str> = srv.transports.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(netids, NETIDS.into_iter().collect(), "svc_create transports");
        assert_eq!(rpcinfo_rows(&ns, PROG), expected_rows(&srv, "superuser"));
        srv.stop();
        assert_eq!(rpcinfo_rows(&ns, PROG), BTreeSet::new(), "svc_unreg left entries");
    }

    fn svc_create_as_nobody_is_owned_by_uid(which) {
        let Some((server, _)) = progs() else { return };
        let ns = Namespace::new();
        let _d = Rpcbind::start(&ns, which, &[]);
        let mut cmd = ns.command_as_nobody(&server);
        cmd.args(["create", "visible", PROG, "2"]);
        let mut srv = Server::start(&ns, cmd);
        assert_eq!(rpcinfo_rows(&ns, PROG), expected_rows(&srv, "65534"));
        // svc_unreg by the owner (uid 65534) removes every netid.
        srv.stop();
        assert_eq!(rpcinfo_rows(&ns, PROG), BTreeSet::new());
    }

    fn rpcb_unset_by_owner_on_sigterm(which) {
        let Some((server, _)) = progs() else { return };
        let ns = Namespace::new();
        let _d = Rpcbind::start(&ns, which, &[]);
        let mut cmd = server_cmd(&ns, &server, &["create", "netpath", PROG, "2"]);
        cmd.env("RPCSERVER_UNSET", "rpcb");
        let mut srv = Server::start(&ns, cmd);
        srv.stop();
        let out = srv.process.stdout();
        assert!(out.contains("rpcb_unset 1 true") && out.contains("rpcb_unset 2 true"), "{out}");
        assert_eq!(rpcinfo_rows(&ns, PROG), BTreeSet::new());
    }

    fn svc_tp_create_registers_one_netid(which) {
        let Some((server, _)) = progs() else { return };
        let ns = Namespace::new();
        let _d = Rpcbind::start(&ns, which, &[]);
        let srv = Server::start(&ns, server_cmd(&ns, &server, &["tp", "tcp6", PROG, "2"]));
        let want: BTreeSet<_> = ["1", "2"]
            .iter()
            .map(|v| (v.to_string(), "tcp6".into(), srv.uaddr("tcp6").into(), "superuser".into()))
            .collect();
        assert_eq!(rpcinfo_rows(&ns, PROG), want);
    }

    fn rpcb_getaddr_per_netid(which) {
        let Some((server, rpcb)) = progs() else { return };
        let ns = Namespace::new();
        // A second local address (and a second v6 one): the answer must
        // carry whichever address the client asked.
        ns.add_address("192.0.2.1/24");
        ns.add_address("2001:db8::1/64");
        let _d = Rpcbind::start(&ns, which, &[]);
        let srv = Server::start(&ns, server_cmd(&ns, &server, &["create", "netpath", PROG, "2"]));
        let hosts = |netid: &str| {
            if netid.ends_with('6') { ["::1", "2001:db8::1"] } else { ["127.0.0.1", "192.0.2.1"] }
        };
        for netid in NETIDS {
            for host in hosts(netid) {
                let out = client(&ns, &rpcb, &["getaddr", PROG, "2", netid, host]);
                out.assert_success("rpcb_getaddr");
                // The wildcard registration is answered with the address asked.
                assert_eq!(values(&out, "uaddr"), [merged(srv.uaddr(netid), host)], "{netid} {host}");
            }
        }
        let out = client(&ns, &rpcb, &["getaddr", "100099", "1", "udp", "127.0.0.1"]);
        assert_eq!(out.code(), 1, "{}", out.stdout);
        assert_eq!(out.stdout.trim(), "error 15 RPC: Program not registered");
    }

    fn rpcb_getmaps_over_each_netid(which) {
        let Some((server, rpcb)) = progs() else { return };
        let ns = Namespace::new();
        let _d = Rpcbind::start(&ns, which, &[]);
        let srv = Server::start(&ns, server_cmd(&ns, &server, &["create", "netpath", PROG, "2"]));
        for netid in NETIDS {
            let out = client(&ns, &rpcb, &["getmaps", loopback(netid), netid]);
            out.assert_success("rpcb_getmaps");
            let maps: BTreeSet<&str> = values(&out, "map").into_iter().collect();
            for (vers, netid, uaddr, owner) in expected_rows(&srv, "superuser") {
                let row = format!("{PROG} {vers} {netid} {uaddr} {owner}");
                assert!(maps.contains(row.as_str()), "{row} missing from\n{}", out.stdout);
            }
            for row in ["100000 4 udp 0.0.0.0.0.111 superuser", "100000 2 tcp 0.0.0.0.0.111 superuser",
                        "100000 3 tcp6 ::.0.111 superuser", "100000 4 local /run/rpcbind.sock superuser"] {
                assert!(maps.contains(row), "{row} missing from\n{}", out.stdout);
            }
        }
    }

    fn rpcb_gettime_is_now(which) {
        let Some((_, rpcb)) = progs() else { return };
        let ns = Namespace::new();
        let _d = Rpcbind::start(&ns, which, &[]);
        let out = client(&ns, &rpcb, &["gettime", "127.0.0.1"]);
        out.assert_success("rpcb_gettime");
        let t: i64 = values(&out, "time")[0].parse().expect("a number");
        let local: i64 = values(&out, "local")[0].parse().expect("a number");
        assert!((t - local).abs() <= 2, "daemon time {t}, local {local}");
    }

    fn clnt_create_by_netid_and_nettype_reaches_the_server(which) {
        let Some((server, rpcb)) = progs() else { return };
        let ns = Namespace::new();
        let _d = Rpcbind::start(&ns, which, &[]);
        let srv = Server::start(&ns, server_cmd(&ns, &server, &["create", "netpath", PROG, "2"]));
        let mut cases: Vec<(&str, &str, &str)> = NETIDS.iter().map(|n| (loopback(n), *n, *n)).collect();
        // netpath and visible try the netconfig order: udp first.
        cases.extend([("127.0.0.1", "netpath", "udp"), ("127.0.0.1", "visible", "udp"),
                      ("127.0.0.1", "circuit_v", "tcp"), ("localhost", "datagram_v", "udp")]);
        for (host, how, netid) in cases {
            let out = client(&ns, &rpcb, &["call", host, PROG, "2", how]);
            out.assert_success(&format!("call {host} {how}"));
            let at = if host == "::1" { "::1" } else { "127.0.0.1" };
            assert_eq!(values(&out, "server"), [merged(srv.uaddr(netid), at)], "{how}");
            assert_eq!(values(&out, "null"), ["ok"]);
            assert_eq!(values(&out, "echo"), ["hello-from-rpcbclient"]);
        }
        // Version 3 is not served: rpcbind hands out an address of another
        // version (GETADDR), and the server itself answers PROG_MISMATCH.
        let out = client(&ns, &rpcb, &["call", "127.0.0.1", PROG, "3", "tcp"]);
        assert_eq!(out.code(), 1);
        assert_eq!(values(&out, "error"), ["9 RPC: Program/version mismatch"]);
    }

    fn rpcb_set_never_overwrites_and_unset_removes(which) {
        let Some((_, rpcb)) = progs() else { return };
        let ns = Namespace::new();
        let _d = Rpcbind::start(&ns, which, &[]);
        let run = |args: &[&str]| client(&ns, &rpcb, args);
        assert_eq!(run(&["set", "0x20000100", "1", "udp", "127.0.0.1.8.1"]).stdout, "set true\n");
        assert_eq!(run(&["set", "0x20000100", "1", "udp", "127.0.0.1.8.2"]).stdout, "set false\n");
        assert_eq!(run(&["set", "0x20000100", "1", "udp", "127.0.0.1.8.1"]).stdout, "set true\n");
        assert_eq!(run(&["set", "0x20000100", "1", "tcp6", "::1.8.3"]).stdout, "set true\n");
        let out = run(&["getaddr", "0x20000100", "1", "udp", "127.0.0.1"]);
        assert_eq!(values(&out, "uaddr"), ["127.0.0.1.8.1"]);
        assert_eq!(run(&["unset", "0x20000100", "1", "all"]).stdout, "unset true\n");
        assert_eq!(rpcinfo_rows(&ns, "536871168"), BTreeSet::new());
        // UNSET of nothing still answers TRUE (C rpcbind behaviour).
        assert_eq!(run(&["unset", "0x20000100", "1", "udp"]).stdout, "unset true\n");
    }

    fn pmap_set_getport_unset(which) {
        let Some((_, rpcb)) = progs() else { return };
        let ns = Namespace::new();
        let _d = Rpcbind::start(&ns, which, &[]);
        let run = |args: &[&str]| client(&ns, &rpcb, args);
        assert_eq!(run(&["pmap_set", "0x20000101", "1", "udp", "2000"]).stdout, "pmap_set true\n");
        assert_eq!(run(&["pmap_set", "0x20000101", "1", "udp", "2001"]).stdout, "pmap_set false\n");
        assert_eq!(run(&["pmap_set", "0x20000101", "1", "tcp", "2002"]).stdout, "pmap_set true\n");
        let port = |proto: &str| {
            let out = run(&["pmap_getport", "127.0.0.1", "0x20000101", "1", proto]);
            values(&out, "port").join(",")
        };
        assert_eq!(port("udp"), "2000");
        assert_eq!(port("tcp"), "2002");
        let maps = run(&["pmap_getmaps", "127.0.0.1"]);
        maps.assert_success("pmap_getmaps");
        for row in ["536871169 1 udp 2000", "536871169 1 tcp 2002", "100000 2 udp 111", "100000 4 tcp 111"] {
            assert!(values(&maps, "map").contains(&row), "{row} missing:\n{}", maps.stdout);
        }
        let p = ns.run("rpcinfo", &["-p", "127.0.0.1"], T);
        assert!(normalise::squeeze(&p.stdout).contains("536871169 1 udp 2000"), "{}", p.stdout);
        assert_eq!(run(&["pmap_unset", "0x20000101", "1"]).stdout, "pmap_unset true\n");
        let gone = run(&["pmap_getport", "127.0.0.1", "0x20000101", "1", "udp"]);
        assert_eq!(gone.stdout, "port 0\nerror 15 RPC: Program not registered\n");
    }
}

/// A fixed client script whose every output line is deterministic; run
/// against a fresh daemon of each kind, the outputs must be equal.
fn script_output(which: Impl, script: &[&[&str]]) -> Option<String> {
    let (_, rpcb) = progs()?;
    let ns = Namespace::new();
    let _d = Rpcbind::start(&ns, which, &[]);
    let mut all = String::new();
    for args in script {
        let out = client(&ns, &rpcb, args);
        all.push_str(&format!(
            "$ {}\n{}exit {}\n",
            args.join(" "),
            out.stdout,
            out.code()
        ));
    }
    Some(all)
}

fn differential(test: &str, script: &[&[&str]]) {
    if !e2e::require_root(test) || !Impl::Reference.available() {
        eprintln!(
            "skipping {test}: needs root and {}",
            e2e::daemon::REFERENCE_RPCBIND
        );
        return;
    }
    let Some(reference) = script_output(Impl::Reference, script) else {
        return;
    };
    let ours = script_output(Impl::Ours, script).unwrap_or_default();
    assert_eq!(
        ours, reference,
        "ours (left) differs from the C rpcbind (right)"
    );
}

/// libtirpc sends UADDR2TADDR/TADDR2UADDR to the local daemon over
/// `/run/rpcbind.sock`; the C daemon converts with the family of the
/// transport the request arrived on (AF_LOCAL), so the answers below are
/// AF_LOCAL netbufs and sun_path strings even for inet netids. Clients see
/// exactly these bytes, so ours must give the same.
#[test]
fn differential_uaddr2taddr_taddr2uaddr() {
    differential(
        "differential_uaddr2taddr_taddr2uaddr",
        &[
            &["uaddr2taddr", "udp", "127.0.0.1.3.232"],
            &["uaddr2taddr", "tcp", "0.0.0.0.0.111"],
            &["uaddr2taddr", "udp6", "::1.3.232"],
            &["uaddr2taddr", "tcp6", "fe80::1.0.111"],
            &["uaddr2taddr", "local", "/run/rpcbind.sock"],
            &["uaddr2taddr", "udp", "not-an-address"],
            &["uaddr2taddr", "udp", ""],
            &["taddr2uaddr", "local", "/run/rpcbind.sock"],
        ],
    );
}

/// TADDR2UADDR of an AF_INET/AF_INET6 netbuf over the local socket: the C
/// daemon reads the bytes after the family as a sun_path (up to the first
/// NUL), so a sockaddr_in for port 1000 at 127.0.0.1 comes back as the
/// three bytes 03 e8 7f. Kept apart from the test above because it is the
/// one place where matching the reference means reproducing that reading.
#[test]
fn differential_taddr2uaddr_inet_netbuf_over_local() {
    differential(
        "differential_taddr2uaddr_inet_netbuf_over_local",
        &[
            &["taddr2uaddr", "udp", "127.0.0.1.3.232"],
            &["taddr2uaddr", "tcp6", "::1.3.232"],
        ],
    );
}

#[test]
fn differential_lookups_and_maps() {
    differential(
        "differential_lookups_and_maps",
        &[
            &["getmaps", "127.0.0.1", "udp"],
            &["getmaps", "::1", "tcp6"],
            &["pmap_getmaps", "127.0.0.1"],
            &["set", "0x20000100", "1", "udp", "127.0.0.1.8.1"],
            &["set", "0x20000100", "2", "tcp6", "::.8.2"],
            &["pmap_set", "0x20000101", "1", "tcp", "2000"],
            &["getaddr", "0x20000100", "1", "udp", "127.0.0.1"],
            &["getaddr", "0x20000100", "7", "udp", "127.0.0.1"],
            &["getaddr", "0x20000100", "2", "tcp6", "::1"],
            &["getaddr", "0x20000100", "2", "udp6", "::1"],
            &["getaddr", "100099", "1", "tcp", "127.0.0.1"],
            &["pmap_getport", "127.0.0.1", "0x20000100", "1", "udp"],
            &["pmap_getport", "127.0.0.1", "0x20000101", "1", "tcp"],
            &["pmap_getport", "127.0.0.1", "0x20000101", "3", "tcp"],
            &["pmap_getport", "127.0.0.1", "100000", "2", "udp"],
            &["getmaps", "127.0.0.1", "tcp"],
            &["pmap_getmaps", "127.0.0.1"],
            &["call", "127.0.0.1", "100099", "1", "udp"],
            &["call", "::1", "100000", "9", "tcp6"],
            &["unset", "0x20000100", "1", "all"],
            &["pmap_unset", "0x20000101", "1"],
            &["getmaps", "::1", "udp6"],
        ],
    );
}

/// `svc_create` (root, every netid, two versions) and `svc_tp_create`
/// (uid 65534, udp) against a daemon, then what `rpcinfo`, `rpcinfo -s`
/// and `rpcb_getmaps` show, before and after both servers unregister.
/// Kernel-chosen ports are replaced by the netid and server they belong to.
fn svc_listing(which: Impl) -> Option<String> {
    let (server, rpcb) = progs()?;
    let ns = Namespace::new();
    let _d = Rpcbind::start(&ns, which, &[]);
    let mut root = Server::start(
        &ns,
        server_cmd(&ns, &server, &["create", "netpath", PROG, "2"]),
    );
    let mut cmd = ns.command_as_nobody(&server);
    cmd.args(["tp", "udp", "0x2000009a", "1"]);
    let mut nobody = Server::start(&ns, cmd);
    let mut ports = Vec::new();
    for (who, srv) in [("root", &root), ("nobody", &nobody)] {
        for (netid, uaddr) in &srv.transports {
            let port: Vec<&str> = uaddr.rsplitn(3, '.').take(2).collect();
            ports.push((
                format!(".{}.{}", port[1], port[0]),
                format!(".<{who}-{netid}>"),
            ));
        }
    }
    let snapshot = |all: &mut String| {
        for out in [
            ns.run("rpcinfo", &[], T),
            ns.run("rpcinfo", &["-s"], T),
            client(&ns, &rpcb, &["getmaps", "127.0.0.1", "udp"]),
        ] {
            let mut text = normalise::squeeze(&out.stdout);
            for (port, name) in &ports {
                text = text.replace(port.as_str(), name);
            }
            all.push_str(&format!("{text}\nexit {}\n", out.code()));
        }
    };
    let mut all = String::new();
    snapshot(&mut all);
    root.stop();
    nobody.stop();
    snapshot(&mut all);
    Some(all)
}

#[test]
fn differential_svc_create_listings() {
    let test = "differential_svc_create_listings";
    if !e2e::require_root(test) || !Impl::Reference.available() {
        eprintln!(
            "skipping {test}: needs root and {}",
            e2e::daemon::REFERENCE_RPCBIND
        );
        return;
    }
    let Some(reference) = svc_listing(Impl::Reference) else {
        return;
    };
    assert!(
        reference.contains("536871066 1 udp 0.0.0.0.<nobody-udp> - 65534"),
        "{reference}"
    );
    let ours = svc_listing(Impl::Ours).unwrap_or_default();
    assert_eq!(
        ours, reference,
        "ours (left) differs from the C rpcbind (right)"
    );
}
