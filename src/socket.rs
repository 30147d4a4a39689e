//! The inner safe layer: every socket operation safesock offers, on typed
//! arguments, returning `Result`.
//!
//! A [`Fd`] is a descriptor number the caller lends: it is never owned, never
//! closed here except by [`close`]. Caller memory arrives as the
//! [`crate::mem`] types and goes to the kernel unread. This is where the three
//! safety defaults live:
//!
//! 1. close-on-exec: `SOCK_CLOEXEC` / `MSG_CMSG_CLOEXEC` on every call that
//!    creates a descriptor;
//! 2. no SIGPIPE: `MSG_NOSIGNAL` on every send, and stream sockets written by
//!    `write`/`writev` go through `send`/`sendmsg` (see [`write`]);
//! 3. no double close: [`close`] claims the number in [`crate::fdtable`].

use core::ffi::c_int;

use libc::{msghdr, socklen_t};

use crate::error::{Errno, Result};
use crate::fdtable::{self, CloseTicket, WriteKind};
use crate::mem::{UserAddr, UserAddrOut, UserIn, UserIov, UserMsg, UserMsgMut, UserOptOut, UserOut, UserPair};
use crate::sys;

/// A descriptor number lent by the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fd(pub c_int);

/// The most one `read`/`write` moves (`MAX_RW_COUNT`: `INT_MAX` rounded down to a page).
/// `write` and `send` differ beyond it (`write` checks the whole range first), so
/// larger writes take the exact but slower path.
pub(crate) const MAX_RW_COUNT: usize = (i32::MAX as usize) & !4095;

/// `IOV_MAX` on Linux: `writev` rejects more with `EINVAL`, `sendmsg` with `EMSGSIZE`.
pub(crate) const IOV_MAX: c_int = 1024;

/// How writes to a new socket of `ty` in `domain` avoid SIGPIPE.
fn kind_for(domain: c_int, ty: c_int) -> WriteKind {
    match ty & 0xf {
        libc::SOCK_STREAM => WriteKind::NoSignal,
        // AF_UNIX seqpacket reports EPIPE without a signal; others (SCTP) may raise one.
        libc::SOCK_SEQPACKET if domain != libc::AF_UNIX => WriteKind::NoSignal,
        _ => WriteKind::Plain,
    }
}

/// `socket` with close-on-exec.
pub fn socket(domain: c_int, ty: c_int, protocol: c_int) -> Result<Fd> {
    let fd = sys::socket(domain, ty | libc::SOCK_CLOEXEC, protocol)?;
    fdtable::handed_out(fd, kind_for(domain, ty));
    Ok(Fd(fd))
}

/// `socketpair` with close-on-exec.
pub fn socketpair(domain: c_int, ty: c_int, protocol: c_int, sv: UserPair<'_>) -> Result<()> {
    // SAFETY: UserPair carries caller memory the kernel may write.
    unsafe { sys::socketpair(domain, ty | libc::SOCK_CLOEXEC, protocol, sv.ptr) }?;
    // SAFETY: socketpair just succeeded and wrote both entries.
    for fd in unsafe { sv.read_after_success() } {
        fdtable::handed_out(fd, kind_for(domain, ty));
    }
    Ok(())
}

/// `bind`.
pub fn bind(fd: Fd, addr: UserAddr<'_>) -> Result<()> {
    // SAFETY: UserAddr carries caller memory the kernel only reads.
    unsafe { sys::bind(fd.0, addr.ptr, addr.len) }
}

/// `listen`.
pub fn listen(fd: Fd, backlog: c_int) -> Result<()> {
    sys::listen(fd.0, backlog)
}

/// `connect`.
pub fn connect(fd: Fd, addr: UserAddr<'_>) -> Result<()> {
    // SAFETY: UserAddr carries caller memory the kernel only reads.
    unsafe { sys::connect(fd.0, addr.ptr, addr.len) }
}

/// `accept4` with close-on-exec added to `flags`.
pub fn accept4(fd: Fd, peer: UserAddrOut<'_>, flags: c_int) -> Result<Fd> {
    // SAFETY: UserAddrOut carries caller memory the kernel may write.
    let new = unsafe { sys::accept4(fd.0, peer.ptr, peer.len, flags | libc::SOCK_CLOEXEC) }?;
    // The listener may be a stream or a seqpacket socket; the first write asks.
    fdtable::handed_out(new, WriteKind::Unknown);
    Ok(Fd(new))
}

/// `read`.
pub fn read(fd: Fd, buf: UserOut<'_>) -> Result<usize> {
    // SAFETY: UserOut carries caller memory the kernel may write.
    unsafe { sys::read(fd.0, buf.ptr, buf.len) }
}

/// `recv`.
pub fn recv(fd: Fd, buf: UserOut<'_>, flags: c_int) -> Result<usize> {
    // SAFETY: UserOut carries caller memory the kernel may write.
    unsafe { sys::recv(fd.0, buf.ptr, buf.len, flags) }
}

/// `send` without SIGPIPE.
pub fn send(fd: Fd, buf: UserIn<'_>, flags: c_int) -> Result<usize> {
    // SAFETY: UserIn carries caller memory the kernel only reads.
    unsafe { sys::send(fd.0, buf.ptr, buf.len, flags | libc::MSG_NOSIGNAL) }
}

/// `readv`.
pub fn readv(fd: Fd, iov: UserIov<'_>) -> Result<usize> {
    // SAFETY: UserIov carries caller memory the kernel reads and writes through.
    unsafe { sys::readv(fd.0, iov.ptr, iov.count) }
}

/// `recvmsg` with close-on-exec for received descriptors.
pub fn recvmsg(fd: Fd, msg: UserMsgMut<'_>, flags: c_int) -> Result<usize> {
    // SAFETY: UserMsgMut carries caller memory the kernel may write.
    let n = unsafe { sys::recvmsg(fd.0, msg.ptr, flags | libc::MSG_CMSG_CLOEXEC) }?;
    // SAFETY: recvmsg just succeeded with this header.
    unsafe { msg.for_each_received_fd_after_success(|new| fdtable::handed_out(new, WriteKind::Unknown)) };
    Ok(n)
}

/// `sendmsg` without SIGPIPE.
pub fn sendmsg(fd: Fd, msg: UserMsg<'_>, flags: c_int) -> Result<usize> {
    // SAFETY: UserMsg carries caller memory the kernel only reads.
    unsafe { sys::sendmsg(fd.0, msg.ptr, flags | libc::MSG_NOSIGNAL) }
}

/// `recvfrom`.
pub fn recvfrom(fd: Fd, buf: UserOut<'_>, flags: c_int, from: UserAddrOut<'_>) -> Result<usize> {
    // SAFETY: UserOut and UserAddrOut carry caller memory the kernel may write.
    unsafe { sys::recvfrom(fd.0, buf.ptr, buf.len, flags, from.ptr, from.len) }
}

/// `sendto` without SIGPIPE.
pub fn sendto(fd: Fd, buf: UserIn<'_>, flags: c_int, to: UserAddr<'_>) -> Result<usize> {
    // SAFETY: UserIn and UserAddr carry caller memory the kernel only reads.
    unsafe { sys::sendto(fd.0, buf.ptr, buf.len, flags | libc::MSG_NOSIGNAL, to.ptr, to.len) }
}

/// `shutdown`.
pub fn shutdown(fd: Fd, how: c_int) -> Result<()> {
    sys::shutdown(fd.0, how)
}

/// `getsockname`.
pub fn getsockname(fd: Fd, addr: UserAddrOut<'_>) -> Result<()> {
    // SAFETY: UserAddrOut carries caller memory the kernel may write.
    unsafe { sys::getsockname(fd.0, addr.ptr, addr.len) }
}

/// `getpeername`.
pub fn getpeername(fd: Fd, addr: UserAddrOut<'_>) -> Result<()> {
    // SAFETY: UserAddrOut carries caller memory the kernel may write.
    unsafe { sys::getpeername(fd.0, addr.ptr, addr.len) }
}

/// `getsockopt`.
pub fn getsockopt(fd: Fd, level: c_int, name: c_int, value: UserOptOut<'_>) -> Result<()> {
    // SAFETY: UserOptOut carries caller memory the kernel may write.
    unsafe { sys::getsockopt(fd.0, level, name, value.ptr, value.len) }
}

/// `setsockopt`.
pub fn setsockopt(fd: Fd, level: c_int, name: c_int, value: UserIn<'_>) -> Result<()> {
    let len = socklen_t::try_from(value.len).unwrap_or(socklen_t::MAX);
    // SAFETY: UserIn carries caller memory the kernel only reads.
    unsafe { sys::setsockopt(fd.0, level, name, value.ptr, len) }
}

/// `close`, at most once per number handed out: a number `ss_close` already
/// closed, and nothing has handed out or used since, is refused with `EBADF`
/// and nothing is closed.
pub fn close(fd: Fd) -> Result<()> {
    if fdtable::begin_close(fd.0) == CloseTicket::AlreadyClosed {
        return Err(Errno(libc::EBADF));
    }
    let result = sys::close(fd.0);
    if result == Err(Errno(libc::EBADF)) {
        fdtable::abort_close(fd.0);
    }
    result
}

/// `write`, without SIGPIPE on a socket.
///
/// A stream socket is written with `send(MSG_NOSIGNAL)`, which moves the same
/// bytes with the same results; anything else with `write` itself. Which is
/// which is remembered per descriptor in [`fdtable`] (learnt from the call
/// that created it, or from one `SO_TYPE` query the first time), so the steady
/// state is one system call either way.
pub fn write(fd: Fd, buf: UserIn<'_>) -> Result<usize> {
    // A zero-length write sends nothing, so it cannot raise SIGPIPE; and `send`
    // would emit an empty datagram where `write` does not.
    if buf.len == 0 {
        return write_plain(fd, buf);
    }
    match fdtable::write_kind(fd.0) {
        WriteKind::Plain => write_plain(fd, buf),
        WriteKind::NoSignal => match write_nosignal(fd, buf) {
            Err(e) if suggests_stale_kind(e) => write_learning_kind(fd, buf, e),
            result => result,
        },
        WriteKind::Unknown => write_learning_kind(fd, buf, Errno(0)),
    }
}

fn write_plain(fd: Fd, buf: UserIn<'_>) -> Result<usize> {
    // SAFETY: UserIn carries caller memory the kernel only reads.
    unsafe { sys::write(fd.0, buf.ptr, buf.len) }
}

fn write_nosignal(fd: Fd, buf: UserIn<'_>) -> Result<usize> {
    if buf.len > MAX_RW_COUNT {
        return sys::without_sigpipe(|| write_plain(fd, buf));
    }
    // SAFETY: UserIn carries caller memory the kernel only reads.
    unsafe { sys::send(fd.0, buf.ptr, buf.len, libc::MSG_NOSIGNAL) }
}

/// Asks the kernel what `fd` is, remembers it, and writes accordingly. With
/// `first_error` set, a `send` already failed with it; if `fd` is still a
/// stream socket that error stands (write would have given the same).
fn write_learning_kind(fd: Fd, buf: UserIn<'_>, first_error: Errno) -> Result<usize> {
    match learn_kind(fd) {
        Some(WriteKind::NoSignal) if first_error.0 != 0 => Err(first_error),
        Some(WriteKind::NoSignal) => write_nosignal(fd, buf),
        // Not a socket that can raise SIGPIPE, or not open at all: `write`
        // gives exactly libc's answer.
        _ => write_plain(fd, buf),
    }
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

/// `writev`, without SIGPIPE on a socket (as [`write`]).
pub fn writev(fd: Fd, iov: UserIov<'_>) -> Result<usize> {
    // Out-of-range counts fail in the kernel before any byte moves; zero
    // buffers move nothing. Both are answered by writev itself.
    if iov.count <= 0 || iov.count > IOV_MAX {
        return writev_plain(fd, iov);
    }
    match fdtable::write_kind(fd.0) {
        WriteKind::Plain => writev_plain(fd, iov),
        WriteKind::NoSignal => match writev_nosignal(fd, iov) {
            Err(e) if suggests_stale_kind(e) => writev_learning_kind(fd, iov, e),
            result => result,
        },
        WriteKind::Unknown => writev_learning_kind(fd, iov, Errno(0)),
    }
}

fn writev_plain(fd: Fd, iov: UserIov<'_>) -> Result<usize> {
    // SAFETY: UserIov carries caller memory the kernel only reads.
    unsafe { sys::writev(fd.0, iov.ptr, iov.count) }
}

fn writev_nosignal(fd: Fd, iov: UserIov<'_>) -> Result<usize> {
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

fn writev_learning_kind(fd: Fd, iov: UserIov<'_>, first_error: Errno) -> Result<usize> {
    match learn_kind(fd) {
        Some(WriteKind::NoSignal) if first_error.0 != 0 => Err(first_error),
        Some(WriteKind::NoSignal) => writev_nosignal(fd, iov),
        _ => writev_plain(fd, iov),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::MaybeUninit;

    fn pair(ty: c_int) -> [c_int; 2] {
        let mut sv = [-1; 2];
        socketpair(libc::AF_UNIX, ty, 0, UserPair::from_array(&mut sv)).unwrap();
        sv
    }

    fn cloexec(fd: c_int) -> bool {
        // SAFETY: F_GETFD takes no pointer.
        unsafe { libc::fcntl(fd, libc::F_GETFD) & libc::FD_CLOEXEC != 0 }
    }

    #[test]
    fn created_descriptors_are_cloexec_and_classified() {
        let s = socket(libc::AF_INET, libc::SOCK_STREAM, 0).unwrap();
        assert!(cloexec(s.0));
        assert_eq!(fdtable::write_kind(s.0), WriteKind::NoSignal);
        close(s).unwrap();
        let sv = pair(libc::SOCK_DGRAM);
        assert!(cloexec(sv[0]) && cloexec(sv[1]));
        assert_eq!(fdtable::write_kind(sv[0]), WriteKind::Plain);
        close(Fd(sv[0])).unwrap();
        close(Fd(sv[1])).unwrap();
    }

    #[test]
    fn write_to_closed_stream_peer_is_epipe_without_signal() {
        // SIGPIPE stays at its default action: a raised signal would kill the test binary.
        for ty in [libc::SOCK_STREAM, libc::SOCK_SEQPACKET] {
            let sv = pair(ty);
            close(Fd(sv[1])).unwrap();
            assert_eq!(write(Fd(sv[0]), UserIn::from_slice(b"x")), Err(Errno(libc::EPIPE)));
            let iov = [libc::iovec {
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
        let iov = [libc::iovec {
            iov_base: core::ptr::null_mut(),
            iov_len: 0,
        }];
        assert_eq!(writev(Fd(sv[0]), UserIov::from_slice(&iov)), Ok(0));
        close(Fd(sv[0])).unwrap();
        close(Fd(sv[1])).unwrap();
    }

    #[test]
    fn write_learns_kind_of_foreign_descriptors() {
        let mut p = [0; 2];
        // SAFETY: p has room for two descriptors.
        assert_eq!(unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        assert_eq!(write(Fd(p[1]), UserIn::from_slice(b"abc")), Ok(3));
        assert_eq!(fdtable::write_kind(p[1]), WriteKind::Plain);
        let mut buf = [MaybeUninit::uninit(); 8];
        assert_eq!(read(Fd(p[0]), UserOut::from_uninit(&mut buf)), Ok(3));
        // The pipe came from outside safesock (and its numbers may have been
        // closed by ss_close in another test): close it the plain way.
        // SAFETY: both descriptors belong to this test.
        unsafe { libc::close(p[0]) };
        // SAFETY: as above.
        unsafe { libc::close(p[1]) };
    }

    #[test]
    fn double_close_is_refused() {
        let s = socket(libc::AF_UNIX, libc::SOCK_STREAM, 0).unwrap();
        assert_eq!(close(s), Ok(()));
        assert_eq!(close(s), Err(Errno(libc::EBADF)));
    }

    #[test]
    fn close_of_never_opened_number_does_not_poison_it() {
        let s = socket(libc::AF_UNIX, libc::SOCK_STREAM, 0).unwrap();
        close(s).unwrap();
        // The number is free; another close fails in the kernel the same way...
        let fresh = 2_900_000;
        assert_eq!(close(Fd(fresh)), Err(Errno(libc::EBADF)));
        assert!(!fdtable::is_closed(fresh), "a kernel EBADF is not a safesock close");
    }
}
