//! Dead letters as operators handle them, against SQS on moto through the real SDK client:
//! `tayori admin serve`'s dead-letters page finds the events queue's DLQ through its redrive
//! policy (AWS settings from the environment, loaded on first use), shows a dead letter by its
//! event, and redrives it; `tayori dlq redrive` does the same from a shell, with or without
//! naming the DLQ.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod support;

use support::{
    contract_example, moto, moto_endpoint, outbox_config, queue_length, queue_with_dlq, tayori,
};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The environment that points the binary's AWS clients at moto.
fn with_moto(command: &mut Command) -> &mut Command {
    command
        .env("AWS_ENDPOINT_URL", moto_endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
}

#[tokio::test]
async fn the_admin_server_shows_and_redrives_the_events_queues_dead_letters_on_sqs() {
    // An events queue whose redrive policy names its DLQ, and one event in the DLQ.
    let sqs = aws_sdk_sqs::Client::new(&moto().await);
    let name = format!("admin-dlq-{}", std::process::id());
    let (queue, dlq) = queue_with_dlq(&sqs, &name, 3).await;
    let mut event = contract_example();
    event["id"] = json!("dead-on-sqs");
    sqs.send_message().queue_url(&dlq).message_body(event.to_string()).send().await.unwrap();

    let database = tayori_postgres::testing::fresh_database().await;
    let (ok, secret, err) = tayori(&[
        "admin",
        "token",
        "create",
        "--role",
        "operator",
        "--database-url",
        &database.url,
    ]);
    assert!(ok, "{err}");
    let dir = tempfile::tempdir().unwrap();
    let config = outbox_config(dir.path(), &database.url, &queue);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let stderr = dir.path().join("stderr.log");
    let _server = Server(
        with_moto(&mut Command::new(env!("CARGO_BIN_EXE_tayori")))
            .args(["admin", "serve", "--listen", &format!("127.0.0.1:{port}"), "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !matches!(http.get(format!("{base}/readyz")).send().await, Ok(r) if r.status() == 200) {
        let log = std::fs::read_to_string(&stderr).unwrap_or_default();
        assert!(Instant::now() < deadline, "the admin server never got ready: {log}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let token = secret.trim();

    let view: Value = http
        .get(format!("{base}/api/v1/dead-letters"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(view["depth"]["queue"], format!("{name}-dlq"), "{view}");
    assert_eq!(view["depth"]["visible"], 1, "{view}");
    assert_eq!(view["messages"][0]["event_id"], "dead-on-sqs", "{view}");
    assert_eq!(view["messages"][0]["tenant"], "acme-invest", "{view}");
    // No feedback queue configured: that tab says so.
    let feedback =
        http.get(format!("{base}/api/v1/dead-letters?queue=feedback")).bearer_auth(token);
    assert_eq!(feedback.send().await.unwrap().status(), 404);

    let moved: Value = http
        .post(format!("{base}/api/v1/dead-letters/redrive"))
        .bearer_auth(token)
        .json(&json!({ "max": 10, "reason": "store back" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(moved, json!({ "moved": 1, "stopped": null }));
    assert_eq!(queue_length(&sqs, &dlq).await, "0+0");
    assert_eq!(queue_length(&sqs, &queue).await, "1+0", "back on the events queue");
}

#[tokio::test]
async fn dlq_redrive_moves_dead_letters_back_finding_the_dlq_when_not_named() {
    let sqs = aws_sdk_sqs::Client::new(&moto().await);
    let name = format!("cli-dlq-{}", std::process::id());
    let (queue, dlq) = queue_with_dlq(&sqs, &name, 3).await;
    for n in 0..3 {
        let body = json!({ "n": n }).to_string();
        sqs.send_message().queue_url(&dlq).message_body(body).send().await.unwrap();
    }
    let redrive = |extra: &[&str]| {
        let out = with_moto(&mut Command::new(env!("CARGO_BIN_EXE_tayori")))
            .args(["dlq", "redrive", "--to", &queue])
            .args(extra)
            .output()
            .unwrap();
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    };

    // Named, one message; then found through the events queue's redrive policy, the rest.
    let (ok, out, err) = redrive(&["--from", &dlq, "--max", "1"]);
    assert!(ok && out.contains(&format!("moved 1 messages from {dlq}")), "{out} {err}");
    let (ok, out, err) = redrive(&[]);
    assert!(ok && out.contains(&format!("moved 2 messages from {dlq} to {queue}")), "{out} {err}");
    assert_eq!(queue_length(&sqs, &dlq).await, "0+0");
    assert_eq!(queue_length(&sqs, &queue).await, "3+0");

    // A queue without a redrive policy: the error says what to do.
    let plain = sqs.create_queue().queue_name(format!("{name}-plain")).send().await.unwrap();
    let plain = plain.queue_url.unwrap();
    let out = with_moto(&mut Command::new(env!("CARGO_BIN_EXE_tayori")))
        .args(["dlq", "redrive", "--to", &plain])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("no --from given") && err.contains("no redrive policy"), "{err}");
}
