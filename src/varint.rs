//! Unsigned LEB128 integers, the variable-length fields of the on-disk
//! format (`docs/FORMAT.md`): seven bits per byte, low bits first, the high
//! bit set on every byte but the last. A value takes 1 byte below 2^7, 2
//! below 2^14, 3 below 2^21, and at most [`MAX_LEN`].
//!
//! Decoding is strict: an encoding longer than the value needs (a last
//! byte of 0 after the first) or a value above 2^64 - 1 is refused, so every
//! value has exactly one encoding and a damaged length can never pass for
//! another one that happens to decode alike.

/// The longest encoding (a 64-bit value).
pub const MAX_LEN: usize = 10;

/// Bytes of the encoding of `v`.
#[inline]
pub const fn len(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Writes `v` at the start of `out` (at least [`MAX_LEN`] bytes, or
/// [`len`]`(v)`) and returns its length.
#[inline]
pub fn put(out: &mut [u8], mut v: u64) -> usize {
    let mut i = 0;
    while v >= 0x80 {
        out[i] = (v as u8) | 0x80;
        v >>= 7;
        i += 1;
    }
    out[i] = v as u8;
    i + 1
}

/// Appends `v` to `buf`.
#[inline]
pub fn push(buf: &mut Vec<u8>, v: u64) {
    let mut b = [0u8; MAX_LEN];
    let n = put(&mut b, v);
    buf.extend_from_slice(&b[..n]);
}

/// Why a field could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadError {
    /// The bytes ended inside the field.
    Short,
    /// Not a valid encoding, or a value outside the field's range: why.
    Bad(String),
}

/// Reads fields in order from a byte slice.
pub struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        Reader { b, at: 0 }
    }

    /// Bytes read so far.
    pub fn pos(&self) -> usize {
        self.at
    }

    /// The next `n` bytes as they are.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], ReadError> {
        let end = self.at.checked_add(n).ok_or(ReadError::Short)?;
        let s = self.b.get(self.at..end).ok_or(ReadError::Short)?;
        self.at += n;
        Ok(s)
    }

    pub fn u8(&mut self) -> Result<u8, ReadError> {
        Ok(self.bytes(1)?[0])
    }

    pub fn fixed32(&mut self) -> Result<u32, ReadError> {
        Ok(u32::from_le_bytes(self.bytes(4)?.try_into().unwrap()))
    }

    pub fn fixed64(&mut self) -> Result<u64, ReadError> {
        Ok(u64::from_le_bytes(self.bytes(8)?.try_into().unwrap()))
    }

    /// A variable-length value named `what` (for the error), at most `max`.
    pub fn var(&mut self, what: &str, max: u64) -> Result<u64, ReadError> {
        let mut v = 0u64;
        for i in 0..MAX_LEN {
            let byte = *self.b.get(self.at + i).ok_or(ReadError::Short)?;
            let low = u64::from(byte & 0x7f);
            if i == MAX_LEN - 1 && byte > 1 {
                return Err(ReadError::Bad(format!("{what}: value above 2^64")));
            }
            v |= low << (7 * i);
            if byte & 0x80 == 0 {
                if byte == 0 && i > 0 {
                    return Err(ReadError::Bad(format!(
                        "{what}: overlong encoding ({} bytes)",
                        i + 1
                    )));
                }
                self.at += i + 1;
                if v > max {
                    return Err(ReadError::Bad(format!("{what} {v} is above {max}")));
                }
                return Ok(v);
            }
        }
        Err(ReadError::Bad(format!("{what}: value above 2^64")))
    }

    /// [`Reader::var`] of a field no larger than a `u32`.
    pub fn var32(&mut self, what: &str, max: u32) -> Result<u32, ReadError> {
        Ok(self.var(what, u64::from(max))? as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_length_class_round_trips_and_len_agrees() {
        let mut vals = vec![0u64, 1, 127, 128, 16383, 16384, u64::MAX, u64::MAX - 1];
        for bits in 1..64 {
            vals.extend([(1u64 << bits) - 1, 1 << bits, (1 << bits) + 1]);
        }
        for v in vals {
            let mut b = Vec::new();
            push(&mut b, v);
            assert_eq!(b.len(), len(v), "{v}");
            let mut r = Reader::new(&b);
            assert_eq!(r.var("v", u64::MAX), Ok(v));
            assert_eq!(r.pos(), b.len());
            // Every proper prefix is short, never a value.
            for cut in 0..b.len() {
                assert_eq!(
                    Reader::new(&b[..cut]).var("v", u64::MAX),
                    Err(ReadError::Short)
                );
            }
        }
        assert_eq!(len(127), 1);
        assert_eq!(len(128), 2);
        assert_eq!(len(u64::MAX), MAX_LEN);
    }

    #[test]
    fn overlong_oversized_and_out_of_range_values_are_refused() {
        let bad = |b: &[u8], needle: &str| match Reader::new(b).var("field", u64::MAX) {
            Err(ReadError::Bad(why)) => assert!(why.contains(needle), "{why}"),
            other => panic!("{b:?}: {other:?}"),
        };
        bad(&[0x80, 0x00], "overlong");
        bad(&[0xff, 0x80, 0x00], "overlong");
        let mut eleven = vec![0xffu8; 9];
        eleven.push(0x02);
        bad(&eleven, "above 2^64");
        bad(&[0xff; 11], "above 2^64");
        let mut b = Vec::new();
        push(&mut b, 300);
        match Reader::new(&b).var("page length", 299) {
            Err(ReadError::Bad(why)) => assert_eq!(why, "page length 300 is above 299"),
            other => panic!("{other:?}"),
        }
        assert_eq!(Reader::new(&b).var("page length", 300), Ok(300));
        // A length read from the bytes never wraps the position.
        let mut r = Reader::new(&b);
        r.u8().unwrap();
        assert_eq!(r.bytes(usize::MAX), Err(ReadError::Short));
    }
}
