//! The I/O layer: reads the config, the exclusion sources and the kernel
//! settings into the pure core's inputs. Does file I/O; implements no RFC.
//!
//! Every path is taken relative to [`Paths`], whose defaults are the real
//! locations. The `portpolicy` command's hidden `--root` and `--proc-sys`
//! options move them for tests only.

use crate::blacklist::Blacklist;
use crate::config::{Config, ConfigError};
use crate::policy::{Applied, PortreserveFile, Sources};
use crate::portset::{PortRange, PortSet};
use crate::services::Services;
use crate::{nfsconf, portreserve};
use std::io;
use std::path::{Path, PathBuf};

/// Where the files and kernel settings are.
#[derive(Debug, Clone)]
pub struct Paths {
    /// Prefix for /etc and /var/lib paths ("/" normally).
    pub root: PathBuf,
    /// The sysctl tree (/proc/sys normally).
    pub proc_sys: PathBuf,
    /// `--config PATH`: read this file only instead of the default ones.
    pub config: Option<PathBuf>,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            root: PathBuf::from("/"),
            proc_sys: PathBuf::from("/proc/sys"),
            config: None,
        }
    }
}

impl Paths {
    /// A host path (e.g. `/etc/services`) under the root.
    pub fn host(&self, path: impl AsRef<Path>) -> PathBuf {
        let p = path.as_ref();
        self.root.join(p.strip_prefix("/").unwrap_or(p))
    }

    /// A sysctl by its dotted name (`net.ipv4.ip_local_reserved_ports`).
    pub fn sysctl(&self, name: &str) -> PathBuf {
        self.proc_sys.join(name.replace('.', "/"))
    }

    /// The record of what `apply` wrote.
    pub fn applied_record(&self) -> PathBuf {
        self.host("/var/lib/portpolicy/applied.json")
    }
}

/// A file's text, or None if it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<String>, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(path, &e)),
    }
}

fn io_error(path: &Path, e: &io::Error) -> ConfigError {
    ConfigError {
        file: path.to_path_buf(),
        line: None,
        reason: e.to_string(),
    }
}

fn at_line(path: &Path, line: usize, reason: String) -> ConfigError {
    ConfigError {
        file: path.to_path_buf(),
        line: Some(line),
        reason,
    }
}

/// Sorted `*.ext` files of a directory (none if it does not exist).
fn dir_files(dir: &Path, ext: Option<&str>) -> Result<Vec<PathBuf>, ConfigError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(dir, &e)),
    };
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            // Editor backups and package-manager leftovers are not config.
            let hidden = name.starts_with('.')
                || name.ends_with('~')
                || [
                    ".dpkg-old",
                    ".dpkg-new",
                    ".dpkg-dist",
                    ".rpmnew",
                    ".rpmsave",
                ]
                .iter()
                .any(|s| name.ends_with(s));
            !hidden && ext.is_none_or(|x| p.extension().is_some_and(|e| e == x))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// The configuration: `--config PATH` alone (it must exist), or
/// /etc/portpolicy.toml (if present) then /etc/portpolicy.d/*.toml sorted.
pub fn config(paths: &Paths) -> Result<Config, ConfigError> {
    let mut files = Vec::new();
    if let Some(path) = &paths.config {
        let text = std::fs::read_to_string(path).map_err(|e| io_error(path, &e))?;
        files.push((path.clone(), text));
    } else {
        let main = paths.host("/etc/portpolicy.toml");
        if let Some(text) = read_optional(&main)? {
            files.push((main, text));
        }
        for path in dir_files(&paths.host("/etc/portpolicy.d"), Some("toml"))? {
            let text = std::fs::read_to_string(&path).map_err(|e| io_error(&path, &e))?;
            files.push((path, text));
        }
    }
    let refs: Vec<(&Path, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_path(), t.as_str()))
        .collect();
    Config::from_files(&refs)
}

/// The kernel settings the policy reads and `apply` writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Kernel {
    /// net.ipv4.ip_local_reserved_ports.
    pub reserved_ports: Option<PortSet>,
    /// net.ipv4.ip_local_port_range.
    pub port_range: Option<PortRange>,
    /// sunrpc.min_resvport and max_resvport, when /proc/sys/sunrpc exists.
    pub sunrpc: Option<(u16, u16)>,
}

/// Read the kernel settings; a missing one is None.
pub fn kernel(paths: &Paths) -> Result<Kernel, ConfigError> {
    let reserved_path = paths.sysctl("net.ipv4.ip_local_reserved_ports");
    let reserved_ports = match read_optional(&reserved_path)? {
        Some(t) => Some(
            PortSet::parse_list(t.trim()).map_err(|e| at_line(&reserved_path, 1, e.to_string()))?,
        ),
        None => None,
    };
    let port_range = read_pair(
        paths,
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_local_port_range",
    )?
    .map(|(a, b)| PortRange::new(a, b));
    let sunrpc = read_pair(paths, "sunrpc.min_resvport", "sunrpc.max_resvport")?;
    Ok(Kernel {
        reserved_ports,
        port_range,
        sunrpc,
    })
}

/// Two numbers: from one sysctl holding both, or from two.
fn read_pair(paths: &Paths, a: &str, b: &str) -> Result<Option<(u16, u16)>, ConfigError> {
    let pa = paths.sysctl(a);
    let Some(ta) = read_optional(&pa)? else {
        return Ok(None);
    };
    let text = if a == b {
        ta
    } else {
        let pb = paths.sysctl(b);
        let Some(tb) = read_optional(&pb)? else {
            return Ok(None);
        };
        format!("{} {}", ta.trim(), tb.trim())
    };
    let nums: Vec<u16> = text
        .split_ascii_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| at_line(&pa, 1, format!("{:?} is not two port numbers", text.trim())))?;
    match nums[..] {
        [x, y] => Ok(Some((x, y))),
        _ => Err(at_line(
            &pa,
            1,
            format!("{:?} is not two port numbers", text.trim()),
        )),
    }
}

/// Read every exclusion source. A missing file is an absent source; a
/// malformed one is an error naming the file and line.
pub fn sources(paths: &Paths, kernel: &Kernel) -> Result<Sources, ConfigError> {
    let services_path = paths.host("/etc/services");
    let services = read_optional(&services_path)?
        .map(|t| {
            Services::parse(&t).map_err(|e| at_line(&services_path, e.line, e.kind.to_string()))
        })
        .transpose()?;
    let blacklist_path = paths.host("/etc/bindresvport.blacklist");
    let blacklist = read_optional(&blacklist_path)?
        .map(|t| Blacklist::parse(&t).map_err(|e| at_line(&blacklist_path, e.line, e.reason)))
        .transpose()?;
    let mut reserve = Vec::new();
    for path in dir_files(&paths.host("/etc/portreserve"), None)? {
        let text = std::fs::read_to_string(&path).map_err(|e| io_error(&path, &e))?;
        let entries = portreserve::parse(&text).map_err(|e| at_line(&path, e.line, e.reason))?;
        reserve.push(PortreserveFile {
            path: path.display().to_string(),
            entries,
        });
    }
    let nfs_path = paths.host("/etc/nfs.conf");
    let mut nfs_ports = Vec::new();
    if let Some(t) = read_optional(&nfs_path)? {
        nfs_ports = nfsconf::parse(&t).map_err(|e| at_line(&nfs_path, e.line, e.reason))?;
    }
    // nfs-utils reads /etc/nfs.conf.d/*.conf after nfs.conf; every port
    // any of them fixes is kept out of the pool. Not apply's own drop-in:
    // its ports are reservations, not the admin's pinning.
    let ours = paths.host(nfsconf::DROPIN);
    for path in dir_files(&paths.host("/etc/nfs.conf.d"), Some("conf"))? {
        if path == ours {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| io_error(&path, &e))?;
        let found = nfsconf::parse(&text).map_err(|e| at_line(&path, e.line, e.reason))?;
        nfs_ports.extend(found.into_iter().map(|mut n| {
            n.file = Some(path.display().to_string());
            n
        }));
    }
    Ok(Sources {
        services,
        blacklist,
        portreserve: reserve,
        ip_local_reserved_ports: kernel.reserved_ports.clone(),
        applied: applied(paths)?,
        nfs_ports,
        ephemeral: kernel.port_range,
    })
}

/// What apply recorded, or nothing.
pub fn applied(paths: &Paths) -> Result<Applied, ConfigError> {
    let path = paths.applied_record();
    match read_optional(&path)? {
        None => Ok(Applied::default()),
        Some(text) => {
            serde_json::from_str(&text).map_err(|e| at_line(&path, e.line(), e.to_string()))
        }
    }
}

/// Everything read and the policy computed from it. Nothing is shared
/// with a policy already in force: a caller such as the rpcbind daemon
/// calls this on reload and swaps its policy only on `Ok`, so an invalid
/// file never replaces a working policy.
pub fn policy(
    paths: &Paths,
) -> Result<(Config, Kernel, Sources, crate::policy::Policy), ConfigError> {
    let config = config(paths)?;
    let kernel = kernel(paths)?;
    let sources = sources(paths, &kernel)?;
    let policy = crate::policy::Policy::compute(&config, &sources)?;
    Ok((config, kernel, sources, policy))
}

/// Every sysctl.d file sysctl(8) reads at boot, with its text (host paths).
pub fn sysctl_files(paths: &Paths) -> Result<Vec<(PathBuf, String)>, ConfigError> {
    let mut out = Vec::new();
    for dir in [
        "/etc/sysctl.d",
        "/run/sysctl.d",
        "/usr/local/lib/sysctl.d",
        "/usr/lib/sysctl.d",
    ] {
        for path in dir_files(&paths.host(dir), Some("conf"))? {
            let Some(text) = read_optional(&path)? else {
                continue;
            };
            let host = Path::new(dir).join(path.file_name().unwrap_or_default());
            out.push((host, text));
        }
    }
    if let Some(text) = read_optional(&paths.host("/etc/sysctl.conf"))? {
        out.push((PathBuf::from("/etc/sysctl.conf"), text));
    }
    Ok(out)
}
