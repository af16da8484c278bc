//! The `portpolicy` command: shows the port policy, says who holds a port
//! and why, checks the host and applies the policy to kernel and libc.
//! Does I/O (files, /proc, netlink) through the library's I/O layer.
//!
//! Exit status: 0 all well, 1 problems found (or a change failed),
//! 2 usage or configuration error.
#![forbid(unsafe_code)]

mod commands;

use clap::{Parser, Subcommand};
use portpolicy::load::Paths;
use portpolicy::portset::PortRange;
use portpolicy::Protocol;
use std::path::PathBuf;
use std::process::ExitCode;

/// Port policy for RPC daemons: the pool, exclusions, reservations, and
/// who holds a port.
#[derive(Debug, Parser)]
#[command(name = "portpolicy", version)]
struct Cli {
    /// Read this config file only (instead of /etc/portpolicy.toml and
    /// /etc/portpolicy.d/*.toml).
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Structured output as JSON.
    #[arg(long, global = true)]
    json: bool,
    /// Tests only: prefix for /etc and /var/lib paths.
    #[arg(long, global = true, hide = true, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Tests only: the sysctl tree instead of /proc/sys.
    #[arg(long, global = true, hide = true, value_name = "DIR")]
    proc_sys: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The policy in force: mode, pool, exclusions with sources, reservations.
    Show,
    /// The pool, one port per line.
    Pool {
        /// Protocol.
        #[arg(long, default_value = "tcp")]
        proto: Protocol,
    },
    /// Is PORT in the pool, which sources name it, who holds it now.
    Why {
        /// PORT, PORT/tcp or PORT/udp (tcp when not given).
        port: PortArg,
    },
    /// Scan the host for ports held against the policy and settings that
    /// disagree with it.
    Check,
    /// Make ip_local_reserved_ports, sunrpc, bindresvport.blacklist and a
    /// sysctl.d drop-in agree with the policy.
    Apply {
        /// Show the changes without making them.
        #[arg(long)]
        dry_run: bool,
    },
    /// A picture of a port range (default 512-1023).
    Map {
        /// N-M.
        range: Option<RangeArg>,
        /// Protocol.
        #[arg(long, default_value = "tcp")]
        proto: Protocol,
    },
}

/// `PORT[/tcp|/udp]`.
#[derive(Debug, Clone, Copy)]
pub struct PortArg {
    port: u16,
    proto: Protocol,
}

impl std::str::FromStr for PortArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (port, proto) = match s.split_once('/') {
            Some((p, proto)) => (p, proto.parse::<Protocol>().map_err(|e| e.to_string())?),
            None => (s, Protocol::Tcp),
        };
        let port = port
            .parse::<u16>()
            .map_err(|_| format!("{port:?} is not a port number (0-65535)"))?;
        Ok(PortArg { port, proto })
    }
}

/// `N-M`.
#[derive(Debug, Clone, Copy)]
pub struct RangeArg(PortRange);

impl std::str::FromStr for RangeArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PortRange::parse(s).map(RangeArg).map_err(|e| e.to_string())
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let mut paths = Paths {
        config: cli.config.clone(),
        ..Paths::default()
    };
    if let Some(root) = &cli.root {
        paths.root = root.clone();
    }
    if let Some(p) = &cli.proc_sys {
        paths.proc_sys = p.clone();
    }
    let ctx = commands::Context {
        paths,
        json: cli.json,
    };
    let result = match cli.command {
        Command::Show => commands::show(&ctx),
        Command::Pool { proto } => commands::pool(&ctx, proto),
        Command::Why { port } => commands::why(&ctx, port.port, port.proto),
        Command::Check => commands::check(&ctx),
        Command::Apply { dry_run } => commands::apply(&ctx, dry_run),
        Command::Map { range, proto } => commands::map(
            &ctx,
            range.map_or(PortRange::new(512, 1023), |r| r.0),
            proto,
        ),
    };
    match result {
        Ok(status) => status.into(),
        Err(e) => {
            eprintln!("portpolicy: {}", e.message);
            ExitCode::from(e.status)
        }
    }
}
