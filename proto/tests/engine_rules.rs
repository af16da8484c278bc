//! One test per rule of `proto/RULES.md`: the engine answers as Debian's C
//! rpcbind 1.2.6 does. Requests are built with the crate's own encoders,
//! replies decoded with its decoders; no sockets.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use proto::engine::{Engine, EngineConfig, Interface, Outcome, RequestContext, Transport};
use proto::rpc::{
    AcceptedReply, AuthFlavor, AuthStat, CallHeader, OpaqueAuth, Procedure, Program, RejectedReply,
    Reply, ReplyBody, Version,
};
use proto::rpcb::{Mapping, Pmaplist, Rpcb, RpcbEntryList, RpcbStatByvers, Rpcblist};
use proto::xdr::{Decode, Encode, XdrReader};

// ---- a tiny client -------------------------------------------------------

fn engine_with(config: EngineConfig) -> Engine {
    let mut e = Engine::new(config);
    e.register_own(Transport::Local, "/run/rpcbind.sock");
    e.register_own(Transport::Udp, "0.0.0.0.0.111");
    e.register_own(Transport::Tcp, "0.0.0.0.0.111");
    e.register_own(Transport::Udp6, "::.0.111");
    e.register_own(Transport::Tcp6, "::.0.111");
    e
}

fn engine() -> Engine {
    engine_with(EngineConfig::default())
}

fn local(uid: u32) -> RequestContext {
    RequestContext {
        transport: Transport::Local,
        peer: None,
        local: None,
        peer_uid: Some(uid),
    }
}

fn ip(transport: Transport, peer: &str, local: &str) -> RequestContext {
    RequestContext {
        transport,
        peer: Some(peer.parse::<SocketAddr>().unwrap()),
        local: Some(local.parse::<SocketAddr>().unwrap()),
        peer_uid: None,
    }
}

fn udp(peer: &str) -> RequestContext {
    ip(Transport::Udp, peer, "127.0.0.1:111")
}

fn tcp(peer: &str) -> RequestContext {
    ip(Transport::Tcp, peer, "127.0.0.1:111")
}

fn message(vers: u32, proc: u32, args: &[u8]) -> Vec<u8> {
    let mut m = CallHeader::new(0x1234, Program::PORTMAP, Version(vers), Procedure(proc)).to_xdr();
    m.extend_from_slice(args);
    m
}

fn send(e: &mut Engine, ctx: &RequestContext, vers: u32, proc: u32, args: &[u8]) -> Outcome {
    e.handle(&message(vers, proc, args), ctx, SystemTime::now())
}

fn reply_bytes(o: Outcome) -> Vec<u8> {
    match o {
        Outcome::Reply(b) => b,
        other => panic!("expected a reply, got {other:?}"),
    }
}

/// The accepted reply of an outcome, with SUCCESS results copied out.
fn accepted(o: Outcome) -> (AcceptedReply<'static>, Vec<u8>) {
    let bytes = reply_bytes(o);
    let reply = Reply::decode(&mut XdrReader::new(&bytes)).unwrap();
    match reply.body {
        ReplyBody::Accepted {
            reply: AcceptedReply::Success(r),
            ..
        } => (AcceptedReply::Success(&[]), r.to_vec()),
        ReplyBody::Accepted {
            reply: AcceptedReply::ProgMismatch { low, high },
            ..
        } => (AcceptedReply::ProgMismatch { low, high }, Vec::new()),
        ReplyBody::Accepted {
            reply: AcceptedReply::ProgUnavail,
            ..
        } => (AcceptedReply::ProgUnavail, Vec::new()),
        ReplyBody::Accepted {
            reply: AcceptedReply::ProcUnavail,
            ..
        } => (AcceptedReply::ProcUnavail, Vec::new()),
        ReplyBody::Accepted {
            reply: AcceptedReply::GarbageArgs,
            ..
        } => (AcceptedReply::GarbageArgs, Vec::new()),
        ReplyBody::Accepted {
            reply: AcceptedReply::SystemErr,
            ..
        } => (AcceptedReply::SystemErr, Vec::new()),
        ReplyBody::Denied(d) => panic!("denied: {d:?}"),
    }
}

fn results(o: Outcome) -> Vec<u8> {
    match accepted(o) {
        (AcceptedReply::Success(_), r) => r,
        (other, _) => panic!("expected SUCCESS, got {other:?}"),
    }
}

fn denied(o: Outcome) -> RejectedReply {
    let bytes = reply_bytes(o);
    match Reply::decode(&mut XdrReader::new(&bytes)).unwrap().body {
        ReplyBody::Denied(d) => d,
        other => panic!("expected a denied reply, got {other:?}"),
    }
}

fn as_bool(r: Vec<u8>) -> bool {
    bool::from_xdr(&r).unwrap()
}

fn as_u32(r: Vec<u8>) -> u32 {
    u32::from_xdr(&r).unwrap()
}

fn as_string(r: Vec<u8>) -> String {
    XdrReader::new(&r).string(u32::MAX).unwrap().to_owned()
}

fn rpcb(prog: u32, vers: u32, netid: &str, addr: &str) -> Vec<u8> {
    Rpcb {
        prog: Program(prog),
        vers: Version(vers),
        netid: netid.into(),
        addr: addr.into(),
        owner: "ignored".into(),
    }
    .to_xdr()
}

fn mapping(prog: u32, vers: u32, prot: u32, port: u32) -> Vec<u8> {
    Mapping {
        prog: Program(prog),
        vers: Version(vers),
        prot,
        port,
    }
    .to_xdr()
}

fn set(
    e: &mut Engine,
    ctx: &RequestContext,
    prog: u32,
    vers: u32,
    netid: &str,
    addr: &str,
) -> bool {
    as_bool(results(send(e, ctx, 3, 1, &rpcb(prog, vers, netid, addr))))
}

fn unset(e: &mut Engine, ctx: &RequestContext, prog: u32, vers: u32, netid: &str) -> bool {
    as_bool(results(send(e, ctx, 4, 2, &rpcb(prog, vers, netid, ""))))
}

fn getaddr(e: &mut Engine, ctx: &RequestContext, proc: u32, prog: u32, vers: u32) -> String {
    as_string(results(send(
        e,
        ctx,
        4,
        proc,
        &rpcb(prog, vers, "ignored", ""),
    )))
}

fn dump(e: &mut Engine) -> Vec<Rpcb> {
    Rpcblist::from_xdr(&results(send(e, &local(0), 3, 4, &[])))
        .unwrap()
        .0
}

fn pmap_dump(e: &mut Engine) -> Vec<Mapping> {
    Pmaplist::from_xdr(&results(send(e, &local(0), 2, 4, &[])))
        .unwrap()
        .0
}

const TCP: u32 = 6;
const UDP: u32 = 17;

// ---- the rules ------------------------------------------------------------

#[test]
fn set_never_overwrites() {
    let mut e = engine();
    assert!(set(&mut e, &local(0), 300_000, 1, "udp", "0.0.0.0.3.1"));
    assert!(
        set(&mut e, &local(0), 300_000, 1, "udp", "0.0.0.0.3.1"),
        "same address: TRUE"
    );
    assert!(
        !set(&mut e, &local(0), 300_000, 1, "udp", "0.0.0.0.9.9"),
        "other address: FALSE"
    );
    let d = dump(&mut e);
    let mine: Vec<_> = d.iter().filter(|r| r.prog.0 == 300_000).collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].addr, "0.0.0.0.3.1");
}

#[test]
fn unset_answers_true_when_nothing_matched() {
    let mut e = engine();
    assert!(unset(&mut e, &local(1000), 300_999, 1, "udp"));
    let pmap_unset = send(&mut e, &local(1000), 2, 2, &mapping(300_999, 1, 0, 0));
    assert!(as_bool(results(pmap_unset)));
}

#[test]
fn unset_refuses_non_owners() {
    let mut e = engine();
    assert!(set(&mut e, &local(1000), 300_001, 1, "udp", "0.0.0.0.3.1"));
    assert!(set(&mut e, &local(1000), 300_001, 1, "tcp", "0.0.0.0.3.1"));
    assert!(!unset(&mut e, &local(1001), 300_001, 1, ""), "another uid");
    assert!(
        !unset(&mut e, &tcp("127.0.0.1:40000"), 300_001, 1, ""),
        "owner unknown"
    );
    assert_eq!(
        dump(&mut e).iter().filter(|r| r.prog.0 == 300_001).count(),
        2
    );
    assert!(unset(&mut e, &local(0), 300_001, 1, "udp"), "superuser may");
    assert!(unset(&mut e, &local(1000), 300_001, 1, ""), "the owner may");
    assert_eq!(
        dump(&mut e).iter().filter(|r| r.prog.0 == 300_001).count(),
        0
    );
}

#[test]
fn unset_with_empty_netid_removes_every_netid() {
    let mut e = engine();
    for netid in ["udp", "tcp", "udp6", "local"] {
        assert!(set(&mut e, &local(0), 300_002, 2, netid, "0.0.0.0.3.2"));
    }
    assert!(unset(&mut e, &local(0), 300_002, 2, ""));
    assert!(!dump(&mut e).iter().any(|r| r.prog.0 == 300_002));
    assert!(!pmap_dump(&mut e).iter().any(|m| m.prog.0 == 300_002));
}

#[test]
fn netids_compare_case_insensitively_except_in_the_pmap_mirror() {
    let mut e = engine();
    assert!(set(&mut e, &local(0), 300_003, 1, "udp", "0.0.0.0.3.3"));
    assert!(!set(&mut e, &local(0), 300_003, 1, "UDP", "0.0.0.0.4.4"));
    assert!(unset(&mut e, &local(0), 300_003, 1, "UDP"));
    assert!(!dump(&mut e).iter().any(|r| r.prog.0 == 300_003));
    // C's del_pmaplist compares the netid with strcmp: the mapping stays.
    assert!(pmap_dump(&mut e).iter().any(|m| m.prog.0 == 300_003));
}

/// Observed: C registers netid `udp\0zz` as `udp` and `0.0.0.0.1.2\0junk`
/// as `0.0.0.0.1.2` (its strings end at the first NUL).
#[test]
fn strings_end_at_the_first_nul_as_in_c() {
    let mut e = engine();
    let args = [
        &300_400u32.to_be_bytes()[..],
        &1u32.to_be_bytes(),
        &[0, 0, 0, 6],
        b"udp\0zz\0\0",
        &[0, 0, 0, 16],
        b"0.0.0.0.1.2\0junk",
        &[0, 0, 0, 0],
    ]
    .concat();
    assert!(as_bool(results(send(&mut e, &local(0), 3, 1, &args))));
    let d = dump(&mut e);
    let r = d.iter().find(|r| r.prog.0 == 300_400).unwrap();
    assert_eq!((r.netid.as_str(), r.addr.as_str()), ("udp", "0.0.0.0.1.2"));
    let port = send(
        &mut e,
        &udp("127.0.0.1:9"),
        2,
        3,
        &mapping(300_400, 1, UDP, 0),
    );
    assert_eq!(as_u32(results(port)), 0x102);
}

#[test]
fn owners_are_superuser_uid_or_unknown() {
    let mut e = engine();
    assert!(set(&mut e, &local(0), 300_010, 1, "udp", "0.0.0.0.1.1"));
    assert!(set(&mut e, &local(1000), 300_011, 1, "udp", "0.0.0.0.1.2"));
    assert!(set(
        &mut e,
        &udp("127.0.0.1:700"),
        300_012,
        1,
        "udp",
        "0.0.0.0.1.3"
    ));
    assert!(set(
        &mut e,
        &udp("127.0.0.1:40000"),
        300_013,
        1,
        "udp",
        "0.0.0.0.1.4"
    ));
    let ctx = RequestContext {
        peer_uid: None,
        ..local(0)
    };
    assert!(set(&mut e, &ctx, 300_014, 1, "udp", "0.0.0.0.1.5"));
    let owners: Vec<(u32, String)> = dump(&mut e)
        .into_iter()
        .filter(|r| r.prog.0 >= 300_010)
        .map(|r| (r.prog.0, r.owner))
        .collect();
    let want = [
        (300_010, "superuser"),
        (300_011, "1000"),
        (300_012, "superuser"),
        (300_013, "unknown"),
        (300_014, "unknown"),
    ];
    let want: Vec<(u32, String)> = want.iter().map(|(p, o)| (*p, o.to_string())).collect();
    assert_eq!(owners, want);
}

#[test]
fn set_and_unset_only_from_local_callers() {
    let mut e = engine();
    let far = ip(Transport::Udp, "192.0.2.7:700", "192.0.2.1:111");
    for (vers, proc, args) in [
        (3, 1, rpcb(300_020, 1, "udp", "0.0.0.0.1.1")),
        (4, 2, rpcb(300_020, 1, "udp", "")),
        (2, 1, mapping(300_020, 1, UDP, 700)),
        (2, 2, mapping(300_020, 1, UDP, 700)),
    ] {
        let d = denied(send(&mut e, &far, vers, proc, &args));
        assert_eq!(d, RejectedReply::AuthError(AuthStat::TOOWEAK));
    }
    // Debian accepts exactly 127.0.0.1 and ::1 as local, not 127.0.0.2.
    let d = denied(send(
        &mut e,
        &udp("127.0.0.2:700"),
        3,
        1,
        &rpcb(300_020, 1, "udp", "0.0.0.0.1.1"),
    ));
    assert_eq!(d, RejectedReply::AuthError(AuthStat::TOOWEAK));
    let six = ip(Transport::Tcp6, "[::1]:4000", "[::1]:111");
    assert!(set(&mut e, &six, 300_020, 1, "udp6", "::1.1.1"));
    // -i lifts the rule; local_socket_only (newer upstream) tightens it.
    let mut insecure = engine_with(EngineConfig {
        insecure: true,
        ..EngineConfig::default()
    });
    assert!(set(&mut insecure, &far, 300_020, 1, "udp", "0.0.0.0.1.1"));
    let mut strict = engine_with(EngineConfig {
        local_socket_only: true,
        ..EngineConfig::default()
    });
    let d = denied(send(
        &mut strict,
        &tcp("127.0.0.1:700"),
        3,
        1,
        &rpcb(300_020, 1, "udp", "0.0.0.0.1.1"),
    ));
    assert_eq!(d, RejectedReply::AuthError(AuthStat::TOOWEAK));
}

#[test]
fn getaddr_is_keyed_on_the_arrival_netid() {
    let mut e = engine();
    assert!(set(&mut e, &local(0), 300_030, 1, "udp", "127.0.0.1.4.1"));
    let req = rpcb(300_030, 1, "udp", "");
    assert_eq!(
        as_string(results(send(&mut e, &tcp("127.0.0.1:4000"), 4, 3, &req))),
        ""
    );
    assert_eq!(
        as_string(results(send(&mut e, &udp("127.0.0.1:4000"), 3, 3, &req))),
        "127.0.0.1.4.1"
    );
    assert_eq!(as_string(results(send(&mut e, &local(0), 4, 3, &req))), "");
}

#[test]
fn getaddr_returns_any_version_getversaddr_the_exact_one() {
    let mut e = engine();
    assert!(set(&mut e, &local(0), 300_031, 2, "udp", "127.0.0.1.4.2"));
    assert!(set(&mut e, &local(0), 300_031, 4, "udp", "127.0.0.1.4.4"));
    let c = udp("127.0.0.1:4000");
    assert_eq!(getaddr(&mut e, &c, 3, 300_031, 2), "127.0.0.1.4.2");
    assert_eq!(
        getaddr(&mut e, &c, 3, 300_031, 3),
        "127.0.0.1.4.4",
        "last registered"
    );
    assert_eq!(getaddr(&mut e, &c, 9, 300_031, 3), "");
    assert_eq!(getaddr(&mut e, &c, 9, 300_031, 4), "127.0.0.1.4.4");
}

#[test]
fn getport_falls_back_to_another_version() {
    let mut e = engine();
    let pset = |e: &mut Engine, vers, prot, port| {
        as_bool(results(send(
            e,
            &local(0),
            2,
            1,
            &mapping(300_032, vers, prot, port),
        )))
    };
    assert!(pset(&mut e, 1, UDP, 801));
    assert!(pset(&mut e, 3, UDP, 803));
    assert!(pset(&mut e, 2, TCP, 902));
    let port = |e: &mut Engine, vers, prot| {
        as_u32(results(send(
            e,
            &udp("127.0.0.1:9"),
            2,
            3,
            &mapping(300_032, vers, prot, 0),
        )))
    };
    assert_eq!(port(&mut e, 1, UDP), 801);
    assert_eq!(port(&mut e, 2, UDP), 803, "the last of the other versions");
    assert_eq!(port(&mut e, 7, TCP), 902);
    assert_eq!(port(&mut e, 1, 99), 0);
    assert_eq!(port(&mut e, 1, 0), 0);
}

#[test]
fn pmap_and_rpcbind_lists_mirror_for_ipv4_udp_tcp_only() {
    let mut e = engine();
    let r = send(&mut e, &local(0), 2, 1, &mapping(300_040, 1, TCP, 0x1234));
    assert!(as_bool(results(r)));
    let d = dump(&mut e);
    let m = d.iter().find(|r| r.prog.0 == 300_040).unwrap();
    assert_eq!(
        (m.netid.as_str(), m.addr.as_str(), m.owner.as_str()),
        ("tcp", "0.0.0.0.18.52", "superuser")
    );
    assert!(set(&mut e, &local(0), 300_041, 1, "udp", "0.0.0.0.1.2"));
    assert!(set(&mut e, &local(0), 300_042, 1, "udp6", "::.1.2"));
    assert!(set(&mut e, &local(0), 300_043, 1, "local", "/run/x.sock"));
    let pm: Vec<(u32, u32, u32)> = pmap_dump(&mut e)
        .iter()
        .filter(|m| m.prog.0 >= 300_040)
        .map(|m| (m.prog.0, m.prot, m.port))
        .collect();
    assert_eq!(pm, [(300_040, TCP, 0x1234), (300_041, UDP, 0x102)]);
    let r = send(&mut e, &local(0), 2, 1, &mapping(300_044, 1, 99, 1));
    assert!(!as_bool(results(r)), "PMAP SET of another protocol: FALSE");
}

#[test]
fn own_registrations_in_the_c_daemons_dump_order() {
    let mut e = engine();
    let d: Vec<(u32, String, String)> = dump(&mut e)
        .into_iter()
        .map(|r| (r.vers.0, r.netid, r.addr))
        .collect();
    let want = [
        (4, "tcp6", "::.0.111"),
        (3, "tcp6", "::.0.111"),
        (4, "udp6", "::.0.111"),
        (3, "udp6", "::.0.111"),
        (4, "tcp", "0.0.0.0.0.111"),
        (3, "tcp", "0.0.0.0.0.111"),
        (2, "tcp", "0.0.0.0.0.111"),
        (4, "udp", "0.0.0.0.0.111"),
        (3, "udp", "0.0.0.0.0.111"),
        (2, "udp", "0.0.0.0.0.111"),
        (4, "local", "/run/rpcbind.sock"),
        (3, "local", "/run/rpcbind.sock"),
    ];
    let want: Vec<(u32, String, String)> = want
        .iter()
        .map(|(v, n, a)| (*v, n.to_string(), a.to_string()))
        .collect();
    assert_eq!(d, want);
    let pm: Vec<(u32, u32)> = pmap_dump(&mut e)
        .iter()
        .map(|m| (m.vers.0, m.prot))
        .collect();
    assert_eq!(
        pm,
        [(4, TCP), (3, TCP), (2, TCP), (4, UDP), (3, UDP), (2, UDP)]
    );
    assert!(pmap_dump(&mut e)
        .iter()
        .all(|m| m.port == 111 && m.prog == Program::PORTMAP));
}

#[test]
fn addresses_are_merged_to_the_interface_the_caller_can_reach() {
    let mut e = engine();
    assert!(set(&mut e, &local(0), 300_050, 1, "udp", "0.0.0.0.5.1"));
    assert!(set(&mut e, &local(0), 300_050, 1, "udp6", "::.5.1"));
    // Without an interface list: the local address the request reached.
    let far = ip(Transport::Udp, "192.0.2.7:4000", "192.0.2.1:111");
    assert_eq!(getaddr(&mut e, &far, 3, 300_050, 1), "192.0.2.1.5.1");
    let six = ip(Transport::Udp6, "[::1]:4000", "[::1]:111");
    assert_eq!(getaddr(&mut e, &six, 3, 300_050, 1), "::1.5.1");
    // With one: C's addrmerge (exact match of the caller, else the first
    // non-loopback interface of the family).
    e.set_interfaces(vec![
        Interface {
            addr: "127.0.0.1".parse().unwrap(),
            netmask: "255.0.0.0".parse().unwrap(),
            up: true,
            loopback_or_p2p: true,
            scope_id: 1,
        },
        Interface {
            addr: "198.51.100.1".parse().unwrap(),
            netmask: "255.255.255.0".parse().unwrap(),
            up: true,
            loopback_or_p2p: false,
            scope_id: 2,
        },
    ]);
    assert_eq!(
        getaddr(&mut e, &udp("127.0.0.1:4000"), 3, 300_050, 1),
        "127.0.0.1.5.1"
    );
    assert_eq!(getaddr(&mut e, &far, 3, 300_050, 1), "198.51.100.1.5.1");
    // A caller at the wildcard address gets the registration unchanged.
    let any = ip(Transport::Udp, "0.0.0.0:4000", "127.0.0.1:111");
    assert_eq!(getaddr(&mut e, &any, 3, 300_050, 1), "0.0.0.0.5.1");
    // The local socket never merges.
    assert!(set(&mut e, &local(0), 300_051, 1, "local", "/run/y.sock"));
    assert_eq!(getaddr(&mut e, &local(0), 3, 300_051, 1), "/run/y.sock");
}

#[test]
fn getaddrlist_answers_the_arrival_protocol_family() {
    let mut e = engine();
    assert!(set(&mut e, &local(0), 300_060, 1, "udp", "0.0.0.0.6.1"));
    assert!(set(&mut e, &local(0), 300_060, 1, "tcp", "0.0.0.0.6.2"));
    assert!(set(&mut e, &local(0), 300_060, 1, "tcp6", "::.6.3"));
    assert!(set(&mut e, &local(0), 300_060, 2, "udp", "0.0.0.0.6.4"));
    let list = |e: &mut Engine, ctx: &RequestContext| {
        RpcbEntryList::from_xdr(&results(send(e, ctx, 4, 11, &rpcb(300_060, 1, "", ""))))
            .unwrap()
            .0
    };
    let c = udp("127.0.0.1:4000");
    let v4 = list(&mut e, &c);
    let got: Vec<(&str, &str, u32, &str, &str)> = v4
        .iter()
        .map(|x| {
            (
                x.maddr.as_str(),
                x.netid.as_str(),
                x.semantics,
                x.protofmly.as_str(),
                x.proto.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("127.0.0.1.6.1", "udp", 1, "inet", "udp"),
            ("127.0.0.1.6.2", "tcp", 3, "inet", "tcp")
        ]
    );
    let v6 = list(&mut e, &ip(Transport::Tcp6, "[::1]:4000", "[::1]:111"));
    assert_eq!(v6.len(), 1);
    assert_eq!(
        (v6[0].maddr.as_str(), v6[0].protofmly.as_str()),
        ("::1.6.3", "inet6")
    );
    // A registration on a netid the daemon does not serve: C fails the call.
    assert!(set(&mut e, &local(0), 300_060, 1, "foo", "1.2.3.4.5.6"));
    assert!(matches!(
        send(
            &mut e,
            &udp("127.0.0.1:4000"),
            4,
            11,
            &rpcb(300_060, 1, "", "")
        ),
        Outcome::NoReply
    ));
}

#[test]
fn getstat_counts_per_version_as_c_does() {
    let mut e = engine();
    let c = udp("127.0.0.1:4000");
    assert!(set(&mut e, &local(0), 300_070, 1, "udp", "0.0.0.0.7.1")); // v3 SET
    assert!(!set(&mut e, &local(0), 300_070, 1, "udp", "0.0.0.0.7.2")); // v3 SET, refused
    assert!(unset(&mut e, &local(0), 300_071, 1, "udp")); // v4 UNSET of nothing: counted
    getaddr(&mut e, &c, 3, 300_070, 1); // v4 GETADDR found
    getaddr(&mut e, &c, 3, 300_070, 1);
    getaddr(&mut e, &c, 9, 300_072, 1); // v4 GETVERSADDR not found
    send(&mut e, &c, 2, 3, &mapping(300_070, 1, UDP, 0)); // v2 GETPORT found
    send(&mut e, &c, 2, 3, &mapping(300_070, 1, 99, 0)); // bad protocol: not in addrinfo
    send(&mut e, &c, 3, 9, &[]); // v3 has no procedure 9: not counted
    send(&mut e, &c, 3, 3, &[1, 2]); // GARBAGE_ARGS: still counted in info
    let s = RpcbStatByvers::from_xdr(&results(send(&mut e, &c, 4, 12, &[]))).unwrap();
    let [v2, v3, v4] = &s.0;
    assert_eq!(v2.info[3], 2);
    assert_eq!((v3.info[1], v3.info[3], v3.setinfo), (2, 1, 1));
    assert_eq!(
        (
            v4.info[2],
            v4.info[3],
            v4.info[9],
            v4.info[12],
            v4.unsetinfo
        ),
        (1, 2, 1, 1, 1)
    );
    let addr = |l: &Vec<proto::rpcb::RpcbsAddr>| {
        l.iter()
            .map(|a| (a.prog.0, a.vers.0, a.success, a.failure, a.netid.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(addr(&v2.addrinfo), [(300_070, 1, 1, 0, "udp".to_string())]);
    assert_eq!(addr(&v3.addrinfo), []);
    assert_eq!(
        addr(&v4.addrinfo),
        [
            (300_072, 1, 0, 1, "udp".to_string()),
            (300_070, 1, 2, 0, "udp".to_string())
        ]
    );
}

#[test]
fn gettime_answers_the_time_given() {
    let mut e = engine();
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let r = e.handle(&message(3, 6, &[]), &udp("127.0.0.1:9"), now);
    assert_eq!(as_u32(results(r)), 1_800_000_000);
}

#[test]
fn unknown_procedure_is_proc_unavail() {
    let mut e = engine();
    for (vers, proc) in [(2, 6), (3, 9), (3, 12), (4, 13), (4, 0xffff_ffff)] {
        let (r, _) = accepted(send(&mut e, &udp("127.0.0.1:9"), vers, proc, &[]));
        assert_eq!(r, AcceptedReply::ProcUnavail, "v{vers} proc {proc}");
    }
}

#[test]
fn undecodable_arguments_are_garbage_args() {
    let mut e = engine();
    for (vers, proc, args) in [
        (2, 1, vec![0; 8]),
        (2, 3, vec![0; 12]),
        (3, 1, vec![0, 0, 0, 1]),
        (4, 3, vec![0; 7]),
        (4, 8, vec![0, 0, 0x30, 0]),
        (4, 11, vec![]),
    ] {
        let (r, _) = accepted(send(&mut e, &local(0), vers, proc, &args));
        assert_eq!(r, AcceptedReply::GarbageArgs, "v{vers} proc {proc}");
    }
}

#[test]
fn wrong_version_is_prog_mismatch_2_to_4_on_every_transport() {
    let mut e = engine();
    for ctx in [
        udp("127.0.0.1:9"),
        local(0),
        ip(Transport::Tcp6, "[::1]:9", "[::1]:111"),
    ] {
        for vers in [0, 1, 5, 7] {
            let (r, _) = accepted(send(&mut e, &ctx, vers, 0, &[]));
            assert_eq!(
                r,
                AcceptedReply::ProgMismatch {
                    low: Version(2),
                    high: Version(4)
                }
            );
        }
        // PMAP v2 is served on every transport, as C's callouts are global.
        assert_eq!(results(send(&mut e, &ctx, 2, 0, &[])), Vec::<u8>::new());
    }
}

#[test]
fn wrong_program_is_prog_unavail() {
    let mut e = engine();
    let m = CallHeader::new(7, Program(100_003), Version(3), Procedure(0)).to_xdr();
    let (r, _) = accepted(e.handle(&m, &udp("127.0.0.1:9"), SystemTime::now()));
    assert_eq!(r, AcceptedReply::ProgUnavail);
    let mut idle = Engine::new(EngineConfig::default());
    let (r, _) = accepted(idle.handle(&message(2, 0, &[]), &udp("127.0.0.1:9"), SystemTime::now()));
    assert_eq!(r, AcceptedReply::ProgUnavail, "no listener registered yet");
}

#[test]
fn rpc_version_other_than_2_is_rpc_mismatch() {
    let mut e = engine();
    let mut m = message(2, 0, &[]);
    m[11] = 3;
    // MSG_DENIED, RPC_MISMATCH, low 2, high 2 (RFC 5531 section 9).
    let want = [
        &m[..4],
        &[0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 2][..],
    ]
    .concat();
    for ctx in [udp("127.0.0.1:9"), tcp("127.0.0.1:9"), local(0)] {
        match e.handle(&m, &ctx, SystemTime::now()) {
            Outcome::Reply(r) => assert_eq!(r, want, "{:?}", ctx.transport),
            other => panic!("{:?}: {other:?}", ctx.transport),
        }
    }
}

#[test]
fn non_calls_and_short_messages_get_no_reply() {
    let mut e = engine();
    let mut reply = message(2, 0, &[]);
    reply[7] = 1;
    let short = message(2, 0, &[])[..12].to_vec();
    let truncated = message(2, 0, &[])[..30].to_vec();
    for m in [reply, short, truncated] {
        assert!(matches!(
            e.handle(&m, &udp("127.0.0.1:9"), SystemTime::now()),
            Outcome::NoReply
        ));
        assert!(matches!(
            e.handle(&m, &local(0), SystemTime::now()),
            Outcome::Close
        ));
    }
}

#[test]
fn credentials_are_checked_as_libtirpc_does() {
    let mut e = engine();
    let call = |flavor: u32, body: &[u8]| {
        let mut h = CallHeader::new(9, Program::PORTMAP, Version(2), Procedure(0));
        h.credential = OpaqueAuth {
            flavor: AuthFlavor(flavor),
            body,
        };
        h.to_xdr()
    };
    let sys = [&[0u8, 0, 0, 1, 0, 0, 0, 1, b'h', 0, 0, 0][..], &[0; 12]].concat();
    let sys_17 = [
        &[
            0u8, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 17,
        ][..],
        &[0; 68],
    ]
    .concat();
    let ok = e.handle(&call(1, &sys), &udp("127.0.0.1:9"), SystemTime::now());
    assert!(results(ok).is_empty());
    for (flavor, body, want) in [
        (1, &sys_17[..], AuthStat::BADCRED),
        (1, &b"abcd"[..], AuthStat::BADCRED),
        (2, &b"abcd"[..], AuthStat::REJECTEDCRED),
        (6, &b"abcd"[..], AuthStat::BADCRED),
        (99, &[][..], AuthStat::REJECTEDCRED),
    ] {
        let d = denied(e.handle(&call(flavor, body), &udp("127.0.0.1:9"), SystemTime::now()));
        assert_eq!(d, RejectedReply::AuthError(want), "flavor {flavor}");
    }
}

/// Replies observed from rpcbind 1.2.6 / libtirpc 1.3.3 to RPCSEC_GSS
/// credentials (version, procedure, sequence, service, handle).
#[test]
fn rpcsec_gss_credentials_are_refused_as_libtirpc_does() {
    let mut e = engine();
    let gss = |v: u32, proc: u32, svc: u32, handle: &[u8]| {
        let mut b = [v, proc, 1, svc]
            .iter()
            .flat_map(|x| x.to_be_bytes())
            .collect::<Vec<u8>>();
        b.extend_from_slice(&(handle.len() as u32).to_be_bytes());
        b.extend_from_slice(handle);
        b
    };
    for (body, want) in [
        (gss(1, 0, 1, b""), 13),
        (gss(1, 0, 1, b"abcd"), 13),
        (gss(1, 1, 1, b""), 7),
        (gss(1, 3, 1, b"abcd"), 13),
        (gss(2, 1, 1, b""), 1),
        (gss(1, 0, 9, b"abcd"), 1),
        (b"abcd".to_vec(), 1),
    ] {
        let mut h = CallHeader::new(9, Program::PORTMAP, Version(2), Procedure(0));
        h.credential = OpaqueAuth {
            flavor: AuthFlavor::RPCSEC_GSS,
            body: &body,
        };
        let d = denied(e.handle(&h.to_xdr(), &udp("127.0.0.1:9"), SystemTime::now()));
        assert_eq!(d, RejectedReply::AuthError(AuthStat(want)), "{body:?}");
    }
}

#[test]
fn remote_calls_answer_as_c_without_forwarding() {
    let mut e = engine();
    assert!(set(&mut e, &local(0), 300_080, 2, "udp", "127.0.0.1.8.2"));
    let args = |prog: u32, vers: u32, proc: u32| {
        [
            prog.to_be_bytes(),
            vers.to_be_bytes(),
            proc.to_be_bytes(),
            0u32.to_be_bytes(),
        ]
        .concat()
    };
    let c = udp("127.0.0.1:4000");
    let (r, _) = accepted(send(&mut e, &c, 4, 10, &args(300_080, 2, 1)));
    assert_eq!(r, AcceptedReply::SystemErr);
    let (r, _) = accepted(send(&mut e, &c, 4, 10, &args(300_080, 1, 1)));
    assert_eq!(
        r,
        AcceptedReply::ProgMismatch {
            low: Version(2),
            high: Version(2)
        }
    );
    let (r, _) = accepted(send(&mut e, &c, 4, 10, &args(300_081, 1, 1)));
    assert_eq!(r, AcceptedReply::ProgUnavail);
    let (r, _) = accepted(send(&mut e, &c, 4, 10, &[0, 0]));
    assert_eq!(r, AcceptedReply::GarbageArgs);
    for (vers, proc) in [(2, 5), (3, 5), (4, 5)] {
        assert!(matches!(
            send(&mut e, &c, vers, proc, &args(300_080, 2, 1)),
            Outcome::NoReply
        ));
        let d = denied(send(&mut e, &c, vers, proc, &args(100_003, 3, 1)));
        assert_eq!(
            d,
            RejectedReply::AuthError(AuthStat::TOOWEAK),
            "NFS is on the deny list"
        );
    }
    assert!(matches!(
        send(&mut e, &tcp("127.0.0.1:4000"), 4, 10, &args(300_080, 2, 1)),
        Outcome::NoReply
    ));
}

#[test]
fn uaddr2taddr_and_taddr2uaddr_match_c_bytes() {
    let mut e = engine();
    // Bytes observed from rpcbind 1.2.6 over udp and the local socket.
    let r = results(send(
        &mut e,
        &udp("127.0.0.1:9"),
        3,
        7,
        &[&[0, 0, 0, 13][..], b"127.0.0.1.3.4\0\0\0"].concat(),
    ));
    assert_eq!(
        r,
        [
            &[0, 0, 0, 16, 0, 0, 0, 16, 2, 0, 3, 4, 127, 0, 0, 1][..],
            &[0; 8]
        ]
        .concat()
    );
    let r = results(send(
        &mut e,
        &udp("127.0.0.1:9"),
        3,
        7,
        &[&[0, 0, 0, 7][..], b"garbage\0"].concat(),
    ));
    assert_eq!(r, [0; 8]);
    let r = results(send(
        &mut e,
        &local(0),
        3,
        7,
        &[&[0, 0, 0, 6][..], b"/run/x\0\0"].concat(),
    ));
    assert_eq!(
        r,
        [&[0, 0, 0, 110, 0, 0, 0, 8, 1, 0][..], b"/run/x"].concat()
    );
    let taddr = [
        &[0, 0, 0, 16, 0, 0, 0, 16, 2, 0, 0, 111, 127, 0, 0, 1][..],
        &[0; 8],
    ]
    .concat();
    let r = results(send(&mut e, &udp("127.0.0.1:9"), 3, 8, &taddr));
    assert_eq!(as_string(r), "127.0.0.1.0.111");
}

/// Lookups, SET and UNSET must not scan the table: 50,000 registrations,
/// then 50,000 GETADDRs and as many UNSETs through the dispatcher, well
/// within a bound that a linear scan (over a billion string comparisons)
/// cannot meet even in a release build.
#[test]
fn fifty_thousand_registrations_cost_what_ten_cost() {
    let mut e = engine();
    let start = Instant::now();
    let c = udp("127.0.0.1:4000");
    for p in 0..50_000u32 {
        assert!(set(&mut e, &local(0), 400_000 + p, 1, "udp", "0.0.0.0.9.9"));
    }
    for p in 0..50_000u32 {
        assert_eq!(getaddr(&mut e, &c, 3, 400_000 + p, 1), "127.0.0.1.9.9");
    }
    for p in 0..50_000u32 {
        assert!(unset(&mut e, &local(0), 400_000 + p, 1, "udp"));
    }
    assert_eq!(e.registry().len(), 12);
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn udp_replies_over_8800_bytes_are_not_sent() {
    let mut e = engine();
    for p in 0..450 {
        assert!(set(
            &mut e,
            &local(0),
            300_300 + p,
            1,
            "udp",
            "0.0.0.0.30.1"
        ));
    }
    let c = udp("127.0.0.1:4000");
    let (r, _) = accepted(send(&mut e, &c, 3, 4, &[]));
    assert_eq!(r, AcceptedReply::SystemErr, "v3 DUMP over UDP");
    let (r, _) = accepted(send(&mut e, &c, 4, 4, &[]));
    assert_eq!(r, AcceptedReply::SystemErr, "v4 DUMP over UDP");
    assert!(
        matches!(send(&mut e, &c, 2, 4, &[]), Outcome::NoReply),
        "PMAP DUMP over UDP"
    );
    let whole = results(send(&mut e, &tcp("127.0.0.1:4000"), 2, 4, &[]));
    assert!(
        whole.len() > proto::engine::UDP_MSG_SIZE,
        "TCP is not limited"
    );
}

#[test]
fn udp_replies_to_remote_callers_are_capped_at_the_request_size() {
    use proto::engine::cap_udp_reply;
    let remote: std::net::SocketAddr = "192.0.2.7:700".parse().unwrap();
    let big = {
        let mut v = 0x1234_5678u32.to_be_bytes().to_vec();
        v.extend([0u8; 996]);
        v
    };
    let capped = cap_udp_reply(big.clone(), 100, remote, 1);
    assert_eq!(
        capped,
        [0x12, 0x34, 0x56, 0x78, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5],
        "SYSTEM_ERR with the request's xid"
    );
    assert_eq!(
        cap_udp_reply(big.clone(), 100, remote, 10),
        big,
        "within 10x"
    );
    assert_eq!(cap_udp_reply(big.clone(), 100, remote, 0), big, "cap off");
    for local in ["127.0.0.1:700", "[::1]:700", "[::ffff:127.0.0.9]:700"] {
        let peer = local.parse().unwrap();
        assert_eq!(cap_udp_reply(big.clone(), 100, peer, 1), big, "{local}");
    }
}

#[test]
fn remote_calls_are_forwarded_with_dash_r() {
    use proto::engine::{ForwardKind, Outcome};
    let mut e = engine_with(EngineConfig {
        remote_calls: true,
        ..EngineConfig::default()
    });
    assert!(set(&mut e, &local(0), 300_080, 2, "udp", "0.0.0.0.8.2"));
    let args = |prog: u32, proc: u32| {
        [prog, 2, proc, 4, 0xfeed]
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .collect::<Vec<u8>>()
    };
    let c = ip(Transport::Udp, "127.0.0.1:4000", "127.0.0.1:111");
    for (vers, proc, kind) in [
        (2, 5, ForwardKind::PmapCallit),
        (3, 5, ForwardKind::Callit),
        (4, 5, ForwardKind::Callit),
        (4, 10, ForwardKind::Indirect),
    ] {
        let Outcome::Forward(f) = send(&mut e, &c, vers, proc, &args(300_080, 1)) else {
            panic!("v{vers} proc {proc} not forwarded");
        };
        assert_eq!(f.to, "127.0.0.1:2050".parse().unwrap());
        assert_eq!((f.kind, f.uaddr.as_str()), (kind, "127.0.0.1.8.2"));
        assert_eq!(
            &f.call[4..24],
            &[0, 0, 0, 0, 0, 0, 0, 2, 0, 4, 0x94, 0x30, 0, 0, 0, 2, 0, 0, 0, 1]
        );
        assert!(f.call.ends_with(&0xfeedu32.to_be_bytes()));
        let d = denied(send(&mut e, &c, vers, proc, &args(100_003, 1)));
        assert_eq!(d, RejectedReply::AuthError(AuthStat::TOOWEAK), "deny list");
    }
    let t = ip(Transport::Tcp, "127.0.0.1:4000", "127.0.0.1:111");
    assert!(matches!(
        send(&mut e, &t, 3, 5, &args(300_080, 1)),
        Outcome::NoReply
    ));
}
