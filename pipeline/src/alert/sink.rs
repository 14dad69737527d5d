//! Where alerts and dead letters go: stdout, stderr, a JSON-lines file, or memory (tests, `ghosthunt test`).
//!
//! A sink's `deliver` resolves only when the records are acknowledged — written and flushed for files —
//! because the pipeline acknowledges the source only after that (design.md, invariant 1).

use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use futures::future::BoxFuture;
use serde_json::json;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::ocsf::Alert;
use crate::decode::DeadLetter;
use crate::settings::OutputSettings;

/// A sink that could not acknowledge: the pipeline stops rather than acknowledge unsent records.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("writing to {target}: {source}")]
    Io {
        target: String,
        #[source]
        source: std::io::Error,
    },
    /// The output is set up wrongly (the operator's to fix; retrying does not help).
    #[error("{0}")]
    Config(String),
    #[error("kafka topic {topic}: {failure}")]
    Kafka {
        topic: String,
        #[source]
        failure: crate::kafka::KafkaFailure,
    },
}

/// Receives alerts.
pub trait AlertSink: Send {
    /// Resolves once every alert is acknowledged.
    fn deliver<'a>(&'a mut self, alerts: &'a [Alert]) -> BoxFuture<'a, Result<(), SinkError>>;
}

/// Receives dead letters.
pub trait DeadLetterSink: Send {
    /// Resolves once every dead letter is acknowledged.
    fn deliver<'a>(&'a mut self, letters: &'a [DeadLetter])
    -> BoxFuture<'a, Result<(), SinkError>>;
}

/// The JSON line of a dead letter: reason, where it came from, and the original bytes (as text when they
/// are UTF-8, else base64).
pub fn dead_letter_json(letter: &DeadLetter) -> String {
    let mut v = json!({
        "reason": letter.reason.as_str(),
        "detail": letter.detail,
        "input": letter.input.name,
        "offset": letter.offset,
    });
    if let Some(t) = letter.source_timestamp {
        v["source_timestamp"] = json!(t);
    }
    match std::str::from_utf8(&letter.bytes) {
        Ok(text) => v["record"] = json!(text),
        Err(_) => {
            v["record_base64"] =
                json!(base64::engine::general_purpose::STANDARD.encode(&letter.bytes))
        }
    }
    v.to_string()
}

/// Writes lines to stdout, stderr or a file, flushing after each delivery.
pub struct LineWriter {
    target: String,
    out: Box<dyn AsyncWrite + Send + Unpin>,
    buffer: Vec<u8>,
}

impl LineWriter {
    pub async fn open(output: &OutputSettings) -> Result<LineWriter, SinkError> {
        let (target, out): (String, Box<dyn AsyncWrite + Send + Unpin>) = match output {
            OutputSettings::Stdout => ("stdout".into(), Box::new(tokio::io::stdout())),
            OutputSettings::Stderr => ("stderr".into(), Box::new(tokio::io::stderr())),
            OutputSettings::File(path) => (
                path.display().to_string(),
                Box::new(open_append(path).await?),
            ),
            OutputSettings::Kafka { topic } => {
                return Err(SinkError::Config(format!(
                    "kafka topic {topic}: a Kafka topic is not a line output"
                )));
            }
        };
        Ok(LineWriter {
            target,
            out,
            buffer: Vec::new(),
        })
    }

    async fn write_lines(&mut self, lines: impl Iterator<Item = String>) -> Result<(), SinkError> {
        self.buffer.clear();
        for line in lines {
            self.buffer.extend_from_slice(line.as_bytes());
            self.buffer.push(b'\n');
        }
        if self.buffer.is_empty() {
            return Ok(());
        }
        let io = |source| SinkError::Io {
            target: self.target.clone(),
            source,
        };
        self.out.write_all(&self.buffer).await.map_err(io)?;
        self.out.flush().await.map_err(|source| SinkError::Io {
            target: self.target.clone(),
            source,
        })
    }
}

async fn open_append(path: &Path) -> Result<tokio::fs::File, SinkError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && let Err(source) = tokio::fs::create_dir_all(parent).await
    {
        // A file where a directory of the path should be: the operator's to fix.
        return Err(match parent.ancestors().find(|a| a.is_file()) {
            Some(file) => SinkError::Config(format!(
                "{}: cannot create its directory {}: {} is a file",
                path.display(),
                parent.display(),
                file.display()
            )),
            None => SinkError::Io {
                target: parent.display().to_string(),
                source,
            },
        });
    }
    tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await
        .map_err(|source| SinkError::Io {
            target: path.display().to_string(),
            source,
        })
}

/// Alerts and incidents on stdout for a person (see [`super::human`]), coloured on a terminal unless
/// `NO_COLOR` is set.
pub struct HumanWriter {
    lines: LineWriter,
    color: bool,
}

impl HumanWriter {
    pub async fn stdout() -> Result<HumanWriter, SinkError> {
        use std::io::IsTerminal;
        Ok(HumanWriter {
            lines: LineWriter::open(&OutputSettings::Stdout).await?,
            color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        })
    }
}

impl AlertSink for HumanWriter {
    fn deliver<'a>(&'a mut self, alerts: &'a [Alert]) -> BoxFuture<'a, Result<(), SinkError>> {
        let color = self.color;
        Box::pin(
            self.lines
                .write_lines(alerts.iter().map(move |a| super::human::render(a, color))),
        )
    }
}

impl AlertSink for LineWriter {
    fn deliver<'a>(&'a mut self, alerts: &'a [Alert]) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(self.write_lines(alerts.iter().map(|a| a.json.clone())))
    }
}

impl DeadLetterSink for LineWriter {
    fn deliver<'a>(
        &'a mut self,
        letters: &'a [DeadLetter],
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(self.write_lines(letters.iter().map(dead_letter_json)))
    }
}

/// Keeps everything in memory; clones share the same list.
#[derive(Clone)]
pub struct MemorySink<T>(pub Arc<Mutex<Vec<T>>>);

impl<T> Default for MemorySink<T> {
    fn default() -> Self {
        MemorySink(Arc::new(Mutex::new(Vec::new())))
    }
}

impl<T: Clone> MemorySink<T> {
    pub fn take(&self) -> Vec<T> {
        std::mem::take(&mut *self.0.lock().expect("memory sink lock"))
    }

    pub fn snapshot(&self) -> Vec<T> {
        self.0.lock().expect("memory sink lock").clone()
    }
}

impl AlertSink for MemorySink<Alert> {
    fn deliver<'a>(&'a mut self, alerts: &'a [Alert]) -> BoxFuture<'a, Result<(), SinkError>> {
        self.0
            .lock()
            .expect("memory sink lock")
            .extend_from_slice(alerts);
        Box::pin(async { Ok(()) })
    }
}

impl DeadLetterSink for MemorySink<DeadLetter> {
    fn deliver<'a>(
        &'a mut self,
        letters: &'a [DeadLetter],
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        self.0
            .lock()
            .expect("memory sink lock")
            .extend_from_slice(letters);
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_file_where_the_output_directory_should_be_is_named_as_a_setting_to_fix() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("dead-letters");
        std::fs::write(&file, "").unwrap();
        let path = file.join("day").join("dl.jsonl");
        let err = open_append(&path).await.unwrap_err();
        assert!(matches!(err, SinkError::Config(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "{}: cannot create its directory {}: {} is a file",
                path.display(),
                file.join("day").display(),
                file.display()
            )
        );
    }
}
