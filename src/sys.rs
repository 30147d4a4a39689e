//! The raw system calls, each exactly one call into libc.
//!
//! Every function here makes one call and turns `-1` into the `errno` it set;
//! nothing else. Pointers are passed through untouched: the kernel validates
//! them and answers `EFAULT` for bad ones, which is what libc callers get.

use core::ffi::{c_int, c_void};

use libc::{iovec, msghdr, sockaddr, socklen_t, ssize_t};

use crate::error::{Errno, Result};

#[inline(always)]
fn check(ret: c_int) -> Result<c_int> {
    if ret == -1 { Err(Errno::last()) } else { Ok(ret) }
}

#[inline(always)]
fn check_len(ret: ssize_t) -> Result<usize> {
    if ret < 0 { Err(Errno::last()) } else { Ok(ret as usize) }
}

/// `socket(2)`.
#[inline]
pub fn socket(domain: c_int, ty: c_int, protocol: c_int) -> Result<c_int> {
    // SAFETY: plain integers; no memory is passed.
    check(unsafe { libc::socket(domain, ty, protocol) })
}

/// `socketpair(2)`.
///
/// # Safety
///
/// `sv`, if mapped, may be written by the kernel (8 bytes).
#[inline]
pub unsafe fn socketpair(domain: c_int, ty: c_int, protocol: c_int, sv: *mut c_int) -> Result<c_int> {
    // SAFETY: the kernel validates `sv`; the caller allows the write.
    check(unsafe { libc::socketpair(domain, ty, protocol, sv) })
}

/// `bind(2)`.
///
/// # Safety
///
/// `addr` is only read, by the kernel.
#[inline]
pub unsafe fn bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> Result<c_int> {
    // SAFETY: the kernel validates the pointer and length.
    check(unsafe { libc::bind(fd, addr, len) })
}

/// `listen(2)`.
#[inline]
pub fn listen(fd: c_int, backlog: c_int) -> Result<c_int> {
    // SAFETY: plain integers.
    check(unsafe { libc::listen(fd, backlog) })
}

/// `connect(2)`.
///
/// # Safety
///
/// `addr` is only read, by the kernel.
#[inline]
pub unsafe fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> Result<c_int> {
    // SAFETY: the kernel validates the pointer and length.
    check(unsafe { libc::connect(fd, addr, len) })
}

/// `accept4(2)`.
///
/// # Safety
///
/// `addr` and `len`, if mapped, may be written by the kernel.
#[inline]
pub unsafe fn accept4(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t, flags: c_int) -> Result<c_int> {
    // SAFETY: the kernel validates both pointers; the caller allows the writes.
    check(unsafe { libc::accept4(fd, addr, len, flags) })
}

/// `read(2)`.
///
/// # Safety
///
/// `buf`, if mapped, may be written by the kernel for `count` bytes.
#[inline]
pub unsafe fn read(fd: c_int, buf: *mut c_void, count: usize) -> Result<usize> {
    // SAFETY: the kernel validates the buffer; the caller allows the write.
    check_len(unsafe { libc::read(fd, buf, count) })
}

/// `write(2)`.
///
/// # Safety
///
/// `buf` is only read, by the kernel.
#[inline]
pub unsafe fn write(fd: c_int, buf: *const c_void, count: usize) -> Result<usize> {
    // SAFETY: the kernel validates the buffer.
    check_len(unsafe { libc::write(fd, buf, count) })
}

/// `recv(2)`.
///
/// # Safety
///
/// As [`read`].
#[inline]
pub unsafe fn recv(fd: c_int, buf: *mut c_void, len: usize, flags: c_int) -> Result<usize> {
    // SAFETY: the kernel validates the buffer; the caller allows the write.
    check_len(unsafe { libc::recv(fd, buf, len, flags) })
}

/// `send(2)`.
///
/// # Safety
///
/// As [`write`].
#[inline]
pub unsafe fn send(fd: c_int, buf: *const c_void, len: usize, flags: c_int) -> Result<usize> {
    // SAFETY: the kernel validates the buffer.
    check_len(unsafe { libc::send(fd, buf, len, flags) })
}

/// `readv(2)`.
///
/// # Safety
///
/// The array is read and every buffer it names may be written, by the kernel.
#[inline]
pub unsafe fn readv(fd: c_int, iov: *const iovec, count: c_int) -> Result<usize> {
    // SAFETY: the kernel validates the array and the buffers.
    check_len(unsafe { libc::readv(fd, iov, count) })
}

/// `writev(2)`.
///
/// # Safety
///
/// The array and the buffers are only read, by the kernel.
#[inline]
pub unsafe fn writev(fd: c_int, iov: *const iovec, count: c_int) -> Result<usize> {
    // SAFETY: the kernel validates the array and the buffers.
    check_len(unsafe { libc::writev(fd, iov, count) })
}

/// `pwritev2(2)`.
///
/// # Safety
///
/// The array and the buffers are only read, by the kernel.
#[inline]
pub unsafe fn pwritev2(fd: c_int, iov: *const iovec, count: c_int, offset: libc::off_t, flags: c_int) -> Result<usize> {
    // SAFETY: the kernel validates the array and the buffers.
    check_len(unsafe { libc::pwritev2(fd, iov, count, offset, flags) })
}

/// Raises SIGPIPE on the calling thread, as the kernel does for a write to a
/// pipe without a reader.
pub fn raise_sigpipe_on_this_thread() {
    let saved = Errno::last();
    // SAFETY: tgkill with our own process and thread ids and a valid signal.
    unsafe { libc::tgkill(libc::getpid(), libc::gettid(), libc::SIGPIPE) };
    saved.set();
}

/// `recvmsg(2)`.
///
/// # Safety
///
/// The header and everything it points to may be written by the kernel.
#[inline]
pub unsafe fn recvmsg(fd: c_int, msg: *mut msghdr, flags: c_int) -> Result<usize> {
    // SAFETY: the kernel validates the header and its buffers.
    check_len(unsafe { libc::recvmsg(fd, msg, flags) })
}

/// `sendmsg(2)`.
///
/// # Safety
///
/// The header and everything it points to are only read, by the kernel.
#[inline]
pub unsafe fn sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> Result<usize> {
    // SAFETY: the kernel validates the header and its buffers.
    check_len(unsafe { libc::sendmsg(fd, msg, flags) })
}

/// `recvfrom(2)`.
///
/// # Safety
///
/// As [`read`], and `addr`/`len` may be written.
#[inline]
pub unsafe fn recvfrom(
    fd: c_int,
    buf: *mut c_void,
    len: usize,
    flags: c_int,
    addr: *mut sockaddr,
    addrlen: *mut socklen_t,
) -> Result<usize> {
    // SAFETY: the kernel validates every pointer; the caller allows the writes.
    check_len(unsafe { libc::recvfrom(fd, buf, len, flags, addr, addrlen) })
}

/// `sendto(2)`.
///
/// # Safety
///
/// The buffer and the address are only read, by the kernel.
#[inline]
pub unsafe fn sendto(
    fd: c_int,
    buf: *const c_void,
    len: usize,
    flags: c_int,
    addr: *const sockaddr,
    addrlen: socklen_t,
) -> Result<usize> {
    // SAFETY: the kernel validates every pointer.
    check_len(unsafe { libc::sendto(fd, buf, len, flags, addr, addrlen) })
}

/// `shutdown(2)`.
#[inline]
pub fn shutdown(fd: c_int, how: c_int) -> Result<c_int> {
    // SAFETY: plain integers.
    check(unsafe { libc::shutdown(fd, how) })
}

/// `close(2)`.
#[inline]
pub fn close(fd: c_int) -> Result<c_int> {
    // SAFETY: plain integer; which descriptor may be closed is the caller's decision.
    check(unsafe { libc::close(fd) })
}

/// `getsockname(2)`.
///
/// # Safety
///
/// `addr` and `len`, if mapped, may be written by the kernel.
#[inline]
pub unsafe fn getsockname(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> Result<c_int> {
    // SAFETY: the kernel validates both pointers.
    check(unsafe { libc::getsockname(fd, addr, len) })
}

/// `getpeername(2)`.
///
/// # Safety
///
/// As [`getsockname`].
#[inline]
pub unsafe fn getpeername(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> Result<c_int> {
    // SAFETY: the kernel validates both pointers.
    check(unsafe { libc::getpeername(fd, addr, len) })
}

/// `getsockopt(2)`.
///
/// # Safety
///
/// `value` and `len`, if mapped, may be written by the kernel.
#[inline]
pub unsafe fn getsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    value: *mut c_void,
    len: *mut socklen_t,
) -> Result<c_int> {
    // SAFETY: the kernel validates both pointers.
    check(unsafe { libc::getsockopt(fd, level, name, value, len) })
}

/// `setsockopt(2)`.
///
/// # Safety
///
/// `value` is only read, by the kernel.
#[inline]
pub unsafe fn setsockopt(fd: c_int, level: c_int, name: c_int, value: *const c_void, len: socklen_t) -> Result<c_int> {
    // SAFETY: the kernel validates the pointer.
    check(unsafe { libc::setsockopt(fd, level, name, value, len) })
}

/// Reads an `int`-sized socket option into a local (used for `SO_TYPE`, `SO_ERROR` ...).
pub fn getsockopt_int(fd: c_int, level: c_int, name: c_int) -> Result<c_int> {
    let mut value: c_int = 0;
    let mut len = size_of::<c_int>() as socklen_t;
    // SAFETY: both pointers refer to locals of the sizes given.
    unsafe { getsockopt(fd, level, name, (&raw mut value).cast(), &mut len) }?;
    Ok(value)
}

/// Sets an `int`-sized socket option.
pub fn setsockopt_int(fd: c_int, level: c_int, name: c_int, value: c_int) -> Result<c_int> {
    // SAFETY: the pointer refers to a local of the size given.
    unsafe {
        setsockopt(
            fd,
            level,
            name,
            (&raw const value).cast(),
            size_of::<c_int>() as socklen_t,
        )
    }
}

/// Runs `write` with SIGPIPE blocked on this thread and swallows a SIGPIPE it
/// raised, so a write to a closed socket returns `EPIPE` without a signal.
/// Costs extra system calls, so it serves only the rare calls `send` cannot
/// mirror exactly (counts beyond what one transfer can move).
pub fn without_sigpipe(write: impl FnOnce() -> Result<usize>) -> Result<usize> {
    // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialise it.
    let mut pipe_only: libc::sigset_t = unsafe { core::mem::zeroed() };
    // SAFETY: as above.
    let mut saved: libc::sigset_t = unsafe { core::mem::zeroed() };
    // SAFETY: as above.
    let mut pending: libc::sigset_t = unsafe { core::mem::zeroed() };
    // SAFETY: all pointers refer to the locals above.
    let pending_before = unsafe {
        libc::sigemptyset(&mut pipe_only);
        libc::sigaddset(&mut pipe_only, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &pipe_only, &mut saved);
        libc::sigpending(&mut pending);
        libc::sigismember(&pending, libc::SIGPIPE) == 1
    };
    let result = write();
    if result == Err(Errno(libc::EPIPE)) && !pending_before {
        let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: all pointers refer to locals; a NULL siginfo is allowed.
        unsafe { libc::sigtimedwait(&pipe_only, core::ptr::null_mut(), &zero) };
    }
    // SAFETY: restores the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &saved, core::ptr::null_mut()) };
    result
}
