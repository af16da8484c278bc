//! Tests of the registry: warm-start lists, shared names, PMAP cleanup
//! and C's `uaddr2port`.

use super::*;

#[test]
fn from_lists_restores_both_lists_verbatim() {
    let mut r = Registry::new();
    assert!(r.set(Program(7), Version(1), "udp", "0.0.0.0.1.2", "1000"));
    assert!(r.set(Program(8), Version(1), "tcp6", "::.1.3", "superuser"));
    assert!(r.unset(Program(7), Version(1), "UDP", "1000"));
    assert_eq!(
        (r.len(), r.pmap_len()),
        (1, 1),
        "the udp mapping is orphaned, as in C"
    );
    let rpcb: Vec<Rpcb> = r.iter().map(Rpcb::from).collect();
    let pmap: Vec<Mapping> = r.pmap_iter().copied().map(Mapping::from).collect();
    let back = Registry::from_lists(
        rpcb.into_iter().map(Registration::from),
        pmap.into_iter().map(PmapEntry::from),
    );
    assert!(back.iter().eq(r.iter()));
    assert!(back.pmap_iter().eq(r.pmap_iter()));
    let port = back.find_service_pmap(Program(7), Version(1), IPPROTO_UDP);
    assert_eq!(port.map(|e| e.port), Some(258));
}

#[test]
fn shares_names_and_forgets_them_with_their_last_entry() {
    let mut r = Registry::new();
    assert!(r.set(Program(7), Version(1), "udp", "0.0.0.0.1.2", "1000"));
    assert!(r.set(Program(8), Version(1), "udp", "0.0.0.0.1.3", "1000"));
    let a = r.rpcb.iter().map(|row| (row.netid, row.owner)).next();
    let b = r.rpcb.iter().map(|row| (row.netid, row.owner)).nth(1);
    assert_eq!(a, b, "one id per distinct name");
    assert_eq!(r.names.len(), 2);
    assert!(r.unset(Program(7), Version(1), "udp", "1000"));
    assert_eq!(r.names.len(), 2, "program 8 still uses both");
    assert!(r.unset(Program(8), Version(1), "udp", "superuser"));
    assert_eq!(r.names.len(), 0);
}

#[test]
fn exact_lookups_compare_netids_case_insensitively_among_a_programs_netids() {
    let mut r = Registry::new();
    for netid in ["udp", "TCP", "udp6", "local"] {
        assert!(r.set(Program(7), Version(1), netid, "0.0.0.0.1.2", "1"));
    }
    let found = r.lookup(Program(7), Version(1), "tcp");
    assert_eq!(found.map(|e| e.netid), Some("TCP"));
    assert_eq!(r.lookup(Program(7), Version(1), "tcp6"), None);
    assert!(!r.set(Program(7), Version(1), "Udp6", "::.1.2", "1"));
    let netids: Vec<&str> = r
        .by_program_version(Program(7), Version(1))
        .map(|e| e.netid)
        .collect();
    assert_eq!(netids, ["udp", "TCP", "udp6", "local"]);
}

#[test]
fn a_slot_is_small_and_an_ipv4_address_needs_no_heap_block() {
    let mut r = Registry::new();
    let widest = "255.255.255.255.255.255.255";
    assert!(r.set(Program(7), Version(1), "udp", &widest[4..], "1"));
    assert!(r.rpcb.iter().all(|row| !row.addr.is_heap_allocated()));
    assert_eq!(std::mem::size_of::<Row>(), 40);
}

#[test]
fn unset_without_netid_clears_pmap_entries_of_any_protocol() {
    let pmap = |program, version, protocol, port| PmapEntry {
        program: Program(program),
        version: Version(version),
        protocol,
        port,
    };
    let rpcb = Registration {
        program: Program(7),
        version: Version(1),
        netid: "udp".into(),
        addr: "0.0.0.0.1.2".into(),
        owner: "superuser".into(),
    };
    let kept = [pmap(7, 2, 99, 5), pmap(8, 1, 99, 6)];
    let mut r = Registry::from_lists(
        [rpcb],
        [
            pmap(7, 1, 99, 3),
            kept[0],
            pmap(7, 1, IPPROTO_TCP, 4),
            kept[1],
        ],
    );
    assert!(r.unset(Program(7), Version(1), "", "superuser"));
    assert!(r.pmap_iter().eq(kept.iter()));
    assert!(r
        .find_service_pmap(Program(7), Version(1), 99)
        .is_some_and(|e| e.port == 5));
}

#[test]
fn uaddr_port_reads_fields_with_atoi() {
    assert_eq!(uaddr_port("0.0.0.0.3.1"), Some(0x301));
    assert_eq!(uaddr_port("::.1x.2"), Some(258));
    assert_eq!(uaddr_port("a.b"), None);
    assert_eq!(uaddr_port("1.-1.0"), Some((-256i32) as u32));
}
