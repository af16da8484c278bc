//! Where descriptors go in a connection's reply stream: each granted
//! socket is marked at the offset of its reply record's first byte, so the
//! writer sends it (SCM_RIGHTS) with that byte and never lets a plain
//! write carry it. `proto/alloc.x`: the descriptor travels on the
//! sendmsg() that sends the FIRST byte of the reply record. No I/O.

use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// Descriptors waiting in a reply queue, by stream offset.
#[derive(Debug, Default)]
pub struct FdMarks {
    marks: VecDeque<(u64, OwnedFd)>,
    /// Bytes ever queued / ever written on the connection.
    queued: u64,
    written: u64,
}

impl FdMarks {
    /// `fd` goes with the next byte queued.
    pub fn attach(&mut self, fd: OwnedFd) {
        self.marks.push_back((self.queued, fd));
    }

    /// `n` more bytes were queued.
    pub fn queued(&mut self, n: usize) {
        self.queued += n as u64;
    }

    /// `n` bytes were written; a descriptor whose byte went is sent (and
    /// closed here, the peer has its copy).
    pub fn written(&mut self, n: usize) {
        self.written += n as u64;
        while self.marks.front().is_some_and(|(at, _)| *at < self.written) {
            self.marks.pop_front();
        }
    }

    /// How many of the `pending` bytes the next write may send, and the
    /// descriptor to send with them: a write stops before the next marked
    /// byte, and a marked byte goes first in its own sendmsg().
    pub fn window(&self, pending: usize) -> (usize, Option<BorrowedFd<'_>>) {
        let until = |at: u64| usize::try_from(at - self.written).unwrap_or(usize::MAX);
        let mut marks = self.marks.iter();
        match marks.next() {
            Some((at, fd)) if *at == self.written => {
                let len = marks.next().map_or(pending, |(next, _)| until(*next));
                (len.min(pending), Some(fd.as_fd()))
            }
            Some((at, _)) => (until(*at).min(pending), None),
            None => (pending, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn fd() -> OwnedFd {
        std::fs::File::open("/dev/null").unwrap().into()
    }

    #[test]
    fn a_descriptor_goes_with_the_first_byte_of_its_record_only() {
        let mut m = FdMarks::default();
        m.queued(10); // a plain reply
        let (a, b) = (fd(), fd());
        let (ra, rb) = (a.as_raw_fd(), b.as_raw_fd());
        m.attach(a);
        m.queued(20);
        m.attach(b);
        m.queued(5);
        assert_eq!(m.window(35).0, 10);
        assert!(m.window(35).1.is_none());
        m.written(4);
        assert_eq!(m.window(31).0, 6, "stops before the marked byte");
        m.written(6);
        let (len, f) = m.window(25);
        assert_eq!((len, f.map(|f| f.as_raw_fd())), (20, Some(ra)));
        m.written(1); // a short sendmsg still carried it
        let (len, f) = m.window(24);
        assert_eq!((len, f.is_none()), (19, true));
        m.written(19);
        let (len, f) = m.window(5);
        assert_eq!((len, f.map(|f| f.as_raw_fd())), (5, Some(rb)));
        m.written(5);
        assert_eq!((m.window(0).0, m.window(0).1.is_none()), (0, true));
        assert!(m.marks.is_empty());
    }
}
