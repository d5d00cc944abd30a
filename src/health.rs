//! Store health: one watcher pings the store and drives both grpc.health.v1 and `/readyz`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::store::SharedStore;

/// Services whose health follows the store's.
const WATCHED_SERVICES: [&str; 2] = ["", "cart.v1.CartService"];

/// Whether the store answered its last ping; read by `/readyz`.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn set(&self, ready: bool) -> bool {
        self.0.swap(ready, Ordering::Relaxed) != ready
    }
}

/// Pings the store every `period` until `shutdown` resolves, reporting each change.
pub async fn watch_store(
    store: SharedStore,
    reporter: HealthReporter,
    readiness: Readiness,
    period: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut first = true;
    loop {
        let ready = matches!(
            tokio::time::timeout(period.max(Duration::from_millis(500)), store.ping()).await,
            Ok(Ok(()))
        );
        crate::metrics::global().set_store_connected(ready);
        if readiness.set(ready) || first {
            let status = if ready {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            for service in WATCHED_SERVICES {
                reporter.set_service_status(service, status).await;
            }
            if ready {
                tracing::info!("cart store reachable: serving");
            } else {
                tracing::warn!("cart store unreachable: not serving");
            }
            first = false;
        }
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = shutdown.changed() => return,
        }
    }
}
