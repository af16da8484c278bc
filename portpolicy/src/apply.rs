//! `portpolicy apply`: make the kernel and libc agree with the policy.
//!
//! [`plan`] is pure: the policy, the current kernel settings and file
//! texts in, the list of changes out. [`execute`] does the I/O: sysctls
//! are written in place (procfs has no rename), files atomically (temp
//! file, fsync, rename, fsync of the directory).
//!
//! What is managed:
//! - `net.ipv4.ip_local_reserved_ports`: the admin's entries (what is
//!   there minus what an earlier apply added) plus the reservations (and,
//!   in high mode, the pool), so the kernel never hands them out as
//!   ephemeral ports. What apply adds is recorded in
//!   /var/lib/portpolicy/applied.json and never read back as the admin's.
//! - `sunrpc.min_resvport`/`max_resvport` (the kernel NFS client's source
//!   ports), only where /proc/sys/sunrpc exists: the longest run of
//!   privileged ports that is in the pool for both tcp and udp.
//! - a managed block in /etc/bindresvport.blacklist: every port in
//!   512-1023 that the policy excludes and the admin's lines do not list.
//! - a sysctl.d drop-in holding the same sysctl values across reboots.
//! - the nfs.conf drop-in (`nfsconf::DROPIN`): `[statd] port`, ... from
//!   reservations with an `nfs_conf` key, for NFS daemons that bind their
//!   ports themselves; written only when some reservation has one, or to
//!   empty it once none has.

use crate::blacklist::{self, Blacklist};
use crate::config::{Config, Mode};
use crate::load::Kernel;
use crate::policy::{Applied, Policy};
use crate::portset::{PortRange, PortSet};
use crate::Protocol;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Where a change goes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// A sysctl, by dotted name.
    Sysctl(String),
    /// A file, by its host path (before any test root is applied).
    File(PathBuf),
}

/// One change: the old and new text.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    /// What is changed.
    pub target: Target,
    /// Its current text ("" if absent).
    pub old: String,
    /// The text apply writes.
    pub new: String,
}

impl Change {
    /// The change as a unified-style diff.
    pub fn diff(&self) -> String {
        let label = match &self.target {
            Target::Sysctl(n) => format!("sysctl {n}"),
            Target::File(p) => p.display().to_string(),
        };
        let (old, new) = match &self.target {
            Target::Sysctl(_) => (format!("{}\n", self.old), format!("{}\n", self.new)),
            Target::File(_) => (self.old.clone(), self.new.clone()),
        };
        crate::diff::unified(&label, &label, &old, &new)
    }
}

/// What apply would do.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Plan {
    /// Changes, in the order they are made.
    pub changes: Vec<Change>,
    /// Things skipped, and why.
    pub notes: Vec<String>,
}

/// The current state `plan` compares against.
#[derive(Debug, Clone, Default)]
pub struct Current {
    /// Kernel settings.
    pub kernel: Kernel,
    /// The earlier apply's record.
    pub applied: Applied,
    /// Text of the record file, if present.
    pub applied_text: Option<String>,
    /// /etc/bindresvport.blacklist, if present.
    pub blacklist: Option<String>,
    /// The sysctl.d drop-in, if present.
    pub dropin: Option<String>,
    /// The nfs.conf drop-in, if present.
    pub nfs_dropin: Option<String>,
    /// Other sysctl.d files (host path, text), to warn about ones that
    /// also set a sysctl apply manages.
    pub other_sysctl_files: Vec<(PathBuf, String)>,
}

/// Where the record lives (host path).
pub const APPLIED_RECORD: &str = "/var/lib/portpolicy/applied.json";
const BLACKLIST: &str = "/etc/bindresvport.blacklist";

/// Work out the changes. Pure.
pub fn plan(config: &Config, policy: &Policy, current: &Current) -> Plan {
    let mut plan = Plan::default();
    let mut sysctl_lines = Vec::new();
    let mut record = current.applied.clone();
    if config.apply.ip_local_reserved_ports {
        reserved_ports(policy, current, &mut plan, &mut sysctl_lines, &mut record);
    }
    if config.apply.sunrpc {
        sunrpc(policy, current, &mut plan, &mut sysctl_lines);
    }
    if config.apply.bindresvport_blacklist {
        blacklist_block(policy, current, &mut plan);
    }
    warn_other_setters(config, current, &sysctl_lines, &mut plan);
    nfs_dropin(policy, current, &mut plan);
    let dropin = dropin_text(&sysctl_lines);
    if current.dropin.as_deref() != Some(dropin.as_str()) {
        plan.changes.push(Change {
            target: Target::File(config.apply.sysctl_dropin.clone()),
            old: current.dropin.clone().unwrap_or_default(),
            new: dropin,
        });
    }
    let record_text = serde_json::to_string_pretty(&record).unwrap_or_default() + "\n";
    let record_changed = record != current.applied;
    if record_changed
        || (current.applied_text.is_none() && !record.ip_local_reserved_ports.is_empty())
    {
        // First: if a later write fails, the record already names what
        // this run adds, so a retry never mistakes our ports for the admin's.
        plan.changes.insert(
            0,
            Change {
                target: Target::File(PathBuf::from(APPLIED_RECORD)),
                old: current.applied_text.clone().unwrap_or_default(),
                new: record_text,
            },
        );
    }
    plan
}

fn reserved_ports(
    policy: &Policy,
    current: &Current,
    plan: &mut Plan,
    lines: &mut Vec<String>,
    record: &mut Applied,
) {
    const NAME: &str = "net.ipv4.ip_local_reserved_ports";
    let Some(now) = &current.kernel.reserved_ports else {
        plan.notes
            .push(format!("{NAME} does not exist here: skipped"));
        return;
    };
    let admin = now.difference(&current.applied.ip_local_reserved_ports);
    let mut ours = PortSet::new();
    for r in &policy.reservations {
        ours.insert(r.port);
    }
    if policy.mode == Mode::High {
        ours = ours.union(&policy.pool_tcp).union(&policy.pool_udp);
    }
    let wanted = admin.union(&ours);
    record.ip_local_reserved_ports = ours.difference(&admin);
    if !wanted.is_empty() {
        lines.push(format!("{NAME} = {wanted}"));
    }
    if &wanted != now {
        plan.changes.push(Change {
            target: Target::Sysctl(NAME.into()),
            old: now.to_string(),
            new: wanted.to_string(),
        });
    }
}

fn sunrpc(policy: &Policy, current: &Current, plan: &mut Plan, lines: &mut Vec<String>) {
    let Some((min, max)) = current.kernel.sunrpc else {
        plan.notes.push(
            "/proc/sys/sunrpc does not exist (sunrpc not loaded or not built into this kernel): \
             sunrpc.min_resvport/max_resvport not set"
                .into(),
        );
        return;
    };
    let both = policy.pool_tcp.intersection(&policy.pool_udp);
    let privileged = both.intersection(&PortSet::from_ranges([PortRange::new(1, 1023)]));
    let Some(run) = privileged
        .ranges()
        .into_iter()
        .max_by_key(|r| (r.len(), r.last))
    else {
        plan.notes
            .push("no privileged pool ports: sunrpc range left alone".into());
        return;
    };
    lines.push(format!("sunrpc.min_resvport = {}", run.first));
    lines.push(format!("sunrpc.max_resvport = {}", run.last));
    for (name, old, new) in [
        ("sunrpc.min_resvport", min, run.first),
        ("sunrpc.max_resvport", max, run.last),
    ] {
        if old != new {
            plan.changes.push(Change {
                target: Target::Sysctl(name.into()),
                old: old.to_string(),
                new: new.to_string(),
            });
        }
    }
}

fn blacklist_block(policy: &Policy, current: &Current, plan: &mut Plan) {
    let text = current.blacklist.clone().unwrap_or_default();
    let admin = Blacklist::parse(&text)
        .map(|b| b.admin_ports())
        .unwrap_or_default();
    let privileged = PortSet::from_ranges([PortRange::new(512, 1023)]);
    let excluded = policy
        .excluded(Protocol::Tcp)
        .union(&policy.excluded(Protocol::Udp))
        .intersection(&privileged)
        .difference(&admin);
    let new = blacklist::with_managed_block(&text, &excluded);
    if new != text {
        plan.changes.push(Change {
            target: Target::File(PathBuf::from(BLACKLIST)),
            old: text,
            new,
        });
    }
}

/// sysctl(8) applies sysctl.d files in name order and the last setting
/// wins, so another file setting the same key can undo the drop-in at boot.
fn warn_other_setters(config: &Config, current: &Current, lines: &[String], plan: &mut Plan) {
    let ours = config.apply.sysctl_dropin.file_name();
    for (path, text) in &current.other_sysctl_files {
        if path.file_name() == ours {
            continue;
        }
        for line in lines {
            let key = line.split('=').next().unwrap_or("").trim();
            let sets = text.lines().any(|l| {
                let l = l.trim_start_matches('-').trim();
                !l.starts_with('#') && l.split('=').next().is_some_and(|k| k.trim() == key)
            });
            if sets {
                plan.notes.push(format!(
                    "{} also sets {key}: whichever file sorts last wins at boot",
                    path.display()
                ));
            }
        }
    }
}

fn nfs_dropin(policy: &Policy, current: &Current, plan: &mut Plan) {
    let entries: Vec<(&str, u16, &str)> = policy
        .reservations
        .iter()
        .filter_map(|r| Some((r.nfs_conf.as_deref()?, r.port, r.name.as_str())))
        .collect();
    if entries.is_empty() && current.nfs_dropin.is_none() {
        return;
    }
    let new = crate::nfsconf::dropin(&entries);
    if current.nfs_dropin.as_deref() != Some(new.as_str()) {
        plan.changes.push(Change {
            target: Target::File(PathBuf::from(crate::nfsconf::DROPIN)),
            old: current.nfs_dropin.clone().unwrap_or_default(),
            new,
        });
    }
}

fn dropin_text(lines: &[String]) -> String {
    let mut out = String::from(
        "# Written by `portpolicy apply`: edit /etc/portpolicy.toml and run it again.\n",
    );
    for l in lines {
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// Make the changes: `file_path` maps a host path to where it is written
/// (a test root), `sysctl_path` a sysctl name to its /proc/sys file.
pub fn execute(
    plan: &Plan,
    file_path: impl Fn(&Path) -> PathBuf,
    sysctl_path: impl Fn(&str) -> PathBuf,
) -> io::Result<()> {
    for change in &plan.changes {
        match &change.target {
            Target::Sysctl(name) => {
                let path = sysctl_path(name);
                std::fs::write(&path, format!("{}\n", change.new))
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            }
            Target::File(host) => {
                let path = file_path(host);
                write_atomic(&path, change.new.as_bytes())
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            }
        }
    }
    Ok(())
}

/// Write a file so readers see the old or the new content, never a mix:
/// temp file in the same directory, fsync, rename, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.portpolicy-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        if let Ok(meta) = std::fs::metadata(path) {
            f.set_permissions(meta.permissions())?;
        }
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Sources;
    use crate::services::Services;

    fn setup(config: &str, kernel: Kernel) -> (Config, Policy, Current) {
        let c = Config::from_files(&[("/c.toml", config)]).unwrap_or_else(|e| panic!("{e}"));
        let sources = Sources {
            services: Services::parse("ipp 631/tcp\nimaps 993/tcp\n").ok(),
            ip_local_reserved_ports: kernel.reserved_ports.clone(),
            ..Sources::default()
        };
        let p = Policy::compute(&c, &sources).unwrap_or_else(|e| panic!("{e}"));
        let cur = Current {
            kernel,
            ..Current::default()
        };
        (c, p, cur)
    }

    fn set(text: &str) -> Option<PortSet> {
        PortSet::parse_list(text).ok()
    }

    #[test]
    fn keeps_admin_entries_and_records_only_its_own() {
        let kernel = Kernel {
            reserved_ports: set("631,5000"),
            ..Kernel::default()
        };
        let (c, p, cur) = setup(
            "[[reservation]]\nname=\"a\"\nport=700\n[[reservation]]\nname=\"b\"\nport=631\n",
            kernel,
        );
        let plan = plan(&c, &p, &cur);
        let sysctl = plan
            .changes
            .iter()
            .find(|c| matches!(c.target, Target::Sysctl(_)));
        assert_eq!(
            sysctl.map(|c| (c.old.as_str(), c.new.as_str())),
            Some(("631,5000", "631,700,5000"))
        );
        assert!(matches!(&plan.changes[0].target, Target::File(p) if p.ends_with("applied.json")));
        assert!(
            plan.changes[0].new.contains("\"700\""),
            "{}",
            plan.changes[0].new
        );
        let block = plan
            .changes
            .iter()
            .find(|c| c.target == Target::File(BLACKLIST.into()));
        let block = block.map(|c| c.new.as_str()).unwrap_or("");
        assert_eq!(
            block
                .lines()
                .filter(|l| l.parse::<u16>().is_ok())
                .collect::<Vec<_>>(),
            ["631", "700", "993"]
        );
    }

    #[test]
    fn sunrpc_gets_the_longest_privileged_run_where_it_exists() {
        let kernel = Kernel {
            reserved_ports: set(""),
            sunrpc: Some((665, 1023)),
            ..Kernel::default()
        };
        let (c, p, cur) = setup("exclude = [\"512-899\"]\n", kernel);
        let plan = plan(&c, &p, &cur);
        let got: Vec<_> = plan
            .changes
            .iter()
            .filter_map(|c| match &c.target {
                Target::Sysctl(n) => Some((n.as_str(), c.old.as_str(), c.new.as_str())),
                Target::File(_) => None,
            })
            .collect();
        // Pool: 900-992 and 994-1023 (993 is imaps); the longest run wins.
        assert_eq!(
            got,
            [
                ("sunrpc.min_resvport", "665", "900"),
                ("sunrpc.max_resvport", "1023", "992")
            ]
        );
        assert!(plan.notes.is_empty());
    }

    #[test]
    fn high_mode_reserves_the_pool() {
        let kernel = Kernel {
            reserved_ports: set(""),
            ..Kernel::default()
        };
        let (c, p, cur) = setup("mode = \"high\"\nhigh_range = \"20000-20009\"\n", kernel);
        let plan = plan(&c, &p, &cur);
        assert!(plan.changes.iter().any(|c| c.new == "20000-20009"));
        assert_eq!(plan.notes.len(), 1, "sunrpc absent: {:?}", plan.notes);
    }
}

#[cfg(test)]
mod other_files {
    use super::*;
    use crate::policy::Sources;

    #[test]
    fn warns_about_other_files_setting_the_same_key() {
        let c = Config::from_files(&[("/c.toml", "[[reservation]]\nname=\"a\"\nport=700\n")])
            .unwrap_or_else(|e| panic!("{e}"));
        let p = Policy::compute(&c, &Sources::default()).unwrap_or_else(|e| panic!("{e}"));
        let cur = Current {
            kernel: Kernel {
                reserved_ports: PortSet::parse_list("").ok(),
                ..Kernel::default()
            },
            other_sysctl_files: vec![
                (
                    "/etc/sysctl.d/99-admin.conf".into(),
                    "-net.ipv4.ip_local_reserved_ports=5000\n".into(),
                ),
                (
                    "/etc/sysctl.d/10-x.conf".into(),
                    "# net.ipv4.ip_local_reserved_ports = 1\n".into(),
                ),
                (
                    "/etc/sysctl.d/60-portpolicy.conf".into(),
                    "net.ipv4.ip_local_reserved_ports = 1\n".into(),
                ),
            ],
            ..Current::default()
        };
        let notes: Vec<_> = plan(&c, &p, &cur)
            .notes
            .into_iter()
            .filter(|n| n.contains("also sets"))
            .collect();
        assert_eq!(
            notes,
            ["/etc/sysctl.d/99-admin.conf also sets net.ipv4.ip_local_reserved_ports: whichever file sorts last wins at boot"]
        );
    }
}
