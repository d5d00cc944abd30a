//! The connection to Redis: one server or a Cluster, chosen by the URL, both established
//! lazily so the service starts while Redis is down and reconnects by itself. A Cluster's
//! connection also learns the slots anew when they move (see [`Cluster`]), and the health
//! check reads `INFO memory` from every master of the slot map it probes.
//!
//! URLs: `redis://[user:password@]host:port[/db]`, `rediss://…` for TLS, and for Cluster
//! `redis+cluster://[user:password@]host:port,host:port,…` (or `rediss+cluster://`), or a
//! comma-separated list of `redis://`/`rediss://` seed URLs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{
    AsyncConnectionConfig, Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult,
    ServerErrorKind, TlsCertificates, Value,
};

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

/// Address of one node, as the cluster names it.
pub type NodeAddr = (String, u16);

/// How long after one new cluster connection the next may be made: the burst of failures one
/// change of the cluster causes makes one new connection, not one per call.
const REBUILD_SPACING: Duration = Duration::from_millis(500);

/// A Redis Cluster whose connection heals itself.
///
/// The cluster client follows MOVED and ASK, waits out TRYAGAIN and refreshes its slot map on
/// MOVED. But a node that `redis-cli --cluster del-node` removed keeps running with its cluster
/// state wiped and answers CLUSTERDOWN for the slots the client still maps to it, and nothing
/// in the client then asks the cluster again. So the connection is replaced (a new client
/// learns the slots anew, from the nodes of the last slot map probed) when a call fails with
/// CLUSTERDOWN, a redirect it could not follow or a connection error, and when the periodic
/// probe ([`Cluster::probe`], every health check) sees a slot map other than the one the
/// connection was made under. Calls in flight finish on the connection they started on.
pub struct Cluster {
    /// The configured seed URLs (`redis://` or `rediss://`, credentials included).
    seeds: Vec<String>,
    timeouts: RedisTimeouts,
    ca_cert: Option<Vec<u8>>,
    state: std::sync::Mutex<ClusterState>,
    /// Held while a connection is being made, so that one is made at a time.
    connecting: tokio::sync::Mutex<()>,
    /// Plain connections to single nodes, for the probes (CLUSTER SLOTS, INFO).
    probes: tokio::sync::Mutex<HashMap<NodeAddr, MultiplexedConnection>>,
}

#[derive(Default)]
struct ClusterState {
    connection: Option<ClusterConnection>,
    /// Bumped by every new connection, so that failures seen on an old one replace it once.
    generation: u64,
    /// When the last new connection was asked for.
    rebuilt_at: Option<Instant>,
    rebuilding: bool,
    /// The slot map the last probe saw (its nodes seed the next connection).
    probed: Option<SlotView>,
    /// The slot map probed when the current connection was made.
    followed: Option<SlotView>,
}

/// A handle to Redis; cheap to clone.
#[derive(Clone)]
pub enum Connection {
    /// `ConnectionManager` reconnects by itself.
    Single {
        manager: ConnectionManager,
        /// `host:port`, for messages.
        name: String,
    },
    Cluster(Arc<Cluster>),
}

/// A ready connection, on which commands and scripts run.
pub enum Active {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

fn invalid_url(message: impl std::fmt::Display) -> CartError {
    CartError::Internal(format!("invalid redis url: {message}").into())
}

fn certificates(root_cert: Option<Vec<u8>>) -> TlsCertificates {
    TlsCertificates {
        client_tls: None,
        root_cert,
    }
}

impl Connection {
    /// Prepares a connection without connecting; fails only on a malformed URL or CA file.
    pub fn open(
        url: &str,
        timeouts: RedisTimeouts,
        ca_cert: Option<Vec<u8>>,
    ) -> Result<Self, CartError> {
        match topology(url).map_err(invalid_url)? {
            Topology::Single(url) => {
                let client = match ca_cert {
                    Some(ca) => redis::Client::build_with_tls(url.as_str(), certificates(Some(ca))),
                    None => redis::Client::open(url.as_str()),
                }
                .map_err(invalid_url)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeouts.connect))
                    // No response timeout of redis-rs's own: every command is sent under one
                    // of the store's (a call's `timeout_at` its deadline, PING's and INFO's
                    // `timeout`, loading the library at start), and each of redis-rs's costs a
                    // timer per command (some 1,100 instructions of a Clear).
                    .set_response_timeout(None)
                    .set_number_of_retries(2)
                    .set_max_delay(std::time::Duration::from_millis(500));
                let manager = ConnectionManager::new_lazy_with_config(client, config)
                    .map_err(|e| CartError::Internal(Box::new(e)))?;
                let name = server_endpoint(&url).map_or_else(
                    || "redis".to_owned(),
                    |(host, port)| format!("{host}:{port}"),
                );
                Ok(Self::Single { manager, name })
            }
            Topology::Cluster(seeds) => {
                let cluster = Cluster {
                    seeds,
                    timeouts,
                    ca_cert,
                    state: Default::default(),
                    connecting: Default::default(),
                    probes: Default::default(),
                };
                // A malformed seed fails here, not on first use.
                cluster.client(&cluster.seeds)?;
                Ok(Self::Cluster(Arc::new(cluster)))
            }
        }
    }

    /// A connection ready for commands (connecting to a cluster first if needed).
    pub async fn active(&self) -> Result<Active, RedisError> {
        match self {
            Self::Single { manager, .. } => Ok(Active::Single(manager.clone())),
            Self::Cluster(cluster) => cluster.active().await.map(Active::Cluster),
        }
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// Which cluster connection [`Connection::active`] hands out now (0 for one server).
    pub fn generation(&self) -> u64 {
        match self {
            Self::Single { .. } => 0,
            Self::Cluster(cluster) => cluster.state.lock().expect("not poisoned").generation,
        }
    }

    /// After a call on the connection of `generation` failed with `error`: a cluster
    /// connection is replaced when the error says its slot map may be wrong or a node went
    /// away (see [`Cluster`]).
    pub fn heal(&self, generation: u64, error: &RedisError) {
        if let Self::Cluster(cluster) = self
            && suggests_new_slot_map(error)
        {
            cluster.refresh(generation, "a call failed");
        }
    }

    /// `INFO memory` of every server that holds carts: the one server, or every master of a
    /// Cluster (as its nodes report the slot map now, which also heals a stale connection).
    /// Each reply on its own; the whole fails only when no server can be asked.
    pub async fn memory_info(&self) -> Result<Vec<(String, RedisResult<String>)>, RedisError> {
        match self {
            Self::Single { manager, name } => {
                let mut manager = manager.clone();
                let info = redis::cmd("INFO")
                    .arg("memory")
                    .query_async::<String>(&mut manager)
                    .await;
                if let Err(error) = &info
                    && failure_is_connection(error)
                {
                    return Err(info.unwrap_err());
                }
                Ok(vec![(name.clone(), info)])
            }
            Self::Cluster(cluster) => {
                let view = cluster.probe().await?;
                let mut replies = Vec::new();
                for master in view.masters() {
                    let info = cluster
                        .node_command(&master, redis::cmd("INFO").arg("memory"))
                        .await
                        .and_then(|value| {
                            redis::from_redis_value::<String>(value).map_err(Into::into)
                        });
                    replies.push((format!("{}:{}", master.0, master.1), info));
                }
                Ok(replies)
            }
        }
    }
}

/// Errors after which a cluster connection's slot map may be wrong: the cluster said so, or a
/// node could not be reached (a timeout alone says nothing about the slots).
fn suggests_new_slot_map(error: &RedisError) -> bool {
    matches!(
        error.kind(),
        ErrorKind::Server(
            ServerErrorKind::ClusterDown
                | ServerErrorKind::Moved
                | ServerErrorKind::Ask
                | ServerErrorKind::MasterDown
                | ServerErrorKind::ReadOnly
        ) | ErrorKind::ClusterConnectionNotFound
    ) || (failure_is_connection(error) && !error.is_timeout())
}

/// Whether `error` is about the connection rather than an answer of the server.
pub fn failure_is_connection(error: &RedisError) -> bool {
    error.is_connection_refusal() || error.is_connection_dropped() || error.is_io_error()
}

impl Cluster {
    fn client(&self, seeds: &[String]) -> Result<ClusterClient, CartError> {
        let mut builder = ClusterClient::builder(seeds.to_vec())
            .connection_timeout(self.timeouts.connect)
            .response_timeout(self.timeouts.response)
            .retries(6)
            .min_retry_wait(20)
            .max_retry_wait(250);
        if let Some(ca) = &self.ca_cert {
            builder = builder.certs(certificates(Some(ca.clone())));
        }
        builder.build().map_err(invalid_url)
    }

    async fn active(self: &Arc<Self>) -> Result<ClusterConnection, RedisError> {
        if let Some(connection) = self.state.lock().expect("not poisoned").connection.clone() {
            return Ok(connection);
        }
        // Boxed: connecting is rare and its future large (about 1.3 KB), and every call's
        // future would otherwise hold room for it.
        Box::pin(self.connect(false)).await
    }

    /// Makes a new connection (one at a time), seeded by the nodes of the last slot map probed,
    /// then by the configured seeds. With `replace` false, a connection another caller made
    /// meanwhile is taken instead.
    async fn connect(&self, replace: bool) -> Result<ClusterConnection, RedisError> {
        let _one = self.connecting.lock().await;
        let probed = {
            let state = self.state.lock().expect("not poisoned");
            if !replace && let Some(connection) = &state.connection {
                return Ok(connection.clone());
            }
            state.probed.clone()
        };
        let mut seed_lists = Vec::new();
        if let Some(view) = &probed {
            seed_lists.push(
                view.nodes()
                    .iter()
                    .map(|node| self.node_url(node))
                    .collect(),
            );
        }
        seed_lists.push(self.seeds.clone());
        let mut last_error = None;
        for seeds in seed_lists {
            let client = self.client(&seeds).map_err(|e| {
                RedisError::from((ErrorKind::InvalidClientConfig, "bad seed", e.to_string()))
            })?;
            // A new client connects to every seed, then reads the slot map from one of them.
            let bound = self.timeouts.connect + self.timeouts.response;
            match tokio::time::timeout(bound, client.get_async_connection()).await {
                Ok(Ok(connection)) => {
                    let mut state = self.state.lock().expect("not poisoned");
                    state.connection = Some(connection.clone());
                    state.generation += 1;
                    state.followed = probed.clone();
                    return Ok(connection);
                }
                Ok(Err(error)) => last_error = Some(error),
                Err(_) => {
                    last_error = Some(RedisError::from(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "connecting to the redis cluster timed out",
                    )))
                }
            }
        }
        Err(last_error.expect("at least the configured seeds were tried"))
    }

    /// Replaces the connection in the background, unless it was replaced since `generation`,
    /// is being replaced, or was replaced less than [`REBUILD_SPACING`] ago. Returns whether
    /// it will be.
    fn refresh(self: &Arc<Self>, generation: u64, why: &'static str) -> bool {
        {
            let mut state = self.state.lock().expect("not poisoned");
            let recent = state
                .rebuilt_at
                .is_some_and(|at| at.elapsed() < REBUILD_SPACING);
            if state.generation != generation || state.rebuilding || recent {
                return false;
            }
            state.rebuilding = true;
            state.rebuilt_at = Some(Instant::now());
        }
        tracing::info!(
            why,
            "reconnecting to the redis cluster to learn its slots anew"
        );
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(error) = this.connect(true).await {
                tracing::warn!(%error, "could not reconnect to the redis cluster");
            }
            this.state.lock().expect("not poisoned").rebuilding = false;
        });
        true
    }

    /// The seed URL of `node`: the configured seeds' scheme, credentials and path.
    fn node_url(&self, (host, port): &NodeAddr) -> String {
        let template = &self.seeds[0];
        let (scheme, rest) = template.split_once("://").unwrap_or(("redis", template));
        let (userinfo, hosts) = match rest.rsplit_once('@') {
            Some((userinfo, hosts)) => (format!("{userinfo}@"), hosts),
            None => (String::new(), rest),
        };
        let path = hosts.find('/').map_or("", |at| &hosts[at..]);
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        format!("{scheme}://{userinfo}{host}:{port}{path}")
    }

    /// One command on one node, over a plain connection kept for the probes.
    async fn node_command(&self, node: &NodeAddr, cmd: &Cmd) -> RedisResult<Value> {
        let cached = self.probes.lock().await.get(node).cloned();
        let mut connection = match cached {
            Some(connection) => connection,
            None => {
                let url = self.node_url(node);
                let client = match &self.ca_cert {
                    Some(ca) => {
                        redis::Client::build_with_tls(url.as_str(), certificates(Some(ca.clone())))
                    }
                    None => redis::Client::open(url.as_str()),
                }?;
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.timeouts.connect))
                    .set_response_timeout(Some(self.timeouts.response));
                let connection = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                self.probes
                    .lock()
                    .await
                    .insert(node.clone(), connection.clone());
                connection
            }
        };
        let reply = cmd.query_async::<Value>(&mut connection).await;
        if let Err(error) = &reply
            && failure_is_connection(error)
        {
            self.probes.lock().await.remove(node);
        }
        reply
    }

    /// Asks the nodes of the last slot map probed, and the seeds, for the slot map, and
    /// returns the one most of them report in full (a node that `del-node` reset reports none).
    /// When it is not the one the connection was made under, the connection is replaced.
    async fn probe(self: &Arc<Self>) -> Result<SlotView, RedisError> {
        // The probes follow the cluster the service is connected to: connect first.
        self.active().await?;
        let (nodes, generation) = {
            let state = self.state.lock().expect("not poisoned");
            let mut nodes = state
                .probed
                .as_ref()
                .map(SlotView::nodes)
                .unwrap_or_default();
            // The seeds too, in case every node of the last view has gone.
            for seed in self.seeds.iter().filter_map(|seed| seed_addr(seed)) {
                if !nodes.contains(&seed) {
                    nodes.push(seed);
                }
            }
            (nodes, state.generation)
        };
        // Probe connections to nodes that left (neither in the view nor seeds) are closed.
        self.probes
            .lock()
            .await
            .retain(|node, _| nodes.contains(node));
        let mut slots = redis::cmd("CLUSTER");
        slots.arg("SLOTS");
        let mut views: Vec<(SlotView, usize)> = Vec::new();
        let mut last_error = None;
        for node in &nodes {
            match self.node_command(node, &slots).await {
                Ok(reply) => {
                    if let Some(view) = SlotView::parse(&reply, &node.0) {
                        match views.iter_mut().find(|(seen, _)| *seen == view) {
                            Some((_, count)) => *count += 1,
                            None => views.push((view, 1)),
                        }
                    }
                }
                Err(error) => last_error = Some(error),
            }
        }
        let Some((view, _)) = views.into_iter().max_by_key(|(_, count)| *count) else {
            return Err(last_error.unwrap_or_else(|| {
                RedisError::from((
                    ErrorKind::Server(ServerErrorKind::ClusterDown),
                    "no node of the redis cluster reports every slot served",
                ))
            }));
        };
        let stale = {
            let mut state = self.state.lock().expect("not poisoned");
            state.probed = Some(view.clone());
            match &state.followed {
                None => {
                    // The first connection was made from the seeds just before: it follows this.
                    state.followed = Some(view.clone());
                    false
                }
                Some(followed) => *followed != view,
            }
        };
        if stale {
            self.refresh(generation, "the cluster's slots moved");
        }
        Ok(view)
    }
}

/// `(host, port)` of a seed URL.
fn seed_addr(seed: &str) -> Option<NodeAddr> {
    let rest = seed.split_once("://")?.1;
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let authority = rest.split('/').next()?;
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (host, port.parse().ok()?),
        _ => (authority, 6379),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| (host.to_owned(), port))
}

/// Who serves which slots, as one node reports it (`CLUSTER SLOTS`), in slot order; only a
/// report that covers every slot makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotView {
    ranges: Vec<SlotRange>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct SlotRange {
    start: u16,
    end: u16,
    master: NodeAddr,
    replicas: Vec<NodeAddr>,
}

const SLOTS: u32 = 16384;

impl SlotView {
    /// Reads a `CLUSTER SLOTS` reply of the node at `host` (which an empty host names).
    fn parse(reply: &Value, host: &str) -> Option<Self> {
        let Value::Array(items) = reply else {
            return None;
        };
        let node = |value: &Value| -> Option<NodeAddr> {
            let Value::Array(fields) = value else {
                return None;
            };
            let name = match fields.first()? {
                Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                Value::SimpleString(text) => text.clone(),
                Value::Nil => String::new(),
                _ => return None,
            };
            let Value::Int(port) = fields.get(1)? else {
                return None;
            };
            let name = if name.is_empty() {
                host.to_owned()
            } else {
                name
            };
            if name == "?" {
                return None;
            }
            Some((name, u16::try_from(*port).ok()?))
        };
        let mut ranges = Vec::new();
        for item in items {
            let Value::Array(fields) = item else {
                return None;
            };
            let (Some(Value::Int(start)), Some(Value::Int(end))) = (fields.first(), fields.get(1))
            else {
                return None;
            };
            let master = node(fields.get(2)?)?;
            let mut replicas: Vec<NodeAddr> = fields.iter().skip(3).filter_map(node).collect();
            replicas.sort();
            ranges.push(SlotRange {
                start: u16::try_from(*start).ok()?,
                end: u16::try_from(*end).ok()?,
                master,
                replicas,
            });
        }
        ranges.sort_by_key(|range| range.start);
        let covered: u32 = ranges
            .iter()
            .map(|r| u32::from(r.end.saturating_sub(r.start)) + 1)
            .sum();
        (covered == SLOTS).then_some(Self { ranges })
    }

    /// The masters, each once.
    pub fn masters(&self) -> Vec<NodeAddr> {
        let mut masters: Vec<NodeAddr> = self.ranges.iter().map(|r| r.master.clone()).collect();
        masters.sort();
        masters.dedup();
        masters
    }

    /// Every node, masters first.
    fn nodes(&self) -> Vec<NodeAddr> {
        let mut nodes = self.masters();
        for range in &self.ranges {
            for replica in &range.replicas {
                if !nodes.contains(replica) {
                    nodes.push(replica.clone());
                }
            }
        }
        nodes
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
    seed_addr(&first)
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

    fn node(host: &str, port: i64) -> Value {
        Value::Array(vec![
            Value::BulkString(host.as_bytes().to_vec()),
            Value::Int(port),
            Value::BulkString(b"id".to_vec()),
        ])
    }

    fn range(start: i64, end: i64, nodes: Vec<Value>) -> Value {
        let mut fields = vec![Value::Int(start), Value::Int(end)];
        fields.extend(nodes);
        Value::Array(fields)
    }

    #[test]
    fn a_slot_view_needs_every_slot_and_ignores_order() {
        let a = range(
            0,
            8191,
            vec![node("10.0.0.1", 7000), node("10.0.0.4", 7003)],
        );
        let b = range(8192, 16383, vec![node("", 7001)]);
        let view = SlotView::parse(&Value::Array(vec![b.clone(), a.clone()]), "10.0.0.2").unwrap();
        assert_eq!(
            view,
            SlotView::parse(&Value::Array(vec![a.clone(), b]), "10.0.0.2").unwrap()
        );
        // An empty host is the answering node's.
        assert_eq!(
            view.masters(),
            vec![("10.0.0.1".into(), 7000), ("10.0.0.2".into(), 7001)]
        );
        assert_eq!(view.nodes().len(), 3);
        // A node that del-node reset serves nothing; a half map is no view either.
        assert_eq!(SlotView::parse(&Value::Array(vec![]), "h"), None);
        assert_eq!(SlotView::parse(&Value::Array(vec![a]), "h"), None);
    }

    #[test]
    fn probe_urls_keep_the_seeds_scheme_and_credentials() {
        let cluster = match Connection::open(
            "rediss+cluster://u:p@a:7000,b:7001",
            RedisTimeouts::default(),
            None,
        )
        .unwrap()
        {
            Connection::Cluster(cluster) => cluster,
            Connection::Single { .. } => panic!("a cluster url"),
        };
        assert_eq!(
            cluster.node_url(&("10.0.0.9".into(), 7005)),
            "rediss://u:p@10.0.0.9:7005"
        );
        assert_eq!(
            cluster.node_url(&("::1".into(), 7005)),
            "rediss://u:p@[::1]:7005"
        );
        assert_eq!(seed_addr("redis://[::1]:7000/"), Some(("::1".into(), 7000)));
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
