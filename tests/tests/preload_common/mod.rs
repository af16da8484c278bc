//! Shared helpers of the preload end-to-end tests (`preload.rs`,
//! `preload_programs.rs`, and `nfs_statd.rs`): the shim's path, `tests/c/bindresv.c` (built with
//! libtirpc, or glibc only) and its output, the policy's pool as
//! `portpolicy pool` prints it, `/etc/services`, our daemon with a policy
//! file, rpc.statd's registrations. Does namespace and process I/O.

// Each test file uses its own subset of these helpers.
#![allow(dead_code)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use e2e::{cprog, run_with_timeout, Background, Impl, Namespace, Rpcbind, RunOutput};

pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// The shim as built beside the test binaries (target/<profile>/).
pub fn preload_lib() -> PathBuf {
    e2e::binary("libportpolicy_preload.so")
}

/// One line of bindresv's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    pub proto: String,
    pub family: u8,
    pub addr: String,
    pub port: u16,
    pub nonblock: bool,
    pub cloexec: bool,
    pub sin_port: i32,
    pub listening: bool,
}

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

/// Every line of `out`; panics on an "error" line or an unknown one.
pub fn parse(out: &RunOutput) -> Vec<Bound> {
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
pub struct Pool {
    pub udp: HashSet<u16>,
    pub tcp: HashSet<u16>,
}

impl Pool {
    pub fn read(ns: &Namespace) -> Pool {
        Pool::read_config(ns, CONFIG)
    }

    /// The pool of the policy file `config` (a namespace path).
    pub fn read_config(ns: &Namespace, config: &str) -> Pool {
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

    pub fn contains(&self, b: &Bound) -> bool {
        match b.proto.as_str() {
            "udp" => self.udp.contains(&b.port),
            "tcp" => self.tcp.contains(&b.port),
            other => panic!("proto {other}"),
        }
    }
}

/// Every port `/etc/services` names (either protocol).
pub fn services_ports() -> HashSet<u16> {
    let text = std::fs::read_to_string("/etc/services").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split('#').next())
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter_map(|pp| pp.split('/').next()?.parse().ok())
        .collect()
}

/// The compiled bindresv, or None (skip) without gcc/libtirpc-dev.
pub fn bindresv() -> Option<PathBuf> {
    cprog::build("bindresv")
}

/// bindresv built with -DGLIBC_ONLY and without libtirpc, so that its
/// `bindresvport()` is glibc's; None (skip) when bindresv cannot be built.
pub fn bindresv_glibc() -> Option<PathBuf> {
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
pub fn sh(ns: &Namespace, prog: &Path, script: &str) -> RunOutput {
    let mut c = ns.command("env");
    c.arg(format!("PROG={}", prog.display()))
        .arg(format!("LIB={}", preload_lib().display()))
        .args(["sh", "-c", script]);
    run_with_timeout(c, RUN_TIMEOUT)
}

/// The policy file the daemon and `portpolicy pool` read (namespace path).
pub const CONFIG: &str = "/run/preload-policy.toml";
/// The daemon's lease state, on the namespace's /run (never the host's).
pub const STATE: &str = "/run/portalloc/pa.state";

/// Our daemon (allocation service on, the default) with `config` as policy.
pub fn start_with<'ns>(ns: &'ns Namespace, config: &str) -> Rpcbind<'ns> {
    std::fs::write(ns.host_path(CONFIG), config).expect("write policy");
    Rpcbind::start(
        ns,
        Impl::Ours,
        &["--policy-config", CONFIG, "--alloc-state", STATE],
    )
}

/// Our daemon with the default policy (privileged mode).
pub fn start_ours(ns: &Namespace) -> Rpcbind<'_> {
    start_with(ns, "")
}

/// The local ports of `name`'s listening sockets, from `ss` in `ns`.
pub fn ports_of(ns: &Namespace, name: &str) -> Vec<(String, u16)> {
    sockets_of(ns, name, &["-Hlunpt"])
}

/// The sockets of `name` that `ss` with `flags` (which must include `-H`
/// and `-p`) lists in `ns`: (proto, local port).
pub fn sockets_of(ns: &Namespace, name: &str, flags: &[&str]) -> Vec<(String, u16)> {
    let out = ns.run("ss", flags, RUN_TIMEOUT);
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

/// The state directory rpc.statd is started with (`-P /run/statd`),
/// owned by the `statd` user it drops to.
pub fn statd_state_dir(ns: &Namespace) {
    ns.run(
        "mkdir",
        &["-p", "/run/statd/sm", "/run/statd/sm.bak"],
        RUN_TIMEOUT,
    )
    .assert_success("mkdir");
    ns.run("chown", &["-R", "statd", "/run/statd"], RUN_TIMEOUT)
        .assert_success("chown");
}

/// Waits (10 s at most) until the running `statd` has registered the
/// status program (100024) twice (udp and tcp), and returns those
/// registrations from `rpcinfo -p` as (proto, port). Fails the test with
/// statd's stderr if it exits first or the time runs out.
pub fn statd_registrations(ns: &Namespace, statd: &mut Background) -> Vec<(String, u16)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = ns.run("rpcinfo", &["-p"], RUN_TIMEOUT);
        let status: Vec<(String, u16)> = out
            .stdout
            .lines()
            .filter(|l| l.contains(" 100024 "))
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f[2].to_string(), f[3].parse().expect("port"))
            })
            .collect();
        if status.len() >= 2 {
            return status;
        }
        assert!(
            statd.try_wait().is_none() && Instant::now() < deadline,
            "rpc.statd did not register: {}",
            statd.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
