//! Values that must never reach a log or a panic message: the hmac secret, API keys, dialect
//! tokens, the password of a Redis URL.
//!
//! [`Secret`] prints `[redacted]` through both `Debug` and `Display`, so a secret held in a
//! struct that derives `Debug` (settings, config, a decoded request) stays out of `{:?}`, and
//! `tracing` fields (`%x`, `?x`) cannot show it. The value is reached only through
//! [`Secret::expose`], which names the places that use it. [`redact_url`] gives a Redis URL
//! fit for a log line.

use std::fmt;

/// What every secret prints.
pub const REDACTED: &str = "[redacted]";

/// A value that is used, never shown.
#[derive(Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The value itself, for the code that checks or uses it.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// A Redis URL (or comma-separated seed list) with the password of every `user:password@`
/// part replaced by `[redacted]`; the rest (scheme, user, hosts) is kept, as a log needs it.
pub fn redact_url(url: &str) -> String {
    url.split(',')
        .map(|part| {
            let Some((scheme, rest)) = part.split_once("://") else {
                return part.to_owned();
            };
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            match authority.rsplit_once('@') {
                // `user:password@`; a lone `x@` may be a password too.
                Some((userinfo, host)) => match userinfo.split_once(':') {
                    Some((user, _)) => format!("{scheme}://{user}:{REDACTED}@{host}{path}"),
                    None => format!("{scheme}://{REDACTED}@{host}{path}"),
                },
                None => part.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_prints_redacted_and_exposes_its_value() {
        let secret = Secret::new("hunter2-hunter2".to_owned());
        assert_eq!(format!("{secret:?}"), REDACTED);
        assert_eq!(format!("{secret}"), REDACTED);
        assert_eq!(format!("{:?}", Some(&secret)), format!("Some({REDACTED})"));
        assert_eq!(secret.expose(), "hunter2-hunter2");
    }

    #[test]
    fn secrets_deserialize_from_plain_values() {
        #[derive(Debug, serde::Deserialize)]
        struct File {
            key: Secret<String>,
        }
        let file: File = toml::from_str("key = \"sk_live_abc\"").unwrap();
        assert_eq!(file.key.expose(), "sk_live_abc");
        assert!(!format!("{file:?}").contains("sk_live_abc"));
    }

    #[test]
    fn redis_urls_lose_their_passwords_only() {
        for (url, shown) in [
            ("redis://127.0.0.1:6379/", "redis://127.0.0.1:6379/"),
            (
                "redis://:s3cret@redis.internal:6379/0",
                "redis://:[redacted]@redis.internal:6379/0",
            ),
            (
                "rediss://carts:p@ss:w0rd@host:6380/",
                "rediss://carts:[redacted]@host:6380/",
            ),
            (
                "redis+cluster://u:pw@10.0.0.1:7000,10.0.0.2:7000",
                "redis+cluster://u:[redacted]@10.0.0.1:7000,10.0.0.2:7000",
            ),
            ("redis://pw@h:1/", "redis://[redacted]@h:1/"),
            (
                "redis://a:pw1@h1:7000,redis://a:pw2@h2:7000",
                "redis://a:[redacted]@h1:7000,redis://a:[redacted]@h2:7000",
            ),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }
}
