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
//! the C daemon creates its transports from `/etc/netconfig`: `udp`, `tcp`,
//! `udp6`, `tcp6`, `local`. The DUMP order of the daemon's own registrations
//! follows that call order.

mod list;
mod registry;

pub use registry::{PmapEntry, Registration, Registry};

use std::net::SocketAddr;
use std::time::SystemTime;

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
    /// `-r`: forward remote calls (CALLIT, INDIRECT, BCAST).
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
}

/// The rpcbind engine: the registry, the statistics and the dispatcher.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    registry: Registry,
}

impl Engine {
    /// An engine with an empty registry.
    pub fn new(config: EngineConfig) -> Self {
        Engine {
            config,
            registry: Registry::new(),
        }
    }

    /// Creates the daemon's own registrations for one listener, as the C
    /// daemon does when it sets up that transport. `uaddr` is the
    /// listener's universal address (`0.0.0.0.0.111`, `::.0.111`,
    /// `/run/rpcbind.sock`). Call once per listener, in the order given in
    /// the module documentation.
    pub fn register_own(&mut self, transport: Transport, uaddr: &str) {
        let _ = (transport, uaddr, &self.config);
    }

    /// Answers one RPC call message (without TCP record mark).
    pub fn handle(&mut self, request: &[u8], ctx: &RequestContext, now: SystemTime) -> Outcome {
        let _ = (request, ctx, now);
        Outcome::NoReply
    }

    /// The registry, read-only (warm start, status).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The registry, for warm start and lease expiry.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }
}
