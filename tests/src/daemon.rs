//! Starting an rpcbind daemon (ours or Debian's C reference) inside a
//! `Namespace` and waiting until it answers. Does process I/O; implements
//! no RFC.

use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use crate::namespace::{Background, Namespace};

/// Where Debian installs the C reference daemon.
pub const REFERENCE_RPCBIND: &str = "/usr/sbin/rpcbind";

/// How long a daemon may take to start answering.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Which rpcbind implementation a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Impl {
    /// This workspace's `rpcbind` binary.
    Ours,
    /// Debian's C rpcbind (`/usr/sbin/rpcbind`).
    Reference,
}

impl Impl {
    /// Both implementations, in the order tests run them.
    pub const ALL: [Impl; 2] = [Impl::Reference, Impl::Ours];

    /// Whether this implementation can be run here.
    pub fn available(self) -> bool {
        match self {
            Impl::Ours => true,
            Impl::Reference => std::path::Path::new(REFERENCE_RPCBIND).exists(),
        }
    }

    /// The program to execute.
    pub fn program(self) -> PathBuf {
        match self {
            Impl::Ours => crate::binary("rpcbind"),
            Impl::Reference => PathBuf::from(REFERENCE_RPCBIND),
        }
    }

    /// A short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Impl::Ours => "ours",
            Impl::Reference => "reference",
        }
    }
}

/// A running rpcbind daemon in a namespace; killed on drop.
#[derive(Debug)]
pub struct Rpcbind<'ns> {
    pub ns: &'ns Namespace,
    pub which: Impl,
    pub process: Background,
}

impl Impl {
    /// Arguments that keep the daemon's own state inside the test's
    /// namespace: ours keeps the allocation service's state in
    /// /var/lib/rpcbind by default, which is the host's.
    pub fn state_args(self) -> &'static [&'static str] {
        match self {
            Impl::Ours => &["--alloc-state", TEST_ALLOC_STATE],
            Impl::Reference => &[],
        }
    }
}

/// Where tests keep our daemon's allocation state (inside the namespace's
/// tmpfs /run; a directory of its own, so that the daemon can hand it to
/// the unprivileged user it drops to).
pub const TEST_ALLOC_STATE: &str = "/run/portalloc/portalloc.state";

impl<'ns> Rpcbind<'ns> {
    /// Starts `which` with `-f` and `extra` arguments and waits until the
    /// local socket exists and TCP and UDP port 111 are bound. Panics
    /// (with the daemon's stderr) when it does not within `START_TIMEOUT`.
    pub fn start(ns: &'ns Namespace, which: Impl, extra: &[&str]) -> Rpcbind<'ns> {
        Rpcbind::start_on(ns, which, extra, 111)
    }

    /// Like `start`, waiting for `port` instead of 111 (for a
    /// namespace whose /etc/services names another port).
    pub fn start_on(ns: &'ns Namespace, which: Impl, extra: &[&str], port: u16) -> Rpcbind<'ns> {
        let mut args = vec!["-f"];
        args.extend_from_slice(extra);
        // Keep the state inside the namespace unless the test chose a place.
        if !extra.contains(&"--alloc-state") {
            args.extend_from_slice(which.state_args());
        }
        let process = ns.spawn(which.program(), &args);
        let mut daemon = Rpcbind { ns, which, process };
        daemon.wait_ready(port);
        daemon
    }

    /// Ready when the local socket exists and TCP and UDP `port` are
    /// bound. No RPC call is made, so the statistics (`rpcinfo -m`) start
    /// at 0.
    fn wait_ready(&mut self, port: u16) {
        let deadline = Instant::now() + START_TIMEOUT;
        let sock = self.ns.host_path("/run/rpcbind.sock");
        loop {
            if let Some(status) = self.process.try_wait() {
                panic!(
                    "{} rpcbind exited early ({status}); stderr:\n{}",
                    self.which.name(),
                    self.process.stderr()
                );
            }
            if sock.exists() && self.listens_on(port) {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{} rpcbind did not listen on {port} within {START_TIMEOUT:?}; stderr:\n{}",
                    self.which.name(),
                    self.process.stderr()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Both a TCP listener and a UDP socket on `port` exist.
    fn listens_on(&self, port: u16) -> bool {
        let filter = format!("sport = :{port}");
        ["-Hltn", "-Hlun"].iter().all(|kind| {
            let out = self.ns.run("ss", &[kind, &filter], Duration::from_secs(3));
            out.success() && !out.stdout.trim().is_empty()
        })
    }

    /// Sends SIGTERM and waits (bounded) for the daemon to exit.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        self.process
            .signal_and_wait(libc::SIGTERM, Duration::from_secs(10))
    }
}
