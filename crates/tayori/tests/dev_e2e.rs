//! End to end on a real port: `tayori dev` as the binary starts it, with the shipped templates,
//! the file outbox, and the store on SQLite and on PostgreSQL. The "done when" of the
//! foundation: one `.eml` for the contract's example, none for its duplicate, and a malformed
//! body answered with 400 and recorded as rejected.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tayori::dev::{DevApp, DevConfig, start};
use tayori_app::ports::DeliveryQuery;
use tayori_domain::{DeliveryId, DeliveryStatus};
use tempfile::TempDir;

mod support;

use support::repo_root;

async fn spawn_app(database_url: Option<String>) -> (DevApp, TempDir) {
    let data = tempfile::tempdir().expect("temp dir");
    let app = start(DevConfig {
        listen: "127.0.0.1:0".parse().expect("address"),
        data_dir: data.path().to_owned(),
        templates: repo_root().join("templates"),
        database_url,
        concurrency: 4,
    })
    .await
    .expect("tayori dev starts");
    (app, data)
}

fn example_body() -> Vec<u8> {
    std::fs::read(repo_root().join("tests/fixtures/events/valid/deposit-completed-ja.json"))
        .expect("fixture")
}

async fn post(app: &DevApp, body: Vec<u8>) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("http://{}/v1/events", app.addr))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn eml_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    files.sort();
    files
}

/// Polls (bounded: 10 s) until the delivery has the wanted duplicate count and a decided status.
async fn wait_for(
    app: &DevApp,
    id: DeliveryId,
    duplicates: u32,
) -> tayori_app::ports::DeliveryRecord {
    for _ in 0..200 {
        if let Some(record) = app.store.delivery(id, None).await.expect("store")
            && record.status.is_decided()
            && record.duplicate_count >= duplicates
        {
            return record;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("delivery {id} was not decided with {duplicates} duplicates within 10 s");
}

async fn the_foundation_path(app: DevApp) {
    // 1. The contract's example: 202 with its delivery id, then exactly one email.
    let (status, body) = post(&app, example_body()).await;
    assert_eq!(status, 202, "{body}");
    let id = DeliveryId::parse(body["delivery_id"].as_str().expect("id")).expect("uuid");
    let record = wait_for(&app, id, 0).await;
    assert_eq!(record.status, DeliveryStatus::Sent);
    let files = eml_files(&app.outbox_dir);
    assert_eq!(files.len(), 1, "{files:?}");

    let raw = std::fs::read(&files[0]).expect("eml");
    let message = mail_parser::MessageParser::default().parse(&raw).expect("parses as email");
    assert_eq!(message.subject(), Some("【Acme Invest】ご入金が完了しました"));
    let text = message.body_text(0).expect("text part");
    assert!(text.contains("山田 太郎"), "{text}");
    assert!(text.contains("50,000"), "{text}");
    let html = message.body_html(0).expect("html part");
    assert!(html.contains("50,000"), "{html}");
    assert_eq!(record.subject.as_deref(), Some("【Acme Invest】ご入金が完了しました"));

    // 2. The same event again: same id, no second file, the duplicate counted.
    let (status, again) = post(&app, example_body()).await;
    assert_eq!(status, 202);
    assert_eq!(again["delivery_id"], body["delivery_id"]);
    let record = wait_for(&app, id, 1).await;
    assert_eq!(record.duplicate_count, 1);
    assert_eq!(eml_files(&app.outbox_dir).len(), 1, "a duplicate never writes a second email");

    // 3. A malformed body: 400 with the reason, and kept as a rejection.
    let (status, rejected) = post(&app, br#"{"specversion": "1.0", "id": "#.to_vec()).await;
    assert_eq!(status, 400);
    assert!(rejected["reason"].as_str().expect("reason").contains("not valid JSON"), "{rejected}");
    let kept = app.store.unkeyed_rejections(10).await.expect("store");
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].raw_body, br#"{"specversion": "1.0", "id": "#);

    // 4. A contract violation with a key: 400, and `rejected` against that key.
    let mut bad: Value = serde_json::from_slice(&example_body()).expect("json");
    bad["id"] = "bad-address".into();
    bad["data"]["to"]["email"] = "taro.yamada@".into();
    let (status, rejected) = post(&app, bad.to_string().into_bytes()).await;
    assert_eq!(status, 400);
    let bad_id = DeliveryId::parse(rejected["delivery_id"].as_str().expect("id")).expect("uuid");
    let record = app.store.delivery(bad_id, None).await.expect("store").expect("recorded");
    assert_eq!(record.status, DeliveryStatus::Rejected);
    assert!(record.reason.as_deref().expect("reason").starts_with("data.to.email:"));
    assert_eq!(record.raw_body.as_deref(), Some(bad.to_string().as_bytes()));

    let all = app.store.deliveries(&DeliveryQuery { limit: 10, ..Default::default() }).await;
    assert_eq!(all.expect("store").deliveries.len(), 2);
    app.shutdown().await.expect("graceful shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_on_sqlite_sends_once_counts_duplicates_and_records_rejections() {
    let (app, _data) = spawn_app(None).await;
    the_foundation_path(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_on_postgres_sends_once_counts_duplicates_and_records_rejections() {
    let config = tayori_postgres::testing::fresh_database().await;
    let (app, _data) = spawn_app(Some(config.url)).await;
    the_foundation_path(app).await;
}

/// Item 3 of issue 22: every event ends in one recorded outcome whatever its bytes, and the two
/// stores agree. An id with NUL (once accepted, then refused by every PostgreSQL write and
/// retried forever, answered 503) is refused by the contract; NUL inside data values and `null`
/// optional fields are an ordinary event, sent.
async fn whatever_its_bytes(app: DevApp) {
    let mut nul_id: Value = serde_json::from_slice(&example_body()).expect("json");
    nul_id["id"] = "01JD8Z6Q7K2V4X9M3N5P1R0T8W\u{0}".into();
    let (status, rejected) = post(&app, nul_id.to_string().into_bytes()).await;
    assert_eq!(status, 400, "{rejected}");
    let reason = rejected["reason"].as_str().expect("reason");
    assert!(reason.starts_with("id: id must not contain control characters"), "{reason}");
    let kept = app.store.unkeyed_rejections(10).await.expect("store");
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].raw_body, nul_id.to_string().into_bytes());

    // A second `email` member would switch the recipient for a last-wins reader: refused, kept.
    let twice = String::from_utf8(example_body()).expect("utf-8").replacen(
        r#""email": "#,
        r#""email": "attacker@example.net", "email": "#,
        1,
    );
    assert_ne!(twice.as_bytes(), example_body(), "the fixture names data.to.email");
    let (status, rejected) = post(&app, twice.clone().into_bytes()).await;
    assert_eq!(status, 400, "{rejected}");
    let reason = rejected["reason"].as_str().expect("reason");
    assert!(reason.contains(r#"member "email" appears twice"#), "{reason}");
    let kept = app.store.unkeyed_rejections(10).await.expect("store");
    assert_eq!(kept.len(), 2);
    assert!(kept.iter().any(|k| k.raw_body == twice.as_bytes()));
    assert!(eml_files(&app.outbox_dir).is_empty(), "nobody was mailed");

    let event = serde_json::json!({
        "specversion": "1.0",
        "id": "01JD8Z6Q7K2V4X9M3N5P1R0NUL",
        "source": "acme-invest/security",
        "type": "security.alert",
        "tenant": "acme-invest",
        "time": null, "subject": null, "datacontenttype": null, "traceparent": null,
        "data": {
            "to": { "email": "taro.yamada@example.com", "name": null, "locale": null },
            "variables": {
                "alert": "new_sign_in",
                "occurred_at": "2026-11-27T08:15:00+09:00",
                "device": "Chrome\u{0} on Windows",
                "location": "Osaka"
            }
        }
    });
    let (status, body) = post(&app, event.to_string().into_bytes()).await;
    assert_eq!(status, 202, "{body}");
    let id = DeliveryId::parse(body["delivery_id"].as_str().expect("id")).expect("uuid");
    let record = wait_for(&app, id, 0).await;
    assert_eq!(record.status, DeliveryStatus::Sent, "{:?}", record.reason);
    let copy = record.event_json.expect("the event's copy");
    assert!(copy.contains(r#""device":"Chrome\u0000 on Windows""#), "{copy}");
    let files = eml_files(&app.outbox_dir);
    assert_eq!(files.len(), 1, "{files:?}");
    let raw = std::fs::read(&files[0]).expect("eml");
    let message = mail_parser::MessageParser::default().parse(&raw).expect("parses as email");
    let to = message.to().and_then(|to| to.first()).expect("to");
    assert_eq!((to.name(), to.address()), (None, Some("taro.yamada@example.com")));
    assert!(message.body_text(0).expect("text").contains("Chrome"));
    app.shutdown().await.expect("graceful shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_on_sqlite_gives_every_event_one_outcome_whatever_its_bytes() {
    let (app, _data) = spawn_app(None).await;
    whatever_its_bytes(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_on_postgres_gives_every_event_one_outcome_whatever_its_bytes() {
    let config = tayori_postgres::testing::fresh_database().await;
    let (app, _data) = spawn_app(Some(config.url)).await;
    whatever_its_bytes(app).await;
}
