//! The worker as a real process with SES misbehaving: SQS on moto, PostgreSQL, and SES v2 on a
//! fault-injecting stand-in (moto cannot throttle or pause). One tenant's sends meet a throttling
//! storm, 503s, a 500 and a timeout after the email was accepted; the other tenant's sending is
//! paused by SES until the test lifts the pause. The worker finds each service through the SDK's
//! own per-service endpoint variables (`AWS_ENDPOINT_URL_SESV2`), as an operator would set them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tayori_app::ports::{AttemptResult, DeliveryQuery, DeliveryRecord, DeliveryStore};
use tayori_postgres::{PostgresConfig, PostgresStore};

mod support;

use support::{moto, moto_endpoint, queue_length, repo_root};

const INVEST_EVENTS: usize = 30;
const BANK_EVENTS: usize = 10;

/// What the stand-in has seen.
#[derive(Default)]
struct Seen {
    /// `SendEmail` calls for acme-invest so far (its script goes by this number).
    invest_requests: u32,
    /// While true, acme-bank's sends are refused with `SendingPausedException`.
    bank_paused: bool,
    bank_refusals: u32,
    /// Emails the stand-in accepted, per delivery id (the `tayori-delivery-id` tag).
    accepted: HashMap<String, u32>,
}

type Shared = Arc<Mutex<Seen>>;

fn aws_error(status: u16, code: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json"), ("x-amzn-errortype", code)],
        json!({ "message": format!("stand-in says {code}") }).to_string(),
    )
        .into_response()
}

fn accepted(number: usize) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        json!({ "MessageId": format!("stand-in-{number}") }).to_string(),
    )
        .into_response()
}

/// `POST /v2/email/outbound-emails`, scripted per tenant.
async fn send_email(State(seen): State<Shared>, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or_default();
    let tag = |name: &str| {
        body["EmailTags"].as_array().and_then(|tags| {
            tags.iter().find(|t| t["Name"] == name).and_then(|t| t["Value"].as_str())
        })
    };
    let tenant = tag("tayori-tenant").unwrap_or_default().to_owned();
    let delivery = tag("tayori-delivery-id").unwrap_or_default().to_owned();
    let accept = |seen: &mut Seen| {
        *seen.accepted.entry(delivery.clone()).or_default() += 1;
        accepted(seen.accepted.values().sum::<u32>() as usize)
    };
    let mut delay = Duration::ZERO;
    let response = {
        let mut seen = seen.lock().unwrap();
        if tenant == "acme-bank" {
            if seen.bank_paused {
                seen.bank_refusals += 1;
                aws_error(400, "SendingPausedException")
            } else {
                accept(&mut seen)
            }
        } else {
            seen.invest_requests += 1;
            match seen.invest_requests {
                1..=12 => aws_error(429, "TooManyRequestsException"),
                13..=16 => aws_error(503, "ServiceUnavailable"),
                // SES failed while handling it; the stand-in did not accept it.
                17 => aws_error(500, "InternalFailure"),
                // Accepted, but the answer comes after the worker's call timeout (2 s).
                18 => {
                    delay = Duration::from_secs(4);
                    accept(&mut seen)
                }
                _ => accept(&mut seen),
            }
        }
    };
    tokio::time::sleep(delay).await;
    response
}

async fn start_stand_in() -> (String, Shared) {
    let seen: Shared = Arc::new(Mutex::new(Seen { bank_paused: true, ..Seen::default() }));
    let router =
        Router::new().route("/v2/email/outbound-emails", post(send_email)).with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (url, seen)
}

fn event(tenant: &str, i: usize) -> Value {
    if tenant == "acme-invest" {
        let mut event: Value = serde_json::from_slice(
            &std::fs::read(
                repo_root().join("tests/fixtures/events/valid/deposit-completed-ja.json"),
            )
            .unwrap(),
        )
        .unwrap();
        event["id"] = json!(format!("invest-{i}"));
        event["data"]["to"]["email"] = json!(format!("investor{i}@example.com"));
        event
    } else {
        let sample: Value = serde_json::from_slice(
            &std::fs::read(
                repo_root()
                    .join("templates/acme-bank/account.deposit_completed/samples/salary.json"),
            )
            .unwrap(),
        )
        .unwrap();
        let mut data = sample;
        data["to"]["email"] = json!(format!("saver{i}@example.com"));
        json!({
            "specversion": "1.0",
            "id": format!("bank-{i}"),
            "source": "acme-bank/core",
            "type": "account.deposit_completed",
            "time": "2026-11-28T09:00:00Z",
            "tenant": "acme-bank",
            "datacontenttype": "application/json",
            "data": data,
        })
    }
}

async fn all_deliveries(store: &PostgresStore) -> Vec<DeliveryRecord> {
    let page = store.deliveries(&DeliveryQuery { limit: 500, ..Default::default() }).await.unwrap();
    assert!(page.next.is_none());
    page.deliveries
}

async fn wait_for(
    store: &PostgresStore,
    what: &str,
    limit: Duration,
    worker: &mut Child,
    log: &dyn Fn() -> String,
    done: impl Fn(&[DeliveryRecord]) -> bool,
) -> Vec<DeliveryRecord> {
    let started = Instant::now();
    loop {
        let all = all_deliveries(store).await;
        if done(&all) {
            return all;
        }
        if let Some(exit) = worker.try_wait().unwrap() {
            panic!("{what}: the worker exited early ({exit:?}):\n{}", log());
        }
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}: {all:#?}\n{}", log());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn decided_of<'a>(all: &'a [DeliveryRecord], tenant: &str) -> Vec<&'a DeliveryRecord> {
    all.iter().filter(|d| d.tenant.as_str() == tenant && d.status.is_decided()).collect()
}

fn terminate(worker: &mut Child) -> std::process::ExitStatus {
    let status = Command::new("kill").args(["-TERM", &worker.id().to_string()]).status().unwrap();
    assert!(status.success());
    let asked = Instant::now();
    loop {
        if let Some(exit) = worker.try_wait().unwrap() {
            return exit;
        }
        assert!(asked.elapsed() < Duration::from_secs(20), "no exit within the grace period");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_errors_and_a_paused_tenant_lose_nothing_and_send_nothing_twice() {
    let (ses_url, seen) = start_stand_in().await;
    let sqs = aws_sdk_sqs::Client::new(&moto().await);
    let queue = sqs
        .create_queue()
        .queue_name(format!("ses-faults-{}", std::process::id()))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let events: Vec<Value> = (0..INVEST_EVENTS)
        .map(|i| event("acme-invest", i))
        .chain((0..BANK_EVENTS).map(|i| event("acme-bank", i)))
        .collect();
    for (n, batch) in events.chunks(10).enumerate() {
        let entries = batch.iter().enumerate().map(|(i, event)| {
            SendMessageBatchRequestEntry::builder()
                .id(format!("{n}-{i}"))
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

    let database = tayori_postgres::testing::fresh_database().await;
    let store = PostgresStore::connect(&PostgresConfig::new(&database.url)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config_file = dir.path().join("tayori.toml");
    std::fs::write(
        &config_file,
        format!(
            r#"
            worker_id = "ses-faults"
            [store]
            kind = "postgres"
            url = "{url}"
            [queue]
            url = "{queue}"
            wait_time_seconds = 1
            visibility_timeout_seconds = 10
            heartbeat_interval = 3
            backoff_first = 1
            backoff_max = 3
            shutdown_grace = 10
            [sender]
            kind = "ses"
            read_account_send_rate = false
            send_rate = 100
            call_timeout = 2
            connect_timeout = 1
            max_rate_wait = 5
            [templates]
            dir = "{templates}"
            [delivery]
            lease_seconds = 10
            pause_seconds = 3
            "#,
            url = database.url,
            templates = repo_root().join("templates").display(),
        ),
    )
    .unwrap();
    let log_path = dir.path().join("worker.log");
    let mut worker = Command::new(env!("CARGO_BIN_EXE_tayori"))
        .args(["worker", "--config"])
        .arg(&config_file)
        .env("AWS_ENDPOINT_URL", moto_endpoint())
        .env("AWS_ENDPOINT_URL_SESV2", &ses_url)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();

    // Through the storm, every acme-invest event is decided while acme-bank's wait.
    let all = wait_for(
        &store,
        "acme-invest decided",
        Duration::from_secs(120),
        &mut worker,
        &log,
        |all| decided_of(all, "acme-invest").len() == INVEST_EVENTS,
    )
    .await;
    let (bank_refusals, bank_accepted, invest_requests) = {
        let seen = seen.lock().unwrap();
        let bank_accepted = all
            .iter()
            .filter(|d| d.tenant.as_str() == "acme-bank")
            .filter(|d| seen.accepted.contains_key(&d.delivery_id.to_string()));
        (seen.bank_refusals, bank_accepted.count(), seen.invest_requests)
    };
    assert!(bank_refusals >= 1, "the pause was met: {}", log());
    assert_eq!(bank_accepted, 0, "nothing sent for the paused tenant");
    assert!(decided_of(&all, "acme-bank").is_empty(), "the paused tenant's events wait");
    assert!(invest_requests >= 18, "the whole script ran: {invest_requests}");

    // SES lifts the pause: acme-bank's events go out once the pause the worker keeps has ended.
    seen.lock().unwrap().bank_paused = false;
    let all =
        wait_for(&store, "acme-bank decided", Duration::from_secs(60), &mut worker, &log, |all| {
            decided_of(all, "acme-bank").len() == BANK_EVENTS
        })
        .await;
    let exit = terminate(&mut worker);
    assert!(exit.success(), "exit status {exit:?}: {}", log());

    let accepted = seen.lock().unwrap().accepted.clone();
    let mut unknown = Vec::new();
    for delivery in &all {
        let attempts = store.attempts(&delivery.tenant, delivery.delivery_id).await.unwrap();
        let had_unknown = attempts.iter().any(|a| a.result == Some(AttemptResult::Unknown));
        let emails = accepted.get(&delivery.delivery_id.to_string()).copied().unwrap_or(0);
        if had_unknown {
            // The documented policy: a send whose result is unknown is not tried again; it stays
            // `unknown` until SES reports on it (no feedback queue here).
            assert_eq!(delivery.status.as_str(), "unknown", "{delivery:?}");
            assert!(delivery.reason.as_deref().unwrap().contains("not resent"), "{delivery:?}");
            assert!(emails <= 1, "{delivery:?}");
            unknown.push(emails);
        } else {
            assert_eq!(delivery.status.as_str(), "sent", "{delivery:?}");
            assert_eq!(emails, 1, "exactly one email for {delivery:?}");
        }
    }
    // The 500 (not accepted) and the late answer (accepted) are the two unknown results.
    unknown.sort_unstable();
    assert_eq!(unknown, [0, 1], "{all:#?}");
    assert_eq!(all.len(), INVEST_EVENTS + BANK_EVENTS);
    let left = queue_length(&sqs, &queue).await;
    assert_eq!(left, "0+0", "every message deleted");
    let claims: u32 = all.iter().map(|d| d.claim_count).sum();
    println!(
        "ses faults: {} events; {invest_requests} acme-invest requests through 12 throttles, \
         4 503s, a 500 and a late answer; {bank_refusals} acme-bank sends refused while paused; \
         {claims} claims; {} emails accepted",
        all.len(),
        accepted.values().sum::<u32>()
    );
}
