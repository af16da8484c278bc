//! Ports fixed in `/etc/nfs.conf` (nfs.conf(5)). Pure, no I/O.
//!
//! The file is INI-like: `[section]`, `key = value`, `#` or `;` comments;
//! sections and keys are case-insensitive. Only the keys that pin a port
//! are read; a value of 0 means "not fixed" (the daemon picks a port).
//! `include` lines and sub-sections are passed over: they cannot pin one
//! of the keys below in a way this reader would miss without following
//! the include, which is documented as a limit in the README.
//!
//! [`dropin`] renders the other direction: the drop-in
//! `/etc/nfs.conf.d/portpolicy.conf` that `portpolicy apply` writes from
//! reservations carrying an `nfs_conf` key.

use crate::Protocol;

/// The drop-in `apply` manages (nfs-utils 2.6 reads /etc/nfs.conf.d/*.conf
/// after /etc/nfs.conf, and its values override). The exclusion source
/// skips it: its ports are reservations already.
pub const DROPIN: &str = "/etc/nfs.conf.d/portpolicy.conf";

/// The keys a reservation may feed (`section.key`), with the protocols the
/// daemon binds the port for. nfsd's port is the kernel's (2049) and not
/// offered.
pub const WRITABLE_KEYS: &[(&str, &[Protocol])] = &[
    ("statd.port", &[Protocol::Tcp, Protocol::Udp]),
    ("statd.outgoing-port", &[Protocol::Udp]),
    ("sm-notify.outgoing-port", &[Protocol::Udp]),
    ("mountd.port", &[Protocol::Tcp, Protocol::Udp]),
    ("lockd.port", &[Protocol::Tcp]),
    ("lockd.udp-port", &[Protocol::Udp]),
];

/// The protocols a writable key's port is used for, or None if the key is
/// not one a reservation may feed.
pub fn writable_key(key: &str) -> Option<&'static [Protocol]> {
    WRITABLE_KEYS
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, p)| *p)
}

/// The text of the drop-in for `(key, port, reservation name)` entries:
/// sections in [`WRITABLE_KEYS`] order, so the text depends only on the
/// set of entries (a second apply compares equal).
pub fn dropin(entries: &[(&str, u16, &str)]) -> String {
    let mut out = String::from(
        "# Written by `portpolicy apply` from the reservations in /etc/portpolicy.toml:\n\
         # edit those and run it again. nfs.conf(5): these override /etc/nfs.conf.\n",
    );
    let mut section = "";
    for (key, _) in WRITABLE_KEYS {
        let Some((_, port, name)) = entries.iter().find(|(k, _, _)| k == key) else {
            continue;
        };
        let (sec, k) = key.split_once('.').unwrap_or((key, ""));
        if sec != section {
            out.push_str(&format!("[{sec}]\n"));
            section = sec;
        }
        out.push_str(&format!("{k} = {port}\t# reservation {name}\n"));
    }
    out
}

/// The keys that fix a port, and the protocols the daemon uses it for.
const PORT_KEYS: &[(&str, &str, Option<Protocol>)] = &[
    ("statd", "port", None),
    ("statd", "outgoing-port", Some(Protocol::Udp)),
    ("sm-notify", "outgoing-port", Some(Protocol::Udp)),
    ("mountd", "port", None),
    ("lockd", "port", Some(Protocol::Tcp)),
    ("lockd", "udp-port", Some(Protocol::Udp)),
    ("nfsd", "port", None),
];

/// One port fixed in nfs.conf.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NfsPort {
    /// `section.key`, e.g. `statd.port`.
    pub key: String,
    /// The port.
    pub port: u16,
    /// The protocol, or None for both.
    pub protocol: Option<Protocol>,
    /// 1-based line number.
    pub line: usize,
    /// The file, when not /etc/nfs.conf itself (set by the reader of
    /// /etc/nfs.conf.d/*.conf).
    pub file: Option<String>,
}

/// A port key whose value is not a port.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// The fixed ports of an nfs.conf text, in file order.
pub fn parse(text: &str) -> Result<Vec<NfsPort>, ParseError> {
    let mut out = Vec::new();
    let mut section = String::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let content = raw.trim();
        if content.is_empty() || content.starts_with('#') || content.starts_with(';') {
            continue;
        }
        if let Some(rest) = content.strip_prefix('[') {
            let name = rest.split(']').next().unwrap_or("");
            section = name
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_lowercase();
            continue;
        }
        let Some((key, value)) = content.split_once('=') else {
            continue;
        };
        let key = key.trim().to_ascii_lowercase();
        let value = value.split('#').next().unwrap_or("").trim();
        let Some((_, _, protocol)) = PORT_KEYS
            .iter()
            .find(|(s, k, _)| *s == section && *k == key)
        else {
            continue;
        };
        if value.is_empty() {
            continue;
        }
        let port = crate::services::parse_port(value).ok_or_else(|| ParseError {
            line,
            reason: format!("[{section}] {key} = {value:?} is not a port number"),
        })?;
        if port != 0 {
            out.push(NfsPort {
                key: format!("{section}.{key}"),
                port,
                protocol: *protocol,
                line,
                file: None,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_default_fixes_nothing() {
        let text = include_str!("../tests/fixtures/debian-nfs.conf");
        assert_eq!(parse(text).unwrap(), vec![]);
    }

    #[test]
    fn fixed_ports() {
        let text = "[General]\nport=5\n[Statd]\n Port = 662\noutgoing-port=2020 # c\n\
                    [lockd]\nport=0\nudp-port=32769\n[nfsd]\nport=2049\n";
        let p = parse(text).unwrap();
        let got: Vec<_> = p
            .iter()
            .map(|p| (p.key.as_str(), p.port, p.protocol, p.line))
            .collect();
        assert_eq!(
            got,
            [
                ("statd.port", 662, None, 4),
                ("statd.outgoing-port", 2020, Some(Protocol::Udp), 5),
                ("lockd.udp-port", 32769, Some(Protocol::Udp), 8),
                ("nfsd.port", 2049, None, 10),
            ]
        );
        assert_eq!(parse("[mountd]\nport=abc").unwrap_err().line, 2);
    }

    #[test]
    fn dropin_reads_back_as_the_same_ports() {
        let text = dropin(&[
            ("lockd.udp-port", 4046, "lockd-udp"),
            ("statd.outgoing-port", 4043, "statd-outgoing"),
            ("statd.port", 4042, "statd"),
            ("lockd.port", 4045, "lockd"),
        ]);
        assert!(text.contains("[statd]\nport = 4042\t# reservation statd\noutgoing-port = 4043"));
        let got: Vec<_> = parse(&text)
            .unwrap()
            .into_iter()
            .map(|p| (p.key, p.port))
            .collect();
        assert_eq!(
            got,
            [
                ("statd.port".to_string(), 4042),
                ("statd.outgoing-port".to_string(), 4043),
                ("lockd.port".to_string(), 4045),
                ("lockd.udp-port".to_string(), 4046),
            ]
        );
        assert_eq!(parse(&dropin(&[])).unwrap(), vec![]);
    }
}
