//! The differential test suite: the proof of the drop-in rule (API.md §1).
//!
//! For every one of the 23 mirror functions there is a table of named
//! cases. A case is a closure that takes a [`harness::Probe`], prepares a
//! fresh set of resources through the probe's side (sockets come from that
//! side's own `socket`/`socketpair`/`accept`, so on the `ss_` side every
//! socket was handed out by safesock), makes exactly one call of the function
//! under test, and records what can be observed afterwards: the return value,
//! `errno` (set to a sentinel before the call, so "untouched on success" is
//! checked too), out-parameters (addresses and their lengths, option values,
//! bytes received, `sv`, control messages), and the state the call left
//! behind (bytes still queued, what the peer received, `SO_ERROR`).
//!
//! Each case runs twice, once through libc and once through `ss_`, each on
//! its own freshly prepared resources, and the two observations must match.
//! Descriptor numbers, ephemeral ports and temporary paths are masked
//! (different per run by nature). The documented differences are checked
//! rather than excused: every descriptor an `ss_` call creates must have
//! `FD_CLOEXEC`; an `ss_` call on a socket must never raise SIGPIPE (SIGPIPE
//! is ignored in this binary so the libc side survives, and blocked around
//! each call so a raised one stays visible as pending); and `ss_close`'s
//! double-close refusal has its own documented-difference cases.
//!
//! Bad arguments are generated, not copied: every descriptor-taking function
//! gets the eleven kinds of bad descriptor in [`fixtures::BadFd`], every pointer
//! the wild pointers in [`common::Wild`] (NULL, 0x1, a munmapped page, a
//! PROT_NONE page, a kernel address, a read-only page), every address length
//! the values in [`fixtures::ADDR_LENS`], and the five receiving and five
//! sending functions share the socket states in [`transfer`].
//!
//! Descriptor numbers are shared by all threads of the binary, so a "closed"
//! or non-socket descriptor is placed at a reserved high number the kernel
//! hands to no one else ([`common::reserve_fd`]); nothing here closes a
//! number it does not own, and everything uses loopback, port 0, temporary
//! paths and bounded waits.
//!
//! The real-traffic tests in [`traffic`] move data through the `ss_`
//! functions alone. Run with `-- --nocapture` to see the per-function counts;
//! set `SSDIFF_SHOW` to part of a case's "ss_func [name]" to print its two
//! observations even when they agree.

#![deny(clippy::undocumented_unsafe_blocks)]

mod common;

#[path = "differential/accept.rs"]
mod accept;
#[path = "differential/fixtures.rs"]
mod fixtures;
#[path = "differential/harness.rs"]
mod harness;
#[path = "differential/io.rs"]
mod io;
#[path = "differential/lifecycle.rs"]
mod lifecycle;
#[path = "differential/msg.rs"]
mod msg;
#[path = "differential/names.rs"]
mod names;
#[path = "differential/traffic.rs"]
mod traffic;
#[path = "differential/transfer.rs"]
mod transfer;

use harness::{MIRROR_FUNCTIONS, Table, run_tables_in_parallel};

/// Every table, one per mirror function.
fn all_tables() -> Vec<fn() -> Table> {
    vec![
        lifecycle::socket,
        lifecycle::socketpair,
        lifecycle::bind,
        lifecycle::listen,
        lifecycle::connect,
        accept::accept,
        accept::accept4,
        io::read,
        io::write,
        io::recv,
        io::send,
        io::readv,
        io::writev,
        msg::recvmsg,
        msg::sendmsg,
        msg::recvfrom,
        msg::sendto,
        lifecycle::shutdown,
        lifecycle::close,
        names::getsockname,
        names::getpeername,
        names::getsockopt,
        names::setsockopt,
    ]
}

#[test]
fn every_mirror_function_matches_libc() {
    common::ignore_sigpipe();
    let open_before = common::open_fds().len();
    let started = std::time::Instant::now();
    let tables: Vec<Table> = all_tables().into_iter().map(|make| make()).collect();
    let reports = run_tables_in_parallel(&tables);

    let covered: Vec<&str> = reports.iter().map(|r| r.func).collect();
    assert_eq!(covered, MIRROR_FUNCTIONS, "one table per mirror function, in order");

    let mut total = 0;
    let mut mismatches = Vec::new();
    for report in &reports {
        eprintln!(
            "{}: {} cases ({} documented-difference), {} mismatches",
            report.func,
            report.cases,
            report.documented,
            report.mismatches.len()
        );
        for slow in &report.slow {
            eprintln!("  slow: {slow}");
        }
        total += report.cases;
        mismatches.extend(report.mismatches.iter().cloned());
    }
    eprintln!(
        "total: {total} cases over {} functions, {} mismatches, {:.1?}",
        reports.len(),
        mismatches.len(),
        started.elapsed()
    );
    // Other tests run in parallel, so the overall count is for information;
    // the reserved numbers belong to this binary's cases alone and must all
    // be closed again.
    let open_now = common::open_fds();
    eprintln!("open descriptors: {open_before} before, {} after", open_now.len());
    let reserved = common::reserved_so_far();
    let leaked: Vec<_> = open_now.iter().filter(|fd| reserved.contains(fd)).collect();
    assert!(leaked.is_empty(), "reserved descriptor numbers left open: {leaked:?}");
    for report in &reports {
        assert!(report.cases >= 10, "{} has only {} cases", report.func, report.cases);
    }
    assert!(
        mismatches.is_empty(),
        "{} cases where ss_ differs from libc beyond the documented differences:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
