//! `tayori templates check|render` as authors and CI run them: the built binary on the shipped
//! templates and on the broken-template corpus.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::process::{Command, Output};

mod support;

use support::repo_root;

fn tayori(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tayori"))
        .args(args)
        .current_dir(repo_root())
        .env_remove("TAYORI_TEMPLATES_DIR")
        .output()
        .expect("tayori runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[test]
fn check_passes_on_the_shipped_templates() {
    let output = tayori(&["templates", "check", "templates"]);
    let out = stdout(&output);
    assert!(output.status.success(), "{out}\n{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(out, "ok: 3 tenants, 14 event types, 22 samples, 40 renders\n");
    // The default directory is templates/.
    assert!(tayori(&["templates", "check"]).status.success());
}

#[test]
fn check_reports_file_and_line_and_fails() {
    let case = "crates/tayori-templates/tests/broken/undefined-variable";
    let output = tayori(&["templates", "check", case]);
    assert_eq!(output.status.code(), Some(1));
    let out = stdout(&output);
    let first = out.lines().next().unwrap();
    assert!(
        first.starts_with(&format!(
            "{case}/t1/e1/body.ja.html:3: variable `deposited_at` is not defined"
        )),
        "{out}"
    );
    assert!(out.ends_with("1 problem (1 tenant, 1 event type, 1 sample, 1 render)\n"), "{out}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("error: 1 problem in the templates"), "{stderr}");
}

#[test]
fn check_speaks_json_for_ci() {
    let case = "crates/tayori-templates/tests/broken/schema-mismatch";
    let output = tayori(&["templates", "check", "--format", "json", case]);
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["problems"][0]["file"], format!("{case}/t1/e1/samples/default.json"));
    assert_eq!(report["problems"][0]["line"], 4);
    let output = tayori(&["templates", "check", "--format", "json", "templates"]);
    assert!(output.status.success());
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["summary"]["renders"], 40);
}

#[test]
fn render_prints_html_text_or_the_whole_message() {
    let args = ["templates", "render", "acme-invest", "account.deposit_completed"];
    let html = tayori(&[&args[..], &["--sample", "contract-example"]].concat());
    assert!(html.status.success(), "{}", String::from_utf8_lossy(&html.stderr));
    let html = stdout(&html);
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(html.contains("50,000円"), "{html}");

    let text = tayori(
        &[&args[..], &["--sample", "contract-example", "--locale", "en-US", "--format", "text"]]
            .concat(),
    );
    let text = stdout(&text);
    assert!(text.starts_with("Dear 山田 太郎,\n"), "{text}");

    let eml = tayori(&[&args[..], &["--sample", "contract-example", "--format", "eml"]].concat());
    assert!(eml.status.success());
    let message = mail_parser::MessageParser::default().parse(&eml.stdout).expect("an email");
    assert_eq!(message.subject(), Some("【Acme Invest】ご入金が完了しました"));
    assert!(message.body_text(0).unwrap().contains("山田 太郎 様"));
    assert!(message.body_html(0).unwrap().contains("50,000円"));
}

#[test]
fn render_takes_data_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.json");
    std::fs::write(
        &data,
        r#"{"to": {"email": "x@example.com", "name": "<b>X</b>", "locale": "en"},
            "variables": {"amount": 7, "currency": "EUR", "deposited_at": "2026-01-02T03:04:05Z"}}"#,
    )
    .unwrap();
    let output = tayori(&[
        "templates",
        "render",
        "acme-invest",
        "account.deposit_completed",
        "--data",
        data.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let html = stdout(&output);
    assert!(html.contains("Dear &lt;b&gt;X&lt;&#x2F;b&gt;,"), "{html}");
    assert!(html.contains("EUR 7"), "{html}");
    // A whole event works too, and a missing variable fails with its file and line.
    std::fs::write(
        &data,
        r#"{"specversion": "1.0", "id": "1", "source": "s", "type": "x", "tenant": "acme-invest",
            "data": {"to": {"email": "x@example.com"}, "variables": {"amount": 7, "currency": "JPY"}}}"#,
    )
    .unwrap();
    let output = tayori(&[
        "templates",
        "render",
        "acme-invest",
        "account.deposit_completed",
        "--data",
        data.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("schema.json"), "{stderr}");
    assert!(stderr.contains("deposited_at"), "{stderr}");
}

#[test]
fn render_names_what_does_not_exist() {
    let output = tayori(&[
        "templates",
        "render",
        "acme-invest",
        "account.deposit_completed",
        "--sample",
        "nope",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("has no sample \"nope\" (it has: contract-example, usd-no-name)"),
        "{stderr}"
    );
}
