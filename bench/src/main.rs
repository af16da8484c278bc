//! `rpcbench`: a load generator for rpcbind servers (issue 8). `run`
//! drives one server over loopback through a fixed plan of rows (lookups,
//! DUMP, SET/UNSET churn, the same at 50,000 down to 10 registrations,
//! misbehaving and idle clients), validating every reply, and prints a
//! table (and writes JSON); `compare` puts two runs side by side with the
//! ratio per row. Does socket I/O; reads `/proc` for the server's memory.
//! RFC 1833 (the binding protocols), RFC 5531 (RPC, record marking).
#![forbid(unsafe_code)]

mod plan;
mod report;
mod sample;
mod stream;
mod stress;
mod udp;
mod wire;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "rpcbench", about = "Load generator for rpcbind servers")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Drive one server and print its table.
    Run(RunArgs),
    /// Print two runs (JSON from `run --out`) side by side with ratios.
    Compare {
        /// Our daemon's results.
        ours: PathBuf,
        /// The reference daemon's results.
        reference: PathBuf,
    },
}

/// Options of `rpcbench run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Address of the server's UDP and TCP listeners.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    #[arg(long, default_value_t = 111)]
    port: u16,
    /// The server's local stream socket (SET/UNSET need it).
    #[arg(long, default_value = "/run/rpcbind.sock")]
    local: PathBuf,
    /// PID of the server, to sample its memory and CPU.
    #[arg(long)]
    pid: Option<u32>,
    /// Seconds per repetition of a row.
    #[arg(long, default_value_t = 1.5)]
    duration: f64,
    /// Repetitions of each row.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Run only rows whose id contains one of these (comma separated).
    #[arg(long, value_delimiter = ',')]
    rows: Vec<String>,
    /// Milliseconds before a call counts as timed out.
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
    /// Table sizes for the scaling rows, largest first is not required.
    #[arg(long, value_delimiter = ',', default_values_t = [50_000u32, 10_000, 1_000, 10])]
    scales: Vec<u32>,
    /// Idle TCP connections held open in the stress rows.
    #[arg(long, default_value_t = 1000)]
    idle: usize,
    /// Name of the server, shown in the table.
    #[arg(long, default_value = "server")]
    label: String,
    /// Where to write the results as JSON.
    #[arg(long)]
    out: Option<PathBuf>,
}

impl RunArgs {
    pub fn udp(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }

    pub fn dur(&self) -> Duration {
        Duration::from_secs_f64(self.duration.max(0.05))
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.max(1))
    }

    /// Whether the row `id` is selected by `--rows`.
    pub fn wants(&self, id: &str) -> bool {
        self.rows.is_empty() || self.rows.iter().any(|r| id.contains(r.as_str()))
    }
}

fn main() -> ExitCode {
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rpcbench: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn real_main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Run(args) => {
            let results = plan::run(&args)?;
            report::print_run(&args.label, &results);
            if let Some(out) = &args.out {
                let run = report::Run {
                    label: args.label.clone(),
                    duration: args.duration,
                    reps: args.reps,
                    rows: results,
                };
                std::fs::write(out, serde_json::to_vec_pretty(&run)?)
                    .with_context(|| format!("writing {}", out.display()))?;
            }
            Ok(())
        }
        Cmd::Compare { ours, reference } => {
            let read = |p: &PathBuf| -> anyhow::Result<report::Run> {
                let text = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
                Ok(serde_json::from_slice(&text)?)
            };
            report::print_compare(&read(&ours)?, &read(&reference)?);
            Ok(())
        }
    }
}
