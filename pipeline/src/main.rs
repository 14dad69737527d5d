//! The `ghosthunt` command line: thin, everything lives in the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use ghosthunt::app::{self, Handles};
use ghosthunt::cli::{self, bench};
use ghosthunt::settings::{Settings, SourceSettings};
use ghosthunt::testing;

/// The allocator, for Rust and for the C libraries linked in (librdkafka, zstd) alike: jemalloc. glibc's
/// malloc either lets the heap fragment (its mmap threshold grows with every large block freed, and the
/// Sigma path's peak RSS doubled) or, with the threshold fixed, maps every large block afresh and faults
/// each page in: read buffers, the lake writer's pages and librdkafka's fetch responses. jemalloc reuses
/// freed extents for a while instead. Measured against glibc with the threshold fixed (`benches/README.md`,
/// "The allocator"): the Kafka path's CPU per event −14 %, the Sigma path's time −16 to −23 % at 332–340
/// MiB of peak RSS against 323–333; only the lake sink ran 1–6 % slower (its growing Parquet chunks are
/// copied, not remapped), with jemalloc's default `oversize_threshold` (below).
#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read when it starts (before `main`); `MALLOC_CONF` in the environment overrides them.
/// One arena for all threads. Its default is four per CPU: Debian's jemalloc with its defaults, preloaded
/// under the glibc build, held 475–483 MiB at the Sigma path's peak; this build held 353–367 with one arena
/// per CPU and 335–342 with one, no slower (`benches/README.md`, "The allocator"). Threads still allocate
/// small blocks from their own caches; only large ones (column buffers, a few thousand a second) take the
/// arena's lock. Freed pages are given back after about a second (`dirty_decay_ms`, 10 s by default; the
/// time passes as the program allocates: there is no background thread), straight away rather than
/// kept as lazily freed pages first (`muzzy_decay_ms` is 0 by default). Blocks under 32 MiB come from
/// that arena too (`oversize_threshold`, 8 MiB by default): larger ones come from an arena that gives
/// their pages back at once, so blocks of 8–32 MiB (the Sigma path's values column, the lake writer's
/// growing Parquet column chunks) were faulted in afresh for every batch. Measured: Sigma −10 % wall
/// time (−16 % over ten times the backlog), the lake sink +4 %, the retro-hunt −19 % on the medians, for
/// 17–27 MiB more peak RSS on the Sigma path (46 over ten times the backlog; `benches/README.md`,
/// "Blocks up to 32 MiB kept"). Those pages, too, go back only as the program allocates: a process that
/// falls quiet after a burst keeps them. jemalloc declares this symbol weak for the program to define.
#[cfg(target_os = "linux")]
#[unsafe(no_mangle)]
pub static malloc_conf: Option<&'static std::ffi::c_char> =
    // SAFETY: the pointer is to a C string literal, valid for the whole program.
    Some(unsafe { &*c"narenas:1,dirty_decay_ms:1000,oversize_threshold:33554432".as_ptr() });

/// Continuous threat hunts over security event streams.
///
/// With no configuration, `ghosthunt run` hunts over its built-in event generator and prints alerts
/// (OCSF JSON) to stdout; metrics are on http://127.0.0.1:9464/metrics.
#[derive(Parser)]
#[command(version, about, long_about)]
struct Cli {
    /// Configuration file (TOML), layered over the embedded defaults and under GHOSTHUNT__SECTION__KEY
    /// environment variables.
    #[arg(long, short, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the pipeline until the source ends or SIGINT/SIGTERM (then close windows, flush, acknowledge).
    Run {
        /// How alerts and incidents written to stdout look: human (one line per alert, a block per
        /// incident, severity in colour) or json (OCSF, one object per line). Default: human when stdout is
        /// a terminal, else json. Files and Kafka always get JSON.
        #[arg(long, value_enum, value_name = "FORMAT")]
        format: Option<OutputArg>,
    },
    /// Check the configuration and plan every hunt; exits non-zero with the reasons if anything is wrong.
    Validate,
    /// List the hunts that would run, with their metadata.
    Hunts {
        /// Print every field, one hunt after the other, instead of a table.
        #[arg(long)]
        long: bool,
    },
    /// Run hunts on their sample events and compare with their expected rows (detection as code).
    ///
    /// For each hunt DIR/hunts/<id>.sql (or <id>.kql) with a folder DIR/tests/<id>/ holding
    /// events.jsonl and expected.jsonl. An incident rule (FROM alerts) takes rows of the alerts table as its events.
    Test {
        /// Hunt directories (default: the configured hunts.directories and incidents.directories, else
        /// ./sql/hunts and ./sql/incidents).
        #[arg(value_name = "HUNTS_DIR")]
        dirs: Vec<PathBuf>,
    },
    /// Sigma rules: convert them to SQL, or check which compile.
    Sigma {
        #[command(subcommand)]
        command: SigmaCommand,
    },
    /// KQL hunts: convert a .kql file to the SQL hunt it becomes, or check which queries compile.
    Kql {
        #[command(subcommand)]
        command: KqlCommand,
    },
    /// Write events into a Kafka topic (the [kafka] settings): the built-in generator's, or JSON-lines
    /// files', keyed by host.
    Produce {
        /// Topic to write to.
        #[arg(long, default_value = "windows-events")]
        topic: String,
        /// JSON-lines files or globs to send instead of generated events.
        #[arg(long = "file", value_name = "PATH")]
        files: Vec<String>,
        /// Events per second, at least 1 (default: source.generator.rate for the generator; unlimited
        /// for files).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        rate: Option<u64>,
        /// Stop after this many events (default: the generator runs until interrupted; files to their end).
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Retro-hunt: run the configured hunts (SQL, KQL, Sigma) over the lake's events of a time range, in
    /// event-time order, writing alerts to the configured sink exactly as the live pipeline would (same
    /// ids for the same events). Progress lines go to stderr.
    Hunt {
        /// Start of the range (inclusive): RFC 3339 (2026-11-01T00:00:00Z) or a date (midnight UTC).
        #[arg(long)]
        from: Option<String>,
        /// End of the range (exclusive).
        #[arg(long)]
        to: Option<String>,
        /// Only these hunts (ids; repeat): SQL and KQL hunts, Sigma rules and correlations by their id
        /// (a correlation brings the rules it reads). `sigma` keeps the whole Sigma rule set.
        #[arg(long = "hunt", value_name = "ID")]
        hunts: Vec<String>,
        /// Where the history is: the lake (lake.path), JSON-lines files (--file), or the Kafka source's
        /// topics (source.kind = kafka), read from the first record stamped at or after --from to their
        /// end when the hunt starts (nothing committed).
        #[arg(long, value_enum, default_value = "lake")]
        source: HuntSourceArg,
        /// JSON-lines files or globs for `--source files`, read once: at once, in step by event time (a file per host is fine).
        #[arg(long = "file", value_name = "PATH")]
        files: Vec<String>,
        /// How alerts and incidents on stdout look (see `run --format`).
        #[arg(long, value_enum, value_name = "FORMAT")]
        format: Option<OutputArg>,
    },
    /// Ad-hoc query over the lake: one read-only SELECT over `events` (the range's events, the schema's
    /// columns plus _input, _offset, _raw), `alerts` and the KQL tables; or a KQL query with --kql.
    Query {
        /// The query (SQL, or KQL with --kql).
        query: String,
        /// The query is KQL.
        #[arg(long)]
        kql: bool,
        /// Start of the range `events` holds (inclusive): RFC 3339 (2026-11-01T00:00:00Z) or a date
        /// (midnight UTC); only the dates in the range are read.
        #[arg(long)]
        from: Option<String>,
        /// End of the range (exclusive).
        #[arg(long)]
        to: Option<String>,
        /// table (default on a terminal), csv, or json (one object per line; default otherwise).
        #[arg(long, value_enum)]
        format: Option<FormatArg>,
    },
    /// Lake maintenance.
    Lake {
        #[command(subcommand)]
        command: LakeCommand,
    },
    /// Ask a running ghosthunt's /healthz; exit 0 when it answers healthy (a container HEALTHCHECK
    /// without curl).
    Healthcheck {
        /// The endpoint (default: http://<metrics.listen>/healthz, a wildcard address asked on loopback).
        #[arg(long)]
        url: Option<String>,
        /// Give up after this long (connect, send, and read each).
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
    },
    /// Measure the pipeline: a fixed number of events through the hunts into a null sink. Prints events/s,
    /// MB/s, end-to-end latency p50/p99/max, peak RSS and CPU seconds per million events.
    Bench {
        /// Where events come from.
        #[arg(long, value_enum, default_value = "file")]
        source: BenchSourceArg,
        /// JSON-lines files or globs for `--source file` (default: the seeded generator's events, written to
        /// a temporary file before the timed run).
        #[arg(long = "file", value_name = "PATH")]
        files: Vec<String>,
        /// Events to generate (or, from Kafka, to read).
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Seed of the generated events: the same seed and count give the same bytes.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Events per second of event time in generated events.
        #[arg(long, default_value_t = 2_000)]
        event_rate: u64,
        /// Run this many copies of `--hunt` instead of the configured hunts (the cost per added hunt).
        #[arg(long, value_name = "N")]
        copies: Option<usize>,
        /// The hunt `--copies` copies.
        #[arg(long, default_value = "lsass_memory_access")]
        hunt: String,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
        /// Also write the events and alerts to the configured lake (lake.path): the lake sink's cost.
        #[arg(long)]
        lake_sink: bool,
        /// Write the generated events to this file and keep it (e.g. to send the same events to Kafka
        /// with `produce --file`); `--source file` without `--file` only.
        #[arg(long, value_name = "PATH")]
        keep_events: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum LakeCommand {
    /// Compact each date's small files into larger ones (delta-rs OPTIMIZE).
    Optimize {
        /// Target file size in MiB (at least 1).
        #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..))]
        target_mib: u64,
        /// Rewrite the events of each date held in several files sorted by event time (a Z-order on
        /// the event time): retro-hunts read them faster; the sort takes more time and up to about
        /// 1.5 GB of memory, spilling to the temporary directory beyond.
        #[arg(long)]
        in_time_order: bool,
    },
    /// Delete the dates older than lake.retention (if set), then the files no version newer than
    /// --retain references (delta-rs VACUUM).
    Vacuum {
        /// How long a replaced or removed file stays: a reader of an older version (a query or
        /// retro-hunt running now, time travel) still needs it. "0s" deletes every file the newest
        /// version does not use.
        #[arg(long, default_value = "7d", value_parser = humantime::parse_duration)]
        retain: std::time::Duration,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum HuntSourceArg {
    Lake,
    Files,
    Kafka,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputArg {
    Human,
    Json,
}

/// Whether alerts on stdout are written for a person: asked for, or stdout is a terminal.
fn human_output(format: Option<OutputArg>) -> bool {
    match format {
        Some(f) => f == OutputArg::Human,
        None => std::io::IsTerminal::is_terminal(&std::io::stdout()),
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Table,
    Csv,
    Json,
}

#[derive(Subcommand)]
enum KqlCommand {
    /// Print the SQL a .kql hunt file (or a bare query file) becomes.
    Convert {
        /// A .kql hunt file (`//` header, then the query) or a file holding a bare query.
        #[arg(value_name = "FILE.kql")]
        file: PathBuf,
    },
    /// Parse, translate and plan every query of a folder of .kql files or of a JSON file whose values are
    /// arrays of query strings; print each refused query with its reason, then the counts. Exits
    /// non-zero when a query is refused.
    Check {
        /// A folder of .kql files, or a JSON file of `{"name": ["query", …], …}`.
        #[arg(value_name = "DIR|FILE.json")]
        path: PathBuf,
    },
}

#[derive(Subcommand)]
enum SigmaCommand {
    /// Print the SQL each rule of the files becomes (logsource condition and field mapping applied).
    Convert {
        /// Sigma rule files (YAML; several documents per file are fine).
        #[arg(value_name = "RULE.yml", required = true)]
        files: Vec<PathBuf>,
    },
    /// Load and compile the rules (default: sigma.directories) and report the counts and every refusal.
    Check {
        /// Rule directories (searched recursively for .yml/.yaml) or rule files.
        #[arg(value_name = "DIR")]
        dirs: Vec<PathBuf>,
    },
    /// Time the rule set (sigma.directories, or --rules) on events: decode once, evaluate every batch
    /// with all rules `--rounds` times. Files are JSON lines, plain, .gz, or .zip archives of them.
    Bench {
        /// Event files: JSON lines, plain, .gz, or .zip archives of them.
        #[arg(value_name = "EVENTS", required = true)]
        events: Vec<PathBuf>,
        /// Rule directories (default: sigma.directories).
        #[arg(long = "rules", value_name = "DIR")]
        rules: Vec<PathBuf>,
        /// How many times every batch is evaluated (the report gives each round's time).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum BenchSourceArg {
    /// JSON-lines files (`--file`), or a file of generated events.
    File,
    /// The seeded generator in-process, unpaced.
    Generator,
    /// The configured Kafka source; stops after `--events`.
    Kafka,
    /// The configured lake's events table, all of it (a retro-hunt).
    Lake,
}

/// The configuration, for `command`: `ghosthunt test DIR…` tests the directories it is given, so they
/// are its hunts whatever the configuration names (with `hunts.builtin = false` and no directory
/// configured, the configuration alone has no hunts, and that is an error).
fn load_settings(cli: &Cli) -> Result<Settings, Box<ghosthunt::settings::SettingsError>> {
    let mut raw = ghosthunt::settings::RawConfig::load(cli.config.as_deref(), std::env::vars())?;
    if let Command::Test { dirs } = &cli.command
        && !dirs.is_empty()
    {
        raw.hunts.directories.clone_from(dirs);
    }
    Ok(Settings::validate(raw)?)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match load_settings(&cli) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Command::Healthcheck { url, timeout } = &cli.command {
        // Runs every few seconds in a container: no runtime, no logging, one request.
        return healthcheck(url.clone(), *timeout, &settings);
    }
    init_logging(&settings.log_filter);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // A hunt is translated and planned on these threads too (a hot reload): a KQL query's few
        // hundred `or` tests nest as deep, beyond tokio's 2 MiB (only the stack touched is used).
        .thread_stack_size(16 << 20)
        .build()
        .expect("a tokio runtime starts");
    let result = runtime.block_on(dispatch(cli.command, settings));
    // A blocking call left to time out (a broker that does not answer) does not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(code) => code,
        // The reader of a listing went away (`| head`): it has what it wanted.
        Err(err) if err.is::<StdoutClosed>() => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Every id of `--hunt` names a configured hunt, a Sigma rule or correlation (its id), or `sigma` the
/// configured Sigma rule set: a typo is an error naming it, not a retro-hunt run without it. Returns
/// whether the run needs the Sigma rules.
fn check_hunt_ids(settings: &Settings, ids: &[String]) -> anyhow::Result<bool> {
    // Quietly: the run loads them again and says what is wrong with them then, once.
    let known =
        tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), || {
            ghosthunt::query::load::load(settings.hunts.builtin, &settings.hunts.directories).hunts
        });
    let mut unknown: Vec<&str> = ids
        .iter()
        .map(String::as_str)
        .filter(|id| *id != "sigma" && !known.contains_key(*id))
        .collect();
    let mut sigma_rules = false;
    if !unknown.is_empty() && !settings.sigma.directories.is_empty() {
        let schema = ghosthunt::app::schema(settings)?;
        let sigma = ghosthunt::app::sigma_ids(settings, &schema)?;
        sigma_rules = unknown.iter().any(|id| sigma.contains(*id));
        unknown.retain(|id| !sigma.contains(*id));
    }
    if !unknown.is_empty() {
        let listed: Vec<&str> = known.keys().map(String::as_str).collect();
        anyhow::bail!(
            "--hunt {}: no configured hunt or Sigma rule has this id (ids are case-sensitive). The hunts: {}; a Sigma rule by its id (sigma.directories), or `sigma` for the whole rule set.",
            unknown.join(", "),
            listed.join(", ")
        );
    }
    let whole_set = ids.iter().any(|id| id == "sigma");
    if whole_set && settings.sigma.directories.is_empty() {
        anyhow::bail!("--hunt sigma: no Sigma rules are configured (set sigma.directories)");
    }
    Ok(ids.is_empty() || whole_set || sigma_rules)
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Exit code of a command whose report says whether all was well.
fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Writes to standard output; a failed write is the command's error, so that a reader that went away
/// (`ghosthunt hunts | head`) ends the command quietly (see `main`) instead of a panic.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*).map_err(stdout_closed)?
    }};
}

/// [`out!`] with a line end.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*).map_err(stdout_closed)?
    }};
}

/// A command's printed output (a listing, a query's rows) found its reader gone (`| head`): it has
/// what it wanted. Only such writes say so; a pipeline's alert sink on a closed pipe is a failure.
#[derive(Debug, thiserror::Error)]
#[error("standard output closed by its reader")]
struct StdoutClosed;

fn stdout_closed(e: std::io::Error) -> anyhow::Error {
    match e.kind() {
        std::io::ErrorKind::BrokenPipe => anyhow::Error::new(StdoutClosed),
        _ => e.into(),
    }
}

async fn dispatch(command: Command, settings: Settings) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run { format } => {
            let mut settings = settings;
            settings.human_output = human_output(format);
            run(settings, Reading::Live).await
        }
        Command::Healthcheck { .. } => unreachable!("answered before the runtime starts"),
        Command::Validate => {
            let v = cli::hunts::validate(&settings).await?;
            for e in &v.refused {
                eprintln!("refused: {e}");
            }
            for r in &v.sigma_refused {
                eprintln!("refused: {r}");
            }
            for k in &v.settings_refused {
                eprintln!("refused: {k}");
            }
            outln!("{v}");
            Ok(exit(v.ok()))
        }
        Command::Hunts { long } => {
            let list = cli::hunts::list(&settings, long).await?;
            for e in &list.refused {
                eprintln!("refused: {e}");
            }
            out!("{list}");
            Ok(exit(list.refused.is_empty()))
        }
        Command::Test { mut dirs } => {
            if dirs.is_empty() {
                dirs = settings.hunts.directories.clone();
                dirs.extend(settings.incidents.directories.iter().cloned());
            }
            if dirs.is_empty() {
                dirs.push(PathBuf::from("sql/hunts"));
                if Path::new("sql/incidents").is_dir() {
                    dirs.push(PathBuf::from("sql/incidents"));
                }
            }
            let schema = app::schema(&settings)?;
            let report = testing::run_dirs(&dirs, schema, &settings).await?;
            outln!("{report}");
            Ok(exit(report.ok()))
        }
        Command::Sigma {
            command: SigmaCommand::Convert { files },
        } => {
            let report = cli::sigma::convert(&settings, &files)?;
            for converted in &report.converted {
                match converted {
                    Ok(sql) => outln!("{sql}\n"),
                    Err(refusal) => eprintln!("refused: {refusal}"),
                }
            }
            Ok(exit(report.ok()))
        }
        Command::Sigma {
            command:
                SigmaCommand::Bench {
                    events,
                    rules,
                    rounds,
                },
        } => {
            outln!("{}", cli::sigma::bench(&settings, &events, rules, rounds)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Kql {
            command: KqlCommand::Convert { file },
        } => {
            outln!("{}", cli::kql::convert(&file)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Kql {
            command: KqlCommand::Check { path },
        } => {
            let schema = app::schema(&settings)?;
            let report = cli::kql::check(&path, &schema).await?;
            out!("{report}");
            Ok(exit(report.refusals.is_empty()))
        }
        Command::Sigma {
            command: SigmaCommand::Check { dirs },
        } => {
            let report = cli::sigma::check(&settings, dirs)?;
            out!("{report}");
            Ok(exit(report.refusals.is_empty()))
        }
        Command::Produce {
            topic,
            files,
            rate,
            limit,
        } => {
            let shutdown = CancellationToken::new();
            let signal = shutdown.clone();
            tokio::spawn(async move {
                wait_for_signal().await;
                signal.cancel();
            });
            let options = cli::produce::ProduceOptions {
                topic,
                files,
                rate,
                limit,
            };
            let sent = cli::produce::produce(&settings, &options, shutdown).await?;
            tracing::info!(events = sent, topic = %options.topic, "Produced.");
            Ok(ExitCode::SUCCESS)
        }
        Command::Hunt {
            from,
            to,
            hunts,
            source,
            files,
            format,
        } => {
            let mut settings = settings;
            let range = range(from, to)?;
            if !files.is_empty() && !matches!(source, HuntSourceArg::Files) {
                anyhow::bail!(
                    "--file reads files with --source files; this hunt's source is the {}",
                    match source {
                        HuntSourceArg::Kafka => "Kafka topics (--source kafka)",
                        _ => "lake (the default: --source lake)",
                    }
                );
            }
            match source {
                HuntSourceArg::Lake => {
                    if !settings.lake.enabled() {
                        anyhow::bail!(
                            "no lake: set lake.path (GHOSTHUNT__LAKE__PATH) to the lake's directory"
                        );
                    }
                    settings.source = SourceSettings::Lake(range);
                }
                HuntSourceArg::Files => {
                    if files.is_empty() {
                        anyhow::bail!("--source files needs --file PATH (repeat for more)");
                    }
                    settings.source = SourceSettings::File(ghosthunt::settings::FileSettings {
                        paths: files,
                        follow: false,
                        ..settings.file.clone()
                    });
                    settings.decode.time_range = Some(range);
                    // History read from files is not written to the lake again.
                    settings.lake.path.clear();
                }
                HuntSourceArg::Kafka => {
                    let SourceSettings::Kafka(kafka) = &settings.source else {
                        anyhow::bail!(
                            "--source kafka reads the topics of [source.kafka]: set source.kind = \"kafka\" (GHOSTHUNT__SOURCE__KIND=kafka)"
                        );
                    };
                    settings.source = SourceSettings::KafkaHistory(kafka.clone(), range);
                    settings.decode.time_range = Some(range);
                    settings.lake.path.clear();
                }
            }
            if !check_hunt_ids(&settings, &hunts)? {
                settings.sigma.directories.clear();
            }
            settings.hunts.only = hunts;
            // A retro-hunt may run beside the live pipeline: no metrics endpoint of its own.
            settings.metrics_listen = None;
            settings.progress = true;
            settings.human_output = human_output(format);
            run(settings, Reading::History).await
        }
        Command::Query {
            query,
            kql,
            from,
            to,
            format,
        } => {
            let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
            let format = match format {
                Some(FormatArg::Table) => cli::lake::Format::Table,
                Some(FormatArg::Csv) => cli::lake::Format::Csv,
                Some(FormatArg::Json) => cli::lake::Format::Json,
                None if terminal => cli::lake::Format::Table,
                None => cli::lake::Format::Json,
            };
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            match cli::lake::query(&settings, &query, kql, range(from, to)?, format, &mut out).await
            {
                Err(cli::lake::QueryError::Io(e)) => return Err(stdout_closed(e)),
                other => other?,
            };
            std::io::Write::flush(&mut out).map_err(stdout_closed)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Lake {
            command:
                LakeCommand::Optimize {
                    target_mib,
                    in_time_order,
                },
        } => {
            for t in
                ghosthunt::lake::maintain::optimize(&settings.lake, target_mib << 20, in_time_order)
                    .await?
            {
                outln!(
                    "{}: {} files compacted into {}",
                    t.table,
                    t.files_removed,
                    t.files_added
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Lake {
            command: LakeCommand::Vacuum { retain },
        } => {
            const WEEK: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);
            if retain < WEEK {
                tracing::warn!(
                    retain = %humantime::format_duration(retain),
                    "--retain is under Delta's default of 7 days: a query, retro-hunt or reader of an older version running now may find files it reads deleted."
                );
            }
            let report =
                ghosthunt::lake::maintain::vacuum(&settings.lake, retain, chrono::Utc::now())
                    .await?;
            for t in report {
                match t.expired_files {
                    Some(n) => outln!(
                        "{}: {n} files of dates past lake.retention removed; {} unreferenced files deleted",
                        t.table,
                        t.files_deleted
                    ),
                    None => outln!(
                        "{}: {} unreferenced files deleted",
                        t.table,
                        t.files_deleted
                    ),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            source,
            files,
            events,
            seed,
            event_rate,
            copies,
            hunt,
            json,
            lake_sink,
            keep_events,
        } => {
            let options = bench::BenchOptions {
                source: match source {
                    BenchSourceArg::File => bench::BenchSource::File(files),
                    BenchSourceArg::Generator => bench::BenchSource::Generator,
                    BenchSourceArg::Kafka => bench::BenchSource::Kafka,
                    BenchSourceArg::Lake => bench::BenchSource::Lake,
                },
                events,
                seed,
                event_rate,
                copies: copies.map(|n| (hunt, n)),
                work_dir: None,
                keep_events,
                lake_sink,
            };
            let report = bench::run(settings, &options).await?;
            if json {
                outln!("{}", report.to_json());
            } else {
                outln!("{report}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The time range of `--from` / `--to`.
fn range(from: Option<String>, to: Option<String>) -> anyhow::Result<ghosthunt::lake::read::Range> {
    let parse = |t: Option<String>| -> anyhow::Result<Option<i64>> {
        t.map(|t| ghosthunt::lake::read::parse_time(&t).map_err(anyhow::Error::msg))
            .transpose()
    };
    let range = ghosthunt::lake::read::Range {
        from: parse(from)?,
        to: parse(to)?,
    };
    if let (Some(f), Some(t)) = (range.from, range.to)
        && f >= t
    {
        anyhow::bail!("--from must be before --to");
    }
    Ok(range)
}

/// What a run reads: a live source, stopped by a signal when the operator wants, or history (a
/// retro-hunt's range), which a signal cuts short.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reading {
    Live,
    History,
}

async fn run(settings: Settings, reading: Reading) -> anyhow::Result<ExitCode> {
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        match reading {
            Reading::Live => tracing::info!(
                "Shutting down: closing windows, flushing alerts, acknowledging. A second signal exits at once."
            ),
            Reading::History => tracing::warn!(
                "Stopping before the end of the range: the windows of what was read are closed and their alerts written. A second signal exits at once."
            ),
        }
        signal.cancel();
        wait_for_signal().await;
        match reading {
            Reading::Live => tracing::warn!(
                "Second signal: exiting now; unacknowledged records will be read again on restart."
            ),
            Reading::History => tracing::warn!(
                "Second signal: exiting now; the alerts of the windows still open are not written."
            ),
        }
        std::process::exit(130);
    });
    let summary = app::run(settings, Handles::default(), shutdown.clone())
        .await
        .context("the pipeline stopped")?;
    tracing::info!(
        records = summary.records,
        batches = summary.batches,
        alerts = summary.alerts,
        dead_letters = summary.dead_letters,
        "Pipeline finished."
    );
    if reading == Reading::History && summary.cut_short {
        // Told apart from a whole range by its exit code (128 + SIGINT, as shells do).
        eprintln!(
            "stopped by a signal before the end of the range: {} events hunted (a retro-hunt's progress counts the rows read too), {} alerts written",
            summary.records, summary.alerts
        );
        return Ok(ExitCode::from(130));
    }
    if !summary.disabled.is_empty() {
        // The others ran to the end, but these hunts did not see all of the input.
        eprintln!(
            "error: hunt(s) disabled after a panic: {}",
            summary.disabled.join(", ")
        );
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

fn healthcheck(url: Option<String>, timeout: std::time::Duration, settings: &Settings) -> ExitCode {
    use ghosthunt::telemetry::probe;
    let answer = url
        .map_or_else(|| probe::default_url(settings.metrics_listen), Ok)
        .and_then(|url| probe::check(&url, timeout).map(|a| (url, a)));
    match answer {
        Ok((_, a)) if a.healthy() => {
            println!("{}", a.body);
            ExitCode::SUCCESS
        }
        Ok((url, a)) => {
            eprintln!("unhealthy: {url} answered {}: {}", a.status, a.body);
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("unhealthy: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler installs");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
