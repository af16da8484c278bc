//! Remote calls (`-r`, issue 5): PMAP CALLIT, RPCBIND v3 CALLIT, v4 BCAST
//! and INDIRECT forwarded to a real libtirpc service (`tests/c/rpcserver`,
//! ECHO), compared with Debian's C rpcbind `-r`; refused without `-r`; the
//! deny list holds with it. Raw UDP calls from inside the namespace.

use std::time::{Duration, Instant};

use e2e::exchange::udp_exchange;
use e2e::rpcwire::{self, parse_reply, Reply, XdrOut};
use e2e::{cases, cprog, Namespace, Rpcbind};

const T: Duration = Duration::from_secs(10);
const PROG: u32 = 0x2000_0099;

/// CALLIT arguments: PROG v1 `proc` with an XDR string argument.
fn callit_args(prog: u32, proc_: u32, text: &str) -> Vec<u8> {
    let mut inner = XdrOut::default();
    inner.string(text);
    let mut a = XdrOut::default();
    a.u32(prog).u32(1).u32(proc_).u32(inner.0.len() as u32);
    a.0.extend(inner.0);
    a.0
}

/// The reply to a remote call of ECHO("hello") as (version, procedure).
fn remote_call(ns: &Namespace, vers: u32, proc_: u32, prog: u32) -> Option<Vec<u8>> {
    remote_call_to(ns, "127.0.0.1:111", vers, proc_, prog)
}

fn remote_call_to(
    ns: &Namespace,
    to: &'static str,
    vers: u32,
    proc_: u32,
    prog: u32,
) -> Option<Vec<u8>> {
    let msg = rpcwire::call_message(0x4242, 100000, vers, proc_, &callit_args(prog, 1, "hello"));
    ns.in_netns(move || udp_exchange(to, &msg))
}

fn echo_server(ns: &Namespace) -> Option<e2e::Background> {
    echo_server_on(ns, "udp")
}

fn echo_server_on(ns: &Namespace, netid: &str) -> Option<e2e::Background> {
    let bin = cprog::build("rpcserver")?;
    let mut c = ns.command(bin);
    c.args(["tp", netid]);
    let mut p = ns.spawn_command(c);
    let deadline = Instant::now() + T;
    while !p.stdout().lines().any(|l| l == "ready") {
        assert!(p.try_wait().is_none(), "rpcserver: {}", p.stderr());
        assert!(Instant::now() < deadline, "rpcserver not ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(p)
}

/// The result part of a successful reply: (port or address, echoed).
fn decode(vers: u32, reply: &[u8]) -> (String, String) {
    let Reply::Success(body) = parse_reply(0x4242, reply).expect("reply") else {
        panic!("not SUCCESS: {:?}", parse_reply(0x4242, reply));
    };
    let mut r = rpcwire::XdrIn(&body);
    let head = if vers == 2 {
        r.u32().expect("port").to_string()
    } else {
        r.string().expect("uaddr")
    };
    let results = r.opaque().expect("results");
    let echoed = rpcwire::XdrIn(&results).string().expect("echo");
    (head, echoed)
}

/// libtirpc's own clients: `pmap_rmtcall` (PMAP CALLIT) and
/// `rpcb_rmtcall` (RPCBIND CALLIT/BCAST), through `tests/c/rpcbclient`.
fn libtirpc_callit(ns: &Namespace) -> Option<(e2e::RunOutput, e2e::RunOutput)> {
    let bin = cprog::build("rpcbclient")?;
    let prog = PROG.to_string();
    let run = |args: &[&str]| {
        let mut c = ns.command(&bin);
        c.args(args);
        e2e::run_with_timeout(c, T)
    };
    Some((
        run(&["pmap_callit", "127.0.0.1", &prog, "1", "via-pmap"]),
        run(&["callit", "127.0.0.1", &prog, "1", "udp", "via-rpcb"]),
    ))
}

cases! {
    fn remote_calls_reach_a_real_service_with_dash_r(which) {
        let ns = Namespace::new();
        let _d = Rpcbind::start(&ns, which, &["-r"]);
        let Some(_server) = echo_server(&ns) else { return };
        for (vers, proc_) in [(2, 5), (3, 5), (4, 5), (4, 10)] {
            let reply = remote_call(&ns, vers, proc_, PROG)
                .unwrap_or_else(|| panic!("{}: v{vers} proc {proc_}: no reply", which.name()));
            let (head, echoed) = decode(vers, &reply);
            eprintln!("{}: v{vers} proc {proc_}: {head} {echoed}", which.name());
            assert_eq!(echoed, "hello");
            if vers == 2 {
                assert!(head.parse::<u32>().expect("port") > 0);
            } else {
                assert!(head.starts_with("127.0.0.1."), "{head}");
            }
        }
        if let Some((pmap, rpcb)) = libtirpc_callit(&ns) {
            assert!(pmap.stdout.contains("echo via-pmap"), "{}: {pmap:?}", which.name());
            assert!(rpcb.stdout.contains("echo via-rpcb"), "{}: {rpcb:?}", which.name());
            assert!(rpcb.stdout.contains("server 127.0.0.1."), "{}: {rpcb:?}", which.name());
        }
        // The service refuses (PROC_UNAVAIL): CALLIT stays silent,
        // INDIRECT reports SYSTEM_ERR.
        let unavail = |vers, proc_| {
            let args = callit_args(PROG, 9, "x");
            let msg = rpcwire::call_message(0x4242, 100000, vers, proc_, &args);
            ns.in_netns(move || udp_exchange("127.0.0.1:111", &msg))
        };
        assert_eq!(unavail(3, 5), None, "{}: CALLIT of a refused procedure", which.name());
        let reply = unavail(4, 10).expect("INDIRECT of a refused procedure");
        assert_eq!(parse_reply(0x4242, &reply).expect("reply"), Reply::Accepted(5), "{}", which.name());
        // IPv6: a service on udp6, called through [::1]:111.
        let Some(_server6) = echo_server_on(&ns, "udp6") else { return };
        for (vers, proc_) in [(3, 5), (4, 10)] {
            let reply = remote_call_to(&ns, "[::1]:111", vers, proc_, PROG)
                .unwrap_or_else(|| panic!("{}: udp6 v{vers}: no reply", which.name()));
            let (head, echoed) = decode(vers, &reply);
            assert_eq!(echoed, "hello");
            assert!(head.starts_with("::1."), "{}: {head}", which.name());
        }
        // The deny list: NFS is refused with AUTH_TOOWEAK, even with -r.
        let reply = remote_call(&ns, 3, 5, 100_003).expect("deny-list reply");
        assert_eq!(parse_reply(0x4242, &reply).expect("reply"), Reply::Denied(1));
        // An unregistered program: CALLIT is silent, INDIRECT says so.
        assert_eq!(remote_call(&ns, 3, 5, 0x2000_0098), None);
        let reply = remote_call(&ns, 4, 10, 0x2000_0098).expect("INDIRECT reply");
        assert_eq!(parse_reply(0x4242, &reply).expect("reply"), Reply::Accepted(1));
    }

    fn remote_calls_are_not_forwarded_without_dash_r(which) {
        let ns = Namespace::new();
        let _d = Rpcbind::start(&ns, which, &[]);
        let Some(_server) = echo_server(&ns) else { return };
        for (vers, proc_) in [(2, 5), (3, 5), (4, 5)] {
            assert_eq!(remote_call(&ns, vers, proc_, PROG), None, "{}: v{vers}", which.name());
        }
        let reply = remote_call(&ns, 4, 10, PROG).expect("INDIRECT reply");
        assert_eq!(parse_reply(0x4242, &reply).expect("reply"), Reply::Accepted(5), "SYSTEM_ERR");
    }
}

cases! {
    fn remote_calls_from_another_host(which) {
        let server = Namespace::new();
        let peer = Namespace::new();
        Namespace::veth_pair(&server, &peer, "192.0.2.1/24", "192.0.2.2/24");
        let _d = Rpcbind::start(&server, which, &["-r"]);
        let Some(_svc) = echo_server(&server) else { return };
        for (vers, proc_) in [(2, 5), (3, 5), (4, 10)] {
            let reply = remote_call_to(&peer, "192.0.2.1:111", vers, proc_, PROG)
                .unwrap_or_else(|| panic!("{}: v{vers} from the peer: no reply", which.name()));
            let (head, echoed) = decode(vers, &reply);
            eprintln!("{}: from the peer v{vers}: {head} {echoed}", which.name());
            assert_eq!(echoed, "hello");
            if vers != 2 {
                assert!(head.starts_with("192.0.2.1."), "{}: {head}", which.name());
            }
        }
    }
}
