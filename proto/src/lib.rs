//! Wire formats of ONC RPC and the binding protocols, and the sans-IO rpcbind
//! engine. Nothing in this crate does I/O: bytes, peer information and the
//! current time come in as arguments, reply bytes come out.
#![forbid(unsafe_code)]

pub mod alloc;
pub mod engine;
pub mod fuzzing;
pub mod record;
pub mod rpc;
pub mod rpcb;
pub mod uaddr;
pub mod warmstart;
pub mod xdr;
