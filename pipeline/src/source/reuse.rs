//! A buffer that records are cut out of, whose memory is used again once they are gone.
//!
//! A source copies what it reads into one buffer and cuts each record out of it as a [`Bytes`] slice (no
//! allocation per record). The slices keep the buffer alive while the pipeline decodes them; when the
//! buffer is full, a new one is needed. Allocating it afresh costs a page fault per 4 KiB the first time
//! each page is written — buffers of 256 KiB and up are mapped and unmapped by glibc on every allocation
//! (`main.rs`, `fix_mmap_threshold`) — which was a tenth of the file path's CPU (`benches/README.md`).
//! So a full buffer is kept as a spare: once every record cut from it has been dropped, it is taken
//! again, its pages already mapped.

use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};

use bytes::{Bytes, BytesMut};

/// Spares kept per reader. The records in flight between a source and the hunts (the record channel's
/// chunks, the batches being decoded) rarely span more than a few dozen buffers; a spare whose records
/// are still in flight is skipped, and the oldest is let go when there are more.
const MAX_SPARES: usize = 32;

/// The buffer a reader fills, with the buffers it filled before.
#[derive(Default)]
pub struct Reused {
    /// Bytes read and not cut into records yet, and room after them.
    buf: BytesMut,
    /// Earlier buffers (emptied: each still holds its allocation while records cut from it live).
    spares: VecDeque<BytesMut>,
}

impl Reused {
    /// Makes room for `additional` more bytes after what `buf` holds, if it has less than `least`: in a
    /// spare no record uses any more if there is one, else in a new buffer of `additional` more. What
    /// `buf` holds is carried over.
    pub fn room(&mut self, additional: usize, least: usize) {
        if self.buf.capacity() - self.buf.len() >= least.min(additional) {
            return;
        }
        let needed = self.buf.len() + additional;
        let next = match self.spares.iter_mut().position(|s| s.try_reclaim(needed)) {
            Some(i) => self
                .spares
                .remove(i)
                .expect("a spare at the position found"),
            None => BytesMut::with_capacity(needed),
        };
        let mut old = std::mem::replace(&mut self.buf, next);
        self.buf.extend_from_slice(&old);
        old.clear();
        if self.spares.len() == MAX_SPARES {
            self.spares.pop_front();
        }
        self.spares.push_back(old);
    }

    /// Copies a whole record in and cuts it out; a new buffer holds `block` bytes (or the record).
    pub fn copy(&mut self, record: &[u8], block: usize) -> Bytes {
        self.room(block.max(record.len()), record.len());
        self.buf.extend_from_slice(record);
        self.buf.split().freeze()
    }

    /// Lets the spares go (the reader waits for more: their memory is not worth keeping meanwhile).
    pub fn release(&mut self) {
        self.spares.clear();
    }
}

impl Deref for Reused {
    type Target = BytesMut;
    fn deref(&self) -> &BytesMut {
        &self.buf
    }
}

impl DerefMut for Reused {
    fn deref_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_is_used_again_once_its_records_are_dropped_and_not_before() {
        let mut reused = Reused::default();
        reused.room(1024, 1024);
        let first = reused.as_ptr();
        reused.extend_from_slice(&[b'a'; 1000]);
        let record = reused.split_to(900).freeze();
        // 100 bytes of a partial record are left, with 24 bytes of room: a new buffer, the 100 carried.
        reused.room(1024, 512);
        assert_eq!(&reused.buf[..], &[b'a'; 100][..]);
        assert!(reused.capacity() >= 1124);
        assert_ne!(reused.as_ptr(), first);
        // Filled again while `record` still lives: the first buffer cannot be taken.
        let rest = reused.split().freeze();
        let room = vec![b'b'; reused.capacity()];
        reused.extend_from_slice(&room);
        let second = reused.split().freeze();
        reused.room(1024, 1024);
        assert_ne!(reused.as_ptr(), first);
        // Its record gone, the first buffer is the one taken next.
        drop(record);
        let room = vec![b'c'; reused.capacity()];
        reused.extend_from_slice(&room);
        let third = reused.split().freeze();
        reused.room(1000, 1000);
        assert_eq!(reused.as_ptr(), first);
        assert!(reused.is_empty());
        assert_eq!((rest.len(), second[0], third[0]), (100, b'b', b'c'));
    }

    #[test]
    fn room_left_in_the_buffer_is_used_first() {
        let mut reused = Reused::default();
        reused.room(4096, 4096);
        let at = reused.as_ptr();
        reused.extend_from_slice(b"0123");
        let _record = reused.split().freeze();
        reused.room(4096, 1024);
        assert_eq!(reused.as_ptr(), at.wrapping_add(4));
    }

    #[test]
    fn records_copied_in_share_a_buffer_until_it_is_full() {
        let mut reused = Reused::default();
        let a = reused.copy(b"first", 8);
        let b = reused.copy(b"abc", 8);
        assert_eq!((&a[..], &b[..]), (&b"first"[..], &b"abc"[..]));
        assert_eq!(b.as_ptr(), a.as_ptr().wrapping_add(5));
        let c = reused.copy(b"longer than a block", 8);
        assert_eq!(&c[..], b"longer than a block");
        assert!(reused.copy(b"", 8).is_empty());
    }

    #[test]
    fn spares_are_bounded() {
        let mut reused = Reused::default();
        let mut records = Vec::new();
        for _ in 0..MAX_SPARES * 2 {
            reused.room(64, 64);
            reused.extend_from_slice(&[1; 64]);
            records.push(reused.split().freeze());
        }
        assert_eq!(reused.spares.len(), MAX_SPARES);
    }
}
