//! A bounded XDR (RFC 4506) reader and writer.
//!
//! Owns the primitive encodings every other wire module is built from:
//! unsigned and signed integers (RFC 4506 sections 4.1-4.5), booleans (4.4),
//! fixed and variable-length opaque data (4.9, 4.10), strings (4.11) and
//! optional-data (4.19), plus linked lists built from optional-data.
//! No I/O.
//!
//! Every variable length is checked against the field's maximum and against
//! the bytes left *before* anything is sliced or allocated, so a length of
//! 0xFFFF_FFF0 in a 20-byte datagram fails at once. Linked lists decode in a
//! loop with an entry cap, never by recursion. Pad bytes are skipped without
//! checking that they are zero, because libtirpc does not check them either
//! and clients in the wild rely on that.

use thiserror::Error;

/// What went wrong while decoding. The context is static so building an
/// error never allocates.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum XdrError {
    /// The input ended inside `field`.
    #[error("truncated input while decoding {field}")]
    Truncated { field: &'static str },
    /// A length prefix exceeded the field's maximum.
    #[error("{field}: length {len} exceeds maximum {max}")]
    TooLong {
        field: &'static str,
        len: u32,
        max: u32,
    },
    /// A boolean that is neither 0 nor 1 (RFC 4506 section 4.4).
    #[error("boolean is neither 0 nor 1")]
    BadBool,
    /// An enum or union discriminant that the decoder does not know.
    #[error("{field}: unknown discriminant {value}")]
    BadDiscriminant { field: &'static str, value: u32 },
    /// A string that is not valid UTF-8.
    #[error("{field}: invalid UTF-8")]
    InvalidUtf8 { field: &'static str },
    /// A linked list with more entries than the decoder accepts.
    #[error("{field}: more than {cap} entries")]
    TooManyEntries { field: &'static str, cap: usize },
}

/// Bytes of padding needed after `len` bytes of opaque data.
const fn pad_len(len: usize) -> usize {
    (4 - (len % 4)) % 4
}

/// A cursor over a borrowed buffer. Decoded opaque data and strings borrow
/// from the buffer; nothing is copied.
#[derive(Clone, Debug)]
pub struct XdrReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> XdrReader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Whether every byte has been consumed.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Offset of the next byte to be read.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Consumes and returns everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        let rest = &self.buf[self.pos..];
        self.pos = self.buf.len();
        rest
    }

    /// Looks at everything left without consuming it.
    pub fn peek_rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], XdrError> {
        if n > self.remaining() {
            return Err(XdrError::Truncated { field });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn take4(&mut self, field: &'static str) -> Result<[u8; 4], XdrError> {
        let b = self.take(4, field)?;
        Ok([b[0], b[1], b[2], b[3]])
    }

    /// An unsigned integer (RFC 4506 section 4.2).
    pub fn u32(&mut self) -> Result<u32, XdrError> {
        self.u32_named("unsigned int")
    }

    /// Like [`u32`](Self::u32) with the field name in the error.
    pub fn u32_named(&mut self, field: &'static str) -> Result<u32, XdrError> {
        self.take4(field).map(u32::from_be_bytes)
    }

    /// A signed integer (RFC 4506 section 4.1).
    pub fn i32(&mut self) -> Result<i32, XdrError> {
        self.take4("int").map(i32::from_be_bytes)
    }

    /// An unsigned hyper integer (RFC 4506 section 4.5).
    pub fn u64(&mut self) -> Result<u64, XdrError> {
        let hi = u64::from(self.u32_named("unsigned hyper")?);
        let lo = u64::from(self.u32_named("unsigned hyper")?);
        Ok(hi << 32 | lo)
    }

    /// A hyper integer (RFC 4506 section 4.5).
    pub fn i64(&mut self) -> Result<i64, XdrError> {
        self.u64().map(|v| v as i64)
    }

    /// A boolean: 0 or 1, anything else is an error (RFC 4506 section 4.4).
    pub fn bool(&mut self) -> Result<bool, XdrError> {
        match self.u32_named("bool")? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(XdrError::BadBool),
        }
    }

    /// Fixed-length opaque data of `len` bytes plus its padding
    /// (RFC 4506 section 4.9).
    pub fn opaque_fixed(&mut self, len: usize) -> Result<&'a [u8], XdrError> {
        self.opaque_fixed_named(len, "fixed opaque")
    }

    fn opaque_fixed_named(
        &mut self,
        len: usize,
        field: &'static str,
    ) -> Result<&'a [u8], XdrError> {
        let padded = len
            .checked_add(pad_len(len))
            .ok_or(XdrError::Truncated { field })?;
        let b = self.take(padded, field)?;
        Ok(&b[..len])
    }

    /// Variable-length opaque data of at most `max` bytes
    /// (RFC 4506 section 4.10).
    pub fn opaque(&mut self, max: u32) -> Result<&'a [u8], XdrError> {
        self.opaque_named(max, "opaque")
    }

    /// Like [`opaque`](Self::opaque) with the field name in the error.
    pub fn opaque_named(&mut self, max: u32, field: &'static str) -> Result<&'a [u8], XdrError> {
        let len = self.u32_named(field)?;
        if len > max {
            return Err(XdrError::TooLong { field, len, max });
        }
        self.opaque_fixed_named(len as usize, field)
    }

    /// A string of at most `max` bytes that must be valid UTF-8
    /// (RFC 4506 section 4.11).
    pub fn string(&mut self, max: u32) -> Result<&'a str, XdrError> {
        self.string_named(max, "string")
    }

    /// Like [`string`](Self::string) with the field name in the error.
    pub fn string_named(&mut self, max: u32, field: &'static str) -> Result<&'a str, XdrError> {
        let bytes = self.opaque_named(max, field)?;
        std::str::from_utf8(bytes).map_err(|_| XdrError::InvalidUtf8 { field })
    }

    /// Optional-data (RFC 4506 section 4.19): a boolean, then the value if
    /// it was TRUE.
    pub fn optional<T>(
        &mut self,
        decode: impl FnOnce(&mut Self) -> Result<T, XdrError>,
    ) -> Result<Option<T>, XdrError> {
        if self.bool()? {
            decode(self).map(Some)
        } else {
            Ok(None)
        }
    }

    /// A linked list written as nested optional-data (the `*next` pointer
    /// of RFC 1833's pmaplist, rpcblist, ...), decoded in a loop. More than
    /// `cap` entries is an error.
    pub fn list<T>(
        &mut self,
        cap: usize,
        decode: impl FnMut(&mut Self) -> Result<T, XdrError>,
    ) -> Result<Vec<T>, XdrError> {
        self.list_named("list", cap, decode)
    }

    /// Like [`list`](Self::list) with the field name in the error.
    pub fn list_named<T>(
        &mut self,
        field: &'static str,
        cap: usize,
        mut decode: impl FnMut(&mut Self) -> Result<T, XdrError>,
    ) -> Result<Vec<T>, XdrError> {
        let mut out = Vec::new();
        while self.bool()? {
            if out.len() >= cap {
                return Err(XdrError::TooManyEntries { field, cap });
            }
            out.push(decode(self)?);
        }
        Ok(out)
    }
}

/// An XDR encoder appending to a `Vec<u8>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct XdrWriter {
    buf: Vec<u8>,
}

impl XdrWriter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            buf: Vec::with_capacity(capacity),
        }
    }

    /// Continues writing after whatever `buf` already holds (for example a
    /// reserved record mark).
    pub fn from_vec(buf: Vec<u8>) -> Self {
        Self { buf }
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// Forgets what was written, keeping the buffer (for encoders that
    /// hand their output out in pieces).
    pub fn clear(&mut self) {
        self.buf.clear();
    }

    pub fn put_u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn put_i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn put_u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn put_i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn put_bool(&mut self, v: bool) {
        self.put_u32(u32::from(v));
    }

    /// Fixed-length opaque data plus zero padding.
    pub fn put_opaque_fixed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
        self.buf.resize(self.buf.len() + pad_len(data.len()), 0);
    }

    /// Variable-length opaque data: length, bytes, zero padding. Data
    /// longer than `u32::MAX` cannot be expressed in XDR; callers keep to
    /// the protocol maxima, which are far below it.
    pub fn put_opaque(&mut self, data: &[u8]) {
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        self.put_u32(len);
        self.put_opaque_fixed(&data[..len as usize]);
    }

    pub fn put_string(&mut self, s: &str) {
        self.put_opaque(s.as_bytes());
    }

    /// Bytes that are already XDR-encoded (for example procedure results).
    pub fn put_raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Optional-data: FALSE, or TRUE followed by the value.
    pub fn put_optional<T: Encode + ?Sized>(&mut self, v: Option<&T>) {
        match v {
            Some(v) => {
                self.put_bool(true);
                v.encode(self);
            }
            None => self.put_bool(false),
        }
    }

    /// A linked list as nested optional-data: TRUE before each entry,
    /// FALSE at the end.
    pub fn put_list<T: Encode>(&mut self, items: &[T]) {
        for item in items {
            self.put_bool(true);
            item.encode(self);
        }
        self.put_bool(false);
    }

    /// Like [`put_list`](Self::put_list) for entries produced on the fly,
    /// so a large table can be encoded without collecting it first.
    pub fn put_list_iter<T: Encode>(&mut self, items: impl IntoIterator<Item = T>) {
        for item in items {
            self.put_bool(true);
            item.encode(self);
        }
        self.put_bool(false);
    }
}

/// A value with an XDR encoding.
pub trait Encode {
    fn encode(&self, w: &mut XdrWriter);

    /// The encoding as a fresh vector.
    fn to_xdr(&self) -> Vec<u8> {
        let mut w = XdrWriter::new();
        self.encode(&mut w);
        w.into_bytes()
    }
}

/// A value that can be decoded from XDR, possibly borrowing from the input.
pub trait Decode<'a>: Sized {
    fn decode(r: &mut XdrReader<'a>) -> Result<Self, XdrError>;

    /// Decodes `bytes`, ignoring anything after the value (as libtirpc's
    /// `svc_getargs` does).
    fn from_xdr(bytes: &'a [u8]) -> Result<Self, XdrError> {
        Self::decode(&mut XdrReader::new(bytes))
    }
}

impl Encode for u32 {
    fn encode(&self, w: &mut XdrWriter) {
        w.put_u32(*self);
    }
}

impl Decode<'_> for u32 {
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, XdrError> {
        r.u32()
    }
}

impl Encode for i32 {
    fn encode(&self, w: &mut XdrWriter) {
        w.put_i32(*self);
    }
}

impl Decode<'_> for i32 {
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, XdrError> {
        r.i32()
    }
}

impl Encode for u64 {
    fn encode(&self, w: &mut XdrWriter) {
        w.put_u64(*self);
    }
}

impl Decode<'_> for u64 {
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, XdrError> {
        r.u64()
    }
}

impl Encode for bool {
    fn encode(&self, w: &mut XdrWriter) {
        w.put_bool(*self);
    }
}

impl Decode<'_> for bool {
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, XdrError> {
        r.bool()
    }
}

impl<T: Encode + ?Sized> Encode for &T {
    fn encode(&self, w: &mut XdrWriter) {
        (**self).encode(w);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_big_endian() {
        let mut w = XdrWriter::new();
        w.put_u32(0x0102_0304);
        w.put_i32(-2);
        w.put_u64(0x0102_0304_0506_0708);
        w.put_bool(true);
        assert_eq!(
            w.as_bytes(),
            [1, 2, 3, 4, 0xff, 0xff, 0xff, 0xfe, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 1]
        );
        let mut r = XdrReader::new(w.as_bytes());
        assert_eq!(r.u32(), Ok(0x0102_0304));
        assert_eq!(r.i32(), Ok(-2));
        assert_eq!(r.u64(), Ok(0x0102_0304_0506_0708));
        assert_eq!(r.bool(), Ok(true));
        assert!(r.is_empty());
    }

    #[test]
    fn bool_other_than_zero_or_one_is_refused() {
        assert_eq!(XdrReader::new(&[0, 0, 0, 2]).bool(), Err(XdrError::BadBool));
    }

    #[test]
    fn opaque_is_padded_and_padding_content_is_ignored() {
        let mut w = XdrWriter::new();
        w.put_opaque(b"abcde");
        assert_eq!(
            w.as_bytes(),
            [0, 0, 0, 5, b'a', b'b', b'c', b'd', b'e', 0, 0, 0]
        );
        let dirty = [0, 0, 0, 5, b'a', b'b', b'c', b'd', b'e', 9, 9, 9, 0xAA];
        let mut r = XdrReader::new(&dirty);
        assert_eq!(r.opaque(8), Ok(&b"abcde"[..]));
        assert_eq!(r.rest(), [0xAA]);
    }

    #[test]
    fn missing_padding_is_truncation() {
        let mut r = XdrReader::new(&[0, 0, 0, 1, b'a']);
        assert_eq!(r.opaque(8), Err(XdrError::Truncated { field: "opaque" }));
    }

    #[test]
    fn huge_length_is_refused_before_slicing() {
        let bytes = [0xff, 0xff, 0xff, 0xf0, 1, 2, 3, 4];
        assert_eq!(
            XdrReader::new(&bytes).opaque(400),
            Err(XdrError::TooLong {
                field: "opaque",
                len: 0xffff_fff0,
                max: 400
            })
        );
        assert_eq!(
            XdrReader::new(&bytes).opaque(u32::MAX),
            Err(XdrError::Truncated { field: "opaque" })
        );
    }

    #[test]
    fn string_must_be_utf8() {
        let bytes = [0, 0, 0, 2, 0xc3, 0x28, 0, 0];
        assert_eq!(
            XdrReader::new(&bytes).string_named(10, "netid"),
            Err(XdrError::InvalidUtf8 { field: "netid" })
        );
        let ok = [0, 0, 0, 3, b't', b'c', b'p', 0];
        assert_eq!(XdrReader::new(&ok).string(3), Ok("tcp"));
    }

    #[test]
    fn list_round_trips_and_respects_cap() {
        let mut w = XdrWriter::new();
        w.put_list(&[7u32, 8, 9]);
        assert_eq!(
            w.as_bytes(),
            [0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0, 0]
        );
        let decoded = XdrReader::new(w.as_bytes()).list(3, |r| r.u32());
        assert_eq!(decoded, Ok(vec![7, 8, 9]));
        let capped = XdrReader::new(w.as_bytes()).list_named("l", 2, |r| r.u32());
        assert_eq!(capped, Err(XdrError::TooManyEntries { field: "l", cap: 2 }));
    }

    #[test]
    fn long_list_does_not_recurse() {
        let items: Vec<u32> = (0..200_000).collect();
        let mut w = XdrWriter::new();
        w.put_list(&items);
        let decoded = XdrReader::new(w.as_bytes()).list(200_000, |r| r.u32());
        assert_eq!(decoded.map(|v| v.len()), Ok(200_000));
    }

    #[test]
    fn optional_round_trips() {
        let mut w = XdrWriter::new();
        w.put_optional(Some(&5u32));
        w.put_optional::<u32>(None);
        let mut r = XdrReader::new(w.as_bytes());
        assert_eq!(r.optional(|r| r.u32()), Ok(Some(5)));
        assert_eq!(r.optional(|r| r.u32()), Ok(None));
    }

    #[test]
    fn from_vec_appends() {
        let mut w = XdrWriter::from_vec(vec![0xAA]);
        w.put_u32(1);
        assert_eq!(w.into_bytes(), [0xAA, 0, 0, 0, 1]);
    }
}
