//! A peer that resets the connection (`SO_LINGER` {on, 0}, then close)
//! in the middle of a transfer: the receiving calls give what libc gives
//! (the bytes that had arrived, then `ECONNRESET`, then end of stream), a
//! later send fails with `EPIPE`/`ECONNRESET` and no SIGPIPE, the helpers
//! report the bytes moved before the reset, and nothing else on the same
//! listener is disturbed.

use std::ffi::c_int;

use safesock::ffi;

use crate::common::{
    Api, Fd, Outcome, PATIENCE, Rng, connect_pair, errno_name, ignore_sigpipe, in_child, linger_zero,
    mirrored_listener, mirrored_tcp_pair, no_forks, on_blocked_thread, plain_send, recv_exact, recv_syscalls, send_all,
    send_syscalls, set_sigpipe, wait_for, wait_queued,
};

/// Which receiving call a run uses.
#[derive(Clone, Copy, Debug)]
enum Receive {
    Recv,
    Read,
}

fn receive(api: Api, how: Receive, fd: c_int, buf: &mut [u8]) -> Outcome {
    let (p, n) = (buf.as_mut_ptr().cast(), buf.len());
    // SAFETY: `buf` is a live, writable buffer of `n` bytes.
    let ret = unsafe {
        match (api, how) {
            (Api::Ss, Receive::Recv) => ffi::ss_recv(fd, p, n, 0),
            (Api::Ss, Receive::Read) => ffi::ss_read(fd, p, n),
            (Api::Libc, Receive::Recv) => libc::recv(fd, p, n, 0),
            (Api::Libc, Receive::Read) => libc::read(fd, p, n),
        }
    };
    Outcome::of(ret as i64)
}

/// One byte with `send` (libc with `MSG_NOSIGNAL`) and one with `write`
/// (SIGPIPE is ignored in this binary, so libc's write returns `EPIPE` too).
fn send_and_write(api: Api, fd: c_int) -> [Outcome; 2] {
    let byte = b"x".as_ptr().cast();
    // SAFETY: a one-byte static buffer.
    unsafe {
        match api {
            Api::Ss => [
                Outcome::of(ffi::ss_send(fd, byte, 1, 0) as i64),
                Outcome::of(ffi::ss_write(fd, byte, 1) as i64),
            ],
            Api::Libc => [
                Outcome::of(libc::send(fd, byte, 1, libc::MSG_NOSIGNAL) as i64),
                Outcome::of(libc::write(fd, byte, 1) as i64),
            ],
        }
    }
}

/// What the client saw: its receives until end of stream, then a send and a write.
struct Seen {
    receives: Vec<Outcome>,
    sends: [Outcome; 2],
}

impl Seen {
    fn results(&self) -> Vec<(i64, String)> {
        self.receives.iter().chain(&self.sends).map(Outcome::result).collect()
    }
}

/// The server sends 32 KiB, the client reads 10 KiB of it and sends 5 KiB
/// the server never reads; then the server resets. Returns what the client's
/// calls gave afterwards.
fn reset_mid_transfer(api: Api, how: Receive) -> Seen {
    let (client, server) = mirrored_tcp_pair(api);
    let mut data = vec![0u8; 32 << 10];
    Rng::new(7).fill(&mut data);
    plain_send(server.raw(), &data);
    wait_queued(client.raw(), data.len());
    let mut first = vec![0u8; 10 << 10];
    assert_eq!(receive(api, how, client.raw(), &mut first).ret, 10 << 10);
    assert_eq!(first, data[..10 << 10]);
    plain_send(client.raw(), &[b'u'; 5 << 10]);
    linger_zero(Api::Libc, server.raw());
    assert_eq!(server.close().ret, 0, "closing the resetting end");
    let events = wait_for(client.raw(), libc::POLLIN, PATIENCE);
    assert!(
        events & libc::POLLERR != 0,
        "the reset never arrived (events {events:#x})"
    );

    let mut receives = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    for _ in 0..4 {
        let outcome = receive(api, how, client.raw(), &mut buf);
        if outcome.ret > 0 {
            let n = outcome.ret as usize;
            assert_eq!(buf[..n], data[10 << 10..(10 << 10) + n], "the queued bytes changed");
        }
        let end = outcome.ret == 0;
        receives.push(outcome);
        if end {
            break;
        }
    }
    let sends = send_and_write(api, client.raw());
    assert_eq!(client.close().ret, 0, "closing the reset socket");
    Seen { receives, sends }
}

#[test]
fn peer_reset_mid_transfer_gives_what_libc_gives_then_econnreset() {
    // The reset goes out at the last close: no child may hold a copy.
    let _quiet = no_forks();
    // libc's write to a reset socket raises SIGPIPE: ignored in this binary.
    ignore_sigpipe();
    for how in [Receive::Recv, Receive::Read] {
        let libc_seen = reset_mid_transfer(Api::Libc, how);
        let ss_seen = reset_mid_transfer(Api::Ss, how);
        assert_eq!(libc_seen.results(), ss_seen.results(), "{how:?}: ss_ differs from libc");
        let call = match how {
            Receive::Recv => "ss_recv(fd ",
            Receive::Read => "ss_read(fd ",
        };
        let reset = ss_seen
            .receives
            .iter()
            .find(|o| o.ret < 0)
            .unwrap_or_else(|| panic!("{how:?}: no receive failed: {:?}", ss_seen.results()));
        reset.expect_failure(libc::ECONNRESET, call, &["ECONNRESET", "reset the connection"]);
        for (sent, call) in ss_seen.sends.iter().zip(["ss_send(fd ", "ss_write(fd "]) {
            let hint = if sent.errno == libc::EPIPE {
                "peer has closed"
            } else {
                "reset"
            };
            assert!(
                [libc::EPIPE, libc::ECONNRESET].contains(&sent.errno),
                "{call}: {sent:?}"
            );
            sent.expect_failure(sent.errno, call, &[hint]);
        }
        eprintln!("peer reset, {how:?}: libc and ss_ both gave {:?}", ss_seen.results());
    }
}

/// A connection on `listener`, made and accepted with `ss_` calls: (client, server).
fn connect_to(listener: &Fd) -> (Fd, Fd) {
    let Fd::Ss(l) = listener else {
        unreachable!("an ss_ listener")
    };
    let (client, server) = connect_pair(l, "127.0.0.1");
    (Fd::Ss(client), Fd::Ss(server))
}

/// Checks that a connection still moves bytes both ways.
#[track_caller]
fn still_works(a: &Fd, b: &Fd) {
    for (from, to) in [(a, b), (b, a)] {
        send_all(from.raw(), b"ping");
        assert_eq!(recv_exact(to.raw(), 4), b"ping");
    }
}

#[test]
fn reset_while_ss_recv_exact_waits_reports_the_bytes_that_arrived() {
    let _quiet = no_forks();
    let (l, _) = mirrored_listener(Api::Ss);
    let (victim, victim_peer) = connect_to(&l);
    let (bystander, bystander_peer) = connect_to(&l);
    let fd = victim.raw();
    let (outcome, transferred) = on_blocked_thread(
        || {
            let mut buf = vec![0u8; 64 << 10];
            // SAFETY: `buf` is a live, writable buffer of the length given.
            let r = unsafe { ffi::ss_recv_exact(fd, buf.as_mut_ptr().cast(), buf.len()) };
            (Outcome::of(r as i64), ffi::ss_transferred())
        },
        move |target| {
            plain_send(victim_peer.raw(), &[b'a'; 10 << 10]);
            // Blocked again after taking the 10 KiB: the reset comes mid-transfer.
            wait_queued(fd, 0);
            target.wait_blocked_in(&recv_syscalls());
            linger_zero(Api::Libc, victim_peer.raw());
            assert_eq!(victim_peer.close().ret, 0);
        },
        // SAFETY: shutdown takes no pointer; it only wakes the waiting call.
        || unsafe {
            libc::shutdown(fd, libc::SHUT_RDWR);
        },
    );
    assert_eq!(transferred, 10 << 10, "ss_transferred() after the reset");
    outcome.expect_failure(
        libc::ECONNRESET,
        &format!("ss_recv_exact(fd {fd}"),
        &["reset the connection", "10240 bytes were moved"],
    );
    assert_eq!(victim.close().ret, 0);
    // The rest of the process is untouched: the other connection and the listener work.
    still_works(&bystander, &bystander_peer);
    let (late, late_peer) = connect_to(&l);
    still_works(&late, &late_peer);
    eprintln!("reset during ss_recv_exact: {outcome:?}, ss_transferred() = {transferred}");
}

#[test]
fn reset_while_ss_send_all_waits_fails_without_sigpipe() {
    let text = in_child("reset during ss_send_all", || {
        // The default action, so a SIGPIPE would kill this child.
        set_sigpipe(libc::SIG_DFL);
        let (client, server) = mirrored_tcp_pair(Api::Ss);
        let fd = client.raw();
        let (outcome, transferred) = on_blocked_thread(
            || {
                let data = vec![b's'; 64 << 20];
                // SAFETY: `data` is a live buffer of the length given.
                let r = unsafe { ffi::ss_send_all(fd, data.as_ptr().cast(), data.len()) };
                (Outcome::of(r as i64), ffi::ss_transferred())
            },
            move |target| {
                target.wait_blocked_in(&send_syscalls());
                recv_exact(server.raw(), 100 << 10);
                linger_zero(Api::Libc, server.raw());
                assert_eq!(server.close().ret, 0);
            },
            // SAFETY: shutdown takes no pointer; it only wakes the waiting call.
            || unsafe {
                libc::shutdown(fd, libc::SHUT_RDWR);
            },
        );
        assert!([libc::ECONNRESET, libc::EPIPE].contains(&outcome.errno), "{outcome:?}");
        outcome.expect_failure(outcome.errno, &format!("ss_send_all(fd {fd}"), &["bytes were moved"]);
        assert!(
            (100 << 10..64 << 20).contains(&transferred),
            "ss_transferred() = {transferred}"
        );
        let [send, write] = send_and_write(Api::Ss, fd);
        format!(
            "ss_send_all: {} after {transferred} bytes; then ss_send: {}, ss_write: {}; no SIGPIPE",
            errno_name(outcome.errno),
            errno_name(send.errno),
            errno_name(write.errno)
        )
    });
    eprintln!("{text}");
}
