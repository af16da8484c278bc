//! Address merging: which address of this host a caller should use to
//! reach a registered service. Reproduces rpcbind 1.2.6 `mergeaddr`
//! (`check_bound.c`) and `addrmerge` (`util.c`): the result is the address
//! of the interface on the caller's network (exactly the caller's address
//! if it is one of ours), with the registered service's port. No I/O: the
//! daemon supplies the interface list ([`Interface`]); when it has not,
//! the local address the request reached (`RequestContext::local`) stands
//! in for the matching interface.
//!
//! The C daemon never reports a registration as dead here (its bound
//! check is compiled out: `check_binding = FALSE`), so neither does this.

use std::net::{IpAddr, SocketAddr};

use super::{RequestContext, Transport};
use crate::uaddr::{format_inet, parse_inet_as, AddrFamily};

/// One address of one network interface (an entry of `getifaddrs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interface {
    pub addr: IpAddr,
    pub netmask: IpAddr,
    /// `IFF_UP`.
    pub up: bool,
    /// `IFF_LOOPBACK` or `IFF_POINTOPOINT`.
    pub loopback_or_p2p: bool,
    /// The interface index, compared with a link-local caller's scope id.
    pub scope_id: u32,
}

/// The address family of a transport's netconfig entry.
pub(crate) fn family(t: Transport) -> AddrFamily {
    match t {
        Transport::Udp | Transport::Tcp => AddrFamily::Inet,
        Transport::Udp6 | Transport::Tcp6 => AddrFamily::Inet6,
        Transport::Local => AddrFamily::Local,
    }
}

fn masked_equal(a: &[u8], b: &[u8], mask: &[u8]) -> bool {
    a.iter().zip(b).zip(mask).all(|((x, y), m)| x & m == y & m)
}

fn octets(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn is_link_local(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80)
}

fn scope_id(a: &SocketAddr) -> u32 {
    match a {
        SocketAddr::V6(a) => a.scope_id(),
        SocketAddr::V4(_) => 0,
    }
}

/// C `addrmerge`'s interface walk over UP interfaces of the hint's family:
/// an exact match of the hint (or, for link-local callers, the caller's
/// scope) wins; otherwise C keeps the first such interface, replaced by the
/// first one that is neither loopback nor point-to-point. (The network
/// comparison only matters for the exact match: C's "remember" step runs
/// for every interface.)
fn best_interface(ifs: &[Interface], caller: &SocketAddr, hint: IpAddr) -> Option<IpAddr> {
    let mut best: Option<&Interface> = None;
    for i in ifs {
        if !i.up || i.addr.is_ipv4() != hint.is_ipv4() || i.netmask.is_ipv4() != hint.is_ipv4() {
            continue;
        }
        let link_local_case =
            is_link_local(i.addr) && is_link_local(caller.ip()) && is_link_local(hint);
        if link_local_case {
            if i.scope_id == scope_id(caller) {
                return Some(i.addr);
            }
        } else if masked_equal(&octets(i.addr), &octets(hint), &octets(i.netmask)) {
            if i.addr == hint {
                return Some(i.addr);
            }
            best = best.or(Some(i));
        }
        if best.is_none_or(|b| !i.loopback_or_p2p && b.loopback_or_p2p) {
            best = Some(i);
        }
    }
    best.map(|i| i.addr)
}

/// C `mergeaddr(xprt, netid, uaddr, saddr)`: `reg_family` is the family of
/// the registration's netid, `serv_uaddr` its address and `hint` the
/// request's `r_addr` when not empty. `None` means C's NULL (merge failed).
pub(crate) fn merge(
    ifs: &[Interface],
    ctx: &RequestContext,
    reg_family: AddrFamily,
    serv_uaddr: &str,
    hint: Option<&str>,
) -> Option<String> {
    // AF_LOCAL callers never match an interface: C returns NULL.
    let caller = ctx.peer?;
    if reg_family == AddrFamily::Local || AddrFamily::of(&caller) != reg_family {
        return None;
    }
    let hint_ip = match hint {
        Some(h) => Some(parse_inet_as(reg_family, h)?.ip()),
        None => None,
    };
    let hint_ip = hint_ip
        .filter(|h| h.is_ipv4() == caller.is_ipv4())
        .unwrap_or(caller.ip());
    if caller.ip().is_unspecified() {
        return Some(serv_uaddr.to_owned());
    }
    let chosen = if ifs.is_empty() {
        ctx.local
            .map(|l| l.ip())
            .filter(|l| l.is_ipv4() == hint_ip.is_ipv4() && !l.is_unspecified())?
    } else {
        best_interface(ifs, &caller, hint_ip)?
    };
    let serv = parse_inet_as(reg_family, serv_uaddr)?;
    Some(format_inet(&SocketAddr::new(chosen, serv.port())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(addr: &str, mask: &str, lo: bool) -> Interface {
        Interface {
            addr: addr.parse().unwrap(),
            netmask: mask.parse().unwrap(),
            up: true,
            loopback_or_p2p: lo,
            scope_id: 1,
        }
    }

    fn ctx(peer: &str, local: &str) -> RequestContext {
        RequestContext {
            transport: Transport::Udp,
            peer: Some(peer.parse().unwrap()),
            local: Some(local.parse().unwrap()),
            peer_uid: None,
        }
    }

    /// Observed against rpcbind 1.2.6 with lo 127.0.0.1/8 and 10.9.9.9/32:
    /// a caller at 10.9.9.9 gets 10.9.9.9.4.3 for 0.0.0.0.4.3, a caller at
    /// 127.0.0.5 gets 127.0.0.1.4.4 for 127.0.0.1.4.4, and the hint
    /// 10.9.9.9.0.111 turns the latter into 10.9.9.9.4.4.
    #[test]
    fn merge_uses_the_interface_on_the_callers_network() {
        let ifs = [
            iface("127.0.0.1", "255.0.0.0", true),
            iface("10.9.9.9", "255.255.255.255", true),
        ];
        let c = ctx("10.9.9.9:900", "127.0.0.1:111");
        let m = merge(&ifs, &c, AddrFamily::Inet, "0.0.0.0.4.3", None);
        assert_eq!(m.as_deref(), Some("10.9.9.9.4.3"));
        let c = ctx("127.0.0.5:900", "127.0.0.1:111");
        let m = merge(&ifs, &c, AddrFamily::Inet, "127.0.0.1.4.4", None);
        assert_eq!(m.as_deref(), Some("127.0.0.1.4.4"));
        let m = merge(
            &ifs,
            &c,
            AddrFamily::Inet,
            "127.0.0.1.4.4",
            Some("10.9.9.9.0.111"),
        );
        assert_eq!(m.as_deref(), Some("10.9.9.9.4.4"));
    }

    /// C's walk prefers the first non-loopback interface over a loopback
    /// one on the caller's own network, unless the caller's address is an
    /// exact match.
    #[test]
    fn merge_prefers_a_normal_interface_unless_exact() {
        let ifs = [
            iface("127.0.0.1", "255.0.0.0", true),
            iface("192.0.2.1", "255.255.255.0", false),
        ];
        let c = ctx("127.0.0.5:900", "127.0.0.1:111");
        let m = merge(&ifs, &c, AddrFamily::Inet, "0.0.0.0.4.3", None);
        assert_eq!(m.as_deref(), Some("192.0.2.1.4.3"));
        let c = ctx("127.0.0.1:900", "127.0.0.1:111");
        let m = merge(&ifs, &c, AddrFamily::Inet, "0.0.0.0.4.3", None);
        assert_eq!(m.as_deref(), Some("127.0.0.1.4.3"));
    }

    #[test]
    fn merge_without_interfaces_uses_the_local_address_reached() {
        let c = ctx("192.0.2.7:900", "192.0.2.1:111");
        let m = merge(&[], &c, AddrFamily::Inet, "0.0.0.0.8.1", None);
        assert_eq!(m.as_deref(), Some("192.0.2.1.8.1"));
    }

    #[test]
    fn merge_fails_for_local_callers_and_unparsable_addresses() {
        let local = RequestContext {
            transport: Transport::Local,
            peer: None,
            local: None,
            peer_uid: Some(0),
        };
        assert_eq!(merge(&[], &local, AddrFamily::Local, "/x", None), None);
        let c = ctx("127.0.0.1:900", "127.0.0.1:111");
        let ifs = [iface("127.0.0.1", "255.0.0.0", true)];
        assert_eq!(merge(&ifs, &c, AddrFamily::Inet, "junk", None), None);
        assert_eq!(
            merge(&ifs, &c, AddrFamily::Inet, "0.0.0.0.1.1", Some("junk")),
            None
        );
    }
}
