//! The `portpolicy` command: shows the port policy, says who holds a port
//! and why, checks the host and applies the policy to kernel and libc;
//! `exec`, `release` and `leases` talk to the rpcbind daemon's allocation
//! service. Does I/O (files, /proc, netlink) through the library's I/O
//! layer, and the daemon's local socket through the `portalloc` client.
//!
//! Exit status: 0 all well, 1 problems found (or a change failed),
//! 2 usage or configuration error.
#![forbid(unsafe_code)]

mod commands;
mod service;

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
    /// Tests only: the allocation service's socket instead of
    /// @/run/rpcbind.sock and /run/rpcbind.sock.
    #[arg(long, global = true, hide = true, value_name = "PATH")]
    socket: Option<PathBuf>,
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
    /// Get a socket from the allocation service and exec CMD with it as
    /// fd 3 (LISTEN_FDS=1, LISTEN_PID, LISTEN_FDNAMES).
    #[command(group(clap::ArgGroup::new("want").required(true).args(["pool", "port", "name"])))]
    Exec {
        /// Any pool port.
        #[arg(long)]
        pool: bool,
        /// Exactly this port (it must be in the pool).
        #[arg(long, value_name = "N")]
        port: Option<u16>,
        /// The reservation NAME (the daemon keeps its copy).
        #[arg(long, value_name = "NAME", conflicts_with_all = ["bind", "register"])]
        name: Option<String>,
        /// A TCP socket, listening (the default).
        #[arg(long, conflicts_with = "udp")]
        tcp: bool,
        /// A UDP socket.
        #[arg(long)]
        udp: bool,
        /// Numeric address to bind (default: 0.0.0.0; an IPv6 address
        /// makes an IPv6 socket).
        #[arg(long, value_name = "ADDR")]
        bind: Option<std::net::IpAddr>,
        /// Register PROG:VERS with rpcbind for the port in the same step.
        #[arg(long, value_name = "PROG:VERS")]
        register: Option<RegisterArg>,
        /// The command and its arguments.
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// Make the daemon stop holding reservation NAME (the portrelease way;
    /// see the README for the race this leaves).
    Release {
        /// The reservation.
        name: String,
    },
    /// Leases and reservations of the allocation service.
    Leases,
}

/// `PROG:VERS`.
#[derive(Debug, Clone, Copy)]
pub struct RegisterArg(u32, u32);

impl std::str::FromStr for RegisterArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not PROG:VERS (two numbers)");
        let (p, v) = s.split_once(':').ok_or_else(bad)?;
        Ok(RegisterArg(
            p.parse().map_err(|_| bad())?,
            v.parse().map_err(|_| bad())?,
        ))
    }
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
        Command::Exec {
            pool: _,
            port,
            name,
            tcp: _,
            udp,
            bind,
            register,
            command,
        } => {
            let want = match (port, name) {
                (Some(p), _) => service::Want::Port(p),
                (None, Some(n)) => service::Want::Name(n),
                (None, None) => service::Want::Pool,
            };
            let args = service::ExecArgs {
                want,
                socktype: if udp {
                    portalloc::Socktype::Dgram
                } else {
                    portalloc::Socktype::Stream
                },
                bind,
                register: register.map(|r| (r.0, r.1)),
                command,
            };
            service::exec(&ctx, cli.socket.as_deref(), &args)
        }
        Command::Release { name } => service::release(&ctx, cli.socket.as_deref(), &name),
        Command::Leases => service::leases(&ctx, cli.socket.as_deref()),
    };
    match result {
        Ok(status) => status.into(),
        Err(e) => {
            eprintln!("portpolicy: {}", e.message);
            ExitCode::from(e.status)
        }
    }
}
