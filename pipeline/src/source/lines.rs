//! Reading JSON lines from any async reader: chunks of records, a bound on a line's size, and (for
//! followed files) waiting for more data at the end.

use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use super::{CHUNK_BYTES, CHUNK_RECORDS, Input, RawRecord, RecordSender, SourceMessage};

/// Splits a byte stream into records, one per non-empty line.
pub struct LineSplitter {
    input: Arc<Input>,
    max_record_bytes: usize,
    /// Line number of the next line (from 1).
    pub next_line: u64,
    partial: Vec<u8>,
    /// Bytes of the current line beyond the bound were dropped.
    overflow: bool,
    chunk: Vec<RawRecord>,
    /// Bytes of the records in `chunk`.
    chunk_bytes: usize,
}

/// What one read did.
pub enum Read {
    /// Some bytes were consumed.
    Data,
    /// The reader is at its end (for now).
    End,
    /// The pipeline has gone away.
    Closed,
}

impl LineSplitter {
    pub fn new(input: Arc<Input>, max_record_bytes: usize) -> LineSplitter {
        LineSplitter {
            input,
            max_record_bytes,
            next_line: 1,
            partial: Vec::new(),
            overflow: false,
            chunk: Vec::with_capacity(CHUNK_RECORDS),
            chunk_bytes: 0,
        }
    }

    /// Reads what the reader has, splitting lines; sends full chunks. At the end of data, sends what is
    /// buffered (a partial last line stays buffered: it may still grow). Cancel-safe: cancelled while
    /// waiting, it has consumed nothing it has not kept.
    pub async fn read<R: AsyncBufRead + Unpin>(
        &mut self,
        reader: &mut R,
        tx: &RecordSender,
    ) -> std::io::Result<Read> {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            if !self.flush(tx).await {
                return Ok(Read::Closed);
            }
            return Ok(Read::End);
        }
        let received = Instant::now();
        let len = available.len();
        let mut start = 0;
        while let Some(pos) = memchr::memchr(b'\n', &available[start..]) {
            self.push_bytes(&available[start..start + pos]);
            self.finish_line(received);
            start += pos + 1;
        }
        self.push_bytes(&available[start..]);
        reader.consume(len);
        if (self.chunk.len() >= CHUNK_RECORDS || self.chunk_bytes >= CHUNK_BYTES)
            && !self.flush(tx).await
        {
            return Ok(Read::Closed);
        }
        Ok(Read::Data)
    }

    /// Ends the input: a last line without a newline is a record too.
    pub async fn finish(&mut self, tx: &RecordSender) -> bool {
        if !self.partial.is_empty() || self.overflow {
            self.finish_line(Instant::now());
        }
        self.flush(tx).await
    }

    /// Forgets a partial line (the file was truncated or replaced) and restarts line numbers.
    pub fn restart(&mut self) {
        self.partial.clear();
        self.overflow = false;
        self.next_line = 1;
    }

    fn push_bytes(&mut self, bytes: &[u8]) {
        let room = (self.max_record_bytes + 1).saturating_sub(self.partial.len());
        if bytes.len() > room {
            self.overflow = true;
        }
        self.partial
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn finish_line(&mut self, received: Instant) {
        let line = self.next_line;
        self.next_line += 1;
        let mut bytes = std::mem::take(&mut self.partial);
        self.overflow = false;
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        self.chunk_bytes += bytes.len();
        self.chunk.push(RawRecord {
            input: Arc::clone(&self.input),
            offset: line,
            bytes,
            received,
            source_timestamp: None,
        });
    }

    /// Cancel-safe: the chunk leaves `self` only once the channel has room for it.
    async fn flush(&mut self, tx: &RecordSender) -> bool {
        if self.chunk.is_empty() {
            return true;
        }
        let Ok(permit) = tx.reserve().await else {
            return false;
        };
        self.chunk_bytes = 0;
        permit.send(SourceMessage::Records(std::mem::replace(
            &mut self.chunk,
            Vec::with_capacity(CHUNK_RECORDS),
        )));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::InputKind;

    async fn split(text: &[u8], max: usize) -> Vec<(u64, Vec<u8>)> {
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        let mut s = LineSplitter::new(Input::new("t", InputKind::Stdin), max);
        let mut reader = tokio::io::BufReader::with_capacity(4, text);
        while let Read::Data = s.read(&mut reader, &tx).await.unwrap() {}
        assert!(s.finish(&tx).await);
        drop(tx);
        let mut out = Vec::new();
        while let Some(message) = rx.recv().await {
            if let SourceMessage::Records(chunk) = message {
                out.extend(chunk.into_iter().map(|r| (r.offset, r.bytes)));
            }
        }
        out
    }

    #[tokio::test]
    async fn lines_keep_their_numbers_and_skip_blank_ones() {
        let got = split(b"{\"a\":1}\r\n\n{\"b\":2}\n{\"c\":3}", 100).await;
        assert_eq!(
            got,
            vec![
                (1, b"{\"a\":1}".to_vec()),
                (3, b"{\"b\":2}".to_vec()),
                (4, b"{\"c\":3}".to_vec())
            ]
        );
    }

    #[tokio::test]
    async fn large_records_go_in_chunks_of_about_chunk_bytes() {
        // 100 lines of 20 KB: 2 MB, four times CHUNK_BYTES, in far fewer than CHUNK_RECORDS lines.
        let line = format!("{{\"x\":\"{}\"}}\n", "a".repeat(20_000));
        let text = line.repeat(100);
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let mut s = LineSplitter::new(Input::new("t", InputKind::Stdin), 1 << 20);
        let mut reader = tokio::io::BufReader::with_capacity(8192, text.as_bytes());
        while let Read::Data = s.read(&mut reader, &tx).await.unwrap() {}
        assert!(s.finish(&tx).await);
        drop(tx);
        let mut sizes = Vec::new();
        while let Some(SourceMessage::Records(chunk)) = rx.recv().await {
            sizes.push(chunk.iter().map(|r| r.bytes.len()).sum::<usize>());
        }
        assert_eq!(sizes.iter().sum::<usize>(), 100 * (line.len() - 1));
        // Each chunk but the last ends on the record that reached CHUNK_BYTES.
        for size in &sizes[..sizes.len() - 1] {
            assert!(
                (CHUNK_BYTES..CHUNK_BYTES + 20_010).contains(size),
                "{sizes:?}"
            );
        }
    }

    #[tokio::test]
    async fn oversized_line_is_cut_just_past_the_bound() {
        let got = split(b"0123456789\nok\n", 4).await;
        assert_eq!(got, vec![(1, b"01234".to_vec()), (2, b"ok".to_vec())]);
    }
}
