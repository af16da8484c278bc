//! The `-l` call log: one line per call to the portmapper, in the words of
//! the C daemon's `logit()` (`security.c`): `connect from ADDR to
//! PROC(PROGRAM)TEXT`, where PROC is the procedure name, PROGRAM the
//! program the call is about (SET, UNSET, GETPORT/GETADDR, GETVERSADDR,
//! CALLIT, INDIRECT; named from `/etc/rpc` when possible) and TEXT is
//! ` declined (non-loopback sender)` when a SET or UNSET was refused. The
//! C daemon forks a child per line to call syslog; this logs through
//! `tracing` in the serving task. No I/O besides reading `/etc/rpc` once.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use proto::engine::{Outcome, RequestContext};
use proto::rpc::{CallHeader, Program};
use proto::xdr::XdrReader;

/// The `tracing` target of call-log lines (syslog facility auth, as C's
/// `PORTMAP_LOG_FACILITY`).
pub const TARGET: &str = "rpcbind::calllog";

/// The system's RPC program names.
pub const RPC_PATH: &str = "/etc/rpc";

/// C's `procmap`: RPCBPROC numbers (PMAP v2 shares 0-5).
const PROC_NAMES: [&str; 13] = [
    "null",
    "set",
    "unset",
    "getport/addr",
    "dump",
    "callit",
    "gettime",
    "uaddr2taddr",
    "taddr2uaddr",
    "getversaddr",
    "indirect",
    "getaddrlist",
    "getstat",
];

/// Procedures whose first argument word is the program the call is about.
fn names_a_program(version: u32, procedure: u32) -> bool {
    match version {
        2 => matches!(procedure, 1 | 2 | 3 | 5),
        _ => matches!(procedure, 1 | 2 | 3 | 5 | 9 | 10),
    }
}

/// Program numbers to names, from `/etc/rpc`.
#[derive(Debug, Default)]
pub struct CallLog {
    names: HashMap<u32, String>,
}

impl CallLog {
    /// Reads `/etc/rpc` (or whatever `path` says); a missing file only
    /// means programs are logged by number.
    pub fn load(path: &Path) -> Self {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        CallLog {
            names: parse_rpc_names(&text),
        }
    }

    /// The log line for one request and the engine's answer, or `None`
    /// when the request was not a call to the portmapper the C daemon
    /// would log.
    pub fn line(&self, request: &[u8], ctx: &RequestContext, outcome: &Outcome) -> Option<String> {
        let mut r = XdrReader::new(request);
        let header = CallHeader::decode(&mut r).ok()?;
        if header.program != Program::PORTMAP || !(2..=4).contains(&header.version.0) {
            return None;
        }
        let procedure = header.procedure.0;
        let program = if names_a_program(header.version.0, procedure) {
            r.u32().unwrap_or(0)
        } else {
            0
        };
        let from = ctx
            .peer
            .map_or_else(|| "local".to_owned(), |p| p.ip().to_string());
        let mut line = format!("connect from {from} to ");
        match PROC_NAMES.get(procedure as usize) {
            Some(name) => line.push_str(name),
            None => {
                let _ = write!(line, "{procedure}");
            }
        }
        line.push('(');
        if program != 0 {
            match self.names.get(&program) {
                Some(name) => line.push_str(name),
                None => {
                    let _ = write!(line, "{program}");
                }
            }
        }
        line.push(')');
        if matches!(procedure, 1 | 2) && is_too_weak(outcome) {
            line.push_str(" declined (non-loopback sender)");
        }
        Some(line)
    }
}

/// Whether the reply is MSG_DENIED / AUTH_ERROR / AUTH_TOOWEAK, what
/// `svcerr_weakauth` sends when SET or UNSET is refused (RFC 5531
/// section 9: `reply_stat` 1, `reject_stat` 1, `auth_stat` 5).
fn is_too_weak(outcome: &Outcome) -> bool {
    let Outcome::Reply(reply) = outcome else {
        return false;
    };
    let mut r = XdrReader::new(reply);
    let words: Vec<u32> = (0..5).map_while(|_| r.u32().ok()).collect();
    words.get(1..5) == Some(&[1, 1, 1, 5][..])
}

/// `/etc/rpc` lines: `name number aliases...`, `#` comments.
fn parse_rpc_names(text: &str) -> HashMap<u32, String> {
    let mut names = HashMap::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut fields = line.split_whitespace();
        if let (Some(name), Some(number)) = (fields.next(), fields.next()) {
            if let Ok(n) = number.parse::<u32>() {
                names.entry(n).or_insert_with(|| name.to_owned());
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::engine::Transport;

    fn call(version: u32, procedure: u32, args: &[u32]) -> Vec<u8> {
        let mut words = vec![0x1234, 0, 2, 100_000, version, procedure, 0, 0, 0, 0];
        words.extend_from_slice(args);
        words.iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    fn ctx(peer: Option<&str>) -> RequestContext {
        RequestContext {
            transport: if peer.is_some() {
                Transport::Udp
            } else {
                Transport::Local
            },
            peer: peer.map(|p| p.parse().unwrap()),
            local: None,
            peer_uid: None,
        }
    }

    fn log() -> CallLog {
        CallLog {
            names: parse_rpc_names("portmapper 100000 portmap sunrpc\nnfs 100003 nfsprog # c\n"),
        }
    }

    #[test]
    fn getport_names_the_program_asked_about() {
        let line = log().line(
            &call(2, 3, &[100_003, 3, 17, 0]),
            &ctx(Some("127.0.0.1:700")),
            &Outcome::NoReply,
        );
        assert_eq!(
            line.as_deref(),
            Some("connect from 127.0.0.1 to getport/addr(nfs)")
        );
    }

    #[test]
    fn dump_from_local_has_no_program() {
        let line = log().line(&call(4, 4, &[]), &ctx(None), &Outcome::NoReply);
        assert_eq!(line.as_deref(), Some("connect from local to dump()"));
    }

    #[test]
    fn refused_set_is_marked_declined() {
        let denied: Vec<u8> = [0x1234u32, 1, 1, 1, 5]
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .collect();
        let line = log().line(
            &call(3, 1, &[400_000, 1]),
            &ctx(Some("192.0.2.9:1000")),
            &Outcome::Reply(denied),
        );
        assert_eq!(
            line.as_deref(),
            Some("connect from 192.0.2.9 to set(400000) declined (non-loopback sender)")
        );
    }

    #[test]
    fn other_programs_and_garbage_are_not_logged() {
        let mut other = call(2, 0, &[]);
        other[15] = 1; // another program
        assert!(log().line(&other, &ctx(None), &Outcome::NoReply).is_none());
        assert!(log().line(b"junk", &ctx(None), &Outcome::NoReply).is_none());
    }

    #[test]
    fn unknown_procedure_is_numbered() {
        let line = log().line(&call(4, 99, &[]), &ctx(None), &Outcome::NoReply);
        assert_eq!(line.as_deref(), Some("connect from local to 99()"));
    }
}
