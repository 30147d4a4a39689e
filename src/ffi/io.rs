//! Moving bytes: read/write, recv/send, readv/writev, recvmsg/sendmsg, recvfrom/sendto.

use core::ffi::{c_int, c_void};

use libc::{iovec, msghdr, sockaddr, socklen_t, ssize_t};

use super::boundary;
use crate::call::{AddrArg, Call, CallName, Detail};
use crate::mem::{UserAddr, UserAddrOut, UserIn, UserIov, UserMsg, UserMsgMut, UserOut};
use crate::socket::{self, Fd, Marking};

/// Reads up to `count` bytes, as `read(2)`. Returns the number read, 0 at end
/// of stream (the peer closed or shut down writing), or -1 with `errno`.
///
/// # Safety
///
/// `buf` is handed to the kernel, which writes into it; any value is allowed
/// (a bad pointer gives `EFAULT`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ss_read(fd: c_int, buf: *mut c_void, count: usize) -> ssize_t {
    // SAFETY: the kernel checks the buffer before writing it.
    let into = unsafe { UserOut::from_c(buf, count) };
    boundary(
        fd,
        || socket::read(Fd(fd), into),
        move |_| Call::on(CallName::Read, fd, Detail::Count(count)),
    )
}

/// Writes up to `count` bytes, as `write(2)`; on a socket whose peer is gone
/// it returns -1/`EPIPE` and never raises SIGPIPE. May write fewer bytes than
/// asked (use `ss_send_all` to write everything).
///
/// # Safety
///
/// `buf` is handed to the kernel unread; any value is allowed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ss_write(fd: c_int, buf: *const c_void, count: usize) -> ssize_t {
    // SAFETY: the kernel checks the buffer before reading it.
    let from = unsafe { UserIn::from_c(buf, count) };
    // -1: the write marks the descriptor in use itself, without a second lookup.
    boundary(
        -1,
        || socket::write(Fd(fd), from, Marking::OnSuccess),
        move |_| Call::on(CallName::Write, fd, Detail::Count(count)),
    )
}

/// Receives up to `len` bytes with `flags` (`MSG_PEEK`, `MSG_DONTWAIT`,
/// `MSG_WAITALL` ...), as `recv(2)`.
///
/// # Safety
///
/// As `ss_read`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ss_recv(sockfd: c_int, buf: *mut c_void, len: usize, flags: c_int) -> ssize_t {
    // SAFETY: the kernel checks the buffer before writing it.
    let into = unsafe { UserOut::from_c(buf, len) };
    boundary(
        sockfd,
        || socket::recv(Fd(sockfd), into, flags),
        move |_| Call::on(CallName::Recv, sockfd, Detail::CountFlags(len, flags)),
    )
}

/// Sends up to `len` bytes, as `send(2)` with `MSG_NOSIGNAL` added: a gone
/// peer gives -1/`EPIPE`, never SIGPIPE.
///
/// # Safety
///
/// As `ss_write`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ss_send(sockfd: c_int, buf: *const c_void, len: usize, flags: c_int) -> ssize_t {
    // SAFETY: the kernel checks the buffer before reading it.
    let from = unsafe { UserIn::from_c(buf, len) };
    boundary(
        sockfd,
        || socket::send(Fd(sockfd), from, flags),
        move |_| Call::on(CallName::Send, sockfd, Detail::CountFlags(len, flags)),
    )
}

/// Reads into `iovcnt` buffers in order (scatter), as `readv(2)`.
///
/// # Safety
///
/// `iov` and the buffers it names are handed to the kernel unread; any value
/// is allowed (`EINVAL` for a count outside 0..=1024, `EFAULT` for bad memory).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ss_readv(fd: c_int, iov: *const iovec, iovcnt: c_int) -> ssize_t {
    // SAFETY: the kernel checks the array and the buffers.
    let bufs = unsafe { UserIov::from_c(iov, iovcnt) };
    boundary(
        fd,
        || socket::readv(Fd(fd), bufs),
        move |_| Call::on(CallName::Readv, fd, Detail::Iov(iovcnt)),
    )
}

/// Writes `iovcnt` buffers in order (gather), as `writev(2)`; never raises
/// SIGPIPE on a socket.
///
/// # Safety
///
/// As `ss_readv`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ss_writev(fd: c_int, iov: *const iovec, iovcnt: c_int) -> ssize_t {
    // SAFETY: the kernel checks the array and the buffers.
    let bufs = unsafe { UserIov::from_c(iov, iovcnt) };
    // -1: as in ss_write.
    boundary(
        -1,
        || socket::writev(Fd(fd), bufs),
        move |_| Call::on(CallName::Writev, fd, Detail::Iov(iovcnt)),
    )
}

/// Receives a message with its sender address and control data, as
/// `recvmsg(2)`; descriptors received as `SCM_RIGHTS` have `FD_CLOEXEC` set
/// (`MSG_CMSG_CLOEXEC` is added).
///
/// # Safety
///
/// `msg` and everything it points to are handed to the kernel; any value is allowed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ss_recvmsg(sockfd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t {
    // SAFETY: the kernel checks the header and its buffers; safesock reads
    // the control data only after success.
    let header = unsafe { UserMsgMut::from_c(msg) };
    boundary(
        sockfd,
        || socket::recvmsg(Fd(sockfd), header, flags),
        move |_| Call::on(CallName::Recvmsg, sockfd, Detail::Flags(flags)),
    )
}

/// Sends a message (gather buffers, optional address and control data such
/// as `SCM_RIGHTS`), as `sendmsg(2)` with `MSG_NOSIGNAL` added.
///
/// # Safety
///
/// `msg` and everything it points to are handed to the kernel unread; any value is allowed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ss_sendmsg(sockfd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t {
    // SAFETY: the kernel checks the header and its buffers.
    let header = unsafe { UserMsg::from_c(msg) };
    boundary(
        sockfd,
        || socket::sendmsg(Fd(sockfd), header, flags),
        move |_| Call::on(CallName::Sendmsg, sockfd, Detail::Flags(flags)),
    )
}

/// Receives a datagram (or stream bytes) and the sender's address, as
/// `recvfrom(2)`. `src_addr`/`addrlen` may be NULL.
///
/// # Safety
///
/// All pointers are handed to the kernel; any value is allowed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ss_recvfrom(
    sockfd: c_int,
    buf: *mut c_void,
    len: usize,
    flags: c_int,
    src_addr: *mut sockaddr,
    addrlen: *mut socklen_t,
) -> ssize_t {
    // SAFETY: the kernel checks every pointer.
    let (into, from) = unsafe { (UserOut::from_c(buf, len), UserAddrOut::from_c(src_addr, addrlen)) };
    boundary(
        sockfd,
        || socket::recvfrom(Fd(sockfd), into, flags, from),
        move |_| Call::on(CallName::Recvfrom, sockfd, Detail::CountFlags(len, flags)),
    )
}

/// Sends to `dest_addr` (a datagram), as `sendto(2)` with `MSG_NOSIGNAL`
/// added. With a NULL address it acts as `ss_send`.
///
/// # Safety
///
/// All pointers are handed to the kernel unread; any value is allowed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ss_sendto(
    sockfd: c_int,
    buf: *const c_void,
    len: usize,
    flags: c_int,
    dest_addr: *const sockaddr,
    addrlen: socklen_t,
) -> ssize_t {
    // SAFETY: the kernel checks every pointer.
    let (from, to) = unsafe { (UserIn::from_c(buf, len), UserAddr::from_c(dest_addr, addrlen)) };
    boundary(
        sockfd,
        || socket::sendto(Fd(sockfd), from, flags, to),
        move |_| {
            Call::on(
                CallName::Sendto,
                sockfd,
                Detail::SendTo(len, flags, AddrArg::raw(dest_addr, addrlen)),
            )
        },
    )
}
