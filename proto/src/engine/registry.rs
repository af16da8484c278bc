//! The registry: C rpcbind's two linked lists, the RPCBIND list
//! (`list_rbl`: program, version, netid, universal address, owner) and the
//! PMAP v2 list (`list_pml`: program, version, protocol, port), with hash
//! indexes beside them so that no lookup, SET or UNSET scans the table.
//! No I/O.
//!
//! Semantics follow rpcbind 1.2.6 `rpcb_svc_com.c` (`map_set`,
//! `map_unset`, `find_service`, `add_pmaplist`, `del_pmaplist`) and
//! `pmap_svc.c` (`find_service_pmap`); see `proto/RULES.md`.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use super::list::{Id, OrderedList, MAX_IDS};

mod changes;
mod groups;
use crate::rpc::{Program, Version};
use crate::rpcb::{Mapping, Rpcb};
pub use changes::Change;
use groups::{group_add, group_remove, Groups};

/// `IPPROTO_TCP`, the PMAP v2 protocol number of `tcp`.
pub const IPPROTO_TCP: u32 = 6;
/// `IPPROTO_UDP`, the PMAP v2 protocol number of `udp`.
pub const IPPROTO_UDP: u32 = 17;

/// One RPCBIND registration (RFC 1833 `rpcb`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    pub program: Program,
    pub version: Version,
    /// The netid as registered (case kept; matched case-insensitively).
    /// Shared: a table holds a handful of distinct netids.
    pub netid: Arc<str>,
    /// The universal address.
    pub addr: String,
    /// `superuser`, a decimal uid, or `unknown` (shared like the netid).
    pub owner: Arc<str>,
}

/// One PMAP v2 mapping (RFC 1833 section 3, `mapping`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PmapEntry {
    pub program: Program,
    pub version: Version,
    /// `IPPROTO_TCP` or `IPPROTO_UDP`.
    pub protocol: u32,
    pub port: u32,
}

impl From<Registration> for Rpcb {
    fn from(r: Registration) -> Self {
        Rpcb {
            prog: r.program,
            vers: r.version,
            netid: r.netid.to_string(),
            addr: r.addr,
            owner: r.owner.to_string(),
        }
    }
}

impl From<Rpcb> for Registration {
    fn from(r: Rpcb) -> Self {
        Registration {
            program: r.prog,
            version: r.vers,
            netid: r.netid.into(),
            addr: r.addr,
            owner: r.owner.into(),
        }
    }
}

impl From<PmapEntry> for Mapping {
    fn from(e: PmapEntry) -> Self {
        Mapping {
            prog: e.program,
            vers: e.version,
            prot: e.protocol,
            port: e.port,
        }
    }
}

impl From<Mapping> for PmapEntry {
    fn from(m: Mapping) -> Self {
        PmapEntry {
            program: m.prog,
            version: m.vers,
            protocol: m.prot,
            port: m.port,
        }
    }
}

/// C compares netids with `strcasecmp`, so the indexes key on the ASCII
/// lowercase form (borrowed when the netid is lowercase already, so a
/// lookup does not allocate).
fn netid_key(netid: &str) -> Cow<'_, str> {
    if netid.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(netid.to_ascii_lowercase())
    } else {
        Cow::Borrowed(netid)
    }
}

/// The indexes of one (lowercase) netid.
#[derive(Clone, Debug, Default)]
struct NetidIndex {
    /// (program, version): at most one entry, since SET refuses a second.
    exact: HashMap<(Program, Version), Id>,
    /// Per program, in list order: `find_service`'s version fallback.
    by_prog: Groups<Program>,
}

/// The registry of mappings; see the module documentation.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    rpcb: OrderedList<Registration>,
    by_netid: HashMap<Box<str>, NetidIndex>,
    /// (program, version) in list order: UNSET with an empty netid and
    /// GETADDRLIST.
    by_prog_vers: Groups<(Program, Version)>,
    pmap: OrderedList<PmapEntry>,
    /// (program, protocol) in list order: `find_service_pmap`.
    pmap_by_prog_prot: Groups<(Program, u32)>,
    /// How many PMAP entries use each protocol (`del_pmaplist` with an
    /// empty netid looks in the (program, protocol) groups of each; a
    /// second index by (program, version) would cost ~30 bytes an entry).
    pmap_protocols: BTreeMap<u32, usize>,
    /// The distinct netids and owners in use, shared by the entries (a
    /// name leaves when its last entry does).
    names: HashSet<Arc<str>>,
    /// Bumped by every change of the RPCBIND list.
    generation: u64,
    /// Every change since the last [`Registry::take_changes`], when
    /// recording is on (warm start journals them).
    changes: Option<Vec<Change>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of RPCBIND registrations.
    pub fn len(&self) -> usize {
        self.rpcb.len()
    }

    /// Whether there are no RPCBIND registrations.
    pub fn is_empty(&self) -> bool {
        self.rpcb.len() == 0
    }

    /// A registry holding exactly these two lists, in this order, as C's
    /// warm start (`read_warmstart`) replaces `list_rbl` and `list_pml`
    /// with the saved ones: nothing is mirrored, so PMAP mappings without
    /// an RPCBIND twin survive. An RPCBIND entry whose (program, version,
    /// netid) repeats an earlier one is dropped (SET could never have made
    /// it; C's lookups would never find it).
    pub fn from_lists(
        rpcb: impl IntoIterator<Item = Registration>,
        pmap: impl IntoIterator<Item = PmapEntry>,
    ) -> Self {
        let mut reg = Registry::new();
        for r in rpcb {
            if reg.lookup(r.program, r.version, &r.netid).is_none() {
                reg.insert_rpcb(r, false);
            }
        }
        for e in pmap {
            reg.push_pmap(e, false);
        }
        reg
    }

    /// A counter that changes whenever a registration is added or removed:
    /// a driver that persists the registry compares it before and after a
    /// request.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The RPCBIND registrations in DUMP order.
    pub fn iter(&self) -> impl Iterator<Item = &Registration> + '_ {
        self.rpcb.iter()
    }

    /// The PMAP v2 mappings in PMAP DUMP order.
    pub fn pmap_iter(&self) -> impl Iterator<Item = &PmapEntry> + '_ {
        self.pmap.iter()
    }

    /// The number of PMAP v2 mappings.
    pub fn pmap_len(&self) -> usize {
        self.pmap.len()
    }

    /// C `find_service`: the entry for exactly (program, version, netid)
    /// if there is one, otherwise the last entry in list order for
    /// (program, netid) with any version.
    pub fn find_service(
        &self,
        program: Program,
        version: Version,
        netid: &str,
    ) -> Option<&Registration> {
        let index = self.by_netid.get(&*netid_key(netid))?;
        if let Some(&id) = index.exact.get(&(program, version)) {
            return self.rpcb.get(id);
        }
        self.rpcb.get(*index.by_prog.get(&program)?.last()?)
    }

    /// The entry for exactly (program, version, netid).
    pub fn lookup(&self, program: Program, version: Version, netid: &str) -> Option<&Registration> {
        let index = self.by_netid.get(&*netid_key(netid))?;
        self.rpcb.get(*index.exact.get(&(program, version))?)
    }

    /// C `find_versions`: the lowest and highest registered version of
    /// `program` on `netid`, computed with C's quirks (a version 0 entry
    /// restarts the range; `(0, 0)` when there is none).
    pub fn version_range(&self, program: Program, netid: &str) -> (Version, Version) {
        let (mut low, mut high) = (0u32, 0u32);
        let ids = self
            .by_netid
            .get(&*netid_key(netid))
            .and_then(|i| i.by_prog.get(&program));
        for reg in ids
            .into_iter()
            .flatten()
            .filter_map(|&id| self.rpcb.get(id))
        {
            let v = reg.version.0;
            if low == 0 {
                (low, high) = (v, v);
            } else if v < low {
                low = v;
            } else if v > high {
                high = v;
            }
        }
        (Version(low), Version(high))
    }

    /// The entries for (program, version) on any netid, in list order.
    pub fn by_program_version(
        &self,
        program: Program,
        version: Version,
    ) -> impl Iterator<Item = &Registration> + '_ {
        self.by_prog_vers
            .get(&(program, version))
            .into_iter()
            .flatten()
            .filter_map(|&id| self.rpcb.get(id))
    }

    /// C `map_set`: adds the mapping at the end of the list unless
    /// (program, version, netid) is taken. Returns TRUE when added, or when
    /// the same address is already registered there; FALSE otherwise (a SET
    /// never overwrites). A `udp`/`tcp` mapping is mirrored into the PMAP
    /// list.
    pub fn set(
        &mut self,
        program: Program,
        version: Version,
        netid: &str,
        addr: &str,
        owner: &str,
    ) -> bool {
        if let Some(existing) = self.lookup(program, version, netid) {
            return existing.addr == addr;
        }
        self.insert(program, version, netid, addr, owner, false);
        true
    }

    /// Like [`set`](Self::set) but at the head of both lists, as C's
    /// `rbllist_add` and the init-time PMAP entries do for the daemon's own
    /// registrations.
    pub(crate) fn set_front(
        &mut self,
        program: Program,
        version: Version,
        netid: &str,
        addr: &str,
    ) {
        if self.lookup(program, version, netid).is_none() {
            self.insert(program, version, netid, addr, "superuser", true);
        }
    }

    fn insert(
        &mut self,
        program: Program,
        version: Version,
        netid: &str,
        addr: &str,
        owner: &str,
        front: bool,
    ) {
        let reg = Registration {
            program,
            version,
            netid: self.intern(netid),
            addr: addr.to_owned(),
            owner: self.intern(owner),
        };
        self.insert_rpcb(reg, front);
        if let (Some(protocol), Some(port)) = (netid_to_protocol(netid), uaddr_port(addr)) {
            let entry = PmapEntry {
                program,
                version,
                protocol,
                port,
            };
            self.push_pmap(entry, front);
        }
    }

    /// The shared copy of `name`, added to the table if new.
    fn intern(&mut self, name: &str) -> Arc<str> {
        if let Some(shared) = self.names.get(name) {
            return Arc::clone(shared);
        }
        let shared: Arc<str> = Arc::from(name);
        self.names.insert(Arc::clone(&shared));
        shared
    }

    /// Drops the table's copy of names no entry (nor recorded change)
    /// holds any more.
    fn release(&mut self, names: [Arc<str>; 2]) {
        for name in names {
            // This handle and the table's: nobody else.
            if Arc::strong_count(&name) == 2 {
                self.names.remove(&name);
            }
        }
    }

    /// Adds one RPCBIND entry and its index entries (no PMAP mirror).
    fn insert_rpcb(&mut self, mut reg: Registration, front: bool) {
        let (program, version) = (reg.program, reg.version);
        reg.netid = self.intern(&reg.netid);
        reg.owner = self.intern(&reg.owner);
        reg.addr.shrink_to_fit();
        let key = netid_key(&reg.netid).into_owned().into_boxed_str();
        let logged = self.changes.is_some().then(|| reg.clone());
        let id = if front {
            self.rpcb.push_front(reg)
        } else {
            self.rpcb.push_back(reg)
        };
        // None: all 2^31 ids taken, which memory runs out long before.
        let Some(id) = id else {
            return;
        };
        if let (Some(log), Some(reg)) = (&mut self.changes, logged) {
            log.push(Change::RpcbAdd { reg, front });
        }
        let index = self.by_netid.entry(key).or_default();
        index.exact.insert((program, version), id);
        group_add(&mut index.by_prog, program, id, front);
        self.generation += 1;
        group_add(&mut self.by_prog_vers, (program, version), id, front);
    }

    fn push_pmap(&mut self, entry: PmapEntry, front: bool) {
        let id = if front {
            self.pmap.push_front(entry)
        } else {
            self.pmap.push_back(entry)
        };
        let Some(id) = id else {
            return;
        };
        if let Some(log) = &mut self.changes {
            log.push(Change::PmapAdd { entry, front });
        }
        group_add(
            &mut self.pmap_by_prog_prot,
            (entry.program, entry.protocol),
            id,
            front,
        );
        *self.pmap_protocols.entry(entry.protocol).or_default() += 1;
    }

    /// C `map_unset`: removes, in list order, every entry for (program,
    /// version) whose netid matches (case-insensitively; an empty netid
    /// matches all). A caller that is neither `superuser` nor the owner
    /// stops the walk at the first entry it does not own and gets FALSE
    /// (entries removed before it stay removed, as in C). Otherwise TRUE,
    /// also when nothing matched. When something was removed, the PMAP
    /// mirror is cleaned as C's `del_pmaplist` does.
    pub fn unset(&mut self, program: Program, version: Version, netid: &str, owner: &str) -> bool {
        let key = netid_key(netid);
        let candidates: Vec<Id> = match self.by_prog_vers.get(&(program, version)) {
            Some(ids) => ids.to_vec(),
            None => return true,
        };
        let mut removed = false;
        for id in candidates {
            let Some(reg) = self.rpcb.get(id) else {
                continue;
            };
            if !netid.is_empty() && netid_key(&reg.netid) != key {
                continue;
            }
            if owner != "superuser" && *reg.owner != *owner {
                return false;
            }
            self.remove_rpcb(id);
            removed = true;
        }
        if removed {
            self.del_pmaplist(program, version, netid);
        }
        true
    }

    fn remove_rpcb(&mut self, id: Id) {
        if let Some(reg) = self.rpcb.remove(id) {
            if let Some(log) = &mut self.changes {
                log.push(Change::RpcbRemove {
                    program: reg.program,
                    version: reg.version,
                    netid: reg.netid.to_string(),
                });
            }
            let key = netid_key(&reg.netid);
            if let Some(index) = self.by_netid.get_mut(&*key) {
                index.exact.remove(&(reg.program, reg.version));
                group_remove(&mut index.by_prog, reg.program, id);
                if index.exact.is_empty() {
                    self.by_netid.remove(&*key);
                }
            }
            self.generation += 1;
            group_remove(&mut self.by_prog_vers, (reg.program, reg.version), id);
            self.release([reg.netid, reg.owner]);
        }
    }

    /// C `del_pmaplist`: the netid is compared exactly (`strcmp`), unlike
    /// the RPCBIND list.
    fn del_pmaplist(&mut self, program: Program, version: Version, netid: &str) {
        let protocol = if netid.is_empty() {
            None
        } else {
            match netid_to_protocol(netid) {
                Some(p) => Some(p),
                None => return,
            }
        };
        let protocols: Vec<u32> = match protocol {
            Some(p) => vec![p],
            None => self.pmap_protocols.keys().copied().collect(),
        };
        for protocol in protocols {
            let ids: Vec<Id> = match self.pmap_by_prog_prot.get(&(program, protocol)) {
                Some(ids) => ids.to_vec(),
                None => continue,
            };
            for id in ids {
                if self.pmap.get(id).is_some_and(|e| e.version == version) {
                    self.remove_pmap(id);
                }
            }
        }
    }

    fn remove_pmap(&mut self, id: Id) {
        let Some(entry) = self.pmap.remove(id) else {
            return;
        };
        if let Some(log) = &mut self.changes {
            log.push(Change::PmapRemove(entry));
        }
        group_remove(
            &mut self.pmap_by_prog_prot,
            (entry.program, entry.protocol),
            id,
        );
        if let std::collections::btree_map::Entry::Occupied(mut e) =
            self.pmap_protocols.entry(entry.protocol)
        {
            *e.get_mut() -= 1;
            if *e.get() == 0 {
                e.remove();
            }
        }
    }

    /// C `find_service_pmap`: exact (program, version, protocol), else the
    /// last PMAP entry for (program, protocol).
    pub fn find_service_pmap(
        &self,
        program: Program,
        version: Version,
        protocol: u32,
    ) -> Option<&PmapEntry> {
        let ids = self.pmap_by_prog_prot.get(&(program, protocol))?;
        let mut hit = None;
        for &id in ids {
            let entry = self.pmap.get(id)?;
            hit = Some(entry);
            if entry.version == version {
                break;
            }
        }
        hit
    }
}

/// C `pmap_netid2ipprot`: exactly `tcp` or `udp`.
pub fn netid_to_protocol(netid: &str) -> Option<u32> {
    match netid {
        "tcp" => Some(IPPROTO_TCP),
        "udp" => Some(IPPROTO_UDP),
        _ => None,
    }
}

/// C `pmap_ipprot2netid`.
pub fn protocol_to_netid(protocol: u32) -> Option<&'static str> {
    match protocol {
        IPPROTO_TCP => Some("tcp"),
        IPPROTO_UDP => Some("udp"),
        _ => None,
    }
}

/// C `uaddr2port`: the two fields after the last two dots, each read with
/// `atoi`, as `hi * 256 + lo` (an `int`, stored in an `unsigned long` and
/// sent as 32 bits).
pub fn uaddr_port(uaddr: &str) -> Option<u32> {
    let (rest, lo) = uaddr.rsplit_once('.')?;
    let (_, hi) = rest.rsplit_once('.')?;
    let port = c_atoi(hi).wrapping_mul(256).wrapping_add(c_atoi(lo));
    Some(port as u32)
}

/// glibc `atoi`: optional leading white space and sign, then digits;
/// anything else ends the number. Overflow saturates like `strtol` on a
/// 64-bit `long` and is then truncated to `int`.
pub(crate) fn c_atoi(s: &str) -> i32 {
    let s = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut value: i64 = 0;
    for b in digits.bytes().take_while(u8::is_ascii_digit) {
        value = value.saturating_mul(10).saturating_add(i64::from(b - b'0'));
    }
    let value = if negative {
        value.saturating_neg()
    } else {
        value
    };
    value as i32
}

#[cfg(test)]
mod tests;
