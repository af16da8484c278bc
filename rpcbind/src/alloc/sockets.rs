//! The sockets of the allocation service: binding what the allocator
//! decides (a [`Bind`]), and writing a reply record with a descriptor
//! beside it on the local connection (SCM_RIGHTS on the `sendmsg()` that
//! carries the record's first byte, through `portalloc::send_with_fd`).
//! Does socket I/O.

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use portpolicy::alloc::Bind;
use proto::alloc::{Family, Socktype};
use socket2::{Domain, Socket, Type};
use tokio::io::{AsyncWrite, Interest};

/// Backlog of the listening sockets handed out (the kernel caps it at
/// net.core.somaxconn; the receiving daemon may call listen() again).
const BACKLOG: i32 = 4096;

/// Creates, configures, binds (and listens on) the socket `bind` asks
/// for. The error is the errno of the call that failed; EADDRINUSE from
/// bind() or listen() means "try the next port".
pub fn bind(bind: &Bind) -> Result<OwnedFd, i32> {
    // A reservation's socket kept by systemd across a restart is the
    // same socket, never a fresh bind (see `fdstore`).
    if let Some(fd) = crate::fdstore::adopt(bind) {
        crate::fdstore::store(bind, &fd);
        return Ok(fd);
    }
    let fd = bind_new(bind)?;
    crate::fdstore::store(bind, &fd);
    Ok(fd)
}

fn bind_new(bind: &Bind) -> Result<OwnedFd, i32> {
    let errno = |e: io::Error| e.raw_os_error().unwrap_or(libc::EIO);
    let (domain, unspecified) = match bind.family {
        Family::Inet => (Domain::IPV4, IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        Family::Inet6 => (Domain::IPV6, IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
    };
    let kind = match bind.socktype {
        Socktype::Stream => Type::STREAM,
        Socktype::Dgram => Type::DGRAM,
    };
    // socket2 creates it close-on-exec; the receiver gets its own copy.
    let socket = Socket::new(domain, kind, None).map_err(errno)?;
    if bind.reuse_addr {
        socket.set_reuse_address(true).map_err(errno)?;
    }
    if bind.family == Family::Inet6 {
        socket.set_only_v6(bind.v6only).map_err(errno)?;
    }
    let addr = SocketAddr::new(bind.addr.unwrap_or(unspecified), bind.port);
    socket.bind(&addr.into()).map_err(errno)?;
    if bind.listen {
        socket.listen(BACKLOG).map_err(errno)?;
    }
    Ok(socket.into())
}

/// Whether this host can make IPv6 sockets (reservations are then held
/// by one dual-stack socket).
pub fn ipv6_available() -> bool {
    Socket::new(Domain::IPV6, Type::STREAM, None).is_ok()
}

/// The writing half of a stream connection, which on the local socket
/// can also send a descriptor with the first bytes of a reply.
pub trait ReplyWrite: AsyncWrite + Unpin + Send {
    /// Sends (a prefix of) `bytes` with `fd` as SCM_RIGHTS; returns how
    /// many bytes went.
    fn send_fd(
        &mut self,
        bytes: &[u8],
        fd: BorrowedFd<'_>,
    ) -> impl Future<Output = io::Result<usize>> + Send;
}

impl ReplyWrite for tokio::net::tcp::OwnedWriteHalf {
    async fn send_fd(&mut self, _bytes: &[u8], _fd: BorrowedFd<'_>) -> io::Result<usize> {
        // Never reached: the service is not routed on TCP.
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
}

impl ReplyWrite for tokio::net::unix::OwnedWriteHalf {
    async fn send_fd(&mut self, bytes: &[u8], fd: BorrowedFd<'_>) -> io::Result<usize> {
        let stream: &tokio::net::UnixStream = self.as_ref();
        stream
            .async_io(Interest::WRITABLE, || {
                portalloc::send_with_fd(stream.as_fd(), bytes, fd)
            })
            .await
    }
}
