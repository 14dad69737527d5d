//! JSON lines from standard input, until it closes.
//!
//! A pipe on standard input is enlarged to 1 MiB where Linux allows (`fs.pipe-max-size`, 1 MiB by
//! default): with the default 64 KiB, each read woke the reader for a sixteenth of what a file read
//! brings, and `zcat events.gz | ghosthunt run` ran about 1.4× as long as reading the file.

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
            enlarge_pipe();
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

/// Bytes a pipe on standard input is asked to hold.
#[cfg(target_os = "linux")]
const PIPE_BYTES: libc::c_int = 1 << 20;

/// Enlarges the pipe on standard input, if it is one, to [`PIPE_BYTES`] or the system's limit for pipes
/// (`fs.pipe-max-size`) if that is lower; a file or a terminal is left as it is.
#[cfg(target_os = "linux")]
fn enlarge_pipe() {
    use std::os::unix::fs::FileTypeExt as _;
    use std::os::unix::io::AsRawFd as _;
    let fd = std::io::stdin().as_raw_fd();
    let is_pipe =
        std::fs::metadata(format!("/proc/self/fd/{fd}")).is_ok_and(|m| m.file_type().is_fifo());
    if !is_pipe {
        return;
    }
    // SAFETY: F_SETPIPE_SZ on our own standard input takes an int and touches no memory of ours.
    let set = |bytes: libc::c_int| unsafe { libc::fcntl(fd, libc::F_SETPIPE_SZ, bytes) } >= 0;
    if set(PIPE_BYTES) {
        return;
    }
    // Above the limit for this user: the limit, if it is larger than the pipe already is.
    let limit = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
        .ok()
        .and_then(|s| s.trim().parse::<libc::c_int>().ok());
    if !limit.is_some_and(|limit| limit < PIPE_BYTES && set(limit)) {
        tracing::debug!(error = %std::io::Error::last_os_error(), "Standard input's pipe keeps its size.");
    }
}

#[cfg(not(target_os = "linux"))]
fn enlarge_pipe() {}
