//! `ss_write` and `ss_writev` without SIGPIPE on a socket, in one system call.
//!
//! `write(2)` takes no flags, so safesock picks the call by what the
//! descriptor is, remembered per number in [`fdtable`]:
//!
//! - `ss_write` to a stream socket ([`WriteKind::NoSignal`]) is `send` with
//!   `MSG_NOSIGNAL`, which moves the same bytes with the same results;
//! - anything else ([`WriteKind::Plain`]), and every `ss_writev`, is
//!   `pwritev2(..., -1, RWF_NOSIGNAL)`: `writev` at the current position
//!   without the signal (Linux 6.18 and later). Because that call is safe for
//!   any descriptor, a number that was a pipe and now, behind safesock's
//!   back, holds a socket still raises no SIGPIPE. A pipe whose reader is
//!   gone still gets the SIGPIPE libc would raise: safesock raises it itself;
//! - a descriptor whose driver refuses `pwritev2` flags (eventfd, some
//!   devices: [`WriteKind::Legacy`]) and kernels without `RWF_NOSIGNAL` use
//!   `write`/`writev` themselves: those are not sockets.
//!
//! The kind is learnt from the call that created the descriptor, or with
//! one `SO_TYPE` query the first time, so the steady state is one system call.

use core::ffi::c_int;
use core::sync::atomic::{AtomicU8, Ordering};

use libc::{iovec, msghdr};

use crate::error::{Errno, PackedLen, Result};
use crate::fdtable::{self, Entry, WriteKind};
use crate::mem::{UserIn, UserIov};
use crate::socket::{Fd, kind_for};
use crate::sys;

/// The most one `read`/`write` moves (`MAX_RW_COUNT`: `INT_MAX` rounded down to a page).
/// `write` checks the whole range before clamping to it while `send` and
/// `pwritev2` clamp first, so larger counts take the exact but slower path.
pub(crate) const MAX_RW_COUNT: usize = (i32::MAX as usize) & !4095;

/// `IOV_MAX` on Linux: `writev` rejects more with `EINVAL`, `sendmsg` with `EMSGSIZE`.
pub(crate) const IOV_MAX: c_int = 1024;

/// `RWF_NOSIGNAL` (Linux 6.18): `pwritev2` raises no SIGPIPE.
const RWF_NOSIGNAL: c_int = 0x100;

const UNPROBED: u8 = 0;
const SUPPORTED: u8 = 1;
const UNSUPPORTED: u8 = 2;

/// Whether this kernel knows `RWF_NOSIGNAL`; learnt the first time it matters.
static RWF_NOSIGNAL_SUPPORT: AtomicU8 = AtomicU8::new(UNPROBED);

/// Whether a successful write marks the descriptor in use (safety default 3:
/// "any successful `ss_` call on a number marks it as in use again").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marking {
    /// `ss_write`/`ss_writev`: their success is the call's success.
    OnSuccess,
    /// A helper's inner write (`ss_send_all`): only the helper's own
    /// success counts, and its boundary marks it.
    Never,
}

/// `write`, without SIGPIPE on a socket; marks `fd` in use on success as
/// `marking` says.
///
/// The stream-socket case, the common one, is inlined into `ss_write`: one
/// table load and `send`. Everything else is out of line.
#[inline(always)]
pub fn write(fd: Fd, buf: UserIn<'_>, marking: Marking) -> Result<usize> {
    // A known stream is not marked closed, so a success has nothing to mark.
    let entry = fdtable::entry(fd.0);
    if buf.len <= MAX_RW_COUNT && entry.is_known_stream() {
        // A success leaves errno alone, as libc's does, even when the way to
        // it went through a failed send on a number reused behind safesock's back.
        let entry_errno = Errno::last();
        return match send_nosignal(fd, buf) {
            Err(e) if suggests_stale_kind(e) => write_stale(fd, buf, e, entry_errno, marking).unpack(),
            result => result,
        };
    }
    // Two copies of the pipe path, so that neither tests `marking` at run time.
    match marking {
        Marking::OnSuccess => write_other::<true>(fd, buf, entry),
        Marking::Never => write_other::<false>(fd, buf, entry),
    }
    .unpack()
}

/// [`write`] after `send` failed in a way that may mean the number no longer
/// holds the stream socket remembered for it.
#[cold]
#[inline(never)]
fn write_stale(fd: Fd, buf: UserIn<'_>, first_error: Errno, entry_errno: Errno, marking: Marking) -> PackedLen {
    let result = write_after_learning(fd, buf, first_error);
    PackedLen::pack(used_on_success(fd, keep_errno_on_success(result, entry_errno), marking))
}

/// [`write`] to anything but a known stream socket: the steady state for
/// pipes and files (one `pwritev2`) here, the rest in [`write_slow`].
#[inline(never)]
fn write_other<const MARK: bool>(fd: Fd, buf: UserIn<'_>, entry: Entry) -> PackedLen {
    let marking = if MARK { Marking::OnSuccess } else { Marking::Never };
    if buf.len != 0 && buf.len <= MAX_RW_COUNT && entry.write_kind() == WriteKind::Plain && rwf_nosignal_usable() {
        // Put back if the flag is refused and plain write must do.
        let entry_errno = Errno::last();
        let one = [buf.as_iovec()];
        // SAFETY: the array is a local; the buffer it names is caller memory
        // the kernel only reads (as in `write`).
        return match unsafe { sys::pwritev2(fd.0, one.as_ptr(), 1, -1, RWF_NOSIGNAL) } {
            Ok(n) => {
                if MARK && entry.is_closed() {
                    fdtable::mark_used(fd.0);
                }
                PackedLen::pack(Ok(n))
            }
            Err(e) if !needs_second_look(e) => PackedLen::pack(Err(e)),
            Err(e) => after_pwritev2(fd, e, entry_errno, marking, move || write_plain(fd, buf)),
        };
    }
    write_slow(fd, buf, marking)
}

/// [`write`]/[`writev`] after `pwritev2` failed with `EPIPE` or refused
/// the flag; `fallback` is the plain call for a refused flag.
#[cold]
#[inline(never)]
fn after_pwritev2(
    fd: Fd,
    e: Errno,
    entry_errno: Errno,
    marking: Marking,
    fallback: impl FnOnce() -> Result<usize>,
) -> PackedLen {
    let result = match pwritev_failed(fd, e) {
        Some(result) => result,
        None => keep_errno_on_success(fallback(), entry_errno),
    };
    PackedLen::pack(used_on_success(fd, result, marking))
}

/// [`write`] of a count over [`MAX_RW_COUNT`], of nothing, to a number whose
/// kind is not known yet, or to a driver that refuses `pwritev2` flags.
#[cold]
#[inline(never)]
fn write_slow(fd: Fd, buf: UserIn<'_>, marking: Marking) -> PackedLen {
    let entry_errno = Errno::last();
    let result = if buf.len > MAX_RW_COUNT {
        keep_errno_on_success(exact_without_sigpipe(fd, || write_plain(fd, buf)), entry_errno)
    } else {
        match fdtable::write_kind(fd.0) {
            WriteKind::Plain => keep_errno_on_success(write_not_stream(fd, buf), entry_errno),
            WriteKind::Legacy => write_plain(fd, buf),
            // A stream socket reaches here only when ss_close has marked its
            // number closed: learning again is right.
            WriteKind::NoSignal | WriteKind::Unknown => {
                keep_errno_on_success(write_after_learning(fd, buf, Errno(0)), entry_errno)
            }
        }
    };
    PackedLen::pack(used_on_success(fd, result, marking))
}

/// `writev`, without SIGPIPE on a socket, for `ss_writev`: marks `fd` in use
/// on success.
///
/// Every kind of descriptor but [`WriteKind::Legacy`] takes
/// `pwritev2(..., -1, RWF_NOSIGNAL)`, which is `writev` itself: buffers that
/// add up to nothing do not reach a socket (`sendmsg` would ask it, which
/// can fail or consume a pending error). That path is inlined into
/// `ss_writev`; the rest is out of line.
#[inline(always)]
pub fn writev(fd: Fd, iov: UserIov<'_>) -> Result<usize> {
    let entry = fdtable::entry(fd.0);
    // Out-of-range counts fail in the kernel before any byte moves: writev
    // itself gives libc's errno.
    if iov.count > 0 && iov.count <= IOV_MAX && entry.write_kind() != WriteKind::Legacy && rwf_nosignal_usable() {
        // Put back if the flag is refused and plain writev must do.
        let entry_errno = Errno::last();
        // SAFETY: UserIov carries caller memory the kernel only reads.
        return match unsafe { sys::pwritev2(fd.0, iov.ptr, iov.count, -1, RWF_NOSIGNAL) } {
            Ok(n) => {
                if entry.is_closed() {
                    fdtable::mark_used(fd.0);
                }
                Ok(n)
            }
            Err(e) if !needs_second_look(e) => Err(e),
            Err(e) => after_pwritev2(fd, e, entry_errno, Marking::OnSuccess, move || {
                writev_without_rwf(fd, iov)
            })
            .unpack(),
        };
    }
    writev_other(fd, iov).unpack()
}

/// [`writev`] with a count out of range, to a [`WriteKind::Legacy`] driver
/// (neither can raise SIGPIPE), or on a kernel without `RWF_NOSIGNAL`.
#[cold]
#[inline(never)]
fn writev_other(fd: Fd, iov: UserIov<'_>) -> PackedLen {
    let result = if iov.count <= 0 || iov.count > IOV_MAX || fdtable::write_kind(fd.0) == WriteKind::Legacy {
        writev_plain(fd, iov)
    } else {
        let entry_errno = Errno::last();
        keep_errno_on_success(writev_without_rwf(fd, iov), entry_errno)
    };
    PackedLen::pack(used_on_success(fd, result, Marking::OnSuccess))
}

/// Marks `fd` in use for the double-close rule once a write succeeded, if
/// `marking` says so.
fn used_on_success(fd: Fd, result: Result<usize>, marking: Marking) -> Result<usize> {
    if result.is_ok() && marking == Marking::OnSuccess {
        fdtable::mark_used(fd.0);
    }
    result
}

/// `writev` on a kernel without `RWF_NOSIGNAL` (or a [`WriteKind::Legacy`] driver).
fn writev_without_rwf(fd: Fd, iov: UserIov<'_>) -> Result<usize> {
    match fdtable::write_kind(fd.0) {
        WriteKind::NoSignal => match sendmsg_nosignal(fd, iov) {
            Err(e) if suggests_stale_kind(e) => writev_after_learning(fd, iov, e),
            result => result,
        },
        WriteKind::Unknown => writev_after_learning(fd, iov, Errno(0)),
        WriteKind::Plain | WriteKind::Legacy => writev_plain(fd, iov),
    }
}

/// Writes to a descriptor that is not a stream socket.
fn write_not_stream(fd: Fd, buf: UserIn<'_>) -> Result<usize> {
    // pwritev2 answers a zero-length write without asking the descriptor,
    // where write sends an empty datagram; send does what write does on a
    // socket, without the signal a stream socket (reused behind safesock's
    // back) would raise, and a non-socket takes write itself.
    if buf.len == 0 {
        return match send_nosignal(fd, buf) {
            // Not a socket, or send checked the pointer before the
            // descriptor: write gives libc's answer (it fails on a bad
            // pointer before sending anything, so raises no signal).
            Err(Errno(libc::ENOTSOCK | libc::EFAULT)) => write_plain(fd, buf),
            result => result,
        };
    }
    pwritev_one(fd, buf).unwrap_or_else(|| write_plain(fd, buf))
}

/// [`pwritev_nosignal`] of one buffer.
#[inline(always)]
fn pwritev_one(fd: Fd, buf: UserIn<'_>) -> Option<Result<usize>> {
    let one = [buf.as_iovec()];
    // SAFETY: the array is a local; the buffer it names is caller memory the
    // kernel only reads (as in `write`).
    let iov = unsafe { UserIov::from_c(one.as_ptr(), 1) };
    pwritev_nosignal(fd, iov)
}

/// Puts back the caller's `errno` after a success that took failed calls
/// (probes, fallbacks) to reach.
fn keep_errno_on_success<T>(result: Result<T>, entry_errno: Errno) -> Result<T> {
    if result.is_ok() {
        entry_errno.set();
    }
    result
}

/// `write` exactly as libc does it for counts `send` and `pwritev2` would
/// clamp, with SIGPIPE held back; a non-socket then gets the SIGPIPE libc's
/// would have raised.
fn exact_without_sigpipe(fd: Fd, write: impl FnOnce() -> Result<usize>) -> Result<usize> {
    let result = sys::without_sigpipe(write);
    if result == Err(Errno(libc::EPIPE)) {
        raise_sigpipe_unless_socket(fd);
    }
    result
}

/// libc's write raises SIGPIPE for a pipe or FIFO without a reader; only
/// sockets are spared.
fn raise_sigpipe_unless_socket(fd: Fd) {
    if sys::getsockopt_int(fd.0, libc::SOL_SOCKET, libc::SO_TYPE) == Err(Errno(libc::ENOTSOCK)) {
        sys::raise_sigpipe_on_this_thread();
    }
}

fn write_plain(fd: Fd, buf: UserIn<'_>) -> Result<usize> {
    // SAFETY: UserIn carries caller memory the kernel only reads.
    unsafe { sys::write(fd.0, buf.ptr, buf.len) }
}

fn writev_plain(fd: Fd, iov: UserIov<'_>) -> Result<usize> {
    // SAFETY: UserIov carries caller memory the kernel only reads.
    unsafe { sys::writev(fd.0, iov.ptr, iov.count) }
}

fn send_nosignal(fd: Fd, buf: UserIn<'_>) -> Result<usize> {
    // SAFETY: UserIn carries caller memory the kernel only reads.
    unsafe { sys::send(fd.0, buf.ptr, buf.len, libc::MSG_NOSIGNAL) }
}

/// Writes with `pwritev2(..., -1, RWF_NOSIGNAL)`. `None` when the flag is
/// refused (old kernel, or a driver without flag support: the number is then
/// remembered as [`WriteKind::Legacy`]) and plain `write`/`writev` must do.
fn pwritev_nosignal(fd: Fd, iov: UserIov<'_>) -> Option<Result<usize>> {
    if !rwf_nosignal_usable() {
        return None;
    }
    // SAFETY: UserIov carries caller memory the kernel only reads.
    match unsafe { sys::pwritev2(fd.0, iov.ptr, iov.count, -1, RWF_NOSIGNAL) } {
        Err(e) if needs_second_look(e) => pwritev_failed(fd, e),
        result => Some(result),
    }
}

/// Whether `RWF_NOSIGNAL` may be tried: not known to be missing. (Support
/// is recorded only by the probe an `EOPNOTSUPP` triggers, so the steady
/// state writes no shared cache line.)
#[inline(always)]
fn rwf_nosignal_usable() -> bool {
    RWF_NOSIGNAL_SUPPORT.load(Ordering::Relaxed) != UNSUPPORTED
}

/// The `pwritev2` errors that are not simply the answer: `EPIPE` (a pipe
/// without a reader must still get libc's SIGPIPE) and `EOPNOTSUPP` (the
/// flag refused).
#[inline(always)]
fn needs_second_look(e: Errno) -> bool {
    matches!(e.0, libc::EPIPE | libc::EOPNOTSUPP)
}

/// [`pwritev_nosignal`] after `EOPNOTSUPP` (the flag refused) or `EPIPE`.
#[cold]
#[inline(never)]
fn pwritev_failed(fd: Fd, e: Errno) -> Option<Result<usize>> {
    if e == Errno(libc::EPIPE) {
        raise_sigpipe_unless_socket(fd);
        return Some(Err(e));
    }
    if kernel_knows_rwf_nosignal() {
        fdtable::set_write_kind(fd.0, WriteKind::Legacy);
    }
    None
}

/// Tells whether an `EOPNOTSUPP` came from the kernel not knowing the flag
/// (then every later write uses plain `write`) or from one descriptor's
/// driver, by trying the flag once on a pipe of our own.
#[cold]
fn kernel_knows_rwf_nosignal() -> bool {
    match RWF_NOSIGNAL_SUPPORT.load(Ordering::Relaxed) {
        SUPPORTED => return true,
        UNSUPPORTED => return false,
        _ => {}
    }
    let mut ends = [-1; 2];
    // SAFETY: `ends` has room for two descriptors.
    if unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return true; // cannot tell now (no descriptors left); ask again later
    }
    let byte = [0u8; 1];
    let one = [iovec {
        iov_base: byte.as_ptr().cast_mut().cast(),
        iov_len: 1,
    }];
    // SAFETY: the array and byte are locals; the pipe is ours.
    let known = unsafe { sys::pwritev2(ends[1], one.as_ptr(), 1, -1, RWF_NOSIGNAL) } != Err(Errno(libc::EOPNOTSUPP));
    let _ = sys::close(ends[0]);
    let _ = sys::close(ends[1]);
    RWF_NOSIGNAL_SUPPORT.store(if known { SUPPORTED } else { UNSUPPORTED }, Ordering::Relaxed);
    known
}

/// Errors from `send`/`sendmsg` that may mean the number no longer holds the
/// stream socket remembered for it (closed and reused behind safesock's back),
/// or that `write` orders its checks differently.
fn suggests_stale_kind(e: Errno) -> bool {
    matches!(e.0, libc::EBADF | libc::ENOTSOCK | libc::EFAULT)
}

/// Classifies `fd` with `SO_TYPE` (and `SO_DOMAIN` for seqpacket) and records
/// the answer; `None` when the kernel cannot say (not open).
fn learn_kind(fd: Fd) -> Option<WriteKind> {
    let kind = match sys::getsockopt_int(fd.0, libc::SOL_SOCKET, libc::SO_TYPE) {
        Ok(libc::SOCK_SEQPACKET) => {
            let domain = sys::getsockopt_int(fd.0, libc::SOL_SOCKET, libc::SO_DOMAIN).unwrap_or(libc::AF_UNSPEC);
            kind_for(domain, libc::SOCK_SEQPACKET)
        }
        Ok(ty) => kind_for(libc::AF_UNSPEC, ty),
        Err(Errno(libc::ENOTSOCK)) => WriteKind::Plain,
        Err(_) => return None,
    };
    fdtable::set_write_kind(fd.0, kind);
    Some(kind)
}

/// Learns what `fd` is and writes accordingly. With `first_error` set, a
/// `send` already failed with it; if `fd` is still a stream socket that error
/// stands (`write` would have given the same).
fn write_after_learning(fd: Fd, buf: UserIn<'_>, first_error: Errno) -> Result<usize> {
    match learn_kind(fd) {
        Some(WriteKind::NoSignal) if first_error.0 != 0 => Err(first_error),
        Some(WriteKind::NoSignal) => send_nosignal(fd, buf),
        Some(WriteKind::Plain) => write_not_stream(fd, buf),
        // Not open: `write` gives exactly libc's answer.
        _ => write_plain(fd, buf),
    }
}

fn writev_after_learning(fd: Fd, iov: UserIov<'_>, first_error: Errno) -> Result<usize> {
    match learn_kind(fd) {
        Some(WriteKind::NoSignal) if first_error.0 != 0 => Err(first_error),
        Some(WriteKind::NoSignal) => sendmsg_nosignal(fd, iov),
        Some(WriteKind::Plain) => pwritev_nosignal(fd, iov).unwrap_or_else(|| writev_plain(fd, iov)),
        _ => writev_plain(fd, iov),
    }
}

fn sendmsg_nosignal(fd: Fd, iov: UserIov<'_>) -> Result<usize> {
    // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    let mut msg: msghdr = unsafe { core::mem::zeroed() };
    msg.msg_iov = iov.ptr.cast_mut();
    msg.msg_iovlen = iov.count as usize;
    // SAFETY: the header is a local; the array and buffers it names are
    // caller memory the kernel only reads.
    match unsafe { sys::sendmsg(fd.0, &msg, libc::MSG_NOSIGNAL) } {
        // writev returns 0 for buffers that add up to nothing without asking
        // the socket; sendmsg asks it, which fails on an unconnected or shut
        // down socket. Those errors come after the kernel copied the array.
        Err(e) if fails_after_reading_iov(e) => {
            // SAFETY: the error shows the kernel already copied the whole array.
            if unsafe { iov.total_len_after_kernel_read() } == 0 {
                Ok(0)
            } else {
                Err(e)
            }
        }
        result => result,
    }
}

fn fails_after_reading_iov(e: Errno) -> bool {
    !matches!(
        e.0,
        libc::EFAULT | libc::EINVAL | libc::EBADF | libc::ENOTSOCK | libc::ENOMEM | libc::EMSGSIZE
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::UserPair;
    use crate::socket::{close, shutdown, socketpair};

    fn pair(ty: c_int) -> [c_int; 2] {
        let mut sv = [-1; 2];
        socketpair(libc::AF_UNIX, ty, 0, UserPair::from_array(&mut sv)).unwrap();
        sv
    }

    fn plain_pipe() -> [c_int; 2] {
        let mut p = [0; 2];
        // SAFETY: p has room for two descriptors.
        assert_eq!(unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        p
    }

    fn plain_close(fd: c_int) {
        // SAFETY: the descriptor belongs to the calling test.
        unsafe { libc::close(fd) };
    }

    #[test]
    fn write_to_closed_stream_peer_is_epipe_without_signal() {
        // SIGPIPE stays at its default action: a raised signal would kill the test binary.
        for ty in [libc::SOCK_STREAM, libc::SOCK_SEQPACKET] {
            let sv = pair(ty);
            close(Fd(sv[1])).unwrap();
            assert_eq!(
                write(Fd(sv[0]), UserIn::from_slice(b"x"), Marking::OnSuccess),
                Err(Errno(libc::EPIPE))
            );
            let iov = [iovec {
                iov_base: b"y".as_ptr() as *mut _,
                iov_len: 1,
            }];
            assert_eq!(writev(Fd(sv[0]), UserIov::from_slice(&iov)), Err(Errno(libc::EPIPE)));
            close(Fd(sv[0])).unwrap();
        }
    }

    #[test]
    fn zero_length_writev_on_shut_stream_returns_zero_like_libc() {
        let sv = pair(libc::SOCK_STREAM);
        shutdown(Fd(sv[0]), libc::SHUT_WR).unwrap();
        let iov = [iovec {
            iov_base: core::ptr::null_mut(),
            iov_len: 0,
        }];
        assert_eq!(writev(Fd(sv[0]), UserIov::from_slice(&iov)), Ok(0));
        close(Fd(sv[0])).unwrap();
        close(Fd(sv[1])).unwrap();
    }

    /// `ss_write`/`ss_writev` mark the number in use themselves (the
    /// boundary does not): after a success, a number `ss_close` had marked
    /// closed (here: reused behind safesock's back) may be closed again.
    #[test]
    fn successful_writes_mark_the_number_in_use() {
        let iov = [iovec {
            iov_base: b"v".as_ptr() as *mut _,
            iov_len: 1,
        }];
        let p = plain_pipe();
        let sv = pair(libc::SOCK_STREAM);
        for (fd, learnt) in [(p[1], WriteKind::Plain), (sv[0], WriteKind::NoSignal)] {
            // Kind forgotten (as ss_close leaves it), then kind known but still closed.
            for known in [false, true] {
                assert_eq!(fdtable::begin_close(fd), fdtable::CloseTicket::Proceed);
                if known {
                    fdtable::set_write_kind(fd, learnt);
                }
                assert!(fdtable::is_closed(fd));
                assert_eq!(write(Fd(fd), UserIn::from_slice(b"w"), Marking::OnSuccess), Ok(1));
                assert!(!fdtable::is_closed(fd), "fd {fd}, kind known {known}: write");
                assert_eq!(fdtable::write_kind(fd), learnt);

                assert_eq!(fdtable::begin_close(fd), fdtable::CloseTicket::Proceed);
                if known {
                    fdtable::set_write_kind(fd, learnt);
                }
                assert_eq!(writev(Fd(fd), UserIov::from_slice(&iov)), Ok(1));
                assert!(!fdtable::is_closed(fd), "fd {fd}, kind known {known}: writev");
            }
        }
        // A helper's inner write does not mark: only the helper's success counts.
        for fd in [p[1], sv[0]] {
            assert_eq!(fdtable::begin_close(fd), fdtable::CloseTicket::Proceed);
            assert_eq!(write(Fd(fd), UserIn::from_slice(b"h"), Marking::Never), Ok(1));
            assert!(fdtable::is_closed(fd), "fd {fd}: Marking::Never marked it");
            fdtable::mark_used(fd);
        }
        plain_close(p[0]);
        plain_close(p[1]);
        close(Fd(sv[0])).unwrap();
        close(Fd(sv[1])).unwrap();
    }

    #[test]
    fn write_learns_kind_of_foreign_descriptors() {
        let p = plain_pipe();
        assert_eq!(write(Fd(p[1]), UserIn::from_slice(b"abc"), Marking::OnSuccess), Ok(3));
        assert_eq!(fdtable::write_kind(p[1]), WriteKind::Plain);
        let mut buf = [core::mem::MaybeUninit::uninit(); 8];
        assert_eq!(
            crate::socket::read(Fd(p[0]), crate::mem::UserOut::from_uninit(&mut buf)),
            Ok(3)
        );
        plain_close(p[0]);
        plain_close(p[1]);
    }

    #[test]
    fn number_reused_by_a_foreign_socket_raises_no_sigpipe() {
        // A pipe end is learnt as Plain, closed and replaced behind safesock's
        // back by a stream socket whose peer is gone.
        let mut sv = [-1; 2];
        for _ in 0..50 {
            let p = plain_pipe();
            assert_eq!(write(Fd(p[1]), UserIn::from_slice(b"x"), Marking::OnSuccess), Ok(1));
            plain_close(p[0]);
            plain_close(p[1]);
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
            if fdtable::write_kind(sv[0]) == WriteKind::Plain || fdtable::write_kind(sv[1]) == WriteKind::Plain {
                break;
            }
            plain_close(sv[0]);
            plain_close(sv[1]);
            sv = [-1; 2];
        }
        assert!(sv[0] >= 0, "could not get a reused number (other tests raced)");
        let (stale, peer) = if fdtable::write_kind(sv[0]) == WriteKind::Plain {
            (sv[0], sv[1])
        } else {
            (sv[1], sv[0])
        };
        plain_close(peer);
        assert_eq!(
            write(Fd(stale), UserIn::from_slice(b"x"), Marking::OnSuccess),
            Err(Errno(libc::EPIPE))
        );
        let iov = [iovec {
            iov_base: b"y".as_ptr() as *mut _,
            iov_len: 1,
        }];
        assert_eq!(writev(Fd(stale), UserIov::from_slice(&iov)), Err(Errno(libc::EPIPE)));
        plain_close(stale);
    }

    #[test]
    fn pipe_without_reader_still_raises_sigpipe_as_libc_does() {
        let p = plain_pipe();
        plain_close(p[0]);
        // SAFETY: the child only makes system calls (no allocation, no locks)
        // and leaves with _exit; the parent reaps it.
        let child = unsafe { libc::fork() };
        if child == 0 {
            // SAFETY: resetting SIGPIPE to its default action in the child.
            unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
            let _ = write(Fd(p[1]), UserIn::from_slice(b"x"), Marking::OnSuccess);
            // SAFETY: leaving the child without running the test harness's code.
            unsafe { libc::_exit(0) };
        }
        plain_close(p[1]);
        let mut status = 0;
        // SAFETY: waiting for our own child.
        assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
        assert!(
            libc::WIFSIGNALED(status),
            "the child was not killed: status {status:#x}"
        );
        assert_eq!(libc::WTERMSIG(status), libc::SIGPIPE);
    }

    #[test]
    fn legacy_descriptors_fall_back_to_write() {
        // SAFETY: eventfd takes integers only.
        let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        assert!(efd >= 0);
        let value = 1u64.to_ne_bytes();
        assert_eq!(write(Fd(efd), UserIn::from_slice(&value), Marking::OnSuccess), Ok(8));
        assert!(matches!(fdtable::write_kind(efd), WriteKind::Legacy | WriteKind::Plain));
        assert_eq!(write(Fd(efd), UserIn::from_slice(&value), Marking::OnSuccess), Ok(8));
        plain_close(efd);
    }
}
