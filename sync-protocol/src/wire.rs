//! The binary encoding: LEB128 varints, length-prefixed byte strings, raw
//! 32-byte hashes. Decoding is strict: every length is bounded, every byte
//! is consumed, nothing is guessed.
//!
//! Decoding is also bounded in memory by the input's length: a count read
//! from the wire is refused as truncated unless the bytes left could hold
//! that many elements, so no allocation is larger than the rest of the
//! input could encode, and everything the decoder allocates is charged to a
//! budget of [`DECODE_PER_BYTE`] bytes per input byte plus [`DECODE_SLACK`].

use crate::error::DecodeError;

/// Longest identifier on the wire (visit ids, messages are separate).
pub const MAX_ID: usize = 64;
/// Most heads one visit may list.
pub const MAX_HEADS: usize = 256;
/// Longest per-visit message.
pub const MAX_MESSAGE: usize = 1024;

pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn new() -> Self {
        Self { buf: Vec::new() }
    }
    /// A writer whose buffer holds `bytes` without growing (large answers
    /// are not copied through doubling reallocations).
    pub(crate) fn with_capacity(bytes: usize) -> Self {
        Self {
            buf: Vec::with_capacity(bytes),
        }
    }
    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub(crate) fn u64_le(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn varint(&mut self, mut v: u64) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.buf.push(byte);
                return;
            }
            self.buf.push(byte | 0x80);
        }
    }
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.varint(b.len() as u64);
        self.buf.extend_from_slice(b);
    }
    pub(crate) fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    pub(crate) fn hashes(&mut self, hs: &[[u8; 32]]) {
        self.varint(hs.len() as u64);
        for h in hs {
            self.buf.extend_from_slice(h);
        }
    }
}

/// Bytes of memory a decoded message may take per byte of input, beyond
/// [`DECODE_SLACK`].
pub const DECODE_PER_BYTE: usize = 3;
/// Memory a decoded message may take whatever its length: room for the
/// largest visit list ([`crate::MAX_VISITS`] results with their listings).
pub const DECODE_SLACK: usize = 4 << 20;

/// The memory budget of decoding `len` input bytes.
pub fn decode_budget(len: usize) -> usize {
    len.saturating_mul(DECODE_PER_BYTE)
        .saturating_add(DECODE_SLACK)
}

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// What the decoded message may still allocate, bytes.
    budget: usize,
    limit: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        let limit = decode_budget(buf.len());
        Self {
            buf,
            pos: 0,
            budget: limit,
            limit,
        }
    }
    /// Charges `bytes` of decoded memory to the budget.
    pub(crate) fn charge(&mut self, bytes: usize) -> Result<(), DecodeError> {
        self.budget = self
            .budget
            .checked_sub(bytes)
            .ok_or(DecodeError::TooCostly {
                len: self.buf.len() as u64,
                limit: self.limit as u64,
            })?;
        Ok(())
    }
    /// A count of elements that each take at least `min_wire` bytes on the
    /// wire and `weight` bytes decoded (at most `max`), and the capacity to
    /// allocate for them: no more than the rest of the input could hold
    /// (past that, decoding fails as truncated before the list would grow),
    /// charged to the budget.
    pub(crate) fn count(
        &mut self,
        what: &'static str,
        max: usize,
        min_wire: usize,
        weight: usize,
    ) -> Result<(usize, usize), DecodeError> {
        let n = self.len(what, max)?;
        let capacity = n.min(self.remaining() / min_wire.max(1));
        self.charge(capacity.saturating_mul(weight))?;
        Ok((n, capacity))
    }
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(DecodeError::Truncated(what))?;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or(DecodeError::Truncated(what))?;
        self.pos = end;
        Ok(s)
    }
    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }
    pub(crate) fn u64_le(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    pub(crate) fn varint(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.u8(what)?;
            let part = u64::from(b & 0x7f);
            if i == 9 && (b & 0x7e) != 0 {
                return Err(DecodeError::BadVarint(what));
            }
            v |= part << (7 * i);
            if b & 0x80 == 0 {
                // Refuse overlong encodings (a trailing zero group).
                if i > 0 && b == 0 {
                    return Err(DecodeError::BadVarint(what));
                }
                return Ok(v);
            }
        }
        Err(DecodeError::BadVarint(what))
    }
    pub(crate) fn len(&mut self, what: &'static str, max: usize) -> Result<usize, DecodeError> {
        let n = self.varint(what)?;
        if n > max as u64 {
            return Err(DecodeError::TooLong {
                what,
                len: n,
                max: max as u64,
            });
        }
        Ok(n as usize)
    }
    pub(crate) fn bytes(
        &mut self,
        what: &'static str,
        max: usize,
    ) -> Result<&'a [u8], DecodeError> {
        let n = self.len(what, max)?;
        self.take(n, what)
    }
    /// A byte string copied out of the input (and charged).
    pub(crate) fn byte_vec(
        &mut self,
        what: &'static str,
        max: usize,
    ) -> Result<Vec<u8>, DecodeError> {
        let b = self.bytes(what, max)?;
        self.charge(b.len())?;
        Ok(b.to_vec())
    }
    /// A string borrowed from the input (nothing allocated).
    pub(crate) fn str_ref(
        &mut self,
        what: &'static str,
        max: usize,
    ) -> Result<&'a str, DecodeError> {
        let b = self.bytes(what, max)?;
        std::str::from_utf8(b).map_err(|_| DecodeError::BadUtf8(what))
    }
    /// A string copied out of the input (and charged).
    pub(crate) fn str(&mut self, what: &'static str, max: usize) -> Result<String, DecodeError> {
        let s = self.str_ref(what, max)?;
        self.charge(s.len())?;
        Ok(s.to_owned())
    }
    pub(crate) fn hashes(&mut self, what: &'static str) -> Result<Vec<[u8; 32]>, DecodeError> {
        self.many_hashes(what, MAX_HEADS)
    }
    pub(crate) fn many_hashes(
        &mut self,
        what: &'static str,
        max: usize,
    ) -> Result<Vec<[u8; 32]>, DecodeError> {
        let (n, capacity) = self.count(what, max, 32, 32)?;
        let mut out = Vec::with_capacity(capacity);
        for _ in 0..n {
            let mut h = [0u8; 32];
            h.copy_from_slice(self.take(32, what)?);
            out.push(h);
        }
        Ok(out)
    }
    pub(crate) fn expect_bytes(
        &mut self,
        expected: &[u8],
        what: &'static str,
    ) -> Result<(), DecodeError> {
        if self.take(expected.len(), what)? != expected {
            return Err(DecodeError::BadMagic);
        }
        Ok(())
    }
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        if self.remaining() != 0 {
            return Err(DecodeError::TrailingBytes(self.remaining()));
        }
        Ok(())
    }
}
