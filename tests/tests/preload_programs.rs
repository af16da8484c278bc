//! End-to-end tests of `libportpolicy_preload.so` (issue 7) with real
//! programs and the opt-in port-0 mode: `rpcinfo` as root and
//! `rpc.statd` under the shim, and `tests/c/bindresv.c` binding server
//! sockets to port 0, in a private namespace with our rpcbind serving the
//! allocation service. Does namespace and process I/O.

mod preload_common;

use std::path::Path;

use e2e::{require_root, run_with_timeout, skip_note, Namespace};
use preload_common::*;

#[test]
fn port_zero_mode_serves_server_sockets_from_the_pool() {
    if !require_root("port_zero_mode_serves_server_sockets_from_the_pool") {
        return;
    }
    let Some(prog) = bindresv() else { return };
    let ns = Namespace::new();
    let _daemon = start_ours(&ns);
    let pool = Pool::read(&ns);
    for args in [
        "bind0 5 tcp 4",
        "bind0 5 udp 4",
        "bind0 3 tcp 6 -v",
        "bind0 3 udp 6 -v -k",
    ] {
        let out = sh(
            &ns,
            &prog,
            &format!("PORTPOLICY_PRELOAD_BIND0=1 LD_PRELOAD=$LIB $PROG {args}"),
        );
        out.assert_success(args);
        for b in parse(&out) {
            assert!(pool.contains(&b), "{args}: not a pool port {b:?}");
            assert_eq!(
                b.listening,
                b.proto == "tcp",
                "{args}: listen() after bind {b:?}"
            );
        }
    }
    // Not opted in, or a dual-stack IPv6 socket: the kernel's ephemeral port.
    for (args, env) in [
        ("bind0 3 tcp 4", ""),
        ("bind0 3 tcp 6", "PORTPOLICY_PRELOAD_BIND0=1"),
    ] {
        let out = sh(&ns, &prog, &format!("{env} LD_PRELOAD=$LIB $PROG {args}"));
        out.assert_success(args);
        for b in parse(&out) {
            assert!(b.port >= 32768, "{args} {env}: {b:?}");
        }
    }
}

#[test]
fn rpcinfo_as_root_works_under_the_shim_from_a_pool_port() {
    if !require_root("rpcinfo_as_root_works_under_the_shim_from_a_pool_port") {
        return;
    }
    let ns = Namespace::new();
    let _daemon = start_ours(&ns);
    let pool = Pool::read(&ns);
    for (args, ports) in [
        (&["-p", "127.0.0.1"][..], &pool.tcp),
        (&["-T", "udp", "127.0.0.1", "100000", "2"][..], &pool.udp),
    ] {
        let mut c = ns.command("env");
        c.arg(format!("LD_PRELOAD={}", preload_lib().display()))
            .arg("PORTPOLICY_PRELOAD_DEBUG=1")
            .arg("rpcinfo")
            .args(args);
        let out = run_with_timeout(c, RUN_TIMEOUT);
        out.assert_success("rpcinfo under the shim");
        assert!(
            out.stdout.contains("portmapper") || out.stdout.contains("ready and waiting"),
            "{}",
            out.stdout
        );
        let served: Vec<u16> = out
            .stderr
            .lines()
            .filter_map(|l| l.split("pool port ").nth(1))
            .map(|p| p.trim().parse().expect("port in the debug line"))
            .collect();
        assert!(
            !served.is_empty(),
            "rpcinfo {args:?} was not served:\n{}",
            out.stderr
        );
        for p in served {
            assert!(p < 1024 && ports.contains(&p), "rpcinfo {args:?}: port {p}");
        }
    }
}

#[test]
fn rpc_statd_under_the_shim_takes_only_policy_ports() {
    if !require_root("rpc_statd_under_the_shim_takes_only_policy_ports") {
        return;
    }
    if !Path::new("/usr/sbin/rpc.statd").exists() {
        skip_note("skipping rpc_statd_under_the_shim_takes_only_policy_ports: no rpc.statd");
        return;
    }
    let ns = Namespace::new();
    // statd drops root before it binds its listeners, and privileged pool
    // ports go to root only: its listeners are served in high mode.
    let _daemon = start_with(&ns, "mode = \"high\"\n");
    let pool = Pool::read(&ns);
    let services = services_ports();
    statd_state_dir(&ns);
    let mut c = ns.command("env");
    c.arg(format!("LD_PRELOAD={}", preload_lib().display()))
        .args(["PORTPOLICY_PRELOAD_BIND0=1", "PORTPOLICY_PRELOAD_DEBUG=1"])
        .args(["rpc.statd", "-F", "--no-notify", "-P", "/run/statd"]);
    let mut statd = ns.spawn_command(c);
    for (proto, port) in statd_registrations(&ns, &mut statd) {
        let set = if proto == "tcp" { &pool.tcp } else { &pool.udp };
        assert!(
            set.contains(&port),
            "statd registered a non-pool port: {port}/{proto}"
        );
    }
    let held = ports_of(&ns, "rpc.statd");
    assert!(
        held.len() >= 5,
        "statd's sockets: {held:?}\n{}",
        statd.stderr()
    );
    for (proto, port) in held {
        let in_pool = if proto == "tcp" { &pool.tcp } else { &pool.udp };
        // the listeners: high pool; the outgoing socket: bindresvport(),
        // a privileged pool port
        assert!(
            in_pool.contains(&port) || (port < 1024 && !services.contains(&port)),
            "statd holds {port}/{proto}:\n{}",
            statd.stderr()
        );
        assert!(!services.contains(&port), "{port}/{proto}");
    }
}
