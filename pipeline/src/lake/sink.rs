//! The live pipeline's lake writer: decoded batches and alerts in, Delta commits out.
//!
//! Rows are streamed into Parquet (zstd) per event date as they come and committed when `flush_rows` are
//! buffered or `flush_interval` after the first one: a few large files per day, not one per micro-batch.
//! The pipeline asks [`LakeSink::min_seq`] before acknowledging the source: a batch with rows not yet
//! committed is held, like a batch an open window holds.
//!
//! The Parquet encoding runs on a thread of its own (`lake-writer`), beside the hunts rather than after
//! them: [`LakeSink`] hands it rows through a short queue (a slow writer slows the pipeline, it does not
//! grow memory) and waits for it only at a commit. A failed write is reported by the next commit, and
//! nothing after the previous commit has been acknowledged by then.
//!
//! Exactly once: each commit carries, per replayable input (a Kafka partition, a file), an application
//! transaction `ghosthunt:<input>` whose version is the highest offset committed. Rows at or below an
//! input's committed version are already in the table and are skipped — they come back after a crash,
//! because the source is acknowledged only after the commit. The generator and stdin cannot be
//! replayed: their rows are always appended.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{BooleanArray, RecordBatch};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::SchemaRef;
use deltalake_core::DeltaTable;
use deltalake_core::kernel::Transaction;
use deltalake_core::kernel::transaction::CommitProperties;
use deltalake_core::writer::{DeltaWriter, RecordBatchWriter, WriteMode};
use tokio::sync::{mpsc, oneshot};

use super::layout::{by_date, timestamp_columns, writer_properties};
use super::table::{self, ALERTS, EVENTS};
use super::{LakeError, LakeSettings};
use crate::alert::Alert;
use crate::decode::EventSchema;
use crate::source::{InputKind, RawRecord};

/// Batches queued for the writer thread before the pipeline waits for it.
const QUEUE: usize = 4;

/// One table and the writer of its open (uncommitted) files.
struct TableWriter {
    name: &'static str,
    table: DeltaTable,
    writer: Option<RecordBatchWriter>,
    row_group_rows: usize,
}

impl TableWriter {
    async fn write(&mut self, rows: RecordBatch) -> Result<(), LakeError> {
        if rows.num_rows() == 0 {
            return Ok(());
        }
        let writer = match &mut self.writer {
            Some(w) => w,
            None => self.writer.insert(
                RecordBatchWriter::for_table(&self.table)
                    .map_err(|e| LakeError::delta(self.name, e))?
                    .with_writer_properties(writer_properties(
                        &timestamp_columns(&rows.schema()),
                        self.row_group_rows,
                    )),
            ),
        };
        for (rows, date) in by_date(self.name, rows)? {
            writer
                .write_partition(rows, &date, WriteMode::Default)
                .await
                .map_err(|e| LakeError::delta(self.name, e))?;
        }
        Ok(())
    }

    /// Commits the open files with `transactions`; nothing to commit is no commit.
    async fn commit(&mut self, transactions: Vec<Transaction>) -> Result<Option<i64>, LakeError> {
        let Some(writer) = self.writer.take() else {
            return Ok(None);
        };
        let mut writer = writer.with_commit_properties(
            CommitProperties::default().with_application_transactions(transactions),
        );
        let version = writer
            .flush_and_commit(&mut self.table)
            .await
            .map_err(|e| LakeError::delta(self.name, e))?;
        Ok(Some(version as i64))
    }
}

/// What the writer thread is asked to do.
enum Job {
    Events(RecordBatch),
    Alerts(RecordBatch),
    /// Commit the alerts, then the events with `transactions`; `refresh`: read the table's newest
    /// version first (another instance may have committed since).
    Commit {
        refresh: bool,
        transactions: Vec<Transaction>,
        /// Per transaction, the offset the table held of its input when this run last knew (read or
        /// committed): a table that holds another has had the same input written by another writer.
        expected: Vec<Option<i64>>,
        reply: oneshot::Sender<Result<(), LakeError>>,
    },
}

/// The writer thread's state: both tables, and the first failure since the last commit.
struct Writer {
    events: TableWriter,
    alerts: TableWriter,
    failed: Option<LakeError>,
}

impl Writer {
    async fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        while let Some(job) = jobs.recv().await {
            match job {
                Job::Events(rows) | Job::Alerts(rows) if self.failed.is_some() => drop(rows),
                Job::Events(rows) => self.failed = self.events.write(rows).await.err(),
                Job::Alerts(rows) => self.failed = self.alerts.write(rows).await.err(),
                Job::Commit {
                    refresh,
                    transactions,
                    expected,
                    reply,
                } => {
                    let result = match self.failed.take() {
                        Some(e) => Err(e),
                        None => self.commit(refresh, transactions, expected).await,
                    };
                    let _ = reply.send(result);
                }
            }
        }
    }

    async fn commit(
        &mut self,
        refresh: bool,
        transactions: Vec<Transaction>,
        expected: Vec<Option<i64>>,
    ) -> Result<(), LakeError> {
        self.alerts.commit(Vec::new()).await?;
        if refresh {
            self.events
                .table
                .update_state()
                .await
                .map_err(|e| LakeError::delta(EVENTS, e))?;
        }
        // The table as this writer last read it (its own commits bring it up to date, others' too):
        // an input's offset moved by someone else means two writers are writing one input, and this
        // commit would add rows the table holds. Delta's conflict check does not see it when the
        // other commit came before this writer's last read.
        for (txn, expected) in transactions.iter().zip(&expected) {
            let held = held_through(&self.events.table, &txn.app_id).await?;
            if held != *expected {
                return Err(LakeError::Invalid {
                    table: EVENTS.to_string(),
                    reason: format!(
                        "another writer is writing input `{}` into this lake (the table holds it \
                         through offset {}, this run through {}): its rows would land twice. Write \
                         each input with one ghosthunt (or one consumer group); nothing of this \
                         commit was written",
                        txn.app_id.trim_start_matches("ghosthunt:"),
                        held.map_or("none".into(), |v| v.to_string()),
                        expected.map_or("none".into(), |v| v.to_string()),
                    ),
                });
            }
        }
        self.events.commit(transactions).await?;
        Ok(())
    }
}

/// The highest offset of input `app_id` the events table holds as `table` last read it (its Delta
/// application transaction), if any.
async fn held_through(table: &DeltaTable, app_id: &str) -> Result<Option<i64>, LakeError> {
    table
        .snapshot()
        .map_err(|e| LakeError::delta(EVENTS, e))?
        .transaction_version(table.log_store().as_ref(), app_id)
        .await
        .map_err(|e| LakeError::delta(EVENTS, e))
}

/// The application-transaction id of an input, or `None` for inputs that cannot be replayed. A file's
/// names its first record too: a file rotated or replaced under the same path starts its offsets again.
pub fn app_id(kind: &InputKind, name: &str) -> Option<String> {
    match kind {
        InputKind::Kafka { .. } => Some(format!("ghosthunt:{name}")),
        InputKind::File { first, .. } => Some(match first {
            Some(first) => format!("ghosthunt:{name}#{first:016x}"),
            None => format!("ghosthunt:{name}"),
        }),
        InputKind::Generator | InputKind::Stdin | InputKind::Lake => None,
    }
}

/// What a commit wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    pub events: usize,
    pub alerts: usize,
    /// Replayed rows skipped since the last commit: the table already held them.
    pub skipped: usize,
}

/// The live pipeline's writer of both tables.
pub struct LakeSink {
    settings: LakeSettings,
    time_column: String,
    events_schema: SchemaRef,
    /// The events table as this side reads it: the application transactions of inputs (re)started.
    log: DeltaTable,
    /// The writer thread's queue.
    jobs: mpsc::Sender<Job>,
    /// Rows handed to the writer since the last commit, per table.
    events_rows: usize,
    alerts_rows: usize,
    /// Per app id: the highest offset the table holds (None: none), as read from the table or committed.
    committed: HashMap<String, Option<i64>>,
    /// Per app id: the highest offset buffered since the last commit.
    pending: BTreeMap<String, i64>,
    /// The first batch with uncommitted rows.
    first: Option<u64>,
    /// When the oldest uncommitted row (event or alert) came.
    since: Option<Instant>,
    /// Rows skipped since the last commit because the table already held them (replayed after a crash).
    skipped: usize,
    /// Another writer may have committed since the table was loaded (an input was handed back to us):
    /// for the reads here, and for the writer's next commit.
    stale: bool,
    refresh_writer: bool,
}

impl LakeSink {
    /// Opens (creating if needed) `<path>/events` for `schema`'s columns and `<path>/alerts`, and starts
    /// the writer thread.
    pub async fn open(
        settings: &LakeSettings,
        schema: &EventSchema,
    ) -> Result<LakeSink, LakeError> {
        let events_schema = table::events_schema(schema);
        let events = table::open_or_create(settings, EVENTS, &events_schema).await?;
        let alerts = table::open_or_create(settings, ALERTS, &table::alerts_schema()).await?;
        for table in [&events, &alerts] {
            table::check_writable(table).await?;
        }
        let log = events.clone();
        let writer = Writer {
            events: TableWriter {
                name: EVENTS,
                table: events,
                writer: None,
                row_group_rows: settings.row_group_rows,
            },
            alerts: TableWriter {
                name: ALERTS,
                table: alerts,
                writer: None,
                row_group_rows: settings.row_group_rows,
            },
            failed: None,
        };
        let (jobs, queue) = mpsc::channel(QUEUE);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| LakeError::Invalid {
                table: settings.path.clone(),
                reason: format!("cannot start the writer: {e}"),
            })?;
        std::thread::Builder::new()
            .name("lake-writer".to_string())
            .spawn(move || runtime.block_on(writer.run(queue)))
            .map_err(|e| LakeError::Invalid {
                table: settings.path.clone(),
                reason: format!("cannot start the writer: {e}"),
            })?;
        Ok(LakeSink {
            settings: settings.clone(),
            time_column: schema.time_column().to_string(),
            events_schema,
            log,
            jobs,
            events_rows: 0,
            alerts_rows: 0,
            committed: HashMap::new(),
            pending: BTreeMap::new(),
            first: None,
            since: None,
            skipped: 0,
            stale: false,
            refresh_writer: false,
        })
    }

    /// Hands `job` to the writer thread (waiting while its queue is full).
    async fn send(&self, job: Job) -> Result<(), LakeError> {
        self.jobs.send(job).await.map_err(|_| stopped())
    }

    /// An input (re)starts here — a Kafka partition assigned, perhaps after another instance of the
    /// group wrote it: what the table holds of it is read again, from the newest table version.
    pub fn restart(&mut self, kind: &InputKind, name: &str) {
        if let Some(id) = app_id(kind, name) {
            self.committed.remove(&id);
            self.stale = true;
            self.refresh_writer = true;
        }
    }

    /// The highest offset of `app_id` the events table holds.
    async fn committed(&mut self, app_id: &str) -> Result<Option<i64>, LakeError> {
        if let Some(v) = self.committed.get(app_id) {
            return Ok(*v);
        }
        if std::mem::take(&mut self.stale) {
            self.log
                .update_state()
                .await
                .map_err(|e| LakeError::delta(EVENTS, e))?;
        }
        let version = held_through(&self.log, app_id).await?;
        self.committed.insert(app_id.to_string(), version);
        Ok(version)
    }

    /// Buffers the rows of decoded batch `seq` (`records` behind its rows, in order) that the table does
    /// not hold yet.
    pub async fn write_events(
        &mut self,
        seq: u64,
        batch: &RecordBatch,
        records: &[RawRecord],
    ) -> Result<(), LakeError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        // Each record's app id (inputs are few: computed once per input of the batch).
        let mut by_input: Vec<(&Arc<crate::source::Input>, Option<String>)> = Vec::new();
        let ids: Vec<usize> = records
            .iter()
            .map(
                |r| match by_input.iter().position(|(i, _)| Arc::ptr_eq(i, &r.input)) {
                    Some(k) => k,
                    None => {
                        by_input.push((&r.input, app_id(&r.input.kind, &r.input.name)));
                        by_input.len() - 1
                    }
                },
            )
            .collect();
        let mut committed = Vec::with_capacity(by_input.len());
        for (_, id) in &by_input {
            committed.push(match id {
                Some(id) => self.committed(id).await?,
                None => None,
            });
        }
        let mut keep = Vec::with_capacity(records.len());
        let mut highest: BTreeMap<String, i64> = BTreeMap::new();
        for (record, &k) in records.iter().zip(&ids) {
            let Some(id) = &by_input[k].1 else {
                keep.push(true);
                continue;
            };
            let offset = record.offset as i64;
            let fresh = committed[k].is_none_or(|c| offset > c);
            keep.push(fresh);
            if fresh {
                let h = highest.entry(id.clone()).or_insert(offset);
                *h = (*h).max(offset);
            }
        }
        let kept: Vec<&RawRecord> = records
            .iter()
            .zip(&keep)
            .filter_map(|(r, k)| k.then_some(r))
            .collect();
        self.skipped += records.len() - kept.len();
        if kept.is_empty() {
            return Ok(());
        }
        let batch = if kept.len() == records.len() {
            batch.clone()
        } else {
            filter_record_batch(batch, &BooleanArray::from(keep))?
        };
        let rows = table::events_rows(&self.events_schema, &self.time_column, &batch, &kept)?;
        self.events_rows += rows.num_rows();
        self.send(Job::Events(rows)).await?;
        for (id, offset) in highest {
            let h = self.pending.entry(id).or_insert(offset);
            *h = (*h).max(offset);
        }
        self.first.get_or_insert(seq);
        self.since.get_or_insert_with(Instant::now);
        Ok(())
    }

    /// Buffers alerts (committed before the events they came from). `hold`: the oldest batch not
    /// acknowledged yet — it and later ones stay unacknowledged until the alerts are committed (a
    /// window's alert comes from batches whose events may be committed already, and on the
    /// repartitioned side from batches with no events at all).
    pub async fn write_alerts(
        &mut self,
        alerts: &[Alert],
        hold: Option<u64>,
    ) -> Result<(), LakeError> {
        if alerts.is_empty() {
            return Ok(());
        }
        if let Some(seq) = hold {
            self.first = Some(self.first.map_or(seq, |f| f.min(seq)));
        }
        self.alerts_rows += alerts.len();
        self.send(Job::Alerts(table::alerts_rows(alerts)?)).await?;
        self.since.get_or_insert_with(Instant::now);
        Ok(())
    }

    /// The oldest batch with rows not committed yet: it and later ones must not be acknowledged.
    pub fn min_seq(&self) -> Option<u64> {
        self.first
    }

    /// Rows buffered in both tables.
    pub fn buffered(&self) -> usize {
        self.events_rows + self.alerts_rows
    }

    /// Whether the buffered rows should be committed now.
    pub fn due(&self, now: Instant) -> bool {
        self.events_rows >= self.settings.flush_rows
            || self.alerts_rows >= self.settings.flush_rows
            || self.since.is_some_and(|since| {
                now.saturating_duration_since(since) >= self.settings.flush_interval
            })
    }

    /// Commits everything buffered: the alerts, then the events with their source offsets; returns when
    /// the commit is in the table.
    pub async fn commit(&mut self) -> Result<Committed, LakeError> {
        let now = chrono::Utc::now().timestamp_millis();
        let transactions = self
            .pending
            .iter()
            .map(|(id, offset)| Transaction {
                app_id: id.clone(),
                version: *offset,
                last_updated: Some(now),
            })
            .collect();
        let expected = self
            .pending
            .keys()
            .map(|id| self.committed.get(id).copied().flatten())
            .collect();
        let (reply, done) = oneshot::channel();
        let refresh = std::mem::take(&mut self.refresh_writer);
        self.send(Job::Commit {
            refresh,
            transactions,
            expected,
            reply,
        })
        .await?;
        done.await.map_err(|_| stopped())??;
        for (id, offset) in std::mem::take(&mut self.pending) {
            self.committed.insert(id, Some(offset));
        }
        self.first = None;
        self.since = None;
        Ok(Committed {
            events: std::mem::take(&mut self.events_rows),
            alerts: std::mem::take(&mut self.alerts_rows),
            skipped: std::mem::take(&mut self.skipped),
        })
    }
}

/// The writer thread is gone (it stops only when it panicked).
fn stopped() -> LakeError {
    LakeError::Invalid {
        table: EVENTS.to_string(),
        reason: "the lake writer thread stopped".to_string(),
    }
}
