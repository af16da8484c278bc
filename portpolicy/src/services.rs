//! The `/etc/services` database: a hand-written parser and look-ups.
//!
//! Pure, no I/O: the caller reads the file and passes its text. The format
//! is services(5): one entry per line, `name port/protocol [alias ...]`,
//! fields separated by any mix of blanks and tabs, `#` starting a comment
//! anywhere on a line. Unlike glibc, which skips lines it cannot read, this
//! parser refuses them with the line number, because a policy computed from
//! half a file would silently leave well-known ports in the pool.

use crate::Protocol;
use std::fmt;

/// One line of the services database.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServiceEntry {
    /// The official service name (first field).
    pub name: String,
    /// The port number.
    pub port: u16,
    /// The protocol as written (`tcp`, `udp`, `sctp`, `ddp`, ...).
    pub protocol: String,
    /// Alternative names, in file order.
    pub aliases: Vec<String>,
    /// The 1-based line number the entry came from.
    pub line: usize,
}

impl ServiceEntry {
    /// Whether `name` is this entry's name or one of its aliases.
    pub fn is_named(&self, name: &str) -> bool {
        self.name == name || self.aliases.iter().any(|a| a == name)
    }

    /// The entry's protocol if it is one the policy governs (tcp or udp).
    pub fn transport(&self) -> Option<Protocol> {
        self.protocol.parse().ok()
    }
}

/// Why a line of a services file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// A name with nothing after it.
    #[error("service {0:?} has no port/protocol field")]
    MissingPort(String),
    /// The second field has no `/`.
    #[error("{0:?} is not port/protocol")]
    NoSlash(String),
    /// The port is not a number in 0-65535.
    #[error("port {0:?} is not a number in 0-65535")]
    BadPort(String),
    /// Nothing after the `/`.
    #[error("empty protocol in {0:?}")]
    EmptyProtocol(String),
}

/// A services file that could not be read, with the line at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub kind: ParseErrorKind,
}

/// A parsed services database, entries in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Services {
    entries: Vec<ServiceEntry>,
}

impl Services {
    /// Parse the text of a services(5) file.
    pub fn parse(text: &str) -> Result<Services, ParseError> {
        let mut entries = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            if let Some(entry) = parse_line(raw, line)? {
                entries.push(entry);
            }
        }
        Ok(Services { entries })
    }

    /// Every entry in file order.
    pub fn entries(&self) -> &[ServiceEntry] {
        &self.entries
    }

    /// The port of a service by name or alias, as getservbyname(3) would
    /// answer: the first matching entry in file order wins.
    pub fn port_of(&self, name: &str, proto: Protocol) -> Option<u16> {
        self.entries
            .iter()
            .find(|e| e.transport() == Some(proto) && e.is_named(name))
            .map(|e| e.port)
    }

    /// Whether any entry of any protocol has this name or alias.
    pub fn knows(&self, name: &str) -> bool {
        self.entries.iter().any(|e| e.is_named(name))
    }

    /// The entries naming a port for a protocol, in file order.
    pub fn by_port(&self, port: u16, proto: Protocol) -> impl Iterator<Item = &ServiceEntry> {
        self.entries
            .iter()
            .filter(move |e| e.port == port && e.transport() == Some(proto))
    }

    /// The official name of the first entry for a port, as getservbyport(3).
    pub fn name_of(&self, port: u16, proto: Protocol) -> Option<&str> {
        self.by_port(port, proto).next().map(|e| e.name.as_str())
    }
}

fn parse_line(raw: &str, line: usize) -> Result<Option<ServiceEntry>, ParseError> {
    let content = raw.split('#').next().unwrap_or("");
    let mut fields = content.split_ascii_whitespace();
    let Some(name) = fields.next() else {
        return Ok(None);
    };
    let err = |kind| ParseError { line, kind };
    let port_proto = fields
        .next()
        .ok_or_else(|| err(ParseErrorKind::MissingPort(name.to_string())))?;
    let (port, protocol) = port_proto
        .split_once('/')
        .ok_or_else(|| err(ParseErrorKind::NoSlash(port_proto.to_string())))?;
    let port = parse_port(port).ok_or_else(|| err(ParseErrorKind::BadPort(port.to_string())))?;
    if protocol.is_empty() {
        return Err(err(ParseErrorKind::EmptyProtocol(port_proto.to_string())));
    }
    Ok(Some(ServiceEntry {
        name: name.to_string(),
        port,
        protocol: protocol.to_ascii_lowercase(),
        aliases: fields.map(str::to_string).collect(),
        line,
    }))
}

/// A decimal port number: digits only (no sign, no spaces), at most 65535.
pub(crate) fn parse_port(text: &str) -> Option<u16> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

impl fmt::Display for ServiceEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.name, self.port, self.protocol)?;
        for alias in &self.aliases {
            write!(f, " {alias}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &str = include_str!("../tests/fixtures/debian-services");

    #[test]
    fn debian_file_parses_with_known_entries() {
        let s = Services::parse(DEBIAN).unwrap();
        assert_eq!(s.port_of("sunrpc", Protocol::Tcp), Some(111));
        assert_eq!(s.port_of("sunrpc", Protocol::Udp), Some(111));
        assert_eq!(s.port_of("portmapper", Protocol::Udp), Some(111));
        assert_eq!(s.port_of("ipp", Protocol::Tcp), Some(631));
        assert_eq!(s.port_of("ipp", Protocol::Udp), None);
        assert_eq!(s.name_of(993, Protocol::Tcp), Some("imaps"));
        assert_eq!(s.name_of(636, Protocol::Udp), Some("ldaps"));
        // Aliases with several names on one line.
        assert_eq!(s.port_of("krb5_prop", Protocol::Tcp), Some(754));
        // ddp and sctp entries are kept but are neither tcp nor udp.
        let ddp: Vec<_> = s.entries().iter().filter(|e| e.protocol == "ddp").collect();
        assert_eq!(ddp.len(), 4);
        assert!(ddp.iter().all(|e| e.transport().is_none()));
    }

    #[test]
    fn every_non_comment_line_of_debian_file_is_an_entry() {
        let expected = DEBIAN
            .lines()
            .filter(|l| !l.split('#').next().unwrap_or("").trim().is_empty())
            .count();
        assert_eq!(Services::parse(DEBIAN).unwrap().entries().len(), expected);
    }

    #[test]
    fn comments_aliases_and_odd_spacing() {
        let text = "# header\n\n   \t \n  foo \t 700/TCP   bar\tbaz# trailing\n\
                    qux 701/udp#no space before comment\nlast 702/udp";
        let s = Services::parse(text).unwrap();
        let e = &s.entries()[0];
        assert_eq!(e.name, "foo");
        assert_eq!(e.port, 700);
        assert_eq!(e.protocol, "tcp");
        assert_eq!(e.aliases, ["bar", "baz"]);
        assert_eq!(e.line, 4);
        assert_eq!(s.port_of("baz", Protocol::Tcp), Some(700));
        assert_eq!(s.port_of("qux", Protocol::Udp), Some(701));
        assert_eq!(s.entries()[1].aliases, Vec::<String>::new());
        assert_eq!(s.port_of("last", Protocol::Udp), Some(702));
    }

    #[test]
    fn first_entry_wins_like_getservbyname() {
        let s = Services::parse("a 10/tcp\na 20/tcp\nb 30/tcp a\n").unwrap();
        assert_eq!(s.port_of("a", Protocol::Tcp), Some(10));
    }

    #[test]
    fn errors_carry_line_numbers() {
        let cases = [
            (
                "ok 1/tcp\nlonely\n",
                2,
                ParseErrorKind::MissingPort("lonely".into()),
            ),
            (
                "# c\n\nx 12tcp\n",
                3,
                ParseErrorKind::NoSlash("12tcp".into()),
            ),
            ("x 70000/tcp", 1, ParseErrorKind::BadPort("70000".into())),
            ("x -1/tcp", 1, ParseErrorKind::BadPort("-1".into())),
            ("x /tcp", 1, ParseErrorKind::BadPort("".into())),
            ("x 5/ # c", 1, ParseErrorKind::EmptyProtocol("5/".into())),
        ];
        for (text, line, kind) in cases {
            assert_eq!(
                Services::parse(text),
                Err(ParseError { line, kind }),
                "{text:?}"
            );
        }
        let msg = Services::parse("a 1/tcp\nb 99999/udp")
            .unwrap_err()
            .to_string();
        assert_eq!(msg, "line 2: port \"99999\" is not a number in 0-65535");
    }
}
