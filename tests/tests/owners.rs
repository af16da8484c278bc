//! Owner rules (RFC 1833 section 2.2.1: SET/UNSET; rpcbind's access
//! checks): who owns a registration made over each transport, who may
//! remove it, and SET refused from a non-local address. A second uid is
//! `nobody` (65534) via setpriv. Expectations are what Debian's C
//! rpcbind 1.2.6 does, observed here; each case runs against both daemons.

use std::time::Duration;

use e2e::services::{expect_rpcinfo, rpcinfo};
use e2e::{cases, rpcclient, Namespace, Rpcbind, RunOutput};

const T: Duration = Duration::from_secs(10);
const UNIX: &str = "unix:/run/rpcbind.sock";

fn client(ns: &Namespace, args: &[&str]) -> RunOutput {
    let mut c = ns.command(rpcclient());
    c.args(args);
    e2e::run_with_timeout(c, T)
}

fn client_as_nobody(ns: &Namespace, args: &[&str]) -> RunOutput {
    let mut c = ns.command_as_nobody(rpcclient());
    c.args(args);
    e2e::run_with_timeout(c, T)
}

/// The `rpcinfo -s` row for program `prog` (squeezed), or None.
fn short_row(ns: &Namespace, prog: &str) -> Option<String> {
    let out = rpcinfo(ns, &["-s"]);
    out.assert_success("rpcinfo -s");
    out.stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .find(|l| l.starts_with(&format!("{prog} ")))
}

fn assert_reply(out: &RunOutput, want: &str, what: &str) {
    assert_eq!(out.stdout.trim(), want, "{what}: {out:?}");
}

cases! {
    fn owner_is_caller_uid_on_local_socket(which) {
        let ns = Namespace::new();
        let _d = Rpcbind::start(&ns, which, &[]);
        let out = client(&ns, &[UNIX, "set", "200000", "1", "udp", "0.0.0.0.4.1", "claimed"]);
        assert_reply(&out, "true", "root SET over the local socket");
        let out = client_as_nobody(&ns, &[UNIX, "set", "200001", "1", "tcp", "0.0.0.0.4.2", "claimed"]);
        assert_reply(&out, "true", "nobody SET over the local socket");
        // The owner string in the arguments is ignored: the peer's uid counts.
        assert_eq!(short_row(&ns, "200000").as_deref(), Some("200000 1 udp - superuser"));
        assert_eq!(short_row(&ns, "200001").as_deref(), Some("200001 1 tcp - 65534"));
    }

    fn nobody_cannot_unset_roots_registration(which) {
        let ns = Namespace::new();
        let _d = Rpcbind::start(&ns, which, &[]);
        assert_reply(&client(&ns, &[UNIX, "set", "200000", "1", "udp", "0.0.0.0.4.1", ""]), "true", "root SET");
        let out = ns.run_as_nobody("rpcinfo", &["-d", "200000", "1"], T);
        assert_eq!(out.code(), 1, "{out:?}");
        assert_eq!(out.stderr, "rpcinfo: Could not delete registration for prog 200000 version 1\n");
        assert_eq!(short_row(&ns, "200000").as_deref(), Some("200000 1 udp - superuser"));
        // Nor over the wire with its own client.
        let out = client_as_nobody(&ns, &[UNIX, "unset", "200000", "1", "udp"]);
        assert_reply(&out, "false", "nobody UNSET of root's");
        assert!(short_row(&ns, "200000").is_some());
    }

    fn nobody_unsets_own_and_root_unsets_any(which) {
        let ns = Namespace::new();
        let _d = Rpcbind::start(&ns, which, &[]);
        for prog in ["200001", "200002"] {
            let out = client_as_nobody(&ns, &[UNIX, "set", prog, "1", "udp", "0.0.0.0.4.1", ""]);
            assert_reply(&out, "true", "nobody SET");
        }
        let out = ns.run_as_nobody("rpcinfo", &["-d", "200001", "1"], T);
        assert!(out.success() && out.stderr.is_empty(), "{out:?}");
        assert_eq!(short_row(&ns, "200001"), None);
        expect_rpcinfo(&ns, which, &["-d", "200002", "1"], 0, "", "");
        assert_eq!(short_row(&ns, "200002"), None);
    }

    fn unset_one_netid_with_dash_t(which) {
        let ns = Namespace::new();
        let _d = Rpcbind::start(&ns, which, &[]);
        for netid in ["udp", "tcp"] {
            let out = client(&ns, &[UNIX, "set", "200030", "1", netid, "0.0.0.0.4.1", ""]);
            assert_reply(&out, "true", "SET");
        }
        expect_rpcinfo(&ns, which, &["-d", "-T", "udp", "200030", "1"], 0, "", "");
        assert_eq!(short_row(&ns, "200030").as_deref(), Some("200030 1 tcp - superuser"));
        let out = ns.run_as_nobody("rpcinfo", &["-d", "-T", "tcp", "200030", "1"], T);
        assert_eq!(out.code(), 1, "{out:?}");
        assert_eq!(short_row(&ns, "200030").as_deref(), Some("200030 1 tcp - superuser"));
    }

    fn set_over_loopback_transports(which) {
        let ns = Namespace::new();
        let _d = Rpcbind::start(&ns, which, &[]);
        // Unprivileged source port on loopback: accepted, owner "unknown".
        assert_reply(&client(&ns, &["udp:127.0.0.1:111", "set", "200010", "1", "udp", "0.0.0.0.4.1", ""]), "true", "udp SET");
        assert_reply(&client(&ns, &["tcp:127.0.0.1:111", "set", "200011", "1", "tcp", "0.0.0.0.4.1", ""]), "true", "tcp SET");
        assert_reply(&client(&ns, &["udp:[::1]:111", "set", "200012", "1", "udp6", "::.4.1", ""]), "true", "udp6 SET");
        assert_reply(&client(&ns, &["tcp:[::1]:111", "set", "200013", "1", "tcp6", "::.4.1", ""]), "true", "tcp6 SET");
        // A reserved source port on loopback counts as the superuser.
        assert_reply(&client(&ns, &["--bind", "127.0.0.1:710", "udp:127.0.0.1:111", "set", "200014", "1", "udp", "0.0.0.0.4.1", ""]), "true", "udp SET from port 710");
        assert_reply(&client(&ns, &["--bind", "[::1]:711", "udp:[::1]:111", "set", "200015", "1", "udp6", "::.4.1", ""]), "true", "udp6 SET from port 711");
        assert_reply(&client(&ns, &["--bind", "127.0.0.1:712", "udp:127.0.0.1:111", "pmap-set", "200016", "1", "17", "1234"]), "true", "PMAP SET from port 712");
        assert_reply(&client(&ns, &["udp:127.0.0.1:111", "pmap-set", "200017", "1", "6", "1234"]), "true", "PMAP SET");
        let rows: Vec<Option<String>> = (200010..=200017).map(|p| short_row(&ns, &p.to_string())).collect();
        let want = [
            "200010 1 udp - unknown",
            "200011 1 tcp - unknown",
            "200012 1 udp6 - unknown",
            "200013 1 tcp6 - unknown",
            "200014 1 udp - superuser",
            "200015 1 udp6 - superuser",
            "200016 1 udp - superuser",
            "200017 1 tcp - unknown",
        ];
        let want: Vec<Option<String>> = want.iter().map(|s| Some(s.to_string())).collect();
        assert_eq!(rows, want);
    }

    fn set_from_non_local_address_refused(which) {
        let ns = Namespace::new();
        ns.add_address("192.0.2.1/24");
        let _d = Rpcbind::start(&ns, which, &[]);
        // MSG_DENIED / AUTH_ERROR (reject_stat 1), whatever the source port.
        for args in [
            &["udp:192.0.2.1:111", "set", "200020", "1", "udp", "0.0.0.0.4.1", ""][..],
            &["--bind", "192.0.2.1:713", "udp:192.0.2.1:111", "set", "200020", "1", "udp", "0.0.0.0.4.1", ""],
            &["tcp:192.0.2.1:111", "set", "200020", "1", "udp", "0.0.0.0.4.1", ""],
            &["--bind", "192.0.2.1:714", "tcp:192.0.2.1:111", "set", "200020", "1", "udp", "0.0.0.0.4.1", ""],
            &["udp:192.0.2.1:111", "pmap-set", "200020", "1", "17", "1234"],
        ] {
            let out = client(&ns, args);
            assert_eq!((out.code(), out.stdout.trim()), (3, "denied 1"), "{args:?}: {out:?}");
        }
        assert_eq!(short_row(&ns, "200020"), None);
        // UNSET from there is refused the same way, and leaves the entry.
        assert_reply(&client(&ns, &[UNIX, "set", "200021", "1", "udp", "0.0.0.0.4.1", ""]), "true", "local SET");
        let out = client(&ns, &["udp:192.0.2.1:111", "unset", "200021", "1", "udp"]);
        assert_eq!((out.code(), out.stdout.trim()), (3, "denied 1"), "{out:?}");
        assert!(short_row(&ns, "200021").is_some());
    }

    fn insecure_mode_accepts_remote_set(which) {
        let ns = Namespace::new();
        ns.add_address("192.0.2.1/24");
        let _d = Rpcbind::start(&ns, which, &["-i"]);
        let udp = ["udp:192.0.2.1:111", "set", "200040", "1", "udp", "0.0.0.0.4.1", ""];
        assert_reply(&client(&ns, &udp), "true", "-i: udp SET from 192.0.2.1");
        let tcp = ["--bind", "192.0.2.1:713", "tcp:192.0.2.1:111", "set", "200041", "1", "udp", "0.0.0.0.4.1", ""];
        assert_reply(&client(&ns, &tcp), "true", "-i: tcp SET from 192.0.2.1:713");
        let pmap = ["udp:192.0.2.1:111", "pmap-set", "200042", "1", "17", "99"];
        assert_reply(&client(&ns, &pmap), "true", "-i: PMAP SET from 192.0.2.1");
        for prog in ["200040", "200041", "200042"] {
            assert_eq!(short_row(&ns, prog), Some(format!("{prog} 1 udp - unknown")));
        }
        let unset = ["udp:192.0.2.1:111", "unset", "200040", "1", "udp"];
        assert_reply(&client(&ns, &unset), "true", "-i: UNSET from 192.0.2.1");
        assert_eq!(short_row(&ns, "200040"), None);
    }
}
