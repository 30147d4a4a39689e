//! errno values, their names, and the thread-local record of the last failure.
//!
//! A failing call only stores a [`Failure`] (a few words and, when safe, a copy
//! of a small address); the text is built from it by [`crate::message`] when
//! `ss_last_error` asks, so `EAGAIN` in an event loop stays as cheap as in libc.

use core::cell::RefCell;
use core::ffi::{CStr, c_int};

use crate::call::Failure;
use crate::fmtbuf::FixedBuf;

/// An `errno` value.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Errno(pub c_int);

/// The result of an inner-layer operation: a value, or the errno libc would set.
pub type Result<T> = core::result::Result<T, Errno>;

/// A `Result<usize>` in one register: the count, or the errno bit-inverted
/// (always negative). For out-of-line slow paths of the hottest calls: the
/// Rust ABI would return a `Result` through memory, costing the fast path
/// a store and a reload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(transparent)]
pub struct PackedLen(isize);

impl PackedLen {
    /// Packs `result` (counts never exceed `isize::MAX`: the kernel moves at
    /// most `MAX_RW_COUNT` bytes per call).
    #[inline(always)]
    pub fn pack(result: Result<usize>) -> Self {
        match result {
            Ok(n) => PackedLen(n as isize),
            Err(Errno(e)) => PackedLen(!(e as u32 as isize)),
        }
    }

    /// The result packed.
    #[inline(always)]
    pub fn unpack(self) -> Result<usize> {
        if self.0 < 0 {
            Err(Errno(!self.0 as u32 as c_int))
        } else {
            Ok(self.0 as usize)
        }
    }
}

impl Errno {
    /// The calling thread's current `errno`.
    #[inline]
    pub fn last() -> Errno {
        // SAFETY: __errno_location always returns a valid pointer to this thread's errno.
        Errno(unsafe { *libc::__errno_location() })
    }

    /// Stores this value in the calling thread's `errno`.
    #[inline]
    pub fn set(self) {
        // SAFETY: __errno_location always returns a valid pointer to this thread's errno.
        unsafe { *libc::__errno_location() = self.0 }
    }

    /// The symbolic name, such as `ECONNREFUSED`; `E?` for a value Linux does not define.
    pub fn name(self) -> &'static CStr {
        usize::try_from(self.0)
            .ok()
            .and_then(|i| ERRNO_NAMES.get(i))
            .filter(|name| !name.is_empty())
            .copied()
            .unwrap_or(c"E?")
    }

    /// The system's description, as `strerror` gives it, copied into `out`.
    pub fn describe(self, out: &mut [u8; 128]) -> &str {
        // SAFETY: out is a writable buffer of out.len() bytes; the XSI strerror_r
        // writes at most that many bytes including the NUL.
        let rc = unsafe { libc::strerror_r(self.0, out.as_mut_ptr().cast(), out.len()) };
        if rc != 0 {
            return "Unknown error";
        }
        let text = CStr::from_bytes_until_nul(out).map(CStr::to_bytes).unwrap_or(b"");
        core::str::from_utf8(text).unwrap_or("Unknown error")
    }
}

/// Names of every errno Linux defines, indexed by value; aliases (EWOULDBLOCK,
/// EDEADLOCK, ENOTSUP) share their number and show the primary name.
static ERRNO_NAMES: [&CStr; 134] = [
    c"",
    c"EPERM",
    c"ENOENT",
    c"ESRCH",
    c"EINTR",
    c"EIO",
    c"ENXIO",
    c"E2BIG",
    c"ENOEXEC",
    c"EBADF",
    c"ECHILD",
    c"EAGAIN",
    c"ENOMEM",
    c"EACCES",
    c"EFAULT",
    c"ENOTBLK",
    c"EBUSY",
    c"EEXIST",
    c"EXDEV",
    c"ENODEV",
    c"ENOTDIR",
    c"EISDIR",
    c"EINVAL",
    c"ENFILE",
    c"EMFILE",
    c"ENOTTY",
    c"ETXTBSY",
    c"EFBIG",
    c"ENOSPC",
    c"ESPIPE",
    c"EROFS",
    c"EMLINK",
    c"EPIPE",
    c"EDOM",
    c"ERANGE",
    c"EDEADLK",
    c"ENAMETOOLONG",
    c"ENOLCK",
    c"ENOSYS",
    c"ENOTEMPTY",
    c"ELOOP",
    c"",
    c"ENOMSG",
    c"EIDRM",
    c"ECHRNG",
    c"EL2NSYNC",
    c"EL3HLT",
    c"EL3RST",
    c"ELNRNG",
    c"EUNATCH",
    c"ENOCSI",
    c"EL2HLT",
    c"EBADE",
    c"EBADR",
    c"EXFULL",
    c"ENOANO",
    c"EBADRQC",
    c"EBADSLT",
    c"",
    c"EBFONT",
    c"ENOSTR",
    c"ENODATA",
    c"ETIME",
    c"ENOSR",
    c"ENONET",
    c"ENOPKG",
    c"EREMOTE",
    c"ENOLINK",
    c"EADV",
    c"ESRMNT",
    c"ECOMM",
    c"EPROTO",
    c"EMULTIHOP",
    c"EDOTDOT",
    c"EBADMSG",
    c"EOVERFLOW",
    c"ENOTUNIQ",
    c"EBADFD",
    c"EREMCHG",
    c"ELIBACC",
    c"ELIBBAD",
    c"ELIBSCN",
    c"ELIBMAX",
    c"ELIBEXEC",
    c"EILSEQ",
    c"ERESTART",
    c"ESTRPIPE",
    c"EUSERS",
    c"ENOTSOCK",
    c"EDESTADDRREQ",
    c"EMSGSIZE",
    c"EPROTOTYPE",
    c"ENOPROTOOPT",
    c"EPROTONOSUPPORT",
    c"ESOCKTNOSUPPORT",
    c"EOPNOTSUPP",
    c"EPFNOSUPPORT",
    c"EAFNOSUPPORT",
    c"EADDRINUSE",
    c"EADDRNOTAVAIL",
    c"ENETDOWN",
    c"ENETUNREACH",
    c"ENETRESET",
    c"ECONNABORTED",
    c"ECONNRESET",
    c"ENOBUFS",
    c"EISCONN",
    c"ENOTCONN",
    c"ESHUTDOWN",
    c"ETOOMANYREFS",
    c"ETIMEDOUT",
    c"ECONNREFUSED",
    c"EHOSTDOWN",
    c"EHOSTUNREACH",
    c"EALREADY",
    c"EINPROGRESS",
    c"ESTALE",
    c"EUCLEAN",
    c"ENOTNAM",
    c"ENAVAIL",
    c"EISNAM",
    c"EREMOTEIO",
    c"EDQUOT",
    c"ENOMEDIUM",
    c"EMEDIUMTYPE",
    c"ECANCELED",
    c"ENOKEY",
    c"EKEYEXPIRED",
    c"EKEYREVOKED",
    c"EKEYREJECTED",
    c"EOWNERDEAD",
    c"ENOTRECOVERABLE",
    c"ERFKILL",
    c"EHWPOISON",
];

/// Room for one message; longer ones are cut with `...`.
pub(crate) const MESSAGE_CAPACITY: usize = 512;

/// What this thread remembers of its last failing `ss_` call.
///
/// The text alternates between two buffers: a signal handler that makes a
/// failing `ss_` call and asks for its message while the interrupted code is
/// still reading the previous string writes the other buffer, so neither
/// sees a mixture.
struct LastError {
    /// Meaningful when `recorded`.
    failure: Failure,
    recorded: bool,
    texts: [FixedBuf<MESSAGE_CAPACITY>; 2],
    shown: usize,
    text_is_current: bool,
}

thread_local! {
    static LAST: RefCell<LastError> = const {
        RefCell::new(LastError {
            failure: Failure::EMPTY,
            recorded: false,
            texts: [FixedBuf::new(), FixedBuf::new()],
            shown: 0,
            text_is_current: false,
        })
    };
}

/// Records this thread's last failure in place: `fill` writes the fields of
/// the record (no text is built yet). Writing in place matters: a
/// [`Failure`] has room for a whole address, and copying it would cost more
/// than the rest of a failing call. If the record is out of reach (thread
/// teardown, or a signal handler's failing call while the record is being
/// written), `fill` writes a scratch record that is then forgotten.
pub fn record_with(fill: impl FnOnce(&mut Failure)) {
    let mut fill = Some(fill);
    let _ = LAST.try_with(|last| {
        if let Ok(mut last) = last.try_borrow_mut()
            && let Some(fill) = fill.take()
        {
            // Until `fill` returns the record is half old, half new: a panic
            // in between (contained by the caller) leaves it empty.
            last.recorded = false;
            last.text_is_current = false;
            fill(&mut last.failure);
            last.recorded = true;
        }
    });
    if let Some(fill) = fill {
        let mut scratch = Failure::EMPTY;
        fill(&mut scratch);
    }
}

/// Forgets this thread's last error.
pub fn clear() {
    let _ = LAST.try_with(|last| {
        if let Ok(mut last) = last.try_borrow_mut() {
            let next = 1 - last.shown;
            last.recorded = false;
            last.texts[next].clear();
            last.shown = next;
            last.text_is_current = true;
        }
    });
}

/// A copy of this thread's last failure record, if any.
pub fn last_failure() -> Option<Failure> {
    LAST.try_with(|last| last.try_borrow().ok().and_then(|l| l.recorded.then_some(l.failure)))
        .ok()
        .flatten()
}

/// The message for this thread's last failure as a NUL-terminated string that
/// stays valid until the next failure is recorded on this thread; `""` if none.
pub fn message_ptr() -> *const core::ffi::c_char {
    LAST.try_with(|last| {
        let Ok(mut last) = last.try_borrow_mut() else {
            return c"".as_ptr();
        };
        let last = &mut *last;
        if !last.text_is_current {
            let next = 1 - last.shown;
            last.texts[next].clear();
            if last.recorded {
                crate::message::write_message(&mut last.texts[next], &last.failure);
            }
            last.shown = next;
            last.text_is_current = true;
        }
        last.texts[last.shown].as_bytes_with_nul().as_ptr().cast()
    })
    .unwrap_or(c"".as_ptr())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_lengths_round_trip() {
        for r in [
            Ok(0),
            Ok(1),
            Ok(0x7fff_f000),
            Ok(isize::MAX as usize),
            Err(Errno(0)),
            Err(Errno(libc::EPIPE)),
            Err(Errno(c_int::MAX)),
            Err(Errno(-1)),
        ] {
            assert_eq!(PackedLen::pack(r).unpack(), r);
        }
    }

    #[test]
    fn names_known_values() {
        assert_eq!(Errno(libc::ECONNREFUSED).name(), c"ECONNREFUSED");
        assert_eq!(Errno(libc::EAGAIN).name(), c"EAGAIN");
        assert_eq!(Errno(libc::EWOULDBLOCK).name(), c"EAGAIN");
        assert_eq!(Errno(libc::ENOTSUP).name(), c"EOPNOTSUPP");
        assert_eq!(Errno(libc::EHWPOISON).name(), c"EHWPOISON");
        assert_eq!(Errno(libc::EPERM).name(), c"EPERM");
    }

    #[test]
    fn unknown_values_are_e_question() {
        for v in [0, -1, 41, 58, 134, 4096, c_int::MIN, c_int::MAX] {
            assert_eq!(Errno(v).name(), c"E?", "value {v}");
        }
    }

    #[test]
    fn every_named_value_matches_libc_constants() {
        let pairs = [
            (libc::EPIPE, "EPIPE"),
            (libc::EINPROGRESS, "EINPROGRESS"),
            (libc::ETIMEDOUT, "ETIMEDOUT"),
            (libc::EADDRINUSE, "EADDRINUSE"),
            (libc::EMFILE, "EMFILE"),
            (libc::ENOTCONN, "ENOTCONN"),
            (libc::EAFNOSUPPORT, "EAFNOSUPPORT"),
            (libc::EBADF, "EBADF"),
            (libc::ENOTSOCK, "ENOTSOCK"),
            (libc::ECANCELED, "ECANCELED"),
            (libc::ERFKILL, "ERFKILL"),
            (libc::EDEADLK, "EDEADLK"),
        ];
        for (value, name) in pairs {
            assert_eq!(Errno(value).name().to_str().unwrap(), name);
        }
        let named = ERRNO_NAMES.iter().filter(|n| !n.is_empty()).count();
        assert_eq!(
            named, 131,
            "Linux defines 131 distinct errno numbers (1..=133 minus 41, 58)"
        );
    }

    #[test]
    fn describe_uses_system_text() {
        let mut buf = [0u8; 128];
        assert_eq!(Errno(libc::ECONNREFUSED).describe(&mut buf), "Connection refused");
        assert!(Errno(99999).describe(&mut buf).starts_with("Unknown error"));
    }

    #[test]
    fn errno_round_trips_through_set_and_last() {
        Errno(libc::EPIPE).set();
        assert_eq!(Errno::last(), Errno(libc::EPIPE));
        Errno(0).set();
    }
}
