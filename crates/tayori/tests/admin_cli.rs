//! `tayori admin token create|list|revoke` as a user runs them, and `tayori admin serve`'s app on
//! a real port: a created token works over HTTP, a revoked one stops at once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use tayori::config::{DeliveryConfig, SenderConfig, StoreConfig, TemplatesConfig, WorkerConfig};
use tayori_sqs::ConsumerConfig;

mod support;

use support::{UNREAD_QUEUE, outbox_config, repo_root, tayori};

#[tokio::test]
async fn tokens_made_on_the_command_line_open_the_api_until_revoked() {
    let database = tayori_postgres::testing::fresh_database().await;
    let url = database.url.clone();

    let (ok, _, err) =
        tayori(&["admin", "token", "create", "--role", "boss", "--database-url", &url]);
    assert!(!ok && err.contains("role must be admin, operator or viewer"), "{err}");

    let (ok, secret, err) = tayori(&[
        "admin",
        "token",
        "create",
        "--role",
        "operator",
        "--tenant",
        "acme-invest",
        "--expires",
        "30d",
        "--label",
        "on-call",
        "--database-url",
        &url,
    ]);
    assert!(ok, "{err}");
    let secret = secret.trim().to_owned();
    assert!(secret.starts_with("tyr_") && secret.len() == 68, "{secret}");
    let token_id = err.split_whitespace().nth(1).unwrap().to_owned();

    let (ok, list, _) = tayori(&["admin", "token", "list", "--database-url", &url]);
    assert!(ok);
    assert!(list.contains(&token_id) && list.contains("operator\tacme-invest\texpires"), "{list}");
    assert!(!list.contains(&secret));

    let outbox = tempfile::tempdir().unwrap();
    let config = WorkerConfig {
        store: StoreConfig::Postgres {
            url: url.clone(),
            max_connections: 4,
            write_batches_in_flight: tayori_postgres::DEFAULT_WRITE_BATCHES_IN_FLIGHT,
            max_writes_per_batch: tayori_postgres::DEFAULT_MAX_WRITES_PER_BATCH,
            session: Default::default(),
        },
        queue: ConsumerConfig {
            queue_url: "http://127.0.0.1:1/unused".into(),
            ..ConsumerConfig::default()
        },
        sender: SenderConfig::Outbox(tayori_outbox::OutboxConfig { dir: outbox.path().to_owned() }),
        templates: TemplatesConfig { dir: repo_root().join("templates") },
        delivery: DeliveryConfig::default(),
        worker_id: None,
        http: Default::default(),
        feedback: Default::default(),
        unsubscribe: Default::default(),
        dedicated_queues: Vec::new(),
    };
    let app = tayori::admin::start(config, "127.0.0.1:0".parse().unwrap(), false).await.unwrap();
    let base = format!("http://{}", app.addr);
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();

    let stats = |token: Option<String>| {
        let mut request = client.get(format!("{base}/api/v1/stats"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    assert_eq!(stats(None).await.unwrap().status(), 401);
    assert_eq!(stats(Some(secret.clone())).await.unwrap().status(), 200);
    assert_eq!(client.get(format!("{base}/readyz")).send().await.unwrap().status(), 200);
    let console = client.get(format!("{base}/console/sign-in")).send().await.unwrap();
    assert_eq!(console.status(), 200);

    // The console over a real connection: a session cookie (not the token; not Secure on this
    // loopback listener), the peer address audited, the session ended with its token below.
    let browser = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let signed_in = browser
        .post(format!("{base}/console/sign-in"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", &base)
        .body(format!("token={secret}"))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("tayori_session=") && !cookie.contains(&secret), "{cookie}");
    assert!(cookie.contains("HttpOnly") && !cookie.contains("Secure"), "{cookie}");
    let session = cookie.split(';').next().unwrap().to_owned();
    let dashboard =
        |session: String| browser.get(format!("{base}/console")).header("cookie", session).send();
    assert_eq!(dashboard(session.clone()).await.unwrap().status(), 200);

    let (ok, out, err) = tayori(&["admin", "token", "revoke", &token_id, "--database-url", &url]);
    assert!(ok && out.contains("revoked"), "{err}");
    assert_eq!(stats(Some(secret.clone())).await.unwrap().status(), 401);
    let after = dashboard(session).await.unwrap();
    assert_eq!(after.status(), 303, "the revoked token's console session ended with it");
    let (ok, _, err) = tayori(&["admin", "token", "revoke", &token_id, "--database-url", &url]);
    assert!(!ok && err.contains("no active token"), "{err}");

    // Both the creation and the revocation are in the audit log, by the command line.
    let (admin_ok, admin_secret, _) =
        tayori(&["admin", "token", "create", "--role", "admin", "--database-url", &url]);
    assert!(admin_ok);
    let audit: serde_json::Value = client
        .get(format!("{base}/api/v1/audit?action=token.revoke"))
        .bearer_auth(admin_secret.trim())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(audit[0]["object_id"], token_id.as_str());
    assert_eq!(audit[0]["role"], "command-line");
    let sign_ins: serde_json::Value = client
        .get(format!("{base}/api/v1/audit?action=console.sign_in"))
        .bearer_auth(admin_secret.trim())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sign_ins[0]["token_id"], token_id.as_str());
    assert_eq!(sign_ins[0]["detail"]["client"], "127.0.0.1", "{sign_ins}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn tenants_are_paused_listed_discarded_and_resumed_on_the_command_line() {
    use tayori_app::ports::{DeliveryStore, HeldEntry, HeldEvent, HeldEvents};
    let database = tayori_postgres::testing::fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let config = outbox_config(dir.path(), &database.url, UNREAD_QUEUE);
    let config = config.to_str().unwrap();
    let run = |args: &[&str]| {
        let mut all = vec!["admin", "tenant"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--config", config]);
        tayori(&all)
    };

    // A misspelt tenant is not paused; a tenant that is not paused has nothing to discard.
    let (ok, _, err) = run(&["pause", "acme-invset", "--reason", "typo"]);
    assert!(!ok && err.contains("no tenant acme-invset"), "{err}");
    let (ok, _, err) = run(&["discard-held", "acme-invest", "--reason", "early"]);
    assert!(!ok && err.contains("not paused"), "{err}");

    let (ok, out, err) = run(&["pause", "acme-invest", "--reason", "wrong amounts"]);
    assert!(ok && out.contains("acme-invest paused"), "{err}");
    let (ok, out, _) = run(&["pause", "acme-invest", "--reason", "again"]);
    assert!(ok && out.contains("paused already"), "{out}");

    // Two events held, as a worker holds them; listed, then discarded.
    let store = tayori_postgres::PostgresStore::connect(&database).await.unwrap();
    let held = tayori_postgres::PostgresHeldEvents::new(store.pool().clone());
    let example = support::contract_example();
    for id in ["cli-1", "cli-2"] {
        let mut event = example.clone();
        event["id"] = serde_json::json!(id);
        let body = event.to_string().into_bytes();
        let decoded = tayori_domain::decode_message_body(&body).unwrap();
        let event = HeldEvent {
            entry: HeldEntry {
                key: decoded.key,
                event_type: decoded.event_type,
                receive_count: 1,
                reason: "wrong amounts".into(),
                held_at: chrono::Utc::now(),
            },
            body,
        };
        held.hold(&event).await.unwrap();
    }
    let (ok, out, _) = run(&["paused"]);
    assert!(ok, "{out}");
    assert!(out.starts_with("acme-invest\tsince "), "{out}");
    assert!(out.contains("\t2 held (oldest ") && out.contains("\twrong amounts"), "{out}");
    let (ok, _, err) =
        run(&["discard-held", "acme-invest", "--reason", "x", "--event-type", "Not A Type"]);
    assert!(!ok && err.contains("event type \"Not A Type\""), "{err}");
    let deposits = "account.deposit_completed";
    let (ok, out, err) =
        run(&["discard-held", "acme-invest", "--reason", "bad batch", "--event-type", deposits]);
    assert!(ok, "{err}");
    assert!(out.contains("2 held events of acme-invest (account.deposit_completed) discarded"));
    assert!(err.contains("2 discarded, 0 could not be now, 0 still held"), "progress: {err}");
    let page = store
        .deliveries(&tayori_app::ports::DeliveryQuery { limit: 10, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(page.deliveries.len(), 2);
    for delivery in &page.deliveries {
        assert_eq!(delivery.status.as_str(), "rejected");
        assert!(delivery.reason.as_deref().unwrap().contains("bad batch"), "{delivery:?}");
    }

    let (ok, out, _) = run(&["resume", "acme-invest", "--reason", "fixed"]);
    assert!(ok && out.contains("acme-invest resumed"), "{out}");
    let (ok, out, _) = run(&["paused"]);
    assert!(ok && out.is_empty(), "{out}");
    // Audited by the command line.
    let roles: Vec<(String, String)> = sqlx::query_as(
        "select action, role from admin_audit where action like 'tenant.%' order by audit_id",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    let expected = ["tenant.pause", "tenant.discard_held", "tenant.resume"]
        .map(|action| (action.to_owned(), "command-line".to_owned()));
    assert_eq!(roles, expected);
}

#[tokio::test]
async fn a_windows_failed_deliveries_are_resent_once_on_the_command_line() {
    use std::sync::Arc;
    use tayori_app::ports::{Clock, SendError};
    use tayori_app::testing::{ManualClock, RecordingSender};
    let database = tayori_postgres::testing::fresh_database().await;
    let store = tayori_postgres::PostgresStore::connect(&database).await.unwrap();
    store.migrate().await.unwrap();
    let templates =
        Arc::new(tayori_templates::TemplateSet::load(&repo_root().join("templates")).unwrap());
    // Three deposits refused by SES (the sending identity was not verified), one sent.
    let refused = || SendError::Rejected { reason: "MailFromDomainNotVerified".into() };
    let clock = Arc::new(ManualClock::new());
    let handler = tayori_app::EventHandler {
        store: Arc::new(store.clone()),
        tenants: templates.clone(),
        suppressions: Arc::new(tayori_postgres::PostgresSuppressions::new(store.pool().clone())),
        renderer: templates.clone(),
        sender: Arc::new(RecordingSender::failing_with(vec![refused(), refused(), refused()])),
        clock: clock.clone(),
        policy: Default::default(),
        worker_id: "cli-test".into(),
        pauses: Default::default(),
    };
    for id in ["f-1", "f-2", "f-3", "ok-1"] {
        let mut event = support::contract_example();
        event["id"] = serde_json::json!(id);
        let message = tayori_app::InboundMessage::first(event.to_string().into_bytes());
        handler.handle(&message).await.unwrap();
    }
    let at = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339();
    let (from, until) = (
        at(clock.now() - chrono::Duration::hours(1)),
        at(clock.now() + chrono::Duration::hours(1)),
    );

    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox");
    let config = outbox_config(dir.path(), &database.url, UNREAD_QUEUE);
    let config = config.to_str().unwrap();
    let run = |extra: &[&str]| {
        let mut all = vec![
            "admin",
            "deliveries",
            "resend-failed",
            "--tenant",
            "acme-invest",
            "--from",
            &from,
            "--until",
            &until,
            "--reason",
            "identity verified again",
            "--config",
            config,
        ];
        all.extend_from_slice(extra);
        tayori(&all)
    };
    let emails = || std::fs::read_dir(&outbox).map(|d| d.count()).unwrap_or(0);

    let (ok, _, err) = tayori(&[
        "admin",
        "deliveries",
        "resend-failed",
        "--tenant",
        "acme-invest",
        "--from",
        "yesterday",
        "--until",
        &until,
        "--reason",
        "x",
        "--config",
        config,
    ]);
    assert!(!ok && err.contains("--from \"yesterday\" is not an RFC 3339 time"), "{err}");

    let (ok, out, err) = run(&["--dry-run"]);
    assert!(ok, "{err}");
    assert_eq!(out.lines().filter(|l| l.ends_with("\twould be resent")).count(), 3, "{out}");
    assert!(err.contains("3 of 3 failed deliveries of acme-invest would be resent"), "{err}");
    assert_eq!(emails(), 0, "a dry run sends nothing");

    let (ok, out, err) = run(&[]);
    assert!(ok, "{err}");
    assert_eq!(out.lines().filter(|l| l.contains("\tresent as ")).count(), 3, "{out}");
    assert!(out.lines().all(|l| l.contains("\tsent\t")), "{out}");
    assert!(err.contains("3 of 3 failed deliveries of acme-invest resent"), "{err}");
    assert_eq!(emails(), 3, "one email per failed delivery");

    // Again: nothing left to resend, nothing sent.
    let (ok, out, err) = run(&[]);
    assert!(ok && out.is_empty(), "{out}");
    assert!(err.contains("0 of 0 failed deliveries of acme-invest resent"), "{err}");
    assert_eq!(emails(), 3);
    let audited: i64 = sqlx::query_scalar(
        "select count(*) from admin_audit where action = 'delivery.resend' and role = 'command-line'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(audited, 3);
    store.close().await;
}
