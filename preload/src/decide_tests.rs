//! Unit tests of the shim's decisions: family/type/protocol checks, the
//! fallback cases, the received-socket check and flag carry-over.

use super::*;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

fn sock(domain: i32, socktype: i32) -> SockInfo {
    let protocol = match socktype {
        libc::SOCK_STREAM => libc::IPPROTO_TCP,
        libc::SOCK_DGRAM => libc::IPPROTO_UDP,
        _ => 0,
    };
    SockInfo {
        domain,
        socktype,
        protocol,
        bound_port: 0,
        v6only: false,
    }
}

fn v4(ip: [u8; 4], port: u16) -> Requested {
    Requested::Addr(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)))
}

fn v6(ip: Ipv6Addr, port: u16, scope: u32) -> Requested {
    Requested::Addr(SocketAddr::V6(SocketAddrV6::new(ip, port, 0, scope)))
}

#[test]
fn bindresvport_null_asks_for_a_privileged_wildcard_port_of_the_socket_family() {
    for (domain, family) in [
        (libc::AF_INET, Family::Inet),
        (libc::AF_INET6, Family::Inet6),
    ] {
        for (ty, st) in [
            (libc::SOCK_DGRAM, Socktype::Dgram),
            (libc::SOCK_STREAM, Socktype::Stream),
        ] {
            let req = decide(Call::Resv, &sock(domain, ty), Requested::Null).unwrap();
            assert_eq!(
                req,
                Request {
                    family,
                    socktype: st,
                    addr: None,
                    privileged: true,
                    // the program connect()s (a client) or listen()s itself
                    no_listen: st == Socktype::Stream,
                }
            );
        }
    }
}

#[test]
fn bindresvport_with_an_address_binds_that_address_and_ignores_its_port() {
    let req = decide(
        Call::Resv,
        &sock(libc::AF_INET, libc::SOCK_DGRAM),
        v4([127, 0, 0, 1], 4242),
    )
    .unwrap();
    assert_eq!(req.addr, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    let req = decide(
        Call::Resv,
        &sock(libc::AF_INET6, libc::SOCK_STREAM),
        v6(Ipv6Addr::UNSPECIFIED, 0, 0),
    )
    .unwrap();
    assert_eq!(req.addr, None, ":: is the wildcard");
}

#[test]
fn non_inet_sockets_and_other_types_fall_back() {
    let unix = sock(libc::AF_UNIX, libc::SOCK_STREAM);
    assert_eq!(
        decide(Call::Resv, &unix, Requested::Null),
        Err(Fallback::NotInet(libc::AF_UNIX))
    );
    let raw = sock(libc::AF_INET, libc::SOCK_RAW);
    assert_eq!(
        decide(Call::Resv, &raw, Requested::Null),
        Err(Fallback::UnsupportedType(libc::SOCK_RAW))
    );
    let mut sctp = sock(libc::AF_INET, libc::SOCK_STREAM);
    sctp.protocol = libc::IPPROTO_SCTP;
    assert_eq!(
        decide(Call::Resv, &sctp, Requested::Null),
        Err(Fallback::UnsupportedProtocol(libc::IPPROTO_SCTP))
    );
}

#[test]
fn a_bound_socket_falls_back_so_the_real_function_reports_its_error() {
    let mut s = sock(libc::AF_INET, libc::SOCK_DGRAM);
    s.bound_port = 700;
    assert_eq!(
        decide(Call::Resv, &s, Requested::Null),
        Err(Fallback::AlreadyBound(700))
    );
}

#[test]
fn an_address_of_another_family_falls_back() {
    let s = sock(libc::AF_INET6, libc::SOCK_DGRAM);
    assert_eq!(
        decide(Call::Resv, &s, v4([0, 0, 0, 0], 0)),
        Err(Fallback::FamilyMismatch {
            socket: libc::AF_INET6,
            addr: libc::AF_INET
        })
    );
    assert_eq!(
        decide(Call::Resv, &s, Requested::Other(libc::AF_UNIX)),
        Err(Fallback::FamilyMismatch {
            socket: libc::AF_INET6,
            addr: libc::AF_UNIX
        })
    );
}

#[test]
fn a_scoped_link_local_address_falls_back() {
    let s = sock(libc::AF_INET6, libc::SOCK_DGRAM);
    let ll: Ipv6Addr = "fe80::1".parse().unwrap();
    assert_eq!(
        decide(Call::Resv, &s, v6(ll, 0, 2)),
        Err(Fallback::ScopedAddress)
    );
}

#[test]
fn bind0_serves_port_zero_from_the_pool_and_leaves_stream_sockets_unlistened() {
    let req = decide(
        Call::Bind0,
        &sock(libc::AF_INET, libc::SOCK_STREAM),
        v4([0, 0, 0, 0], 0),
    )
    .unwrap();
    assert!(!req.privileged);
    assert!(req.no_listen, "the program calls listen() itself");
    let req = decide(
        Call::Bind0,
        &sock(libc::AF_INET, libc::SOCK_DGRAM),
        v4([127, 0, 0, 1], 0),
    )
    .unwrap();
    assert!(!req.no_listen);
    assert_eq!(req.addr, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
}

#[test]
fn bind0_leaves_explicit_ports_alone() {
    assert_eq!(
        decide(
            Call::Bind0,
            &sock(libc::AF_INET, libc::SOCK_STREAM),
            v4([0, 0, 0, 0], 8080)
        ),
        Err(Fallback::NotPortZero)
    );
}

#[test]
fn bind0_falls_back_for_dual_stack_ipv6_sockets_only() {
    let mut s = sock(libc::AF_INET6, libc::SOCK_DGRAM);
    assert_eq!(
        decide(Call::Bind0, &s, v6(Ipv6Addr::UNSPECIFIED, 0, 0)),
        Err(Fallback::DualStack)
    );
    s.v6only = true;
    assert!(decide(Call::Bind0, &s, v6(Ipv6Addr::UNSPECIFIED, 0, 0)).is_ok());
    // bindresvport() callers are clients: v6-only does not matter to them.
    s.v6only = false;
    assert!(decide(Call::Resv, &s, Requested::Null).is_ok());
}

#[test]
fn the_received_socket_must_match_the_callers() {
    let caller = sock(libc::AF_INET, libc::SOCK_DGRAM);
    let mut got = caller;
    got.bound_port = 700;
    assert_eq!(check_received(Call::Resv, &caller, &got, 700), Ok(()));
    assert_eq!(
        check_received(Call::Resv, &caller, &got, 701),
        Err(Mismatch::Port)
    );
    let mut other = got;
    other.domain = libc::AF_INET6;
    assert_eq!(
        check_received(Call::Resv, &caller, &other, 700),
        Err(Mismatch::Domain)
    );
    let mut other = got;
    other.socktype = libc::SOCK_STREAM;
    assert_eq!(
        check_received(Call::Resv, &caller, &other, 700),
        Err(Mismatch::Type)
    );
    let mut other = got;
    other.protocol = libc::IPPROTO_UDPLITE;
    assert_eq!(
        check_received(Call::Resv, &caller, &other, 700),
        Err(Mismatch::Protocol)
    );
    let mut unbound = got;
    unbound.bound_port = 0;
    assert_eq!(
        check_received(Call::Resv, &caller, &unbound, 0),
        Err(Mismatch::Port)
    );
}

#[test]
fn a_bindresvport_caller_never_gets_an_unprivileged_port() {
    let caller = sock(libc::AF_INET, libc::SOCK_STREAM);
    let mut got = caller;
    got.bound_port = 1024;
    assert_eq!(
        check_received(Call::Resv, &caller, &got, 1024),
        Err(Mismatch::NotPrivileged)
    );
    assert_eq!(check_received(Call::Bind0, &caller, &got, 1024), Ok(()));
}

#[test]
fn cloexec_is_carried_by_dup3_and_nonblock_by_the_status_flags() {
    let plain = FdFlags {
        status: libc::O_RDWR,
        fd: 0,
    };
    assert_eq!(plain.dup3_flags(), 0);
    let cloexec = FdFlags {
        status: libc::O_RDWR | libc::O_NONBLOCK,
        fd: libc::FD_CLOEXEC,
    };
    assert_eq!(cloexec.dup3_flags(), libc::O_CLOEXEC);
    // received blocking, caller non-blocking: becomes non-blocking
    assert_eq!(
        cloexec.status_for(libc::O_RDWR),
        libc::O_RDWR | libc::O_NONBLOCK
    );
    // received non-blocking (the daemon's runtime), caller blocking: cleared
    assert_eq!(
        plain.status_for(libc::O_RDWR | libc::O_NONBLOCK),
        libc::O_RDWR
    );
}
