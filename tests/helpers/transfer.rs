//! `ss_send_all` and `ss_recv_exact`: whole transfers over loopback TCP with
//! small socket buffers, with and without signals interrupting them, the
//! short count at end of stream, and `EAGAIN` with `ss_transferred()` on
//! non-blocking descriptors.

use std::ffi::c_int;
use std::mem::size_of;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use libc::{sockaddr_storage, socklen_t};
use safesock::ffi;

use crate::common::*;

/// Socket buffer size asked for (the kernel doubles it and applies its minimum).
const SMALL_BUFFER: c_int = 4096;

/// A new TCP socket with small send and receive buffers, made with `ss_socket`.
fn small_buffer_socket() -> SsFd {
    let fd = fd_or_panic(ffi::ss_socket(libc::AF_INET, libc::SOCK_STREAM, 0), "ss_socket");
    setsockopt_int(fd.raw(), libc::SOL_SOCKET, libc::SO_SNDBUF, SMALL_BUFFER);
    setsockopt_int(fd.raw(), libc::SOL_SOCKET, libc::SO_RCVBUF, SMALL_BUFFER);
    fd
}

/// A loopback connection whose buffers were made small before listen and
/// connect (the accepted socket inherits the listener's): (client, server).
fn small_buffer_pair() -> (SsFd, SsFd) {
    let listener = small_buffer_socket();
    // SAFETY: sockaddr_storage is plain data; zero is a valid value.
    let mut addr: sockaddr_storage = unsafe { core::mem::zeroed() };
    let mut len = size_of::<sockaddr_storage>() as socklen_t;
    // SAFETY: a C string literal and locals of the right types.
    let r = unsafe { ffi::ss_addr_parse(c"127.0.0.1:0".as_ptr(), &mut addr, &mut len) };
    assert_eq!(r, 0, "{}", last_error());
    // SAFETY: `addr` holds `len` bytes of an address.
    let r = unsafe { ffi::ss_bind(listener.raw(), (&raw const addr).cast(), len) };
    assert_eq!(r, 0, "{}", last_error());
    assert_eq!(ffi::ss_listen(listener.raw(), 1), 0);
    let mut len = size_of::<sockaddr_storage>() as socklen_t;
    // SAFETY: locals of the sizes given.
    let r = unsafe { ffi::ss_getsockname(listener.raw(), (&raw mut addr).cast(), &mut len) };
    assert_eq!(r, 0, "{}", last_error());

    let client = small_buffer_socket();
    // SAFETY: `addr` holds the listener's address, `len` bytes.
    let r = unsafe { ffi::ss_connect(client.raw(), (&raw const addr).cast(), len) };
    assert_eq!(r, 0, "{}", last_error());
    let server = accept(&listener);
    for fd in [&client, &server] {
        bound_waits(fd.raw());
        let sndbuf = getsockopt_int(fd.raw(), libc::SOL_SOCKET, libc::SO_SNDBUF);
        assert!(sndbuf <= 65536, "SO_SNDBUF stayed large: {sndbuf}");
    }
    (client, server)
}

/// Runs `body`, with [`INTERRUPT`] sent to this thread every millisecond if `on`.
fn maybe_interrupted<T>(on: bool, body: impl FnOnce() -> T) -> Interrupted<T> {
    if on {
        with_interruptions(Duration::from_millis(1), Duration::from_secs(60), body)
    } else {
        Interrupted {
            value: body(),
            sent: 0,
            handled: 0,
        }
    }
}

/// The first index where two buffers differ, for a readable failure.
fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| x != y)
}

const BIG: usize = 16 << 20;

/// Sends 16 MiB from one thread and receives them in one `ss_recv_exact` on
/// another, optionally with both threads signalled every millisecond.
fn big_transfer(interrupt: bool) {
    let (client, server) = small_buffer_pair();
    let mut data = vec![0u8; BIG];
    Rng::new(0x5afe_50c4).fill(&mut data);
    let data = Arc::new(data);
    let start = Instant::now();
    let sender = thread::spawn({
        let data = Arc::clone(&data);
        let fd = client.raw();
        move || maybe_interrupted(interrupt, || try_send_all(fd, &data))
    });
    let mut got = vec![0u8; BIG];
    let recv = maybe_interrupted(interrupt, || try_recv_exact(server.raw(), &mut got));
    // If the receiver failed, closing its end stops the sender at once.
    drop(server);
    let send = sender.join().expect("sending thread");
    let took = start.elapsed();
    eprintln!(
        "16 MiB, small buffers, interrupted={interrupt}: {took:?}; sender {} signals sent/{} handled, receiver {}/{}",
        send.sent, send.handled, recv.sent, recv.handled
    );

    let whole = |o: &Outcome| o.ret == BIG as i64 && o.transferred == BIG;
    assert!(
        whole(&send.value) && whole(&recv.value),
        "ss_send_all: {:?}\nss_recv_exact: {:?}",
        send.value,
        recv.value
    );
    assert_eq!(first_difference(&data, &got), None, "received bytes differ");
    assert_eq!(checksum(&got), checksum(&data));
    if interrupt {
        assert!(send.handled > 0, "no signal reached the sending thread");
        assert!(recv.handled > 0, "no signal reached the receiving thread");
    }
}

/// Reads come back short all the time (the receive buffer is small). Writes
/// do not: on a blocking TCP socket the kernel keeps copying until the whole
/// request is queued, so without signals the 16 MiB go in one `send`; the
/// short-write path is what the signalled and non-blocking tests exercise.
#[test]
fn big_transfer_with_small_buffers_completes_exactly() {
    big_transfer(false);
}

/// A handler without SA_RESTART: blocked writes end short or with EINTR,
/// blocked reads with EINTR; both helpers must carry on.
#[test]
fn big_transfer_completes_exactly_under_signals() {
    big_transfer(true);
}

/// The helper under test in [`against_a_trickling_peer`].
#[derive(Clone, Copy, Debug)]
enum Helper {
    SendAll,
    RecvExact,
}

const TRICKLED: usize = 256 << 10;
const TRICKLE_STEP: usize = 16 << 10;

/// The plain peer of [`against_a_trickling_peer`]: reads (against
/// `ss_send_all`) or writes (against `ss_recv_exact`) 16 KiB at a time with
/// pauses, until done, an error or [`PATIENCE`]. Returns what it read.
fn trickle(fd: c_int, helper: Helper, data: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; TRICKLE_STEP];
    let mut done = 0;
    let deadline = Instant::now() + PATIENCE;
    while done < data.len() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(2));
        let step = TRICKLE_STEP.min(data.len() - done);
        // SAFETY: both buffers are live for the lengths given.
        let n = unsafe {
            match helper {
                Helper::SendAll => libc::read(fd, buf.as_mut_ptr().cast(), step),
                Helper::RecvExact => libc::send(fd, data[done..].as_ptr().cast(), step, libc::MSG_NOSIGNAL),
            }
        };
        if n <= 0 {
            break;
        }
        if let Helper::SendAll = helper {
            got.extend_from_slice(&buf[..n as usize]);
        }
        done += n as usize;
    }
    got
}

/// One helper signalled every millisecond while its peer trickles: the
/// helper's thread mostly waits with nothing moved when a signal lands, so
/// its write or read fails with EINTR (not a short count) and must be retried.
fn against_a_trickling_peer(helper: Helper) {
    let (ours, peer) = small_buffer_pair();
    let mut data = vec![0u8; TRICKLED];
    Rng::new(11).fill(&mut data);
    let data = Arc::new(data);
    let peer_fd = peer.raw();
    let trickler = thread::spawn({
        let data = Arc::clone(&data);
        move || trickle(peer_fd, helper, &data)
    });
    let run = with_interruptions(Duration::from_millis(1), Duration::from_secs(60), || match helper {
        Helper::SendAll => (try_send_all(ours.raw(), &data), Vec::new()),
        Helper::RecvExact => {
            let mut got = vec![0u8; TRICKLED];
            (try_recv_exact(ours.raw(), &mut got), got)
        }
    });
    // If the helper failed, closing its end stops the peer at once.
    drop(ours);
    let peer_got = trickler.join().expect("trickling peer");
    let (outcome, got) = run.value;
    eprintln!("{helper:?} against a trickling peer: {} signals handled", run.handled);
    assert_eq!(outcome.ret, TRICKLED as i64, "{helper:?}: {outcome:?}");
    let got = if let Helper::SendAll = helper { peer_got } else { got };
    assert_eq!(first_difference(&data, &got), None, "{helper:?}: bytes differ");
    assert_eq!(got.len(), TRICKLED);
    assert!(run.handled > 0, "no signal reached the {helper:?} thread");
}

#[test]
fn send_all_retries_writes_interrupted_before_moving_anything() {
    against_a_trickling_peer(Helper::SendAll);
}

#[test]
fn recv_exact_retries_reads_interrupted_before_moving_anything() {
    against_a_trickling_peer(Helper::RecvExact);
}

#[test]
fn recv_exact_is_short_only_at_end_of_stream() {
    let (client, server) = tcp_pair("127.0.0.1:0");
    // Data in pieces with pauses: still one whole answer.
    let writer = thread::spawn({
        let fd = server.raw();
        move || {
            let first = try_send_all(fd, &[1u8; 10]);
            thread::sleep(Duration::from_millis(50));
            (first, try_send_all(fd, &[2u8; 90]))
        }
    });
    let mut buf = [0u8; 100];
    let whole = try_recv_exact(client.raw(), &mut buf);
    let (first, second) = writer.join().expect("writer");
    assert_eq!((first.ret, second.ret), (10, 90), "{first:?} {second:?}");
    assert_eq!(whole.ret, 100, "{whole:?}");
    assert_eq!(buf[..10], [1u8; 10]);
    assert_eq!(buf[10..], [2u8; 90]);

    // Ten bytes, then end of stream.
    assert_eq!(try_send_all(server.raw(), b"0123456789").ret, 10);
    drop(server);
    let mut buf = [0u8; 100];
    let short = try_recv_exact(client.raw(), &mut buf);
    assert_eq!(short.ret, 10, "{short:?}");
    assert_eq!(short.transferred, 10);
    assert_eq!(&buf[..10], b"0123456789");
    let after = try_recv_exact(client.raw(), &mut buf);
    assert_eq!((after.ret, after.transferred), (0, 0), "{after:?}");
}

/// Reads or writes the rest after `EAGAIN`, as the documentation says to:
/// wait for readiness, call again with the rest. Returns the number of calls.
fn finish_after_eagain(
    fd: c_int,
    events: libc::c_short,
    mut done: usize,
    total: usize,
    mut step: impl FnMut(usize) -> Outcome,
) -> usize {
    let deadline = Instant::now() + PATIENCE;
    let mut calls = 0;
    while done < total {
        assert!(
            Instant::now() < deadline,
            "only {done} of {total} bytes after {calls} calls"
        );
        wait_for(fd, events, PATIENCE);
        let o = step(done);
        calls += 1;
        if o.ret >= 0 {
            assert_eq!(o.ret as usize, total - done, "{o:?}");
            done = total;
        } else {
            assert_eq!(o.errno, libc::EAGAIN, "{o:?}");
            done += o.transferred;
        }
    }
    calls
}

#[test]
fn recv_exact_on_a_nonblocking_socket_returns_eagain_with_the_count() {
    let (client, server) = tcp_pair("127.0.0.1:0");
    set_nonblocking(client.raw(), true);
    let mut buf = [0u8; 100];

    let nothing = try_recv_exact(client.raw(), &mut buf);
    assert_eq!(
        (nothing.ret, nothing.errno, nothing.transferred),
        (-1, libc::EAGAIN, 0),
        "{nothing:?}"
    );

    assert_eq!(try_send_all(server.raw(), b"abcde").ret, 5);
    assert_ne!(wait_for(client.raw(), libc::POLLIN, PATIENCE), 0);
    let part = try_recv_exact(client.raw(), &mut buf);
    assert_eq!((part.ret, part.errno), (-1, libc::EAGAIN), "{part:?}");
    assert_eq!(part.transferred, 5, "{part:?}");
    assert!(part.message.contains("EAGAIN"), "{}", part.message);
    assert_eq!(&buf[..5], b"abcde");

    let rest: Vec<u8> = (0..95u8).collect();
    assert_eq!(try_send_all(server.raw(), &rest).ret, 95);
    finish_after_eagain(client.raw(), libc::POLLIN, 5, 100, |done| {
        try_recv_exact(client.raw(), &mut buf[done..])
    });
    assert_eq!(&buf[5..], &rest[..]);
}

#[test]
fn send_all_on_a_nonblocking_socket_returns_eagain_with_the_count() {
    let (client, server) = small_buffer_pair();
    set_nonblocking(client.raw(), true);
    let mut data = vec![0u8; 4 << 20];
    Rng::new(7).fill(&mut data);

    let part = try_send_all(client.raw(), &data);
    assert_eq!((part.ret, part.errno), (-1, libc::EAGAIN), "{part:?}");
    assert!(part.transferred > 0 && part.transferred < data.len(), "{part:?}");
    assert!(part.message.contains("EAGAIN"), "{}", part.message);

    // Now the peer reads; the writer finishes with the rest.
    let reader = thread::spawn({
        let fd = server.raw();
        let len = data.len();
        move || {
            let mut got = vec![0u8; len];
            (try_recv_exact(fd, &mut got), got)
        }
    });
    let calls = finish_after_eagain(client.raw(), libc::POLLOUT, part.transferred, data.len(), |done| {
        try_send_all(client.raw(), &data[done..])
    });
    let (read, got) = reader.join().expect("reader");
    eprintln!(
        "non-blocking ss_send_all of 4 MiB: EAGAIN after {} bytes, finished in {calls} more calls",
        part.transferred
    );
    assert_eq!(read.ret, data.len() as i64, "{read:?}");
    assert_eq!(first_difference(&data, &got), None);
}
