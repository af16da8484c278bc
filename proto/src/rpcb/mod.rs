//! The binding protocols of RFC 1833: PMAP version 2 (section 3) and
//! RPCBIND versions 3 and 4 (section 2): procedure numbers and every
//! argument and result type, with their XDR encodings. No I/O.
//!
//! # Caps
//! Each variable-length field is decoded with a maximum, taken from what
//! libtirpc 1.3 and rpcbind 1.2 use so that we accept what they accept:
//!
//! | field | max | source |
//! |---|---|---|
//! | every `rpcb`, `rpcb_entry`, stat `netid` string | [`RPC_MAXDATASIZE`] (9000 bytes) | libtirpc `xdr_rpcb`, `xdr_rpcb_entry` |
//! | CALLIT/INDIRECT `args`, `results`, `res` | [`RPC_MAXDATASIZE`] | rpcbind `xdr_encap_parms` (PMAP's `ARGSIZE` is also 9000) |
//! | `netbuf.maxlen`, and `buf` (also `<= maxlen`) | [`RPC_MAXDATASIZE`] | libtirpc `xdr_netbuf` (CVE-2017-8779 fix) |
//! | universal address string (UADDR2TADDR argument, GETADDR result) | [`RPC_MAXDATASIZE`] | rpcbind uses `xdr_wrapstring` (unbounded); we bound it |
//! | `pmaplist`, `rpcblist` entries | [`DUMP_LIST_CAP`] (262,144) | ours: five times a 50,000-entry DUMP |
//! | `rpcb_entry_list` entries | [`ENTRY_LIST_CAP`] (4,096) | ours; libtirpc caps at 1,024 |
//! | `rpcbs_addrlist`, `rpcbs_rmtcalllist` entries | [`STAT_LIST_CAP`] (65,536) | ours |
//!
//! A list cap bounds the work of one decode; memory is bounded anyway by
//! the input size, since every entry consumes at least 8 bytes of input.

mod pmap;
mod rpcb4;
mod stat;

pub use pmap::{CallArgs, CallResult, Mapping, Pmaplist};
pub use rpcb4::{
    Netbuf, Rpcb, RpcbEntry, RpcbEntryList, RpcbRmtcallArgs, RpcbRmtcallRes, Rpcblist,
};
pub use stat::{RpcbStat, RpcbStatByvers, RpcbsAddr, RpcbsRmtcall};

use crate::rpc::{Procedure, Version};

/// libtirpc's `RPC_MAXDATASIZE`: the maximum of every string and opaque
/// field of the binding protocols.
pub const RPC_MAXDATASIZE: u32 = 9000;
/// Entry cap for decoding `pmaplist` and `rpcblist` (DUMP results).
pub const DUMP_LIST_CAP: usize = 262_144;
/// Entry cap for decoding `rpcb_entry_list` (GETADDRLIST results).
pub const ENTRY_LIST_CAP: usize = 4096;
/// Entry cap for decoding each GETSTAT list.
pub const STAT_LIST_CAP: usize = 65_536;

/// The portmapper's well-known port (RFC 1833 section 3).
pub const PMAPPORT: u16 = 111;

/// `IPPROTO_TCP`, the `prot` of a TCP mapping (RFC 1833 section 3).
pub const IPPROTO_TCP: u32 = 6;
/// `IPPROTO_UDP`, the `prot` of a UDP mapping (RFC 1833 section 3).
pub const IPPROTO_UDP: u32 = 17;

/// PMAP protocol version (RFC 1833 section 3).
pub const PMAPVERS: Version = Version(2);
/// RPCBIND version 3 (RFC 1833 section 2.2.1).
pub const RPCBVERS: Version = Version(3);
/// RPCBIND version 4 (RFC 1833 section 2.2.1).
pub const RPCBVERS4: Version = Version(4);

pub const PMAPPROC_NULL: Procedure = Procedure(0);
pub const PMAPPROC_SET: Procedure = Procedure(1);
pub const PMAPPROC_UNSET: Procedure = Procedure(2);
pub const PMAPPROC_GETPORT: Procedure = Procedure(3);
pub const PMAPPROC_DUMP: Procedure = Procedure(4);
pub const PMAPPROC_CALLIT: Procedure = Procedure(5);

pub const RPCBPROC_NULL: Procedure = Procedure(0);
pub const RPCBPROC_SET: Procedure = Procedure(1);
pub const RPCBPROC_UNSET: Procedure = Procedure(2);
pub const RPCBPROC_GETADDR: Procedure = Procedure(3);
pub const RPCBPROC_DUMP: Procedure = Procedure(4);
/// Version 3 only; the same number is [`RPCBPROC_BCAST`] in version 4.
pub const RPCBPROC_CALLIT: Procedure = Procedure(5);
/// Version 4 (RFC 1833 section 2.2.1: "same functionality and procedure
/// number as RPCBPROC_CALLIT").
pub const RPCBPROC_BCAST: Procedure = Procedure(5);
pub const RPCBPROC_GETTIME: Procedure = Procedure(6);
pub const RPCBPROC_UADDR2TADDR: Procedure = Procedure(7);
pub const RPCBPROC_TADDR2UADDR: Procedure = Procedure(8);
pub const RPCBPROC_GETVERSADDR: Procedure = Procedure(9);
pub const RPCBPROC_INDIRECT: Procedure = Procedure(10);
pub const RPCBPROC_GETADDRLIST: Procedure = Procedure(11);
pub const RPCBPROC_GETSTAT: Procedure = Procedure(12);

/// Number of per-procedure counters in `rpcb_stat` (`RPCBSTAT_HIGHPROC`,
/// "# of procs in rpcbind V4 plus one").
pub const RPCBSTAT_HIGHPROC: usize = 13;
/// Number of `rpcb_stat` in `rpcb_stat_byvers` (`RPCBVERS_STAT`: v2, v3,
/// v4 in that order).
pub const RPCBVERS_STAT: usize = 3;

/// `nc_semantics` of `rpcb_entry` (RFC 1833 section 2.1, from
/// `<netconfig.h>`): connectionless.
pub const NC_TPI_CLTS: u32 = 1;
/// Connection-oriented.
pub const NC_TPI_COTS: u32 = 2;
/// Connection-oriented with orderly release (tcp, tcp6, local streams).
pub const NC_TPI_COTS_ORD: u32 = 3;
/// Raw.
pub const NC_TPI_RAW: u32 = 4;
