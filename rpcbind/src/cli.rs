//! The command line of rpcbind 1.2.x (`rpcbind [-adfil] [-h ADDR]...`),
//! parsed with clap before any thread starts. No I/O except what clap
//! prints for `--help`, `--version` and usage errors.
//!
//! `-h` takes an address, as in the C daemon, so clap's automatic `-h`
//! help flag is disabled and help is `--help` only. The C daemon exits 1
//! on an unknown option; clap exits 2, so [`parse`] maps usage errors to 1.
//! Debian's `-w` (warm start), `-r` (remote calls) and `-s` (run as
//! `daemon`, see `privdrop`) are accepted; the C
//! daemon has no `-L`, and neither do we.

use std::ffi::OsString;

use clap::error::ErrorKind;
use clap::{ArgAction, Parser};

/// The usage line, shaped like the C daemon's `usage: rpcbind [-adhilswfr]`.
const USAGE: &str = "rpcbind [-adfilrsw] [-h ADDR]...";

/// The options of rpcbind 1.2.x that this daemon implements.
#[derive(Debug, Clone, Default, PartialEq, Eq, Parser)]
#[command(
    name = "rpcbind",
    version,
    about = "Universal addresses to RPC program number mapper (ONC RPC portmapper)",
    override_usage = USAGE,
    disable_help_flag = true,
    disable_version_flag = true,
)]
pub struct Cli {
    /// When debugging (-d), abort on internal errors.
    #[arg(short = 'a')]
    pub abort: bool,

    /// Debug mode: log more (each call and each decision).
    #[arg(short = 'd')]
    pub debug: bool,

    /// Stay in the foreground and log to stderr (do not fork).
    #[arg(short = 'f')]
    pub foreground: bool,

    /// Answer UDP only on this address (repeatable); 127.0.0.1 and ::1 are
    /// added. TCP and the local socket are unaffected.
    #[arg(short = 'h', value_name = "ADDR", action = ArgAction::Append)]
    pub hosts: Vec<String>,

    /// Insecure mode: accept SET and UNSET from any host.
    #[arg(short = 'i')]
    pub insecure: bool,

    /// Log every call in one line (caller, procedure, program).
    #[arg(short = 'l')]
    pub log_calls: bool,

    /// Run as user `daemon` instead of `_rpc` once the sockets are bound
    /// (as rpcbind 1.2.x's `-s`; without it Debian's build changes to
    /// `_rpc`, and so do we).
    #[arg(short = 's')]
    pub run_as_daemon: bool,

    /// Forward remote calls (CALLIT, INDIRECT, BCAST) as Debian's `-r`.
    #[arg(short = 'r')]
    pub remote_calls: bool,

    /// Warm start: restore the registrations saved in /run/rpcbind, and
    /// keep every change durable there before answering it.
    #[arg(short = 'w')]
    pub warmstart: bool,

    /// A UDP reply to a non-local client is at most this many times the
    /// size of its request; larger ones become SYSTEM_ERR (0: no cap).
    #[arg(long = "udp-reply-factor", value_name = "N", default_value_t = 1)]
    pub udp_reply_factor: u32,

    /// Remove a registration whose port nobody has bound at two checks
    /// this many seconds apart (0, the default: never).
    #[arg(long = "reap-interval", value_name = "SECS", default_value_t = 0)]
    pub reap_interval: u64,

    /// Allocation service: read this portpolicy config file only (instead
    /// of /etc/portpolicy.toml and /etc/portpolicy.d).
    #[arg(long = "policy-config", value_name = "PATH")]
    pub policy_config: Option<std::path::PathBuf>,

    /// Allocation service: where its leases and reservations are saved
    /// (default /var/lib/rpcbind/portalloc.state).
    #[arg(long = "alloc-state", value_name = "PATH")]
    pub alloc_state: Option<std::path::PathBuf>,

    /// Allocation service: check leases every MS milliseconds (default
    /// 2000); a lease whose port nobody has bound at two checks ends.
    #[arg(long = "alloc-sweep", value_name = "MS", value_parser = clap::value_parser!(u64).range(10..))]
    pub alloc_sweep: Option<u64>,

    /// Print this help and exit.
    #[arg(long = "help", action = ArgAction::Help)]
    help: Option<bool>,

    /// Print the version and exit.
    #[arg(long = "version", action = ArgAction::Version)]
    version: Option<bool>,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Parsed {
    /// Run the daemon with these options.
    Run(Cli),
    /// Exit now with this status; clap has already printed what it had to.
    Exit(i32),
}

/// Parses `args` (including `argv[0]`). `--help` and `--version` print to
/// stdout and exit 0; anything clap refuses prints the error and usage to
/// stderr and exits 1, as the C daemon does.
pub fn parse<I, T>(args: I) -> Parsed
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    match Cli::try_parse_from(args) {
        Ok(cli) => Parsed::Run(cli),
        Err(e) => {
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                // Printing can only fail if stdout is closed; the exit
                // status still tells the caller what happened.
                let _ = e.print();
                return Parsed::Exit(0);
            }
            eprint!("{}", usage_error(&e));
            Parsed::Exit(1)
        }
    }
}

/// clap's message for a refused command line, always with the usage line
/// (clap leaves it out of some errors, such as `-h` without an address).
fn usage_error(e: &clap::Error) -> String {
    let mut msg = e.render().to_string();
    if msg.contains("Usage:") {
        return msg;
    }
    let usage = format!("\n\nUsage: {USAGE}");
    match msg.find("\n\nFor more information") {
        Some(at) => msg.insert_str(at, &usage),
        None => msg.push_str(&(usage + "\n")),
    }
    msg
}

impl Cli {
    /// What the allocation service takes from the command line.
    pub fn alloc_options(&self) -> crate::alloc::Options {
        crate::alloc::Options {
            policy_config: self.policy_config.clone(),
            state_path: self.alloc_state.clone(),
            sweep: self.alloc_sweep.map(std::time::Duration::from_millis),
        }
    }

    /// `-a` only counts with `-d`, as in the C daemon.
    pub fn abort_on_error(&self) -> bool {
        self.abort && self.debug
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Cli {
        match Cli::try_parse_from(args) {
            Ok(c) => c,
            Err(e) => panic!("{args:?} refused: {e}"),
        }
    }

    #[test]
    fn flags_combine_like_getopt() {
        let c = run(&["rpcbind", "-fil", "-d"]);
        assert!(c.foreground && c.insecure && c.log_calls && c.debug);
        assert!(!c.abort && c.hosts.is_empty());
    }

    #[test]
    fn h_takes_an_address_and_repeats() {
        let c = run(&["rpcbind", "-h", "192.0.2.1", "-h2001:db8::1", "-f"]);
        assert_eq!(c.hosts, ["192.0.2.1", "2001:db8::1"]);
        assert!(c.foreground);
    }

    #[test]
    fn h_without_argument_is_an_error() {
        let e = Cli::try_parse_from(["rpcbind", "-h"]).unwrap_err();
        assert_ne!(e.kind(), ErrorKind::DisplayHelp);
        assert!(matches!(parse(["rpcbind", "-h"]), Parsed::Exit(1)));
    }

    #[test]
    fn later_issue_flags_are_refused() {
        for flag in ["-L", "-x", "-V"] {
            let e = Cli::try_parse_from(["rpcbind", flag]).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::UnknownArgument, "{flag}");
        }
    }

    #[test]
    fn s_runs_as_daemon() {
        assert!(run(&["rpcbind", "-sf"]).run_as_daemon);
        assert!(!run(&["rpcbind", "-f"]).run_as_daemon);
    }

    #[test]
    fn warm_start_remote_calls_and_the_reply_cap() {
        let c = run(&["rpcbind", "-wr", "-f"]);
        assert!(c.warmstart && c.remote_calls && c.foreground);
        assert_eq!(c.udp_reply_factor, 1);
        let c = run(&["rpcbind", "--udp-reply-factor", "0"]);
        assert!(!c.warmstart && !c.remote_calls);
        assert_eq!(c.udp_reply_factor, 0);
        assert_eq!(c.reap_interval, 0);
        assert_eq!(run(&["rpcbind", "--reap-interval", "30"]).reap_interval, 30);
    }

    #[test]
    fn abort_needs_debug() {
        assert!(!run(&["rpcbind", "-a"]).abort_on_error());
        assert!(run(&["rpcbind", "-ad"]).abort_on_error());
    }

    #[test]
    fn help_is_long_only() {
        let e = Cli::try_parse_from(["rpcbind", "--help"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::DisplayHelp);
        let e = Cli::try_parse_from(["rpcbind", "--version"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::DisplayVersion);
    }
}
