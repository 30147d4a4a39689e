//! Sockets shared by a parent and a forked child. Both use `ss_` calls on
//! the inherited descriptors; the child's `ss_close` drops only the child's
//! reference (the parent's copy keeps working, and the peer sees end of
//! stream only once both are closed); and the double-close table is per
//! process: a number the child closed with `ss_close` is used and closed
//! with `ss_close` in the parent.

use std::ffi::c_int;

use safesock::ffi;

use crate::common::{
    Outcome, PATIENCE, in_child_holding, last_error, no_forks, send_all as send, tcp_pair, wait_for, wait_queued,
};

/// Takes exactly `n` queued bytes from `fd` without waiting.
fn take(fd: c_int, n: usize) -> Vec<u8> {
    wait_queued(fd, n);
    let mut buf = vec![0u8; n];
    // SAFETY: `buf` is a live, writable buffer of the length given.
    let got = unsafe { ffi::ss_recv(fd, buf.as_mut_ptr().cast(), n, libc::MSG_DONTWAIT) };
    assert_eq!(got as usize, n, "ss_recv(fd {fd}): {}", last_error());
    buf
}

/// What a receive that must not wait finds: end of stream (0), nothing
/// yet (`EAGAIN`), or data.
fn peek_end(fd: c_int) -> Outcome {
    let mut byte = [0u8; 1];
    // SAFETY: a live one-byte buffer.
    Outcome::of(unsafe { ffi::ss_recv(fd, byte.as_mut_ptr().cast(), 1, libc::MSG_DONTWAIT | libc::MSG_PEEK) } as i64)
}

#[test]
fn a_forked_child_closing_its_copy_leaves_the_parents_socket_and_table_alone() {
    // No other test's child may hold a copy of these sockets.
    let quiet = no_forks();
    let (client, server) = tcp_pair("127.0.0.1:0");
    let (c, s) = (client.raw(), server.raw());
    let text = in_child_holding(&quiet, "the child's side", || {
        send(c, b"from the child");
        assert_eq!(ffi::ss_close(c), 0, "the child's ss_close: {}", last_error());
        // The child's table now has the number closed...
        let again = Outcome::of(ffi::ss_close(c));
        again.expect_failure(
            libc::EBADF,
            &format!("ss_close(fd {c})"),
            &["already closed by ss_close"],
        );
        // ...but the connection is open: the parent still holds the client end.
        assert_eq!(take(s, 14), b"from the child");
        let end = peek_end(s);
        assert_eq!(
            end.result().1,
            "EAGAIN",
            "the peer saw end of stream too early: {end:?}"
        );
        // The child's copy of the server end, closed too: the parent keeps its own.
        assert_eq!(ffi::ss_close(s), 0);
        format!("child: ss_close(fd {c}) = 0, again {:?}", again.result())
    });
    // The parent's copy works, and its table never saw the child's close.
    assert_eq!(
        peek_end(s).result().1,
        "EAGAIN",
        "end of stream while the parent holds the client"
    );
    send(c, b"from the parent");
    assert_eq!(take(s, 15), b"from the parent");
    send(s, b"reply");
    assert_eq!(take(c, 5), b"reply");
    std::mem::forget(client);
    assert_eq!(ffi::ss_close(c), 0, "the parent's ss_close: {}", last_error());
    // Both copies closed now: the peer sees end of stream.
    assert!(wait_for(s, libc::POLLIN, PATIENCE) & libc::POLLIN != 0);
    assert_eq!(
        peek_end(s).result(),
        (0, String::new()),
        "end of stream after both closes"
    );
    let again = Outcome::of(ffi::ss_close(c));
    again.expect_failure(
        libc::EBADF,
        &format!("ss_close(fd {c})"),
        &["already closed by ss_close"],
    );
    drop(server);
    eprintln!("{text}; parent: used and ss_closed fd {c} afterwards");
}
