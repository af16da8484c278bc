//! RPCBIND version 3 and 4 types (RFC 1833 section 2.1): `rpcb`,
//! `rpcblist`, `rpcb_entry`, `rpcb_entry_list`, `rpcb_rmtcallargs`,
//! `rpcb_rmtcallres` and `netbuf`. No I/O.

use super::pmap::CallArgs;
use super::{DUMP_LIST_CAP, ENTRY_LIST_CAP, RPC_MAXDATASIZE};
use crate::rpc::{Program, Version};
use crate::xdr::{Decode, Encode, XdrError, XdrReader, XdrWriter};

fn string(r: &mut XdrReader<'_>, field: &'static str) -> Result<String, XdrError> {
    r.string_named(RPC_MAXDATASIZE, field).map(str::to_owned)
}

/// `struct rpcb` (RFC 1833 section 2.1): the argument of SET, UNSET,
/// GETADDR, GETVERSADDR and GETADDRLIST, and the entry of a DUMP.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Rpcb {
    pub prog: Program,
    pub vers: Version,
    /// `r_netid`, at most [`RPC_MAXDATASIZE`] bytes (as are the others).
    pub netid: String,
    /// `r_addr`, a universal address.
    pub addr: String,
    /// `r_owner`.
    pub owner: String,
}

impl Encode for Rpcb {
    fn encode(&self, w: &mut XdrWriter) {
        self.prog.encode(w);
        self.vers.encode(w);
        w.put_string(&self.netid);
        w.put_string(&self.addr);
        w.put_string(&self.owner);
    }
}

impl Decode<'_> for Rpcb {
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, XdrError> {
        Ok(Self {
            prog: Program::decode(r)?,
            vers: Version::decode(r)?,
            netid: string(r, "rpcb.r_netid")?,
            addr: string(r, "rpcb.r_addr")?,
            owner: string(r, "rpcb.r_owner")?,
        })
    }
}

/// `rpcblist` (RFC 1833 section 2.1), the result of DUMP, decoded with at
/// most [`DUMP_LIST_CAP`] entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rpcblist(pub Vec<Rpcb>);

impl Encode for Rpcblist {
    fn encode(&self, w: &mut XdrWriter) {
        w.put_list(&self.0);
    }
}

impl Decode<'_> for Rpcblist {
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, XdrError> {
        r.list_named("rpcblist", DUMP_LIST_CAP, Rpcb::decode)
            .map(Self)
    }
}

/// `struct rpcb_entry` (RFC 1833 section 2.1), one address of a
/// GETADDRLIST result.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct RpcbEntry {
    /// `r_maddr`, the merged universal address.
    pub maddr: String,
    /// `r_nc_netid`.
    pub netid: String,
    /// `r_nc_semantics`, one of the `NC_TPI_*` constants.
    pub semantics: u32,
    /// `r_nc_protofmly`: `inet`, `inet6`, `loopback`.
    pub protofmly: String,
    /// `r_nc_proto`: `udp`, `tcp`, `-`.
    pub proto: String,
}

impl Encode for RpcbEntry {
    fn encode(&self, w: &mut XdrWriter) {
        w.put_string(&self.maddr);
        w.put_string(&self.netid);
        w.put_u32(self.semantics);
        w.put_string(&self.protofmly);
        w.put_string(&self.proto);
    }
}

impl Decode<'_> for RpcbEntry {
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, XdrError> {
        Ok(Self {
            maddr: string(r, "rpcb_entry.r_maddr")?,
            netid: string(r, "rpcb_entry.r_nc_netid")?,
            semantics: r.u32_named("rpcb_entry.r_nc_semantics")?,
            protofmly: string(r, "rpcb_entry.r_nc_protofmly")?,
            proto: string(r, "rpcb_entry.r_nc_proto")?,
        })
    }
}

/// `rpcb_entry_list` (RFC 1833 section 2.1), the result of GETADDRLIST,
/// decoded with at most [`ENTRY_LIST_CAP`] entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RpcbEntryList(pub Vec<RpcbEntry>);

impl Encode for RpcbEntryList {
    fn encode(&self, w: &mut XdrWriter) {
        w.put_list(&self.0);
    }
}

impl Decode<'_> for RpcbEntryList {
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, XdrError> {
        r.list_named("rpcb_entry_list", ENTRY_LIST_CAP, RpcbEntry::decode)
            .map(Self)
    }
}

/// `struct rpcb_rmtcallargs` (RFC 1833 section 2.1), the argument of
/// CALLIT, BCAST and INDIRECT: the same wire form as PMAP's `call_args`.
pub type RpcbRmtcallArgs<'a> = CallArgs<'a>;

/// `struct rpcb_rmtcallres` (RFC 1833 section 2.1): the universal address
/// of the called service and its XDR-encoded results (borrowed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpcbRmtcallRes<'a> {
    pub addr: String,
    /// At most [`RPC_MAXDATASIZE`] bytes.
    pub results: &'a [u8],
}

impl Encode for RpcbRmtcallRes<'_> {
    fn encode(&self, w: &mut XdrWriter) {
        w.put_string(&self.addr);
        w.put_opaque(self.results);
    }
}

impl<'a> Decode<'a> for RpcbRmtcallRes<'a> {
    fn decode(r: &mut XdrReader<'a>) -> Result<Self, XdrError> {
        Ok(Self {
            addr: string(r, "rpcb_rmtcallres.addr")?,
            results: r.opaque_named(RPC_MAXDATASIZE, "rpcb_rmtcallres.results")?,
        })
    }
}

/// `struct netbuf` (RFC 1833 section 2.1): the transport-specific form of
/// an address, the result of UADDR2TADDR and argument of TADDR2UADDR. On
/// Linux `buf` holds a `struct sockaddr` (see [`crate::uaddr`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Netbuf {
    /// At most [`RPC_MAXDATASIZE`] (libtirpc refuses more).
    pub maxlen: u32,
    /// At most `maxlen` bytes.
    pub buf: Vec<u8>,
}

impl Netbuf {
    /// A netbuf whose `maxlen` is the length of `buf`.
    pub fn new(buf: Vec<u8>) -> Self {
        let maxlen = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        Self { maxlen, buf }
    }
}

impl Encode for Netbuf {
    fn encode(&self, w: &mut XdrWriter) {
        w.put_u32(self.maxlen);
        w.put_opaque(&self.buf);
    }
}

impl Decode<'_> for Netbuf {
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, XdrError> {
        let maxlen = r.u32_named("netbuf.maxlen")?;
        if maxlen > RPC_MAXDATASIZE {
            return Err(XdrError::TooLong {
                field: "netbuf.maxlen",
                len: maxlen,
                max: RPC_MAXDATASIZE,
            });
        }
        let buf = r.opaque_named(maxlen, "netbuf.buf")?.to_vec();
        Ok(Self { maxlen, buf })
    }
}

#[cfg(test)]
mod tests {
    use super::super::NC_TPI_CLTS;
    use super::*;
    use crate::rpc::Procedure;

    /// Bytes of an XDR string, padded.
    fn s(text: &str) -> Vec<u8> {
        let mut w = XdrWriter::new();
        w.put_string(text);
        w.into_bytes()
    }

    fn u(v: u32) -> Vec<u8> {
        v.to_be_bytes().to_vec()
    }

    fn rpcb_sample() -> Rpcb {
        Rpcb {
            prog: Program::PORTMAP,
            vers: Version(4),
            netid: "tcp6".into(),
            addr: "::.0.111".into(),
            owner: "superuser".into(),
        }
    }

    #[test]
    fn rpcb_golden() {
        let bytes = [
            u(100_000),
            u(4),
            u(4),
            b"tcp6".to_vec(),
            u(8),
            b"::.0.111".to_vec(),
            u(9),
            b"superuser\0\0\0".to_vec(),
        ]
        .concat();
        assert_eq!(rpcb_sample().to_xdr(), bytes);
        assert_eq!(Rpcb::from_xdr(&bytes), Ok(rpcb_sample()));
    }

    #[test]
    fn rpcblist_golden() {
        let list = Rpcblist(vec![rpcb_sample(), Rpcb::default()]);
        let bytes = [u(1), rpcb_sample().to_xdr(), u(1), vec![0; 20], u(0)].concat();
        assert_eq!(list.to_xdr(), bytes);
        assert_eq!(Rpcblist::from_xdr(&bytes), Ok(list));
    }

    #[test]
    fn rpcb_entry_list_golden() {
        let e = RpcbEntry {
            maddr: "127.0.0.1.0.111".into(),
            netid: "udp".into(),
            semantics: NC_TPI_CLTS,
            protofmly: "inet".into(),
            proto: "udp".into(),
        };
        let entry_bytes = [s("127.0.0.1.0.111"), s("udp"), u(1), s("inet"), s("udp")].concat();
        assert_eq!(entry_bytes.len(), 20 + 8 + 4 + 8 + 8);
        assert_eq!(e.to_xdr(), entry_bytes);
        let list = RpcbEntryList(vec![e]);
        let bytes = [u(1), entry_bytes, u(0)].concat();
        assert_eq!(list.to_xdr(), bytes);
        assert_eq!(RpcbEntryList::from_xdr(&bytes), Ok(list));
    }

    #[test]
    fn rmtcall_golden() {
        let args = RpcbRmtcallArgs {
            prog: Program::STATUS,
            vers: Version(1),
            proc: Procedure(0),
            args: &[],
        };
        assert_eq!(args.to_xdr(), [u(100_024), u(1), u(0), u(0)].concat());
        let res = RpcbRmtcallRes {
            addr: "127.0.0.1.3.255".into(),
            results: &[0, 0, 0, 1],
        };
        let bytes = [s("127.0.0.1.3.255"), u(4), u(1)].concat();
        assert_eq!(res.to_xdr(), bytes);
        assert_eq!(RpcbRmtcallRes::from_xdr(&bytes), Ok(res));
    }

    #[test]
    fn netbuf_golden_and_caps() {
        let nb = Netbuf::new(vec![2, 0, 0, 111, 127, 0, 0, 1]);
        let bytes = [u(8), u(8), vec![2, 0, 0, 111, 127, 0, 0, 1]].concat();
        assert_eq!(nb.to_xdr(), bytes);
        assert_eq!(Netbuf::from_xdr(&bytes), Ok(nb));
        let too_big = [u(9001), u(0)].concat();
        assert!(matches!(
            Netbuf::from_xdr(&too_big),
            Err(XdrError::TooLong {
                field: "netbuf.maxlen",
                ..
            })
        ));
        let over_maxlen = [u(4), u(8), vec![0; 8]].concat();
        assert!(matches!(
            Netbuf::from_xdr(&over_maxlen),
            Err(XdrError::TooLong {
                field: "netbuf.buf",
                len: 8,
                max: 4
            })
        ));
    }

    #[test]
    fn strings_over_9000_bytes_are_refused() {
        let bytes = [u(100_000), u(4), u(9001)].concat();
        assert!(matches!(
            Rpcb::from_xdr(&bytes),
            Err(XdrError::TooLong { len: 9001, .. })
        ));
    }
}
