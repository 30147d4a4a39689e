//! Why a call failed, errno names, and the library version.

use core::ffi::{c_char, c_int};

use super::contained;
use crate::error::{self, Errno};

/// Why the last failing `ss_` call on this thread failed: the call with its
/// decoded arguments, the system's text, the errno name and, where safesock can
/// tell, what to do. `""` if no call has failed (or after `ss_clear_error`).
///
/// The string belongs to safesock and stays valid until the next `ss_` call on
/// the same thread; copy it to keep it.
#[unsafe(no_mangle)]
pub extern "C" fn ss_last_error() -> *const c_char {
    contained(c"".as_ptr(), error::message_ptr)
}

/// Forgets this thread's last error, so `ss_last_error()` returns `""`.
#[unsafe(no_mangle)]
pub extern "C" fn ss_clear_error() {
    contained((), error::clear);
}

/// The symbolic name of an errno value, such as `"ECONNREFUSED"`; `"E?"` for a
/// value Linux does not define. The string is static.
#[unsafe(no_mangle)]
pub extern "C" fn ss_errno_name(err: c_int) -> *const c_char {
    contained(c"E?".as_ptr(), || Errno(err).name().as_ptr())
}

/// The library version, `"MAJOR.MINOR.PATCH"` (the header's `SS_VERSION_*`
/// macros give the version it was written for). The string is static.
#[unsafe(no_mangle)]
pub extern "C" fn ss_version() -> *const c_char {
    VERSION.as_ptr().cast()
}

const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
