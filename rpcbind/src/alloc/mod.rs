//! The port-allocation service (PORTALLOC, program 0x20000111, see
//! `proto/alloc.x`) inside the daemon: the I/O driver of the pure
//! allocator `portpolicy::alloc`. It binds the sockets the allocator
//! decides on, passes them to callers on the local socket only (the
//! program is never in the portmapper's table and is not routed on UDP or
//! TCP, where the engine answers PROG_UNAVAIL as for any unknown program),
//! holds the policy's reservations, watches lease owners through pidfds
//! and makes each change durable before its reply (a journal record,
//! `journal`). Does I/O (sockets, files, /proc).
//!
//! Locking: one `std::sync::Mutex` around the allocator and the held
//! sockets, never held across an `.await`; the engine's lock is taken
//! inside it (registrations), never the other way round.

mod dispatch;
mod handoff;
mod journal;
mod ops;
mod peer;
mod persist;
mod sockets;
mod watch;

pub use dispatch::Conn;
pub use handoff::FdMarks;
pub use peer::Peer;
pub use sockets::ReplyWrite;
pub use watch::run as run_background;

use journal::Touched;

use std::collections::{HashMap, HashSet};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use portpolicy::alloc::{AllocPolicy, Allocator, Decision, Lease, LeaseId, Settings, State};
use proto::alloc::{Family, Socktype};
use proto::engine::Engine;
use proto::rpc::{Program, Version};

/// Where the state lives unless `--alloc-state` says otherwise.
pub const DEFAULT_STATE_PATH: &str = "/var/lib/rpcbind/portalloc.state";

/// What the command line says about the service.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--policy-config PATH`: read this portpolicy config only.
    pub policy_config: Option<PathBuf>,
    /// `--alloc-state PATH`.
    pub state_path: Option<PathBuf>,
    /// `--alloc-sweep MS`: how often leases are checked (default
    /// [`watch::SWEEP`]).
    pub sweep: Option<Duration>,
}

/// The service: the allocator, the sockets it holds, the state file.
#[derive(Debug)]
pub struct Service {
    inner: Mutex<Inner>,
    state_path: PathBuf,
    enabled: bool,
    /// How often leases, owners and reservations are checked again.
    sweep: Duration,
    /// The state's directory existed before the daemon started.
    dir_existed: bool,
    /// The journal and the change count on disk; taken by one writer at
    /// a time.
    writer: Mutex<journal::Writer>,
}

#[derive(Debug)]
struct Inner {
    alloc: Allocator,
    /// Reservation sockets held by the daemon, by (name, socket type).
    held: HashMap<(String, Socktype), OwnedFd>,
    /// Pids with a pidfd watcher running.
    watched: HashSet<i32>,
    /// Changes made so far (see [`Service::save`]).
    changes: u64,
    /// Journal lines of the changes not written yet, in order.
    pending: Vec<u8>,
    /// Reservation sockets that could not be held, already logged (the
    /// retries every few seconds are not).
    unheld: HashSet<(String, Socktype)>,
    /// Leases of live processes whose port was bound by nobody at the
    /// last sweep (ended if still unbound at the next one).
    suspects: HashSet<LeaseId>,
}

/// Unix seconds now.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Service {
    /// Loads the policy and the saved state, and binds every reservation
    /// (before the daemon serves anyone). A policy that cannot be read is
    /// an error: the daemon says so rather than run without its policy.
    pub fn start(opts: &Options) -> anyhow::Result<Service> {
        let paths = portpolicy::load::Paths {
            config: opts.policy_config.clone(),
            ..Default::default()
        };
        let config = portpolicy::load::config(&paths).context("allocation policy")?;
        let kernel = portpolicy::load::kernel(&paths).context("allocation policy")?;
        let sources = portpolicy::load::sources(&paths, &kernel).context("allocation policy")?;
        let policy = AllocPolicy::compute(&config, &sources).context("allocation policy")?;
        let family = if sockets::ipv6_available() {
            Family::Inet6
        } else {
            Family::Inet
        };
        let settings = Settings::from_config(&config, family);
        let state_path = opts
            .state_path
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_PATH));
        let dir_existed = state_path.parent().is_none_or(Path::exists);
        let (alloc, rewrite) = restore(policy, settings, &state_path);
        let service = Service {
            inner: Mutex::new(Inner {
                alloc,
                held: HashMap::new(),
                watched: HashSet::new(),
                changes: 0,
                pending: Vec::new(),
                unheld: HashSet::new(),
                suspects: HashSet::new(),
            }),
            state_path,
            enabled: config.allocation.enabled,
            sweep: opts.sweep.unwrap_or(watch::SWEEP),
            dir_existed,
            writer: Mutex::new(journal::Writer::default()),
        };
        if service.enabled {
            if rewrite {
                // A fresh snapshot and an empty journal: nothing is ever
                // appended after a torn or corrupt record.
                let mut w = service.writer();
                service.snapshot(&mut w);
            }
            service.hold_reservations();
        }
        Ok(service)
    }

    /// Whether the policy switches the service on (`[allocation] enabled`).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Creates the state file's directory (and hands it and the file to
    /// the user the daemon runs as), while still root: the state is
    /// written after the privilege drop.
    pub fn prepare_state_dir(&self, uid: nix::unistd::Uid, gid: nix::unistd::Gid) {
        if !self.enabled {
            return;
        }
        let dir = self.state_path.parent().unwrap_or(Path::new("/"));
        // Only a directory of our own is handed over (never /run or /).
        let ours = !self.dir_existed || dir.file_name().is_some_and(|n| n == "rpcbind");
        let made = std::fs::create_dir_all(dir).and_then(|()| {
            let dir = ours.then_some(dir);
            let journal = journal::path_of(&self.state_path);
            let files = [self.state_path.as_path(), journal.as_path()];
            for path in dir.into_iter().chain(files) {
                match std::os::unix::fs::chown(path, Some(uid.as_raw()), Some(gid.as_raw())) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            Ok(())
        });
        if let Err(e) = made {
            tracing::warn!("allocation state directory {}: {e}", dir.display());
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Binds every reservation not held yet; one that cannot be bound is
    /// logged and tried again later (see `watch`).
    fn hold_reservations(&self) {
        let mut inner = self.lock();
        let binds = inner.alloc.hold_reservations();
        if binds.is_empty() {
            return;
        }
        let mut changed = false;
        for bind in binds {
            let name = bind.reservation.clone().unwrap_or_default();
            let (port, socktype) = (bind.port, bind.socktype);
            match sockets::bind(&bind) {
                Ok(fd) => {
                    if let Decision::Granted(_) = inner.alloc.on_bound(bind.attempt, now()) {
                        inner.unheld.remove(&(name.clone(), socktype));
                        inner.held.insert((name.clone(), socktype), fd);
                        tracing::info!("holding reservation {name}: {port}/{socktype}");
                        changed = true;
                    }
                }
                Err(errno) => {
                    inner.alloc.abandon(bind.attempt);
                    let err = std::io::Error::from_raw_os_error(errno);
                    if inner.unheld.insert((name.clone(), socktype)) {
                        tracing::warn!(
                            "reservation {name}: cannot hold {port}/{socktype}: {err} (retrying)"
                        );
                    } else {
                        tracing::debug!("reservation {name}: {port}/{socktype} still {err}");
                    }
                }
            }
        }
        if changed {
            self.save(inner, Touched::reservations());
        }
    }

    fn writer(&self) -> MutexGuard<'_, journal::Writer> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes the change just made under `inner` durable before returning:
    /// its journal record is queued under the lock, then appended and
    /// `fdatasync`ed with group commit (the lock is let go first, and a
    /// writer appends every record queued when it starts, so the callers
    /// that waited behind one write are usually covered by the next
    /// single one). When the journal has outgrown the snapshot, the
    /// writer also writes a new snapshot. A failure is logged (and a
    /// snapshot tried at once): the change stands in memory.
    fn save(&self, mut inner: MutexGuard<'_, Inner>, touched: Touched) {
        let line = journal::line(&inner.alloc, &touched);
        inner.pending.extend(line);
        inner.changes += 1;
        let mine = inner.changes;
        drop(inner);
        let mut w = self.writer();
        if w.saved >= mine {
            return;
        }
        let (batch, covers) = {
            let mut inner = self.lock();
            (std::mem::take(&mut inner.pending), inner.changes)
        };
        let journal = journal::path_of(&self.state_path);
        match w.append(&journal, &batch) {
            Ok(()) => w.saved = covers,
            Err(e) => {
                tracing::error!(
                    "cannot write {}: {e}; writing a snapshot",
                    journal.display()
                );
                self.snapshot(&mut w);
                return;
            }
        }
        if w.wants_snapshot() {
            self.snapshot(&mut w);
        }
    }

    /// Writes the whole state as the snapshot and empties the journal.
    fn snapshot(&self, w: &mut journal::Writer) {
        let (state, covers) = {
            let mut inner = self.lock();
            // The snapshot holds these changes.
            inner.pending.clear();
            (inner.alloc.state(), inner.changes)
        };
        match w.snapshot(&self.state_path, &state.to_json()) {
            Ok(()) => w.saved = covers,
            Err(e) => tracing::error!("cannot save {}: {e}", self.state_path.display()),
        }
    }

    /// Puts the registrations of the restored leases back in the engine
    /// (the registry starts empty after a restart).
    pub fn restore_registrations(&self, engine: &mut Engine) {
        let inner = self.lock();
        for lease in inner.alloc.leases() {
            register(engine, lease);
        }
    }
}

/// The allocator from the snapshot and the journal, and whether they
/// must be rewritten (the journal had records, or anything was skipped).
/// A missing snapshot is a fresh start; an unusable one is reported, set
/// aside (renamed `.bad`) and the journal replayed onto an empty state;
/// a state that still does not hold together is set aside too.
fn restore(policy: AllocPolicy, settings: Settings, path: &Path) -> (Allocator, bool) {
    let empty = || Allocator::new(policy.clone(), settings);
    let journal_path = journal::path_of(path);
    let loaded = journal::load(&journal_path);
    let rewrite = !loaded.records.is_empty() || loaded.skipped > 0;
    let base = match std::fs::read(path) {
        Ok(bytes) => State::parse(&bytes).unwrap_or_else(|e| {
            set_aside(path, &e.to_string());
            empty().state()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => empty().state(),
        Err(e) => {
            tracing::error!(
                "cannot read {}: {e}; using the journal only",
                path.display()
            );
            empty().state()
        }
    };
    let state = journal::replay(base, loaded.records);
    match Allocator::restore(policy.clone(), settings, state) {
        Ok(alloc) => (alloc, rewrite),
        Err(e) => {
            set_aside(path, &e.to_string());
            set_aside(&journal_path, "not replayable");
            (empty(), true)
        }
    }
}

fn set_aside(path: &Path, why: &str) {
    let mut aside = path.as_os_str().to_owned();
    aside.push(".bad");
    let aside = PathBuf::from(aside);
    tracing::error!(
        "{}: {why}; set aside as {}, starting without it",
        path.display(),
        aside.display()
    );
    let _ = std::fs::rename(path, &aside);
}

/// The netid of a lease's socket (`tcp`, `udp6`, ...).
fn netid(family: Family, socktype: Socktype) -> String {
    let base = socktype.protocol_name();
    match family {
        Family::Inet => base.to_owned(),
        Family::Inet6 => format!("{base}6"),
    }
}

/// The universal address of a lease (RFC 5665 section 5.2.3.4).
fn uaddr(lease: &Lease) -> String {
    let host = match (lease.bind_addr.as_str(), lease.family) {
        ("", Family::Inet) => "0.0.0.0",
        ("", Family::Inet6) => "::",
        (addr, _) => addr,
    };
    format!("{host}.{}.{}", lease.port >> 8, lease.port & 0xff)
}

/// The owner string the engine writes for a local caller (C `getowner`).
fn owner(uid: u32) -> String {
    match uid {
        0 => "superuser".to_owned(),
        uid => uid.to_string(),
    }
}

/// Registers every (prog, vers) of a lease on its netid.
fn register(engine: &mut Engine, lease: &Lease) {
    let netid = netid(lease.family, lease.socktype);
    let addr = uaddr(lease);
    for r in &lease.registrations {
        let reg = engine.registry_mut();
        if !reg.set(
            Program(r.prog),
            Version(r.vers),
            &netid,
            &addr,
            &owner(lease.uid),
        ) {
            tracing::warn!(
                "lease {}: {} {} on {netid} is registered elsewhere; not replaced",
                lease.id,
                r.prog,
                r.vers
            );
        }
    }
}

/// Removes a finished lease's registrations, only those still pointing
/// at its port (a later SET by someone else is left alone).
fn unregister(engine: &mut Engine, lease: &Lease) {
    let netid = netid(lease.family, lease.socktype);
    let addr = uaddr(lease);
    for r in &lease.registrations {
        let (prog, vers) = (Program(r.prog), Version(r.vers));
        let reg = engine.registry_mut();
        let ours = reg
            .lookup(prog, vers, &netid)
            .is_some_and(|e| e.addr == addr);
        if ours {
            reg.unset(prog, vers, &netid, "superuser");
        }
    }
}
