//! A fixed-size text buffer for messages and trace lines.
//!
//! Messages and trace lines are built without touching the heap so that a
//! failing call, and tracing itself, never allocate. Text that does not fit is
//! cut and ends in `...`; the buffer always keeps room for a closing NUL.

use core::fmt;

/// Text built in place, at most `N - 1` bytes plus a NUL terminator.
pub struct FixedBuf<const N: usize> {
    bytes: [u8; N],
    len: usize,
    truncated: bool,
}

impl<const N: usize> FixedBuf<N> {
    /// An empty buffer.
    pub const fn new() -> Self {
        FixedBuf {
            bytes: [0; N],
            len: 0,
            truncated: false,
        }
    }

    /// Forgets the text.
    pub fn clear(&mut self) {
        self.len = 0;
        self.truncated = false;
        if N > 0 {
            self.bytes[0] = 0;
        }
    }

    /// The text so far (always valid UTF-8: only whole `str`s are appended, and a
    /// cut never splits a character).
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }

    /// The text with its terminating NUL, for handing to C.
    pub fn as_bytes_with_nul(&mut self) -> &[u8] {
        self.bytes[self.len] = 0;
        &self.bytes[..=self.len]
    }

    /// Whether `len` bytes of the text end on a character boundary.
    fn ends_on_char_boundary(&self, len: usize) -> bool {
        core::str::from_utf8(&self.bytes[..self.len]).is_ok_and(|t| t.is_char_boundary(len))
    }

    /// Whether some text was cut.
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }

    fn push_cut(&mut self, s: &str) {
        // Keep room for "..." and the NUL: text already past that point is
        // cut back first (on a character boundary).
        let limit = N.saturating_sub(4);
        if self.len > limit {
            let mut keep = limit;
            while keep > 0 && !self.ends_on_char_boundary(keep) {
                keep -= 1;
            }
            self.len = keep;
        }
        let room = limit.saturating_sub(self.len);
        let mut take = s.len().min(room);
        while take > 0 && !s.is_char_boundary(take) {
            take -= 1;
        }
        self.bytes[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        if N >= 4 {
            self.bytes[self.len..self.len + 3].copy_from_slice(b"...");
            self.len += 3;
        }
        self.truncated = true;
    }
}

impl<const N: usize> Default for FixedBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Write for FixedBuf<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.truncated {
            return Ok(());
        }
        if self.len + s.len() < N {
            self.bytes[self.len..self.len + s.len()].copy_from_slice(s.as_bytes());
            self.len += s.len();
        } else {
            self.push_cut(s);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;

    #[test]
    fn keeps_short_text_whole() {
        let mut b = FixedBuf::<16>::new();
        write!(b, "fd {}", 42).unwrap();
        assert_eq!(b.as_str(), "fd 42");
        assert_eq!(b.as_bytes_with_nul(), b"fd 42\0");
        assert!(!b.is_truncated());
    }

    #[test]
    fn cuts_long_text_with_dots_and_keeps_nul() {
        let mut b = FixedBuf::<12>::new();
        b.write_str("0123456789abcdef").unwrap();
        assert_eq!(b.as_str(), "01234567...");
        assert_eq!(b.as_bytes_with_nul().len(), 12);
        assert!(b.is_truncated());
        b.write_str("more").unwrap();
        assert_eq!(b.as_str(), "01234567...");
    }

    #[test]
    fn cut_after_text_that_nearly_fills_the_buffer_stays_inside() {
        for filled in 0..16 {
            let mut b = FixedBuf::<16>::new();
            b.write_str(&"x".repeat(filled)).unwrap();
            b.write_str("0123456789abcdef").unwrap();
            assert!(b.as_str().len() <= 15, "filled {filled}: {:?}", b.as_str());
            assert!(b.as_str().ends_with("..."), "filled {filled}: {:?}", b.as_str());
            assert_eq!(b.as_bytes_with_nul().len(), b.as_str().len() + 1);
        }
        let mut b = FixedBuf::<16>::new();
        b.write_str("abcdefghijkl\u{e9}").unwrap();
        b.write_str("more text").unwrap();
        assert!(b.as_str().ends_with("..."));
    }

    #[test]
    fn never_splits_a_character() {
        let mut b = FixedBuf::<10>::new();
        b.write_str("ab\u{00e9}\u{00e9}\u{00e9}\u{00e9}").unwrap();
        assert!(b.as_str().ends_with("..."));
        assert!(b.as_str().starts_with("ab"));
    }

    #[test]
    fn clear_forgets() {
        let mut b = FixedBuf::<8>::new();
        b.write_str("abc").unwrap();
        b.clear();
        assert_eq!(b.as_str(), "");
    }
}
