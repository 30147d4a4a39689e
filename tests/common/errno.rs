//! `errno`, safesock's messages and error names as text, and what one call
//! left behind ([`Outcome`]), with the checks the tests make of a failure.

use std::ffi::{CStr, c_char, c_int};

use safesock::ffi;

/// The `errno` the last call left on this thread.
pub fn errno() -> c_int {
    // SAFETY: __errno_location returns a valid pointer to this thread's errno.
    unsafe { *libc::__errno_location() }
}

/// Sets this thread's `errno` (a sentinel before a call that must leave it alone).
pub fn set_errno(value: c_int) {
    // SAFETY: __errno_location returns a valid pointer to this thread's errno.
    unsafe { *libc::__errno_location() = value }
}

/// A C string the library (or libc) returned, which must not be NULL,
/// copied at once.
#[track_caller]
pub fn c_text(p: *const c_char) -> String {
    assert!(!p.is_null(), "a NULL string was returned");
    // SAFETY: the callers pass strings safesock or libc returned: NUL-terminated
    // and valid at least until the next call on this thread (static for the
    // name tables); copied at once.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// This thread's `ss_last_error()` text, copied.
pub fn last_error() -> String {
    c_text(ffi::ss_last_error())
}

/// `ECONNREFUSED` for 111, via the library's own table (`E?` when unknown).
pub fn errno_name(err: c_int) -> String {
    c_text(ffi::ss_errno_name(err))
}

/// What one call returned: the value, `errno` and, for a failing `ss_`
/// call, `ss_last_error()`; and `ss_transferred()` (the bytes the last
/// `ss_send_all`/`ss_recv_exact` of this thread moved).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The return value, widened.
    pub ret: i64,
    /// `errno` if the call failed, else 0.
    pub errno: c_int,
    /// `ss_last_error()` if the call failed, else empty.
    pub message: String,
    /// `ss_transferred()` right after the call.
    pub transferred: usize,
}

impl Outcome {
    /// Takes the outcome right after a call (errno first, then the message).
    pub fn of(ret: impl Into<i64>) -> Outcome {
        let ret = ret.into();
        let errno = if ret < 0 { errno() } else { 0 };
        let message = if ret < 0 { last_error() } else { String::new() };
        let transferred = ffi::ss_transferred();
        Outcome {
            ret,
            errno,
            message,
            transferred,
        }
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

    /// Checks that the call returned -1 with one of `allowed`.
    #[track_caller]
    pub fn expect_errno_in(&self, what: &str, allowed: &[c_int]) {
        let ret = self.ret;
        assert_eq!(ret, -1, "{what}: expected -1, got {ret}");
        let names: Vec<String> = allowed.iter().map(|&a| errno_name(a)).collect();
        assert!(
            allowed.contains(&self.errno),
            "{what}: errno {} ({}), expected one of {names:?}; message: {}",
            errno_name(self.errno),
            self.errno,
            self.message
        );
    }
}

/// Checks that a call returned -1 with one of `allowed` and returns what it
/// left. Must be called right after the call (errno is read first).
#[track_caller]
pub fn failure(ret: i64, what: &str, allowed: &[c_int]) -> Outcome {
    let outcome = Outcome::of(ret);
    outcome.expect_errno_in(what, allowed);
    outcome
}

/// Whether `message` quotes `text` (long texts may be cut to a quoted prefix).
pub fn quotes(message: &str, text: &str) -> bool {
    const KEPT: usize = 64;
    message.contains(&format!("{text:?}")) || (text.len() > KEPT && message.contains(&format!("\"{}", &text[..KEPT])))
}
