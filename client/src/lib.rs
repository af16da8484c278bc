//! Client of the rpcbind daemon's port-allocation service (PORTALLOC,
//! program 0x20000111 version 1, `proto/alloc.x`): pool ports, exact ports
//! and held reservations arrive as sockets the daemon already bound (and,
//! for TCP, listened on), passed over the local socket. Does I/O on one
//! Unix stream socket; synchronous, no threads, no runtime, so that the
//! LD_PRELOAD shim can link it into any process.
//!
//! ```no_run
//! use portalloc::{AllocRequest, Client, Family, Socktype};
//!
//! let mut client = Client::connect()?;
//! let grant = client.alloc(&AllocRequest::pool(Family::Inet6, Socktype::Dgram))?;
//! let socket = std::net::UdpSocket::from(grant.fd);
//! println!("bound to port {}", grant.port);
//! # drop(socket);
//! # Ok::<(), portalloc::AllocError>(())
//! ```
#![deny(unsafe_code)]

mod error;
#[allow(unsafe_code)]
mod sys;
mod wire;

pub use error::AllocError;
pub use proto::alloc::{Family, LeaseInfo, PaStatus, PortKind, Socktype};
pub use wire::send_with_fd;

use error::Subject;
use nix::sys::socket::{getsockname, SockaddrLike, SockaddrStorage};
use proto::alloc::{
    AllocRes, ClaimArgs, NameArg, PaList, ReleaseArgs, PA_ALLOC, PA_CLAIM, PA_LIST, PA_MAXADDRLEN,
    PA_MAXNAMELEN, PA_NULL, PA_RELEASE, PA_RELEASE_NAME,
};
use proto::rpc::Procedure;
use proto::xdr::{Decode, Encode, XdrReader, XdrWriter};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

/// What [`Client::alloc`] sends: family, socket type, bind address, which
/// port, an optional registration and flags (see its constructors
/// `pool`, `privileged`, `exact` and `bind_addr`, `register`,
/// `no_listen`).
pub type AllocRequest<'a> = proto::alloc::AllocArgs<'a>;

/// The daemon's local socket.
pub const SOCKET_PATH: &str = "/run/rpcbind.sock";
/// The abstract socket name (`@/run/rpcbind.sock`), tried first.
pub const ABSTRACT_NAME: &[u8] = b"/run/rpcbind.sock";
/// How long one request may take by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// A socket the daemon bound for us.
#[derive(Debug)]
pub struct Grant {
    /// The port it is bound to (checked with getsockname()).
    pub port: u16,
    /// The lease; 0 for a reservation (the daemon keeps its own copy).
    pub lease_id: u64,
    /// The socket, close-on-exec.
    pub fd: OwnedFd,
}

/// A connection to the allocation service.
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
    at: String,
    xid: u32,
    timeout: Duration,
    uid: u32,
    /// A transport or protocol error left the stream in an unknown place
    /// (maybe inside a record): no further call is made on it.
    broken: bool,
}

/// No arguments (NULL, LIST).
struct Void;

impl Encode for Void {
    fn encode(&self, _: &mut XdrWriter) {}
}

impl Client {
    /// Connects to `@/run/rpcbind.sock`, else `/run/rpcbind.sock`.
    pub fn connect() -> Result<Client, AllocError> {
        let abstract_err = match SocketAddr::from_abstract_name(ABSTRACT_NAME)
            .and_then(|a| UnixStream::connect_addr(&a))
        {
            Ok(s) => return Client::from_stream(s, format!("@{SOCKET_PATH}")),
            Err(e) => e,
        };
        Client::connect_path(SOCKET_PATH).map_err(|e| match e {
            AllocError::Unreachable { tried, source } => AllocError::Unreachable {
                tried: format!("@{SOCKET_PATH} ({abstract_err}) and {tried}"),
                source,
            },
            other => other,
        })
    }

    /// Connects to the socket at `path`.
    pub fn connect_path(path: impl AsRef<Path>) -> Result<Client, AllocError> {
        let path = path.as_ref();
        let at = path.display().to_string();
        match UnixStream::connect(path) {
            Ok(s) => Client::from_stream(s, at),
            Err(source) => Err(AllocError::Unreachable { tried: at, source }),
        }
    }

    fn from_stream(stream: UnixStream, at: String) -> Result<Client, AllocError> {
        let mut client = Client {
            stream,
            at,
            xid: initial_xid(),
            timeout: DEFAULT_TIMEOUT,
            uid: nix::unistd::geteuid().as_raw(),
            broken: false,
        };
        client.set_timeout(DEFAULT_TIMEOUT)?;
        Ok(client)
    }

    /// Bounds each request (send and reply) to `timeout` (not zero).
    pub fn set_timeout(&mut self, timeout: Duration) -> Result<(), AllocError> {
        let timeout = timeout.max(Duration::from_millis(1));
        self.stream.set_read_timeout(Some(timeout))?;
        self.stream.set_write_timeout(Some(timeout))?;
        self.timeout = timeout;
        Ok(())
    }

    /// Where the client is connected, for messages.
    pub fn address(&self) -> &str {
        &self.at
    }

    fn call(
        &mut self,
        procedure: Procedure,
        args: &dyn Encode,
    ) -> Result<wire::Results, AllocError> {
        if self.broken {
            return Err(AllocError::Protocol(
                "the connection failed earlier: connect again".into(),
            ));
        }
        self.xid = self.xid.wrapping_add(1);
        let deadline = Instant::now() + self.timeout;
        let result = wire::exchange(&self.stream, self.xid, procedure, args, &self.at, deadline);
        if let Err(AllocError::Timeout | AllocError::Io(_) | AllocError::Protocol(_)) = &result {
            self.broken = true;
        }
        result
    }

    /// PA_NULL: is the service there?
    pub fn null(&mut self) -> Result<(), AllocError> {
        self.call(PA_NULL, &Void).map(drop)
    }

    /// PA_ALLOC: a socket bound to a pool port or the exact port asked.
    pub fn alloc(&mut self, req: &AllocRequest<'_>) -> Result<Grant, AllocError> {
        let (port, privileged) = match req.port {
            PortKind::Exact(p) => (Some(p), false),
            PortKind::Privileged => (None, true),
            PortKind::Pool => (None, false),
        };
        let subject = Subject::Alloc {
            socktype: req.socktype,
            port,
            privileged,
        };
        if req.bind_addr.len() > PA_MAXADDRLEN as usize {
            return Err(self.local_refusal("bind address longer than 64 bytes"));
        }
        let results = self.call(PA_ALLOC, req)?;
        self.grant(results, &subject)
    }

    /// PA_CLAIM: the socket of a reservation (a dup of the daemon's).
    pub fn claim(&mut self, name: &str, socktype: Socktype) -> Result<Grant, AllocError> {
        self.check_name(name)?;
        let results = self.call(PA_CLAIM, &ClaimArgs { name, socktype })?;
        self.grant(results, &Subject::Claim(name.to_string(), socktype))
    }

    /// PA_RELEASE by lease id.
    pub fn release_lease(&mut self, lease_id: u64) -> Result<(), AllocError> {
        self.status_call(PA_RELEASE, &ReleaseArgs::Lease(lease_id), &Subject::Release)
    }

    /// PA_RELEASE by port.
    pub fn release_port(&mut self, port: u16, socktype: Socktype) -> Result<(), AllocError> {
        let args = ReleaseArgs::Port {
            port: u32::from(port),
            socktype,
        };
        self.status_call(PA_RELEASE, &args, &Subject::Release)
    }

    /// PA_RELEASE_NAME (root only): the daemon stops holding a reservation.
    pub fn release_name(&mut self, name: &str) -> Result<(), AllocError> {
        self.check_name(name)?;
        self.status_call(
            PA_RELEASE_NAME,
            &NameArg(name),
            &Subject::Name(name.to_string()),
        )
    }

    /// PA_LIST: leases, then reservations.
    pub fn list(&mut self) -> Result<Vec<LeaseInfo>, AllocError> {
        let results = self.call(PA_LIST, &Void)?;
        decode_all::<PaList>(&results.bytes).map(|l| l.0)
    }

    fn status_call(
        &mut self,
        procedure: Procedure,
        args: &dyn Encode,
        subject: &Subject,
    ) -> Result<(), AllocError> {
        let results = self.call(procedure, args)?;
        match decode_all::<PaStatus>(&results.bytes)? {
            PaStatus::OK => Ok(()),
            s => Err(AllocError::refused(s, subject, self.uid)),
        }
    }

    fn grant(&self, results: wire::Results, subject: &Subject) -> Result<Grant, AllocError> {
        match decode_all::<AllocRes>(&results.bytes)? {
            AllocRes::Granted(g) => {
                let fd = results.fd.ok_or_else(|| {
                    AllocError::Protocol(format!("port {} granted without a descriptor", g.port))
                })?;
                let port = bound_port(&fd)?;
                if u32::from(port) != g.port {
                    return Err(AllocError::Protocol(format!(
                        "granted port {} but the socket is bound to {port}",
                        g.port
                    )));
                }
                Ok(Grant {
                    port,
                    lease_id: g.lease_id,
                    fd,
                })
            }
            AllocRes::SystemError { errno } => Err(AllocError::System { errno }),
            AllocRes::Refused(s) => Err(AllocError::refused(s, subject, self.uid)),
        }
    }

    fn check_name(&self, name: &str) -> Result<(), AllocError> {
        if name.len() > PA_MAXNAMELEN as usize {
            return Err(self.local_refusal("reservation name longer than 64 bytes"));
        }
        Ok(())
    }

    fn local_refusal(&self, message: &str) -> AllocError {
        AllocError::Refused {
            status: PaStatus::BAD_REQUEST,
            message: message.to_string(),
        }
    }
}

/// Decodes a whole result; bytes left over are a protocol error.
fn decode_all<T: for<'a> Decode<'a>>(bytes: &[u8]) -> Result<T, AllocError> {
    let mut r = XdrReader::new(bytes);
    let value = T::decode(&mut r).map_err(|e| AllocError::Protocol(e.to_string()))?;
    if !r.is_empty() {
        return Err(AllocError::Protocol(format!(
            "{} bytes after the result",
            r.remaining()
        )));
    }
    Ok(value)
}

/// The local port of an inet socket.
fn bound_port(fd: &OwnedFd) -> Result<u16, AllocError> {
    let addr: SockaddrStorage = getsockname(fd.as_raw_fd())
        .map_err(|e| AllocError::Protocol(format!("received descriptor: getsockname: {e}")))?;
    if let Some(v4) = addr.as_sockaddr_in() {
        return Ok(v4.port());
    }
    if let Some(v6) = addr.as_sockaddr_in6() {
        return Ok(v6.port());
    }
    Err(AllocError::Protocol(format!(
        "received descriptor is not an inet socket (family {:?})",
        addr.family()
    )))
}

/// `SD_LISTEN_FDS_START`: the first descriptor of socket activation.
pub const LISTEN_FDS_START: i32 = 3;

/// Makes `fd` descriptor 3 of this process without FD_CLOEXEC, for a
/// program about to be exec'd with `LISTEN_FDS=1` (the socket-activation
/// convention). Whatever descriptor 3 was is closed. Call it right before
/// exec, with no other thread running: any other owner of descriptor 3 in
/// this process is invalidated.
pub fn install_listen_fd(fd: OwnedFd) -> std::io::Result<()> {
    sys::install_inheritable(fd, LISTEN_FDS_START)
}

/// A starting xid that differs between processes and runs.
fn initial_xid() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    std::process::id().rotate_left(16) ^ nanos
}
