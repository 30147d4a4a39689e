//! Address text for the helpers: numeric forms through [`crate::addr::parse`],
//! host names through `getaddrinfo`.

use core::ffi::c_int;
use std::ffi::CString;

use crate::addr::{self, AddrCopy, ParseError};
use crate::call::Context;
use crate::error::Errno;
use crate::ffi::Reported;

/// The longest address text the helpers accept.
pub(crate) const MAX_TEXT: usize = 1024;

/// The addresses `text` names, in the order to try them. `text` is
/// `IPv4:PORT`, `[IPv6]:PORT` or `HOST:PORT`; `socktype` filters the
/// resolver's answers.
pub fn resolve(text: &[u8], socktype: c_int) -> Result<Vec<AddrCopy>, Reported> {
    let text = core::str::from_utf8(text).map_err(|_| parse_failure(ParseError::Form))?;
    if text.starts_with("unix:") {
        return Err(parse_failure(ParseError::Form));
    }
    match addr::parse(text) {
        Ok(a) => Ok(vec![a]),
        Err(ParseError::Host) if !text.starts_with('[') => {
            let (host, port) = text.rsplit_once(':').ok_or_else(|| parse_failure(ParseError::Form))?;
            let port: u16 = port.parse().map_err(|_| parse_failure(ParseError::Port))?;
            by_name(host, port, socktype)
        }
        Err(e) => Err(parse_failure(e)),
    }
}

/// The report for text that is not an address.
pub fn parse_failure(e: ParseError) -> Reported {
    Reported {
        errno: e.errno(),
        context: Context::Parse(e),
    }
}

fn by_name(host: &str, port: u16, socktype: c_int) -> Result<Vec<AddrCopy>, Reported> {
    let c_host = CString::new(host).map_err(|_| parse_failure(ParseError::Host))?;
    // SAFETY: addrinfo is plain data; zero is "no preference" for every field.
    let mut hints: libc::addrinfo = unsafe { core::mem::zeroed() };
    hints.ai_family = libc::AF_UNSPEC;
    hints.ai_socktype = socktype;
    let mut list: *mut libc::addrinfo = core::ptr::null_mut();
    // SAFETY: host and hints are valid; `list` receives a list we free below.
    let rc = unsafe { libc::getaddrinfo(c_host.as_ptr(), core::ptr::null(), &hints, &mut list) };
    if rc != 0 {
        return Err(resolver_failure(rc));
    }
    let mut found = Vec::new();
    let mut node = list;
    while !node.is_null() {
        // SAFETY: `node` is an element of the list getaddrinfo returned.
        let info = unsafe { &*node };
        if !info.ai_addr.is_null() {
            // SAFETY: getaddrinfo's ai_addr holds ai_addrlen readable bytes.
            let mut copy = unsafe { AddrCopy::read(info.ai_addr, info.ai_addrlen) };
            copy.set_port(port);
            found.push(copy);
        }
        node = info.ai_next;
    }
    // SAFETY: `list` came from getaddrinfo and is freed once.
    unsafe { libc::freeaddrinfo(list) };
    if found.is_empty() {
        return Err(Reported {
            errno: Errno(libc::ENOENT),
            context: Context::Resolver("no address of this type"),
        });
    }
    Ok(found)
}

/// Maps a resolver failure to an errno, keeping the resolver's own text:
/// unknown host `ENOENT`, temporary failure `EAGAIN`, out of memory `ENOMEM`,
/// a system error its errno, anything else `EINVAL`.
fn resolver_failure(rc: c_int) -> Reported {
    let errno = match rc {
        libc::EAI_NONAME | libc::EAI_NODATA => Errno(libc::ENOENT),
        libc::EAI_AGAIN => Errno(libc::EAGAIN),
        libc::EAI_MEMORY => Errno(libc::ENOMEM),
        libc::EAI_SYSTEM => Errno::last(),
        _ => Errno(libc::EINVAL),
    };
    // SAFETY: gai_strerror returns a pointer to a static, NUL-terminated
    // message that lives as long as the program.
    let text: &'static core::ffi::CStr = unsafe { core::ffi::CStr::from_ptr(libc::gai_strerror(rc)) };
    Reported {
        errno,
        context: Context::Resolver(text.to_str().unwrap_or("resolver error")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_text_needs_no_resolver() {
        let a = resolve(b"127.0.0.1:0", libc::SOCK_STREAM).ok().unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].to_string(), "127.0.0.1:0");
    }

    #[test]
    fn localhost_resolves_to_loopback_with_port() {
        let a = resolve(b"localhost:4321", libc::SOCK_STREAM).ok().unwrap();
        assert!(!a.is_empty());
        for addr in &a {
            let t = addr.to_string();
            assert!(t == "127.0.0.1:4321" || t == "[::1]:4321", "{t}");
        }
    }

    #[test]
    fn malformed_text_is_einval_with_reason() {
        for (text, why) in [
            (&b"127.0.0.1"[..], ParseError::Form),
            (b"1.2.3.4:99999", ParseError::Port),
            (b"[::1", ParseError::Form),
            (b":80", ParseError::Form),
            (b"", ParseError::Form),
            (b"\xff:80", ParseError::Form),
            (b"unix:/tmp/x", ParseError::Form),
            (b"localhost:http", ParseError::Port),
        ] {
            let Err(r) = resolve(text, libc::SOCK_STREAM) else {
                panic!("{text:?} parsed")
            };
            assert_eq!(r.errno, Errno(libc::EINVAL), "{text:?}");
            assert_eq!(r.context, Context::Parse(why), "{text:?}");
        }
    }

    #[test]
    fn unknown_host_is_enoent_with_resolver_text() {
        let Err(r) = resolve(b"no-such-host.invalid:80", libc::SOCK_STREAM) else {
            panic!("resolved")
        };
        assert!(matches!(r.errno.0, libc::ENOENT | libc::EAGAIN), "{:?}", r.errno);
        assert!(matches!(r.context, Context::Resolver(t) if !t.is_empty()));
    }
}
