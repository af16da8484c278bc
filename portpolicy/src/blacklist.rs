//! `/etc/bindresvport.blacklist`: parser and the block `apply` manages.
//!
//! Pure, no I/O. The format is the one glibc and libtirpc read in
//! `bindresvport()`: one port per line, `#` starts a comment, blank lines
//! are ignored. libtirpc reads numbers with `strtoul(.., 0)`, so `0x` is
//! hexadecimal and a leading zero means octal; libtirpc silently skips a
//! line it cannot read. This parser refuses such lines with the line
//! number instead (a typo would otherwise leave a port unprotected), and
//! refuses a leading zero because `0631` means port 409 to libtirpc.
//!
//! `apply` owns the lines between [`BEGIN_MARKER`] and [`END_MARKER`]; the
//! ports there are ours and are never read back as the admin's exclusions.

use crate::portset::PortSet;

/// First line of the block `portpolicy apply` writes.
pub const BEGIN_MARKER: &str =
    "# BEGIN portpolicy managed block: written by `portpolicy apply`, do not edit";
/// Last line of the managed block.
pub const END_MARKER: &str = "# END portpolicy managed block";

/// Why a blacklist line could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// One port named by the blacklist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct BlacklistEntry {
    /// The port.
    pub port: u16,
    /// The 1-based line number.
    pub line: usize,
}

/// A parsed blacklist: the admin's entries and the managed block's, apart.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Blacklist {
    /// Ports outside the managed block: the admin's (or the distribution's).
    pub admin: Vec<BlacklistEntry>,
    /// Ports inside the managed block: written by `apply`.
    pub managed: Vec<BlacklistEntry>,
}

impl Blacklist {
    /// Parse the text of a bindresvport.blacklist file.
    pub fn parse(text: &str) -> Result<Blacklist, ParseError> {
        let mut out = Blacklist::default();
        let mut in_block = false;
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let trimmed = raw.trim();
            if trimmed == BEGIN_MARKER {
                in_block = true;
                continue;
            }
            if trimmed == END_MARKER {
                in_block = false;
                continue;
            }
            let content = raw.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            let port = parse_number(content).map_err(|reason| ParseError { line, reason })?;
            let entry = BlacklistEntry { port, line };
            if in_block {
                out.managed.push(entry);
            } else {
                out.admin.push(entry);
            }
        }
        if in_block {
            return Err(ParseError {
                line: text.lines().count(),
                reason: "managed block has no end marker".to_string(),
            });
        }
        Ok(out)
    }

    /// The admin's ports as a set.
    pub fn admin_ports(&self) -> PortSet {
        let mut s = PortSet::new();
        for e in &self.admin {
            s.insert(e.port);
        }
        s
    }
}

fn parse_number(text: &str) -> Result<u16, String> {
    let value = if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        u32::from_str_radix(hex, 16).ok()
    } else if text.len() > 1 && text.starts_with('0') {
        return Err(format!(
            "{text:?} has a leading zero: libc reads it as octal; write the port in decimal"
        ));
    } else if text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse::<u32>().ok()
    } else {
        None
    };
    value
        .and_then(|v| u16::try_from(v).ok())
        .ok_or_else(|| format!("{text:?} is not a port number (one port per line)"))
}

/// The file's text with the managed block replaced by one listing `ports`
/// (one per line); the block is appended if absent, removed if `ports` is
/// empty. Every line outside the block is kept as it was.
pub fn with_managed_block(text: &str, ports: &PortSet) -> String {
    let mut out = String::new();
    let mut in_block = false;
    let mut placed = false;
    for raw in text.lines() {
        match raw.trim() {
            t if t == BEGIN_MARKER => {
                in_block = true;
                if !placed {
                    push_block(&mut out, ports);
                    placed = true;
                }
            }
            t if t == END_MARKER => in_block = false,
            _ if in_block => {}
            _ => {
                out.push_str(raw);
                out.push('\n');
            }
        }
    }
    if !placed {
        push_block(&mut out, ports);
    }
    out
}

fn push_block(out: &mut String, ports: &PortSet) {
    if ports.is_empty() {
        return;
    }
    out.push_str(BEGIN_MARKER);
    out.push('\n');
    for p in ports.iter() {
        out.push_str(&p.to_string());
        out.push('\n');
    }
    out.push_str(END_MARKER);
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &str = include_str!("../tests/fixtures/debian-bindresvport.blacklist");

    #[test]
    fn debian_file() {
        let b = Blacklist::parse(DEBIAN).unwrap();
        let ports: Vec<u16> = b.admin.iter().map(|e| e.port).collect();
        assert_eq!(ports, [631, 636, 655, 774, 783, 873, 921, 993, 995]);
        assert_eq!(b.admin[0].line, 7);
        assert!(b.managed.is_empty());
    }

    #[test]
    fn odd_spacing_hex_and_errors() {
        let b = Blacklist::parse("  \t700  # x\n0x2bc\n\n#c\n").unwrap();
        assert_eq!(b.admin_ports().to_string(), "700");
        assert_eq!(Blacklist::parse("700\n70x\n").unwrap_err().line, 2);
        assert!(Blacklist::parse("0631")
            .unwrap_err()
            .reason
            .contains("octal"));
        assert!(Blacklist::parse("70000").is_err());
        assert!(Blacklist::parse("631 636").is_err());
    }

    #[test]
    fn managed_block_round_trip() {
        let ports = PortSet::parse_list("700,701").unwrap();
        let text = with_managed_block(DEBIAN, &ports);
        assert!(text.starts_with(DEBIAN));
        let b = Blacklist::parse(&text).unwrap();
        assert_eq!(b.admin.len(), 9);
        assert_eq!(
            b.managed.iter().map(|e| e.port).collect::<Vec<_>>(),
            [700, 701]
        );
        // Replacing is idempotent and keeps the admin's lines.
        assert_eq!(with_managed_block(&text, &ports), text);
        let fewer = with_managed_block(&text, &PortSet::parse_list("702").unwrap());
        assert!(fewer.starts_with(DEBIAN) && fewer.contains("\n702\n") && !fewer.contains("700"));
        assert_eq!(with_managed_block(&text, &PortSet::new()), DEBIAN);
    }
}
