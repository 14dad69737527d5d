//! `ghosthunt query` (ad-hoc SQL or KQL over the lake) and `ghosthunt lake optimize | vacuum`.

use std::io::Write;

use datafusion::arrow::array::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::prelude::SQLOptions;
use datafusion::sql::parser::Statement;
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use futures::StreamExt;

use crate::lake::LakeError;
use crate::lake::read::{self, Range};
use crate::settings::Settings;

/// How `ghosthunt query` prints its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// An aligned table (for a terminal).
    Table,
    Csv,
    /// One JSON object per row.
    Json,
}

/// Why a query did not run.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("no lake: set lake.path (GHOSTHUNT__LAKE__PATH) to the lake's directory")]
    NoLake,
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(transparent)]
    App(#[from] crate::app::AppError),
    #[error("line {line}: {reason}")]
    Kql { line: usize, reason: String },
    #[error("{0}")]
    NotReadOnly(String),
    #[error("writing the rows: {0}")]
    Io(#[from] std::io::Error),
}

/// The most rows a table on a terminal shows (the rest are counted).
const TABLE_ROWS: usize = 1000;

/// Runs one read-only query over the lake (views `events`, `alerts`, the KQL tables) and writes its rows
/// to `out`; returns how many.
pub async fn query(
    settings: &Settings,
    text: &str,
    kql: bool,
    range: Range,
    format: Format,
    out: &mut dyn Write,
) -> Result<usize, QueryError> {
    if !settings.lake.enabled() {
        return Err(QueryError::NoLake);
    }
    let sql = if kql {
        let options = crate::kql::Options {
            ad_hoc: true,
            ..crate::kql::Options::default()
        };
        crate::kql::translate(text, options)
            .map(|t| t.sql)
            .map_err(|e| QueryError::Kql {
                line: e.line(),
                reason: e.reason_at_column(),
            })?
    } else {
        text.to_string()
    };
    let schema = crate::app::schema(settings)?;
    let ctx = read::session(&settings.lake, &schema, &range).await?;
    crate::query::plan::register_kql_views(&ctx, &sql).await;
    let state = ctx.state();
    let dialect = state.config().options().sql_parser.dialect;
    let statement = state.sql_to_statement(&sql, &dialect).map_err(|e| {
        match crate::query::plan::is_several_statements(&e) {
            true => QueryError::NotReadOnly(
                "a query is one SELECT: the text holds several statements (separated by `;`)"
                    .into(),
            ),
            false => QueryError::from(LakeError::from(e)),
        }
    })?;
    if !matches!(&statement, Statement::Statement(s) if matches!(**s, SqlStatement::Query(_))) {
        return Err(QueryError::NotReadOnly(
            "a query is one SELECT: DDL, DML, COPY, EXPLAIN and other statements are not allowed"
                .to_string(),
        ));
    }
    let plan = state
        .statement_to_plan(statement)
        .await
        .map_err(LakeError::from)?;
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
        .verify_plan(&plan)
        .map_err(|e| QueryError::NotReadOnly(e.to_string()))?;
    let mut stream = ctx
        .execute_logical_plan(plan)
        .await
        .map_err(LakeError::from)?
        .execute_stream()
        .await
        .map_err(LakeError::from)?;
    let mut rows = 0;
    let mut table = Vec::new();
    let mut header = true;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(LakeError::from)?;
        rows += batch.num_rows();
        match format {
            // Aligned columns need their rows first: the first TABLE_ROWS are kept, the rest counted.
            Format::Table => {
                let kept: usize = table.iter().map(RecordBatch::num_rows).sum();
                if kept < TABLE_ROWS {
                    table.push(batch.slice(0, batch.num_rows().min(TABLE_ROWS - kept)));
                }
            }
            Format::Json => write_json(&batch, out)?,
            Format::Csv => {
                write_csv(&batch, header, out)?;
                header = false;
            }
        }
    }
    // No row: the CSV still says its columns (a script reading it finds an empty result, not nothing).
    if format == Format::Csv && header {
        write_csv(&RecordBatch::new_empty(stream.schema()), true, out)?;
    }
    if format == Format::Table {
        // No row: the header still says the columns.
        if table.is_empty() {
            table.push(RecordBatch::new_empty(stream.schema()));
        }
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&table)
            .map_err(LakeError::from)?;
        writeln!(out, "{text}")?;
        match rows > TABLE_ROWS {
            true => writeln!(
                out,
                "{rows} rows, the first {TABLE_ROWS} shown (--format csv or json prints them all)"
            )?,
            false => writeln!(out, "{rows} row(s)")?,
        }
    }
    Ok(rows)
}

fn cell(batch: &RecordBatch, column: usize, row: usize) -> Result<ScalarValue, LakeError> {
    ScalarValue::try_from_array(batch.column(column), row).map_err(LakeError::from)
}

fn write_json(batch: &RecordBatch, out: &mut dyn Write) -> Result<(), QueryError> {
    let schema = batch.schema();
    for row in 0..batch.num_rows() {
        let mut object = serde_json::Map::new();
        for (i, field) in schema.fields().iter().enumerate() {
            object.insert(
                field.name().clone(),
                crate::alert::ocsf::scalar_to_json(&cell(batch, i, row)?),
            );
        }
        writeln!(out, "{}", serde_json::Value::Object(object))?;
    }
    Ok(())
}

/// RFC 4180 CSV: a field with a comma, quote or line break is quoted, quotes doubled.
fn write_csv(batch: &RecordBatch, header: bool, out: &mut dyn Write) -> Result<(), QueryError> {
    fn field(text: &str) -> String {
        if text.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", text.replace('"', "\"\""))
        } else {
            text.to_string()
        }
    }
    let schema = batch.schema();
    if header {
        let names: Vec<String> = schema.fields().iter().map(|f| field(f.name())).collect();
        writeln!(out, "{}", names.join(","))?;
    }
    for row in 0..batch.num_rows() {
        let mut values = Vec::with_capacity(schema.fields().len());
        for i in 0..schema.fields().len() {
            let value = cell(batch, i, row)?;
            values.push(if value.is_null() {
                String::new()
            } else {
                match crate::alert::ocsf::scalar_to_json(&value) {
                    serde_json::Value::String(s) => field(&s),
                    other => field(&other.to_string()),
                }
            });
        }
        writeln!(out, "{}", values.join(","))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn batch() -> RecordBatch {
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("host", DataType::Utf8, true),
                Field::new("n", DataType::Int64, true),
            ])),
            vec![
                Arc::new(StringArray::from(vec![Some("WS-1"), Some("a,\"b\""), None])),
                Arc::new(Int64Array::from(vec![Some(1), None, Some(3)])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn csv_quotes_what_needs_quoting_and_leaves_nulls_empty() {
        let mut out = Vec::new();
        write_csv(&batch(), true, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "host,n\nWS-1,1\n\"a,\"\"b\"\"\",\n,3\n"
        );
    }

    #[test]
    fn json_lines_have_one_object_per_row() {
        let mut out = Vec::new();
        write_json(&batch(), &mut out).unwrap();
        let lines: Vec<serde_json::Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], serde_json::json!({"host": "WS-1", "n": 1}));
        assert_eq!(lines[2]["host"], serde_json::Value::Null);
    }
}
