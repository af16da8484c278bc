//! The port policy engine: which ports RPC daemons may take, and why.
//!
//! The core ([`services`], [`blacklist`], [`portreserve`], [`nfsconf`],
//! [`portset`], [`config`], [`policy`]) is pure: text and values in,
//! values out, no I/O. The rpcbind daemon's allocation service links these
//! modules and feeds [`policy::Policy::compute`] its own
//! [`policy::Sources`]. The I/O layer used by the `portpolicy` command
//! ([`load`]) reads files under a root directory into those same inputs.
#![forbid(unsafe_code)]

pub mod alloc;
pub mod apply;
pub mod blacklist;
pub mod check;
pub mod config;
pub mod diff;
pub mod holders;
pub mod load;
pub mod map;
pub mod nfsconf;
pub mod policy;
pub mod portreserve;
pub mod portset;
pub mod services;

mod protocol;

pub use protocol::Protocol;
