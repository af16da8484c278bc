//! The allocator's persistent state: leases, the reservations' release
//! marks and the rotation cursors, as JSON. Pure, no I/O: the daemon
//! writes [`State::to_json`] atomically (temp file, fsync, rename) and
//! reads the file back through [`State::parse`], which refuses a torn or
//! corrupt file with an error saying what is wrong, so a daemon never
//! starts from half a state.

use super::lease::{Lease, ReservationState};
use super::pools::slot;
use super::{AllocPolicy, Allocator, Settings, Taker};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// The `format` field of every state file.
pub const STATE_FORMAT: &str = "portalloc-state";
/// The version this code writes and reads.
pub const STATE_VERSION: u32 = 1;

/// What is saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// Always [`STATE_FORMAT`].
    pub format: String,
    /// Always [`STATE_VERSION`].
    pub version: u32,
    /// The id the next lease gets.
    pub next_lease_id: u64,
    /// `[pool, privileged][stream, dgram]` cursors.
    pub cursors: [[usize; 2]; 2],
    /// Every lease.
    pub leases: Vec<Lease>,
    /// Every reservation socket (`held` is not saved).
    pub reservations: Vec<ReservationState>,
    /// The number of leases, written last: a file cut before it fails to
    /// parse, and a count that disagrees is refused.
    pub lease_count: usize,
}

/// A state file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("allocation state unusable: {reason}")]
pub struct StateError {
    /// What is wrong (with line and column for JSON errors).
    pub reason: String,
}

fn bad(reason: impl Into<String>) -> StateError {
    StateError {
        reason: reason.into(),
    }
}

impl State {
    /// The file's bytes (compact JSON, newline-terminated: 10,000 leases
    /// take about 1.5 MB).
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Parses and checks a state file: a torn write (cut anywhere), a
    /// foreign or newer file, duplicate ports or ids are refused.
    pub fn parse(bytes: &[u8]) -> Result<State, StateError> {
        let state: State = serde_json::from_slice(bytes).map_err(|e| {
            if e.is_eof() {
                bad(format!("file ends early (torn write?): {e}"))
            } else {
                bad(e.to_string())
            }
        })?;
        state.check()?;
        Ok(state)
    }

    fn check(&self) -> Result<(), StateError> {
        if self.format != STATE_FORMAT {
            return Err(bad(format!(
                "format is {:?}, not {STATE_FORMAT:?}",
                self.format
            )));
        }
        if self.version != STATE_VERSION {
            return Err(bad(format!(
                "version {} is not the supported {STATE_VERSION}",
                self.version
            )));
        }
        if self.lease_count != self.leases.len() {
            return Err(bad(format!(
                "lease_count {} but {} leases",
                self.lease_count,
                self.leases.len()
            )));
        }
        let mut ids = HashSet::new();
        let mut ports = HashSet::new();
        for l in &self.leases {
            if l.id == 0 || l.id >= self.next_lease_id {
                return Err(bad(format!(
                    "lease id {} outside 1..{}",
                    l.id, self.next_lease_id
                )));
            }
            if !ids.insert(l.id) {
                return Err(bad(format!("lease id {} appears twice", l.id)));
            }
            if !ports.insert((slot(l.socktype), l.port)) {
                return Err(bad(format!("port {}/{} leased twice", l.port, l.socktype)));
            }
        }
        Ok(())
    }
}

impl Allocator {
    /// What to save after every change.
    pub fn state(&self) -> State {
        let leases: Vec<Lease> = self.leases.values().cloned().collect();
        State {
            format: STATE_FORMAT.to_string(),
            version: STATE_VERSION,
            next_lease_id: self.next_lease,
            cursors: self.cursors,
            lease_count: leases.len(),
            leases,
            reservations: self.reservations.clone(),
        }
    }

    /// An allocator resuming from a saved state under `policy` (which may
    /// have changed meanwhile: leases keep their ports, reservations keep
    /// their release marks when their name, socket type and port are
    /// unchanged). Nothing is held yet: call
    /// [`hold_reservations`](Self::hold_reservations); re-watch each
    /// lease's pid and report the gone ones with
    /// [`on_process_gone`](Self::on_process_gone).
    pub fn restore(
        policy: AllocPolicy,
        settings: Settings,
        state: State,
    ) -> Result<Self, StateError> {
        state.check()?;
        let mut alloc = Allocator::new(policy, settings);
        let saved: Vec<ReservationState> = state
            .reservations
            .into_iter()
            .map(|mut r| {
                r.held = false;
                r
            })
            .collect();
        alloc.reservations = super::reservation_entries(&alloc.policy, &saved);
        alloc.next_lease = state.next_lease_id;
        alloc.cursors = state.cursors;
        for lease in state.leases {
            alloc
                .taken
                .insert((slot(lease.socktype), lease.port), Taker::Lease(lease.id));
            *alloc.per_uid.entry(lease.uid).or_insert(0) += 1;
            alloc.leases.insert(lease.id, lease);
        }
        Ok(alloc)
    }
}
