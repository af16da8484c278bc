//! The rpcbind engine: the registry of `(program, version, netid) -> address`
//! mappings and the dispatcher that answers PMAP v2 (RFC 1833 section 3 /
//! RFC 1057 appendix A) and RPCBIND v3/v4 (RFC 1833 section 2) calls.
//!
//! No I/O: request bytes, what the transport knows ([`RequestContext`]) and
//! the current time come in; reply bytes or "no reply" come out. The rules
//! this engine follows, each with the C rpcbind 1.2.6 behaviour or RFC
//! section it reproduces and the test that checks it, are listed in
//! `proto/RULES.md`.
//!
//! # Listener order
//! The daemon calls [`Engine::register_own`] once per listener, in the order
//! the C daemon sets its transports up: `local` first, then the visible
//! `/etc/netconfig` entries `udp`, `tcp`, `udp6`, `tcp6`. Like C's
//! `rbllist_add`, each call prepends, so DUMP lists them in reverse
//! (`tcp6`, `udp6`, `tcp`, `udp`, `local`, versions 4, 3, 2), exactly as
//! the C daemon's DUMP shows.
//!
//! # Files
//! `registry` (the lists and their indexes), `access` (local-caller rule
//! and owners), `merge` (address merging), `stats` (GETSTAT), `pmap` (PMAP
//! v2), `rpcbind` (v3/v4), `remote` (CALLIT, INDIRECT, BCAST), `forward`
//! (the forwarded call and its reply, `-r`), `registry/changes` (the
//! change log that warm start journals).

mod access;
mod forward;
mod list;
mod merge;
mod pmap;
mod registry;
mod remote;
mod rpcbind;
mod stats;

pub use forward::{Forward, ForwardKind};
pub use merge::Interface;
pub use registry::{Change, PmapEntry, Registration, RegistrationRef, Registry};
pub use stats::STAT_LIST_CAP;

use std::net::SocketAddr;
use std::time::SystemTime;

use crate::rpc::{
    AcceptedReply, AuthFlavor, AuthStat, CallHeader, OpaqueAuth, Procedure, Program, RejectedReply,
    Reply, Version, RPC_VERSION,
};
use crate::rpcb::{PMAPVERS, RPCBVERS, RPCBVERS4};
use crate::xdr::{Encode, XdrReader, XdrWriter};

/// libtirpc's UDP buffer (`UDPMSGSIZE`): the largest reply C can send
/// over UDP.
pub const UDP_MSG_SIZE: usize = 8800;

/// A transport the daemon serves, named by its netconfig netid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// `udp`: UDP over IPv4.
    Udp,
    /// `tcp`: TCP over IPv4.
    Tcp,
    /// `udp6`: UDP over IPv6.
    Udp6,
    /// `tcp6`: TCP over IPv6.
    Tcp6,
    /// `local`: the AF_LOCAL stream socket (`/run/rpcbind.sock`).
    Local,
}

impl Transport {
    /// The netconfig netid of this transport.
    pub fn netid(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Udp6 => "udp6",
            Transport::Tcp6 => "tcp6",
            Transport::Local => "local",
        }
    }

    /// The transport named by a netconfig netid (`unix` is an alias of
    /// `local` in `/etc/netconfig`).
    pub fn from_netid(s: &str) -> Option<Self> {
        match s {
            "udp" => Some(Transport::Udp),
            "tcp" => Some(Transport::Tcp),
            "udp6" => Some(Transport::Udp6),
            "tcp6" => Some(Transport::Tcp6),
            "local" | "unix" => Some(Transport::Local),
            _ => None,
        }
    }

    /// Whether requests on this transport arrive as datagrams.
    pub fn is_datagram(self) -> bool {
        matches!(self, Transport::Udp | Transport::Udp6)
    }
}

/// What the transport knows about one request.
#[derive(Clone, Debug)]
pub struct RequestContext {
    /// The transport the request arrived on.
    pub transport: Transport,
    /// The caller's address; `None` on the local socket.
    pub peer: Option<SocketAddr>,
    /// The local address the caller reached (IP_PKTINFO for UDP,
    /// getsockname for TCP); `None` when unknown or on the local socket.
    pub local: Option<SocketAddr>,
    /// The caller's uid from SO_PEERCRED on the local socket.
    pub peer_uid: Option<u32>,
}

/// The daemon's switches that change the engine's answers.
#[derive(Clone, Debug, Default)]
pub struct EngineConfig {
    /// `-i`: accept SET/UNSET from non-local transports.
    pub insecure: bool,
    /// `-r`: forward remote calls (CALLIT, INDIRECT, BCAST) received over
    /// UDP: the engine answers [`Outcome::Forward`].
    pub remote_calls: bool,
    /// Count only the AF_LOCAL socket as local for SET/UNSET, as newer
    /// upstream rpcbind does without its `-L`. `false` (the default) is
    /// Debian's 1.2.6, which has no `-L` and also accepts callers from
    /// exactly 127.0.0.1 and ::1 (see `proto/RULES.md`).
    pub local_socket_only: bool,
}

/// What the driver must do with one request.
#[non_exhaustive]
#[derive(Debug)]
pub enum Outcome {
    /// Send these bytes back to the caller (one RPC message, no record mark).
    Reply(Vec<u8>),
    /// Send nothing.
    NoReply,
    /// Send nothing and, on a stream transport, close the connection: the
    /// message was not a decodable CALL (libtirpc marks the stream dead).
    /// On a datagram transport this is the same as `NoReply`.
    Close,
    /// Forward a remote call (`-r`): send [`Forward::call`] to the
    /// service, and the caller [`Forward::complete`] of its reply.
    Forward(Box<Forward>),
}

/// The reflection cap (issue 5, not in C): a UDP reply to a caller that
/// is not on loopback may be at most `factor` times the size of its
/// request, so that the daemon cannot amplify spoofed traffic (DUMP and
/// GETSTAT are the vectors). A larger reply becomes SYSTEM_ERR with the
/// same xid, which clients report (or retry over TCP). `factor` 0 turns
/// the cap off; loopback callers are never capped.
pub fn cap_udp_reply(reply: Vec<u8>, request_len: usize, peer: SocketAddr, factor: u32) -> Vec<u8> {
    let limit = request_len.saturating_mul(factor as usize);
    if factor == 0 || reply.len() <= limit || is_loopback(peer) {
        return reply;
    }
    match reply.first_chunk::<4>() {
        Some(xid) => Reply::accepted(u32::from_be_bytes(*xid), AcceptedReply::SystemErr).to_xdr(),
        None => reply,
    }
}

fn is_loopback(peer: SocketAddr) -> bool {
    match peer.ip() {
        std::net::IpAddr::V4(a) => a.is_loopback(),
        std::net::IpAddr::V6(a) => {
            a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// The rpcbind engine: the registry, the statistics and the dispatcher.
#[derive(Clone, Debug)]
pub struct Engine {
    config: EngineConfig,
    registry: Registry,
    stats: stats::Stats,
    interfaces: Vec<Interface>,
    /// The transports passed to `register_own` (C's `rpcbind_get_conf`).
    transports: Vec<Transport>,
}

/// One decoded call on its way through the dispatcher.
#[derive(Debug)]
struct Call<'a> {
    xid: u32,
    version: Version,
    procedure: Procedure,
    credential: OpaqueAuth<'a>,
    args: &'a [u8],
    now: SystemTime,
}

impl Call<'_> {
    /// An accepted SUCCESS reply whose results `body` writes straight
    /// after the header, into the same buffer.
    fn success(&self, body: impl FnOnce(&mut XdrWriter)) -> Outcome {
        let mut w = XdrWriter::with_capacity(64);
        crate::rpc::encode_success_header(self.xid, &mut w);
        body(&mut w);
        Outcome::Reply(w.into_bytes())
    }

    fn accepted(&self, reply: AcceptedReply<'_>) -> Outcome {
        Outcome::Reply(Reply::accepted(self.xid, reply).to_xdr())
    }

    fn auth_error(&self, stat: AuthStat) -> Outcome {
        auth_error(self.xid, stat)
    }
}

fn auth_error(xid: u32, stat: AuthStat) -> Outcome {
    Outcome::Reply(Reply::denied(xid, RejectedReply::AuthError(stat)).to_xdr())
}

/// libtirpc `_authenticate`: AUTH_NONE passes, AUTH_SYS passes when its
/// body decodes (`_svcauth_unix`), RPCSEC_GSS is refused as `_svcauth_gss`
/// refuses it in a daemon without GSS credentials or contexts, anything
/// else is AUTH_REJECTEDCRED. The verifier is not checked.
fn authenticate(cred: &OpaqueAuth<'_>) -> Result<(), AuthStat> {
    match cred.flavor {
        AuthFlavor::NONE => Ok(()),
        AuthFlavor::SYS => auth_sys_body_ok(cred.body)
            .then_some(())
            .ok_or(AuthStat::BADCRED),
        AuthFlavor::RPCSEC_GSS => Err(rpcsec_gss_refusal(cred.body)),
        _ => Err(AuthStat::REJECTEDCRED),
    }
}

/// `_svcauth_gss` (RFC 2203 section 5): a credential that does not decode,
/// of another version or with an unknown service is AUTH_BADCRED; context
/// creation (INIT, CONTINUE_INIT) fails with AUTH_FAILED, DATA and DESTROY
/// name no known context (RPCSEC_GSS_CREDPROBLEM), other procedures are
/// AUTH_REJECTEDCRED. Observed against rpcbind 1.2.6 / libtirpc 1.3.3.
fn rpcsec_gss_refusal(body: &[u8]) -> AuthStat {
    let mut r = XdrReader::new(body);
    let fields = (r.u32(), r.u32(), r.u32(), r.u32());
    let (Ok(version), Ok(gss_proc), Ok(_seq), Ok(service)) = fields else {
        return AuthStat::BADCRED;
    };
    if r.opaque(crate::rpc::MAX_AUTH_BYTES).is_err() || version != 1 || !(1..=3).contains(&service)
    {
        return AuthStat::BADCRED;
    }
    match gss_proc {
        1 | 2 => AuthStat::FAILED,
        0 | 3 => AuthStat::RPCSEC_GSS_CREDPROBLEM,
        _ => AuthStat::REJECTEDCRED,
    }
}

/// `authsys_parms` (RFC 5531 appendix A) with libtirpc's limits: machine
/// name up to 255 bytes (any bytes), up to 16 groups; trailing bytes are
/// ignored.
fn auth_sys_body_ok(body: &[u8]) -> bool {
    let mut r = XdrReader::new(body);
    let ok = r.u32().is_ok() && r.opaque(crate::rpc::MAX_MACHINE_NAME).is_ok();
    let ok = ok && r.u32().is_ok() && r.u32().is_ok();
    match r.u32() {
        Ok(n) if ok && n <= crate::rpc::MAX_AUTH_SYS_GIDS => (0..n).all(|_| r.u32().is_ok()),
        _ => false,
    }
}

impl Engine {
    /// An engine with an empty registry that serves nothing until
    /// [`register_own`](Self::register_own) is called.
    pub fn new(config: EngineConfig) -> Self {
        Engine {
            config,
            registry: Registry::new(),
            stats: stats::Stats::default(),
            interfaces: Vec::new(),
            transports: Vec::new(),
        }
    }

    /// Creates the daemon's own registrations for one listener, as the C
    /// daemon's `init_transport` does: program 100000 versions 2, 3 and 4
    /// on `udp` and `tcp` (mirrored into the PMAP list), versions 3 and 4
    /// on `udp6`, `tcp6` and `local`, owner `superuser`, at the head of the
    /// lists. `uaddr` is the listener's universal address
    /// (`0.0.0.0.0.111`, `::.0.111`, `/run/rpcbind.sock`). Call once per
    /// listener, in the order given in the module documentation; a second
    /// call for the same transport adds nothing.
    pub fn register_own(&mut self, transport: Transport, uaddr: &str) {
        if !self.transports.contains(&transport) {
            self.transports.push(transport);
        }
        let versions: &[Version] = match transport {
            Transport::Udp | Transport::Tcp => &[PMAPVERS, RPCBVERS, RPCBVERS4],
            _ => &[RPCBVERS, RPCBVERS4],
        };
        for &v in versions {
            self.registry
                .set_front(Program::PORTMAP, v, transport.netid(), uaddr);
        }
    }

    /// The host's interface addresses (what `getifaddrs` returns), used to
    /// merge addresses as C's `addrmerge` does. Until this is called, the
    /// local address a request reached stands in for the interface.
    pub fn set_interfaces(&mut self, interfaces: Vec<Interface>) {
        self.interfaces = interfaces;
    }

    /// Answers one RPC message (without TCP record mark).
    pub fn handle(&mut self, request: &[u8], ctx: &RequestContext, now: SystemTime) -> Outcome {
        // svc_dg_recv drops datagrams shorter than four words.
        if ctx.transport.is_datagram() && request.len() < 16 {
            return Outcome::NoReply;
        }
        let mut r = XdrReader::new(request);
        let header = match CallHeader::decode(&mut r) {
            Ok(h) if h.rpc_version == RPC_VERSION => h,
            // RFC 5531 section 9: a call of another RPC version is answered
            // MSG_DENIED / RPC_MISMATCH with the versions we support. C
            // (libtirpc's xdr_callmsg) drops it silently and closes a
            // stream; this is a deliberate difference (RULES.md, rule 21).
            Ok(h) => {
                let mismatch = RejectedReply::RpcMismatch {
                    low: RPC_VERSION,
                    high: RPC_VERSION,
                };
                return Outcome::Reply(Reply::denied(h.xid, mismatch).to_xdr());
            }
            // libtirpc's xdr_callmsg refuses a non-CALL and a truncated
            // header alike: no reply, and a stream is marked dead.
            _ if ctx.transport.is_datagram() => return Outcome::NoReply,
            _ => return Outcome::Close,
        };
        if let Err(stat) = authenticate(&header.credential) {
            return auth_error(header.xid, stat);
        }
        let call = Call {
            xid: header.xid,
            version: header.version,
            procedure: header.procedure,
            credential: header.credential,
            args: r.rest(),
            now,
        };
        if header.program != Program::PORTMAP || self.transports.is_empty() {
            return call.accepted(AcceptedReply::ProgUnavail);
        }
        let outcome = match header.version {
            PMAPVERS => self.pmap_v2(&call, ctx),
            RPCBVERS | RPCBVERS4 => self.rpcbind(&call, ctx),
            _ => call.accepted(AcceptedReply::ProgMismatch {
                low: PMAPVERS,
                high: RPCBVERS4,
            }),
        };
        match outcome {
            Outcome::Reply(r) if ctx.transport.is_datagram() && r.len() > UDP_MSG_SIZE => {
                // svc_dg cannot encode it: PMAP ignores the failure (no
                // reply), RPCBIND v3/v4 answer SYSTEM_ERR instead.
                if header.version == PMAPVERS {
                    Outcome::NoReply
                } else {
                    call.accepted(AcceptedReply::SystemErr)
                }
            }
            other => other,
        }
    }

    /// The registry, read-only (warm start, status).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The registry, for warm start and lease expiry.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// The GETSTAT reply body (`rpcb_stat_byvers`) as it stands.
    pub fn stats_xdr(&self) -> Vec<u8> {
        let mut w = XdrWriter::new();
        self.stats.encode(&mut w);
        w.into_bytes()
    }

    /// C `rpcbind_get_conf(netid) != NULL`.
    fn has_transport(&self, netid: &str) -> bool {
        self.transport_of(netid).is_some()
    }

    /// The served transport named exactly `netid`.
    fn transport_of(&self, netid: &str) -> Option<Transport> {
        self.transports.iter().copied().find(|t| t.netid() == netid)
    }
}
