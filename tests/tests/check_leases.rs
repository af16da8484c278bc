//! End-to-end: `portpolicy check` asks the allocation service of our
//! rpcbind for its leases, so a leased pool port is not reported while a
//! pool port taken outside the service is.

use e2e::{binary, require_root, Impl, Namespace, Rpcbind};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);
const CONFIG: &str = "/run/check-policy.toml";
/// 24000-24039 names no /etc/services entry.
const POOL: &str = "mode = \"high\"\nhigh_range = \"24000-24039\"\n";

#[test]
fn check_tells_leased_pool_ports_from_others() {
    if !require_root("check_tells_leased_pool_ports_from_others") {
        return;
    }
    let ns = Namespace::new();
    std::fs::write(ns.host_path(CONFIG), POOL).expect("write policy");
    let _d = Rpcbind::start(&ns, Impl::Ours, &["--policy-config", CONFIG]);
    let pp = binary("portpolicy").display().to_string();
    // A pool port bound by hand, outside the service.
    let _outsider = ns.spawn(
        "python3",
        &[
            "-c",
            "import socket,time\ns=socket.socket()\ns.bind(('0.0.0.0',24039))\ns.listen()\ntime.sleep(30)",
        ],
    );
    // A pool port leased through the service.
    let _leased = ns.spawn(&pp, &["exec", "--pool", "--tcp", "--", "sleep", "30"]);
    let config = ns.host_path(CONFIG).display().to_string();
    let end = Instant::now() + T;
    let (leased_port, check) = loop {
        let leases = ns.run(&pp, &["leases"], T);
        let port = leases
            .stdout
            .lines()
            .skip(1)
            .find_map(|l| l.split_whitespace().nth(1)?.parse::<u16>().ok());
        let ss = ns.run("ss", &["-Hltn", "sport = :24039"], T);
        if let (Some(port), true) = (port, !ss.stdout.trim().is_empty()) {
            break (port, ns.run(&pp, &["--config", &config, "check"], T));
        }
        assert!(
            Instant::now() < end,
            "no lease or no outsider: {}",
            leases.stdout
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = &check.stdout;
    assert!(
        out.contains("pool port 24039/tcp is held outside a lease"),
        "{out}"
    );
    assert!(
        !out.contains(&format!("pool port {leased_port}/tcp")),
        "leased port {leased_port} reported: {out}"
    );
    assert!(!out.contains("no lease source"), "{out}");
}
