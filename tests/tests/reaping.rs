//! Ours only: `--reap-interval` removes a registration whose port nobody
//! has bound for two consecutive checks, and never one that is bound
//! (a real libtirpc service).

use std::time::{Duration, Instant};

use e2e::{cprog, Impl, Namespace, Rpcbind};

const T: Duration = Duration::from_secs(10);

#[test]
fn unbound_registrations_are_reaped_bound_ones_kept() {
    e2e::run_case("reaping", Impl::Ours, |which| {
        let ns = Namespace::new();
        let mut d = Rpcbind::start(&ns, which, &["--reap-interval", "1"]);
        let Some(bin) = cprog::build("rpcserver") else {
            return;
        };
        let mut c = ns.command(bin);
        c.args(["tp", "udp"]);
        let server = ns.spawn_command(c);
        let deadline = Instant::now() + T;
        while !server.stdout().lines().any(|l| l == "ready") {
            assert!(Instant::now() < deadline, "rpcserver not ready");
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut c = ns.command(e2e::rpcclient());
        c.args([
            "unix:/run/rpcbind.sock",
            "set",
            "620000",
            "1",
            "udp",
            "0.0.0.0.4.1",
            "",
        ]);
        assert_eq!(e2e::run_with_timeout(c, T).stdout.trim(), "true");
        std::thread::sleep(Duration::from_millis(3500));
        let out = ns.run("rpcinfo", &["-p"], T);
        out.assert_success("rpcinfo -p");
        assert!(
            !out.stdout.contains("620000"),
            "unbound one reaped:\n{}",
            out.stdout
        );
        assert!(
            out.stdout.contains("536871065"),
            "bound one kept:\n{}",
            out.stdout
        );
        assert!(d.terminate().is_some());
        let log = d.process.stderr();
        assert!(log.contains("reaped 620000 1 udp 0.0.0.0.4.1"), "{log}");
        drop(server);
    });
}
