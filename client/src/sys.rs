//! The crate's only unsafe code: taking ownership of descriptors the kernel
//! installed in this process from an SCM_RIGHTS message. Does no I/O.

use nix::libc;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Owns a descriptor received with SCM_RIGHTS, so it is closed exactly once
/// (when dropped, on every error path).
pub(crate) fn own_received_fd(raw: RawFd) -> OwnedFd {
    // SAFETY: `raw` was just installed in our descriptor table by the kernel
    // for this recvmsg() (SCM_RIGHTS); no other owner exists.
    unsafe { OwnedFd::from_raw_fd(raw) }
}

/// The descriptors of the first control message of a buffer that recvmsg()
/// filled and flagged MSG_CTRUNC, which nix refuses to iterate. The kernel
/// installs the descriptors that fit and shortens `cmsg_len` to them; the
/// buffer was zeroed before the call, so an absent header reads as length 0.
/// Parsed in safe code from the Linux `cmsghdr` layout (a `size_t` length,
/// then level and type as `int`).
pub(crate) fn scm_rights_in(space: &[u8]) -> Vec<OwnedFd> {
    let word = std::mem::size_of::<usize>();
    let header = std::mem::size_of::<libc::cmsghdr>();
    let read_usize = |at: usize| {
        space
            .get(at..at + word)
            .and_then(|b| b.try_into().ok())
            .map(usize::from_ne_bytes)
    };
    let read_i32 = |at: usize| {
        space
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map(i32::from_ne_bytes)
    };
    let (Some(len), Some(level), Some(kind)) = (read_usize(0), read_i32(word), read_i32(word + 4))
    else {
        return Vec::new();
    };
    if level != libc::SOL_SOCKET || kind != libc::SCM_RIGHTS || len < header {
        return Vec::new();
    }
    let end = len.min(space.len());
    (header..end)
        .step_by(4)
        .filter_map(|at| read_i32(at).filter(|_| at + 4 <= end))
        .filter(|fd| *fd >= 0)
        .map(own_received_fd)
        .collect()
}

/// Makes `fd` the descriptor `target` of this process, inheritable across
/// exec (FD_CLOEXEC clear), and leaves it open for the program about to
/// be exec'd. Whatever `target` was before is closed by dup2(), atomically.
pub(crate) fn install_inheritable(fd: OwnedFd, target: RawFd) -> std::io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    use std::os::fd::{AsRawFd, IntoRawFd};
    if fd.as_raw_fd() == target {
        // dup2() onto itself would keep FD_CLOEXEC: clear it instead.
        fcntl(&fd, FcntlArg::F_SETFD(FdFlag::empty()))?;
        let _ = fd.into_raw_fd();
        return Ok(());
    }
    // SAFETY: `target` may be a descriptor this process holds under another
    // owner; dup2() replaces it, which is what the caller asks for right
    // before exec (documented on `install_listen_fd`), when no other code
    // runs that could still use it.
    let installed = unsafe { nix::unistd::dup2_raw(&fd, target) }?;
    // Deliberately not closed: it is for the exec'd program.
    let _ = installed.into_raw_fd();
    Ok(())
}
