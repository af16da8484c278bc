//! The warm-start state (rpcbind `-w`): the C daemon's two state files and
//! our journal of changes. No I/O: bytes in, lists or errors out.
//!
//! # The C daemon's files (rpcbind 1.2.6 `warmstart.c`)
//! `rpcbind.xdr` is `xdr_rpcblist_ptr` of the whole RPCBIND list and
//! `portmap.xdr` is `xdr_pmaplist_ptr` of the whole PMAP list (RFC 1833
//! sections 2.1 and 3: each entry is preceded by TRUE, the list ends with
//! FALSE), the daemon's own entries included. C writes them on SIGTERM and
//! on `-w` replaces both lists with them and deletes them. We read and
//! write the same bytes (checked against the running C daemon, see
//! `rpcbind/README.md`).
//!
//! # Our journal (`rpcbind.journal`, beside them)
//! So that every change is durable before its reply, changes are appended
//! to a journal and the two C files are rewritten only now and then. The
//! journal is self-contained: a header (magic, then a hash of the C files
//! it was started with), then records, each `length, checksum, payload`,
//! whose payloads are XDR lists of [`Change`]s; the first record holds the
//! whole state as additions. A record that is cut short or fails its
//! checksum ends the journal (a write the crash interrupted, never
//! acknowledged).

use crate::engine::{Change, PmapEntry, Registration, RegistrationRef};
use crate::rpc::{Program, Version};
use crate::rpcb::{Mapping, Rpcb};
use crate::xdr::{Decode, Encode, XdrError, XdrReader, XdrWriter};

/// The most entries a state file may hold (far beyond any real host).
pub const STATE_LIST_CAP: usize = 4_000_000;
/// The most bytes one journal record may hold.
pub const MAX_RECORD: usize = 256 * 1024 * 1024;
/// The journal's first eight bytes.
pub const JOURNAL_MAGIC: &[u8; 8] = b"RPCBJNL1";
/// Header: magic and the 64-bit hash of the C files.
pub const JOURNAL_HEADER_LEN: usize = 16;

/// Why a state file was not used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The XDR did not decode.
    #[error("{0}")]
    Xdr(#[from] XdrError),
    /// Bytes follow the end of the list.
    #[error("{0} bytes after the end of the list")]
    Trailing(usize),
    /// The journal does not start with our header.
    #[error("not a journal (bad header)")]
    BadHeader,
}

/// `xdr_rpcblist_ptr` of these entries: the bytes of `rpcbind.xdr`.
pub fn encode_rpcb_file<'a, R: Into<RegistrationRef<'a>>>(
    entries: impl IntoIterator<Item = R>,
) -> Vec<u8> {
    let mut v = Vec::new();
    let Ok(()) = write_rpcb_file(entries, &mut extend(&mut v));
    v
}

/// [`encode_rpcb_file`] handed to `out` in pieces of about [`PIECE`]
/// bytes, so that a large state is never whole in memory.
pub fn write_rpcb_file<'a, R: Into<RegistrationRef<'a>>, E>(
    entries: impl IntoIterator<Item = R>,
    out: &mut impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), E> {
    let mut w = XdrWriter::with_capacity(PIECE + 1024);
    for reg in entries {
        w.put_bool(true);
        encode_rpcb(reg.into(), &mut w);
        hand_out(&mut w, out, PIECE)?;
    }
    w.put_bool(false);
    hand_out(&mut w, out, 0)
}

/// The length of [`encode_rpcb_file`] of these entries, without encoding
/// them (the state hash starts with it).
pub fn rpcb_file_len<'a, R: Into<RegistrationRef<'a>>>(
    entries: impl IntoIterator<Item = R>,
) -> usize {
    let string = |s: &str| 4 + s.len().div_ceil(4) * 4;
    entries.into_iter().fold(4, |n, reg| {
        let r = reg.into();
        n + 12 + string(r.netid) + string(r.addr) + string(r.owner)
    })
}

/// How many bytes the `write_*` encoders hand out at a time.
pub const PIECE: usize = 64 * 1024;

/// Hands what `w` holds to `out` once it is at least `at` bytes.
fn hand_out<E>(
    w: &mut XdrWriter,
    out: &mut impl FnMut(&[u8]) -> Result<(), E>,
    at: usize,
) -> Result<(), E> {
    if w.len() >= at && !w.is_empty() {
        out(w.as_bytes())?;
        w.clear();
    }
    Ok(())
}

/// An output for the `write_*` encoders that appends to `v`.
fn extend(v: &mut Vec<u8>) -> impl FnMut(&[u8]) -> Result<(), std::convert::Infallible> + '_ {
    |piece| {
        v.extend_from_slice(piece);
        Ok(())
    }
}

/// `xdr_rpcb` (as `Rpcb::encode`) straight from the borrowed fields: no
/// copy of the strings per entry.
fn encode_rpcb(reg: RegistrationRef<'_>, w: &mut XdrWriter) {
    reg.program.encode(w);
    reg.version.encode(w);
    w.put_string(reg.netid);
    w.put_string(reg.addr);
    w.put_string(reg.owner);
}

/// `xdr_pmaplist_ptr` of these mappings: the bytes of `portmap.xdr`.
pub fn encode_pmap_file<'a>(entries: impl IntoIterator<Item = &'a PmapEntry>) -> Vec<u8> {
    let mut v = Vec::new();
    let Ok(()) = write_pmap_file(entries, &mut extend(&mut v));
    v
}

/// [`encode_pmap_file`] handed to `out` in pieces of about [`PIECE`]
/// bytes.
pub fn write_pmap_file<'a, E>(
    entries: impl IntoIterator<Item = &'a PmapEntry>,
    out: &mut impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), E> {
    let mut w = XdrWriter::with_capacity(PIECE + 64);
    for e in entries {
        w.put_bool(true);
        Mapping::from(*e).encode(&mut w);
        hand_out(&mut w, out, PIECE)?;
    }
    w.put_bool(false);
    hand_out(&mut w, out, 0)
}

fn whole<T>(
    bytes: &[u8],
    decode: impl FnOnce(&mut XdrReader<'_>) -> Result<T, XdrError>,
) -> Result<T, StateError> {
    let mut r = XdrReader::new(bytes);
    let v = decode(&mut r)?;
    match r.remaining() {
        0 => Ok(v),
        n => Err(StateError::Trailing(n)),
    }
}

/// Decodes `rpcbind.xdr`; anything after the list is an error.
pub fn decode_rpcb_file(bytes: &[u8]) -> Result<Vec<Registration>, StateError> {
    whole(bytes, |r| {
        r.list_named("rpcbind.xdr", STATE_LIST_CAP, |r| {
            Rpcb::decode(r).map(Registration::from)
        })
    })
}

/// Decodes `portmap.xdr`; anything after the list is an error.
pub fn decode_pmap_file(bytes: &[u8]) -> Result<Vec<PmapEntry>, StateError> {
    whole(bytes, |r| {
        r.list_named("portmap.xdr", STATE_LIST_CAP, |r| {
            Mapping::decode(r).map(PmapEntry::from)
        })
    })
}

/// FNV-1a, 64 bits: detects torn records and tells state files apart (not
/// a defence against tampering: the files are root's).
pub fn fnv1a(seed: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(seed, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The FNV-1a offset basis.
pub const FNV_BASIS: u64 = 0xcbf2_9ce4_8422_2325;

/// The hash of a pair of C state files that a journal names in its header.
pub fn state_hash(rpcb_file: &[u8], pmap_file: &[u8]) -> u64 {
    let mut h = StateHash::new(rpcb_file.len());
    h.update(rpcb_file);
    h.update(pmap_file);
    h.finish()
}

/// [`state_hash`] of files written in pieces: the bytes of `rpcbind.xdr`
/// then those of `portmap.xdr`, given the length of the first up front.
#[derive(Clone, Copy, Debug)]
pub struct StateHash(u64);

impl StateHash {
    pub fn new(rpcb_file_len: usize) -> Self {
        StateHash(fnv1a(FNV_BASIS, &(rpcb_file_len as u64).to_be_bytes()))
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.0 = fnv1a(self.0, bytes);
    }

    pub fn finish(&self) -> u64 {
        self.0
    }
}

/// The journal header naming the C files of hash `base`.
pub fn journal_header(base: u64) -> Vec<u8> {
    let mut v = JOURNAL_MAGIC.to_vec();
    v.extend_from_slice(&base.to_be_bytes());
    v
}

const TAG_RPCB_ADD: u32 = 1;
const TAG_RPCB_REMOVE: u32 = 2;
const TAG_PMAP_ADD: u32 = 3;
const TAG_PMAP_REMOVE: u32 = 4;

fn encode_change(c: &Change, w: &mut XdrWriter) {
    match c {
        Change::RpcbAdd { reg, front } => {
            w.put_u32(TAG_RPCB_ADD);
            w.put_bool(*front);
            encode_rpcb(reg.into(), w);
        }
        Change::RpcbRemove {
            program,
            version,
            netid,
        } => {
            w.put_u32(TAG_RPCB_REMOVE);
            program.encode(w);
            version.encode(w);
            w.put_string(netid);
        }
        Change::PmapAdd { entry, front } => {
            w.put_u32(TAG_PMAP_ADD);
            w.put_bool(*front);
            Mapping::from(*entry).encode(w);
        }
        Change::PmapRemove(entry) => {
            w.put_u32(TAG_PMAP_REMOVE);
            Mapping::from(*entry).encode(w);
        }
    }
}

fn decode_change(r: &mut XdrReader<'_>) -> Result<Change, XdrError> {
    Ok(match r.u32_named("change")? {
        TAG_RPCB_ADD => {
            let front = r.bool()?;
            let reg = Registration::from(Rpcb::decode(r)?);
            Change::RpcbAdd { reg, front }
        }
        TAG_RPCB_REMOVE => Change::RpcbRemove {
            program: Program::decode(r)?,
            version: Version::decode(r)?,
            netid: r
                .string_named(crate::rpcb::RPC_MAXDATASIZE, "netid")?
                .to_owned(),
        },
        TAG_PMAP_ADD => {
            let front = r.bool()?;
            let entry = PmapEntry::from(Mapping::decode(r)?);
            Change::PmapAdd { entry, front }
        }
        TAG_PMAP_REMOVE => Change::PmapRemove(PmapEntry::from(Mapping::decode(r)?)),
        value => {
            return Err(XdrError::BadDiscriminant {
                field: "change",
                value,
            })
        }
    })
}

/// One journal record holding these changes, ready to append.
pub fn journal_record<'a>(changes: impl IntoIterator<Item = &'a Change>) -> Vec<u8> {
    let mut w = XdrWriter::from_vec(vec![0; 12]);
    for c in changes {
        w.put_bool(true);
        encode_change(c, &mut w);
    }
    finish_record(w)
}

/// Ends the list of changes after the 12 bytes reserved for the record's
/// length and checksum, and fills them in.
fn finish_record(mut w: XdrWriter) -> Vec<u8> {
    w.put_bool(false);
    let mut v = w.into_bytes();
    let len = (v.len() - RECORD_PREFIX_LEN) as u32;
    let sum = fnv1a(FNV_BASIS, &v[RECORD_PREFIX_LEN..]);
    v[..4].copy_from_slice(&len.to_be_bytes());
    v[4..12].copy_from_slice(&sum.to_be_bytes());
    v
}

/// The first record of a fresh journal: the whole state as additions
/// (the bytes of [`journal_record`] of `Change::RpcbAdd` and
/// `Change::PmapAdd` entries, encoded from the borrowed entries).
pub fn full_state_record<'a, R: Into<RegistrationRef<'a>>>(
    rpcb: impl IntoIterator<Item = R>,
    pmap: impl IntoIterator<Item = &'a PmapEntry>,
) -> Vec<u8> {
    let mut v = vec![0; RECORD_PREFIX_LEN];
    let Ok(prefix) = write_full_state_record(rpcb, pmap, &mut extend(&mut v));
    v[..RECORD_PREFIX_LEN].copy_from_slice(&prefix);
    v
}

/// The length and checksum before each journal record's payload.
pub const RECORD_PREFIX_LEN: usize = 12;

/// [`full_state_record`] without its prefix, handed to `out` in pieces of
/// about [`PIECE`] bytes; returns the prefix, which goes before them
/// (its checksum covers what was handed out).
pub fn write_full_state_record<'a, R: Into<RegistrationRef<'a>>, E>(
    rpcb: impl IntoIterator<Item = R>,
    pmap: impl IntoIterator<Item = &'a PmapEntry>,
    out: &mut impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<[u8; RECORD_PREFIX_LEN], E> {
    let (mut len, mut sum) = (0usize, FNV_BASIS);
    let mut out = |piece: &[u8]| {
        len += piece.len();
        sum = fnv1a(sum, piece);
        out(piece)
    };
    let mut w = XdrWriter::with_capacity(PIECE + 1024);
    for reg in rpcb {
        w.put_bool(true);
        w.put_u32(TAG_RPCB_ADD);
        w.put_bool(false);
        encode_rpcb(reg.into(), &mut w);
        hand_out(&mut w, &mut out, PIECE)?;
    }
    for &entry in pmap {
        w.put_bool(true);
        encode_change(
            &Change::PmapAdd {
                entry,
                front: false,
            },
            &mut w,
        );
        hand_out(&mut w, &mut out, PIECE)?;
    }
    w.put_bool(false);
    hand_out(&mut w, &mut out, 0)?;
    let mut prefix = [0u8; RECORD_PREFIX_LEN];
    prefix[..4].copy_from_slice(&(len as u32).to_be_bytes());
    prefix[4..].copy_from_slice(&sum.to_be_bytes());
    Ok(prefix)
}

/// A journal read back: its base hash, every change of its intact
/// records, and where (if anywhere) it stopped early and why.
#[derive(Debug)]
pub struct Journal {
    pub base: u64,
    pub changes: Vec<Change>,
    pub records: usize,
    /// Byte offset and reason of a torn or corrupt tail.
    pub torn: Option<(usize, String)>,
}

/// Reads a journal. A bad header is an error; a bad record ends it.
pub fn decode_journal(bytes: &[u8]) -> Result<Journal, StateError> {
    let header = bytes
        .get(..JOURNAL_HEADER_LEN)
        .filter(|h| h.starts_with(JOURNAL_MAGIC))
        .ok_or(StateError::BadHeader)?;
    let mut base = [0u8; 8];
    base.copy_from_slice(&header[8..]);
    let mut j = Journal {
        base: u64::from_be_bytes(base),
        changes: Vec::new(),
        records: 0,
        torn: None,
    };
    let mut at = JOURNAL_HEADER_LEN;
    while at < bytes.len() {
        match record_at(&bytes[at..]) {
            Ok((changes, used)) => {
                j.changes.extend(changes);
                j.records += 1;
                at += used;
            }
            Err(why) => {
                j.torn = Some((at, why));
                break;
            }
        }
    }
    Ok(j)
}

fn record_at(bytes: &[u8]) -> Result<(Vec<Change>, usize), String> {
    let head = bytes.get(..12).ok_or("record header cut short")?;
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if len > MAX_RECORD {
        return Err(format!("record length {len} over the limit"));
    }
    let payload = bytes.get(12..12 + len).ok_or("record cut short")?;
    let mut sum = [0u8; 8];
    sum.copy_from_slice(&head[4..12]);
    if u64::from_be_bytes(sum) != fnv1a(FNV_BASIS, payload) {
        return Err("record checksum mismatch".into());
    }
    let changes = whole(payload, |r| {
        r.list_named("record", MAX_RECORD, decode_change)
    })
    .map_err(|e| format!("record does not decode: {e}"))?;
    Ok((changes, 12 + len))
}

/// Fuzz target `warmstart_decode`: the first byte picks the decoder
/// (`rpcbind.xdr`, `portmap.xdr`, journal), the rest is the file. A
/// decoded file must re-encode to something that decodes to the same
/// value; a journal's changes must replay into a registry without panic
/// and survive a re-encoding.
pub fn fuzz_decode(data: &[u8]) {
    let Some((&which, file)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => {
            if let Ok(list) = decode_rpcb_file(file) {
                let again = decode_rpcb_file(&encode_rpcb_file(&list));
                assert_eq!(again.ok().as_ref(), Some(&list));
            }
        }
        1 => {
            if let Ok(list) = decode_pmap_file(file) {
                let again = decode_pmap_file(&encode_pmap_file(&list));
                assert_eq!(again.ok().as_ref(), Some(&list));
            }
        }
        _ => {
            if let Ok(j) = decode_journal(file) {
                let mut reg = crate::engine::Registry::new();
                for c in &j.changes {
                    reg.apply(c);
                }
                let mut bytes = journal_header(j.base);
                bytes.extend(journal_record(&j.changes));
                let again = decode_journal(&bytes).ok().map(|a| a.changes);
                assert_eq!(again.as_ref(), Some(&j.changes));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Registry;

    /// `rpcbind.xdr`'s first entry and `portmap.xdr` as Debian's rpcbind
    /// 1.2.6 wrote them on SIGTERM (namespace, `-w -f`, `xxd`).
    const C_RPCB_HEAD: &str = "00000001000186a00000000400000004746370360000000\
        83a3a2e302e3131310000000973757065727573657200000000000000";
    const C_PMAP_TAIL: &str = "00000001200000020000000300000006000007d000000000";

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn reg(p: u32, netid: &str, addr: &str) -> Registration {
        Registration {
            program: Program(p),
            version: Version(4),
            netid: netid.into(),
            addr: addr.into(),
            owner: "superuser".into(),
        }
    }

    #[test]
    fn files_have_the_c_daemons_bytes() {
        let head = hex(C_RPCB_HEAD);
        let ours = encode_rpcb_file([&reg(100000, "tcp6", "::.0.111")]);
        assert_eq!(&ours[..ours.len() - 4], &head[..head.len() - 4]);
        let map = PmapEntry {
            program: Program(0x2000_0002),
            version: Version(3),
            protocol: 6,
            port: 2000,
        };
        assert_eq!(encode_pmap_file([&map]), hex(C_PMAP_TAIL));
        assert_eq!(decode_pmap_file(&hex(C_PMAP_TAIL)).unwrap(), [map]);
    }

    #[test]
    fn torn_and_trailing_files_are_refused() {
        let bytes = encode_rpcb_file([&reg(7, "udp", "0.0.0.0.1.2")]);
        assert_eq!(decode_rpcb_file(&bytes).unwrap().len(), 1);
        for cut in 0..bytes.len() {
            assert!(decode_rpcb_file(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = bytes.clone();
        long.extend_from_slice(&[0; 4]);
        assert!(matches!(
            decode_rpcb_file(&long),
            Err(StateError::Trailing(4))
        ));
    }

    /// A state several pieces long, with strings of every padding.
    fn large_state() -> Registry {
        let mut r = Registry::new();
        for i in 0..6_000u32 {
            let netid = ["udp", "tcp", "udp6", "tcp6", "local"][i as usize % 5];
            let addr = format!("10.{}.{}.{}.{}.{}", i % 7, i % 250, i % 3, i >> 8, i & 255);
            let owner = ["superuser", "1000", "", "65534"][i as usize % 4];
            r.set(
                Program(0x2000_0000 + i),
                Version(1 + i % 3),
                netid,
                &addr,
                owner,
            );
        }
        r
    }

    #[test]
    fn files_written_in_pieces_are_the_files_and_hash_alike() {
        let r = large_state();
        let listed: Vec<Rpcb> = r.iter().map(Rpcb::from).collect();
        let reference = crate::rpcb::Rpcblist(listed).to_xdr();
        assert_eq!(rpcb_file_len(r.iter()), reference.len());
        let mut pieces: Vec<Vec<u8>> = Vec::new();
        let Ok(()) = write_rpcb_file(r.iter(), &mut |p: &[u8]| {
            pieces.push(p.to_vec());
            Ok::<(), std::convert::Infallible>(())
        });
        assert!(pieces.len() > 3, "{} pieces", pieces.len());
        assert!(pieces.iter().all(|p| p.len() < PIECE + 1024));
        assert_eq!(pieces.concat(), reference);
        let pmap = encode_pmap_file(r.pmap_iter());
        assert_eq!(
            decode_pmap_file(&pmap).unwrap(),
            r.pmap_iter().copied().collect::<Vec<_>>()
        );
        let mut h = StateHash::new(reference.len());
        for p in &pieces {
            h.update(p);
        }
        h.update(&pmap);
        assert_eq!(h.finish(), state_hash(&reference, &pmap));
    }

    /// The state of `r` as the changes that would build it.
    fn additions(r: &Registry) -> Vec<Change> {
        r.iter()
            .map(|e| Change::RpcbAdd {
                reg: Registration::from(e),
                front: false,
            })
            .chain(r.pmap_iter().map(|&entry| Change::PmapAdd {
                entry,
                front: false,
            }))
            .collect()
    }

    #[test]
    fn a_large_full_state_record_is_the_record_of_its_additions() {
        let r = large_state();
        let adds = additions(&r);
        assert!(journal_record(&adds).len() > 4 * PIECE);
        assert_eq!(
            full_state_record(r.iter(), r.pmap_iter()),
            journal_record(&adds)
        );
    }

    #[test]
    fn the_full_state_record_is_the_record_of_its_additions() {
        let mut r = Registry::new();
        r.set(Program(7), Version(1), "udp", "0.0.0.0.1.2", "1000");
        r.set(Program(8), Version(2), "tcp6", "::.1.3", "superuser");
        let adds = additions(&r);
        assert_eq!(adds.len(), 3);
        let record = full_state_record(r.iter(), r.pmap_iter());
        assert_eq!(record, journal_record(&adds));
        let listed: Vec<Rpcb> = r.iter().map(Rpcb::from).collect();
        let file = encode_rpcb_file(r.iter());
        assert_eq!(file, crate::rpcb::Rpcblist(listed).to_xdr());
    }

    #[test]
    fn journal_replays_until_a_torn_record() {
        let mut r = Registry::new();
        r.record_changes();
        r.set(Program(7), Version(1), "udp", "0.0.0.0.1.2", "superuser");
        let first = r.take_changes();
        r.unset(Program(7), Version(1), "", "superuser");
        let second = r.take_changes();
        let mut bytes = journal_header(42);
        bytes.extend(journal_record(&first));
        let whole_len = bytes.len();
        bytes.extend(journal_record(&second));
        let j = decode_journal(&bytes).unwrap();
        assert_eq!((j.base, j.records, j.changes.len()), (42, 2, 4));
        assert!(j.torn.is_none());
        for cut in whole_len..bytes.len() {
            let j = decode_journal(&bytes[..cut]).unwrap();
            assert_eq!(j.changes, first, "cut at {cut}");
            assert_eq!(j.torn.is_some(), cut > whole_len);
        }
        let mut flipped = bytes.clone();
        let last = flipped.len() - 5;
        flipped[last] ^= 1;
        assert_eq!(decode_journal(&flipped).unwrap().records, 1);
        assert!(decode_journal(b"RPCBJNL").is_err());
    }
}
