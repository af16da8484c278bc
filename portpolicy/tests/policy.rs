//! Policy computation against Debian's real files, and property tests of
//! the invariants: the pool never holds an excluded or reserved port, and
//! `high` never overlaps the ephemeral range.

#![allow(clippy::unwrap_used)]

use portpolicy::blacklist::Blacklist;
use portpolicy::config::{Config, Mode};
use portpolicy::policy::{Applied, Policy, PortreserveFile, SourceKind, Sources};
use portpolicy::portreserve;
use portpolicy::portset::{PortRange, PortSet};
use portpolicy::services::Services;
use portpolicy::Protocol;
use proptest::prelude::*;

const SERVICES: &str = include_str!("fixtures/debian-services");
const BLACKLIST: &str = include_str!("fixtures/debian-bindresvport.blacklist");

fn debian() -> Sources {
    Sources {
        services: Some(Services::parse(SERVICES).unwrap()),
        blacklist: Some(Blacklist::parse(BLACKLIST).unwrap()),
        ephemeral: Some(PortRange::new(32768, 60999)),
        ..Sources::default()
    }
}

fn config(text: &str) -> Config {
    Config::from_files(&[("/etc/portpolicy.toml", text)]).unwrap()
}

#[test]
fn privileged_pool_from_debian_files() {
    let p = Policy::compute(&Config::default(), &debian()).unwrap();
    let tcp = p.pool(Protocol::Tcp);
    for well_known in [631, 636, 749, 783, 873, 993, 995, 512, 514, 515] {
        assert!(!tcp.contains(well_known), "{well_known}");
    }
    assert!(tcp.contains(600) && tcp.contains(1023) && tcp.contains(599));
    assert!(!tcp.contains(511) && !tcp.contains(1024));
    // 512 ports in 512-1023, minus Debian's named ports in that range.
    let named: PortSet = {
        let mut s = PortSet::new();
        for e in Services::parse(SERVICES).unwrap().entries() {
            s.insert(e.port);
        }
        for p in [631, 636, 655, 774, 783, 873, 921, 993, 995] {
            s.insert(p);
        }
        s
    };
    let expected = (512..=1023).filter(|p| !named.contains(*p)).count();
    assert_eq!(tcp.len(), expected);
    // The allocator's order follows bindresvport(): 600-1023, then 512-599.
    let order: Vec<u16> = p.pool_in_order(Protocol::Tcp).collect();
    assert_eq!(order.first(), Some(&600));
    assert_eq!(order.last(), Some(&599));
    let reasons: Vec<_> = p.reasons(631, Protocol::Tcp).map(|e| e.source).collect();
    assert_eq!(
        reasons,
        [SourceKind::Services, SourceKind::BindresvportBlacklist]
    );
}

#[test]
fn applied_ports_are_not_read_back_as_the_admins() {
    let mut s = debian();
    s.ip_local_reserved_ports = Some(PortSet::parse_list("700,701").unwrap());
    s.applied = Applied {
        ip_local_reserved_ports: PortSet::parse_list("701").unwrap(),
    };
    let p = Policy::compute(&Config::default(), &s).unwrap();
    assert!(!p.pool(Protocol::Udp).contains(700));
    assert!(p.pool(Protocol::Udp).contains(701));
}

#[test]
fn per_protocol_sources_and_reservations() {
    let mut s = debian();
    s.portreserve = vec![PortreserveFile {
        path: "/etc/portreserve/x".into(),
        entries: portreserve::parse("702/udp\nsunrpc\n").unwrap(),
    }];
    s.nfs_ports = portpolicy::nfsconf::parse("[lockd]\nport=703\n").unwrap();
    let c = config(
        "exclude = [\"704/tcp\"]\n[[reservation]]\nname = \"r\"\nport = 705\nprotocol = \"udp\"\n",
    );
    let p = Policy::compute(&c, &s).unwrap();
    let (tcp, udp) = (p.pool(Protocol::Tcp), p.pool(Protocol::Udp));
    assert!(tcp.contains(702) && !udp.contains(702));
    assert!(!tcp.contains(703) && udp.contains(703));
    assert!(!tcp.contains(704) && udp.contains(704));
    assert!(tcp.contains(705) && !udp.contains(705));
    assert_eq!(
        p.reservation(705, Protocol::Udp).map(|r| r.name.as_str()),
        Some("r")
    );
}

#[test]
fn unknown_names_are_errors_with_origin() {
    let c = config("[[reservation]]\nname = \"x\"\nport = \"nosuch\"\n");
    let e = Policy::compute(&c, &debian()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "/etc/portpolicy.toml:1: reservation \"x\": service \"nosuch\" is not in /etc/services for tcp"
    );
    let mut s = debian();
    s.portreserve = vec![PortreserveFile {
        path: "/etc/portreserve/cups".into(),
        entries: portreserve::parse("#\nipp-nope\n").unwrap(),
    }];
    let e = Policy::compute(&Config::default(), &s).unwrap_err();
    assert_eq!(
        e.to_string(),
        "/etc/portreserve/cups:2: service \"ipp-nope\" is not in /etc/services"
    );
}

#[test]
fn sources_can_be_switched_off() {
    let c = config("[sources]\nservices = false\nbindresvport_blacklist = false\n");
    let p = Policy::compute(&c, &debian()).unwrap();
    assert_eq!(p.pool(Protocol::Tcp).len(), 512);
}

#[test]
fn high_mode_cut_by_ephemeral() {
    let c = config("mode = \"high\"\nhigh_range = \"32000-33000\"\n");
    let p = Policy::compute(&c, &debian()).unwrap();
    assert_eq!(p.mode, Mode::High);
    assert_eq!(
        p.pool(Protocol::Tcp).ranges().last(),
        Some(&PortRange::new(32000, 32767))
    );
    assert_eq!(p.notes.len(), 1);
}

fn arb_range() -> impl Strategy<Value = PortRange> {
    (0u16..=65535, 0u16..200).prop_map(|(a, len)| PortRange::new(a, a.saturating_add(len)))
}

proptest! {
    #[test]
    fn pool_never_holds_excluded_or_reserved(
        excludes in proptest::collection::vec((arb_range(), 0u8..3), 0..20),
        reserved in proptest::collection::vec((1u16..=65535, 0u8..3), 0..10),
        kernel in proptest::collection::vec(arb_range(), 0..5),
        high in any::<bool>(),
        hr in (1024u16..=65535, 0u16..5000),
        eph in arb_range(),
    ) {
        let proto = |k: u8| ["/tcp", "/udp", ""][usize::from(k)];
        let proto_name = |k: u8| ["tcp", "udp", "both"][usize::from(k)];
        let mut text = String::new();
        text.push_str(if high { "mode = \"high\"\n" } else { "mode = \"privileged\"\n" });
        let hr = PortRange::new(hr.0, hr.0.saturating_add(hr.1));
        text.push_str(&format!("high_range = \"{hr}\"\nexclude = ["));
        for (r, k) in &excludes {
            text.push_str(&format!("\"{r}{}\",", proto(*k)));
        }
        text.push_str("]\n");
        for (i, (port, k)) in reserved.iter().enumerate() {
            text.push_str(&format!(
                "[[reservation]]\nname = \"r{i}\"\nport = {port}\nprotocol = \"{}\"\n",
                proto_name(*k)
            ));
        }
        let c = config(&text);
        let mut s = debian();
        s.ephemeral = Some(eph);
        s.ip_local_reserved_ports = Some(PortSet::from_ranges(kernel.iter().copied()));
        let p = Policy::compute(&c, &s).unwrap();
        for proto in Protocol::ALL {
            let pool = p.pool(proto);
            for e in &c.exclude {
                if e.protocols.covers(proto) {
                    prop_assert!((e.ports.first..=e.ports.last).all(|x| !pool.contains(x)));
                }
            }
            for r in &p.reservations {
                prop_assert!(!(r.protocols.covers(proto) && pool.contains(r.port)));
            }
            for r in &kernel {
                prop_assert!((r.first..=r.last).all(|x| !pool.contains(x)));
            }
            for x in pool.iter() {
                prop_assert!(p.candidates.iter().any(|r| r.contains(x)));
                prop_assert!(p.reasons(x, proto).next().is_none());
                if high {
                    prop_assert!(!eph.contains(x), "{x} in ephemeral {eph}");
                }
            }
        }
    }
}

#[test]
fn who_may_claim_a_reservation() {
    let c = config(
        "[[reservation]]\nname = \"cups\"\nport = \"ipp\"\nunit = \"cups.service\"\ngid = 7\n\
         [[reservation]]\nname = \"root-only\"\nport = 700\n",
    );
    let p = Policy::compute(&c, &debian()).unwrap();
    let cups = &p.reservations[0];
    assert_eq!(cups.port, 631);
    assert!(cups.may_claim(0, &[], None));
    assert!(cups.may_claim(1000, &[], Some("cups.service")));
    assert!(cups.may_claim(1000, &[5, 7], None));
    assert!(!cups.may_claim(1000, &[5], Some("other.service")));
    let root_only = &p.reservations[1];
    assert!(root_only.may_claim(0, &[], None));
    assert!(!root_only.may_claim(1, &[0], None));
}
