//! JSON lines from standard input, until it closes.
//!
//! A pipe on standard input is enlarged to 1 MiB where Linux allows (see [`super::pipe`]).

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use super::lines::{LineSplitter, Read};
use super::{Input, InputKind, RecordSender, Source, SourceError};

pub struct StdinSource {
    max_record_bytes: usize,
}

impl StdinSource {
    pub fn new(max_record_bytes: usize) -> StdinSource {
        StdinSource { max_record_bytes }
    }
}

impl Source for StdinSource {
    fn run(
        self: Box<Self>,
        tx: RecordSender,
        shutdown: CancellationToken,
    ) -> BoxFuture<'static, Result<(), SourceError>> {
        Box::pin(async move {
            super::pipe::enlarge(
                std::os::unix::io::AsRawFd::as_raw_fd(&std::io::stdin()),
                "stdin",
            );
            let mut splitter =
                LineSplitter::new(Input::new("stdin", InputKind::Stdin), self.max_record_bytes)
                    .eager();
            let mut reader = tokio::io::stdin();
            loop {
                let read = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    read = splitter.read(&mut reader, &tx) => read,
                };
                match read.map_err(|source| SourceError::Io {
                    path: "stdin".into(),
                    source,
                })? {
                    Read::Data => {}
                    Read::End => break,
                    Read::Closed => return Ok(()),
                }
            }
            splitter.finish(&tx).await;
            Ok(())
        })
    }
}
