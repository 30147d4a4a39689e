//! Memory no valid call could use: pages that were mapped and then unmapped
//! (holes), pages mapped without any access, read-only pages, and the wild
//! pointers ([`Wild`]) the tests hand to every pointer argument.
//!
//! Both layouts below start as one reservation of inaccessible pages
//! ([`Reservation`]); a hole is always surrounded by reserved pages, so no
//! other thread's mapping can land in it while a test uses it.

use std::ffi::c_void;
use std::sync::OnceLock;

use crate::common::errno::errno;

/// The size of a page.
pub fn page_size() -> usize {
    // SAFETY: sysconf takes no pointer.
    usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).expect("page size")
}

/// A run of pages reserved with no access (`PROT_NONE`), page by page
/// unmapped or opened by the layouts built on it. Never unmapped by itself.
struct Reservation {
    base: usize,
    page: usize,
}

impl Reservation {
    /// Reserves `pages` fresh pages.
    #[track_caller]
    fn new(pages: usize) -> Reservation {
        let page = page_size();
        // SAFETY: an anonymous private mapping; no existing memory is affected.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                pages * page,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED, "mmap: errno {}", errno());
        Reservation {
            base: base as usize,
            page,
        }
    }

    /// The address of page `index`.
    fn page(&self, index: usize) -> usize {
        self.base + index * self.page
    }

    /// Unmaps page `index`, leaving a hole.
    #[track_caller]
    fn unmap(&self, index: usize) {
        // SAFETY: the page belongs to this reservation and nothing refers to it.
        assert_eq!(unsafe { libc::munmap(self.page(index) as *mut c_void, self.page) }, 0);
    }

    /// Sets the access of page `index` to `prot`.
    #[track_caller]
    fn protect(&self, index: usize, prot: libc::c_int) {
        // SAFETY: the page belongs to this reservation; only its access changes.
        let rc = unsafe { libc::mprotect(self.page(index) as *mut c_void, self.page, prot) };
        assert_eq!(rc, 0, "mprotect: errno {}", errno());
    }
}

/// Three reserved pages of a test's own: the middle one unmapped, the outer
/// ones mapped without any access. Unmapped when dropped.
pub struct BadMemory {
    pages: Reservation,
}

impl BadMemory {
    /// A fresh `[no access][hole][no access]`.
    pub fn new() -> Self {
        let pages = Reservation::new(3);
        pages.unmap(1);
        BadMemory { pages }
    }

    /// A pointer into the unmapped middle page.
    pub fn unmapped(&self) -> *mut c_void {
        self.pages.page(1) as *mut c_void
    }

    /// A pointer to the mapped page without read or write access.
    pub fn no_access(&self) -> *mut c_void {
        self.pages.page(0) as *mut c_void
    }

    /// Makes the first page readable and writable (it is then no longer
    /// `no_access`) and returns it: its last byte touches the unmapped page.
    pub fn readable_first_page(&mut self) -> &mut [u8] {
        self.pages.protect(0, libc::PROT_READ | libc::PROT_WRITE);
        // SAFETY: the page is mapped readable and writable (zero-filled, as
        // it was never touched) and belongs to `self`, which the slice
        // borrows and which keeps it mapped.
        unsafe { std::slice::from_raw_parts_mut(self.no_access().cast(), self.pages.page) }
    }
}

impl Drop for BadMemory {
    fn drop(&mut self) {
        // SAFETY: the three pages were reserved by `new` and nothing refers
        // to them any more; unmapping the hole again is harmless.
        unsafe { libc::munmap(self.pages.base as *mut c_void, 3 * self.pages.page) };
    }
}

/// Memory laid out once per process for the wild pointers:
/// `[guard][hole][no-access][read-only data][guard]`.
struct WildPages {
    hole: usize,
    no_access: usize,
    read_only: usize,
    page: usize,
}

/// The wild pointers' pages, laid out on first use and kept for the process.
fn wild_pages() -> &'static WildPages {
    static PAGES: OnceLock<WildPages> = OnceLock::new();
    PAGES.get_or_init(|| {
        let pages = Reservation::new(5);
        pages.unmap(1);
        // The data page is filled while writable and then made read-only.
        pages.protect(3, libc::PROT_READ | libc::PROT_WRITE);
        // SAFETY: page 3 is mapped writable and belongs to this reservation.
        unsafe { std::ptr::write_bytes(pages.page(3) as *mut u8, b'r', pages.page) };
        pages.protect(3, libc::PROT_READ);
        WildPages {
            hole: pages.page(1),
            no_access: pages.page(2),
            read_only: pages.page(3),
            page: pages.page,
        }
    })
}

/// A pointer no valid call could use.
#[derive(Clone, Copy, Debug)]
pub enum Wild {
    Null,
    /// Address 0x1: below `mmap_min_addr`, never mappable.
    Low,
    /// An address in a page that was mapped and then unmapped.
    Unmapped,
    /// A mapped page with no access.
    NoAccess,
    /// A kernel address: fails the kernel's range check.
    Kernel,
    /// A mapped read-only page: fine to read, faults on write.
    ReadOnly,
}

impl Wild {
    /// The pointers the kernel only reads through.
    pub const FOR_INPUT: [Wild; 5] = [Wild::Null, Wild::Low, Wild::Unmapped, Wild::NoAccess, Wild::Kernel];
    /// The pointers the kernel writes through.
    pub const FOR_OUTPUT: [Wild; 6] = [
        Wild::Null,
        Wild::Low,
        Wild::Unmapped,
        Wild::NoAccess,
        Wild::Kernel,
        Wild::ReadOnly,
    ];

    /// How a case name calls this pointer.
    pub fn name(self) -> &'static str {
        match self {
            Wild::Null => "NULL",
            Wild::Low => "0x1",
            Wild::Unmapped => "munmapped page",
            Wild::NoAccess => "PROT_NONE page",
            Wild::Kernel => "kernel address",
            Wild::ReadOnly => "read-only page",
        }
    }

    /// The address; the hole is checked to be still unmapped first.
    #[track_caller]
    pub fn addr(self) -> usize {
        match self {
            Wild::Null => 0,
            Wild::Low => 1,
            Wild::Unmapped => {
                let hole = wild_pages().hole;
                // SAFETY: msync only inspects the mapping state of the range.
                let rc = unsafe { libc::msync(hole as *mut c_void, wild_pages().page, libc::MS_ASYNC) };
                assert!(
                    rc == -1 && errno() == libc::ENOMEM,
                    "the unmapped test page got mapped again"
                );
                hole
            }
            Wild::NoAccess => wild_pages().no_access,
            Wild::Kernel => 0xffff_8000_0000_0000,
            Wild::ReadOnly => wild_pages().read_only,
        }
    }

    /// The address as a pointer.
    pub fn ptr<T>(self) -> *mut T {
        self.addr() as *mut T
    }
}

/// The end of a readable page whose next page has no access: `n` bytes of
/// pattern (`b'r'`) there, then a fault.
#[track_caller]
pub fn bytes_before_fault<T>(n: usize) -> *const T {
    let p = wild_pages();
    assert!(n <= p.page);
    (p.read_only + p.page - n) as *const T
}
