//! End-to-end tests of `libportpolicy_preload.so` (issue 7): libtirpc's
//! `bindresvport()` / `bindresvport_sa()` called by a C program
//! (`tests/c/bindresv.c`) and by `rpcinfo`, under LD_PRELOAD, in a private
//! namespace with our rpcbind serving the allocation service. Expectations
//! come from the policy as the admin sees it (`portpolicy pool`, run in the
//! same namespace) and from `/etc/services`. Does namespace and process I/O.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use e2e::{cprog, require_root, run_with_timeout, skip_note, Impl, Namespace, Rpcbind, RunOutput};

const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// The shim as built beside the test binaries (target/<profile>/).
fn preload_lib() -> PathBuf {
    e2e::binary("libportpolicy_preload.so")
}

/// One line of bindresv's output.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Bound {
    proto: String,
    family: u8,
    addr: String,
    port: u16,
    nonblock: bool,
    cloexec: bool,
    sin_port: i32,
    listening: bool,
}

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

/// Every line of `out`; panics on an "error" line or an unknown one.
fn parse(out: &RunOutput) -> Vec<Bound> {
    out.stdout
        .lines()
        .map(|l| {
            assert!(
                l.starts_with("proto="),
                "bindresv failed: {l}\nstderr:\n{}",
                out.stderr
            );
            Bound {
                proto: field(l, "proto").to_string(),
                family: field(l, "family").parse().expect("family"),
                addr: field(l, "addr").to_string(),
                port: field(l, "port").parse().expect("port"),
                nonblock: field(l, "nonblock") == "1",
                cloexec: field(l, "cloexec") == "1",
                sin_port: field(l, "sin_port").parse().expect("sin_port"),
                listening: field(l, "listening") == "1",
            }
        })
        .collect()
}

/// The pool per protocol, as `portpolicy pool` prints it in `ns`.
struct Pool {
    udp: HashSet<u16>,
    tcp: HashSet<u16>,
}

impl Pool {
    fn read(ns: &Namespace) -> Pool {
        Pool::read_config(ns, CONFIG)
    }

    /// The pool of the policy file `config` (a namespace path).
    fn read_config(ns: &Namespace, config: &str) -> Pool {
        let portpolicy = e2e::binary("portpolicy");
        let read = |proto: &str| -> HashSet<u16> {
            let mut c = ns.command(&portpolicy);
            c.args(["pool", "--config", config, "--proto", proto]);
            let out = run_with_timeout(c, RUN_TIMEOUT);
            out.assert_success("portpolicy pool");
            let ports: HashSet<u16> = out
                .stdout
                .lines()
                .map(|l| l.trim().parse().expect("a port per line"))
                .collect();
            assert!(ports.len() > 100, "a pool of {} ports", ports.len());
            ports
        };
        Pool {
            udp: read("udp"),
            tcp: read("tcp"),
        }
    }

    fn contains(&self, b: &Bound) -> bool {
        match b.proto.as_str() {
            "udp" => self.udp.contains(&b.port),
            "tcp" => self.tcp.contains(&b.port),
            other => panic!("proto {other}"),
        }
    }
}

/// Every port `/etc/services` names (either protocol).
fn services_ports() -> HashSet<u16> {
    let text = std::fs::read_to_string("/etc/services").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split('#').next())
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter_map(|pp| pp.split('/').next()?.parse().ok())
        .collect()
}

/// The compiled bindresv, or None (skip) without gcc/libtirpc-dev.
fn bindresv() -> Option<PathBuf> {
    cprog::build("bindresv")
}

/// bindresv built with -DGLIBC_ONLY and without libtirpc, so that its
/// `bindresvport()` is glibc's; None (skip) when bindresv cannot be built.
fn bindresv_glibc() -> Option<PathBuf> {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let tirpc = bindresv()?;
    Some(
        BUILT
            .get_or_init(|| {
                let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("c/bindresv.c");
                let out = tirpc.with_file_name("bindresv-glibc");
                let tmp = tirpc.with_file_name(format!(".bindresv-glibc.{}", std::process::id()));
                let gcc = std::process::Command::new("gcc")
                    .args(["-Wall", "-O1", "-DGLIBC_ONLY", "-o"])
                    .arg(&tmp)
                    .arg(&source)
                    .output()
                    .expect("run gcc");
                assert!(
                    gcc.status.success(),
                    "gcc -DGLIBC_ONLY: {}",
                    String::from_utf8_lossy(&gcc.stderr)
                );
                std::fs::rename(&tmp, &out).expect("rename");
                out
            })
            .clone(),
    )
}

/// Runs a shell script in `ns`, with `$PROG` (bindresv) and `$LIB` (the shim) set.
fn sh(ns: &Namespace, prog: &Path, script: &str) -> RunOutput {
    let mut c = ns.command("env");
    c.arg(format!("PROG={}", prog.display()))
        .arg(format!("LIB={}", preload_lib().display()))
        .args(["sh", "-c", script]);
    run_with_timeout(c, RUN_TIMEOUT)
}

/// The policy file the daemon and `portpolicy pool` read (namespace path).
const CONFIG: &str = "/run/preload-policy.toml";
/// The daemon's lease state, on the namespace's /run (never the host's).
const STATE: &str = "/run/portalloc/pa.state";

/// Our daemon (allocation service on, the default) with `config` as policy.
fn start_with<'ns>(ns: &'ns Namespace, config: &str) -> Rpcbind<'ns> {
    std::fs::write(ns.host_path(CONFIG), config).expect("write policy");
    Rpcbind::start(
        ns,
        Impl::Ours,
        &["--policy-config", CONFIG, "--alloc-state", STATE],
    )
}

/// Our daemon with the default policy (privileged mode).
fn start_ours(ns: &Namespace) -> Rpcbind<'_> {
    start_with(ns, "")
}

/// Four calls per round (resv udp4, resv tcp4, resv_sa udp6, resv_sa tcp6),
/// each in a new process (so libtirpc's pid-derived start differs).
fn rounds_script(rounds: u32, preload: bool) -> String {
    let env = if preload {
        "LD_PRELOAD=$LIB PORTPOLICY_PRELOAD_DEBUG=1"
    } else {
        ""
    };
    format!(
        "for i in $(seq {rounds}); do \
           for a in 'resv 1 udp 4' 'resv 1 tcp 4' 'resv_sa 1 udp 6' 'resv_sa 1 tcp 6'; do \
             env {env} $PROG $a || echo \"failed: $a\"; \
           done; \
         done"
    )
}

#[test]
fn bindresvport_lands_in_the_pool_every_time() {
    if !require_root("bindresvport_lands_in_the_pool_every_time") {
        return;
    }
    let Some(prog) = bindresv() else { return };
    let ns = Namespace::new();
    let _daemon = start_ours(&ns);
    let pool = Pool::read(&ns);
    let services = services_ports();

    let started = Instant::now();
    let out = sh(&ns, &prog, &rounds_script(75, true));
    out.assert_success("300 bindresvport() runs under the shim");
    let shimmed = parse(&out);
    let elapsed = started.elapsed();
    assert_eq!(shimmed.len(), 300);
    assert_eq!(
        out.stderr.matches(": pool port ").count(),
        300,
        "every call served by the service:\n{}",
        out.stderr
    );
    for b in &shimmed {
        assert!(
            b.port < 1024,
            "unprivileged port for a bindresvport() caller: {b:?}"
        );
        assert!(pool.contains(b), "not a pool port: {b:?}");
        assert!(!services.contains(&b.port), "/etc/services names {b:?}");
    }

    let started = Instant::now();
    let out = sh(&ns, &prog, &rounds_script(75, false));
    out.assert_success("300 bindresvport() runs without the shim");
    let plain_elapsed = started.elapsed();
    let plain = parse(&out);
    assert_eq!(plain.len(), 300);
    assert!(plain.iter().all(|b| b.port < 1024));
    let named = plain.iter().filter(|b| services.contains(&b.port)).count();
    let outside = plain.iter().filter(|b| !pool.contains(b)).count();
    skip_note(&format!(
        "figure: 300 bindresvport() runs (one process each): under the shim 0 on \
         /etc/services ports, all in the pool, {elapsed:.2?} in all; without it \
         {named} on /etc/services ports ({:.1} %), {outside} outside the pool, \
         {plain_elapsed:.2?} in all",
        named as f64 / 3.0
    ));
}

#[test]
fn ports_held_at_once_are_distinct_pool_ports() {
    if !require_root("ports_held_at_once_are_distinct_pool_ports") {
        return;
    }
    let Some(prog) = bindresv() else { return };
    let ns = Namespace::new();
    let _daemon = start_ours(&ns);
    let pool = Pool::read(&ns);
    // The last: four threads calling at once (25 calls each).
    for args in ["resv 100 udp 4", "resv_sa 100 tcp 6", "resv 25 tcp 4 -t 4"] {
        let out = sh(
            &ns,
            &prog,
            &format!("PORTPOLICY_PRELOAD_DEBUG=1 LD_PRELOAD=$LIB $PROG {args}"),
        );
        out.assert_success(args);
        let got = parse(&out);
        assert_eq!(got.len(), 100);
        assert_eq!(out.stderr.matches(": pool port ").count(), 100, "{args}");
        let distinct: BTreeSet<u16> = got.iter().map(|b| b.port).collect();
        assert_eq!(
            distinct.len(),
            100,
            "{args}: a port handed out twice: {got:?}"
        );
        assert!(
            got.iter().all(|b| pool.contains(b) && b.port < 1024),
            "{args}: {got:?}"
        );
    }
}

#[test]
fn in_high_mode_bindresvport_callers_still_get_privileged_pool_ports() {
    if !require_root("in_high_mode_bindresvport_callers_still_get_privileged_pool_ports") {
        return;
    }
    let Some(prog) = bindresv() else { return };
    let ns = Namespace::new();
    let _daemon = start_with(&ns, "mode = \"high\"\n");
    let high = Pool::read(&ns);
    assert!(high.udp.iter().all(|p| *p >= 1024), "high mode pool");
    // The privileged pool of the same sources: the default mode's.
    std::fs::write(ns.host_path("/run/privileged.toml"), "").expect("write");
    let privileged = Pool::read_config(&ns, "/run/privileged.toml");
    for args in ["resv 20 udp 4", "resv_sa 20 tcp 6"] {
        let out = sh(
            &ns,
            &prog,
            &format!("PORTPOLICY_PRELOAD_DEBUG=1 LD_PRELOAD=$LIB $PROG {args}"),
        );
        out.assert_success(args);
        let got = parse(&out);
        assert_eq!(out.stderr.matches(": pool port ").count(), 20, "{args}");
        for b in got {
            assert!(b.port < 1024 && privileged.contains(&b), "{args}: {b:?}");
        }
    }
}

#[test]
fn glibcs_own_bindresvport_is_served_too() {
    if !require_root("glibcs_own_bindresvport_is_served_too") {
        return;
    }
    let Some(prog) = bindresv_glibc() else { return };
    let ns = Namespace::new();
    let _daemon = start_ours(&ns);
    let pool = Pool::read(&ns);
    for args in ["resv 20 udp 4", "resv 20 tcp 4 -a 127.0.0.1"] {
        let out = sh(
            &ns,
            &prog,
            &format!("PORTPOLICY_PRELOAD_DEBUG=1 LD_PRELOAD=$LIB $PROG {args}"),
        );
        out.assert_success(args);
        let got = parse(&out);
        assert_eq!(got.len(), 20, "{args}");
        assert_eq!(out.stderr.matches(": pool port ").count(), 20, "{args}");
        assert!(
            got.iter().all(|b| b.port < 1024 && pool.contains(b)),
            "{args}: {got:?}"
        );
    }
}

#[test]
fn the_callers_descriptor_flags_and_address_are_kept() {
    if !require_root("the_callers_descriptor_flags_and_address_are_kept") {
        return;
    }
    let Some(prog) = bindresv() else { return };
    let ns = Namespace::new();
    let _daemon = start_ours(&ns);
    let pool = Pool::read(&ns);
    for (args, addr, nonblock) in [
        ("resv 2 udp 4 -a 127.0.0.1 -k", "127.0.0.1", true),
        ("resv 2 tcp 4 -a 127.0.0.1", "127.0.0.1", false),
        ("resv_sa 2 udp 6 -a ::1 -k", "::1", true),
        ("resv_sa 2 tcp 6 -a ::1", "::1", false),
        ("resv_sa 2 udp 6 -k", "::", true),
    ] {
        let out = sh(&ns, &prog, &format!("LD_PRELOAD=$LIB $PROG {args}"));
        out.assert_success(args);
        let got = parse(&out);
        assert_eq!(got.len(), 2, "{args}");
        for b in got {
            assert!(pool.contains(&b), "{args}: {b:?}");
            assert_eq!(b.addr, addr, "{args}: bound address {b:?}");
            assert_eq!(b.nonblock, nonblock, "{args}: O_NONBLOCK {b:?}");
            assert_eq!(b.cloexec, nonblock, "{args}: FD_CLOEXEC {b:?}");
            let filled = if args.contains("-a") {
                i32::from(b.port)
            } else {
                -1
            };
            assert_eq!(b.sin_port, filled, "{args}: the caller's address {b:?}");
        }
    }
}

#[test]
fn without_the_daemon_the_real_function_still_works() {
    if !require_root("without_the_daemon_the_real_function_still_works") {
        return;
    }
    let Some(prog) = bindresv() else { return };
    let ns = Namespace::new();
    // Never started, then started and stopped (a stale socket file left).
    for phase in ["never started", "stopped"] {
        if phase == "stopped" {
            let mut daemon = start_ours(&ns);
            assert!(daemon.terminate().is_some(), "daemon did not stop");
        }
        let started = Instant::now();
        let out = sh(
            &ns,
            &prog,
            "PORTPOLICY_PRELOAD_DEBUG=1 LD_PRELOAD=$LIB $PROG resv 3 udp 4 && \
             PORTPOLICY_PRELOAD_DEBUG=1 LD_PRELOAD=$LIB $PROG resv_sa 3 tcp 6",
        );
        out.assert_success(phase);
        let got = parse(&out);
        assert_eq!(got.len(), 6, "{phase}");
        assert!(
            got.iter().all(|b| b.port < 1024 && b.port >= 512),
            "{phase}: {got:?}"
        );
        assert_eq!(
            out.stderr.matches("real function").count(),
            6,
            "{phase}: every call fell back:\n{}",
            out.stderr
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{phase}: fallback took {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn a_hung_service_costs_one_timeout_then_the_real_function_runs() {
    if !require_root("a_hung_service_costs_one_timeout_then_the_real_function_runs") {
        return;
    }
    let Some(prog) = bindresv() else { return };
    let mut python = std::process::Command::new("python3");
    python.arg("-V");
    if run_with_timeout(python, RUN_TIMEOUT).code() != 0 {
        skip_note(
            "skipping a_hung_service_costs_one_timeout_then_the_real_function_runs: no python3",
        );
        return;
    }
    let ns = Namespace::new();
    // Accepts connections (the kernel's backlog does) and never answers.
    let hung = ns.spawn(
        "python3",
        &[
            "-c",
            "import socket,time\n\
             s=socket.socket(socket.AF_UNIX)\n\
             s.bind('\\0/run/rpcbind.sock')\n\
             s.listen(8)\n\
             print('ready',flush=True)\n\
             time.sleep(60)",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !hung.stdout().contains("ready") {
        assert!(
            Instant::now() < deadline,
            "hung listener: {}",
            hung.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let started = Instant::now();
    let out = sh(
        &ns,
        &prog,
        "PORTPOLICY_PRELOAD_DEBUG=1 LD_PRELOAD=$LIB $PROG resv 1 udp 4",
    );
    let took = started.elapsed();
    out.assert_success("bindresvport with a hung service");
    let got = parse(&out);
    assert!(got.len() == 1 && got[0].port < 1024, "{got:?}");
    assert!(out.stderr.contains("real function"), "{}", out.stderr);
    // The shim's bound is 2 s per request.
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(6),
        "took {took:?}"
    );
}

#[test]
fn a_non_root_caller_gets_the_same_refusal_as_without_the_shim() {
    if !require_root("a_non_root_caller_gets_the_same_refusal_as_without_the_shim") {
        return;
    }
    let Some(prog) = bindresv() else { return };
    let ns = Namespace::new();
    let _daemon = start_ours(&ns);
    let mut c = ns.command_as_nobody("env");
    c.arg(format!("LD_PRELOAD={}", preload_lib().display()))
        .arg(&prog)
        .args(["resv", "1", "udp", "4"]);
    let out = run_with_timeout(c, RUN_TIMEOUT);
    assert_eq!(out.code(), 1, "{out:?}");
    assert!(
        out.stdout.starts_with(&format!("error {} ", libc::EACCES)),
        "{}",
        out.stdout
    );
}

#[test]
fn port_zero_mode_serves_server_sockets_from_the_pool() {
    if !require_root("port_zero_mode_serves_server_sockets_from_the_pool") {
        return;
    }
    let Some(prog) = bindresv() else { return };
    let ns = Namespace::new();
    let _daemon = start_ours(&ns);
    let pool = Pool::read(&ns);
    for args in [
        "bind0 5 tcp 4",
        "bind0 5 udp 4",
        "bind0 3 tcp 6 -v",
        "bind0 3 udp 6 -v -k",
    ] {
        let out = sh(
            &ns,
            &prog,
            &format!("PORTPOLICY_PRELOAD_BIND0=1 LD_PRELOAD=$LIB $PROG {args}"),
        );
        out.assert_success(args);
        for b in parse(&out) {
            assert!(pool.contains(&b), "{args}: not a pool port {b:?}");
            assert_eq!(
                b.listening,
                b.proto == "tcp",
                "{args}: listen() after bind {b:?}"
            );
        }
    }
    // Not opted in, or a dual-stack IPv6 socket: the kernel's ephemeral port.
    for (args, env) in [
        ("bind0 3 tcp 4", ""),
        ("bind0 3 tcp 6", "PORTPOLICY_PRELOAD_BIND0=1"),
    ] {
        let out = sh(&ns, &prog, &format!("{env} LD_PRELOAD=$LIB $PROG {args}"));
        out.assert_success(args);
        for b in parse(&out) {
            assert!(b.port >= 32768, "{args} {env}: {b:?}");
        }
    }
}

#[test]
fn rpcinfo_as_root_works_under_the_shim_from_a_pool_port() {
    if !require_root("rpcinfo_as_root_works_under_the_shim_from_a_pool_port") {
        return;
    }
    let ns = Namespace::new();
    let _daemon = start_ours(&ns);
    let pool = Pool::read(&ns);
    for (args, ports) in [
        (&["-p", "127.0.0.1"][..], &pool.tcp),
        (&["-T", "udp", "127.0.0.1", "100000", "2"][..], &pool.udp),
    ] {
        let mut c = ns.command("env");
        c.arg(format!("LD_PRELOAD={}", preload_lib().display()))
            .arg("PORTPOLICY_PRELOAD_DEBUG=1")
            .arg("rpcinfo")
            .args(args);
        let out = run_with_timeout(c, RUN_TIMEOUT);
        out.assert_success("rpcinfo under the shim");
        assert!(
            out.stdout.contains("portmapper") || out.stdout.contains("ready and waiting"),
            "{}",
            out.stdout
        );
        let served: Vec<u16> = out
            .stderr
            .lines()
            .filter_map(|l| l.split("pool port ").nth(1))
            .map(|p| p.trim().parse().expect("port in the debug line"))
            .collect();
        assert!(
            !served.is_empty(),
            "rpcinfo {args:?} was not served:\n{}",
            out.stderr
        );
        for p in served {
            assert!(p < 1024 && ports.contains(&p), "rpcinfo {args:?}: port {p}");
        }
    }
}

/// The local ports of `name`'s sockets, from `ss` in `ns`.
fn ports_of(ns: &Namespace, name: &str) -> Vec<(String, u16)> {
    let out = ns.run("ss", &["-Hlunpt"], RUN_TIMEOUT);
    out.assert_success("ss");
    out.stdout
        .lines()
        .filter(|l| l.contains(&format!("((\"{name}\"")))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let port = f[4]
                .rsplit(':')
                .next()
                .expect("port")
                .parse()
                .expect("port");
            (f[0].to_string(), port)
        })
        .collect()
}

#[test]
fn rpc_statd_under_the_shim_takes_only_policy_ports() {
    if !require_root("rpc_statd_under_the_shim_takes_only_policy_ports") {
        return;
    }
    if !Path::new("/usr/sbin/rpc.statd").exists() {
        skip_note("skipping rpc_statd_under_the_shim_takes_only_policy_ports: no rpc.statd");
        return;
    }
    let ns = Namespace::new();
    // statd drops root before it binds its listeners, and privileged pool
    // ports go to root only: its listeners are served in high mode.
    let _daemon = start_with(&ns, "mode = \"high\"\n");
    let pool = Pool::read(&ns);
    let services = services_ports();
    ns.run(
        "mkdir",
        &["-p", "/run/statd/sm", "/run/statd/sm.bak"],
        RUN_TIMEOUT,
    )
    .assert_success("mkdir");
    ns.run("chown", &["-R", "statd", "/run/statd"], RUN_TIMEOUT)
        .assert_success("chown");
    let mut c = ns.command("env");
    c.arg(format!("LD_PRELOAD={}", preload_lib().display()))
        .args(["PORTPOLICY_PRELOAD_BIND0=1", "PORTPOLICY_PRELOAD_DEBUG=1"])
        .args(["rpc.statd", "-F", "--no-notify", "-P", "/run/statd"]);
    let mut statd = ns.spawn_command(c);
    let deadline = Instant::now() + Duration::from_secs(10);
    let registered = loop {
        let out = ns.run("rpcinfo", &["-p"], RUN_TIMEOUT);
        let status: Vec<String> = out
            .stdout
            .lines()
            .filter(|l| l.contains(" 100024 "))
            .map(str::to_string)
            .collect();
        if status.len() >= 2 {
            break status;
        }
        assert!(
            statd.try_wait().is_none() && Instant::now() < deadline,
            "rpc.statd did not register: {}",
            statd.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    for line in &registered {
        let f: Vec<&str> = line.split_whitespace().collect();
        let port: u16 = f[3].parse().expect("port");
        let set = if f[2] == "tcp" { &pool.tcp } else { &pool.udp };
        assert!(
            set.contains(&port),
            "statd registered a non-pool port: {line}"
        );
    }
    let held = ports_of(&ns, "rpc.statd");
    assert!(
        held.len() >= 5,
        "statd's sockets: {held:?}\n{}",
        statd.stderr()
    );
    for (proto, port) in held {
        let in_pool = if proto == "tcp" { &pool.tcp } else { &pool.udp };
        // the listeners: high pool; the outgoing socket: bindresvport(),
        // a privileged pool port
        assert!(
            in_pool.contains(&port) || (port < 1024 && !services.contains(&port)),
            "statd holds {port}/{proto}:\n{}",
            statd.stderr()
        );
        assert!(!services.contains(&port), "{port}/{proto}");
    }
}
