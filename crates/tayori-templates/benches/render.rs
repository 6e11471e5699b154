//! Renders per second of the demo templates on one core: `cargo bench -p tayori-templates`.
//! Figures and the machine they were measured on: docs/benchmarks.md.
//!
//! - `layout_html_and_text`: acme-invest's `account.deposit_completed` for the contract's
//!   example: a branded layout with an inlined stylesheet, a partial, an HTML and a text
//!   template, a variable schema. What the worker does per email.
//! - `generated_text`: acme-invest's `report.monthly_ready`, whose text part is generated from
//!   the HTML (html2text) at each render.
//! - `inlining_per_render`: the first case plus css-inline run on the rendered HTML with the
//!   tenant's stylesheet, as a renderer that inlines at send time would: what inlining once at
//!   load saves.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tayori_app::ports::{TemplateRenderer, TenantDirectory};
use tayori_domain::{Event, EventType, TenantId, decode_message_body};
use tayori_templates::TemplateSet;

fn shipped() -> PathBuf {
    manifest_dir().join("../../templates")
}

const CONTRACT_EXAMPLE: &str = r#"{
  "specversion": "1.0", "id": "01JD8Z6Q7K2V4X9M3N5P1R0T8W", "source": "acme-invest/accounts",
  "type": "account.deposit_completed", "time": "2026-11-27T10:00:00Z", "tenant": "acme-invest",
  "data": {
    "to": { "email": "taro.yamada@example.com", "name": "山田 太郎", "locale": "ja" },
    "variables": { "amount": 50000, "currency": "JPY", "deposited_at": "2026-11-27T09:58:00+09:00" }
  }
}"#;

fn sample_event(set: &TemplateSet, event_type: &str) -> Event {
    let tenant = TenantId::parse("acme-invest").unwrap();
    set.render_sample(&tenant, &EventType::parse(event_type).unwrap(), "default", None)
        .unwrap()
        .event
}

fn bench(c: &mut Criterion) {
    let set = TemplateSet::load(&shipped()).expect("the shipped templates load");
    let profile = set.tenant(&TenantId::parse("acme-invest").unwrap()).unwrap();
    let deposit = decode_message_body(CONTRACT_EXAMPLE.as_bytes()).unwrap();
    let report = sample_event(&set, "report.monthly_ready");
    let css = std::fs::read_to_string(shipped().join("acme-invest/_layouts/style.css")).unwrap();
    let inliner = css_inline::CSSInliner::options()
        .load_remote_stylesheets(false)
        .keep_at_rules(true)
        .extra_css(Some(css.into()))
        .build();

    let mut group = c.benchmark_group("render");
    group.throughput(Throughput::Elements(1));
    group.bench_function("layout_html_and_text", |b| {
        b.iter(|| set.render(black_box(&profile), black_box(&deposit)).unwrap())
    });
    group.bench_function("generated_text", |b| {
        b.iter(|| set.render(black_box(&profile), black_box(&report)).unwrap())
    });
    group.bench_function("inlining_per_render", |b| {
        b.iter(|| {
            let email = set.render(black_box(&profile), black_box(&deposit)).unwrap();
            inliner.inline(&email.html).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

/// This package's directory, read when the test runs (cargo sets it): a test binary reused
/// from a build in another checkout must still read this checkout's files.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), std::path::PathBuf::from)
}
