//! `/etc/portreserve/*`: the files portreserve(1) reads. Pure, no I/O.
//!
//! Each file is named after the service that will release the ports
//! (`portrelease NAME`); each non-comment line names what to reserve:
//! a service name from /etc/services (`ipp`), a `port/protocol`
//! (`631/tcp`), or a bare port (both protocols). Names are resolved
//! against /etc/services when the policy is computed.

use crate::Protocol;

/// What one portreserve line asks for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum PortreserveItem {
    /// A service name, resolved through /etc/services.
    Service(String),
    /// A port, for one protocol or (None) both.
    Port(u16, Option<Protocol>),
}

/// One line of a portreserve file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PortreserveEntry {
    /// What is reserved.
    pub item: PortreserveItem,
    /// 1-based line number.
    pub line: usize,
}

/// A line that is neither a service name nor a port.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// Parse one portreserve file.
pub fn parse(text: &str) -> Result<Vec<PortreserveEntry>, ParseError> {
    let mut out = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let content = raw.split('#').next().unwrap_or("").trim();
        if content.is_empty() {
            continue;
        }
        let item = parse_item(content).map_err(|reason| ParseError { line, reason })?;
        out.push(PortreserveEntry { item, line });
    }
    Ok(out)
}

fn parse_item(text: &str) -> Result<PortreserveItem, String> {
    if text.split_ascii_whitespace().count() > 1 {
        return Err(format!("{text:?}: one service or port per line"));
    }
    let (port, proto) = match text.split_once('/') {
        Some((p, proto)) => (
            p,
            Some(proto.parse::<Protocol>().map_err(|e| e.to_string())?),
        ),
        None => (text, None),
    };
    if port.bytes().all(|b| b.is_ascii_digit()) {
        let port = crate::services::parse_port(port)
            .ok_or_else(|| format!("{port:?} is not a port number"))?;
        return Ok(PortreserveItem::Port(port, proto));
    }
    if proto.is_some() {
        return Err(format!("{text:?}: expected PORT/PROTOCOL"));
    }
    Ok(PortreserveItem::Service(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let e = parse("# cups\nipp\n 631/tcp \n873\n").unwrap();
        assert_eq!(e[0].item, PortreserveItem::Service("ipp".into()));
        assert_eq!(e[1].item, PortreserveItem::Port(631, Some(Protocol::Tcp)));
        assert_eq!(e[2].item, PortreserveItem::Port(873, None));
        assert_eq!(e[2].line, 4);
        assert_eq!(parse("x\n631/sctp").unwrap_err().line, 2);
        assert!(parse("99999").is_err());
        assert!(parse("ipp rsync").is_err());
    }
}
