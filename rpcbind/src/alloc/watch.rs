//! The end of leases: a task per owning process waits for its pidfd to
//! become readable (the process exited); its leases then become orphans,
//! and an orphan ends once sock_diag shows its port bound by nobody (a
//! child that inherited the socket keeps it alive). A periodic sweep
//! re-checks orphans, owners without a pidfd (restored from the state
//! file: pid and start time from /proc) and reservations not held yet,
//! and ends the leases of LIVE processes whose port nobody has bound at
//! two consecutive sweeps (the rule of `--reap-interval`, shared through
//! [`crate::reap::two_checks`]): a daemon that allocates and closes
//! client sockets in a loop would otherwise drain the pool. A lease
//! granted less than one sweep ago is never a suspect (its descriptor
//! may still be on its way). One sock_diag dump per sweep covers every
//! lease. Does I/O (pidfds, netlink sock_diag, /proc).

use std::collections::HashSet;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use portpolicy::Protocol;
use proto::alloc::Socktype;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::{now, peer, unregister, Service, Touched};
use crate::server::Shared;

/// How often leases, unwatched owners and unheld reservations are
/// looked at again, unless `--alloc-sweep` says otherwise.
pub const SWEEP: Duration = Duration::from_secs(2);

/// TCP_TIME_WAIT: a remnant of a closed connection, not a binding.
const TCP_TIME_WAIT: u8 = 6;

/// Waits for process `pid` to exit, then ends what it left behind.
pub fn spawn(service: Arc<Service>, shared: Arc<Shared>, pid: i32, pidfd: Arc<OwnedFd>) {
    tokio::spawn(async move {
        let exited = match pidfd.try_clone() {
            Ok(fd) => match AsyncFd::with_interest(fd, Interest::READABLE) {
                Ok(afd) => afd.readable().await.map(|_| ()),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        if let Err(e) = exited {
            // Left to the periodic check through /proc.
            tracing::warn!("cannot watch pid {pid}: {e}");
            service.lock().watched.remove(&pid);
            return;
        }
        let _ = tokio::task::spawn_blocking(move || service.process_gone(pid, &shared)).await;
    });
}

/// The periodic pass, for the daemon's life.
pub async fn run(service: Arc<Service>, shared: Arc<Shared>) {
    loop {
        if service.enabled {
            // sock_diag and /proc scans block: off the runtime's workers.
            let (svc, sh) = (service.clone(), shared.clone());
            let pass = tokio::task::spawn_blocking(move || {
                svc.hold_reservations();
                svc.check_unwatched(&sh);
                svc.sweep_leases(&sh, true);
            });
            if let Err(e) = pass.await {
                tracing::error!("allocation service check failed: {e}");
            }
        }
        tokio::time::sleep(service.sweep).await;
    }
}

impl Service {
    fn process_gone(&self, pid: i32, shared: &Shared) {
        {
            let mut inner = self.lock();
            inner.watched.remove(&pid);
            let orphaned = inner.alloc.on_process_gone(pid);
            if orphaned.is_empty() {
                return;
            }
            self.save(inner, Touched::leases(orphaned));
        }
        self.sweep_leases(shared, false);
    }

    /// Owners not watched through a pidfd: gone when /proc has no process
    /// with that pid and start time; a live one gets a watcher.
    fn check_unwatched(self: &Arc<Self>, shared: &Arc<Shared>) {
        let owners: Vec<(i32, Option<u64>)> = {
            let inner = self.lock();
            let mut seen = HashSet::new();
            inner
                .alloc
                .leases()
                .filter_map(|l| Some((l.pid?, l.start_time)))
                .filter(|(pid, _)| !inner.watched.contains(pid) && seen.insert(*pid))
                .collect()
        };
        for (pid, start) in owners {
            let now = peer::start_time_of(pid);
            let same = now.is_some() && (start.is_none() || now == start);
            let pidfd = same.then(|| crate::sys::pidfd_open(pid).ok()).flatten();
            match pidfd {
                // Opened after the start-time check: confirm it is still
                // that process before trusting the descriptor.
                Some(fd) if peer::start_time_of(pid) == now => {
                    self.lock().watched.insert(pid);
                    spawn(self.clone(), shared.clone(), pid, Arc::new(fd));
                }
                _ => self.process_gone(pid, shared),
            }
        }
    }

    /// Ends every orphan whose port nobody has bound any more and, on a
    /// periodic sweep (`live`), every lease of a live process whose port
    /// nobody has bound at this sweep and the one before.
    fn sweep_leases(&self, shared: &Shared, live: bool) {
        // Granted at least one sweep ago (`since` is in whole seconds).
        let old_enough = now().saturating_sub(self.sweep.as_secs() + 1);
        let candidates: Vec<Candidate> = self
            .lock()
            .alloc
            .leases()
            .filter(|l| l.pid.is_none() || (live && l.since < old_enough))
            .map(|l| (l.id, l.port, l.socktype, l.pid.is_none()))
            .collect();
        if candidates.is_empty() {
            if live {
                self.lock().suspects.clear();
            }
            return;
        }
        let bound = match bound_ports() {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("sock_diag: {e}; leases kept until the next check");
                return;
            }
        };
        let unbound = candidates.into_iter().filter(|(_, port, socktype, _)| {
            !bound.contains(&(portpolicy::alloc::protocol(*socktype), *port))
        });
        let (orphans, unbound_live): (Vec<Candidate>, Vec<Candidate>) = unbound.partition(|c| c.3);
        let mut inner = self.lock();
        let mut dead: Vec<u64> = orphans.iter().map(|c| c.0).collect();
        if live {
            let now_unbound: HashSet<u64> = unbound_live.iter().map(|c| c.0).collect();
            let (gone, next) = crate::reap::two_checks(now_unbound, &inner.suspects);
            dead.extend(gone);
            inner.suspects = next;
        }
        let mut ended = Vec::new();
        for id in dead {
            if let Some(lease) = inner.alloc.end_lease(id) {
                shared.with_engine(|e| unregister(e, &lease));
                let (port, socktype) = (lease.port, lease.socktype);
                match lease.pid {
                    None => tracing::debug!("lease {id} ended: {port}/{socktype} back in the pool"),
                    Some(pid) => tracing::info!(
                        "lease {id} of pid {pid} ended: {port}/{socktype} bound by nobody at two checks"
                    ),
                }
                ended.push(id);
            }
        }
        if !ended.is_empty() {
            self.save(inner, Touched::leases(ended));
        }
    }
}

/// A lease looked at by a sweep: id, port, socket type, orphaned.
type Candidate = (u64, u16, Socktype, bool);

/// Every (protocol, port) some socket is bound to in this network
/// namespace (TIME_WAIT remnants aside).
fn bound_ports() -> std::io::Result<HashSet<(Protocol, u16)>> {
    Ok(portpolicy::holders::all_holders()?
        .into_iter()
        .filter(|h| h.socket.state_code != TCP_TIME_WAIT || h.socket.protocol != Protocol::Tcp)
        .map(|h| (h.socket.protocol, h.socket.local.port()))
        .collect())
}
