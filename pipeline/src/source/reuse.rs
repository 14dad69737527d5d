//! A buffer that records are cut out of, whose memory is used again once they are gone.
//!
//! A source copies what it reads into one buffer and cuts each record out of it as a [`Bytes`] slice (no
//! allocation per record). The slices keep the buffer alive while the pipeline decodes them; when the
//! buffer is full, a new one is needed. Allocating it afresh costs a page fault per 4 KiB the first time
//! each page is written: glibc maps blocks from its mmap threshold up (256 KiB, `main.rs`,
//! `fix_mmap_threshold`) afresh on every allocation, which was a tenth of the file path's CPU
//! (`benches/README.md`). So a full buffer is kept as a spare: once every record cut from it has been
//! dropped, it is taken again, its pages already mapped.

use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};

use bytes::{Bytes, BytesMut};

/// Buffers smaller than this are not kept as spares: glibc serves them from its heaps, which reuse
/// freed memory (many files read at once read 64–128 KiB at a time).
const SPARE_FROM: usize = 256 << 10;

/// Bytes of spares kept per reader. The records in flight between a source and the hunts (the record
/// channel's chunks, the batches being decoded) span a dozen or two 1 MiB buffers; a spare whose
/// records are still in flight is skipped, and the oldest is let go past this.
const SPARE_BYTES: usize = 16 << 20;

/// The buffer a reader fills, with the buffers it filled before.
#[derive(Default)]
pub struct Reused {
    /// Bytes read and not cut into records yet, and room after them.
    buf: BytesMut,
    /// The size of `buf`'s allocation (0: none yet, or one not kept as a spare).
    size: usize,
    /// Earlier buffers, each with its size (emptied: each still holds its allocation while records cut
    /// from it live).
    spares: VecDeque<(BytesMut, usize)>,
    /// The sizes of the spares, summed.
    spare_bytes: usize,
}

impl Reused {
    /// Makes room for `additional` more bytes after what `buf` holds, if it has less than `least`
    /// (at most `additional`): in a spare no record uses any more if there is one, else in a new buffer
    /// of `additional` more. What `buf` holds is carried over. Below [`SPARE_FROM`] bytes, a new buffer
    /// each time, without spares.
    pub fn room(&mut self, additional: usize, least: usize) {
        let least = least.min(additional);
        if self.buf.capacity() - self.buf.len() >= least {
            return;
        }
        if additional < SPARE_FROM {
            self.buf.reserve(additional);
            self.size = 0;
            return;
        }
        // A spare serves if it holds the carried bytes and `least` more.
        let carried = self.buf.len();
        let (next, size) = match self
            .spares
            .iter_mut()
            .position(|(s, _)| s.try_reclaim(carried + least))
        {
            Some(i) => {
                let (spare, size) = self
                    .spares
                    .remove(i)
                    .expect("a spare at the position found");
                self.spare_bytes -= size;
                (spare, size)
            }
            None => (
                BytesMut::with_capacity(carried + additional),
                carried + additional,
            ),
        };
        let mut old = std::mem::replace(&mut self.buf, next);
        let old_size = std::mem::replace(&mut self.size, size);
        self.buf.extend_from_slice(&old);
        if old_size > 0 {
            old.clear();
            self.spare_bytes += old_size;
            self.spares.push_back((old, old_size));
            while self.spare_bytes > SPARE_BYTES {
                let (_, size) = self
                    .spares
                    .pop_front()
                    .expect("spares hold the bytes counted");
                self.spare_bytes -= size;
            }
        }
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
        self.spare_bytes = 0;
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

    const BLOCK: usize = SPARE_FROM;

    #[test]
    fn a_buffer_is_used_again_once_its_records_are_dropped_and_not_before() {
        let mut reused = Reused::default();
        reused.room(BLOCK, BLOCK);
        let first = reused.as_ptr();
        reused.extend_from_slice(&vec![b'a'; BLOCK - 24]);
        let record = reused.split_to(BLOCK - 124).freeze();
        // 100 bytes of a partial record are left, with 24 bytes of room: a new buffer, the 100 carried.
        reused.room(BLOCK, BLOCK / 2);
        assert_eq!(&reused[..], &[b'a'; 100][..]);
        assert!(reused.capacity() >= BLOCK + 100);
        assert_ne!(reused.as_ptr(), first);
        // Filled again while `record` still lives: the first buffer cannot be taken.
        let rest = reused.split().freeze();
        let room = vec![b'b'; reused.capacity()];
        reused.extend_from_slice(&room);
        let second = reused.split().freeze();
        reused.room(BLOCK, BLOCK);
        assert_ne!(reused.as_ptr(), first);
        // Its record gone, the first buffer is the one taken next.
        drop(record);
        let room = vec![b'c'; reused.capacity()];
        reused.extend_from_slice(&room);
        let third = reused.split().freeze();
        reused.room(BLOCK, BLOCK);
        assert_eq!(reused.as_ptr(), first);
        assert!(reused.is_empty());
        assert_eq!((rest.len(), second[0], third[0]), (100, b'b', b'c'));
    }

    #[test]
    fn room_left_in_the_buffer_is_used_first() {
        let mut reused = Reused::default();
        reused.room(BLOCK, BLOCK);
        let at = reused.as_ptr();
        reused.extend_from_slice(b"0123");
        let _record = reused.split().freeze();
        reused.room(BLOCK, BLOCK / 4);
        assert_eq!(reused.as_ptr(), at.wrapping_add(4));
    }

    #[test]
    fn records_copied_in_share_a_buffer_until_it_is_full() {
        let mut reused = Reused::default();
        let a = reused.copy(b"first", BLOCK);
        let b = reused.copy(b"abc", BLOCK);
        assert_eq!((&a[..], &b[..]), (&b"first"[..], &b"abc"[..]));
        assert_eq!(b.as_ptr(), a.as_ptr().wrapping_add(5));
        let long = vec![b'x'; BLOCK * 2];
        let c = reused.copy(&long, BLOCK);
        assert_eq!(&c[..], &long[..]);
        assert!(reused.copy(b"", BLOCK).is_empty());
    }

    #[test]
    fn a_spare_is_taken_while_a_partial_line_is_carried() {
        let mut reused = Reused::default();
        reused.room(BLOCK, BLOCK / 4);
        let first = reused.as_ptr();
        let room = vec![b'a'; reused.capacity()];
        reused.extend_from_slice(&room);
        drop(reused.split_to(BLOCK - 10).freeze());
        // 10 bytes carried into a second buffer; the first is a spare, its record already gone.
        reused.room(BLOCK, BLOCK / 4);
        assert_ne!(reused.as_ptr(), first);
        let room = vec![b'b'; reused.capacity() - reused.len()];
        reused.extend_from_slice(&room);
        let record = reused.split_to(BLOCK - 1000).freeze();
        // 1,010 bytes carried: more than the first buffer was given, which still serves.
        reused.room(BLOCK, BLOCK / 4);
        assert_eq!(reused.as_ptr(), first);
        assert_eq!(reused.len(), 1010);
        assert!(reused.iter().all(|&b| b == b'b'));
        assert!(record[..10].iter().all(|&b| b == b'a') && record[10..].iter().all(|&b| b == b'b'));
        assert_eq!(record.len(), BLOCK - 1000);
    }

    #[test]
    fn spares_are_bounded_and_kept_only_for_large_buffers() {
        let mut reused = Reused::default();
        let mut records = Vec::new();
        for _ in 0..SPARE_BYTES / BLOCK * 2 {
            reused.room(BLOCK, BLOCK);
            let room = vec![1; reused.capacity() - reused.len()];
            reused.extend_from_slice(&room);
            records.push(reused.split().freeze());
        }
        assert_eq!(reused.spares.len(), SPARE_BYTES / BLOCK);
        assert_eq!(reused.spare_bytes, SPARE_BYTES);
        let mut small = Reused::default();
        for _ in 0..4 {
            small.room(BLOCK / 4, BLOCK / 4);
            let room = vec![1; small.capacity() - small.len()];
            small.extend_from_slice(&room);
            records.push(small.split().freeze());
        }
        assert!(small.spares.is_empty());
    }
}
