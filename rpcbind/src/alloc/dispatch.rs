//! One local connection's view of the allocation service: recognises
//! calls to PORTALLOC (RFC 5531 section 9 call header), decodes their
//! arguments (`proto::alloc`), runs the procedure and encodes the reply.
//! Calls to other programs go to the engine. No I/O of its own.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use proto::alloc::{
    AllocArgs, ClaimArgs, NameArg, ReleaseArgs, PA_ALLOC, PA_CLAIM, PA_LIST, PA_NULL, PA_RELEASE,
    PA_RELEASE_NAME, PORTALLOC_PROG, PORTALLOC_VERS,
};
use proto::rpc::{encode_success_header, AcceptedReply, CallHeader, Reply, RPC_VERSION};
use proto::xdr::{Decode, Encode, XdrReader, XdrWriter};

use super::{Peer, Service};
use crate::server::Shared;

/// A reply record body and the descriptor to pass with it.
pub type AllocReply = (Vec<u8>, Option<OwnedFd>);

/// The service as one local connection sees it: its peer, taken when the
/// connection was accepted.
#[derive(Debug)]
pub struct Conn {
    peer: Peer,
    service: Arc<Service>,
    shared: Arc<Shared>,
}

impl Conn {
    /// For a connection just accepted on the local socket; `None` when the
    /// peer cannot be identified (its calls then go to the engine, which
    /// answers PROG_UNAVAIL).
    pub fn new(service: Arc<Service>, shared: Arc<Shared>, socket: &impl AsFd) -> Option<Conn> {
        Some(Conn {
            peer: Peer::of(socket)?,
            service,
            shared,
        })
    }

    /// The reply to `record` if it calls PORTALLOC; `None` for anything
    /// else (the engine's business, including undecodable headers and RPC
    /// versions other than 2, which it answers as for any program).
    pub fn handle(&self, record: &[u8]) -> Option<AllocReply> {
        // Binding, /proc and the fsync of the state block: on the
        // multi-threaded runtime, let the other tasks move to another
        // worker meanwhile.
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
                tokio::task::block_in_place(|| self.handle_now(record))
            }
            _ => self.handle_now(record),
        }
    }

    fn handle_now(&self, record: &[u8]) -> Option<AllocReply> {
        let mut r = XdrReader::new(record);
        let call = CallHeader::decode(&mut r).ok()?;
        if call.program != PORTALLOC_PROG || call.rpc_version != RPC_VERSION {
            return None;
        }
        let xid = call.xid;
        if call.version != PORTALLOC_VERS {
            let mismatch = AcceptedReply::ProgMismatch {
                low: PORTALLOC_VERS,
                high: PORTALLOC_VERS,
            };
            return Some((refusal(xid, mismatch), None));
        }
        let svc = &self.service;
        let peer = &self.peer;
        Some(match call.procedure {
            PA_NULL => (success(xid, &Void), None),
            PA_ALLOC => match AllocArgs::decode(&mut r) {
                Ok(args) => {
                    let (res, fd) = svc.alloc(&args, peer, &self.shared);
                    (success(xid, &res), fd)
                }
                Err(_) => garbage(xid),
            },
            PA_CLAIM => match ClaimArgs::decode(&mut r) {
                Ok(args) => {
                    let (res, fd) = svc.claim(&args, peer);
                    (success(xid, &res), fd)
                }
                Err(_) => garbage(xid),
            },
            PA_RELEASE => match ReleaseArgs::decode(&mut r) {
                Ok(args) => (success(xid, &svc.release(&args, peer, &self.shared)), None),
                Err(_) => garbage(xid),
            },
            PA_LIST => (success(xid, &svc.list()), None),
            PA_RELEASE_NAME => match NameArg::decode(&mut r) {
                Ok(NameArg(name)) => (success(xid, &svc.release_name(name, peer)), None),
                Err(_) => garbage(xid),
            },
            _ => (refusal(xid, AcceptedReply::ProcUnavail), None),
        })
    }
}

/// PA_NULL's void result.
struct Void;

impl Encode for Void {
    fn encode(&self, _w: &mut XdrWriter) {}
}

fn success(xid: u32, results: &dyn Encode) -> Vec<u8> {
    let mut w = XdrWriter::new();
    encode_success_header(xid, &mut w);
    results.encode(&mut w);
    w.into_bytes()
}

fn refusal(xid: u32, reply: AcceptedReply<'_>) -> Vec<u8> {
    let mut w = XdrWriter::new();
    Reply::accepted(xid, reply).encode(&mut w);
    w.into_bytes()
}

fn garbage(xid: u32) -> AllocReply {
    (refusal(xid, AcceptedReply::GarbageArgs), None)
}
