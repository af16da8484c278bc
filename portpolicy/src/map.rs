//! `portpolicy map`: a picture of a port range. Pure, no I/O.
//!
//! One character per port, 64 per line; lowercase when free, uppercase
//! when something holds the port: `p` pool, `r` reserved, `w` excluded
//! (well-known or another source), `e` ephemeral, `.` none of these.

use crate::policy::Policy;
use crate::portset::{PortRange, PortSet};
use crate::Protocol;

const PER_LINE: usize = 64;

fn class(policy: &Policy, proto: Protocol, port: u16) -> (char, &'static str) {
    if policy.reservation(port, proto).is_some() {
        ('r', "\x1b[34m")
    } else if policy.pool(proto).contains(port) {
        ('p', "\x1b[32m")
    } else if policy.reasons(port, proto).next().is_some() {
        ('w', "\x1b[31m")
    } else if policy.ephemeral.contains(port) {
        ('e', "\x1b[33m")
    } else {
        ('.', "")
    }
}

/// The picture of `range` for `proto`; `held` are the ports in use.
pub fn render(
    policy: &Policy,
    proto: Protocol,
    range: PortRange,
    held: &PortSet,
    colour: bool,
) -> String {
    let mut out = format!(
        "{proto} ports {range}: p pool, r reserved, w excluded, e ephemeral, . other; \
         UPPERCASE = in use\n"
    );
    let ports: Vec<u16> = (range.first..=range.last).collect();
    for chunk in ports.chunks(PER_LINE) {
        out.push_str(&format!("{:>5} ", chunk[0]));
        for &port in chunk {
            let (c, ansi) = class(policy, proto, port);
            let c = if held.contains(port) {
                if c == '.' {
                    '*'
                } else {
                    c.to_ascii_uppercase()
                }
            } else {
                c
            };
            if colour && !ansi.is_empty() {
                let bold = if c.is_ascii_uppercase() {
                    "\x1b[1m"
                } else {
                    ""
                };
                out.push_str(&format!("{ansi}{bold}{c}\x1b[0m"));
            } else {
                out.push(c);
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::policy::Sources;

    #[test]
    fn classes_and_held() {
        let c = Config::from_files(&[(
            "/c.toml",
            "exclude = [\"601\"]\n[[reservation]]\nname = \"x\"\nport = 602\n",
        )])
        .unwrap_or_default();
        let p = Policy::compute(&c, &Sources::default()).unwrap_or_else(|e| panic!("{e}"));
        let held = PortSet::parse_list("600,601,602").unwrap_or_default();
        let text = render(&p, Protocol::Tcp, PortRange::new(598, 604), &held, false);
        assert_eq!(text.lines().nth(1), Some("  598 ppPWRpp"));
        let coloured = render(&p, Protocol::Tcp, PortRange::new(600, 600), &held, true);
        assert!(coloured.contains("\x1b[32m\x1b[1mP\x1b[0m"));
    }
}
