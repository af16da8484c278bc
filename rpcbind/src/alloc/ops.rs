//! The procedures of the allocation service on the daemon's side: each
//! asks the allocator, carries out its decisions with real sockets,
//! updates the engine's registrations and saves the state before the
//! reply leaves. Does I/O (sockets, the state file).

use std::os::fd::OwnedFd;
use std::sync::Arc;

use portpolicy::alloc::{Caller, Decision};
use proto::alloc::{AllocArgs, AllocRes, ClaimArgs, PaList, PaStatus, ReleaseArgs, Socktype};

use super::{now, register, sockets, unregister, watch, Inner, Peer, Service, Touched};
use crate::server::Shared;

impl Service {
    /// PA_ALLOC: a bound (and listening) socket from the pool or the
    /// exact port asked for, and the `-w` ticket of the registration made
    /// with it (the reply waits for it, as a SET's does).
    pub(super) fn alloc(
        self: &Arc<Self>,
        args: &AllocArgs<'_>,
        peer: &Peer,
        shared: &Arc<Shared>,
    ) -> (AllocRes, Option<OwnedFd>, Option<u64>) {
        if !self.enabled {
            return (AllocRes::refused(PaStatus::DISABLED), None, None);
        }
        let caller = peer.caller();
        let mut inner = self.lock();
        let decision = inner.alloc.alloc(args, &caller);
        let (res, fd) = drive(&mut inner, decision, None);
        let mut watch_needed = false;
        let mut ticket = None;
        if let AllocRes::Granted(grant) = &res {
            if let Some(lease) = inner.alloc.lease(grant.lease_id) {
                ticket = shared.with_engine_durable(|e| register(e, lease)).1;
            }
            watch_needed = inner.watched.insert(peer.pid);
            self.save(inner, Touched::leases(vec![grant.lease_id]));
        } else {
            drop(inner);
        }
        if watch_needed {
            match &peer.pidfd {
                Some(pidfd) => watch::spawn(self.clone(), shared.clone(), peer.pid, pidfd.clone()),
                // Without a pidfd the periodic check looks at /proc.
                None => {
                    self.lock().watched.remove(&peer.pid);
                }
            }
        }
        (res, fd, ticket)
    }

    /// PA_CLAIM: a dup of a held reservation socket for an authorised
    /// caller (the daemon keeps its copy).
    pub(super) fn claim(&self, args: &ClaimArgs<'_>, peer: &Peer) -> (AllocRes, Option<OwnedFd>) {
        if !self.enabled {
            return (AllocRes::refused(PaStatus::DISABLED), None);
        }
        let caller = peer.caller();
        let mut inner = self.lock();
        let decision = inner.alloc.claim(args, &caller);
        let key = (args.name.to_owned(), args.socktype);
        let (res, fd) = drive(&mut inner, decision, Some(key));
        if let AllocRes::Granted(_) = res {
            self.save(inner, Touched::reservations());
        }
        (res, fd)
    }

    /// PA_RELEASE: ends a lease early (owner or root); with the `-w`
    /// ticket of the registrations it removed.
    pub(super) fn release(
        &self,
        args: &ReleaseArgs,
        peer: &Peer,
        shared: &Shared,
    ) -> (PaStatus, Option<u64>) {
        if !self.enabled {
            return (PaStatus::DISABLED, None);
        }
        let mut inner = self.lock();
        match inner.alloc.release(args, &light_caller(peer)) {
            Ok(lease) => {
                let ticket = shared.with_engine_durable(|e| unregister(e, &lease)).1;
                self.save(inner, Touched::leases(vec![lease.id]));
                (PaStatus::OK, ticket)
            }
            Err(status) => (status, None),
        }
    }

    /// PA_RELEASE_NAME (root): stop holding a reservation's sockets.
    pub(super) fn release_name(&self, name: &str, peer: &Peer) -> PaStatus {
        if !self.enabled {
            return PaStatus::DISABLED;
        }
        let mut inner = self.lock();
        match inner.alloc.release_name(name, &light_caller(peer)) {
            Ok(entries) => {
                for e in entries {
                    crate::fdstore::remove(&e.name, e.socktype);
                    if inner.held.remove(&(e.name.clone(), e.socktype)).is_some() {
                        tracing::info!(
                            "released reservation {}: {}/{}",
                            e.name,
                            e.port,
                            e.socktype
                        );
                    }
                }
                self.save(inner, Touched::reservations());
                PaStatus::OK
            }
            Err(status) => status,
        }
    }

    /// PA_LIST: leases, then reservations.
    pub(super) fn list(&self) -> PaList {
        if !self.enabled {
            return PaList(Vec::new());
        }
        self.lock().alloc.list()
    }
}

/// The caller for RELEASE and RELEASE_NAME, which look at the uid only.
fn light_caller(peer: &Peer) -> Caller {
    Caller {
        pid: peer.pid,
        uid: peer.uid,
        gids: vec![peer.gid],
        unit: None,
        start_time: None,
    }
}

/// Carries out decisions until a reply: binds each proposed port, moving
/// on past EADDRINUSE. `claim` names the reservation socket of a CLAIM,
/// whose reply carries a dup of the held socket.
fn drive(
    inner: &mut Inner,
    mut decision: Decision,
    claim: Option<(String, Socktype)>,
) -> (AllocRes, Option<OwnedFd>) {
    let mut bound: Option<OwnedFd> = None;
    loop {
        decision = match decision {
            Decision::TryBind(b) => match sockets::bind(&b) {
                Ok(fd) => {
                    bound = Some(fd);
                    inner.alloc.on_bound(b.attempt, now())
                }
                Err(libc::EADDRINUSE) => inner.alloc.on_bind_failed(b.attempt),
                Err(errno) => {
                    inner.alloc.abandon(b.attempt);
                    return (AllocRes::SystemError { errno }, None);
                }
            },
            Decision::Granted(grant) if grant.lease_id == 0 => {
                let Some(key) = claim else {
                    return (AllocRes::refused(PaStatus::BAD_REQUEST), None);
                };
                if let Some(fd) = bound.take() {
                    inner.held.insert(key.clone(), fd);
                }
                let dup = inner.held.get(&key).map(OwnedFd::try_clone);
                return match dup {
                    Some(Ok(fd)) => (AllocRes::Granted(grant), Some(fd)),
                    Some(Err(e)) => (system_error(&e), None),
                    None => (AllocRes::SystemError { errno: libc::EBADF }, None),
                };
            }
            Decision::Granted(grant) => match bound.take() {
                Some(fd) => return (AllocRes::Granted(grant), Some(fd)),
                None => return (AllocRes::SystemError { errno: libc::EBADF }, None),
            },
            Decision::Refused(status) => return (AllocRes::refused(status), None),
        };
    }
}

fn system_error(e: &std::io::Error) -> AllocRes {
    AllocRes::SystemError {
        errno: e.raw_os_error().unwrap_or(libc::EIO),
    }
}
