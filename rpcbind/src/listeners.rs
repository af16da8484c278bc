//! The daemon's sockets, created and bound before anything else runs (and
//! before the fork into the background), then handed to [`crate::server`]
//! as a [`Listeners`] set. Socket activation and tests build a `Listeners`
//! from sockets bound elsewhere and share the same serving path.
//!
//! Does I/O (socket creation with socket2, nix for IP_PKTINFO). Reproduces
//! rpcbind 1.2.6 `init_transport`: the local socket first, then the
//! visible `/etc/netconfig` IP entries in file order (see
//! [`crate::netconfig`]; Debian's: `udp`, `tcp`, `udp6`, `tcp6`); TCP with
//! SO_REUSEADDR
//! and a SOMAXCONN backlog; IPv6 sockets IPV6_V6ONLY; UDP sockets with
//! IP_PKTINFO / IPV6_RECVPKTINFO so replies leave from the address asked
//! (libtirpc `svc_dg_enable_pktinfo`). With `-h`, UDP binds each given
//! address plus the loopback address of its family, in C's order
//! (loopback first, then the `-h` addresses last to first); the daemon's
//! own UDP registration names the last address bound, as C's does.
//! Beyond C: the abstract socket `@/run/rpcbind.sock`.

use std::ffi::OsStr;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use nix::sys::socket::{setsockopt, sockopt};
use proto::engine::Transport;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// The local socket of rpcbind 1.2.x.
pub const SOCKET_PATH: &str = "/run/rpcbind.sock";
/// The abstract socket name newer libtirpc tries first (without the NUL).
pub const ABSTRACT_NAME: &str = "/run/rpcbind.sock";

/// Where to listen.
#[derive(Clone, Debug)]
pub struct ListenConfig {
    pub udp_port: u16,
    pub tcp_port: u16,
    /// `-h` addresses: UDP only on these plus loopback.
    pub hosts: Vec<String>,
    pub socket_path: PathBuf,
    /// The abstract socket name, if any.
    pub abstract_name: Option<String>,
    /// The IP transports, in set-up order (from `/etc/netconfig`).
    pub ip_transports: Vec<Transport>,
}

impl ListenConfig {
    /// The C daemon's listeners on the given ports.
    pub fn standard(
        udp_port: u16,
        tcp_port: u16,
        hosts: Vec<String>,
        ip_transports: Vec<Transport>,
    ) -> Self {
        ListenConfig {
            udp_port,
            tcp_port,
            hosts,
            socket_path: PathBuf::from(SOCKET_PATH),
            abstract_name: Some(ABSTRACT_NAME.to_owned()),
            ip_transports,
        }
    }
}

/// A bound UDP socket (non-blocking, pktinfo enabled).
#[derive(Debug)]
pub struct UdpListener {
    pub transport: Transport,
    pub socket: std::net::UdpSocket,
}

/// A listening TCP socket (non-blocking).
#[derive(Debug)]
pub struct TcpListener {
    pub transport: Transport,
    pub listener: std::net::TcpListener,
}

/// A listening AF_LOCAL stream socket (non-blocking).
#[derive(Debug)]
pub struct LocalListener {
    /// The file to remove on exit; `None` for an abstract socket or one
    /// this process did not create.
    pub path: Option<PathBuf>,
    pub listener: UnixListener,
}

/// Every socket the daemon serves, plus its own registrations.
#[derive(Debug, Default)]
pub struct Listeners {
    pub udp: Vec<UdpListener>,
    pub tcp: Vec<TcpListener>,
    pub local: Vec<LocalListener>,
    /// `(transport, uaddr)` for `Engine::register_own`, in the order the
    /// engine documents (the C daemon's setup order).
    pub own: Vec<(Transport, String)>,
}

impl Listeners {
    /// Whether nothing at all is listening.
    pub fn is_empty(&self) -> bool {
        self.udp.is_empty() && self.tcp.is_empty() && self.local.is_empty()
    }
}

/// Binds every listener the C daemon would, logging (and skipping) each
/// one that fails, as C's `init_transport` does. Fails only when nothing
/// could be bound at all.
pub fn bind_all(cfg: &ListenConfig) -> io::Result<Listeners> {
    let mut l = Listeners::default();
    bind_local(&mut l, cfg);
    for &transport in &cfg.ip_transports {
        bind_transport(&mut l, transport, cfg);
    }
    if let Some(name) = &cfg.abstract_name {
        bind_abstract(&mut l, name);
    }
    if l.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            "no listener could be bound",
        ));
    }
    Ok(l)
}

/// Binds the local socket at `cfg.socket_path` into `l` (logged on failure).
pub(crate) fn bind_local(l: &mut Listeners, cfg: &ListenConfig) {
    match bind_local_path(&cfg.socket_path) {
        Ok(listener) => {
            l.own
                .push((Transport::Local, cfg.socket_path.display().to_string()));
            l.local.push(LocalListener {
                path: Some(cfg.socket_path.clone()),
                listener,
            });
        }
        Err(e) => tracing::error!("cannot bind local: {}: {e}", cfg.socket_path.display()),
    }
}

/// Binds one IP transport's sockets into `l` (logged on failure).
pub(crate) fn bind_transport(l: &mut Listeners, transport: Transport, cfg: &ListenConfig) {
    if transport.is_datagram() {
        bind_udp_transport(l, transport, cfg);
    } else {
        bind_tcp_transport(l, transport, cfg.tcp_port);
    }
}

/// Binds the abstract socket `@name` into `l` (a warning on failure).
pub(crate) fn bind_abstract(l: &mut Listeners, name: &str) {
    match bind_local_abstract(name) {
        Ok(listener) => l.local.push(LocalListener {
            path: None,
            listener,
        }),
        Err(e) => tracing::warn!("cannot bind abstract socket @{name}: {e}; going on without it"),
    }
}

fn is_v6(t: Transport) -> bool {
    matches!(t, Transport::Udp6 | Transport::Tcp6)
}

fn wildcard(t: Transport, port: u16) -> SocketAddr {
    let ip = if is_v6(t) {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    };
    SocketAddr::new(ip, port)
}

fn bind_tcp_transport(l: &mut Listeners, transport: Transport, port: u16) {
    match bind_tcp(wildcard(transport, port)) {
        Ok(listener) => {
            let addr = listener.local_addr().unwrap_or(wildcard(transport, port));
            l.own.push((transport, proto::uaddr::format_inet(&addr)));
            l.tcp.push(TcpListener {
                transport,
                listener,
            });
        }
        Err(e) => tracing::error!("cannot bind {}: {e}", transport.netid()),
    }
}

fn bind_udp_transport(l: &mut Listeners, transport: Transport, cfg: &ListenConfig) {
    let mut last = None;
    for addr in udp_addresses(transport, &cfg.hosts, cfg.udp_port) {
        match bind_udp(addr) {
            Ok(socket) => {
                last = Some(socket.local_addr().unwrap_or(addr));
                l.udp.push(UdpListener { transport, socket });
            }
            Err(e) => tracing::error!(
                "cannot bind {} on {}: {e}",
                host_label(&addr),
                transport.netid()
            ),
        }
    }
    if let Some(addr) = last {
        l.own.push((transport, proto::uaddr::format_inet(&addr)));
    }
}

fn host_label(addr: &SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        "*".to_owned()
    } else {
        addr.ip().to_string()
    }
}

/// The UDP addresses of one transport, in the order C binds them: the
/// wildcard without `-h`; otherwise `-h` hosts plus loopback, walked from
/// the end, skipping hosts of the other family and names that do not
/// resolve (logged).
pub fn udp_addresses(transport: Transport, hosts: &[String], port: u16) -> Vec<SocketAddr> {
    if hosts.is_empty() {
        return vec![wildcard(transport, port)];
    }
    let v6 = is_v6(transport);
    let loopback = if v6 { "::1" } else { "127.0.0.1" };
    let mut all: Vec<&str> = hosts.iter().map(String::as_str).collect();
    all.push(loopback);
    all.iter()
        .rev()
        .filter_map(|h| resolve_host(h, v6, port, transport))
        .collect()
}

fn resolve_host(host: &str, v6: bool, port: u16, transport: Transport) -> Option<SocketAddr> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return (ip.is_ipv6() == v6).then_some(SocketAddr::new(ip, port));
    }
    match (host, port).to_socket_addrs() {
        Ok(mut addrs) => {
            let found = addrs.find(|a| a.is_ipv6() == v6);
            if found.is_none() {
                tracing::error!(
                    "cannot get local address for {}: {host}: no address of that family",
                    transport.netid()
                );
            }
            found
        }
        Err(e) => {
            tracing::error!(
                "cannot get local address for {}: {host}: {e}",
                transport.netid()
            );
            None
        }
    }
}

fn ip_socket(addr: &SocketAddr, ty: Type, proto: Protocol) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(*addr), ty, Some(proto))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    Ok(socket)
}

/// A UDP socket bound to `addr` that reports each datagram's destination.
pub fn bind_udp(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let socket = ip_socket(&addr, Type::DGRAM, Protocol::UDP)?;
    enable_pktinfo(&socket, addr.is_ipv6())?;
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Asks for each datagram's destination address (IP_PKTINFO or
/// IPV6_RECVPKTINFO), so replies can leave from it.
pub(crate) fn enable_pktinfo(socket: &impl std::os::fd::AsFd, v6: bool) -> io::Result<()> {
    if v6 {
        setsockopt(socket, sockopt::Ipv6RecvPacketInfo, &true)?;
    } else {
        setsockopt(socket, sockopt::Ipv4PacketInfo, &true)?;
    }
    Ok(())
}

/// A listening TCP socket on `addr` with SO_REUSEADDR.
pub fn bind_tcp(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = ip_socket(&addr, Type::STREAM, Protocol::TCP)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(libc::SOMAXCONN)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// The local socket at `path`: a stale file is removed first, and the new
/// socket is made mode 0666 as the C daemon's umask dance leaves it.
pub fn bind_local_path(path: &Path) -> io::Result<UnixListener> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = bind_unix(&SockAddr::unix(path)?)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    Ok(listener)
}

/// The abstract socket `@name`.
pub fn bind_local_abstract(name: &str) -> io::Result<UnixListener> {
    let mut bytes = vec![0u8];
    bytes.extend_from_slice(name.as_bytes());
    bind_unix(&SockAddr::unix(OsStr::from_bytes(&bytes))?)
}

fn bind_unix(addr: &SockAddr) -> io::Result<UnixListener> {
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.bind(addr)?;
    socket.listen(libc::SOMAXCONN)?;
    socket.set_nonblocking(true)?;
    Ok(UnixListener::from(std::os::fd::OwnedFd::from(socket)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(h: &[&str]) -> Vec<String> {
        h.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn no_hosts_means_wildcard() {
        assert_eq!(
            udp_addresses(Transport::Udp, &[], 111),
            ["0.0.0.0:111".parse().unwrap()]
        );
        assert_eq!(
            udp_addresses(Transport::Udp6, &[], 111),
            ["[::]:111".parse().unwrap()]
        );
    }

    #[test]
    fn hosts_are_walked_from_the_end_after_loopback() {
        let h = hosts(&["192.0.2.1", "2001:db8::1", "192.0.2.2"]);
        let v4: Vec<String> = udp_addresses(Transport::Udp, &h, 111)
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(v4, ["127.0.0.1:111", "192.0.2.2:111", "192.0.2.1:111"]);
        let v6: Vec<String> = udp_addresses(Transport::Udp6, &h, 111)
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(v6, ["[::1]:111", "[2001:db8::1]:111"]);
    }

    #[test]
    fn loopback_binds_and_reports_its_port() {
        let s = bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        assert_ne!(s.local_addr().unwrap().port(), 0);
        let t = bind_tcp("127.0.0.1:0".parse().unwrap()).unwrap();
        assert_ne!(t.local_addr().unwrap().port(), 0);
    }

    #[test]
    fn local_socket_replaces_stale_file_with_mode_0666() {
        let path = std::env::temp_dir().join(format!("rpcbind-test-{}.sock", std::process::id()));
        std::fs::write(&path, b"stale").unwrap();
        let l = bind_local_path(&path).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o666);
        drop(l);
        std::fs::remove_file(&path).unwrap();
    }
}
