//! The worker's operations endpoints, for the kubelet and the metrics agent:
//!
//! - `GET /healthz`: the process is alive and its consumer is running (liveness: a failure
//!   restarts the pod);
//! - `GET /readyz`: the worker can take work: its last receive from each queue succeeded
//!   recently, the store's last probe succeeded (it can write), and the templates are loaded
//!   (readiness; the body says which check failed and why);
//! - `GET /metrics`: every metric in the Prometheus text format (`docs/metrics.md`).
//!
//! No authentication: bind it to an address only the cluster reaches (`http.listen`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tayori_domain::TenantId;
use tayori_sqs::ConsumerHealth;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The `[http]` section: where the worker serves `/healthz`, `/readyz` and `/metrics`, and the
/// limits every listener of the process runs with (`tayori_http::serve`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// The address, e.g. `0.0.0.0:9090` in a pod, `127.0.0.1:9090` on a machine. Unset: no
    /// endpoints (and no metrics).
    pub listen: Option<SocketAddr>,
    /// How long a client may take to send a request's headers before its connection is
    /// closed (default 10).
    pub header_read_timeout_seconds: u64,
    /// How long a request may take before it answers 408 (default 30).
    pub request_timeout_seconds: u64,
    /// Connections open at once on each listener; more wait to be accepted (default 1024).
    pub max_connections: usize,
    /// Requests in progress at once on each listener; more answer 503 (default 512).
    pub max_in_flight: usize,
    /// The largest request body of the worker's and the admin listener; larger answer 413
    /// (default 1 MiB; the unsubscribe endpoint has its own, `unsubscribe.max_body_bytes`).
    pub max_body_bytes: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        let limits = tayori_http::ServeLimits::default();
        Self {
            listen: None,
            header_read_timeout_seconds: limits.header_read_timeout.as_secs(),
            request_timeout_seconds: limits.request_timeout.as_secs(),
            max_connections: limits.max_connections,
            max_in_flight: limits.max_in_flight,
            max_body_bytes: limits.max_body_bytes,
        }
    }
}

impl HttpConfig {
    /// The limits of a listener; an error names the bad setting.
    pub fn limits(&self) -> anyhow::Result<tayori_http::ServeLimits> {
        for (name, value) in [
            ("header_read_timeout_seconds", self.header_read_timeout_seconds),
            ("request_timeout_seconds", self.request_timeout_seconds),
            ("max_connections", self.max_connections as u64),
            ("max_in_flight", self.max_in_flight as u64),
            ("max_body_bytes", self.max_body_bytes as u64),
        ] {
            anyhow::ensure!(value >= 1, "invalid configuration: http.{name} must be at least 1");
        }
        Ok(tayori_http::ServeLimits {
            header_read_timeout: Duration::from_secs(self.header_read_timeout_seconds),
            request_timeout: Duration::from_secs(self.request_timeout_seconds),
            max_connections: self.max_connections,
            max_in_flight: self.max_in_flight,
            max_body_bytes: self.max_body_bytes,
        })
    }
}

/// The longest one readiness check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// One thing that must hold for the process to take work.
#[async_trait]
pub trait ReadinessCheck: Send + Sync {
    /// Its name in `/readyz`'s answer.
    fn name(&self) -> &'static str;
    /// `Ok` with a short detail when it holds, `Err` with the reason when not.
    async fn check(&self) -> Result<String, String>;
}

/// Every consumer's last receive succeeded, recently (the consumers remember; `/readyz` asks
/// nothing of SQS itself).
pub struct QueuesReceiving(pub Vec<(String, Arc<ConsumerHealth>)>);

#[async_trait]
impl ReadinessCheck for QueuesReceiving {
    fn name(&self) -> &'static str {
        "queue"
    }

    async fn check(&self) -> Result<String, String> {
        let mut details = Vec::new();
        let mut failed = false;
        for (queue, health) in &self.0 {
            let answer = health.queue();
            failed |= answer.is_err();
            details.push(format!("{queue}: {}", answer.unwrap_or_else(|reason| reason)));
        }
        if failed { Err(details.join("; ")) } else { Ok(details.join("; ")) }
    }
}

/// The store's last probe (asked every second by the events consumer, which stops receiving
/// while it fails) succeeded.
pub struct StoreWritable(pub Arc<ConsumerHealth>);

#[async_trait]
impl ReadinessCheck for StoreWritable {
    fn name(&self) -> &'static str {
        "store"
    }

    async fn check(&self) -> Result<String, String> {
        self.0.store()
    }
}

/// The templates are loaded: at least one tenant is configured.
pub struct TemplatesLoaded(pub Arc<dyn Fn() -> usize + Send + Sync>);

#[async_trait]
impl ReadinessCheck for TemplatesLoaded {
    fn name(&self) -> &'static str {
        "templates"
    }

    async fn check(&self) -> Result<String, String> {
        match (self.0)() {
            0 => Err("no tenant's templates are loaded".to_owned()),
            tenants => Ok(format!("{tenants} tenants loaded")),
        }
    }
}

/// What the routes need.
#[derive(Clone)]
pub struct HealthState {
    /// False once the work loop has ended (it should not, before a stop).
    pub alive: Arc<AtomicBool>,
    /// Checked on every `/readyz`.
    pub checks: Arc<Vec<Box<dyn ReadinessCheck>>>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
}

/// The routes: `/healthz`, `/readyz`, `/metrics`.
pub fn router(state: HealthState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn healthz(State(state): State<HealthState>) -> Response {
    if state.alive.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "the work loop has stopped\n").into_response()
    }
}

async fn readyz(State(state): State<HealthState>) -> Response {
    let mut ready = true;
    let mut checks = serde_json::Map::new();
    for check in state.checks.iter() {
        let result = match tokio::time::timeout(CHECK_TIMEOUT, check.check()).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
        };
        let entry = match result {
            Ok(detail) => json!({ "ok": true, "detail": detail }),
            Err(reason) => {
                ready = false;
                json!({ "ok": false, "detail": reason })
            }
        };
        checks.insert(check.name().to_owned(), entry);
    }
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({ "ready": ready, "checks": checks });
    (status, axum::Json(body)).into_response()
}

async fn metrics(State(state): State<HealthState>) -> Response {
    let text = crate::metrics::render(&state.metrics);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

/// A running operations server.
pub struct HealthServer {
    /// Where it listens (the port is known after binding `:0`).
    pub local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
}

impl HealthServer {
    /// Binds `listen` and serves the routes within `limits` until [`stop`](Self::stop).
    pub async fn start(
        listen: SocketAddr,
        state: HealthState,
        limits: tayori_http::ServeLimits,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let local_addr = listener.local_addr()?;
        let (stop, mut stopped) = watch::channel(false);
        let serve = tayori_http::serve(listener, router(state), limits, async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        });
        let task = tokio::spawn(serve);
        Ok(Self { local_addr, stop, task })
    }

    /// Stops accepting and waits for the requests in progress.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Starts the worker's endpoints when `http.listen` is set: installs the metrics recorder (with
/// the series of `tenants` at zero) and serves the routes. `alive` turns `/healthz` to 503
/// once cleared; `loaded_tenants` counts the tenants whose templates are in use; `consumers`
/// are the queues' consumers by queue name, the events queue's first (its probe is the
/// store's).
pub async fn start_worker_endpoints(
    config: &HttpConfig,
    tenants: &[TenantId],
    consumers: Vec<(String, Arc<ConsumerHealth>)>,
    loaded_tenants: Arc<dyn Fn() -> usize + Send + Sync>,
    alive: Arc<AtomicBool>,
) -> anyhow::Result<Option<HealthServer>> {
    let Some(listen) = config.listen else {
        tracing::info!("http.listen is not set: no /healthz, /readyz or /metrics");
        return Ok(None);
    };
    let Some((_, events)) = consumers.first() else {
        anyhow::bail!("a worker has at least the events queue's consumer");
    };
    let state = HealthState {
        alive,
        checks: Arc::new(vec![
            Box::new(StoreWritable(events.clone())) as Box<dyn ReadinessCheck>,
            Box::new(QueuesReceiving(consumers)),
            Box::new(TemplatesLoaded(loaded_tenants)),
        ]),
        metrics: crate::metrics::install(tenants),
    };
    let server = HealthServer::start(listen, state, config.limits()?)
        .await
        .with_context(|| format!("cannot listen on {listen} (http.listen)"))?;
    tracing::info!(listen = %server.local_addr, "serving /healthz, /readyz and /metrics");
    Ok(Some(server))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    /// A check whose answer the test sets.
    #[derive(Clone, Default)]
    struct Stub(Arc<Mutex<Option<String>>>);

    #[async_trait]
    impl ReadinessCheck for Stub {
        fn name(&self) -> &'static str {
            "store"
        }

        async fn check(&self) -> Result<String, String> {
            match self.0.lock().unwrap().clone() {
                None => Ok("writable".to_owned()),
                Some(reason) => Err(reason),
            }
        }
    }

    fn state_with(store: Stub, tenants: usize, alive: bool) -> HealthState {
        HealthState {
            alive: Arc::new(AtomicBool::new(alive)),
            checks: Arc::new(vec![
                Box::new(store) as Box<dyn ReadinessCheck>,
                Box::new(TemplatesLoaded(Arc::new(move || tenants))),
            ]),
            metrics: crate::metrics::install(&[]),
        }
    }

    fn state(tenants: usize, alive: bool) -> HealthState {
        state_with(Stub::default(), tenants, alive)
    }

    async fn get(state: HealthState, path: &str) -> (StatusCode, String) {
        let request = Request::get(path).body(Body::empty()).expect("request");
        let response = router(state).oneshot(request).await.expect("answer");
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn ready_only_when_every_check_holds_and_the_failing_one_says_why() {
        let store = Stub::default();
        let (status, body) = get(state_with(store.clone(), 2, true), "/readyz").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.contains("2 tenants loaded"), "{body}");

        *store.0.lock().unwrap() = Some("connection refused".to_owned());
        let (status, body) = get(state_with(store.clone(), 2, true), "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        let body: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(body["checks"]["store"]["ok"], json!(false), "{body}");
        assert_eq!(body["checks"]["store"]["detail"], json!("connection refused"), "{body}");
        assert_eq!(body["checks"]["templates"]["ok"], json!(true), "{body}");

        let (status, body) = get(state(0, true), "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(body.contains("no tenant"), "{body}");
    }

    #[tokio::test]
    async fn live_until_the_work_loop_ends() {
        assert_eq!(get(state(1, true), "/healthz").await.0, StatusCode::OK);
        let (status, _) = get(state(1, false), "/healthz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn metrics_are_served_as_prometheus_text() {
        let (status, body) = get(state(1, true), "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("# TYPE tayori_build_info gauge"), "{body}");
    }

    #[test]
    fn a_bad_listen_address_is_named() {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(
            file.path(),
            "[store]\nkind = \"sqlite\"\npath = \"x.db\"\n[queue]\nurl = \"https://sqs.example/q\"\n\
             [sender]\nkind = \"outbox\"\ndir = \"out\"\n[http]\nlisten = \"everywhere:90\"\n",
        )
        .expect("write");
        let error = crate::config::WorkerConfig::load(Some(file.path())).expect_err("invalid");
        let error = format!("{error:#}");
        assert!(error.contains("http.listen"), "{error}");
    }
}
