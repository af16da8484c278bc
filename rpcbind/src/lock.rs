//! The single-instance lock: an exclusive, non-blocking `flock` on
//! `/run/rpcbind.lock`, as the C daemon takes it (file created read-only,
//! mode 0444) before it touches any socket. Does I/O (the lock file).
//!
//! The lock belongs to the open file description, so it survives the fork
//! into the background and ends when the process does, even on `kill -9`.
//! On a clean exit [`InstanceLock::release`] also removes the file.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// The lock file of rpcbind 1.2.x.
pub const LOCK_PATH: &str = "/run/rpcbind.lock";

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Another process holds the lock.
    #[error("another rpcbind is already running. Aborting")]
    Held,
    /// The lock file could not be opened or locked (shown like C's
    /// `err(3)`: `path: strerror`).
    #[error("{}: {}", path.display(), strerror(err))]
    Io { path: PathBuf, err: io::Error },
}

/// The C library's text for an OS error, without Rust's "(os error N)".
fn strerror(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => Errno::from_raw(n).desc().to_owned(),
        None => e.to_string(),
    }
}

/// The held lock; dropping it releases the lock but leaves the file.
#[derive(Debug)]
pub struct InstanceLock {
    path: PathBuf,
    _lock: Flock<File>,
}

impl InstanceLock {
    /// Takes the lock at `path`, creating the file if needed.
    pub fn acquire(path: &Path) -> Result<Self, LockError> {
        let io_err = |err| LockError::Io {
            path: path.to_owned(),
            err,
        };
        // A previous owner may unlink the file between our open and our
        // flock; then we would hold a lock on a file nobody else sees.
        // Retry until the locked file is the one at `path`.
        for _ in 0..8 {
            let file = open_lock_file(path).map_err(io_err)?;
            let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(l) => l,
                Err((_, Errno::EWOULDBLOCK)) => return Err(LockError::Held),
                Err((_, e)) => return Err(io_err(e.into())),
            };
            if same_file(&lock, path) {
                return Ok(InstanceLock {
                    path: path.to_owned(),
                    _lock: lock,
                });
            }
        }
        Err(io_err(io::Error::other("lock file keeps being replaced")))
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The locked descriptor (kept open by the cleanup keeper, see
    /// `privdrop`, so the lock outlives the daemon until the files are
    /// gone).
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self._lock.as_raw_fd()
    }

    /// Removes the lock file, then releases the lock (clean exit). The
    /// daemon leaves this to the cleanup keeper (`privdrop`) now.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn release(self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!("cannot remove {}: {e}", self.path.display());
            }
        }
    }
}

/// Creates (or opens) the lock file with mode 0444, like C's
/// `open(O_RDONLY|O_CREAT, 0444)`. std refuses O_CREAT without write
/// access, so open for append, falling back to read-only when the existing
/// file is not writable for us.
fn open_lock_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o444)
        .open(path)
        .or_else(|e| match e.kind() {
            // An existing read-only file we may not write: read it.
            io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
                File::open(path).map_err(|_| e)
            }
            _ => Err(e),
        })
}

fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("rpcbind-lock-{}-{name}", std::process::id()))
    }

    #[test]
    fn second_acquire_is_refused_until_release() {
        let path = temp_path("second");
        let first = InstanceLock::acquire(&path).unwrap();
        assert!(matches!(InstanceLock::acquire(&path), Err(LockError::Held)));
        first.release();
        assert!(!path.exists());
        let again = InstanceLock::acquire(&path).unwrap();
        again.release();
    }

    #[test]
    fn file_is_created_read_only() {
        let path = temp_path("mode");
        let lock = InstanceLock::acquire(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode & 0o222, 0, "mode {mode:o}");
        lock.release();
    }

    #[test]
    fn held_message_matches_c() {
        assert_eq!(
            LockError::Held.to_string(),
            "another rpcbind is already running. Aborting"
        );
    }
}
