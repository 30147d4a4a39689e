//! The helpers: listening, connecting with a deadline, whole transfers,
//! address text, ports and TCP states.

use core::ffi::{c_char, c_int, c_void};

use libc::{sockaddr, sockaddr_storage, socklen_t, ssize_t};

use super::{Reported, boundary, contained};
use crate::call::{AddrArg, Call, CallName, Captured, Detail, TextCopy};
use crate::chores;
use crate::mem::{UserIn, UserOut};
use crate::socket::Fd;
use crate::tcp;

/// TCP state: connection open, data flows both ways.
pub const SS_TCP_ESTABLISHED: c_int = 1;
/// TCP state: connect sent SYN, waiting for SYN+ACK.
pub const SS_TCP_SYN_SENT: c_int = 2;
/// TCP state: a listener got SYN and answered SYN+ACK.
pub const SS_TCP_SYN_RECV: c_int = 3;
/// TCP state: this side closed first and sent FIN; waiting for its ACK.
pub const SS_TCP_FIN_WAIT1: c_int = 4;
/// TCP state: this side's FIN was acknowledged; waiting for the peer's FIN.
pub const SS_TCP_FIN_WAIT2: c_int = 5;
/// TCP state: both FINs done; the side that closed first waits 2*MSL.
pub const SS_TCP_TIME_WAIT: c_int = 6;
/// TCP state: no connection.
pub const SS_TCP_CLOSE: c_int = 7;
/// TCP state: the peer sent FIN (read returns 0); this side has not closed yet.
pub const SS_TCP_CLOSE_WAIT: c_int = 8;
/// TCP state: this side closed after the peer; waiting for the last ACK.
pub const SS_TCP_LAST_ACK: c_int = 9;
/// TCP state: a listening socket.
pub const SS_TCP_LISTEN: c_int = 10;
/// TCP state: both sides sent FIN at the same time.
pub const SS_TCP_CLOSING: c_int = 11;

/// Reads the address text at `ptr` and describes it for messages.
fn text_arg(ptr: *const c_char) -> (Result<Vec<u8>, Reported>, impl FnOnce(&mut Captured) -> Detail) {
    let text = chores::read_text(ptr);
    let shown = match &text {
        _ if ptr.is_null() => TextCopy::new(None),
        Ok(t) => TextCopy::new(Some(t)),
        Err(_) => match chores::text_start(ptr) {
            Some(start) => TextCopy::new(Some(&start)),
            None => TextCopy::new(Some(b"<unreadable text>")),
        },
    };
    let detail = move |captured: &mut Captured| {
        *captured = Captured::Text(shown);
        Detail::Text
    };
    (text, detail)
}

/// Opens a TCP socket listening on `addr` with `SO_REUSEADDR` set.
///
/// `addr` is `"IPv4:PORT"` (`"127.0.0.1:8080"`, `"0.0.0.0:80"`), `"[IPv6]:PORT"`
/// (`"[::1]:0"`; `"[::]:PORT"` also accepts IPv4 as the system default allows)
/// or `"HOST:PORT"` (`"localhost:0"`, resolved with `getaddrinfo`, each result
/// tried in order, the last error reported). Port 0 lets the system pick one;
/// `ss_local_port` tells which. `backlog` is passed to `listen`.
///
/// Returns the listening descriptor (close-on-exec), or -1 with `errno`:
/// `EINVAL` for malformed text, NULL, or text over 1024 bytes (the message
/// quotes the text and the expected form); `ENOENT` for a host name that does not resolve (`EAGAIN`
/// when the resolver failed temporarily), with the resolver's text in the
/// message; `EFAULT` for unreadable text; otherwise what socket/bind/listen said.
///
/// # Safety
///
/// `addr` is read through the kernel; any value is allowed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ss_tcp_listen(addr: *const c_char, backlog: c_int) -> c_int {
    let (text, detail) = text_arg(addr);
    boundary(
        -1,
        || chores::tcp_listen(&text.clone()?, backlog),
        move |captured| Call::no_fd(CallName::TcpListen, detail(captured)),
    )
}

/// Connects a TCP socket to `addr` (forms as `ss_tcp_listen`), giving up after
/// `timeout_ms` milliseconds (`< 0`: wait as long as the system does; `0`:
/// only if the connection completes at once). Each resolved address is tried
/// in order until one connects or the deadline passes; a signal during the
/// wait resumes it for the time that is left.
///
/// Returns a connected, blocking, close-on-exec descriptor, or -1 with
/// `errno`: `ETIMEDOUT` when the deadline passed, otherwise the real reason
/// (`ECONNREFUSED`, `ENETUNREACH` ...) of the last address tried, and the
/// text errors of `ss_tcp_listen`.
///
/// # Safety
///
/// `addr` is read through the kernel; any value is allowed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ss_tcp_connect(addr: *const c_char, timeout_ms: c_int) -> c_int {
    let (text, detail) = text_arg(addr);
    boundary(
        -1,
        || chores::tcp_connect(&text.clone()?, timeout_ms),
        move |captured| Call::no_fd(CallName::TcpConnect, detail(captured)),
    )
}

/// Opens a UDP socket bound to `addr` (forms as `ss_tcp_listen`; no
/// `SO_REUSEADDR`). Returns the descriptor or -1 with `errno` as `ss_tcp_listen`.
///
/// # Safety
///
/// `addr` is read through the kernel; any value is allowed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ss_udp_bind(addr: *const c_char) -> c_int {
    let (text, detail) = text_arg(addr);
    boundary(
        -1,
        || chores::udp_bind(&text.clone()?),
        move |captured| Call::no_fd(CallName::UdpBind, detail(captured)),
    )
}

/// Writes all `len` bytes of `buf`, looping over short writes and `EINTR`
/// (never SIGPIPE). Works on any descriptor `ss_write` accepts.
///
/// Returns `len`, or -1 with `errno` if a write fails; `ss_transferred()` then
/// tells how many bytes were written before the error (on a non-blocking
/// descriptor, `EAGAIN` with the count so far: wait for writability and call
/// again with the rest of the buffer).
///
/// # Safety
///
/// `buf` is handed to the kernel unread; any value is allowed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ss_send_all(fd: c_int, buf: *const c_void, len: usize) -> ssize_t {
    // SAFETY: the kernel checks the buffer before reading it.
    let from = unsafe { UserIn::from_c(buf, len) };
    boundary(
        fd,
        || chores::send_all(Fd(fd), from),
        move |_| Call::on(CallName::SendAll, fd, Detail::Count(len)),
    )
}

/// Reads until `len` bytes arrived or the stream ended, looping over short
/// reads and `EINTR`.
///
/// Returns `len`, or fewer only at end of stream (the number that arrived),
/// or -1 with `errno` if a read fails; `ss_transferred()` then tells how many
/// bytes arrived in `buf` before the error (`EAGAIN` on a non-blocking
/// descriptor: wait and call again for the rest).
///
/// # Safety
///
/// `buf` is handed to the kernel, which writes into it; any value is allowed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ss_recv_exact(fd: c_int, buf: *mut c_void, len: usize) -> ssize_t {
    // SAFETY: the kernel checks the buffer before writing it.
    let into = unsafe { UserOut::from_c(buf, len) };
    boundary(
        fd,
        || chores::recv_exact(Fd(fd), into),
        move |_| Call::on(CallName::RecvExact, fd, Detail::Count(len)),
    )
}

/// Bytes the last `ss_send_all` or `ss_recv_exact` on this thread moved,
/// whether it succeeded or failed part way.
#[unsafe(no_mangle)]
pub extern "C" fn ss_transferred() -> usize {
    contained(0, chores::transferred)
}

/// Parses numeric address text (no name resolution): `"127.0.0.1:8080"`,
/// `"[::1]:8080"`, `"[fe80::1%lo]:80"`, `"[::ffff:1.2.3.4]:80"`,
/// `"unix:/path"`, `"unix:@abstract"` (in unix names `\\` is a backslash and
/// `\xNN` any byte).
///
/// Fills all of `*out` (zeroes after the address) and, if `outlen` is not
/// NULL, `*outlen` with the address length. Returns 0, or -1 with `EINVAL`
/// (the message says what form is expected) or `EFAULT` for bad pointers.
///
/// # Safety
///
/// All pointers are accessed through the kernel; any value is allowed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ss_addr_parse(
    text: *const c_char,
    out: *mut sockaddr_storage,
    outlen: *mut socklen_t,
) -> c_int {
    let (input, detail) = text_arg(text);
    boundary(
        -1,
        || chores::addr_parse(&input.clone()?, out, outlen),
        move |captured| Call::no_fd(CallName::AddrParse, detail(captured)),
    )
}

/// Writes `addr` as text into `buf`: `127.0.0.1:8080`, `[::1]:8080`,
/// `[fe80::1%lo]:80`, `unix:/path`, `unix:@name`, `unix:` (unnamed): the
/// exact inverse of `ss_addr_parse`. Always NUL-terminated.
///
/// Returns the text length (without the NUL), or -1 with `errno`: `ENOSPC`
/// if `buflen` is too small (`buf` then holds `""`), `EAFNOSUPPORT` for a
/// family it cannot print, `EINVAL` for an `addrlen` that does not fit the
/// family, `EFAULT` for bad pointers.
///
/// # Safety
///
/// All pointers are accessed through the kernel; any value is allowed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ss_addr_format(
    addr: *const sockaddr,
    addrlen: socklen_t,
    buf: *mut c_char,
    buflen: usize,
) -> c_int {
    boundary(
        -1,
        || chores::addr_format(addr, addrlen, buf, buflen),
        move |_| {
            Call::no_fd(
                CallName::AddrFormat,
                Detail::Format(AddrArg::raw(addr, addrlen), buflen),
            )
        },
    )
}

/// The local port of an IPv4/IPv6 socket (the system's pick after binding
/// port 0 or connecting), or -1 with `errno` (`EAFNOSUPPORT` for other families).
#[unsafe(no_mangle)]
pub extern "C" fn ss_local_port(fd: c_int) -> c_int {
    boundary(
        fd,
        || chores::local_port(Fd(fd)),
        move |_| Call::on(CallName::LocalPort, fd, Detail::None),
    )
}

/// The TCP state of `fd` (`SS_TCP_ESTABLISHED` ...), read from `TCP_INFO`;
/// -1 with `errno` if it is not a TCP socket (`EOPNOTSUPP`/`ENOPROTOOPT`),
/// not a socket (`ENOTSOCK`) or not open (`EBADF`).
#[unsafe(no_mangle)]
pub extern "C" fn ss_tcp_state(fd: c_int) -> c_int {
    boundary(
        fd,
        || chores::tcp_state(Fd(fd)),
        move |_| Call::on(CallName::TcpState, fd, Detail::None),
    )
}

/// The name of a TCP state: `"ESTABLISHED"`, `"TIME_WAIT"` ...; `"UNKNOWN"`
/// for any other value. The string is static.
#[unsafe(no_mangle)]
pub extern "C" fn ss_tcp_state_name(state: c_int) -> *const c_char {
    contained(c"UNKNOWN".as_ptr(), || tcp::state_name(state).as_ptr())
}
