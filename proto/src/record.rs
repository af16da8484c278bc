//! Record marking for RPC over byte streams (RFC 5531 section 11), sans-IO:
//! the caller feeds bytes read from a TCP or AF_LOCAL stream and pops
//! whole records; on the way out, a 4-byte mark goes before each fragment.
//! No I/O.
//!
//! RFC 5531 section 11: "A record is composed of one or more record
//! fragments. A record fragment is a four-byte header followed by 0 to
//! (2**31) - 1 bytes of fragment data. ... the highest-order bit ... is a
//! boolean: 1 means that the fragment is the last fragment of the record."
//!
//! The record size cap is enforced from each fragment header alone: a
//! fragment whose length, added to what the record already holds, exceeds
//! the cap is refused before any of its body is buffered. The bytes held
//! for the record being assembled never exceed the cap plus the 4-byte
//! header.

use std::collections::VecDeque;

use crate::xdr::XdrWriter;

/// The last-fragment bit of a record mark.
pub const LAST_FRAGMENT: u32 = 0x8000_0000;
/// Largest fragment length a mark can express.
pub const MAX_FRAGMENT_LEN: u32 = 0x7fff_ffff;

/// Why a stream must be closed.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// A fragment header announced a record larger than the cap.
    #[error("record of at least {announced} bytes exceeds the limit of {max}")]
    TooLong { announced: u64, max: usize },
}

/// Reassembles records from a byte stream.
#[derive(Debug)]
pub struct RecordAssembler {
    max_record_len: usize,
    header: [u8; 4],
    header_len: usize,
    /// Body bytes still expected in the current fragment.
    fragment_left: usize,
    /// Whether the current fragment is the record's last.
    last: bool,
    /// The record being assembled.
    record: Vec<u8>,
    complete: VecDeque<Vec<u8>>,
    failed: Option<RecordError>,
}

impl RecordAssembler {
    /// An assembler refusing records longer than `max_record_len` bytes.
    pub fn new(max_record_len: usize) -> Self {
        Self {
            max_record_len,
            header: [0; 4],
            header_len: 0,
            fragment_left: 0,
            last: false,
            record: Vec::new(),
            complete: VecDeque::new(),
            failed: None,
        }
    }

    /// Feeds bytes from the stream. Once an error has been returned, every
    /// later call returns it again: the stream cannot be resynchronised
    /// and must be closed. Records completed before the error (even in the
    /// same call) can still be popped.
    pub fn push(&mut self, mut input: &[u8]) -> Result<(), RecordError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        while !input.is_empty() {
            if self.fragment_left == 0 && self.header_len < 4 {
                input = self.take_header(input);
                if self.header_len == 4 {
                    self.start_fragment()
                        .inspect_err(|e| self.failed = Some(*e))?;
                }
                continue;
            }
            let n = self.fragment_left.min(input.len());
            self.record.extend_from_slice(&input[..n]);
            self.fragment_left -= n;
            input = &input[n..];
            self.finish_fragment_if_done();
        }
        Ok(())
    }

    fn take_header<'i>(&mut self, input: &'i [u8]) -> &'i [u8] {
        let n = (4 - self.header_len).min(input.len());
        self.header[self.header_len..self.header_len + n].copy_from_slice(&input[..n]);
        self.header_len += n;
        &input[n..]
    }

    fn start_fragment(&mut self) -> Result<(), RecordError> {
        let mark = u32::from_be_bytes(self.header);
        let len = (mark & MAX_FRAGMENT_LEN) as usize;
        let announced = self.record.len() as u64 + len as u64;
        if announced > self.max_record_len as u64 {
            return Err(RecordError::TooLong {
                announced,
                max: self.max_record_len,
            });
        }
        self.last = mark & LAST_FRAGMENT != 0;
        self.fragment_left = len;
        self.finish_fragment_if_done();
        Ok(())
    }

    /// Ends the fragment when its body is complete; ends the record too if
    /// it was the last fragment.
    fn finish_fragment_if_done(&mut self) {
        if self.fragment_left != 0 || self.header_len != 4 {
            return;
        }
        self.header_len = 0;
        if self.last {
            self.last = false;
            self.complete.push_back(std::mem::take(&mut self.record));
        }
    }

    /// The next complete record, in arrival order.
    pub fn pop(&mut self) -> Option<Vec<u8>> {
        self.complete.pop_front()
    }

    /// Bytes held for the record being assembled (header included), not
    /// counting complete records waiting in [`pop`](Self::pop).
    pub fn buffered(&self) -> usize {
        self.record.len()
            + if self.fragment_left == 0 {
                self.header_len
            } else {
                0
            }
    }

    /// Whether the stream is between records (a clean place to close).
    pub fn is_idle(&self) -> bool {
        self.record.is_empty() && self.header_len == 0 && self.fragment_left == 0
    }
}

/// The 4-byte mark of a fragment of `len` bytes.
pub fn record_mark(len: u32, last: bool) -> [u8; 4] {
    let flag = if last { LAST_FRAGMENT } else { 0 };
    ((len & MAX_FRAGMENT_LEN) | flag).to_be_bytes()
}

/// `payload` as one record of a single last fragment. Payloads of 2 GiB
/// or more are split into several fragments.
pub fn encode_record(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 4);
    let mut chunks = payload.chunks(MAX_FRAGMENT_LEN as usize).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&record_mark(0, true));
    }
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        out.extend_from_slice(&record_mark(chunk.len() as u32, last));
        out.extend_from_slice(chunk);
    }
    out
}

/// A writer with 4 bytes reserved for the record mark, so a reply can be
/// encoded straight after it; [`finish_record`] fills the mark in.
pub fn begin_record() -> XdrWriter {
    XdrWriter::from_vec(vec![0; 4])
}

/// Completes a writer from [`begin_record`] as a single-fragment record.
/// The body must be shorter than 2 GiB (replies are far smaller).
pub fn finish_record(w: XdrWriter) -> Vec<u8> {
    let mut out = w.into_bytes();
    let len = u32::try_from(out.len().saturating_sub(4)).unwrap_or(MAX_FRAGMENT_LEN);
    out[..4].copy_from_slice(&record_mark(len, true));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fragment(body: &[u8], last: bool) -> Vec<u8> {
        [&record_mark(body.len() as u32, last)[..], body].concat()
    }

    #[test]
    fn single_fragment_record() {
        let wire = encode_record(b"abcd");
        assert_eq!(wire, [0x80, 0, 0, 4, b'a', b'b', b'c', b'd']);
        let mut a = RecordAssembler::new(100);
        a.push(&wire).unwrap();
        assert_eq!(a.pop(), Some(b"abcd".to_vec()));
        assert_eq!(a.pop(), None);
        assert!(a.is_idle());
    }

    #[test]
    fn multi_fragment_record_fed_byte_by_byte() {
        let wire = [
            fragment(b"ab", false),
            fragment(b"", false),
            fragment(b"cde", true),
        ]
        .concat();
        let mut a = RecordAssembler::new(5);
        for b in &wire {
            assert_eq!(a.pop(), None);
            a.push(std::slice::from_ref(b)).unwrap();
        }
        assert_eq!(a.pop(), Some(b"abcde".to_vec()));
    }

    #[test]
    fn two_records_in_one_push() {
        let wire = [encode_record(b"x"), encode_record(b"")].concat();
        let mut a = RecordAssembler::new(10);
        a.push(&wire).unwrap();
        assert_eq!(a.pop(), Some(b"x".to_vec()));
        assert_eq!(a.pop(), Some(vec![]));
    }

    #[test]
    fn oversize_fragment_is_refused_from_its_header() {
        let mut a = RecordAssembler::new(1000);
        let err = a.push(&[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(
            err,
            Err(RecordError::TooLong {
                announced: 0x7fff_ffff,
                max: 1000
            })
        );
        assert_eq!(a.push(b"more"), err);
        assert!(a.buffered() <= 1004);
    }

    #[test]
    fn oversize_cumulative_record_is_refused() {
        let mut a = RecordAssembler::new(6);
        a.push(&fragment(b"abcd", false)).unwrap();
        assert_eq!(
            a.push(&record_mark(3, true)),
            Err(RecordError::TooLong {
                announced: 7,
                max: 6
            })
        );
    }

    #[test]
    fn begin_and_finish_record() {
        let mut w = begin_record();
        w.put_u32(7);
        assert_eq!(finish_record(w), [0x80, 0, 0, 4, 0, 0, 0, 7]);
    }
}
