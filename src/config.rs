//! Settings from flags, environment and the optional TOML file of SPEC §5.
//!
//! Precedence: a flag beats its environment variable, which beats the default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::admission::AdmissionConfig;
use crate::auth::{Authenticator, DEV_HMAC_SECRET, Principal, Scope};
use crate::domain::{CartPolicy, Limits, TenantId};
use crate::grpc_web::GrpcWebConfig;
use crate::secret::Secret;
use crate::store::redis::{Durability, RedisTimeouts};

pub const DEFAULT_GRPC_ADDR: &str = "127.0.0.1:50051";
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8080";

/// Command line of `cart-service`; every flag has an environment variable.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "cart-service",
    version,
    about = "Shopping carts over gRPC, in Redis or in memory"
)]
pub struct Cli {
    /// Address of the gRPC server (port 0 picks a free port).
    #[arg(long, env = "CART_GRPC_ADDR", default_value = DEFAULT_GRPC_ADDR)]
    pub grpc_addr: SocketAddr,
    /// Address of the HTTP server (shims, health, metrics).
    #[arg(long, env = "CART_HTTP_ADDR", default_value = DEFAULT_HTTP_ADDR)]
    pub http_addr: SocketAddr,
    /// Redis URL (`redis://`, `rediss://`); unset means the in-memory store.
    #[arg(long, env = "CART_REDIS_URL")]
    pub redis_url: Option<String>,
    /// PEM file of the CA that signed a `rediss://` server's certificate (default: system roots).
    #[arg(long, env = "CART_REDIS_CA_CERT")]
    pub redis_ca_cert: Option<PathBuf>,
    /// Path to the TOML config file (tenants, keys, hmac secret, TTLs, limits).
    #[arg(long = "config", env = "CART_CONFIG")]
    pub config: Option<PathBuf>,
}

/// One tenant of the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    pub id: String,
    #[serde(default)]
    pub api_keys: Vec<ApiKeyConfig>,
    pub zaui: Option<ZauiConfig>,
    pub xm: Option<XmConfig>,
    pub amazon: Option<AmazonConfig>,
    pub vtex: Option<VtexConfig>,
    /// This tenant's own concurrency limit (default: `[admission] max_in_flight_per_tenant`).
    pub max_in_flight: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    pub key: Secret<String>,
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZauiConfig {
    pub account_id: u64,
    pub token: Secret<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XmConfig {
    pub account: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmazonConfig {
    pub access_key_id: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VtexConfig {
    pub account: String,
}

/// `[durability]`: replicas that must acknowledge a mutation before it is acknowledged.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DurabilityConfig {
    #[serde(default)]
    pub min_replicas: u32,
    /// How long to wait for them, e.g. "50ms".
    pub timeout: Option<String>,
}

/// `[redis]`: how the Redis store may be used.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// Serve even when Redis's `maxmemory-policy` evicts keys (carts can be torn).
    #[serde(default)]
    pub allow_eviction: bool,
}

/// `[memory]`: the embedded in-memory store (used when no Redis is configured).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryConfig {
    /// The most bytes of carts and remembered outcomes it holds, e.g. "256MiB".
    pub max_bytes: Option<String>,
}

/// Reads a byte size: a number of bytes, or a number with `KiB`, `MiB`, `GiB` (powers of
/// 1024) or `KB`, `MB`, `GB` (powers of 1000), e.g. "256MiB".
pub fn parse_bytes(text: &str) -> Option<usize> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let multiplier: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    number.parse::<usize>().ok()?.checked_mul(multiplier)
}

/// The TOML file, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub hmac_secret: Secret<String>,
    pub cart_ttl: Option<String>,
    pub tombstone_ttl: Option<String>,
    /// How long one Redis call may take before it fails with UNAVAILABLE.
    pub redis_timeout: Option<String>,
    /// How long a mutation's outcome is remembered under its idempotency key (`request_id`).
    pub request_id_ttl: Option<String>,
    /// How long a frozen cart stays frozen before it opens by itself ("0s": until Unfreeze or
    /// Delete).
    pub freeze_ttl: Option<String>,
    #[serde(default)]
    pub durability: DurabilityConfig,
    #[serde(default)]
    pub redis: RedisConfig,
    #[serde(default)]
    pub limits: Limits,
    /// Concurrency limits, in all and per tenant.
    #[serde(default)]
    pub admission: AdmissionConfig,
    #[serde(default)]
    pub memory: MemoryConfig,
    #[serde(default)]
    pub tenants: Vec<TenantConfig>,
    /// Browsers calling the gRPC port (gRPC-Web): CORS.
    #[serde(default)]
    pub grpc_web: GrpcWebConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error(
        "refusing to bind {0} without a config file: dev mode serves unauthenticated, so only on loopback"
    )]
    DevModeNotLoopback(SocketAddr),
}

/// A TOML error without the quoted source line that `toml` adds: the line may hold a secret.
fn toml_error(error: &toml::de::Error, text: &str) -> String {
    let message = error.message().trim_end();
    match error.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {message}")
        }
        None => message.to_owned(),
    }
}

/// Everything the application needs to start. Its secrets (the hmac secret, the Redis URL,
/// which may hold a password, and the tenants' keys and tokens) are [`Secret`]s: `{:?}` of
/// the settings shows none of them.
#[derive(Debug, Clone)]
pub struct Settings {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub redis_url: Option<Secret<String>>,
    pub redis_ca_cert: Option<PathBuf>,
    pub redis_timeouts: RedisTimeouts,
    pub durability: Durability,
    /// `[redis] allow_eviction`: serve an evicting Redis anyway.
    pub allow_eviction: bool,
    /// The in-memory store's cap on the bytes it holds.
    pub memory_max_bytes: usize,
    pub policy: CartPolicy,
    pub hmac_secret: Secret<String>,
    pub authenticator: Authenticator,
    /// Tenants of the config file (empty in dev mode).
    pub tenants: Vec<TenantConfig>,
    /// How often the store is pinged for health.
    pub health_interval: Duration,
    /// gRPC-Web CORS (none in dev mode).
    pub grpc_web: GrpcWebConfig,
    /// Concurrency limits (per-tenant overrides are in `tenants`).
    pub admission: AdmissionConfig,
}

impl Settings {
    /// Dev mode: no config file, in-memory unless `redis_url` is given, loopback only.
    pub fn dev(grpc_addr: SocketAddr, http_addr: SocketAddr, redis_url: Option<String>) -> Self {
        Self {
            grpc_addr,
            http_addr,
            redis_url: redis_url.map(Secret::new),
            redis_ca_cert: None,
            redis_timeouts: RedisTimeouts::default(),
            durability: Durability::default(),
            allow_eviction: false,
            memory_max_bytes: crate::store::memory::DEFAULT_MAX_BYTES,
            policy: CartPolicy::default(),
            hmac_secret: Secret::new(DEV_HMAC_SECRET.to_owned()),
            authenticator: Authenticator::Dev,
            tenants: Vec::new(),
            health_interval: Duration::from_secs(1),
            grpc_web: GrpcWebConfig::default(),
            admission: AdmissionConfig::single_tenant(),
        }
    }

    pub fn from_cli(cli: Cli) -> Result<Self, ConfigError> {
        let mut settings = Self::dev(cli.grpc_addr, cli.http_addr, cli.redis_url);
        settings.redis_ca_cert = cli.redis_ca_cert;
        if let Some(path) = &cli.config {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            settings.apply_file(&text, path)?;
        }
        settings.check()?;
        Ok(settings)
    }

    /// Applies a config file's text (`path` only names it in errors).
    pub fn apply_file(&mut self, text: &str, path: &Path) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        let file: ConfigFile = toml::from_str(text).map_err(|e| invalid(toml_error(&e, text)))?;
        if file.hmac_secret.expose().len() < 16 {
            return Err(invalid("hmac_secret must be at least 16 characters".into()));
        }
        let duration = |name: &str, value: &Option<String>, default: Duration| match value {
            None => Ok(default),
            Some(text) => match humantime::parse_duration(text) {
                Ok(d) if !d.is_zero() => Ok(d),
                _ => Err(invalid(format!(
                    "{name}: {text:?} is not a duration like \"90d\""
                ))),
            },
        };
        self.policy = CartPolicy {
            cart_ttl: duration("cart_ttl", &file.cart_ttl, self.policy.cart_ttl)?,
            tombstone_ttl: duration(
                "tombstone_ttl",
                &file.tombstone_ttl,
                self.policy.tombstone_ttl,
            )?,
            request_id_ttl: duration(
                "request_id_ttl",
                &file.request_id_ttl,
                self.policy.request_id_ttl,
            )?,
            freeze_ttl: match &file.freeze_ttl {
                None => self.policy.freeze_ttl,
                Some(text) => humantime::parse_duration(text).map_err(|_| {
                    invalid(format!(
                        "freeze_ttl: {text:?} is not a duration like \"1h\" (\"0s\": never)"
                    ))
                })?,
            },
            limits: file.limits.clone(),
        };
        self.redis_timeouts.response = duration(
            "redis_timeout",
            &file.redis_timeout,
            self.redis_timeouts.response,
        )?;
        self.durability = Durability {
            min_replicas: file.durability.min_replicas,
            timeout: duration(
                "durability.timeout",
                &file.durability.timeout,
                self.durability.timeout,
            )?,
        };
        if self.durability.min_replicas > 0
            && self.durability.timeout >= self.redis_timeouts.response
        {
            return Err(invalid(format!(
                "durability.timeout ({:?}) must be shorter than redis_timeout ({:?})",
                self.durability.timeout, self.redis_timeouts.response
            )));
        }
        self.allow_eviction = file.redis.allow_eviction;
        if let Some(text) = &file.memory.max_bytes {
            self.memory_max_bytes = parse_bytes(text).filter(|n| *n > 0).ok_or_else(|| {
                invalid(format!(
                    "memory.max_bytes: {text:?} is not a size like \"256MiB\""
                ))
            })?;
        }
        let mut keys = Vec::new();
        let mut seen_tenants = std::collections::HashSet::new();
        for tenant in &file.tenants {
            let id = TenantId::parse(&tenant.id).map_err(|e| invalid(format!("tenants: {e}")))?;
            if !seen_tenants.insert(id.clone()) {
                return Err(invalid(format!("tenant {id} is defined twice")));
            }
            if tenant.max_in_flight == Some(0) {
                return Err(invalid(format!(
                    "tenant {id}: max_in_flight must be at least 1"
                )));
            }
            for key in &tenant.api_keys {
                let mut principal = Principal {
                    tenant: id.clone(),
                    read: false,
                    write: false,
                };
                for scope in &key.scopes {
                    match Scope::parse(scope) {
                        Some(Scope::Read) => principal.read = true,
                        Some(Scope::Write) => principal.write = true,
                        None => {
                            return Err(invalid(format!("tenant {id}: unknown scope {scope:?}")));
                        }
                    }
                }
                if key.key.expose().len() < 8 {
                    return Err(invalid(format!(
                        "tenant {id}: api keys must be at least 8 characters"
                    )));
                }
                keys.push((key.key.expose().as_str(), principal));
            }
        }
        let unique: std::collections::HashSet<_> = keys.iter().map(|(k, _)| *k).collect();
        if unique.len() != keys.len() {
            return Err(invalid("an api key is listed twice".into()));
        }
        self.authenticator = Authenticator::from_keys(keys);
        self.hmac_secret = file.hmac_secret;
        self.tenants = file.tenants;
        file.admission
            .check()
            .map_err(|e| invalid(format!("admission: {e}")))?;
        self.admission = file.admission;
        file.grpc_web.check().map_err(invalid)?;
        self.grpc_web = file.grpc_web;
        Ok(())
    }

    /// Refuses dev mode on a non-loopback address (SPEC §5).
    pub fn check(&self) -> Result<(), ConfigError> {
        if matches!(self.authenticator, Authenticator::Dev) {
            for addr in [self.grpc_addr, self.http_addr] {
                if !addr.ip().is_loopback() {
                    return Err(ConfigError::DevModeNotLoopback(addr));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
hmac_secret = "a long random string of at least 16"
cart_ttl = "90d"
tombstone_ttl = "30d"
[[tenants]]
id = "acme"
api_keys = [ { key = "sk_live_abcdef", scopes = ["carts:read", "carts:write"] } ]
zaui   = { account_id = 1234, token = "t" }
xm     = { account = "5f493c9f30ec2a0007a94fc8" }
amazon = { access_key_id = "AKIAEXAMPLE" }
vtex   = { account = "cosmetics2" }
"#;

    fn local() -> Settings {
        Settings::dev(
            DEFAULT_GRPC_ADDR.parse().unwrap(),
            DEFAULT_HTTP_ADDR.parse().unwrap(),
            None,
        )
    }

    #[test]
    fn the_spec_sample_parses() {
        let mut settings = local();
        settings.apply_file(SAMPLE, Path::new("c.toml")).unwrap();
        assert_eq!(settings.policy.cart_ttl, Duration::from_secs(90 * 86400));
        assert_eq!(settings.tenants[0].zaui.as_ref().unwrap().account_id, 1234);
        let principal = settings
            .authenticator
            .authenticate(Some("Bearer sk_live_abcdef"))
            .unwrap();
        assert_eq!(principal.tenant.as_str(), "acme");
        assert!(principal.read && principal.write);
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        for (text, needle) in [
            ("hmac_secret = \"short\"", "hmac_secret"),
            (
                "hmac_secret = \"0123456789abcdef\"\ncart_ttl = \"soon\"",
                "cart_ttl",
            ),
            ("hmac_secret = \"0123456789abcdef\"\nunknown = 1", "unknown"),
            (
                "hmac_secret = \"0123456789abcdef\"\n[[tenants]]\nid = \"a\"\napi_keys = [{ key = \"sk_12345678\", scopes = [\"carts:admin\"] }]",
                "scope",
            ),
            (
                "hmac_secret = \"0123456789abcdef\"\n[grpc_web]\ncors_allowed_origins = [\"shop.example\"]",
                "cors_allowed_origins",
            ),
        ] {
            let err = local().apply_file(text, Path::new("c.toml")).unwrap_err();
            assert!(err.to_string().contains(needle), "{err}");
        }
    }

    #[test]
    fn request_id_retention_and_durability_parse_and_are_checked() {
        let mut settings = local();
        let text = "hmac_secret = \"0123456789abcdef\"\nrequest_id_ttl = \"2h\"\n\
                    [durability]\nmin_replicas = 1\ntimeout = \"20ms\"\n";
        settings.apply_file(text, Path::new("c.toml")).unwrap();
        assert_eq!(settings.policy.request_id_ttl, Duration::from_secs(7200));
        assert_eq!(settings.durability.min_replicas, 1);
        assert!(!settings.allow_eviction);
        assert_eq!(settings.durability.timeout, Duration::from_millis(20));
        let too_slow = "hmac_secret = \"0123456789abcdef\"\nredis_timeout = \"1s\"\n[durability]\nmin_replicas = 1\ntimeout = \"2s\"";
        let err = local()
            .apply_file(too_slow, Path::new("c.toml"))
            .unwrap_err();
        assert!(err.to_string().contains("durability.timeout"), "{err}");
    }

    #[test]
    fn freeze_ttl_parses_zero_means_never_and_bad_text_is_refused() {
        let file =
            |ttl: &str| format!("hmac_secret = \"0123456789abcdef\"\nfreeze_ttl = \"{ttl}\"\n");
        assert_eq!(local().policy.freeze_ttl, Duration::from_secs(3600));
        let mut settings = local();
        settings
            .apply_file(&file("15m"), Path::new("c.toml"))
            .unwrap();
        assert_eq!(settings.policy.freeze_ttl, Duration::from_secs(900));
        assert_eq!(settings.policy.frozen_until(1_000), Some(1_000 + 900_000));
        settings
            .apply_file(&file("0s"), Path::new("c.toml"))
            .unwrap();
        assert_eq!(
            settings.policy.frozen_until(1_000),
            None,
            "0s: until Unfreeze or Delete"
        );
        let err = local()
            .apply_file(&file("a while"), Path::new("c.toml"))
            .unwrap_err();
        assert!(err.to_string().contains("freeze_ttl"), "{err}");
    }

    #[test]
    fn admission_limits_parse_with_per_tenant_overrides() {
        let mut settings = local();
        assert_eq!(local().admission, AdmissionConfig::single_tenant());
        assert_eq!(
            local().admission.max_in_flight_per_tenant,
            local().admission.max_in_flight
        );
        let mut configured = local();
        configured
            .apply_file("hmac_secret = \"0123456789abcdef\"\n", Path::new("c.toml"))
            .unwrap();
        assert_eq!(configured.admission, AdmissionConfig::default());
        let text = "hmac_secret = \"0123456789abcdef\"\n\
                    [admission]\nmax_in_flight = 100\nmax_in_flight_per_tenant = 10\n\
                    [[tenants]]\nid = \"big\"\nmax_in_flight = 50\n\
                    [[tenants]]\nid = \"small\"\n";
        settings.apply_file(text, Path::new("c.toml")).unwrap();
        assert_eq!(settings.admission.max_in_flight, 100);
        assert_eq!(settings.admission.max_in_flight_per_tenant, 10);
        assert_eq!(settings.tenants[0].max_in_flight, Some(50));
        assert_eq!(settings.tenants[1].max_in_flight, None);
        for bad in [
            "[admission]\nmax_in_flight = 0",
            "[admission]\nmax_in_flight_per_tenant = 0",
            "[admission]\nqueue = 10",
            "[[tenants]]\nid = \"a\"\nmax_in_flight = 0",
        ] {
            let text = format!("hmac_secret = \"0123456789abcdef\"\n{bad}");
            let err = local().apply_file(&text, Path::new("c.toml")).unwrap_err();
            assert!(
                err.to_string().contains("admission")
                    || err.to_string().contains("max_in_flight")
                    || err.to_string().contains("queue"),
                "{err}"
            );
        }
    }

    #[test]
    fn syntax_errors_name_the_line_not_its_text() {
        let text = "hmac_secret = \"0123456789abcdef-SECRET\" trailing";
        let err = local().apply_file(text, Path::new("c.toml")).unwrap_err();
        let shown = err.to_string();
        assert!(shown.contains("line 1"), "{shown}");
        assert!(!shown.contains("SECRET"), "{shown}");
    }

    #[test]
    fn no_secret_shows_in_debug_output() {
        let mut settings = Settings::dev(
            DEFAULT_GRPC_ADDR.parse().unwrap(),
            DEFAULT_HTTP_ADDR.parse().unwrap(),
            Some("redis://carts:redis-pass-XYZ@127.0.0.1:6379/".into()),
        );
        let text = SAMPLE
            .replace(
                "a long random string of at least 16",
                "hmac-secret-XYZ-0123456789",
            )
            .replace("token = \"t\"", "token = \"zaui-token-XYZ\"");
        settings.apply_file(&text, Path::new("c.toml")).unwrap();
        let file: ConfigFile = toml::from_str(&text).unwrap();
        let tenancy = crate::tenancy::Tenancy::new(settings.authenticator.clone(), &file.tenants);
        for shown in [
            format!("{settings:?}"),
            format!("{settings:#?}"),
            format!("{file:?}"),
            format!("{tenancy:?}"),
        ] {
            for secret in [
                "redis-pass-XYZ",
                "hmac-secret-XYZ",
                "sk_live_abcdef",
                "zaui-token-XYZ",
            ] {
                assert!(!shown.contains(secret), "{secret} in {shown}");
            }
            assert!(shown.contains(crate::secret::REDACTED));
        }
        assert_eq!(settings.hmac_secret.expose(), "hmac-secret-XYZ-0123456789");
        assert_eq!(
            settings.tenants[0].zaui.as_ref().unwrap().token.expose(),
            "zaui-token-XYZ"
        );
    }

    #[test]
    fn eviction_is_refused_unless_the_redis_table_allows_it() {
        let mut settings = local();
        settings
            .apply_file(
                "hmac_secret = \"0123456789abcdef\"\n[redis]\nallow_eviction = true\n",
                Path::new("c.toml"),
            )
            .unwrap();
        assert!(settings.allow_eviction);
        let typo = "hmac_secret = \"0123456789abcdef\"\n[redis]\nallow_evictions = true\n";
        let err = local().apply_file(typo, Path::new("c.toml")).unwrap_err();
        assert!(err.to_string().contains("allow_evictions"), "{err}");
    }

    #[test]
    fn the_memory_cap_is_a_byte_size() {
        assert_eq!(local().memory_max_bytes, 256 << 20);
        let mut settings = local();
        let text = "hmac_secret = \"0123456789abcdef\"\n[memory]\nmax_bytes = \"64MiB\"\n";
        settings.apply_file(text, Path::new("c.toml")).unwrap();
        assert_eq!(settings.memory_max_bytes, 64 << 20);
        assert_eq!(parse_bytes("2GB"), Some(2_000_000_000));
        assert_eq!(parse_bytes("512 KiB"), Some(512 << 10));
        assert_eq!(parse_bytes("4096"), Some(4096));
        for bad in ["", "MiB", "1.5GiB", "-1", "12 parsecs", "0"] {
            let text =
                format!("hmac_secret = \"0123456789abcdef\"\n[memory]\nmax_bytes = {bad:?}\n");
            let err = local().apply_file(&text, Path::new("c.toml")).unwrap_err();
            assert!(
                err.to_string().contains("memory.max_bytes"),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn dev_mode_refuses_a_public_bind() {
        let mut settings = local();
        settings.grpc_addr = "0.0.0.0:50051".parse().unwrap();
        assert!(matches!(
            settings.check(),
            Err(ConfigError::DevModeNotLoopback(_))
        ));
        settings.apply_file(SAMPLE, Path::new("c.toml")).unwrap();
        assert!(settings.check().is_ok());
    }
}
