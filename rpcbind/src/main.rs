//! `rpcbind`: the drop-in replacement for the C rpcbind 1.2.x daemon.
//! The binary's edge: parses the command line, takes the single-instance
//! lock, binds every listener, detaches (unless `-f`), then serves until
//! SIGTERM/SIGINT and removes its socket and lock file. Errors reach the
//! user here (anyhow only in this file). See README.md for the flags and
//! the differences from the C daemon.
#![deny(unsafe_code)]

mod activation;
mod alloc;
mod calllog;
mod cli;
mod conns;
mod daemonize;
mod fdstore;
mod forward;
mod interfaces;
mod listeners;
mod lock;
mod logging;
mod netconfig;
mod notify;
mod privdrop;
mod reap;
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
    // systemd's environment is read and removed before any thread exists.
    let mut passed = match activation::Passed::take_from_env() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("rpcbind: {e}");
            return ExitCode::from(1);
        }
    };
    let notifier = notify::Notifier::take_from_env().map(Arc::new);
    // Reservation sockets kept by systemd are not listeners.
    fdstore::install(notifier.clone(), passed.take_named(fdstore::PREFIX));
    let cli = match cli::parse(std::env::args_os()) {
        Parsed::Run(cli) => cli,
        Parsed::Exit(0) => return ExitCode::SUCCESS,
        Parsed::Exit(_) => return ExitCode::from(1),
    };
    if cli.abort && !cli.debug {
        eprintln!("-a (abort) specified without -d (debugging) -- ignored.");
    }
    match run(&cli, passed, notifier) {
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

fn run(
    cli: &Cli,
    passed: activation::Passed,
    notifier: Option<Arc<notify::Notifier>>,
) -> anyhow::Result<()> {
    logging::init(cli.foreground, cli.debug);
    let lock = InstanceLock::acquire(Path::new(lock::LOCK_PATH))?;
    if !nix::unistd::geteuid().is_root() {
        // The C daemon's words, without the program name.
        eprintln!("Sorry. You are not superuser");
        return Err(AlreadyReported.into());
    }
    let user = privdrop::target_user(cli.run_as_daemon)?;
    let ports = services::ports(Path::new(services::SERVICES_PATH));
    let transports = netconfig::ip_transports(Path::new(netconfig::NETCONFIG_PATH));
    let cfg = ListenConfig::standard(ports.udp, ports.tcp, cli.hosts.clone(), transports);
    let listeners = if passed.is_empty() {
        listeners::bind_all(&cfg).context("cannot start")?
    } else {
        tracing::debug!("{} sockets passed by systemd", passed.len());
        activation::listeners(passed, &cfg).context("cannot start")?
    };
    let created: Vec<PathBuf> = listeners
        .local
        .iter()
        .filter_map(|l| l.path.clone())
        .collect();
    // Reservations are held from here on, before anyone is served.
    let alloc = alloc::Service::start(&cli.alloc_options())
        .context("cannot start the allocation service")?;
    fdstore::discard_unadopted();
    if !cli.foreground {
        daemonize::detach().context("cannot detach into the background")?;
    }
    let owner = Some((user.uid, user.gid));
    // Created (and handed to the user) while still root, like C, which
    // writes its state files on exit with or without -w.
    warmstart::prepare_dir(Path::new(warmstart::STATE_DIR), owner);
    let keeper = privdrop::Keeper::spawn(created, &lock)?;
    // The allocation service binds ports below 1024 for root callers
    // and reservations: CAP_NET_BIND_SERVICE stays while it is on.
    alloc.prepare_state_dir(user.uid, user.gid);
    privdrop::drop_to(&user, alloc.enabled())?;
    let mut engine = Engine::new(EngineConfig {
        insecure: cli.insecure,
        remote_calls: cli.remote_calls,
        ..EngineConfig::default()
    });
    for (transport, uaddr) in &listeners.own {
        engine.register_own(*transport, uaddr);
    }
    let calllog =
        (cli.log_calls || cli.debug).then(|| calllog::CallLog::load(Path::new(calllog::RPC_PATH)));
    let persister = cli
        .warmstart
        .then(|| warm_start(&mut engine, owner))
        .flatten();
    alloc.restore_registrations(&mut engine);
    let alloc = Arc::new(alloc);
    let mut shared =
        server::Shared::new(engine, calllog, cli.abort_on_error()).with_alloc(alloc.clone());
    if let Some(p) = persister {
        shared = shared.with_warmstart(p);
    }
    let shared = Arc::new(shared);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.spawn(alloc::run_background(alloc, shared.clone()));
    if cli.reap_interval > 0 {
        let every = Duration::from_secs(cli.reap_interval);
        runtime.spawn(reap::run(shared.clone(), every));
    }
    let ready = Arc::new(tokio::sync::Notify::new());
    let serve_cfg = server::ServeConfig {
        ready: Some(ready.clone()),
        udp_reply_factor: cli.udp_reply_factor,
        remote_calls: cli.remote_calls,
        ..server::ServeConfig::default()
    };
    let served = runtime.block_on(async {
        if let Some(n) = &notifier {
            tokio::spawn(notify::run(n.clone(), ready, shared.clone()));
        }
        server::serve(listeners, shared.clone(), serve_cfg).await
    });
    if let Some(n) = &notifier {
        n.send("STOPPING=1");
    }
    runtime.shutdown_timeout(Duration::from_millis(200));
    shared.shutdown_warmstart(owner);
    keeper.finish(lock);
    served.context("serving failed")
}

/// `-w`: replaces the lists with the saved ones (as C's `read_warmstart`)
/// and starts making every change durable.
/// The directory was prepared before the privilege drop (see `run`).
fn warm_start(engine: &mut Engine, owner: warmstart::Owner) -> Option<warmstart::Persister> {
    let dir = Path::new(warmstart::STATE_DIR);
    if let Some(saved) = warmstart::load(dir) {
        *engine.registry_mut() = saved;
    }
    match warmstart::Persister::start(dir, owner, engine.registry()) {
        Ok(p) => {
            // Nothing changes the registry before serving starts, so the
            // persister's snapshot and this log begin at the same state.
            engine.registry_mut().record_changes();
            Some(p)
        }
        Err(e) => {
            // Serving matters more than the state file: say so and go on,
            // as C goes on when it cannot write its files.
            tracing::error!(
                "cannot write the warm-start state in {}: {e}; changes will not survive a restart",
                dir.display()
            );
            None
        }
    }
}
