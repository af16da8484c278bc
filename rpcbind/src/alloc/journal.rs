//! The allocation state on disk: a snapshot (`portalloc.state`, the
//! allocator's `State` as JSON, replaced atomically by `persist`) and a
//! journal beside it (`portalloc.state.journal`), one JSON line per change:
//! the leases it created or changed, the ids it ended, the reservations
//! when they changed, the lease-id counter and cursors. Each change is
//! appended and `fdatasync`ed before its reply (group commit: see
//! `Service::save`); when the journal outgrows the snapshot, a fresh
//! snapshot is written and the journal emptied. Replaying a record is
//! idempotent (a lease is put whole or removed by id), so a crash between
//! the snapshot's rename and the journal's truncation replays old records
//! onto the new snapshot harmlessly. A torn last line (a crash during the
//! append, never acknowledged) and any unparsable line are skipped and
//! reported. Does file I/O.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use portpolicy::alloc::{Allocator, Lease, LeaseId, ReservationState, State};
use serde::{Deserialize, Serialize};

use super::persist;

/// The journal may grow to this many times the snapshot (and at least
/// `MIN_SNAPSHOT` bytes) before a new snapshot is written.
const SNAPSHOT_FACTOR: u64 = 4;
const MIN_SNAPSHOT: u64 = 1 << 20;

/// One change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    next_lease_id: LeaseId,
    cursors: [[usize; 2]; 2],
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    put: Vec<Lease>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    end: Vec<LeaseId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reservations: Option<Vec<ReservationState>>,
}

/// What a change touched.
#[derive(Debug, Default)]
pub struct Touched {
    /// Leases created, changed or ended.
    pub leases: Vec<LeaseId>,
    /// The reservations changed.
    pub reservations: bool,
}

impl Touched {
    /// These leases.
    pub fn leases(leases: Vec<LeaseId>) -> Touched {
        Touched {
            leases,
            reservations: false,
        }
    }

    /// The reservations.
    pub fn reservations() -> Touched {
        Touched {
            leases: Vec::new(),
            reservations: true,
        }
    }
}

/// The journal line of a change just made to `alloc` (newline-terminated).
pub fn line(alloc: &Allocator, touched: &Touched) -> Vec<u8> {
    let (next_lease_id, cursors) = alloc.counters();
    let mut rec = Record {
        next_lease_id,
        cursors,
        put: Vec::new(),
        end: Vec::new(),
        reservations: touched.reservations.then(|| alloc.reservations().to_vec()),
    };
    for &id in &touched.leases {
        match alloc.lease(id) {
            Some(lease) => rec.put.push(lease.clone()),
            None => rec.end.push(id),
        }
    }
    let mut out = serde_json::to_vec(&rec).unwrap_or_default();
    out.push(b'\n');
    out
}

/// The journal of the snapshot at `state_path`.
pub fn path_of(state_path: &Path) -> PathBuf {
    let mut s = state_path.as_os_str().to_owned();
    s.push(".journal");
    PathBuf::from(s)
}

/// What the journal held: its usable records and whether anything had to
/// be skipped.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The records, in order.
    pub records: Vec<Record>,
    /// Lines skipped (torn or corrupt), reported already.
    pub skipped: usize,
}

/// Reads the journal (missing: empty), reporting every skipped line.
pub fn load(path: &Path) -> Loaded {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Loaded::default(),
        Err(e) => {
            tracing::error!("cannot read {}: {e}; its changes are lost", path.display());
            return Loaded {
                records: Vec::new(),
                skipped: 1,
            };
        }
    };
    let mut loaded = Loaded::default();
    let mut at = 0;
    for chunk in bytes.split_inclusive(|&b| b == b'\n') {
        match (
            chunk.ends_with(b"\n"),
            serde_json::from_slice::<Record>(chunk),
        ) {
            (true, Ok(rec)) => loaded.records.push(rec),
            (false, _) => {
                tracing::warn!(
                    "{}: torn last record at byte {at} (never acknowledged); ignored",
                    path.display()
                );
                loaded.skipped += 1;
            }
            (true, Err(e)) => {
                tracing::error!(
                    "{}: corrupt record at byte {at}: {e}; skipped",
                    path.display()
                );
                loaded.skipped += 1;
            }
        }
        at += chunk.len();
    }
    loaded
}

/// `base` with the records applied in order.
pub fn replay(mut base: State, records: Vec<Record>) -> State {
    let mut leases: BTreeMap<LeaseId, Lease> = base.leases.drain(..).map(|l| (l.id, l)).collect();
    for rec in records {
        for lease in rec.put {
            leases.insert(lease.id, lease);
        }
        for id in rec.end {
            leases.remove(&id);
        }
        if let Some(r) = rec.reservations {
            base.reservations = r;
        }
        base.next_lease_id = base.next_lease_id.max(rec.next_lease_id);
        base.cursors = rec.cursors;
    }
    base.leases = leases.into_values().collect();
    base.lease_count = base.leases.len();
    base
}

/// The open journal and the sizes that decide when to snapshot.
#[derive(Debug, Default)]
pub struct Writer {
    /// The change count on disk.
    pub saved: u64,
    journal: Option<File>,
    journal_len: u64,
    snapshot_len: u64,
}

impl Writer {
    /// Appends `bytes` and syncs them.
    pub fn append(&mut self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let file = match &mut self.journal {
            Some(f) => f,
            None => self.journal.insert(open(path)?),
        };
        file.write_all(bytes)?;
        file.sync_data()?;
        self.journal_len += bytes.len() as u64;
        Ok(())
    }

    /// Whether the journal has outgrown the snapshot.
    pub fn wants_snapshot(&self) -> bool {
        self.journal_len > MIN_SNAPSHOT.max(self.snapshot_len * SNAPSHOT_FACTOR)
    }

    /// Writes `snapshot` atomically, then empties the journal.
    pub fn snapshot(&mut self, state_path: &Path, snapshot: &[u8]) -> io::Result<()> {
        persist::write_atomic(state_path, snapshot)?;
        self.snapshot_len = snapshot.len() as u64;
        let journal = path_of(state_path);
        let file = match &mut self.journal {
            Some(f) => f,
            None => self.journal.insert(open(&journal)?),
        };
        file.set_len(0)?;
        file.sync_all()?;
        self.journal_len = 0;
        Ok(())
    }
}

/// Opens (creating) the journal; its directory entry is made durable
/// too, or a power cut could lose a journal whose records were synced.
fn open(path: &Path) -> io::Result<File> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    File::open(dir)?.sync_all()?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(id: LeaseId, port: u16) -> Lease {
        Lease {
            id,
            port,
            socktype: proto::alloc::Socktype::Dgram,
            family: proto::alloc::Family::Inet,
            bind_addr: String::new(),
            pid: Some(1),
            start_time: None,
            uid: 0,
            since: 0,
            registrations: Vec::new(),
        }
    }

    fn rec(next: LeaseId, put: Vec<Lease>, end: Vec<LeaseId>) -> Vec<u8> {
        let r = Record {
            next_lease_id: next,
            cursors: [[0; 2]; 2],
            put,
            end,
            reservations: None,
        };
        let mut out = serde_json::to_vec(&r).unwrap();
        out.push(b'\n');
        out
    }

    fn empty() -> State {
        State {
            format: portpolicy::alloc::STATE_FORMAT.into(),
            version: portpolicy::alloc::STATE_VERSION,
            next_lease_id: 1,
            cursors: [[0; 2]; 2],
            leases: Vec::new(),
            reservations: Vec::new(),
            lease_count: 0,
        }
    }

    #[test]
    fn replay_is_in_order_and_idempotent_and_a_torn_tail_is_skipped() {
        let dir = std::env::temp_dir().join(format!("alloc-journal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("j");
        let mut bytes = rec(2, vec![lease(1, 700)], vec![]);
        bytes.extend(rec(3, vec![lease(2, 701)], vec![]));
        bytes.extend(rec(3, vec![], vec![1]));
        bytes.extend(b"{\"broken\": 1}\n");
        let good = rec(4, vec![lease(3, 700)], vec![]);
        bytes.extend(&good);
        bytes.extend(&good[..good.len() / 2]);
        std::fs::write(&path, &bytes).unwrap();
        let loaded = load(&path);
        assert_eq!(loaded.skipped, 2, "one corrupt line, one torn tail");
        assert_eq!(loaded.records.len(), 4);
        let once = replay(empty(), loaded.records.clone());
        let ports: Vec<(u64, u16)> = once.leases.iter().map(|l| (l.id, l.port)).collect();
        assert_eq!(ports, [(2, 701), (3, 700)]);
        assert_eq!(once.next_lease_id, 4);
        assert_eq!(once.lease_count, 2);
        // Replayed again onto its own result (a crash before truncation).
        assert_eq!(replay(once.clone(), loaded.records), once);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_corrupt_snapshot_is_set_aside_and_the_journal_still_counts() {
        let dir = std::env::temp_dir().join(format!("alloc-journal-start-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("policy.toml");
        let policy =
            "mode = \"high\"\nhigh_range = \"24100-24139\"\n[allocation]\nenabled = true\n";
        std::fs::write(&config, policy).unwrap();
        let state = dir.join("pa.state");
        std::fs::write(&state, b"{\"format\": \"portalloc-st").unwrap();
        let mut journal = rec(6, vec![lease(5, 24110)], vec![]);
        journal.extend(b"{\"next_lease");
        std::fs::write(path_of(&state), &journal).unwrap();
        let svc = super::super::Service::start(&super::super::Options {
            policy_config: Some(config),
            state_path: Some(state.clone()),
            sweep: None,
        })
        .unwrap();
        let ids: Vec<u64> = svc.list().0.iter().map(|l| l.lease_id).collect();
        assert_eq!(ids, [5], "the journal's lease, on an empty base");
        assert!(
            dir.join("pa.state.bad").exists(),
            "the corrupt snapshot set aside"
        );
        // Rewritten at start: a valid snapshot, an empty journal.
        assert!(State::parse(&std::fs::read(&state).unwrap()).is_ok());
        assert_eq!(std::fs::metadata(path_of(&state)).unwrap().len(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
