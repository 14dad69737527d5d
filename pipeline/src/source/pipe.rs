//! Pipes read as sources (standard input, a named pipe or `<(zcat …)` given as a file): enlarged so
//! that each read brings as much as a file read does.
//!
//! With Linux's default 64 KiB pipe, the reader woke for a sixteenth of what a file read brings, and
//! `zcat events.gz | ghosthunt run` ran about 1.4× as long as reading the file (benches/README.md).

/// Bytes a pipe is asked to hold.
#[cfg(target_os = "linux")]
const PIPE_BYTES: libc::c_int = 1 << 20;

/// Enlarges the pipe open at `fd`, if it is one, to [`PIPE_BYTES`] or the system's limit for pipes
/// (`fs.pipe-max-size`) if that is lower; a file or a terminal is left as it is. `name` says which
/// input it is, for the debug line when the size stays.
#[cfg(target_os = "linux")]
pub(super) fn enlarge(fd: std::os::unix::io::RawFd, name: &str) {
    use std::os::unix::fs::FileTypeExt as _;
    let is_pipe =
        std::fs::metadata(format!("/proc/self/fd/{fd}")).is_ok_and(|m| m.file_type().is_fifo());
    if !is_pipe {
        return;
    }
    // SAFETY: F_SETPIPE_SZ on a descriptor this process holds open takes an int and touches no memory
    // of ours.
    let set = |bytes: libc::c_int| unsafe { libc::fcntl(fd, libc::F_SETPIPE_SZ, bytes) } >= 0;
    if set(PIPE_BYTES) {
        return;
    }
    // Above the limit for this user: the limit, if it is larger than the pipe already is.
    let limit = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
        .ok()
        .and_then(|s| s.trim().parse::<libc::c_int>().ok());
    if !limit.is_some_and(|limit| limit < PIPE_BYTES && set(limit)) {
        tracing::debug!(input = name, error = %std::io::Error::last_os_error(), "The pipe keeps its size.");
    }
}

#[cfg(not(target_os = "linux"))]
pub(super) fn enlarge(_fd: std::os::unix::io::RawFd, _name: &str) {}

/// Whether `path` names a stream rather than a file: a named pipe (`mkfifo`, `<(…)`, `/dev/stdin` on
/// a pipe) or a character device. Read once to its end, with no size to show progress against.
pub fn is_stream(path: &std::path::Path) -> bool {
    use std::os::unix::fs::FileTypeExt as _;
    std::fs::metadata(path).is_ok_and(|m| {
        let kind = m.file_type();
        kind.is_fifo() || kind.is_char_device()
    })
}
