//! A signal arriving while a call sleeps in the kernel. The handler is
//! installed without `SA_RESTART` and the signal is sent with `pthread_kill`
//! to the blocked thread once `/proc` shows it asleep in the system call.
//! The mirror functions pass `EINTR` through exactly as libc does (programs
//! rely on it), and the descriptor works normally afterwards; the helpers
//! retry and complete. Finally, `ss_` calls made inside a handler while the
//! interrupted thread is in the middle of its own `ss_` calls.

use std::ffi::{CStr, c_int};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use safesock::ffi;

use crate::common::{
    Api, Fd, Outcome, Rng, SsFd, Target, accept_syscalls, errno, fd_or_panic, fill_send_buffer, in_child,
    install_handler, last_error, local_port, mirrored_listener, mirrored_tcp_pair, on_blocked_thread, plain_fd,
    plain_send, poll_syscalls, recv_exact, recv_syscalls, send_syscalls, set_errno, set_handler, set_timeouts, ss_pair,
    tcp_connect, tcp_listen, wait_queued,
};

/// Runs `call` on its own thread and interrupts it once, when it sleeps in
/// one of `syscalls`; `rescue` unblocks it should the signal not.
fn interrupted_once(call: impl FnOnce() -> Outcome + Send, syscalls: &[i64], rescue: impl FnOnce()) -> Outcome {
    install_handler();
    on_blocked_thread(
        call,
        |target| {
            target.wait_blocked_in(syscalls);
            target.interrupt();
        },
        rescue,
    )
}

fn recv(api: Api, fd: c_int, buf: &mut [u8]) -> Outcome {
    // SAFETY: `buf` is a live, writable buffer of the length given.
    let ret = unsafe {
        match api {
            Api::Ss => ffi::ss_recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0),
            Api::Libc => libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0),
        }
    };
    Outcome::of(ret as i64)
}

fn accept(api: Api, fd: c_int) -> Outcome {
    let null = std::ptr::null_mut();
    // SAFETY: NULL address and length are allowed.
    let ret = unsafe {
        match api {
            Api::Ss => ffi::ss_accept(fd, null, std::ptr::null_mut()),
            Api::Libc => libc::accept(fd, null, std::ptr::null_mut()),
        }
    };
    Outcome::of(ret)
}

/// Wakes a call blocked on `fd` that the signal failed to interrupt.
fn shut(fd: c_int) -> impl FnOnce() {
    // SAFETY: shutdown takes no pointer; `fd` stays open until its owner closes it.
    move || unsafe {
        libc::shutdown(fd, libc::SHUT_RDWR);
    }
}

#[test]
fn a_signal_during_a_blocking_recv_gives_eintr_like_libc_and_the_socket_still_works() {
    let mut seen = Vec::new();
    for api in [Api::Libc, Api::Ss] {
        let (client, server) = mirrored_tcp_pair(api);
        let fd = client.raw();
        // No receive timeout: the sleep ends only by data or a signal.
        set_timeouts(fd, Duration::ZERO);
        let outcome = interrupted_once(move || recv(api, fd, &mut [0u8; 64]), &recv_syscalls(), shut(fd));
        plain_send(server.raw(), b"after");
        let mut buf = [0u8; 64];
        let next = recv(api, fd, &mut buf);
        assert_eq!(
            (next.ret, &buf[..5]),
            (5, &b"after"[..]),
            "{api:?}: the socket after EINTR"
        );
        seen.push(outcome);
    }
    assert_eq!(seen[0].result(), seen[1].result(), "recv vs ss_recv");
    seen[1].expect_failure(libc::EINTR, "ss_recv(fd ", &["EINTR", "a signal interrupted the call"]);
    eprintln!("signal during recv: libc and ss_ both {:?}", seen[1].result());
}

#[test]
fn a_signal_during_a_blocking_accept_gives_eintr_like_libc_and_the_listener_still_works() {
    let mut seen = Vec::new();
    for api in [Api::Libc, Api::Ss] {
        let (l, port) = mirrored_listener(api);
        let fd = l.raw();
        let outcome = interrupted_once(move || accept(api, fd), &accept_syscalls(), shut(fd));
        let _client = TcpStream::connect(("127.0.0.1", port)).expect("connect after EINTR");
        let next = accept(api, fd);
        assert!(next.ret >= 0, "{api:?}: accept after EINTR: {next:?}");
        let accepted = match api {
            Api::Ss => Fd::Ss(SsFd(next.ret as c_int)),
            Api::Libc => Fd::Plain(plain_fd(next.ret as c_int)),
        };
        assert_eq!(accepted.close().ret, 0);
        seen.push(outcome);
    }
    assert_eq!(seen[0].result(), seen[1].result(), "accept vs ss_accept");
    seen[1].expect_failure(libc::EINTR, "ss_accept(fd ", &["EINTR"]);
}

/// Interrupts `target` `times` times, each time once it sleeps in `syscalls`.
fn interrupt_repeatedly(target: Target, syscalls: &[i64], times: usize) {
    for _ in 0..times {
        target.wait_blocked_in(syscalls);
        target.interrupt();
    }
}

#[test]
fn ss_recv_exact_resumes_after_signals_and_completes() {
    install_handler();
    let (client, server) = mirrored_tcp_pair(Api::Ss);
    let fd = client.raw();
    set_timeouts(fd, Duration::ZERO);
    let mut data = vec![0u8; 4096];
    Rng::new(11).fill(&mut data);
    let sent = data.clone();
    let (outcome, transferred, got) = on_blocked_thread(
        move || {
            let mut buf = vec![0u8; 4096];
            // SAFETY: `buf` is a live, writable buffer of the length given.
            let r = unsafe { ffi::ss_recv_exact(fd, buf.as_mut_ptr().cast(), buf.len()) };
            (Outcome::of(r as i64), ffi::ss_transferred(), buf)
        },
        |target| {
            // Interrupted before anything arrived, then after the first part.
            interrupt_repeatedly(target, &recv_syscalls(), 3);
            plain_send(server.raw(), &sent[..1000]);
            wait_queued(fd, 0);
            interrupt_repeatedly(target, &recv_syscalls(), 2);
            plain_send(server.raw(), &sent[1000..]);
        },
        shut(fd),
    );
    assert_eq!((outcome.ret, transferred), (4096, 4096), "{outcome:?}");
    assert!(got == data, "the bytes changed");
}

#[test]
fn ss_send_all_resumes_after_signals_and_completes() {
    install_handler();
    let (client, server) = mirrored_tcp_pair(Api::Ss);
    let fd = client.raw();
    set_timeouts(fd, Duration::ZERO);
    let mut data = vec![0u8; 16 << 20];
    Rng::new(12).fill(&mut data);
    let to_send = &data;
    let got = std::sync::Mutex::new(Vec::new());
    let (outcome, transferred) = on_blocked_thread(
        move || {
            // SAFETY: `to_send` is a live buffer of the length given.
            let r = unsafe { ffi::ss_send_all(fd, to_send.as_ptr().cast(), to_send.len()) };
            (Outcome::of(r as i64), ffi::ss_transferred())
        },
        |target| {
            // The socket buffers fill up and the sender sleeps; interrupt it there.
            interrupt_repeatedly(target, &send_syscalls(), 3);
            *got.lock().expect("lock") = recv_exact(server.raw(), to_send.len());
        },
        shut(fd),
    );
    assert_eq!(
        (outcome.ret as usize, transferred),
        (data.len(), data.len()),
        "{outcome:?}"
    );
    assert!(*got.lock().expect("lock") == data, "the bytes changed");
}

#[test]
fn ss_tcp_connect_resumes_its_wait_after_signals_and_connects() {
    install_handler();
    // Backlog 0 with one connection waiting: the kernel drops further SYNs
    // until the queue has room, so the next connect waits in poll.
    let listener = fd_or_panic(tcp_listen("127.0.0.1:0", 0), "ss_tcp_listen");
    let port = local_port(&listener);
    let first = fd_or_panic(tcp_connect(&format!("127.0.0.1:{port}"), 5000), "the first connect");
    let started = Instant::now();
    let outcome = on_blocked_thread(
        move || Outcome::of(tcp_connect(&format!("127.0.0.1:{port}"), 20_000)),
        |target| {
            interrupt_repeatedly(target, &poll_syscalls(), 3);
            // Make room: the next SYN retransmission gets through, and the
            // connect succeeds only if the interrupted wait was resumed.
            drop(crate::common::accept(&listener));
        },
        || {},
    );
    let took = started.elapsed();
    let second = fd_or_panic(
        outcome.ret as c_int,
        &format!("ss_tcp_connect after signals: {outcome:?}"),
    );
    assert_eq!(ffi::ss_tcp_state(second.raw()), ffi::SS_TCP_ESTABLISHED);
    drop(first);
    eprintln!("ss_tcp_connect interrupted 3 times, connected after {took:.1?}");
}

/// The descriptor the re-entrant handler sends on (a full non-blocking
/// stream, so each send fails with `EAGAIN` and goes down the failure path).
static HANDLER_FD: AtomicI32 = AtomicI32::new(-1);
/// Handler runs whose `ss_send` failed with `EAGAIN` and whose message was
/// either its own or empty (busy), and runs that saw anything else.
static HANDLER_OK: AtomicUsize = AtomicUsize::new(0);
static HANDLER_WRONG: AtomicUsize = AtomicUsize::new(0);

/// A handler that makes `ss_` calls, as a C program using the self-pipe
/// trick would (saving and restoring errno, allocating nothing).
extern "C" fn reentrant(_: c_int) {
    let saved = errno();
    let fd = HANDLER_FD.load(Ordering::SeqCst);
    // SAFETY: a one-byte static buffer.
    let r = unsafe { ffi::ss_send(fd, b"!".as_ptr().cast(), 1, libc::MSG_DONTWAIT) };
    let e = errno();
    // SAFETY: ss_last_error returns a NUL-terminated string; only read here.
    let message = unsafe { CStr::from_ptr(ffi::ss_last_error()) }.to_bytes();
    let own = message.is_empty() || message.starts_with(b"ss_send(fd ");
    let counter = if r == -1 && e == libc::EAGAIN && own {
        &HANDLER_OK
    } else {
        &HANDLER_WRONG
    };
    counter.fetch_add(1, Ordering::SeqCst);
    set_errno(saved);
}

#[test]
fn ss_calls_inside_a_signal_handler_neither_crash_nor_garble_the_interrupted_thread() {
    // In a child: the handler is process-wide, and a failure here would be
    // an abort (a panic cannot unwind out of a signal handler).
    let text = in_child("ss_ calls in a signal handler", || {
        let [a, b] = ss_pair(libc::SOCK_STREAM | libc::SOCK_NONBLOCK);
        fill_send_buffer(a);
        HANDLER_FD.store(a, Ordering::SeqCst);
        set_handler(libc::SIGUSR1, reentrant);
        let target = Target::me();
        let stop = AtomicBool::new(false);
        let mut garbled = Vec::new();
        let rounds = std::thread::scope(|s| {
            s.spawn(|| {
                while !stop.load(Ordering::SeqCst) {
                    // SAFETY: the target thread outlives this scope.
                    unsafe { libc::pthread_kill(target.thread, libc::SIGUSR1) };
                    std::thread::yield_now();
                }
            });
            // Until the handler has run often enough (bounded by time).
            let started = Instant::now();
            let mut round = 0;
            while HANDLER_OK.load(Ordering::SeqCst) + HANDLER_WRONG.load(Ordering::SeqCst) < 2000
                && started.elapsed() < Duration::from_secs(5)
            {
                round += 1;
                let backlog = round % 1000;
                let r = ffi::ss_listen(-5, backlog);
                let e = errno();
                let message = last_error();
                // The handler's ss_send may have come in between: then its
                // message is this thread's last one, as the contract says.
                let ours = message.starts_with(&format!("ss_listen(fd -5, backlog {backlog}): "));
                if r != -1 || e != libc::EBADF || !(ours || message.starts_with("ss_send(fd ")) {
                    garbled.push(format!("round {round}: {r}, errno {e}, {message:?}"));
                }
            }
            stop.store(true, Ordering::SeqCst);
            round
        });
        // SAFETY: restoring the default action in this child.
        unsafe { libc::signal(libc::SIGUSR1, libc::SIG_IGN) };
        assert!(garbled.is_empty(), "{}", garbled[..garbled.len().min(5)].join("\n"));
        let (ok, wrong) = (HANDLER_OK.load(Ordering::SeqCst), HANDLER_WRONG.load(Ordering::SeqCst));
        assert_eq!(wrong, 0, "handler runs that saw a wrong result ({ok} right)");
        assert!(ok >= 100, "the handler ran only {ok} times");
        for fd in [a, b] {
            assert_eq!(ffi::ss_close(fd), 0);
        }
        format!(
            "{rounds} failing ss_ calls interrupted by {ok} handler runs making failing ss_ calls: \
             no crash, no garbled message"
        )
    });
    eprintln!("{text}");
}
