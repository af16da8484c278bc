//! The table of open stream connections (TCP and local), with a cap: when
//! it is full, the connection idle the longest is told to close to make
//! room for a new one. No I/O; each connection's task polls its
//! [`ConnSlot::evicted`] future.
//!
//! The C daemon has no such cap (libtirpc accepts until `RLIMIT_NOFILE`,
//! then stops accepting); this bounds memory and descriptors and keeps
//! new clients served when idle ones pile up.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tokio::sync::Notify;

/// One open connection as the table sees it.
#[derive(Debug)]
pub struct ConnSlot {
    id: u64,
    /// Milliseconds since the table's epoch at the last byte moved.
    last_active: AtomicU64,
    evict: Notify,
    epoch: Instant,
}

impl ConnSlot {
    /// Records activity (a read or a write made progress).
    pub fn touch(&self) {
        self.last_active
            .store(ms_since(self.epoch), Ordering::Relaxed);
    }

    /// Completes when the table wants this connection closed.
    pub async fn evicted(&self) {
        self.evict.notified().await;
    }
}

fn ms_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The open connections of one kind (network or local), at most `cap`.
#[derive(Debug)]
pub struct ConnTable {
    cap: usize,
    epoch: Instant,
    next_id: AtomicU64,
    slots: Mutex<HashMap<u64, Arc<ConnSlot>>>,
}

/// Removes its connection from the table when the connection ends.
#[derive(Debug)]
pub struct ConnGuard {
    table: Arc<ConnTable>,
    pub slot: Arc<ConnSlot>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.table.lock().remove(&self.slot.id);
    }
}

impl ConnTable {
    /// A table holding at most `cap` connections (at least one).
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(ConnTable {
            cap: cap.max(1),
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            slots: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<ConnSlot>>> {
        // The map stays consistent whatever panicked while holding it.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits a new connection; when the table is full, the one idle the
    /// longest is told to close (and leaves the table now).
    pub fn admit(self: &Arc<Self>) -> ConnGuard {
        let slot = Arc::new(ConnSlot {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            last_active: AtomicU64::new(ms_since(self.epoch)),
            evict: Notify::new(),
            epoch: self.epoch,
        });
        let mut slots = self.lock();
        while slots.len() >= self.cap {
            let oldest = slots
                .values()
                .min_by_key(|s| s.last_active.load(Ordering::Relaxed))
                .map(|s| s.id);
            let Some(id) = oldest else { break };
            if let Some(victim) = slots.remove(&id) {
                tracing::debug!(
                    "connection table full ({}): closing the longest idle",
                    self.cap
                );
                // notify_one keeps a permit if the task is not waiting yet.
                victim.evict.notify_one();
            }
        }
        slots.insert(slot.id, slot.clone());
        ConnGuard {
            table: self.clone(),
            slot,
        }
    }

    /// How many connections are open.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn full_table_evicts_the_longest_idle() {
        let t = ConnTable::new(2);
        let a = t.admit();
        std::thread::sleep(Duration::from_millis(5));
        let b = t.admit();
        std::thread::sleep(Duration::from_millis(5));
        a.slot.touch(); // b is now the longest idle
        let _c = t.admit();
        assert_eq!(t.len(), 2);
        tokio::time::timeout(Duration::from_secs(1), b.slot.evicted())
            .await
            .expect("b was not evicted");
        let not_a = tokio::time::timeout(Duration::from_millis(50), a.slot.evicted()).await;
        assert!(not_a.is_err(), "a was evicted although active");
    }

    #[test]
    fn dropping_a_guard_frees_its_place() {
        let t = ConnTable::new(4);
        let a = t.admit();
        let _b = t.admit();
        assert_eq!(t.len(), 2);
        drop(a);
        assert_eq!(t.len(), 1);
    }
}
