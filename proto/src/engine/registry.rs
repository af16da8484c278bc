//! The registry: C rpcbind's two linked lists, the RPCBIND list
//! (`list_rbl`: program, version, netid, universal address, owner) and the
//! PMAP v2 list (`list_pml`: program, version, protocol, port), with hash
//! indexes beside them so that no lookup, SET or UNSET scans the table.
//! No I/O.
//!
//! Semantics follow rpcbind 1.2.6 `rpcb_svc_com.c` (`map_set`,
//! `map_unset`, `find_service`, `add_pmaplist`, `del_pmaplist`) and
//! `pmap_svc.c` (`find_service_pmap`); see `proto/RULES.md`.
//!
//! Memory: an RPCBIND entry is stored as a compact [`Row`] (netid and
//! owner as ids into a table of the distinct names, the address inline
//! when it fits in 24 bytes, as every IPv4 universal address does), and
//! read through [`RegistrationRef`]; [`Registration`] is the owned form
//! for warm start and the change log.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use compact_str::CompactString;

use super::list::{Id, OrderedList, MAX_IDS};

mod changes;
mod groups;
mod names;
use crate::rpc::{Program, Version};
use crate::rpcb::{Mapping, Rpcb};
pub use changes::Change;
use groups::{group_add, group_remove, Groups};
use names::{NameId, Names};

/// `IPPROTO_TCP`, the PMAP v2 protocol number of `tcp`.
pub const IPPROTO_TCP: u32 = 6;
/// `IPPROTO_UDP`, the PMAP v2 protocol number of `udp`.
pub const IPPROTO_UDP: u32 = 17;

/// One RPCBIND registration (RFC 1833 `rpcb`), owned: what warm start
/// reads and the change log records. The registry hands out
/// [`RegistrationRef`]s.
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

/// One RPCBIND registration as the registry holds it, borrowed: what
/// lookups and iteration return (no allocation per entry, so DUMP of a
/// large table copies each field once, into the reply).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegistrationRef<'a> {
    pub program: Program,
    pub version: Version,
    /// The netid as registered (case kept).
    pub netid: &'a str,
    /// The universal address.
    pub addr: &'a str,
    /// `superuser`, a decimal uid, or `unknown`.
    pub owner: &'a str,
}

impl<'a> From<&'a Registration> for RegistrationRef<'a> {
    fn from(r: &'a Registration) -> Self {
        RegistrationRef {
            program: r.program,
            version: r.version,
            netid: &r.netid,
            addr: &r.addr,
            owner: &r.owner,
        }
    }
}

impl From<RegistrationRef<'_>> for Registration {
    fn from(r: RegistrationRef<'_>) -> Self {
        Registration {
            program: r.program,
            version: r.version,
            netid: r.netid.into(),
            addr: r.addr.to_owned(),
            owner: r.owner.into(),
        }
    }
}

impl PartialEq<Registration> for RegistrationRef<'_> {
    fn eq(&self, other: &Registration) -> bool {
        *self == RegistrationRef::from(other)
    }
}

impl PartialEq<&Registration> for RegistrationRef<'_> {
    fn eq(&self, other: &&Registration) -> bool {
        *self == RegistrationRef::from(*other)
    }
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

impl From<RegistrationRef<'_>> for Rpcb {
    fn from(r: RegistrationRef<'_>) -> Self {
        Rpcb {
            prog: r.program,
            vers: r.version,
            netid: r.netid.to_owned(),
            addr: r.addr.to_owned(),
            owner: r.owner.to_owned(),
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

/// An RPCBIND entry as stored: 40 bytes (48 with its list links) where a
/// [`Registration`] takes 64 and a heap block for the address.
#[derive(Clone, Debug)]
struct Row {
    program: Program,
    version: Version,
    /// Ids in [`Registry::names`]; the row holds one use of each.
    netid: NameId,
    owner: NameId,
    /// Inline up to 24 bytes.
    addr: CompactString,
}

/// `row` with its names looked up.
fn view<'a>(names: &'a Names, row: &'a Row) -> RegistrationRef<'a> {
    RegistrationRef {
        program: row.program,
        version: row.version,
        netid: names.text(row.netid),
        addr: &row.addr,
        owner: names.text(row.owner),
    }
}

/// The indexes of one (lowercase) netid.
#[derive(Clone, Debug, Default)]
struct NetidIndex {
    /// Per program, in list order: `find_service`'s version fallback.
    by_prog: Groups<Program>,
}

/// The registry of mappings; see the module documentation.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    rpcb: OrderedList<Row>,
    by_netid: HashMap<Box<str>, NetidIndex>,
    /// (program, version) on every netid, in list order: the exact lookup
    /// (the entries of one (program, version) are one per netid, a
    /// handful, compared case-insensitively as C's `strcasecmp`), UNSET
    /// and GETADDRLIST. This serves instead of an exact index per netid
    /// (~17 bytes an entry at 50,000); a group only grows with the netids
    /// local registrants use for one (program, version), where C scans its
    /// whole list for every lookup.
    by_prog_vers: Groups<(Program, Version)>,
    pmap: OrderedList<PmapEntry>,
    /// (program, protocol) in list order: `find_service_pmap`.
    pmap_by_prog_prot: Groups<(Program, u32)>,
    /// How many PMAP entries use each protocol (`del_pmaplist` with an
    /// empty netid looks in the (program, protocol) groups of each; a
    /// second index by (program, version) would cost ~30 bytes an entry).
    pmap_protocols: BTreeMap<u32, usize>,
    /// The distinct netids and owners in use (a name leaves when its last
    /// entry does).
    names: Names,
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
                reg.insert_rpcb(r.program, r.version, &r.netid, &r.addr, &r.owner, false);
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
    pub fn iter(&self) -> impl Iterator<Item = RegistrationRef<'_>> + '_ {
        let names = &self.names;
        self.rpcb.iter().map(move |row| view(names, row))
    }

    /// The PMAP v2 mappings in PMAP DUMP order.
    pub fn pmap_iter(&self) -> impl Iterator<Item = &PmapEntry> + '_ {
        self.pmap.iter()
    }

    /// The number of PMAP v2 mappings.
    pub fn pmap_len(&self) -> usize {
        self.pmap.len()
    }

    fn get(&self, id: Id) -> Option<RegistrationRef<'_>> {
        self.rpcb.get(id).map(|row| view(&self.names, row))
    }

    /// C `find_service`: the entry for exactly (program, version, netid)
    /// if there is one, otherwise the last entry in list order for
    /// (program, netid) with any version.
    pub fn find_service(
        &self,
        program: Program,
        version: Version,
        netid: &str,
    ) -> Option<RegistrationRef<'_>> {
        if let Some(id) = self.exact(program, version, netid) {
            return self.get(id);
        }
        let index = self.by_netid.get(&*netid_key(netid))?;
        self.get(*index.by_prog.get(&program)?.last()?)
    }

    /// The entry for exactly (program, version, netid).
    pub fn lookup(
        &self,
        program: Program,
        version: Version,
        netid: &str,
    ) -> Option<RegistrationRef<'_>> {
        self.get(self.exact(program, version, netid)?)
    }

    /// The id of the entry for exactly (program, version, netid): one per
    /// netid under (program, version), so a walk of a handful.
    fn exact(&self, program: Program, version: Version, netid: &str) -> Option<Id> {
        self.by_prog_vers
            .get(&(program, version))?
            .iter()
            .copied()
            .find(|&id| {
                self.rpcb
                    .get(id)
                    .is_some_and(|row| self.names.text(row.netid).eq_ignore_ascii_case(netid))
            })
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
        for row in ids
            .into_iter()
            .flatten()
            .filter_map(|&id| self.rpcb.get(id))
        {
            let v = row.version.0;
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
    ) -> impl Iterator<Item = RegistrationRef<'_>> + '_ {
        self.by_prog_vers
            .get(&(program, version))
            .into_iter()
            .flatten()
            .filter_map(|&id| self.get(id))
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
        self.insert_rpcb(program, version, netid, addr, owner, front);
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

    /// Adds one RPCBIND entry and its index entries (no PMAP mirror).
    fn insert_rpcb(
        &mut self,
        program: Program,
        version: Version,
        netid: &str,
        addr: &str,
        owner: &str,
        front: bool,
    ) {
        let Some(netid_id) = self.names.acquire(netid) else {
            return;
        };
        let Some(owner_id) = self.names.acquire(owner) else {
            self.names.release(netid_id);
            return;
        };
        let row = Row {
            program,
            version,
            netid: netid_id,
            owner: owner_id,
            addr: CompactString::from(addr),
        };
        let id = if front {
            self.rpcb.push_front(row)
        } else {
            self.rpcb.push_back(row)
        };
        // None: all 2^31 ids taken, which memory runs out long before.
        let Some(id) = id else {
            self.names.release(netid_id);
            self.names.release(owner_id);
            return;
        };
        if let Some(log) = &mut self.changes {
            // The names' shared copies: the log's entries cost the address.
            if let (Some(netid), Some(owner)) =
                (self.names.shared(netid_id), self.names.shared(owner_id))
            {
                let reg = Registration {
                    program,
                    version,
                    netid: Arc::clone(netid),
                    addr: addr.to_owned(),
                    owner: Arc::clone(owner),
                };
                log.push(Change::RpcbAdd { reg, front });
            }
        }
        let key = netid_key(netid);
        if !self.by_netid.contains_key(&*key) {
            let key = key.clone().into_owned().into_boxed_str();
            self.by_netid.insert(key, NetidIndex::default());
        }
        if let Some(index) = self.by_netid.get_mut(&*key) {
            group_add(&mut index.by_prog, program, id, front);
        }
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
        let candidates: Vec<Id> = match self.by_prog_vers.get(&(program, version)) {
            Some(ids) => ids.to_vec(),
            None => return true,
        };
        let mut removed = false;
        for id in candidates {
            let Some(row) = self.rpcb.get(id) else {
                continue;
            };
            let reg = view(&self.names, row);
            if !netid.is_empty() && !reg.netid.eq_ignore_ascii_case(netid) {
                continue;
            }
            if owner != "superuser" && reg.owner != owner {
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
        let Some(row) = self.rpcb.remove(id) else {
            return;
        };
        let netid = self.names.text(row.netid);
        if let Some(log) = &mut self.changes {
            log.push(Change::RpcbRemove {
                program: row.program,
                version: row.version,
                netid: netid.to_owned(),
            });
        }
        let key = netid_key(netid);
        if let Some(index) = self.by_netid.get_mut(&*key) {
            group_remove(&mut index.by_prog, row.program, id);
            if index.by_prog.is_empty() {
                self.by_netid.remove(&*key);
            }
        }
        self.generation += 1;
        group_remove(&mut self.by_prog_vers, (row.program, row.version), id);
        self.names.release(row.netid);
        self.names.release(row.owner);
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
