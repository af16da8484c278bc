//! The shim's decisions, pure: whether an intercepted call is served by the
//! allocation service or falls back to the real function, what to ask the
//! service for, whether the socket that came back may replace the caller's,
//! and which descriptor flags to restore. No I/O; the facts about sockets
//! come in as values read by `sys`. Implements no RFC (the request follows
//! proto/alloc.x, `pa_alloc_args`).

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use proto::alloc::{Family, Socktype};

/// Which intercepted call is being served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// `bindresvport()` / `bindresvport_sa()`: a privileged pool port.
    Resv,
    /// `bind()` to port 0 in the opt-in mode: any pool port, not listening.
    Bind0,
}

/// What `sys` read about a socket descriptor (SO_DOMAIN, SO_TYPE,
/// SO_PROTOCOL, the port `getsockname()` reports, IPV6_V6ONLY).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockInfo {
    pub domain: i32,
    pub socktype: i32,
    pub protocol: i32,
    /// 0 while the socket is not bound (bind, connect and listen all bind).
    pub bound_port: u16,
    /// IPV6_V6ONLY; false for AF_INET sockets.
    pub v6only: bool,
}

/// The address the caller passed: `sin`/`sa`/`bind()`'s argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requested {
    /// `bindresvport(sd, NULL)`: the socket's own family, wildcard address.
    Null,
    Addr(SocketAddr),
    /// A family the shim does not serve (or a truncated address).
    Other(i32),
}

/// What the shim asks the allocation service for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    pub family: Family,
    pub socktype: Socktype,
    /// `None`: the wildcard address ("" on the wire).
    pub addr: Option<IpAddr>,
    /// PA_PRIVILEGED (true) or PA_POOL.
    pub privileged: bool,
    /// PA_NO_LISTEN: stream sockets stay bound, not listening (always, for
    /// stream sockets: the program decides whether to connect or listen).
    pub no_listen: bool,
}

/// Why a call goes to the real function instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fallback {
    /// getsockopt/getsockname failed: not a socket, or a bad descriptor.
    NotASocket,
    NotInet(i32),
    UnsupportedType(i32),
    /// SCTP, UDP-Lite and the like: the service hands out tcp and udp only.
    UnsupportedProtocol(i32),
    AlreadyBound(u16),
    /// The address's family differs from the socket's.
    FamilyMismatch {
        socket: i32,
        addr: i32,
    },
    /// A link-local address with a scope id: numeric text would lose it.
    ScopedAddress,
    /// `bind()` of anything but an inet/inet6 address with port 0: not the
    /// shim's business (and not logged).
    NotPortZero,
    /// An AF_INET6 socket without IPV6_V6ONLY wants IPv4 too; the service's
    /// sockets are v6-only.
    DualStack,
    /// The service could not be reached, refused, or failed.
    Service,
    /// The received socket is not what the caller's was.
    Mismatch(Mismatch),
    /// A system call on the caller's descriptor failed.
    System,
    /// A panic was caught.
    Panic,
}

/// How a received socket differs from the caller's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mismatch {
    Domain,
    Type,
    Protocol,
    /// Bound to another port than the grant names (or not bound).
    Port,
    /// A port at or above 1024 for a `bindresvport()` caller.
    NotPrivileged,
}

/// The protocol the service's sockets of `socktype` carry.
pub fn expected_protocol(socktype: Socktype) -> i32 {
    match socktype {
        Socktype::Stream => libc::IPPROTO_TCP,
        Socktype::Dgram => libc::IPPROTO_UDP,
    }
}

/// The `pa_family` of an AF_* value, if the service serves it.
pub fn family_of(domain: i32) -> Option<Family> {
    match domain {
        libc::AF_INET => Some(Family::Inet),
        libc::AF_INET6 => Some(Family::Inet6),
        _ => None,
    }
}

/// The `pa_socktype` of a SOCK_* value (SO_TYPE carries no flags).
pub fn socktype_of(socktype: i32) -> Option<Socktype> {
    match socktype {
        libc::SOCK_STREAM => Some(Socktype::Stream),
        libc::SOCK_DGRAM => Some(Socktype::Dgram),
        _ => None,
    }
}

/// Whether `call` on a socket described by `info`, with `requested`, is
/// served from the pool, and with which request.
pub fn decide(call: Call, info: &SockInfo, requested: Requested) -> Result<Request, Fallback> {
    let family = family_of(info.domain).ok_or(Fallback::NotInet(info.domain))?;
    let socktype = socktype_of(info.socktype).ok_or(Fallback::UnsupportedType(info.socktype))?;
    if info.protocol != expected_protocol(socktype) {
        return Err(Fallback::UnsupportedProtocol(info.protocol));
    }
    if info.bound_port != 0 {
        return Err(Fallback::AlreadyBound(info.bound_port));
    }
    let addr = requested_addr(call, info.domain, requested)?;
    if call == Call::Bind0 && family == Family::Inet6 && !info.v6only {
        return Err(Fallback::DualStack);
    }
    Ok(Request {
        family,
        socktype,
        addr,
        privileged: call == Call::Resv,
        // Never listening: a bindresvport() socket is usually a client's,
        // which connect()s; a server's (svc_tli_create's, or a port-0
        // bind) is listened on by the program itself.
        no_listen: socktype == Socktype::Stream,
    })
}

/// The bind address to ask for: `None` for the wildcard.
fn requested_addr(
    call: Call,
    domain: i32,
    requested: Requested,
) -> Result<Option<IpAddr>, Fallback> {
    let sa = match requested {
        // bind() always has an address; NULL is bindresvport's wildcard.
        Requested::Null if call == Call::Resv => return Ok(None),
        Requested::Null => return Err(Fallback::NotPortZero),
        Requested::Other(f) => {
            return Err(Fallback::FamilyMismatch {
                socket: domain,
                addr: f,
            })
        }
        Requested::Addr(sa) => sa,
    };
    let addr_family = if sa.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    if addr_family != domain {
        return Err(Fallback::FamilyMismatch {
            socket: domain,
            addr: addr_family,
        });
    }
    if let SocketAddr::V6(v6) = sa {
        if v6.scope_id() != 0 {
            return Err(Fallback::ScopedAddress);
        }
    }
    // bindresvport() ignores the port it is given; bind() is ours only at 0.
    if call == Call::Bind0 && sa.port() != 0 {
        return Err(Fallback::NotPortZero);
    }
    Ok((!sa.ip().is_unspecified()).then_some(sa.ip()))
}

/// Whether the received socket may replace the caller's: same domain, type
/// and protocol, bound to the granted port, privileged for `Call::Resv`.
pub fn check_received(
    call: Call,
    caller: &SockInfo,
    received: &SockInfo,
    port: u16,
) -> Result<(), Mismatch> {
    if received.domain != caller.domain {
        return Err(Mismatch::Domain);
    }
    if received.socktype != caller.socktype {
        return Err(Mismatch::Type);
    }
    if received.protocol != caller.protocol {
        return Err(Mismatch::Protocol);
    }
    if port == 0 || received.bound_port != port {
        return Err(Mismatch::Port);
    }
    if call == Call::Resv && port >= 1024 {
        return Err(Mismatch::NotPrivileged);
    }
    Ok(())
}

/// The caller's descriptor flags, to carry over to the socket put in its
/// place: O_NONBLOCK lives in the open file description (the received
/// socket has its own), FD_CLOEXEC in the descriptor (set by dup3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdFlags {
    /// F_GETFL of the caller's descriptor.
    pub status: i32,
    /// F_GETFD of the caller's descriptor.
    pub fd: i32,
}

impl FdFlags {
    /// The `flags` argument of `dup3()`.
    pub fn dup3_flags(&self) -> i32 {
        if self.fd & libc::FD_CLOEXEC != 0 {
            libc::O_CLOEXEC
        } else {
            0
        }
    }

    /// F_SETFL value for the received socket (whose F_GETFL is `received`):
    /// its own flags with the caller's O_NONBLOCK.
    pub fn status_for(&self, received: i32) -> i32 {
        (received & !libc::O_NONBLOCK) | (self.status & libc::O_NONBLOCK)
    }
}

impl fmt::Display for Fallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotASocket => f.write_str("not a socket"),
            Self::NotInet(d) => write!(f, "socket family {d} is not inet/inet6"),
            Self::UnsupportedType(t) => write!(f, "socket type {t} is not stream/dgram"),
            Self::UnsupportedProtocol(p) => write!(f, "protocol {p} is not tcp/udp"),
            Self::AlreadyBound(p) => write!(f, "already bound to port {p}"),
            Self::FamilyMismatch { socket, addr } => {
                write!(f, "address family {addr} on a family {socket} socket")
            }
            Self::ScopedAddress => f.write_str("scoped IPv6 address"),
            Self::NotPortZero => f.write_str("not an inet bind to port 0"),
            Self::DualStack => f.write_str("IPv6 socket without IPV6_V6ONLY"),
            Self::Service => f.write_str("allocation service unavailable or refused"),
            Self::Mismatch(m) => write!(f, "received socket differs: {m:?}"),
            Self::System => f.write_str("system call on the caller's descriptor failed"),
            Self::Panic => f.write_str("internal panic caught"),
        }
    }
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
