//! The port rpcbind listens on: service `sunrpc` (aliases `portmapper`,
//! `rpcbind`) in `/etc/services`, looked up per protocol as the C daemon's
//! `getaddrinfo(NULL, "sunrpc", ...)` does, with 111 (RFC 1833 section 3:
//! "the port mapper program ... on port number 111") when the file or the
//! entry is missing. Reads the file (I/O) and parses it with
//! `portpolicy::services`.

use std::path::Path;

use portpolicy::services::Services;
use portpolicy::Protocol;

/// The portmapper's well-known port (RFC 1833 section 3).
pub const PMAPPORT: u16 = 111;

/// The system services database.
pub const SERVICES_PATH: &str = "/etc/services";

/// The names the C daemon tries, in order (`sunrpc`, then `portmapper`),
/// plus Debian's alias `rpcbind`.
const NAMES: [&str; 3] = ["sunrpc", "portmapper", "rpcbind"];

/// The ports for UDP and TCP found in the services text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ports {
    pub udp: u16,
    pub tcp: u16,
}

/// Looks the portmapper up in `text`, 111 for a protocol with no entry.
pub fn ports_from_text(text: &str) -> Result<Ports, portpolicy::services::ParseError> {
    let services = Services::parse(text)?;
    let port = |proto| {
        NAMES
            .iter()
            .find_map(|n| services.port_of(n, proto))
            .unwrap_or(PMAPPORT)
    };
    Ok(Ports {
        udp: port(Protocol::Udp),
        tcp: port(Protocol::Tcp),
    })
}

/// The ports from the services file at `path`; 111 when it cannot be read
/// or parsed (logged as a warning).
pub fn ports(path: &Path) -> Ports {
    let default = Ports {
        udp: PMAPPORT,
        tcp: PMAPPORT,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!("cannot read {}: {e}; using port {PMAPPORT}", path.display());
            return default;
        }
    };
    ports_from_text(&text).unwrap_or_else(|e| {
        tracing::warn!(
            "cannot parse {}: {e}; using port {PMAPPORT}",
            path.display()
        );
        default
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports_of(text: &str) -> Ports {
        match ports_from_text(text) {
            Ok(p) => p,
            Err(e) => panic!("parse failed: {e}"),
        }
    }

    #[test]
    fn debian_entries() {
        let text = "tcpmux 1/tcp\nsunrpc\t\t111/tcp\t\tportmapper\t# RPC 4.0\n\
                    sunrpc\t\t111/udp\t\tportmapper\n";
        assert_eq!(ports_of(text), Ports { udp: 111, tcp: 111 });
    }

    #[test]
    fn moved_port_per_protocol() {
        let text = "sunrpc 1111/tcp portmapper\nsunrpc 2222/udp portmapper\n";
        assert_eq!(
            ports_of(text),
            Ports {
                udp: 2222,
                tcp: 1111
            }
        );
    }

    #[test]
    fn aliases_are_found() {
        let text = "pmap 3333/udp portmapper\nfoo 4444/tcp rpcbind\n";
        assert_eq!(
            ports_of(text),
            Ports {
                udp: 3333,
                tcp: 4444
            }
        );
    }

    #[test]
    fn sunrpc_wins_over_aliases() {
        let text = "other 5555/udp portmapper\nsunrpc 6666/udp\n";
        assert_eq!(ports_of(text).udp, 6666);
    }

    #[test]
    fn missing_entry_means_111() {
        assert_eq!(ports_of("ssh 22/tcp\n"), Ports { udp: 111, tcp: 111 });
    }

    #[test]
    fn unreadable_file_means_111() {
        let p = ports(Path::new("/nonexistent/services"));
        assert_eq!(p, Ports { udp: 111, tcp: 111 });
    }
}
