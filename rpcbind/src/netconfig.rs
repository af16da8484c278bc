//! Which IP transports to serve, from `/etc/netconfig` (netconfig(5)), as
//! the C daemon's `main` does: every entry with the `v` (visible) flag,
//! in file order, whose semantics, family and protocol make it one of
//! `udp`, `tcp`, `udp6`, `tcp6`. Admins remove `udp6`/`tcp6` there to keep
//! rpcbind off IPv6. The local transport is served whatever the file says
//! (C sets it up first, by name). Reads the file (I/O) and parses it.

use std::path::Path;

use proto::engine::Transport;

/// The network configuration database.
pub const NETCONFIG_PATH: &str = "/etc/netconfig";

/// What Debian's `/etc/netconfig` makes visible, in its order.
pub const DEFAULT_IP_TRANSPORTS: [Transport; 4] = [
    Transport::Udp,
    Transport::Tcp,
    Transport::Udp6,
    Transport::Tcp6,
];

/// The visible IP transports of a netconfig text, in file order, each once.
pub fn ip_transports_from_text(text: &str) -> Vec<Transport> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let f: Vec<&str> = line.split_whitespace().collect();
        let [_netid, semantics, flags, family, proto, ..] = f[..] else {
            continue;
        };
        if !flags.contains('v') {
            continue;
        }
        let transport = match (semantics, family, proto) {
            ("tpi_clts", "inet", "udp") => Transport::Udp,
            ("tpi_cots_ord" | "tpi_cots", "inet", "tcp") => Transport::Tcp,
            ("tpi_clts", "inet6", "udp") => Transport::Udp6,
            ("tpi_cots_ord" | "tpi_cots", "inet6", "tcp") => Transport::Tcp6,
            _ => continue,
        };
        if !out.contains(&transport) {
            out.push(transport);
        }
    }
    out
}

/// The IP transports to serve; Debian's default when the file cannot be
/// read (the C daemon exits then; a missing file is logged instead).
pub fn ip_transports(path: &Path) -> Vec<Transport> {
    match std::fs::read_to_string(path) {
        Ok(text) => ip_transports_from_text(&text),
        Err(e) => {
            tracing::warn!(
                "cannot read {}: {e}; serving udp, tcp, udp6, tcp6",
                path.display()
            );
            DEFAULT_IP_TRANSPORTS.to_vec()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &str = "\
# The network configuration file.
udp        tpi_clts      v     inet     udp     -       -
tcp        tpi_cots_ord  v     inet     tcp     -       -
udp6       tpi_clts      v     inet6    udp     -       -
tcp6       tpi_cots_ord  v     inet6    tcp     -       -
rawip      tpi_raw       -     inet      -      -       -
local      tpi_cots_ord  -     loopback  -      -       -
unix       tpi_cots_ord  -     loopback  -      -       -
";

    #[test]
    fn debian_file_gives_the_four_ip_transports_in_order() {
        assert_eq!(ip_transports_from_text(DEBIAN), DEFAULT_IP_TRANSPORTS);
    }

    #[test]
    fn commented_out_ipv6_entries_are_not_served() {
        let text = DEBIAN.replace("udp6 ", "#udp6 ").replace("tcp6 ", "#tcp6 ");
        assert_eq!(
            ip_transports_from_text(&text),
            [Transport::Udp, Transport::Tcp]
        );
    }

    #[test]
    fn file_order_and_visibility_count() {
        let text = "tcp6 tpi_cots_ord v inet6 tcp - -\nudp tpi_clts - inet udp - -\n\
                    udp tpi_clts v inet udp - -\n";
        assert_eq!(
            ip_transports_from_text(text),
            [Transport::Tcp6, Transport::Udp]
        );
    }

    #[test]
    fn unreadable_file_means_debian_default() {
        assert_eq!(
            ip_transports(Path::new("/nonexistent/netconfig")),
            DEFAULT_IP_TRANSPORTS
        );
    }
}
