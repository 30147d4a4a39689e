//! `ss_tcp_connect`: the descriptor it returns, the real errno of a refused
//! connection, and the deadline: on time, not early, and neither cut short
//! nor restarted by signals. (Trying each resolved address in order is in
//! `listen.rs`, with the other host-name cases.)

use std::ffi::c_int;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use safesock::ffi;

use crate::common::*;

/// The loopback hosts this machine has.
fn loopback_hosts() -> Vec<&'static str> {
    let mut hosts = vec!["127.0.0.1"];
    if has_ipv6_loopback() {
        hosts.push("[::1]");
    }
    hosts
}

#[test]
fn connect_returns_a_blocking_cloexec_established_descriptor() {
    for host in loopback_hosts() {
        for timeout in [5000, -1] {
            let listener = fd_or_panic(tcp_listen(&format!("{host}:0"), 4), "listen");
            let text = format!("{host}:{}", local_port(&listener));
            let client = fd_or_panic(tcp_connect(&text, timeout), &text);
            assert_eq!(
                status_flags(client.raw()) & libc::O_NONBLOCK,
                0,
                "{text}: left non-blocking"
            );
            assert!(is_cloexec(client.raw()), "{text}: FD_CLOEXEC not set");
            assert_eq!(ffi::ss_tcp_state(client.raw()), ffi::SS_TCP_ESTABLISHED, "{text}");
            let server = accept(&listener);
            let seen = socket_addr(server.raw(), true).expect("peer");
            assert_eq!(ffi::ss_local_port(client.raw()), c_int::from(seen.port()));

            bound_waits(server.raw());
            // SAFETY: a static buffer of the length given.
            let sent = unsafe { ffi::ss_send_all(client.raw(), b"hello".as_ptr().cast(), 5) };
            assert_eq!(sent, 5, "{}", last_error());
            let mut got = [0u8; 5];
            // SAFETY: a local buffer of the length given.
            let n = unsafe { ffi::ss_recv_exact(server.raw(), got.as_mut_ptr().cast(), 5) };
            assert_eq!(n, 5, "{}", last_error());
            assert_eq!(&got, b"hello");
        }
    }
}

#[test]
fn connect_to_a_closed_port_is_econnrefused() {
    for host in loopback_hosts() {
        let listener = fd_or_panic(tcp_listen(&format!("{host}:0"), 4), "listen");
        let text = format!("{host}:{}", local_port(&listener));
        drop(listener);
        for timeout in [5000, -1] {
            let f = failure(tcp_connect(&text, timeout).into(), &text, &[libc::ECONNREFUSED]);
            assert!(f.message.starts_with("ss_tcp_connect("), "{}", f.message);
            assert!(quotes(&f.message, &text), "{}", f.message);
            assert!(f.message.contains("ECONNREFUSED"), "{}", f.message);
        }
    }
}

/// A loopback listener whose accept queue is full, so the kernel drops
/// further SYNs and a new connection cannot complete for a second or more
/// (until the first SYN retransmission, which is dropped as well).
struct FullListener {
    _listener: SsFd,
    port: u16,
    _queued: Vec<OwnedFd>,
}

/// Listens with backlog 0 and makes non-blocking connections that are never
/// accepted until one no longer completes at once.
fn full_listener() -> FullListener {
    let listener = fd_or_panic(tcp_listen("127.0.0.1:0", 0), "listen with backlog 0");
    let port = local_port(&listener);
    let to = loopback(port);
    let mut queued = Vec::new();
    for _ in 0..64 {
        let s = plain_socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK);
        // SAFETY: `to` is a local sockaddr_in of the length given.
        let r = unsafe { libc::connect(s.as_raw_fd(), as_sa(&to), SIN_LEN) };
        assert!(r == 0 || errno() == libc::EINPROGRESS, "connect: errno {}", errno());
        let completed = r == 0 || wait_for(s.as_raw_fd(), libc::POLLOUT, Duration::from_millis(500)) != 0;
        queued.push(s);
        if !completed {
            return FullListener {
                _listener: listener,
                port,
                _queued: queued,
            };
        }
    }
    panic!("the accept queue of a backlog-0 listener did not fill after 64 connections");
}

const TIMEOUT_MS: c_int = 300;
/// "Not much earlier" than the deadline.
const NOT_BEFORE: Duration = Duration::from_millis(290);
/// The deadline plus a margin for a loaded machine.
const NOT_AFTER: Duration = Duration::from_millis(300 + 700);

/// Connects to a full listener with [`TIMEOUT_MS`]; checks ETIMEDOUT and returns the time taken.
fn timed_out_connect(port: u16) -> Duration {
    let text = format!("127.0.0.1:{port}");
    let start = Instant::now();
    let r = tcp_connect(&text, TIMEOUT_MS);
    let f = failure(r.into(), &text, &[libc::ETIMEDOUT]);
    let took = start.elapsed();
    assert!(f.message.contains("ETIMEDOUT"), "{}", f.message);
    took
}

#[test]
fn connect_times_out_when_the_syn_is_dropped() {
    let full = full_listener();
    let took = timed_out_connect(full.port);
    eprintln!("ss_tcp_connect(full backlog, {TIMEOUT_MS} ms): ETIMEDOUT after {took:?}");
    assert!(took >= NOT_BEFORE, "gave up early: {took:?}");
    assert!(took < NOT_AFTER, "gave up late: {took:?}");

    // Timeout 0: only a connection that completes at once.
    let start = Instant::now();
    let r = tcp_connect(&format!("127.0.0.1:{}", full.port), 0);
    failure(r.into(), "timeout 0", &[libc::ETIMEDOUT]);
    assert!(
        start.elapsed() < Duration::from_millis(250),
        "timeout 0 waited {:?}",
        start.elapsed()
    );
}

/// SIGUSR1 (handler without SA_RESTART) every millisecond to the connecting
/// thread: each wait is interrupted, and must resume for the time left.
/// Restarting the whole timeout would run until the signals stop (5 s).
#[test]
fn signals_neither_cut_short_nor_restart_the_connect_timeout() {
    let full = full_listener();
    let run = with_interruptions(Duration::from_millis(1), Duration::from_secs(5), || {
        timed_out_connect(full.port)
    });
    let took = run.value;
    eprintln!(
        "ss_tcp_connect(full backlog, {TIMEOUT_MS} ms) under signals: ETIMEDOUT after {took:?}, {} signals sent, {} handled",
        run.sent, run.handled
    );
    assert!(run.handled > 0, "no signal reached the connecting thread");
    assert!(took >= NOT_BEFORE, "a signal cut the timeout short: {took:?}");
    assert!(took < NOT_AFTER, "signals restarted or stretched the timeout: {took:?}");
}
