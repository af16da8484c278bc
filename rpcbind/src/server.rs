//! The serving loop: takes an already-bound [`Listeners`] set and an
//! engine, and runs one task per UDP socket, one accept task per stream
//! listener and one task per connection until SIGTERM, SIGINT or SIGQUIT
//! (the C daemon's `terminate`). SIGHUP, SIGUSR1 and SIGUSR2 are ignored,
//! as in C. Does I/O (sockets, signals).
//!
//! The engine sits behind a `std::sync::Mutex` taken only around
//! `Engine::handle` (never across an `.await`), so UDP and TCP tasks share
//! it without ever waiting on a slow peer. With `-w` the warm-start writer
//! thread also takes it, only while it encodes a snapshot of the registry
//! (never while writing files). A panic inside the engine is
//! caught and the request dropped (or the process aborted with `-a -d`),
//! so no input stops the daemon serving others.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use proto::engine::{Engine, Outcome, RequestContext, Transport};
use tokio::io::Interest;
use tokio::net::{TcpListener, UdpSocket, UnixListener};
use tokio::signal::unix::{signal, SignalKind};

use crate::calllog::{self, CallLog};
use crate::conns::ConnTable;
use crate::listeners::Listeners;
use crate::stream::{self, StreamLimits};
use crate::udp;

/// Tunables of the serving loop.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub stream: StreamLimits,
    /// Most TCP connections open at once (IPv4 and IPv6 together).
    pub max_tcp_connections: usize,
    /// Most local-socket connections open at once.
    pub max_local_connections: usize,
    /// How often the interface list for address merging is refreshed.
    pub interface_refresh: Duration,
    /// Notified once every listener is being served (systemd READY=1).
    pub ready: Option<Arc<tokio::sync::Notify>>,
    /// `--udp-reply-factor`: see `proto::engine::cap_udp_reply`.
    pub udp_reply_factor: u32,
    /// `-r`: forward remote calls (see `forward`).
    pub remote_calls: bool,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            stream: StreamLimits::default(),
            max_tcp_connections: 1024,
            max_local_connections: 1024,
            interface_refresh: Duration::from_secs(1),
            udp_reply_factor: 1,
            remote_calls: false,
            ready: None,
        }
    }
}

/// What every task shares: the engine and the logging switches.
#[derive(Debug)]
pub struct Shared {
    /// Shared with the `-w` writer thread, which reads the registry from
    /// here when it rewrites the state files (see `with_warmstart`).
    engine: Arc<Mutex<Engine>>,
    calllog: Option<CallLog>,
    abort_on_error: bool,
    /// Reply bytes waiting in every connection's queue.
    queued_replies: AtomicUsize,
    /// `-w`: makes registry changes durable before their replies.
    warmstart: Option<crate::warmstart::Persister>,
    /// The port-allocation service (local socket only).
    alloc: Option<Arc<crate::alloc::Service>>,
}

impl Shared {
    /// `calllog` enables the `-l` lines; `abort_on_error` is `-a -d`.
    pub fn new(engine: Engine, calllog: Option<CallLog>, abort_on_error: bool) -> Self {
        Shared {
            engine: Arc::new(Mutex::new(engine)),
            calllog,
            abort_on_error,
            queued_replies: AtomicUsize::new(0),
            warmstart: None,
            alloc: None,
        }
    }

    /// Serves the port-allocation service on the local socket.
    pub fn with_alloc(mut self, service: Arc<crate::alloc::Service>) -> Self {
        self.alloc = Some(service);
        self
    }

    /// The port-allocation service, when it runs.
    pub fn alloc(&self) -> Option<&Arc<crate::alloc::Service>> {
        self.alloc.as_ref()
    }

    /// Runs `f` on the engine (the allocation service's registrations,
    /// reaping). With `-w` its registry changes are queued for the disk
    /// (not waited for: see [`with_engine_durable`](Self::with_engine_durable)).
    pub fn with_engine<T>(&self, f: impl FnOnce(&mut Engine) -> T) -> T {
        self.with_engine_durable(f).0
    }

    /// [`with_engine`](Self::with_engine), and the `-w` ticket of its
    /// changes (if any) to pass to [`wait_durable`](Self::wait_durable)
    /// before replying.
    pub fn with_engine_durable<T>(&self, f: impl FnOnce(&mut Engine) -> T) -> (T, Option<u64>) {
        let mut engine = self.engine.lock().unwrap_or_else(PoisonError::into_inner);
        let out = f(&mut engine);
        let ticket = self.warmstart.as_ref().and_then(|p| {
            let changes = engine.registry_mut().take_changes();
            (!changes.is_empty()).then(|| p.submit(changes))
        });
        (out, ticket)
    }

    /// Returns once the changes of `ticket` are on disk (at once without
    /// `-w` or without a ticket).
    pub async fn wait_durable(&self, ticket: Option<u64>) {
        if let (Some(p), Some(t)) = (&self.warmstart, ticket) {
            p.wait(t).await;
        }
    }

    /// Every registry change will be on disk before its reply is sent.
    /// The persister reads the live registry under the engine lock when
    /// it rewrites the state files: every change is submitted under that
    /// same lock (here and in `handle_now`), which is what makes its
    /// snapshot consistent (see `warmstart`).
    pub fn with_warmstart(mut self, persister: crate::warmstart::Persister) -> Self {
        let engine = Arc::clone(&self.engine);
        persister.attach(Box::new(move |f| {
            let mut engine = engine.lock().unwrap_or_else(PoisonError::into_inner);
            f(engine.registry_mut());
        }));
        self.warmstart = Some(persister);
        self
    }

    /// Writes the last changes and the state files (clean exit). Without
    /// `-w` the state files are written all the same, as C's `terminate`
    /// does, so that a later `rpcbind -w` (ours or C's) finds them. With
    /// `-w` the writer thread rewrites them from the live registry, so
    /// this must not be called with the engine locked.
    pub fn shutdown_warmstart(&self, owner: crate::warmstart::Owner) {
        match &self.warmstart {
            Some(p) => p.shutdown(),
            None => {
                let engine = self.engine.lock().unwrap_or_else(PoisonError::into_inner);
                let dir = std::path::Path::new(crate::warmstart::STATE_DIR);
                crate::warmstart::save(dir, owner, engine.registry());
            }
        }
    }

    /// The daemon-wide count of queued reply bytes (see `stream`).
    pub fn queued_replies(&self) -> &AtomicUsize {
        &self.queued_replies
    }

    /// How many registrations the engine holds (its own included).
    pub fn registration_count(&self) -> usize {
        let engine = self.engine.lock().unwrap_or_else(PoisonError::into_inner);
        engine.registry().len()
    }

    /// Answers one request through the engine; with `-w`, returns once
    /// the changes it made are durable.
    pub async fn handle(&self, request: &[u8], ctx: &RequestContext) -> Outcome {
        let (outcome, ticket) = self.handle_now(request, ctx);
        if let (Some(p), Some(t)) = (&self.warmstart, ticket) {
            p.wait(t).await;
        }
        outcome
    }

    fn handle_now(&self, request: &[u8], ctx: &RequestContext) -> (Outcome, Option<u64>) {
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let mut engine = self.engine.lock().unwrap_or_else(PoisonError::into_inner);
            let outcome = engine.handle(request, ctx, SystemTime::now());
            // Submitted under the engine lock, so the journal keeps the
            // registry's order.
            let ticket = self.warmstart.as_ref().and_then(|p| {
                let changes = engine.registry_mut().take_changes();
                (!changes.is_empty()).then(|| p.submit(changes))
            });
            (outcome, ticket)
        }));
        let (outcome, ticket) = match outcome {
            Ok(o) => o,
            Err(_) => {
                tracing::error!(
                    "internal error while answering a {}-byte {} request; dropped",
                    request.len(),
                    ctx.transport.netid()
                );
                if self.abort_on_error {
                    std::process::abort();
                }
                return (Outcome::NoReply, None);
            }
        };
        if let Some(log) = &self.calllog {
            if let Some(line) = log.line(request, ctx, &outcome) {
                tracing::info!(target: calllog::TARGET, "{line}");
            }
        }
        (outcome, ticket)
    }

    fn set_interfaces(&self, ifs: Vec<proto::engine::Interface>) {
        let mut engine = self.engine.lock().unwrap_or_else(PoisonError::into_inner);
        engine.set_interfaces(ifs);
    }
}

/// Serves every listener until a termination signal; returns `Ok` then.
/// Must run inside a tokio runtime.
pub async fn serve(
    listeners: Listeners,
    shared: Arc<Shared>,
    cfg: ServeConfig,
) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut quit = signal(SignalKind::quit())?;
    for kind in [
        SignalKind::hangup(),
        SignalKind::user_defined1(),
        SignalKind::user_defined2(),
    ] {
        let mut s = signal(kind)?;
        tokio::spawn(async move { while s.recv().await.is_some() {} });
    }
    spawn_all(listeners, &shared, &cfg)?;
    if let Some(ready) = &cfg.ready {
        ready.notify_one();
    }
    tokio::spawn(refresh_interfaces(shared.clone(), cfg.interface_refresh));
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: exiting"),
        _ = int.recv() => tracing::info!("SIGINT: exiting"),
        _ = quit.recv() => tracing::info!("SIGQUIT: exiting"),
    }
    Ok(())
}

/// Starts the tasks of every listener (no signal handling); for tests
/// and for `serve`.
pub fn spawn_all(
    listeners: Listeners,
    shared: &Arc<Shared>,
    cfg: &ServeConfig,
) -> std::io::Result<()> {
    let tcp_table = ConnTable::new(cfg.max_tcp_connections);
    let local_table = ConnTable::new(cfg.max_local_connections);
    let forwarder = match cfg.remote_calls {
        true => Some(crate::forward::Forwarder::start(cfg.udp_reply_factor)?),
        false => None,
    };
    for l in listeners.udp {
        let socket = Arc::new(UdpSocket::from_std(l.socket)?);
        let how = UdpReplies {
            factor: cfg.udp_reply_factor,
            forwarder: forwarder.clone(),
        };
        tokio::spawn(serve_udp(socket, l.transport, shared.clone(), how));
    }
    for l in listeners.tcp {
        let listener = TcpListener::from_std(l.listener)?;
        let ctx = (l.transport, shared.clone(), tcp_table.clone(), cfg.stream);
        tokio::spawn(accept_tcp(listener, ctx));
    }
    for l in listeners.local {
        let listener = UnixListener::from_std(l.listener)?;
        tokio::spawn(accept_local(
            listener,
            shared.clone(),
            local_table.clone(),
            cfg.stream,
        ));
    }
    Ok(())
}

async fn refresh_interfaces(shared: Arc<Shared>, every: Duration) {
    let mut last = None;
    loop {
        match crate::interfaces::current() {
            Ok(ifs) if last.as_ref() != Some(&ifs) => {
                shared.set_interfaces(ifs.clone());
                last = Some(ifs);
            }
            Ok(_) => {}
            Err(e) => tracing::debug!("getifaddrs: {e}"),
        }
        tokio::time::sleep(every).await;
    }
}

/// How UDP replies leave: the reflection cap and remote-call forwarding.
#[derive(Debug)]
struct UdpReplies {
    factor: u32,
    forwarder: Option<Arc<crate::forward::Forwarder>>,
}

async fn serve_udp(
    socket: Arc<UdpSocket>,
    transport: Transport,
    shared: Arc<Shared>,
    how: UdpReplies,
) {
    let fd = socket.as_raw_fd();
    let port = socket.local_addr().map(|a| a.port()).unwrap_or(0);
    let mut batch = udp::Batch::new();
    let mut outbox = udp::Outbox::new();
    loop {
        let received = socket.async_io(Interest::READABLE, || batch.recv(fd)).await;
        let count = match received {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!("{} recvmmsg: {e}", transport.netid());
                tokio::task::yield_now().await;
                continue;
            }
        };
        for i in 0..count {
            let (dg, request) = match batch.get(i) {
                Ok(got) => got,
                Err(e) => {
                    tracing::debug!("{} recvmmsg: {e}", transport.netid());
                    continue;
                }
            };
            let ctx = RequestContext {
                transport,
                peer: Some(dg.peer),
                local: dg.local.map(|ip| local_addr(ip, port, dg.ifindex)),
                peer_uid: None,
            };
            match shared.handle(request, &ctx).await {
                Outcome::Reply(reply) => {
                    let reply = proto::engine::cap_udp_reply(reply, dg.len, dg.peer, how.factor);
                    outbox.push(reply, &dg);
                }
                Outcome::Forward(f) => {
                    if let Some(fwd) = &how.forwarder {
                        let caller = crate::forward::Caller {
                            peer: dg.peer,
                            listener: socket.clone(),
                            source: dg.reply_source(),
                            request_len: dg.len,
                        };
                        fwd.forward(f, caller).await;
                    }
                }
                _ => {}
            }
        }
        outbox.flush(&socket, transport.netid()).await;
    }
}

fn local_addr(ip: std::net::IpAddr, port: u16, ifindex: u32) -> SocketAddr {
    match ip {
        std::net::IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80 => {
            SocketAddr::V6(std::net::SocketAddrV6::new(v6, port, 0, ifindex))
        }
        _ => SocketAddr::new(ip, port),
    }
}

type TcpCtx = (Transport, Arc<Shared>, Arc<ConnTable>, StreamLimits);

async fn accept_tcp(listener: TcpListener, (transport, shared, table, limits): TcpCtx) {
    loop {
        let (conn, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                accept_failed(transport, &e).await;
                continue;
            }
        };
        let _ = conn.set_nodelay(true);
        let ctx = RequestContext {
            transport,
            peer: Some(peer),
            local: conn.local_addr().ok(),
            peer_uid: None,
        };
        let guard = table.admit();
        let (read, write) = conn.into_split();
        let halves = stream::Halves {
            read,
            write,
            alloc: None,
        };
        tokio::spawn(stream::serve(halves, ctx, shared.clone(), guard, limits));
    }
}

async fn accept_local(
    listener: UnixListener,
    shared: Arc<Shared>,
    table: Arc<ConnTable>,
    limits: StreamLimits,
) {
    loop {
        let conn = match listener.accept().await {
            Ok((c, _)) => c,
            Err(e) => {
                accept_failed(Transport::Local, &e).await;
                continue;
            }
        };
        let ctx = RequestContext {
            transport: Transport::Local,
            peer: None,
            local: None,
            peer_uid: conn.peer_cred().ok().map(|c| c.uid()),
        };
        let guard = table.admit();
        let alloc = shared
            .alloc()
            .and_then(|svc| crate::alloc::Conn::new(svc.clone(), shared.clone(), &conn));
        let (read, write) = conn.into_split();
        let halves = stream::Halves { read, write, alloc };
        tokio::spawn(stream::serve(halves, ctx, shared.clone(), guard, limits));
    }
}

/// Out of descriptors or memory: say so and pause briefly instead of
/// spinning on a listener that stays readable.
async fn accept_failed(transport: Transport, e: &std::io::Error) {
    tracing::warn!("{} accept: {e}", transport.netid());
    tokio::time::sleep(Duration::from_millis(100)).await;
}
