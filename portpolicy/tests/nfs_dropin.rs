//! Reservations written as nfs.conf ports (`nfs_conf`, `hold = false`):
//! the config rules, `apply::plan`'s drop-in, the allocator leaving them
//! unheld, and `load::sources` not reading the drop-in back as the
//! admin's pinning. Pure except the last test (files in a temp dir).

use portpolicy::alloc::AllocPolicy;
use portpolicy::apply::{self, Current, Target};
use portpolicy::config::Config;
use portpolicy::load::{self, Kernel, Paths};
use portpolicy::nfsconf::DROPIN;
use portpolicy::policy::{Policy, SourceKind, Sources};
use portpolicy::portset::PortSet;
use portpolicy::Protocol;
use std::path::PathBuf;

const NFS: &str = r#"
[[reservation]]
name = "statd"
port = 4042
protocol = "both"
nfs_conf = "statd.port"
[[reservation]]
name = "statd-outgoing"
port = 4043
protocol = "udp"
nfs_conf = "statd.outgoing-port"
[[reservation]]
name = "lockd"
port = 4045
nfs_conf = "lockd.port"
[[reservation]]
name = "cups"
port = 631
"#;

fn config(text: &str) -> Result<Config, String> {
    Config::from_files(&[("/etc/portpolicy.toml", text)]).map_err(|e| e.to_string())
}

fn current() -> Current {
    Current {
        kernel: Kernel {
            reserved_ports: PortSet::parse_list("").ok(),
            ..Kernel::default()
        },
        ..Current::default()
    }
}

fn nfs_change(plan: &apply::Plan) -> Option<&apply::Change> {
    plan.changes
        .iter()
        .find(|c| c.target == Target::File(PathBuf::from(DROPIN)))
}

#[test]
fn nfs_conf_reservations_are_not_held_others_are() {
    let c = config(NFS).unwrap();
    let holds: Vec<_> = c
        .reservations
        .iter()
        .map(|r| (r.spec.name.as_str(), r.spec.hold))
        .collect();
    assert_eq!(
        holds,
        [
            ("statd", false),
            ("statd-outgoing", false),
            ("lockd", false),
            ("cups", true)
        ]
    );
    let a = AllocPolicy::compute(&c, &Sources::default()).unwrap();
    let held: Vec<_> = a.reservations.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        held,
        ["cups"],
        "the service holds only what no daemon binds itself"
    );
    let high = config(&format!(
        "mode = \"high\"\nhigh_range = \"4000-4099\"\n{NFS}"
    ))
    .unwrap();
    let p = Policy::compute(&high, &Sources::default()).unwrap();
    let pooled = |proto| [4042, 4043, 4045].map(|port| p.pool(proto).contains(port));
    assert_eq!(pooled(Protocol::Tcp), [false, true, false], "per protocol");
    assert_eq!(pooled(Protocol::Udp), [false, false, true], "per protocol");
    let plain = config("[[reservation]]\nname=\"x\"\nport=700\nhold=false\n").unwrap();
    let a = AllocPolicy::compute(&plain, &Sources::default()).unwrap();
    assert!(a.reservations.is_empty(), "hold = false alone is not held");
}

#[test]
fn bad_nfs_conf_reservations_are_refused_with_the_line() {
    let cases = [
        (
            "nfs_conf=\"nfsd.port\"\nprotocol=\"both\"",
            "is not one of statd.port",
        ),
        ("nfs_conf=\"statd.port\"", "set protocol = \"both\""),
        ("nfs_conf=\"lockd.udp-port\"", "set protocol = \"udp\""),
        (
            "nfs_conf=\"lockd.port\"\nhold=true",
            "hold = true with nfs_conf",
        ),
    ];
    for (extra, want) in cases {
        let text = format!("\n[[reservation]]\nname=\"n\"\nport=4000\n{extra}\n");
        let err = config(&text).unwrap_err();
        assert!(err.contains(want), "{extra}: {err}");
        assert!(err.starts_with("/etc/portpolicy.toml:2:"), "{err}");
    }
    let twice = "[[reservation]]\nname=\"a\"\nport=4000\nnfs_conf=\"lockd.port\"\n\
                 [[reservation]]\nname=\"b\"\nport=4001\nnfs_conf=\"LOCKD.port\"\n";
    assert!(config(twice).unwrap_err().contains("given twice"));
}

#[test]
fn apply_writes_the_dropin_once_then_nothing() {
    let c = config(NFS).unwrap();
    let p = Policy::compute(&c, &Sources::default()).unwrap();
    let mut cur = current();
    let plan = apply::plan(&c, &p, &cur);
    let change = nfs_change(&plan).expect("the drop-in is written");
    assert_eq!(change.old, "");
    let body: Vec<&str> = change.new.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        body,
        [
            "[statd]",
            "port = 4042\t# reservation statd",
            "outgoing-port = 4043\t# reservation statd-outgoing",
            "[lockd]",
            "port = 4045\t# reservation lockd",
        ]
    );
    assert!(change.diff().contains("+port = 4042"), "{}", change.diff());
    let sysctl = plan
        .changes
        .iter()
        .find(|c| matches!(&c.target, Target::Sysctl(n) if n.ends_with("reserved_ports")));
    assert_eq!(
        sysctl.map(|c| c.new.as_str()),
        Some("631,4042-4043,4045"),
        "unheld reservations are kept from the ephemeral range too"
    );
    cur.nfs_dropin = Some(change.new.clone());
    assert!(
        nfs_change(&apply::plan(&c, &p, &cur)).is_none(),
        "second run: no change"
    );

    // No nfs_conf reservation left: the drop-in is emptied, not left stale.
    let c2 = config("[[reservation]]\nname=\"cups\"\nport=631\n").unwrap();
    let p2 = Policy::compute(&c2, &Sources::default()).unwrap();
    let emptied = apply::plan(&c2, &p2, &cur);
    let change = nfs_change(&emptied).expect("stale drop-in rewritten");
    assert!(
        change.new.lines().all(|l| l.starts_with('#')),
        "{}",
        change.new
    );
    assert!(nfs_change(&apply::plan(&c2, &p2, &current())).is_none());
}

#[test]
fn own_dropin_is_not_the_admins_pinning() {
    let root = std::env::temp_dir().join(format!("pp-nfs-{}", std::process::id()));
    let dir = root.join("etc/nfs.conf.d");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("portpolicy.conf"), "[statd]\nport = 4042\n").unwrap();
    std::fs::write(dir.join("admin.conf"), "[mountd]\nport = 20048\n").unwrap();
    let paths = Paths {
        root: root.clone(),
        proc_sys: root.join("no-proc-sys"),
        config: None,
    };
    let sources = load::sources(&paths, &Kernel::default());
    std::fs::remove_dir_all(&root).unwrap();
    let sources = sources.unwrap();
    let got: Vec<_> = sources
        .nfs_ports
        .iter()
        .map(|n| (n.key.as_str(), n.port))
        .collect();
    assert_eq!(got, [("mountd.port", 20048)]);
    let high = config("mode = \"high\"\nhigh_range = \"4000-20100\"\n").unwrap();
    let p = Policy::compute(&high, &sources).unwrap();
    let kinds: Vec<_> = p
        .exclusions
        .iter()
        .filter(|e| e.ports.first <= 20048 && 20048 <= e.ports.last)
        .map(|e| e.source)
        .collect();
    assert_eq!(kinds, [SourceKind::NfsConf]);
    assert!(!p.pool(Protocol::Tcp).contains(20048));
    assert!(
        p.pool(Protocol::Tcp).contains(4042),
        "the drop-in alone (no reservation) excludes nothing"
    );
}
