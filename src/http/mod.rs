//! The HTTP side (axum): liveness and readiness; the dialect shims mount here too.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::health::Readiness;

/// State shared by the HTTP handlers.
#[derive(Clone)]
pub struct HttpState {
    pub readiness: Readiness,
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// The process is up.
async fn healthz() -> &'static str {
    "ok\n"
}

/// The store answered its last ping.
async fn readyz(State(state): State<HttpState>) -> (StatusCode, &'static str) {
    if state.readiness.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "cart store unreachable\n")
    }
}
