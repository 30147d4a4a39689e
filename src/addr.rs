//! Socket addresses: a bounded copy of the caller's bytes, decoding with length
//! checks, and the text forms `127.0.0.1:8080`, `[::1]:8080`,
//! `[fe80::1%lo]:80`, `unix:/path` and `unix:@abstract` in both directions.
//!
//! Decoding never trusts `ss_family` alone: an address is only read as a
//! `sockaddr_in`, `sockaddr_in6` or `sockaddr_un` when its length covers that
//! structure, so a short or lying address is reported, never over-read.

use core::ffi::c_int;
use core::fmt;
use core::mem::{offset_of, size_of};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use libc::{sa_family_t, sockaddr, sockaddr_in, sockaddr_in6, sockaddr_storage, sockaddr_un, socklen_t};
use socket2::SockAddr;

use crate::error::{Errno, Result};

/// Bytes in a `sockaddr_storage`: the most any address can need.
pub const STORAGE_LEN: usize = size_of::<sockaddr_storage>();
/// Offset of `sun_path` in `sockaddr_un`: an AF_UNIX address of this length is unnamed.
pub const SUN_PATH_OFFSET: usize = offset_of!(sockaddr_un, sun_path);
/// Room for the path bytes of an AF_UNIX address.
pub const SUN_PATH_LEN: usize = size_of::<sockaddr_un>() - SUN_PATH_OFFSET;

/// A copy of at most [`STORAGE_LEN`] bytes of a socket address, with the length
/// the caller claimed for it.
#[derive(Clone, Copy)]
pub struct AddrCopy {
    storage: sockaddr_storage,
    /// Length the caller gave (may exceed the bytes kept, or be too short for the family).
    len: socklen_t,
}

/// What an address is, once its family and length have been checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// An IPv4 or IPv6 address with port (and scope id for IPv6).
    Inet(SocketAddr),
    /// An AF_UNIX address bound to a path in the file system.
    UnixPath(&'a [u8]),
    /// An AF_UNIX address in the abstract namespace (the name without the leading NUL).
    UnixAbstract(&'a [u8]),
    /// An AF_UNIX address with no name (an unbound socket or a socketpair end).
    UnixUnnamed,
    /// A known family whose length does not cover its structure.
    BadLength {
        family: c_int,
        len: socklen_t,
        needed: usize,
    },
    /// A length of zero or shorter than the family field.
    Empty { len: socklen_t },
    /// A family this module cannot print.
    OtherFamily { family: c_int, len: socklen_t },
}

impl AddrCopy {
    /// An address of length 0.
    pub fn empty() -> Self {
        AddrCopy {
            // SAFETY: sockaddr_storage is plain old data; all zeroes is a valid value.
            storage: unsafe { core::mem::zeroed() },
            len: 0,
        }
    }

    /// Copies the address `len` bytes long at `ptr` (at most [`STORAGE_LEN`] bytes are kept).
    ///
    /// # Safety
    ///
    /// `ptr` must be readable for `min(len, STORAGE_LEN)` bytes, for example
    /// because the kernel has just copied that many bytes from it successfully.
    pub unsafe fn read(ptr: *const sockaddr, len: socklen_t) -> Self {
        let mut copy = Self::empty();
        let keep = (len as usize).min(STORAGE_LEN);
        // SAFETY: the caller guarantees `ptr` is readable for `keep` bytes; the
        // destination is a local sockaddr_storage of STORAGE_LEN >= keep bytes.
        unsafe {
            core::ptr::copy_nonoverlapping(ptr.cast::<u8>(), (&raw mut copy.storage).cast::<u8>(), keep);
        }
        copy.len = len;
        copy
    }

    /// Builds a copy from Rust-owned bytes (tests, parsing).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let mut copy = Self::empty();
        let keep = bytes.len().min(STORAGE_LEN);
        // SAFETY: both regions are valid for `keep` bytes and do not overlap.
        unsafe {
            core::ptr::copy_nonoverlapping(bytes.as_ptr(), (&raw mut copy.storage).cast::<u8>(), keep);
        }
        copy.len = bytes.len() as socklen_t;
        copy
    }

    /// From a socket2 address.
    pub fn from_sockaddr(addr: &SockAddr) -> Self {
        // SAFETY: a SockAddr owns a sockaddr_storage valid for its length (<= STORAGE_LEN).
        unsafe { Self::read(addr.as_ptr().cast(), addr.len()) }
    }

    /// Sets the port of an AF_INET or AF_INET6 address (no effect on others).
    pub fn set_port(&mut self, port: u16) {
        let bytes = port.to_be_bytes();
        let at = match self.family() {
            Some(libc::AF_INET) => offset_of!(sockaddr_in, sin_port),
            Some(libc::AF_INET6) => offset_of!(sockaddr_in6, sin6_port),
            _ => return,
        };
        // SAFETY: `at + 2` lies inside sockaddr_storage, which we own.
        unsafe {
            core::ptr::copy_nonoverlapping(bytes.as_ptr(), (&raw mut self.storage).cast::<u8>().add(at), 2);
        }
    }

    /// The port of an AF_INET or AF_INET6 address.
    pub fn port(&self) -> Option<u16> {
        match self.decode() {
            Decoded::Inet(a) => Some(a.port()),
            _ => None,
        }
    }

    /// The length the caller claimed.
    pub fn len(&self) -> socklen_t {
        self.len
    }

    /// Whether the claimed length is zero.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The family field, if the length covers it.
    pub fn family(&self) -> Option<c_int> {
        (self.len as usize >= size_of::<sa_family_t>()).then_some(c_int::from(self.storage.ss_family))
    }

    /// A pointer to the bytes, for system calls.
    pub fn as_ptr(&self) -> *const sockaddr {
        (&raw const self.storage).cast()
    }

    /// The bytes kept (the claimed length, capped at [`STORAGE_LEN`]).
    pub fn bytes(&self) -> &[u8] {
        let keep = (self.len as usize).min(STORAGE_LEN);
        // SAFETY: storage is a plain struct of STORAGE_LEN bytes, all initialised.
        unsafe { core::slice::from_raw_parts((&raw const self.storage).cast::<u8>(), keep) }
    }

    /// Interprets the address, checking its length against its family.
    pub fn decode(&self) -> Decoded<'_> {
        let len = self.len;
        let Some(family) = self.family() else {
            return Decoded::Empty { len };
        };
        let Some(needed) = needed_len(family) else {
            return Decoded::OtherFamily { family, len };
        };
        if (len as usize) < needed || len as usize > max_len(family) {
            return Decoded::BadLength { family, len, needed };
        }
        match family {
            libc::AF_INET | libc::AF_INET6 => {
                let mut storage = socket2::SockAddrStorage::zeroed();
                // SAFETY: the view is a sockaddr_storage-sized region; we copy our
                // initialised storage into it whole.
                unsafe { *storage.view_as::<sockaddr_storage>() = self.storage };
                // SAFETY: `len` bytes of storage are initialised (checked above).
                let addr = unsafe { SockAddr::new(storage, len) };
                match addr.as_socket() {
                    Some(inet) => Decoded::Inet(inet),
                    None => Decoded::OtherFamily { family, len },
                }
            }
            _ => self.decode_unix(),
        }
    }

    fn decode_unix(&self) -> Decoded<'_> {
        let path = &self.bytes()[SUN_PATH_OFFSET..];
        match path.first() {
            None => Decoded::UnixUnnamed,
            Some(0) => Decoded::UnixAbstract(&path[1..]),
            Some(_) => {
                let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
                Decoded::UnixPath(&path[..end])
            }
        }
    }
}

/// The smallest length that holds an address of `family`, for the families
/// safesock can decode.
pub fn needed_len(family: c_int) -> Option<usize> {
    match family {
        libc::AF_INET => Some(size_of::<sockaddr_in>()),
        libc::AF_INET6 => Some(size_of::<sockaddr_in6>()),
        libc::AF_UNIX => Some(SUN_PATH_OFFSET),
        _ => None,
    }
}

/// The largest length the kernel takes for an address of `family`.
pub fn max_len(family: c_int) -> usize {
    match family {
        libc::AF_UNIX => size_of::<sockaddr_un>(),
        _ => STORAGE_LEN,
    }
}

/// `AF_INET`, `AF_INET6` ...; `None` for a family without a common name.
pub fn family_name(family: c_int) -> Option<&'static str> {
    Some(match family {
        libc::AF_UNSPEC => "AF_UNSPEC",
        libc::AF_UNIX => "AF_UNIX",
        libc::AF_INET => "AF_INET",
        libc::AF_INET6 => "AF_INET6",
        libc::AF_NETLINK => "AF_NETLINK",
        libc::AF_PACKET => "AF_PACKET",
        libc::AF_VSOCK => "AF_VSOCK",
        _ => return None,
    })
}

/// Writes a family as its name, or as a number.
pub fn write_family(out: &mut dyn fmt::Write, family: c_int) -> fmt::Result {
    match family_name(family) {
        Some(name) => out.write_str(name),
        None => write!(out, "family {family}"),
    }
}

impl fmt::Display for AddrCopy {
    /// The text form for messages and traces: the exact `ss_addr_format` form
    /// when the address is well formed, otherwise a description of what is wrong.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.decode() {
            Decoded::BadLength { family, len, needed } => {
                write_family(f, family)?;
                write!(f, " address with addrlen {len} (needs {needed}")?;
                if len as usize > max_len(family) {
                    write!(f, " to {}", max_len(family))?;
                }
                f.write_str(")")
            }
            Decoded::Empty { len } => write!(f, "empty address (addrlen {len})"),
            Decoded::OtherFamily { family, len } => {
                write_family(f, family)?;
                write!(f, " address ({len} bytes)")
            }
            decoded => write_decoded(f, &decoded),
        }
    }
}

/// Writes a well-formed address in its text form; the inverse of [`parse`].
pub fn write_decoded(out: &mut dyn fmt::Write, decoded: &Decoded<'_>) -> fmt::Result {
    match decoded {
        Decoded::Inet(SocketAddr::V4(v4)) => write!(out, "{}:{}", v4.ip(), v4.port()),
        Decoded::Inet(SocketAddr::V6(v6)) => {
            write!(out, "[{}", v6.ip())?;
            if v6.scope_id() != 0 {
                out.write_char('%')?;
                write_scope(out, v6.scope_id())?;
            }
            write!(out, "]:{}", v6.port())
        }
        Decoded::UnixPath(path) => {
            out.write_str("unix:")?;
            // A path starting with '@' would read back as an abstract name.
            match path.split_first() {
                Some((b'@', rest)) => {
                    out.write_str("\\x40")?;
                    write_escaped(out, rest)
                }
                _ => write_escaped(out, path),
            }
        }
        Decoded::UnixAbstract(name) => {
            out.write_str("unix:@")?;
            write_escaped(out, name)
        }
        Decoded::UnixUnnamed => out.write_str("unix:"),
        _ => Err(fmt::Error),
    }
}

fn write_scope(out: &mut dyn fmt::Write, scope: u32) -> fmt::Result {
    let mut name = [0u8; libc::IF_NAMESIZE];
    // SAFETY: `name` has IF_NAMESIZE bytes, as if_indextoname requires.
    let found = unsafe { libc::if_indextoname(scope, name.as_mut_ptr().cast()) };
    let text = core::ffi::CStr::from_bytes_until_nul(&name)
        .ok()
        .and_then(|c| c.to_str().ok());
    match text {
        // A name that parses back to a different scope (digits) is printed numerically.
        Some(text) if !found.is_null() && !text.is_empty() && !text.bytes().all(|b| b.is_ascii_digit()) => {
            out.write_str(text)
        }
        _ => write!(out, "{scope}"),
    }
}

/// Path bytes as text: printable ASCII as is, `\` as `\\`, anything else as `\xNN`.
fn write_escaped(out: &mut dyn fmt::Write, bytes: &[u8]) -> fmt::Result {
    for &b in bytes {
        match b {
            b'\\' => out.write_str("\\\\")?,
            0x21..=0x7e => out.write_char(b as char)?,
            _ => write!(out, "\\x{b:02x}")?,
        }
    }
    Ok(())
}

/// Why a text is not an address, for the message that quotes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// The text is empty or not one of the accepted forms.
    Form,
    /// The port is missing, not a number, or above 65535.
    Port,
    /// The host part is not a numeric IPv4 or IPv6 address.
    Host,
    /// The IPv6 scope (after `%`) names no interface.
    Scope,
    /// The AF_UNIX path does not fit in `sun_path`.
    PathTooLong,
    /// A `\` escape in an AF_UNIX path is malformed.
    Escape,
    /// The text is longer than any address could be.
    TooLong,
}

impl ParseError {
    /// A short explanation, with the expected form.
    pub fn explain(self) -> &'static str {
        match self {
            ParseError::Form => {
                "expected IPv4:PORT (127.0.0.1:8080), [IPv6]:PORT ([::1]:8080), unix:/path or unix:@name"
            }
            ParseError::Port => "the port must be a number from 0 to 65535 after the last ':'",
            ParseError::Host => "the host must be a numeric IPv4 address, or an IPv6 address in brackets",
            ParseError::Scope => "the IPv6 scope after '%' must be an interface name or index",
            ParseError::PathTooLong => "an AF_UNIX path holds at most 108 bytes, an abstract name 107",
            ParseError::Escape => "a '\\' in a unix path must be '\\\\' or '\\xNN'",
            ParseError::TooLong => "the text is over 1024 bytes long, longer than any address",
        }
    }

    /// The errno a parse failure reports.
    pub fn errno(self) -> Errno {
        Errno(libc::EINVAL)
    }
}

/// Parses the numeric text forms (no name resolution) into an address.
pub fn parse(text: &str) -> core::result::Result<AddrCopy, ParseError> {
    if let Some(rest) = text.strip_prefix("unix:") {
        return parse_unix(rest);
    }
    let (host, port) = text.rsplit_once(':').ok_or(ParseError::Form)?;
    if host.is_empty() {
        return Err(ParseError::Form);
    }
    let port = parse_port(port)?;
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or(ParseError::Form)?;
        let (ip, scope) = match inner.split_once('%') {
            Some((ip, scope)) => (ip, parse_scope(scope)?),
            None => (inner, 0),
        };
        let ip: Ipv6Addr = ip.parse().map_err(|_| ParseError::Host)?;
        return Ok(inet(SocketAddr::V6(SocketAddrV6::new(ip, port, 0, scope))));
    }
    if host.contains([':', '[', ']']) {
        return Err(ParseError::Form);
    }
    let ip: Ipv4Addr = host.parse().map_err(|_| ParseError::Host)?;
    Ok(inet(SocketAddr::V4(SocketAddrV4::new(ip, port))))
}

fn parse_port(port: &str) -> core::result::Result<u16, ParseError> {
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::Port);
    }
    port.parse().map_err(|_| ParseError::Port)
}

fn parse_scope(scope: &str) -> core::result::Result<u32, ParseError> {
    if scope.is_empty() {
        return Err(ParseError::Scope);
    }
    if scope.bytes().all(|b| b.is_ascii_digit()) {
        return scope.parse().map_err(|_| ParseError::Scope);
    }
    let mut name = [0u8; libc::IF_NAMESIZE];
    if scope.len() >= name.len() {
        return Err(ParseError::Scope);
    }
    name[..scope.len()].copy_from_slice(scope.as_bytes());
    // SAFETY: `name` is NUL-terminated (zero-filled beyond the copied bytes).
    match unsafe { libc::if_nametoindex(name.as_ptr().cast()) } {
        0 => Err(ParseError::Scope),
        index => Ok(index),
    }
}

fn inet(addr: SocketAddr) -> AddrCopy {
    AddrCopy::from_sockaddr(&SockAddr::from(addr))
}

fn parse_unix(rest: &str) -> core::result::Result<AddrCopy, ParseError> {
    let (abstract_name, body) = match rest.strip_prefix('@') {
        Some(name) => (true, name),
        None => (false, rest),
    };
    let mut path = [0u8; SUN_PATH_LEN];
    let mut n = usize::from(abstract_name);
    let mut bytes = body.bytes();
    while let Some(b) = bytes.next() {
        let value = if b == b'\\' {
            match bytes.next() {
                Some(b'\\') => b'\\',
                Some(b'x') => {
                    let hi = bytes.next().and_then(hex).ok_or(ParseError::Escape)?;
                    let lo = bytes.next().and_then(hex).ok_or(ParseError::Escape)?;
                    hi << 4 | lo
                }
                _ => return Err(ParseError::Escape),
            }
        } else {
            b
        };
        // A path or abstract name may fill sun_path (a path of 108 bytes has
        // no terminating NUL, which the kernel accepts).
        if n >= SUN_PATH_LEN {
            return Err(ParseError::PathTooLong);
        }
        path[n] = value;
        n += 1;
    }
    if !abstract_name && path[..n].contains(&0) {
        return Err(ParseError::Escape);
    }
    let mut bytes = [0u8; size_of::<sockaddr_un>()];
    bytes[..2].copy_from_slice(&(libc::AF_UNIX as sa_family_t).to_ne_bytes());
    bytes[SUN_PATH_OFFSET..SUN_PATH_OFFSET + n].copy_from_slice(&path[..n]);
    // A path's length counts its NUL when there is room for one, as SUN_LEN + 1
    // does; an abstract name's does not.
    let len = SUN_PATH_OFFSET + n + usize::from(!abstract_name && n > 0 && n < SUN_PATH_LEN);
    Ok(AddrCopy::from_bytes(&bytes[..len]))
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Checks that `len` fits an address of `family` exactly as `ss_addr_format`
/// requires, and decodes it.
pub fn decode_for_format(copy: &AddrCopy) -> Result<Decoded<'_>> {
    match copy.decode() {
        Decoded::OtherFamily { .. } => Err(Errno(libc::EAFNOSUPPORT)),
        Decoded::BadLength { .. } | Decoded::Empty { .. } => Err(Errno(libc::EINVAL)),
        decoded => Ok(decoded),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(copy: &AddrCopy) -> String {
        copy.to_string()
    }

    fn v4_bytes(ip: [u8; 4], port: u16) -> Vec<u8> {
        let sa = SockAddr::from(SocketAddr::from((ip, port)));
        AddrCopy::from_sockaddr(&sa).bytes().to_vec()
    }

    #[test]
    fn decodes_ipv4() {
        let c = AddrCopy::from_bytes(&v4_bytes([127, 0, 0, 1], 8080));
        assert_eq!(c.decode(), Decoded::Inet("127.0.0.1:8080".parse().unwrap()));
        assert_eq!(text(&c), "127.0.0.1:8080");
    }

    #[test]
    fn short_ipv4_is_reported_not_read() {
        let bytes = v4_bytes([10, 0, 0, 1], 80);
        let c = AddrCopy::from_bytes(&bytes[..8]);
        assert_eq!(
            c.decode(),
            Decoded::BadLength {
                family: libc::AF_INET,
                len: 8,
                needed: 16
            }
        );
        assert_eq!(text(&c), "AF_INET address with addrlen 8 (needs 16)");
    }

    #[test]
    fn decodes_ipv6_with_scope_and_mapped() {
        let sa = SockAddr::from(SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 443, 0, 0)));
        assert_eq!(text(&AddrCopy::from_sockaddr(&sa)), "[::1]:443");
        let mapped: Ipv6Addr = "::ffff:1.2.3.4".parse().unwrap();
        let sa = SockAddr::from(SocketAddr::V6(SocketAddrV6::new(mapped, 80, 0, 0)));
        assert_eq!(text(&AddrCopy::from_sockaddr(&sa)), "[::ffff:1.2.3.4]:80");
        let ll: Ipv6Addr = "fe80::1".parse().unwrap();
        let sa = SockAddr::from(SocketAddr::V6(SocketAddrV6::new(ll, 80, 0, 1)));
        assert_eq!(text(&AddrCopy::from_sockaddr(&sa)), "[fe80::1%lo]:80");
        let sa = SockAddr::from(SocketAddr::V6(SocketAddrV6::new(ll, 80, 0, 999_999)));
        assert_eq!(text(&AddrCopy::from_sockaddr(&sa)), "[fe80::1%999999]:80");
    }

    #[test]
    fn decodes_unix_path_abstract_and_unnamed() {
        let sa = SockAddr::unix("/tmp/s.sock").unwrap();
        let c = AddrCopy::from_sockaddr(&sa);
        assert_eq!(c.decode(), Decoded::UnixPath(b"/tmp/s.sock"));
        assert_eq!(text(&c), "unix:/tmp/s.sock");

        let mut raw = [0u8; 2 + 5];
        raw[..2].copy_from_slice(&(libc::AF_UNIX as u16).to_ne_bytes());
        raw[3..].copy_from_slice(b"demo");
        let c = AddrCopy::from_bytes(&raw);
        assert_eq!(c.decode(), Decoded::UnixAbstract(b"demo"));
        assert_eq!(text(&c), "unix:@demo");

        let c = AddrCopy::from_bytes(&raw[..2]);
        assert_eq!(c.decode(), Decoded::UnixUnnamed);
        assert_eq!(text(&c), "unix:");
    }

    #[test]
    fn unknown_family_and_empty() {
        let c = AddrCopy::from_bytes(&[0xff, 0x7f, 1, 2, 3]);
        assert!(matches!(c.decode(), Decoded::OtherFamily { family: 0x7fff, len: 5 }));
        assert_eq!(text(&AddrCopy::from_bytes(&[2])), "empty address (addrlen 1)");
        assert_eq!(decode_for_format(&c).unwrap_err(), Errno(libc::EAFNOSUPPORT));
        assert_eq!(
            decode_for_format(&AddrCopy::from_bytes(&[2])).unwrap_err(),
            Errno(libc::EINVAL)
        );
    }

    #[test]
    fn unix_lengths_beyond_sockaddr_un_are_refused() {
        let mut raw = [0u8; 128];
        raw[..2].copy_from_slice(&(libc::AF_UNIX as u16).to_ne_bytes());
        raw[3] = b'x';
        for len in [111usize, 120, 128] {
            let c = AddrCopy::from_bytes(&raw[..len]);
            assert!(
                matches!(c.decode(), Decoded::BadLength { len: l, .. } if l as usize == len),
                "{len}"
            );
            assert_eq!(decode_for_format(&c).unwrap_err(), Errno(libc::EINVAL));
        }
        assert!(matches!(
            AddrCopy::from_bytes(&raw[..110]).decode(),
            Decoded::UnixAbstract(_)
        ));
    }

    #[test]
    fn oversized_length_keeps_only_storage() {
        let mut bytes = v4_bytes([127, 0, 0, 1], 1);
        bytes.resize(300, 0xaa);
        let c = AddrCopy::from_bytes(&bytes);
        assert_eq!(c.bytes().len(), STORAGE_LEN);
        assert_eq!(c.len(), 300);
        assert!(matches!(c.decode(), Decoded::BadLength { len: 300, .. }));
    }

    #[test]
    fn parses_forms_and_rejects_malformed() {
        for good in [
            "127.0.0.1:0",
            "0.0.0.0:80",
            "[::1]:8080",
            "[::]:0",
            "[::ffff:1.2.3.4]:80",
            "[fe80::1%lo]:80",
        ] {
            let c = parse(good).unwrap_or_else(|e| panic!("{good}: {e:?}"));
            assert_eq!(text(&c), good);
        }
        let cases = [
            ("127.0.0.1", ParseError::Form),
            ("1.2.3.4:99999", ParseError::Port),
            ("[::1", ParseError::Form),
            ("[::1]", ParseError::Port),
            (":80", ParseError::Form),
            ("", ParseError::Form),
            ("localhost:80", ParseError::Host),
            ("1.2.3.4:", ParseError::Port),
            ("1.2.3.4:+1", ParseError::Port),
            ("::1:80", ParseError::Form),
            ("[fe80::1%]:80", ParseError::Scope),
            ("[fe80::1%nosuchif0]:80", ParseError::Scope),
        ];
        for (bad, why) in cases {
            assert_eq!(parse(bad).err(), Some(why), "{bad:?}");
        }
    }

    #[test]
    fn unix_text_round_trips_with_escapes() {
        for good in [
            "unix:/tmp/x",
            "unix:@abs",
            "unix:@a\\x00b",
            "unix:/sp\\x20ace\\\\",
            "unix:\\x40rel",
        ] {
            let c = parse(good).unwrap();
            assert_eq!(text(&c), good);
        }
        let long = format!("unix:/{}", "a".repeat(107));
        let full = parse(&long).unwrap();
        assert_eq!(
            full.len() as usize,
            size_of::<sockaddr_un>(),
            "a 108-byte path fills sockaddr_un, no NUL"
        );
        assert_eq!(text(&full), long);
        let too_long = format!("unix:/{}", "a".repeat(108));
        assert_eq!(parse(&too_long).err(), Some(ParseError::PathTooLong));
        assert_eq!(parse("unix:/a\\q").err(), Some(ParseError::Escape));
        assert_eq!(parse("unix:/a\\x0").err(), Some(ParseError::Escape));
        assert_eq!(parse("unix:/a\\x00b").err(), Some(ParseError::Escape));
    }
}
