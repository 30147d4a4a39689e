//! Shared support for every integration test binary (`mod common;` in each
//! test root). One place for what the tests used to write again and again:
//!
//! - [`errno`]: `errno`, `ss_last_error()` and `ss_errno_name()` as text, and
//!   the outcome of one call (return value, errno, message, bytes moved);
//! - [`fds`]: descriptor guards that close the way the double-close table
//!   expects (`ss_close` for what an `ss_` call made, plain `close` for the
//!   rest), descriptor flags and identities, reserved and free numbers;
//! - [`net`]: loopback addresses, socket options, bounded waits;
//! - [`conn`]: listeners, connected pairs and whole transfers, made with the
//!   `ss_` helpers, the mirror functions or plain libc;
//! - [`fork`]: running a test body in a forked child with a watchdog;
//! - [`memory`]: unmapped and inaccessible pages, and the wild pointers;
//! - [`random`]: a deterministic PRNG and a checksum;
//! - [`signals`]: a counting handler without `SA_RESTART`, signals aimed at
//!   one thread, and the SIGPIPE disposition;
//! - [`files`]: temporary files and directories removed on drop;
//! - [`tools`]: the repository root, required external tools, running
//!   commands, and re-running one test of the current binary.
//!
//! Each binary uses a different subset, hence `dead_code` is allowed here.
//! Every item is re-exported at this level: `use common::{errno, SsFd};`.

#![allow(dead_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod conn;
pub mod errno;
pub mod fds;
pub mod files;
pub mod fork;
pub mod memory;
pub mod net;
pub mod random;
pub mod signals;
pub mod tools;

// Each binary uses a different subset of the re-exports too.
#[allow(unused_imports)]
pub use conn::*;
#[allow(unused_imports)]
pub use errno::*;
#[allow(unused_imports)]
pub use fds::*;
#[allow(unused_imports)]
pub use files::*;
#[allow(unused_imports)]
pub use fork::*;
#[allow(unused_imports)]
pub use memory::*;
#[allow(unused_imports)]
pub use net::*;
#[allow(unused_imports)]
pub use random::*;
#[allow(unused_imports)]
pub use signals::*;
#[allow(unused_imports)]
pub use tools::*;
