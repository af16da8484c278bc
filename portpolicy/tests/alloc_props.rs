//! Operation-sequence property tests of the allocator (`portpolicy::alloc`)
//! under policies computed from Debian's real /etc/services: whatever
//! requests, bind failures, releases, process deaths, claims and restarts
//! arrive, no port is ever granted twice, no excluded or reserved port is
//! ever granted, privileged ports go to root only and quotas hold.

#![allow(clippy::unwrap_used)]

use portpolicy::alloc::{AllocPolicy, Allocator, Caller, Decision, Settings, State};
use portpolicy::config::Config;
use portpolicy::policy::{Policy, Sources};
use portpolicy::portset::PortRange;
use portpolicy::services::Services;
use portpolicy::Protocol;
use proptest::prelude::*;
use proto::alloc::{AllocArgs, ClaimArgs, Family, PaStatus, ReleaseArgs, Socktype};
use std::collections::HashSet;

const SERVICES: &str = include_str!("fixtures/debian-services");
const QUOTA: u32 = 3;

/// Small pools so that exhaustion, quotas and reuse happen often.
const CONFIGS: [&str; 2] = [
    r#"
mode = "privileged"
exclude = ["512-990"]
[[reservation]]
name = "imaps"
port = 993
protocol = "both"
gid = 50
"#,
    r#"
mode = "high"
high_range = "20000-20007"
exclude = ["20003/udp", "600-1000"]
[[reservation]]
name = "ipp"
port = 631
[[reservation]]
name = "hi"
port = 20005
protocol = "udp"
"#,
];

fn setup(which: usize) -> (AllocPolicy, Policy, Policy) {
    let config = Config::from_files(&[("/etc/portpolicy.toml", CONFIGS[which])]).unwrap();
    let sources = Sources {
        services: Some(Services::parse(SERVICES).unwrap()),
        ephemeral: Some(PortRange::new(32768, 60999)),
        ..Sources::default()
    };
    let privileged_config = Config {
        mode: portpolicy::config::Mode::Privileged,
        ..config.clone()
    };
    (
        AllocPolicy::compute(&config, &sources).unwrap(),
        Policy::compute(&config, &sources).unwrap(),
        Policy::compute(&privileged_config, &sources).unwrap(),
    )
}

#[derive(Debug, Clone)]
enum Op {
    /// caller index, kind (0 pool, 1 privileged, 2 exact), exact port,
    /// udp?, inet6?, which binds fail (bit i: the i-th bind).
    Alloc(usize, u8, u16, bool, bool, u8),
    Release(usize),
    ReleasePort(u16, bool, usize),
    Gone(usize),
    EndOrphan(usize),
    Claim(usize, bool, usize),
    ReleaseName(usize),
    Hold(u8),
    Restart,
}

const CALLERS: [(i32, u32); 4] = [(100, 0), (101, 1000), (102, 1000), (103, 1001)];

fn caller(i: usize) -> Caller {
    let (pid, uid) = CALLERS[i % CALLERS.len()];
    Caller {
        pid,
        uid,
        gids: vec![uid, 50],
        unit: None,
        start_time: None,
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..4usize, 0..3u8, 590..1030u16, any::<bool>(), any::<bool>(), any::<u8>())
            .prop_map(|(c, k, p, u, six, f)| Op::Alloc(c, k, p, u, six, f)),
        1 => (0..4usize, any::<bool>(), any::<u8>()).prop_map(|(c, u, f)| Op::Alloc(c, 2, 20000 + u16::from(f % 10), u, false, 0)),
        2 => any::<usize>().prop_map(Op::Release),
        1 => (590..1030u16, any::<bool>(), 0..4usize).prop_map(|(p, u, c)| Op::ReleasePort(p, u, c)),
        1 => (0..4usize).prop_map(Op::Gone),
        1 => any::<usize>().prop_map(Op::EndOrphan),
        1 => (0..4usize, any::<bool>(), 0..3usize).prop_map(|(c, u, n)| Op::Claim(c, u, n)),
        1 => (0..3usize).prop_map(Op::ReleaseName),
        1 => any::<u8>().prop_map(Op::Hold),
        1 => Just(Op::Restart),
    ]
}

/// Drives binds to the end; bit i of `fail` makes the i-th bind fail.
fn drive(a: &mut Allocator, mut d: Decision, fail: u8) -> Decision {
    let mut i = 0;
    loop {
        d = match d {
            Decision::TryBind(b) => {
                let failed = i < 8 && fail & (1 << i) != 0;
                i += 1;
                if failed {
                    a.on_bind_failed(b.attempt)
                } else {
                    a.on_bound(b.attempt, 7)
                }
            }
            other => return other,
        }
    }
}

struct Checker {
    pool: Policy,
    privileged: Policy,
    /// (socktype is udp, port) of every live lease, kept by the test.
    held: HashSet<(bool, u16)>,
}

impl Checker {
    fn check_invariants(&self, a: &Allocator) {
        let mut seen = HashSet::new();
        for l in a.leases() {
            let udp = l.socktype == Socktype::Dgram;
            assert!(seen.insert((udp, l.port)), "port {} leased twice", l.port);
            let proto = if udp { Protocol::Udp } else { Protocol::Tcp };
            let in_pool = self.pool.pool(proto).contains(l.port)
                || (l.port < 1024 && self.privileged.pool(proto).contains(l.port));
            assert!(in_pool, "leased port {} outside the pools", l.port);
            assert!(self.pool.reservation(l.port, proto).is_none());
            assert!(self.pool.reasons(l.port, proto).next().is_none());
            assert!(l.port >= 1024 || l.uid == 0, "{l:?}");
        }
        for uid in [1000, 1001] {
            assert!(a.leases().filter(|l| l.uid == uid).count() <= QUOTA as usize);
        }
        assert_eq!(seen, self.held);
    }

    fn granted(&mut self, udp: bool, port: u32) {
        let port = u16::try_from(port).unwrap();
        assert!(self.held.insert((udp, port)), "port {port} granted twice");
    }
}

fn apply(a: &mut Allocator, c: &mut Checker, op: &Op, policy: &AllocPolicy) {
    match *op {
        Op::Alloc(who, kind, port, udp, six, fail) => {
            let family = if six { Family::Inet6 } else { Family::Inet };
            let st = if udp {
                Socktype::Dgram
            } else {
                Socktype::Stream
            };
            let args = match kind {
                0 => AllocArgs::pool(family, st),
                1 => AllocArgs::privileged(family, st),
                _ => AllocArgs::exact(family, st, port),
            };
            let d = a.alloc(&args, &caller(who));
            match drive(a, d, fail) {
                Decision::Granted(g) => {
                    assert_ne!(g.lease_id, 0);
                    c.granted(udp, g.port);
                }
                Decision::Refused(s) => assert_ne!(s, PaStatus::OK),
                Decision::TryBind(_) => unreachable!(),
            }
        }
        Op::Release(i) => {
            let ids: Vec<u64> = a.leases().map(|l| l.id).collect();
            if let Some(id) = ids.get(i % ids.len().max(1)) {
                let l = a.release(&ReleaseArgs::Lease(*id), &caller(0)).unwrap();
                c.held.remove(&(l.socktype == Socktype::Dgram, l.port));
            }
        }
        Op::ReleasePort(port, udp, who) => {
            let st = if udp {
                Socktype::Dgram
            } else {
                Socktype::Stream
            };
            let args = ReleaseArgs::Port {
                port: port.into(),
                socktype: st,
            };
            if let Ok(l) = a.release(&args, &caller(who)) {
                assert!(caller(who).uid == 0 || caller(who).uid == l.uid);
                c.held.remove(&(udp, l.port));
            }
        }
        Op::Gone(who) => {
            a.on_process_gone(caller(who).pid);
        }
        Op::EndOrphan(i) => {
            let ids: Vec<u64> = a.orphans().map(|l| l.id).collect();
            if let Some(id) = ids.get(i % ids.len().max(1)) {
                let l = a.end_lease(*id).unwrap();
                c.held.remove(&(l.socktype == Socktype::Dgram, l.port));
            }
        }
        Op::Claim(who, udp, n) => {
            let name = ["imaps", "ipp", "hi"][n];
            let st = if udp {
                Socktype::Dgram
            } else {
                Socktype::Stream
            };
            let d = a.claim(&ClaimArgs { name, socktype: st }, &caller(who));
            if let Decision::Granted(g) = drive(a, d, 0) {
                assert_eq!(g.lease_id, 0);
                let r = policy.reservations.iter().find(|r| r.name == name).unwrap();
                assert_eq!(g.port, u32::from(r.port));
            }
        }
        Op::ReleaseName(n) => {
            let _ = a.release_name(["imaps", "ipp", "hi"][n], &caller(0));
        }
        Op::Hold(fail) => {
            for (i, b) in a.hold_reservations().into_iter().enumerate() {
                if fail & (1 << (i % 8)) != 0 {
                    a.on_bind_failed(b.attempt);
                } else {
                    a.on_bound(b.attempt, 9);
                }
            }
        }
        Op::Restart => {
            let state = State::parse(&a.state().to_json()).unwrap();
            let settings = a.settings();
            *a = Allocator::restore(policy.clone(), settings, state).unwrap();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn operation_sequences_keep_the_invariants(
        which in 0..2usize,
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        let (policy, pool, privileged) = setup(which);
        let settings = Settings { quota: QUOTA, ..Settings::default() };
        let mut a = Allocator::new(policy.clone(), settings);
        let mut c = Checker { pool, privileged, held: HashSet::new() };
        for op in &ops {
            apply(&mut a, &mut c, op, &policy);
            c.check_invariants(&a);
        }
    }
}

#[test]
fn the_small_pools_are_small() {
    let (policy, ..) = setup(0);
    // 991-1023 minus /etc/services' names (993 imaps reserved, 995 pop3s).
    assert!(policy.pool(Socktype::Stream).len() < 40);
    assert!(!policy.pool(Socktype::Stream).contains(&993));
    let (policy, ..) = setup(1);
    assert_eq!(
        policy.pool(Socktype::Dgram),
        [20000, 20001, 20002, 20004, 20006, 20007]
    );
    let p = policy.privileged(Socktype::Stream);
    assert!(p
        .iter()
        .all(|p| (512..600).contains(p) || (1001..1024).contains(p)));
    assert!(p.contains(&1023) && !p.contains(&1000));
}
