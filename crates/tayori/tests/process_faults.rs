//! The worker as a real process under faults: `kill -9` at random moments while it works
//! through 2,000 events and while it releases a paused tenant's held events, and SIGTERM under
//! load (real SQS on moto, real PostgreSQL, the file outbox as the sender: it never overwrites a
//! file, so every send is counted); and a kill at each failpoint of the event path (the binary is
//! built with its `failpoints` feature for these tests) on moto's SES, with SES's reports played
//! back through the feedback queue to reconcile the sends whose result was unknown.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use serde_json::json;
use tayori_app::ports::{AttemptResult, DeliveryQuery, DeliveryRecord, DeliveryStore};
use tayori_postgres::{PostgresConfig, PostgresStore};

mod support;

use support::{moto, moto_endpoint, repo_root};

async fn sqs() -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(&moto().await)
}

struct Setup {
    feeder: tokio::task::JoinHandle<()>,
    dir: tempfile::TempDir,
    config_file: PathBuf,
    outbox: PathBuf,
    store: PostgresStore,
}

/// A queue with `events` events on it, a fresh database, and a worker config using both.
async fn setup(name: &str, events: usize) -> Setup {
    setup_with(name, events, "").await
}

/// [`setup`], with extra settings of the `[delivery]` section.
async fn setup_with(name: &str, events: usize, delivery: &str) -> Setup {
    let sqs = sqs().await;
    let queue = sqs
        .create_queue()
        .queue_name(format!(
            "{name}-{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_micros()
        ))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    // Fed gradually (see `feed`): moto's receive slows down with the depth of the queue, and a
    // production queue rarely holds thousands of messages at once either.
    let feeder = tokio::spawn(feed(sqs, queue.clone(), name.to_owned(), events));
    let database = tayori_postgres::testing::fresh_database().await;
    let store = PostgresStore::connect(&PostgresConfig::new(&database.url)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox");
    let config_file = dir.path().join("tayori.toml");
    // Short visibility and lease so that killed work comes back within seconds.
    std::fs::write(
        &config_file,
        format!(
            r#"
            worker_id = "{name}"
            [store]
            kind = "postgres"
            url = "{url}"
            [queue]
            url = "{queue}"
            wait_time_seconds = 1
            visibility_timeout_seconds = 10
            heartbeat_interval = 3
            backoff_first = 1
            backoff_max = 5
            shutdown_grace = 15
            [sender]
            kind = "outbox"
            dir = "{outbox}"
            [templates]
            dir = "{templates}"
            [delivery]
            lease_seconds = 10
            {delivery}
            "#,
            url = database.url,
            outbox = outbox.display(),
            templates = repo_root().join("templates").display(),
        ),
    )
    .unwrap();
    Setup { feeder, dir, config_file, outbox, store }
}

/// Publishes `events` events, keeping at most about 200 waiting in the queue.
async fn feed(sqs: aws_sdk_sqs::Client, queue: String, name: String, events: usize) {
    let template: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo_root().join("tests/fixtures/events/valid/deposit-completed-ja.json"))
            .unwrap(),
    )
    .unwrap();
    let mut next = 0;
    while next < events {
        let waiting = sqs
            .get_queue_attributes()
            .queue_url(&queue)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap_or_default()
            .values()
            .next()
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        if waiting >= 200 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        for _ in 0..5 {
            let batch: Vec<usize> = (next..events.min(next + 10)).collect();
            if batch.is_empty() {
                break;
            }
            next += batch.len();
            let entries = batch.iter().map(|i| {
                let mut event = template.clone();
                event["id"] = json!(format!("{name}-{i}"));
                event["data"]["to"]["email"] = json!(format!("customer{i}@example.com"));
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
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
    }
}

fn spawn_worker(setup: &Setup, run: usize) -> Child {
    let log = std::fs::File::create(setup.dir.path().join(format!("worker-{run}.log"))).unwrap();
    Command::new(env!("CARGO_BIN_EXE_tayori"))
        .args(["worker", "--config"])
        .arg(&setup.config_file)
        .env("AWS_ENDPOINT_URL", moto_endpoint())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

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

/// Emails written per delivery id (file names are `<timestamp>-<delivery id>[-n].eml`).
fn emails_per_delivery(outbox: &Path) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for entry in std::fs::read_dir(outbox).into_iter().flatten() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".eml") && name.len() >= 53 {
            *counts.entry(name[17..53].to_owned()).or_insert(0) += 1;
        }
    }
    counts
}

async fn wait_until_all_decided(
    store: &PostgresStore,
    events: usize,
    limit: Duration,
) -> Vec<DeliveryRecord> {
    let started = Instant::now();
    loop {
        let all = all_deliveries(store).await;
        if all.len() == events && all.iter().all(|d| d.status.is_decided()) {
            return all;
        }
        assert!(
            started.elapsed() < limit,
            "only {} of {events} decided after {limit:?}",
            all.iter().filter(|d| d.status.is_decided()).count()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Counts the held events.
async fn held_events(store: &PostgresStore) -> i64 {
    sqlx::query_scalar("select count(*) from held_events").fetch_one(store.pool()).await.unwrap()
}

/// What a crash test's deliveries ended as, against the emails the outbox holds.
struct Tally {
    sent: usize,
    /// `unknown` after an attempt whose result is unknown (the worker died mid-send).
    unknown: usize,
    other: usize,
    /// Deliveries with more than one email: counted per key, so that a key mailed twice cannot
    /// hide behind a key never mailed (as a total against the event count would let it).
    doubled: Vec<tayori_domain::DeliveryId>,
    total_emails: usize,
}

async fn tally(setup: &Setup, deliveries: &[DeliveryRecord]) -> Tally {
    let emails = emails_per_delivery(&setup.outbox);
    let mut tally = Tally {
        sent: 0,
        unknown: 0,
        other: 0,
        doubled: Vec::new(),
        total_emails: emails.values().sum(),
    };
    for delivery in deliveries {
        let attempts = setup.store.attempts(&delivery.tenant, delivery.delivery_id).await.unwrap();
        let had_unknown = attempts.iter().any(|a| a.result == Some(AttemptResult::Unknown));
        match delivery.status.as_str() {
            "sent" => tally.sent += 1,
            "unknown" if had_unknown => tally.unknown += 1,
            _ => tally.other += 1,
        }
        let count = emails.get(&delivery.delivery_id.to_string()).copied().unwrap_or(0);
        if count > 1 {
            tally.doubled.push(delivery.delivery_id);
        }
    }
    tally
}

/// A pseudo-random number in `low..high` (no RNG crate for one test).
fn between(low: u64, high: u64, salt: u64) -> u64 {
    let nanos = u64::from(Instant::now().elapsed().subsec_nanos())
        ^ chrono::Utc::now().timestamp_subsec_nanos() as u64;
    low + (nanos.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(salt) >> 33) % (high - low)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_never_loses_or_doubles_an_event() {
    const EVENTS: usize = 2_000;
    const KILLS: u64 = 10;
    let setup = setup("crash", EVENTS).await;

    let mut delivered = 0;
    let mut kills = 0;
    for run in 0..KILLS {
        // A fast machine can decide every event before the tenth kill: nothing left to cut short.
        let decided =
            all_deliveries(&setup.store).await.iter().filter(|d| d.status.is_decided()).count();
        if decided == EVENTS {
            break;
        }
        let mut worker = spawn_worker(&setup, run as usize);
        // Kill it while it works: once it has sent something new, at a random moment.
        let started = Instant::now();
        while emails_per_delivery(&setup.outbox).len() <= delivered {
            let stuck = started.elapsed() >= Duration::from_secs(60);
            assert!(!stuck, "worker #{run} made no progress");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(between(50, 1_500, run))).await;
        worker.kill().unwrap(); // SIGKILL: no chance to clean up
        worker.wait().unwrap();
        kills += 1;
        delivered = emails_per_delivery(&setup.outbox).len();
        let decided =
            all_deliveries(&setup.store).await.iter().filter(|d| d.status.is_decided()).count();
        println!("kill -9 #{}: {delivered} emailed, {decided} decided in the store", run + 1);
    }
    assert!(kills >= 3, "the workers were killed mid-work only {kills} times");
    let mut last = spawn_worker(&setup, KILLS as usize);
    let deliveries = wait_until_all_decided(&setup.store, EVENTS, Duration::from_secs(240)).await;
    assert!(setup.feeder.is_finished(), "every event was published");
    last.kill().unwrap();
    last.wait().unwrap();

    let Tally { sent, unknown, other, doubled, total_emails } = tally(&setup, &deliveries).await;
    let claims: u32 = deliveries.iter().map(|d| d.claim_count).sum();
    println!(
        "crash test: {EVENTS} events, {kills} kill -9s: {sent} sent, {unknown} unknown \
         (the worker died mid-send; not resent), {other} other; {total_emails} emails written; \
         {claims} claims; {} keys sent twice",
        doubled.len()
    );
    assert_eq!(deliveries.len(), EVENTS, "every event has exactly one delivery row");
    assert_eq!(other, 0, "every event ends sent, or unknown after a crash mid-send");
    assert!(doubled.is_empty(), "keys with more than one email: {doubled:?}");
    assert!(total_emails <= EVENTS, "never more emails than events: {total_emails}");
    assert!(sent > EVENTS / 2, "most events are simply sent: {sent}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_finishes_in_flight_work_and_exits_cleanly() {
    const EVENTS: usize = 400;
    let setup = setup("sigterm", EVENTS).await;
    let mut worker = spawn_worker(&setup, 0);
    // Let it get busy.
    let started = Instant::now();
    while emails_per_delivery(&setup.outbox).is_empty() {
        assert!(started.elapsed() < Duration::from_secs(60), "the worker never got going");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let asked = Instant::now();
    let status = Command::new("kill").args(["-TERM", &worker.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = loop {
        if let Some(exit) = worker.try_wait().unwrap() {
            break exit;
        }
        assert!(asked.elapsed() < Duration::from_secs(20), "did not exit within the grace period");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let took = asked.elapsed();
    assert!(exit.success(), "exit status {exit:?}");
    let after_stop = all_deliveries(&setup.store).await;
    assert!(
        after_stop.iter().all(|d| d.status.is_decided()),
        "work in flight was finished, not abandoned"
    );

    // A second worker takes the rest; nothing was lost, nothing sent twice.
    let mut second = spawn_worker(&setup, 1);
    let deliveries = wait_until_all_decided(&setup.store, EVENTS, Duration::from_secs(120)).await;
    second.kill().unwrap();
    second.wait().unwrap();
    let emails = emails_per_delivery(&setup.outbox);
    assert!(deliveries.iter().all(|d| d.status.as_str() == "sent"));
    assert_eq!(emails.len(), EVENTS);
    assert!(emails.values().all(|&n| n == 1), "no email written twice");
    println!(
        "sigterm test: exited 0 in {took:?} with {} of {EVENTS} decided; the second worker did the rest",
        after_stop.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_releasing_held_events_never_loses_or_doubles_one() {
    use tayori_app::ports::TenantPauses;
    use tayori_postgres::testing::operator_audit;
    const EVENTS: usize = 600;
    const KILLS: u64 = 5;
    // One event at a time, short leases and rounds: the kills land mid-release, and a dead
    // worker's leased events come back within seconds.
    let setup = setup_with(
        "release-crash",
        EVENTS,
        "release_batch = 16\nrelease_concurrency = 1\nrelease_lease_seconds = 10\n\
         release_every_seconds = 1",
    )
    .await;
    let admin = tayori_postgres::PostgresAdminStore::new(setup.store.pool().clone());
    let tenant = tayori_domain::TenantId::parse("acme-invest").unwrap();
    let pause = operator_audit(&tenant, "tenant.pause", "crash test");
    assert!(admin.pause_tenant(&tenant, &pause).await.unwrap());

    // Paused: every event is held and leaves the queue; nothing is sent.
    let mut worker = spawn_worker(&setup, 0);
    let started = Instant::now();
    while held_events(&setup.store).await < EVENTS as i64 {
        assert!(started.elapsed() < Duration::from_secs(120), "not every event was held");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(emails_per_delivery(&setup.outbox).is_empty(), "nothing sent while paused");
    worker.kill().unwrap();
    worker.wait().unwrap();

    // Resumed, then killed mid-release again and again.
    let resume = operator_audit(&tenant, "tenant.resume", "crash test");
    assert!(admin.resume_tenant(&tenant, &resume).await.unwrap());
    let mut delivered = 0;
    let mut kills = 0;
    for run in 1..=KILLS {
        if held_events(&setup.store).await == 0 {
            break; // a fast machine released them all before the last kill
        }
        let mut worker = spawn_worker(&setup, run as usize);
        let started = Instant::now();
        while emails_per_delivery(&setup.outbox).len() <= delivered {
            assert!(started.elapsed() < Duration::from_secs(60), "worker #{run} released nothing");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(between(50, 800, run))).await;
        worker.kill().unwrap();
        worker.wait().unwrap();
        kills += 1;
        delivered = emails_per_delivery(&setup.outbox).len();
        println!(
            "kill -9 #{run} while releasing: {delivered} emailed, {} still held",
            held_events(&setup.store).await
        );
    }
    assert!(kills >= 2, "the workers were killed mid-release only {kills} times");
    let mut last = spawn_worker(&setup, KILLS as usize + 1);
    let deliveries = wait_until_all_decided(&setup.store, EVENTS, Duration::from_secs(180)).await;
    let started = Instant::now();
    while held_events(&setup.store).await > 0 {
        assert!(started.elapsed() < Duration::from_secs(30), "decided events are forgotten");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    last.kill().unwrap();
    last.wait().unwrap();

    let Tally { sent, unknown, other, doubled, total_emails } = tally(&setup, &deliveries).await;
    println!(
        "release crash test: {EVENTS} held events, {kills} kill -9s while releasing: {sent} sent, \
         {unknown} unknown, {other} other; {total_emails} emails; {} keys sent twice",
        doubled.len()
    );
    assert_eq!(deliveries.len(), EVENTS, "every held event has exactly one delivery row");
    assert_eq!(other, 0, "every event ends sent, or unknown after a crash mid-send");
    assert!(doubled.is_empty(), "keys with more than one email: {doubled:?}");
    assert!(total_emails <= EVENTS, "never more emails than events: {total_emails}");
}

/// One failpoint case: a queue with `FAILPOINT_EVENTS` events, a fresh database, SES on moto,
/// a feedback queue, and the events' recipients (unique to the case, so moto's shared store of
/// sent emails can be read per case).
struct FailpointCase {
    failpoint: &'static str,
    dir: tempfile::TempDir,
    config_file: PathBuf,
    store: PostgresStore,
    feedback: String,
    /// The recipients' common part: `fp-<run>-<case>-`.
    recipients: String,
}

const FAILPOINT_EVENTS: usize = 20;
/// The unknown-send window of the failpoint cases' configuration.
const UNKNOWN_WINDOW_SECONDS: u64 = 15;

async fn failpoint_case(failpoint: &'static str, run: &str) -> FailpointCase {
    let sqs = sqs().await;
    let name = failpoint.replace('.', "-");
    let queue_named = async |suffix: &str| {
        sqs.create_queue()
            .queue_name(format!("fp-{run}-{name}-{suffix}"))
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap()
    };
    let (queue, feedback) = (queue_named("events").await, queue_named("feedback").await);
    let recipients = format!("fp-{run}-{name}-");
    let template = support::contract_example();
    let entries: Vec<_> = (0..FAILPOINT_EVENTS)
        .map(|i| {
            let mut event = template.clone();
            event["id"] = json!(format!("{name}-{i}"));
            event["data"]["to"]["email"] = json!(format!("{recipients}{i}@example.com"));
            SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(event.to_string())
                .build()
                .unwrap()
        })
        .collect();
    for batch in entries.chunks(10) {
        sqs.send_message_batch()
            .queue_url(&queue)
            .set_entries(Some(batch.to_vec()))
            .send()
            .await
            .unwrap();
    }
    let database = tayori_postgres::testing::fresh_database().await;
    let store = PostgresStore::connect(&PostgresConfig::new(&database.url)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config_file = dir.path().join("tayori.toml");
    // Short visibility and lease: killed work comes back within seconds.
    std::fs::write(
        &config_file,
        format!(
            r#"
            worker_id = "{name}"
            [store]
            kind = "postgres"
            url = "{url}"
            [queue]
            url = "{queue}"
            wait_time_seconds = 1
            visibility_timeout_seconds = 10
            heartbeat_interval = 3
            backoff_first = 1
            backoff_max = 2
            shutdown_grace = 5
            [sender]
            kind = "ses"
            read_account_send_rate = false
            send_rate = 100
            call_timeout = 3
            connect_timeout = 1
            max_rate_wait = 5
            [templates]
            dir = "{templates}"
            [delivery]
            lease_seconds = 10
            [feedback]
            queue_url = "{feedback}"
            unknown_send_window_seconds = {UNKNOWN_WINDOW_SECONDS}
            "#,
            url = database.url,
            templates = repo_root().join("templates").display(),
        ),
    )
    .unwrap();
    FailpointCase { failpoint, dir, config_file, store, feedback, recipients }
}

fn spawn_worker_with(case: &FailpointCase, run: &str, failpoint: Option<&str>) -> Child {
    let log = std::fs::File::create(case.dir.path().join(format!("worker-{run}.log"))).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_tayori"));
    command
        .args(["worker", "--config"])
        .arg(&case.config_file)
        .env("AWS_ENDPOINT_URL", moto_endpoint())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("RUST_LOG", "warn")
        .env_remove("TAYORI_FAILPOINT_KILL")
        .stdout(Stdio::null())
        .stderr(log);
    if let Some(failpoint) = failpoint {
        command.env("TAYORI_FAILPOINT_KILL", failpoint);
    }
    command.spawn().unwrap()
}

/// The emails moto's SES holds for this case, by recipient (with moto's message ids).
async fn ses_emails(case: &FailpointCase) -> HashMap<String, Vec<String>> {
    let mut by_recipient: HashMap<String, Vec<String>> = HashMap::new();
    for (message_id, raw) in support::ses_messages_containing(&case.recipients).await {
        // The `To:` header may be folded; the address is the one in angle brackets.
        let to = raw
            .split(&format!("<{}", case.recipients))
            .nth(1)
            .and_then(|rest| rest.split('@').next())
            .map(|i| format!("{}{i}@example.com", case.recipients))
            .unwrap_or_else(|| panic!("no recipient of this case in {}", &raw[..300]));
        by_recipient.entry(to).or_default().push(message_id);
    }
    by_recipient
}

/// What SES would publish when it accepted this email: a Send event with tayori's tags.
fn ses_send_event(delivery: &DeliveryRecord, message_id: &str) -> serde_json::Value {
    let path = repo_root().join("tests/fixtures/ses-events/send.json");
    let mut event: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    event["mail"]["messageId"] = json!(message_id);
    event["mail"]["destination"] = json!([delivery.recipient.clone().unwrap()]);
    event["mail"]["tags"]["tayori-tenant"] = json!([delivery.tenant.as_str()]);
    event["mail"]["tags"]["tayori-delivery-id"] = json!([delivery.delivery_id.to_string()]);
    event
}

/// `tayori admin deliveries resend-failed` over the whole run: the lines it printed.
fn resend_failed(case: &FailpointCase) -> String {
    let from = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let until = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let out = Command::new(env!("CARGO_BIN_EXE_tayori"))
        .args(["admin", "deliveries", "resend-failed", "--tenant", "acme-invest"])
        .args(["--from", &from, "--until", &until, "--reason", "crash test", "--config"])
        .arg(&case.config_file)
        .env("AWS_ENDPOINT_URL", moto_endpoint())
        .env("AWS_REGION", "us-east-1")
        .env_remove("TAYORI_FAILPOINT_KILL")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "resend-failed failed: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What one failpoint case came to.
struct CaseResult {
    failpoint: &'static str,
    reconciled: usize,
    unknown_resent: usize,
    took: Duration,
}

/// Kills a worker at the failpoint, restarts it without, and checks the case; see the test.
async fn run_failpoint_case(case: FailpointCase, run: String) -> CaseResult {
    use std::os::unix::process::ExitStatusExt;
    let started = Instant::now();
    let mut first = spawn_worker_with(&case, &format!("{run}-killed"), Some(case.failpoint));
    let exit = loop {
        if let Some(exit) = first.try_wait().unwrap() {
            break exit;
        }
        if started.elapsed() > Duration::from_secs(40) {
            first.kill().unwrap();
            panic!("{}: the failpoint never fired", case.failpoint);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // SIGABRT from the failpoint, not a crash of another kind.
    let log = || std::fs::read_to_string(case.dir.path().join(format!("worker-{run}-killed.log")));
    assert_eq!(exit.signal(), Some(6), "{}: {exit:?}; {:?}", case.failpoint, log());

    let mut second = spawn_worker_with(&case, &format!("{run}-restarted"), None);
    let deliveries =
        wait_until_all_decided(&case.store, FAILPOINT_EVENTS, Duration::from_secs(60)).await;
    // A bulk resend while the unknown ones are within the window takes none of them: they wait
    // for SES's report. (Skipped, and said so, if the machine stalled past the window.)
    let window = chrono::Duration::seconds(UNKNOWN_WINDOW_SECONDS as i64);
    let first_decided = deliveries
        .iter()
        .filter(|d| d.status.as_str() == "unknown")
        .filter_map(|d| d.decided_at)
        .min();
    let within =
        first_decided.map(|at| chrono::Utc::now() + chrono::Duration::seconds(3) < at + window);
    let before = resend_failed(&case);
    match within {
        Some(true) => assert!(
            !before.contains("resent as"),
            "{}: resent in the window: {before}",
            case.failpoint
        ),
        Some(false) => println!("{}: the window passed before the check", case.failpoint),
        None => assert_eq!(before, "", "{}: nothing failed", case.failpoint),
    }
    let emails = ses_emails(&case).await;
    for delivery in &deliveries {
        let to = delivery.recipient.clone().unwrap();
        let sent = emails.get(&to).map_or(0, Vec::len);
        assert!(sent <= 1, "{}: {to} was sent {sent} emails", case.failpoint);
        match delivery.status.as_str() {
            "sent" => {
                assert_eq!(sent, 1, "{}: sent without an email: {delivery:?}", case.failpoint)
            }
            "unknown" => {}
            other => panic!("{}: {other}: {delivery:?}", case.failpoint),
        }
    }

    // SES reports on the emails it accepted: every unknown one with an email is reconciled.
    let sqs = sqs().await;
    let ambiguous: Vec<&DeliveryRecord> =
        deliveries.iter().filter(|d| d.status.as_str() == "unknown").collect();
    let mut to_reconcile = Vec::new();
    for delivery in &ambiguous {
        if let Some([message_id]) =
            emails.get(delivery.recipient.as_ref().unwrap()).map(Vec::as_slice)
        {
            let body = ses_send_event(delivery, message_id).to_string();
            sqs.send_message().queue_url(&case.feedback).message_body(body).send().await.unwrap();
            to_reconcile.push((delivery.delivery_id, message_id.clone()));
        }
    }
    let waited = Instant::now();
    loop {
        let mut done = 0;
        for (id, message_id) in &to_reconcile {
            let d = case.store.delivery(*id, None).await.unwrap().unwrap();
            if d.status.as_str() == "sent" && d.reconciled_at.is_some() {
                assert_eq!(d.provider_message_id.as_deref(), Some(message_id.as_str()));
                done += 1;
            }
        }
        if done == to_reconcile.len() {
            break;
        }
        assert!(waited.elapsed() < Duration::from_secs(30), "{}: not reconciled", case.failpoint);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    second.kill().unwrap();
    second.wait().unwrap();
    if case.failpoint == "event.after_accepted" {
        assert!(!to_reconcile.is_empty(), "the email accepted before the kill is reconciled");
    }

    // After the window, the unreconciled ones (never seen by SES) are resent, once; the
    // reconciled ones are sent and never resent.
    let unreconciled = ambiguous.len() - to_reconcile.len();
    let window_ends = ambiguous.iter().filter_map(|d| d.decided_at).max();
    if let Some(ends) = window_ends {
        let ends = ends + chrono::Duration::seconds(UNKNOWN_WINDOW_SECONDS as i64 + 1);
        if let Ok(wait) = (ends - chrono::Utc::now()).to_std() {
            tokio::time::sleep(wait).await;
        }
        let after = resend_failed(&case);
        let resent =
            after.lines().filter(|l| l.contains("\tresent as ") && l.contains("\tsent")).count();
        assert_eq!(resent, unreconciled, "{}: {after}", case.failpoint);
        for delivery in &ambiguous {
            let d = case.store.delivery(delivery.delivery_id, None).await.unwrap().unwrap();
            if d.reconciled_at.is_none() {
                let reason = d.reason.unwrap_or_default();
                assert!(reason.starts_with("not seen by SES"), "{}: {reason}", case.failpoint);
            }
        }
    }
    let emails = ses_emails(&case).await;
    assert!(
        emails.values().all(|ids| ids.len() == 1),
        "{}: a recipient with two emails: {emails:?}",
        case.failpoint
    );
    assert_eq!(emails.len(), FAILPOINT_EVENTS, "{}: every customer mailed once", case.failpoint);
    CaseResult {
        failpoint: case.failpoint,
        reconciled: to_reconcile.len(),
        unknown_resent: unreconciled,
        took: started.elapsed(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_each_failpoint_then_a_restart_decides_every_event_and_mails_each_key_once() {
    const FAILPOINTS: [&str; 6] = [
        "event.after_receive",
        "event.mid_render",
        "event.after_claim",
        "event.after_accepted",
        "event.after_outcome",
        "sqs.during_delete",
    ];
    let ses = aws_sdk_sesv2::Client::new(&moto().await);
    // moto's SES wants the sender verified; "already exists" is fine.
    let _ = ses.create_email_identity().email_identity("acme-invest.example").send().await;
    let run = format!("{}-{}", std::process::id(), chrono::Utc::now().timestamp_micros());
    let mut cases = Vec::new();
    for failpoint in FAILPOINTS {
        cases.push(failpoint_case(failpoint, &run).await);
    }
    // The cases run side by side (their own queues, databases and recipients): most of each is
    // waiting for a lease or a visibility timeout to run out.
    let tasks: Vec<_> =
        cases.into_iter().map(|case| tokio::spawn(run_failpoint_case(case, run.clone()))).collect();
    for task in tasks {
        let result = task.await.unwrap();
        println!(
            "failpoint {}: done in {:?} (every event decided); {} reconciled by an SES report, {} \
             resent after the window as not seen by SES; one email per key",
            result.failpoint, result.took, result.reconciled, result.unknown_resent
        );
    }
}
