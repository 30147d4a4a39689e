//! The fuzz targets of safesock, as a library the thin files in
//! `fuzz_targets/` call (so the seed writer and the tests share the code).
//!
//! - [`calls`]: libc-against-safesock differential fuzzing over every
//!   mirror function and the descriptor helpers.
//! - [`addr`]: `ss_addr_parse` / `ss_addr_format` round trips.
//! - [`messages`]: `ss_last_error`, `ss_errno_name`, `ss_tcp_state_name`
//!   and the text helpers on arbitrary arguments.

pub mod addr;
pub mod arena;
pub mod calls;
pub mod input;
pub mod messages;
pub mod seeds;
