//! The calls the benchmark sends and the checks on every reply, built on
//! the `proto` codec: PMAP v2 GETPORT/SET/UNSET/DUMP (RFC 1833 section 3)
//! and RPCBIND v3 GETADDR (RFC 1833 section 2.2.1). No I/O.
//!
//! A call is encoded once per target and its xid patched in place, so the
//! load generator spends its time in the kernel, not in the encoder.

use proto::rpc::{AcceptedReply, CallHeader, Program, Reply, ReplyBody, Version};
use proto::rpcb::{
    Mapping, Pmaplist, Rpcb, IPPROTO_UDP, PMAPPROC_DUMP, PMAPPROC_GETPORT, PMAPPROC_SET,
    PMAPPROC_UNSET, PMAPVERS, RPCBPROC_GETADDR, RPCBVERS,
};
use proto::xdr::{Decode, Encode, XdrReader, XdrWriter};

/// First program number of the registrations the benchmark loads (the
/// "defined by user" range of RFC 5531 section 7.3).
pub const BENCH_PROG: u32 = 0x2000_0000;
/// The program the churn rows SET and UNSET (never among the loaded ones).
pub const CHURN_PROG: u32 = 0x3f00_0000;
/// The version every benchmark registration uses.
pub const BENCH_VERS: u32 = 1;

/// The port registration `i` is given, so every lookup knows its answer.
pub fn port_of(i: u32) -> u32 {
    10_000 + i % 50_000
}

/// What a correct reply to a call carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// GETPORT: this port.
    Port(u32),
    /// GETADDR: a universal address with this port.
    UaddrPort(u32),
    /// SET/UNSET: TRUE.
    True,
    /// DUMP: a list of at least this many mappings.
    DumpAtLeast(usize),
}

/// One encoded call, without or with a record mark, and its expected reply.
#[derive(Clone, Debug)]
pub struct Call {
    pub bytes: Vec<u8>,
    /// Offset of the xid in `bytes` (4 with a record mark, else 0).
    xid_at: usize,
    pub expect: Expect,
}

impl Call {
    fn new(head: CallHeader<'_>, args: &dyn Fn(&mut XdrWriter), expect: Expect) -> Self {
        let mut w = XdrWriter::new();
        head.encode(&mut w);
        args(&mut w);
        Self {
            bytes: w.into_bytes(),
            xid_at: 0,
            expect,
        }
    }

    /// The same call framed as one record (RFC 5531 section 11).
    pub fn framed(mut self) -> Self {
        self.bytes = proto::record::encode_record(&self.bytes);
        self.xid_at = 4;
        self
    }

    /// Puts `xid` into the encoded call.
    pub fn set_xid(&mut self, xid: u32) {
        self.bytes[self.xid_at..self.xid_at + 4].copy_from_slice(&xid.to_be_bytes());
    }
}

fn header(vers: Version, procedure: proto::rpc::Procedure) -> CallHeader<'static> {
    CallHeader::new(0, Program::PORTMAP, vers, procedure)
}

fn mapping(prog: u32, port: u32) -> Mapping {
    Mapping {
        prog: Program(prog),
        vers: Version(BENCH_VERS),
        prot: IPPROTO_UDP,
        port,
    }
}

/// PMAP v2 GETPORT of (`prog`, `vers`, UDP), answered with `port`.
pub fn getport(prog: u32, vers: u32, port: u32) -> Call {
    let m = Mapping {
        prog: Program(prog),
        vers: Version(vers),
        prot: IPPROTO_UDP,
        port: 0,
    };
    Call::new(
        header(PMAPVERS, PMAPPROC_GETPORT),
        &|w| m.encode(w),
        Expect::Port(port),
    )
}

/// RPCBIND v3 GETADDR of (`prog`, `vers`, "udp"), answered with an
/// address whose port is `port`.
pub fn getaddr(prog: u32, vers: u32, port: u32) -> Call {
    let r = Rpcb {
        prog: Program(prog),
        vers: Version(vers),
        netid: "udp".into(),
        addr: String::new(),
        owner: String::new(),
    };
    Call::new(
        header(RPCBVERS, RPCBPROC_GETADDR),
        &|w| r.encode(w),
        Expect::UaddrPort(port),
    )
}

/// PMAP v2 SET of (`prog`, 1, UDP, `port`).
pub fn set(prog: u32, port: u32) -> Call {
    let m = mapping(prog, port);
    Call::new(
        header(PMAPVERS, PMAPPROC_SET),
        &|w| m.encode(w),
        Expect::True,
    )
}

/// PMAP v2 UNSET of (`prog`, 1).
pub fn unset(prog: u32) -> Call {
    let m = mapping(prog, 0);
    Call::new(
        header(PMAPVERS, PMAPPROC_UNSET),
        &|w| m.encode(w),
        Expect::True,
    )
}

/// PMAP v2 DUMP, expected to list at least `at_least` mappings.
pub fn dump(at_least: usize) -> Call {
    Call::new(
        header(PMAPVERS, PMAPPROC_DUMP),
        &|_| {},
        Expect::DumpAtLeast(at_least),
    )
}

/// Why a reply was not the right one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bad {
    Undecodable,
    WrongXid(u32),
    NotSuccess,
    WrongResult,
}

/// The xid of a reply, if it has one.
pub fn reply_xid(reply: &[u8]) -> Option<u32> {
    reply
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
}

/// Checks a reply against the call's xid and expectation; on success
/// returns the DUMP length (0 for other calls).
pub fn check(reply: &[u8], xid: u32, expect: Expect) -> Result<usize, Bad> {
    let r = Reply::decode(&mut XdrReader::new(reply)).map_err(|_| Bad::Undecodable)?;
    if r.xid != xid {
        return Err(Bad::WrongXid(r.xid));
    }
    let results = match r.body {
        ReplyBody::Accepted {
            reply: AcceptedReply::Success(results),
            ..
        } => results,
        _ => return Err(Bad::NotSuccess),
    };
    let mut rd = XdrReader::new(results);
    let ok = match expect {
        Expect::Port(p) => rd.u32().ok() == Some(p),
        Expect::True => rd.u32().ok() == Some(1),
        Expect::UaddrPort(p) => rd.string(9000).ok().and_then(uaddr_port) == Some(p),
        Expect::DumpAtLeast(n) => {
            let list = Pmaplist::decode(&mut rd).map_err(|_| Bad::Undecodable)?;
            if list.0.len() >= n {
                return Ok(list.0.len());
            }
            false
        }
    };
    if ok {
        Ok(0)
    } else {
        Err(Bad::WrongResult)
    }
}

/// The port of an IPv4 universal address `h1.h2.h3.h4.p1.p2` (RFC 5665
/// section 5.2.3.3).
fn uaddr_port(uaddr: &str) -> Option<u32> {
    let parts: Vec<&str> = uaddr.rsplitn(3, '.').collect();
    let lo: u32 = parts.first()?.parse().ok()?;
    let hi: u32 = parts.get(1)?.parse().ok()?;
    (parts.len() == 3 && hi < 256 && lo < 256).then_some(hi * 256 + lo)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::rpc::encode_success_header;

    fn reply(xid: u32, results: &dyn Fn(&mut XdrWriter)) -> Vec<u8> {
        let mut w = XdrWriter::new();
        encode_success_header(xid, &mut w);
        results(&mut w);
        w.into_bytes()
    }

    #[test]
    fn getport_reply_checked_for_xid_and_port() {
        let good = reply(7, &|w| w.put_u32(111));
        assert_eq!(check(&good, 7, Expect::Port(111)), Ok(0));
        assert_eq!(check(&good, 8, Expect::Port(111)), Err(Bad::WrongXid(7)));
        assert_eq!(check(&good, 7, Expect::Port(112)), Err(Bad::WrongResult));
        assert_eq!(
            check(&good[..10], 7, Expect::Port(111)),
            Err(Bad::Undecodable)
        );
    }

    #[test]
    fn getaddr_reply_port_from_uaddr() {
        let good = reply(1, &|w| w.put_string("127.0.0.1.39.16"));
        assert_eq!(check(&good, 1, Expect::UaddrPort(10_000)), Ok(0));
        let empty = reply(1, &|w| w.put_string(""));
        assert_eq!(
            check(&empty, 1, Expect::UaddrPort(0)),
            Err(Bad::WrongResult)
        );
    }

    #[test]
    fn xid_patched_in_framed_call() {
        let mut c = getport(100_000, 2, 111).framed();
        c.set_xid(0xdead_beef);
        assert_eq!(&c.bytes[4..8], &0xdead_beefu32.to_be_bytes());
        let body = &c.bytes[4..];
        let head = CallHeader::decode(&mut XdrReader::new(body)).unwrap();
        assert_eq!((head.xid, head.procedure), (0xdead_beef, PMAPPROC_GETPORT));
    }

    #[test]
    fn dump_counts_entries() {
        let list = Pmaplist(vec![mapping(5, 6), mapping(7, 8)]);
        let good = reply(3, &|w| list.encode(w));
        assert_eq!(check(&good, 3, Expect::DumpAtLeast(2)), Ok(2));
        assert_eq!(
            check(&good, 3, Expect::DumpAtLeast(3)),
            Err(Bad::WrongResult)
        );
    }
}
