//! The records of the repartition topic: rows of one windowed hunt, or an instance's watermark.
//!
//! A record is `GHR1`, a kind byte (`R` rows, `W` watermark), the length of a JSON header (u32, little
//! endian), the header, and for rows an Arrow IPC stream (the rows, in the hunt's routed columns). The
//! header says which hunt (and which version of it: its fingerprint) selected the rows, or which instance
//! reached which watermark.

use std::io::Cursor;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, AsArray, DictionaryArray, StringArray, StringDictionaryBuilder, UInt64Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, UInt16Type, UInt64Type};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::window::Origin;

const MAGIC: &[u8; 4] = b"GHR1";

/// The columns a rows record adds after the hunt's: each row's source input and offset.
const SOURCE: &str = "__source";
const OFFSET: &str = "__offset";

/// `batch` with each row's source position appended (`origins`: one per row).
pub fn with_origins(
    batch: &RecordBatch,
    origins: impl IntoIterator<Item = (impl AsRef<str>, u64)>,
) -> Result<RecordBatch, ArrowError> {
    let mut sources = StringDictionaryBuilder::<UInt16Type>::new();
    let mut offsets = UInt64Builder::with_capacity(batch.num_rows());
    for (source, offset) in origins {
        sources.append(source.as_ref())?;
        offsets.append_value(offset);
    }
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(
        SOURCE,
        DataType::Dictionary(Box::new(DataType::UInt16), Box::new(DataType::Utf8)),
        false,
    ));
    fields.push(Field::new(OFFSET, DataType::UInt64, false));
    let mut columns = batch.columns().to_vec();
    columns.push(Arc::new(sources.finish()));
    columns.push(Arc::new(offsets.finish()));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

/// The hunt's rows and their source positions (none when the record carries none).
pub fn split_origins(batch: RecordBatch) -> Result<(RecordBatch, Vec<Origin>), ArrowError> {
    let n = batch.num_columns();
    let schema = batch.schema();
    if n < 2 || schema.field(n - 2).name() != SOURCE || schema.field(n - 1).name() != OFFSET {
        return Ok((batch, Vec::new()));
    }
    let bad = || ArrowError::SchemaError("source position columns of the wrong type".into());
    let sources = batch
        .column(n - 2)
        .as_any()
        .downcast_ref::<DictionaryArray<UInt16Type>>()
        .ok_or_else(bad)?;
    let names = sources
        .values()
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(bad)?;
    let names: Vec<Arc<str>> = names.iter().map(|v| Arc::from(v.unwrap_or(""))).collect();
    let offsets = batch
        .column(n - 1)
        .as_primitive_opt::<UInt64Type>()
        .ok_or_else(bad)?;
    let origins = sources
        .keys()
        .iter()
        .zip(offsets.iter())
        .map(|(k, o)| {
            let name = k.and_then(|k| names.get(k as usize)).ok_or_else(bad)?;
            Ok((Arc::clone(name), o.ok_or_else(bad)?))
        })
        .collect::<Result<Vec<Origin>, ArrowError>>()?;
    Ok((batch.project(&(0..n - 2).collect::<Vec<_>>())?, origins))
}

/// An instance's event-time progress, sent to every partition of the repartition topic: where each
/// source partition it reads stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatermarkMark {
    /// The sending instance (unique per process).
    pub instance: String,
    pub inputs: Vec<InputMark>,
}

/// One source partition's progress as its reader sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputMark {
    /// The input's name (`topic[partition]`): the same on every instance.
    pub input: String,
    /// Its newest event time (ns since the epoch); `None` before its first event.
    pub newest: Option<i64>,
    /// Nothing came from it for `window.idle_timeout`: it holds no one back.
    pub idle: bool,
    /// When idle: milliseconds since its last record (event time goes on at the wall clock's pace while
    /// every source partition is idle). Absent from instances of earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_ms: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
struct RowsHeader {
    hunt: String,
    fingerprint: String,
}

/// One decoded record of the repartition topic.
#[derive(Debug)]
pub enum Frame {
    Rows {
        hunt: String,
        fingerprint: String,
        batch: RecordBatch,
    },
    Watermark(WatermarkMark),
}

/// Why a record of the repartition topic cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("not a ghosthunt repartition record (no GHR1 header)")]
    NotAFrame,
    #[error("record kind {0:#04x} is unknown")]
    Kind(u8),
    #[error("header: {0}")]
    Header(#[from] serde_json::Error),
    #[error("rows: {0}")]
    Rows(#[from] ArrowError),
    #[error("rows: the record holds {0} batches, not one")]
    Batches(usize),
}

fn frame(kind: u8, header: &[u8], body_len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + header.len() + body_len);
    out.extend_from_slice(MAGIC);
    out.push(kind);
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(header);
    out
}

/// Rows of `hunt` as one record.
pub fn encode_rows(
    hunt: &str,
    fingerprint: &str,
    batch: &RecordBatch,
) -> Result<Vec<u8>, ArrowError> {
    let header = serde_json::to_vec(&RowsHeader {
        hunt: hunt.to_string(),
        fingerprint: fingerprint.to_string(),
    })
    .expect("a header of strings serialises");
    let mut out = frame(b'R', &header, 0);
    let mut writer = StreamWriter::try_new(&mut out, batch.schema_ref())?;
    writer.write(batch)?;
    writer.finish()?;
    drop(writer);
    Ok(out)
}

/// A watermark as one record.
pub fn encode_watermark(mark: &WatermarkMark) -> Vec<u8> {
    let header = serde_json::to_vec(mark).expect("a watermark serialises");
    frame(b'W', &header, 0)
}

/// Reads one record.
pub fn decode(bytes: &[u8]) -> Result<Frame, FrameError> {
    if bytes.len() < 9 || &bytes[..4] != MAGIC {
        return Err(FrameError::NotAFrame);
    }
    let kind = bytes[4];
    let len = u32::from_le_bytes(bytes[5..9].try_into().expect("four bytes")) as usize;
    let header = bytes.get(9..9 + len).ok_or(FrameError::NotAFrame)?;
    let body = &bytes[9 + len..];
    match kind {
        b'W' => Ok(Frame::Watermark(serde_json::from_slice(header)?)),
        b'R' => {
            let RowsHeader { hunt, fingerprint } = serde_json::from_slice(header)?;
            let reader = StreamReader::try_new(Cursor::new(body), None)?;
            let mut batches = reader.collect::<Result<Vec<_>, _>>()?;
            if batches.len() != 1 {
                return Err(FrameError::Batches(batches.len()));
            }
            Ok(Frame::Rows {
                hunt,
                fingerprint,
                batch: batches.pop().expect("one batch"),
            })
        }
        other => Err(FrameError::Kind(other)),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, StringViewArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn rows_and_watermarks_read_back_as_written() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("host", DataType::Utf8View, true),
            Field::new("n", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringViewArray::from(vec![Some("ws-1"), None])),
                Arc::new(Int64Array::from(vec![1, 2])),
            ],
        )
        .unwrap();
        let bytes = encode_rows("spray", "abc", &batch).unwrap();
        match decode(&bytes).unwrap() {
            Frame::Rows {
                hunt,
                fingerprint,
                batch: back,
            } => {
                assert_eq!((hunt.as_str(), fingerprint.as_str()), ("spray", "abc"));
                assert_eq!(back, batch);
            }
            other => panic!("rows expected, got {other:?}"),
        }
        let mark = WatermarkMark {
            instance: "a-1".into(),
            inputs: vec![
                InputMark {
                    input: "events[0]".into(),
                    newest: Some(42),
                    idle: false,
                    quiet_ms: None,
                },
                InputMark {
                    input: "events[1]".into(),
                    newest: Some(40),
                    idle: true,
                    quiet_ms: Some(12_000),
                },
            ],
        };
        match decode(&encode_watermark(&mark)).unwrap() {
            Frame::Watermark(back) => assert_eq!(back, mark),
            other => panic!("watermark expected, got {other:?}"),
        }
    }

    #[test]
    fn source_positions_travel_with_the_rows() {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let batch =
            RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1, 2, 3]))]).unwrap();
        let sent = with_origins(
            &batch,
            [("events[0]", 10), ("events[2]", 4), ("events[0]", 11)],
        )
        .unwrap();
        let Frame::Rows { batch: back, .. } =
            decode(&encode_rows("h", "f", &sent).unwrap()).unwrap()
        else {
            panic!("rows expected");
        };
        let (rows, origins) = split_origins(back).unwrap();
        assert_eq!(rows, batch);
        let origins: Vec<(&str, u64)> = origins.iter().map(|(s, o)| (&**s, *o)).collect();
        assert_eq!(
            origins,
            vec![("events[0]", 10), ("events[2]", 4), ("events[0]", 11)]
        );
        let (plain, none) = split_origins(batch.clone()).unwrap();
        assert_eq!((plain, none.len()), (batch, 0));
    }

    #[test]
    fn other_bytes_are_refused_with_a_reason() {
        assert!(matches!(
            decode(b"{\"host\":1}"),
            Err(FrameError::NotAFrame)
        ));
        let mut bad = encode_watermark(&WatermarkMark {
            instance: "a".into(),
            inputs: Vec::new(),
        });
        bad[4] = b'X';
        assert!(matches!(decode(&bad), Err(FrameError::Kind(b'X'))));
        let rows =
            encode_rows("h", "f", &RecordBatch::new_empty(Arc::new(Schema::empty()))).unwrap();
        assert!(
            decode(&rows[..rows.len() - 3]).is_err(),
            "a cut record is refused"
        );
    }
}
