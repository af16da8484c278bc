//! End-to-end tests of `libportpolicy_preload.so` (issue 7): libtirpc's
//! (and glibc's) `bindresvport()` / `bindresvport_sa()` called by a C
//! program (`tests/c/bindresv.c`) under LD_PRELOAD, in a private namespace
//! with our rpcbind serving the allocation service. Expectations come from
//! the policy as the admin sees it (`portpolicy pool`, run in the same
//! namespace) and from `/etc/services`. Does namespace and process I/O.

mod preload_common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use e2e::{require_root, run_with_timeout, skip_note, Namespace};
use preload_common::*;

/// Four calls per round (resv udp4, resv tcp4, resv_sa udp6, resv_sa tcp6),
/// each in a new process (so libtirpc's pid-derived start differs).
fn rounds_script(rounds: u32, preload: bool) -> String {
    let env = if preload {
        "LD_PRELOAD=$LIB PORTPOLICY_PRELOAD_DEBUG=1"
    } else {
        ""
    };
    format!(
        "for i in $(seq {rounds}); do \
           for a in 'resv 1 udp 4' 'resv 1 tcp 4' 'resv_sa 1 udp 6' 'resv_sa 1 tcp 6'; do \
             env {env} $PROG $a || echo \"failed: $a\"; \
           done; \
         done"
    )
}

#[test]
fn bindresvport_lands_in_the_pool_every_time() {
    if !require_root("bindresvport_lands_in_the_pool_every_time") {
        return;
    }
    let Some(prog) = bindresv() else { return };
    let ns = Namespace::new();
    let _daemon = start_ours(&ns);
    let pool = Pool::read(&ns);
    let services = services_ports();

    let started = Instant::now();
    let out = sh(&ns, &prog, &rounds_script(75, true));
    out.assert_success("300 bindresvport() runs under the shim");
    let shimmed = parse(&out);
    let elapsed = started.elapsed();
    assert_eq!(shimmed.len(), 300);
    assert_eq!(
        out.stderr.matches(": pool port ").count(),
        300,
        "every call served by the service:\n{}",
        out.stderr
    );
    for b in &shimmed {
        assert!(
            b.port < 1024,
            "unprivileged port for a bindresvport() caller: {b:?}"
        );
        assert!(pool.contains(b), "not a pool port: {b:?}");
        assert!(!services.contains(&b.port), "/etc/services names {b:?}");
    }

    let started = Instant::now();
    let out = sh(&ns, &prog, &rounds_script(75, false));
    out.assert_success("300 bindresvport() runs without the shim");
    let plain_elapsed = started.elapsed();
    let plain = parse(&out);
    assert_eq!(plain.len(), 300);
    assert!(plain.iter().all(|b| b.port < 1024));
    let named = plain.iter().filter(|b| services.contains(&b.port)).count();
    let outside = plain.iter().filter(|b| !pool.contains(b)).count();
    skip_note(&format!(
        "figure: 300 bindresvport() runs (one process each): under the shim 0 on \
         /etc/services ports, all in the pool, {elapsed:.2?} in all; without it \
         {named} on /etc/services ports ({:.1} %), {outside} outside the pool, \
         {plain_elapsed:.2?} in all",
        named as f64 / 3.0
    ));
}

#[test]
fn ports_held_at_once_are_distinct_pool_ports() {
    if !require_root("ports_held_at_once_are_distinct_pool_ports") {
        return;
    }
    let Some(prog) = bindresv() else { return };
    let ns = Namespace::new();
    let _daemon = start_ours(&ns);
    let pool = Pool::read(&ns);
    // The last: four threads calling at once (25 calls each).
    for args in ["resv 100 udp 4", "resv_sa 100 tcp 6", "resv 25 tcp 4 -t 4"] {
        let out = sh(
            &ns,
            &prog,
            &format!("PORTPOLICY_PRELOAD_DEBUG=1 LD_PRELOAD=$LIB $PROG {args}"),
        );
        out.assert_success(args);
        let got = parse(&out);
        assert_eq!(got.len(), 100);
        assert_eq!(out.stderr.matches(": pool port ").count(), 100, "{args}");
        let distinct: BTreeSet<u16> = got.iter().map(|b| b.port).collect();
        assert_eq!(
            distinct.len(),
            100,
            "{args}: a port handed out twice: {got:?}"
        );
        assert!(
            got.iter().all(|b| pool.contains(b) && b.port < 1024),
            "{args}: {got:?}"
        );
    }
}

#[test]
fn in_high_mode_bindresvport_callers_still_get_privileged_pool_ports() {
    if !require_root("in_high_mode_bindresvport_callers_still_get_privileged_pool_ports") {
        return;
    }
    let Some(prog) = bindresv() else { return };
    let ns = Namespace::new();
    let _daemon = start_with(&ns, "mode = \"high\"\n");
    let high = Pool::read(&ns);
    assert!(high.udp.iter().all(|p| *p >= 1024), "high mode pool");
    // The privileged pool of the same sources: the default mode's.
    std::fs::write(ns.host_path("/run/privileged.toml"), "").expect("write");
    let privileged = Pool::read_config(&ns, "/run/privileged.toml");
    for args in ["resv 20 udp 4", "resv_sa 20 tcp 6"] {
        let out = sh(
            &ns,
            &prog,
            &format!("PORTPOLICY_PRELOAD_DEBUG=1 LD_PRELOAD=$LIB $PROG {args}"),
        );
        out.assert_success(args);
        let got = parse(&out);
        assert_eq!(out.stderr.matches(": pool port ").count(), 20, "{args}");
        for b in got {
            assert!(b.port < 1024 && privileged.contains(&b), "{args}: {b:?}");
        }
    }
}

#[test]
fn glibcs_own_bindresvport_is_served_too() {
    if !require_root("glibcs_own_bindresvport_is_served_too") {
        return;
    }
    let Some(prog) = bindresv_glibc() else { return };
    let ns = Namespace::new();
    let _daemon = start_ours(&ns);
    let pool = Pool::read(&ns);
    for args in ["resv 20 udp 4", "resv 20 tcp 4 -a 127.0.0.1"] {
        let out = sh(
            &ns,
            &prog,
            &format!("PORTPOLICY_PRELOAD_DEBUG=1 LD_PRELOAD=$LIB $PROG {args}"),
        );
        out.assert_success(args);
        let got = parse(&out);
        assert_eq!(got.len(), 20, "{args}");
        assert_eq!(out.stderr.matches(": pool port ").count(), 20, "{args}");
        assert!(
            got.iter().all(|b| b.port < 1024 && pool.contains(b)),
            "{args}: {got:?}"
        );
    }
}

#[test]
fn the_callers_descriptor_flags_and_address_are_kept() {
    if !require_root("the_callers_descriptor_flags_and_address_are_kept") {
        return;
    }
    let Some(prog) = bindresv() else { return };
    let ns = Namespace::new();
    let _daemon = start_ours(&ns);
    let pool = Pool::read(&ns);
    for (args, addr, nonblock) in [
        ("resv 2 udp 4 -a 127.0.0.1 -k", "127.0.0.1", true),
        ("resv 2 tcp 4 -a 127.0.0.1", "127.0.0.1", false),
        ("resv_sa 2 udp 6 -a ::1 -k", "::1", true),
        ("resv_sa 2 tcp 6 -a ::1", "::1", false),
        ("resv_sa 2 udp 6 -k", "::", true),
    ] {
        let out = sh(&ns, &prog, &format!("LD_PRELOAD=$LIB $PROG {args}"));
        out.assert_success(args);
        let got = parse(&out);
        assert_eq!(got.len(), 2, "{args}");
        for b in got {
            assert!(pool.contains(&b), "{args}: {b:?}");
            assert_eq!(b.addr, addr, "{args}: bound address {b:?}");
            assert_eq!(b.nonblock, nonblock, "{args}: O_NONBLOCK {b:?}");
            assert_eq!(b.cloexec, nonblock, "{args}: FD_CLOEXEC {b:?}");
            let filled = if args.contains("-a") {
                i32::from(b.port)
            } else {
                -1
            };
            assert_eq!(b.sin_port, filled, "{args}: the caller's address {b:?}");
        }
    }
}

#[test]
fn without_the_daemon_the_real_function_still_works() {
    if !require_root("without_the_daemon_the_real_function_still_works") {
        return;
    }
    let Some(prog) = bindresv() else { return };
    let ns = Namespace::new();
    // Never started, then started and stopped (a stale socket file left).
    for phase in ["never started", "stopped"] {
        if phase == "stopped" {
            let mut daemon = start_ours(&ns);
            assert!(daemon.terminate().is_some(), "daemon did not stop");
        }
        let started = Instant::now();
        let out = sh(
            &ns,
            &prog,
            "PORTPOLICY_PRELOAD_DEBUG=1 LD_PRELOAD=$LIB $PROG resv 3 udp 4 && \
             PORTPOLICY_PRELOAD_DEBUG=1 LD_PRELOAD=$LIB $PROG resv_sa 3 tcp 6",
        );
        out.assert_success(phase);
        let got = parse(&out);
        assert_eq!(got.len(), 6, "{phase}");
        assert!(
            got.iter().all(|b| b.port < 1024 && b.port >= 512),
            "{phase}: {got:?}"
        );
        assert_eq!(
            out.stderr.matches("real function").count(),
            6,
            "{phase}: every call fell back:\n{}",
            out.stderr
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{phase}: fallback took {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn a_hung_service_costs_one_timeout_then_the_real_function_runs() {
    if !require_root("a_hung_service_costs_one_timeout_then_the_real_function_runs") {
        return;
    }
    let Some(prog) = bindresv() else { return };
    let mut python = std::process::Command::new("python3");
    python.arg("-V");
    if run_with_timeout(python, RUN_TIMEOUT).code() != 0 {
        skip_note(
            "skipping a_hung_service_costs_one_timeout_then_the_real_function_runs: no python3",
        );
        return;
    }
    let ns = Namespace::new();
    // Accepts connections (the kernel's backlog does) and never answers.
    let hung = ns.spawn(
        "python3",
        &[
            "-c",
            "import socket,time\n\
             s=socket.socket(socket.AF_UNIX)\n\
             s.bind('\\0/run/rpcbind.sock')\n\
             s.listen(8)\n\
             print('ready',flush=True)\n\
             time.sleep(60)",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !hung.stdout().contains("ready") {
        assert!(
            Instant::now() < deadline,
            "hung listener: {}",
            hung.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let started = Instant::now();
    let out = sh(
        &ns,
        &prog,
        "PORTPOLICY_PRELOAD_DEBUG=1 LD_PRELOAD=$LIB $PROG resv 1 udp 4",
    );
    let took = started.elapsed();
    out.assert_success("bindresvport with a hung service");
    let got = parse(&out);
    assert!(got.len() == 1 && got[0].port < 1024, "{got:?}");
    assert!(out.stderr.contains("real function"), "{}", out.stderr);
    // The shim's bound is 2 s per request.
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(6),
        "took {took:?}"
    );
}

#[test]
fn a_non_root_caller_gets_the_same_refusal_as_without_the_shim() {
    if !require_root("a_non_root_caller_gets_the_same_refusal_as_without_the_shim") {
        return;
    }
    let Some(prog) = bindresv() else { return };
    let ns = Namespace::new();
    let _daemon = start_ours(&ns);
    let mut c = ns.command_as_nobody("env");
    c.arg(format!("LD_PRELOAD={}", preload_lib().display()))
        .arg(&prog)
        .args(["resv", "1", "udp", "4"]);
    let out = run_with_timeout(c, RUN_TIMEOUT);
    assert_eq!(out.code(), 1, "{out:?}");
    assert!(
        out.stdout.starts_with(&format!("error {} ", libc::EACCES)),
        "{}",
        out.stdout
    );
}
