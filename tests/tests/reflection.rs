//! Reflection (issue 5): how many times larger than the request a UDP
//! reply to a remote caller is, for the amplification vectors DUMP (PMAP
//! v2, RPCBIND v3/v4) and GETSTAT (v4) after a burst of junk lookups.
//! Measured from a second namespace over a veth pair; ours must stay at or
//! under 1 (its default `--udp-reply-factor`), the C daemon's ratios are
//! printed (run with `--nocapture`). Loopback and TCP stay unaffected.

use std::time::Duration;

use e2e::exchange::udp_exchange;
use e2e::rpcwire::{self, parse_reply, Reply};
use e2e::{cases, Impl, Namespace, Rpcbind};

const T: Duration = Duration::from_secs(10);
const SERVER: &str = "192.0.2.1";

/// (name, version, procedure) of the vectors.
const VECTORS: [(&str, u32, u32); 4] = [
    ("PMAP DUMP", 2, 4),
    ("RPCBIND v3 DUMP", 3, 4),
    ("RPCBIND v4 DUMP", 4, 4),
    ("RPCBIND v4 GETSTAT", 4, 12),
];

/// Registers 20 programs (local socket) and sends 200 junk GETADDRs from
/// the peer, as an attacker would to grow GETSTAT.
fn populate(server: &Namespace, peer: &Namespace) {
    for i in 0..20u32 {
        let prog = (0x2500_0000 + i).to_string();
        let mut c = server.command(e2e::rpcclient());
        c.args([
            "unix:/run/rpcbind.sock",
            "set",
            &prog,
            "1",
            "udp",
            "0.0.0.0.4.1",
            "",
        ]);
        assert_eq!(e2e::run_with_timeout(c, T).stdout.trim(), "true");
    }
    peer.in_netns(|| {
        for i in 0..200u32 {
            let args = rpcwire::rpcb_args(0x3300_0000 + i, 1, "udp", "", "");
            let msg = rpcwire::call_message(i + 1, 100000, 3, 3, &args);
            assert!(udp_exchange(&format!("{SERVER}:111"), &msg).is_some());
        }
    });
}

/// (ratio, reply) of each vector sent from `ns` to `to`.
fn ratios(ns: &Namespace, to: &'static str) -> Vec<(f64, Option<Reply>)> {
    ns.in_netns(move || {
        VECTORS
            .iter()
            .map(|&(_, vers, proc_)| {
                let msg = rpcwire::call_message(0x77, 100000, vers, proc_, &[]);
                let reply = udp_exchange(to, &msg).unwrap_or_default();
                let parsed = parse_reply(0x77, &reply).ok();
                (reply.len() as f64 / msg.len() as f64, parsed)
            })
            .collect()
    })
}

cases! {
    fn udp_amplification_from_a_remote_host(which) {
        let server = Namespace::new();
        let peer = Namespace::new();
        Namespace::veth_pair(&server, &peer, "192.0.2.1/24", "192.0.2.2/24");
        let _d = Rpcbind::start(&server, which, &[]);
        populate(&server, &peer);
        let remote = ratios(&peer, "192.0.2.1:111");
        let local = ratios(&server, "127.0.0.1:111");
        for (((name, _, _), (r, reply)), (l, _)) in VECTORS.iter().zip(&remote).zip(&local) {
            let kind = match reply {
                Some(Reply::Success(_)) => "SUCCESS".to_string(),
                other => format!("{other:?}"),
            };
            eprintln!("{}: {name} over UDP: {r:.1}x from the veth peer ({kind}), {l:.1}x on loopback",
                which.name());
        }
        for (((name, _, _), (_, reply)), (l, _)) in VECTORS.iter().zip(&remote).zip(&local) {
            assert!(*l > 1.0, "{}: {name} on loopback is answered in full", which.name());
            if which == Impl::Ours {
                assert_eq!(reply, &Some(Reply::Accepted(5)), "ours: {name} capped to SYSTEM_ERR");
            } else {
                assert!(matches!(reply, Some(Reply::Success(_))), "C: {name}");
            }
        }
        if which == Impl::Ours {
            assert!(remote.iter().all(|(r, _)| *r <= 1.0), "ours: {remote:?}");
        }
        // TCP from the peer is not capped.
        let out = peer.run("rpcinfo", &["-p", SERVER], T);
        out.assert_success("rpcinfo -p over TCP from the peer");
        assert!(out.stdout.contains("620756992"), "{}", out.stdout);
    }
}
