//! Store health: one watcher checks the store every health interval and drives both
//! grpc.health.v1 and `/readyz`.
//!
//! The check is the store's `ping`: for Redis a PING, then the eviction-policy survey of every
//! server (on a Cluster, every master, found by probing the slot map, which also heals a stale
//! cluster connection). Not ready is NOT_SERVING on gRPC and 503 on `/readyz`, whose body says
//! why (the store unreachable, or the `maxmemory-policy` that makes Redis evict).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::error::CartError;
use crate::store::SharedStore;

/// Services whose health follows the store's.
const WATCHED_SERVICES: [&str; 2] = ["", "cart.v1.CartService"];

/// The outcome of the last store check, read by `/readyz`: `None` when ready, else why not.
#[derive(Debug, Clone)]
pub struct Readiness(Arc<RwLock<Option<String>>>);

impl Default for Readiness {
    fn default() -> Self {
        Self(Arc::new(RwLock::new(Some(
            "cart store not checked yet".to_owned(),
        ))))
    }
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.problem().is_none()
    }

    /// Why the service is not ready, if it is not.
    pub fn problem(&self) -> Option<String> {
        self.0.read().expect("not poisoned").clone()
    }

    /// Records a check's outcome; returns whether it differs from the last one.
    fn set(&self, problem: Option<String>) -> bool {
        let mut current = self.0.write().expect("not poisoned");
        let changed = *current != problem;
        *current = problem;
        changed
    }
}

/// What `/readyz` says about a failed check: the error and its causes.
fn describe(error: &CartError) -> String {
    let mut text = format!("not ready: {error}");
    let mut cause = std::error::Error::source(error);
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

/// Checks the store every `period` until `shutdown` resolves, reporting each change.
pub async fn watch_store(
    store: SharedStore,
    reporter: HealthReporter,
    readiness: Readiness,
    period: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut first = true;
    loop {
        let problem = match tokio::time::timeout(
            period.max(Duration::from_millis(500)),
            store.ping(),
        )
        .await
        {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(describe(&error)),
            Err(_) => {
                Some("not ready: the cart store did not answer its health check in time".into())
            }
        };
        let ready = problem.is_none();
        crate::metrics::global().set_store_connected(ready);
        let was_ready = readiness.is_ready();
        if readiness.set(problem.clone()) || first {
            if was_ready != ready || first {
                let status = if ready {
                    ServingStatus::Serving
                } else {
                    ServingStatus::NotServing
                };
                for service in WATCHED_SERVICES {
                    reporter.set_service_status(service, status).await;
                }
            }
            match problem {
                None => tracing::info!("cart store ready: serving"),
                Some(problem) => tracing::warn!(%problem, "cart store not ready: not serving"),
            }
            first = false;
        }
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = shutdown.changed() => return,
        }
    }
}
