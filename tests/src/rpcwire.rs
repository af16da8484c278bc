//! A minimal, independent ONC RPC client for tests: encodes calls of the
//! binding protocols by hand and decodes replies, over UDP, TCP and the
//! local stream socket. Written apart from the `proto` crate on purpose,
//! so the tests do not check the daemon against its own codec.
//! Does socket I/O. RFC 5531 (RPC messages, record marking, section 11),
//! RFC 1833 (PMAP v2, RPCBIND v3/v4 procedures).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

pub const PMAP_PROG: u32 = 100000;
/// PMAPPROC_SET / RPCBPROC_SET (same number in v2, v3, v4).
pub const PROC_SET: u32 = 1;
pub const PROC_UNSET: u32 = 2;
/// PMAPPROC_GETPORT / RPCBPROC_GETADDR.
pub const PROC_GETADDR: u32 = 3;
pub const IPPROTO_TCP: u32 = 6;
pub const IPPROTO_UDP: u32 = 17;

const TIMEOUT: Duration = Duration::from_secs(3);

/// Appends XDR items to a buffer.
#[derive(Debug, Default)]
pub struct XdrOut(pub Vec<u8>);

impl XdrOut {
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn string(&mut self, s: &str) -> &mut Self {
        self.u32(s.len() as u32);
        self.0.extend_from_slice(s.as_bytes());
        let pad = (4 - s.len() % 4) % 4;
        self.0.extend(std::iter::repeat_n(0, pad));
        self
    }
}

/// Reads XDR items from a reply.
#[derive(Debug)]
pub struct XdrIn<'a>(pub &'a [u8]);

impl XdrIn<'_> {
    pub fn u32(&mut self) -> io::Result<u32> {
        if self.0.len() < 4 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "short reply"));
        }
        let (head, rest) = self.0.split_at(4);
        self.0 = rest;
        Ok(u32::from_be_bytes([head[0], head[1], head[2], head[3]]))
    }

    pub fn opaque(&mut self) -> io::Result<Vec<u8>> {
        let len = self.u32()? as usize;
        let padded = len + (4 - len % 4) % 4;
        if self.0.len() < padded {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "short opaque"));
        }
        let v = self.0[..len].to_vec();
        self.0 = &self.0[padded..];
        Ok(v)
    }

    pub fn string(&mut self) -> io::Result<String> {
        Ok(String::from_utf8_lossy(&self.opaque()?).into_owned())
    }
}

/// One RPC call (AUTH_NONE credentials unless `auth_sys_uid` is set).
pub fn call_message(xid: u32, prog: u32, vers: u32, proc_: u32, args: &[u8]) -> Vec<u8> {
    let mut m = XdrOut::default();
    m.u32(xid).u32(0).u32(2).u32(prog).u32(vers).u32(proc_);
    m.u32(0).u32(0); // cred: AUTH_NONE
    m.u32(0).u32(0); // verf: AUTH_NONE
    m.0.extend_from_slice(args);
    m.0
}

/// How an accepted or rejected reply ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// SUCCESS with the result bytes.
    Success(Vec<u8>),
    /// Accepted but not SUCCESS: accept_stat (and mismatch info if any).
    Accepted(u32),
    /// MSG_DENIED with its reject_stat.
    Denied(u32),
}

/// Decodes a reply to `xid` (RFC 5531 section 9).
pub fn parse_reply(xid: u32, bytes: &[u8]) -> io::Result<Reply> {
    let mut r = XdrIn(bytes);
    let got = r.u32()?;
    if got != xid || r.u32()? != 1 {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "not our reply"));
    }
    match r.u32()? {
        0 => {
            let _flavor = r.u32()?;
            let _body = r.opaque()?;
            match r.u32()? {
                0 => Ok(Reply::Success(r.0.to_vec())),
                stat => Ok(Reply::Accepted(stat)),
            }
        }
        _ => Ok(Reply::Denied(r.u32()?)),
    }
}

/// Where to send a call.
#[derive(Debug, Clone)]
pub enum Target {
    Udp {
        to: SocketAddr,
        bind: Option<SocketAddr>,
    },
    Tcp {
        to: SocketAddr,
        bind: Option<SocketAddr>,
    },
    Unix(PathBuf),
    /// A Linux abstract unix socket (name without the leading NUL).
    Abstract(String),
}

impl Target {
    /// Parses `udp:ADDR:PORT`, `tcp:ADDR:PORT` (IPv6 as `[::1]:111`),
    /// `unix:PATH` or `abstract:NAME`; `bind` is an optional local address
    /// for udp/tcp.
    pub fn parse(s: &str, bind: Option<SocketAddr>) -> Result<Target, String> {
        let (kind, rest) = s.split_once(':').ok_or("transport:address expected")?;
        let addr = || {
            rest.parse::<SocketAddr>()
                .map_err(|e| format!("{rest}: {e}"))
        };
        match kind {
            "udp" => Ok(Target::Udp { to: addr()?, bind }),
            "tcp" => Ok(Target::Tcp { to: addr()?, bind }),
            "unix" => Ok(Target::Unix(PathBuf::from(rest))),
            "abstract" => Ok(Target::Abstract(rest.to_string())),
            other => Err(format!("unknown transport {other}")),
        }
    }
}

/// Sends one call and returns the reply and (for UDP) the reply's source.
pub fn call(target: &Target, message: &[u8]) -> io::Result<(Vec<u8>, Option<SocketAddr>)> {
    call_timeout(target, message, TIMEOUT)
}

/// Like `call`, waiting at most `timeout` for the reply.
pub fn call_timeout(
    target: &Target,
    message: &[u8],
    timeout: Duration,
) -> io::Result<(Vec<u8>, Option<SocketAddr>)> {
    match target {
        Target::Udp { to, bind } => {
            let local = bind.unwrap_or_else(|| unspecified_like(to));
            let sock = UdpSocket::bind(local)?;
            sock.set_read_timeout(Some(timeout))?;
            sock.send_to(message, to)?;
            let mut buf = vec![0u8; 65536];
            let (n, from) = sock.recv_from(&mut buf)?;
            buf.truncate(n);
            Ok((buf, Some(from)))
        }
        Target::Tcp { to, bind } => {
            let stream = match bind {
                Some(b) => tcp_connect_from(*b, *to)?,
                None => TcpStream::connect_timeout(to, TIMEOUT)?,
            };
            Ok((record_call(stream, message)?, None))
        }
        Target::Unix(path) => Ok((record_call(UnixStream::connect(path)?, message)?, None)),
        Target::Abstract(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
            Ok((
                record_call(UnixStream::connect_addr(&addr)?, message)?,
                None,
            ))
        }
    }
}

fn unspecified_like(to: &SocketAddr) -> SocketAddr {
    match to {
        SocketAddr::V4(_) => "0.0.0.0:0".parse().unwrap_or(*to),
        SocketAddr::V6(_) => "[::]:0".parse().unwrap_or(*to),
    }
}

fn tcp_connect_from(bind: SocketAddr, to: SocketAddr) -> io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::for_address(to), Type::STREAM, None)?;
    sock.set_reuse_address(true)?;
    sock.bind(&bind.into())?;
    sock.connect_timeout(&to.into(), TIMEOUT)?;
    Ok(sock.into())
}

trait Stream: Read + Write {
    fn set_timeouts(&self) -> io::Result<()>;
}

impl Stream for TcpStream {
    fn set_timeouts(&self) -> io::Result<()> {
        self.set_read_timeout(Some(TIMEOUT))?;
        self.set_write_timeout(Some(TIMEOUT))
    }
}

impl Stream for UnixStream {
    fn set_timeouts(&self) -> io::Result<()> {
        self.set_read_timeout(Some(TIMEOUT))?;
        self.set_write_timeout(Some(TIMEOUT))
    }
}

/// One call over a record-marked stream (RFC 5531 section 11).
fn record_call<S: Stream>(mut s: S, message: &[u8]) -> io::Result<Vec<u8>> {
    s.set_timeouts()?;
    let mark = 0x8000_0000u32 | message.len() as u32;
    let mut out = mark.to_be_bytes().to_vec();
    out.extend_from_slice(message);
    s.write_all(&out)?;
    let mut reply = Vec::new();
    loop {
        let mut head = [0u8; 4];
        s.read_exact(&mut head)?;
        let mark = u32::from_be_bytes(head);
        let len = (mark & 0x7fff_ffff) as usize;
        if len > 1 << 20 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "record too big"));
        }
        let mut frag = vec![0u8; len];
        s.read_exact(&mut frag)?;
        reply.extend_from_slice(&frag);
        if mark & 0x8000_0000 != 0 {
            return Ok(reply);
        }
    }
}

/// Arguments of RPCBPROC_SET/UNSET/GETADDR (struct rpcb, RFC 1833 2.1).
pub fn rpcb_args(prog: u32, vers: u32, netid: &str, uaddr: &str, owner: &str) -> Vec<u8> {
    let mut a = XdrOut::default();
    a.u32(prog)
        .u32(vers)
        .string(netid)
        .string(uaddr)
        .string(owner);
    a.0
}

/// Arguments of PMAPPROC_SET/UNSET/GETPORT (struct mapping, RFC 1833 3.1).
pub fn pmap_args(prog: u32, vers: u32, prot: u32, port: u32) -> Vec<u8> {
    let mut a = XdrOut::default();
    a.u32(prog).u32(vers).u32(prot).u32(port);
    a.0
}

/// PMAPPROC_GETPORT: the port of (prog, vers, prot) and, over UDP, the
/// address the reply came from.
pub fn pmap_getport(
    target: &Target,
    prog: u32,
    vers: u32,
    prot: u32,
    timeout: Duration,
) -> io::Result<(u32, Option<SocketAddr>)> {
    let xid = 0x5eed_0000 ^ prog;
    let msg = call_message(
        xid,
        PMAP_PROG,
        2,
        PROC_GETADDR,
        &pmap_args(prog, vers, prot, 0),
    );
    let (bytes, from) = call_timeout(target, &msg, timeout)?;
    match parse_reply(xid, &bytes)? {
        Reply::Success(res) => Ok((XdrIn(&res).u32()?, from)),
        other => Err(io::Error::other(format!("GETPORT not accepted: {other:?}"))),
    }
}

/// RPCBPROC_GETADDR (version `vers`, 3 or 4): the universal address of
/// (prog, pvers, netid) as the daemon merges it for this caller.
pub fn rpcb_getaddr(
    target: &Target,
    vers: u32,
    prog: u32,
    pvers: u32,
    netid: &str,
) -> io::Result<(String, Option<SocketAddr>)> {
    let xid = 0x6add_0000 ^ prog;
    let msg = call_message(
        xid,
        PMAP_PROG,
        vers,
        PROC_GETADDR,
        &rpcb_args(prog, pvers, netid, "", ""),
    );
    let (bytes, from) = call(target, &msg)?;
    match parse_reply(xid, &bytes)? {
        Reply::Success(res) => Ok((XdrIn(&res).string()?, from)),
        other => Err(io::Error::other(format!("GETADDR not accepted: {other:?}"))),
    }
}
