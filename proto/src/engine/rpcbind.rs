//! RPCBIND version 3 and 4 procedures (RFC 1833 section 2) as rpcbind
//! 1.2.6 `rpcb_svc.c`, `rpcb_svc_4.c` and `rpcb_svc_com.c` answer them.
//! No I/O.

use std::time::{SystemTime, UNIX_EPOCH};

use super::merge::{family, merge};
use super::{access, remote, Call, Engine, Outcome, RequestContext, Transport};
use crate::rpc::{AcceptedReply, AuthStat, Program, Version};
use crate::rpcb::{self, Netbuf, NC_TPI_CLTS, NC_TPI_COTS_ORD, RPC_MAXDATASIZE};
use crate::uaddr;
use crate::xdr::{Decode, Encode, XdrReader, XdrWriter};

impl Engine {
    /// `rpcb_service_3` and `rpcb_service_4`.
    pub(super) fn rpcbind(&mut self, call: &Call<'_>, ctx: &RequestContext) -> Outcome {
        let v4 = call.version == rpcb::RPCBVERS4;
        let slot = if v4 { 2 } else { 1 };
        self.stats.procinfo(slot, call.procedure);
        match (v4, call.procedure) {
            (_, rpcb::RPCBPROC_NULL) => call.success(|_| {}),
            (_, rpcb::RPCBPROC_SET) | (_, rpcb::RPCBPROC_UNSET) => self.change(call, ctx, slot),
            (_, rpcb::RPCBPROC_GETADDR) => self.getaddr(call, ctx, slot, true),
            (_, rpcb::RPCBPROC_DUMP) => call.success(|w| self.encode_rpcblist(w)),
            (false, rpcb::RPCBPROC_CALLIT) => self.remote_call(call, ctx, remote::Kind::Callit),
            (true, rpcb::RPCBPROC_BCAST) => self.remote_call(call, ctx, remote::Kind::Bcast),
            (_, rpcb::RPCBPROC_GETTIME) => call.success(|w| w.put_u32(unix_seconds(call.now))),
            (_, rpcb::RPCBPROC_UADDR2TADDR) => uaddr2taddr(call, ctx),
            (_, rpcb::RPCBPROC_TADDR2UADDR) => taddr2uaddr(call, ctx),
            (true, rpcb::RPCBPROC_GETVERSADDR) => self.getaddr(call, ctx, slot, false),
            (true, rpcb::RPCBPROC_INDIRECT) => self.remote_call(call, ctx, remote::Kind::Indirect),
            (true, rpcb::RPCBPROC_GETADDRLIST) => self.getaddrlist(call, ctx),
            (true, rpcb::RPCBPROC_GETSTAT) => call.success(|w| self.stats.encode(w)),
            _ => call.accepted(AcceptedReply::ProcUnavail),
        }
    }

    /// `rpcbproc_set_com` / `rpcbproc_unset_com`: the owner comes from
    /// the transport, never from the request's `r_owner`.
    fn change(&mut self, call: &Call<'_>, ctx: &RequestContext, slot: usize) -> Outcome {
        let Some(reg) = RpcbArgs::decode(call.args) else {
            return call.accepted(AcceptedReply::GarbageArgs);
        };
        if !access::may_change(&self.config, ctx) {
            return call.auth_error(AuthStat::TOOWEAK);
        }
        let owner = access::owner(&self.config, ctx);
        let ans = if call.procedure == rpcb::RPCBPROC_SET {
            let ans = self
                .registry
                .set(reg.prog, reg.vers, reg.netid, reg.addr, &owner);
            self.stats.set(slot, ans);
            ans
        } else {
            let ans = self.registry.unset(reg.prog, reg.vers, reg.netid, &owner);
            self.stats.unset(slot, ans);
            ans
        };
        call.success(|w| w.put_bool(ans))
    }

    /// `rpcbproc_getaddr_com`: looked up on the netid of the transport the
    /// request arrived on (the request's `r_netid` is ignored); GETADDR
    /// accepts any version of the program, GETVERSADDR only the exact one.
    fn getaddr(
        &mut self,
        call: &Call<'_>,
        ctx: &RequestContext,
        slot: usize,
        any: bool,
    ) -> Outcome {
        let Some(req) = RpcbArgs::decode(call.args) else {
            return call.accepted(AcceptedReply::GarbageArgs);
        };
        let netid = ctx.transport.netid();
        let hint = req.hint();
        let uaddr = match self.registry.find_service(req.prog, req.vers, netid) {
            Some(r) if any || r.version == req.vers => {
                merge(&self.interfaces, ctx, family(ctx.transport), r.addr, hint)
                    .unwrap_or_else(|| r.addr.to_owned())
            }
            _ => String::new(),
        };
        self.stats
            .getaddr(slot, req.prog, req.vers, netid, !uaddr.is_empty());
        call.success(|w| w.put_string(&uaddr))
    }

    /// `rpcbproc_getaddrlist_4_local`: every registration of exactly
    /// (program, version) in the arrival transport's protocol family,
    /// merged. A matching registration on a netid the daemon does not
    /// serve makes C fail the whole call without a reply.
    fn getaddrlist(&mut self, call: &Call<'_>, ctx: &RequestContext) -> Outcome {
        let Some(req) = RpcbArgs::decode(call.args) else {
            return call.accepted(AcceptedReply::GarbageArgs);
        };
        let fam = family(ctx.transport);
        let hint = req.hint();
        let mut entries = Vec::new();
        let mut last = None;
        for r in self.registry.by_program_version(req.prog, req.vers) {
            let Some(t) = self.transport_of(r.netid) else {
                return Outcome::NoReply;
            };
            if family(t) != fam {
                continue;
            }
            last = merge(&self.interfaces, ctx, fam, r.addr, hint);
            if let Some(maddr) = &last {
                entries.push((maddr.clone(), t));
            }
        }
        let found = last.is_some_and(|m| !m.is_empty());
        self.stats
            .getaddr(2, req.prog, req.vers, ctx.transport.netid(), found);
        call.success(|w| {
            for (maddr, t) in &entries {
                w.put_bool(true);
                encode_entry(w, maddr, *t);
            }
            w.put_bool(false);
        })
    }

    /// `rpcblist` (RFC 1833 section 2.1) in DUMP order.
    fn encode_rpcblist(&self, w: &mut XdrWriter) {
        for r in self.registry.iter() {
            w.put_bool(true);
            w.put_u32(r.program.0);
            w.put_u32(r.version.0);
            w.put_string(r.netid);
            w.put_string(r.addr);
            w.put_string(r.owner);
        }
        w.put_bool(false);
    }
}

/// `struct rpcb` decoded without copying its strings (the hot path of
/// GETADDR); same limits as `rpcb::Rpcb`'s decoder. Each string ends at
/// its first NUL byte, as it does for C (`xdr_string` then `strcmp`,
/// `strdup`; observed: SET of netid `udp\0zz` registers `udp`).
struct RpcbArgs<'a> {
    prog: Program,
    vers: Version,
    netid: &'a str,
    addr: &'a str,
}

impl<'a> RpcbArgs<'a> {
    fn decode(args: &'a [u8]) -> Option<Self> {
        let mut r = XdrReader::new(args);
        let prog = Program::decode(&mut r).ok()?;
        let vers = Version::decode(&mut r).ok()?;
        let netid = c_str(r.string_named(RPC_MAXDATASIZE, "rpcb.r_netid").ok()?);
        let addr = c_str(r.string_named(RPC_MAXDATASIZE, "rpcb.r_addr").ok()?);
        r.string_named(RPC_MAXDATASIZE, "rpcb.r_owner").ok()?;
        Some(Self {
            prog,
            vers,
            netid,
            addr,
        })
    }

    /// `r_addr` as C's hint: only when not empty.
    fn hint(&self) -> Option<&'a str> {
        (!self.addr.is_empty()).then_some(self.addr)
    }
}

/// The part of `s` a C string function sees.
fn c_str(s: &str) -> &str {
    s.split('\0').next().unwrap_or_default()
}

/// One `rpcb_entry` with the netconfig fields of transport `t`.
fn encode_entry(w: &mut XdrWriter, maddr: &str, t: Transport) {
    let (semantics, proto) = match t {
        Transport::Udp | Transport::Udp6 => (NC_TPI_CLTS, "udp"),
        Transport::Tcp | Transport::Tcp6 => (NC_TPI_COTS_ORD, "tcp"),
        Transport::Local => (NC_TPI_COTS_ORD, "-"),
    };
    w.put_string(maddr);
    w.put_string(t.netid());
    w.put_u32(semantics);
    w.put_string(family(t).protofmly());
    w.put_string(proto);
}

/// GETTIME answers `time_t` through `xdr_u_long`: 32 bits on the wire.
fn unix_seconds(now: SystemTime) -> u32 {
    now.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

/// `rpcbproc_uaddr2taddr_com`: parsed in the arrival transport's family;
/// an empty netbuf when it does not parse.
fn uaddr2taddr(call: &Call<'_>, ctx: &RequestContext) -> Outcome {
    let Ok(s) = XdrReader::new(call.args).string_named(u32::MAX, "uaddr") else {
        return call.accepted(AcceptedReply::GarbageArgs);
    };
    let nb = uaddr::uaddr2taddr(family(ctx.transport), s).unwrap_or_default();
    call.success(|w| nb.encode(w))
}

/// `rpcbproc_taddr2uaddr_com`: an empty string when it does not convert.
fn taddr2uaddr(call: &Call<'_>, ctx: &RequestContext) -> Outcome {
    let Ok(nb) = Netbuf::from_xdr(call.args) else {
        return call.accepted(AcceptedReply::GarbageArgs);
    };
    let s = uaddr::taddr2uaddr_bytes(family(ctx.transport), &nb);
    call.success(|w| w.put_opaque(&s))
}
