//! `rpcbind`: the drop-in replacement for the C rpcbind 1.2.x daemon.
//! The binary's edge: parses the command line, takes the single-instance
//! lock, binds every listener, detaches (unless `-f`), then serves until
//! SIGTERM/SIGINT and removes its socket and lock file. Errors reach the
//! user here (anyhow only in this file). See README.md for the flags and
//! the differences from the C daemon.
#![deny(unsafe_code)]

mod calllog;
mod cli;
mod conns;
mod daemonize;
mod interfaces;
mod listeners;
mod lock;
mod logging;
mod netconfig;
mod server;
#[cfg(test)]
mod server_tests;
mod services;
mod stream;
#[allow(unsafe_code)]
mod sys;
mod udp;
mod warmstart;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use proto::engine::{Engine, EngineConfig};

use crate::cli::{Cli, Parsed};
use crate::listeners::ListenConfig;
use crate::lock::InstanceLock;

fn main() -> ExitCode {
    let cli = match cli::parse(std::env::args_os()) {
        Parsed::Run(cli) => cli,
        Parsed::Exit(0) => return ExitCode::SUCCESS,
        Parsed::Exit(_) => return ExitCode::from(1),
    };
    if cli.abort && !cli.debug {
        eprintln!("-a (abort) specified without -d (debugging) -- ignored.");
    }
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<AlreadyReported>() => ExitCode::from(1),
        Err(e) => {
            if !cli.foreground {
                tracing::error!("{e:#}");
            }
            eprintln!("rpcbind: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// An error the user has already been told about.
#[derive(Debug, thiserror::Error)]
#[error("already reported")]
struct AlreadyReported;

fn run(cli: &Cli) -> anyhow::Result<()> {
    logging::init(cli.foreground, cli.debug);
    let lock = InstanceLock::acquire(Path::new(lock::LOCK_PATH))?;
    if !nix::unistd::geteuid().is_root() {
        // The C daemon's words, without the program name.
        eprintln!("Sorry. You are not superuser");
        return Err(AlreadyReported.into());
    }
    let ports = services::ports(Path::new(services::SERVICES_PATH));
    let transports = netconfig::ip_transports(Path::new(netconfig::NETCONFIG_PATH));
    let cfg = ListenConfig::standard(ports.udp, ports.tcp, cli.hosts.clone(), transports);
    let listeners = listeners::bind_all(&cfg).context("cannot start")?;
    let created: Vec<PathBuf> = listeners
        .local
        .iter()
        .filter_map(|l| l.path.clone())
        .collect();
    if !cli.foreground {
        daemonize::detach().context("cannot detach into the background")?;
    }
    let mut engine = Engine::new(EngineConfig {
        insecure: cli.insecure,
        ..EngineConfig::default()
    });
    for (transport, uaddr) in &listeners.own {
        engine.register_own(*transport, uaddr);
    }
    let calllog =
        (cli.log_calls || cli.debug).then(|| calllog::CallLog::load(Path::new(calllog::RPC_PATH)));
    let persister = cli.warmstart.then(|| warm_start(&mut engine)).transpose()?;
    let mut shared = server::Shared::new(engine, calllog, cli.abort_on_error());
    if let Some(p) = persister {
        shared = shared.with_warmstart(p);
    }
    let shared = Arc::new(shared);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let served = runtime.block_on(server::serve(
        listeners,
        shared.clone(),
        server::ServeConfig::default(),
    ));
    runtime.shutdown_timeout(Duration::from_millis(200));
    shared.shutdown_warmstart();
    for path in &created {
        if let Err(e) = std::fs::remove_file(path) {
            tracing::warn!("cannot remove {}: {e}", path.display());
        }
    }
    lock.release();
    served.context("serving failed")
}

/// `-w`: replaces the lists with the saved ones (as C's `read_warmstart`)
/// and starts making every change durable.
fn warm_start(engine: &mut Engine) -> anyhow::Result<warmstart::Persister> {
    let dir = Path::new(warmstart::STATE_DIR);
    let owner = nix::unistd::User::from_name("_rpc")
        .ok()
        .flatten()
        .map(|u| (u.uid, u.gid));
    warmstart::prepare_dir(dir, owner);
    if let Some(saved) = warmstart::load(dir) {
        *engine.registry_mut() = saved;
    }
    engine.registry_mut().record_changes();
    warmstart::Persister::start(dir, owner, engine.registry())
        .with_context(|| format!("cannot write the warm-start state in {}", dir.display()))
}
