//! gRPC-Web on the gRPC port, so front-end code calls `cart.v1` directly: tonic-web translates
//! the protocol, and CORS answers browsers only for the origins the config file allows.
//!
//! Without `[grpc_web] cors_allowed_origins` no CORS header is ever sent: same-origin callers
//! (a reverse proxy in front of both) and non-browser clients (buf curl) still work.

use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use serde::Deserialize;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// `[grpc_web]` of the config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcWebConfig {
    /// Origins (`https://shop.example`) whose pages may call the gRPC port; empty = no CORS.
    #[serde(default)]
    pub cors_allowed_origins: Vec<String>,
}

/// Request headers a gRPC-Web client sends beyond the CORS-safelisted ones.
const ALLOWED_HEADERS: [&str; 6] = [
    "content-type",
    "x-grpc-web",
    "x-user-agent",
    "grpc-timeout",
    "authorization",
    "x-request-id",
];

/// Response headers a page must read to see a call's status and its error details.
const EXPOSED_HEADERS: [&str; 3] = ["grpc-status", "grpc-message", "grpc-status-details-bin"];

/// How long a browser may cache a preflight answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

impl GrpcWebConfig {
    /// Refuses anything that is not a bare origin: a typo would otherwise silently never match.
    pub fn check(&self) -> Result<(), String> {
        for origin in &self.cors_allowed_origins {
            let rest = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            let bare = rest.is_some_and(|host| !host.is_empty() && !host.contains('/'));
            if !bare || HeaderValue::from_str(origin).is_err() {
                return Err(format!(
                    "grpc_web.cors_allowed_origins: {origin:?} is not an origin like \"https://shop.example\""
                ));
            }
        }
        Ok(())
    }

    /// The CORS layer for the gRPC port, or `None` when no origin is allowed.
    pub fn cors_layer(&self) -> Option<CorsLayer> {
        if self.cors_allowed_origins.is_empty() {
            return None;
        }
        let origins = self
            .cors_allowed_origins
            .iter()
            .map(|origin| HeaderValue::from_str(origin).expect("checked when the config loaded"));
        Some(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods([Method::POST])
                .allow_headers(ALLOWED_HEADERS.map(HeaderName::from_static))
                .expose_headers(EXPOSED_HEADERS.map(HeaderName::from_static))
                .max_age(PREFLIGHT_MAX_AGE),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(origins: &[&str]) -> GrpcWebConfig {
        GrpcWebConfig {
            cors_allowed_origins: origins.iter().map(|o| o.to_string()).collect(),
        }
    }

    #[test]
    fn bare_origins_pass_and_anything_else_is_refused() {
        assert!(
            config(&["https://shop.example", "http://localhost:3000"])
                .check()
                .is_ok()
        );
        for bad in [
            "*",
            "shop.example",
            "https://shop.example/",
            "https://",
            "ftp://x",
        ] {
            assert!(config(&[bad]).check().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn no_origins_means_no_cors_layer() {
        assert!(config(&[]).cors_layer().is_none());
        assert!(config(&["https://shop.example"]).cors_layer().is_some());
    }
}
