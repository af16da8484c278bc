//! Unit tests of the allocator: each drives it the way the daemon does and
//! checks the decisions a client would see.

use super::*;
use crate::config::{Config, Mode, Protocols};
use crate::policy::{Reservation, Sources};
use crate::portset::PortRange;
use proto::alloc::{AllocArgs, ClaimArgs, PortKind, ReleaseArgs};

fn policy(mode: Mode) -> AllocPolicy {
    let config = Config {
        mode,
        high_range: PortRange::new(20000, 20009),
        ..Config::default()
    };
    let mut p = AllocPolicy::compute(&config, &Sources::default()).unwrap();
    p.reservations.push(Reservation {
        name: "ipp".into(),
        port: 631,
        protocols: Protocols::Both,
        uid: None,
        gid: Some(7),
        unit: Some("cups.service".into()),
        hold: true,
        nfs_conf: None,
    });
    p
}

fn root(pid: i32) -> Caller {
    Caller {
        pid,
        uid: 0,
        gids: vec![0],
        unit: None,
        start_time: None,
    }
}

fn user(pid: i32, uid: u32) -> Caller {
    Caller {
        pid,
        uid,
        gids: vec![uid],
        unit: None,
        start_time: None,
    }
}

/// Drives one request to its end with every bind succeeding except the
/// ports in `busy`.
fn drive(a: &mut Allocator, mut d: Decision, busy: &[u16]) -> Result<Grant, PaStatus> {
    loop {
        d = match d {
            Decision::TryBind(b) if busy.contains(&b.port) => a.on_bind_failed(b.attempt),
            Decision::TryBind(b) => a.on_bound(b.attempt, 100),
            Decision::Granted(g) => return Ok(g),
            Decision::Refused(s) => return Err(s),
        }
    }
}

fn alloc(a: &mut Allocator, args: AllocArgs<'_>, caller: &Caller) -> Result<Grant, PaStatus> {
    let d = a.alloc(&args, caller);
    drive(a, d, &[])
}

const TCP4: (Family, Socktype) = (Family::Inet, Socktype::Stream);

#[test]
fn consecutive_grants_rotate_through_the_pool_in_policy_order() {
    let mut a = Allocator::new(policy(Mode::Privileged), Settings::default());
    let ports: Vec<u32> = (0..3)
        .map(|_| {
            alloc(&mut a, AllocArgs::pool(TCP4.0, TCP4.1), &root(1))
                .unwrap()
                .port
        })
        .collect();
    assert_eq!(ports, [600, 601, 602]);
    let first = a.lease(1).unwrap().clone();
    a.release(&ReleaseArgs::Lease(1), &root(1)).unwrap();
    // The freed port is not handed out again at once: the cursor moved on.
    let next = alloc(&mut a, AllocArgs::pool(TCP4.0, TCP4.1), &root(1)).unwrap();
    assert_eq!(next.port, 603);
    assert_eq!(first.port, 600);
}

#[test]
fn busy_port_is_skipped_and_exhaustion_is_reported() {
    let mut a = Allocator::new(policy(Mode::High), Settings::default());
    let args = AllocArgs::pool(Family::Inet6, Socktype::Dgram);
    let d = a.alloc(&args, &user(5, 1000));
    assert_eq!(drive(&mut a, d, &[20000, 20001]).unwrap().port, 20002);
    let busy: Vec<u16> = (20000..=20009).collect();
    let d = a.alloc(&args, &user(5, 1000));
    assert_eq!(drive(&mut a, d, &busy), Err(PaStatus::POOL_EXHAUSTED));
    // The failed binds left nothing taken: 9 more grants fit.
    for _ in 0..9 {
        alloc(&mut a, args, &user(5, 1000)).unwrap();
    }
    assert_eq!(
        alloc(&mut a, args, &user(5, 1000)),
        Err(PaStatus::POOL_EXHAUSTED)
    );
}

#[test]
fn a_port_is_held_per_socktype_whatever_the_family() {
    let mut a = Allocator::new(policy(Mode::High), Settings::default());
    let v4 = alloc(
        &mut a,
        AllocArgs::exact(Family::Inet, Socktype::Stream, 20005),
        &root(1),
    );
    assert!(v4.is_ok());
    let v6 = AllocArgs::exact(Family::Inet6, Socktype::Stream, 20005);
    assert_eq!(alloc(&mut a, v6, &root(1)), Err(PaStatus::IN_USE));
    let udp = AllocArgs::exact(Family::Inet6, Socktype::Dgram, 20005);
    assert!(alloc(&mut a, udp, &root(1)).is_ok());
}

#[test]
fn privileged_ports_only_to_root_whatever_the_mode() {
    let mut a = Allocator::new(policy(Mode::High), Settings::default());
    let priv4 = AllocArgs::privileged(TCP4.0, TCP4.1);
    assert_eq!(alloc(&mut a, priv4, &user(9, 1000)), Err(PaStatus::DENIED));
    let g = alloc(&mut a, priv4, &root(9)).unwrap();
    assert!((512..1024).contains(&g.port) && g.port != 631, "{g:?}");
    // Exact 700 is in the privileged pool even in high mode.
    let exact = AllocArgs::exact(TCP4.0, TCP4.1, 700);
    assert_eq!(alloc(&mut a, exact, &user(9, 1000)), Err(PaStatus::DENIED));
    assert!(alloc(&mut a, exact, &root(9)).is_ok());
    let mut p = Allocator::new(policy(Mode::Privileged), Settings::default());
    let pool = AllocArgs::pool(TCP4.0, TCP4.1);
    assert_eq!(alloc(&mut p, pool, &user(9, 1000)), Err(PaStatus::DENIED));
}

#[test]
fn exact_port_checks() {
    let mut a = Allocator::new(policy(Mode::High), Settings::default());
    let r = root(1);
    let exact = |port| AllocArgs::exact(TCP4.0, TCP4.1, port);
    assert_eq!(alloc(&mut a, exact(631), &r), Err(PaStatus::NOT_IN_POOL));
    assert_eq!(alloc(&mut a, exact(30000), &r), Err(PaStatus::NOT_IN_POOL));
    let mut big = exact(1);
    big.port = PortKind::Exact(70000);
    assert_eq!(alloc(&mut a, big, &r), Err(PaStatus::BAD_REQUEST));
    let d = a.alloc(&exact(20003), &r);
    assert_eq!(drive(&mut a, d, &[20003]), Err(PaStatus::IN_USE));
}

#[test]
fn bad_requests() {
    let mut a = Allocator::new(policy(Mode::High), Settings::default());
    let pool = AllocArgs::pool(TCP4.0, TCP4.1);
    let mut flags = pool;
    flags.flags = 2;
    assert_eq!(alloc(&mut a, flags, &root(1)), Err(PaStatus::BAD_REQUEST));
    assert_eq!(
        alloc(&mut a, pool.bind_addr("::1"), &root(1)),
        Err(PaStatus::BAD_REQUEST)
    );
    assert_eq!(
        alloc(&mut a, pool.bind_addr("localhost"), &root(1)),
        Err(PaStatus::BAD_REQUEST)
    );
    assert!(alloc(&mut a, pool.bind_addr("127.0.0.1"), &root(1)).is_ok());
    assert_eq!(a.lease(1).unwrap().bind_addr, "127.0.0.1");
    assert_eq!(
        a.on_bound(AttemptId(999), 1),
        Decision::Refused(PaStatus::BAD_REQUEST)
    );
}

#[test]
fn bind_describes_the_socket() {
    let mut a = Allocator::new(policy(Mode::High), Settings::default());
    let args = AllocArgs::pool(Family::Inet6, Socktype::Stream)
        .bind_addr("::1")
        .no_listen();
    let Decision::TryBind(b) = a.alloc(&args, &root(3)) else {
        panic!()
    };
    assert_eq!(
        (b.port, b.family, b.listen, b.reuse_addr),
        (20000, Family::Inet6, false, true)
    );
    assert_eq!(b.addr, Some("::1".parse().unwrap()));
    assert_eq!(b.reservation, None);
    assert!(
        b.v6only,
        "a lease over IPv6 does not take the IPv4 port too"
    );
    // While it is being bound, a concurrent request gets another port.
    let Decision::TryBind(c) = a.alloc(&AllocArgs::pool(Family::Inet, Socktype::Stream), &root(4))
    else {
        panic!()
    };
    assert_eq!(c.port, 20001);
    a.abandon(b.attempt);
    assert_eq!(
        alloc(&mut a, AllocArgs::exact(TCP4.0, TCP4.1, 20000), &root(1)).map(|g| g.port),
        Ok(20000)
    );
}

#[test]
fn quota_counts_leases_and_binds_in_progress() {
    let settings = Settings {
        quota: 2,
        ..Settings::default()
    };
    let mut a = Allocator::new(policy(Mode::High), settings);
    let pool = AllocArgs::pool(TCP4.0, TCP4.1);
    alloc(&mut a, pool, &user(1, 1000)).unwrap();
    let Decision::TryBind(_pending) = a.alloc(&pool, &user(1, 1000)) else {
        panic!()
    };
    assert_eq!(
        alloc(&mut a, pool, &user(2, 1000)),
        Err(PaStatus::QUOTA_EXCEEDED)
    );
    assert!(alloc(&mut a, pool, &user(3, 1001)).is_ok());
    for _ in 0..5 {
        assert!(alloc(&mut a, pool, &root(4)).is_ok());
    }
    a.release(&ReleaseArgs::Lease(1), &user(1, 1000)).unwrap();
    assert_eq!(a.leases_of(1000), 0);
}

#[test]
fn release_is_for_owner_or_root() {
    let mut a = Allocator::new(policy(Mode::High), Settings::default());
    let g = alloc(
        &mut a,
        AllocArgs::pool(TCP4.0, TCP4.1).register(100_024, 1),
        &user(1, 1000),
    )
    .unwrap();
    let by_port = ReleaseArgs::Port {
        port: g.port,
        socktype: Socktype::Stream,
    };
    assert_eq!(a.release(&by_port, &user(2, 1001)), Err(PaStatus::DENIED));
    let later = Registration {
        prog: 100_024,
        vers: 2,
    };
    assert!(a.add_registration(g.lease_id, later));
    assert!(a.add_registration(g.lease_id, later));
    assert!(!a.add_registration(99, later));
    let lease = a.release(&by_port, &user(2, 1000)).unwrap();
    assert_eq!(
        lease.registrations,
        [
            Registration {
                prog: 100_024,
                vers: 1
            },
            later
        ]
    );
    assert_eq!(a.release(&by_port, &root(1)), Err(PaStatus::BAD_REQUEST));
    assert_eq!(
        a.release(&ReleaseArgs::Lease(77), &root(1)),
        Err(PaStatus::BAD_REQUEST)
    );
    let reserved = ReleaseArgs::Port {
        port: 631,
        socktype: Socktype::Stream,
    };
    assert_eq!(a.release(&reserved, &root(1)), Err(PaStatus::DENIED));
}

#[test]
fn gone_process_orphans_its_leases_until_the_port_is_free() {
    let mut a = Allocator::new(policy(Mode::High), Settings::default());
    let pool = AllocArgs::pool(TCP4.0, TCP4.1);
    let g1 = alloc(&mut a, pool, &user(10, 1000)).unwrap();
    let g2 = alloc(&mut a, pool, &user(11, 1000)).unwrap();
    assert_eq!(a.on_process_gone(10), [g1.lease_id]);
    assert_eq!(a.orphans().count(), 1);
    let info = a.list().0;
    assert_eq!(info[0].pid, -1);
    assert_eq!(info[1].pid, 11);
    // Still bound by someone (a child): the port stays out of the pool.
    let exact = AllocArgs::exact(TCP4.0, TCP4.1, g1.port as u16);
    assert_eq!(alloc(&mut a, exact, &root(1)), Err(PaStatus::IN_USE));
    assert!(a.end_lease(g1.lease_id).is_some());
    assert!(alloc(&mut a, exact, &root(1)).is_ok());
    assert!(a.lease(g2.lease_id).is_some());
}

#[test]
fn reservations_are_held_claimed_and_released() {
    let mut a = Allocator::new(policy(Mode::Privileged), Settings::default());
    let binds = a.hold_reservations();
    assert_eq!(binds.len(), 2);
    assert!(binds
        .iter()
        .all(|b| !b.reuse_addr && b.port == 631 && b.reservation.as_deref() == Some("ipp")));
    assert_eq!(
        a.hold_reservations(),
        [],
        "binds in progress are not asked again"
    );
    for b in &binds {
        assert_eq!(
            a.on_bound(b.attempt, 50),
            Decision::Granted(Grant {
                port: 631,
                lease_id: 0
            })
        );
    }
    let claim = ClaimArgs {
        name: "ipp",
        socktype: Socktype::Stream,
    };
    assert_eq!(
        a.claim(&claim, &user(20, 1000)),
        Decision::Refused(PaStatus::DENIED)
    );
    let cups = Caller {
        unit: Some("cups.service".into()),
        ..user(21, 998)
    };
    assert_eq!(
        a.claim(&claim, &cups),
        Decision::Granted(Grant {
            port: 631,
            lease_id: 0
        })
    );
    let group = Caller {
        gids: vec![100, 7],
        ..user(22, 1000)
    };
    assert!(matches!(a.claim(&claim, &group), Decision::Granted(_)));
    let unknown = ClaimArgs {
        name: "nope",
        socktype: Socktype::Stream,
    };
    assert_eq!(
        a.claim(&unknown, &root(1)),
        Decision::Refused(PaStatus::NO_SUCH_NAME)
    );
    let listed = a.list().0;
    assert_eq!(
        (listed[0].name.as_str(), listed[0].pid, listed[0].held),
        ("ipp", 22, true)
    );

    assert_eq!(a.release_name("ipp", &cups), Err(PaStatus::DENIED));
    assert_eq!(a.release_name("ipp", &root(1)).map(|v| v.len()), Ok(2));
    assert!(a.reservations().iter().all(|r| !r.held && r.released));
    assert_eq!(
        a.hold_reservations(),
        [],
        "released reservations stay released"
    );
    // The next claim binds it again (and fails if the service holds it).
    let Decision::TryBind(b) = a.claim(&claim, &cups) else {
        panic!()
    };
    assert_eq!(
        a.on_bind_failed(b.attempt),
        Decision::Refused(PaStatus::IN_USE)
    );
    let Decision::TryBind(b) = a.claim(&claim, &cups) else {
        panic!()
    };
    assert!(matches!(a.on_bound(b.attempt, 60), Decision::Granted(_)));
    assert!(a.reservations()[0].held && !a.reservations()[0].released);
}

#[test]
fn state_round_trips_and_restores() {
    let mut a = Allocator::new(policy(Mode::High), Settings::default());
    alloc(
        &mut a,
        AllocArgs::pool(TCP4.0, TCP4.1).register(100_005, 3),
        &user(1, 1000),
    )
    .unwrap();
    alloc(
        &mut a,
        AllocArgs::pool(Family::Inet6, Socktype::Dgram),
        &root(2),
    )
    .unwrap();
    a.release_name("ipp", &root(1)).unwrap();
    let with_start = Caller {
        start_time: Some(123_456),
        ..user(8, 1001)
    };
    alloc(&mut a, AllocArgs::pool(TCP4.0, TCP4.1), &with_start).unwrap();
    let bytes = a.state().to_json();
    let state = State::parse(&bytes).unwrap();
    assert_eq!(state.leases[2].start_time, Some(123_456));
    let mut b = Allocator::restore(policy(Mode::High), Settings::default(), state).unwrap();
    assert_eq!(b.state(), a.state());
    assert_eq!((b.leases_of(1000), b.leases_of(1001)), (1, 1));
    assert_eq!(b.hold_reservations(), [], "release survives a restart");
    let next = alloc(&mut b, AllocArgs::pool(TCP4.0, TCP4.1), &root(3)).unwrap();
    assert_eq!((next.port, next.lease_id), (20002, 4));
}

#[test]
fn torn_or_corrupt_state_is_refused() {
    let mut a = Allocator::new(policy(Mode::High), Settings::default());
    alloc(&mut a, AllocArgs::pool(TCP4.0, TCP4.1), &root(1)).unwrap();
    let bytes = a.state().to_json();
    for cut in [1, bytes.len() / 2, bytes.len() - 3] {
        let e = State::parse(&bytes[..cut]).unwrap_err();
        assert!(e.to_string().contains("torn write"), "cut {cut}: {e}");
    }
    let text = String::from_utf8(bytes).unwrap();
    let e = State::parse(
        text.replace("\"lease_count\":1", "\"lease_count\":2")
            .as_bytes(),
    );
    assert_eq!(e.unwrap_err().reason, "lease_count 2 but 1 leases");
    let e = State::parse(text.replace("\"version\":1", "\"version\":2").as_bytes());
    assert!(e.unwrap_err().reason.contains("version 2"));
    let e = State::parse(text.replace("\"tcp\"", "\"sctp\"").as_bytes());
    assert!(e.unwrap_err().reason.contains("neither tcp nor udp"));
    let e = State::parse(b"{\"format\": \"other\"}").unwrap_err();
    assert!(e.reason.contains("missing field"), "{e}");
}

#[test]
fn policy_reload_keeps_leases_and_drops_old_reservations() {
    let mut a = Allocator::new(policy(Mode::High), Settings::default());
    let g = alloc(&mut a, AllocArgs::pool(TCP4.0, TCP4.1), &root(1)).unwrap();
    for b in a.hold_reservations() {
        a.on_bound(b.attempt, 1);
    }
    let mut p = policy(Mode::High);
    p.reservations.clear();
    let dropped = a.set_policy(p);
    assert_eq!(dropped.len(), 2);
    assert!(a.lease(g.lease_id).is_some());
    assert!(a.reservations().is_empty());
}
