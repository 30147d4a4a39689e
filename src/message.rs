//! The text of a failure: the call with its decoded arguments, the system's
//! description, the errno name and, where safesock can tell, why it happened
//! and what to do. Built only when `ss_last_error` asks.
//!
//! ```text
//! ss_connect(fd 3, 127.0.0.1:9): Connection refused (ECONNREFUSED): nothing listens on 127.0.0.1:9; ...
//! ```

use core::ffi::c_int;
use core::fmt::{self, Write};

use crate::addr::{self, Decoded};
use crate::call::{AddrArg, Call, CallName, Captured, Context, Detail, Failure};
use crate::error::Errno;

/// Writes the whole message for `failure`.
pub fn write_message(out: &mut dyn Write, failure: &Failure) {
    let _ = write_message_inner(out, failure);
}

fn write_message_inner(out: &mut dyn Write, failure: &Failure) -> fmt::Result {
    if let Context::Note(note) = failure.context
        && note.starts_with("internal error")
    {
        out.write_str(note)?;
        out.write_str(" in ")?;
        return write_call_bounded(out, &failure.call, &failure.captured);
    }
    write_call_bounded(out, &failure.call, &failure.captured)?;
    write_errno(out, failure.errno)?;
    match failure.context {
        Context::Note(note) => write!(out, ": {note}"),
        Context::Parse(why) => write!(out, ": {}", why.explain()),
        Context::Resolver(text) => write!(out, ": the host name did not resolve: {text}"),
        Context::Partial(done) => {
            write_hint(out, failure)?;
            write!(
                out,
                "; {done} bytes were moved before this error (ss_transferred() returns the count)"
            )
        }
        _ => write_hint(out, failure),
    }
}

/// `: Connection refused (ECONNREFUSED)`.
pub fn write_errno(out: &mut dyn Write, errno: Errno) -> fmt::Result {
    let mut text = [0u8; 128];
    let name = errno.name().to_str().unwrap_or("E?");
    write!(out, ": {} ({name})", errno.describe(&mut text))
}

/// Room for the call and its decoded arguments, so that what follows (the
/// system's text and the errno name) always fits in a message or trace line.
const CALL_CAPACITY: usize = 320;

/// [`write_call`], cut with `...` to [`CALL_CAPACITY`] bytes.
pub fn write_call_bounded(out: &mut dyn Write, call: &Call, captured: &Captured) -> fmt::Result {
    let mut text = crate::fmtbuf::FixedBuf::<CALL_CAPACITY>::new();
    let _ = write_call(&mut text, call, captured);
    out.write_str(text.as_str())
}

/// `ss_connect(fd 3, 127.0.0.1:9)`: the address (or a helper's text) from
/// `captured` when it was read, otherwise the pointer and length.
pub fn write_call(out: &mut dyn Write, call: &Call, captured: &Captured) -> fmt::Result {
    out.write_str(call.name.as_str())?;
    out.write_char('(')?;
    let mut sep = "";
    if call.fd >= 0 || takes_fd(call.name) {
        write!(out, "fd {}", call.fd)?;
        sep = ", ";
    }
    match &call.detail {
        Detail::None | Detail::Closing(_) => {}
        Detail::Create { domain, ty, protocol } => {
            out.write_str(sep)?;
            addr::write_family(out, *domain)?;
            out.write_str(", ")?;
            write_socket_type(out, *ty)?;
            write!(out, ", {protocol}")?;
        }
        Detail::Addr(a) => {
            out.write_str(sep)?;
            write_addr(out, a, captured)?;
        }
        Detail::Backlog(b) => write!(out, "{sep}backlog {b}")?,
        Detail::Flags(f) => write!(out, "{sep}flags {f:#x}")?,
        Detail::Count(n) => write!(out, "{sep}{n} {}", bytes(*n))?,
        Detail::CountFlags(n, f) => write!(out, "{sep}{n} {}, flags {f:#x}", bytes(*n))?,
        Detail::SendTo(n, f, a) => {
            write!(out, "{sep}{n} {}, flags {f:#x}, ", bytes(*n))?;
            write_addr(out, a, captured)?;
        }
        Detail::Iov(n) => write!(out, "{sep}{n} buffers")?,
        Detail::How(h) => {
            out.write_str(sep)?;
            match *h {
                libc::SHUT_RD => out.write_str("SHUT_RD")?,
                libc::SHUT_WR => out.write_str("SHUT_WR")?,
                libc::SHUT_RDWR => out.write_str("SHUT_RDWR")?,
                other => write!(out, "how {other}")?,
            }
        }
        Detail::Opt { level, name } => {
            out.write_str(sep)?;
            write_option(out, *level, *name)?;
        }
        Detail::Text => {
            out.write_str(sep)?;
            let Captured::Text(text) = captured else {
                return out.write_str("text)");
            };
            match text.bytes() {
                None => out.write_str("NULL")?,
                Some(bytes) => {
                    out.write_char('"')?;
                    for chunk in bytes.utf8_chunks() {
                        for c in chunk.valid().chars() {
                            write!(out, "{}", c.escape_debug())?;
                        }
                        for b in chunk.invalid() {
                            write!(out, "\\x{b:02x}")?;
                        }
                    }
                    if text.is_cut() {
                        out.write_str("...")?;
                    }
                    out.write_char('"')?;
                }
            }
        }
        Detail::Format(a, room) => {
            out.write_str(sep)?;
            write_addr(out, a, captured)?;
            write!(out, ", {room} bytes of room")?;
        }
    }
    out.write_char(')')
}

fn bytes(n: usize) -> &'static str {
    if n == 1 { "byte" } else { "bytes" }
}

fn takes_fd(name: CallName) -> bool {
    !matches!(
        name,
        CallName::Socket
            | CallName::Socketpair
            | CallName::TcpListen
            | CallName::TcpConnect
            | CallName::UdpBind
            | CallName::AddrParse
            | CallName::AddrFormat
    )
}

/// An address argument: decoded when its bytes were safely copied, otherwise
/// the pointer and length as passed.
fn write_addr(out: &mut dyn Write, a: &AddrArg, captured: &Captured) -> fmt::Result {
    match captured.addr() {
        Some(copy) => write!(out, "{copy}"),
        None if a.ptr.is_null() => write!(out, "NULL, addrlen {}", a.len),
        None => write!(out, "address at {:p}, addrlen {}", a.ptr, a.len),
    }
}

fn write_socket_type(out: &mut dyn Write, ty: c_int) -> fmt::Result {
    match ty & 0xf {
        libc::SOCK_STREAM => out.write_str("SOCK_STREAM")?,
        libc::SOCK_DGRAM => out.write_str("SOCK_DGRAM")?,
        libc::SOCK_RAW => out.write_str("SOCK_RAW")?,
        libc::SOCK_SEQPACKET => out.write_str("SOCK_SEQPACKET")?,
        other => write!(out, "type {other}")?,
    }
    if ty & libc::SOCK_NONBLOCK != 0 {
        out.write_str("|SOCK_NONBLOCK")?;
    }
    if ty & libc::SOCK_CLOEXEC != 0 {
        out.write_str("|SOCK_CLOEXEC")?;
    }
    let rest = ty & !0xf & !libc::SOCK_NONBLOCK & !libc::SOCK_CLOEXEC;
    if rest != 0 {
        write!(out, "|{rest:#x}")?;
    }
    Ok(())
}

fn write_option(out: &mut dyn Write, level: c_int, name: c_int) -> fmt::Result {
    let (level_name, option_name) = match level {
        libc::SOL_SOCKET => (
            "SOL_SOCKET",
            match name {
                libc::SO_REUSEADDR => "SO_REUSEADDR",
                libc::SO_REUSEPORT => "SO_REUSEPORT",
                libc::SO_KEEPALIVE => "SO_KEEPALIVE",
                libc::SO_RCVBUF => "SO_RCVBUF",
                libc::SO_SNDBUF => "SO_SNDBUF",
                libc::SO_ERROR => "SO_ERROR",
                libc::SO_TYPE => "SO_TYPE",
                libc::SO_LINGER => "SO_LINGER",
                libc::SO_RCVTIMEO => "SO_RCVTIMEO",
                libc::SO_SNDTIMEO => "SO_SNDTIMEO",
                libc::SO_BROADCAST => "SO_BROADCAST",
                libc::SO_ACCEPTCONN => "SO_ACCEPTCONN",
                _ => "",
            },
        ),
        libc::IPPROTO_TCP => (
            "IPPROTO_TCP",
            match name {
                libc::TCP_NODELAY => "TCP_NODELAY",
                libc::TCP_INFO => "TCP_INFO",
                libc::TCP_KEEPIDLE => "TCP_KEEPIDLE",
                libc::TCP_KEEPINTVL => "TCP_KEEPINTVL",
                libc::TCP_KEEPCNT => "TCP_KEEPCNT",
                libc::TCP_MAXSEG => "TCP_MAXSEG",
                _ => "",
            },
        ),
        libc::IPPROTO_IPV6 => (
            "IPPROTO_IPV6",
            if name == libc::IPV6_V6ONLY { "IPV6_V6ONLY" } else { "" },
        ),
        libc::IPPROTO_IP => ("IPPROTO_IP", if name == libc::IP_TTL { "IP_TTL" } else { "" }),
        _ => ("", ""),
    };
    if level_name.is_empty() {
        write!(out, "level {level}")?;
    } else {
        out.write_str(level_name)?;
    }
    if option_name.is_empty() {
        write!(out, ", option {name}")
    } else {
        write!(out, ", {option_name}")
    }
}

/// The address of the call, when it was decoded (or is numeric text) and is an IP address.
fn inet_addr(failure: &Failure) -> Option<std::net::SocketAddr> {
    let copy = match &failure.captured {
        Captured::Text(text) => addr::parse(core::str::from_utf8(text.bytes()?).ok()?).ok()?,
        Captured::Addr(copy) => *copy,
        Captured::Nothing => return None,
    };
    match copy.decode() {
        Decoded::Inet(a) => Some(a),
        _ => None,
    }
}

/// `: <why and what to do>` where safesock can tell.
fn write_hint(out: &mut dyn Write, failure: &Failure) -> fmt::Result {
    let call = &failure.call;
    let fd = call.fd;
    let name = call.name;
    match failure.errno.0 {
        libc::EBADF if failure.context == Context::ClosedBySafesock => {
            write!(out, ": fd {fd} was already closed by ss_close")?;
            if name == CallName::Close {
                out.write_str(
                    "; nothing was closed. If this number now belongs to a file, pipe or socket \
                     opened without safesock (open, pipe, dup, socket), close that one with close()",
                )?;
            }
            Ok(())
        }
        libc::EBADF if fd < 0 && takes_fd(name) => write!(out, ": {fd} is not a descriptor number"),
        libc::EBADF => write!(out, ": fd {fd} is not an open descriptor (or not open for this use)"),
        libc::ENOTSOCK => write!(out, ": fd {fd} is open but is not a socket"),
        libc::ECONNREFUSED => match inet_addr(failure) {
            Some(a) => write!(out, ": nothing listens on {a}; start the server first or check the address and port"),
            None => out.write_str(": nothing listens at the other end; start the server first or check the port"),
        },
        libc::EADDRINUSE => out.write_str(
            ": another socket holds this port; set SO_REUSEADDR (a restarted server) or pick another port (0 lets the system choose)",
        ),
        libc::EACCES if matches!(name, CallName::Bind | CallName::TcpListen | CallName::UdpBind) => {
            match inet_addr(failure) {
                Some(a) if a.port() != 0 && a.port() < 1024 => write!(
                    out,
                    ": ports below 1024 need privileges (root or CAP_NET_BIND_SERVICE); use port {} or above, or 0",
                    1024
                ),
                _ => out.write_str(": permission denied for this address"),
            }
        }
        libc::EACCES => out.write_str(": permission denied (for example a broadcast address without SO_BROADCAST)"),
        libc::EINVAL if matches!(name, CallName::Accept | CallName::Accept4) => {
            write!(out, ": fd {fd} is not listening; call ss_listen first")?;
            if name == CallName::Accept4 {
                out.write_str(" (or flags hold bits other than SOCK_NONBLOCK and SOCK_CLOEXEC)")?;
            }
            Ok(())
        }
        libc::EINVAL | libc::EAFNOSUPPORT if call.detail.addr().is_some() => write_addr_hint(out, failure),
        libc::EINVAL if name == CallName::Listen => {
            out.write_str(": the socket is already connected, or its type cannot listen")
        }
        libc::EINVAL if name == CallName::Socket || name == CallName::Socketpair => {
            out.write_str(": the type holds unknown flag bits, or the protocol does not fit")
        }
        libc::EINVAL if name == CallName::Shutdown => out.write_str(": how must be SHUT_RD, SHUT_WR or SHUT_RDWR"),
        libc::EINVAL if matches!(name, CallName::Readv | CallName::Writev) => {
            out.write_str(": the buffer count must be from 0 to 1024 (IOV_MAX) and the lengths must add up to at most SSIZE_MAX")
        }
        libc::EAFNOSUPPORT => out.write_str(": this address family is not supported here"),
        libc::ENOTCONN => out.write_str(
            ": the socket is not connected; call ss_connect first (or use the descriptor ss_accept returned, not the listening one)",
        ),
        libc::EPIPE => out.write_str(
            ": the peer has closed the connection or writing was shut down; stop sending and close this socket (safesock raised no SIGPIPE)",
        ),
        libc::ECONNRESET => out.write_str(
            ": the peer reset the connection (it closed with unread data, or with SO_LINGER 0); close this socket",
        ),
        libc::EMFILE => {
            let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            // SAFETY: `limit` is a local rlimit.
            if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
                write!(
                    out,
                    ": this process has all {} descriptors of its limit (RLIMIT_NOFILE) open; close the ones it no longer needs or raise the limit (ulimit -n)",
                    limit.rlim_cur
                )
            } else {
                out.write_str(": this process has reached its descriptor limit (RLIMIT_NOFILE); close descriptors or raise it")
            }
        }
        libc::ENFILE => out.write_str(": the whole system is out of descriptors; close some and retry"),
        libc::EINPROGRESS => out.write_str(
            ": the non-blocking connect has started; wait until the socket is writable (poll), then read SO_ERROR for the outcome",
        ),
        libc::EALREADY => out.write_str(": a non-blocking connect is still in progress; wait for it with poll"),
        libc::EISCONN => out.write_str(": the socket is already connected"),
        libc::ETIMEDOUT => out.write_str(
            ": the other end did not answer in time; check that the host is up and reachable, or allow a longer timeout",
        ),
        libc::EAGAIN => out.write_str(
            ": nothing can be done right now on this non-blocking socket (or its timeout expired); wait with poll and retry",
        ),
        libc::EINTR => out.write_str(
            ": a signal interrupted the call before it moved data; retry it (ss_send_all and ss_recv_exact do)",
        ),
        libc::EFAULT => out.write_str(": a pointer argument points outside the process's memory"),
        libc::EADDRNOTAVAIL => out.write_str(
            ": the address is not one of this machine's (bind), or no local port is free (connect)",
        ),
        libc::ENETUNREACH | libc::EHOSTUNREACH => out.write_str(": there is no route to that address"),
        libc::EDESTADDRREQ => out.write_str(
            ": this socket has no destination; ss_connect it first or give an address with ss_sendto",
        ),
        libc::EOPNOTSUPP if matches!(name, CallName::Listen | CallName::Accept | CallName::Accept4) => {
            out.write_str(": only stream sockets (SOCK_STREAM, SOCK_SEQPACKET) listen and accept")
        }
        libc::EPROTONOSUPPORT | libc::ESOCKTNOSUPPORT | libc::EPROTOTYPE => {
            out.write_str(": this family, type and protocol do not go together; protocol 0 picks the usual one")
        }
        libc::ENOPROTOOPT => out.write_str(": this option does not exist at this level for this socket"),
        libc::EMSGSIZE => out.write_str(": the message is too large to send in one datagram"),
        libc::ESPIPE => out.write_str(": sockets have no file position"),
        _ => Ok(()),
    }
}

fn write_addr_hint(out: &mut dyn Write, failure: &Failure) -> fmt::Result {
    let Some(a) = failure.call.detail.addr() else {
        return Ok(());
    };
    let Some(copy) = failure.captured.addr() else {
        return if a.len as usize > addr::STORAGE_LEN {
            write!(
                out,
                ": addrlen {} is larger than any address ({} bytes at most)",
                a.len,
                addr::STORAGE_LEN
            )
        } else {
            Ok(())
        };
    };
    match copy.decode() {
        Decoded::BadLength { family, len, needed } => {
            write!(out, ": addrlen {len} does not fit ")?;
            addr::write_family(out, family)?;
            write!(out, " (pass sizeof the address structure, {needed} bytes)")
        }
        Decoded::Empty { len } => write!(out, ": addrlen {len} is too short to hold any address"),
        _ if failure.errno.0 == libc::EAFNOSUPPORT => out.write_str(
            ": the address family does not match the socket's (an AF_INET socket needs a sockaddr_in, AF_INET6 a sockaddr_in6)",
        ),
        _ if failure.call.name == CallName::Bind => {
            out.write_str(": the socket is already bound, or the address does not fit the socket's family")
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::AddrCopy;
    use crate::call::TextCopy;
    use crate::fmtbuf::FixedBuf;

    fn message(call: Call, errno: c_int, context: Context) -> String {
        message_about(call, Captured::Nothing, errno, context)
    }

    fn message_about(call: Call, captured: Captured, errno: c_int, context: Context) -> String {
        let mut out = FixedBuf::<512>::new();
        write_message(
            &mut out,
            &Failure {
                call,
                errno: Errno(errno),
                context,
                captured,
            },
        );
        out.as_str().to_owned()
    }

    /// An address argument whose bytes were read, as the boundary captures them.
    fn known(copy: AddrCopy) -> (Detail, Captured) {
        (
            Detail::Addr(AddrArg::raw(copy.as_ptr(), copy.len())),
            Captured::Addr(copy),
        )
    }

    fn addr(text: &str) -> (Detail, Captured) {
        known(crate::addr::parse(text).unwrap())
    }

    fn addr_message(name: CallName, fd: c_int, text: &str, errno: c_int, context: Context) -> String {
        let (detail, captured) = addr(text);
        message_about(Call::on(name, fd, detail), captured, errno, context)
    }

    #[test]
    fn connect_refused_names_address() {
        let m = addr_message(CallName::Connect, 3, "127.0.0.1:9", libc::ECONNREFUSED, Context::None);
        assert!(
            m.starts_with(
                "ss_connect(fd 3, 127.0.0.1:9): Connection refused (ECONNREFUSED): nothing listens on 127.0.0.1:9"
            ),
            "{m}"
        );
    }

    #[test]
    fn bind_in_use_suggests_reuseaddr() {
        let m = addr_message(CallName::Bind, 3, "0.0.0.0:8080", libc::EADDRINUSE, Context::None);
        assert!(m.starts_with("ss_bind(fd 3, 0.0.0.0:8080): Address already in use (EADDRINUSE): another socket holds this port; set SO_REUSEADDR"), "{m}");
    }

    #[test]
    fn eacces_low_port_explains_privilege() {
        let m = addr_message(CallName::Bind, 3, "0.0.0.0:80", libc::EACCES, Context::None);
        assert!(m.contains("ports below 1024 need privileges"), "{m}");
        let m = addr_message(CallName::Bind, 3, "0.0.0.0:8080", libc::EACCES, Context::None);
        assert!(!m.contains("below 1024"), "{m}");
    }

    #[test]
    fn accept_without_listen() {
        let m = message(Call::on(CallName::Accept, 3, Detail::None), libc::EINVAL, Context::None);
        assert_eq!(
            m,
            "ss_accept(fd 3): Invalid argument (EINVAL): fd 3 is not listening; call ss_listen first"
        );
    }

    #[test]
    fn close_after_ss_close() {
        let m = message(
            Call::on(CallName::Close, 5, Detail::None),
            libc::EBADF,
            Context::ClosedBySafesock,
        );
        assert!(
            m.starts_with(
                "ss_close(fd 5): Bad file descriptor (EBADF): fd 5 was already closed by ss_close; nothing was closed"
            ),
            "{m}"
        );
        assert!(m.contains("close()"), "{m}");
        let m = message(Call::on(CallName::Close, 5, Detail::None), libc::EBADF, Context::None);
        assert!(m.contains("not an open descriptor"), "{m}");
    }

    #[test]
    fn address_length_mismatch_is_explained() {
        let mut bytes = AddrCopy::from_sockaddr(&socket2::SockAddr::from(
            "10.0.0.1:80".parse::<std::net::SocketAddr>().unwrap(),
        ))
        .bytes()
        .to_vec();
        bytes.truncate(8);
        let (detail, captured) = known(AddrCopy::from_bytes(&bytes));
        let m = message_about(
            Call::on(CallName::Connect, 4, detail),
            captured,
            libc::EINVAL,
            Context::None,
        );
        assert!(
            m.contains("ss_connect(fd 4, AF_INET address with addrlen 8 (needs 16))"),
            "{m}"
        );
        assert!(m.contains("addrlen 8 does not fit AF_INET"), "{m}");
        let m = addr_message(CallName::Connect, 4, "[::1]:80", libc::EAFNOSUPPORT, Context::None);
        assert!(m.contains("does not match the socket's"), "{m}");
    }

    #[test]
    fn unreadable_address_prints_pointer() {
        let a = AddrArg::raw(0x10 as *const libc::sockaddr, 16);
        let m = message(
            Call::on(CallName::Connect, 4, Detail::Addr(a)),
            libc::EFAULT,
            Context::None,
        );
        assert!(
            m.starts_with("ss_connect(fd 4, address at 0x10, addrlen 16): Bad address (EFAULT)"),
            "{m}"
        );
    }

    #[test]
    fn every_required_hint_exists() {
        for e in [
            libc::ENOTCONN,
            libc::EPIPE,
            libc::EMFILE,
            libc::EINPROGRESS,
            libc::ETIMEDOUT,
            libc::EAGAIN,
            libc::EINTR,
        ] {
            let m = message(Call::on(CallName::Recv, 3, Detail::CountFlags(10, 0)), e, Context::None);
            let name = Errno(e).name().to_str().unwrap();
            assert!(m.contains(&format!("({name}): ")), "{m}");
        }
    }

    #[test]
    fn socket_arguments_are_named() {
        let call = Call::no_fd(
            CallName::Socket,
            Detail::Create {
                domain: libc::AF_INET6,
                ty: libc::SOCK_DGRAM | libc::SOCK_NONBLOCK,
                protocol: 0,
            },
        );
        let m = message(call, libc::EMFILE, Context::None);
        assert!(
            m.starts_with("ss_socket(AF_INET6, SOCK_DGRAM|SOCK_NONBLOCK, 0): Too many open files (EMFILE)"),
            "{m}"
        );
    }

    #[test]
    fn text_arguments_are_quoted_and_notes_shown() {
        let call = Call::no_fd(CallName::TcpListen, Detail::Text);
        let text = Captured::Text(TextCopy::new(Some(b"1.2.3.4:99999")));
        let m = message_about(call, text, libc::EINVAL, Context::Note("the port must be a number"));
        assert_eq!(
            m,
            "ss_tcp_listen(\"1.2.3.4:99999\"): Invalid argument (EINVAL): the port must be a number"
        );
        let call = Call::no_fd(CallName::TcpListen, Detail::Text);
        let null = Captured::Text(TextCopy::new(None));
        assert!(message_about(call, null, libc::EINVAL, Context::None).starts_with("ss_tcp_listen(NULL)"));
    }

    #[test]
    fn long_arguments_never_push_out_the_errno_name() {
        let text = [0x18u8; 96];
        let call = Call::no_fd(CallName::TcpConnect, Detail::Text);
        let m = message_about(
            call,
            Captured::Text(TextCopy::new(Some(&text))),
            libc::EINVAL,
            Context::None,
        );
        assert!(m.contains("(EINVAL)"), "{m}");
        assert!(m.len() < 512, "{m}");
    }

    #[test]
    fn internal_errors_lead_with_internal_error() {
        let m = message(
            Call::on(CallName::Listen, 3, Detail::Backlog(5)),
            libc::EIO,
            Context::Note("internal error: a bug in safesock was caught"),
        );
        assert!(m.starts_with("internal error: "), "{m}");
        assert!(m.contains("ss_listen(fd 3, backlog 5)"), "{m}");
    }
}
