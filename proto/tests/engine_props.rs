//! Property tests of the engine: the indexed registry behaves exactly like
//! a literal transcription of C rpcbind's linked-list code under random
//! SET/UNSET/lookup sequences, and no input makes the dispatcher panic.

#![allow(clippy::unwrap_used)]

use std::time::SystemTime;

use proptest::prelude::*;
use proto::engine::{
    Engine, EngineConfig, Outcome, Registration, Registry, RequestContext, Transport,
};
use proto::rpc::{CallHeader, Procedure, Program, Version};
use proto::xdr::Encode;

/// C's lists, scanned linearly as `rpcb_svc_com.c` and `pmap_svc.c` do.
#[derive(Default)]
struct Model {
    rbl: Vec<Registration>,
    /// (program, version, protocol, port)
    pml: Vec<(u32, u32, u32, u32)>,
}

fn prot_of(netid: &str) -> Option<u32> {
    match netid {
        "tcp" => Some(6),
        "udp" => Some(17),
        _ => None,
    }
}

fn port_of(addr: &str) -> Option<u32> {
    let (rest, lo) = addr.rsplit_once('.')?;
    let (_, hi) = rest.rsplit_once('.')?;
    Some(hi.parse::<u32>().unwrap() * 256 + lo.parse::<u32>().unwrap())
}

impl Model {
    fn find_service(&self, prog: u32, vers: u32, netid: &str) -> Option<&Registration> {
        let mut hit = None;
        for r in &self.rbl {
            if r.program.0 != prog || !r.netid.eq_ignore_ascii_case(netid) {
                continue;
            }
            hit = Some(r);
            if r.version.0 == vers {
                break;
            }
        }
        hit
    }

    fn set(&mut self, prog: u32, vers: u32, netid: &str, addr: &str, owner: &str) -> bool {
        if let Some(f) = self.find_service(prog, vers, netid) {
            if f.version.0 == vers {
                return f.addr == addr;
            }
        }
        self.rbl.push(Registration {
            program: Program(prog),
            version: Version(vers),
            netid: netid.into(),
            addr: addr.into(),
            owner: owner.into(),
        });
        if let (Some(prot), Some(port)) = (prot_of(netid), port_of(addr)) {
            self.pml.push((prog, vers, prot, port));
        }
        true
    }

    fn unset(&mut self, prog: u32, vers: u32, netid: &str, owner: &str) -> bool {
        let mut removed = false;
        let mut i = 0;
        while i < self.rbl.len() {
            let r = &self.rbl[i];
            if r.program.0 != prog
                || r.version.0 != vers
                || (!netid.is_empty() && !netid.eq_ignore_ascii_case(&r.netid))
            {
                i += 1;
                continue;
            }
            if owner != "superuser" && *r.owner != *owner {
                return false;
            }
            self.rbl.remove(i);
            removed = true;
        }
        if removed {
            let prot = if netid.is_empty() {
                Some(0)
            } else {
                prot_of(netid)
            };
            if let Some(prot) = prot {
                self.pml.retain(|&(p, v, pr, _)| {
                    !(p == prog && v == vers && (prot == 0 || pr == prot))
                });
            }
        }
        true
    }

    fn find_service_pmap(&self, prog: u32, vers: u32, prot: u32) -> Option<u32> {
        let mut hit = None;
        for &(p, v, pr, port) in &self.pml {
            if p != prog || pr != prot {
                continue;
            }
            hit = Some(port);
            if v == vers {
                break;
            }
        }
        hit
    }
}

#[derive(Clone, Debug)]
enum Op {
    Set(u32, u32, &'static str, &'static str, &'static str),
    Unset(u32, u32, &'static str, &'static str),
    Find(u32, u32, &'static str),
    FindPmap(u32, u32, u32),
    Range(u32, &'static str),
}

const NETIDS: &[&str] = &["udp", "tcp", "UDP", "Tcp", "udp6", "local", ""];
const ADDRS: &[&str] = &["0.0.0.0.1.1", "0.0.0.0.2.2", "::.3.3", "/run/x", "junk"];
const OWNERS: &[&str] = &["superuser", "1000", "1001"];

fn op() -> impl Strategy<Value = Op> {
    let prog = 0u32..4;
    let vers = 0u32..4;
    let netid = prop::sample::select(NETIDS);
    let addr = prop::sample::select(ADDRS);
    let owner = prop::sample::select(OWNERS);
    prop_oneof![
        4 => (prog.clone(), vers.clone(), netid.clone(), addr, owner.clone()).prop_map(|(p, v, n, a, o)| Op::Set(p, v, n, a, o)),
        2 => (prog.clone(), vers.clone(), netid.clone(), owner).prop_map(|(p, v, n, o)| Op::Unset(p, v, n, o)),
        2 => (prog.clone(), vers.clone(), netid.clone()).prop_map(|(p, v, n)| Op::Find(p, v, n)),
        1 => (prog.clone(), vers, prop::sample::select(&[6u32, 17, 0][..])).prop_map(|(p, v, pr)| Op::FindPmap(p, v, pr)),
        1 => (prog, netid).prop_map(|(p, n)| Op::Range(p, n)),
    ]
}

fn model_range(m: &Model, prog: u32, netid: &str) -> (u32, u32) {
    let (mut low, mut high) = (0, 0);
    for r in m
        .rbl
        .iter()
        .filter(|r| r.program.0 == prog && r.netid.eq_ignore_ascii_case(netid))
    {
        let v = r.version.0;
        if low == 0 {
            (low, high) = (v, v);
        } else if v < low {
            low = v;
        } else if v > high {
            high = v;
        }
    }
    (low, high)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn registry_matches_the_c_list_model(ops in prop::collection::vec(op(), 1..80)) {
        let mut reg = Registry::new();
        let mut model = Model::default();
        for op in ops {
            match op {
                Op::Set(p, v, n, a, o) => {
                    prop_assert_eq!(reg.set(Program(p), Version(v), n, a, o), model.set(p, v, n, a, o));
                }
                Op::Unset(p, v, n, o) => {
                    prop_assert_eq!(reg.unset(Program(p), Version(v), n, o), model.unset(p, v, n, o));
                }
                Op::Find(p, v, n) => {
                    let got = reg.find_service(Program(p), Version(v), n).map(Registration::from);
                    prop_assert_eq!(got.as_ref(), model.find_service(p, v, n));
                }
                Op::FindPmap(p, v, pr) => {
                    let got = reg.find_service_pmap(Program(p), Version(v), pr).map(|e| e.port);
                    prop_assert_eq!(got, model.find_service_pmap(p, v, pr));
                }
                Op::Range(p, n) => {
                    let (lo, hi) = reg.version_range(Program(p), n);
                    prop_assert_eq!((lo.0, hi.0), model_range(&model, p, n));
                }
            }
            let listed: Vec<Registration> = reg.iter().map(Registration::from).collect();
            let modelled: &Vec<Registration> = &model.rbl;
            prop_assert_eq!(&listed, modelled);
            let pm: Vec<(u32, u32, u32, u32)> = reg.pmap_iter().map(|e| (e.program.0, e.version.0, e.protocol, e.port)).collect();
            prop_assert_eq!(&pm, &model.pml);
            prop_assert_eq!(reg.len(), model.rbl.len());
        }
    }

    #[test]
    fn dispatch_of_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256), t in 0usize..5) {
        let mut e = daemon();
        let o = e.handle(&bytes, &ctx(t), SystemTime::now());
        if let Outcome::Reply(r) = o {
            prop_assert!(bytes.len() >= 4 && r[..4] == bytes[..4], "a reply echoes the xid");
        }
    }

    #[test]
    fn dispatch_of_any_procedure_with_random_arguments_never_panics(
        vers in 0u32..6,
        proc in 0u32..15,
        args in prop::collection::vec(any::<u8>(), 0..128),
        t in 0usize..5,
    ) {
        let mut e = daemon();
        let mut m = CallHeader::new(1, Program::PORTMAP, Version(vers), Procedure(proc)).to_xdr();
        m.extend_from_slice(&args);
        let _ = e.handle(&m, &ctx(t), SystemTime::now());
        let _ = e.handle(&m, &ctx(t), SystemTime::now());
    }
}

fn daemon() -> Engine {
    let mut e = Engine::new(EngineConfig::default());
    e.register_own(Transport::Local, "/run/rpcbind.sock");
    e.register_own(Transport::Udp, "0.0.0.0.0.111");
    e.register_own(Transport::Tcp, "0.0.0.0.0.111");
    e.register_own(Transport::Udp6, "::.0.111");
    e.register_own(Transport::Tcp6, "::.0.111");
    e
}

fn ctx(t: usize) -> RequestContext {
    let (transport, peer, local) = match t {
        0 => (Transport::Udp, "127.0.0.1:700", "127.0.0.1:111"),
        1 => (Transport::Tcp, "192.0.2.9:4000", "192.0.2.1:111"),
        2 => (Transport::Udp6, "[::1]:4000", "[::1]:111"),
        3 => (Transport::Tcp6, "[2001:db8::9]:4000", "[2001:db8::1]:111"),
        _ => {
            return RequestContext {
                transport: Transport::Local,
                peer: None,
                local: None,
                peer_uid: Some(1000),
            }
        }
    };
    RequestContext {
        transport,
        peer: Some(peer.parse().unwrap()),
        local: Some(local.parse().unwrap()),
        peer_uid: None,
    }
}
