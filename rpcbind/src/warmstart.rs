//! Warm start (`-w`) that survives a crash. Does I/O: reads the state at
//! start, then one writer thread makes every registry change durable
//! before the request that made it is answered.
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
//! Start: the journal is used when its header names the C files beside it
//! (or a compaction was cut short, leaving `*.tmp`); otherwise the C files
//! are used (the C daemon wrote them), as C's `read_warmstart` does: both
//! lists replaced, the daemon's own entries included. Anything torn or
//! corrupt is logged with its file and reason and skipped.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;

use proto::engine::{Change, Registration, Registry};
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

fn write_synced(path: &Path, bytes: &[u8], owner: Owner) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    if let Some((uid, gid)) = owner.filter(|_| nix::unistd::geteuid().is_root()) {
        nix::unistd::fchown(&f, Some(uid), Some(gid))?;
    }
    f.write_all(bytes)?;
    f.sync_all()
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
    /// Rewrites the C files and starts a fresh journal holding the whole
    /// state. The journal is renamed first: a crash between the renames
    /// leaves `*.tmp` behind, which tells `load` to trust the journal.
    fn compact(dir: &Path, owner: Owner, reg: &Registry) -> io::Result<Files> {
        let rpcb = ws::encode_rpcb_file(reg.iter());
        let pmap = ws::encode_pmap_file(reg.pmap_iter());
        let (rpcb_path, pmap_path) = (dir.join(RPCB_FILE), dir.join(PMAP_FILE));
        let journal_path = dir.join(JOURNAL_FILE);
        write_synced(&tmp(&rpcb_path), &rpcb, owner)?;
        write_synced(&tmp(&pmap_path), &pmap, owner)?;
        let mut journal = ws::journal_header(ws::state_hash(&rpcb, &pmap));
        journal.extend(ws::full_state_record(reg.iter(), reg.pmap_iter()));
        write_synced(&tmp(&journal_path), &journal, owner)?;
        for p in [&journal_path, &rpcb_path, &pmap_path] {
            std::fs::rename(tmp(p), p)?;
        }
        File::open(dir)?.sync_all()?;
        let file = OpenOptions::new().append(true).open(&journal_path)?;
        Ok(Files {
            dir: dir.to_owned(),
            owner,
            journal: file,
            journal_len: journal.len() as u64,
            state_len: (rpcb.len() + pmap.len()) as u64,
        })
    }

    fn append(&mut self, record: &[u8]) -> io::Result<()> {
        self.journal.write_all(record)?;
        self.journal.sync_data()?;
        self.journal_len += record.len() as u64;
        Ok(())
    }

    fn wants_compaction(&self) -> bool {
        self.journal_len > MIN_COMPACT.max(self.state_len * COMPACT_FACTOR)
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
    let files = [
        (dir.join(RPCB_FILE), ws::encode_rpcb_file(reg.iter())),
        (dir.join(PMAP_FILE), ws::encode_pmap_file(reg.pmap_iter())),
    ];
    for (path, bytes) in &files {
        write_synced(&tmp(path), bytes, owner)?;
    }
    for (path, _) in &files {
        std::fs::rename(tmp(path), path)?;
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

/// The files and the replica of the registry they hold.
#[derive(Debug)]
struct State {
    files: Files,
    replica: Registry,
}

#[derive(Debug)]
struct Inner {
    queue: Mutex<Queue>,
    wake: Condvar,
    /// Held by whoever writes: a request handler committing inline, or
    /// the writer thread.
    state: Mutex<State>,
    durable: tokio::sync::watch::Sender<u64>,
}

impl Inner {
    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends everything queued to the journal, batch by batch, and
    /// publishes each batch's last ticket once it is on disk.
    fn drain(&self, st: &mut State) {
        loop {
            let (batch, ticket) = {
                let mut q = self.queue();
                if q.changes.is_empty() {
                    return;
                }
                (std::mem::take(&mut q.changes), q.submitted)
            };
            for c in &batch {
                st.replica.apply(c);
            }
            if let Err(e) = st.files.append(&ws::journal_record(&batch)) {
                tracing::error!(
                    "warm start: cannot write {}: {e}; rewriting the state",
                    st.files.dir.join(JOURNAL_FILE).display()
                );
                st.files.journal_len = u64::MAX;
            }
            self.durable.send_replace(ticket);
        }
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
    /// Writes the current state (C files and a fresh journal) and starts
    /// the writer thread, which rewrites the C files when the journal has
    /// grown and writes what handlers left behind.
    pub fn start(dir: &Path, owner: Owner, registry: &Registry) -> io::Result<Persister> {
        let mut replica = Registry::from_lists(
            registry.iter().map(Registration::from),
            registry.pmap_iter().copied(),
        );
        replica.take_changes();
        let files = Files::compact(dir, owner, &replica)?;
        let (durable, _) = tokio::sync::watch::channel(0);
        let inner = Arc::new(Inner {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            state: Mutex::new(State { files, replica }),
            durable,
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

    /// Queues changes (in the order the registry made them; call with the
    /// engine locked) and returns the ticket to [`wait`](Self::wait) for.
    pub fn submit(&self, changes: Vec<Change>) -> u64 {
        let mut q = self.inner.queue();
        q.changes.extend(changes);
        q.submitted += 1;
        q.submitted
    }

    /// Returns once the changes of `ticket` are on disk. When nobody is
    /// writing, the caller appends the queue itself (one small write and
    /// `fdatasync`, no thread hand-off); otherwise the current writer's
    /// next batch carries its changes (group commit).
    pub async fn wait(&self, ticket: u64) {
        let mut rx = self.inner.durable.subscribe();
        if *rx.borrow_and_update() >= ticket {
            return;
        }
        if let Ok(mut st) = self.inner.state.try_lock() {
            self.inner.drain(&mut st);
            let compact = st.files.wants_compaction();
            drop(st);
            self.inner.hand_over(compact);
        } else {
            // The holder hands over what it did not write when it lets go.
            self.inner.hand_over(false);
        }
        // The sender lives as long as `self`, so this only fails if the
        // writer is gone, and then there is nothing left to wait for.
        let _ = rx.wait_for(|&d| d >= ticket).await;
    }

    /// Writes what is queued, rewrites the C files (so that the C daemon
    /// started with `-w` finds everything) and stops the writer.
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
        let mut st = inner.state.lock().unwrap_or_else(PoisonError::into_inner);
        inner.drain(&mut st);
        if shutdown || st.files.wants_compaction() {
            let (dir, owner) = (st.files.dir.clone(), st.files.owner);
            match Files::compact(&dir, owner, &st.replica) {
                Ok(f) => st.files = f,
                Err(e) => tracing::error!(
                    "warm start: cannot write the state in {}: {e}",
                    dir.display()
                ),
            }
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

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ws-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn churn(p: &Persister, reg: &mut Registry, n: u32) -> u64 {
        let mut ticket = 0;
        for i in 0..n {
            reg.set(
                Program(0x2000_0000 + i),
                Version(1),
                "udp",
                "0.0.0.0.4.1",
                "0",
            );
            if i % 3 == 0 {
                reg.unset(Program(0x2000_0000 + i), Version(1), "", "superuser");
            }
            ticket = p.submit(reg.take_changes());
        }
        ticket
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
        let ticket = churn(&p, &mut reg, 300);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(p.wait(ticket));
        // Enough for a rewrite of the files by the writer thread.
        let big = churn(&p, &mut reg, 15_000);
        rt.block_on(p.wait(big));
        let ticket = churn(&p, &mut reg, 300);
        rt.block_on(p.wait(ticket));
        // The rewrite has run once the files hold the big state.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while p.inner.state.lock().unwrap().files.state_len < 100_000 {
            assert!(std::time::Instant::now() < deadline, "no rewrite");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // No shutdown: as after kill -9.
        let back = load(&dir).unwrap();
        assert!(back.iter().eq(reg.iter()));
        assert!(back.pmap_iter().eq(reg.pmap_iter()));
        assert_eq!(back.len(), 10_001);
        p.shutdown();
        let c_files = Registry::from_lists(
            ws::decode_rpcb_file(&std::fs::read(dir.join(RPCB_FILE)).unwrap()).unwrap(),
            ws::decode_pmap_file(&std::fs::read(dir.join(PMAP_FILE)).unwrap()).unwrap(),
        );
        assert!(
            c_files.iter().eq(reg.iter()),
            "shutdown rewrites the C files"
        );
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
        churn(&p, &mut reg, 10);
        p.shutdown();
        let other = ws::encode_rpcb_file(Registry::new().iter());
        std::fs::write(dir.join(RPCB_FILE), &other).unwrap();
        assert_eq!(load(&dir).unwrap().len(), 0);
        std::fs::write(dir.join(RPCB_FILE), &other[..2]).unwrap();
        assert!(load(&dir).is_none(), "a torn file is skipped");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
