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

use std::ffi::CStr;
use std::mem::{size_of, zeroed};
use std::net::Ipv4Addr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use libc::{c_int, c_void, iovec, msghdr, sockaddr, sockaddr_in, socklen_t, ssize_t};
use safesock::ffi::*;

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

fn errno() -> c_int {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn set_errno(value: c_int) {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() = value };
}

fn errno_name(e: c_int) -> String {
    // SAFETY: ss_errno_name returns a static NUL-terminated string.
    unsafe { CStr::from_ptr(ss_errno_name(e)) }
        .to_string_lossy()
        .into_owned()
}

fn last_error() -> String {
    // SAFETY: ss_last_error returns a NUL-terminated string that stays valid
    // until the next ss_ call on this thread; it is copied at once.
    unsafe { CStr::from_ptr(ss_last_error()) }
        .to_string_lossy()
        .into_owned()
}

const SIN_LEN: socklen_t = size_of::<sockaddr_in>() as socklen_t;

fn loopback(port: u16) -> sockaddr_in {
    // SAFETY: sockaddr_in is plain data; all-zero is a valid value.
    let mut a: sockaddr_in = unsafe { zeroed() };
    a.sin_family = libc::AF_INET as libc::sa_family_t;
    a.sin_port = port.to_be();
    a.sin_addr.s_addr = u32::from(Ipv4Addr::LOCALHOST).to_be();
    a
}

fn as_sa(a: &sockaddr_in) -> *const sockaddr {
    (a as *const sockaddr_in).cast()
}

fn as_sa_mut(a: &mut sockaddr_in) -> *mut sockaddr {
    (a as *mut sockaddr_in).cast()
}

fn fd_flags(fd: c_int) -> c_int {
    // SAFETY: F_GETFD takes no pointer.
    unsafe { libc::fcntl(fd, libc::F_GETFD) }
}

fn has_cloexec(fd: c_int) -> bool {
    let flags = fd_flags(fd);
    assert!(flags >= 0, "fd {fd} is not open (errno {})", errno());
    flags & libc::FD_CLOEXEC != 0
}

fn int_option(fd: c_int, level: c_int, name: c_int) -> Option<c_int> {
    let mut value: c_int = 0;
    let mut len = size_of::<c_int>() as socklen_t;
    // SAFETY: value and len are locals of the sizes announced.
    let rc = unsafe { ss_getsockopt(fd, level, name, (&mut value as *mut c_int).cast(), &mut len) };
    (rc == 0).then_some(value)
}

fn set_linger_zero(fd: c_int) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: linger is a local of the size announced.
    let rc = unsafe {
        ss_setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            size_of::<libc::linger>() as socklen_t,
        )
    };
    assert_eq!(rc, 0, "{}", last_error());
}

/// Waits up to `timeout` for any of `events` on `fd`; returns the reported events.
fn wait_for(fd: c_int, events: i16, timeout: Duration) -> i16 {
    let mut p = libc::pollfd { fd, events, revents: 0 };
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        // SAFETY: p is one valid pollfd.
        let rc = unsafe { libc::poll(&mut p, 1, left.as_millis() as c_int) };
        if rc >= 0 || errno() != libc::EINTR || left.is_zero() {
            return p.revents;
        }
    }
}

/// A descriptor made by an `ss_` call, closed with `ss_close` on drop.
struct Owned(c_int);

impl Drop for Owned {
    fn drop(&mut self) {
        ss_close(self.0);
    }
}

/// A TCP listener on 127.0.0.1, port chosen by the system.
struct Listener {
    fd: c_int,
    addr: sockaddr_in,
}

impl Listener {
    fn tcp(backlog: c_int) -> Self {
        let fd = ss_socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0, "{}", last_error());
        let mut addr = loopback(0);
        // SAFETY: addr is a sockaddr_in of SIN_LEN bytes.
        assert_eq!(unsafe { ss_bind(fd, as_sa(&addr), SIN_LEN) }, 0, "{}", last_error());
        assert_eq!(ss_listen(fd, backlog), 0, "{}", last_error());
        let mut len = SIN_LEN;
        // SAFETY: addr has room for len bytes.
        let rc = unsafe { ss_getsockname(fd, as_sa_mut(&mut addr), &mut len) };
        assert_eq!(rc, 0, "{}", last_error());
        Listener { fd, addr }
    }

    /// A new client socket connected to this listener (not yet accepted).
    fn connect(&self) -> c_int {
        let fd = ss_socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0, "{}", last_error());
        // SAFETY: addr is a sockaddr_in of SIN_LEN bytes.
        let rc = unsafe { ss_connect(fd, as_sa(&self.addr), SIN_LEN) };
        assert_eq!(rc, 0, "{}", last_error());
        fd
    }

    fn accept(&self) -> c_int {
        // SAFETY: NULL address and length are allowed.
        let fd = unsafe { ss_accept(self.fd, std::ptr::null_mut(), std::ptr::null_mut()) };
        assert!(fd >= 0, "{}", last_error());
        fd
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        ss_close(self.fd);
    }
}

fn unix_pair(ty: c_int) -> [c_int; 2] {
    let mut sv = [-1; 2];
    // SAFETY: sv has room for two descriptors.
    let rc = unsafe { ss_socketpair(libc::AF_UNIX, ty, 0, sv.as_mut_ptr()) };
    assert_eq!(rc, 0, "{}", last_error());
    sv
}

fn dev_null() -> c_int {
    // SAFETY: the path is NUL-terminated.
    let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    assert!(fd >= 0, "open /dev/null: errno {}", errno());
    fd
}

fn stat_of(fd: c_int) -> Option<(u64, u64)> {
    // SAFETY: stat is plain data; all-zero is a valid value.
    let mut st: libc::stat = unsafe { zeroed() };
    // SAFETY: st is a local stat buffer.
    (unsafe { libc::fstat(fd, &mut st) } == 0).then_some((st.st_dev, st.st_ino))
}

fn set_sigpipe(action: libc::sighandler_t) {
    // SAFETY: installing SIG_DFL or SIG_IGN for SIGPIPE is always allowed.
    let old = unsafe { libc::signal(libc::SIGPIPE, action) };
    assert_ne!(old, libc::SIG_ERR);
}

fn sigpipe_action() -> libc::sighandler_t {
    // SAFETY: sigaction is plain data; a NULL new action only queries.
    unsafe {
        let mut current: libc::sigaction = zeroed();
        libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut current);
        current.sa_sigaction
    }
}

// ---------------------------------------------------------------------------
// Forked children
// ---------------------------------------------------------------------------

#[derive(Debug, PartialEq, Eq)]
enum Ended {
    Exited(c_int),
    Signaled(c_int),
}

struct ChildReport {
    ended: Ended,
    output: String,
}

const CHILD_TIMEOUT: Duration = Duration::from_secs(30);

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "panic with a non-text payload".to_owned())
}

/// Set in forked children, which hand their text to the parent instead of printing.
static IN_CHILD: AtomicBool = AtomicBool::new(false);

/// Makes the panic hook silent in forked children. Installed once in the
/// parent before the first fork: changing the hook inside a child could block
/// forever on the hook's lock if another test thread was panicking at the fork.
fn silence_panics_in_children() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_CHILD.load(Ordering::Relaxed) {
                previous(info);
            }
        }));
    });
}

/// Runs `body` in a forked child. The child is single-threaded (unless `body`
/// starts threads), so descriptor numbers are handed out predictably. Its
/// text (or its panic message) comes back with how it ended.
fn run_forked(body: impl FnOnce() -> String) -> ChildReport {
    silence_panics_in_children();
    let mut p = [-1; 2];
    // SAFETY: p has room for two descriptors.
    let rc = unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) };
    assert_eq!(rc, 0, "pipe2: errno {}", errno());
    // SAFETY: the child only runs `body` and leaves with _exit; glibc keeps
    // malloc usable in the child of a multi-threaded process.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: errno {}", errno());
    if pid == 0 {
        IN_CHILD.store(true, Ordering::Relaxed);
        let (code, text) = match catch_unwind(AssertUnwindSafe(body)) {
            Ok(text) => (0, text),
            Err(payload) => (101, panic_text(&*payload)),
        };
        let bytes = &text.as_bytes()[..text.len().min(60_000)];
        // SAFETY: bytes is a valid slice; a short or failed write only loses text.
        unsafe { libc::write(p[1], bytes.as_ptr().cast(), bytes.len()) };
        // SAFETY: _exit ends the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    // SAFETY: the parent's copy of the write end is not used.
    unsafe { libc::close(p[1]) };
    let ended = wait_child(pid);
    let mut output = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: buf is a local buffer of buf.len() bytes.
        let n = unsafe { libc::read(p[0], buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        output.extend_from_slice(&buf[..n as usize]);
    }
    // SAFETY: the read end belongs to this function.
    unsafe { libc::close(p[0]) };
    ChildReport {
        ended,
        output: String::from_utf8_lossy(&output).into_owned(),
    }
}

fn wait_child(pid: libc::pid_t) -> Ended {
    let deadline = Instant::now() + CHILD_TIMEOUT;
    let mut status = 0;
    loop {
        // SAFETY: status is a local int.
        let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if rc == pid {
            break;
        }
        assert!(rc == 0 || errno() == libc::EINTR, "waitpid: errno {}", errno());
        if Instant::now() > deadline {
            // SAFETY: pid is our own child, not yet reaped.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            panic!("child {pid} did not finish within {CHILD_TIMEOUT:?}; killed");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    if libc::WIFSIGNALED(status) {
        Ended::Signaled(libc::WTERMSIG(status))
    } else {
        Ended::Exited(libc::WEXITSTATUS(status))
    }
}

/// Runs `body` in a forked child and fails unless it finished cleanly; returns its text.
fn in_child(what: &str, body: impl FnOnce() -> String) -> String {
    let report = run_forked(body);
    match report.ended {
        Ended::Exited(0) => report.output,
        Ended::Signaled(sig) => panic!(
            "{what}: the child was killed by signal {sig}{}; output: {}",
            if sig == libc::SIGPIPE { " (SIGPIPE)" } else { "" },
            report.output
        ),
        Ended::Exited(code) => panic!("{what}: the child failed (exit {code}): {}", report.output),
    }
}

// ---------------------------------------------------------------------------
// 1. Close-on-exec
// ---------------------------------------------------------------------------

/// Which of `fds` a freshly exec'd `/bin/sh` still has open.
fn open_after_exec(fds: &[c_int]) -> Vec<bool> {
    let script = r#"for n in "$@"; do if [ -e "/proc/self/fd/$n" ]; then echo open; else echo closed; fi; done"#;
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

fn byte_iov(byte: &mut [u8; 1]) -> iovec {
    iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    }
}

/// A message header over one buffer and an aligned control area (all of it offered).
fn header_with_control(iov: &mut iovec, control: &mut [u64; 8]) -> msghdr {
    // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    let mut msg: msghdr = unsafe { zeroed() };
    msg.msg_iov = iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of::<[u64; 8]>();
    msg
}

/// Sends `fd` over the unix socket `via` as SCM_RIGHTS, with plain sendmsg.
fn send_fd(via: c_int, fd: c_int) {
    let mut byte = *b"F";
    let mut iov = byte_iov(&mut byte);
    let mut control = [0u64; 8];
    let mut msg = header_with_control(&mut iov, &mut control);
    // SAFETY: CMSG_SPACE is a pure size computation.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(size_of::<c_int>() as u32) } as usize;
    // SAFETY: the control buffer (64 bytes, aligned) holds one header and one
    // int; CMSG_FIRSTHDR/CMSG_DATA point inside it.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<c_int>() as u32) as usize;
        libc::CMSG_DATA(cmsg).cast::<c_int>().write_unaligned(fd);
    }
    // SAFETY: msg and everything it points to are locals.
    let n = unsafe { libc::sendmsg(via, &msg, 0) };
    assert_eq!(n, 1, "sendmsg: errno {}", errno());
}

/// Receives one SCM_RIGHTS descriptor from `via` with `recv` (ss_recvmsg or libc).
fn recv_fd(via: c_int, recv: unsafe extern "C" fn(c_int, *mut msghdr, c_int) -> ssize_t) -> c_int {
    let mut byte = [0u8; 1];
    let mut iov = byte_iov(&mut byte);
    let mut control = [0u64; 8];
    let mut msg = header_with_control(&mut iov, &mut control);
    // SAFETY: msg and everything it points to are locals.
    let n = unsafe { recv(via, &mut msg, 0) };
    assert_eq!(n, 1, "recvmsg: errno {}, {}", errno(), last_error());
    // SAFETY: the kernel wrote the control data; CMSG_FIRSTHDR checks msg_controllen.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        assert!(!cmsg.is_null(), "no control message received");
        assert_eq!((*cmsg).cmsg_type, libc::SCM_RIGHTS);
        libc::CMSG_DATA(cmsg).cast::<c_int>().read_unaligned()
    }
}

/// A socket made by plain `socket(2)` without SOCK_CLOEXEC: inherited by exec.
fn plain_inheritable_socket() -> c_int {
    // SAFETY: socket takes no pointers.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) };
    assert!(fd >= 0);
    assert!(!has_cloexec(fd));
    fd
}

#[test]
fn ss_descriptors_are_not_inherited_across_exec_but_plain_ones_are() {
    let listener = Listener::tcp(16);
    let mut ours: Vec<(&str, Owned)> = Vec::new();
    let tcp = ss_socket(libc::AF_INET, libc::SOCK_STREAM, 0);
    assert!(tcp >= 0, "{}", last_error());
    ours.push(("ss_socket(AF_INET, SOCK_STREAM)", Owned(tcp)));
    let dgram = ss_socket(libc::AF_UNIX, libc::SOCK_DGRAM, 0);
    assert!(dgram >= 0, "{}", last_error());
    ours.push(("ss_socket(AF_UNIX, SOCK_DGRAM)", Owned(dgram)));
    let [a, b] = unix_pair(libc::SOCK_STREAM);
    ours.push(("ss_socketpair sv[0]", Owned(a)));
    ours.push(("ss_socketpair sv[1]", Owned(b)));

    ours.push(("client of ss_connect", Owned(listener.connect())));
    ours.push(("ss_accept", Owned(listener.accept())));
    for (what, flags) in [
        ("ss_accept4(flags 0)", 0),
        ("ss_accept4(SOCK_NONBLOCK)", libc::SOCK_NONBLOCK),
    ] {
        ours.push(("client of ss_connect", Owned(listener.connect())));
        // SAFETY: NULL address and length are allowed.
        let fd = unsafe { ss_accept4(listener.fd, std::ptr::null_mut(), std::ptr::null_mut(), flags) };
        assert!(fd >= 0, "{}", last_error());
        ours.push((what, Owned(fd)));
    }

    // SCM_RIGHTS: a plain, inheritable socket passed over a socketpair.
    let passed = Owned(plain_inheritable_socket());
    send_fd(a, passed.0);
    ours.push(("SCM_RIGHTS via ss_recvmsg", Owned(recv_fd(b, ss_recvmsg))));

    // The controls: plain socket(2), and SCM_RIGHTS via recvmsg(2) without MSG_CMSG_CLOEXEC.
    send_fd(a, passed.0);
    let controls = [
        ("SCM_RIGHTS via plain recvmsg", Owned(recv_fd(b, libc::recvmsg))),
        ("plain socket(2)", Owned(plain_inheritable_socket())),
        ("the passed socket itself", passed),
    ];

    for (what, fd) in &ours {
        assert!(has_cloexec(fd.0), "{what} (fd {}) lacks FD_CLOEXEC", fd.0);
    }
    for (what, fd) in &controls {
        assert!(!has_cloexec(fd.0), "control {what} (fd {}) has FD_CLOEXEC", fd.0);
    }

    let numbers: Vec<c_int> = ours.iter().chain(&controls).map(|(_, f)| f.0).collect();
    let open = open_after_exec(&numbers);
    let (ours_open, controls_open) = open.split_at(ours.len());
    for ((what, fd), inherited) in ours.iter().zip(ours_open) {
        assert!(!inherited, "{what} (fd {}) was inherited across exec", fd.0);
    }
    for ((what, fd), inherited) in controls.iter().zip(controls_open) {
        assert!(
            inherited,
            "control {what} (fd {}) was not inherited: the exec check cannot see descriptors",
            fd.0
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
    let [a, b] = unix_pair(libc::SOCK_DGRAM);
    let _pair = (Owned(a), Owned(b));
    let passed = Owned(plain_inheritable_socket());
    for _ in 0..3 {
        send_fd(a, passed.0);
        let got = Owned(recv_fd(b, ss_recvmsg));
        assert!(has_cloexec(got.0), "fd {} from ss_recvmsg", got.0);
        assert_eq!(
            int_option(got.0, libc::SOL_SOCKET, libc::SO_TYPE),
            Some(libc::SOCK_STREAM)
        );
    }
    // The control: without safesock the received descriptor is inheritable.
    send_fd(a, passed.0);
    let plain = Owned(recv_fd(b, libc::recvmsg));
    assert!(!has_cloexec(plain.0));
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
fn gone_peer(kind: Stream) -> Owned {
    match kind {
        Stream::Unix => {
            let [ours, theirs] = unix_pair(libc::SOCK_STREAM);
            assert_eq!(ss_close(theirs), 0);
            Owned(ours)
        }
        Stream::Tcp | Stream::TcpReset => {
            let listener = Listener::tcp(4);
            let ours = Owned(listener.connect());
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
            // ...then in this multi-threaded test process itself.
            assert_eq!(scenario(), text);
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
                // And in this multi-threaded process, SIGPIPE at SIG_DFL.
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
            let mut sv = [-1; 2];
            // SAFETY: sv has room for two descriptors.
            let rc = unsafe {
                libc::socketpair(
                    libc::AF_UNIX,
                    libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
                    0,
                    sv.as_mut_ptr(),
                )
            };
            assert_eq!(rc, 0);
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
        let null_id = stat_of(file).expect("fstat /dev/null");

        ss_clear_error();
        set_errno(0);
        assert_eq!((ss_close(n), errno()), (-1, libc::EBADF));
        assert!(fd_flags(n) >= 0, "the refused ss_close closed fd {n}");
        assert_eq!(stat_of(n), Some(null_id), "fd {n} is no longer /dev/null");
        let m = last_error();
        let head = format!("ss_close(fd {n}): Bad file descriptor (EBADF): ");
        assert!(m.starts_with(&head), "{m}");
        assert!(m.contains(&format!("fd {n} was already closed by ss_close")), "{m}");
        // Refused again, still nothing closed.
        assert_eq!((ss_close(n), errno()), (-1, libc::EBADF));
        assert_eq!(stat_of(n), Some(null_id));
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
        let client = Owned(listener.connect());

        let n = ss_socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert_eq!(ss_close(n), 0);
        assert_eq!(ss_socket(libc::AF_UNIX, libc::SOCK_DGRAM, 0), n, "ss_socket");
        assert_eq!(ss_close(n), 0, "after ss_socket: {}", last_error());

        let [a, b] = unix_pair(libc::SOCK_STREAM);
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
            let [a, b] = unix_pair(libc::SOCK_STREAM);
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
            set_linger_zero(client);
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
    if stat_of(fd) != Some(id) {
        count(&tally.lost_files);
    }
    // Use it a little, as real code would, then check it again before closing.
    let mut buf = [0u8; 16];
    // SAFETY: buf is a local buffer of 16 bytes.
    if unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), 0) } != 10 {
        count(&tally.lost_files);
    }
    if stat_of(fd) != Some(id) {
        count(&tally.lost_files);
    }
    // SAFETY: fd was opened above by this thread.
    if unsafe { libc::close(fd) } != 0 {
        count(&tally.lost_files);
    }
    count(&tally.file_rounds);
}

/// A temporary file removed on drop, even when the test fails.
struct TempFile(std::path::PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn concurrent_ss_create_and_close_never_touches_foreign_descriptors() {
    const SS_THREADS: usize = 8;
    const FILE_THREADS: usize = 4;
    const RUN: Duration = Duration::from_millis(1500);
    const MAX_ROUNDS: usize = 200_000;

    let dir = std::env::temp_dir();
    let files: Vec<TempFile> = (0..FILE_THREADS)
        .map(|i| TempFile(dir.join(format!("safesock-conc-{}-{i}", std::process::id()))))
        .collect();
    let paths: Vec<&std::path::PathBuf> = files.iter().map(|f| &f.0).collect();
    for p in &paths {
        std::fs::write(p, b"plain file").expect("temp file");
    }
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
