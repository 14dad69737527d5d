//! Reading JSON lines from any async reader: chunks of records, a bound on a line's size, and (for
//! followed files) waiting for more data at the end.

use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::cut::CutBuffer;
use super::{CHUNK_BYTES, CHUNK_RECORDS, Input, RawRecord, RecordSender, SourceMessage};

/// Bytes asked of the reader at a time (unless said otherwise: [`LineSplitter::read_bytes`]).
pub const READ_BYTES: usize = 1024 * 1024;

/// Splits a byte stream into records, one per non-empty line. The reader's bytes land in one buffer and
/// each record is a slice of it ([`CutBuffer`]): no allocation or copy per line.
pub struct LineSplitter {
    input: Arc<Input>,
    max_record_bytes: usize,
    /// Line number of the next line (from 1).
    pub next_line: u64,
    /// Bytes read and not cut into records yet: the start of the current line.
    buf: CutBuffer,
    /// How much of `buf` holds no line end.
    searched: usize,
    /// The current line outgrew the bound: its first `max_record_bytes + 1` bytes (the rest is dropped
    /// up to its end).
    overflow: Option<Bytes>,
    chunk: Vec<RawRecord>,
    /// Bytes of the records in `chunk`.
    chunk_bytes: usize,
    /// Bytes read since the start (or the last [`LineSplitter::restart`]): where the reader stands.
    pub position: u64,
    /// Bytes asked of the reader at a time. Each read's buffer lives as long as a record cut from it.
    read_bytes: usize,
    /// What the input's first bytes said of its encoding.
    encoding: Encoding,
    /// UTF-16 input: bytes read and not transcoded into `buf` yet (half a code unit, or a surrogate).
    raw: CutBuffer,
    /// Sends the records cut as soon as the reader has nothing more ready (see [`LineSplitter::eager`]).
    eager: bool,
    /// Whether a record was cut since the start (or the last restart): `input` is `origin` with the
    /// fingerprint of its first record.
    first_seen: bool,
    origin: Arc<Input>,
}

/// The encoding of an input, from its byte-order mark.
enum Encoding {
    /// Fewer than two bytes read yet.
    Unknown,
    /// UTF-8 (a UTF-8 mark is left out of the first record: [`LineSplitter::finish_line`]).
    Utf8,
    /// UTF-16 with its mark (Windows PowerShell 5.1's `Out-File` default): transcoded to UTF-8 as read.
    Utf16(Box<encoding_rs::Decoder>),
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
            input: Arc::clone(&input),
            max_record_bytes,
            next_line: 1,
            buf: CutBuffer::default(),
            searched: 0,
            overflow: None,
            chunk: Vec::with_capacity(CHUNK_RECORDS),
            chunk_bytes: 0,
            position: 0,
            read_bytes: READ_BYTES,
            encoding: Encoding::Unknown,
            raw: CutBuffer::default(),
            eager: false,
            first_seen: false,
            origin: input,
        }
    }

    /// Reads `bytes` at a time instead of [`READ_BYTES`]: many inputs read at once each read less, so
    /// that the buffers their records in flight keep alive stay about as large in all.
    pub fn read_bytes(mut self, bytes: usize) -> LineSplitter {
        self.read_bytes = bytes.max(1);
        self
    }

    /// Sends the records cut whenever the reader has nothing more ready, rather than when a chunk fills
    /// or the reader is at its end: for a stream that stays open between records (standard input fed
    /// by `tail -F`), whose reads never say "at the end" but wait.
    pub fn eager(mut self) -> LineSplitter {
        self.eager = true;
        self
    }

    /// Reads what the reader has, splitting lines; sends full chunks. At the end of data, sends what is
    /// buffered (a partial last line stays buffered: it may still grow). Cancel-safe: cancelled while
    /// waiting, it has consumed nothing it has not kept.
    pub async fn read<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
        tx: &RecordSender,
    ) -> std::io::Result<Read> {
        // UTF-16 is read aside and transcoded into `buf`; anything else is read into it.
        let into = match self.encoding {
            Encoding::Utf16(_) => &mut self.raw,
            _ => &mut self.buf,
        };
        into.room(self.read_bytes, self.read_bytes / 4);
        let mut read = std::pin::pin!(reader.read_buf(&mut **into));
        let n = match futures::poll!(read.as_mut()) {
            Poll::Ready(n) => n?,
            // Nothing more ready of a stream that does not end (a pipe): the records cut go now, not
            // when a chunk fills. Leaving the read gives up nothing: a read that is not ready has
            // taken no bytes.
            Poll::Pending if self.eager && !self.chunk.is_empty() => {
                if !self.flush(tx).await {
                    return Ok(Read::Closed);
                }
                let into = match self.encoding {
                    Encoding::Utf16(_) => &mut self.raw,
                    _ => &mut self.buf,
                };
                reader.read_buf(&mut **into).await?
            }
            Poll::Pending => read.await?,
        };
        self.transcode(n == 0);
        self.position += n as u64;
        if let Encoding::Unknown = self.encoding {
            self.sniff(n == 0);
            if let Encoding::Unknown = self.encoding {
                // One byte so far: nothing is cut before the encoding is known.
                return Ok(Read::Data);
            }
        }
        if n == 0 {
            if !self.flush(tx).await {
                return Ok(Read::Closed);
            }
            return Ok(Read::End);
        }
        let received = Instant::now();
        // A read holds several chunks' worth: each is sent as it fills.
        while self.split(received) {
            if !self.flush(tx).await {
                return Ok(Read::Closed);
            }
        }
        Ok(Read::Data)
    }

    /// Ends the input: a last line without a newline is a record too.
    pub async fn finish(&mut self, tx: &RecordSender) -> bool {
        if let Some(head) = self.overflow.take() {
            self.finish_line(head, true, Instant::now());
        } else if !self.buf.is_empty() {
            let line = self.buf.split().freeze();
            self.finish_line(line, false, Instant::now());
        }
        self.searched = 0;
        self.flush(tx).await
    }

    /// Takes the encoding from the input's first bytes (at its `end`, whatever they are).
    fn sniff(&mut self, end: bool) {
        let utf16 = match self.buf.get(..2) {
            Some(b"\xFF\xFE") => Some(encoding_rs::UTF_16LE),
            Some(b"\xFE\xFF") => Some(encoding_rs::UTF_16BE),
            Some(_) => None,
            None if end => None,
            None => return,
        };
        self.encoding = match utf16 {
            Some(encoding) => {
                tracing::info!(input = %self.input.name, encoding = encoding.name(), "Input is UTF-16: transcoded to UTF-8 as read.");
                *self.raw = self.buf.split();
                Encoding::Utf16(Box::new(encoding.new_decoder_with_bom_removal()))
            }
            None => Encoding::Utf8,
        };
        self.transcode(end);
    }

    /// UTF-16 input: what `raw` holds, as UTF-8 onto `buf` (`last`: the input ended; a lone half is
    /// U+FFFD).
    fn transcode(&mut self, last: bool) {
        let Encoding::Utf16(decoder) = &mut self.encoding else {
            return;
        };
        let most = decoder
            .max_utf8_buffer_length(self.raw.len())
            .unwrap_or(self.raw.len() * 3 + 16);
        let start = self.buf.len();
        self.buf.resize(start + most, 0);
        let (_, read, written, _) = decoder.decode_to_utf8(&self.raw, &mut self.buf[start..], last);
        self.buf.truncate(start + written);
        let _ = self.raw.split_to(read);
    }

    /// Forgets a partial line (the file was truncated or replaced) and restarts line numbers.
    pub fn restart(&mut self) {
        self.encoding = Encoding::Unknown;
        self.raw.clear();
        self.buf.clear();
        self.searched = 0;
        self.overflow = None;
        self.next_line = 1;
        self.position = 0;
        // The file under the name now is another input to the lake: its first record says which.
        self.first_seen = false;
    }

    /// Cuts the complete lines out of `buf`; bounds the partial one. Stops at a full chunk: true when it
    /// did (the chunk is to be sent, then the rest cut).
    fn split(&mut self, received: Instant) -> bool {
        while let Some(pos) = memchr::memchr(b'\n', &self.buf[self.searched..]) {
            let end = self.searched + pos;
            let line = self.buf.split_to(end + 1).freeze().slice(..end);
            self.searched = 0;
            match self.overflow.take() {
                Some(head) => self.finish_line(head, true, received),
                None => self.finish_line(line, false, received),
            }
            if self.chunk.len() >= CHUNK_RECORDS || self.chunk_bytes >= CHUNK_BYTES {
                return true;
            }
        }
        self.searched = self.buf.len();
        if self.overflow.is_none() && self.buf.len() > self.max_record_bytes + 1 {
            self.overflow = Some(self.buf.split_to(self.max_record_bytes + 1).freeze());
        }
        if self.overflow.is_some() {
            self.buf.clear();
            self.searched = 0;
        }
        false
    }

    /// A line (without its `\n`) as a record; `cut`: only the line's first bytes, past the bound.
    fn finish_line(&mut self, mut bytes: Bytes, cut: bool, received: Instant) {
        let line = self.next_line;
        self.next_line += 1;
        if line == 1 {
            bytes = Self::without_byte_order_mark(bytes);
        }
        if !cut && bytes.last() == Some(&b'\r') {
            bytes.truncate(bytes.len() - 1);
        }
        // Past the bound: one byte more than allowed, for the decoder to refuse it as too large.
        bytes.truncate(self.max_record_bytes + 1);
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        self.chunk_bytes += bytes.len();
        if !self.first_seen {
            // A file's records carry the fingerprint of its first one (see `InputKind::File`).
            self.first_seen = true;
            self.input = self.origin.first_record(line, &bytes);
        }
        self.chunk.push(RawRecord {
            input: Arc::clone(&self.input),
            offset: line,
            bytes,
            received,
            source_timestamp: None,
        });
    }

    /// The first line without a UTF-8 byte-order mark, which Windows tools write at the start of a file
    /// (PowerShell's `Out-File -Encoding utf8`): the record behind it is JSON.
    fn without_byte_order_mark(bytes: Bytes) -> Bytes {
        const UTF8: &[u8] = b"\xEF\xBB\xBF";
        match bytes.starts_with(UTF8) {
            true => bytes.slice(UTF8.len()..),
            false => bytes,
        }
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

    /// A reader giving at most `step` bytes a read: lines end up split across reads.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl tokio::io::AsyncRead for Trickle<'_> {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            let n = self.step.min(self.data.len()).min(buf.remaining());
            buf.put_slice(&self.data[..n]);
            self.data = &self.data[n..];
            std::task::Poll::Ready(Ok(()))
        }
    }

    async fn split(text: &[u8], max: usize) -> Vec<(u64, Vec<u8>)> {
        let mut all = None;
        // Whole, and in reads of 1, 3 and 4 bytes: the same records.
        for step in [usize::MAX, 1, 3, 4] {
            let records = split_in_reads(text, max, step).await;
            assert_eq!(
                all.get_or_insert_with(|| records.clone()),
                &records,
                "reads of {step}"
            );
        }
        all.unwrap()
    }

    async fn split_in_reads(text: &[u8], max: usize, step: usize) -> Vec<(u64, Vec<u8>)> {
        chunks(text, max, step)
            .await
            .into_iter()
            .flatten()
            .map(|r| (r.offset, r.bytes.to_vec()))
            .collect()
    }

    /// The chunks the splitter sends for `text` read `step` bytes at a time.
    async fn chunks(text: &[u8], max: usize, step: usize) -> Vec<Vec<RawRecord>> {
        let splitter = LineSplitter::new(Input::new("t", InputKind::Stdin), max);
        chunks_of(splitter, text, step).await.0
    }

    /// The chunks `splitter` sends for `text` read `step` bytes at a time, and how many reads gave data.
    async fn chunks_of(
        mut s: LineSplitter,
        text: &[u8],
        step: usize,
    ) -> (Vec<Vec<RawRecord>>, usize) {
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let mut reader = Trickle { data: text, step };
        let mut reads = 0;
        while let Read::Data = s.read(&mut reader, &tx).await.unwrap() {
            reads += 1;
        }
        assert!(s.finish(&tx).await);
        drop(tx);
        let mut out = Vec::new();
        while let Some(message) = rx.recv().await {
            if let SourceMessage::Records(chunk) = message {
                out.push(chunk);
            }
        }
        (out, reads)
    }

    /// The fingerprints of the file inputs `splitter`'s records carry, one per distinct input.
    fn firsts(chunks: &[Vec<RawRecord>]) -> Vec<Option<u64>> {
        let mut firsts: Vec<Option<u64>> = Vec::new();
        for r in chunks.iter().flatten() {
            let InputKind::File { first, .. } = r.input.kind else {
                panic!("a file input");
            };
            if firsts.last() != Some(&first) {
                firsts.push(first);
            }
        }
        firsts
    }

    #[tokio::test]
    async fn a_file_s_records_carry_its_first_record_s_fingerprint_and_a_restart_takes_the_new_one()
    {
        let file = || {
            Input::new(
                "a.jsonl",
                InputKind::File {
                    path: "a.jsonl".into(),
                    first: None,
                },
            )
        };
        let read = |text: &'static [u8]| async move {
            chunks_of(LineSplitter::new(file(), 100), text, 5).await.0
        };
        let (a, again, b) = (
            read(b"\n{\"a\":1}\n{\"a\":2}\n").await,
            read(b"\n{\"a\":1}\n{\"b\":9}\n").await,
            read(b"{\"b\":1}\n{\"a\":2}\n").await,
        );
        let (a, again, b) = (firsts(&a), firsts(&again), firsts(&b));
        assert_eq!(a.len(), 1, "every record of the file carries one input");
        assert!(a[0].is_some());
        assert_eq!(a, again, "the same first record (line 2): the same input");
        assert_ne!(a, b, "another first record: another input");
        // The same line first, at another line number: another input.
        let shifted = firsts(&read(b"{\"a\":1}\n").await);
        assert_ne!(a, shifted);

        // Replaced under the same name while read: the records after the restart are another input.
        let mut splitter = LineSplitter::new(file(), 100);
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let mut old = Trickle {
            data: b"{\"a\":1}\n",
            step: 64,
        };
        while let Read::Data = splitter.read(&mut old, &tx).await.unwrap() {}
        splitter.restart();
        let mut new = Trickle {
            data: b"{\"b\":1}\n{\"b\":2}\n",
            step: 64,
        };
        while let Read::Data = splitter.read(&mut new, &tx).await.unwrap() {}
        assert!(splitter.finish(&tx).await);
        drop(tx);
        let mut records = Vec::new();
        while let Some(message) = rx.recv().await {
            if let SourceMessage::Records(chunk) = message {
                records.push(chunk);
            }
        }
        assert_eq!(
            firsts(&records),
            vec![shifted[0], b[0]],
            "the old file's first record, then the new one's"
        );
        assert_eq!(
            records
                .iter()
                .flatten()
                .map(|r| r.offset)
                .collect::<Vec<_>>(),
            vec![1, 1, 2]
        );
    }

    #[tokio::test]
    async fn an_eager_splitter_sends_what_it_cut_once_the_stream_has_nothing_more_ready() {
        for eager in [true, false] {
            let (mut writer, mut reader) = tokio::io::duplex(1 << 16);
            let (tx, mut rx) = tokio::sync::mpsc::channel(64);
            let mut splitter = LineSplitter::new(Input::new("stdin", InputKind::Stdin), 100);
            if eager {
                splitter = splitter.eager();
            }
            let reading = tokio::spawn(async move {
                while let Read::Data = splitter.read(&mut reader, &tx).await.unwrap() {}
                splitter.finish(&tx).await;
            });
            // Three records, and the stream stays open.
            tokio::io::AsyncWriteExt::write_all(&mut writer, b"{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n")
                .await
                .unwrap();
            let sent = tokio::time::timeout(std::time::Duration::from_millis(500), rx.recv()).await;
            match eager {
                true => {
                    let Ok(Some(SourceMessage::Records(chunk))) = sent else {
                        panic!("the records wait for more");
                    };
                    assert_eq!(
                        chunk.iter().map(|r| r.offset).collect::<Vec<_>>(),
                        [1, 2, 3]
                    );
                }
                // Not eager (a file read once): they wait for a full chunk or the end.
                false => assert!(sent.is_err(), "sent before the end"),
            }
            drop(writer);
            reading.await.unwrap();
        }
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
        let sizes: Vec<usize> = chunks(text.as_bytes(), 1 << 20, 8192)
            .await
            .iter()
            .map(|chunk| chunk.iter().map(|r| r.bytes.len()).sum())
            .collect();
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

    #[tokio::test]
    async fn a_crlf_line_end_is_not_part_of_the_record_at_or_past_the_bound() {
        let got = split(b"0123\r\n01234\r\n\r\nab", 4).await;
        assert_eq!(
            got,
            vec![
                (1, b"0123".to_vec()),
                (2, b"01234".to_vec()),
                (4, b"ab".to_vec())
            ]
        );
    }

    #[tokio::test]
    async fn a_utf8_byte_order_mark_before_the_first_record_is_not_part_of_it() {
        let got = split(b"\xEF\xBB\xBF{\"a\":1}\r\n\xEF\xBB\xBF{\"b\":2}\n", 100).await;
        assert_eq!(
            got,
            vec![
                (1, b"{\"a\":1}".to_vec()),
                // Only the input's start: a mark inside it is the record's own bytes (a dead letter).
                (2, b"\xEF\xBB\xBF{\"b\":2}".to_vec())
            ]
        );
        // A first line that is only the mark is blank.
        assert_eq!(
            split(b"\xEF\xBB\xBF\n{}\n", 100).await,
            vec![(2, b"{}".to_vec())]
        );
    }

    /// Windows PowerShell 5.1 writes UTF-16 with a mark by default: its records come out as UTF-8, in
    /// whatever pieces the reads cut the code units into (a surrogate pair included).
    #[tokio::test]
    async fn utf16_input_with_its_mark_is_read_as_utf8() {
        let text = "{\"a\":\"é\"}\r\n\n{\"b\":\"𝄞\"}\n{\"c\":3}";
        let expected = vec![
            (1, "{\"a\":\"é\"}".as_bytes().to_vec()),
            (3, "{\"b\":\"𝄞\"}".as_bytes().to_vec()),
            (4, b"{\"c\":3}".to_vec()),
        ];
        let le: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        let be: Vec<u8> = [0xFE, 0xFF]
            .into_iter()
            .chain(text.encode_utf16().flat_map(u16::to_be_bytes))
            .collect();
        assert_eq!(split(&le, 100).await, expected);
        assert_eq!(split(&be, 100).await, expected);
        // Without a mark the bytes are taken as they are (UTF-8), and a lone 0xFF is no mark.
        assert_eq!(
            split(b"\xFF\n{}", 100).await,
            vec![(1, b"\xFF".to_vec()), (2, b"{}".to_vec())]
        );
    }

    /// Many files read at once each read less at a time: lines longer than a read are still whole.
    #[tokio::test]
    async fn reads_smaller_than_a_line_still_give_whole_records() {
        let splitter = LineSplitter::new(Input::new("t", InputKind::Stdin), 100).read_bytes(4);
        let text = b"{\"first\":1}\n{\"second\":22}\n{\"x\":3}";
        let (chunks, reads) = chunks_of(splitter, text, usize::MAX).await;
        let records: Vec<(u64, Vec<u8>)> = chunks
            .into_iter()
            .flatten()
            .map(|r| (r.offset, r.bytes.to_vec()))
            .collect();
        assert_eq!(
            records,
            vec![
                (1, b"{\"first\":1}".to_vec()),
                (2, b"{\"second\":22}".to_vec()),
                (3, b"{\"x\":3}".to_vec()),
            ]
        );
        assert!(reads >= 4, "{reads} reads of at most a few bytes each");
    }

    #[tokio::test]
    async fn records_of_one_read_share_its_buffer() {
        let chunk = chunks(b"{\"a\":1}\n{\"b\":2}\n", 100, usize::MAX)
            .await
            .remove(0);
        let (a, b) = (&chunk[0].bytes, &chunk[1].bytes);
        assert_eq!((&a[..], &b[..]), (&b"{\"a\":1}"[..], &b"{\"b\":2}"[..]));
        // The second starts just past the first's line end: slices of one buffer, not copies.
        assert_eq!(b.as_ptr(), a.as_ptr().wrapping_add(a.len() + 1));
    }
}
