//! `libportpolicy_preload.so`: an LD_PRELOAD library that serves
//! `bindresvport()` / `bindresvport_sa()` (glibc's and libtirpc's, including
//! libtirpc's own calls from `clnt_create`) with privileged ports from the
//! port policy's pool, handed over as already-bound sockets by the rpcbind
//! daemon's allocation service (proto/alloc.x), and, when
//! PORTPOLICY_PRELOAD_BIND0=1, port-0 binds of server sockets with pool
//! ports. Whenever the service cannot serve a call, the real function runs.
//!
//! Layout: `decide` (pure decisions), `shim` (one call, the guard, the
//! environment), `service` (the allocation client), `sys` (every unsafe
//! block, the exported symbols). Does I/O; implements no RFC itself.
//! No threads, no runtime, nothing written to stdout.

#![deny(unsafe_code)]

mod decide;
mod service;
mod shim;
#[allow(unsafe_code)]
mod sys;
