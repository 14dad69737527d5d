//! ghosthunt's image and the Kubernetes example (issue #5), checked without a Docker engine: the Dockerfile
//! builds exactly this workspace with its lock file, in release, as CI builds it with the lock file; the
//! context lets in only that; the image runs unprivileged, serves metrics on every interface and checks its
//! health with `ghosthunt healthcheck`. The Kubernetes example probes and scrapes the metrics port its
//! environment configures, as the image's user.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;

use common::repo;
use ghosthunt::settings::{Settings, SourceSettings};
use serde_json::Value;

fn text(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn root() -> PathBuf {
    repo().canonicalize().unwrap()
}

fn settings_from(env: Vec<(String, String)>, what: &str) -> Settings {
    Settings::load(None, env).unwrap_or_else(|e| panic!("{what}'s environment is not valid: {e}"))
}

/// The Dockerfile's instructions: (keyword, arguments), continuation lines joined, comments dropped.
fn dockerfile() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text("docker/Dockerfile").lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && current.is_empty()) {
            continue;
        }
        current.push_str(t.trim_end_matches('\\'));
        current.push(' ');
        if !t.ends_with('\\') {
            let (k, rest) = current
                .trim()
                .split_once(' ')
                .unwrap_or((current.trim(), ""));
            out.push((k.to_uppercase(), rest.trim().to_string()));
            current.clear();
        }
    }
    out
}

/// The top-level repository paths whose files the crate compiles in: every `include_str!`, `include_bytes!`
/// and `include_dir!` of `pipeline/src`, resolved like rustc (relative to the file, or from
/// `$CARGO_MANIFEST_DIR`).
fn compiled_in_paths() -> BTreeSet<String> {
    let manifest = root().join("pipeline");
    let mut out = BTreeSet::new();
    for file in glob::glob(&format!("{}/src/**/*.rs", manifest.display())).unwrap() {
        let file = file.unwrap();
        let source = std::fs::read_to_string(&file).unwrap();
        for mac in ["include_str!(\"", "include_bytes!(\"", "include_dir!(\""] {
            for (i, _) in source.match_indices(mac) {
                let literal = source[i + mac.len()..].split('"').next().unwrap();
                let path = match literal.strip_prefix("$CARGO_MANIFEST_DIR/") {
                    Some(rest) => manifest.join(rest),
                    None => file.parent().unwrap().join(literal),
                };
                let path = path
                    .canonicalize()
                    .unwrap_or_else(|e| panic!("{literal} in {}: {e}", file.display()));
                let inside = path
                    .strip_prefix(root())
                    .expect("compiled-in files are in the repository");
                out.insert(
                    inside
                        .components()
                        .next()
                        .unwrap()
                        .as_os_str()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    out
}

fn version(v: &str) -> (u32, u32) {
    let mut parts = v.trim_matches('"').split('.').map(|p| p.parse().unwrap());
    (parts.next().unwrap(), parts.next().unwrap())
}

#[test]
fn dockerfile_builds_the_workspace_with_its_lock_file_and_runs_unprivileged() {
    let steps = dockerfile();
    let arg = |name: &str| {
        steps
            .iter()
            .find_map(|(k, a)| {
                (k == "ARG")
                    .then(|| a.strip_prefix(&format!("{name}=")))
                    .flatten()
            })
            .unwrap_or_else(|| panic!("ARG {name}=…"))
    };
    let froms: Vec<usize> = steps
        .iter()
        .enumerate()
        .filter(|(_, (k, _))| k == "FROM")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(froms.len(), 2, "a build stage and a runtime stage");
    let (build, runtime) = (&steps[froms[0]..froms[1]], &steps[froms[1]..]);
    assert!(
        build[0].1.starts_with("rust:${RUST_VERSION}"),
        "{}",
        build[0].1
    );
    let workspace = text("Cargo.toml");
    let wanted = workspace
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .expect("rust-version");
    assert!(
        version(arg("RUST_VERSION")) >= version(wanted),
        "the toolchain is older than rust-version"
    );

    // What the build stage copies: the manifest, the lock file, every member, and every other top-level
    // path the crate compiles in (include_str!/include_bytes!/include_dir! of a file outside its member).
    let copied: BTreeSet<String> = build
        .iter()
        .filter(|(k, _)| k == "COPY")
        .flat_map(|(_, a)| {
            let w: Vec<&str> = a.split_whitespace().collect();
            w[..w.len() - 1].to_vec()
        })
        .map(|s| s.trim_end_matches('/').to_string())
        .collect();
    let members = workspace
        .lines()
        .find_map(|l| l.strip_prefix("members = "))
        .expect("members");
    let mut needed: BTreeSet<String> = ["Cargo.toml", "Cargo.lock"].map(String::from).into();
    needed.extend(serde_json::from_str::<Vec<String>>(members).unwrap());
    needed.extend(compiled_in_paths());
    assert!(needed.contains("sql"), "the bundled hunts are compiled in");
    assert_eq!(
        copied, needed,
        "the build stage copies exactly the workspace"
    );
    for path in &copied {
        assert!(
            repo().join(path).exists(),
            "COPY {path}: not in the repository"
        );
    }
    // The context is the repository root: .dockerignore lets through all of that, and nothing else.
    let ignore = text(".dockerignore");
    let rules: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(
        rules.first(),
        Some(&"*"),
        ".dockerignore starts by excluding everything"
    );
    let allowed: BTreeSet<String> = rules
        .iter()
        .filter_map(|r| r.strip_prefix('!'))
        .map(String::from)
        .collect();
    assert_eq!(allowed, copied);

    // The build is the release build of the lock file, as CI builds with it (`--locked`).
    let builds: Vec<&String> = build
        .iter()
        .filter(|(k, a)| k == "RUN" && a.contains("cargo build"))
        .map(|(_, a)| a)
        .collect();
    assert_eq!(builds.len(), 1);
    let cargo = &builds[0][builds[0].find("cargo build").unwrap()..];
    assert!(
        cargo.contains("--release") && cargo.contains("--locked"),
        "{cargo}"
    );
    assert!(
        text(".ci/run").contains("cargo build --locked"),
        "CI builds with the lock file too"
    );
    assert!(
        cargo.contains("install -D -m 0755 target/release/ghosthunt /out/ghosthunt"),
        "{cargo}"
    );
    assert!(
        runtime.iter().any(
            |(k, a)| k == "COPY" && a == "--from=build /out/ghosthunt /usr/local/bin/ghosthunt"
        )
    );

    // Runtime: not root, metrics on every interface, /healthz as the health check, ghosthunt as entry point.
    let last = |key: &str| {
        runtime
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, a)| a.as_str())
            .unwrap_or_default()
    };
    let user = last("USER");
    assert!(
        !user.is_empty() && !["root", "0"].contains(&user.split(':').next().unwrap()),
        "USER {user}"
    );
    let listen = last("ENV")
        .strip_prefix("GHOSTHUNT__METRICS__LISTEN=")
        .expect("ENV GHOSTHUNT__METRICS__LISTEN");
    let listen: SocketAddr = listen.parse().unwrap();
    assert!(listen.ip().is_unspecified());
    assert_eq!(last("EXPOSE"), listen.port().to_string());
    assert!(
        last("HEALTHCHECK").ends_with(r#"CMD ["ghosthunt", "healthcheck"]"#),
        "{}",
        last("HEALTHCHECK")
    );
    assert_eq!(last("ENTRYPOINT"), r#"["ghosthunt"]"#);
    assert_eq!(last("CMD"), r#"["run"]"#);
}

#[test]
fn kubernetes_example_probes_and_scrapes_the_metrics_port() {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&text("docker/kubernetes/ghosthunt.yaml")).unwrap();
    let kind = |k: &str| {
        docs.iter()
            .find(|d| d["kind"] == k)
            .unwrap_or_else(|| panic!("no {k}"))
    };
    let (deployment, service) = (kind("Deployment"), kind("Service"));
    let pod = &deployment["spec"]["template"];
    assert_eq!(
        deployment["spec"]["selector"]["matchLabels"],
        pod["metadata"]["labels"]
    );
    assert_eq!(service["spec"]["selector"], pod["metadata"]["labels"]);
    let container = &pod["spec"]["containers"][0];
    let env: Vec<(String, String)> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().into(),
                e["value"].as_str().unwrap().into(),
            )
        })
        .collect();
    let settings = settings_from(env, "the Deployment");
    assert!(matches!(settings.source, SourceSettings::Kafka(_)));
    let listen = settings.metrics_listen.expect("metrics on");
    assert!(listen.ip().is_unspecified());

    let port = &container["ports"][0];
    assert_eq!(
        (port["name"].as_str(), port["containerPort"].as_u64()),
        (Some("metrics"), Some(u64::from(listen.port())))
    );
    let annotations = &pod["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], listen.port().to_string());
    assert_eq!(annotations["prometheus.io/path"], "/metrics");
    assert_eq!(
        container["readinessProbe"]["httpGet"],
        serde_json::json!({"path": "/healthz", "port": "metrics"})
    );
    assert_eq!(
        container["livenessProbe"]["httpGet"]["path"], "/metrics",
        "a Kafka outage must not restart pods"
    );
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "metrics");
    // The image's user.
    let user = dockerfile()
        .into_iter()
        .rev()
        .find(|(k, _)| k == "USER")
        .unwrap()
        .1;
    let uid: u64 = user.split(':').next().unwrap().parse().unwrap();
    assert_eq!(
        pod["spec"]["securityContext"]["runAsUser"].as_u64(),
        Some(uid)
    );
    assert_eq!(pod["spec"]["securityContext"]["runAsNonRoot"], true);
}
