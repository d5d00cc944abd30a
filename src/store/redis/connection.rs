//! The connection to Redis: one server or a Cluster, chosen by the URL, both established
//! lazily so the service starts while Redis is down and reconnects by itself.
//!
//! URLs: `redis://[user:password@]host:port[/db]`, `rediss://…` for TLS, and for Cluster
//! `redis+cluster://[user:password@]host:port,host:port,…` (or `rediss+cluster://`), or a
//! comma-separated list of `redis://`/`rediss://` seed URLs.

use std::sync::Arc;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, TlsCertificates, Value};
use tokio::sync::OnceCell;

use super::RedisTimeouts;
use crate::error::CartError;

/// Where the URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topology {
    Single(String),
    /// Seed node URLs, each a plain `redis://` or `rediss://` URL.
    Cluster(Vec<String>),
}

/// Reads a `CART_REDIS_URL`.
pub fn topology(url: &str) -> Result<Topology, String> {
    let url = url.trim();
    for (cluster_scheme, scheme) in [
        ("redis+cluster://", "redis://"),
        ("rediss+cluster://", "rediss://"),
    ] {
        if let Some(rest) = url.strip_prefix(cluster_scheme) {
            let (userinfo, hosts) = match rest.rsplit_once('@') {
                Some((userinfo, hosts)) => (format!("{userinfo}@"), hosts),
                None => (String::new(), rest),
            };
            let (hosts, path) = match hosts.split_once('/') {
                Some((hosts, path)) => (hosts, format!("/{path}")),
                None => (hosts, String::new()),
            };
            let seeds: Vec<String> = hosts
                .split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .map(|host| format!("{scheme}{userinfo}{host}{path}"))
                .collect();
            if seeds.is_empty() {
                return Err("a cluster URL needs at least one host".into());
            }
            return Ok(Topology::Cluster(seeds));
        }
    }
    if url.contains(',') {
        let seeds: Vec<String> = url
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if seeds
            .iter()
            .any(|s| !(s.starts_with("redis://") || s.starts_with("rediss://")))
        {
            return Err("each seed of a cluster list must be a redis:// or rediss:// URL".into());
        }
        return Ok(Topology::Cluster(seeds));
    }
    if url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("unix://") {
        Ok(Topology::Single(url.to_owned()))
    } else {
        Err("expected redis://, rediss://, redis+cluster:// or a comma-separated seed list".into())
    }
}

/// A cluster connection made on first use (and again after a failed attempt).
pub struct LazyCluster {
    client: ClusterClient,
    connection: OnceCell<ClusterConnection>,
}

/// A handle to Redis; cheap to clone.
#[derive(Clone)]
pub enum Connection {
    /// `ConnectionManager` reconnects by itself.
    Single(ConnectionManager),
    Cluster(Arc<LazyCluster>),
}

/// A ready connection, on which commands and scripts run.
pub enum Active {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

fn invalid_url(message: impl std::fmt::Display) -> CartError {
    CartError::Internal(format!("invalid redis url: {message}").into())
}

impl Connection {
    /// Prepares a connection without connecting; fails only on a malformed URL or CA file.
    pub fn open(
        url: &str,
        timeouts: RedisTimeouts,
        ca_cert: Option<Vec<u8>>,
    ) -> Result<Self, CartError> {
        let certificates = |root_cert| TlsCertificates {
            client_tls: None,
            root_cert,
        };
        match topology(url).map_err(invalid_url)? {
            Topology::Single(url) => {
                let client = match ca_cert {
                    Some(ca) => redis::Client::build_with_tls(url.as_str(), certificates(Some(ca))),
                    None => redis::Client::open(url.as_str()),
                }
                .map_err(invalid_url)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeouts.connect))
                    .set_response_timeout(Some(timeouts.response))
                    .set_number_of_retries(2)
                    .set_max_delay(std::time::Duration::from_millis(500));
                let manager = ConnectionManager::new_lazy_with_config(client, config)
                    .map_err(|e| CartError::Internal(Box::new(e)))?;
                Ok(Self::Single(manager))
            }
            Topology::Cluster(seeds) => {
                let mut builder = ClusterClient::builder(seeds)
                    .connection_timeout(timeouts.connect)
                    .response_timeout(timeouts.response)
                    .retries(6)
                    .min_retry_wait(20)
                    .max_retry_wait(250);
                if let Some(ca) = ca_cert {
                    builder = builder.certs(certificates(Some(ca)));
                }
                let client = builder.build().map_err(invalid_url)?;
                Ok(Self::Cluster(Arc::new(LazyCluster {
                    client,
                    connection: OnceCell::new(),
                })))
            }
        }
    }

    /// A connection ready for commands (connecting to a cluster first if needed).
    pub async fn active(&self) -> Result<Active, RedisError> {
        match self {
            Self::Single(manager) => Ok(Active::Single(manager.clone())),
            Self::Cluster(lazy) => {
                let connection = lazy
                    .connection
                    .get_or_try_init(|| lazy.client.get_async_connection())
                    .await?;
                Ok(Active::Cluster(connection.clone()))
            }
        }
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }
}

impl ConnectionLike for Active {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// The `server.address` and `server.port` of a Redis URL (the first seed of a Cluster), for
/// spans. Redis's default port when the URL names none.
pub fn server_endpoint(url: &str) -> Option<(String, u16)> {
    let first = match topology(url).ok()? {
        Topology::Single(url) => url,
        Topology::Cluster(seeds) => seeds.into_iter().next()?,
    };
    let rest = first.split_once("://")?.1;
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let authority = rest.split('/').next()?;
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (host, port.parse().ok()?),
        _ => (authority, 6379),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| (host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_name_the_server() {
        let endpoint = |url| server_endpoint(url).unwrap();
        assert_eq!(endpoint("redis://h:6380/0"), ("h".into(), 6380));
        assert_eq!(endpoint("rediss://u:p@h"), ("h".into(), 6379));
        assert_eq!(endpoint("redis://[::1]:7000"), ("::1".into(), 7000));
        assert_eq!(
            endpoint("redis+cluster://u:p@a:7000,b:7001"),
            ("a".into(), 7000)
        );
    }

    #[test]
    fn urls_select_the_topology() {
        assert_eq!(
            topology("redis://h:6379/0").unwrap(),
            Topology::Single("redis://h:6379/0".into())
        );
        assert_eq!(
            topology("rediss://u:p@h:6380").unwrap(),
            Topology::Single("rediss://u:p@h:6380".into())
        );
        assert_eq!(
            topology("redis+cluster://u:p@a:7000,b:7001").unwrap(),
            Topology::Cluster(vec![
                "redis://u:p@a:7000".into(),
                "redis://u:p@b:7001".into()
            ])
        );
        assert_eq!(
            topology("rediss+cluster://a:7000").unwrap(),
            Topology::Cluster(vec!["rediss://a:7000".into()])
        );
        assert_eq!(
            topology("redis://a:7000, redis://b:7001").unwrap(),
            Topology::Cluster(vec!["redis://a:7000".into(), "redis://b:7001".into()])
        );
        for bad in [
            "http://x",
            "a:7000,b:7001",
            "redis+cluster://",
            "localhost:6379",
        ] {
            assert!(topology(bad).is_err(), "{bad:?}");
        }
    }
}
