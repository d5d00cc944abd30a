//! Wiring: bind both listeners first (port 0 allowed), then serve gRPC (and gRPC-Web on the
//! same port) and HTTP on one runtime until one shutdown signal drains both (for at most
//! redis_timeout + 1 s: in-flight calls end by then, streams that never end are cut).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tonic::transport::server::TcpIncoming;
use tower::{Layer, Service};

use crate::admission::{Admission, PausedReads, RefuseEarly};
use crate::auth::CartTokens;
use crate::config::Settings;
use crate::core::Core;
use crate::domain::TenantId;
use crate::grpc::{Authenticated, GrpcCarts, MAX_MESSAGE_BYTES, ServerSpanLayer};
use crate::health::{self, Readiness};
use crate::pb::cart_service_server::CartServiceServer;
use crate::store::{MemoryStore, RedisStore, SharedStore};
use crate::tenancy::Tenancy;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("[durability] min_replicas needs Redis: the in-memory store has no replicas")]
    NoReplicas,
    #[error("cannot set up the store: {0}")]
    Store(#[from] crate::error::CartError),
    #[error("cannot read the Redis CA certificate {path}: {source}")]
    CaCert {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("gRPC server: {0}")]
    Grpc(#[from] tonic::transport::Error),
    #[error("HTTP server: {0}")]
    Http(#[from] std::io::Error),
}

/// A bound, not yet serving, cart-service.
pub struct Application {
    settings: Settings,
    store: SharedStore,
    core: Core,
    grpc_listener: TcpListener,
    http_listener: TcpListener,
}

impl Application {
    /// Builds the store the settings name and binds both listeners. A Redis that is down does
    /// not stop startup.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let store: SharedStore = match &settings.redis_url {
            Some(url) => {
                let ca_cert = match &settings.redis_ca_cert {
                    Some(path) => {
                        Some(std::fs::read(path).map_err(|source| StartupError::CaCert {
                            path: path.clone(),
                            source,
                        })?)
                    }
                    None => None,
                };
                let store = RedisStore::new(
                    url.expose(),
                    settings.policy.clone(),
                    settings.redis_timeouts,
                    settings.durability,
                    ca_cert,
                )?
                .allow_eviction(settings.allow_eviction);
                if let Err(error) = store.load_scripts().await {
                    tracing::warn!(%error, "redis not reachable yet; serving NOT_SERVING until it is");
                }
                let kind = if store.is_cluster() {
                    "redis cluster"
                } else {
                    "redis"
                };
                let url = crate::secret::redact_url(url.expose());
                tracing::info!(%url, "cart store: {kind}");
                Arc::new(store)
            }
            None if settings.durability.min_replicas > 0 => {
                return Err(StartupError::NoReplicas);
            }
            None => {
                tracing::info!(
                    "cart store: in-memory; carts are not persisted (set CART_REDIS_URL for Redis)"
                );
                MemoryStore::with_max_bytes(settings.policy.clone(), settings.memory_max_bytes)
            }
        };
        Self::build_with_store(settings, store).await
    }

    /// Binds both listeners around a given store (embedding, tests of store properties).
    pub async fn build_with_store(
        settings: Settings,
        store: SharedStore,
    ) -> Result<Self, StartupError> {
        let admission = Admission::new(
            settings.admission,
            settings.tenants.iter().filter_map(|tenant| {
                Some((TenantId::parse(&tenant.id).ok()?, tenant.max_in_flight))
            }),
        );
        let core = Core::new(
            store.clone(),
            CartTokens::new(settings.hmac_secret.expose().as_bytes()),
            settings.policy.clone(),
        )
        .with_admission(admission);
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartupError::Bind { addr, source })
        };
        let grpc_listener = bind(settings.grpc_addr).await?;
        let http_listener = bind(settings.http_addr).await?;
        Ok(Self {
            settings,
            store,
            core,
            grpc_listener,
            http_listener,
        })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The core, for callers that embed the service.
    pub fn core(&self) -> &Core {
        &self.core
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down: draining in-flight requests");
            let _ = stop_tx.send(true);
        });
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };

        let (reporter, health_service) = tonic_health::server::health_reporter();
        let readiness = Readiness::default();
        tokio::spawn(health::watch_store(
            self.store.clone(),
            reporter,
            readiness.clone(),
            self.settings.health_interval,
            stop_rx.clone(),
        ));

        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(crate::pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                // google.rpc.ErrorInfo and BadRequest ride in every error's
                // grpc-status-details-bin as Any: grpcurl resolves them here to print them.
                // (tonic-types' own set names its files without the google/rpc/ path.)
                .register_encoded_file_descriptor_set(crate::pb::GOOGLE_RPC_FILE_DESCRIPTOR_SET)
        };
        let reflection_v1 = reflection().build_v1().expect("descriptor sets are valid");
        let reflection_v1alpha = reflection()
            .build_v1alpha()
            .expect("descriptor sets are valid");

        let cart_server = CartServiceServer::new(GrpcCarts::new(self.core.clone()))
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
        let authenticator = Arc::new(self.settings.authenticator.clone());

        let grpc_addr = self.grpc_addr();
        let http_addr = self.http_addr();
        let grpc = tonic::transport::Server::builder()
            // tonic leaves HTTP/2 streams per connection unbounded; a client past this many
            // waits on its own side (SETTINGS_MAX_CONCURRENT_STREAMS) instead of queueing here.
            .max_concurrent_streams(self.settings.admission.max_streams_per_connection)
            // gRPC-Web from browsers arrives over HTTP/1.1; CORS (outermost) answers their
            // preflights before the gRPC-Web translation sees the request.
            .accept_http1(true)
            .layer(tower::util::option_layer(
                self.settings.grpc_web.cors_layer(),
            ))
            .layer(GrpcWebWhenAsked)
            // Inside the translation: it sees the native gRPC status of both protocols.
            // Outside the oversize remapping, so the span records the status the client reads.
            .layer(ServerSpanLayer)
            .layer(tower::util::MapResponseLayer::new(
                oversized_is_resource_exhausted,
            ))
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(Authenticated::new(
                RefuseEarly::new(
                    cart_server,
                    self.core.admission().clone(),
                    Duration::from_millis(self.settings.admission.refused_pause_ms),
                ),
                authenticator,
            ))
            .serve_with_incoming_shutdown(
                // Without TCP_NODELAY a response written in several segments waits for the
                // client's delayed ACK (40 ms on Linux).
                // Each connection's reads can be paused while its requests are refused.
                TcpIncoming::from(self.grpc_listener)
                    .with_nodelay(Some(true))
                    .map(|accepted| accepted.map(PausedReads::new)),
                stopped(stop_rx.clone()),
            );

        let http_app = crate::http::router(crate::http::HttpState {
            readiness,
            core: self.core.clone(),
            tenancy: Arc::new(Tenancy::new(
                self.settings.authenticator.clone(),
                &self.settings.tenants,
            )),
        });
        let drain_rx = stop_rx.clone();
        let http_listener = self.http_listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let http = axum::serve(http_listener, http_app)
            .with_graceful_shutdown(stopped(stop_rx))
            .into_future();

        tracing::info!(%grpc_addr, %http_addr, "cart-service listening");
        let served = async {
            let (grpc, http) = tokio::join!(grpc, http);
            grpc?;
            http.map_err(ServeError::from)
        };
        // In-flight calls end within redis_timeout; a stream that never ends by itself (a
        // client's grpc.health.v1 Watch) would hold the drain open until the kubelet's SIGKILL,
        // so what is still open a second later is cut.
        let drain_limit = self.settings.redis_timeouts.response + Duration::from_secs(1);
        tokio::select! {
            served = served => served?,
            () = async {
                stopped(drain_rx).await;
                tokio::time::sleep(drain_limit).await;
            } => tracing::warn!(?drain_limit, "drain cut: connections still open after the limit"),
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// tonic refuses an oversized request with OUT_OF_RANGE; SPEC §6 promises RESOURCE_EXHAUSTED
/// (the code gRPC itself uses for message limits). No handler emits OUT_OF_RANGE.
fn oversized_is_resource_exhausted<B>(mut response: http::Response<B>) -> http::Response<B> {
    // A name built once: looking up by text would parse it on every response.
    const GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");
    let out_of_range = http::HeaderValue::from_static("11");
    if response.headers().get(&GRPC_STATUS) == Some(&out_of_range) {
        response
            .headers_mut()
            .insert(GRPC_STATUS, http::HeaderValue::from_static("8"));
    }
    response
}

/// gRPC-Web's translation for the requests that need it: a native gRPC request (HTTP/2, not
/// a gRPC-Web content type), which the translation would pass through unchanged, goes straight
/// to the service, without the translation's wrapping of its request and response bodies.
#[derive(Debug, Clone, Copy)]
struct GrpcWebWhenAsked;

impl<S: Clone> Layer<S> for GrpcWebWhenAsked {
    type Service = GrpcWebOrNative<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcWebOrNative {
            web: tonic_web::GrpcWebLayer::new().layer(inner.clone()),
            native: inner,
        }
    }
}

#[derive(Debug, Clone)]
struct GrpcWebOrNative<S> {
    web: tonic_web::GrpcWebService<S>,
    native: S,
}

type GrpcRequest = http::Request<tonic::body::Body>;
type GrpcResponse = http::Response<tonic::body::Body>;

impl<S> Service<GrpcRequest> for GrpcWebOrNative<S>
where
    S: Service<GrpcRequest, Response = GrpcResponse>,
    S::Future: Unpin,
{
    type Response = GrpcResponse;
    type Error = S::Error;
    type Future = WebOrNative<tonic_web::ResponseFuture<S::Future>, S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        // Both wrap the one inner service: ready together.
        match <tonic_web::GrpcWebService<S> as Service<GrpcRequest>>::poll_ready(&mut self.web, cx)?
        {
            std::task::Poll::Ready(()) => self.native.poll_ready(cx),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }

    fn call(&mut self, request: GrpcRequest) -> Self::Future {
        let web = request.version() != http::Version::HTTP_2
            || request
                .headers()
                .get(http::header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc-web"));
        if web {
            WebOrNative::Web(self.web.call(request))
        } else {
            WebOrNative::Native(self.native.call(request))
        }
    }
}

/// The response of [`GrpcWebOrNative`]: from the translation or straight from the service.
enum WebOrNative<W, N> {
    Web(W),
    Native(N),
}

impl<W, N> Future for WebOrNative<W, N>
where
    W: Future + Unpin,
    N: Future<Output = W::Output> + Unpin,
{
    type Output = W::Output;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        match self.get_mut() {
            Self::Web(future) => std::pin::Pin::new(future).poll(cx),
            Self::Native(future) => std::pin::Pin::new(future).poll(cx),
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
