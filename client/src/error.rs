//! The client's error type: a refusal by the daemon (with its `pa_status`
//! and a message a user can act on), or a failure to talk to it. No I/O.

use proto::alloc::{PaStatus, Socktype};
use std::fmt;
use std::io;

/// What a request was about, for the message of a refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Subject {
    /// An ALLOC of a pool port (privileged or not) or an exact port.
    Alloc {
        socktype: Socktype,
        port: Option<u32>,
        privileged: bool,
    },
    /// A CLAIM of a reservation's socket.
    Claim(String, Socktype),
    /// A RELEASE_NAME of a reservation.
    Name(String),
    /// A RELEASE.
    Release,
}

/// Why a request did not succeed.
#[non_exhaustive]
#[derive(Debug)]
pub enum AllocError {
    /// The daemon answered with a status other than PA_OK.
    Refused {
        status: PaStatus,
        /// What was refused, in words.
        message: String,
    },
    /// The daemon answered PA_SYSTEM_ERROR: a system call of its own failed.
    System { errno: i32 },
    /// No daemon could be reached at any of the socket addresses tried.
    Unreachable { tried: String, source: io::Error },
    /// The daemon does not serve the allocation program (an rpcbind
    /// without it, such as the C one, answers PROG_UNAVAIL).
    NotServed { at: String, detail: String },
    /// No reply within the timeout.
    Timeout,
    /// Sending or receiving failed.
    Io(io::Error),
    /// The reply broke the protocol (bad record, wrong xid, a descriptor
    /// missing, truncated or in excess); every descriptor received with it
    /// was closed.
    Protocol(String),
}

impl AllocError {
    /// The daemon's status, when it answered one.
    pub fn status(&self) -> Option<PaStatus> {
        match self {
            AllocError::Refused { status, .. } => Some(*status),
            AllocError::System { .. } => Some(PaStatus::SYSTEM_ERROR),
            _ => None,
        }
    }

    /// Whether the service is absent (unreachable or not served), the case
    /// where a caller such as the preload shim falls back to doing the
    /// work itself.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            AllocError::Unreachable { .. } | AllocError::NotServed { .. }
        ) || self.status() == Some(PaStatus::DISABLED)
    }

    pub(crate) fn refused(status: PaStatus, subject: &Subject, uid: u32) -> AllocError {
        AllocError::Refused {
            status,
            message: refusal_message(status, subject, uid),
        }
    }
}

fn port_text(socktype: Socktype, port: Option<u32>) -> String {
    match port {
        Some(p) => format!("port {p}/{socktype}"),
        None => format!("a {socktype} port"),
    }
}

fn refusal_message(status: PaStatus, subject: &Subject, uid: u32) -> String {
    use Subject::{Alloc, Claim, Name, Release};
    match (status, subject) {
        (PaStatus::POOL_EXHAUSTED, Alloc { socktype, .. }) => {
            format!("pool exhausted: no free {socktype} port")
        }
        (PaStatus::QUOTA_EXCEEDED, _) => format!("quota exceeded for uid {uid}"),
        (PaStatus::DENIED, Alloc { socktype, port, .. }) => format!(
            "permission denied: {} is privileged (below 1024) and uid {uid} is not root",
            port_text(*socktype, *port)
        ),
        (PaStatus::DENIED, Claim(name, _)) => {
            format!("permission denied: uid {uid} may not claim reservation {name:?}")
        }
        (PaStatus::DENIED, Name(name)) => {
            format!("permission denied: only root may release reservation {name:?}")
        }
        (PaStatus::DENIED, Release) => {
            format!("permission denied: uid {uid} does not own that lease (or it is a reservation: release it by name)")
        }
        (PaStatus::IN_USE, Alloc { socktype, port, .. }) => {
            format!("{} is in use", port_text(*socktype, *port))
        }
        (PaStatus::IN_USE, Claim(name, socktype)) => {
            format!("reservation {name:?} ({socktype}) is not held and its port is in use")
        }
        (PaStatus::NOT_IN_POOL, Alloc { socktype, port, .. }) => format!(
            "{} is not in the pool (a reservation is claimed by name)",
            port_text(*socktype, *port)
        ),
        (PaStatus::NO_SUCH_NAME, Claim(name, socktype)) => {
            format!("no reservation named {name:?} for {socktype}")
        }
        (PaStatus::NO_SUCH_NAME, Name(name)) => format!("no reservation named {name:?}"),
        (PaStatus::BAD_REQUEST, Release) => "no such lease".to_string(),
        (PaStatus::BAD_REQUEST, _) => "the daemon refused the request as malformed".to_string(),
        (PaStatus::DISABLED, _) => "the allocation service is disabled".to_string(),
        (s, _) => format!("refused: {s}"),
    }
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllocError::Refused { message, .. } => f.write_str(message),
            AllocError::System { errno } => write!(
                f,
                "the daemon failed: {}",
                io::Error::from_raw_os_error(*errno)
            ),
            AllocError::Unreachable { tried, source } => {
                write!(f, "cannot reach the rpcbind daemon at {tried}: {source}")
            }
            AllocError::NotServed { at, detail } => write!(
                f,
                "the rpcbind daemon at {at} does not offer the allocation service ({detail})"
            ),
            AllocError::Timeout => f.write_str("no reply from the rpcbind daemon in time"),
            AllocError::Io(e) => write!(f, "talking to the rpcbind daemon: {e}"),
            AllocError::Protocol(m) => write!(f, "bad reply from the rpcbind daemon: {m}"),
        }
    }
}

impl std::error::Error for AllocError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AllocError::Unreachable { source, .. } => Some(source),
            AllocError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for AllocError {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => AllocError::Timeout,
            _ => AllocError::Io(e),
        }
    }
}
