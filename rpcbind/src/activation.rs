//! systemd socket activation (sd_listen_fds(3)): the sockets a unit passes
//! through `LISTEN_FDS`/`LISTEN_PID`/`LISTEN_FDNAMES` are adopted in place
//! of binding, and whatever the unit did not pass is bound as usual, so
//! the [`Listeners`] set is the same either way. Does I/O (descriptors,
//! socket options).
//!
//! As the C rpcbind 1.2.x does, each passed socket is identified by what
//! it is (family from its bound address, SO_TYPE, the address itself),
//! never by position; `LISTEN_FDNAMES` is only used in messages. A passed
//! IPv6 socket that also accepts IPv4 (IPV6_V6ONLY off) is refused with
//! the C daemon's explanation, since the `udp`/`tcp` and `udp6`/`tcp6`
//! transports must be separate sockets. The environment is read and
//! removed in `main` before any thread exists.

use std::ffi::OsStr;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

use nix::sys::socket::{
    getsockname, getsockopt, listen, sockopt, AddressFamily, Backlog, SockType, SockaddrLike,
    SockaddrStorage,
};
use proto::engine::Transport;

use crate::listeners::{self, ListenConfig, Listeners, LocalListener, TcpListener, UdpListener};
use crate::sys;

/// The sockets systemd passed to this process (possibly none).
#[derive(Debug, Default)]
pub struct Passed {
    sockets: Vec<(OwnedFd, String)>,
}

/// The C daemon's words for a dual-stack socket (two syslog lines).
pub const DUAL_STACK_MESSAGE: &str = "systemd has passed an IPv4/IPv6 dual-mode socket.\n\
     Please fix your systemd config by specifying IPv4 and IPv6 sockets separately and using \
     BindIPv6Only=ipv6-only.";

/// Why passed sockets cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ActivationError {
    #[error("{DUAL_STACK_MESSAGE}")]
    DualStack,
    #[error("failed to acquire systemd sockets: {0}")]
    Acquire(io::Error),
    #[error("failed to query socket name: {0}")]
    Query(io::Error),
}

impl Passed {
    /// Reads and removes `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES`.
    /// The descriptors count only when `LISTEN_PID` is this process.
    /// Must be called before any thread starts (it changes the
    /// environment) and before anything opens a descriptor.
    pub fn take_from_env() -> Result<Passed, ActivationError> {
        let pid = std::env::var("LISTEN_PID").ok();
        let fds = std::env::var("LISTEN_FDS").ok();
        let names = std::env::var("LISTEN_FDNAMES").ok();
        for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
            std::env::remove_var(var);
        }
        let ours = pid.and_then(|p| p.trim().parse::<u32>().ok()) == Some(std::process::id());
        let count = match fds.map(|n| n.trim().parse::<usize>()) {
            Some(Ok(n)) if ours => n,
            Some(Err(e)) if ours => {
                return Err(ActivationError::Acquire(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("LISTEN_FDS: {e}"),
                )))
            }
            _ => 0,
        };
        let fds = sys::take_listen_fds(count).map_err(ActivationError::Acquire)?;
        let mut names = names.unwrap_or_default();
        if names.is_empty() {
            names = "unknown".to_owned();
        }
        let names = names
            .split(':')
            .map(str::to_owned)
            .chain(std::iter::repeat(String::new()));
        Ok(Passed {
            sockets: fds.into_iter().zip(names).collect(),
        })
    }

    /// Whether systemd passed anything.
    pub fn is_empty(&self) -> bool {
        self.sockets.is_empty()
    }

    /// Takes out the sockets whose name starts with `prefix` (sockets
    /// of the descriptor store, not listeners), with their names.
    pub fn take_named(&mut self, prefix: &str) -> Vec<(String, OwnedFd)> {
        let (named, rest) = std::mem::take(&mut self.sockets)
            .into_iter()
            .partition(|(_, name)| name.starts_with(prefix));
        self.sockets = rest;
        named.into_iter().map(|(fd, name)| (name, fd)).collect()
    }

    /// How many sockets were passed.
    pub fn len(&self) -> usize {
        self.sockets.len()
    }
}

/// What a passed socket turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// An AF_UNIX stream socket bound to a path.
    Local(PathBuf),
    /// An AF_UNIX stream socket with an abstract name (without the NUL).
    Abstract(Vec<u8>),
    /// An IP socket of one of the four transports.
    Ip(Transport, SocketAddr),
    /// Anything else, described for the log.
    Other(String),
}

/// Identifies one socket by family, type and bound address.
pub fn classify(fd: &impl AsFd) -> Result<Kind, ActivationError> {
    let query = |e: nix::Error| ActivationError::Query(e.into());
    let addr: SockaddrStorage = getsockname(fd.as_fd().as_raw_fd()).map_err(query)?;
    let ty = getsockopt(fd, sockopt::SockType).map_err(query)?;
    let family = addr.family();
    if family == Some(AddressFamily::Inet6)
        && !getsockopt(fd, sockopt::Ipv6V6Only).map_err(query)?
    {
        return Err(ActivationError::DualStack);
    }
    let kind = match (family, ty) {
        (Some(AddressFamily::Unix), SockType::Stream) => unix_kind(&addr),
        (Some(AddressFamily::Inet), SockType::Datagram) => ip_kind(Transport::Udp, &addr),
        (Some(AddressFamily::Inet), SockType::Stream) => ip_kind(Transport::Tcp, &addr),
        (Some(AddressFamily::Inet6), SockType::Datagram) => ip_kind(Transport::Udp6, &addr),
        (Some(AddressFamily::Inet6), SockType::Stream) => ip_kind(Transport::Tcp6, &addr),
        (f, t) => Kind::Other(format!("{f:?} {t:?}")),
    };
    Ok(kind)
}

fn unix_kind(addr: &SockaddrStorage) -> Kind {
    let Some(un) = addr.as_unix_addr() else {
        return Kind::Other("unix socket without address".to_owned());
    };
    if let Some(path) = un.path() {
        return Kind::Local(path.to_owned());
    }
    match un.as_abstract() {
        Some(name) => Kind::Abstract(name.to_vec()),
        None => Kind::Other("unnamed unix socket".to_owned()),
    }
}

fn ip_kind(transport: Transport, addr: &SockaddrStorage) -> Kind {
    let sa = if let Some(v4) = addr.as_sockaddr_in() {
        SocketAddr::V4((*v4).into())
    } else if let Some(v6) = addr.as_sockaddr_in6() {
        SocketAddr::V6((*v6).into())
    } else {
        return Kind::Other(format!("{} without an IP address", transport.netid()));
    };
    Kind::Ip(transport, sa)
}

/// The listener set: the passed sockets that fit, in the C daemon's
/// order (local, the netconfig IP transports, then the abstract socket),
/// and freshly bound sockets for every transport the unit did not cover.
/// Passed sockets that fit nothing are logged and closed.
pub fn listeners(passed: Passed, cfg: &ListenConfig) -> anyhow::Result<Listeners> {
    let mut sorted: Vec<(Kind, OwnedFd, String)> = Vec::new();
    for (fd, name) in passed.sockets {
        let kind = classify(&fd)?;
        tracing::debug!("systemd passed {name:?}: {kind:?}");
        sorted.push((kind, fd, name));
    }
    let mut l = Listeners::default();
    adopt_local(&mut l, &mut sorted, cfg)?;
    for &transport in &cfg.ip_transports {
        let taken = take(
            &mut sorted,
            |k| matches!(k, Kind::Ip(t, _) if *t == transport),
        );
        if taken.is_empty() {
            listeners::bind_transport(&mut l, transport, cfg);
            continue;
        }
        let mut last = None;
        for (kind, fd, _) in taken {
            if let Kind::Ip(_, addr) = kind {
                adopt_ip(&mut l, transport, fd)?;
                last = Some(addr);
            }
        }
        if let Some(addr) = last {
            l.own.push((transport, proto::uaddr::format_inet(&addr)));
        }
    }
    adopt_abstract(&mut l, &mut sorted, cfg)?;
    for (kind, _, name) in sorted {
        tracing::warn!(
            "ignoring a socket systemd passed ({name}): {kind:?} is not an rpcbind transport"
        );
    }
    if l.is_empty() {
        anyhow::bail!("no listener could be bound");
    }
    Ok(l)
}

type Entry = (Kind, OwnedFd, String);

fn take(from: &mut Vec<Entry>, pred: impl Fn(&Kind) -> bool) -> Vec<Entry> {
    let (taken, rest): (Vec<Entry>, Vec<Entry>) = from.drain(..).partition(|(k, _, _)| pred(k));
    *from = rest;
    taken
}

fn adopt_local(l: &mut Listeners, sorted: &mut Vec<Entry>, cfg: &ListenConfig) -> io::Result<()> {
    let taken = take(sorted, |k| matches!(k, Kind::Local(_)));
    if taken.is_empty() {
        listeners::bind_local(l, cfg);
        return Ok(());
    }
    for (kind, fd, _) in taken {
        if let Kind::Local(path) = kind {
            l.own.push((Transport::Local, path.display().to_string()));
            // The unit owns the file: systemd removes it, not us.
            l.local.push(LocalListener {
                path: None,
                listener: stream_listener(fd)?.into(),
            });
        }
    }
    Ok(())
}

fn adopt_abstract(
    l: &mut Listeners,
    sorted: &mut Vec<Entry>,
    cfg: &ListenConfig,
) -> io::Result<()> {
    let Some(name) = &cfg.abstract_name else {
        return Ok(());
    };
    let wanted = name.as_bytes().to_vec();
    let taken = take(sorted, |k| matches!(k, Kind::Abstract(n) if *n == wanted));
    if taken.is_empty() {
        listeners::bind_abstract(l, name);
        return Ok(());
    }
    for (_, fd, _) in taken {
        let listener: UnixListener = stream_listener(fd)?.into();
        l.local.push(LocalListener {
            path: None,
            listener,
        });
    }
    tracing::debug!(
        "abstract socket @{} passed by systemd",
        OsStr::from_bytes(&wanted).to_string_lossy()
    );
    Ok(())
}

/// A passed stream socket, listening and non-blocking.
fn stream_listener(fd: OwnedFd) -> io::Result<OwnedFd> {
    if !getsockopt(&fd, sockopt::AcceptConn)? {
        listen(&fd, Backlog::MAXCONN)?;
    }
    socket2::SockRef::from(&fd).set_nonblocking(true)?;
    Ok(fd)
}

fn adopt_ip(l: &mut Listeners, transport: Transport, fd: OwnedFd) -> io::Result<()> {
    if transport.is_datagram() {
        // systemd does not ask for the destination address of datagrams;
        // replies must leave from it (see `listeners`).
        listeners::enable_pktinfo(&fd, matches!(transport, Transport::Udp6))?;
        socket2::SockRef::from(&fd).set_nonblocking(true)?;
        l.udp.push(UdpListener {
            transport,
            socket: fd.into(),
        });
    } else {
        l.tcp.push(TcpListener {
            transport,
            listener: stream_listener(fd)?.into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use socket2::{Domain, Socket, Type};

    #[test]
    fn sockets_are_told_apart_by_family_type_and_address() {
        let udp = listeners::bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = udp.local_addr().unwrap();
        assert_eq!(classify(&udp).unwrap(), Kind::Ip(Transport::Udp, addr));
        let tcp6 = listeners::bind_tcp("[::1]:0".parse().unwrap()).unwrap();
        let addr6 = tcp6.local_addr().unwrap();
        assert_eq!(classify(&tcp6).unwrap(), Kind::Ip(Transport::Tcp6, addr6));
        let name = format!("/rpcbind-activation-test-{}", std::process::id());
        let abs = listeners::bind_local_abstract(&name).unwrap();
        assert_eq!(classify(&abs).unwrap(), Kind::Abstract(name.into_bytes()));
    }

    #[test]
    fn dual_stack_ipv6_is_refused_with_c_words() {
        let s = Socket::new(Domain::IPV6, Type::STREAM, None).unwrap();
        s.set_only_v6(false).unwrap();
        s.bind(&"[::]:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        let e = classify(&s).unwrap_err();
        assert!(matches!(e, ActivationError::DualStack));
        assert!(e.to_string().contains("BindIPv6Only=ipv6-only"), "{e}");
    }

    #[test]
    fn a_datagram_unix_socket_is_not_a_transport() {
        let s = Socket::new(Domain::UNIX, Type::DGRAM, None).unwrap();
        assert!(matches!(classify(&s).unwrap(), Kind::Other(_)));
    }
}
