//! Ours only (the C daemon 1.2.6 has no such socket): the daemon also
//! listens on the abstract unix socket `@/run/rpcbind.sock`, which newer
//! libtirpc tries first. Abstract sockets belong to the network namespace,
//! so the client enters it with `in_netns`. Owners there come from
//! SO_PEERCRED as on the path socket.

use std::time::Duration;

use e2e::rpcwire::{self, Target, IPPROTO_UDP};
use e2e::{rpcclient, run_case, Impl, Namespace, Rpcbind};

#[test]
fn abstract_socket_answers_and_owns_by_uid() {
    run_case(
        "abstract_socket_answers_and_owns_by_uid",
        Impl::Ours,
        |which| {
            let ns = Namespace::new();
            let _d = Rpcbind::start(&ns, which, &[]);
            let target = Target::Abstract("/run/rpcbind.sock".into());
            let (port, _) = ns
                .in_netns(move || {
                    rpcwire::pmap_getport(&target, 100000, 2, IPPROTO_UDP, Duration::from_secs(3))
                })
                .expect("GETPORT over @/run/rpcbind.sock");
            assert_eq!(port, 111);
            let mut c = ns.command_as_nobody(rpcclient());
            c.args([
                "abstract:/run/rpcbind.sock",
                "set",
                "200000",
                "1",
                "udp",
                "0.0.0.0.4.1",
                "x",
            ]);
            let out = e2e::run_with_timeout(c, Duration::from_secs(10));
            assert_eq!(out.stdout.trim(), "true", "{out:?}");
            let s = ns.run("rpcinfo", &["-s"], Duration::from_secs(10));
            let row = s
                .stdout
                .lines()
                .find(|l| l.trim_start().starts_with("200000 "));
            let row = row.map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "));
            assert_eq!(row.as_deref(), Some("200000 1 udp - 65534"), "{s:?}");
        },
    );
}
