//! Bytes in: JSON-lines files, stdin, Kafka (the built-in generator is in `generator`) — and where positions are acknowledged.
//!
//! A [`Source`] runs as its own task and sends chunks of [`RawRecord`]s into a bounded channel (a full channel
//! is backpressure: the source waits). Each record carries its [`Input`] (a file, a Kafka partition …) and its
//! offset in it. When everything downstream of a batch is done — every window holding its rows evaluated and
//! every alert acknowledged by the sink — the pipeline hands the batch's [`Positions`] to the source's
//! [`Acknowledge`], oldest batch first. Sources with nothing to acknowledge keep the default no-op.

pub(crate) mod align;
mod cut;
pub mod file;
pub mod kafka;
mod kafka_floors;
mod kafka_in_step;
pub mod kafka_range;
mod lines;
pub mod progress;
pub mod stdin;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::future::BoxFuture;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use file::FileSource;
pub use stdin::StdinSource;

/// One input of a source: its own ordered stream of records, with its own event-time progress.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Input {
    /// Shown in dead letters, logs and metrics labels: a path, `stdin`, `generator`, `topic[3]`.
    pub name: String,
    pub kind: InputKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum InputKind {
    Generator,
    Stdin,
    File {
        path: PathBuf,
        /// What the file held first: a fingerprint of its first record (see [`Input::first_record`]),
        /// `None` until it is read. The same path holding other contents — a file rotated, replaced
        /// or truncated and written again — is another input to the lake's exactly-once bookkeeping,
        /// whose offsets (line numbers) start again from 1.
        first: Option<u64>,
    },
    Kafka {
        topic: String,
        partition: i32,
    },
    /// The lake's events table, read in event-time order (retro-hunts).
    Lake,
}

impl Input {
    pub fn new(name: impl Into<String>, kind: InputKind) -> Arc<Input> {
        Arc::new(Input {
            name: name.into(),
            kind,
        })
    }

    /// A file input whose first record, at `offset`, is `bytes`: the same input with the fingerprint of
    /// that record (the first 8 bytes of a SHA-256 of the offset and the bytes), as every later record
    /// of the file carries it. Other inputs are returned as they are.
    pub fn first_record(self: &Arc<Self>, offset: u64, bytes: &[u8]) -> Arc<Input> {
        let InputKind::File { path, first: None } = &self.kind else {
            return Arc::clone(self);
        };
        let digest = Sha256::new()
            .chain_update(offset.to_le_bytes())
            .chain_update(bytes)
            .finalize();
        let first = u64::from_le_bytes(digest[..8].try_into().expect("8 of 32 bytes"));
        Input::new(
            self.name.clone(),
            InputKind::File {
                path: path.clone(),
                first: Some(first),
            },
        )
    }
}

/// One record as received: the bytes of one event and where they came from.
#[derive(Debug, Clone)]
pub struct RawRecord {
    pub input: Arc<Input>,
    /// Position within the input: line number (from 1) for files and stdin, sequence for the generator.
    pub offset: u64,
    /// The record as received: for files and stdin a slice of the buffer the lines were read into.
    pub bytes: Bytes,
    /// When the pipeline received it (start of the end-to-end latency).
    pub received: Instant,
    /// The source's own timestamp of the record (a Kafka message's timestamp, ms since the epoch).
    pub source_timestamp: Option<i64>,
}

impl RawRecord {
    /// Records of whole lines read at once from one stdin-like input (offsets from 1, received now):
    /// for tests, benchmarks and tools that hold their events in memory.
    pub fn from_lines<L: Into<Vec<u8>>>(
        input: &str,
        lines: impl IntoIterator<Item = L>,
    ) -> Vec<RawRecord> {
        let input = Input::new(input, InputKind::Stdin);
        let received = Instant::now();
        lines
            .into_iter()
            .enumerate()
            .map(|(i, l)| RawRecord {
                input: Arc::clone(&input),
                offset: i as u64 + 1,
                bytes: Bytes::from(l.into()),
                received,
                source_timestamp: None,
            })
            .collect()
    }
}

/// The highest offset of each input in one batch.
#[derive(Debug, Clone, Default)]
pub struct Positions(pub Vec<(Arc<Input>, u64)>);

impl Positions {
    /// Records `offset` of `input`, keeping the highest per input.
    pub fn note(&mut self, input: &Arc<Input>, offset: u64) {
        match self
            .0
            .iter_mut()
            .find(|(i, _)| Arc::ptr_eq(i, input) || **i == **input)
        {
            Some((_, o)) => *o = (*o).max(offset),
            None => self.0.push((Arc::clone(input), offset)),
        }
    }
}

/// Told when records are fully processed.
pub trait Acknowledge: Send + Sync {
    /// Everything up to and including these positions is done downstream. Called in batch order.
    fn acknowledge(&self, _positions: &Positions) {}

    /// [`Acknowledge::acknowledge`], knowing that every window ending at or before `watermark` (the
    /// pipeline's event-time watermark, ns) has been evaluated and delivered. A source that can keep it
    /// with the position (Kafka: the commit's metadata) lets the next reader of the partition know which
    /// windows were already evaluated.
    fn acknowledge_through(&self, positions: &Positions, _watermark: Option<i64>) {
        self.acknowledge(positions)
    }

    /// The pipeline has drained and acknowledged everything it will: make it durable (commit).
    fn close(&self) {}

    /// Whether what is not acknowledged is read again by the next reader (a Kafka consumer group's next
    /// owner of the partition, or this one restarted). Then a shutdown leaves open windows open instead
    /// of evaluating them before all their rows arrived.
    fn replays_unacknowledged(&self) -> bool {
        false
    }
}

/// Told the newest event time of each input as the pipeline decodes it. A source that reads several
/// inputs at once uses it to keep them near one another in event time (files read once: `align`).
pub trait EventTimes: Send + Sync {
    fn observed(&self, input: &Input, newest: i64);

    /// After each step: the most rows a windowed hunt holds, and the most it may
    /// (`window.max_rows_per_hunt`).
    fn window_rows(&self, _held: usize, _limit: usize) {}

    /// When the source last held `input` back (ahead of the others in event time; now, if it is held
    /// now): a held input is quiet but not idle, and its quiet starts when it is let go.
    fn last_held(&self, _input: &str) -> Option<std::time::Instant> {
        None
    }

    /// How many inputs the source holds back now.
    fn held_back(&self) -> usize {
        0
    }
}

/// For sources whose records need no acknowledgement (the generator, a file read once).
pub struct NoAcknowledge;
impl Acknowledge for NoAcknowledge {}

/// A failure of a source that stops it.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("no file matches `{pattern}`")]
    NoMatch { pattern: String },
    #[error("`{pattern}` is a directory: give its files, e.g. `{pattern}/*.jsonl`")]
    Directory { pattern: String },
    #[error(
        "`{pattern}` is a pipe or a device, not a file: send it to standard input instead \
         (`zcat events.jsonl.gz | ghosthunt run` with source.kind = \"stdin\")"
    )]
    NotAFile { pattern: String },
    #[error("bad glob `{pattern}`: {reason}")]
    BadGlob { pattern: String, reason: String },
    #[error(transparent)]
    Kafka(#[from] crate::kafka::KafkaFailure),
    /// Reading Kafka history (`hunt --source kafka`): what the cluster does not have.
    #[error("kafka history: {0}")]
    KafkaHistory(String),
    /// Reading the lake (the reason: the lake's error with its causes).
    #[error("lake: {0}")]
    Lake(String),
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// What a source tells the pipeline.
#[derive(Debug)]
pub enum SourceMessage {
    /// Records, in order per input.
    Records(Vec<RawRecord>),
    /// An input begins (a file opened, a partition assigned): it holds the watermark back until its
    /// first event or its idle timeout.
    Started(Arc<Input>),
    /// An input ended (a file read to its end, a partition revoked): it no longer holds the watermark.
    Stopped(Arc<Input>),
    /// Rows read already decoded (the lake's columns), in the pipeline's event schema, with the record
    /// behind each row and the newest event time among them: passed on as a batch of their own, between
    /// the records before and after them.
    Decoded {
        batch: datafusion::arrow::array::RecordBatch,
        records: Vec<RawRecord>,
        newest: Option<i64>,
        /// The hunts' row filters, answered for `batch` (see [`HuntMasks`]).
        masks: HuntMasks,
    },
}

/// Hunts' row filters already answered for a batch's rows, by hunt id: a retro-hunt's scan answers them
/// while the table's text is still in its Parquet dictionaries, where each distinct value is tested once
/// (`lake::kept`). A hunt not named here evaluates its own filter.
pub type HuntMasks =
    Option<Arc<std::collections::HashMap<String, datafusion::arrow::array::BooleanArray>>>;

/// Source messages flow to the decoder through this bounded channel.
pub type RecordSender = mpsc::Sender<SourceMessage>;

/// A producer of records.
pub trait Source: Send {
    /// Reads until the input ends or `shutdown` is cancelled, sending chunks into `tx`. A closed channel
    /// means the pipeline is gone: return `Ok(())`.
    fn run(
        self: Box<Self>,
        tx: RecordSender,
        shutdown: CancellationToken,
    ) -> BoxFuture<'static, Result<(), SourceError>>;

    /// Where acknowledgements go; the default ignores them.
    fn acknowledger(&self) -> Arc<dyn Acknowledge> {
        Arc::new(NoAcknowledge)
    }

    /// Where the inputs' event times go, if the source wants them; the default does not.
    fn event_times(&self) -> Option<Arc<dyn EventTimes>> {
        None
    }
}

/// How many records one chunk sent to the decoder holds at most.
pub const CHUNK_RECORDS: usize = 1024;
/// A chunk is sent once its records hold this many bytes, before [`CHUNK_RECORDS`] when records are large:
/// the record channel's few chunks then hold a few MiB whatever the record size (with 2.4 KB OTRF records,
/// 1,024-record chunks made the Sigma run's peak RSS ~100 MiB higher; see benches/README.md).
pub const CHUNK_BYTES: usize = 512 * 1024;
