//! The console in headless Chromium (Debian's `chromium` and `chromium-driver`, which
//! `scripts/test` installs when missing), driven over WebDriver: sign in, find a delivery by its
//! recipient, open it, resend it with a reason, see the audit entry, pause a tenant, and redrive
//! a dead letter.
//! Screenshots of each step go to `<target>/tmp/console-screenshots/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use tayori_app::ports::Role;

use common::{harness, invest_deposit};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver, stopped when the test ends, however it ends.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn start_driver() -> (Driver, String) {
    for binary in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            std::path::Path::new(binary).exists(),
            "{binary} is missing: run the tests with scripts/test, which installs chromium and \
             chromium-driver"
        );
    }
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let driver = Driver(child);
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (driver, url)
}

async fn browser(webdriver: &str) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--window-size=1280,900"],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector).capabilities(capabilities).connect(webdriver).await.unwrap()
}

fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(client: &Client, name: &str) {
    let png = client.screenshot().await.unwrap();
    let path = screenshot_dir().join(format!("{name}.png"));
    std::fs::write(&path, png).unwrap();
    println!("screenshot: {}", path.display());
}

#[tokio::test]
async fn an_operator_finds_a_delivery_resends_it_and_sees_the_audit_entry() {
    let h = harness().await;
    for (i, email) in
        ["hanako@example.com", "taro.yamada@example.com", "jiro@example.com"].iter().enumerate()
    {
        h.publish(&invest_deposit(&format!("browser-{i}"), email)).await;
    }
    h.publish(&common::invest_withdrawal("browser-rejected", "jiro@example.com")).await;
    let dead = invest_deposit("browser-dead", "saburo@example.com").to_string();
    h.dead_letters.add("dead-1", dead.as_bytes(), chrono::Utc::now());
    let (secret, token_id) = h.token(Role::Admin, &[]).await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = h.router.clone();
    // As `tayori admin serve` serves it: with the peer address (sign-in throttling and audit).
    let server = tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
            .await
    });
    // Another site (`localhost` is not `127.0.0.1`) with a form that posts the token to the
    // console's sign-in: the browser must not end up signed in.
    let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let evil = format!("http://localhost:{}/", elsewhere.local_addr().unwrap().port());
    let form = format!(
        "<!doctype html><form method=\"post\" action=\"{base}/console/sign-in\">\
         <input name=\"token\" value=\"{secret}\"><button id=\"go\">go</button></form>"
    );
    let evil_site = tokio::spawn(async move {
        let page = axum::Router::new()
            .route("/", axum::routing::get(move || async move { axum::response::Html(form) }));
        axum::serve(elsewhere, page).await
    });

    let (_driver, webdriver) = start_driver().await;
    let c = browser(&webdriver).await;
    let result = async {
        // A cross-site post of a valid token is refused and signs the browser in to nothing.
        c.goto(&evil).await?;
        c.find(Locator::Id("go")).await?.click().await?;
        c.wait().for_element(Locator::Id("sign-in-error")).await?;
        assert!(c.source().await?.contains("Sign in from this console"));
        shot(&c, "0-cross-site-refused").await;
        c.goto(&format!("{base}/console")).await?;
        c.wait().for_element(Locator::Id("token")).await?;
        assert!(c.current_url().await?.path().ends_with("/console/sign-in"));

        // Signed out: the console sends us to sign in.
        c.goto(&format!("{base}/console")).await?;
        c.wait().for_element(Locator::Id("token")).await?;
        assert!(c.current_url().await?.path().ends_with("/console/sign-in"));
        shot(&c, "1-sign-in").await;
        c.find(Locator::Id("token")).await?.send_keys(&secret).await?;
        c.find(Locator::Id("sign-in")).await?.click().await?;

        // The dashboard: "/" jumps to the search field (the keyboard shortcut script runs).
        c.wait().for_element(Locator::Css("input[data-search]")).await?;
        assert!(c.source().await?.contains("Recent failures"));
        shot(&c, "2-dashboard").await;
        c.find(Locator::Css("body")).await?.send_keys("/").await?;
        let focused = c.active_element().await?;
        assert_eq!(focused.attr("name").await?.as_deref(), Some("recipient"));
        focused.send_keys("taro.yamada@example.com\u{E007}").await?; // Enter

        // One result, the recipient's.
        c.wait().for_element(Locator::Id("results")).await?;
        let rows = c.find_all(Locator::Css("#results tbody tr")).await?;
        assert_eq!(rows.len(), 1);
        assert!(rows[0].text().await?.contains("taro.yamada@example.com"));
        shot(&c, "3-search").await;
        c.find(Locator::Css("a.delivery-link")).await?.click().await?;

        // The delivery, then a resend with a reason.
        c.wait().for_element(Locator::Id("resend-form")).await?;
        assert_eq!(c.find(Locator::Id("status")).await?.text().await?, "sent");
        assert!(
            c.find(Locator::Id("event")).await?.text().await?.contains("account.deposit_completed")
        );
        shot(&c, "4-delivery").await;
        c.find(Locator::Id("resend-reason"))
            .await?
            .send_keys("customer says it never arrived")
            .await?;
        c.find(Locator::Id("resend")).await?.click().await?;
        c.wait().for_element(Locator::Id("action-result")).await?;
        let done = c.find(Locator::Id("action-result")).await?.text().await?;
        assert!(done.contains("sent"), "{done}");
        shot(&c, "5-resent").await;

        // The audit entry, reached from the delivery page.
        c.find(Locator::LinkText("Audit entries for this delivery")).await?.click().await?;
        c.wait().for_element(Locator::Id("audit")).await?;
        let entries = c.find_all(Locator::Css("tr.audit-entry")).await?;
        assert_eq!(entries.len(), 1);
        let entry = entries[0].text().await?;
        assert!(entry.contains("delivery.resend"), "{entry}");
        assert!(entry.contains("customer says it never arrived"), "{entry}");
        assert!(entry.contains(&token_id[..8]), "{entry}");
        shot(&c, "6-audit").await;

        // The rejected events page, for the record.
        c.goto(&format!("{base}/console/rejected")).await?;
        c.wait().for_element(Locator::Css("h1")).await?;
        shot(&c, "7-rejected").await;

        // "g n" goes to the tenants; pausing one takes a reason and says what it did.
        c.find(Locator::Css("body")).await?.send_keys("gn").await?;
        c.wait().for_element(Locator::Css("tr[data-tenant=\"acme-invest\"] form")).await?;
        assert!(c.current_url().await?.path().ends_with("/console/tenants"));
        let row = "tr[data-tenant=\"acme-invest\"]";
        c.find(Locator::Css(&format!("{row} input[name=reason]")))
            .await?
            .send_keys("wrong amounts in the template")
            .await?;
        c.find(Locator::Css(&format!("{row} button"))).await?.click().await?;
        c.wait().for_element(Locator::Css("p.notice")).await?;
        let notice = c.find(Locator::Css("p.notice")).await?.text().await?;
        assert!(notice.contains("acme-invest is paused"), "{notice}");
        let row_text = c.find(Locator::Css(row)).await?.text().await?;
        assert!(row_text.contains("wrong amounts in the template"), "{row_text}");
        assert!(row_text.contains("Resume"), "{row_text}");
        shot(&c, "8-tenant-paused").await;

        // "g q" goes to the dead letters: one, by its event; redriven with a reason.
        c.find(Locator::Css("body")).await?.send_keys("gq").await?;
        c.wait().for_element(Locator::Id("redrive-form")).await?;
        let table = c.find(Locator::Id("dead-letters")).await?.text().await?;
        assert!(table.contains("browser-dead") && !table.contains("saburo"), "{table}");
        shot(&c, "9-dead-letters").await;
        c.find(Locator::Css("#redrive-form input[name=reason]"))
            .await?
            .send_keys("the database is back")
            .await?;
        c.find(Locator::Css("#redrive-form button")).await?.click().await?;
        c.wait().for_element(Locator::Id("redrive-result")).await?;
        let notice = c.find(Locator::Id("redrive-result")).await?.text().await?;
        assert!(notice.contains("1 dead letters moved back"), "{notice}");
        Ok::<_, fantoccini::error::CmdError>(())
    }
    .await;
    let _ = c.close().await;
    server.abort();
    evil_site.abort();
    result.unwrap();
    assert_eq!(h.sender.sent().len(), 4, "three originals and the resend");
    assert_eq!(h.sender.sent()[3].to.address.as_str(), "taro.yamada@example.com");
    assert_eq!(h.dead_letters.redriven().len(), 1);
}
