//! Private network and mount namespaces for end-to-end tests, and running
//! programs inside them with hard time limits. Does process and namespace
//! I/O (unshare, nsenter, ip, setns); implements no RFC.
//!
//! A `Namespace` is held open by one holder process started with
//! `unshare -n -m --propagation private`; it brings `lo` up and mounts a
//! tmpfs on `/run`, so a daemon inside sees a fresh `/run/rpcbind.sock`.
//! Everything started in it is killed and reaped when it is dropped.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::sys;

/// How long any setup step (namespace start, ip commands) may take.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// The result of a program run to completion (or killed at its deadline).
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// `None` when the program was killed at its deadline.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
}

impl RunOutput {
    /// The exit code; -1 for a signal or a timeout.
    pub fn code(&self) -> i32 {
        self.status.and_then(|s| s.code()).unwrap_or(-1)
    }

    /// True when the program exited with status 0 in time.
    pub fn success(&self) -> bool {
        !self.timed_out && self.code() == 0
    }

    /// Panics with both streams when the program did not succeed.
    pub fn assert_success(&self, what: &str) -> &Self {
        assert!(
            self.success(),
            "{what}: exit {} (timed out: {})\nstdout:\n{}\nstderr:\n{}",
            self.code(),
            self.timed_out,
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Runs `cmd` to completion, killing it after `timeout`.
pub fn run_with_timeout(mut cmd: Command, timeout: Duration) -> RunOutput {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return RunOutput {
                status: None,
                stdout: String::new(),
                stderr: format!("spawn {cmd:?}: {e}"),
                timed_out: false,
            }
        }
    };
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    // A process it left behind (a daemon that forked) may hold the pipes
    // open: wait for the end of the output only briefly, keep what came.
    let grace_end = Instant::now() + Duration::from_secs(1);
    RunOutput {
        timed_out: status.is_none(),
        status,
        stdout: out.finish(grace_end),
        stderr: err.finish(grace_end),
    }
}

/// Output being read from a pipe by a helper thread.
struct Drain {
    buf: Arc<Mutex<Vec<u8>>>,
    done: mpsc::Receiver<()>,
}

impl Drain {
    /// The output so far, after waiting until `deadline` at most for its end.
    fn finish(self, deadline: Instant) -> String {
        let _ = self
            .done
            .recv_timeout(deadline.saturating_duration_since(Instant::now()));
        let bytes = self.buf.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

fn drain<R: Read + Send + 'static>(r: Option<R>) -> Drain {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&buf);
    let (tx, done) = mpsc::channel();
    thread::spawn(move || {
        if let Some(mut r) = r {
            let mut chunk = [0u8; 4096];
            while let Ok(n @ 1..) = r.read(&mut chunk) {
                if let Ok(mut b) = sink.lock() {
                    b.extend_from_slice(&chunk[..n]);
                }
            }
        }
        let _ = tx.send(());
    });
    Drain { buf, done }
}

/// A process running in the background; killed and reaped on drop.
#[derive(Debug)]
pub struct Background {
    child: Child,
    stderr: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
}

impl Background {
    fn start(mut cmd: Command) -> std::io::Result<Background> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn()?;
        let stdout = collect(child.stdout.take());
        let stderr = collect(child.stderr.take());
        Ok(Background {
            child,
            stderr,
            stdout,
        })
    }

    /// The process id (as seen from the host's pid namespace).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the process has written to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// What the process has written to stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The exit status if the process has ended.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends `signal` and waits (bounded) for the process to end.
    pub fn signal_and_wait(&mut self, signal: i32, timeout: Duration) -> Option<ExitStatus> {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::try_from(signal).ok(),
        );
        self.wait_timeout(timeout)
    }

    /// Waits at most `timeout` for the process to end.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.try_wait() {
                // Let the reader threads catch the last output.
                thread::sleep(Duration::from_millis(20));
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect<R: Read + Send + 'static>(r: Option<R>) -> Arc<Mutex<String>> {
    let buf = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&buf);
    thread::spawn(move || {
        let Some(r) = r else { return };
        let mut reader = BufReader::new(r);
        let mut line = String::new();
        while matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
            if let Ok(mut b) = sink.lock() {
                b.push_str(&line);
            }
            line.clear();
        }
    });
    buf
}

/// A private network + mount namespace with `lo` up and a tmpfs on `/run`.
#[derive(Debug)]
pub struct Namespace {
    holder: Child,
    pid: u32,
}

impl Namespace {
    /// Starts the holder process and waits (bounded) until it is ready.
    pub fn new() -> Namespace {
        let script = "ip link set lo up && mount -t tmpfs -o mode=0755 tmpfs /run \
                      && echo ready && exec sleep 3600";
        // --pdeathsig: if the test process dies without unwinding (SIGKILL,
        // a timeout), the holder dies too and the namespace goes away.
        let mut holder = Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "unshare"])
            .args(["-n", "-m", "--propagation", "private", "sh", "-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn unshare");
        let stdout = holder.stdout.take().expect("holder stdout");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        match rx.recv_timeout(SETUP_TIMEOUT) {
            Ok(line) if line.trim() == "ready" => {}
            other => {
                let _ = holder.kill();
                let _ = holder.wait();
                panic!("namespace holder did not become ready: {other:?}");
            }
        }
        let pid = holder.id();
        Namespace { holder, pid }
    }

    /// The holder's pid; `/proc/PID/ns/*` name this namespace.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// A command that runs `prog` inside the namespace (network and mount).
    /// The process is killed if the test process dies (setpriv
    /// --pdeathsig; nsenter does not fork, so the pid is the program's).
    pub fn command(&self, prog: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("setpriv");
        c.args(["--pdeathsig", "KILL", "nsenter", "-t"])
            .arg(self.pid.to_string())
            .args(["-n", "-m", "--"])
            .arg(prog);
        c
    }

    /// A command that runs `prog` inside the namespace as `nobody`
    /// (uid and gid 65534, no supplementary groups).
    pub fn command_as_nobody(&self, prog: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = self.command("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(prog);
        c
    }

    /// Runs `prog args` inside the namespace to completion, bounded by `timeout`.
    pub fn run(&self, prog: &str, args: &[&str], timeout: Duration) -> RunOutput {
        let mut c = self.command(prog);
        c.args(args);
        run_with_timeout(c, timeout)
    }

    /// Like `run`, as `nobody`.
    pub fn run_as_nobody(&self, prog: &str, args: &[&str], timeout: Duration) -> RunOutput {
        let mut c = self.command_as_nobody(prog);
        c.args(args);
        run_with_timeout(c, timeout)
    }

    /// Starts `prog args` inside the namespace in the background.
    pub fn spawn(&self, prog: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Background {
        let mut c = self.command(prog);
        c.args(args);
        Background::start(c).expect("spawn nsenter")
    }

    /// Starts a prepared command (e.g. from `command_as_nobody`) in the background.
    pub fn spawn_command(&self, cmd: Command) -> Background {
        Background::start(cmd).expect("spawn nsenter")
    }

    /// The host's path to `path` inside this namespace's mount namespace.
    pub fn host_path(&self, path: &str) -> PathBuf {
        Path::new(&format!("/proc/{}/root", self.pid)).join(path.trim_start_matches('/'))
    }

    /// Adds an address to `lo` (use documentation ranges only).
    pub fn add_address(&self, cidr: &str) {
        // IPv6: nodad, or the address stays "tentative" and cannot be bound.
        let args: &[&str] = if cidr.contains(':') {
            &["-6", "addr", "add", cidr, "dev", "lo", "nodad"]
        } else {
            &["-4", "addr", "add", cidr, "dev", "lo"]
        };
        self.run("ip", args, SETUP_TIMEOUT)
            .assert_success("ip addr add");
    }

    /// Replaces the file `path` inside the namespace (only) with `contents`,
    /// by a bind mount from the namespace's /run. `path` must exist: a
    /// mount point cannot be created without touching the host's files.
    pub fn overlay_file(&self, path: &str, contents: &str) {
        assert!(
            std::path::Path::new(path).exists(),
            "overlay_file: {path} does not exist on the host, so it cannot be a \
             mount point; give the program another path (an option) instead"
        );
        let name = path.trim_start_matches('/').replace('/', "_");
        let staged = format!("/run/overlay-{name}");
        std::fs::write(self.host_path(&staged), contents).expect("write overlay");
        self.run("mount", &["--bind", &staged, path], SETUP_TIMEOUT)
            .assert_success("bind-mount overlay");
    }

    /// Mounts a fresh tmpfs on `dir` (created if missing) inside the namespace.
    pub fn mount_tmpfs(&self, dir: &str) {
        self.run("mkdir", &["-p", dir], SETUP_TIMEOUT)
            .assert_success("mkdir");
        self.run("mount", &["-t", "tmpfs", "tmpfs", dir], SETUP_TIMEOUT)
            .assert_success("mount tmpfs");
    }

    /// Joins `a` and `b` with a veth pair (`veth-a` in a, `veth-b` in b),
    /// gives each side its address (CIDR) and brings both up.
    pub fn veth_pair(a: &Namespace, b: &Namespace, addr_a: &str, addr_b: &str) {
        let pid_b = b.pid.to_string();
        a.run(
            "ip",
            &[
                "link", "add", "veth-a", "type", "veth", "peer", "name", "veth-b", "netns", &pid_b,
            ],
            SETUP_TIMEOUT,
        )
        .assert_success("ip link add veth");
        for (ns, dev, addr) in [(a, "veth-a", addr_a), (b, "veth-b", addr_b)] {
            ns.run("ip", &["addr", "add", addr, "dev", dev], SETUP_TIMEOUT)
                .assert_success("ip addr add (veth)");
            ns.run("ip", &["link", "set", dev, "up"], SETUP_TIMEOUT)
                .assert_success("ip link set up (veth)");
        }
    }

    /// Runs `f` on a thread that has entered this network namespace, so
    /// sockets it creates live here. The mount namespace is not entered
    /// (a thread cannot); reach files through `host_path`.
    pub fn in_netns<T, F>(&self, f: F) -> T
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let ns_file = File::open(format!("/proc/{}/ns/net", self.pid)).expect("open netns");
        thread::spawn(move || {
            sys::enter_netns(&ns_file).expect("setns");
            f()
        })
        .join()
        .expect("in_netns closure panicked")
    }

    /// Kills every process (other than the holder) living in this netns.
    fn kill_members(&self) {
        let Ok(ours) = std::fs::read_link(format!("/proc/{}/ns/net", self.pid)) else {
            return;
        };
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return;
        };
        for entry in dir.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            if pid as u32 == self.pid {
                continue;
            }
            if std::fs::read_link(format!("/proc/{pid}/ns/net"))
                .ok()
                .as_ref()
                == Some(&ours)
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

impl Default for Namespace {
    fn default() -> Self {
        Namespace::new()
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        self.kill_members();
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}
