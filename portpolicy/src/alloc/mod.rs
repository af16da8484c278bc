//! The allocator behind the port-allocation service (PORTALLOC, see
//! `proto/alloc.x`): which port to bind for a request, who holds what
//! (leases, reservations), per-uid quotas, and the state that survives a
//! daemon restart. Pure, no I/O: the rpcbind daemon binds sockets, passes
//! them, watches pidfds and writes the state file; this module decides.
//!
//! # The driver loop
//!
//! Every request that needs a socket comes back as [`Decision::TryBind`]
//! with a [`Bind`]: the daemon binds exactly that (and listens, when
//! `bind.listen`), then reports the outcome, and gets the next decision.
//! A port being tried is marked taken, so concurrent requests never try the
//! same port.
//!
//! ```
//! use portpolicy::alloc::{AllocPolicy, Allocator, Caller, Decision, Settings};
//! use portpolicy::config::Config;
//! use portpolicy::policy::Sources;
//! use proto::alloc::{AllocArgs, AllocRes, Family, Socktype};
//!
//! let policy = AllocPolicy::compute(&Config::default(), &Sources::default()).unwrap();
//! let mut alloc = Allocator::new(policy, Settings::default());
//! let caller = Caller { pid: 4242, uid: 0, gids: vec![0], unit: None, start_time: None };
//! let args = AllocArgs::pool(Family::Inet, Socktype::Stream);
//! let now = 1_700_000_000;
//!
//! // Stands in for socket() + bind() + listen(): the first port is busy.
//! let mut busy = vec![600u16];
//! let mut bind = |port: u16| if busy.contains(&port) { busy.clear(); Err(libc::EADDRINUSE) } else { Ok(()) };
//!
//! let mut decision = alloc.alloc(&args, &caller);
//! let reply = loop {
//!     decision = match decision {
//!         Decision::TryBind(b) => match bind(b.port) {
//!             Ok(()) => alloc.on_bound(b.attempt, now),
//!             Err(libc::EADDRINUSE) => alloc.on_bind_failed(b.attempt),
//!             Err(errno) => {
//!                 alloc.abandon(b.attempt);
//!                 break AllocRes::SystemError { errno };
//!             }
//!         },
//!         // The daemon sends the bound socket with this reply.
//!         Decision::Granted(grant) => break AllocRes::Granted(grant),
//!         Decision::Refused(status) => break AllocRes::refused(status),
//!     };
//! };
//! let AllocRes::Granted(grant) = reply else { panic!("{reply:?}") };
//! assert_eq!(grant.port, 601);
//! // After the reply: save `alloc.state()` atomically; when the pidfd of
//! // 4242 fires, `on_process_gone(4242)`, then `end_lease(id)` for each
//! // returned lease whose port sock_diag no longer shows bound.
//! ```
//!
//! A port is held per socket type whatever the family (RELEASE by port
//! carries no family). Reservations are held from start: the daemon calls
//! [`Allocator::hold_reservations`] and drives each [`Bind`] the same way
//! (without SO_REUSEADDR, `bind.reuse_addr` is false), keeping the socket;
//! a CLAIM of a held reservation is `Granted` at once with lease id 0 and
//! the daemon sends a dup of its socket.

mod lease;
mod pools;
mod requests;
mod state;
#[cfg(test)]
mod tests;

pub use lease::{Lease, LeaseId, Registration, ReservationState};
pub use pools::{protocol, AllocPolicy};
pub use state::{State, StateError, STATE_FORMAT, STATE_VERSION};

use pools::slot;
use proto::alloc::{Family, Grant, LeaseInfo, PaList, PaStatus, Socktype};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

/// Leases a non-root uid may hold at once, unless configured.
pub const DEFAULT_QUOTA: u32 = 64;

/// Tunables of the allocator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Leases per non-root uid (root is limited by the pool only).
    pub quota: u32,
    /// The family of the sockets that hold reservations (`Inet6` is a
    /// dual-stack socket on hosts with IPv6; the daemon sets `Inet` on
    /// hosts without).
    pub reservation_family: Family,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            quota: DEFAULT_QUOTA,
            reservation_family: Family::Inet6,
        }
    }
}

impl Settings {
    /// The settings a config asks for (`[allocation] quota`), with
    /// `reservation_family` as given (the daemon knows whether the host
    /// has IPv6).
    pub fn from_config(config: &crate::config::Config, reservation_family: Family) -> Self {
        Settings {
            quota: config.allocation.quota,
            reservation_family,
        }
    }
}

/// Who is asking: from SO_PEERCRED, the process's groups and its cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub pid: i32,
    pub uid: u32,
    /// Primary and supplementary groups (for `Reservation::may_claim`).
    pub gids: Vec<u32>,
    /// The systemd unit from /proc/PID/cgroup, if any.
    pub unit: Option<String>,
    /// The process's start time (field 22 of /proc/PID/stat), saved with
    /// its leases so that after a daemon restart a reused pid is not
    /// mistaken for the owner.
    pub start_time: Option<u64>,
}

/// Names one bind in progress; valid until it is reported with
/// [`Allocator::on_bound`], [`Allocator::on_bind_failed`] or
/// [`Allocator::abandon`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttemptId(u64);

/// A socket the daemon must create and bind, then report on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub attempt: AttemptId,
    pub port: u16,
    pub family: Family,
    pub socktype: Socktype,
    /// `None` = the wildcard address of the family.
    pub addr: Option<IpAddr>,
    /// listen() after bind() (stream sockets unless PA_NO_LISTEN); a
    /// listen() failing with EADDRINUSE is a bind failure.
    pub listen: bool,
    /// SO_REUSEADDR: set for leased stream sockets like any server; never
    /// for reservations, whose sockets must make every other bind fail.
    pub reuse_addr: bool,
    /// IPV6_V6ONLY (for `Inet6` only): set for leases, so a lease over IPv6
    /// does not also take the IPv4 port; clear for reservations, whose
    /// dual-stack socket holds the port for both families.
    pub v6only: bool,
    /// The reservation this socket holds: the daemon keeps it and passes
    /// dups.
    pub reservation: Option<String>,
}

/// What the daemon does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Bind this socket and report with `on_bound` / `on_bind_failed`.
    TryBind(Bind),
    /// Reply PA_OK with the socket (for lease id 0, a dup of the held
    /// reservation socket).
    Granted(Grant),
    /// Reply with this status.
    Refused(PaStatus),
}

/// A bind in progress.
#[derive(Debug, Clone)]
struct Attempt {
    bind: Bind,
    pid: i32,
    start_time: Option<u64>,
    uid: u32,
    registration: Option<Registration>,
    search: Option<Search>,
    /// For reservations: the claimant, or `None` when holding at start.
    claimant: Option<(i32, u32)>,
}

/// Where a pool search is: which list, where it started, how far it got.
#[derive(Debug, Clone, Copy)]
struct Search {
    privileged: bool,
    start: usize,
    tried: usize,
}

/// Who has a port of a socket type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Taker {
    Lease(LeaseId),
    Attempt(u64),
}

/// The allocator's whole state.
#[derive(Debug)]
pub struct Allocator {
    policy: AllocPolicy,
    settings: Settings,
    leases: BTreeMap<LeaseId, Lease>,
    taken: HashMap<(usize, u16), Taker>,
    per_uid: HashMap<u32, u32>,
    reservations: Vec<ReservationState>,
    attempts: HashMap<u64, Attempt>,
    next_lease: LeaseId,
    next_attempt: u64,
    /// Next index to try, `[pool, privileged][socktype]`.
    cursors: [[usize; 2]; 2],
}

impl Allocator {
    /// An allocator with no leases and no reservation held yet.
    pub fn new(policy: AllocPolicy, settings: Settings) -> Self {
        let reservations = reservation_entries(&policy, &[]);
        Allocator {
            policy,
            settings,
            leases: BTreeMap::new(),
            taken: HashMap::new(),
            per_uid: HashMap::new(),
            reservations,
            attempts: HashMap::new(),
            next_lease: 1,
            next_attempt: 1,
            cursors: [[0; 2]; 2],
        }
    }

    /// The policy in use.
    pub fn policy(&self) -> &AllocPolicy {
        &self.policy
    }

    /// The settings in use.
    pub fn settings(&self) -> Settings {
        self.settings
    }

    /// The id the next lease gets and the rotation cursors (what a
    /// journal record carries besides the leases it changed).
    pub fn counters(&self) -> (LeaseId, [[usize; 2]; 2]) {
        (self.next_lease, self.cursors)
    }

    /// Records a registration made with a lease's port after the grant
    /// (a SET by its owner), so it is removed when the lease ends. False
    /// when there is no such lease.
    pub fn add_registration(&mut self, id: LeaseId, registration: Registration) -> bool {
        match self.leases.get_mut(&id) {
            Some(lease) => {
                if !lease.registrations.contains(&registration) {
                    lease.registrations.push(registration);
                }
                true
            }
            None => false,
        }
    }

    /// Every lease, by id.
    pub fn leases(&self) -> impl Iterator<Item = &Lease> {
        self.leases.values()
    }

    /// One lease.
    pub fn lease(&self, id: LeaseId) -> Option<&Lease> {
        self.leases.get(&id)
    }

    /// The lease holding `port` for `socktype`, if any.
    pub fn lease_at(&self, port: u16, socktype: Socktype) -> Option<&Lease> {
        match self.taken.get(&(slot(socktype), port)) {
            Some(Taker::Lease(id)) => self.leases.get(id),
            _ => None,
        }
    }

    /// Every reservation socket and its hold.
    pub fn reservations(&self) -> &[ReservationState] {
        &self.reservations
    }

    /// Leases whose process is gone: the daemon re-checks (sock_diag)
    /// whether their port is still bound and calls [`end_lease`](Self::end_lease)
    /// when not.
    pub fn orphans(&self) -> impl Iterator<Item = &Lease> {
        self.leases.values().filter(|l| l.pid.is_none())
    }

    /// Leases held by `uid`.
    pub fn leases_of(&self, uid: u32) -> u32 {
        self.per_uid.get(&uid).copied().unwrap_or(0)
    }

    /// The PA_LIST result: leases by id, then reservations.
    pub fn list(&self) -> PaList {
        let leases = self.leases.values().map(Lease::info);
        let held = self.reservations.iter().map(ReservationState::info);
        PaList(leases.chain(held).collect::<Vec<LeaseInfo>>())
    }

    /// The process `pid` is gone: its leases become orphans (returned by
    /// id). Each ends when the daemon finds its port no longer bound.
    pub fn on_process_gone(&mut self, pid: i32) -> Vec<LeaseId> {
        let mut out = Vec::new();
        for lease in self.leases.values_mut().filter(|l| l.pid == Some(pid)) {
            lease.pid = None;
            out.push(lease.id);
        }
        out
    }

    /// Ends a lease: its port returns to the pool. Returns it so the
    /// daemon can remove its registrations.
    pub fn end_lease(&mut self, id: LeaseId) -> Option<Lease> {
        let lease = self.leases.remove(&id)?;
        self.taken.remove(&(slot(lease.socktype), lease.port));
        if let Some(n) = self.per_uid.get_mut(&lease.uid) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_uid.remove(&lease.uid);
            }
        }
        Some(lease)
    }

    /// Replaces the policy (a reload). Leases keep their ports; reservation
    /// sockets whose (name, socktype, port) is unchanged keep their state;
    /// the entries no longer in the policy are returned so the daemon
    /// closes the sockets it holds for them.
    pub fn set_policy(&mut self, policy: AllocPolicy) -> Vec<ReservationState> {
        let fresh = reservation_entries(&policy, &self.reservations);
        let dropped = self
            .reservations
            .iter()
            .filter(|old| !fresh.iter().any(|n| same_socket(n, old)))
            .cloned()
            .collect();
        self.reservations = fresh;
        self.policy = policy;
        dropped
    }

    fn new_attempt(&mut self, attempt: Attempt) -> Decision {
        let id = self.next_attempt;
        self.next_attempt += 1;
        let mut attempt = attempt;
        attempt.bind.attempt = AttemptId(id);
        if attempt.bind.reservation.is_none() {
            self.taken.insert(
                (slot(attempt.bind.socktype), attempt.bind.port),
                Taker::Attempt(id),
            );
        }
        let bind = attempt.bind.clone();
        self.attempts.insert(id, attempt);
        Decision::TryBind(bind)
    }

    /// Drops an attempt (the bind failed otherwise than EADDRINUSE, or the
    /// caller went away): its port is free again.
    pub fn abandon(&mut self, attempt: AttemptId) {
        if let Some(a) = self.attempts.remove(&attempt.0) {
            self.untake_attempt(attempt.0, &a);
        }
    }

    fn untake_attempt(&mut self, id: u64, a: &Attempt) {
        let key = (slot(a.bind.socktype), a.bind.port);
        if self.taken.get(&key) == Some(&Taker::Attempt(id)) {
            self.taken.remove(&key);
        }
    }
}

/// One entry per (reservation, socket type), keeping the state of entries
/// that match one in `old`.
fn reservation_entries(policy: &AllocPolicy, old: &[ReservationState]) -> Vec<ReservationState> {
    let mut out = Vec::new();
    for r in &policy.reservations {
        for socktype in [Socktype::Stream, Socktype::Dgram] {
            if !r.protocols.covers(protocol(socktype)) {
                continue;
            }
            let entry = ReservationState {
                name: r.name.clone(),
                port: r.port,
                socktype,
                family: None,
                held: false,
                released: false,
                claimant: None,
                since: 0,
            };
            let kept = old.iter().find(|o| same_socket(o, &entry)).cloned();
            out.push(kept.unwrap_or(entry));
        }
    }
    out
}

fn same_socket(a: &ReservationState, b: &ReservationState) -> bool {
    a.name == b.name && a.port == b.port && a.socktype == b.socktype
}
