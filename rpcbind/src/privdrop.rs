//! The privilege drop: once every socket is bound (or adopted) and the
//! daemon has detached, it becomes `_rpc` (Debian's build of rpcbind
//! 1.2.x does the same), or `daemon` with `-s`, through setgroups, setgid
//! and setuid. It keeps CAP_NET_BIND_SERVICE, and nothing else, only when
//! the port-allocation service must still bind privileged ports for its
//! clients; otherwise it keeps no capability at all. The bounding set is
//! emptied the same way, and no_new_privs is set. Does I/O (process
//! credentials, a pipe, files in /run).
//!
//! The unprivileged daemon cannot unlink `/run/rpcbind.sock` or
//! `/run/rpcbind.lock` (the directory belongs to root), which is why the C
//! daemon leaves them behind. Here a cleanup keeper is forked first: a
//! child that stays uid 0 but drops every capability, closes every
//! descriptor except a pipe from the daemon and the lock file (so the lock
//! stays held), and waits. When the daemon exits, cleanly or not, the
//! pipe reports end of file; the keeper removes the files it was given,
//! then the lock file while still holding the lock (so no new instance
//! can be between its bind and ours), and exits. On a clean exit the
//! daemon waits for it, so the files are gone when the daemon has exited.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use anyhow::Context as _;
use nix::sys::prctl;
use nix::sys::signal::Signal;
use nix::sys::wait::waitpid;
use nix::unistd::{setgroups, setresgid, setresuid, Pid, User};

use crate::lock::InstanceLock;
use crate::sys::{self, fork_single_threaded, Forked};

/// Debian's rpcbind user.
pub const RPC_USER: &str = "_rpc";
/// The user of 1.2.x's `-s`.
pub const RUN_AS_DAEMON: &str = "daemon";
/// CAP_NET_BIND_SERVICE.
pub const CAP_NET_BIND_SERVICE: u32 = 10;
/// The highest capability number to remove from the bounding set.
const CAP_LAST: u32 = 63;
/// The keeper's process name (`comm`), as `ps` and /proc show it.
pub const KEEPER_NAME: &str = "rpcbind-cleanup";

/// The account to run as: `daemon` with `-s`, `_rpc` otherwise. A
/// missing account stops the start, as in C, but says what to do.
pub fn target_user(run_as_daemon: bool) -> anyhow::Result<User> {
    let name = if run_as_daemon {
        RUN_AS_DAEMON
    } else {
        RPC_USER
    };
    match User::from_name(name) {
        Ok(Some(user)) => Ok(user),
        Ok(None) => anyhow::bail!(
            "cannot get uid of '{name}': no such user (Debian's rpcbind package creates it; \
             create it with `useradd --system --no-create-home --home-dir /run/rpcbind \
             --shell /usr/sbin/nologin {name}`)"
        ),
        Err(e) => Err(e).with_context(|| format!("cannot get uid of '{name}'")),
    }
}

/// Becomes `user` for good. With `keep_bind_service`, CAP_NET_BIND_SERVICE
/// stays effective and permitted; every other capability is gone from
/// every set. Must run while the process has a single thread.
pub fn drop_to(user: &User, keep_bind_service: bool) -> anyhow::Result<()> {
    let threads = crate::sys::thread_count()?;
    anyhow::ensure!(
        threads == 1,
        "refusing to drop privileges with {threads} threads running"
    );
    let keep = if keep_bind_service {
        1u64 << CAP_NET_BIND_SERVICE
    } else {
        0
    };
    // The bounding set needs CAP_SETPCAP, so it goes while we are root.
    empty_bounding_set(keep)?;
    prctl::set_keepcaps(keep_bind_service).context("PR_SET_KEEPCAPS")?;
    setgroups(&[]).context("dropping supplemental groups failed")?;
    setresgid(user.gid, user.gid, user.gid)
        .with_context(|| format!("setgid to '{}' ({}) failed", user.name, user.gid))?;
    setresuid(user.uid, user.uid, user.uid)
        .with_context(|| format!("setuid to '{}' ({}) failed", user.name, user.uid))?;
    sys::capset(keep).context("capset")?;
    prctl::set_keepcaps(false).context("PR_SET_KEEPCAPS")?;
    sys::clear_ambient().context("clearing ambient capabilities")?;
    prctl::set_no_new_privs().context("PR_SET_NO_NEW_PRIVS")?;
    Ok(())
}

fn empty_bounding_set(keep: u64) -> anyhow::Result<()> {
    for cap in 0..=CAP_LAST {
        if keep & (1u64 << cap) == 0 {
            sys::drop_bounding(cap).with_context(|| format!("PR_CAPBSET_DROP {cap}"))?;
        }
    }
    Ok(())
}

/// The daemon's end of the cleanup keeper.
#[derive(Debug)]
pub struct Keeper {
    pid: Pid,
    pipe: OwnedFd,
}

impl Keeper {
    /// Forks the keeper that removes `files`, then the lock file, once
    /// this process has exited. Must run before any thread starts.
    pub fn spawn(files: Vec<PathBuf>, lock: &InstanceLock) -> anyhow::Result<Keeper> {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        match fork_single_threaded().context("cannot fork the cleanup keeper")? {
            Forked::Child => {
                drop(write);
                keeper_main(read, files, lock)
            }
            Forked::Parent(pid) => {
                drop(read);
                Ok(Keeper { pid, pipe: write })
            }
        }
    }

    /// Clean exit: lets the keeper remove the files and waits for it.
    pub fn finish(self, lock: InstanceLock) {
        drop(lock);
        drop(self.pipe);
        if let Err(e) = waitpid(self.pid, None) {
            tracing::warn!("waiting for the cleanup keeper: {e}");
        }
    }
}

/// The keeper's whole life; never returns.
fn keeper_main(pipe: OwnedFd, files: Vec<PathBuf>, lock: &InstanceLock) -> ! {
    if let Ok(name) = CString::new(KEEPER_NAME) {
        let _ = prctl::set_name(&name);
    }
    // A ^C on the terminal or a cgroup-wide SIGTERM must not stop the
    // cleanup; the keeper ends by itself right after the daemon.
    for sig in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGHUP,
    ] {
        let _ = sys::ignore_signal(sig);
    }
    close_all_but(&[pipe.as_raw_fd(), lock.raw_fd()]);
    // uid 0 may still unlink in root's /run by plain permissions; it needs
    // no capability at all for that.
    if let Err(e) = empty_bounding_set(0).and_then(|()| Ok(sys::capset(0)?)) {
        eprintln!("rpcbind cleanup keeper: cannot drop capabilities: {e:#}");
    }
    let _ = prctl::set_no_new_privs();
    let mut pipe = std::fs::File::from(pipe);
    let mut buf = [0u8; 16];
    // Nothing is ever written: read returns 0 when the daemon is gone.
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => break,
            Err(e) if e.kind() != std::io::ErrorKind::Interrupted => break,
            _ => {}
        }
    }
    for f in &files {
        let _ = std::fs::remove_file(f);
    }
    let _ = std::fs::remove_file(lock.path());
    std::process::exit(0)
}

/// Closes every descriptor above stderr except `keep`.
fn close_all_but(keep: &[RawFd]) {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<RawFd> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2 && !keep.contains(fd))
        .collect();
    for fd in fds {
        sys::close_unowned(fd);
    }
}
