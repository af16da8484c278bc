//! PMAP version 2 types (RFC 1833 section 3): `mapping`, `pmaplist`,
//! `call_args` and `call_result`. No I/O.

use super::{DUMP_LIST_CAP, RPC_MAXDATASIZE};
use crate::rpc::{Procedure, Program, Version};
use crate::xdr::{Decode, Encode, XdrError, XdrReader, XdrWriter};

/// `struct mapping` (RFC 1833 section 3): the argument of SET, UNSET and
/// GETPORT, and the entry of a DUMP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mapping {
    pub prog: Program,
    pub vers: Version,
    /// [`IPPROTO_TCP`](super::IPPROTO_TCP) or
    /// [`IPPROTO_UDP`](super::IPPROTO_UDP); other values are carried as is.
    pub prot: u32,
    pub port: u32,
}

impl Encode for Mapping {
    fn encode(&self, w: &mut XdrWriter) {
        self.prog.encode(w);
        self.vers.encode(w);
        w.put_u32(self.prot);
        w.put_u32(self.port);
    }
}

impl Decode<'_> for Mapping {
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, XdrError> {
        Ok(Self {
            prog: Program::decode(r)?,
            vers: Version::decode(r)?,
            prot: r.u32_named("mapping.prot")?,
            port: r.u32_named("mapping.port")?,
        })
    }
}

/// `pmaplist` (RFC 1833 section 3), the result of DUMP: a linked list,
/// decoded with at most [`DUMP_LIST_CAP`] entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pmaplist(pub Vec<Mapping>);

impl Encode for Pmaplist {
    fn encode(&self, w: &mut XdrWriter) {
        w.put_list(&self.0);
    }
}

impl Decode<'_> for Pmaplist {
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, XdrError> {
        r.list_named("pmaplist", DUMP_LIST_CAP, Mapping::decode)
            .map(Self)
    }
}

/// `struct call_args` (RFC 1833 section 3), the argument of CALLIT. The
/// arguments of the remote procedure are borrowed, already XDR-encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallArgs<'a> {
    pub prog: Program,
    pub vers: Version,
    pub proc: Procedure,
    /// At most [`RPC_MAXDATASIZE`] bytes.
    pub args: &'a [u8],
}

impl Encode for CallArgs<'_> {
    fn encode(&self, w: &mut XdrWriter) {
        self.prog.encode(w);
        self.vers.encode(w);
        self.proc.encode(w);
        w.put_opaque(self.args);
    }
}

impl<'a> Decode<'a> for CallArgs<'a> {
    fn decode(r: &mut XdrReader<'a>) -> Result<Self, XdrError> {
        Ok(Self {
            prog: Program::decode(r)?,
            vers: Version::decode(r)?,
            proc: Procedure::decode(r)?,
            args: r.opaque_named(RPC_MAXDATASIZE, "call_args.args")?,
        })
    }
}

/// `struct call_result` (RFC 1833 section 3), the result of CALLIT: the
/// port of the called program and its results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallResult<'a> {
    pub port: u32,
    /// At most [`RPC_MAXDATASIZE`] bytes.
    pub res: &'a [u8],
}

impl Encode for CallResult<'_> {
    fn encode(&self, w: &mut XdrWriter) {
        w.put_u32(self.port);
        w.put_opaque(self.res);
    }
}

impl<'a> Decode<'a> for CallResult<'a> {
    fn decode(r: &mut XdrReader<'a>) -> Result<Self, XdrError> {
        Ok(Self {
            port: r.u32_named("call_result.port")?,
            res: r.opaque_named(RPC_MAXDATASIZE, "call_result.res")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{IPPROTO_TCP, IPPROTO_UDP};
    use super::*;

    fn words(ws: &[u32]) -> Vec<u8> {
        ws.iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    #[test]
    fn mapping_golden() {
        let m = Mapping {
            prog: Program::PORTMAP,
            vers: Version(2),
            prot: IPPROTO_TCP,
            port: 111,
        };
        let bytes = words(&[100_000, 2, 6, 111]);
        assert_eq!(m.to_xdr(), bytes);
        assert_eq!(Mapping::from_xdr(&bytes), Ok(m));
    }

    #[test]
    fn pmaplist_golden() {
        let list = Pmaplist(vec![
            Mapping {
                prog: Program::PORTMAP,
                vers: Version(2),
                prot: IPPROTO_TCP,
                port: 111,
            },
            Mapping {
                prog: Program::PORTMAP,
                vers: Version(2),
                prot: IPPROTO_UDP,
                port: 111,
            },
        ]);
        let bytes = words(&[1, 100_000, 2, 6, 111, 1, 100_000, 2, 17, 111, 0]);
        assert_eq!(list.to_xdr(), bytes);
        assert_eq!(Pmaplist::from_xdr(&bytes), Ok(list));
        assert_eq!(Pmaplist::from_xdr(&words(&[0])), Ok(Pmaplist::default()));
    }

    #[test]
    fn call_args_and_result_golden() {
        let args = CallArgs {
            prog: Program::NFS,
            vers: Version(3),
            proc: Procedure(0),
            args: &[1, 2, 3],
        };
        let bytes = words(&[100_003, 3, 0, 3, 0x0102_0300]);
        assert_eq!(args.to_xdr(), bytes);
        assert_eq!(CallArgs::from_xdr(&bytes), Ok(args));

        let res = CallResult {
            port: 2049,
            res: &[],
        };
        let bytes = words(&[2049, 0]);
        assert_eq!(res.to_xdr(), bytes);
        assert_eq!(CallResult::from_xdr(&bytes), Ok(res));
    }

    #[test]
    fn call_args_over_9000_bytes_are_refused() {
        let mut bytes = words(&[100_003, 3, 0, 9004]);
        bytes.resize(bytes.len() + 9004, 0);
        assert!(matches!(
            CallArgs::from_xdr(&bytes),
            Err(XdrError::TooLong { len: 9004, .. })
        ));
    }
}
