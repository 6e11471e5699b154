//! Two worker processes on one queue, with sends that outlast the visibility timeout: SQS on
//! moto, PostgreSQL, SES v2 on a stand-in that answers one send in ten after 18 s. With a
//! visibility timeout of 6 s and a heartbeat every 3 s, the heartbeat must keep each slow
//! message invisible (neither worker sees it again) and every message must be deleted, with
//! exactly one send per event. The control run turns the heartbeat off: the slow messages come
//! back every 6 s to either worker, which finds the store's lease held and leaves them; still no
//! second send. Both runs go at once, each with its own queue, database and stand-in.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tayori_app::ports::{DeliveryQuery, DeliveryRecord, DeliveryStore};
use tayori_postgres::{PostgresConfig, PostgresStore};

mod support;

use support::{moto, moto_endpoint, queue_length, repo_root};

const EVENTS: usize = 1_000;
/// One send in ten is answered after this, three times the visibility timeout.
const SLOW_SEND: Duration = Duration::from_secs(18);
const VISIBILITY_SECONDS: i64 = 6;
const LEASE_SECONDS: i64 = 40;

/// `SendEmail` calls per delivery id (the `tayori-delivery-id` tag), in order of first arrival.
#[derive(Default)]
struct Seen {
    calls: HashMap<String, u32>,
}

type Shared = Arc<Mutex<Seen>>;

async fn send_email(State(seen): State<Shared>, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or_default();
    let delivery = body["EmailTags"]
        .as_array()
        .and_then(|tags| tags.iter().find(|t| t["Name"] == "tayori-delivery-id"))
        .and_then(|t| t["Value"].as_str())
        .unwrap_or_default()
        .to_owned();
    let slow = {
        let mut seen = seen.lock().unwrap();
        let first_seen = seen.calls.len();
        let calls = seen.calls.entry(delivery.clone()).or_default();
        *calls += 1;
        // The 1st, 11th, 21st … delivery seen is slow, whenever it is called.
        *calls == 1 && first_seen.is_multiple_of(10)
    };
    if slow {
        tokio::time::sleep(SLOW_SEND).await;
    }
    (
        [("content-type", "application/json")],
        json!({ "MessageId": format!("ses-{delivery}") }).to_string(),
    )
        .into_response()
}

async fn start_stand_in() -> (String, Shared) {
    let seen = Shared::default();
    let router =
        Router::new().route("/v2/email/outbound-emails", post(send_email)).with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (url, seen)
}

fn event(run: &str, i: usize) -> Value {
    let mut event: Value = serde_json::from_slice(
        &std::fs::read(repo_root().join("tests/fixtures/events/valid/deposit-completed-ja.json"))
            .unwrap(),
    )
    .unwrap();
    event["id"] = json!(format!("{run}-{i}"));
    event["data"]["to"]["email"] = json!(format!("investor{i}@example.com"));
    event
}

fn start_worker(dir: &Path, name: &str, config: &Path, ses_url: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tayori"))
        .args(["worker", "--config"])
        .arg(config)
        .env("TAYORI_WORKER_ID", name)
        .env("AWS_ENDPOINT_URL", moto_endpoint())
        .env("AWS_ENDPOINT_URL_SESV2", ses_url)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("RUST_LOG", "info")
        .env("TAYORI_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("{name}.log"))).unwrap())
        .spawn()
        .unwrap()
}

/// Worker processes, killed if the test fails before it stops them.
struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for worker in &mut self.0 {
            let _ = worker.kill();
            let _ = worker.wait();
        }
    }
}

fn terminate(worker: &mut Child) {
    let status = Command::new("kill").args(["-TERM", &worker.id().to_string()]).status().unwrap();
    assert!(status.success());
    let asked = Instant::now();
    while worker.try_wait().unwrap().is_none() {
        assert!(asked.elapsed() < Duration::from_secs(40), "no exit within the grace period");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every delivery, page by page (500 at most per page).
async fn all_deliveries(store: &PostgresStore) -> Vec<DeliveryRecord> {
    let mut all = Vec::new();
    let mut query = DeliveryQuery { limit: 500, ..Default::default() };
    loop {
        let page = store.deliveries(&query).await.unwrap();
        all.extend(page.deliveries);
        match page.next {
            Some(next) => query.after = Some(next),
            None => return all,
        }
    }
}

/// Sends the run's events in batches of ten, ten batches a second.
async fn publish(sqs: aws_sdk_sqs::Client, queue: String, run: String) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    for (n, batch) in (0..EVENTS).collect::<Vec<_>>().chunks(10).enumerate() {
        tick.tick().await;
        let entries = batch.iter().map(|i| {
            SendMessageBatchRequestEntry::builder()
                .id(format!("{n}-{i}"))
                .message_body(event(&run, *i).to_string())
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
}

/// What one run came to.
#[derive(Debug)]
struct Run {
    took: Duration,
    sent: usize,
    calls: HashMap<String, u32>,
    /// Messages a worker left for later because another worker's lease was in force, having
    /// come back after their visibility ran out: each is a redelivery of a message still being
    /// worked on (log lines).
    came_back: Vec<String>,
    /// The same, for messages handed to both workers at once.
    duplicates: usize,
}

/// Publishes 1,000 events and runs two workers on them until every event is decided and every
/// message deleted.
async fn run(name: &str, heartbeat_interval: u64) -> Run {
    let (ses_url, seen) = start_stand_in().await;
    let sqs = aws_sdk_sqs::Client::new(&moto().await);
    let queue = sqs
        .create_queue()
        .queue_name(format!("two-workers-{name}-{}", std::process::id()))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let database = tayori_postgres::testing::fresh_database().await;
    let store = PostgresStore::connect(&PostgresConfig::new(&database.url)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tayori.toml");
    std::fs::write(
        &config,
        format!(
            r#"
            [store]
            kind = "postgres"
            url = "{url}"
            [queue]
            url = "{queue}"
            wait_time_seconds = 1
            visibility_timeout_seconds = {VISIBILITY_SECONDS}
            heartbeat_interval = {heartbeat_interval}
            backoff_first = 1
            backoff_max = 5
            shutdown_grace = 25
            [sender]
            kind = "ses"
            read_account_send_rate = false
            send_rate = 1000
            call_timeout = 25
            connect_timeout = 1
            max_rate_wait = 5
            [templates]
            dir = "{templates}"
            [delivery]
            lease_seconds = {LEASE_SECONDS}
            "#,
            url = database.url,
            templates = repo_root().join("templates").display(),
        ),
    )
    .unwrap();
    let started = Instant::now();
    // Published at 100 events/s beside the workers, as a product does: moto's receive slows
    // with the number of messages it holds (a backlog of 1,000 drains at about 25 a second),
    // so a preloaded queue would measure moto, not the workers.
    let publishing = tokio::spawn(publish(sqs.clone(), queue.clone(), name.to_owned()));
    let mut workers = Workers(vec![
        start_worker(dir.path(), &format!("{name}-1"), &config, &ses_url),
        start_worker(dir.path(), &format!("{name}-2"), &config, &ses_url),
    ]);
    let logs = || {
        ["1", "2"]
            .map(|n| {
                std::fs::read_to_string(dir.path().join(format!("{name}-{n}.log")))
                    .unwrap_or_default()
            })
            .join("\n")
    };
    let limit = Duration::from_secs(150);
    let sent = loop {
        let deliveries = all_deliveries(&store).await;
        let decided = deliveries.iter().filter(|d| d.status.is_decided()).count();
        let sent = deliveries.iter().filter(|d| d.status.as_str() == "sent").count();
        if decided == EVENTS && queue_length(&sqs, &queue).await == "0+0" {
            break sent;
        }
        for worker in &mut workers.0 {
            if let Some(exit) = worker.try_wait().unwrap() {
                panic!("{name}: a worker exited early ({exit:?}):\n{}", logs());
            }
        }
        assert!(
            started.elapsed() < limit,
            "{name}: {decided} of {EVENTS} decided, queue {} after {limit:?}",
            queue_length(&sqs, &queue).await
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let took = started.elapsed();
    publishing.await.unwrap();
    for worker in &mut workers.0 {
        terminate(worker);
    }
    // Redeliveries the workers left because another worker's lease was in force, by how long
    // after that worker's claim they came. A message that came back while being worked on
    // (what the heartbeat prevents) comes a visibility timeout after its receive, so at least
    // half of one after the claim (which follows the receive within moments); one SQS handed
    // to both workers at once (at-least-once delivery: moto does it under concurrent receives)
    // comes within moments of the claim.
    let (mut came_back, mut duplicates) = (Vec::new(), 0);
    for line in logs().lines() {
        let Ok(line) = serde_json::from_str::<Value>(line) else { continue };
        let reason = line["reason"].as_str().unwrap_or_default();
        let Some(until) = reason.strip_prefix("another worker holds the lease until ") else {
            continue;
        };
        let until = chrono::NaiveDateTime::parse_from_str(until, "%Y-%m-%d %H:%M:%S%.f UTC")
            .unwrap()
            .and_utc();
        let at: chrono::DateTime<chrono::Utc> =
            line["timestamp"].as_str().unwrap().parse().unwrap();
        let since_claim = at - (until - chrono::Duration::seconds(LEASE_SECONDS));
        if since_claim >= chrono::Duration::milliseconds(VISIBILITY_SECONDS * 1000 / 2) {
            came_back.push(line.to_string());
        } else {
            duplicates += 1;
        }
    }
    let calls = seen.lock().unwrap().calls.clone();
    Run { took, sent, calls, came_back, duplicates }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_with_sends_longer_than_the_visibility_send_each_event_once() {
    let (with_heartbeat, without) = tokio::join!(run("heartbeat", 3), run("no-heartbeat", 0));
    for (what, run) in [("heartbeat every 3 s", &with_heartbeat), ("no heartbeat", &without)] {
        let slow = run.calls.len().div_ceil(10);
        println!(
            "{what}: {} events sent by two workers in {:.1?}, {slow} of them answered after 18 s; \
             {} SendEmail calls for {} deliveries; {} messages came back while being worked on and \
             {} were received twice at once, all left for the lease",
            run.sent,
            run.took,
            run.calls.values().sum::<u32>(),
            run.calls.len(),
            run.came_back.len(),
            run.duplicates,
        );
        assert_eq!(run.sent, EVENTS, "{what}: every event sent");
        assert_eq!(run.calls.len(), EVENTS, "{what}: one delivery per event");
        let twice: Vec<_> = run.calls.iter().filter(|(_, calls)| **calls > 1).collect();
        assert!(twice.is_empty(), "{what}: sent more than once: {twice:?}");
    }
    // With the heartbeat, a slow message stays invisible: no worker meets it again.
    assert!(
        with_heartbeat.came_back.is_empty(),
        "the heartbeat let messages come back: {:#?}",
        with_heartbeat.came_back
    );
    // Without, each slow message comes back every 6 s while its send takes 18 s; the lease
    // (not SQS) is what keeps the second worker from sending it.
    assert!(
        without.came_back.len() >= EVENTS / 10,
        "the control run should show the redeliveries: {}",
        without.came_back.len()
    );
}
