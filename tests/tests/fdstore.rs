//! End-to-end: reservation sockets kept in systemd's file-descriptor
//! store (FDSTORE=1) across a `kill -9` of our rpcbind. A fake systemd of
//! the test's own (`fakesd.py`, python3 in the namespace) owns the
//! NOTIFY_SOCKET, keeps the descriptors it is sent with their FDNAMEs and
//! starts the daemon again with them as LISTEN_FDS/LISTEN_FDNAMES. While
//! the daemon is down, every kind of bind of the reserved port fails;
//! after the restart the daemon holds, and CLAIM hands out, the very
//! socket the store kept (same socket inode).

use std::collections::HashMap;
use std::thread;
use std::time::{Duration, Instant};

use e2e::reserved::{assert_bindresvport_avoids, assert_cannot_bind, binder};
use e2e::{binary, require_root, Background, Namespace};

const T: Duration = Duration::from_secs(10);
const STATE: &str = "/run/portalloc/pa.state";
const CONFIG: &str = "/run/alloc-policy.toml";
const SCRIPT: &str = "/run/fakesd.py";
/// Reservation `svc` of 900 (tcp and udp), as in `alloc.rs`.
const RESERVED: &str = "mode = \"privileged\"\n\n[allocation]\nquota = 2\n\n\
    [[reservation]]\nname = \"svc\"\nport = 900\nprotocol = \"both\"\n";
const TCP: &str = "resv.svc.tcp";
const UDP: &str = "resv.svc.udp";

/// Kills the daemons the fake systemd started, whatever happens.
struct Daemons(Vec<u32>);

impl Drop for Daemons {
    fn drop(&mut self) {
        for &pid in &self.0 {
            let _ = kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

fn kill(pid: u32, sig: nix::sys::signal::Signal) -> nix::Result<()> {
    let pid = i32::try_from(pid).expect("pid fits");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig)
}

/// The fake systemd, started on our rpcbind with the reservation policy.
fn fakesd(ns: &Namespace, stale: bool) -> Background {
    fakesd_with(ns, stale, &[])
}

/// [`fakesd`] with `extra` daemon arguments.
fn fakesd_with(ns: &Namespace, stale: bool, extra: &[&str]) -> Background {
    std::fs::write(ns.host_path(SCRIPT), include_str!("fakesd.py")).expect("write script");
    std::fs::write(ns.host_path(CONFIG), RESERVED).expect("write policy");
    let rpcbind = binary("rpcbind").display().to_string();
    let mut args = vec![SCRIPT];
    if stale {
        args.push("--stale");
    }
    args.extend([
        &rpcbind,
        "-f",
        "--policy-config",
        CONFIG,
        "--alloc-state",
        STATE,
    ]);
    args.extend_from_slice(extra);
    ns.spawn("python3", &args)
}

/// Waits until the fake systemd has reported `n` READY=1 (one per start).
fn wait_ready(sd: &mut Background, n: usize) -> String {
    let deadline = Instant::now() + T;
    loop {
        let out = sd.stdout();
        if out.lines().filter(|l| *l == "ready").count() >= n {
            return out;
        }
        let gave_up = out.lines().any(|l| l == "timeout") || sd.try_wait().is_some();
        assert!(
            !gave_up && Instant::now() < deadline,
            "daemon start {n} not ready\nstdout:\n{out}\nstderr:\n{}",
            sd.stderr()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

fn pids(out: &str) -> Vec<u32> {
    out.lines()
        .filter_map(|l| l.strip_prefix("pid ")?.parse().ok())
        .collect()
}

/// FDNAME -> socket inode of the descriptor the store holds (last word).
fn stored(out: &str) -> HashMap<String, u64> {
    let mut held = HashMap::new();
    for line in out.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["stored", name, ino] => {
                held.insert((*name).to_owned(), ino.parse().expect("inode"));
            }
            ["removed", name] => {
                held.remove(*name);
            }
            _ => {}
        }
    }
    held
}

/// The socket inodes `pid` has open (`socket:[N]` links in /proc).
fn socket_inodes(pid: u32) -> Vec<u64> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            l.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

fn touch(ns: &Namespace, path: &str) {
    std::fs::write(ns.host_path(path), "").expect("touch");
}

/// Every kind of bind of 900 while nobody but the store holds it.
fn assert_port_900_cannot_be_bound(ns: &Namespace) {
    const WHEN: &str = " while the daemon was down";
    assert_cannot_bind(ns, 900, WHEN);
    // The NFS client's way ends in a connect() to 111: something must
    // listen there while the daemon is down.
    let script = "import socket,time\ns=socket.socket()\ns.bind(('127.0.0.1',111))\n\
                  s.listen()\nprint('up',flush=True)\ntime.sleep(60)";
    let listener = ns.spawn("python3", &["-c", script]);
    wait_for(&listener, "the listener on 111", |out| out.contains("up"));
    let nfs = binder(ns, &["nfs", "900"]);
    drop(listener);
    assert_eq!(nfs.stdout.trim(), "bound 899", "{nfs:?}");
    assert_bindresvport_avoids(ns, 900, WHEN);
}

/// What a claimed reservation socket is, seen from the claimant's fd 3.
fn claimed_inode(ns: &Namespace, proto: &str) -> String {
    let pp = binary("portpolicy").display().to_string();
    let flag = format!("--{proto}");
    let out = ns.run(
        &pp,
        &[
            "exec",
            "--name",
            "svc",
            &flag,
            "--",
            "sh",
            "-c",
            "readlink /proc/$$/fd/3",
        ],
        T,
    );
    out.assert_success(&format!("claim svc/{proto}"));
    out.stdout.trim().to_owned()
}

#[test]
fn reservation_sockets_survive_kill_9_in_the_descriptor_store() {
    if !require_root("fdstore kill -9") || !python3_available() {
        return;
    }
    let ns = Namespace::new();
    let mut sd = fakesd(&ns, false);
    let mut daemons = Daemons(Vec::new());
    let out = wait_ready(&mut sd, 1);
    daemons.0 = pids(&out);
    let first = stored(&out);
    let (tcp, udp) = (first[TCP], first[UDP]);
    assert_eq!(first.len(), 2, "{out}");
    let p1 = daemons.0[0];
    let held = socket_inodes(p1);
    assert!(held.contains(&tcp) && held.contains(&udp), "{held:?}");

    kill(p1, nix::sys::signal::Signal::SIGKILL).expect("kill -9");
    let deadline = Instant::now() + T;
    while !socket_inodes(p1).is_empty() {
        assert!(Instant::now() < deadline, "daemon {p1} still has sockets");
        thread::sleep(Duration::from_millis(20));
    }
    assert_port_900_cannot_be_bound(&ns);
    // The socket files of the killed daemon do not stop a restart.
    let _ = std::fs::remove_file(ns.host_path("/run/rpcbind.sock"));

    touch(&ns, "/run/restart");
    let out = wait_ready(&mut sd, 2);
    daemons.0 = pids(&out);
    let p2 = *daemons.0.last().expect("second pid");
    assert_ne!(p1, p2);
    let after = stored(&out);
    assert_eq!(after, first, "the store keeps the same sockets: {out}");
    let held = socket_inodes(p2);
    assert!(
        held.contains(&tcp) && held.contains(&udp),
        "the new daemon holds the stored sockets {tcp} {udp}: {held:?}"
    );
    let leases = ns.run(&binary("portpolicy").display().to_string(), &["leases"], T);
    leases.assert_success("portpolicy leases");
    let svc: Vec<&str> = leases
        .stdout
        .lines()
        .filter(|l| l.contains("svc"))
        .collect();
    assert!(
        svc.len() == 2 && svc.iter().all(|l| l.contains(" yes ") && l.contains("900")),
        "reservation held: {}",
        leases.stdout
    );
    assert_eq!(claimed_inode(&ns, "tcp"), format!("socket:[{tcp}]"));
    assert_eq!(claimed_inode(&ns, "udp"), format!("socket:[{udp}]"));

    // `portpolicy release` lets go for good: out of the store too.
    let pp = binary("portpolicy").display().to_string();
    ns.run(&pp, &["release", "svc"], T)
        .assert_success("portpolicy release svc");
    wait_for(&sd, "FDSTOREREMOVE of both", |out| {
        stored(out).is_empty()
            && out.contains(&format!("removed {TCP}"))
            && out.contains(&format!("removed {UDP}"))
    });

    touch(&ns, "/run/stop");
    assert!(
        sd.wait_timeout(T).is_some_and(|s| s.success()),
        "{}",
        sd.stderr()
    );
}

#[test]
fn stored_sockets_that_fit_no_reservation_are_closed_and_removed() {
    if !require_root("fdstore stale") || !python3_available() {
        return;
    }
    let ns = Namespace::new();
    let mut sd = fakesd(&ns, true);
    let mut daemons = Daemons(Vec::new());
    let out = wait_ready(&mut sd, 1);
    daemons.0 = pids(&out);
    let stale: HashMap<String, u64> = stored(out.split("pid ").next().unwrap_or(""));
    assert_eq!(stale.len(), 2, "{out}");
    for name in ["resv.gone.tcp", UDP] {
        assert!(
            out.lines().any(|l| l == format!("removed {name}")),
            "{name} not removed from the store:\n{out}"
        );
    }
    let now = stored(&out);
    assert!(now.contains_key(TCP) && now.contains_key(UDP), "{out}");
    assert_ne!(now[UDP], stale[UDP], "a fresh socket for svc/udp");
    let held = socket_inodes(daemons.0[0]);
    for (name, ino) in &stale {
        assert!(!held.contains(ino), "the daemon kept the stale {name}");
    }
    assert!(
        held.contains(&now[UDP]) && held.contains(&now[TCP]),
        "{held:?}"
    );
}

#[test]
fn a_reservation_bound_later_is_stored_then() {
    if !require_root("fdstore late bind") || !python3_available() {
        return;
    }
    let ns = Namespace::new();
    // Someone has 900/tcp when the daemon starts: only udp is held.
    let script = "import socket,time\ns=socket.socket()\ns.bind(('0.0.0.0',900))\n\
                  s.listen()\nprint('up',flush=True)\ntime.sleep(60)";
    let blocker = ns.spawn("python3", &["-c", script]);
    wait_for(&blocker, "the blocker", |out| out.contains("up"));
    let mut sd = fakesd_with(&ns, false, &["--alloc-sweep", "100"]);
    let mut daemons = Daemons(Vec::new());
    let out = wait_ready(&mut sd, 1);
    daemons.0 = pids(&out);
    let first = stored(&out);
    assert!(first.contains_key(UDP) && !first.contains_key(TCP), "{out}");
    drop(blocker);
    wait_for(&sd, "resv.svc.tcp stored once bound", |out| {
        stored(out).contains_key(TCP)
    });
    let tcp = stored(&sd.stdout())[TCP];
    assert!(socket_inodes(daemons.0[0]).contains(&tcp));
}

/// Waits until `pred` holds for the output of `bg`.
fn wait_for(bg: &Background, what: &str, pred: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + T;
    while !pred(&bg.stdout()) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\nstdout:\n{}\nstderr:\n{}",
            bg.stdout(),
            bg.stderr()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

fn python3_available() -> bool {
    let ok = std::process::Command::new("python3")
        .arg("-c")
        .arg("import socket; socket.MSG_CMSG_CLOEXEC")
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        e2e::skip_note("skipping fdstore tests: python3 missing");
    }
    ok
}
