//! Warm start (`-w`) that survives a crash. Does I/O: reads the state at
//! start, then makes every registry change durable before the request
//! that made it is answered. Owns the state files and the writer thread;
//! the registry itself stays the engine's (no copy is kept here).
//!
//! Files, in C's place (`/run/rpcbind`): `rpcbind.xdr` and `portmap.xdr`
//! in the C daemon's format (so switching to or from the C daemon keeps
//! every registration), and our `rpcbind.journal`; formats in
//! `proto::warmstart`. Each batch of changes is appended to the journal and
//! `fdatasync`ed, by the request handler itself when no write is running;
//! changes that arrive while a write runs go into the next one and their
//! replies wait for it (group commit). When the journal has
//! grown past the C files, they are rewritten (temporary file, fsync,
//! rename, fsync of the directory) with a fresh journal.
//!
//! # Rewriting from the live registry
//! The writer keeps no replica of the registry (that was a second copy of
//! every registration; C keeps one): a rewrite (compaction) reads the
//! engine's registry through the [`Source`] that `Shared` attaches. It is
//! consistent because changes are submitted to the queue while the engine
//! is locked (`Shared::with_engine_durable`, `Shared::handle`): while the
//! engine lock is held, the registry is what the journal holds plus the
//! changes still queued. A compaction
//! 1. holds `state`, so no drain moves changes from the queue to the
//!    journal meanwhile;
//! 2. locks the engine, then the queue (the order every submitter uses;
//!    nothing takes the engine while holding the queue);
//! 3. takes the queued changes and notes `submitted`, the last ticket the
//!    registry now reflects (and discards changes recorded but not yet
//!    submitted: they are in the snapshot too);
//! 4. encodes the C files and the full-state journal from the registry
//!    straight into their temporary files, a piece at a time (so the
//!    state is never whole in memory; the writes go to the page cache,
//!    and the default directory, `/run`, is tmpfs), then lets the engine
//!    go (it is never held while syncing: requests go on, their changes
//!    queue for the next drain);
//! 5. syncs and renames the files;
//! 6. publishes the noted ticket as durable.
//!
//! Nothing is lost: a change was either in the journal, or queued before
//! step 3 (in the snapshot), or queued after it (appended to the fresh
//! journal by the next drain, on top of the snapshot). No ticket is
//! published before the files holding its changes are renamed and the
//! directory synced. A request handler that finds `state` held while a
//! compaction runs just waits for the ticket (it never takes the engine
//! in [`Persister::wait`]); the final rewrite at shutdown is a compaction
//! like any other.
//!
//! Start: the journal is used when its header names the C files beside it
//! (or a compaction was cut short, leaving `*.tmp`); otherwise the C files
//! are used (the C daemon wrote them), as C's `read_warmstart` does: both
//! lists replaced, the daemon's own entries included. Anything torn or
//! corrupt is logged with its file and reason and skipped.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::thread::JoinHandle;

use proto::engine::{Change, Registry};
use proto::warmstart as ws;

/// C's `RPCBIND_STATEDIR` in Debian's build.
pub const STATE_DIR: &str = "/run/rpcbind";
const RPCB_FILE: &str = "rpcbind.xdr";
const PMAP_FILE: &str = "portmap.xdr";
const JOURNAL_FILE: &str = "rpcbind.journal";
/// The journal may grow to this many times the C files (and at least
/// `MIN_COMPACT` bytes) before they are rewritten.
const COMPACT_FACTOR: u64 = 4;
const MIN_COMPACT: u64 = 1 << 20;

fn tmp(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// Reads a file, `None` when it does not exist (logged otherwise).
fn read_opt(path: &Path) -> Option<Vec<u8>> {
    match std::fs::read(path) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => {
            tracing::error!("warm start: {}: {e}; skipped", path.display());
            None
        }
    }
}

/// The registry saved in `dir`, or `None` (cold start) when there is none
/// or it cannot be used; every reason is logged.
pub fn load(dir: &Path) -> Option<Registry> {
    let (rpcb_path, pmap_path) = (dir.join(RPCB_FILE), dir.join(PMAP_FILE));
    let rpcb = read_opt(&rpcb_path);
    let pmap = read_opt(&pmap_path);
    let interrupted = [&rpcb_path, &pmap_path].iter().any(|p| tmp(p).exists());
    let hash = ws::state_hash(
        rpcb.as_deref().unwrap_or_default(),
        pmap.as_deref().unwrap_or_default(),
    );
    if let Some(reg) = load_journal(&dir.join(JOURNAL_FILE), hash, interrupted) {
        return Some(reg);
    }
    let rpcb = match ws::decode_rpcb_file(rpcb.as_deref()?) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("warm start: {}: {e}; skipped", rpcb_path.display());
            return None;
        }
    };
    // C's read_warmstart keeps neither list when portmap.xdr fails.
    let pmap = match pmap.as_deref().map(ws::decode_pmap_file) {
        Some(Ok(l)) => l,
        Some(Err(e)) => {
            tracing::error!("warm start: {}: {e}; skipped", pmap_path.display());
            return None;
        }
        None => {
            tracing::error!("warm start: {} missing; skipped", pmap_path.display());
            return None;
        }
    };
    tracing::info!(
        "warm start: {} registrations from {}",
        rpcb.len(),
        rpcb_path.display()
    );
    Some(Registry::from_lists(rpcb, pmap))
}

fn load_journal(path: &Path, hash: u64, interrupted: bool) -> Option<Registry> {
    let bytes = read_opt(path)?;
    let j = match ws::decode_journal(&bytes) {
        Ok(j) => j,
        Err(e) => {
            tracing::error!("warm start: {}: {e}; skipped", path.display());
            return None;
        }
    };
    if j.base != hash && !interrupted {
        tracing::warn!(
            "warm start: {} does not belong to the state files beside it (another rpcbind wrote them); using the state files",
            path.display()
        );
        return None;
    }
    if let Some((at, why)) = &j.torn {
        tracing::warn!(
            "warm start: {}: {why} at byte {at}; the rest (never acknowledged) skipped",
            path.display()
        );
    }
    let mut reg = Registry::new();
    for c in &j.changes {
        reg.apply(c);
    }
    tracing::info!(
        "warm start: {} registrations from {} ({} records)",
        reg.len(),
        path.display(),
        j.records
    );
    Some(reg)
}

/// Creates the state directory as C does (mode 0750, owned by the user
/// the daemon will run as, so that it can write there after dropping
/// privileges).
pub fn prepare_dir(dir: &Path, owner: Owner) {
    use std::os::unix::fs::DirBuilderExt;
    let made = std::fs::DirBuilder::new().mode(0o750).create(dir);
    if let Err(e) = made {
        if e.kind() != io::ErrorKind::AlreadyExists {
            tracing::error!("warm start: cannot create {}: {e}", dir.display());
        }
    }
    if let Some((uid, gid)) = owner {
        if let Err(e) = nix::unistd::chown(dir, Some(uid), Some(gid)) {
            tracing::warn!("warm start: cannot chown {}: {e}", dir.display());
        }
    }
}

/// The user that owns the state files (C's run-as user, `_rpc`), so that
/// a C daemon that reads them after dropping privileges can.
pub type Owner = Option<(nix::unistd::Uid, nix::unistd::Gid)>;

/// Creates (or empties) a state file, owned by `owner`.
fn create(path: &Path, owner: Owner) -> io::Result<File> {
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    if let Some((uid, gid)) = owner.filter(|_| nix::unistd::geteuid().is_root()) {
        nix::unistd::fchown(&f, Some(uid), Some(gid))?;
    }
    Ok(f)
}

/// The two C files of one state, written as `*.tmp` (not yet synced).
struct CFiles {
    rpcb: File,
    pmap: File,
    /// Their [`ws::state_hash`], which names them in a journal header.
    hash: u64,
    len: u64,
}

impl CFiles {
    /// Encodes `reg` straight into the files, a piece at a time, so that
    /// the state is never whole in memory (at 50,000 registrations the
    /// files and the journal's first record are about 7.5 MB).
    fn write(dir: &Path, owner: Owner, reg: &Registry) -> io::Result<CFiles> {
        let rpcb_len = ws::rpcb_file_len(reg.iter());
        let mut hash = ws::StateHash::new(rpcb_len);
        let mut rpcb = create(&tmp(&dir.join(RPCB_FILE)), owner)?;
        let mut written = 0;
        ws::write_rpcb_file(reg.iter(), &mut |piece: &[u8]| {
            hash.update(piece);
            written += piece.len();
            rpcb.write_all(piece)
        })?;
        if written != rpcb_len {
            return Err(io::Error::other(format!(
                "{RPCB_FILE}: {written} bytes written, {rpcb_len} counted"
            )));
        }
        let mut pmap = create(&tmp(&dir.join(PMAP_FILE)), owner)?;
        ws::write_pmap_file(reg.pmap_iter(), &mut |piece: &[u8]| {
            hash.update(piece);
            written += piece.len();
            pmap.write_all(piece)
        })?;
        Ok(CFiles {
            rpcb,
            pmap,
            hash: hash.finish(),
            len: written as u64,
        })
    }
}

/// One whole state in the temporary files: the C files and a fresh
/// journal whose first record holds the state as additions. Written from
/// the registry (under the engine lock, for a compaction: writes into the
/// page cache, no sync), then synced and renamed by [`Snapshot::commit`]
/// (without it).
struct Snapshot {
    c: CFiles,
    journal: File,
    journal_len: u64,
}

impl Snapshot {
    /// Everything that needs the registry, and nothing more: this runs
    /// with the engine locked (28-30 ms at 50,000 registrations on tmpfs,
    /// `/run`; encoding the same into memory took 15-25 ms and 7.5 MB).
    fn write(dir: &Path, owner: Owner, reg: &Registry) -> io::Result<Snapshot> {
        use std::os::unix::fs::FileExt;
        let c = CFiles::write(dir, owner, reg)?;
        let mut journal = create(&tmp(&dir.join(JOURNAL_FILE)), owner)?;
        let header = ws::journal_header(c.hash);
        journal.write_all(&header)?;
        // The record's length and checksum go here once its payload is out.
        journal.write_all(&[0; ws::RECORD_PREFIX_LEN])?;
        let mut payload = 0;
        let prefix = ws::write_full_state_record(reg.iter(), reg.pmap_iter(), &mut |piece| {
            payload += piece.len();
            journal.write_all(piece)
        })?;
        journal.write_all_at(&prefix, header.len() as u64)?;
        Ok(Snapshot {
            c,
            journal,
            journal_len: (header.len() + prefix.len() + payload) as u64,
        })
    }

    /// Syncs the files and renames them into place, then opens the
    /// journal. The journal is renamed first: a crash between the renames
    /// leaves `*.tmp` behind, which tells `load` to trust the journal.
    fn commit(self, dir: &Path, owner: Owner) -> io::Result<Files> {
        for f in [&self.c.rpcb, &self.c.pmap, &self.journal] {
            f.sync_all()?;
        }
        let journal_path = dir.join(JOURNAL_FILE);
        for p in [&journal_path, &dir.join(RPCB_FILE), &dir.join(PMAP_FILE)] {
            std::fs::rename(tmp(p), p)?;
        }
        File::open(dir)?.sync_all()?;
        let file = OpenOptions::new().append(true).open(&journal_path)?;
        Ok(Files {
            dir: dir.to_owned(),
            owner,
            journal: file,
            journal_len: self.journal_len,
            state_len: self.c.len,
        })
    }
}

/// The files of one state directory and the open journal.
#[derive(Debug)]
struct Files {
    dir: PathBuf,
    owner: Owner,
    journal: File,
    journal_len: u64,
    state_len: u64,
}

impl Files {
    /// Rewrites the C files and starts a fresh journal holding `reg`.
    fn compact(dir: &Path, owner: Owner, reg: &Registry) -> io::Result<Files> {
        Snapshot::write(dir, owner, reg)?.commit(dir, owner)
    }

    fn append(&mut self, record: &[u8]) -> io::Result<()> {
        self.journal.write_all(record)?;
        self.journal.sync_data()?;
        // Saturating: a failed write sets the length to the maximum so
        // that a rewrite is due, and it must stay due.
        self.journal_len = self.journal_len.saturating_add(record.len() as u64);
        Ok(())
    }

    /// Whether the journal has grown past `COMPACT_FACTOR` times the C
    /// files and past `min` bytes.
    fn wants_compaction(&self, min: u64) -> bool {
        self.journal_len > min.max(self.state_len.saturating_mul(COMPACT_FACTOR))
    }

    /// After a failed write: the next drain or writer wake rewrites the
    /// whole state, which holds whatever the journal missed.
    fn force_compaction(&mut self) {
        self.journal_len = u64::MAX;
    }
}

/// Without `-w`: writes the C files once (clean exit), as C does. A
/// journal of an earlier `-w` run no longer matches them and is ignored.
pub fn save(dir: &Path, owner: Owner, reg: &Registry) {
    if let Err(e) = save_c_files(dir, owner, reg) {
        tracing::error!("cannot write the state in {}: {e}", dir.display());
    }
}

fn save_c_files(dir: &Path, owner: Owner, reg: &Registry) -> io::Result<()> {
    // The journal would not match the new files: gone first, so that a
    // crash half-way leaves no journal to be trusted over them.
    match std::fs::remove_file(dir.join(JOURNAL_FILE)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let c = CFiles::write(dir, owner, reg)?;
    c.rpcb.sync_all()?;
    c.pmap.sync_all()?;
    for p in [dir.join(RPCB_FILE), dir.join(PMAP_FILE)] {
        std::fs::rename(tmp(&p), &p)?;
    }
    File::open(dir)?.sync_all()
}

#[derive(Debug, Default)]
struct Queue {
    changes: Vec<Change>,
    /// Tickets handed out so far.
    submitted: u64,
    /// The journal needs the writer thread (rewrite, or a failed write).
    compact: bool,
    shutdown: bool,
}

/// How the writer reaches the live registry for a compaction: calls its
/// argument once with the registry, holding the lock under which
/// [`Persister::submit`] is called (the engine's) for the whole call.
pub type Source = dyn Fn(&mut dyn FnMut(&mut Registry)) + Send + Sync;

struct Inner {
    queue: Mutex<Queue>,
    wake: Condvar,
    /// Held by whoever writes: a request handler committing inline, or
    /// the writer thread (appending or compacting).
    state: Mutex<Files>,
    durable: tokio::sync::watch::Sender<u64>,
    /// Set once by [`Persister::attach`]; until then the journal only
    /// grows.
    source: OnceLock<Box<Source>>,
    /// The journal size below which it is never rewritten
    /// ([`MIN_COMPACT`]; smaller in tests).
    min_compact: u64,
    /// Rewrites done since start (logged; tests count them).
    compactions: AtomicU64,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("state", &self.state)
            .field("attached", &self.source.get().is_some())
            .field("min_compact", &self.min_compact)
            .finish_non_exhaustive()
    }
}

impl Inner {
    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends everything queued to the journal, batch by batch, and
    /// publishes each batch's last ticket once it is on disk.
    fn drain(&self, files: &mut Files) {
        loop {
            let (batch, ticket) = {
                let mut q = self.queue();
                if q.changes.is_empty() {
                    return;
                }
                (std::mem::take(&mut q.changes), q.submitted)
            };
            self.append(files, &batch);
            self.durable.send_replace(ticket);
        }
    }

    fn append(&self, files: &mut Files, batch: &[Change]) {
        if let Err(e) = files.append(&ws::journal_record(batch)) {
            // Serving goes on (as C goes on when it cannot write); the
            // rewrite forced here puts the whole state back on disk once
            // the disk takes writes again.
            tracing::error!(
                "warm start: cannot write {}: {e}; rewriting the state",
                files.dir.join(JOURNAL_FILE).display()
            );
            files.force_compaction();
        }
    }

    /// Rewrites the C files and a fresh journal from a snapshot of the
    /// live registry (see the module documentation for why this loses no
    /// change and marks none durable early). `files` is the held `state`
    /// lock: no drain runs meanwhile.
    fn compact(&self, files: &mut Files) {
        let Some(source) = self.source.get() else {
            // Not attached (no `Shared` yet): keep appending.
            self.drain(files);
            return;
        };
        let mut taken = None;
        // Lock order: the engine (inside `source`), then the queue, as
        // every submitter takes them.
        source(&mut |reg| {
            let (batch, covered) = {
                let mut q = self.queue();
                (std::mem::take(&mut q.changes), q.submitted)
            };
            // Changes made but not yet submitted are in the snapshot; left
            // in the log they would be appended after it and replayed twice
            // (a PMAP addition twice is two mappings).
            reg.take_changes();
            taken = Some((
                batch,
                covered,
                Snapshot::write(&files.dir, files.owner, reg),
            ));
        });
        // The engine is unlocked again: requests go on while the files are
        // written, their changes queue up for the drain after this one.
        let Some((batch, covered, snapshot)) = taken else {
            return;
        };
        match snapshot.and_then(|s| s.commit(&files.dir, files.owner)) {
            Ok(fresh) => {
                *files = fresh;
                let n = self.compactions.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::debug!(
                    "warm start: state rewritten ({} bytes; rewrite {n})",
                    files.state_len
                );
            }
            Err(e) => {
                tracing::error!(
                    "warm start: cannot write the state in {}: {e}",
                    files.dir.display()
                );
                // The old journal plus the taken changes is the snapshot:
                // what a drain would have written instead.
                if !batch.is_empty() {
                    self.append(files, &batch);
                }
                files.force_compaction();
            }
        }
        self.durable.send_replace(covered);
    }

    /// After releasing `state`: hands what is left (changes queued while
    /// it was held, or a rewrite) to the writer thread.
    fn hand_over(&self, compact: bool) {
        let mut q = self.queue();
        q.compact |= compact;
        if q.compact || !q.changes.is_empty() {
            self.wake.notify_one();
        }
    }
}

/// The writer thread and the queue the request handlers feed.
#[derive(Debug)]
pub struct Persister {
    inner: Arc<Inner>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Persister {
    /// Writes `registry` (C files and a fresh journal) and starts the
    /// writer thread, which rewrites the files when the journal has grown
    /// (once [`attach`](Self::attach)ed) and writes what handlers left
    /// behind.
    pub fn start(dir: &Path, owner: Owner, registry: &Registry) -> io::Result<Persister> {
        Self::start_with(dir, owner, registry, MIN_COMPACT)
    }

    fn start_with(
        dir: &Path,
        owner: Owner,
        registry: &Registry,
        min_compact: u64,
    ) -> io::Result<Persister> {
        let files = Files::compact(dir, owner, registry)?;
        let (durable, _) = tokio::sync::watch::channel(0);
        let inner = Arc::new(Inner {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            state: Mutex::new(files),
            durable,
            source: OnceLock::new(),
            min_compact,
            compactions: AtomicU64::new(0),
        });
        let worker = inner.clone();
        let thread = std::thread::Builder::new()
            .name("warmstart".into())
            .spawn(move || writer(&worker))?;
        Ok(Persister {
            inner,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Gives the writer the live registry to rewrite the files from (the
    /// writer keeps no copy of its own). `source` must hold the lock that
    /// every [`submit`](Self::submit) is called under while it runs its
    /// argument. A second call is ignored.
    pub fn attach(&self, source: Box<Source>) {
        if self.inner.source.set(source).is_err() {
            tracing::warn!("warm start: registry source attached twice; the first kept");
        }
    }

    /// Queues changes (in the order the registry made them; call with the
    /// engine locked, and only with changes: a ticket without any is
    /// never published) and returns the ticket to [`wait`](Self::wait)
    /// for.
    pub fn submit(&self, changes: Vec<Change>) -> u64 {
        let mut q = self.inner.queue();
        q.changes.extend(changes);
        q.submitted += 1;
        q.submitted
    }

    /// Returns once the changes of `ticket` are on disk. When nobody is
    /// writing, the caller appends the queue itself (one small write and
    /// `fdatasync`, no thread hand-off); otherwise the current writer's
    /// next batch, or the snapshot of a compaction, carries its changes
    /// (group commit). Never takes the engine lock (the writer may hold
    /// `state` while waiting for it).
    pub async fn wait(&self, ticket: u64) {
        let mut rx = self.inner.durable.subscribe();
        if *rx.borrow_and_update() >= ticket {
            return;
        }
        if let Ok(mut files) = self.inner.state.try_lock() {
            self.inner.drain(&mut files);
            let compact = files.wants_compaction(self.inner.min_compact);
            drop(files);
            self.inner.hand_over(compact);
        } else {
            // The holder hands over what it did not write when it lets go.
            self.inner.hand_over(false);
        }
        // The sender lives as long as `self`, so this only fails if the
        // writer is gone, and then there is nothing left to wait for.
        let _ = rx.wait_for(|&d| d >= ticket).await;
    }

    /// Writes what is queued, rewrites the C files from the live registry
    /// (so that the C daemon started with `-w` finds everything) and stops
    /// the writer. Call without the engine locked.
    pub fn shutdown(&self) {
        {
            let mut q = self.inner.queue();
            q.shutdown = true;
            self.inner.wake.notify_one();
        }
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(t) = thread {
            if t.join().is_err() {
                tracing::error!("warm start: the writer thread panicked");
            }
        }
    }
}

fn writer(inner: &Inner) {
    loop {
        let shutdown = {
            let mut q = inner.queue();
            while q.changes.is_empty() && !q.compact && !q.shutdown {
                q = inner.wake.wait(q).unwrap_or_else(PoisonError::into_inner);
            }
            q.compact = false;
            q.shutdown
        };
        let mut files = inner.state.lock().unwrap_or_else(PoisonError::into_inner);
        // A rewrite due now carries the queue in its snapshot: appending it
        // first would be a wasted fdatasync.
        if !shutdown && !files.wants_compaction(inner.min_compact) {
            inner.drain(&mut files);
        }
        if shutdown || files.wants_compaction(inner.min_compact) {
            inner.compact(&mut files);
            drop(files);
            // The writer's buffers since the last rewrite were freed:
            // without a trim glibc keeps some of them resident (see
            // `sys::trim_heap`). Done after letting go of `state`, so no
            // inline commit waits for it.
            crate::sys::trim_heap();
        }
        if shutdown {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::rpc::{Program, Version};
    use std::collections::BTreeMap;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ws-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// The engine's part in these tests: a locked registry, attached as
    /// `Shared::with_warmstart` attaches the engine.
    type Live = Arc<Mutex<Registry>>;

    fn live(p: &Persister, reg: Registry) -> Live {
        let live = Arc::new(Mutex::new(reg));
        let source = live.clone();
        p.attach(Box::new(move |f| f(&mut source.lock().unwrap())));
        live
    }

    /// Changes the registry and submits its changes under its lock, as
    /// `Shared` does.
    fn change(p: &Persister, live: &Live, f: impl FnOnce(&mut Registry)) -> u64 {
        let mut reg = live.lock().unwrap();
        f(&mut reg);
        p.submit(reg.take_changes())
    }

    fn churn(p: &Persister, live: &Live, n: u32) -> u64 {
        let mut ticket = 0;
        for i in 0..n {
            ticket = change(p, live, |reg| {
                let prog = Program(0x2000_0000 + i);
                reg.set(prog, Version(1), "udp", "0.0.0.0.4.1", "0");
                if i % 3 == 0 {
                    reg.unset(prog, Version(1), "", "superuser");
                }
            });
        }
        ticket
    }

    fn assert_loads_as(dir: &Path, reg: &Registry) {
        let back = load(dir).unwrap();
        assert!(back.iter().eq(reg.iter()), "RPCBIND list");
        assert!(back.pmap_iter().eq(reg.pmap_iter()), "PMAP list");
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn what_was_submitted_is_loaded_back_without_shutdown() {
        let dir = scratch("crash");
        let mut reg = Registry::new();
        reg.set(
            Program(100000),
            Version(2),
            "udp",
            "0.0.0.0.0.111",
            "superuser",
        );
        reg.record_changes();
        let p = Persister::start(&dir, None, &reg).unwrap();
        let reg = live(&p, reg);
        block_on(p.wait(churn(&p, &reg, 300)));
        // Enough for a rewrite of the files by the writer thread.
        block_on(p.wait(churn(&p, &reg, 15_000)));
        block_on(p.wait(churn(&p, &reg, 300)));
        // The rewrite has run once the files hold the big state.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while p.inner.state.lock().unwrap().state_len < 100_000 {
            assert!(std::time::Instant::now() < deadline, "no rewrite");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // No shutdown: as after kill -9.
        let reg = reg.lock().unwrap().clone();
        assert_loads_as(&dir, &reg);
        assert_eq!(reg.len(), 10_001);
        p.shutdown();
        let c_files = Registry::from_lists(
            ws::decode_rpcb_file(&std::fs::read(dir.join(RPCB_FILE)).unwrap()).unwrap(),
            ws::decode_pmap_file(&std::fs::read(dir.join(PMAP_FILE)).unwrap()).unwrap(),
        );
        assert!(
            c_files.iter().eq(reg.iter()),
            "shutdown rewrites the C files"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Three "handlers" change the registry and wait for durability while
    /// the writer rewrites the files from the live registry again and
    /// again: every acknowledged change is on disk at any quiet moment,
    /// and after the last one (no shutdown, as after kill -9) the
    /// directory holds exactly the live registry.
    #[test]
    fn compactions_during_churn_lose_nothing_acknowledged() {
        let dir = scratch("churn");
        let mut reg = Registry::new();
        reg.set(
            Program(100000),
            Version(4),
            "udp",
            "0.0.0.0.0.111",
            "superuser",
        );
        reg.record_changes();
        // No minimum: the journal is rewritten whenever it outgrows four
        // times the (small) state, every few hundred changes.
        let p = Persister::start_with(&dir, None, &reg, 0).unwrap();
        let reg = live(&p, reg);
        std::thread::scope(|s| {
            for t in 0..3u32 {
                let (p, reg, dir) = (&p, &reg, &dir);
                s.spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .unwrap();
                    // This thread's programs and whether each is set now.
                    let mut mine = BTreeMap::new();
                    for i in 0..2_000u32 {
                        let prog = Program(0x2000_0000 + t * 1000 + i % 40);
                        let set = !mine.get(&prog).copied().unwrap_or(false);
                        let ticket = change(p, reg, |reg| {
                            if set {
                                let addr = format!("0.0.0.0.{}.{}", t + 1, i % 250);
                                assert!(reg.set(prog, Version(1), "udp", &addr, "superuser"));
                            } else {
                                assert!(reg.unset(prog, Version(1), "", "superuser"));
                            }
                        });
                        rt.block_on(p.wait(ticket));
                        mine.insert(prog, set);
                        if i % 250 == 249 {
                            // Holding `state` stops drains and rewrites, so
                            // the files are quiet while they are read.
                            let _quiet = p.inner.state.lock().unwrap();
                            let back = load(dir).unwrap();
                            for (&prog, &set) in &mine {
                                let on_disk = back.iter().any(|r| r.program == prog);
                                assert_eq!(on_disk, set, "{prog:?} acknowledged, not on disk");
                            }
                        }
                    }
                });
            }
        });
        let rewrites = p.inner.compactions.load(Ordering::Relaxed);
        assert!(rewrites >= 3, "only {rewrites} rewrites");
        let reg = reg.lock().unwrap().clone();
        assert_loads_as(&dir, &reg);
        p.shutdown();
        assert_loads_as(&dir, &reg);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_rewrite_takes_changes_not_yet_submitted() {
        let dir = scratch("unsubmitted");
        let mut reg = Registry::new();
        reg.record_changes();
        let p = Persister::start(&dir, None, &reg).unwrap();
        let reg = live(&p, reg);
        // Made under the lock but not submitted yet when the rewrite runs.
        reg.lock()
            .unwrap()
            .set(Program(7), Version(2), "udp", "0.0.0.0.4.1", "superuser");
        p.inner.compact(&mut p.inner.state.lock().unwrap());
        // Submitted now, it would be replayed on top of the snapshot (a
        // second PMAP mapping); the rewrite took it.
        assert!(reg.lock().unwrap().take_changes().is_empty());
        block_on(p.wait(change(&p, &reg, |reg| {
            reg.set(Program(8), Version(2), "udp", "0.0.0.0.4.2", "superuser");
        })));
        let reg = reg.lock().unwrap().clone();
        assert_eq!(reg.pmap_iter().count(), 2);
        assert_loads_as(&dir, &reg);
        p.shutdown();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The files written a piece at a time are byte for byte the state
    /// encoded whole: the C files, and the journal's header and record.
    #[test]
    fn a_rewrite_writes_the_whole_state_encodings() {
        let dir = scratch("pieces");
        let mut reg = Registry::new();
        for i in 0..20_000u32 {
            let netid = ["udp", "tcp", "udp6", "local"][i as usize % 4];
            let addr = format!("10.0.{}.{}.{}.{}", i % 9, i % 200, i >> 8, i & 255);
            reg.set(Program(0x2000_0000 + i), Version(1), netid, &addr, "1000");
        }
        let files = Files::compact(&dir, None, &reg).unwrap();
        let (rpcb, pmap) = (
            ws::encode_rpcb_file(reg.iter()),
            ws::encode_pmap_file(reg.pmap_iter()),
        );
        assert!(rpcb.len() > 8 * ws::PIECE);
        let mut journal = ws::journal_header(ws::state_hash(&rpcb, &pmap));
        journal.extend(ws::full_state_record(reg.iter(), reg.pmap_iter()));
        assert!(std::fs::read(dir.join(RPCB_FILE)).unwrap() == rpcb);
        assert!(std::fs::read(dir.join(PMAP_FILE)).unwrap() == pmap);
        assert!(std::fs::read(dir.join(JOURNAL_FILE)).unwrap() == journal);
        assert_eq!(files.journal_len, journal.len() as u64);
        assert_eq!(files.state_len, (rpcb.len() + pmap.len()) as u64);
        assert_loads_as(&dir, &reg);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_rewrite_cut_short_between_renames_keeps_the_new_journal() {
        let dir = scratch("cut");
        let mut reg = Registry::new();
        reg.set(Program(7), Version(1), "udp", "0.0.0.0.4.1", "superuser");
        Files::compact(&dir, None, &reg).unwrap();
        // The next rewrite: temporary C files written, the journal renamed,
        // then the crash (C files still the old ones).
        reg.set(Program(8), Version(1), "udp", "0.0.0.0.4.2", "superuser");
        let (rpcb, pmap) = (
            ws::encode_rpcb_file(reg.iter()),
            ws::encode_pmap_file(reg.pmap_iter()),
        );
        std::fs::write(tmp(&dir.join(RPCB_FILE)), &rpcb).unwrap();
        std::fs::write(tmp(&dir.join(PMAP_FILE)), &pmap).unwrap();
        let mut journal = ws::journal_header(ws::state_hash(&rpcb, &pmap));
        journal.extend(ws::full_state_record(reg.iter(), reg.pmap_iter()));
        std::fs::write(dir.join(JOURNAL_FILE), journal).unwrap();
        let back = load(&dir).unwrap();
        assert!(back.iter().eq(reg.iter()), "both registrations");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn files_written_by_another_daemon_win_over_our_journal() {
        let dir = scratch("other");
        let mut reg = Registry::new();
        reg.record_changes();
        let p = Persister::start(&dir, None, &reg).unwrap();
        let reg = live(&p, reg);
        churn(&p, &reg, 10);
        p.shutdown();
        let other = ws::encode_rpcb_file(Registry::new().iter());
        std::fs::write(dir.join(RPCB_FILE), &other).unwrap();
        assert_eq!(load(&dir).unwrap().len(), 0);
        std::fs::write(dir.join(RPCB_FILE), &other[..2]).unwrap();
        assert!(load(&dir).is_none(), "a torn file is skipped");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
