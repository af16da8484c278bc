//! Detaching into the background as the C daemon's `daemon(0, 0)` does,
//! after the lock is held and every socket is bound: fork (the parent
//! exits 0 at once), `setsid`, `chdir("/")`, standard input, output and
//! error onto `/dev/null`. Must run before any thread exists (checked in
//! [`crate::sys`]). Does I/O (process and descriptors).

use std::fs::OpenOptions;
use std::io;

use nix::unistd::{chdir, dup2_stderr, dup2_stdin, dup2_stdout, setsid};

use crate::sys::{fork_single_threaded, Forked};

/// Continues in a detached child; the parent process exits with status 0
/// without running destructors (its copy of the lock must not be
/// unlocked: the lock belongs to the open file the child shares).
pub fn detach() -> io::Result<()> {
    if matches!(fork_single_threaded()?, Forked::Parent(_)) {
        std::process::exit(0);
    }
    setsid()?;
    chdir("/")?;
    let null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    dup2_stdin(&null)?;
    dup2_stdout(&null)?;
    dup2_stderr(&null)?;
    Ok(())
}
