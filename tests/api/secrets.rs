//! Secrets stay out of the logs: the real binary, started with a Redis URL holding a password
//! and a config file holding an hmac secret, API keys and a Zaui token, logs at debug level
//! through startup, requests that present (right and wrong) credentials, a Redis outage and
//! a refused config file, and no line holds any of them.

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use cart_service::pb;
use cart_service::pb::cart_service_client::CartServiceClient;
use tonic::transport::Channel;

use crate::helpers::{self, RedisServer, ServiceProcess, TestApp, http};

const REDIS_PASSWORD: &str = "redis-pw-LEAK-7f3a";
const HMAC_SECRET: &str = "hmac-secret-LEAK-0c9d2e1f";
const API_KEY: &str = "sk_live_LEAK_55aa77";
const ZAUI_TOKEN: &str = "zaui-token-LEAK-31";
/// Presented by a caller, wrong: it must not be echoed into the logs either.
const WRONG_KEY: &str = "sk_wrong_LEAK_99";
const SECRETS: [&str; 5] = [REDIS_PASSWORD, HMAC_SECRET, API_KEY, ZAUI_TOKEN, WRONG_KEY];

fn config() -> String {
    format!(
        r#"
hmac_secret = "{HMAC_SECRET}"
[[tenants]]
id = "acme"
api_keys = [ {{ key = "{API_KEY}", scopes = ["carts:read", "carts:write"] }} ]
zaui = {{ account_id = 1234, token = "{ZAUI_TOKEN}" }}
vtex = {{ account = "cosmetics2" }}
"#
    )
}

/// The binary with a Redis URL and a config file, logging at debug level.
fn start(redis_url: &str, config: &std::path::Path) -> ServiceProcess {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cart-service"));
    command
        .args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .env_clear()
        .env("CART_REDIS_URL", redis_url)
        .env("CART_CONFIG", config)
        .env("RUST_LOG", "debug");
    ServiceProcess::spawn(command)
}

fn assert_no_secret(log: &[String], what: &str) {
    assert!(!log.is_empty(), "{what}: the binary logged nothing");
    for line in log {
        for secret in SECRETS {
            assert!(!line.contains(secret), "{what}: {secret} logged: {line}");
        }
    }
}

/// Startup, authenticated and refused calls, Zaui with its token, a Redis outage: no secret
/// in any log line (RUST_LOG=debug).
#[tokio::test]
async fn the_binary_logs_no_secret() {
    let args: Vec<String> = ["--requirepass", REDIS_PASSWORD]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut redis = RedisServer::start_with(&args);
    let dir = helpers::temp_dir("secrets");
    let path = dir.join("cart.toml");
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(config().as_bytes()))
        .unwrap();
    let url = format!("redis://:{REDIS_PASSWORD}@127.0.0.1:{}/", redis.port());
    let binary = start(&url, &path);
    let (grpc_addr, http_addr) = binary.addrs().expect("listening line");

    let channel = Channel::from_shared(format!("http://{grpc_addr}"))
        .unwrap()
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap();
    let mut client = CartServiceClient::new(channel);
    let create = pb::CreateRequest {
        currency: "USD".into(),
        ..Default::default()
    };
    let cart = client
        .create(TestApp::authed(create.clone(), API_KEY))
        .await
        .expect("create with the key")
        .into_inner();
    let refused = client
        .create(TestApp::authed(create.clone(), WRONG_KEY))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    for token in [ZAUI_TOKEN, WRONG_KEY] {
        let body = format!(
            "<request><zapiToken>{token}</zapiToken><zapiAccountId>1234</zapiAccountId><zapiUserId>1</zapiUserId><zapiMethod><methodName>zapiRemoveCartSession</methodName><cartId>{}</cartId></zapiMethod></request>",
            cart.id
        );
        let response = http(
            http_addr,
            "POST",
            "/zapi/",
            &[("Content-Type", "application/xml")],
            body.as_bytes(),
        )
        .await;
        assert_eq!(response.status, 200);
    }
    // A Redis outage: the store errors are logged with their causes.
    redis.stop();
    let during = client
        .get(TestApp::authed(
            pb::GetRequest {
                cart_id: cart.id.clone(),
            },
            API_KEY,
        ))
        .await
        .unwrap_err();
    assert_eq!(during.code(), tonic::Code::Unavailable);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let log = binary.finish(false);
    assert!(
        log.iter().any(|l| l.contains("cart store unavailable")),
        "the outage was logged"
    );
    assert!(
        log.iter()
            .any(|l| l.contains("cart store: redis") && l.contains(":[redacted]@127.0.0.1")),
        "the store's URL is logged without its password"
    );
    assert_no_secret(&log, "serving");
    let _ = std::fs::remove_dir_all(dir);
}

/// A config file refused at startup (a syntax error on the line of a key) names the problem
/// and its line, not the line's text.
#[test]
fn a_refused_config_file_does_not_echo_its_secrets() {
    let dir = helpers::temp_dir("secrets-config");
    let path = dir.join("cart.toml");
    let broken = config().replace(
        &format!("key = \"{API_KEY}\""),
        &format!("key = \"{API_KEY}\" unexpected"),
    );
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(broken.as_bytes()))
        .unwrap();
    let url = format!("redis://:{REDIS_PASSWORD}@127.0.0.1:1/");
    let binary = start(&url, &path);
    let log = binary.finish(true);
    assert!(
        log.iter().any(|l| l.contains("invalid config file")),
        "{log:?}"
    );
    assert_no_secret(&log, "refused config");
    let _ = std::fs::remove_dir_all(dir);
}
