//! What a call was: its name and the arguments worth showing.
//!
//! Exported functions describe themselves lazily (a closure builds the
//! [`Call`]) so the success path pays nothing for it. On failure the boundary
//! turns the call into a [`Failure`]: plain values plus, when it is safe to
//! read, a copy of the address the caller passed.

use core::ffi::c_int;

use libc::{sockaddr, socklen_t};

use crate::addr::{AddrCopy, STORAGE_LEN};
use crate::error::Errno;

/// The exported function a message or trace line is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum CallName {
    Socket,
    Socketpair,
    Bind,
    Listen,
    Connect,
    Accept,
    Accept4,
    Read,
    Write,
    Recv,
    Send,
    Readv,
    Writev,
    Recvmsg,
    Sendmsg,
    Recvfrom,
    Sendto,
    Shutdown,
    Close,
    Getsockname,
    Getpeername,
    Getsockopt,
    Setsockopt,
    TcpListen,
    TcpConnect,
    UdpBind,
    SendAll,
    RecvExact,
    AddrParse,
    AddrFormat,
    LocalPort,
    TcpState,
}

impl CallName {
    /// The exported name, such as `ss_connect`.
    pub fn as_str(self) -> &'static str {
        match self {
            CallName::Socket => "ss_socket",
            CallName::Socketpair => "ss_socketpair",
            CallName::Bind => "ss_bind",
            CallName::Listen => "ss_listen",
            CallName::Connect => "ss_connect",
            CallName::Accept => "ss_accept",
            CallName::Accept4 => "ss_accept4",
            CallName::Read => "ss_read",
            CallName::Write => "ss_write",
            CallName::Recv => "ss_recv",
            CallName::Send => "ss_send",
            CallName::Readv => "ss_readv",
            CallName::Writev => "ss_writev",
            CallName::Recvmsg => "ss_recvmsg",
            CallName::Sendmsg => "ss_sendmsg",
            CallName::Recvfrom => "ss_recvfrom",
            CallName::Sendto => "ss_sendto",
            CallName::Shutdown => "ss_shutdown",
            CallName::Close => "ss_close",
            CallName::Getsockname => "ss_getsockname",
            CallName::Getpeername => "ss_getpeername",
            CallName::Getsockopt => "ss_getsockopt",
            CallName::Setsockopt => "ss_setsockopt",
            CallName::TcpListen => "ss_tcp_listen",
            CallName::TcpConnect => "ss_tcp_connect",
            CallName::UdpBind => "ss_udp_bind",
            CallName::SendAll => "ss_send_all",
            CallName::RecvExact => "ss_recv_exact",
            CallName::AddrParse => "ss_addr_parse",
            CallName::AddrFormat => "ss_addr_format",
            CallName::LocalPort => "ss_local_port",
            CallName::TcpState => "ss_tcp_state",
        }
    }
}

/// Room for a quoted text argument (a helper's address string).
pub(crate) const TEXT_CAPACITY: usize = 96;

/// A text argument copied for the message, cut to [`TEXT_CAPACITY`] bytes.
#[derive(Clone, Copy)]
pub struct TextCopy {
    bytes: [u8; TEXT_CAPACITY],
    len: u8,
    cut: bool,
    null: bool,
}

impl TextCopy {
    /// Copies `text` (or remembers that the caller passed NULL).
    pub fn new(text: Option<&[u8]>) -> Self {
        let mut copy = TextCopy {
            bytes: [0; TEXT_CAPACITY],
            len: 0,
            cut: false,
            null: text.is_none(),
        };
        if let Some(text) = text {
            let keep = text.len().min(TEXT_CAPACITY);
            copy.bytes[..keep].copy_from_slice(&text[..keep]);
            copy.len = keep as u8;
            copy.cut = text.len() > TEXT_CAPACITY;
        }
        copy
    }

    /// The bytes kept, `None` for a NULL pointer.
    pub fn bytes(&self) -> Option<&[u8]> {
        (!self.null).then(|| &self.bytes[..usize::from(self.len)])
    }

    /// Whether the text was longer than what was kept.
    pub fn is_cut(&self) -> bool {
        self.cut
    }
}

/// An address argument: the caller's pointer and length as passed.
#[derive(Clone, Copy)]
pub struct AddrArg {
    /// The pointer as passed (printed when the bytes may not be read).
    pub ptr: *const sockaddr,
    /// The length as passed.
    pub len: socklen_t,
}

impl AddrArg {
    /// An address the caller passed in; not read yet.
    pub fn raw(ptr: *const sockaddr, len: socklen_t) -> Self {
        AddrArg { ptr, len }
    }

    /// A copy of the bytes, if the outcome of the call proves the kernel read them.
    ///
    /// An input address is read by the kernel after the descriptor checks and
    /// only when `0 < len <= sizeof(sockaddr_storage)`; any errno other than
    /// the ones raised before or during that copy means it succeeded. A pointer
    /// the kernel has not read is never dereferenced here.
    pub fn capture(&self, outcome: Option<Errno>) -> Option<AddrCopy> {
        if self.ptr.is_null() || self.len == 0 || self.len as usize > STORAGE_LEN {
            return None;
        }
        let kernel_read_it = match outcome {
            None => true,
            Some(Errno(e)) => !matches!(e, libc::EFAULT | libc::EBADF | libc::ENOTSOCK),
        };
        // SAFETY: the kernel copied `len` (<= STORAGE_LEN) bytes from `ptr`
        // during this call without a fault, so they are mapped and readable.
        kernel_read_it.then(|| unsafe { AddrCopy::read(self.ptr, self.len) })
    }
}

/// What a call's description keeps beside its plain arguments: the bytes of
/// the address or text the caller passed, once they were safe to read. Kept
/// apart from [`Detail`] so that recording an ordinary failure copies a few
/// words, not a whole address.
#[derive(Clone, Copy)]
pub enum Captured {
    /// Nothing was captured (no such argument, or it could not be read).
    Nothing,
    /// The address argument's bytes.
    Addr(AddrCopy),
    /// The text argument of a helper.
    Text(TextCopy),
}

impl Captured {
    /// The address bytes, if captured.
    pub fn addr(&self) -> Option<&AddrCopy> {
        match self {
            Captured::Addr(copy) => Some(copy),
            _ => None,
        }
    }

    /// Captures `detail`'s address argument, if it has one and the outcome
    /// shows it was readable.
    pub fn address_of(detail: &Detail, outcome: Option<Errno>) -> Captured {
        match detail.addr().and_then(|a| a.capture(outcome)) {
            Some(copy) => Captured::Addr(copy),
            None => Captured::Nothing,
        }
    }
}

/// The arguments of a call worth showing in a message or trace line.
#[derive(Clone, Copy)]
pub enum Detail {
    /// Only the descriptor.
    None,
    /// `ss_socket` / `ss_socketpair`.
    Create { domain: c_int, ty: c_int, protocol: c_int },
    /// `ss_bind`, `ss_connect`.
    Addr(AddrArg),
    /// `ss_listen`.
    Backlog(c_int),
    /// `ss_accept4`, `ss_recvmsg`, `ss_sendmsg`.
    Flags(c_int),
    /// `ss_read`, `ss_write`, `ss_send_all`, `ss_recv_exact`.
    Count(usize),
    /// `ss_recv`, `ss_send`, `ss_recvfrom`.
    CountFlags(usize, c_int),
    /// `ss_sendto`.
    SendTo(usize, c_int, AddrArg),
    /// `ss_readv`, `ss_writev`.
    Iov(c_int),
    /// `ss_shutdown`.
    How(c_int),
    /// `ss_getsockopt`, `ss_setsockopt`.
    Opt { level: c_int, name: c_int },
    /// Helpers that take an address as text (the text is [`Captured::Text`]).
    Text,
    /// `ss_addr_format`: the address and the room offered.
    Format(AddrArg, usize),
    /// `ss_close`: the TCP state just before, when tracing wants it.
    Closing(Option<c_int>),
}

impl Detail {
    /// The address argument, if the call has one.
    pub fn addr(&self) -> Option<&AddrArg> {
        match self {
            Detail::Addr(a) | Detail::SendTo(_, _, a) | Detail::Format(a, _) => Some(a),
            _ => None,
        }
    }
}

/// A call as the message and the trace show it.
#[derive(Clone, Copy)]
pub struct Call {
    /// Which function.
    pub name: CallName,
    /// The descriptor it acted on, or -1 when it takes none.
    pub fd: c_int,
    /// The other arguments.
    pub detail: Detail,
}

impl Call {
    /// A call on descriptor `fd`.
    pub fn on(name: CallName, fd: c_int, detail: Detail) -> Self {
        Call { name, fd, detail }
    }

    /// A call that takes no descriptor.
    pub fn no_fd(name: CallName, detail: Detail) -> Self {
        Call { name, fd: -1, detail }
    }
}

/// Extra knowledge a failure carries for its hint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Context {
    /// Nothing more is known.
    None,
    /// The descriptor was closed by `ss_close` and not handed out again since.
    ClosedBySafesock,
    /// A fixed explanation chosen by the failing code (internal errors).
    Note(&'static str),
    /// The address text is malformed in this way.
    Parse(crate::addr::ParseError),
    /// The resolver's own text for why a host name did not resolve.
    Resolver(&'static str),
    /// A helper moved this many bytes before the error (see `ss_transferred`).
    Partial(usize),
}

/// What a failing call leaves behind for `ss_last_error`.
#[derive(Clone, Copy)]
pub struct Failure {
    /// The call and its arguments.
    pub call: Call,
    /// The errno it set.
    pub errno: Errno,
    /// What else is known.
    pub context: Context,
    /// The address or text argument, when it could be read.
    pub captured: Captured,
}

impl Failure {
    /// A record with nothing in it (the state before the first failure).
    pub const EMPTY: Failure = Failure {
        call: Call {
            name: CallName::Socket,
            fd: -1,
            detail: Detail::None,
        },
        errno: Errno(0),
        context: Context::None,
        captured: Captured::Nothing,
    };
}
