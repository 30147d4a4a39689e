//! Closing under pressure: threads racing `ss_close` on one descriptor
//! while another thread opens a file (which may get the number at once),
//! and a descriptor closed with plain `close` behind the library's back.
//! Both in a forked child, where nothing else takes descriptor numbers.

use std::ffi::c_int;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Barrier, Mutex};

use safesock::ffi;

use crate::common::{Api, Outcome, errno, identity, in_child, is_open, open_dev_null, ss_pair};

/// A descriptor to race on, of a kind that varies by round (the other end
/// of a pair is closed at once).
fn victim(round: usize) -> c_int {
    let fd = match round % 3 {
        0 => ffi::ss_socket(libc::AF_INET, libc::SOCK_STREAM, 0),
        1 => ffi::ss_socket(libc::AF_INET6, libc::SOCK_DGRAM, 0),
        _ => {
            let sv = ss_pair(libc::SOCK_STREAM);
            assert_eq!(ffi::ss_close(sv[1]), 0);
            sv[0]
        }
    };
    assert!(fd >= 0, "creating a socket: errno {}", errno());
    fd
}

#[test]
fn racing_ss_close_lets_one_through_and_never_closes_the_number_reused_meanwhile() {
    const CLOSERS: usize = 6;
    const ROUNDS: usize = 300;
    let text = in_child("racing ss_close", || {
        let probe = open_dev_null();
        let dev_null = identity(probe).expect("/dev/null");
        // SAFETY: opened just above with plain open; plain close.
        assert_eq!(unsafe { libc::close(probe) }, 0);
        let target = AtomicI32::new(-1);
        let opened = AtomicI32::new(-1);
        let start = Barrier::new(CLOSERS + 2);
        let done = Barrier::new(CLOSERS + 2);
        let closes = Mutex::new(Vec::with_capacity(CLOSERS));
        let mut reused = 0;
        std::thread::scope(|s| {
            for _ in 0..CLOSERS {
                s.spawn(|| {
                    for _ in 0..ROUNDS {
                        start.wait();
                        let outcome = Outcome::of(ffi::ss_close(target.load(Ordering::Acquire)));
                        closes.lock().expect("lock").push(outcome);
                        done.wait();
                    }
                });
            }
            // Opens a file with plain open while the closers race: it gets
            // the raced number whenever the winner closed it first.
            s.spawn(|| {
                for _ in 0..ROUNDS {
                    start.wait();
                    opened.store(open_dev_null(), Ordering::Release);
                    done.wait();
                }
            });
            for round in 0..ROUNDS {
                let fd = victim(round);
                target.store(fd, Ordering::Release);
                start.wait();
                done.wait();
                let outcomes = std::mem::take(&mut *closes.lock().expect("lock"));
                let winners = outcomes.iter().filter(|o| o.ret == 0).count();
                assert_eq!(winners, 1, "round {round}, fd {fd}: {outcomes:?}");
                let refusal =
                    format!("ss_close(fd {fd}): Bad file descriptor (EBADF): fd {fd} was already closed by ss_close");
                for o in outcomes.iter().filter(|o| o.ret != 0) {
                    assert_eq!(o.errno, libc::EBADF, "round {round}: {o:?}");
                    assert!(o.message.starts_with(&refusal), "round {round}: {:?}", o.message);
                }
                let file = opened.load(Ordering::Acquire);
                assert!(file >= 0, "open: errno {}", errno());
                if file == fd {
                    reused += 1;
                    assert_eq!(
                        identity(file),
                        Some(dev_null),
                        "round {round}: a losing ss_close closed the file"
                    );
                } else {
                    assert!(!is_open(fd), "round {round}: fd {fd} is still open");
                }
                // SAFETY: the file was opened with plain open in this round; plain close.
                assert_eq!(unsafe { libc::close(file) }, 0);
            }
        });
        format!(
            "{ROUNDS} rounds of {CLOSERS} racing ss_close: one 0, the rest -1/EBADF \"already closed by ss_close\"; \
             the concurrent open got the raced number in {reused} rounds and kept it"
        )
    });
    eprintln!("{text}");
}

/// The calls tried on a number closed behind safesock's back.
const CALLS: [&str; 8] = [
    "ss_read",
    "ss_write",
    "ss_recv",
    "ss_send",
    "ss_listen",
    "ss_shutdown",
    "ss_getsockopt",
    "ss_accept",
];

/// Makes the call `name` on `fd` through `api` (libc or its `ss_` mirror).
fn call(name: &str, fd: c_int, api: Api) -> Outcome {
    let mut buf = [0u8; 16];
    let p = buf.as_mut_ptr().cast::<libc::c_void>();
    let (mut value, mut len): (c_int, libc::socklen_t) = (0, 4);
    let (v, l) = ((&raw mut value).cast(), &raw mut len);
    let null = std::ptr::null_mut();
    let ss = api == Api::Ss;
    // SAFETY: every pointer is to a live local of the size given, or NULL
    // where the call allows it.
    let ret = unsafe {
        match name {
            "ss_read" if ss => ffi::ss_read(fd, p, 16) as i64,
            "ss_read" => libc::read(fd, p, 16) as i64,
            "ss_write" if ss => ffi::ss_write(fd, p, 16) as i64,
            "ss_write" => libc::write(fd, p, 16) as i64,
            "ss_recv" if ss => ffi::ss_recv(fd, p, 16, libc::MSG_DONTWAIT) as i64,
            "ss_recv" => libc::recv(fd, p, 16, libc::MSG_DONTWAIT) as i64,
            "ss_send" if ss => ffi::ss_send(fd, p, 16, 0) as i64,
            "ss_send" => libc::send(fd, p, 16, libc::MSG_NOSIGNAL) as i64,
            "ss_listen" if ss => ffi::ss_listen(fd, 1).into(),
            "ss_listen" => libc::listen(fd, 1).into(),
            "ss_shutdown" if ss => ffi::ss_shutdown(fd, libc::SHUT_RDWR).into(),
            "ss_shutdown" => libc::shutdown(fd, libc::SHUT_RDWR).into(),
            "ss_getsockopt" if ss => ffi::ss_getsockopt(fd, libc::SOL_SOCKET, libc::SO_TYPE, v, l).into(),
            "ss_getsockopt" => libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_TYPE, v, l).into(),
            "ss_accept" if ss => ffi::ss_accept(fd, null, std::ptr::null_mut()).into(),
            "ss_accept" => libc::accept(fd, null, std::ptr::null_mut()).into(),
            _ => unreachable!("{name} is in CALLS"),
        }
    };
    Outcome::of(ret)
}

#[test]
fn a_number_closed_with_plain_close_gets_libcs_ebadf_and_is_closed_by_ss_close_once_reused() {
    let text = in_child("plain close behind safesock's back", || {
        let fd = ffi::ss_socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        // Behind the library's back: it is not told.
        // SAFETY: `fd` is this child's socket; nothing uses it afterwards but the calls below.
        assert_eq!(unsafe { libc::close(fd) }, 0);
        let plain_ebadf = format!("fd {fd} is not an open descriptor");
        for name in CALLS {
            let plain = call(name, fd, Api::Libc);
            let ss = call(name, fd, Api::Ss);
            assert_eq!(plain.result(), ss.result(), "{name} vs libc");
            ss.expect_failure(libc::EBADF, &format!("{name}(fd {fd}"), &[&plain_ebadf]);
            assert!(!ss.message.contains("ss_close"), "{name}: {:?}", ss.message);
        }
        // ss_close of it: the kernel's EBADF, not the double-close refusal,
        // and the number is not marked closed by ss_close afterwards.
        // SAFETY: close takes no pointer; the number is not open.
        let plain = Outcome::of(unsafe { libc::close(fd) });
        for _ in 0..2 {
            let ss = Outcome::of(ffi::ss_close(fd));
            assert_eq!(plain.result(), ss.result(), "ss_close vs close");
            ss.expect_failure(libc::EBADF, &format!("ss_close(fd {fd})"), &[&plain_ebadf]);
            assert!(!ss.message.contains("already closed"), "{:?}", ss.message);
        }
        // The number comes back from a plain open. A write through safesock
        // acts on what is there now, and ss_close closes it, exactly as
        // close would: the library cannot know that the caller meant the
        // old socket, because it never saw that socket closed. (Had
        // ss_close closed the socket, this ss_close would be refused: the
        // double-close rule, tested in safety_defaults.rs.)
        let reused = open_dev_null();
        assert_eq!(reused, fd, "the lowest free number is handed out again");
        // SAFETY: a static buffer of the length given.
        assert_eq!(unsafe { ffi::ss_write(reused, b"x".as_ptr().cast(), 1) }, 1);
        assert_eq!(ffi::ss_close(reused), 0, "{}", crate::common::last_error());
        assert!(!is_open(reused), "ss_close closed the reused number");
        let again = Outcome::of(ffi::ss_close(reused));
        again.expect_failure(
            libc::EBADF,
            &format!("ss_close(fd {fd})"),
            &["already closed by ss_close"],
        );
        format!(
            "{} calls on a number closed by plain close gave libc's EBADF ({plain_ebadf}); \
             ss_close of the reused number closed it",
            CALLS.len() + 1
        )
    });
    eprintln!("{text}");
}
