//! The configuration shipped in `deploy/kubernetes/base/tayori.toml`, with the environment the
//! worker Deployment sets, passes the real loader (`tayori config check`): a setting renamed or
//! removed in the code fails here rather than in a pod at 3 a.m.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::process::Command;

use clap::Parser;

mod support;

use support::repo_root;

#[test]
fn the_kubernetes_configuration_loads_with_the_deployments_environment() {
    let base = repo_root().join("deploy/kubernetes/base");
    let deployment = std::fs::read_to_string(base.join("worker-deployment.yaml")).unwrap();
    // Every TAYORI_* variable the Deployment sets, with a value of the right form.
    let mut variables: Vec<&str> = deployment
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- name: "))
        .filter(|name| name.starts_with("TAYORI_"))
        .collect();
    variables.sort_unstable();
    assert_eq!(
        variables,
        [
            "TAYORI_CONFIG",
            "TAYORI_DEDICATED_QUEUES",
            "TAYORI_LOG_FORMAT",
            "TAYORI_QUEUE__URL",
            "TAYORI_STORE__URL",
            "TAYORI_WORKER_ID"
        ],
        "the worker Deployment's variables changed: give them values below"
    );
    let output = Command::new(env!("CARGO_BIN_EXE_tayori"))
        .args(["config", "check"])
        .env_clear()
        .env("TAYORI_CONFIG", base.join("tayori.toml"))
        .env("TAYORI_LOG_FORMAT", "json")
        // The Secret's URL as the runbook writes it: TLS verified against the mounted CA bundle.
        .env("TAYORI_STORE__URL", format!("postgres://tayori:pod-secret-7f3a@db.internal:5432/tayori?{DATABASE_TLS}"))
        .env(
            "TAYORI_QUEUE__URL",
            "https://sqs.ap-northeast-1.amazonaws.com/123456789012/tayori-prod-events",
        )
        .env("TAYORI_WORKER_ID", "tayori-worker-5d8f7-abcde")
        // The example overlay's value (a TOML array of tables).
        .env(
            "TAYORI_DEDICATED_QUEUES",
            r#"[{url = "https://sqs.ap-northeast-1.amazonaws.com/123456789012/tayori-prod-acme-bank-events", weight = 1}]"#,
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "config check failed:\n{stderr}\n{stdout}");
    assert!(stdout.contains("0.0.0.0:9090"), "http.listen: {stdout}");
    assert!(stdout.contains("tayori-prod-events"), "queue.url from the environment: {stdout}");
    assert!(stdout.contains("tayori-worker-5d8f7-abcde"), "worker_id: {stdout}");
    assert!(stdout.contains("tayori-prod-acme-bank-events"), "dedicated_queues: {stdout}");
    assert!(!stdout.contains("pod-secret-7f3a"), "the database password is redacted: {stdout}");
    assert!(stdout.contains(DATABASE_TLS), "store.url keeps its TLS settings: {stdout}");
}

/// The query the database URL carries in production: `docs/operations.md` ("First deployment")
/// and the manifests' mount of the `tayori-database-ca` ConfigMap
/// (`scripts/lib/check-manifests.py` checks every container that reads the URL mounts it).
const DATABASE_TLS: &str =
    "sslmode=verify-full&sslrootcert=/etc/tayori-database-ca/global-bundle.pem";

/// The runbook's database Secret uses `verify-full` with the CA bundle where the manifests mount
/// it, and says where the bundle comes from.
#[test]
fn the_runbooks_database_url_verifies_the_server_against_the_mounted_bundle() {
    let runbook = std::fs::read_to_string(repo_root().join("docs/operations.md")).unwrap();
    let secret = runbook
        .split("create secret generic tayori-database")
        .nth(1)
        .expect("the runbook creates the tayori-database Secret");
    let url_line = secret.lines().find(|l| l.contains("--from-literal=url=")).unwrap();
    assert!(url_line.contains(DATABASE_TLS), "{url_line}");
    assert!(!runbook.contains("sslmode=require'"), "no URL with an unverified sslmode");
    assert!(
        runbook.contains("create configmap tayori-database-ca")
            && runbook
                .contains("https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"),
        "the runbook creates the CA bundle's ConfigMap from the RDS bundle"
    );
    let base = repo_root().join("deploy/kubernetes/base");
    for manifest in [
        "worker-deployment.yaml",
        "admin-deployment.yaml",
        "migrate-job.yaml",
        "prune-cronjob.yaml",
    ] {
        let text = std::fs::read_to_string(base.join(manifest)).unwrap();
        assert!(text.contains("name: tayori-database\n"), "{manifest} reads the database Secret");
        assert!(
            text.contains("mountPath: /etc/tayori-database-ca")
                && text.contains("name: tayori-database-ca"),
            "{manifest} mounts the CA bundle"
        );
    }
}

/// The prune CronJob's arguments, as the binary parses them: a flag renamed in the code, or a
/// retention the binary refuses, fails here rather than in a nightly Job nobody watches.
#[test]
fn the_prune_cronjobs_arguments_parse() {
    let cronjob =
        std::fs::read_to_string(repo_root().join("deploy/kubernetes/base/prune-cronjob.yaml"))
            .unwrap();
    let args_line = cronjob
        .lines()
        .find_map(|line| line.trim().strip_prefix("args: "))
        .expect("the CronJob's container has args");
    let args: Vec<String> =
        serde_json::from_str(args_line).expect("args are a flow sequence of strings");
    assert_eq!(args[0], "prune");
    let parsed = tayori::cli::Cli::try_parse_from(
        ["tayori".to_owned()]
            .into_iter()
            .chain(args)
            .chain(["--database-url".to_owned(), "postgres://db.internal/tayori".to_owned()]),
    );
    match parsed {
        Ok(cli) => assert!(matches!(cli.command, tayori::cli::Command::Prune(_))),
        Err(error) => panic!("the CronJob's args do not parse: {error}"),
    }
}
