//! JSON-lines files: one or more paths or globs, read once or followed as they grow (like `tail -F`).
//!
//! Each file is its own input (its own line numbers and event-time progress), and files are read at once.
//! Read once, up to `max_open` files are read at the same time, in the order given (each glob's matches
//! sorted), the next starting as one ends; the watermark is the oldest file's progress, so files that
//! cover the same hours (one per host) give what one file of all their events in time order would, and
//! a file whose events are newer than the others' waits for them to catch up (`super::align`) instead of
//! filling the windows. Followed, every matching file is read concurrently and kept open; a file that
//! shrinks or is replaced is read again from its start, and globs are expanded again at every poll so
//! that new files are picked up. Followed files keep in step too, but only while a windowed hunt's state
//! fills (`Alignment::under_pressure`: files followed from their start after a while away run apart in
//! event time), and a file read to its end, waiting for more, holds no one back.
//!
//! A file named `*.gz` (gzip, members concatenated too) or `*.zst` (zstd) is decompressed as it is read,
//! to its end once even when following: a compressed file is written whole, it does not grow, and a
//! followed one is started once it has stopped changing (see [`settled`]). A followed file that fails
//! (damaged, unreadable) is left with an error naming it, and the others are followed on. A file
//! named `*.evtx` (Windows' binary event log, as exported or collected from a host) is read once too,
//! each record rendered as JSON by the evtx crate (see [`read_evtx`]).

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_compression::tokio::bufread::{GzipDecoder, ZstdDecoder};
use futures::future::BoxFuture;
use tokio::io::{AsyncRead, BufReader, ReadBuf};
use tokio_util::sync::CancellationToken;

use super::align::{Alignment, Registration};
use super::lines::{LineSplitter, READ_BYTES, Read};
use super::progress::Size;
use super::{
    CHUNK_BYTES, CHUNK_RECORDS, EventTimes, Input, InputKind, RawRecord, RecordSender, Source,
    SourceError, SourceMessage,
};
use crate::settings::FileSettings;

pub struct FileSource {
    settings: FileSettings,
    max_record_bytes: usize,
    /// Files keep near one another in event time (followed ones only while the windows fill).
    alignment: Arc<Alignment>,
    /// The bytes read of the files, for the progress of history read once.
    size: Arc<Size>,
    /// How long a followed file waits at its end before it holds no other back.
    idle_timeout: Duration,
    /// The files ghosthunt itself writes (alerts, dead letters, incidents), as their canonical paths:
    /// never read, whatever a glob matches (a followed `*.jsonl` would read its own dead letters back
    /// and write them again, without end).
    written: Vec<PathBuf>,
}

impl FileSource {
    /// Checks the patterns now, so that a typo fails at start rather than reading nothing. Files keep
    /// within `max_lead` of event time of the oldest (`window.max_lead`); followed files only while
    /// the windows fill.
    pub fn new(
        settings: FileSettings,
        max_record_bytes: usize,
        max_lead: Duration,
    ) -> Result<FileSource, SourceError> {
        expand(&settings.paths, !settings.follow)?;
        let alignment = if settings.follow {
            Alignment::under_pressure(max_lead)
        } else {
            Alignment::new(max_lead)
        };
        Ok(FileSource {
            settings,
            max_record_bytes,
            alignment,
            size: Arc::default(),
            idle_timeout: Duration::ZERO,
            written: Vec::new(),
        })
    }

    /// Never reads `files` (the files the pipeline writes), whatever the patterns match.
    pub fn without(mut self, files: &[PathBuf]) -> FileSource {
        self.written = files.iter().map(|f| canonical(f)).collect();
        self
    }

    /// The files the patterns match now, less the ones the pipeline writes (see [`FileSource::without`]).
    pub fn matched(&self, require: bool) -> Result<Vec<PathBuf>, SourceError> {
        let mut paths = expand(&self.settings.paths, require)?;
        paths.retain(|p| !self.written.contains(&canonical(p)));
        Ok(paths)
    }

    /// Whether the pipeline writes `path` (said once: a followed pattern is matched at every poll).
    fn skipped(&self, path: &Path) -> bool {
        let written = self.written.contains(&canonical(path));
        if written {
            tracing::warn!(path = %path.display(), "A source pattern matches a file ghosthunt writes (alerts, dead letters or incidents); it is not read. Narrow source.file.paths, or write those files elsewhere.");
        }
        written
    }

    /// A followed file that has waited at its end this long holds no other back (`window.idle_timeout`,
    /// when it stops holding the watermark back too); until set, as soon as it is at its end.
    pub fn with_idle_timeout(mut self, idle_timeout: Duration) -> FileSource {
        self.idle_timeout = idle_timeout;
        self
    }

    /// Where the bytes read of the files are counted.
    pub fn size(&self) -> Arc<Size> {
        Arc::clone(&self.size)
    }
}

/// `path` made absolute with its links resolved, as far as it exists (a file still to be written: its
/// directory's, and its name).
fn canonical(path: &Path) -> PathBuf {
    if let Ok(path) = std::fs::canonicalize(path) {
        return path;
    }
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            std::fs::canonicalize(dir).map_or_else(|_| path.to_path_buf(), |d| d.join(name))
        }
        _ => path.to_path_buf(),
    }
}

/// Expands paths and globs in order; with `require`, every pattern must match something.
pub fn expand(patterns: &[String], require: bool) -> Result<Vec<PathBuf>, SourceError> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for pattern in patterns {
        let mut matched: Vec<PathBuf> = glob::glob(pattern)
            .map_err(|e| SourceError::BadGlob {
                pattern: pattern.clone(),
                reason: e.to_string(),
            })?
            .filter_map(Result::ok)
            .filter(|p| p.is_file())
            .collect();
        matched.sort();
        if matched.is_empty() && require {
            if Path::new(pattern).is_dir() {
                return Err(SourceError::Directory {
                    pattern: pattern.trim_end_matches('/').to_string(),
                });
            }
            // A named pipe, `/dev/stdin`, a shell's `<(zcat …)`: read as a file, it would block at its
            // opening and hold back every window; standard input reads a pipe as it comes.
            if Path::new(pattern).exists() {
                return Err(SourceError::NotAFile {
                    pattern: pattern.clone(),
                });
            }
            return Err(SourceError::NoMatch {
                pattern: pattern.clone(),
            });
        }
        for p in matched {
            if seen.insert(p.clone()) {
                out.push(p);
            }
        }
    }
    Ok(out)
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> SourceError + '_ {
    move |source| SourceError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// How a file's bytes are stored, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    fn of(path: &Path) -> Compression {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("gz") => Compression::Gzip,
            Some(e) if e.eq_ignore_ascii_case("zst") => Compression::Zstd,
            _ => Compression::None,
        }
    }
}

/// A file's bytes as read from the disk, counted into `size` (the progress of files read once is the
/// bytes read of their total, compressed or not).
struct Counted {
    file: tokio::fs::File,
    size: Arc<Size>,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.file).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = read {
            self.size
                .add_bytes_read((buf.filled().len() - before) as u64);
        }
        read
    }
}

/// A file opened for reading (decompressed as read when its name says so), and its inode.
async fn open(
    path: &Path,
    compression: Compression,
    read_bytes: usize,
    size: &Arc<Size>,
) -> Result<(Box<dyn AsyncRead + Send + Unpin>, u64), SourceError> {
    let mut file = tokio::fs::File::open(path).await.map_err(io_error(path))?;
    let inode = file.metadata().await.map_err(io_error(path))?.ino();
    // tokio reads through a buffer of its own, kept between reads: no larger than ours.
    file.set_max_buf_size(read_bytes);
    let counted = Counted {
        file,
        size: Arc::clone(size),
    };
    let reader: Box<dyn AsyncRead + Send + Unpin> = match compression {
        Compression::None => Box::new(counted),
        Compression::Gzip => {
            let mut gzip = GzipDecoder::new(BufReader::with_capacity(read_bytes, counted));
            gzip.multiple_members(true);
            Box::new(gzip)
        }
        Compression::Zstd => {
            let mut zstd = ZstdDecoder::new(BufReader::with_capacity(read_bytes, counted));
            zstd.multiple_members(true);
            Box::new(zstd)
        }
    };
    Ok((reader, inode))
}

fn input_of(path: &Path) -> Arc<Input> {
    Input::new(
        path.display().to_string(),
        InputKind::File {
            path: path.to_path_buf(),
            first: None,
        },
    )
}

/// A file that is written whole and read once even when followed: compressed or an event log.
fn written_whole(path: &Path) -> bool {
    Compression::of(path) != Compression::None
        || path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("evtx"))
}

/// A file's length and modification time, if it can be read.
type Stamp = Option<(u64, std::time::SystemTime)>;

async fn stamp(path: &Path) -> Stamp {
    let meta = tokio::fs::metadata(path).await.ok()?;
    Some((meta.len(), meta.modified().ok()?))
}

/// Whether a followed file written whole has been written: unchanged for a poll, or last modified a
/// poll ago or more. Read while being written (log rotation compressing the last log into `*.gz`), it
/// would read as damaged and be left. `settling` holds each file's stamp at the poll before.
fn settled(
    settling: &mut HashMap<PathBuf, Stamp>,
    path: &Path,
    stamp: Stamp,
    poll: Duration,
) -> bool {
    let Some((_, modified)) = stamp else {
        // Gone, or not readable: opening it says which.
        return true;
    };
    let old = modified.elapsed().is_ok_and(|age| age >= poll);
    if old || settling.get(path) == Some(&stamp) {
        settling.remove(path);
        return true;
    }
    settling.insert(path.to_path_buf(), stamp);
    false
}

/// How a file is read.
#[derive(Clone)]
struct Reading {
    follow: bool,
    poll: Duration,
    max_record_bytes: usize,
    /// Bytes asked of the file at a time.
    read_bytes: usize,
    /// Where the bytes read are counted.
    size: Arc<Size>,
    /// Followed: how long at its end before the file is idle (holds no other back).
    idle_after: Duration,
}

/// Reads one file to its end (or, following, forever). `aligned`: the file's place among the files read
/// at once, whose start the caller has announced; it reads on only while it is not too far ahead of them.
async fn read_file(
    path: PathBuf,
    how: Reading,
    tx: RecordSender,
    shutdown: CancellationToken,
    aligned: Registration,
) -> Result<(), SourceError> {
    let name = input_of(&path);
    let result = read_one(path, how, tx.clone(), shutdown, aligned).await;
    if result.is_err() {
        // Announced, then failed (it would not open, it is not EVTX, it is damaged): it no longer holds
        // the watermark back while the other files are read.
        let _ = tx.send(SourceMessage::Stopped(name)).await;
    }
    result
}

/// [`read_file`]'s reading.
async fn read_one(
    path: PathBuf,
    how: Reading,
    tx: RecordSender,
    shutdown: CancellationToken,
    aligned: Registration,
) -> Result<(), SourceError> {
    let input = input_of(&path);
    if path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("evtx"))
    {
        return read_evtx(path, input, how, tx, shutdown, aligned).await;
    }
    let Reading {
        follow,
        poll,
        max_record_bytes,
        read_bytes,
        size,
        idle_after,
    } = how;
    let mut splitter =
        LineSplitter::new(Arc::clone(&input), max_record_bytes).read_bytes(read_bytes);
    let compression = Compression::of(&path);
    let (mut reader, mut inode) = open(&path, compression, read_bytes, &size).await?;
    let mut at_end: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            () = aligned.wait_turn() => {}
        }
        let read = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            read = splitter.read(&mut reader, &tx) => read,
        };
        let read = match read {
            Ok(read) => read,
            // A damaged file (a truncated or corrupt gzip or zstd stream, a disk error): the lines read
            // before the damage go on to the hunts, the file ends there, and the error is the run's.
            Err(e) => {
                tracing::error!(path = %path.display(), line = splitter.next_line, error = %e, "File could not be read past this point; the lines before it are hunted (a line cut by the damage is a dead letter).");
                splitter.finish(&tx).await;
                return Err(io_error(&path)(e));
            }
        };
        match read {
            Read::Closed => return Ok(()),
            Read::Data if follow => {
                at_end = None;
                aligned.set_idle(false);
            }
            Read::Data => {}
            Read::End if !follow || compression != Compression::None => {
                // Read to its end: the file no longer holds the watermark back (the next one may be older).
                if splitter.finish(&tx).await {
                    let _ = tx.send(SourceMessage::Stopped(input)).await;
                }
                return Ok(());
            }
            Read::End => {
                // Waiting for more: a followed file at its end for a while holds no other back.
                if at_end.get_or_insert_with(Instant::now).elapsed() >= idle_after {
                    aligned.set_idle(true);
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(poll) => {}
                }
                // Rotated (a new file under the name) or truncated: start again from the top.
                if let Ok(meta) = tokio::fs::metadata(&path).await
                    && (meta.ino() != inode || meta.len() < splitter.position)
                {
                    tracing::info!(path = %path.display(), "File was replaced or truncated; reading it from the start.");
                    (reader, inode) = open(&path, compression, read_bytes, &size).await?;
                    splitter.restart();
                }
            }
        }
    }
}

/// Reads an EVTX file to its end: each record rendered by the evtx crate as JSON in the nested
/// `Event.System` / `Event.EventData` shape (what `evtx_dump` writes and the decoder reads), its offset
/// its place in the file from 1 (rising, as the lake's exactly-once bookkeeping needs; the record's own
/// `EventRecordID` is in it). Parsed on a blocking thread, a chunk of records at a time, each chunk
/// waiting its turn among the files read at once. A record the parser cannot read is skipped with a
/// warning (there is nothing of it to keep); a file that is not EVTX is an error naming it.
async fn read_evtx(
    path: PathBuf,
    input: Arc<Input>,
    how: Reading,
    tx: RecordSender,
    shutdown: CancellationToken,
    aligned: Registration,
) -> Result<(), SourceError> {
    let runtime = tokio::runtime::Handle::current();
    let (mut reading, sender) = (Arc::clone(&input), tx.clone());
    let read = tokio::task::spawn_blocking(move || -> Result<bool, SourceError> {
        let failed = |e: evtx::err::EvtxError| SourceError::Io {
            path: path.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        };
        let bytes = std::fs::metadata(&path).map_err(io_error(&path))?.len();
        let mut parser = evtx::EvtxParser::from_path(&path)
            .map_err(failed)?
            .with_configuration(evtx::ParserSettings::new().num_threads(1));
        let (mut chunk, mut chunk_bytes) = (Vec::with_capacity(CHUNK_RECORDS), 0usize);
        let (mut offset, mut skipped) = (0u64, 0u64);
        let send = |chunk: Vec<RawRecord>| {
            runtime.block_on(async {
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    () = aligned.wait_turn() => {}
                }
            });
            !shutdown.is_cancelled()
                && sender
                    .blocking_send(SourceMessage::Records(chunk))
                    .is_ok()
        };
        for record in parser.records_json() {
            offset += 1;
            match record {
                Ok(record) => {
                    let mut json = record.data.into_bytes();
                    // Too long: cut one byte past the bound, so the decoder dead-letters it as oversized.
                    json.truncate(how.max_record_bytes + 1);
                    chunk_bytes += json.len();
                    if offset == 1 + skipped {
                        // The file's records carry the fingerprint of its first (`InputKind::File`).
                        reading = reading.first_record(offset, &json);
                    }
                    chunk.push(RawRecord {
                        input: Arc::clone(&reading),
                        offset,
                        bytes: json.into(),
                        received: Instant::now(),
                        source_timestamp: None,
                    });
                }
                Err(error) => {
                    skipped += 1;
                    if skipped <= 3 {
                        tracing::warn!(path = %path.display(), record = offset, %error, "An EVTX record could not be read; it is skipped.");
                    }
                }
            }
            if chunk.len() >= CHUNK_RECORDS || chunk_bytes >= CHUNK_BYTES {
                chunk_bytes = 0;
                if !send(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_RECORDS))) {
                    return Ok(false);
                }
            }
        }
        if !chunk.is_empty() && !send(chunk) {
            return Ok(false);
        }
        if skipped > 0 {
            tracing::warn!(path = %path.display(), skipped, "EVTX records that could not be read were skipped.");
        }
        how.size.add_bytes_read(bytes);
        Ok(true)
    })
    .await
    .expect("reading an EVTX file does not panic")?;
    if read {
        let _ = tx.send(SourceMessage::Stopped(input)).await;
    }
    Ok(())
}

impl Source for FileSource {
    fn run(
        self: Box<Self>,
        tx: RecordSender,
        shutdown: CancellationToken,
    ) -> BoxFuture<'static, Result<(), SourceError>> {
        Box::pin(async move {
            let s = self.settings.clone();
            if !s.follow {
                let mut paths = expand(&s.paths, true)?;
                paths.retain(|p| !self.skipped(p));
                if paths.len() > s.max_open {
                    tracing::warn!(
                        files = paths.len(),
                        max_open = s.max_open,
                        "More files than are read at once: a file that starts after the others have passed its hours is late (dead letters). Raise source.file.max_open if they cover the same hours."
                    );
                }
                // The records in flight keep their reads' buffers alive: files read at once share
                // about two reads' worth (a 1 MiB read each made 50 files' peak RSS 360 MiB against
                // 190 for one file of the same events).
                let at_once = paths.len().min(s.max_open).max(1);
                let how = Reading {
                    follow: false,
                    poll: s.poll_interval,
                    max_record_bytes: self.max_record_bytes,
                    read_bytes: (2 * READ_BYTES / at_once).clamp(64 << 10, READ_BYTES),
                    size: Arc::clone(&self.size),
                    idle_after: self.idle_timeout,
                };
                let mut paths = paths.into_iter();
                let mut reading = tokio::task::JoinSet::new();
                let mut failed = None;
                loop {
                    // Every file that starts now is announced before any is read: an input the
                    // pipeline does not know yet would not hold the watermark back, and windows its
                    // first events belong to could close on another file's events.
                    let starting: Vec<PathBuf> =
                        paths.by_ref().take(s.max_open - reading.len()).collect();
                    for path in &starting {
                        if tx
                            .send(SourceMessage::Started(input_of(path)))
                            .await
                            .is_err()
                        {
                            return Ok(());
                        }
                    }
                    for path in starting {
                        tracing::debug!(path = %path.display(), "Reading file.");
                        let aligned = self.alignment.register(&path.display().to_string());
                        reading.spawn(read_file(
                            path,
                            how.clone(),
                            tx.clone(),
                            shutdown.clone(),
                            aligned,
                        ));
                    }
                    let Some(done) = reading.join_next().await else {
                        break;
                    };
                    // A file that fails does not stop the others: every readable line is hunted,
                    // then the run fails with the first file's error.
                    if let Err(e) = done.expect("a file reader does not panic") {
                        failed.get_or_insert(e);
                    }
                    if shutdown.is_cancelled() {
                        break;
                    }
                }
                while let Some(done) = reading.join_next().await {
                    if let Err(e) = done.expect("a file reader does not panic") {
                        failed.get_or_insert(e);
                    }
                }
                return failed.map_or(Ok(()), Err);
            }
            let mut started = HashSet::new();
            let mut settling = HashMap::new();
            let mut tasks = tokio::task::JoinSet::new();
            // A followed file that fails (damaged, unreadable) is left, with an error naming it: the
            // others are followed on, and the run ends with the first such error when it is stopped.
            let mut failed = None;
            loop {
                for path in expand(&s.paths, false)? {
                    if started.contains(&path) {
                        continue;
                    }
                    if self.skipped(&path) {
                        started.insert(path);
                        continue;
                    }
                    if written_whole(&path) {
                        let stamp = stamp(&path).await;
                        if !settled(&mut settling, &path, stamp, s.poll_interval) {
                            continue;
                        }
                    }
                    started.insert(path.clone());
                    tracing::info!(path = %path.display(), "Following file.");
                    if tx
                        .send(SourceMessage::Started(input_of(&path)))
                        .await
                        .is_err()
                    {
                        return Ok(());
                    }
                    let aligned = self.alignment.register(&path.display().to_string());
                    tasks.spawn(read_file(
                        path,
                        Reading {
                            follow: true,
                            poll: s.poll_interval,
                            max_record_bytes: self.max_record_bytes,
                            read_bytes: READ_BYTES,
                            size: Arc::clone(&self.size),
                            idle_after: self.idle_timeout,
                        },
                        tx.clone(),
                        shutdown.clone(),
                        aligned,
                    ));
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(s.poll_interval) => {}
                    Some(done) = tasks.join_next() => {
                        if let Err(e) = done.expect("a file reader does not panic") {
                            failed.get_or_insert(e);
                        }
                    }
                }
            }
            while let Some(done) = tasks.join_next().await {
                if let Err(e) = done.expect("a file reader does not panic") {
                    failed.get_or_insert(e);
                }
            }
            failed.map_or(Ok(()), Err)
        })
    }

    fn event_times(&self) -> Option<Arc<dyn EventTimes>> {
        Some(Arc::clone(&self.alignment) as Arc<dyn EventTimes>)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    #[test]
    fn a_file_written_whole_is_read_once_it_is_old_or_unchanged_for_a_poll() {
        let poll = Duration::from_secs(5);
        let mut settling = HashMap::new();
        let path = Path::new("app.log.1.gz");
        let now = SystemTime::now();
        // Being written: new, then grown since the last poll.
        assert!(!settled(&mut settling, path, Some((100, now)), poll));
        assert!(!settled(&mut settling, path, Some((200, now)), poll));
        // Unchanged since the last poll: written.
        assert!(settled(&mut settling, path, Some((200, now)), poll));
        assert!(settling.is_empty());
        // Found already written a while ago: at once.
        let old = now - Duration::from_secs(60);
        assert!(settled(
            &mut settling,
            Path::new("old.gz"),
            Some((9, old)),
            poll
        ));
        // Gone between the listing and now: opening it says so.
        assert!(settled(&mut settling, Path::new("gone.gz"), None, poll));
        assert!(written_whole(Path::new("a.jsonl.GZ")));
        assert!(written_whole(Path::new("a.jsonl.zst")));
        assert!(written_whole(Path::new("Security.evtx")));
        assert!(!written_whole(Path::new("a.jsonl")));
    }
}
