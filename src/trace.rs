//! The trace sink: with `SAFESOCK_TRACE` set, one line per `ss_` call.
//!
//! `SAFESOCK_TRACE=1` writes to standard error; any other non-empty value
//! (except `0`) is a file path the lines are appended to. The variable is
//! read once, on the first call; after that a disabled trace costs one
//! relaxed load and a branch per call. Lines are built on the stack and
//! written with a single `write(2)`, so lines from threads do not interleave.
//!
//! ```text
//! safesock: ss_connect(fd 3, 127.0.0.1:8080) = 0 [ESTABLISHED]
//! ```

use core::ffi::c_int;
use core::fmt::Write;
use core::sync::atomic::{AtomicI32, AtomicU8, Ordering};

use crate::call::{Call, CallName, Captured, Detail};
use crate::error::Errno;
use crate::fmtbuf::FixedBuf;
use crate::{message, tcp};

const UNREAD: u8 = 0;
const OFF: u8 = 1;
const ON: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(UNREAD);
static SINK: AtomicI32 = AtomicI32::new(libc::STDERR_FILENO);

/// Whether tracing is on (reads `SAFESOCK_TRACE` the first time).
#[inline(always)]
pub(crate) fn enabled() -> bool {
    match STATE.load(Ordering::Relaxed) {
        OFF => false,
        ON => true,
        _ => init(),
    }
}

/// Whether tracing may be on: false only once `SAFESOCK_TRACE` was read and
/// found unset, so the hot path is one compare; [`enabled`] decides.
#[inline(always)]
pub(crate) fn may_be_on() -> bool {
    STATE.load(Ordering::Relaxed) != OFF
}

#[cold]
fn init() -> bool {
    let saved = Errno::last();
    // SAFETY: getenv with a NUL-terminated name; the result is read at once.
    let value = unsafe { libc::getenv(c"SAFESOCK_TRACE".as_ptr()) };
    let on = if value.is_null() {
        false
    } else {
        // SAFETY: getenv returned a NUL-terminated string owned by the environment.
        let value = unsafe { core::ffi::CStr::from_ptr(value) };
        match value.to_bytes() {
            b"" | b"0" => false,
            b"1" => true,
            _ => {
                // SAFETY: the path is NUL-terminated; flags and mode are plain integers.
                let fd = unsafe {
                    libc::open(
                        value.as_ptr(),
                        libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT | libc::O_CLOEXEC,
                        0o644,
                    )
                };
                if fd >= 0 {
                    SINK.store(fd, Ordering::Relaxed);
                } else {
                    emit(b"safesock: cannot open SAFESOCK_TRACE file; tracing to standard error\n");
                }
                true
            }
        }
    };
    // Racing first calls agree: each computes the same answer; the file may be
    // opened twice at worst, and one descriptor wins.
    STATE.store(if on { ON } else { OFF }, Ordering::Relaxed);
    saved.set();
    on
}

fn emit(bytes: &[u8]) {
    let fd = SINK.load(Ordering::Relaxed);
    // SAFETY: `bytes` is a valid slice; a failed trace write is ignored.
    let _ = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
}

/// Writes the line for a finished call: its result (`value` on success) and,
/// for TCP sockets, the connection state now. Leaves `errno` as it found it.
#[cold]
pub fn line(call: &Call, captured: &Captured, outcome: Result<i64, Errno>) {
    let saved = Errno::last();
    let mut out = FixedBuf::<640>::new();
    let _ = write_line(&mut out, call, captured, outcome);
    let _ = out.write_char('\n');
    if out.is_truncated() {
        let _ = out.write_str("\n");
    }
    emit(out.as_str().as_bytes());
    saved.set();
}

fn write_line(
    out: &mut FixedBuf<640>,
    call: &Call,
    captured: &Captured,
    outcome: Result<i64, Errno>,
) -> core::fmt::Result {
    out.write_str("safesock: ")?;
    message::write_call_bounded(out, call, captured)?;
    match outcome {
        Ok(value) => write!(out, " = {value}")?,
        Err(e) => {
            out.write_str(" = -1")?;
            message::write_errno(out, e)?;
        }
    }
    let state_fd = match (call.name, outcome) {
        (CallName::Accept | CallName::Accept4 | CallName::TcpConnect | CallName::TcpListen, Ok(v)) => v as c_int,
        (CallName::Close, _) => -1,
        _ => call.fd,
    };
    if let Detail::Closing(Some(state)) = call.detail {
        write!(out, " [was {}]", tcp::state_name(state).to_str().unwrap_or("?"))?;
    }
    if state_fd >= 0
        && let Ok(state) = tcp::state(state_fd)
    {
        write!(out, " [{}]", tcp::state_name(state).to_str().unwrap_or("?"))?;
    }
    Ok(())
}

/// For the trace of `ss_close`: the TCP state of `fd` just before it is
/// closed (the state after is gone with the descriptor).
pub fn state_before_close(fd: c_int) -> Option<c_int> {
    if enabled() { tcp::state(fd).ok() } else { None }
}
