//! The buffer a source reads into and cuts records out of.
//!
//! A source copies what it reads into one buffer and cuts each record out of it as a [`Bytes`] slice (no
//! allocation per record). The slices keep the buffer alive while the pipeline decodes them; when it is
//! full, it is used again in place if its records are gone, else the bytes of a partial record are carried
//! into a new one and the old one is freed with its last record. The allocator (jemalloc, `main.rs`) hands
//! a freed block out again with its pages still mapped, so a new buffer costs no page faults.

use std::ops::{Deref, DerefMut};

use bytes::{Bytes, BytesMut};

/// The buffer a reader fills and cuts records out of.
#[derive(Default)]
pub struct CutBuffer {
    /// Bytes read and not cut into records yet, and room after them.
    buf: BytesMut,
}

impl CutBuffer {
    /// Makes room for `additional` more bytes after what the buffer holds, if it has room for less than
    /// `least` (at most `additional`). What it holds is carried over.
    pub fn room(&mut self, additional: usize, least: usize) {
        let least = least.min(additional);
        // In place if no record cut from the buffer is alive and it holds the carried bytes and `least`
        // more; else a new buffer, never a larger copy of this one (`reserve` would double it).
        if self.buf.capacity() - self.buf.len() >= least || self.buf.try_reclaim(least) {
            return;
        }
        let mut next = BytesMut::with_capacity(self.buf.len() + additional);
        next.extend_from_slice(&self.buf);
        self.buf = next;
    }

    /// Copies a whole record in and cuts it out; a new buffer holds `block` bytes (or the record).
    pub fn copy(&mut self, record: &[u8], block: usize) -> Bytes {
        self.room(block.max(record.len()), record.len());
        self.buf.extend_from_slice(record);
        self.buf.split().freeze()
    }
}

impl Deref for CutBuffer {
    type Target = BytesMut;
    fn deref(&self) -> &BytesMut {
        &self.buf
    }
}

impl DerefMut for CutBuffer {
    fn deref_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOCK: usize = 256 << 10;

    #[test]
    fn room_left_in_the_buffer_is_used_first_and_a_partial_record_is_carried() {
        let mut cut = CutBuffer::default();
        cut.room(BLOCK, BLOCK);
        let at = cut.as_ptr();
        cut.extend_from_slice(b"0123");
        let record = cut.split().freeze();
        cut.room(BLOCK, BLOCK / 4);
        assert_eq!(cut.as_ptr(), at.wrapping_add(4));
        // Filled but for 24 bytes, 100 of them a partial record: a new buffer, the 100 carried.
        let fill = vec![b'a'; cut.capacity() - 24];
        cut.extend_from_slice(&fill);
        let full = cut.split_to(fill.len() - 100).freeze();
        cut.room(BLOCK, BLOCK / 2);
        assert_eq!(&cut[..], &[b'a'; 100][..]);
        assert!(cut.capacity() >= BLOCK + 100);
        assert_eq!((&record[..], full.len()), (&b"0123"[..], fill.len() - 100));
    }

    #[test]
    fn a_buffer_whose_records_are_gone_is_used_again_in_place_without_growing() {
        let mut cut = CutBuffer::default();
        cut.room(BLOCK, BLOCK / 4);
        let (at, capacity) = (cut.as_ptr(), cut.capacity());
        let fill = vec![b'a'; capacity];
        cut.extend_from_slice(&fill);
        drop(cut.split_to(capacity - 100).freeze());
        // Full, 100 bytes of a partial record carried, its records dropped: the same memory, the 100
        // bytes moved to its start.
        cut.room(BLOCK, BLOCK / 4);
        assert_eq!(
            (cut.as_ptr(), cut.capacity(), &cut[..]),
            (at, capacity, &[b'a'; 100][..])
        );
        // A record still alive: a new buffer of the carried bytes and `additional` more.
        let fill = vec![b'b'; cut.capacity() - cut.len()];
        cut.extend_from_slice(&fill);
        let alive = cut.split_to(capacity - 10).freeze();
        cut.room(BLOCK, BLOCK / 4);
        assert_ne!(cut.as_ptr(), at);
        assert_eq!((cut.len(), cut.capacity()), (10, 10 + BLOCK));
        assert_eq!(&alive[..100], &[b'a'; 100][..]);
    }

    #[test]
    fn records_copied_in_share_a_buffer_until_it_is_full() {
        let mut cut = CutBuffer::default();
        let a = cut.copy(b"first", BLOCK);
        let b = cut.copy(b"abc", BLOCK);
        assert_eq!((&a[..], &b[..]), (&b"first"[..], &b"abc"[..]));
        assert_eq!(b.as_ptr(), a.as_ptr().wrapping_add(5));
        let long = vec![b'x'; BLOCK * 2];
        let c = cut.copy(&long, BLOCK);
        assert_eq!(&c[..], &long[..]);
        assert!(cut.copy(b"", BLOCK).is_empty());
        assert_eq!((&a[..], &b[..]), (&b"first"[..], &b"abc"[..]));
    }
}
