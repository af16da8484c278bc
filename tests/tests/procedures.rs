//! Every procedure of PMAP v2 and RPCBIND v3/v4 (RFC 1833 sections 2.2,
//! 3.2), plus one unknown procedure per version, over every transport
//! (udp, udp6, tcp, tcp6, the local socket), byte-compared between the C
//! reference and ours. Registrations made over one transport show up in
//! the DUMPs made over the next ones, so owners and merging are compared
//! too. The only normalisation: the 4-byte time in GETTIME replies.

use std::path::PathBuf;
use std::time::Duration;

use e2e::exchange::{stream_exchange, udp_exchange, Stream};
use e2e::rpcwire::{call_message, pmap_args, rpcb_args, XdrOut, IPPROTO_TCP, IPPROTO_UDP};
use e2e::{require_root, Impl, Namespace, Rpcbind};

const T: Duration = Duration::from_secs(10);

/// The calls made over transport number `k`, each with a label.
fn calls(k: u32) -> Vec<(String, u32, u32, Vec<u8>)> {
    let (p2, p3, p4) = (400000 + k, 410000 + k, 420000 + k);
    let mut netbuf = XdrOut::default();
    netbuf.u32(16).u32(16);
    netbuf
        .0
        .extend_from_slice(&[2, 0, 0, 111, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    let mut uaddr = XdrOut::default();
    uaddr.string("127.0.0.1.0.111");
    let mut callit = XdrOut::default();
    callit.u32(100000).u32(2).u32(0).u32(0);
    let rpcb = |prog, netid: &str, addr: &str| rpcb_args(prog, 1, netid, addr, "x");
    let mut v = vec![
        ("v2 NULL", 2, 0, vec![]),
        ("v2 SET", 2, 1, pmap_args(p2, 1, IPPROTO_UDP, 2000 + k)),
        (
            "v2 SET again",
            2,
            1,
            pmap_args(p2, 1, IPPROTO_UDP, 2100 + k),
        ),
        ("v2 GETPORT", 2, 3, pmap_args(p2, 1, IPPROTO_UDP, 0)),
        ("v2 GETPORT absent", 2, 3, pmap_args(p2, 1, IPPROTO_TCP, 0)),
        ("v2 DUMP", 2, 4, vec![]),
        ("v2 CALLIT", 2, 5, callit.0.clone()),
        ("v2 unknown 6", 2, 6, vec![]),
        ("v3 NULL", 3, 0, vec![]),
        ("v3 SET", 3, 1, rpcb(p3, "udp", "0.0.0.0.7.208")),
        ("v3 SET again", 3, 1, rpcb(p3, "udp", "0.0.0.0.7.209")),
        ("v3 SET tcp", 3, 1, rpcb(p3, "tcp", "0.0.0.0.7.208")),
        ("v3 GETADDR", 3, 3, rpcb(p3, "udp", "")),
        ("v3 GETADDR absent", 3, 3, rpcb(p3, "udp6", "")),
        ("v3 DUMP", 3, 4, vec![]),
        ("v3 CALLIT", 3, 5, callit.0.clone()),
        ("v3 GETTIME", 3, 6, vec![]),
        ("v3 UADDR2TADDR", 3, 7, uaddr.0.clone()),
        ("v3 TADDR2UADDR", 3, 8, netbuf.0.clone()),
        ("v3 UNSET one netid", 3, 2, rpcb(p3, "tcp", "")),
        ("v3 unknown 9", 3, 9, vec![]),
        ("v4 NULL", 4, 0, vec![]),
        ("v4 SET", 4, 1, rpcb(p4, "tcp6", "::.7.208")),
        ("v4 SET udp", 4, 1, rpcb(p4, "udp", "0.0.0.0.7.210")),
        ("v4 GETADDR", 4, 3, rpcb(p4, "tcp6", "")),
        ("v4 GETVERSADDR", 4, 9, rpcb(p4, "udp", "")),
        ("v4 GETADDRLIST", 4, 11, rpcb(p4, "udp", "")),
        ("v4 DUMP", 4, 4, vec![]),
        ("v4 BCAST", 4, 5, callit.0.clone()),
        ("v4 INDIRECT", 4, 10, callit.0),
        ("v4 GETTIME", 4, 6, vec![]),
        ("v4 UADDR2TADDR", 4, 7, uaddr.0),
        ("v4 TADDR2UADDR", 4, 8, netbuf.0),
        ("v4 GETSTAT", 4, 12, vec![]),
        ("v2 UNSET", 2, 2, pmap_args(p2, 1, 0, 0)),
        ("v4 UNSET all netids", 4, 2, rpcb(p4, "", "")),
        ("v4 unknown 13", 4, 13, vec![]),
    ];
    v.iter_mut()
        .map(|(label, vers, proc_, args)| (label.to_string(), *vers, *proc_, std::mem::take(args)))
        .collect()
}

/// Hides the time in a GETTIME reply (its last four bytes).
fn mask_time(label: &str, mut reply: Vec<u8>) -> Vec<u8> {
    if label.ends_with("GETTIME") && reply.len() >= 4 {
        let n = reply.len();
        reply[n - 4..].copy_from_slice(b"TIME");
    }
    reply
}

/// Where the calls go: (label, address) for UDP and TCP, and the local
/// socket's host path if it is to be used.
struct Transports {
    udp: Vec<(&'static str, &'static str)>,
    tcp: Vec<(&'static str, &'static str)>,
    local: Option<PathBuf>,
}

fn run_calls(t: Transports) -> Vec<String> {
    let mut lines = Vec::new();
    let mut xid = 1000;
    let mut k = 0;
    let streams: Vec<(&str, Stream)> = t
        .tcp
        .iter()
        .map(|(l, a)| (*l, Stream::Tcp(a)))
        .chain(t.local.map(|p| ("local", Stream::Local(p))))
        .collect();
    for (label, to) in &t.udp {
        for (call, vers, proc_, args) in calls(k) {
            xid += 1;
            let msg = call_message(xid, 100000, vers, proc_, &args);
            let got = udp_exchange(to, &msg).map(|r| mask_time(&call, r));
            lines.push(format!("{label} {call}: {got:02x?}"));
        }
        k += 1;
    }
    for (label, stream) in &streams {
        for (call, vers, proc_, args) in calls(k) {
            xid += 1;
            let msg = call_message(xid, 100000, vers, proc_, &args);
            let (reply, end) = stream_exchange(stream, &msg);
            lines.push(format!(
                "{label} {call}: {:02x?} {end:?}",
                mask_time(&call, reply)
            ));
        }
        k += 1;
    }
    lines
}

fn transcript(which: Impl) -> Vec<String> {
    let ns = Namespace::new();
    let _d = Rpcbind::start(&ns, which, &[]);
    let local: PathBuf = ns.host_path("/run/rpcbind.sock");
    ns.in_netns(move || {
        run_calls(Transports {
            udp: vec![("udp", "127.0.0.1:111"), ("udp6", "[::1]:111")],
            tcp: vec![("tcp", "127.0.0.1:111"), ("tcp6", "[::1]:111")],
            local: Some(local),
        })
    })
}

/// The same calls from another host (a veth peer, IPv4 and IPv6), after
/// wildcard registrations made locally.
fn remote_transcript(which: Impl) -> Vec<String> {
    let server = Namespace::new();
    let peer = Namespace::new();
    Namespace::veth_pair(&server, &peer, "192.0.2.1/24", "192.0.2.2/24");
    for (ns, dev, addr) in [
        (&server, "veth-a", "2001:db8::1/64"),
        (&peer, "veth-b", "2001:db8::2/64"),
    ] {
        ns.run("ip", &["-6", "addr", "add", addr, "dev", dev, "nodad"], T)
            .assert_success("ip -6 addr add");
    }
    // Ours caps UDP replies to non-local callers by default (an
    // amplification guard the C daemon lacks; tested in multihomed.rs):
    // lifted here to compare everything else.
    let extra: &[&str] = match which {
        Impl::Ours => &["--udp-reply-factor", "0"],
        Impl::Reference => &[],
    };
    let _d = Rpcbind::start(&server, which, extra);
    for k in 0..4u32 {
        for (prog, netid, uaddr) in [
            (410000 + k, "udp", "0.0.0.0.7.208"),
            (420000 + k, "tcp6", "::.7.208"),
            (420000 + k, "udp", "0.0.0.0.7.210"),
        ] {
            let mut c = server.command(e2e::rpcclient());
            c.args([
                "unix:/run/rpcbind.sock",
                "set",
                &prog.to_string(),
                "1",
                netid,
                uaddr,
                "",
            ]);
            let out = e2e::run_with_timeout(c, T);
            assert_eq!(out.stdout.trim(), "true", "{out:?}");
        }
    }
    peer.in_netns(|| {
        run_calls(Transports {
            udp: vec![("udp", "192.0.2.1:111"), ("udp6", "[2001:db8::1]:111")],
            tcp: vec![("tcp", "192.0.2.1:111"), ("tcp6", "[2001:db8::1]:111")],
            local: None,
        })
    })
}

fn compare(test: &str, transcript: fn(Impl) -> Vec<String>) {
    if !require_root(test) || !Impl::Reference.available() {
        e2e::skip_note(&format!("skipping {test}: needs root and the C reference"));
        return;
    }
    // E2E_DIFFERENTIAL_SELF=1: compare the reference with itself.
    let second = match std::env::var_os("E2E_DIFFERENTIAL_SELF") {
        Some(_) => Impl::Reference,
        None => Impl::Ours,
    };
    let other = std::thread::spawn(move || transcript(second));
    let reference = transcript(Impl::Reference);
    let ours = other.join().expect("transcript thread");
    if std::env::var_os("E2E_SHOW").is_some() {
        eprintln!("{}", reference.join("\n"));
    }
    assert_eq!(reference.len(), ours.len());
    let diffs: Vec<String> = reference
        .iter()
        .zip(&ours)
        .filter(|(a, b)| a != b)
        .map(|(a, b)| format!("reference: {a}\nours:      {b}"))
        .collect();
    assert!(
        diffs.is_empty(),
        "{} of {} differ:\n{}",
        diffs.len(),
        reference.len(),
        diffs.join("\n")
    );
}

#[test]
fn every_procedure_over_every_transport() {
    compare("every_procedure_over_every_transport", transcript);
}

#[test]
fn every_procedure_from_a_remote_host() {
    compare("every_procedure_from_a_remote_host", remote_transcript);
}
