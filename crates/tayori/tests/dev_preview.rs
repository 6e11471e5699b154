//! `tayori dev`'s template preview on a real port, and templates reloading while it runs: an
//! edit shows up, a broken edit keeps the last good templates (for previews and for sending)
//! and is reported on the page.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use tayori::dev::{DevApp, DevConfig, start};
use tempfile::TempDir;

mod support;

use support::repo_root;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// `tayori dev` on a copy of the shipped templates (SQLite, port 0).
async fn spawn_app() -> (DevApp, TempDir) {
    let data = tempfile::tempdir().unwrap();
    let templates = data.path().join("templates");
    copy_dir(&repo_root().join("templates"), &templates);
    let app = start(DevConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data.path().join("data"),
        templates,
        database_url: None,
        concurrency: 2,
    })
    .await
    .expect("tayori dev starts");
    (app, data)
}

async fn get(app: &DevApp, path: &str) -> (u16, String) {
    let response = reqwest::get(format!("http://{}{path}", app.addr)).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn version(app: &DevApp) -> Value {
    serde_json::from_str(&get(app, "/preview/version").await.1).unwrap()
}

/// Polls (bounded: 10 s) until the version endpoint satisfies `done`.
async fn wait_for_version(app: &DevApp, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = version(app).await;
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "templates not reloaded within 10 s: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_preview_lists_renders_and_follows_edits() {
    let (app, data) = spawn_app().await;
    assert!(app.banner().contains("/preview"), "{}", app.banner());

    let (status, index) = get(&app, "/preview").await;
    assert_eq!(status, 200);
    assert!(index.contains("href=\"/preview/acme-bank/security.alert\""), "{index}");
    assert!(index.contains("href=\"/preview/acme-invest/account.deposit_completed\""), "{index}");

    let (status, page) = get(&app, "/preview/acme-invest/account.deposit_completed").await;
    assert_eq!(status, 200);
    assert!(page.contains("<td>【Acme Invest】ご入金が完了しました</td>"), "{page}");
    assert!(page.contains("sample=contract-example&amp;locale=en"), "{page}");
    let (status, html) = get(
        &app,
        "/preview/acme-invest/account.deposit_completed/html?sample=contract-example&locale=ja",
    )
    .await;
    assert_eq!(status, 200);
    assert!(html.contains("50,000円"), "{html}");

    // Sensitive variables are masked in the preview.
    let (_, page) = get(&app, "/preview/acme-bank/auth.password_reset").await;
    assert!(!page.contains("905127"), "{page}");

    // An edit is picked up without a restart.
    assert_eq!(version(&app).await["version"], 1);
    let subject =
        data.path().join("templates/acme-invest/account.deposit_completed/subject.ja.txt");
    std::fs::write(&subject, "【Acme Invest】ご入金を確認しました\n").unwrap();
    wait_for_version(&app, |v| v["version"] == 2).await;
    let (_, page) = get(&app, "/preview/acme-invest/account.deposit_completed").await;
    assert!(page.contains("ご入金を確認しました"), "{page}");

    // A broken edit: the last good templates stay, and the page says why.
    let body = data.path().join("templates/acme-invest/account.deposit_completed/body.ja.txt");
    std::fs::write(
        &body,
        "{% extends \"_layouts/base.txt\" %}\n{% block content %}{{ amount }\n{% endblock %}\n",
    )
    .unwrap();
    let v = wait_for_version(&app, |v| !v["reload_error"].is_null()).await;
    assert_eq!(v["version"], 2);
    let error = v["reload_error"].as_str().unwrap();
    assert!(error.contains("acme-invest/account.deposit_completed/body.ja.txt:2: "), "{error}");
    let (_, page) = get(&app, "/preview").await;
    assert!(page.contains("The templates on disk have problems"), "{page}");
    assert!(page.contains("body.ja.txt:2: "), "{page}");

    // Events are still sent with the last good templates.
    let event =
        std::fs::read(repo_root().join("tests/fixtures/events/valid/deposit-completed-ja.json"))
            .unwrap();
    let response = reqwest::Client::new()
        .post(format!("http://{}/v1/events", app.addr))
        .header("content-type", "application/json")
        .body(event)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let outbox = app.outbox_dir.clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    let eml = loop {
        let files: Vec<PathBuf> = std::fs::read_dir(&outbox)
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        if let Some(file) = files.into_iter().find(|p| p.extension().is_some_and(|x| x == "eml")) {
            break std::fs::read(file).unwrap();
        }
        assert!(Instant::now() < deadline, "no email within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let message = mail_parser::MessageParser::default().parse(&eml).unwrap();
    assert_eq!(message.subject(), Some("【Acme Invest】ご入金を確認しました"));
    assert!(message.body_text(0).unwrap().contains("50,000円"));

    app.shutdown().await.unwrap();
}
