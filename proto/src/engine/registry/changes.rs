//! The registry's change log: every addition and removal of the two
//! lists, recorded in order when asked, and replayed exactly by
//! [`Registry::apply`] (the warm-start journal, `proto::warmstart`). No
//! I/O.

use super::{PmapEntry, Registration, Registry};
use crate::rpc::{Program, Version};

/// One change to the lists, in the order it happened: what a warm-start
/// journal records so that [`Registry::apply`] replays the lists exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// An RPCBIND entry added at the head (`front`) or the tail.
    RpcbAdd { reg: Registration, front: bool },
    /// The RPCBIND entry for (program, version, netid) removed.
    RpcbRemove {
        program: Program,
        version: Version,
        netid: String,
    },
    /// A PMAP mapping added at the head (`front`) or the tail.
    PmapAdd { entry: PmapEntry, front: bool },
    /// The first PMAP mapping equal to this one removed.
    PmapRemove(PmapEntry),
}

impl Registry {
    /// Starts recording every change for [`take_changes`](Self::take_changes).
    pub fn record_changes(&mut self) {
        self.changes.get_or_insert_with(Vec::new);
    }

    /// The changes recorded since the last call (none unless
    /// [`record_changes`](Self::record_changes) was called).
    pub fn take_changes(&mut self) -> Vec<Change> {
        self.changes
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Replays one recorded change. An add whose (program, version, netid)
    /// is taken and a removal that matches nothing change nothing.
    pub fn apply(&mut self, change: &Change) {
        match change {
            Change::RpcbAdd { reg, front } => {
                if self.lookup(reg.program, reg.version, &reg.netid).is_none() {
                    let (netid, addr, owner) = (&reg.netid, &reg.addr, &reg.owner);
                    self.insert_rpcb(reg.program, reg.version, netid, addr, owner, *front);
                }
            }
            Change::RpcbRemove {
                program,
                version,
                netid,
            } => {
                if let Some(id) = self.exact(*program, *version, netid) {
                    self.remove_rpcb(id);
                }
            }
            Change::PmapAdd { entry, front } => self.push_pmap(*entry, *front),
            Change::PmapRemove(entry) => {
                let ids = self.pmap_by_prog_prot.get(&(entry.program, entry.protocol));
                let hit = ids
                    .into_iter()
                    .flatten()
                    .copied()
                    .find(|&id| self.pmap.get(id) == Some(entry));
                if let Some(id) = hit {
                    self.remove_pmap(id);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaying_recorded_changes_rebuilds_both_lists() {
        let mut r = Registry::new();
        r.set_front(Program(100000), Version(4), "udp", "0.0.0.0.0.111");
        r.record_changes();
        let mut replica = r.clone();
        replica.take_changes();
        assert!(r.set(Program(7), Version(1), "udp", "0.0.0.0.1.2", "1000"));
        assert!(r.set(Program(7), Version(2), "tcp", "0.0.0.0.1.3", "1000"));
        assert!(r.set(Program(8), Version(1), "tcp6", "::.1.3", "superuser"));
        assert!(r.unset(Program(7), Version(1), "UDP", "1000"));
        assert!(r.unset(Program(7), Version(2), "", "superuser"));
        let changes = r.take_changes();
        assert_eq!(changes.len(), 8, "{changes:?}");
        for c in &changes {
            replica.apply(c);
        }
        assert!(replica.iter().eq(r.iter()));
        assert!(replica.pmap_iter().eq(r.pmap_iter()));
        assert!(r.take_changes().is_empty());
    }
}
