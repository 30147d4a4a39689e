//! The memory every call of the `calls` target points into.
//!
//! Both sides of a differential run must hand the kernel the same bytes at
//! the same addresses, including what lies *past* a buffer (a short buffer
//! runs into a guard page, and how much the kernel copied before the fault is
//! part of the result). So buffers never come from the heap: they live in
//! one mapping made once, before the first fork, laid out as
//!
//! ```text
//! [DATA 256 KiB][guard][SMALL][guard][LENS][guard][HEADERS][guard][IOV 5 pages][guard][CTRL 2 pages][guard][READ-ONLY][guard]
//! ```
//!
//! SMALL holds the valid placements of small objects; a short object (one
//! that runs into a guard page) is placed at the end of SMALL for addresses,
//! of LENS for in/out lengths and of HEADERS for message headers and `sv`,
//! so two short objects of one call never overlap.
//!
//! Guard pages are `PROT_NONE` (the kernel answers `EFAULT` for them, as for
//! an unmapped page, but nothing else can ever be mapped there). Each side
//! starts by filling the writable parts with the same pattern
//! ([`Arena::reset`]), so its run starts from identical memory.

use core::ffi::c_void;

/// Bytes in a page on the machines this runs on.
pub const PAGE: usize = 4096;
/// Size of the data area (buffers for read/write/send/recv and option values).
pub const DATA_LEN: usize = 64 * PAGE;
/// Size of the small-object page (addresses, lengths, msghdr, sv).
pub const SMALL_LEN: usize = PAGE;
/// Size of the iovec area: room for 1025 entries and more.
pub const IOV_LEN: usize = 5 * PAGE;
/// Size of the control-data area.
pub const CTRL_LEN: usize = 2 * PAGE;

const DATA_AT: usize = 0;
const SMALL_AT: usize = DATA_AT + DATA_LEN + PAGE;
const LENS_AT: usize = SMALL_AT + SMALL_LEN + PAGE;
const HEADERS_AT: usize = LENS_AT + 2 * PAGE;
const IOV_AT: usize = HEADERS_AT + 2 * PAGE;
const CTRL_AT: usize = IOV_AT + IOV_LEN + PAGE;
const RO_AT: usize = CTRL_AT + CTRL_LEN + PAGE;
const TOTAL: usize = RO_AT + 2 * PAGE;

/// Offsets inside the small page.
pub mod small {
    /// An input address (bind, connect, sendto, msg_name of sendmsg).
    pub const ADDR_IN: usize = 0;
    /// An output address (accept, getsockname, recvfrom ...).
    pub const ADDR_OUT: usize = 256;
    /// Room of each address slot.
    pub const ADDR_ROOM: usize = 256;
    /// The in/out length of an output address or option.
    pub const LEN: usize = 512;
    /// The message header.
    pub const MSG: usize = 640;
    /// The two descriptors of socketpair.
    pub const SV: usize = 768;
    /// Address text for the helpers.
    pub const TEXT: usize = 1024;
    /// Room for the text.
    pub const TEXT_ROOM: usize = 1024;
}

/// Which page a short object ends at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TailArea {
    /// Addresses (and text).
    Addr,
    /// In/out lengths.
    Len,
    /// Message headers and the socketpair array.
    Header,
}

/// The writable parts: (offset, length).
const WRITABLE: [(usize, usize); 6] = [
    (DATA_AT, DATA_LEN),
    (SMALL_AT, SMALL_LEN),
    (LENS_AT, PAGE),
    (HEADERS_AT, PAGE),
    (IOV_AT, IOV_LEN),
    (CTRL_AT, CTRL_LEN),
];

/// The mapping. Its address never changes and it is never unmapped.
pub struct Arena {
    base: *mut u8,
    /// What every writable byte holds after [`Arena::reset`].
    pristine: Vec<u8>,
}

// SAFETY: the arena is a fixed mapping; the fuzz targets use it from the one
// thread libFuzzer runs inputs on (and its forked children).
unsafe impl Sync for Arena {}
// SAFETY: as above.
unsafe impl Send for Arena {}

/// The byte the pattern has at `offset`.
pub fn pattern(offset: usize) -> u8 {
    (offset.wrapping_mul(131).wrapping_add(offset >> 8) ^ 0x5a) as u8
}

impl Arena {
    /// Maps the arena and protects its guard and read-only pages.
    pub fn new() -> Arena {
        // SAFETY: a fresh anonymous private mapping; no existing memory is affected.
        let base = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                TOTAL,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED, "mmap of the arena");
        let pristine = (0..TOTAL).map(pattern).collect();
        let arena = Arena {
            base: base.cast(),
            pristine,
        };
        // The read-only page: the pattern, except zeroes where an option
        // value's second word would be (SO_LINGER's l_linger: a lingering
        // close could block).
        for i in 0..PAGE {
            let b = if (4..8).contains(&(i % 64)) { 0 } else { pattern(i) };
            // SAFETY: RO_AT + i is inside the mapping, still writable here.
            unsafe { *arena.base.add(RO_AT + i) = b };
        }
        for (at, prot) in [
            (DATA_AT + DATA_LEN, libc::PROT_NONE),
            (SMALL_AT + SMALL_LEN, libc::PROT_NONE),
            (LENS_AT + PAGE, libc::PROT_NONE),
            (HEADERS_AT + PAGE, libc::PROT_NONE),
            (IOV_AT + IOV_LEN, libc::PROT_NONE),
            (CTRL_AT + CTRL_LEN, libc::PROT_NONE),
            (RO_AT, libc::PROT_READ),
            (RO_AT + PAGE, libc::PROT_NONE),
        ] {
            // SAFETY: a page-aligned page inside our own mapping.
            let rc = unsafe { libc::mprotect(arena.base.add(at).cast(), PAGE, prot) };
            assert_eq!(rc, 0, "mprotect of an arena page");
        }
        arena.reset();
        arena
    }

    /// Fills every writable part with the pattern.
    pub fn reset(&self) {
        for (at, len) in WRITABLE {
            self.restore(at, len);
        }
    }

    /// Fills every writable part but the data area with the pattern: after
    /// each call, so nothing a call wrote (such as a port, which differs
    /// between the two runs by nature) is seen by a later one.
    pub fn reset_small(&self) {
        for (at, len) in &WRITABLE[1..] {
            self.restore(*at, *len);
        }
    }

    /// Fills the data area with the pattern.
    pub fn reset_data(&self) {
        self.restore(DATA_AT, DATA_LEN);
    }

    fn restore(&self, at: usize, len: usize) {
        // SAFETY: [at, at + len) is a writable part of our mapping, and of
        // `pristine`, which has TOTAL bytes; the two do not overlap.
        unsafe { core::ptr::copy_nonoverlapping(self.pristine.as_ptr().add(at), self.base.add(at), len) };
    }

    /// Start of the data area.
    pub fn data(&self) -> *mut u8 {
        // SAFETY: inside the mapping.
        unsafe { self.base.add(DATA_AT) }
    }

    /// Start of the small-object page.
    pub fn small(&self) -> *mut u8 {
        // SAFETY: inside the mapping.
        unsafe { self.base.add(SMALL_AT) }
    }

    /// The end of the page a short object of this kind ends at (a guard page follows).
    pub fn tail_end(&self, area: TailArea) -> *mut u8 {
        let at = match area {
            TailArea::Addr => SMALL_AT + SMALL_LEN,
            TailArea::Len => LENS_AT + PAGE,
            TailArea::Header => HEADERS_AT + PAGE,
        };
        // SAFETY: the end of a page inside the mapping.
        unsafe { self.base.add(at) }
    }

    /// Start of the iovec area.
    pub fn iov(&self) -> *mut u8 {
        // SAFETY: inside the mapping.
        unsafe { self.base.add(IOV_AT) }
    }

    /// Start of the control-data area.
    pub fn ctrl(&self) -> *mut u8 {
        // SAFETY: inside the mapping.
        unsafe { self.base.add(CTRL_AT) }
    }

    /// The read-only page.
    pub fn read_only(&self) -> *mut u8 {
        // SAFETY: inside the mapping.
        unsafe { self.base.add(RO_AT) }
    }

    /// A guard page: no access (the kernel answers EFAULT).
    pub fn guard(&self) -> *mut u8 {
        // SAFETY: inside the mapping.
        unsafe { self.base.add(DATA_AT + DATA_LEN) }
    }

    /// Whether `[ptr, ptr + len)` lies in a writable part; then the harness
    /// may read it to observe what the kernel wrote.
    pub fn writable(&self, ptr: *const c_void, len: usize) -> bool {
        let p = ptr as usize;
        let base = self.base as usize;
        WRITABLE
            .iter()
            .any(|&(at, n)| p >= base + at && p.checked_add(len).is_some_and(|end| end <= base + at + n))
    }

    /// The part of `[ptr, ptr + len)` that lies in the writable area holding
    /// `ptr` (the rest runs into a guard page), as a slice to observe.
    pub fn observable(&self, ptr: *const c_void, len: usize) -> &[u8] {
        let p = ptr as usize;
        let base = self.base as usize;
        for (at, n) in WRITABLE {
            let (start, end) = (base + at, base + at + n);
            if p >= start && p < end {
                let keep = len.min(end - p);
                // SAFETY: [p, p + keep) lies inside a writable part of our mapping.
                return unsafe { core::slice::from_raw_parts(ptr.cast::<u8>(), keep) };
            }
        }
        &[]
    }

    /// Writes `bytes` at `ptr` if that lies in a writable part (else nothing).
    pub fn write(&self, ptr: *mut c_void, bytes: &[u8]) {
        if self.writable(ptr, bytes.len()) {
            // SAFETY: checked just above to lie inside a writable part.
            unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr.cast::<u8>(), bytes.len()) };
        }
    }
}

impl Default for Arena {
    fn default() -> Self {
        Arena::new()
    }
}
