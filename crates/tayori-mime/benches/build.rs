//! Messages built per second on one core: `cargo bench -p tayori-mime --bench build`.
//! Figures and the machine they were measured on: docs/benchmarks.md.
//!
//! `deposit_completed_ja`: the HTML (3.8 KB) and text (1.2 KB) parts of acme-invest's
//! `account.deposit_completed` in Japanese, as `tayori templates render acme-invest
//! account.deposit_completed --format html|text` prints them (the fixtures next to this file),
//! with the headers the SES sender sends: what the sender does per email before `SendEmail`.

#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use chrono::{TimeZone, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tayori_domain::{
    DeliveryId, DisplayName, EmailAddress, EventType, Mailbox, OutgoingEmail, Subject, TenantId,
};

fn mailbox(address: &str, name: Option<&str>) -> Mailbox {
    Mailbox {
        address: EmailAddress::parse(address).unwrap(),
        name: name.map(|name| DisplayName::parse(name).unwrap()),
    }
}

fn deposit_completed_ja() -> OutgoingEmail {
    OutgoingEmail {
        delivery_id: DeliveryId::parse("0b6c2d8e-5f1a-5c3e-9d7b-2a4e6f8c0d1b").unwrap(),
        tenant: TenantId::parse("acme-invest").unwrap(),
        event_type: EventType::parse("account.deposit_completed").unwrap(),
        from: mailbox("noreply@acme-invest.example.com", Some("アクメ証券")),
        reply_to: Some(mailbox("support@acme-invest.example.com", Some("Acme Invest Support"))),
        to: mailbox("taro.yamada@example.com", Some("山田 太郎")),
        subject: Subject::parse("【Acme Invest】ご入金のお知らせ（50,000円）").unwrap(),
        html_body: include_str!("fixtures/deposit_completed.ja.html").to_owned(),
        text_body: include_str!("fixtures/deposit_completed.ja.txt").to_owned(),
        sending: Default::default(),
        list_unsubscribe: None,
    }
}

fn build(c: &mut Criterion) {
    let email = deposit_completed_ja();
    let date = Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap();
    let mut group = c.benchmark_group("build_message");
    group.throughput(Throughput::Elements(1));
    group.bench_function("deposit_completed_ja", |b| {
        b.iter(|| tayori_mime::build_message(black_box(&email), date).unwrap())
    });
    group.finish();
}

criterion_group!(benches, build);
criterion_main!(benches);
