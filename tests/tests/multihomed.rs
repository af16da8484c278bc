//! A multi-homed host: extra addresses on `lo` (documentation ranges) or a
//! veth pair between two namespaces. UDP replies must leave from the
//! address the request was sent to; GETADDR merges a wildcard
//! registration to the caller's side (RFC 1833 section 2.2.1, RPCBPROC_GETADDR);
//! `-h` limits UDP to the given addresses plus loopback (rpcbind(8)).
//! Expectations are what Debian's C rpcbind does, observed here.

use std::net::SocketAddr;
use std::time::Duration;

use e2e::rpcwire::{self, Reply, Target, IPPROTO_TCP, IPPROTO_UDP};
use e2e::{cases, rpcclient, Impl, Namespace, Rpcbind};

const T: Duration = Duration::from_secs(3);

fn udp(to: &str, bind: &str) -> Target {
    Target::Udp {
        to: to.parse().expect("address"),
        bind: Some(bind.parse().expect("address")),
    }
}

fn tcp(to: &str) -> Target {
    Target::Tcp {
        to: to.parse().expect("address"),
        bind: None,
    }
}

/// GETPORT of rpcbind itself over `target`, from inside `ns`.
fn getport(
    ns: &Namespace,
    target: Target,
    timeout: Duration,
) -> std::io::Result<(u32, Option<SocketAddr>)> {
    ns.in_netns(move || rpcwire::pmap_getport(&target, 100000, 2, IPPROTO_UDP, timeout))
}

fn register_wildcards(ns: &Namespace) {
    for (netid, uaddr) in [
        ("udp", "0.0.0.0.4.1"),
        ("tcp", "0.0.0.0.4.1"),
        ("udp6", "::.4.1"),
        ("tcp6", "::.4.1"),
    ] {
        let mut c = ns.command(rpcclient());
        c.args([
            "unix:/run/rpcbind.sock",
            "set",
            "300000",
            "1",
            netid,
            uaddr,
            "",
        ]);
        let out = e2e::run_with_timeout(c, Duration::from_secs(10));
        assert_eq!(out.stdout.trim(), "true", "SET {netid}: {out:?}");
    }
}

cases! {
    fn udp_reply_leaves_from_the_address_asked(which) {
        let ns = Namespace::new();
        ns.add_address("192.0.2.1/24");
        ns.add_address("2001:db8::1/64");
        let _d = Rpcbind::start(&ns, which, &[]);
        // The client sits on the loopback address: a daemon that let the
        // kernel pick the source would answer from 127.0.0.1 / ::1.
        for (to, bind) in [
            ("192.0.2.1:111", "127.0.0.1:0"),
            ("127.0.0.1:111", "192.0.2.1:0"),
            ("[2001:db8::1]:111", "[::1]:0"),
            ("[::1]:111", "[2001:db8::1]:0"),
        ] {
            let (port, from) = getport(&ns, udp(to, bind), T)
                .unwrap_or_else(|e| panic!("{} GETPORT to {to} from {bind}: {e}", which.name()));
            assert_eq!(port, 111);
            assert_eq!(from, Some(to.parse().unwrap()), "{}: reply to a call sent to {to}", which.name());
        }
    }

    fn getaddr_merges_wildcard_to_callers_side(which) {
        let server = Namespace::new();
        let peer = Namespace::new();
        Namespace::veth_pair(&server, &peer, "192.0.2.1/24", "192.0.2.2/24");
        let _d = Rpcbind::start(&server, which, &[]);
        register_wildcards(&server);
        for target in [udp("192.0.2.1:111", "0.0.0.0:0"), tcp("192.0.2.1:111")] {
            for (vers, netid) in [(3, "udp"), (3, "tcp"), (4, "udp"), (4, "tcp")] {
                let t = target.clone();
                let (uaddr, _) = peer
                    .in_netns(move || rpcwire::rpcb_getaddr(&t, vers, 300000, 1, netid))
                    .unwrap_or_else(|e| panic!("{} GETADDR from the peer: {e}", which.name()));
                assert_eq!(uaddr, "192.0.2.1.4.1", "{}: v{vers} {netid} over {target:?}", which.name());
            }
            let t = target.clone();
            let (port, _) = peer
                .in_netns(move || rpcwire::pmap_getport(&t, 300000, 1, IPPROTO_TCP, T))
                .unwrap();
            assert_eq!(port, 1025);
        }
        for target in [udp("127.0.0.1:111", "0.0.0.0:0"), tcp("127.0.0.1:111")] {
            let (uaddr, _) = server
                .in_netns(move || rpcwire::rpcb_getaddr(&target, 4, 300000, 1, "udp"))
                .unwrap();
            assert_eq!(uaddr, "127.0.0.1.4.1", "{}: from loopback", which.name());
        }
        let (uaddr, _) = server
            .in_netns(|| rpcwire::rpcb_getaddr(&tcp("[::1]:111"), 4, 300000, 1, "tcp6"))
            .unwrap();
        assert_eq!(uaddr, "::1.4.1", "{}: tcp6 from ::1", which.name());
        // A real client on the peer sees the merged addresses too.
        let out = peer.run("rpcinfo", &["-l", "192.0.2.1", "300000", "1"], Duration::from_secs(10));
        out.assert_success("rpcinfo -l from the peer");
        assert!(out.stdout.contains("192.0.2.1.4.1"), "{}: {}", which.name(), out.stdout);
    }

    fn h_limits_udp_to_given_addresses_and_loopback(which) {
        let ns = Namespace::new();
        ns.add_address("192.0.2.1/24");
        ns.add_address("198.51.100.1/24");
        ns.add_address("2001:db8::1/64");
        let _d = Rpcbind::start(&ns, which, &["-h", "192.0.2.1"]);
        for to in ["192.0.2.1:111", "127.0.0.1:111", "[::1]:111"] {
            let bind = if to.starts_with('[') { "[::]:0" } else { "0.0.0.0:0" };
            let (port, from) = getport(&ns, udp(to, bind), T)
                .unwrap_or_else(|e| panic!("{}: UDP to {to} must answer: {e}", which.name()));
            assert_eq!((port, from), (111, Some(to.parse().unwrap())));
        }
        for to in ["198.51.100.1:111", "[2001:db8::1]:111"] {
            let bind = if to.starts_with('[') { "[::]:0" } else { "0.0.0.0:0" };
            let r = getport(&ns, udp(to, bind), Duration::from_secs(1));
            assert!(r.is_err(), "{}: UDP to {to} must get no answer with -h, got {r:?}", which.name());
        }
        // TCP is not limited by -h.
        for to in ["198.51.100.1:111", "[2001:db8::1]:111", "192.0.2.1:111"] {
            let (port, _) = getport(&ns, tcp(to), T)
                .unwrap_or_else(|e| panic!("{}: TCP to {to} must answer: {e}", which.name()));
            assert_eq!(port, 111);
        }
    }

    fn h_repeated_with_ipv6(which) {
        let ns = Namespace::new();
        for a in ["192.0.2.1/24", "198.51.100.1/24", "2001:db8::1/64", "2001:db8::2/64"] {
            ns.add_address(a);
        }
        let _d = Rpcbind::start(&ns, which, &["-h", "192.0.2.1", "-h", "2001:db8::1"]);
        for to in ["192.0.2.1:111", "[2001:db8::1]:111", "127.0.0.1:111", "[::1]:111"] {
            let bind = if to.starts_with('[') { "[::]:0" } else { "0.0.0.0:0" };
            let (port, from) = getport(&ns, udp(to, bind), T)
                .unwrap_or_else(|e| panic!("{}: UDP to {to} must answer: {e}", which.name()));
            assert_eq!((port, from), (111, Some(to.parse().expect("addr"))));
        }
        for to in ["198.51.100.1:111", "[2001:db8::2]:111"] {
            let bind = if to.starts_with('[') { "[::]:0" } else { "0.0.0.0:0" };
            let r = getport(&ns, udp(to, bind), Duration::from_secs(1));
            assert!(r.is_err(), "{}: UDP to {to} must get no answer, got {r:?}", which.name());
        }
    }
}

/// Ours only: a UDP reply to a non-local caller is at most
/// `--udp-reply-factor` (default 1) times its request, else SYSTEM_ERR,
/// so the daemon cannot amplify a spoofed request. Loopback callers, TCP
/// and `--udp-reply-factor 0` get the full reply. The C daemon has no cap.
#[test]
fn udp_reply_cap_for_remote_callers() {
    e2e::run_case("udp_reply_cap_for_remote_callers", Impl::Ours, |which| {
        for (extra, capped) in [(&[][..], true), (&["--udp-reply-factor", "0"][..], false)] {
            let server = Namespace::new();
            let peer = Namespace::new();
            Namespace::veth_pair(&server, &peer, "192.0.2.1/24", "192.0.2.2/24");
            let _d = Rpcbind::start(&server, which, extra);
            let dump = rpcwire::call_message(7, 100000, 3, 4, &[]);
            let remote = {
                let dump = dump.clone();
                peer.in_netns(move || e2e::exchange::udp_exchange("192.0.2.1:111", &dump))
            };
            let remote = rpcwire::parse_reply(7, &remote.expect("a reply")).expect("decodes");
            let local = {
                let dump = dump.clone();
                server.in_netns(move || e2e::exchange::udp_exchange("127.0.0.1:111", &dump))
            };
            let local = rpcwire::parse_reply(7, &local.expect("a reply")).expect("decodes");
            assert!(
                matches!(local, Reply::Success(ref r) if r.len() > dump.len()),
                "{local:?}"
            );
            if capped {
                assert_eq!(
                    remote,
                    Reply::Accepted(5),
                    "SYSTEM_ERR for a remote UDP DUMP"
                );
            } else {
                assert_eq!(remote, local, "uncapped: the same DUMP as over loopback");
            }
            // A small reply (GETPORT) is never capped; TCP never is.
            let (port, _) = getport(&peer, udp("192.0.2.1:111", "0.0.0.0:0"), T).expect("GETPORT");
            assert_eq!(port, 111);
            let tcp_dump = peer.in_netns(move || {
                let (reply, _) = rpcwire::call(&tcp("192.0.2.1:111"), &dump).expect("tcp call");
                rpcwire::parse_reply(7, &reply).expect("decodes")
            });
            assert_eq!(tcp_dump, local, "TCP DUMP from the peer");
        }
    });
}
