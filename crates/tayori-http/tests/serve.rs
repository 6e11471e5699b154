//! `tayori_http::serve` on a real port: a body over the limit answers 413, a handler slower than
//! the request timeout 408, a request beyond those in progress 503, each as JSON in the admin
//! API's error shape; handlers see the client's address; a stop waits for the request in
//! progress.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::ConnectInfo;
use axum::routing::{get, post};
use tayori_http::{ServeLimits, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

fn app() -> Router {
    Router::new()
        .route("/echo", post(|body: Bytes| async move { format!("{} bytes", body.len()) }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(2)).await;
                "done"
            }),
        )
        .route(
            "/whoami",
            get(|ConnectInfo(client): ConnectInfo<SocketAddr>| async move { client.to_string() }),
        )
}

struct Running {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

async fn start(limits: ServeLimits) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, app(), limits, async move {
        let _ = stopped.await;
    }));
    Running { addr, stop, task }
}

async fn json_error(response: reqwest::Response) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("application/json"), "{status}: {content_type}");
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn a_body_over_the_limit_answers_413_json_whether_announced_or_streamed() {
    let server = start(ServeLimits { max_body_bytes: 1_000, ..ServeLimits::default() }).await;
    let client = reqwest::Client::new();
    let url = format!("http://{}/echo", server.addr);

    let fits = client.post(&url).body(vec![b'a'; 1_000]).send().await.unwrap();
    assert_eq!(fits.text().await.unwrap(), "1000 bytes");

    // Content-Length says too much: refused before the body is read.
    let (status, body) =
        json_error(client.post(&url).body(vec![b'a'; 1_001]).send().await.unwrap()).await;
    assert_eq!(status, 413);
    assert_eq!(body["error"], "payload_too_large", "{body}");
    assert!(body["message"].as_str().unwrap().contains("1000 bytes"), "{body}");

    // No length given (chunked): refused once the body passes the limit.
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut request =
        b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..4 {
        request.extend_from_slice(format!("320\r\n{}\r\n", "a".repeat(800)).as_bytes());
    }
    request.extend_from_slice(b"0\r\n\r\n");
    stream.write_all(&request).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let read = stream.read(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]).into_owned();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("application/json"), "{answer}");
    assert!(answer.contains("\"error\":\"payload_too_large\""), "{answer}");
    server.stop.send(()).unwrap();
    server.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_handler_slower_than_the_request_timeout_answers_408_json() {
    let limits = ServeLimits { request_timeout: Duration::from_millis(300), ..Default::default() };
    let server = start(limits).await;
    let asked = std::time::Instant::now();
    let answer = reqwest::get(format!("http://{}/slow", server.addr)).await.unwrap();
    let took = asked.elapsed();
    let (status, body) = json_error(answer).await;
    assert_eq!(status, 408);
    assert_eq!(body["error"], "timeout", "{body}");
    assert!(took < Duration::from_secs(1), "answered after {took:?}, not at the timeout");
    server.stop.send(()).unwrap();
    server.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn requests_beyond_those_in_progress_answer_503_json() {
    let server = start(ServeLimits { max_in_flight: 1, ..ServeLimits::default() }).await;
    let slow = tokio::spawn(reqwest::get(format!("http://{}/slow", server.addr)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) =
        json_error(reqwest::get(format!("http://{}/whoami", server.addr)).await.unwrap()).await;
    assert_eq!(status, 503);
    assert_eq!(body["error"], "unavailable", "{body}");
    // The one in progress finishes; then there is room again.
    assert_eq!(slow.await.unwrap().unwrap().text().await.unwrap(), "done");
    let me = reqwest::get(format!("http://{}/whoami", server.addr)).await.unwrap();
    assert!(me.text().await.unwrap().starts_with("127.0.0.1:"), "the client's address");
    server.stop.send(()).unwrap();
    server.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_stop_waits_for_the_request_in_progress() {
    let server = start(ServeLimits::default()).await;
    let slow = tokio::spawn(reqwest::get(format!("http://{}/slow", server.addr)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.stop.send(()).unwrap();
    server.task.await.unwrap().unwrap();
    assert_eq!(slow.await.unwrap().unwrap().text().await.unwrap(), "done");
    assert!(tokio::net::TcpStream::connect(server.addr).await.is_err(), "no longer accepting");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_by_the_header_timeout() {
    let limits = ServeLimits { header_read_timeout: Duration::from_secs(1), ..Default::default() };
    let server = start(limits).await;
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(b"GET /whoami HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap();
    let mut buffer = vec![0u8; 4096];
    let read = stream.read(&mut buffer).await.unwrap();
    assert!(buffer[..read].starts_with(b"HTTP/1.1 200"));
    let answered = std::time::Instant::now();
    // Kept alive after the answer, then nothing: closed like a client that never sent headers.
    let closed = tokio::time::timeout(Duration::from_secs(3), async {
        while stream.read(&mut buffer).await.is_ok_and(|read| read > 0) {}
    })
    .await;
    assert!(closed.is_ok(), "still open {:?} after the answer", answered.elapsed());
    server.stop.send(()).unwrap();
    server.task.await.unwrap().unwrap();
}
