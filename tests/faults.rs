//! Faults: what the `ss_` functions do when things go wrong underneath
//! them, checked for the error, the `ss_last_error()` message, and that
//! nothing else breaks afterwards.
//!
//! - [`reset`]: a peer resets the connection mid-transfer (`ECONNRESET`
//!   like libc, then `EPIPE`/`ECONNRESET` on a send, no SIGPIPE; the helpers
//!   report what moved before the reset);
//! - [`limits`]: `ss_accept` with no descriptor left (`EMFILE`, naming the
//!   limit), and the pending connection accepted once one is freed;
//! - [`signals`]: a signal (handler without `SA_RESTART`, sent with
//!   `pthread_kill` once the thread sleeps in the system call) makes
//!   `ss_recv`/`ss_accept` fail with `EINTR` like libc, while
//!   `ss_recv_exact`, `ss_send_all` and `ss_tcp_connect` resume and complete;
//!   and `ss_` calls failing inside a signal handler (the self-pipe trick)
//!   while the interrupted thread is itself failing `ss_` calls crash
//!   nothing and garble no message;
//! - [`closing`]: threads racing `ss_close` on one descriptor (one wins,
//!   the rest are refused, a number reused meanwhile is never closed), and a
//!   descriptor closed with plain `close` behind the library's back;
//! - [`zero_length`]: receiving into zero bytes (NULL or not) on TCP, UDP
//!   and AF_UNIX, compared with libc, and the helpers asked for zero bytes;
//! - [`forked`]: sockets shared by a parent and a forked child;
//! - [`memory`]: bad pointers to the helpers' buffers and addresses (the
//!   mirror functions' pointers are covered by the differential suite);
//! - [`threads`]: `ss_last_error()` per thread under concurrency, and
//!   random C inputs that must never reach a panic.
//!
//! Checks that depend on which descriptor number the kernel hands out next,
//! or change process-wide settings (limits, signal actions), run in a forked
//! child with a watchdog ([`common::in_child`]). Signals go with
//! `pthread_kill` to the one thread under test. Loopback only, ports chosen
//! by the system, every wait bounded.
//!
//! The shared test support (`tests/common/`) provides the forked children,
//! the outcome of one call, mirrored connections (one made through `ss_`,
//! one with plain sockets), blocked threads and signals, descriptor guards,
//! the PRNG and the bad-memory pages. The libc comparisons of
//! [`zero_length`] run through the differential suite's own harness
//! (`tests/differential/`: the two call tables, the probe and its fixtures,
//! and the transfer states), which is test logic rather than a helper and
//! is used as it is.

#![deny(clippy::undocumented_unsafe_blocks)]

mod common;

#[allow(dead_code)]
#[path = "differential/fixtures.rs"]
mod fixtures;
#[allow(dead_code)]
#[path = "differential/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "differential/transfer.rs"]
mod transfer;

#[path = "faults/closing.rs"]
mod closing;
#[path = "faults/forked.rs"]
mod forked;
#[path = "faults/limits.rs"]
mod limits;
#[path = "faults/memory.rs"]
mod memory;
#[path = "faults/reset.rs"]
mod reset;
#[path = "faults/signals.rs"]
mod signals;
#[path = "faults/threads.rs"]
mod threads;
#[path = "faults/zero_length.rs"]
mod zero_length;
