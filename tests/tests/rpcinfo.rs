//! `rpcinfo` (Debian's, from the rpcbind package) in every mode against
//! each daemon. The expected texts are what rpcinfo prints against
//! Debian's C rpcbind 1.2.6 on this system (observed in a namespace the
//! same way these tests run); every case runs against both daemons.

use e2e::services::{expect_rpcinfo, rpcinfo, statd_uid, Statd};
use e2e::{cases, Namespace, Rpcbind};

/// The daemon's own registrations, in the order the C daemon makes them.
const OWN_DUMP: &str = "   program version netid     address                service    owner
    100000    4    tcp6      ::.0.111               portmapper superuser
    100000    3    tcp6      ::.0.111               portmapper superuser
    100000    4    udp6      ::.0.111               portmapper superuser
    100000    3    udp6      ::.0.111               portmapper superuser
    100000    4    tcp       0.0.0.0.0.111          portmapper superuser
    100000    3    tcp       0.0.0.0.0.111          portmapper superuser
    100000    2    tcp       0.0.0.0.0.111          portmapper superuser
    100000    4    udp       0.0.0.0.0.111          portmapper superuser
    100000    3    udp       0.0.0.0.0.111          portmapper superuser
    100000    2    udp       0.0.0.0.0.111          portmapper superuser
    100000    4    local     /run/rpcbind.sock      portmapper superuser
    100000    3    local     /run/rpcbind.sock      portmapper superuser
";

const OWN_SHORT: &str = "   program version(s) netid(s)                         service     owner
    100000  2,3,4     local,udp,tcp,udp6,tcp6          portmapper  superuser
";

const OWN_PMAP: &str = "   program vers proto   port  service
    100000    4   tcp    111  portmapper
    100000    3   tcp    111  portmapper
    100000    2   tcp    111  portmapper
    100000    4   udp    111  portmapper
    100000    3   udp    111  portmapper
    100000    2   udp    111  portmapper
";

const STATD_PMAP: &str = "    100024    1   udp  32765  status
    100024    1   tcp  32765  status
";

const READY_2_3_4: &str = "program 100000 version 2 ready and waiting
program 100000 version 3 ready and waiting
program 100000 version 4 ready and waiting
";

const STATD_READY: &str = "program 100024 version 1 ready and waiting\n";

const NOT_REGISTERED: &str = "rpcinfo: RPC: Program not registered\n";

const NO_REMOTE: &str = "No remote programs registered.\n";

fn statd_dump() -> String {
    let uid = statd_uid();
    let row = |netid: &str, addr: &str| {
        format!("    100024    1    {netid:<9} {addr:<22} status     {uid}\n")
    };
    format!(
        "{OWN_DUMP}{}{}{}{}",
        row("udp", "0.0.0.0.127.253"),
        row("tcp", "0.0.0.0.127.253"),
        row("udp6", "::.127.253"),
        row("tcp6", "::.127.253")
    )
}

fn statd_short() -> String {
    format!(
        "{OWN_SHORT}    100024  1         tcp6,udp6,tcp,udp                status      {}\n",
        statd_uid()
    )
}

cases! {
    fn dump_default_local_and_host(which) {
        let ns = Namespace::new();
        let _d = Rpcbind::start(&ns, which, &[]);
        expect_rpcinfo(&ns, which, &[], 0, OWN_DUMP, "");
        expect_rpcinfo(&ns, which, &["127.0.0.1"], 0, OWN_DUMP, "");
        expect_rpcinfo(&ns, which, &["::1"], 0, OWN_DUMP, "");
    }

    fn dump_and_short_over_each_netid(which) {
        let ns = Namespace::new();
        let _d = Rpcbind::start(&ns, which, &[]);
        for (netid, host) in [("udp", "127.0.0.1"), ("tcp", "127.0.0.1"), ("udp6", "::1"), ("tcp6", "::1")] {
            expect_rpcinfo(&ns, which, &["-T", netid, host], 0, OWN_DUMP, "");
            expect_rpcinfo(&ns, which, &["-T", netid, "-s", host], 0, OWN_SHORT, "");
            expect_rpcinfo(&ns, which, &["-T", netid, "-p", host], 0, OWN_PMAP, "");
        }
    }

    fn dump_short_local_and_host(which) {
        let ns = Namespace::new();
        let _d = Rpcbind::start(&ns, which, &[]);
        expect_rpcinfo(&ns, which, &["-s"], 0, OWN_SHORT, "");
        expect_rpcinfo(&ns, which, &["-s", "127.0.0.1"], 0, OWN_SHORT, "");
    }

    fn pmap_dump_local_and_host(which) {
        let ns = Namespace::new();
        let _d = Rpcbind::start(&ns, which, &[]);
        expect_rpcinfo(&ns, which, &["-p"], 0, OWN_PMAP, "");
        expect_rpcinfo(&ns, which, &["-p", "127.0.0.1"], 0, OWN_PMAP, "");
    }

    fn ping_rpcbind_over_each_netid(which) {
        let ns = Namespace::new();
        let _d = Rpcbind::start(&ns, which, &[]);
        for (netid, host) in [("udp", "127.0.0.1"), ("tcp", "127.0.0.1"), ("udp6", "::1"), ("tcp6", "::1")] {
            expect_rpcinfo(&ns, which, &["-T", netid, host, "100000"], 0, READY_2_3_4, "");
            for v in ["2", "3", "4"] {
                let want = format!("program 100000 version {v} ready and waiting\n");
                expect_rpcinfo(&ns, which, &["-T", netid, host, "100000", v], 0, &want, "");
            }
        }
        expect_rpcinfo(&ns, which, &["-t", "127.0.0.1", "100000"], 0, READY_2_3_4, "");
        expect_rpcinfo(&ns, which, &["-u", "127.0.0.1", "100000"], 0, READY_2_3_4, "");
    }

    fn getstat_counts_calls(which) {
        let ns = Namespace::new();
        let _d = Rpcbind::start(&ns, which, &[]);
        expect_rpcinfo(&ns, which, &["-p"], 0, OWN_PMAP, "");
        expect_rpcinfo(&ns, which, &["-u", "127.0.0.1", "100024", "1"], 1, "",
            "127.0.0.1: RPC: Program not registered\n");
        let want = "PORTMAP (version 2) statistics
NULL    SET     UNSET   GETPORT DUMP    CALLIT  \n0       0/0     0/0     0/0     1       0/0     \n
RPCBIND (version 3) statistics
NULL    SET     UNSET   GETADDR DUMP    CALLIT  TIME    U2T     T2U     \n0       0/0     0/0     0/0     0       0/0     0       0       0       \n
RPCBIND (version 4) statistics
NULL    SET     UNSET   GETADDR DUMP    CALLIT  TIME    U2T     T2U     \n0       0/0     0/0     0/1     0       0/0     0       0       0       \nVERADDR INDRECT GETLIST GETSTAT \n0       0       0       1       \n
RPCB_GETADDR (version 4) call statistics
prog\t\tvers\tnetid\t  success\tfailure
status          1\tudp\t  0           \t1
";
        expect_rpcinfo(&ns, which, &["-m"], 0, want, "");
    }

    fn unknown_programs_and_versions(which) {
        let ns = Namespace::new();
        let _d = Rpcbind::start(&ns, which, &[]);
        for netid in ["udp", "tcp"] {
            expect_rpcinfo(&ns, which, &["-T", netid, "127.0.0.1", "100003"], 1, "", NOT_REGISTERED);
            expect_rpcinfo(&ns, which, &["-T", netid, "127.0.0.1", "100003", "2"], 1, "", NOT_REGISTERED);
        }
        for flag in ["-t", "-u"] {
            expect_rpcinfo(&ns, which, &[flag, "127.0.0.1", "100003"], 1, "",
                "127.0.0.1: RPC: Program not registered\n");
            expect_rpcinfo(&ns, which, &[flag, "127.0.0.1", "100000", "7"], 1,
                "program 100000 version 7 is not available\n",
                "rpcinfo: RPC: Program/version mismatch; low version = 2, high version = 4\n");
        }
        expect_rpcinfo(&ns, which, &["-l", "127.0.0.1", "100003", "1"], 0, NO_REMOTE, "");
        expect_rpcinfo(&ns, which, &["-l", "127.0.0.1", "100000", "7"], 0, NO_REMOTE, "");
        // Unsetting what is not registered: the C daemon answers TRUE.
        expect_rpcinfo(&ns, which, &["-d", "100003", "1"], 0, "", "");
    }

    fn lookup_list(which) {
        let ns = Namespace::new();
        let _d = Rpcbind::start(&ns, which, &[]);
        let head = "   program vers  tp_family/name/class    address\t\t  service\n";
        let v4 = format!("{head}    100000  2    inet/tcp/cots_ord       127.0.0.1.0.111          portmapper   \n    100000  2    inet/udp/clts           127.0.0.1.0.111          portmapper   \n");
        expect_rpcinfo(&ns, which, &["-l", "127.0.0.1", "100000", "2"], 0, &v4, "");
        let v6 = format!("{head}    100000  4    inet6/tcp/cots_ord      ::1.0.111                portmapper   \n    100000  4    inet6/udp/clts          ::1.0.111                portmapper   \n");
        expect_rpcinfo(&ns, which, &["-l", "::1", "100000", "4"], 0, &v6, "");
    }

    fn registered_service_dump_and_ping(which) {
        let ns = Namespace::new();
        let _d = Rpcbind::start(&ns, which, &[]);
        let _statd = Statd::start(&ns);
        expect_rpcinfo(&ns, which, &[], 0, &statd_dump(), "");
        expect_rpcinfo(&ns, which, &["-s"], 0, &statd_short(), "");
        expect_rpcinfo(&ns, which, &["-p"], 0, &format!("{OWN_PMAP}{STATD_PMAP}"), "");
        expect_rpcinfo(&ns, which, &["-t", "127.0.0.1", "100024"], 0, STATD_READY, "");
        expect_rpcinfo(&ns, which, &["-u", "127.0.0.1", "100024", "1"], 0, STATD_READY, "");
        expect_rpcinfo(&ns, which, &["-t", "127.0.0.1", "status"], 0, STATD_READY, "");
        for (netid, host) in [("udp", "127.0.0.1"), ("tcp", "127.0.0.1"), ("udp6", "::1"), ("tcp6", "::1")] {
            expect_rpcinfo(&ns, which, &["-T", netid, host, "100024"], 0, STATD_READY, "");
            expect_rpcinfo(&ns, which, &["-T", netid, host, "100024", "1"], 0, STATD_READY, "");
        }
        expect_rpcinfo(&ns, which, &["-T", "tcp", "127.0.0.1", "100024", "3"], 1,
            "program 100024 version 3 is not available\n",
            "rpcinfo: RPC: Program/version mismatch; low version = 1, high version = 1\n");
        expect_rpcinfo(&ns, which, &["-u", "127.0.0.1", "100024", "7"], 1,
            "program 100024 version 7 is not available\n",
            "rpcinfo: RPC: Program/version mismatch; low version = 1, high version = 1\n");
    }

    fn registered_service_lookup_addr_and_port(which) {
        let ns = Namespace::new();
        let _d = Rpcbind::start(&ns, which, &[]);
        let _statd = Statd::start(&ns);
        let head = "   program vers  tp_family/name/class    address\t\t  service\n";
        let l = format!("{head}    100024  1    inet/udp/clts           127.0.0.1.127.253        status       \n    100024  1    inet/tcp/cots_ord       127.0.0.1.127.253        status       \n");
        expect_rpcinfo(&ns, which, &["-l", "127.0.0.1", "100024", "1"], 0, &l, "");
        expect_rpcinfo(&ns, which, &["-l", "127.0.0.1", "100024", "2"], 0, NO_REMOTE, "");
        expect_rpcinfo(&ns, which, &["-a", "127.0.0.1.127.253", "-T", "udp", "100024", "1"], 0, STATD_READY, "");
        expect_rpcinfo(&ns, which, &["-a", "127.0.0.1.127.253", "-T", "tcp", "100024"], 0, STATD_READY, "");
        expect_rpcinfo(&ns, which, &["-a", "::1.0.111", "-T", "tcp6", "100000", "3"], 0,
            "program 100000 version 3 ready and waiting\n", "");
        expect_rpcinfo(&ns, which, &["-n", "32765", "-t", "127.0.0.1", "100024", "1"], 0, STATD_READY, "");
        expect_rpcinfo(&ns, which, &["-n", "32765", "-u", "127.0.0.1", "100024"], 0, STATD_READY, "");
    }

    fn unset_as_root(which) {
        let ns = Namespace::new();
        let _d = Rpcbind::start(&ns, which, &[]);
        let _statd = Statd::start(&ns);
        expect_rpcinfo(&ns, which, &["-d", "100024", "1"], 0, "", "");
        expect_rpcinfo(&ns, which, &["-s"], 0, OWN_SHORT, "");
        expect_rpcinfo(&ns, which, &["-p"], 0, OWN_PMAP, "");
        let out = rpcinfo(&ns, &["-t", "127.0.0.1", "100024"]);
        assert_eq!(out.code(), 1, "{} after unset: {out:?}", which.name());
    }
}
