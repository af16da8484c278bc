//! Where log lines go: stderr in the foreground (`-f`); in the background
//! the systemd journal (tracing-journald), else syslog datagrams on
//! `/dev/log` (RFC 3164 framing, ident `rpcbind`, facility daemon, or auth
//! for the `-l` call log as in the C daemon), else stderr. Level INFO, or
//! DEBUG with `-d`; `RUST_LOG` overrides. Does I/O (the log sinks).

use std::fmt::Write as _;
use std::os::unix::net::UnixDatagram;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use crate::calllog;

/// The syslog socket.
const DEV_LOG: &str = "/dev/log";

/// Where the logs went (reported once logging is up).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sink {
    Stderr,
    Journald,
    Syslog,
}

/// Installs the global subscriber. Call once, before any thread starts.
pub fn init(foreground: bool, debug: bool) -> Sink {
    let filter = || level_filter(std::env::var("RUST_LOG").ok().as_deref(), debug);
    let registry = tracing_subscriber::registry();
    if !foreground {
        if let Ok(journald) = tracing_journald::layer() {
            let journald = journald.with_syslog_identifier("rpcbind".to_owned());
            if registry
                .with(journald.with_filter(filter()))
                .try_init()
                .is_ok()
            {
                return Sink::Journald;
            }
            return Sink::Stderr;
        }
        if let Ok(syslog) = SyslogLayer::connect() {
            let _ = registry.with(syslog.with_filter(filter())).try_init();
            return Sink::Syslog;
        }
    }
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time();
    let _ = registry.with(stderr.with_filter(filter())).try_init();
    Sink::Stderr
}

/// `RUST_LOG` as `level` or `target=level,...` directives (tracing's
/// `Targets` syntax: plain prefixes, no regular expressions, which keeps
/// a regex engine out of the daemon), else INFO, or DEBUG with `-d`. An
/// unreadable `RUST_LOG` is ignored, as a missing one.
fn level_filter(rust_log: Option<&str>, debug: bool) -> Targets {
    let default = if debug { Level::DEBUG } else { Level::INFO };
    rust_log
        .and_then(|s| s.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(default))
}

/// Sends each event as one RFC 3164 datagram to `/dev/log`.
struct SyslogLayer {
    socket: Mutex<UnixDatagram>,
}

impl SyslogLayer {
    fn connect() -> std::io::Result<Self> {
        let socket = UnixDatagram::unbound()?;
        socket.connect(DEV_LOG)?;
        socket.set_nonblocking(true)?;
        Ok(SyslogLayer {
            socket: Mutex::new(socket),
        })
    }
}

/// syslog facilities (RFC 3164 section 4.1.1).
const LOG_DAEMON: u8 = 3;
const LOG_AUTH: u8 = 4;

fn severity(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// The `PRI` and text of one syslog datagram.
fn syslog_frame(target: &str, level: &Level, pid: u32, text: &str) -> String {
    let facility = if target == calllog::TARGET {
        LOG_AUTH
    } else {
        LOG_DAEMON
    };
    let pri = u16::from(facility) * 8 + u16::from(severity(level));
    format!("<{pri}>rpcbind[{pid}]: {text}")
}

/// Collects an event's message and fields into one line.
#[derive(Default)]
struct Line(String);

impl Visit for Line {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.insert_str(0, value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.insert_str(0, &format!("{value:?}"));
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

impl<S: Subscriber> Layer<S> for SyslogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut line = Line::default();
        event.record(&mut line);
        let meta = event.metadata();
        // The pid is read per line: the layer is set up before the fork
        // into the background.
        let frame = syslog_frame(meta.target(), meta.level(), std::process::id(), &line.0);
        if let Ok(socket) = self.socket.lock() {
            // A full or vanished syslog loses the line; it must never
            // block or stop the daemon.
            let _ = socket.send(frame.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_log_overrides_the_level() {
        let info = level_filter(None, false);
        assert!(info.would_enable("rpcbind::server", &Level::INFO));
        assert!(!info.would_enable("rpcbind::server", &Level::DEBUG));
        assert!(level_filter(None, true).would_enable("rpcbind::server", &Level::DEBUG));
        let trace = level_filter(Some("trace"), false);
        assert!(trace.would_enable("rpcbind::server", &Level::TRACE));
        let one = level_filter(Some("warn,rpcbind::alloc=debug"), false);
        assert!(one.would_enable("rpcbind::alloc::dispatch", &Level::DEBUG));
        assert!(!one.would_enable("rpcbind::server", &Level::INFO));
        let bad = level_filter(Some("=:nonsense="), true);
        assert!(bad.would_enable("rpcbind::server", &Level::DEBUG));
    }

    #[test]
    fn frames_follow_rfc3164_with_c_facilities() {
        assert_eq!(
            syslog_frame("rpcbind::server", &Level::ERROR, 42, "cannot bind"),
            "<27>rpcbind[42]: cannot bind"
        );
        assert_eq!(
            syslog_frame(
                calllog::TARGET,
                &Level::INFO,
                7,
                "connect from local to dump()"
            ),
            "<38>rpcbind[7]: connect from local to dump()"
        );
    }
}
