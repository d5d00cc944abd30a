//! Redis's eviction policy: carts need `noeviction`.
//!
//! A Redis set up "as a cache" (`allkeys-lru`, `volatile-ttl`, …, a common default on managed
//! Redis) drops single keys when it is full: a cart's header without its lines, or lines
//! without their header. So the store reads `maxmemory_policy` from `INFO memory` (which needs
//! no CONFIG permission, as on managed Redis) on the server, or on every master of a Cluster:
//! before the first call, again before the next call after any connection failure (a
//! reconnect may reach another server) or a new Cluster connection (the Cluster changed
//! shape: a new master is surveyed before it serves), and at every health check (so a `CONFIG SET` at run
//! time is noticed within the health-check interval, both ways). While any of them evicts, the
//! store refuses calls (`UNAVAILABLE`) and health says NOT_SERVING, naming the policy, unless
//! the config says `[redis] allow_eviction = true`. A server that reports no policy, or
//! refuses INFO, is a warning and a metric, not a refusal: some managed Redis hide it.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use redis::{RedisError, RedisResult};

use crate::error::CartError;

/// The one policy under which Redis never drops a key to make room.
pub const NO_EVICTION: &str = "noeviction";

/// The `maxmemory_policy` field of an `INFO memory` reply, if it has one.
pub fn policy_of(info: &str) -> Option<&str> {
    info.lines()
        .find_map(|line| line.trim_end().strip_prefix("maxmemory_policy:"))
        .map(str::trim)
        .filter(|policy| !policy.is_empty())
}

/// What the servers said about their policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Survey {
    /// (server, policy) of every server that evicts.
    pub evicting: Vec<(String, String)>,
    /// Servers that reported no policy or refused INFO.
    pub unknown: Vec<String>,
}

impl Survey {
    /// Reads each server's `INFO memory` reply. A server error (NOPERM, an unknown command)
    /// leaves that server's policy unknown.
    pub fn of(replies: Vec<(String, RedisResult<String>)>) -> Self {
        let mut survey = Self::default();
        for (server, reply) in replies {
            match reply.as_deref().map(policy_of) {
                // Unreachable: nothing learned (its calls fail until it is back).
                Err(error) if unreachable(error) => {}
                Ok(Some(NO_EVICTION)) => {}
                Ok(Some(policy)) => survey.evicting.push((server, policy.to_owned())),
                Ok(None) | Err(_) => survey.unknown.push(server),
            }
        }
        survey
    }

    /// Why the store refuses to serve, naming each evicting server's policy.
    fn refusal(&self) -> Option<String> {
        if self.evicting.is_empty() {
            return None;
        }
        let servers: Vec<String> = self
            .evicting
            .iter()
            .map(|(server, policy)| format!("maxmemory-policy {policy} on {server}"))
            .collect();
        Some(format!(
            "redis evicts keys ({}): it could tear carts apart; set maxmemory-policy {NO_EVICTION}, \
             or [redis] allow_eviction = true to serve anyway",
            servers.join(", ")
        ))
    }
}

const UNVERIFIED: u8 = 0;
const SERVING: u8 = 1;
const REFUSING: u8 = 2;

/// Whether calls may go to Redis, as far as its eviction policy goes.
pub struct EvictionGuard {
    /// `[redis] allow_eviction`.
    allow: bool,
    state: AtomicU8,
    /// The connection generation the last survey ran on: a new cluster connection (the
    /// cluster changed shape) is surveyed before the next call, as a reconnect is.
    generation: AtomicU64,
    /// The refusal while refusing.
    refusal: std::sync::RwLock<String>,
    /// The last survey, so that each change is logged once.
    last: std::sync::Mutex<Option<Survey>>,
    /// Held while a survey runs, so that calls waiting for one share it.
    pub checking: tokio::sync::Mutex<()>,
}

impl EvictionGuard {
    pub fn new(allow: bool) -> Self {
        Self {
            allow,
            state: AtomicU8::new(UNVERIFIED),
            generation: AtomicU64::new(0),
            refusal: Default::default(),
            last: Default::default(),
            checking: Default::default(),
        }
    }

    /// After a connection failure: the next call surveys first (it may reach another server).
    pub fn invalidate(&self) {
        let _ =
            self.state
                .compare_exchange(SERVING, UNVERIFIED, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Whether a call on the connection of `generation` must wait for a survey first.
    pub fn needs_survey(&self, generation: u64) -> bool {
        self.state.load(Ordering::Relaxed) == UNVERIFIED
            || self.generation.load(Ordering::Relaxed) != generation
    }

    /// Refuses a call while an evicting Redis is refused.
    pub fn admit(&self) -> Result<(), CartError> {
        if self.state.load(Ordering::Relaxed) == REFUSING {
            let refusal = self.refusal.read().expect("not poisoned").clone();
            return Err(CartError::Unavailable(refusal.into()));
        }
        Ok(())
    }

    /// Takes the outcome of a survey that began on the connection of `generation`: logs and
    /// counts what changed, then admits or refuses.
    pub fn record(&self, survey: Survey, generation: u64) -> Result<(), CartError> {
        self.generation.store(generation, Ordering::Relaxed);
        let metrics = crate::metrics::global();
        metrics.set_eviction_survey(survey.evicting.len(), survey.unknown.len());
        let refusal = survey.refusal();
        let changed = {
            let mut last = self.last.lock().expect("not poisoned");
            let changed = last.as_ref() != Some(&survey);
            *last = Some(survey.clone());
            changed
        };
        if changed {
            if !survey.unknown.is_empty() {
                tracing::warn!(
                    servers = %survey.unknown.join(", "),
                    "redis reports no maxmemory_policy: cannot tell whether it evicts carts' keys"
                );
            }
            match (&refusal, self.allow) {
                (Some(refusal), false) => tracing::error!("{refusal}; not serving"),
                (Some(refusal), true) => {
                    tracing::warn!("{refusal}; serving anyway ([redis] allow_eviction = true)")
                }
                (None, _) if self.state.load(Ordering::Relaxed) == REFUSING => {
                    tracing::info!("redis maxmemory-policy is {NO_EVICTION} again: serving")
                }
                (None, _) => {}
            }
        }
        match refusal {
            Some(refusal) if !self.allow => {
                *self.refusal.write().expect("not poisoned") = refusal;
                self.state.store(REFUSING, Ordering::Relaxed);
            }
            _ => self.state.store(SERVING, Ordering::Relaxed),
        }
        self.admit()
    }
}

/// Whether INFO failed because Redis could not be reached (then nothing was learned).
pub fn unreachable(error: &RedisError) -> bool {
    super::connection::failure_is_connection(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "# Memory\r\nused_memory:1000\r\nmaxmemory:0\r\nmaxmemory_policy:allkeys-lru\r\nmem_fragmentation_ratio:1.2\r\n";

    #[test]
    fn the_policy_is_read_from_info_memory() {
        assert_eq!(policy_of(INFO), Some("allkeys-lru"));
        assert_eq!(policy_of("maxmemory_policy:noeviction"), Some(NO_EVICTION));
        assert_eq!(policy_of("# Memory\r\nused_memory:1000\r\n"), None);
        assert_eq!(policy_of("maxmemory_policy:\r\n"), None);
    }

    #[test]
    fn a_survey_names_each_evicting_server_and_counts_the_silent_ones() {
        let refused: RedisResult<String> = Err(RedisError::from((
            redis::ErrorKind::Server(redis::ServerErrorKind::NoPerm),
            "no permission",
        )));
        let survey = Survey::of(vec![
            ("a:1".into(), Ok("maxmemory_policy:noeviction\r\n".into())),
            ("b:2".into(), Ok(INFO.into())),
            ("c:3".into(), Ok("used_memory:1\r\n".into())),
            ("d:4".into(), refused),
        ]);
        assert_eq!(survey.evicting, vec![("b:2".into(), "allkeys-lru".into())]);
        assert_eq!(survey.unknown, vec!["c:3".to_owned(), "d:4".to_owned()]);
        let refusal = survey.refusal().unwrap();
        assert!(
            refusal.contains("maxmemory-policy allkeys-lru on b:2"),
            "{refusal}"
        );
    }

    #[test]
    fn an_evicting_redis_is_refused_unless_allowed_and_admitted_again_after_a_fix() {
        let evicting = Survey {
            evicting: vec![("a:1".into(), "volatile-ttl".into())],
            unknown: vec![],
        };
        let guard = EvictionGuard::new(false);
        assert!(guard.needs_survey(0));
        assert!(guard.record(evicting.clone(), 0).is_err());
        assert!(guard.admit().is_err());
        // A connection failure does not lift a refusal.
        guard.invalidate();
        assert!(guard.admit().is_err());
        assert!(guard.record(Survey::default(), 0).is_ok());
        assert!(guard.admit().is_ok());
        assert!(!guard.needs_survey(0));
        // A new cluster connection, or a connection failure, is surveyed again.
        assert!(guard.needs_survey(1));
        guard.invalidate();
        assert!(guard.needs_survey(0));

        let lenient = EvictionGuard::new(true);
        assert!(lenient.record(evicting, 0).is_ok());
        let silent = Survey {
            evicting: vec![],
            unknown: vec!["a:1".into()],
        };
        assert!(EvictionGuard::new(false).record(silent, 0).is_ok());
    }
}
