//! `tayori worker` as operators run it: the real binary as a subprocess, JSON logs at debug
//! level, SQS and SES on moto server through the real SDK clients, PostgreSQL (a fresh
//! database), the shipped templates. While it runs, the test scrapes `/metrics` and checks every
//! metric documented in `docs/metrics.md` is served (so the page and the code cannot drift), reads
//! `/healthz` and `/readyz`, sends SIGHUP (a template reload) and SIGTERM, and then scans
//! everything the process printed for the raw addresses, names and variable values of its
//! events: none may appear.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::collections::HashMap;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod support;

use support::{moto, moto_endpoint, repo_root};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The metric names in the table of `docs/metrics.md`, with their documented types.
fn documented_metrics() -> Vec<(String, String)> {
    let doc = std::fs::read_to_string(repo_root().join("docs/metrics.md")).unwrap();
    let rows: Vec<_> = doc
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let name = cells.get(1)?.strip_prefix("`tayori_")?.strip_suffix('`')?;
            Some((format!("tayori_{name}"), cells.get(2)?.to_string()))
        })
        .collect();
    assert!(rows.len() >= 10, "docs/metrics.md lists its metrics in a table: {rows:?}");
    rows
}

/// `name{labels} value` lines → value, for the series asserted on.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

async fn get(client: &reqwest::Client, url: &str) -> Option<(u16, String)> {
    let response = client.get(url).send().await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

/// An OTLP/HTTP trace receiver on a loopback port: every span it was sent, as
/// (trace id, span name, string attributes).
struct TraceReceiver {
    endpoint: String,
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
}

#[derive(Debug, Clone)]
struct ReceivedSpan {
    trace_id: Vec<u8>,
    name: String,
    attributes: HashMap<String, String>,
}

async fn trace_receiver() -> TraceReceiver {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
    use prost::Message;

    let spans: Arc<Mutex<Vec<ReceivedSpan>>> = Arc::default();
    let store = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let store = store.clone();
            async move {
                let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                let mut store = store.lock().unwrap();
                for span in request
                    .resource_spans
                    .iter()
                    .flat_map(|r| &r.scope_spans)
                    .flat_map(|s| &s.spans)
                {
                    let attributes = span
                        .attributes
                        .iter()
                        .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
                            Any::StringValue(v) => Some((kv.key.clone(), v.clone())),
                            other => Some((kv.key.clone(), format!("{other:?}"))),
                        })
                        .collect();
                    store.push(ReceivedSpan {
                        trace_id: span.trace_id.clone(),
                        name: span.name.clone(),
                        attributes,
                    });
                }
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    TraceReceiver { endpoint, spans }
}

struct Worker {
    child: Child,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill").arg(format!("-{name}")).arg(child.id().to_string()).status();
    assert!(status.unwrap().success(), "kill -{name}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_run_serves_every_documented_metric_and_logs_no_personal_data() {
    let endpoint = moto_endpoint();
    let aws = moto().await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let queue = sqs
        .create_queue()
        .queue_name(format!("ops-e2e-{}", std::process::id()))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    // The demo tenant sends from no-reply@acme-invest.example: SES (moto) needs it verified.
    // Another test may have verified it already; that is fine.
    let _ = aws_sdk_sesv2::Client::new(&aws)
        .create_email_identity()
        .email_identity("acme-invest.example")
        .send()
        .await;

    // Events whose personal data is unique to this run, so a leak cannot hide behind a value
    // that also appears for another reason.
    let run = std::process::id();
    let example: Value = serde_json::from_slice(
        &std::fs::read(repo_root().join("tests/fixtures/events/valid/deposit-completed-ja.json"))
            .unwrap(),
    )
    .unwrap();
    let mut secrets = Vec::new();
    let mut bodies = Vec::new();
    for i in 0..4 {
        let mut event = example.clone();
        let address = format!("leak-check-{run}-{i}.person@customer-{run}.example.org");
        let name = format!("漏洩確認 花子{i} Leakcheck{run}");
        let amount = format!("7391{i}.27");
        let deposited_at = format!("2026-11-27T09:58:1{i}.123{run}+09:00");
        event["id"] = json!(format!("ops-e2e-{run}-{i}"));
        event["data"]["to"] =
            json!({ "email": address, "name": name, "locale": (["ja", "en"][i % 2]) });
        event["data"]["variables"] =
            json!({ "amount": amount, "currency": "JPY", "deposited_at": deposited_at });
        secrets.extend([address, name, amount, deposited_at]);
        bodies.push(event);
    }
    // A redelivery of the first (a duplicate), and an event for a tenant nobody configured.
    bodies.push(bodies[0].clone());
    let mut stranger = bodies[1].clone();
    stranger["tenant"] = json!("acme-nobody");
    bodies.push(stranger);
    for body in &bodies {
        sqs.send_message().queue_url(&queue).message_body(body.to_string()).send().await.unwrap();
    }

    let database = tayori_postgres::testing::fresh_database().await;
    // acme-bank (no events here) is paused by an operator: its gauge says so.
    let bank = tayori_domain::TenantId::parse("acme-bank").unwrap();
    let pool = sqlx::PgPool::connect(&database.url).await.unwrap();
    let pause = tayori_postgres::testing::operator_audit(&bank, "tenant.pause", "list cleaning");
    let admin = tayori_postgres::PostgresAdminStore::new(pool);
    assert!(tayori_app::ports::TenantPauses::pause_tenant(&admin, &bank, &pause).await.unwrap());
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("tayori.toml");
    std::fs::write(
        &config,
        format!(
            r#"
worker_id = "ops-e2e"
[store]
kind = "postgres"
url = "{database}"
max_connections = 4
[queue]
url = "{queue}"
wait_time_seconds = 1
heartbeat_interval = 5
[sender]
kind = "ses"
read_account_send_rate = false
send_rate = 50
[templates]
dir = "{templates}"
[http]
listen = "127.0.0.1:{port}"
"#,
            database = database.url,
            templates = repo_root().join("templates").display(),
        ),
    )
    .unwrap();
    let traces = trace_receiver().await;
    let stderr_path = dir.path().join("stderr.log");
    let stdout_path = dir.path().join("stdout.log");
    let child = Command::new(env!("CARGO_BIN_EXE_tayori"))
        .args(["worker", "--config"])
        .arg(&config)
        .env("TAYORI_LOG_FORMAT", "json")
        // Everything tayori writes, at debug; libraries at info (their debug output is theirs).
        .env("RUST_LOG", "info,tayori=debug,tayori_app=debug,tayori_sqs=debug,tayori_ses=debug,tayori_templates=debug,tayori_postgres=debug")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &traces.endpoint)
        .env("OTEL_SERVICE_NAME", "tayori-ops-e2e")
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut worker = Worker { child };
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();

    // Ready: the store answers and the templates are loaded.
    let deadline = Instant::now() + Duration::from_secs(60);
    let ready = loop {
        if let Some((200, body)) = get(&http, &format!("{base}/readyz")).await {
            break serde_json::from_str::<Value>(&body).unwrap();
        }
        assert!(
            worker.child.try_wait().unwrap().is_none(),
            "the worker exited: {}",
            std::fs::read_to_string(&stderr_path).unwrap()
        );
        assert!(Instant::now() < deadline, "/readyz never answered 200");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(ready["ready"], json!(true), "{ready}");
    assert_eq!(ready["checks"]["store"]["ok"], json!(true), "{ready}");
    assert_eq!(ready["checks"]["templates"]["ok"], json!(true), "{ready}");
    assert_eq!(get(&http, &format!("{base}/healthz")).await.unwrap().0, 200);

    // Every event decided: four sent, the stranger rejected, the redelivery a duplicate.
    let sent = "tayori_outcomes_total{tenant=\"acme-invest\",outcome=\"sent\"}";
    let rejected = "tayori_outcomes_total{tenant=\"_unknown\",outcome=\"rejected\"}";
    let duplicates = "tayori_duplicates_total{tenant=\"acme-invest\"}";
    let deadline = Instant::now() + Duration::from_secs(90);
    let metrics = loop {
        let (status, text) = get(&http, &format!("{base}/metrics")).await.unwrap();
        assert_eq!(status, 200);
        let values = samples(&text);
        let value = |series: &str| values.get(series).copied().unwrap_or(0.0);
        if value(sent) >= 4.0 && value(rejected) >= 1.0 && value(duplicates) >= 1.0 {
            break text;
        }
        assert!(Instant::now() < deadline, "not every event was decided in time:\n{text}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };

    // A template reload (SIGHUP), counted.
    signal(&worker.child, "HUP");
    let reloads = "tayori_template_reloads_total{result=\"ok\"}";
    let deadline = Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        let text = get(&http, &format!("{base}/metrics")).await.unwrap().1;
        if samples(&text).get(reloads).copied() == Some(1.0) {
            break text;
        }
        assert!(Instant::now() < deadline, "SIGHUP did not reload the templates:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // Every documented metric is served, with the documented type.
    for (name, kind) in documented_metrics() {
        assert!(
            metrics.contains(&format!("# TYPE {name} {kind}\n")),
            "docs/metrics.md documents {name} ({kind}), but /metrics does not serve it:\n{metrics}"
        );
    }
    let values = samples(&metrics);
    let value = |series: &str| {
        values.get(series).copied().unwrap_or_else(|| panic!("{series}:\n{metrics}"))
    };
    assert_eq!(value(sent), 4.0, "each event sent once");
    assert_eq!(value("tayori_events_received_total{tenant=\"_unknown\"}"), 1.0);
    assert!(value("tayori_events_received_total{tenant=\"acme-invest\"}") >= 5.0);
    assert_eq!(
        value("tayori_send_duration_seconds_count{tenant=\"acme-invest\",result=\"accepted\"}"),
        4.0
    );
    assert_eq!(value("tayori_receive_to_send_seconds_count{tenant=\"acme-invest\"}"), 4.0);
    assert_eq!(value("tayori_rate_limiter_wait_seconds_count{tenant=\"acme-invest\"}"), 4.0);
    assert_eq!(value("tayori_events_in_flight"), 0.0);
    // Each sent event wrote its claim with its attempt, then its result with its outcome.
    let (batches, writes) =
        (value("tayori_store_write_batches_total"), value("tayori_store_writes_total"));
    assert!(batches >= 1.0 && writes >= 8.0 && writes >= batches, "{batches} / {writes}");
    assert_eq!(value("tayori_store_write_batches_replayed_total"), 0.0);
    let lag = format!("tayori_queue_lag_seconds{{queue=\"ops-e2e-{run}\"}}");
    assert!(value(&lag) >= 0.0);
    assert!(!metrics.contains("acme-nobody"), "an unconfigured tenant is not a label value");
    // The release loop reads the pauses and held events at its start (then every 15 s).
    assert_eq!(value("tayori_tenant_paused{tenant=\"acme-bank\"}"), 1.0);
    assert_eq!(value("tayori_tenant_paused{tenant=\"acme-invest\"}"), 0.0);
    assert_eq!(value("tayori_held_events{tenant=\"acme-bank\"}"), 0.0);

    // Stop as Kubernetes does, and wait for the graceful exit.
    signal(&worker.child, "TERM");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = worker.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the worker did not stop after SIGTERM");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "exit status {status}");

    let mut stderr = String::new();
    std::fs::File::open(&stderr_path).unwrap().read_to_string(&mut stderr).unwrap();
    let stdout = std::fs::read_to_string(&stdout_path).unwrap();

    // Nothing personal in clear, anywhere in what the process printed.
    for secret in &secrets {
        assert!(!stderr.contains(secret.as_str()), "the logs contain {secret:?}:\n{stderr}");
        assert!(!stdout.contains(secret.as_str()), "stdout contains {secret:?}:\n{stdout}");
    }
    // Masked addresses are what the debug lines show instead.
    assert!(stderr.contains("l***@c***.org"), "no masked address logged:\n{stderr}");

    // JSON lines, and one event's identifiers on every line written while it was handled.
    let lines: Vec<Value> = stderr
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert!(lines.len() >= 10, "{stderr}");
    let decided: Vec<&Value> = lines
        .iter()
        .filter(|line| {
            line["message"] == json!("delivery decided") && line["outcome"] == json!("sent")
        })
        .collect();
    assert_eq!(decided.len(), 4, "{stderr}");
    let mut delivery_ids = Vec::new();
    for line in decided {
        let span = &line["span"];
        let spans = line["spans"].as_array().unwrap();
        let field = |name: &str| {
            std::iter::once(span)
                .chain(spans.iter())
                .find_map(|s| s.get(name).and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_else(|| panic!("{name} missing on {line}"))
        };
        assert_eq!(field("tenant"), "acme-invest");
        assert_eq!(field("event_type"), "account.deposit_completed");
        assert!(field("event_id").starts_with(&format!("ops-e2e-{run}-")));
        assert_eq!(field("delivery_id").len(), 36);
        delivery_ids.push(field("delivery_id"));
        assert!(!field("sqs.message_id").is_empty());
        assert!(!field("provider_message_id").is_empty(), "the SES message id: {line}");
    }

    // One trace per event, from the SQS receive through the render and the SES send, its
    // `handle_event` span carrying the delivery id (exported at the latest on the exit flush).
    let spans = traces.spans.lock().unwrap().clone();
    for delivery_id in &delivery_ids {
        let handled: Vec<&ReceivedSpan> = spans
            .iter()
            .filter(|s| {
                s.name == "handle_event" && s.attributes.get("delivery_id") == Some(delivery_id)
            })
            .collect();
        assert!(!handled.is_empty(), "no handle_event span for {delivery_id}: {spans:#?}");
        let sent = handled.iter().find(|h| {
            let names: Vec<&str> = spans
                .iter()
                .filter(|s| s.trace_id == h.trace_id)
                .map(|s| s.name.as_str())
                .collect();
            ["sqs_message", "render", "sender.send"].iter().all(|n| names.contains(n))
        });
        assert!(
            sent.is_some(),
            "the trace of {delivery_id} lacks the receive, render or send span: {spans:#?}"
        );
    }
}
