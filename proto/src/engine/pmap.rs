//! PMAP version 2 procedures (RFC 1833 section 3; RFC 1057 appendix A) as
//! rpcbind 1.2.6 `pmap_svc.c` answers them. No I/O.

use super::registry::protocol_to_netid;
use super::{access, remote, Call, Engine, Outcome, RequestContext};
use crate::rpc::AcceptedReply;
use crate::rpc::AuthStat;
use crate::rpcb::{self, Mapping};
use crate::xdr::{Decode, XdrWriter};

/// Statistics slot of PMAP v2.
const SLOT: usize = 0;

impl Engine {
    /// `pmap_service`: every PMAP v2 call.
    pub(super) fn pmap_v2(&mut self, call: &Call<'_>, ctx: &RequestContext) -> Outcome {
        self.stats.procinfo(SLOT, call.procedure);
        match call.procedure {
            rpcb::PMAPPROC_NULL => call.success(|_| {}),
            rpcb::PMAPPROC_SET | rpcb::PMAPPROC_UNSET => self.pmap_change(call, ctx),
            rpcb::PMAPPROC_GETPORT => self.pmap_getport(call),
            rpcb::PMAPPROC_DUMP => call.success(|w| self.encode_pmaplist(w)),
            rpcb::PMAPPROC_CALLIT => self.remote_call(call, ctx, remote::Kind::PmapCallit),
            _ => call.accepted(AcceptedReply::ProcUnavail),
        }
    }

    /// `pmapproc_change`: PMAP SET and UNSET, mapped onto the RPCBIND list
    /// with netid `udp`/`tcp` and address `0.0.0.0.p1.p2`.
    fn pmap_change(&mut self, call: &Call<'_>, ctx: &RequestContext) -> Outcome {
        let owner = access::owner(&self.config, ctx);
        let Ok(m) = Mapping::from_xdr(call.args) else {
            return call.accepted(AcceptedReply::GarbageArgs);
        };
        if !access::may_change(&self.config, ctx) {
            return call.auth_error(AuthStat::TOOWEAK);
        }
        let ans = if call.procedure == rpcb::PMAPPROC_SET {
            let ans = match protocol_to_netid(m.prot) {
                Some(netid) => {
                    let addr = format!("0.0.0.0.{}.{}", (m.port >> 8) & 0xff, m.port & 0xff);
                    self.registry.set(m.prog, m.vers, netid, &addr, &owner)
                }
                None => false,
            };
            self.stats.set(SLOT, ans);
            ans
        } else {
            let tcp = self.registry.unset(m.prog, m.vers, "tcp", &owner);
            let udp = self.registry.unset(m.prog, m.vers, "udp", &owner);
            self.stats.unset(SLOT, tcp || udp);
            tcp || udp
        };
        call.success(|w| w.put_bool(ans))
    }

    /// `pmapproc_getport`: the port of (program, version, protocol), or of
    /// another version of the program on that protocol, or 0.
    fn pmap_getport(&mut self, call: &Call<'_>) -> Outcome {
        let Ok(m) = Mapping::from_xdr(call.args) else {
            return call.accepted(AcceptedReply::GarbageArgs);
        };
        let netid = protocol_to_netid(m.prot);
        let port = match (
            netid,
            self.registry.find_service_pmap(m.prog, m.vers, m.prot),
        ) {
            (Some(_), Some(entry)) => entry.port,
            _ => 0,
        };
        if let Some(netid) = netid.filter(|n| self.has_transport(n)) {
            self.stats.getaddr(SLOT, m.prog, m.vers, netid, port != 0);
        }
        call.success(|w| w.put_u32(port))
    }

    /// `pmaplist` (RFC 1833 section 3): the PMAP list in its own order.
    fn encode_pmaplist(&self, w: &mut XdrWriter) {
        for e in self.registry.pmap_iter() {
            w.put_bool(true);
            w.put_u32(e.program.0);
            w.put_u32(e.version.0);
            w.put_u32(e.protocol);
            w.put_u32(e.port);
        }
        w.put_bool(false);
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::registry::{Registry, IPPROTO_UDP};
    use crate::rpc::{Program, Version};

    #[test]
    fn pmap_set_mirrors_into_both_lists_for_udp_and_tcp_only() {
        let mut r = Registry::new();
        assert!(r.set(Program(300_000), Version(1), "udp", "0.0.0.0.3.1", "x"));
        assert!(r.set(Program(300_000), Version(1), "udp6", "::.3.1", "x"));
        assert!(!r.set(Program(300_000), Version(1), "UDP", "0.0.0.0.3.2", "x"));
        assert_eq!(r.len(), 2);
        assert_eq!(r.pmap_len(), 1);
        let e = r
            .find_service_pmap(Program(300_000), Version(9), IPPROTO_UDP)
            .unwrap();
        assert_eq!(e.port, 0x301);
    }
}
