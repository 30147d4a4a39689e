//! `ss_addr_parse` and `ss_addr_format`: the documented forms, agreement with
//! `inet_pton` + `htons`, round trips in both directions over thousands of
//! generated addresses, and the error cases (`EINVAL`, `ENOSPC`,
//! `EAFNOSUPPORT`, `EFAULT`).

use std::ffi::{CStr, c_char, c_int, c_void};
use std::mem::size_of;

use libc::{sa_family_t, sockaddr_storage, socklen_t};
use safesock::ffi;

use crate::common::*;

unsafe extern "C" {
    /// POSIX `inet_pton`, the reference for the bytes of an IP address.
    fn inet_pton(af: c_int, src: *const c_char, dst: *mut c_void) -> c_int;
}

const STORAGE: usize = size_of::<sockaddr_storage>();
/// Room for any formatted address (a 108-byte abstract name all in `\xNN`).
const TEXT_ROOM: usize = 512;

/// A socket address as bytes: all of a `sockaddr_storage`, zero after the address.
#[derive(Clone, PartialEq, Eq, Debug)]
struct Addr {
    bytes: Vec<u8>,
    len: socklen_t,
}

impl Addr {
    /// An address from its first bytes.
    fn new(prefix: &[u8]) -> Self {
        let mut bytes = prefix.to_vec();
        bytes.resize(STORAGE, 0);
        Addr {
            bytes,
            len: prefix.len() as socklen_t,
        }
    }

    /// An address from a plain C address structure.
    fn of<T: Copy>(value: &T) -> Self {
        // SAFETY: T is a plain C address structure, fully initialised
        // (built from zeroed memory); reading its bytes is fine.
        let bytes = unsafe { core::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) };
        Self::new(bytes)
    }

    fn as_ptr(&self) -> *const libc::sockaddr {
        self.bytes.as_ptr().cast()
    }
}

/// The bytes `inet_pton` gives for `ip` (`AF_INET` or `AF_INET6`).
fn pton<const N: usize>(af: c_int, ip: &str) -> [u8; N] {
    let c = cstring(ip);
    let mut out = [0u8; N];
    // SAFETY: a valid C string and a buffer of the size the family needs.
    let r = unsafe { inet_pton(af, c.as_ptr(), out.as_mut_ptr().cast()) };
    assert_eq!(r, 1, "inet_pton({ip})");
    out
}

/// `sockaddr_in` for `ip:port` built with `inet_pton` and `htons`.
fn libc_v4(ip: &str, port: u16) -> Addr {
    // SAFETY: sockaddr_in is plain data; zero is a valid value.
    let mut sin: libc::sockaddr_in = unsafe { core::mem::zeroed() };
    sin.sin_family = libc::AF_INET as sa_family_t;
    sin.sin_port = libc::htons(port);
    sin.sin_addr.s_addr = u32::from_ne_bytes(pton::<4>(libc::AF_INET, ip));
    Addr::of(&sin)
}

/// `sockaddr_in6` for `[ip%scope]:port` built with `inet_pton` and `htons`.
fn libc_v6(ip: &str, port: u16, scope: u32) -> Addr {
    // SAFETY: sockaddr_in6 is plain data; zero is a valid value.
    let mut sin6: libc::sockaddr_in6 = unsafe { core::mem::zeroed() };
    sin6.sin6_family = libc::AF_INET6 as sa_family_t;
    sin6.sin6_port = libc::htons(port);
    sin6.sin6_addr.s6_addr = pton::<16>(libc::AF_INET6, ip);
    sin6.sin6_scope_id = scope;
    Addr::of(&sin6)
}

/// An AF_UNIX address: a path (its NUL counted in the length, as the kernel
/// reports it) or an abstract name (a leading NUL, nothing counted after it).
fn unix_addr(name: &[u8], abstract_name: bool) -> Addr {
    let mut bytes = (libc::AF_UNIX as sa_family_t).to_ne_bytes().to_vec();
    if abstract_name {
        bytes.push(0);
        bytes.extend_from_slice(name);
    } else if !name.is_empty() {
        bytes.extend_from_slice(name);
        bytes.push(0);
    }
    Addr::new(&bytes)
}

/// `ss_addr_parse(text)`: the address, or errno and message.
fn parse(text: &str) -> Result<Addr, Outcome> {
    let c = cstring(text);
    let mut out = Addr::new(&[0xa5; STORAGE]);
    out.len = 0x5a5a;
    // SAFETY: a valid C string; `out.bytes` has sockaddr_storage's size (a
    // Vec<u8> is not aligned for it, but the library writes through the kernel).
    let r = unsafe { ffi::ss_addr_parse(c.as_ptr(), out.bytes.as_mut_ptr().cast(), &mut out.len) };
    if r == 0 {
        Ok(out)
    } else {
        Err(failure(r.into(), &format!("ss_addr_parse({text:?})"), &[libc::EINVAL]))
    }
}

/// `ss_addr_format(addr, buflen)`: the text (checked for its NUL and return
/// value), or errno with what the buffer holds.
fn format(addr: &Addr, buflen: usize) -> Result<String, (i32, Vec<u8>)> {
    let mut buf = vec![0xa5u8; buflen.max(1)];
    // SAFETY: `addr` holds STORAGE bytes; `buf` has at least `buflen` bytes.
    let r = unsafe { ffi::ss_addr_format(addr.as_ptr(), addr.len, buf.as_mut_ptr().cast(), buflen) };
    if r < 0 {
        return Err((errno(), buf));
    }
    let n = r as usize;
    assert!(n < buflen, "returned {n} for a buffer of {buflen}");
    assert_eq!(buf[n], 0, "no NUL after the text");
    let text = CStr::from_bytes_until_nul(&buf).expect("NUL-terminated");
    assert_eq!(text.to_bytes().len(), n, "return value is not the text length");
    Ok(text.to_str().expect("formatted text is ASCII").to_owned())
}

/// RFC 5952 text of an IPv6 address: lower-case hex without leading zeros,
/// the longest run (first on ties) of two or more zero groups as `::`, and
/// IPv4-mapped addresses in dotted form.
fn ipv6_text(ip: &[u8; 16]) -> String {
    let groups: Vec<u16> = ip.chunks(2).map(|g| u16::from_be_bytes([g[0], g[1]])).collect();
    if groups[..5].iter().all(|&g| g == 0) && groups[5] == 0xffff {
        return format!("::ffff:{}.{}.{}.{}", ip[12], ip[13], ip[14], ip[15]);
    }
    let (mut best, mut best_len, mut run) = (0, 0, 0);
    for (i, &g) in groups.iter().enumerate() {
        run = if g == 0 { run + 1 } else { 0 };
        if run > best_len {
            best = i + 1 - run;
            best_len = run;
        }
    }
    let hex = |gs: &[u16]| gs.iter().map(|g| format!("{g:x}")).collect::<Vec<_>>().join(":");
    if best_len < 2 {
        return hex(&groups);
    }
    format!("{}::{}", hex(&groups[..best]), hex(&groups[best + best_len..]))
}

/// Unix name bytes as `ss_addr_format` writes them: printable ASCII as is,
/// `\` as `\\`, anything else as `\xNN`.
fn escape(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| match b {
            b'\\' => "\\\\".to_owned(),
            0x21..=0x7e => char::from(b).to_string(),
            _ => format!("\\x{b:02x}"),
        })
        .collect()
}

/// The name of interface 1 (loopback), as `%lo` scopes are written.
fn scope_one_name() -> String {
    let mut name = [0u8; libc::IF_NAMESIZE];
    // SAFETY: `name` has IF_NAMESIZE bytes, as if_indextoname requires.
    let found = unsafe { libc::if_indextoname(1, name.as_mut_ptr().cast()) };
    assert!(!found.is_null(), "no interface with index 1");
    CStr::from_bytes_until_nul(&name)
        .expect("NUL")
        .to_str()
        .expect("ASCII")
        .to_owned()
}

/// A text and the address it names, built independently of the library.
struct Sample {
    text: String,
    addr: Addr,
}

fn ipv4_sample(rng: &mut Rng) -> Sample {
    let ip = [rng.byte(), rng.byte(), rng.byte(), rng.byte()];
    let port = rng.port();
    let host = format!("{}.{}.{}.{}", ip[0], ip[1], ip[2], ip[3]);
    let addr = libc_v4(&host, port);
    assert_eq!(addr.bytes[4..8], ip, "inet_pton disagrees with the generator");
    Sample {
        text: format!("{host}:{port}"),
        addr,
    }
}

fn ipv6_sample(rng: &mut Rng, scope_name: &str) -> Sample {
    let mut ip = [0u8; 16];
    if rng.chance(8) {
        ip[10..12].copy_from_slice(&[0xff, 0xff]);
        rng.fill(&mut ip[12..]);
    } else {
        for group in ip.chunks_mut(2) {
            // Zero half the time (so `::` runs of every length occur), else
            // a value of random width (so leading zeros are dropped).
            if rng.chance(2) {
                let value = (rng.next_u64() as u16) >> rng.below(16);
                group.copy_from_slice(&value.to_be_bytes());
            }
        }
    }
    let port = rng.port();
    let scope = u32::from(rng.chance(2));
    let host = ipv6_text(&ip);
    let addr = libc_v6(&host, port, scope);
    assert_eq!(addr.bytes[8..24], ip, "inet_pton disagrees with ipv6_text({host})");
    let scope_text = if scope == 0 {
        String::new()
    } else {
        format!("%{scope_name}")
    };
    Sample {
        text: format!("[{host}{scope_text}]:{port}"),
        addr,
    }
}

/// A unix name byte: printable ASCII (space and `\` included) half the time, any byte otherwise.
fn name_byte(rng: &mut Rng) -> u8 {
    if rng.chance(2) {
        0x20 + rng.below(0x5f) as u8
    } else {
        rng.byte()
    }
}

/// A path of 1 to 107 bytes (no NUL). Paths starting with `@` are left to
/// their own test, [`unix_path_starting_with_at_sign_round_trips`].
fn unix_path_sample(rng: &mut Rng) -> Sample {
    let len = 1 + rng.below(107) as usize;
    let mut path = Vec::with_capacity(len);
    while path.len() < len {
        let b = name_byte(rng);
        if b != 0 && !(path.is_empty() && b == b'@') {
            path.push(b);
        }
    }
    Sample {
        text: format!("unix:{}", escape(&path)),
        addr: unix_addr(&path, false),
    }
}

/// An abstract name of 0 to 107 bytes, any bytes (NUL included).
fn unix_abstract_sample(rng: &mut Rng) -> Sample {
    let len = rng.below(108) as usize;
    let name: Vec<u8> = (0..len).map(|_| name_byte(rng)).collect();
    Sample {
        text: format!("unix:@{}", escape(&name)),
        addr: unix_addr(&name, true),
    }
}

/// Every check one sample must pass; the failures, described.
fn check_sample(s: &Sample) -> Vec<String> {
    let mut wrong = Vec::new();
    let text = &s.text;
    // text -> parse: the reference bytes (inet_pton + htons for IP), then back.
    match parse(text) {
        Err(f) => wrong.push(format!("parse({text:?}) failed: {}", f.message)),
        Ok(parsed) => {
            if parsed != s.addr {
                wrong.push(format!("parse({text:?}) = {parsed:?}, expected {:?}", s.addr));
            }
            match format(&parsed, TEXT_ROOM) {
                Ok(back) if back == *text => {}
                other => wrong.push(format!("format(parse({text:?})) = {other:?}")),
            }
        }
    }
    // sockaddr -> format: the text, then parse back to the same bytes and length.
    match format(&s.addr, TEXT_ROOM) {
        Err((e, _)) => wrong.push(format!("format({text:?}'s address) failed with {}", errno_name(e))),
        Ok(formatted) => {
            if formatted != *text {
                wrong.push(format!("format gave {formatted:?}, expected {text:?}"));
            }
            match parse(&formatted) {
                Ok(back) if back == s.addr => {}
                Ok(back) => wrong.push(format!("parse(format) of {text:?}: {back:?}, expected {:?}", s.addr)),
                Err(f) => wrong.push(format!("parse({formatted:?}) failed: {}", f.message)),
            }
        }
    }
    // Exactly one byte too small: ENOSPC and an empty string; exact size: fits.
    let n = text.len();
    match format(&s.addr, n) {
        Err((libc::ENOSPC, buf)) if buf[0] == 0 => {}
        other => wrong.push(format!(
            "format({text:?}) into {n} bytes: {other:?}, expected ENOSPC and \"\""
        )),
    }
    if format(&s.addr, n + 1).as_ref() != Ok(text) {
        wrong.push(format!("format({text:?}) into exactly {} bytes failed", n + 1));
    }
    wrong
}

const SAMPLES_PER_KIND: usize = 4000;

/// Runs [`check_sample`] over generated samples; reports every failure found.
fn round_trips(kind: &str, seed: u64, mut generate: impl FnMut(&mut Rng) -> Sample) {
    let mut rng = Rng::new(seed);
    let mut wrong = Vec::new();
    let mut failed_samples = 0;
    for _ in 0..SAMPLES_PER_KIND {
        let sample = generate(&mut rng);
        let w = check_sample(&sample);
        failed_samples += usize::from(!w.is_empty());
        wrong.extend(w);
    }
    eprintln!("{kind}: {SAMPLES_PER_KIND} addresses, both directions, {failed_samples} failed");
    assert!(
        wrong.is_empty(),
        "{kind}: {failed_samples} of {SAMPLES_PER_KIND} samples failed; first problems:\n{}",
        wrong[..wrong.len().min(10)].join("\n")
    );
}

#[test]
fn ipv4_round_trips() {
    round_trips("IPv4", 0x0004_0004, ipv4_sample);
}

#[test]
fn ipv6_round_trips_with_scopes_and_mapped_addresses() {
    let scope = scope_one_name();
    round_trips("IPv6", 0x0006_0006, |rng| ipv6_sample(rng, &scope));
}

#[test]
fn unix_path_round_trips() {
    round_trips("unix path", 0x0a0a_0001, unix_path_sample);
}

#[test]
fn unix_abstract_round_trips() {
    round_trips("unix abstract", 0x0a0a_0002, unix_abstract_sample);
}

#[test]
fn documented_forms_parse_to_the_expected_bytes() {
    let lo = scope_one_name();
    let cases = [
        ("127.0.0.1:8080", libc_v4("127.0.0.1", 8080)),
        ("0.0.0.0:0", libc_v4("0.0.0.0", 0)),
        ("255.255.255.255:65535", libc_v4("255.255.255.255", 65535)),
        ("[::1]:8080", libc_v6("::1", 8080, 0)),
        ("[::]:0", libc_v6("::", 0, 0)),
        (&format!("[fe80::1%{lo}]:80"), libc_v6("fe80::1", 80, 1)),
        ("[fe80::1%1]:80", libc_v6("fe80::1", 80, 1)),
        ("[::ffff:1.2.3.4]:80", libc_v6("::ffff:1.2.3.4", 80, 0)),
        ("unix:/tmp/safesock.sock", unix_addr(b"/tmp/safesock.sock", false)),
        ("unix:@abstract", unix_addr(b"abstract", true)),
        ("unix:@", unix_addr(b"", true)),
        ("unix:", unix_addr(b"", false)),
        ("unix:/a\\x20b\\\\c", unix_addr(b"/a b\\c", false)),
    ];
    for (text, expected) in cases {
        assert_eq!(parse(text).ok(), Some(expected.clone()), "{text}");
        let canonical = if text == "[fe80::1%1]:80" {
            format!("[fe80::1%{lo}]:80")
        } else {
            text.to_owned()
        };
        assert_eq!(format(&expected, TEXT_ROOM), Ok(canonical), "{text}");
    }
    // `outlen` may be NULL.
    let mut out = core::mem::MaybeUninit::<sockaddr_storage>::uninit();
    // SAFETY: a C string literal and a local of the right size.
    let r = unsafe { ffi::ss_addr_parse(c"[::1]:1".as_ptr(), out.as_mut_ptr(), core::ptr::null_mut()) };
    assert_eq!(r, 0, "{}", last_error());
}

/// A socket path may start with `@` (a relative path); written as
/// `unix:@...` it would read back as an abstract name, so the formatter must
/// escape it (`unix:\x40...`) for the text to be the exact inverse.
#[test]
fn unix_path_starting_with_at_sign_round_trips() {
    let addr = unix_addr(b"@relative.sock", false);
    let text = format(&addr, TEXT_ROOM).expect("format");
    let back = parse(&text).map_err(|f| f.message);
    assert_eq!(
        back,
        Ok(addr),
        "path \"@relative.sock\" formatted as {text:?}, which parses to another address"
    );
}

#[test]
fn malformed_text_is_einval_with_the_expected_form() {
    let texts = [
        "127.0.0.1",
        "1.2.3.4:99999",
        "[::1",
        "[::1]",
        ":80",
        "",
        "localhost:80",
        "::1:80",
        "1.2.3.4:",
        "[fe80::1%no-such-if0]:80",
        "unix:/a\\q",
        "unix:/a\\x00b",
        &format!("unix:/{}", "a".repeat(108)),
    ];
    for text in texts {
        let f = parse(text).expect_err(text);
        assert!(f.message.starts_with("ss_addr_parse("), "{}", f.message);
        assert!(quotes(&f.message, text), "text not quoted: {}", f.message);
        assert!(
            f.message.contains("expected") || f.message.contains("must") || f.message.contains("at most"),
            "no expected form: {}",
            f.message
        );
    }
    let mut out = core::mem::MaybeUninit::<sockaddr_storage>::uninit();
    // SAFETY: NULL text is documented as EINVAL; `out` is a local.
    let r = unsafe { ffi::ss_addr_parse(core::ptr::null(), out.as_mut_ptr(), core::ptr::null_mut()) };
    failure(r.into(), "ss_addr_parse(NULL)", &[libc::EINVAL]);
}

#[test]
fn parse_with_bad_pointers_is_efault() {
    let bad = BadMemory::new();
    let mut len: socklen_t = 0;
    let mut out = core::mem::MaybeUninit::<sockaddr_storage>::uninit();
    let cases: [(&str, *const c_char, *mut sockaddr_storage, *mut socklen_t); 4] = [
        ("NULL out", c"127.0.0.1:1".as_ptr(), core::ptr::null_mut(), &mut len),
        (
            "no-access out",
            c"127.0.0.1:1".as_ptr(),
            bad.no_access().cast(),
            &mut len,
        ),
        (
            "no-access outlen",
            c"127.0.0.1:1".as_ptr(),
            out.as_mut_ptr(),
            bad.no_access().cast(),
        ),
        ("unmapped text", bad.unmapped().cast(), out.as_mut_ptr(), &mut len),
    ];
    for (what, text, out, outlen) in cases {
        // SAFETY: the library accesses every pointer through the kernel;
        // bad ones are documented to give EFAULT.
        let r = unsafe { ffi::ss_addr_parse(text, out, outlen) };
        failure(r.into(), what, &[libc::EFAULT]);
    }
}

#[test]
fn format_is_enospc_instead_of_truncating() {
    let addr = libc_v4("127.0.0.1", 8080);
    assert_eq!(format(&addr, 15), Ok("127.0.0.1:8080".to_owned()));
    let (e, buf) = format(&addr, 14).expect_err("one byte short");
    assert_eq!(e, libc::ENOSPC);
    assert_eq!(buf[0], 0, "the buffer must hold \"\"");
    assert!(
        buf[1..].iter().all(|&b| b == 0xa5),
        "wrote past the empty string: {buf:?}"
    );
    assert!(last_error().contains("ENOSPC"), "{}", last_error());
    // No room at all: nothing may be written, not even the NUL.
    let (e, buf) = format(&addr, 0).expect_err("no room");
    assert_eq!((e, buf[0]), (libc::ENOSPC, 0xa5));
    // SAFETY: a zero-length buffer may be NULL.
    let r = unsafe { ffi::ss_addr_format(addr.as_ptr(), addr.len, core::ptr::null_mut(), 0) };
    failure(r.into(), "NULL buffer of length 0", &[libc::ENOSPC]);
}

/// Runs `ss_addr_format` on `bytes` with `len` and checks the errno.
#[track_caller]
fn format_fails(what: &str, bytes: &[u8], len: socklen_t, errno: i32) {
    let mut buf = [0u8; TEXT_ROOM];
    // SAFETY: `bytes` and `buf` are live; `len` may exceed `bytes` only where
    // the library must refuse it before reading (checked by the tests).
    let r = unsafe { ffi::ss_addr_format(bytes.as_ptr().cast(), len, buf.as_mut_ptr().cast(), buf.len()) };
    failure(r.into(), what, &[errno]);
}

#[test]
fn format_rejects_families_it_cannot_print() {
    // SAFETY: sockaddr_nl is plain data; zero is a valid value.
    let mut nl: libc::sockaddr_nl = unsafe { core::mem::zeroed() };
    nl.nl_family = libc::AF_NETLINK as sa_family_t;
    let nl = Addr::of(&nl);
    format_fails("AF_NETLINK", &nl.bytes, nl.len, libc::EAFNOSUPPORT);
    let odd = Addr::new(&12345u16.to_ne_bytes());
    format_fails("family 12345", &odd.bytes, 16, libc::EAFNOSUPPORT);
}

#[test]
fn format_rejects_lengths_that_do_not_fit_the_family() {
    let v4 = libc_v4("10.0.0.1", 80);
    let v6 = libc_v6("::1", 80, 0);
    let mut long = v4.bytes.clone();
    long.resize(2 * STORAGE, 0);
    let cases = [
        ("AF_INET with 8", &v4.bytes, 8),
        ("AF_INET6 with 20", &v6.bytes, 20),
        ("AF_INET6 with 27", &v6.bytes, 27),
        ("length 0", &v4.bytes, 0),
        ("length 1", &v4.bytes, 1),
        (
            "AF_INET with sizeof(sockaddr_storage) + 1",
            &long,
            STORAGE as socklen_t + 1,
        ),
    ];
    for (what, bytes, len) in cases {
        format_fails(what, bytes, len, libc::EINVAL);
    }
}

#[test]
fn format_with_bad_pointers_is_efault() {
    let bad = BadMemory::new();
    let addr = libc_v4("127.0.0.1", 1);
    let mut buf = [0u8; 64];
    let len = size_of::<libc::sockaddr_in>() as socklen_t;
    let cases: [(&str, *const libc::sockaddr, *mut c_char); 4] = [
        ("NULL address", core::ptr::null(), buf.as_mut_ptr().cast()),
        ("unmapped address", bad.unmapped().cast(), buf.as_mut_ptr().cast()),
        ("NULL buffer", addr.as_ptr(), core::ptr::null_mut()),
        ("no-access buffer", addr.as_ptr(), bad.no_access().cast()),
    ];
    for (what, ptr, out) in cases {
        // SAFETY: the library accesses both pointers through the kernel; bad
        // ones are documented to give EFAULT.
        let r = unsafe { ffi::ss_addr_format(ptr, len, out, 64) };
        failure(r.into(), what, &[libc::EFAULT]);
    }
}
