//! Descriptors: guards that close the way safesock's double-close table
//! expects, flags and identities of open descriptors, numbers that are
//! certainly closed, and the descriptor limit.
//!
//! The rule the guards keep: a descriptor an `ss_` call made is closed with
//! `ss_close` ([`SsFd`]), a plain one with `close` ([`std::os::fd::OwnedFd`],
//! see [`plain_fd`]). `ss_close` refuses a number it already closed until an
//! `ss_` call hands it out or uses it again, so closing a plain descriptor
//! with it could be refused (and leak), and closing an `ss_` one behind the
//! library's back would leave its table out of date.

use std::ffi::c_int;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, Ordering};

use safesock::ffi;

use crate::common::errno::{Outcome, errno, errno_name, last_error};

/// A descriptor an `ss_` call created; closed with `ss_close` when dropped,
/// which must succeed (unless the thread is already panicking).
#[derive(Debug)]
pub struct SsFd(pub c_int);

impl SsFd {
    /// The descriptor number.
    pub fn raw(&self) -> c_int {
        self.0
    }

    /// Gives up ownership without closing: the number, for a test that closes it itself.
    pub fn into_raw(self) -> c_int {
        let raw = self.0;
        std::mem::forget(self);
        raw
    }
}

impl Drop for SsFd {
    fn drop(&mut self) {
        let rc = ffi::ss_close(self.0);
        if rc != 0 && !std::thread::panicking() {
            panic!(
                "ss_close(fd {}) of an owned descriptor failed: {}",
                self.0,
                last_error()
            );
        }
    }
}

/// Takes the descriptor an `ss_` call returned, or panics with errno and message.
#[track_caller]
pub fn fd_or_panic(ret: c_int, what: &str) -> SsFd {
    if ret < 0 {
        let e = errno();
        panic!("{what}: returned {ret}, {}: {}", errno_name(e), last_error());
    }
    SsFd(ret)
}

/// Takes ownership of a plain (not safesock) descriptor, closed with
/// `close` when dropped.
#[track_caller]
pub fn plain_fd(fd: c_int) -> OwnedFd {
    assert!(fd >= 0, "not a descriptor: {fd}");
    // SAFETY: callers hand over a fresh plain descriptor that nobody else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// A descriptor of either kind: made by an `ss_` call and closed with
/// `ss_close`, or a plain one closed with `close` (through std).
pub enum Fd {
    Ss(SsFd),
    Plain(OwnedFd),
}

impl Fd {
    /// The descriptor number.
    pub fn raw(&self) -> c_int {
        match self {
            Fd::Ss(fd) => fd.raw(),
            Fd::Plain(fd) => fd.as_raw_fd(),
        }
    }

    /// Closes now, through the side that made it; returns what the close did.
    pub fn close(self) -> Outcome {
        match self {
            Fd::Ss(fd) => Outcome::of(ffi::ss_close(fd.into_raw())),
            Fd::Plain(fd) => {
                let raw = fd.into_raw_fd();
                // SAFETY: `raw` was just released from its owner.
                Outcome::of(unsafe { libc::close(raw) })
            }
        }
    }
}

/// A plain (not safesock) socket, closed with `close` when dropped.
#[track_caller]
pub fn plain_socket(domain: c_int, ty: c_int) -> OwnedFd {
    // SAFETY: socket takes integer arguments only.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "socket: errno {}", errno());
    plain_fd(fd)
}

/// A plain pipe, closed with `close` when dropped: (read end, write end).
pub fn plain_pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [-1; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    (plain_fd(fds[0]), plain_fd(fds[1]))
}

/// `open("/dev/null", O_RDWR)` with plain libc; -1 on failure (checked by
/// the caller, which may be a thread that must not panic mid-round).
pub fn open_dev_null() -> c_int {
    // SAFETY: a NUL-terminated path and plain flags.
    unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) }
}

/// `open("/dev/null", O_RDWR)` with plain libc, which must succeed.
#[track_caller]
pub fn dev_null() -> c_int {
    let fd = open_dev_null();
    assert!(fd >= 0, "open /dev/null: errno {}", errno());
    fd
}

/// The descriptor flags (`F_GETFD`), -1 if `fd` is not open.
pub fn fd_flags(fd: c_int) -> c_int {
    // SAFETY: F_GETFD takes no pointer.
    unsafe { libc::fcntl(fd, libc::F_GETFD) }
}

/// Whether `fd` is an open descriptor.
pub fn is_open(fd: c_int) -> bool {
    fd_flags(fd) >= 0
}

/// Whether `FD_CLOEXEC` is set; `fd` must be open.
#[track_caller]
pub fn is_cloexec(fd: c_int) -> bool {
    let flags = fd_flags(fd);
    assert!(flags >= 0, "fd {fd} is not open (errno {})", errno());
    flags & libc::FD_CLOEXEC != 0
}

/// The descriptor's status flags (`F_GETFL`).
#[track_caller]
pub fn status_flags(fd: c_int) -> c_int {
    // SAFETY: fcntl with integer arguments only.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    assert!(flags >= 0, "F_GETFL on fd {fd}: errno {}", errno());
    flags
}

/// Sets or clears `O_NONBLOCK` (with plain `fcntl`).
#[track_caller]
pub fn set_nonblocking(fd: c_int, on: bool) {
    let flags = status_flags(fd);
    let flags = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    // SAFETY: fcntl with integer arguments only.
    assert_eq!(unsafe { libc::fcntl(fd, libc::F_SETFL, flags) }, 0);
}

/// The device and inode of an open descriptor (`None` if it is not open).
pub fn identity(fd: c_int) -> Option<(u64, u64)> {
    // SAFETY: stat is plain data; fstat fills it or fails without touching it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a local stat buffer.
    (unsafe { libc::fstat(fd, &mut st) } == 0).then_some((st.st_dev, st.st_ino))
}

/// A descriptor number that is certainly not open: a pipe end duplicated to
/// a high number (so no other test thread gets it meanwhile) and closed.
pub fn closed_fd() -> c_int {
    let (r, _w) = plain_pipe();
    // SAFETY: fcntl with integer arguments; the duplicate is closed at once.
    unsafe {
        let high = libc::fcntl(r.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 900);
        assert!(high >= 900, "F_DUPFD: errno {}", errno());
        libc::close(high);
        high
    }
}

/// Descriptor numbers reserved for this binary: high enough that the kernel
/// (which always hands out the lowest free number) never gives them to
/// anything else, and each used once, so a "closed" number stays closed and a
/// non-socket descriptor there was never seen by `ss_close`.
#[track_caller]
pub fn reserve_fd() -> c_int {
    let (next, end) = reserved_range();
    let fd = next.fetch_add(1, Ordering::Relaxed);
    assert!(fd < end, "out of reserved descriptor numbers");
    fd
}

/// The reserved numbers handed out so far.
pub fn reserved_so_far() -> std::ops::Range<c_int> {
    let (next, end) = reserved_range();
    end / 2..next.load(Ordering::Relaxed)
}

/// The next reserved number and the end of the range (the fd limit); the
/// range is the upper half of the limit.
fn reserved_range() -> (&'static AtomicI32, c_int) {
    static NEXT: OnceLock<(AtomicI32, c_int)> = OnceLock::new();
    let (next, end) = NEXT.get_or_init(|| {
        // SAFETY: rlimit is plain data filled by getrlimit.
        let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
        // SAFETY: the pointer refers to the local above.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0);
        let end = c_int::try_from(limit.rlim_cur.min(1 << 20)).expect("fd limit");
        assert!(
            end >= 4096,
            "RLIMIT_NOFILE {end} is too low for reserved descriptor numbers"
        );
        (AtomicI32::new(end / 2), end)
    });
    (next, *end)
}

/// The numbers of this process's open descriptors (the one reading
/// `/proc/self/fd` included).
pub fn open_fds() -> Vec<c_int> {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// Lowers the soft descriptor limit to leave `room` numbers above the
/// highest one open; returns the new limit. For a forked child: the limit is
/// process-wide.
pub fn leave_room_for(room: u64) -> u64 {
    let highest = open_fds().into_iter().max().expect("some descriptor is open");
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a local rlimit.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0);
    limit.rlim_cur = u64::try_from(highest).expect("a descriptor number") + 1 + room;
    // SAFETY: as above; only the soft limit is lowered.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    limit.rlim_cur
}
