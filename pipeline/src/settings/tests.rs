//! Layering, validation and error messages of the configuration.

use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn embedded_defaults_need_no_file() {
    let s = Settings::load(None, Vec::new()).unwrap();
    assert!(matches!(s.source, SourceSettings::Generator(ref g) if g.rate == 2000));
    assert_eq!(s.metrics_listen, Some("127.0.0.1:9464".parse().unwrap()));
    assert_eq!(s.alerts, OutputSettings::Stdout);
    assert_eq!(s.decode.batch_timeout, Duration::from_millis(200));
}

#[test]
fn file_overrides_defaults_and_environment_overrides_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.toml");
    std::fs::write(
        &path,
        "[source]\nkind = \"file\"\n[source.file]\npaths = [\"a.jsonl\"]\n[window]\nidle_timeout = \"3s\"\n",
    )
    .unwrap();
    let s = Settings::load(
        Some(&path),
        env(&[
            ("GHOSTHUNT__WINDOW__IDLE_TIMEOUT", "7s"),
            ("GHOSTHUNT__SOURCE__FILE__PATHS", "x.jsonl,y/*.jsonl"),
            ("UNRELATED", "1"),
        ]),
    )
    .unwrap();
    assert_eq!(s.window.idle_timeout, Duration::from_secs(7));
    match s.source {
        SourceSettings::File(f) => assert_eq!(f.paths, vec!["x.jsonl", "y/*.jsonl"]),
        other => panic!("expected the file source, got {other:?}"),
    }
}

#[test]
fn every_list_of_directories_is_comma_separated_in_the_environment() {
    let s = Settings::load(
        None,
        env(&[
            ("GHOSTHUNT__HUNTS__DIRECTORIES", "h1,h2"),
            ("GHOSTHUNT__SIGMA__DIRECTORIES", "s1,s2"),
            ("GHOSTHUNT__INCIDENTS__DIRECTORIES", "i1,i2"),
        ]),
    )
    .unwrap();
    let paths = |v: &[std::path::PathBuf]| {
        v.iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(paths(&s.hunts.directories), ["h1", "h2"]);
    assert_eq!(paths(&s.sigma.directories), ["s1", "s2"]);
    assert_eq!(paths(&s.incidents.directories), ["i1", "i2"]);
}

#[test]
fn an_empty_list_of_source_paths_is_refused_naming_the_key() {
    let err = Settings::load(
        None,
        env(&[
            ("GHOSTHUNT__SOURCE__KIND", "file"),
            ("GHOSTHUNT__SOURCE__FILE__PATHS", ""),
        ]),
    )
    .expect_err("refused");
    assert!(err.to_string().contains("source.file.paths"), "{err}");
}

#[test]
fn unknown_key_in_file_is_an_error_naming_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[window]\nidel_timeout = \"3s\"\n").unwrap();
    let err = Settings::load(Some(&path), Vec::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("idel_timeout"), "{err}");
    assert!(err.contains("bad.toml"), "{err}");
}

#[test]
fn unknown_key_in_environment_is_an_error_naming_key() {
    let err = Settings::load(None, env(&[("GHOSTHUNT__WINDOW__IDEL", "3s")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("idel"), "{err}");
    assert!(err.contains("GHOSTHUNT__WINDOW__IDEL"), "{err}");
}

#[test]
fn librdkafka_options_from_file_and_environment_become_dotted_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.toml");
    std::fs::write(
        &path,
        "[source]\nkind = \"kafka\"\n[kafka.options]\n\"security.protocol\" = \"SASL_SSL\"\n\"sasl.mechanism\" = \"PLAIN\"\n\"socket.keepalive.enable\" = true\n",
    )
    .unwrap();
    let s = Settings::load(
        Some(&path),
        env(&[
            ("GHOSTHUNT__KAFKA__OPTIONS__SASL_PASSWORD", "hunter2"),
            ("GHOSTHUNT__KAFKA__BROKERS", "b1:9093,b2:9093"),
        ]),
    )
    .unwrap();
    assert_eq!(s.kafka.brokers, "b1:9093,b2:9093");
    assert_eq!(
        s.kafka.options,
        vec![
            ("sasl.mechanism".to_string(), "PLAIN".to_string()),
            ("sasl.password".to_string(), "hunter2".to_string()),
            ("security.protocol".to_string(), "SASL_SSL".to_string()),
            ("socket.keepalive.enable".to_string(), "true".to_string()),
        ]
    );
    assert!(
        !format!("{s:?}").contains("hunter2"),
        "secrets never appear in Debug output"
    );
}

#[test]
fn bad_duration_is_an_error() {
    let err = Settings::load(None, env(&[("GHOSTHUNT__DECODE__BATCH_TIMEOUT", "soon")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("batch_timeout"), "{err}");
}

#[test]
fn batch_bytes_default_to_8_mib_and_stay_within_what_a_batch_can_address() {
    assert_eq!(
        Settings::load(None, Vec::new()).unwrap().decode.batch_bytes,
        8 << 20
    );
    for bad in ["0", "268435457"] {
        let err = Settings::load(None, env(&[("GHOSTHUNT__DECODE__BATCH_BYTES", bad)]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("decode.batch_bytes"), "{bad}: {err}");
    }
}

#[test]
fn invalid_value_names_its_key() {
    let err = Settings::load(None, env(&[("GHOSTHUNT__SOURCE__KIND", "carrier-pigeon")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("source.kind"), "{err}");
    let err = Settings::load(None, env(&[("GHOSTHUNT__SOURCE__KIND", "file")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("source.file.paths"), "{err}");
}

#[test]
fn sigma_threads_default_to_one_per_core_and_take_a_given_count() {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    assert_eq!(
        Settings::load(None, Vec::new()).unwrap().sigma.threads,
        cores
    );
    let s = Settings::load(None, env(&[("GHOSTHUNT__SIGMA__THREADS", "3")])).unwrap();
    assert_eq!(s.sigma.threads, 3);
}
