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
    #[cfg(test)]
    pub fn handle(&self, record: &[u8]) -> Option<AllocReply> {
        self.handle_with_ticket(record).map(|(reply, _)| reply)
    }

    /// [`handle`](Self::handle), returning once what the call changed in
    /// the registry is durable (`-w`), as for a SET.
    pub async fn handle_durable(&self, record: &[u8]) -> Option<AllocReply> {
        let (reply, ticket) = self.handle_with_ticket(record)?;
        self.shared.wait_durable(ticket).await;
        Some(reply)
    }

    fn handle_with_ticket(&self, record: &[u8]) -> Option<(AllocReply, Option<u64>)> {
        // Binding, /proc and the fsync of the state block run inline: the
        // daemon is one thread (like C), and each takes microseconds to a
        // millisecond (see BENCHMARKS.md, allocation rates).
        self.handle_now(record)
    }

    fn handle_now(&self, record: &[u8]) -> Option<(AllocReply, Option<u64>)> {
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
            return Some(((refusal(xid, mismatch), None), None));
        }
        let svc = &self.service;
        let peer = &self.peer;
        let mut ticket = None;
        let reply = match call.procedure {
            PA_NULL => (success(xid, &Void), None),
            PA_ALLOC => match AllocArgs::decode(&mut r) {
                Ok(args) => {
                    let (res, fd, t) = svc.alloc(&args, peer, &self.shared);
                    ticket = t;
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
                Ok(args) => {
                    let (status, t) = svc.release(&args, peer, &self.shared);
                    ticket = t;
                    (success(xid, &status), None)
                }
                Err(_) => garbage(xid),
            },
            PA_LIST => (success(xid, &svc.list()), None),
            PA_RELEASE_NAME => match NameArg::decode(&mut r) {
                Ok(NameArg(name)) => (success(xid, &svc.release_name(name, peer)), None),
                Err(_) => garbage(xid),
            },
            _ => (refusal(xid, AcceptedReply::ProcUnavail), None),
        };
        Some((reply, ticket))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alloc::Options;
    use proto::alloc::{AllocRes, PaList, PaStatus, Socktype};
    use proto::engine::{Engine, EngineConfig};
    use proto::rpc::{Procedure, ReplyBody, Version};

    /// A service with one reservation (never bound here: the service is
    /// switched off or the test makes no ALLOC) and a connection to it.
    fn conn(enabled: bool) -> (Conn, std::os::unix::net::UnixStream) {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("alloc-dispatch-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("policy.toml");
        std::fs::write(&config, format!("[allocation]\nenabled = {enabled}\n")).unwrap();
        let svc = Service::start(&Options {
            policy_config: Some(config),
            state_path: Some(dir.join("state")),
            sweep: None,
        })
        .unwrap();
        // Read and not written (nothing changes in these tests).
        std::fs::remove_dir_all(&dir).unwrap();
        let shared = Arc::new(Shared::new(
            Engine::new(EngineConfig::default()),
            None,
            false,
        ));
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        (Conn::new(Arc::new(svc), shared, &a).unwrap(), b)
    }

    fn call(version: u32, procedure: Procedure, args: &dyn Encode) -> Vec<u8> {
        let mut w = XdrWriter::new();
        CallHeader::new(7, PORTALLOC_PROG, Version(version), procedure).encode(&mut w);
        args.encode(&mut w);
        w.into_bytes()
    }

    /// The accepted reply and its results.
    fn answer(conn: &Conn, record: &[u8]) -> (AcceptedReply<'static>, Vec<u8>) {
        let (bytes, fd) = conn.handle(record).expect("a PORTALLOC reply");
        assert!(fd.is_none());
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        let reply = Reply::decode(&mut XdrReader::new(bytes)).unwrap();
        assert_eq!(reply.xid, 7);
        let ReplyBody::Accepted { reply, .. } = reply.body else {
            panic!("denied: {reply:?}")
        };
        let results = match reply {
            AcceptedReply::Success(r) => r.to_vec(),
            _ => Vec::new(),
        };
        (reply, results)
    }

    #[test]
    fn errors_of_the_call_itself() {
        let (c, _peer) = conn(true);
        let (r, _) = answer(&c, &call(2, PA_NULL, &Void));
        assert_eq!(
            r,
            AcceptedReply::ProgMismatch {
                low: PORTALLOC_VERS,
                high: PORTALLOC_VERS
            }
        );
        assert_eq!(
            answer(&c, &call(1, Procedure(6), &Void)).0,
            AcceptedReply::ProcUnavail
        );
        let (r, _) = answer(&c, &call(1, PA_ALLOC, &Void));
        assert_eq!(r, AcceptedReply::GarbageArgs);
        let mut other = XdrWriter::new();
        CallHeader::new(7, proto::rpc::Program(100000), Version(2), Procedure(0))
            .encode(&mut other);
        assert!(
            c.handle(other.as_bytes()).is_none(),
            "the portmapper's call"
        );
    }

    #[test]
    fn refusals_are_statuses() {
        let (c, _peer) = conn(true);
        let claim = ClaimArgs {
            name: "nosuch",
            socktype: Socktype::Stream,
        };
        let (_, res) = answer(&c, &call(1, PA_CLAIM, &claim));
        let res = AllocRes::decode(&mut XdrReader::new(&res)).unwrap();
        assert_eq!(res.status(), PaStatus::NO_SUCH_NAME);
        let (_, res) = answer(&c, &call(1, PA_RELEASE, &ReleaseArgs::Lease(99)));
        let status = PaStatus::decode(&mut XdrReader::new(&res)).unwrap();
        assert_eq!(status, PaStatus::BAD_REQUEST);
        let (_, res) = answer(&c, &call(1, PA_LIST, &Void));
        assert_eq!(PaList::decode(&mut XdrReader::new(&res)).unwrap().0, []);
    }

    #[test]
    fn switched_off_it_says_so() {
        let (c, _peer) = conn(false);
        let args = AllocArgs::pool(proto::alloc::Family::Inet, Socktype::Stream);
        let (_, res) = answer(&c, &call(1, PA_ALLOC, &args));
        let res = AllocRes::decode(&mut XdrReader::new(&res)).unwrap();
        assert_eq!(res.status(), PaStatus::DISABLED);
    }

    #[test]
    fn with_warm_start_an_alloc_replies_once_its_registration_is_on_disk() {
        let dir = std::env::temp_dir().join(format!("alloc-dispatch-ws-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let ws = dir.join("ws");
        std::fs::create_dir_all(&ws).unwrap();
        let config = dir.join("policy.toml");
        let policy =
            "mode = \"high\"\nhigh_range = \"24100-24139\"\n[allocation]\nenabled = true\n";
        std::fs::write(&config, policy).unwrap();
        let svc = Service::start(&Options {
            policy_config: Some(config),
            state_path: Some(dir.join("state")),
            sweep: None,
        })
        .unwrap();
        let mut engine = Engine::new(EngineConfig::default());
        let persister = crate::warmstart::Persister::start(&ws, None, engine.registry()).unwrap();
        engine.registry_mut().record_changes();
        let shared = Arc::new(Shared::new(engine, None, false).with_warmstart(persister));
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let c = Conn::new(Arc::new(svc), shared, &a).unwrap();
        let args =
            AllocArgs::pool(proto::alloc::Family::Inet, Socktype::Dgram).register(0x2000_0999, 1);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let record = call(1, PA_ALLOC, &args);
        let (bytes, fd) = rt.block_on(c.handle_durable(&record)).unwrap();
        let reply = Reply::decode(&mut XdrReader::new(&bytes)).unwrap();
        let ReplyBody::Accepted {
            reply: AcceptedReply::Success(res),
            ..
        } = reply.body
        else {
            panic!("not a success: {reply:?}")
        };
        let res = AllocRes::decode(&mut XdrReader::new(res)).unwrap();
        assert_eq!(res.status(), PaStatus::OK, "{res:?}");
        assert!(fd.is_some(), "a socket passed");
        // As after kill -9 right after the reply: no shutdown, no flush.
        let saved = crate::warmstart::load(&ws).expect("the journal");
        assert!(
            saved.iter().any(|r| r.program.0 == 0x2000_0999),
            "the registration is durable before the reply"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
