//! GETSTAT counters (RFC 1833 section 2.2.1, `rpcb_stat_byvers`), counted
//! exactly where rpcbind 1.2.6 `rpcb_stat.c` counts them, with the address
//! and remote-call lists bounded. No I/O.
//!
//! * `info[proc]`: every call that reached a version's dispatcher, before
//!   its arguments are decoded or access is checked, for procedures up to
//!   the version's highest (5 for PMAP v2, 8 for v3, 12 for v4).
//! * `setinfo` / `unsetinfo`: successful SETs / UNSETs.
//! * `addrinfo`: per (program, version, arrival netid) lookups that found
//!   an address (`success`) or not (`failure`), newest entry first.
//! * `rmtinfo`: per (program, version, procedure, netid) remote calls.
//!
//! The C daemon 1.2.6 lets both lists grow without end; newer upstream caps
//! them at 4096 entries (`MAX_STAT_BUCKETS`), dropping the oldest, and so do
//! we ([`STAT_LIST_CAP`]).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

use crate::rpc::{Procedure, Program, Version};
use crate::rpcb::RPCBSTAT_HIGHPROC;
use crate::xdr::XdrWriter;

/// Most entries kept in each of `addrinfo` and `rmtinfo`, per version.
pub const STAT_LIST_CAP: usize = 4096;

/// Highest procedure counted in `info`, per statistics slot (PMAP v2, v3,
/// v4): `rpcb_highproc_2/3/4`.
const HIGHPROC: [u32; 3] = [5, 8, 12];

/// A map that remembers insertion order and forgets its oldest entries.
#[derive(Clone, Debug)]
struct CappedList<K, V> {
    map: HashMap<K, V>,
    /// Oldest first.
    order: VecDeque<K>,
}

impl<K, V> Default for CappedList<K, V> {
    fn default() -> Self {
        Self {
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }
}

impl<K: Hash + Eq + Clone, V> CappedList<K, V> {
    fn upsert(&mut self, key: K, new: impl FnOnce() -> V, update: impl FnOnce(&mut V)) {
        if let Some(v) = self.map.get_mut(&key) {
            update(v);
            return;
        }
        self.map.insert(key.clone(), new());
        self.order.push_back(key);
        if self.order.len() > STAT_LIST_CAP {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }

    /// Newest first, as C's lists (new entries are prepended).
    fn newest_first(&self) -> impl Iterator<Item = (&K, &V)> + '_ {
        self.order
            .iter()
            .rev()
            .filter_map(|k| self.map.get(k).map(|v| (k, v)))
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct AddrCount {
    success: u32,
    failure: u32,
}

#[derive(Clone, Copy, Debug, Default)]
struct RmtCount {
    success: u32,
    failure: u32,
    indirect: u32,
}

#[derive(Clone, Debug, Default)]
struct VersionStats {
    info: [u32; RPCBSTAT_HIGHPROC],
    setinfo: u32,
    unsetinfo: u32,
    addrinfo: CappedList<(Program, Version, &'static str), AddrCount>,
    rmtinfo: CappedList<(Program, Version, Procedure, &'static str), RmtCount>,
}

/// The statistics slot of a binding-protocol version (`rtype`): 0 for
/// PMAP v2, 1 for v3, 2 for v4.
pub(crate) type Slot = usize;

/// All counters, one slot per protocol version.
#[derive(Clone, Debug, Default)]
pub(crate) struct Stats {
    slots: [VersionStats; 3],
}

impl Stats {
    /// C `rpcbs_procinfo`.
    pub(crate) fn procinfo(&mut self, slot: Slot, proc: Procedure) {
        if proc.0 <= HIGHPROC[slot] {
            let c = &mut self.slots[slot].info[proc.0 as usize];
            *c = c.wrapping_add(1);
        }
    }

    /// C `rpcbs_set`: successes only.
    pub(crate) fn set(&mut self, slot: Slot, success: bool) {
        if success {
            let c = &mut self.slots[slot].setinfo;
            *c = c.wrapping_add(1);
        }
    }

    /// C `rpcbs_unset`: successes only.
    pub(crate) fn unset(&mut self, slot: Slot, success: bool) {
        if success {
            let c = &mut self.slots[slot].unsetinfo;
            *c = c.wrapping_add(1);
        }
    }

    /// C `rpcbs_getaddr`: `netid` must be one of the daemon's transports
    /// (C ignores others); `found` is "the answer was not empty".
    pub(crate) fn getaddr(
        &mut self,
        slot: Slot,
        prog: Program,
        vers: Version,
        netid: &'static str,
        found: bool,
    ) {
        let bump = |c: &mut AddrCount| {
            if found {
                c.success = c.success.wrapping_add(1);
            } else {
                c.failure = c.failure.wrapping_add(1);
            }
        };
        self.slots[slot].addrinfo.upsert(
            (prog, vers, netid),
            || {
                let mut c = AddrCount::default();
                bump(&mut c);
                c
            },
            bump,
        );
    }

    /// C `rpcbs_rmtcall`. As in C, a new entry starts with `indirect = 1`
    /// whatever the procedure; later INDIRECT calls add to it.
    pub(crate) fn rmtcall(
        &mut self,
        slot: Slot,
        key: (Program, Version, Procedure, &'static str),
        indirect: bool,
        found: bool,
    ) {
        self.slots[slot].rmtinfo.upsert(
            key,
            || RmtCount {
                success: u32::from(found),
                failure: u32::from(!found),
                indirect: 1,
            },
            |c| {
                if found {
                    c.success = c.success.wrapping_add(1);
                } else {
                    c.failure = c.failure.wrapping_add(1);
                }
                if indirect {
                    c.indirect = c.indirect.wrapping_add(1);
                }
            },
        );
    }

    /// Writes `rpcb_stat_byvers` (RFC 1833 section 2.2.1).
    pub(crate) fn encode(&self, w: &mut XdrWriter) {
        for s in &self.slots {
            for c in s.info {
                w.put_u32(c);
            }
            w.put_u32(s.setinfo);
            w.put_u32(s.unsetinfo);
            for (&(prog, vers, netid), c) in s.addrinfo.newest_first() {
                w.put_bool(true);
                w.put_u32(prog.0);
                w.put_u32(vers.0);
                w.put_u32(c.success);
                w.put_u32(c.failure);
                w.put_string(netid);
            }
            w.put_bool(false);
            for (&(prog, vers, proc, netid), c) in s.rmtinfo.newest_first() {
                w.put_bool(true);
                w.put_u32(prog.0);
                w.put_u32(vers.0);
                w.put_u32(proc.0);
                w.put_u32(c.success);
                w.put_u32(c.failure);
                w.put_u32(c.indirect);
                w.put_string(netid);
            }
            w.put_bool(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpcb::RpcbStatByvers;
    use crate::xdr::Decode;

    #[test]
    fn getstat_lists_are_bounded_and_newest_first() {
        let mut s = Stats::default();
        for p in 0..(STAT_LIST_CAP as u32 + 10) {
            s.getaddr(1, Program(p), Version(1), "udp", p % 2 == 0);
        }
        s.getaddr(
            1,
            Program(STAT_LIST_CAP as u32 + 9),
            Version(1),
            "udp",
            true,
        );
        let mut w = XdrWriter::new();
        s.encode(&mut w);
        let bytes = w.into_bytes();
        let decoded = RpcbStatByvers::from_xdr(&bytes).unwrap();
        let v3 = &decoded.0[1].addrinfo;
        assert_eq!(v3.len(), STAT_LIST_CAP);
        assert_eq!(v3[0].prog, Program(STAT_LIST_CAP as u32 + 9));
        assert_eq!((v3[0].success, v3[0].failure), (1, 1));
        assert_eq!(v3.last().unwrap().prog, Program(10));
    }

    #[test]
    fn procinfo_ignores_procedures_above_the_versions_highest() {
        let mut s = Stats::default();
        s.procinfo(0, Procedure(5));
        s.procinfo(0, Procedure(6));
        s.procinfo(1, Procedure(9));
        s.procinfo(2, Procedure(12));
        assert_eq!(s.slots[0].info[5], 1);
        assert_eq!(s.slots[0].info[6], 0);
        assert_eq!(s.slots[1].info.iter().sum::<u32>(), 0);
        assert_eq!(s.slots[2].info[12], 1);
    }
}
