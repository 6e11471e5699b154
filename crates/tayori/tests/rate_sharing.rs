//! Three `tayori worker` processes on one PostgreSQL share one SES account's rate: SQS on moto,
//! SES v2 on an in-test stand-in (found through `AWS_ENDPOINT_URL_SESV2`) whose `GetAccount`
//! reports `MaxSendRate` 30 and which accepts every `SendEmail` at once, recording when.
//!
//! With a backlog that keeps all three busy, their summed send rate must stay within ±5 % of
//! `0.9 × 30 = 27` emails/s. Each worker's limiter is a GCRA bucket without burst, so a busy
//! worker sends its share; what can move the sum over an 8 s window (216 sends) is one send per
//! worker at each edge of the window (±3, 1.4 %) and timer lateness: with `send_burst = 1` (the
//! default) GCRA has no tolerance, so every slot the dispatcher takes late (tokio's 1 ms timer,
//! a loaded 2-core machine) is lost, not caught up. Measured on this machine: 25.9–26.6/s,
//! 1.5–4.1 % below 27, and 25.62/s (5.1 %) once with the machine busy with a benchmark beside
//! it; with `send_burst = 2`, exactly 27.00. The workers here use `send_burst = 2`, so that what
//! is measured is the division of the rate among the workers, not the timer lateness of a
//! loaded machine (docs/configuration.md says what `send_burst = 1` costs). Hence ±5 %. Then one worker is killed (`kill -9`, no
//! goodbye): the survivors must count it out and take its share within 30 s (the defaults say
//! 10 s for the heartbeat to age plus one 2 s heartbeat), and their sum must again be 27 ± 5 %.
//! Last, one survivor stops gracefully (SIGTERM): it leaves the registry, so the last one takes
//! the whole 27/s at its next heartbeat rather than after 10 s.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::json;

mod support;

use support::{contract_example, moto, moto_endpoint, repo_root};

const MAX_SEND_RATE: f64 = 30.0;
const SUMMED: f64 = 0.9 * MAX_SEND_RATE;
/// Events on the queue or in the workers' hands, not yet sent: above the 90 the three workers
/// hold in flight (`queue.max_in_flight` 30 each), so that none ever waits for a message.
const BACKLOG: usize = 200;
const WINDOW: Duration = Duration::from_secs(8);

/// When the stand-in accepted each email.
type Accepts = Arc<Mutex<Vec<Instant>>>;

async fn start_stand_in() -> (String, Accepts) {
    let accepts: Accepts = Arc::default();
    let account = || async {
        let body = json!({
            "SendQuota": { "Max24HourSend": 1_000_000.0, "MaxSendRate": MAX_SEND_RATE, "SentLast24Hours": 0.0 },
            "SendingEnabled": true,
            "ProductionAccessEnabled": true,
        });
        ([("content-type", "application/json")], body.to_string())
    };
    let send = |State(accepts): State<Accepts>| async move {
        let number = {
            let mut accepts = accepts.lock().unwrap();
            accepts.push(Instant::now());
            accepts.len()
        };
        (
            [("content-type", "application/json")],
            json!({ "MessageId": format!("rate-{number}") }).to_string(),
        )
            .into_response()
    };
    let router = Router::new()
        .route("/v2/email/account", get(account))
        .route("/v2/email/outbound-emails", post(send))
        .with_state(accepts.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (url, accepts)
}

/// Emails accepted in `[from, to)`, per second.
fn rate(accepts: &Accepts, from: Instant, to: Instant) -> f64 {
    let count = accepts.lock().unwrap().iter().filter(|at| **at >= from && **at < to).count();
    count as f64 / (to - from).as_secs_f64()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Worker {
    child: Child,
    metrics: String,
    log: std::path::PathBuf,
}

impl Worker {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A gauge's value on this worker's `/metrics`, or `None` while it does not answer.
    async fn gauge(&self, http: &reqwest::Client, name: &str) -> Option<f64> {
        let text = http.get(&self.metrics).send().await.ok()?.text().await.ok()?;
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|value| value.trim().parse().ok())
    }
}

fn start_worker(
    n: usize,
    dir: &std::path::Path,
    database_url: &str,
    queue: &str,
    ses_url: &str,
) -> Worker {
    let port = free_port();
    let config = dir.join(format!("worker-{n}.toml"));
    std::fs::write(
        &config,
        format!(
            r#"
            worker_id = "rate-{n}"
            [store]
            kind = "postgres"
            url = "{database_url}"
            max_connections = 8
            [queue]
            url = "{queue}"
            wait_time_seconds = 1
            max_in_flight = 30
            visibility_timeout_seconds = 60
            heartbeat_interval = 20
            shutdown_grace = 10
            [sender]
            kind = "ses"
            read_account_send_rate = true
            send_burst = 2
            call_timeout = 2
            connect_timeout = 1
            max_rate_wait = 15
            [templates]
            dir = "{templates}"
            [delivery]
            lease_seconds = 60
            [http]
            listen = "127.0.0.1:{port}"
            "#,
            templates = repo_root().join("templates").display(),
        ),
    )
    .unwrap();
    let log = dir.join(format!("worker-{n}.log"));
    let child = Command::new(env!("CARGO_BIN_EXE_tayori"))
        .args(["worker", "--config"])
        .arg(&config)
        .env("AWS_ENDPOINT_URL", moto_endpoint())
        .env("AWS_ENDPOINT_URL_SESV2", ses_url)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    Worker { child, metrics: format!("http://127.0.0.1:{port}/metrics"), log }
}

/// Waits until every worker in `workers` reports `live` live workers; returns when.
async fn wait_for_live(
    http: &reqwest::Client,
    workers: &mut [&mut Worker],
    live: f64,
    limit: Duration,
) -> Instant {
    let started = Instant::now();
    loop {
        let mut all = true;
        for worker in workers.iter_mut() {
            if let Some(exit) = worker.child.try_wait().unwrap() {
                panic!("a worker exited ({exit:?}):\n{}", worker.log());
            }
            all &= worker.gauge(http, "tayori_live_workers").await == Some(live);
        }
        if all {
            return Instant::now();
        }
        let logs: Vec<String> = workers.iter().map(|w| w.log()).collect();
        assert!(started.elapsed() < limit, "not {live} live workers within {limit:?}:\n{logs:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn within_5_percent(measured: f64) -> bool {
    (measured - SUMMED).abs() <= SUMMED * 0.05
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_share_the_account_rate_and_take_over_a_killed_ones_share() {
    let (ses_url, accepts) = start_stand_in().await;
    let sqs = aws_sdk_sqs::Client::new(&moto().await);
    let queue = sqs
        .create_queue()
        .queue_name(format!("rate-sharing-{}", std::process::id()))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    // moto scans the whole queue on every receive (a receive from 1,600 messages takes about a
    // second), so the backlog is kept near BACKLOG by topping it up as the stand-in accepts,
    // rather than preloaded: enough for every worker to have its fill in flight.
    let fed = Arc::new(AtomicUsize::new(0));
    let feeder = {
        let (sqs, queue, accepts, fed) = (sqs.clone(), queue.clone(), accepts.clone(), fed.clone());
        tokio::spawn(async move {
            let run = std::process::id();
            loop {
                let backlog = fed.load(Ordering::Relaxed) - accepts.lock().unwrap().len();
                for _ in 0..BACKLOG.saturating_sub(backlog).div_ceil(10) {
                    let n = fed.fetch_add(10, Ordering::Relaxed);
                    let entries = (n..n + 10).map(|i| {
                        let mut event = contract_example();
                        event["id"] = json!(format!("rate-{run}-{i}"));
                        event["data"]["to"]["email"] = json!(format!("investor{i}@example.com"));
                        SendMessageBatchRequestEntry::builder()
                            .id(format!("e{i}"))
                            .message_body(event.to_string())
                            .build()
                            .unwrap()
                    });
                    sqs.send_message_batch()
                        .queue_url(&queue)
                        .set_entries(Some(entries.collect()))
                        .send()
                        .await
                        .unwrap();
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    let database = tayori_postgres::testing::fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let mut workers: Vec<Worker> =
        (0..3).map(|n| start_worker(n, dir.path(), &database.url, &queue, &ses_url)).collect();
    let http = reqwest::Client::new();

    // All three joined and each knows it: 9/s each from their next heartbeat on.
    let joined = {
        let mut all: Vec<&mut Worker> = workers.iter_mut().collect();
        wait_for_live(&http, &mut all, 3.0, Duration::from_secs(60)).await
    };
    let from = joined + Duration::from_millis(500);
    tokio::time::sleep_until((from + WINDOW).into()).await;
    let three = rate(&accepts, from, from + WINDOW);
    for worker in &workers {
        let share = worker.gauge(&http, "tayori_send_rate_share").await;
        assert!(share.is_some_and(|share| (share - 9.0).abs() < 1e-9), "{share:?}");
        assert_eq!(worker.gauge(&http, "tayori_account_send_rate").await, Some(MAX_SEND_RATE));
    }

    // kill -9: no leave, its row must age out.
    let killed_at = Instant::now();
    workers[0].child.kill().unwrap();
    workers[0].child.wait().unwrap();
    let taken_over = {
        let mut survivors: Vec<&mut Worker> = workers[1..].iter_mut().collect();
        wait_for_live(&http, &mut survivors, 2.0, Duration::from_secs(30)).await
    };
    let takeover = taken_over - killed_at;
    // Between the kill and the survivors' next heartbeats the sum is two shares (18/s).
    let dip = rate(&accepts, killed_at, taken_over);
    // When the sum was back, by the rate itself: the start of the first 2 s window after the
    // kill at 95 % of 27/s or more.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let back = (0..)
        .map(|tenths| killed_at + Duration::from_millis(100 * tenths))
        .take_while(|start| *start + Duration::from_secs(2) <= Instant::now())
        .find(|start| rate(&accepts, *start, *start + Duration::from_secs(2)) >= 0.95 * SUMMED);
    let from = taken_over + Duration::from_millis(500);
    tokio::time::sleep_until((from + WINDOW).into()).await;
    let two = rate(&accepts, from, from + WINDOW);
    let shares = [
        workers[1].gauge(&http, "tayori_send_rate_share").await,
        workers[2].gauge(&http, "tayori_send_rate_share").await,
    ];
    assert_eq!(shares, [Some(SUMMED / 2.0), Some(SUMMED / 2.0)]);

    // SIGTERM: a graceful stop leaves the registry; the last worker takes all at once.
    let status = Command::new("kill").args(["-TERM", &workers[1].child.id().to_string()]).status();
    assert!(status.unwrap().success());
    let exit = workers[1].child.wait().unwrap();
    assert!(exit.success(), "{exit:?}: {}", workers[1].log());
    let left_at = Instant::now();
    let alone = {
        let mut last: Vec<&mut Worker> = workers[2..].iter_mut().collect();
        wait_for_live(&http, &mut last, 1.0, Duration::from_secs(30)).await
    };
    let after_leave = alone - left_at;
    assert_eq!(workers[2].gauge(&http, "tayori_send_rate_share").await, Some(SUMMED));
    let status = Command::new("kill").args(["-TERM", &workers[2].child.id().to_string()]).status();
    assert!(status.unwrap().success());
    let exit = workers[2].child.wait().unwrap();
    assert!(exit.success(), "{exit:?}: {}", workers[2].log());

    feeder.abort();
    let fed = fed.load(Ordering::Relaxed);
    println!(
        "rate sharing: MaxSendRate {MAX_SEND_RATE}, headroom 0.9 → {SUMMED}/s summed; \
         3 workers: {three:.2}/s over {WINDOW:?}; killed one: survivors counted it out after \
         {takeover:.1?} ({dip:.2}/s until then; a 2 s window at ≥ 95 % from {:.1?} after the \
         kill); 2 workers: {two:.2}/s; \
         graceful leave taken over after {after_leave:.1?}; {fed} events fed, {} accepted",
        back.map(|end| end - killed_at),
        accepts.lock().unwrap().len(),
    );
    assert!(within_5_percent(three), "3 workers sent {three:.2}/s, not {SUMMED} ± 5 %");
    assert!(within_5_percent(two), "2 workers sent {two:.2}/s, not {SUMMED} ± 5 %");
    assert!(takeover <= Duration::from_secs(30), "{takeover:?}");
    // A graceful leave is seen at the next heartbeat (2 s), not after the 10 s of a kill.
    assert!(after_leave < Duration::from_secs(5), "{after_leave:?}");
    assert!(back.is_some(), "the summed rate did not come back to 95 % of {SUMMED}/s");
}
