//! Cases for `accept` and `accept4`: one shared list run through either
//! function (accept4 with flags 0), plus accept4's flag cases.

use libc::{SOCK_DGRAM, SOCK_SEQPACKET, SOCK_STREAM, c_int, sockaddr, socklen_t};

use crate::common::{Wild, set_nonblocking};
use crate::fixtures::{ADDR_LENS, Family, RawAddr, bad_fd_cases, poll_now, value_cases, wild_cases};
use crate::harness::{Api, Case, Owned, Probe, Table};

/// One of the two accept functions, with the flags accept4 gets.
#[derive(Clone, Copy)]
enum Accept {
    Plain,
    Four(c_int),
}

impl Accept {
    /// Calls the function through `api`.
    ///
    /// # Safety
    ///
    /// `addr`/`len` must be valid for the kernel to write, or deliberately
    /// invalid pointers that only the kernel dereferences.
    unsafe fn call(self, api: &Api, fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
        match self {
            // SAFETY: forwarded from this function's contract.
            Accept::Plain => unsafe { (api.accept)(fd, addr, len) },
            // SAFETY: forwarded from this function's contract.
            Accept::Four(flags) => unsafe { (api.accept4)(fd, addr, len, flags) },
        }
    }
}

/// Accepts on `listener` into a pattern-filled buffer with `*addrlen = len`,
/// and records the result: the new descriptor's properties and peer, the
/// address written, the length, and whether a connection is still queued.
fn accept_into(p: &mut Probe, how: Accept, listener: c_int, len: socklen_t) {
    let mut addr = RawAddr::pattern();
    let mut addrlen = len;
    // SAFETY: addr is a live 256-byte buffer; lengths above that are
    // rejected by the kernel before it writes.
    let fd = p.call_new_fd(listener, |api| unsafe {
        how.call(api, listener, addr.mut_ptr(), &mut addrlen)
    });
    p.out_addr("addr", &addr, addrlen);
    if fd >= 0 {
        p.out_peername("new fd's peer", fd);
        p.out_sockname("new fd's local address", fd);
    }
    p.out("listener still ready", poll_now(listener));
}

/// A listener of `family`/`ty` with one connection waiting.
fn with_pending(p: &mut Probe, family: Family, ty: c_int) -> c_int {
    p.pending(family, ty).1
}

/// The cases both functions share.
fn shared_cases(how: Accept) -> Vec<Case> {
    type Prepare = fn(&mut Probe) -> c_int;
    let listeners: [(&str, Prepare); 10] = [
        ("pending TCP over 127.0.0.1", |p| {
            with_pending(p, Family::V4, SOCK_STREAM)
        }),
        ("pending TCP over ::1", |p| with_pending(p, Family::V6, SOCK_STREAM)),
        ("pending AF_UNIX stream (path)", |p| {
            with_pending(p, Family::UnixPath, SOCK_STREAM)
        }),
        ("pending AF_UNIX seqpacket (abstract)", |p| {
            with_pending(p, Family::UnixAbstract, SOCK_SEQPACKET)
        }),
        ("pending AF_UNIX stream from a client bound to a path", |p| {
            let (listener, addr) = p.listener(Family::UnixPath, SOCK_STREAM);
            let (client, _) = p.bound(Family::UnixPath, SOCK_STREAM);
            // SAFETY: addr is a live buffer holding addr.len valid bytes.
            assert_eq!(unsafe { (p.api.connect)(client, addr.ptr(), addr.len) }, 0);
            listener
        }),
        ("pending TCP whose client already closed", |p| {
            let (client, listener) = p.pending(Family::V4, SOCK_STREAM);
            p.close_now(client);
            listener
        }),
        ("TCP socket not listening", |p| p.bound(Family::V4, SOCK_STREAM).0),
        ("UDP socket", |p| p.bound(Family::V4, SOCK_DGRAM).0),
        ("connected TCP client", |p| p.tcp_conn().client),
        ("non-blocking listener with nothing pending", |p| {
            let (fd, _) = p.listener(Family::V4, SOCK_STREAM);
            set_nonblocking(fd, true);
            fd
        }),
    ];
    let mut cases: Vec<Case> = listeners
        .into_iter()
        .map(|(name, prepare)| {
            Case::new(name, move |p| {
                let listener = prepare(p);
                accept_into(p, how, listener, 128);
            })
        })
        .collect();
    cases.push(Case::new("addr NULL, addrlen NULL", move |p| {
        let listener = with_pending(p, Family::V4, SOCK_STREAM);
        // SAFETY: NULL address and length are allowed.
        p.call_new_fd(listener, |api| unsafe {
            how.call(api, listener, std::ptr::null_mut(), std::ptr::null_mut())
        });
    }));
    cases.push(Case::new("addr NULL, addrlen 16", move |p| {
        let listener = with_pending(p, Family::V4, SOCK_STREAM);
        let mut len: socklen_t = 16;
        // SAFETY: len is a live local; the address is NULL.
        p.call_new_fd(listener, |api| unsafe {
            how.call(api, listener, std::ptr::null_mut(), &mut len)
        });
        p.out("addrlen", len);
    }));
    cases.push(Case::new("addr buffer, addrlen NULL", move |p| {
        let listener = with_pending(p, Family::V4, SOCK_STREAM);
        let mut addr = RawAddr::pattern();
        // SAFETY: addr is a live buffer; the length pointer is NULL.
        p.call_new_fd(listener, |api| unsafe {
            how.call(api, listener, addr.mut_ptr(), std::ptr::null_mut())
        });
        p.out_addr("addr", &addr, 0);
        p.out("listener still ready", poll_now(listener));
    }));
    cases.extend(value_cases("*addrlen", &ADDR_LENS, move |p, len| {
        let listener = with_pending(p, Family::V4, SOCK_STREAM);
        accept_into(p, how, listener, len);
    }));
    cases.extend(wild_cases("addr", &Wild::FOR_OUTPUT, move |p, wild| {
        let listener = with_pending(p, Family::V4, SOCK_STREAM);
        let mut len: socklen_t = 128;
        // SAFETY: the wild pointer only reaches the kernel, which faults on it.
        p.call_new_fd(listener, |api| unsafe { how.call(api, listener, wild.ptr(), &mut len) });
        p.out("addrlen", len);
        p.out("listener still ready", poll_now(listener));
    }));
    cases.extend(wild_cases("addrlen pointer", &Wild::FOR_OUTPUT, move |p, wild| {
        let listener = with_pending(p, Family::V4, SOCK_STREAM);
        let mut addr = RawAddr::pattern();
        // SAFETY: addr is live; the wild pointer only reaches the kernel.
        p.call_new_fd(listener, |api| unsafe {
            how.call(api, listener, addr.mut_ptr(), wild.ptr())
        });
        p.out_addr("addr", &addr, 0);
        p.out("listener still ready", poll_now(listener));
    }));
    cases.extend(bad_fd_cases(move |p, fd| {
        let mut addr = RawAddr::pattern();
        let mut len: socklen_t = 128;
        // SAFETY: addr and len are live locals.
        p.call_new_fd(fd, |api| unsafe { how.call(api, fd, addr.mut_ptr(), &mut len) });
        p.out_addr("addr", &addr, len);
    }));
    cases
}

pub fn accept() -> Table {
    Table {
        func: "ss_accept",
        cases: shared_cases(Accept::Plain),
    }
}

pub fn accept4() -> Table {
    let mut cases = shared_cases(Accept::Four(0));
    let flags = [
        ("SOCK_NONBLOCK", libc::SOCK_NONBLOCK),
        ("SOCK_CLOEXEC", libc::SOCK_CLOEXEC),
        ("SOCK_NONBLOCK|SOCK_CLOEXEC", libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC),
        ("1 (unknown bit)", 1),
        ("0x40 (unknown bit)", 0x40),
        ("-1", -1),
        ("INT_MIN", c_int::MIN),
        ("SOCK_CLOEXEC|0x1000000", libc::SOCK_CLOEXEC | 0x100_0000),
    ];
    for (name, flag) in flags {
        cases.push(Case::new(format!("flags {name}"), move |p| {
            let listener = with_pending(p, Family::V4, SOCK_STREAM);
            accept_into(p, Accept::Four(flag), listener, 128);
        }));
    }
    cases.push(Case::new("flags SOCK_NONBLOCK on AF_UNIX seqpacket", |p| {
        let listener = with_pending(p, Family::UnixPath, SOCK_SEQPACKET);
        accept_into(p, Accept::Four(libc::SOCK_NONBLOCK), listener, 128);
    }));
    cases.push(Case::new(
        "flags 0 after the connection was accepted (non-blocking)",
        |p| {
            let listener = with_pending(p, Family::V4, SOCK_STREAM);
            // SAFETY: NULL address and length are allowed.
            let first = unsafe { (p.api.accept4)(listener, std::ptr::null_mut(), std::ptr::null_mut(), 0) };
            assert!(first >= 0 && !poll_now(listener));
            p.own(Owned::ByApi(first));
            set_nonblocking(listener, true);
            accept_into(p, Accept::Four(0), listener, 128);
        },
    ));
    Table {
        func: "ss_accept4",
        cases,
    }
}
