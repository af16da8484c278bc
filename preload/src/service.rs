//! Asking the rpcbind daemon's allocation service (PORTALLOC, proto/alloc.x)
//! for one socket, through the synchronous `portalloc` client: a fresh
//! connection per call (abstract `@/run/rpcbind.sock`, then
//! `/run/rpcbind.sock`), nothing kept between calls, so a fork()ed child
//! or a daemon restart never meets a stale connection. Does I/O on one
//! Unix stream socket; implements no RFC itself.

use std::net::IpAddr;
use std::time::Duration;

use portalloc::{AllocError, AllocRequest, Client, Grant};

use crate::decide::Request;

/// How long one request may take before the real function runs instead.
/// A running daemon answers in well under a millisecond; this only bounds
/// a hung one.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// The longest numeric address text: a full IPv6 address (45 bytes).
const ADDR_TEXT_MAX: usize = 46;

/// Numeric address text without allocating ("" for the wildcard).
struct AddrText {
    buf: [u8; ADDR_TEXT_MAX],
    len: usize,
}

impl AddrText {
    fn new(addr: Option<IpAddr>) -> AddrText {
        use std::io::Write;
        let mut text = AddrText {
            buf: [0; ADDR_TEXT_MAX],
            len: 0,
        };
        if let Some(a) = addr {
            let mut w = &mut text.buf[..];
            if write!(w, "{a}").is_ok() {
                text.len = ADDR_TEXT_MAX - w.len();
            }
        }
        text
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

/// The PA_ALLOC arguments for `req` (the address text borrowed from `text`).
fn alloc_args<'a>(req: &Request, text: &'a AddrText) -> AllocRequest<'a> {
    let args = if req.privileged {
        AllocRequest::privileged(req.family, req.socktype)
    } else {
        AllocRequest::pool(req.family, req.socktype)
    };
    let args = args.bind_addr(text.as_str());
    if req.no_listen {
        args.no_listen()
    } else {
        args
    }
}

/// One PA_ALLOC: the bound socket and its port, or why not.
pub fn allocate(req: &Request) -> Result<Grant, AllocError> {
    let text = AddrText::new(req.addr);
    let mut client = Client::connect()?;
    client.set_timeout(TIMEOUT)?;
    client.alloc(&alloc_args(req, &text))
}

/// Ends a lease the shim could not use (best effort: when the process
/// exits and nobody holds the port, the daemon ends it anyway).
pub fn give_back(grant: Grant) {
    let lease = grant.lease_id;
    // Close our copy first: the port must not look held by this process.
    drop(grant);
    if lease == 0 {
        return;
    }
    if let Ok(mut client) = Client::connect() {
        let _ = client
            .set_timeout(TIMEOUT)
            .and_then(|()| client.release_lease(lease));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portalloc::{Family, PortKind, Socktype};
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn request(addr: Option<IpAddr>, privileged: bool, no_listen: bool) -> Request {
        Request {
            family: Family::Inet6,
            socktype: Socktype::Stream,
            addr,
            privileged,
            no_listen,
        }
    }

    #[test]
    fn addresses_become_numeric_text_and_the_wildcard_empty() {
        assert_eq!(AddrText::new(None).as_str(), "");
        let v4 = Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(AddrText::new(v4).as_str(), "192.0.2.1");
        let longest: Ipv6Addr = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
            .parse()
            .unwrap();
        let text = AddrText::new(Some(IpAddr::V6(longest)));
        assert_eq!(text.as_str().parse::<Ipv6Addr>().unwrap(), longest);
    }

    #[test]
    fn requests_map_to_pa_alloc_args() {
        let text = AddrText::new(Some(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        let args = alloc_args(
            &request(Some(IpAddr::V6(Ipv6Addr::LOCALHOST)), true, false),
            &text,
        );
        assert_eq!(args.port, PortKind::Privileged);
        assert_eq!(args.bind_addr, "::1");
        assert_eq!(args.flags, 0, "listening unless asked");
        assert_eq!(
            (args.family, args.socktype),
            (Family::Inet6, Socktype::Stream)
        );
        assert!(args.reg.is_none());
        let text = AddrText::new(None);
        let args = alloc_args(&request(None, false, true), &text);
        assert_eq!(args.port, PortKind::Pool);
        assert_eq!(args.bind_addr, "");
        assert_eq!(args.flags, proto::alloc::PA_NO_LISTEN);
    }
}
