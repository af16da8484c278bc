//! Universal addresses (RFC 1833 section 2.1 and RFC 5665 section 5.2.3)
//! and their transport-specific form, the Linux `struct sockaddr` bytes
//! carried in a `netbuf` by UADDR2TADDR and TADDR2UADDR. No I/O.
//!
//! * IPv4: `h1.h2.h3.h4.p1.p2`, port `p1 * 256 + p2`.
//! * IPv6: the address as glibc's `inet_ntop` prints it, then `.p1.p2`
//!   (`::.0.111`, `::1.0.111`, `::ffff:1.2.3.4.0.111`). A scope id is
//!   dropped when formatting, as libtirpc does, and refused when parsing
//!   (`inet_pton` refuses `%`).
//! * AF_LOCAL: the socket's path is its universal address.
//!
//! Parsing follows libtirpc's `__rpc_uaddr2taddr_af`, because that is what
//! decides which SET addresses and UADDR2TADDR arguments the C rpcbind
//! accepts: the two last dot-separated parts are read with `atoi` (so
//! `0x1` reads as 0 and `1x` as 1) and combined as `(p1 << 8 | p2)`
//! truncated to 16 bits; the rest must be a strict dotted quad or IPv6
//! address.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::rpcb::Netbuf;

/// Linux `AF_LOCAL` (`AF_UNIX`).
pub const AF_LOCAL: u16 = 1;
/// Linux `AF_INET`.
pub const AF_INET: u16 = 2;
/// Linux `AF_INET6`.
pub const AF_INET6: u16 = 10;
/// `sizeof(struct sockaddr_in)`.
pub const SOCKADDR_IN_LEN: usize = 16;
/// `sizeof(struct sockaddr_in6)`.
pub const SOCKADDR_IN6_LEN: usize = 28;
/// `sizeof(struct sockaddr_un)`: the `maxlen` of a local netbuf.
pub const SOCKADDR_UN_LEN: usize = 110;
/// Longest path libtirpc copies into `sun_path` (`strncpy` of 108 - 1).
pub const SUN_PATH_MAX: usize = 107;

/// The protocol family of a transport (`nc_protofmly`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddrFamily {
    Local,
    Inet,
    Inet6,
}

impl AddrFamily {
    /// The Linux `AF_*` number.
    pub fn af(self) -> u16 {
        match self {
            Self::Local => AF_LOCAL,
            Self::Inet => AF_INET,
            Self::Inet6 => AF_INET6,
        }
    }

    /// The `nc_protofmly` of `/etc/netconfig`: `loopback`, `inet`, `inet6`.
    pub fn protofmly(self) -> &'static str {
        match self {
            Self::Local => "loopback",
            Self::Inet => "inet",
            Self::Inet6 => "inet6",
        }
    }

    /// The family of an IP socket address.
    pub fn of(addr: &SocketAddr) -> Self {
        match addr {
            SocketAddr::V4(_) => Self::Inet,
            SocketAddr::V6(_) => Self::Inet6,
        }
    }
}

/// A parsed universal address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum UniversalAddr {
    Inet(SocketAddr),
    /// An absolute path of an AF_LOCAL socket.
    Local(String),
}

impl UniversalAddr {
    /// Parses a universal address, telling the family by its form: a
    /// leading `/` is a path, a `:` means IPv6, anything else IPv4.
    pub fn parse(uaddr: &str) -> Option<Self> {
        if uaddr.starts_with('/') {
            return (!uaddr.contains('\0')).then(|| Self::Local(uaddr.to_owned()));
        }
        let family = if uaddr.contains(':') {
            AddrFamily::Inet6
        } else {
            AddrFamily::Inet
        };
        parse_inet_as(family, uaddr).map(Self::Inet)
    }

    pub fn family(&self) -> AddrFamily {
        match self {
            Self::Inet(a) => AddrFamily::of(a),
            Self::Local(_) => AddrFamily::Local,
        }
    }

    /// The port of an IP address.
    pub fn port(&self) -> Option<u16> {
        match self {
            Self::Inet(a) => Some(a.port()),
            Self::Local(_) => None,
        }
    }

    /// The Linux `struct sockaddr` bytes: `sockaddr_in` (16 bytes),
    /// `sockaddr_in6` (28 bytes, flow info and scope id zero) or
    /// `sockaddr_un` up to the end of the path (no terminating NUL, as
    /// libtirpc's `SUN_LEN`).
    pub fn to_sockaddr(&self) -> Vec<u8> {
        match self {
            Self::Inet(SocketAddr::V4(a)) => sockaddr_in(a),
            Self::Inet(SocketAddr::V6(a)) => sockaddr_in6(a),
            Self::Local(path) => {
                let mut out = AF_LOCAL.to_ne_bytes().to_vec();
                out.extend_from_slice(path.as_bytes());
                out
            }
        }
    }

    /// Reads `struct sockaddr` bytes, telling the family by their
    /// `sa_family` field.
    pub fn from_sockaddr(bytes: &[u8]) -> Option<Self> {
        let family = match u16::from_ne_bytes([*bytes.first()?, *bytes.get(1)?]) {
            AF_LOCAL => AddrFamily::Local,
            AF_INET => AddrFamily::Inet,
            AF_INET6 => AddrFamily::Inet6,
            _ => return None,
        };
        sockaddr_as(family, bytes)
    }
}

impl fmt::Display for UniversalAddr {
    /// The universal address string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Inet(a) => f.write_str(&format_inet(a)),
            Self::Local(path) => f.write_str(path),
        }
    }
}

impl From<SocketAddr> for UniversalAddr {
    fn from(a: SocketAddr) -> Self {
        Self::Inet(a)
    }
}

/// The universal address of an IP socket address (scope id dropped).
pub fn format_inet(addr: &SocketAddr) -> String {
    let host = match addr.ip() {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format_ipv6(&ip),
    };
    format!("{host}.{}.{}", addr.port() >> 8, addr.port() & 0xff)
}

/// An IPv6 address as glibc's `inet_ntop` prints it. It matches Rust's
/// RFC 5952 form except for IPv4-compatible addresses (`::a.b.c.d`, the
/// first 96 bits zero), which glibc still prints with a dotted quad.
fn format_ipv6(ip: &Ipv6Addr) -> String {
    let s = ip.segments();
    if s[..6] == [0; 6] && s[6] != 0 {
        let o = ip.octets();
        return format!("::{}", Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    ip.to_string()
}

/// Parses an IP universal address of the given family, with libtirpc's
/// leniency in the port parts (see the module docs).
pub fn parse_inet_as(family: AddrFamily, uaddr: &str) -> Option<SocketAddr> {
    let (rest, lo) = uaddr.rsplit_once('.')?;
    let (host, hi) = rest.rsplit_once('.')?;
    let port = (atoi(hi).wrapping_shl(8) | atoi(lo)) as u16;
    match family {
        AddrFamily::Inet => host
            .parse::<Ipv4Addr>()
            .ok()
            .map(|ip| SocketAddr::V4(SocketAddrV4::new(ip, port))),
        AddrFamily::Inet6 => host
            .parse::<Ipv6Addr>()
            .ok()
            .map(|ip| SocketAddr::V6(SocketAddrV6::new(ip, port, 0, 0))),
        AddrFamily::Local => None,
    }
}

/// Parses an IP universal address, IPv6 if it contains a `:`.
pub fn parse_inet(uaddr: &str) -> Option<SocketAddr> {
    match UniversalAddr::parse(uaddr)? {
        UniversalAddr::Inet(a) => Some(a),
        UniversalAddr::Local(_) => None,
    }
}

/// C's `atoi` as glibc implements it (`(int) strtol(s, NULL, 10)`):
/// leading white space, an optional sign, then digits up to the first
/// non-digit; no digits reads as 0.
fn atoi(s: &str) -> u32 {
    let s = s.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut value: i64 = 0;
    for d in digits.bytes().take_while(u8::is_ascii_digit) {
        value = value.saturating_mul(10).saturating_add(i64::from(d - b'0'));
    }
    if negative {
        value = value.saturating_neg();
    }
    value as i32 as u32
}

fn sockaddr_in(a: &SocketAddrV4) -> Vec<u8> {
    let mut out = Vec::with_capacity(SOCKADDR_IN_LEN);
    out.extend_from_slice(&AF_INET.to_ne_bytes());
    out.extend_from_slice(&a.port().to_be_bytes());
    out.extend_from_slice(&a.ip().octets());
    out.resize(SOCKADDR_IN_LEN, 0);
    out
}

fn sockaddr_in6(a: &SocketAddrV6) -> Vec<u8> {
    let mut out = Vec::with_capacity(SOCKADDR_IN6_LEN);
    out.extend_from_slice(&AF_INET6.to_ne_bytes());
    out.extend_from_slice(&a.port().to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&a.ip().octets());
    out.resize(SOCKADDR_IN6_LEN, 0);
    out
}

/// Reads `struct sockaddr` bytes as `family`, ignoring their `sa_family`
/// field, as libtirpc's `__rpc_taddr2uaddr_af` does (the family comes from
/// the transport). IP forms must be at least their struct's size; a local
/// path ends at the first NUL or at the end of `bytes`.
fn sockaddr_as(family: AddrFamily, bytes: &[u8]) -> Option<UniversalAddr> {
    let port = |b: &[u8]| u16::from_be_bytes([b[2], b[3]]);
    match family {
        AddrFamily::Inet if bytes.len() >= SOCKADDR_IN_LEN => {
            let ip = Ipv4Addr::new(bytes[4], bytes[5], bytes[6], bytes[7]);
            Some(UniversalAddr::Inet(
                SocketAddrV4::new(ip, port(bytes)).into(),
            ))
        }
        AddrFamily::Inet6 if bytes.len() >= SOCKADDR_IN6_LEN => {
            let mut octets = [0; 16];
            octets.copy_from_slice(&bytes[8..24]);
            let a = SocketAddrV6::new(Ipv6Addr::from(octets), port(bytes), 0, 0);
            Some(UniversalAddr::Inet(a.into()))
        }
        AddrFamily::Local => {
            let path = std::str::from_utf8(sun_path(bytes)?).ok()?;
            (!path.is_empty()).then(|| UniversalAddr::Local(path.to_owned()))
        }
        _ => None,
    }
}

/// The `sun_path` of `struct sockaddr_un` bytes, up to its first NUL, as C's
/// `"%.*s"` reads it; `None` when the bytes are shorter than `sun_family`.
fn sun_path(bytes: &[u8]) -> Option<&[u8]> {
    let path = bytes.get(2..)?;
    let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
    Some(&path[..end])
}

/// TADDR2UADDR as the C rpcbind answers it on a transport of `family`.
/// `None` is answered as the empty string. A local path that is not UTF-8
/// is `None` here; [`taddr2uaddr_bytes`] gives the bytes C sends for it.
pub fn taddr2uaddr(family: AddrFamily, taddr: &Netbuf) -> Option<String> {
    sockaddr_as(family, &taddr.buf).map(|a| a.to_string())
}

/// The bytes of the TADDR2UADDR reply string, exactly as C sends them. On
/// the local transport C reads any netbuf as `struct sockaddr_un` and copies
/// its path bytes whatever they are: an IPv4 netbuf sent over
/// /run/rpcbind.sock comes back as its port and address bytes up to the
/// first NUL (observed with Debian's rpcbind 1.2.6: `03 e8 7f` for
/// 127.0.0.1 port 1000).
pub fn taddr2uaddr_bytes(family: AddrFamily, taddr: &Netbuf) -> Vec<u8> {
    match family {
        AddrFamily::Local => sun_path(&taddr.buf).unwrap_or_default().to_vec(),
        _ => taddr2uaddr(family, taddr)
            .map(String::into_bytes)
            .unwrap_or_default(),
    }
}

/// UADDR2TADDR as the C rpcbind answers it on a transport of `family`.
/// `None` is answered as an empty netbuf (`maxlen` 0, no bytes).
///
/// Observed with Debian's rpcbind 1.2.6 / libtirpc 1.3.3 (see the tests):
/// IPv4 gives `maxlen` = `len` = 16, IPv6 28 = 28, local `maxlen` 110 and
/// `len` 2 + path length. The uaddr ends at its first NUL, as a C string.
pub fn uaddr2taddr(family: AddrFamily, uaddr: &str) -> Option<Netbuf> {
    let uaddr = uaddr.split('\0').next().unwrap_or_default();
    match family {
        AddrFamily::Inet | AddrFamily::Inet6 => {
            let addr = parse_inet_as(family, uaddr)?;
            Some(Netbuf::new(UniversalAddr::Inet(addr).to_sockaddr()))
        }
        AddrFamily::Local => {
            let path = local_path(uaddr)?;
            let mut buf = AF_LOCAL.to_ne_bytes().to_vec();
            buf.extend_from_slice(&path.as_bytes()[..path.len().min(SUN_PATH_MAX)]);
            Some(Netbuf {
                maxlen: SOCKADDR_UN_LEN as u32,
                buf,
            })
        }
    }
}

/// The path libtirpc puts in `sun_path` for a uaddr on a local transport:
/// the string itself if it starts with `/`; otherwise (a quirk kept for
/// compatibility) what is left after cutting two `.port` parts, which
/// must exist.
fn local_path(uaddr: &str) -> Option<&str> {
    if uaddr.starts_with('/') {
        return Some(uaddr);
    }
    let (rest, _) = uaddr.rsplit_once('.')?;
    let (path, _) = rest.rsplit_once('.')?;
    Some(path)
}

#[cfg(test)]
mod tests;
