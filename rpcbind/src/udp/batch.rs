//! Receiving datagrams in batches: one `recvmmsg` takes up to [`BATCH`]
//! waiting requests, so that a busy listener pays one system call and one
//! readiness check for many datagrams instead of one each.
//!
//! Memory: each message gets a small slot in one dense array, which every
//! ordinary request fits, and its own spill area for the rest of a
//! datagram up to [`MAX_DATAGRAM`]. The spill areas are one large zeroed
//! allocation that the kernel maps lazily: a page of it becomes resident
//! only when a large datagram lands there. So the batch costs a few pages
//! for small requests and still keeps every datagram whole, as one
//! 64 KiB buffer did.

use std::io::{self, IoSliceMut};
use std::os::fd::RawFd;

use nix::sys::socket::{recvmmsg, MsgFlags, MultiHeaders, SockaddrStorage};

use super::{cmsg_buffer, received, Received, MAX_DATAGRAM};

/// The most datagrams taken by one receive.
pub const BATCH: usize = 32;

/// The dense part of each message's buffer. A GETPORT call is 56 bytes,
/// a GETADDR with AUTH_UNIX credentials a few hundred.
const SLOT: usize = 512;

/// The rest of each message's buffer.
const SPILL: usize = MAX_DATAGRAM - SLOT;

/// Buffers for one `recvmmsg`, reused for every batch. The message
/// headers are made for each call: nix's hold raw pointers, which would
/// keep the listener's task from moving between threads, and they cost
/// three small allocations against a system call saved per datagram.
pub struct Batch {
    slots: Box<[u8]>,
    spill: Box<[u8]>,
    /// What the last receive got, one entry per message.
    got: Vec<io::Result<Received>>,
    /// A datagram that did not fit its slot, made contiguous.
    joined: Vec<u8>,
}

impl Default for Batch {
    fn default() -> Self {
        Self::new()
    }
}

impl Batch {
    pub fn new() -> Self {
        Batch {
            slots: vec![0u8; BATCH * SLOT].into_boxed_slice(),
            spill: vec![0u8; BATCH * SPILL].into_boxed_slice(),
            got: Vec::with_capacity(BATCH),
            joined: Vec::new(),
        }
    }

    /// Receives the datagrams waiting, up to [`BATCH`] (non-blocking;
    /// `WouldBlock` when there are none). Returns how many messages were
    /// taken; [`Batch::get`] gives each.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        let mut slots = self.slots.chunks_exact_mut(SLOT);
        let mut spill = self.spill.chunks_exact_mut(SPILL);
        let mut iovs: [[IoSliceMut<'_>; 2]; BATCH] = std::array::from_fn(|_| {
            [
                IoSliceMut::new(slots.next().unwrap_or_default()),
                IoSliceMut::new(spill.next().unwrap_or_default()),
            ]
        });
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, Some(cmsg_buffer()));
        let results = recvmmsg(
            fd,
            &mut headers,
            iovs.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        )?;
        self.got.clear();
        self.got.extend(results.map(|msg| received(&msg)));
        Ok(self.got.len())
    }

    /// The `i`th message of the last receive: where it came from and its
    /// bytes, or why it was dropped (truncated, no peer address).
    pub fn get(&mut self, i: usize) -> io::Result<(Received, &[u8])> {
        let dg = match self.got.get(i) {
            Some(Ok(dg)) => *dg,
            Some(Err(e)) => return Err(io::Error::new(e.kind(), e.to_string())),
            None => return Err(io::Error::other("no such message in the batch")),
        };
        let slot = &self.slots[i * SLOT..(i + 1) * SLOT];
        if dg.len <= SLOT {
            return Ok((dg, &slot[..dg.len]));
        }
        self.joined.clear();
        self.joined.extend_from_slice(slot);
        let start = i * SPILL;
        self.joined
            .extend_from_slice(&self.spill[start..start + (dg.len - SLOT)]);
        Ok((dg, &self.joined))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listeners::bind_udp;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    /// Receives until `want` messages have been taken or 2 s passed.
    fn take(batch: &mut Batch, fd: RawFd, want: usize) -> Vec<(Received, Vec<u8>)> {
        let mut out = Vec::new();
        for _ in 0..400 {
            match batch.recv(fd) {
                Ok(n) => {
                    for i in 0..n {
                        if let Ok((dg, bytes)) = batch.get(i) {
                            out.push((dg, bytes.to_vec()));
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(e) => panic!("recvmmsg: {e}"),
            }
            if out.len() >= want {
                break;
            }
        }
        out
    }

    #[test]
    fn one_receive_takes_every_waiting_datagram_up_to_the_batch() {
        let server = bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = server.local_addr().unwrap();
        for i in 0..(BATCH as u32 + 5) {
            client.send_to(&i.to_be_bytes(), to).unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
        let mut batch = Batch::new();
        let n = batch.recv(server.as_raw_fd()).unwrap();
        assert_eq!(n, BATCH, "a full batch was waiting");
        let (dg, bytes) = batch.get(BATCH - 1).unwrap();
        assert_eq!(bytes, (BATCH as u32 - 1).to_be_bytes());
        assert_eq!(dg.peer, client.local_addr().unwrap());
        assert_eq!(dg.local, Some(to.ip()));
        let rest = take(&mut batch, server.as_raw_fd(), 5);
        let firsts: Vec<Vec<u8>> = rest.into_iter().map(|(_, b)| b).collect();
        assert_eq!(
            firsts,
            (BATCH as u32..BATCH as u32 + 5)
                .map(|i| i.to_be_bytes().to_vec())
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn datagrams_larger_than_a_slot_arrive_whole_next_to_small_ones() {
        let server = bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = server.local_addr().unwrap();
        let big = |seed: u8, len: usize| -> Vec<u8> {
            (0..len).map(|k| seed.wrapping_add(k as u8)).collect()
        };
        let sent = vec![
            big(1, SLOT + 1),
            b"small".to_vec(),
            big(7, 60_000),
            big(9, SLOT),
            big(3, MAX_DATAGRAM - 100 - 28),
        ];
        for d in &sent {
            client.send_to(d, to).unwrap();
        }
        let mut batch = Batch::new();
        let got = take(&mut batch, server.as_raw_fd(), sent.len());
        let bytes: Vec<Vec<u8>> = got.into_iter().map(|(_, b)| b).collect();
        assert_eq!(bytes, sent);
    }
}
