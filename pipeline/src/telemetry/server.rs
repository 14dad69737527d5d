//! The HTTP endpoint: `/metrics` (Prometheus text format) and `/healthz` (200 when running, 503 with the
//! reason otherwise, e.g. while a source waits for its broker).

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use super::Metrics;

/// What `/healthz` reports. Cloned handles share one state.
#[derive(Clone, Debug)]
pub struct Health(Arc<RwLock<(bool, String)>>);

impl Default for Health {
    fn default() -> Self {
        Health(Arc::new(RwLock::new((false, "starting".to_string()))))
    }
}

impl Health {
    /// Healthy, with a short status.
    pub fn ready(&self, status: &str) {
        *self.0.write().expect("health lock") = (true, status.to_string());
    }

    /// Not healthy, with the reason.
    pub fn not_ready(&self, reason: &str) {
        *self.0.write().expect("health lock") = (false, reason.to_string());
    }

    pub fn get(&self) -> (bool, String) {
        self.0.read().expect("health lock").clone()
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Metrics,
    health: Health,
}

async fn serve_metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

async fn serve_health(State(state): State<AppState>) -> impl IntoResponse {
    let (ok, status) = state.health.get();
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({ "healthy": ok, "status": status }).to_string(),
    )
}

/// Binds `addr` and serves until `shutdown`; returns the bound address (port 0 picks a free one).
pub async fn serve(
    addr: SocketAddr,
    metrics: Metrics,
    health: Health,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(serve_metrics))
        .route("/healthz", get(serve_health))
        .with_state(AppState { metrics, health });
    let task = tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(error) = result {
            tracing::error!(%error, "The metrics endpoint stopped.");
        }
    });
    Ok((bound, task))
}
