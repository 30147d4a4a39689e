//! Caller memory as the C caller passed it.
//!
//! These types carry a pointer and a length to the kernel without reading
//! them: a NULL, short or wild pointer gets the kernel's `EFAULT`, exactly as
//! with libc, and never a fault inside safesock. No Rust reference or slice is
//! made from them until a system call has succeeded with them, which proves
//! the memory is mapped; the `*_after_success` readers are the only places
//! that dereference, and each says why that holds.

use core::ffi::{c_int, c_void};
use core::marker::PhantomData;
use core::mem::MaybeUninit;

use libc::{iovec, msghdr, sockaddr, socklen_t};

/// Memory the kernel reads (`write`, `send`, `setsockopt` ...).
#[derive(Clone, Copy)]
pub struct UserIn<'a> {
    pub(crate) ptr: *const c_void,
    pub(crate) len: usize,
    _borrow: PhantomData<&'a [u8]>,
}

/// Memory the kernel writes, possibly uninitialised (`read`, `recv` ...).
pub struct UserOut<'a> {
    pub(crate) ptr: *mut c_void,
    pub(crate) len: usize,
    _borrow: PhantomData<&'a mut [MaybeUninit<u8>]>,
}

/// An address the kernel reads (`bind`, `connect`, `sendto`).
#[derive(Clone, Copy)]
pub struct UserAddr<'a> {
    pub(crate) ptr: *const sockaddr,
    pub(crate) len: socklen_t,
    _borrow: PhantomData<&'a [u8]>,
}

/// An address buffer and its in/out length the kernel fills (`accept`,
/// `getsockname`, `recvfrom` ...); both pointers may be NULL where libc allows.
pub struct UserAddrOut<'a> {
    pub(crate) ptr: *mut sockaddr,
    pub(crate) len: *mut socklen_t,
    _borrow: PhantomData<&'a mut [u8]>,
}

/// An option value and its in/out length the kernel fills (`getsockopt`).
pub struct UserOptOut<'a> {
    pub(crate) ptr: *mut c_void,
    pub(crate) len: *mut socklen_t,
    _borrow: PhantomData<&'a mut [u8]>,
}

/// An array of `iovec` the kernel reads (`readv`, `writev`).
#[derive(Clone, Copy)]
pub struct UserIov<'a> {
    pub(crate) ptr: *const iovec,
    pub(crate) count: c_int,
    _borrow: PhantomData<&'a [iovec]>,
}

/// A message header the kernel reads (`sendmsg`).
#[derive(Clone, Copy)]
pub struct UserMsg<'a> {
    pub(crate) ptr: *const msghdr,
    _borrow: PhantomData<&'a msghdr>,
}

/// A message header the kernel reads and updates (`recvmsg`).
pub struct UserMsgMut<'a> {
    pub(crate) ptr: *mut msghdr,
    _borrow: PhantomData<&'a mut msghdr>,
}

/// The two-descriptor array `socketpair` fills.
pub struct UserPair<'a> {
    pub(crate) ptr: *mut c_int,
    _borrow: PhantomData<&'a mut [c_int; 2]>,
}

impl<'a> UserIn<'a> {
    /// Memory Rust owns.
    pub fn from_slice(bytes: &'a [u8]) -> Self {
        UserIn {
            ptr: bytes.as_ptr().cast(),
            len: bytes.len(),
            _borrow: PhantomData,
        }
    }

    /// Pointer and length exactly as a C caller passed them.
    ///
    /// # Safety
    ///
    /// No Rust reference may alias the memory mutably while the value lives;
    /// the pointer itself may be NULL, dangling or unmapped (the kernel checks it).
    pub unsafe fn from_c(ptr: *const c_void, len: usize) -> Self {
        UserIn {
            ptr,
            len,
            _borrow: PhantomData,
        }
    }

    /// The length passed.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the length is zero.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The buffer as one `iovec`, to hand to a vectored call (`pwritev2`).
    #[inline(always)]
    pub fn as_iovec(&self) -> libc::iovec {
        libc::iovec {
            iov_base: self.ptr.cast_mut(),
            iov_len: self.len,
        }
    }

    /// The part after the first `n` bytes (`n` at most the length).
    pub fn skip(&self, n: usize) -> Self {
        let n = n.min(self.len);
        UserIn {
            ptr: self.ptr.cast::<u8>().wrapping_add(n).cast(),
            len: self.len - n,
            _borrow: PhantomData,
        }
    }
}

impl<'a> UserOut<'a> {
    /// Memory Rust owns, possibly uninitialised.
    pub fn from_uninit(bytes: &'a mut [MaybeUninit<u8>]) -> Self {
        UserOut {
            ptr: bytes.as_mut_ptr().cast(),
            len: bytes.len(),
            _borrow: PhantomData,
        }
    }

    /// Initialised memory Rust owns.
    pub fn from_slice(bytes: &'a mut [u8]) -> Self {
        UserOut {
            ptr: bytes.as_mut_ptr().cast(),
            len: bytes.len(),
            _borrow: PhantomData,
        }
    }

    /// Pointer and length exactly as a C caller passed them.
    ///
    /// # Safety
    ///
    /// No Rust reference may alias the memory while the value lives; the
    /// pointer itself may be NULL, dangling or unmapped (the kernel checks it).
    pub unsafe fn from_c(ptr: *mut c_void, len: usize) -> Self {
        UserOut {
            ptr,
            len,
            _borrow: PhantomData,
        }
    }

    /// The length passed.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the length is zero.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The part after the first `n` bytes (`n` at most the length).
    pub fn skip(&mut self, n: usize) -> UserOut<'_> {
        let n = n.min(self.len);
        UserOut {
            ptr: self.ptr.cast::<u8>().wrapping_add(n).cast(),
            len: self.len - n,
            _borrow: PhantomData,
        }
    }
}

impl<'a> UserAddr<'a> {
    /// An address Rust owns.
    pub fn from_sockaddr(addr: &'a socket2::SockAddr) -> Self {
        UserAddr {
            ptr: addr.as_ptr().cast(),
            len: addr.len(),
            _borrow: PhantomData,
        }
    }

    /// An address copied into Rust memory.
    pub fn from_copy(addr: &'a crate::addr::AddrCopy) -> Self {
        UserAddr {
            ptr: addr.as_ptr(),
            len: addr.len(),
            _borrow: PhantomData,
        }
    }

    /// No address (NULL, 0): `sendto` on a connected socket.
    pub fn none() -> Self {
        UserAddr {
            ptr: core::ptr::null(),
            len: 0,
            _borrow: PhantomData,
        }
    }

    /// Pointer and length exactly as a C caller passed them.
    ///
    /// # Safety
    ///
    /// As [`UserIn::from_c`].
    pub unsafe fn from_c(ptr: *const sockaddr, len: socklen_t) -> Self {
        UserAddr {
            ptr,
            len,
            _borrow: PhantomData,
        }
    }
}

impl<'a> UserAddrOut<'a> {
    /// No address wanted (NULL, NULL).
    pub fn none() -> Self {
        UserAddrOut {
            ptr: core::ptr::null_mut(),
            len: core::ptr::null_mut(),
            _borrow: PhantomData,
        }
    }

    /// Storage Rust owns; `len` must hold its size on entry.
    pub fn from_storage(storage: &'a mut libc::sockaddr_storage, len: &'a mut socklen_t) -> Self {
        UserAddrOut {
            ptr: (storage as *mut libc::sockaddr_storage).cast(),
            len,
            _borrow: PhantomData,
        }
    }

    /// Pointers exactly as a C caller passed them.
    ///
    /// # Safety
    ///
    /// As [`UserOut::from_c`], for both pointers.
    pub unsafe fn from_c(ptr: *mut sockaddr, len: *mut socklen_t) -> Self {
        UserAddrOut {
            ptr,
            len,
            _borrow: PhantomData,
        }
    }
}

impl<'a> UserOptOut<'a> {
    /// Pointers exactly as a C caller passed them.
    ///
    /// # Safety
    ///
    /// As [`UserOut::from_c`], for both pointers.
    pub unsafe fn from_c(ptr: *mut c_void, len: *mut socklen_t) -> Self {
        UserOptOut {
            ptr,
            len,
            _borrow: PhantomData,
        }
    }

    /// A value Rust owns; `len` must hold its size on entry.
    pub fn from_value<T>(value: &'a mut MaybeUninit<T>, len: &'a mut socklen_t) -> Self {
        UserOptOut {
            ptr: value.as_mut_ptr().cast(),
            len,
            _borrow: PhantomData,
        }
    }
}

impl<'a> UserIov<'a> {
    /// An array Rust owns.
    pub fn from_slice(iov: &'a [iovec]) -> Self {
        UserIov {
            ptr: iov.as_ptr(),
            count: c_int::try_from(iov.len()).unwrap_or(c_int::MAX),
            _borrow: PhantomData,
        }
    }

    /// Pointer and count exactly as a C caller passed them.
    ///
    /// # Safety
    ///
    /// As [`UserIn::from_c`], for the array and every buffer it names.
    pub unsafe fn from_c(ptr: *const iovec, count: c_int) -> Self {
        UserIov {
            ptr,
            count,
            _borrow: PhantomData,
        }
    }

    /// The sum of the buffer lengths, once the kernel has read the array.
    ///
    /// # Safety
    ///
    /// A system call must just have copied the whole array from `ptr`
    /// (`0 < count <= IOV_MAX`) without a fault.
    pub unsafe fn total_len_after_kernel_read(&self) -> usize {
        let count = usize::try_from(self.count).unwrap_or(0);
        (0..count)
            // SAFETY: the caller guarantees the kernel just read these `count` entries.
            .map(|i| unsafe { core::ptr::read_unaligned(self.ptr.add(i)) }.iov_len)
            .fold(0usize, usize::saturating_add)
    }
}

impl<'a> UserMsg<'a> {
    /// A header Rust owns.
    pub fn from_ref(msg: &'a msghdr) -> Self {
        UserMsg {
            ptr: msg,
            _borrow: PhantomData,
        }
    }

    /// Pointer exactly as a C caller passed it.
    ///
    /// # Safety
    ///
    /// As [`UserIn::from_c`], for the header and everything it points to.
    pub unsafe fn from_c(ptr: *const msghdr) -> Self {
        UserMsg {
            ptr,
            _borrow: PhantomData,
        }
    }
}

impl<'a> UserMsgMut<'a> {
    /// A header Rust owns.
    pub fn from_mut(msg: &'a mut msghdr) -> Self {
        UserMsgMut {
            ptr: msg,
            _borrow: PhantomData,
        }
    }

    /// Pointer exactly as a C caller passed it.
    ///
    /// # Safety
    ///
    /// As [`UserOut::from_c`], for the header and everything it points to.
    pub unsafe fn from_c(ptr: *mut msghdr) -> Self {
        UserMsgMut {
            ptr,
            _borrow: PhantomData,
        }
    }

    /// Clears `bits` in the `msg_flags` the kernel returned.
    ///
    /// # Safety
    ///
    /// `recvmsg` must just have succeeded with this header: the kernel then
    /// wrote `msg_flags` into it, so the field is mapped and writable.
    pub unsafe fn clear_returned_flags_after_success(&self, bits: c_int) {
        // SAFETY: the kernel just wrote this field (function contract).
        unsafe {
            let flags = &raw mut (*self.ptr).msg_flags;
            let value = core::ptr::read_unaligned(flags);
            if value & bits != 0 {
                core::ptr::write_unaligned(flags, value & !bits);
            }
        }
    }

    /// Calls `each` for every descriptor received as `SCM_RIGHTS`.
    ///
    /// # Safety
    ///
    /// `recvmsg` must just have succeeded with this header: the kernel then
    /// wrote `msg_controllen` back into it and wrote that many bytes of
    /// control messages into `msg_control`, so both are mapped.
    #[inline(always)]
    pub unsafe fn for_each_received_fd_after_success(&self, each: impl FnMut(c_int)) {
        // SAFETY: the kernel just updated this header (see the function
        // contract); the length first: with no control data it is 0 whatever
        // buffer was offered.
        let controllen = unsafe { core::ptr::read_unaligned(&raw const (*self.ptr).msg_controllen) };
        if controllen == 0 {
            return;
        }
        // SAFETY: as above.
        let control = unsafe { core::ptr::read_unaligned(&raw const (*self.ptr).msg_control) };
        if !control.is_null() {
            // SAFETY: as this function's contract.
            unsafe { self.walk_received_fds(each) }
        }
    }

    /// [`Self::for_each_received_fd_after_success`] once control data came.
    ///
    /// # Safety
    ///
    /// As [`Self::for_each_received_fd_after_success`].
    #[inline(never)]
    unsafe fn walk_received_fds(&self, mut each: impl FnMut(c_int)) {
        // SAFETY: the kernel just updated this header (see the function contract).
        let msg = unsafe { core::ptr::read_unaligned(self.ptr) };
        // SAFETY: CMSG_FIRSTHDR/CMSG_NXTHDR only read inside
        // msg_control[..msg_controllen], which the kernel just wrote.
        let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
        while !cmsg.is_null() {
            // SAFETY: CMSG_FIRSTHDR/NXTHDR return headers fully inside the written control area.
            let header = unsafe { core::ptr::read_unaligned(cmsg) };
            if header.cmsg_level == libc::SOL_SOCKET && header.cmsg_type == libc::SCM_RIGHTS {
                // SAFETY: cmsg is a valid header (above), CMSG_DATA points inside it.
                let data = unsafe { libc::CMSG_DATA(cmsg) };
                // SAFETY: CMSG_LEN(0) is a pure size computation.
                let header_len = unsafe { libc::CMSG_LEN(0) } as usize;
                let count = (header.cmsg_len as usize).saturating_sub(header_len) / size_of::<c_int>();
                for i in 0..count {
                    // SAFETY: the kernel wrote cmsg_len bytes for this header, so
                    // `count` descriptors follow CMSG_DATA.
                    each(unsafe { core::ptr::read_unaligned(data.cast::<c_int>().add(i)) });
                }
            }
            // SAFETY: as for CMSG_FIRSTHDR.
            cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
        }
    }
}

impl<'a> UserPair<'a> {
    /// An array Rust owns.
    pub fn from_array(sv: &'a mut [c_int; 2]) -> Self {
        UserPair {
            ptr: sv.as_mut_ptr(),
            _borrow: PhantomData,
        }
    }

    /// Pointer exactly as a C caller passed it.
    ///
    /// # Safety
    ///
    /// As [`UserOut::from_c`].
    pub unsafe fn from_c(ptr: *mut c_int) -> Self {
        UserPair {
            ptr,
            _borrow: PhantomData,
        }
    }

    /// The two descriptors.
    ///
    /// # Safety
    ///
    /// `socketpair` must just have succeeded, having written both entries.
    pub unsafe fn read_after_success(&self) -> [c_int; 2] {
        // SAFETY: the kernel just wrote two ints at ptr (function contract).
        unsafe {
            [
                core::ptr::read_unaligned(self.ptr),
                core::ptr::read_unaligned(self.ptr.add(1)),
            ]
        }
    }
}

/// Copies `dst.len()` bytes from caller memory at `src` into `dst` through
/// the kernel (`process_vm_readv` on this process), so a bad pointer gives
/// `EFAULT` instead of a fault inside safesock. For the helpers, which must
/// read caller memory themselves (address text, addresses to format).
pub fn copy_from_caller(src: *const c_void, dst: &mut [u8]) -> crate::error::Result<usize> {
    if dst.is_empty() {
        return Ok(0);
    }
    if src.is_null() {
        return Err(crate::error::Errno(libc::EFAULT));
    }
    let local = libc::iovec {
        iov_base: dst.as_mut_ptr().cast(),
        iov_len: dst.len(),
    };
    let remote = libc::iovec {
        iov_base: src.cast_mut(),
        iov_len: dst.len(),
    };
    // SAFETY: `local` describes `dst`, which we own; the kernel validates
    // `remote` and reports EFAULT for unmapped memory. The pid is our own.
    let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    if n < 0 {
        Err(crate::error::Errno::last())
    } else {
        Ok(n as usize)
    }
}

/// Copies `src` into caller memory at `dst`, all or nothing: the kernel
/// first proves the whole range writable (`process_vm_writev` on this process,
/// so a bad pointer is `EFAULT` instead of a fault), then the bytes are stored
/// again with an ordinary write so that memory checkers such as valgrind,
/// which cannot see the kernel's copy, know the caller's buffer is filled.
pub fn copy_to_caller(src: &[u8], dst: *mut c_void) -> crate::error::Result<()> {
    if src.is_empty() {
        return Ok(());
    }
    if dst.is_null() {
        return Err(crate::error::Errno(libc::EFAULT));
    }
    let local = libc::iovec {
        iov_base: src.as_ptr().cast_mut().cast(),
        iov_len: src.len(),
    };
    let remote = libc::iovec {
        iov_base: dst,
        iov_len: src.len(),
    };
    // SAFETY: `local` describes `src`, which we own and the kernel only reads;
    // the kernel validates `remote`. The pid is our own.
    let n = unsafe { libc::process_vm_writev(libc::getpid(), &local, 1, &remote, 1, 0) };
    match n {
        n if n < 0 => Err(crate::error::Errno::last()),
        n if n as usize == src.len() => {
            // SAFETY: the kernel just wrote all `src.len()` bytes at `dst`, so
            // the range is mapped and writable; it is caller memory no Rust
            // reference aliases, and `src` is ours (no overlap).
            unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), dst.cast::<u8>(), src.len()) };
            Ok(())
        }
        _ => Err(crate::error::Errno(libc::EFAULT)),
    }
}

/// Reads a NUL-terminated string of at most `max` bytes (without the NUL)
/// from caller memory, through the kernel. `Ok(None)` for a NULL pointer;
/// `EFAULT` for unreadable memory; `ENAMETOOLONG` when no NUL comes within `max`.
pub fn read_caller_str(ptr: *const core::ffi::c_char, max: usize) -> crate::error::Result<Option<Vec<u8>>> {
    if ptr.is_null() {
        return Ok(None);
    }
    let mut text = Vec::new();
    let mut chunk = [0u8; 256];
    while text.len() <= max {
        // Read up to the end of the current page only, so a string that ends
        // just before an unmapped page is still read whole.
        let at = ptr as usize + text.len();
        let to_page_end = 4096 - (at % 4096);
        let want = chunk.len().min(to_page_end);
        let got = copy_from_caller(at as *const c_void, &mut chunk[..want])?;
        if got == 0 {
            return Err(crate::error::Errno(libc::EFAULT));
        }
        if let Some(nul) = chunk[..got].iter().position(|&b| b == 0) {
            text.extend_from_slice(&chunk[..nul]);
            return if text.len() <= max {
                Ok(Some(text))
            } else {
                Err(crate::error::Errno(libc::ENAMETOOLONG))
            };
        }
        text.extend_from_slice(&chunk[..got]);
    }
    Err(crate::error::Errno(libc::ENAMETOOLONG))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unmapped_page() -> *mut c_void {
        // SAFETY: an anonymous private mapping, unmapped at once; only its
        // address is kept, as a pointer that is certainly invalid.
        unsafe {
            let p = libc::mmap(
                core::ptr::null_mut(),
                4096,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(p, libc::MAP_FAILED);
            libc::munmap(p, 4096);
            p
        }
    }

    #[test]
    fn caller_copies_fault_cleanly() {
        let mut buf = [0u8; 4];
        assert_eq!(copy_from_caller(b"abcd".as_ptr().cast(), &mut buf), Ok(4));
        assert_eq!(&buf, b"abcd");
        assert_eq!(
            copy_from_caller(core::ptr::null(), &mut buf),
            Err(crate::error::Errno(libc::EFAULT))
        );
        assert_eq!(
            copy_from_caller(unmapped_page(), &mut buf),
            Err(crate::error::Errno(libc::EFAULT))
        );
        assert_eq!(
            copy_to_caller(b"x", unmapped_page()),
            Err(crate::error::Errno(libc::EFAULT))
        );
        let mut out = [0u8; 2];
        copy_to_caller(b"hi", out.as_mut_ptr().cast()).unwrap();
        assert_eq!(&out, b"hi");
    }

    #[test]
    fn caller_strings_are_bounded_and_fault_cleanly() {
        assert_eq!(
            read_caller_str(c"127.0.0.1:80".as_ptr(), 64),
            Ok(Some(b"127.0.0.1:80".to_vec()))
        );
        assert_eq!(read_caller_str(core::ptr::null(), 64), Ok(None));
        assert_eq!(
            read_caller_str(unmapped_page().cast(), 64),
            Err(crate::error::Errno(libc::EFAULT))
        );
        let long = std::ffi::CString::new(vec![b'a'; 700]).unwrap();
        assert_eq!(
            read_caller_str(long.as_ptr(), 64),
            Err(crate::error::Errno(libc::ENAMETOOLONG))
        );
        assert_eq!(read_caller_str(long.as_ptr(), 700).unwrap().unwrap().len(), 700);
    }

    #[test]
    fn string_ending_at_page_edge_is_read() {
        // SAFETY: two fresh anonymous pages; the second is unmapped so the
        // string ends right before unreadable memory.
        unsafe {
            let p = libc::mmap(
                core::ptr::null_mut(),
                8192,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
            .cast::<u8>();
            assert_ne!(p.cast(), libc::MAP_FAILED);
            libc::munmap(p.add(4096).cast(), 4096);
            let start = p.add(4096 - 4);
            core::ptr::copy_nonoverlapping(c"a:1".as_ptr().cast::<u8>(), start, 4);
            assert_eq!(read_caller_str(start.cast(), 64), Ok(Some(b"a:1".to_vec())));
            libc::munmap(p.cast(), 4096);
        }
    }
}
