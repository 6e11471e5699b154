//! The worker's health listener (the same `tayori_http::serve` every listener uses) under a
//! slowloris: 500 connections that send part of a request and never finish. `/healthz` still
//! answers within a second while they are held, and the header-read timeout closes every one
//! of them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use tayori::http_health::{HealthServer, HealthState};
use tayori_http::ServeLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HELD: usize = 500;
const HEADER_TIMEOUT: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_neither_starve_the_listener_nor_stay_open() {
    let state = HealthState {
        alive: Arc::new(AtomicBool::new(true)),
        checks: Arc::new(vec![]),
        metrics: tayori::metrics::install(&[]),
    };
    let limits = ServeLimits { header_read_timeout: HEADER_TIMEOUT, ..ServeLimits::default() };
    let server = HealthServer::start("127.0.0.1:0".parse().unwrap(), state, limits).await.unwrap();
    let addr = server.local_addr;

    // Four kinds of slow clients: nothing sent, part of the request line, part of the headers,
    // and one more header byte every 300 ms (each byte would reset a per-read timer).
    let mut held = Vec::with_capacity(HELD);
    for i in 0..HELD {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let partial: &[u8] = match i % 4 {
            0 => b"",
            1 => b"GET /heal",
            _ => b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ",
        };
        stream.write_all(partial).await.unwrap();
        held.push((stream, Instant::now(), i % 4 == 3));
    }
    let opened = Instant::now();

    // While all are held, the endpoint answers promptly, again and again.
    let client = reqwest::Client::builder().timeout(Duration::from_secs(1)).build().unwrap();
    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        let asked = Instant::now();
        let answer = client.get(format!("http://{addr}/healthz")).send().await;
        let took = asked.elapsed();
        let answer = answer.expect("/healthz answered within 1 s while 500 requests were held");
        assert_eq!(answer.status(), 200);
        slowest = slowest.max(took);
        // Drip a byte into the third kind's headers.
        for (stream, _, drip) in &mut held {
            if *drip {
                let _ = stream.write_all(b"a").await;
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    eprintln!("{HELD} half-sent requests held: slowest /healthz {slowest:?}");
    assert!(slowest < Duration::from_secs(1), "{slowest:?}");

    // Every held connection is closed by the server: EOF (or a reset) within the header
    // timeout plus a margin, counted from when its first bytes were sent.
    let margin = Duration::from_millis(1_500);
    let mut latest = Duration::ZERO;
    for (mut stream, written, _) in held {
        let deadline =
            (written + HEADER_TIMEOUT + margin).saturating_duration_since(Instant::now());
        let mut buffer = [0u8; 1024];
        let closed = tokio::time::timeout(deadline, async {
            loop {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    // hyper may answer 408 before it closes; read on to the end.
                    Ok(_) => continue,
                }
            }
        })
        .await;
        assert!(
            closed.is_ok(),
            "a held connection was still open {:?} after it was opened",
            written.elapsed()
        );
        latest = latest.max(written.elapsed());
    }
    eprintln!(
        "all {HELD} closed by the server; the last seen closed {latest:?} after its bytes \
         (header timeout {HEADER_TIMEOUT:?}); {:?} since the last was opened",
        opened.elapsed()
    );

    // And the listener still serves afterwards.
    let answer = client.get(format!("http://{addr}/healthz")).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    server.stop().await;
}
