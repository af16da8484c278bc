//! Remote calls: PMAP CALLIT, RPCBIND v3 CALLIT, v4 BCAST and INDIRECT, as
//! Debian's rpcbind 1.2.6 answers them when it is not forwarding (no `-r`):
//! `rpcbproc_callit_com` runs every check, counts the call in GETSTAT's
//! `rmtinfo`, and then finds no forwarding socket. No I/O.
//!
//! Observed against the C daemon: CALLIT and BCAST are never answered
//! except by AUTH_TOOWEAK from the deny list; INDIRECT answers
//! GARBAGE_ARGS, AUTH_TOOWEAK, PROG_UNAVAIL, PROG_MISMATCH or finally
//! SYSTEM_ERR; over connection-oriented transports nothing is ever
//! answered. With `remote_calls` (`-r`) a call that passes every check
//! becomes [`Outcome::Forward`] (see `forward.rs`) instead of the final
//! SYSTEM_ERR / silence.

use super::forward::{forwarded_call, Forward};
use super::merge::{family, merge};
use super::{Call, Engine, Outcome, RequestContext};
use crate::rpc::{AcceptedReply, AuthStat, Procedure, Program};
use crate::rpcb::CallArgs;
use crate::xdr::Decode;

/// Which remote-call procedure was called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// PMAP v2 CALLIT.
    PmapCallit,
    /// RPCBIND v3 CALLIT.
    Callit,
    /// RPCBIND v4 BCAST.
    Bcast,
    /// RPCBIND v4 INDIRECT: the only one that reports errors.
    Indirect,
}

impl Kind {
    fn slot(self) -> usize {
        match self {
            Kind::PmapCallit => 0,
            Kind::Callit => 1,
            Kind::Bcast | Kind::Indirect => 2,
        }
    }
}

/// C `check_callit`: procedures that may not be called through rpcbind
/// (NULL always may).
pub(crate) fn callit_allowed(prog: Program, proc: Procedure, insecure: bool) -> bool {
    const MNT: u32 = 1;
    const UMNT: u32 = 3;
    const SETDOM: u32 = 2;
    const YP_DENIED: [u32; 4] = [8, 3, 4, 5]; // ALL, MATCH, FIRST, NEXT
    if proc.0 == 0 {
        return true;
    }
    match prog {
        Program::PORTMAP => insecure,
        Program::MOUNT => proc.0 != MNT && proc.0 != UMNT,
        Program::YPBIND => proc.0 != SETDOM,
        Program::YPPASSWD | Program::NFS | Program::RQUOTA => false,
        Program::YPPROG => !YP_DENIED.contains(&proc.0),
        _ => true,
    }
}

impl Engine {
    /// `rpcbproc_callit_com` without forwarding sockets.
    pub(super) fn remote_call(
        &mut self,
        call: &Call<'_>,
        ctx: &RequestContext,
        kind: Kind,
    ) -> Outcome {
        let indirect = kind == Kind::Indirect;
        let quiet = |reply: AcceptedReply<'static>| {
            if indirect {
                call.accepted(reply)
            } else {
                Outcome::NoReply
            }
        };
        if !ctx.transport.is_datagram() {
            return Outcome::NoReply;
        }
        let Ok(a) = CallArgs::from_xdr(call.args) else {
            return quiet(AcceptedReply::GarbageArgs);
        };
        if !callit_allowed(a.prog, a.proc, self.config.insecure) {
            return call.auth_error(AuthStat::TOOWEAK);
        }
        let netid = ctx.transport.netid();
        let found = self.registry.find_service(a.prog, a.vers, netid);
        let exact = found.is_some_and(|r| r.version == a.vers);
        self.stats.rmtcall(
            kind.slot(),
            (a.prog, a.vers, a.proc, netid),
            indirect,
            exact,
        );
        let Some(reg) = found else {
            return quiet(AcceptedReply::ProgUnavail);
        };
        if !exact {
            let (low, high) = self.registry.version_range(a.prog, netid);
            return quiet(AcceptedReply::ProgMismatch { low, high });
        }
        let fam = family(ctx.transport);
        let Some(uaddr) = merge(&self.interfaces, ctx, fam, reg.addr, None) else {
            return quiet(AcceptedReply::ProgUnavail);
        };
        let to = crate::uaddr::parse_inet_as(fam, &uaddr);
        match to.filter(|_| self.config.remote_calls) {
            Some(to) => Outcome::Forward(Box::new(Forward {
                to,
                call: forwarded_call(&call.credential, a.prog, a.vers, a.proc, a.args),
                caller_xid: call.xid,
                kind: kind.into(),
                uaddr,
            })),
            None => quiet(AcceptedReply::SystemErr),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_list_matches_check_callit() {
        let p = |n| Program(n);
        assert!(callit_allowed(p(100_000), Procedure(0), false));
        assert!(!callit_allowed(p(100_000), Procedure(3), false));
        assert!(callit_allowed(p(100_000), Procedure(3), true));
        assert!(!callit_allowed(p(100_005), Procedure(1), false));
        assert!(callit_allowed(p(100_005), Procedure(2), false));
        assert!(!callit_allowed(p(100_007), Procedure(2), false));
        assert!(!callit_allowed(p(100_003), Procedure(1), false));
        assert!(!callit_allowed(p(100_004), Procedure(8), false));
        assert!(callit_allowed(p(100_004), Procedure(1), false));
        assert!(callit_allowed(p(300_000), Procedure(7), false));
    }
}
