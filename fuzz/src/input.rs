//! Turning fuzzer bytes into values, and back (for the seed corpus).
//!
//! Every input is valid: a [`Source`] hands out bytes until the input ends and
//! zeroes after that, so any byte string decodes to some program. Most fields
//! are one selector byte picking from a table of interesting values; the
//! selector [`RAW`] is followed by four raw little-endian bytes instead, so
//! every value stays reachable. [`Seed`] writes the same format, which keeps
//! the hand-written seeds in step with the decoder.

/// The selector byte that means "four raw bytes follow".
pub const RAW: u8 = 0xff;

/// Address families the `addr` and `messages` targets draw from: the ones
/// safesock decodes, plus two it must refuse cleanly.
pub const ADDRESS_FAMILIES: &[u16] = &[
    libc::AF_INET as u16,
    libc::AF_INET6 as u16,
    libc::AF_UNIX as u16,
    libc::AF_UNSPEC as u16,
    libc::AF_PACKET as u16,
    0xffff,
];

/// A cursor over fuzzer input.
pub struct Source<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Source<'a> {
    /// A cursor at the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Source { data, pos: 0 }
    }

    /// Whether every byte was used.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// The next byte, or 0 after the end.
    pub fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    /// The next four bytes, little-endian.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    /// Up to `max` bytes: a length byte (modulo `max + 1`), then that many bytes.
    pub fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = usize::from(self.byte()) % (max + 1);
        (0..n).map(|_| self.byte()).collect()
    }

    /// One entry of `table`, chosen by the next byte.
    pub fn pick<T: Copy>(&mut self, table: &[T]) -> T {
        table[usize::from(self.byte()) % table.len()]
    }

    /// One entry of `table`, or a raw value after [`RAW`].
    pub fn int(&mut self, table: &[i32]) -> i32 {
        match self.byte() {
            RAW => self.u32() as i32,
            s => table[usize::from(s) % table.len()],
        }
    }

    /// As [`Source::int`], unsigned.
    pub fn uint(&mut self, table: &[u32]) -> u32 {
        match self.byte() {
            RAW => self.u32(),
            s => table[usize::from(s) % table.len()],
        }
    }

    /// As [`Source::int`] for sizes: a table entry or a raw 32-bit value.
    pub fn size(&mut self, table: &[usize]) -> usize {
        match self.byte() {
            RAW => self.u32() as usize,
            s => table[usize::from(s) % table.len()],
        }
    }

    /// The rest of the input as text (lossy), at most `max` bytes.
    pub fn rest(&mut self, max: usize) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        let end = (start + max).min(self.data.len());
        self.pos = end;
        &self.data[start..end]
    }
}

/// Writes inputs in the format [`Source`] reads (for seeds).
#[derive(Default, Clone)]
pub struct Seed {
    bytes: Vec<u8>,
}

impl Seed {
    /// An empty input.
    pub fn new() -> Self {
        Seed::default()
    }

    /// One byte (an opcode, a selector, a descriptor choice ...).
    pub fn byte(mut self, b: u8) -> Self {
        self.bytes.push(b);
        self
    }

    /// Several selector bytes.
    pub fn bytes(mut self, bs: &[u8]) -> Self {
        self.bytes.extend_from_slice(bs);
        self
    }

    /// A raw value for a field read with `int`/`uint`/`size`.
    pub fn raw(mut self, v: u32) -> Self {
        self.bytes.push(RAW);
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A field read with [`Source::bytes`].
    pub fn blob(mut self, data: &[u8]) -> Self {
        assert!(data.len() < 256, "a blob is at most 255 bytes");
        self.bytes.push(data.len() as u8);
        self.bytes.extend_from_slice(data);
        self
    }

    /// The finished input.
    pub fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

/// Index of `value` in `table`, for writing seeds that pick a table entry.
pub fn index_of<T: PartialEq>(table: &[T], value: T) -> u8 {
    table
        .iter()
        .position(|v| *v == value)
        .map(|i| i as u8)
        .expect("the value is in the table")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_and_source_agree() {
        let bytes = Seed::new().byte(7).raw(0xdead_beef).blob(b"abc").byte(2).finish();
        let mut s = Source::new(&bytes);
        assert_eq!(s.byte(), 7);
        assert_eq!(s.int(&[1, 2]), 0xdead_beef_u32 as i32);
        assert_eq!(s.bytes(16), b"abc");
        assert_eq!(s.pick(&[10, 20, 30]), 30);
        assert!(s.is_empty());
        assert_eq!(s.byte(), 0, "zeroes after the end");
    }
}
