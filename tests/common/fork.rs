//! Forked children: a test body that depends on which descriptor number the
//! kernel hands out next, or changes a process-wide setting (a limit, a
//! signal action, privileges), runs in a child of the test process. The
//! child is single-threaded unless the body starts threads, so parallel
//! tests cannot take a number in between. It hands its text (or its panic
//! message) back through a pipe; a watchdog kills it if it runs longer than
//! [`CHILD_TIMEOUT`].
//!
//! Forks within one binary run one at a time ([`no_forks`]): a child gets a
//! copy of every descriptor open at the fork, so a test that relies on being
//! the only holder of its sockets (a close that must reset a connection or
//! end a stream at once) holds the same lock.

use std::ffi::c_int;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

use crate::common::errno::errno;

/// The most a child may take; the parent kills it after this.
pub const CHILD_TIMEOUT: Duration = Duration::from_secs(30);

/// Set in forked children, which hand their text to the parent instead of printing.
static IN_CHILD: AtomicBool = AtomicBool::new(false);

/// Whether this process is a child forked by [`run_forked`].
pub fn in_forked_child() -> bool {
    IN_CHILD.load(Ordering::Relaxed)
}

/// Makes the panic hook silent in forked children (the parent reports their
/// panics instead). Installed once in the parent before the first fork:
/// changing the hook inside a child could block forever on the hook's lock
/// if another test thread was panicking at the fork.
pub fn silence_panics_in_children() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !in_forked_child() {
                previous(info);
            }
        }));
    });
}

/// Held while a child runs, and by tests that rely on being the only
/// holder of their sockets: a child gets a copy of every descriptor open at
/// the fork, so a close in the parent (a reset, an end of stream) would only
/// take effect once that child has exited.
pub struct NoForks(MutexGuard<'static, ()>);

/// Waits until no child runs, and keeps new ones from starting.
pub fn no_forks() -> NoForks {
    static FORKS: Mutex<()> = Mutex::new(());
    NoForks(FORKS.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
}

/// How a child ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// `_exit` with this status: 0 when the body returned, 101 when it panicked.
    Exited(c_int),
    /// Killed by this signal.
    Signaled(c_int),
}

/// What a child did: how it ended, and its text (its panic message if it panicked).
pub struct ChildReport {
    /// How it ended.
    pub ended: Ended,
    /// The text its body returned, or its panic message.
    pub output: String,
}

/// The text of a panic payload.
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "a panic without text".to_owned())
}

/// Runs `body` in a forked child and reports how it ended.
#[track_caller]
pub fn run_forked(body: impl FnOnce() -> String) -> ChildReport {
    let quiet = no_forks();
    run_forked_holding(&quiet, body)
}

/// [`run_forked`] for a test that already holds [`no_forks`].
#[track_caller]
pub fn run_forked_holding(_quiet: &NoForks, body: impl FnOnce() -> String) -> ChildReport {
    // Here, in the parent and before the fork: never inside a child.
    silence_panics_in_children();
    let mut ends = [-1; 2];
    // SAFETY: `ends` has room for the two descriptors pipe2 writes.
    let rc = unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: errno {}", errno());
    let [read_end, write_end] = ends;
    // SAFETY: the child only runs `body` and leaves with _exit; glibc keeps
    // malloc usable in the child of a multi-threaded process.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: errno {}", errno());
    if pid == 0 {
        IN_CHILD.store(true, Ordering::Relaxed);
        // SAFETY: the read end is the parent's; the child closes its copy.
        unsafe { libc::close(read_end) };
        let (code, text) = match catch_unwind(AssertUnwindSafe(body)) {
            Ok(text) => (0, text),
            Err(payload) => (101, panic_text(&*payload)),
        };
        let mut rest = text.as_bytes();
        while !rest.is_empty() {
            // SAFETY: `rest` is a live buffer of the length given; the write
            // end blocks until the parent has read enough.
            let n = unsafe { libc::write(write_end, rest.as_ptr().cast(), rest.len()) };
            if n <= 0 && errno() != libc::EINTR {
                break;
            }
            rest = &rest[usize::try_from(n).unwrap_or(0)..];
        }
        // SAFETY: _exit ends the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    // SAFETY: the write end belongs to the child now; the parent closes its
    // copy, and reads without blocking so that it can watch the clock.
    unsafe {
        libc::close(write_end);
        libc::fcntl(read_end, libc::F_SETFL, libc::O_NONBLOCK);
    }
    let mut output = Vec::new();
    let ended = wait_child(pid, read_end, &mut output);
    // The child has exited: the rest of its text is in the pipe.
    drain(read_end, &mut output);
    // SAFETY: the read end belongs to this function.
    unsafe { libc::close(read_end) };
    ChildReport {
        ended,
        output: String::from_utf8_lossy(&output).into_owned(),
    }
}

/// Reads what `fd` (non-blocking) holds into `into`, until it would block or ends.
fn drain(fd: c_int, into: &mut Vec<u8>) {
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: `buf` is a local buffer of buf.len() bytes.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return;
        }
        into.extend_from_slice(&buf[..n as usize]);
    }
}

/// Waits for child `pid` (reading its text from `pipe` meanwhile); kills it
/// and fails if it runs longer than [`CHILD_TIMEOUT`].
#[track_caller]
fn wait_child(pid: libc::pid_t, pipe: c_int, output: &mut Vec<u8>) -> Ended {
    let deadline = Instant::now() + CHILD_TIMEOUT;
    let mut status = 0;
    loop {
        drain(pipe, output);
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
            panic!(
                "child {pid} did not finish within {CHILD_TIMEOUT:?}; killed. Its text so far: {}",
                String::from_utf8_lossy(output)
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    if libc::WIFSIGNALED(status) {
        Ended::Signaled(libc::WTERMSIG(status))
    } else {
        Ended::Exited(libc::WEXITSTATUS(status))
    }
}

/// Runs `body` in a forked child and returns the text it produced; fails
/// with the child's panic message, exit status or signal.
#[track_caller]
pub fn in_child(what: &str, body: impl FnOnce() -> String) -> String {
    let quiet = no_forks();
    in_child_holding(&quiet, what, body)
}

/// [`in_child`] for a test that already holds [`no_forks`].
#[track_caller]
pub fn in_child_holding(quiet: &NoForks, what: &str, body: impl FnOnce() -> String) -> String {
    let report = run_forked_holding(quiet, body);
    match report.ended {
        Ended::Exited(0) => report.output,
        Ended::Signaled(sig) => panic!(
            "{what}: the child was killed by signal {sig}{}; its text: {}",
            if sig == libc::SIGPIPE { " (SIGPIPE)" } else { "" },
            report.output
        ),
        Ended::Exited(code) => panic!("{what}: the child failed (exit {code}): {}", report.output),
    }
}
