//! The policy configuration: `/etc/portpolicy.toml` and
//! `/etc/portpolicy.d/*.toml`. Pure, no I/O: the caller reads the files and
//! passes `(path, text)` pairs in the order they apply.
//!
//! Every option has a default and no file at all is valid. Each file is
//! parsed on its own with `deny_unknown_fields`; later files override
//! scalar options and extend the lists (`exclude`, `reservation`). Every
//! error names the file and the line.

use crate::portset::PortRange;
use crate::Protocol;
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// Which ports make up the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The range `bindresvport()` uses (600-1023, then 512-599).
    #[default]
    Privileged,
    /// A range of unprivileged ports outside the ephemeral range.
    High,
}

/// One protocol or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocols {
    /// TCP only.
    #[default]
    Tcp,
    /// UDP only.
    Udp,
    /// TCP and UDP.
    Both,
}

impl Protocols {
    /// Whether `proto` is included.
    pub fn covers(self, proto: Protocol) -> bool {
        matches!(
            (self, proto),
            (Protocols::Both, _)
                | (Protocols::Tcp, Protocol::Tcp)
                | (Protocols::Udp, Protocol::Udp)
        )
    }
}

/// The default `high_range`: below the default ephemeral range
/// (32768-60999) and clear of the 30000-32767 range that container
/// platforms commonly claim for node ports.
pub const DEFAULT_HIGH_RANGE: PortRange = PortRange {
    first: 20000,
    last: 24999,
};

/// Which exclusion sources are read (all on by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SourceSwitches {
    /// Every /etc/services entry, tcp and udp.
    pub services: bool,
    /// The admin's lines of /etc/bindresvport.blacklist.
    pub bindresvport_blacklist: bool,
    /// /etc/portreserve/*.
    pub portreserve: bool,
    /// The admin's entries of net.ipv4.ip_local_reserved_ports.
    pub ip_local_reserved_ports: bool,
    /// Ports fixed in /etc/nfs.conf.
    pub nfs_conf: bool,
}

impl Default for SourceSwitches {
    fn default() -> Self {
        SourceSwitches {
            services: true,
            bindresvport_blacklist: true,
            portreserve: true,
            ip_local_reserved_ports: true,
            nfs_conf: true,
        }
    }
}

/// What `portpolicy apply` manages (all on by default).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApplyOptions {
    /// Add reserved (and, in high mode, pool) ports to ip_local_reserved_ports.
    pub ip_local_reserved_ports: bool,
    /// Keep a managed block in /etc/bindresvport.blacklist.
    pub bindresvport_blacklist: bool,
    /// Set sunrpc.min_resvport/max_resvport where /proc/sys/sunrpc exists.
    pub sunrpc: bool,
    /// The sysctl.d drop-in that makes the settings hold after reboot.
    pub sysctl_dropin: PathBuf,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            ip_local_reserved_ports: true,
            bindresvport_blacklist: true,
            sunrpc: true,
            sysctl_dropin: PathBuf::from("/etc/sysctl.d/60-portpolicy.conf"),
        }
    }
}

/// The allocation service of the rpcbind daemon (`[allocation]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct AllocationOptions {
    /// Whether the daemon serves it (PA_DISABLED when not).
    pub enabled: bool,
    /// Leases a non-root uid may hold at once.
    pub quota: u32,
}

impl Default for AllocationOptions {
    fn default() -> Self {
        AllocationOptions {
            enabled: true,
            quota: 64,
        }
    }
}

/// An exclusion the admin wrote in the config.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Exclude {
    /// The ports.
    pub ports: PortRange,
    /// The protocols.
    pub protocols: Protocols,
    /// `file:line` it came from.
    pub origin: String,
}

/// The port of a reservation: a number or a service name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(untagged)]
pub enum PortSpec {
    /// A port number.
    Number(u16),
    /// A name or alias from /etc/services.
    Service(String),
}

/// A named reservation. `P` is its port: as written in the config
/// ([`PortSpec`], in [`Reservation`]) or resolved to a number (the
/// policy's `Reservation`), so both share one definition of the rest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReservationOf<P> {
    /// The reservation's name (what `CLAIM` and `release` use).
    pub name: String,
    /// The port.
    pub port: P,
    /// The protocols held.
    pub protocols: Protocols,
    /// A uid allowed to claim it (root always may).
    pub uid: Option<u32>,
    /// A gid allowed to claim it.
    pub gid: Option<u32>,
    /// A systemd unit allowed to claim it (from the claimant's cgroup).
    pub unit: Option<String>,
    /// Whether the allocation service holds the port; false for a daemon
    /// that binds the port by itself (kept out of the pool and, by
    /// `apply`, out of the kernel's ephemeral ports and bindresvport()).
    pub hold: bool,
    /// The nfs.conf key (`statd.port`, ...) `apply` writes the port to.
    pub nfs_conf: Option<String>,
}

impl<P> ReservationOf<P> {
    /// The same reservation on `port` (a resolved service name).
    pub fn with_port<Q>(self, port: Q) -> ReservationOf<Q> {
        ReservationOf {
            name: self.name,
            port,
            protocols: self.protocols,
            uid: self.uid,
            gid: self.gid,
            unit: self.unit,
            hold: self.hold,
            nfs_conf: self.nfs_conf,
        }
    }
}

/// A named reservation as written in the config, and where.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Reservation {
    /// The reservation itself (its fields, flat in JSON).
    #[serde(flatten)]
    pub spec: ReservationOf<PortSpec>,
    /// `file:line` it came from.
    pub origin: String,
}

/// The whole configuration, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Config {
    /// Pool mode.
    pub mode: Mode,
    /// Candidate range in high mode.
    pub high_range: PortRange,
    /// Exclusion sources switched on.
    pub sources: SourceSwitches,
    /// The admin's own exclusions.
    pub exclude: Vec<Exclude>,
    /// Named reservations.
    pub reservations: Vec<Reservation>,
    /// What apply manages.
    pub apply: ApplyOptions,
    /// The allocation service.
    pub allocation: AllocationOptions,
    /// The files read, in order.
    pub files: Vec<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::default(),
            high_range: DEFAULT_HIGH_RANGE,
            sources: SourceSwitches::default(),
            exclude: Vec::new(),
            reservations: Vec::new(),
            apply: ApplyOptions::default(),
            allocation: AllocationOptions::default(),
            files: Vec::new(),
        }
    }
}

/// A config file that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file.display(), line, self.reason),
            None => write!(f, "{}: {}", self.file.display(), self.reason),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSources {
    services: Option<bool>,
    bindresvport_blacklist: Option<bool>,
    portreserve: Option<bool>,
    ip_local_reserved_ports: Option<bool>,
    nfs_conf: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileApply {
    ip_local_reserved_ports: Option<bool>,
    bindresvport_blacklist: Option<bool>,
    sunrpc: Option<bool>,
    sysctl_dropin: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAllocation {
    enabled: Option<bool>,
    quota: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileReservation {
    name: String,
    port: PortSpec,
    #[serde(default)]
    protocol: Protocols,
    uid: Option<u32>,
    gid: Option<u32>,
    unit: Option<String>,
    hold: Option<bool>,
    nfs_conf: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    mode: Option<Mode>,
    high_range: Option<Spanned<String>>,
    sources: Option<FileSources>,
    #[serde(default)]
    exclude: Vec<Spanned<String>>,
    #[serde(default)]
    reservation: Vec<Spanned<FileReservation>>,
    apply: Option<FileApply>,
    allocation: Option<FileAllocation>,
}

impl Config {
    /// Build the configuration from files in the order they apply.
    pub fn from_files<P: AsRef<Path>>(files: &[(P, &str)]) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        for (path, text) in files {
            config.merge(path.as_ref(), text)?;
        }
        config.validate()?;
        Ok(config)
    }

    fn merge(&mut self, path: &Path, text: &str) -> Result<(), ConfigError> {
        let err = |span: Option<std::ops::Range<usize>>, reason: String| ConfigError {
            file: path.to_path_buf(),
            line: span.map(|s| line_of(text, s.start)),
            reason,
        };
        let file: ConfigFile =
            toml::from_str(text).map_err(|e| err(e.span(), e.message().trim().to_string()))?;
        self.files.push(path.to_path_buf());
        if let Some(mode) = file.mode {
            self.mode = mode;
        }
        if let Some(range) = file.high_range {
            let span = range.span();
            self.high_range =
                parse_high_range(range.get_ref()).map_err(|reason| err(Some(span), reason))?;
        }
        if let Some(s) = file.sources {
            let d = &mut self.sources;
            set(&mut d.services, s.services);
            set(&mut d.bindresvport_blacklist, s.bindresvport_blacklist);
            set(&mut d.portreserve, s.portreserve);
            set(&mut d.ip_local_reserved_ports, s.ip_local_reserved_ports);
            set(&mut d.nfs_conf, s.nfs_conf);
        }
        if let Some(a) = file.apply {
            let d = &mut self.apply;
            set(&mut d.ip_local_reserved_ports, a.ip_local_reserved_ports);
            set(&mut d.bindresvport_blacklist, a.bindresvport_blacklist);
            set(&mut d.sunrpc, a.sunrpc);
            set(&mut d.sysctl_dropin, a.sysctl_dropin);
        }
        if let Some(a) = file.allocation {
            set(&mut self.allocation.enabled, a.enabled);
            set(&mut self.allocation.quota, a.quota);
        }
        for item in file.exclude {
            let span = item.span();
            let origin = format!("{}:{}", path.display(), line_of(text, span.start));
            let (ports, protocols) =
                parse_exclude(item.get_ref()).map_err(|reason| err(Some(span), reason))?;
            self.exclude.push(Exclude {
                ports,
                protocols,
                origin,
            });
        }
        for item in file.reservation {
            let line = line_of(text, item.span().start);
            let r = item.into_inner();
            self.reservations.push(Reservation {
                spec: ReservationOf {
                    name: r.name,
                    port: r.port,
                    protocols: r.protocol,
                    uid: r.uid,
                    gid: r.gid,
                    unit: r.unit,
                    // A daemon binding an nfs.conf port by itself cannot
                    // bind a port the allocation service holds.
                    hold: r.hold.unwrap_or(r.nfs_conf.is_none()),
                    nfs_conf: r.nfs_conf.map(|k| k.to_ascii_lowercase()),
                },
                origin: format!("{}:{}", path.display(), line),
            });
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for (i, entry) in self.reservations.iter().enumerate() {
            let r = &entry.spec;
            let problem = if r.name.is_empty() || r.name.contains(char::is_whitespace) {
                Some(format!("reservation name {:?} must be one word", r.name))
            } else if r.name.len() > MAX_RESERVATION_NAME {
                Some(format!(
                    "reservation name {:?} is longer than {MAX_RESERVATION_NAME} bytes (the allocation protocol's limit)",
                    r.name
                ))
            } else if self.reservations[..i].iter().any(|o| o.spec.name == r.name) {
                Some(format!("reservation name {:?} is used twice", r.name))
            } else if r.port == PortSpec::Number(0) {
                Some(format!(
                    "reservation {:?}: port 0 cannot be reserved",
                    r.name
                ))
            } else {
                self.nfs_conf_problem(i)
            };
            if let Some(reason) = problem {
                return Err(origin_error(&entry.origin, reason));
            }
        }
        Ok(())
    }
}

impl Config {
    /// What is wrong with reservation `i`'s `nfs_conf`, if anything.
    fn nfs_conf_problem(&self, i: usize) -> Option<String> {
        let r = &self.reservations[i].spec;
        let key = r.nfs_conf.as_deref()?;
        let Some(needs) = crate::nfsconf::writable_key(key) else {
            let keys: Vec<&str> = crate::nfsconf::WRITABLE_KEYS.iter().map(|k| k.0).collect();
            return Some(format!(
                "reservation {:?}: nfs_conf = {key:?} is not one of {}",
                r.name,
                keys.join(", ")
            ));
        };
        if r.hold {
            return Some(format!(
                "reservation {:?}: hold = true with nfs_conf: the daemon binds {key} by itself, \
                 and a port the allocation service holds would make that bind fail",
                r.name
            ));
        }
        if !needs.iter().all(|p| r.protocols.covers(*p)) {
            let want = if needs.len() == 2 {
                "both"
            } else {
                needs[0].as_str()
            };
            return Some(format!(
                "reservation {:?}: {key} is used for {want}: set protocol = {want:?}",
                r.name
            ));
        }
        if self.reservations[..i]
            .iter()
            .any(|o| o.spec.nfs_conf.as_deref() == Some(key))
        {
            return Some(format!(
                "reservation {:?}: nfs_conf = {key:?} is given twice",
                r.name
            ));
        }
        None
    }
}

/// Longest reservation name: `PA_MAXNAMELEN` of the allocation protocol,
/// since CLAIM and RELEASE_NAME carry the name.
pub const MAX_RESERVATION_NAME: usize = 64;

/// A ConfigError for an item whose origin is `file:line`.
pub(crate) fn origin_error(origin: &str, reason: String) -> ConfigError {
    let (file, line) = match origin.rsplit_once(':') {
        Some((f, l)) => (f, l.parse().ok()),
        None => (origin, None),
    };
    ConfigError {
        file: PathBuf::from(file),
        line,
        reason,
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).unwrap_or(text).matches('\n').count() + 1
}

fn parse_high_range(text: &str) -> Result<PortRange, String> {
    let r = PortRange::parse(text).map_err(|e| format!("high_range: {e}"))?;
    if r.first < 1024 {
        return Err(format!(
            "high_range {r} reaches below 1024: use mode = \"privileged\" for privileged ports"
        ));
    }
    Ok(r)
}

/// `PORT`, `PORT-PORT`, optionally followed by `/tcp` or `/udp`.
fn parse_exclude(text: &str) -> Result<(PortRange, Protocols), String> {
    let (ports, protocols) = match text.split_once('/') {
        Some((p, proto)) => {
            let proto: Protocol = proto.trim().parse().map_err(|e| format!("exclude: {e}"))?;
            let sel = match proto {
                Protocol::Tcp => Protocols::Tcp,
                Protocol::Udp => Protocols::Udp,
            };
            (p, sel)
        }
        None => (text, Protocols::Both),
    };
    let range = PortRange::parse(ports).map_err(|e| format!("exclude: {e}"))?;
    Ok((range, protocols))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Result<Config, ConfigError> {
        Config::from_files(&[("/etc/portpolicy.toml", text)])
    }

    #[test]
    fn no_file_and_empty_file_are_defaults() {
        let none: [(&str, &str); 0] = [];
        let mut c = Config::from_files(&none).unwrap();
        assert_eq!(c, Config::default());
        c = one("").unwrap();
        assert_eq!(c.mode, Mode::Privileged);
        assert_eq!(c.high_range, DEFAULT_HIGH_RANGE);
        assert!(c.sources.services && c.sources.nfs_conf);
    }

    #[test]
    fn full_file() {
        let c = one(r#"mode = "high"
high_range = "40000-40999"
exclude = ["700", "710-719/udp"]
[sources]
services = false
[apply]
sysctl_dropin = "/etc/sysctl.d/99-x.conf"
[allocation]
quota = 8
[[reservation]]
name = "cups"
port = "ipp"
uid = 7
[[reservation]]
name = "rsync"
port = 873
protocol = "both"
unit = "rsync.service"
"#)
        .unwrap();
        assert_eq!(c.mode, Mode::High);
        assert_eq!(c.high_range, PortRange::new(40000, 40999));
        assert!(!c.sources.services && c.sources.portreserve);
        assert_eq!(c.exclude[1].ports, PortRange::new(710, 719));
        assert_eq!(c.exclude[1].protocols, Protocols::Udp);
        assert_eq!(c.exclude[0].origin, "/etc/portpolicy.toml:3");
        assert_eq!(c.reservations[0].spec.port, PortSpec::Service("ipp".into()));
        assert_eq!(c.reservations[0].spec.protocols, Protocols::Tcp);
        assert_eq!(c.reservations[1].origin, "/etc/portpolicy.toml:14");
        assert_eq!(
            c.allocation,
            AllocationOptions {
                enabled: true,
                quota: 8
            }
        );
        assert_eq!(
            c.apply.sysctl_dropin,
            PathBuf::from("/etc/sysctl.d/99-x.conf")
        );
    }

    #[test]
    fn later_files_override_and_extend() {
        let c = Config::from_files(&[
            ("/a.toml", "mode = \"high\"\nexclude = [\"1\"]"),
            ("/b.toml", "mode = \"privileged\"\nexclude = [\"2\"]"),
        ])
        .unwrap();
        assert_eq!(c.mode, Mode::Privileged);
        assert_eq!(c.exclude.len(), 2);
        assert_eq!(c.files.len(), 2);
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = one("mode = \"privileged\"\n\nmodee = 1\n").unwrap_err();
        assert_eq!(e.line, Some(3));
        assert!(
            e.to_string()
                .starts_with("/etc/portpolicy.toml:3: unknown field `modee`"),
            "{e}"
        );
        let e = one("mode = \"fast\"").unwrap_err();
        assert_eq!(e.line, Some(1));
        let e = one("\nexclude = [\n \"1\",\n \"x-2\"]").unwrap_err();
        assert_eq!((e.line, e.reason.contains("\"x-2\"")), (Some(4), true));
        let e = one("high_range = \"80-90\"").unwrap_err();
        assert!(e.reason.contains("below 1024"));
        let e = one("[[reservation]]\nname=\"a\"\nport=1\n[[reservation]]\nname=\"a\"\nport=2\n")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/portpolicy.toml:4: reservation name \"a\" is used twice"
        );
        let e = one("[[reservation]]\nname=\"a\"\nport=1\nowner=3\n").unwrap_err();
        assert_eq!(e.line, Some(4));
        let e = one("[sources]\nservices = \"yes\"").unwrap_err();
        assert_eq!(e.line, Some(2));
        let e = one("[allocation]\nquota = -1").unwrap_err();
        assert_eq!(e.line, Some(2));
        let long = format!("[[reservation]]\nname=\"{}\"\nport=1\n", "n".repeat(65));
        let e = one(&long).unwrap_err();
        assert!(e.reason.contains("longer than 64 bytes"), "{e}");
    }
}
