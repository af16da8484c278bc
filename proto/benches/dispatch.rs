//! Dispatch cost of the two hottest lookups, PMAP v2 GETPORT and RPCBIND
//! v3 GETADDR, through `Engine::handle` (decode, lookup, merge, encode), at
//! 10 and 50,000 registrations. Run: `cargo bench -p proto --bench dispatch`.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::SystemTime;

use proto::engine::{Engine, EngineConfig, Interface, RequestContext, Transport};
use proto::rpc::{CallHeader, Procedure, Program, Version};
use proto::rpcb::{Mapping, Rpcb};
use proto::xdr::Encode;

fn main() {
    divan::main();
}

const SIZES: [u32; 2] = [10, 50_000];
const FIRST: u32 = 0x2000_0000;

/// An engine with the daemon's own registrations plus `n` services, each
/// on udp and tcp (2n entries, owner superuser).
fn engine(n: u32) -> Engine {
    let mut e = Engine::new(EngineConfig::default());
    e.register_own(Transport::Local, "/run/rpcbind.sock");
    e.register_own(Transport::Udp, "0.0.0.0.0.111");
    e.register_own(Transport::Tcp, "0.0.0.0.0.111");
    e.register_own(Transport::Udp6, "::.0.111");
    e.register_own(Transport::Tcp6, "::.0.111");
    e.set_interfaces(vec![Interface {
        addr: "127.0.0.1".parse().unwrap(),
        netmask: "255.0.0.0".parse().unwrap(),
        up: true,
        loopback_or_p2p: true,
        scope_id: 1,
    }]);
    for i in 0..n {
        let reg = e.registry_mut();
        let port = 1024 + (i % 60_000);
        let addr = format!("0.0.0.0.{}.{}", port >> 8, port & 0xff);
        assert!(reg.set(Program(FIRST + i), Version(1), "udp", &addr, "superuser"));
        assert!(reg.set(Program(FIRST + i), Version(1), "tcp", &addr, "superuser"));
    }
    e
}

fn udp() -> RequestContext {
    RequestContext {
        transport: Transport::Udp,
        peer: Some("127.0.0.1:40000".parse::<SocketAddr>().unwrap()),
        local: Some("127.0.0.1:111".parse::<SocketAddr>().unwrap()),
        peer_uid: None,
    }
}

fn request(vers: u32, proc: u32, args: &[u8]) -> Vec<u8> {
    let mut m = CallHeader::new(7, Program::PORTMAP, Version(vers), Procedure(proc)).to_xdr();
    m.extend_from_slice(args);
    m
}

/// GETPORT of the program registered in the middle of the table.
#[divan::bench(args = SIZES)]
fn getport_v2(bencher: divan::Bencher<'_, '_>, n: u32) {
    let mut e = engine(n);
    let args = Mapping {
        prog: Program(FIRST + n / 2),
        vers: Version(1),
        prot: 17,
        port: 0,
    }
    .to_xdr();
    let req = request(2, 3, &args);
    let ctx = udp();
    bencher.bench_local(|| e.handle(divan::black_box(&req), &ctx, SystemTime::UNIX_EPOCH));
}

/// GETADDR (v3) of the program registered in the middle of the table,
/// merged to the caller's interface.
#[divan::bench(args = SIZES)]
fn getaddr_v3(bencher: divan::Bencher<'_, '_>, n: u32) {
    let mut e = engine(n);
    let args = Rpcb {
        prog: Program(FIRST + n / 2),
        vers: Version(1),
        netid: "udp".into(),
        addr: String::new(),
        owner: String::new(),
    }
    .to_xdr();
    let req = request(3, 3, &args);
    let ctx = udp();
    bencher.bench_local(|| e.handle(divan::black_box(&req), &ctx, SystemTime::UNIX_EPOCH));
}
