//! API.md section 2, through the exported functions: real failures leave one
//! line in `ss_last_error()` naming the call with its decoded arguments, the
//! system's text, the errno name and the hint; the line is per thread, errno
//! is what libc sets, `ss_errno_name`/`ss_version`/`ss_clear_error` behave as
//! documented, and `SAFESOCK_TRACE` writes one line per call to standard error
//! or appends to a file, and nothing when unset.
//!
//! Tracing is read once per process, so the trace tests re-run this test
//! binary with `--exact trace_child_entry` and the variable set. Failures
//! that need a process-wide change (a lower descriptor limit, dropped
//! privileges) or a predictable descriptor number run in a forked child.

mod common;

use std::io::Read;
use std::mem::{size_of, zeroed};
use std::net::Ipv6Addr;
use std::process::Stdio;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use libc::{c_int, sockaddr, sockaddr_in6, socklen_t};
use safesock::ffi::*;

use common::{
    SIN_LEN, SsFd, TempFile, as_sa, as_sa_mut, bound_tcp, c_text, connect_loopback, errno, errno_name, in_child,
    in_forked_child, last_error, leave_room_for, loopback, rerun, set_errno, setsockopt_int, ss_pair, tcp_socket,
};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Asserts that the last failure set `want` and left a message that starts
/// with `head`, shows the system text and errno name, and contains every `hint`.
fn expect_failure(result: isize, want: c_int, head: &str, hints: &[&str]) -> String {
    let got = errno();
    let m = last_error();
    assert_eq!(
        (result, got),
        (-1, want),
        "expected -1/{}, message: {m}",
        errno_name(want)
    );
    let system = std::io::Error::from_raw_os_error(want).to_string();
    let system = system.split(" (os error").next().unwrap_or_default();
    let expected_start = format!("{head}: {system} ({})", errno_name(want));
    assert!(
        m.starts_with(&expected_start),
        "message should start with {expected_start:?}:\n{m}"
    );
    for hint in hints {
        assert!(m.contains(hint), "message should contain {hint:?}:\n{m}");
    }
    if !in_forked_child() {
        println!("{m}");
    }
    m
}

/// `ss_connect(fd, 127.0.0.1:port)`, widened for [`expect_failure`].
fn connect(fd: c_int, port: u16) -> isize {
    connect_loopback(fd, port) as isize
}

// ---------------------------------------------------------------------------
// Messages of real failures
// ---------------------------------------------------------------------------

#[test]
fn connect_refused_names_the_address() {
    // A bound, not listening socket holds the port: connecting to it is refused.
    let (_holder, port) = bound_tcp(None);
    let s = tcp_socket();
    let head = format!("ss_connect(fd {}, 127.0.0.1:{port})", s.0);
    expect_failure(
        connect(s.0, port),
        libc::ECONNREFUSED,
        &head,
        &[&format!("nothing listens on 127.0.0.1:{port}")],
    );
}

#[test]
fn bind_to_a_port_in_use_suggests_so_reuseaddr() {
    let (_listener, port) = bound_tcp(Some(4));
    let s = tcp_socket();
    setsockopt_int(s.0, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1);
    let to = loopback(port);
    // SAFETY: to is a sockaddr_in of SIN_LEN bytes.
    let r = unsafe { ss_bind(s.0, as_sa(&to), SIN_LEN) };
    expect_failure(
        r as isize,
        libc::EADDRINUSE,
        &format!("ss_bind(fd {}, 127.0.0.1:{port})", s.0),
        &["SO_REUSEADDR"],
    );
}

#[test]
fn accept_without_listen_says_to_call_ss_listen() {
    let (s, _) = bound_tcp(None);
    // SAFETY: NULL address and length are allowed.
    let r = unsafe { ss_accept(s.0, std::ptr::null_mut(), std::ptr::null_mut()) };
    let m = expect_failure(r as isize, libc::EINVAL, &format!("ss_accept(fd {})", s.0), &[]);
    assert_eq!(
        m,
        format!(
            "ss_accept(fd {0}): Invalid argument (EINVAL): fd {0} is not listening; call ss_listen first",
            s.0
        )
    );
}

#[test]
fn unconnected_socket_gives_enotconn() {
    let s = tcp_socket();
    let mut peer = loopback(0);
    let mut len = SIN_LEN;
    // SAFETY: peer has room for len bytes.
    let r = unsafe { ss_getpeername(s.0, as_sa_mut(&mut peer), &mut len) };
    let hint = "not connected; call ss_connect first";
    expect_failure(
        r as isize,
        libc::ENOTCONN,
        &format!("ss_getpeername(fd {})", s.0),
        &[hint],
    );
    let mut buf = [0u8; 4];
    // SAFETY: buf is a local buffer of 4 bytes.
    let r = unsafe { ss_recv(s.0, buf.as_mut_ptr().cast(), 4, 0) };
    expect_failure(
        r,
        libc::ENOTCONN,
        &format!("ss_recv(fd {}, 4 bytes, flags 0x0)", s.0),
        &[hint],
    );
}

#[test]
fn send_to_a_closed_peer_gives_epipe() {
    let sv = ss_pair(libc::SOCK_STREAM);
    let ours = SsFd(sv[0]);
    assert_eq!(ss_close(sv[1]), 0);
    // SAFETY: a 5-byte static buffer.
    let r = unsafe { ss_send(ours.0, b"hello".as_ptr().cast(), 5, 0) };
    expect_failure(
        r,
        libc::EPIPE,
        &format!("ss_send(fd {}, 5 bytes, flags 0x0)", ours.0),
        &["peer has closed", "no SIGPIPE"],
    );
}

#[test]
fn use_after_ss_close_says_already_closed_by_ss_close() {
    // In a child: no parallel test may get the number between the two calls.
    let text = in_child("EBADF after ss_close", || {
        let n = ss_socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert_eq!(ss_close(n), 0);
        let already = format!("fd {n} was already closed by ss_close");
        let close_msg = expect_failure(
            ss_close(n) as isize,
            libc::EBADF,
            &format!("ss_close(fd {n})"),
            &[&already, "close()"],
        );
        let mut buf = [0u8; 4];
        // SAFETY: buf is a local buffer of 4 bytes.
        let r = unsafe { ss_read(n, buf.as_mut_ptr().cast(), 4) };
        let read_msg = expect_failure(r, libc::EBADF, &format!("ss_read(fd {n}, 4 bytes)"), &[&already]);
        format!("{close_msg}\n{read_msg}")
    });
    println!("{text}");
}

#[test]
fn wrong_address_lengths_are_explained() {
    let s = tcp_socket();
    let any = loopback(0);
    // SAFETY: any is larger than the 8 bytes announced.
    let r = unsafe { ss_bind(s.0, as_sa(&any), 8) };
    expect_failure(
        r as isize,
        libc::EINVAL,
        &format!("ss_bind(fd {}, AF_INET address with addrlen 8 (needs 16))", s.0),
        &["addrlen 8 does not fit AF_INET", "16 bytes"],
    );
    // Longer than any address: the kernel refuses it before reading it.
    let storage = [0u8; 256];
    // SAFETY: storage is 256 readable bytes, more than the 200 announced.
    let r = unsafe { ss_bind(s.0, storage.as_ptr().cast(), 200) };
    expect_failure(
        r as isize,
        libc::EINVAL,
        &format!("ss_bind(fd {}, address at {:p}, addrlen 200)", s.0, storage.as_ptr()),
        &["addrlen 200", "larger than any address"],
    );
}

#[test]
fn unreadable_address_is_shown_as_a_pointer_not_read() {
    let s = tcp_socket();
    let bogus = 0x10 as *const sockaddr;
    // SAFETY: the kernel checks the pointer and answers EFAULT; safesock must not read it.
    let r = unsafe { ss_connect(s.0, bogus, SIN_LEN) };
    expect_failure(
        r as isize,
        libc::EFAULT,
        &format!("ss_connect(fd {}, address at 0x10, addrlen {SIN_LEN})", s.0),
        &["outside the process's memory"],
    );
}

#[test]
fn ipv6_address_on_an_ipv4_socket_gives_eafnosupport() {
    let s = tcp_socket();
    // SAFETY: sockaddr_in6 is plain data; all-zero is a valid value.
    let mut six: sockaddr_in6 = unsafe { zeroed() };
    six.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    six.sin6_addr.s6_addr = Ipv6Addr::LOCALHOST.octets();
    let len = size_of::<sockaddr_in6>() as socklen_t;
    let hint = "does not match the socket's";
    // SAFETY: six is a sockaddr_in6 of len bytes.
    let r = unsafe { ss_bind(s.0, as_sa(&six), len) };
    expect_failure(
        r as isize,
        libc::EAFNOSUPPORT,
        &format!("ss_bind(fd {}, [::1]:0)", s.0),
        &[hint],
    );
    // SAFETY: as above.
    let r = unsafe { ss_connect(s.0, as_sa(&six), len) };
    expect_failure(
        r as isize,
        libc::EAFNOSUPPORT,
        &format!("ss_connect(fd {}, [::1]:0)", s.0),
        &[hint],
    );
}

#[test]
fn running_out_of_descriptors_gives_emfile_with_the_limit() {
    let text = in_child("EMFILE", || {
        let limit = leave_room_for(8);
        for _ in 0..limit {
            let fd = ss_socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            if fd < 0 {
                return expect_failure(
                    fd as isize,
                    libc::EMFILE,
                    "ss_socket(AF_INET, SOCK_STREAM, 0)",
                    &[&format!("all {limit} descriptors"), "RLIMIT_NOFILE"],
                );
            }
        }
        panic!("no EMFILE below a limit of {limit}");
    });
    println!("{text}");
}

/// A listener whose accept queue is full (backlog 0, one connection waiting):
/// the kernel drops further SYNs, so new connects stay in progress.
fn full_listener() -> (SsFd, SsFd, u16) {
    let (listener, port) = bound_tcp(Some(0));
    let first = tcp_socket();
    assert_eq!(connect(first.0, port), 0, "{}", last_error());
    (listener, first, port)
}

#[test]
fn nonblocking_connect_reports_einprogress() {
    let (_listener, _first, port) = full_listener();
    let fd = ss_socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0);
    let s = SsFd(fd);
    let r = connect(s.0, port);
    if r == 0 {
        println!("note: the non-blocking connect completed at once; EINPROGRESS not observed");
        return;
    }
    expect_failure(
        r,
        libc::EINPROGRESS,
        &format!("ss_connect(fd {}, 127.0.0.1:{port})", s.0),
        &["wait until the socket is writable", "SO_ERROR"],
    );
}

#[test]
fn connect_to_a_listener_that_drops_syns_times_out() {
    let (_listener, _first, port) = full_listener();
    let s = tcp_socket();
    // One SYN retransmission and a short user timeout: ETIMEDOUT after about a second.
    setsockopt_int(s.0, libc::IPPROTO_TCP, libc::TCP_SYNCNT, 1);
    setsockopt_int(s.0, libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, 300);
    let started = Instant::now();
    let r = connect(s.0, port);
    if r == 0 {
        println!("note: the kernel accepted the connection despite the full queue; ETIMEDOUT not observed");
        return;
    }
    expect_failure(
        r,
        libc::ETIMEDOUT,
        &format!("ss_connect(fd {}, 127.0.0.1:{port})", s.0),
        &["did not answer in time"],
    );
    println!("ETIMEDOUT after {:?}", started.elapsed());
}

/// Binds a new socket to 127.0.0.1:`port`: the result and errno.
fn bind_low_port(port: u16) -> (SsFd, isize) {
    let s = tcp_socket();
    let to = loopback(port);
    // SAFETY: to is a sockaddr_in of SIN_LEN bytes.
    let r = unsafe { ss_bind(s.0, as_sa(&to), SIN_LEN) } as isize;
    (s, r)
}

#[test]
fn privileged_port_gives_eacces_with_the_reason() {
    const PORT: u16 = 81;
    let check = || {
        let (s, r) = bind_low_port(PORT);
        if r == 0 {
            return format!(
                "note: bind to 127.0.0.1:{PORT} succeeded for uid {}: EACCES check skipped",
                // SAFETY: geteuid has no preconditions.
                unsafe { libc::geteuid() }
            );
        }
        expect_failure(
            r,
            libc::EACCES,
            &format!("ss_bind(fd {}, 127.0.0.1:{PORT})", s.0),
            &["ports below 1024 need privileges", "CAP_NET_BIND_SERVICE"],
        )
    };
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("{}", check());
        return;
    }
    println!("note: running as root, where a low port binds; checking EACCES in a child as uid 65534");
    let text = in_child("EACCES", move || {
        // SAFETY: dropping privileges in a single-threaded child.
        let dropped = unsafe {
            libc::setgroups(0, std::ptr::null()) == 0
                && libc::setresgid(65534, 65534, 65534) == 0
                && libc::setresuid(65534, 65534, 65534) == 0
        };
        assert!(dropped, "cannot drop privileges: errno {}", errno());
        check()
    });
    println!("{text}");
}

// ---------------------------------------------------------------------------
// The diagnostics functions
// ---------------------------------------------------------------------------

#[test]
fn errno_names_and_unknown_values() {
    for (value, name) in [
        (libc::ECONNREFUSED, "ECONNREFUSED"),
        (libc::EAGAIN, "EAGAIN"),
        (libc::EWOULDBLOCK, "EAGAIN"),
        (libc::EPIPE, "EPIPE"),
        (libc::EBADF, "EBADF"),
        (libc::EINPROGRESS, "EINPROGRESS"),
        (libc::ETIMEDOUT, "ETIMEDOUT"),
        (libc::EMFILE, "EMFILE"),
        (libc::EHWPOISON, "EHWPOISON"),
        (0, "E?"),
        (-1, "E?"),
        (4096, "E?"),
        (c_int::MAX, "E?"),
        (c_int::MIN, "E?"),
    ] {
        assert_eq!(errno_name(value), name, "ss_errno_name({value})");
    }
    // The strings are static: the same pointer every time.
    assert_eq!(
        ss_errno_name(libc::EPIPE),
        ss_errno_name(libc::EPIPE),
        "ss_errno_name returns static text"
    );
}

#[test]
fn version_is_the_package_version() {
    assert_eq!(c_text(ss_version()), env!("CARGO_PKG_VERSION"));
}

#[test]
fn clear_error_empties_the_message() {
    assert_eq!(ss_listen(-1, 1), -1);
    assert!(last_error().starts_with("ss_listen(fd -1, backlog 1): Bad file descriptor (EBADF)"));
    ss_clear_error();
    assert_eq!(last_error(), "");
    // A success does not bring it back.
    let s = tcp_socket();
    assert_eq!(last_error(), "");
    drop(s);
}

#[test]
fn messages_are_per_thread() {
    let step = Barrier::new(2);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            assert_eq!(ss_listen(-1, 1), -1);
            let mine = last_error();
            assert!(mine.starts_with("ss_listen(fd -1"), "{mine}");
            step.wait(); // A failed
            step.wait(); // B checked and failed differently
            assert_eq!(last_error(), mine, "thread B's failure changed thread A's message");
        });
        scope.spawn(|| {
            step.wait();
            assert_eq!(last_error(), "", "thread A's failure is visible on thread B");
            assert_eq!(ss_shutdown(-7, libc::SHUT_RD), -1);
            assert!(last_error().starts_with("ss_shutdown(fd -7, SHUT_RD)"));
            step.wait();
        });
    });
}

#[test]
fn errno_is_set_on_failure_and_left_alone_otherwise() {
    set_errno(12345);
    let s = tcp_socket();
    assert_eq!(errno(), 12345, "a successful ss_socket changed errno");
    assert_eq!(ss_listen(s.0, 4), 0);
    assert_eq!(errno(), 12345, "a successful ss_listen changed errno");

    // connect on a listening socket: EISCONN, as connect(2) gives.
    assert_eq!(connect(s.0, 1), -1);
    let failed_with = errno();
    assert_eq!(failed_with, libc::EISCONN, "a failing call must set errno");
    let m = last_error();
    assert_eq!(errno(), failed_with, "ss_last_error changed errno");
    assert!(m.contains(&format!("({})", errno_name(failed_with))), "{m}");
    let _ = errno_name(libc::EPIPE);
    let _ = c_text(ss_version());
    assert_eq!(errno(), failed_with, "ss_errno_name/ss_version changed errno");

    // Exactly libc's errno for the same failures.
    // SAFETY: listen and accept take no pointers (NULL address allowed).
    let libc_errnos = unsafe {
        libc::listen(-1, 1);
        let a = errno();
        libc::accept(s.0 + 100_000, std::ptr::null_mut(), std::ptr::null_mut());
        (a, errno())
    };
    assert_eq!(ss_listen(-1, 1), -1);
    let a = errno();
    // SAFETY: NULL address and length are allowed.
    let r = unsafe { ss_accept(s.0 + 100_000, std::ptr::null_mut(), std::ptr::null_mut()) };
    assert_eq!(r, -1);
    assert_eq!((a, errno()), libc_errnos);
}

// ---------------------------------------------------------------------------
// Tracing
// ---------------------------------------------------------------------------

const CHILD_MODE: &str = "SAFESOCK_DIAGNOSTICS_TRACE_CHILD";

/// Entry point of the re-run binary: with CHILD_MODE set, makes a few calls
/// (a connect that succeeds and one that is refused) and prints what the
/// parent needs to predict the trace lines. Without it, does nothing.
#[test]
fn trace_child_entry() {
    if std::env::var_os(CHILD_MODE).is_none() {
        return;
    }
    let (listener, port) = bound_tcp(Some(4));
    let client = tcp_socket();
    assert_eq!(connect(client.0, port), 0, "{}", last_error());
    let (_holder, closed_port) = bound_tcp(None);
    let refused = tcp_socket();
    assert_eq!(connect(refused.0, closed_port), -1);
    println!(
        "CHILD listener={} client={} port={port} refused={} closed_port={closed_port}",
        listener.0, client.0, refused.0
    );
}

/// What the child printed and wrote to standard error.
struct ChildRun {
    values: std::collections::HashMap<String, String>,
    stderr: String,
}

/// Re-runs this binary's `trace_child_entry` with `trace` as SAFESOCK_TRACE (None: unset).
fn run_trace_child(trace: Option<&str>) -> ChildRun {
    let mut cmd = rerun("trace_child_entry");
    cmd.env(CHILD_MODE, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match trace {
        Some(value) => cmd.env("SAFESOCK_TRACE", value),
        None => cmd.env_remove("SAFESOCK_TRACE"),
    };
    let mut child = cmd.spawn().expect("re-run the test binary");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the trace child hung and was killed");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let (mut stdout, mut stderr) = (String::new(), String::new());
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout)
        .expect("read stdout");
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    assert!(status.success(), "trace child failed:\n{stdout}\n{stderr}");
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("CHILD ").map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("the child did not report:\n{stdout}"));
    let values = line
        .split(' ')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    ChildRun { values, stderr }
}

impl ChildRun {
    fn get(&self, key: &str) -> &str {
        self.values.get(key).map(String::as_str).unwrap_or("?")
    }

    /// The trace lines the child's calls must have produced.
    fn expected_lines(&self) -> [String; 2] {
        [
            format!(
                "safesock: ss_connect(fd {}, 127.0.0.1:{}) = 0 [ESTABLISHED]",
                self.get("client"),
                self.get("port")
            ),
            format!(
                "safesock: ss_connect(fd {}, 127.0.0.1:{}) = -1: Connection refused (ECONNREFUSED)",
                self.get("refused"),
                self.get("closed_port")
            ),
        ]
    }
}

fn assert_traced(text: &str, run: &ChildRun) {
    for want in run.expected_lines() {
        assert!(
            text.lines().any(|l| l.starts_with(&want)),
            "missing trace line {want:?} in:\n{text}"
        );
    }
    let socket_line = format!("safesock: ss_socket(AF_INET, SOCK_STREAM, 0) = {}", run.get("client"));
    assert!(
        text.lines().any(|l| l == socket_line),
        "missing {socket_line:?} in:\n{text}"
    );
    assert!(
        text.lines().filter(|l| l.starts_with("safesock: ")).count() >= 8,
        "one line per call expected:\n{text}"
    );
}

fn no_trace_lines(text: &str) -> bool {
    !text.lines().any(|l| l.starts_with("safesock:"))
}

#[test]
fn trace_1_writes_one_line_per_call_to_stderr() {
    let run = run_trace_child(Some("1"));
    assert_traced(&run.stderr, &run);
    println!("{}", run.expected_lines().join("\n"));
}

#[test]
fn trace_path_appends_to_the_file() {
    let file = TempFile::new("trace.log", "an earlier line\n");
    let path_text = file.0.to_str().expect("utf-8 temp path");
    let first = run_trace_child(Some(path_text));
    let second = run_trace_child(Some(path_text));
    let text = std::fs::read_to_string(&file.0).expect("read trace file");
    assert!(
        text.starts_with("an earlier line\n"),
        "the file was not appended to:\n{text}"
    );
    assert_traced(&text, &first);
    assert_traced(&text, &second);
    assert!(no_trace_lines(&first.stderr), "traced to stderr too:\n{}", first.stderr);
    println!("{} trace lines appended by two runs", text.lines().count() - 1);
}

#[test]
fn no_trace_when_unset_or_zero() {
    for setting in [None, Some("0"), Some("")] {
        let run = run_trace_child(setting);
        assert!(
            no_trace_lines(&run.stderr),
            "SAFESOCK_TRACE={setting:?} traced:\n{}",
            run.stderr
        );
    }
}
