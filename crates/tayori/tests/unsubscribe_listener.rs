//! `tayori unsubscribe serve`'s app on real ports beside `tayori admin serve`'s, from one
//! configuration file with `unsubscribe.listen` set: the endpoint answers on its own listener
//! (one-click by multipart and urlencoded bodies), the admin listener no longer serves it, its
//! tokens show no address, junk from one client does not refuse another's unsubscribe, and the
//! listener runs within the server limits (413 JSON, a slow client cut off by the header
//! timeout while others are served).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use tayori::config::WorkerConfig;
use tayori_app::ports::{MessageClass, SuppressionList};
use tayori_domain::{EmailAddress, EventType, TenantId, UnsubscribeKey};
use tayori_postgres::{PostgresStore, PostgresSuppressions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod support;

use support::{UNREAD_QUEUE, outbox_config, tayori};

const KEY: &str = "an unsubscribe key of at least 32 bytes, for tests";

fn link(address: &str) -> String {
    UnsubscribeKey::new(KEY.as_bytes()).unwrap().sign(
        &TenantId::parse("acme-bank").unwrap(),
        &EmailAddress::parse(address).unwrap(),
        &EventType::parse("report.monthly_ready").unwrap(),
        chrono::Utc::now() + chrono::Duration::days(30),
    )
}

async fn unsubscribed(suppressions: &PostgresSuppressions, address: &str) -> bool {
    let tenant = TenantId::parse("acme-bank").unwrap();
    let address = EmailAddress::parse(address).unwrap();
    suppressions.check(&tenant, &address, MessageClass::Subscription).await.unwrap().is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_endpoint_runs_on_its_own_listener_within_the_server_limits() {
    let database = tayori_postgres::testing::fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let file = outbox_config(dir.path(), &database.url, UNREAD_QUEUE);
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str(&format!(
        "[http]\nheader_read_timeout_seconds = 1\n\
         [unsubscribe]\nbase_url = \"https://mail.acme-bank.example\"\nkey = \"{KEY}\"\n\
         listen = \"127.0.0.1:0\"\ntrusted_proxy_hops = 1\ninvalid_per_client_per_minute = 3\n"
    ));
    std::fs::write(&file, text).unwrap();
    let config = WorkerConfig::load(Some(&file)).unwrap();

    // The admin server applies the migrations; the unsubscribe server only records.
    let admin =
        tayori::admin::start(config.clone(), "127.0.0.1:0".parse().unwrap(), false).await.unwrap();
    let public = tayori::unsubscribe_cmd::start(config, None).await.unwrap();
    assert_ne!(admin.addr, public.addr);
    let store = PostgresStore::connect(&database).await.unwrap();
    let suppressions = PostgresSuppressions::new(store.pool().clone());
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();

    // The link shows no address: not in clear, not in hex.
    let misaki = link("misaki@example.com");
    for needle in ["misaki", "example.com"] {
        assert!(!misaki.contains(needle) && !misaki.contains(&hex(needle)), "{misaki}");
    }

    // Not on the admin listener any more; on its own.
    let on_admin = client.get(format!("http://{}/unsubscribe/{misaki}", admin.addr));
    assert_eq!(on_admin.send().await.unwrap().status(), 404);
    // Its own probes, for a Deployment of its own (deploy/kubernetes/components/unsubscribe).
    for probe in ["healthz", "readyz"] {
        let answer = client.get(format!("http://{}/{probe}", public.addr)).send().await.unwrap();
        assert_eq!(answer.status(), 200, "/{probe}");
    }
    let url = |token: &str| format!("http://{}/unsubscribe/{token}", public.addr);
    assert_eq!(client.get(url(&misaki)).send().await.unwrap().status(), 200);

    // Multipart (RFC 8058 names it) and urlencoded one-clicks.
    let boundary = "tayori-boundary";
    let multipart = client
        .post(url(&misaki))
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\n\
             One-Click\r\n--{boundary}--\r\n"
        ));
    assert_eq!(multipart.send().await.unwrap().status(), 200);
    assert!(unsubscribed(&suppressions, "misaki@example.com").await);
    let taro = link("taro@example.com");
    let urlencoded = client
        .post(url(&taro))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click");
    assert_eq!(urlencoded.send().await.unwrap().status(), 200);
    assert!(unsubscribed(&suppressions, "taro@example.com").await);

    // Behind the (trusted) load balancer: a flood of junk from one client spends its own
    // allowance only; another client's unsubscribe goes through.
    let mut statuses = Vec::new();
    for i in 0..20 {
        let junk = client
            .post(url(&format!("v2.{i:064x}")))
            .header("x-forwarded-for", "198.51.100.66")
            .header("content-type", "application/x-www-form-urlencoded")
            .body("List-Unsubscribe=One-Click");
        statuses.push(junk.send().await.unwrap().status().as_u16());
    }
    assert_eq!(&statuses[..3], &[400, 400, 400], "{statuses:?}");
    assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");
    let jiro = link("jiro@example.com");
    let real = client
        .post(url(&jiro))
        .header("x-forwarded-for", "203.0.113.9")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click");
    assert_eq!(real.send().await.unwrap().status(), 200);
    assert!(unsubscribed(&suppressions, "jiro@example.com").await);

    // Its body limit (64 KiB by default), answered as JSON.
    let large = client.post(url(&jiro)).body(vec![b'a'; 64 * 1024 + 1]).send().await.unwrap();
    assert_eq!(large.status(), 413);
    let body: serde_json::Value = large.json().await.unwrap();
    assert_eq!(body["error"], "payload_too_large", "{body}");

    // 100 clients that never finish their headers: others are still served at once, and the
    // header timeout (1 s here) closes them.
    let mut held = Vec::new();
    for _ in 0..100 {
        let mut stream = tokio::net::TcpStream::connect(public.addr).await.unwrap();
        stream.write_all(b"POST /unsubscribe/x HTTP/1.1\r\nHost: a\r\n").await.unwrap();
        held.push(stream);
    }
    let opened = Instant::now();
    let asked = Instant::now();
    assert_eq!(client.get(url(&jiro)).send().await.unwrap().status(), 200);
    let took = asked.elapsed();
    assert!(took < Duration::from_secs(1), "{took:?}");
    for mut stream in held {
        let mut buffer = [0u8; 512];
        let closed = tokio::time::timeout(Duration::from_secs(3), async {
            while let Ok(read) = stream.read(&mut buffer).await {
                if read == 0 {
                    break;
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "still open after {:?}", opened.elapsed());
    }
    eprintln!(
        "100 half-sent requests: the page answered in {took:?}; all closed {:?} after opening",
        opened.elapsed()
    );

    public.stop().await.unwrap();
    admin.stop().await.unwrap();
}

#[test]
fn without_a_listener_the_command_says_what_to_set() {
    let dir = tempfile::tempdir().unwrap();
    let file = outbox_config(dir.path(), "postgres://127.0.0.1:1/none", UNREAD_QUEUE);
    let (ok, _, err) = tayori(&["unsubscribe", "serve", "--config", file.to_str().unwrap()]);
    assert!(!ok && err.contains("unsubscribe.listen"), "{err}");
}

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}
