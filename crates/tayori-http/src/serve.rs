//! The one way tayori serves HTTP: every listener (the worker's health and metrics, `tayori dev`'s
//! intake, the admin API and console, the public unsubscribe endpoint) goes through [`serve`], so
//! none of them can be held open by slow or endless clients.
//!
//! What it bounds, and what a client sees beyond each bound:
//! - connections at once (`max_connections`): past it the listener stops accepting and new
//!   connections wait in the kernel's backlog;
//! - the time to send a request's headers (`header_read_timeout`): the connection is closed
//!   (a slowloris client holds a connection for that long at most);
//! - requests in progress at once (`max_in_flight`): beyond it, 503;
//! - the time a request takes (`request_timeout`): beyond it, 408;
//! - the body's size (`max_body_bytes`): beyond it, 413 (at once when `Content-Length` says so).
//!
//! The 408, 413 and 503 answers are JSON in the admin API's error shape
//! (`{"error": "...", "message": "..."}`).

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::ConnectInfo;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{BoxError, Extension, Json};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::{Layer, ServiceBuilder};
use tower_http::limit::RequestBodyLimitLayer;

/// The bounds of one listener (see the module's documentation for what each answers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// How long a client may take to send a request's headers before its connection is closed.
    pub header_read_timeout: Duration,
    /// How long a request may take, from its headers to the answer, before it answers 408.
    pub request_timeout: Duration,
    /// Connections open at once; more wait to be accepted.
    pub max_connections: usize,
    /// Requests in progress at once; more answer 503.
    pub max_in_flight: usize,
    /// The largest request body; larger answer 413.
    pub max_body_bytes: usize,
}

impl Default for ServeLimits {
    /// 10 s for headers, 30 s a request, 1,024 connections, 512 requests in progress, 1 MiB
    /// bodies.
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 1_024,
            max_in_flight: 512,
            max_body_bytes: 1 << 20,
        }
    }
}

/// The body of a limit's answer: the admin API's error shape.
#[derive(Debug, Serialize)]
struct LimitBody {
    error: &'static str,
    message: String,
}

fn limit_answer(status: StatusCode, error: &'static str, message: String) -> Response {
    (status, Json(LimitBody { error, message })).into_response()
}

/// `router` with the per-request limits: body size, request time, requests in progress.
/// [`serve`] applies it; tests that call a router without a port can too.
pub fn with_limits(router: Router, limits: &ServeLimits) -> Router {
    let in_flight = Arc::new(Semaphore::new(limits.max_in_flight.max(1)));
    let request_timeout = limits.request_timeout;
    let max_body_bytes = limits.max_body_bytes;
    router
        .layer(RequestBodyLimitLayer::new(max_body_bytes))
        // tower-http's and axum's own 413s are plain text: one shape for every API client.
        .layer(axum::middleware::map_response(move |response: Response| async move {
            too_large_as_json(response, max_body_bytes)
        }))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(move |error: BoxError| async move {
                    limit_error(error, request_timeout)
                }))
                .load_shed()
                // One semaphore for the whole router: `Router::layer` wraps each route apart.
                .layer(GlobalConcurrencyLimitLayer::with_semaphore(in_flight))
                .timeout(request_timeout),
        )
}

fn too_large_as_json(response: Response, max_body_bytes: usize) -> Response {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/json"));
    if response.status() != StatusCode::PAYLOAD_TOO_LARGE || is_json {
        return response;
    }
    limit_answer(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the request body is larger than {max_body_bytes} bytes"),
    )
}

fn limit_error(error: BoxError, request_timeout: Duration) -> Response {
    if error.is::<tower::timeout::error::Elapsed>() {
        return limit_answer(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            format!("the request took longer than {request_timeout:?}"),
        );
    }
    if error.is::<tower::load_shed::error::Overloaded>() {
        return limit_answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "too many requests in progress; try again".to_owned(),
        );
    }
    tracing::error!(error = %error, "request failed in the server's limits");
    limit_answer(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error".to_owned())
}

/// Serves `router` on `listener` within `limits` until `shutdown` completes, then stops
/// accepting and waits for the connections open (each ends after its request in progress; one
/// still sending its headers ends by the header-read timeout at the latest). Handlers can take
/// the client's address with `ConnectInfo<SocketAddr>`.
pub async fn serve<F>(
    listener: TcpListener,
    router: Router,
    limits: ServeLimits,
    shutdown: F,
) -> io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let app = with_limits(router, &limits);
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // A permit first: past the limit, connections wait in the backlog, not in memory.
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break, // never closed
            },
            () = &mut shutdown => break,
        };
        let (stream, client) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(Extension(ConnectInfo(client)).layer(app.clone()));
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A client that goes away or times out is not the server's failure.
            if let Err(error) = connection.await {
                tracing::debug!(error = %error, %client, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// A failed `accept`: a client that gave up is nothing; anything else (out of file
/// descriptors) is logged and waited out for a second, as `axum::serve` does, instead of
/// spinning.
async fn accept_failed(error: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(error.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset) {
        return;
    }
    tracing::error!(error = %error, "cannot accept a connection; retrying in a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
