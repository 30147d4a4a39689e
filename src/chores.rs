//! The helpers of API section 3: the chores every socket program gets wrong,
//! built on the inner layer ([`crate::socket`]) so they keep its safety
//! defaults (close-on-exec, no SIGPIPE).
//!
//! Helpers read caller memory themselves (address text, addresses to format)
//! only through the kernel ([`crate::mem::copy_from_caller`]), so a bad pointer
//! is `EFAULT`, never a fault.

use core::cell::Cell;
use core::ffi::{c_char, c_int, c_void};
use std::time::{Duration, Instant};

use libc::{sockaddr, socklen_t};

use crate::addr::{self, AddrCopy, STORAGE_LEN};
use crate::call::Context;
use crate::error::{Errno, Result};
use crate::ffi::Reported;
use crate::fmtbuf::FixedBuf;
use crate::mem::{self, UserAddr, UserIn, UserOut};
use crate::resolve;
use crate::socket::{self, Fd, Marking};
use crate::{fdtable, sys, tcp};

thread_local! {
    static TRANSFERRED: Cell<usize> = const { Cell::new(0) };
}

/// Bytes the last `ss_send_all`/`ss_recv_exact` on this thread moved, also
/// when it failed part way.
pub fn transferred() -> usize {
    TRANSFERRED.with(Cell::get)
}

fn set_transferred(n: usize) {
    TRANSFERRED.with(|t| t.set(n));
}

/// Reads a helper's address text from caller memory: `EINVAL` for NULL or a
/// text longer than any address, `EFAULT` for unreadable memory.
pub fn read_text(ptr: *const c_char) -> core::result::Result<Vec<u8>, Reported> {
    match mem::read_caller_str(ptr, resolve::MAX_TEXT) {
        Ok(Some(text)) => Ok(text),
        Ok(None) => Err(resolve::parse_failure(addr::ParseError::Form)),
        Err(Errno(libc::ENAMETOOLONG)) => Err(resolve::parse_failure(addr::ParseError::TooLong)),
        Err(e) => Err(e.into()),
    }
}

/// The first bytes of the text at `ptr`, for quoting in a message when the
/// whole text could not be taken (too long); `None` if unreadable.
pub fn text_start(ptr: *const c_char) -> Option<Vec<u8>> {
    let mut start = vec![0u8; crate::call::TEXT_CAPACITY + 1];
    let n = mem::copy_from_caller(ptr.cast(), &mut start).ok()?;
    start.truncate(n);
    Some(start)
}

/// Closes a descriptor safesock made and never handed out.
fn discard(fd: Fd) {
    let _ = sys::close(fd.0);
    fdtable::released(fd.0);
}

/// Runs `setup` on a fresh socket for `a`; on failure the socket is discarded.
fn socket_for(a: &AddrCopy, ty: c_int, setup: impl FnOnce(Fd) -> Result<()>) -> Result<Fd> {
    let family = a.family().unwrap_or(libc::AF_UNSPEC);
    let fd = socket::socket(family, ty, 0)?;
    match setup(fd) {
        Ok(()) => Ok(fd),
        Err(e) => {
            discard(fd);
            Err(e)
        }
    }
}

/// Tries `attempt` on each address in order; the first success wins, else the last error.
fn first_that_works(
    addrs: &[AddrCopy],
    mut attempt: impl FnMut(&AddrCopy) -> Result<Fd>,
) -> core::result::Result<Fd, Reported> {
    let mut last = Errno(libc::EADDRNOTAVAIL);
    for a in addrs {
        match attempt(a) {
            Ok(fd) => return Ok(fd),
            Err(e) => last = e,
        }
    }
    Err(last.into())
}

/// A listening TCP socket on `text` with `SO_REUSEADDR`.
pub fn tcp_listen(text: &[u8], backlog: c_int) -> core::result::Result<Fd, Reported> {
    let addrs = resolve::resolve(text, libc::SOCK_STREAM)?;
    first_that_works(&addrs, |a| {
        socket_for(a, libc::SOCK_STREAM, |fd| {
            sys::setsockopt_int(fd.0, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
            socket::bind(fd, UserAddr::from_copy(a))?;
            socket::listen(fd, backlog).map(drop)
        })
    })
}

/// A UDP socket bound to `text`.
pub fn udp_bind(text: &[u8]) -> core::result::Result<Fd, Reported> {
    let addrs = resolve::resolve(text, libc::SOCK_DGRAM)?;
    first_that_works(&addrs, |a| {
        socket_for(a, libc::SOCK_DGRAM, |fd| {
            socket::bind(fd, UserAddr::from_copy(a)).map(drop)
        })
    })
}

/// A TCP connection to `text`, within `timeout_ms` (< 0: as long as the system waits).
pub fn tcp_connect(text: &[u8], timeout_ms: c_int) -> core::result::Result<Fd, Reported> {
    let addrs = resolve::resolve(text, libc::SOCK_STREAM)?;
    let deadline = u64::try_from(timeout_ms)
        .ok()
        .map(|ms| Instant::now() + Duration::from_millis(ms));
    let mut last = Errno(libc::EADDRNOTAVAIL);
    for a in &addrs {
        match socket_for(a, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, |fd| {
            connect_by(fd, a, deadline)
        }) {
            Ok(fd) => return Ok(fd),
            Err(e) if e.0 == libc::ETIMEDOUT && deadline.is_some_and(|d| Instant::now() >= d) => {
                return Err(e.into());
            }
            Err(e) => last = e,
        }
    }
    Err(last.into())
}

/// Connects the non-blocking `fd` to `a` before `deadline`, then makes it blocking.
fn connect_by(fd: Fd, a: &AddrCopy, deadline: Option<Instant>) -> Result<()> {
    match socket::connect(fd, UserAddr::from_copy(a)) {
        Ok(_) => return set_blocking(fd),
        Err(Errno(libc::EINPROGRESS)) => {}
        Err(e) => return Err(e),
    }
    loop {
        let wait_ms = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                // Round up so a wait never ends just before the deadline.
                c_int::try_from(left.as_micros().div_ceil(1000)).unwrap_or(c_int::MAX)
            }
        };
        let mut pfd = libc::pollfd {
            fd: fd.0,
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: one pollfd, a local.
        match unsafe { libc::poll(&mut pfd, 1, wait_ms) } {
            0 => return Err(Errno(libc::ETIMEDOUT)),
            n if n < 0 => match Errno::last() {
                // A signal: wait again, for the time that is left.
                Errno(libc::EINTR) => continue,
                e => return Err(e),
            },
            _ => {
                return match sys::getsockopt_int(fd.0, libc::SOL_SOCKET, libc::SO_ERROR)? {
                    0 => set_blocking(fd),
                    e => Err(Errno(e)),
                };
            }
        }
    }
}

fn set_blocking(fd: Fd) -> Result<()> {
    // SAFETY: fcntl with integer arguments only.
    let flags = unsafe { libc::fcntl(fd.0, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd.0, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Writes all of `buf`, looping over short writes and `EINTR`.
pub fn send_all(fd: Fd, buf: UserIn<'_>) -> core::result::Result<usize, Reported> {
    let mut done = 0;
    set_transferred(0);
    loop {
        match socket::write(fd, buf.skip(done), Marking::Never) {
            Ok(n) => {
                done += n;
                set_transferred(done);
                if done >= buf.len() {
                    return Ok(done);
                }
                if n == 0 {
                    return Err(partial(Errno(libc::EIO), done));
                }
            }
            Err(Errno(libc::EINTR)) => {}
            Err(e) => return Err(partial(e, done)),
        }
    }
}

/// Reads exactly `buf.len()` bytes, or fewer only at end of stream.
pub fn recv_exact(fd: Fd, mut buf: UserOut<'_>) -> core::result::Result<usize, Reported> {
    let want = buf.len();
    let mut done = 0;
    set_transferred(0);
    loop {
        match socket::read(fd, buf.skip(done)) {
            Ok(0) => return Ok(done),
            Ok(n) => {
                done += n;
                set_transferred(done);
                if done >= want {
                    return Ok(done);
                }
            }
            Err(Errno(libc::EINTR)) => {}
            Err(e) => return Err(partial(e, done)),
        }
    }
}

fn partial(errno: Errno, done: usize) -> Reported {
    Reported {
        errno,
        context: if done > 0 {
            Context::Partial(done)
        } else {
            Context::None
        },
    }
}

/// The local port of `fd`.
pub fn local_port(fd: Fd) -> Result<c_int> {
    // SAFETY: sockaddr_storage is plain data.
    let mut storage: libc::sockaddr_storage = unsafe { core::mem::zeroed() };
    let mut len = STORAGE_LEN as socklen_t;
    // SAFETY: both pointers refer to locals of the sizes given.
    unsafe { sys::getsockname(fd.0, (&raw mut storage).cast(), &mut len) }?;
    // SAFETY: the kernel filled `len` bytes of the local storage.
    let copy = unsafe { AddrCopy::read((&raw const storage).cast(), len) };
    copy.port().map(c_int::from).ok_or(Errno(libc::EAFNOSUPPORT))
}

/// The TCP state of `fd`.
pub fn tcp_state(fd: Fd) -> Result<c_int> {
    tcp::state(fd.0)
}

/// Parses `text` (numeric forms only) into `out` and `outlen`.
pub fn addr_parse(
    text: &[u8],
    out: *mut libc::sockaddr_storage,
    outlen: *mut socklen_t,
) -> core::result::Result<(), Reported> {
    let text = core::str::from_utf8(text).map_err(|_| resolve::parse_failure(addr::ParseError::Form))?;
    let copy = addr::parse(text).map_err(resolve::parse_failure)?;
    let mut whole = [0u8; STORAGE_LEN];
    whole[..copy.bytes().len()].copy_from_slice(copy.bytes());
    mem::copy_to_caller(&whole, out.cast())?;
    if !outlen.is_null() {
        mem::copy_to_caller(&copy.len().to_ne_bytes(), outlen.cast())?;
    }
    Ok(())
}

/// Formats the address at `ptr` into `buf` with a NUL; returns the text length.
pub fn addr_format(
    ptr: *const sockaddr,
    addrlen: socklen_t,
    buf: *mut c_char,
    buflen: usize,
) -> core::result::Result<c_int, Reported> {
    if addrlen as usize > STORAGE_LEN {
        return Err(Errno(libc::EINVAL).into());
    }
    let mut bytes = [0u8; STORAGE_LEN];
    let keep = addrlen as usize;
    if mem::copy_from_caller(ptr.cast(), &mut bytes[..keep])? != keep {
        return Err(Errno(libc::EFAULT).into());
    }
    let copy = AddrCopy::from_bytes(&bytes[..keep]);
    let decoded = addr::decode_for_format(&copy)?;
    let mut text = FixedBuf::<{ 2 * STORAGE_LEN * 4 }>::new();
    addr::write_decoded(&mut text, &decoded).map_err(|_| Errno(libc::EAFNOSUPPORT))?;
    let with_nul = text.as_bytes_with_nul();
    if with_nul.len() > buflen {
        // Leave an empty string behind rather than a cut one.
        if buflen > 0 {
            mem::copy_to_caller(b"\0", buf.cast())?;
        }
        return Err(Errno(libc::ENOSPC).into());
    }
    mem::copy_to_caller(with_nul, buf.cast::<c_void>())?;
    Ok((with_nul.len() - 1) as c_int)
}
