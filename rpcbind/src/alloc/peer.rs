//! Who is on the other end of a local connection: uid, gid and pid from
//! SO_PEERCRED and a pidfd (SO_PEERPIDFD, or pidfd_open() of the pid on
//! kernels without it), both taken when the connection is accepted; the
//! supplementary groups, systemd unit and start time from /proc when a
//! request needs them. Does I/O (socket options, /proc).

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{getsockopt, sockopt};
use portpolicy::alloc::Caller;

/// The peer of one local connection.
#[derive(Debug, Clone)]
pub struct Peer {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
    /// Refers to the process itself, whatever becomes of its pid.
    pub pidfd: Option<Arc<OwnedFd>>,
}

impl Peer {
    /// The peer of a connected local socket, or `None` when the kernel
    /// does not say (not a Unix socket).
    pub fn of(socket: &impl AsFd) -> Option<Peer> {
        let cred = getsockopt(socket, sockopt::PeerCredentials).ok()?;
        let pidfd = getsockopt(socket, sockopt::PeerPidfd)
            .or_else(|_| crate::sys::pidfd_open(cred.pid()))
            .ok();
        Some(Peer {
            pid: cred.pid(),
            uid: cred.uid(),
            gid: cred.gid(),
            pidfd: pidfd.map(Arc::new),
        })
    }

    /// The process has exited (its pidfd is readable).
    pub fn gone(&self) -> bool {
        self.pidfd.as_deref().is_some_and(exited)
    }

    /// The caller as the allocator sees it. What /proc says is used only
    /// if the process is still the one that connected afterwards (its
    /// pidfd not readable), so a reused pid cannot lend its groups.
    pub fn caller(&self) -> Caller {
        let proc_dir = format!("/proc/{}", self.pid);
        let status = std::fs::read_to_string(format!("{proc_dir}/status")).unwrap_or_default();
        let cgroup = std::fs::read_to_string(format!("{proc_dir}/cgroup")).unwrap_or_default();
        let stat = std::fs::read_to_string(format!("{proc_dir}/stat")).unwrap_or_default();
        let mut gids = vec![self.gid];
        let alive = !self.gone();
        if alive {
            gids.extend(supplementary_groups(&status).filter(|g| *g != self.gid));
        }
        Caller {
            pid: self.pid,
            uid: self.uid,
            gids,
            unit: alive
                .then(|| portpolicy::holders::unit_from_cgroup(&cgroup))
                .flatten(),
            start_time: alive.then(|| start_time(&stat)).flatten(),
        }
    }
}

/// A pidfd is readable once its process has exited.
pub fn exited(pidfd: &OwnedFd) -> bool {
    let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
}

/// The `Groups:` line of /proc/PID/status.
fn supplementary_groups(status: &str) -> impl Iterator<Item = u32> + '_ {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .unwrap_or("")
        .split_ascii_whitespace()
        .filter_map(|g| g.parse().ok())
}

/// Field 22 (starttime) of /proc/PID/stat; the command name (field 2)
/// may hold spaces and parentheses, so fields are counted after the
/// last `)`.
pub fn start_time(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

/// The start time of a running process, if it exists.
pub fn start_time_of(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    start_time(&stat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_counts_after_the_command_name() {
        let stat = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 10";
        assert_eq!(start_time(stat), Some(98765));
        assert_eq!(start_time("42 (x"), None);
    }

    #[test]
    fn groups_line() {
        let status = "Name:\tx\nGid:\t5\t5\t5\t5\nGroups:\t4 24 27 \n";
        assert_eq!(
            supplementary_groups(status).collect::<Vec<_>>(),
            [4, 24, 27]
        );
    }

    #[test]
    fn this_process_is_its_own_peer() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let peer = Peer::of(&a).unwrap();
        assert_eq!(peer.pid, std::process::id() as i32);
        assert!(!peer.gone());
        let caller = peer.caller();
        assert_eq!(caller.start_time, start_time_of(peer.pid));
        assert!(caller.start_time.is_some());
    }
}
