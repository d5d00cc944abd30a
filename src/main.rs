//! `cart-service`: parse settings, start tracing, serve until SIGINT/SIGTERM.

use clap::Parser;

/// mimalloc: the request path allocates many small, short-lived buffers, which glibc's
/// allocator served at a quarter of the service's CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use cart_service::app::Application;
use cart_service::config::{Cli, Settings};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let telemetry = cart_service::telemetry::init();
    let code = serve().await;
    // Export the spans still batched before the process ends.
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    code
}

async fn serve() -> std::process::ExitCode {
    let settings = match Settings::from_cli(Cli::parse()) {
        Ok(settings) => settings,
        Err(error) => {
            tracing::error!(%error, "invalid configuration");
            return std::process::ExitCode::from(2);
        }
    };
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(error) => {
            tracing::error!(%error, "cannot start");
            return std::process::ExitCode::FAILURE;
        }
    };
    match app.run_until(cart_service::app::shutdown_signal()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "server failed");
            std::process::ExitCode::FAILURE
        }
    }
}
