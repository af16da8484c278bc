//! The command line of rpcbind 1.2.x (`rpcbind [-adfil] [-h ADDR]...`),
//! parsed with lexopt (getopt-style: clustered flags, `-h ADDR` or
//! `-hADDR`, `--long VALUE` or `--long=VALUE`) before any thread starts.
//! No I/O except what [`parse`] prints for `--help`, `--version` and usage
//! errors.
//!
//! lexopt rather than clap: the daemon's whole command line is a dozen
//! options, and clap's code was ~230 kB of the daemon's text, which is
//! resident memory (issue 8 compares peak RSS with the C daemon).
//! `-h` takes an address, as in the C daemon, so help is `--help` only.
//! The C daemon exits 1 on an unknown option, and so does [`parse`].
//! Debian's `-w` (warm start), `-r` (remote calls) and `-s` (run as
//! `daemon`, see `privdrop`) are accepted; the C daemon has no `-L`, and
//! neither do we.

use std::ffi::OsString;
use std::path::PathBuf;

use lexopt::prelude::*;

/// The usage line, shaped like the C daemon's `usage: rpcbind [-adhilswfr]`.
const USAGE: &str = "rpcbind [-adfilrsw] [-h ADDR]...";

/// `--help`.
const HELP: &str = "\
Universal addresses to RPC program number mapper (ONC RPC portmapper)

Usage: rpcbind [-adfilrsw] [-h ADDR]...

Options:
  -a                       When debugging (-d), abort on internal errors
  -d                       Debug mode: log more (each call and each decision)
  -f                       Stay in the foreground and log to stderr (do not fork)
  -h <ADDR>                Answer UDP only on this address (repeatable); 127.0.0.1
                           and ::1 are added. TCP and the local socket are unaffected
  -i                       Insecure mode: accept SET and UNSET from any host
  -l                       Log every call in one line (caller, procedure, program)
  -s                       Run as user `daemon` instead of `_rpc` once the sockets
                           are bound
  -r                       Forward remote calls (CALLIT, INDIRECT, BCAST)
  -w                       Warm start: restore the registrations saved in
                           /run/rpcbind, and keep every change durable there
                           before answering it
      --udp-reply-factor <N>
                           A UDP reply to a non-local client is at most N times
                           the size of its request; larger ones become SYSTEM_ERR
                           (0: no cap) [default: 1]
      --reap-interval <SECS>
                           Remove a registration whose port nobody has bound at
                           two checks SECS seconds apart (0: never) [default: 0]
      --policy-config <PATH>
                           Allocation service: read this portpolicy config file
                           only (instead of /etc/portpolicy.toml and
                           /etc/portpolicy.d)
      --alloc-state <PATH> Allocation service: where its leases and reservations
                           are saved (default /var/lib/rpcbind/portalloc.state)
      --alloc-sweep <MS>   Allocation service: check leases every MS
                           milliseconds (at least 10; default 2000)
      --help               Print this help and exit
      --version            Print the version and exit
";

/// The options of rpcbind 1.2.x that this daemon implements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cli {
    /// `-a`: when debugging (-d), abort on internal errors.
    pub abort: bool,
    /// `-d`: log more (each call and each decision).
    pub debug: bool,
    /// `-f`: stay in the foreground and log to stderr.
    pub foreground: bool,
    /// `-h ADDR` (repeatable): answer UDP only on these addresses.
    pub hosts: Vec<String>,
    /// `-i`: accept SET and UNSET from any host.
    pub insecure: bool,
    /// `-l`: log every call in one line.
    pub log_calls: bool,
    /// `-s`: run as user `daemon` instead of `_rpc` (as rpcbind 1.2.x's
    /// `-s`; without it Debian's build changes to `_rpc`, and so do we).
    pub run_as_daemon: bool,
    /// `-r`: forward remote calls as Debian's `-r`.
    pub remote_calls: bool,
    /// `-w`: warm start.
    pub warmstart: bool,
    /// `--udp-reply-factor`: see `proto::engine::cap_udp_reply`.
    pub udp_reply_factor: u32,
    /// `--reap-interval` in seconds (0: never).
    pub reap_interval: u64,
    /// `--policy-config`.
    pub policy_config: Option<PathBuf>,
    /// `--alloc-state`.
    pub alloc_state: Option<PathBuf>,
    /// `--alloc-sweep` in milliseconds (at least 10).
    pub alloc_sweep: Option<u64>,
}

impl Default for Cli {
    fn default() -> Self {
        Cli {
            abort: false,
            debug: false,
            foreground: false,
            hosts: Vec::new(),
            insecure: false,
            log_calls: false,
            run_as_daemon: false,
            remote_calls: false,
            warmstart: false,
            udp_reply_factor: 1,
            reap_interval: 0,
            policy_config: None,
            alloc_state: None,
            alloc_sweep: None,
        }
    }
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Parsed {
    /// Run the daemon with these options.
    Run(Cli),
    /// Exit now with this status; [`parse`] has already printed what it had to.
    Exit(i32),
}

/// What [`Cli::try_parse_from`] stops at instead of options to run with.
#[derive(Debug)]
pub enum Stop {
    Help,
    Version,
    /// A refused command line, and why.
    Usage(String),
}

impl From<lexopt::Error> for Stop {
    fn from(e: lexopt::Error) -> Self {
        Stop::Usage(e.to_string())
    }
}

/// Parses `args` (including `argv[0]`). `--help` and `--version` print to
/// stdout and exit 0; a refused command line prints the error and usage to
/// stderr and exits 1, as the C daemon does.
pub fn parse<I, T>(args: I) -> Parsed
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    match Cli::try_parse_from(args) {
        Ok(cli) => Parsed::Run(cli),
        Err(Stop::Help) => {
            print!("{HELP}");
            Parsed::Exit(0)
        }
        Err(Stop::Version) => {
            println!("rpcbind {}", env!("CARGO_PKG_VERSION"));
            Parsed::Exit(0)
        }
        Err(Stop::Usage(why)) => {
            eprint!("{}", usage_error(&why));
            Parsed::Exit(1)
        }
    }
}

/// The message for a refused command line, with the usage line.
fn usage_error(why: &str) -> String {
    format!("error: {why}\n\nUsage: {USAGE}\n\nFor more information, try '--help'.\n")
}

/// A number option's value.
fn number<N: std::str::FromStr>(p: &mut lexopt::Parser, name: &str) -> Result<N, Stop>
where
    N::Err: std::fmt::Display,
{
    let value = p.value()?.string()?;
    value
        .parse()
        .map_err(|e| Stop::Usage(format!("invalid value '{value}' for '--{name}': {e}")))
}

impl Cli {
    /// Parses `args` (including `argv[0]`) without printing anything.
    pub fn try_parse_from<I, T>(args: I) -> Result<Cli, Stop>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        let mut cli = Cli::default();
        let mut p = lexopt::Parser::from_iter(args);
        while let Some(arg) = p.next()? {
            match arg {
                Short('a') => cli.abort = true,
                Short('d') => cli.debug = true,
                Short('f') => cli.foreground = true,
                Short('h') => cli.hosts.push(p.value()?.string()?),
                Short('i') => cli.insecure = true,
                Short('l') => cli.log_calls = true,
                Short('s') => cli.run_as_daemon = true,
                Short('r') => cli.remote_calls = true,
                Short('w') => cli.warmstart = true,
                Long("udp-reply-factor") => {
                    cli.udp_reply_factor = number(&mut p, "udp-reply-factor")?;
                }
                Long("reap-interval") => cli.reap_interval = number(&mut p, "reap-interval")?,
                Long("policy-config") => cli.policy_config = Some(p.value()?.into()),
                Long("alloc-state") => cli.alloc_state = Some(p.value()?.into()),
                Long("alloc-sweep") => {
                    let ms: u64 = number(&mut p, "alloc-sweep")?;
                    if ms < 10 {
                        return Err(Stop::Usage(format!(
                            "invalid value '{ms}' for '--alloc-sweep': at least 10 (milliseconds)"
                        )));
                    }
                    cli.alloc_sweep = Some(ms);
                }
                Long("help") => return Err(Stop::Help),
                Long("version") => return Err(Stop::Version),
                other => return Err(other.unexpected().into()),
            }
        }
        Ok(cli)
    }

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
            Err(e) => panic!("{args:?} refused: {e:?}"),
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
        assert!(matches!(e, Stop::Usage(_)), "{e:?}");
        assert!(matches!(parse(["rpcbind", "-h"]), Parsed::Exit(1)));
    }

    #[test]
    fn later_issue_flags_are_refused() {
        for flag in ["-L", "-x", "-V", "--nope", "stray"] {
            let e = Cli::try_parse_from(["rpcbind", flag]).unwrap_err();
            let Stop::Usage(why) = e else {
                panic!("{flag}: {e:?}")
            };
            let shown = usage_error(&why);
            assert!(
                shown.contains(flag.trim_start_matches('-')),
                "{flag}: {shown}"
            );
            assert!(shown.contains("Usage: rpcbind [-adfilrsw]"), "{shown}");
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
        assert!(matches!(e, Stop::Help), "{e:?}");
        let e = Cli::try_parse_from(["rpcbind", "--version"]).unwrap_err();
        assert!(matches!(e, Stop::Version), "{e:?}");
    }

    #[test]
    fn long_options_take_a_value_both_ways() {
        let c = run(&[
            "rpcbind",
            "--alloc-state=/run/a.state",
            "--policy-config",
            "/etc/p.toml",
            "--alloc-sweep",
            "50",
        ]);
        assert_eq!(c.alloc_state, Some(PathBuf::from("/run/a.state")));
        assert_eq!(c.policy_config, Some(PathBuf::from("/etc/p.toml")));
        assert_eq!(c.alloc_sweep, Some(50));
    }

    #[test]
    fn bad_numbers_are_usage_errors() {
        for args in [
            &["rpcbind", "--alloc-sweep", "9"][..],
            &["rpcbind", "--udp-reply-factor", "-1"],
            &["rpcbind", "--reap-interval", "soon"],
            &["rpcbind", "--alloc-state"],
        ] {
            let e = Cli::try_parse_from(args).unwrap_err();
            assert!(matches!(e, Stop::Usage(_)), "{args:?}: {e:?}");
        }
    }

    #[test]
    fn the_help_names_every_option() {
        for opt in [
            "-a ",
            "-d ",
            "-f ",
            "-h ADDR",
            "-i ",
            "-l ",
            "-s ",
            "-r ",
            "-w ",
            "--udp-reply-factor",
            "--reap-interval",
            "--policy-config",
            "--alloc-state",
            "--alloc-sweep",
            "--help",
            "--version",
        ] {
            assert!(HELP.contains(opt), "{opt}");
        }
    }
}
