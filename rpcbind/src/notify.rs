//! systemd readiness notification (sd_notify(3), `Type=notify`): READY=1
//! once every listener is served, `STATUS=` with the number of
//! registrations (sent when it changes, at most once per
//! [`STATUS_EVERY`]), STOPPING=1 when a termination signal arrives, and
//! the datagrams with a descriptor that `fdstore` sends (FDSTORE=1). Does
//! I/O (one datagram socket).
//!
//! The protocol is one datagram of `KEY=VALUE` lines to the unix socket
//! named by `NOTIFY_SOCKET`; a name starting with `@` is in the abstract
//! namespace. The sd-notify crate was not among the fetched dependencies,
//! and this is the whole of what it would do for us. The socket is
//! connected at start-up, while the process still has its privileges, so
//! the privilege drop cannot cut the daemon off from its supervisor.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::server::Shared;

/// The environment variable that names the supervisor's socket.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// The shortest interval between two STATUS= updates.
pub const STATUS_EVERY: Duration = Duration::from_secs(1);

/// A connection to the supervisor's notification socket.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
}

impl Notifier {
    /// Reads and removes `NOTIFY_SOCKET` (before any thread starts) and
    /// connects to it. `None` when unset; an unusable socket is logged
    /// to stderr (logging is not set up yet) and treated as unset.
    pub fn take_from_env() -> Option<Notifier> {
        let name = std::env::var_os(NOTIFY_SOCKET)?;
        std::env::remove_var(NOTIFY_SOCKET);
        match Self::connect(name.as_bytes()) {
            Ok(n) => Some(n),
            Err(e) => {
                eprintln!(
                    "rpcbind: cannot use {NOTIFY_SOCKET}={}: {e}",
                    name.to_string_lossy()
                );
                None
            }
        }
    }

    /// Connects to `name` (a path, or `@abstract`).
    pub fn connect(name: &[u8]) -> io::Result<Notifier> {
        let addr = match name.strip_prefix(b"@") {
            Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name)?,
            None if name.starts_with(b"/") => {
                SocketAddr::from_pathname(std::ffi::OsStr::from_bytes(name))?
            }
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "neither an absolute path nor an abstract name",
                ))
            }
        };
        let socket = UnixDatagram::unbound()?;
        socket.connect_addr(&addr)?;
        socket.set_nonblocking(true)?;
        Ok(Notifier { socket })
    }

    /// Sends one notification; failures are logged, never fatal (the
    /// daemon serves whether or not anyone listens).
    pub fn send(&self, state: &str) {
        if let Err(e) = self.socket.send(state.as_bytes()) {
            tracing::warn!("cannot notify the service manager ({state:?}): {e}");
        }
    }

    /// Sends one notification with `fd` attached (SCM_RIGHTS), as
    /// `FDSTORE=1` needs; through the project's one descriptor sender.
    /// Failures are logged, never fatal.
    pub fn send_with_fd(&self, state: &str, fd: std::os::fd::BorrowedFd<'_>) {
        use std::os::fd::AsFd;
        if let Err(e) = portalloc::send_with_fd(self.socket.as_fd(), state.as_bytes(), fd) {
            tracing::warn!("cannot notify the service manager ({state:?}): {e}");
        }
    }
}

/// The STATUS= line for `count` registrations.
pub fn status_line(count: usize) -> String {
    let noun = if count == 1 {
        "registration"
    } else {
        "registrations"
    };
    format!("STATUS={count} {noun}")
}

/// Waits until the server says every listener is served, sends READY=1
/// with the first STATUS=, then keeps STATUS= up to date.
pub async fn run(notifier: Arc<Notifier>, ready: Arc<Notify>, shared: Arc<Shared>) {
    ready.notified().await;
    let mut last = shared.registration_count();
    notifier.send(&format!("READY=1\n{}", status_line(last)));
    loop {
        tokio::time::sleep(STATUS_EVERY).await;
        let now = shared.registration_count();
        if now != last {
            notifier.send(&status_line(now));
            last = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abstract_and_path_sockets_receive_datagrams() {
        let name = format!("rpcbind-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        let n = Notifier::connect(format!("@{name}").as_bytes()).unwrap();
        n.send("READY=1");
        let mut buf = [0u8; 64];
        let len = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1");

        let path = std::env::temp_dir().join(format!("{name}.sock"));
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::connect(path.as_os_str().as_bytes()).unwrap();
        n.send(&status_line(3));
        let len = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"STATUS=3 registrations");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn relative_names_are_refused() {
        assert!(Notifier::connect(b"notify.sock").is_err());
    }
}
