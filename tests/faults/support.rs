//! Tools the fault tests share: forked children with a watchdog, the
//! outcome of one call (return, errno, message), mirrored TCP connections
//! (one made through `ss_`, one with plain sockets), waiting until a thread
//! is blocked inside a given system call, and a signal without `SA_RESTART`
//! aimed at one thread.

use std::ffi::c_int;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, Once};
use std::thread;
use std::time::{Duration, Instant};

use safesock::ffi;

use crate::common::{PATIENCE, SsFd, errno, errno_name, fd_or_panic, last_error, tcp_listen};

// ---------------------------------------------------------------------------
// The outcome of one call
// ---------------------------------------------------------------------------

/// What one call returned: the value, `errno` and, for a failing `ss_`
/// call, `ss_last_error()`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub ret: i64,
    pub errno: c_int,
    pub message: String,
}

impl Outcome {
    /// Takes the outcome right after a call (errno first, then the message).
    pub fn of(ret: impl Into<i64>) -> Outcome {
        let ret = ret.into();
        let errno = if ret < 0 { errno() } else { 0 };
        let message = if ret < 0 { last_error() } else { String::new() };
        Outcome { ret, errno, message }
    }

    /// The part two implementations must agree on: the value and errno.
    pub fn result(&self) -> (i64, String) {
        let errno = if self.ret < 0 {
            errno_name(self.errno)
        } else {
            String::new()
        };
        (self.ret, errno)
    }

    /// Checks a failure with errno `want` whose message names `call` and
    /// contains every one of `words`.
    #[track_caller]
    pub fn expect_failure(&self, want: c_int, call: &str, words: &[&str]) {
        assert_eq!(
            (self.ret, errno_name(self.errno)),
            (-1, errno_name(want)),
            "{call}: expected -1/{}, got {self:?}",
            errno_name(want)
        );
        assert!(
            self.message.starts_with(call),
            "message does not start with {call:?}: {self:?}"
        );
        for word in words {
            assert!(
                self.message.contains(word),
                "message lacks {word:?}: {:?}",
                self.message
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Forked children
// ---------------------------------------------------------------------------

/// The most a child may take: its `alarm` kills it after this.
const CHILD_SECONDS: u32 = 30;

/// Set in forked children, whose panics the parent reports instead.
static IN_CHILD: AtomicBool = AtomicBool::new(false);

/// Installs (once, in the parent, before any fork) a panic hook that is
/// silent in children: a child must not take the hook's lock after fork.
fn quiet_panics_in_children() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_CHILD.load(Ordering::Relaxed) {
                previous(info);
            }
        }));
    });
}

/// Held while a child runs, and by tests that rely on being the only
/// holder of their sockets: a child gets a copy of every descriptor open at
/// the fork, so a close in the parent (a reset, an end of stream) would only
/// take effect once that child has exited.
pub struct NoForks(#[allow(dead_code)] MutexGuard<'static, ()>);

/// Waits until no child runs, and keeps new ones from starting.
pub fn no_forks() -> NoForks {
    static FORKS: Mutex<()> = Mutex::new(());
    NoForks(FORKS.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
}

/// Runs `body` in a forked child and returns the text it produced; fails
/// with the child's panic message, exit status or signal. The child is
/// single-threaded unless `body` starts threads, so descriptor numbers are
/// handed out predictably and process-wide settings (limits, signal
/// actions) stay there. An `alarm` ends a child that hangs.
#[track_caller]
pub fn in_child(what: &str, body: impl FnOnce() -> String) -> String {
    let quiet = no_forks();
    in_child_holding(&quiet, what, body)
}

/// [`in_child`] for a test that already holds [`no_forks`].
#[track_caller]
pub fn in_child_holding(_quiet: &NoForks, what: &str, body: impl FnOnce() -> String) -> String {
    quiet_panics_in_children();
    let mut ends = [-1; 2];
    // SAFETY: `ends` has room for the two descriptors pipe2 writes.
    assert_eq!(unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: the child runs only `body` and leaves with _exit; glibc keeps
    // malloc usable in the child of a multi-threaded process.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: errno {}", errno());
    if pid == 0 {
        IN_CHILD.store(true, Ordering::Relaxed);
        // SAFETY: alarm and close take integers; the read end is the parent's.
        unsafe {
            libc::alarm(CHILD_SECONDS);
            libc::close(ends[0]);
        }
        let (code, text) = match catch_unwind(AssertUnwindSafe(body)) {
            Ok(text) => (0, text),
            Err(panic) => (101, panic_text(&*panic)),
        };
        // SAFETY: the text is a live buffer; a short write only loses text.
        unsafe { libc::write(ends[1], text.as_ptr().cast(), text.len()) };
        // SAFETY: _exit ends the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    // SAFETY: the write end belongs to the child now; the parent closes its copy.
    unsafe { libc::close(ends[1]) };
    // The child's text arrives until it exits (or is killed) and the pipe closes.
    // SAFETY: the read end is a fresh descriptor owned by nobody else.
    let mut reader = std::fs::File::from(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(ends[0]) });
    let mut text = String::new();
    let _ = reader.read_to_string(&mut text);
    let mut status = 0;
    // SAFETY: `pid` is this thread's own child; `status` is a local.
    let reaped = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(reaped, pid, "waitpid: errno {}", errno());
    if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        let why = if sig == libc::SIGALRM {
            format!(" (SIGALRM: it ran longer than {CHILD_SECONDS} s)")
        } else {
            String::new()
        };
        panic!("{what}: the child was killed by signal {sig}{why}; its text: {text}");
    }
    let code = libc::WEXITSTATUS(status);
    assert_eq!(code, 0, "{what}: the child failed (exit {code}): {text}");
    text
}

pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "a panic without text".to_owned())
}

// ---------------------------------------------------------------------------
// Mirrored connections
// ---------------------------------------------------------------------------

/// Which implementation a mirrored run goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    Libc,
    Ss,
}

/// A descriptor of either side: made by an `ss_` call and closed with
/// `ss_close`, or a plain one closed with `close` (through std).
pub enum Fd {
    Ss(SsFd),
    Plain(OwnedFd),
}

impl Fd {
    pub fn raw(&self) -> c_int {
        match self {
            Fd::Ss(fd) => fd.raw(),
            Fd::Plain(fd) => fd.as_raw_fd(),
        }
    }

    /// Closes now, through the side that made it; returns what the close did.
    pub fn close(self) -> Outcome {
        match self {
            Fd::Ss(fd) => {
                let raw = fd.raw();
                std::mem::forget(fd);
                Outcome::of(ffi::ss_close(raw))
            }
            Fd::Plain(fd) => {
                let raw = std::os::fd::IntoRawFd::into_raw_fd(fd);
                // SAFETY: `raw` was just released from its owner.
                Outcome::of(unsafe { libc::close(raw) })
            }
        }
    }
}

/// A listening TCP socket on 127.0.0.1 made through `api`, and its port.
pub fn listener(api: Api) -> (Fd, u16) {
    match api {
        Api::Ss => {
            let fd = fd_or_panic(tcp_listen("127.0.0.1:0", 16), "ss_tcp_listen");
            let port = u16::try_from(ffi::ss_local_port(fd.raw())).expect("a port");
            (Fd::Ss(fd), port)
        }
        Api::Libc => {
            let l = TcpListener::bind("127.0.0.1:0").expect("bind a plain listener");
            let port = l.local_addr().expect("local address").port();
            (Fd::Plain(l.into()), port)
        }
    }
}

/// A connected TCP pair over 127.0.0.1 made through `api`: (client, server),
/// every blocking wait bounded by [`PATIENCE`].
pub fn tcp_pair(api: Api) -> (Fd, Fd) {
    let pair = match api {
        Api::Ss => {
            let (client, server) = crate::common::tcp_pair("127.0.0.1:0");
            (Fd::Ss(client), Fd::Ss(server))
        }
        Api::Libc => {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind a plain listener");
            let client = TcpStream::connect(listener.local_addr().expect("its address")).expect("plain connect");
            let (server, _) = listener.accept().expect("plain accept");
            (Fd::Plain(client.into()), Fd::Plain(server.into()))
        }
    };
    for fd in [&pair.0, &pair.1] {
        set_timeouts(fd.raw(), PATIENCE);
    }
    pair
}

/// `SO_RCVTIMEO` and `SO_SNDTIMEO`, set with plain `setsockopt` (so that
/// setting them is never the `ss_` call under test).
pub fn set_timeouts(fd: c_int, after: Duration) {
    let tv = libc::timeval {
        tv_sec: after.as_secs() as libc::time_t,
        tv_usec: after.subsec_micros() as libc::suseconds_t,
    };
    for name in [libc::SO_RCVTIMEO, libc::SO_SNDTIMEO] {
        // SAFETY: `tv` is a live timeval of the size given.
        let r = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                name,
                (&raw const tv).cast(),
                size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        assert_eq!(r, 0, "setsockopt(timeout): errno {}", errno());
    }
}

/// Sets `SO_LINGER` to {on, 0}: the next close resets the connection.
pub fn linger_zero(fd: c_int) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `linger` is a live struct of the size given.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "setsockopt(SO_LINGER): errno {}", errno());
}

/// `ss_send_all` of all of `data`, which must succeed.
#[track_caller]
pub fn send_all(fd: c_int, data: &[u8]) {
    // SAFETY: `data` is a live buffer of the length given.
    let n = unsafe { ffi::ss_send_all(fd, data.as_ptr().cast(), data.len()) };
    assert_eq!(n, data.len() as isize, "ss_send_all(fd {fd}): {}", last_error());
}

/// `ss_recv_exact` of `n` bytes, which must all arrive.
#[track_caller]
pub fn recv_exact(fd: c_int, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    // SAFETY: `buf` is a live, writable buffer of the length given.
    let got = unsafe { ffi::ss_recv_exact(fd, buf.as_mut_ptr().cast(), n) };
    assert_eq!(got, n as isize, "ss_recv_exact(fd {fd}): {}", last_error());
    buf
}

/// A connected AF_UNIX pair of `ty` from `ss_socketpair` (close with `ss_close`).
#[track_caller]
pub fn ss_pair(ty: c_int) -> [c_int; 2] {
    let mut sv = [-1; 2];
    // SAFETY: `sv` has room for the two descriptors.
    let r = unsafe { ffi::ss_socketpair(libc::AF_UNIX, ty, 0, sv.as_mut_ptr()) };
    assert_eq!(r, 0, "ss_socketpair: {}", last_error());
    sv
}

/// Sends all of `data` with plain `send` (the test's own traffic, not the
/// call under test).
#[track_caller]
pub fn plain_send(fd: c_int, data: &[u8]) {
    let mut stream = std::mem::ManuallyDrop::new(
        // SAFETY: the stream borrows `fd` for this call only and never closes it.
        unsafe { <TcpStream as std::os::fd::FromRawFd>::from_raw_fd(fd) },
    );
    stream.write_all(data).expect("plain send");
}

/// Bytes queued for reading on `fd` (`FIONREAD`).
pub fn queued(fd: c_int) -> usize {
    let mut n: c_int = 0;
    // SAFETY: FIONREAD writes one int into the local.
    let r = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
    assert_eq!(r, 0, "FIONREAD: errno {}", errno());
    usize::try_from(n).expect("non-negative")
}

/// Waits (bounded) until `fd` has `n` bytes queued.
#[track_caller]
pub fn wait_queued(fd: c_int, n: usize) {
    let deadline = Instant::now() + PATIENCE;
    while queued(fd) < n {
        assert!(Instant::now() < deadline, "fewer than {n} bytes arrived on fd {fd}");
        thread::sleep(Duration::from_millis(1));
    }
}

// ---------------------------------------------------------------------------
// Blocked threads and signals
// ---------------------------------------------------------------------------

/// The signal the interruption tests send, with a handler that only counts.
pub const SIGNAL: c_int = libc::SIGUSR2;

/// Signals handled, per thread (by kernel thread id, in 256 slots: the few
/// threads interrupted at one time never share one).
static HANDLED: [AtomicUsize; 256] = [const { AtomicUsize::new(0) }; 256];

fn slot(tid: libc::pid_t) -> &'static AtomicUsize {
    &HANDLED[tid as usize % HANDLED.len()]
}

extern "C" fn count_signal(_: c_int) {
    // SAFETY: gettid is a plain system call, safe in a signal handler.
    slot(unsafe { libc::gettid() }).fetch_add(1, Ordering::SeqCst);
}

/// Installs the handler for [`SIGNAL`] once, WITHOUT `SA_RESTART`: a
/// blocking call it interrupts fails with `EINTR` instead of being resumed
/// by the kernel. Only threads a test aims at with `pthread_kill` get it.
pub fn install_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: sigaction is plain data; the handler only touches an atomic.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = count_signal as extern "C" fn(c_int) as libc::sighandler_t;
            action.sa_flags = 0;
            libc::sigemptyset(&mut action.sa_mask);
            assert_eq!(libc::sigaction(SIGNAL, &action, std::ptr::null_mut()), 0);
        }
    });
}

/// A thread to be interrupted: its kernel id and pthread handle.
#[derive(Clone, Copy)]
pub struct Target {
    pub tid: libc::pid_t,
    pub thread: libc::pthread_t,
}

impl Target {
    /// The calling thread.
    pub fn me() -> Target {
        // SAFETY: gettid and pthread_self have no preconditions.
        unsafe {
            Target {
                tid: libc::gettid(),
                thread: libc::pthread_self(),
            }
        }
    }

    /// The system call the thread is in (`None` while it runs in user
    /// space) and its scheduler state letter.
    fn in_syscall(self) -> (Option<i64>, char) {
        let task = format!("/proc/self/task/{}", self.tid);
        let syscall = std::fs::read_to_string(format!("{task}/syscall")).unwrap_or_default();
        let number = syscall.split_whitespace().next().and_then(|n| n.parse::<i64>().ok());
        let stat = std::fs::read_to_string(format!("{task}/stat")).unwrap_or_default();
        // The state follows the command name, which is in parentheses.
        let state = stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next());
        (number.filter(|&n| n >= 0), state.unwrap_or('?'))
    }

    /// Waits (bounded) until the thread sleeps inside one of `syscalls`.
    #[track_caller]
    pub fn wait_blocked_in(self, syscalls: &[i64]) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let (number, state) = self.in_syscall();
            if state == 'S' && number.is_some_and(|n| syscalls.contains(&n)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "thread {} never blocked in {syscalls:?} (now in {number:?}, state {state})",
                self.tid
            );
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// Sends [`SIGNAL`] and waits until the thread's handler has run for it.
    #[track_caller]
    pub fn interrupt(self) {
        let handled = slot(self.tid);
        let before = handled.load(Ordering::SeqCst);
        // SAFETY: the target thread is alive: its test joins it only after this returns.
        assert_eq!(unsafe { libc::pthread_kill(self.thread, SIGNAL) }, 0);
        let deadline = Instant::now() + PATIENCE;
        while handled.load(Ordering::SeqCst) == before {
            assert!(Instant::now() < deadline, "the signal handler never ran");
            thread::sleep(Duration::from_millis(1));
        }
    }
}

/// The system calls a blocking receive may sleep in.
pub fn recv_syscalls() -> Vec<i64> {
    vec![libc::SYS_recvfrom, libc::SYS_read, libc::SYS_recvmsg]
}

/// The system calls a blocking send may sleep in.
pub fn send_syscalls() -> Vec<i64> {
    vec![libc::SYS_sendto, libc::SYS_write, libc::SYS_sendmsg, libc::SYS_writev]
}

/// The system calls a blocking accept may sleep in.
pub fn accept_syscalls() -> Vec<i64> {
    let mut calls = vec![libc::SYS_accept4];
    #[cfg(target_arch = "x86_64")]
    calls.push(libc::SYS_accept);
    calls
}

/// The system calls a wait for readiness may sleep in.
pub fn poll_syscalls() -> Vec<i64> {
    let mut calls = vec![libc::SYS_ppoll];
    #[cfg(target_arch = "x86_64")]
    calls.push(libc::SYS_poll);
    calls
}

/// Runs `call` on a new thread that `drive` gets as a [`Target`] (to wait
/// until it blocks and interrupt it), and returns what `call` returned.
/// If `call` has not returned [`PATIENCE`] after `drive` is done, `rescue`
/// runs (to unblock it, for example by a shutdown) and the test fails.
#[track_caller]
pub fn on_blocked_thread<T: Send>(
    call: impl FnOnce() -> T + Send,
    drive: impl FnOnce(Target),
    rescue: impl FnOnce(),
) -> T {
    let caller = std::panic::Location::caller();
    let (tx, rx) = std::sync::mpsc::channel();
    thread::scope(|s| {
        let worker = s.spawn(move || {
            tx.send(Target::me()).expect("report the thread");
            call()
        });
        let target = rx.recv().expect("the thread started");
        drive(target);
        let deadline = Instant::now() + PATIENCE;
        while !worker.is_finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(2));
        }
        let hung = !worker.is_finished();
        if hung {
            rescue();
        }
        let value = worker.join().expect("the blocked thread panicked");
        assert!(
            !hung,
            "{caller}: the call did not return within {PATIENCE:?} of being driven"
        );
        value
    })
}
