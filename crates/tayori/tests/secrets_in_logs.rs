//! Secrets never reach a log line, a `Debug` dump or `tayori config check`: a full run of the
//! binary as operators run it (a token made on the command line, `tayori worker` sending events
//! from moto's SQS, `tayori admin serve` answering the API and the console, every crate logging
//! at debug), with a database password, an admin token and an unsubscribe key unique to the run,
//! and then everything the processes printed searched for each. The text logs, written to a
//! file, carry no ANSI colour codes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

mod support;

use support::{contract_example, moto, moto_endpoint, repo_root, tayori};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A child process killed when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `tayori <args>` in the background, its output in `<dir>/<name>.{out,err}`.
fn spawn(dir: &Path, name: &str, args: &[&str]) -> Running {
    let child = Command::new(env!("CARGO_BIN_EXE_tayori"))
        .args(args)
        // Every crate at debug, tayori's at trace: whatever any of them might say.
        .env(
            "RUST_LOG",
            "debug,tayori=trace,tayori_app=trace,tayori_admin=trace,tayori_postgres=trace",
        )
        .env("TAYORI_LOG_FORMAT", "text")
        .env("AWS_ENDPOINT_URL", moto_endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join(format!("{name}.out"))).unwrap())
        .stderr(std::fs::File::create(dir.join(format!("{name}.err"))).unwrap())
        .spawn()
        .unwrap();
    Running(child)
}

fn terminate(mut process: Running) {
    let status = Command::new("kill").args(["-TERM", &process.0.id().to_string()]).status();
    assert!(status.unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while process.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `postgres://user@host/db` with another user and a password.
fn with_credentials(url: &str, user: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let host = rest.split_once('@').map_or(rest, |(_, host)| host);
    format!("{scheme}://{user}:{password}@{host}")
}

async fn wait_for_files(dir: &Path, count: usize) -> Vec<PathBuf> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        if files.len() >= count {
            return files;
        }
        assert!(Instant::now() < deadline, "only {} of {count} emails written", files.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_a_log_line_or_the_printed_configuration() {
    let run = format!("{}{}", std::process::id(), chrono::Utc::now().timestamp_subsec_nanos());
    let password = format!("pw-{run}-Zq8");
    let unsubscribe_key = format!("unsubscribe-key-{run}-0123456789abcdefghij");
    let database = tayori_postgres::testing::fresh_database().await;
    let role = format!("leakcheck_{}", std::process::id());
    let pool = sqlx::PgPool::connect(&database.url).await.unwrap();
    // Roles are cluster-wide: a rerun in the same cluster finds it already made.
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!("drop role if exists {role}")))
        .execute(&pool)
        .await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "create role {role} login superuser password '{password}'"
    )))
    .execute(&pool)
    .await
    .unwrap();
    let url = with_credentials(&database.url, &role, &password);

    let aws = moto().await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let queue = sqs
        .create_queue()
        .queue_name(format!("secrets-{run}"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox");
    std::fs::create_dir(&outbox).unwrap();
    let config = dir.path().join("tayori.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[store]
kind = "postgres"
url = "{url}"
max_connections = 4
[queue]
url = "{queue}"
wait_time_seconds = 1
[sender]
kind = "outbox"
dir = "{outbox}"
[templates]
dir = "{templates}"
[unsubscribe]
base_url = "https://mail.example.com"
key = "{unsubscribe_key}"
"#,
            outbox = outbox.display(),
            templates = repo_root().join("templates").display(),
        ),
    )
    .unwrap();
    let config_arg = config.to_str().unwrap();

    // `tayori config check` prints TOML the worker reads back, secrets masked.
    let (ok, printed, err) = tayori(&["config", "check", "--config", config_arg]);
    assert!(ok, "{err}");
    let table: toml::Table = toml::from_str(&printed).expect("config check prints TOML");
    let store = table["store"].as_table().unwrap();
    assert_eq!(store["url"].as_str().unwrap(), with_credentials(&database.url, &role, "***"));
    assert_eq!(table["unsubscribe"]["key"].as_str(), Some("***"));
    assert_eq!(table["queue"]["url"].as_str(), Some(queue.as_str()));

    // A token made on the command line: printed once on stdout, never in a log.
    let (ok, token, err) =
        tayori(&["admin", "token", "create", "--role", "admin", "--database-url", &url]);
    assert!(ok, "{err}");
    let token = token.trim().to_owned();
    assert!(token.starts_with("tyr_"), "{token}");
    std::fs::write(dir.path().join("token-create.err"), &err).unwrap();
    let (ok, _, err) = tayori(&["migrate", "--database-url", &url]);
    assert!(ok, "{err}");
    std::fs::write(dir.path().join("migrate.err"), &err).unwrap();

    // The worker sends three events.
    let worker = spawn(dir.path(), "worker", &["worker", "--config", config_arg]);
    for i in 0..3 {
        let mut event = contract_example();
        event["id"] = json!(format!("secrets-{run}-{i}"));
        sqs.send_message().queue_url(&queue).message_body(event.to_string()).send().await.unwrap();
    }
    wait_for_files(&outbox, 3).await;

    // The admin server: the API with the token and with a wrong one, the console's sign-in.
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let admin = spawn(
        dir.path(),
        "admin",
        &["admin", "serve", "--config", config_arg, "--listen", &listen],
    );
    let base = format!("http://{listen}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = http.get(format!("{base}/readyz")).send().await;
        if ready.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "the admin server never got ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stats = http.get(format!("{base}/api/v1/stats")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(stats.status(), 200);
    let wrong = format!("{token}x");
    let refused =
        http.get(format!("{base}/api/v1/stats")).bearer_auth(&wrong).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let deliveries =
        http.get(format!("{base}/api/v1/deliveries")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(deliveries.status(), 200);
    let mut session = None;
    for attempt in [&token, &wrong] {
        let answer = http
            .post(format!("{base}/console/sign-in"))
            .header("origin", &base)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={attempt}"))
            .send()
            .await
            .unwrap();
        let cookie = answer.headers().get("set-cookie").and_then(|v| v.to_str().ok());
        if let Some(cookie) = cookie.filter(|_| session.is_none()) {
            let value = cookie.split(';').next().unwrap().split_once('=').unwrap().1;
            session = Some(value.to_owned());
        }
    }
    // The console's session id is a secret as good as the token while it lasts.
    let session = session.expect("the right token signs in");
    let page = http
        .get(format!("{base}/console"))
        .header("cookie", format!("{}={session}", tayori_admin::SESSION_COOKIE))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200, "the session works");
    terminate(admin);
    terminate(worker);

    // Everything any of them printed to its logs.
    let mut logs = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "err" || x == "out") {
            logs.push((path.clone(), std::fs::read_to_string(&path).unwrap()));
        }
    }
    let worker_log = &logs.iter().find(|(p, _)| p.ends_with("worker.err")).unwrap().1;
    assert!(worker_log.lines().count() > 20, "the worker logged at debug:\n{worker_log}");
    assert!(worker_log.contains(&role), "the log names the database user, masked:\n{worker_log}");
    for (path, text) in &logs {
        for (what, secret) in [
            ("database password", &password),
            ("token", &token),
            ("unsubscribe key", &unsubscribe_key),
            ("session id", &session),
        ] {
            assert!(
                !text.contains(secret.as_str()),
                "the {what} is in {}:\n{text}",
                path.display()
            );
        }
        // The token's hash would do as well as the token to someone reading the database, not
        // the log; still, it has no business there either.
        assert!(!text.contains(&tayori_app::admin::token_hash(&token)), "{}", path.display());
        assert!(!text.contains('\u{1b}'), "ANSI escape codes in {}", path.display());
    }
}
