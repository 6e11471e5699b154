//! A TCP proxy in front of an SQS endpoint that misbehaves on demand, as networks and endpoints
//! do: it answers HTTP 500, resets connections, leaves requests hanging, and silently drops
//! connections left idle too long (as a NAT gateway or load balancer does, without telling
//! either side). Bound to 127.0.0.1; its thread ends with the process.
//!
//! One file, two users: the SQS adapter's tests put it in front of moto
//! (`crates/tayori-sqs/tests/endpoint_faults.rs`), and the soak of `tayori-bench` includes it
//! with `#[path]` to put it in front of the bench's SQS stand-in (`crates/tayori-bench/src/soak.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does with the next request it sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forwards everything.
    None,
    /// Answers `500 Internal Server Error` (an SQS `InternalError`) without forwarding.
    ServerError,
    /// Resets the connection (RST) without answering.
    Reset,
    /// Swallows the request and never answers; the connection stays open.
    Hang,
}

/// Counts of what the proxy did.
#[derive(Debug, Default)]
pub struct Counts {
    pub forwarded: AtomicU64,
    pub server_errors: AtomicU64,
    pub resets: AtomicU64,
    pub hung: AtomicU64,
    /// Requests sent on a connection the proxy had dropped for idleness: they never arrive.
    pub on_dropped_connections: AtomicU64,
}

pub struct FaultProxy {
    pub endpoint: String,
    fault: Arc<Mutex<Fault>>,
    drop_idle_after: Arc<Mutex<Option<Duration>>>,
    pub counts: Arc<Counts>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (`http://host:port`). A connection that carries nothing
    /// for `drop_idle_after` is dropped silently: what is sent on it afterwards goes nowhere.
    pub fn start(upstream: &str, drop_idle_after: Option<Duration>) -> Self {
        let upstream = upstream.trim_start_matches("http://").trim_end_matches('/').to_owned();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let fault = Arc::new(Mutex::new(Fault::None));
        let idle_limit = Arc::new(Mutex::new(drop_idle_after));
        let counts = Arc::new(Counts::default());
        let (task_fault, task_counts, task_idle) =
            (fault.clone(), counts.clone(), idle_limit.clone());
        // A runtime of its own, so that its tasks (a hung connection's among them) are not
        // counted with the consumer's; the thread ends with the test process.
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        std::thread::spawn(move || {
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).unwrap();
                loop {
                    let Ok((client, _)) = listener.accept().await else { return };
                    let (fault, counts, upstream, idle) = (
                        task_fault.clone(),
                        task_counts.clone(),
                        upstream.clone(),
                        task_idle.clone(),
                    );
                    tokio::spawn(relay(client, upstream, fault, counts, idle));
                }
            })
        });
        Self { endpoint, fault, drop_idle_after: idle_limit, counts }
    }

    pub fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }

    /// Changes how long a connection may idle before it is dropped (`None`: never), for every
    /// connection from its next read on. A connection already idle that long when its client
    /// next sends is dropped there and then; one already dropped stays dropped.
    pub fn set_drop_idle_after(&self, limit: Option<Duration>) {
        *self.drop_idle_after.lock().unwrap() = limit;
    }
}

const SERVER_ERROR: &[u8] = b"HTTP/1.1 500 Internal Server Error\r\n\
content-type: application/x-amz-json-1.0\r\n\
x-amzn-query-error: InternalError;Receiver\r\n\
connection: close\r\n\
content-length: 85\r\n\r\n\
{\"__type\":\"com.amazonaws.sqs#InternalError\",\"message\":\"fault proxy: internal error\"}";

/// moto's werkzeug answers `Connection: close` to every request; SQS keeps connections open,
/// and the SDK pools them. The header goes, so the client keeps its connection as with SQS;
/// returns whether it was there (the upstream connection then serves no further request).
fn keep_alive(chunk: &[u8]) -> (Vec<u8>, bool) {
    const CLOSE: &[u8] = b"Connection: close\r\n";
    match chunk.windows(CLOSE.len()).position(|w| w.eq_ignore_ascii_case(CLOSE)) {
        Some(at) => ([&chunk[..at], &chunk[at + CLOSE.len()..]].concat(), true),
        None => (chunk.to_vec(), false),
    }
}

/// Carries one connection: each chunk from the client is checked against the fault in force
/// (a chunk starts a request on a kept-alive connection, or continues one). Like a real SQS
/// endpoint, the proxy keeps a client's connection open however long it idles: moto closes its
/// side after each answer, and the next request goes out on a new upstream connection (never
/// on the closing one: a request written there before its close is seen would be lost).
async fn relay(
    client: TcpStream,
    upstream: String,
    fault: Arc<Mutex<Fault>>,
    counts: Arc<Counts>,
    drop_idle_after: Arc<Mutex<Option<Duration>>>,
) {
    let mut server: Option<(OwnedReadHalf, OwnedWriteHalf)> = None;
    let mut last_activity = Instant::now();
    let (mut client_read, mut client_write) = client.into_split();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut server_buffer = vec![0u8; 64 * 1024];
    let mut dropped = false;
    let mut upstream_closing = false;
    loop {
        let idle_after = *drop_idle_after.lock().unwrap();
        // Far away when connections are never dropped for idleness.
        let idle_limit = idle_after.unwrap_or(Duration::from_secs(86_400));
        let forgotten_at = tokio::time::Instant::from_std(last_activity + idle_limit);
        let from_server = async {
            match server.as_mut() {
                Some((from_server, _)) => from_server.read(&mut server_buffer).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            // The network forgets the connection: from now on nothing passes either way, and
            // neither side is told.
            _ = tokio::time::sleep_until(forgotten_at), if !dropped => {
                dropped = true;
                continue;
            }
            read = from_server, if !dropped => {
                match read {
                    Ok(0) | Err(_) => server = None,
                    Ok(n) => {
                        last_activity = Instant::now();
                        let (answer, closing) = keep_alive(&server_buffer[..n]);
                        upstream_closing |= closing;
                        if client_write.write_all(&answer).await.is_err() { return }
                    }
                }
            }
            read = client_read.read(&mut buffer) => {
                let n = match read { Ok(0) | Err(_) => return, Ok(n) => n };
                // Idle past a limit set (or shortened) while this connection waited.
                dropped |= last_activity.elapsed() >= idle_limit;
                if dropped {
                    // Sent on a forgotten (or hung) connection: nothing arrives, nothing answers.
                    if idle_after.is_some() {
                        counts.on_dropped_connections.fetch_add(1, Ordering::Relaxed);
                    }
                    continue;
                }
                last_activity = Instant::now();
                let now = *fault.lock().unwrap();
                match now {
                    Fault::None => {
                        // A new request after an answer that closed the upstream connection:
                        // the client has read that answer whole, so a fresh one is safe.
                        if server.is_none() || upstream_closing {
                            upstream_closing = false;
                            let Ok(stream) = TcpStream::connect(&upstream).await else { return };
                            server = Some(stream.into_split());
                        }
                        let Some((_, to_server)) = server.as_mut() else { return };
                        if to_server.write_all(&buffer[..n]).await.is_err() { return }
                        counts.forwarded.fetch_add(1, Ordering::Relaxed);
                    }
                    Fault::ServerError => {
                        counts.server_errors.fetch_add(1, Ordering::Relaxed);
                        let _ = client_write.write_all(SERVER_ERROR).await;
                        return;
                    }
                    Fault::Reset => {
                        counts.resets.fetch_add(1, Ordering::Relaxed);
                        let Ok(stream) = client_read.reunite(client_write) else { return };
                        let _ = stream.set_zero_linger();
                        return; // dropped with linger 0: an RST
                    }
                    Fault::Hang => {
                        counts.hung.fetch_add(1, Ordering::Relaxed);
                        dropped = true;
                    }
                }
            }
        }
    }
}
