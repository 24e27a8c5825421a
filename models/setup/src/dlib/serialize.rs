//! A reader for dlib's serialisation format (`dlib/serialize.h`), the format of dlib's
//! `.dat` model files. Integers are a control byte (bit 7: negative; low nibble: number of
//! magnitude bytes that follow, little-endian); floats are a portable pair of such
//! integers (a signed 64-bit mantissa, then a 16-bit exponent); strings and containers are
//! a length followed by their elements; a `dlib::matrix` is its row and column counts
//! (negated in the newer format) followed by its elements row-major.
//!
//! The input is untrusted: every read is bounds-checked, and a length is checked against
//! the bytes left before anything is allocated for it, so a truncated or corrupt file
//! gives a [`DlibError`] naming the offset, never a panic or a huge allocation.

/// Why a dlib file could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DlibError {
    /// The data ended in the middle of a value.
    #[error("dlib file truncated at byte {offset}: needed {needed} more byte(s) for {what}")]
    Truncated {
        offset: usize,
        needed: usize,
        what: String,
    },
    /// The bytes are not what dlib writes there.
    #[error("malformed dlib file at byte {offset}: {reason}")]
    Malformed { offset: usize, reason: String },
    /// Well-formed, but a kind of content this converter does not handle.
    #[error("unsupported dlib content at byte {offset}: {reason}")]
    Unsupported { offset: usize, reason: String },
    /// Read correctly, but not the network (or model) the converter was written for.
    #[error("unexpected network structure: {0}")]
    Structure(String),
}

pub type Result<T, E = DlibError> = std::result::Result<T, E>;

/// The special exponents of dlib's `float_details` (`float_details.h`).
const EXP_INF: i64 = 32000;
const EXP_NINF: i64 = 32001;
const EXP_NAN: i64 = 32002;

/// A cursor over the bytes of a dlib file.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    /// The offset of the next byte to read.
    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    pub fn is_at_end(&self) -> bool {
        self.pos == self.data.len()
    }

    /// An error at the current offset (for callers validating what they read).
    pub fn malformed(&self, reason: impl Into<String>) -> DlibError {
        DlibError::Malformed {
            offset: self.pos,
            reason: reason.into(),
        }
    }

    pub fn unsupported(&self, reason: impl Into<String>) -> DlibError {
        DlibError::Unsupported {
            offset: self.pos,
            reason: reason.into(),
        }
    }

    /// Fails unless every byte has been consumed: trailing bytes mean we misread the
    /// structure (or were handed the wrong file).
    pub fn expect_end(&self, what: &str) -> Result<()> {
        if self.is_at_end() {
            Ok(())
        } else {
            Err(self.malformed(format!(
                "{} unexpected trailing byte(s) after {what}",
                self.remaining()
            )))
        }
    }

    pub fn bytes(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(DlibError::Truncated {
                offset: self.pos,
                needed: n - self.remaining(),
                what: what.to_string(),
            });
        }
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.bytes(1, what)?[0])
    }

    /// Looks at the next byte without consuming it.
    pub fn peek(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    /// Reads an integer's control byte and magnitude. Returns (negative, magnitude).
    fn int_parts(&mut self, what: &str) -> Result<(bool, u64)> {
        let start = self.pos;
        let control = self.u8(what)?;
        // dlib never sets bits 4-6 (its float reader relies on that to tell the binary
        // format from the old text one), so a set bit means we are out of step.
        if control & 0x70 != 0 {
            return Err(DlibError::Malformed {
                offset: start,
                reason: format!("bad integer control byte 0x{control:02x} for {what}"),
            });
        }
        let len = usize::from(control & 0x0f);
        if len > 8 {
            return Err(DlibError::Malformed {
                offset: start,
                reason: format!("{len}-byte integer for {what}"),
            });
        }
        let mut magnitude = 0u64;
        for (i, b) in self.bytes(len, what)?.iter().enumerate() {
            magnitude |= u64::from(*b) << (8 * i);
        }
        Ok((control & 0x80 != 0, magnitude))
    }

    /// A signed integer (`int`, `long`, `int64`...).
    pub fn i64(&mut self, what: &str) -> Result<i64> {
        let start = self.pos;
        let (negative, magnitude) = self.int_parts(what)?;
        let out_of_range = || DlibError::Malformed {
            offset: start,
            reason: format!("{what} out of range"),
        };
        if negative {
            // dlib negates the absolute value; -2^63 has no positive counterpart, so it
            // cannot have been written by dlib either.
            i64::try_from(magnitude)
                .map(|m| -m)
                .map_err(|_| out_of_range())
        } else {
            i64::try_from(magnitude).map_err(|_| out_of_range())
        }
    }

    /// An unsigned integer (`unsigned long`, `size_t`, `uint64`...). dlib's unsigned
    /// reader treats the sign bit as part of the length, which makes it an error.
    pub fn u64(&mut self, what: &str) -> Result<u64> {
        let start = self.pos;
        let (negative, magnitude) = self.int_parts(what)?;
        if negative {
            return Err(DlibError::Malformed {
                offset: start,
                reason: format!("negative value for unsigned {what}"),
            });
        }
        Ok(magnitude)
    }

    pub fn i32(&mut self, what: &str) -> Result<i32> {
        let start = self.pos;
        let v = self.i64(what)?;
        i32::try_from(v).map_err(|_| DlibError::Malformed {
            offset: start,
            reason: format!("{what} = {v} exceeds int"),
        })
    }

    /// An unsigned value used as a count or index, checked to fit `usize`.
    pub fn usize(&mut self, what: &str) -> Result<usize> {
        let start = self.pos;
        let v = self.u64(what)?;
        usize::try_from(v).map_err(|_| DlibError::Malformed {
            offset: start,
            reason: format!("{what} = {v} too large"),
        })
    }

    /// A container length, refused when `len` elements of at least `min_elem_bytes` each
    /// could not fit in what is left (so we never allocate for a length the file cannot
    /// back).
    pub fn len(&mut self, min_elem_bytes: usize, what: &str) -> Result<usize> {
        let start = self.pos;
        let n = self.usize(what)?;
        self.check_fits(start, n, min_elem_bytes, what)?;
        Ok(n)
    }

    /// Checks that `n` elements of at least `min_elem_bytes` each fit in what is left.
    pub fn check_fits(
        &self,
        offset: usize,
        n: usize,
        min_elem_bytes: usize,
        what: &str,
    ) -> Result<()> {
        match n.checked_mul(min_elem_bytes) {
            Some(b) if b <= self.remaining() => Ok(()),
            _ => Err(DlibError::Malformed {
                offset,
                reason: format!(
                    "{what}: {n} element(s) cannot fit in the {} byte(s) left",
                    self.remaining()
                ),
            }),
        }
    }

    /// A `float_details` pair: the exact value is `mantissa * 2^exponent`.
    fn float_parts(&mut self, what: &str) -> Result<(i64, i64)> {
        if let Some(b) = self.peek() {
            if b & 0x70 != 0 {
                // dlib's readers also accept an ancient text encoding of floats, recognised
                // by this very test; no model we convert uses it.
                return Err(self.unsupported(format!("old text-format float for {what}")));
            }
        }
        let mantissa = self.i64(what)?;
        let start = self.pos;
        let exponent = self.i64(what)?;
        if i16::try_from(exponent).is_err() {
            return Err(DlibError::Malformed {
                offset: start,
                reason: format!("float exponent {exponent} for {what}"),
            });
        }
        Ok((mantissa, exponent))
    }

    /// A float read into a C++ `float`, rounded exactly as dlib rounds it: the mantissa
    /// is first converted to float, then scaled by the (exact) power of two.
    pub fn f32(&mut self, what: &str) -> Result<f32> {
        let (mantissa, exponent) = self.float_parts(what)?;
        Ok(match exponent {
            EXP_INF => f32::INFINITY,
            EXP_NINF => f32::NEG_INFINITY,
            e if e >= EXP_NAN => f32::NAN,
            e => {
                // (mantissa as f32) has 24 significant bits, so scaling it in f64 is exact
                // for any exponent f64 can hold, and the final cast rounds once, like
                // ldexpf. Exponents beyond the clamps overflow or underflow f32 anyway.
                let m = f64::from(mantissa as f32);
                (m * pow2(e.clamp(-600, 600))) as f32
            }
        })
    }

    /// A float read into a C++ `double`.
    pub fn f64(&mut self, what: &str) -> Result<f64> {
        let (mantissa, exponent) = self.float_parts(what)?;
        Ok(match exponent {
            EXP_INF => f64::INFINITY,
            EXP_NINF => f64::NEG_INFINITY,
            e if e >= EXP_NAN => f64::NAN,
            _ if mantissa == 0 => 0.0,
            e => {
                // Two steps so that an exponent beyond f64's normal range still scales a
                // large mantissa correctly.
                let e = e.clamp(-2200, 2200);
                let half = e / 2;
                (mantissa as f64) * pow2(half) * pow2(e - half)
            }
        })
    }

    /// A `bool`, which dlib writes as the character `'1'` or `'0'`.
    pub fn bool(&mut self, what: &str) -> Result<bool> {
        let start = self.pos;
        match self.u8(what)? {
            b'1' => Ok(true),
            b'0' => Ok(false),
            b => Err(DlibError::Malformed {
                offset: start,
                reason: format!("bool {what} is byte 0x{b:02x}"),
            }),
        }
    }

    /// A `std::string`: its length, then its bytes.
    pub fn string(&mut self, what: &str) -> Result<String> {
        let start = self.pos;
        let n = self.len(1, what)?;
        let bytes = self.bytes(n, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DlibError::Malformed {
            offset: start,
            reason: format!("{what} is not UTF-8"),
        })
    }

    /// If the next value is a string equal to `expected`, consumes it and returns true;
    /// otherwise leaves the reader where it was.
    pub fn try_tag(&mut self, expected: &str) -> bool {
        let mut probe = self.clone();
        match probe.string("tag") {
            Ok(s) if s == expected => {
                *self = probe;
                true
            }
            _ => false,
        }
    }

    /// Reads a string and fails unless it is one of `expected`; returns which.
    pub fn expect_string(&mut self, expected: &[&str], what: &str) -> Result<String> {
        let start = self.pos;
        let s = self.string(what)?;
        if expected.contains(&s.as_str()) {
            Ok(s)
        } else {
            Err(DlibError::Malformed {
                offset: start,
                reason: format!("expected {what} {expected:?}, found {s:?}"),
            })
        }
    }

    /// A `dlib::matrix<float>`: returns (rows, cols, row-major values).
    pub fn matrix_f32(&mut self, what: &str) -> Result<(usize, usize, Vec<f32>)> {
        let start = self.pos;
        let mut rows = self.i64(what)?;
        let mut cols = self.i64(what)?;
        // The newer format writes both counts negated, the older one plain.
        if rows < 0 || cols < 0 {
            rows = -rows;
            cols = -cols;
        }
        if rows < 0 || cols < 0 {
            return Err(DlibError::Malformed {
                offset: start,
                reason: format!("{what}: size {rows}x{cols}"),
            });
        }
        let (rows, cols) = (rows as usize, cols as usize);
        let n = rows.checked_mul(cols).ok_or_else(|| DlibError::Malformed {
            offset: start,
            reason: format!("{what}: size {rows}x{cols}"),
        })?;
        self.check_fits(start, n, MIN_FLOAT_BYTES, what)?;
        let mut values = Vec::with_capacity(n);
        for _ in 0..n {
            values.push(self.f32(what)?);
        }
        Ok((rows, cols, values))
    }
}

/// The fewest bytes an integer can take (a control byte saying "no magnitude bytes").
pub const MIN_INT_BYTES: usize = 1;
/// The fewest bytes a float can take (two integers).
pub const MIN_FLOAT_BYTES: usize = 2 * MIN_INT_BYTES;

/// 2^e as an f64, for |e| <= 1100 (exact where representable, else 0 or infinity).
fn pow2(e: i64) -> f64 {
    if e > 1023 {
        f64::INFINITY
    } else if e >= -1022 {
        f64::from_bits(((e + 1023) as u64) << 52)
    } else {
        // Subnormal range: build from the smallest normal power.
        f64::from_bits(1u64 << 52) * pow2_sub(e + 1022)
    }
}

fn pow2_sub(e: i64) -> f64 {
    // e in [-inf, 0): scale down by halves; below -1074 total everything is zero anyway.
    if e < -60 {
        return 0.0;
    }
    1.0 / (1u64 << (-e)) as f64
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A writer for dlib's format, used only to build test inputs.
    pub(crate) fn int(v: i64) -> Vec<u8> {
        let neg = v < 0;
        let mut m = v.unsigned_abs();
        let mut bytes = Vec::new();
        loop {
            bytes.push((m & 0xff) as u8);
            m >>= 8;
            if m == 0 {
                break;
            }
        }
        let mut out = vec![bytes.len() as u8 | if neg { 0x80 } else { 0 }];
        out.extend(bytes);
        out
    }

    /// dlib's float_details conversion of an f32.
    pub(crate) fn float(v: f32) -> Vec<u8> {
        if v == 0.0 {
            let mut out = int(0);
            out.extend(int(64));
            return out;
        }
        let bits = v.to_bits();
        let sign = if bits >> 31 == 1 { -1i64 } else { 1 };
        let exp = ((bits >> 23) & 0xff) as i64;
        let frac = (bits & 0x7f_ffff) as i64;
        let (mut m, mut e) = if exp == 0 {
            (frac, -149)
        } else {
            (frac | 0x80_0000, exp - 150)
        };
        while m & 0xff == 0 {
            m >>= 8;
            e += 8;
        }
        let mut out = int(sign * m);
        out.extend(int(e));
        out
    }

    pub(crate) fn string(s: &str) -> Vec<u8> {
        let mut out = int(s.len() as i64);
        out.extend(s.as_bytes());
        out
    }

    #[test]
    fn integers_decode_like_dlib_writes_them() {
        for v in [
            0i64,
            1,
            -1,
            127,
            128,
            255,
            256,
            -300,
            65_535,
            1 << 40,
            i64::MAX,
            -i64::MAX,
        ] {
            let bytes = int(v);
            let mut r = Reader::new(&bytes);
            assert_eq!(r.i64("v").unwrap(), v, "{bytes:02x?}");
            assert!(r.is_at_end());
        }
        // dlib's own bytes: 1 is "01 01", -10 is "81 0a".
        assert_eq!(Reader::new(&[0x01, 0x01]).i64("v").unwrap(), 1);
        assert_eq!(Reader::new(&[0x81, 0x0a]).i64("v").unwrap(), -10);
        // A zero-length magnitude is zero.
        assert_eq!(Reader::new(&[0x00]).u64("v").unwrap(), 0);
    }

    #[test]
    fn floats_round_trip_exactly() {
        for v in [
            0.0f32,
            1.0,
            -1.0,
            0.04,
            0.6,
            122.782,
            -3.5e-20,
            7.1e30,
            f32::MIN_POSITIVE,
            1e-45,
            f32::MAX,
        ] {
            let bytes = float(v);
            let mut r = Reader::new(&bytes);
            assert_eq!(r.f32("v").unwrap().to_bits(), v.to_bits(), "{v}");
            assert!(r.is_at_end());
            assert_eq!(Reader::new(&bytes).f64("v").unwrap(), f64::from(v));
        }
        // dlib's bytes for 0.04f (from the ResNet file's loss layer): mantissa 0xa3d70a, exponent -28.
        let mut r = Reader::new(&[0x03, 0x0a, 0xd7, 0xa3, 0x81, 0x1c]);
        assert_eq!(r.f32("margin").unwrap(), 0.04f32);
        let special = |e: i64| {
            let mut b = int(0);
            b.extend(int(e));
            Reader::new(&b).f32("s").unwrap()
        };
        assert_eq!(special(32000), f32::INFINITY);
        assert_eq!(special(32001), f32::NEG_INFINITY);
        assert!(special(32002).is_nan());
    }

    #[test]
    fn a_double_mantissa_rounds_to_float_like_dlib() {
        // A double's 53-bit mantissa read into a float: rounded to 24 bits first.
        let m: i64 = (1 << 52) + 1; // 1 + 2^-52, times 2^52
        let mut b = int(m);
        b.extend(int(-52));
        assert_eq!(Reader::new(&b).f32("v").unwrap(), 1.0);
        assert_eq!(Reader::new(&b).f64("v").unwrap(), 1.0 + f64::EPSILON);
    }

    #[test]
    fn strings_bools_and_matrices() {
        let mut b = string("con_4");
        b.extend(b"10");
        b.extend(int(-2));
        b.extend(int(-1));
        b.extend(float(0.5));
        b.extend(float(-2.25));
        let mut r = Reader::new(&b);
        assert_eq!(r.string("s").unwrap(), "con_4");
        assert!(r.bool("a").unwrap());
        assert!(!r.bool("b").unwrap());
        assert_eq!(r.matrix_f32("m").unwrap(), (2, 1, vec![0.5, -2.25]));
        r.expect_end("test").unwrap();
    }

    #[test]
    fn truncation_and_garbage_are_errors_not_panics() {
        let mut b = string("hello");
        b.extend(float(3.0));
        for cut in 0..b.len() {
            let mut r = Reader::new(&b[..cut]);
            let res = r.string("s").and_then(|_| r.f32("f"));
            assert!(res.is_err(), "cut {cut}");
        }
        // Control bytes dlib never writes.
        assert!(matches!(
            Reader::new(&[0x09, 0, 0, 0, 0, 0, 0, 0, 0, 0]).i64("v"),
            Err(DlibError::Malformed { .. })
        ));
        assert!(matches!(
            Reader::new(&[0x31]).i64("v"),
            Err(DlibError::Malformed { .. })
        ));
        assert!(matches!(
            Reader::new(&[0x81, 0x01]).u64("v"),
            Err(DlibError::Malformed { .. })
        ));
        assert!(matches!(
            Reader::new(b"2").bool("v"),
            Err(DlibError::Malformed { .. })
        ));
        // A huge length is refused before any allocation.
        let mut huge = int(i64::MAX);
        huge.extend(int(-1));
        assert!(matches!(
            Reader::new(&huge).matrix_f32("m"),
            Err(DlibError::Malformed { .. })
        ));
        assert!(matches!(
            Reader::new(&int(1 << 40)).len(1, "v"),
            Err(DlibError::Malformed { .. })
        ));
        // i64::MIN magnitude with the sign bit.
        let mut min = vec![0x88];
        min.extend((i64::MIN as u64).to_le_bytes());
        assert!(Reader::new(&min).i64("v").is_err());
    }

    #[test]
    fn pow2_is_exact() {
        for e in -1074..=1023i64 {
            let expected = if e >= -1022 {
                f64::from_bits(((e + 1023) as u64) << 52)
            } else {
                f64::from_bits(1u64 << (e + 1074))
            };
            assert_eq!(pow2(e), expected, "2^{e}");
        }
        assert_eq!(pow2(-3), 0.125);
        assert_eq!(pow2(10), 1024.0);
        assert_eq!(pow2(1024), f64::INFINITY);
        assert_eq!(pow2(-1100), 0.0);
    }
}
