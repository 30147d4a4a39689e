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
//! 2. no SIGPIPE: `MSG_NOSIGNAL` on every send; `write`/`writev` are in
//!    [`crate::nosignal`];
//! 3. no double close: [`close`] claims the number in [`crate::fdtable`].

use core::ffi::c_int;

use libc::socklen_t;

use crate::error::{Errno, Result};
use crate::fdtable::{self, CloseTicket, WriteKind};
use crate::mem::{UserAddr, UserAddrOut, UserIn, UserIov, UserMsg, UserMsgMut, UserOptOut, UserOut, UserPair};
pub use crate::nosignal::{Marking, write, writev};
use crate::sys;

/// A descriptor number lent by the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fd(pub c_int);

/// How writes to a new socket of `ty` in `domain` avoid SIGPIPE.
pub(crate) fn kind_for(domain: c_int, ty: c_int) -> WriteKind {
    match ty & 0xf {
        libc::SOCK_STREAM => WriteKind::NoSignal,
        // AF_UNIX seqpacket reports EPIPE without a signal; others (SCTP) may raise one.
        libc::SOCK_SEQPACKET if domain != libc::AF_UNIX => WriteKind::NoSignal,
        _ => WriteKind::Plain,
    }
}

/// `socket` with close-on-exec.
#[inline(always)]
pub fn socket(domain: c_int, ty: c_int, protocol: c_int) -> Result<Fd> {
    let fd = sys::socket(domain, ty | libc::SOCK_CLOEXEC, protocol)?;
    fdtable::handed_out(fd, kind_for(domain, ty));
    Ok(Fd(fd))
}

/// `socketpair` with close-on-exec.
#[inline(always)]
pub fn socketpair(domain: c_int, ty: c_int, protocol: c_int, sv: UserPair<'_>) -> Result<c_int> {
    // SAFETY: UserPair carries caller memory the kernel may write.
    let ret = unsafe { sys::socketpair(domain, ty | libc::SOCK_CLOEXEC, protocol, sv.ptr) }?;
    let kind = kind_for(domain, ty);
    // SAFETY: socketpair just succeeded and wrote both entries.
    let [first, second] = unsafe { sv.read_after_success() };
    fdtable::handed_out(first, kind);
    fdtable::handed_out(second, kind);
    Ok(ret)
}

/// `bind`.
pub fn bind(fd: Fd, addr: UserAddr<'_>) -> Result<c_int> {
    // SAFETY: UserAddr carries caller memory the kernel only reads.
    unsafe { sys::bind(fd.0, addr.ptr, addr.len) }
}

/// `listen`.
pub fn listen(fd: Fd, backlog: c_int) -> Result<c_int> {
    sys::listen(fd.0, backlog)
}

/// `connect`.
pub fn connect(fd: Fd, addr: UserAddr<'_>) -> Result<c_int> {
    // SAFETY: UserAddr carries caller memory the kernel only reads.
    unsafe { sys::connect(fd.0, addr.ptr, addr.len) }
}

/// `accept4` with close-on-exec added to `flags`; marks the listener in use.
#[inline(always)]
pub fn accept4(fd: Fd, peer: UserAddrOut<'_>, flags: c_int) -> Result<Fd> {
    // SAFETY: UserAddrOut carries caller memory the kernel may write.
    let new = unsafe { sys::accept4(fd.0, peer.ptr, peer.len, flags | libc::SOCK_CLOEXEC) }?;
    // A connection has the listener's type: a stream listener made by
    // ss_socket gives stream sockets; otherwise the first write asks.
    let listener = fdtable::entry(fd.0);
    let kind = match listener.write_kind() {
        WriteKind::NoSignal => WriteKind::NoSignal,
        _ => WriteKind::Unknown,
    };
    fdtable::handed_out(new, kind);
    // The listener was used successfully (the boundary leaves this to us).
    if listener.is_closed() {
        fdtable::mark_used(fd.0);
    }
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
#[inline(always)]
pub fn recvmsg(fd: Fd, msg: UserMsgMut<'_>, flags: c_int) -> Result<usize> {
    // SAFETY: UserMsgMut carries caller memory the kernel may write.
    let n = unsafe { sys::recvmsg(fd.0, msg.ptr, flags | libc::MSG_CMSG_CLOEXEC) }?;
    // SAFETY: recvmsg just succeeded with this header.
    unsafe {
        // The kernel echoes the flag it was given; the caller did not ask for it.
        if flags & libc::MSG_CMSG_CLOEXEC == 0 {
            msg.clear_returned_flags_after_success(libc::MSG_CMSG_CLOEXEC);
        }
        msg.for_each_received_fd_after_success(|new| fdtable::handed_out(new, WriteKind::Unknown));
    }
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
pub fn shutdown(fd: Fd, how: c_int) -> Result<c_int> {
    sys::shutdown(fd.0, how)
}

/// `getsockname`.
pub fn getsockname(fd: Fd, addr: UserAddrOut<'_>) -> Result<c_int> {
    // SAFETY: UserAddrOut carries caller memory the kernel may write.
    unsafe { sys::getsockname(fd.0, addr.ptr, addr.len) }
}

/// `getpeername`.
pub fn getpeername(fd: Fd, addr: UserAddrOut<'_>) -> Result<c_int> {
    // SAFETY: UserAddrOut carries caller memory the kernel may write.
    unsafe { sys::getpeername(fd.0, addr.ptr, addr.len) }
}

/// `getsockopt`.
pub fn getsockopt(fd: Fd, level: c_int, name: c_int, value: UserOptOut<'_>) -> Result<c_int> {
    // SAFETY: UserOptOut carries caller memory the kernel may write.
    unsafe { sys::getsockopt(fd.0, level, name, value.ptr, value.len) }
}

/// `setsockopt`.
pub fn setsockopt(fd: Fd, level: c_int, name: c_int, value: UserIn<'_>) -> Result<c_int> {
    let len = socklen_t::try_from(value.len).unwrap_or(socklen_t::MAX);
    // SAFETY: UserIn carries caller memory the kernel only reads.
    unsafe { sys::setsockopt(fd.0, level, name, value.ptr, len) }
}

/// `close`, at most once per number handed out: a number `ss_close` already
/// closed, and nothing has handed out or used since, is refused with `EBADF`
/// and nothing is closed.
#[inline(always)]
pub fn close(fd: Fd) -> Result<c_int> {
    if fdtable::begin_close(fd.0) == CloseTicket::AlreadyClosed {
        return Err(Errno(libc::EBADF));
    }
    let result = sys::close(fd.0);
    if result == Err(Errno(libc::EBADF)) {
        fdtable::abort_close(fd.0);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn double_close_is_refused() {
        let s = socket(libc::AF_UNIX, libc::SOCK_STREAM, 0).unwrap();
        assert_eq!(close(s), Ok(0));
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

    /// `ss_accept` leaves marking the listener to `accept4`: a successful
    /// accept on a number `ss_close` had marked closed (reused behind
    /// safesock's back) makes it closable again, and the connection inherits
    /// the listener's stream kind.
    #[test]
    fn accept_marks_the_listener_in_use() {
        let listener = socket(libc::AF_INET, libc::SOCK_STREAM, 0).unwrap();
        // SAFETY: sockaddr_in is plain data; all zeroes is a valid value.
        let mut sin: libc::sockaddr_in = unsafe { core::mem::zeroed() };
        sin.sin_family = libc::AF_INET as libc::sa_family_t;
        sin.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        let len = core::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let sa = (&raw const sin).cast::<libc::sockaddr>();
        // SAFETY: a local address of the size given.
        unsafe { bind(listener, UserAddr::from_c(sa, len)) }.unwrap();
        listen(listener, 1).unwrap();
        let mut bound = sin;
        let mut bound_len = len;
        let bound_ptr = (&raw mut bound).cast::<libc::sockaddr>();
        // SAFETY: local out-parameters of the sizes given.
        unsafe { getsockname(listener, UserAddrOut::from_c(bound_ptr, &mut bound_len)) }.unwrap();
        let client = socket(libc::AF_INET, libc::SOCK_STREAM, 0).unwrap();
        // SAFETY: the listener's own address, of the size given.
        unsafe { connect(client, UserAddr::from_c(bound_ptr, bound_len)) }.unwrap();

        assert_eq!(fdtable::begin_close(listener.0), fdtable::CloseTicket::Proceed);
        fdtable::set_write_kind(listener.0, WriteKind::NoSignal);
        // SAFETY: NULL address and length: the kernel writes nothing.
        let conn = unsafe {
            accept4(
                listener,
                UserAddrOut::from_c(core::ptr::null_mut(), core::ptr::null_mut()),
                0,
            )
        };
        let conn = conn.unwrap();
        assert!(
            !fdtable::is_closed(listener.0),
            "a successful accept marks the listener in use"
        );
        assert_eq!(fdtable::write_kind(conn.0), WriteKind::NoSignal);
        for fd in [conn, client, listener] {
            close(fd).unwrap();
        }
    }
}
