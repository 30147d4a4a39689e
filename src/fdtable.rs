//! The per-descriptor state behind the double-close rule and the SIGPIPE-free
//! write path: one byte per descriptor number, lock-free.
//!
//! The table is a fixed array of chunks whose sizes double (chunk 0 covers
//! numbers 0..1024, chunk k covers 2^(k+9)..2^(k+10)), so any `c_int`
//! descriptor maps to a slot without a lock and without moving memory.
//! Chunk 0, where nearly every program's descriptors live, is a static array
//! (1 KiB of zero pages, mapped on first touch), so its lookups are one
//! compare and one load. The others are allocated, zeroed, the first time a
//! state must be stored for a number they cover, and never freed; reading an
//! absent chunk reads the default state, so checks on the success path never
//! allocate.
//!
//! Each byte holds:
//! - [`CLOSED`]: `ss_close` closed this number and no `ss_` call has handed it
//!   out or used it successfully since.
//! - the write kind ([`WriteKind`]): how `ss_write`/`ss_writev` must write to
//!   this number so that a socket never raises SIGPIPE.

use core::sync::atomic::{AtomicPtr, AtomicU8, Ordering};
use std::alloc::{Layout, alloc_zeroed, dealloc};

const FIRST_CHUNK_BITS: u32 = 10;
const CHUNKS: usize = 32 - FIRST_CHUNK_BITS as usize + 1;

/// Set when `ss_close` closed the number.
pub(crate) const CLOSED: u8 = 1 << 0;
const KIND_SHIFT: u8 = 1;
const KIND_MASK: u8 = 0b11 << KIND_SHIFT;

/// How `ss_write`/`ss_writev` write to a descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteKind {
    /// Not known yet: the first write asks the kernel (`SO_TYPE`).
    Unknown = 0,
    /// Not a stream socket: written with `pwritev2(RWF_NOSIGNAL)`.
    Plain = 1,
    /// A stream socket: written with `send`/`sendmsg` and `MSG_NOSIGNAL`.
    NoSignal = 2,
    /// A non-socket whose driver refuses `pwritev2` flags: `write`/`writev` as they are.
    Legacy = 3,
}

/// Chunk 0: the numbers below 1024.
static FIRST_CHUNK: [AtomicU8; 1 << FIRST_CHUNK_BITS] = [const { AtomicU8::new(0) }; 1 << FIRST_CHUNK_BITS];

/// Chunks 1 and up, allocated on demand (entry 0 stays null: chunk 0 is [`FIRST_CHUNK`]).
static CHUNK_PTRS: [AtomicPtr<AtomicU8>; CHUNKS] = [const { AtomicPtr::new(core::ptr::null_mut()) }; CHUNKS];

/// Which chunk covers `fd` (non-negative), its length and the index inside it.
#[inline]
fn locate(fd: u32) -> (usize, usize, usize) {
    if fd < (1 << FIRST_CHUNK_BITS) {
        return (0, 1 << FIRST_CHUNK_BITS, fd as usize);
    }
    let top = 31 - fd.leading_zeros(); // >= FIRST_CHUNK_BITS
    let chunk = (top - FIRST_CHUNK_BITS + 1) as usize;
    let base = 1usize << top;
    (chunk, base, fd as usize - base)
}

fn layout(len: usize) -> Layout {
    Layout::array::<AtomicU8>(len).expect("chunk sizes are far below isize::MAX")
}

/// The slot of `fd` if its chunk exists.
#[inline(always)]
fn slot(fd: i32) -> Option<&'static AtomicU8> {
    // One unsigned compare on the hot path; the sign test after it folds
    // away for a constant -1 (calls that take no descriptor).
    match FIRST_CHUNK.get(fd as u32 as usize) {
        Some(s) => Some(s),
        None if fd < 0 => None,
        None => slot_above_first(fd as u32),
    }
}

/// [`slot`] for numbers outside [`FIRST_CHUNK`].
#[inline(never)]
fn slot_above_first(fd: u32) -> Option<&'static AtomicU8> {
    let (chunk, _, index) = locate(fd);
    let ptr = CHUNK_PTRS[chunk].load(Ordering::Acquire);
    if ptr.is_null() {
        return None;
    }
    // SAFETY: a non-null chunk pointer was published (Release) after a zeroed
    // allocation of the chunk's full length, is never freed, and `index` is
    // below that length by construction of `locate`.
    Some(unsafe { &*ptr.add(index) })
}

/// The slot of `fd`, allocating its chunk if needed; `None` for a negative
/// number or if memory is exhausted.
fn slot_or_grow(fd: i32) -> Option<&'static AtomicU8> {
    if let Some(s) = slot(fd) {
        return Some(s);
    }
    let fdu = u32::try_from(fd).ok()?;
    let (chunk, len, index) = locate(fdu);
    // SAFETY: the layout has a non-zero size (len >= 1024).
    let fresh = unsafe { alloc_zeroed(layout(len)) }.cast::<AtomicU8>();
    if fresh.is_null() {
        return None;
    }
    let ptr =
        match CHUNK_PTRS[chunk].compare_exchange(core::ptr::null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => fresh,
            Err(winner) => {
                // SAFETY: `fresh` came from alloc_zeroed with this layout and was
                // never published, so no one else can hold it.
                unsafe { dealloc(fresh.cast(), layout(len)) };
                winner
            }
        };
    // SAFETY: as in `slot`: the published chunk has `len` zero-initialised
    // atomics, lives forever, and index < len.
    Some(unsafe { &*ptr.add(index) })
}

/// Marks `fd` as in use after a successful `ss_` call on it: clears [`CLOSED`].
/// Costs one load when the bit is clear, as it almost always is.
#[inline]
pub fn mark_used(fd: i32) {
    if let Some(s) = slot(fd)
        && s.load(Ordering::Relaxed) & CLOSED != 0
    {
        s.fetch_and(!CLOSED, Ordering::AcqRel);
    }
}

/// Records that `fd` was just handed out by an `ss_` call (socket, accept,
/// socketpair, SCM_RIGHTS) as an object of write kind `kind`.
#[inline(always)]
pub fn handed_out(fd: i32, kind: WriteKind) {
    let wanted = (kind as u8) << KIND_SHIFT;
    match slot(fd) {
        Some(s) => {
            if s.load(Ordering::Relaxed) != wanted {
                s.store(wanted, Ordering::Release);
            }
        }
        None if wanted == 0 => {}
        None => store_growing(fd, wanted),
    }
}

/// Stores `state` for a number whose chunk may not exist yet.
#[cold]
#[inline(never)]
fn store_growing(fd: i32, state: u8) {
    if let Some(s) = slot_or_grow(fd) {
        s.store(state, Ordering::Release);
    }
}

/// Forgets everything about `fd` after safesock itself closed a descriptor
/// the caller never saw (a helper's failed attempt): the number is free again,
/// not "closed by ss_close".
pub fn released(fd: i32) {
    if let Some(s) = slot(fd)
        && s.load(Ordering::Relaxed) != 0
    {
        s.store(0, Ordering::Release);
    }
}

/// Whether `ss_close` closed `fd` and nothing has handed it out or used it since.
#[inline]
pub fn is_closed(fd: i32) -> bool {
    slot(fd).is_some_and(|s| s.load(Ordering::Acquire) & CLOSED != 0)
}

/// The outcome of [`begin_close`].
#[derive(Debug, PartialEq, Eq)]
pub enum CloseTicket {
    /// This caller may close the number; it was marked closed already.
    Proceed,
    /// `ss_close` already closed it: refuse without touching the descriptor.
    AlreadyClosed,
}

/// Claims the close of `fd` before the system call, so that exactly one of
/// several racing `ss_close` calls proceeds and a number the kernel hands out
/// again after the close is never marked closed afterwards.
#[inline(always)]
pub fn begin_close(fd: i32) -> CloseTicket {
    match slot(fd) {
        Some(s) => claim_close(s),
        None => begin_close_above_table(fd),
    }
}

/// [`begin_close`] for a number no chunk covers yet.
#[cold]
#[inline(never)]
fn begin_close_above_table(fd: i32) -> CloseTicket {
    // A number beyond the table that is not open needs no slot (the close
    // will fail with EBADF): growing for it would reserve address space for
    // numbers never used. Without a slot (out of memory, negative number)
    // the close proceeds unprotected, as libc's would.
    if !is_open(fd) {
        return CloseTicket::Proceed;
    }
    slot_or_grow(fd).map_or(CloseTicket::Proceed, claim_close)
}

/// Marks the slot closed; tells whether this caller was first.
#[inline(always)]
fn claim_close(s: &AtomicU8) -> CloseTicket {
    // The kind is forgotten: the number's next owner may be anything.
    let before = s.swap(CLOSED, Ordering::AcqRel);
    if before & CLOSED != 0 {
        s.fetch_or(before & KIND_MASK, Ordering::AcqRel);
        return CloseTicket::AlreadyClosed;
    }
    CloseTicket::Proceed
}

fn is_open(fd: i32) -> bool {
    // SAFETY: F_GETFD takes no pointer; it only asks whether the number is open.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// Undoes [`begin_close`] when the kernel said the number was not open
/// (`EBADF`): it was not closed by `ss_close`, so a later close must not be refused.
pub fn abort_close(fd: i32) {
    if let Some(s) = slot(fd) {
        s.fetch_and(!CLOSED, Ordering::AcqRel);
    }
}

/// What the table holds for one number, read with one load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry(u8);

impl Entry {
    /// Whether the number is known as a stream socket ([`WriteKind::NoSignal`])
    /// and not marked closed by `ss_close`: the fast path of `ss_write`.
    #[inline(always)]
    pub fn is_known_stream(self) -> bool {
        self.0 == (WriteKind::NoSignal as u8) << KIND_SHIFT
    }

    /// Whether `ss_close` closed the number (see [`is_closed`]).
    #[inline(always)]
    pub fn is_closed(self) -> bool {
        self.0 & CLOSED != 0
    }

    /// The write kind recorded.
    #[inline(always)]
    pub fn write_kind(self) -> WriteKind {
        match (self.0 & KIND_MASK) >> KIND_SHIFT {
            1 => WriteKind::Plain,
            2 => WriteKind::NoSignal,
            3 => WriteKind::Legacy,
            _ => WriteKind::Unknown,
        }
    }
}

/// The entry of `fd` (the default, empty one for numbers no chunk covers).
#[inline(always)]
pub fn entry(fd: i32) -> Entry {
    Entry(slot(fd).map_or(0, |s| s.load(Ordering::Relaxed)))
}

/// The write kind recorded for `fd`.
#[inline]
pub fn write_kind(fd: i32) -> WriteKind {
    entry(fd).write_kind()
}

/// Records how to write to `fd`, keeping its [`CLOSED`] bit.
pub fn set_write_kind(fd: i32, kind: WriteKind) {
    let bits = (kind as u8) << KIND_SHIFT;
    let s = if bits == 0 { slot(fd) } else { slot_or_grow(fd) };
    if let Some(s) = s {
        let _ = s.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| Some((v & !KIND_MASK) | bits));
    }
}

/// Bytes the table has allocated so far (for the memory figures).
pub fn allocated_bytes() -> usize {
    let allocated: usize = CHUNK_PTRS
        .iter()
        .enumerate()
        .filter(|(_, p)| !p.load(Ordering::Acquire).is_null())
        .map(|(chunk, _)| 1 << (chunk as u32 + FIRST_CHUNK_BITS - 1))
        .sum();
    FIRST_CHUNK.len() + allocated
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_covers_every_number_once() {
        assert_eq!(locate(0), (0, 1024, 0));
        assert_eq!(locate(1023), (0, 1024, 1023));
        assert_eq!(locate(1024), (1, 1024, 0));
        assert_eq!(locate(2047), (1, 1024, 1023));
        assert_eq!(locate(2048), (2, 2048, 0));
        assert_eq!(locate(i32::MAX as u32), (21, 1 << 30, (1 << 30) - 1));
        for fd in [5u32, 1500, 4095, 4096, 70_000, 1 << 20] {
            let (_, len, index) = locate(fd);
            assert!(index < len, "{fd}");
        }
    }

    // Numbers far above anything the process opens, so tests do not disturb
    // descriptors in use by the test harness.
    const BASE: i32 = 3_000_000;

    /// Makes the chunk for `fd` exist, as a descriptor that is open would.
    fn covered(fd: i32) -> i32 {
        assert!(slot_or_grow(fd).is_some());
        fd
    }

    #[test]
    fn close_is_claimed_once_then_refused() {
        let fd = covered(BASE + 1);
        assert!(!is_closed(fd));
        assert_eq!(begin_close(fd), CloseTicket::Proceed);
        assert!(is_closed(fd));
        assert_eq!(begin_close(fd), CloseTicket::AlreadyClosed);
        mark_used(fd);
        assert!(!is_closed(fd));
        assert_eq!(begin_close(fd), CloseTicket::Proceed);
        abort_close(fd);
        assert!(!is_closed(fd));
    }

    #[test]
    fn handing_out_clears_closed_and_sets_kind() {
        let fd = covered(BASE + 2);
        assert_eq!(begin_close(fd), CloseTicket::Proceed);
        handed_out(fd, WriteKind::NoSignal);
        assert!(!is_closed(fd));
        assert_eq!(write_kind(fd), WriteKind::NoSignal);
        assert_eq!(begin_close(fd), CloseTicket::Proceed);
        assert_eq!(write_kind(fd), WriteKind::Unknown, "a close forgets the kind");
        set_write_kind(fd, WriteKind::Plain);
        assert!(is_closed(fd), "setting the kind keeps the closed bit");
        assert_eq!(write_kind(fd), WriteKind::Plain);
    }

    #[test]
    fn negative_numbers_have_no_state() {
        assert!(!is_closed(-1));
        assert_eq!(begin_close(-5), CloseTicket::Proceed);
        assert!(!is_closed(-5));
        assert_eq!(write_kind(i32::MIN), WriteKind::Unknown);
        mark_used(-1);
    }

    #[test]
    fn racing_claims_let_exactly_one_through() {
        for round in 0..200 {
            let fd = covered(BASE + 100 + round);
            let winners: usize = std::thread::scope(|s| {
                let handles: Vec<_> = (0..4)
                    .map(|_| s.spawn(move || begin_close(fd) == CloseTicket::Proceed))
                    .collect();
                handles.into_iter().map(|h| usize::from(h.join().unwrap())).sum()
            });
            assert_eq!(winners, 1, "round {round}");
        }
    }

    #[test]
    fn closing_a_number_that_is_not_open_grows_nothing() {
        let far = i32::MAX - 7;
        assert_eq!(begin_close(far), CloseTicket::Proceed);
        assert!(!is_closed(far));
        let (chunk, _, _) = locate(far as u32);
        assert!(
            CHUNK_PTRS[chunk].load(Ordering::Acquire).is_null(),
            "a 1 GiB chunk was reserved"
        );
    }

    #[test]
    fn memory_is_one_byte_per_number_covered() {
        handed_out(BASE + 3, WriteKind::Plain);
        let bytes = allocated_bytes();
        // The chunk covering BASE is 2^21 numbers long, one byte each.
        assert!(bytes >= 1 << 21);
    }
}
