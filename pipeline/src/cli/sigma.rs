//! `ghosthunt sigma convert|check|bench`: a rule file as SQL, a rule set's compile report, a rule set timed
//! on events. Each returns a report for `main` to print.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Instant;

use super::CliError;
use crate::app;
use crate::settings::Settings;
use crate::sigma::error::RefusalKind;
use crate::sigma::load::SigmaRefusal;
use crate::sigma::mapping::Narrowing;

/// What `sigma convert` made of the files: each rule's SQL, or why it was refused.
pub struct ConvertReport {
    pub converted: Vec<Result<String, SigmaRefusal>>,
}

impl ConvertReport {
    pub fn ok(&self) -> bool {
        self.converted.iter().all(Result::is_ok)
    }
}

/// The SQL each rule of the files becomes (logsource condition and field mapping applied).
pub fn convert(settings: &Settings, files: &[PathBuf]) -> Result<ConvertReport, CliError> {
    let schema = app::schema(settings)?;
    let mapping = app::sigma_mapping(settings)?;
    let mut converted = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).map_err(|source| CliError::Read {
            path: file.clone(),
            source,
        })?;
        converted.extend(crate::sigma::convert(
            &text, file, &mapping, settings, &schema,
        ));
    }
    Ok(ConvertReport { converted })
}

/// What `sigma check` found: counts, and every refusal with its kind.
pub struct CheckReport {
    pub files: usize,
    pub rules: usize,
    pub correlations: usize,
    pub columns: usize,
    pub refusals: Vec<SigmaRefusal>,
    /// (rule id, how) for the rules narrowed on a logsource variant that cannot carry fields they read.
    pub narrowed: Vec<(String, Vec<Narrowing>)>,
}

/// Loads and compiles the rules of `dirs` (default: `sigma.directories`).
pub fn check(settings: &Settings, dirs: Vec<PathBuf>) -> Result<CheckReport, CliError> {
    let mut settings = settings.clone();
    if !dirs.is_empty() {
        // Paths given here are named as given, not as the setting's.
        for dir in &dirs {
            if let Err(source) = std::fs::metadata(dir) {
                return Err(CliError::Read {
                    path: dir.clone(),
                    source,
                });
            }
        }
        settings.sigma.directories = dirs;
    }
    if settings.sigma.directories.is_empty() {
        return Err(CliError::NoRuleDirectory);
    }
    let setup = app::sigma(&settings, app::schema(&settings)?)?;
    let engine = setup.engine.as_ref().ok_or(CliError::NoRuleDirectory)?;
    Ok(CheckReport {
        files: setup.files,
        rules: engine.rule_count(),
        correlations: engine.hunts().count() - engine.rule_count(),
        columns: setup.schema.columns.len(),
        refusals: setup.refusals,
        narrowed: setup.narrowed,
    })
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in &self.refusals {
            writeln!(f, "refused: {r}")?;
        }
        let mut kinds: BTreeMap<RefusalKind, usize> = BTreeMap::new();
        for r in &self.refusals {
            *kinds.entry(r.kind()).or_default() += 1;
        }
        writeln!(
            f,
            "{} file(s): {} detection rule(s) compiled, {} correlation(s), {} refused; {} columns",
            self.files,
            self.rules,
            self.correlations,
            self.refusals.len(),
            self.columns
        )?;
        for (kind, n) in kinds {
            writeln!(f, "  refused {n:>5}  {kind} ({})", kind.fault())?;
        }
        let narrowings = || self.narrowed.iter().flat_map(|(_, n)| n);
        if self.narrowed.is_empty() {
            return Ok(());
        }
        let mut fields: BTreeMap<&str, usize> = BTreeMap::new();
        for n in narrowings() {
            for field in &n.fields {
                *fields.entry(field).or_default() += 1;
            }
        }
        let mut fields: Vec<_> = fields.into_iter().collect();
        fields.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        writeln!(
            f,
            "{} rule(s) read fields a variant of their logsource never carries (tests on them are unknown \
             there: the rule fires there only if it would whatever they held): {} read one under `not` (a \
             filter), {} cannot match on that variant at all",
            self.narrowed.len(),
            narrowings().filter(|n| n.in_filter).count(),
            narrowings().filter(|n| n.dropped).count(),
        )?;
        let top: Vec<String> = fields
            .iter()
            .take(8)
            .map(|(field, n)| format!("{field} {n}"))
            .collect();
        writeln!(f, "  fields: {}", top.join(", "))
    }
}

/// What `sigma bench` measured: the load, then the timing report.
pub struct BenchReport {
    pub rules: usize,
    pub refused: usize,
    pub columns: usize,
    pub load_seconds: f64,
    pub timing: super::sigma_bench::BenchReport,
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "rules: {} compiled, {} refused, {} columns; loaded in {:.1} s",
            self.rules, self.refused, self.columns, self.load_seconds
        )?;
        write!(f, "{}", self.timing)
    }
}

/// Times the rule set (`rules`, default `sigma.directories`) on the events of `files`.
pub fn bench(
    settings: &Settings,
    files: &[PathBuf],
    rules: Vec<PathBuf>,
    rounds: usize,
) -> Result<BenchReport, CliError> {
    let mut settings = settings.clone();
    if !rules.is_empty() {
        settings.sigma.directories = rules;
    }
    if settings.sigma.directories.is_empty() {
        return Err(CliError::NoRuleDirectory);
    }
    let started = Instant::now();
    let setup = app::sigma(&settings, app::schema(&settings)?)?;
    let engine = setup.engine.as_ref().ok_or(CliError::NoRuleDirectory)?;
    let load_seconds = started.elapsed().as_secs_f64();
    let lines = super::sigma_bench::read_lines(files).map_err(|source| CliError::Read {
        path: files.first().cloned().unwrap_or_default(),
        source,
    })?;
    let timing = super::sigma_bench::run(
        engine,
        &setup.schema,
        lines,
        settings.decode.batch_size,
        rounds,
    );
    Ok(BenchReport {
        rules: engine.rule_count(),
        refused: setup.refusals.len(),
        columns: setup.schema.columns.len(),
        load_seconds,
        timing,
    })
}
