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

use crate::error::{Errno, Result};
use crate::fdtable::{self, WriteKind};
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

/// `write`, without SIGPIPE on a socket.
pub fn write(fd: Fd, buf: UserIn<'_>) -> Result<usize> {
    // A success leaves errno alone, as libc's does, even when the way to it
    // went through a failed probe or a stale kind.
    let entry_errno = Errno::last();
    if buf.len > MAX_RW_COUNT {
        return exact_without_sigpipe(fd, || write_plain(fd, buf));
    }
    let result = match fdtable::write_kind(fd.0) {
        WriteKind::NoSignal => match send_nosignal(fd, buf) {
            Err(e) if suggests_stale_kind(e) => write_after_learning(fd, buf, e),
            result => return result,
        },
        WriteKind::Plain => write_not_stream(fd, buf),
        WriteKind::Legacy => return write_plain(fd, buf),
        WriteKind::Unknown => write_after_learning(fd, buf, Errno(0)),
    };
    keep_errno_on_success(result, entry_errno)
}

/// `writev`, without SIGPIPE on a socket.
pub fn writev(fd: Fd, iov: UserIov<'_>) -> Result<usize> {
    // Out-of-range counts fail in the kernel before any byte moves, and the
    // kinds that never raise SIGPIPE need nothing: writev itself answers.
    if iov.count <= 0 || iov.count > IOV_MAX || fdtable::write_kind(fd.0) == WriteKind::Legacy {
        return writev_plain(fd, iov);
    }
    let entry_errno = Errno::last();
    // pwritev2(-1) is writev itself for every kind of descriptor (buffers
    // that add up to nothing do not reach the socket, as with writev), so
    // only a kernel without RWF_NOSIGNAL needs the kind.
    match pwritev_nosignal(fd, iov) {
        Some(result) => result,
        None => keep_errno_on_success(writev_without_rwf(fd, iov), entry_errno),
    }
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
    let one = [iovec {
        iov_base: buf.ptr.cast_mut(),
        iov_len: buf.len,
    }];
    // SAFETY: the array is a local; the buffer it names is caller memory the
    // kernel only reads (as in `write`).
    let iov = unsafe { UserIov::from_c(one.as_ptr(), 1) };
    pwritev_nosignal(fd, iov).unwrap_or_else(|| write_plain(fd, buf))
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
    if RWF_NOSIGNAL_SUPPORT.load(Ordering::Relaxed) == UNSUPPORTED {
        return None;
    }
    // SAFETY: UserIov carries caller memory the kernel only reads.
    match unsafe { sys::pwritev2(fd.0, iov.ptr, iov.count, -1, RWF_NOSIGNAL) } {
        Err(Errno(libc::EOPNOTSUPP)) => {
            if kernel_knows_rwf_nosignal() {
                fdtable::set_write_kind(fd.0, WriteKind::Legacy);
            }
            None
        }
        Err(Errno(libc::EPIPE)) => {
            raise_sigpipe_unless_socket(fd);
            Some(Err(Errno(libc::EPIPE)))
        }
        result => {
            // Stored once; later writes only read it (no shared cache line is written).
            if RWF_NOSIGNAL_SUPPORT.load(Ordering::Relaxed) != SUPPORTED {
                RWF_NOSIGNAL_SUPPORT.store(SUPPORTED, Ordering::Relaxed);
            }
            Some(result)
        }
    }
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
            assert_eq!(write(Fd(sv[0]), UserIn::from_slice(b"x")), Err(Errno(libc::EPIPE)));
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

    #[test]
    fn write_learns_kind_of_foreign_descriptors() {
        let p = plain_pipe();
        assert_eq!(write(Fd(p[1]), UserIn::from_slice(b"abc")), Ok(3));
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
            assert_eq!(write(Fd(p[1]), UserIn::from_slice(b"x")), Ok(1));
            plain_close(p[0]);
            plain_close(p[1]);
            // SAFETY: sv has room for two descriptors.
            assert_eq!(
                unsafe {
                    libc::socketpair(
                        libc::AF_UNIX,
                        libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
                        0,
                        sv.as_mut_ptr(),
                    )
                },
                0
            );
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
        assert_eq!(write(Fd(stale), UserIn::from_slice(b"x")), Err(Errno(libc::EPIPE)));
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
            let _ = write(Fd(p[1]), UserIn::from_slice(b"x"));
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
        assert_eq!(write(Fd(efd), UserIn::from_slice(&value)), Ok(8));
        assert!(matches!(fdtable::write_kind(efd), WriteKind::Legacy | WriteKind::Plain));
        assert_eq!(write(Fd(efd), UserIn::from_slice(&value)), Ok(8));
        plain_close(efd);
    }
}
