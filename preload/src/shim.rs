//! Serving one intercepted call: read the caller's socket, decide, ask the
//! allocation service, check what came back, put it in place. Also the
//! per-thread recursion guard, the environment switches (read once) and
//! the optional debug log on stderr. Does I/O through `sys` and `service`;
//! implements no RFC.

use std::cell::Cell;
use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::OnceLock;

use crate::decide::{check_received, decide, Call, Fallback, Requested};
use crate::{service, sys};

/// Set: port-0 binds of server sockets are served from the pool.
pub const ENV_BIND0: &str = "PORTPOLICY_PRELOAD_BIND0";
/// Set to 1: one line per intercepted call on stderr.
pub const ENV_DEBUG: &str = "PORTPOLICY_PRELOAD_DEBUG";

thread_local! {
    /// True while this thread runs inside one of the shim's entry points.
    static INSIDE: Cell<bool> = const { Cell::new(false) };
}

/// Held while an entry point runs: nested intercepted calls on the same
/// thread (the shim's own socket calls, the real function's inner calls)
/// go straight to the real functions.
#[derive(Debug)]
pub struct Guard(());

impl Guard {
    /// `None` when this thread is already inside the shim (or its
    /// thread-locals are gone, during thread exit).
    pub fn enter() -> Option<Guard> {
        let entered = INSIDE
            .try_with(|inside| !inside.replace(true))
            .unwrap_or(false);
        entered.then_some(Guard(()))
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = INSIDE.try_with(|inside| inside.set(false));
    }
}

fn env_is_one(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| v == "1")
}

/// PORTPOLICY_PRELOAD_BIND0=1, read at the first intercepted bind().
pub fn bind0_enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| env_is_one(ENV_BIND0))
}

fn debug_enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| env_is_one(ENV_DEBUG))
}

/// One stderr line when PORTPOLICY_PRELOAD_DEBUG=1; never stdout, which
/// belongs to the host program.
pub fn debug(args: std::fmt::Arguments<'_>) {
    if debug_enabled() {
        let _ = writeln!(
            std::io::stderr(),
            "portpolicy-preload[{}]: {args}",
            std::process::id()
        );
    }
}

/// Logs how an entry point ended (debug mode only). Port-0 binds that are
/// not the shim's business (explicit ports) are not logged.
pub fn log_outcome(what: &str, fd: RawFd, outcome: &Result<u16, Fallback>) {
    match outcome {
        Ok(port) => debug(format_args!("{what}(fd {fd}): pool port {port}")),
        Err(Fallback::NotPortZero) => {}
        Err(why) => debug(format_args!("{what}(fd {fd}): real function ({why})")),
    }
}

/// Serves `call` on the caller's descriptor `sd` from the pool: returns
/// the bound port with `sd` now naming the service's socket, or why the
/// real function must run instead (`sd` untouched).
pub fn serve(call: Call, sd: RawFd, requested: Requested) -> Result<u16, Fallback> {
    // Decide before touching the service, so port-0 binds of explicit
    // ports and non-inet sockets cost two getsockopt calls at most.
    if call == Call::Bind0 {
        match requested {
            Requested::Addr(a) if a.port() == 0 => {}
            _ => return Err(Fallback::NotPortZero),
        }
    }
    let caller = sys::sock_info(sd).map_err(|_| Fallback::NotASocket)?;
    let request = decide(call, &caller, requested)?;
    let flags = sys::fd_flags(sd).map_err(|_| Fallback::System)?;
    let grant = service::allocate(&request).map_err(|e| {
        debug(format_args!("allocation service: {e}"));
        Fallback::Service
    })?;
    let received = sys::sock_info(grant.fd.as_raw_fd()).map_err(|_| Fallback::System)?;
    if let Err(m) = check_received(call, &caller, &received, grant.port) {
        service::give_back(grant);
        return Err(Fallback::Mismatch(m));
    }
    if let Err(e) = sys::put_in_place(&grant.fd, sd, flags) {
        debug(format_args!("dup3 onto fd {sd}: {e}"));
        service::give_back(grant);
        return Err(Fallback::System);
    }
    // Dropping the grant closes the received descriptor: `sd` has it now.
    Ok(grant.port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_refuses_reentry_on_the_same_thread_and_resets_on_drop() {
        let outer = Guard::enter();
        assert!(outer.is_some());
        assert!(Guard::enter().is_none(), "nested entry must pass through");
        // another thread is not inside
        assert!(std::thread::spawn(|| Guard::enter().is_some())
            .join()
            .unwrap());
        drop(outer);
        assert!(Guard::enter().is_some());
    }

    #[test]
    fn the_guard_resets_when_a_panic_unwinds_through_it() {
        let r = std::panic::catch_unwind(|| {
            let _g = Guard::enter();
            panic!("inside");
        });
        assert!(r.is_err());
        assert!(Guard::enter().is_some());
    }
}
