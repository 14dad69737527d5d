//! Finding hunts: the set built into the binary and the configured directories (`*.sql`, and `*.kql`
//! translated by [`crate::kql::hunt_file`]).
//!
//! A hunt in a directory with the same id as a built-in one replaces it. A file that cannot be read or
//! parsed is reported with its path and line; the others still load.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use include_dir::{Dir, include_dir};

use crate::hunt::{Hunt, HuntError, Origin};

/// The bundled hunts (`sql/hunts/*.sql` of the source tree), compiled in so that `ghosthunt run` works
/// from any directory.
static BUILTIN: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../sql/hunts");
/// The bundled incident rules (`sql/incidents/*.sql`: hunts over the alerts).
static BUILTIN_INCIDENTS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../sql/incidents");

/// Hunts found, by id, and the files refused.
#[derive(Debug, Default)]
pub struct Loaded {
    pub hunts: BTreeMap<String, Hunt>,
    pub errors: Vec<HuntError>,
}

/// The built-in hunts.
pub fn builtin() -> Loaded {
    builtin_from(&BUILTIN)
}

/// The hunts of a directory compiled in.
fn builtin_from(dir: &Dir<'static>) -> Loaded {
    let mut loaded = Loaded::default();
    for file in dir.files() {
        let Some(name) = file.path().file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(stem) = name
            .strip_suffix(".sql")
            .or_else(|| name.strip_suffix(".kql"))
        else {
            continue;
        };
        let text = file.contents_utf8().unwrap_or_default();
        match parse_text(text, stem, name.ends_with(".kql"), Origin::Builtin(name)) {
            Ok(h) => {
                loaded.hunts.insert(h.id.clone(), h);
            }
            Err(e) => loaded.errors.push(e),
        }
    }
    loaded
}

/// Parses a hunt file's text: SQL, or KQL translated to the SQL hunt it stands for.
fn parse_text(text: &str, stem: &str, kql: bool, origin: Origin) -> Result<Hunt, HuntError> {
    if kql {
        let sql = crate::kql::hunt_file::sql_hunt_text(text, &origin.to_string())?;
        Hunt::parse(&sql, stem, origin)
    } else {
        Hunt::parse(text, stem, origin)
    }
}

/// `*.sql` and `*.kql` files of a directory, sorted by name.
pub fn hunt_files(dir: &Path) -> Result<Vec<PathBuf>, HuntError> {
    let entries = std::fs::read_dir(dir).map_err(|e| HuntError {
        origin: dir.display().to_string(),
        line: 0,
        reason: format!("cannot read the hunt directory: {e}"),
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .is_some_and(|x| x.eq_ignore_ascii_case("sql") || x.eq_ignore_ascii_case("kql"))
                && p.is_file()
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Reads and parses one hunt file.
pub fn read_hunt(path: &Path) -> Result<Hunt, HuntError> {
    let text = std::fs::read_to_string(path).map_err(|e| HuntError {
        origin: path.display().to_string(),
        line: 0,
        reason: format!("cannot read: {e}"),
    })?;
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let kql = path
        .extension()
        .is_some_and(|x| x.eq_ignore_ascii_case("kql"));
    parse_text(&text, stem, kql, Origin::File(path.to_path_buf()))
}

/// The built-in hunts (if wanted) overlaid by those of `dirs`.
pub fn load(builtin_too: bool, dirs: &[PathBuf]) -> Loaded {
    load_over(builtin_too.then_some(&BUILTIN), dirs)
}

/// The built-in incident rules (if wanted) overlaid by those of `dirs`.
pub fn load_incidents(builtin_too: bool, dirs: &[PathBuf]) -> Loaded {
    load_over(builtin_too.then_some(&BUILTIN_INCIDENTS), dirs)
}

fn load_over(builtin: Option<&Dir<'static>>, dirs: &[PathBuf]) -> Loaded {
    let mut loaded = builtin.map_or_else(Loaded::default, builtin_from);
    for dir in dirs {
        let files = match hunt_files(dir) {
            Ok(f) => f,
            Err(e) => {
                loaded.errors.push(e);
                continue;
            }
        };
        for path in files {
            match read_hunt(&path) {
                Ok(h) => {
                    let origin = h.origin.to_string();
                    if let Some(old) = loaded.hunts.insert(h.id.clone(), h) {
                        // A directory's hunt replaces a built-in one of its id on purpose; two files
                        // of one id are a mistake that would otherwise go unseen.
                        match old.origin {
                            crate::hunt::Origin::Builtin(_) => {
                                tracing::info!(hunt = %old.id, by = %origin, "Hunt replaces the built-in one of its id.")
                            }
                            crate::hunt::Origin::File(_) => {
                                tracing::warn!(hunt = %old.id, replaced = %old.origin, by = %origin, "Two hunt files have this id: the later one replaces the earlier.")
                            }
                        }
                    }
                }
                Err(e) => loaded.errors.push(e),
            }
        }
    }
    loaded
}
