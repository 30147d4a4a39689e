//! `ss_accept` when the process has no descriptor left: `EMFILE` as libc
//! gives it, a message that names the limit, the connection left waiting in
//! the queue, and accepted as soon as one descriptor is freed. In a forked
//! child, since the limit is process-wide.

use std::ffi::c_int;
use std::os::fd::{AsRawFd, OwnedFd};

use safesock::ffi;

use crate::common::{
    Outcome, PATIENCE, errno, fd_or_panic, in_child, is_cloexec, leave_room_for, recv_exact, send_all, tcp_connect,
    tcp_listen, wait_for, wait_queued,
};

/// Opens `/dev/null` until the table is full; the descriptors close on drop.
fn fill_the_table() -> Vec<OwnedFd> {
    let mut fillers = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => fillers.push(OwnedFd::from(f)),
            Err(e) if e.raw_os_error() == Some(libc::EMFILE) => return fillers,
            Err(e) => panic!("filling the descriptor table: {e}"),
        }
        assert!(fillers.len() < 1000, "the table never filled");
    }
}

#[test]
fn ss_accept_with_no_descriptor_left_gives_emfile_then_accepts_the_waiting_connection() {
    let text = in_child("EMFILE in ss_accept", || {
        let listener = fd_or_panic(tcp_listen("127.0.0.1:0", 8), "ss_tcp_listen");
        let l = listener.raw();
        let port = ffi::ss_local_port(l);
        let client = fd_or_panic(tcp_connect(&format!("127.0.0.1:{port}"), 5000), "ss_tcp_connect");
        send_all(client.raw(), b"hello");
        assert!(wait_for(l, libc::POLLIN, PATIENCE) & libc::POLLIN != 0);

        let limit = leave_room_for(8);
        let mut fillers = fill_the_table();
        let null: *mut libc::sockaddr = std::ptr::null_mut();
        // SAFETY: NULL address and length are allowed.
        let plain = Outcome::of(unsafe { libc::accept(l, null, std::ptr::null_mut()) });
        // SAFETY: as above.
        let ss = Outcome::of(unsafe { ffi::ss_accept(l, null, std::ptr::null_mut()) });
        // SAFETY: as above.
        let ss4 = Outcome::of(unsafe { ffi::ss_accept4(l, null, std::ptr::null_mut(), libc::SOCK_NONBLOCK) });
        assert_eq!(plain.result(), ss.result(), "ss_accept vs accept");
        let limit_words = [&format!("all {limit} descriptors") as &str, "RLIMIT_NOFILE"];
        ss.expect_failure(libc::EMFILE, &format!("ss_accept(fd {l})"), &limit_words);
        ss4.expect_failure(libc::EMFILE, &format!("ss_accept4(fd {l}"), &limit_words);
        // Creating calls fail the same way, and take nothing.
        Outcome::of(ffi::ss_socket(libc::AF_INET, libc::SOCK_STREAM, 0)).expect_failure(
            libc::EMFILE,
            "ss_socket(",
            &limit_words,
        );
        let refused = tcp_connect(&format!("127.0.0.1:{port}"), 1000);
        Outcome::of(refused).expect_failure(libc::EMFILE, "ss_tcp_connect(", &["RLIMIT_NOFILE"]);
        // The failed accepts took nothing from the queue.
        assert!(
            wait_for(l, libc::POLLIN, PATIENCE) & libc::POLLIN != 0,
            "the connection left the queue"
        );

        let freed = fillers.pop().expect("a filler");
        let number: c_int = freed.as_raw_fd();
        drop(freed);
        // SAFETY: NULL address and length are allowed.
        let accepted = unsafe { ffi::ss_accept(l, null, std::ptr::null_mut()) };
        let accepted = fd_or_panic(accepted, "ss_accept after freeing one descriptor");
        assert_eq!(accepted.raw(), number, "the freed number is the one handed out");
        assert!(is_cloexec(accepted.raw()));
        wait_queued(accepted.raw(), 5);
        let mut got = [0u8; 5];
        // SAFETY: `got` is a live, writable buffer of the length given.
        let n = unsafe { ffi::ss_recv(accepted.raw(), got.as_mut_ptr().cast(), 5, 0) };
        assert_eq!((n, &got), (5, b"hello"), "the waiting connection was accepted");
        send_all(accepted.raw(), b"world");
        assert_eq!(recv_exact(client.raw(), 5), b"world");
        drop(fillers);
        for fd in [accepted, client, listener] {
            let raw = fd.raw();
            std::mem::forget(fd);
            assert_eq!(ffi::ss_close(raw), 0, "ss_close({raw}): errno {}", errno());
        }
        format!(
            "limit {limit}: accept and ss_accept gave {:?}; {}",
            ss.result(),
            ss.message
        )
    });
    eprintln!("{text}");
}
