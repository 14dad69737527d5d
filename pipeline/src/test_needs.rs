//! What a test needs from outside the repository — the shared corpus, an installed program — and what
//! happens when it is missing: the test returns early (it passes without checking anything) and, when
//! the test binary exits, one line on stderr starts with `SKIPPED` and names the tests and what they
//! missed, and how to get it. With `GHOSTHUNT_REQUIRE_ALL=1` (`.ci/run` sets it) nothing may be skipped:
//! a missing piece fails the test instead.
//!
//! The library's unit tests use this file as `crate::test_needs`; the integration tests include the same
//! file (`tests/common/mod.rs`, `common::needs`). It uses `std` only.
//!
//! The line is written when the process exits (`atexit`), straight to stderr: the test harness captures a
//! passing test's `eprintln!`, not what is written to `std::io::stderr()`, and at exit it has printed its
//! own summary, so the line comes right below `test result: ok …`.
#![allow(dead_code)] // each user (the library's tests, each integration test binary) takes what it needs

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once, PoisonError};

/// Set to `1` (anything but empty or `0`), a missing piece fails the test instead of skipping it.
pub const REQUIRE_ALL: &str = "GHOSTHUNT_REQUIRE_ALL";

/// The shared corpus when it holds every path of `needs` (relative to it: files or folders), else
/// `None` (the test returns) or, with `GHOSTHUNT_REQUIRE_ALL=1`, a panic.
///
/// The corpus is `GHOSTHUNT_CORPUS` when set, else `../shared/corpus` beside the checkout. A set
/// `GHOSTHUNT_CORPUS` naming no folder means the corpus is missing: there is no fallback to the default.
pub fn corpus<P: AsRef<Path>>(needs: impl IntoIterator<Item = P>) -> Option<PathBuf> {
    let (dir, named_by) = match std::env::var_os("GHOSTHUNT_CORPUS").filter(|v| !v.is_empty()) {
        Some(dir) => (PathBuf::from(dir), "GHOSTHUNT_CORPUS"),
        None => (
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"),
            "the default, ../shared/corpus beside the checkout",
        ),
    };
    if !dir.is_dir() {
        return skip(
            format!("the shared corpus is not at {} ({named_by})", dir.display()),
            "run scripts/fetch-corpus, or set GHOSTHUNT_CORPUS to the corpus folder",
        );
    }
    let missing: Vec<String> = needs
        .into_iter()
        .filter(|p| !dir.join(p).exists())
        .map(|p| p.as_ref().display().to_string())
        .collect();
    if !missing.is_empty() {
        return skip(
            format!(
                "the corpus at {} lacks {}",
                dir.display(),
                missing.join(", ")
            ),
            "scripts/fetch-corpus fetches the published sources, not the files derived from them: EVTX \
             rendered to JSON lines and the reference engine's CSVs come with the shared corpus only",
        );
    }
    Some(dir)
}

/// A program: `$env` (a path) when set, else `fallback` when it is a file, else `name` on PATH. The
/// error says where it was looked for.
pub fn locate(env: &str, name: &str, fallback: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os(env).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("`{name}` is not at {env}={}", p.display()))
        };
    }
    if let Some(p) = fallback.filter(|p| p.is_file()) {
        return Ok(p);
    }
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
        .ok_or_else(|| format!("`{name}` is not installed (${env} unset, not on PATH)"))
}

/// `locate`, and when the program is missing: `None` (the test returns) with `install` (how to get it)
/// in the report, or a panic with `GHOSTHUNT_REQUIRE_ALL=1`.
pub fn tool(env: &str, name: &str, fallback: Option<PathBuf>, install: &str) -> Option<PathBuf> {
    match locate(env, name, fallback) {
        Ok(p) => Some(p),
        Err(why) => skip(why, install),
    }
}

/// Something the running test needs is missing (`what`, and `how` to get it): panics with
/// `GHOSTHUNT_REQUIRE_ALL=1`, else records the test as skipped (reported at exit) and returns `None`.
pub fn skip<T>(what: String, how: &str) -> Option<T> {
    if std::env::var(REQUIRE_ALL).is_ok_and(|v| !v.is_empty() && v != "0") {
        panic!("{what}: {how} ({REQUIRE_ALL}=1: nothing may be skipped)");
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("(unnamed thread)")
        .to_string();
    SKIPPED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push((test, what, how.to_string()));
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // SAFETY: `atexit` is the C library's; `report` takes no arguments, returns nothing and does not
        // unwind.
        unsafe { atexit(report) };
    });
    None
}

/// (test, what it missed, how to get it), in the order the tests skipped.
static SKIPPED: Mutex<Vec<(String, String, String)>> = Mutex::new(Vec::new());

unsafe extern "C" {
    fn atexit(f: extern "C" fn()) -> std::ffi::c_int;
}

/// Writes the one line that says which tests of this binary were skipped and why.
extern "C" fn report() {
    let skipped = SKIPPED.lock().unwrap_or_else(PoisonError::into_inner);
    let (mut tests, mut what, mut how): (Vec<&str>, Vec<&str>, Vec<&str>) = Default::default();
    for (t, w, h) in skipped.iter() {
        for (list, item) in [(&mut tests, t), (&mut what, w), (&mut how, h)] {
            if !list.contains(&item.as_str()) {
                list.push(item.as_str());
            }
        }
    }
    let line = format!(
        "SKIPPED {} test{} of {} (they passed without checking anything): {} — because {}: {}. \
         {REQUIRE_ALL}=1 makes this a failure.\n",
        tests.len(),
        if tests.len() == 1 { "" } else { "s" },
        env!("CARGO_CRATE_NAME"),
        tests.join(", "),
        what.join("; "),
        how.join("; ")
    );
    let _ = std::io::stderr().write_all(line.as_bytes());
}
