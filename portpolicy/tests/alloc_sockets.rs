//! The allocator's `Bind` decisions carried out with real sockets, as the
//! daemon will (a minimal reference driver: socket, SO_REUSEADDR,
//! IPV6_V6ONLY, bind, listen), in a private network namespace: a port
//! held by someone else (a listening server, or a connected client bound
//! the kernel NFS client's way) is skipped; an IPv6 lease leaves the IPv4
//! port alone; and a held reservation (no SO_REUSEADDR, dual-stack) makes
//! every other bind of its port fail, TCP and UDP, IPv4 and IPv6, with or
//! without SO_REUSEADDR.
//!
//! Each test re-runs itself (`--ignored`) under `unshare -n` as root, and
//! skips (passes, saying why) otherwise.

#![allow(clippy::unwrap_used)]

use nix::errno::Errno;
use nix::sys::socket::{
    bind, listen, setsockopt, socket, sockopt, AddressFamily, Backlog, SockFlag, SockType,
    SockaddrIn, SockaddrIn6,
};
use portpolicy::alloc::{AllocPolicy, Allocator, Bind, Caller, Decision, Settings};
use portpolicy::config::Config;
use portpolicy::policy::Sources;
use proto::alloc::{AllocArgs, ClaimArgs, Family, Grant, PaStatus, Socktype};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::os::fd::OwnedFd;

const CONFIG: &str = r#"
mode = "high"
high_range = "20000-20003"
[[reservation]]
name = "ipp"
port = 631
protocol = "both"
"#;

fn allocator() -> Allocator {
    let config = Config::from_files(&[("/etc/portpolicy.toml", CONFIG)]).unwrap();
    let policy = AllocPolicy::compute(&config, &Sources::default()).unwrap();
    Allocator::new(policy, Settings::from_config(&config, Family::Inet6))
}

fn root() -> Caller {
    Caller {
        pid: std::process::id() as i32,
        uid: 0,
        gids: vec![0],
        unit: None,
        start_time: None,
    }
}

/// What the daemon does with a `Bind`.
fn open(b: &Bind) -> Result<OwnedFd, Errno> {
    let opts = Opts {
        reuse_addr: b.reuse_addr,
        v6only: b.v6only,
        listen: b.listen,
    };
    open_with(b.family, b.socktype, b.port, opts)
}

/// Socket options of a bind.
#[derive(Clone, Copy)]
struct Opts {
    reuse_addr: bool,
    v6only: bool,
    listen: bool,
}

fn open_with(family: Family, socktype: Socktype, port: u16, o: Opts) -> Result<OwnedFd, Errno> {
    let af = match family {
        Family::Inet => AddressFamily::Inet,
        Family::Inet6 => AddressFamily::Inet6,
    };
    let ty = match socktype {
        Socktype::Stream => SockType::Stream,
        Socktype::Dgram => SockType::Datagram,
    };
    let fd = socket(af, ty, SockFlag::SOCK_CLOEXEC, None)?;
    setsockopt(&fd, sockopt::ReuseAddr, &o.reuse_addr)?;
    if family == Family::Inet6 {
        setsockopt(&fd, sockopt::Ipv6V6Only, &o.v6only)?;
    }
    bind_to(&fd, family, port)?;
    if o.listen {
        listen(&fd, Backlog::new(16).unwrap())?;
    }
    Ok(fd)
}

fn bind_to(fd: &OwnedFd, family: Family, port: u16) -> Result<(), Errno> {
    use std::os::fd::AsRawFd;
    match family {
        Family::Inet => bind(
            fd.as_raw_fd(),
            &SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)),
        ),
        Family::Inet6 => bind(
            fd.as_raw_fd(),
            &SockaddrIn6::from(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0)),
        ),
    }
}

/// The driver loop; the sockets granted are kept in `held`.
fn drive(a: &mut Allocator, mut d: Decision, held: &mut Vec<OwnedFd>) -> Result<Grant, PaStatus> {
    loop {
        d = match d {
            Decision::TryBind(b) => match open(&b) {
                Ok(fd) => {
                    held.push(fd);
                    a.on_bound(b.attempt, 1)
                }
                Err(Errno::EADDRINUSE) => a.on_bind_failed(b.attempt),
                Err(e) => panic!("{b:?}: {e}"),
            },
            Decision::Granted(g) => return Ok(g),
            Decision::Refused(s) => return Err(s),
        }
    }
}

/// A foreign socket on `port`, as a plain server would open it.
fn foreign(
    family: Family,
    socktype: Socktype,
    port: u16,
    reuse: bool,
    listen: bool,
) -> Result<OwnedFd, Errno> {
    let opts = Opts {
        reuse_addr: reuse,
        v6only: family == Family::Inet6,
        listen,
    };
    open_with(family, socktype, port, opts)
}

/// A TCP socket bound to `port` with SO_REUSEPORT, then connected to
/// 127.0.0.1:`to` (the kernel NFS client's way).
fn nfs_like_client(port: u16, to: u16) -> OwnedFd {
    use std::os::fd::AsRawFd;
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    setsockopt(&fd, sockopt::ReusePort, &true).unwrap();
    bind_to(&fd, Family::Inet, port).unwrap();
    let peer = SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::LOCALHOST, to));
    nix::sys::socket::connect(fd.as_raw_fd(), &peer).unwrap();
    fd
}

fn in_namespace(inner: &str) {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root for unshare -n");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let status = std::process::Command::new("unshare")
        .args([
            "-n",
            "sh",
            "-c",
            "ip link set lo up && exec \"$0\" --exact \"$1\" --ignored --test-threads=1",
        ])
        .arg(&exe)
        .arg(inner)
        .status()
        .unwrap();
    assert!(status.success(), "{inner} failed in its namespace");
}

#[test]
fn busy_ports_are_skipped() {
    in_namespace("inner_busy_ports_are_skipped");
}

#[test]
#[ignore = "run by busy_ports_are_skipped in a namespace"]
fn inner_busy_ports_are_skipped() {
    let mut a = allocator();
    let mut held = Vec::new();
    // 20000: a listening server. 20001: a connected client socket bound
    // with SO_REUSEPORT, as the kernel NFS client binds: a server's
    // SO_REUSEADDR bind + listen fails (see TESTING.md; here it is the
    // bind).
    let _server = foreign(Family::Inet, Socktype::Stream, 20000, true, true).unwrap();
    let _client = nfs_like_client(20001, 20000);
    let server = foreign(Family::Inet, Socktype::Stream, 20001, true, true);
    assert_eq!(server.err(), Some(Errno::EADDRINUSE));
    let args = AllocArgs::pool(Family::Inet, Socktype::Stream);
    let d = a.alloc(&args, &root());
    assert_eq!(drive(&mut a, d, &mut held).map(|g| g.port), Ok(20002));
    let d = a.alloc(&args, &root());
    assert_eq!(drive(&mut a, d, &mut held).map(|g| g.port), Ok(20003));
    let d = a.alloc(&args, &root());
    assert_eq!(drive(&mut a, d, &mut held), Err(PaStatus::POOL_EXHAUSTED));
    // A v6 lease is v6only: the v4 port stays free for the v4 pool.
    let d = a.alloc(&AllocArgs::pool(Family::Inet6, Socktype::Dgram), &root());
    let g = drive(&mut a, d, &mut held).unwrap();
    assert!(foreign(Family::Inet, Socktype::Dgram, g.port as u16, false, false).is_ok());
}

#[test]
fn a_held_reservation_blocks_every_bind() {
    in_namespace("inner_a_held_reservation_blocks_every_bind");
}

#[test]
#[ignore = "run by a_held_reservation_blocks_every_bind in a namespace"]
fn inner_a_held_reservation_blocks_every_bind() {
    let mut a = allocator();
    let mut held = Vec::new();
    for b in a.hold_reservations() {
        let fd = open(&b).unwrap();
        held.push(fd);
        assert!(matches!(a.on_bound(b.attempt, 1), Decision::Granted(_)));
    }
    assert_eq!(held.len(), 2);
    for socktype in [Socktype::Stream, Socktype::Dgram] {
        for family in [Family::Inet, Family::Inet6] {
            for reuse in [false, true] {
                let e = foreign(family, socktype, 631, reuse, socktype == Socktype::Stream);
                assert_eq!(
                    e.err(),
                    Some(Errno::EADDRINUSE),
                    "{family:?} {socktype:?} reuse={reuse}"
                );
            }
        }
    }
    // CLAIM of a held reservation: granted at once, the daemon dups.
    let claim = ClaimArgs {
        name: "ipp",
        socktype: Socktype::Stream,
    };
    assert_eq!(
        a.claim(&claim, &root()),
        Decision::Granted(Grant {
            port: 631,
            lease_id: 0
        })
    );
}
