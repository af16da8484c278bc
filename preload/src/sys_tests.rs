//! Tests of the system-call layer with real sockets (no service, no root
//! needed): socket facts, flag carry-over through dup3, address parsing
//! and writing, and `bind` passing straight to libc's.

use super::*;
use std::net::UdpSocket;
use std::os::fd::{FromRawFd, IntoRawFd};

/// A fresh, unbound socket (as the caller of bindresvport has).
fn unbound(domain: c_int, ty: c_int) -> OwnedFd {
    // SAFETY: socket(2) with constant arguments; the result is checked and
    // owned exactly once.
    let fd = unsafe { libc::socket(domain, ty, 0) };
    assert!(fd >= 0, "socket: {}", io::Error::last_os_error());
    // SAFETY: `fd` is a new descriptor nobody else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn is_cloexec(fd: RawFd) -> bool {
    fcntl_get(fd, libc::F_GETFD).unwrap() & libc::FD_CLOEXEC != 0
}

fn is_nonblock(fd: RawFd) -> bool {
    fcntl_get(fd, libc::F_GETFL).unwrap() & libc::O_NONBLOCK != 0
}

#[test]
fn sock_info_reads_domain_type_protocol_and_bound_port() {
    let s = unbound(libc::AF_INET, libc::SOCK_DGRAM);
    let info = sock_info(s.as_raw_fd()).unwrap();
    assert_eq!(
        (info.domain, info.socktype, info.protocol, info.bound_port),
        (libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_UDP, 0)
    );
    let bound = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = bound.local_addr().unwrap().port();
    assert_eq!(sock_info(bound.as_raw_fd()).unwrap().bound_port, port);
    let s6 = unbound(libc::AF_INET6, libc::SOCK_STREAM | libc::SOCK_NONBLOCK);
    let info = sock_info(s6.as_raw_fd()).unwrap();
    assert_eq!(
        (info.domain, info.socktype, info.protocol),
        (libc::AF_INET6, libc::SOCK_STREAM, libc::IPPROTO_TCP),
        "SO_TYPE carries no SOCK_NONBLOCK"
    );
}

#[test]
fn sock_info_fails_on_a_non_socket() {
    let file = std::fs::File::open("/dev/null").unwrap();
    assert!(sock_info(file.as_raw_fd()).is_err());
}

#[test]
fn put_in_place_keeps_the_number_and_the_callers_nonblock_and_cloexec() {
    for (ty, nonblock, cloexec) in [
        (libc::SOCK_DGRAM, false, false),
        (
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            true,
            true,
        ),
        (libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, false, true),
        (libc::SOCK_DGRAM | libc::SOCK_NONBLOCK, true, false),
    ] {
        let caller = unbound(libc::AF_INET, ty);
        let sd = caller.as_raw_fd();
        let flags = fd_flags(sd).unwrap();
        // The service's socket: bound, close-on-exec (MSG_CMSG_CLOEXEC) and
        // non-blocking when the caller is blocking, to see both flip.
        let received = UdpSocket::bind("127.0.0.1:0").unwrap();
        received.set_nonblocking(!nonblock).unwrap();
        let port = received.local_addr().unwrap().port();
        let received = OwnedFd::from(received);
        put_in_place(&received, sd, flags).unwrap();
        drop(received);
        assert_eq!(
            sock_info(sd).unwrap().bound_port,
            port,
            "sd names the new socket"
        );
        assert_eq!(is_nonblock(sd), nonblock, "O_NONBLOCK for {ty:#x}");
        assert_eq!(is_cloexec(sd), cloexec, "FD_CLOEXEC for {ty:#x}");
        // still usable after the received descriptor is closed
        let sock = UdpSocket::from(caller);
        assert_eq!(sock.local_addr().unwrap().port(), port);
    }
}

#[test]
fn addresses_are_read_by_family_and_length() {
    let v4: SocketAddr = "127.0.0.1:700".parse().unwrap();
    let sin = sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 700u16.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(Ipv4Addr::LOCALHOST).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: pointers to a live sockaddr_in of the stated size.
    unsafe {
        assert_eq!(read_sockaddr_in(&sin), Requested::Addr(v4));
        assert_eq!(
            read_sockaddr_by_family((&sin as *const sockaddr_in).cast()),
            Requested::Addr(v4)
        );
        let p = (&sin as *const sockaddr_in).cast::<sockaddr>();
        assert_eq!(
            read_sockaddr_len(p, size_of::<sockaddr_in>() as socklen_t),
            Requested::Addr(v4)
        );
        assert_eq!(
            read_sockaddr_len(p, 8),
            Requested::Other(libc::AF_INET),
            "truncated"
        );
        assert_eq!(read_sockaddr_in(std::ptr::null()), Requested::Null);
    }
}

#[test]
fn the_port_is_written_back_in_network_order() {
    let mut sin6: sockaddr_in6 = {
        // SAFETY: all-zero bytes are a valid sockaddr_in6.
        unsafe { std::mem::zeroed() }
    };
    sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    // SAFETY: a live, writable sockaddr_in6.
    unsafe { write_port((&mut sin6 as *mut sockaddr_in6).cast(), 1016) };
    assert_eq!(u16::from_be(sin6.sin6_port), 1016);
}

#[test]
fn bind_passes_straight_to_libc_when_bind0_is_off() {
    // In the test build `bind` is an ordinary function; it must reach
    // libc's bind through dlsym, never itself.
    let s = unbound(libc::AF_INET, libc::SOCK_DGRAM);
    let sin = sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(Ipv4Addr::LOCALHOST).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = size_of::<sockaddr_in>() as socklen_t;
    // SAFETY: a live sockaddr_in of `len` bytes.
    let rc = unsafe { bind(s.as_raw_fd(), (&sin as *const sockaddr_in).cast(), len) };
    assert_eq!(rc, 0, "{}", io::Error::last_os_error());
    assert_ne!(sock_info(s.as_raw_fd()).unwrap().bound_port, 0);
    let again = s.into_raw_fd();
    // SAFETY: closing the descriptor taken out of the OwnedFd above.
    unsafe { libc::close(again) };
}

#[test]
fn bindresvport_falls_back_to_the_real_function_when_not_served() {
    // The test binary links no libtirpc: the real function is glibc's.
    // Served or not, a root caller gets a reserved port and a non-root
    // caller EACCES, as from glibc alone.
    let s = unbound(libc::AF_INET, libc::SOCK_DGRAM);
    // SAFETY: a NULL sin is allowed.
    let rc = unsafe { bindresvport(s.as_raw_fd(), std::ptr::null_mut()) };
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        assert_eq!(rc, 0, "{}", io::Error::last_os_error());
        let port = sock_info(s.as_raw_fd()).unwrap().bound_port;
        assert!((512..1024).contains(&port), "port {port}");
    } else {
        assert_eq!(rc, -1);
        assert_eq!(errno(), libc::EACCES);
    }
}

#[test]
fn a_missing_real_function_reports_enosys_and_leaves_the_socket_alone() {
    // No libtirpc in this process: bindresvport_sa has no real definition.
    // A unix socket is never served, so this reaches the (absent) real one.
    let s = unbound(libc::AF_UNIX, libc::SOCK_DGRAM);
    // SAFETY: a NULL sa is allowed.
    let rc = unsafe { bindresvport_sa(s.as_raw_fd(), std::ptr::null_mut()) };
    assert_eq!((rc, errno()), (-1, libc::ENOSYS));
    assert!(sock_info(s.as_raw_fd()).is_ok());
}

#[test]
fn finish_runs_the_real_function_after_a_panic_or_a_fallback() {
    set_errno(libc::EINTR);
    let panicked: std::thread::Result<Result<u16, Fallback>> = Err(Box::new("boom"));
    let mut errno_seen = 0;
    let rc = finish("test", 3, libc::EAGAIN, panicked, || {
        errno_seen = errno();
        -7
    });
    assert_eq!(rc, -7, "the real function's result");
    assert_eq!(
        errno_seen,
        libc::EAGAIN,
        "the real function starts from the caller's errno"
    );
    let rc = finish("test", 3, libc::EAGAIN, Ok(Err(Fallback::Service)), || -8);
    assert_eq!(rc, -8);
}

#[test]
fn finish_returns_zero_with_the_callers_errno_when_served() {
    set_errno(libc::ECONNREFUSED); // as the shim's own failed connect leaves it
    let rc = finish("test", 3, libc::EAGAIN, Ok(Ok(700)), || {
        panic!("the real function must not run")
    });
    assert_eq!((rc, errno()), (0, libc::EAGAIN));
}
