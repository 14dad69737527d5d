//! `ghosthunt healthcheck`: asks a running ghosthunt's `/healthz` whether it is healthy, so a container
//! image needs no curl for its HEALTHCHECK (and a Kubernetes exec probe none either).
//!
//! One HTTP/1.1 GET with `Connection: close` over a plain TCP socket, read to the end: the server is our
//! own endpoint (`server.rs`), it answers with a status line and a short JSON body, so std's sockets are
//! enough and the check stays a few hundred microseconds of work every interval.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Why a health check could not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("`{0}` is not an http://HOST:PORT/PATH address")]
    BadUrl(String),
    #[error("cannot resolve {0}: {1}")]
    Resolve(String, std::io::Error),
    #[error("cannot connect to {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("no answer from {0}: {1}")]
    Io(String, std::io::Error),
    #[error("{0} did not answer HTTP: {1:?}")]
    NotHttp(String, String),
    #[error("the metrics endpoint is off (metrics.listen is empty); give --url")]
    Disabled,
}

/// The answer of `/healthz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    /// 200 is healthy; the server answers 503 with the reason otherwise.
    pub fn healthy(&self) -> bool {
        self.status == 200
    }
}

/// `http://ADDR/healthz` for the configured `metrics.listen`; a wildcard address (0.0.0.0, ::), as in a
/// container, is asked on loopback.
pub fn default_url(listen: Option<SocketAddr>) -> Result<String, ProbeError> {
    let mut addr = listen.ok_or(ProbeError::Disabled)?;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    Ok(format!("http://{addr}/healthz"))
}

/// GETs `url` (`http://HOST:PORT/PATH`), each step bounded by `timeout`.
pub fn check(url: &str, timeout: Duration) -> Result<Answer, ProbeError> {
    let (authority, path) = split_url(url)?;
    let addrs: Vec<SocketAddr> = authority
        .to_socket_addrs()
        .map_err(|e| ProbeError::Resolve(authority.to_string(), e))?
        .collect();
    let mut last = None;
    let mut stream = None;
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let mut stream = stream.ok_or_else(|| {
        ProbeError::Connect(
            authority.to_string(),
            last.unwrap_or_else(|| std::io::Error::other("no address")),
        )
    })?;
    let io = |e| ProbeError::Io(authority.to_string(), e);
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nUser-Agent: ghosthunt-healthcheck\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).map_err(io)?;
    let mut response = Vec::new();
    // The server closes after one response; a small cap keeps a wrong port from filling memory.
    stream
        .take(64 * 1024)
        .read_to_end(&mut response)
        .map_err(io)?;
    parse_response(authority, &String::from_utf8_lossy(&response))
}

/// `http://host:port/path` → (`host:port`, `/path`).
fn split_url(url: &str) -> Result<(&str, &str), ProbeError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| ProbeError::BadUrl(url.to_string()))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    if authority.is_empty() || !authority.contains(':') {
        return Err(ProbeError::BadUrl(url.to_string()));
    }
    Ok((authority, path))
}

fn parse_response(from: &str, text: &str) -> Result<Answer, ProbeError> {
    let not_http = || ProbeError::NotHttp(from.to_string(), text.chars().take(80).collect());
    let status_line = text.lines().next().ok_or_else(not_http)?;
    let mut parts = status_line.split_whitespace();
    if !parts.next().is_some_and(|v| v.starts_with("HTTP/1.")) {
        return Err(not_http());
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(not_http)?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.trim().to_string())
        .unwrap_or_default();
    Ok(Answer { status, body })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::{Health, Metrics, serve};
    use tokio_util::sync::CancellationToken;

    #[test]
    fn wildcard_listen_address_is_asked_on_loopback() {
        assert_eq!(
            default_url(Some("0.0.0.0:9464".parse().unwrap())).unwrap(),
            "http://127.0.0.1:9464/healthz"
        );
        assert_eq!(
            default_url(Some("[::]:9464".parse().unwrap())).unwrap(),
            "http://[::1]:9464/healthz"
        );
        assert_eq!(
            default_url(Some("10.1.2.3:80".parse().unwrap())).unwrap(),
            "http://10.1.2.3:80/healthz"
        );
        assert!(matches!(default_url(None), Err(ProbeError::Disabled)));
    }

    #[test]
    fn urls_without_scheme_or_port_are_refused() {
        for bad in [
            "127.0.0.1:9464/healthz",
            "https://x:1/",
            "http:///healthz",
            "http://host/x",
        ] {
            assert!(
                matches!(split_url(bad), Err(ProbeError::BadUrl(_))),
                "{bad}"
            );
        }
        assert_eq!(split_url("http://h:1").unwrap(), ("h:1", "/"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn follows_the_servers_health_and_fails_when_nothing_listens() {
        let health = Health::default();
        let stop = CancellationToken::new();
        let (addr, task) = serve(
            "127.0.0.1:0".parse().unwrap(),
            Metrics::new(),
            health.clone(),
            stop.clone(),
        )
        .await
        .unwrap();
        let url = format!("http://{addr}/healthz");
        let ask =
            |url: String| tokio::task::spawn_blocking(move || check(&url, Duration::from_secs(2)));

        health.not_ready("waiting for Kafka at k:9092");
        let answer = ask(url.clone()).await.unwrap().unwrap();
        assert_eq!(answer.status, 503);
        assert!(!answer.healthy());
        assert!(answer.body.contains("waiting for Kafka"), "{answer:?}");

        health.ready("running");
        let answer = ask(url.clone()).await.unwrap().unwrap();
        assert!(answer.healthy(), "{answer:?}");
        assert!(answer.body.contains(r#""healthy":true"#), "{answer:?}");

        stop.cancel();
        task.await.unwrap();
        let gone = ask(url).await.unwrap();
        assert!(matches!(gone, Err(ProbeError::Connect(..))), "{gone:?}");
    }
}
