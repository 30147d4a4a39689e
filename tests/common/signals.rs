//! Signals in tests.
//!
//! [`INTERRUPT`] has a handler that only counts, installed without
//! `SA_RESTART` ([`install_handler`]), so a blocking system call it
//! interrupts fails with `EINTR` instead of being resumed by the kernel. It
//! is only ever sent with `pthread_kill` to the one thread under test, so
//! tests running in parallel never see it. Two ways to send it:
//!
//! - [`with_interruptions`]: another thread pelts the calling thread with it
//!   every `period` while a body runs;
//! - [`Target`]: wait until a thread sleeps inside a given system call (as
//!   `/proc` shows), then interrupt it once and wait for the handler
//!   ([`on_blocked_thread`] runs the call on its own thread for that).
//!
//! And SIGPIPE's disposition, which the no-SIGPIPE tests set and read.

use std::ffi::c_int;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::common::net::PATIENCE;

/// The signal the interruption tests send.
pub const INTERRUPT: c_int = libc::SIGUSR1;

thread_local! {
    /// Signals handled on this thread (read by the thread itself).
    static HANDLED_HERE: AtomicUsize = const { AtomicUsize::new(0) };
}

/// Signals handled, per thread, by kernel thread id in 256 slots (read by
/// the thread that sent them; the few threads interrupted at one time never
/// share one).
static HANDLED_BY_TID: [AtomicUsize; 256] = [const { AtomicUsize::new(0) }; 256];

/// The counter of kernel thread `tid`.
fn slot(tid: libc::pid_t) -> &'static AtomicUsize {
    &HANDLED_BY_TID[tid as usize % HANDLED_BY_TID.len()]
}

/// The handler of [`INTERRUPT`]: counts, for the thread and by its id.
extern "C" fn count_signal(_: c_int) {
    // Atomics (one in a const-initialised thread local) and gettid: all
    // async-signal-safe.
    HANDLED_HERE.with(|h| h.fetch_add(1, Ordering::SeqCst));
    // SAFETY: gettid is a plain system call, safe in a signal handler.
    slot(unsafe { libc::gettid() }).fetch_add(1, Ordering::SeqCst);
}

/// Installs `handler` for `signal`, WITHOUT `SA_RESTART` and with an empty mask.
#[track_caller]
pub fn set_handler(signal: c_int, handler: extern "C" fn(c_int)) {
    // SAFETY: sigaction is plain data; the handlers the tests install are
    // async-signal-safe as far as the tests' own code goes.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler as libc::sighandler_t;
        action.sa_flags = 0;
        libc::sigemptyset(&mut action.sa_mask);
        assert_eq!(libc::sigaction(signal, &action, std::ptr::null_mut()), 0);
    }
}

/// Installs the counting handler for [`INTERRUPT`], once per process.
pub fn install_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| set_handler(INTERRUPT, count_signal));
}

/// What a run under [`with_interruptions`] produced.
pub struct Interrupted<T> {
    /// What the body returned.
    pub value: T,
    /// Signals sent to the thread.
    pub sent: usize,
    /// Signals the thread's handler ran for.
    pub handled: usize,
}

/// Stops and joins the signalling thread, also when the body panics, so it
/// never signals a thread that has exited.
struct Signaller {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<usize>>,
}

impl Signaller {
    /// Stops the thread and returns how many signals it sent.
    fn finish(&mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().map_or(0, |t| t.join().expect("signalling thread"))
    }
}

impl Drop for Signaller {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Runs `body` on this thread while another thread sends it [`INTERRUPT`]
/// every `period` (for at most `limit`, so a body that never returns while
/// signalled still ends).
pub fn with_interruptions<T>(period: Duration, limit: Duration, body: impl FnOnce() -> T) -> Interrupted<T> {
    install_handler();
    // SAFETY: pthread_self has no preconditions.
    let target = unsafe { libc::pthread_self() };
    let before = HANDLED_HERE.with(|h| h.load(Ordering::SeqCst));
    let stop = Arc::new(AtomicBool::new(false));
    let stop_seen = Arc::clone(&stop);
    let thread = thread::spawn(move || {
        let start = Instant::now();
        let mut sent = 0;
        while !stop_seen.load(Ordering::Relaxed) && start.elapsed() < limit {
            // SAFETY: the target thread is alive: it joins this thread (Signaller)
            // before it can return or unwind past this call.
            if unsafe { libc::pthread_kill(target, INTERRUPT) } == 0 {
                sent += 1;
            }
            thread::sleep(period);
        }
        sent
    });
    let mut signaller = Signaller {
        stop,
        thread: Some(thread),
    };
    let value = body();
    let sent = signaller.finish();
    let handled = HANDLED_HERE.with(|h| h.load(Ordering::SeqCst)) - before;
    Interrupted { value, sent, handled }
}

/// A thread to be interrupted: its kernel id and pthread handle.
#[derive(Clone, Copy)]
pub struct Target {
    /// The kernel thread id (for `/proc/self/task/TID`).
    pub tid: libc::pid_t,
    /// The pthread handle (for `pthread_kill`).
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

    /// Sends [`INTERRUPT`] (the handler must be installed) and waits until
    /// the thread's handler has run for it.
    #[track_caller]
    pub fn interrupt(self) {
        let handled = slot(self.tid);
        let before = handled.load(Ordering::SeqCst);
        // SAFETY: the target thread is alive: its test joins it only after this returns.
        assert_eq!(unsafe { libc::pthread_kill(self.thread, INTERRUPT) }, 0);
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

/// Sets SIGPIPE's action (`SIG_DFL` or `SIG_IGN`) for the whole process.
#[track_caller]
pub fn set_sigpipe(action: libc::sighandler_t) {
    // SAFETY: installing SIG_DFL or SIG_IGN for SIGPIPE is always allowed.
    let old = unsafe { libc::signal(libc::SIGPIPE, action) };
    assert_ne!(old, libc::SIG_ERR, "signal(SIGPIPE)");
}

/// SIGPIPE's current action.
pub fn sigpipe_action() -> libc::sighandler_t {
    // SAFETY: sigaction is plain data; a NULL new action only queries.
    unsafe {
        let mut current: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut current);
        current.sa_sigaction
    }
}

/// Once per process: SIGPIPE ignored, so the libc side of a write to a gone
/// peer returns `EPIPE` instead of killing the test binary.
pub fn ignore_sigpipe() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| set_sigpipe(libc::SIG_IGN));
}
