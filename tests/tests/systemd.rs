//! Ours only: systemd integration without systemd as PID 1 (it is not
//! here, so `systemctl` cannot start units). Socket activation is driven
//! by `systemd-socket-activate` (systemd's own tool, the same fd-passing
//! protocol), readiness by a NOTIFY_SOCKET datagram socket of the test's
//! own in the namespace's /run.

#![allow(clippy::unwrap_used)] // tests may unwrap (house rules)

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::services::rpcinfo;
use e2e::{Background, Impl, Namespace};

const T: Duration = Duration::from_secs(10);
/// Keeps the allocation service's state inside the namespace.
const STATE: [&str; 2] = ["--alloc-state", e2e::TEST_ALLOC_STATE];

fn activator_available(test: &str) -> bool {
    let ok = Command::new("systemd-socket-activate")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        e2e::skip_note(&format!("skipping {test}: systemd-socket-activate missing"));
    }
    ok
}

fn ours() -> String {
    Impl::Ours.program().display().to_string()
}

/// `ss -Hlnp` lines (state listening, numeric, with processes) of `kind`.
fn ss(ns: &Namespace, kind: &str) -> String {
    let out = ns.run("ss", &[kind], T);
    out.assert_success("ss");
    out.stdout
}

/// Waits until `cond` holds or `T` passes.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + T;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The fd numbers `pid` holds for sockets of one `ss` filter line.
fn fd_of(ss_out: &str, addr: &str, pid: u32) -> Option<u32> {
    let line = ss_out
        .lines()
        .find(|l| l.split_whitespace().any(|w| w == addr))?;
    let tag = format!("pid={pid},fd=");
    let at = line.find(&tag)? + tag.len();
    line[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[test]
fn passed_sockets_are_served_and_not_bound_again() {
    let test = "passed_sockets_are_served_and_not_bound_again";
    if !e2e::require_root(test) || !activator_available(test) {
        return;
    }
    let ns = Namespace::new();
    // One activator per socket type (-d applies to all of its sockets):
    // the outer passes UDP through to the inner, which adds the unix
    // sockets and TCP. Names are deliberately not in socket order.
    let mut c = ns.command("systemd-socket-activate");
    c.args(["-d", "-l", "0.0.0.0:111", "--fdname=udp"])
        .args(["systemd-socket-activate", "-l", "/run/rpcbind.sock"])
        .args(["-l", "0.0.0.0:111", "-l", "@/run/rpcbind.sock"])
        .args(["--fdname=tcp:abstract:local:extra", &ours(), "-f"])
        .args(STATE);
    let mut act = ns.spawn_command(c);
    wait_for("the activator's UDP socket", || {
        ss(&ns, "-Hulnp").contains("0.0.0.0:111")
    });
    // The first datagram starts the inner activator, the first
    // connection starts rpcbind; both are then answered by rpcbind.
    rpcinfo(&ns, &["-T", "udp", "127.0.0.1", "100000", "2"]).assert_success("udp NULL");
    wait_for("the inner activator's TCP socket", || {
        ss(&ns, "-Hltnp").contains("0.0.0.0:111")
    });
    rpcinfo(&ns, &["-T", "tcp", "127.0.0.1", "100000", "4"]).assert_success("tcp NULL");
    let pid = act.pid();
    let dump = rpcinfo(&ns, &[]);
    dump.assert_success("rpcinfo over the local socket");
    for netid in ["local", "udp", "tcp", "udp6", "tcp6"] {
        assert!(
            dump.stdout.contains(&format!(" {netid} ")),
            "{netid} missing:\n{}",
            dump.stdout
        );
    }
    let abs = e2e::run_with_timeout(
        {
            let mut c = ns.command(e2e::rpcclient());
            c.args([
                "abstract:/run/rpcbind.sock",
                "pmap-getport",
                "100000",
                "2",
                "6",
            ]);
            c
        },
        T,
    );
    abs.assert_success("abstract socket");
    // The passed sockets are descriptors 3 (udp), 4 (unix), 5 (tcp) and
    // 6 (abstract) of rpcbind (exec keeps the pid); udp6/tcp6 were not
    // passed, so rpcbind bound them itself.
    let (udp, tcp, unix) = (ss(&ns, "-Hulnp"), ss(&ns, "-Hltnp"), ss(&ns, "-Hxlnp"));
    assert_eq!(fd_of(&udp, "0.0.0.0:111", pid), Some(3), "{udp}");
    assert_eq!(fd_of(&unix, "/run/rpcbind.sock", pid), Some(4), "{unix}");
    assert_eq!(fd_of(&tcp, "0.0.0.0:111", pid), Some(5), "{tcp}");
    assert_eq!(fd_of(&unix, "@/run/rpcbind.sock", pid), Some(6), "{unix}");
    assert!(
        fd_of(&udp, "[::]:111", pid).is_some_and(|fd| fd > 6),
        "{udp}"
    );
    assert!(
        fd_of(&tcp, "[::]:111", pid).is_some_and(|fd| fd > 6),
        "{tcp}"
    );
    for (out, addr) in [(&udp, "0.0.0.0:111"), (&tcp, "0.0.0.0:111")] {
        let n = out.lines().filter(|l| l.contains(addr)).count();
        assert_eq!(n, 1, "one socket on {addr}:\n{out}");
    }
    assert!(act
        .signal_and_wait(libc::SIGTERM, T)
        .is_some_and(|s| s.success()));
    let err = act.stderr();
    assert!(!err.contains("cannot bind"), "{err}");
    // The unit's socket file is the unit's to remove; the lock is ours.
    assert!(ns.host_path("/run/rpcbind.sock").exists());
    assert!(!ns.host_path("/run/rpcbind.lock").exists(), "{err}");
}

#[test]
fn dual_stack_socket_is_refused_with_c_message() {
    let test = "dual_stack_socket_is_refused_with_c_message";
    if !e2e::require_root(test) || !activator_available(test) {
        return;
    }
    let ns = Namespace::new();
    // systemd-socket-activate leaves IPV6_V6ONLY off: a dual-stack socket.
    let mut act = ns.spawn(
        "systemd-socket-activate",
        &["-l", "[::]:111", &ours(), "-f", STATE[0], STATE[1]],
    );
    wait_for("the activator's socket", || {
        ss(&ns, "-Hltnp").contains(":111")
    });
    // Connecting over IPv4 works on a dual-stack socket and starts rpcbind.
    let _ = ns.in_netns(|| {
        std::net::TcpStream::connect_timeout(&"127.0.0.1:111".parse().unwrap(), T).map(|_| ())
    });
    let status = act.wait_timeout(T).expect("rpcbind did not exit");
    assert_eq!(status.code(), Some(1));
    let err = act.stderr();
    assert!(
        err.contains("systemd has passed an IPv4/IPv6 dual-mode socket.")
            && err.contains(
                "Please fix your systemd config by specifying IPv4 and IPv6 sockets \
                 separately and using BindIPv6Only=ipv6-only."
            ),
        "{err}"
    );
}

/// Every notification datagram received within `T` until `stop` says so.
fn recv_until(sock: &UnixDatagram, seen: &mut Vec<String>, stop: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + T;
    let mut buf = [0u8; 4096];
    loop {
        assert!(
            Instant::now() < deadline,
            "no matching notification; seen {seen:?}"
        );
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = stop(&msg);
            seen.push(msg);
            if done {
                return;
            }
        }
    }
}

fn status_count(msg: &str) -> Option<usize> {
    let rest = msg.lines().find_map(|l| l.strip_prefix("STATUS="))?;
    rest.split_whitespace().next()?.parse().ok()
}

/// Registrations `rpcinfo` (DUMP over the local socket) lists.
fn dump_count(ns: &Namespace) -> usize {
    let out = rpcinfo(ns, &[]);
    out.assert_success("rpcinfo");
    out.stdout
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .count()
}

fn start_notified(ns: &Namespace, notify: &str) -> Background {
    let mut c = ns.command(Impl::Ours.program());
    c.arg("-f").args(STATE).env("NOTIFY_SOCKET", notify);
    ns.spawn_command(c)
}

#[test]
fn notify_ready_status_and_stopping() {
    if !e2e::require_root("notify_ready_status_and_stopping") {
        return;
    }
    let ns = Namespace::new();
    let sock = UnixDatagram::bind(ns.host_path("/run/notify.sock")).expect("bind notify socket");
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut d = start_notified(&ns, "/run/notify.sock");
    let mut seen = Vec::new();
    recv_until(&sock, &mut seen, |m| m.lines().any(|l| l == "READY=1"));
    // Ready means served: every transport answers at once.
    for (t, host) in [
        ("udp", "127.0.0.1"),
        ("tcp", "127.0.0.1"),
        ("udp6", "::1"),
        ("tcp6", "::1"),
    ] {
        rpcinfo(&ns, &["-T", t, host, "100000", "3"]).assert_success(t);
    }
    let ready = seen.last().unwrap();
    assert_eq!(status_count(ready), Some(dump_count(&ns)), "{ready:?}");
    let before = dump_count(&ns);
    let mut c = ns.command(e2e::rpcclient());
    c.args([
        "unix:/run/rpcbind.sock",
        "set",
        "200000",
        "1",
        "udp",
        "0.0.0.0.4.1",
        "x",
    ]);
    e2e::run_with_timeout(c, T).assert_success("SET");
    assert_eq!(dump_count(&ns), before + 1);
    recv_until(&sock, &mut seen, |m| status_count(m) == Some(before + 1));
    assert!(d.process_signal_term());
    recv_until(&sock, &mut seen, |m| m.lines().any(|l| l == "STOPPING=1"));
    assert!(d.wait_timeout(T).is_some_and(|s| s.success()));
}

#[test]
fn notify_to_an_abstract_socket() {
    if !e2e::require_root("notify_to_an_abstract_socket") {
        return;
    }
    let ns = Namespace::new();
    let name = "rpcbind-e2e-notify";
    // Abstract names live in the network namespace: bind it there.
    let sock = ns.in_netns(move || {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name).unwrap();
        UnixDatagram::bind_addr(&addr).unwrap()
    });
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut d = start_notified(&ns, &format!("@{name}"));
    let mut seen = Vec::new();
    recv_until(&sock, &mut seen, |m| m.lines().any(|l| l == "READY=1"));
    rpcinfo(&ns, &["-p"]).assert_success("rpcinfo -p");
    assert!(d.process_signal_term());
    recv_until(&sock, &mut seen, |m| m == "STOPPING=1");
}

trait SignalTerm {
    fn process_signal_term(&mut self) -> bool;
}

impl SignalTerm for Background {
    /// Sends SIGTERM without waiting.
    fn process_signal_term(&mut self) -> bool {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .is_ok()
    }
}

/// The shipped units load cleanly (`systemd-analyze verify` reports bad
/// values, unknown options and missing executables on stderr).
#[test]
fn shipped_units_pass_systemd_analyze_verify() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/systemd");
    let out = match Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(dir.join("rpcbind.socket"))
        .arg(dir.join("rpcbind.service"))
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            e2e::skip_note(&format!("skipping unit verification: systemd-analyze: {e}"));
            return;
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.trim().is_empty(), "{stderr}");
}
