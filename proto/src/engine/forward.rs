//! Remote-call forwarding (rpcbind `-r`): the call the daemon sends to the
//! registered service on the caller's behalf, and the reply the caller
//! gets once the service has answered. No I/O: the driver sends
//! [`Forward::call`] (after writing its own xid into it), keeps the table
//! of calls in flight, and passes the service's reply to
//! [`Forward::complete`].
//!
//! Follows rpcbind 1.2.6 `rpcbproc_callit_com`, `handle_reply` and
//! `xdr_rmtcall_result` (rpcb_svc_com.c); RFC 1833 sections 2.2.1 (CALLIT,
//! INDIRECT, BCAST) and 3 (PMAP CALLIT).

use std::net::SocketAddr;

use super::remote::Kind;
use crate::rpc::{
    AcceptedReply, AuthFlavor, OpaqueAuth, Procedure, Program, Reply, ReplyBody, Version,
};
use crate::rpcb::{CallResult, RpcbRmtcallRes};
use crate::xdr::{Encode, XdrReader, XdrWriter};

/// One remote call to forward: what the engine decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forward {
    /// The service's address (the registration merged as for GETADDR).
    pub to: SocketAddr,
    /// The complete CALL message for the service; its first four bytes
    /// (the xid) are the driver's to overwrite.
    pub call: Vec<u8>,
    /// The caller's xid, for the reply.
    pub caller_xid: u32,
    /// What kind of remote call (with the version it arrived as), which
    /// also tells duplicates apart as C's `forward_register` does.
    pub kind: ForwardKind,
    /// The service's universal address, as the reply reports it.
    pub uaddr: String,
}

/// Which remote-call procedure a forwarded call came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ForwardKind {
    /// PMAP v2 CALLIT: the reply carries the port.
    PmapCallit,
    /// RPCBIND v3 CALLIT, v4 BCAST: the reply carries the address.
    Callit,
    /// RPCBIND v4 INDIRECT: like CALLIT, and errors are answered.
    Indirect,
}

impl From<Kind> for ForwardKind {
    fn from(k: Kind) -> Self {
        match k {
            Kind::PmapCallit => ForwardKind::PmapCallit,
            Kind::Callit | Kind::Bcast => ForwardKind::Callit,
            Kind::Indirect => ForwardKind::Indirect,
        }
    }
}

/// The CALL message sent to the service: same program, version and
/// procedure, the caller's AUTH_SYS credential carried over (anything
/// else becomes AUTH_NONE, as C does), an AUTH_NONE verifier, the
/// caller's arguments as they came.
pub(crate) fn forwarded_call(
    cred: &OpaqueAuth<'_>,
    prog: Program,
    vers: Version,
    proc: Procedure,
    args: &[u8],
) -> Vec<u8> {
    let mut w = XdrWriter::with_capacity(64 + args.len());
    w.put_u32(0); // xid: the driver's
    w.put_u32(0); // CALL
    w.put_u32(crate::rpc::RPC_VERSION);
    prog.encode(&mut w);
    vers.encode(&mut w);
    proc.encode(&mut w);
    let carried = if cred.flavor == AuthFlavor::SYS {
        *cred
    } else {
        OpaqueAuth::NONE
    };
    carried.encode(&mut w);
    OpaqueAuth::NONE.encode(&mut w);
    w.put_raw(args);
    w.into_bytes()
}

impl Forward {
    /// The caller's reply once the service answered `reply`; `None` when
    /// C sends nothing: a reply that does not decode, or that is not
    /// SUCCESS for CALLIT/BCAST (INDIRECT gets SYSTEM_ERR then), or a PMAP
    /// CALLIT whose address is not `h1.h2.h3.h4.p1.p2` (C's `sscanf`).
    pub fn complete(&self, reply: &[u8]) -> Option<Vec<u8>> {
        let results = match Reply::decode(&mut XdrReader::new(reply)) {
            Ok(Reply {
                body:
                    ReplyBody::Accepted {
                        reply: AcceptedReply::Success(results),
                        ..
                    },
                ..
            }) => results,
            _ if self.kind == ForwardKind::Indirect => {
                return Some(Reply::accepted(self.caller_xid, AcceptedReply::SystemErr).to_xdr())
            }
            _ => return None,
        };
        let mut w = XdrWriter::with_capacity(64 + results.len());
        crate::rpc::encode_success_header(self.caller_xid, &mut w);
        match self.kind {
            ForwardKind::PmapCallit => {
                let port = pmap_port(&self.uaddr)?;
                CallResult { port, res: results }.encode(&mut w);
            }
            ForwardKind::Callit | ForwardKind::Indirect => RpcbRmtcallRes {
                addr: self.uaddr.clone(),
                results,
            }
            .encode(&mut w),
        }
        Some(w.into_bytes())
    }
}

/// C `xdr_rmtcall_result` for PMAP: six decimal fields, the port from
/// the last two (`(p1 & 0xff) << 8 + (p2 & 0xff)`).
fn pmap_port(uaddr: &str) -> Option<u32> {
    let fields: Vec<i64> = uaddr
        .split('.')
        .map(|f| f.parse::<i64>().ok())
        .collect::<Option<_>>()?;
    match fields[..] {
        [_, _, _, _, p1, p2] => Some((((p1 & 0xff) << 8) + (p2 & 0xff)) as u32),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forward(kind: ForwardKind, uaddr: &str) -> Forward {
        Forward {
            to: "127.0.0.1:1025".parse().unwrap(),
            call: Vec::new(),
            caller_xid: 0xabcd,
            kind,
            uaddr: uaddr.into(),
        }
    }

    fn words(ws: &[u32]) -> Vec<u8> {
        ws.iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    #[test]
    fn replies_carry_the_port_or_the_address_then_the_results() {
        let service = words(&[9, 1, 0, 0, 0, 0, 7, 8]);
        let pmap = forward(ForwardKind::PmapCallit, "127.0.0.1.4.1").complete(&service);
        assert_eq!(pmap, Some(words(&[0xabcd, 1, 0, 0, 0, 0, 0x401, 8, 7, 8])));
        let v3 = forward(ForwardKind::Callit, "::1.4.1").complete(&service);
        let mut want = words(&[0xabcd, 1, 0, 0, 0, 0, 7]);
        want.extend(b"::1.4.1\0");
        want.extend(words(&[8, 7, 8]));
        assert_eq!(v3, Some(want));
        assert_eq!(
            forward(ForwardKind::PmapCallit, "::1.4.1").complete(&service),
            None
        );
    }

    #[test]
    fn errors_are_silent_except_for_indirect() {
        let prog_unavail = words(&[9, 1, 0, 0, 0, 1]);
        assert_eq!(
            forward(ForwardKind::Callit, "a").complete(&prog_unavail),
            None
        );
        let ind = forward(ForwardKind::Indirect, "a").complete(&prog_unavail);
        assert_eq!(ind, Some(words(&[0xabcd, 1, 0, 0, 0, 5])));
        assert_eq!(forward(ForwardKind::Callit, "a").complete(b"junk"), None);
    }

    #[test]
    fn the_call_keeps_auth_sys_and_drops_other_credentials() {
        let sys_body = words(&[1, 0, 0, 0, 0]);
        let sys = OpaqueAuth {
            flavor: AuthFlavor::SYS,
            body: &sys_body,
        };
        let call = forwarded_call(&sys, Program(7), Version(2), Procedure(3), &[1, 2, 3, 4]);
        let mut want = words(&[0, 0, 2, 7, 2, 3, 1, 20, 1, 0, 0, 0, 0, 0, 0]);
        want.extend([1, 2, 3, 4]);
        assert_eq!(call, want);
        let other = OpaqueAuth {
            flavor: AuthFlavor(9),
            body: &[],
        };
        let call = forwarded_call(&other, Program(7), Version(2), Procedure(3), &[]);
        assert_eq!(call, words(&[0, 0, 2, 7, 2, 3, 0, 0, 0, 0]));
    }
}
