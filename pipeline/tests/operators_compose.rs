//! The operators' stack as compose runs it (issue #5), checked without a Docker engine: docker-compose v1
//! validates `docker/compose.yaml`; every file the stack mounts is in the repository and lands where its
//! service reads it; Kafka has the official image's documented KRaft settings, coherent with each other and
//! with ghosthunt's; ghosthunt can be scaled out and uses the topics kafka-init creates; promtool accepts
//! the Prometheus configuration as mounted and the alert rules, whose unit tests pass; Grafana finds its
//! data source and the dashboards. `operators_image.rs` checks the image and the Kubernetes example,
//! `operators_stack.rs` runs every dashboard and alert expression against a real Prometheus.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use common::repo;
use common::stack::{self, env_value, environment};
use ghosthunt::settings::{OutputSettings, Settings, SourceSettings};
use serde_json::Value;

fn root() -> PathBuf {
    repo().canonicalize().unwrap()
}

/// A service's bind mounts as (host path, container path), from `docker-compose config`'s absolute paths.
fn binds(compose: &Value, service: &str) -> Vec<(PathBuf, String)> {
    let volumes = compose["services"][service]["volumes"].as_array();
    volumes
        .into_iter()
        .flatten()
        .filter_map(|v| {
            let mut parts = v.as_str().expect("short volume syntax").split(':');
            let (src, dst) = (parts.next()?, parts.next()?);
            src.starts_with('/')
                .then(|| (PathBuf::from(src), dst.to_string()))
        })
        .collect()
}

/// Where a path inside a service's container comes from on the host, through its bind mounts.
fn host_path(compose: &Value, service: &str, inside: &str) -> PathBuf {
    binds(compose, service)
        .into_iter()
        .filter(|(_, dst)| inside == dst || inside.starts_with(&format!("{dst}/")))
        .max_by_key(|(_, dst)| dst.len())
        .map(|(src, dst)| src.join(inside[dst.len()..].trim_start_matches('/')))
        .unwrap_or_else(|| panic!("{service}: nothing is mounted at {inside}"))
}

fn settings_from(env: Vec<(String, String)>, what: &str) -> Settings {
    Settings::load(None, env).unwrap_or_else(|e| panic!("{what}'s environment is not valid: {e}"))
}

#[test]
fn compose_file_is_valid_and_everything_it_mounts_is_in_the_repository() {
    let Some(compose) = stack::compose() else {
        return;
    };
    let services: BTreeSet<&str> = compose["services"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let expected = [
        "grafana",
        "ghosthunt",
        "kafka",
        "kafka-init",
        "producer",
        "prometheus",
    ];
    assert_eq!(services, expected.into_iter().collect::<BTreeSet<_>>());
    let named: BTreeSet<&str> = compose["volumes"]
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    for service in services {
        for volume in compose["services"][service]["volumes"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let source = volume.as_str().unwrap().split(':').next().unwrap();
            if source.starts_with('/') {
                let path = Path::new(source);
                assert!(
                    path.exists(),
                    "{service} mounts {source}, which is not in the repository"
                );
                assert!(
                    path.starts_with(root()),
                    "{service} mounts {source}, outside the repository"
                );
            } else {
                assert!(
                    named.contains(source),
                    "{service}: volume {source} is not declared"
                );
            }
        }
        if let Some(build) = compose["services"][service].get("build") {
            let context = PathBuf::from(build["context"].as_str().unwrap());
            assert_eq!(context, root(), "{service} builds from the repository root");
            let dockerfile = context.join(build["dockerfile"].as_str().unwrap());
            assert!(
                dockerfile.is_file(),
                "{service}: no {}",
                dockerfile.display()
            );
        }
    }
}

/// The apache/kafka image turns each `KAFKA_*` variable into a server.properties key: `_` for `.`, `__`
/// for `_`, `___` for `-` (apache/kafka docker/examples/README.md), except these, which set up the JVM and
/// log4j (docker/resources/common-scripts/kafka-propertiesSpec.json).
const NOT_PROPERTIES: &[&str] = &[
    "KAFKA_VERSION",
    "KAFKA_HEAP_OPTS",
    "KAFKA_LOG4J_OPTS",
    "KAFKA_OPTS",
    "KAFKA_JMX_OPTS",
    "KAFKA_JVM_PERFORMANCE_OPTS",
    "KAFKA_GC_LOG_OPTS",
    "KAFKA_LOG4J_ROOT_LOGLEVEL",
    "KAFKA_LOG4J_LOGGERS",
    "KAFKA_TOOLS_LOG4J_LOGLEVEL",
];

/// Broker settings of a KRaft node this stack may set (https://kafka.apache.org/documentation/#brokerconfigs):
/// a misspelt variable would otherwise be ignored by the broker.
const KRAFT_BROKER_KEYS: &[&str] = &[
    "node.id",
    "process.roles",
    "listeners",
    "advertised.listeners",
    "listener.security.protocol.map",
    "controller.listener.names",
    "controller.quorum.voters",
    "inter.broker.listener.name",
    "log.dirs",
    "num.partitions",
    "auto.create.topics.enable",
    "default.replication.factor",
    "min.insync.replicas",
    "offsets.topic.replication.factor",
    "transaction.state.log.replication.factor",
    "transaction.state.log.min.isr",
    "share.coordinator.state.topic.replication.factor",
    "share.coordinator.state.topic.min.isr",
    "group.initial.rebalance.delay.ms",
];

fn property(var: &str) -> String {
    var["KAFKA_".len()..]
        .to_ascii_lowercase()
        .replace("___", "-")
        .replace("__", "\u{0}")
        .replace('_', ".")
        .replace('\u{0}', "_")
}

/// `NAME://host:port,…` → name → (host, port).
fn listeners(value: &str) -> BTreeMap<String, (String, u16)> {
    value
        .split(',')
        .map(|l| {
            let (name, addr) = l
                .split_once("://")
                .unwrap_or_else(|| panic!("listener {l}"));
            let (host, port) = addr
                .rsplit_once(':')
                .unwrap_or_else(|| panic!("listener {l}"));
            (name.to_string(), (host.to_string(), port.parse().unwrap()))
        })
        .collect()
}

#[test]
fn kafka_runs_in_kraft_mode_with_the_images_documented_settings() {
    let Some(compose) = stack::compose() else {
        return;
    };
    let kafka = &compose["services"]["kafka"];
    assert!(
        kafka["image"]
            .as_str()
            .unwrap()
            .starts_with("apache/kafka:"),
        "the official image"
    );
    let env = environment(&compose, "kafka");
    let props: BTreeMap<String, String> = env
        .iter()
        .filter(|(k, _)| k.starts_with("KAFKA_") && !NOT_PROPERTIES.contains(&k.as_str()))
        .map(|(k, v)| (property(k), v.clone()))
        .collect();
    for key in props.keys() {
        assert!(
            KRAFT_BROKER_KEYS.contains(&key.as_str()),
            "{key} is not a KRaft broker setting"
        );
    }
    let p = |key: &str| {
        props
            .get(key)
            .unwrap_or_else(|| panic!("{key} is required"))
            .as_str()
    };

    // KRaft: the image insists on CLUSTER_ID (a base64url UUID) when process.roles is set.
    let cluster = env_value(&compose, "kafka", "CLUSTER_ID").expect("CLUSTER_ID in KRaft mode");
    let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&cluster);
    assert_eq!(
        id.map(|b| b.len()).ok(),
        Some(16),
        "CLUSTER_ID {cluster} is not a UUID"
    );
    let roles: BTreeSet<&str> = p("process.roles").split(',').collect();
    assert_eq!(
        roles,
        BTreeSet::from(["broker", "controller"]),
        "one combined node"
    );

    let listening = listeners(p("listeners"));
    let advertised = listeners(p("advertised.listeners"));
    let protocols: BTreeMap<&str, &str> = p("listener.security.protocol.map")
        .split(',')
        .map(|m| m.split_once(':').unwrap())
        .collect();
    for name in listening.keys() {
        assert!(
            protocols.contains_key(name.as_str()),
            "{name} has no security protocol"
        );
    }
    let controller = p("controller.listener.names");
    let (_, controller_port) = &listening[controller];
    assert!(
        !advertised.contains_key(controller),
        "a controller listener is not advertised"
    );
    assert!(advertised.contains_key(p("inter.broker.listener.name")));
    for (name, (_, port)) in &advertised {
        assert_eq!(
            listening.get(name).map(|l| l.1),
            Some(*port),
            "{name} listens where it is advertised"
        );
    }
    // The only voter is this node, on its controller listener, under the container's host name.
    let hostname = kafka["hostname"].as_str().expect("a stable host name");
    let voter = format!("{}@{hostname}:{controller_port}", p("node.id"));
    assert_eq!(p("controller.quorum.voters"), voter);
    for (key, value) in &props {
        if key.ends_with("replication.factor") || key.ends_with("min.isr") {
            assert_eq!(value, "1", "{key}: there is one broker");
        }
    }

    // ghosthunt and the producer connect to the advertised in-network listener.
    let (host, port) = &advertised[p("inter.broker.listener.name")];
    for service in ["ghosthunt", "producer"] {
        let brokers = env_value(&compose, service, "GHOSTHUNT__KAFKA__BROKERS");
        assert_eq!(
            brokers,
            Some(format!("{host}:{port}")),
            "{service}'s brokers"
        );
    }
    // The host listener is published, on loopback only.
    let host_listener = advertised.iter().find(|(_, (h, _))| h == "localhost");
    let (_, (_, host_port)) = host_listener.expect("a listener for clients on the host");
    let published: Vec<&str> = kafka["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        published.contains(&format!("127.0.0.1:{host_port}:{host_port}/tcp").as_str()),
        "{published:?}"
    );
}

#[test]
fn ghosthunt_scales_out_and_uses_the_topics_kafka_init_creates() {
    let Some(compose) = stack::compose() else {
        return;
    };
    let services = &compose["services"];
    let ghosthunt = &services["ghosthunt"];
    assert!(
        ghosthunt.get("container_name").is_none() && ghosthunt.get("ports").is_none(),
        "a fixed container name or host port stops `--scale ghosthunt=N`"
    );
    let settings = settings_from(environment(&compose, "ghosthunt"), "ghosthunt");
    let SourceSettings::Kafka(source) = &settings.source else {
        panic!("ghosthunt reads Kafka")
    };
    let (OutputSettings::Kafka { topic: alerts }, OutputSettings::Kafka { topic: dead }) =
        (&settings.alerts, &settings.dead_letters)
    else {
        panic!("alerts and dead letters go to Kafka")
    };
    let listen: SocketAddr = settings.metrics_listen.expect("metrics on");
    assert!(
        listen.ip().is_unspecified(),
        "Prometheus scrapes the container's address, not its loopback"
    );
    let exposed: Vec<&str> = ghosthunt["expose"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(exposed, [listen.port().to_string()]);

    let created: BTreeMap<String, i32> = stack::init_topics(&compose).into_iter().collect();
    let produce = stack::command(&compose, "producer");
    let produced = &produce[produce.iter().position(|a| a == "--topic").unwrap() + 1];
    let mut used: Vec<&String> = source.topics.iter().collect();
    used.extend([alerts, dead, produced]);
    assert_eq!(
        settings.scale.mode,
        ghosthunt::settings::ScaleMode::Repartition,
        "scaled instances repartition windowed hunts by key"
    );
    used.push(&settings.scale.topic);
    for topic in used {
        assert!(
            created.contains_key(topic),
            "{topic} is used but kafka-init does not create it"
        );
    }
    assert!(
        source.topics.contains(produced),
        "the producer feeds the topic ghosthunt reads"
    );
    assert!(
        created[produced] >= 3,
        "`--scale ghosthunt=3` needs at least 3 partitions"
    );
    settings_from(environment(&compose, "producer"), "producer");

    // The producer has no /healthz for the image's HEALTHCHECK; both wait for the topics.
    // (`disable: true`, which docker-compose v1 prints as its equivalent `test: [NONE]`).
    let check = &services["producer"]["healthcheck"];
    assert!(
        check["disable"] == true || check["test"] == serde_json::json!(["NONE"]),
        "{check}"
    );
    for service in ["ghosthunt", "producer"] {
        let condition = &services[service]["depends_on"]["kafka-init"]["condition"];
        assert_eq!(condition, "service_completed_successfully", "{service}");
    }
    assert_eq!(
        services["kafka-init"]["depends_on"]["kafka"]["condition"],
        "service_healthy"
    );

    // Prometheus finds every container of the service by DNS, on the metrics port.
    let prometheus = stack::yaml("docker/prometheus/prometheus.yml");
    let job = prometheus["scrape_configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job_name"] == "ghosthunt");
    let sd = &job.expect("a ghosthunt scrape job")["dns_sd_configs"][0];
    assert_eq!(sd["names"], serde_json::json!(["ghosthunt"]));
    assert_eq!(
        (sd["type"].as_str(), sd["port"].as_u64()),
        (Some("A"), Some(u64::from(listen.port())))
    );
}

#[test]
fn prometheus_config_and_alert_rules_pass_promtool_as_compose_mounts_them() {
    let (Some(compose), Some(promtool)) = (stack::compose(), stack::promtool()) else {
        return;
    };
    // Lay out the container's files as compose mounts them, so promtool resolves rule_files as Prometheus will.
    let container = tempfile::tempdir().unwrap();
    for (src, dst) in binds(&compose, "prometheus") {
        let to = container.path().join(dst.trim_start_matches('/'));
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&src, &to).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    }
    let args = stack::command(&compose, "prometheus");
    let config = args
        .iter()
        .find_map(|a| a.strip_prefix("--config.file="))
        .expect("--config.file");
    let rules = stack::alert_rules(&stack::yaml("dashboards/alerts.yml"));
    let (code, out, err) = stack::run(
        Command::new(&promtool)
            .args(["check", "config"])
            .arg(container.path().join(config.trim_start_matches('/'))),
    );
    assert_eq!(code, 0, "promtool check config:\n{out}{err}");
    assert!(out.contains("SUCCESS: 1 rule files found"), "{out}");
    assert!(
        out.contains(&format!("SUCCESS: {} rules found", rules.len())),
        "{out}"
    );

    let (code, out, err) = stack::run(
        Command::new(&promtool)
            .args(["check", "rules"])
            .arg(repo().join("dashboards/alerts.yml")),
    );
    assert_eq!(code, 0, "promtool check rules:\n{out}{err}");
    let (code, out, err) = stack::run(
        Command::new(&promtool)
            .args(["test", "rules"])
            .arg(repo().join("dashboards/alerts.test.yml")),
    );
    assert_eq!(code, 0, "promtool test rules:\n{out}{err}");

    // Every alert has a unit test in which it fires.
    let tests = stack::yaml("dashboards/alerts.test.yml");
    let fired: BTreeSet<&str> = tests["tests"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_array().unwrap())
        .filter(|c| c["exp_alerts"].as_array().is_some_and(|a| !a.is_empty()))
        .map(|c| c["alertname"].as_str().unwrap())
        .collect();
    for (name, _) in &rules {
        assert!(
            fired.contains(name.as_str()),
            "{name} has no unit test in which it fires"
        );
    }
}

#[test]
fn grafana_loads_the_dashboards_from_the_stacks_prometheus() {
    let Some(compose) = stack::compose() else {
        return;
    };
    let provisioning = host_path(&compose, "grafana", "/etc/grafana/provisioning");
    let read = |p: PathBuf| -> Value {
        serde_saphyr::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
    };
    let sources = read(provisioning.join("datasources/prometheus.yml"));
    let source = &sources["datasources"][0];
    assert_eq!(
        (source["type"].as_str(), source["isDefault"].as_bool()),
        (Some("prometheus"), Some(true))
    );
    // Prometheus listens on its default port: the compose command does not move it.
    assert!(
        !stack::command(&compose, "prometheus")
            .iter()
            .any(|a| a.starts_with("--web.listen-address"))
    );
    assert_eq!(source["url"], "http://prometheus:9090");
    let interval =
        stack::yaml("docker/prometheus/prometheus.yml")["global"]["scrape_interval"].clone();
    assert_eq!(
        source["jsonData"]["timeInterval"], interval,
        "Grafana's $__rate_interval follows the scrape interval"
    );

    let providers = read(provisioning.join("dashboards/ghosthunt.yml"));
    let folder = providers["providers"][0]["options"]["path"]
        .as_str()
        .unwrap();
    assert!(
        host_path(&compose, "grafana", folder)
            .join("ghosthunt.json")
            .is_file()
    );
    let home = env_value(
        &compose,
        "grafana",
        "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH",
    )
    .unwrap();
    assert!(host_path(&compose, "grafana", &home).is_file(), "{home}");
}
