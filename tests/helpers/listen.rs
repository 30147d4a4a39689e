//! `ss_tcp_listen` and `ss_udp_bind`, and the address-text rules all three
//! text-taking helpers share (`ss_tcp_connect` too): numeric forms, host
//! names through `getaddrinfo`, malformed text, unknown hosts and unreadable
//! text.

use std::ffi::{CStr, c_char, c_int};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

use safesock::ffi;

use crate::common::*;

/// What a listening or bound socket must look like.
fn check_bound(fd: &SsFd, text: &str, ty: c_int) -> SocketAddr {
    assert!(is_cloexec(fd.raw()), "{text}: FD_CLOEXEC not set");
    assert_eq!(getsockopt_int(fd.raw(), libc::SOL_SOCKET, libc::SO_TYPE), ty, "{text}");
    let port = local_port(fd);
    let local = socket_addr(fd.raw(), false).expect("getsockname");
    assert_eq!(local.port(), port, "{text}: ss_local_port disagrees with getsockname");
    let host = text.strip_suffix(":0").expect("test texts use port 0");
    let wanted: SocketAddr = format!("{host}:1")
        .parse()
        .unwrap_or_else(|_| panic!("{text} is a numeric test address"));
    assert_eq!(local.ip(), wanted.ip(), "{text}: bound to another address");
    local
}

/// The loopback address that reaches a socket bound to `ip`.
fn loopback_for(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
    }
}

/// The numeric forms this machine can bind.
fn numeric_texts() -> Vec<&'static str> {
    let mut texts = vec!["127.0.0.1:0", "0.0.0.0:0"];
    if has_ipv6_loopback() {
        texts.extend(["[::1]:0", "[::]:0"]);
    }
    texts
}

#[test]
fn tcp_listen_numeric_addresses() {
    for text in numeric_texts() {
        let listener = fd_or_panic(tcp_listen(text, 8), text);
        let local = check_bound(&listener, text, libc::SOCK_STREAM);
        assert_ne!(
            getsockopt_int(listener.raw(), libc::SOL_SOCKET, libc::SO_REUSEADDR),
            0,
            "{text}: SO_REUSEADDR off"
        );
        assert_eq!(getsockopt_int(listener.raw(), libc::SOL_SOCKET, libc::SO_ACCEPTCONN), 1);
        assert_eq!(ffi::ss_tcp_state(listener.raw()), ffi::SS_TCP_LISTEN, "{text}");

        let peer = format!("{}:{}", host_text(loopback_for(local.ip())), local.port());
        let client = fd_or_panic(tcp_connect(&peer, 5000), &peer);
        let server = accept(&listener);
        assert_eq!(
            socket_addr(server.raw(), true),
            socket_addr(client.raw(), false),
            "{text}: the accepted peer is not the client"
        );
    }
}

#[test]
fn udp_bind_numeric_addresses() {
    for text in numeric_texts() {
        let fd = fd_or_panic(udp_bind(text), text);
        let local = check_bound(&fd, text, libc::SOCK_DGRAM);
        assert_eq!(
            getsockopt_int(fd.raw(), libc::SOL_SOCKET, libc::SO_REUSEADDR),
            0,
            "{text}: ss_udp_bind documents no SO_REUSEADDR"
        );

        let to = SocketAddr::new(loopback_for(local.ip()), local.port());
        let sender = UdpSocket::bind(SocketAddr::new(to.ip(), 0)).expect("plain UDP socket");
        sender.send_to(b"ping", to).expect("send_to");
        assert_ne!(wait_for(fd.raw(), libc::POLLIN, PATIENCE), 0, "{text}: no datagram");
        let mut buf = [0u8; 16];
        // SAFETY: `buf` is a local array of the length given.
        let n = unsafe { ffi::ss_read(fd.raw(), buf.as_mut_ptr().cast(), buf.len()) };
        assert_eq!(n, 4, "{text}: {}", last_error());
        assert_eq!(&buf[..4], b"ping");
    }
}

/// `[::]` accepts IPv4 exactly when the system default (`bindv6only`) says so.
#[test]
fn any_ipv6_address_is_dual_stack_as_the_system_default() {
    if !has_ipv6_loopback() {
        eprintln!("skipped: no IPv6 loopback");
        return;
    }
    let v6only_default = std::fs::read_to_string("/proc/sys/net/ipv6/bindv6only")
        .map(|s| s.trim() == "1")
        .unwrap_or(false);
    let listener = fd_or_panic(tcp_listen("[::]:0", 8), "[::]:0");
    let port = local_port(&listener);
    assert_eq!(
        getsockopt_int(listener.raw(), libc::IPPROTO_IPV6, libc::IPV6_V6ONLY) != 0,
        v6only_default,
        "IPV6_V6ONLY differs from /proc/sys/net/ipv6/bindv6only"
    );

    let via6 = fd_or_panic(tcp_connect(&format!("[::1]:{port}"), 5000), "connect via ::1");
    let from6 = accept(&listener);
    assert_eq!(socket_addr(from6.raw(), true), socket_addr(via6.raw(), false));

    let via4 = tcp_connect(&format!("127.0.0.1:{port}"), 5000);
    if v6only_default {
        failure(
            via4.into(),
            "connect via 127.0.0.1 to a v6-only listener",
            &[libc::ECONNREFUSED],
        );
        return;
    }
    let via4 = fd_or_panic(via4, "connect via 127.0.0.1 to [::]");
    let from4 = accept(&listener);
    let client = socket_addr(via4.raw(), false).expect("client address");
    let seen = socket_addr(from4.raw(), true).expect("peer address");
    assert_eq!(seen.port(), client.port());
    assert_eq!(
        seen.ip(),
        IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped()),
        "an IPv4 client of [::] appears as ::ffff:127.0.0.1"
    );
}

/// The addresses `getaddrinfo(host)` gives, in its order, as the library asks for them.
fn resolve(host: &str, socktype: c_int) -> Vec<IpAddr> {
    let c_host = cstring(host);
    // SAFETY: addrinfo is plain data; zero means "no preference".
    let mut hints: libc::addrinfo = unsafe { core::mem::zeroed() };
    hints.ai_family = libc::AF_UNSPEC;
    hints.ai_socktype = socktype;
    let mut list: *mut libc::addrinfo = core::ptr::null_mut();
    // SAFETY: host and hints are valid; the list is freed below.
    let rc = unsafe { libc::getaddrinfo(c_host.as_ptr(), core::ptr::null(), &hints, &mut list) };
    assert_eq!(rc, 0, "getaddrinfo({host})");
    let mut found = Vec::new();
    let mut node = list;
    while !node.is_null() {
        // SAFETY: `node` is an element of the list getaddrinfo returned.
        let info = unsafe { &*node };
        // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let len = (info.ai_addrlen as usize).min(size_of::<libc::sockaddr_storage>());
        // SAFETY: ai_addr holds ai_addrlen readable bytes (only those are
        // copied), and the destination is a local storage of at least that size.
        unsafe { std::ptr::copy_nonoverlapping(info.ai_addr.cast::<u8>(), (&raw mut storage).cast::<u8>(), len) };
        found.extend(to_std(&storage, info.ai_addrlen).map(|a| a.ip()));
        node = info.ai_next;
    }
    // SAFETY: `list` came from getaddrinfo and is freed once.
    unsafe { libc::freeaddrinfo(list) };
    found
}

#[test]
fn host_name_is_resolved_and_the_first_result_used() {
    let stream = resolve("localhost", libc::SOCK_STREAM);
    let listener = fd_or_panic(tcp_listen("localhost:0", 8), "localhost:0");
    let local = socket_addr(listener.raw(), false).expect("getsockname");
    assert_eq!(
        local.ip(),
        stream[0],
        "ss_tcp_listen(localhost:0) did not use the first result"
    );
    assert!(getsockopt_int(listener.raw(), libc::SOL_SOCKET, libc::SO_REUSEADDR) != 0);
    let port = local_port(&listener);
    let client = fd_or_panic(tcp_connect(&format!("localhost:{port}"), 5000), "connect localhost");
    let server = accept(&listener);
    assert_eq!(socket_addr(server.raw(), true), socket_addr(client.raw(), false));

    let datagram = resolve("localhost", libc::SOCK_DGRAM);
    let udp = fd_or_panic(udp_bind("localhost:0"), "udp localhost:0");
    assert_eq!(socket_addr(udp.raw(), false).map(|a| a.ip()), Some(datagram[0]));
    assert!(local_port(&udp) > 0);
}

/// Listeners on `ips`, all on one port the system picked for the first.
/// Retries a few times in case another program holds that port elsewhere.
fn listeners_on_one_port(ips: &[IpAddr]) -> (u16, Vec<SsFd>) {
    for _ in 0..20 {
        let first = fd_or_panic(tcp_listen(&format!("{}:0", host_text(ips[0])), 4), "first");
        let port = local_port(&first);
        let mut all = vec![first];
        for ip in &ips[1..] {
            let r = tcp_listen(&format!("{}:{port}", host_text(*ip)), 4);
            if r >= 0 {
                all.push(SsFd(r));
            }
        }
        if all.len() == ips.len() {
            return (port, all);
        }
    }
    panic!("could not listen on one port on all of {ips:?}");
}

/// Each resolved address is tried in order; when all fail the last error is
/// reported. Here a port busy on every address of `localhost` gives
/// `EADDRINUSE`; where `localhost` has several addresses (commonly `::1` and
/// `127.0.0.1`), busy first addresses are skipped for listening, and refused
/// first addresses are skipped for connecting.
#[test]
fn host_name_tries_each_result_in_order_and_reports_the_last_error() {
    let ips = resolve("localhost", libc::SOCK_STREAM);
    let (port, busy) = listeners_on_one_port(&ips);
    let text = format!("localhost:{port}");
    let f = failure(tcp_listen(&text, 4).into(), &text, &[libc::EADDRINUSE]);
    assert!(quotes(&f.message, &text), "{}", f.message);
    drop(busy);

    if ips.len() < 2 {
        eprintln!("note: localhost has one address here ({ips:?}); the skip-to-next cases need two");
        return;
    }
    // Listening: the first address busy, the second one free.
    let (port, busy) = listeners_on_one_port(&ips[..1]);
    let second = fd_or_panic(
        tcp_listen(&format!("localhost:{port}"), 4),
        "listen on the second address",
    );
    assert_eq!(socket_addr(second.raw(), false).map(|a| a.ip()), Some(ips[1]));
    drop(busy);

    // Connecting: nothing on the first address, a listener on the second.
    let client = fd_or_panic(
        tcp_connect(&format!("localhost:{port}"), 5000),
        "connect past a refusal",
    );
    assert_eq!(socket_addr(client.raw(), true).map(|a| a.ip()), Some(ips[1]));
    drop(second);
    let f = failure(
        tcp_connect(&format!("localhost:{port}"), 5000).into(),
        "connect with every address refused",
        &[libc::ECONNREFUSED],
    );
    assert!(f.message.contains("ECONNREFUSED"), "{}", f.message);
}

/// The three helpers that take address text, for tests of the text rules.
const TEXT_TAKERS: [(&str, unsafe extern "C" fn(*const c_char) -> c_int); 3] = [
    ("ss_tcp_listen", listen_16),
    ("ss_tcp_connect", connect_1s),
    ("ss_udp_bind", ffi::ss_udp_bind),
];

unsafe extern "C" fn listen_16(text: *const c_char) -> c_int {
    // SAFETY: the caller's pointer is passed on; any value is allowed.
    unsafe { ffi::ss_tcp_listen(text, 16) }
}

unsafe extern "C" fn connect_1s(text: *const c_char) -> c_int {
    // SAFETY: as in listen_16.
    unsafe { ffi::ss_tcp_connect(text, 1000) }
}

#[test]
fn malformed_text_is_einval_quoting_the_text_and_the_expected_form() {
    let texts = [
        "127.0.0.1",
        "1.2.3.4:99999",
        "[::1",
        ":80",
        "",
        "[::1]:",
        "unix:/tmp/x",
        "1.2.3.4:-1",
    ];
    for (name, call) in TEXT_TAKERS {
        for text in texts {
            let c = cstring(text);
            // SAFETY: a valid C string that outlives the call.
            let r = unsafe { call(c.as_ptr()) };
            let f = failure(r.into(), &format!("{name}({text:?})"), &[libc::EINVAL]);
            assert!(f.message.starts_with(name), "{}", f.message);
            assert!(quotes(&f.message, text), "text not quoted: {}", f.message);
            assert!(
                f.message.contains("expected") || f.message.contains("must be"),
                "no expected form: {}",
                f.message
            );
        }
        // SAFETY: NULL is documented as allowed (EINVAL).
        let r = unsafe { call(core::ptr::null()) };
        let f = failure(r.into(), &format!("{name}(NULL)"), &[libc::EINVAL]);
        assert!(f.message.contains("NULL"), "{}", f.message);
        assert!(f.message.contains("expected"), "{}", f.message);
    }
}

/// The resolver's text for an error code.
fn gai_text(code: c_int) -> String {
    // SAFETY: gai_strerror returns a static NUL-terminated string.
    unsafe { CStr::from_ptr(libc::gai_strerror(code)) }
        .to_string_lossy()
        .into_owned()
}

#[test]
fn unknown_host_is_enoent_with_the_resolvers_text() {
    let text = "no-such-host.safesock-test.invalid:80";
    for (name, call) in TEXT_TAKERS {
        let c = cstring(text);
        // SAFETY: a valid C string that outlives the call.
        let r = unsafe { call(c.as_ptr()) };
        let f = failure(r.into(), name, &[libc::ENOENT, libc::EAGAIN]);
        let resolver_texts = if f.errno == libc::ENOENT {
            vec![gai_text(libc::EAI_NONAME), gai_text(libc::EAI_NODATA)]
        } else {
            vec![gai_text(libc::EAI_AGAIN)]
        };
        assert!(
            resolver_texts.iter().any(|t| f.message.contains(t.as_str())),
            "{name}: none of {resolver_texts:?} in: {}",
            f.message
        );
        assert!(quotes(&f.message, text), "{}", f.message);
    }
}

unsafe extern "C" fn parse_to_scratch(text: *const c_char) -> c_int {
    let mut out = core::mem::MaybeUninit::<libc::sockaddr_storage>::uninit();
    // SAFETY: the caller's pointer is passed on (any value is allowed); `out`
    // is a local of the right size and NULL `outlen` is allowed.
    unsafe { ffi::ss_addr_parse(text, out.as_mut_ptr(), core::ptr::null_mut()) }
}

/// Text far longer than any address (2000 bytes) is malformed text: the
/// documented errno is EINVAL, and the message quotes (the start of) it.
#[test]
fn overlong_text_is_einval_quoting_its_start() {
    let text = format!("{}:80", "1".repeat(2000));
    let c = cstring(&text);
    let takers = TEXT_TAKERS
        .into_iter()
        .chain([("ss_addr_parse", parse_to_scratch as _)]);
    let mut wrong = Vec::new();
    for (name, call) in takers {
        // SAFETY: a valid C string that outlives the call.
        let r = unsafe { call(c.as_ptr()) };
        let e = errno();
        let message = last_error();
        if r != -1 || e != libc::EINVAL || !quotes(&message, &text) {
            wrong.push(format!("{name}: returned {r}, {}, message: {message}", errno_name(e)));
        }
    }
    assert!(
        wrong.is_empty(),
        "expected -1/EINVAL quoting the text:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn unreadable_text_is_efault() {
    let bad = BadMemory::new();
    for (name, call) in TEXT_TAKERS {
        for ptr in [bad.unmapped(), bad.no_access()] {
            // SAFETY: the helpers read the text through the kernel; an
            // unreadable pointer is documented to give EFAULT.
            let r = unsafe { call(ptr.cast()) };
            failure(r.into(), &format!("{name}(unreadable)"), &[libc::EFAULT]);
        }
    }
    let mut out = core::mem::MaybeUninit::<libc::sockaddr_storage>::uninit();
    // SAFETY: as above; `out` is a local of the right size.
    let r = unsafe { ffi::ss_addr_parse(bad.unmapped().cast(), out.as_mut_ptr(), core::ptr::null_mut()) };
    failure(r.into(), "ss_addr_parse(unreadable)", &[libc::EFAULT]);
}

/// A text that ends exactly at the end of a readable page is read whole.
#[test]
fn text_ending_at_a_page_boundary_is_read() {
    let mut bad = BadMemory::new();
    let page = bad.readable_first_page();
    let text = b"127.0.0.1:0\0";
    let start = page.len() - text.len();
    page[start..].copy_from_slice(text);
    // SAFETY: a NUL-terminated string in a mapped page, right before the unmapped one.
    let r = unsafe { ffi::ss_tcp_listen(page[start..].as_ptr().cast(), 1) };
    drop(fd_or_panic(r, "text at a page end"));
}
