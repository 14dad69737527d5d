//! The `ghosthunt` command line: thin, everything lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use ghosthunt::app::{self, Handles};
use ghosthunt::bench;
use ghosthunt::query::{self, testing};
use ghosthunt::settings::Settings;

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
    Run,
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
    /// For each hunt DIR/hunts/<id>.sql with a folder DIR/tests/<id>/ holding events.jsonl and
    /// expected.jsonl.
    Test {
        /// Hunt directories (default: the configured hunts.directories, else ./sql/hunts).
        #[arg(value_name = "HUNTS_DIR")]
        dirs: Vec<PathBuf>,
    },
    /// Sigma rules: convert them to SQL, or check which compile.
    Sigma {
        #[command(subcommand)]
        command: SigmaCommand,
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
        /// Events per second (default: source.generator.rate for the generator; unlimited for files).
        #[arg(long)]
        rate: Option<u64>,
        /// Stop after this many events (default: the generator runs until interrupted; files to their end).
        #[arg(long)]
        limit: Option<u64>,
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
    },
}

#[derive(Subcommand)]
enum SigmaCommand {
    /// Print the SQL each rule of the files becomes (logsource condition and field mapping applied).
    Convert {
        #[arg(value_name = "RULE.yml", required = true)]
        files: Vec<PathBuf>,
    },
    /// Load and compile the rules (default: sigma.directories) and report the counts and every refusal.
    Check {
        #[arg(value_name = "DIR")]
        dirs: Vec<PathBuf>,
    },
    /// Time the rule set (sigma.directories, or --rules) on events: decode once, evaluate every batch
    /// with all rules `--rounds` times. Files are JSON lines, plain, .gz, or .zip archives of them.
    Bench {
        #[arg(value_name = "EVENTS", required = true)]
        events: Vec<PathBuf>,
        /// Rule directories (default: sigma.directories).
        #[arg(long = "rules", value_name = "DIR")]
        rules: Vec<PathBuf>,
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref(), std::env::vars()) {
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
        .build()
        .expect("a tokio runtime starts");
    match runtime.block_on(dispatch(cli.command, settings)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
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

async fn dispatch(command: Command, settings: Settings) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run => run(settings).await,
        Command::Healthcheck { .. } => unreachable!("answered before the runtime starts"),
        Command::Validate => validate(settings).await,
        Command::Hunts { long } => hunts(settings, long).await,
        Command::Test { dirs } => test(settings, dirs).await,
        Command::Sigma {
            command: SigmaCommand::Convert { files },
        } => {
            let schema = app::schema(&settings)?;
            let mapping = app::sigma_mapping(&settings)?;
            let mut ok = true;
            for file in &files {
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("reading {}", file.display()))?;
                for converted in
                    ghosthunt::sigma::convert(&text, file, &mapping, &settings, &schema)
                {
                    match converted {
                        Ok(sql) => println!("{sql}\n"),
                        Err(refusal) => {
                            ok = false;
                            eprintln!("refused: {refusal}");
                        }
                    }
                }
            }
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Sigma {
            command:
                SigmaCommand::Bench {
                    events,
                    rules,
                    rounds,
                },
        } => {
            let mut settings = settings;
            if !rules.is_empty() {
                settings.sigma.directories = rules;
            }
            anyhow::ensure!(
                !settings.sigma.directories.is_empty(),
                "no rule directory: give --rules, or set sigma.directories"
            );
            let started = std::time::Instant::now();
            let setup = app::sigma(&settings, app::schema(&settings)?)?;
            let engine = setup.engine.as_ref().expect("directories are set");
            println!(
                "rules: {} compiled, {} refused, {} columns; loaded in {:.1} s",
                engine.rule_count(),
                setup.refusals.len(),
                setup.schema.columns.len(),
                started.elapsed().as_secs_f64()
            );
            let lines = ghosthunt::sigma::bench::read_lines(&events)?;
            let report = ghosthunt::sigma::bench::run(
                engine,
                &setup.schema,
                lines,
                settings.decode.batch_size,
                rounds,
            );
            println!("{report}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Sigma {
            command: SigmaCommand::Check { dirs },
        } => {
            let mut settings = settings;
            if !dirs.is_empty() {
                settings.sigma.directories = dirs;
            }
            anyhow::ensure!(
                !settings.sigma.directories.is_empty(),
                "no rule directory: give one, or set sigma.directories"
            );
            let setup = app::sigma(&settings, app::schema(&settings)?)?;
            let engine = setup.engine.as_ref().expect("directories are set");
            for r in &setup.refusals {
                println!("refused: {r}");
            }
            let mut kinds: std::collections::BTreeMap<String, usize> = Default::default();
            for r in &setup.refusals {
                *kinds.entry(r.kind()).or_default() += 1;
            }
            println!(
                "{} file(s): {} detection rule(s) compiled, {} correlation(s), {} refused; {} columns",
                setup.files,
                engine.rule_count(),
                engine.hunts().count() - engine.rule_count(),
                setup.refusals.len(),
                setup.schema.columns.len()
            );
            for (kind, n) in kinds {
                println!("  refused {n:>5}  {kind}");
            }
            Ok(if setup.refusals.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
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
            let options = ghosthunt::produce::ProduceOptions {
                topic,
                files,
                rate,
                limit,
            };
            let sent = ghosthunt::produce::produce(&settings, &options, shutdown).await?;
            tracing::info!(events = sent, topic = %options.topic, "Produced.");
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
        } => {
            let options = bench::BenchOptions {
                source: match source {
                    BenchSourceArg::File => bench::BenchSource::File(files),
                    BenchSourceArg::Generator => bench::BenchSource::Generator,
                    BenchSourceArg::Kafka => bench::BenchSource::Kafka,
                },
                events,
                seed,
                event_rate,
                copies: copies.map(|n| (hunt, n)),
                work_dir: None,
            };
            let report = bench::run(settings, &options).await?;
            if json {
                println!("{}", report.to_json());
            } else {
                println!("{report}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn run(settings: Settings) -> anyhow::Result<ExitCode> {
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!(
            "Shutting down: closing windows, flushing alerts, acknowledging. A second signal exits at once."
        );
        signal.cancel();
        wait_for_signal().await;
        tracing::warn!(
            "Second signal: exiting now; unacknowledged records will be read again on restart."
        );
        std::process::exit(130);
    });
    let summary = app::run(settings, Handles::default(), shutdown)
        .await
        .context("the pipeline stopped")?;
    tracing::info!(
        records = summary.records,
        batches = summary.batches,
        alerts = summary.alerts,
        dead_letters = summary.dead_letters,
        "Pipeline finished."
    );
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

async fn validate(settings: Settings) -> anyhow::Result<ExitCode> {
    let setup = app::sigma(&settings, app::schema(&settings)?)?;
    let schema = setup.schema;
    let (planned, errors) = app::hunts(&settings, &schema).await;
    for e in &errors {
        eprintln!("refused: {e}");
    }
    for r in &setup.refusals {
        eprintln!("refused: {r}");
    }
    let sigma_rules = setup
        .engine
        .as_ref()
        .map_or(0, ghosthunt::sigma::engine::SigmaEngine::rule_count);
    println!(
        "configuration ok; schema `{}` ({} columns); {} hunt(s) planned, {} refused; {} Sigma rule(s) compiled, {} refused",
        schema.name,
        schema.columns.len(),
        planned.len(),
        errors.len(),
        sigma_rules,
        setup.refusals.len()
    );
    Ok(
        if errors.is_empty() && (!planned.is_empty() || sigma_rules > 0) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        },
    )
}

async fn hunts(settings: Settings, long: bool) -> anyhow::Result<ExitCode> {
    let loaded = query::load::load(settings.hunts.builtin, &settings.hunts.directories);
    for e in &loaded.errors {
        eprintln!("refused: {e}");
    }
    if long {
        for h in loaded.hunts.values() {
            println!("{} — {}", h.id, h.title);
            println!("  origin:      {}", h.origin);
            println!("  severity:    {}", h.severity.as_str());
            println!("  window:      {}", h.window);
            println!("  techniques:  {}", h.attack.techniques.join(", "));
            println!("  tactics:     {}", h.attack.tactics.join(", "));
            println!("  hypothesis:  {}", h.hypothesis);
            for (i, step) in h.response.iter().enumerate() {
                println!("  response {}:  {}", i + 1, step);
            }
            println!();
        }
    } else {
        println!(
            "{:<32} {:<9} {:<26} {:<22} TITLE",
            "ID", "SEVERITY", "WINDOW", "TECHNIQUES"
        );
        for h in loaded.hunts.values() {
            println!(
                "{:<32} {:<9} {:<26} {:<22} {}",
                h.id,
                h.severity.as_str(),
                h.window.to_string(),
                h.attack.techniques.join(","),
                h.title
            );
        }
    }
    Ok(if loaded.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn test(settings: Settings, mut dirs: Vec<PathBuf>) -> anyhow::Result<ExitCode> {
    if dirs.is_empty() {
        dirs = settings.hunts.directories.clone();
    }
    if dirs.is_empty() {
        dirs.push(PathBuf::from("sql/hunts"));
    }
    let schema = app::schema(&settings)?;
    let (mut passed, mut failed, mut untested) = (0, 0, Vec::new());
    for dir in &dirs {
        let files = query::load::hunt_files(dir)?;
        for path in files {
            let hunt = match query::load::read_hunt(&path) {
                Ok(h) => h,
                Err(e) => {
                    println!("FAIL {e}");
                    failed += 1;
                    continue;
                }
            };
            let Some(tests) = testing::test_dir(dir, &hunt.id) else {
                untested.push(hunt.id.clone());
                continue;
            };
            let id = hunt.id.clone();
            let result = testing::run_test(hunt, &tests, schema.clone(), &settings).await;
            if result.passed() {
                passed += 1;
                println!("ok   {id} ({} rows)", result.produced);
                continue;
            }
            failed += 1;
            println!("FAIL {id}");
            if let Some(e) = &result.error {
                println!("     {e}");
            }
            for d in &result.dead_letters {
                println!("     sample is a dead letter: {d}");
            }
            for row in &result.missing {
                println!("   - expected, not produced: {row}");
            }
            for row in &result.unexpected {
                println!("   + produced, not expected: {row}");
            }
        }
    }
    if !untested.is_empty() {
        println!("no samples for: {}", untested.join(", "));
    }
    println!("hunt tests: {passed} passed, {failed} failed");
    Ok(if failed == 0 && passed > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
