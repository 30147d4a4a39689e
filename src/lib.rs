//! safesock: the C socket API, checked.
//!
//! C programs call the `ss_` functions exported from [`ffi`]; each converts its
//! arguments, calls one function of the inner safe layer ([`socket`]) and
//! reports the outcome through one boundary (`ffi::boundary`, crate-private): the return
//! value and `errno` as libc would give them, a message for [`ffi::ss_last_error`]
//! and, when `SAFESOCK_TRACE` is set, a trace line.
//!
//! The layers, in the order data flows through them:
//!
//! - [`ffi`]: the exported `extern "C"` functions, one file per group, and the
//!   boundary they all go through (panic containment, errno, message, trace).
//! - [`mem`]: caller memory as the C caller passed it, handed to the kernel
//!   unread; turned into Rust slices only after the kernel accepted it.
//! - [`socket`]: the inner safe layer: typed descriptors and the safety defaults
//!   (close-on-exec, no SIGPIPE, no double close).
//! - [`nosignal`]: how `ss_write`/`ss_writev` avoid SIGPIPE in one system call.
//! - [`sys`]: the raw system calls, each exactly one call into libc.
//! - [`fdtable`]: the lock-free per-descriptor state behind the double-close rule
//!   and the no-SIGPIPE write path.
//! - [`chores`], [`resolve`]: the helpers of API section 3 (listen, connect
//!   with a deadline, whole transfers, address text) on top of [`socket`].
//! - [`addr`], [`tcp`]: addresses (decoding, parsing, formatting) and TCP states.
//! - [`error`], [`message`], [`trace`]: errno names, the thread-local record of the
//!   last failure, the text built from it on demand, and the trace sink.

#![deny(clippy::undocumented_unsafe_blocks)]

pub mod addr;
pub mod call;
pub mod error;
pub mod fdtable;
pub mod ffi;
pub mod fmtbuf;
pub mod chores;
pub mod mem;
pub mod message;
pub mod nosignal;
pub mod resolve;
pub mod socket;
pub mod sys;
pub mod tcp;
pub mod trace;
