//! `ss_local_port`, `ss_tcp_state` and `ss_tcp_state_name`: a real loopback
//! connection driven through LISTEN, ESTABLISHED, FIN_WAIT2, CLOSE_WAIT,
//! LAST_ACK and into TIME_WAIT, the errors for descriptors that are not TCP
//! sockets, and the names.

use std::ffi::c_int;
use std::os::fd::AsRawFd;
use std::thread;
use std::time::{Duration, Instant};

use safesock::ffi;

use crate::common::*;

/// `ss_tcp_state_name(state)`, which must be ASCII.
fn state_name(state: c_int) -> String {
    let name = c_text(ffi::ss_tcp_state_name(state));
    assert!(name.is_ascii(), "{name:?}");
    name
}

fn state(fd: &SsFd) -> c_int {
    let s = ffi::ss_tcp_state(fd.raw());
    assert!(s > 0, "ss_tcp_state(fd {}): {}", fd.raw(), last_error());
    s
}

/// Waits (bounded) until `fd` leaves the `passing` states; returns the state it settled in.
fn settle(fd: &SsFd, passing: &[c_int]) -> c_int {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let now = state(fd);
        if !passing.contains(&now) || Instant::now() >= deadline {
            return now;
        }
        thread::sleep(Duration::from_millis(1));
    }
}

/// Waits (bounded) until `fd` is in `want`, passing only through `via`.
#[track_caller]
fn expect_state(fd: &SsFd, want: c_int, via: &[c_int]) {
    let now = settle(fd, via);
    assert_eq!(state_name(now), state_name(want), "fd {}", fd.raw());
}

/// Whether `/proc/net/tcp` lists a TIME_WAIT connection from 127.0.0.1:`local`
/// to 127.0.0.1:`remote`; `None` if the file cannot be read.
fn time_wait_listed(local: u16, remote: u16) -> Option<bool> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let (from, to) = (format!("0100007F:{local:04X}"), format!("0100007F:{remote:04X}"));
    Some(table.lines().any(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        f.len() > 3 && f[1] == from && f[2] == to && f[3] == "06"
    }))
}

/// The client closes first with `ss_shutdown(SHUT_WR)`, keeping its
/// descriptor so its state stays readable.
///
/// LAST_ACK normally lasts microseconds on loopback (the peer's ACK comes at
/// once). To hold it, the client stops reading and the server fills the
/// client's receive window first: the server's FIN then queues behind data
/// the client has not accepted, so the server sits in LAST_ACK until the
/// client reads.
///
/// TIME_WAIT: Linux hands a connection entering TIME_WAIT to a separate
/// mini-socket and sets the descriptor's own socket to CLOSE, so raw
/// `TCP_INFO` on the still-open descriptor says CLOSE; `ss_tcp_state` looks
/// the TIME_WAIT entry up and must say TIME_WAIT. The entry is also checked
/// independently in `/proc/net/tcp`.
#[test]
fn tcp_states_through_a_whole_close() {
    let listener = fd_or_panic(tcp_listen("127.0.0.1:0", 4), "listen");
    assert_eq!(state(&listener), ffi::SS_TCP_LISTEN);
    let server_port = local_port(&listener);
    let client = fd_or_panic(tcp_connect(&format!("127.0.0.1:{server_port}"), 5000), "connect");
    let client_port = local_port(&client);
    let server = accept(&listener);
    bound_waits(client.raw());
    bound_waits(server.raw());
    assert_eq!(state(&client), ffi::SS_TCP_ESTABLISHED);
    assert_eq!(state(&server), ffi::SS_TCP_ESTABLISHED);

    // The server fills everything between it and the client, who does not read.
    setsockopt_int(client.raw(), libc::SOL_SOCKET, libc::SO_RCVBUF, 4096);
    setsockopt_int(server.raw(), libc::SOL_SOCKET, libc::SO_SNDBUF, 4096);
    set_nonblocking(server.raw(), true);
    let filler = vec![0x42u8; 16 << 20];
    // SAFETY: `filler` is a live buffer of the length given.
    let r = unsafe { ffi::ss_send_all(server.raw(), filler.as_ptr().cast(), filler.len()) };
    failure(r as i64, "filling a non-reading peer", &[libc::EAGAIN]);
    let queued = ffi::ss_transferred();
    assert!(queued > 0);

    // The client closes first: FIN_WAIT1, then FIN_WAIT2 once the server ACKs.
    assert_eq!(ffi::ss_shutdown(client.raw(), libc::SHUT_WR), 0, "{}", last_error());
    expect_state(&client, ffi::SS_TCP_FIN_WAIT2, &[ffi::SS_TCP_FIN_WAIT1]);

    // The server reads the end of stream: CLOSE_WAIT.
    assert_ne!(wait_for(server.raw(), libc::POLLIN, PATIENCE), 0);
    read_eof(&server);
    assert_eq!(state(&server), ffi::SS_TCP_CLOSE_WAIT);

    // The server closes its side: LAST_ACK, held while its FIN cannot be sent.
    assert_eq!(ffi::ss_shutdown(server.raw(), libc::SHUT_WR), 0, "{}", last_error());
    assert_eq!(state(&server), ffi::SS_TCP_LAST_ACK);
    thread::sleep(Duration::from_millis(50));
    assert_eq!(state(&server), ffi::SS_TCP_LAST_ACK, "LAST_ACK did not hold");
    assert_eq!(state(&client), ffi::SS_TCP_FIN_WAIT2);

    // The client reads everything and the FIN: the last ACK closes the server.
    let mut sink = vec![0u8; queued + 1];
    // SAFETY: a live buffer of the length given.
    let got = unsafe { ffi::ss_recv_exact(client.raw(), sink.as_mut_ptr().cast(), sink.len()) };
    assert_eq!(got, queued as isize, "{}", last_error());
    expect_state(&server, ffi::SS_TCP_CLOSE, &[ffi::SS_TCP_LAST_ACK]);

    // The client's connection is in TIME_WAIT.
    expect_state(&client, ffi::SS_TCP_TIME_WAIT, &[ffi::SS_TCP_FIN_WAIT2]);
    match time_wait_listed(client_port, server_port) {
        Some(listed) => assert!(listed, "no TIME_WAIT entry 127.0.0.1:{client_port} -> :{server_port}"),
        None => eprintln!("note: /proc/net/tcp unreadable; TIME_WAIT entry not checked"),
    }
}

/// Reads the end of stream on `fd` (its reads are bounded by `bound_waits`).
#[track_caller]
fn read_eof(fd: &SsFd) {
    let mut byte = [0u8; 1];
    // SAFETY: a local buffer of the length given.
    let n = unsafe { ffi::ss_read(fd.raw(), byte.as_mut_ptr().cast(), 1) };
    assert_eq!(n, 0, "fd {}: expected end of stream: {}", fd.raw(), last_error());
}

/// `first` closes its side, `second` reads the end and closes its side,
/// `first` reads the end: `first` goes to TIME_WAIT, `second` to CLOSE.
fn close_first_then_second(first: &SsFd, second: &SsFd) {
    assert_eq!(ffi::ss_shutdown(first.raw(), libc::SHUT_WR), 0, "{}", last_error());
    read_eof(second);
    assert_eq!(ffi::ss_shutdown(second.raw(), libc::SHUT_WR), 0, "{}", last_error());
    read_eof(first);
}

/// TIME_WAIT belongs to a connection, not to a local address. On one
/// listener, connection A (server closes first) leaves a TIME_WAIT entry
/// whose local address is the listener's 127.0.0.1:port; connection B
/// (client closes first) then ends with its server side in CLOSE, on that
/// same local address, and must be reported as CLOSE.
#[test]
fn time_wait_is_reported_only_for_the_descriptors_own_connection() {
    let listener = fd_or_panic(tcp_listen("127.0.0.1:0", 4), "listen");
    let port = local_port(&listener);
    let connection = || connect_pair(&listener, "127.0.0.1");
    let closing = [ffi::SS_TCP_FIN_WAIT1, ffi::SS_TCP_FIN_WAIT2, ffi::SS_TCP_LAST_ACK];

    let (client_a, server_a) = connection();
    close_first_then_second(&server_a, &client_a);
    expect_state(&server_a, ffi::SS_TCP_TIME_WAIT, &closing);
    expect_state(&client_a, ffi::SS_TCP_CLOSE, &closing);

    let (client_b, server_b) = connection();
    close_first_then_second(&client_b, &server_b);
    expect_state(&client_b, ffi::SS_TCP_TIME_WAIT, &closing);
    let server_b_state = settle(&server_b, &closing);
    assert_eq!(
        state_name(server_b_state),
        "CLOSE",
        "connection B's server side (fd {}) is closed, not in TIME_WAIT: the TIME_WAIT entry on 127.0.0.1:{port} is connection A's",
        server_b.raw()
    );
}

/// `ss_tcp_state` on something else: the errno `TCP_INFO` gives.
#[track_caller]
fn state_fails(fd: c_int, what: &str, allowed: &[i32]) {
    let f = failure(ffi::ss_tcp_state(fd).into(), what, allowed);
    assert!(
        f.message.starts_with(&format!("ss_tcp_state(fd {fd})")),
        "{}",
        f.message
    );
}

#[test]
fn tcp_state_of_other_descriptors_is_an_error() {
    let not_tcp = [libc::EOPNOTSUPP, libc::ENOPROTOOPT];
    let udp = fd_or_panic(udp_bind("127.0.0.1:0"), "udp");
    state_fails(udp.raw(), "UDP socket", &not_tcp);
    let pair = unix_pair();
    state_fails(pair[0].raw(), "unix stream socket", &not_tcp);
    let (r, _w) = plain_pipe();
    state_fails(r.as_raw_fd(), "pipe", &[libc::ENOTSOCK]);
    state_fails(-1, "fd -1", &[libc::EBADF]);
    state_fails(closed_fd(), "closed fd", &[libc::EBADF]);
}

#[test]
fn local_port_of_inet_sockets_and_errors_for_others() {
    let udp = fd_or_panic(udp_bind("127.0.0.1:0"), "udp");
    assert_eq!(socket_addr(udp.raw(), false).map(|a| a.port()), Some(local_port(&udp)));
    let unbound = fd_or_panic(ffi::ss_socket(libc::AF_INET6, libc::SOCK_STREAM, 0), "socket");
    assert_eq!(ffi::ss_local_port(unbound.raw()), 0, "an unbound socket has port 0");

    let pair = unix_pair();
    let f = failure(
        ffi::ss_local_port(pair[0].raw()).into(),
        "unix socket",
        &[libc::EAFNOSUPPORT],
    );
    assert!(f.message.starts_with("ss_local_port("), "{}", f.message);
    let (r, _w) = plain_pipe();
    failure(ffi::ss_local_port(r.as_raw_fd()).into(), "pipe", &[libc::ENOTSOCK]);
    failure(ffi::ss_local_port(-1).into(), "fd -1", &[libc::EBADF]);
}

#[test]
fn state_names() {
    // The values are Linux's tcpi_state numbering (include/net/tcp_states.h).
    let states = [
        (ffi::SS_TCP_ESTABLISHED, 1, "ESTABLISHED"),
        (ffi::SS_TCP_SYN_SENT, 2, "SYN_SENT"),
        (ffi::SS_TCP_SYN_RECV, 3, "SYN_RECV"),
        (ffi::SS_TCP_FIN_WAIT1, 4, "FIN_WAIT1"),
        (ffi::SS_TCP_FIN_WAIT2, 5, "FIN_WAIT2"),
        (ffi::SS_TCP_TIME_WAIT, 6, "TIME_WAIT"),
        (ffi::SS_TCP_CLOSE, 7, "CLOSE"),
        (ffi::SS_TCP_CLOSE_WAIT, 8, "CLOSE_WAIT"),
        (ffi::SS_TCP_LAST_ACK, 9, "LAST_ACK"),
        (ffi::SS_TCP_LISTEN, 10, "LISTEN"),
        (ffi::SS_TCP_CLOSING, 11, "CLOSING"),
    ];
    for (constant, kernel, name) in states {
        assert_eq!(constant, kernel, "{name}");
        assert_eq!(state_name(constant), name);
    }
    for other in [0, 13, 99, -1, c_int::MIN, c_int::MAX] {
        assert_eq!(state_name(other), "UNKNOWN", "{other}");
    }
}
