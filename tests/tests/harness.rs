//! Checks of the harness itself: a namespace is private, commands run in
//! it, files inside are reachable, threads can enter it, and the C
//! reference starts and is killed on drop.

use std::net::UdpSocket;
use std::time::Duration;

use e2e::{require_root, Impl, Namespace, Rpcbind};

const T: Duration = Duration::from_secs(5);

#[test]
fn namespace_has_loopback_and_private_run() {
    if !require_root("namespace_has_loopback_and_private_run") {
        return;
    }
    let ns = Namespace::new();
    let out = ns.run("ip", &["-o", "addr", "show", "dev", "lo"], T);
    out.assert_success("ip addr");
    assert!(out.stdout.contains("127.0.0.1/8"), "{}", out.stdout);
    ns.run("touch", &["/run/marker"], T).assert_success("touch");
    assert!(ns.host_path("/run/marker").exists());
    assert!(
        !std::path::Path::new("/run/marker").exists(),
        "tmpfs on /run must be private"
    );
}

#[test]
fn in_netns_sockets_live_in_the_namespace() {
    if !require_root("in_netns_sockets_live_in_the_namespace") {
        return;
    }
    let ns = Namespace::new();
    ns.add_address("192.0.2.1/24");
    // 192.0.2.1 is only assigned inside the namespace: binding it there works.
    let bound = ns.in_netns(|| {
        UdpSocket::bind("192.0.2.1:0")
            .map(|_| ())
            .map_err(|e| e.kind())
    });
    assert_eq!(bound, Ok(()));
    assert!(
        UdpSocket::bind("192.0.2.1:0").is_err(),
        "address must not exist on the host"
    );
}

#[test]
fn veth_pair_connects_two_namespaces() {
    if !require_root("veth_pair_connects_two_namespaces") {
        return;
    }
    let a = Namespace::new();
    let b = Namespace::new();
    Namespace::veth_pair(&a, &b, "192.0.2.1/24", "192.0.2.2/24");
    let server = a.in_netns(|| UdpSocket::bind("192.0.2.1:0").unwrap());
    let port = server.local_addr().unwrap().port();
    server.set_read_timeout(Some(T)).unwrap();
    b.in_netns(move || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        s.send_to(b"hello", ("192.0.2.1", port)).unwrap();
    });
    let mut buf = [0u8; 16];
    let (n, from) = server.recv_from(&mut buf).expect("datagram over veth");
    assert_eq!(&buf[..n], b"hello");
    assert_eq!(from.ip().to_string(), "192.0.2.2");
}

#[test]
fn reference_daemon_starts_and_is_killed_on_drop() {
    if !require_root("reference_daemon_starts_and_is_killed_on_drop")
        || !Impl::Reference.available()
    {
        return;
    }
    let ns = Namespace::new();
    let pid;
    {
        let d = Rpcbind::start(&ns, Impl::Reference, &[]);
        pid = d.process.pid();
        assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    }
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "daemon must be reaped"
    );
}

#[test]
fn run_is_bounded_even_when_output_stays_open() {
    if !require_root("run_is_bounded_even_when_output_stays_open") {
        return;
    }
    let ns = Namespace::new();
    let start = std::time::Instant::now();
    let out = ns.run("sleep", &["30"], Duration::from_millis(300));
    assert!(out.timed_out && out.status.is_none(), "{out:?}");
    // A background child keeps stdout open after the shell exits.
    let out = ns.run("sh", &["-c", "sleep 30 & echo hi"], T);
    assert!(out.success(), "{out:?}");
    assert_eq!(out.stdout, "hi\n");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    // Dropping the namespace kills the leftover sleep.
}
