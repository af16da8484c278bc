//! The requests of the allocation protocol as decisions: ALLOC, CLAIM,
//! RELEASE, RELEASE_NAME, and the outcome of each bind the daemon makes.
//! Pure, no I/O. The status chosen for each refusal is the one
//! `proto/alloc.x` documents.

use super::pools::slot;
use super::{
    Allocator, Attempt, AttemptId, Bind, Caller, Decision, Lease, Registration, ReservationState,
    Search, Taker,
};
use proto::alloc::Socktype;
use proto::alloc::{
    AllocArgs, ClaimArgs, Family, Grant, PaStatus, PortKind, ReleaseArgs, PA_NO_LISTEN,
};
use std::net::IpAddr;

/// The numeric bind address of a request: `None` for "", an error when it
/// does not parse or is not of the socket's family.
fn bind_addr(text: &str, family: Family) -> Result<Option<IpAddr>, PaStatus> {
    if text.is_empty() {
        return Ok(None);
    }
    let addr: IpAddr = text.parse().map_err(|_| PaStatus::BAD_REQUEST)?;
    match (addr, family) {
        (IpAddr::V4(_), Family::Inet) | (IpAddr::V6(_), Family::Inet6) => Ok(Some(addr)),
        _ => Err(PaStatus::BAD_REQUEST),
    }
}

impl Allocator {
    /// PA_ALLOC: the first port to bind, or a refusal.
    pub fn alloc(&mut self, args: &AllocArgs<'_>, caller: &Caller) -> Decision {
        match self.start_alloc(args, caller) {
            Ok(d) => d,
            Err(status) => Decision::Refused(status),
        }
    }

    fn start_alloc(&mut self, args: &AllocArgs<'_>, caller: &Caller) -> Result<Decision, PaStatus> {
        if args.flags & !PA_NO_LISTEN != 0 {
            return Err(PaStatus::BAD_REQUEST);
        }
        let addr = bind_addr(args.bind_addr, args.family)?;
        let root = caller.uid == 0;
        if !root && self.in_flight(caller.uid) >= self.settings.quota {
            return Err(PaStatus::QUOTA_EXCEEDED);
        }
        let bind = Bind {
            attempt: AttemptId(0),
            port: 0,
            family: args.family,
            socktype: args.socktype,
            addr,
            listen: args.socktype == Socktype::Stream && args.flags & PA_NO_LISTEN == 0,
            reuse_addr: args.socktype == Socktype::Stream,
            v6only: args.family == Family::Inet6,
            reservation: None,
        };
        let attempt = Attempt {
            bind,
            pid: caller.pid,
            start_time: caller.start_time,
            uid: caller.uid,
            registration: args.reg.map(|r| Registration {
                prog: r.prog.0,
                vers: r.vers.0,
            }),
            search: None,
            claimant: None,
        };
        match args.port {
            PortKind::Exact(port) => self.start_exact(attempt, port),
            PortKind::Pool => self.start_search(attempt, false),
            PortKind::Privileged => self.start_search(attempt, true),
        }
    }

    /// Leases of `uid` plus its binds in progress (so concurrent requests
    /// cannot overshoot the quota).
    fn in_flight(&self, uid: u32) -> u32 {
        let pending = self
            .attempts
            .values()
            .filter(|a| a.uid == uid && a.bind.reservation.is_none());
        self.leases_of(uid) + pending.count() as u32
    }

    fn start_exact(&mut self, mut attempt: Attempt, port: u32) -> Result<Decision, PaStatus> {
        let port = u16::try_from(port).map_err(|_| PaStatus::BAD_REQUEST)?;
        let socktype = attempt.bind.socktype;
        if self.policy.reservation(port, socktype).is_some() || !self.policy.allows(port, socktype)
        {
            return Err(PaStatus::NOT_IN_POOL);
        }
        if port < 1024 && attempt.uid != 0 {
            return Err(PaStatus::DENIED);
        }
        if self.taken.contains_key(&(slot(socktype), port)) {
            return Err(PaStatus::IN_USE);
        }
        attempt.bind.port = port;
        Ok(self.new_attempt(attempt))
    }

    fn candidates(&self, privileged: bool, socktype: Socktype) -> &[u16] {
        if privileged {
            self.policy.privileged(socktype)
        } else {
            self.policy.pool(socktype)
        }
    }

    fn start_search(&mut self, attempt: Attempt, privileged: bool) -> Result<Decision, PaStatus> {
        let socktype = attempt.bind.socktype;
        let list = self.candidates(privileged, socktype);
        if attempt.uid != 0 && !list.is_empty() && list.iter().all(|p| *p < 1024) {
            return Err(PaStatus::DENIED);
        }
        let len = list.len().max(1);
        let start = self.cursors[usize::from(privileged)][slot(socktype)] % len;
        let search = Search {
            privileged,
            start,
            tried: 0,
        };
        self.continue_search(attempt, search)
    }

    /// The next free port of the search, or POOL_EXHAUSTED once every
    /// port of the list was considered.
    fn continue_search(
        &mut self,
        mut attempt: Attempt,
        mut search: Search,
    ) -> Result<Decision, PaStatus> {
        let socktype = attempt.bind.socktype;
        let list = self.candidates(search.privileged, socktype);
        while search.tried < list.len() {
            let port = list[(search.start + search.tried) % list.len()];
            search.tried += 1;
            let allowed = attempt.uid == 0 || port >= 1024;
            if allowed && !self.taken.contains_key(&(slot(socktype), port)) {
                attempt.bind.port = port;
                attempt.search = Some(search);
                return Ok(self.new_attempt(attempt));
            }
        }
        Err(PaStatus::POOL_EXHAUSTED)
    }

    /// The bind (and listen) succeeded: the lease (or the reservation's
    /// hold) begins. `now` is unix seconds.
    pub fn on_bound(&mut self, attempt: AttemptId, now: u64) -> Decision {
        let Some(a) = self.attempts.remove(&attempt.0) else {
            return Decision::Refused(PaStatus::BAD_REQUEST);
        };
        if let Some(name) = &a.bind.reservation {
            return self.reservation_bound(name, &a, now);
        }
        let socktype = a.bind.socktype;
        if let Some(search) = a.search {
            let len = self.candidates(search.privileged, socktype).len().max(1);
            self.cursors[usize::from(search.privileged)][slot(socktype)] =
                (search.start + search.tried) % len;
        }
        let id = self.next_lease;
        self.next_lease += 1;
        let lease = Lease {
            id,
            port: a.bind.port,
            socktype,
            family: a.bind.family,
            bind_addr: a.bind.addr.map(|x| x.to_string()).unwrap_or_default(),
            pid: Some(a.pid),
            start_time: a.start_time,
            uid: a.uid,
            since: now,
            registrations: a.registration.into_iter().collect(),
        };
        self.taken
            .insert((slot(socktype), lease.port), Taker::Lease(id));
        *self.per_uid.entry(lease.uid).or_insert(0) += 1;
        let grant = Grant {
            port: u32::from(lease.port),
            lease_id: id,
        };
        self.leases.insert(id, lease);
        Decision::Granted(grant)
    }

    fn reservation_bound(&mut self, name: &str, a: &Attempt, now: u64) -> Decision {
        let Some(r) = self.reservation_mut(name, a.bind.socktype) else {
            // The policy was reloaded without it meanwhile.
            return Decision::Refused(PaStatus::NO_SUCH_NAME);
        };
        r.held = true;
        r.released = false;
        r.family = Some(a.bind.family);
        r.since = now;
        if a.claimant.is_some() {
            r.claimant = a.claimant;
        }
        Decision::Granted(Grant {
            port: u32::from(r.port),
            lease_id: 0,
        })
    }

    /// The bind or listen failed with EADDRINUSE: a pool search moves on
    /// to the next port; an exact port or a reservation is refused.
    pub fn on_bind_failed(&mut self, attempt: AttemptId) -> Decision {
        let Some(a) = self.attempts.remove(&attempt.0) else {
            return Decision::Refused(PaStatus::BAD_REQUEST);
        };
        self.untake_attempt(attempt.0, &a);
        match a.search {
            Some(search) => self
                .continue_search(a, search)
                .unwrap_or_else(Decision::Refused),
            None => Decision::Refused(PaStatus::IN_USE),
        }
    }

    fn reservation_mut(&mut self, name: &str, socktype: Socktype) -> Option<&mut ReservationState> {
        self.reservations
            .iter_mut()
            .find(|r| r.name == name && r.socktype == socktype)
    }

    /// PA_CLAIM: a held reservation is granted at once (the daemon sends a
    /// dup of its socket); one not held is bound first.
    pub fn claim(&mut self, args: &ClaimArgs<'_>, caller: &Caller) -> Decision {
        let Some(reservation) = self
            .policy
            .reservations
            .iter()
            .find(|r| r.name == args.name)
        else {
            return Decision::Refused(PaStatus::NO_SUCH_NAME);
        };
        if !reservation.may_claim(caller.uid, &caller.gids, caller.unit.as_deref()) {
            return Decision::Refused(PaStatus::DENIED);
        }
        let in_progress = self.attempts.values().any(|a| {
            a.bind.reservation.as_deref() == Some(args.name) && a.bind.socktype == args.socktype
        });
        let family = self.settings.reservation_family;
        let claimant = (caller.pid, caller.uid);
        let Some(r) = self.reservation_mut(args.name, args.socktype) else {
            return Decision::Refused(PaStatus::NO_SUCH_NAME);
        };
        if r.held {
            r.claimant = Some(claimant);
            return Decision::Granted(Grant {
                port: u32::from(r.port),
                lease_id: 0,
            });
        }
        if in_progress {
            return Decision::Refused(PaStatus::IN_USE);
        }
        let bind = reservation_bind(r, family);
        self.new_attempt(Attempt {
            bind,
            pid: caller.pid,
            start_time: caller.start_time,
            uid: caller.uid,
            registration: None,
            search: None,
            claimant: Some(claimant),
        })
    }

    /// The reservation sockets to bind now (at start, and later to retry
    /// a failed hold): every one not held, not released, not being bound.
    /// Each is driven like any [`Bind`]; `on_bound` then answers
    /// `Granted` with lease id 0, which is no reply to anyone: the daemon
    /// just keeps the socket.
    pub fn hold_reservations(&mut self) -> Vec<Bind> {
        let family = self.settings.reservation_family;
        let wanted: Vec<Bind> = self
            .reservations
            .iter()
            .filter(|r| !r.held && !r.released)
            .filter(|r| {
                !self.attempts.values().any(|a| {
                    a.bind.reservation.as_deref() == Some(r.name.as_str())
                        && a.bind.socktype == r.socktype
                })
            })
            .map(|r| reservation_bind(r, family))
            .collect();
        wanted
            .into_iter()
            .filter_map(|bind| {
                let attempt = Attempt {
                    bind,
                    pid: -1,
                    start_time: None,
                    uid: 0,
                    registration: None,
                    search: None,
                    claimant: None,
                };
                match self.new_attempt(attempt) {
                    Decision::TryBind(b) => Some(b),
                    _ => None,
                }
            })
            .collect()
    }

    /// PA_RELEASE: ends a lease early (its owner's uid or root). Returns
    /// the lease so the daemon removes its registrations.
    pub fn release(&mut self, args: &ReleaseArgs, caller: &Caller) -> Result<Lease, PaStatus> {
        let id = match *args {
            ReleaseArgs::Lease(id) => id,
            ReleaseArgs::Port { port, socktype } => {
                let port = u16::try_from(port).map_err(|_| PaStatus::BAD_REQUEST)?;
                match self.taken.get(&(slot(socktype), port)) {
                    Some(Taker::Lease(id)) => *id,
                    _ if self.policy.reservation(port, socktype).is_some() => {
                        return Err(PaStatus::DENIED)
                    }
                    _ => return Err(PaStatus::BAD_REQUEST),
                }
            }
        };
        let lease = self.leases.get(&id).ok_or(PaStatus::BAD_REQUEST)?;
        if caller.uid != 0 && caller.uid != lease.uid {
            return Err(PaStatus::DENIED);
        }
        self.end_lease(id).ok_or(PaStatus::BAD_REQUEST)
    }

    /// PA_RELEASE_NAME (root only): the daemon stops holding every socket
    /// of the reservation, and does not hold it again (even after a
    /// restart) until the next CLAIM. Returns the entries whose sockets
    /// the daemon must close.
    pub fn release_name(
        &mut self,
        name: &str,
        caller: &Caller,
    ) -> Result<Vec<ReservationState>, PaStatus> {
        if caller.uid != 0 {
            return Err(PaStatus::DENIED);
        }
        let mut out = Vec::new();
        for r in self.reservations.iter_mut().filter(|r| r.name == name) {
            out.push(r.clone());
            r.held = false;
            r.released = true;
        }
        if out.is_empty() {
            return Err(PaStatus::NO_SUCH_NAME);
        }
        Ok(out)
    }
}

fn reservation_bind(r: &ReservationState, family: Family) -> Bind {
    Bind {
        attempt: AttemptId(0),
        port: r.port,
        family,
        socktype: r.socktype,
        addr: None,
        listen: r.socktype == Socktype::Stream,
        reuse_addr: false,
        v6only: false,
        reservation: Some(r.name.clone()),
    }
}
