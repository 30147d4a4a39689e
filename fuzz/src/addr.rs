//! The `addr` target: `ss_addr_parse` and `ss_addr_format` on arbitrary
//! text and arbitrary address bytes, lengths and buffer sizes.
//!
//! Properties checked:
//!
//! - text that parses gives at most `sockaddr_storage` bytes, zeroes after
//!   the address, and formats back to a text that parses to the very same
//!   bytes and length (and formats to itself again);
//! - any bytes that format give a NUL-terminated text of the returned length
//!   that parses back to an address with the same family, port and host (the
//!   bytes the text form leaves out, such as `sin_zero` or the flow label, may
//!   differ), and formatting that again gives the same text;
//! - every buffer size: too small is `ENOSPC` with `""` left in the buffer
//!   and nothing written after its first byte, exactly enough succeeds;
//! - failures are `EINVAL`, `EAFNOSUPPORT`, `EFAULT` or `ENOSPC` with a
//!   message naming the call; no crash, no panic, no read past the length
//!   given (the address ends at a guard page).

use core::ffi::{CStr, c_char, c_int};

use libc::{sockaddr, sockaddr_storage, socklen_t};
use std::sync::OnceLock;

use crate::arena::{Arena, CTRL_LEN, DATA_LEN};
use crate::input::{ADDRESS_FAMILIES, Source};

fn arena() -> &'static Arena {
    static A: OnceLock<Arena> = OnceLock::new();
    A.get_or_init(Arena::new)
}

fn errno() -> c_int {
    crate::calls::api::errno()
}

fn last_error() -> String {
    let p = safesock::ffi::ss_last_error();
    // SAFETY: ss_last_error returns a NUL-terminated string; copied at once.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

fn check_failure(call: &str, allowed: &[c_int], context: &dyn Fn() -> String) {
    let e = errno();
    assert!(
        allowed.contains(&e),
        "{call} failed with errno {e}, not one of {allowed:?}: {}",
        context()
    );
    let m = last_error();
    assert!(
        m.starts_with(&format!("{call}(")),
        "{call}: message {m:?} does not name the call: {}",
        context()
    );
    assert!(m.len() <= 511, "{call}: message over 511 bytes: {m:?}");
    assert!(
        !m.contains("internal error"),
        "{call}: a panic was contained: {m:?}: {}",
        context()
    );
}

/// An address as `ss_addr_parse` gives it.
#[derive(Clone, PartialEq, Eq, Debug)]
struct Parsed {
    bytes: Vec<u8>,
    len: socklen_t,
}

fn parse(text: &[u8]) -> Option<Parsed> {
    let mut t = text.to_vec();
    t.push(0);
    // SAFETY: sockaddr_storage is plain data.
    let mut out: sockaddr_storage = unsafe { core::mem::zeroed() };
    // Fill with a canary so "zeroes after the address" is checked.
    // SAFETY: viewing a local as bytes.
    unsafe { core::ptr::write_bytes((&raw mut out).cast::<u8>(), 0xa5, size_of::<sockaddr_storage>()) };
    let mut len: socklen_t = 0xdead;
    // SAFETY: NUL-terminated text and local out-parameters.
    let r = unsafe { safesock::ffi::ss_addr_parse(t.as_ptr().cast(), &mut out, &mut len) };
    let shown = || String::from_utf8_lossy(text).into_owned();
    if r != 0 {
        assert_eq!(r, -1, "ss_addr_parse({:?}) returned {r}", shown());
        check_failure("ss_addr_parse", &[libc::EINVAL], &shown);
        return None;
    }
    assert_eq!(r, 0);
    // SAFETY: the storage is a local of 128 bytes.
    let all = unsafe { core::slice::from_raw_parts((&raw const out).cast::<u8>(), size_of::<sockaddr_storage>()) };
    let n = len as usize;
    assert!(
        (2..=all.len()).contains(&n),
        "ss_addr_parse({:?}): length {len}",
        shown()
    );
    assert!(
        all[n..].iter().all(|&b| b == 0),
        "ss_addr_parse({:?}) left non-zero bytes after the address: {:?}",
        shown(),
        &all[n..]
    );
    // outlen NULL is allowed and gives the same bytes.
    // SAFETY: as above, with a NULL length.
    let mut again: sockaddr_storage = unsafe { core::mem::zeroed() };
    // SAFETY: NUL-terminated text, a local out-parameter, NULL outlen.
    let r2 = unsafe { safesock::ffi::ss_addr_parse(t.as_ptr().cast(), &mut again, core::ptr::null_mut()) };
    assert_eq!(r2, 0, "ss_addr_parse({:?}) with NULL outlen failed", shown());
    // SAFETY: viewing a local as bytes.
    let again = unsafe { core::slice::from_raw_parts((&raw const again).cast::<u8>(), all.len()) };
    assert_eq!(again, all, "ss_addr_parse({:?}) differs with NULL outlen", shown());
    Some(Parsed {
        bytes: all[..n].to_vec(),
        len,
    })
}

/// Formats the `len` bytes at `ptr` into a buffer of `room` bytes ending at
/// a guard page (so a write past `room` faults), checking every rule.
fn format_at(ptr: *const sockaddr, len: socklen_t, room: usize, context: &dyn Fn() -> String) -> Option<String> {
    let ar = arena();
    let room = room.min(4096);
    // SAFETY: the buffer lies at the end of the control area, before its guard page.
    let buf = unsafe { ar.ctrl().add(CTRL_LEN - room) };
    // SAFETY: as above; the canary fills the buffer.
    unsafe { core::ptr::write_bytes(buf, 0xa5, room) };
    // SAFETY: the pointers are checked by safesock through the kernel.
    let r = unsafe { safesock::ffi::ss_addr_format(ptr, len, buf.cast::<c_char>(), room) };
    // SAFETY: [buf, buf + room) lies in the data area.
    let out = unsafe { core::slice::from_raw_parts(buf, room) };
    if r < 0 {
        assert_eq!(r, -1);
        let e = errno();
        check_failure(
            "ss_addr_format",
            &[libc::EINVAL, libc::EAFNOSUPPORT, libc::EFAULT, libc::ENOSPC],
            context,
        );
        if e == libc::ENOSPC && room > 0 {
            assert_eq!(out[0], 0, "ENOSPC must leave \"\" in the buffer: {}", context());
            assert!(
                out[1..].iter().all(|&b| b == 0xa5),
                "ENOSPC wrote past the first byte: {:?}: {}",
                out,
                context()
            );
        } else if e != libc::ENOSPC {
            assert!(
                out.iter().all(|&b| b == 0xa5),
                "a failed format wrote into the buffer: {}",
                context()
            );
        }
        return None;
    }
    let n = r as usize;
    assert!(
        n < room,
        "ss_addr_format returned {n} with {room} bytes of room: {}",
        context()
    );
    assert_eq!(out[n], 0, "the text is not NUL-terminated at its length: {}", context());
    assert!(!out[..n].contains(&0), "the text has a NUL inside: {}", context());
    let text = core::str::from_utf8(&out[..n]).unwrap_or_else(|_| panic!("not UTF-8: {:?}: {}", &out[..n], context()));
    assert!(text.is_ascii(), "the text is not ASCII: {text:?}");
    Some(text.to_owned())
}

/// Formats with every interesting room: too small by one is ENOSPC, exact succeeds.
fn format_all_rooms(ptr: *const sockaddr, len: socklen_t, context: &dyn Fn() -> String) -> Option<String> {
    let text = format_at(ptr, len, 512, context)?;
    let n = text.len();
    for room in [0, 1, n / 2, n, n + 1, n + 2] {
        match format_at(ptr, len, room, context) {
            Some(t) => {
                assert!(room > n, "room {room} for a text of {n} bytes succeeded: {}", context());
                assert_eq!(t, text, "the text depends on the room: {}", context());
            }
            None => assert!(room <= n, "room {room} for a text of {n} bytes failed: {}", context()),
        }
    }
    // NULL with no room is ENOSPC; NULL with room is EFAULT.
    // SAFETY: safesock checks the buffer through the kernel.
    let r = unsafe { safesock::ffi::ss_addr_format(ptr, len, core::ptr::null_mut(), 0) };
    assert!(
        r == -1 && errno() == libc::ENOSPC,
        "NULL buffer, room 0: {r} errno {}: {}",
        errno(),
        context()
    );
    // SAFETY: as above.
    let r = unsafe { safesock::ffi::ss_addr_format(ptr, len, core::ptr::null_mut(), 64) };
    assert!(
        r == -1 && errno() == libc::EFAULT,
        "NULL buffer, room 64: {r} errno {}: {}",
        errno(),
        context()
    );
    Some(text)
}

fn text_round_trip(text: &[u8]) {
    let Some(p) = parse(text) else {
        return;
    };
    let shown = || format!("text {:?} parsed to {:?}", String::from_utf8_lossy(text), p);
    let t2 = format_all_rooms(p.bytes.as_ptr().cast(), p.len, &shown)
        .unwrap_or_else(|| panic!("a parsed address does not format: {}", shown()));
    let p2 = parse(t2.as_bytes()).unwrap_or_else(|| panic!("the formatted text {t2:?} does not parse: {}", shown()));
    assert_eq!(
        p2,
        p,
        "parse(format(parse(text))) differs: formatted {t2:?}: {}",
        shown()
    );
}

fn bytes_round_trip(s: &mut Source<'_>) {
    let family = s.pick(ADDRESS_FAMILIES);
    let len = s.uint(&[
        0,
        1,
        2,
        3,
        15,
        16,
        17,
        24,
        27,
        28,
        29,
        100,
        109,
        110,
        111,
        112,
        127,
        128,
        129,
        200,
        u32::MAX,
    ]);
    let mapped = s.pick(&[128usize, 128, 128, 0, 1, 2, 16, 27, 64, 110]);
    let mut bytes = [0u8; 128];
    bytes[..2].copy_from_slice(&family.to_ne_bytes());
    let body = s.rest(126);
    bytes[2..2 + body.len()].copy_from_slice(body);
    // The address ends `mapped` bytes before a guard page: a length over
    // that must fault in the kernel (EFAULT), never be read by safesock.
    let ar = arena();
    // SAFETY: the last `mapped` bytes of the data area.
    let at = unsafe { ar.data().add(DATA_LEN - mapped) };
    // SAFETY: [at, at + mapped) lies in the data area.
    unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), at, mapped) };
    let shown = || {
        format!(
            "family {family:#x}, addrlen {len}, {mapped} bytes mapped, bytes {:?}",
            &bytes[..]
        )
    };
    let Some(text) = format_all_rooms(at.cast(), len, &shown) else {
        return;
    };
    let n = len as usize;
    assert!(
        n <= mapped,
        "formatted {n} bytes where only {mapped} were mapped: {}",
        shown()
    );
    let p = parse(text.as_bytes()).unwrap_or_else(|| panic!("formatted text {text:?} does not parse: {}", shown()));
    let what = || format!("{text:?} parses to {p:?}: {}", shown());
    match c_int::from(family) {
        libc::AF_INET => assert_eq!(p.bytes[..8], bytes[..8], "{}", what()),
        libc::AF_INET6 => {
            assert_eq!(p.bytes[..4], bytes[..4], "{}", what());
            assert_eq!(p.bytes[8..28], bytes[8..28], "{}", what());
        }
        libc::AF_UNIX if n <= 2 => assert_eq!(p.len, 2, "{}", what()),
        libc::AF_UNIX if bytes[2] == 0 => assert_eq!(p.bytes, bytes[..n], "{}", what()),
        libc::AF_UNIX => {
            let path = |b: &[u8]| b[2..].iter().take_while(|&&c| c != 0).copied().collect::<Vec<u8>>();
            assert_eq!(path(&p.bytes), path(&bytes[..n]), "{}", what());
        }
        _ => panic!("family {family:#x} formatted as {text:?}: {}", shown()),
    }
    let again = format_all_rooms(p.bytes.as_ptr().cast(), p.len, &shown)
        .unwrap_or_else(|| panic!("the parsed form of {text:?} does not format: {}", shown()));
    assert_eq!(again, text, "format(parse(format(bytes))) differs: {}", shown());
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut s = Source::new(data);
    if s.byte() % 2 == 0 {
        let text = s.rest(2048);
        let text = &text[..text.iter().position(|&b| b == 0).unwrap_or(text.len())];
        text_round_trip(text);
    } else {
        bytes_round_trip(&mut s);
    }
}
