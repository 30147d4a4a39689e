//! The three safety defaults of API.md section 1, checked through the exported
//! `ss_` functions as a C program would call them:
//!
//! 1. close-on-exec: descriptors from `ss_socket`, `ss_socketpair`,
//!    `ss_accept`, `ss_accept4` and `SCM_RIGHTS` received by `ss_recvmsg` do not
//!    survive `exec`, while a plain `socket(2)` descriptor does (the control);
//! 2. no SIGPIPE: every sending function fails with -1/`EPIPE` on a gone peer
//!    with SIGPIPE at its default action, while plain `send(2)` kills (the control);
//! 3. no double close: a number `ss_close` closed is refused until an `ss_` call
//!    hands it out or uses it again, also under concurrency.
//!
//! Checks that depend on which descriptor number the kernel hands out next run
//! in a forked, single-threaded child, so the parallel tests of this file cannot
//! take the number in between; the child reports through a pipe and its exit status.

mod common;

use std::ffi::CStr;
use std::mem::zeroed;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use libc::{c_int, c_void, iovec, msghdr, ssize_t};
use safesock::ffi::*;

use common::{
    Api, Ended, Listener, RecvmsgFn, SIN_LEN, SsFd, TempFile, as_sa_mut, dev_null, errno, errno_name, fd_flags,
    identity, in_child, is_cloexec, last_error, linger_zero, loopback, no_forks, plain_fd, plain_pair, recv_rights,
    run_forked, send_rights, set_errno, set_sigpipe, sigpipe_action, ss_pair, try_getsockopt_int, wait_for,
};

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

/// An `int` option read with `ss_getsockopt`; `None` if it fails.
fn int_option(fd: c_int, level: c_int, name: c_int) -> Option<c_int> {
    try_getsockopt_int(ss_getsockopt, fd, level, name).ok()
}

// ---------------------------------------------------------------------------
// 1. Close-on-exec
// ---------------------------------------------------------------------------

/// Which of `fds` a freshly exec'd `/bin/sh` still has open.
fn open_after_exec(fds: &[c_int]) -> Vec<bool> {
    let script = r#"for n in "$@"; do if [ -e "/proc/self/fd/$n" ]; then echo open; else echo closed; fi; done"#;
    // Until it execs, the shell holds a copy of every descriptor of this
    // process, which would keep a peer that another test closes alive.
    let _quiet = no_forks();
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .arg("sh")
        .args(fds.iter().map(c_int::to_string))
        .output()
        .expect("/bin/sh must exist to test close-on-exec");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let open: Vec<bool> = text.lines().map(|l| l == "open").collect();
    assert_eq!(open.len(), fds.len(), "unexpected output {text:?}");
    open
}

/// Sends `fd` over the unix socket `via` as SCM_RIGHTS, with plain sendmsg.
fn send_fd(via: c_int, fd: c_int) {
    let n = send_rights(libc::sendmsg, via, b'F', &[fd]);
    assert_eq!(n, 1, "sendmsg: errno {}", errno());
}

/// Receives one SCM_RIGHTS descriptor from `via` with `recv` (ss_recvmsg or libc).
fn recv_fd(via: c_int, recv: RecvmsgFn) -> c_int {
    let got = recv_rights(recv, via);
    assert_eq!(got.ret, 1, "recvmsg: errno {}, {}", errno(), last_error());
    let (_, ty, _) = got.header.expect("no control message received");
    assert_eq!(ty, libc::SCM_RIGHTS);
    got.fds[0]
}

/// A socket made by plain `socket(2)` without SOCK_CLOEXEC: inherited by exec.
fn plain_inheritable_socket() -> c_int {
    // SAFETY: socket takes no pointers.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) };
    assert!(fd >= 0);
    assert!(!is_cloexec(fd));
    fd
}

#[test]
fn ss_descriptors_are_not_inherited_across_exec_but_plain_ones_are() {
    let listener = Listener::tcp(16);
    let mut ours: Vec<(&str, SsFd)> = Vec::new();
    let tcp = ss_socket(libc::AF_INET, libc::SOCK_STREAM, 0);
    assert!(tcp >= 0, "{}", last_error());
    ours.push(("ss_socket(AF_INET, SOCK_STREAM)", SsFd(tcp)));
    let dgram = ss_socket(libc::AF_UNIX, libc::SOCK_DGRAM, 0);
    assert!(dgram >= 0, "{}", last_error());
    ours.push(("ss_socket(AF_UNIX, SOCK_DGRAM)", SsFd(dgram)));
    let [a, b] = ss_pair(libc::SOCK_STREAM);
    ours.push(("ss_socketpair sv[0]", SsFd(a)));
    ours.push(("ss_socketpair sv[1]", SsFd(b)));

    ours.push(("client of ss_connect", SsFd(listener.connect())));
    ours.push(("ss_accept", SsFd(listener.accept())));
    for (what, flags) in [
        ("ss_accept4(flags 0)", 0),
        ("ss_accept4(SOCK_NONBLOCK)", libc::SOCK_NONBLOCK),
    ] {
        ours.push(("client of ss_connect", SsFd(listener.connect())));
        // SAFETY: NULL address and length are allowed.
        let fd = unsafe { ss_accept4(listener.fd.raw(), std::ptr::null_mut(), std::ptr::null_mut(), flags) };
        assert!(fd >= 0, "{}", last_error());
        ours.push((what, SsFd(fd)));
    }

    // SCM_RIGHTS: a plain, inheritable socket passed over a socketpair.
    let passed = plain_fd(plain_inheritable_socket());
    send_fd(a, passed.as_raw_fd());
    ours.push(("SCM_RIGHTS via ss_recvmsg", SsFd(recv_fd(b, ss_recvmsg))));

    // The controls: plain socket(2), and SCM_RIGHTS via recvmsg(2) without MSG_CMSG_CLOEXEC.
    send_fd(a, passed.as_raw_fd());
    let controls: [(&str, OwnedFd); 3] = [
        ("SCM_RIGHTS via plain recvmsg", plain_fd(recv_fd(b, libc::recvmsg))),
        ("plain socket(2)", plain_fd(plain_inheritable_socket())),
        ("the passed socket itself", passed),
    ];

    for (what, fd) in &ours {
        assert!(is_cloexec(fd.0), "{what} (fd {}) lacks FD_CLOEXEC", fd.0);
    }
    for (what, fd) in &controls {
        let fd = fd.as_raw_fd();
        assert!(!is_cloexec(fd), "control {what} (fd {fd}) has FD_CLOEXEC");
    }

    let numbers: Vec<c_int> = ours
        .iter()
        .map(|(_, f)| f.0)
        .chain(controls.iter().map(|(_, f)| f.as_raw_fd()))
        .collect();
    let open = open_after_exec(&numbers);
    let (ours_open, controls_open) = open.split_at(ours.len());
    for ((what, fd), inherited) in ours.iter().zip(ours_open) {
        assert!(!inherited, "{what} (fd {}) was inherited across exec", fd.0);
    }
    for ((what, fd), inherited) in controls.iter().zip(controls_open) {
        assert!(
            inherited,
            "control {what} (fd {}) was not inherited: the exec check cannot see descriptors",
            fd.as_raw_fd()
        );
    }
    println!(
        "{} ss_ descriptors closed on exec, {} plain controls inherited",
        ours.len(),
        controls.len()
    );
}

#[test]
fn scm_rights_received_by_ss_recvmsg_have_fd_cloexec() {
    let [a, b] = ss_pair(libc::SOCK_DGRAM);
    let _pair = (SsFd(a), SsFd(b));
    let passed = plain_fd(plain_inheritable_socket());
    for _ in 0..3 {
        send_fd(a, passed.as_raw_fd());
        let got = SsFd(recv_fd(b, ss_recvmsg));
        assert!(is_cloexec(got.0), "fd {} from ss_recvmsg", got.0);
        assert_eq!(
            int_option(got.0, libc::SOL_SOCKET, libc::SO_TYPE),
            Some(libc::SOCK_STREAM)
        );
    }
    // The control: without safesock the received descriptor is inheritable.
    send_fd(a, passed.as_raw_fd());
    let plain = plain_fd(recv_fd(b, libc::recvmsg));
    assert!(!is_cloexec(plain.as_raw_fd()));
}

// ---------------------------------------------------------------------------
// 2. No SIGPIPE
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Stream {
    /// TCP over 127.0.0.1: the peer closed; its FIN has been read.
    Tcp,
    /// TCP whose peer closed and then reset the connection after our last send.
    TcpReset,
    /// An AF_UNIX stream socketpair whose other end is closed.
    Unix,
}

/// Our end of a stream connection whose peer is gone.
fn gone_peer(kind: Stream) -> SsFd {
    match kind {
        Stream::Unix => {
            let [ours, theirs] = ss_pair(libc::SOCK_STREAM);
            assert_eq!(ss_close(theirs), 0);
            SsFd(ours)
        }
        Stream::Tcp | Stream::TcpReset => {
            let listener = Listener::tcp(4);
            let ours = SsFd(listener.connect());
            assert_eq!(ss_close(listener.accept()), 0);
            let ready = wait_for(ours.0, libc::POLLIN, Duration::from_secs(5));
            assert!(ready & libc::POLLIN != 0, "the peer's FIN did not arrive");
            let mut buf = [0u8; 1];
            // SAFETY: buf is a local buffer of 1 byte.
            let n = unsafe { ss_recv(ours.0, buf.as_mut_ptr().cast(), 1, 0) };
            assert_eq!(n, 0, "expected end of stream");
            if let Stream::TcpReset = kind {
                // SAFETY: a 1-byte local buffer; MSG_NOSIGNAL keeps this helper quiet.
                let n = unsafe { libc::send(ours.0, buf.as_ptr().cast(), 1, libc::MSG_NOSIGNAL) };
                assert_eq!(n, 1, "the first send after FIN is accepted");
                let ev = wait_for(ours.0, 0, Duration::from_secs(5));
                assert!(ev & (libc::POLLHUP | libc::POLLERR) != 0, "no reset came back");
            }
            ours
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Sender {
    Send,
    Sendto,
    Sendmsg,
    Write,
    Writev,
}

impl Sender {
    fn name(self) -> &'static str {
        match self {
            Sender::Send => "ss_send",
            Sender::Sendto => "ss_sendto",
            Sender::Sendmsg => "ss_sendmsg",
            Sender::Write => "ss_write",
            Sender::Writev => "ss_writev",
        }
    }
}

const SENDERS: [Sender; 5] = [
    Sender::Send,
    Sender::Sendto,
    Sender::Sendmsg,
    Sender::Write,
    Sender::Writev,
];

/// One byte sent with the chosen exported function.
fn send_one(sender: Sender, fd: c_int) -> ssize_t {
    let byte = *b"x";
    let p: *const c_void = byte.as_ptr().cast();
    let mut iov = iovec {
        iov_base: p.cast_mut(),
        iov_len: 1,
    };
    // SAFETY: every pointer refers to the locals above, of the sizes given.
    unsafe {
        match sender {
            Sender::Send => ss_send(fd, p, 1, 0),
            Sender::Sendto => ss_sendto(fd, p, 1, 0, std::ptr::null(), 0),
            Sender::Write => ss_write(fd, p, 1),
            Sender::Writev => ss_writev(fd, &iov, 1),
            Sender::Sendmsg => {
                let mut msg: msghdr = zeroed();
                msg.msg_iov = &mut iov;
                msg.msg_iovlen = 1;
                ss_sendmsg(fd, &msg, 0)
            }
        }
    }
}

/// Sends with `send` until it fails (bounded); returns the successes, the result and errno.
fn send_until_error(fd: c_int, mut send: impl FnMut() -> ssize_t) -> (usize, ssize_t, c_int) {
    for ok in 0..500 {
        let r = send();
        if r < 0 {
            return (ok, r, errno());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("fd {fd}: 500 sends to a gone peer all succeeded");
}

#[test]
fn sends_to_a_gone_peer_fail_with_epipe_and_never_raise_sigpipe() {
    set_sigpipe(libc::SIG_DFL);
    for kind in [Stream::Tcp, Stream::Unix] {
        for sender in SENDERS {
            let name = sender.name();
            let scenario = move || {
                assert_eq!(sigpipe_action(), libc::SIG_DFL, "SIGPIPE must be at SIG_DFL");
                let fd = gone_peer(kind);
                let (ok, r, e) = send_until_error(fd.0, || send_one(sender, fd.0));
                assert_eq!((r, e), (-1, libc::EPIPE), "{name} on {kind:?}: {}", last_error());
                format!("{name} on {kind:?}: {ok} sends accepted, then -1/EPIPE")
            };
            // In a child first, so that a SIGPIPE is reported per function...
            let text = in_child(&format!("{name} on {kind:?}"), scenario);
            // ...then in this multi-threaded test process itself, with no
            // child holding a copy of the peer.
            let quiet = no_forks();
            assert_eq!(scenario(), text);
            drop(quiet);
            println!("{text}");
        }
    }
    assert_eq!(sigpipe_action(), libc::SIG_DFL);
}

/// A huge write (`count` bytes claimed from a 64-byte buffer) with
/// `write`/`writev`, through libc (`plain`) or safesock.
fn huge_write(fd: c_int, writev: bool, plain: bool, count: usize) -> ssize_t {
    let buf = [7u8; 64];
    let iov = iovec {
        iov_base: buf.as_ptr().cast_mut().cast(),
        iov_len: count,
    };
    // SAFETY: a small valid buffer with a huge count: the kernel checks the range.
    unsafe {
        match (writev, plain) {
            (false, true) => libc::write(fd, buf.as_ptr().cast(), count),
            (false, false) => ss_write(fd, buf.as_ptr().cast(), count),
            (true, true) => libc::writev(fd, &iov, 1),
            (true, false) => ss_writev(fd, &iov, 1),
        }
    }
}

/// `(return value, errno)` of [`huge_write`] to a gone peer in a forked child,
/// with SIGPIPE ignored for libc (`plain`) and at SIG_DFL for safesock.
fn huge_write_in_child(kind: Stream, writev: bool, plain: bool, count: usize) -> (ssize_t, c_int) {
    let text = in_child("huge write", move || {
        let fd = gone_peer(kind);
        set_sigpipe(if plain { libc::SIG_IGN } else { libc::SIG_DFL });
        set_errno(0);
        let r = huge_write(fd.0, writev, plain, count);
        format!("{r} {}", errno())
    });
    let mut parts = text.split(' ').map(|s| s.parse::<i64>().expect("number"));
    let r = parts.next().expect("result") as ssize_t;
    (r, parts.next().expect("errno") as c_int)
}

#[test]
fn huge_ss_write_to_a_gone_peer_gives_writes_errno_without_a_signal() {
    set_sigpipe(libc::SIG_DFL);
    for kind in [Stream::Unix, Stream::TcpReset] {
        for (writev, name) in [(false, "ss_write"), (true, "ss_writev")] {
            for count in [0x8000_0000usize, usize::MAX / 2] {
                let libc_answer = huge_write_in_child(kind, writev, true, count);
                let ss_answer = huge_write_in_child(kind, writev, false, count);
                assert_eq!(
                    ss_answer, libc_answer,
                    "{name}({count:#x}) on {kind:?} differs from libc"
                );
                // And in this multi-threaded process, SIGPIPE at SIG_DFL,
                // with no child holding a copy of the peer.
                let _quiet = no_forks();
                let fd = gone_peer(kind);
                let r = huge_write(fd.0, writev, false, count);
                assert_eq!((r, errno()), libc_answer, "{}", last_error());
                println!(
                    "{name}({count:#x}) on {kind:?}: {r}/{} as libc gives, no signal",
                    errno_name(libc_answer.1)
                );
            }
        }
    }
}

#[test]
fn ss_write_on_a_socket_whose_number_held_a_pipe_before_raises_no_sigpipe() {
    // A program writes to a pipe with ss_write (allowed: "this holds for
    // ss_write/ss_writev on a non-socket too"), closes it with close() (what
    // API.md recommends for numbers safesock did not hand out), and later
    // gets the same number from a plain socketpair/socket/accept/dup2. The
    // number is now a socket: ss_write must not raise SIGPIPE on it.
    let mut failures = Vec::new();
    for sender in [Sender::Write, Sender::Writev] {
        let name = sender.name();
        let report = run_forked(move || {
            set_sigpipe(libc::SIG_DFL);
            let mut p = [-1; 2];
            // SAFETY: p has room for two descriptors.
            assert_eq!(unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
            assert_eq!(send_one(sender, p[1]), 1, "{}", last_error());
            // SAFETY: the pipe belongs to this child.
            unsafe {
                libc::close(p[0]);
                libc::close(p[1]);
            }
            let sv = plain_pair(libc::SOCK_STREAM);
            assert_eq!(sv, p, "socketpair must reuse the pipe's numbers");
            // SAFETY: the peer end belongs to this child.
            unsafe { libc::close(sv[0]) };
            let r = send_one(sender, sv[1]);
            let e = errno();
            assert_eq!((r, e), (-1, libc::EPIPE), "{name}: {}", last_error());
            format!("{name} on reused fd {}: -1/EPIPE", sv[1])
        });
        let outcome = match report.ended {
            Ended::Exited(0) => report.output,
            Ended::Signaled(libc::SIGPIPE) => {
                failures.push(format!("{name}: killed by SIGPIPE instead of -1/EPIPE"));
                continue;
            }
            other => {
                failures.push(format!("{name}: child ended {other:?}: {}", report.output));
                continue;
            }
        };
        println!("{outcome}");
    }
    assert!(
        failures.is_empty(),
        "on a socket whose number held a pipe that ss_write/ss_writev wrote before: {failures:#?}"
    );
}

#[test]
fn plain_send_without_msg_nosignal_is_killed_by_sigpipe() {
    for kind in [Stream::Tcp, Stream::Unix] {
        let report = run_forked(move || {
            set_sigpipe(libc::SIG_DFL);
            let fd = gone_peer(kind);
            let byte = *b"x";
            let (ok, r, e) = send_until_error(fd.0, || {
                // SAFETY: a 1-byte local buffer.
                unsafe { libc::send(fd.0, byte.as_ptr().cast(), 1, 0) }
            });
            format!("survived: {ok} sends then {r}/{e}")
        });
        assert_eq!(
            report.ended,
            Ended::Signaled(libc::SIGPIPE),
            "control on {kind:?}: plain send should die of SIGPIPE; child said {:?}",
            report.output
        );
    }
}

// ---------------------------------------------------------------------------
// 3. No double close
// ---------------------------------------------------------------------------

#[test]
fn ss_close_refuses_a_number_it_closed_even_after_open_reused_it() {
    let text = in_child("double close", || {
        let n = ss_socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(n >= 0, "{}", last_error());
        assert_eq!(ss_close(n), 0, "{}", last_error());
        let file = dev_null();
        assert_eq!(file, n, "open must reuse the lowest free number");
        let null_id = identity(file).expect("fstat /dev/null");

        ss_clear_error();
        set_errno(0);
        assert_eq!((ss_close(n), errno()), (-1, libc::EBADF));
        assert!(fd_flags(n) >= 0, "the refused ss_close closed fd {n}");
        assert_eq!(identity(n), Some(null_id), "fd {n} is no longer /dev/null");
        let m = last_error();
        let head = format!("ss_close(fd {n}): Bad file descriptor (EBADF): ");
        assert!(m.starts_with(&head), "{m}");
        assert!(m.contains(&format!("fd {n} was already closed by ss_close")), "{m}");
        // Refused again, still nothing closed.
        assert_eq!((ss_close(n), errno()), (-1, libc::EBADF));
        assert_eq!(identity(n), Some(null_id));
        // SAFETY: the /dev/null descriptor belongs to this child.
        assert_eq!(unsafe { libc::close(n) }, 0);
        m
    });
    println!("refused: {text}");
}

#[test]
fn ss_close_is_allowed_again_once_an_ss_call_hands_the_number_out() {
    let text = in_child("handed out again", || {
        let listener = Listener::tcp(4);
        let client = SsFd(listener.connect());

        let n = ss_socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert_eq!(ss_close(n), 0);
        assert_eq!(ss_socket(libc::AF_UNIX, libc::SOCK_DGRAM, 0), n, "ss_socket");
        assert_eq!(ss_close(n), 0, "after ss_socket: {}", last_error());

        let [a, b] = ss_pair(libc::SOCK_STREAM);
        assert_eq!(a, n, "ss_socketpair");
        assert_eq!((ss_close(a), ss_close(b)), (0, 0), "{}", last_error());

        assert_eq!(listener.accept(), n, "ss_accept");
        assert_eq!(ss_close(n), 0, "after ss_accept: {}", last_error());
        drop(client);
        format!("fd {n} handed out by ss_socket, ss_socketpair, ss_accept: each close allowed")
    });
    println!("{text}");
}

#[test]
fn a_successful_ss_call_on_a_reused_number_allows_ss_close_again() {
    let text = in_child("reuse by pipe", || {
        let a = ss_socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
        let b = ss_socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
        assert!(a >= 0 && b >= 0);
        assert_eq!((ss_close(a), ss_close(b)), (0, 0));
        let mut p = [-1; 2];
        // SAFETY: p has room for two descriptors.
        assert_eq!(unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        assert_eq!(p, [a, b], "pipe must reuse both numbers");

        // Before any ss_ use, the write end's number is still refused.
        assert_eq!((ss_close(b), errno()), (-1, libc::EBADF));
        // A successful ss_write marks it in use: ss_close may close it.
        // SAFETY: a 2-byte local buffer.
        assert_eq!(unsafe { ss_write(b, b"hi".as_ptr().cast(), 2) }, 2, "{}", last_error());
        assert_eq!(ss_close(b), 0, "after ss_write: {}", last_error());
        assert_eq!(fd_flags(b), -1, "fd {b} still open after ss_close returned 0");

        let mut buf = [0u8; 2];
        // SAFETY: buf is a local buffer of 2 bytes.
        assert_eq!(unsafe { ss_read(a, buf.as_mut_ptr().cast(), 2) }, 2, "{}", last_error());
        assert_eq!(&buf, b"hi");
        assert_eq!(ss_close(a), 0, "after ss_read: {}", last_error());
        format!("pipe reused fds {a},{b}; ss_write/ss_read made ss_close allowed")
    });
    println!("{text}");
}

/// Counters shared by the threads of the concurrency test.
#[derive(Default)]
struct Tally {
    sockets: AtomicUsize,
    pairs: AtomicUsize,
    accepts: AtomicUsize,
    file_rounds: AtomicUsize,
    bad_closes: AtomicUsize,
    lost_files: AtomicUsize,
    lost_sockets: AtomicUsize,
}

fn count(counter: &AtomicUsize) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// One round of ss_ creation and closing; ownership is checked before each close.
fn ss_round(round: usize, listener: &Listener, tally: &Tally) {
    let close_owned = |fd: c_int| {
        if ss_close(fd) != 0 {
            count(&tally.bad_closes);
        }
    };
    match round % 3 {
        0 => {
            let s = ss_socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            assert!(s >= 0, "{}", last_error());
            if int_option(s, libc::SOL_SOCKET, libc::SO_DOMAIN) != Some(libc::AF_INET) {
                count(&tally.lost_sockets);
            }
            close_owned(s);
            count(&tally.sockets);
        }
        1 => {
            let [a, b] = ss_pair(libc::SOCK_STREAM);
            let mut byte = [round as u8];
            // SAFETY: 1-byte local buffers.
            let moved = unsafe {
                ss_send(a, byte.as_ptr().cast(), 1, libc::MSG_DONTWAIT) == 1
                    && ss_recv(b, byte.as_mut_ptr().cast(), 1, libc::MSG_DONTWAIT) == 1
            };
            if !moved || byte[0] != round as u8 {
                count(&tally.lost_sockets);
            }
            close_owned(a);
            close_owned(b);
            count(&tally.pairs);
        }
        _ => {
            let client = listener.connect();
            let server = listener.accept();
            let (mut mine, mut theirs) = (loopback(0), loopback(0));
            let (mut l1, mut l2) = (SIN_LEN, SIN_LEN);
            // SAFETY: both addresses have room for their lengths.
            let same = unsafe {
                ss_getsockname(client, as_sa_mut(&mut mine), &mut l1) == 0
                    && ss_getpeername(server, as_sa_mut(&mut theirs), &mut l2) == 0
            } && mine.sin_port == theirs.sin_port;
            if !same {
                count(&tally.lost_sockets);
            }
            // A reset instead of TIME_WAIT keeps the ephemeral ports free.
            linger_zero(Api::Ss, client);
            close_owned(server);
            close_owned(client);
            count(&tally.accepts);
        }
    }
}

/// One round of plain-file use: the descriptor must still be this file when closed.
fn file_round(path: &CStr, id: (u64, u64), tally: &Tally) {
    // SAFETY: the path is NUL-terminated.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    assert!(fd >= 0, "open: errno {}", errno());
    if identity(fd) != Some(id) {
        count(&tally.lost_files);
    }
    // Use it a little, as real code would, then check it again before closing.
    let mut buf = [0u8; 16];
    // SAFETY: buf is a local buffer of 16 bytes.
    if unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), 0) } != 10 {
        count(&tally.lost_files);
    }
    if identity(fd) != Some(id) {
        count(&tally.lost_files);
    }
    // SAFETY: fd was opened above by this thread.
    if unsafe { libc::close(fd) } != 0 {
        count(&tally.lost_files);
    }
    count(&tally.file_rounds);
}

#[test]
fn concurrent_ss_create_and_close_never_touches_foreign_descriptors() {
    const SS_THREADS: usize = 8;
    const FILE_THREADS: usize = 4;
    const RUN: Duration = Duration::from_millis(1500);
    const MAX_ROUNDS: usize = 200_000;

    let files: Vec<TempFile> = (0..FILE_THREADS)
        .map(|i| TempFile::new(&format!("conc-{i}"), b"plain file"))
        .collect();
    let paths: Vec<&std::path::PathBuf> = files.iter().map(|f| &f.0).collect();
    let tally = Tally::default();
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..SS_THREADS {
            s.spawn(|| {
                let listener = Listener::tcp(16);
                for round in 0..MAX_ROUNDS {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    ss_round(round, &listener, &tally);
                }
            });
        }
        for p in &paths {
            let tally = &tally;
            let stop = &stop;
            s.spawn(move || {
                let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).expect("path");
                let meta = std::fs::metadata(p).expect("temp file");
                let id = {
                    use std::os::unix::fs::MetadataExt;
                    (meta.dev(), meta.ino())
                };
                for _ in 0..MAX_ROUNDS {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    file_round(&c, id, tally);
                }
            });
        }
        std::thread::sleep(RUN);
        stop.store(true, Ordering::Relaxed);
    });
    drop(files);
    let get = |c: &AtomicUsize| c.load(Ordering::Relaxed);
    println!(
        "{:?}: {} ss_socket, {} ss_socketpair, {} ss_connect+ss_accept rounds on {SS_THREADS} threads; \
         {} plain open/fstat/close rounds on {FILE_THREADS} threads",
        started.elapsed(),
        get(&tally.sockets),
        get(&tally.pairs),
        get(&tally.accepts),
        get(&tally.file_rounds)
    );
    assert_eq!(get(&tally.bad_closes), 0, "ss_close of an owned descriptor failed");
    assert_eq!(get(&tally.lost_sockets), 0, "an ss_ descriptor changed under its owner");
    assert_eq!(
        get(&tally.lost_files),
        0,
        "a plain file descriptor was closed or replaced"
    );
    assert!(get(&tally.sockets) > 0 && get(&tally.accepts) > 0 && get(&tally.file_rounds) > 0);
}

#[test]
fn racing_ss_close_on_one_descriptor_lets_exactly_one_through() {
    const THREADS: usize = 8;
    const ROUNDS: usize = 500;
    // In a child: a losing close could otherwise hit a number that a parallel
    // test got from ss_socket in between, which the contract cannot prevent.
    let text = in_child("racing ss_close", || {
        let target = AtomicI32::new(-1);
        let start = Barrier::new(THREADS + 1);
        let done = Barrier::new(THREADS + 1);
        let results = Mutex::new(Vec::with_capacity(THREADS));
        std::thread::scope(|s| {
            for _ in 0..THREADS {
                s.spawn(|| {
                    for _ in 0..ROUNDS {
                        start.wait();
                        let fd = target.load(Ordering::Acquire);
                        let r = ss_close(fd);
                        let e = errno();
                        results.lock().expect("lock").push((r, e));
                        done.wait();
                    }
                });
            }
            for round in 0..ROUNDS {
                let fd = ss_socket(libc::AF_UNIX, libc::SOCK_DGRAM, 0);
                assert!(fd >= 0, "{}", last_error());
                target.store(fd, Ordering::Release);
                start.wait();
                done.wait();
                let got = std::mem::take(&mut *results.lock().expect("lock"));
                let winners = got.iter().filter(|(r, _)| *r == 0).count();
                let refused = got.iter().filter(|g| **g == (-1, libc::EBADF)).count();
                assert_eq!((winners, refused), (1, THREADS - 1), "round {round}, fd {fd}: {got:?}");
                assert_eq!(fd_flags(fd), -1, "round {round}: fd {fd} still open");
            }
        });
        format!("{ROUNDS} rounds of {THREADS} racing ss_close: one 0, the rest -1/EBADF")
    });
    println!("{text}");
}
