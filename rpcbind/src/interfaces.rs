//! The host's interface addresses for the engine's address merging (C's
//! `addrmerge` calls `getifaddrs` on every GETADDR; we refresh a copy
//! periodically instead). Does I/O (`getifaddrs`, `if_nametoindex`).

use std::net::{IpAddr, SocketAddr};

use nix::ifaddrs::getifaddrs;
use nix::net::if_::{if_nametoindex, InterfaceFlags};
use nix::sys::socket::SockaddrStorage;
use proto::engine::Interface;

fn ip_of(s: &SockaddrStorage) -> Option<IpAddr> {
    if let Some(a) = s.as_sockaddr_in() {
        return Some(SocketAddr::from(std::net::SocketAddrV4::from(*a)).ip());
    }
    s.as_sockaddr_in6()
        .map(|a| SocketAddr::from(std::net::SocketAddrV6::from(*a)).ip())
}

/// Every IPv4 and IPv6 address of every interface, in `getifaddrs` order.
pub fn current() -> nix::Result<Vec<Interface>> {
    let mut out = Vec::new();
    for ifa in getifaddrs()? {
        let (Some(addr), Some(mask)) = (
            ifa.address.as_ref().and_then(ip_of),
            ifa.netmask.as_ref().and_then(ip_of),
        ) else {
            continue;
        };
        out.push(Interface {
            addr,
            netmask: mask,
            up: ifa.flags.contains(InterfaceFlags::IFF_UP),
            loopback_or_p2p: ifa
                .flags
                .intersects(InterfaceFlags::IFF_LOOPBACK | InterfaceFlags::IFF_POINTOPOINT),
            scope_id: if_nametoindex(ifa.interface_name.as_str()).unwrap_or(0),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_is_listed_as_loopback() {
        let ifs = super::current().unwrap();
        let lo = ifs
            .iter()
            .find(|i| i.addr == std::net::IpAddr::from([127, 0, 0, 1]));
        if let Some(lo) = lo {
            assert!(lo.loopback_or_p2p);
            assert_ne!(lo.scope_id, 0);
        } else {
            eprintln!("skipped: no 127.0.0.1 in this namespace");
        }
    }
}
