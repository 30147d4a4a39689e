//! The exported `extern "C"` functions, one file per group, and the one
//! boundary every one of them goes through.
//!
//! [`boundary`] runs the inner operation with panics contained, then reports
//! the outcome the way C expects: the value on success (marking the descriptor
//! in use for the double-close rule), or `-1` with `errno`, a recorded
//! [`Failure`] for `ss_last_error`, and the trace line when tracing is on.

use core::ffi::c_int;
use std::panic::{AssertUnwindSafe, catch_unwind};

use libc::ssize_t;

use crate::call::{Call, Captured, Context};
use crate::error::{self, Errno};
use crate::socket::Fd;
use crate::{fdtable, trace};

// Declared in the order the header presents them.
pub mod lifecycle;
pub mod io;
pub mod options;
pub mod helpers;
pub mod diagnostics;

pub use diagnostics::*;
pub use helpers::*;
pub use io::*;
pub use lifecycle::*;
pub use options::*;

/// The note a contained panic leaves in `ss_last_error`.
pub const INTERNAL_ERROR: &str = "internal error: safesock caught a panic inside the library and returned EIO; please report this with the trace (SAFESOCK_TRACE=1)";

/// A C return type in which `-1` means failure.
pub trait CReturn: Copy {
    /// The failure value, `-1`.
    const FAILED: Self;
    /// The value for a trace line.
    fn to_i64(self) -> i64;
}

impl CReturn for c_int {
    const FAILED: Self = -1;
    fn to_i64(self) -> i64 {
        i64::from(self)
    }
}

impl CReturn for ssize_t {
    const FAILED: Self = -1;
    fn to_i64(self) -> i64 {
        self as i64
    }
}

/// An inner-layer value as C receives it.
pub trait IntoC<R> {
    /// Converts to the C return value.
    fn into_c(self) -> R;
}

impl IntoC<c_int> for () {
    #[inline(always)]
    fn into_c(self) -> c_int {
        0
    }
}

impl IntoC<c_int> for c_int {
    #[inline(always)]
    fn into_c(self) -> c_int {
        self
    }
}

impl IntoC<c_int> for Fd {
    #[inline(always)]
    fn into_c(self) -> c_int {
        self.0
    }
}

impl IntoC<ssize_t> for usize {
    #[inline(always)]
    fn into_c(self) -> ssize_t {
        // The kernel never moves more than SSIZE_MAX bytes in one call.
        self as ssize_t
    }
}

/// Why an inner operation failed: the errno and, for helpers, an explanation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reported {
    /// The errno to set.
    pub errno: Errno,
    /// What the message adds.
    pub context: Context,
}

impl From<Errno> for Reported {
    #[inline(always)]
    fn from(errno: Errno) -> Self {
        Reported {
            errno,
            context: Context::None,
        }
    }
}

/// Runs `body` for an exported function and reports its outcome to C.
///
/// `used_fd` is the descriptor a success marks as in use (`-1` for none);
/// `describe` builds the [`Call`] only when a message or trace line needs it
/// (a helper also stores its text argument in the [`Captured`] it is given).
/// The success path is inlined into each exported function; everything a
/// failure or a trace line needs happens out of line.
#[inline(always)]
pub(crate) fn boundary<T, R, E, D>(used_fd: c_int, body: impl FnOnce() -> Result<T, E>, describe: D) -> R
where
    T: IntoC<R>,
    R: CReturn,
    E: Into<Reported>,
    D: FnOnce(&mut Captured) -> Call,
{
    match catch_unwind(AssertUnwindSafe(|| {
        #[cfg(test)]
        test_hooks::maybe_panic();
        body()
    })) {
        Ok(Ok(value)) => {
            let value = value.into_c();
            fdtable::mark_used(used_fd);
            if trace::may_be_on() {
                trace_success(describe, value.to_i64());
            }
            value
        }
        Ok(Err(why)) => {
            failed(describe, why);
            R::FAILED
        }
        Err(_) => {
            failed(
                describe,
                Reported {
                    errno: Errno(libc::EIO),
                    context: Context::Note(INTERNAL_ERROR),
                },
            );
            R::FAILED
        }
    }
}

/// Writes the trace line of a success. Reporting never changes an outcome:
/// a panic here is contained and the caller still gets its value.
#[cold]
#[inline(never)]
fn trace_success(describe: impl FnOnce(&mut Captured) -> Call, value: i64) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if !trace::enabled() {
            return;
        }
        let mut captured = Captured::Nothing;
        let call = describe(&mut captured);
        if let Captured::Nothing = captured {
            captured = Captured::address_of(&call.detail, None);
        }
        trace::line(&call, &captured, Ok(value));
    }));
}

/// Records the failure in this thread's record, in place, writes its trace
/// line and sets `errno`. A panic while recording or tracing is contained
/// (the record is then left empty): `errno` is set regardless.
#[cold]
#[inline(never)]
fn failed(describe: impl FnOnce(&mut Captured) -> Call, why: impl Into<Reported>) {
    let why = why.into();
    let _ = catch_unwind(AssertUnwindSafe(|| {
        error::record_with(|slot| {
            #[cfg(test)]
            test_hooks::maybe_panic_in_report();
            slot.captured = Captured::Nothing;
            slot.call = describe(&mut slot.captured);
            if let Captured::Nothing = slot.captured {
                slot.captured = Captured::address_of(&slot.call.detail, Some(why.errno));
            }
            slot.errno = why.errno;
            slot.context = match why.context {
                Context::None if why.errno.0 == libc::EBADF && fdtable::is_closed(slot.call.fd) => {
                    Context::ClosedBySafesock
                }
                other => other,
            };
            if trace::enabled() {
                trace::line(&slot.call, &slot.captured, Err(why.errno));
            }
        })
    }));
    why.errno.set();
}

/// Runs `body` for an exported function that cannot fail (pointers to static
/// text, `void`), returning `fallback` if it panics.
#[inline(always)]
pub(crate) fn contained<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

/// Test-only fault injection: makes the next boundary on this thread panic.
#[cfg(test)]
pub mod test_hooks {
    use core::cell::Cell;

    thread_local! {
        static PANIC_NEXT: Cell<bool> = const { Cell::new(false) };
        static PANIC_IN_REPORT: Cell<bool> = const { Cell::new(false) };
    }

    /// Arms a panic in the next exported call on this thread.
    pub fn panic_next_call() {
        PANIC_NEXT.with(|p| p.set(true));
    }

    /// Arms a panic while the next failure on this thread is being recorded.
    pub fn panic_in_next_report() {
        PANIC_IN_REPORT.with(|p| p.set(true));
    }

    pub(super) fn maybe_panic_in_report() {
        if PANIC_IN_REPORT.with(|p| p.replace(false)) {
            panic!("injected by test_hooks::panic_in_next_report");
        }
    }

    pub(super) fn maybe_panic() {
        if PANIC_NEXT.with(|p| p.replace(false)) {
            panic!("injected by test_hooks::panic_next_call");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::ffi::CStr;

    fn last_error() -> String {
        // SAFETY: ss_last_error returns a valid NUL-terminated string.
        unsafe { CStr::from_ptr(ss_last_error()) }.to_str().unwrap().to_owned()
    }

    #[test]
    fn injected_panic_returns_eio_with_internal_error_message() {
        test_hooks::panic_next_call();
        let r = ss_listen(3, 5);
        assert_eq!(r, -1);
        assert_eq!(Errno::last(), Errno(libc::EIO));
        let m = last_error();
        assert!(m.starts_with("internal error:"), "{m}");
        assert!(m.contains("ss_listen(fd 3, backlog 5)"), "{m}");

        test_hooks::panic_next_call();
        // SAFETY: a NULL buffer with zero length.
        let r = unsafe { ss_read(0, core::ptr::null_mut(), 0) };
        assert_eq!(r, -1);
        assert_eq!(Errno::last(), Errno(libc::EIO));
    }

    #[test]
    fn a_panic_while_reporting_still_returns_the_failure() {
        assert_eq!(ss_listen(-1, 1), -1);
        assert!(!last_error().is_empty());
        test_hooks::panic_in_next_report();
        let r = ss_listen(-1, 1);
        assert_eq!((r, Errno::last()), (-1, Errno(libc::EBADF)));
        assert_eq!(last_error(), "", "a half-written record is not shown");
        // The next failure is recorded as usual.
        assert_eq!(ss_listen(-1, 2), -1);
        assert!(last_error().contains("backlog 2"), "{}", last_error());
    }

    #[test]
    fn success_leaves_errno_and_last_error_alone() {
        assert_eq!(ss_listen(-1, 1), -1);
        let before = last_error();
        Errno(1234).set();
        let fd = ss_socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        assert_eq!(Errno::last(), Errno(1234));
        assert_eq!(last_error(), before);
        assert_eq!(ss_close(fd), 0);
    }

    #[test]
    fn clear_error_empties_message() {
        assert_eq!(ss_listen(-1, 1), -1);
        assert!(!last_error().is_empty());
        ss_clear_error();
        assert_eq!(last_error(), "");
    }
}
