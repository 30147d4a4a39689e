//! Tests of the helpers of API.md section 3 (`ss_tcp_listen`, `ss_tcp_connect`,
//! `ss_udp_bind`, `ss_send_all`, `ss_recv_exact`, `ss_addr_parse`,
//! `ss_addr_format`, `ss_local_port`, `ss_tcp_state`, `ss_tcp_state_name`),
//! called as a C program would, through `safesock::ffi`.
//!
//! Loopback only, ports picked by the system, every wait bounded. Signal
//! tests send SIGUSR1 (no-op handler without `SA_RESTART`) with
//! `pthread_kill` to the one thread under test, so other tests running in
//! parallel never see it.

mod common;

#[path = "helpers/addr.rs"]
mod addr;
#[path = "helpers/connect.rs"]
mod connect;
#[path = "helpers/listen.rs"]
mod listen;
#[path = "helpers/state.rs"]
mod state;
#[path = "helpers/transfer.rs"]
mod transfer;
