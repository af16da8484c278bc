//! End-to-end tests of the `portpolicy` command: the real binary, run in a
//! private network + mount namespace, against sockets this test binds in
//! that namespace. Files under /etc and /var/lib are redirected to a test
//! root (`--root`, a hidden option for tests); sysctls are the namespace's
//! own (net.ipv4.* is per network namespace, checked below).

#![allow(clippy::unwrap_used)]

use e2e::{Namespace, RunOutput};
use socket2::{Domain, Socket, Type};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);
const SERVICES: &str = include_str!("../../portpolicy/tests/fixtures/debian-services");
const BLACKLIST: &str =
    include_str!("../../portpolicy/tests/fixtures/debian-bindresvport.blacklist");
const RESERVED: &str = "/proc/sys/net/ipv4/ip_local_reserved_ports";

/// A scratch root with Debian's /etc/services and blacklist; removed on drop.
struct Root(PathBuf);

impl Root {
    fn new(name: &str) -> Root {
        let dir =
            std::env::temp_dir().join(format!("portpolicy-e2e-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        std::fs::write(dir.join("etc/services"), SERVICES).unwrap();
        std::fs::write(dir.join("etc/bindresvport.blacklist"), BLACKLIST).unwrap();
        Root(dir)
    }

    fn path(&self, p: &str) -> PathBuf {
        self.0.join(p.trim_start_matches('/'))
    }

    fn read(&self, p: &str) -> Option<String> {
        std::fs::read_to_string(self.path(p)).ok()
    }

    fn write(&self, p: &str, text: &str) {
        let path = self.path(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn portpolicy(ns: &Namespace, root: &Root, args: &[&str]) -> RunOutput {
    let mut c = ns.command(e2e::binary("portpolicy"));
    c.arg("--root").arg(&root.0).args(args);
    e2e::run_with_timeout(c, T)
}

/// Bind (and optionally listen on) a socket inside the namespace; the
/// socket stays in that namespace, held by this test process.
fn hold(ns: &Namespace, ty: Type, addr: &str, listen: bool) -> Socket {
    let addr: SocketAddr = addr.parse().unwrap();
    ns.in_netns(move || {
        let s = Socket::new(Domain::for_address(addr), ty, None).unwrap();
        s.bind(&addr.into()).unwrap();
        if listen {
            s.listen(8).unwrap();
        }
        s
    })
}

fn my_comm() -> String {
    std::fs::read_to_string("/proc/self/comm")
        .unwrap()
        .trim()
        .to_string()
}

fn ns_read(ns: &Namespace, path: &str) -> String {
    let out = ns.run("cat", &[path], T);
    out.assert_success("cat");
    out.stdout.trim().to_string()
}

#[test]
fn why_names_the_process_holding_631() {
    if !e2e::require_root("why_names_the_process_holding_631") {
        return;
    }
    let ns = Namespace::new();
    let root = Root::new("why631");
    let _s = hold(&ns, Type::STREAM, "0.0.0.0:631", true);
    let out = portpolicy(&ns, &root, &["why", "631/tcp"]);
    assert_eq!(out.code(), 1, "{out:?}");
    let held = format!("pid {} ({}", std::process::id(), my_comm());
    assert!(out.stdout.contains(&held), "{}", out.stdout);
    assert!(out.stdout.contains("LISTEN 0.0.0.0:631"), "{}", out.stdout);
    assert!(
        out.stdout.contains("/etc/services: ipp 631/tcp (line "),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("/etc/bindresvport.blacklist: line 7"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("problem: 631/tcp is the well-known port of ipp"),
        "{}",
        out.stdout
    );
    // udp is a separate socket table: nothing holds 631/udp.
    let out = portpolicy(&ns, &root, &["why", "631/udp"]);
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(
        out.stdout.contains("held by: nothing (free)"),
        "{}",
        out.stdout
    );
}

#[test]
fn bound_but_not_listening_sockets_are_found() {
    if !e2e::require_root("bound_but_not_listening_sockets_are_found") {
        return;
    }
    let ns = Namespace::new();
    let root = Root::new("bound");
    let _t = hold(&ns, Type::STREAM, "127.0.0.1:700", false);
    let _u = hold(&ns, Type::DGRAM, "[::1]:701", false);
    let out = portpolicy(&ns, &root, &["why", "700/tcp"]);
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(
        out.stdout.contains("700/tcp: in the pool"),
        "{}",
        out.stdout
    );
    // Other test threads fork children that hold our fds until they exec,
    // so more holders may be listed: look for ours on the socket's line.
    let me = format!("pid {} ({}", std::process::id(), my_comm());
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("bound, not listening 127.0.0.1:700"));
    assert!(line.is_some_and(|l| l.contains(&me)), "{}", out.stdout);
    let out = portpolicy(&ns, &root, &["why", "701/udp"]);
    assert!(out.stdout.contains("bound [::1]:701"), "{}", out.stdout);
    let out = portpolicy(&ns, &root, &["--json", "why", "700/tcp"]);
    assert!(
        out.stdout
            .contains(&format!("\"pid\": {}", std::process::id())),
        "{}",
        out.stdout
    );
}

#[test]
fn check_finds_a_well_known_port_held_by_the_wrong_process() {
    if !e2e::require_root("check_finds_a_well_known_port_held_by_the_wrong_process") {
        return;
    }
    let ns = Namespace::new();
    let root = Root::new("check");
    let _s = hold(&ns, Type::DGRAM, "127.0.0.1:993", false);
    let out = portpolicy(&ns, &root, &["check"]);
    assert_eq!(out.code(), 1, "{out:?}");
    let me = format!("pid {} ({}", std::process::id(), my_comm());
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("problem: 993/udp (well-known port of imaps) is held by "));
    assert!(line.is_some_and(|l| l.contains(&me)), "{}", out.stdout);
    assert!(
        out.stdout.contains("note: no lease source"),
        "{}",
        out.stdout
    );
}

#[test]
fn apply_dry_run_then_apply_then_nothing() {
    if !e2e::require_root("apply_dry_run_then_apply_then_nothing") {
        return;
    }
    let host_before = std::fs::read_to_string(RESERVED).unwrap();
    let ns = Namespace::new();
    let root = Root::new("apply");
    root.write(
        "/etc/portpolicy.toml",
        "[[reservation]]\nname = \"cups\"\nport = \"ipp\"\n",
    );
    // An admin's own entry, which apply must keep.
    ns.run("sh", &["-c", &format!("echo 5000 > {RESERVED}")], T)
        .assert_success("sysctl");

    let dry = portpolicy(&ns, &root, &["apply", "--dry-run"]);
    assert_eq!(dry.code(), 0, "{dry:?}");
    let sysctl_diff = "--- sysctl net.ipv4.ip_local_reserved_ports\n\
                       +++ sysctl net.ipv4.ip_local_reserved_ports\n\
                       @@ -1,1 +1,1 @@\n-5000\n+631,5000\n";
    assert!(dry.stdout.contains(sysctl_diff), "{}", dry.stdout);
    assert!(
        dry.stdout.contains("+# BEGIN portpolicy managed block"),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains("\n+749\n"),
        "kadmin's port goes into the block: {}",
        dry.stdout
    );
    assert!(
        !dry.stdout.contains("\n+631\n"),
        "631 is already the admin's: {}",
        dry.stdout
    );
    assert!(
        dry.stdout
            .contains("+net.ipv4.ip_local_reserved_ports = 631,5000\n"),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains("note: /proc/sys/sunrpc does not exist"),
        "{}",
        dry.stdout
    );
    // Nothing written.
    assert_eq!(ns_read(&ns, RESERVED), "5000");
    assert_eq!(
        root.read("/etc/bindresvport.blacklist").as_deref(),
        Some(BLACKLIST)
    );
    assert!(root.read("/etc/sysctl.d/60-portpolicy.conf").is_none());

    let first = portpolicy(&ns, &root, &["apply"]);
    assert_eq!(first.code(), 0, "{first:?}");
    assert_eq!(
        first.stdout.replace("applied 4 change(s)\n", ""),
        dry.stdout
            .replace("dry run: 4 change(s) shown, nothing written\n", "")
    );
    assert_eq!(ns_read(&ns, RESERVED), "631,5000");
    let blacklist = root.read("/etc/bindresvport.blacklist").unwrap();
    assert!(blacklist.starts_with(BLACKLIST) && blacklist.contains("\n749\n"));
    let dropin = root.read("/etc/sysctl.d/60-portpolicy.conf").unwrap();
    assert!(
        dropin.contains("net.ipv4.ip_local_reserved_ports = 631,5000\n"),
        "{dropin}"
    );
    let record = root.read("/var/lib/portpolicy/applied.json").unwrap();
    assert!(
        record.contains("\"ip_local_reserved_ports\": \"631\""),
        "{record}"
    );

    let second = portpolicy(&ns, &root, &["apply"]);
    assert_eq!(second.code(), 0, "{second:?}");
    assert_eq!(
        second.stdout,
        "note: /proc/sys/sunrpc does not exist (sunrpc not loaded or not built into this kernel): \
         sunrpc.min_resvport/max_resvport not set\n\
         nothing to change: the kernel and files already agree with the policy\n"
    );
    assert_eq!(root.read("/etc/bindresvport.blacklist").unwrap(), blacklist);
    // The change stayed in the namespace: the sysctl is per network namespace.
    assert_eq!(std::fs::read_to_string(RESERVED).unwrap(), host_before);
    // What apply added is not the admin's: removing the reservation removes 631 only.
    root.write("/etc/portpolicy.toml", "");
    let third = portpolicy(&ns, &root, &["apply"]);
    assert_eq!(third.code(), 0, "{third:?}");
    assert_eq!(ns_read(&ns, RESERVED), "5000");
}

fn no_ns_run(root: &Root, args: &[&str]) -> RunOutput {
    let mut c = std::process::Command::new(e2e::binary("portpolicy"));
    c.arg("--root")
        .arg(&root.0)
        .arg("--proc-sys")
        .arg(root.path("/proc-sys"))
        .args(args);
    e2e::run_with_timeout(c, T)
}

fn fake_proc_sys(root: &Root) {
    root.write("/proc-sys/net/ipv4/ip_local_reserved_ports", "\n");
    root.write("/proc-sys/net/ipv4/ip_local_port_range", "32768\t60999\n");
}

fn assert_refused(root: &Root, expect: &str) {
    let before = root.read("/etc/bindresvport.blacklist");
    let out = no_ns_run(root, &["apply"]);
    assert_eq!(out.code(), 2, "{out:?}");
    assert!(
        out.stderr.contains(expect),
        "want {expect:?} in {:?}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert_eq!(root.read("/etc/bindresvport.blacklist"), before);
    assert_eq!(
        root.read("/proc-sys/net/ipv4/ip_local_reserved_ports")
            .as_deref(),
        Some("\n")
    );
    assert!(root.read("/etc/sysctl.d/60-portpolicy.conf").is_none());
}

#[test]
fn malformed_inputs_are_refused_with_file_and_line() {
    let root = Root::new("malformed");
    fake_proc_sys(&root);
    let p = |f: &str| root.path(f).display().to_string();
    root.write(
        "/etc/portpolicy.d/10-x.toml",
        "mode = \"privileged\"\n[sources]\nservice = true\n",
    );
    assert_refused(
        &root,
        &format!(
            "{}:3: unknown field `service`",
            p("/etc/portpolicy.d/10-x.toml")
        ),
    );
    root.write("/etc/portpolicy.d/10-x.toml", "");
    root.write("/etc/services", "ipp 631/tcp\nbroken 63a/tcp\n");
    assert_refused(
        &root,
        &format!("{}:2: port \"63a\" is not a number", p("/etc/services")),
    );
    root.write("/etc/services", SERVICES);
    root.write("/etc/bindresvport.blacklist", "631\n# c\n6x31\n");
    assert_refused(
        &root,
        &format!(
            "{}:3: \"6x31\" is not a port number",
            p("/etc/bindresvport.blacklist")
        ),
    );
    let out = no_ns_run(&root, &["--config", "/nonexistent/portpolicy.toml", "show"]);
    assert_eq!(out.code(), 2, "{out:?}");
}

#[test]
fn usage_errors_exit_2() {
    let root = Root::new("usage");
    fake_proc_sys(&root);
    for args in [
        &["bogus"][..],
        &["why", "631/sctp"],
        &["why", "99999"],
        &["pool", "--proto", "x"],
        &[],
    ] {
        let out = no_ns_run(&root, args);
        assert_eq!(out.code(), 2, "{args:?}: {out:?}");
    }
    let out = no_ns_run(&root, &["--help"]);
    assert_eq!(out.code(), 0, "{out:?}");
    let out = no_ns_run(&root, &["pool", "--proto", "udp"]);
    assert_eq!(out.code(), 0, "{out:?}");
    let first: Vec<&str> = out.stdout.lines().take(2).collect();
    assert_eq!(first, ["600", "601"]);
    assert!(!out.stdout.lines().any(|l| l == "631" || l == "993"));
}

/// A socket that no process has in its fd table is reported as a kernel
/// socket with its peer. Simulated: a TCP connection from 127.0.0.1:993
/// to a listener on port 2049 whose only reference is an SCM_RIGHTS
/// message in flight on a unix socket pair (the sender closed its fd), so
/// no /proc/PID/fd names it, as with the kernel NFS client's transports.
#[test]
fn a_socket_without_a_process_is_a_kernel_socket_with_its_peer() {
    use nix::sys::socket::{
        sendmsg, socketpair, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType,
    };
    use std::os::fd::{AsRawFd, OwnedFd};
    if !e2e::require_root("a_socket_without_a_process_is_a_kernel_socket_with_its_peer") {
        return;
    }
    let ns = Namespace::new();
    let root = Root::new("kernel");
    let held: (Socket, OwnedFd, OwnedFd) = ns.in_netns(|| {
        let server: SocketAddr = "127.0.0.1:2049".parse().unwrap();
        let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        listener.bind(&server.into()).unwrap();
        listener.listen(8).unwrap();
        let client = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let local: SocketAddr = "127.0.0.1:993".parse().unwrap();
        client.bind(&local.into()).unwrap();
        client.connect(&server.into()).unwrap();
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::empty(),
        )
        .unwrap();
        let fds = [client.as_raw_fd()];
        let iov = [std::io::IoSlice::new(b"x")];
        sendmsg::<()>(
            a.as_raw_fd(),
            &iov,
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .unwrap();
        drop(client);
        (listener, a, b)
    });
    let out = portpolicy(&ns, &root, &["why", "993/tcp"]);
    assert_eq!(out.code(), 1, "{out:?}");
    assert!(
        out.stdout.contains(
            "kernel socket: NFS client (sunrpc): ESTABLISHED 127.0.0.1:993 -> 127.0.0.1:2049"
        ),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("but kernel socket: NFS client (sunrpc) holds it"),
        "{}",
        out.stdout
    );
    drop(held);
}

#[test]
fn config_option_goes_before_or_after_the_subcommand() {
    let root = Root::new("configpos");
    fake_proc_sys(&root);
    root.write("/elsewhere.toml", "exclude = [\"600-700\"]\n");
    let cfg = root.path("/elsewhere.toml").display().to_string();
    for args in [&["--config", &cfg, "pool"][..], &["pool", "--config", &cfg]] {
        let out = no_ns_run(&root, args);
        assert_eq!(out.code(), 0, "{out:?}");
        assert_eq!(out.stdout.lines().next(), Some("701"), "{args:?}");
    }
}

/// Where /proc/sys/sunrpc exists, apply narrows the kernel NFS client's
/// range to the pool. This kernel has no sunrpc, so a fake sysctl tree.
#[test]
fn apply_sets_sunrpc_range_in_a_fake_sysctl_tree() {
    let root = Root::new("sunrpc");
    fake_proc_sys(&root);
    root.write("/proc-sys/sunrpc/min_resvport", "665\n");
    root.write("/proc-sys/sunrpc/max_resvport", "1023\n");
    root.write("/etc/portpolicy.toml", "exclude = [\"512-899\"]\n");
    let out = no_ns_run(&root, &["apply"]);
    assert_eq!(out.code(), 0, "{out:?}");
    // Pool above 899: 900-920, 922-988, ... (921 lwresd, 989-990 ftps, ...):
    // the longest run is 922-988.
    assert_eq!(
        root.read("/proc-sys/sunrpc/min_resvport").as_deref(),
        Some("922\n")
    );
    assert_eq!(
        root.read("/proc-sys/sunrpc/max_resvport").as_deref(),
        Some("988\n")
    );
    let dropin = root.read("/etc/sysctl.d/60-portpolicy.conf").unwrap();
    assert!(
        dropin.contains("sunrpc.min_resvport = 922\nsunrpc.max_resvport = 988\n"),
        "{dropin}"
    );
    let again = no_ns_run(&root, &["apply"]);
    assert!(again.stdout.contains("nothing to change"), "{again:?}");
}

/// High mode reads the namespace's own ephemeral range and stays out of it.
#[test]
fn high_mode_pool_avoids_the_namespace_ephemeral_range() {
    if !e2e::require_root("high_mode_pool_avoids_the_namespace_ephemeral_range") {
        return;
    }
    let ns = Namespace::new();
    let root = Root::new("high");
    root.write("/etc/portpolicy.toml", "mode = \"high\"\n");
    ns.run(
        "sh",
        &[
            "-c",
            "echo 22000 60999 > /proc/sys/net/ipv4/ip_local_port_range",
        ],
        T,
    )
    .assert_success("sysctl");
    let out = portpolicy(&ns, &root, &["pool"]);
    assert_eq!(out.code(), 0, "{out:?}");
    let ports: Vec<u16> = out.stdout.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(ports.first(), Some(&20000));
    assert_eq!(ports.last(), Some(&21999));
    let check = portpolicy(&ns, &root, &["check"]);
    assert!(
        check
            .stdout
            .contains("note: high_range 20000-24999 overlaps the ephemeral range 22000-60999"),
        "{}",
        check.stdout
    );
}

/// Without root, other users' /proc/PID/fd cannot be read: a socket whose
/// owner cannot be seen must not be called a kernel socket.
#[test]
fn unprivileged_why_does_not_guess_kernel_socket() {
    if !e2e::require_root("unprivileged_why_does_not_guess_kernel_socket") {
        return;
    }
    let ns = Namespace::new();
    let root = Root::new("nobody");
    let _s = hold(&ns, Type::STREAM, "127.0.0.1:631", true);
    let mut c = ns.command_as_nobody(e2e::binary("portpolicy"));
    c.arg("--root").arg(&root.0).args(["why", "631/tcp"]);
    let out = e2e::run_with_timeout(c, T);
    assert_eq!(out.code(), 1, "{out:?}");
    assert!(
        out.stdout.contains(
            "a socket of uid 0 whose owner could not be seen (run portpolicy as root): LISTEN 127.0.0.1:631"
        ),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("kernel socket"), "{}", out.stdout);
}

/// Every exclusion source read from files is named as the reason.
#[test]
fn every_source_is_named_by_why() {
    let root = Root::new("sources");
    fake_proc_sys(&root);
    root.write("/proc-sys/net/ipv4/ip_local_reserved_ports", "700\n");
    root.write("/etc/nfs.conf", "[statd]\nport = 662\n");
    root.write("/etc/nfs.conf.d/local.conf", "[mountd]\nport=663\n");
    root.write("/etc/portreserve/cups", "# cups\nipp\n664/udp\n");
    root.write("/etc/portpolicy.toml", "exclude = [\"665-666/tcp\"]\n");
    let p = |f: &str| root.path(f).display().to_string();
    let cases = [
        (
            "662/udp",
            "/etc/nfs.conf: statd.port = 662 (line 2)".to_string(),
        ),
        (
            "663/tcp",
            format!(
                "/etc/nfs.conf: mountd.port = 663 ({}:2)",
                p("/etc/nfs.conf.d/local.conf")
            ),
        ),
        (
            "631/tcp",
            format!("/etc/portreserve: {}:2", p("/etc/portreserve/cups")),
        ),
        (
            "664/udp",
            format!("/etc/portreserve: {}:3", p("/etc/portreserve/cups")),
        ),
        (
            "666/tcp",
            format!("config exclude: {}:1", p("/etc/portpolicy.toml")),
        ),
        (
            "700/tcp",
            "net.ipv4.ip_local_reserved_ports: entry 700".to_string(),
        ),
    ];
    for (port, reason) in cases {
        let out = no_ns_run(&root, &["why", port]);
        assert!(
            out.stdout.contains(&format!("{port}: not in the pool")),
            "{port}: {out:?}"
        );
        assert!(
            out.stdout.contains(&reason),
            "{port}: want {reason:?} in\n{}",
            out.stdout
        );
    }
    // Per protocol: 664 is reserved for udp only, 665-666 excluded for tcp only.
    let tcp = no_ns_run(&root, &["pool", "--proto", "tcp"]).stdout;
    let udp = no_ns_run(&root, &["pool", "--proto", "udp"]).stdout;
    assert!(tcp.lines().any(|l| l == "664") && !udp.lines().any(|l| l == "664"));
    assert!(!tcp.lines().any(|l| l == "665") && udp.lines().any(|l| l == "665"));
}
